#include "anychip/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"

namespace anychip {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::int64_t TensorType::numel() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

std::size_t TensorType::data_bytes() const {
  return static_cast<std::size_t>(numel()) * dtype_size(dtype);
}

namespace {
// Rows and columns of the matrix that block scales tile: the last two dimensions, with
// everything before the last folded into rows.
std::pair<std::int64_t, std::int64_t> matrix_dims(const Shape& shape) {
  if (shape.empty()) return {1, 1};
  std::int64_t cols = shape.back();
  std::int64_t rows = 1;
  for (std::size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  return {rows, cols};
}
}  // namespace

Shape TensorType::scale_shape() const {
  if (!scale) return {};
  auto [rows, cols] = matrix_dims(shape);
  return {scale_rows(rows, scale->block), scale_cols(cols, scale->block)};
}

std::int64_t TensorType::scale_count() const {
  if (!scale) return 0;
  Shape s = scale_shape();
  return s[0] * s[1];
}

std::size_t TensorType::scale_bytes() const {
  return scale ? static_cast<std::size_t>(scale_count()) * dtype_size(scale->dtype) : 0;
}

std::string TensorType::str() const {
  std::string s = std::string(dtype_name(dtype)) + shape_str(shape);
  if (scale) {
    s += " scaled<" + std::to_string(scale->block.rows) + "x" + std::to_string(scale->block.cols) +
         ", " + std::string(dtype_name(scale->dtype)) + ">";
  }
  return s;
}

void decode_values(DType dtype, const void* src, std::size_t n, double* dst) {
  const auto* b = static_cast<const unsigned char*>(src);
  for (std::size_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::f32: {
        float f;
        std::memcpy(&f, b + 4 * i, 4);
        dst[i] = f;
        break;
      }
      case DType::bf16:
      case DType::f16: {
        std::uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        dst[i] = dtype == DType::bf16 ? bf16_to_float(h) : f16_to_float(h);
        break;
      }
      case DType::f8e4m3: dst[i] = e4m3_to_float(b[i]); break;
      case DType::f8e5m2: dst[i] = e5m2_to_float(b[i]); break;
      case DType::ue8m0: dst[i] = ue8m0_to_float(b[i]); break;
      case DType::i32: {
        std::int32_t v;
        std::memcpy(&v, b + 4 * i, 4);
        dst[i] = v;
        break;
      }
    }
  }
}

void encode_values(DType dtype, const double* src, std::size_t n, void* dst) {
  auto* b = static_cast<unsigned char*>(dst);
  for (std::size_t i = 0; i < n; ++i) {
    // double -> float first (round to nearest even), as every backend's fp32 epilogue does.
    const float f = static_cast<float>(src[i]);
    switch (dtype) {
      case DType::f32: std::memcpy(b + 4 * i, &f, 4); break;
      case DType::bf16:
      case DType::f16: {
        std::uint16_t h = dtype == DType::bf16 ? float_to_bf16(f) : float_to_f16(f);
        std::memcpy(b + 2 * i, &h, 2);
        break;
      }
      case DType::f8e4m3: b[i] = float_to_e4m3(f); break;
      case DType::f8e5m2: b[i] = float_to_e5m2(f); break;
      case DType::ue8m0: b[i] = float_to_ue8m0(f, Rounding::NearestEven); break;
      case DType::i32: {
        auto v = static_cast<std::int32_t>(std::llround(src[i]));
        std::memcpy(b + 4 * i, &v, 4);
        break;
      }
    }
  }
}

HostTensor::HostTensor(TensorType t)
    : type(std::move(t)), data(type.data_bytes()), scales(type.scale_bytes()) {}

std::vector<double> HostTensor::values() const {
  std::vector<double> v(static_cast<std::size_t>(type.numel()));
  if (!type.scale) {
    decode_values(type.dtype, data.data(), v.size(), v.data());
    return v;
  }
  auto [rows, cols] = matrix_dims(type.shape);
  std::vector<float> f(v.size());
  dequantize_blocks({reinterpret_cast<const std::uint8_t*>(data.data()), data.size()}, scales,
                    rows, cols, type.scale->block, type.dtype, type.scale->dtype, f);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = f[i];
  return v;
}

HostTensor HostTensor::encode(const TensorType& t, std::span<const double> values) {
  HostTensor h(t);
  if (values.size() != static_cast<std::size_t>(t.numel()))
    throw Error(ErrorCode::InvalidArgument,
                "HostTensor::encode: " + std::to_string(values.size()) + " values for " + t.str());
  if (!t.scale) {
    encode_values(t.dtype, values.data(), values.size(), h.data.data());
    return h;
  }
  auto [rows, cols] = matrix_dims(t.shape);
  std::vector<float> f(values.begin(), values.end());
  quantize_blocks(f, rows, cols, t.scale->block, t.dtype, t.scale->dtype,
                  {reinterpret_cast<std::uint8_t*>(h.data.data()), h.data.size()}, h.scales);
  return h;
}

HostTensor HostTensor::random(const TensorType& t, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::uniform_int_distribution<int> exponent(-3, 3);
  auto [rows, cols] = matrix_dims(t.shape);
  const BlockShape block = t.scale ? t.scale->block : BlockShape{1, std::max<std::int64_t>(cols, 1)};
  const std::int64_t brows = scale_rows(rows, block), bcols = scale_cols(cols, block);
  std::vector<double> magnitude(static_cast<std::size_t>(brows * bcols));
  for (double& m : magnitude) m = std::ldexp(1.0, exponent(rng));
  std::vector<double> v(static_cast<std::size_t>(t.numel()));
  if (t.dtype == DType::i32) {
    for (double& x : v) x = std::round(uniform(rng) * 1000);
  } else {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        v[static_cast<std::size_t>(r * cols + c)] =
            uniform(rng) * magnitude[static_cast<std::size_t>((r / block.rows) * bcols + c / block.cols)];
  }
  if (t.dtype == DType::ue8m0)
    for (double& x : v) x = std::ldexp(1.0, exponent(rng));
  return encode(t, v);
}

HostTensor HostTensor::poisoned(const TensorType& t) {
  HostTensor h(t);
  // All-ones bytes are NaN for every float type; for i32 they would read -1, which index
  // operands use (a padding row), so i32 gets 0x7F7F7F7F, out of range for any index.
  std::fill(h.data.begin(), h.data.end(), static_cast<std::byte>(t.dtype == DType::i32 ? 0x7F : 0xFF));
  std::fill(h.scales.begin(), h.scales.end(), std::byte{0xFF});
  return h;
}

double rel_err(std::span<const double> out, std::span<const double> ref) {
  if (out.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const bool out_nan = std::isnan(out[i]), ref_nan = std::isnan(ref[i]);
    if (out_nan || ref_nan) {
      if (out_nan != ref_nan) return std::numeric_limits<double>::infinity();
      continue;
    }
    const double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

}  // namespace anychip
