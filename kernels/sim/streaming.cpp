// The streaming ops on the simulator: rmsnorm, silu_mul, add, quantize_fp8, dequantize.
//
// Each is a sequence of steps over tiles of its tensor (load -> one vector instruction ->
// store), with tiles.stages buffer sets (emit_stream()) so that DMA in, the vector unit
// and DMA out of consecutive steps overlap and the HBM latency is covered. The steps are
// cut into one contiguous run per core.
//   add          flat: n elements per step
//   silu_mul     m rows x n output columns per step: gate and up are two strided loads
//   rmsnorm      m whole rows per step; the weight is loaded (and converted to f32) once
//                per work item
//   quantize_fp8 m x n elements per step, block-aligned: the Quantize instruction writes
//                the codes and the step's scales, stored with two DMAs
//   dequantize   the reverse: codes and the step's scales in, values out
#include <cmath>
#include <memory>
#include <vector>

#include "anychip/error.hpp"
#include "kernels/sim/ops.hpp"
#include "kernels/sim/stream_op.hpp"
#include "kernels/sim/tile_builder.hpp"

namespace anychip::kernels::sim {

std::vector<double> pipe_cycles(const ChipDesc& chip, const Program& prog) {
  std::vector<double> c(4, 0.0);
  for (const Instr& i : prog.instrs) c[static_cast<std::size_t>(::anychip::sim::pipe_of(i))] += cycles(chip, i);
  return c;
}

double stream_estimate(const ChipDesc& chip, std::int64_t steps, int stages, const std::vector<double>& step,
                       double step_bytes, double setup, double bytes) {
  const StepRuns runs = step_runs(steps, chip.cores);
  const double lat = latency_cycles(chip), hbm_per_cycle = chip.hbm_bytes_per_s / chip.clock_hz;
  const double load = std::max(step[0], step_bytes * static_cast<double>(runs.items) / hbm_per_cycle);
  const double slowest = std::max({load, step[1], step[2], step[3], (load + lat + step[2]) / stages,
                                   (step[2] + step[3] + lat) / stages});
  const double item = setup + static_cast<double>(runs.steps_per_item) * slowest + load + step[2] + step[3] + 2 * lat;
  return std::max(item, bytes / hbm_per_cycle);
}

TileKernel stream_kernel(std::string name, std::shared_ptr<const StreamOp> op, std::int64_t cores) {
  const StepRuns runs = step_runs(op->steps(), cores);
  TileKernel k;
  k.name = std::move(name);
  k.work_items = runs.items;
  k.build = [op, runs](std::int64_t item, Args args, Program& out) {
    Emitter e(out);
    const std::int64_t first = runs.first(item), n = runs.count(item, op->steps());
    op->setup(e, args);
    emit_stream(e, n, op->stages,
                StreamBody{[&](Emitter& em, std::int64_t i, int s) { op->load(em, first + i, s, args); },
                           [&](Emitter& em, std::int64_t i, int s) { op->compute(em, first + i, s); },
                           [&](Emitter& em, std::int64_t i, int s) { op->store(em, first + i, s, args); }});
  };
  return k;
}

TileKernel copy_kernel(std::string name, std::shared_ptr<const StreamOp> op, std::int64_t cores) {
  const StepRuns runs = step_runs(op->steps(), cores);
  TileKernel k;
  k.name = std::move(name);
  k.work_items = runs.items;
  k.build = [op, runs](std::int64_t item, Args args, Program& out) {
    Emitter e(out);
    const std::int64_t first = runs.first(item), n = runs.count(item, op->steps());
    const int stages = op->stages;
    auto full = [](int s) { return s; };
    auto free = [](int s) { return kMaxStreamStages + s; };
    op->setup(e, args);
    for (std::int64_t i = 0; i < n; ++i) {
      const int s = static_cast<int>(i % stages);
      if (i >= stages) e.wait(Pipe::DmaIn, free(s));
      op->load(e, first + i, s, args);
      e.signal(Pipe::DmaIn, full(s));
      e.wait(Pipe::DmaOut, full(s));
      op->store(e, first + i, s, args);
      if (i + stages < n) e.signal(Pipe::DmaOut, free(s));
    }
  };
  return k;
}

StepCost step_cost(const ChipDesc& chip, const StreamOp& op, std::size_t nargs) {
  const std::vector<std::int64_t> args(nargs, 0);
  Program setup, one;
  Emitter es(setup), e(one);
  op.setup(es, args);
  if (op.steps() > 0) {
    op.load(e, 0, 0, args);
    op.compute(e, 0, 0);
    op.store(e, 0, 0, args);
  }
  StepCost c;
  c.pipes = pipe_cycles(chip, one);
  for (const Instr& i : one.instrs) {
    if (const auto* l = std::get_if<Load>(&i)) c.bytes += static_cast<double>(l->src.rows * l->src.row_bytes);
    if (const auto* st = std::get_if<Store>(&i)) c.bytes += static_cast<double>(st->dst.rows * st->dst.row_bytes);
  }
  const std::vector<double> s = pipe_cycles(chip, setup);
  c.setup = s[0] + s[1] + s[2] + s[3];
  return c;
}

std::vector<TileConfig> with_stages(const std::vector<TileConfig>& tiles) {
  std::vector<TileConfig> out;
  for (int stages = 2; stages <= kMaxStreamStages; ++stages)
    for (TileConfig t : tiles) {
      t.stages = stages;
      out.push_back(t);
    }
  return out;
}

std::vector<TileConfig> grid_candidates(std::int64_t rows, std::int64_t cols, std::int64_t row_unit,
                                        std::int64_t col_unit) {
  std::vector<std::int64_t> ms, ns;
  for (std::int64_t m : kRowTiles) {
    const std::int64_t r = round_up(m, row_unit);
    if (ms.empty() || (r > ms.back() && r < round_up(std::max<std::int64_t>(rows, 1), row_unit))) ms.push_back(r);
  }
  if (ms.back() < round_up(std::max<std::int64_t>(rows, 1), row_unit) && rows <= 256)
    ms.push_back(round_up(std::max<std::int64_t>(rows, 1), row_unit));
  for (std::int64_t n : kColTiles) {
    const std::int64_t c = round_up(n, col_unit);
    if (c < cols && (ns.empty() || c > ns.back())) ns.push_back(c);
  }
  ns.push_back(round_up(std::max<std::int64_t>(cols, 1), col_unit));
  std::vector<TileConfig> out;
  for (std::int64_t n : ns)
    for (std::int64_t m : ms) out.push_back({static_cast<int>(m), static_cast<int>(n), 0, 2});
  return out;
}

std::string check_stages(const char* op, const TileConfig& t) {
  if (t.stages >= 2 && t.stages <= kMaxStreamStages) return "";
  return std::string(op) + ": stages must be 2 to " + std::to_string(kMaxStreamStages);
}

std::string check_float(const char* what, DType d) {
  if (is_float(d)) return "";
  return std::string(what) + " must be f32, bf16 or f16, not " + std::string(dtype_name(d));
}

namespace {

// ---------------------------------------------------------------------------------------

struct AddOp final : StreamOp {
  AddProblem p;
  std::int64_t n = 0;  // elements per step
  Addr a[kMaxStreamStages], b[kMaxStreamStages], y[kMaxStreamStages];
  Footprint fp;
  AddOp(const AddProblem& p_, const TileConfig& t) : StreamOp(t), p(p_), n(std::max(t.n, 1)) {
    Allocator spm(Space::Spm);
    for (int s = 0; s < stages; ++s) a[s] = spm.take(bytes_of(p.dtype, n)), b[s] = spm.take(bytes_of(p.dtype, n)),
                               y[s] = spm.take(bytes_of(p.dtype, n));
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return ceil_div(p.numel, n); }
  std::int64_t len(std::int64_t step) const { return std::min(n, p.numel - step * n); }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const std::int64_t es = bytes_of(p.dtype, 1);
    e.load(a[s], args[0] + step * n * es, 1, len(step) * es, len(step) * es);
    e.load(b[s], args[1] + step * n * es, 1, len(step) * es, len(step) * es);
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    Vec v;
    v.op = VecOp::Add, v.dst = y[s], v.src0 = a[s], v.src1 = b[s], v.rows = 1, v.cols = len(step);
    v.dtype_in = v.dtype_out = p.dtype;
    e.vec(v);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const std::int64_t es = bytes_of(p.dtype, 1);
    e.store(args[2] + step * n * es, 1, len(step) * es, len(step) * es, y[s]);
  }
};

struct SiluMulOp final : StreamOp {
  SiluMulProblem p;
  Tiles2d g;
  Addr x[kMaxStreamStages], u[kMaxStreamStages], y[kMaxStreamStages];
  Footprint fp;
  SiluMulOp(const SiluMulProblem& p_, const TileConfig& t) : StreamOp(t), p(p_), g(p.rows, p.dim, t.m, t.n) {
    Allocator spm(Space::Spm);
    const std::int64_t bytes = bytes_of(p.dtype, g.tm * g.tn);
    for (int s = 0; s < stages; ++s) x[s] = spm.take(bytes), u[s] = spm.take(bytes), y[s] = spm.take(bytes);
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t es = bytes_of(p.dtype, 1);
    const std::int64_t row = t.r0 * 2 * p.dim + t.c0;
    e.load(x[s], args[0] + row * es, t.re, t.ce * es, 2 * p.dim * es);
    e.load(u[s], args[0] + (row + p.dim) * es, t.re, t.ce * es, 2 * p.dim * es);
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    const auto t = g.tile(step);
    Vec v;
    v.op = VecOp::SiluMul, v.dst = y[s], v.src0 = x[s], v.src1 = u[s], v.rows = t.re, v.cols = t.ce;
    v.dtype_in = v.dtype_out = p.dtype;
    e.vec(v);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t es = bytes_of(p.dtype, 1);
    e.store(args[1] + (t.r0 * p.dim + t.c0) * es, t.re, t.ce * es, p.dim * es, y[s]);
  }
};

// Flag of rmsnorm's weight: dma_in -> vector, once per work item.
constexpr int kWeightLoaded = kStreamFirstFreeFlag;

// rmsnorm computes in dtype_in, weights included: the input dtype when the weight has it
// too, else f32 (the input converted exactly, each step).
struct RmsNormOp final : StreamOp {
  RmsNormProblem p;
  Tiles2d g;
  DType cd = DType::f32;  // the dtype RmsNorm reads
  Addr x[kMaxStreamStages], y[kMaxStreamStages], xf, w, wc;
  Footprint fp;
  RmsNormOp(const RmsNormProblem& p_, const TileConfig& t) : StreamOp(t), p(p_), g(p.rows, p.dim, t.m, p.dim) {
    cd = p.weight_dtype == p.dtype ? p.dtype : DType::f32;
    Allocator spm(Space::Spm);
    const std::int64_t elems = g.tm * std::max<std::int64_t>(p.dim, 1);
    for (int s = 0; s < stages; ++s) x[s] = spm.take(bytes_of(p.dtype, elems)), y[s] = spm.take(bytes_of(p.dtype, elems));
    if (cd != p.dtype) xf = spm.take(bytes_of(cd, elems));
    w = spm.take(bytes_of(p.weight_dtype, p.dim));
    wc = p.weight_dtype == cd ? w : spm.take(bytes_of(cd, p.dim));
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void setup(Emitter& e, Args args) const override {
    if (steps() == 0) return;
    const std::int64_t wb = bytes_of(p.weight_dtype, p.dim);
    e.load(w, args[1], 1, wb, wb);
    e.signal(Pipe::DmaIn, kWeightLoaded);
    e.wait(Pipe::Vector, kWeightLoaded);
    if (p.weight_dtype != cd) e.convert(wc, w, 1, p.dim, p.weight_dtype, cd);
  }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t rb = bytes_of(p.dtype, p.dim);
    e.load(x[s], args[0] + t.r0 * rb, t.re, rb, rb);
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    const auto t = g.tile(step);
    Addr src = x[s];
    if (cd != p.dtype) {
      e.convert(xf, x[s], t.re, p.dim, p.dtype, cd);
      src = xf;
    }
    Vec v;
    v.op = VecOp::RmsNorm, v.dst = y[s], v.src0 = src, v.src1 = wc, v.rows = t.re, v.cols = p.dim;
    v.dtype_in = cd, v.dtype_out = p.dtype, v.imm = p.eps;
    e.vec(v);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t rb = bytes_of(p.dtype, p.dim);
    e.store(args[2] + t.r0 * rb, t.re, rb, rb, y[s]);
  }
};

struct QuantizeOp final : StreamOp {
  QuantizeProblem p;
  Tiles2d g;
  std::int64_t scale_cols = 0;
  Addr x[kMaxStreamStages], q[kMaxStreamStages], sc[kMaxStreamStages];
  Footprint fp;
  QuantizeOp(const QuantizeProblem& p_, const TileConfig& t)
      : StreamOp(t), p(p_), g(p.rows, p.cols, t.m, t.n), scale_cols(anychip::scale_cols(p.cols, p.block)) {
    Allocator spm(Space::Spm);
    for (int s = 0; s < stages; ++s) {
      x[s] = spm.take(bytes_of(p.in_dtype, g.tm * g.tn));
      q[s] = spm.take(g.tm * g.tn);
      sc[s] = spm.take(bytes_of(p.scale_dtype, ceil_div(g.tm, p.block.rows) * ceil_div(g.tn, p.block.cols)));
    }
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t es = bytes_of(p.in_dtype, 1);
    e.load(x[s], args[0] + (t.r0 * p.cols + t.c0) * es, t.re, t.ce * es, p.cols * es);
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    const auto t = g.tile(step);
    Vec v;
    v.op = VecOp::Quantize, v.dst = q[s], v.aux = sc[s], v.src0 = x[s], v.rows = t.re, v.cols = t.ce;
    v.block_rows = p.block.rows, v.block_cols = p.block.cols;
    v.dtype_in = p.in_dtype, v.dtype_out = p.out_dtype, v.scale_dtype = p.scale_dtype;
    e.vec(v);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t ss = bytes_of(p.scale_dtype, 1);
    e.store(args[1] + t.r0 * p.cols + t.c0, t.re, t.ce, p.cols, q[s]);
    e.store(args[2] + ((t.r0 / p.block.rows) * scale_cols + t.c0 / p.block.cols) * ss,
            ceil_div(t.re, p.block.rows), ceil_div(t.ce, p.block.cols) * ss, scale_cols * ss, sc[s]);
  }
};

struct DequantizeOp final : StreamOp {
  DequantizeProblem p;
  Tiles2d g;
  std::int64_t scale_cols = 0;
  Addr q[kMaxStreamStages], sc[kMaxStreamStages], y[kMaxStreamStages];
  Footprint fp;
  DequantizeOp(const DequantizeProblem& p_, const TileConfig& t)
      : StreamOp(t), p(p_), g(p.rows, p.cols, t.m, t.n), scale_cols(anychip::scale_cols(p.cols, p.block)) {
    Allocator spm(Space::Spm);
    for (int s = 0; s < stages; ++s) {
      q[s] = spm.take(g.tm * g.tn);
      sc[s] = spm.take(bytes_of(p.scale_dtype, ceil_div(g.tm, p.block.rows) * ceil_div(g.tn, p.block.cols)));
      y[s] = spm.take(bytes_of(p.out_dtype, g.tm * g.tn));
    }
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t ss = bytes_of(p.scale_dtype, 1);
    e.load(q[s], args[0] + t.r0 * p.cols + t.c0, t.re, t.ce, p.cols);
    e.load(sc[s], args[1] + ((t.r0 / p.block.rows) * scale_cols + t.c0 / p.block.cols) * ss,
           ceil_div(t.re, p.block.rows), ceil_div(t.ce, p.block.cols) * ss, scale_cols * ss);
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    const auto t = g.tile(step);
    Vec v;
    v.op = VecOp::Dequantize, v.dst = y[s], v.src0 = q[s], v.src1 = sc[s], v.rows = t.re, v.cols = t.ce;
    v.block_rows = p.block.rows, v.block_cols = p.block.cols;
    v.dtype_in = p.in_dtype, v.dtype_out = p.out_dtype, v.scale_dtype = p.scale_dtype;
    e.vec(v);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t es = bytes_of(p.out_dtype, 1);
    e.store(args[2] + (t.r0 * p.cols + t.c0) * es, t.re, t.ce * es, p.cols * es, y[s]);
  }
};

std::string check_blocked(const char* op, std::int64_t rows, std::int64_t cols, BlockShape block, DType fp8,
                          DType scale, const TileConfig& t) {
  if (!is_fp8(fp8)) return std::string(op) + ": codes must be f8e4m3 or f8e5m2";
  if (!is_scale_dtype(scale)) return std::string(op) + ": scales must be f32 or ue8m0";
  if (block.rows <= 0 || block.cols <= 0) return std::string(op) + ": block shape must be positive";
  if (t.m <= 0 || t.n <= 0 || t.m % block.rows != 0 || t.n % block.cols != 0)
    return std::string(op) + ": tiles " + std::to_string(t.m) + "x" + std::to_string(t.n) +
           " are not multiples of the " + std::to_string(block.rows) + "x" + std::to_string(block.cols) + " block";
  return "";
}

}  // namespace

