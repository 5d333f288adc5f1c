// The CUDA backend where there may be no GPU: NVRTC alone. Every kernel the conformance
// suite would launch renders and compiles for sm_90a (Hopper) and sm_89 (Ada); the PTX uses
// the tensor-core instructions it should; without a driver the device list says why and the
// compile-only targets refuse to run anything. Running the kernels on a GPU is the
// conformance suite's job (on cuda:0) and tools/gpu-check.sh's.
//
// Tests that need NVRTC skip, with the reason, where it cannot be loaded.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <tbb/parallel_for.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anychip/anychip.hpp"
#include "anychip/conformance.hpp"
#include "backends/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/lowering.hpp"

using namespace anychip;

namespace {

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }
TensorType scaled(std::int64_t r, std::int64_t c, BlockShape b, DType s, DType fp8 = DType::f8e4m3) {
  return {fp8, {r, c}, ScaleLayout{b, s}};
}

ir::Graph gemm_fp8_graph(std::int64_t m, std::int64_t n, std::int64_t k, DType scale, DType out) {
  ir::Graph g("gemm_fp8");
  g.output(g.gemm_fp8(g.input("a", scaled(m, k, kActivationBlock, scale)), g.input("b", scaled(n, k, kWeightBlock, scale)),
                      out));
  return g;
}

ir::Graph attention_graph(std::int64_t b, std::int64_t sq, std::int64_t skv, std::int64_t hq, std::int64_t hkv,
                          std::int64_t dk, std::int64_t dv, bool causal, DType d) {
  ir::Graph g("attention");
  g.output(g.attention(g.input("q", plain(d, {b, sq, hq, dk})), g.input("k", plain(d, {b, skv, hkv, dk})),
                       g.input("v", plain(d, {b, skv, hkv, dv})), causal));
  return g;
}

// The backend device of a compile-only target, or nullptr with the reason (no NVRTC).
std::unique_ptr<backends::Device> open_target(const std::string& id, std::string* why) {
  static const std::unique_ptr<backends::Backend> backend = backends::make_cuda_backend();
  try {
    return backend->open(id, {});
  } catch (const Error& e) {
    if (e.code() != ErrorCode::Unavailable) throw;
    *why = e.what();
    return nullptr;
  }
}

#define OPEN_OR_SKIP(var, id)                                \
  std::string var##_why;                                      \
  auto var = open_target(id, &var##_why);                     \
  if (!var) GTEST_SKIP() << "NVRTC unavailable: " << var##_why

// Opens a compile-only target through the public API, or skips.
#define PUBLIC_OPEN_OR_SKIP(var, id)                              \
  std::optional<Device> var;                                      \
  try {                                                           \
    var = Device::open(id);                                       \
  } catch (const Error& e) {                                      \
    if (e.code() != ErrorCode::Unavailable) throw;                \
    GTEST_SKIP() << "NVRTC unavailable: " << e.what();            \
  }

// What the conformance suite would make a device compile: every kernel of every case,
// identical sources once, and the cases the device declines with its reason.
struct Workload {
  struct Item {
    std::string case_name;
    kernels::KernelSpec spec;
    std::string source;
  };
  std::vector<Item> kernels;
  std::map<std::string, std::string> unsupported;  // case -> reason
};

Workload conformance_workload(backends::Device& dev) {
  Workload w;
  std::map<std::string, bool> seen;
  for (const conformance::Case& c : conformance::cases()) {
    for (const ir::Node& node : c.graph.nodes()) {
      std::optional<kernels::Problem> problem = kernels::lower(c.graph, node);
      if (!problem) continue;
      kernels::KernelSpec spec{*problem, dev.choose_tiles(*problem)};
      if (backends::Support s = dev.supports(spec); !s.ok) {
        w.unsupported[c.name] = s.reason;
        continue;
      }
      std::string source = dev.render(spec);
      if (seen.emplace(source, true).second) w.kernels.push_back({c.name, spec, std::move(source)});
    }
  }
  return w;
}

// Compiles the whole workload in parallel (NVRTC is thread-safe per program) and checks each
// result is a cubin; returns the failures.
std::vector<std::string> compile_all(backends::Device& dev, const Workload& w) {
  std::vector<std::string> failures(w.kernels.size());
  tbb::parallel_for(std::size_t{0}, w.kernels.size(), [&](std::size_t i) {
    const Workload::Item& item = w.kernels[i];
    try {
      const std::vector<std::byte> cubin = dev.compile(item.spec, item.source);
      if (cubin.size() < 4 || std::memcmp(cubin.data(), "\x7f" "ELF", 4) != 0)
        failures[i] = item.case_name + ": the compiled binary is not a cubin";
    } catch (const Error& e) {
      failures[i] = item.case_name + ": " + e.what();
    }
  });
  std::erase_if(failures, [](const std::string& f) { return f.empty(); });
  return failures;
}

void expect_conformance_kernels_compile(const std::string& id) {
  OPEN_OR_SKIP(dev, id);
  const Workload w = conformance_workload(*dev);
  // The cases a CUDA device declines: attention in f32 (tensor cores take bf16/f16), and
  // the MLA / MoE ops, which have no CUDA kernels yet (a case that uses one says so).
  for (const auto& [name, reason] : w.unsupported) {
    if (reason.find("the CUDA backend has no ") != std::string::npos) continue;
    EXPECT_EQ(name.rfind("attention/", 0), 0u) << name << " is unsupported on " << id << ": " << reason;
    EXPECT_NE(reason.find("f32"), std::string::npos) << name << ": " << reason;
  }
  ASSERT_GT(w.kernels.size(), 30u);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::string> failures = compile_all(*dev, w);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const std::string& f : failures) ADD_FAILURE() << f;
  std::printf("%s: %zu distinct kernels compiled in %.1f s; %zu cases unsupported\n", id.c_str(), w.kernels.size(),
              seconds, w.unsupported.size());
}

