// The float64 reference (reference.hpp). Every input element is decoded exactly (f32,
// bf16 and f16 values are all exactly representable as float; an FP8 code times its
// block scale is exact in double), every sum is taken in double, and the result is
// written unrounded. Loops are the plain definitions of the ops; only the outermost
// loop over output rows runs in parallel, which never changes a result.
#include "kernels/reference/reference.hpp"
#include "kernels/reference/tolerance.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "anychip/ir.hpp"
#include "anychip/quantize.hpp"

namespace anychip::kernels::reference {
namespace {

[[noreturn]] void invalid(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, "reference::" + message);
}

std::string name(DType d) { return std::string(dtype_name(d)); }

void require_float(const char* op, const char* what, DType d) {
  if (!is_float(d)) invalid(std::string(op) + ": " + what + "=" + name(d) + " is not f32, bf16 or f16");
}

void require_fp8(const char* op, const char* what, DType d) {
  if (!is_fp8(d)) invalid(std::string(op) + ": " + what + "=" + name(d) + " is not f8e4m3 or f8e5m2");
}

void require_scale(const char* op, const char* what, DType d) {
  if (!is_scale_dtype(d)) invalid(std::string(op) + ": " + what + "=" + name(d) + " is not f32 or ue8m0");
}

void require_nonnegative(const char* op, const char* what, std::int64_t v) {
  if (v < 0) invalid(std::string(op) + ": " + what + "=" + std::to_string(v) + " is negative");
}

void require_data(const char* op, const char* what, const void* p, std::int64_t count) {
  if (count > 0 && p == nullptr) invalid(std::string(op) + ": " + what + " is null");
}

std::size_t idx(std::int64_t i) { return static_cast<std::size_t>(i); }

// The exact value of element i of an f32 / bf16 / f16 array.
float float_at(DType d, const void* data, std::size_t i) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (d == DType::f32) {
    float f;
    std::memcpy(&f, bytes + 4 * i, 4);
    return f;
  }
  std::uint16_t h;
  std::memcpy(&h, bytes + 2 * i, 2);
  return d == DType::bf16 ? bf16_to_float(h) : f16_to_float(h);
}

// All n elements of an f32 / bf16 / f16 array, exactly, as float (halves the memory of
// double; the arithmetic below is still done in double).
std::vector<float> decode_floats(DType d, const void* data, std::int64_t n) {
  std::vector<float> v(idx(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float_at(d, data, i);
  return v;
}

float fp8_at(DType d, const void* data, std::size_t i) {
  const std::uint8_t code = static_cast<const std::uint8_t*>(data)[i];
  return d == DType::f8e4m3 ? e4m3_to_float(code) : e5m2_to_float(code);
}

// Scale entry i of a scale array stored as f32 or ue8m0.
double scale_at(DType scale_dtype, const void* scales, std::size_t i) {
  const auto* bytes = static_cast<const unsigned char*>(scales);
  if (scale_dtype == DType::ue8m0) return ue8m0_to_float(bytes[i]);
  float f;
  std::memcpy(&f, bytes + 4 * i, 4);
  return f;
}

template <class Body>
void parallel_rows(std::int64_t rows, Body body) {
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows), [&](const auto& r) {
    for (std::int64_t i = r.begin(); i != r.end(); ++i) body(i);
  });
}

}  // namespace

void gemm_fp8(const GemmFp8Problem& p, ConstOperand a, ConstOperand b, double* out) {
  const char* op = "gemm_fp8";
  require_nonnegative(op, "m", p.m);
  require_nonnegative(op, "n", p.n);
  require_nonnegative(op, "k", p.k);
  if (p.k % 128 != 0) invalid("gemm_fp8: K=" + std::to_string(p.k) + " is not a multiple of 128");
  require_fp8(op, "a", p.a_dtype);
  require_fp8(op, "b", p.b_dtype);
  require_scale(op, "a scales", p.a_scale_dtype);
  require_scale(op, "b scales", p.b_scale_dtype);
  if (p.out_dtype != DType::f32 && p.out_dtype != DType::bf16)
    invalid("gemm_fp8: out=" + name(p.out_dtype) + " is not f32 or bf16");
  require_data(op, "a", a.data, p.m * p.k);
  require_data(op, "a scales", a.scales, p.m * p.k);
  require_data(op, "b", b.data, p.n * p.k);
  require_data(op, "b scales", b.scales, p.n * p.k);

  // FP8 codes decode exactly to float; their products and sums over one 128-wide block
  // are exact in double, so only the scaled sum across blocks can round (in double).
  const std::int64_t kb = p.k / 128;
  std::vector<float> av(idx(p.m * p.k)), bv(idx(p.n * p.k));
  for (std::size_t i = 0; i < av.size(); ++i) av[i] = fp8_at(p.a_dtype, a.data, i);
  for (std::size_t i = 0; i < bv.size(); ++i) bv[i] = fp8_at(p.b_dtype, b.data, i);
  parallel_rows(p.m, [&](std::int64_t m) {
    for (std::int64_t n = 0; n < p.n; ++n) {
      double total = 0;
      for (std::int64_t blk = 0; blk < kb; ++blk) {
        const float* ar = av.data() + m * p.k + blk * 128;
        const float* br = bv.data() + n * p.k + blk * 128;
        double dot = 0;
        for (int kk = 0; kk < 128; ++kk) dot += static_cast<double>(ar[kk]) * br[kk];
        const double sa = scale_at(p.a_scale_dtype, a.scales, idx(m * kb + blk));
        const double sb = scale_at(p.b_scale_dtype, b.scales, idx((n / 128) * kb + blk));
        total += sa * sb * dot;
      }
      out[m * p.n + n] = total;
    }
  });
}