// add ---------------------------------------------------------------------------------------

std::string check(const AddProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("add", t); !why.empty()) return why;
  if (auto why = check_float("add dtype", p.dtype); !why.empty()) return why;
  if (t.n <= 0) return "add: tile n must be positive";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const AddProblem& p, const TileConfig& t, const ChipDesc&) { return AddOp(p, t).footprint(); }
TileConfig choose(const AddProblem& p, const ChipDesc& chip) {
  std::vector<TileConfig> c;
  for (std::int64_t n : {1024, 2048, 4096, 8192, 16384, 32768, 65536})
    if (c.empty() || n / 2 < p.numel) c.push_back({1, static_cast<int>(n), 0, 2});
  return choose_stream(c, chip, 5, problem_min_bytes(p), [&](const TileConfig& t) { return std::make_shared<AddOp>(p, t); });
}
TileKernel build(const AddProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("add", std::make_shared<AddOp>(p, t), chip.cores);
}

// silu_mul ----------------------------------------------------------------------------------

std::string check(const SiluMulProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("silu_mul", t); !why.empty()) return why;
  if (auto why = check_float("silu_mul dtype", p.dtype); !why.empty()) return why;
  if (t.m <= 0 || t.n <= 0) return "silu_mul: tiles must be positive";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const SiluMulProblem& p, const TileConfig& t, const ChipDesc&) {
  return SiluMulOp(p, t).footprint();
}
TileConfig choose(const SiluMulProblem& p, const ChipDesc& chip) {
  return choose_stream(grid_candidates(p.rows, p.dim, 1, 1), chip, 4, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<SiluMulOp>(p, t); });
}
TileKernel build(const SiluMulProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("silu_mul", std::make_shared<SiluMulOp>(p, t), chip.cores);
}

