// The CPU kernels of the DeepSeek layer's plumbing and MoE ops (rope, slice, concat,
// moe_topk, moe_weights, moe_plan, moe_gather, gemm_fp8_grouped, moe_combine) against the
// float64 reference, on fresh random inputs with index operands made valid the way the
// layer makes them (experts by moe_topk, plans by moe_plan). Outputs are poisoned first:
// NaN bytes for floats; for i32, whose all-ones poison reads as the padding value -1,
// with 0x7F bytes as well, so an unwritten entry fails either way.
#include "kernels/cpu/cpu_kernels.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/ir.hpp"
#include "anychip/tensor.hpp"
#include "kernels/kernel_spec.hpp"
#include "kernels/reference/reference.hpp"
#include "kernels/reference/tolerance.hpp"

namespace anychip::kernels {
namespace {

constexpr DType kFloatDTypes[] = {DType::f32, DType::bf16, DType::f16};

TensorType tensor(DType d, Shape shape, std::optional<ScaleLayout> scale = std::nullopt) {
  return {d, std::move(shape), scale};
}

ConstOperand operand(const HostTensor& t) { return {t.data.data(), t.scales.empty() ? nullptr : t.scales.data()}; }

std::uint64_t seed_of(const Problem& p) { return std::hash<std::string>{}(describe(KernelSpec{p, {}})); }

HostTensor filled(const TensorType& t, unsigned char byte) {
  HostTensor h(t);
  std::memset(h.data.data(), byte, h.data.size());
  std::memset(h.scales.data(), byte, h.scales.size());
  return h;
}

HostTensor i32_tensor(Shape shape, const std::vector<double>& v) { return HostTensor::encode(tensor(DType::i32, shape), v); }

// Runs p on the CPU (into each poison in turn) and in the reference; checks
// mismatch <= tolerance(p). Returns the CPU output and the figure.
struct Outcome {
  HostTensor out;
  double err = 0;
};
Outcome check(const Problem& p, const std::vector<HostTensor>& inputs, const TensorType& out_type) {
  std::vector<ConstOperand> in;
  for (const HostTensor& t : inputs) in.push_back(operand(t));
  std::vector<double> ref(static_cast<std::size_t>(out_type.numel()));
  reference::run(p, in, ref.data());
  Outcome o;
  for (unsigned char poison : {0xFF, 0x7F}) {
    if (poison == 0x7F && out_type.dtype != DType::i32) break;
    HostTensor out = filled(out_type, poison);
    cpu::run(p, in, {out.data.data(), out.scales.empty() ? nullptr : out.scales.data()});
    const double err = reference::mismatch(p, in, ref, out.values());
    EXPECT_LE(err, reference::tolerance(p)) << describe(KernelSpec{p, {}}) << " poison " << int(poison);
    o = {std::move(out), std::max(o.err, err)};
  }
  return o;
}

// ---- rope -------------------------------------------------------------------------------

HostTensor positions(std::int64_t tokens, std::int64_t first, std::int64_t step) {
  std::vector<double> v(static_cast<std::size_t>(tokens));
  for (std::int64_t t = 0; t < tokens; ++t) v[static_cast<std::size_t>(t)] = static_cast<double>(first + t * step);
  return i32_tensor({tokens}, v);
}

Outcome check_rope(RopeProblem p, std::int64_t first_pos, std::int64_t step = 1) {
  return check(p, {HostTensor::random(tensor(p.dtype, {p.tokens, p.heads, p.dim}), seed_of(p)),
                   positions(p.tokens, first_pos, step)},
               tensor(p.dtype, {p.tokens, p.heads, p.dim}));
}

TEST(CpuRope, RotatesEveryDtypeFullAndPartialHeads) {
  for (DType d : kFloatDTypes) {
    check_rope({.tokens = 9, .heads = 4, .dim = 64, .rot = 64, .theta = 10000, .dtype = d}, 0);
    // MLA's q: the last 64 of 192 columns; odd sizes leave partial tasks.
    check_rope({.tokens = 37, .heads = 3, .dim = 192, .rot = 64, .theta = 10000, .dtype = d}, 3000);
    check_rope({.tokens = 5, .heads = 1, .dim = 40, .rot = 24, .theta = 50, .dtype = d}, 7, 13);
  }
}

TEST(CpuRope, KeepsFp32AccuracyAtLargePositions) {
  // Angles are formed in double: at positions near 16000 the f32 error stays at a few
  // 2^-24, far inside the bound that allows angles formed in fp32.
  const Outcome o = check_rope({.tokens = 33, .heads = 2, .dim = 64, .rot = 64, .theta = 10000, .dtype = DType::f32},
                               16000, 5);
  EXPECT_LE(o.err, 1e-6);
}

TEST(CpuRope, RejectsANegativePosition) {
  const RopeProblem p{.tokens = 2, .heads = 1, .dim = 2, .rot = 2, .dtype = DType::f32};
  const HostTensor x = HostTensor::random(tensor(DType::f32, {2, 1, 2}), 1), pos = i32_tensor({2}, {0, -5});
  HostTensor y(tensor(DType::f32, {2, 1, 2}));
  try {
    cpu::rope(p, operand(x), operand(pos), {y.data.data()});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cpu::rope: operand pos: token 1 has position -5; positions are >= 0");
  }
}

// ---- slice, concat ----------------------------------------------------------------------

TEST(CpuSlice, CopiesEveryDtypeAlongEveryAxis) {
  for (DType d : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::f8e4m3}) {
    const HostTensor x = HostTensor::random(tensor(d, {6, 10, 7}), 11);
    check(SliceProblem{.outer = 1, .in_axis = 6, .inner = 70, .begin = 2, .size = 3, .dtype = d}, {x}, tensor(d, {3, 10, 7}));
    check(SliceProblem{.outer = 6, .in_axis = 10, .inner = 7, .begin = 9, .size = 1, .dtype = d}, {x}, tensor(d, {6, 1, 7}));
    check(SliceProblem{.outer = 60, .in_axis = 7, .inner = 1, .begin = 0, .size = 5, .dtype = d}, {x}, tensor(d, {6, 10, 5}));
  }
}

TEST(CpuConcat, JoinsAndBroadcastsInEveryDtype) {
  for (DType d : {DType::f32, DType::bf16, DType::f16, DType::i32}) {
    // MLA: q_nope [T, H, 128] and one k_pe [T, 1, 64] for every head.
    check(ConcatProblem{.out_shape = {7, 5, 192}, .a_shape = {7, 5, 128}, .b_shape = {7, 1, 64}, .axis = 2, .dtype = d},
          {HostTensor::random(tensor(d, {7, 5, 128}), 1), HostTensor::random(tensor(d, {7, 1, 64}), 2)},
          tensor(d, {7, 5, 192}));
    check(ConcatProblem{.out_shape = {9, 33}, .a_shape = {4, 33}, .b_shape = {5, 33}, .axis = 0, .dtype = d},
          {HostTensor::random(tensor(d, {4, 33}), 3), HostTensor::random(tensor(d, {5, 33}), 4)}, tensor(d, {9, 33}));
    // Along a middle axis, a broadcast in the last dimension of one operand and the first of the other.
    check(ConcatProblem{.out_shape = {3, 5, 6}, .a_shape = {3, 2, 1}, .b_shape = {1, 3, 6}, .axis = 1, .dtype = d},
          {HostTensor::random(tensor(d, {3, 2, 1}), 5), HostTensor::random(tensor(d, {1, 3, 6}), 6)}, tensor(d, {3, 5, 6}));
  }
}

// ---- routing ----------------------------------------------------------------------------

struct Routing {
  MoeTopkProblem topk;
  HostTensor logits, bias, experts;
};

// Random logits and bias, and the CPU's own choice of experts (checked against the reference).
Routing route(MoeTopkProblem p) {
  Routing r{p, HostTensor::random(tensor(DType::f32, {p.tokens, p.experts}), seed_of(p)),
            HostTensor::random(tensor(DType::f32, {p.experts}), seed_of(p) + 1), {}};
  r.experts = check(p, {r.logits, r.bias}, tensor(DType::i32, {p.tokens, p.k})).out;
  return r;
}

TEST(CpuMoeTopk, ChoosesAValidGroupLimitedTopK) {
  route({.tokens = 64, .experts = 256, .k = 8, .groups = 8, .top_groups = 4});  // DeepSeek-V3
  route({.tokens = 33, .experts = 64, .k = 6, .groups = 1, .top_groups = 1});
  route({.tokens = 17, .experts = 72, .k = 5, .groups = 8, .top_groups = 3});
  route({.tokens = 5, .experts = 16, .k = 3, .groups = 16, .top_groups = 4});  // groups of one
}

TEST(CpuMoeTopk, BreaksTiesTowardTheLowerIndex) {
  // Equal logits and biases: every key ties, so experts 0..k-1 of the first groups.
  const MoeTopkProblem p{.tokens = 2, .experts = 8, .k = 3, .groups = 4, .top_groups = 2};
  const HostTensor logits = HostTensor::encode(tensor(DType::f32, {2, 8}), std::vector<double>(16, 0.5));
  const HostTensor bias = HostTensor::encode(tensor(DType::f32, {8}), std::vector<double>(8, 0.25));
  const Outcome o = check(p, {logits, bias}, tensor(DType::i32, {2, 3}));
  EXPECT_EQ(o.out.values(), (std::vector<double>{0, 1, 2, 0, 1, 2}));
}

TEST(CpuMoeWeights, NormalizesTheChosenSigmoidsTimesScale) {
  for (const MoeTopkProblem& t : {MoeTopkProblem{.tokens = 64, .experts = 256, .k = 8, .groups = 8, .top_groups = 4},
                                  MoeTopkProblem{.tokens = 3, .experts = 10, .k = 10}}) {
    const Routing r = route(t);
    const MoeWeightsProblem p{.tokens = t.tokens, .experts = t.experts, .k = t.k, .scale = 2.5};
    check(p, {r.logits, r.experts}, tensor(DType::f32, {t.tokens, t.k}));
  }
}

TEST(CpuMoeWeights, RejectsAnExpertOutOfRange) {
  const MoeWeightsProblem p{.tokens = 1, .experts = 4, .k = 2};
  const HostTensor logits = HostTensor::random(tensor(DType::f32, {1, 4}), 1), experts = i32_tensor({1, 2}, {1, 4});
  HostTensor w(tensor(DType::f32, {1, 2}));
  try {
    cpu::moe_weights(p, operand(logits), operand(experts), {w.data.data()});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cpu::moe_weights: operand experts: token 0 choice 1 is 4; an expert lies in 0..3");
  }
}

struct Planned {
  Routing routing;
  MoePlanProblem problem;
  HostTensor plan;
};

Planned plan(MoeTopkProblem t, std::int64_t align) {
  Planned p{route(t), {.tokens = t.tokens, .k = t.k, .experts = t.experts, .align = align,
                       .rows = ir::moe_plan_rows(t.tokens, t.k, t.experts, align)}, {}};
  p.plan = check(p.problem, {p.routing.experts}, tensor(DType::i32, {3, p.problem.rows})).out;
  return p;
}

TEST(CpuMoePlan, EqualsTheReferenceLayoutExactly) {
  const MoeTopkProblem deepseek{.tokens = 64, .experts = 256, .k = 8, .groups = 8, .top_groups = 4};
  for (std::int64_t align : {128, 8, 1}) plan(deepseek, align);
  // Each token within one group of four: at most 6 of 16 experts used, the rest empty.
  plan({.tokens = 3, .experts = 16, .k = 2, .groups = 4, .top_groups = 1}, 32);
}

TEST(CpuMoePlan, PlacesEveryChoiceOnARowOfItsExpertAndToken) {
  const Planned p = plan({.tokens = 40, .experts = 32, .k = 4, .groups = 4, .top_groups = 2}, 16);
  const std::vector<double> plan = p.plan.values(), chosen = p.routing.experts.values();
  const std::int64_t rows = p.problem.rows;
  for (std::int64_t s = 0; s < 40 * 4; ++s) {
    const auto r = static_cast<std::int64_t>(plan[static_cast<std::size_t>(2 * rows + s)]);
    ASSERT_GE(r, 0);
    EXPECT_EQ(plan[static_cast<std::size_t>(r)], chosen[static_cast<std::size_t>(s)]);
    EXPECT_EQ(plan[static_cast<std::size_t>(rows + r)], s / 4);
  }
}

// ---- gather, grouped GEMM, combine ------------------------------------------------------

TEST(CpuMoeGather, CopiesTokenRowsAndZerosPaddingInEveryDtype) {
  const Planned p = plan({.tokens = 20, .experts = 16, .k = 3, .groups = 4, .top_groups = 2}, 8);
  for (DType d : kFloatDTypes) {
    const MoeGatherProblem g{.tokens = 20, .rows = p.problem.rows, .dim = 130, .dtype = d};
    check(g, {HostTensor::random(tensor(d, {20, 130}), seed_of(g)), p.plan}, tensor(d, {g.rows, 130}));
  }
}

// The group column of a plan: its row 0.
HostTensor group_of(const Planned& p) {
  const std::vector<double> v = p.plan.values();
  return i32_tensor({p.problem.rows}, std::vector<double>(v.begin(), v.begin() + p.problem.rows));
}

Outcome check_grouped(const Planned& p, std::int64_t n, std::int64_t k, DType scale, DType out,
                      DType b_fp8 = DType::f8e4m3) {
  const GemmFp8GroupedProblem g{.m = p.problem.rows, .n = n, .k = k, .groups = p.problem.experts,
                                .align = p.problem.align, .b_dtype = b_fp8, .a_scale_dtype = scale,
                                .b_scale_dtype = scale, .out_dtype = out};
  return check(g,
               {HostTensor::random(tensor(DType::f8e4m3, {g.m, k}, ScaleLayout{kActivationBlock, scale}), seed_of(g)),
                HostTensor::random(tensor(b_fp8, {g.groups * n, k}, ScaleLayout{kWeightBlock, scale}), seed_of(g) + 1),
                group_of(p)},
               tensor(out, {g.m, n}));
}

TEST(CpuGemmFp8Grouped, MatchesTheReferenceOnPlannedLayouts) {
  // Prefill: align 128, several experts, some empty.
  const Planned prefill = plan({.tokens = 16, .experts = 8, .k = 2, .groups = 4, .top_groups = 2}, 128);
  for (DType scale : {DType::ue8m0, DType::f32})
    for (DType out : {DType::bf16, DType::f32}) check_grouped(prefill, 256, 256, scale, out);
  // Decode: align 8, k = 8 of 32 experts.
  check_grouped(plan({.tokens = 4, .experts = 32, .k = 8, .groups = 4, .top_groups = 2}, 8), 256, 512, DType::f32,
                DType::f32);
  check_grouped(plan({.tokens = 3, .experts = 16, .k = 2, .groups = 4, .top_groups = 1}, 32), 128, 384, DType::ue8m0,
                DType::bf16, DType::f8e5m2);
}

TEST(CpuGemmFp8Grouped, EqualsThePlainGemmOnEachGroupsRows) {
  // Same machinery: a run of group g gives the bits of gemm_fp8 on those rows and B's slice g.
  const Planned p = plan({.tokens = 24, .experts = 4, .k = 2}, 16);
  const Outcome o = check_grouped(p, 128, 256, DType::ue8m0, DType::f32);
  const GemmFp8GroupedProblem g{.m = p.problem.rows, .n = 128, .k = 256, .groups = 4, .align = 16,
                                .out_dtype = DType::f32};
  const HostTensor a = HostTensor::random(tensor(DType::f8e4m3, {g.m, 256}, ScaleLayout{kActivationBlock, DType::ue8m0}), seed_of(g));
  const HostTensor b = HostTensor::random(tensor(DType::f8e4m3, {4 * 128, 256}, ScaleLayout{kWeightBlock, DType::ue8m0}), seed_of(g) + 1);
  const std::vector<double> group = group_of(p).values(), got = o.out.values();
  for (std::int64_t first = 0; first < g.m;) {
    const auto e = static_cast<std::int64_t>(group[static_cast<std::size_t>(first)]);
    std::int64_t rows = 0;
    while (first + rows < g.m && group[static_cast<std::size_t>(first + rows)] == e && e >= 0) ++rows;
    if (rows == 0) {
      for (std::int64_t c = 0; c < 128; ++c) EXPECT_EQ(got[static_cast<std::size_t>(first * 128 + c)], 0.0) << first;
      ++first;
      continue;
    }
    std::vector<float> d(static_cast<std::size_t>(rows * 128));
    cpu::gemm_fp8({.m = rows, .n = 128, .k = 256, .out_dtype = DType::f32},
                  {a.data.data() + first * 256, a.scales.data() + first * 2},
                  {b.data.data() + e * 128 * 256, b.scales.data() + e * 2}, {d.data()});
    for (std::int64_t i = 0; i < rows * 128; ++i)
      ASSERT_EQ(got[static_cast<std::size_t>(first * 128 + i)], d[static_cast<std::size_t>(i)]) << first << " " << i;
    first += rows;
  }
}

TEST(CpuGemmFp8Grouped, RejectsABrokenLayout) {
  const GemmFp8GroupedProblem p{.m = 4, .n = 128, .k = 128, .groups = 2, .align = 2, .out_dtype = DType::f32};
  const HostTensor a = HostTensor::random(tensor(DType::f8e4m3, {4, 128}, ScaleLayout{kActivationBlock, DType::ue8m0}), 1);
  const HostTensor b = HostTensor::random(tensor(DType::f8e4m3, {256, 128}, ScaleLayout{kWeightBlock, DType::ue8m0}), 2);
  HostTensor d(tensor(DType::f32, {4, 128}));
  auto error = [&](const std::vector<double>& group) -> std::string {
    const HostTensor g = i32_tensor({4}, group);
    try {
      cpu::gemm_fp8_grouped(p, operand(a), operand(b), operand(g), {d.data.data()});
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(error({0, 0, 1, 2}),
            "cpu::gemm_fp8_grouped: operand group: row 3 has group 2, not -1 (padding) or a group (0..1)");
  EXPECT_EQ(error({0, 0, 0, 1}),
            "cpu::gemm_fp8_grouped: operand group: row 3 has group 1 but row 2 has 0; inside an align=2-row tile "
            "a row keeps the group of the row above or is padding (-1)");
  EXPECT_EQ(error({0, -1, -1, 1}),
            "cpu::gemm_fp8_grouped: operand group: row 3 has group 1 but row 2 has -1; inside an align=2-row tile "
            "a row keeps the group of the row above or is padding (-1)");
  EXPECT_EQ(error({1, -1, 0, 0}), "no error");
}

TEST(CpuMoeCombine, SumsTheWeightedExpertRowsInEveryDtype) {
  const Planned p = plan({.tokens = 21, .experts = 32, .k = 6, .groups = 4, .top_groups = 2}, 16);
  const MoeWeightsProblem wp{.tokens = 21, .experts = 32, .k = 6, .scale = 2.5};
  const HostTensor w = check(wp, {p.routing.logits, p.routing.experts}, tensor(DType::f32, {21, 6})).out;
  for (DType d : kFloatDTypes) {
    const MoeCombineProblem c{.tokens = 21, .k = 6, .rows = p.problem.rows, .dim = 300, .dtype = d};
    check(c, {HostTensor::random(tensor(d, {c.rows, 300}), seed_of(c)), p.plan, w}, tensor(d, {21, 300}));
  }
}

}  // namespace
}  // namespace anychip::kernels
