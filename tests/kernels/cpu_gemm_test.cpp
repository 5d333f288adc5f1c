// The CPU GEMMs (cpu::gemm_fp8, cpu::gemm) against the float64 reference, on every
// instruction-set path this CPU can run (forced in turn with ANYCHIP_CPU_ISA).
//
// Tolerances (rel_err = ||out - ref|| / ||ref||, anychip/tensor.hpp):
//   f32 out  < 1e-5: inputs are decoded exactly (FP8 and bf16 are exact in bf16/fp32 and
//            their products exact in fp32), so the only error is fp32 accumulation, about
//            sqrt(K) * 2^-24 ~ 2e-6 at K = 1024 on random signs, plus one fp32 rounding of
//            each scale product and promotion; 1e-5 leaves a 5x margin. A wrong scale index
//            (magnitudes differ by up to 2^6 between blocks) or a dropped block is O(1).
//   bf16 out < 8e-3: rounding to bf16 (8 significant bits, round to nearest even) alone is
//            up to 2^-8 = 3.9e-3 relative per element; 8e-3 is that with a 2x margin.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "anychip/tensor.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/fp8_decode.hpp"
#include "kernels/cpu/gemm_kernels.hpp"
#include "kernels/reference/reference.hpp"

namespace anychip::kernels {
namespace {

constexpr double kF32OutTolerance = 1e-5;
constexpr double kBf16OutTolerance = 8e-3;

double tolerance_for(DType out) { return out == DType::f32 ? kF32OutTolerance : kBf16OutTolerance; }

// Sets ANYCHIP_CPU_ISA for one scope, restoring the previous value after.
class ScopedIsa {
 public:
  explicit ScopedIsa(const char* value) {
    if (const char* old = std::getenv("ANYCHIP_CPU_ISA")) saved_ = old, had_ = true;
    if (value)
      setenv("ANYCHIP_CPU_ISA", value, 1);
    else
      unsetenv("ANYCHIP_CPU_ISA");
  }
  ~ScopedIsa() {
    if (had_)
      setenv("ANYCHIP_CPU_ISA", saved_.c_str(), 1);
    else
      unsetenv("ANYCHIP_CPU_ISA");
  }

