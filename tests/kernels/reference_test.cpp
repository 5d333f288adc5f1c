// The float64 reference against hand-computed cases, so that the oracle every backend is
// checked against is itself pinned; plus the tolerance table and the KernelSpec text.
#include "kernels/reference/reference.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "anychip/ir.hpp"
#include "anychip/tensor.hpp"
#include "kernels/kernel_spec.hpp"
#include "kernels/reference/tolerance.hpp"

namespace anychip::kernels {
namespace {

std::vector<std::byte> f32_bytes(const std::vector<double>& v) {
  std::vector<std::byte> b(v.size() * 4);
  encode_values(DType::f32, v.data(), v.size(), b.data());
  return b;
}

TensorType tensor(DType d, Shape shape) { return {d, std::move(shape), std::nullopt}; }

ConstOperand in(const std::vector<std::byte>& data, const std::vector<std::byte>* scales = nullptr) {
  return {data.data(), scales ? scales->data() : nullptr};
}

std::vector<std::byte> e4m3_codes(const std::vector<double>& v) {
  std::vector<std::byte> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = std::byte{float_to_e4m3(static_cast<float>(v[i]))};
  return b;
}

// ---- gemm_fp8 ---------------------------------------------------------------------------

TEST(ReferenceGemmFp8, SumsScaledBlockDotProducts) {
  // A = 1 everywhere, B[n,:] = (n+1)/2, so every 128-wide block dot is 64(n+1).
  // sA[m,b] = 2^(m-b) (ue8m0), sB[0,b] = 0.75 + b (f32):
  // D[m,n] = 64(n+1) 2^m (0.75 + 1.75/2) = 104 (n+1) 2^m.
  GemmFp8Problem p{.m = 2, .n = 3, .k = 256, .a_scale_dtype = DType::ue8m0, .b_scale_dtype = DType::f32,
                   .out_dtype = DType::f32};
  std::vector<double> a(2 * 256, 1.0), b(3 * 256);
  for (int n = 0; n < 3; ++n)
    for (int k = 0; k < 256; ++k) b[n * 256 + k] = (n + 1) * 0.5;
  const auto a8 = e4m3_codes(a), b8 = e4m3_codes(b);
  std::vector<std::byte> sa = {std::byte{127}, std::byte{126}, std::byte{128}, std::byte{127}};
  const auto sb = f32_bytes({0.75, 1.75});
  std::vector<double> out(6);
  reference::gemm_fp8(p, in(a8, &sa), in(b8, &sb), out.data());
  for (int m = 0; m < 2; ++m)
    for (int n = 0; n < 3; ++n) EXPECT_EQ(out[m * 3 + n], 104.0 * (n + 1) * (1 << m)) << m << "," << n;
}

TEST(ReferenceGemmFp8, ReadsWeightScaleOfRowBlockNDiv128) {
  // n = 130: columns 0..127 use sB row 0 (scale 1), columns 128..129 sB row 1 (scale 4).
  GemmFp8Problem p{.m = 1, .n = 130, .k = 128, .a_scale_dtype = DType::f32, .b_scale_dtype = DType::f32,
                   .out_dtype = DType::f32};
  std::vector<double> a(128), b(130 * 128, 0.0);
  for (int k = 0; k < 128; ++k) a[k] = (k % 2) ? 1.0 : -0.5;
  for (int n = 0; n < 130; ++n) b[n * 128 + (n % 128)] = 2.0;  // picks out A[0, n % 128]
  const auto a8 = e4m3_codes(a), b8 = e4m3_codes(b);
  const auto sa = f32_bytes({3.0});
  const auto sb = f32_bytes({1.0, 4.0});
  std::vector<double> out(130);
  reference::gemm_fp8(p, in(a8, &sa), in(b8, &sb), out.data());
  for (int n = 0; n < 130; ++n) {
    const double sb_n = n < 128 ? 1.0 : 4.0;
    EXPECT_EQ(out[n], 3.0 * sb_n * 2.0 * a[n % 128]) << n;
  }
}

TEST(ReferenceGemmFp8, RejectsKNotMultipleOf128) {
  GemmFp8Problem p{.m = 1, .n = 1, .k = 1000};
  std::vector<std::byte> a(1000), s(64);
  double out = 0;
  try {
    reference::gemm_fp8(p, {a.data(), s.data()}, {a.data(), s.data()}, &out);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("K=1000 is not a multiple of 128"), std::string::npos) << e.what();
  }
}

// ---- gemm -------------------------------------------------------------------------------

TEST(ReferenceGemm, MultipliesNT) {
  // A [2,3], B [2,3]: D = A B^T.
  GemmProblem p{.m = 2, .n = 2, .k = 3, .in_dtype = DType::f32, .out_dtype = DType::f32};
  const auto a = f32_bytes({1, 2, 3, 4, 5, 6});
  const auto b = f32_bytes({1, 0, -1, 0.5, 0.25, 2});
  std::vector<double> out(4);
  reference::gemm(p, in(a), in(b), out.data());
  EXPECT_EQ(out, (std::vector<double>{-2, 7, -2, 15.25}));
}

TEST(ReferenceGemm, DecodesBf16Exactly) {
  GemmProblem p{.m = 1, .n = 1, .k = 2, .in_dtype = DType::bf16, .out_dtype = DType::f32};
  const HostTensor a = HostTensor::encode(tensor(DType::bf16, {1, 2}), std::vector<double>{1.0078125, 3});
  const HostTensor b = HostTensor::encode(tensor(DType::bf16, {1, 2}), std::vector<double>{1.0078125, -1});
  double out = 0;
  reference::gemm(p, {a.data.data()}, {b.data.data()}, &out);
  EXPECT_EQ(out, 1.0078125 * 1.0078125 - 3);  // (1 + 2^-7)^2 needs 15 bits: kept exactly
}

// ---- attention --------------------------------------------------------------------------

struct Qkv {
  std::vector<std::byte> q, k, v;
};

Qkv qkv_f32(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v) {
  return {f32_bytes(q), f32_bytes(k), f32_bytes(v)};
}

std::vector<double> attend(const AttentionProblem& p, const Qkv& t) {
  std::vector<double> out(static_cast<std::size_t>(p.batch * p.seq_q * p.heads_q * p.head_dim_v), -1e300);
  reference::attention(p, in(t.q), in(t.k), in(t.v), out.data());
  return out;
}

TEST(ReferenceAttention, OneKeyGivesItsValue) {
  AttentionProblem p{.seq_q = 2, .seq_kv = 1, .head_dim = 2, .head_dim_v = 3, .scale = 0.7,
                     .dtype = DType::f32};
  const auto out = attend(p, qkv_f32({0.3, -2, 5, 1}, {1.5, 0.25}, {7, -8, 0.5}));
  EXPECT_EQ(out, (std::vector<double>{7, -8, 0.5, 7, -8, 0.5}));
}

TEST(ReferenceAttention, WeighsValuesBySoftmaxOfScaledScores) {
  // Scores scale * q.k = 0.5 * 2 * {0, 1} = {0, 1}: weights 1/(1+e), e/(1+e).
  AttentionProblem p{.seq_q = 1, .seq_kv = 2, .head_dim = 1, .head_dim_v = 2, .scale = 0.5,
                     .dtype = DType::f32};
  const auto out = attend(p, qkv_f32({2}, {0, 1}, {1, 10, 3, -4}));
  const double e = std::exp(1.0);
  EXPECT_DOUBLE_EQ(out[0], (1 + e * 3) / (1 + e));
  EXPECT_DOUBLE_EQ(out[1], (10 + e * -4) / (1 + e));
}

// With q = 0 every visible key has the same score, so a row is the mean of what it sees.
TEST(ReferenceAttention, CausalAlignsBottomRightWhenSeqQBelowSeqKv) {
  // Sq = 2, Skv = 4: query 0 sees keys 0..2, query 1 sees keys 0..3.
  AttentionProblem p{.seq_q = 2, .seq_kv = 4, .head_dim = 2, .head_dim_v = 1, .causal = true,
                     .scale = 1, .dtype = DType::f32};
  const auto out = attend(p, qkv_f32({0, 0, 0, 0}, {1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 4, 8}));
  EXPECT_DOUBLE_EQ(out[0], (1 + 2 + 4) / 3.0);
  EXPECT_DOUBLE_EQ(out[1], (1 + 2 + 4 + 8) / 4.0);
}

TEST(ReferenceAttention, CausalQueriesBeforeTheFirstKeyGiveZero) {
  // Sq = 4, Skv = 2: query i sees keys j <= i - 2.
  AttentionProblem p{.seq_q = 4, .seq_kv = 2, .head_dim = 1, .head_dim_v = 1, .causal = true,
                     .scale = 1, .dtype = DType::f32};
  const auto out = attend(p, qkv_f32({0, 0, 0, 0}, {1, 2}, {3, 5}));
  EXPECT_EQ(out, (std::vector<double>{0, 0, 3, 4}));
}

TEST(ReferenceAttention, NonCausalSeesEveryKey) {
  AttentionProblem p{.seq_q = 2, .seq_kv = 3, .head_dim = 1, .head_dim_v = 1, .scale = 1,
                     .dtype = DType::f32};
  const auto out = attend(p, qkv_f32({0, 0}, {1, 2, 3}, {3, 6, 9}));
  EXPECT_EQ(out, (std::vector<double>{6, 6}));
}

TEST(ReferenceAttention, GroupedQueryHeadsReadKvHeadHDivGroup) {
  // Hq = 4, Hkv = 2: heads 0,1 read KV head 0; heads 2,3 read KV head 1. B = 2.
  AttentionProblem p{.batch = 2, .seq_q = 1, .seq_kv = 1, .heads_q = 4, .heads_kv = 2, .head_dim = 1,
                     .head_dim_v = 1, .scale = 1, .dtype = DType::f32};
  const auto out = attend(p, qkv_f32(std::vector<double>(8, 0.5), {1, 1, 1, 1}, {10, 20, 30, 40}));
  EXPECT_EQ(out, (std::vector<double>{10, 10, 20, 20, 30, 30, 40, 40}));
}

TEST(ReferenceAttention, MultiQueryHeadsAllReadTheOneKvHead) {
  AttentionProblem p{.seq_q = 1, .seq_kv = 2, .heads_q = 3, .heads_kv = 1, .head_dim = 1,
                     .head_dim_v = 1, .scale = 1, .dtype = DType::f32};
  // Head h has q = h: scores {0, h} for keys k = {0, 1}.
  const auto out = attend(p, qkv_f32({0, 1, 2}, {0, 1}, {1, 2}));
  for (int h = 0; h < 3; ++h) {
    const double e = std::exp(static_cast<double>(h));
    EXPECT_DOUBLE_EQ(out[h], (1 + 2 * e) / (1 + e)) << h;
  }
}

// ---- rmsnorm, silu_mul, add -------------------------------------------------------------

TEST(ReferenceRmsNorm, DividesByRootMeanSquareAndScales) {
  // x = [2, -2, 2, -2]: mean(x^2) = 4, eps = 0 -> x / 2 * w.
  RmsNormProblem p{.rows = 2, .dim = 4, .eps = 0, .dtype = DType::f32, .weight_dtype = DType::f32};
  const auto x = f32_bytes({2, -2, 2, -2, 3, 4, 0, 0});
  const auto w = f32_bytes({1, 2, 3, 4});
  std::vector<double> out(8);
  reference::rmsnorm(p, in(x), in(w), out.data());
  EXPECT_EQ(std::vector<double>(out.begin(), out.begin() + 4), (std::vector<double>{1, -2, 3, -4}));
  // Row 2: mean(x^2) = 25/4, rms = 2.5.
  EXPECT_DOUBLE_EQ(out[4], 3 / 2.5);
  EXPECT_DOUBLE_EQ(out[5], 4 / 2.5 * 2);
  EXPECT_EQ(out[6], 0);
}

TEST(ReferenceRmsNorm, AddsEpsInsideTheRoot) {
  RmsNormProblem p{.rows = 1, .dim = 1, .eps = 0.25, .dtype = DType::f32, .weight_dtype = DType::f32};
  const auto x = f32_bytes({0.5});
  const auto w = f32_bytes({1});
  double out = 0;
  reference::rmsnorm(p, in(x), in(w), &out);
  EXPECT_DOUBLE_EQ(out, 0.5 / std::sqrt(0.5));
}

TEST(ReferenceSiluMul, GatesTheSecondHalfWithSiluOfTheFirst) {
  SiluMulProblem p{.rows = 1, .dim = 2, .dtype = DType::f32};
  const auto x = f32_bytes({0, 2, 3, 5});
  std::vector<double> out(2);
  reference::silu_mul(p, in(x), out.data());
  EXPECT_EQ(out[0], 0);
  EXPECT_DOUBLE_EQ(out[1], 2 / (1 + std::exp(-2.0)) * 5);
}

TEST(ReferenceAdd, AddsExactly) {
  AddProblem p{.numel = 2, .dtype = DType::bf16};
  const HostTensor a = HostTensor::encode(tensor(DType::bf16, {2}), std::vector<double>{1.5, 256});
  const HostTensor b = HostTensor::encode(tensor(DType::bf16, {2}), std::vector<double>{2.25, 1.0 / 1024});
  std::vector<double> out(2);
  reference::add(p, {a.data.data()}, {b.data.data()}, out.data());
  EXPECT_EQ(out, (std::vector<double>{3.75, 256 + 1.0 / 1024}));  // unrounded to bf16
}

// ---- quantize_fp8, dequantize -----------------------------------------------------------

TEST(ReferenceQuantize, GivesTheDequantizedValueOfTheQuantizedCodes) {
  // Block amax 100 -> s = 100/448 -> ue8m0 rounds up to 1/4; 100/(1/4) = 400 lies halfway
  // between the E4M3 values 384 and 416 and rounds to even (384): value 96.
  QuantizeProblem p{.rows = 1, .cols = 3, .in_dtype = DType::f32, .block = kActivationBlock,
                    .scale_dtype = DType::ue8m0};
  const auto x = f32_bytes({100, -1, 0.125});
  std::vector<double> out(3);
  reference::quantize_fp8(p, in(x), out.data());
  EXPECT_EQ(out, (std::vector<double>{96, -1, 0.125}));
}

TEST(ReferenceQuantize, UsesOneScalePerWeightBlock) {
  // 2 x 130 with 128x128 blocks: columns 128..129 form their own block with amax 448 -> s = 1.
  QuantizeProblem p{.rows = 2, .cols = 130, .in_dtype = DType::f32, .block = kWeightBlock,
                    .scale_dtype = DType::f32};
  std::vector<double> x(260, 1.0);
  x[129] = 448;
  x[0] = 896;  // first block: s = 2, every other element 1 -> 0.5 -> 1
  std::vector<double> out(260);
  reference::quantize_fp8(p, in(f32_bytes(x)), out.data());
  EXPECT_EQ(out, x);
}

TEST(ReferenceDequantize, MultipliesCodesByTheirBlockScale) {
  DequantizeProblem p{.rows = 2, .cols = 3, .in_dtype = DType::f8e4m3, .block = {1, 2},
                      .scale_dtype = DType::f32, .out_dtype = DType::f32};
  const auto codes = e4m3_codes({1, 2, 3, -1, 0.5, 448});
  const auto scales = f32_bytes({0.1, 10, 3, 0.25});
  std::vector<double> out(6);
  reference::dequantize(p, in(codes, &scales), out.data());
  const double s01 = static_cast<float>(0.1);  // the stored f32 scale, exactly
  EXPECT_EQ(out, (std::vector<double>{s01, 2 * s01, 30, -3, 0.5 * 3, 448 * 0.25}));
}

// ---- rope, slice, concat ----------------------------------------------------------------

std::vector<std::byte> i32_bytes(const std::vector<double>& v) {
  std::vector<std::byte> b(v.size() * 4);
  encode_values(DType::i32, v.data(), v.size(), b.data());
  return b;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an error";
  return "";
}

TEST(ReferenceRope, RotatesTheLastRotColumnsAsInterleavedPairs) {
  // dim 6, rot 4, theta 16: columns 0..1 copied; pairs (2,3) at pos * 1, (4,5) at pos * 16^(-1/2).
  RopeProblem p{.tokens = 2, .heads = 1, .dim = 6, .rot = 4, .theta = 16, .dtype = DType::f32};
  const auto x = f32_bytes({1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6});
  const auto pos = i32_bytes({0, 2});
  std::vector<double> out(12);
  reference::rope(p, in(x), in(pos), out.data());
  EXPECT_EQ(std::vector<double>(out.begin(), out.begin() + 6), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  const double c = std::cos(2.0), s = std::sin(2.0), c4 = std::cos(0.5), s4 = std::sin(0.5);
  EXPECT_EQ(std::vector<double>(out.begin() + 6, out.end()),
            (std::vector<double>{1, 2, 3 * c - 4 * s, 3 * s + 4 * c, 5 * c4 - 6 * s4, 5 * s4 + 6 * c4}));
}

TEST(ReferenceRope, RotatesEveryHeadOfATokenAlike) {
  RopeProblem p{.tokens = 1, .heads = 2, .dim = 2, .rot = 2, .theta = 10000, .dtype = DType::f32};
  const auto x = f32_bytes({1, 0, 0, 1});
  const auto pos = i32_bytes({1});
  std::vector<double> out(4);
  reference::rope(p, in(x), in(pos), out.data());
  EXPECT_EQ(out, (std::vector<double>{std::cos(1.0), std::sin(1.0), -std::sin(1.0), std::cos(1.0)}));
}

TEST(ReferenceRope, RejectsANegativePosition) {
  RopeProblem p{.tokens = 2, .heads = 1, .dim = 2, .rot = 2, .dtype = DType::f32};
  const auto x = f32_bytes({1, 2, 3, 4});
  const auto pos = i32_bytes({5, -3});
  std::vector<double> out(4);
  EXPECT_EQ(error_of([&] { reference::rope(p, in(x), in(pos), out.data()); }),
            "reference::rope: operand pos: token 1 has position -3; positions are >= 0");
}

TEST(ReferenceSlice, CopiesTheBoxAlongTheAxis) {
  // [2, 3, 2] values 0..11, axis 1, begin 1, size 2.
  SliceProblem p{.outer = 2, .in_axis = 3, .inner = 2, .begin = 1, .size = 2, .dtype = DType::f32};
  std::vector<double> v(12);
  for (int i = 0; i < 12; ++i) v[i] = i;
  std::vector<double> out(8);
  reference::slice(p, in(f32_bytes(v)), out.data());
  EXPECT_EQ(out, (std::vector<double>{2, 3, 4, 5, 8, 9, 10, 11}));
}

TEST(ReferenceSlice, CopiesI32Exactly) {
  SliceProblem p{.outer = 3, .in_axis = 1, .inner = 1, .begin = 0, .size = 1, .dtype = DType::i32};
  std::vector<double> out(3);
  reference::slice(p, in(i32_bytes({-1, 123456789, 7})), out.data());
  EXPECT_EQ(out, (std::vector<double>{-1, 123456789, 7}));
}

TEST(ReferenceConcat, JoinsAlongTheAxisAndBroadcastsSizeOneDimensions) {
  // MLA: a [T=2, H=2, 2] and one shared b [T=2, 1, 1] for all heads -> [2, 2, 3].
  ConcatProblem p{.out_shape = {2, 2, 3}, .a_shape = {2, 2, 2}, .b_shape = {2, 1, 1}, .axis = 2, .dtype = DType::f32};
  const auto a = f32_bytes({1, 2, 3, 4, 5, 6, 7, 8});
  const auto b = f32_bytes({10, 20});
  std::vector<double> out(12);
  reference::concat(p, in(a), in(b), out.data());
  EXPECT_EQ(out, (std::vector<double>{1, 2, 10, 3, 4, 10, 5, 6, 20, 7, 8, 20}));
}

TEST(ReferenceConcat, JoinsAlongTheFirstAxis) {
  ConcatProblem p{.out_shape = {3, 2}, .a_shape = {1, 2}, .b_shape = {2, 2}, .axis = 0, .dtype = DType::i32};
  std::vector<double> out(6);
  reference::concat(p, in(i32_bytes({1, 2})), in(i32_bytes({3, 4, 5, 6})), out.data());
  EXPECT_EQ(out, (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

// ---- mixture of experts -----------------------------------------------------------------

// logits 0 (sigmoid 0.5) and these biases give the keys
//   expert  0     1   2      3      4    5      6     7
//   key     0.75  0   0.625  0.625  0.5  0.875  0.25  0.25
// groups of two: scores g0 0.75, g1 1.25, g2 1.375, g3 0.5.
const std::vector<double> kBias = {0.25, -0.5, 0.125, 0.125, 0, 0.375, -0.25, -0.25};

std::vector<double> topk(MoeTopkProblem p, const std::vector<double>& logits, const std::vector<double>& bias) {
  std::vector<double> out(static_cast<std::size_t>(p.tokens * p.k), -7);
  reference::moe_topk(p, in(f32_bytes(logits)), in(f32_bytes(bias)), out.data());
  return out;
}

TEST(ReferenceMoeTopk, ChoosesWithinTheTopGroupsByTheSumOfTheirTwoBestKeys) {
  // Top 2 groups: g2 and g1 -> experts 2..5; the best three, ties to the lower index:
  // 5, 2, 3. Expert 0 (second best key) is left out with its group.
  const MoeTopkProblem p{.tokens = 1, .experts = 8, .k = 3, .groups = 4, .top_groups = 2};
  EXPECT_EQ(topk(p, std::vector<double>(8, 0.0), kBias), (std::vector<double>{5, 2, 3}));
}

TEST(ReferenceMoeTopk, OneGroupIsAPlainTopK) {
  const MoeTopkProblem p{.tokens = 1, .experts = 8, .k = 3, .groups = 1, .top_groups = 1};
  EXPECT_EQ(topk(p, std::vector<double>(8, 0.0), kBias), (std::vector<double>{5, 0, 2}));
}

TEST(ReferenceMoeTopk, GroupsOfOneScoreByTheirOneKey) {
  // Top 3 groups of one: 5, 0 and 2 (tied with 3, lower index first); k = 2 of them.
  const MoeTopkProblem p{.tokens = 1, .experts = 8, .k = 2, .groups = 8, .top_groups = 3};
  EXPECT_EQ(topk(p, std::vector<double>(8, 0.0), kBias), (std::vector<double>{5, 0}));
}

TEST(ReferenceMoeTopk, KeysAreSigmoidOfTheLogitPlusBias) {
  // A bias of 0.25 on expert 0: key 0.75 beats sigmoid(1) = 0.73 but not sigmoid(2) = 0.88.
  const MoeTopkProblem p{.tokens = 2, .experts = 2, .k = 1};
  EXPECT_EQ(topk(p, {0, 1, 0, 2}, {0.25, 0}), (std::vector<double>{0, 1}));
}

TEST(ReferenceMoeWeights, NormalizesTheSigmoidOfTheChosenLogitsTimesScale) {
  const MoeWeightsProblem p{.tokens = 1, .experts = 3, .k = 2, .scale = 2.5};
  std::vector<double> out(2);
  reference::moe_weights(p, in(f32_bytes({0, 9, 100})), in(i32_bytes({2, 0})), out.data());
  const double s2 = 1 / (1 + std::exp(-100.0)), s0 = 0.5;
  EXPECT_DOUBLE_EQ(out[0], 2.5 * s2 / (s0 + s2));
  EXPECT_DOUBLE_EQ(out[1], 2.5 * s0 / (s0 + s2));
}

TEST(ReferenceMoeWeights, RejectsAnExpertOutOfRange) {
  const MoeWeightsProblem p{.tokens = 2, .experts = 3, .k = 1};
  std::vector<double> out(2);
  EXPECT_EQ(error_of([&] { reference::moe_weights(p, in(f32_bytes({0, 0, 0, 0, 0, 0})), in(i32_bytes({1, 3})), out.data()); }),
            "reference::moe_weights: operand experts: token 1 choice 0 is 3; an expert lies in 0..2");
}

// Three tokens choosing two of four experts: expert 0 gets (t0,j1), (t2,j0); expert 1 none;
// expert 2 (t0,j0), (t1,j0), (t2,j1); expert 3 (t1,j1).
const std::vector<double> kChosen = {2, 0, 2, 3, 0, 2};

std::vector<double> plan(std::int64_t align) {
  const MoePlanProblem p{.tokens = 3, .k = 2, .experts = 4, .align = align,
                         .rows = ir::moe_plan_rows(3, 2, 4, align)};
  std::vector<double> out(static_cast<std::size_t>(3 * p.rows), 7);
  reference::moe_plan(p, in(i32_bytes(kChosen)), out.data());
  return out;
}

TEST(ReferenceMoePlan, LaysExpertsOutInAlignedBlocksWithPadding) {
  // rows = 6 choices + 4 experts x 3 padding = 18, rounded up to 20. Expert 1 is empty
  // and takes no rows; blocks start at 0, 4 and 8; rows 9..19 are padding.
  const std::vector<double> n8(8, -1);
  std::vector<double> want = {0, 0, -1, -1, 2, 2, 2, -1, 3, -1, -1, -1};  // expert of each row
  want.insert(want.end(), n8.begin(), n8.end());
  const std::vector<double> tokens = {0, 2, -1, -1, 0, 1, 2, -1, 1, -1, -1, -1};
  want.insert(want.end(), tokens.begin(), tokens.end());
  want.insert(want.end(), n8.begin(), n8.end());
  const std::vector<double> rows = {4, 0, 5, 8, 1, 6};  // the row of each (token, choice)
  want.insert(want.end(), rows.begin(), rows.end());
  want.insert(want.end(), 14, -1);
  EXPECT_EQ(plan(4), want);
}

TEST(ReferenceMoePlan, AlignOneLeavesNoPadding) {
  EXPECT_EQ(plan(1), (std::vector<double>{0, 0, 2, 2, 2, 3,  //
                                          0, 2, 0, 1, 2, 1,  //
                                          2, 0, 3, 5, 1, 4}));
}

TEST(ReferenceMoePlan, RejectsAnExpertOutOfRange) {
  const MoePlanProblem p{.tokens = 1, .k = 2, .experts = 4, .align = 1, .rows = 2};
  std::vector<double> out(6);
  EXPECT_EQ(error_of([&] { reference::moe_plan(p, in(i32_bytes({1, -1})), out.data()); }),
            "reference::moe_plan: operand experts: token 0 choice 1 is -1; an expert lies in 0..3");
}

TEST(ReferenceMoeGather, CopiesTheTokenOfEachRowAndZerosPadding) {
  const MoeGatherProblem p{.tokens = 2, .rows = 3, .dim = 2, .dtype = DType::f32};
  const auto plan = i32_bytes({0, -1, 1, /**/ 1, -1, 0, /**/ 2, 0, -1});
  std::vector<double> out(6, 7);
  reference::moe_gather(p, in(f32_bytes({1, 2, 3, 4})), in(plan), out.data());
  EXPECT_EQ(out, (std::vector<double>{3, 4, 0, 0, 1, 2}));
}

TEST(ReferenceMoeGather, RejectsATokenOutOfRange) {
  const MoeGatherProblem p{.tokens = 2, .rows = 2, .dim = 1, .dtype = DType::f32};
  std::vector<double> out(2);
  EXPECT_EQ(error_of([&] { reference::moe_gather(p, in(f32_bytes({1, 2})), in(i32_bytes({0, 0, 0, 2, 0, 1})), out.data()); }),
            "reference::moe_gather: operand plan: plan[1, 1] is 2; -1 (padding) or a token lies in -1..1");
}

struct Grouped {
  GemmFp8GroupedProblem p{.m = 4, .n = 128, .k = 128, .groups = 2, .align = 2, .a_scale_dtype = DType::f32,
                          .b_scale_dtype = DType::f32, .out_dtype = DType::f32};
  std::vector<std::byte> a = e4m3_codes(std::vector<double>(4 * 128, 1.0));
  std::vector<std::byte> sa = f32_bytes({1, 1, 1, 1});
  std::vector<std::byte> b, sb = f32_bytes({1, 3});  // group g's 128 rows are scale block row g
  Grouped() {
    std::vector<double> w(2 * 128 * 128, 0.5);
    std::fill(w.begin() + 128 * 128, w.end(), 2.0);  // group 0 weights 0.5, group 1 weights 2
    b = e4m3_codes(w);
  }
  std::vector<double> run(const std::vector<double>& group) {
    std::vector<double> out(static_cast<std::size_t>(p.m * p.n), 7);
    const auto g = i32_bytes(group);
    reference::gemm_fp8_grouped(p, in(a, &sa), in(b, &sb), in(g), out.data());
    return out;
  }
};

TEST(ReferenceGemmFp8Grouped, MultipliesEachRowByItsGroupsWeightsAndZerosPadding) {
  Grouped t;
  const std::vector<double> out = t.run({1, 1, 0, -1});
  // Group 1: 128 x 1 x 2 x sB 3 = 768; group 0: 128 x 0.5 x sB 1 = 64; padding: 0.
  for (int n = 0; n < 128; ++n) {
    EXPECT_EQ(out[n], 768);
    EXPECT_EQ(out[128 + n], 768);
    EXPECT_EQ(out[256 + n], 64);
    EXPECT_EQ(out[384 + n], 0);
  }
}

TEST(ReferenceGemmFp8Grouped, RejectsAGroupOutOfRange) {
  Grouped t;
  EXPECT_EQ(error_of([&] { t.run({0, 0, 2, 2}); }),
            "reference::gemm_fp8_grouped: operand group: row 2 has group 2, not -1 (padding) or a group (0..1)");
}

TEST(ReferenceGemmFp8Grouped, RejectsATileThatMixesGroups) {
  Grouped t;
  EXPECT_EQ(error_of([&] { t.run({0, 1, 1, 1}); }),
            "reference::gemm_fp8_grouped: operand group: row 1 has group 1 but row 0 has 0; inside an "
            "align=2-row tile a row keeps the group of the row above or is padding (-1)");
  // Padding first, then a group, in one tile: a kernel that reads a tile's group from its
  // first row would skip it.
  EXPECT_EQ(error_of([&] { t.run({-1, 0, 1, 1}); }),
            "reference::gemm_fp8_grouped: operand group: row 1 has group 0 but row 0 has -1; inside an "
            "align=2-row tile a row keeps the group of the row above or is padding (-1)");
  EXPECT_NO_THROW(t.run({0, -1, -1, -1}));
}

TEST(ReferenceMoeCombine, SumsTheWeightedRowsOfEachTokensChoices) {
  // 2 tokens x 2 choices in 4 rows: (0,0) -> row 2, (0,1) -> row 0, (1,0) -> row 1, (1,1) -> row 3.
  const MoeCombineProblem p{.tokens = 2, .k = 2, .rows = 4, .dim = 2, .dtype = DType::f32};
  const auto y = f32_bytes({1, 2, 3, 4, 5, 6, 7, 8});
  const auto plan = i32_bytes({0, 0, 1, 1, /**/ 0, 1, 0, 1, /**/ 2, 0, 1, 3});
  const auto w = f32_bytes({0.5, 2, -1, 0.25});
  std::vector<double> out(4);
  reference::moe_combine(p, in(y), in(plan), in(w), out.data());
  EXPECT_EQ(out, (std::vector<double>{0.5 * 5 + 2 * 1, 0.5 * 6 + 2 * 2, -3 + 0.25 * 7, -4 + 0.25 * 8}));
}

TEST(ReferenceMoeCombine, RejectsAChoiceWithoutARow) {
  const MoeCombineProblem p{.tokens = 1, .k = 2, .rows = 2, .dim = 1, .dtype = DType::f32};
  std::vector<double> out(1);
  EXPECT_EQ(error_of([&] {
              reference::moe_combine(p, in(f32_bytes({1, 2})), in(i32_bytes({0, 0, 0, 0, 1, -1})),
                                     in(f32_bytes({1, 1})), out.data());
            }),
            "reference::moe_combine: operand plan: plan[2, 1] (token 0 choice 1) is -1; a row lies in 0..1");
}

// ---- moe_topk comparison ----------------------------------------------------------------

double topk_mismatch(const MoeTopkProblem& p, const std::vector<double>& logits, const std::vector<double>& bias,
                     const std::vector<double>& got) {
  const auto l = f32_bytes(logits), b = f32_bytes(bias);
  const ConstOperand inputs[] = {in(l), in(b)};
  std::vector<double> ref(got.size());
  reference::run(p, inputs, ref.data());
  return reference::mismatch(p, inputs, ref, got);
}

TEST(ReferenceMismatch, TopkAcceptsTheExactChoiceAndANearTieSwap) {
  // Experts 2 and 3 differ by 2^-22 in key: an fp32 kernel may order them either way.
  const MoeTopkProblem p{.tokens = 1, .experts = 8, .k = 3, .groups = 4, .top_groups = 2};
  std::vector<double> bias = kBias;
  bias[3] += 0x1p-22;
  const std::vector<double> logits(8, 0.0);
  EXPECT_EQ(topk_mismatch(p, logits, bias, {5, 3, 2}), 0.0);
  const double swapped = topk_mismatch(p, logits, bias, {5, 2, 3});
  EXPECT_GT(swapped, 0.0);
  EXPECT_LE(swapped, reference::tolerance(p));
}

TEST(ReferenceMismatch, TopkAcceptsANearTieBetweenGroups) {
  // Groups of two, top 1: g0 = {0.75, 0.5} and g1 = {0.625, 0.625 + 2^-22}: scores 1.25 and
  // 1.25 + 2^-22; either group may be kept, then its best expert.
  const MoeTopkProblem p{.tokens = 1, .experts = 4, .k = 1, .groups = 2, .top_groups = 1};
  const std::vector<double> bias = {0.25, 0, 0.125, 0.125 + 0x1p-22};
  const std::vector<double> logits(4, 0.0);
  EXPECT_EQ(topk_mismatch(p, logits, bias, {3}), 0.0);
  EXPECT_LE(topk_mismatch(p, logits, bias, {0}), reference::tolerance(p));
  EXPECT_GT(topk_mismatch(p, logits, bias, {1}), reference::tolerance(p));  // not g0's best
}

TEST(ReferenceMismatch, TopkRejectsAWrongChoice) {
  const MoeTopkProblem p{.tokens = 1, .experts = 8, .k = 3, .groups = 4, .top_groups = 2};
  const std::vector<double> logits(8, 0.0);
  const double tol = reference::tolerance(p);
  EXPECT_GT(topk_mismatch(p, logits, kBias, {5, 2, 4}), tol);  // 4 (0.5) instead of 3 (0.625)
  EXPECT_GT(topk_mismatch(p, logits, kBias, {2, 5, 3}), tol);  // not best first
  EXPECT_GT(topk_mismatch(p, logits, kBias, {5, 0, 2}), tol);  // expert 0's group is not kept
  EXPECT_EQ(topk_mismatch(p, logits, kBias, {5, 2, 2}), std::numeric_limits<double>::infinity());
  EXPECT_EQ(topk_mismatch(p, logits, kBias, {5, 2, 8}), std::numeric_limits<double>::infinity());
  EXPECT_EQ(topk_mismatch(p, logits, kBias, {5, 2, 0.5}), std::numeric_limits<double>::infinity());
}

TEST(ReferenceMismatch, IsRelErrForEveryOtherOp) {
  const Problem p = AddProblem{.numel = 2, .dtype = DType::f32};
  const std::vector<double> ref = {3, 4}, got = {3, 4.5};
  EXPECT_EQ(reference::mismatch(p, {}, ref, got), rel_err(got, ref));
}

// ---- run --------------------------------------------------------------------------------

TEST(ReferenceRun, DispatchesOnTheProblemKind) {
  const Problem p = AddProblem{.numel = 2, .dtype = DType::f32};
  const auto a = f32_bytes({1, 2}), b = f32_bytes({10, 20});
  const ConstOperand inputs[] = {in(a), in(b)};
  std::vector<double> out(2);
  reference::run(p, inputs, out.data());
  EXPECT_EQ(out, (std::vector<double>{11, 22}));
}

TEST(ReferenceRun, RejectsTheWrongNumberOfInputs) {
  const Problem p = AttentionProblem{.seq_q = 1, .seq_kv = 1, .head_dim = 1, .head_dim_v = 1};
  const ConstOperand inputs[2] = {};
  double out = 0;
  EXPECT_THROW(reference::run(p, inputs, &out), Error);
}

// ---- tolerance table --------------------------------------------------------------------

TEST(Tolerance, QuantizationIsBitExact) {
  EXPECT_EQ(reference::tolerance(QuantizeProblem{}), 0.0);
  EXPECT_EQ(reference::tolerance(DequantizeProblem{.scale_dtype = DType::ue8m0, .out_dtype = DType::f32}), 0.0);
}

TEST(Tolerance, NarrowOutputsAllowTheirRounding) {
  for (DType d : {DType::f32, DType::f16, DType::bf16}) {
    const Problem problems[] = {
        GemmFp8Problem{.out_dtype = d == DType::f16 ? DType::f32 : d}, GemmProblem{.out_dtype = d},
        AttentionProblem{.dtype = d}, RmsNormProblem{.dtype = d}, SiluMulProblem{.dtype = d},
        AddProblem{.dtype = d}, DequantizeProblem{.scale_dtype = DType::f32, .out_dtype = d}};
    for (const Problem& p : problems) {
      const reference::Tolerance t = reference::tolerance_rule(p);
      EXPECT_FALSE(t.reason.empty()) << op_name(p);
      EXPECT_GT(t.bound, 0) << op_name(p);
      const double unit = d == DType::bf16 ? 0x1p-8 : d == DType::f16 ? 0x1p-11 : 0x1p-24;
      if (!std::holds_alternative<GemmFp8Problem>(p) || d != DType::f16) {
        EXPECT_GE(t.bound, unit) << op_name(p) << " " << dtype_name(d);
        EXPECT_LE(t.bound, std::max(4 * unit, 1e-4)) << op_name(p) << " " << dtype_name(d);
      }
    }
  }
}

TEST(Tolerance, CopiesAndLayoutsAreExact) {
  const Problem problems[] = {SliceProblem{}, ConcatProblem{}, MoePlanProblem{}, MoeGatherProblem{}};
  for (const Problem& p : problems) {
    EXPECT_EQ(reference::tolerance(p), 0.0) << op_name(p);
    EXPECT_FALSE(reference::tolerance_rule(p).reason.empty()) << op_name(p);
  }
}

TEST(Tolerance, ArithmeticOpsOfTheMoeLayerHaveABound) {
  const Problem problems[] = {RopeProblem{.dtype = DType::f32}, MoeTopkProblem{}, MoeWeightsProblem{},
                              GemmFp8GroupedProblem{.out_dtype = DType::f32}, MoeCombineProblem{.dtype = DType::f32}};
  for (const Problem& p : problems) {
    EXPECT_GT(reference::tolerance(p), 0.0) << op_name(p);
    EXPECT_LE(reference::tolerance(p), 2e-3) << op_name(p);
    EXPECT_FALSE(reference::tolerance_rule(p).reason.empty()) << op_name(p);
  }
}

// ---- KernelSpec text --------------------------------------------------------------------

TEST(KernelSpecText, NamesEveryOp) {
  EXPECT_EQ(op_name(GemmFp8Problem{}), "gemm_fp8");
  EXPECT_EQ(op_name(GemmProblem{}), "gemm");
  EXPECT_EQ(op_name(AttentionProblem{}), "attention");
  EXPECT_EQ(op_name(RmsNormProblem{}), "rmsnorm");
  EXPECT_EQ(op_name(SiluMulProblem{}), "silu_mul");
  EXPECT_EQ(op_name(AddProblem{}), "add");
  EXPECT_EQ(op_name(QuantizeProblem{}), "quantize_fp8");
  EXPECT_EQ(op_name(DequantizeProblem{}), "dequantize");
}

TEST(KernelSpecText, DescribesGemmFp8AsDocumented) {
  const KernelSpec spec{GemmFp8Problem{.m = 256, .n = 384, .k = 512, .out_dtype = DType::f32},
                        TileConfig{.m = 64, .n = 128, .k = 128, .stages = 2}};
  EXPECT_EQ(describe(spec),
            "gemm_fp8 m=256 n=384 k=512 a=f8e4m3 b=f8e4m3 sa=ue8m0 sb=ue8m0 out=f32 tiles=64x128x128s2");
}

TEST(KernelSpecText, PrintsDoublesShortestAndExactly) {
  const KernelSpec a{AttentionProblem{.seq_q = 1, .seq_kv = 4096, .heads_q = 16, .heads_kv = 1,
                                      .head_dim = 576, .head_dim_v = 512, .causal = true,
                                      .scale = 0.125, .dtype = DType::bf16},
                     {}};
  EXPECT_EQ(describe(a),
            "attention batch=1 sq=1 skv=4096 hq=16 hkv=1 dk=576 dv=512 causal=1 scale=0.125 "
            "dtype=bf16 tiles=0x0x0s0");
  KernelSpec b = a;
  std::get<AttentionProblem>(b.problem).scale = std::nextafter(0.125, 1.0);
  EXPECT_NE(describe(a), describe(b));
  EXPECT_EQ(describe(KernelSpec{RmsNormProblem{.rows = 4, .dim = 7168, .eps = 1e-6}, {}}),
            "rmsnorm rows=4 dim=7168 eps=1e-06 dtype=bf16 w=f32 tiles=0x0x0s0");
}

TEST(KernelSpecText, DifferentSpecsNeverShareALine) {
  const KernelSpec specs[] = {
      {GemmProblem{.m = 1, .n = 2, .k = 3}, {}},
      {GemmProblem{.m = 1, .n = 2, .k = 3, .in_dtype = DType::f32}, {}},
      {GemmProblem{.m = 1, .n = 2, .k = 3}, {.m = 1}},
      {GemmProblem{.m = 1, .n = 2, .k = 3}, {.stages = 1}},
      {AddProblem{.numel = 6}, {}},
      {SiluMulProblem{.rows = 2, .dim = 3}, {}},
      {QuantizeProblem{.rows = 2, .cols = 3}, {}},
      {QuantizeProblem{.rows = 2, .cols = 3, .block = kWeightBlock}, {}},
      {QuantizeProblem{.rows = 2, .cols = 3, .scale_dtype = DType::f32}, {}},
      {DequantizeProblem{.rows = 2, .cols = 3}, {}},
      {DequantizeProblem{.rows = 2, .cols = 3, .in_dtype = DType::f8e5m2}, {}},
      {AttentionProblem{.seq_q = 1, .seq_kv = 2, .head_dim = 3, .head_dim_v = 3, .scale = -0.0}, {}},
      {AttentionProblem{.seq_q = 1, .seq_kv = 2, .head_dim = 3, .head_dim_v = 3, .scale = 0.0}, {}},
      {AttentionProblem{.seq_q = 1, .seq_kv = 2, .head_dim = 3, .head_dim_v = 3, .causal = true}, {}},
  };
  for (std::size_t i = 0; i < std::size(specs); ++i)
    for (std::size_t j = i + 1; j < std::size(specs); ++j)
      EXPECT_NE(describe(specs[i]), describe(specs[j])) << describe(specs[i]);
}

}  // namespace
}  // namespace anychip::kernels
