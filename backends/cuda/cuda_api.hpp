// The CUDA driver API and NVRTC entry points anychip uses, resolved at run time with dlopen
// so that one binary runs on machines without a GPU driver or a toolkit. Types and constants
// come from <cuda.h> and <nvrtc.h>; this header exists only where they do
// (ANYCHIP_HAVE_CUDA_HEADERS).
#pragma once

#if ANYCHIP_HAVE_CUDA_HEADERS

#include <cuda.h>
#include <nvrtc.h>

#include <string>
#include <vector>

namespace anychip::backends::cuda {

// X(name) for every driver entry point used. cuda.h maps several names onto versioned
// symbols (cuMemAlloc -> cuMemAlloc_v2); the members and the looked-up symbols follow the
// same mapping, so each pointer has the ABI its declaration in cuda.h describes.
#define ANYCHIP_CU_FUNCTIONS(X)                                                                      \
  X(cuInit) X(cuDriverGetVersion) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGetCount)          \
  X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetAttribute) X(cuDeviceTotalMem)                      \
  X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuCtxPushCurrent) X(cuCtxPopCurrent)    \
  X(cuMemAlloc) X(cuMemFree) X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuStreamCreate)             \
  X(cuStreamDestroy) X(cuStreamSynchronize) X(cuEventCreate) X(cuEventRecord) X(cuEventSynchronize)  \
  X(cuEventElapsedTime) X(cuEventDestroy) X(cuModuleLoadData) X(cuModuleUnload)                      \
  X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuLaunchKernel) X(cuTensorMapEncodeTiled)

#define ANYCHIP_NVRTC_FUNCTIONS(X)                                                                   \
  X(nvrtcVersion) X(nvrtcGetNumSupportedArchs) X(nvrtcGetSupportedArchs) X(nvrtcGetErrorString)      \
  X(nvrtcCreateProgram) X(nvrtcDestroyProgram) X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize)      \
  X(nvrtcGetProgramLog) X(nvrtcGetPTXSize) X(nvrtcGetPTX) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN)

struct Driver {
#define ANYCHIP_CU_POINTER(name) decltype(&::name) name = nullptr;
  ANYCHIP_CU_FUNCTIONS(ANYCHIP_CU_POINTER)
#undef ANYCHIP_CU_POINTER
  int version = 0;  // cuDriverGetVersion: 13000 for CUDA 13.0
};

struct Nvrtc {
#define ANYCHIP_NVRTC_POINTER(name) decltype(&::name) name = nullptr;
  ANYCHIP_NVRTC_FUNCTIONS(ANYCHIP_NVRTC_POINTER)
#undef ANYCHIP_NVRTC_POINTER
  int major = 0, minor = 0;     // nvrtcVersion
  std::string library;          // the file loaded
  std::vector<int> archs;       // what --gpu-architecture accepts: 75, 80, ..., 90, ...
  std::string include_dir;      // the toolkit headers (cuda_fp8.h, ...); "" when not found
  std::string include_dir_why;  // where it looked, when not found
};

// The driver, loaded (libcuda.so.1) on first use and kept for the life of the process;
// nullptr when there is none, with the reason in `why`
// ("no CUDA driver (libcuda.so.1: cannot open shared object file: No such file or directory)").
// cuInit is not called here.
const Driver* driver(std::string* why);

// NVRTC, loaded on first use: $ANYCHIP_NVRTC_LIBRARY, then libnvrtc.so.13, .so.12, .so from
// the loader's search path, then the same names in $CUDA_HOME/lib64 and the toolkit's
// library directory found at build time. nullptr when none loads, with every reason in `why`.
// Finds the toolkit's include directory too ($ANYCHIP_CUDA_INCLUDE_DIR, beside the loaded
// library, $CUDA_HOME, $CUDA_PATH, /usr/local/cuda).
const Nvrtc* nvrtc(std::string* why);

// "CUDA_ERROR_OUT_OF_MEMORY: out of memory".
std::string error_text(const Driver& cu, CUresult result);

}  // namespace anychip::backends::cuda

#endif  // ANYCHIP_HAVE_CUDA_HEADERS
