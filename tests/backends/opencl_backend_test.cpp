// The OpenCL backend (opencl:0) through the public API: every op against the float64
// reference on fresh random inputs with poisoned outputs, at shapes that are not multiples
// of any tile; the narrow-work-item (GPU-style) kernels as well, run on whatever device
// opencl:0 is; bit-exact FP8 decoding and quantization; device timing; the kernel cache
// round trip; build errors with the build log; tiles that cannot fit. Without an OpenCL
// device every test is skipped with the device's reason.
//
// PoCL compiles every kernel on first use, so the cases are few and chosen to cover: both
// scale formats, both GEMM outputs, E5M2, MHA/GQA/MQA, causal or not, Sq < Skv and Sq > Skv,
// decode (Sq = 1) against a long KV, Dk != Dv (576/512). The DeepSeek layer's ops (rope,
// slice, concat, the MoE routing, gemm_fp8_grouped) are covered by the conformance suite;
// here: the grouped GEMM's contiguous layout on both of its kernels (padding rows, whole
// padding tiles, a short last tile, a broken layout), and the routing chain on the narrow
// (GPU-style) kernels.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <gtest/gtest.h>

#include "anychip/anychip.hpp"
#include "backends/backend.hpp"
#include "kernels/opencl/opencl_kernels.hpp"
#include "runtime/kernel_cache.hpp"

using namespace anychip;
using ir::Graph;
using ir::ValueId;

namespace {

// opencl:0, or skip the test with the reason it is unavailable.
#define OPEN_OPENCL_OR_SKIP(device)                                                   \
  std::optional<Device> device##_opt;                                                 \
  if (std::string why = opencl_unavailable(); !why.empty()) GTEST_SKIP() << why;      \
  device##_opt = Device::open("opencl:0");                                            \
  Device& device = *device##_opt

std::string opencl_unavailable() {
  for (const DeviceInfo& d : list_devices())
    if (d.id == "opencl:0" && d.available) return {};
  for (const DeviceInfo& d : list_devices())
    if (d.backend == "opencl") return d.id + " is unavailable: " + d.unavailable_reason;
  return "no opencl backend in this build";
}

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }
TensorType scaled(std::int64_t r, std::int64_t c, BlockShape b, DType s, DType fp8 = DType::f8e4m3) {
  return {fp8, {r, c}, ScaleLayout{b, s}};
}

struct Case {
  std::string name;
  std::function<ValueId(Graph&)> build;
};

// One op per case; inputs are declared in operand order inside build (never as arguments
// of one call, whose evaluation order C++ leaves open).
std::vector<Case> cases() {
  std::vector<Case> c;
  auto gemm_fp8 = [&](std::int64_t m, std::int64_t n, std::int64_t k, DType s, DType out, DType b_fp8) {
    c.push_back({"gemm_fp8 " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k), [=](Graph& g) {
                   const ValueId a = g.input("a", scaled(m, k, kActivationBlock, s));
                   const ValueId b = g.input("b", scaled(n, k, kWeightBlock, s, b_fp8));
                   return g.gemm_fp8(a, b, out);
                 }});
  };
  gemm_fp8(1, 7, 128, DType::ue8m0, DType::f32, DType::f8e4m3);      // decode, N below a vector
  gemm_fp8(37, 130, 384, DType::f32, DType::bf16, DType::f8e4m3);    // ragged M and N
  gemm_fp8(129, 257, 256, DType::ue8m0, DType::bf16, DType::f8e5m2); // E4M3 x E5M2
  gemm_fp8(300, 200, 512, DType::f32, DType::f32, DType::f8e4m3);    // several tiles each way
  gemm_fp8(5, 300, 384, DType::f32, DType::bf16, DType::f8e5m2);     // few rows: the dot-product kernel
  for (DType d : {DType::f32, DType::bf16})
    c.push_back({"gemm " + std::string(dtype_name(d)), [=](Graph& g) {
                   const ValueId a = g.input("a", plain(d, {19, 70}));
                   const ValueId b = g.input("b", plain(d, {33, 70}));
                   return g.gemm(a, b, d);
                 }});
  struct Att { const char* name; std::int64_t b, sq, skv, hq, hkv, dk, dv; bool causal; DType d; };
  for (Att a : {Att{"mha causal sq<skv", 2, 17, 40, 4, 4, 64, 64, true, DType::bf16},
                Att{"gqa causal sq>skv dk!=dv", 1, 45, 30, 8, 2, 32, 48, true, DType::f16},
                Att{"mqa decode long kv 576/512", 1, 1, 1000, 16, 1, 576, 512, false, DType::bf16},
                Att{"gqa decode causal", 2, 1, 300, 4, 2, 64, 64, true, DType::f32},
                Att{"mqa square", 1, 70, 70, 3, 1, 24, 24, false, DType::f32}})
    c.push_back({std::string("attention ") + a.name, [=](Graph& g) {
                   const ValueId q = g.input("q", plain(a.d, {a.b, a.sq, a.hq, a.dk}));
                   const ValueId k = g.input("k", plain(a.d, {a.b, a.skv, a.hkv, a.dk}));
                   const ValueId v = g.input("v", plain(a.d, {a.b, a.skv, a.hkv, a.dv}));
                   return g.attention(q, k, v, a.causal);
                 }});
  c.push_back({"quantize 1x128 ue8m0 from bf16", [](Graph& g) {
                 return g.quantize_fp8(g.input("x", plain(DType::bf16, {130, 300})), kActivationBlock, DType::ue8m0);
               }});
  c.push_back({"quantize 128x128 f32 scales to e5m2", [](Graph& g) {
                 return g.quantize_fp8(g.input("x", plain(DType::f32, {130, 300})), kWeightBlock, DType::f32,
                                       DType::f8e5m2);
               }});
  for (DType out : {DType::f32, DType::bf16, DType::f16})
    c.push_back({"dequantize to " + std::string(dtype_name(out)), [=](Graph& g) {
                   return g.dequantize(g.input("x", scaled(70, 260, kWeightBlock,
                                                           out == DType::f16 ? DType::f32 : DType::ue8m0)), out);
                 }});
  c.push_back({"rmsnorm bf16", [](Graph& g) {
                 const ValueId x = g.input("x", plain(DType::bf16, {3, 5, 333}));
                 const ValueId w = g.input("w", plain(DType::f32, {333}));
                 return g.rmsnorm(x, w);
               }});
  c.push_back({"silu_mul bf16", [](Graph& g) { return g.silu_mul(g.input("x", plain(DType::bf16, {7, 2 * 173}))); }});
  c.push_back({"add f16", [](Graph& g) {
                 const ValueId a = g.input("a", plain(DType::f16, {3, 999}));
                 const ValueId b = g.input("b", plain(DType::f16, {3, 999}));
                 return g.add(a, b);
               }});
  return c;
}

