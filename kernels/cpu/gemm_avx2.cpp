// The AVX2+FMA GEMM engine (Isa::avx2): every input (FP8, bf16, f32) is decoded to fp32
// while packing, and a 6 x 16 fp32 FMA micro-kernel (12 ymm accumulators, two B loads
// and six A broadcasts per K step) computes the tile.
//
// Compiled for AVX2+FMA by the #pragma below; headers come before it so that their inline
// functions keep the baseline target (see gemm_avx512.cpp).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/cpu/fp8_decode.hpp"
#include "kernels/cpu/gemm_kernels.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2")

#include "kernels/cpu/gemm_tile.hpp"

namespace anychip::kernels::cpu::gemm_detail {
namespace {

struct Avx2FmaEngine {
  using APack = float;
  using BPack = float;
  static constexpr int mr = 6, nr = 16, kc = 256, kstep = 1;
  static constexpr int lda = kc + 16;

  static std::int64_t panel_elems(std::int64_t kc_) { return kc_ * nr; }

  static void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t k0, std::int64_t kc_,
                     APack* dst) {
    pack_a_f32_rows<lda>(g, i0, mc, k0, kc_, dst);
  }
  static void pack_b(const GemmArgs& g, std::int64_t j0, std::int64_t nc, std::int64_t k0, std::int64_t kc_,
                     BPack* dst) {
    pack_b_f32_panels<nr>(g, j0, nc, k0, kc_, dst);
  }

  template <int MR, bool Scaled>
  static void kernel(std::int64_t kc_, const APack* a, const BPack* b, float* c, std::int64_t ldc,
                     const float* sa, std::int64_t sa_stride, const float* sb, bool accumulate) {
    const std::int64_t block = Scaled ? 128 : kc_;
    for (std::int64_t k0 = 0, kb = 0; k0 < kc_; k0 += block, ++kb) {
      __m256 acc[MR][2];
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
      for (std::int64_t k = k0; k < k0 + block; ++k) {
        const __m256 b0 = _mm256_load_ps(b + k * 16);
        const __m256 b1 = _mm256_load_ps(b + k * 16 + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
          const __m256 ai = _mm256_broadcast_ss(a + i * lda + k);
          acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
      }
      const bool add = accumulate || kb > 0;  // false: c is written, not read
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        float* ci = c + i * ldc;
        const __m256 c0 = add ? _mm256_load_ps(ci) : _mm256_setzero_ps();
        const __m256 c1 = add ? _mm256_load_ps(ci + 8) : _mm256_setzero_ps();
        if constexpr (Scaled) {
          const __m256 s = _mm256_set1_ps(sa[kb * sa_stride + i] * sb[kb]);
          _mm256_store_ps(ci, _mm256_fmadd_ps(acc[i][0], s, c0));
          _mm256_store_ps(ci + 8, _mm256_fmadd_ps(acc[i][1], s, c1));
        } else {
          _mm256_store_ps(ci, _mm256_add_ps(acc[i][0], c0));
          _mm256_store_ps(ci + 8, _mm256_add_ps(acc[i][1], c1));
        }
      }
    }
  }

  static void store(const float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, void* d,
                    std::int64_t d_offset, std::int64_t ldd, DType out) {
    store_scalar(c, ldc, rows, cols, d, d_offset, ldd, out);
  }
};

}  // namespace

Engine engine_avx2(const GemmArgs& g) { return make_engine<Avx2FmaEngine>("avx2 f32-fma", 6 * 42, 256); }

}  // namespace anychip::kernels::cpu::gemm_detail

#pragma GCC pop_options

#else  // not x86-64: never selected (detected_isa() is generic)

namespace anychip::kernels::cpu::gemm_detail {
Engine engine_avx2(const GemmArgs& g) { return engine_generic(g); }
}  // namespace anychip::kernels::cpu::gemm_detail

#endif