void gemm(const GemmProblem& p, ConstOperand a, ConstOperand b, double* out) {
  const char* op = "gemm";
  require_nonnegative(op, "m", p.m);
  require_nonnegative(op, "n", p.n);
  require_nonnegative(op, "k", p.k);
  require_float(op, "in", p.in_dtype);
  require_float(op, "out", p.out_dtype);
  require_data(op, "a", a.data, p.m * p.k);
  require_data(op, "b", b.data, p.n * p.k);
  const std::vector<float> av = decode_floats(p.in_dtype, a.data, p.m * p.k);
  const std::vector<float> bv = decode_floats(p.in_dtype, b.data, p.n * p.k);
  parallel_rows(p.m, [&](std::int64_t m) {
    const float* ar = av.data() + m * p.k;
    for (std::int64_t n = 0; n < p.n; ++n) {
      const float* br = bv.data() + n * p.k;
      double dot = 0;
      for (std::int64_t k = 0; k < p.k; ++k) dot += static_cast<double>(ar[k]) * br[k];
      out[m * p.n + n] = dot;
    }
  });
}

void attention(const AttentionProblem& p, ConstOperand q, ConstOperand k, ConstOperand v,
               double* out) {
  const char* op = "attention";
  require_nonnegative(op, "batch", p.batch);
  require_nonnegative(op, "seq_q", p.seq_q);
  require_nonnegative(op, "seq_kv", p.seq_kv);
  require_nonnegative(op, "head_dim", p.head_dim);
  require_nonnegative(op, "head_dim_v", p.head_dim_v);
  if (p.heads_kv <= 0 || p.heads_q <= 0 || p.heads_q % p.heads_kv != 0)
    invalid("attention: heads_q=" + std::to_string(p.heads_q) + " is not a positive multiple of heads_kv=" +
            std::to_string(p.heads_kv));
  require_float(op, "dtype", p.dtype);
  const std::int64_t B = p.batch, Sq = p.seq_q, Skv = p.seq_kv, Hq = p.heads_q, Hkv = p.heads_kv;
  const std::int64_t Dk = p.head_dim, Dv = p.head_dim_v, group = Hq / Hkv;
  require_data(op, "q", q.data, B * Sq * Hq * Dk);
  require_data(op, "k", k.data, B * Skv * Hkv * Dk);
  require_data(op, "v", v.data, B * Skv * Hkv * Dv);

  const std::vector<float> qv = decode_floats(p.dtype, q.data, B * Sq * Hq * Dk);
  const std::vector<float> kv = decode_floats(p.dtype, k.data, B * Skv * Hkv * Dk);
  const std::vector<float> vv = decode_floats(p.dtype, v.data, B * Skv * Hkv * Dv);

  // One output row per (batch, query, query head), in the output's own order.
  parallel_rows(B * Sq * Hq, [&](std::int64_t row) {
    const std::int64_t h = row % Hq, i = (row / Hq) % Sq, bi = row / (Hq * Sq);
    const std::int64_t hk = h / group;
    // Keys 0..last are visible (bottom-right causal alignment).
    const std::int64_t last = p.causal ? std::min(Skv - 1, i + Skv - Sq) : Skv - 1;
    double* o = out + row * Dv;
    std::fill(o, o + Dv, 0.0);
    if (last < 0) return;  // sees no key: 0 by definition

    const float* qr = qv.data() + row * Dk;
    std::vector<double> score(idx(last + 1));
    double max_score = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j <= last; ++j) {
      const float* kr = kv.data() + ((bi * Skv + j) * Hkv + hk) * Dk;
      double dot = 0;
      for (std::int64_t d = 0; d < Dk; ++d) dot += static_cast<double>(qr[d]) * kr[d];
      score[idx(j)] = p.scale * dot;
      max_score = std::max(max_score, score[idx(j)]);
    }
    double sum = 0;
    for (std::int64_t j = 0; j <= last; ++j) {
      const double w = std::exp(score[idx(j)] - max_score);
      sum += w;
      const float* vr = vv.data() + ((bi * Skv + j) * Hkv + hk) * Dv;
      for (std::int64_t d = 0; d < Dv; ++d) o[d] += w * vr[d];
    }
    for (std::int64_t d = 0; d < Dv; ++d) o[d] /= sum;
  });
}