// Runs `g` on fresh random inputs into poisoned outputs and expects every kernel to match
// the reference.
void expect_matches_reference(const Device& device, const Graph& g, std::uint64_t seed) {
  CompileOptions opts;
  opts.use_cache = false;
  Executable exe = compile(g, device, opts);
  Stream s = device.create_stream();
  std::vector<Tensor> in, out;
  for (std::size_t i = 0; i < g.inputs().size(); ++i)
    in.push_back(device.upload(HostTensor::random(g.value(g.inputs()[i]).type, seed + i), s));
  for (ValueId v : g.outputs()) out.push_back(device.upload(HostTensor::poisoned(g.value(v).type), s));
  exe.run(s, in, out);
  const std::vector<KernelCheck> checks = exe.check_last_run(s);
  ASSERT_FALSE(checks.empty());
  for (const KernelCheck& c : checks) EXPECT_TRUE(c.ok) << c.label << ": rel_err " << c.rel_err << " > " << c.tolerance;
}

void run_every_case(const Device& device) {
  std::mt19937_64 seeds(std::random_device{}());
  for (const Case& c : cases()) {
    const std::uint64_t seed = seeds();
    Graph g("opencl_case");
    g.output(c.build(g));
    SCOPED_TRACE(c.name + " (seed " + std::to_string(seed) + ")\n" + ir::print(g));
    expect_matches_reference(device, g, seed);
  }
}

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("anychip_opencl_test_" + name + "_" + std::to_string(std::random_device{}()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::vector<std::filesystem::path> cache_entries(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".kernel") files.push_back(e.path());
  return files;
}

Graph small_gemm_fp8() {
  Graph g("cache_gemm");
  const ValueId a = g.input("a", scaled(33, 128, kActivationBlock, DType::ue8m0));
  const ValueId b = g.input("b", scaled(65, 128, kWeightBlock, DType::ue8m0));
  g.output(g.gemm_fp8(a, b, DType::f32));
  return g;
}

// Runs `exe` on random inputs and returns the worst check.
KernelCheck run_and_check(Executable& exe, const Device& device) {
  const Graph& g = exe.graph();
  Stream s = device.create_stream();
  std::vector<Tensor> in, out;
  for (std::size_t i = 0; i < g.inputs().size(); ++i)
    in.push_back(device.upload(HostTensor::random(g.value(g.inputs()[i]).type, 7 + i), s));
  for (ValueId v : g.outputs()) out.push_back(device.upload(HostTensor::poisoned(g.value(v).type), s));
  exe.run(s, in, out);
  return exe.check_last_run(s).at(0);
}

backends::Backend& opencl_backend() {
  for (backends::Backend* b : backends::all_backends())
    if (b->name() == "opencl") return *b;
  throw std::runtime_error("no opencl backend");
}

TEST(OpenClBackend, ListsDevicesWithTheirDriverAndLimits) {
  bool any = false;
  for (const DeviceInfo& d : list_devices()) {
    if (d.backend != "opencl") continue;
    any = true;
    if (!d.available) {
      EXPECT_FALSE(d.unavailable_reason.empty()) << d.id;
      continue;
    }
    EXPECT_EQ(d.id.rfind("opencl:", 0), 0u) << d.id;
    EXPECT_FALSE(d.name.empty()) << d.id;
    EXPECT_NE(d.arch.find("OpenCL C"), std::string::npos) << d.arch;
    EXPECT_NE(d.arch.find("driver"), std::string::npos) << d.arch;
    EXPECT_GT(d.compute_units, 0) << d.id;
    EXPECT_GT(d.memory_bytes, 0u) << d.id;
  }
  EXPECT_TRUE(any) << "the opencl backend lists no device, not even an unavailable one";
}

TEST(OpenClBackend, OpeningAMissingDeviceNamesTheDevicesThatExist) {
  if (std::string why = opencl_unavailable(); !why.empty()) GTEST_SKIP() << why;
  try {
    Device::open("opencl:999");
    FAIL() << "opened opencl:999";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("opencl:0"), std::string::npos) << e.what();
  }
}

