// `anychip suite run` and `anychip suite merge`: regression suites of cases x devices.
#pragma once

#include <CLI/CLI.hpp>

namespace anychip::cli {

// Adds the `suite` subcommand and its handlers to the command line. A handler that ends
// with a non-zero exit code throws CLI::RuntimeError(code) (main turns it into the exit).
void register_suite_commands(CLI::App& app);

}  // namespace anychip::cli
