// Simulator::run: the timing model first (it validates every program and finds
// deadlocks), then, in a functional run, every work item's program executed on the data,
// work items in parallel on the host's threads (they are independent by contract; the
// timing does not depend on this pass).
#include "simulator/engine.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_for.h>

#include <utility>

#include "anychip/error.hpp"
#include "simulator/engine_impl.hpp"

namespace anychip::sim {

Simulator::Simulator(ChipDesc chip) : chip_(std::move(chip)) {}

RunStats Simulator::run(const TileKernel& kernel, std::span<const std::int64_t> args, std::span<std::byte> hbm,
                        const RunOptions& options, std::vector<TraceEvent>* trace) {
  if (!kernel.build) throw Error(ErrorCode::InvalidArgument, "kernel " + kernel.name + ": it has no build function");
  if (kernel.work_items < 0)
    throw Error(ErrorCode::InvalidArgument,
                "kernel " + kernel.name + ": work_items = " + std::to_string(kernel.work_items) + " is negative");
  const detail::RunContext ctx{&chip_, kernel.name};
  const std::int64_t hbm_bytes = options.functional ? static_cast<std::int64_t>(hbm.size()) : -1;
  std::vector<TraceEvent>* events = options.trace ? trace : nullptr;
  if (events) events->clear();

  RunStats stats = detail::run_timing(ctx, kernel, args, hbm_bytes, options.functional ? hbm : std::span<std::byte>(), events);

  if (options.functional && kernel.work_items > 0) {
    struct Local {
      detail::FunctionalCore core;
      Program program;
    };
    tbb::enumerable_thread_specific<Local> locals([&] { return Local{detail::FunctionalCore(chip_), {}}; });
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, kernel.work_items, 1), [&](const auto& range) {
      Local& local = locals.local();
      for (std::int64_t item = range.begin(); item != range.end(); ++item) {
        local.program.instrs.clear();
        kernel.build(item, args, local.program);
        const detail::ProgramFacts facts = detail::validate_program(ctx, item, local.program, hbm_bytes);
        local.core.run(ctx, item, local.program, facts, hbm);
      }
    });
  }
  return stats;
}

}  // namespace anychip::sim
