// Scalar conversions between float and the narrow formats anychip computes with.
//
// One definition for every backend (DESIGN.md, "Numeric semantics"); bit-exact with
// NVIDIA's cuda_fp8.h / cuda_bf16.h host conversions:
//   float_to_e4m3 / float_to_e5m2  == __nv_cvt_float_to_fp8(x, __NV_SATFINITE or __NV_NOSAT, ...)
//   float_to_ue8m0(x, Up | TowardZero, s) == __nv_cvt_float_to_e8m0(x, s, cudaRoundPosInf | cudaRoundZero)
//   float_to_bf16  == __float2bfloat16 (round to nearest even, NaN kept NaN)
// float_to_ue8m0(x, NearestEven, Saturation::None) equals PyTorch's float8_e8m0fnu
// conversion (c10::detail::fp8e8m0fnu_from_fp32_value).
//
// Edge cases, all as NVIDIA's host code does them:
// - NaN encodes to the canonical NaN with the sign cleared (FP8 0x7F, UE8M0 0xFF, BF16
//   and F16 0x7FFF); FP8/F16 NaN codes decode to 0x7FFFFFFF, UE8M0 0xFF to 0x7FFF0000.
// - E4M3 overflow with Saturation::None gives the NaN code with the input's sign.
// - UE8M0 converts the magnitude of a negative input; zero and anything up to 2^-127 give
//   0x00 (2^-127, there is no zero); past 2^127 or infinity gives 0xFE with Finite and
//   0xFF with None. NearestEven with Finite is NearestEven with 0xFF clamped to 0xFE.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace anychip {

// What a conversion does with a value beyond the format's largest finite magnitude.
enum class Saturation {
  Finite,  // clamp to the largest finite value (infinity too)
  None,    // overflow gives the format's infinity, or NaN where it has none
};

enum class Rounding { NearestEven, TowardZero, Up };

std::uint8_t float_to_e4m3(float x, Saturation sat = Saturation::Finite);
std::uint8_t float_to_e5m2(float x, Saturation sat = Saturation::Finite);
std::uint8_t float_to_ue8m0(float x, Rounding rounding = Rounding::Up,
                            Saturation sat = Saturation::Finite);

float e4m3_to_float(std::uint8_t bits);
float e5m2_to_float(std::uint8_t bits);
float ue8m0_to_float(std::uint8_t bits);

std::uint16_t float_to_bf16(float x);
float bf16_to_float(std::uint16_t bits);

// IEEE binary16, round to nearest even, as __float2half (a NaN becomes 0x7FFF; F16C
// would keep the payload).
std::uint16_t float_to_f16(float x);
float f16_to_float(std::uint16_t bits);

inline constexpr float kE4m3Max = 448.0f;
inline constexpr float kE5m2Max = 57344.0f;

// ---- definitions ---------------------------------------------------------------------
// Inline, so that the hot loops of quantization and of the kernels inline them.
//
// Every encoder is integer code on the float's bit pattern: no FPU rounding mode, FTZ/DAZ
// setting or libm call can change a result. The rules, which tests/ir/formats_test.cpp
// checks bit for bit against NVIDIA's host conversions:
//
//  * Finite values round to nearest, ties to even, subnormals of the target included.
//    The sign is kept: a negative value that rounds to zero gives -0.
//  * A NaN input gives the canonical NaN with the sign cleared, whatever its sign and
//    payload: E4M3 0x7F, E5M2 0x7F, BF16 and F16 0x7FFF, UE8M0 0xFF.
//  * Overflow (a magnitude that would round past the largest finite value, infinity
//    included) gives, signed: with Saturation::Finite the largest finite value; with
//    Saturation::None E5M2's infinity, and for E4M3 (no infinity) the NaN code with the
//    input's sign (0x7F or 0xFF), as __nv_cvt_float_to_fp8(__NV_NOSAT) does.
//  * The decoders return what NVIDIA's decoders return, NaN bits included: an FP8 or F16
//    NaN decodes to 0x7FFFFFFF (through __half's canonical NaN), a UE8M0 NaN to
//    0x7FFF0000 (through __nv_bfloat16's), and BF16 widens by a shift (payload kept).