TEST(OpenClBackend, EveryOpMatchesTheReferenceOnRandomInputs) {
  OPEN_OPENCL_OR_SKIP(device);
  run_every_case(device);
}

TEST(OpenClBackend, GpuStyleKernelsMatchTheReference) {
  // The narrow-work-item kernels (many work-items per group, cooperative staging and
  // barriers), which a GPU gets, run here on whatever device opencl:0 is.
  if (std::string why = opencl_unavailable(); !why.empty()) GTEST_SKIP() << why;
  ScopedEnv narrow("ANYCHIP_OPENCL_WORK_ITEMS", "narrow");
  Device device = Device::open("opencl:0");
  std::mt19937_64 seeds(std::random_device{}());
  for (const Case& c : cases()) {
    if (c.name != "gemm_fp8 37x130x384" && c.name != "gemm f32" && c.name != "attention gqa causal sq>skv dk!=dv" &&
        c.name != "quantize 1x128 ue8m0 from bf16" && c.name != "rmsnorm bf16")
      continue;
    const std::uint64_t seed = seeds();
    Graph g("opencl_narrow_case");
    g.output(c.build(g));
    SCOPED_TRACE(c.name + " (narrow work-items, seed " + std::to_string(seed) + ")");
    expect_matches_reference(device, g, seed);
  }
}

TEST(OpenClBackend, EveryFp8CodeDecodesExactlyInTheGemmAndInDequantize) {
  OPEN_OPENCL_OR_SKIP(device);
  for (DType fp8 : {DType::f8e4m3, DType::f8e5m2}) {
    SCOPED_TRACE(std::string(dtype_name(fp8)));
    auto decode = [&](int code) {
      return fp8 == DType::f8e4m3 ? e4m3_to_float(static_cast<std::uint8_t>(code))
                                  : e5m2_to_float(static_cast<std::uint8_t>(code));
    };
    // x [2, 128] holds all 256 codes, dequantized with scale 1 (UE8M0 127). a is x with
    // the non-finite codes replaced by 0 (one of them would turn its whole row of D into
    // NaN), times B = the identity (E4M3 1.0 on the diagonal): D = a exactly.
    Graph g("decode");
    const ValueId a = g.input("a", scaled(2, 128, kActivationBlock, DType::ue8m0, fp8));
    const ValueId b = g.input("b", scaled(128, 128, kWeightBlock, DType::ue8m0));
    const ValueId x = g.input("x", scaled(2, 128, kActivationBlock, DType::ue8m0, fp8));
    g.output(g.gemm_fp8(a, b, DType::f32, "d"));
    g.output(g.dequantize(x, DType::f32, "y"));
    HostTensor ha(g.value(a).type), hb(g.value(b).type), hx(g.value(x).type);
    for (int i = 0; i < 256; ++i) {
      hx.data[static_cast<std::size_t>(i)] = std::byte(i);
      ha.data[static_cast<std::size_t>(i)] = std::isfinite(decode(i)) ? std::byte(i) : std::byte{0};
    }
    for (HostTensor* h : {&ha, &hb, &hx}) std::fill(h->scales.begin(), h->scales.end(), std::byte{127});
    for (int i = 0; i < 128; ++i) hb.data[static_cast<std::size_t>(i * 128 + i)] = std::byte{0x38};

    Executable exe = compile(g, device);
    Stream s = device.create_stream();
    std::vector<Tensor> in = {device.upload(ha, s), device.upload(hb, s), device.upload(hx, s)};
    std::vector<Tensor> out = exe.allocate_outputs();
    exe.run(s, in, out);
    const HostTensor d = out[0].download(s), y = out[1].download(s);
    for (int i = 0; i < 256; ++i) {
      const float want = decode(i);
      float got_d, got_y;
      std::memcpy(&got_d, d.data.data() + 4 * i, 4);
      std::memcpy(&got_y, y.data.data() + 4 * i, 4);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got_y)) << "dequantize, code " << i;
      } else {
        EXPECT_EQ(got_y, want) << "dequantize, code " << i;
        EXPECT_EQ(std::signbit(got_y), std::signbit(want)) << "dequantize, code " << i;
      }
      if (std::isfinite(want)) {
        EXPECT_EQ(got_d, want) << "gemm, code " << i;
      }
    }
  }
}

