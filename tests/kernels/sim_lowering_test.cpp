// The simulator lowerings (kernels/sim) run directly on the Simulator: every op against
// the float64 reference on every preset, every generated program race-free by the static
// flag check, tiles that fit every preset for the DeepSeek-V3 shapes, and timing runs that
// are deterministic, fast, and show what native UE8M0 scales save.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/tensor.hpp"
#include "kernels/kernel_spec.hpp"
#include "kernels/reference/reference.hpp"
#include "kernels/reference/tolerance.hpp"
#include "kernels/sim/program_check.hpp"
#include "kernels/sim/sim_kernels.hpp"
#include "simulator/engine.hpp"

namespace anychip::kernels {
namespace {

namespace hw = ::anychip::sim;
using ::anychip::sim::ChipDesc;
using ::anychip::sim::RunOptions;
using ::anychip::sim::RunStats;
using ::anychip::sim::Simulator;

const char* const kPresets[] = {"tiny", "npu-ue8m0", "npu-fp32scale", "h800"};

TensorType tensor(DType d, Shape s, std::optional<ScaleLayout> scale = std::nullopt) {
  return {d, std::move(s), scale};
}

// A problem with the types of its inputs and output.
struct Case {
  Problem problem;
  std::vector<TensorType> inputs;
  TensorType output;
};

Case gemm_fp8(std::int64_t m, std::int64_t n, std::int64_t k, DType scale, DType out, DType b = DType::f8e4m3) {
  GemmFp8Problem p{m, n, k, DType::f8e4m3, b, scale, scale, out};
  return {p,
          {tensor(DType::f8e4m3, {m, k}, ScaleLayout{kActivationBlock, scale}),
           tensor(b, {n, k}, ScaleLayout{kWeightBlock, scale})},
          tensor(out, {m, n})};
}

Case attention(std::int64_t b, std::int64_t sq, std::int64_t skv, std::int64_t hq, std::int64_t hkv, std::int64_t dk,
               std::int64_t dv, bool causal, DType d) {
  AttentionProblem p{b, sq, skv, hq, hkv, dk, dv, causal, 1.0 / std::sqrt(static_cast<double>(dk)), d};
  return {p, {tensor(d, {b, sq, hq, dk}), tensor(d, {b, skv, hkv, dk}), tensor(d, {b, skv, hkv, dv})},
          tensor(d, {b, sq, hq, dv})};
}

// Small cases of every op, with shapes that are not multiples of any tile.
std::vector<Case> small_cases() {
  std::vector<Case> c;
  for (DType s : {DType::ue8m0, DType::f32})
    for (DType out : {DType::f32, DType::bf16}) c.push_back(gemm_fp8(37, 130, 384, s, out));
  c.push_back(gemm_fp8(129, 257, 256, DType::ue8m0, DType::bf16, DType::f8e5m2));
  c.push_back(gemm_fp8(1, 7, 128, DType::ue8m0, DType::f32));
  for (DType d : {DType::f32, DType::bf16})
    c.push_back({GemmProblem{19, 70, 70, d, d}, {tensor(d, {19, 70}), tensor(d, {70, 70})}, tensor(d, {19, 70})});
  c.push_back(attention(2, 17, 40, 4, 4, 64, 64, true, DType::bf16));
  c.push_back(attention(1, 45, 30, 8, 2, 32, 48, true, DType::f16));
  c.push_back(attention(1, 1, 1000, 16, 1, 576, 512, false, DType::bf16));
  c.push_back(attention(1, 1, 300, 8, 1, 64, 40, true, DType::bf16));
  c.push_back(attention(1, 9, 9, 2, 1, 24, 24, false, DType::f32));
  for (DType d : {DType::bf16, DType::f32})
    c.push_back({RmsNormProblem{15, 333, 1e-6, d, DType::f32}, {tensor(d, {15, 333}), tensor(DType::f32, {333})},
                 tensor(d, {15, 333})});
  c.push_back({RmsNormProblem{5, 200, 1e-5, DType::bf16, DType::bf16},
               {tensor(DType::bf16, {5, 200}), tensor(DType::bf16, {200})}, tensor(DType::bf16, {5, 200})});
  c.push_back({SiluMulProblem{7, 173, DType::bf16}, {tensor(DType::bf16, {7, 346})}, tensor(DType::bf16, {7, 173})});
  c.push_back({AddProblem{2997, DType::f16}, {tensor(DType::f16, {2997}), tensor(DType::f16, {2997})},
               tensor(DType::f16, {2997})});
  for (BlockShape blk : {kActivationBlock, kWeightBlock})
    for (DType s : {DType::ue8m0, DType::f32})
      c.push_back({QuantizeProblem{130, 300, DType::bf16, DType::f8e4m3, blk, s}, {tensor(DType::bf16, {130, 300})},
                   tensor(DType::f8e4m3, {130, 300}, ScaleLayout{blk, s})});
  for (DType out : {DType::f32, DType::bf16})
    c.push_back({DequantizeProblem{70, 260, DType::f8e4m3, kWeightBlock, DType::ue8m0, out},
                 {tensor(DType::f8e4m3, {70, 260}, ScaleLayout{kWeightBlock, DType::ue8m0})}, tensor(out, {70, 260})});
  return c;
}

// Device memory laid out for one run: inputs, output (poisoned), constants, workspace.
struct Memory {
  std::vector<std::byte> hbm;
  std::vector<std::int64_t> args;
  std::int64_t out_data = 0, out_scales = -1;

