#include "tools/anychip/suite.hpp"

namespace anychip::cli {

void register_suite_commands(CLI::App&) {}

}  // namespace anychip::cli
