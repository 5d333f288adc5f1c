// The AVX-512 GEMM engines (Isa::avx512bf16): AVX-512 BF16 dot products (vdpbf16ps) for
// FP8 and bf16 inputs, AVX-512 fp32 FMA for f32 inputs.
//
// bf16-dot micro-kernel, 14 x 32: 28 zmm accumulators; per pair of K steps it loads one
// 32-column B row pair (two zmm: 16 columns x 2 K each, the "VNNI" layout) and broadcasts
// one 32-bit pair of bf16 per A row, so each vdpbf16ps does 32 multiply-adds.
// FP8 is decoded to bf16 (exact) while packing: 32 bytes -> 32 words with vpmovzxbw, the
// 7-bit magnitude looked up in a 128-entry table held in four zmm (two vpermi2w and a
// blend on bit 6), the sign OR-ed back in. B panels are transposed 16 x 16 dwords at a
// time into the VNNI layout.
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
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,bmi,bmi2")
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() (a self-initialised variable) as
// the unused merge source, which -Wmaybe-uninitialized reports once per call site.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/gemm_tile.hpp"

namespace anychip::kernels::cpu::gemm_detail {
namespace {

// In-place transpose of a 16 x 16 matrix of 32-bit elements held in 16 zmm (row r in
// v[r]): afterwards v[c] holds column c.
inline void transpose_16x16_epi32(__m512i v[16]) {
  __m512i t[16], u[16];
  for (int r = 0; r < 16; r += 2) {  // pairs of rows interleaved, per 128-bit lane
    t[r] = _mm512_unpacklo_epi32(v[r], v[r + 1]);
    t[r + 1] = _mm512_unpackhi_epi32(v[r], v[r + 1]);
  }
  for (int r = 0; r < 16; r += 4) {  // u[r + j]: rows r..r+3 of column 4L + j in lane L
    u[r + 0] = _mm512_unpacklo_epi64(t[r], t[r + 2]);
    u[r + 1] = _mm512_unpackhi_epi64(t[r], t[r + 2]);
    u[r + 2] = _mm512_unpacklo_epi64(t[r + 1], t[r + 3]);
    u[r + 3] = _mm512_unpackhi_epi64(t[r + 1], t[r + 3]);
  }
  for (int j = 0; j < 4; ++j) {  // gather the four row groups of each column
    const __m512i x = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);
    const __m512i y = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
    const __m512i z = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
    const __m512i w = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
    v[j] = _mm512_shuffle_i32x4(x, z, 0x88);
    v[8 + j] = _mm512_shuffle_i32x4(x, z, 0xDD);
    v[4 + j] = _mm512_shuffle_i32x4(y, w, 0x88);
    v[12 + j] = _mm512_shuffle_i32x4(y, w, 0xDD);
  }
}

// 32 FP8 bytes -> 32 bf16, exactly.
struct Fp8Decoder {
  __m512i t0, t1, t2, t3;  // magnitudes 0-31, 32-63, 64-95, 96-127

  explicit Fp8Decoder(DType fp8) {
    const MagnitudeTable& t = magnitude_table(fp8);
    t0 = _mm512_loadu_si512(t.data());
    t1 = _mm512_loadu_si512(t.data() + 32);
    t2 = _mm512_loadu_si512(t.data() + 64);
    t3 = _mm512_loadu_si512(t.data() + 96);
  }

  __m512i widen_decode(__m512i w) const {  // w: 32 words, each an FP8 byte
    const __m512i low = _mm512_permutex2var_epi16(t0, w, t1);   // index bits 0-5
    const __m512i high = _mm512_permutex2var_epi16(t2, w, t3);
    const __mmask32 is_high = _mm512_test_epi16_mask(w, _mm512_set1_epi16(0x40));
    const __m512i magnitude = _mm512_mask_blend_epi16(is_high, low, high);
    const __m512i sign = _mm512_slli_epi16(w, 8);  // bit 7 -> bit 15
    return _mm512_ternarylogic_epi32(magnitude, sign, _mm512_set1_epi16(static_cast<short>(0x8000)), 0xF8);
  }
  __m512i decode(const std::uint8_t* src) const {
    return widen_decode(_mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))));
  }
  __m512i decode_masked(const std::uint8_t* src, __mmask32 m) const {
    return widen_decode(_mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, src)));
  }
};

