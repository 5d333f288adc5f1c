// The MoE routing ops on the simulator: moe_topk, moe_weights, moe_plan, moe_gather,
// moe_combine (kernels/problems.hpp has their semantics; the grouped GEMM is in gemm.cpp).
//
//   moe_topk     streaming over tiles of m tokens: logits tile in, one TopK vector
//                instruction (sigmoid + bias, group-limited selection), k experts out; the
//                bias is loaded once per work item
//   moe_weights  streaming over tiles of m tokens: logits and chosen experts in, one
//                MoeWeights instruction, weights out
//   moe_plan     a counting sort over all tokens*k choices, which every work item needs
//                whole: each work item loads all the choices (one copy from HBM, the rest
//                L2 hits) and writes a window of m rows of the plan (its three rows), so
//                that the windows spread over the cores. The choices must fit one
//                scratchpad (128 KiB at DeepSeek-V3's 4096 tokens x 8).
//   moe_gather   a pure copy: tiles of m plan rows x n columns, each a per-row gather whose
//                indices are the plan's token row (a -1 row is zero-filled by the DMA)
//   moe_combine  tiles of m tokens x n columns: for each choice j, a per-row gather of the
//                m rows of y that carry (token, j) (indices: plan row 2, k apart) and the
//                column j of the weights (a strided load), then on the vector unit
//                out = sum_j w[., j] * y_j in fp32 (RowScale, then ScaleAccumulate, in j
//                order), converted to the output dtype
#include <memory>
#include <vector>

#include "anychip/error.hpp"
#include "kernels/sim/ops.hpp"
#include "kernels/sim/stream_op.hpp"
#include "kernels/sim/tile_builder.hpp"

