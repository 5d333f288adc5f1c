// Attention on the simulator: flash attention, never materialising Sq x Skv.
//
// Work item = (batch, KV head, group of hg query heads of that KV head, tile of qp query
// positions[, KV split]). Its R = qp x hg query rows share every K/V tile it loads (GQA and
// MQA load a KV tile once for all the query heads of the item). Rows are packed head-major
// (row = head * qp + position: each head's rows are consecutive queries, as the causal mask
// of SoftmaxStep needs), or query-major (row = position * hg + head: one DMA per query
// position) when no tile of the item needs a mask and that takes fewer DMAs.
//
// Per KV tile j (tk keys; K/V loads in tiles.stages buffer sets to cover the HBM latency):
//   dma_in  K_j, V_j (V in c-column chunks)
//   matrix  S_j = Q K_j^T;  V_j^T = I_c x V_j^T per c-column chunk (the mma is "NT": P V
//           needs V transposed, and neither the DMA nor the mma transposes, so the matrix
//           unit multiplies by an identity from the constants block; each chunk goes
//           through one of two small f32 buffers that the vector unit converts to the
//           operand dtype)
//   vector  SoftmaxStep(S_j) -> P_j, m, l, alpha; O *= alpha
//   matrix  O += P_j (V_j^T)^T
// The matrix unit runs S_{j+1} before O += P_j V_j so that it works while the vector unit
// does the softmax of tile j+1 (software pipelining; S, V^T, P are double-buffered). Finally
// O / l is stored in the output dtype.
//
// Causal (bottom-right, key j visible to query i iff j <= i + Skv - Sq): KV tiles after the
// item's last visible key are skipped; tiles that cut the diagonal pass the mask to
// SoftmaxStep. Queries that see no key at all (Sq > Skv) are not in any tile; extra work
// items write their zeros.
//
// KV split (decode: few items for many cores): when every query of an item sees every key
// (not causal, or Sq == 1), the KV range is cut into splits, each its own work item that
// writes its unnormalised O (f32), m and l to the workspace; phase 1 combines the splits of
// each item with the same online-softmax step over the m's (O = sum_s e^(m_s-M) O_s /
// sum_s e^(m_s-M) l_s), cut into column blocks of Dv so that it too uses the cores.
#include <cmath>
#include <memory>
#include <vector>

#include "anychip/error.hpp"
#include "kernels/sim/ops.hpp"
#include "kernels/sim/tile_builder.hpp"

namespace anychip::kernels::sim {
namespace {

using Args = std::span<const std::int64_t>;

constexpr int kMaxStages = 4;

// Phase 0 flags.
constexpr int kSetupMatrix = 0;                    // dma_in -> matrix: Q and identities loaded
constexpr int kSetupVector = 1;                    // dma_in -> vector: m, l initialised
constexpr int kv_full(int s) { return 2 + s; }     // dma_in -> matrix: K, V of set s
constexpr int kv_empty(int s) { return 6 + s; }    // matrix -> dma_in
constexpr int s_full(int t) { return 10 + t; }     // matrix -> vector: S of set t
constexpr int s_free(int t) { return 12 + t; }     // vector -> matrix
constexpr int p_full(int t) { return 14 + t; }     // vector -> matrix: P, V^T of set t; O rescaled
constexpr int p_free(int t) { return 16 + t; }     // matrix -> vector
constexpr int kOutDone = 18;                       // matrix -> vector: O += P V done
constexpr int kOutReady = 19;                      // vector -> dma_out
constexpr int vt_full(int u) { return 20 + u; }    // matrix -> vector: a V^T chunk (f32)
constexpr int vt_free(int u) { return 22 + u; }    // vector -> matrix
// Phase 1 (combine) flags.
constexpr int part_full(int s) { return 0 + s; }
constexpr int part_free(int s) { return 4 + s; }
constexpr int kCombineSetup = 8;
constexpr int kCombineReady = 9;
// Zero items.
constexpr int kZeros = 0;

struct Plan {
  AttentionProblem p;
  std::int64_t qp = 1, tk = 1, hg = 1;  // tiles
  int stages = 2;                        // K/V (and combine) buffer sets
  std::int64_t G = 1, hgc = 1;           // query heads per KV head; head groups per KV head
  std::int64_t diag = 0, q_min = 0, qt = 0;
  std::int64_t nt = 0;                   // KV tiles of the whole range
  std::int64_t ns = 1, tps = 0;          // splits, tiles per split
  std::int64_t base = 0;                 // items before splitting
  std::int64_t rmax = 1;
  std::int64_t c = 1, nq = 1;            // transpose chunk width, chunks of Dv
  std::int64_t es = 2;
  // zero items
  std::int64_t zero_bytes = 0, zero_piece = 0, zero_pieces = 0, zero_items = 0;
  static constexpr std::int64_t kPiecesPerZeroItem = 64;
  // phase 0
  Addr q, k[kMaxStages], v[kMaxStages], vt[2], pm[2], idn, idr, mx, sm, al, out;
  Addr s[2], vta[2], o;
  // phase 1
  std::int64_t cb = 0, ncb = 1;  // combine: Dv columns per item, column blocks
  Addr op[kMaxStages], ms[kMaxStages], ls[kMaxStages], pw, mx1, sm1, al1, lacc, oacc, out1;
  Footprint fp0, fp1;
  std::int64_t slot = 0, workspace = 0;