inline __mmask32 first_n_mask32(std::int64_t n) {
  return n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << n) - 1u);
}
inline __mmask16 first_n_mask16(std::int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// 32 elements of row-major source row `src` (FP8 or bf16) starting at element k, as bf16,
// zero past `valid` elements.
struct Bf16RowReader {
  bool fp8;
  Fp8Decoder decoder;
  const unsigned char* base;
  std::int64_t ld;  // elements per source row

  Bf16RowReader(DType d, const void* p, std::int64_t ld_)
      : fp8(is_fp8(d)), decoder(is_fp8(d) ? d : DType::f8e4m3), base(static_cast<const unsigned char*>(p)), ld(ld_) {}

  __m512i load32(std::int64_t row, std::int64_t k, std::int64_t valid) const {
    if (fp8) {
      const auto* s = reinterpret_cast<const std::uint8_t*>(base) + row * ld + k;
      return valid >= 32 ? decoder.decode(s) : decoder.decode_masked(s, first_n_mask32(valid));
    }
    const auto* s = reinterpret_cast<const std::uint16_t*>(base) + row * ld + k;
    return valid >= 32 ? _mm512_loadu_si512(s) : _mm512_maskz_loadu_epi16(first_n_mask32(valid), s);
  }
};

// fp32 tile rows -> D (f32, or bf16 rounded to nearest even with NaN kept quiet).
void store_avx512(const float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, void* d,
                  std::int64_t d_offset, std::int64_t ldd, DType out) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* src = c + i * ldc;
    for (std::int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = first_n_mask16(cols - j);
      const __m512 x = _mm512_maskz_loadu_ps(m, src + j);
      if (out == DType::f32) {
        _mm512_mask_storeu_ps(static_cast<float*>(d) + d_offset + i * ldd + j, m, x);
        continue;
      }
      const __m512i u = _mm512_castps_si512(x);
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
      __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
      const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
      r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
      _mm512_mask_cvtepi32_storeu_epi16(static_cast<std::uint16_t*>(d) + d_offset + i * ldd + j, m, r);
    }
  }
}

// c[i][0..32) (+)= acc[i] * (sa[i] * sb[0]) (Scaled) or acc[i]: the end of one K block
// of a 14 x 32 micro-kernel. add == false: c is written, not read.
template <int MR, bool Scaled>
inline void promote_14x32(const __m512 (&acc)[MR][2], float* c, std::int64_t ldc, const float* sa, const float* sb,
                          bool add) {
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    const __m512 c0 = add ? _mm512_load_ps(ci) : _mm512_setzero_ps();
    const __m512 c1 = add ? _mm512_load_ps(ci + 16) : _mm512_setzero_ps();
    if constexpr (Scaled) {
      const __m512 s = _mm512_set1_ps(sa[i] * sb[0]);
      _mm512_store_ps(ci, _mm512_fmadd_ps(acc[i][0], s, c0));
      _mm512_store_ps(ci + 16, _mm512_fmadd_ps(acc[i][1], s, c1));
    } else {
      _mm512_store_ps(ci, _mm512_add_ps(acc[i][0], c0));
      _mm512_store_ps(ci + 16, _mm512_add_ps(acc[i][1], c1));
    }
  }
}

// FP8 or bf16 inputs, bf16 dot products.
struct Bf16DotEngine {
  using APack = std::uint16_t;  // bf16 bits
  using BPack = std::uint16_t;
  static constexpr int mr = 14, nr = 32, kc = 256, kstep = 2;
  // Padded so that the 14 rows of a micro-kernel do not all fall in the same L1 sets.
  static constexpr int lda = kc + 32;

  static std::int64_t panel_elems(std::int64_t kc_) { return round_up(kc_, 2) * nr; }

  static void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t k0, std::int64_t kc_,
                     APack* dst) {
    const Bf16RowReader a(g.a_dtype, g.a, g.k);
    for (std::int64_t i = 0; i < mc; ++i)
      for (std::int64_t k = 0; k < kc_; k += 32)  // writes up to round_up(kc, 32) <= lda
        _mm512_store_si512(dst + i * lda + k, a.load32(i0 + i, k0 + k, kc_ - k));
  }

  // Panel p: dst[(kp*32 + j)*2 + t] = B[j0 + 32p + j, k0 + 2kp + t] (zero past n and kc).
  static void pack_b(const GemmArgs& g, std::int64_t j0, std::int64_t nc, std::int64_t k0, std::int64_t kc_,
                     BPack* dst) {
    const Bf16RowReader b(g.b_dtype, g.b, g.k);
    const std::int64_t panel = panel_elems(kc_);
    for (std::int64_t jp = 0; jp < nc; jp += nr) {
      BPack* out = dst + (jp / nr) * panel;
      for (int half = 0; half < 2; ++half) {
        const std::int64_t n0 = j0 + jp + 16 * half;
        for (std::int64_t k = 0; k < kc_; k += 32) {
          __m512i v[16];
          for (int r = 0; r < 16; ++r)
            v[r] = n0 + r < g.n ? b.load32(n0 + r, k0 + k, kc_ - k) : _mm512_setzero_si512();
          transpose_16x16_epi32(v);  // v[q]: K pair k/2 + q of the 16 columns
          const std::int64_t pairs = std::min<std::int64_t>(16, (kc_ - k + 1) / 2);
          for (std::int64_t q = 0; q < pairs; ++q)
            _mm512_store_si512(out + ((k / 2 + q) * nr + 16 * half) * 2, v[q]);
        }
      }
    }
  }

  template <int MR, bool Scaled>
  static void kernel(std::int64_t kc_, const APack* a, const BPack* b, float* c, std::int64_t ldc,
                     const float* sa, std::int64_t sa_stride, const float* sb, bool accumulate) {
    const std::int64_t pairs = (kc_ + 1) / 2;
    const std::int64_t block_pairs = Scaled ? 64 : pairs;
    for (std::int64_t p0 = 0, kb = 0; p0 < pairs; p0 += block_pairs, ++kb) {
      __m512 acc[MR][2];
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
      const BPack* bp = b + p0 * 64;
      const APack* ap = a + 2 * p0;
      for (std::int64_t p = 0; p < block_pairs; ++p) {
        const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_load_si512(bp + p * 64));
        const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_load_si512(bp + p * 64 + 32));
#pragma GCC unroll 14
        for (int i = 0; i < MR; ++i) {
          std::int32_t pair;
          std::memcpy(&pair, ap + i * lda + 2 * p, 4);
          const __m512bh ai = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
          acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
          acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
      }
      promote_14x32<MR, Scaled>(acc, c, ldc, sa + kb * sa_stride, sb + kb, accumulate || kb > 0);
    }
  }

  static void store(const float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, void* d,
                    std::int64_t d_offset, std::int64_t ldd, DType out) {
    store_avx512(c, ldc, rows, cols, d, d_offset, ldd, out);
  }
};