void rmsnorm(const RmsNormProblem& p, ConstOperand x, ConstOperand w, double* out) {
  const char* op = "rmsnorm";
  require_nonnegative(op, "rows", p.rows);
  require_nonnegative(op, "dim", p.dim);
  require_float(op, "dtype", p.dtype);
  require_float(op, "weight_dtype", p.weight_dtype);
  require_data(op, "x", x.data, p.rows * p.dim);
  require_data(op, "w", w.data, p.dim);
  const std::vector<float> wv = decode_floats(p.weight_dtype, w.data, p.dim);
  parallel_rows(p.rows, [&](std::int64_t r) {
    std::vector<double> xr(idx(p.dim));
    double sum_sq = 0;
    for (std::int64_t c = 0; c < p.dim; ++c) {
      xr[idx(c)] = float_at(p.dtype, x.data, idx(r * p.dim + c));
      sum_sq += xr[idx(c)] * xr[idx(c)];
    }
    const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(p.dim) + p.eps);
    for (std::int64_t c = 0; c < p.dim; ++c) out[r * p.dim + c] = xr[idx(c)] * inv_rms * wv[idx(c)];
  });
}

void silu_mul(const SiluMulProblem& p, ConstOperand x, double* out) {
  const char* op = "silu_mul";
  require_nonnegative(op, "rows", p.rows);
  require_nonnegative(op, "dim", p.dim);
  require_float(op, "dtype", p.dtype);
  require_data(op, "x", x.data, p.rows * p.dim);
  parallel_rows(p.rows, [&](std::int64_t r) {
    for (std::int64_t c = 0; c < p.dim; ++c) {
      const double g = float_at(p.dtype, x.data, idx(r * 2 * p.dim + c));
      const double u = float_at(p.dtype, x.data, idx(r * 2 * p.dim + p.dim + c));
      out[r * p.dim + c] = g / (1.0 + std::exp(-g)) * u;
    }
  });
}

void add(const AddProblem& p, ConstOperand a, ConstOperand b, double* out) {
  require_nonnegative("add", "numel", p.numel);
  require_float("add", "dtype", p.dtype);
  require_data("add", "a", a.data, p.numel);
  require_data("add", "b", b.data, p.numel);
  for (std::int64_t i = 0; i < p.numel; ++i)
    out[i] = static_cast<double>(float_at(p.dtype, a.data, idx(i))) + float_at(p.dtype, b.data, idx(i));
}

void quantize_fp8(const QuantizeProblem& p, ConstOperand x, double* out) {
  const char* op = "quantize_fp8";
  require_nonnegative(op, "rows", p.rows);
  require_nonnegative(op, "cols", p.cols);
  require_float(op, "in", p.in_dtype);
  require_fp8(op, "out", p.out_dtype);
  require_scale(op, "scale", p.scale_dtype);
  require_data(op, "x", x.data, p.rows * p.cols);
  // The one definition of the quantized codes and scales is quantize_blocks (exact
  // arithmetic); the reference is their dequantized value, fp8 * scale as float, the
  // value dequantize_blocks and HostTensor::values() read back (exact for ue8m0 scales).
  const std::vector<float> xv = decode_floats(p.in_dtype, x.data, p.rows * p.cols);
  std::vector<std::uint8_t> codes(xv.size());
  std::vector<std::byte> scales(idx(scale_rows(p.rows, p.block) * scale_cols(p.cols, p.block)) *
                                dtype_size(p.scale_dtype));
  quantize_blocks(xv, p.rows, p.cols, p.block, p.out_dtype, p.scale_dtype, codes, scales);
  const std::int64_t n_bcols = scale_cols(p.cols, p.block);
  for (std::int64_t r = 0; r < p.rows; ++r)
    for (std::int64_t c = 0; c < p.cols; ++c) {
      const auto s = static_cast<float>(
          scale_at(p.scale_dtype, scales.data(), idx((r / p.block.rows) * n_bcols + c / p.block.cols)));
      out[r * p.cols + c] = fp8_at(p.out_dtype, codes.data(), idx(r * p.cols + c)) * s;
    }
}

void dequantize(const DequantizeProblem& p, ConstOperand x, double* out) {
  const char* op = "dequantize";
  require_nonnegative(op, "rows", p.rows);
  require_nonnegative(op, "cols", p.cols);
  require_fp8(op, "in", p.in_dtype);
  require_scale(op, "scale", p.scale_dtype);
  require_float(op, "out", p.out_dtype);
  if (p.block.rows <= 0 || p.block.cols <= 0)
    invalid("dequantize: block=" + std::to_string(p.block.rows) + "x" + std::to_string(p.block.cols) +
            " has a non-positive dimension");
  require_data(op, "x", x.data, p.rows * p.cols);
  require_data(op, "x scales", x.scales, p.rows * p.cols);
  const std::int64_t n_bcols = scale_cols(p.cols, p.block);
  for (std::int64_t r = 0; r < p.rows; ++r)
    for (std::int64_t c = 0; c < p.cols; ++c)
      out[r * p.cols + c] =
          static_cast<double>(fp8_at(p.in_dtype, x.data, idx(r * p.cols + c))) *
          scale_at(p.scale_dtype, x.scales, idx((r / p.block.rows) * n_bcols + c / p.block.cols));
}

// ---- transformer-layer plumbing: rope, slice, concat ------------------------------------

