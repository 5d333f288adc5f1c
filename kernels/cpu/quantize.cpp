// quantize_fp8 and dequantize on the CPU (cpu_kernels.hpp; semantics in
// anychip/quantize.hpp). quantize_fp8 must equal anychip::quantize_blocks bit for bit, so
// it is exactly that, run in parallel on bands of whole block rows (a band's codes and
// scales are contiguous in the outputs) after converting bf16/f16 input to fp32, which
// is exact.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "anychip/quantize.hpp"
#include "kernels/cpu/cpu_kernels.hpp"

namespace anychip::kernels::cpu {
namespace {

using std::int64_t;
constexpr int64_t kElementsPerTask = 1 << 15;

[[noreturn]] void invalid(const char* op, const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, std::string("cpu::") + op + ": " + message);
}

void check_layout(const char* op, int64_t rows, int64_t cols, BlockShape block, DType fp8,
                  DType scale_dtype) {
  if (rows < 0 || cols < 0)
    invalid(op, "rows=" + std::to_string(rows) + ", cols=" + std::to_string(cols) + ": negative");
  if (block.rows <= 0 || block.cols <= 0)
    invalid(op, "block=" + std::to_string(block.rows) + "x" + std::to_string(block.cols) +
                    " has a non-positive dimension");
  if (!is_fp8(fp8)) invalid(op, "fp8 dtype " + std::string(dtype_name(fp8)) + " is not f8e4m3 or f8e5m2");
  if (!is_scale_dtype(scale_dtype))
    invalid(op, "scale dtype " + std::string(dtype_name(scale_dtype)) + " is not f32 or ue8m0");
}

void check_float(const char* op, DType d) {
  if (!is_float(d)) invalid(op, "dtype " + std::string(dtype_name(d)) + " is not f32, bf16 or f16");
}

void check_data(const char* op, const char* what, const void* p, int64_t count) {
  if (count > 0 && p == nullptr) invalid(op, std::string(what) + " is null");
}

}  // namespace

void quantize_fp8(const QuantizeProblem& p, ConstOperand x, Operand q) {
  check_layout("quantize_fp8", p.rows, p.cols, p.block, p.out_dtype, p.scale_dtype);
  check_float("quantize_fp8", p.in_dtype);
  const int64_t n = p.rows * p.cols;
  check_data("quantize_fp8", "x", x.data, n);
  check_data("quantize_fp8", "q", q.data, n);
  check_data("quantize_fp8", "q scales", q.scales, n);
  if (n == 0) return;

  const int64_t band_rows = scale_rows(p.rows, p.block), n_bcols = scale_cols(p.cols, p.block);
  const std::size_t scale_size = dtype_size(p.scale_dtype);
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / (p.block.rows * p.cols));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, band_rows, grain), [&](const auto& range) {
    const int64_t r0 = range.begin() * p.block.rows;
    const int64_t r1 = std::min(p.rows, range.end() * p.block.rows);
    const auto count = static_cast<std::size_t>((r1 - r0) * p.cols);
    std::vector<float> xs(count);
    const int64_t first = r0 * p.cols;
    if (p.in_dtype == DType::f32) {
      std::memcpy(xs.data(), static_cast<const float*>(x.data) + first, count * 4);
    } else {
      const auto* src = static_cast<const std::uint16_t*>(x.data) + first;
      for (std::size_t i = 0; i < count; ++i)
        xs[i] = p.in_dtype == DType::bf16 ? bf16_to_float(src[i]) : f16_to_float(src[i]);
    }
    const std::size_t scale_offset = static_cast<std::size_t>(range.begin() * n_bcols) * scale_size;
    const std::size_t scale_bytes = static_cast<std::size_t>(range.size()) * static_cast<std::size_t>(n_bcols) * scale_size;
    quantize_blocks(xs, r1 - r0, p.cols, p.block, p.out_dtype, p.scale_dtype,
                    {static_cast<std::uint8_t*>(q.data) + first, count},
                    {static_cast<std::byte*>(q.scales) + scale_offset, scale_bytes});
  });
}

void dequantize(const DequantizeProblem& p, ConstOperand x, Operand y) {
  check_layout("dequantize", p.rows, p.cols, p.block, p.in_dtype, p.scale_dtype);
  check_float("dequantize", p.out_dtype);
  const int64_t n = p.rows * p.cols;
  check_data("dequantize", "x", x.data, n);
  check_data("dequantize", "x scales", x.scales, n);
  check_data("dequantize", "y", y.data, n);
  if (n == 0) return;

  std::array<float, 256> value{};
  for (int b = 0; b < 256; ++b) {
    const auto code = static_cast<std::uint8_t>(b);
    value[static_cast<std::size_t>(b)] = p.in_dtype == DType::f8e4m3 ? e4m3_to_float(code) : e5m2_to_float(code);
  }
  const int64_t n_bcols = scale_cols(p.cols, p.block);
  const auto* codes = static_cast<const std::uint8_t*>(x.data);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.rows, std::max<int64_t>(1, kElementsPerTask / p.cols)),
                    [&](const auto& range) {
    std::vector<float> row(static_cast<std::size_t>(p.cols));
    std::vector<std::uint16_t> half(p.out_dtype == DType::f32 ? 0 : row.size());
    for (int64_t r = range.begin(); r != range.end(); ++r) {
      const std::uint8_t* in = codes + r * p.cols;
      for (int64_t bc = 0; bc < n_bcols; ++bc) {
        const float s = load_scale(x.scales, p.scale_dtype, static_cast<std::size_t>((r / p.block.rows) * n_bcols + bc));
        const int64_t c1 = std::min(p.cols, (bc + 1) * p.block.cols);
        for (int64_t c = bc * p.block.cols; c < c1; ++c) row[static_cast<std::size_t>(c)] = value[in[c]] * s;
      }
      if (p.out_dtype == DType::f32) {
        std::memcpy(static_cast<float*>(y.data) + r * p.cols, row.data(), row.size() * 4);
        continue;
      }
      for (std::size_t c = 0; c < row.size(); ++c)
        half[c] = p.out_dtype == DType::bf16 ? float_to_bf16(row[c]) : float_to_f16(row[c]);
      std::memcpy(static_cast<std::uint16_t*>(y.data) + r * p.cols, half.data(), half.size() * 2);
    }
  });
}

}  // namespace anychip::kernels::cpu
