// Flash attention on the CPU (cpu_kernels.hpp; semantics in kernels/problems.hpp).
//
// Work is cut into tasks of (batch, KV head, row tile, KV split). A row tile is up to
// `rows_per_tile` (query position, query head) pairs that read the same KV head, taken
// in (position, head-in-group) order: under GQA/MQA all the query heads of one KV head
// share every K/V tile loaded, and an Sq=1 decode still fills a tile. Each task walks
// its keys in tiles of `kv_tile`: it converts the K and V tile to fp32 once (f32 rows
// whose length is a multiple of 16 are read in place), computes the scores S = Q K^T for
// the whole row tile, and folds them into a running max m, sum l and accumulator acc per
// row (online softmax), so no Sq x Skv matrix ever exists. Causal masking is a per-row
// prefix: row i sees keys 0 .. i + Skv - Sq. The scale is folded into Q as it is loaded.
//
// When (batch x KV heads x row tiles) is too few to keep every core busy (decode
// against a long KV), the key range is also split; each split leaves its (m, l, acc)
// per row and a second pass merges them: O = sum_s acc_s e^(m_s-M) / sum_s l_s e^(m_s-M).
//
// The arithmetic is written once over a SIMD width W with GCC vector types and compiled
// three times: AVX-512 (W=16), AVX2+FMA (W=8) and baseline SSE2 (W=4), chosen at run time
// by cpu::isa(). Tiles are padded to a multiple of 16 floats with zeros so that the
// inner loops have no tails. Q K^T is computed as dot products in 4-key blocks whose four
// horizontal sums share one shuffle tree; P V as broadcast-FMA over rows of V.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/cache_aligned_allocator.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "kernels/cpu/cpu_kernels.hpp"

