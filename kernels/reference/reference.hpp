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

// Dispatches on the problem's kind; inputs in the op's operand order.
void run(const Problem& p, std::span<const ConstOperand> inputs, double* out);

}  // namespace anychip::kernels::reference
