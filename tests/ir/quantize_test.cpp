// Block quantization (include/anychip/quantize.hpp): the DeepSeek-V3 recipe, its scale
// layouts and its argument checks.
#include "anychip/quantize.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"

namespace anychip {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Quantized {
  std::vector<std::uint8_t> q;
  std::vector<std::byte> scales;
};

std::size_t scale_bytes(std::int64_t rows, std::int64_t cols, BlockShape b, DType scale_dtype) {
  return static_cast<std::size_t>(scale_rows(rows, b) * scale_cols(cols, b)) *
         (scale_dtype == DType::f32 ? 4 : 1);
}

// Outputs start poisoned (NaN codes, NaN scales) so that an element left unwritten shows.
Quantized quantize(const std::vector<float>& x, std::int64_t rows, std::int64_t cols, BlockShape b,
                   DType fp8, DType scale_dtype) {
  Quantized out{std::vector<std::uint8_t>(x.size(), 0x7F),
                std::vector<std::byte>(scale_bytes(rows, cols, b, scale_dtype), std::byte{0xFF})};
  quantize_blocks(x, rows, cols, b, fp8, scale_dtype, out.q, out.scales);
  return out;
}

std::vector<float> dequantize(const Quantized& qz, std::int64_t rows, std::int64_t cols, BlockShape b,
                              DType fp8, DType scale_dtype) {
  std::vector<float> out(qz.q.size(), kNaN);
  dequantize_blocks(qz.q, qz.scales, rows, cols, b, fp8, scale_dtype, out);
  return out;
}

// Fresh random values, never zero: uniform in [-1, 1) times a magnitude 2^k (k in
// [-6, 6]) chosen per block, so that each block needs its own scale.
std::vector<float> random_matrix(std::int64_t rows, std::int64_t cols, BlockShape b, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-6, 6);
  std::vector<float> mag(static_cast<std::size_t>(scale_rows(rows, b) * scale_cols(cols, b)));
  for (float& m : mag) m = std::ldexp(1.0f, exponent(rng));
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      float v = 0;
      while (v == 0) v = uniform(rng);
      x[static_cast<std::size_t>(r * cols + c)] =
          v * mag[static_cast<std::size_t>((r / b.rows) * scale_cols(cols, b) + c / b.cols)];
    }
  return x;
}

// The recipe, written out element by element with nothing shared with the library but
// the scalar conversions: the expected codes and scales.
struct Expected {
  std::vector<std::uint8_t> q;
  std::vector<float> scales;
};

Expected reference(const std::vector<float>& x, std::int64_t rows, std::int64_t cols, BlockShape b,
                   DType fp8, DType scale_dtype) {
  const float fmt_max = fp8 == DType::f8e4m3 ? 448.0f : 57344.0f;
  const std::int64_t sr = scale_rows(rows, b), sc = scale_cols(cols, b);
  Expected e{std::vector<std::uint8_t>(x.size()), std::vector<float>(static_cast<std::size_t>(sr * sc))};
  for (std::int64_t i = 0; i < sr; ++i)
    for (std::int64_t j = 0; j < sc; ++j) {
      float amax = 0;
      for (std::int64_t r = i * b.rows; r < std::min(rows, (i + 1) * b.rows); ++r)
        for (std::int64_t c = j * b.cols; c < std::min(cols, (j + 1) * b.cols); ++c) {
          const float v = x[static_cast<std::size_t>(r * cols + c)];
          if (!std::isnan(v)) amax = std::max(amax, std::fabs(v));
        }
      float s = std::max(amax, 1e-4f) / fmt_max;
      if (scale_dtype == DType::ue8m0) {
        int exp;
        const float m = std::frexp(s, &exp);  // s = m * 2^exp, m in [0.5, 1)
        s = std::ldexp(1.0f, m == 0.5f ? exp - 1 : exp);  // 2^ceil(log2 s)
      }
      e.scales[static_cast<std::size_t>(i * sc + j)] = s;
      for (std::int64_t r = i * b.rows; r < std::min(rows, (i + 1) * b.rows); ++r)
        for (std::int64_t c = j * b.cols; c < std::min(cols, (j + 1) * b.cols); ++c) {
          const float v = x[static_cast<std::size_t>(r * cols + c)] / s;
          e.q[static_cast<std::size_t>(r * cols + c)] =
              fp8 == DType::f8e4m3 ? float_to_e4m3(v) : float_to_e5m2(v);
        }
    }
  return e;
}

