// The verifier: every broken rule is rejected with a message that names the op, its
// result, the operand and the rule.
#include <cmath>
#include <functional>

#include <gtest/gtest.h>

#include "anychip/ir.hpp"

using namespace anychip;
using namespace anychip::ir;

namespace {

TensorType act(std::int64_t m, std::int64_t k, DType scale = DType::ue8m0) {
  return {DType::f8e4m3, {m, k}, ScaleLayout{kActivationBlock, scale}};
}
TensorType weight(std::int64_t n, std::int64_t k, DType scale = DType::ue8m0) {
  return {DType::f8e4m3, {n, k}, ScaleLayout{kWeightBlock, scale}};
}
TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }

struct BadGraph {
  const char* name;
  std::function<void(Graph&)> build;
  const char* message;
};

const BadGraph kBadGraphs[] = {
    {"GemmFp8KNotMultipleOf128",
     [](Graph& g) { g.gemm_fp8(g.input("a", act(4, 1000)), g.input("b", weight(8, 1000)), DType::bf16, "y"); },
     "gemm_fp8 %y: operand a: K=1000 is not a multiple of 128"},
    {"GemmFp8KMismatch",
     [](Graph& g) { g.gemm_fp8(g.input("a", act(4, 1024)), g.input("b", weight(8, 512)), DType::bf16, "y"); },
     "gemm_fp8 %y: operand b: K=512 differs from operand a's K=1024"},
    {"GemmFp8OperandNotFp8",
     [](Graph& g) { g.gemm_fp8(g.input("a", plain(DType::bf16, {4, 128})), g.input("b", weight(8, 128)), DType::bf16, "y"); },
     "gemm_fp8 %y: operand a: dtype bf16 is not an FP8 type (f8e4m3, f8e5m2)"},
    {"GemmFp8OperandUnscaled",
     [](Graph& g) { g.gemm_fp8(g.input("a", act(4, 128)), g.input("b", plain(DType::f8e4m3, {8, 128})), DType::bf16, "y"); },
     "gemm_fp8 %y: operand b: must be block-scaled: f8e4m3[8, 128] has no scaled<128x128, f32|ue8m0>"},
    {"GemmFp8ActivationBlockNot1x128",
     [](Graph& g) { g.gemm_fp8(g.input("a", weight(4, 128)), g.input("b", weight(8, 128)), DType::bf16, "y"); },
     "gemm_fp8 %y: operand a: scale block 128x128 must be 1x128 (per-token 1x128 activation tiles)"},
    {"GemmFp8WeightBlockNot128x128",
     [](Graph& g) { g.gemm_fp8(g.input("a", act(4, 128)), g.input("b", act(8, 128)), DType::bf16, "y"); },
     "gemm_fp8 %y: operand b: scale block 1x128 must be 128x128 (128x128 weight blocks)"},
    {"GemmFp8OutDtype",
     [](Graph& g) { g.gemm_fp8(g.input("a", act(4, 128)), g.input("b", weight(8, 128)), DType::f8e4m3, "y"); },
     "gemm_fp8 %y: out_dtype f8e4m3 is not bf16 or f32"},
    {"GemmDtypeMismatch",
     [](Graph& g) { g.gemm(g.input("a", plain(DType::bf16, {4, 64})), g.input("b", plain(DType::f32, {8, 64})), DType::f32, "y"); },
     "gemm %y: operand b: dtype f32 differs from operand a's bf16"},
    {"GemmRank",
     [](Graph& g) { g.gemm(g.input("a", plain(DType::f32, {2, 4, 64})), g.input("b", plain(DType::f32, {8, 64})), DType::f32, "y"); },
     "gemm %y: operand a: rank 3 (shape [2, 4, 64]), expected rank 2"},
    {"AttentionHeadsNotDivisible",
     [](Graph& g) {
       g.attention(g.input("q", plain(DType::bf16, {1, 4, 12, 64})), g.input("k", plain(DType::bf16, {1, 8, 5, 64})),
                   g.input("v", plain(DType::bf16, {1, 8, 5, 64})), false, std::nullopt, "o");
     },
     "attention %o: operand k: heads_q=12 is not divisible by heads_kv=5"},
    {"AttentionHeadDimMismatch",
     [](Graph& g) {
       g.attention(g.input("q", plain(DType::bf16, {1, 4, 8, 64})), g.input("k", plain(DType::bf16, {1, 8, 8, 128})),
                   g.input("v", plain(DType::bf16, {1, 8, 8, 64})), false, std::nullopt, "o");
     },
     "attention %o: operand k: head_dim=128 differs from 64 (shape [1, 8, 8, 128])"},
    {"AttentionSeqKvMismatch",
     [](Graph& g) {
       g.attention(g.input("q", plain(DType::f32, {1, 4, 8, 64})), g.input("k", plain(DType::f32, {1, 8, 8, 64})),
                   g.input("v", plain(DType::f32, {1, 9, 8, 64})), false, std::nullopt, "o");
     },
     "attention %o: operand v: seq_kv=9 differs from 8 (shape [1, 9, 8, 64])"},
    {"AttentionDtypeMismatch",
     [](Graph& g) {
       g.attention(g.input("q", plain(DType::bf16, {1, 4, 8, 64})), g.input("k", plain(DType::f16, {1, 8, 8, 64})),
                   g.input("v", plain(DType::bf16, {1, 8, 8, 64})), false, std::nullopt, "o");
     },
     "attention %o: operand k: dtype f16 differs from operand q's bf16"},
    {"AttentionRank",
     [](Graph& g) {
       g.attention(g.input("q", plain(DType::bf16, {4, 8, 64})), g.input("k", plain(DType::bf16, {1, 8, 8, 64})),
                   g.input("v", plain(DType::bf16, {1, 8, 8, 64})), false, std::nullopt, "o");
     },
     "attention %o: operand q: rank 3 (shape [4, 8, 64]), expected rank 4"},
    {"AttentionNonPositiveScale",
     [](Graph& g) {
       g.attention(g.input("q", plain(DType::bf16, {1, 4, 8, 64})), g.input("k", plain(DType::bf16, {1, 8, 8, 64})),
                   g.input("v", plain(DType::bf16, {1, 8, 8, 64})), false, -1.0, "o");
     },
     "attention %o: scale -1 must be finite and > 0"},
    {"QuantizeNonFloatInput",
     [](Graph& g) { g.quantize_fp8(g.input("x", plain(DType::i32, {4, 128})), kActivationBlock, DType::ue8m0, DType::f8e4m3, "q"); },
     "quantize_fp8 %q: operand x: dtype i32[4, 128] is not f32, bf16 or f16"},
    {"QuantizeTargetNotFp8",
     [](Graph& g) { g.quantize_fp8(g.input("x", plain(DType::bf16, {4, 128})), kActivationBlock, DType::ue8m0, DType::bf16, "q"); },
     "quantize_fp8 %q: dtype bf16 is not an FP8 type (f8e4m3, f8e5m2)"},
    {"QuantizeScaleDtype",
     [](Graph& g) { g.quantize_fp8(g.input("x", plain(DType::bf16, {4, 128})), kActivationBlock, DType::bf16, DType::f8e4m3, "q"); },
     "quantize_fp8 %q: scale_dtype bf16 is not f32 or ue8m0"},
    {"QuantizeBlockNotPositive",
     [](Graph& g) { g.quantize_fp8(g.input("x", plain(DType::bf16, {4, 128})), BlockShape{0, 128}, DType::ue8m0, DType::f8e4m3, "q"); },
     "quantize_fp8 %q: block 0x128 must be positive"},
    {"DequantizeUnscaled",
     [](Graph& g) { g.dequantize(g.input("x", plain(DType::f32, {4, 128})), DType::f32, "y"); },
     "dequantize %y: operand x: f32[4, 128] is not a block-scaled FP8 tensor"},
    {"RmsNormWeightLength",
     [](Graph& g) { g.rmsnorm(g.input("x", plain(DType::bf16, {4, 512})), g.input("w", plain(DType::f32, {256})), 1e-6, "h"); },
     "rmsnorm %h: operand weight: length 256 differs from operand x's last dimension 512"},
    {"RmsNormNegativeEps",
     [](Graph& g) { g.rmsnorm(g.input("x", plain(DType::bf16, {4, 512})), g.input("w", plain(DType::f32, {512})), -1, "h"); },
     "rmsnorm %h: eps -1 must be finite and >= 0"},
    {"SiluMulOddWidth",
     [](Graph& g) { g.silu_mul(g.input("x", plain(DType::bf16, {4, 511})), "y"); },
     "silu_mul %y: operand x: last dimension 511 is odd; it must hold gate and up halves"},
    {"AddShapeMismatch",
     [](Graph& g) { g.add(g.input("a", plain(DType::bf16, {4, 8})), g.input("b", plain(DType::bf16, {8, 4})), "y"); },
     "add %y: operand b: shape [8, 4] differs from operand a's [4, 8]"},
    {"ReshapeElementCount",
     [](Graph& g) { g.reshape(g.input("x", plain(DType::bf16, {4, 8})), {3, 10}, "y"); },
     "reshape %y: shape [3, 10] has 30 elements, operand x [4, 8] has 32"},
    {"ReshapeScaled",
     [](Graph& g) { g.reshape(g.input("x", act(4, 128)), {2, 256}, "y"); },
     "reshape %y: operand x: f8e4m3[4, 128] scaled<1x128, ue8m0> is block-scaled; reshaping would move its scale blocks"},
    {"RopeRank",
     [](Graph& g) { g.rope(g.input("x", plain(DType::bf16, {4, 64})), g.input("pos", plain(DType::i32, {4})), std::nullopt, 10000, {}, "y"); },
     "rope %y: operand x: rank 2 (shape [4, 64]), expected rank 3"},
    {"RopePositionsNotI32",
     [](Graph& g) { g.rope(g.input("x", plain(DType::bf16, {4, 2, 64})), g.input("pos", plain(DType::f32, {4})), std::nullopt, 10000, {}, "y"); },
     "rope %y: operand pos: dtype f32[4] is not i32"},
    {"RopePositionsPerToken",
     [](Graph& g) { g.rope(g.input("x", plain(DType::bf16, {4, 2, 64})), g.input("pos", plain(DType::i32, {3})), std::nullopt, 10000, {}, "y"); },
     "rope %y: operand pos: dimension 0 of [3] is 3, expected operand x's tokens 4"},
    {"RopeOddDims",
     [](Graph& g) { g.rope(g.input("x", plain(DType::bf16, {4, 2, 64})), g.input("pos", plain(DType::i32, {4})), 63, 10000, {}, "y"); },
     "rope %y: dims 63 must be even, > 0 and <= the head dimension 64"},
    {"RopeDimsBeyondTheHead",
     [](Graph& g) { g.rope(g.input("x", plain(DType::f32, {4, 2, 64})), g.input("pos", plain(DType::i32, {4})), 128, 10000, {}, "y"); },
     "rope %y: dims 128 must be even, > 0 and <= the head dimension 64"},
    {"RopeThetaNotAboveOne",
     [](Graph& g) { g.rope(g.input("x", plain(DType::f32, {4, 2, 64})), g.input("pos", plain(DType::i32, {4})), 64, 1, {}, "y"); },
     "rope %y: theta 1 must be finite and > 1"},
    {"RopeYarnWithoutContext",
     [](Graph& g) { g.rope(g.input("x", plain(DType::f32, {4, 2, 64})), g.input("pos", plain(DType::i32, {4})), 64, 10000, {40, 0, 32, 1}, "y"); },
     "rope %y: yarn_original_len 0 must be > 0 when yarn_factor > 1"},
    {"RopeYarnBetasOutOfOrder",
     [](Graph& g) { g.rope(g.input("x", plain(DType::f32, {4, 2, 64})), g.input("pos", plain(DType::i32, {4})), 64, 10000, {40, 4096, 1, 32}, "y"); },
     "rope %y: yarn_beta_fast 1 and yarn_beta_slow 32 must satisfy beta_fast > beta_slow > 0"},
    {"RopeYarnFactorBelowOne",
     [](Graph& g) { g.rope(g.input("x", plain(DType::f32, {4, 2, 64})), g.input("pos", plain(DType::i32, {4})), 64, 10000, {0.5, 4096, 32, 1}, "y"); },
     "rope %y: yarn_factor 0.5 must be finite and >= 1"},
    {"SliceScaled",
     [](Graph& g) { g.slice(g.input("x", act(4, 256)), 1, 0, 128, "y"); },
     "slice %y: operand x: f8e4m3[4, 256] scaled<1x128, ue8m0> is block-scaled; slicing would cut its scale blocks"},
    {"SliceAxisOutOfRange",
     [](Graph& g) { g.slice(g.input("x", plain(DType::bf16, {4, 4})), -3, 0, 1, "y"); },
     "slice %y: axis -3 is out of range for rank 2"},
    {"SliceOutsideTheDimension",
     [](Graph& g) { g.slice(g.input("x", plain(DType::i32, {4, 4})), 1, 3, 2, "y"); },
     "slice %y: begin 3 size 2 must lie inside dimension 1 of [4, 4]"},
    {"ConcatDtypeMismatch",
     [](Graph& g) { g.concat(g.input("a", plain(DType::bf16, {2, 3})), g.input("b", plain(DType::f32, {2, 3})), 0, "y"); },
     "concat %y: operand b: dtype f32 differs from operand a's bf16"},
    {"ConcatRankMismatch",
     [](Graph& g) { g.concat(g.input("a", plain(DType::bf16, {2, 3})), g.input("b", plain(DType::bf16, {2, 3, 1})), 0, "y"); },
     "concat %y: operand b: rank 3 differs from operand a's 2"},
    {"ConcatOtherDimensionMismatch",
     [](Graph& g) { g.concat(g.input("a", plain(DType::bf16, {2, 3, 4})), g.input("b", plain(DType::bf16, {2, 5, 4})), 2, "y"); },
     "concat %y: operand b: dimension 1 is 5, operand a's is 3; they must be equal or one of them 1 (broadcast)"},
    {"MoeTopkLogitsNotF32",
     [](Graph& g) { g.moe_topk(g.input("logits", plain(DType::bf16, {4, 8})), g.input("bias", plain(DType::f32, {8})), 2, 1, 1, "e"); },
     "moe_topk %e: operand logits: dtype bf16[4, 8] is not f32"},
    {"MoeTopkBiasLength",
     [](Graph& g) { g.moe_topk(g.input("logits", plain(DType::f32, {4, 8})), g.input("bias", plain(DType::f32, {6})), 2, 1, 1, "e"); },
     "moe_topk %e: operand bias: dimension 0 of [6] is 6, expected operand logits' experts 8"},
    {"MoeTopkGroupsDoNotDivideExperts",
     [](Graph& g) { g.moe_topk(g.input("logits", plain(DType::f32, {4, 8})), g.input("bias", plain(DType::f32, {8})), 2, 3, 1, "e"); },
     "moe_topk %e: groups 3 does not divide the 8 experts"},
    {"MoeTopkMoreTopGroupsThanGroups",
     [](Graph& g) { g.moe_topk(g.input("logits", plain(DType::f32, {4, 8})), g.input("bias", plain(DType::f32, {8})), 2, 4, 5, "e"); },
     "moe_topk %e: top_groups 5 exceeds groups 4"},
    {"MoeTopkKBeyondTheKeptGroups",
     [](Graph& g) { g.moe_topk(g.input("logits", plain(DType::f32, {4, 8})), g.input("bias", plain(DType::f32, {8})), 3, 4, 1, "e"); },
     "moe_topk %e: k 3 exceeds the 2 experts of the top_groups groups"},
    {"MoeTopkKZero",
     [](Graph& g) { g.moe_topk(g.input("logits", plain(DType::f32, {4, 8})), g.input("bias", plain(DType::f32, {8})), 0, 1, 1, "e"); },
     "moe_topk %e: k 0 must be >= 1"},
    {"MoeWeightsExpertsNotI32",
     [](Graph& g) { g.moe_weights(g.input("logits", plain(DType::f32, {4, 8})), g.input("experts", plain(DType::f32, {4, 2})), 1, "w"); },
     "moe_weights %w: operand experts: dtype f32[4, 2] is not i32"},
    {"MoeWeightsTokenMismatch",
     [](Graph& g) { g.moe_weights(g.input("logits", plain(DType::f32, {4, 8})), g.input("experts", plain(DType::i32, {3, 2})), 1, "w"); },
     "moe_weights %w: operand experts: dimension 0 of [3, 2] is 3, expected operand logits' tokens 4"},
    {"MoeWeightsScaleNotPositive",
     [](Graph& g) { g.moe_weights(g.input("logits", plain(DType::f32, {4, 8})), g.input("experts", plain(DType::i32, {4, 2})), 0, "w"); },
     "moe_weights %w: scale 0 must be finite and > 0"},
    {"MoePlanKBeyondExperts",
     [](Graph& g) { g.moe_plan(g.input("experts", plain(DType::i32, {4, 9})), 8, 128, "p"); },
     "moe_plan %p: operand experts: k=9 exceeds num_experts 8"},
    {"MoePlanAlignZero",
     [](Graph& g) { g.moe_plan(g.input("experts", plain(DType::i32, {4, 2})), 8, 0, "p"); },
     "moe_plan %p: align 0 must be >= 1"},
    {"MoeGatherPlanShape",
     [](Graph& g) { g.moe_gather(g.input("x", plain(DType::bf16, {4, 8})), g.input("plan", plain(DType::i32, {2, 10})), "y"); },
     "moe_gather %y: operand plan: shape [2, 10] is not a moe_plan [3, rows]"},
    {"MoeGatherIntegerRows",
     [](Graph& g) { g.moe_gather(g.input("x", plain(DType::i32, {4, 8})), g.input("plan", plain(DType::i32, {3, 10})), "y"); },
     "moe_gather %y: operand x: dtype i32[4, 8] is not f32, bf16 or f16"},
    {"GemmFp8GroupedNNotMultipleOf128",
     [](Graph& g) {
       g.gemm_fp8_grouped(g.input("a", act(4, 128)), g.input("b", weight(300, 128)), g.input("group", plain(DType::i32, {4})), 3,
                          DType::bf16, 128, "y");
     },
     "gemm_fp8_grouped %y: operand b: 300 rows are not groups=3 weights of N rows with N a multiple of 128"},
    {"GemmFp8GroupedGroupLength",
     [](Graph& g) {
       g.gemm_fp8_grouped(g.input("a", act(4, 128)), g.input("b", weight(256, 128)), g.input("group", plain(DType::i32, {5})), 2,
                          DType::bf16, 128, "y");
     },
     "gemm_fp8_grouped %y: operand group: dimension 0 of [5] is 5, expected operand a's M 4"},
    {"GemmFp8GroupedGroupNotI32",
     [](Graph& g) {
       g.gemm_fp8_grouped(g.input("a", act(4, 128)), g.input("b", weight(256, 128)), g.input("group", plain(DType::f32, {4})), 2,
                          DType::bf16, 128, "y");
     },
     "gemm_fp8_grouped %y: operand group: dtype f32[4] is not i32"},
    {"GemmFp8GroupedKMismatch",
     [](Graph& g) {
       g.gemm_fp8_grouped(g.input("a", act(4, 256)), g.input("b", weight(256, 128)), g.input("group", plain(DType::i32, {4})), 2,
                          DType::bf16, 128, "y");
     },
     "gemm_fp8_grouped %y: operand b: K=128 differs from operand a's K=256"},
    {"GemmFp8GroupedOutDtype",
     [](Graph& g) {
       g.gemm_fp8_grouped(g.input("a", act(4, 128)), g.input("b", weight(256, 128)), g.input("group", plain(DType::i32, {4})), 2,
                          DType::f16, 128, "y");
     },
     "gemm_fp8_grouped %y: out_dtype f16 is not bf16 or f32"},
    {"MoeCombinePlanRows",
     [](Graph& g) {
       g.moe_combine(g.input("y", plain(DType::bf16, {10, 8})), g.input("plan", plain(DType::i32, {3, 12})),
                     g.input("weights", plain(DType::f32, {2, 2})), "o");
     },
     "moe_combine %o: operand plan: rows=12 differs from operand y's 10"},
    {"MoeCombineMoreChoicesThanRows",
     [](Graph& g) {
       g.moe_combine(g.input("y", plain(DType::bf16, {12, 8})), g.input("plan", plain(DType::i32, {3, 12})),
                     g.input("weights", plain(DType::f32, {4, 4})), "o");
     },
     "moe_combine %o: operand weights: holds 16 choices, more than the plan's 12 rows"},
    {"MoeCombineWeightsNotF32",
     [](Graph& g) {
       g.moe_combine(g.input("y", plain(DType::bf16, {12, 8})), g.input("plan", plain(DType::i32, {3, 12})),
                     g.input("weights", plain(DType::bf16, {2, 2})), "o");
     },
     "moe_combine %o: operand weights: dtype bf16[2, 2] is not f32"},
    {"WrongOperandCount",
     [](Graph& g) { auto x = g.input("x", plain(DType::bf16, {4, 8})); g.add(OpKind::add, {x, x, x}, {}, "y"); },
     "add %y: takes 2 operands (a, b), got 3"},
    {"UnknownAttribute",
     [](Graph& g) { g.add(OpKind::silu_mul, {g.input("x", plain(DType::bf16, {4, 8}))}, {{"alpha", 1.0}}, "y"); },
     "silu_mul %y: unknown attribute 'alpha' (attributes: none)"},
    {"AttributeOfWrongKind",
     [](Graph& g) { g.add(OpKind::rmsnorm, {g.input("x", plain(DType::bf16, {4, 8})), g.input("w", plain(DType::bf16, {8}))}, {{"eps", true}}, "y"); },
     "rmsnorm %y: attribute 'eps' must be a number"},
    {"MissingRequiredAttribute",
     [](Graph& g) { g.add(OpKind::reshape, {g.input("x", plain(DType::bf16, {4, 8}))}, {}, "y"); },
     "reshape %y: attribute 'shape' is required"},
    {"DuplicateName",
     [](Graph& g) { auto x = g.input("x", plain(DType::bf16, {4, 8})); g.add(x, x, "x"); },
     "add %x: the name is already used"},
    {"InputZeroDimension",
     [](Graph& g) { g.input("x", plain(DType::bf16, {4, 0})); },
     "input %x: dimension 1 of [4, 0] is 0; dimensions must be positive"},
    {"InputScaledNonFp8",
     [](Graph& g) { g.input("x", {DType::bf16, {4, 128}, ScaleLayout{}}); },
     "input %x: scaled<...> needs an FP8 dtype, not bf16"},
    {"InputUe8m0Elements",
     [](Graph& g) { g.input("x", plain(DType::ue8m0, {4})); },
     "input %x: ue8m0 is a scale format, not a tensor element type"},
};

