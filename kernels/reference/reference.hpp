// The float64 reference: the oracle every backend is checked against.
//
// Each function decodes its inputs exactly (FP8 times its block scale, bf16, f16),
// accumulates in double and writes the exact result as double, before any rounding to
// the output dtype. It is written for clarity, not speed, and shares no code with the
// fast kernels beyond the scalar format conversions of anychip/formats.hpp.
// Operands follow the layouts of kernels/problems.hpp; `out` holds the output's numel.
#pragma once

#include <span>

#include "kernels/problems.hpp"

namespace anychip::kernels::reference {

void gemm_fp8(const GemmFp8Problem& p, ConstOperand a, ConstOperand b, double* out);
void gemm(const GemmProblem& p, ConstOperand a, ConstOperand b, double* out);
void attention(const AttentionProblem& p, ConstOperand q, ConstOperand k, ConstOperand v,
               double* out);
void rmsnorm(const RmsNormProblem& p, ConstOperand x, ConstOperand w, double* out);
void silu_mul(const SiluMulProblem& p, ConstOperand x, double* out);
void add(const AddProblem& p, ConstOperand a, ConstOperand b, double* out);
// The dequantized value of the quantized result, fp8 x scale as an fp32 product (what
// dequantize_blocks and HostTensor::values() read back; quantization is exact arithmetic, so
// a backend must match it bit for bit; the conformance check compares these values).
void quantize_fp8(const QuantizeProblem& p, ConstOperand x, double* out);
void dequantize(const DequantizeProblem& p, ConstOperand x, double* out);

// i32 inputs are checked, and a value that breaks the op's rule (a position < 0, an
// expert, token, row or group out of range, a broken contiguous layout) throws
// InvalidArgument naming the op, the operand, the entry and the rule. i32 outputs
// (moe_topk, moe_plan) are written as exact doubles.
void rope(const RopeProblem& p, ConstOperand x, ConstOperand pos, double* out);
void slice(const SliceProblem& p, ConstOperand x, double* out);
void concat(const ConcatProblem& p, ConstOperand a, ConstOperand b, double* out);
// Ties (equal float64 keys or group scores) go to the lower index.
void moe_topk(const MoeTopkProblem& p, ConstOperand logits, ConstOperand bias, double* out);
void moe_weights(const MoeWeightsProblem& p, ConstOperand logits, ConstOperand experts, double* out);
void moe_plan(const MoePlanProblem& p, ConstOperand experts, double* out);
void moe_gather(const MoeGatherProblem& p, ConstOperand x, ConstOperand plan, double* out);
// The layout contract checked: for r % align != 0, group[r] is group[r-1] or -1 (an
// align-row tile holds one group, then padding).
void gemm_fp8_grouped(const GemmFp8GroupedProblem& p, ConstOperand a, ConstOperand b, ConstOperand group,
                      double* out);
void moe_combine(const MoeCombineProblem& p, ConstOperand y, ConstOperand plan, ConstOperand weights,
                 double* out);

// Dispatches on the problem's kind; inputs in the op's operand order.
void run(const Problem& p, std::span<const ConstOperand> inputs, double* out);

// How far a backend's output `got` is from the reference, the figure compared with
// tolerance(p): rel_err(got, ref) for every op but moe_topk. A chosen expert set cannot
// be compared by value: when two keys tie to within fp32 rounding, a correct fp32 kernel
// may pick either. For moe_topk the figure is the largest violation of a valid group-
// limited top-k, best first, under the float64 keys (computed from `inputs`), in key
// units relative to max(1, max |key|) of the token: 0 for an exact selection, tiny for a
// near-tie swap, order 1 for a wrong expert; infinity for an index out of range, an
// expert chosen twice, or experts from more than top_groups groups.
double mismatch(const Problem& p, std::span<const ConstOperand> inputs, std::span<const double> ref,
                std::span<const double> got);

}  // namespace anychip::kernels::reference
