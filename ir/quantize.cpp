// Block quantization, the DeepSeek-V3 recipe (DESIGN.md, "Block quantization";
// include/anychip/quantize.hpp has the rule).
//
// Decisions the header leaves open, pinned by tests/ir/quantize_test.cpp:
//  * amax is the largest |x| over the block's non-NaN elements; an infinite element counts.
//    The recipe is then applied literally, as the reference PyTorch code would: an
//    infinite amax gives an f32 scale of +inf (the block quantizes to zeros, and the
//    infinity itself to NaN) or a UE8M0 scale of 2^127 (the infinity saturates to 448).
//  * block_scale treats a NaN or negative amax as 0, so the 1e-4 floor applies.
//  * store_scale rejects, for UE8M0, a value the format cannot hold exactly (not a power
//    of two in [2^-127, 2^127], and not NaN) instead of silently rounding it.
//  * Zero rows or columns are valid (nothing to do); negative ones are not.
#include "anychip/quantize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"

namespace anychip {
namespace {

[[noreturn]] void invalid(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, message);
}

void check_fp8(const char* fn, DType fp8) {
  if (!is_fp8(fp8))
    invalid(std::string(fn) + ": fp8=" + std::string(dtype_name(fp8)) +
            " is not an FP8 dtype (must be f8e4m3 or f8e5m2)");
}

void check_scale_dtype(const char* fn, DType scale_dtype) {
  if (!is_scale_dtype(scale_dtype))
    invalid(std::string(fn) + ": scale_dtype=" + std::string(dtype_name(scale_dtype)) +
            " is not a scale dtype (must be f32 or ue8m0)");
}

float fp8_max(DType fp8) { return fp8 == DType::f8e4m3 ? kE4m3Max : kE5m2Max; }

std::size_t scale_size(DType scale_dtype) { return scale_dtype == DType::f32 ? 4 : 1; }

// The shared argument checks of quantize_blocks and dequantize_blocks. Returns the
// number of elements.
std::size_t check_blocks(const char* fn, std::int64_t rows, std::int64_t cols, BlockShape block,
                         DType fp8, DType scale_dtype, std::size_t values_size,
                         const char* values_name, std::size_t codes_size, const char* codes_name,
                         std::size_t scales_bytes) {
  check_fp8(fn, fp8);
  check_scale_dtype(fn, scale_dtype);
  if (rows < 0 || cols < 0)
    invalid(std::string(fn) + ": rows=" + std::to_string(rows) + ", cols=" + std::to_string(cols) +
            ": the matrix dimensions must not be negative");
  if (block.rows <= 0 || block.cols <= 0)
    invalid(std::string(fn) + ": block=" + std::to_string(block.rows) + "x" +
            std::to_string(block.cols) + ": block dimensions must be positive");
  if (cols != 0 && rows > std::numeric_limits<std::int64_t>::max() / cols)
    invalid(std::string(fn) + ": rows*cols overflows (rows=" + std::to_string(rows) +
            ", cols=" + std::to_string(cols) + ")");
  const auto n = static_cast<std::size_t>(rows * cols);
  const std::string dims = std::to_string(rows) + "x" + std::to_string(cols);
  if (values_size != n)
    invalid(std::string(fn) + ": " + values_name + " has " + std::to_string(values_size) +
            " elements; it must have rows*cols = " + std::to_string(n) + " (" + dims + ")");
  if (codes_size != n)
    invalid(std::string(fn) + ": " + codes_name + " has " + std::to_string(codes_size) +
            " bytes; it must have rows*cols = " + std::to_string(n) + " (" + dims + ")");
  const std::int64_t sr = scale_rows(rows, block), sc = scale_cols(cols, block);
  const std::size_t want = static_cast<std::size_t>(sr * sc) * scale_size(scale_dtype);
  if (scales_bytes != want)
    invalid(std::string(fn) + ": scales has " + std::to_string(scales_bytes) +
            " bytes; it must have scale_rows*scale_cols = " + std::to_string(sr) + "*" +
            std::to_string(sc) + " entries of " + std::string(dtype_name(scale_dtype)) + " = " +
            std::to_string(want) + " bytes (" + dims + " in " + std::to_string(block.rows) + "x" +
            std::to_string(block.cols) + " blocks)");
  return n;
}

}  // namespace

float block_scale(float amax, DType fp8, DType scale_dtype) {
  check_fp8("block_scale", fp8);
  check_scale_dtype("block_scale", scale_dtype);
  // max(amax, 1e-4), with a NaN or negative amax taken as 0.
  const float clamped = amax > kScaleAmaxFloor ? amax : kScaleAmaxFloor;
  const float s = clamped / fp8_max(fp8);
  if (scale_dtype == DType::ue8m0) return ue8m0_to_float(float_to_ue8m0(s, Rounding::Up));
  return s;
}

