// bench_cpu_gemm: anychip's CPU FP8 GEMM against OpenBLAS SGEMM, in the same run.
//
// For each shape MxNxK: random block-scaled E4M3 inputs (A 1x128, B 128x128 UE8M0
// scales, as DeepSeek-V3.1), timed through cpu::gemm_fp8 (f32 out); the same inputs
// dequantized to fp32 and timed through cblas_sgemm (row-major, A * B^T); both on all
// cores; the median of several runs after a warm-up. Reports GFLOP/s of each, their ratio
// (ours / OpenBLAS), the relative L2 difference of the two results and the ISA used.
//
//   bench_cpu_gemm [--json] [--shapes MxNxK,...] [--repeats N] [--out f32|bf16] [--ours-only]
// ANYCHIP_CPU_ISA=avx2|generic benchmarks a lower path. `./run bench` runs this with
// OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so OpenBLAS picks its best kernel.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <tbb/task_arena.h>

#include "anychip/error.hpp"
#include "anychip/quantize.hpp"
#include "anychip/tensor.hpp"
#include "kernels/cpu/cpu_kernels.hpp"

#if ANYCHIP_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

using namespace anychip;

struct GemmShape {
  std::int64_t m, n, k;
  std::string str() const { return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k); }
};

// Square, then DeepSeek-V3-like projections (N x K = 2112x7168: fused q_a/kv_a,
// 4096x7168, 7168x2048: o_proj-like) at prefill chunk sizes M = 128 and 512.
const std::vector<GemmShape> kDefaultShapes = {
    {2048, 2048, 2048}, {128, 2112, 7168}, {128, 4096, 7168}, {128, 7168, 2048},
    {512, 2112, 7168},  {512, 4096, 7168}, {512, 7168, 2048},
};

struct Options {
  bool json = false;
  bool ours_only = false;  // skip the peer (quick tuning runs)
  int repeats = 0;  // 0: as many as fit in about 0.4 s per side, at least 3
  DType out = DType::f32;
  std::vector<GemmShape> shapes = kDefaultShapes;
};

[[noreturn]] void usage(const std::string& error) {
  std::fprintf(stderr,
               "bench_cpu_gemm: %s\n"
               "usage: bench_cpu_gemm [--json] [--shapes MxNxK,...] [--repeats N] [--out f32|bf16] [--ours-only]\n"
               "  K must be a multiple of 128. ANYCHIP_CPU_ISA=avx2|generic benchmarks a lower path.\n",
               error.c_str());
  std::exit(2);
}

std::vector<GemmShape> parse_shapes(const std::string& text) {
  std::vector<GemmShape> shapes;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, end - pos);
    long long m, n, k;
    char tail;
    if (std::sscanf(item.c_str(), "%lldx%lldx%lld%c", &m, &n, &k, &tail) != 3 || m <= 0 || n <= 0 || k <= 0)
      usage("bad shape '" + item + "' (want MxNxK, e.g. 128x2112x7168)");
    if (k % 128 != 0) usage("shape " + item + ": K=" + std::to_string(k) + " is not a multiple of 128");
    shapes.push_back({m, n, k});
    pos = end + 1;
  }
  return shapes;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--json") {
      o.json = true;
    } else if (arg == "--ours-only") {
      o.ours_only = true;
    } else if (arg == "--shapes") {
      o.shapes = parse_shapes(value());
    } else if (arg == "--repeats") {
      o.repeats = std::atoi(value().c_str());
      if (o.repeats < 1) usage("--repeats must be at least 1");
    } else if (arg == "--out") {
      const std::string v = value();
      if (v == "f32") o.out = DType::f32;
      else if (v == "bf16") o.out = DType::bf16;
      else usage("--out must be f32 or bf16");
    } else if (arg == "--help" || arg == "-h") {
      usage("help");
    } else {
      usage("unknown argument '" + arg + "'");
    }
  }
  return o;
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
}

// A library's worker threads keep spinning for a while after a call returns; timing the
// other library meanwhile would hand it fewer cores (OpenBLAS's pthread workers spin for
// 2^28 TSC cycles, about 0.1 s, by default). Each run is followed by a pause that outlasts
// this, the same for both libraries.
struct Run {
  std::function<void()> f;
  std::chrono::milliseconds settle;  // wait after each run before timing another library
};

