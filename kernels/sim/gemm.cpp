// GEMMs on the simulator: gemm_fp8 (DeepSeek block-scaled, "NT") and gemm (f32/bf16/f16).
//
// A work item computes one m x n output tile. Work items run over the output tiles in
// groups of kGroupM tile rows (for each B tile column, the A tiles of the group), so that
// the cores working at the same time share A and B tiles in L2.
//
// gemm_fp8 walks K in 128-wide steps, one scale block each; the loads of step i go to
// buffer set i % S (A, B, and A's scale column; S = tiles.stages, 2 to 4), so the DMA of
// the next S-1 steps overlaps the matrix unit on this one and hides the HBM latency. Each
// set has one "full" flag (dma_in -> matrix) and one "empty" flag (matrix -> dma_in) for
// A and B together, since the mma needs both; A's scales share them on a native chip and
// have their own pair (dma_in <-> vector) where the vector unit reads them. A's scales are
// gathered per step (one per row: a column of the [M, K/128] scale array); B's scales for
// the tile (one row of [N/128, K/128] per 128 columns) are loaded once.
//
// UE8M0 scales reach the vector unit as f32 through Dequantize of FP8 ones (Convert does
// not read UE8M0).
//   Native UE8M0 chip, UE8M0 scales: one scaled mma per step and 128-column chunk, into
//   the accumulator (acc = sum_b sa[row] * sb * A_b B_b^T).
//   Otherwise (no native scales, or f32 scales): the "promotion" DeepGEMM does on Hopper.
//   The matrix unit writes each step's unscaled product to a temporary accumulator
//   (double-buffered, so the next mma overlaps), and the vector unit adds it to the running
//   fp32 sum in the scratchpad: comb = sa * sb (a row vector), run += tmp * comb[row].
// Then the result is converted to the output dtype (bf16) and stored; an f32 result is
// stored straight from the accumulator (or the running sum). The converted tile reuses
// the operand buffers (free once the last mma has read them) when it fits there.
//
// gemm_fp8_grouped (DeepGEMM's contiguous layout) is the same kernel with B chosen per
// tile: the tile's group is the group of its first row (tiles of m rows, m dividing align,
// never mix groups), read by the DMA engine's gather (simulator/program.hpp, LoadIndex):
// B and B's scales are loaded from expert g's rows, or zero-filled when g is -1. A and A's
// scales are loaded with a per-row mask on the same group array, so that every row of
// group -1 is zero whatever A holds there, and its output row is 0. In a timing-only run
// the tiles are assumed spread evenly over the groups (tile mi of mt has group
// mi * groups / mt), so that B tiles are shared in L2 only by the tiles of one group.
//
// A tile wider than 128 columns is cut into 128-column chunks (each chunk's B scale is one
// value per step); narrower tiles divide 128. Edge tiles use the partial m, n; nothing
// outside the matrices is read or written.
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "anychip/error.hpp"
#include "kernels/sim/ops.hpp"
#include "kernels/sim/tile_builder.hpp"

