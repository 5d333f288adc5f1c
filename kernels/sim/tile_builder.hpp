// Helpers the simulator lowerings share: buffer allocation in a core's scratchpad and
// accumulator, instruction emission, and the double-buffered streaming skeleton.
// Internal to kernels/sim.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/sim/sim_kernels.hpp"

namespace anychip::kernels::sim {

using ::anychip::sim::Addr;
using ::anychip::sim::Instr;
using ::anychip::sim::Load;
using ::anychip::sim::LoadIndex;
using ::anychip::sim::Mma;
using ::anychip::sim::Pipe;
using ::anychip::sim::Region;
using ::anychip::sim::Signal;
using ::anychip::sim::SoftmaxParams;
using ::anychip::sim::Space;
using ::anychip::sim::Store;
using ::anychip::sim::Vec;
using ::anychip::sim::VecOp;
using ::anychip::sim::Wait;

// Every buffer starts on this boundary (bytes).
inline constexpr std::int64_t kAlign = 128;

constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
constexpr std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }
inline std::int64_t bytes_of(DType d, std::int64_t n) { return static_cast<std::int64_t>(dtype_size(d)) * n; }

inline Addr offset(Addr a, std::int64_t bytes) { return {a.space, a.offset + bytes}; }

// Bump allocation of buffers in one memory space of a core. The total is what a work item
// needs; the chooser compares it with the chip's capacity.
class Allocator {
 public:
  explicit Allocator(Space space) : space_(space) {}
  Addr take(std::int64_t bytes) {
    Addr a{space_, used_};
    used_ += round_up(std::max<std::int64_t>(bytes, 1), kAlign);
    return a;
  }
  std::int64_t bytes() const { return used_; }

 private:
  Space space_;
  std::int64_t used_ = 0;
};

// Bytes load_ones(n) writes.
inline std::int64_t ones_bytes(std::int64_t n) {
  return n <= kConstOnesBytes ? n : round_up(n, kConstOnesBytes);
}

// Appends instructions to a program.
class Emitter {
 public:
  explicit Emitter(Program& program) : p_(program) {}

  // dense rows at dst <- Hbm rows x row_bytes, row r at hbm + r * stride.
  void load(Addr dst, std::int64_t hbm, std::int64_t rows, std::int64_t row_bytes, std::int64_t stride) {
    p_.instrs.push_back(Load{Region{{Space::Hbm, hbm}, rows, row_bytes, stride}, dst, std::nullopt});
  }
  // The same with data-dependent addressing (simulator/program.hpp, LoadIndex).
  void load(Addr dst, std::int64_t hbm, std::int64_t rows, std::int64_t row_bytes, std::int64_t stride,
            const LoadIndex& index) {
    p_.instrs.push_back(Load{Region{{Space::Hbm, hbm}, rows, row_bytes, stride}, dst, index});
  }
  // Hbm rows x row_bytes, row r at hbm + r * stride <- dense rows at src.
  void store(std::int64_t hbm, std::int64_t rows, std::int64_t row_bytes, std::int64_t stride, Addr src) {
    p_.instrs.push_back(Store{src, Region{{Space::Hbm, hbm}, rows, row_bytes, stride}});
  }
  void mma(const Mma& m) { p_.instrs.push_back(m); }
  void vec(const Vec& v) { p_.instrs.push_back(v); }
  void signal(Pipe pipe, int flag) { p_.instrs.push_back(Signal{pipe, flag}); }
  void wait(Pipe pipe, int flag) { p_.instrs.push_back(Wait{pipe, flag}); }

  // An unscaled mma of a_dtype x b_dtype operands.
  void mma(Addr acc, Addr a, Addr b, std::int64_t m, std::int64_t n, std::int64_t k, DType a_dtype,
           DType b_dtype, bool accumulate) {
    Mma x;
    x.acc = acc, x.a = a, x.b = b, x.m = m, x.n = n, x.k = k;
    x.a_dtype = a_dtype, x.b_dtype = b_dtype, x.accumulate = accumulate;
    mma(x);
  }
  // dst[out] = src[in], rows x cols.
  void convert(Addr dst, Addr src, std::int64_t rows, std::int64_t cols, DType in, DType out) {
    Vec v;
    v.op = VecOp::Convert, v.dst = dst, v.src0 = src, v.rows = rows, v.cols = cols;
    v.dtype_in = in, v.dtype_out = out;
    vec(v);
  }

  // n e4m3 ones from the constants block at `constants` (ones_bytes(n) bytes at dst).
  void load_ones(Addr dst, std::int64_t constants, std::int64_t n) {
    const std::int64_t row = std::min(n, kConstOnesBytes);
    load(dst, constants + kConstOnesE4m3, ceil_div(n, row), row, 0);
  }
  // dst (f32) = the rows x cols UE8M0 scales at src, exactly: ones (e4m3, rows x cols of
  // them) times each element's own scale. Convert does not read UE8M0; Dequantize does.
  void ue8m0_to_f32(Addr dst, Addr ones, Addr src, std::int64_t rows, std::int64_t cols) {
    Vec v;
    v.op = VecOp::Dequantize, v.dst = dst, v.src0 = ones, v.src1 = src, v.rows = rows, v.cols = cols;
    v.block_rows = 1, v.block_cols = 1;
    v.dtype_in = DType::f8e4m3, v.dtype_out = DType::f32, v.scale_dtype = DType::ue8m0;
    vec(v);
  }

