// The CUDA backend: devices "cuda:<n>" (every GPU the driver reports) and compile-only
// targets "cuda:sm_<xx>[a]" (e.g. cuda:sm_90a, cuda:sm_89), running the CUDA C++ kernels of
// kernels/cuda compiled by NVRTC. libcuda and NVRTC are loaded at run time: without a
// driver the backend lists one unavailable device "cuda" with the reason, and the
// compile-only targets still render, compile and emit wherever NVRTC loads.
#pragma once

#include <memory>

#include "backends/backend.hpp"

namespace anychip::backends {

std::unique_ptr<Backend> make_cuda_backend();

}  // namespace anychip::backends
