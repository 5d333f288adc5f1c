// Flash attention on warp-level tensor cores (mma.sync m16n8k16, bf16 or f16 operands,
// fp32 accumulators), sm_80 and newer. Never materialises the Sq x Skv matrix: each CTA
// streams K/V tiles through shared memory and keeps a running max and sum per row
// (online softmax, in the exp2 domain with the scale folded in).
//
// Rows. The query heads that share one KV head are packed into the rows of the MMA:
// row R of the (batch, kv head) problem is query position R / G, head kvh*G + R % G
// (G = HQ / HKV). So GQA/MQA decode (Sq = 1) fills the 16-row MMA with G heads instead of
// wasting 15 of 16 rows. A CTA owns BQ rows (WR = BQ/16 warp rows); each warp row is split
// over WD warps along Dv (each warp keeps Dv/WD output columns in registers, so Dv = 512
// fits), the WD warps of a row each computing the same scores (cheap next to streaming K/V).
//
// Keys. BKV keys per tile, STAGES (1 or 2) tiles in flight with cp.async. Causal masks are
// bottom-right aligned (row q sees keys j <= q + SKV - SQ); tiles wholly past a CTA's last
// visible key are skipped; a row that sees no key outputs 0.
//
// Splits. With few CTAs (decode against a long KV), grid.z = SPLITS CTAs share the keys of
// one row block; each writes its normalised partial output and log2-sum-exp to the scratch
// buffer, and attention_combine merges them. Head dims are zero-padded to the MMA shapes
// in shared memory (Dk to 16, Dv to 8*WD); stores stop at Dv.

namespace anychip {
namespace flash {

// Two floats as a packed pair of D (lo in the low half), rounded to nearest even.
template <class D> __device__ __forceinline__ u32 pack2(float lo, float hi) {
  typename D::T pair[2] = {from_float<D>(lo), from_float<D>(hi)};
  return *reinterpret_cast<const u32*>(pair);
}

__host__ __device__ constexpr int round_up(int a, int b) { return (a + b - 1) / b * b; }

// Copies ROWS rows of W elements (row r from row_ptr(r), nullptr for a missing row) into
// shared memory rows of stride S, zero-filling missing rows and the columns [W, WP).
template <int ROWS, int W, int WP, int S, int THREADS, class D, class RowPtr>
__device__ __forceinline__ void load_rows(typename D::T* dst, const void* any_valid, RowPtr row_ptr) {
  typedef typename D::T T;
  if constexpr (W % 8 == 0) {
    constexpr int PIECES = WP / 8;  // 16 bytes each
    for (int c = threadIdx.x; c < ROWS * PIECES; c += THREADS) {
      const int r = c / PIECES, k = (c % PIECES) * 8;
      const T* src = row_ptr(r);
      const bool ok = src != nullptr && k < W;
      cp_async_16(dst + r * S + k, ok ? static_cast<const void*>(src + k) : any_valid, ok ? 16 : 0);
    }
  } else {
    for (int c = threadIdx.x; c < ROWS * WP; c += THREADS) {
      const int r = c / WP, k = c % WP;
      const T* src = row_ptr(r);
      dst[r * S + k] = (src != nullptr && k < W) ? src[k] : from_float<D>(0.0f);
    }
  }
}

template <i64 B, i64 SQ, i64 SKV, i64 HQ, i64 HKV, i64 DK, i64 DV, bool CAUSAL, int BQ, int BKV, int WD, int STAGES,
          int SPLITS>
struct Shape {
  static constexpr i64 G = HQ / HKV;
  static constexpr i64 ROWS = SQ * G;
  static constexpr int WR = BQ / 16, WARPS = WR * WD, THREADS = 32 * WARPS;
  static constexpr int DKP = round_up(static_cast<int>(DK), 16);
  static constexpr int DVP = round_up(static_cast<int>(DV), 8 * WD);
  static constexpr int DVW = DVP / WD;  // output columns per warp
  static constexpr int QS = DKP + 8, KS = DKP + 8, VS = DVP + 8;  // row strides (elements), 16-byte padded
  static constexpr int NT = BKV / 8, OT = DVW / 8;
  static constexpr i64 TILES = ceil_div(SKV, BKV);
  static constexpr i64 TILES_PER_SPLIT = ceil_div(TILES, SPLITS);
  static constexpr int SMEM_BYTES = 2 * (BQ * QS + STAGES * BKV * (KS + VS));
  static_assert(BQ % 16 == 0 && BKV % 16 == 0, "MMA-shaped tiles");
  static_assert(STAGES == 1 || STAGES == 2, "one or two K/V stages");
};

template <i64 B, i64 SQ, i64 SKV, i64 HQ, i64 HKV, i64 DK, i64 DV, bool CAUSAL, int BQ, int BKV, int WD, int STAGES,
          int SPLITS, class D>
__device__ __forceinline__ void attention(const void* __restrict__ q, const void* __restrict__ k,
                                          const void* __restrict__ v, void* __restrict__ o,
                                          float* __restrict__ partial_o, float* __restrict__ partial_lse,
                                          float scale_log2) {
  typedef Shape<B, SQ, SKV, HQ, HKV, DK, DV, CAUSAL, BQ, BKV, WD, STAGES, SPLITS> S;
  typedef typename D::T T;
  extern __shared__ __align__(16) u8 smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);
  T* ks = qs + BQ * S::QS;
  T* vs = ks + STAGES * BKV * S::KS;