  std::int64_t items0() const { return base * ns + zero_items; }
};

// One work item's geometry.
struct Item {
  std::int64_t b = 0, kvh = 0, h0 = 0, i0 = 0, qpe = 0, rows = 0;
  std::int64_t k_begin = 0, k_end = 0, tiles = 0;
  std::int64_t split = 0, bi = 0;
  bool masked = false;       // some tile cuts the causal diagonal
  bool query_major = false;
  std::int64_t groups = 0, group_rows = 0;
};

std::int64_t identity_offset(DType d) {
  switch (d) {
    case DType::f32: return kConstIdentityF32;
    case DType::bf16: return kConstIdentityBf16;
    default: return kConstIdentityF16;
  }
}

// The plan with `want` KV splits (at most; 1 = none; 0 = choose by the estimate).
Plan make_plan(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip, std::int64_t want);
double estimate(const Plan& P, const ChipDesc& chip);

Plan make_plan(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip) {
  return make_plan(p, t, chip, 0);
}

Plan make_plan(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip, std::int64_t want) {
  Plan P;
  P.p = p;
  P.qp = std::max(t.m, 1), P.tk = std::max(t.n, 1), P.hg = std::max(t.k, 1);
  P.stages = std::clamp(t.stages, 2, kMaxStages);
  P.G = p.heads_kv > 0 ? p.heads_q / p.heads_kv : 1;
  P.hgc = std::max<std::int64_t>(P.G / P.hg, 1);
  P.diag = p.seq_kv - p.seq_q;
  P.q_min = p.seq_kv == 0 ? p.seq_q : (p.causal ? std::clamp<std::int64_t>(-P.diag, 0, p.seq_q) : 0);
  P.qt = ceil_div(p.seq_q - P.q_min, P.qp);
  P.nt = ceil_div(p.seq_kv, P.tk);
  P.base = p.batch * p.heads_kv * P.hgc * P.qt;
  P.es = bytes_of(p.dtype, 1);
  P.rmax = P.qp * P.hg;
  const std::int64_t dv = std::max<std::int64_t>(p.head_dim_v, 1), dk = std::max<std::int64_t>(p.head_dim, 1);
  P.c = std::min<std::int64_t>(
      {kConstIdentitySize, dv,
       std::max<std::int64_t>({chip.core.matrix.tile_m, chip.core.matrix.tile_k, 16})});
  P.nq = ceil_div(dv, P.c);

  // KV split: only where every query of an item sees every key, and the items do not fill
  // the cores. The number of splits (a power of two up to the cores' worth, at least two
  // KV tiles each) is the one with the fewest estimated cycles: more splits use more
  // cores but write and combine more partial results.
  const bool splittable = !p.causal || p.seq_q == 1;
  const std::int64_t most = splittable && P.base > 0 ? std::min(chip.cores / std::max<std::int64_t>(P.base, 1), P.nt / 2) : 1;
  if (want == 0 && most > 1) {
    std::int64_t best = 1;
    double best_cycles = estimate(make_plan(p, t, chip, 1), chip);
    for (std::int64_t n = 2; n <= most; n *= 2) {
      const double c = estimate(make_plan(p, t, chip, n), chip);
      if (c < best_cycles) best = n, best_cycles = c;
    }
    if (most > 2 && (most & (most - 1)) != 0) {
      const double c = estimate(make_plan(p, t, chip, most), chip);
      if (c < best_cycles) best = most;
    }
    want = best;
  }
  want = std::min(std::max<std::int64_t>(want, 1), std::max<std::int64_t>(most, 1));
  if (want > 1) {
    P.tps = ceil_div(P.nt, want);
    P.ns = ceil_div(P.nt, P.tps);
  }
  if (P.ns == 1) P.tps = P.nt;

  // Zero items: O[b, 0:q_min] of every batch, in pieces.
  P.zero_bytes = P.q_min * p.heads_q * dv * P.es;
  if (P.zero_bytes > 0) {
    P.zero_piece = std::min(kConstVectorBytes, P.zero_bytes);
    P.zero_pieces = p.batch * ceil_div(P.zero_bytes, P.zero_piece);
    P.zero_items = ceil_div(P.zero_pieces, Plan::kPiecesPerZeroItem);
  }

  const std::int64_t R = P.rmax, tk = P.tk;
  Allocator spm(Space::Spm), acc(Space::Acc);
  P.q = spm.take(R * dk * P.es);
  for (int s = 0; s < P.stages; ++s) {
    P.k[s] = spm.take(tk * dk * P.es);
    P.v[s] = spm.take(tk * dv * P.es);
  }
  for (int s = 0; s < 2; ++s) {
    P.vt[s] = spm.take(dv * tk * P.es);
    P.pm[s] = spm.take(R * tk * P.es);
    P.s[s] = acc.take(R * tk * 4);
    P.vta[s] = acc.take(P.c * tk * 4);
  }
  P.idn = spm.take(P.c * P.c * P.es);
  if (dv % P.c != 0) P.idr = spm.take((dv % P.c) * (dv % P.c) * P.es);
  P.mx = spm.take(R * 4), P.sm = spm.take(R * 4), P.al = spm.take(R * 4);
  if (P.ns == 1) P.out = spm.take(R * dv * P.es);
  P.o = acc.take(R * dv * 4);
  P.fp0 = {spm.bytes(), acc.bytes()};
  if (P.zero_items > 0) P.fp0.scratchpad_bytes = std::max(P.fp0.scratchpad_bytes, round_up(P.zero_piece, kAlign));

  if (P.ns > 1) {
    // Column blocks of Dv (multiples of 32 columns) so that the combine uses the cores.
    P.ncb = std::clamp<std::int64_t>(ceil_div(chip.cores, P.base), 1, std::max<std::int64_t>(dv / 32, 1));
    P.cb = round_up(ceil_div(dv, P.ncb), std::min<std::int64_t>(dv, 32));
    P.ncb = ceil_div(dv, P.cb);
    Allocator spm1(Space::Spm);
    for (int s = 0; s < P.stages; ++s) {
      P.op[s] = spm1.take(R * P.cb * 4);
      P.ms[s] = spm1.take(R * 4);
      P.ls[s] = spm1.take(R * 4);
    }
    P.pw = spm1.take(R * 4), P.mx1 = spm1.take(R * 4), P.sm1 = spm1.take(R * 4), P.al1 = spm1.take(R * 4);
    P.lacc = spm1.take(R * 4);
    P.oacc = spm1.take(R * P.cb * 4);
    P.out1 = spm1.take(R * P.cb * P.es);
    P.fp1 = {spm1.bytes(), 0};
    P.slot = round_up(R * (dv + 2) * 4, kAlign);
    P.workspace = P.base * P.ns * P.slot;
  }
  return P;
}

// Item `bi` (before splitting) and split `split`.
Item item_of(const Plan& P, std::int64_t bi, std::int64_t split) {
  const AttentionProblem& p = P.p;
  Item it;
  it.bi = bi, it.split = split;
  std::int64_t r = bi;
  const std::int64_t hgi = r % P.hgc;
  r /= P.hgc;
  const std::int64_t qti = r % P.qt;
  r /= P.qt;
  it.kvh = r % p.heads_kv;
  it.b = r / p.heads_kv;
  it.h0 = it.kvh * P.G + hgi * P.hg;
  it.i0 = P.q_min + qti * P.qp;
  it.qpe = std::min(P.qp, p.seq_q - it.i0);
  it.rows = it.qpe * P.hg;
  const std::int64_t last_query = it.i0 + it.qpe - 1;
  const std::int64_t visible_end = p.causal ? std::min(p.seq_kv, last_query + P.diag + 1) : p.seq_kv;
  it.k_begin = split * P.tps * P.tk;
  it.k_end = P.ns > 1 ? std::min(visible_end, (split + 1) * P.tps * P.tk) : visible_end;
  it.tiles = ceil_div(std::max<std::int64_t>(it.k_end - it.k_begin, 0), P.tk);
  it.masked = p.causal && it.k_end - 1 > it.i0 + P.diag;
  it.query_major = !it.masked && it.qpe < P.hg;
  it.groups = it.query_major ? it.qpe : P.hg;
  it.group_rows = it.query_major ? P.hg : it.qpe;
  return it;
}

// Hbm address and row stride of group g's rows in a [B, Sq, Hq, d] tensor.
std::pair<std::int64_t, std::int64_t> group_rows_at(const Plan& P, const Item& it, std::int64_t base,
                                                    std::int64_t d, std::int64_t g) {
  const AttentionProblem& p = P.p;
  if (it.query_major)
    return {base + (((it.b * p.seq_q + it.i0 + g) * p.heads_q + it.h0) * d) * P.es, d * P.es};
  return {base + (((it.b * p.seq_q + it.i0) * p.heads_q + it.h0 + g) * d) * P.es, p.heads_q * d * P.es};
}

void store_rows(Emitter& e, const Plan& P, const Item& it, std::int64_t O, Addr src) {
  const std::int64_t dv = P.p.head_dim_v;
  for (std::int64_t g = 0; g < it.groups; ++g) {
    const auto [at, stride] = group_rows_at(P, it, O, dv, g);
    e.store(at, it.group_rows, dv * P.es, stride, offset(src, g * it.group_rows * dv * P.es));
  }
}

void build_zero_item(const Plan& P, std::int64_t zi, Args args, Program& program) {
  Emitter e(program);
  const std::int64_t per_batch = ceil_div(P.zero_bytes, P.zero_piece);
  const std::int64_t first = zi * Plan::kPiecesPerZeroItem;
  const std::int64_t last = std::min(P.zero_pieces, first + Plan::kPiecesPerZeroItem);
  const Addr zeros{Space::Spm, 0};
  e.load(zeros, args[4] + kConstZeros, 1, P.zero_piece, P.zero_piece);
  e.signal(Pipe::DmaIn, kZeros);
  e.wait(Pipe::DmaOut, kZeros);
  const std::int64_t batch_stride = P.p.seq_q * P.p.heads_q * P.p.head_dim_v * P.es;
  for (std::int64_t piece = first; piece < last; ++piece) {
    const std::int64_t b = piece / per_batch, at = piece % per_batch * P.zero_piece;
    const std::int64_t bytes = std::min(P.zero_piece, P.zero_bytes - at);
    e.store(args[3] + b * batch_stride + at, 1, bytes, bytes, zeros);
  }
}

void build_item(const Plan& P, const Item& it, Args args, Program& program) {
  const AttentionProblem& p = P.p;
  Emitter e(program);
  const std::int64_t Q = args[0], K = args[1], V = args[2], O = args[3], C = args[4], W = args[5];
  const std::int64_t dk = p.head_dim, dv = p.head_dim_v, es = P.es, R = it.rows, nt = it.tiles;
  const DType dt = p.dtype;
  const std::int64_t rem = dv % P.c;

  // Setup: Q rows, identities; m = -inf, l = 0.
  for (std::int64_t g = 0; g < it.groups; ++g) {
    const auto [at, stride] = group_rows_at(P, it, Q, dk, g);
    e.load(offset(P.q, g * it.group_rows * dk * es), at, it.group_rows, dk * es, stride);
  }
  const std::int64_t ident = C + identity_offset(dt), ident_stride = kConstIdentitySize * es;
  e.load(P.idn, ident, P.c, P.c * es, ident_stride);
  if (rem) e.load(P.idr, ident, rem, rem * es, ident_stride);
  e.signal(Pipe::DmaIn, kSetupMatrix);
  e.load(P.mx, C + kConstNegInf, 1, R * 4, R * 4);
  e.load(P.sm, C + kConstZeros, 1, R * 4, R * 4);
  e.signal(Pipe::DmaIn, kSetupVector);
  e.wait(Pipe::Matrix, kSetupMatrix);
  e.wait(Pipe::Vector, kSetupVector);

  auto tile_keys = [&](std::int64_t j) {
    const std::int64_t k0 = it.k_begin + j * P.tk;
    return std::pair{k0, std::min(P.tk, it.k_end - k0)};
  };
  auto chunk_cols = [&](std::int64_t q) { return std::min(P.c, dv - q * P.c); };

  auto emit_pv = [&](std::int64_t j) {
    const int s = static_cast<int>(j % 2);
    const std::int64_t ke = tile_keys(j).second;
    e.wait(Pipe::Matrix, p_full(s));
    e.mma(P.o, P.pm[s], P.vt[s], R, dv, ke, dt, dt, j > 0);
    if (j + 2 < nt) e.signal(Pipe::Matrix, p_free(s));
    e.signal(Pipe::Matrix, kOutDone);
  };

  for (std::int64_t j = 0; j < nt; ++j) {
    const int s = static_cast<int>(j % 2), kv = static_cast<int>(j % P.stages);
    const auto [k0, ke] = tile_keys(j);
    // dma_in: K_j, V_j in chunks of c columns.
    if (j >= P.stages) e.wait(Pipe::DmaIn, kv_empty(kv));
    const std::int64_t row = (it.b * p.seq_kv + k0) * p.heads_kv + it.kvh;
    e.load(P.k[kv], K + row * dk * es, ke, dk * es, p.heads_kv * dk * es);
    for (std::int64_t q = 0; q < P.nq; ++q)
      e.load(offset(P.v[kv], q * P.tk * P.c * es), V + (row * dv + q * P.c) * es, ke, chunk_cols(q) * es,
             p.heads_kv * dv * es);
    e.signal(Pipe::DmaIn, kv_full(kv));

    // matrix: S_j = Q K_j^T.
    e.wait(Pipe::Matrix, kv_full(kv));
    if (j >= 2) e.wait(Pipe::Matrix, s_free(s));
    e.mma(P.s[s], P.q, P.k[kv], R, ke, dk, dt, dt, false);
    e.signal(Pipe::Matrix, s_full(s));

    // V_j^T chunk by chunk: the matrix unit transposes into one of two f32 chunk buffers,
    // the vector unit converts it into V^T_j (which O += P V of tile j-2 has released).
    if (j >= 2) e.wait(Pipe::Vector, p_free(s));
    for (std::int64_t q = 0; q < P.nq; ++q) {
      const std::int64_t n = j * P.nq + q, cq = chunk_cols(q);
      const int u = static_cast<int>(n % 2);
      if (n >= 2) e.wait(Pipe::Matrix, vt_free(u));
      e.mma(P.vta[u], cq == P.c ? P.idn : P.idr, offset(P.v[kv], q * P.tk * P.c * es), cq, ke, cq, dt, dt, false);
      e.signal(Pipe::Matrix, vt_full(u));
      e.wait(Pipe::Vector, vt_full(u));
      e.convert(offset(P.vt[s], q * P.c * ke * es), P.vta[u], cq, ke, DType::f32, dt);
      if (n + 2 < nt * P.nq) e.signal(Pipe::Vector, vt_free(u));
    }
    if (j + P.stages < nt) e.signal(Pipe::Matrix, kv_empty(kv));

    if (j >= 1) emit_pv(j - 1);

    // vector: softmax step, O *= alpha.
    e.wait(Pipe::Vector, s_full(s));
    const bool mask = p.causal && k0 + ke - 1 > it.i0 + P.diag;
    const std::int64_t steps = mask ? it.groups : 1, rows = mask ? it.group_rows : R;
    for (std::int64_t g = 0; g < steps; ++g) {
      Vec v;
      v.op = VecOp::SoftmaxStep;
      v.dst = offset(P.pm[s], g * rows * ke * es);
      v.src0 = offset(P.s[s], g * rows * ke * 4);
      v.rows = rows, v.cols = ke;
      v.dtype_in = DType::f32, v.dtype_out = dt;
      v.softmax.max = offset(P.mx, g * rows * 4);
      v.softmax.sum = offset(P.sm, g * rows * 4);
      v.softmax.alpha = offset(P.al, g * rows * 4);
      v.softmax.scale = p.scale;
      v.softmax.causal = mask;
      v.softmax.first_query = it.i0, v.softmax.first_key = k0, v.softmax.diag = P.diag;
      e.vec(v);
    }
    if (j + 2 < nt) e.signal(Pipe::Vector, s_free(s));
    if (j >= 1) {
      e.wait(Pipe::Vector, kOutDone);
      Vec v;
      v.op = VecOp::RowScale, v.dst = P.o, v.src0 = P.o, v.src1 = P.al, v.rows = R, v.cols = dv;
      e.vec(v);
    }
    e.signal(Pipe::Vector, p_full(s));
  }
  if (nt > 0) emit_pv(nt - 1);

  e.wait(Pipe::Vector, kOutDone);
  if (P.ns == 1) {
    Vec v;
    v.op = VecOp::RowDivide, v.dst = P.out, v.src0 = P.o, v.src1 = P.sm, v.rows = R, v.cols = dv;
    v.dtype_out = dt;
    e.vec(v);
    e.signal(Pipe::Vector, kOutReady);
    e.wait(Pipe::DmaOut, kOutReady);
    store_rows(e, P, it, O, P.out);
    return;
  }
  // A split: unnormalised O, m and l to the workspace.
  e.signal(Pipe::Vector, kOutReady);
  e.wait(Pipe::DmaOut, kOutReady);
  const std::int64_t slot = W + (it.bi * P.ns + it.split) * P.slot;
  e.store(slot, 1, R * dv * 4, R * dv * 4, P.o);
  e.store(slot + P.rmax * dv * 4, 1, R * 4, R * 4, P.mx);
  e.store(slot + P.rmax * (dv + 1) * 4, 1, R * 4, R * 4, P.sm);
}

// Phase 1: combine the splits of item bi, columns [c0, c0 + cb) of Dv.
void build_combine(const Plan& P, std::int64_t item, Args args, Program& program) {
  const AttentionProblem& p = P.p;
  Emitter e(program);
  const std::int64_t bi = item / P.ncb, c0 = item % P.ncb * P.cb;
  const Item it = item_of(P, bi, 0);
  const std::int64_t C = args[4], W = args[5], R = it.rows, dv = p.head_dim_v, cols = std::min(P.cb, dv - c0);
  e.load(P.mx1, C + kConstNegInf, 1, R * 4, R * 4);
  e.load(P.sm1, C + kConstZeros, 1, R * 4, R * 4);
  e.signal(Pipe::DmaIn, kCombineSetup);
  e.wait(Pipe::Vector, kCombineSetup);
  for (std::int64_t s = 0; s < P.ns; ++s) {
    const int u = static_cast<int>(s % P.stages);
    const std::int64_t slot = W + (bi * P.ns + s) * P.slot;
    if (s >= P.stages) e.wait(Pipe::DmaIn, part_free(u));
    e.load(P.op[u], slot + c0 * 4, R, cols * 4, dv * 4);
    e.load(P.ms[u], slot + P.rmax * dv * 4, 1, R * 4, R * 4);
    e.load(P.ls[u], slot + P.rmax * (dv + 1) * 4, 1, R * 4, R * 4);
    e.signal(Pipe::DmaIn, part_full(u));

    e.wait(Pipe::Vector, part_full(u));
    Vec w;  // pw = e^(m_s - M), alpha = e^(M_old - M)
    w.op = VecOp::SoftmaxStep, w.dst = P.pw, w.src0 = P.ms[u], w.rows = R, w.cols = 1;
    w.softmax.max = P.mx1, w.softmax.sum = P.sm1, w.softmax.alpha = P.al1, w.softmax.scale = 1;
    e.vec(w);
    auto scaled_sum = [&](Addr acc, Addr part, std::int64_t n) {
      Vec v;
      v.rows = R, v.cols = n, v.src1 = P.pw, v.dst = acc;
      if (s == 0) {
        v.op = VecOp::RowScale, v.src0 = part;
        e.vec(v);
        return;
      }
      Vec r;
      r.op = VecOp::RowScale, r.dst = acc, r.src0 = acc, r.src1 = P.al1, r.rows = R, r.cols = n;
      e.vec(r);
      v.op = VecOp::ScaleAccumulate, v.src0 = part, v.scale_dtype = DType::f32, v.imm = 1;
      e.vec(v);
    };
    scaled_sum(P.oacc, P.op[u], cols);
    scaled_sum(P.lacc, P.ls[u], 1);
    if (s + P.stages < P.ns) e.signal(Pipe::Vector, part_free(u));
  }
  Vec v;
  v.op = VecOp::RowDivide, v.dst = P.out1, v.src0 = P.oacc, v.src1 = P.lacc, v.rows = R, v.cols = cols;
  v.dtype_out = p.dtype;
  e.vec(v);
  e.signal(Pipe::Vector, kCombineReady);
  e.wait(Pipe::DmaOut, kCombineReady);
  for (std::int64_t g = 0; g < it.groups; ++g) {
    const auto [at, stride] = group_rows_at(P, it, args[3], dv, g);
    e.store(at + c0 * P.es, it.group_rows, cols * P.es, stride, offset(P.out1, g * it.group_rows * cols * P.es));
  }
}

void build_phase0(const Plan& P, std::int64_t item, Args args, Program& out) {
  if (item >= P.base * P.ns) return build_zero_item(P, item - P.base * P.ns, args, out);
  // Head groups of one KV head fastest (they share its KV tiles in L2), then splits.
  const std::int64_t hgi = item % P.hgc, rest = item / P.hgc;
  const std::int64_t split = rest % P.ns, outer = rest / P.ns;
  build_item(P, item_of(P, outer * P.hgc + hgi, split), args, out);
}

// Estimated cycles: per item, the KV tiles times the steady-state tile time (the slowest
// pipe; DMA at least its share of HBM; or a K/V buffer's round trip through load, latency
// and the matrix unit over the stages) plus the fixed cost, in waves over the cores; plus
// the combine phase; never less than the bytes over HBM.
double estimate(const Plan& P, const ChipDesc& chip) {
  const AttentionProblem& p = P.p;
  if (P.base == 0) return 0;
  const std::vector<std::int64_t> args(6, 0);
  const double lat = latency_cycles(chip), hbm_per_cycle = chip.hbm_bytes_per_s / chip.clock_hz;
  // Per KV tile and fixed cycles of an item, from builds of a non-causal 2- and 3-tile item.
  const ItemCost c = item_cost(chip, [&](int tiles) {
    AttentionProblem q = p;
    q.causal = false, q.seq_kv = tiles * P.tk, q.seq_q = std::min(p.seq_q, P.qp), q.batch = 1, q.heads_kv = 1;
    q.heads_q = P.hg;
    TileConfig t{static_cast<int>(P.qp), static_cast<int>(P.tk), static_cast<int>(P.hg), P.stages};
    ChipDesc one = chip;
    one.cores = 1;
    const Plan Q = make_plan(q, t, one);
    Program prog;
    build_item(Q, item_of(Q, 0, 0), args, prog);
    return prog;
  });
  // Average tiles per item (causal items see fewer).
  double tiles = 0;
  for (std::int64_t qti = 0; qti < P.qt; ++qti) tiles += static_cast<double>(item_of(P, qti * P.hgc, 0).tiles);
  tiles /= static_cast<double>(std::max<std::int64_t>(P.qt, 1));
  const double items = static_cast<double>(P.base * P.ns);
  const double active = std::min(items, static_cast<double>(chip.cores));
  const double tile_bytes = static_cast<double>(P.tk * (p.head_dim + p.head_dim_v) * P.es);
  // Items of one KV head run together (head groups, query tiles) and share its tiles in L2.
  const double sharing = std::min(active, static_cast<double>(P.hgc * (P.ns == 1 ? P.qt : 1)));
  const double load = std::max(c.step[0], tile_bytes * active / sharing / hbm_per_cycle);
  const double step = std::max({load, c.step[1], c.step[2], c.step[3], (load + lat + c.step[1]) / P.stages});
  const double item = tiles * step + c.fixed[0] + c.fixed[1] + c.fixed[2] + c.fixed[3] + 2 * lat;
  double total = std::ceil(items / static_cast<double>(chip.cores)) * item;
  if (P.ns > 1) {
    Program prog;
    build_combine(P, 0, args, prog);
    double pc[4] = {0, 0, 0, 0};
    add_pipe_cycles(chip, prog, pc);
    const double per_split = std::max({pc[0], pc[2], (pc[0] + lat + pc[2]) / P.stages}) / static_cast<double>(P.ns);
    total += std::ceil(static_cast<double>(P.base * P.ncb) / static_cast<double>(chip.cores)) *
             (static_cast<double>(P.ns) * per_split + pc[3] + 2 * lat);
  }
  const double bytes = problem_min_bytes(p) + 2.0 * static_cast<double>(P.workspace);
  return std::max(total, bytes / hbm_per_cycle);
}

}  // namespace

namespace {

// What rules the problem out whatever the tiles.
std::string check_problem(const AttentionProblem& p, const ChipDesc& chip) {
  if (!is_float(p.dtype)) return "attention dtype must be f32, bf16 or f16";
  if (matrix_rate(chip, p.dtype) <= 0)
    return std::string("the chip's matrix unit has no ") + std::string(dtype_name(p.dtype)) + " rate";
  if (p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) return "heads_q must be a multiple of heads_kv";
  if (p.head_dim <= 0 || p.head_dim_v <= 0) return "head dims must be positive";
  return "";
}

}  // namespace

std::string check(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_problem(p, chip); !why.empty()) return why;
  if (t.stages < 2 || t.stages > kMaxStages) return "attention stages must be 2 to 4";
  if (t.m <= 0 || t.n <= 0 || t.k <= 0 || (p.heads_q / p.heads_kv) % t.k != 0)
    return "attention tiles " + std::to_string(t.m) + "x" + std::to_string(t.n) + "x" + std::to_string(t.k) +
           ": k must divide the " + std::to_string(p.heads_q / p.heads_kv) + " query heads per KV head";
  const Plan P = make_plan(p, t, chip);
  if (P.rmax * 4 > kConstVectorBytes) return "attention: more than 4096 query rows per work item";
  const Footprint f = footprint(p, t, chip);
  return fit_problem(f, chip);
}