bool has_cuda_driver() {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib) dlclose(lib);
  return lib != nullptr;
}

}  // namespace

TEST(CudaNvrtc, CompilesEveryConformanceKernelForSm90a) { expect_conformance_kernels_compile("cuda:sm_90a"); }

TEST(CudaNvrtc, CompilesEveryConformanceKernelForSm89) { expect_conformance_kernels_compile("cuda:sm_89"); }

TEST(CudaNvrtc, Sm90aFp8GemmIsWgmmaOnE4m3FedByTheTensorMemoryAccelerator) {
  PUBLIC_OPEN_OR_SKIP(dev, "cuda:sm_90a");
  const std::string ptx = emit(gemm_fp8_graph(4096, 7168, 16384, DType::ue8m0, DType::bf16), *dev, "ptx");
  EXPECT_NE(ptx.find(".target sm_90a"), std::string::npos);
  EXPECT_NE(ptx.find("wgmma.mma_async.sync.aligned.m64n"), std::string::npos);
  EXPECT_NE(ptx.find(".f32.e4m3.e4m3"), std::string::npos);
  EXPECT_NE(ptx.find("wgmma.fence.sync.aligned"), std::string::npos);
  EXPECT_NE(ptx.find("wgmma.commit_group.sync.aligned"), std::string::npos);
  EXPECT_NE(ptx.find("wgmma.wait_group.sync.aligned"), std::string::npos);
  EXPECT_NE(ptx.find("cp.async.bulk.tensor.2d"), std::string::npos);
  EXPECT_NE(ptx.find("mbarrier.try_wait.parity"), std::string::npos);
  EXPECT_NE(ptx.find("setmaxnreg"), std::string::npos);
}

TEST(CudaNvrtc, Sm90aFp8GemmTakesE5m2WeightsToo) {
  PUBLIC_OPEN_OR_SKIP(dev, "cuda:sm_90a");
  ir::Graph g("e5m2");
  g.output(g.gemm_fp8(g.input("a", scaled(33, 256, kActivationBlock, DType::ue8m0)),
                      g.input("b", scaled(65, 256, kWeightBlock, DType::ue8m0, DType::f8e5m2)), DType::bf16));
  EXPECT_NE(emit(g, *dev, "ptx").find(".f32.e4m3.e5m2"), std::string::npos);
}

TEST(CudaNvrtc, Sm89Fp8GemmIsMmaSyncOnE4m3) {
  PUBLIC_OPEN_OR_SKIP(dev, "cuda:sm_89");
  const std::string ptx = emit(gemm_fp8_graph(129, 257, 256, DType::f32, DType::bf16), *dev, "ptx");
  EXPECT_NE(ptx.find("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32"), std::string::npos);
  EXPECT_EQ(ptx.find("wgmma"), std::string::npos);
}

// The FP8 tensor cores sum with ~14 bits: an f32 output takes FP8 -> f16 (exact) on the f16
// tensor cores, with fp32-precision sums, on every architecture.
TEST(CudaNvrtc, Fp8GemmWithF32OutputMultipliesExactlyInF16) {
  for (const char* id : {"cuda:sm_90a", "cuda:sm_89"}) {
    PUBLIC_OPEN_OR_SKIP(dev, id);
    const std::string ptx = emit(gemm_fp8_graph(128, 256, 512, DType::ue8m0, DType::f32), *dev, "ptx");
    EXPECT_NE(ptx.find("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"), std::string::npos) << id;
    EXPECT_NE(ptx.find("cvt.rn.f16x2.e4m3x2"), std::string::npos) << id;
    EXPECT_EQ(ptx.find("wgmma"), std::string::npos) << id;
    EXPECT_EQ(ptx.find(".e4m3.e4m3.f32"), std::string::npos) << id;
  }
}