 private:
  std::string saved_;
  bool had_ = false;
};

// The paths this CPU can run, best first.
std::vector<std::string> supported_isas() {
  ScopedIsa none(nullptr);
  const std::string best(cpu::isa());
  const std::vector<std::string> ladder = {"avx512bf16", "avx2", "generic"};
  std::vector<std::string> out;
  bool reached = false;
  for (const std::string& isa : ladder) {
    reached = reached || isa == best;
    if (reached) out.push_back(isa);
  }
  return out;
}

// An output tensor whose every element is NaN (all-ones bytes are NaN in f32 and bf16),
// so that an element the kernel does not write fails the comparison.
HostTensor poisoned_output(DType dtype, std::int64_t m, std::int64_t n) {
  HostTensor d(TensorType{dtype, {m, n}, std::nullopt});
  std::memset(d.data.data(), 0xFF, d.data.size());
  return d;
}

std::string describe(const GemmFp8Problem& p) {
  return "gemm_fp8 " + std::to_string(p.m) + "x" + std::to_string(p.n) + "x" + std::to_string(p.k) +
         " a=" + std::string(dtype_name(p.a_dtype)) + " b=" + std::string(dtype_name(p.b_dtype)) +
         " sa=" + std::string(dtype_name(p.a_scale_dtype)) + " sb=" + std::string(dtype_name(p.b_scale_dtype)) +
         " out=" + std::string(dtype_name(p.out_dtype));
}

std::string describe(const GemmProblem& p) {
  return "gemm " + std::to_string(p.m) + "x" + std::to_string(p.n) + "x" + std::to_string(p.k) +
         " in=" + std::string(dtype_name(p.in_dtype)) + " out=" + std::string(dtype_name(p.out_dtype));
}

// Runs p on every path on fresh random inputs and compares each with the reference.
void expect_matches_reference(const GemmFp8Problem& p, std::uint64_t seed) {
  const HostTensor a = HostTensor::random(
      TensorType{p.a_dtype, {p.m, p.k}, ScaleLayout{kActivationBlock, p.a_scale_dtype}}, seed);
  const HostTensor b = HostTensor::random(
      TensorType{p.b_dtype, {p.n, p.k}, ScaleLayout{kWeightBlock, p.b_scale_dtype}}, seed + 1);
  const ConstOperand ao{a.data.data(), a.scales.data()}, bo{b.data.data(), b.scales.data()};
  std::vector<double> ref(static_cast<std::size_t>(p.m * p.n));
  reference::gemm_fp8(p, ao, bo, ref.data());
  for (const std::string& isa : supported_isas()) {
    ScopedIsa force(isa.c_str());
    ASSERT_EQ(cpu::isa(), isa);
    HostTensor d = poisoned_output(p.out_dtype, p.m, p.n);
    cpu::gemm_fp8(p, ao, bo, Operand{d.data.data(), nullptr});
    EXPECT_LT(rel_err(d.values(), ref), tolerance_for(p.out_dtype)) << describe(p) << " isa=" << isa;
  }
}

void expect_matches_reference(const GemmProblem& p, std::uint64_t seed) {
  const HostTensor a = HostTensor::random(TensorType{p.in_dtype, {p.m, p.k}, std::nullopt}, seed);
  const HostTensor b = HostTensor::random(TensorType{p.in_dtype, {p.n, p.k}, std::nullopt}, seed + 1);
  const ConstOperand ao{a.data.data(), nullptr}, bo{b.data.data(), nullptr};
  std::vector<double> ref(static_cast<std::size_t>(p.m * p.n));
  reference::gemm(p, ao, bo, ref.data());
  for (const std::string& isa : supported_isas()) {
    ScopedIsa force(isa.c_str());
    ASSERT_EQ(cpu::isa(), isa);
    HostTensor d = poisoned_output(p.out_dtype, p.m, p.n);
    cpu::gemm(p, ao, bo, Operand{d.data.data(), nullptr});
    EXPECT_LT(rel_err(d.values(), ref), tolerance_for(p.out_dtype)) << describe(p) << " isa=" << isa;
  }
}

struct Shape3 {
  std::int64_t m, n, k;
};

// M = 1, sizes that are not multiples of any micro-tile (14x32, 6x16, 4x16), several K
// chunks, several tiles in M and N, and a column tile (N = 330) that starts inside a
// 128-column scale block.
const Shape3 kFp8Shapes[] = {{1, 1, 128},    {3, 5, 128},    {17, 130, 256}, {129, 257, 384},
                             {300, 200, 1024}, {7, 330, 256}, {1, 300, 512},  {64, 64, 128}};

// The kernels' FP8 -> bf16 tables are built from the bit layouts, independently of
// anychip/formats.hpp; both must agree on every byte (NaN as NaN, zero signs included).
TEST(Fp8Decode, TablesAgreeWithScalarConversionsOnEveryByte) {
  for (DType fp8 : {DType::f8e4m3, DType::f8e5m2}) {
    const auto& table = cpu::gemm_detail::magnitude_table(fp8);
    for (unsigned byte = 0; byte < 256; ++byte) {
      const auto b = static_cast<std::uint8_t>(byte);
      const float want = fp8 == DType::f8e4m3 ? e4m3_to_float(b) : e5m2_to_float(b);
      const float got = cpu::gemm_detail::bf16_bits_to_float(cpu::gemm_detail::fp8_to_bf16_bits(b, table));
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got)) << dtype_name(fp8) << " byte " << byte;
      } else {
        EXPECT_EQ(got, want) << dtype_name(fp8) << " byte " << byte;
        EXPECT_EQ(std::signbit(got), std::signbit(want)) << dtype_name(fp8) << " byte " << byte;
      }
    }
  }
}

float fp8_value(DType fp8, std::uint8_t b) { return fp8 == DType::f8e4m3 ? e4m3_to_float(b) : e5m2_to_float(b); }

// D = A * B^T with unit scales, where one operand holds FP8 bytes and the other is the
// identity, so that D holds the decoded bytes themselves, exactly.
std::vector<float> decode_through_gemm(DType fp8, const std::vector<std::uint8_t>& bytes, bool bytes_in_a) {
  const std::int64_t k = 256, count = static_cast<std::int64_t>(bytes.size());
  const std::uint8_t one = fp8 == DType::f8e4m3 ? 0x38 : 0x3C;
  std::vector<std::uint8_t> values(k, 0), identity(static_cast<std::size_t>(count * k), 0);
  std::copy(bytes.begin(), bytes.end(), values.begin());
  for (std::int64_t i = 0; i < count; ++i) identity[static_cast<std::size_t>(i * k + i)] = one;
  std::vector<std::uint8_t> unit_scales(static_cast<std::size_t>(count * 2), 127);  // 2^0
  std::vector<float> d(static_cast<std::size_t>(count), std::nanf(""));
  GemmFp8Problem p{bytes_in_a ? 1 : count, bytes_in_a ? count : 1, k, fp8, fp8, DType::ue8m0, DType::ue8m0,
                   DType::f32};
  const ConstOperand v{values.data(), unit_scales.data()}, id{identity.data(), unit_scales.data()};
  cpu::gemm_fp8(p, bytes_in_a ? v : id, bytes_in_a ? id : v, {d.data(), nullptr});
  return d;
}

