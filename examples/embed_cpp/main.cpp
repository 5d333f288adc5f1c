// Embedding anychip from C++, against the installed package (anychip/anychip.hpp).
//
// Builds a block-scaled FP8 GEMM (1x128 activation and 128x128 weight scales, UE8M0) and a
// causal GQA attention in bf16 with the graph builder, runs each on every device named on
// the command line (default: cpu sim:npu-ue8m0) on fresh random inputs, checks every
// kernel against the float64 reference, and prints a table. Exits 1 when a check fails or
// anything throws.
//
//   embed_cpp [DEVICE ...]
#include <cstdio>
#include <string>
#include <vector>

#include <anychip/anychip.hpp>

namespace {

using namespace anychip;

ir::Graph gemm_graph() {
  ir::Graph g("gemm");
  const auto a = g.input("a", {DType::f8e4m3, {96, 512}, ScaleLayout{kActivationBlock, DType::ue8m0}});
  const auto b = g.input("b", {DType::f8e4m3, {384, 512}, ScaleLayout{kWeightBlock, DType::ue8m0}});
  g.output(g.gemm_fp8(a, b, DType::bf16, "y"));
  return g;
}

ir::Graph attention_graph() {
  ir::Graph g("attention");
  const auto q = g.input("q", {DType::bf16, {1, 128, 8, 64}, std::nullopt});
  const auto k = g.input("k", {DType::bf16, {1, 128, 2, 64}, std::nullopt});
  const auto v = g.input("v", {DType::bf16, {1, 128, 2, 64}, std::nullopt});
  g.output(g.attention(q, k, v, /*causal=*/true, std::nullopt, "o"));
  return g;
}

// Runs `graph` once on `device` with random inputs; prints one line per kernel. True when
// every kernel is within its tolerance.
bool run_on(const ir::Graph& graph, const Device& device, std::uint64_t seed) {
  Executable exe = compile(graph, device);
  Stream stream = device.create_stream();
  std::vector<Tensor> inputs;
  for (ir::ValueId v : graph.inputs()) inputs.push_back(device.upload(HostTensor::random(graph.value(v).type, seed++), stream));
  std::vector<Tensor> outputs = exe.allocate_outputs();
  exe.run(stream, inputs, outputs);
  const std::vector<double> seconds = exe.last_kernel_seconds(stream);
  const std::vector<KernelCheck> checks = exe.check_last_run(stream);
  bool all_ok = true;
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const double gflops = seconds[i] > 0 ? exe.kernels()[i].flops / seconds[i] * 1e-9 : 0.0;
    std::printf("%-16s %-22s %12.3e %10.1f %10.2e %9.1e  %s\n", device.info().id.c_str(), checks[i].label.c_str(),
                seconds[i], gflops, checks[i].rel_err, checks[i].tolerance, checks[i].ok ? "ok" : "FAIL");
    all_ok = all_ok && checks[i].ok;
  }
  return all_ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> devices(argv + 1, argv + argc);
  if (devices.empty()) devices = {"cpu", "sim:npu-ue8m0"};
  std::printf("anychip %s\n", std::string(anychip::version()).c_str());
  int failures = 0;
  try {
    const ir::Graph graphs[] = {gemm_graph(), attention_graph()};
    std::printf("%-16s %-22s %12s %10s %10s %9s\n", "device", "kernel", "seconds", "GFLOP/s", "rel_err", "tolerance");
    for (const std::string& id : devices) {
      try {
        Device device = Device::open(id);
        for (const ir::Graph& g : graphs) failures += run_on(g, device, 1000) ? 0 : 1;
      } catch (const Error& e) {
        std::fprintf(stderr, "embed_cpp: %s: %s: %s\n", id.c_str(), std::string(error_code_name(e.code())).c_str(),
                     e.what());
        ++failures;
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "embed_cpp: %s: %s\n", std::string(error_code_name(e.code())).c_str(), e.what());
    return 1;
  }
  if (failures) std::fprintf(stderr, "embed_cpp: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
