// The simulator lowerings of the DeepSeek layer's ops beyond the block (rope, slice,
// concat, the MoE routing ops and the grouped FP8 GEMM): each against the float64
// reference on npu-ue8m0, npu-fp32scale and tiny, with the chosen tiles and with small
// tiles that leave tails; every program race-free; the grouped GEMM's padding rows and
// its group errors; timing that behaves as the model says it should.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/ir.hpp"
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

const char* const kPresets[] = {"npu-ue8m0", "npu-fp32scale", "tiny"};

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }

HostTensor i32(Shape s, const std::vector<double>& v) { return HostTensor::encode(plain(DType::i32, std::move(s)), v); }

// A problem with its inputs (index operands valid by construction) and its output type.
struct Case {
  std::string name;
  Problem problem;
  std::vector<HostTensor> inputs;
  TensorType output;
  std::vector<TileConfig> tiles;  // forced tiles, besides the chosen ones
};

std::vector<double> reference_of(const Problem& p, const std::vector<HostTensor>& in, std::int64_t n) {
  std::vector<ConstOperand> ops;
  for (const HostTensor& t : in) ops.push_back({t.data.data(), t.scales.empty() ? nullptr : t.scales.data()});
  std::vector<double> out(static_cast<std::size_t>(n));
  reference::run(p, ops, out.data());
  return out;
}

// DeepSeek's routing on random logits, by the reference: experts [T,k] and plan [3,P].
struct Routing {
  std::int64_t tokens, experts, k, groups, top, align, rows;
  HostTensor logits, bias, chosen, plan;
};

Routing route(std::int64_t tokens, std::int64_t experts, std::int64_t k, std::int64_t groups, std::int64_t top,
              std::int64_t align, std::uint64_t seed) {
  Routing r{tokens, experts, k, groups, top, align, ir::moe_plan_rows(tokens, k, experts, align), {}, {}, {}, {}};
  r.logits = HostTensor::random(plain(DType::f32, {tokens, experts}), seed);
  r.bias = HostTensor::random(plain(DType::f32, {experts}), seed + 1);
  const MoeTopkProblem topk{tokens, experts, k, groups, top};
  r.chosen = i32({tokens, k}, reference_of(topk, {r.logits, r.bias}, tokens * k));
  const MoePlanProblem plan{tokens, k, experts, align, r.rows};
  r.plan = i32({3, r.rows}, reference_of(plan, {r.chosen}, 3 * r.rows));
  return r;
}

HostTensor plan_row(const Routing& r, std::int64_t row) {
  std::vector<double> v(static_cast<std::size_t>(r.rows));
  const std::vector<double> all = r.plan.values();
  for (std::int64_t i = 0; i < r.rows; ++i) v[static_cast<std::size_t>(i)] = all[static_cast<std::size_t>(row * r.rows + i)];
  return i32({r.rows}, v);
}

HostTensor positions(std::int64_t tokens, std::uint64_t seed) {
  std::vector<double> v(static_cast<std::size_t>(tokens));
  for (std::int64_t i = 0; i < tokens; ++i) v[static_cast<std::size_t>(i)] = static_cast<double>((seed * 7 + 5 * i) % 5000);
  return i32({tokens}, v);
}

Case grouped_case(const Routing& r, std::int64_t n, std::int64_t k, DType scale, DType out, std::uint64_t seed,
                  std::vector<TileConfig> tiles) {
  const GemmFp8GroupedProblem p{r.rows, n, k, r.experts, r.align, DType::f8e4m3, DType::f8e4m3, scale, scale, out};
  return {"gemm_fp8_grouped align " + std::to_string(r.align),
          p,
          {HostTensor::random({DType::f8e4m3, {r.rows, k}, ScaleLayout{kActivationBlock, scale}}, seed),
           HostTensor::random({DType::f8e4m3, {r.experts * n, k}, ScaleLayout{kWeightBlock, scale}}, seed + 1),
           plan_row(r, 0)},
          plain(out, {r.rows, n}),
          std::move(tiles)};
}

