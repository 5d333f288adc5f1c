// `anychip suite run` and `anychip suite merge` (docs/suites.md).
//
// Exit codes: 0 every run passed (skipped devices and faster-than-baseline cases do not
// fail); 1 a numeric failure, a cycle regression, a baseline entry the device cannot
// check, a case that could not run, or (with --require-baseline) a missing baseline
// entry; 2 no verdict: a bad suite, baseline or results file, an unknown device, a bad
// flag value, a file that cannot be read or written.
#include "tools/anychip/suite.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <thread>

#include "anychip/anychip.hpp"
#include "tools/anychip/suite_format.hpp"
#include "tools/anychip/suite_report.hpp"
#include "tools/anychip/suite_runner.hpp"

namespace anychip::cli {
namespace {

using nlohmann::json;
using namespace anychip::cli::suite;

struct RunArgs {
  std::string suite_file;
  std::string baseline;
  bool update_baseline = false;
  bool require_baseline = false;
  std::string junit;
  bool json = false;
  std::string jobs;
  std::string shard;
};

struct MergeArgs {
  std::vector<std::string> files;
  std::string junit;
  bool json = false;
};

std::optional<std::size_t> parse_count(const std::string& s) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return static_cast<std::size_t>(std::stoul(s));
}

void print_json(const json& j) {
  std::fputs(j.dump(2, ' ', false, json::error_handler_t::replace).c_str(), stdout);
  std::fputs("\n", stdout);
  std::fflush(stdout);
}

int cmd_run(const RunArgs& a) {
  if (a.suite_file.empty()) throw SuiteError("suite run: no suite file (anychip suite run SUITE.json)");
  RunSettings settings;
  settings.jobs = std::max(1u, std::thread::hardware_concurrency());
  if (!a.jobs.empty()) {
    auto n = parse_count(a.jobs);
    if (!n || *n < 1) throw SuiteError("--jobs: expected a number of threads >= 1, got \"" + a.jobs + "\"");
    settings.jobs = *n;
  }
  if (!a.shard.empty()) {
    const std::size_t slash = a.shard.find('/');
    auto i = slash == std::string::npos ? std::nullopt : parse_count(a.shard.substr(0, slash));
    auto n = slash == std::string::npos ? std::nullopt : parse_count(a.shard.substr(slash + 1));
    if (!i || !n || *n < 1 || *i >= *n)
      throw SuiteError("--shard: expected I/N with 0 <= I < N, such as 0/4, got \"" + a.shard + "\"");
    settings.shard_index = *i;
    settings.shard_count = *n;
  }
  if (a.update_baseline && a.baseline.empty())
    throw SuiteError("--update-baseline needs --baseline FILE, the file to write");
  settings.require_baseline = a.require_baseline;
  settings.updating_baseline = a.update_baseline;
  settings.progress = true;  // anychip::Progress shows it on a terminal only (or with ANYCHIP_PROGRESS=1)

  const Suite suite = load_suite(a.suite_file);
  std::optional<Baseline> baseline;
  std::vector<std::string> dropped;
  if (!a.baseline.empty()) {
    std::error_code ec;
    if (a.update_baseline && !std::filesystem::exists(a.baseline, ec))
      baseline = Baseline{suite.name, {}};
    else
      baseline = load_baseline(a.baseline, suite, a.update_baseline, &dropped);
  }
  const auto devices = probe_devices(suite);

  Report report = run_suite(suite, devices, baseline ? &*baseline : nullptr, settings);
  if (baseline) report.baseline_file = a.baseline;
  report.updating_baseline = a.update_baseline;

  if (a.update_baseline) {
    Baseline updated = *baseline;
    std::size_t recorded = 0, removed = 0;
    for (const PairResult& r : report.results) {
      if (r.status == Status::skipped || r.status == Status::error) continue;  // keep what was there
      if (r.cycles && r.numeric_ok == true) {
        updated.cycles[r.device][r.case_id] = *r.cycles;
        ++recorded;
      } else if (!r.cycles && updated.cycles.count(r.device)) {
        removed += updated.cycles[r.device].erase(r.case_id);
      }
    }
    write_file_atomically(a.baseline, baseline_json(updated));
    for (const std::string& d : dropped) std::fprintf(stderr, "anychip: dropped %s\n", d.c_str());
    std::fprintf(stderr, "anychip: wrote %s: %zu entries measured, %zu removed, %zu stale dropped\n",
                 a.baseline.c_str(), recorded, removed, dropped.size());
  }
  if (!a.junit.empty()) write_file_atomically(a.junit, junit_xml(report));
  if (a.json)
    print_json(report_json(report));
  else
    print_report(report, stdout), std::fflush(stdout);
  return summarize(report.results).ok() ? 0 : 1;
}

int cmd_merge(const MergeArgs& a) {
  if (a.files.empty()) throw SuiteError("suite merge: no results files (the output of anychip suite run --json)");
  std::vector<Report> parts;
  for (const std::string& f : a.files) parts.push_back(report_from_json(parse_json_strictly(read_text_file(f), f), f));

  const Report& first = parts.front();
  Report merged;
  merged.suite = first.suite;
  merged.suite_file = first.suite_file;
  merged.baseline_file = first.baseline_file;
  merged.total = first.total;
  std::set<std::size_t> shards, indices;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const Report& p = parts[k];
    const std::string& f = a.files[k];
    if (p.suite != first.suite)
      throw SuiteError(f + ": results of suite \"" + p.suite + "\", " + a.files[0] + " has \"" + first.suite + "\"");
    if (p.total != first.total || p.shard_count != first.shard_count)
      throw SuiteError(f + ": shard " + std::to_string(p.shard_index) + "/" + std::to_string(p.shard_count) + " of " +
                       std::to_string(p.total) + " runs does not match " + a.files[0] + " (shard " +
                       std::to_string(first.shard_index) + "/" + std::to_string(first.shard_count) + " of " +
                       std::to_string(first.total) + " runs): results of different suites or shardings");
    if (!shards.insert(p.shard_index).second)
      throw SuiteError(f + ": shard " + std::to_string(p.shard_index) + "/" + std::to_string(p.shard_count) +
                       " is given twice");
    std::size_t expected = 0;
    for (std::size_t i = p.shard_index; i < p.total; i += p.shard_count) ++expected;
    for (const PairResult& r : p.results) {
      if (r.index % p.shard_count != p.shard_index || !indices.insert(r.index).second)
        throw SuiteError(f + ": run " + std::to_string(r.index) + " (" + r.case_id + " on " + r.device +
                         ") does not belong to shard " + std::to_string(p.shard_index) + "/" +
                         std::to_string(p.shard_count) + " or appears twice");
      merged.results.push_back(r);
    }
    if (p.results.size() != expected)
      throw SuiteError(f + ": holds " + std::to_string(p.results.size()) + " runs; shard " +
                       std::to_string(p.shard_index) + "/" + std::to_string(p.shard_count) + " of " +
                       std::to_string(p.total) + " has " + std::to_string(expected));
    merged.host_seconds = std::max(merged.host_seconds, p.host_seconds);
  }
  if (shards.size() != first.shard_count) {
    std::string missing;
    for (std::size_t i = 0; i < first.shard_count; ++i)
      if (!shards.count(i)) missing += (missing.empty() ? "" : ", ") + std::to_string(i) + "/" + std::to_string(first.shard_count);
    throw SuiteError("suite merge: missing shard results: " + missing);
  }
  std::sort(merged.results.begin(), merged.results.end(),
            [](const PairResult& x, const PairResult& y) { return x.index < y.index; });

