// Block quantization to FP8 and back (anychip/quantize.hpp): one pass over the data.
//
// quantize: every scale block (BR x BC elements) is read once into registers by a team of
// TPB threads, its amax reduced across the team, its scale written, and each element
// divided by the scale (correctly rounded, as the reference) and converted to FP8 with
// round-to-nearest-even and finite saturation (cuda_fp8.h's __nv_cvt_float_to_fp8 with
// __NV_SATFINITE: anychip's rule bit for bit). Elements travel in chunks of V (8 when
// rows allow 16-byte accesses, else 1). Small blocks (1x128 activations: 16 threads of 8
// elements) put several teams in one CTA and reduce with warp shuffles; large blocks
// (128x128 weights) take the whole CTA and reduce through shared memory.
//
// dequantize: out = fp8 * scale, rounded once to the output type; 8 elements per chunk
// where the scale blocks and rows allow it.

namespace anychip {

template <int TPB> __device__ __forceinline__ float team_max(float v, float* scratch) {
  if constexpr (TPB <= 32) {
    return warp_max(v, TPB);
  } else {
    v = warp_max(v);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // scratch may still be read from the previous block
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = scratch[0];
#pragma unroll
    for (int w = 1; w < TPB / 32; ++w) v = fmaxf(v, scratch[w]);
    return v;
  }
}

template <i64 ROWS, i64 COLS, int BR, int BC, int V, int TPB, int THREADS, class In, class Fmt, class S>
__device__ __forceinline__ void quantize_fp8(const void* __restrict__ x, u8* __restrict__ q, void* __restrict__ scales) {
  constexpr i64 SR = ceil_div(ROWS, BR), SC = ceil_div(COLS, BC);
  constexpr int CHUNKS_PER_ROW = BC / V;
  constexpr int CHUNKS = BR * CHUNKS_PER_ROW;
  constexpr int CPT = static_cast<int>(ceil_div(CHUNKS, TPB));  // chunks per thread
  static_assert(BC % V == 0, "a chunk never straddles two blocks");
  __shared__ float scratch[THREADS / 32 > 0 ? THREADS / 32 : 1];

  const int team = threadIdx.x / TPB, member = threadIdx.x % TPB;
  const i64 block = static_cast<i64>(blockIdx.x) * (THREADS / TPB) + team;
  const bool live = block < SR * SC;  // uniform across a team
  const i64 br = live ? block / SC : 0, bc = live ? block % SC : 0;

  float v[CPT][V];
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < CPT; ++i) {
    const int ch = member + i * TPB;
    const i64 r = br * BR + ch / CHUNKS_PER_ROW, c = bc * BC + (ch % CHUNKS_PER_ROW) * V;
    const bool ok = live && ch < CHUNKS && r < ROWS && c < COLS;
    if constexpr (V == 8) {
      if (ok) load8<In>(x, r * COLS + c, v[i]);
    } else {
      if (ok) v[i][0] = load_elem<In>(x, r * COLS + c);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) {
      if (!ok) v[i][e] = 0.0f;
      const float a = fabsf(v[i][e]);
      amax = a > amax ? a : amax;  // a NaN compares false and is skipped
    }
  }
  amax = team_max<TPB>(amax, scratch);
  // Every member needs the scale as stored (UE8M0 rounds it): the team's first member
  // makes it and hands it over (a shuffle inside a warp, shared memory across warps).
  float s = 0.0f;
  if (live && member == 0) s = BlockScale<Fmt, S>::make(amax, scales, br * SC + bc);
  if constexpr (TPB <= 32) {
    s = __shfl_sync(0xFFFFFFFFu, s, (threadIdx.x % 32) / TPB * TPB);
  } else {
    __syncthreads();  // team_max's readers are done with scratch
    if (member == 0) scratch[0] = s;
    __syncthreads();
    s = scratch[0];
  }
  if (!live) return;

#pragma unroll
  for (int i = 0; i < CPT; ++i) {
    const int ch = member + i * TPB;
    const i64 r = br * BR + ch / CHUNKS_PER_ROW, c = bc * BC + (ch % CHUNKS_PER_ROW) * V;
    if (ch >= CHUNKS || r >= ROWS || c >= COLS) continue;
    if constexpr (V == 8) {
      u64 packed = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) packed |= static_cast<u64>(float_to_fp8<Fmt>(__fdiv_rn(v[i][e], s))) << (8 * e);
      *reinterpret_cast<u64*>(q + r * COLS + c) = packed;
    } else {
      q[r * COLS + c] = float_to_fp8<Fmt>(__fdiv_rn(v[i][0], s));
    }
  }
}

template <i64 ROWS, i64 COLS, int BR, int BC, int V, int UNROLL, class Fmt, class S, class Out>
__device__ __forceinline__ void dequantize(const u8* __restrict__ q, const void* __restrict__ scales,
                                           void* __restrict__ out) {
  constexpr i64 SC = ceil_div(COLS, BC);
  constexpr i64 CHUNKS = ROWS * COLS / V;
  static_assert(COLS % V == 0 && BC % V == 0, "chunks stay inside one row and one block");
  const i64 first = (static_cast<i64>(blockIdx.x) * UNROLL) * blockDim.x + threadIdx.x;
#pragma unroll
  for (int u = 0; u < UNROLL; ++u) {
    const i64 ch = first + static_cast<i64>(u) * blockDim.x;
    if (ch >= CHUNKS) return;
    const i64 i = ch * V, r = i / COLS, c = i % COLS;
    const float s = load_scale<S>(scales, (r / BR) * SC + c / BC);
    if constexpr (V == 8) {
      const u64 packed = *reinterpret_cast<const u64*>(q + i);
      float v[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = fp8_to_float<Fmt>(static_cast<u8>(packed >> (8 * e))) * s;
      store8<Out>(out, i, v);
    } else {
      store_elem<Out>(out, i, fp8_to_float<Fmt>(q[i]) * s);
    }
  }
}

}  // namespace anychip
