// The tile loop every CPU GEMM engine shares, and the scalar packing routines of the
// fp32 engines. Included by one engine source per instruction set AFTER its
// `#pragma GCC target`, so that this code is compiled for that ISA; everything here has
// internal linkage, so the copies of different ISAs never meet at link time. The engine
// source includes the standard headers before the pragma, and this header includes
// nothing new.
//
// An engine K provides:
//   APack, BPack          element types of the packed panels (uint16_t bf16 bits or float)
//   mr, nr, kc, kstep     micro-tile, K chunk, K elements per multiply step (2 for bf16 pairs)
//   lda                   row stride (elements) of the packed A panel, a constant so that
//                         the micro-kernel addresses its mr rows with immediate offsets
//   pack_a(g, i0, mc, k0, kc, dst)   rows [i0,i0+mc) x k [k0,k0+kc) -> dst[i*lda + k],
//                                    decoded, zero-padded to a multiple of kstep
//   pack_b(g, j0, nc, k0, kc, dst)   columns [j0,j0+nc) -> micro-panels of nr columns,
//                                    panel p at dst + p*panel_elems(kc), k-major; columns
//                                    past n are zero
//   kernel<MR, Scaled>(kc, a, b, c, ldc, sa, sa_stride, sb, accumulate)
//                         c[i*ldc + j] += the MR x nr product of one A row block and one
//                         B micro-panel; Scaled: per 128-K block kb, partial * sa[kb *
//                         sa_stride + i] * sb[kb]; accumulate == false: c is not read
//                         (its old contents are replaced: the tile's first K chunk)
//   store(c, ldc, rows, cols, d, d_offset, ldd, out_dtype)
//                         fp32 tile -> D at element d_offset (bf16: round to nearest even)
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/cpu/fp8_decode.hpp"
#include "kernels/cpu/gemm_kernels.hpp"

namespace anychip::kernels::cpu::gemm_detail {
namespace {

constexpr std::int64_t round_up(std::int64_t x, std::int64_t m) { return (x + m - 1) / m * m; }
constexpr std::size_t align64(std::size_t bytes) { return (bytes + 63) & ~std::size_t{63}; }

// Where each part of one tile's workspace lives.
template <class K>
struct TileWorkspace {
  std::int64_t mc, ncp;  // rows, columns rounded up to nr
  std::int64_t ldc;      // fp32 tile buffer stride
  std::int64_t col_blocks;

  TileWorkspace(std::int64_t mc_, std::int64_t nc_)
      : mc(mc_), ncp(round_up(nc_, K::nr)), ldc(round_up(nc_, K::nr)),
        // a tile of ncp columns starting at a multiple of nr touches at most this many
        // 128-column scale blocks
        col_blocks(round_up(nc_, K::nr) / 128 + 2) {}

  static constexpr std::int64_t kblocks = K::kc / 128;

