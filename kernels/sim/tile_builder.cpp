#include "kernels/sim/tile_builder.hpp"

#include "simulator/engine.hpp"

namespace anychip::kernels::sim {
namespace {

// Flags of the streaming skeleton, per buffer set s.
constexpr int in_full(int s) { return 0 * kMaxStreamStages + s; }
constexpr int in_free(int s) { return 1 * kMaxStreamStages + s; }
constexpr int out_full(int s) { return 2 * kMaxStreamStages + s; }
constexpr int out_free(int s) { return 3 * kMaxStreamStages + s; }

std::string kib(std::int64_t bytes) {
  if (bytes % 1024 == 0) return std::to_string(bytes / 1024) + " KiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

void emit_stream(Emitter& e, std::int64_t steps, int stages, const StreamBody& body) {
  for (std::int64_t i = 0; i < steps; ++i) {
    const int s = static_cast<int>(i % stages);
    const bool reused = i >= stages, reused_later = i + stages < steps;
    if (reused) e.wait(Pipe::DmaIn, in_free(s));
    body.load(e, i, s);
    e.signal(Pipe::DmaIn, in_full(s));

    e.wait(Pipe::Vector, in_full(s));
    if (reused) e.wait(Pipe::Vector, out_free(s));
    body.compute(e, i, s);
    if (reused_later) e.signal(Pipe::Vector, in_free(s));
    e.signal(Pipe::Vector, out_full(s));

    e.wait(Pipe::DmaOut, out_full(s));
    body.store(e, i, s);
    if (reused_later) e.signal(Pipe::DmaOut, out_free(s));
  }
}

StepRuns step_runs(std::int64_t steps, std::int64_t cores) {
  StepRuns r;
  if (steps <= 0) return r;
  const std::int64_t items = std::min(steps, std::max<std::int64_t>(cores, 1));
  r.steps_per_item = ceil_div(steps, items);
  r.items = ceil_div(steps, r.steps_per_item);
  return r;
}

double matrix_rate(const ChipDesc& chip, DType d) {
  const auto& m = chip.core.matrix;
  if (is_fp8(d)) return m.fp8_flops_per_cycle;
  if (d == DType::bf16 || d == DType::f16) return m.bf16_flops_per_cycle;
  if (d == DType::f32) return m.f32_flops_per_cycle;
  return 0;
}

double cycles(const ChipDesc& chip, const Instr& instr) { return ::anychip::sim::instruction_cycles(chip, instr); }

void add_pipe_cycles(const ChipDesc& chip, const Program& program, double* c) {
  for (const Instr& i : program.instrs) c[static_cast<int>(::anychip::sim::pipe_of(i))] += cycles(chip, i);
}

std::string fit_problem(const Footprint& f, const ChipDesc& chip) {
  std::string why;
  if (f.scratchpad_bytes > chip.core.scratchpad_bytes)
    why = "a work item needs " + kib(f.scratchpad_bytes) + " of scratchpad, the chip has " +
          kib(chip.core.scratchpad_bytes);
  if (f.accumulator_bytes > chip.core.accumulator_bytes)
    why += std::string(why.empty() ? "a work item needs " : "; and ") + kib(f.accumulator_bytes) +
           " of accumulator, the chip has " + kib(chip.core.accumulator_bytes);
  return why;
}

}  // namespace anychip::kernels::sim
