// Loading the OpenCL ICD loader at run time (opencl_api.hpp).
#include "backends/opencl/opencl_api.hpp"

#if ANYCHIP_HAVE_OPENCL_HEADERS

#include <dlfcn.h>

namespace anychip::backends::opencl {
namespace {

struct Loaded {
  Api api;
  std::string why;  // empty when loaded
};

Loaded load() {
  Loaded l;
  // The versioned name is what the ICD loader package installs; the bare name only comes
  // with the development package. The handle is never closed: drivers do not expect it.
  void* lib = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* err = dlerror();
    l.why = std::string("no OpenCL ICD loader (libOpenCL.so.1: ") + (err ? err : "not found") + ")";
    return l;
  }
#define ANYCHIP_CL_RESOLVE(name)                                                          \
  l.api.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, #name));                    \
  if (!l.api.name) {                                                                      \
    l.why = "the OpenCL ICD loader (libOpenCL.so.1) lacks " #name " (OpenCL 1.2 needed)"; \
    return l;                                                                             \
  }
  ANYCHIP_CL_FUNCTIONS(ANYCHIP_CL_RESOLVE)
#undef ANYCHIP_CL_RESOLVE
  return l;
}

}  // namespace

const Api* api(std::string* why) {
  static const Loaded loaded = load();
  if (!loaded.why.empty()) {
    if (why) *why = loaded.why;
    return nullptr;
  }
  return &loaded.api;
}

std::string error_name(cl_int code) {
  const char* name = nullptr;
  switch (code) {
#define ANYCHIP_CL_ERROR(e) \
  case e: name = #e; break;
    ANYCHIP_CL_ERROR(CL_SUCCESS)
    ANYCHIP_CL_ERROR(CL_DEVICE_NOT_FOUND)
    ANYCHIP_CL_ERROR(CL_DEVICE_NOT_AVAILABLE)
    ANYCHIP_CL_ERROR(CL_COMPILER_NOT_AVAILABLE)
    ANYCHIP_CL_ERROR(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    ANYCHIP_CL_ERROR(CL_OUT_OF_RESOURCES)
    ANYCHIP_CL_ERROR(CL_OUT_OF_HOST_MEMORY)
    ANYCHIP_CL_ERROR(CL_PROFILING_INFO_NOT_AVAILABLE)
    ANYCHIP_CL_ERROR(CL_BUILD_PROGRAM_FAILURE)
    ANYCHIP_CL_ERROR(CL_INVALID_VALUE)
    ANYCHIP_CL_ERROR(CL_INVALID_DEVICE)
    ANYCHIP_CL_ERROR(CL_INVALID_CONTEXT)
    ANYCHIP_CL_ERROR(CL_INVALID_COMMAND_QUEUE)
    ANYCHIP_CL_ERROR(CL_INVALID_MEM_OBJECT)
    ANYCHIP_CL_ERROR(CL_INVALID_BINARY)
    ANYCHIP_CL_ERROR(CL_INVALID_BUILD_OPTIONS)
    ANYCHIP_CL_ERROR(CL_INVALID_PROGRAM)
    ANYCHIP_CL_ERROR(CL_INVALID_PROGRAM_EXECUTABLE)
    ANYCHIP_CL_ERROR(CL_INVALID_KERNEL_NAME)
    ANYCHIP_CL_ERROR(CL_INVALID_KERNEL)
    ANYCHIP_CL_ERROR(CL_INVALID_ARG_INDEX)
    ANYCHIP_CL_ERROR(CL_INVALID_ARG_VALUE)
    ANYCHIP_CL_ERROR(CL_INVALID_ARG_SIZE)
    ANYCHIP_CL_ERROR(CL_INVALID_KERNEL_ARGS)
    ANYCHIP_CL_ERROR(CL_INVALID_WORK_DIMENSION)
    ANYCHIP_CL_ERROR(CL_INVALID_WORK_GROUP_SIZE)
    ANYCHIP_CL_ERROR(CL_INVALID_WORK_ITEM_SIZE)
    ANYCHIP_CL_ERROR(CL_INVALID_GLOBAL_OFFSET)
    ANYCHIP_CL_ERROR(CL_INVALID_EVENT)
    ANYCHIP_CL_ERROR(CL_INVALID_OPERATION)
    ANYCHIP_CL_ERROR(CL_INVALID_BUFFER_SIZE)
    ANYCHIP_CL_ERROR(CL_INVALID_GLOBAL_WORK_SIZE)
    ANYCHIP_CL_ERROR(CL_INVALID_PLATFORM)
#undef ANYCHIP_CL_ERROR
    case -1001: name = "CL_PLATFORM_NOT_FOUND_KHR"; break;
    default: break;
  }
  return std::string(name ? name : "OpenCL error") + " (" + std::to_string(code) + ")";
}

}  // namespace anychip::backends::opencl

#endif  // ANYCHIP_HAVE_OPENCL_HEADERS
