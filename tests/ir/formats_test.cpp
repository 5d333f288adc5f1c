// The scalar format conversions (include/anychip/formats.hpp).
//
// Two kinds of test. The specification tests below hold on any machine and say, value
// by value, what each conversion does. The Oracle tests compare every encoder in every
// mode, bit for bit, against NVIDIA's own host conversions from cuda_fp8.h / cuda_bf16.h
// / cuda_fp16.h over a dense sweep of float bit patterns (all 2^32 on request; see
// sweep_floats), and every decoder over every code; they are skipped when the CUDA
// Toolkit is not installed.
#include "anychip/formats.hpp"

#include <gtest/gtest.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#if defined(ANYCHIP_HAVE_CUDA_FP8_H)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#endif

namespace anychip {
namespace {

float f32(std::uint32_t bits) { return std::bit_cast<float>(bits); }
std::uint32_t bits(float x) { return std::bit_cast<std::uint32_t>(x); }

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNegNaN = f32(0xFFC00000u);

// ---- E4M3 -------------------------------------------------------------------------

TEST(E4m3, MaxIs448) {
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_float(0xFE), -448.0f);
  EXPECT_EQ(float_to_e4m3(448.0f), 0x7E);
  EXPECT_EQ(kE4m3Max, 448.0f);
}

TEST(E4m3, NanIs0x7F) {
  EXPECT_EQ(float_to_e4m3(kNaN), 0x7F);
  EXPECT_EQ(float_to_e4m3(kNegNaN), 0x7F) << "NaN's sign is dropped, as in cuda_fp8.h";
  EXPECT_EQ(float_to_e4m3(f32(0x7F800001u), Saturation::None), 0x7F);
  EXPECT_TRUE(std::isnan(e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_to_float(0xFF)));
}

TEST(E4m3, HasNoInfinity) {
  for (int c = 0; c < 256; ++c) EXPECT_FALSE(std::isinf(e4m3_to_float(std::uint8_t(c)))) << c;
}

TEST(E4m3, FiniteSaturationClampsOverflowAndInfinityTo448) {
  EXPECT_EQ(float_to_e4m3(1e6f), 0x7E);
  EXPECT_EQ(float_to_e4m3(-1e6f), 0xFE);
  EXPECT_EQ(float_to_e4m3(kInf), 0x7E);
  EXPECT_EQ(float_to_e4m3(-kInf), 0xFE);
}

TEST(E4m3, OverflowWithoutSaturationIsSignedNan) {
  EXPECT_EQ(float_to_e4m3(1e6f, Saturation::None), 0x7F);
  EXPECT_EQ(float_to_e4m3(-1e6f, Saturation::None), 0xFF);
  EXPECT_EQ(float_to_e4m3(kInf, Saturation::None), 0x7F);
  EXPECT_EQ(float_to_e4m3(-kInf, Saturation::None), 0xFF);
}

TEST(E4m3, TieAt464RoundsToEven448AndAboveOverflows) {
  for (Saturation sat : {Saturation::Finite, Saturation::None}) {
    EXPECT_EQ(float_to_e4m3(464.0f, sat), 0x7E);
    EXPECT_EQ(float_to_e4m3(-464.0f, sat), 0xFE);
  }
  const float above = std::nextafter(464.0f, kInf);
  EXPECT_EQ(float_to_e4m3(above, Saturation::Finite), 0x7E);
  EXPECT_EQ(float_to_e4m3(above, Saturation::None), 0x7F);
}

TEST(E4m3, RoundsToNearestEven) {
  EXPECT_EQ(float_to_e4m3(1.0f + 1.0f / 16), 0x38) << "tie between 1 and 1.125 goes to even 1";
  EXPECT_EQ(float_to_e4m3(1.1875f), 0x3A) << "tie between 1.125 and 1.25 goes to even 1.25";
  EXPECT_EQ(float_to_e4m3(std::nextafter(1.0625f, 2.0f)), 0x39);
  EXPECT_EQ(float_to_e4m3(std::nextafter(1.0625f, 0.0f)), 0x38);
  EXPECT_EQ(float_to_e4m3(-1.1875f), 0xBA);
  EXPECT_EQ(float_to_e4m3(15.5f), 0x58) << "1.9375*8 rounds up into the next binade: 16";
}

TEST(E4m3, SubnormalsRoundToNearestEven) {
  EXPECT_EQ(e4m3_to_float(0x01), 0x1p-9f);
  EXPECT_EQ(e4m3_to_float(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(e4m3_to_float(0x08), 0x1p-6f);
  EXPECT_EQ(float_to_e4m3(0x1p-10f), 0x00) << "half the smallest subnormal ties to zero";
  EXPECT_EQ(float_to_e4m3(std::nextafter(0x1p-10f, 1.0f)), 0x01);
  EXPECT_EQ(float_to_e4m3(1.5f * 0x1p-9f), 0x02) << "tie between 1 and 2 ulps goes to 2";
  EXPECT_EQ(float_to_e4m3(2.5f * 0x1p-9f), 0x02) << "tie between 2 and 3 ulps goes to 2";
  EXPECT_EQ(float_to_e4m3(7.5f * 0x1p-9f), 0x08) << "rounds up into the smallest normal";
  EXPECT_EQ(float_to_e4m3(f32(1)), 0x00) << "a float subnormal underflows to zero";
}

TEST(E4m3, NegativeValuesThatUnderflowGiveNegativeZero) {
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(-0x1p-11f), 0x80);
  EXPECT_EQ(float_to_e4m3(f32(0x80000001u)), 0x80);
  EXPECT_EQ(bits(e4m3_to_float(0x80)), 0x80000000u);
}

// ---- E5M2 -------------------------------------------------------------------------

TEST(E5m2, MaxIs57344) {
  EXPECT_EQ(e5m2_to_float(0x7B), 57344.0f);
  EXPECT_EQ(float_to_e5m2(57344.0f), 0x7B);
  EXPECT_EQ(kE5m2Max, 57344.0f);
}

TEST(E5m2, InfinityIs0x7CAndNanIsAbove) {
  EXPECT_EQ(e5m2_to_float(0x7C), kInf);
  EXPECT_EQ(e5m2_to_float(0xFC), -kInf);
  for (int c : {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF}) EXPECT_TRUE(std::isnan(e5m2_to_float(std::uint8_t(c)))) << c;
  EXPECT_EQ(float_to_e5m2(kNaN), 0x7F);
  EXPECT_EQ(float_to_e5m2(kNegNaN, Saturation::None), 0x7F);
}

TEST(E5m2, OverflowWithoutSaturationIsInfinity) {
  EXPECT_EQ(float_to_e5m2(61440.0f, Saturation::None), 0x7C) << "the tie above max rounds to even: infinity";
  EXPECT_EQ(float_to_e5m2(std::nextafter(61440.0f, 0.0f), Saturation::None), 0x7B);
  EXPECT_EQ(float_to_e5m2(-1e6f, Saturation::None), 0xFC);
  EXPECT_EQ(float_to_e5m2(kInf, Saturation::None), 0x7C);
  EXPECT_EQ(float_to_e5m2(-kInf, Saturation::None), 0xFC);
}

TEST(E5m2, FiniteSaturationClampsOverflowAndInfinityToMax) {
  EXPECT_EQ(float_to_e5m2(61440.0f), 0x7B);
  EXPECT_EQ(float_to_e5m2(-1e6f), 0xFB);
  EXPECT_EQ(float_to_e5m2(kInf), 0x7B);
  EXPECT_EQ(float_to_e5m2(-kInf), 0xFB);
}

TEST(E5m2, RoundsToNearestEvenAndKeepsSignOfZero) {
  EXPECT_EQ(float_to_e5m2(1.125f), 0x3C) << "tie between 1 and 1.25 goes to even 1";
  EXPECT_EQ(float_to_e5m2(1.375f), 0x3E) << "tie between 1.25 and 1.5 goes to even 1.5";
  EXPECT_EQ(e5m2_to_float(0x01), 0x1p-16f);
  EXPECT_EQ(float_to_e5m2(0x1p-17f), 0x00);
  EXPECT_EQ(float_to_e5m2(std::nextafter(0x1p-17f, 1.0f)), 0x01);
  EXPECT_EQ(float_to_e5m2(-0x1p-18f), 0x80);
}

// ---- Every FP8 code ----------------------------------------------------------------

TEST(Fp8, EveryCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    const auto code = static_cast<std::uint8_t>(c);
    const float a = e4m3_to_float(code);
    if (std::isnan(a)) {
      EXPECT_EQ(float_to_e4m3(a), 0x7F) << c;
    } else {
      EXPECT_EQ(float_to_e4m3(a, Saturation::Finite), code) << c;
      EXPECT_EQ(float_to_e4m3(a, Saturation::None), code) << c;
    }
    const float b = e5m2_to_float(code);
    if (std::isnan(b)) {
      EXPECT_EQ(float_to_e5m2(b), 0x7F) << c;
    } else {
      EXPECT_EQ(float_to_e5m2(b, Saturation::None), code) << c;
      if (!std::isinf(b)) {
        EXPECT_EQ(float_to_e5m2(b, Saturation::Finite), code) << c;
      }
    }
  }
}

TEST(Fp8, DecodersAreMonotonicOverPositiveCodes) {
  for (int c = 1; c < 0x7F; ++c) EXPECT_LT(e4m3_to_float(std::uint8_t(c - 1)), e4m3_to_float(std::uint8_t(c))) << c;
  for (int c = 1; c <= 0x7C; ++c) EXPECT_LT(e5m2_to_float(std::uint8_t(c - 1)), e5m2_to_float(std::uint8_t(c))) << c;
}

// ---- UE8M0 ------------------------------------------------------------------------

TEST(Ue8m0, DecodesToPowersOfTwoAnd0xFFIsNan) {
  EXPECT_EQ(ue8m0_to_float(0), 0x1p-127f);
  EXPECT_EQ(ue8m0_to_float(127), 1.0f);
  EXPECT_EQ(ue8m0_to_float(254), 0x1p127f);
  EXPECT_TRUE(std::isnan(ue8m0_to_float(0xFF)));
  for (int e = 0; e < 255; ++e) EXPECT_EQ(ue8m0_to_float(std::uint8_t(e)), std::ldexp(1.0f, e - 127)) << e;
}

TEST(Ue8m0, RoundsUpToNextPowerOfTwo) {
  EXPECT_EQ(float_to_ue8m0(1.0f), 127) << "a power of two is exact";
  EXPECT_EQ(float_to_ue8m0(std::nextafter(1.0f, 2.0f)), 128);
  EXPECT_EQ(float_to_ue8m0(std::nextafter(1.0f, 0.0f)), 127);
  EXPECT_EQ(float_to_ue8m0(3.0f), 129);
  EXPECT_EQ(float_to_ue8m0(0.75f), 127);
  EXPECT_EQ(float_to_ue8m0(1e-4f / 448.0f), 127 - 22) << "DeepSeek's all-zero block scale: 2^-22";
  EXPECT_EQ(float_to_ue8m0(0x1p127f), 254);
  EXPECT_EQ(float_to_ue8m0(f32(0x00400001u)), 1) << "just above 2^-127 rounds up to 2^-126";
}

TEST(Ue8m0, TowardZeroFloors) {
  EXPECT_EQ(float_to_ue8m0(1.0f, Rounding::TowardZero), 127);
  EXPECT_EQ(float_to_ue8m0(std::nextafter(2.0f, 0.0f), Rounding::TowardZero), 127);
  EXPECT_EQ(float_to_ue8m0(3.0f, Rounding::TowardZero), 128);
  EXPECT_EQ(float_to_ue8m0(0.75f, Rounding::TowardZero), 126);
  EXPECT_EQ(float_to_ue8m0(std::numeric_limits<float>::max(), Rounding::TowardZero), 254);
}

TEST(Ue8m0, ConvertsTheMagnitudeOfNegativeValues) {
  for (Rounding r : {Rounding::Up, Rounding::TowardZero, Rounding::NearestEven})
    for (float x : {3.0f, 0.75f, 1e-30f, 1e30f})
      EXPECT_EQ(float_to_ue8m0(-x, r), float_to_ue8m0(x, r)) << x;
}

TEST(Ue8m0, ZeroAndTinyValuesClampTo2PowMinus127) {
  for (Rounding r : {Rounding::Up, Rounding::TowardZero, Rounding::NearestEven})
    for (Saturation s : {Saturation::Finite, Saturation::None}) {
      EXPECT_EQ(float_to_ue8m0(0.0f, r, s), 0x00);
      EXPECT_EQ(float_to_ue8m0(-0.0f, r, s), 0x00);
      EXPECT_EQ(float_to_ue8m0(f32(1), r, s), 0x00);
      EXPECT_EQ(float_to_ue8m0(0x1p-127f, r, s), 0x00);
    }
}

TEST(Ue8m0, NanIs0xFFInEveryMode) {
  for (Rounding r : {Rounding::Up, Rounding::TowardZero, Rounding::NearestEven})
    for (Saturation s : {Saturation::Finite, Saturation::None}) {
      EXPECT_EQ(float_to_ue8m0(kNaN, r, s), 0xFF);
      EXPECT_EQ(float_to_ue8m0(kNegNaN, r, s), 0xFF);
    }
}

TEST(Ue8m0, OverflowSaturatesTo2Pow127OrGivesNan) {
  const float just_above = std::nextafter(0x1p127f, kInf);
  EXPECT_EQ(float_to_ue8m0(just_above, Rounding::Up, Saturation::Finite), 0xFE);
  EXPECT_EQ(float_to_ue8m0(just_above, Rounding::Up, Saturation::None), 0xFF);
  for (Rounding r : {Rounding::Up, Rounding::TowardZero, Rounding::NearestEven}) {
    EXPECT_EQ(float_to_ue8m0(kInf, r, Saturation::Finite), 0xFE);
    EXPECT_EQ(float_to_ue8m0(-kInf, r, Saturation::Finite), 0xFE);
    EXPECT_EQ(float_to_ue8m0(kInf, r, Saturation::None), 0xFF);
  }
  EXPECT_EQ(float_to_ue8m0(1.5f * 0x1p127f, Rounding::NearestEven, Saturation::Finite), 0xFE);
  EXPECT_EQ(float_to_ue8m0(1.5f * 0x1p127f, Rounding::NearestEven, Saturation::None), 0xFF);
}

TEST(Ue8m0, EveryCodeRoundTripsInEveryMode) {
  for (int e = 0; e < 255; ++e)
    for (Rounding r : {Rounding::Up, Rounding::TowardZero, Rounding::NearestEven})
      for (Saturation s : {Saturation::Finite, Saturation::None})
        EXPECT_EQ(float_to_ue8m0(ue8m0_to_float(std::uint8_t(e)), r, s), e) << e;
}

// c10::detail::fp8e8m0fnu_from_fp32_value, restated from its description: the biased
// exponent, plus one when round-to-nearest-even of the significand says so, where the
// guard bit is mantissa bit 22, the round bit 21, sticky the bits below, and the kept
// bit the implicit leading bit (1 for normals, 0 for subnormals). Exponent 255 (NaN and
// infinity) gives 0xFF.
std::uint8_t c10_e8m0_reference(float f) {
  const std::uint32_t u = bits(f);
  const std::uint32_t exponent = (u >> 23) & 0xFFu;
  if (exponent == 0xFFu) return 0xFF;
  const bool guard = u & 0x400000u, round = u & 0x200000u, sticky = u & 0x1FFFFFu;
  const bool kept = exponent > 0;
  return static_cast<std::uint8_t>(exponent + (guard && (round || sticky || kept) ? 1 : 0));
}

TEST(Ue8m0, NearestEvenMatchesPyTorch) {
  // Hand-picked values with c10's answers.
  EXPECT_EQ(float_to_ue8m0(1.5f, Rounding::NearestEven, Saturation::None), 128)
      << "1.5 is a tie in the significand; c10 rounds it up";
  EXPECT_EQ(float_to_ue8m0(std::nextafter(1.5f, 0.0f), Rounding::NearestEven, Saturation::None), 127);
  EXPECT_EQ(float_to_ue8m0(1.4f, Rounding::NearestEven, Saturation::None), 127);
  EXPECT_EQ(float_to_ue8m0(3.0f, Rounding::NearestEven, Saturation::None), 129);
  EXPECT_EQ(float_to_ue8m0(-3.0f, Rounding::NearestEven, Saturation::None), 129);
  EXPECT_EQ(float_to_ue8m0(0.0f, Rounding::NearestEven, Saturation::None), 0);
  EXPECT_EQ(float_to_ue8m0(f32(0x00400000u), Rounding::NearestEven, Saturation::None), 0)
      << "2^-127, a float subnormal, is exact";
  EXPECT_EQ(float_to_ue8m0(f32(0x00400001u), Rounding::NearestEven, Saturation::None), 1);
  EXPECT_EQ(float_to_ue8m0(f32(0x003FFFFFu), Rounding::NearestEven, Saturation::None), 0);
  EXPECT_EQ(float_to_ue8m0(f32(0x7F400000u), Rounding::NearestEven, Saturation::None), 0xFF)
      << "1.5 * 2^127 rounds past the largest code";
  EXPECT_EQ(float_to_ue8m0(kInf, Rounding::NearestEven, Saturation::None), 0xFF);
  EXPECT_EQ(float_to_ue8m0(kNaN, Rounding::NearestEven, Saturation::None), 0xFF);

  // Every float whose 16 low bits are in a rounding-relevant set, against the model.
  for (std::uint32_t hi = 0; hi < (1u << 16); ++hi)
    for (std::uint32_t lo : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0xFFFFu}) {
      const float x = f32(hi << 16 | lo);
      const std::uint8_t c10 = c10_e8m0_reference(x);
      ASSERT_EQ(float_to_ue8m0(x, Rounding::NearestEven, Saturation::None), c10) << std::hex << bits(x);
      // Finite saturation differs only where c10 overflows a non-NaN to 0xFF.
      const std::uint8_t clamped = c10 == 0xFF && !std::isnan(x) ? 0xFE : c10;
      ASSERT_EQ(float_to_ue8m0(x, Rounding::NearestEven, Saturation::Finite), clamped) << std::hex << bits(x);
    }
}