namespace {

std::int32_t i32_at(const void* data, std::size_t i) {
  std::int32_t v;
  std::memcpy(&v, static_cast<const unsigned char*>(data) + 4 * i, 4);
  return v;
}

// Element i of any unscaled array, exactly (i32 and FP8 included).
double value_at(DType d, const void* data, std::size_t i) {
  double v = 0;
  decode_values(d, static_cast<const unsigned char*>(data) + dtype_size(d) * i, 1, &v);
  return v;
}

std::string range_text(std::int64_t lo, std::int64_t hi) {
  return std::to_string(lo) + ".." + std::to_string(hi);
}

}  // namespace

void rope(const RopeProblem& p, ConstOperand x, ConstOperand pos, double* out) {
  const char* op = "rope";
  require_nonnegative(op, "tokens", p.tokens);
  require_nonnegative(op, "heads", p.heads);
  require_nonnegative(op, "dim", p.dim);
  require_float(op, "dtype", p.dtype);
  if (p.rot <= 0 || p.rot % 2 != 0 || p.rot > p.dim)
    invalid("rope: rot=" + std::to_string(p.rot) + " must be even, > 0 and <= dim=" + std::to_string(p.dim));
  require_data(op, "x", x.data, p.tokens * p.heads * p.dim);
  require_data(op, "pos", pos.data, p.tokens);
  const std::int64_t c0 = p.dim - p.rot;
  for (std::int64_t t = 0; t < p.tokens; ++t) {
    const std::int32_t at = i32_at(pos.data, idx(t));
    if (at < 0)
      invalid("rope: operand pos: token " + std::to_string(t) + " has position " + std::to_string(at) +
              "; positions are >= 0");
  }
  parallel_rows(p.tokens, [&](std::int64_t t) {
    const double position = i32_at(pos.data, idx(t));
    for (std::int64_t h = 0; h < p.heads; ++h) {
      const std::int64_t row = (t * p.heads + h) * p.dim;
      for (std::int64_t c = 0; c < c0; ++c) out[row + c] = float_at(p.dtype, x.data, idx(row + c));
      for (std::int64_t i = 0; i < p.rot / 2; ++i) {
        const double angle = position * rope_inv_freq(i, p.rot, p.theta, p.scaling);
        const double x0 = float_at(p.dtype, x.data, idx(row + c0 + 2 * i));
        const double x1 = float_at(p.dtype, x.data, idx(row + c0 + 2 * i + 1));
        out[row + c0 + 2 * i] = x0 * std::cos(angle) - x1 * std::sin(angle);
        out[row + c0 + 2 * i + 1] = x0 * std::sin(angle) + x1 * std::cos(angle);
      }
    }
  });
}

void slice(const SliceProblem& p, ConstOperand x, double* out) {
  const char* op = "slice";
  require_nonnegative(op, "outer", p.outer);
  require_nonnegative(op, "inner", p.inner);
  if (p.begin < 0 || p.size < 0 || p.begin + p.size > p.in_axis)
    invalid("slice: begin=" + std::to_string(p.begin) + " size=" + std::to_string(p.size) +
            " do not lie inside the axis of " + std::to_string(p.in_axis));
  if (p.dtype == DType::ue8m0) invalid("slice: dtype ue8m0 is a scale format, not a tensor element type");
  require_data(op, "x", x.data, p.outer * p.in_axis * p.inner);
  for (std::int64_t o = 0; o < p.outer; ++o)
    for (std::int64_t a = 0; a < p.size; ++a)
      for (std::int64_t i = 0; i < p.inner; ++i)
        out[(o * p.size + a) * p.inner + i] = value_at(p.dtype, x.data, idx((o * p.in_axis + p.begin + a) * p.inner + i));
}

void concat(const ConcatProblem& p, ConstOperand a, ConstOperand b, double* out) {
  const std::size_t rank = p.out_shape.size();
  if (p.a_shape.size() != rank || p.b_shape.size() != rank || p.axis < 0 || idx(p.axis) >= rank)
    invalid("concat: shapes " + shape_str(p.a_shape) + " and " + shape_str(p.b_shape) + " along axis " +
            std::to_string(p.axis) + " do not make " + shape_str(p.out_shape));
  for (std::size_t d = 0; d < rank; ++d) {
    const bool along = d == idx(p.axis);
    const std::int64_t o = p.out_shape[d];
    if (along ? p.a_shape[d] + p.b_shape[d] != o
              : (p.a_shape[d] != o && p.a_shape[d] != 1) || (p.b_shape[d] != o && p.b_shape[d] != 1))
      invalid("concat: shapes " + shape_str(p.a_shape) + " and " + shape_str(p.b_shape) + " along axis " +
              std::to_string(p.axis) + " do not make " + shape_str(p.out_shape));
  }
  if (p.dtype == DType::ue8m0) invalid("concat: dtype ue8m0 is a scale format, not a tensor element type");
  std::int64_t numel = 1;
  for (std::int64_t d : p.out_shape) numel *= d;
  std::vector<std::int64_t> at(rank);  // the output index, odometer-style
  for (std::int64_t e = 0; e < numel; ++e) {
    // The element comes from a, or from b shifted back along the axis; a size-1 dimension
    // of the source broadcasts (index 0).
    const bool from_a = at[idx(p.axis)] < p.a_shape[idx(p.axis)];
    const Shape& src = from_a ? p.a_shape : p.b_shape;
    std::int64_t offset = 0;
    for (std::size_t d = 0; d < rank; ++d) {
      std::int64_t i = at[d];
      if (d == idx(p.axis) && !from_a) i -= p.a_shape[d];
      if (src[d] == 1) i = 0;
      offset = offset * src[d] + i;
    }
    out[e] = value_at(p.dtype, from_a ? a.data : b.data, idx(offset));
    for (std::size_t d = rank; d-- > 0;) {
      if (++at[d] < p.out_shape[d]) break;
      at[d] = 0;
    }
  }
}

