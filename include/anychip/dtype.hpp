// Element types of anychip tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace anychip {

enum class DType : std::uint8_t {
  f32,     // IEEE binary32
  bf16,    // bfloat16
  f16,     // IEEE binary16
  f8e4m3,  // OCP FP8 E4M3 "fn": bias 7, max 448, no infinity
  f8e5m2,  // OCP FP8 E5M2: bias 15, max 57344, with infinity
  ue8m0,   // unsigned power-of-two scale 2^(e-127); 0xFF is NaN
  i32,     // two's complement int32
};

inline constexpr DType kAllDTypes[] = {DType::f32,    DType::bf16,   DType::f16, DType::f8e4m3,
                                       DType::f8e5m2, DType::ue8m0, DType::i32};

// The name used by the text format and the command line ("f32", "f8e4m3", ...).
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);
std::size_t dtype_size(DType dtype);

constexpr bool is_fp8(DType d) { return d == DType::f8e4m3 || d == DType::f8e5m2; }
constexpr bool is_float(DType d) { return d == DType::f32 || d == DType::bf16 || d == DType::f16; }
// Types a block scale may be stored as.
constexpr bool is_scale_dtype(DType d) { return d == DType::f32 || d == DType::ue8m0; }

}  // namespace anychip
