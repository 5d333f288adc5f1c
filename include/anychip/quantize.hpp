// Block quantization, the DeepSeek-V3 recipe (DESIGN.md, "Block quantization").
//
// A row-major [rows, cols] matrix is cut into blocks of block.rows x block.cols
// (activations 1x128, weights 128x128; edge blocks may be partial). Each block b gets
//   s = max(amax_b, 1e-4) / fmt_max          (fp32 arithmetic; fmt_max = 448 for E4M3)
//   s = 2^ceil(log2 s)                        (only when scales are stored as UE8M0)
//   q = fp8(x / s)                            (round to nearest even, finite saturation)
// Scales are stored row-major, [ceil(rows/block.rows), ceil(cols/block.cols)], as fp32
// or as UE8M0 bytes. amax ignores NaN; a NaN element quantizes to NaN. An infinite
// element follows the recipe literally: with f32 scales its block's scale is infinite (the
// block quantizes to zeros, the infinity to NaN); with UE8M0 the scale saturates to 2^127.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "anychip/dtype.hpp"

namespace anychip {

struct BlockShape {
  std::int64_t rows = 1;
  std::int64_t cols = 128;
  friend bool operator==(const BlockShape&, const BlockShape&) = default;
};

inline constexpr BlockShape kActivationBlock{1, 128};
inline constexpr BlockShape kWeightBlock{128, 128};

inline constexpr float kScaleAmaxFloor = 1e-4f;

// Number of scale entries along each dimension.
constexpr std::int64_t scale_rows(std::int64_t rows, BlockShape b) { return (rows + b.rows - 1) / b.rows; }
constexpr std::int64_t scale_cols(std::int64_t cols, BlockShape b) { return (cols + b.cols - 1) / b.cols; }

// The scale of one block from its amax: the rule above, returned as a float
// (a power of two when scale_dtype is ue8m0). fp8 is f8e4m3 or f8e5m2.
float block_scale(float amax, DType fp8, DType scale_dtype);

// Reads scale i of a scale array stored as scale_dtype (f32 or ue8m0).
float load_scale(const void* scales, DType scale_dtype, std::size_t i);
// Writes scale value s as scale_dtype; for ue8m0, s must be a power of two UE8M0 holds
// exactly (Error(InvalidArgument) otherwise).
void store_scale(void* scales, DType scale_dtype, std::size_t i, float s);

// Quantizes x to fp8 (f8e4m3 or f8e5m2). q holds rows*cols bytes; scales holds
// scale_rows*scale_cols entries of scale_dtype. Throws anychip::Error on a bad argument.
void quantize_blocks(std::span<const float> x, std::int64_t rows, std::int64_t cols,
                     BlockShape block, DType fp8, DType scale_dtype,
                     std::span<std::uint8_t> q, std::span<std::byte> scales);

// out[i] = fp8_to_float(q[i]) * scale of its block.
void dequantize_blocks(std::span<const std::uint8_t> q, std::span<const std::byte> scales,
                       std::int64_t rows, std::int64_t cols, BlockShape block, DType fp8,
                       DType scale_dtype, std::span<float> out);

}  // namespace anychip