  if (!a.junit.empty()) write_file_atomically(a.junit, junit_xml(merged));
  if (a.json)
    print_json(report_json(merged));
  else
    print_report(merged, stdout), std::fflush(stdout);
  return summarize(merged.results).ok() ? 0 : 1;
}

void reject_extras(const CLI::App& command) {
  const std::vector<std::string> extras = command.remaining();
  if (!extras.empty())
    throw SuiteError("suite " + command.get_name() + ": unexpected argument \"" + extras.front() + "\" (see --help)");
}

// Runs a command; turns every error into a message and exit code 2, never a crash.
template <typename F>
void guarded(F&& command) {
  int code = 2;
  try {
    code = command();
  } catch (const SuiteError& e) {
    std::fprintf(stderr, "anychip: error: %s\n", e.what());
  } catch (const Error& e) {
    std::fprintf(stderr, "anychip: error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anychip: internal error: %s\n", e.what());
  }
  std::fflush(stdout);
  if (code != 0) throw CLI::RuntimeError(code);
}

}  // namespace

void register_suite_commands(CLI::App& app) {
  auto* suite = app.add_subcommand("suite", "regression suites: cases x devices, golden numerics, cycle baselines");
  suite->require_subcommand(1);

  auto ra = std::make_shared<RunArgs>();
  auto* run = suite->add_subcommand("run", "run a suite; exit 1 on a numeric failure or a cycle regression, 2 on an error");
  run->add_option("suite", ra->suite_file, "suite JSON file (docs/suites.md)")->type_name("SUITE.json");
  run->add_option("--baseline", ra->baseline, "cycle baseline JSON file to compare with (or to write)")
      ->type_name("FILE");
  run->add_flag("--update-baseline", ra->update_baseline,
                "write the measured cycles into the --baseline file (atomically)");
  run->add_flag("--require-baseline", ra->require_baseline,
                "fail a run that reports cycles but has no baseline entry");
  run->add_option("--junit", ra->junit, "write JUnit XML here")->type_name("FILE");
  run->add_flag("--json", ra->json, "print the results JSON (what suite merge reads) instead of the table");
  run->add_option("--jobs", ra->jobs, "threads (cases run at once); default: all cores")->type_name("N");
  run->add_option("--shard", ra->shard, "run only the case x device runs whose index is I modulo N")
      ->type_name("I/N");
  run->allow_extras();  // reported by the handler, with exit code 2 like every other error
  run->callback([run, ra] {
    guarded([&] {
      reject_extras(*run);
      return cmd_run(*ra);
    });
  });

  auto ma = std::make_shared<MergeArgs>();
  auto* merge = suite->add_subcommand("merge", "merge the --json results of shards into one report");
  merge->add_option("results", ma->files, "results JSON files, one per shard")->type_name("RESULTS.json");
  merge->add_option("--junit", ma->junit, "write JUnit XML here")->type_name("FILE");
  merge->add_flag("--json", ma->json, "print the merged results JSON instead of the table");
  merge->allow_extras();
  merge->callback([merge, ma] {
    guarded([&] {
      reject_extras(*merge);
      return cmd_merge(*ma);
    });
  });
}

}  // namespace anychip::cli
