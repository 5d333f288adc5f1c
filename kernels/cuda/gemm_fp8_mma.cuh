// Block-scaled FP8 GEMM on warp-level tensor cores (sm_89 and newer without wgmma):
// mma.sync.aligned.m16n8k32.row.col.f32.<a>.<b>.f32, D[m,n] = sum_b sA[m,b] sB[n/128,b] (A_b B_b^T).
//
// EXACT (f32 outputs): the FP8 values are converted to f16 (exactly: every e4m3 and e5m2
// value is an f16) on their way from shared memory to the registers, and multiplied with
// mma.sync m16n8k16 f16 into f32 accumulators. The FP8 tensor cores of Ada and Hopper keep
// only about 14 bits while summing (DeepSeek-V3, section 3.3), which a bf16 output rounds
// away but an f32 output would show; the f16 path costs half the FP8 rate.
//
// One CTA computes a BM x BN tile of D with WARPS_M x WARPS_N warps; K moves through
// shared memory one 128-wide scale block at a time, STAGES blocks in flight (cp.async,
// 16 bytes per copy, zero-filled past M and N). Rows are padded by 16 bytes so that the
// fragment loads (one 32-bit word per lane, row g = lane/4, word t = lane%4) hit 32
// different banks. Each K block is summed into a fresh accumulator and promoted into the
// output accumulator with sA*sB, as on Hopper (gemm_fp8_sm90.cuh).

namespace anychip {
namespace mma {

#define ANYCHIP_MMA_FP8(AT, BT)                                                                    \
  asm volatile("mma.sync.aligned.m16n8k32.row.col.f32." AT "." BT ".f32 "                          \
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"                 \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                    \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]))

// d += A (16x32, row) * B (32x8, col), FP8 operands packed four to a register.
template <class AF, class BF>
__device__ __forceinline__ void mma_fp8(float* d, const u32* a, const u32* b) {
  constexpr bool A4 = IsE4M3<AF>::value, B4 = IsE4M3<BF>::value;
  if constexpr (A4 && B4) ANYCHIP_MMA_FP8("e4m3", "e4m3");
  else if constexpr (A4) ANYCHIP_MMA_FP8("e4m3", "e5m2");
  else if constexpr (B4) ANYCHIP_MMA_FP8("e5m2", "e4m3");
  else ANYCHIP_MMA_FP8("e5m2", "e5m2");
}

constexpr int kRowBytes = 128 + 16;  // one K block of a row, padded

__host__ __device__ constexpr int gemm_fp8_smem_bytes(int bm, int bn, int stages) {
  return stages * (bm + bn) * kRowBytes;
}

// Copies K block kb of rows [r0, r0 + ROWS) of a [R, K] FP8 matrix into `tile`.
template <int ROWS, int THREADS, i64 R, i64 K>
__device__ __forceinline__ void load_block(u8* tile, const u8* __restrict__ g, i64 r0, int kb) {
  constexpr int CHUNKS = ROWS * 8;  // 16-byte pieces
#pragma unroll
  for (int c = threadIdx.x; c < CHUNKS; c += THREADS) {
    const int row = c / 8, piece = c % 8;
    const i64 gr = r0 + row;
    const bool valid = gr < R;
    const u8* src = g + (valid ? gr : 0) * K + static_cast<i64>(kb) * 128 + piece * 16;
    cp_async_16(tile + row * kRowBytes + piece * 16, src, valid ? 16 : 0);
  }
}

// Two FP8 values (the low byte first) as a packed f16 pair, exactly.
template <class F> __device__ __forceinline__ u32 fp8x2_to_f16x2(u16 pair) {
  const __half2_raw h =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), IsE4M3<F>::value ? __NV_E4M3 : __NV_E5M2);
  return static_cast<u32>(h.x) | (static_cast<u32>(h.y) << 16);
}

template <i64 M, i64 N, i64 K, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool EXACT, class AF, class BF,
          class SA, class SB, class Out>
__device__ __forceinline__ void gemm_fp8(const u8* __restrict__ a, const void* __restrict__ sa,
                                         const u8* __restrict__ b, const void* __restrict__ sb,
                                         void* __restrict__ d) {
  static_assert(K % 128 == 0, "K must be a multiple of 128");
  static_assert(128 % BN == 0, "BN must divide the 128-wide scale blocks");
  static_assert(STAGES >= 2, "the pipeline needs two stages");
  constexpr int THREADS = 32 * WARPS_M * WARPS_N;
  constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp tile
  constexpr int MT = WM / 16, NT = WN / 8;               // mma tiles per warp
  static_assert(MT * 16 == WM && NT * 8 == WN, "warp tile must be whole mma tiles");
  constexpr int KB = static_cast<int>(K / 128);
  constexpr int STAGE_BYTES = (BM + BN) * kRowBytes;

  extern __shared__ __align__(16) u8 smem[];
  i64 tile_m, tile_n;
  grouped_tile<8>(blockIdx.x, ceil_div(M, BM), ceil_div(N, BN), tile_m, tile_n);
  const i64 m0 = tile_m * BM, n0 = tile_n * BN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int g = lane / 4, t = lane % 4;

  auto issue = [&](int kb) {
    u8* stage = smem + (kb % STAGES) * STAGE_BYTES;
    load_block<BM, THREADS, M, K>(stage, a, m0, kb);
    load_block<BN, THREADS, N, K>(stage + BM * kRowBytes, b, n0, kb);
  };
#pragma unroll
  for (int kb = 0; kb < STAGES - 1; ++kb) {
    if (kb < KB) issue(kb);
    cp_async_commit();
  }

  float out[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) out[i][j][e] = 0.0f;
  const i64 sb_index = (n0 / 128) * KB;
  float next_a[MT][2], next_b;
  auto scales_of = [&](int kb) {
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const i64 row = m0 + wm * WM + i * 16 + g + 8 * h;
        next_a[i][h] = row < M ? load_scale<SA>(sa, row * KB + kb) : 0.0f;
      }
    next_b = load_scale<SB>(sb, sb_index + kb);
  };
  scales_of(0);

