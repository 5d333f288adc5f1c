// Running a suite: each case x device pair builds its one-op graph, runs it on random
// inputs seeded by the case id, checks it against the float64 reference, reads the
// "cycles" counter and compares it with the baseline. Pairs run in parallel on oneTBB,
// each with its own Device and Stream. Only the public API (include/anychip) is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "tools/anychip/suite_format.hpp"
#include "tools/anychip/suite_report.hpp"

namespace anychip::cli::suite {

struct DeviceState {
  std::string open_id;  // what Device::open gets (a relative sim:<file.json> resolved)
  bool available = false;
  std::string reason;  // why not, when unavailable
};

// Every device the suite uses: available, or unavailable with the reason. A device no
// backend knows is a SuiteError naming the key that uses it.
std::map<std::string, DeviceState> probe_devices(const Suite& suite);

struct RunSettings {
  std::size_t jobs = 1;
  std::size_t shard_index = 0, shard_count = 1;
  bool progress = false;          // a one-line counter on stderr
  bool require_baseline = false;  // a pair with cycles and no baseline entry fails
  bool updating_baseline = false; // cycle changes are being recorded, not judged
};

// The seed of input `i` of a case: the same on every run, host and device.
std::uint64_t input_seed(const std::string& case_id, std::size_t i);

// Runs the pairs of the shard. `baseline` may be null (no cycle comparison).
Report run_suite(const Suite& suite, const std::map<std::string, DeviceState>& devices,
                 const Baseline* baseline, const RunSettings& settings);

}  // namespace anychip::cli::suite
