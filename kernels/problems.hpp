// The concrete problem one kernel solves: shapes, dtypes and attributes of one op,
// with every default resolved. Lowering (kernels/lowering.cpp) derives these from IR
// nodes; the reference, the CPU kernels and every later backend take them as they are.
//
// Memory layouts (all row-major, densely packed, no strides):
//   float tensors: f32 / bf16 / f16 elements.
//   block-scaled FP8 [R, C] with block [br, bc]: R*C bytes of data, and a separate
//     scale array [ceil(R/br), ceil(C/bc)] of f32 (4 bytes) or ue8m0 (1 byte) entries.
#pragma once

#include <cstdint>
#include <variant>

#include "anychip/dtype.hpp"
#include "anychip/quantize.hpp"
#include "anychip/rope.hpp"
#include "anychip/tensor.hpp"

namespace anychip::kernels {

// D[m,n] = sum_b sA[m,b] * sB[n/128,b] * sum_{k in b} A[m,k]*B[n,k]   (DESIGN.md "FP8 GEMM")
// A: fp8 [m, k], scales 1x128; B: fp8 [n, k], scales 128x128; D: [m, n] out_dtype.
struct GemmFp8Problem {
  std::int64_t m = 0, n = 0, k = 0;  // k % 128 == 0
  DType a_dtype = DType::f8e4m3, b_dtype = DType::f8e4m3;
  DType a_scale_dtype = DType::ue8m0, b_scale_dtype = DType::ue8m0;
  DType out_dtype = DType::bf16;  // bf16 or f32
  friend bool operator==(const GemmFp8Problem&, const GemmFp8Problem&) = default;
};

// D[m,n] = sum_k A[m,k]*B[n,k]; A [m,k], B [n,k] of in_dtype (f32 or bf16); D out_dtype.
struct GemmProblem {
  std::int64_t m = 0, n = 0, k = 0;
  DType in_dtype = DType::bf16;
  DType out_dtype = DType::f32;
  friend bool operator==(const GemmProblem&, const GemmProblem&) = default;
};

// Q [batch, seq_q, heads_q, head_dim], K [batch, seq_kv, heads_kv, head_dim],
// V [batch, seq_kv, heads_kv, head_dim_v] -> O [batch, seq_q, heads_q, head_dim_v].
// Query head h reads KV head h / (heads_q / heads_kv). Causal: query i sees keys
// j <= i + seq_kv - seq_q (bottom-right aligned); a query that sees no key outputs 0.
// All of Q, K, V and O are `dtype` (f32, bf16 or f16); accumulation in fp32 or wider.
struct AttentionProblem {
  std::int64_t batch = 1, seq_q = 0, seq_kv = 0, heads_q = 1, heads_kv = 1;
  std::int64_t head_dim = 0, head_dim_v = 0;
  bool causal = false;
  double scale = 0;  // already resolved: 1/sqrt(head_dim) unless given
  DType dtype = DType::bf16;
  friend bool operator==(const AttentionProblem&, const AttentionProblem&) = default;
};

// y[r,:] = x[r,:] / sqrt(mean(x[r,:]^2) + eps) * w. x, y: [rows, dim] dtype; w: [dim] weight_dtype.
struct RmsNormProblem {
  std::int64_t rows = 0, dim = 0;
  double eps = 1e-6;
  DType dtype = DType::bf16, weight_dtype = DType::f32;
  friend bool operator==(const RmsNormProblem&, const RmsNormProblem&) = default;
};

// x [rows, 2*dim] -> y [rows, dim]: y = silu(x[:, :dim]) * x[:, dim:], silu(g) = g/(1+e^-g).
struct SiluMulProblem {
  std::int64_t rows = 0, dim = 0;
  DType dtype = DType::bf16;
  friend bool operator==(const SiluMulProblem&, const SiluMulProblem&) = default;
};

// y = a + b, elementwise over numel elements of dtype.
struct AddProblem {
  std::int64_t numel = 0;
  DType dtype = DType::bf16;
  friend bool operator==(const AddProblem&, const AddProblem&) = default;
};

// x [rows, cols] in_dtype -> fp8 [rows, cols] with scales per block (anychip/quantize.hpp).
struct QuantizeProblem {
  std::int64_t rows = 0, cols = 0;
  DType in_dtype = DType::bf16;
  DType out_dtype = DType::f8e4m3;
  BlockShape block = kActivationBlock;
  DType scale_dtype = DType::ue8m0;
  friend bool operator==(const QuantizeProblem&, const QuantizeProblem&) = default;
};

// fp8 [rows, cols] with block scales -> out_dtype [rows, cols].
struct DequantizeProblem {
  std::int64_t rows = 0, cols = 0;
  DType in_dtype = DType::f8e4m3;
  BlockShape block = kActivationBlock;
  DType scale_dtype = DType::ue8m0;
  DType out_dtype = DType::f32;
  friend bool operator==(const DequantizeProblem&, const DequantizeProblem&) = default;
};

// x [tokens, heads, dim] dtype, pos i32 [tokens] -> y like x. Within each head, the last
// `rot` columns (rot even, <= dim; the first dim - rot are copied) are pairs
// (x[c+2i], x[c+2i+1]), c = dim - rot, rotated by the angle pos[t] * theta^(-2i/rot):
//   y[c+2i] = x[c+2i] cos - x[c+2i+1] sin,  y[c+2i+1] = x[c+2i] sin + x[c+2i+1] cos.
// The angle's inverse frequency is rope_inv_freq(i, rot, theta, scaling) (anychip/rope.hpp:
// theta^(-2i/rot), or YaRN-scaled).
struct RopeProblem {
  std::int64_t tokens = 0, heads = 0, dim = 0, rot = 0;
  double theta = 10000;
  DType dtype = DType::bf16;
  RopeScaling scaling = RopeScaling{};  // none by default
  friend bool operator==(const RopeProblem&, const RopeProblem&) = default;
};

// Copies a box: the input viewed as [outer, in_axis, inner] (axis dimension in the middle,
// in elements of dtype) -> [outer, size, inner], taking axis positions begin..begin+size.
struct SliceProblem {
  std::int64_t outer = 1, in_axis = 0, inner = 1, begin = 0, size = 0;
  DType dtype = DType::f32;  // any unscaled dtype (the copy moves bytes)
  friend bool operator==(const SliceProblem&, const SliceProblem&) = default;
};

// out [dims...] = a and b joined along `axis`. Both inputs and the output are viewed with
// the output's rank; a_shape / b_shape are the inputs' shapes, where a dimension other
// than `axis` is either the output's or 1 (broadcast).
struct ConcatProblem {
  Shape out_shape;
  Shape a_shape, b_shape;
  std::int64_t axis = 0;  // resolved, 0 <= axis < rank
  DType dtype = DType::f32;
  friend bool operator==(const ConcatProblem&, const ConcatProblem&) = default;
};

// DeepSeek-V3's router selection. logits f32 [tokens, experts], bias f32 [experts] ->
// i32 [tokens, k]. key[e] = sigmoid(logits[t,e]) + bias[e]. The experts form `groups`
// equal groups; a group's score is the sum of its two largest keys (its one key when
// groups == experts); the top_groups groups of largest score are kept; of their experts
// the k of largest key are chosen, written best first (ties: lower index first).
struct MoeTopkProblem {
  std::int64_t tokens = 0, experts = 0, k = 0, groups = 1, top_groups = 1;
  friend bool operator==(const MoeTopkProblem&, const MoeTopkProblem&) = default;
};

// logits f32 [tokens, experts], chosen i32 [tokens, k] -> f32 [tokens, k]:
// w[t,j] = scale * s_j / sum_j s_j, s_j = sigmoid(logits[t, chosen[t,j]]).
struct MoeWeightsProblem {
  std::int64_t tokens = 0, experts = 0, k = 0;
  double scale = 1;
  friend bool operator==(const MoeWeightsProblem&, const MoeWeightsProblem&) = default;
};

// The padded contiguous layout of routed tokens (DeepGEMM's "contiguous" grouped layout).
// chosen i32 [tokens, k] -> plan i32 [3, rows] with rows = ir::moe_plan_rows(...):
//   plan[0, r]: the expert of row r, or -1 for a padding row;
//   plan[1, r]: the token whose activations row r carries, or -1;
//   plan[2, s]: for s = t*k + j < tokens*k, the row that carries (t, j); -1 beyond.
// Experts in ascending order, each expert's rows in token order, each expert's block
// starting at a multiple of align; the rows after the last block are padding.
struct MoePlanProblem {
  std::int64_t tokens = 0, k = 0, experts = 0, align = 128;
  std::int64_t rows = 0;  // ir::moe_plan_rows(tokens, k, experts, align)
  friend bool operator==(const MoePlanProblem&, const MoePlanProblem&) = default;
};

// x [tokens, dim] dtype, plan i32 [3, rows] -> [rows, dim]: row r = x[plan[1,r]], 0 if -1.
struct MoeGatherProblem {
  std::int64_t tokens = 0, rows = 0, dim = 0;
  DType dtype = DType::bf16;
  friend bool operator==(const MoeGatherProblem&, const MoeGatherProblem&) = default;
};

// Grouped block-scaled FP8 GEMM. A fp8 [m, k] 1x128 scales; B fp8 [groups*n, k] 128x128
// scales (group g's weight is rows g*n .. g*n+n-1; n % 128 == 0); group i32 [m]:
// D[r,:] = A[r,:] B_g^T (scaled as GemmFp8Problem) with g = group[r], or 0 when g == -1.
// Contract (DeepGEMM's contiguous layout, what moe_plan writes): a row r with
// r % align != 0 has the group of row r - 1 or -1 (padding), so an align-row tile holds
// one group and then padding, and its first row names the group.
// Kernels may rely on it; they report a group out of range or a broken contract.
struct GemmFp8GroupedProblem {
  std::int64_t m = 0, n = 0, k = 0, groups = 1, align = 128;
  DType a_dtype = DType::f8e4m3, b_dtype = DType::f8e4m3;
  DType a_scale_dtype = DType::ue8m0, b_scale_dtype = DType::ue8m0;
  DType out_dtype = DType::bf16;
  friend bool operator==(const GemmFp8GroupedProblem&, const GemmFp8GroupedProblem&) = default;
};

// y [rows, dim] dtype, plan i32 [3, rows], weights f32 [tokens, k] -> [tokens, dim] dtype:
// out[t] = sum_j weights[t,j] * y[plan[2, t*k+j]], summed in fp32 or wider.
struct MoeCombineProblem {
  std::int64_t tokens = 0, k = 0, rows = 0, dim = 0;
  DType dtype = DType::bf16;
  friend bool operator==(const MoeCombineProblem&, const MoeCombineProblem&) = default;
};

using Problem = std::variant<GemmFp8Problem, GemmProblem, AttentionProblem, RmsNormProblem,
                             SiluMulProblem, AddProblem, QuantizeProblem, DequantizeProblem,
                             RopeProblem, SliceProblem, ConcatProblem, MoeTopkProblem,
                             MoeWeightsProblem, MoePlanProblem, MoeGatherProblem,
                             GemmFp8GroupedProblem, MoeCombineProblem>;

// FLOPs and the bytes that a kernel must move at least once (for TFLOP/s, GB/s, roofline).
double problem_flops(const Problem& p);
double problem_min_bytes(const Problem& p);

// One operand of a kernel in the memory the kernel reads: its data and, for block-scaled
// FP8, its scales (nullptr otherwise).
struct ConstOperand {
  const void* data = nullptr;
  const void* scales = nullptr;
};
struct Operand {
  void* data = nullptr;
  void* scales = nullptr;
};

}  // namespace anychip::kernels