float scale_at(const Quantized& qz, DType scale_dtype, std::size_t i) {
  return load_scale(qz.scales.data(), scale_dtype, i);
}

void expect_matches_reference(const std::vector<float>& x, std::int64_t rows, std::int64_t cols,
                              BlockShape b, DType fp8, DType scale_dtype) {
  const Quantized got = quantize(x, rows, cols, b, fp8, scale_dtype);
  const Expected want = reference(x, rows, cols, b, fp8, scale_dtype);
  for (std::size_t i = 0; i < want.scales.size(); ++i)
    ASSERT_EQ(std::bit_cast<std::uint32_t>(scale_at(got, scale_dtype, i)),
              std::bit_cast<std::uint32_t>(want.scales[i]))
        << "scale " << i << ": " << scale_at(got, scale_dtype, i) << " vs " << want.scales[i];
  for (std::size_t i = 0; i < want.q.size(); ++i)
    ASSERT_EQ(int(got.q[i]), int(want.q[i])) << "element " << i << " (row " << i / cols << ", col "
                                             << i % cols << "), x=" << x[i];
}

// Runs fn, expecting an anychip::Error(InvalidArgument) whose message contains `rule`.
void expect_invalid(const std::function<void()>& fn, const std::string& rule) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one saying \"" << rule << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(rule), std::string::npos)
        << "message \"" << e.what() << "\" does not contain \"" << rule << "\"";
  }
}

// ---- block_scale ------------------------------------------------------------------

TEST(BlockScale, F32IsAmaxOverFormatMax) {
  EXPECT_EQ(block_scale(448.0f, DType::f8e4m3, DType::f32), 1.0f);
  EXPECT_EQ(block_scale(3.0f, DType::f8e4m3, DType::f32), 3.0f / 448.0f);
  EXPECT_EQ(block_scale(3.0f, DType::f8e5m2, DType::f32), 3.0f / 57344.0f);
}

TEST(BlockScale, AllZeroBlockUsesTheAmaxFloor) {
  EXPECT_EQ(block_scale(0.0f, DType::f8e4m3, DType::f32), 1e-4f / 448.0f);
  EXPECT_EQ(block_scale(0.5e-4f, DType::f8e4m3, DType::f32), 1e-4f / 448.0f);
  EXPECT_EQ(block_scale(0.0f, DType::f8e4m3, DType::ue8m0), 0x1p-22f) << "1e-4/448 rounded up";
  EXPECT_EQ(block_scale(0.0f, DType::f8e5m2, DType::ue8m0), 0x1p-29f) << "1e-4/57344 rounded up";
  EXPECT_EQ(block_scale(kNaN, DType::f8e4m3, DType::f32), 1e-4f / 448.0f) << "a NaN amax counts as 0";
}

TEST(BlockScale, Ue8m0RoundsUpToAPowerOfTwo) {
  EXPECT_EQ(block_scale(448.0f, DType::f8e4m3, DType::ue8m0), 1.0f) << "exact powers of two stay";
  EXPECT_EQ(block_scale(449.0f, DType::f8e4m3, DType::ue8m0), 2.0f);
  EXPECT_EQ(block_scale(300.0f, DType::f8e4m3, DType::ue8m0), 1.0f);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-20.0f, 20.0f);
  for (int i = 0; i < 1000; ++i) {
    const float amax = std::exp2(u(rng));
    const float s = block_scale(amax, DType::f8e4m3, DType::ue8m0);
    int e;
    EXPECT_EQ(std::frexp(s, &e), 0.5f) << "not a power of two: " << s;
    const float exact = std::max(amax, 1e-4f) / 448.0f;
    EXPECT_GE(s, exact);
    EXPECT_LT(s, 2 * exact);
  }
}

// ---- Scale storage ----------------------------------------------------------------