// ---- mixture of experts ----------------------------------------------------------------

namespace {

// key[e] = sigmoid(logit) + bias of one token, in double.
std::vector<double> moe_keys(const MoeTopkProblem& p, ConstOperand logits, ConstOperand bias, std::int64_t token) {
  std::vector<double> key(idx(p.experts));
  for (std::int64_t e = 0; e < p.experts; ++e) {
    const double l = float_at(DType::f32, logits.data, idx(token * p.experts + e));
    key[idx(e)] = 1.0 / (1.0 + std::exp(-l)) + float_at(DType::f32, bias.data, idx(e));
  }
  return key;
}

std::vector<double> moe_group_scores(const MoeTopkProblem& p, const std::vector<double>& key) {
  const std::int64_t size = p.experts / p.groups;
  std::vector<double> score(idx(p.groups));
  for (std::int64_t g = 0; g < p.groups; ++g) {
    std::vector<double> members(key.begin() + g * size, key.begin() + (g + 1) * size);
    std::sort(members.begin(), members.end(), std::greater<>());
    score[idx(g)] = members[0] + (size > 1 ? members[1] : 0.0);
  }
  return score;
}

void check_topk_problem(const MoeTopkProblem& p) {
  const char* op = "moe_topk";
  require_nonnegative(op, "tokens", p.tokens);
  if (p.experts <= 0 || p.groups <= 0 || p.experts % p.groups != 0 || p.top_groups <= 0 ||
      p.top_groups > p.groups || p.k <= 0 || p.k > p.top_groups * (p.experts / p.groups))
    invalid("moe_topk: experts=" + std::to_string(p.experts) + " groups=" + std::to_string(p.groups) +
            " top_groups=" + std::to_string(p.top_groups) + " k=" + std::to_string(p.k) +
            ": groups must divide experts, top_groups <= groups, 1 <= k <= the experts of top_groups groups");
}

// Indices 0..n-1 ordered by value, largest first; ties: lower index first.
std::vector<std::int64_t> ranked(const std::vector<double>& v) {
  std::vector<std::int64_t> order(v.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return v[idx(a)] > v[idx(b)]; });
  return order;
}

}  // namespace

void moe_topk(const MoeTopkProblem& p, ConstOperand logits, ConstOperand bias, double* out) {
  check_topk_problem(p);
  require_data("moe_topk", "logits", logits.data, p.tokens * p.experts);
  require_data("moe_topk", "bias", bias.data, p.experts);
  const std::int64_t size = p.experts / p.groups;
  parallel_rows(p.tokens, [&](std::int64_t t) {
    std::vector<double> key = moe_keys(p, logits, bias, t);
    const std::vector<std::int64_t> best_groups = ranked(moe_group_scores(p, key));
    // Experts of the groups left out can never be chosen (DeepSeek masks them to -inf).
    for (std::int64_t r = p.top_groups; r < p.groups; ++r) {
      const std::int64_t g = best_groups[idx(r)];
      std::fill(key.begin() + g * size, key.begin() + (g + 1) * size, -std::numeric_limits<double>::infinity());
    }
    const std::vector<std::int64_t> best = ranked(key);
    for (std::int64_t j = 0; j < p.k; ++j) out[t * p.k + j] = static_cast<double>(best[idx(j)]);
  });
}

namespace {

// Entry i of an i32 operand that must lie in [lo, hi); names the op, operand and entry.
std::int32_t checked_index(const char* op, const char* operand, const void* data, std::size_t i,
                           const std::string& entry, std::int64_t lo, std::int64_t hi, const char* what) {
  const std::int32_t v = i32_at(data, i);
  if (v < lo || v >= hi)
    invalid(std::string(op) + ": operand " + operand + ": " + entry + " is " + std::to_string(v) + "; " + what +
            " lies in " + range_text(lo, hi - 1));
  return v;
}

std::string choice_text(std::int64_t k, std::int64_t s) {
  return "token " + std::to_string(s / k) + " choice " + std::to_string(s % k);
}

}  // namespace