namespace formats_detail {

constexpr std::uint32_t kF32Inf = 0x7F800000u;
constexpr std::uint32_t kF32CanonicalNaN = 0x7FFFFFFFu;  // NaN as NVIDIA's decoders widen it

constexpr std::uint32_t bits_of(float x) { return std::bit_cast<std::uint32_t>(x); }
constexpr float float_of(std::uint32_t u) { return std::bit_cast<float>(u); }

// x when c is true, else y, without a branch.
constexpr std::uint32_t select(bool c, std::uint32_t x, std::uint32_t y) {
  return y ^ ((x ^ y) & (0u - std::uint32_t(c)));
}

// Rounds a float magnitude (bits a: finite, non-negative, below the target's overflow
// threshold) to nearest even in a binary format with exponent bias kBias and kManBits
// stored mantissa bits. Returns the target's exponent and mantissa fields. A result
// that rounds up out of the subnormals (or out of a binade) carries into the exponent
// field, which is exactly the next representable value.
//
// The branch between the normal and the subnormal path is kept on purpose: in
// quantization nearly every value is normal, the branch predicts, and the normal path
// has only constant shifts. A branch-free merge of the two paths (three shifts by a
// variable count on every value) measured about twice as slow on such data.
template <int kBias, int kManBits>
constexpr std::uint32_t round_magnitude(std::uint32_t a) {
  constexpr int kDrop = 23 - kManBits;                       // float mantissa bits dropped
  constexpr std::uint32_t kRebias = std::uint32_t(127 - kBias) << 23;
  std::uint32_t v;   // the value, aligned so that bit kDrop is the target's lowest bit
  std::uint32_t sh;  // how far to shift v right
  if (a >= kRebias + (1u << 23)) {  // normal in the target
    v = a - kRebias;
    sh = kDrop;
  } else {
    // Subnormal in the target (zero included): significand m times 2^(max(e,1) - 150),
    // in units of the target's smallest subnormal 2^(1 - kBias - kManBits).
    const std::uint32_t e = a >> 23;
    v = (a & 0x7FFFFFu) | (e != 0 ? 0x800000u : 0u);
    const std::uint32_t s = 151u - kBias - kManBits - (e != 0 ? e : 1u);
    sh = s < 25u ? s : 25u;  // v < 2^24, so any shift >= 25 rounds to zero alike
  }
  // Nearest even: add just under half an ulp, plus one when the kept lowest bit is odd.
  return (v + ((1u << (sh - 1)) - 1u) + ((v >> sh) & 1u)) >> sh;
}

// ---- FP8 -------------------------------------------------------------------------

// |x| above these rounds past the largest finite value (max + half an ulp; E4M3's tie
// at 464 goes to the even 448, E5M2's tie at 61440 to the even infinity).
constexpr std::uint32_t kE4m3OverflowAbove = 0x43E80000u;  // 464.0f
constexpr std::uint32_t kE5m2OverflowFrom = 0x47700000u;   // 61440.0f

constexpr std::uint32_t e4m3_decode_bits(std::uint8_t b) {
  const std::uint32_t sign = std::uint32_t(b & 0x80u) << 24;
  const std::uint32_t em = b & 0x7Fu;
  if (em == 0x7Fu) return kF32CanonicalNaN;
  const std::uint32_t e = em >> 3, m = em & 7u;
  if (e != 0) return sign | ((e + 127u - 7u) << 23) | (m << 20);
  // Subnormal m * 2^-9, m < 8: normalize (m == 0 is a signed zero).
  if (m == 0) return sign;
  const int lz = std::countl_zero(m) - 29;  // leading zeros within the 3-bit field
  return sign | (std::uint32_t(127 - 7 - lz) << 23) | (((m << (lz + 1)) & 7u) << 20);
}

constexpr std::uint32_t e5m2_decode_bits(std::uint8_t b) {
  const std::uint32_t sign = std::uint32_t(b & 0x80u) << 24;
  const std::uint32_t em = b & 0x7Fu;
  if (em > 0x7Cu) return kF32CanonicalNaN;
  if (em == 0x7Cu) return sign | kF32Inf;
  const std::uint32_t e = em >> 2, m = em & 3u;
  if (e != 0) return sign | ((e + 127u - 15u) << 23) | (m << 21);
  if (m == 0) return sign;
  const int lz = std::countl_zero(m) - 30;  // leading zeros within the 2-bit field
  return sign | (std::uint32_t(127 - 15 - lz) << 23) | (((m << (lz + 1)) & 3u) << 21);
}

constexpr std::uint32_t ue8m0_decode_bits(std::uint8_t b) {
  if (b == 0xFFu) return 0x7FFF0000u;  // NaN, as __nv_cvt_e8m0_to_bf16raw widened
  if (b == 0x00u) return 0x00400000u;  // 2^-127: a float subnormal
  return std::uint32_t(b) << 23;
}

template <std::uint32_t (*Decode)(std::uint8_t)>
constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) t[i] = Decode(static_cast<std::uint8_t>(i));
  return t;
}

