// Converting f32 / bf16 / f16 arrays to and from fp32 scratch rows: the load and store of
// the memory-bound CPU kernels (elementwise.cpp, layout_ops.cpp, moe.cpp).
#pragma once

#include <cstdint>
#include <cstring>

#include "anychip/dtype.hpp"
#include "anychip/formats.hpp"

namespace anychip::kernels::cpu {

// dst[0..n) = elements [offset, offset+n) of an f32 / bf16 / f16 array, exactly.
inline void load(DType d, const void* base, std::int64_t offset, std::int64_t n, float* dst) {
  if (d == DType::f32) {
    std::memcpy(dst, static_cast<const float*>(base) + offset, static_cast<std::size_t>(n) * 4);
    return;
  }
  const auto* src = static_cast<const std::uint16_t*>(base) + offset;
  if (d == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint32_t bits = static_cast<std::uint32_t>(src[i]) << 16;
      std::memcpy(dst + i, &bits, 4);
    }
  } else {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = f16_to_float(src[i]);
  }
}

// Elements [offset, offset+n) of an f32 / bf16 / f16 array = src, rounded to nearest even.
inline void store(DType d, const float* src, std::int64_t n, void* base, std::int64_t offset) {
  if (d == DType::f32) {
    std::memcpy(static_cast<float*>(base) + offset, src, static_cast<std::size_t>(n) * 4);
    return;
  }
  auto* dst = static_cast<std::uint16_t*>(base) + offset;
  if (d == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = float_to_f16(src[i]);
  }
}

}  // namespace anychip::kernels::cpu
