// The memory-bound ops around the GEMMs: add, silu_mul, rmsnorm. One pass over the data,
// 16-byte accesses (8 elements per chunk) where the shapes keep every chunk aligned, else
// one element at a time; fp32 arithmetic; outputs rounded once (nearest even).

namespace anychip {

// y = a + b over NUMEL elements; each thread handles UNROLL chunks, CTAs of blockDim.x.
template <i64 NUMEL, int UNROLL, class D>
__device__ __forceinline__ void add(const void* __restrict__ a, const void* __restrict__ b, void* __restrict__ y) {
  constexpr i64 CHUNKS = NUMEL / 8;
  const i64 first = static_cast<i64>(blockIdx.x) * UNROLL * blockDim.x + threadIdx.x;
#pragma unroll
  for (int u = 0; u < UNROLL; ++u) {
    const i64 ch = first + static_cast<i64>(u) * blockDim.x;
    if (ch < CHUNKS) {
      float va[8], vb[8];
      load8<D>(a, ch * 8, va);
      load8<D>(b, ch * 8, vb);
#pragma unroll
      for (int e = 0; e < 8; ++e) va[e] += vb[e];
      store8<D>(y, ch * 8, va);
    } else if (ch == CHUNKS) {  // the tail, fewer than 8 elements
      for (i64 i = CHUNKS * 8; i < NUMEL; ++i) store_elem<D>(y, i, load_elem<D>(a, i) + load_elem<D>(b, i));
    }
  }
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// x [ROWS, 2*DIM] -> y [ROWS, DIM]: y = silu(x[:, :DIM]) * x[:, DIM:]. V = 8 needs DIM % 8 == 0.
template <i64 ROWS, i64 DIM, int V, int UNROLL, class D>
__device__ __forceinline__ void silu_mul(const void* __restrict__ x, void* __restrict__ y) {
  constexpr i64 CHUNKS = ROWS * DIM / V;
  static_assert(DIM % V == 0, "a chunk stays in one row");
  const i64 first = static_cast<i64>(blockIdx.x) * UNROLL * blockDim.x + threadIdx.x;
#pragma unroll
  for (int u = 0; u < UNROLL; ++u) {
    const i64 ch = first + static_cast<i64>(u) * blockDim.x;
    if (ch >= CHUNKS) return;
    const i64 i = ch * V, r = i / DIM, c = i % DIM;
    const i64 gate = r * 2 * DIM + c, up = gate + DIM;
    if constexpr (V == 8) {
      float g[8], v[8];
      load8<D>(x, gate, g);
      load8<D>(x, up, v);
#pragma unroll
      for (int e = 0; e < 8; ++e) g[e] = silu(g[e]) * v[e];
      store8<D>(y, i, g);
    } else {
      store_elem<D>(y, i, silu(load_elem<D>(x, gate)) * load_elem<D>(x, up));
    }
  }
}

// y[r,:] = x[r,:] / sqrt(mean(x[r,:]^2) + eps) * w: one CTA of THREADS per row, the row
// held in registers between the sum of squares and the scaling.
template <i64 ROWS, i64 DIM, int V, int THREADS, class D, class W>
__device__ __forceinline__ void rmsnorm(const void* __restrict__ x, const void* __restrict__ w, void* __restrict__ y,
                                        float eps) {
  constexpr i64 CHUNKS = DIM / V;
  constexpr int CPT = static_cast<int>(ceil_div(CHUNKS, THREADS));
  static_assert(DIM % V == 0, "a chunk stays in one row");
  __shared__ float partial[THREADS / 32];
  const i64 row = blockIdx.x;
  const i64 base = row * DIM;
  float v[CPT][V];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < CPT; ++i) {
    const i64 ch = threadIdx.x + static_cast<i64>(i) * THREADS;
    if (ch < CHUNKS) {
      if constexpr (V == 8) load8<D>(x, base + ch * 8, v[i]);
      else v[i][0] = load_elem<D>(x, base + ch);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) v[i][e] = 0.0f;
    }
#pragma unroll
    for (int e = 0; e < V; ++e) sum = fmaf(v[i][e], v[i][e], sum);
  }
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int k = 0; k < THREADS / 32; ++k) total += partial[k];
  const float inv_rms = 1.0f / sqrtf(total / static_cast<float>(DIM) + eps);
#pragma unroll
  for (int i = 0; i < CPT; ++i) {
    const i64 ch = threadIdx.x + static_cast<i64>(i) * THREADS;
    if (ch >= CHUNKS) continue;
    if constexpr (V == 8) {
      float wv[8];
      load8<W>(w, ch * 8, wv);
#pragma unroll
      for (int e = 0; e < 8; ++e) v[i][e] = v[i][e] * inv_rms * wv[e];
      store8<D>(y, base + ch * 8, v[i]);
    } else {
      store_elem<D>(y, base + ch, v[i][0] * inv_rms * load_elem<W>(w, ch));
    }
  }
}

}  // namespace anychip