inline constexpr auto kE4m3Table = make_table<e4m3_decode_bits>();
inline constexpr auto kE5m2Table = make_table<e5m2_decode_bits>();
inline constexpr auto kUe8m0Table = make_table<ue8m0_decode_bits>();

static_assert(float_of(kE4m3Table[0x7E]) == 448.0f && float_of(kE4m3Table[0x01]) == 0x1p-9f);
static_assert(float_of(kE5m2Table[0x7B]) == 57344.0f && float_of(kE5m2Table[0x01]) == 0x1p-16f);
static_assert(float_of(kUe8m0Table[127]) == 1.0f && float_of(kUe8m0Table[254]) == 0x1p127f);

}  // namespace formats_detail

inline std::uint8_t float_to_e4m3(float x, Saturation sat) {
  using namespace formats_detail;
  const std::uint32_t u = bits_of(x);
  const std::uint32_t sign = (u >> 24) & 0x80u;
  const std::uint32_t a = u & 0x7FFFFFFFu;
  if (a > kF32Inf) return 0x7F;
  if (a > kE4m3OverflowAbove) return static_cast<std::uint8_t>(sign | (sat == Saturation::Finite ? 0x7Eu : 0x7Fu));
  return static_cast<std::uint8_t>(sign | round_magnitude<7, 3>(a));
}

inline std::uint8_t float_to_e5m2(float x, Saturation sat) {
  using namespace formats_detail;
  const std::uint32_t u = bits_of(x);
  const std::uint32_t sign = (u >> 24) & 0x80u;
  const std::uint32_t a = u & 0x7FFFFFFFu;
  if (a > kF32Inf) return 0x7F;
  if (a >= kE5m2OverflowFrom) return static_cast<std::uint8_t>(sign | (sat == Saturation::Finite ? 0x7Bu : 0x7Cu));
  return static_cast<std::uint8_t>(sign | round_magnitude<15, 2>(a));
}