Footprint footprint(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip) {
  const Plan P = make_plan(p, t, chip);
  return {std::max(P.fp0.scratchpad_bytes, P.fp1.scratchpad_bytes),
          std::max(P.fp0.accumulator_bytes, P.fp1.accumulator_bytes)};
}

int phases(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip) {
  return make_plan(p, t, chip).ns > 1 ? 2 : 1;
}

std::int64_t workspace(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip) {
  return make_plan(p, t, chip).workspace;
}

TileConfig choose(const AttentionProblem& p, const ChipDesc& chip) {
  const std::int64_t G = p.heads_kv > 0 && p.heads_q % p.heads_kv == 0 ? p.heads_q / p.heads_kv : 1;
  std::vector<TileConfig> candidates;
  const std::int64_t sq = std::max<std::int64_t>(p.seq_q, 1), skv = std::max<std::int64_t>(p.seq_kv, 1);
  for (std::int64_t tk : {16, 32, 64, 128, 256}) {
    if (tk > 16 && tk / 2 >= skv) continue;
    for (std::int64_t qp : {1, 2, 4, 8, 16, 32, 64, 128, 256}) {
      if (qp > 1 && qp / 2 >= sq) continue;
      for (std::int64_t hg = 1; hg <= G; ++hg) {
        if (G % hg != 0 || qp * hg > 1024) continue;
        for (int stages = 2; stages <= kMaxStages; ++stages)
          candidates.push_back({static_cast<int>(qp), static_cast<int>(tk), static_cast<int>(hg), stages});
      }
    }
  }
  if (!check_problem(p, chip).empty()) return candidates.front();
  return pick(
      candidates,
      [&](const TileConfig& t) -> std::int64_t {
        const Footprint f = footprint(p, t, chip);
        return fits(f, chip) && t.m * t.k * 4 <= kConstVectorBytes ? f.scratchpad_bytes : -1;
      },
      [&](const TileConfig& t) { return estimate(make_plan(p, t, chip), chip); });
}

TileKernel build(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip, int phase) {
  auto plan = std::make_shared<const Plan>(make_plan(p, t, chip));
  TileKernel k;
  if (phase == 0) {
    k.name = plan->ns > 1 ? "attention (KV splits)" : "attention";
    k.work_items = plan->items0();
    k.build = [plan](std::int64_t item, Args args, Program& out) { build_phase0(*plan, item, args, out); };
  } else {
    k.name = "attention (combine KV splits)";
    k.work_items = plan->base * plan->ncb;
    k.build = [plan](std::int64_t item, Args args, Program& out) { build_combine(*plan, item, args, out); };
  }
  return k;
}

}  // namespace anychip::kernels::sim