TEST(ScaleStorage, F32IsFourNativeEndianBytes) {
  std::vector<std::byte> buf(12, std::byte{0});
  store_scale(buf.data(), DType::f32, 1, 0.1234f);
  float raw;
  std::memcpy(&raw, buf.data() + 4, 4);
  EXPECT_EQ(raw, 0.1234f);
  EXPECT_EQ(load_scale(buf.data(), DType::f32, 1), 0.1234f);
  EXPECT_EQ(load_scale(buf.data(), DType::f32, 0), 0.0f) << "neighbours untouched";
}

TEST(ScaleStorage, Ue8m0IsTheBiasedExponentByte) {
  std::vector<std::byte> buf(3, std::byte{0x55});
  store_scale(buf.data(), DType::ue8m0, 1, 0x1p-22f);
  EXPECT_EQ(buf[1], std::byte{127 - 22});
  EXPECT_EQ(buf[0], std::byte{0x55});
  EXPECT_EQ(buf[2], std::byte{0x55});
  for (int e = -127; e <= 127; ++e) {
    store_scale(buf.data(), DType::ue8m0, 0, std::ldexp(1.0f, e));
    EXPECT_EQ(load_scale(buf.data(), DType::ue8m0, 0), std::ldexp(1.0f, e)) << e;
  }
}

TEST(ScaleStorage, Ue8m0RejectsValuesItCannotHold) {
  std::byte b{};
  for (float s : {3.0f, 0.0f, -2.0f, kInf, 0x1p-128f})
    expect_invalid([&] { store_scale(&b, DType::ue8m0, 0, s); }, "must be a power of two");
}

// ---- The recipe, layouts ----------------------------------------------------------

TEST(Quantize, ActivationLayout1x128MatchesTheRecipe) {
  const std::int64_t rows = 5, cols = 384;
  const auto x = random_matrix(rows, cols, kActivationBlock, 1);
  expect_matches_reference(x, rows, cols, kActivationBlock, DType::f8e4m3, DType::f32);
  expect_matches_reference(x, rows, cols, kActivationBlock, DType::f8e4m3, DType::ue8m0);
}

TEST(Quantize, WeightLayout128x128MatchesTheRecipe) {
  const std::int64_t rows = 256, cols = 384;
  const auto x = random_matrix(rows, cols, kWeightBlock, 2);
  expect_matches_reference(x, rows, cols, kWeightBlock, DType::f8e4m3, DType::f32);
  expect_matches_reference(x, rows, cols, kWeightBlock, DType::f8e4m3, DType::ue8m0);
}

TEST(Quantize, PartialEdgeBlocks130x200) {
  const std::int64_t rows = 130, cols = 200;
  auto x = random_matrix(rows, cols, kWeightBlock, 3);
  EXPECT_EQ(scale_rows(rows, kWeightBlock), 2);
  EXPECT_EQ(scale_cols(cols, kWeightBlock), 2);
  expect_matches_reference(x, rows, cols, kWeightBlock, DType::f8e4m3, DType::f32);
  expect_matches_reference(x, rows, cols, kWeightBlock, DType::f8e4m3, DType::ue8m0);
  expect_matches_reference(x, rows, cols, BlockShape{1, 128}, DType::f8e4m3, DType::ue8m0);
  expect_matches_reference(x, rows, cols, BlockShape{7, 33}, DType::f8e5m2, DType::f32);

  // The corner block (rows 128..129, cols 128..199) scales by its own amax only.
  x[129 * cols + 199] = 1000.0f;
  const Quantized qz = quantize(x, rows, cols, kWeightBlock, DType::f8e4m3, DType::f32);
  EXPECT_EQ(scale_at(qz, DType::f32, 3), 1000.0f / 448.0f);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_LT(scale_at(qz, DType::f32, i), 0.2f) << i;
  EXPECT_EQ(qz.q[129 * cols + 199], 0x7E);
}

TEST(Quantize, E5m2UsesMax57344) {
  const std::int64_t rows = 3, cols = 256;
  const auto x = random_matrix(rows, cols, kActivationBlock, 4);
  expect_matches_reference(x, rows, cols, kActivationBlock, DType::f8e5m2, DType::f32);
  expect_matches_reference(x, rows, cols, kActivationBlock, DType::f8e5m2, DType::ue8m0);
  const Quantized qz = quantize(x, rows, cols, kActivationBlock, DType::f8e5m2, DType::f32);
  float top = 0;
  for (std::uint8_t c : qz.q) top = std::max(top, std::fabs(e5m2_to_float(c)));
  EXPECT_EQ(top, 57344.0f);
}