// UE8M0 holds 2^(e-127), e in 0..254, and has no sign and no zero. Every rounding mode
// converts the magnitude |x| (as NVIDIA's host code and c10 both do: they read the
// exponent bits, never the sign), and clamps below at 2^-127 (0x00): zero, -0 and tiny
// values give 0x00. NaN gives 0xFF in every mode. A result past 2^127 (a finite value
// that rounds up past it, or an infinity) gives 0xFE with Saturation::Finite, 0xFF (NaN)
// with Saturation::None.
//   Up          : 2^ceil(log2|x|)   == __nv_cvt_float_to_e8m0(x, sat, cudaRoundPosInf)
//   TowardZero  : 2^floor(log2|x|)  == __nv_cvt_float_to_e8m0(x, sat, cudaRoundZero)
//   NearestEven : c10's fp8e8m0fnu_from_fp32_value with Saturation::None. It rounds the
//                 significand 1.m linearly: up when m >= 1/2 (the tie 1.5 goes up, since
//                 the kept "bit" of a normal is its implicit 1); a subnormal rounds up to
//                 2^-126 only above 2^-127. With Saturation::Finite the same, except that
//                 infinity and a finite value rounding past 2^127 give 0xFE, as in the
//                 CUDA modes; NaN stays 0xFF.
inline std::uint8_t float_to_ue8m0(float x, Rounding rounding, Saturation sat) {
  using namespace formats_detail;
  const std::uint32_t a = bits_of(x) & 0x7FFFFFFFu;
  const std::uint32_t e = a >> 23;
  const std::uint32_t m = a & 0x7FFFFFu;
  // The exponent goes up by one when the mantissa exceeds this threshold.
  std::uint32_t threshold;
  switch (rounding) {
    case Rounding::Up: threshold = e != 0 ? 0u : 0x400000u; break;
    case Rounding::NearestEven: threshold = e != 0 ? 0x3FFFFFu : 0x400000u; break;
    default: threshold = 0x7FFFFFu; break;  // TowardZero: never
  }
  const std::uint32_t r = e + std::uint32_t(m > threshold);  // 255 and up: overflow or NaN
  const std::uint32_t overflow = sat == Saturation::Finite ? 0xFEu : 0xFFu;
  return static_cast<std::uint8_t>(select(a > kF32Inf, 0xFFu, select(r >= 0xFFu, overflow, r)));
}

inline float e4m3_to_float(std::uint8_t bits) {
  using namespace formats_detail;
  return float_of(kE4m3Table[bits]);
}
inline float e5m2_to_float(std::uint8_t bits) {
  using namespace formats_detail;
  return float_of(kE5m2Table[bits]);
}
inline float ue8m0_to_float(std::uint8_t bits) {
  using namespace formats_detail;
  return float_of(kUe8m0Table[bits]);
}

inline std::uint16_t float_to_bf16(float x) {
  using namespace formats_detail;
  const std::uint32_t u = bits_of(x);
  if ((u & 0x7FFFFFFFu) > kF32Inf) return 0x7FFF;
  // Nearest even on the top 16 bits; a carry out of the mantissa is the next binade, and
  // past the largest finite bf16 it is infinity, as IEEE rounding says.
  return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline float bf16_to_float(std::uint16_t bits) {
  using namespace formats_detail;
  return float_of(std::uint32_t(bits) << 16);
}

inline std::uint16_t float_to_f16(float x) {
  using namespace formats_detail;
  const std::uint32_t u = bits_of(x);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7FFFFFFFu;
  if (a > kF32Inf) return 0x7FFF;
  // 65536 and above (infinity too) overflow outright; [65520, 65536) rounds up to
  // infinity inside round_magnitude (65520 is the tie, and 65504's mantissa is odd).
  if (a >= 0x47800000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
  return static_cast<std::uint16_t>(sign | round_magnitude<15, 10>(a));
}

inline float f16_to_float(std::uint16_t bits) {
  using namespace formats_detail;
  const std::uint32_t sign = std::uint32_t(bits & 0x8000u) << 16;
  const std::uint32_t em = bits & 0x7FFFu;
  if (em >= 0x7C00u) return float_of(em == 0x7C00u ? (sign | kF32Inf) : kF32CanonicalNaN);
  if (em >= 0x0400u) return float_of(sign | ((em << 13) + (std::uint32_t(127 - 15) << 23)));
  // Zero or subnormal: em * 2^-24 is exact, and a normal float (or zero).
  return float_of(sign | bits_of(static_cast<float>(em) * 0x1p-24f));
}


}  // namespace anychip
