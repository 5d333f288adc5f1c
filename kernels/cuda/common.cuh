// What every anychip CUDA kernel shares: element types and their conversions (one
// definition of the numeric rules, DESIGN.md "Numeric semantics"), 16-byte memory
// accesses, and thin wrappers over the PTX the kernels issue by hand (cp.async, ldmatrix,
// mbarrier, the tensor memory accelerator).
//
// Compiled by NVRTC (-default-device -std=c++17) with the toolkit's headers on the
// include path; no C++ standard library. The rendered wrapper (kernels/cuda/
// cuda_kernels.cpp) includes this file first, then the op's template, then one
// extern "C" __global__ function that instantiates it with the spec's shapes and tiles.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace anychip {

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// ---- element types --------------------------------------------------------------------

// Storage types of float tensors; FP8 data and UE8M0 scales are raw bytes.
struct F32 { typedef float T; static constexpr int bytes = 4; };
struct BF16 { typedef __nv_bfloat16 T; static constexpr int bytes = 2; };
struct F16 { typedef __half T; static constexpr int bytes = 2; };
struct E4M3 { static constexpr int bytes = 1; static constexpr float max = 448.0f; };
struct E5M2 { static constexpr int bytes = 1; static constexpr float max = 57344.0f; };
struct UE8M0 { static constexpr int bytes = 1; };

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

// Round to nearest even (the conversions of cuda_bf16.h / cuda_fp16.h with _rn).
template <class D> __device__ __forceinline__ typename D::T from_float(float x);
template <> __device__ __forceinline__ float from_float<F32>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<BF16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half from_float<F16>(float x) { return __float2half_rn(x); }

// Element i of a float tensor of storage type D, as float.
template <class D> __device__ __forceinline__ float load_elem(const void* p, i64 i) {
  return to_float(static_cast<const typename D::T*>(p)[i]);
}
template <class D> __device__ __forceinline__ void store_elem(void* p, i64 i, float v) {
  static_cast<typename D::T*>(p)[i] = from_float<D>(v);
}

// FP8 code -> float (exact), via cuda_fp8.h.
template <class Fmt> __device__ __forceinline__ float fp8_to_float(u8 code);
template <> __device__ __forceinline__ float fp8_to_float<E4M3>(u8 code) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E4M3)));
}
template <> __device__ __forceinline__ float fp8_to_float<E5M2>(u8 code) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E5M2)));
}

// float -> FP8: round to nearest even, finite saturation (anychip's quantize rule; the
// same as cuda_fp8.h's __nv_cvt_float_to_fp8 with __NV_SATFINITE).
template <class Fmt> __device__ __forceinline__ u8 float_to_fp8(float x);
template <> __device__ __forceinline__ u8 float_to_fp8<E4M3>(float x) {
  return static_cast<u8>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3));
}
template <> __device__ __forceinline__ u8 float_to_fp8<E5M2>(float x) {
  return static_cast<u8>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2));
}

template <class F> struct IsE4M3 { static constexpr bool value = false; };
template <> struct IsE4M3<E4M3> { static constexpr bool value = true; };

// Stores v0, v1 at columns col, col + 1 of row `row` of a row-major [*, N] matrix, the
// columns at N and past skipped; one 8- (f32) or 4-byte (bf16) store when N allows.
template <class Out, i64 N>
__device__ __forceinline__ void store_pair(void* d, i64 row, i64 col, float v0, float v1) {
  const i64 i = row * N + col;
  if (N % 2 == 0 && col + 1 < N) {
    if constexpr (Out::bytes == 4) {
      *reinterpret_cast<float2*>(static_cast<float*>(d) + i) = make_float2(v0, v1);
    } else {
      static_assert(sizeof(typename Out::T) == 2, "a 16-bit output");
      typename Out::T pair[2] = {from_float<Out>(v0), from_float<Out>(v1)};
      *reinterpret_cast<u32*>(static_cast<typename Out::T*>(d) + i) = *reinterpret_cast<const u32*>(pair);
    }
  } else {
    if (col < N) store_elem<Out>(d, i, v0);
    if (col + 1 < N) store_elem<Out>(d, i + 1, v1);
  }
}