float load_scale(const void* scales, DType scale_dtype, std::size_t i) {
  check_scale_dtype("load_scale", scale_dtype);
  if (scales == nullptr) invalid("load_scale: scales is null");
  const auto* p = static_cast<const unsigned char*>(scales);
  if (scale_dtype == DType::ue8m0) return ue8m0_to_float(p[i]);
  float s;
  std::memcpy(&s, p + 4 * i, 4);
  return s;
}

void store_scale(void* scales, DType scale_dtype, std::size_t i, float s) {
  check_scale_dtype("store_scale", scale_dtype);
  if (scales == nullptr) invalid("store_scale: scales is null");
  auto* p = static_cast<unsigned char*>(scales);
  if (scale_dtype == DType::f32) {
    std::memcpy(p + 4 * i, &s, 4);
    return;
  }
  const std::uint8_t code = float_to_ue8m0(s, Rounding::Up, Saturation::None);
  if (!std::isnan(s) && ue8m0_to_float(code) != s)
    invalid("store_scale: s=" + std::to_string(s) +
            " cannot be stored as ue8m0: it must be a power of two in [2^-127, 2^127]");
  p[i] = code;
}

void quantize_blocks(std::span<const float> x, std::int64_t rows, std::int64_t cols,
                     BlockShape block, DType fp8, DType scale_dtype,
                     std::span<std::uint8_t> q, std::span<std::byte> scales) {
  check_blocks("quantize_blocks", rows, cols, block, fp8, scale_dtype, x.size(), "x", q.size(),
               "q", scales.size());
  if (rows == 0 || cols == 0) return;
  const bool e4m3 = fp8 == DType::f8e4m3;
  const std::int64_t n_bcols = scale_cols(cols, block);
  std::vector<float> amax(static_cast<std::size_t>(n_bcols));
  std::vector<float> scale(static_cast<std::size_t>(n_bcols));

  // One band of block.rows rows at a time: amax of every block in the band, then the
  // scales, then the codes. Rows stay contiguous in both passes.
  for (std::int64_t r0 = 0, br = 0; r0 < rows; r0 += block.rows, ++br) {
    const std::int64_t r1 = std::min(rows, r0 + block.rows);
    std::fill(amax.begin(), amax.end(), 0.0f);
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* row = x.data() + r * cols;
      for (std::int64_t bc = 0, c0 = 0; bc < n_bcols; ++bc, c0 += block.cols) {
        const std::int64_t c1 = std::min(cols, c0 + block.cols);
        float m = amax[static_cast<std::size_t>(bc)];
        for (std::int64_t c = c0; c < c1; ++c) {
          const float a = std::fabs(row[c]);
          m = a > m ? a : m;  // a NaN compares false and is skipped
        }
        amax[static_cast<std::size_t>(bc)] = m;
      }
    }
    for (std::int64_t bc = 0; bc < n_bcols; ++bc) {
      const float s = block_scale(amax[static_cast<std::size_t>(bc)], fp8, scale_dtype);
      scale[static_cast<std::size_t>(bc)] = s;
      store_scale(scales.data(), scale_dtype, static_cast<std::size_t>(br * n_bcols + bc), s);
    }
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* row = x.data() + r * cols;
      std::uint8_t* out = q.data() + r * cols;
      for (std::int64_t bc = 0, c0 = 0; bc < n_bcols; ++bc, c0 += block.cols) {
        const std::int64_t c1 = std::min(cols, c0 + block.cols);
        const float s = scale[static_cast<std::size_t>(bc)];
        if (e4m3) {
          for (std::int64_t c = c0; c < c1; ++c) out[c] = float_to_e4m3(row[c] / s);
        } else {
          for (std::int64_t c = c0; c < c1; ++c) out[c] = float_to_e5m2(row[c] / s);
        }
      }
    }
  }
}

void dequantize_blocks(std::span<const std::uint8_t> q, std::span<const std::byte> scales,
                       std::int64_t rows, std::int64_t cols, BlockShape block, DType fp8,
                       DType scale_dtype, std::span<float> out) {
  check_blocks("dequantize_blocks", rows, cols, block, fp8, scale_dtype, out.size(), "out",
               q.size(), "q", scales.size());
  if (rows == 0 || cols == 0) return;
  float (*decode)(std::uint8_t) = fp8 == DType::f8e4m3 ? e4m3_to_float : e5m2_to_float;
  const std::int64_t n_bcols = scale_cols(cols, block);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t srow = (r / block.rows) * n_bcols;
    const std::uint8_t* in = q.data() + r * cols;
    float* dst = out.data() + r * cols;
    for (std::int64_t bc = 0, c0 = 0; bc < n_bcols; ++bc, c0 += block.cols) {
      const std::int64_t c1 = std::min(cols, c0 + block.cols);
      const float s = load_scale(scales.data(), scale_dtype, static_cast<std::size_t>(srow + bc));
      for (std::int64_t c = c0; c < c1; ++c) dst[c] = decode(in[c]) * s;
    }
  }
}

}  // namespace anychip
