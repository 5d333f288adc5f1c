// The AVX-512 GEMM engines, as templates instantiated by gemm_avx512.cpp (AVX-512 F/BW/
// VL/DQ + BF16) and gemm_avx512_vbmi.cpp (the same + VBMI, for the byte-wise FP8 decoder).
// Include after the `#pragma GCC target` of the including source (see gemm_tile.hpp).
//
// bf16-dot micro-kernel, 14 x 32: 28 zmm accumulators; per pair of K steps it loads one
// 32-column B row pair (two zmm: 16 columns x 2 K each, the "VNNI" layout) and broadcasts
// one 32-bit pair of bf16 per A row, so each vdpbf16ps does 32 multiply-adds.
// FP8 is decoded to bf16 (exact) while packing, 64 values at a time:
//   Fp8DecoderWords (AVX512BW): widen bytes to words (vpmovzxbw), look the 7-bit magnitude
//     up in a 128-entry word table held in four zmm (two vpermi2w and a blend on bit 6),
//     OR the sign back in;
//   Fp8DecoderBytes (AVX512_VBMI): look up the low and the high byte of the bf16 pattern in
//     two 128-entry byte tables (one vpermi2b each, which index with 7 bits and so ignore
//     the sign), OR the sign into the high byte, interleave the bytes into words.
// B panels are transposed 16 x 16 dwords at a time into the VNNI layout.
#pragma once

#include <immintrin.h>

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

inline __mmask16 first_n_mask16(std::int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}
inline __mmask32 first_n_mask32(std::int64_t n) {
  return n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << n) - 1u);
}

// 64 FP8 bytes -> 64 bf16 (elements 0-31 in lo, 32-63 in hi), exactly; AVX512BW.
struct Fp8DecoderWords {
  __m512i t0, t1, t2, t3;  // bf16 magnitudes 0-31, 32-63, 64-95, 96-127

  explicit Fp8DecoderWords(DType fp8) {
    const MagnitudeTable& t = magnitude_table(fp8);
    t0 = _mm512_loadu_si512(t.data());
    t1 = _mm512_loadu_si512(t.data() + 32);
    t2 = _mm512_loadu_si512(t.data() + 64);
    t3 = _mm512_loadu_si512(t.data() + 96);
  }

  __m512i widen_decode(__m256i bytes) const {
    const __m512i w = _mm512_cvtepu8_epi16(bytes);
    const __m512i low = _mm512_permutex2var_epi16(t0, w, t1);  // index bits 0-5
    const __m512i high = _mm512_permutex2var_epi16(t2, w, t3);
    const __mmask32 is_high = _mm512_test_epi16_mask(w, _mm512_set1_epi16(0x40));
    const __m512i magnitude = _mm512_mask_blend_epi16(is_high, low, high);
    const __m512i sign = _mm512_slli_epi16(w, 8);  // bit 7 -> bit 15
    return _mm512_ternarylogic_epi32(magnitude, sign, _mm512_set1_epi16(static_cast<short>(0x8000)), 0xF8);
  }
  void decode64(__m512i x, __m512i& lo, __m512i& hi) const {
    lo = widen_decode(_mm512_castsi512_si256(x));
    hi = widen_decode(_mm512_extracti64x4_epi64(x, 1));
  }
};

// 64 FP8 bytes -> 64 bf16 (elements 0-31 in lo, 32-63 in hi), exactly; AVX512_VBMI.
struct Fp8DecoderBytes {
  __m512i low0, low1, high0, high1;  // low / high byte of the bf16 magnitudes 0-63, 64-127
  __m512i order;                     // vpermb indices, see decode64

  explicit Fp8DecoderBytes(DType fp8) {
    const MagnitudeTable& t = magnitude_table(fp8);
    alignas(64) std::uint8_t low[128], high[128], idx[64];
    for (int i = 0; i < 128; ++i) {
      low[i] = static_cast<std::uint8_t>(t[i] & 0xFF);
      high[i] = static_cast<std::uint8_t>(t[i] >> 8);
    }
    // The byte interleave (vpunpck[lh]bw) takes bytes 0-7 / 8-15 of each 128-bit lane;
    // order the input so that lo gets elements 0-31 and hi 32-63.
    for (int lane = 0; lane < 4; ++lane)
      for (int j = 0; j < 8; ++j) {
        idx[16 * lane + j] = static_cast<std::uint8_t>(8 * lane + j);
        idx[16 * lane + 8 + j] = static_cast<std::uint8_t>(32 + 8 * lane + j);
      }
    low0 = _mm512_load_si512(low);
    low1 = _mm512_load_si512(low + 64);
    high0 = _mm512_load_si512(high);
    high1 = _mm512_load_si512(high + 64);
    order = _mm512_load_si512(idx);
  }

