// The `anychip` command: devices, run, bench, emit, chip, conformance, suite.
// It uses the public API (include/anychip) only.
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "anychip/anychip.hpp"
#include "anychip/conformance.hpp"
#include "anychip/report.hpp"
#include "tools/anychip/cli.hpp"
#include "tools/anychip/suite.hpp"

using nlohmann::json;
namespace ac = anychip;
using namespace anychip::cli;

namespace {

json dtype_list(const std::vector<ac::DType>& ds) {
  json a = json::array();
  for (ac::DType d : ds) a.push_back(std::string(ac::dtype_name(d)));
  return a;
}

int cmd_devices(bool as_json) {
  std::vector<ac::DeviceInfo> devices = ac::list_devices();
  if (as_json) {
    json out = json::array();
    for (const auto& d : devices)
      out.push_back({{"id", d.id},
                     {"backend", d.backend},
                     {"name", d.name},
                     {"available", d.available},
                     {"reason", d.available ? json(nullptr) : json(d.unavailable_reason)},
                     {"arch", d.arch},
                     {"memory_bytes", d.memory_bytes},
                     {"compute_units", d.compute_units},
                     {"dtypes", dtype_list(d.dtypes)},
                     {"scale_dtypes", dtype_list(d.scale_dtypes)}});
    std::cout << json{{"devices", out}}.dump(2) << "\n";
    return 0;
  }
  for (const auto& d : devices) {
    std::printf("%-22s %-12s %s", d.id.c_str(), d.available ? "available" : "unavailable", d.name.c_str());
    if (d.available)
      std::printf(" (%s, %d units, %s GiB)", d.arch.c_str(), d.compute_units,
                  fixed(static_cast<double>(d.memory_bytes) / (1 << 30), 1).c_str());
    else
      std::printf(": %s", d.unavailable_reason.c_str());
    std::printf("\n");
  }
  return 0;
}

// A run as the HTML report takes it: median times, the device's roofs.
ac::ReportRun report_run(const RunResult& r, const RunOptions& opt) {
  ac::ReportRun run;
  run.device = r.info;
  for (const KernelRow& k : r.kernels) {
    run.kernels.push_back(k.info);
    run.seconds.push_back(k.seconds);
    run.counters.push_back(k.counters);
    if (k.check) run.checks.push_back(*k.check);
  }
  run.ceilings = ac::device_ceilings(r.info);
  if (opt.no_data) run.note = "timing only";
  else if (r.repeats > 1) run.note = "median of " + std::to_string(r.repeats) + " runs";
  return run;
}

void write_run_report(const std::string& path, const std::string& file, const ac::ir::Graph& graph,
                      const std::vector<RunResult>& runs, const RunOptions& opt) {
  ac::Report report;
  report.title = "@" + graph.name() + " on ";
  for (std::size_t i = 0; i < runs.size(); ++i)
    report.title += (i == 0 ? "" : i + 1 == runs.size() ? " and " : ", ") + runs[i].device;
  char date[32] = "";
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  report.subtitle = "anychip run " + file + (opt.no_data ? ", timing only" : "") +
                    (opt.check ? ", every kernel checked against the float64 reference" : "") + " \u00b7 " + date;
  ac::ReportSection& section = report.add_section("graph @" + graph.name());
  for (const RunResult& r : runs) section.runs.push_back(report_run(r, opt));
  ac::write_html_report(path, report);
}

int cmd_run(const std::string& file, const RunOptions& opt, const std::vector<std::string>& compare,
            const std::string& report_path) {
  ac::ir::Graph graph = ac::ir::parse_file(file);
  std::vector<RunResult> runs{execute(graph, opt)};
  for (const std::string& d : compare) {
    RunOptions o = opt;
    o.device = d;
    o.trace_path.clear();
    runs.push_back(execute(graph, o));
  }
  bool ok = true;
  for (const RunResult& r : runs) ok = ok && r.ok;
  // The report is written before the table is printed and its error after, so that a bad
  // path costs neither the run's output nor a clear message at the end of it.
  std::string report_error;
  if (!report_path.empty()) {
    try {
      write_run_report(report_path, file, graph, runs, opt);
    } catch (const ac::Error& e) {
      report_error = e.what();
    }
  }
  if (opt.json) {
    json devices = json::array();
    for (const RunResult& r : runs) {
      json ks = json::array();
      for (const auto& k : r.kernels) ks.push_back(kernel_json(k));
      devices.push_back({{"device", r.device}, {"device_seconds", r.device_seconds},
                         {"host_seconds", r.host_seconds}, {"kernels", ks},
                         {"ok", opt.check ? json(r.ok) : json(nullptr)}});
    }
    json out = devices[0];
    out["graph"] = graph.name();
    if (runs.size() > 1) out["compare"] = json(std::vector<json>(devices.begin() + 1, devices.end()));
    out["ok"] = opt.check ? json(ok) : json(nullptr);
    if (!report_path.empty()) out["report"] = report_error.empty() ? json(report_path) : json(nullptr);
    std::cout << out.dump(2) << "\n";
  } else {
    const RunResult& first = runs.front();
    print_table("graph @" + graph.name() + " on " + first.device + " (" + first.info.arch + ")" +
                    (opt.no_data ? ", timing only" : ""),
                first);
    if (runs.size() > 1) print_comparison(runs);
    if (opt.check) {
      for (const RunResult& r : runs) {
        std::size_t failed = 0;
        for (const KernelRow& k : r.kernels) failed += k.check && !k.check->ok;
        if (failed == 0)
          std::printf("check on %s: every kernel matches the float64 reference\n", r.device.c_str());
        else
          std::printf("check on %s: %zu kernel(s) FAILED\n", r.device.c_str(), failed);
      }
    }
    if (!opt.trace_path.empty()) std::printf("trace of the %s run: %s (open it in ui.perfetto.dev)\n", opt.device.c_str(), opt.trace_path.c_str());
    if (!report_path.empty() && report_error.empty()) std::printf("report: %s (open it in a browser)\n", report_path.c_str());
  }
  if (!report_error.empty()) {
    std::fflush(stdout);
    std::fprintf(stderr, "anychip: error: %s\n", report_error.c_str());
    return 1;
  }
  return ok ? 0 : 1;
}

// The conformance suite on one device, or on every available one.
int cmd_conformance(const std::string& device_id, const std::string& filter, bool as_json, std::uint64_t seed) {
  std::vector<std::string> ids;
  json skipped = json::array();
  if (!device_id.empty()) {
    ids.push_back(device_id);
  } else {
    for (const ac::DeviceInfo& d : ac::list_devices()) {
      if (d.available) {
        ids.push_back(d.id);
      } else {
        skipped.push_back({{"device", d.id}, {"reason", d.unavailable_reason}});
        if (!as_json) std::printf("%-22s skipped: %s\n", d.id.c_str(), d.unavailable_reason.c_str());
      }
    }
  }
  json devices = json::array();
  bool ok = true;
  for (const std::string& id : ids) {
    std::optional<ac::Device> opened;
    try {
      opened = ac::Device::open(id);
    } catch (const ac::Error& e) {
      if (e.code() != ac::ErrorCode::Unavailable) throw;
      skipped.push_back({{"device", id}, {"reason", e.what()}});
      if (!as_json) std::printf("%-22s skipped: %s\n", id.c_str(), e.what());
      continue;
    }
    ac::Device& device = *opened;
    std::map<std::string, int> counts;
    json results = json::array();
    for (const auto& r : ac::conformance::run(device, seed, filter)) {
      const std::string outcome(ac::conformance::outcome_name(r.outcome));
      ++counts[outcome];
      ok = ok && !ac::conformance::is_failure(r.outcome);
      results.push_back({{"case", r.case_name}, {"outcome", outcome}, {"rel_err", r.rel_err},
                         {"tolerance", r.tolerance}, {"detail", r.detail}});
      if (!as_json && r.outcome != ac::conformance::Outcome::Pass)
        std::printf("%-22s %-44s %-11s %s\n", id.c_str(), r.case_name.c_str(), outcome.c_str(), r.detail.c_str());
    }
    if (!as_json) {
      std::printf("%-22s", id.c_str());
      for (const char* o : {"pass", "FAIL", "unsupported", "xfail", "XPASS"}) std::printf(" %s %d", o, counts[o]);
      std::printf("\n");
    }
    devices.push_back({{"device", id}, {"results", results}, {"counts", counts}});
  }
  if (as_json) std::cout << json{{"devices", devices}, {"skipped", skipped}, {"ok", ok}}.dump(2) << "\n";
  return ok ? 0 : 1;
}

int cmd_bench(const OpFlags& flags, const RunOptions& opt) {
  ac::ir::Graph graph = op_graph(flags);
  RunResult r = execute(graph, opt);
  const KernelRow& k = r.kernels.front();
  const json shape = op_shape_json(flags);
  if (opt.json) {
    json j = {{"device", opt.device},
              {"op", flags.op},
              {"shape", shape},
              {"device_seconds", r.device_seconds},
              {"host_seconds", r.host_seconds},
              {"tflops", r.device_seconds > 0 ? k.info.flops / r.device_seconds / 1e12 : 0.0},
              {"gbps", r.device_seconds > 0 ? k.info.min_bytes / r.device_seconds / 1e9 : 0.0},
              {"repeats", r.repeats},
              {"spec", k.info.spec},
              {"rel_err", nullptr},
              {"tolerance", nullptr},
              {"ok", nullptr}};
    for (auto& [key, value] : shape.items()) j[key] = value;
    json kj = kernel_json(k);
    for (const char* key : {"rel_err", "tolerance", "ok", "cycles", "bound", "counters"})
      if (kj.contains(key)) j[key] = kj[key];
    if (k.counters.count("cycles")) {
      json util = json::object();
      for (const auto& [name, value] : k.counters)
        if (name.rfind("util.", 0) == 0) util[name.substr(5)] = value;
      j["utilization"] = util;
      for (const char* key : {"hbm_bytes", "l2_bytes", "roofline_cycles"})
        if (k.counters.count(key)) j[key] = k.counters.at(key);
    }
    std::cout << j.dump(2) << "\n";
  } else {
    print_table(flags.op + " " + shape.dump() + " on " + opt.device, r);
  }
  return r.ok ? 0 : 1;
}

void add_run_flags(CLI::App* app, RunOptions& opt) {
  app->add_option("--device", opt.device, "cpu, sim:<chip or chip.json>, opencl:<n>, level_zero:<n>, cuda:<n>");
  app->add_flag("--check", opt.check, "compare every kernel with the float64 reference");
  app->add_flag("--json", opt.json, "print one JSON object");
  app->add_option("--warmup", opt.warmup, "untimed runs first (default 1; 0 on sim:*)")->check(CLI::NonNegativeNumber);
  app->add_option("--repeats", opt.repeats, "timed runs, the median is reported (default 5; 1 on sim:*)")
      ->check(CLI::PositiveNumber);
  app->add_option("--seed", opt.seed, "seed of the random inputs");
  app->add_flag("--no-cache", opt.no_cache, "bypass the on-disk kernel cache");
  app->add_flag("--no-data", opt.no_data, "sim:* only: model time without computing the data");
  app->add_option("--trace", opt.trace_path, "write a Chrome trace (Perfetto) of the last run");
}

void add_shape_flags(CLI::App* app, OpFlags& f, bool attention) {
  if (attention) {
    app->add_option("--batch", f.batch)->check(CLI::PositiveNumber);
    app->add_option("--heads", f.heads, "query heads")->check(CLI::PositiveNumber);
    app->add_option("--kv-heads", f.kv_heads, "key/value heads (default: --heads)")->check(CLI::PositiveNumber);
    app->add_option("--seq-q", f.seq_q)->check(CLI::PositiveNumber);
    app->add_option("--seq-kv", f.seq_kv)->check(CLI::PositiveNumber);
    app->add_option("--head-dim", f.head_dim, "Dk")->check(CLI::PositiveNumber);
    app->add_option("--head-dim-v", f.head_dim_v, "Dv (default: Dk)")->check(CLI::PositiveNumber);
    app->add_flag("--causal", f.causal, "causal mask, aligned bottom-right");
  }
  if (!attention || app->get_name() == "emit") {
    app->add_option("--m", f.m, "rows of A and D")->check(CLI::PositiveNumber);
    app->add_option("--n", f.n, "rows of B, columns of D")->check(CLI::PositiveNumber);
    app->add_option("--k", f.k, "reduction length (a multiple of 128 for gemm_fp8)")->check(CLI::PositiveNumber);
    app->add_option("--scale-fmt", f.scale_fmt, "block scales as ue8m0 or fp32")
        ->check(CLI::IsMember({"ue8m0", "fp32", "f32"}));
    // emit's --out names the file it writes, so there the output dtype is --out-dtype.
    app->add_option(app->get_name() == "emit" ? "--out-dtype" : "--out", f.out, "output dtype")
        ->check(CLI::IsMember({"bf16", "f32", "fp32", "f16"}));
  }
  app->add_option("--dtype", f.dtype, "element dtype of float operands")->check(CLI::IsMember({"bf16", "f16", "f32"}));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"anychip: run tensor graphs on any accelerator"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(ac::version()));

