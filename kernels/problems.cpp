#include "kernels/problems.hpp"

#include <algorithm>

namespace anychip::kernels {
namespace {

double bytes_of(DType d, double n) { return static_cast<double>(dtype_size(d)) * n; }

double scale_bytes(DType scale_dtype, std::int64_t rows, std::int64_t cols, BlockShape b) {
  return bytes_of(scale_dtype, static_cast<double>(scale_rows(rows, b) * scale_cols(cols, b)));
}

struct Flops {
  double operator()(const GemmFp8Problem& p) const { return 2.0 * p.m * p.n * p.k; }
  double operator()(const GemmProblem& p) const { return 2.0 * p.m * p.n * p.k; }
  double operator()(const AttentionProblem& p) const {
    // QK^T and PV over the (causally) visible pairs.
    double pairs = static_cast<double>(p.seq_q) * p.seq_kv;
    if (p.causal) {
      pairs = 0;
      for (std::int64_t i = 0; i < p.seq_q; ++i) {
        std::int64_t visible = i + p.seq_kv - p.seq_q + 1;
        pairs += static_cast<double>(visible < 0 ? 0 : (visible > p.seq_kv ? p.seq_kv : visible));
      }
    }
    return 2.0 * p.batch * p.heads_q * pairs * static_cast<double>(p.head_dim + p.head_dim_v);
  }
  double operator()(const RmsNormProblem& p) const { return 4.0 * p.rows * p.dim; }
  double operator()(const SiluMulProblem& p) const { return 5.0 * p.rows * p.dim; }
  double operator()(const AddProblem& p) const { return static_cast<double>(p.numel); }
  double operator()(const QuantizeProblem& p) const { return 3.0 * p.rows * p.cols; }
  double operator()(const DequantizeProblem& p) const { return 1.0 * p.rows * p.cols; }
  double operator()(const RopeProblem& p) const { return 3.0 * p.tokens * p.heads * p.rot; }
  double operator()(const SliceProblem&) const { return 0; }
  double operator()(const ConcatProblem&) const { return 0; }
  double operator()(const MoeTopkProblem& p) const { return 4.0 * p.tokens * p.experts; }
  double operator()(const MoeWeightsProblem& p) const { return 6.0 * p.tokens * p.k; }
  double operator()(const MoePlanProblem&) const { return 0; }
  double operator()(const MoeGatherProblem&) const { return 0; }
  // Padding rows are counted: a kernel of this layout computes them (tiles of align rows).
  double operator()(const GemmFp8GroupedProblem& p) const { return 2.0 * p.m * p.n * p.k; }
  double operator()(const MoeCombineProblem& p) const { return 2.0 * p.tokens * p.k * p.dim; }
};

double numel_of(const Shape& s) {
  double n = 1;
  for (std::int64_t d : s) n *= static_cast<double>(d);
  return n;
}

struct MinBytes {
  double operator()(const GemmFp8Problem& p) const {
    return bytes_of(p.a_dtype, 1.0 * p.m * p.k) + bytes_of(p.b_dtype, 1.0 * p.n * p.k) +
           scale_bytes(p.a_scale_dtype, p.m, p.k, kActivationBlock) +
           scale_bytes(p.b_scale_dtype, p.n, p.k, kWeightBlock) +
           bytes_of(p.out_dtype, 1.0 * p.m * p.n);
  }
  double operator()(const GemmProblem& p) const {
    return bytes_of(p.in_dtype, 1.0 * (p.m + p.n) * p.k) + bytes_of(p.out_dtype, 1.0 * p.m * p.n);
  }
  double operator()(const AttentionProblem& p) const {
    double q = 1.0 * p.batch * p.seq_q * p.heads_q * p.head_dim;
    double kv = 1.0 * p.batch * p.seq_kv * p.heads_kv * (p.head_dim + p.head_dim_v);
    double o = 1.0 * p.batch * p.seq_q * p.heads_q * p.head_dim_v;
    return bytes_of(p.dtype, q + kv + o);
  }
  double operator()(const RmsNormProblem& p) const {
    return bytes_of(p.dtype, 2.0 * p.rows * p.dim) + bytes_of(p.weight_dtype, 1.0 * p.dim);
  }
  double operator()(const SiluMulProblem& p) const { return bytes_of(p.dtype, 3.0 * p.rows * p.dim); }
  double operator()(const AddProblem& p) const { return bytes_of(p.dtype, 3.0 * p.numel); }
  double operator()(const QuantizeProblem& p) const {
    return bytes_of(p.in_dtype, 1.0 * p.rows * p.cols) + bytes_of(p.out_dtype, 1.0 * p.rows * p.cols) +
           scale_bytes(p.scale_dtype, p.rows, p.cols, p.block);
  }
  double operator()(const DequantizeProblem& p) const {
    return bytes_of(p.in_dtype, 1.0 * p.rows * p.cols) + bytes_of(p.out_dtype, 1.0 * p.rows * p.cols) +
           scale_bytes(p.scale_dtype, p.rows, p.cols, p.block);
  }
  double operator()(const RopeProblem& p) const {
    return bytes_of(p.dtype, 2.0 * p.tokens * p.heads * p.dim) + 4.0 * p.tokens;
  }
  double operator()(const SliceProblem& p) const {
    return bytes_of(p.dtype, 2.0 * p.outer * p.size * p.inner);
  }
  double operator()(const ConcatProblem& p) const {
    return bytes_of(p.dtype, numel_of(p.out_shape) + numel_of(p.a_shape) + numel_of(p.b_shape));
  }
  double operator()(const MoeTopkProblem& p) const {
    return 4.0 * p.tokens * p.experts + 4.0 * p.experts + 4.0 * p.tokens * p.k;
  }
  double operator()(const MoeWeightsProblem& p) const { return 4.0 * 3 * p.tokens * p.k; }
  double operator()(const MoePlanProblem& p) const { return 4.0 * p.tokens * p.k + 4.0 * 3 * p.rows; }
  double operator()(const MoeGatherProblem& p) const {
    return bytes_of(p.dtype, 1.0 * (p.tokens + p.rows) * p.dim) + 4.0 * p.rows;
  }
  double operator()(const GemmFp8GroupedProblem& p) const {
    // The weights of every group the rows can reach, once: each block of align rows holds
    // one group, so at most min(groups, ceil(m / align)) of them (decode touches few).
    const std::int64_t blocks = (p.m + p.align - 1) / p.align;
    const std::int64_t touched = std::min(p.groups, blocks);
    return bytes_of(p.a_dtype, 1.0 * p.m * p.k) + bytes_of(p.b_dtype, 1.0 * touched * p.n * p.k) +
           scale_bytes(p.a_scale_dtype, p.m, p.k, kActivationBlock) +
           scale_bytes(p.b_scale_dtype, touched * p.n, p.k, kWeightBlock) + 4.0 * p.m +
           bytes_of(p.out_dtype, 1.0 * p.m * p.n);
  }
  double operator()(const MoeCombineProblem& p) const {
    return bytes_of(p.dtype, 1.0 * (p.tokens * p.k + p.tokens) * p.dim) + 8.0 * p.tokens * p.k;
  }
};

}  // namespace

double problem_flops(const Problem& p) { return std::visit(Flops{}, p); }
double problem_min_bytes(const Problem& p) { return std::visit(MinBytes{}, p); }

}  // namespace anychip::kernels