TEST(Quantize, AllZeroBlockGetsTheFloorScaleAndZeroCodes) {
  const std::int64_t rows = 2, cols = 256;
  auto x = random_matrix(rows, cols, kActivationBlock, 5);
  for (int c = 128; c < 256; ++c) x[c] = 0.0f;  // row 0, second block
  for (DType sd : {DType::f32, DType::ue8m0}) {
    const Quantized qz = quantize(x, rows, cols, kActivationBlock, DType::f8e4m3, sd);
    EXPECT_EQ(scale_at(qz, sd, 1), sd == DType::f32 ? 1e-4f / 448.0f : 0x1p-22f);
    for (int c = 128; c < 256; ++c) EXPECT_EQ(qz.q[c], 0x00) << c;
  }
}

TEST(Quantize, NoCodeExceeds448AndEachBlockReachesIt) {
  const std::int64_t rows = 64, cols = 512;
  const auto x = random_matrix(rows, cols, kActivationBlock, 6);
  for (DType sd : {DType::f32, DType::ue8m0}) {
    const Quantized qz = quantize(x, rows, cols, kActivationBlock, DType::f8e4m3, sd);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t b = 0; b < cols / 128; ++b) {
        float top = 0;
        for (std::int64_t c = b * 128; c < (b + 1) * 128; ++c) {
          const float v = std::fabs(e4m3_to_float(qz.q[static_cast<std::size_t>(r * cols + c)]));
          EXPECT_LE(v, 448.0f);
          top = std::max(top, v);
        }
        // With an f32 scale the block's largest element lands on 448; a power-of-two
        // scale can only be larger, by less than 2x.
        if (sd == DType::f32)
          EXPECT_EQ(top, 448.0f) << "row " << r << " block " << b;
        else
          EXPECT_GT(top, 224.0f) << "row " << r << " block " << b;
      }
  }
}

TEST(Quantize, SaturatesInsteadOfOverflowing) {
  // The f32 scale amax/448 rounds; x/s for the largest element may then exceed 448 by an
  // ulp and must clamp to 448, never become NaN.
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(1.0f, 2.0f);
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> x(128);
    for (float& v : x) v = u(rng);
    const Quantized qz = quantize(x, 1, 128, kActivationBlock, DType::f8e4m3, DType::f32);
    for (std::uint8_t c : qz.q) ASSERT_NE(c & 0x7F, 0x7F);
  }
}

TEST(Quantize, NanElementsBecomeNanAndDoNotChangeTheScale) {
  const std::int64_t rows = 1, cols = 256;
  auto x = random_matrix(rows, cols, kActivationBlock, 9);
  const Quantized clean = quantize(x, rows, cols, kActivationBlock, DType::f8e4m3, DType::f32);
  x[5] = kNaN;
  x[6] = -kNaN;
  for (DType fp8 : {DType::f8e4m3, DType::f8e5m2}) {
    const Quantized qz = quantize(x, rows, cols, kActivationBlock, fp8, DType::f32);
    if (fp8 == DType::f8e4m3) {
      EXPECT_EQ(scale_at(qz, DType::f32, 0), scale_at(clean, DType::f32, 0));
    }
    EXPECT_EQ(qz.q[5], 0x7F);
    EXPECT_EQ(qz.q[6], 0x7F);
    const auto y = dequantize(qz, rows, cols, kActivationBlock, fp8, DType::f32);
    EXPECT_TRUE(std::isnan(y[5]));
    EXPECT_TRUE(std::isnan(y[6]));
    for (std::int64_t c = 0; c < cols; ++c)
      if (c != 5 && c != 6) {
        EXPECT_FALSE(std::isnan(y[static_cast<std::size_t>(c)])) << c;
      }
  }
  std::vector<float> all_nan(128, kNaN);
  const Quantized qz = quantize(all_nan, 1, 128, kActivationBlock, DType::f8e4m3, DType::ue8m0);
  EXPECT_EQ(scale_at(qz, DType::ue8m0, 0), 0x1p-22f) << "a block of NaNs has amax 0";
}

