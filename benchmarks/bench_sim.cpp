// The simulator's own speed: how fast it models time, and what functional simulation
// costs against the CPU backend running the same op (the peer, in the same run).
//
//   bench_sim [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anychip/anychip.hpp"

using namespace anychip;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

ir::Graph gemm_graph(std::int64_t m, std::int64_t n, std::int64_t k) {
  ir::Graph g("gemm");
  auto a = g.input("a", {DType::f8e4m3, {m, k}, ScaleLayout{kActivationBlock, DType::ue8m0}});
  auto b = g.input("b", {DType::f8e4m3, {n, k}, ScaleLayout{kWeightBlock, DType::ue8m0}});
  g.output(g.gemm_fp8(a, b, DType::bf16, "d"));
  return g;
}

ir::Graph attention_graph(std::int64_t s, std::int64_t hq, std::int64_t hkv, std::int64_t d) {
  ir::Graph g("attention");
  auto q = g.input("q", {DType::bf16, {1, s, hq, d}, std::nullopt});
  auto k = g.input("k", {DType::bf16, {1, s, hkv, d}, std::nullopt});
  auto v = g.input("v", {DType::bf16, {1, s, hkv, d}, std::nullopt});
  g.output(g.attention(q, k, v, true, std::nullopt, "o"));
  return g;
}

struct Timed {
  double host_seconds = 0;  // median of the timed runs (run + synchronize)
  double cycles = 0;
  double instructions = 0;
};

Timed time_graph(const ir::Graph& g, const std::string& device_id, bool timing_only, int repeats) {
  DeviceOptions o;
  o.timing_only = timing_only;
  Device dev = Device::open(device_id, o);
  CompileOptions copts;
  copts.use_cache = false;
  Executable exe = compile(g, dev, copts);
  Stream s = dev.create_stream();
  std::vector<Tensor> in;
  std::uint64_t seed = 7;
  for (ir::ValueId v : g.inputs())
    in.push_back(timing_only ? dev.allocate(g.value(v).type) : dev.upload(HostTensor::random(g.value(v).type, seed++), s));
  std::vector<Tensor> out = exe.allocate_outputs();
  exe.run(s, in, out);  // warm-up (page faults, thread pool)
  s.synchronize();
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    exe.run(s, in, out);
    s.synchronize();
    times.push_back(seconds_since(t0));
  }
  std::sort(times.begin(), times.end());
  Timed t;
  t.host_seconds = times[times.size() / 2];
  auto counters = exe.last_kernel_counters(s);
  for (const auto& c : counters) {
    if (c.count("cycles")) t.cycles += c.at("cycles");
    if (c.count("instructions")) t.instructions += c.at("instructions");
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const bool as_json = argc > 1 && std::strcmp(argv[1], "--json") == 0;
  nlohmann::json out = {{"timing_only", nlohmann::json::array()}, {"functional", nlohmann::json::array()}};

  // 1. Timing only: DeepSeek-V3 o_proj-sized GEMMs (the target: under 1 s of host time on h800).
  if (!as_json) std::printf("timing-only simulation (host time of one run, median of 3)\n");
  for (const char* chip : {"sim:h800", "sim:npu-ue8m0"}) {
    Timed t = time_graph(gemm_graph(4096, 7168, 16384), chip, true, 3);
    const double cps = t.cycles / t.host_seconds, ips = t.instructions / t.host_seconds;
    if (!as_json)
      std::printf("  gemm_fp8 4096x7168x16384 on %-14s %7.3f s host  %10.0f cycles  %6.2f M cycles/s  %6.2f M instr/s  (target < 1 s: %.2fx of it)\n",
                  chip, t.host_seconds, t.cycles, cps / 1e6, ips / 1e6, t.host_seconds / 1.0);
    out["timing_only"].push_back({{"device", chip}, {"shape", "4096x7168x16384"}, {"host_seconds", t.host_seconds},
                                  {"cycles", t.cycles}, {"cycles_per_host_second", cps},
                                  {"instructions_per_host_second", ips}});
  }

  // 2. Functional simulation against the CPU backend on the same op and inputs' shapes.
  if (!as_json) std::printf("functional simulation vs the cpu backend (host seconds, median of 3)\n");
  struct Case { std::string name; ir::Graph graph; };
  std::vector<Case> cases;
  cases.push_back({"gemm_fp8 1024x1024x1024", gemm_graph(1024, 1024, 1024)});
  cases.push_back({"gemm_fp8 2048x2112x7168", gemm_graph(2048, 2112, 7168)});
  cases.push_back({"attention causal 1024 tok, 16/4 heads, d128", attention_graph(1024, 16, 4, 128)});
  for (const Case& c : cases) {
    Timed sim = time_graph(c.graph, "sim:npu-ue8m0", false, 3);
    Timed cpu = time_graph(c.graph, "cpu", false, 3);
    if (!as_json)
      std::printf("  %-44s sim:npu-ue8m0 %8.3f s   cpu %8.3f s   ratio %5.1fx\n", c.name.c_str(), sim.host_seconds,
                  cpu.host_seconds, sim.host_seconds / cpu.host_seconds);
    out["functional"].push_back({{"op", c.name}, {"sim_host_seconds", sim.host_seconds},
                                 {"cpu_host_seconds", cpu.host_seconds},
                                 {"ratio", sim.host_seconds / cpu.host_seconds}});
  }
  if (as_json) std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