// ---- BF16 and F16 -----------------------------------------------------------------

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f), 0x3F80) << "tie goes to even";
  EXPECT_EQ(float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82) << "tie goes to even";
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  EXPECT_EQ(float_to_bf16(-1.0f - 0x1p-8f - 0x1p-20f), 0xBF81);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
}

TEST(Bf16, OverflowIsInfinityAndNanIsCanonical) {
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(float_to_bf16(-kInf), 0xFF80);
  EXPECT_EQ(float_to_bf16(kNaN), 0x7FFF);
  EXPECT_EQ(float_to_bf16(kNegNaN), 0x7FFF);
  EXPECT_EQ(float_to_bf16(f32(0x7F800001u)), 0x7FFF) << "a NaN whose payload is in the low bits stays NaN";
}

TEST(Bf16, EveryCodeRoundTrips) {
  for (std::uint32_t c = 0; c < 0x10000; ++c) {
    const float x = bf16_to_float(std::uint16_t(c));
    EXPECT_EQ(bits(x), c << 16);
    if (std::isnan(x))
      EXPECT_EQ(float_to_bf16(x), 0x7FFF);
    else
      EXPECT_EQ(float_to_bf16(x), c);
  }
}

TEST(F16, RoundsToNearestEven) {
  EXPECT_EQ(float_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(float_to_f16(1.0f + 0x1p-11f), 0x3C00) << "tie goes to even";
  EXPECT_EQ(float_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02) << "tie goes to even";
  EXPECT_EQ(float_to_f16(-2.0f), 0xC000);
}

TEST(F16, MaxIs65504AndOverflowIsInfinity) {
  EXPECT_EQ(f16_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(float_to_f16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(float_to_f16(65520.0f), 0x7C00) << "the tie above max rounds to even: infinity";
  EXPECT_EQ(float_to_f16(-1e10f), 0xFC00);
  EXPECT_EQ(float_to_f16(kInf), 0x7C00);
  EXPECT_EQ(float_to_f16(kNaN), 0x7FFF);
  EXPECT_EQ(float_to_f16(kNegNaN), 0x7FFF);
}

TEST(F16, SubnormalsRoundToNearestEven) {
  EXPECT_EQ(f16_to_float(0x0001), 0x1p-24f);
  EXPECT_EQ(float_to_f16(0x1p-25f), 0x0000) << "half the smallest subnormal ties to zero";
  EXPECT_EQ(float_to_f16(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
  EXPECT_EQ(float_to_f16(3 * 0x1p-25f), 0x0002);
  EXPECT_EQ(float_to_f16(-0x1p-26f), 0x8000);
}

TEST(F16, EveryCodeRoundTrips) {
  for (std::uint32_t c = 0; c < 0x10000; ++c) {
    const float x = f16_to_float(std::uint16_t(c));
    if (std::isnan(x))
      EXPECT_EQ(float_to_f16(x), 0x7FFF) << c;
    else
      EXPECT_EQ(float_to_f16(x), c) << c;
  }
}

// ---- Oracle: NVIDIA's host conversions -----------------------------------------------

#if defined(ANYCHIP_HAVE_CUDA_FP8_H)

std::uint32_t nv_bits(__half h) { return bits(__half2float(h)); }

std::uint16_t nv_raw(__half h) {
  std::uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

std::uint16_t nv_raw(__nv_bfloat16 h) {
  std::uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

// The float inputs of the encoder sweeps.
//
// Every one of the 2^32 bit patterns costs about 70 s for the eight sweeps on this
// project's 2-core machine in a Release build (formats.hpp's encoder plus NVIDIA's
// inlined host code, ~3 ns per input per encoder), over the budget for a unit test. So by
// default each sweep takes, for every value of the top 16 bits (sign, exponent and the 7
// high mantissa bits, where every encoder's kept bits lie, and the guard bit of FP8,
// UE8M0 and F16-normal rounding), the low 16 bits from a set that puts every rounding
// case at every position: zero, every value with one or two bits set, their complements,
// and every contiguous run of ones (so for a guard bit at any position g: exactly half
// an ulp, half plus a sticky bit, and all ones just below half). On top of that every
// 61st bit pattern (61 is prime, so the low bits take every value across the sweep).
// That is about 100 million inputs per encoder, a couple of seconds for all of them.
// Set ANYCHIP_ORACLE_EVERY_FLOAT=1 to sweep all 2^32 patterns; all of them matched
// when this file was written.
bool every_float() {
  const char* env = std::getenv("ANYCHIP_ORACLE_EVERY_FLOAT");
  return env != nullptr && std::string(env) == "1";
}

std::vector<std::uint16_t> low_bit_patterns() {
  std::vector<bool> in(0x10000, false);
  if (every_float()) {
    in.assign(0x10000, true);
  } else {
    in[0] = in[0xFFFF] = true;
    for (int i = 0; i < 16; ++i)
      for (int j = i; j < 16; ++j) {
        const unsigned two = (1u << i) | (1u << j);
        in[two] = in[~two & 0xFFFFu] = true;
        in[((1u << (j - i + 1)) - 1u) << i] = true;  // the run of ones from bit i to bit j
      }
  }
  std::vector<std::uint16_t> out;
  for (unsigned v = 0; v < 0x10000; ++v)
    if (in[v]) out.push_back(static_cast<std::uint16_t>(v));
  return out;
}

constexpr std::uint32_t kStride = 61;

// Checks ours(x) == theirs(x) over the inputs above, on every core. Collects a few
// mismatches for the failure message.
template <class Ours, class Theirs>
void sweep_floats(const char* what, Ours ours, Theirs theirs) {
  static const std::vector<std::uint16_t> lows = low_bit_patterns();
  const bool all = lows.size() == 0x10000;
  std::atomic<std::uint64_t> mismatches{0}, checked{0};
  std::mutex mu;
  std::vector<std::string> examples;
  tbb::parallel_for(tbb::blocked_range<std::uint32_t>(0, 0x10000, 64),
                    [&](const tbb::blocked_range<std::uint32_t>& range) {
    std::uint64_t bad = 0, n = 0;
    auto check = [&](std::uint32_t u) {
      const float x = f32(u);
      const auto a = ours(x);
      const auto b = theirs(x);
      ++n;
      if (a != b) [[unlikely]] {
        if (bad++ < 4) {
          char line[96];
          std::snprintf(line, sizeof line, "x=0x%08x: ours 0x%x, NVIDIA 0x%x", unsigned(u),
                        unsigned(a), unsigned(b));
          std::lock_guard lock(mu);
          if (examples.size() < 8) examples.emplace_back(line);
        }
      }
    };
    for (std::uint32_t hi = range.begin(); hi != range.end(); ++hi) {
      const std::uint32_t base = hi << 16;
      for (std::uint16_t lo : lows) check(base | lo);
      if (!all)
        for (std::uint32_t lo = (kStride - base % kStride) % kStride; lo < 0x10000; lo += kStride)
          check(base | lo);
    }
    mismatches += bad;
    checked += n;
  });
  std::string msg;
  for (const auto& e : examples) msg += "\n  " + e;
  EXPECT_EQ(mismatches.load(), 0u) << what << " (" << checked.load() << " inputs)" << msg;
}

TEST(Oracle, E4m3DecoderMatchesNvidiaForEveryCode) {
  for (int c = 0; c < 256; ++c)
    EXPECT_EQ(bits(e4m3_to_float(std::uint8_t(c))),
              nv_bits(__half(__nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(c), __NV_E4M3))))
        << c;
}

TEST(Oracle, E5m2DecoderMatchesNvidiaForEveryCode) {
  for (int c = 0; c < 256; ++c)
    EXPECT_EQ(bits(e5m2_to_float(std::uint8_t(c))),
              nv_bits(__half(__nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(c), __NV_E5M2))))
        << c;
}

TEST(Oracle, Ue8m0DecoderMatchesNvidiaForEveryCode) {
  for (int c = 0; c < 256; ++c)
    EXPECT_EQ(bits(ue8m0_to_float(std::uint8_t(c))),
              bits(__bfloat162float(__nv_bfloat16(__nv_cvt_e8m0_to_bf16raw(__nv_fp8_storage_t(c))))))
        << c;
}

TEST(Oracle, Bf16AndF16DecodersMatchNvidiaForEveryCode) {
  for (std::uint32_t c = 0; c < 0x10000; ++c) {
    __half_raw hr;
    hr.x = static_cast<unsigned short>(c);
    __nv_bfloat16_raw br;
    br.x = static_cast<unsigned short>(c);
    ASSERT_EQ(bits(f16_to_float(std::uint16_t(c))), nv_bits(__half(hr))) << c;
    ASSERT_EQ(bits(bf16_to_float(std::uint16_t(c))), bits(__bfloat162float(__nv_bfloat16(br)))) << c;
  }
}

TEST(Oracle, E4m3FiniteMatchesNvidia) {
  sweep_floats(
      "float_to_e4m3(x, Finite) vs __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)",
      [](float x) { return float_to_e4m3(x, Saturation::Finite); },
      [](float x) { return std::uint8_t(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)); });
}

TEST(Oracle, E4m3NoSaturationMatchesNvidia) {
  sweep_floats(
      "float_to_e4m3(x, None) vs __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E4M3)",
      [](float x) { return float_to_e4m3(x, Saturation::None); },
      [](float x) { return std::uint8_t(__nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E4M3)); });
}

TEST(Oracle, E5m2FiniteMatchesNvidia) {
  sweep_floats(
      "float_to_e5m2(x, Finite) vs __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2)",
      [](float x) { return float_to_e5m2(x, Saturation::Finite); },
      [](float x) { return std::uint8_t(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2)); });
}

TEST(Oracle, E5m2NoSaturationMatchesNvidia) {
  sweep_floats(
      "float_to_e5m2(x, None) vs __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E5M2)",
      [](float x) { return float_to_e5m2(x, Saturation::None); },
      [](float x) { return std::uint8_t(__nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E5M2)); });
}

TEST(Oracle, Ue8m0UpMatchesNvidia) {
  sweep_floats(
      "float_to_ue8m0(x, Up, Finite/None) vs __nv_cvt_float_to_e8m0(x, sat, cudaRoundPosInf)",
      [](float x) {
        return unsigned(float_to_ue8m0(x, Rounding::Up, Saturation::Finite)) |
               unsigned(float_to_ue8m0(x, Rounding::Up, Saturation::None)) << 8;
      },
      [](float x) {
        return unsigned(__nv_cvt_float_to_e8m0(x, __NV_SATFINITE, cudaRoundPosInf)) |
               unsigned(__nv_cvt_float_to_e8m0(x, __NV_NOSAT, cudaRoundPosInf)) << 8;
      });
}

TEST(Oracle, Ue8m0TowardZeroMatchesNvidia) {
  sweep_floats(
      "float_to_ue8m0(x, TowardZero, Finite/None) vs __nv_cvt_float_to_e8m0(x, sat, cudaRoundZero)",
      [](float x) {
        return unsigned(float_to_ue8m0(x, Rounding::TowardZero, Saturation::Finite)) |
               unsigned(float_to_ue8m0(x, Rounding::TowardZero, Saturation::None)) << 8;
      },
      [](float x) {
        return unsigned(__nv_cvt_float_to_e8m0(x, __NV_SATFINITE, cudaRoundZero)) |
               unsigned(__nv_cvt_float_to_e8m0(x, __NV_NOSAT, cudaRoundZero)) << 8;
      });
}

TEST(Oracle, Bf16MatchesNvidia) {
  sweep_floats("float_to_bf16(x) vs __float2bfloat16(x)",
                    [](float x) { return float_to_bf16(x); },
                    [](float x) { return nv_raw(__float2bfloat16(x)); });
}

TEST(Oracle, F16MatchesNvidia) {
  sweep_floats("float_to_f16(x) vs __float2half(x)",
                    [](float x) { return float_to_f16(x); },
                    [](float x) { return nv_raw(__float2half(x)); });
}

#else

TEST(Oracle, NvidiaHostConversions) {
  GTEST_SKIP() << "the CUDA Toolkit's cuda_fp8.h was not found at configure time; the "
                  "bit-exact comparison with NVIDIA's host conversions is not built";
}

#endif

}  // namespace
}  // namespace anychip
