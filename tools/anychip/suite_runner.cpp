#include "tools/anychip/suite_runner.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <atomic>
#include <mutex>
#include <optional>

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include "anychip/anychip.hpp"
#include "anychip/progress.hpp"

namespace anychip::cli::suite {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "sim:chips/x.json" in a suite means the file beside the suite, when it is there.
std::string resolve_device(const std::string& id, const std::string& suite_file) {
  namespace fs = std::filesystem;
  const std::string prefix = "sim:";
  if (id.rfind(prefix, 0) != 0 || id.size() < prefix.size() + 5 || id.substr(id.size() - 5) != ".json") return id;
  const fs::path chip(id.substr(prefix.size()));
  if (chip.is_absolute()) return id;
  const fs::path beside = fs::path(suite_file).parent_path() / chip;
  std::error_code ec;
  return fs::exists(beside, ec) ? prefix + beside.string() : id;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.2f%%", 100 * fraction);
  return buf;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return std::isnan(v) ? "nan" : std::isinf(v) ? "inf" : buf;
}

// An output the kernel must overwrite entirely: every byte 0xFF is a NaN in f32, bf16,
// f16, E4M3, E5M2 and UE8M0, so an unwritten element fails the check.

struct Measurement {
  std::vector<KernelCheck> checks;
  std::optional<std::uint64_t> cycles;
};

Measurement measure(const Case& c, const DeviceState& dev) {
  Device device = Device::open(dev.open_id);
  Executable exe = compile(c.graph, device);
  Stream stream = device.create_stream();
  // Uploads are enqueued copies: the host tensors live until the stream has synchronized.
  std::vector<HostTensor> host_inputs, host_outputs;
  for (std::size_t i = 0; i < c.graph.inputs().size(); ++i)
    host_inputs.push_back(HostTensor::random(c.graph.value(c.graph.inputs()[i]).type, input_seed(c.id, i)));
  for (ir::ValueId v : c.graph.outputs()) host_outputs.push_back(HostTensor::poisoned(c.graph.value(v).type));
  std::vector<Tensor> inputs, outputs;
  for (const HostTensor& h : host_inputs) inputs.push_back(device.upload(h, stream));
  for (const HostTensor& h : host_outputs) outputs.push_back(device.upload(h, stream));
  exe.run(stream, inputs, outputs);
  stream.synchronize();
  Measurement m;
  m.checks = exe.check_last_run(stream);
  double cycles = 0;
  bool any = false;
  for (const auto& counters : exe.last_kernel_counters(stream)) {
    auto it = counters.find("cycles");
    if (it == counters.end()) continue;
    any = true;
    cycles += it->second;
  }
  if (any && std::isfinite(cycles) && cycles >= 0) m.cycles = static_cast<std::uint64_t>(std::llround(cycles));
  return m;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "; ") + x;
  return s;
}

// Numbers measured -> verdict.
void judge(PairResult& r, const Case& c, const Measurement& m, const Baseline* baseline, const RunSettings& s) {
  std::vector<std::string> problems, notes;

  if (m.checks.empty()) {
    problems.push_back("no kernel was checked against the reference");
    r.numeric_ok = false;
  } else {
    // The worst kernel: the first that fails, else the one nearest its bound.
    bool ok = true;
    double worst_ratio = -1;
    for (const KernelCheck& k : m.checks) {
      const double bound = c.max_rel_err.value_or(k.tolerance);
      const bool k_ok = k.rel_err <= bound;  // false for NaN
      const double ratio = !k_ok ? INFINITY : bound > 0 ? k.rel_err / bound : 0;
      if ((ok && !k_ok) || (ok == k_ok && ratio > worst_ratio)) {
        r.rel_err = k.rel_err;
        r.tolerance = bound;
        worst_ratio = ratio;
      }
      ok = ok && k_ok;
    }
    r.numeric_ok = ok;
    if (!ok)
      problems.push_back("rel_err " + sci(*r.rel_err) + " exceeds the tolerance " + sci(*r.tolerance) +
                         (c.max_rel_err ? " (the case's max_rel_err)" : ""));
  }

  r.cycles = m.cycles;
  r.baseline_cycles = baseline ? baseline->find(r.device, r.case_id) : std::nullopt;
  char tol[32];
  std::snprintf(tol, sizeof tol, "%g%%", 100 * c.cycle_rel_tol);
  if (!m.cycles) {
    if (!r.baseline_cycles) {
      r.cycle_check = CycleCheck::not_reported;
    } else {
      r.cycle_check = CycleCheck::missing_counter;
      if (s.updating_baseline)
        notes.push_back("no cycles reported: entry removed from the baseline");
      else
        problems.push_back("the baseline has " + std::to_string(*r.baseline_cycles) + " cycles but " + r.device +
                           " reported no \"cycles\" counter (the backend lost it, or the entry does not belong)");
    }
  } else if (!r.baseline_cycles) {
    r.cycle_check = CycleCheck::no_baseline;
    if (s.updating_baseline)
      notes.push_back(*r.numeric_ok ? "baseline recorded" : "no baseline (not recorded: numeric failure)");
    else if (s.require_baseline)
      problems.push_back("no baseline for this case on " + r.device + " (--require-baseline)");
    else
      notes.push_back("no baseline");
  } else {
    const double base = static_cast<double>(*r.baseline_cycles), now = static_cast<double>(*m.cycles);
    const double change = base > 0 ? (now - base) / base : (now > 0 ? INFINITY : 0.0);
    if (std::isfinite(change)) r.cycle_change = change;
    const std::string vs = std::to_string(*m.cycles) + " cycles vs the baseline " +
                           std::to_string(*r.baseline_cycles) + " (" + percent(change) + ", tolerance " + tol + ")";
    if (change > c.cycle_rel_tol) {
      r.cycle_check = CycleCheck::regression;
      if (s.updating_baseline)
        notes.push_back("slower, " + vs + (*r.numeric_ok ? ": baseline updated" : ": not recorded (numeric failure)"));
      else
        problems.push_back("cycle regression: " + vs);
    } else if (change < -c.cycle_rel_tol) {
      r.cycle_check = CycleCheck::faster;
      if (s.updating_baseline)
        notes.push_back("faster, " + vs + (*r.numeric_ok ? ": baseline updated" : ": not recorded (numeric failure)"));
      else
        notes.push_back("faster: update the baseline; " + vs);
    } else {
      r.cycle_check = CycleCheck::ok;
    }
  }
  r.status = problems.empty() ? Status::passed : Status::failed;
  r.message = join(problems.empty() ? notes : problems);
}

