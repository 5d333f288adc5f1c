// Loading libcuda and NVRTC at run time (cuda_api.hpp).
#include "backends/cuda/cuda_api.hpp"

#if ANYCHIP_HAVE_CUDA_HEADERS

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>

namespace anychip::backends::cuda {
namespace {

// The symbol a name of cuda.h stands for, after its versioning macros ("cuMemAlloc_v2").
#define ANYCHIP_SYMBOL_OF(name) ANYCHIP_SYMBOL_TEXT(name)
#define ANYCHIP_SYMBOL_TEXT(name) #name

std::string dl_error(const char* fallback) {
  const char* e = dlerror();
  return e ? e : fallback;
}

struct LoadedDriver {
  Driver api;
  std::string why;  // empty when loaded
};

LoadedDriver load_driver() {
  LoadedDriver l;
  // The handle is never closed: drivers do not expect to be unloaded.
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    l.why = "no CUDA driver (" + dl_error("libcuda.so.1: not found") + ")";
    return l;
  }
#define ANYCHIP_CU_RESOLVE(name)                                                                     \
  l.api.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, ANYCHIP_SYMBOL_OF(name)));             \
  if (!l.api.name) {                                                                                 \
    l.why = "the CUDA driver (libcuda.so.1) lacks " ANYCHIP_SYMBOL_OF(name) ": it is older than the " \
            "CUDA " + std::to_string(CUDA_VERSION / 1000) + " headers anychip was built with";        \
    return l;                                                                                        \
  }
  ANYCHIP_CU_FUNCTIONS(ANYCHIP_CU_RESOLVE)
#undef ANYCHIP_CU_RESOLVE
  l.api.cuDriverGetVersion(&l.api.version);
  return l;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool has_fp8_header(const std::filesystem::path& dir) {
  std::error_code ec;
  return !dir.empty() && std::filesystem::exists(dir / "cuda_fp8.h", ec);
}

// The toolkit headers that go with the NVRTC in `library`.
void find_include_dir(Nvrtc& n) {
  std::vector<std::filesystem::path> candidates;
  if (std::string d = env("ANYCHIP_CUDA_INCLUDE_DIR"); !d.empty()) candidates.emplace_back(d);
  if (!n.library.empty()) {
    const std::filesystem::path lib_dir = std::filesystem::path(n.library).parent_path();
    candidates.push_back(lib_dir.parent_path() / "include");                   // <toolkit>/lib64 -> include
    candidates.push_back(lib_dir.parent_path().parent_path() / "include");     // targets/<arch>/lib
    candidates.push_back(lib_dir.parent_path().parent_path() / "cuda_runtime" / "include");  // pip wheels
  }
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (std::string d = env(var); !d.empty()) candidates.push_back(std::filesystem::path(d) / "include");
  candidates.emplace_back("/usr/local/cuda/include");
  for (const auto& c : candidates) {
    if (has_fp8_header(c)) {
      std::error_code ec;
      const auto canonical = std::filesystem::weakly_canonical(c, ec);
      n.include_dir = (ec ? c : canonical).string();
      return;
    }
  }
  n.include_dir_why = "no cuda_fp8.h in";
  for (const auto& c : candidates) {
    n.include_dir_why += ' ';
    n.include_dir_why += c.string();
  }
  n.include_dir_why += " (set ANYCHIP_CUDA_INCLUDE_DIR or CUDA_HOME)";
}

struct LoadedNvrtc {
  Nvrtc api;
  std::string why;
};

LoadedNvrtc load_nvrtc() {
  LoadedNvrtc l;
  std::vector<std::string> names;
  if (std::string e = env("ANYCHIP_NVRTC_LIBRARY"); !e.empty()) names.push_back(e);
  const char* versions[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
  for (const char* v : versions) names.emplace_back(v);
  std::vector<std::string> dirs;
  if (std::string h = env("CUDA_HOME"); !h.empty()) dirs.push_back(h + "/lib64");
#ifdef ANYCHIP_CUDA_LIBRARY_DIR
  dirs.emplace_back(ANYCHIP_CUDA_LIBRARY_DIR);
#endif
  for (const std::string& d : dirs)
    for (const char* v : versions) names.push_back(d + "/" + v);

  void* lib = nullptr;
  std::string tried;
  for (const std::string& name : names) {
    lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) break;
    if (!tried.empty()) tried += "; ";
    tried += dl_error(name.c_str());
  }
  if (!lib) {
    l.why = "no NVRTC (" + tried + ")";
    return l;
  }
#define ANYCHIP_NVRTC_RESOLVE(name)                                                        \
  l.api.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, ANYCHIP_SYMBOL_OF(name)));   \
  if (!l.api.name) {                                                                       \
    l.why = "the NVRTC library lacks " ANYCHIP_SYMBOL_OF(name) " (NVRTC 12 or newer needed)"; \
    return l;                                                                              \
  }
  ANYCHIP_NVRTC_FUNCTIONS(ANYCHIP_NVRTC_RESOLVE)
#undef ANYCHIP_NVRTC_RESOLVE
  Nvrtc& n = l.api;
  n.nvrtcVersion(&n.major, &n.minor);
  int count = 0;
  if (n.nvrtcGetNumSupportedArchs(&count) == NVRTC_SUCCESS && count > 0) {
    n.archs.resize(static_cast<std::size_t>(count));
    if (n.nvrtcGetSupportedArchs(n.archs.data()) != NVRTC_SUCCESS) n.archs.clear();
  }
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(n.nvrtcVersion), &info) != 0 && info.dli_fname) n.library = info.dli_fname;
  find_include_dir(n);
  return l;
}

}  // namespace

const Driver* driver(std::string* why) {
  static const LoadedDriver loaded = load_driver();
  if (!loaded.why.empty()) {
    if (why) *why = loaded.why;
    return nullptr;
  }
  return &loaded.api;
}

const Nvrtc* nvrtc(std::string* why) {
  static const LoadedNvrtc loaded = load_nvrtc();
  if (!loaded.why.empty()) {
    if (why) *why = loaded.why;
    return nullptr;
  }
  return &loaded.api;
}

std::string error_text(const Driver& cu, CUresult result) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (cu.cuGetErrorName(result, &name) != CUDA_SUCCESS) name = nullptr;
  if (cu.cuGetErrorString(result, &text) != CUDA_SUCCESS) text = nullptr;
  std::string s = name ? name : "CUDA error " + std::to_string(static_cast<int>(result));
  if (text) s += std::string(": ") + text;
  return s;
}

}  // namespace anychip::backends::cuda

#endif  // ANYCHIP_HAVE_CUDA_HEADERS
