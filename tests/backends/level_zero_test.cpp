// The Level Zero backend where there may be no Level Zero driver: the SPIR-V modules built
// at build time, and the loader path. Every embedded module validates with spirv-val;
// every variant's kernel is in its module, taking the arguments the backend passes; every
// variant is what the OpenCL renderer derives for some KernelSpec; the conformance cases
// map onto variants on a typical GPU, and what no variant covers is refused with the
// reason. Without a driver (as on the machine this was written on) the device list says
// why and opening level_zero:0 throws Unavailable. Running the kernels is the conformance
// suite's job, on a machine with a Level Zero driver.
//
// Tests that need the modules or spirv-val skip, with the reason, where they are absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "anychip/anychip.hpp"
#include "anychip/conformance.hpp"
#include "backends/level_zero/spirv_modules.hpp"
#include "kernels/level_zero/level_zero_kernels.hpp"
#include "kernels/lowering.hpp"
#include "kernels/reference/reference.hpp"
#include "kernels/reference/tolerance.hpp"

// The OpenCL loader of the OpenCL backend, to run the variants' source on an OpenCL device.
#if __has_include(<CL/cl.h>) && !defined(ANYCHIP_HAVE_OPENCL_HEADERS)
#define ANYCHIP_HAVE_OPENCL_HEADERS 1
#define CL_TARGET_OPENCL_VERSION 120
#include "backends/opencl/opencl_api.hpp"
#endif

using namespace anychip;
namespace klz = anychip::kernels::level_zero;
namespace blz = anychip::backends::level_zero;