  std::int64_t place(std::span<const std::byte> bytes, std::int64_t size) {
    const std::int64_t at = (static_cast<std::int64_t>(hbm.size()) + 255) / 256 * 256;
    hbm.resize(static_cast<std::size_t>(at + std::max<std::int64_t>(size, 1)), std::byte{0xFF});
    if (!bytes.empty()) std::memcpy(hbm.data() + at, bytes.data(), bytes.size());
    args.push_back(at);
    return at;
  }
};

Memory lay_out(const KernelSpec& spec, const ChipDesc& chip, const std::vector<HostTensor>& in, const TensorType& out) {
  Memory m;
  for (const HostTensor& t : in) {
    m.place(t.data, static_cast<std::int64_t>(t.data.size()));
    if (!t.scales.empty()) m.place(t.scales, static_cast<std::int64_t>(t.scales.size()));
  }
  m.out_data = m.place({}, static_cast<std::int64_t>(out.data_bytes()));
  if (out.scale) m.out_scales = m.place({}, static_cast<std::int64_t>(out.scale_bytes()));
  m.place(sim::constants(), sim::kConstBytes);
  m.place({}, sim::workspace_bytes(spec, chip));
  return m;
}

// Runs every phase of spec; returns the summed cycles.
double run(const KernelSpec& spec, const ChipDesc& chip, Memory& m, bool functional) {
  Simulator simulator(chip);
  double cycles = 0;
  RunOptions opt;
  opt.functional = functional;
  for (int phase = 0; phase < sim::phase_count(spec, chip); ++phase)
    cycles += simulator.run(sim::lower(spec, chip, phase), m.args, m.hbm, opt).cycles;
  return cycles;
}

// Every work item's program (at most `limit`, spread over the range) passes check_program.
void expect_race_free(const KernelSpec& spec, const ChipDesc& chip, std::int64_t limit = 1 << 30) {
  std::vector<std::int64_t> args(sim::arg_count(spec.problem), 0);
  for (std::size_t i = 0; i < args.size(); ++i) args[i] = static_cast<std::int64_t>(i) << 40;
  for (int phase = 0; phase < sim::phase_count(spec, chip); ++phase) {
    const auto kernel = sim::lower(spec, chip, phase);
    const std::int64_t step = std::max<std::int64_t>(1, kernel.work_items / limit);
    for (std::int64_t item = 0; item < kernel.work_items; item += step) {
      sim::Program prog;
      kernel.build(item, args, prog);
      const std::string why = sim::check_program(prog);
      ASSERT_EQ(why, "") << describe(spec) << " on " << chip.name << ", phase " << phase << ", item " << item;
    }
  }
}

TEST(SimLowering, EveryOpMatchesTheReferenceOnEveryPreset) {
  std::mt19937_64 seeds(std::random_device{}());
  for (const char* preset : kPresets) {
    const ChipDesc chip = hw::load_chip(preset);
    for (const Case& c : small_cases()) {
      const KernelSpec spec{c.problem, sim::choose_tiles(c.problem, chip)};
      const std::uint64_t seed = seeds();
      SCOPED_TRACE(std::string(preset) + ": " + describe(spec) + " seed " + std::to_string(seed));
      ASSERT_EQ(sim::unsupported(spec, chip), "");
      std::vector<HostTensor> in;
      for (std::size_t i = 0; i < c.inputs.size(); ++i) in.push_back(HostTensor::random(c.inputs[i], seed + i));
      Memory m = lay_out(spec, chip, in, c.output);
      run(spec, chip, m, true);
      HostTensor out(c.output);
      std::memcpy(out.data.data(), m.hbm.data() + m.out_data, out.data.size());
      if (m.out_scales >= 0) std::memcpy(out.scales.data(), m.hbm.data() + m.out_scales, out.scales.size());
      std::vector<ConstOperand> ops;
      for (const HostTensor& t : in) ops.push_back({t.data.data(), t.scales.empty() ? nullptr : t.scales.data()});
      std::vector<double> ref(static_cast<std::size_t>(c.output.numel()));
      reference::run(c.problem, ops, ref.data());
      EXPECT_LE(rel_err(out.values(), ref), reference::tolerance(c.problem));
    }
  }
}

// Runs c with tiles t on chip and compares with the reference (and race-checks it).
void expect_matches_reference(const Case& c, const TileConfig& t, const ChipDesc& chip, std::uint64_t seed) {
  const KernelSpec spec{c.problem, t};
  SCOPED_TRACE(chip.name + ": " + describe(spec) + " seed " + std::to_string(seed));
  ASSERT_EQ(sim::unsupported(spec, chip), "");
  expect_race_free(spec, chip);
  std::vector<HostTensor> in;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) in.push_back(HostTensor::random(c.inputs[i], seed + i));
  Memory m = lay_out(spec, chip, in, c.output);
  run(spec, chip, m, true);
  HostTensor out(c.output);
  std::memcpy(out.data.data(), m.hbm.data() + m.out_data, out.data.size());
  if (m.out_scales >= 0) std::memcpy(out.scales.data(), m.hbm.data() + m.out_scales, out.scales.size());
  std::vector<ConstOperand> ops;
  for (const HostTensor& h : in) ops.push_back({h.data.data(), h.scales.empty() ? nullptr : h.scales.data()});
  std::vector<double> ref(static_cast<std::size_t>(c.output.numel()));
  reference::run(c.problem, ops, ref.data());
  EXPECT_LE(rel_err(out.values(), ref), reference::tolerance(c.problem));
}

// Every pipeline depth, 128-column chunks of wide tiles, both scale paths, both outputs.
TEST(SimLowering, GemmsMatchTheReferenceWithEveryPipelineDepth) {
  std::mt19937_64 seeds(std::random_device{}());
  for (const char* preset : {"npu-ue8m0", "npu-fp32scale"}) {
    const ChipDesc chip = hw::load_chip(preset);
    for (int stages = 2; stages <= 4; ++stages)
      for (TileConfig t : {TileConfig{64, 256, 128, stages}, TileConfig{32, 64, 128, stages}})
        for (auto [scale, out] : {std::pair{DType::ue8m0, DType::bf16}, std::pair{DType::f32, DType::f32}})
          expect_matches_reference(gemm_fp8(40, 300, 640, scale, out), t, chip, seeds());
    for (int stages = 2; stages <= 4; ++stages)
      expect_matches_reference({GemmProblem{45, 77, 300, DType::bf16, DType::bf16},
                                {tensor(DType::bf16, {45, 300}), tensor(DType::bf16, {77, 300})},
                                tensor(DType::bf16, {45, 77})},
                               TileConfig{32, 64, 64, stages}, chip, seeds());
  }
}

// The streaming ops with every pipeline depth, on enough steps to reuse every buffer set.
TEST(SimLowering, StreamingOpsMatchTheReferenceWithEveryPipelineDepth) {
  std::mt19937_64 seeds(std::random_device{}());
  const ChipDesc chip = hw::load_chip("tiny");
  for (int stages = 2; stages <= 4; ++stages) {
    expect_matches_reference({RmsNormProblem{40, 333, 1e-6, DType::bf16, DType::f32},
                              {tensor(DType::bf16, {40, 333}), tensor(DType::f32, {333})}, tensor(DType::bf16, {40, 333})},
                             TileConfig{2, 333, 0, stages}, chip, seeds());
    expect_matches_reference({SiluMulProblem{30, 173, DType::bf16}, {tensor(DType::bf16, {30, 346})},
                              tensor(DType::bf16, {30, 173})},
                             TileConfig{4, 64, 0, stages}, chip, seeds());
    expect_matches_reference({AddProblem{2997, DType::f16}, {tensor(DType::f16, {2997}), tensor(DType::f16, {2997})},
                              tensor(DType::f16, {2997})},
                             TileConfig{1, 256, 0, stages}, chip, seeds());
    expect_matches_reference({QuantizeProblem{130, 300, DType::bf16, DType::f8e4m3, kActivationBlock, DType::ue8m0},
                              {tensor(DType::bf16, {130, 300})},
                              tensor(DType::f8e4m3, {130, 300}, ScaleLayout{kActivationBlock, DType::ue8m0})},
                             TileConfig{8, 128, 0, stages}, chip, seeds());
    expect_matches_reference({DequantizeProblem{300, 260, DType::f8e4m3, kWeightBlock, DType::f32, DType::bf16},
                              {tensor(DType::f8e4m3, {300, 260}, ScaleLayout{kWeightBlock, DType::f32})},
                              tensor(DType::bf16, {300, 260})},
                             TileConfig{128, 128, 0, stages}, chip, seeds());
  }
}

// Attention with deeper K/V pipelines, causal masks cutting tiles, head packing both ways,
// and KV splits combined in column blocks.
TEST(SimLowering, AttentionMatchesTheReferenceWithEveryPipelineDepthAndSplit) {
  std::mt19937_64 seeds(std::random_device{}());
  const ChipDesc chip = hw::load_chip("npu-ue8m0");
  for (int stages = 2; stages <= 4; ++stages) {
    expect_matches_reference(attention(1, 50, 70, 4, 2, 32, 48, true, DType::f16), TileConfig{16, 16, 2, stages},
                             chip, seeds());
    expect_matches_reference(attention(1, 3, 90, 8, 1, 40, 24, false, DType::f32), TileConfig{2, 16, 8, stages},
                             chip, seeds());
    const Case split = attention(2, 1, 700, 8, 2, 64, 80, false, DType::bf16);
    const TileConfig t{1, 32, 4, stages};
    ASSERT_EQ(sim::phase_count({split.problem, t}, chip), 2);
    EXPECT_GT(sim::lower({split.problem, t}, chip, 1).work_items, 4);  // column blocks
    expect_matches_reference(split, t, chip, seeds());
  }
}

TEST(SimLowering, EveryProgramIsRaceFree) {
  for (const char* preset : kPresets) {
    const ChipDesc chip = hw::load_chip(preset);
    for (const Case& c : small_cases()) expect_race_free({c.problem, sim::choose_tiles(c.problem, chip)}, chip);
    // Large shapes: a sample of work items.
    expect_race_free({gemm_fp8(4096, 7168, 2048, DType::ue8m0, DType::bf16).problem,
                      sim::choose_tiles(gemm_fp8(4096, 7168, 2048, DType::ue8m0, DType::bf16).problem, chip)},
                     chip, 8);
    const Case mla = attention(1, 1, 4096, 128, 1, 576, 512, false, DType::bf16);
    expect_race_free({mla.problem, sim::choose_tiles(mla.problem, chip)}, chip, 8);
  }
}

// The DeepSeek-V3 GEMMs (N x K of the dense and MoE layers, M = decode to prefill).
std::vector<KernelSpec> deepseek_gemms(const ChipDesc& chip) {
  std::vector<KernelSpec> specs;
  const std::int64_t nk[][2] = {{2112, 7168}, {24576, 1536}, {7168, 16384}, {4096, 7168}, {7168, 2048}};
  for (std::int64_t m : {64, 128, 4096})
    for (const auto& [n, k] : nk) {
      const Problem p = gemm_fp8(m, n, k, DType::ue8m0, DType::bf16).problem;
      specs.push_back({p, sim::choose_tiles(p, chip)});
    }
  return specs;
}

// The check itself: dropping any one wait of a double-buffered program makes it racy (or
// leaves a flag unbalanced).
TEST(SimLowering, RaceCheckCatchesEveryDroppedWait) {
  const ChipDesc chip = hw::load_chip("npu-fp32scale");
  for (const Case& c : {gemm_fp8(64, 128, 768, DType::ue8m0, DType::bf16), attention(1, 40, 300, 4, 1, 64, 64, true, DType::bf16)}) {
    const KernelSpec spec{c.problem, sim::choose_tiles(c.problem, chip)};
    std::vector<std::int64_t> args(sim::arg_count(spec.problem), 0);
    for (std::size_t i = 0; i < args.size(); ++i) args[i] = static_cast<std::int64_t>(i) << 40;
    sim::Program prog;
    sim::lower(spec, chip).build(0, args, prog);
    ASSERT_EQ(sim::check_program(prog), "");
    int waits = 0;
    for (std::size_t i = 0; i < prog.instrs.size(); ++i) {
      if (!std::holds_alternative<::anychip::sim::Wait>(prog.instrs[i])) continue;
      ++waits;
      sim::Program broken = prog;
      broken.instrs.erase(broken.instrs.begin() + static_cast<std::ptrdiff_t>(i));
      EXPECT_NE(sim::check_program(broken), "") << describe(spec) << ": without instruction " << i;
    }
    EXPECT_GT(waits, 10);
  }
}

TEST(SimLowering, DeepSeekGemmTilesFitEveryPreset) {
  for (const char* preset : kPresets) {
    const ChipDesc chip = hw::load_chip(preset);
    for (const KernelSpec& spec : deepseek_gemms(chip)) {
      SCOPED_TRACE(std::string(preset) + ": " + describe(spec));
      EXPECT_EQ(sim::unsupported(spec, chip), "");
      const sim::Footprint f = sim::footprint(spec, chip);
      EXPECT_LE(f.scratchpad_bytes, chip.core.scratchpad_bytes);
      EXPECT_LE(f.accumulator_bytes, chip.core.accumulator_bytes);
      EXPECT_GT(f.scratchpad_bytes, 0);
    }
  }
}

TEST(SimLowering, MlaDecodeAttentionTilesFitEveryPreset) {
  const Case mla = attention(1, 1, 4096, 128, 1, 576, 512, false, DType::bf16);
  for (const char* preset : kPresets) {
    const ChipDesc chip = hw::load_chip(preset);
    const KernelSpec spec{mla.problem, sim::choose_tiles(mla.problem, chip)};
    SCOPED_TRACE(std::string(preset) + ": " + describe(spec));
    EXPECT_EQ(sim::unsupported(spec, chip), "");
    const sim::Footprint f = sim::footprint(spec, chip);
    EXPECT_LE(f.scratchpad_bytes, chip.core.scratchpad_bytes);
    EXPECT_LE(f.accumulator_bytes, chip.core.accumulator_bytes);
  }
}

TEST(SimLowering, DeepSeekShapesValidateInTheSimulator) {
  for (const char* preset : kPresets) {
    const ChipDesc chip = hw::load_chip(preset);
    std::vector<KernelSpec> specs = deepseek_gemms(chip);
    const Case mla = attention(1, 1, 4096, 128, 1, 576, 512, false, DType::bf16);
    specs.push_back({mla.problem, sim::choose_tiles(mla.problem, chip)});
    for (const KernelSpec& spec : specs) {
      if (std::get_if<GemmFp8Problem>(&spec.problem) && std::get<GemmFp8Problem>(spec.problem).m == 4096 &&
          chip.cores < 32)
        continue;  // tiny: the big prefill GEMMs take too long to time in a unit test
      Memory m;
      m.args.assign(sim::arg_count(spec.problem), 0);
      EXPECT_GT(run(spec, chip, m, false), 0) << preset << ": " << describe(spec);
    }
  }
}

TEST(SimLowering, TimingOnlyLargeFp8GemmOnH800TakesUnderFiveSeconds) {
  const ChipDesc chip = hw::load_chip("h800");
  const Problem p = gemm_fp8(4096, 7168, 16384, DType::ue8m0, DType::bf16).problem;
  const KernelSpec spec{p, sim::choose_tiles(p, chip)};
  Memory m;
  m.args.assign(sim::arg_count(p), 0);
  const auto start = std::chrono::steady_clock::now();
  const double cycles = run(spec, chip, m, false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 5.0);
  // Never faster than the FP8 peak.
  EXPECT_GE(cycles, problem_flops(p) / (chip.core.matrix.fp8_flops_per_cycle * static_cast<double>(chip.cores)));
}

TEST(SimLowering, TimingIsDeterministic) {
  const ChipDesc chip = hw::load_chip("npu-ue8m0");
  for (const Case& c : small_cases()) {
    const KernelSpec spec{c.problem, sim::choose_tiles(c.problem, chip)};
    Memory a, b;
    a.args.assign(sim::arg_count(c.problem), 0);
    b.args = a.args;
    EXPECT_EQ(run(spec, chip, a, false), run(spec, chip, b, false)) << describe(spec);
  }
}

TEST(SimLowering, NativeUe8m0ScalesTakeFewerCyclesThanVectorRescaling) {
  const ChipDesc native = hw::load_chip("npu-ue8m0"), rescale = hw::load_chip("npu-fp32scale");
  const Problem p = gemm_fp8(256, 384, 512, DType::ue8m0, DType::f32).problem;
  Memory m;
  m.args.assign(sim::arg_count(p), 0);
  const double a = run({p, sim::choose_tiles(p, native)}, native, m, false);
  const double b = run({p, sim::choose_tiles(p, rescale)}, rescale, m, false);
  EXPECT_LT(a, b);
}

TEST(SimLowering, LargeGemmsUseEveryCore) {
  for (const char* preset : kPresets) {
    const ChipDesc chip = hw::load_chip(preset);
    const Problem p = gemm_fp8(4096, 7168, 2048, DType::ue8m0, DType::bf16).problem;
    EXPECT_GE(sim::lower({p, sim::choose_tiles(p, chip)}, chip).work_items, chip.cores) << preset;
  }
}

TEST(SimLowering, SplitsDecodeAttentionAcrossTheCores) {
  const ChipDesc chip = hw::load_chip("h800");
  const Case mla = attention(1, 1, 4096, 128, 1, 576, 512, false, DType::bf16);
  const KernelSpec spec{mla.problem, sim::choose_tiles(mla.problem, chip)};
  EXPECT_EQ(sim::phase_count(spec, chip), 2);
  EXPECT_GE(sim::lower(spec, chip, 0).work_items, chip.cores / 2);
}

TEST(SimLowering, RejectsTilesThatDoNotFitNamingTheScratchpad) {
  const ChipDesc chip = hw::load_chip("tiny");
  const Problem p = gemm_fp8(1024, 1024, 1024, DType::ue8m0, DType::bf16).problem;
  const KernelSpec spec{p, TileConfig{1024, 1024, 128, 2}};
  EXPECT_NE(sim::unsupported(spec, chip).find("scratchpad"), std::string::npos) << sim::unsupported(spec, chip);
  EXPECT_THROW(sim::lower(spec, chip), Error);
}

TEST(SimLowering, RejectsKNotMultipleOf128) {
  const ChipDesc chip = hw::load_chip("tiny");
  const Problem p = GemmFp8Problem{64, 64, 200, DType::f8e4m3, DType::f8e4m3, DType::ue8m0, DType::ue8m0, DType::bf16};
  EXPECT_NE(sim::unsupported({p, sim::choose_tiles(p, chip)}, chip).find("K=200"), std::string::npos);
}

}  // namespace
}  // namespace anychip::kernels