// rmsnorm -----------------------------------------------------------------------------------

std::string check(const RmsNormProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("rmsnorm", t); !why.empty()) return why;
  if (auto why = check_float("rmsnorm dtype", p.dtype); !why.empty()) return why;
  if (auto why = check_float("rmsnorm weight dtype", p.weight_dtype); !why.empty()) return why;
  if (t.m <= 0 || t.n != p.dim) return "rmsnorm: tiles must be m rows x the whole dim";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const RmsNormProblem& p, const TileConfig& t, const ChipDesc&) {
  return RmsNormOp(p, t).footprint();
}
TileConfig choose(const RmsNormProblem& p, const ChipDesc& chip) {
  std::vector<TileConfig> c;
  for (std::int64_t m : kRowTiles)
    if (c.empty() || m / 2 < p.rows) c.push_back({static_cast<int>(m), static_cast<int>(p.dim), 0, 2});
  return choose_stream(c, chip, 5, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<RmsNormOp>(p, t); });
}
TileKernel build(const RmsNormProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("rmsnorm", std::make_shared<RmsNormOp>(p, t), chip.cores);
}

// quantize_fp8 ------------------------------------------------------------------------------

std::string check(const QuantizeProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("quantize_fp8", t); !why.empty()) return why;
  if (auto why = check_float("quantize_fp8 input", p.in_dtype); !why.empty()) return why;
  if (auto why = check_blocked("quantize_fp8", p.rows, p.cols, p.block, p.out_dtype, p.scale_dtype, t); !why.empty())
    return why;
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const QuantizeProblem& p, const TileConfig& t, const ChipDesc&) {
  return QuantizeOp(p, t).footprint();
}
TileConfig choose(const QuantizeProblem& p, const ChipDesc& chip) {
  return choose_stream(grid_candidates(p.rows, p.cols, std::max<std::int64_t>(p.block.rows, 1),
                                       std::max<std::int64_t>(p.block.cols, 1)),
                       chip, 5, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<QuantizeOp>(p, t); });
}
TileKernel build(const QuantizeProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("quantize_fp8", std::make_shared<QuantizeOp>(p, t), chip.cores);
}

// dequantize --------------------------------------------------------------------------------

std::string check(const DequantizeProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("dequantize", t); !why.empty()) return why;
  if (auto why = check_float("dequantize output", p.out_dtype); !why.empty()) return why;
  if (auto why = check_blocked("dequantize", p.rows, p.cols, p.block, p.in_dtype, p.scale_dtype, t); !why.empty())
    return why;
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const DequantizeProblem& p, const TileConfig& t, const ChipDesc&) {
  return DequantizeOp(p, t).footprint();
}
TileConfig choose(const DequantizeProblem& p, const ChipDesc& chip) {
  return choose_stream(grid_candidates(p.rows, p.cols, std::max<std::int64_t>(p.block.rows, 1),
                                       std::max<std::int64_t>(p.block.cols, 1)),
                       chip, 5, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<DequantizeOp>(p, t); });
}
TileKernel build(const DequantizeProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("dequantize", std::make_shared<DequantizeOp>(p, t), chip.cores);
}

}  // namespace anychip::kernels::sim
