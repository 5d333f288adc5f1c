// The parts of Simulator::run (simulator/engine.cpp): program validation, the functional
// units and the timing engine. Internal to the simulator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "simulator/engine.hpp"

namespace anychip::sim::detail {

// Who is running: the context of every error message.
struct RunContext {
  const ChipDesc* chip = nullptr;
  std::string_view kernel;
};

// What validation learns about a program that the engine needs.
struct ProgramFacts {
  std::int64_t spm_used = 0;  // one past the highest scratchpad byte touched
  std::int64_t acc_used = 0;  // likewise for the accumulator buffer
  int flags = 0;              // one more than the highest flag number used
};

// "kernel K: work item I: instruction N (<text>): <what>" as an anychip::Error.
[[noreturn]] void instruction_error(const RunContext& ctx, std::int64_t item, const Program& program,
                                    std::size_t index, const std::string& what);

// Checks that `program` can run on the chip: operand spaces and dtypes, every byte within
// the scratchpad / accumulator (and within `hbm_bytes` when it is not negative), flags in
// range, and that no wait outnumbers the signals of its flag. Throws naming the kernel,
// the work item and the instruction.
ProgramFacts validate_program(const RunContext& ctx, std::int64_t item, const Program& program,
                              std::int64_t hbm_bytes);

// One core's functional units: a scratchpad and an accumulator buffer, and the code that
// executes each instruction on them. Not thread-safe; one per host thread.
class FunctionalCore {
 public:
  explicit FunctionalCore(const ChipDesc& chip);
  // Executes a validated program in program order against `hbm`. A data-dependent error
  // (a gather index or an expert id out of range) throws naming the kernel (ctx), the work
  // item and the instruction.
  void run(const RunContext& ctx, std::int64_t item, const Program& program, const ProgramFacts& facts,
           std::span<std::byte> hbm);

 private:
  std::byte* at(Addr a);
  void load(const Load& l, std::span<std::byte> hbm);
  void mma(const Mma& m);
  void vec(const Vec& v);
  void rope(const Vec& v);
  void topk(const Vec& v);
  void moe_weights(const Vec& v);
  void moe_plan(const Vec& v);
  [[noreturn]] void fail(const std::string& what) const;

  // The instruction being executed (for errors).
  const RunContext* ctx_ = nullptr;
  std::int64_t item_ = 0;
  const Program* program_ = nullptr;
  std::size_t index_ = 0;

  std::vector<std::byte> spm_, acc_;
  std::vector<float> a_, bt_, p_, t0_, t1_, t2_;  // scratch for decoded operands
  std::vector<std::uint8_t> q_;
  std::vector<std::int64_t> n0_, n1_;  // scratch of the routing ops
};

// Runs the timing model of `kernel` (building each work item's program as a core takes it)
// and returns its statistics. Validates every program (hbm_bytes as validate_program).
// `hbm` holds the data of a functional run (empty in a timing-only run): a gather's
// per-load index is read from it, else its `assumed` value is used.
RunStats run_timing(const RunContext& ctx, const TileKernel& kernel, std::span<const std::int64_t> args,
                    std::int64_t hbm_bytes, std::span<const std::byte> hbm, std::vector<TraceEvent>* trace);

}  // namespace anychip::sim::detail