void moe_weights(const MoeWeightsProblem& p, ConstOperand logits, ConstOperand experts, double* out) {
  const char* op = "moe_weights";
  require_nonnegative(op, "tokens", p.tokens);
  require_nonnegative(op, "k", p.k);
  require_data(op, "logits", logits.data, p.tokens * p.experts);
  require_data(op, "experts", experts.data, p.tokens * p.k);
  if (!(std::isfinite(p.scale) && p.scale > 0)) invalid("moe_weights: scale must be finite and > 0");
  for (std::int64_t t = 0; t < p.tokens; ++t) {
    double sum = 0;
    for (std::int64_t j = 0; j < p.k; ++j) {
      const std::int64_t e = checked_index(op, "experts", experts.data, idx(t * p.k + j), choice_text(p.k, t * p.k + j),
                                           0, p.experts, "an expert");
      const double l = float_at(DType::f32, logits.data, idx(t * p.experts + e));
      out[t * p.k + j] = 1.0 / (1.0 + std::exp(-l));
      sum += out[t * p.k + j];
    }
    for (std::int64_t j = 0; j < p.k; ++j) out[t * p.k + j] *= p.scale / sum;
  }
}

void moe_plan(const MoePlanProblem& p, ConstOperand experts, double* out) {
  const char* op = "moe_plan";
  require_nonnegative(op, "tokens", p.tokens);
  require_nonnegative(op, "k", p.k);
  if (p.experts <= 0 || p.align <= 0) invalid("moe_plan: experts and align must be > 0");
  if (p.rows != ir::moe_plan_rows(p.tokens, p.k, p.experts, p.align))
    invalid("moe_plan: rows=" + std::to_string(p.rows) + " is not moe_plan_rows(...) = " +
            std::to_string(ir::moe_plan_rows(p.tokens, p.k, p.experts, p.align)));
  require_data(op, "experts", experts.data, p.tokens * p.k);
  const std::int64_t choices = p.tokens * p.k;
  std::vector<std::int64_t> expert(idx(choices));
  for (std::int64_t s = 0; s < choices; ++s)
    expert[idx(s)] = checked_index(op, "experts", experts.data, idx(s), choice_text(p.k, s), 0, p.experts, "an expert");
  std::fill(out, out + 3 * p.rows, -1.0);
  // Experts in ascending order, each block at a multiple of align; within a block the
  // choices in (token, choice) order.
  std::int64_t row = 0;
  for (std::int64_t e = 0; e < p.experts; ++e) {
    std::int64_t used = 0;
    for (std::int64_t s = 0; s < choices; ++s) {
      if (expert[idx(s)] != e) continue;
      out[row + used] = static_cast<double>(e);
      out[p.rows + row + used] = static_cast<double>(s / p.k);
      out[2 * p.rows + s] = static_cast<double>(row + used);
      ++used;
    }
    row += (used + p.align - 1) / p.align * p.align;
  }
}

namespace {

void check_plan_shape(const char* op, std::int64_t rows, const void* plan) {
  require_nonnegative(op, "rows", rows);
  require_data(op, "plan", plan, 3 * rows);
}

}  // namespace

void moe_gather(const MoeGatherProblem& p, ConstOperand x, ConstOperand plan, double* out) {
  const char* op = "moe_gather";
  require_nonnegative(op, "tokens", p.tokens);
  require_nonnegative(op, "dim", p.dim);
  if (p.dtype == DType::ue8m0) invalid("moe_gather: dtype ue8m0 is a scale format, not a tensor element type");
  check_plan_shape(op, p.rows, plan.data);
  require_data(op, "x", x.data, p.tokens * p.dim);
  for (std::int64_t r = 0; r < p.rows; ++r) {
    const std::int64_t t = checked_index(op, "plan", plan.data, idx(p.rows + r), "plan[1, " + std::to_string(r) + "]",
                                         -1, p.tokens, "-1 (padding) or a token");
    for (std::int64_t d = 0; d < p.dim; ++d)
      out[r * p.dim + d] = t < 0 ? 0.0 : value_at(p.dtype, x.data, idx(t * p.dim + d));
  }
}

namespace {

// The contiguous-layout contract of GemmFp8GroupedProblem, as corrected: inside an
// align-row tile a row keeps the group of the row above, or is padding (-1), so a tile
// holds one group followed by padding. (Literally "the group of row r - 1" would forbid
// the padding rows moe_plan writes at the end of each expert's block.)
void check_groups(const char* where, const GemmFp8GroupedProblem& p, const void* group) {
  std::int32_t above = -1;
  for (std::int64_t r = 0; r < p.m; ++r) {
    const std::int32_t g = i32_at(group, idx(r));
    if (g < -1 || g >= p.groups)
      throw Error(ErrorCode::InvalidArgument,
                  std::string(where) + "gemm_fp8_grouped: operand group: row " + std::to_string(r) + " has group " +
                      std::to_string(g) + ", not -1 (padding) or a group (0.." + std::to_string(p.groups - 1) + ")");
    if (r % p.align != 0 && g != above && g != -1)
      throw Error(ErrorCode::InvalidArgument,
                  std::string(where) + "gemm_fp8_grouped: operand group: row " + std::to_string(r) + " has group " +
                      std::to_string(g) + " but row " + std::to_string(r - 1) + " has " + std::to_string(above) +
                      "; inside an align=" + std::to_string(p.align) +
                      "-row tile a row keeps the group of the row above or is padding (-1)");
    above = g;
  }
}

}  // namespace

