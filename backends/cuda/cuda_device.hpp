// The two kinds of CUDA device (cuda_device.cpp): a GPU ("cuda:0", through the driver API)
// and a compile-only target ("cuda:sm_90a": NVRTC alone, no driver needed).
#pragma once

#include "backends/cuda/cuda_api.hpp"

#if ANYCHIP_HAVE_CUDA_HEADERS

#include <memory>
#include <string>

#include "backends/backend.hpp"
#include "kernels/cuda/cuda_kernels.hpp"

namespace anychip::backends::cuda {

// What enumeration learnt about one GPU.
struct GpuEntry {
  CUdevice device = 0;
  DeviceInfo info;
  kernels::cuda::Target target;
};

// Opens the GPU (retains its primary context). Throws Unavailable when the driver refuses.
std::unique_ptr<Device> open_gpu(const Driver& cu, const Nvrtc& nvrtc, const GpuEntry& entry);

// A device that renders, compiles and emits kernels for `target` and runs nothing: memory,
// queues, events and kernel loading throw Unavailable ("<id> is compile-only: <why>").
std::unique_ptr<Device> open_compile_only(const Nvrtc& nvrtc, DeviceInfo info, kernels::cuda::Target target,
                                          std::string why);

}  // namespace anychip::backends::cuda

#endif  // ANYCHIP_HAVE_CUDA_HEADERS
