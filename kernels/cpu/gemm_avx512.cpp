// The AVX-512 GEMM engines (Isa::avx512bf16): AVX-512 BF16 dot products (vdpbf16ps) for
// FP8 and bf16 inputs, AVX-512 fp32 FMA for f32 inputs (gemm_avx512_engine.hpp). FP8 is
// decoded with the AVX-512 VBMI byte decoder (gemm_avx512_vbmi.cpp) where the CPU has
// VBMI, with the word decoder compiled here otherwise (e.g. Cooper Lake).
//
// This file is compiled for AVX-512 by the #pragma below (the project builds without
// -march): only code reached after active_isa() says the CPU has AVX-512 BF16 runs it.
// Standard and project headers come BEFORE the pragma so that their inline functions keep
// the baseline target (their out-of-line copies are shared with other translation units).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/cpu/fp8_decode.hpp"
#include "kernels/cpu/gemm_kernels.hpp"

#if defined(__x86_64__) || defined(_M_X64)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,bmi,bmi2")
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() (a self-initialised variable) as
// the unused merge source, which -Wmaybe-uninitialized reports once per call site.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/gemm_avx512_engine.hpp"

namespace anychip::kernels::cpu::gemm_detail {

Engine engine_avx512(const GemmArgs& g, bool vbmi) {
  if (g.a_dtype == DType::f32) return make_engine<F32FmaEngine>("avx512 f32-fma 14x32", 14 * 19, 256);
  if (vbmi) return engine_avx512_vbmi(g);
  return make_engine<Bf16DotEngine<Fp8DecoderWords>>("avx512bf16 bf16-dot 14x32", 14 * 19, 256);
}

}  // namespace anychip::kernels::cpu::gemm_detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else  // not x86-64: never selected (detected_isa() is generic)

namespace anychip::kernels::cpu::gemm_detail {
Engine engine_avx512(const GemmArgs& g, bool) { return engine_generic(g); }
}  // namespace anychip::kernels::cpu::gemm_detail

#endif
