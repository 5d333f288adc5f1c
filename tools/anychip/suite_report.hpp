// The results of a suite run (or of several shards merged): what each case did on each
// device, and the three ways to show it: the results JSON (`--json`, which `suite merge`
// reads back), a table for people, and JUnit XML for CI systems.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace anychip::cli::suite {

enum class Status {
  passed,   // numerics within tolerance, cycles not slower than the baseline allows
  failed,   // a numeric failure, a cycle regression, a baseline that cannot be checked
  error,    // the case could not run on an available device (unsupported, internal error)
  skipped,  // the device is unavailable on this machine
};

enum class CycleCheck {
  none,             // not run
  ok,               // within cycle_rel_tol of the baseline
  regression,       // slower than the baseline by more than cycle_rel_tol (a failure)
  faster,           // faster by more than cycle_rel_tol: update the baseline (not a failure)
  no_baseline,      // the device reports cycles; the baseline has no entry
  missing_counter,  // the baseline has an entry; the device reported no cycles (a failure)
  not_reported,     // the device reports no cycles and none are expected (cpu)
};

const char* status_name(Status s);
const char* cycle_check_name(CycleCheck c);

struct PairResult {
  std::size_t index = 0;  // in the unsharded list of case x device
  std::string case_id, op, device;
  Status status = Status::skipped;
  std::optional<double> rel_err;    // worst kernel; may be inf or NaN
  std::optional<double> tolerance;  // the bound rel_err was held to
  std::optional<bool> numeric_ok;
  std::optional<std::uint64_t> cycles, baseline_cycles;
  std::optional<double> cycle_change;  // (cycles - baseline) / baseline
  double cycle_rel_tol = 0;
  CycleCheck cycle_check = CycleCheck::none;
  std::string message;  // why it failed, was skipped, or what to do ("" when plainly ok)
  double host_seconds = 0;
};

struct Report {
  std::string suite, suite_file;
  std::optional<std::string> baseline_file;
  std::size_t shard_index = 0, shard_count = 1;
  std::size_t total = 0;  // case x device pairs in the whole suite, all shards
  double host_seconds = 0;
  std::vector<PairResult> results;  // ascending index
  bool updating_baseline = false;   // --update-baseline: cycles are being recorded (not in JSON)
};

struct Summary {
  std::size_t runs = 0, passed = 0, failed = 0, errors = 0, skipped = 0;
  std::size_t faster = 0, no_baseline = 0;
  bool ok() const { return failed == 0 && errors == 0; }
};
Summary summarize(const std::vector<PairResult>& results);

// The results JSON (docs/suites.md, "Results").
nlohmann::json report_json(const Report& report);
// Reads what report_json wrote; throws SuiteError naming the file and the key.
Report report_from_json(const nlohmann::json& j, const std::string& file);

// The table, the list of failures and a summary line.
void print_report(const Report& report, std::FILE* out);

// JUnit XML: one <testsuite> per device, one <testcase> per case on it.
std::string junit_xml(const Report& report);

// `s` made safe for XML text and attribute values (escapes, and U+FFFD for control
// characters and bytes that are not UTF-8).
std::string xml_escape(const std::string& s);

}  // namespace anychip::cli::suite