  bool devices_json = false;
  auto* devices = app.add_subcommand("devices", "list every device, available or not, with the reason");
  devices->add_flag("--json", devices_json, "print JSON");

  RunOptions run_opt;
  std::string run_file;
  std::vector<std::string> compare;
  auto* run = app.add_subcommand("run", "run a .acir graph on random inputs");
  run->add_option("file", run_file, ".acir graph")->required()->check(CLI::ExistingFile);
  run->add_option("--compare", compare, "also run on these devices and show them side by side")->delimiter(',');
  std::string run_report;
  run->add_option("--report", run_report,
                  "write a self-contained HTML report here: kernel tables, rooflines, pipe utilization, devices side by side");
  add_run_flags(run, run_opt);

  auto* bench = app.add_subcommand("bench", "time one op");
  bench->require_subcommand(1);
  RunOptions gemm_opt, att_opt;
  OpFlags gemm_flags, att_flags;
  att_flags.op = "attention";
  auto* gemm = bench->add_subcommand("gemm", "block-scaled FP8 GEMM D = A B^T");
  add_shape_flags(gemm, gemm_flags, false);
  add_run_flags(gemm, gemm_opt);
  for (const char* required : {"--m", "--n", "--k"}) gemm->get_option(required)->required();
  auto* attention = bench->add_subcommand("attention", "flash attention softmax(scale Q K^T) V");
  add_shape_flags(attention, att_flags, true);
  add_run_flags(attention, att_opt);
  for (const char* required : {"--heads", "--seq-q", "--seq-kv", "--head-dim"}) attention->get_option(required)->required();

