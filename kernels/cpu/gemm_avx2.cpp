// The AVX2+FMA GEMM engine (Isa::avx2): every input (FP8, bf16, f32) is decoded to fp32
// while packing (8 values at a time; B panels through 8 x 8 transposes), and a 6 x 16 fp32
// FMA micro-kernel (12 ymm accumulators, two B loads and six A broadcasts per K step)
// computes the tile.
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
#pragma GCC target("avx2,fma,f16c,bmi,bmi2")

#include "kernels/cpu/gemm_tile.hpp"

namespace anychip::kernels::cpu::gemm_detail {
namespace {

// 8 elements of a row-major matrix (FP8, bf16 or f32) as fp32, exactly.
// FP8 goes through binary16 and F16C: an E5M2 byte is the high byte of the binary16 of
// the same value; an E4M3 magnitude shifted left by 7 is the binary16 of value / 2^8, for
// normal and subnormal values alike (the exponent biases differ by 8), so one vcvtph2ps
// and an exact multiply by 256 decode it; 0x7F/0xFF (NaN) is patched afterwards.
struct Avx2RowLoader {
  DType dtype;
  const unsigned char* base;
  std::int64_t ld;  // elements per row

  __m256 load8(std::int64_t row, std::int64_t k, std::int64_t valid) const {
    const std::size_t size = dtype == DType::f32 ? 4 : dtype == DType::bf16 ? 2 : 1;
    const unsigned char* p = base + static_cast<std::size_t>(row * ld + k) * size;
    alignas(32) unsigned char tail[32] = {};
    if (valid < 8) {  // the last elements of a K chunk: zero-padded copy
      std::memcpy(tail, p, static_cast<std::size_t>(valid) * size);
      p = tail;
    }
    switch (dtype) {
      case DType::f32: return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
      case DType::bf16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
      case DType::f8e5m2: {
        const __m128i w = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
        return _mm256_cvtph_ps(_mm_slli_epi16(w, 8));
      }
      default: {  // f8e4m3
        const __m128i w = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
        const __m128i magnitude = _mm_and_si128(w, _mm_set1_epi16(0x7F));
        const __m128i sign = _mm_slli_epi16(_mm_and_si128(w, _mm_set1_epi16(0x80)), 8);
        const __m128i half = _mm_or_si128(_mm_slli_epi16(magnitude, 7), sign);
        const __m256 value = _mm256_mul_ps(_mm256_cvtph_ps(half), _mm256_set1_ps(256.0f));
        const __m256i nan = _mm256_cvtepi16_epi32(_mm_cmpeq_epi16(magnitude, _mm_set1_epi16(0x7F)));
        return _mm256_blendv_ps(value, _mm256_set1_ps(__builtin_nanf("")), _mm256_castsi256_ps(nan));
      }
    }
  }
};

// In-place transpose of 8 x 8 floats held in 8 ymm (row r in v[r]; afterwards column c).
inline void transpose_8x8_ps(__m256 v[8]) {
  __m256 t[8], u[8];
  for (int r = 0; r < 8; r += 2) {
    t[r] = _mm256_unpacklo_ps(v[r], v[r + 1]);
    t[r + 1] = _mm256_unpackhi_ps(v[r], v[r + 1]);
  }
  for (int r = 0; r < 8; r += 4) {
    u[r + 0] = _mm256_shuffle_ps(t[r], t[r + 2], 0x44);
    u[r + 1] = _mm256_shuffle_ps(t[r], t[r + 2], 0xEE);
    u[r + 2] = _mm256_shuffle_ps(t[r + 1], t[r + 3], 0x44);
    u[r + 3] = _mm256_shuffle_ps(t[r + 1], t[r + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    v[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

struct Avx2FmaEngine {
  using APack = float;
  using BPack = float;
  static constexpr int mr = 6, nr = 16, kc = 256, kstep = 1;
  static constexpr int lda = kc + 16;

  static std::int64_t panel_elems(std::int64_t kc_) { return kc_ * nr; }

  static void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t k0, std::int64_t kc_,
                     APack* dst) {
    const Avx2RowLoader a{g.a_dtype, static_cast<const unsigned char*>(g.a), g.k};
    for (std::int64_t i = 0; i < mc; ++i)
      for (std::int64_t k = 0; k < kc_; k += 8)  // writes up to round_up(kc, 8) <= lda
        _mm256_store_ps(dst + i * lda + k, a.load8(i0 + i, k0 + k, kc_ - k));
  }

  // Panel p: dst[k*16 + j] = B[j0 + 16p + j, k0 + k] (zero past n).
  static void pack_b(const GemmArgs& g, std::int64_t j0, std::int64_t nc, std::int64_t k0, std::int64_t kc_,
                     BPack* dst) {
    const Avx2RowLoader b{g.b_dtype, static_cast<const unsigned char*>(g.b), g.k};
    for (std::int64_t jp = 0; jp < nc; jp += nr) {
      float* panel = dst + (jp / nr) * panel_elems(kc_);
      for (int group = 0; group < 2; ++group) {
        const std::int64_t n0 = j0 + jp + 8 * group;
        for (std::int64_t k = 0; k < kc_; k += 8) {
          __m256 v[8];
          for (int r = 0; r < 8; ++r)
            v[r] = n0 + r < g.n ? b.load8(n0 + r, k0 + k, kc_ - k) : _mm256_setzero_ps();
          transpose_8x8_ps(v);  // v[q]: K index k + q of the 8 columns
          const std::int64_t steps = std::min<std::int64_t>(8, kc_ - k);
          for (std::int64_t q = 0; q < steps; ++q) _mm256_store_ps(panel + (k + q) * nr + 8 * group, v[q]);
        }
      }
    }
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
