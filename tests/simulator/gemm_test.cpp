// A DeepSeek-style block-scaled FP8 GEMM written as tile programs by hand: both ways of
// applying the scales (in the matrix unit on a UE8M0-native chip, on the vector unit
// otherwise) give the same bits and the reference result; the run is deterministic
// whatever the host threads; and the timing engine is fast enough for large what-if runs.
#include <gtest/gtest.h>
#include <oneapi/tbb/global_control.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <random>
#include <vector>

#include "anychip/formats.hpp"
#include "anychip/quantize.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "simulator/engine.hpp"

namespace anychip::sim {
namespace {

using std::int64_t;

// D[M x N] (f32) = A[M x K] (e4m3) x B[N x K]^T with per-(row, 128 of K) scales of A and
// per-(128 x 128) scales of B, DESIGN.md's FP8 GEMM. Operand layout in HBM (args):
//   args[0] A, row-major M x K          args[1] B, row-major N x K
//   args[2] SA, [K/128][M] (k-block-major, so one step's scales are contiguous)
//   args[3] SB, [K/128][N/128]          args[4] D, row-major M x N, f32
struct GemmConfig {
  int64_t m, n, k;
  int64_t tm, tn;  // tile; tn a multiple of 128
  int stages = 2;
  DType scale_dtype = DType::ue8m0;
  bool native = true;  // scaled mma (native chips) or promotion on the vector unit
};

TileKernel block_scaled_gemm(const GemmConfig& g) {
  TileKernel kernel;
  kernel.name = g.native ? "gemm_fp8_native" : "gemm_fp8_promoted";
  const int64_t tiles_n = g.n / g.tn, chunks = g.tn / 128, steps = g.k / 128;
  kernel.work_items = (g.m / g.tm) * tiles_n;
  kernel.build = [g, tiles_n, chunks, steps](int64_t item, std::span<const int64_t> args, Program& p) {
    const int64_t mi = item / tiles_n, ni = item % tiles_n;
    const int64_t ss = static_cast<int64_t>(dtype_size(g.scale_dtype));
    // Scratchpad: per stage A, B, SA (tm), SB (chunks); then the combined scales (f32).
    const int64_t a_bytes = g.tm * 128, b_bytes = g.tn * 128, sa_bytes = g.tm * ss, sb_bytes = chunks * ss;
    const int64_t stage_bytes = (a_bytes + b_bytes + sa_bytes + sb_bytes + 127) / 128 * 128;
    const int64_t comb = g.stages * stage_bytes;
    // Accumulator: the result (chunks blocks of tm x 128 f32), then the partial products.
    const int64_t chunk_acc = g.tm * 128 * 4, partial = chunks * chunk_acc;
    const int full0 = 0, free0 = g.stages, pfull = 2 * g.stages, pfree = pfull + 1, done = pfull + 2;
    auto emit = [&](Instr i) { p.instrs.push_back(i); };
    for (int64_t kb = 0; kb < steps; ++kb) {
      const int s = static_cast<int>(kb % g.stages);
      const int64_t base = s * stage_bytes, a = base, b = a + a_bytes, sa = b + b_bytes, sb = sa + sa_bytes;
      if (kb >= g.stages) emit(Wait{Pipe::DmaIn, free0 + s});
      emit(Load{Region{{Space::Hbm, args[0] + mi * g.tm * g.k + kb * 128}, g.tm, 128, g.k}, {Space::Spm, a}});
      emit(Load{Region{{Space::Hbm, args[1] + ni * g.tn * g.k + kb * 128}, g.tn, 128, g.k}, {Space::Spm, b}});
      emit(Load{Region{{Space::Hbm, args[2] + (kb * g.m + mi * g.tm) * ss}, 1, sa_bytes, sa_bytes}, {Space::Spm, sa}});
      emit(Load{Region{{Space::Hbm, args[3] + (kb * (g.n / 128) + ni * chunks) * ss}, 1, sb_bytes, sb_bytes},
                {Space::Spm, sb}});
      emit(Signal{Pipe::DmaIn, full0 + s});
      emit(Wait{Pipe::Matrix, full0 + s});
      if (!g.native && kb > 0) emit(Wait{Pipe::Matrix, pfree});
      for (int64_t c = 0; c < chunks; ++c) {
        Mma m;
        m.a = {Space::Spm, a};
        m.b = {Space::Spm, b + c * 128 * 128};
        m.m = g.tm, m.n = 128, m.k = 128;
        if (g.native) {
          m.acc = {Space::Acc, c * chunk_acc};
          m.accumulate = kb > 0;
          m.scaled = true;
          m.scale_a = {{Space::Spm, sa}, g.scale_dtype};
          m.scale_b = {{Space::Spm, sb + c * ss}, g.scale_dtype};
        } else {
          m.acc = {Space::Acc, partial + c * chunk_acc};
          m.accumulate = false;
        }
        emit(m);
      }
      if (g.native) {
        emit(Signal{Pipe::Matrix, free0 + s});
        continue;
      }
      emit(Signal{Pipe::Matrix, pfull});
      emit(Wait{Pipe::Vector, pfull});
      const int64_t wide = comb + 4 * 256;  // the step's scales as f32 (sa then sb)
      if (g.scale_dtype != DType::f32) {    // RowScale reads f32: widen the UE8M0 scales first
        Vec widen;
        widen.op = VecOp::Convert;
        widen.dtype_in = g.scale_dtype;
        widen.dtype_out = DType::f32;
        widen.rows = 1, widen.cols = g.tm + chunks;
        widen.src0 = {Space::Spm, sa};  // sa and sb are adjacent
        widen.dst = {Space::Spm, wide};
        emit(widen);
      }
      for (int64_t c = 0; c < chunks; ++c) {
        // comb[i] = sa[i] * sb[c], then acc_c (+)= partial_c * comb[row].
        Vec combine;
        combine.op = VecOp::RowScale;
        combine.dst = {Space::Spm, comb};
        combine.src0 = {Space::Spm, sa};
        combine.src1 = {Space::Spm, sb + c * ss};
        combine.rows = 1, combine.cols = g.tm;
        if (g.scale_dtype != DType::f32) {
          combine.src0 = {Space::Spm, wide};
          combine.src1 = {Space::Spm, wide + 4 * (g.tm + c)};
        }
        emit(combine);
        Vec acc;
        acc.op = kb == 0 ? VecOp::RowScale : VecOp::ScaleAccumulate;
        acc.dst = {Space::Acc, c * chunk_acc};
        acc.src0 = {Space::Acc, partial + c * chunk_acc};
        acc.src1 = {Space::Spm, comb};
        acc.rows = g.tm, acc.cols = 128;
        acc.scale_dtype = DType::f32, acc.imm = 1;
        emit(acc);
      }
      emit(Signal{Pipe::Vector, pfree});
      emit(Signal{Pipe::Vector, free0 + s});
    }
    emit(Signal{g.native ? Pipe::Matrix : Pipe::Vector, done});
    emit(Wait{Pipe::DmaOut, done});
    for (int64_t c = 0; c < chunks; ++c)
      emit(Store{{Space::Acc, c * chunk_acc},
                 Region{{Space::Hbm, args[4] + (mi * g.tm * g.n + ni * g.tn + c * 128) * 4}, g.tm, 512, g.n * 4}});
  };
  return kernel;
}

struct GemmData {
  std::vector<std::byte> hbm;
  std::vector<int64_t> args;
  std::vector<float> a, b;                // the dequantized operands
  std::vector<std::byte> sa_rows, sb_rows;  // the scales in DESIGN.md's layout ([M][K/128], [N/128][K/128])
};

GemmData make_gemm_data(const GemmConfig& g, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> xa(static_cast<std::size_t>(g.m * g.k)), xb(static_cast<std::size_t>(g.n * g.k));
  for (float& v : xa) v = dist(rng) * 3;
  for (float& v : xb) v = dist(rng) * 0.02f;
  const int64_t ss = static_cast<int64_t>(dtype_size(g.scale_dtype)), kb = g.k / 128;
  GemmData d;
  const int64_t a_at = 0, b_at = a_at + g.m * g.k, sa_at = b_at + g.n * g.k, sb_at = sa_at + kb * g.m * ss,
                d_at = (sb_at + kb * (g.n / 128) * ss + 63) / 64 * 64;
  d.args = {a_at, b_at, sa_at, sb_at, d_at};
  d.hbm.assign(static_cast<std::size_t>(d_at + g.m * g.n * 4), std::byte{0xEE});
  auto* u8 = reinterpret_cast<std::uint8_t*>(d.hbm.data());
  // A: 1x128 blocks; scales stored [K/128][M].
  std::vector<std::byte> sa(static_cast<std::size_t>(g.m * kb * ss)), sb(static_cast<std::size_t>((g.n / 128) * kb * ss));
  quantize_blocks(xa, g.m, g.k, kActivationBlock, DType::f8e4m3, g.scale_dtype,
                  std::span<std::uint8_t>(u8 + a_at, static_cast<std::size_t>(g.m * g.k)), sa);
  quantize_blocks(xb, g.n, g.k, kWeightBlock, DType::f8e4m3, g.scale_dtype,
                  std::span<std::uint8_t>(u8 + b_at, static_cast<std::size_t>(g.n * g.k)), sb);
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < kb; ++j)
      std::memcpy(u8 + sa_at + (j * g.m + i) * ss, sa.data() + (i * kb + j) * ss, static_cast<std::size_t>(ss));
  for (int64_t i = 0; i < g.n / 128; ++i)
    for (int64_t j = 0; j < kb; ++j)
      std::memcpy(u8 + sb_at + (j * (g.n / 128) + i) * ss, sb.data() + (i * kb + j) * ss, static_cast<std::size_t>(ss));
  d.sa_rows = sa;
  d.sb_rows = sb;
  d.a.resize(xa.size());
  d.b.resize(xb.size());
  dequantize_blocks(std::span<const std::uint8_t>(u8 + a_at, xa.size()), sa, g.m, g.k, kActivationBlock,
                    DType::f8e4m3, g.scale_dtype, d.a);
  dequantize_blocks(std::span<const std::uint8_t>(u8 + b_at, xb.size()), sb, g.n, g.k, kWeightBlock, DType::f8e4m3,
                    g.scale_dtype, d.b);
  return d;
}

std::vector<float> result(const GemmConfig& g, const GemmData& d) {
  std::vector<float> out(static_cast<std::size_t>(g.m * g.n));
  std::memcpy(out.data(), d.hbm.data() + d.args[4], out.size() * 4);
  return out;
}

TEST(Gemm, NativeAndPromotedScalesGiveTheSameBitsAndTheReference) {
  for (DType scale : {DType::ue8m0, DType::f32}) {
    SCOPED_TRACE(dtype_name(scale));
    GemmConfig g{.m = 128, .n = 256, .k = 512, .tm = 64, .tn = 128, .scale_dtype = scale};
    GemmData native = make_gemm_data(g, 7), promoted = make_gemm_data(g, 7);
    Simulator sim_native(load_chip("tiny"));
    ChipDesc fp32scale = load_chip("tiny");
    fp32scale.core.matrix.native_ue8m0_scales = false;
    Simulator sim_promoted(fp32scale);
    g.native = true;
    const RunStats sn = sim_native.run(block_scaled_gemm(g), native.args, native.hbm, {});
    g.native = false;
    const RunStats sp = sim_promoted.run(block_scaled_gemm(g), promoted.args, promoted.hbm, {});
    const std::vector<float> dn = result(g, native), dp = result(g, promoted);
    EXPECT_EQ(0, std::memcmp(dn.data(), dp.data(), dn.size() * 4));
    // Promotion costs vector time: the native chip is never slower.
    EXPECT_LE(sn.cycles, sp.cycles);
    EXPECT_EQ(sn.busy_cycles[static_cast<int>(Pipe::Vector)], 0);
    EXPECT_GT(sp.busy_cycles[static_cast<int>(Pipe::Vector)], 0);
    // Against the dequantized operands in double.
    double err = 0, ref_norm = 0;
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) {
        double r = 0;
        for (int64_t k = 0; k < g.k; ++k)
          r += static_cast<double>(native.a[static_cast<std::size_t>(i * g.k + k)]) * native.b[static_cast<std::size_t>(j * g.k + k)];
        const double diff = dn[static_cast<std::size_t>(i * g.n + j)] - r;
        err += diff * diff;
        ref_norm += r * r;
      }
    EXPECT_LT(std::sqrt(err / ref_norm), 1e-6);
  }
}