TEST(CudaNvrtc, AttentionIsTensorCoreMmaOnBf16AndF16) {
  PUBLIC_OPEN_OR_SKIP(dev, "cuda:sm_90a");
  const std::string bf16 = emit(attention_graph(1, 128, 128, 8, 2, 128, 128, true, DType::bf16), *dev, "ptx");
  EXPECT_NE(bf16.find("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), std::string::npos);
  EXPECT_NE(bf16.find("ldmatrix.sync.aligned.m8n8.x2.trans"), std::string::npos);
  const std::string f16 = emit(attention_graph(1, 45, 30, 8, 2, 32, 48, true, DType::f16), *dev, "ptx");
  EXPECT_NE(f16.find("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"), std::string::npos);
}

TEST(CudaNvrtc, DecodeAgainstALongKvSplitsTheKeysAndCombines) {
  PUBLIC_OPEN_OR_SKIP(dev, "cuda:sm_90a");
  // MLA decode: one KV head, Dk 576, Dv 512, one query position.
  const std::string src = emit(attention_graph(1, 1, 4096, 16, 1, 576, 512, false, DType::bf16), *dev);
  EXPECT_NE(src.find("anychip_attention_combine"), std::string::npos);
  const std::string ptx = emit(attention_graph(1, 1, 4096, 16, 1, 576, 512, false, DType::bf16), *dev, "ptx");
  EXPECT_NE(ptx.find(".entry anychip_attention_combine"), std::string::npos);
  // Prefill fills the GPU without splitting.
  const std::string prefill = emit(attention_graph(4, 2048, 2048, 32, 8, 128, 128, true, DType::bf16), *dev);
  EXPECT_EQ(prefill.find("anychip_attention_combine"), std::string::npos);
}

TEST(CudaNvrtc, EmitsSourcePtxAndCubinAndRefusesOtherFormats) {
  PUBLIC_OPEN_OR_SKIP(dev, "cuda:sm_90a");
  const ir::Graph g = gemm_fp8_graph(128, 256, 512, DType::f32, DType::bf16);
  EXPECT_NE(emit(g, *dev, "source").find("anychip::sm90::gemm_fp8<"), std::string::npos);
  EXPECT_NE(emit(g, *dev, "ptx").find(".visible .entry anychip_gemm_fp8"), std::string::npos);
  EXPECT_EQ(emit(g, *dev, "cubin").rfind("\x7f" "ELF", 0), 0u);
  try {
    emit(g, *dev, "spirv");
    FAIL() << "spirv was emitted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported);
    EXPECT_NE(std::string(e.what()).find("source, ptx, cubin"), std::string::npos) << e.what();
  }
}

TEST(CudaNvrtc, CompilerIdNamesNvrtcAndTheArchitecture) {
  OPEN_OR_SKIP(sm90, "cuda:sm_90a");
  OPEN_OR_SKIP(sm89, "cuda:sm_89");
  EXPECT_EQ(sm90->compiler_id().rfind("nvrtc ", 0), 0u) << sm90->compiler_id();
  EXPECT_NE(sm90->compiler_id().find("sm_90a"), std::string::npos);
  EXPECT_NE(sm89->compiler_id().find("sm_89"), std::string::npos);
  EXPECT_NE(sm90->compiler_id(), sm89->compiler_id());
}

TEST(CudaDevices, ListCudaAsUnavailableWithoutADriver) {
  if (has_cuda_driver()) GTEST_SKIP() << "this machine has a CUDA driver";
  // Built without the toolkit's headers the backend cannot even look for a driver.
  const char* why = "no CUDA driver (libcuda.so.1: ";
  for (const DeviceInfo& d : list_devices())
    if (d.backend == "cuda" && d.unavailable_reason.find("built without") != std::string::npos) why = "built without";
  bool found = false;
  for (const DeviceInfo& d : list_devices()) {
    if (d.backend != "cuda") continue;
    found = true;
    EXPECT_EQ(d.id, "cuda");
    EXPECT_FALSE(d.available);
    EXPECT_NE(d.unavailable_reason.find(why), std::string::npos) << d.unavailable_reason;
  }
  EXPECT_TRUE(found);
  try {
    Device::open("cuda:0");
    FAIL() << "cuda:0 opened without a driver";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unavailable);
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

TEST(CudaDevices, CompileOnlyTargetRefusesToAllocateOrRun) {
  PUBLIC_OPEN_OR_SKIP(dev, "cuda:sm_90a");
  EXPECT_EQ(dev->info().id, "cuda:sm_90a");
  EXPECT_EQ(dev->info().arch, "sm_90a");
  EXPECT_FALSE(dev->info().available);
  EXPECT_NE(dev->info().unavailable_reason.find("compile-only"), std::string::npos);
  auto expect_refused = [&](const char* what, auto&& call) {
    try {
      call();
      ADD_FAILURE() << what << " succeeded on a compile-only target";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Unavailable) << what;
      EXPECT_NE(std::string(e.what()).find("cuda:sm_90a is compile-only"), std::string::npos) << e.what();
      if (!has_cuda_driver()) {
        EXPECT_NE(std::string(e.what()).find("no CUDA driver"), std::string::npos) << e.what();
      }
    }
  };
  expect_refused("allocate", [&] { dev->allocate(1024); });
  expect_refused("create_stream", [&] { dev->create_stream(); });
  CompileOptions no_cache;
  no_cache.use_cache = false;
  expect_refused("compile", [&] { compile(gemm_fp8_graph(64, 128, 128, DType::ue8m0, DType::bf16), *dev, no_cache); });
}

TEST(CudaDevices, RejectsWhatIsNotAnArchitectureOrADevice) {
  for (const char* id : {"cuda:sm_9x", "cuda:sm_", "cuda:gpu", "cuda:99"}) {
    try {
      Device::open(id);
      ADD_FAILURE() << id << " opened";
    } catch (const Error& e) {
      // Without a driver cuda:99 is Unavailable (no GPUs at all); the rest are bad names.
      EXPECT_TRUE(e.code() == ErrorCode::InvalidArgument || e.code() == ErrorCode::Unavailable) << id << ": " << e.what();
    }
  }
}

TEST(CudaKernels, SupportsSaysWhyNot) {
  namespace kc = kernels::cuda;
  const kc::Target hopper = kc::target_for_arch("sm_90a");
  const kc::Target ampere = kc::target_for_arch("sm_80");

  kernels::AttentionProblem att{1, 9, 9, 2, 1, 24, 24, false, 0.2, DType::f32};
  kernels::KernelSpec att_spec{att, kc::choose_tiles(att, hopper)};
  EXPECT_NE(kc::check(att_spec, hopper).find("f32"), std::string::npos);

  kernels::GemmFp8Problem gemm{64, 128, 100};
  kernels::KernelSpec k100{gemm, kc::choose_tiles(gemm, hopper)};
  EXPECT_NE(kc::check(k100, hopper).find("K=100 is not a multiple of 128"), std::string::npos);

  gemm.k = 256;
  kernels::KernelSpec on_ampere{gemm, kc::choose_tiles(gemm, ampere)};
  EXPECT_NE(kc::check(on_ampere, ampere).find("sm_89"), std::string::npos);

  kernels::KernelSpec too_big{gemm, {128, 128, 128, 8}};
  EXPECT_NE(kc::check(too_big, kc::target_for_arch("sm_89")).find("shared memory"), std::string::npos);
}

// Every DeepSeek-V3 GEMM shape the benchmark runs gets tiles that fit, on both targets.
TEST(CudaKernels, DeepSeekGemmShapesGetTilesThatFit) {
  namespace kc = kernels::cuda;
  struct NK { std::int64_t n, k; };
  for (const char* arch : {"sm_90a", "sm_89"}) {
    const kc::Target target = kc::target_for_arch(arch);
    for (std::int64_t m : {1, 64, 128, 4096})
      for (NK s : {NK{2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384}, {4096, 7168}, {7168, 2048}}) {
        kernels::GemmFp8Problem p{m, s.n, s.k};
        const kernels::KernelSpec spec{p, kc::choose_tiles(p, target)};
        EXPECT_EQ(kc::check(spec, target), "") << arch << " " << kernels::describe(spec);
        const kc::LaunchPlan plan = kc::launch_plan(spec, target);
        ASSERT_EQ(plan.steps.size(), 1u);
        EXPECT_LE(plan.steps[0].shared_bytes, target.shared_memory_per_block);
      }
  }
}

TEST(CudaKernels, ArchitectureOfAComputeCapability) {
  EXPECT_EQ(kernels::cuda::arch_for(9, 0), "sm_90a");
  EXPECT_EQ(kernels::cuda::arch_for(8, 9), "sm_89");
  EXPECT_EQ(kernels::cuda::arch_for(10, 0), "sm_100");
  EXPECT_TRUE(kernels::cuda::target_for_arch("sm_90a").wgmma());
  EXPECT_FALSE(kernels::cuda::target_for_arch("sm_90").wgmma());
  EXPECT_FALSE(kernels::cuda::target_for_arch("sm_89").wgmma());
}