// UE8M0 code -> 2^(e-127); 0x00 is the subnormal 2^-127, 0xFF is NaN.
__device__ __forceinline__ float ue8m0_to_float(u8 e) {
  const u32 bits = e == 0 ? 0x00400000u : (e == 0xFF ? 0x7FC00000u : static_cast<u32>(e) << 23);
  return __uint_as_float(bits);
}

// |x| rounded up to a power of two, as a UE8M0 code (anychip::float_to_ue8m0 with
// Rounding::Up and finite saturation: NaN gives 0xFF, past 2^127 gives 0xFE).
__device__ __forceinline__ u8 float_to_ue8m0_up(float x) {
  const u32 a = __float_as_uint(x) & 0x7FFFFFFFu;
  const u32 e = a >> 23, m = a & 0x7FFFFFu;
  const u32 threshold = e != 0 ? 0u : 0x400000u;
  const u32 r = e + (m > threshold ? 1u : 0u);
  if (a > 0x7F800000u) return 0xFF;
  return static_cast<u8>(r >= 0xFFu ? 0xFEu : r);
}

// Scale i of a block-scale array stored as S (F32 or UE8M0).
template <class S> __device__ __forceinline__ float load_scale(const void* p, i64 i);
template <> __device__ __forceinline__ float load_scale<F32>(const void* p, i64 i) {
  return __ldg(static_cast<const float*>(p) + i);
}
template <> __device__ __forceinline__ float load_scale<UE8M0>(const void* p, i64 i) {
  return ue8m0_to_float(__ldg(static_cast<const u8*>(p) + i));
}

// The block scale from a block's amax (anychip::block_scale): max(amax, 1e-4) / fmt_max,
// rounded up to a power of two for UE8M0. Returns the scale and writes its stored form.
template <class Fmt, class S> struct BlockScale;
template <class Fmt> struct BlockScale<Fmt, F32> {
  __device__ __forceinline__ static float make(float amax, void* scales, i64 i) {
    const float clamped = amax > 1e-4f ? amax : 1e-4f;  // a NaN amax counts as 0
    const float s = __fdiv_rn(clamped, Fmt::max);
    static_cast<float*>(scales)[i] = s;
    return s;
  }
};
template <class Fmt> struct BlockScale<Fmt, UE8M0> {
  __device__ __forceinline__ static float make(float amax, void* scales, i64 i) {
    const float clamped = amax > 1e-4f ? amax : 1e-4f;
    const u8 code = float_to_ue8m0_up(__fdiv_rn(clamped, Fmt::max));
    static_cast<u8*>(scales)[i] = code;
    return ue8m0_to_float(code);
  }
};

// ---- small helpers ----------------------------------------------------------------------

// +infinity (NVRTC has no <cmath> and its INFINITY).
__device__ __forceinline__ float inf() { return __int_as_float(0x7F800000); }

__host__ __device__ constexpr i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }
__host__ __device__ constexpr int imin(int a, int b) { return a < b ? a : b; }

// The (row, column) tile of CTA `pid` in a grid of tiles_m x tiles_n output tiles, visited
// GROUP_M row tiles at a time so that the CTAs resident together share rows of A and
// columns of B in L2 (instead of streaming all of A once per column of tiles).
template <int GROUP_M>
__device__ __forceinline__ void grouped_tile(i64 pid, i64 tiles_m, i64 tiles_n, i64& tm, i64& tn) {
  const i64 per_group = GROUP_M * tiles_n;
  const i64 first = pid / per_group * GROUP_M;
  const i64 size = tiles_m - first < GROUP_M ? tiles_m - first : GROUP_M;
  const i64 local = pid % per_group;
  tm = first + local % size;
  tn = local / size;
}