namespace anychip::kernels::sim {
namespace {

// Flag of a buffer loaded once per work item (dma_in -> vector).
constexpr int kOnceLoaded = kStreamFirstFreeFlag;

// A load whose rows are gathered: row r from base + index_r * scale, the indices `stride`
// bytes apart from `at`; a negative index zero-fills the row.
void gather_rows(Emitter& e, Addr dst, std::int64_t base, std::int64_t rows, std::int64_t row_bytes,
                 std::int64_t at, std::int64_t stride, std::int64_t scale, std::int64_t bound) {
  e.load(dst, base, rows, row_bytes, 0, LoadIndex{at, true, stride, scale, bound, 0});
}

std::vector<TileConfig> row_candidates(std::int64_t rows, std::int64_t cols) {
  std::vector<TileConfig> c;
  for (std::int64_t m : kRowTiles)
    if (c.empty() || m / 2 < rows) c.push_back({static_cast<int>(m), static_cast<int>(cols), 0, 2});
  return c;
}

// ---------------------------------------------------------------------------------------
// moe_topk: args [logits, bias, experts]

struct TopkOp final : StreamOp {
  MoeTopkProblem p;
  Tiles2d g;
  Addr x[kMaxStreamStages], y[kMaxStreamStages], bias;
  Footprint fp;
  TopkOp(const MoeTopkProblem& p_, const TileConfig& t) : StreamOp(t), p(p_), g(p.tokens, 1, t.m, 1) {
    Allocator spm(Space::Spm);
    for (int s = 0; s < stages; ++s) x[s] = spm.take(g.tm * p.experts * 4), y[s] = spm.take(g.tm * p.k * 4);
    bias = spm.take(p.experts * 4);
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void setup(Emitter& e, Args args) const override {
    if (steps() == 0) return;
    e.load(bias, args[1], 1, p.experts * 4, p.experts * 4);
    e.signal(Pipe::DmaIn, kOnceLoaded);
    e.wait(Pipe::Vector, kOnceLoaded);
  }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    e.load(x[s], args[0] + t.r0 * p.experts * 4, t.re, p.experts * 4, p.experts * 4);
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    Vec v;
    v.op = VecOp::TopK, v.dst = y[s], v.src0 = x[s], v.src1 = bias, v.rows = g.tile(step).re, v.cols = p.experts;
    v.moe.k = p.k, v.moe.groups = p.groups, v.moe.top_groups = p.top_groups;
    e.vec(v);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    e.store(args[2] + t.r0 * p.k * 4, t.re, p.k * 4, p.k * 4, y[s]);
  }
};

// ---------------------------------------------------------------------------------------
// moe_weights: args [logits, experts, weights]

struct WeightsOp final : StreamOp {
  MoeWeightsProblem p;
  Tiles2d g;
  Addr x[kMaxStreamStages], c[kMaxStreamStages], y[kMaxStreamStages];
  Footprint fp;
  WeightsOp(const MoeWeightsProblem& p_, const TileConfig& t) : StreamOp(t), p(p_), g(p.tokens, 1, t.m, 1) {
    Allocator spm(Space::Spm);
    for (int s = 0; s < stages; ++s)
      x[s] = spm.take(g.tm * p.experts * 4), c[s] = spm.take(g.tm * p.k * 4), y[s] = spm.take(g.tm * p.k * 4);
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    e.load(x[s], args[0] + t.r0 * p.experts * 4, t.re, p.experts * 4, p.experts * 4);
    e.load(c[s], args[1] + t.r0 * p.k * 4, t.re, p.k * 4, p.k * 4);
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    Vec v;
    v.op = VecOp::MoeWeights, v.dst = y[s], v.src0 = x[s], v.src1 = c[s], v.rows = g.tile(step).re, v.cols = p.k;
    v.moe.experts = p.experts, v.imm = p.scale;
    e.vec(v);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    e.store(args[2] + t.r0 * p.k * 4, t.re, p.k * 4, p.k * 4, y[s]);
  }
};

// ---------------------------------------------------------------------------------------
// moe_plan: args [experts, plan]; tiles.m = plan rows per work item

constexpr int kChosenLoaded = 0, kPlanWritten = 1;

struct PlanLayout {
  std::int64_t window = 1, items = 0;
  Addr chosen, plan;
  Footprint fp;
  PlanLayout(const MoePlanProblem& p, const TileConfig& t) : window(std::max(t.m, 1)) {
    items = ceil_div(p.rows, window);
    Allocator spm(Space::Spm);
    chosen = spm.take(p.tokens * p.k * 4);
    plan = spm.take(3 * window * 4);
    fp = {spm.bytes(), 0};
  }
};

void build_plan(const MoePlanProblem& p, const PlanLayout& L, std::int64_t item, Args args, Program& out) {
  Emitter e(out);
  const std::int64_t r0 = item * L.window, rows = std::min(L.window, p.rows - r0);
  e.load(L.chosen, args[0], 1, p.tokens * p.k * 4, p.tokens * p.k * 4);
  e.signal(Pipe::DmaIn, kChosenLoaded);
  e.wait(Pipe::Vector, kChosenLoaded);
  Vec v;
  v.op = VecOp::MoePlan, v.dst = L.plan, v.src0 = L.chosen, v.rows = p.tokens, v.cols = p.k;
  v.moe.experts = p.experts, v.moe.align = p.align, v.moe.first_row = r0, v.moe.window = L.window;
  v.moe.plan_rows = p.rows;
  e.vec(v);
  e.signal(Pipe::Vector, kPlanWritten);
  e.wait(Pipe::DmaOut, kPlanWritten);
  for (std::int64_t row = 0; row < 3; ++row)
    e.store(args[1] + (row * p.rows + r0) * 4, 1, rows * 4, rows * 4, offset(L.plan, row * L.window * 4));
}

// ---------------------------------------------------------------------------------------
// moe_gather: args [x, plan, y]

struct GatherOp final : StreamOp {
  MoeGatherProblem p;
  Tiles2d g;
  std::int64_t es = 1;
  Addr buf[kMaxStreamStages];
  Footprint fp;
  GatherOp(const MoeGatherProblem& p_, const TileConfig& t)
      : StreamOp(t), p(p_), g(p.rows, p.dim, t.m, t.n), es(bytes_of(p.dtype, 1)) {
    Allocator spm(Space::Spm);
    for (int s = 0; s < stages; ++s) buf[s] = spm.take(g.tm * g.tn * es);
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    // Row r of the tile is x[plan[1, r0 + r]].
    gather_rows(e, buf[s], args[0] + t.c0 * es, t.re, t.ce * es, args[1] + (p.rows + t.r0) * 4, 4, p.dim * es,
                p.tokens);
  }
  void compute(Emitter&, std::int64_t, int) const override {}
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    e.store(args[2] + (t.r0 * p.dim + t.c0) * es, t.re, t.ce * es, p.dim * es, buf[s]);
  }
};

// ---------------------------------------------------------------------------------------
// moe_combine: args [y, plan, weights, out]

struct CombineOp final : StreamOp {
  MoeCombineProblem p;
  Tiles2d g;
  std::int64_t es = 1;
  Addr y[kMaxStreamStages], w[kMaxStreamStages], acc[kMaxStreamStages], out[kMaxStreamStages], yf;
  Footprint fp;
  CombineOp(const MoeCombineProblem& p_, const TileConfig& t)
      : StreamOp(t), p(p_), g(p.tokens, p.dim, t.m, t.n), es(bytes_of(p.dtype, 1)) {
    Allocator spm(Space::Spm);
    const std::int64_t tile = g.tm * g.tn;
    for (int s = 0; s < stages; ++s) {
      y[s] = spm.take(p.k * tile * es);
      w[s] = spm.take(p.k * g.tm * 4);
      acc[s] = spm.take(tile * 4);
      out[s] = p.dtype == DType::f32 ? acc[s] : spm.take(tile * es);
    }
    yf = p.dtype == DType::f32 ? Addr{} : spm.take(tile * 4);
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t plan_row2 = args[1] + 2 * p.rows * 4;
    for (std::int64_t j = 0; j < p.k; ++j) {
      // Rows y[plan[2, (r0 + r) * k + j]] and the weights w[r0 + r, j].
      gather_rows(e, offset(y[s], j * g.tm * g.tn * es), args[0] + t.c0 * es, t.re, t.ce * es,
                  plan_row2 + (t.r0 * p.k + j) * 4, p.k * 4, p.dim * es, p.rows);
      e.load(offset(w[s], j * g.tm * 4), args[2] + (t.r0 * p.k + j) * 4, t.re, 4, p.k * 4);
    }
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    const auto t = g.tile(step);
    for (std::int64_t j = 0; j < p.k; ++j) {
      Addr yj = offset(y[s], j * g.tm * g.tn * es);
      if (p.dtype != DType::f32) {
        e.convert(yf, yj, t.re, t.ce, p.dtype, DType::f32);
        yj = yf;
      }
      Vec v;
      v.op = j == 0 ? VecOp::RowScale : VecOp::ScaleAccumulate;
      v.dst = acc[s], v.src0 = yj, v.src1 = offset(w[s], j * g.tm * 4), v.rows = t.re, v.cols = t.ce;
      v.scale_dtype = DType::f32, v.imm = 1;
      e.vec(v);
    }
    if (p.dtype != DType::f32) e.convert(out[s], acc[s], t.re, t.ce, DType::f32, p.dtype);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    e.store(args[3] + (t.r0 * p.dim + t.c0) * es, t.re, t.ce * es, p.dim * es, out[s]);
  }
};

std::string check_i32_bound(const char* op, const char* what, std::int64_t n) {
  if (n >= 0 && n <= std::int64_t{1} << 31) return "";
  return std::string(op) + ": " + what + " = " + std::to_string(n) + " does not fit the i32 indices";
}

}  // namespace

