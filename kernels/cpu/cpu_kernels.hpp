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

// Dispatches on the problem's kind; inputs in the op's operand order.
void run(const Problem& p, std::span<const ConstOperand> inputs, Operand out);

// The instruction set the kernels use on this CPU: "avx512bf16", "avx2", or "generic".
// ANYCHIP_CPU_ISA=avx2|generic forces a lower one (for tests and comparisons).
std::string_view isa();

}  // namespace anychip::kernels::cpu
