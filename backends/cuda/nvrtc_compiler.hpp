// Compiling rendered CUDA C++ with NVRTC, for one GPU architecture, to PTX and a cubin.
#pragma once

#include "backends/cuda/cuda_api.hpp"

#if ANYCHIP_HAVE_CUDA_HEADERS

#include <cstddef>
#include <string>
#include <vector>

namespace anychip::backends::cuda {

struct CompileOutput {
  std::string ptx;
  std::vector<std::byte> cubin;
  std::string log;  // NVRTC's and ptxas's messages (warnings on success)
};

// The options every kernel is compiled with: --gpu-architecture=<arch>, -default-device,
// -std=c++17, the toolkit's include directory.
std::vector<std::string> nvrtc_options(const Nvrtc& nvrtc, const std::string& arch);

// "nvrtc 13.0 sm_90a (--gpu-architecture=sm_90a -default-device -std=c++17 -I/usr/local/cuda-13.0/include)":
// what decides the binary besides the source.
std::string nvrtc_compiler_id(const Nvrtc& nvrtc, const std::string& arch);

// Compiles `source` for `arch`. Throws Error(Unavailable) when NVRTC cannot find the toolkit
// headers, Error(Internal) with NVRTC's log when the source does not compile. `what` names
// the kernel in messages. Thread-safe (one NVRTC program per call).
CompileOutput nvrtc_compile(const Nvrtc& nvrtc, const std::string& source, const std::string& arch,
                            const std::string& what);

}  // namespace anychip::backends::cuda

#endif  // ANYCHIP_HAVE_CUDA_HEADERS