// moe_topk ----------------------------------------------------------------------------------

std::string check(const MoeTopkProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("moe_topk", t); !why.empty()) return why;
  if (p.groups < 1 || p.experts % p.groups != 0 || p.top_groups < 1 || p.top_groups > p.groups || p.k < 1 ||
      p.k > p.top_groups * (p.experts / p.groups))
    return "moe_topk: k=" + std::to_string(p.k) + " of top_groups=" + std::to_string(p.top_groups) + " of groups=" +
           std::to_string(p.groups) + " over " + std::to_string(p.experts) + " experts is not a valid selection";
  if (t.m <= 0) return "moe_topk: tile m (tokens per step) must be positive";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const MoeTopkProblem& p, const TileConfig& t, const ChipDesc&) { return TopkOp(p, t).footprint(); }
TileConfig choose(const MoeTopkProblem& p, const ChipDesc& chip) {
  return choose_stream(row_candidates(p.tokens, p.experts), chip, 5, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<TopkOp>(p, t); });
}
TileKernel build(const MoeTopkProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("moe_topk", std::make_shared<TopkOp>(p, t), chip.cores);
}

// moe_weights -------------------------------------------------------------------------------

std::string check(const MoeWeightsProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("moe_weights", t); !why.empty()) return why;
  if (p.experts < 1 || p.k < 1) return "moe_weights: needs experts and k >= 1";
  if (t.m <= 0) return "moe_weights: tile m (tokens per step) must be positive";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const MoeWeightsProblem& p, const TileConfig& t, const ChipDesc&) {
  return WeightsOp(p, t).footprint();
}
TileConfig choose(const MoeWeightsProblem& p, const ChipDesc& chip) {
  return choose_stream(row_candidates(p.tokens, p.k), chip, 5, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<WeightsOp>(p, t); });
}
TileKernel build(const MoeWeightsProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("moe_weights", std::make_shared<WeightsOp>(p, t), chip.cores);
}