std::vector<Case> cases(std::uint64_t seed) {
  std::vector<Case> c;
  auto rope = [&](std::int64_t t, std::int64_t h, std::int64_t d, std::int64_t rot, double theta, DType dt,
                  std::vector<TileConfig> tiles) {
    c.push_back({"rope", RopeProblem{t, h, d, rot, theta, dt},
                 {HostTensor::random(plain(dt, {t, h, d}), seed), positions(t, seed)}, plain(dt, {t, h, d}),
                 std::move(tiles)});
  };
  rope(7, 3, 64, 64, 10000, DType::f32, {{2, 3, 0, 2}, {3, 2, 0, 3}});
  rope(5, 16, 192, 64, 10000, DType::bf16, {{1, 5, 0, 2}, {2, 16, 0, 4}});
  rope(13, 2, 40, 24, 50, DType::bf16, {{4, 1, 0, 2}});

  auto slice = [&](Shape x, std::int64_t axis, std::int64_t begin, std::int64_t size, DType d,
                   std::vector<TileConfig> tiles) {
    SliceProblem p{1, x[static_cast<std::size_t>(axis)], 1, begin, size, d};
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (static_cast<std::int64_t>(i) < axis) p.outer *= x[i];
      if (static_cast<std::int64_t>(i) > axis) p.inner *= x[i];
    }
    Shape y = x;
    y[static_cast<std::size_t>(axis)] = size;
    c.push_back({"slice", p, {HostTensor::random(plain(d, x), seed)}, plain(d, y), std::move(tiles)});
  };
  slice({5, 4, 192}, 2, 128, 64, DType::bf16, {{3, 40, 0, 2}});
  slice({4, 10, 6}, 1, 3, 5, DType::f32, {{1, 8, 0, 3}});
  slice({3, 100}, 1, 37, 50, DType::i32, {{2, 64, 0, 2}});

  auto concat = [&](Shape a, Shape b, Shape out, std::int64_t axis, DType d, std::vector<TileConfig> tiles) {
    c.push_back({"concat", ConcatProblem{out, a, b, axis, d},
                 {HostTensor::random(plain(d, a), seed), HostTensor::random(plain(d, b), seed + 1)}, plain(d, out),
                 std::move(tiles)});
  };
  concat({6, 4, 128}, {6, 1, 64}, {6, 4, 192}, 2, DType::bf16, {{3, 96, 0, 2}});
  concat({3, 2, 1}, {1, 3, 6}, {3, 5, 6}, 1, DType::f16, {{2, 4, 0, 3}});
  concat({3, 17}, {5, 17}, {8, 17}, 0, DType::f32, {{1, 16, 0, 2}});

  const Routing deepseek = route(64, 256, 8, 8, 4, 128, seed);
  const Routing odd = route(17, 72, 5, 8, 3, 8, seed + 10);
  for (const Routing* r : {&deepseek, &odd})
    c.push_back({"moe_topk", MoeTopkProblem{r->tokens, r->experts, r->k, r->groups, r->top}, {r->logits, r->bias},
                 plain(DType::i32, {r->tokens, r->k}), {{5, 0, 0, 2}, {16, 0, 0, 3}}});
  c.push_back({"moe_weights", MoeWeightsProblem{64, 256, 8, 2.5}, {deepseek.logits, deepseek.chosen},
               plain(DType::f32, {64, 8}), {{7, 0, 0, 2}}});
  const Routing decode = route(4, 32, 8, 4, 2, 8, seed + 20);
  for (const Routing* r : {&deepseek, &odd, &decode})
    c.push_back({"moe_plan", MoePlanProblem{r->tokens, r->k, r->experts, r->align, r->rows}, {r->chosen},
                 plain(DType::i32, {3, r->rows}), {{37, 0, 0, 2}, {1000, 0, 0, 2}}});

  const Routing gather = route(20, 16, 3, 4, 2, 8, seed + 30);
  for (DType d : {DType::bf16, DType::f32})
    c.push_back({"moe_gather", MoeGatherProblem{20, gather.rows, 130, d},
                 {HostTensor::random(plain(d, {20, 130}), seed), gather.plan}, plain(d, {gather.rows, 130}),
                 {{7, 64, 0, 2}, {16, 130, 0, 3}}});

  const Routing small = route(16, 8, 2, 4, 2, 128, seed + 40);
  c.push_back(grouped_case(small, 256, 256, DType::ue8m0, DType::bf16, seed, {{32, 128, 128, 2}, {64, 256, 128, 3}}));
  c.push_back(grouped_case(small, 256, 384, DType::f32, DType::f32, seed, {{16, 64, 128, 4}}));
  c.push_back(grouped_case(small, 640, 256, DType::ue8m0, DType::bf16, seed, {{16, 512, 128, 2}, {16, 384, 128, 3}}));
  c.push_back(grouped_case(decode, 256, 512, DType::ue8m0, DType::bf16, seed, {{8, 128, 128, 2}, {4, 256, 128, 3}}));

  const Routing combine = route(21, 32, 6, 4, 2, 16, seed + 50);
  for (DType d : {DType::bf16, DType::f32}) {
    HostTensor weights = HostTensor::encode(
        plain(DType::f32, {21, 6}),
        reference_of(MoeWeightsProblem{21, 32, 6, 2.5}, {combine.logits, combine.chosen}, 21 * 6));
    c.push_back({"moe_combine", MoeCombineProblem{21, 6, combine.rows, 300, d},
                 {HostTensor::random(plain(d, {combine.rows, 300}), seed), combine.plan, weights}, plain(d, {21, 300}),
                 {{5, 64, 0, 2}, {8, 300, 0, 3}}});
  }
  return c;
}

