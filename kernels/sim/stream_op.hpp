// The streaming skeleton shared by the load -> vector -> store ops (kernels/sim/streaming.cpp,
// moe.cpp, layout.cpp): an op says what each pipe does in one step; stream_kernel() cuts
// the steps into one contiguous run per core and pipelines them with emit_stream().
// Internal to kernels/sim.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/sim/tile_builder.hpp"

namespace anychip::kernels::sim {

using Args = std::span<const std::int64_t>;

// A rows x cols matrix walked in tm x tn tiles, row-major over tiles.
struct Tiles2d {
  std::int64_t rows = 0, cols = 0, tm = 1, tn = 1, rt = 0, ct = 0;
  Tiles2d() = default;
  Tiles2d(std::int64_t r, std::int64_t c, std::int64_t m, std::int64_t n)
      : rows(r), cols(c), tm(std::max<std::int64_t>(m, 1)), tn(std::max<std::int64_t>(n, 1)),
        rt(ceil_div(r, tm)), ct(ceil_div(c, tn)) {}
  std::int64_t steps() const { return rows > 0 && cols > 0 ? rt * ct : 0; }
  struct Tile {
    std::int64_t r0, c0, re, ce;
  };
  Tile tile(std::int64_t step) const {
    const std::int64_t r0 = step / ct * tm, c0 = step % ct * tn;
    return {r0, c0, std::min(tm, rows - r0), std::min(tn, cols - c0)};
  }
};

// The per-pipe idle-chip cycles of one program.
std::vector<double> pipe_cycles(const ChipDesc& chip, const Program& prog);

// Estimated cycles of a streaming kernel: each core runs its steps with the pipes
// overlapped: a step takes the slowest pipe (DMA in at least its share of HBM with every
// core streaming), or a buffer set's round trip through load, latency, compute (and
// store, latency) over the stages; plus one step of fill and drain. Never less than the
// bytes over HBM.
double stream_estimate(const ChipDesc& chip, std::int64_t steps, int stages, const std::vector<double>& step,
                       double step_bytes, double setup, double bytes);

// A streaming op: its steps and what each pipe does in one.
struct StreamOp {
  int stages = 2;
  explicit StreamOp(const TileConfig& t) : stages(std::clamp(t.stages, 2, kMaxStreamStages)) {}
  virtual ~StreamOp() = default;
  virtual std::int64_t steps() const = 0;
  virtual void setup(Emitter&, Args) const {}
  virtual void load(Emitter& e, std::int64_t step, int s, Args args) const = 0;
  virtual void compute(Emitter& e, std::int64_t step, int s) const = 0;
  virtual void store(Emitter& e, std::int64_t step, int s, Args args) const = 0;
};

TileKernel stream_kernel(std::string name, std::shared_ptr<const StreamOp> op, std::int64_t cores);

// A pure copy (slice, concat, moe_gather): the op's compute() emits nothing, and the step's
// buffer goes from DMA in straight to DMA out, through `stages` buffer sets:
//   dma_in:  [wait free(s)]  load(i, s)  signal full(s)
//   dma_out: wait full(s)  store(i, s)  [signal free(s)]
TileKernel copy_kernel(std::string name, std::shared_ptr<const StreamOp> op, std::int64_t cores);

// Per-pipe cycles of one step (the first) of op, the bytes it moves, and the cycles of
// its setup.
struct StepCost {
  std::vector<double> pipes;
  double bytes = 0, setup = 0;
};
StepCost step_cost(const ChipDesc& chip, const StreamOp& op, std::size_t nargs);

// Each candidate with every pipeline depth.
std::vector<TileConfig> with_stages(const std::vector<TileConfig>& tiles);

// The candidate of fewest estimated cycles among those that fit (make(t) builds the op,
// which has footprint()).
template <typename MakeOp>
TileConfig choose_stream(const std::vector<TileConfig>& candidates, const ChipDesc& chip, std::size_t nargs,
                         double bytes, MakeOp make) {
  return pick(
      with_stages(candidates),
      [&](const TileConfig& t) -> std::int64_t {
        const Footprint f = make(t)->footprint();
        return fits(f, chip) ? f.scratchpad_bytes : -1;
      },
      [&](const TileConfig& t) {
        const auto op = make(t);
        const StepCost c = step_cost(chip, *op, nargs);
        return stream_estimate(chip, op->steps(), op->stages, c.pipes, c.bytes, c.setup, bytes);
      });
}

// Row counts, then column counts, tried by the choosers.
inline constexpr std::int64_t kRowTiles[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
inline constexpr std::int64_t kColTiles[] = {128, 256, 512, 1024, 2048, 4096, 8192, 16384};

// Tile candidates m x n with m a multiple of row_unit up to rows, n a multiple of col_unit
// up to cols (the whole width is always a candidate when it is a multiple or is all).
std::vector<TileConfig> grid_candidates(std::int64_t rows, std::int64_t cols, std::int64_t row_unit,
                                        std::int64_t col_unit);

// "" or why the stages or dtype are not supported.
std::string check_stages(const char* op, const TileConfig& t);
std::string check_float(const char* what, DType d);

}  // namespace anychip::kernels::sim
