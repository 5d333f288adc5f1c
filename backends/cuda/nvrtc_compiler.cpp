// NVRTC compilation (nvrtc_compiler.hpp).
#include "backends/cuda/nvrtc_compiler.hpp"

#if ANYCHIP_HAVE_CUDA_HEADERS

#include "anychip/error.hpp"

namespace anychip::backends::cuda {
namespace {

// Destroys the program however the compile ends.
struct Program {
  const Nvrtc& n;
  nvrtcProgram p = nullptr;
  ~Program() {
    if (p) n.nvrtcDestroyProgram(&p);
  }
};

std::string program_log(const Nvrtc& n, nvrtcProgram p) {
  std::size_t size = 0;
  if (n.nvrtcGetProgramLogSize(p, &size) != NVRTC_SUCCESS || size <= 1) return {};
  std::string log(size, '\0');
  if (n.nvrtcGetProgramLog(p, log.data()) != NVRTC_SUCCESS) return {};
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  return log;
}

}  // namespace

std::vector<std::string> nvrtc_options(const Nvrtc& n, const std::string& arch) {
  std::vector<std::string> o = {"--gpu-architecture=" + arch, "-default-device", "-std=c++17"};
  if (!n.include_dir.empty()) o.push_back("-I" + n.include_dir);
  return o;
}

std::string nvrtc_compiler_id(const Nvrtc& n, const std::string& arch) {
  std::string id = "nvrtc " + std::to_string(n.major) + "." + std::to_string(n.minor) + " " + arch + " (";
  bool first = true;
  for (const std::string& o : nvrtc_options(n, arch)) {
    id += (first ? "" : " ") + o;
    first = false;
  }
  return id + ")";
}

CompileOutput nvrtc_compile(const Nvrtc& n, const std::string& source, const std::string& arch,
                            const std::string& what) {
  if (n.include_dir.empty())
    throw Error(ErrorCode::Unavailable, "cuda: cannot compile " + what + ": the CUDA Toolkit headers NVRTC needs are "
                                            "missing: " + n.include_dir_why);
  Program program{n};
  nvrtcResult r = n.nvrtcCreateProgram(&program.p, source.c_str(), "anychip_kernel.cu", 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS)
    throw Error(ErrorCode::Internal, "cuda: nvrtcCreateProgram for " + what + " failed: " + n.nvrtcGetErrorString(r));
  const std::vector<std::string> options = nvrtc_options(n, arch);
  std::vector<const char*> argv;
  for (const std::string& o : options) argv.push_back(o.c_str());
  r = n.nvrtcCompileProgram(program.p, static_cast<int>(argv.size()), argv.data());
  CompileOutput out;
  out.log = program_log(n, program.p);
  if (r != NVRTC_SUCCESS)
    throw Error(ErrorCode::Internal, "cuda: NVRTC could not compile " + what + " for " + arch + " (" +
                                         n.nvrtcGetErrorString(r) + "); log:\n" + (out.log.empty() ? "(empty)" : out.log));
  std::size_t size = 0;
  if (n.nvrtcGetPTXSize(program.p, &size) == NVRTC_SUCCESS && size > 0) {
    out.ptx.resize(size);
    if (n.nvrtcGetPTX(program.p, out.ptx.data()) != NVRTC_SUCCESS) out.ptx.clear();
    while (!out.ptx.empty() && out.ptx.back() == '\0') out.ptx.pop_back();
  }
  size = 0;
  if (n.nvrtcGetCUBINSize(program.p, &size) == NVRTC_SUCCESS && size > 0) {
    out.cubin.resize(size);
    if (n.nvrtcGetCUBIN(program.p, reinterpret_cast<char*>(out.cubin.data())) != NVRTC_SUCCESS) out.cubin.clear();
  }
  if (out.cubin.empty())
    throw Error(ErrorCode::Internal, "cuda: NVRTC produced no cubin for " + what + " (" + arch + " must be a real "
                                         "architecture, sm_XX)");
  return out;
}

}  // namespace anychip::backends::cuda

#endif  // ANYCHIP_HAVE_CUDA_HEADERS
