// bench_opencl_gemm: the FP8 GEMM on an OpenCL device against the CPU backend, in the same
// run, through the public API.
//
// For each shape MxNxK: one gemm_fp8 graph (E4M3, A 1x128 and B 128x128 UE8M0 scales, as
// DeepSeek-V3.1), compiled for the OpenCL device and for "cpu", the same random inputs
// uploaded to both; then rounds of one run on each, alternating, after a warm-up run each,
// with a pause after every run so that neither runtime's idle worker threads steal the
// other's cores. Each run's time is the device time of its kernel as the device measures it
// (OpenCL: profiling timestamps; cpu: the host clock around its synchronous kernel), and
// the wall time of run + synchronize. Reports GFLOP/s of each side, and the ratio
// opencl / cpu of their speeds (> 1: OpenCL faster), medians over the rounds; both results
// are checked against the float64 reference once.
//
//   bench_opencl_gemm [--json] [--device opencl:N] [--shapes MxNxK,...] [--repeats N]
//                     [--out f32|bf16] [--ours-only]
// Without an OpenCL device it says why and exits 0 (nothing to measure).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <optional>
#include <thread>
#include <vector>

#include "anychip/anychip.hpp"

namespace {

using namespace anychip;

struct GemmShape {
  std::int64_t m, n, k;
  std::string str() const { return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k); }
};

// The anychip bench shape of the issue, then DeepSeek-V3-like projections (N x K =
// 2112x7168, 7168x2048) at prefill chunks of 128 and 512 tokens, and decode batches of 16
// and 1.
const std::vector<GemmShape> kDefaultShapes = {
    {512, 768, 1024}, {128, 2112, 7168}, {512, 2112, 7168}, {512, 7168, 2048}, {16, 2112, 7168}, {1, 2112, 7168},
};

struct Options {
  bool json = false;
  bool ours_only = false;
  std::string device = "opencl:0";
  int repeats = 0;  // 0: as many as fit in about 1 s per side, 3 to 9
  DType out = DType::f32;
  std::vector<GemmShape> shapes = kDefaultShapes;
};

[[noreturn]] void usage(const std::string& error) {
  std::fprintf(stderr,
               "bench_opencl_gemm: %s\n"
               "usage: bench_opencl_gemm [--json] [--device opencl:N] [--shapes MxNxK,...] [--repeats N]\n"
               "                         [--out f32|bf16] [--ours-only]\n",
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
    } else if (arg == "--device") {
      o.device = value();
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

double median(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
}

double gflops(const GemmShape& s, double seconds) { return seconds > 0 ? 2.0 * s.m * s.n * s.k / seconds * 1e-9 : 0; }

// One side of the comparison: the graph compiled for a device, its inputs and output.
struct Side {
  Device device;
  Stream stream;
  Executable exe;
  std::vector<Tensor> in, out;
  std::vector<double> kernel_s, wall_s;
  double rel_err = 0;

  Side(const ir::Graph& g, const Device& d, const std::vector<HostTensor>& inputs)
      : device(d), stream(d.create_stream()), exe(compile(g, d)) {
    for (const HostTensor& h : inputs) in.push_back(device.upload(h, stream));
    out = exe.allocate_outputs();
    stream.synchronize();
  }

  // One run; returns after it has finished. record: keep its times.
  void run(bool record) {
    const auto t0 = std::chrono::steady_clock::now();
    exe.run(stream, in, out);
    stream.synchronize();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!record) return;
    wall_s.push_back(wall);
    kernel_s.push_back(exe.last_kernel_seconds(stream).at(0));
  }

  void check() {
    const std::vector<KernelCheck> c = exe.check_last_run(stream);
    rel_err = c.at(0).rel_err;
    if (!c.at(0).ok)
      throw Error(ErrorCode::Internal, device.info().id + ": result off the reference: rel_err " +
                                           std::to_string(c[0].rel_err) + " > " + std::to_string(c[0].tolerance));
  }
};

void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(100)); }