void PrintTo(const BadGraph& b, std::ostream* os) { *os << b.name; }

class VerifierRejects : public ::testing::TestWithParam<BadGraph> {};

TEST_P(VerifierRejects, WithAMessageNamingOpOperandAndRule) {
  Graph g("bad");
  try {
    GetParam().build(g);
    FAIL() << "accepted a graph that breaks a rule; expected: " << GetParam().message;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidGraph);
    EXPECT_EQ(std::string(e.what()), GetParam().message);
  }
}

INSTANTIATE_TEST_SUITE_P(Ir, VerifierRejects, ::testing::ValuesIn(kBadGraphs),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Verifier, RejectedOpLeavesTheGraphUnchanged) {
  Graph g("g");
  auto x = g.input("x", plain(DType::bf16, {4, 8}));
  auto w = g.input("w", plain(DType::bf16, {4}));
  EXPECT_THROW(g.rmsnorm(x, w), Error);
  EXPECT_EQ(g.nodes().size(), 0u);
  EXPECT_EQ(g.values().size(), 2u);
  EXPECT_NO_THROW(g.silu_mul(x));
}

TEST(Verifier, GraphWithoutOutputsIsRejected) {
  Graph g("empty");
  g.silu_mul(g.input("x", plain(DType::bf16, {4, 8})));
  try {
    verify(g);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "graph @empty: has no outputs");
  }
}