  for (int kb = 0; kb < KB; ++kb) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // block kb has landed, and block kb-1's stage is free again
    if (kb + STAGES - 1 < KB) issue(kb + STAGES - 1);
    cp_async_commit();

    // This block's scales were loaded during the previous block; load the next block's.
    float s_a[MT][2];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) s_a[i][h] = next_a[i][h];
    const float s_b = next_b;
    if (kb + 1 < KB) scales_of(kb + 1);

    const u8* ta = smem + (kb % STAGES) * STAGE_BYTES + (wm * WM) * kRowBytes;
    const u8* tb = smem + (kb % STAGES) * STAGE_BYTES + (BM + wn * WN) * kRowBytes;
    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
    if constexpr (EXACT) {
#pragma unroll
      for (int ks = 0; ks < 8; ++ks) {  // k16 steps: two FP8 bytes per register half
        u32 fa[MT][4], fb[NT][2];
        auto pair = [](const u8* p) { return *reinterpret_cast<const u16*>(p); };
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          const u8* p = ta + (i * 16 + g) * kRowBytes + ks * 16 + 2 * t;
          fa[i][0] = fp8x2_to_f16x2<AF>(pair(p));
          fa[i][1] = fp8x2_to_f16x2<AF>(pair(p + 8 * kRowBytes));
          fa[i][2] = fp8x2_to_f16x2<AF>(pair(p + 8));
          fa[i][3] = fp8x2_to_f16x2<AF>(pair(p + 8 * kRowBytes + 8));
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          const u8* p = tb + (j * 8 + g) * kRowBytes + ks * 16 + 2 * t;
          fb[j][0] = fp8x2_to_f16x2<BF>(pair(p));
          fb[j][1] = fp8x2_to_f16x2<BF>(pair(p + 8));
        }
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int j = 0; j < NT; ++j) mma_16816<F16>(acc[i][j], fa[i], fb[j]);
      }
    } else {
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {  // k32 steps: four FP8 bytes per register
        u32 fa[MT][4], fb[NT][2];
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          const u8* p = ta + (i * 16 + g) * kRowBytes + ks * 32 + 4 * t;
          fa[i][0] = *reinterpret_cast<const u32*>(p);
          fa[i][1] = *reinterpret_cast<const u32*>(p + 8 * kRowBytes);
          fa[i][2] = *reinterpret_cast<const u32*>(p + 16);
          fa[i][3] = *reinterpret_cast<const u32*>(p + 8 * kRowBytes + 16);
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          const u8* p = tb + (j * 8 + g) * kRowBytes + ks * 32 + 4 * t;
          fb[j][0] = *reinterpret_cast<const u32*>(p);
          fb[j][1] = *reinterpret_cast<const u32*>(p + 16);
        }
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int j = 0; j < NT; ++j) mma_fp8<AF, BF>(acc[i][j], fa[i], fb[j]);
      }
    }
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const float s0 = s_a[i][0] * s_b, s1 = s_a[i][1] * s_b;
        out[i][j][0] += acc[i][j][0] * s0;
        out[i][j][1] += acc[i][j][1] * s0;
        out[i][j][2] += acc[i][j][2] * s1;
        out[i][j][3] += acc[i][j][3] * s1;
      }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const i64 row = m0 + wm * WM + i * 16 + g;
      const i64 col = n0 + wn * WN + j * 8 + 2 * t;
      if (row < M) store_pair<Out, N>(d, row, col, out[i][j][0], out[i][j][1]);
      if (row + 8 < M) store_pair<Out, N>(d, row + 8, col, out[i][j][2], out[i][j][3]);
    }
}

}  // namespace mma
}  // namespace anychip
