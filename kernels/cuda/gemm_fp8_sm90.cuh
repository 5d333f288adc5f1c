// Block-scaled FP8 GEMM for Hopper (sm_90a): D[m,n] = sum_b sA[m,b] sB[n/128,b] (A_b B_b^T).
//
// One CTA computes a BM x BN tile of D (BM 64 or 128, BN 16..128 dividing 128, so a tile
// never straddles two 128-wide B scale blocks). Warpgroups:
//   consumers 0 .. BM/64-1   each owns 64 rows; issues wgmma.mma_async m64nBNk32 (e4m3 /
//                            e5m2 operands, both from shared memory), 4 per 128-wide K
//                            block, into a fresh fp32 accumulator, then promotes it into
//                            a separate fp32 accumulator with sA*sB (DeepSeek-V3's recipe:
//                            the tensor core's FP8 sum keeps about 14 bits, so no partial
//                            runs longer than one scale block);
//   producer (the last)      one thread issues the tensor memory accelerator's bulk tensor
//                            copies (cp.async.bulk.tensor, CUtensorMaps encoded on the host)
//                            of the A and B tiles, STAGES K blocks ahead.
// Stages are handed over with mbarriers: `full` (TMA bytes landed; expect_tx) and `empty`
// (every consumer warp is done reading). The tiles land 128-byte swizzled, which is the
// layout the wgmma shared-memory descriptors describe (K-major, SWIZZLE_128B); a K step of
// 32 FP8 values advances the descriptor's start address by 32 bytes inside the swizzle atom.
// Rows past M and columns past N read as zeros (TMA out-of-bounds fill) and are not stored;
// K must be a multiple of 128. The epilogue stores straight from the accumulator fragments.

