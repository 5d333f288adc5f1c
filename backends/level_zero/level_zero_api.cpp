// Loading the Level Zero loader at run time (level_zero_api.hpp).
#include "backends/level_zero/level_zero_api.hpp"

#if ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

#include <dlfcn.h>

#include <cstdio>

namespace anychip::backends::level_zero {
namespace {

struct Loaded {
  Api api;
  std::string why;  // empty when loaded
};

Loaded load() {
  Loaded l;
  // The versioned name is what the loader package (libze1) installs; the bare name only
  // comes with the development package. The handle is never closed: drivers do not
  // expect to be unloaded.
  void* lib = dlopen("libze_loader.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* err = dlerror();
    l.why = std::string("libze_loader.so.1 not found (") + (err ? err : "dlopen failed") + ")";
    return l;
  }
#define ANYCHIP_ZE_RESOLVE(name)                                                                \
  l.api.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, #name));                          \
  if (!l.api.name) {                                                                            \
    l.why = "the Level Zero loader (libze_loader.so.1) lacks " #name " (Level Zero 1.0 needed)"; \
    return l;                                                                                   \
  }
  ANYCHIP_ZE_FUNCTIONS(ANYCHIP_ZE_RESOLVE)
#undef ANYCHIP_ZE_RESOLVE
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

std::string result_name(ze_result_t result) {
  const char* name = nullptr;
  switch (result) {
#define ANYCHIP_ZE_RESULT(r) \
  case r: name = #r; break;
    ANYCHIP_ZE_RESULT(ZE_RESULT_SUCCESS)
    ANYCHIP_ZE_RESULT(ZE_RESULT_NOT_READY)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_DEVICE_LOST)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_MODULE_BUILD_FAILURE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_MODULE_LINK_FAILURE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_DEVICE_REQUIRES_RESET)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_NOT_AVAILABLE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_UNINITIALIZED)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_UNSUPPORTED_VERSION)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_UNSUPPORTED_FEATURE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_ARGUMENT)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_NULL_HANDLE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_HANDLE_OBJECT_IN_USE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_NULL_POINTER)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_SIZE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_UNSUPPORTED_SIZE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_UNSUPPORTED_ALIGNMENT)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_SYNCHRONIZATION_OBJECT)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_ENUMERATION)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_UNSUPPORTED_ENUMERATION)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_UNSUPPORTED_IMAGE_FORMAT)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_NATIVE_BINARY)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_GLOBAL_NAME)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_KERNEL_NAME)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_FUNCTION_NAME)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_GROUP_SIZE_DIMENSION)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_GLOBAL_WIDTH_DIMENSION)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_KERNEL_ARGUMENT_INDEX)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_KERNEL_ARGUMENT_SIZE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_KERNEL_ATTRIBUTE_VALUE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_MODULE_UNLINKED)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_INVALID_COMMAND_LIST_TYPE)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_OVERLAPPING_REGIONS)
    ANYCHIP_ZE_RESULT(ZE_RESULT_ERROR_UNKNOWN)
#undef ANYCHIP_ZE_RESULT
    default: break;
  }
  char code[16];
  std::snprintf(code, sizeof code, "0x%x", static_cast<unsigned>(result));
  return std::string(name ? name : "Level Zero error") + " (" + code + ")";
}

}  // namespace anychip::backends::level_zero

#endif  // ANYCHIP_HAVE_LEVEL_ZERO_HEADERS
