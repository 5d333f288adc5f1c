// Tensor types and host tensors.
//
// A TensorType is a dtype and a shape; a block-scaled FP8 tensor also carries its scale
// layout (block shape and scale dtype) as part of its type. A HostTensor holds the bytes
// of one such tensor in host memory, in the layouts of DESIGN.md: row-major data and, when
// scaled, a row-major scale array [ceil(R/br), ceil(C/bc)] over the last two dimensions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "anychip/dtype.hpp"
#include "anychip/quantize.hpp"

namespace anychip {

using Shape = std::vector<std::int64_t>;

std::string shape_str(const Shape& shape);  // "[64, 512]"

struct ScaleLayout {
  BlockShape block = kActivationBlock;
  DType dtype = DType::ue8m0;  // f32 or ue8m0
  friend bool operator==(const ScaleLayout&, const ScaleLayout&) = default;
};

struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  std::optional<ScaleLayout> scale;  // set only for block-scaled FP8

  std::int64_t numel() const;
  std::size_t data_bytes() const;
  // The scale array's shape and size ({} and 0 when unscaled).
  Shape scale_shape() const;
  std::int64_t scale_count() const;
  std::size_t scale_bytes() const;
  // "bf16[64, 512]" or "f8e4m3[64, 512] scaled<1x128, ue8m0>" (the .acir spelling).
  std::string str() const;
  friend bool operator==(const TensorType&, const TensorType&) = default;
};

// Decodes n elements of dtype (f32, bf16, f16, FP8, ue8m0, i32) to double.
void decode_values(DType dtype, const void* src, std::size_t n, double* dst);
// Encodes n doubles into dtype, rounding to nearest even (FP8: finite saturation).
void encode_values(DType dtype, const double* src, std::size_t n, void* dst);

struct HostTensor {
  TensorType type;
  std::vector<std::byte> data;
  std::vector<std::byte> scales;  // empty unless type.scale

  HostTensor() = default;
  explicit HostTensor(TensorType t);  // zero-filled

  // Element values as double; block-scaled FP8 is dequantized (value * its block scale).
  std::vector<double> values() const;

  // The tensor of type t nearest to `values`: rounded to the dtype, or block-quantized
  // by the DeepSeek recipe for a scaled type.
  static HostTensor encode(const TensorType& t, std::span<const double> values);

  // Fresh random contents, never all zero: uniform in [-1, 1) times a per-block (or, when
  // unscaled, per-row) magnitude between 2^-3 and 2^3, so a wrong scale index shows.
  static HostTensor random(const TensorType& t, std::uint64_t seed);

  // Every byte 0xFF: NaN in every float format (and a NaN scale), so an output element a
  // kernel never writes shows up in a check; i32 elements 0x7F7F7F7F (-1 is a valid index).
  static HostTensor poisoned(const TensorType& t);
};

// ||out - ref||_2 / ||ref||_2 (0 when both are zero; infinity when ref is zero and out is
// not, or when out holds a NaN that ref does not).
double rel_err(std::span<const double> out, std::span<const double> ref);

}  // namespace anychip