  OpFlags emit_flags;
  std::string emit_target, emit_format = "source", emit_out, emit_graph;
  auto* emit = app.add_subcommand("emit", "print the kernels anychip generates for one op, or a graph, on a target");
  emit->add_option("--target", emit_target, "device string, e.g. sim:npu-ue8m0, cpu")->required();
  auto* emit_op = emit->add_option("--op", emit_flags.op, "one op from shape flags: gemm_fp8, gemm, attention, rmsnorm, silu_mul, add, quantize_fp8, dequantize");
  auto* emit_file = emit->add_option("--graph", emit_graph, "every kernel of this .acir graph (any op)");
  emit_op->excludes(emit_file);
  emit->add_option("--format", emit_format, "source, or the target's own (ptx, cubin)");
  emit->add_option("--out", emit_out, "write to this file instead of stdout");
  add_shape_flags(emit, emit_flags, true);

  auto* chip = app.add_subcommand("chip", "the simulator's chip descriptions");
  chip->require_subcommand(1);
  bool chip_list_json = false;
  auto* chip_list = chip->add_subcommand("list", "the chip presets");
  chip_list->add_flag("--json", chip_list_json);
  std::string chip_name;
  auto* chip_show = chip->add_subcommand("show", "one chip description (a preset name or a JSON file), validated");
  chip_show->add_option("chip", chip_name, "preset name or path")->required();
  chip_show->add_flag("--json");  // the description is JSON either way