void gemm_fp8_grouped(const GemmFp8GroupedProblem& p, ConstOperand a, ConstOperand b, ConstOperand group,
                      double* out) {
  const char* op = "gemm_fp8_grouped";
  require_nonnegative(op, "m", p.m);
  require_nonnegative(op, "n", p.n);
  require_nonnegative(op, "k", p.k);
  if (p.k % 128 != 0) invalid("gemm_fp8_grouped: K=" + std::to_string(p.k) + " is not a multiple of 128");
  if (p.n % 128 != 0) invalid("gemm_fp8_grouped: N=" + std::to_string(p.n) + " is not a multiple of 128");
  if (p.groups <= 0 || p.align <= 0) invalid("gemm_fp8_grouped: groups and align must be > 0");
  require_fp8(op, "a", p.a_dtype);
  require_fp8(op, "b", p.b_dtype);
  require_scale(op, "a scales", p.a_scale_dtype);
  require_scale(op, "b scales", p.b_scale_dtype);
  if (p.out_dtype != DType::f32 && p.out_dtype != DType::bf16)
    invalid("gemm_fp8_grouped: out=" + name(p.out_dtype) + " is not f32 or bf16");
  require_data(op, "a", a.data, p.m * p.k);
  require_data(op, "a scales", a.scales, p.m * p.k);
  require_data(op, "b", b.data, p.groups * p.n * p.k);
  require_data(op, "b scales", b.scales, p.groups * p.n * p.k);
  require_data(op, "group", group.data, p.m);
  check_groups("reference::", p, group.data);

  const std::int64_t kb = p.k / 128;
  parallel_rows(p.m, [&](std::int64_t m) {
    const std::int32_t g = i32_at(group.data, idx(m));
    for (std::int64_t n = 0; n < p.n; ++n) {
      if (g < 0) {
        out[m * p.n + n] = 0;
        continue;
      }
      const std::int64_t bn = g * p.n + n;  // the row of B, in the stacked weights
      double total = 0;
      for (std::int64_t blk = 0; blk < kb; ++blk) {
        double dot = 0;
        for (int kk = 0; kk < 128; ++kk)
          dot += static_cast<double>(fp8_at(p.a_dtype, a.data, idx(m * p.k + blk * 128 + kk))) *
                 fp8_at(p.b_dtype, b.data, idx(bn * p.k + blk * 128 + kk));
        const double sa = scale_at(p.a_scale_dtype, a.scales, idx(m * kb + blk));
        const double sb = scale_at(p.b_scale_dtype, b.scales, idx((bn / 128) * kb + blk));
        total += sa * sb * dot;
      }
      out[m * p.n + n] = total;
    }
  });
}

void moe_combine(const MoeCombineProblem& p, ConstOperand y, ConstOperand plan, ConstOperand weights, double* out) {
  const char* op = "moe_combine";
  require_nonnegative(op, "tokens", p.tokens);
  require_nonnegative(op, "k", p.k);
  require_nonnegative(op, "dim", p.dim);
  require_float(op, "dtype", p.dtype);
  check_plan_shape(op, p.rows, plan.data);
  if (p.tokens * p.k > p.rows)
    invalid("moe_combine: " + std::to_string(p.tokens * p.k) + " choices, more than the plan's " +
            std::to_string(p.rows) + " rows");
  require_data(op, "y", y.data, p.rows * p.dim);
  require_data(op, "weights", weights.data, p.tokens * p.k);
  std::vector<std::int64_t> row(idx(p.tokens * p.k));
  for (std::int64_t s = 0; s < p.tokens * p.k; ++s)
    row[idx(s)] = checked_index(op, "plan", plan.data, idx(2 * p.rows + s),
                                "plan[2, " + std::to_string(s) + "] (" + choice_text(p.k, s) + ")", 0, p.rows, "a row");
  parallel_rows(p.tokens, [&](std::int64_t t) {
    for (std::int64_t d = 0; d < p.dim; ++d) {
      double sum = 0;
      for (std::int64_t j = 0; j < p.k; ++j)
        sum += static_cast<double>(float_at(DType::f32, weights.data, idx(t * p.k + j))) *
               float_at(p.dtype, y.data, idx(row[idx(t * p.k + j)] * p.dim + d));
      out[t * p.dim + d] = sum;
    }
  });
}

namespace {

void require_inputs(std::string_view op, std::span<const ConstOperand> inputs, std::size_t n) {
  if (inputs.size() != n)
    invalid("run: " + std::string(op) + " takes " + std::to_string(n) + " inputs, got " +
            std::to_string(inputs.size()));
}

}  // namespace

