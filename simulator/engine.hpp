// Running tile kernels on a modelled chip: timing (event-driven) and function (the same
// instructions executed on the bytes).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "simulator/chip.hpp"
#include "simulator/program.hpp"

namespace anychip::sim {

// One run of one pipe on one core, for the Chrome trace.
struct TraceEvent {
  std::int64_t core = 0;
  Pipe pipe = Pipe::DmaIn;
  double start_cycle = 0, end_cycle = 0;
  std::string name;  // "load 128x128", "mma 128x128x128", ...
};

struct RunStats {
  double cycles = 0;                        // from the first issue to the last completion
  std::array<double, kPipes> busy_cycles{};  // summed over cores
  double hbm_bytes = 0;                     // bytes moved from or to HBM
  double l2_bytes = 0;                      // bytes served by L2 hits
  double flops = 0;                         // useful (unpadded) matrix FLOPs
  std::int64_t instructions = 0;
  std::int64_t cores_used = 0;
  // Utilisation of a pipe = busy_cycles[p] / (cycles * chip cores).

  // The roofline bound: max(hbm_bytes / HBM bytes per cycle, l2_bytes / L2 bytes per
  // cycle, sum over mma instructions of their FLOPs / the whole chip's FLOP per cycle for
  // their dtype). No schedule of these instructions can take fewer cycles.
  double roofline_cycles = 0;
};

struct RunOptions {
  bool functional = true;  // execute on the data (false: timing only)
  bool trace = false;      // collect trace events
};

class Simulator {
 public:
  explicit Simulator(ChipDesc chip);
  const ChipDesc& chip() const { return chip_; }

  // Runs `kernel` to completion. `hbm` is the device memory the Hbm addresses index (may
  // be empty in timing-only mode). Throws anychip::Error when a program is invalid (an
  // address beyond a scratchpad, a wait that can never be satisfied, ...), naming the
  // kernel, the work item and the instruction.
  //
  // kernel.build is called once per work item for timing and once more per item for the
  // functional run, from several threads at once in the latter: it must be a pure
  // function of (item, args).
  //
  // Cycles depend on data only through gathers: in a functional run the timing pass reads
  // a per-load gather index from `hbm` (the indices a kernel reads are its inputs, written
  // before it runs); in a timing-only run it uses the index the program assumes.
  RunStats run(const TileKernel& kernel, std::span<const std::int64_t> args,
               std::span<std::byte> hbm, const RunOptions& options,
               std::vector<TraceEvent>* trace = nullptr);

 private:
  ChipDesc chip_;
};

// The cycles `instr` occupies its pipe on an otherwise idle chip: an mma's padded FLOPs
// over the matrix rate plus its issue cost; a vector op per vector_cost(); a DMA's issue
// cost plus its bytes at the core's DMA rate (contention and latency excluded); 0 for
// signal and wait. Lowerings may use it to choose tiles.
double instruction_cycles(const ChipDesc& chip, const Instr& instr);

// Chrome trace / Perfetto JSON of events: one process per core, one thread per pipe.
std::string chrome_trace_json(const ChipDesc& chip, std::span<const TraceEvent> events);

}  // namespace anychip::sim
