// FP8 -> bf16 / f32 decode tables and the scalar helpers the CPU GEMM kernels share.
//
// Every FP8 value is exact in bf16 (bf16 has fp32's exponent range and 7 mantissa bits;
// E4M3 needs 3, E5M2 2), so the kernels decode FP8 straight to bf16 bit patterns with a
// table lookup and never round. The tables are built here from the bit layouts of
// DESIGN.md ("Numeric semantics"), independently of anychip/formats.hpp, so that the test
// against the float64 reference (which uses anychip/formats.hpp) checks both.
//
// kFp8MagnitudeBf16[fmt][b & 0x7F] is the bf16 pattern of the magnitude of FP8 byte b;
// the sign is bit 7 of b moved to bit 15. 128 entries = four 512-bit registers, the
// shape of the AVX-512 vpermi2w lookup.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "anychip/dtype.hpp"

namespace anychip::kernels::cpu::gemm_detail {

inline constexpr std::uint16_t kBf16QuietNan = 0x7FC0;
inline constexpr std::uint16_t kBf16Inf = 0x7F80;

// bf16 pattern of m * 2^(e_min) for a subnormal FP8 mantissa m (m > 0, at most 3 bits):
// normalise so the leading one becomes bf16's implicit bit.
constexpr std::uint16_t subnormal_to_bf16(unsigned m, int e_min) {
  int p = 0;
  while ((m >> (p + 1)) != 0) ++p;  // position of the leading one
  const unsigned exponent = static_cast<unsigned>(p + e_min + 127);
  const unsigned mantissa = (m - (1u << p)) << (7 - p);
  return static_cast<std::uint16_t>((exponent << 7) | mantissa);
}

// E4M3 "fn": bias 7, no infinity, 0x7F is NaN.
constexpr std::uint16_t e4m3_magnitude_to_bf16(unsigned mag) {
  const unsigned e = mag >> 3, m = mag & 7;
  if (mag == 0x7F) return kBf16QuietNan;
  if (e == 0) return m == 0 ? 0 : subnormal_to_bf16(m, -9);  // m * 2^-9
  return static_cast<std::uint16_t>(((e + 120) << 7) | (m << 4));
}

// E5M2: bias 15, exponent 31 is infinity (m == 0) or NaN.
constexpr std::uint16_t e5m2_magnitude_to_bf16(unsigned mag) {
  const unsigned e = mag >> 2, m = mag & 3;
  if (e == 31) return m == 0 ? kBf16Inf : kBf16QuietNan;
  if (e == 0) return m == 0 ? 0 : subnormal_to_bf16(m, -16);  // m * 2^-16
  return static_cast<std::uint16_t>(((e + 112) << 7) | (m << 5));
}

using MagnitudeTable = std::array<std::uint16_t, 128>;

constexpr MagnitudeTable make_magnitude_table(bool e5m2) {
  MagnitudeTable t{};
  for (unsigned i = 0; i < 128; ++i) t[i] = e5m2 ? e5m2_magnitude_to_bf16(i) : e4m3_magnitude_to_bf16(i);
  return t;
}

inline constexpr MagnitudeTable kE4m3MagnitudeBf16 = make_magnitude_table(false);
inline constexpr MagnitudeTable kE5m2MagnitudeBf16 = make_magnitude_table(true);

inline const MagnitudeTable& magnitude_table(DType fp8) {
  return fp8 == DType::f8e5m2 ? kE5m2MagnitudeBf16 : kE4m3MagnitudeBf16;
}

constexpr std::uint16_t fp8_to_bf16_bits(std::uint8_t b, const MagnitudeTable& t) {
  return static_cast<std::uint16_t>(t[b & 0x7F] | ((b & 0x80u) << 8));
}

inline float bf16_bits_to_float(std::uint16_t h) {
  const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// All 256 FP8 values as float, for the kernels that compute in fp32.
using FloatTable = std::array<float, 256>;
inline FloatTable make_float_table(DType fp8) {
  FloatTable t{};
  const MagnitudeTable& mag = magnitude_table(fp8);
  for (unsigned b = 0; b < 256; ++b) t[b] = bf16_bits_to_float(fp8_to_bf16_bits(static_cast<std::uint8_t>(b), mag));
  return t;
}
inline const FloatTable& float_table(DType fp8) {
  static const FloatTable e4m3 = make_float_table(DType::f8e4m3);
  static const FloatTable e5m2 = make_float_table(DType::f8e5m2);
  return fp8 == DType::f8e5m2 ? e5m2 : e4m3;
}

// float -> bf16, round to nearest even, NaN kept a (quiet) NaN; denormals are rounded,
// not flushed (unlike vcvtneps2bf16, which is why the kernels do not use it).
inline std::uint16_t float_to_bf16_rne(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

// One block scale as float: f32 as stored; UE8M0 byte e is 2^(e-127) (e = 0 is the fp32
// subnormal 2^-127), 0xFF is NaN.
inline float scale_to_float(const void* scales, DType scale_dtype, std::int64_t i) {
  if (scale_dtype == DType::f32) {
    float f;
    std::memcpy(&f, static_cast<const unsigned char*>(scales) + 4 * i, 4);
    return f;
  }
  const unsigned e = static_cast<const unsigned char*>(scales)[i];
  const std::uint32_t u = e == 0xFF ? 0x7FC00000u : (e == 0 ? 0x00400000u : e << 23);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace anychip::kernels::cpu::gemm_detail