  std::size_t a_bytes() const { return align64(sizeof(typename K::APack) * mc * K::lda); }
  std::size_t b_bytes() const { return align64(sizeof(typename K::BPack) * ncp * K::kc); }
  std::size_t c_bytes() const { return align64(sizeof(float) * mc * ldc); }
  std::size_t sa_bytes() const { return align64(sizeof(float) * kblocks * mc); }
  std::size_t sb_bytes() const { return align64(sizeof(float) * kblocks * col_blocks); }
  std::size_t total() const { return a_bytes() + b_bytes() + c_bytes() + sa_bytes() + sb_bytes(); }
};

template <class K>
std::size_t tile_workspace_bytes(std::int64_t mc, std::int64_t nc) {
  return TileWorkspace<K>(mc, nc).total();
}

template <class K, bool Scaled>
using KernelFn = void (*)(std::int64_t, const typename K::APack*, const typename K::BPack*, float*,
                          std::int64_t, const float*, std::int64_t, const float*, bool);

// Rows of the row block that starts `left` rows before the end of a tile: mr, except
// that a small remainder is merged with the block before it and the two are split evenly
// (128 rows = 8 x 14 + 8 + 8 rather than 9 x 14 + 2: a block of very few rows has too few
// accumulators to hide the latency of the multiply-adds).
template <int Mr>
constexpr std::int64_t row_block(std::int64_t left) {
  if (left <= Mr) return left;
  if (left < 2 * Mr && left - Mr < (Mr + 1) / 2) return (left + 1) / 2;
  return Mr;
}

// kernel<1..mr> as a table indexed by rows - 1.
template <class K, bool Scaled, std::size_t... I>
constexpr std::array<KernelFn<K, Scaled>, sizeof...(I)> make_kernel_table(std::index_sequence<I...>) {
  return {&K::template kernel<static_cast<int>(I) + 1, Scaled>...};
}

template <class K, bool Scaled>
void run_tile_impl(const GemmArgs& g, const Tile& t, std::byte* ws) {
  static constexpr auto kernels = make_kernel_table<K, Scaled>(std::make_index_sequence<K::mr>());
  const TileWorkspace<K> w(t.mc, t.nc);
  auto* apack = reinterpret_cast<typename K::APack*>(ws);
  auto* bpack = reinterpret_cast<typename K::BPack*>(ws + w.a_bytes());
  auto* cbuf = reinterpret_cast<float*>(ws + w.a_bytes() + w.b_bytes());
  auto* sa = reinterpret_cast<float*>(ws + w.a_bytes() + w.b_bytes() + w.c_bytes());
  auto* sb = reinterpret_cast<float*>(ws + w.a_bytes() + w.b_bytes() + w.c_bytes() + w.sa_bytes());
  if (g.k == 0) std::memset(cbuf, 0, sizeof(float) * t.mc * w.ldc);

  const std::int64_t k_blocks_total = g.k / 128;  // scale columns (Scaled only)
  const std::int64_t first_col_block = t.j0 / 128;
  for (std::int64_t k0 = 0; k0 < g.k; k0 += K::kc) {
    const std::int64_t kc = std::min<std::int64_t>(K::kc, g.k - k0);
    K::pack_a(g, t.i0, t.mc, k0, kc, apack);
    K::pack_b(g, t.j0, t.nc, k0, kc, bpack);
    if constexpr (Scaled) {
      const std::int64_t kb0 = k0 / 128, nkb = kc / 128;
      for (std::int64_t kb = 0; kb < nkb; ++kb)
        for (std::int64_t i = 0; i < t.mc; ++i)
          sa[kb * t.mc + i] =
              scale_to_float(g.a_scales, g.a_scale_dtype, (t.i0 + i) * k_blocks_total + kb0 + kb);
      const std::int64_t last_col_block = (t.j0 + t.nc - 1) / 128;
      for (std::int64_t cb = first_col_block; cb <= last_col_block; ++cb)
        for (std::int64_t kb = 0; kb < nkb; ++kb)
          sb[(cb - first_col_block) * w.kblocks + kb] =
              scale_to_float(g.b_scales, g.b_scale_dtype, cb * k_blocks_total + kb0 + kb);
    }
    const std::int64_t panel = K::panel_elems(kc);
    // ir outer: one A row block stays in L1 while the B micro-panels stream from L2.
    for (std::int64_t ir = 0, rows = 0; ir < t.mc; ir += rows) {
      rows = row_block<K::mr>(t.mc - ir);
      const auto kernel = kernels[static_cast<std::size_t>(rows - 1)];
      for (std::int64_t jr = 0; jr < t.nc; jr += K::nr) {
        const float* sb_panel = Scaled ? sb + ((t.j0 + jr) / 128 - first_col_block) * w.kblocks : nullptr;
        kernel(kc, apack + ir * K::lda, bpack + (jr / K::nr) * panel, cbuf + ir * w.ldc + jr, w.ldc,
               Scaled ? sa + ir : nullptr, t.mc, sb_panel, k0 > 0);
      }
    }
  }
  K::store(cbuf, w.ldc, t.mc, t.nc, g.d, t.i0 * g.n + t.j0, g.n, g.out_dtype);
}

template <class K>
void run_tile(const GemmArgs& g, const Tile& t, std::byte* ws) {
  if (g.scaled())
    run_tile_impl<K, true>(g, t, ws);
  else
    run_tile_impl<K, false>(g, t, ws);
}

template <class K>
Engine make_engine(std::string_view name, int mc, int nc) {
  static_assert(128 % K::nr == 0, "one B scale per micro-tile needs nr | 128");
  static_assert(K::kc % 128 == 0, "K chunks hold whole scale blocks");
  static_assert(K::lda >= K::kc, "packed A rows hold a whole K chunk");
  return Engine{name, K::mr, K::nr, mc / K::mr * K::mr, nc / K::nr * K::nr, K::kc,
                &tile_workspace_bytes<K>, &run_tile<K>};
}

// ---- Scalar pieces for the engines that compute in fp32 ----

// Element i of row-major matrix x of dtype (f32, bf16 or FP8) as float.
struct FloatLoader {
  DType dtype;
  const unsigned char* base;
  const FloatTable* fp8 = nullptr;