// Vector types wider than the baseline ISA appear in always-inline helpers that are only
// ever inlined into functions compiled for AVX2 / AVX-512; no ABI is crossed.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace anychip::kernels::cpu {
namespace {

using std::int64_t;
constexpr int kPad = 16;  // every tile row is padded to a multiple of this many floats
constexpr int64_t kMaxRowsPerTile = 64;

[[noreturn]] void invalid(const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, "cpu::attention: " + message);
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- Converting rows of f32 / bf16 / f16 to fp32 and back ------------------------------

using LoadRow = void (*)(const void* base, int64_t offset, int64_t n, float* dst);

void load_f32(const void* base, int64_t offset, int64_t n, float* dst) {
  std::memcpy(dst, static_cast<const float*>(base) + offset, static_cast<std::size_t>(n) * 4);
}

void load_bf16(const void* base, int64_t offset, int64_t n, float* dst) {
  const auto* src = static_cast<const std::uint16_t*>(base) + offset;
  for (int64_t i = 0; i < n; ++i) {
    const std::uint32_t bits = static_cast<std::uint32_t>(src[i]) << 16;  // exact
    std::memcpy(dst + i, &bits, 4);
  }
}

void load_f16(const void* base, int64_t offset, int64_t n, float* dst) {
  const auto* src = static_cast<const std::uint16_t*>(base) + offset;
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_float(src[i]);
}

__attribute__((target("avx,f16c"))) void load_f16_f16c(const void* base, int64_t offset,
                                                       int64_t n, float* dst) {
  const auto* src = static_cast<const std::uint16_t*>(base) + offset;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

void store_row(DType dtype, const float* src, int64_t n, void* base, int64_t offset) {
  if (dtype == DType::f32) {
    std::memcpy(static_cast<float*>(base) + offset, src, static_cast<std::size_t>(n) * 4);
    return;
  }
  auto* dst = static_cast<std::uint16_t*>(base) + offset;
  if (dtype == DType::bf16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_f16(src[i]);
  }
}

// ---- The plan shared by every task ------------------------------------------------------

struct Plan {
  const AttentionProblem* p = nullptr;
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  void* o = nullptr;
  LoadRow load = nullptr;
  float scale = 0;
  int64_t group = 1;          // query heads per KV head
  int64_t rows = 0;           // (position, head) rows per KV head: seq_q * group
  int64_t rows_per_tile = 0;  // R
  int64_t row_tiles = 0;      // ceil(rows / R)
  int64_t kv_tile = 0;        // keys per K/V tile (a multiple of kPad)
  int64_t splits = 1;         // KV splits per row tile
  int64_t dkp = 0, dvp = 0;   // head dims padded to kPad
  bool direct = false;        // f32 K/V with head dims a multiple of kPad: read in place
  float* partial = nullptr;   // splits > 1: per (row tile, split) R x (2 + dvp): m, l, acc

  int64_t partial_row_floats() const { return 2 + dvp; }
  int64_t scratch_floats() const {
    return rows_per_tile * dkp + kv_tile * (dkp + dvp) + rows_per_tile * kv_tile +
           rows_per_tile * (dvp + 2);
  }
  // Query position and head of row t of KV head hk.
  int64_t position(int64_t t) const { return t / group; }
  int64_t head(int64_t hk, int64_t t) const { return hk * group + t % group; }
  // The last key row t may see (< 0: none).
  int64_t last_key(int64_t t) const {
    const int64_t i = position(t);
    return p->causal ? std::min(p->seq_kv - 1, i + p->seq_kv - p->seq_q) : p->seq_kv - 1;
  }
};

// ---- SIMD arithmetic, written once over the width W -------------------------------------

template <int W> struct Vec;
template <> struct Vec<4> {
  typedef float F __attribute__((vector_size(16)));
  typedef std::int32_t I __attribute__((vector_size(16)));
};
template <> struct Vec<8> {
  typedef float F __attribute__((vector_size(32)));
  typedef std::int32_t I __attribute__((vector_size(32)));
};
template <> struct Vec<16> {
  typedef float F __attribute__((vector_size(64)));
  typedef std::int32_t I __attribute__((vector_size(64)));
};

#define ANYCHIP_INLINE [[gnu::always_inline]] inline

template <class V>
ANYCHIP_INLINE V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
ANYCHIP_INLINE void vstore(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}
// A broadcast. (Built from arithmetic on purpose: GCC 12 lowers a vector constructor in
// these target-neutral helpers lane by lane, but keeps 0 + x as one vaddps{1toN}.)
template <class V>
ANYCHIP_INLINE V splat(float x) {
  return V{} + x;
}
template <int W>
ANYCHIP_INLINE float hsum(const typename Vec<W>::F& v) {
  float s = 0;
  for (int l = 0; l < W; ++l) s += v[l];
  return s;
}

// One step of a reduction tree over vectors of N lanes made of segments of L lanes (one
// accumulator each): lane i of the result adds the two halves of one segment, the
// segments of x first, then those of y, so the result has twice the segments, half as long.
template <int N, int L, bool Upper>
constexpr int fold_lane(int i) {
  const int g = L / 2, from_y = i >= N / 2 ? 1 : 0, k = i - from_y * N / 2;
  return from_y * N + (k / g) * L + k % g + (Upper ? g : 0);
}
template <int L, class V, std::size_t... I>
ANYCHIP_INLINE V fold(const V& x, const V& y, std::index_sequence<I...>) {
  constexpr int N = sizeof...(I);
  return __builtin_shufflevector(x, y, fold_lane<N, L, false>(I)...) +
         __builtin_shufflevector(x, y, fold_lane<N, L, true>(I)...);
}
template <int L, class V, class Seq>
ANYCHIP_INLINE V fold_self(const V& x, Seq seq) {
  if constexpr (L >= 2) return fold_self<L / 2>(fold<L>(x, x, seq), seq);
  else return x;
}
// out[0..3] = the lane sums of a, b, c, d (about a quarter of the work of four hsums).
template <int W>
ANYCHIP_INLINE void hsum4(const typename Vec<W>::F& a, const typename Vec<W>::F& b,
                          const typename Vec<W>::F& c, const typename Vec<W>::F& d, float* out) {
  constexpr auto seq = std::make_index_sequence<W>{};
  const auto x = fold_self<W / 4>(fold<W / 2>(fold<W>(a, b, seq), fold<W>(c, d, seq), seq), seq);
  for (int l = 0; l < 4; ++l) out[l] = x[l];
}

// exp(x) for x <= 0 (Cephes expf: Cody-Waite reduction, degree-6 polynomial, ~1 ulp);
// exactly 0 below -87, so a masked score (-inf) gives 0.
template <int W>
ANYCHIP_INLINE typename Vec<W>::F exp_nonpositive(const typename Vec<W>::F& x) {
  using F = typename Vec<W>::F;
  using I = typename Vec<W>::I;
  const F lo = splat<F>(-87.0f);
  const F xc = x < lo ? lo : x;
  // n = round(x * log2 e); x * log2 e <= 0 so truncating (x log2 e - 0.5) rounds.
  const I n = __builtin_convertvector(xc * 1.44269504088896341f - 0.5f, I);
  const F nf = __builtin_convertvector(n, F);
  F r = xc - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  F y = splat<F>(1.9875691500e-4f);
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const I bits = (n + 127) << 23;  // 2^n, n in [-126, 0]
  const F result = y * std::bit_cast<F>(bits);
  return x < lo ? F{} : result;
}

// Register blocking of the two products: W=16 (32 zmm registers) takes 4 x 4 blocks,
// the narrower ISAs (16 registers) 2 x 4 for Q K^T and 4 x 2 for P V.
template <int W> inline constexpr int kQkRows = W == 16 ? 4 : 2;
template <int W> inline constexpr int kPvVecs = W == 16 ? 4 : 2;

// s[r][j] = q_r . k_j for an RB x KB block.
template <int W, int RB, int KB>
ANYCHIP_INLINE void qk_block(const float* q, int64_t qs, const float* k, int64_t ks, int64_t dp,
                             float* s, int64_t ss) {
  using F = typename Vec<W>::F;
  F acc[RB][KB];
  for (int rb = 0; rb < RB; ++rb)
    for (int kb = 0; kb < KB; ++kb) acc[rb][kb] = F{};
  for (int64_t d = 0; d < dp; d += W) {
    F kv[KB];
    for (int kb = 0; kb < KB; ++kb) kv[kb] = vload<F>(k + kb * ks + d);
    for (int rb = 0; rb < RB; ++rb) {
      const F qv = vload<F>(q + rb * qs + d);
      for (int kb = 0; kb < KB; ++kb) acc[rb][kb] += qv * kv[kb];
    }
  }
  for (int rb = 0; rb < RB; ++rb) {
    if constexpr (KB == 4) {
      hsum4<W>(acc[rb][0], acc[rb][1], acc[rb][2], acc[rb][3], s + rb * ss);
    } else {
      for (int kb = 0; kb < KB; ++kb) s[rb * ss + kb] = hsum<W>(acc[rb][kb]);
    }
  }
}

template <int W, int RB>
ANYCHIP_INLINE void qk_rows(const float* q, int64_t dp, const float* k, int64_t ks, int64_t keys,
                            float* s, int64_t ss) {
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) qk_block<W, RB, 4>(q, dp, k + j * ks, ks, dp, s + j, ss);
  for (; j < keys; ++j) qk_block<W, RB, 1>(q, dp, k + j * ks, ks, dp, s + j, ss);
}

// S [rows][ss] = Q [rows][dp] . K^T, K's rows ks floats apart.
template <int W>
ANYCHIP_INLINE void qk_tile(const float* q, int64_t rows, const float* k, int64_t ks, int64_t keys,
                            int64_t dp, float* s, int64_t ss) {
  constexpr int RB = kQkRows<W>;
  int64_t r = 0;
  for (; r + RB <= rows; r += RB) qk_rows<W, RB>(q + r * dp, dp, k, ks, keys, s + r * ss, ss);
  if constexpr (RB > 2)
    for (; r + 2 <= rows; r += 2) qk_rows<W, 2>(q + r * dp, dp, k, ks, keys, s + r * ss, ss);
  for (; r < rows; ++r) qk_rows<W, 1>(q + r * dp, dp, k, ks, keys, s + r * ss, ss);
}

// acc[r][0 .. DB*W) += sum_j p[r][j] v[j][0 .. DB*W) for an RB-row block.
template <int W, int RB, int DB>
ANYCHIP_INLINE void pv_block(const float* p, int64_t ps, const float* v, int64_t vs, int64_t keys,
                             float* acc, int64_t as) {
  using F = typename Vec<W>::F;
  F a[RB][DB];
  for (int rb = 0; rb < RB; ++rb)
    for (int db = 0; db < DB; ++db) a[rb][db] = vload<F>(acc + rb * as + db * W);
  for (int64_t j = 0; j < keys; ++j) {
    F vv[DB];
    for (int db = 0; db < DB; ++db) vv[db] = vload<F>(v + j * vs + db * W);
    for (int rb = 0; rb < RB; ++rb) {
      const F pb = splat<F>(p[rb * ps + j]);
      for (int db = 0; db < DB; ++db) a[rb][db] += pb * vv[db];
    }
  }
  for (int rb = 0; rb < RB; ++rb)
    for (int db = 0; db < DB; ++db) vstore(acc + rb * as + db * W, a[rb][db]);
}

template <int W, int RB>
ANYCHIP_INLINE void pv_rows(const float* p, int64_t ps, const float* v, int64_t vs, int64_t keys,
                            int64_t dp, float* acc) {
  constexpr int DB = kPvVecs<W>;
  int64_t d = 0;
  for (; d + DB * W <= dp; d += DB * W) pv_block<W, RB, DB>(p, ps, v + d, vs, keys, acc + d, dp);
  for (; d < dp; d += W) pv_block<W, RB, 1>(p, ps, v + d, vs, keys, acc + d, dp);
}

// ACC [rows][dp] += P [rows][ps] . V, V's rows vs floats apart.
template <int W>
ANYCHIP_INLINE void pv_tile(const float* p, int64_t rows, int64_t ps, const float* v, int64_t vs,
                            int64_t keys, int64_t dp, float* acc) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) pv_rows<W, 4>(p + r * ps, ps, v, vs, keys, dp, acc + r * dp);
  for (; r < rows; ++r) pv_rows<W, 1>(p + r * ps, ps, v, vs, keys, dp, acc + r * dp);
}

