// The timing model against first principles: microbenchmarks that must reach the chip's
// configured peaks, a roofline no kernel may beat, L2 hits for re-read tiles, and the
// errors a broken program gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anychip/error.hpp"
#include "simulator/engine.hpp"

namespace anychip::sim {
namespace {

using std::int64_t;

TileKernel kernel(std::string name, int64_t items, std::function<void(int64_t, Program&)> body) {
  TileKernel k;
  k.name = std::move(name);
  k.work_items = items;
  k.build = [body = std::move(body)](int64_t item, std::span<const int64_t>, Program& out) { body(item, out); };
  return k;
}

Load load(int64_t spm, int64_t hbm, int64_t rows, int64_t row_bytes, int64_t stride) {
  return Load{Region{Addr{Space::Hbm, hbm}, rows, row_bytes, stride}, Addr{Space::Spm, spm}};
}

Store store(int64_t hbm, int64_t spm, int64_t rows, int64_t row_bytes, int64_t stride, Space from = Space::Spm) {
  return Store{Addr{from, spm}, Region{Addr{Space::Hbm, hbm}, rows, row_bytes, stride}};
}

RunStats time_only(const ChipDesc& chip, const TileKernel& k) {
  Simulator sim(chip);
  return sim.run(k, {}, {}, RunOptions{.functional = false});
}

double seconds(const ChipDesc& chip, const RunStats& s) { return s.cycles / chip.clock_hz; }

// Copies `items` chunks of `chunk` bytes from hbm[0] to hbm[1 << 40] in tiles of `tile`
// bytes (rows of 1 KiB) through a ring of `buffers` buffers: the loader fills one while
// the storer drains another.
TileKernel streaming_copy(int64_t items, int64_t chunk, int64_t tile, int buffers = 2) {
  return kernel("copy", items, [=](int64_t item, Program& p) {
    const int64_t rows = tile / 1024, tiles = chunk / tile;
    for (int64_t t = 0; t < tiles; ++t) {
      const int b = static_cast<int>(t % buffers);
      const int64_t src = item * chunk + t * tile, spm = b * tile;
      if (t >= buffers) p.instrs.push_back(Wait{Pipe::DmaIn, buffers + b});
      p.instrs.push_back(load(spm, src, rows, 1024, 1024));
      p.instrs.push_back(Signal{Pipe::DmaIn, b});
      p.instrs.push_back(Wait{Pipe::DmaOut, b});
      p.instrs.push_back(store((int64_t{1} << 40) + src, spm, rows, 1024, 1024));
      p.instrs.push_back(Signal{Pipe::DmaOut, buffers + b});
    }
  });
}

// A GEMM whose operands stay in the scratchpad: one load of A (m x k) and B (n x k), then
// `repeats` mmas on them, then one store of the fp32 accumulator.
TileKernel resident_gemm(int64_t items, int64_t m, int64_t n, int64_t k, int repeats) {
  return kernel("resident_gemm", items, [=](int64_t item, Program& p) {
    p.instrs.push_back(load(0, item * (m + n) * k, m, k, k));
    p.instrs.push_back(load(m * k, item * (m + n) * k + m * k, n, k, k));
    p.instrs.push_back(Signal{Pipe::DmaIn, 0});
    p.instrs.push_back(Wait{Pipe::Matrix, 0});
    for (int r = 0; r < repeats; ++r) {
      Mma mma;
      mma.a = {Space::Spm, 0};
      mma.b = {Space::Spm, m * k};
      mma.acc = {Space::Acc, 0};
      mma.m = m, mma.n = n, mma.k = k;
      mma.accumulate = r > 0;
      p.instrs.push_back(mma);
    }
    p.instrs.push_back(Signal{Pipe::Matrix, 1});
    p.instrs.push_back(Wait{Pipe::DmaOut, 1});
    p.instrs.push_back(store((int64_t{1} << 40) + item * m * n * 4, 0, m, n * 4, n * 4, Space::Acc));
  });
}

// Every item loads `tile_rows` x 1 KiB `loads` times, from the same place (shared) or
// from its own place.
TileKernel reader(int64_t items, int64_t tile_rows, int loads, bool shared) {
  return kernel(shared ? "shared_reads" : "private_reads", items, [=](int64_t item, Program& p) {
    for (int l = 0; l < loads; ++l) {
      const int64_t base = shared ? l * tile_rows * 1024 : (item * loads + l) * tile_rows * 1024;
      p.instrs.push_back(load((l % 2) * tile_rows * 1024, base, tile_rows, 1024, 1024));
    }
  });
}

TEST(Timing, StreamingCopyReachesTheConfiguredHbmBandwidth) {
  for (const char* name : {"tiny", "h800", "npu-ue8m0"}) {
    SCOPED_TRACE(name);
    const ChipDesc chip = load_chip(name);
    const int64_t items = 8 * chip.cores, chunk = int64_t{4} << 20;
    const RunStats s = time_only(chip, streaming_copy(items, chunk, 64 << 10));
    EXPECT_DOUBLE_EQ(s.hbm_bytes, 2.0 * static_cast<double>(items * chunk));
    const double achieved = s.hbm_bytes / seconds(chip, s);
    EXPECT_LE(achieved, chip.hbm_bytes_per_s * (1 + 1e-9));
    EXPECT_GE(achieved, 0.98 * chip.hbm_bytes_per_s);
  }
}

TEST(Timing, OneCoreCopyIsCappedByItsDmaRateNotTheHbmPeak) {
  for (const char* name : {"tiny", "h800"}) {
    SCOPED_TRACE(name);
    const ChipDesc chip = load_chip(name);
    const int64_t tile = 48 << 10;
    const RunStats s = time_only(chip, streaming_copy(1, tile * 1024, tile, 4));
    EXPECT_EQ(s.cores_used, 1);
    const double read_rate = s.hbm_bytes / 2 / seconds(chip, s);
    // The DMA engine's rate for transfers of this size, its issue cost included.
    const double dma_rate = static_cast<double>(tile) /
                            (static_cast<double>(chip.core.dma.issue_cycles) + tile / chip.core.dma.bytes_per_cycle) *
                            chip.clock_hz;
    EXPECT_LE(read_rate, dma_rate * (1 + 1e-9));
    EXPECT_GE(read_rate, 0.98 * dma_rate);
    EXPECT_LT(read_rate, 0.6 * chip.hbm_bytes_per_s);
  }
}

TEST(Timing, ResidentGemmReachesTheMatrixPeak) {
  struct Case {
    const char* chip;
    int64_t m, n, k;
    int repeats;
  };
  for (const Case c : {Case{"tiny", 64, 64, 256, 200}, Case{"h800", 128, 256, 512, 2048},
                       Case{"npu-ue8m0", 256, 256, 1024, 600}}) {
    SCOPED_TRACE(c.chip);
    const ChipDesc chip = load_chip(c.chip);
    const RunStats s = time_only(chip, resident_gemm(chip.cores, c.m, c.n, c.k, c.repeats));
    EXPECT_DOUBLE_EQ(s.flops, 2.0 * c.m * c.n * c.k * c.repeats * static_cast<double>(chip.cores));
    const double achieved = s.flops / seconds(chip, s);
    EXPECT_LE(achieved, chip.peak_flops(DType::f8e4m3) * (1 + 1e-9));
    EXPECT_GE(achieved, 0.99 * chip.peak_flops(DType::f8e4m3));
  }
}

TEST(Timing, DataIsVisibleOneLatencyAfterItsLastByteAndLatenciesOverlap) {
  const ChipDesc chip = load_chip("tiny");  // DMA 32 B/clk, issue 8; HBM latency 100 ns = 100 cycles
  Mma mma;
  mma.a = mma.b = {Space::Spm, 0};
  mma.acc = {Space::Acc, 0};
  mma.m = mma.n = 16, mma.k = 32;
  const double mma_cycles = instruction_cycles(chip, mma);
  for (int loads : {1, 10}) {
    SCOPED_TRACE(loads);
    const RunStats s = time_only(chip, kernel("latency", 1, [&](int64_t, Program& p) {
                                   for (int l = 0; l < loads; ++l) p.instrs.push_back(load(0, l * 32768, 32, 1024, 1024));
                                   p.instrs.push_back(Signal{Pipe::DmaIn, 0});
                                   p.instrs.push_back(Wait{Pipe::Matrix, 0});
                                   p.instrs.push_back(mma);
                                 }));
    // The loads stream back to back; only the last one's latency is exposed.
    EXPECT_DOUBLE_EQ(s.cycles, loads * (8 + 32768 / 32.0) + 100 + mma_cycles);
  }
  // A store's buffer may be reused once its bytes have left; the core drains once they
  // have reached HBM.
  const RunStats st = time_only(chip, kernel("store", 1, [](int64_t, Program& p) {
                                  p.instrs.push_back(store(0, 0, 32, 1024, 1024));
                                  p.instrs.push_back(Signal{Pipe::DmaOut, 0});
                                  p.instrs.push_back(Wait{Pipe::DmaIn, 0});
                                  p.instrs.push_back(load(0, 1 << 20, 32, 1024, 1024));
                                }));
  EXPECT_DOUBLE_EQ(st.cycles, 2 * (8 + 32768 / 32.0) + 100);
}

TEST(Timing, WorkItemsFillTheCoresInWaves) {
  const ChipDesc chip = load_chip("tiny");  // 4 cores
  Mma mma;
  mma.a = mma.b = {Space::Spm, 0};
  mma.acc = {Space::Acc, 0};
  mma.m = mma.n = 64, mma.k = 256;
  const double one = instruction_cycles(chip, mma);
  for (int items : {1, 4, 5, 8, 9}) {
    const RunStats s = time_only(chip, kernel("waves", items, [&](int64_t, Program& p) { p.instrs.push_back(mma); }));
    EXPECT_DOUBLE_EQ(s.cycles, one * ((items + 3) / 4)) << items;
    EXPECT_DOUBLE_EQ(s.busy_cycles[static_cast<int>(Pipe::Matrix)], one * items);
  }
}

TEST(Timing, NoKernelBeatsItsRoofline) {
  std::vector<std::pair<const char*, TileKernel>> kernels = {
      {"tiny", streaming_copy(3, 1 << 20, 32 << 10)},
      {"tiny", resident_gemm(6, 64, 64, 256, 3)},
      {"h800", resident_gemm(300, 128, 256, 512, 2)},
      {"h800", streaming_copy(500, 1 << 20, 64 << 10)},
      {"h800", reader(200, 64, 8, true)},
      {"npu-fp32scale", reader(100, 128, 4, false)},
      {"npu-ue8m0", kernel("vector_heavy", 70, [](int64_t item, Program& p) {
         p.instrs.push_back(load(0, item * 65536, 64, 1024, 1024));
         p.instrs.push_back(Signal{Pipe::DmaIn, 0});
         p.instrs.push_back(Wait{Pipe::Vector, 0});
         for (int i = 0; i < 20; ++i) {
           Vec v;
           v.op = VecOp::SiluMul;
           v.rows = 64, v.cols = 256;
           v.dst = v.src0 = {Space::Spm, 0};
           v.src1 = {Space::Spm, 0};
           p.instrs.push_back(v);
           Mma m;
           m.a = m.b = {Space::Spm, 0};
           m.acc = {Space::Acc, 0};
           m.m = 64, m.n = 64, m.k = 128;
           p.instrs.push_back(m);
         }
         p.instrs.push_back(Signal{Pipe::Vector, 1});
         p.instrs.push_back(Wait{Pipe::DmaOut, 1});
         p.instrs.push_back(store((int64_t{1} << 40) + item * 65536, 0, 64, 1024, 1024));
       })}};
  for (const auto& [name, k] : kernels) {
    SCOPED_TRACE(std::string(name) + " " + k.name);
    const ChipDesc chip = load_chip(name);
    const RunStats s = time_only(chip, k);
    const double hbm_floor = s.hbm_bytes / (chip.hbm_bytes_per_s / chip.clock_hz);
    const double flop_floor = s.flops / (chip.peak_flops(DType::f8e4m3) / chip.clock_hz);
    EXPECT_GT(s.cycles, 0);
    EXPECT_GE(s.cycles, std::max(hbm_floor, flop_floor) * (1 - 1e-9));
    EXPECT_GE(s.cycles, s.roofline_cycles * (1 - 1e-9));
    EXPECT_GE(s.roofline_cycles, std::max(hbm_floor, flop_floor) * (1 - 1e-9));
    for (int p = 0; p < kPipes; ++p)
      EXPECT_LE(s.busy_cycles[static_cast<std::size_t>(p)], s.cycles * static_cast<double>(s.cores_used) * (1 + 1e-9));
  }
}

TEST(Timing, ReReadingTheSameTileFromManyCoresHitsInL2) {
  const ChipDesc chip = load_chip("h800");
  const RunStats shared = time_only(chip, reader(chip.cores, 64, 16, true));
  const RunStats own = time_only(chip, reader(chip.cores, 64, 16, false));
  EXPECT_EQ(own.l2_bytes, 0);
  EXPECT_GT(shared.l2_bytes, 0.9 * (shared.l2_bytes + shared.hbm_bytes));
  EXPECT_EQ(shared.l2_bytes + shared.hbm_bytes, own.hbm_bytes);
  EXPECT_LT(shared.cycles, 0.6 * own.cycles);
}

TEST(Timing, L2ForgetsWhatNoLongerFits) {
  // Two passes over 4x the L2: by the time a region is read again, it was evicted.
  ChipDesc chip = load_chip("tiny");  // 1 MiB of L2
  const int64_t regions = 4 * chip.l2_bytes / (64 * 1024);
  const RunStats s = time_only(chip, kernel("two_passes", 1, [=](int64_t, Program& p) {
                                 for (int pass = 0; pass < 2; ++pass)
                                   for (int64_t r = 0; r < regions; ++r)
                                     p.instrs.push_back(load(0, r * 65536, 64, 1024, 1024));
                               }));
  EXPECT_EQ(s.l2_bytes, 0);
}

TEST(Timing, SimultaneousRunsGiveTheSameCycles) {
  const ChipDesc chip = load_chip("npu-ue8m0");
  const TileKernel k = streaming_copy(77, 1 << 20, 32 << 10);
  const RunStats a = time_only(chip, k), b = time_only(chip, k);
  EXPECT_EQ(a.cycles, b.cycles);
  EXPECT_EQ(a.busy_cycles, b.busy_cycles);
  EXPECT_EQ(a.instructions, b.instructions);
}

TEST(Timing, CountsEveryInstructionAndTheCoresItUsed) {
  const ChipDesc chip = load_chip("tiny");
  const RunStats s = time_only(chip, streaming_copy(3, 256 << 10, 32 << 10));
  // 8 tiles per item: 8 loads, 8 stores, 16 signals, 8 + 6 waits.
  EXPECT_EQ(s.instructions, 3 * (8 + 8 + 16 + 8 + 6));
  EXPECT_EQ(s.cores_used, 3);
}

TEST(Trace, HasOneProcessPerCoreAndOneThreadPerPipe) {
  const ChipDesc chip = load_chip("tiny");
  Simulator sim(chip);
  std::vector<TraceEvent> events;
  const RunStats s = sim.run(resident_gemm(2, 64, 64, 256, 2), {}, {}, RunOptions{.functional = false, .trace = true},
                             &events);
  ASSERT_FALSE(events.empty());
  bool saw_mma = false, saw_load = false;
  for (const TraceEvent& e : events) {
    EXPECT_LE(e.start_cycle, e.end_cycle);
    EXPECT_LE(e.end_cycle, s.cycles);
    saw_mma |= e.name == "mma 64x64x256 e4m3" && e.pipe == Pipe::Matrix;
    saw_load |= e.name == "load 64x256B" && e.pipe == Pipe::DmaIn;
  }
  EXPECT_TRUE(saw_mma);
  EXPECT_TRUE(saw_load);
  const std::string json = chrome_trace_json(chip, events);
  const nlohmann::json parsed = nlohmann::json::parse(json);  // well-formed
  std::size_t complete = 0;
  for (const auto& e : parsed["traceEvents"]) complete += e["ph"] == "X";
  EXPECT_EQ(complete, events.size());
  EXPECT_NE(json.find("{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"core 1\"}}"),
            std::string::npos);
  EXPECT_NE(json.find("\"name\":\"thread_name\",\"args\":{\"name\":\"dma_out\"}"), std::string::npos);
  EXPECT_NE(json.find("\"name\":\"mma 64x64x256 e4m3\""), std::string::npos);
  // 64x64x256 FP8 on tiny: 2*64*64*256/1024 + 4 = 2052 cycles = 2.052 us at 1 GHz.
  EXPECT_NE(json.find("\"dur\":2.052000"), std::string::npos);
}

std::string run_error(const ChipDesc& chip, const TileKernel& k, bool functional = false,
                      std::span<std::byte> hbm = {}) {
  try {
    Simulator sim(chip);
    sim.run(k, {}, hbm, RunOptions{.functional = functional});
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Errors, ScratchpadOverflowNamesKernelWorkItemAndInstruction) {
  const ChipDesc chip = load_chip("tiny");
  const std::string m = run_error(chip, kernel("spill", 4, [&](int64_t item, Program& p) {
                                    p.instrs.push_back(load(0, 0, 1, 64, 64));
                                    const int64_t at = item == 2 ? chip.core.scratchpad_bytes - 100 : 0;
                                    p.instrs.push_back(load(at, 0, 1, 128, 128));
                                  }));
  EXPECT_EQ(m,
            "kernel spill: work item 2: instruction 1 (dma_in  load spm[0x3ff9c] <- hbm[0x0] 1x128B): destination "
            "spm[0x3ff9c, 0x4001c) is beyond the scratchpad (scratchpad_bytes = 262144 on chip tiny)");
}

TEST(Errors, AccumulatorOverflowNamesTheInstruction) {
  const ChipDesc chip = load_chip("tiny");  // 64 KiB accumulator: 136 x 136 fp32 does not fit
  const std::string m = run_error(chip, kernel("big_acc", 1, [](int64_t, Program& p) {
                                    Mma mma;
                                    mma.a = mma.b = {Space::Spm, 0};
                                    mma.acc = {Space::Acc, 0};
                                    mma.m = mma.n = 136, mma.k = 32;
                                    p.instrs.push_back(mma);
                                  }));
  EXPECT_NE(m.find("kernel big_acc: work item 0: instruction 0 (matrix  mma acc[0x0] += "), std::string::npos) << m;
  EXPECT_NE(m.find("accumulator_bytes = 65536"), std::string::npos) << m;
}

TEST(Errors, OperandInTheWrongSpaceIsRejected) {
  const ChipDesc chip = load_chip("tiny");
  const std::string m = run_error(chip, kernel("wrong_space", 1, [](int64_t, Program& p) {
                                    Mma mma;
                                    mma.a = {Space::Acc, 0};
                                    mma.b = {Space::Spm, 0};
                                    mma.acc = {Space::Acc, 0};
                                    mma.m = mma.n = 16, mma.k = 32;
                                    p.instrs.push_back(mma);
                                  }));
  EXPECT_NE(m.find("instruction 0 (matrix  mma"), std::string::npos) << m;
  EXPECT_NE(m.find("a is in acc; it must be in spm"), std::string::npos) << m;
}

TEST(Errors, ScaledMmaNeedsANativeScaleChip) {
  const std::string m = run_error(load_chip("npu-fp32scale"), kernel("scaled", 1, [](int64_t, Program& p) {
                                    Mma mma;
                                    mma.a = mma.b = {Space::Spm, 0};
                                    mma.acc = {Space::Acc, 0};
                                    mma.m = mma.n = 16, mma.k = 128;
                                    mma.scaled = true;
                                    p.instrs.push_back(mma);
                                  }));
  EXPECT_NE(m.find("native_ue8m0_scales false"), std::string::npos) << m;
}

TEST(Errors, HbmAccessOutsideTheGivenMemoryIsRejectedInAFunctionalRun) {
  std::vector<std::byte> hbm(4096);
  const std::string m = run_error(load_chip("tiny"), kernel("oob", 1, [](int64_t, Program& p) {
                                    p.instrs.push_back(load(0, 2048, 4, 1024, 1024));
                                  }),
                                  true, hbm);
  EXPECT_NE(m.find("kernel oob: work item 0: instruction 0"), std::string::npos) << m;
  EXPECT_NE(m.find("beyond the device memory given to the run (4096 bytes)"), std::string::npos) << m;
}

TEST(Errors, AWaitWithoutEnoughSignalsIsADeadlock) {
  const std::string m = run_error(load_chip("tiny"), kernel("lonely_wait", 3, [](int64_t, Program& p) {
                                    p.instrs.push_back(Signal{Pipe::DmaIn, 3});
                                    p.instrs.push_back(Wait{Pipe::Matrix, 3});
                                    p.instrs.push_back(Wait{Pipe::Vector, 3});
                                  }));
  EXPECT_EQ(m,
            "kernel lonely_wait: work item 0: instruction 2 (vector  wait f3): deadlock: this wait can never be "
            "satisfied: flag 3 is signalled 1 times and waited on 2 times");
}

TEST(Errors, CircularWaitsAreADeadlockNotAHang) {
  const std::string m = run_error(load_chip("tiny"), kernel("circular", 6, [](int64_t item, Program& p) {
                                    if (item == 4) {
                                      p.instrs.push_back(Wait{Pipe::Matrix, 0});
                                      p.instrs.push_back(Signal{Pipe::Matrix, 1});
                                      p.instrs.push_back(Wait{Pipe::Vector, 1});
                                      p.instrs.push_back(Signal{Pipe::Vector, 0});
                                    } else {
                                      p.instrs.push_back(Signal{Pipe::Matrix, 0});
                                      p.instrs.push_back(Wait{Pipe::Vector, 0});
                                    }
                                  }));
  EXPECT_EQ(m,
            "kernel circular: work item 4: instruction 0 (matrix  wait f0): deadlock: no pipe can progress: matrix "
            "waits at instruction 0 (matrix  wait f0) for flag 0; vector waits at instruction 2 (vector  wait f1) "
            "for flag 1");
}

}  // namespace
}  // namespace anychip::sim