TEST(Gemm, SameCyclesAndBitsWithOneOrManyHostThreads) {
  GemmConfig g{.m = 256, .n = 256, .k = 384, .tm = 64, .tn = 128, .native = false};
  const ChipDesc chip = load_chip("npu-fp32scale");
  std::vector<RunStats> stats;
  std::vector<std::vector<float>> outputs;
  for (int threads : {1, 4, 1, 3}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
    GemmData d = make_gemm_data(g, 11);
    Simulator sim(chip);
    stats.push_back(sim.run(block_scaled_gemm(g), d.args, d.hbm, {}));
    outputs.push_back(result(g, d));
  }
  for (std::size_t i = 1; i < stats.size(); ++i) {
    EXPECT_EQ(stats[i].cycles, stats[0].cycles);
    EXPECT_EQ(stats[i].busy_cycles, stats[0].busy_cycles);
    EXPECT_EQ(stats[i].hbm_bytes, stats[0].hbm_bytes);
    EXPECT_EQ(stats[i].l2_bytes, stats[0].l2_bytes);
    EXPECT_EQ(outputs[i], outputs[0]);
  }
  // The timing of a functional run is the timing of a timing-only run.
  Simulator sim(chip);
  EXPECT_EQ(sim.run(block_scaled_gemm(g), make_gemm_data(g, 11).args, {}, RunOptions{.functional = false}).cycles,
            stats[0].cycles);
}