// Median seconds of each run, timed in rounds (one run of each per round, after one
// warm-up run each) so that the background load of a shared machine hits all of them
// alike. repeats = 0: as many rounds as fit in about 1 s of runs, at least 3, at most 9.
std::vector<double> median_seconds(const std::vector<Run>& runs, int repeats) {
  auto settle = [&](const Run& r) {
    if (runs.size() > 1) std::this_thread::sleep_for(r.settle);
  };
  double warm = 0;
  for (const Run& r : runs) {
    warm += seconds_of(r.f);
    settle(r);
  }
  if (repeats == 0) repeats = std::clamp(static_cast<int>(1.0 / std::max(warm, 1e-6)), 3, 9);
  std::vector<std::vector<double>> t(runs.size());
  for (int rep = 0; rep < repeats; ++rep)
    for (std::size_t i = 0; i < runs.size(); ++i) {
      t[i].push_back(seconds_of(runs[i].f));
      settle(runs[i]);
    }
  std::vector<double> medians;
  for (auto& ti : t) medians.push_back(median(ti));
  return medians;
}

struct Fp8Matrix {
  HostTensor q;
  std::vector<float> dequantized;
};

Fp8Matrix make_matrix(std::int64_t rows, std::int64_t cols, BlockShape block, std::uint64_t seed) {
  Fp8Matrix x;
  x.q = HostTensor::random(TensorType{DType::f8e4m3, {rows, cols}, ScaleLayout{block, DType::ue8m0}}, seed);
  x.dequantized.resize(static_cast<std::size_t>(rows * cols));
  dequantize_blocks({reinterpret_cast<const std::uint8_t*>(x.q.data.data()), x.q.data.size()}, x.q.scales, rows,
                    cols, block, DType::f8e4m3, DType::ue8m0, x.dequantized);
  return x;
}

struct Row {
  GemmShape shape;
  double ours_s = 0, peer_s = 0;  // median seconds (peer_s = 0: no peer)
  double rel_diff = 0;            // ||ours - OpenBLAS|| / ||OpenBLAS||
  std::string isa;
};