namespace {

// A GPU with the limits of a large Level Zero device (Data Center GPU Max: 1024
// work-items, 128 KiB of shared local memory) and of a client one (64 KiB).
klz::Target gpu(std::size_t local_mem_bytes) {
  klz::Target t;
  t.wide_work_items = false;
  t.max_work_group_size = 1024;
  t.max_work_item_sizes[0] = t.max_work_item_sizes[1] = t.max_work_item_sizes[2] = 1024;
  t.local_mem_bytes = local_mem_bytes;
  t.compute_units = 64;
  t.correctly_rounded_divide = true;
  return t;
}

#define MODULES_OR_SKIP()                                                                     \
  if (blz::spirv_modules().empty()) GTEST_SKIP() << "no SPIR-V modules in this build: " << blz::spirv_build_info()

// ---- a small SPIR-V reader --------------------------------------------------------------

struct SpirvKernel {
  std::string name;
  std::vector<std::string> params;  // "ptr", "i32", "u64", "f32", "?"
};

// The Kernel entry points of a module and the parameter types of their functions; throws
// std::runtime_error on a malformed module.
std::vector<SpirvKernel> spirv_kernels(std::span<const unsigned char> bytes) {
  if (bytes.size() % 4 != 0 || bytes.size() < 20) throw std::runtime_error("not a whole number of words");
  std::vector<std::uint32_t> w(bytes.size() / 4);
  std::memcpy(w.data(), bytes.data(), bytes.size());
  if (w[0] != 0x07230203u) throw std::runtime_error("bad magic number");
  std::map<std::uint32_t, std::string> types;  // id -> kind
  std::vector<std::pair<std::uint32_t, std::string>> entries;  // function id, name
  std::map<std::uint32_t, std::vector<std::string>> params;
  std::uint32_t current = 0;
  for (std::size_t i = 5; i < w.size();) {
    const std::uint32_t count = w[i] >> 16, op = w[i] & 0xFFFFu;
    if (count == 0 || i + count > w.size()) throw std::runtime_error("truncated instruction");
    const std::uint32_t* a = &w[i + 1];
    switch (op) {
      case 15:  // OpEntryPoint: model, function, name, interface...
        if (a[0] == 6) entries.emplace_back(a[1], std::string(reinterpret_cast<const char*>(&a[2])));
        break;
      case 21:  // OpTypeInt: result, width, signedness
        types[a[0]] = a[1] == 32 ? "i32" : a[1] == 64 ? "u64" : "int" + std::to_string(a[1]);
        break;
      case 22:  // OpTypeFloat: result, width
        types[a[0]] = a[1] == 32 ? "f32" : "float" + std::to_string(a[1]);
        break;
      case 32:  // OpTypePointer
        types[a[0]] = "ptr";
        break;
      case 54:  // OpFunction: result type, result
        current = a[1];
        params[current];
        break;
      case 55:  // OpFunctionParameter: result type, result
        params[current].push_back(types.count(a[0]) ? types[a[0]] : "?");
        break;
      default: break;
    }
    i += count;
  }
  std::vector<SpirvKernel> out;
  for (const auto& [fn, name] : entries) out.push_back({name, params[fn]});
  return out;
}

// What the backend passes: per buffer a pointer and a 64-bit offset, then the shapes.
std::vector<std::string> expected_params(const klz::Launch& l) {
  std::vector<std::string> p;
  std::size_t buffers = l.scaled_output ? 2 : 1;
  for (bool scaled : l.scaled_inputs) buffers += scaled ? 2 : 1;
  for (std::size_t i = 0; i < buffers; ++i) p.insert(p.end(), {"ptr", "u64"});
  for (const klz::ShapeArg& a : l.shape_args)
    p.push_back(a.type == klz::ShapeArg::Type::i32 ? "i32" : a.type == klz::ShapeArg::Type::u64 ? "u64" : "f32");
  return p;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// ---- a grid of problems that covers every variant ---------------------------------------

std::vector<kernels::Problem> problem_grid() {
  using kernels::Problem;
  std::vector<Problem> ps;
  const DType floats[] = {DType::f32, DType::bf16, DType::f16};
  const DType fp8s[] = {DType::f8e4m3, DType::f8e5m2};
  const DType scales[] = {DType::ue8m0, DType::f32};
  for (std::int64_t m : {1, 256})
    for (DType a : fp8s)
      for (DType b : fp8s)
        for (DType s : scales)
          for (DType out : {DType::bf16, DType::f32}) {
            kernels::GemmFp8Problem p;
            p.m = m, p.n = 512, p.k = 1024, p.a_dtype = a, p.b_dtype = b, p.a_scale_dtype = p.b_scale_dtype = s;
            p.out_dtype = out;
            ps.push_back(p);
          }
  for (DType in : floats)
    for (DType out : floats) {
      kernels::GemmProblem p;
      p.m = 200, p.n = 300, p.k = 100, p.in_dtype = in, p.out_dtype = out;
      ps.push_back(p);
    }
  for (auto [dk, dv] : {std::pair{64, 64}, {128, 128}, {192, 128}, {576, 512}, {32, 48}})
    for (DType d : floats) {
      kernels::AttentionProblem p;
      p.seq_q = 100, p.seq_kv = 300, p.heads_q = 16, p.heads_kv = 4, p.head_dim = dk, p.head_dim_v = dv;
      p.scale = 0.1, p.dtype = d;
      ps.push_back(p);
    }
  for (DType d : floats)
    for (DType w : floats) ps.push_back(kernels::RmsNormProblem{7, 333, 1e-6, d, w});
  for (DType d : floats) {
    ps.push_back(kernels::SiluMulProblem{7, 173, d});
    ps.push_back(kernels::AddProblem{2997, d});
  }
  for (DType in : floats)
    for (DType f : fp8s)
      for (DType s : scales) {
        ps.push_back(kernels::QuantizeProblem{130, 300, in, f, kActivationBlock, s});
        ps.push_back(kernels::DequantizeProblem{130, 300, f, kWeightBlock, s, in});
      }
  return ps;
}

// Each variant with a spec it implements (from the grid, on a large GPU).
std::map<std::string, kernels::KernelSpec> specs_by_variant() {
  std::map<std::string, kernels::KernelSpec> out;
  const klz::Target t = gpu(128 * 1024);
  for (const kernels::Problem& p : problem_grid()) {
    // Every tile configuration a variant offers, not just the preferred one.
    for (const klz::Variant& v : klz::variants()) {
      const kernels::KernelSpec spec{p, v.tiles};
      if (const klz::Variant* found = klz::find_variant(spec, t, nullptr); found == &v) out.emplace(v.name, spec);
    }
  }
  return out;
}

std::optional<std::string> find_tool(const char* name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t pos = 0; pos <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', pos), dirs.size());
    const std::filesystem::path candidate = std::filesystem::path(dirs.substr(pos, end - pos)) / name;
    if (!dirs.substr(pos, end - pos).empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    pos = end + 1;
  }
  return std::nullopt;
}

// Runs a command; returns its exit status and (in *output) what it printed.
int run(const std::string& command, std::string* output) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  output->clear();
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) output->append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::filesystem::path temp_dir() {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("anychip-l0-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

// ---- the modules --------------------------------------------------------------------------

TEST(LevelZeroSpirv, EveryVariantIsBuiltAndEmbedded) {
  MODULES_OR_SKIP();
  std::set<std::string> embedded;
  for (const blz::SpirvModule& m : blz::spirv_modules()) {
    EXPECT_TRUE(embedded.insert(std::string(m.name)).second) << m.name << " is embedded twice";
    EXPECT_GT(m.bytes.size(), 20u) << m.name;
  }
  for (const klz::Variant& v : klz::variants()) EXPECT_TRUE(embedded.count(std::string(v.name))) << v.name << " is not embedded";
  EXPECT_EQ(embedded.size(), klz::variants().size());
  std::printf("%zu SPIR-V modules (%s)\n", embedded.size(), std::string(blz::spirv_build_info()).c_str());
}

TEST(LevelZeroSpirv, EveryModuleValidatesWithSpirvVal) {
  MODULES_OR_SKIP();
  const std::optional<std::string> val = find_tool("spirv-val");
  if (!val) GTEST_SKIP() << "spirv-val is not on PATH (Debian package spirv-tools)";
  const std::filesystem::path dir = temp_dir();
  for (const blz::SpirvModule& m : blz::spirv_modules()) {
    const std::filesystem::path file = dir / (std::string(m.name) + ".spv");
    std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(m.bytes.data()),
                                                static_cast<std::streamsize>(m.bytes.size()));
    // OpenCL's SPIR-V environment is what Level Zero consumes (Kernel capability,
    // physical 64-bit addressing); opencl2.2 is the one that accepts SPIR-V 1.2.
    std::string out;
    EXPECT_EQ(run(*val + " --target-env opencl2.2 " + file.string(), &out), 0) << m.name << ":\n" << out;
  }
  std::filesystem::remove_all(dir);
}

TEST(LevelZeroSpirv, EveryVariantsKernelIsAnEntryPointTakingTheBackendsArguments) {
  MODULES_OR_SKIP();
  const std::map<std::string, kernels::KernelSpec> specs = specs_by_variant();
  for (const klz::Variant& v : klz::variants()) {
    const blz::SpirvModule* m = blz::find_spirv_module(v.name);
    ASSERT_NE(m, nullptr) << v.name;
    const std::vector<SpirvKernel> ks = spirv_kernels(m->bytes);
    ASSERT_EQ(ks.size(), 1u) << v.name << ": one kernel per module";
    EXPECT_EQ(ks[0].name, klz::kernel_name(v)) << v.name;
    const auto it = specs.find(std::string(v.name));
    if (it == specs.end()) continue;  // reported by VariantsAreWhatTheOpenClRendererDerives
    const klz::Launch l = klz::launch(it->second, gpu(128 * 1024));
    EXPECT_EQ(l.kernel, ks[0].name) << v.name;
    EXPECT_EQ(join(ks[0].params), join(expected_params(l))) << v.name << ": the kernel's parameters";
  }
}

// ---- the variants -------------------------------------------------------------------------

TEST(LevelZeroKernels, VariantsAreWhatTheOpenClRendererDerives) {
  const std::map<std::string, kernels::KernelSpec> specs = specs_by_variant();
  std::set<std::string> names;
  for (const klz::Variant& v : klz::variants()) {
    EXPECT_TRUE(names.insert(std::string(v.name)).second) << v.name << " appears twice in spirv_variants.def";
    EXPECT_TRUE(specs.count(std::string(v.name)))
        << v.name << " implements no KernelSpec of the test's grid: its #defines (" << v.defines
        << ") are not what kernels::opencl::render() derives for its tiles on a GPU any more, or the grid lacks its "
           "dtypes. kernels::level_zero::variant_line() prints the line a spec needs.";
  }
}

TEST(LevelZeroKernels, OneModuleServesEveryShape) {
  const klz::Target t = gpu(64 * 1024);
  kernels::GemmFp8Problem a;
  a.m = 300, a.n = 130, a.k = 384;
  kernels::GemmFp8Problem b = a;
  b.m = 4096, b.n = 7168, b.k = 2048;
  const kernels::KernelSpec sa{a, klz::choose_tiles(a, t)}, sb{b, klz::choose_tiles(b, t)};
  const klz::Variant* va = klz::find_variant(sa, t, nullptr);
  ASSERT_NE(va, nullptr);
  EXPECT_EQ(va, klz::find_variant(sb, t, nullptr));
  const klz::Launch l = klz::launch(sa, t);
  ASSERT_EQ(l.shape_args.size(), 3u);
  EXPECT_EQ(l.shape_args[0].i, 300);
  EXPECT_EQ(l.shape_args[1].i, 130);
  EXPECT_EQ(l.shape_args[2].i, 384);
  EXPECT_EQ(l.group_count[0], 3u);  // ceil(130 / 64) tiles along N
  EXPECT_EQ(l.group_count[1], 5u);  // ceil(300 / 64) along M
  EXPECT_EQ(l.group_size[0] * l.group_size[1], 256u);
  const std::string source = klz::render(sa, t);
  EXPECT_NE(source.find("#define AC_SHAPE_ARGS 1\n"), std::string::npos);
  EXPECT_EQ(source.find("#define M "), std::string::npos) << "shapes are arguments, not #defines";
  EXPECT_NE(source.find("M=300 N=130 K=384"), std::string::npos);
}

TEST(LevelZeroKernels, DecodeGemmsTakeTheShortTiles) {
  const klz::Target t = gpu(64 * 1024);
  kernels::GemmFp8Problem p;
  p.m = 1, p.n = 7168, p.k = 2048;
  EXPECT_EQ(klz::choose_tiles(p, t).m, 16);
  p.m = 16;
  EXPECT_EQ(klz::choose_tiles(p, t).m, 16);
  p.m = 17;
  EXPECT_EQ(klz::choose_tiles(p, t).m, 64);
  p.m = 5000;
  EXPECT_EQ(klz::choose_tiles(p, t).m, 64);
}

TEST(LevelZeroKernels, RefusesWhatNoVariantCoversWithTheReason) {
  const klz::Target t = gpu(64 * 1024);
  kernels::AttentionProblem att;
  att.seq_q = 45, att.seq_kv = 30, att.heads_q = 8, att.heads_kv = 2, att.head_dim = 32, att.head_dim_v = 48;
  att.scale = 0.2, att.dtype = DType::f16;
  std::string why = klz::check({att, klz::choose_tiles(att, t)}, t);
  EXPECT_NE(why.find("no SPIR-V variant for attention f16 with head_dim 32, head_dim_v 48"), std::string::npos) << why;

  kernels::GemmFp8Problem g;
  g.m = g.n = 256, g.k = 512, g.a_dtype = g.b_dtype = DType::f8e5m2;
  why = klz::check({g, klz::choose_tiles(g, t)}, t);
  EXPECT_NE(why.find("no SPIR-V variant for gemm_fp8 f8e5m2 x f8e5m2"), std::string::npos) << why;

  // MLA decode: its variant needs 87 KiB of shared local memory.
  kernels::AttentionProblem mla;
  mla.seq_q = 1, mla.seq_kv = 512, mla.heads_q = 16, mla.heads_kv = 1, mla.head_dim = 576, mla.head_dim_v = 512;
  mla.scale = 0.04, mla.dtype = DType::bf16;
  why = klz::check({mla, klz::choose_tiles(mla, t)}, t);
  EXPECT_NE(why.find("local memory"), std::string::npos) << why;
  EXPECT_EQ(klz::check({mla, klz::choose_tiles(mla, gpu(128 * 1024))}, gpu(128 * 1024)), "");

  kernels::GemmFp8Problem huge;
  huge.m = std::int64_t{1} << 32, huge.n = 128, huge.k = 128;
  why = klz::check({huge, klz::choose_tiles(huge, t)}, t);
  EXPECT_NE(why.find("32-bit shape arguments"), std::string::npos) << why;
}

// On a typical GPU every conformance case has a variant, except the attention head
// dimensions no variant is built for (and MLA decode, which needs more than 64 KiB).
TEST(LevelZeroKernels, ConformanceCasesMapOntoVariants) {
  for (std::size_t local : {std::size_t{64} * 1024, std::size_t{128} * 1024}) {
    const klz::Target t = gpu(local);
    std::size_t supported = 0;
    for (const conformance::Case& c : conformance::cases()) {
      for (const ir::Node& node : c.graph.nodes()) {
        std::optional<kernels::Problem> problem = kernels::lower(c.graph, node);
        if (!problem) continue;
        const kernels::KernelSpec spec{*problem, klz::choose_tiles(*problem, t)};
        const std::string why = klz::check(spec, t);
        const bool expected_refusal = c.name == "attention/gqa_causal_longer_q_f16" || c.name == "attention/small_f32" ||
                                      (c.name == "attention/mla_decode_576_512_bf16" && local < 87 * 1024);
        if (expected_refusal) {
          EXPECT_FALSE(why.empty()) << c.name;
        } else {
          EXPECT_EQ(why, "") << c.name << " on a GPU with " << local / 1024 << " KiB";
          ++supported;
        }
      }
    }
    EXPECT_GT(supported, 40u);
  }
}

// ---- the variants' source, run on OpenCL ---------------------------------------------------

#if ANYCHIP_HAVE_OPENCL_HEADERS

namespace ocl = anychip::backends::opencl;

// The first OpenCL device, with a context and a queue; skips without one.
struct OpenClRig {
  const ocl::Api* cl = nullptr;
  cl_device_id device = nullptr;
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;
  std::string skip;  // why there is no rig
  OpenClRig() {
    cl = ocl::api(&skip);
    if (!cl) return;
    cl_platform_id platform = nullptr;
    cl_uint n = 0;
    if (cl->clGetPlatformIDs(1, &platform, &n) != CL_SUCCESS || n == 0 ||
        cl->clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, &n) != CL_SUCCESS || n == 0) {
      skip = "no OpenCL device";
      cl = nullptr;
      return;
    }
    cl_int err = CL_SUCCESS;
    context = cl->clCreateContext(nullptr, 1, &device, nullptr, nullptr, &err);
    if (err == CL_SUCCESS) queue = cl->clCreateCommandQueue(context, device, 0, &err);
    if (err != CL_SUCCESS) {
      skip = "cannot open the OpenCL device: " + ocl::error_name(err);
      cl = nullptr;
    }
  }
  ~OpenClRig() {
    if (queue) cl->clReleaseCommandQueue(queue);
    if (context) cl->clReleaseContext(context);
  }
};

// Runs the kernel of `node` (spec) from klz::render()'s source, what its SPIR-V was
// compiled from, with the arguments klz::launch() gives the Level Zero backend, on fresh
// random inputs; returns rel_err against the float64 reference, or throws with what failed.
double run_on_opencl(OpenClRig& rig, const ir::Graph& graph, const ir::Node& node, const kernels::KernelSpec& spec,
                     const klz::Target& target) {
  const ocl::Api& cl = *rig.cl;
  const std::string source = klz::render(spec, target);
  const char* text = source.c_str();
  const std::size_t length = source.size();
  cl_int err = CL_SUCCESS;
  cl_program program = cl.clCreateProgramWithSource(rig.context, 1, &text, &length, &err);
  err = cl.clBuildProgram(program, 1, &rig.device, "-cl-std=CL1.2 -cl-fp32-correctly-rounded-divide-sqrt", nullptr, nullptr);
  if (err != CL_SUCCESS) {
    std::size_t n = 0;
    cl.clGetProgramBuildInfo(program, rig.device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
    std::string log(n, '\0');
    cl.clGetProgramBuildInfo(program, rig.device, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
    cl.clReleaseProgram(program);
    throw std::runtime_error("build failed: " + ocl::error_name(err) + "\n" + log);
  }
  const klz::Launch l = klz::launch(spec, target);
  cl_kernel kernel = cl.clCreateKernel(program, l.kernel.c_str(), &err);
  if (err != CL_SUCCESS) throw std::runtime_error("no kernel " + l.kernel + ": " + ocl::error_name(err));

  // Inputs in the op's operand order (a graph's inputs are in the order they were made).
  std::vector<HostTensor> inputs;
  for (std::size_t i = 0; i < node.inputs.size(); ++i)
    inputs.push_back(HostTensor::random(graph.value(node.inputs[i]).type, 1234 + i));
  HostTensor out = HostTensor::poisoned(graph.value(node.output).type);
  std::vector<cl_mem> mems;
  cl_uint index = 0;
  auto arg = [&](std::size_t size, const void* value) {
    if ((err = cl.clSetKernelArg(kernel, index, size, value)) != CL_SUCCESS)
      throw std::runtime_error("argument " + std::to_string(index) + ": " + ocl::error_name(err));
    ++index;
  };
  auto buffer = [&](std::vector<std::byte>& bytes) {
    cl_mem m = cl.clCreateBuffer(rig.context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                                 std::max<std::size_t>(bytes.size(), 1), bytes.data(), &err);
    if (err != CL_SUCCESS) throw std::runtime_error("clCreateBuffer: " + ocl::error_name(err));
    mems.push_back(m);
    const cl_ulong offset = 0;
    arg(sizeof m, &m);
    arg(sizeof offset, &offset);
  };
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    buffer(inputs[i].data);
    if (l.scaled_inputs.at(i)) buffer(inputs[i].scales);
  }
  buffer(out.data);
  const std::size_t out_data = mems.size() - 1;
  if (l.scaled_output) buffer(out.scales);
  for (const klz::ShapeArg& a : l.shape_args) {
    const std::int32_t i32 = static_cast<std::int32_t>(a.i);
    const std::uint64_t u64 = static_cast<std::uint64_t>(a.i);
    arg(a.size(), a.type == klz::ShapeArg::Type::i32   ? static_cast<const void*>(&i32)
                  : a.type == klz::ShapeArg::Type::u64 ? static_cast<const void*>(&u64)
                                                       : static_cast<const void*>(&a.f));
  }
  std::size_t global[3], local[3];
  for (int d = 0; d < 3; ++d) local[d] = l.group_size[d], global[d] = std::size_t{l.group_count[d]} * l.group_size[d];
  err = cl.clEnqueueNDRangeKernel(rig.queue, kernel, 3, nullptr, global, local, 0, nullptr, nullptr);
  if (err != CL_SUCCESS) throw std::runtime_error("launch: " + ocl::error_name(err));
  cl.clEnqueueReadBuffer(rig.queue, mems[out_data], CL_TRUE, 0, out.data.size(), out.data.data(), 0, nullptr, nullptr);
  if (l.scaled_output)
    cl.clEnqueueReadBuffer(rig.queue, mems[out_data + 1], CL_TRUE, 0, out.scales.size(), out.scales.data(), 0, nullptr,
                           nullptr);
  cl.clFinish(rig.queue);
  for (cl_mem m : mems) cl.clReleaseMemObject(m);
  cl.clReleaseKernel(kernel);
  cl.clReleaseProgram(program);

  std::vector<kernels::ConstOperand> in;
  for (const HostTensor& h : inputs) in.push_back({h.data.data(), h.scales.empty() ? nullptr : h.scales.data()});
  std::vector<double> ref(static_cast<std::size_t>(out.type.numel()));
  kernels::reference::run(spec.problem, in, ref.data());
  return rel_err(out.values(), ref);
}

// Every conformance kernel a variant runs, from the source its SPIR-V was compiled from,
// with the Level Zero backend's arguments (shapes included) and launch geometry, on the
// first OpenCL device (PoCL's CPU device where this was written), against the reference:
// the shape-argument kernels compute what they should. It does not run the SPIR-V itself
// (PoCL 3.1 takes none), nor on a GPU.
TEST(LevelZeroKernels, VariantSourcesRunOnOpenClWithTheBackendsArguments) {
  bool shape_args = false;
  for (const EmbeddedFile& f : kernels::opencl::embedded_sources())
    if (f.name == "common.cl" && f.text.find("AC_SHAPE_ARGS") != std::string_view::npos) shape_args = true;
  if (!shape_args) GTEST_SKIP() << "kernels/opencl/*.cl take no shape arguments (AC_SHAPE_ARGS) in this tree";
  OpenClRig rig;
  if (!rig.cl) GTEST_SKIP() << rig.skip;
  const klz::Target target = gpu(128 * 1024);
  std::size_t ran = 0;
  for (const conformance::Case& c : conformance::cases())
    for (const ir::Node& node : c.graph.nodes()) {
      const std::optional<kernels::Problem> problem = kernels::lower(c.graph, node);
      if (!problem) continue;
      const kernels::KernelSpec spec{*problem, klz::choose_tiles(*problem, target)};
      if (!klz::check(spec, target).empty()) continue;
      try {
        const double err = run_on_opencl(rig, c.graph, node, spec, target);
        EXPECT_LE(err, kernels::reference::tolerance(*problem)) << c.name << " (" << kernels::describe(spec) << ")";
        ++ran;
      } catch (const std::exception& e) {
        ADD_FAILURE() << c.name << ": " << e.what();
      }
    }
  EXPECT_GT(ran, 40u);
  std::printf("%zu conformance kernels ran from the SPIR-V variants' source\n", ran);
}

#endif  // ANYCHIP_HAVE_OPENCL_HEADERS

// ---- the loader path ----------------------------------------------------------------------

// The level_zero entries of the device list, or skips when a Level Zero device works here.
std::vector<DeviceInfo> level_zero_devices_without_driver() {
  std::vector<DeviceInfo> out;
  for (const DeviceInfo& d : list_devices())
    if (d.backend == "level_zero") out.push_back(d);
  return out;
}

TEST(LevelZeroDevices, ListedUnavailableWithTheReasonWhereThereIsNoDriver) {
  const std::vector<DeviceInfo> devices = level_zero_devices_without_driver();
  ASSERT_FALSE(devices.empty()) << "list_devices() has no level_zero entry";
  for (const DeviceInfo& d : devices)
    if (d.available) GTEST_SKIP() << d.id << " (" << d.name << ") is available: this machine has a Level Zero driver";
  ASSERT_EQ(devices.size(), 1u);
  const DeviceInfo& d = devices[0];
  EXPECT_EQ(d.id, "level_zero");
  EXPECT_FALSE(d.unavailable_reason.empty());
  const std::string& why = d.unavailable_reason;
  EXPECT_TRUE(why.find("no Level Zero driver") != std::string::npos || why.find("libze_loader.so.1") != std::string::npos ||
              why.find("built without") != std::string::npos)
      << why;
  std::printf("level_zero: %s\n", why.c_str());
}

TEST(LevelZeroDevices, OpeningWithoutDriverThrowsUnavailableWithTheReason) {
  const std::vector<DeviceInfo> devices = level_zero_devices_without_driver();
  for (const DeviceInfo& d : devices)
    if (d.available) GTEST_SKIP() << d.id << " is available: this machine has a Level Zero driver";
  ASSERT_FALSE(devices.empty());
  for (const char* id : {"level_zero:0", "level_zero:3"}) {
    try {
      Device::open(id);
      ADD_FAILURE() << id << " opened without a driver";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Unavailable) << e.what();
      EXPECT_NE(std::string(e.what()).find(devices[0].unavailable_reason), std::string::npos) << e.what();
    }
  }
}

}  // namespace