// Device memory for one run: inputs, output (poisoned), constants, workspace.
struct Memory {
  std::vector<std::byte> hbm;
  std::vector<std::int64_t> args;
  std::int64_t out = 0;
  std::int64_t place(std::span<const std::byte> bytes, std::int64_t size) {
    const std::int64_t at = (static_cast<std::int64_t>(hbm.size()) + 255) / 256 * 256;
    hbm.resize(static_cast<std::size_t>(at + std::max<std::int64_t>(size, 1)), std::byte{0x7F});
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
  m.out = m.place({}, static_cast<std::int64_t>(out.data_bytes()));
  m.place(sim::constants(), sim::kConstBytes);
  m.place({}, sim::workspace_bytes(spec, chip));
  return m;
}

RunStats run(const KernelSpec& spec, const ChipDesc& chip, Memory& m, bool functional) {
  Simulator simulator(chip);
  RunOptions opt;
  opt.functional = functional;
  RunStats total;
  for (int phase = 0; phase < sim::phase_count(spec, chip); ++phase) {
    const RunStats s = simulator.run(sim::lower(spec, chip, phase), m.args, m.hbm, opt);
    total.cycles += s.cycles, total.hbm_bytes += s.hbm_bytes, total.l2_bytes += s.l2_bytes;
    for (std::size_t p = 0; p < s.busy_cycles.size(); ++p) total.busy_cycles[p] += s.busy_cycles[p];
    total.roofline_cycles += s.roofline_cycles;
  }
  return total;
}

RunStats timing_only(const KernelSpec& spec, const ChipDesc& chip) {
  Memory m;
  m.args.assign(sim::arg_count(spec.problem), 0);
  return run(spec, chip, m, false);
}

void expect_race_free(const KernelSpec& spec, const ChipDesc& chip, std::int64_t limit = 1 << 30) {
  std::vector<std::int64_t> args(sim::arg_count(spec.problem), 0);
  for (std::size_t i = 0; i < args.size(); ++i) args[i] = static_cast<std::int64_t>(i) << 40;
  const auto kernel = sim::lower(spec, chip);
  const std::int64_t step = std::max<std::int64_t>(1, kernel.work_items / limit);
  for (std::int64_t item = 0; item < kernel.work_items; item += step) {
    sim::Program prog;
    kernel.build(item, args, prog);
    ASSERT_EQ(sim::check_program(prog), "") << describe(spec) << " on " << chip.name << ", item " << item;
  }
}

// Runs c with tiles t; returns the output, checked against the reference.
HostTensor expect_matches_reference(const Case& c, const TileConfig& t, const ChipDesc& chip) {
  const KernelSpec spec{c.problem, t};
  SCOPED_TRACE(chip.name + ": " + describe(spec));
  HostTensor out(c.output);
  const std::string why = sim::unsupported(spec, chip);
  EXPECT_EQ(why, "");
  if (!why.empty()) return out;
  expect_race_free(spec, chip);
  Memory m = lay_out(spec, chip, c.inputs, c.output);
  run(spec, chip, m, true);
  std::memcpy(out.data.data(), m.hbm.data() + m.out, out.data.size());
  std::vector<ConstOperand> ops;
  for (const HostTensor& h : c.inputs) ops.push_back({h.data.data(), h.scales.empty() ? nullptr : h.scales.data()});
  const std::vector<double> ref = reference_of(c.problem, c.inputs, c.output.numel());
  EXPECT_LE(reference::mismatch(c.problem, ops, ref, out.values()), reference::tolerance(c.problem));
  return out;
}

TEST(SimMoe, EveryNewOpMatchesTheReferenceWithChosenAndSmallTiles) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const std::vector<Case> all = cases(seed);
  for (const char* preset : kPresets) {
    const ChipDesc chip = hw::load_chip(preset);
    for (const Case& c : all) {
      expect_matches_reference(c, sim::choose_tiles(c.problem, chip), chip);
      for (const TileConfig& t : c.tiles) expect_matches_reference(c, t, chip);
    }
  }
}