__device__ __forceinline__ float warp_max(float v, int width = 32) {
  for (int o = width / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v, int width = 32) {
  for (int o = width / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

// 16 bytes moved as one access.
struct alignas(16) Vec16 { u32 w[4]; };

// Eight consecutive elements of a float tensor at element index i (a multiple of 8, so the
// access is 16-byte aligned in a buffer that is): one 16-byte access for 16-bit types, two
// for f32.
template <class D> __device__ __forceinline__ void load8(const void* p, i64 i, float* v) {
  const Vec16* src = reinterpret_cast<const Vec16*>(static_cast<const typename D::T*>(p) + i);
#pragma unroll
  for (int h = 0; h < D::bytes / 2; ++h) {
    const Vec16 w = src[h];
    const typename D::T* e = reinterpret_cast<const typename D::T*>(&w);
#pragma unroll
    for (int k = 0; k < 16 / D::bytes; ++k) v[h * (16 / D::bytes) + k] = to_float(e[k]);
  }
}
template <class D> __device__ __forceinline__ void store8(void* p, i64 i, const float* v) {
  Vec16* dst = reinterpret_cast<Vec16*>(static_cast<typename D::T*>(p) + i);
#pragma unroll
  for (int h = 0; h < D::bytes / 2; ++h) {
    Vec16 w;
    typename D::T* e = reinterpret_cast<typename D::T*>(&w);
#pragma unroll
    for (int k = 0; k < 16 / D::bytes; ++k) e[k] = from_float<D>(v[h * (16 / D::bytes) + k]);
    dst[h] = w;
  }
}

__device__ __forceinline__ u32 smem_addr(const void* p) {
  return static_cast<u32>(__cvta_generic_to_shared(p));
}

// ---- cp.async (sm_80+): 16-byte global -> shared copies, zero-filled past `valid` bytes --

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int valid_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
               "r"(valid_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ---- ldmatrix (sm_75+) -------------------------------------------------------------------

// Two 8x8 b16 matrices, transposed: rows given by lanes 0-7 (matrix 0) and 8-15 (matrix 1).
__device__ __forceinline__ void ldmatrix_x2_trans(u32& r0, u32& r1, const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r0), "=r"(r1)
               : "r"(smem_addr(smem_row)));
}

// ---- warp-level tensor cores (sm_80+) -----------------------------------------------------

// d += A (16x16, row) * B (16x8, col): bf16 or f16 operands packed two to a register, f32
// accumulators (fragment layouts of the PTX ISA's mma.m16n8k16).
template <class D> __device__ __forceinline__ void mma_16816(float* d, const u32* a, const u32* b);
template <> __device__ __forceinline__ void mma_16816<BF16>(float* d, const u32* a, const u32* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma_16816<F16>(float* d, const u32* a, const u32* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ---- mbarrier and the tensor memory accelerator (sm_90) ------------------------------------

// A CUtensorMap as the kernel receives it: 128 opaque bytes, passed by value as a
// __grid_constant__ parameter (the host encodes it with cuTensorMapEncodeTiled).
struct alignas(64) TensorMap { u64 opaque[16]; };

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void mbarrier_init(u64* bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
}
// Makes initialised barriers visible to the async proxy (the TMA unit).
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void mbarrier_arrive(u64* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbarrier_arrive_expect_tx(u64* bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
// Blocks until the phase of the given parity has completed.
__device__ __forceinline__ void mbarrier_wait(u64* bar, u32 parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void prefetch_tensor_map(const TensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<u64>(map)) : "memory");
}
// Copies the box at (inner, outer) of a 2-D tensor into shared memory; completes on `bar`
// with the box's bytes (out-of-bounds elements are zero-filled and counted).
__device__ __forceinline__ void tma_load_2d(void* smem, const TensorMap* map, u64* bar, int inner, int outer) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(
          smem_addr(smem)),
      "l"(reinterpret_cast<u64>(map)), "r"(smem_addr(bar)), "r"(inner), "r"(outer)
      : "memory");
}
#endif

}  // namespace anychip