template <int W>
ANYCHIP_INLINE float hmax(const typename Vec<W>::F& v) {
  float m = v[0];
  for (int l = 1; l < W; ++l) m = std::max(m, v[l]);
  return m;
}

// Folds one tile's scores s[0..nv) of a row into its running (m, l, acc): s becomes
// exp(s - m_new) and the row's previous sum and accumulator are rescaled. s holds at least
// round_up(nv, W) entries.
template <int W>
ANYCHIP_INLINE void online_softmax_row(float* s, int64_t nv, float& m, float& l, float* acc,
                                       int64_t dp) {
  using F = typename Vec<W>::F;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int64_t nvp = round_up(nv, W);
  std::fill(s + nv, s + nvp, kNegInf);  // exp gives 0 there
  F mx = splat<F>(kNegInf);
  for (int64_t j = 0; j < nvp; j += W) {
    const F x = vload<F>(s + j);
    mx = x > mx ? x : mx;
  }
  const float m_new = std::max(m, hmax<W>(mx));
  const float alpha = std::exp(m - m_new);  // 0 on the first visible tile (m = -inf)
  const F mv = splat<F>(m_new);
  F sum = F{};
  for (int64_t j = 0; j < nvp; j += W) {
    const F e = exp_nonpositive<W>(vload<F>(s + j) - mv);
    vstore(s + j, e);
    sum += e;
  }
  l = l * alpha + hsum<W>(sum);
  m = m_new;
  if (alpha != 1.0f) {
    const F av = splat<F>(alpha);
    for (int64_t d = 0; d < dp; d += W) vstore(acc + d, vload<F>(acc + d) * av);
  }
}

