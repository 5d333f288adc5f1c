// The parallel driver of the CPU GEMMs: picks the engine of the active instruction set,
// cuts C into tiles and runs one TBB task per tile, each with a thread-local workspace.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include "kernels/cpu/gemm_kernels.hpp"

namespace anychip::kernels::cpu::gemm_detail {
namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }

// Scratch memory of the calling thread, grown on demand and kept for later calls (a fresh
// allocation per tile would be an mmap and page faults each time).
std::byte* thread_workspace(std::size_t bytes) {
  struct AlignedDelete {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  thread_local std::unique_ptr<std::byte[], AlignedDelete> buffer;
  thread_local std::size_t capacity = 0;
  if (bytes > capacity) {
    buffer.reset(static_cast<std::byte*>(::operator new[](bytes, std::align_val_t{64})));
    capacity = bytes;
  }
  return buffer.get();
}

// Splits `extent` into the fewest parts of at most `largest` (a multiple of `unit`), each
// a multiple of `unit` except the last.
std::int64_t part_size(std::int64_t extent, std::int64_t largest, std::int64_t unit) {
  const std::int64_t parts = ceil_div(extent, largest);
  return std::min(largest, round_up(ceil_div(extent, parts), unit));
}

}  // namespace

Engine select_engine(const GemmArgs& g) {
  switch (active_isa()) {
    case Isa::avx512bf16: return engine_avx512(g, cpu_has_avx512vbmi());
    case Isa::avx2: return engine_avx2(g);
    case Isa::generic: break;
  }
  return engine_generic(g);
}

void run_gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  run_gemm(g, select_engine(g));
}

void run_gemm(const GemmArgs& g, const Engine& e) {
  if (g.m == 0 || g.n == 0) return;
  const std::int64_t threads = std::max(1, tbb::this_task_arena::max_concurrency());

  std::int64_t mc = part_size(g.m, e.mc, e.mr);
  // Few rows (M <= mc/2): twice as wide tiles, so that A is decoded half as often; the
  // fp32 tile buffer keeps the same size.
  std::int64_t nc = part_size(g.n, g.m <= e.mc / 2 ? 2 * e.nc : e.nc, e.nr);
  // Enough tiles to keep every thread busy: narrow the tiles (down to 64 columns, then
  // 2*mr rows) while there are fewer than two per thread.
  auto tiles = [&] { return ceil_div(g.m, mc) * ceil_div(g.n, nc); };
  while (tiles() < 2 * threads) {
    if (nc > 64)
      nc = part_size(g.n, std::max<std::int64_t>(64, round_up(nc / 2, e.nr)), e.nr);
    else if (mc > 2 * e.mr)
      mc = part_size(g.m, std::max<std::int64_t>(2 * e.mr, round_up(mc / 2, e.mr)), e.mr);
    else
      break;
  }

  const std::int64_t tiles_n = ceil_div(g.n, nc);
  const std::size_t ws_bytes = e.workspace_bytes(mc, nc);
  auto run_tiles = [&](const tbb::blocked_range<std::int64_t>& r) {
    std::byte* ws = thread_workspace(ws_bytes);
    for (std::int64_t t = r.begin(); t < r.end(); ++t) {
      Tile tile;
      tile.i0 = (t / tiles_n) * mc;
      tile.j0 = (t % tiles_n) * nc;
      tile.mc = std::min(mc, g.m - tile.i0);
      tile.nc = std::min(nc, g.n - tile.j0);
      e.tile(g, tile, ws);
    }
  };
  // Below a few microseconds of work, waking the other threads costs more than it saves.
  constexpr double kSerialFlops = 2e6;
  const tbb::blocked_range<std::int64_t> all(0, tiles(), 1);
  if (threads == 1 || 2.0 * g.m * g.n * std::max<std::int64_t>(g.k, 1) < kSerialFlops)
    run_tiles(all);
  else
    tbb::parallel_for(all, run_tiles, tbb::simple_partitioner());
}

}  // namespace anychip::kernels::cpu::gemm_detail