  const i64 r0 = static_cast<i64>(blockIdx.x) * BQ;  // first row of this CTA
  const i64 bh = blockIdx.y, b = bh / HKV, kvh = bh % HKV;
  const int split = blockIdx.z;
  const T* qg = static_cast<const T*>(q);
  const T* kg = static_cast<const T*>(k);
  const T* vg = static_cast<const T*>(v);

  // Keys this CTA visits: its split's tiles, up to its last row's last visible key.
  i64 t_begin = static_cast<i64>(split) * S::TILES_PER_SPLIT;
  i64 t_end = t_begin + S::TILES_PER_SPLIT < S::TILES ? t_begin + S::TILES_PER_SPLIT : S::TILES;
  if constexpr (CAUSAL) {
    const i64 last_row = (r0 + BQ - 1 < S::ROWS ? r0 + BQ - 1 : S::ROWS - 1);
    const i64 last_key = last_row / S::G + SKV - SQ;
    const i64 last_tile = last_key < 0 ? -1 : last_key / BKV;
    if (t_end > last_tile + 1) t_end = last_tile + 1;
  }

  auto q_row = [&](int i) -> const T* {
    const i64 R = r0 + i;
    if (R >= S::ROWS) return nullptr;
    return qg + ((b * SQ + R / S::G) * HQ + kvh * S::G + R % S::G) * DK;
  };
  auto load_kv = [&](i64 tile, int stage) {
    const i64 k0 = tile * BKV;
    load_rows<BKV, static_cast<int>(DK), S::DKP, S::KS, S::THREADS, D>(
        ks + stage * BKV * S::KS, kg, [&](int i) -> const T* {
          return k0 + i < SKV ? kg + ((b * SKV + k0 + i) * HKV + kvh) * DK : nullptr;
        });
    load_rows<BKV, static_cast<int>(DV), S::DVP, S::VS, S::THREADS, D>(
        vs + stage * BKV * S::VS, vg, [&](int i) -> const T* {
          return k0 + i < SKV ? vg + ((b * SKV + k0 + i) * HKV + kvh) * DV : nullptr;
        });
  };

  load_rows<BQ, static_cast<int>(DK), S::DKP, S::QS, S::THREADS, D>(qs, qg, q_row);
  if (t_begin < t_end) load_kv(t_begin, 0);
  cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wr = warp / WD, wd = warp % WD;
  const int g = lane / 4, t = lane % 4;
  const int rl[2] = {wr * 16 + g, wr * 16 + g + 8};  // this thread's rows in the CTA
  i64 limit[2];                                       // last visible key per row
#pragma unroll
  for (int h = 0; h < 2; ++h) limit[h] = CAUSAL ? (r0 + rl[h]) / S::G + SKV - SQ : SKV - 1;