// Loads n rows of `dim` elements, `stride` apart in the source, into [n][padded] fp32.
void load_rows(const Plan& pl, const void* base, int64_t offset, int64_t stride, int64_t n,
               int64_t dim, int64_t padded, float* dst) {
  for (int64_t j = 0; j < n; ++j) {
    float* row = dst + j * padded;
    pl.load(base, offset + j * stride, dim, row);
    std::fill(row + dim, row + padded, 0.0f);
  }
}

// One task: row tile `tile` of KV head hk in batch b, keys of split `split`.
template <int W>
ANYCHIP_INLINE void attention_task(const Plan& pl, int64_t task, float* scratch) {
  const AttentionProblem& p = *pl.p;
  const int64_t split = task % pl.splits;
  int64_t rest = task / pl.splits;
  const int64_t tile = rest % pl.row_tiles;
  rest /= pl.row_tiles;
  const int64_t hk = rest % p.heads_kv, b = rest / p.heads_kv;
  const int64_t t0 = tile * pl.rows_per_tile;
  const int64_t rows = std::min(pl.rows_per_tile, pl.rows - t0);
  const int64_t R = pl.rows_per_tile, Bc = pl.kv_tile, dkp = pl.dkp, dvp = pl.dvp;
  const int64_t Dk = p.head_dim, Dv = p.head_dim_v;

  float* qt = scratch;          // [R][dkp], pre-multiplied by the scale
  float* kt = qt + R * dkp;     // [Bc][dkp]
  float* vt = kt + Bc * dkp;    // [Bc][dvp]
  float* st = vt + Bc * dvp;    // [R][Bc] scores, then probabilities
  float* acc = st + R * Bc;     // [R][dvp]
  float* m = acc + R * dvp;     // [R] running max
  float* l = m + R;             // [R] running sum
  int64_t last[kMaxRowsPerTile];

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = t0 + r;
    float* qr = qt + r * dkp;
    pl.load(pl.q, ((b * p.seq_q + pl.position(t)) * p.heads_q + pl.head(hk, t)) * Dk, Dk, qr);
    for (int64_t d = 0; d < Dk; ++d) qr[d] *= pl.scale;
    std::fill(qr + Dk, qr + dkp, 0.0f);
    last[r] = pl.last_key(t);
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0;
    std::fill(acc + r * dvp, acc + (r + 1) * dvp, 0.0f);
  }

  // Rows are in position order, so the last row sees the most keys.
  const int64_t visible = std::max<int64_t>(0, last[rows - 1] + 1);
  const int64_t chunk = round_up((visible + pl.splits - 1) / pl.splits, Bc);
  const int64_t kv_begin = std::min(visible, split * chunk);
  const int64_t kv_end = std::min(visible, kv_begin + chunk);
  const int64_t k_stride = p.heads_kv * Dk, v_stride = p.heads_kv * Dv;

  for (int64_t j0 = kv_begin; j0 < kv_end; j0 += Bc) {
    const int64_t n = std::min(Bc, kv_end - j0);
    const int64_t k_offset = ((b * p.seq_kv + j0) * p.heads_kv + hk) * Dk;
    const int64_t v_offset = ((b * p.seq_kv + j0) * p.heads_kv + hk) * Dv;
    const float *kp = kt, *vp = vt;
    int64_t ks = dkp, vs = dvp;
    if (pl.direct) {  // f32 rows already padded: read them in place
      kp = static_cast<const float*>(pl.k) + k_offset;
      vp = static_cast<const float*>(pl.v) + v_offset;
      ks = k_stride;
      vs = v_stride;
    } else {
      load_rows(pl, pl.k, k_offset, k_stride, n, Dk, dkp, kt);
      load_rows(pl, pl.v, v_offset, v_stride, n, Dv, dvp, vt);
    }
    qk_tile<W>(qt, rows, kp, ks, n, dkp, st, Bc);
    for (int64_t r = 0; r < rows; ++r) {
      float* sr = st + r * Bc;
      const int64_t nv = std::min(n, last[r] - j0 + 1);  // the visible prefix of this tile
      if (nv > 0) online_softmax_row<W>(sr, nv, m[r], l[r], acc + r * dvp, dvp);
      std::fill(sr + std::max<int64_t>(nv, 0), sr + n, 0.0f);
    }
    pv_tile<W>(st, rows, Bc, vp, vs, n, dvp, acc);
  }

  if (pl.splits == 1) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t t = t0 + r;
      float* ar = acc + r * dvp;
      const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;  // a row that saw no key gives 0
      for (int64_t d = 0; d < Dv; ++d) ar[d] *= inv;
      store_row(p.dtype, ar, Dv, pl.o, ((b * p.seq_q + pl.position(t)) * p.heads_q + pl.head(hk, t)) * Dv);
    }
    return;
  }
  float* part = pl.partial + task * R * pl.partial_row_floats();
  for (int64_t r = 0; r < rows; ++r) {
    float* pr = part + r * pl.partial_row_floats();
    pr[0] = m[r];
    pr[1] = l[r];
    std::memcpy(pr + 2, acc + r * dvp, static_cast<std::size_t>(dvp) * 4);
  }
}