// The same kernel and data give the same cycles; a functional run times the real groups,
// a timing-only run the assumed ones.
TEST(SimMoe, GroupedGemmTimingIsDeterministic) {
  const Routing r = route(40, 8, 2, 4, 2, 16, 11);
  const Case c = grouped_case(r, 256, 256, DType::ue8m0, DType::bf16, 11, {});
  const ChipDesc chip = hw::load_chip("npu-ue8m0");
  const KernelSpec spec{c.problem, sim::choose_tiles(c.problem, chip)};
  Memory a = lay_out(spec, chip, c.inputs, c.output), b = lay_out(spec, chip, c.inputs, c.output);
  EXPECT_EQ(run(spec, chip, a, true).cycles, run(spec, chip, b, true).cycles);
  EXPECT_EQ(timing_only(spec, chip).cycles, timing_only(spec, chip).cycles);
}

// Rows of group -1 give 0 from the kernel itself: A holds NaN there (and NaN scales).
TEST(SimMoe, GroupedGemmWritesZeroForPaddingRowsWhateverAHolds) {
  const Routing r = route(16, 8, 2, 4, 2, 32, 7);
  for (const char* preset : {"npu-ue8m0", "npu-fp32scale"}) {
    const ChipDesc chip = hw::load_chip(preset);
    for (DType scale : {DType::ue8m0, DType::f32}) {
      Case c = grouped_case(r, 128, 256, scale, DType::bf16, 9, {});
      const std::vector<double> group = c.inputs[2].values();
      const std::int64_t nk = 256 / 128, ssa = static_cast<std::int64_t>(dtype_size(scale));
      std::int64_t padding = 0;
      for (std::int64_t row = 0; row < r.rows; ++row) {
        if (group[static_cast<std::size_t>(row)] >= 0) continue;
        ++padding;
        std::memset(c.inputs[0].data.data() + row * 256, 0x7F, 256);  // e4m3 NaN
        std::memset(c.inputs[0].scales.data() + row * nk * ssa, 0xFF, static_cast<std::size_t>(nk * ssa));
      }
      ASSERT_GT(padding, 0);
      const HostTensor out = expect_matches_reference(c, sim::choose_tiles(c.problem, chip), chip);
      const std::vector<double> v = out.values();
      for (std::int64_t row = 0; row < r.rows; ++row)
        if (group[static_cast<std::size_t>(row)] < 0) {
          for (std::int64_t col = 0; col < 128; ++col)
            ASSERT_EQ(v[static_cast<std::size_t>(row * 128 + col)], 0.0) << preset << " row " << row << " col " << col;
        }
    }
  }
}

TEST(SimMoe, AGroupOutOfRangeIsReportedByTheSimulatorNamingTheKernel) {
  const Routing r = route(16, 8, 2, 4, 2, 32, 3);
  Case c = grouped_case(r, 128, 128, DType::ue8m0, DType::f32, 3, {});
  std::vector<double> group = c.inputs[2].values();
  group[32] = 8;  // the first row of tile 1: 8 experts are 0..7
  c.inputs[2] = i32({r.rows}, group);
  const ChipDesc chip = hw::load_chip("npu-ue8m0");
  const KernelSpec spec{c.problem, TileConfig{32, 128, 128, 2}};
  Memory m = lay_out(spec, chip, c.inputs, c.output);
  try {
    run(spec, chip, m, true);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("kernel gemm_fp8_grouped: work item"), std::string::npos) << what;
    EXPECT_NE(what.find("gather index 8"), std::string::npos) << what;
    EXPECT_NE(what.find("must be below 8"), std::string::npos) << what;
  }
}