  Program& program() { return p_; }

 private:
  Program& p_;
};

// The streaming skeleton of the load -> vector -> store ops, with `stages` (2 to
// kMaxStreamStages) buffer sets: step i uses set i % stages; its callbacks emit the
// instructions of one pipe for that step:
//   dma_in:  [wait in_free]  load(i, s)     signal in_full
//   vector:  wait in_full  [wait out_free]  compute(i, s)  [signal in_free]  signal out_full
//   dma_out: wait out_full  store(i, s)  [signal out_free]
// A buffer is reloaded only after the pipe reading it has signalled it free, so every
// schedule the flags allow gives the program-order result. Flags from
// kStreamFirstFreeFlag on are the caller's.
inline constexpr int kMaxStreamStages = 4;
inline constexpr int kStreamFirstFreeFlag = 4 * kMaxStreamStages;
struct StreamBody {
  std::function<void(Emitter&, std::int64_t step, int set)> load, compute, store;
};
void emit_stream(Emitter& e, std::int64_t steps, int stages, const StreamBody& body);

// The work items of a streaming kernel: `steps` steps cut into contiguous runs, one run
// per work item, at most one work item per core.
struct StepRuns {
  std::int64_t items = 0, steps_per_item = 0;
  std::int64_t first(std::int64_t item) const { return item * steps_per_item; }
  std::int64_t count(std::int64_t item, std::int64_t steps) const {
    return std::min(steps_per_item, steps - first(item));
  }
};
StepRuns step_runs(std::int64_t steps, std::int64_t cores);

// Idle-chip cycles of one instruction (simulator/engine.hpp).
double cycles(const ChipDesc& chip, const Instr& instr);

// Adds each instruction's idle-chip cycles to its pipe's entry of c[4].
void add_pipe_cycles(const ChipDesc& chip, const Program& program, double* c);

// Per-pipe idle-chip cycles of one work item's program, from its K-step count: a build
// with 2 and with 3 steps gives the cycles of one steady-state step and of the rest.
struct ItemCost {
  double step[4] = {0, 0, 0, 0}, fixed[4] = {0, 0, 0, 0};
};

template <typename Build>
ItemCost item_cost(const ChipDesc& chip, Build build_with_steps) {
  double c2[4] = {0, 0, 0, 0}, c3[4] = {0, 0, 0, 0};
  for (int steps : {2, 3}) {
    Program prog = build_with_steps(steps);
    double* c = steps == 2 ? c2 : c3;
    add_pipe_cycles(chip, prog, c);
  }
  ItemCost r;
  for (int p = 0; p < 4; ++p) r.step[p] = c3[p] - c2[p], r.fixed[p] = c2[p] - 2 * r.step[p];
  return r;
}

// "needs 300 KiB of scratchpad, the chip has 256 KiB" when a work item does not fit.
std::string fit_problem(const Footprint& f, const ChipDesc& chip);

// The HBM latency in cycles.
inline double latency_cycles(const ChipDesc& chip) { return chip.hbm_latency_ns * 1e-9 * chip.clock_hz; }

// The matrix unit's FLOP per cycle (one core) for operands of dtype d; 0 if it has none.
double matrix_rate(const ChipDesc& chip, DType d);

// The buffers of a work item fit the chip.
inline bool fits(const Footprint& f, const ChipDesc& chip) {
  return f.scratchpad_bytes <= chip.core.scratchpad_bytes && f.accumulator_bytes <= chip.core.accumulator_bytes;
}

// Picks the candidate with the fewest estimated cycles among those that fit (`fits`
// returns the footprint in bytes, or -1 if it does not fit); ties within 0.5% go to the
// smaller footprint. With none fitting, the first candidate.
template <typename Fit, typename Cost>
TileConfig pick(const std::vector<TileConfig>& candidates, Fit fit, Cost cost) {
  TileConfig best = candidates.front();
  double best_cost = std::numeric_limits<double>::infinity();
  std::int64_t best_bytes = std::numeric_limits<std::int64_t>::max();
  for (const TileConfig& t : candidates) {
    const std::int64_t bytes = fit(t);
    if (bytes < 0) continue;
    const double c = cost(t);
    if (c < best_cost * 0.995) {
      best = t, best_cost = c, best_bytes = bytes;
    } else if (c <= best_cost * 1.005 && bytes < best_bytes) {
      best = t, best_cost = std::min(best_cost, c), best_bytes = bytes;
    }
  }
  return best;
}

}  // namespace anychip::kernels::sim