#undef ANYCHIP_INLINE

// Merges the splits of row r of row tile `group_index` (tasks group_index*splits + s).
void merge_row(const Plan& pl, int64_t group_index, int64_t r, float* out_row) {
  const AttentionProblem& p = *pl.p;
  const int64_t Dv = p.head_dim_v, stride = pl.rows_per_tile * pl.partial_row_floats();
  const float* first = pl.partial + group_index * pl.splits * stride + r * pl.partial_row_floats();
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t s = 0; s < pl.splits; ++s) mx = std::max(mx, first[s * stride]);
  std::fill(out_row, out_row + Dv, 0.0f);
  if (mx == -std::numeric_limits<float>::infinity()) return;  // saw no key: 0
  float sum = 0;
  for (int64_t s = 0; s < pl.splits; ++s) {
    const float* pr = first + s * stride;
    if (pr[1] == 0) continue;
    const float w = std::exp(pr[0] - mx);
    sum += pr[1] * w;
    for (int64_t d = 0; d < Dv; ++d) out_row[d] += pr[2 + d] * w;
  }
  const float inv = 1.0f / sum;
  for (int64_t d = 0; d < Dv; ++d) out_row[d] *= inv;
}

using TaskFn = void (*)(const Plan&, int64_t, float*);

__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c"))) void task_avx512(
    const Plan& pl, int64_t task, float* scratch) {
  attention_task<16>(pl, task, scratch);
}
__attribute__((target("avx2,fma,f16c"))) void task_avx2(const Plan& pl, int64_t task, float* scratch) {
  attention_task<8>(pl, task, scratch);
}
void task_generic(const Plan& pl, int64_t task, float* scratch) { attention_task<4>(pl, task, scratch); }