  FloatLoader(DType d, const void* p)
      : dtype(d), base(static_cast<const unsigned char*>(p)), fp8(is_fp8(d) ? &float_table(d) : nullptr) {}

  // Decodes n elements starting at element `first` into dst.
  void row(std::int64_t first, std::int64_t n, float* dst) const {
    if (dtype == DType::f32) {
      std::memcpy(dst, base + 4 * first, sizeof(float) * n);
    } else if (dtype == DType::bf16) {
      const unsigned char* s = base + 2 * first;
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
        std::memcpy(dst + i, &u, 4);
      }
    } else {
      const unsigned char* s = base + first;
      for (std::int64_t i = 0; i < n; ++i) dst[i] = (*fp8)[s[i]];
    }
  }
};

// pack_a of the fp32 engines: decoded rows, stride lda.
template <int Lda>
void pack_a_f32_rows(const GemmArgs& g, std::int64_t i0, std::int64_t mc, std::int64_t k0, std::int64_t kc,
                     float* dst) {
  const FloatLoader a(g.a_dtype, g.a);
  for (std::int64_t i = 0; i < mc; ++i) a.row((i0 + i) * g.k + k0, kc, dst + i * Lda);
}

// pack_b of the fp32 engines: panel p holds dst[k*Nr + j] = B[j0 + p*Nr + j, k0 + k].
template <int Nr>
void pack_b_f32_panels(const GemmArgs& g, std::int64_t j0, std::int64_t nc, std::int64_t k0, std::int64_t kc,
                       float* dst) {
  const FloatLoader b(g.b_dtype, g.b);
  float row[512];
  for (std::int64_t jp = 0; jp < nc; jp += Nr) {
    float* panel = dst + (jp / Nr) * kc * Nr;
    for (int j = 0; j < Nr; ++j) {
      const std::int64_t n = j0 + jp + j;
      for (std::int64_t kk = 0; kk < kc; kk += 512) {
        const std::int64_t len = std::min<std::int64_t>(512, kc - kk);
        if (n < g.n)
          b.row(n * g.k + k0 + kk, len, row);
        else
          std::fill(row, row + len, 0.0f);
        for (std::int64_t k = 0; k < len; ++k) panel[(kk + k) * Nr + j] = row[k];
      }
    }
  }
}

// store of the fp32 engines: fp32 tile -> D, rounding to bf16 to nearest even.
inline void store_scalar(const float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, void* d,
                  std::int64_t d_offset, std::int64_t ldd, DType out) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* src = c + i * ldc;
    if (out == DType::f32) {
      std::memcpy(static_cast<float*>(d) + d_offset + i * ldd, src, sizeof(float) * cols);
    } else {
      std::uint16_t* dst = static_cast<std::uint16_t*>(d) + d_offset + i * ldd;
      for (std::int64_t j = 0; j < cols; ++j) dst[j] = float_to_bf16_rne(src[j]);
    }
  }
}

}  // namespace
}  // namespace anychip::kernels::cpu::gemm_detail