TEST(OpenClBackend, QuantizeIsBitExactWithQuantizeBlocksOnEveryKindOfValue) {
  OPEN_OPENCL_OR_SKIP(device);
  // Values from every corner of the float range, not just [-1, 1): random bit patterns
  // (normal, subnormal, huge), exact powers of two, E4M3/E5M2 rounding ties, zeros of
  // both signs, and blocks with a NaN, an infinity, or only tiny values (the 1e-4 floor).
  const std::int64_t rows = 9, cols = 300;
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  std::mt19937 rng(12345);
  for (float& v : x) {
    std::uint32_t u;
    do u = static_cast<std::uint32_t>(rng()); while ((u & 0x7F800000u) == 0x7F800000u);
    // Mostly moderate exponents so that blocks are not all dominated by one huge value.
    u = (u & 0x807FFFFFu) | ((100u + (u >> 23) % 55u) << 23);
    std::memcpy(&v, &u, 4);
  }
  auto row = [&](std::int64_t r) { return x.data() + r * cols; };
  for (int c = 0; c < cols; ++c)  // halfway between neighbouring E4M3 values, both signs
    row(1)[c] = (c % 2 ? -1.0f : 1.0f) * (1.0f + static_cast<float>(2 * (c % 8) + 1) / 16.0f) * std::ldexp(1.0f, (c / 8) % 12 - 6);
  for (int c = 0; c < cols; ++c) row(2)[c] = (c % 2 ? -1.0f : 1.0f) * std::ldexp(1.0f, c % 40 - 30);  // tiny and exact
  for (int c = 0; c < cols; ++c) row(3)[c] = c % 3 ? 3e-6f * static_cast<float>(c) : -0.0f;  // below the floor
  row(4)[5] = std::nanf("");
  row(5)[200] = INFINITY;
  row(6)[10] = -INFINITY;
  for (int c = 0; c < cols; ++c) row(7)[c] = std::ldexp(static_cast<float>(c % 17 + 1), c % 50 - 20);
  for (int c = 0; c < cols; ++c) row(8)[c] = std::ldexp(1.0f, -140 + c % 20);  // float subnormals

  struct Q { DType in, fp8, scale; BlockShape block; };
  for (Q q : {Q{DType::f32, DType::f8e4m3, DType::ue8m0, kActivationBlock},
              Q{DType::f32, DType::f8e5m2, DType::f32, kWeightBlock},
              Q{DType::bf16, DType::f8e4m3, DType::f32, kActivationBlock}}) {
    SCOPED_TRACE(std::string(dtype_name(q.in)) + " -> " + std::string(dtype_name(q.fp8)) + " with " +
                 std::string(dtype_name(q.scale)) + " scales " + std::to_string(q.block.rows) + "x" +
                 std::to_string(q.block.cols));
    HostTensor hx(plain(q.in, {rows, cols}));
    std::vector<float> exact(x.size());  // the values the kernel reads, as float
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (q.in == DType::f32) {
        std::memcpy(hx.data.data() + 4 * i, &x[i], 4);
        exact[i] = x[i];
      } else {
        const std::uint16_t h = float_to_bf16(x[i]);
        std::memcpy(hx.data.data() + 2 * i, &h, 2);
        exact[i] = bf16_to_float(h);
      }
    }
    std::vector<std::uint8_t> want_q(x.size());
    std::vector<std::byte> want_s(static_cast<std::size_t>(scale_rows(rows, q.block) * scale_cols(cols, q.block)) *
                                  dtype_size(q.scale));
    quantize_blocks(exact, rows, cols, q.block, q.fp8, q.scale, want_q, want_s);

    Graph g("quantize");
    g.output(g.quantize_fp8(g.input("x", hx.type), q.block, q.scale, q.fp8));
    Executable exe = compile(g, device);
    Stream s = device.create_stream();
    std::vector<Tensor> in = {device.upload(hx, s)};
    std::vector<Tensor> out = {device.upload(HostTensor::poisoned(g.value(g.outputs()[0]).type), s)};
    exe.run(s, in, out);
    const HostTensor got = out[0].download(s);
    ASSERT_EQ(got.scales.size(), want_s.size());
    EXPECT_EQ(std::memcmp(got.scales.data(), want_s.data(), want_s.size()), 0) << "scales differ";
    int shown = 0;
    for (std::size_t i = 0; i < want_q.size(); ++i)
      if (std::to_integer<std::uint8_t>(got.data[i]) != want_q[i] && shown++ < 10) {
        ADD_FAILURE() << "code " << i << " (x = " << exact[i] << "): got 0x" << std::hex
                      << std::to_integer<int>(got.data[i]) << ", quantize_blocks gives 0x" << int{want_q[i]};
      }
  }
}

// gemm_fp8_grouped on random A and B with the given group operand (one entry per row).
struct GroupedCase {
  std::vector<int> group;
  std::int64_t groups, align, n, k;
  DType out;
};

Graph grouped_graph(const GroupedCase& c) {
  Graph g("grouped");
  const auto m = static_cast<std::int64_t>(c.group.size());
  const ValueId a = g.input("a", scaled(m, c.k, kActivationBlock, DType::ue8m0));
  const ValueId b = g.input("b", scaled(c.groups * c.n, c.k, kWeightBlock, DType::f32, DType::f8e5m2));
  const ValueId group = g.input("group", plain(DType::i32, {m}));
  g.output(g.gemm_fp8_grouped(a, b, group, c.groups, c.out, c.align));
  return g;
}

