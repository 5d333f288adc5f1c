// A CPU emulation of what anychip's CUDA kernels use (run.sh says what it is for):
//   threads   one std::thread per CUDA thread, one CTA at a time; __syncthreads and the
//             warps' convergence points are std::barriers; a thread that returns drops out;
//   warps     shuffles, mma.sync (m16n8k16 bf16/f16, m16n8k32 e4m3/e5m2) and ldmatrix
//             .x2.trans go through per-warp exchange arrays, with the fragment layouts of
//             the PTX ISA manual;
//   memory    __shared__ variables become statics (one CTA runs at a time), dynamic shared
//             memory is one buffer whose offsets are the "shared addresses"; cp.async copies
//             at once;
//   Hopper    mbarriers (arrival counts, transaction bytes, phases), the TMA's 2-D tiled copy
//             with zero fill and the 128-byte swizzle (address bits 4-6 ^= bits 7-9), and
//             wgmma reading K-major 128-byte-swizzled tiles through shared-memory descriptors.
// Host compilers see the kernels through render_for_host.py, which swaps each PTX
// wrapper's body for the function of the same name here.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <math.h>

#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __grid_constant__
#define __grid_constant__

namespace emu {
struct Mbar { int count = 0, pending = 0; long tx = 0; unsigned phase = 0; };
inline std::map<std::size_t, Mbar> g_bars;  // by shared-memory offset
struct Dim { unsigned x = 1, y = 1, z = 1; };
inline thread_local Dim tls_thread, tls_block;
inline Dim g_block_dim, g_grid_dim;
inline std::barrier<>* g_cta_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> g_warp_barriers;
inline std::vector<std::byte> g_dynamic_smem;
struct WarpEx {
  std::uint32_t u[32];
  const void* p[32];
  std::uint32_t a[32][4], b[32][2];
};
inline std::vector<WarpEx> g_ex;

inline int lane() { return tls_thread.x % 32; }
inline int warp() { return tls_thread.x / 32; }
inline void warp_sync() { g_warp_barriers[warp()]->arrive_and_wait(); }

inline std::uint32_t exchange(std::uint32_t v, int src) {
  g_ex[warp()].u[lane()] = v;
  warp_sync();
  const std::uint32_t r = g_ex[warp()].u[src];
  warp_sync();
  return r;
}

// Runs fn on every thread of every CTA of the grid, one CTA at a time.
inline void launch(Dim grid, Dim block, std::size_t smem, const std::function<void()>& fn) {
  const unsigned n = block.x * block.y * block.z;
  g_block_dim = block;
  g_grid_dim = grid;
  g_dynamic_smem.assign(smem + 2048, std::byte{0x5A});
  g_bars.clear();
  g_ex.assign((n + 31) / 32, WarpEx{});
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> cta(n);
        g_cta_barrier = &cta;
        g_warp_barriers.clear();
        for (unsigned w = 0; w < (n + 31) / 32; ++w) g_warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < n; ++t)
          threads.emplace_back([&, t] {
            tls_thread = {t, 0, 0};
            tls_block = {bx, by, bz};
            fn();
            // Keep the warp barriers whole for lanes still running (a returned thread no
            // longer takes part): drop out of both barriers.
            g_warp_barriers[t / 32]->arrive_and_drop();
            g_cta_barrier->arrive_and_drop();
          });
        for (auto& th : threads) th.join();
      }
}
}  // namespace emu

#define threadIdx emu::tls_thread
#define blockIdx emu::tls_block
#define blockDim emu::g_block_dim
#define gridDim emu::g_grid_dim