TEST(Quantize, InfiniteElementFollowsTheRecipeLiterally) {
  std::vector<float> x(128, 1.0f);
  x[3] = kInf;
  const Quantized f = quantize(x, 1, 128, kActivationBlock, DType::f8e4m3, DType::f32);
  EXPECT_EQ(scale_at(f, DType::f32, 0), kInf);
  EXPECT_EQ(f.q[0], 0x00) << "1/inf";
  EXPECT_EQ(f.q[3], 0x7F) << "inf/inf is NaN";
  const Quantized u = quantize(x, 1, 128, kActivationBlock, DType::f8e4m3, DType::ue8m0);
  EXPECT_EQ(scale_at(u, DType::ue8m0, 0), 0x1p127f) << "inf rounds up to the largest UE8M0";
  EXPECT_EQ(u.q[3], 0x7E) << "inf/2^127 saturates to 448";
}

TEST(Quantize, EmptyMatrixIsValid) {
  std::vector<float> none;
  Quantized qz;
  EXPECT_NO_THROW(quantize_blocks(none, 0, 128, kWeightBlock, DType::f8e4m3, DType::f32, qz.q, qz.scales));
  std::vector<float> out;
  EXPECT_NO_THROW(dequantize_blocks(qz.q, qz.scales, 4, 0, kWeightBlock, DType::f8e4m3, DType::f32, out));
}

// ---- Dequantization ---------------------------------------------------------------

// |dequantize(quantize(x)) - x| is at most half an ulp of the format: 2^-4 |x| for E4M3
// normals, 2^-3 |x| for E5M2, and half the smallest subnormal times the scale below the
// normal range. (Plus a hair for the fp32 multiply by a non-power-of-two f32 scale.)
TEST(Dequantize, RoundTripIsWithinHalfAnUlpOfTheFormat) {
  struct Case {
    DType fp8;
    float rel;          // half an ulp, relative, for normals
    float abs_in_ulps;  // half the smallest subnormal, in units of the scale
  };
  for (Case k : {Case{DType::f8e4m3, 0x1p-4f, 0x1p-10f}, Case{DType::f8e5m2, 0x1p-3f, 0x1p-17f}})
    for (DType sd : {DType::f32, DType::ue8m0})
      for (BlockShape b : {kActivationBlock, kWeightBlock, BlockShape{3, 50}}) {
        const std::int64_t rows = 150, cols = 260;
        const auto x = random_matrix(rows, cols, b, 10 + static_cast<unsigned>(b.cols));
        const Quantized qz = quantize(x, rows, cols, b, k.fp8, sd);
        const auto y = dequantize(qz, rows, cols, b, k.fp8, sd);
        double num = 0, den = 0;
        for (std::int64_t r = 0; r < rows; ++r)
          for (std::int64_t c = 0; c < cols; ++c) {
            const auto i = static_cast<std::size_t>(r * cols + c);
            const float s = scale_at(qz, sd, static_cast<std::size_t>((r / b.rows) * scale_cols(cols, b) + c / b.cols));
            const float bound = std::max(k.rel * std::fabs(x[i]), k.abs_in_ulps * s) * (1 + 0x1p-20f);
            ASSERT_LE(std::fabs(y[i] - x[i]), bound) << "x=" << x[i] << " y=" << y[i] << " s=" << s;
            num += double(y[i] - x[i]) * (y[i] - x[i]);
            den += double(x[i]) * x[i];
          }
        EXPECT_LT(std::sqrt(num / den), k.fp8 == DType::f8e4m3 ? 0.04 : 0.08);
      }
}

TEST(Dequantize, IsCodeTimesItsBlockScale) {
  const std::int64_t rows = 130, cols = 200;
  const auto x = random_matrix(rows, cols, kWeightBlock, 11);
  const Quantized qz = quantize(x, rows, cols, kWeightBlock, DType::f8e4m3, DType::ue8m0);
  const auto y = dequantize(qz, rows, cols, kWeightBlock, DType::f8e4m3, DType::ue8m0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const auto i = static_cast<std::size_t>(r * cols + c);
      const float s = scale_at(qz, DType::ue8m0, static_cast<std::size_t>((r / 128) * 2 + c / 128));
      ASSERT_EQ(y[i], e4m3_to_float(qz.q[i]) * s) << r << "," << c;
    }
}