double gflops(const GemmShape& s, double seconds) { return 2.0 * s.m * s.n * s.k / seconds * 1e-9; }

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  try {
    const int threads = tbb::this_task_arena::max_concurrency();
    const std::string isa(kernels::cpu::isa());
#if ANYCHIP_HAVE_OPENBLAS
    openblas_set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    const bool have_peer = !opt.ours_only;
    const std::string peer_core = openblas_get_corename();
    const std::string peer_config = openblas_get_config();
    const int peer_threads = openblas_get_num_threads();
#else
    const bool have_peer = false;
    const std::string peer_core, peer_config;
    const int peer_threads = 0;
#endif
    if (!opt.json) {
      std::printf("anychip cpu::gemm_fp8 (E4M3, 1x128 / 128x128 UE8M0 scales, %s out) vs OpenBLAS cblas_sgemm on the same inputs dequantized to fp32\n",
                  std::string(dtype_name(opt.out)).c_str());
      std::printf("ours: isa=%s, %d threads (oneTBB)\n", isa.c_str(), threads);
      if (have_peer) {
        std::printf("peer: OpenBLAS core=%s, %d threads (%s)\n", peer_core.c_str(), peer_threads, peer_config.c_str());
        for (const char* pin : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"})
          if (const char* v = std::getenv(pin))
            std::printf("note: %s=%s is set and may hold OpenBLAS below its best (./run bench unsets it)\n", pin, v);
      } else if (opt.ours_only)
        std::printf("peer: skipped (--ours-only)\n");
      else
        std::printf("peer: missing (built without OpenBLAS); reporting ours only\n");
      std::printf("\n%-18s %12s %12s %8s %10s  %s\n", "shape MxNxK", "ours GFLOP/s", "BLAS GFLOP/s", "ratio",
                  "rel_diff", "isa");
      std::fflush(stdout);
    }

    // Inputs are reused by shapes that share them (M x K activations, N x K weights).
    std::map<std::pair<std::int64_t, std::int64_t>, Fp8Matrix> activations, weights;
    std::vector<Row> rows;
    for (const GemmShape& s : opt.shapes) {
      auto a_it = activations.find({s.m, s.k});
      if (a_it == activations.end())
        a_it = activations.emplace(std::pair{s.m, s.k}, make_matrix(s.m, s.k, kActivationBlock, 1000 + s.m * 7 + s.k)).first;
      auto b_it = weights.find({s.n, s.k});
      if (b_it == weights.end())
        b_it = weights.emplace(std::pair{s.n, s.k}, make_matrix(s.n, s.k, kWeightBlock, 2000 + s.n * 7 + s.k)).first;
      const Fp8Matrix& a = a_it->second;
      const Fp8Matrix& b = b_it->second;

      Row row;
      row.shape = s;
      row.isa = isa;
      kernels::GemmFp8Problem p{s.m, s.n, s.k, DType::f8e4m3, DType::f8e4m3, DType::ue8m0, DType::ue8m0, opt.out};
      HostTensor d(TensorType{opt.out, {s.m, s.n}, std::nullopt});
      std::vector<Run> runs;
      runs.push_back({[&] {
                        kernels::cpu::gemm_fp8(p, {a.q.data.data(), a.q.scales.data()},
                                               {b.q.data.data(), b.q.scales.data()}, {d.data.data(), nullptr});
                      },
                      std::chrono::milliseconds(250)});
#if ANYCHIP_HAVE_OPENBLAS
      std::vector<float> c(static_cast<std::size_t>(s.m * s.n));
      if (have_peer)
        runs.push_back({[&] {
                          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(s.m),
                                      static_cast<int>(s.n), static_cast<int>(s.k), 1.0f, a.dequantized.data(),
                                      static_cast<int>(s.k), b.dequantized.data(), static_cast<int>(s.k), 0.0f,
                                      c.data(), static_cast<int>(s.n));
                        },
                        std::chrono::milliseconds(250)});
#endif
      const std::vector<double> t = median_seconds(runs, opt.repeats);
      row.ours_s = t[0];
#if ANYCHIP_HAVE_OPENBLAS
      if (have_peer) {
        row.peer_s = t[1];
        row.rel_diff = rel_err(d.values(), std::vector<double>(c.begin(), c.end()));
      }
#endif
      rows.push_back(row);
      if (!opt.json) {
        if (have_peer)
          std::printf("%-18s %12.1f %12.1f %7.2fx %10.2e  %s\n", s.str().c_str(), gflops(s, row.ours_s),
                      gflops(s, row.peer_s), row.peer_s / row.ours_s, row.rel_diff, row.isa.c_str());
        else
          std::printf("%-18s %12.1f %12s %8s %10s  %s\n", s.str().c_str(), gflops(s, row.ours_s), "-", "-", "-",
                      row.isa.c_str());
        std::fflush(stdout);
      }
    }

    if (opt.json) {
      std::printf("{\n  \"benchmark\": \"cpu_gemm_fp8_vs_openblas_sgemm\",\n  \"out_dtype\": \"%s\",\n",
                  std::string(dtype_name(opt.out)).c_str());
      std::printf("  \"ours\": {\"isa\": \"%s\", \"threads\": %d},\n", isa.c_str(), threads);
      if (have_peer)
        std::printf("  \"peer\": {\"name\": \"OpenBLAS\", \"corename\": \"%s\", \"threads\": %d, \"config\": \"%s\"},\n",
                    json_escape(peer_core).c_str(), peer_threads, json_escape(peer_config).c_str());
      else
        std::printf("  \"peer\": null,\n");
      std::printf("  \"results\": [\n");
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        std::printf("    {\"shape\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"ours_gflops\": %.2f, ",
                    r.shape.str().c_str(), static_cast<long long>(r.shape.m), static_cast<long long>(r.shape.n),
                    static_cast<long long>(r.shape.k), gflops(r.shape, r.ours_s));
        if (have_peer)
          std::printf("\"peer_gflops\": %.2f, \"ratio\": %.4f, \"rel_diff\": %.3e, ", gflops(r.shape, r.peer_s),
                      r.peer_s / r.ours_s, r.rel_diff);
        else
          std::printf("\"peer_gflops\": null, \"ratio\": null, \"rel_diff\": null, ");
        std::printf("\"isa\": \"%s\"}%s\n", r.isa.c_str(), i + 1 < rows.size() ? "," : "");
      }
      std::printf("  ]\n}\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cpu_gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}
