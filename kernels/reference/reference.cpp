// The float64 reference (reference.hpp). Every input element is decoded exactly (f32,
// bf16 and f16 values are all exactly representable as float; an FP8 code times its
// block scale is exact in double), every sum is taken in double, and the result is
// written unrounded. Loops are the plain definitions of the ops; only the outermost
// loop over output rows runs in parallel, which never changes a result.
#include "kernels/reference/reference.hpp"
#include "kernels/kernel_spec.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
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
        } else if constexpr (!std::is_same_v<P, DequantizeProblem>) {
          throw Error(ErrorCode::Unsupported, "reference: " + std::string(op_name(problem)) + " is not implemented yet");
        } else {
          static_assert(std::is_same_v<P, DequantizeProblem>);
          require_inputs("dequantize", in, 1);
          dequantize(p, in[0], out);
        }
      },
      problem);
}

}  // namespace anychip::kernels::reference