void run(const Problem& problem, std::span<const ConstOperand> in, double* out) {
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, GemmFp8Problem>) {
          require_inputs("gemm_fp8", in, 2);
          gemm_fp8(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, GemmProblem>) {
          require_inputs("gemm", in, 2);
          gemm(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          require_inputs("attention", in, 3);
          attention(p, in[0], in[1], in[2], out);
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          require_inputs("rmsnorm", in, 2);
          rmsnorm(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, SiluMulProblem>) {
          require_inputs("silu_mul", in, 1);
          silu_mul(p, in[0], out);
        } else if constexpr (std::is_same_v<P, AddProblem>) {
          require_inputs("add", in, 2);
          add(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          require_inputs("quantize_fp8", in, 1);
          quantize_fp8(p, in[0], out);
        } else if constexpr (std::is_same_v<P, DequantizeProblem>) {
          require_inputs("dequantize", in, 1);
          dequantize(p, in[0], out);
        } else if constexpr (std::is_same_v<P, RopeProblem>) {
          require_inputs("rope", in, 2);
          rope(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, SliceProblem>) {
          require_inputs("slice", in, 1);
          slice(p, in[0], out);
        } else if constexpr (std::is_same_v<P, ConcatProblem>) {
          require_inputs("concat", in, 2);
          concat(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, MoeTopkProblem>) {
          require_inputs("moe_topk", in, 2);
          moe_topk(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, MoeWeightsProblem>) {
          require_inputs("moe_weights", in, 2);
          moe_weights(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, MoePlanProblem>) {
          require_inputs("moe_plan", in, 1);
          moe_plan(p, in[0], out);
        } else if constexpr (std::is_same_v<P, MoeGatherProblem>) {
          require_inputs("moe_gather", in, 2);
          moe_gather(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, GemmFp8GroupedProblem>) {
          require_inputs("gemm_fp8_grouped", in, 3);
          gemm_fp8_grouped(p, in[0], in[1], in[2], out);
        } else {
          static_assert(std::is_same_v<P, MoeCombineProblem>);
          require_inputs("moe_combine", in, 3);
          moe_combine(p, in[0], in[1], in[2], out);
        }
      },
      problem);
}

namespace {

// See mismatch() in reference.hpp. Every decision of the selection is checked against the
// float64 keys: which groups the chosen experts come from, that no expert left out of a
// group that any valid selection keeps beats a chosen one, and the best-first order.
// Each violation is measured in key units (a group score, a sum of two keys, is halved)
// relative to the token's key scale max(1, max |key|).
double topk_mismatch(const MoeTopkProblem& p, ConstOperand logits, ConstOperand bias, std::span<const double> got) {
  check_topk_problem(p);
  require_data("moe_topk", "logits", logits.data, p.tokens * p.experts);
  require_data("moe_topk", "bias", bias.data, p.experts);
  constexpr double kInvalid = std::numeric_limits<double>::infinity();
  if (got.size() != idx(p.tokens * p.k)) return kInvalid;
  const std::int64_t size = p.experts / p.groups;
  const double per_group = size > 1 ? 2.0 : 1.0;  // keys summed in a group score
  const double tol = tolerance(Problem{p});
  double worst = 0;
  for (std::int64_t t = 0; t < p.tokens; ++t) {
    const std::vector<double> key = moe_keys(p, logits, bias, t);
    double scale = 1;
    for (double k : key) scale = std::max(scale, std::abs(k));
    std::vector<std::int64_t> chosen;
    std::vector<bool> taken(idx(p.experts), false);
    for (std::int64_t j = 0; j < p.k; ++j) {
      const double v = got[idx(t * p.k + j)];
      if (!(v >= 0 && v < static_cast<double>(p.experts) && v == std::floor(v))) return kInvalid;
      const auto e = static_cast<std::int64_t>(v);
      if (taken[idx(e)]) return kInvalid;  // an expert chosen twice
      taken[idx(e)] = true;
      chosen.push_back(e);
    }
    const std::vector<double> score = moe_group_scores(p, key);
    std::vector<double> sorted = score;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    const double top_score = sorted[idx(p.top_groups - 1)];
    const double left_out = p.top_groups < p.groups ? sorted[idx(p.top_groups)] : -kInvalid;
    // Groups clearly above the best group left out are in every valid selection.
    std::vector<bool> kept(idx(p.groups));
    for (std::int64_t g = 0; g < p.groups; ++g) kept[idx(g)] = score[idx(g)] > left_out + per_group * tol * scale;
    double deficit = 0;
    double weakest = std::numeric_limits<double>::infinity();
    for (std::int64_t e : chosen) {
      const std::int64_t g = e / size;
      deficit = std::max(deficit, (top_score - score[idx(g)]) / per_group);
      kept[idx(g)] = true;
      weakest = std::min(weakest, key[idx(e)]);
    }
    if (std::count(kept.begin(), kept.end(), true) > p.top_groups) return kInvalid;
    for (std::int64_t e = 0; e < p.experts; ++e)
      if (kept[idx(e / size)] && !taken[idx(e)]) deficit = std::max(deficit, key[idx(e)] - weakest);
    for (std::size_t j = 1; j < chosen.size(); ++j)
      deficit = std::max(deficit, key[idx(chosen[j])] - key[idx(chosen[j - 1])]);
    worst = std::max(worst, deficit / scale);
  }
  return worst;
}

}  // namespace

double mismatch(const Problem& problem, std::span<const ConstOperand> inputs, std::span<const double> ref,
                std::span<const double> got) {
  if (const auto* p = std::get_if<MoeTopkProblem>(&problem)) {
    require_inputs("moe_topk", inputs, 2);
    return topk_mismatch(*p, inputs[0], inputs[1], got);
  }
  return rel_err(got, ref);
}

}  // namespace anychip::kernels::reference
