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

// The Level Zero device code, driven through a fake driver below.
#if !defined(ANYCHIP_HAVE_LEVEL_ZERO_HEADERS) && __has_include(<level_zero/ze_api.h>)
#define ANYCHIP_HAVE_LEVEL_ZERO_HEADERS 1
#endif
#if ANYCHIP_HAVE_LEVEL_ZERO_HEADERS
#include "backends/level_zero/level_zero_device.hpp"
#endif

// The OpenCL loader of the OpenCL backend, to run the variants' source on an OpenCL device.
#if !defined(ANYCHIP_HAVE_OPENCL_HEADERS) && __has_include(<CL/cl.h>)
#define ANYCHIP_HAVE_OPENCL_HEADERS 1
#endif
#if ANYCHIP_HAVE_OPENCL_HEADERS
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
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
        // The MLA / MoE ops have OpenCL kernels but no SPIR-V variants built yet.
        using K = ir::OpKind;
        bool no_variants = false;
        for (K op : {K::rope, K::slice, K::concat, K::moe_topk, K::moe_weights, K::moe_plan, K::moe_gather,
                     K::gemm_fp8_grouped, K::moe_combine})
          no_variants = no_variants || node.op == op;
        const bool expected_refusal = c.name == "attention/gqa_causal_longer_q_f16" || c.name == "attention/small_f32" ||
                                      (c.name == "attention/mla_decode_576_512_bf16" && local < 87 * 1024);
        if (no_variants) {
          EXPECT_NE(why.find("no SPIR-V variant for"), std::string::npos) << c.name << ": " << why;
        } else if (expected_refusal) {
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

// ---- the device code, on a fake driver ------------------------------------------------------
//
// No Level Zero driver is at hand, so the backend's host code (enumeration, memory,
// command lists, events, modules, arguments) runs against a fake Api: an in-process
// driver that executes each command as it is appended, stamps it with a clock, checks the
// event chain, and checks kernel names and argument sizes against the SPIR-V it is given.
// It shows the code does what it means to with the API as the specification describes
// it; whether a real driver agrees is for a machine with one.

#if ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

namespace fake {

struct Pool;
struct Event {
  Pool* pool = nullptr;
  std::uint32_t index = 0;
  bool signaled = false;
  std::uint64_t start = 0, end = 0;
};
struct Pool {
  std::uint32_t count = 0;
  ze_event_pool_flags_t flags = 0;
  std::set<std::uint32_t> live;
};
struct Module {
  std::vector<unsigned char> spirv;  // the SPIR-V, also inside the fake native binary
};
struct Kernel {
  std::string name;
  std::vector<std::string> params;
  std::uint32_t group_size[3] = {0, 0, 0};
  std::map<std::uint32_t, std::vector<unsigned char>> args;
};
struct Launch {
  std::string kernel;
  std::uint32_t group_size[3];
  ze_group_count_t groups;
  std::map<std::uint32_t, std::vector<unsigned char>> args;
};

struct State {
  ze_result_t init_result = ZE_RESULT_SUCCESS;
  bool fail_build = false;
  std::uint64_t clock = 1000;
  std::set<Event*> events;         // live
  std::size_t max_live_events = 0;
  int pools = 0;
  std::set<void*> device_memory, host_memory;  // live allocations
  std::uint32_t queue_ordinal = 99;
  Event* last_signal = nullptr;
  int chain_breaks = 0;            // a command that did not wait on the previous one
  int dead_waits = 0;              // a wait on an event that no longer exists
  std::vector<ze_module_format_t> module_formats;
  std::string build_flags;
  std::vector<Launch> launches;
  std::string kernel_error;        // an argument the SPIR-V does not take
};
State g;

template <class H, class T>
H handle(T* p) { return reinterpret_cast<H>(p); }
template <class T, class H>
T* object(H h) { return reinterpret_cast<T*>(h); }
int anchor;  // the driver, device and context handles point here

// Appending a command: it waits on `waits`, runs now, and signals `signal`.
ze_result_t command(ze_event_handle_t signal, std::uint32_t n_waits, ze_event_handle_t* waits) {
  Event* prev = g.last_signal;
  bool waited_prev = prev == nullptr;
  for (std::uint32_t i = 0; i < n_waits; ++i) {
    Event* w = object<Event>(waits[i]);
    if (!g.events.count(w)) ++g.dead_waits;
    else if (w == prev) waited_prev = true;
  }
  if (!waited_prev && g.events.count(prev)) ++g.chain_breaks;
  Event* e = object<Event>(signal);
  if (e) {
    e->signaled = true;
    e->start = g.clock;
    e->end = g.clock += 100;
  }
  g.last_signal = e;
  return ZE_RESULT_SUCCESS;
}

anychip::backends::level_zero::Api api() {
  anychip::backends::level_zero::Api a;
  a.zeInit = [](ze_init_flags_t) { return g.init_result; };
  a.zeDriverGet = [](std::uint32_t* n, ze_driver_handle_t* d) {
    if (g.init_result != ZE_RESULT_SUCCESS) return g.init_result;
    if (d && *n >= 1) d[0] = handle<ze_driver_handle_t>(&anchor);
    *n = 1;
    return ZE_RESULT_SUCCESS;
  };
  a.zeDriverGetApiVersion = [](ze_driver_handle_t, ze_api_version_t* v) {
    *v = ZE_API_VERSION_1_4;
    return ZE_RESULT_SUCCESS;
  };
  a.zeDriverGetProperties = [](ze_driver_handle_t, ze_driver_properties_t* p) {
    p->driverVersion = 42;
    return ZE_RESULT_SUCCESS;
  };
  a.zeDeviceGet = [](ze_driver_handle_t, std::uint32_t* n, ze_device_handle_t* d) {
    if (d && *n >= 1) d[0] = handle<ze_device_handle_t>(&anchor);
    *n = 1;
    return ZE_RESULT_SUCCESS;
  };
  a.zeDeviceGetProperties = [](ze_device_handle_t, ze_device_properties_t* p) {
    p->type = ZE_DEVICE_TYPE_GPU;
    p->vendorId = 0x8086;
    p->deviceId = 0x0bd5;
    p->numSlices = 2, p->numSubslicesPerSlice = 4, p->numEUsPerSubslice = 8;
    // 12.5 MHz: 12500000 ticks per second (1.2 structure) or 80 ns per tick (1.0).
    p->timerResolution = p->stype == ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES_1_2 ? 12500000 : 80;
    p->kernelTimestampValidBits = 32;
    std::snprintf(p->name, sizeof p->name, "Fake Level Zero GPU");
    return ZE_RESULT_SUCCESS;
  };
  a.zeDeviceGetComputeProperties = [](ze_device_handle_t, ze_device_compute_properties_t* p) {
    p->maxTotalGroupSize = 1024;
    p->maxGroupSizeX = p->maxGroupSizeY = p->maxGroupSizeZ = 1024;
    p->maxSharedLocalMemory = 128 * 1024;
    return ZE_RESULT_SUCCESS;
  };
  a.zeDeviceGetMemoryProperties = [](ze_device_handle_t, std::uint32_t* n, ze_device_memory_properties_t* p) {
    if (p && *n >= 2) p[0].totalSize = std::uint64_t{8} << 30, p[1].totalSize = std::uint64_t{1} << 30;
    *n = 2;
    return ZE_RESULT_SUCCESS;
  };
  a.zeDeviceGetModuleProperties = [](ze_device_handle_t, ze_device_module_properties_t* p) {
    p->spirvVersionSupported = ZE_MAKE_VERSION(1, 4);
    p->fp32flags = ZE_DEVICE_FP_FLAG_ROUNDED_DIVIDE_SQRT;
    return ZE_RESULT_SUCCESS;
  };
  a.zeDeviceGetCommandQueueGroupProperties = [](ze_device_handle_t, std::uint32_t* n,
                                                ze_command_queue_group_properties_t* p) {
    if (p && *n >= 2) p[0].flags = ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COPY, p[1].flags = ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE;
    *n = 2;
    return ZE_RESULT_SUCCESS;
  };
  a.zeContextCreate = [](ze_driver_handle_t, const ze_context_desc_t*, ze_context_handle_t* c) {
    *c = handle<ze_context_handle_t>(&anchor);
    return ZE_RESULT_SUCCESS;
  };
  a.zeContextDestroy = [](ze_context_handle_t) { return ZE_RESULT_SUCCESS; };
  a.zeMemAllocDevice = [](ze_context_handle_t, const ze_device_mem_alloc_desc_t*, std::size_t size, std::size_t,
                          ze_device_handle_t, void** p) {
    *p = std::malloc(size);
    g.device_memory.insert(*p);
    return ZE_RESULT_SUCCESS;
  };
  a.zeMemAllocHost = [](ze_context_handle_t, const ze_host_mem_alloc_desc_t*, std::size_t size, std::size_t, void** p) {
    *p = std::malloc(size);
    g.host_memory.insert(*p);
    return ZE_RESULT_SUCCESS;
  };
  a.zeMemFree = [](ze_context_handle_t, void* p) {
    if (!g.host_memory.erase(p) && !g.device_memory.erase(p)) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    std::free(p);
    return ZE_RESULT_SUCCESS;
  };
  a.zeCommandListCreateImmediate = [](ze_context_handle_t, ze_device_handle_t, const ze_command_queue_desc_t* d,
                                      ze_command_list_handle_t* l) {
    g.queue_ordinal = d->ordinal;
    *l = handle<ze_command_list_handle_t>(&anchor);
    return ZE_RESULT_SUCCESS;
  };
  a.zeCommandListDestroy = [](ze_command_list_handle_t) { return ZE_RESULT_SUCCESS; };
  a.zeCommandListAppendMemoryCopy = [](ze_command_list_handle_t, void* dst, const void* src, std::size_t n,
                                       ze_event_handle_t signal, std::uint32_t n_waits, ze_event_handle_t* waits) {
    std::memcpy(dst, src, n);
    return command(signal, n_waits, waits);
  };
  a.zeCommandListAppendLaunchKernel = [](ze_command_list_handle_t, ze_kernel_handle_t k, const ze_group_count_t* groups,
                                         ze_event_handle_t signal, std::uint32_t n_waits, ze_event_handle_t* waits) {
    const Kernel& kernel = *object<Kernel>(k);
    g.launches.push_back({kernel.name, {kernel.group_size[0], kernel.group_size[1], kernel.group_size[2]}, *groups,
                          kernel.args});
    return command(signal, n_waits, waits);
  };
  a.zeEventPoolCreate = [](ze_context_handle_t, const ze_event_pool_desc_t* d, std::uint32_t, ze_device_handle_t*,
                           ze_event_pool_handle_t* p) {
    auto* pool = new Pool;
    pool->count = d->count;
    pool->flags = d->flags;
    ++g.pools;
    *p = handle<ze_event_pool_handle_t>(pool);
    return ZE_RESULT_SUCCESS;
  };
  a.zeEventPoolDestroy = [](ze_event_pool_handle_t p) {
    Pool* pool = object<Pool>(p);
    const bool busy = !pool->live.empty();
    delete pool;
    --g.pools;
    return busy ? ZE_RESULT_ERROR_HANDLE_OBJECT_IN_USE : ZE_RESULT_SUCCESS;
  };
  a.zeEventCreate = [](ze_event_pool_handle_t p, const ze_event_desc_t* d, ze_event_handle_t* e) {
    Pool* pool = object<Pool>(p);
    if (d->index >= pool->count || !pool->live.insert(d->index).second) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    auto* ev = new Event;
    ev->pool = pool;
    ev->index = d->index;
    g.events.insert(ev);
    g.max_live_events = std::max(g.max_live_events, g.events.size());
    *e = handle<ze_event_handle_t>(ev);
    return ZE_RESULT_SUCCESS;
  };
  a.zeEventDestroy = [](ze_event_handle_t e) {
    Event* ev = object<Event>(e);
    ev->pool->live.erase(ev->index);
    g.events.erase(ev);
    if (g.last_signal == ev) g.last_signal = nullptr;
    delete ev;
    return ZE_RESULT_SUCCESS;
  };
  a.zeEventHostSynchronize = [](ze_event_handle_t e, std::uint64_t) {
    return object<Event>(e)->signaled ? ZE_RESULT_SUCCESS : ZE_RESULT_NOT_READY;
  };
  a.zeEventQueryStatus = [](ze_event_handle_t e) {
    return object<Event>(e)->signaled ? ZE_RESULT_SUCCESS : ZE_RESULT_NOT_READY;
  };
  a.zeEventQueryKernelTimestamp = [](ze_event_handle_t e, ze_kernel_timestamp_result_t* t) {
    const Event& ev = *object<Event>(e);
    if (!(ev.pool->flags & ZE_EVENT_POOL_FLAG_KERNEL_TIMESTAMP)) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    if (!ev.signaled) return ZE_RESULT_NOT_READY;
    t->global = {ev.start, ev.end};
    t->context = {ev.start, ev.end};
    return ZE_RESULT_SUCCESS;
  };
  a.zeModuleCreate = [](ze_context_handle_t, ze_device_handle_t, const ze_module_desc_t* d, ze_module_handle_t* m,
                        ze_module_build_log_handle_t* log) {
    g.module_formats.push_back(d->format);
    g.build_flags = d->pBuildFlags ? d->pBuildFlags : "";
    if (log) *log = handle<ze_module_build_log_handle_t>(&anchor);
    if (g.fail_build) return ZE_RESULT_ERROR_MODULE_BUILD_FAILURE;
    std::span<const unsigned char> bytes(d->pInputModule, d->inputSize);
    if (d->format == ZE_MODULE_FORMAT_NATIVE) {
      if (bytes.size() < 7 || std::memcmp(bytes.data(), "NATIVE:", 7) != 0) return ZE_RESULT_ERROR_INVALID_NATIVE_BINARY;
      bytes = bytes.subspan(7);
    }
    try {
      spirv_kernels(bytes);
    } catch (const std::exception&) {
      return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    }
    *m = handle<ze_module_handle_t>(new Module{{bytes.begin(), bytes.end()}});
    return ZE_RESULT_SUCCESS;
  };
  a.zeModuleDestroy = [](ze_module_handle_t m) {
    delete object<Module>(m);
    return ZE_RESULT_SUCCESS;
  };
  a.zeModuleBuildLogGetString = [](ze_module_build_log_handle_t, std::size_t* n, char* text) {
    const std::string log = g.fail_build ? "error: fake build failure in kernel 'gemm'\n" : "";
    if (text) std::memcpy(text, log.c_str(), std::min(*n, log.size() + 1));
    *n = log.size() + 1;
    return ZE_RESULT_SUCCESS;
  };
  a.zeModuleBuildLogDestroy = [](ze_module_build_log_handle_t) { return ZE_RESULT_SUCCESS; };
  a.zeModuleGetNativeBinary = [](ze_module_handle_t m, std::size_t* n, std::uint8_t* out) {
    const Module& mod = *object<Module>(m);
    if (out) {
      std::memcpy(out, "NATIVE:", 7);
      std::memcpy(out + 7, mod.spirv.data(), mod.spirv.size());
    }
    *n = 7 + mod.spirv.size();
    return ZE_RESULT_SUCCESS;
  };
  a.zeKernelCreate = [](ze_module_handle_t m, const ze_kernel_desc_t* d, ze_kernel_handle_t* k) {
    for (const SpirvKernel& sk : spirv_kernels(object<Module>(m)->spirv))
      if (sk.name == d->pKernelName) {
        *k = handle<ze_kernel_handle_t>(new Kernel{sk.name, sk.params, {0, 0, 0}, {}});
        return ZE_RESULT_SUCCESS;
      }
    return ZE_RESULT_ERROR_INVALID_KERNEL_NAME;
  };
  a.zeKernelDestroy = [](ze_kernel_handle_t k) {
    delete object<Kernel>(k);
    return ZE_RESULT_SUCCESS;
  };
  a.zeKernelSetGroupSize = [](ze_kernel_handle_t k, std::uint32_t x, std::uint32_t y, std::uint32_t z) {
    Kernel& kernel = *object<Kernel>(k);
    kernel.group_size[0] = x, kernel.group_size[1] = y, kernel.group_size[2] = z;
    return ZE_RESULT_SUCCESS;
  };
  a.zeKernelSetArgumentValue = [](ze_kernel_handle_t k, std::uint32_t index, std::size_t size, const void* value) {
    Kernel& kernel = *object<Kernel>(k);
    if (index >= kernel.params.size()) {
      g.kernel_error = kernel.name + ": argument " + std::to_string(index) + " of " + std::to_string(kernel.params.size());
      return ZE_RESULT_ERROR_INVALID_KERNEL_ARGUMENT_INDEX;
    }
    const std::string& type = kernel.params[index];
    const std::size_t want = type == "ptr" || type == "u64" ? 8 : 4;
    if (size != want) {
      g.kernel_error = kernel.name + ": argument " + std::to_string(index) + " (" + type + ") given " + std::to_string(size) + " bytes";
      return ZE_RESULT_ERROR_INVALID_KERNEL_ARGUMENT_SIZE;
    }
    const auto* b = static_cast<const unsigned char*>(value);
    kernel.args[index].assign(b, b + size);
    return ZE_RESULT_SUCCESS;
  };
  a.zeKernelGetProperties = [](ze_kernel_handle_t k, ze_kernel_properties_t* p) {
    p->numKernelArgs = static_cast<std::uint32_t>(object<Kernel>(k)->params.size());
    p->localMemSize = 0;
    return ZE_RESULT_SUCCESS;
  };
  return a;
}

}  // namespace fake

namespace lzb = anychip::backends::level_zero;

// The fake driver's one device, opened.
struct FakeDevice {
  lzb::Api api = fake::api();
  std::vector<lzb::DeviceEntry> entries;
  std::unique_ptr<backends::Device> device;
  FakeDevice() {
    fake::g = {};
    std::string why;
    entries = lzb::find_devices(api, &why);
    if (!entries.empty()) device = lzb::open_device(api, entries[0]);
  }
};

TEST(LevelZeroFakeDriver, FindsTheDeviceAndReadsItsProperties) {
  FakeDevice f;
  ASSERT_EQ(f.entries.size(), 1u);
  const lzb::DeviceEntry& e = f.entries[0];
  EXPECT_EQ(e.info.id, "level_zero:0");
  EXPECT_EQ(e.info.backend, "level_zero");
  EXPECT_EQ(e.info.name, "Fake Level Zero GPU");
  EXPECT_NE(e.info.arch.find("GPU vendor 0x8086 device 0x0bd5, Level Zero 1.4, driver 42, SPIR-V 1.4"), std::string::npos)
      << e.info.arch;
  EXPECT_EQ(e.info.memory_bytes, std::uint64_t{9} << 30);
  EXPECT_EQ(e.info.compute_units, 64);
  EXPECT_EQ(e.compute_ordinal, 1u);
  EXPECT_DOUBLE_EQ(e.ns_per_tick, 80.0);
  EXPECT_EQ(e.timestamp_mask, 0xFFFFFFFFull);
  EXPECT_FALSE(e.target.wide_work_items);
  EXPECT_EQ(e.target.max_work_group_size, 1024u);
  EXPECT_EQ(e.target.local_mem_bytes, 128u * 1024);
  EXPECT_TRUE(e.target.correctly_rounded_divide);
  if (blz::spirv_modules().empty()) {
    EXPECT_FALSE(e.info.available);
    EXPECT_NE(e.info.unavailable_reason.find("built without SPIR-V kernels"), std::string::npos);
  } else {
    EXPECT_TRUE(e.info.available) << e.info.unavailable_reason;
  }
}

TEST(LevelZeroFakeDriver, NoDriverIsTheReason) {
  lzb::Api api = fake::api();
  fake::g = {};
  fake::g.init_result = ZE_RESULT_ERROR_UNINITIALIZED;
  std::string why;
  EXPECT_TRUE(lzb::find_devices(api, &why).empty());
  EXPECT_EQ(why, "no Level Zero driver: zeInit returned ZE_RESULT_ERROR_UNINITIALIZED (0x78000001)");
}

TEST(LevelZeroFakeDriver, CopiesRoundTripInOrderAndFreeTheirStaging) {
  {
    FakeDevice f;
    ASSERT_TRUE(f.device);
    backends::Device& d = *f.device;
    auto buffer = d.allocate(1000);
    auto queue = d.create_queue();
    EXPECT_EQ(fake::g.queue_ordinal, 1u) << "the compute group";
    std::vector<unsigned char> in(1000), out(600, 0);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<unsigned char>(i * 7 + 3);
    {
      std::vector<unsigned char> temporary = in;
      d.write(*queue, *buffer, 0, temporary.data(), temporary.size());
    }  // the caller's memory may go at once
    d.read(*queue, *buffer, 300, out.data(), out.size());
    d.synchronize(*queue);
    EXPECT_TRUE(std::equal(out.begin(), out.end(), in.begin() + 300));
    EXPECT_TRUE(fake::g.host_memory.empty()) << "staging is freed once the copies are done";
    EXPECT_THROW(d.write(*queue, *buffer, 900, in.data(), 200), Error);
  }
  EXPECT_TRUE(fake::g.device_memory.empty());
  EXPECT_EQ(fake::g.chain_breaks, 0) << "every command waits on the one before";
  EXPECT_EQ(fake::g.dead_waits, 0);
  EXPECT_EQ(fake::g.events.size(), 0u);
  EXPECT_EQ(fake::g.pools, 0);
}

TEST(LevelZeroFakeDriver, ElapsedIsTheDeviceTimeOfTheWorkBetweenRecords) {
  FakeDevice f;
  ASSERT_TRUE(f.device);
  backends::Device& d = *f.device;
  auto buffer = d.allocate(64);
  auto queue = d.create_queue();
  std::vector<unsigned char> bytes(64, 1);
  d.write(*queue, *buffer, 0, bytes.data(), 64);
  auto start = d.record(*queue);
  d.write(*queue, *buffer, 0, bytes.data(), 64);
  d.write(*queue, *buffer, 0, bytes.data(), 64);
  auto end = d.record(*queue);
  auto later = d.record(*queue);
  d.synchronize(*queue);
  // Two commands of 100 ticks at 12.5 MHz (80 ns a tick).
  EXPECT_NEAR(d.elapsed_seconds(*start, *end), 200 * 80e-9, 1e-12);
  EXPECT_EQ(d.elapsed_seconds(*end, *later), 0.0) << "no command in between";
}

TEST(LevelZeroFakeDriver, EventsAreRecycled) {
  FakeDevice f;
  ASSERT_TRUE(f.device);
  backends::Device& d = *f.device;
  auto buffer = d.allocate(16);
  auto queue = d.create_queue();
  unsigned char byte = 0;
  for (int i = 0; i < 3000; ++i) {
    d.write(*queue, *buffer, 0, &byte, 1);
    if (i % 500 == 499) d.synchronize(*queue);
  }
  d.synchronize(*queue);
  EXPECT_LE(fake::g.max_live_events, 8u) << "completed commands give their events back";
  EXPECT_EQ(fake::g.pools, 1);
  EXPECT_EQ(fake::g.chain_breaks, 0);
  EXPECT_EQ(fake::g.dead_waits, 0);
}

TEST(LevelZeroFakeDriver, CompilesLoadsAndLaunchesWithTheVariantsArguments) {
  MODULES_OR_SKIP();
  FakeDevice f;
  ASSERT_TRUE(f.device);
  backends::Device& d = *f.device;
  kernels::GemmFp8Problem p;
  p.m = 37, p.n = 130, p.k = 384, p.out_dtype = DType::f32;
  const kernels::KernelSpec spec{p, d.choose_tiles(p)};
  ASSERT_TRUE(d.supports(spec).ok) << d.supports(spec).reason;
  const std::string source = d.render(spec);
  EXPECT_NE(source.find("// SPIR-V: "), std::string::npos);
  const std::vector<std::byte> binary = d.compile(spec, source);
  ASSERT_GT(binary.size(), 17u);
  EXPECT_EQ(std::memcmp(binary.data(), "anychip-ze-bin1", 15), 0);
  EXPECT_EQ(fake::g.module_formats.back(), ZE_MODULE_FORMAT_IL_SPIRV);
  EXPECT_EQ(fake::g.build_flags, "-cl-fp32-correctly-rounded-divide-sqrt");
  auto kernel = d.load(spec, binary);
  EXPECT_EQ(fake::g.module_formats.size(), 1u) << "load() takes the module compile() built";

  auto a = d.allocate(37 * 384), sa = d.allocate(37 * 3), b = d.allocate(130 * 384), sb = d.allocate(2 * 3),
       out = d.allocate(37 * 130 * 4);
  auto queue = d.create_queue();
  const backends::BufferOperand inputs[] = {{a.get(), 0, sa.get(), 0}, {b.get(), 0, sb.get(), 0}};
  d.launch(*queue, *kernel, inputs, {out.get(), 16, nullptr, 0});
  d.synchronize(*queue);
  EXPECT_EQ(fake::g.kernel_error, "");
  ASSERT_EQ(fake::g.launches.size(), 1u);
  const fake::Launch& l = fake::g.launches[0];
  const klz::Launch want = klz::launch(spec, f.entries[0].target);
  EXPECT_EQ(l.kernel, "gemm");
  EXPECT_EQ(l.groups.groupCountX, want.group_count[0]);
  EXPECT_EQ(l.groups.groupCountY, want.group_count[1]);
  EXPECT_EQ(l.group_size[0] * l.group_size[1] * l.group_size[2], 256u);
  ASSERT_EQ(l.args.size(), 13u);  // 5 buffers x (pointer, offset), M, N, K
  auto u64 = [&](std::uint32_t i) {
    std::uint64_t v = 0;
    std::memcpy(&v, l.args.at(i).data(), 8);
    return v;
  };
  auto i32 = [&](std::uint32_t i) {
    std::int32_t v = 0;
    std::memcpy(&v, l.args.at(i).data(), 4);
    return v;
  };
  EXPECT_EQ(u64(9), 16u) << "the output's offset";
  EXPECT_EQ(i32(10), 37);
  EXPECT_EQ(i32(11), 130);
  EXPECT_EQ(i32(12), 384);

  // From the cache, in a later process: the native binary.
  auto again = d.load(spec, binary);
  EXPECT_EQ(fake::g.module_formats.back(), ZE_MODULE_FORMAT_NATIVE);
  EXPECT_EQ(d.emit(spec, "spirv").substr(0, 4), std::string("\x03\x02\x23\x07", 4));
}

TEST(LevelZeroFakeDriver, ABuildFailureCarriesTheBuildLog) {
  MODULES_OR_SKIP();
  FakeDevice f;
  ASSERT_TRUE(f.device);
  kernels::AddProblem p{1000, DType::bf16};
  const kernels::KernelSpec spec{p, f.device->choose_tiles(p)};
  fake::g.fail_build = true;
  try {
    f.device->compile(spec, f.device->render(spec));
    ADD_FAILURE() << "the build did not fail";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("ZE_RESULT_ERROR_MODULE_BUILD_FAILURE"), std::string::npos) << what;
    EXPECT_NE(what.find("build log:\nerror: fake build failure"), std::string::npos) << what;
    EXPECT_NE(what.find("add numel=1000"), std::string::npos) << what;
  }
}

#endif  // ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

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