// Runs the case into a poisoned output; returns the output and, when `check`, expects
// every kernel to match the reference.
HostTensor run_grouped(const Device& device, const GroupedCase& c, std::uint64_t seed, bool check) {
  const Graph g = grouped_graph(c);
  CompileOptions opts;
  opts.use_cache = false;
  Executable exe = compile(g, device, opts);
  Stream s = device.create_stream();
  const std::vector<double> group(c.group.begin(), c.group.end());
  std::vector<Tensor> in = {device.upload(HostTensor::random(g.value(g.inputs()[0]).type, seed), s),
                            device.upload(HostTensor::random(g.value(g.inputs()[1]).type, seed + 1), s),
                            device.upload(HostTensor::encode(g.value(g.inputs()[2]).type, group), s)};
  std::vector<Tensor> out = {device.upload(HostTensor::poisoned(g.value(g.outputs()[0]).type), s)};
  exe.run(s, in, out);
  if (check) {
    for (const KernelCheck& k : exe.check_last_run(s))
      EXPECT_TRUE(k.ok) << k.label << ": rel_err " << k.rel_err << " > " << k.tolerance;
  }
  return out[0].download(s);
}

// Row r of a [rows, n] output as floats.
std::vector<float> output_row(const HostTensor& d, std::int64_t r) {
  const std::int64_t n = d.type.shape[1];
  std::vector<double> all = d.values();
  return std::vector<float>(all.begin() + r * n, all.begin() + (r + 1) * n);
}

// The layouts moe_plan writes, by hand: `runs` of (group, rows), each padded with -1 to
// a multiple of align, then `tail` rows of one more run cut short (M not a multiple of
// align).
std::vector<int> contiguous(std::int64_t align, std::initializer_list<std::pair<int, int>> runs) {
  std::vector<int> group;
  for (auto [g, rows] : runs) {
    for (int i = 0; i < rows; ++i) group.push_back(g);
    while (group.size() % static_cast<std::size_t>(align) != 0) group.push_back(-1);
  }
  return group;
}

std::vector<GroupedCase> grouped_cases() {
  std::vector<GroupedCase> cs;
  // Decode-sized alignments take the few-rows kernel on CPU devices: one row of a group
  // in a tile of 8 (the common decode case), a whole padding tile, full tiles, and a
  // last tile of 5 rows.
  std::vector<int> g8 = contiguous(8, {{3, 1}, {-1, 8}, {0, 8}, {4, 3}, {1, 16}});
  for (int i = 0; i < 5; ++i) g8.push_back(2);
  cs.push_back({g8, 5, 8, 256, 256, DType::bf16});
  // align 1: every row its own tile, groups in any order, padding anywhere.
  cs.push_back({{2, -1, 0, 0, 3, -1, 1, 2, 2}, 4, 1, 128, 128, DType::f32});
  // A prefill alignment takes the tiled kernel: tiles of 3 rows, 128 rows and none.
  cs.push_back({contiguous(128, {{1, 3}, {0, 128}, {-1, 128}, {2, 70}}), 3, 128, 128, 256, DType::f32});
  return cs;
}

TEST(OpenClBackend, GroupedGemmFollowsTheContiguousLayoutAndZeroesPaddingRows) {
  OPEN_OPENCL_OR_SKIP(device);
  std::mt19937_64 seeds(std::random_device{}());
  for (const GroupedCase& c : grouped_cases()) {
    const std::uint64_t seed = seeds();
    SCOPED_TRACE("align " + std::to_string(c.align) + ", " + std::to_string(c.group.size()) + " rows (seed " +
                 std::to_string(seed) + ")");
    const HostTensor d = run_grouped(device, c, seed, true);
    for (std::size_t r = 0; r < c.group.size(); ++r) {
      if (c.group[r] != -1) continue;
      for (float v : output_row(d, static_cast<std::int64_t>(r))) {
        ASSERT_EQ(v, 0.0f) << "padding row " << r;
        ASSERT_FALSE(std::signbit(v)) << "padding row " << r << " holds -0";
      }
    }
  }
}

TEST(OpenClBackend, GroupedGemmMarksABrokenLayoutWithNaNInsteadOfReadingPastB) {
  // A kernel cannot raise an error: a group out of range, or a row whose group differs
  // from its tile's, comes out NaN; the other rows are still right.
  OPEN_OPENCL_OR_SKIP(device);
  for (std::int64_t align : {8, 128}) {
    SCOPED_TRACE("align " + std::to_string(align));
    std::vector<int> group = contiguous(align, {{1, 2}, {0, 3}, {1, 1}});
    group[static_cast<std::size_t>(align) + 2] = 1;  // tile 1: 0, 0, 1 (breaks the layout)
    group[2 * static_cast<std::size_t>(align)] = 7;  // tile 2: group 7 of 2
    const HostTensor d = run_grouped(device, {group, 2, align, 128, 128, DType::f32}, 11, false);
    for (std::int64_t r : {align + 2, 2 * align})
      for (float v : output_row(d, r)) ASSERT_TRUE(std::isnan(v)) << "row " << r;
    for (std::int64_t r : {std::int64_t{0}, std::int64_t{1}, align, align + 1})
      for (float v : output_row(d, r)) ASSERT_TRUE(std::isfinite(v)) << "row " << r;
    for (float v : output_row(d, 2)) ASSERT_EQ(v, 0.0f) << "padding row 2";
  }
}