// moe_plan ----------------------------------------------------------------------------------

std::string check(const MoePlanProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (p.experts < 1 || p.align < 1 || p.k < 1) return "moe_plan: needs experts, align and k >= 1";
  if (auto why = check_i32_bound("moe_plan", "rows", p.rows); !why.empty()) return why;
  if (t.m <= 0) return "moe_plan: tile m (plan rows per work item) must be positive";
  const Footprint f = footprint(p, t, chip);
  if (!fits(f, chip))
    return "moe_plan: the counting sort holds all " + std::to_string(p.tokens * p.k) +
           " choices in one core's scratchpad: " + fit_problem(f, chip);
  return "";
}
Footprint footprint(const MoePlanProblem& p, const TileConfig& t, const ChipDesc&) { return PlanLayout(p, t).fp; }
TileConfig choose(const MoePlanProblem& p, const ChipDesc& chip) {
  // One window per core, fewer rows when the scratchpad left after the choices is short.
  std::int64_t window = std::max<std::int64_t>(ceil_div(p.rows, chip.cores), 1);
  const std::int64_t left = chip.core.scratchpad_bytes - round_up(p.tokens * p.k * 4, kAlign) - kAlign;
  if (3 * window * 4 > left && left >= 12) window = left / 12;
  return {static_cast<int>(window), 0, 0, 2};
}
TileKernel build(const MoePlanProblem& p, const TileConfig& t, const ChipDesc&, int) {
  auto layout = std::make_shared<const PlanLayout>(p, t);
  TileKernel k;
  k.name = "moe_plan";
  k.work_items = p.rows > 0 ? layout->items : 0;
  k.build = [p, layout](std::int64_t item, Args args, Program& out) { build_plan(p, *layout, item, args, out); };
  return k;
}

// moe_gather --------------------------------------------------------------------------------

std::string check(const MoeGatherProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("moe_gather", t); !why.empty()) return why;
  if (auto why = check_i32_bound("moe_gather", "tokens", p.tokens); !why.empty()) return why;
  if (t.m <= 0 || t.n <= 0) return "moe_gather: tiles must be positive";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const MoeGatherProblem& p, const TileConfig& t, const ChipDesc&) {
  return GatherOp(p, t).footprint();
}
TileConfig choose(const MoeGatherProblem& p, const ChipDesc& chip) {
  return choose_stream(grid_candidates(p.rows, p.dim, 1, 1), chip, 5, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<GatherOp>(p, t); });
}
TileKernel build(const MoeGatherProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return copy_kernel("moe_gather", std::make_shared<GatherOp>(p, t), chip.cores);
}

// moe_combine -------------------------------------------------------------------------------

std::string check(const MoeCombineProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("moe_combine", t); !why.empty()) return why;
  if (auto why = check_float("moe_combine dtype", p.dtype); !why.empty()) return why;
  if (auto why = check_i32_bound("moe_combine", "rows", p.rows); !why.empty()) return why;
  if (p.k < 1) return "moe_combine: k must be positive";
  if (t.m <= 0 || t.n <= 0) return "moe_combine: tiles must be positive";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const MoeCombineProblem& p, const TileConfig& t, const ChipDesc&) {
  return CombineOp(p, t).footprint();
}
TileConfig choose(const MoeCombineProblem& p, const ChipDesc& chip) {
  return choose_stream(grid_candidates(p.tokens, p.dim, 1, 1), chip, 6, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<CombineOp>(p, t); });
}
TileKernel build(const MoeCombineProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("moe_combine", std::make_shared<CombineOp>(p, t), chip.cores);
}

}  // namespace anychip::kernels::sim