inline void __syncthreads() { emu::g_cta_barrier->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xFFFFFFFFu) { emu::warp_sync(); }
template <class T> inline T __ldg(const T* p) { return *p; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline std::size_t __cvta_generic_to_shared(const void* p) { return static_cast<const std::byte*>(p) - emu::g_dynamic_smem.data(); }

inline float __shfl_xor_sync(unsigned, float v, int o, int = 32) {
  return __uint_as_float(emu::exchange(__float_as_uint(v), emu::lane() ^ o));
}
inline float __shfl_sync(unsigned, float v, int src, int = 32) {
  return __uint_as_float(emu::exchange(__float_as_uint(v), src));
}

namespace emu {
inline float b16_to_float(std::uint16_t h, bool bf16) {
  if (bf16) return __uint_as_float(std::uint32_t(h) << 16);
  __half x; std::memcpy(&x, &h, 2); return __half2float(x);
}
// m16n8k16, A row-major bf16/f16 pairs, B col-major pairs, f32 accumulate.
inline void mma_16816(float* d, const std::uint32_t* a, const std::uint32_t* b, bool bf16) {
  WarpEx& ex = g_ex[warp()];
  for (int i = 0; i < 4; ++i) ex.a[lane()][i] = a[i];
  for (int i = 0; i < 2; ++i) ex.b[lane()][i] = b[i];
  warp_sync();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    auto put = [&](std::uint32_t w, int r, int c) {
      A[r][c] = b16_to_float(w & 0xFFFF, bf16); A[r][c + 1] = b16_to_float(w >> 16, bf16);
    };
    put(ex.a[l][0], g, 2 * t); put(ex.a[l][1], g + 8, 2 * t); put(ex.a[l][2], g, 2 * t + 8); put(ex.a[l][3], g + 8, 2 * t + 8);
    B[2 * t][g] = b16_to_float(ex.b[l][0] & 0xFFFF, bf16); B[2 * t + 1][g] = b16_to_float(ex.b[l][0] >> 16, bf16);
    B[2 * t + 8][g] = b16_to_float(ex.b[l][1] & 0xFFFF, bf16); B[2 * t + 9][g] = b16_to_float(ex.b[l][1] >> 16, bf16);
  }
  warp_sync();
  const int g = lane() / 4, t = lane() % 4;
  for (int e = 0; e < 4; ++e) {
    const int r = g + 8 * (e >> 1), c = 2 * t + (e & 1);
    float s = d[e];
    for (int k = 0; k < 16; ++k) s += A[r][k] * B[k][c];
    d[e] = s;
  }
}
inline float fp8(std::uint8_t v, bool e4m3) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(v, e4m3 ? __NV_E4M3 : __NV_E5M2)));
}
inline void mma_fp8(float* d, const std::uint32_t* a, const std::uint32_t* b, bool a4, bool b4) {
  WarpEx& ex = g_ex[warp()];
  for (int i = 0; i < 4; ++i) ex.a[lane()][i] = a[i];
  for (int i = 0; i < 2; ++i) ex.b[lane()][i] = b[i];
  warp_sync();
  float A[16][32], B[32][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; ++i) {
      A[g][4 * t + i] = fp8((ex.a[l][0] >> (8 * i)) & 0xFF, a4);
      A[g + 8][4 * t + i] = fp8((ex.a[l][1] >> (8 * i)) & 0xFF, a4);
      A[g][16 + 4 * t + i] = fp8((ex.a[l][2] >> (8 * i)) & 0xFF, a4);
      A[g + 8][16 + 4 * t + i] = fp8((ex.a[l][3] >> (8 * i)) & 0xFF, a4);
      B[4 * t + i][g] = fp8((ex.b[l][0] >> (8 * i)) & 0xFF, b4);
      B[16 + 4 * t + i][g] = fp8((ex.b[l][1] >> (8 * i)) & 0xFF, b4);
    }
  }
  warp_sync();
  const int g = lane() / 4, t = lane() % 4;
  for (int e = 0; e < 4; ++e) {
    const int r = g + 8 * (e >> 1), c = 2 * t + (e & 1);
    float s = d[e];
    for (int k = 0; k < 32; ++k) s += A[r][k] * B[k][c];
    d[e] = s;
  }
}
// ldmatrix .x2 .trans: lanes 0-7 give the rows of matrix 0, lanes 8-15 of matrix 1.
inline void ldmatrix_x2_trans(std::uint32_t& r0, std::uint32_t& r1, const void* row) {
  WarpEx& ex = g_ex[warp()];
  ex.p[lane()] = row;
  warp_sync();
  const int g = lane() / 4, t = lane() % 4;
  auto elem = [&](int m, int r, int c) {
    std::uint16_t v; std::memcpy(&v, static_cast<const std::uint16_t*>(ex.p[m * 8 + r]) + c, 2); return v;
  };
  r0 = std::uint32_t(elem(0, 2 * t, g)) | (std::uint32_t(elem(0, 2 * t + 1, g)) << 16);
  r1 = std::uint32_t(elem(1, 2 * t, g)) | (std::uint32_t(elem(1, 2 * t + 1, g)) << 16);
  warp_sync();
}
inline void cp_async_16(void* dst, const void* src, int valid) {
  std::memset(dst, 0, 16);
  if (valid > 0) std::memcpy(dst, src, valid);
}
}  // namespace emu