TEST(OpenClBackend, GpuStyleMoeRoutingMatchesTheReference) {
  // The narrow-work-item kernels of a MoE layer's routing, chained as the layer chains
  // them: moe_topk (group-limited) -> moe_weights, moe_plan (one work-group of many
  // work-items, placing choices in batches) -> moe_gather -> quantize -> gemm_fp8_grouped
  // (align 8) -> moe_combine; and rope on a slice, concatenated with a broadcast.
  if (std::string why = opencl_unavailable(); !why.empty()) GTEST_SKIP() << why;
  ScopedEnv narrow("ANYCHIP_OPENCL_WORK_ITEMS", "narrow");
  Device device = Device::open("opencl:0");
  const std::int64_t tokens = 70, experts = 16, k = 4, align = 8, dim = 256, n = 128;  // 280 choices: two batches of moe_plan's 256 work-items
  Graph g("opencl_narrow_moe");
  const ValueId logits = g.input("logits", plain(DType::f32, {tokens, experts}));
  const ValueId bias = g.input("bias", plain(DType::f32, {experts}));
  const ValueId x = g.input("x", plain(DType::bf16, {tokens, dim}));
  const ValueId w = g.input("w", scaled(experts * n, dim, kWeightBlock, DType::ue8m0));
  const ValueId chosen = g.moe_topk(logits, bias, k, 4, 2);
  const ValueId weights = g.moe_weights(logits, chosen, 2.5);
  const ValueId plan = g.moe_plan(chosen, experts, align);
  const std::int64_t rows = ir::moe_plan_rows(tokens, k, experts, align);
  const ValueId group = g.reshape(g.slice(plan, 0, 0, 1), {rows});
  const ValueId xq = g.quantize_fp8(g.moe_gather(x, plan));
  const ValueId y = g.gemm_fp8_grouped(xq, w, group, experts, DType::bf16, align);
  g.output(g.moe_combine(y, plan, weights));
  const ValueId q = g.input("q", plain(DType::bf16, {tokens, 4, 96}));
  std::vector<double> positions(static_cast<std::size_t>(tokens));
  for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = 3000.0 + static_cast<double>(i);
  const ValueId pos = g.input("pos", plain(DType::i32, {tokens}));
  const ValueId pe = g.rope(g.slice(q, 2, 32, 64), pos);
  g.output(g.concat(g.slice(q, 2, 0, 32), g.slice(pe, 1, 0, 1), 2));

  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  CompileOptions opts;
  opts.use_cache = false;
  Executable exe = compile(g, device, opts);
  Stream s = device.create_stream();
  std::vector<Tensor> in;
  for (std::size_t i = 0; i < g.inputs().size(); ++i) {
    const TensorType& t = g.value(g.inputs()[i]).type;
    in.push_back(device.upload(g.inputs()[i] == pos ? HostTensor::encode(t, positions) : HostTensor::random(t, seed + i), s));
  }
  std::vector<Tensor> out;
  for (ValueId v : g.outputs()) out.push_back(device.upload(HostTensor::poisoned(g.value(v).type), s));
  exe.run(s, in, out);
  const std::vector<KernelCheck> checks = exe.check_last_run(s);
  EXPECT_GE(checks.size(), 11u);
  for (const KernelCheck& c : checks) EXPECT_TRUE(c.ok) << c.label << ": rel_err " << c.rel_err << " > " << c.tolerance;
}

TEST(OpenClBackend, EventsTimeTheWorkBetweenThem) {
  OPEN_OPENCL_OR_SKIP(device);
  Graph g = small_gemm_fp8();
  Executable exe = compile(g, device);
  Stream s = device.create_stream();
  std::vector<Tensor> in;
  for (std::size_t i = 0; i < g.inputs().size(); ++i)
    in.push_back(device.upload(HostTensor::random(g.value(g.inputs()[i]).type, 1 + i), s));
  std::vector<Tensor> out = exe.allocate_outputs();
  Event e0 = s.record();
  Event e1 = s.record();  // nothing between e0 and e1
  exe.run(s, in, out);
  Event e2 = s.record();
  s.synchronize();
  EXPECT_EQ(e1.seconds_since(e0), 0.0);
  const double run = e2.seconds_since(e1);
  EXPECT_GT(run, 0.0);
  EXPECT_LT(run, 10.0);
  const std::vector<double> kernel = exe.last_kernel_seconds(s);
  ASSERT_EQ(kernel.size(), 1u);
  EXPECT_GT(kernel[0], 0.0);
  EXPECT_LE(kernel[0], run * 1.000001);
}

