// The simulator backend through the public API: the counters, determinism, timing-only
// runs, chip files, traces. Every op against the reference on every sim:* preset is the
// conformance suite's job (tests/conformance/).
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "anychip/anychip.hpp"
#include "anychip/conformance.hpp"

using namespace anychip;
using ir::Graph;
using ir::OpKind;

namespace {

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }
TensorType scaled(std::int64_t r, std::int64_t c, BlockShape b, DType s, DType fp8 = DType::f8e4m3) {
  return {fp8, {r, c}, ScaleLayout{b, s}};
}


CompileOptions no_cache() {
  CompileOptions o;
  o.use_cache = false;
  return o;
}

// A one-op graph of the conformance suite, by case name.
const Graph& conformance_graph(const std::string& name) {
  for (const conformance::Case& c : conformance::cases())
    if (c.name == name) return c.graph;
  throw std::runtime_error("no conformance case " + name);
}

// What one run of a one-op graph measured.
struct Outcome {
  std::vector<KernelCheck> checks;
  std::map<std::string, double> counters;
  double seconds = 0;
};

// Runs g once on fresh random inputs (seed), or on inputs never written (no_data: for
// timing-only devices, where data does not matter), with the outputs poisoned.
Outcome run(const Device& device, const Graph& g, std::uint64_t seed, bool check = true, bool no_data = false) {
  Stream s = device.create_stream();
  Executable exe = compile(g, device, no_cache());
  std::vector<Tensor> in, out;
  for (std::size_t i = 0; i < g.inputs().size(); ++i)
    in.push_back(no_data ? device.allocate(g.value(g.inputs()[i]).type)
                         : device.upload(HostTensor::random(g.value(g.inputs()[i]).type, seed + i), s));
  for (ir::ValueId v : g.outputs())
    out.push_back(no_data ? device.allocate(g.value(v).type) : device.upload(HostTensor::poisoned(g.value(v).type), s));
  exe.run(s, in, out);
  Outcome r;
  if (check) r.checks = exe.check_last_run(s);
  const auto counters = exe.last_kernel_counters(s);
  if (!counters.empty()) r.counters = counters[0];
  const auto seconds = exe.last_kernel_seconds(s);
  for (double x : seconds) r.seconds += x;
  return r;
}

Graph gemm_fp8_graph(std::int64_t m, std::int64_t n, std::int64_t k, DType out, DType scale = DType::ue8m0) {
  Graph g("gemm_fp8");
  g.output(g.gemm_fp8(g.input("a", scaled(m, k, kActivationBlock, scale)),
                      g.input("b", scaled(n, k, kWeightBlock, scale)), out));
  return g;
}

// The case of `anychip bench gemm --device sim:npu-ue8m0 --m 256 --n 384 --k 512 --out f32`.
TEST(SimBackend, Fp8GemmIsExactToFp32SummationAndReportsCycles) {
  Device device = Device::open("sim:npu-ue8m0");
  const Outcome r = run(device, gemm_fp8_graph(256, 384, 512, DType::f32), 7);
  ASSERT_EQ(r.checks.size(), 1u);
  EXPECT_LT(r.checks[0].rel_err, 1e-5);
  const double cycles = r.counters.at("cycles");
  EXPECT_GT(cycles, 0);
  EXPECT_DOUBLE_EQ(r.seconds, cycles / 1.9e9);
  EXPECT_GE(cycles, r.counters.at("roofline_cycles"));
  EXPECT_DOUBLE_EQ(r.counters.at("flops"), 2.0 * 256 * 384 * 512);
  for (const char* c : {"util.dma_in", "util.matrix", "util.vector", "util.dma_out", "hbm_bytes", "l2_bytes",
                        "instructions", "bound"})
    EXPECT_TRUE(r.counters.count(c)) << c;
  EXPECT_GT(r.counters.at("util.matrix"), 0);
  EXPECT_LE(r.counters.at("util.matrix"), 1);
}