  float m[2] = {-inf(), -inf()}, l[2] = {0.0f, 0.0f};
  float acc[S::OT][4];
#pragma unroll
  for (int j = 0; j < S::OT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;

  for (i64 tile = t_begin; tile < t_end; ++tile) {
    int stage = 0;
    if constexpr (STAGES == 2) {
      stage = static_cast<int>((tile - t_begin) & 1);
      if (tile + 1 < t_end) {
        load_kv(tile + 1, stage ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
    } else {
      if (tile > t_begin) {
        load_kv(tile, 0);
        cp_async_commit();
      }
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* kt = ks + stage * BKV * S::KS;
    const T* vt = vs + stage * BKV * S::VS;

    // S = Q K^T for this warp's 16 rows and the tile's BKV keys.
    float s[S::NT][4];
#pragma unroll
    for (int j = 0; j < S::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < S::DKP / 16; ++kk) {
      u32 a[4];
      const T* qa = qs + rl[0] * S::QS + kk * 16 + 2 * t;
      a[0] = *reinterpret_cast<const u32*>(qa);
      a[1] = *reinterpret_cast<const u32*>(qa + 8 * S::QS);
      a[2] = *reinterpret_cast<const u32*>(qa + 8);
      a[3] = *reinterpret_cast<const u32*>(qa + 8 * S::QS + 8);
#pragma unroll
      for (int j = 0; j < S::NT; ++j) {
        const T* kb = kt + (j * 8 + g) * S::KS + kk * 16 + 2 * t;
        const u32 bf[2] = {*reinterpret_cast<const u32*>(kb), *reinterpret_cast<const u32*>(kb + 8)};
        mma_16816<D>(s[j], a, bf);
      }
    }

    // Online softmax: mask, scale into the exp2 domain, new running max, rescale.
    const i64 k0 = tile * BKV;
    float mx[2] = {-inf(), -inf()};
#pragma unroll
    for (int j = 0; j < S::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const i64 key = k0 + j * 8 + 2 * t + (e & 1);
        const bool visible = key < SKV && key <= limit[e >> 1];
        s[j][e] = visible ? s[j][e] * scale_log2 : -inf();
        mx[e >> 1] = fmaxf(mx[e >> 1], s[j][e]);
      }
    float alpha[2], base[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xFFFFFFFFu, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xFFFFFFFFu, mx[h], 2));
      const float m_new = fmaxf(m[h], mx[h]);
      base[h] = m_new == -inf() ? 0.0f : m_new;  // a row with nothing visible yet stays at 0
      alpha[h] = exp2f(m[h] - base[h]);
      m[h] = m_new;
      l[h] *= alpha[h];
    }
#pragma unroll
    for (int j = 0; j < S::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = exp2f(s[j][e] - base[e >> 1]);
        l[e >> 1] += s[j][e];
      }
#pragma unroll
    for (int j = 0; j < S::OT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][e] *= alpha[e >> 1];

    // O += P V: the score fragments become the A operand (P rounded to D), V comes
    // through ldmatrix.trans (keys x Dv in shared memory -> the col-major B operand).
#pragma unroll
    for (int kk = 0; kk < BKV / 16; ++kk) {
      const u32 a[4] = {pack2<D>(s[2 * kk][0], s[2 * kk][1]), pack2<D>(s[2 * kk][2], s[2 * kk][3]),
                        pack2<D>(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack2<D>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const T* vrow = vt + (kk * 16 + lane % 16) * S::VS + wd * S::DVW;
#pragma unroll
      for (int j = 0; j < S::OT; ++j) {
        u32 bf[2];
        ldmatrix_x2_trans(bf[0], bf[1], vrow + j * 8);
        mma_16816<D>(acc[j], a, bf);
      }
    }
    __syncthreads();  // the stage is read; the next iteration may refill it
  }
  cp_async_wait<0>();

  // Row sums across the quad that shares each row, then normalise and store.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xFFFFFFFFu, l[h], 1);
    l[h] += __shfl_xor_sync(0xFFFFFFFFu, l[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const i64 R = r0 + rl[h];
    if (R >= S::ROWS) continue;
    const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
    if constexpr (SPLITS == 1) {
      T* out = static_cast<T*>(o) + ((b * SQ + R / S::G) * HQ + kvh * S::G + R % S::G) * DV;
#pragma unroll
      for (int j = 0; j < S::OT; ++j)
        store_pair<D, DV>(out, 0, wd * S::DVW + j * 8 + 2 * t, acc[j][2 * h] * inv, acc[j][2 * h + 1] * inv);
    } else {
      const i64 p = (static_cast<i64>(split) * B * HKV + bh) * S::ROWS + R;
#pragma unroll
      for (int j = 0; j < S::OT; ++j)
        store_pair<F32, DV>(partial_o + p * DV, 0, wd * S::DVW + j * 8 + 2 * t, acc[j][2 * h] * inv,
                            acc[j][2 * h + 1] * inv);
      if (wd == 0 && t == 0) partial_lse[p] = l[h] > 0.0f ? m[h] + log2f(l[h]) : -inf();
    }
  }
}

// Merges the SPLITS partial results of every row: O = sum_s 2^(lse_s - max) O_s / sum_s 2^(lse_s - max).
// One CTA per row of one (batch, kv head), its threads across Dv.
template <i64 B, i64 SQ, i64 HQ, i64 HKV, i64 DV, int SPLITS, class D>
__device__ __forceinline__ void attention_combine(const float* __restrict__ partial_o,
                                                  const float* __restrict__ partial_lse, void* __restrict__ o) {
  constexpr i64 G = HQ / HKV, ROWS = SQ * G;
  const i64 row = blockIdx.x;  // (bh, R)
  const i64 bh = row / ROWS, R = row % ROWS, b = bh / HKV, kvh = bh % HKV;
  float w[SPLITS];
  float mx = -inf();
#pragma unroll
  for (int s = 0; s < SPLITS; ++s) {
    w[s] = partial_lse[(static_cast<i64>(s) * B * HKV + bh) * ROWS + R];
    mx = fmaxf(mx, w[s]);
  }
  float total = 0.0f;
#pragma unroll
  for (int s = 0; s < SPLITS; ++s) {
    w[s] = mx == -inf() ? 0.0f : exp2f(w[s] - mx);
    total += w[s];
  }
  const float inv = total > 0.0f ? 1.0f / total : 0.0f;
  typename D::T* out = static_cast<typename D::T*>(o) + ((b * SQ + R / G) * HQ + kvh * G + R % G) * DV;
  for (int c = threadIdx.x; c < DV; c += blockDim.x) {
    float sum = 0.0f;
#pragma unroll
    for (int s = 0; s < SPLITS; ++s)
      sum += w[s] * partial_o[((static_cast<i64>(s) * B * HKV + bh) * ROWS + R) * DV + c];
    out[c] = from_float<D>(sum * inv);
  }
}

}  // namespace flash
}  // namespace anychip
