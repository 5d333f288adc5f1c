// cpu::gemm: D = A * B^T for f32 or bf16 inputs, on all cores. bf16 inputs use the bf16
// dot-product engine where the CPU has one, f32 inputs fp32 FMA (gemm_kernels.hpp).
#include <string>

#include "anychip/error.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/gemm_kernels.hpp"

namespace anychip::kernels::cpu {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::InvalidArgument, "cpu::gemm: " + what);
}

}  // namespace

void gemm(const GemmProblem& p, ConstOperand a, ConstOperand b, Operand d) {
  require(p.m >= 0 && p.n >= 0 && p.k >= 0, "negative shape m=" + std::to_string(p.m) +
                                                " n=" + std::to_string(p.n) + " k=" + std::to_string(p.k));
  require(p.in_dtype == DType::f32 || p.in_dtype == DType::bf16,
          "input dtype " + std::string(dtype_name(p.in_dtype)) + " is not f32 or bf16");
  require(p.out_dtype == DType::f32 || p.out_dtype == DType::bf16,
          "output dtype " + std::string(dtype_name(p.out_dtype)) + " is not f32 or bf16");
  if (p.m == 0 || p.n == 0) return;
  require(d.data != nullptr, "output: null data pointer");
  if (p.k > 0) require(a.data != nullptr && b.data != nullptr, "null input data pointer");

  gemm_detail::GemmArgs g;
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  g.a_dtype = g.b_dtype = p.in_dtype;
  g.a = a.data;
  g.b = b.data;
  g.d = d.data;
  g.out_dtype = p.out_dtype;
  gemm_detail::run_gemm(g);
}

}  // namespace anychip::kernels::cpu