namespace anychip {
namespace sm90 {

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "gemm_fp8_sm90.cuh needs --gpu-architecture=sm_90a (wgmma)"
#endif

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accesses of an accumulator register across wgmma fences.
__device__ __forceinline__ void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

// Shared-memory matrix descriptor of a K-major tile with 128-byte rows, 128-byte swizzled
// (layout type 1), 8-row core matrix groups 1024 bytes apart. The tile must be 1024-byte
// aligned; `p` may point 32/64/96 bytes into it to select a K step.
__device__ __forceinline__ u64 desc_sw128(const void* p) {
  const u64 addr = smem_addr(p);
  return ((addr & 0x3FFFFull) >> 4) | (1ull << 16) | (static_cast<u64>(1024 >> 4) << 32) | (1ull << 62);
}

#define ANYCHIP_F4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define ANYCHIP_F8(i) ANYCHIP_F4(i), ANYCHIP_F4(i + 4)
#define ANYCHIP_F16(i) ANYCHIP_F8(i), ANYCHIP_F8(i + 8)
#define ANYCHIP_F32(i) ANYCHIP_F16(i), ANYCHIP_F16(i + 16)
#define ANYCHIP_F64(i) ANYCHIP_F32(i), ANYCHIP_F32(i + 32)

#define ANYCHIP_R8 "%0, %1, %2, %3, %4, %5, %6, %7"
#define ANYCHIP_R16 ANYCHIP_R8 ", %8, %9, %10, %11, %12, %13, %14, %15"
#define ANYCHIP_R32 ANYCHIP_R16 ", %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define ANYCHIP_R64                                                                              \
  ANYCHIP_R32 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
              "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

// One wgmma.mma_async of SHAPE with operand types AT, BT; DA, DB, P name the descriptor
// and scale-d operands after the accumulator registers.
#define ANYCHIP_WGMMA(SHAPE, REGS, DA, DB, P, AT, BT, ...)                                         \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " P ", 0;\n"                                       \
               "wgmma.mma_async.sync.aligned." SHAPE ".f32." AT "." BT " {" REGS "}, " DA ", " DB \
               ", p, 1, 1;\n}\n"                                                                  \
               : __VA_ARGS__                                                                      \
               : "l"(desc_a), "l"(desc_b), "r"(scale_d))

#define ANYCHIP_WGMMA_TYPES(SHAPE, REGS, DA, DB, P, ...)                                           \
  if constexpr (A_IS_E4M3 && B_IS_E4M3) ANYCHIP_WGMMA(SHAPE, REGS, DA, DB, P, "e4m3", "e4m3", __VA_ARGS__); \
  else if constexpr (A_IS_E4M3) ANYCHIP_WGMMA(SHAPE, REGS, DA, DB, P, "e4m3", "e5m2", __VA_ARGS__);         \
  else if constexpr (B_IS_E4M3) ANYCHIP_WGMMA(SHAPE, REGS, DA, DB, P, "e5m2", "e4m3", __VA_ARGS__);         \
  else ANYCHIP_WGMMA(SHAPE, REGS, DA, DB, P, "e5m2", "e5m2", __VA_ARGS__)

// d (+)= A * B for one 64 x BN x 32 step; scale_d == 0 overwrites d.
template <int BN, class AF, class BF>
__device__ __forceinline__ void wgmma_fp8(float* d, u64 desc_a, u64 desc_b, u32 scale_d) {
  constexpr bool A_IS_E4M3 = IsE4M3<AF>::value, B_IS_E4M3 = IsE4M3<BF>::value;
  if constexpr (BN == 16) {
    ANYCHIP_WGMMA_TYPES("m64n16k32", ANYCHIP_R8, "%8", "%9", "%10", ANYCHIP_F8(0));
  } else if constexpr (BN == 32) {
    ANYCHIP_WGMMA_TYPES("m64n32k32", ANYCHIP_R16, "%16", "%17", "%18", ANYCHIP_F16(0));
  } else if constexpr (BN == 64) {
    ANYCHIP_WGMMA_TYPES("m64n64k32", ANYCHIP_R32, "%32", "%33", "%34", ANYCHIP_F32(0));
  } else {
    static_assert(BN == 128, "BN must be 16, 32, 64 or 128");
    ANYCHIP_WGMMA_TYPES("m64n128k32", ANYCHIP_R64, "%64", "%65", "%66", ANYCHIP_F64(0));
  }
}

// Bytes of dynamic shared memory the kernel needs (the host asks for the same).
__host__ __device__ constexpr int gemm_fp8_smem_bytes(int bm, int bn, int stages) {
  return 1024 + stages * (bm + bn) * 128 + 2 * stages * 8;
}

template <i64 M, i64 N, i64 K, int BM, int BN, int STAGES, class AF, class BF, class SA, class SB, class Out>
__device__ __forceinline__ void gemm_fp8(const TensorMap* map_a, const TensorMap* map_b, const void* __restrict__ sa,
                                         const void* __restrict__ sb, void* __restrict__ d) {
  static_assert(K % 128 == 0, "K must be a multiple of 128");
  static_assert(BM == 64 || BM == 128, "BM must be 64 or 128");
  static_assert(128 % BN == 0, "BN must divide the 128-wide scale blocks");
  constexpr int CONSUMERS = BM / 64;  // consumer warpgroups
  constexpr int KB = static_cast<int>(K / 128);
  constexpr u32 A_BYTES = BM * 128, B_BYTES = BN * 128;

  extern __shared__ u8 smem_raw[];
  // 128-byte swizzled tiles must start on 1024-byte boundaries.
  u8* smem = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  u8* tile_a = smem;
  u8* tile_b = smem + STAGES * A_BYTES;
  u64* full = reinterpret_cast<u64*>(tile_b + STAGES * B_BYTES);
  u64* empty = full + STAGES;

  i64 tile_m, tile_n;
  grouped_tile<8>(blockIdx.x, ceil_div(M, BM), ceil_div(N, BN), tile_m, tile_n);
  const int m0 = static_cast<int>(tile_m) * BM, n0 = static_cast<int>(tile_n) * BN;
  const int warpgroup = threadIdx.x / 128;
  const int producer_thread = CONSUMERS * 128;

  if (threadIdx.x == producer_thread) {
    prefetch_tensor_map(map_a);
    prefetch_tensor_map(map_b);
    for (int s = 0; s < STAGES; ++s) {
      mbarrier_init(&full[s], 1);
      mbarrier_init(&empty[s], CONSUMERS * 4);
    }
    fence_barrier_init();
    fence_proxy_async();
  }
  __syncthreads();

  if (warpgroup == CONSUMERS) {
    // The producer warpgroup gives its registers to the consumers.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
    if (threadIdx.x == producer_thread) {
      for (int kb = 0; kb < KB; ++kb) {
        const int s = kb % STAGES;
        const u32 phase = (kb / STAGES) & 1;
        mbarrier_wait(&empty[s], phase ^ 1);  // the first pass finds every stage empty
        mbarrier_arrive_expect_tx(&full[s], A_BYTES + B_BYTES);
        tma_load_2d(tile_a + s * A_BYTES, map_a, &full[s], kb * 128, m0);
        tma_load_2d(tile_b + s * B_BYTES, map_b, &full[s], kb * 128, n0);
      }
    }
    return;
  }

  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
  const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  // This thread's two rows of the wgmma fragment (and the columns 8j + 2(lane%4) + {0,1}).
  const i64 r0 = m0 + warpgroup * 64 + warp * 16 + lane / 4, r1 = r0 + 8;
  const i64 sb_base = static_cast<i64>(n0 / 128) * KB;
  float acc[BN / 2], out[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) out[i] = 0.0f;

  // Scales are loaded one K block ahead, so that their latency hides behind a block of MMAs.
  auto scales_of = [&](int kb, float& a0, float& a1, float& b) {
    a0 = r0 < M ? load_scale<SA>(sa, r0 * KB + kb) : 0.0f;
    a1 = r1 < M ? load_scale<SA>(sa, r1 * KB + kb) : 0.0f;
    b = load_scale<SB>(sb, sb_base + kb);
  };
  float next_a0, next_a1, next_b;
  scales_of(0, next_a0, next_a1, next_b);

  for (int kb = 0; kb < KB; ++kb) {
    const int s = kb % STAGES;
    const u32 phase = (kb / STAGES) & 1;
    const float sa0 = next_a0, sa1 = next_a1, sbk = next_b;
    if (kb + 1 < KB) scales_of(kb + 1, next_a0, next_a1, next_b);
    mbarrier_wait(&full[s], phase);

#pragma unroll
    for (int i = 0; i < BN / 2; ++i) fence_operand(acc[i]);
    wgmma_fence();
    const u8* a = tile_a + s * A_BYTES + warpgroup * 64 * 128;
    const u8* b = tile_b + s * B_BYTES;
#pragma unroll
    for (int k = 0; k < 4; ++k) wgmma_fp8<BN, AF, BF>(acc, desc_sw128(a + 32 * k), desc_sw128(b + 32 * k), k);
    wgmma_commit();
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) fence_operand(acc[i]);
    wgmma_wait<0>();
    if (lane == 0) mbarrier_arrive(&empty[s]);  // this warp is done with the stage

    const float s0 = sa0 * sbk, s1 = sa1 * sbk;
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) out[i] += acc[i] * ((i % 4) < 2 ? s0 : s1);
  }

#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const i64 col = n0 + 8 * j + 2 * (lane % 4);
    if (r0 < M) store_pair<Out, N>(d, r0, col, out[4 * j + 0], out[4 * j + 1]);
    if (r1 < M) store_pair<Out, N>(d, r1, col, out[4 * j + 2], out[4 * j + 3]);
  }
}

}  // namespace sm90
}  // namespace anychip