  void decode64(__m512i x, __m512i& lo, __m512i& hi) const {
    x = _mm512_permutexvar_epi8(order, x);
    const __m512i low = _mm512_permutex2var_epi8(low0, x, low1);  // index bits 0-6
    __m512i high = _mm512_permutex2var_epi8(high0, x, high1);
    high = _mm512_ternarylogic_epi32(high, x, _mm512_set1_epi8(static_cast<char>(0x80)), 0xF8);  // | sign
    lo = _mm512_unpacklo_epi8(low, high);
    hi = _mm512_unpackhi_epi8(low, high);
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

// FP8 or bf16 inputs, bf16 dot products. Decoder: Fp8DecoderWords or Fp8DecoderBytes.
template <class Decoder>
struct Bf16DotEngine {
  using APack = std::uint16_t;  // bf16 bits
  using BPack = std::uint16_t;
  static constexpr int mr = 14, nr = 32, kc = 256, kstep = 2;
  // Padded so that the 14 rows of a micro-kernel do not all fall in the same L1 sets.
  static constexpr int lda = kc + 32;

  static std::int64_t panel_elems(std::int64_t kc_) { return round_up(kc_, 2) * nr; }

  static void pack_a(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t k0, std::int64_t kc_,
                     APack* dst) {
    if (!is_fp8(g.a_dtype)) {
      const auto* a = static_cast<const std::uint16_t*>(g.a);
      for (std::int64_t i = 0; i < mc; ++i)
        for (std::int64_t k = 0; k < kc_; k += 32)  // writes up to round_up(kc, 32) <= lda, zeros past kc
          _mm512_store_si512(dst + i * lda + k,
                             _mm512_maskz_loadu_epi16(first_n_mask32(kc_ - k), a + (i0 + i) * g.k + k0 + k));
      return;
    }
    // FP8: kc is a multiple of 128.
    const Decoder decoder(g.a_dtype);
    const auto* a = static_cast<const std::uint8_t*>(g.a) + i0 * g.k + k0;
    for (std::int64_t i = 0; i < mc; ++i)
      for (std::int64_t k = 0; k < kc_; k += 64) {
        __m512i lo, hi;
        decoder.decode64(_mm512_loadu_si512(a + i * g.k + k), lo, hi);
        _mm512_store_si512(dst + i * lda + k, lo);
        _mm512_store_si512(dst + i * lda + k + 32, hi);
      }
  }

  // Panel p: dst[(kp*32 + j)*2 + t] = B[j0 + 32p + j, k0 + 2kp + t] (zero past n and kc).
  static void pack_b(const GemmArgs& g, std::int64_t j0, std::int64_t nc, std::int64_t k0, std::int64_t kc_,
                     BPack* dst) {
    const std::int64_t panel = panel_elems(kc_);
    const bool fp8 = is_fp8(g.b_dtype);
    const Decoder decoder(fp8 ? g.b_dtype : DType::f8e4m3);
    for (std::int64_t jp = 0; jp < nc; jp += nr) {
      BPack* out = dst + (jp / nr) * panel;
      for (int half = 0; half < 2; ++half) {
        // Rows past n read nothing (mask 0) and pack as zeros.
        const std::int64_t n0 = j0 + jp + 16 * half;
        std::int64_t row[16];
        bool valid[16];
        for (int r = 0; r < 16; ++r) {
          valid[r] = n0 + r < g.n;
          row[r] = std::min(n0 + r, g.n - 1) * g.k + k0;
        }
        BPack* o = out + 16 * half * 2;
        if (fp8)
          pack_b_fp8_16(decoder, static_cast<const std::uint8_t*>(g.b), row, valid, kc_, o);
        else
          pack_b_bf16_16(static_cast<const std::uint16_t*>(g.b), row, valid, kc_, o);
      }
    }
  }

  // 16 columns of a panel from FP8 rows (kc a multiple of 64).
  static void pack_b_fp8_16(const Decoder& decoder, const std::uint8_t* b, const std::int64_t* row,
                            const bool* valid, std::int64_t kc_, BPack* out) {
    for (std::int64_t k = 0; k < kc_; k += 64) {
      __m512i v[16], upper[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r)
        decoder.decode64(_mm512_maskz_loadu_epi8(valid[r] ? ~__mmask64{0} : 0, b + row[r] + k), v[r], upper[r]);
      transpose_16x16_epi32(v);  // v[q]: K pair k/2 + q of the 16 columns
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q) _mm512_store_si512(out + (k / 2 + q) * nr * 2, v[q]);
      transpose_16x16_epi32(upper);
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q) _mm512_store_si512(out + (k / 2 + 16 + q) * nr * 2, upper[q]);
    }
  }

  // 16 columns of a panel from bf16 rows (any kc; zero past kc).
  static void pack_b_bf16_16(const std::uint16_t* b, const std::int64_t* row, const bool* valid, std::int64_t kc_,
                             BPack* out) {
    for (std::int64_t k = 0; k < kc_; k += 32) {
      const __mmask32 m = first_n_mask32(kc_ - k);
      __m512i v[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r) v[r] = _mm512_maskz_loadu_epi16(valid[r] ? m : 0, b + row[r] + k);
      transpose_16x16_epi32(v);
      const std::int64_t pairs = std::min<std::int64_t>(16, (kc_ - k + 1) / 2);
      for (std::int64_t q = 0; q < pairs; ++q) _mm512_store_si512(out + (k / 2 + q) * nr * 2, v[q]);
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
}  // namespace anychip::kernels::cpu::gemm_detail