void validate(const AttentionProblem& p, ConstOperand q, ConstOperand k, ConstOperand v, Operand o) {
  auto nonneg = [](const char* what, int64_t x) {
    if (x < 0) invalid(std::string(what) + "=" + std::to_string(x) + " is negative");
  };
  nonneg("batch", p.batch);
  nonneg("seq_q", p.seq_q);
  nonneg("seq_kv", p.seq_kv);
  nonneg("head_dim", p.head_dim);
  nonneg("head_dim_v", p.head_dim_v);
  if (p.heads_kv <= 0 || p.heads_q <= 0 || p.heads_q % p.heads_kv != 0)
    invalid("heads_q=" + std::to_string(p.heads_q) + " is not a positive multiple of heads_kv=" +
            std::to_string(p.heads_kv));
  if (!is_float(p.dtype))
    invalid("dtype=" + std::string(dtype_name(p.dtype)) + " is not f32, bf16 or f16");
  const bool any_q = p.batch * p.seq_q * p.heads_q > 0;
  if (any_q && p.head_dim_v > 0 && o.data == nullptr) invalid("o is null");
  if (any_q && p.head_dim > 0 && q.data == nullptr) invalid("q is null");
  if (any_q && p.batch * p.seq_kv > 0 && ((p.head_dim > 0 && k.data == nullptr) ||
                                          (p.head_dim_v > 0 && v.data == nullptr)))
    invalid("k or v is null");
}

}  // namespace

