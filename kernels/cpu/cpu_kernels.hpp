// The CPU kernels: every op, parallel with oneTBB, with the instruction set picked at run
// time (AVX-512 BF16 where the CPU has it, AVX2+FMA, then portable C++).
// Operands follow the layouts of kernels/problems.hpp; outputs are written in the
// problem's output dtype (and scales, for quantize_fp8).
#pragma once

#include <span>
#include <string_view>

#include "kernels/problems.hpp"

namespace anychip::kernels::cpu {

void gemm_fp8(const GemmFp8Problem& p, ConstOperand a, ConstOperand b, Operand d);
void gemm(const GemmProblem& p, ConstOperand a, ConstOperand b, Operand d);
void attention(const AttentionProblem& p, ConstOperand q, ConstOperand k, ConstOperand v,
               Operand o);
void rmsnorm(const RmsNormProblem& p, ConstOperand x, ConstOperand w, Operand y);
void silu_mul(const SiluMulProblem& p, ConstOperand x, Operand y);
void add(const AddProblem& p, ConstOperand a, ConstOperand b, Operand y);
void quantize_fp8(const QuantizeProblem& p, ConstOperand x, Operand q);
void dequantize(const DequantizeProblem& p, ConstOperand x, Operand y);
// rope forms its angles in double (layout_ops.cpp); slice and concat copy bytes.
void rope(const RopeProblem& p, ConstOperand x, ConstOperand pos, Operand y);
void slice(const SliceProblem& p, ConstOperand x, Operand y);
void concat(const ConcatProblem& p, ConstOperand a, ConstOperand b, Operand y);
// fp32 keys; ties (equal fp32 keys or group scores) go to the lower index.
void moe_topk(const MoeTopkProblem& p, ConstOperand logits, ConstOperand bias, Operand experts);
void moe_weights(const MoeWeightsProblem& p, ConstOperand logits, ConstOperand experts, Operand weights);
void moe_plan(const MoePlanProblem& p, ConstOperand experts, Operand plan);
void moe_gather(const MoeGatherProblem& p, ConstOperand x, ConstOperand plan, Operand y);
void gemm_fp8_grouped(const GemmFp8GroupedProblem& p, ConstOperand a, ConstOperand b, ConstOperand group, Operand d);
void moe_combine(const MoeCombineProblem& p, ConstOperand y, ConstOperand plan, ConstOperand weights, Operand out);

// Dispatches on the problem's kind; inputs in the op's operand order.
void run(const Problem& p, std::span<const ConstOperand> inputs, Operand out);

// The instruction set the kernels use on this CPU: "avx512bf16" (AVX-512 F/BW/VL/DQ and
// BF16), "avx2" (AVX2, FMA, F16C, BMI1/2), or "generic". ANYCHIP_CPU_ISA=avx2|generic
// forces a lower one (for tests and comparisons); it is read on every call, a path above
// what the CPU has keeps the detected one, and any other value throws naming the variable.
// Note: vdpbf16ps treats subnormal bf16 inputs as zero (FP8 values are never subnormal in
// bf16, so FP8 GEMMs are exact; a bf16 GEMM with subnormal inputs is not).
std::string_view isa();

}  // namespace anychip::kernels::cpu