TEST(OpenClBackend, KernelCacheRoundTripAndRebuildsWhatItCannotUse) {
  OPEN_OPENCL_OR_SKIP(device);
  const std::filesystem::path dir = fresh_dir("cache");
  CompileOptions opts;
  opts.cache_dir = dir.string();
  const Graph g = small_gemm_fp8();

  Executable first = compile(g, device, opts);
  EXPECT_EQ(first.cache_stats().misses, 1u);
  EXPECT_EQ(first.cache_stats().hits, 0u);
  const std::vector<std::filesystem::path> entries = cache_entries(dir);
  ASSERT_EQ(entries.size(), 1u);

  // A second compile loads the driver binary from the cache, and it runs.
  Executable second = compile(g, device, opts);
  EXPECT_EQ(second.cache_stats().hits, 1u);
  EXPECT_EQ(second.cache_stats().misses, 0u);
  KernelCheck c = run_and_check(second, device);
  EXPECT_TRUE(c.ok) << "from the cache: rel_err " << c.rel_err;

  // A corrupted entry is detected and rebuilt.
  {
    std::fstream f(entries[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(entries[0]) / 2));
    f.write("garbage!", 8);
  }
  Executable third = compile(g, device, opts);
  EXPECT_EQ(third.cache_stats().corrupt, 1u);
  c = run_and_check(third, device);
  EXPECT_TRUE(c.ok) << "after a corrupt entry: rel_err " << c.rel_err;

  // An intact entry whose binary the driver rejects is dropped and rebuilt too.
  const std::string key = entries[0].stem().string();
  rt::KernelCache cache(dir);
  const std::string junk = "anychip-ocl-bin1 this is not a program binary";
  ASSERT_TRUE(cache.store(key, std::as_bytes(std::span(junk.data(), junk.size()))));
  Executable fourth = compile(g, device, opts);
  EXPECT_EQ(fourth.cache_stats().hits, 1u);  // read back fine, then refused by load()
  c = run_and_check(fourth, device);
  EXPECT_TRUE(c.ok) << "after a rejected binary: rel_err " << c.rel_err;
  Executable fifth = compile(g, device, opts);
  c = run_and_check(fifth, device);
  EXPECT_TRUE(c.ok) << "from the rebuilt entry: rel_err " << c.rel_err;
  std::filesystem::remove_all(dir);
}

TEST(OpenClBackend, ABuildFailureCarriesTheBuildLog) {
  if (std::string why = opencl_unavailable(); !why.empty()) GTEST_SKIP() << why;
  std::unique_ptr<backends::Device> dev = opencl_backend().open("opencl:0", {});
  kernels::KernelSpec spec;
  spec.problem = kernels::AddProblem{16, DType::f32};
  spec.tiles = dev->choose_tiles(spec.problem);
  try {
    dev->compile(spec, "__kernel void add(__global float* y) { y[0] = no_such_identifier_anywhere; }");
    FAIL() << "a broken kernel compiled";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(e.code() == ErrorCode::Internal || e.code() == ErrorCode::Unsupported) << what;
    EXPECT_NE(what.find("build log"), std::string::npos) << what;
    EXPECT_NE(what.find("no_such_identifier_anywhere"), std::string::npos) << what;
    EXPECT_NE(what.find("add numel=16"), std::string::npos) << "names the kernel: " << what;
  }
}

TEST(OpenClBackend, TilesThatDoNotFitAreRefusedBySupportsNotAtLaunch) {
  if (std::string why = opencl_unavailable(); !why.empty()) GTEST_SKIP() << why;
  std::unique_ptr<backends::Device> dev = opencl_backend().open("opencl:0", {});
  kernels::KernelSpec spec;
  spec.problem = kernels::GemmFp8Problem{4096, 4096, 4096};
  spec.tiles = dev->choose_tiles(spec.problem);
  EXPECT_TRUE(dev->supports(spec).ok) << dev->supports(spec).reason;
  spec.tiles.m = spec.tiles.n = 8192;  // 8192 x 8192 f32 accumulators or staging: far past any local memory
  const backends::Support s = dev->supports(spec);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.reason.find("local memory"), std::string::npos) << s.reason;
  spec.tiles = dev->choose_tiles(spec.problem);
  spec.tiles.k = 48;  // does not divide the 128-wide scale blocks
  EXPECT_FALSE(dev->supports(spec).ok);
}

// The tile choice and the fit check need no device: targets described by hand.
kernels::opencl::Target gpu_target(std::size_t local_bytes, std::size_t max_wg) {
  kernels::opencl::Target t;
  t.wide_work_items = false;
  t.max_work_group_size = max_wg;
  t.max_work_item_sizes[0] = t.max_work_item_sizes[1] = t.max_work_item_sizes[2] = max_wg;
  t.local_mem_bytes = local_bytes;
  t.compute_units = 64;
  return t;
}