TEST(Verifier, AttentionScaleDefaultsToInverseSqrtHeadDim) {
  Graph g("g");
  auto q = g.input("q", plain(DType::bf16, {1, 1, 4, 576}));
  auto k = g.input("k", plain(DType::bf16, {1, 64, 1, 576}));
  auto v = g.input("v", plain(DType::bf16, {1, 64, 1, 512}));
  auto o = g.attention(q, k, v);
  EXPECT_EQ(g.value(o).type, plain(DType::bf16, {1, 1, 4, 512}));  // MLA decode: Dv != Dk
  EXPECT_DOUBLE_EQ(g.nodes().back().attr<double>("scale"), 1.0 / std::sqrt(576.0));
}

TEST(Verifier, GemmFp8InfersOutputTypeFromOperands) {
  Graph g("g");
  auto y = g.gemm_fp8(g.input("a", act(3, 256, DType::f32)), g.input("b", weight(5, 256)), DType::f32);
  EXPECT_EQ(g.value(y).type, plain(DType::f32, {3, 5}));
}

TEST(OpTable, EveryOpHasItsDefaultsParseable) {
  for (const OpInfo& op : all_ops()) {
    EXPECT_EQ(op_from_name(op.name), op.kind);
    EXPECT_FALSE(op.operands.empty()) << op.name;
    EXPECT_FALSE(op.summary.empty()) << op.name;
  }
  EXPECT_GE(all_ops().size(), 8u);
}

}  // namespace