TEST(Gemm, FunctionalRunCostsASmallMultipleOfTheCpuKernel) {
  const GemmConfig g{.m = 512, .n = 1024, .k = 2048, .tm = 128, .tn = 256, .scale_dtype = DType::ue8m0};
  GemmData d = make_gemm_data(g, 21);
  const kernels::GemmFp8Problem problem{.m = g.m, .n = g.n, .k = g.k, .out_dtype = DType::f32};
  std::vector<float> cpu_out(static_cast<std::size_t>(g.m * g.n));
  const auto* a = d.hbm.data() + d.args[0];
  const auto* b = d.hbm.data() + d.args[1];
  auto seconds_of = [](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  Simulator sim(load_chip("npu-ue8m0"));
  const TileKernel kernel = block_scaled_gemm(g);
  // Alternately, best of three each: a shared machine's load hits both alike.
  double cpu = 1e30, simulated = 1e30;
  for (int i = 0; i < 3; ++i) {
    cpu = std::min(cpu, seconds_of([&] {
      kernels::cpu::gemm_fp8(problem, {a, d.sa_rows.data()}, {b, d.sb_rows.data()}, {cpu_out.data(), nullptr});
    }));
    simulated = std::min(simulated, seconds_of([&] { sim.run(kernel, d.args, d.hbm, {}); }));
  }
  std::printf("[ functional ] %lldx%lldx%lld FP8 GEMM: simulator %.3f s, CPU backend %.3f s (%.1fx)\n",
              static_cast<long long>(g.m), static_cast<long long>(g.n), static_cast<long long>(g.k), simulated, cpu,
              simulated / cpu);
  const std::vector<float> sim_out = result(g, d);
  double err = 0, norm = 0;
  for (std::size_t i = 0; i < sim_out.size(); ++i) {
    err += (sim_out[i] - cpu_out[i]) * static_cast<double>(sim_out[i] - cpu_out[i]);
    norm += static_cast<double>(cpu_out[i]) * cpu_out[i];
  }
  EXPECT_LT(std::sqrt(err / norm), 1e-6);
  EXPECT_LT(simulated, 10 * cpu);
}

TEST(Gemm, LargeTimingOnlyRunTakesUnderASecondOfHostTime) {
  // DeepSeek's o_proj-sized GEMM, M=4096 tokens: 896 work items of 128 K steps.
  struct Case {
    const char* chip;
    bool native;
    DType scales;
  };
  for (const Case c : {Case{"h800", false, DType::f32}, Case{"npu-ue8m0", true, DType::ue8m0}}) {
    SCOPED_TRACE(c.chip);
    const GemmConfig g{.m = 4096, .n = 7168, .k = 16384, .tm = 128, .tn = 256, .scale_dtype = c.scales, .native = c.native};
    const ChipDesc chip = load_chip(c.chip);
    Simulator sim(chip);
    const std::vector<int64_t> args = {0, int64_t{1} << 30, int64_t{2} << 30, int64_t{3} << 30, int64_t{4} << 30};
    // Process CPU time (the timing engine is single-threaded): other processes on a shared
    // build machine do not count against it.
    const std::clock_t c0 = std::clock();
    const auto t0 = std::chrono::steady_clock::now();
    const RunStats s = sim.run(block_scaled_gemm(g), args, {}, RunOptions{.functional = false});
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double host = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const double device = s.cycles / chip.clock_hz;
    std::printf("[ %s ] %lld instructions in %.3f s of host CPU time (%.3f s wall; %.2f M instructions/s, "
                "%.0f M cycles/s); device %.1f us = %.0f TFLOP/s (%.0f%% of peak); HBM %.2f GB, L2 %.2f GB\n",
                c.chip, static_cast<long long>(s.instructions), host, wall, s.instructions / host / 1e6,
                s.cycles / host / 1e6, device * 1e6, s.flops / device / 1e12,
                100 * s.flops / device / chip.peak_flops(DType::f8e4m3), s.hbm_bytes / 1e9, s.l2_bytes / 1e9);
    EXPECT_DOUBLE_EQ(s.flops, 2.0 * g.m * g.n * g.k);
    EXPECT_GE(s.cycles, s.roofline_cycles);
    EXPECT_LT(host, 1.0);
  }
}

}  // namespace
}  // namespace anychip::sim
