// cpu::gemm_fp8: the block-scaled FP8 GEMM of DESIGN.md ("FP8 GEMM"), on all cores.
// The engines (gemm_kernels.hpp) decode FP8 to bf16 or fp32 while packing cache-sized
// panels, sum each 128-wide K block in fp32 and add it times sA[m,b] * sB[n/128,b].
#include <string>

#include "anychip/error.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/gemm_kernels.hpp"

namespace anychip::kernels::cpu {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::InvalidArgument, "cpu::gemm_fp8: " + what);
}

std::string name(DType d) { return std::string(dtype_name(d)); }

}  // namespace

void gemm_fp8(const GemmFp8Problem& p, ConstOperand a, ConstOperand b, Operand d) {
  require(p.m >= 0 && p.n >= 0 && p.k >= 0, "negative shape m=" + std::to_string(p.m) +
                                                " n=" + std::to_string(p.n) + " k=" + std::to_string(p.k));
  require(p.k % 128 == 0, "K=" + std::to_string(p.k) + " is not a multiple of 128");
  require(is_fp8(p.a_dtype), "operand a: dtype " + name(p.a_dtype) + " is not f8e4m3 or f8e5m2");
  require(is_fp8(p.b_dtype), "operand b: dtype " + name(p.b_dtype) + " is not f8e4m3 or f8e5m2");
  require(is_scale_dtype(p.a_scale_dtype), "operand a: scale dtype " + name(p.a_scale_dtype) + " is not f32 or ue8m0");
  require(is_scale_dtype(p.b_scale_dtype), "operand b: scale dtype " + name(p.b_scale_dtype) + " is not f32 or ue8m0");
  require(p.out_dtype == DType::f32 || p.out_dtype == DType::bf16,
          "output dtype " + name(p.out_dtype) + " is not f32 or bf16");
  if (p.m == 0 || p.n == 0) return;
  require(d.data != nullptr, "output: null data pointer");
  if (p.k > 0) {
    require(a.data != nullptr && a.scales != nullptr, "operand a: null data or scales pointer");
    require(b.data != nullptr && b.scales != nullptr, "operand b: null data or scales pointer");
  }

  gemm_detail::GemmArgs g;
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  g.a_dtype = p.a_dtype;
  g.b_dtype = p.b_dtype;
  g.a = a.data;
  g.b = b.data;
  g.a_scales = a.scales;
  g.b_scales = b.scales;
  g.a_scale_dtype = p.a_scale_dtype;
  g.b_scale_dtype = p.b_scale_dtype;
  g.d = d.data;
  g.out_dtype = p.out_dtype;
  gemm_detail::run_gemm(g);
}

}  // namespace anychip::kernels::cpu