TEST(SimMoe, RejectsGroupedTilesThatWouldMixGroups) {
  const GemmFp8GroupedProblem p{96, 128, 256, 4, 32, DType::f8e4m3, DType::f8e4m3, DType::ue8m0, DType::ue8m0,
                                DType::bf16};
  const ChipDesc chip = hw::load_chip("npu-ue8m0");
  const std::string why = sim::unsupported({p, TileConfig{64, 128, 128, 2}}, chip);
  EXPECT_NE(why.find("tile m=64 does not divide align=32"), std::string::npos) << why;
  EXPECT_EQ(32 % sim::choose_tiles(p, chip).m, 0);
}

TEST(SimMoe, PlanThatDoesNotFitOneScratchpadIsRejectedWithTheReason) {
  const ChipDesc chip = hw::load_chip("tiny");
  const MoePlanProblem p{65536, 8, 256, 128, ir::moe_plan_rows(65536, 8, 256, 128)};
  const std::string why = sim::unsupported({p, sim::choose_tiles(p, chip)}, chip);
  EXPECT_NE(why.find("holds all 524288 choices in one core's scratchpad"), std::string::npos) << why;
}

// G groups of M/G rows cost about what G plain GEMMs of M/G rows cost one after another.
// Against the plain GEMMs with the same tiles, the grouped kernel adds one index read
// per tile (on the critical path of its fill: work items do not overlap) and its tiles
// of one group share B in L2 as the plain ones do: within 15% (measured 0.99-1.07).
// Against the plain GEMMs' own best tiles, also the price of tiles no taller than align
// (128 rows here, where the plain GEMM of 1024 rows may prefer 256): within 30%
// (measured 0.99-1.17).
TEST(SimMoe, GroupedGemmCostsAboutAsMuchAsOnePlainGemmPerGroup) {
  const std::int64_t groups = 4, rows = 1024, n = 2048, k = 1024;
  for (const char* preset : {"npu-ue8m0", "npu-fp32scale", "h800"}) {
    const ChipDesc chip = hw::load_chip(preset);
    const GemmFp8GroupedProblem g{groups * rows, n, k, groups, 128, DType::f8e4m3, DType::f8e4m3, DType::ue8m0,
                                  DType::ue8m0, DType::bf16};
    const GemmFp8Problem plain_gemm{rows, n, k, DType::f8e4m3, DType::f8e4m3, DType::ue8m0, DType::ue8m0, DType::bf16};
    const TileConfig tiles = sim::choose_tiles(g, chip);
    const double grouped = timing_only({g, tiles}, chip).cycles;
    const double same = timing_only({plain_gemm, tiles}, chip).cycles * static_cast<double>(groups);
    const double best = timing_only({plain_gemm, sim::choose_tiles(plain_gemm, chip)}, chip).cycles *
                        static_cast<double>(groups);
    EXPECT_GT(grouped / same, 0.9) << preset;
    EXPECT_LT(grouped / same, 1.15) << preset;
    EXPECT_GT(grouped / best, 0.8) << preset;
    EXPECT_LT(grouped / best, 1.3) << preset;
  }
}

// Decode: one token's 8 experts. The grouped GEMM reads the weights of the experts its
// tiles touch (a timing-only run assumes 8 tiles over 8 experts), so it costs about
// reading 8 experts' weights at the HBM rate, not the 256 experts' the op could address.
TEST(SimMoe, DecodeGroupedGemmReadsOnlyTheExpertsItsTilesTouch) {
  const std::int64_t rows = ir::moe_plan_rows(1, 8, 256, 8);
  for (const char* preset : {"npu-ue8m0", "npu-fp32scale", "h800"}) {
    const ChipDesc chip = hw::load_chip(preset);
    for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{4096, 7168}, {7168, 2048}}) {
      const GemmFp8GroupedProblem p{rows, n, k, 256, 8, DType::f8e4m3, DType::f8e4m3, DType::ue8m0, DType::ue8m0,
                                    DType::bf16};
      const KernelSpec spec{p, sim::choose_tiles(p, chip)};
      const double weights = 8.0 * static_cast<double>(n * k);
      const double floor = weights / (chip.hbm_bytes_per_s / chip.clock_hz);
      const RunStats s = timing_only(spec, chip);
      EXPECT_LT(s.cycles, 2 * floor) << preset << ": " << describe(spec);
      EXPECT_LT(s.hbm_bytes, 1.2 * weights) << preset << ": " << describe(spec);
    }
  }
}