TEST(GemmFp8, DecodesEveryFiniteFp8ByteExactlyInBothOperandsOnEveryIsa) {
  for (const std::string& isa : supported_isas()) {
    ScopedIsa force(isa.c_str());
    for (DType fp8 : {DType::f8e4m3, DType::f8e5m2}) {
      std::vector<std::uint8_t> finite;
      for (unsigned b = 0; b < 256; ++b)
        if (std::isfinite(fp8_value(fp8, static_cast<std::uint8_t>(b)))) finite.push_back(static_cast<std::uint8_t>(b));
      for (bool in_a : {true, false}) {
        const std::vector<float> d = decode_through_gemm(fp8, finite, in_a);
        for (std::size_t i = 0; i < finite.size(); ++i)
          EXPECT_EQ(d[i], fp8_value(fp8, finite[i]))
              << "isa=" << isa << " " << dtype_name(fp8) << " byte " << int(finite[i]) << (in_a ? " in A" : " in B");
      }
    }
  }
}

TEST(GemmFp8, NanInputGivesNanInItsRowOnly) {
  for (const std::string& isa : supported_isas()) {
    ScopedIsa force(isa.c_str());
    const std::int64_t m = 3, n = 40, k = 128;
    std::vector<std::uint8_t> a(m * k, 0x38), b(n * k, 0x38), sa(m, 127), sb(1, 127);  // all ones
    a[1 * k + 77] = 0x7F;  // E4M3 NaN in row 1
    std::vector<float> d(m * n);
    cpu::gemm_fp8({m, n, k, DType::f8e4m3, DType::f8e4m3, DType::ue8m0, DType::ue8m0, DType::f32},
                  {a.data(), sa.data()}, {b.data(), sb.data()}, {d.data(), nullptr});
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        if (i == 1)
          EXPECT_TRUE(std::isnan(d[i * n + j])) << "isa=" << isa << " (" << i << "," << j << ")";
        else
          EXPECT_EQ(d[i * n + j], 128.0f) << "isa=" << isa << " (" << i << "," << j << ")";
      }
  }
}

TEST(GemmFp8, MatchesReferenceOnEveryIsaForEdgeAndMultiTileShapes) {
  std::uint64_t seed = 100;
  for (const Shape3& s : kFp8Shapes) {
    for (DType out : {DType::f32, DType::bf16}) {
      GemmFp8Problem p;
      p.m = s.m, p.n = s.n, p.k = s.k;
      p.a_dtype = p.b_dtype = DType::f8e4m3;
      p.a_scale_dtype = p.b_scale_dtype = seed % 4 < 2 ? DType::ue8m0 : DType::f32;
      p.out_dtype = out;
      expect_matches_reference(p, seed++);
    }
  }
}

TEST(GemmFp8, MatchesReferenceForEveryCombinationOfOperandScaleAndOutputDtypes) {
  std::uint64_t seed = 200;
  for (DType a : {DType::f8e4m3, DType::f8e5m2})
    for (DType b : {DType::f8e4m3, DType::f8e5m2})
      for (DType sa : {DType::ue8m0, DType::f32})
        for (DType sb : {DType::ue8m0, DType::f32})
          for (DType out : {DType::f32, DType::bf16}) {
            GemmFp8Problem p{33, 70, 256, a, b, sa, sb, out};
            expect_matches_reference(p, seed++);
          }
}