TEST(SimBackend, TwoRunsGiveIdenticalCycles) {
  Device device = Device::open("sim:npu-ue8m0");
  for (const Graph& g : {gemm_fp8_graph(256, 384, 512, DType::bf16), conformance_graph("attention/gqa_causal_longer_q_f16")}) {
    const Outcome a = run(device, g, 1, false), b = run(device, g, 2, false);
    EXPECT_EQ(a.counters.at("cycles"), b.counters.at("cycles")) << g.name();
  }
}

TEST(SimBackend, VectorRescalingTakesMoreCyclesThanNativeUe8m0) {
  const Graph g = gemm_fp8_graph(256, 384, 512, DType::bf16);
  const Outcome native = run(Device::open("sim:npu-ue8m0"), g, 3);
  const Outcome rescaled = run(Device::open("sim:npu-fp32scale"), g, 3);
  EXPECT_TRUE(rescaled.checks.at(0).ok) << rescaled.checks.at(0).rel_err;
  EXPECT_GT(rescaled.counters.at("cycles"), native.counters.at("cycles"));
  EXPECT_EQ(native.counters.at("util.vector") > 0, true);  // the bf16 conversion
  EXPECT_GT(rescaled.counters.at("util.vector"), native.counters.at("util.vector"));
}

TEST(SimBackend, TimingOnlyRunsReportTheFunctionalCycles) {
  DeviceOptions timing;
  timing.timing_only = true;
  for (const char* id : {"sim:tiny", "sim:npu-ue8m0"}) {
    Device functional = Device::open(id), modelled = Device::open(id, timing);
    for (const Graph& g : {gemm_fp8_graph(129, 257, 256, DType::bf16), conformance_graph("attention/mha_causal_bf16"),
                           conformance_graph("rmsnorm/bf16")}) {
      const Outcome a = run(functional, g, 5, false), b = run(modelled, g, 5, false);
      EXPECT_EQ(a.counters.at("cycles"), b.counters.at("cycles")) << id << " " << g.name();
      EXPECT_EQ(a.counters.at("hbm_bytes"), b.counters.at("hbm_bytes")) << id << " " << g.name();
    }
  }
}

TEST(SimBackend, TimingOnlyDevicesHandLargeShapesWithoutHostMemory) {
  DeviceOptions timing;
  timing.timing_only = true;
  Device h800 = Device::open("sim:h800", timing);
  // 4096 x 16384 FP8 A and 7168 x 16384 B: 185 MB of operands that are never backed.
  const Outcome r = run(h800, gemm_fp8_graph(4096, 7168, 16384, DType::bf16), 1, false, true);
  EXPECT_GT(r.counters.at("cycles"), 0);
  EXPECT_EQ(r.counters.at("bound"), 1.0);  // compute-bound
}

TEST(SimBackend, ListsEveryPresetAsAvailable) {
  std::vector<std::string> ids;
  for (const DeviceInfo& d : list_devices())
    if (d.backend == "sim") {
      EXPECT_TRUE(d.available) << d.id << ": " << d.unavailable_reason;
      EXPECT_GT(d.compute_units, 0);
      EXPECT_GT(d.memory_bytes, 0u);
      EXPECT_FALSE(d.scale_dtypes.empty());
      ids.push_back(d.id);
    }
  for (const char* preset : {"sim:tiny", "sim:npu-ue8m0", "sim:npu-fp32scale", "sim:h800"})
    EXPECT_NE(std::find(ids.begin(), ids.end(), preset), ids.end()) << preset;
  EXPECT_NE(Device::open("sim:npu-ue8m0").info().arch.find("native UE8M0"), std::string::npos);
}

