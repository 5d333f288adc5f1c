// The CUDA backend: finding GPUs through the driver, and opening a GPU or a compile-only
// target (cuda_backend.hpp).
#include "backends/cuda/cuda_backend.hpp"

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "backends/cuda/cuda_device.hpp"

namespace anychip::backends {
namespace {

DeviceInfo unavailable(std::string reason) {
  DeviceInfo info;
  info.id = "cuda";
  info.backend = "cuda";
  info.name = "CUDA";
  info.available = false;
  info.unavailable_reason = std::move(reason);
  return info;
}

[[maybe_unused]] void set_dtypes(DeviceInfo& info) {
  info.dtypes = {DType::f32, DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2};
  info.scale_dtypes = {DType::ue8m0, DType::f32};
}

#if ANYCHIP_HAVE_CUDA_HEADERS

namespace cu = backends::cuda;
namespace kc = kernels::cuda;

// The oldest GPUs the kernels run on: cp.async and bf16 mma.sync are sm_80.
constexpr int kMinComputeCapability = 80;

struct Enumeration {
  std::vector<cu::GpuEntry> gpus;
  std::string why_none;  // set when there are no GPUs
};

std::string archs_text(const cu::Nvrtc& n) {
  if (n.archs.empty()) return "none reported";
  return "sm_" + std::to_string(n.archs.front()) + " to sm_" + std::to_string(n.archs.back());
}

bool nvrtc_builds(const cu::Nvrtc& n, int compute_capability) {
  return n.archs.empty() || std::find(n.archs.begin(), n.archs.end(), compute_capability) != n.archs.end();
}

// Why NVRTC cannot build kernels for this compute capability; "" when it can.
std::string nvrtc_problem(const cu::Nvrtc* n, const std::string& nvrtc_why, int compute_capability,
                          const std::string& arch) {
  if (!n) return nvrtc_why + ": kernels cannot be compiled";
  if (!nvrtc_builds(*n, compute_capability))
    return "NVRTC " + std::to_string(n->major) + "." + std::to_string(n->minor) + " cannot compile for " + arch +
           " (it compiles for " + archs_text(*n) + ")";
  if (n->include_dir.empty()) return "NVRTC cannot find the CUDA Toolkit headers: " + n->include_dir_why;
  return {};
}

Enumeration enumerate_all() {
  Enumeration en;
  std::string why;
  const cu::Driver* drv = cu::driver(&why);
  if (!drv) {
    en.why_none = why;
    return en;
  }
  if (const CUresult r = drv->cuInit(0); r != CUDA_SUCCESS) {
    en.why_none = (r == CUDA_ERROR_NO_DEVICE ? "no CUDA devices (cuInit: " : "the CUDA driver cannot start (cuInit: ") +
                  cu::error_text(*drv, r) + ")";
    return en;
  }
  int count = 0;
  if (const CUresult r = drv->cuDeviceGetCount(&count); r != CUDA_SUCCESS || count == 0) {
    en.why_none = r != CUDA_SUCCESS ? "no CUDA devices (cuDeviceGetCount: " + cu::error_text(*drv, r) + ")"
                                    : "no CUDA devices (the driver reports none)";
    return en;
  }
  std::string nvrtc_why;
  const cu::Nvrtc* nv = cu::nvrtc(&nvrtc_why);
  for (int i = 0; i < count; ++i) {
    cu::GpuEntry e;
    DeviceInfo& info = e.info;
    info.id = "cuda:" + std::to_string(i);
    info.backend = "cuda";
    set_dtypes(info);
    if (const CUresult r = drv->cuDeviceGet(&e.device, i); r != CUDA_SUCCESS) {
      info.name = "CUDA device " + std::to_string(i);
      info.unavailable_reason = "cuDeviceGet: " + cu::error_text(*drv, r);
      en.gpus.push_back(std::move(e));
      continue;
    }
    char name[256] = {};
    drv->cuDeviceGetName(name, sizeof name - 1, e.device);
    info.name = name;
    auto attribute = [&](CUdevice_attribute a) {
      int v = 0;
      drv->cuDeviceGetAttribute(&v, a, e.device);
      return v;
    };
    const int major = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    const int minor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    e.target.arch = kc::arch_for(major, minor);
    e.target.compute_capability = major * 10 + minor;
    e.target.multiprocessors = std::max(1, attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT));
    e.target.shared_memory_per_block =
        static_cast<std::size_t>(attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN));
    std::size_t memory = 0;
    drv->cuDeviceTotalMem(&memory, e.device);
    info.memory_bytes = memory;
    info.compute_units = e.target.multiprocessors;
    info.arch = e.target.arch;
    if (e.target.compute_capability < kMinComputeCapability)
      info.unavailable_reason = "compute capability " + std::to_string(major) + "." + std::to_string(minor) +
                                ": anychip's CUDA kernels need 8.0 (sm_80) or newer";
    else
      info.unavailable_reason = nvrtc_problem(nv, nvrtc_why, e.target.compute_capability, e.target.arch);
    info.available = info.unavailable_reason.empty();
    en.gpus.push_back(std::move(e));
  }
  return en;
}