// Where the CPU has AVX-512 VBMI the byte-table FP8 decoder is used; the word-table
// decoder (for AVX-512 BF16 CPUs without VBMI, e.g. Cooper Lake) is run here directly.
TEST(GemmFp8, Avx512WordTableDecoderMatchesReferenceToo) {
  if (cpu::gemm_detail::detected_isa() != cpu::gemm_detail::Isa::avx512bf16) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  std::uint64_t seed = 400;
  for (DType fp8 : {DType::f8e4m3, DType::f8e5m2})
    for (const Shape3& s : {Shape3{129, 257, 384}, Shape3{7, 330, 256}}) {
      GemmFp8Problem p{s.m, s.n, s.k, fp8, fp8, DType::f32, DType::ue8m0, DType::f32};
      const HostTensor a = HostTensor::random(TensorType{fp8, {s.m, s.k}, ScaleLayout{kActivationBlock, DType::f32}}, seed++);
      const HostTensor b = HostTensor::random(TensorType{fp8, {s.n, s.k}, ScaleLayout{kWeightBlock, DType::ue8m0}}, seed++);
      std::vector<double> ref(static_cast<std::size_t>(s.m * s.n));
      reference::gemm_fp8(p, {a.data.data(), a.scales.data()}, {b.data.data(), b.scales.data()}, ref.data());
      HostTensor d = poisoned_output(DType::f32, s.m, s.n);
      cpu::gemm_detail::GemmArgs g;
      g.m = s.m, g.n = s.n, g.k = s.k;
      g.a_dtype = g.b_dtype = fp8;
      g.a = a.data.data(), g.b = b.data.data();
      g.a_scales = a.scales.data(), g.b_scales = b.scales.data();
      g.a_scale_dtype = DType::f32, g.b_scale_dtype = DType::ue8m0;
      g.d = d.data.data(), g.out_dtype = DType::f32;
      cpu::gemm_detail::run_gemm(g, cpu::gemm_detail::engine_avx512(g, /*vbmi=*/false));
      EXPECT_LT(rel_err(d.values(), ref), kF32OutTolerance) << describe(p);
    }
}

TEST(GemmFp8, RejectsKNotMultipleOf128) {
  GemmFp8Problem p{4, 4, 1000, DType::f8e4m3, DType::f8e4m3, DType::ue8m0, DType::ue8m0, DType::f32};
  std::vector<std::uint8_t> a(4 * 1000), b(4 * 1000), scales(64, 127);
  std::vector<float> d(16);
  try {
    cpu::gemm_fp8(p, {a.data(), scales.data()}, {b.data(), scales.data()}, {d.data(), nullptr});
    FAIL() << "K=1000 was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("K=1000 is not a multiple of 128"), std::string::npos) << e.what();
  }
}

TEST(GemmFp8, RejectsNonFp8OperandDtype) {
  GemmFp8Problem p{4, 4, 128, DType::bf16, DType::f8e4m3, DType::ue8m0, DType::ue8m0, DType::f32};
  std::vector<std::uint8_t> a(4 * 256), b(4 * 128), scales(64, 127);
  std::vector<float> d(16);
  EXPECT_THROW(cpu::gemm_fp8(p, {a.data(), scales.data()}, {b.data(), scales.data()}, {d.data(), nullptr}),
               Error);
}

TEST(Gemm, MatchesReferenceOnEveryIsaForEveryInputAndOutputDtype) {
  const Shape3 shapes[] = {{1, 1, 1}, {3, 5, 7}, {17, 130, 255}, {129, 257, 384}, {300, 200, 1024}, {7, 330, 129}};
  std::uint64_t seed = 300;
  for (const Shape3& s : shapes)
    for (DType in : {DType::f32, DType::bf16})
      for (DType out : {DType::f32, DType::bf16}) {
        GemmProblem p{s.m, s.n, s.k, in, out};
        expect_matches_reference(p, seed++);
      }
}

TEST(Gemm, WritesZerosWhenKIsZero) {
  for (const std::string& isa : supported_isas()) {
    ScopedIsa force(isa.c_str());
    GemmProblem p{5, 9, 0, DType::bf16, DType::f32};
    HostTensor d = poisoned_output(DType::f32, 5, 9);
    cpu::gemm(p, {nullptr, nullptr}, {nullptr, nullptr}, {d.data.data(), nullptr});
    for (double v : d.values()) EXPECT_EQ(v, 0.0) << "isa=" << isa;
  }
}

TEST(CpuIsa, OverrideSelectsEachLowerPath) {
  for (const std::string& isa : supported_isas()) {
    ScopedIsa force(isa.c_str());
    EXPECT_EQ(cpu::isa(), isa);
  }
}

TEST(CpuIsa, UnknownOverrideIsAnErrorNamingTheVariable) {
  ScopedIsa force("avx9000");
  try {
    (void)cpu::isa();
    FAIL() << "ANYCHIP_CPU_ISA=avx9000 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ANYCHIP_CPU_ISA=avx9000"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace anychip::kernels
