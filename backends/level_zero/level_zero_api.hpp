// The Level Zero entry points anychip uses, resolved at run time from the loader
// (libze_loader.so.1) so that one binary runs on machines without Level Zero. Types and
// constants come from <level_zero/ze_api.h>; this header exists only when it does
// (ANYCHIP_HAVE_LEVEL_ZERO_HEADERS).
#pragma once

#if ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

#include <level_zero/ze_api.h>

#include <string>

namespace anychip::backends::level_zero {

// X(name) for every entry point used (Level Zero 1.0 core API).
#define ANYCHIP_ZE_FUNCTIONS(X)                                                                          \
  X(zeInit) X(zeDriverGet) X(zeDriverGetApiVersion) X(zeDriverGetProperties) X(zeDeviceGet)            \
  X(zeDeviceGetProperties) X(zeDeviceGetComputeProperties) X(zeDeviceGetMemoryProperties)               \
  X(zeDeviceGetModuleProperties) X(zeDeviceGetCommandQueueGroupProperties) X(zeContextCreate)           \
  X(zeContextDestroy) X(zeMemAllocDevice) X(zeMemAllocHost) X(zeMemFree) X(zeCommandListCreateImmediate) \
  X(zeCommandListDestroy) X(zeCommandListAppendMemoryCopy) X(zeCommandListAppendLaunchKernel)           \
  X(zeEventPoolCreate) X(zeEventPoolDestroy) X(zeEventCreate) X(zeEventDestroy)                         \
  X(zeEventHostSynchronize) X(zeEventQueryStatus) X(zeEventQueryKernelTimestamp) X(zeModuleCreate)      \
  X(zeModuleDestroy) X(zeModuleBuildLogGetString) X(zeModuleBuildLogDestroy) X(zeModuleGetNativeBinary) \
  X(zeKernelCreate) X(zeKernelDestroy) X(zeKernelSetGroupSize) X(zeKernelSetArgumentValue)              \
  X(zeKernelGetProperties)

struct Api {
#define ANYCHIP_ZE_POINTER(name) decltype(&::name) name = nullptr;
  ANYCHIP_ZE_FUNCTIONS(ANYCHIP_ZE_POINTER)
#undef ANYCHIP_ZE_POINTER
};

// The loader's entry points, loaded on first use and kept for the life of the process;
// nullptr when there is no usable loader, with the reason in `why`
// ("libze_loader.so.1 not found (libze_loader.so.1: cannot open shared object file ...)").
const Api* api(std::string* why);

// "ZE_RESULT_ERROR_UNINITIALIZED (0x78000001)".
std::string result_name(ze_result_t result);

}  // namespace anychip::backends::level_zero

#endif  // ANYCHIP_HAVE_LEVEL_ZERO_HEADERS