TEST(SimBackend, DeviceMemoryIsTheChipsHbm) {
  Device tiny = Device::open("sim:tiny");  // 1 GiB of HBM
  {
    Buffer big = tiny.allocate(std::size_t{600} << 20);
    try {
      tiny.allocate(std::size_t{600} << 20);
      FAIL() << "allocated 1.2 GiB on a 1 GiB chip";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::OutOfMemory) << e.what();
    }
  }
  // Freed memory is reused; contents round-trip.
  Buffer b = tiny.allocate(std::size_t{900} << 20);
  Buffer a = tiny.allocate(16);
  Stream s = tiny.create_stream();
  const std::uint64_t x = 0x0123456789abcdefull;
  std::uint64_t y = 0;
  a.write(s, &x, sizeof x);
  a.read(s, &y, sizeof y);
  EXPECT_EQ(x, y);
}

TEST(SimBackend, OpensAChipDescriptionFile) {
  const std::string path = std::string(ANYCHIP_SOURCE_DIR) + "/simulator/presets/tiny.json";
  Device d = Device::open("sim:" + path);
  EXPECT_EQ(d.info().compute_units, 4);
  const Outcome r = run(d, gemm_fp8_graph(37, 130, 384, DType::bf16), 11);
  EXPECT_TRUE(r.checks.at(0).ok);
  EXPECT_THROW(Device::open("sim:/no/such/chip.json"), Error);
}

TEST(SimBackend, TraceParsesAndItsPipeTimesAddUpToTheCounters) {
  DeviceOptions traced;
  traced.trace = true;
  Device device = Device::open("sim:npu-ue8m0", traced);
  for (const Graph& g : {gemm_fp8_graph(256, 384, 512, DType::bf16), conformance_graph("attention/small_f32")}) {
    const Outcome r = run(device, g, 9, false);
    const nlohmann::json trace = nlohmann::json::parse(device.take_trace());
    double busy[4] = {0, 0, 0, 0};
    // Blocked waits are events too (Perfetto shows them); busy time is everything else.
    for (const auto& e : trace.at("traceEvents"))
      if (e.at("ph") == "X" && e.at("name").get<std::string>().rfind("wait", 0) != 0)
        busy[e.at("tid").get<int>()] += e.at("args").at("cycles").get<double>();
    const double pipe_cycles = r.counters.at("cycles") * 32;
    const char* names[] = {"util.dma_in", "util.matrix", "util.vector", "util.dma_out"};
    for (int p = 0; p < 4; ++p)
      EXPECT_NEAR(busy[p], r.counters.at(names[p]) * pipe_cycles, 1e-3 * pipe_cycles + 1) << g.name() << " " << names[p];
    EXPECT_GT(busy[1], 0);
    EXPECT_EQ(device.take_trace().find("\"ph\":\"X\""), std::string::npos);  // taken: cleared
  }
  EXPECT_EQ(Device::open("sim:tiny").take_trace(), "");
}

TEST(SimBackend, EmitPrintsTheTileProgram) {
  Device device = Device::open("sim:npu-ue8m0");
  const std::string text = emit(gemm_fp8_graph(256, 384, 512, DType::f32), device, "source");
  EXPECT_NE(text.find("gemm_fp8 m=256"), std::string::npos) << text;
  EXPECT_NE(text.find("work items"), std::string::npos);
  EXPECT_NE(text.find("mma acc"), std::string::npos);
  EXPECT_NE(text.find("scaled("), std::string::npos);  // native UE8M0
}

TEST(SimBackend, SaysNoToWhatTheChipCannotHold) {
  Device tiny = Device::open("sim:tiny");
  Graph g("big_rows");
  // One row of 64K f32 elements: rmsnorm needs whole rows, twice buffered, in 256 KiB.
  g.output(g.rmsnorm(g.input("x", plain(DType::f32, {2, 65536})), g.input("w", plain(DType::f32, {65536}))));
  try {
    compile(g, tiny, no_cache());
    FAIL() << "compiled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported);
    EXPECT_NE(std::string(e.what()).find("scratchpad"), std::string::npos) << e.what();
  }
}

}  // namespace
