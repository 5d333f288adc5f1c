// The float64 reference against hand-computed cases, so that the oracle every backend is
// checked against is itself pinned; plus the tolerance table and the KernelSpec text.
#include "kernels/reference/reference.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <variant>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
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