TEST(OpenClKernels, TilesShrinkToTheDevicesLocalMemoryAndWorkGroupSize) {
  const std::vector<kernels::Problem> problems = {
      kernels::GemmFp8Problem{4096, 7168, 2048},
      kernels::GemmFp8Problem{4, 7168, 2048},
      kernels::GemmProblem{300, 500, 700, DType::bf16, DType::f32},
      kernels::AttentionProblem{1, 2048, 2048, 32, 8, 128, 128, true, 0.088, DType::bf16},
      kernels::AttentionProblem{1, 1, 4096, 128, 1, 64, 64, false, 0.125, DType::f16},
      kernels::QuantizeProblem{64, 7168},
      // DeepSeek-V3's layer at a 4096-token prefill.
      kernels::RopeProblem{4096, 128, 192, 64, 10000, DType::bf16},
      kernels::SliceProblem{4096, 576, 1, 512, 64, DType::bf16},
      kernels::ConcatProblem{{4096, 128, 192}, {4096, 128, 128}, {4096, 1, 64}, 2, DType::bf16},
      kernels::MoeTopkProblem{4096, 256, 8, 8, 4},
      kernels::MoeWeightsProblem{4096, 256, 8, 2.5},
      kernels::MoePlanProblem{4096, 8, 256, 128, ir::moe_plan_rows(4096, 8, 256, 128)},
      kernels::MoeGatherProblem{4096, ir::moe_plan_rows(4096, 8, 256, 128), 7168, DType::bf16},
      kernels::GemmFp8GroupedProblem{ir::moe_plan_rows(4096, 8, 256, 128), 4096, 7168, 256, 128},
      kernels::MoeCombineProblem{4096, 8, ir::moe_plan_rows(4096, 8, 256, 128), 7168, DType::bf16}};
  kernels::opencl::Target cpu;  // one work-item per group, like PoCL
  cpu.local_mem_bytes = 32 * 1024;  // as small as some CPU runtimes report
  cpu.compute_units = 8;
  for (const kernels::opencl::Target& target : {cpu, gpu_target(48 * 1024, 1024), gpu_target(32 * 1024, 256),
                                                gpu_target(32 * 1024, 64)}) {  // 32 KiB: OpenCL 1.2's minimum
    for (const kernels::Problem& p : problems) {
      kernels::KernelSpec spec{p, kernels::opencl::choose_tiles(p, target)};
      SCOPED_TRACE(kernels::describe(spec) + (target.wide_work_items ? " wide" : " narrow") + ", local memory " +
                   std::to_string(target.local_mem_bytes));
      EXPECT_EQ(kernels::opencl::check(spec, target), "");
      EXPECT_LE(kernels::opencl::local_memory_bytes(spec, target), target.local_mem_bytes);
      const kernels::opencl::Launch l = kernels::opencl::launch(spec, target);
      EXPECT_LE(l.local[0] * l.local[1] * l.local[2], target.max_work_group_size);
      EXPECT_NE(kernels::opencl::render(spec, target).find("#define"), std::string::npos);
    }
  }
}

TEST(OpenClKernels, GroupedGemmTilesHoldOneGroupOfTheContiguousLayout) {
  kernels::opencl::Target cpu;
  cpu.local_mem_bytes = 1024 * 1024;  // PoCL's
  cpu.compute_units = 2;
  for (const kernels::opencl::Target& target : {cpu, gpu_target(48 * 1024, 1024), gpu_target(32 * 1024, 64)}) {
    for (std::int64_t align : {1, 8, 12, 16, 24, 48, 128, 384}) {
      const kernels::Problem p = kernels::GemmFp8GroupedProblem{4096, 2048, 7168, 256, align};
      kernels::KernelSpec spec{p, kernels::opencl::choose_tiles(p, target)};
      SCOPED_TRACE(kernels::describe(spec) + (target.wide_work_items ? " wide" : " narrow"));
      EXPECT_EQ(kernels::opencl::check(spec, target), "");
      EXPECT_EQ(align % spec.tiles.m, 0) << "a work-group's rows span two tiles of the layout";
      EXPECT_LE(kernels::opencl::local_memory_bytes(spec, target), target.local_mem_bytes);
      // CPU devices: decode's small alignments (and those that 16 does not divide) take the
      // few-rows kernel, all of K staged; the others the tallest tile of 16-row blocks.
      if (target.wide_work_items) {
        EXPECT_EQ(spec.tiles.k == 7168, align <= 16 || align % 16 != 0);
        if (align == 48 || align == 128) {
          EXPECT_EQ(spec.tiles.m, align);
        }
        if (align == 384) {
          EXPECT_EQ(spec.tiles.m, 192);
        }
      }
      spec.tiles.m = 2 * static_cast<int>(align);
      const std::string why = kernels::opencl::check(spec, target);
      EXPECT_NE(why.find("does not divide align=" + std::to_string(align)), std::string::npos) << why;
    }
  }
}

TEST(OpenClKernels, MlaDecodeOnA48KiBGpuIsUnsupportedWithTheReason) {
  // Dk = 576 and Dv = 512: one 16-key tile of K and V alone is 68 KiB of f32.
  const kernels::Problem mla = kernels::AttentionProblem{1, 1, 4096, 16, 1, 576, 512, false, 0.0417, DType::bf16};
  const kernels::opencl::Target gpu = gpu_target(48 * 1024, 1024);
  const kernels::KernelSpec spec{mla, kernels::opencl::choose_tiles(mla, gpu)};
  const std::string why = kernels::opencl::check(spec, gpu);
  EXPECT_NE(why.find("local memory"), std::string::npos) << why;
  EXPECT_NE(why.find("48 KiB"), std::string::npos) << why;
}

}  // namespace
