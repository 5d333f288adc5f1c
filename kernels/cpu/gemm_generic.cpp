// The portable GEMM engine (Isa::generic): plain C++ for any CPU, the fallback when
// neither AVX-512 BF16 nor AVX2+FMA is available (or ANYCHIP_CPU_ISA=generic). Inputs are
// decoded to fp32 while packing; the 4 x 16 micro-kernel is left to the compiler's
// baseline vectoriser (SSE2 on x86-64).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/cpu/fp8_decode.hpp"
#include "kernels/cpu/gemm_kernels.hpp"
#include "kernels/cpu/gemm_tile.hpp"

namespace anychip::kernels::cpu::gemm_detail {
namespace {

struct PortableEngine {
  using APack = float;
  using BPack = float;
  static constexpr int mr = 4, nr = 16, kc = 256, kstep = 1;
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
      float acc[MR][nr] = {};
      for (std::int64_t k = k0; k < k0 + block; ++k) {
        const float* bk = b + k * nr;
        for (int i = 0; i < MR; ++i) {
          const float ai = a[i * lda + k];
          for (int j = 0; j < nr; ++j) acc[i][j] += ai * bk[j];
        }
      }
      const bool add = accumulate || kb > 0;  // false: c is written, not read
      for (int i = 0; i < MR; ++i) {
        const float s = Scaled ? sa[kb * sa_stride + i] * sb[kb] : 1.0f;
        for (int j = 0; j < nr; ++j) {
          const float v = Scaled ? acc[i][j] * s : acc[i][j];
          c[i * ldc + j] = add ? c[i * ldc + j] + v : v;
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

Engine engine_generic(const GemmArgs& g) { return make_engine<PortableEngine>("generic f32", 4 * 64, 256); }

}  // namespace anychip::kernels::cpu::gemm_detail