// ---- Hopper: mbarrier, TMA (128-byte swizzle), wgmma from shared-memory descriptors ----------
namespace emu {
inline std::mutex g_bar_mutex;
inline std::byte* smem_base() { return g_dynamic_smem.data(); }
inline std::size_t off(const void* p) { return static_cast<const std::byte*>(p) - smem_base(); }
inline void bar_complete_if_done(Mbar& b) {
  if (b.pending == 0 && b.tx == 0) { ++b.phase; b.pending = b.count; }
}
inline void mbar_init(void* bar, unsigned count) {
  std::lock_guard l(g_bar_mutex); g_bars[off(bar)] = Mbar{int(count), int(count), 0, 0};
}
inline void mbar_arrive(void* bar) {
  std::lock_guard l(g_bar_mutex); Mbar& b = g_bars.at(off(bar)); --b.pending; bar_complete_if_done(b);
}
inline void mbar_arrive_expect_tx(void* bar, unsigned bytes) {
  std::lock_guard l(g_bar_mutex); Mbar& b = g_bars.at(off(bar)); b.tx += bytes; --b.pending; bar_complete_if_done(b);
}
inline void mbar_complete_tx(void* bar, unsigned bytes) {
  std::lock_guard l(g_bar_mutex); Mbar& b = g_bars.at(off(bar)); b.tx -= bytes; bar_complete_if_done(b);
}
inline void mbar_wait(void* bar, unsigned parity) {
  for (long spins = 0;; ++spins) {
    {
      std::lock_guard l(g_bar_mutex);
      if ((g_bars.at(off(bar)).phase & 1u) != parity) return;
    }
    if (spins > 20000000) {
      std::lock_guard l(g_bar_mutex);
      std::fprintf(stderr, "mbarrier wait hangs: thread %u waits on %zu parity %u\n", tls_thread.x, off(bar), parity);
      for (auto& [o, b] : g_bars) std::fprintf(stderr, "  bar %zu count %d pending %d tx %ld phase %u\n", o, b.count, b.pending, b.tx, b.phase);
      std::abort();
    }
    std::this_thread::yield();
  }
}
// Fake tensor map: base, rows, cols, box_rows, box_cols (bytes, 1-byte elements).
inline void tma_load_2d(void* dst, const void* map, void* bar, int inner, int outer) {
  const std::uint64_t* m = static_cast<const std::uint64_t*>(map);
  const std::uint8_t* base = reinterpret_cast<const std::uint8_t*>(m[0]);
  const std::uint64_t rows = m[1], cols = m[2], box_rows = m[3], box_cols = m[4];
  std::uint8_t* d = static_cast<std::uint8_t*>(dst);
  const std::size_t d_off = off(dst);
  if (d_off % 1024) { std::fprintf(stderr, "TMA destination not 1024-aligned\n"); std::abort(); }
  for (std::uint64_t r = 0; r < box_rows; ++r)
    for (std::uint64_t c = 0; c < box_cols; ++c) {
      const std::uint64_t gr = outer + r, gc = inner + c;
      const std::uint8_t v = (gr < rows && gc < cols) ? base[gr * cols + gc] : 0;
      std::size_t a = r * box_cols + c;  // box_cols == 128
      a ^= ((a >> 7) & 7) << 4;
      d[a] = v;
    }
  mbar_complete_tx(bar, unsigned(box_rows * box_cols));
}
// The byte at (row i, byte j) of a K-major, 128-byte-swizzled tile seen through a descriptor.
inline std::uint8_t desc_byte(std::uint64_t desc, int i, int j) {
  const std::size_t start = (desc & 0x3FFF) << 4, sbo = ((desc >> 32) & 0x3FFF) << 4;
  if ((desc >> 62) != 1) { std::fprintf(stderr, "not a 128B-swizzle descriptor\n"); std::abort(); }
  std::size_t a = start + (i / 8) * sbo + (i % 8) * 128 + j;
  a ^= ((a >> 7) & 7) << 4;
  return static_cast<std::uint8_t>(smem_base()[a]);
}
inline void wgmma_fp8(float* d, std::uint64_t da, std::uint64_t db, unsigned scale_d, int n, bool a4, bool b4) {
  const int t = tls_thread.x % 128, w = t / 32, l = t % 32;
  for (int idx = 0; idx < n / 2; ++idx) {
    const int row = 16 * w + l / 4 + 8 * ((idx % 4) / 2), col = (idx / 4) * 8 + 2 * (l % 4) + (idx % 2);
    float s = scale_d ? d[idx] : 0.0f;
    for (int j = 0; j < 32; ++j) s += fp8(desc_byte(da, row, j), a4) * fp8(desc_byte(db, col, j), b4);
    d[idx] = s;
  }
}
}  // namespace emu