// ---- Bad arguments ----------------------------------------------------------------

TEST(QuantizeArguments, RejectSpansOfTheWrongSize) {
  std::vector<float> x(130 * 200, 1.0f);
  std::vector<std::uint8_t> q(x.size());
  std::vector<std::byte> s(4 * 4);
  auto run = [&] { quantize_blocks(x, 130, 200, kWeightBlock, DType::f8e4m3, DType::f32, q, s); };
  EXPECT_NO_THROW(run());
  x.pop_back();
  expect_invalid(run, "x has 25999 elements; it must have rows*cols = 26000");
  x.push_back(1.0f);
  q.push_back(0);
  expect_invalid(run, "q has 26001 bytes; it must have rows*cols = 26000");
  q.pop_back();
  s.resize(4);
  expect_invalid(run, "scales has 4 bytes; it must have scale_rows*scale_cols = 2*2 entries of f32 = 16 bytes");
  s.resize(16);
  expect_invalid([&] { quantize_blocks(x, 130, 200, kWeightBlock, DType::f8e4m3, DType::ue8m0, q, s); },
                 "entries of ue8m0 = 4 bytes");
  std::vector<float> out(x.size() + 1);
  expect_invalid([&] { dequantize_blocks(q, s, 130, 200, kWeightBlock, DType::f8e4m3, DType::f32, out); },
                 "out has 26001 elements");
}

TEST(QuantizeArguments, RejectNonPositiveBlockDimensions) {
  std::vector<float> x(256, 1.0f);
  std::vector<std::uint8_t> q(256);
  std::vector<std::byte> s(8);
  for (BlockShape b : {BlockShape{0, 128}, BlockShape{1, 0}, BlockShape{-1, 128}})
    expect_invalid([&] { quantize_blocks(x, 2, 128, b, DType::f8e4m3, DType::f32, q, s); },
                   "block dimensions must be positive");
  expect_invalid([&] { dequantize_blocks(q, s, 2, 128, BlockShape{1, 0}, DType::f8e4m3, DType::f32, x); },
                 "block dimensions must be positive");
}

TEST(QuantizeArguments, RejectNegativeMatrixDimensions) {
  std::vector<float> x;
  std::vector<std::uint8_t> q;
  std::vector<std::byte> s;
  expect_invalid([&] { quantize_blocks(x, -1, 128, kActivationBlock, DType::f8e4m3, DType::f32, q, s); },
                 "must not be negative");
}

TEST(QuantizeArguments, RejectNonFp8AndNonScaleDtypes) {
  std::vector<float> x(128, 1.0f);
  std::vector<std::uint8_t> q(128);
  std::vector<std::byte> s(4);
  for (DType d : {DType::f32, DType::bf16, DType::ue8m0, DType::i32}) {
    expect_invalid([&] { quantize_blocks(x, 1, 128, kActivationBlock, d, DType::f32, q, s); },
                   "is not an FP8 dtype (must be f8e4m3 or f8e5m2)");
    expect_invalid([&] { dequantize_blocks(q, s, 1, 128, kActivationBlock, d, DType::f32, x); },
                   "is not an FP8 dtype");
    expect_invalid([&] { (void)block_scale(1.0f, d, DType::f32); }, "is not an FP8 dtype");
  }
  for (DType d : {DType::bf16, DType::f16, DType::f8e4m3, DType::i32}) {
    expect_invalid([&] { quantize_blocks(x, 1, 128, kActivationBlock, DType::f8e4m3, d, q, s); },
                   "is not a scale dtype (must be f32 or ue8m0)");
    expect_invalid([&] { (void)block_scale(1.0f, DType::f8e4m3, d); }, "is not a scale dtype");
    expect_invalid([&] { (void)load_scale(s.data(), d, 0); }, "is not a scale dtype");
    expect_invalid([&] { store_scale(s.data(), d, 0, 1.0f); }, "is not a scale dtype");
  }
}

}  // namespace
}  // namespace anychip
