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

}  // namespace anychip
