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

using Problem = std::variant<GemmFp8Problem, GemmProblem, AttentionProblem, RmsNormProblem,
                             SiluMulProblem, AddProblem, QuantizeProblem, DequantizeProblem>;

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