  std::string conf_device, conf_filter;
  bool conf_json = false;
  std::uint64_t conf_seed = 1;
  auto* conf = app.add_subcommand("conformance", "every op against the float64 reference, on one or every device");
  conf->add_option("--device", conf_device, "one device (default: every available device)");
  conf->add_option("--filter", conf_filter, "only cases whose name starts with this, e.g. attention/");
  conf->add_option("--seed", conf_seed, "seed of the random inputs");
  conf->add_flag("--json", conf_json, "print JSON");

  register_suite_commands(app);

  try {
    app.parse(argc, argv);
    if (*devices) return cmd_devices(devices_json);
    if (*run) return cmd_run(run_file, run_opt, compare, run_report);
    if (*conf) return cmd_conformance(conf_device, conf_filter, conf_json, conf_seed);
    if (*gemm) return cmd_bench(gemm_flags, gemm_opt);
    if (*attention) return cmd_bench(att_flags, att_opt);
    if (*emit) {
      ac::ir::Graph g = emit_graph.empty() ? op_graph(emit_flags) : ac::ir::parse_file(emit_graph);
      std::string text = ac::emit(g, ac::Device::open(emit_target), emit_format);
      if (emit_out.empty()) {
        std::cout << text;
      } else {
        std::ofstream out(emit_out, std::ios::binary | std::ios::trunc);
        if (!(out << text)) throw ac::Error(ac::ErrorCode::IoError, emit_out + ": cannot write");
      }
      return 0;
    }
    if (*chip_list) {
      std::vector<std::string> names = ac::chip_presets();
      if (chip_list_json) {
        json a = json::array();
        for (const auto& n : names) a.push_back(json::parse(ac::chip_json(n)));
        std::cout << json{{"chips", a}}.dump(2) << "\n";
      } else {
        for (const auto& n : names) {
          json c = json::parse(ac::chip_json(n));
          std::printf("%-16s %s\n", n.c_str(), c.value("description", "").c_str());
        }
      }
      return 0;
    }
    if (*chip_show) {
      std::cout << ac::chip_json(chip_name) << "\n";
      return 0;
    }
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const ac::Error& e) {
    std::fprintf(stderr, "anychip: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anychip: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
