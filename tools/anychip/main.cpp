// The `anychip` command: devices, run, bench gemm, bench attention.
// It uses the public API (include/anychip) only.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "anychip/anychip.hpp"
#include "tools/anychip/suite.hpp"

using nlohmann::json;
namespace ac = anychip;

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string sci(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

json dtype_list(const std::vector<ac::DType>& ds) {
  json a = json::array();
  for (ac::DType d : ds) a.push_back(std::string(ac::dtype_name(d)));
  return a;
}

// ----- devices -----

int cmd_devices(bool as_json) {
  std::vector<ac::DeviceInfo> devices = ac::list_devices();
  if (as_json) {
    json out = json::array();
    for (const auto& d : devices) {
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
    }
    std::cout << json{{"devices", out}}.dump(2) << "\n";
    return 0;
  }
  for (const auto& d : devices) {
    std::cout << d.id << "\t" << (d.available ? "available" : "unavailable") << "\t" << d.name;
    if (d.available)
      std::cout << " (" << d.arch << ", " << d.compute_units << " units, "
                << fixed(static_cast<double>(d.memory_bytes) / (1 << 30), 1) << " GiB)";
    else
      std::cout << ": " << d.unavailable_reason;
    std::cout << "\n";
  }
  return 0;
}

// ----- running a graph and reporting its kernels -----

struct RunOptions {
  std::string device = "cpu";
  bool check = false;
  bool json = false;
  int warmup = 1;
  int repeats = 5;
  std::uint64_t seed = 1;
  bool no_cache = false;
};

struct KernelRow {
  ac::KernelInfo info;
  double seconds = 0;  // median over repeats
  std::optional<ac::KernelCheck> check;
};

struct RunResult {
  std::vector<KernelRow> kernels;
  double device_seconds = 0;  // median over repeats of the sum over kernels
  double host_seconds = 0;    // median over repeats of run + synchronize, on the host clock
  ac::CacheStats cache;
  bool ok = true;
};

RunResult execute(const ac::ir::Graph& graph, const RunOptions& opt) {
  ac::Device device = ac::Device::open(opt.device);
  ac::CompileOptions copts;
  copts.use_cache = !opt.no_cache;
  ac::Executable exe = ac::compile(graph, device, copts);
  ac::Stream stream = device.create_stream();
  std::vector<ac::Tensor> inputs;
  std::uint64_t seed = opt.seed;
  for (ac::ir::ValueId v : graph.inputs())
    inputs.push_back(device.upload(ac::HostTensor::random(graph.value(v).type, seed++), stream));
  std::vector<ac::Tensor> outputs = exe.allocate_outputs();

  RunResult r;
  r.cache = exe.cache_stats();
  const auto& kernels = exe.kernels();
  std::vector<std::vector<double>> per_kernel(kernels.size());
  std::vector<double> totals, host;
  for (int i = 0; i < opt.warmup + std::max(opt.repeats, 1); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    exe.run(stream, inputs, outputs);
    stream.synchronize();
    auto t1 = std::chrono::steady_clock::now();
    if (i < opt.warmup) continue;
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
  std::vector<ac::KernelCheck> checks;
  if (opt.check) checks = exe.check_last_run(stream);
  for (std::size_t k = 0; k < kernels.size(); ++k) {
    KernelRow row{kernels[k], median(per_kernel[k]), std::nullopt};
    if (opt.check) {
      row.check = checks[k];
      r.ok = r.ok && checks[k].ok;
    }
    r.kernels.push_back(std::move(row));
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
  if (k.check) {
    j["rel_err"] = std::isfinite(k.check->rel_err) ? json(k.check->rel_err) : json("inf");
    j["tolerance"] = k.check->tolerance;
    j["ok"] = k.check->ok;
  }
  return j;
}

void print_table(const std::string& title, const RunResult& r) {
  std::printf("%s\n", title.c_str());
  std::printf("  %-28s %12s %9s %9s %6s %10s %10s  %s\n", "kernel", "time (us)", "TFLOP/s", "GB/s",
              "share", "rel_err", "tolerance", "check");
  for (const KernelRow& k : r.kernels) {
    double share = r.device_seconds > 0 ? 100.0 * k.seconds / r.device_seconds : 0;
    std::printf("  %-28s %12s %9s %9s %5s%% %10s %10s  %s\n", k.info.label.c_str(),
                fixed(k.seconds * 1e6, 1).c_str(),
                fixed(k.seconds > 0 ? k.info.flops / k.seconds / 1e12 : 0, 3).c_str(),
                fixed(k.seconds > 0 ? k.info.min_bytes / k.seconds / 1e9 : 0, 1).c_str(),
                fixed(share, 1).c_str(), k.check ? sci(k.check->rel_err).c_str() : "-",
                k.check ? sci(k.check->tolerance).c_str() : "-",
                k.check ? (k.check->ok ? "ok" : "FAIL") : "-");
  }
  std::printf("  %-28s %12s\n", "total (median of repeats)", fixed(r.device_seconds * 1e6, 1).c_str());
  std::printf("  kernel cache: %zu hits, %zu compiled\n", r.cache.hits, r.cache.misses);
}

int cmd_run(const std::string& file, const RunOptions& opt) {
  ac::ir::Graph graph = ac::ir::parse_file(file);
  RunResult r = execute(graph, opt);
  if (opt.json) {
    json ks = json::array();
    for (const auto& k : r.kernels) ks.push_back(kernel_json(k));
    std::cout << json{{"graph", graph.name()},
                      {"device", opt.device},
                      {"device_seconds", r.device_seconds},
                      {"host_seconds", r.host_seconds},
                      {"kernels", ks},
                      {"ok", opt.check ? json(r.ok) : json(nullptr)}}
                     .dump(2)
              << "\n";
  } else {
    ac::Device device = ac::Device::open(opt.device);
    print_table("graph @" + graph.name() + " on " + opt.device + " (" + device.info().name + ", " +
                    device.info().arch + ")",
                r);
    if (opt.check) std::printf("%s\n", r.ok ? "check: every kernel matches the float64 reference"
                                             : "check: FAILED (see the rows marked FAIL)");
  }
  return r.ok ? 0 : 1;
}

// ----- bench -----

int report_bench(const std::string& op, const json& shape, const ac::ir::Graph& graph, const RunOptions& opt) {
  RunResult r = execute(graph, opt);
  const KernelRow& k = r.kernels.front();
  double flops = k.info.flops;
  if (opt.json) {
    json j = {{"device", opt.device},
              {"op", op},
              {"shape", shape},
              {"device_seconds", r.device_seconds},
              {"host_seconds", r.host_seconds},
              {"tflops", r.device_seconds > 0 ? flops / r.device_seconds / 1e12 : 0.0},
              {"gbps", r.device_seconds > 0 ? k.info.min_bytes / r.device_seconds / 1e9 : 0.0},
              {"repeats", opt.repeats},
              {"spec", k.info.spec},
              {"rel_err", nullptr},
              {"tolerance", nullptr},
              {"ok", nullptr}};
    for (auto& [key, value] : shape.items()) j[key] = value;
    if (k.check) {
      j["rel_err"] = std::isfinite(k.check->rel_err) ? json(k.check->rel_err) : json("inf");
      j["tolerance"] = k.check->tolerance;
      j["ok"] = k.check->ok;
    }
    std::cout << j.dump(2) << "\n";
  } else {
    print_table(op + " " + shape.dump() + " on " + opt.device, r);
  }
  return r.ok ? 0 : 1;
}

ac::DType parse_dtype_flag(const std::string& s, const char* flag) {
  if (s == "fp32") return ac::DType::f32;
  if (auto d = ac::dtype_from_name(s)) return *d;
  throw ac::Error(ac::ErrorCode::InvalidArgument, std::string(flag) + ": unknown dtype '" + s + "'");
}

void add_run_flags(CLI::App* app, RunOptions& opt) {
  app->add_option("--device", opt.device, "device string: cpu, sim:<chip>, opencl:<n>, level_zero:<n>, cuda:<n>");
  app->add_flag("--check", opt.check, "compare every kernel with the float64 reference");
  app->add_flag("--json", opt.json, "print one JSON object");
  app->add_option("--warmup", opt.warmup, "untimed runs first")->check(CLI::NonNegativeNumber);
  app->add_option("--repeats", opt.repeats, "timed runs (the median is reported)")->check(CLI::PositiveNumber);
  app->add_option("--seed", opt.seed, "seed of the random inputs");
  app->add_flag("--no-cache", opt.no_cache, "bypass the on-disk kernel cache");
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
  auto* run = app.add_subcommand("run", "run a .acir graph on random inputs");
  run->add_option("file", run_file, ".acir graph")->required()->check(CLI::ExistingFile);
  add_run_flags(run, run_opt);

  auto* bench = app.add_subcommand("bench", "time one op");
  bench->require_subcommand(1);

  RunOptions gemm_opt;
  std::int64_t m = 0, n = 0, k = 0;
  std::string scale_fmt = "ue8m0", out = "bf16";
  auto* gemm = bench->add_subcommand("gemm", "block-scaled FP8 GEMM D = A B^T");
  gemm->add_option("--m", m, "rows of A and D")->required()->check(CLI::PositiveNumber);
  gemm->add_option("--n", n, "rows of B, columns of D")->required()->check(CLI::PositiveNumber);
  gemm->add_option("--k", k, "reduction length (a multiple of 128)")->required()->check(CLI::PositiveNumber);
  gemm->add_option("--scale-fmt", scale_fmt, "block scales as ue8m0 or fp32")->check(CLI::IsMember({"ue8m0", "fp32", "f32"}));
  gemm->add_option("--out", out, "output dtype")->check(CLI::IsMember({"bf16", "f32", "fp32"}));
  add_run_flags(gemm, gemm_opt);

  RunOptions att_opt;
  std::int64_t batch = 1, heads = 1, kv_heads = 0, seq_q = 0, seq_kv = 0, head_dim = 0, head_dim_v = 0;
  bool causal = false;
  std::string att_dtype = "bf16";
  auto* attention = bench->add_subcommand("attention", "flash attention softmax(Q K^T / sqrt(Dk)) V");
  attention->add_option("--batch", batch)->check(CLI::PositiveNumber);
  attention->add_option("--heads", heads, "query heads")->required()->check(CLI::PositiveNumber);
  attention->add_option("--kv-heads", kv_heads, "key/value heads (default: --heads)")->check(CLI::PositiveNumber);
  attention->add_option("--seq-q", seq_q)->required()->check(CLI::PositiveNumber);
  attention->add_option("--seq-kv", seq_kv)->required()->check(CLI::PositiveNumber);
  attention->add_option("--head-dim", head_dim, "Dk")->required()->check(CLI::PositiveNumber);
  attention->add_option("--head-dim-v", head_dim_v, "Dv (default: Dk)")->check(CLI::PositiveNumber);
  attention->add_flag("--causal", causal, "causal mask, aligned bottom-right");
  attention->add_option("--dtype", att_dtype, "bf16, f16 or f32")->check(CLI::IsMember({"bf16", "f16", "f32"}));
  add_run_flags(attention, att_opt);

  anychip::cli::register_suite_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const ac::Error& e) {
    std::fprintf(stderr, "anychip: error: %s\n", e.what());
    return 1;
  }

  try {
    if (*devices) return cmd_devices(devices_json);
    if (*run) return cmd_run(run_file, run_opt);
    if (*gemm) {
      ac::DType sdt = scale_fmt == "ue8m0" ? ac::DType::ue8m0 : ac::DType::f32;
      ac::DType odt = parse_dtype_flag(out, "--out");
      ac::ir::Graph g("bench_gemm");
      auto a = g.input("a", {ac::DType::f8e4m3, {m, k}, ac::ScaleLayout{ac::kActivationBlock, sdt}});
      auto b = g.input("b", {ac::DType::f8e4m3, {n, k}, ac::ScaleLayout{ac::kWeightBlock, sdt}});
      g.output(g.gemm_fp8(a, b, odt, "d"));
      json shape = {{"m", m}, {"n", n}, {"k", k}, {"scale_fmt", scale_fmt == "ue8m0" ? "ue8m0" : "fp32"},
                    {"out", std::string(ac::dtype_name(odt))}};
      return report_bench("gemm_fp8", shape, g, gemm_opt);
    }
    if (*attention) {
      if (kv_heads == 0) kv_heads = heads;
      if (head_dim_v == 0) head_dim_v = head_dim;
      ac::DType dt = parse_dtype_flag(att_dtype, "--dtype");
      ac::ir::Graph g("bench_attention");
      auto q = g.input("q", {dt, {batch, seq_q, heads, head_dim}, std::nullopt});
      auto kk = g.input("k", {dt, {batch, seq_kv, kv_heads, head_dim}, std::nullopt});
      auto v = g.input("v", {dt, {batch, seq_kv, kv_heads, head_dim_v}, std::nullopt});
      g.output(g.attention(q, kk, v, causal, std::nullopt, "o"));
      json shape = {{"batch", batch}, {"heads", heads}, {"kv_heads", kv_heads}, {"seq_q", seq_q},
                    {"seq_kv", seq_kv}, {"head_dim", head_dim}, {"head_dim_v", head_dim_v},
                    {"causal", causal}, {"dtype", att_dtype}};
      return report_bench("attention", shape, g, att_opt);
    }
  } catch (const ac::Error& e) {
    std::fprintf(stderr, "anychip: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anychip: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