class CudaBackend final : public Backend {
 public:
  std::string_view name() const override { return "cuda"; }

  std::vector<DeviceInfo> enumerate() override {
    const Enumeration& en = enumeration();
    if (en.gpus.empty()) return {unavailable(en.why_none)};
    std::vector<DeviceInfo> out;
    for (const cu::GpuEntry& e : en.gpus) out.push_back(e.info);
    return out;
  }

  std::unique_ptr<Device> open(std::string_view id, const DeviceOptions&) override {
    std::string_view rest = id == "cuda" ? std::string_view("0") : id.substr(std::min(id.size(), sizeof("cuda:") - 1));
    if (id != "cuda" && id.substr(0, 5) != "cuda:")
      throw Error(ErrorCode::InvalidArgument, "cuda: no device '" + std::string(id) + "'");
    if (rest.starts_with("sm_")) return open_target(id, rest);
    const Enumeration& en = enumeration();
    if (en.gpus.empty())
      throw Error(ErrorCode::Unavailable, "device " + std::string(id) + " is unavailable: " + en.why_none +
                                              " (compile-only targets such as cuda:sm_90a need only NVRTC)");
    std::size_t index = en.gpus.size();
    if (!rest.empty() && std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        rest.size() < 6)
      index = static_cast<std::size_t>(std::stoul(std::string(rest)));
    if (index >= en.gpus.size())
      throw Error(ErrorCode::InvalidArgument,
                  "cuda: no device '" + std::string(id) + "' (this machine has cuda:0" +
                      (en.gpus.size() > 1 ? " to cuda:" + std::to_string(en.gpus.size() - 1) : "") +
                      "; compile-only targets are cuda:sm_<xx>, e.g. cuda:sm_90a)");
    const cu::GpuEntry& e = en.gpus[index];
    if (!e.info.available)
      throw Error(ErrorCode::Unavailable, "device " + e.info.id + " is unavailable: " + e.info.unavailable_reason);
    return cu::open_gpu(*cu::driver(nullptr), *cu::nvrtc(nullptr), e);
  }

 private:
  // "cuda:sm_90a": NVRTC and nothing else.
  std::unique_ptr<Device> open_target(std::string_view id, std::string_view arch) {
    kc::Target target = kc::target_for_arch(arch);
    std::string nvrtc_why;
    const cu::Nvrtc* nv = cu::nvrtc(&nvrtc_why);
    if (!nv) throw Error(ErrorCode::Unavailable, "device " + std::string(id) + " is unavailable: " + nvrtc_why);
    if (!nvrtc_builds(*nv, target.compute_capability))
      throw Error(ErrorCode::InvalidArgument, "device " + std::string(id) + ": " +
                                                  nvrtc_problem(nv, nvrtc_why, target.compute_capability, target.arch));
    std::string driver_why;
    const bool has_driver = cu::driver(&driver_why) != nullptr;
    const std::string why = has_driver ? "it names an architecture, not a GPU (open cuda:<n> to run kernels)"
                                       : "no CUDA driver";
    DeviceInfo info;
    info.id = std::string(id);
    info.backend = "cuda";
    info.name = "NVIDIA " + target.arch + " (compile-only target)";
    info.arch = target.arch;
    info.compute_units = target.multiprocessors;
    info.available = false;
    info.unavailable_reason = "compile-only: " + why;
    set_dtypes(info);
    return cu::open_compile_only(*nv, std::move(info), std::move(target), why);
  }

  // GPUs do not come and go while a process runs: found once.
  const Enumeration& enumeration() {
    std::call_once(once_, [this] { enumeration_ = enumerate_all(); });
    return enumeration_;
  }
  std::once_flag once_;
  Enumeration enumeration_;
};

#else  // !ANYCHIP_HAVE_CUDA_HEADERS

class CudaBackend final : public Backend {
 public:
  std::string_view name() const override { return "cuda"; }
  std::vector<DeviceInfo> enumerate() override { return {unavailable(kReason)}; }
  std::unique_ptr<Device> open(std::string_view id, const DeviceOptions&) override {
    throw Error(ErrorCode::Unavailable, "device " + std::string(id) + " is unavailable: " + kReason);
  }

 private:
  static constexpr const char* kReason = "built without the CUDA Toolkit headers (cuda.h, nvrtc.h)";
};

#endif

static_assert(BackendImpl<CudaBackend>);

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace anychip::backends