namespace anychip::kernels::sim {
namespace {

constexpr std::int64_t kScaleBlock = 128;
constexpr std::int64_t kGroupM = 8;

// Flags.
constexpr int kMaxStages = 4;
constexpr int full(int s) { return 0 + s; }       // dma_in -> matrix: A/B of set s loaded
constexpr int empty(int s) { return 4 + s; }      // matrix -> dma_in: A/B of set s read
constexpr int tmp_full(int t) { return 8 + t; }   // matrix -> vector: temporary t written
constexpr int tmp_free(int t) { return 10 + t; }  // vector -> matrix: temporary t read
constexpr int sa_full(int s) { return 12 + s; }   // dma_in -> vector: A scales of set s
constexpr int sa_free(int s) { return 16 + s; }   // vector -> dma_in
constexpr int kScalesB = 20;                       // dma_in -> matrix or vector: B scales
constexpr int kAccDone = 21;                       // matrix -> vector / dma_out
constexpr int kOutReady = 22;                      // vector -> dma_out

int stages_of(const TileConfig& t) { return std::clamp(t.stages, 2, kMaxStages); }

// The output tiles and their order.
struct TileGrid {
  std::int64_t m = 0, n = 0, tm = 0, tn = 0, mt = 0, nt = 0;
  TileGrid(std::int64_t m_, std::int64_t n_, std::int64_t tm_, std::int64_t tn_)
      : m(m_), n(n_), tm(tm_), tn(tn_), mt(ceil_div(m_, tm_)), nt(ceil_div(n_, tn_)) {}
  std::int64_t items() const { return mt * nt; }
  // Tile (mi, ni) of work item `item`: groups of kGroupM tile rows, column by column.
  std::pair<std::int64_t, std::int64_t> tile(std::int64_t item) const {
    const std::int64_t per_group = kGroupM * nt;
    const std::int64_t group = item / per_group, first = group * kGroupM;
    const std::int64_t rows = std::min(kGroupM, mt - first), in = item % per_group;
    return {first + in % rows, in / rows};
  }
};

// Stores the m x n result (chunks of `chunk` columns, chunk c dense at src + c*tm*chunk*size)
// at D[m0, n0].
void store_tile(Emitter& e, std::int64_t d, std::int64_t ldd, DType out, std::int64_t m0, std::int64_t n0,
                std::int64_t me, std::int64_t ne, std::int64_t tm, std::int64_t chunk, Addr src) {
  const std::int64_t size = bytes_of(out, 1);
  for (std::int64_t c = 0; c * chunk < ne; ++c) {
    const std::int64_t cw = std::min(chunk, ne - c * chunk);
    e.store(d + (m0 * ldd + n0 + c * chunk) * size, me, cw * size, ldd * size,
            offset(src, c * tm * chunk * size));
  }
}

// Converts the f32 chunks at src to `out` at dst (same chunk layout).
void convert_tile(Emitter& e, Addr dst, Addr src, DType out, std::int64_t me, std::int64_t ne,
                  std::int64_t tm, std::int64_t chunk) {
  for (std::int64_t c = 0; c * chunk < ne; ++c) {
    const std::int64_t cw = std::min(chunk, ne - c * chunk);
    e.convert(offset(dst, c * tm * chunk * bytes_of(out, 1)), offset(src, c * tm * chunk * 4), me, cw,
              DType::f32, out);
  }
}

// ---------------------------------------------------------------------------------------
// gemm_fp8

struct Fp8Plan {
  GemmFp8Problem p;
  bool grouped = false;           // gemm_fp8_grouped: p.n columns per group
  std::int64_t groups = 1;
  std::int64_t tm = 0, tn = 0, chunk = 0, chunks = 0, nk = 0, ssa = 0, ssb = 0;
  int stages = 2;
  bool native = false;
  Addr a[kMaxStages], b[kMaxStages], sa[kMaxStages], sb, sbf, saf, ones, comb, run, out;  // scratchpad
  Addr acc, tmp[2];                                      // accumulator
  Footprint fp;
};

Fp8Plan plan_fp8(const GemmFp8Problem& p, const TileConfig& t, const ChipDesc& chip, std::int64_t groups = 0) {
  Fp8Plan P;
  P.p = p;
  P.grouped = groups > 0, P.groups = std::max<std::int64_t>(groups, 1);
  P.tm = std::max(t.m, 1), P.tn = std::max(t.n, 1);
  P.chunk = std::min<std::int64_t>(P.tn, kScaleBlock);
  P.chunks = ceil_div(P.tn, P.chunk);
  P.nk = p.k / kScaleBlock;
  P.ssa = bytes_of(p.a_scale_dtype, 1), P.ssb = bytes_of(p.b_scale_dtype, 1);
  P.native = chip.core.matrix.native_ue8m0_scales && p.a_scale_dtype == DType::ue8m0 &&
             p.b_scale_dtype == DType::ue8m0;
  P.stages = stages_of(t);
  Allocator spm(Space::Spm), acc(Space::Acc);
  for (int s = 0; s < P.stages; ++s) {
    P.a[s] = spm.take(P.tm * kScaleBlock);
    P.b[s] = spm.take(P.tn * kScaleBlock);
  }
  const std::int64_t operands = spm.bytes();
  for (int s = 0; s < P.stages; ++s) P.sa[s] = spm.take(P.tm * P.ssa);
  P.sb = spm.take(P.chunks * P.nk * P.ssb);
  if (P.native) {
    P.acc = acc.take(P.tm * P.tn * 4);
  } else {
    P.sbf = P.ssb == 4 ? P.sb : spm.take(P.chunks * P.nk * 4);
    P.saf = spm.take(P.tm * 4);
    if (P.ssa == 1 || P.ssb == 1) P.ones = spm.take(ones_bytes(std::max(P.tm, P.chunks * P.nk)));
    P.comb = spm.take(P.tm * 4);
    P.run = spm.take(P.tm * P.tn * 4);
    for (int s = 0; s < 2; ++s) P.tmp[s] = acc.take(P.tm * P.tn * 4);
  }
  if (p.out_dtype != DType::f32) {
    const std::int64_t out = P.tm * P.tn * bytes_of(p.out_dtype, 1);
    P.out = out <= operands ? P.a[0] : spm.take(out);
  }
  P.fp = {spm.bytes(), acc.bytes()};
  return P;
}

void build_fp8(const Fp8Plan& P, const TileGrid& grid, std::int64_t item, std::span<const std::int64_t> args,
               Program& program) {
  const GemmFp8Problem& p = P.p;
  Emitter e(program);
  const bool grouped = P.grouped;
  const std::int64_t A = args[0], SA = args[1], B = args[2], SB = args[3];
  const std::int64_t D = args[grouped ? 5 : 4], C = args[grouped ? 6 : 5];
  const auto [mi, ni] = grid.tile(item);
  const std::int64_t m0 = mi * P.tm, n0 = ni * P.tn;
  const std::int64_t me = std::min(P.tm, p.m - m0), ne = std::min(P.tn, p.n - n0);
  const std::int64_t nch = ceil_div(ne, P.chunk), nk = P.nk, K = p.k;

  // Grouped: the tile's group is read at `group` (its first row); B and B's scales move by
  // whole experts, A and A's scales are masked row by row.
  const std::int64_t group = grouped ? args[4] + m0 * 4 : 0;
  const std::int64_t assumed = std::min(P.groups - 1, mi * P.groups / std::max<std::int64_t>(grid.mt, 1));
  auto per_tile = [&](std::int64_t scale) { return LoadIndex{group, false, 4, scale, P.groups, assumed}; };
  const LoadIndex mask{group, true, 4, 0, P.groups, 0};
  auto load_a = [&](Addr dst, std::int64_t src, std::int64_t row_bytes, std::int64_t stride) {
    if (grouped) e.load(dst, src, me, row_bytes, stride, mask);
    else e.load(dst, src, me, row_bytes, stride);
  };
  auto load_b = [&](Addr dst, std::int64_t src, std::int64_t rows, std::int64_t row_bytes, std::int64_t stride,
                    std::int64_t group_bytes) {
    if (grouped) e.load(dst, src, rows, row_bytes, stride, per_tile(group_bytes));
    else e.load(dst, src, rows, row_bytes, stride);
  };

  // B's scales of this tile's chunks (rows n0/128 ...), every K block. A grouped tile
  // loads them after its first A tile, whose mask reads all the tile's group ids at once
  // (the DMA engine then holds the first row's, which addresses B).
  const bool ue8m0 = !P.native && (P.ssa == 1 || P.ssb == 1);
  auto scales_b = [&] {
    load_b(P.sb, SB + (n0 / kScaleBlock) * nk * P.ssb, nch, nk * P.ssb, nk * P.ssb,
           p.n / kScaleBlock * nk * P.ssb);
    if (ue8m0) e.load_ones(P.ones, C, std::max(me, nch * nk));
    e.signal(Pipe::DmaIn, kScalesB);
    if (P.native) {
      e.wait(Pipe::Matrix, kScalesB);
    } else {
      e.wait(Pipe::Vector, kScalesB);
      if (P.ssb == 1) e.ue8m0_to_f32(P.sbf, P.ones, P.sb, nch, nk);
    }
  };
  if (!grouped) scales_b();

  for (std::int64_t kb = 0; kb < nk; ++kb) {
    const int s = static_cast<int>(kb % P.stages), t = static_cast<int>(kb % 2);
    const bool reused = kb >= P.stages, reused_later = kb + P.stages < nk;
    const bool tmp_reused = kb >= 2, tmp_reused_later = kb + 2 < nk;
    // dma_in: A, B (and A's scale column) of this step.
    if (reused) e.wait(Pipe::DmaIn, empty(s));
    load_a(P.a[s], A + m0 * K + kb * kScaleBlock, kScaleBlock, K);
    if (grouped && kb == 0) scales_b();
    load_b(P.b[s], B + n0 * K + kb * kScaleBlock, ne, kScaleBlock, K, p.n * K);
    if (P.native) {
      load_a(P.sa[s], SA + (m0 * nk + kb) * P.ssa, P.ssa, nk * P.ssa);
      e.signal(Pipe::DmaIn, full(s));
    } else {
      e.signal(Pipe::DmaIn, full(s));
      if (reused) e.wait(Pipe::DmaIn, sa_free(s));
      load_a(P.sa[s], SA + (m0 * nk + kb) * P.ssa, P.ssa, nk * P.ssa);
      e.signal(Pipe::DmaIn, sa_full(s));
    }

    // matrix
    e.wait(Pipe::Matrix, full(s));
    if (!P.native && tmp_reused) e.wait(Pipe::Matrix, tmp_free(t));
    for (std::int64_t c = 0; c < nch; ++c) {
      const std::int64_t cw = std::min(P.chunk, ne - c * P.chunk);
      Mma m;
      m.a = P.a[s];
      m.b = offset(P.b[s], c * P.chunk * kScaleBlock);
      m.a_dtype = p.a_dtype, m.b_dtype = p.b_dtype;
      m.m = me, m.n = cw, m.k = kScaleBlock;
      if (P.native) {
        m.acc = offset(P.acc, c * P.tm * P.chunk * 4);
        m.accumulate = kb > 0;
        m.scaled = true;
        m.scale_a = {P.sa[s], p.a_scale_dtype};
        m.scale_b = {offset(P.sb, (c * nk + kb) * P.ssb), p.b_scale_dtype};
      } else {
        m.acc = offset(P.tmp[t], c * P.tm * P.chunk * 4);
        m.accumulate = false;
      }
      e.mma(m);
    }
    if (reused_later) e.signal(Pipe::Matrix, empty(s));
    if (P.native) continue;
    e.signal(Pipe::Matrix, tmp_full(t));

    // vector: run (+)= tmp * (sa * sb)[row]
    e.wait(Pipe::Vector, sa_full(s));
    Addr sa_f32 = P.sa[s];
    if (P.ssa == 1) {
      e.ue8m0_to_f32(P.saf, P.ones, P.sa[s], 1, me);
      sa_f32 = P.saf;
    }
    e.wait(Pipe::Vector, tmp_full(t));
    for (std::int64_t c = 0; c < nch; ++c) {
      const std::int64_t cw = std::min(P.chunk, ne - c * P.chunk);
      Vec comb;
      comb.op = VecOp::RowScale, comb.dst = P.comb, comb.src0 = sa_f32;
      comb.src1 = offset(P.sbf, (c * nk + kb) * 4), comb.rows = 1, comb.cols = me;
      e.vec(comb);
      Vec acc;
      acc.op = kb == 0 ? VecOp::RowScale : VecOp::ScaleAccumulate;
      acc.dst = offset(P.run, c * P.tm * P.chunk * 4);
      acc.src0 = offset(P.tmp[t], c * P.tm * P.chunk * 4);
      acc.src1 = P.comb, acc.rows = me, acc.cols = cw;
      acc.scale_dtype = DType::f32, acc.imm = 1;
      e.vec(acc);
    }
    if (reused_later) e.signal(Pipe::Vector, sa_free(s));
    if (tmp_reused_later) e.signal(Pipe::Vector, tmp_free(t));
  }

  // Epilogue: convert (unless f32) and store.
  const Addr result = P.native ? P.acc : P.run;
  int ready = kOutReady;
  if (P.native) {
    e.signal(Pipe::Matrix, kAccDone);
    if (p.out_dtype == DType::f32) ready = kAccDone;
    else e.wait(Pipe::Vector, kAccDone);
  }
  if (p.out_dtype != DType::f32) convert_tile(e, P.out, result, p.out_dtype, me, ne, P.tm, P.chunk);
  if (ready == kOutReady) e.signal(Pipe::Vector, kOutReady);
  e.wait(Pipe::DmaOut, ready);
  store_tile(e, D, p.n, p.out_dtype, m0, n0, me, ne, P.tm, P.chunk, p.out_dtype == DType::f32 ? result : P.out);
}

// Estimated cycles of the whole kernel: per work item, the steady-state step times the
// steps plus the prologue and epilogue; work items in waves over the cores; never less
// than the bytes over HBM (each matrix once) or over L2 (every tile load). A step takes
// the slowest pipe's time, or, when the S buffers of an operand cannot cover the HBM
// latency, (load + latency + mma) / S: a buffer is loaded again only after its mma.
double estimate(const ChipDesc& chip, std::int64_t items, std::int64_t steps, int stages, const ItemCost& c,
                double loaded_per_item, double unique_bytes) {
  const double cycle = (c.step[0] + latency_cycles(chip) + c.step[1]) / stages;
  const double step = std::max({c.step[0], c.step[1], c.step[2], c.step[3], cycle});
  const double item = static_cast<double>(steps) * step + c.fixed[0] + c.fixed[1] + c.fixed[2] + c.fixed[3] +
                      latency_cycles(chip);
  const double waves = std::ceil(static_cast<double>(items) / static_cast<double>(chip.cores));
  const double hbm_per_cycle = chip.hbm_bytes_per_s / chip.clock_hz;
  const double l2_per_cycle = chip.l2_bytes_per_s / chip.clock_hz;
  return std::max({waves * item, unique_bytes / hbm_per_cycle,
                   loaded_per_item * static_cast<double>(items) / l2_per_cycle});
}

double estimate_fp8(const GemmFp8Problem& p, const TileConfig& t, const ChipDesc& chip, std::int64_t groups = 0) {
  const Fp8Plan P = plan_fp8(p, t, chip, groups);
  const TileGrid grid(p.m, p.n, P.tm, P.tn);
  const std::int64_t me = std::min(P.tm, p.m), ne = std::min(P.tn, p.n);
  // The plain kernel's costs: a grouped kernel's gathers add one index read per tile
  // (the DMA engine keeps the group), not the one per load that instruction_cycles counts.
  const std::vector<std::int64_t> args(7, 0);
  const ItemCost c = item_cost(chip, [&](int steps) {
    GemmFp8Problem q = p;
    q.k = steps * kScaleBlock;
    Program prog;
    build_fp8(plan_fp8(q, t, chip), grid, 0, args, prog);
    return prog;
  });
  const double loaded = static_cast<double>((me + ne) * p.k) + static_cast<double>(me * P.nk * P.ssa);
  const double unique = static_cast<double>((p.m + P.groups * p.n) * p.k) +
                        static_cast<double>(p.m * p.n * bytes_of(p.out_dtype, 1));
  return estimate(chip, grid.items(), P.nk, P.stages, c, loaded, unique);
}

// ---------------------------------------------------------------------------------------
// gemm

struct GemmPlan {
  GemmProblem p;
  std::int64_t tm = 0, tn = 0, tk = 0, nk = 0;
  int stages = 2;
  Addr a[kMaxStages], b[kMaxStages], out, acc;
  Footprint fp;
};

GemmPlan plan_gemm(const GemmProblem& p, const TileConfig& t) {
  GemmPlan P;
  P.p = p;
  P.tm = std::max(t.m, 1), P.tn = std::max(t.n, 1), P.tk = std::max(t.k, 1);
  P.nk = ceil_div(p.k, P.tk);
  Allocator spm(Space::Spm), acc(Space::Acc);
  const std::int64_t es = bytes_of(p.in_dtype, 1);
  P.stages = stages_of(t);
  for (int s = 0; s < P.stages; ++s) {
    P.a[s] = spm.take(P.tm * P.tk * es);
    P.b[s] = spm.take(P.tn * P.tk * es);
  }
  if (p.out_dtype != DType::f32) {
    const std::int64_t out = P.tm * P.tn * bytes_of(p.out_dtype, 1);
    P.out = out <= spm.bytes() ? P.a[0] : spm.take(out);
  }
  P.acc = acc.take(P.tm * P.tn * 4);
  P.fp = {spm.bytes(), acc.bytes()};
  return P;
}

void build_gemm(const GemmPlan& P, const TileGrid& grid, std::int64_t item, std::span<const std::int64_t> args,
                Program& program) {
  const GemmProblem& p = P.p;
  Emitter e(program);
  const std::int64_t A = args[0], B = args[1], D = args[2];
  const auto [mi, ni] = grid.tile(item);
  const std::int64_t m0 = mi * P.tm, n0 = ni * P.tn;
  const std::int64_t me = std::min(P.tm, p.m - m0), ne = std::min(P.tn, p.n - n0);
  const std::int64_t es = bytes_of(p.in_dtype, 1), K = p.k;
  for (std::int64_t kb = 0; kb < P.nk; ++kb) {
    const int s = static_cast<int>(kb % P.stages);
    const std::int64_t k0 = kb * P.tk, ke = std::min(P.tk, K - k0);
    if (kb >= P.stages) e.wait(Pipe::DmaIn, empty(s));
    e.load(P.a[s], A + (m0 * K + k0) * es, me, ke * es, K * es);
    e.load(P.b[s], B + (n0 * K + k0) * es, ne, ke * es, K * es);
    e.signal(Pipe::DmaIn, full(s));
    e.wait(Pipe::Matrix, full(s));
    e.mma(P.acc, P.a[s], P.b[s], me, ne, ke, p.in_dtype, p.in_dtype, kb > 0);
    if (kb + P.stages < P.nk) e.signal(Pipe::Matrix, empty(s));
  }
  e.signal(Pipe::Matrix, kAccDone);
  if (p.out_dtype == DType::f32) {
    e.wait(Pipe::DmaOut, kAccDone);
    store_tile(e, D, p.n, p.out_dtype, m0, n0, me, ne, P.tm, P.tn, P.acc);
    return;
  }
  e.wait(Pipe::Vector, kAccDone);
  convert_tile(e, P.out, P.acc, p.out_dtype, me, ne, P.tm, P.tn);
  e.signal(Pipe::Vector, kOutReady);
  e.wait(Pipe::DmaOut, kOutReady);
  store_tile(e, D, p.n, p.out_dtype, m0, n0, me, ne, P.tm, P.tn, P.out);
}

double estimate_gemm(const GemmProblem& p, const TileConfig& t, const ChipDesc& chip) {
  const GemmPlan P = plan_gemm(p, t);
  const TileGrid grid(p.m, p.n, P.tm, P.tn);
  const std::vector<std::int64_t> args(5, 0);
  const ItemCost c = item_cost(chip, [&](int steps) {
    GemmProblem q = p;
    q.k = steps * P.tk;
    Program prog;
    build_gemm(plan_gemm(q, t), grid, 0, args, prog);
    return prog;
  });
  const std::int64_t me = std::min(P.tm, p.m), ne = std::min(P.tn, p.n);
  const double es = static_cast<double>(bytes_of(p.in_dtype, 1));
  const double loaded = static_cast<double>((me + ne) * p.k) * es;
  const double unique = static_cast<double>((p.m + p.n) * p.k) * es +
                        static_cast<double>(p.m * p.n * bytes_of(p.out_dtype, 1));
  return estimate(chip, grid.items(), P.nk, P.stages, c, loaded, unique);
}

const std::int64_t kTileSizes[] = {16, 32, 64, 128, 256};

}  // namespace

// gemm_fp8 --------------------------------------------------------------------------------

std::string check(const GemmFp8Problem& p, const TileConfig& t, const ChipDesc& chip) {
  if (!is_fp8(p.a_dtype) || !is_fp8(p.b_dtype)) return "gemm_fp8 operands must be f8e4m3 or f8e5m2";
  if (!is_scale_dtype(p.a_scale_dtype) || !is_scale_dtype(p.b_scale_dtype))
    return "gemm_fp8 scales must be f32 or ue8m0";
  if (p.out_dtype != DType::f32 && p.out_dtype != DType::bf16 && p.out_dtype != DType::f16)
    return "gemm_fp8 output must be f32, bf16 or f16";
  if (p.k <= 0 || p.k % kScaleBlock != 0) return "K=" + std::to_string(p.k) + " is not a positive multiple of 128";
  if (chip.core.matrix.fp8_flops_per_cycle <= 0) return "the chip's matrix unit has no FP8 rate";
  if (t.stages < 2 || t.stages > kMaxStages) return "gemm_fp8 stages must be 2 to 4";
  if (t.m <= 0 || t.n <= 0 || t.k != kScaleBlock)
    return "gemm_fp8 tiles must be m x n x 128, got " + std::to_string(t.m) + "x" + std::to_string(t.n) + "x" +
           std::to_string(t.k);
  if (t.n > kScaleBlock ? t.n % kScaleBlock != 0 : kScaleBlock % t.n != 0)
    return "gemm_fp8 tile n=" + std::to_string(t.n) + " must divide 128 or be a multiple of it";
  return fit_problem(footprint(p, t, chip), chip);
}

Footprint footprint(const GemmFp8Problem& p, const TileConfig& t, const ChipDesc& chip) {
  return plan_fp8(p, t, chip).fp;
}

TileConfig choose(const GemmFp8Problem& p, const ChipDesc& chip) {
  std::vector<TileConfig> candidates;
  for (int stages = 2; stages <= kMaxStages; ++stages)
    for (std::int64_t tm : kTileSizes)
      for (std::int64_t tn : kTileSizes) {
        if (tm > round_up(std::max<std::int64_t>(p.m, 1), 16) * 2 && tm > 16) continue;
        if (tn > round_up(std::max<std::int64_t>(p.n, 1), 16) * 2 && tn > 16) continue;
        if (stages > 2 && p.k / kScaleBlock <= 2) continue;
        candidates.push_back({static_cast<int>(tm), static_cast<int>(tn), static_cast<int>(kScaleBlock), stages});
      }
  if (p.k <= 0 || p.k % kScaleBlock != 0 || p.m <= 0 || p.n <= 0) return candidates.front();
  return pick(
      candidates,
      [&](const TileConfig& t) -> std::int64_t {
        const Footprint f = footprint(p, t, chip);
        return fits(f, chip) ? f.scratchpad_bytes : -1;
      },
      [&](const TileConfig& t) { return estimate_fp8(p, t, chip); });
}

TileKernel build(const GemmFp8Problem& p, const TileConfig& t, const ChipDesc& chip, int) {
  auto plan = std::make_shared<const Fp8Plan>(plan_fp8(p, t, chip));
  const TileGrid grid(p.m, p.n, plan->tm, plan->tn);
  TileKernel k;
  k.name = "gemm_fp8";
  k.work_items = p.m > 0 && p.n > 0 ? grid.items() : 0;
  k.build = [plan, grid](std::int64_t item, std::span<const std::int64_t> args, Program& out) {
    build_fp8(*plan, grid, item, args, out);
  };
  return k;
}

// gemm_fp8_grouped --------------------------------------------------------------------------

namespace {

GemmFp8Problem per_group(const GemmFp8GroupedProblem& p) {
  return {p.m, p.n, p.k, p.a_dtype, p.b_dtype, p.a_scale_dtype, p.b_scale_dtype, p.out_dtype};
}

}  // namespace

std::string check(const GemmFp8GroupedProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (p.groups < 1) return "gemm_fp8_grouped: groups must be positive";
  if (p.n % kScaleBlock != 0) return "gemm_fp8_grouped: N=" + std::to_string(p.n) + " is not a multiple of 128";
  if (p.align < 1) return "gemm_fp8_grouped: align must be positive";
  if (p.groups > (std::int64_t{1} << 31)) return "gemm_fp8_grouped: groups do not fit the i32 group ids";
  if (t.m > 0 && p.align % t.m != 0)
    return "gemm_fp8_grouped: tile m=" + std::to_string(t.m) + " does not divide align=" + std::to_string(p.align) +
           " (a tile must not mix groups)";
  if (auto why = check(per_group(p), t, chip); !why.empty()) return why;
  return "";
}

Footprint footprint(const GemmFp8GroupedProblem& p, const TileConfig& t, const ChipDesc& chip) {
  return plan_fp8(per_group(p), t, chip, p.groups).fp;
}

TileConfig choose(const GemmFp8GroupedProblem& p, const ChipDesc& chip) {
  const GemmFp8Problem q = per_group(p);
  std::vector<TileConfig> candidates;
  for (int stages = 2; stages <= kMaxStages; ++stages)
    for (std::int64_t tm : {1, 2, 4, 8, 16, 32, 64, 128, 256})
      for (std::int64_t tn : {16, 32, 64, 128, 256, 384, 512}) {
        if (p.align % tm != 0) continue;
        if (tm > round_up(std::max<std::int64_t>(p.m, 1), 16) * 2 && tm > 16) continue;
        if (tn > round_up(std::max<std::int64_t>(p.n, 1), 16) * 2 && tn > 16) continue;
        if (stages > 2 && p.k / kScaleBlock <= 2) continue;
        candidates.push_back({static_cast<int>(tm), static_cast<int>(tn), static_cast<int>(kScaleBlock), stages});
      }
  if (candidates.empty()) return {1, 128, static_cast<int>(kScaleBlock), 2};
  if (p.k <= 0 || p.k % kScaleBlock != 0 || p.m <= 0 || p.n <= 0) return candidates.front();
  return pick(
      candidates,
      [&](const TileConfig& t) -> std::int64_t {
        const Footprint f = footprint(p, t, chip);
        return fits(f, chip) ? f.scratchpad_bytes : -1;
      },
      // The weights a run can touch: one group per align rows at most.
      [&](const TileConfig& t) { return estimate_fp8(q, t, chip, std::min(p.groups, ceil_div(p.m, p.align))); });
}

TileKernel build(const GemmFp8GroupedProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  auto plan = std::make_shared<const Fp8Plan>(plan_fp8(per_group(p), t, chip, p.groups));
  const TileGrid grid(p.m, p.n, plan->tm, plan->tn);
  TileKernel k;
  k.name = "gemm_fp8_grouped";
  k.work_items = p.m > 0 && p.n > 0 ? grid.items() : 0;
  k.build = [plan, grid](std::int64_t item, std::span<const std::int64_t> args, Program& out) {
    build_fp8(*plan, grid, item, args, out);
  };
  return k;
}

// gemm ------------------------------------------------------------------------------------

std::string check(const GemmProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (!is_float(p.in_dtype)) return "gemm operands must be f32, bf16 or f16";
  if (!is_float(p.out_dtype)) return "gemm output must be f32, bf16 or f16";
  if (p.k <= 0) return "K=" + std::to_string(p.k) + " is not positive";
  if (matrix_rate(chip, p.in_dtype) <= 0)
    return std::string("the chip's matrix unit has no ") + std::string(dtype_name(p.in_dtype)) + " rate";
  if (t.m <= 0 || t.n <= 0 || t.k <= 0) return "gemm tiles must be positive";
  if (t.stages < 2 || t.stages > kMaxStages) return "gemm stages must be 2 to 4";
  return fit_problem(footprint(p, t, chip), chip);
}

Footprint footprint(const GemmProblem& p, const TileConfig& t, const ChipDesc&) { return plan_gemm(p, t).fp; }

TileConfig choose(const GemmProblem& p, const ChipDesc& chip) {
  std::vector<TileConfig> candidates;
  for (int stages = 2; stages <= kMaxStages; ++stages)
    for (std::int64_t tk : {32, 64, 128, 256})
      for (std::int64_t tm : kTileSizes)
        for (std::int64_t tn : kTileSizes) {
          if (tm > round_up(std::max<std::int64_t>(p.m, 1), 16) * 2 && tm > 16) continue;
          if (tn > round_up(std::max<std::int64_t>(p.n, 1), 16) * 2 && tn > 16) continue;
          if (tk > round_up(std::max<std::int64_t>(p.k, 1), 16) * 2 && tk > 32) continue;
          if (stages > 2 && ceil_div(p.k, tk) <= 2) continue;
          candidates.push_back({static_cast<int>(tm), static_cast<int>(tn), static_cast<int>(tk), stages});
        }
  if (p.k <= 0 || p.m <= 0 || p.n <= 0) return candidates.front();
  return pick(
      candidates,
      [&](const TileConfig& t) -> std::int64_t {
        const Footprint f = footprint(p, t, chip);
        return fits(f, chip) ? f.scratchpad_bytes : -1;
      },
      [&](const TileConfig& t) { return estimate_gemm(p, t, chip); });
}

TileKernel build(const GemmProblem& p, const TileConfig& t, const ChipDesc&, int) {
  auto plan = std::make_shared<const GemmPlan>(plan_gemm(p, t));
  const TileGrid grid(p.m, p.n, plan->tm, plan->tn);
  TileKernel k;
  k.name = "gemm";
  k.work_items = p.m > 0 && p.n > 0 ? grid.items() : 0;
  k.build = [plan, grid](std::int64_t item, std::span<const std::int64_t> args, Program& out) {
    build_gemm(*plan, grid, item, args, out);
  };
  return k;
}

}  // namespace anychip::kernels::sim