PairResult run_pair(const Pair& p, const DeviceState& dev, const Baseline* baseline, const RunSettings& s) {
  PairResult r;
  r.index = p.index;
  r.case_id = p.c->id;
  r.op = p.c->op;
  r.device = p.device;
  r.cycle_rel_tol = p.c->cycle_rel_tol;
  if (!dev.available) {
    r.status = Status::skipped;
    r.message = "device unavailable: " + dev.reason;
    return r;
  }
  const auto t0 = Clock::now();
  try {
    judge(r, *p.c, measure(*p.c, dev), baseline, s);
  } catch (const Error& e) {
    r.status = e.code() == ErrorCode::Unavailable ? Status::skipped : Status::error;
    r.message = e.code() == ErrorCode::Unavailable ? std::string("device unavailable: ") + e.what()
                                                   : std::string(error_code_name(e.code())) + ": " + e.what();
  } catch (const std::exception& e) {
    r.status = Status::error;
    r.message = std::string("internal error: ") + e.what();
  }
  r.host_seconds = seconds_since(t0);
  return r;
}

// "[ 37/235] 1 failed  case on device" on one line of stderr (anychip::Progress: on a
// terminal, or with ANYCHIP_PROGRESS=1).
class SuiteProgress {
 public:
  SuiteProgress(bool on, std::size_t total) {
    if (on) progress_.emplace("", total);
  }
  void done(const PairResult& r) {
    if (!progress_) return;
    const std::size_t failed = failed_ += r.status == Status::failed || r.status == Status::error;
    progress_->step(std::to_string(failed) + " failed  " + r.case_id + " on " + r.device);
  }

 private:
  std::optional<Progress> progress_;
  std::atomic<std::size_t> failed_{0};
};

}  // namespace

std::uint64_t input_seed(const std::string& case_id, std::size_t i) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the id ...
  for (unsigned char ch : case_id) h = (h ^ ch) * 0x100000001b3ull;
  std::uint64_t z = h + 0x9e3779b97f4a7c15ull * (i + 1);  // ... then splitmix64 per input
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::map<std::string, DeviceState> probe_devices(const Suite& suite) {
  std::map<std::string, DeviceState> states;
  const std::vector<DeviceInfo> listed = list_devices();
  for (const auto& [id, where] : suite.device_uses) {
    DeviceState st;
    st.open_id = resolve_device(id, suite.file);
    auto it = std::find_if(listed.begin(), listed.end(), [&](const DeviceInfo& d) { return d.id == id; });
    if (it != listed.end()) {
      st.available = it->available;
      st.reason = it->unavailable_reason;
    } else {
      try {
        Device::open(st.open_id);
        st.available = true;
      } catch (const Error& e) {
        if (e.code() != ErrorCode::Unavailable) throw SuiteError(suite.file + ": key " + where + ": " + e.what());
        st.reason = e.what();
      }
    }
    states.emplace(id, std::move(st));
  }
  return states;
}

Report run_suite(const Suite& suite, const std::map<std::string, DeviceState>& devices,
                 const Baseline* baseline, const RunSettings& settings) {
  const auto t0 = Clock::now();
  const std::vector<Pair> pairs = all_pairs(suite);
  std::vector<const Pair*> mine;
  for (const Pair& p : pairs)
    if (p.index % settings.shard_count == settings.shard_index) mine.push_back(&p);

  Report report;
  report.suite = suite.name;
  report.suite_file = suite.file;
  report.shard_index = settings.shard_index;
  report.shard_count = settings.shard_count;
  report.total = pairs.size();
  report.results.resize(mine.size());

  const std::size_t jobs = std::max<std::size_t>(settings.jobs, 1);
  SuiteProgress progress(settings.progress, mine.size());
  // The arena bounds the cases run at once and, with global_control, the threads the
  // kernels inside them may use.
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, jobs);
  tbb::task_arena arena(static_cast<int>(jobs));
  arena.execute([&] {
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, mine.size(), 1),
        [&](const tbb::blocked_range<std::size_t>& range) {
          for (std::size_t i = range.begin(); i != range.end(); ++i) {
            const Pair& p = *mine[i];
            report.results[i] = run_pair(p, devices.at(p.device), baseline, settings);
            progress.done(report.results[i]);
          }
        },
        tbb::simple_partitioner());
  });
  report.host_seconds = seconds_since(t0);
  return report;
}

}  // namespace anychip::cli::suite