// The routing ops at DeepSeek-V3's prefill size: no matrix work, and within a small
// factor of the larger of moving their bytes once at the HBM rate, a few memory latencies,
// and their vector work spread over the cores. (moe_topk's sigmoid and selection over
// 4096 x 256 logits is vector-bound on the 64-lane NPU, memory-bound on the H800; the
// others are memory- or latency-bound on both.)
TEST(SimMoe, RoutingOpsAreMemoryOrLatencyBound) {
  const std::int64_t t = 4096, e = 256, k = 8, rows = ir::moe_plan_rows(t, k, e, 128);
  const std::vector<Problem> ops = {MoeTopkProblem{t, e, k, 8, 4}, MoeWeightsProblem{t, e, k, 2.5},
                                    MoePlanProblem{t, k, e, 128, rows}, MoeGatherProblem{t, rows, 7168, DType::bf16},
                                    MoeCombineProblem{t, k, rows, 7168, DType::bf16}};
  for (const char* preset : {"npu-ue8m0", "h800"}) {
    const ChipDesc chip = hw::load_chip(preset);
    for (const Problem& p : ops) {
      const KernelSpec spec{p, sim::choose_tiles(p, chip)};
      ASSERT_EQ(sim::unsupported(spec, chip), "") << preset << ": " << describe(spec);
      const RunStats s = timing_only(spec, chip);
      EXPECT_EQ(s.busy_cycles[static_cast<int>(hw::Pipe::Matrix)], 0) << describe(spec);
      const double latency = chip.hbm_latency_ns * 1e-9 * chip.clock_hz;
      const double vector = s.busy_cycles[static_cast<int>(hw::Pipe::Vector)] / static_cast<double>(chip.cores);
      const double floor = std::max({problem_min_bytes(p) / (chip.hbm_bytes_per_s / chip.clock_hz), 4 * latency, vector});
      EXPECT_LT(s.cycles, 3 * floor) << preset << ": " << describe(spec);
    }
  }
}

// Every op at DeepSeek-V3's sizes (prefill 4096 tokens, decode 1) has tiles on every
// preset; the decode programs are race-free (a sample of work items; the prefill ones
// repeat the same steps many more times, which the race check's pairwise test cannot
// afford, and the small cases above cover their patterns with every buffer reused).
std::vector<Problem> deepseek_ops(std::int64_t t) {
  const std::int64_t align = t == 1 ? 8 : 128, rows = ir::moe_plan_rows(t, 8, 256, align);
  const auto grouped = [&](std::int64_t n, std::int64_t k) {
    return GemmFp8GroupedProblem{rows, n, k, 256, align, DType::f8e4m3, DType::f8e4m3, DType::ue8m0, DType::ue8m0,
                                 DType::bf16};
  };
  return {RopeProblem{t, 128, 192, 64, 10000, DType::bf16},
          RopeProblem{t, 1, 64, 64, 10000, DType::bf16},
          SliceProblem{t * 128, 192, 1, 128, 64, DType::bf16},
          ConcatProblem{{t, 128, 192}, {t, 128, 128}, {t, 1, 64}, 2, DType::bf16},
          MoeTopkProblem{t, 256, 8, 8, 4},
          MoeWeightsProblem{t, 256, 8, 2.5},
          MoePlanProblem{t, 8, 256, align, rows},
          MoeGatherProblem{t, rows, 7168, DType::bf16},
          grouped(4096, 7168),
          grouped(7168, 2048),
          MoeCombineProblem{t, 8, rows, 7168, DType::bf16}};
}

// Every op at DeepSeek-V3's sizes (prefill 4096 tokens, decode 1) has tiles on every
// preset; the decode programs are race-free (a sample of work items; the prefill ones
// repeat the same steps many more times, which the race check's pairwise test cannot
// afford, and the small cases above cover their patterns with every buffer reused).
TEST(SimMoe, DeepSeekShapesFitEveryPresetRaceFree) {
  for (const char* preset : {"npu-ue8m0", "npu-fp32scale", "h800", "tiny"}) {
    const ChipDesc chip = hw::load_chip(preset);
    for (std::int64_t t : {4096, 1})
      for (const Problem& p : deepseek_ops(t)) {
        const KernelSpec spec{p, sim::choose_tiles(p, chip)};
        SCOPED_TRACE(std::string(preset) + ": " + describe(spec));
        ASSERT_EQ(sim::unsupported(spec, chip), "");
        if (t == 1) expect_race_free(spec, chip, 6);
      }
  }
}

}  // namespace
}  // namespace anychip::kernels