void attention(const AttentionProblem& p, ConstOperand q, ConstOperand k, ConstOperand v, Operand o) {
  validate(p, q, k, v, o);
  if (p.batch * p.seq_q * p.heads_q * p.head_dim_v == 0) return;

  const std::string_view cpu_isa = isa();
  const TaskFn run_task = cpu_isa == "avx512bf16" ? task_avx512 : cpu_isa == "avx2" ? task_avx2 : task_generic;

  Plan pl;
  pl.p = &p;
  pl.q = q.data;
  pl.k = k.data;
  pl.v = v.data;
  pl.o = o.data;
  pl.load = p.dtype == DType::f32    ? load_f32
            : p.dtype == DType::bf16 ? load_bf16
            : cpu_isa == "generic"   ? load_f16
                                     : load_f16_f16c;
  pl.scale = static_cast<float>(p.scale);
  pl.group = p.heads_q / p.heads_kv;
  pl.rows = p.seq_q * pl.group;
  pl.dkp = round_up(p.head_dim, kPad);
  pl.dvp = round_up(p.head_dim_v, kPad);
  pl.direct = p.dtype == DType::f32 && pl.dkp == p.head_dim && pl.dvp == p.head_dim_v;
  // About 64 KiB of K/V tile (L2-resident).
  const int64_t width = std::max<int64_t>(pl.dkp + pl.dvp, kPad);
  pl.kv_tile = std::clamp<int64_t>(16384 / width / kPad * kPad, kPad, 128);
  // Up to ~128 KiB of Q tile and accumulators, in tiles of equal size.
  const int64_t max_rows = std::clamp<int64_t>(32768 / width, 8, kMaxRowsPerTile);
  pl.row_tiles = (pl.rows + max_rows - 1) / max_rows;
  pl.rows_per_tile = (pl.rows + pl.row_tiles - 1) / pl.row_tiles;

  // Split the keys when there are too few row tiles to give every core a few tasks,
  // keeping at least 4 K/V tiles per split.
  const int64_t base_tasks = p.batch * p.heads_kv * pl.row_tiles;
  const int64_t want = 4 * static_cast<int64_t>(tbb::this_task_arena::max_concurrency());
  if (base_tasks < want) {
    const int64_t by_keys = std::max<int64_t>(1, p.seq_kv / (4 * pl.kv_tile));
    pl.splits = std::min((want + base_tasks - 1) / base_tasks, by_keys);
  }
  const int64_t tasks = base_tasks * pl.splits;

  std::vector<float, tbb::cache_aligned_allocator<float>> partial;
  if (pl.splits > 1) {
    partial.resize(static_cast<std::size_t>(tasks * pl.rows_per_tile * pl.partial_row_floats()));
    pl.partial = partial.data();
  }
  tbb::enumerable_thread_specific<std::vector<float, tbb::cache_aligned_allocator<float>>> scratch(
      static_cast<std::size_t>(pl.scratch_floats()));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks, 1), [&](const tbb::blocked_range<int64_t>& range) {
    float* s = scratch.local().data();
    for (int64_t t = range.begin(); t != range.end(); ++t) run_task(pl, t, s);
  });
  if (pl.splits == 1) return;

  // Merge: one output row per (batch, KV head, row) pair.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, base_tasks), [&](const tbb::blocked_range<int64_t>& range) {
    std::vector<float> row(static_cast<std::size_t>(p.head_dim_v));
    for (int64_t g = range.begin(); g != range.end(); ++g) {
      const int64_t tile = g % pl.row_tiles, hk = (g / pl.row_tiles) % p.heads_kv;
      const int64_t b = g / (pl.row_tiles * p.heads_kv);
      const int64_t t0 = tile * pl.rows_per_tile;
      for (int64_t r = 0; r < std::min(pl.rows_per_tile, pl.rows - t0); ++r) {
        const int64_t t = t0 + r;
        merge_row(pl, g, r, row.data());
        store_row(p.dtype, row.data(), p.head_dim_v, pl.o,
                  ((b * p.seq_q + pl.position(t)) * p.heads_q + pl.head(hk, t)) * p.head_dim_v);
      }
    }
  });
}

}  // namespace anychip::kernels::cpu
