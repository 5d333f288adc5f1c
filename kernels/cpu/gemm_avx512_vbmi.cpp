// The bf16-dot engine of gemm_avx512_engine.hpp with the AVX-512 VBMI FP8 decoder (two
// vpermi2b byte lookups per 64 values), compiled for AVX-512 F/BW/VL/DQ + BF16 + VBMI:
// chosen by engine_avx512 only when the CPU has VBMI (AMD Zen 4, Intel Ice Lake server and
// later with BF16: Sapphire Rapids). See gemm_avx512.cpp for why headers precede the pragma.
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
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi,fma,avx2,bmi,bmi2")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // see gemm_avx512.cpp

#include "kernels/cpu/gemm_avx512_engine.hpp"

namespace anychip::kernels::cpu::gemm_detail {

Engine engine_avx512_vbmi(const GemmArgs& g) {
  return make_engine<Bf16DotEngine<Fp8DecoderBytes>>("avx512bf16 bf16-dot 14x32, vbmi decode", 14 * 19, 256);
}

}  // namespace anychip::kernels::cpu::gemm_detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else

namespace anychip::kernels::cpu::gemm_detail {
Engine engine_avx512_vbmi(const GemmArgs& g) { return engine_generic(g); }
}  // namespace anychip::kernels::cpu::gemm_detail

#endif
