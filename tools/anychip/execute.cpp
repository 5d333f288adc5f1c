#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "anychip/progress.hpp"
#include "tools/anychip/cli.hpp"

namespace anychip::cli {
namespace {

using nlohmann::json;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string sci(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

bool simulated(const std::string& device) { return device.rfind("sim:", 0) == 0; }

std::string bound_of(const std::map<std::string, double>& c) {
  auto it = c.find("bound");
  if (it == c.end()) return "-";
  return it->second >= 0.5 ? "compute" : "memory";
}

}  // namespace

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

DType parse_dtype_flag(const std::string& s, const char* flag) {
  if (s == "fp32") return DType::f32;
  if (auto d = dtype_from_name(s)) return *d;
  throw Error(ErrorCode::InvalidArgument, std::string(flag) + ": unknown dtype '" + s + "'");
}

RunResult execute(const ir::Graph& graph, const RunOptions& opt) {
  if (opt.no_data && opt.check)
    throw Error(ErrorCode::InvalidArgument, "--check needs the data; it cannot be used with --no-data");
  DeviceOptions dopts;
  dopts.timing_only = opt.no_data;
  dopts.trace = !opt.trace_path.empty();
  Device device = Device::open(opt.device, dopts);
  if (opt.no_data && !simulated(opt.device))
    throw Error(ErrorCode::InvalidArgument, "--no-data models time only on simulated devices (sim:*), not " + opt.device);
  // On a terminal, a line on stderr says which phase a long run is in (a large graph on
  // a simulator takes minutes); stdout stays for the table or the JSON.
  Progress progress(opt.device);
  progress.show("compiling");
  CompileOptions copts;
  copts.use_cache = !opt.no_cache;
  Executable exe = compile(graph, device, copts);
  progress.show(opt.no_data ? "allocating inputs" : "uploading random inputs");
  Stream stream = device.create_stream();
  std::vector<Tensor> inputs;
  std::uint64_t seed = opt.seed;
  for (ir::ValueId v : graph.inputs()) {
    const TensorType& t = graph.value(v).type;
    inputs.push_back(opt.no_data ? device.allocate(t) : device.upload(HostTensor::random(t, seed++), stream));
  }
  std::vector<Tensor> outputs = exe.allocate_outputs();

  const int warmup = opt.warmup >= 0 ? opt.warmup : (simulated(opt.device) ? 0 : 1);
  const int repeats = opt.repeats > 0 ? opt.repeats : (simulated(opt.device) ? 1 : 5);
  RunResult r;
  r.device = opt.device;
  r.info = device.info();
  r.repeats = repeats;
  r.cache = exe.cache_stats();
  const auto& kernels = exe.kernels();
  std::vector<std::vector<double>> per_kernel(kernels.size());
  std::vector<double> totals, host;
  progress.set_total(static_cast<std::size_t>(warmup + repeats));
  for (int i = 0; i < warmup + repeats; ++i) {
    progress.step(i < warmup ? "warm-up run" : "timed run");
    if (i == warmup + repeats - 1) device.take_trace();  // the trace covers the last run only
    auto t0 = std::chrono::steady_clock::now();
    exe.run(stream, inputs, outputs);
    stream.synchronize();
    auto t1 = std::chrono::steady_clock::now();
    if (i < warmup) continue;
    std::vector<double> s = exe.last_kernel_seconds(stream);
    double total = 0;
    for (std::size_t k = 0; k < s.size(); ++k) {
      per_kernel[k].push_back(s[k]);
      total += s[k];
    }
    totals.push_back(total);
    host.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  r.device_seconds = median(totals);
  r.host_seconds = median(host);
  std::vector<std::map<std::string, double>> counters = exe.last_kernel_counters(stream);
  std::vector<KernelCheck> checks;
  if (opt.check) {
    progress.set_total(0);
    progress.show("checking " + std::to_string(kernels.size()) + " kernels against the float64 reference");
    checks = exe.check_last_run(stream);
  }
  for (std::size_t k = 0; k < kernels.size(); ++k) {
    KernelRow row{kernels[k], median(per_kernel[k]), counters[k], std::nullopt};
    if (opt.check) {
      row.check = checks[k];
      r.ok = r.ok && checks[k].ok;
    }
    r.kernels.push_back(std::move(row));
  }
  progress.clear();
  if (!opt.trace_path.empty()) {
    std::string trace = device.take_trace();
    if (trace.empty()) {
      std::fprintf(stderr, "anychip: %s does not produce traces; %s not written\n", opt.device.c_str(),
                   opt.trace_path.c_str());
    } else {
      std::ofstream out(opt.trace_path, std::ios::binary | std::ios::trunc);
      if (!(out << trace)) throw Error(ErrorCode::IoError, opt.trace_path + ": cannot write the trace");
    }
  }
  return r;
}

json kernel_json(const KernelRow& k) {
  json j = {{"kernel", k.info.label},
            {"op", k.info.op},
            {"spec", k.info.spec},
            {"device_seconds", k.seconds},
            {"flops", k.info.flops},
            {"tflops", k.seconds > 0 ? k.info.flops / k.seconds / 1e12 : 0.0},
            {"gbps", k.seconds > 0 ? k.info.min_bytes / k.seconds / 1e9 : 0.0},
            {"rel_err", nullptr},
            {"tolerance", nullptr},
            {"ok", nullptr}};
  if (!k.counters.empty()) {
    json c = json::object();
    for (const auto& [name, value] : k.counters) c[name] = value;
    j["counters"] = c;
    if (k.counters.count("cycles")) j["cycles"] = k.counters.at("cycles");
    if (k.counters.count("bound")) j["bound"] = bound_of(k.counters);
  }
  if (k.check) {
    j["rel_err"] = std::isfinite(k.check->rel_err) ? json(k.check->rel_err) : json("inf");
    j["tolerance"] = k.check->tolerance;
    j["ok"] = k.check->ok;
  }
  return j;
}

void print_table(const std::string& title, const RunResult& r) {
  const bool sim = std::any_of(r.kernels.begin(), r.kernels.end(),
                               [](const KernelRow& k) { return k.counters.count("cycles"); });
  std::printf("%s\n", title.c_str());
  std::printf("  %-26s %12s %9s %8s %6s", "kernel", "time (us)", "TFLOP/s", "GB/s", "share");
  if (sim) std::printf(" %12s %8s %7s %7s", "cycles", "bound", "matrix", "vector");
  std::printf(" %10s %10s  %s\n", "rel_err", "tolerance", "check");
  for (const KernelRow& k : r.kernels) {
    double share = r.device_seconds > 0 ? 100.0 * k.seconds / r.device_seconds : 0;
    std::printf("  %-26s %12s %9s %8s %5s%%", k.info.label.c_str(), fixed(k.seconds * 1e6, 1).c_str(),
                fixed(k.seconds > 0 ? k.info.flops / k.seconds / 1e12 : 0, 3).c_str(),
                fixed(k.seconds > 0 ? k.info.min_bytes / k.seconds / 1e9 : 0, 1).c_str(),
                fixed(share, 1).c_str());
    if (sim) {
      auto get = [&](const char* name) { return k.counters.count(name) ? k.counters.at(name) : 0.0; };
      std::printf(" %12.0f %8s %6s%% %6s%%", get("cycles"), bound_of(k.counters).c_str(),
                  fixed(100 * get("util.matrix"), 0).c_str(), fixed(100 * get("util.vector"), 0).c_str());
    }
    std::printf(" %10s %10s  %s\n", k.check ? sci(k.check->rel_err).c_str() : "-",
                k.check ? sci(k.check->tolerance).c_str() : "-",
                k.check ? (k.check->ok ? "ok" : "FAIL") : "-");
  }
  std::printf("  %-26s %12s\n", r.repeats > 1 ? "total (median of repeats)" : "total",
              fixed(r.device_seconds * 1e6, 1).c_str());
}

void print_comparison(const std::vector<RunResult>& runs) {
  if (runs.empty()) return;
  std::printf("\nthe same graph, side by side (device time in us, and what bounds each kernel)\n");
  std::printf("  %-26s", "kernel");
  for (const RunResult& r : runs) std::printf(" %24s", r.device.c_str());
  std::printf("\n");
  for (std::size_t k = 0; k < runs[0].kernels.size(); ++k) {
    std::printf("  %-26s", runs[0].kernels[k].info.label.c_str());
    for (const RunResult& r : runs) {
      const KernelRow& row = r.kernels[k];
      std::string cell = fixed(row.seconds * 1e6, 1);
      std::string b = bound_of(row.counters);
      if (b != "-") cell += " (" + b + ")";
      std::printf(" %24s", cell.c_str());
    }
    std::printf("\n");
  }
  std::printf("  %-26s", "total");
  for (const RunResult& r : runs) std::printf(" %24s", fixed(r.device_seconds * 1e6, 1).c_str());
  std::printf("\n");
  std::printf("  %-26s", "vs first");
  for (const RunResult& r : runs)
    std::printf(" %24s", (fixed(runs[0].device_seconds > 0 ? r.device_seconds / runs[0].device_seconds : 0, 2) + "x").c_str());
  std::printf("\n");
}

}  // namespace anychip::cli