struct Row {
  GemmShape shape;
  std::string spec;
  double ocl_s = 0, cpu_s = 0, ocl_wall = 0, cpu_wall = 0;
  double ocl_err = 0, cpu_err = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  try {
    DeviceInfo info;
    for (const DeviceInfo& d : list_devices())
      if (d.id == opt.device || (d.backend == "opencl" && !d.available && opt.device.rfind("opencl", 0) == 0)) info = d;
    if (!info.available) {
      const std::string why = info.id.empty() ? "no such device" : info.unavailable_reason;
      if (opt.json)
        std::printf("{\"benchmark\": \"opencl_gemm_fp8_vs_cpu\", \"device\": \"%s\", \"skipped\": \"%s\"}\n",
                    opt.device.c_str(), why.c_str());
      else
        std::printf("bench_opencl_gemm: %s is unavailable (%s); nothing to measure\n", opt.device.c_str(), why.c_str());
      return 0;
    }
    const Device ocl = Device::open(opt.device);
    const Device cpu = Device::open("cpu");
    if (!opt.json) {
      std::printf("anychip gemm_fp8 (E4M3, 1x128 / 128x128 UE8M0 scales, %s out) on %s against cpu, same inputs\n",
                  std::string(dtype_name(opt.out)).c_str(), opt.device.c_str());
      std::printf("ours: %s [%s], %d compute units\n", ocl.info().name.c_str(), ocl.info().arch.c_str(),
                  ocl.info().compute_units);
      std::printf("peer: cpu %s [%s], %d threads%s\n", cpu.info().name.c_str(), cpu.info().arch.c_str(),
                  cpu.info().compute_units, opt.ours_only ? " (skipped: --ours-only)" : "");
      std::printf("times: each device's kernel time, median of rounds; ratio = cpu time / opencl time\n\n");
      std::printf("%-16s %12s %12s %8s %10s  %s\n", "shape MxNxK", "ocl GFLOP/s", "cpu GFLOP/s", "ratio",
                  "wall ratio", "opencl tiles");
      std::fflush(stdout);
    }

    std::vector<Row> rows;
    for (const GemmShape& s : opt.shapes) {
      ir::Graph g("bench_opencl_gemm");
      const TensorType a{DType::f8e4m3, {s.m, s.k}, ScaleLayout{kActivationBlock, DType::ue8m0}};
      const TensorType b{DType::f8e4m3, {s.n, s.k}, ScaleLayout{kWeightBlock, DType::ue8m0}};
      const ir::ValueId va = g.input("a", a);  // inputs in this order (not as call arguments)
      const ir::ValueId vb = g.input("b", b);
      g.output(g.gemm_fp8(va, vb, opt.out, "d"));
      const std::vector<HostTensor> inputs = {HostTensor::random(a, 1000 + s.m * 7 + s.k),
                                              HostTensor::random(b, 2000 + s.n * 7 + s.k)};
      Side o(g, ocl, inputs);
      std::optional<Side> c;
      if (!opt.ours_only) c.emplace(g, cpu, inputs);

      // Warm-up (PoCL compiles its work-group function on the first launch), then rounds.
      const auto t0 = std::chrono::steady_clock::now();
      o.run(false);
      settle();
      if (c) {
        c->run(false);
        settle();
      }
      const double warm = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - 0.2;
      const int repeats = opt.repeats > 0 ? opt.repeats : std::clamp(static_cast<int>(2.0 / std::max(warm, 1e-3)), 3, 9);
      for (int r = 0; r < repeats; ++r) {
        o.run(true);
        settle();
        if (c) {
          c->run(true);
          settle();
        }
      }
      Row row;
      row.shape = s;
      row.spec = o.exe.kernels().at(0).spec;
      row.spec = row.spec.substr(row.spec.find("tiles=") + 6);
      o.check();
      row.ocl_s = median(o.kernel_s);
      row.ocl_wall = median(o.wall_s);
      row.ocl_err = o.rel_err;
      if (c) {
        c->check();
        row.cpu_s = median(c->kernel_s);
        row.cpu_wall = median(c->wall_s);
        row.cpu_err = c->rel_err;
      }
      rows.push_back(row);
      if (!opt.json) {
        if (c)
          std::printf("%-16s %12.1f %12.1f %7.2fx %9.2fx  %s\n", s.str().c_str(), gflops(s, row.ocl_s),
                      gflops(s, row.cpu_s), row.cpu_s / row.ocl_s, row.cpu_wall / row.ocl_wall, row.spec.c_str());
        else
          std::printf("%-16s %12.1f %12s %8s %10s  %s\n", s.str().c_str(), gflops(s, row.ocl_s), "-", "-", "-",
                      row.spec.c_str());
        std::fflush(stdout);
      }
    }

    if (opt.json) {
      std::printf("{\n  \"benchmark\": \"opencl_gemm_fp8_vs_cpu\",\n  \"device\": \"%s\",\n  \"name\": \"%s\",\n",
                  opt.device.c_str(), ocl.info().name.c_str());
      std::printf("  \"out_dtype\": \"%s\",\n  \"results\": [\n", std::string(dtype_name(opt.out)).c_str());
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        std::printf("    {\"shape\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"tiles\": \"%s\", "
                    "\"opencl_seconds\": %.6e, \"opencl_gflops\": %.2f, \"opencl_rel_err\": %.3e, ",
                    r.shape.str().c_str(), static_cast<long long>(r.shape.m), static_cast<long long>(r.shape.n),
                    static_cast<long long>(r.shape.k), r.spec.c_str(), r.ocl_s, gflops(r.shape, r.ocl_s), r.ocl_err);
        if (opt.ours_only)
          std::printf("\"cpu_seconds\": null, \"cpu_gflops\": null, \"ratio\": null, \"wall_ratio\": null}");
        else
          std::printf("\"cpu_seconds\": %.6e, \"cpu_gflops\": %.2f, \"cpu_rel_err\": %.3e, \"ratio\": %.4f, "
                      "\"wall_ratio\": %.4f}",
                      r.cpu_s, gflops(r.shape, r.cpu_s), r.cpu_err, r.cpu_s / r.ocl_s, r.cpu_wall / r.ocl_wall);
        std::printf("%s\n", i + 1 < rows.size() ? "," : "");
      }
      std::printf("  ]\n}\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_opencl_gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}