// f32 inputs: fp32 FMA, 14 x 32, B from a k-major panel, A broadcast.
struct F32FmaEngine {
  using APack = float;
  using BPack = float;
  static constexpr int mr = 14, nr = 32, kc = 128, kstep = 1;
  static constexpr int lda = kc + 16;

  static std::int64_t panel_elems(std::int64_t kc_) { return kc_ * nr; }

  static void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t k0, std::int64_t kc_,
                     APack* dst) {
    const float* a = static_cast<const float*>(g.a);
    for (std::int64_t i = 0; i < mc; ++i)
      for (std::int64_t k = 0; k < kc_; k += 16) {
        const __mmask16 m = first_n_mask16(kc_ - k);
        _mm512_mask_storeu_ps(dst + i * lda + k, m, _mm512_maskz_loadu_ps(m, a + (i0 + i) * g.k + k0 + k));
      }
  }

  // Panel p: dst[k*32 + j] = B[j0 + 32p + j, k0 + k] (zero past n).
  static void pack_b(const GemmArgs& g, std::int64_t j0, std::int64_t nc, std::int64_t k0, std::int64_t kc_,
                     BPack* dst) {
    const float* b = static_cast<const float*>(g.b);
    for (std::int64_t jp = 0; jp < nc; jp += nr) {
      float* out = dst + (jp / nr) * panel_elems(kc_);
      for (int half = 0; half < 2; ++half) {
        const std::int64_t n0 = j0 + jp + 16 * half;
        for (std::int64_t k = 0; k < kc_; k += 16) {
          const __mmask16 m = first_n_mask16(kc_ - k);
          __m512i v[16];
          for (int r = 0; r < 16; ++r)
            v[r] = n0 + r < g.n ? _mm512_maskz_loadu_epi32(m, b + (n0 + r) * g.k + k0 + k) : _mm512_setzero_si512();
          transpose_16x16_epi32(v);
          const std::int64_t rows = std::min<std::int64_t>(16, kc_ - k);
          for (std::int64_t q = 0; q < rows; ++q) _mm512_store_si512(out + (k + q) * nr + 16 * half, v[q]);
        }
      }
    }
  }

  template <int MR, bool Scaled>
  static void kernel(std::int64_t kc_, const APack* a, const BPack* b, float* c, std::int64_t ldc,
                     const float* sa, std::int64_t sa_stride, const float* sb, bool accumulate) {
    const std::int64_t block = Scaled ? 128 : kc_;
    for (std::int64_t k0 = 0, kb = 0; k0 < kc_; k0 += block, ++kb) {
      __m512 acc[MR][2];
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
      for (std::int64_t k = k0; k < k0 + block; ++k) {
        const __m512 b0 = _mm512_load_ps(b + k * 32);
        const __m512 b1 = _mm512_load_ps(b + k * 32 + 16);
#pragma GCC unroll 14
        for (int i = 0; i < MR; ++i) {
          const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
          acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
      }
      promote_14x32<MR, Scaled>(acc, c, ldc, sa + kb * sa_stride, sb + kb, accumulate || kb > 0);
    }
  }

  static void store(const float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, void* d,
                    std::int64_t d_offset, std::int64_t ldd, DType out) {
    store_avx512(c, ldc, rows, cols, d, d_offset, ldd, out);
  }
};

}  // namespace

Engine engine_avx512(const GemmArgs& g) {
  if (g.a_dtype == DType::f32) {
    return make_engine<F32FmaEngine>("avx512 f32-fma", 14 * 19, 256);
  }
  return make_engine<Bf16DotEngine>("avx512bf16 bf16-dot", 14 * 19, 256);
}

}  // namespace anychip::kernels::cpu::gemm_detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else  // not x86-64: never selected (detected_isa() is generic)

namespace anychip::kernels::cpu::gemm_detail {
Engine engine_avx512(const GemmArgs& g) { return engine_generic(g); }
}  // namespace anychip::kernels::cpu::gemm_detail

#endif
