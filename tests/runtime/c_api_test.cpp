// The C ABI (anychip/anychip.h) against the C++ API it wraps: the same failures give the
// same codes and messages, the same runs give the same bytes.
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "anychip/anychip.h"
#include "anychip/anychip.hpp"
#include "runtime/c_api_status.hpp"

using namespace anychip;

namespace {

// Owning wrappers so a failing assertion does not leak.
template <typename T, void (*Release)(T*)>
struct Handle {
  T* p = nullptr;
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { Release(p); }
  T** out() { return &p; }
  operator T*() const { return p; }
};
using CDevice = Handle<anychip_device, anychip_device_release>;
using CStream = Handle<anychip_stream, anychip_stream_release>;
using CEvent = Handle<anychip_event, anychip_event_release>;
using CTensor = Handle<anychip_tensor, anychip_tensor_release>;
using CGraph = Handle<anychip_graph, anychip_graph_release>;
using CExecutable = Handle<anychip_executable, anychip_executable_release>;

std::string take(char* s) {
  std::string copy = s ? s : "(null)";
  anychip_free(s);
  return copy;
}

#define ASSERT_OK(call) ASSERT_EQ((call), ANYCHIP_OK) << anychip_last_error_message()

// Runs the C++ call (which must throw anychip::Error) and the C call for the same failure;
// both must report `code` with one message.
void expect_same_failure(ErrorCode code, const std::function<void()>& cpp, const std::function<anychip_status()>& c) {
  std::string cpp_message;
  try {
    cpp();
    ADD_FAILURE() << "the C++ call did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    cpp_message = e.what();
  }
  const anychip_status status = c();
  EXPECT_EQ(status, capi::status_of(code));
  EXPECT_STREQ(anychip_status_name(status), std::string(error_code_name(code)).c_str());
  EXPECT_EQ(anychip_last_error_message(), cpp_message);
  EXPECT_FALSE(cpp_message.empty());
}

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }

TEST(CApi, VersionsAgreeWithTheHeaderAndTheCppLibrary) {
  EXPECT_EQ(anychip_abi_version(), static_cast<uint32_t>(ANYCHIP_ABI_VERSION));
  EXPECT_TRUE(ANYCHIP_ABI_COMPATIBLE(anychip_abi_version()));
  EXPECT_FALSE(ANYCHIP_ABI_COMPATIBLE(anychip_abi_version() + 10000));  // another major
  EXPECT_FALSE(ANYCHIP_ABI_COMPATIBLE(ANYCHIP_ABI_VERSION_MAJOR * 10000 - 1));
  EXPECT_EQ(anychip_version_string(), version());
}

TEST(CApi, EveryErrorCodeHasItsOwnStatusAndName) {
  EXPECT_STREQ(anychip_status_name(ANYCHIP_OK), "ok");
  std::vector<anychip_status> seen;
  for (std::size_t i = 0; i < capi::kErrorCodeCount; ++i) {
    const auto code = static_cast<ErrorCode>(i);
    const anychip_status s = capi::status_of(code);
    EXPECT_NE(s, ANYCHIP_OK);
    EXPECT_EQ(std::count(seen.begin(), seen.end(), s), 0) << "status " << s << " used twice";
    seen.push_back(s);
    EXPECT_STREQ(anychip_status_name(s), std::string(error_code_name(code)).c_str());
  }
  EXPECT_STREQ(anychip_status_name(static_cast<anychip_status>(capi::kErrorCodeCount + 1)), "unknown");
  // Internal is the last ErrorCode: a code added after it would have a name.
  EXPECT_EQ(error_code_name(static_cast<ErrorCode>(capi::kErrorCodeCount)), "?");
}

TEST(CApi, DtypesMirrorTheCppDtypes) {
  for (DType d : kAllDTypes) {
    const auto c = static_cast<anychip_dtype>(d);
    EXPECT_STREQ(anychip_dtype_name(c), std::string(dtype_name(d)).c_str());
    EXPECT_EQ(anychip_dtype_size(c), dtype_size(d));
  }
  EXPECT_EQ(anychip_dtype_name(static_cast<anychip_dtype>(std::size(kAllDTypes))), nullptr);
  EXPECT_EQ(anychip_dtype_size(static_cast<anychip_dtype>(-1)), 0u);
}

TEST(CApi, NoExceptionCrossesTheAbi) {
  auto status_of = [](auto thrower) {
    try {
      thrower();
    } catch (...) {
      return capi::status_of_current_exception("anychip_x");
    }
    return ANYCHIP_OK;
  };
  EXPECT_EQ(status_of([] { throw std::bad_alloc(); }), ANYCHIP_ERROR_OUT_OF_MEMORY);
  EXPECT_STREQ(anychip_last_error_message(), "anychip_x: out of memory");
  EXPECT_EQ(status_of([] { throw std::out_of_range("vector::at"); }), ANYCHIP_ERROR_INTERNAL);
  EXPECT_STREQ(anychip_last_error_message(), "anychip_x: internal error: vector::at");
  EXPECT_EQ(status_of([] { throw 42; }), ANYCHIP_ERROR_INTERNAL);
  EXPECT_STREQ(anychip_last_error_message(), "anychip_x: internal error: an exception of unknown type");
  EXPECT_EQ(status_of([] { throw Error(ErrorCode::IoError, "f: gone"); }), ANYCHIP_ERROR_IO);
  EXPECT_STREQ(anychip_last_error_message(), "f: gone");
}

TEST(CApi, ASuccessfulCallClearsTheLastErrorOfItsThreadOnly) {
  CDevice d;
  EXPECT_EQ(anychip_device_open("tpu:0", 0, d.out()), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(d.p, nullptr);  // out-parameters are written only on success
  const std::string message = anychip_last_error_message();
  EXPECT_NE(message.find("unknown device 'tpu:0'"), std::string::npos) << message;
  std::string other;
  std::thread([&] { other = anychip_last_error_message(); }).join();
  EXPECT_EQ(other, "");
  EXPECT_EQ(anychip_last_error_message(), message);
  ASSERT_OK(anychip_device_open("cpu", 0, d.out()));
  EXPECT_STREQ(anychip_last_error_message(), "");
}

// Every ErrorCode a caller can provoke, from both sides. (Internal is a bug in anychip,
// which no input provokes; NoExceptionCrossesTheAbi covers its mapping.)
TEST(CApi, EveryErrorMatchesTheCppApiInCodeAndMessage) {
  expect_same_failure(
      ErrorCode::InvalidArgument, [] { Device::open("tpu:0"); },
      [] {
        CDevice d;
        return anychip_device_open("tpu:0", 0, d.out());
      });

  // A graph whose K differs between the operands: the verifier's message, either way.
  expect_same_failure(
      ErrorCode::InvalidGraph,
      [] {
        ir::Graph g("g");
        auto a = g.input("a", {DType::f8e4m3, {64, 256}, ScaleLayout{kActivationBlock, DType::ue8m0}});
        auto b = g.input("b", {DType::f8e4m3, {128, 384}, ScaleLayout{kWeightBlock, DType::ue8m0}});
        g.gemm_fp8(a, b, DType::bf16, "y");
      },
      [] {
        CGraph g;
        const int64_t as[] = {64, 256}, bs[] = {128, 384};
        const anychip_scale_layout act{1, 128, ANYCHIP_UE8M0}, weight{128, 128, ANYCHIP_UE8M0};
        anychip_value v[3];
        EXPECT_EQ(anychip_graph_create("g", g.out()), ANYCHIP_OK);
        EXPECT_EQ(anychip_graph_add_input(g, "a", ANYCHIP_F8E4M3, as, 2, &act, &v[0]), ANYCHIP_OK);
        EXPECT_EQ(anychip_graph_add_input(g, "b", ANYCHIP_F8E4M3, bs, 2, &weight, &v[1]), ANYCHIP_OK);
        const char* attrs[] = {"out_dtype = bf16"};
        return anychip_graph_add_op(g, "gemm_fp8", v, 2, attrs, 1, "y", &v[2]);
      });

  const std::string bad_text = "graph @g {\n  %x: f32[4, 8] = input\n  return %y\n}\n";
  expect_same_failure(
      ErrorCode::ParseError, [&] { ir::parse(bad_text, "bad.acir"); },
      [&] {
        CGraph g;
        return anychip_graph_parse(bad_text.c_str(), "bad.acir", g.out());
      });

  expect_same_failure(
      ErrorCode::IoError, [] { ir::parse_file("/nonexistent/block.acir"); },
      [] {
        CGraph g;
        return anychip_graph_parse_file("/nonexistent/block.acir", g.out());
      });

  // rmsnorm needs whole rows in the scratchpad; 64K f32 columns do not fit sim:tiny's.
  const std::string rows = "graph @rows {\n  %x: f32[2, 65536] = input\n  %w: f32[65536] = input\n"
                           "  %y: f32[2, 65536] = rmsnorm(%x, %w)\n  return %y\n}\n";
  expect_same_failure(
      ErrorCode::Unsupported,
      [&] {
        CompileOptions o;
        o.use_cache = false;
        compile(ir::parse(rows), Device::open("sim:tiny"), o);
      },
      [&] {
        CGraph g;
        CDevice d;
        CExecutable e;
        EXPECT_EQ(anychip_graph_parse(rows.c_str(), nullptr, g.out()), ANYCHIP_OK);
        EXPECT_EQ(anychip_device_open("sim:tiny", 0, d.out()), ANYCHIP_OK);
        return anychip_compile(g, d, ANYCHIP_COMPILE_NO_CACHE, nullptr, e.out());
      });

  // 64 TiB of f32 on a chip of far less HBM.
  expect_same_failure(
      ErrorCode::OutOfMemory,
      [] { Device::open("sim:npu-ue8m0", {.timing_only = true}).allocate(plain(DType::f32, {1 << 22, 1 << 22})); },
      [] {
        CDevice d;
        CTensor t;
        const int64_t shape[] = {1 << 22, 1 << 22};
        EXPECT_EQ(anychip_device_open("sim:npu-ue8m0", ANYCHIP_DEVICE_TIMING_ONLY, d.out()), ANYCHIP_OK);
        return anychip_tensor_create(d, ANYCHIP_F32, shape, 2, nullptr, t.out());
      });

  // A run with an input of the wrong type.
  const std::string silu = "graph @g {\n  %x: f32[4, 16] = input\n  %y: f32[4, 8] = silu_mul(%x)\n  return %y\n}\n";
  expect_same_failure(
      ErrorCode::InvalidArgument,
      [&] {
        Device cpu = Device::open("cpu");
        Executable exe = compile(ir::parse(silu), cpu);
        Stream s = cpu.create_stream();
        std::vector<Tensor> in = {cpu.allocate(plain(DType::bf16, {4, 16}))}, out = exe.allocate_outputs();
        exe.run(s, in, out);
      },
      [&] {
        CGraph g;
        CDevice d;
        CExecutable e;
        CStream s;
        CTensor x, y;
        const int64_t shape[] = {4, 16};
        EXPECT_EQ(anychip_graph_parse(silu.c_str(), nullptr, g.out()), ANYCHIP_OK);
        EXPECT_EQ(anychip_device_open("cpu", 0, d.out()), ANYCHIP_OK);
        EXPECT_EQ(anychip_compile(g, d, 0, nullptr, e.out()), ANYCHIP_OK);
        EXPECT_EQ(anychip_stream_create(d, s.out()), ANYCHIP_OK);
        EXPECT_EQ(anychip_tensor_create(d, ANYCHIP_BF16, shape, 2, nullptr, x.out()), ANYCHIP_OK);
        EXPECT_EQ(anychip_executable_allocate_output(e, 0, y.out()), ANYCHIP_OK);
        const anychip_tensor* in[] = {x};
        const anychip_tensor* out[] = {y};
        return anychip_executable_run(e, s, in, 1, out, 1);
      });

  // A graph without outputs.
  expect_same_failure(
      ErrorCode::InvalidGraph,
      [] {
        ir::Graph g("empty");
        g.input("x", plain(DType::f32, {4}));
        compile(g, Device::open("cpu"));
      },
      [] {
        CGraph g;
        CDevice d;
        CExecutable e;
        const int64_t shape[] = {4};
        anychip_value x;
        EXPECT_EQ(anychip_graph_create("empty", g.out()), ANYCHIP_OK);
        EXPECT_EQ(anychip_graph_add_input(g, "x", ANYCHIP_F32, shape, 1, nullptr, &x), ANYCHIP_OK);
        EXPECT_EQ(anychip_device_open("cpu", 0, d.out()), ANYCHIP_OK);
        return anychip_compile(g, d, 0, nullptr, e.out());
      });
}

TEST(CApi, AnUnavailableDeviceGivesItsReasonOnBothSides) {
  for (const DeviceInfo& info : list_devices()) {
    if (info.available) continue;
    expect_same_failure(
        ErrorCode::Unavailable, [&] { Device::open(info.id); },
        [&] {
          CDevice d;
          return anychip_device_open(info.id.c_str(), 0, d.out());
        });
    return;
  }
  GTEST_SKIP() << "every device of this build is available here";
}

TEST(CApi, DeviceListIsTheCppList) {
  const std::vector<DeviceInfo> all = list_devices();
  size_t n = 0;
  ASSERT_OK(anychip_device_count(&n));
  ASSERT_EQ(n, all.size());
  for (size_t i = 0; i < n; ++i) {
    char *id = nullptr, *name = nullptr, *reason = nullptr;
    int available = -1;
    ASSERT_OK(anychip_device_info(i, &id, &name, &available, &reason));
    EXPECT_EQ(take(id), all[i].id);
    EXPECT_EQ(take(name), all[i].name);
    EXPECT_EQ(available, all[i].available ? 1 : 0);
    EXPECT_EQ(take(reason), all[i].available ? "" : all[i].unavailable_reason);
  }
  int available = -1;
  ASSERT_OK(anychip_device_info(0, nullptr, nullptr, &available, nullptr));  // NULL: not wanted
  EXPECT_EQ(anychip_device_info(n, nullptr, nullptr, nullptr, nullptr), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(anychip_last_error_message()).find("past the"), std::string::npos);
}

TEST(CApi, ReleasingNullDoesNothing) {
  anychip_device_release(nullptr);
  anychip_stream_release(nullptr);
  anychip_event_release(nullptr);
  anychip_tensor_release(nullptr);
  anychip_graph_release(nullptr);
  anychip_executable_release(nullptr);
  anychip_free(nullptr);
}

TEST(CApi, NullArgumentsAndBadFlagsAreInvalidArguments) {
  EXPECT_EQ(anychip_device_count(nullptr), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(anychip_last_error_message(), "anychip_device_count: count is NULL");
  CDevice d;
  EXPECT_EQ(anychip_device_open(nullptr, 0, d.out()), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(anychip_device_open("cpu", 4, d.out()), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(anychip_last_error_message(), "anychip_device_open: unknown flags 4");
  ASSERT_OK(anychip_device_open("cpu", 0, d.out()));
  CStream s;
  EXPECT_EQ(anychip_stream_create(d, nullptr), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(anychip_stream_synchronize(nullptr), ANYCHIP_ERROR_INVALID_ARGUMENT);
  CTensor t;
  const int64_t shape[] = {4, 0};
  EXPECT_EQ(anychip_tensor_create(d, ANYCHIP_F32, shape, 2, nullptr, t.out()), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(anychip_tensor_create(d, static_cast<anychip_dtype>(99), shape, 1, nullptr, t.out()),
            ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(anychip_last_error_message(), "anychip_tensor_create: dtype 99 is no anychip_dtype");
  const anychip_scale_layout scale{1, 128, ANYCHIP_UE8M0};
  EXPECT_EQ(anychip_tensor_create(d, ANYCHIP_F32, shape, 1, &scale, t.out()), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(t.p, nullptr);
  CGraph g;
  CExecutable e;
  ASSERT_OK(anychip_graph_create(nullptr, g.out()));
  EXPECT_EQ(anychip_compile(g, d, 2, nullptr, e.out()), ANYCHIP_ERROR_INVALID_ARGUMENT);
}

// The GEMM and attention graphs of the embedding examples, built through the ABI.
void build_gemm_and_attention(anychip_graph* g) {
  const int64_t as[] = {96, 512}, bs[] = {384, 512}, qs[] = {1, 64, 8, 64}, kvs[] = {1, 64, 2, 64};
  const anychip_scale_layout act{1, 128, ANYCHIP_UE8M0}, weight{128, 128, ANYCHIP_UE8M0};
  anychip_value a, b, y, q, k, v, o;
  ASSERT_OK(anychip_graph_add_input(g, "a", ANYCHIP_F8E4M3, as, 2, &act, &a));
  ASSERT_OK(anychip_graph_add_input(g, "b", ANYCHIP_F8E4M3, bs, 2, &weight, &b));
  ASSERT_OK(anychip_graph_add_input(g, "q", ANYCHIP_BF16, qs, 4, nullptr, &q));
  ASSERT_OK(anychip_graph_add_input(g, "k", ANYCHIP_BF16, kvs, 4, nullptr, &k));
  ASSERT_OK(anychip_graph_add_input(g, "v", ANYCHIP_BF16, kvs, 4, nullptr, &v));
  const anychip_value ab[] = {a, b}, qkv[] = {q, k, v};
  const char* gemm_attrs[] = {"out_dtype=f32"};
  const char* attention_attrs[] = {"causal=true", " scale = 0.125 "};
  ASSERT_OK(anychip_graph_add_op(g, "gemm_fp8", ab, 2, gemm_attrs, 1, "y", &y));
  ASSERT_OK(anychip_graph_add_op(g, "attention", qkv, 3, attention_attrs, 2, nullptr, &o));
  ASSERT_OK(anychip_graph_mark_output(g, y));
  ASSERT_OK(anychip_graph_mark_output(g, o));
}

ir::Graph cpp_gemm_and_attention() {
  ir::Graph g("main");
  auto a = g.input("a", {DType::f8e4m3, {96, 512}, ScaleLayout{kActivationBlock, DType::ue8m0}});
  auto b = g.input("b", {DType::f8e4m3, {384, 512}, ScaleLayout{kWeightBlock, DType::ue8m0}});
  auto q = g.input("q", plain(DType::bf16, {1, 64, 8, 64}));
  auto k = g.input("k", plain(DType::bf16, {1, 64, 2, 64}));
  auto v = g.input("v", plain(DType::bf16, {1, 64, 2, 64}));
  g.output(g.gemm_fp8(a, b, DType::f32, "y"));
  g.output(g.attention(q, k, v, true, 0.125));
  return g;
}

TEST(CApi, AGraphBuiltThroughTheAbiEqualsTheCppBuildersGraph) {
  CGraph g;
  ASSERT_OK(anychip_graph_create(nullptr, g.out()));
  build_gemm_and_attention(g);
  char* text = nullptr;
  ASSERT_OK(anychip_graph_print(g, &text));
  const std::string printed = take(text);
  EXPECT_EQ(printed, ir::print(cpp_gemm_and_attention()));
  size_t n_in = 0, n_out = 0;
  ASSERT_OK(anychip_graph_io_count(g, &n_in, &n_out));
  EXPECT_EQ(n_in, 5u);
  EXPECT_EQ(n_out, 2u);
  CGraph reparsed;
  ASSERT_OK(anychip_graph_parse(printed.c_str(), nullptr, reparsed.out()));
  ASSERT_OK(anychip_graph_print(reparsed, &text));
  EXPECT_EQ(take(text), printed);
}

TEST(CApi, AttributesAreCheckedAsTheTextFormatChecksThem) {
  CGraph g;
  const int64_t qs[] = {1, 16, 2, 32};
  anychip_value q, o;
  ASSERT_OK(anychip_graph_create(nullptr, g.out()));
  ASSERT_OK(anychip_graph_add_input(g, "q", ANYCHIP_BF16, qs, 4, nullptr, &q));
  const anychip_value qkv[] = {q, q, q};
  const char* not_bool[] = {"causal=maybe"};
  EXPECT_EQ(anychip_graph_add_op(g, "attention", qkv, 3, not_bool, 1, "o", &o), ANYCHIP_ERROR_INVALID_GRAPH);
  EXPECT_STREQ(anychip_last_error_message(), "attention %o: attribute 'causal' must be true or false, got 'maybe'");
  const char* unknown[] = {"window=4"};
  EXPECT_EQ(anychip_graph_add_op(g, "attention", qkv, 3, unknown, 1, "o", &o), ANYCHIP_ERROR_INVALID_GRAPH);
  EXPECT_STREQ(anychip_last_error_message(), "attention %o: unknown attribute 'window' (attributes: causal, scale)");
  const char* no_equals[] = {"causal"};
  EXPECT_EQ(anychip_graph_add_op(g, "attention", qkv, 3, no_equals, 1, "o", &o), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(anychip_last_error_message(), "anychip_graph_add_op: attribute 'causal' is not name=value");
  EXPECT_EQ(anychip_graph_add_op(g, "attend", qkv, 3, nullptr, 0, "o", &o), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(anychip_last_error_message()).find("unknown op 'attend' (ops: gemm_fp8, gemm, attention"),
            std::string::npos)
      << anychip_last_error_message();
  // None of that changed the graph.
  size_t n_in = 0;
  ASSERT_OK(anychip_graph_io_count(g, &n_in, nullptr));
  EXPECT_EQ(n_in, 1u);
  ASSERT_OK(anychip_graph_add_op(g, "attention", qkv, 3, nullptr, 0, "o", &o));
}

TEST(CApi, EncodeDecodeAndQuantizeAreTheCppConversions) {
  const float x[] = {1.0f, -0.3f, 500.0f, 3e-3f};
  unsigned char e4m3[4];
  ASSERT_OK(anychip_encode(ANYCHIP_F8E4M3, x, 4, e4m3));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(e4m3[i], float_to_e4m3(x[i])) << i;
  EXPECT_EQ(e4m3[2], float_to_e4m3(448.0f));  // saturates
  float back[4];
  ASSERT_OK(anychip_decode(ANYCHIP_F8E4M3, e4m3, 4, back));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(back[i], e4m3_to_float(e4m3[i]));
  uint16_t bf[4];
  ASSERT_OK(anychip_encode(ANYCHIP_BF16, x, 4, bf));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(bf[i], float_to_bf16(x[i]));
  EXPECT_EQ(anychip_encode(ANYCHIP_UE8M0, x, 4, e4m3), ANYCHIP_ERROR_INVALID_ARGUMENT);

  std::vector<float> m(3 * 256);
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = static_cast<float>((i * 37 % 101) - 50) * 0.01f;
  const anychip_scale_layout layout{1, 128, ANYCHIP_UE8M0};
  std::vector<std::uint8_t> q(m.size()), q_cpp(m.size());
  std::vector<std::byte> s(6), s_cpp(6);
  ASSERT_OK(anychip_quantize(m.data(), 3, 256, ANYCHIP_F8E4M3, &layout, q.data(), s.data()));
  quantize_blocks(m, 3, 256, kActivationBlock, DType::f8e4m3, DType::ue8m0, q_cpp, s_cpp);
  EXPECT_EQ(q, q_cpp);
  EXPECT_EQ(s, s_cpp);
  EXPECT_EQ(anychip_quantize(m.data(), 3, 256, ANYCHIP_BF16, &layout, q.data(), s.data()),
            ANYCHIP_ERROR_INVALID_ARGUMENT);
}

TEST(CApi, TensorsKnowTheirTypeAndRejectWrongSizesAndForeignStreams) {
  CDevice cpu, sim;
  ASSERT_OK(anychip_device_open("cpu", 0, cpu.out()));
  ASSERT_OK(anychip_device_open("sim:npu-ue8m0", 0, sim.out()));
  CStream s, sim_stream;
  ASSERT_OK(anychip_stream_create(cpu, s.out()));
  ASSERT_OK(anychip_stream_create(sim, sim_stream.out()));
  CTensor t;
  const int64_t shape[] = {3, 256};
  const anychip_scale_layout layout{1, 128, ANYCHIP_UE8M0};
  ASSERT_OK(anychip_tensor_create(cpu, ANYCHIP_F8E4M3, shape, 2, &layout, t.out()));
  anychip_dtype dtype;
  size_t rank = 0, data_bytes = 0, scale_bytes = 0;
  int64_t dims[2];
  int scaled = 0;
  anychip_scale_layout got{};
  ASSERT_OK(anychip_tensor_type(t, &dtype, &rank, dims, 2, &scaled, &got));
  EXPECT_EQ(dtype, ANYCHIP_F8E4M3);
  EXPECT_EQ(rank, 2u);
  EXPECT_EQ(dims[1], 256);
  EXPECT_EQ(scaled, 1);
  EXPECT_EQ(got.block_cols, 128);
  EXPECT_EQ(got.dtype, ANYCHIP_UE8M0);
  EXPECT_EQ(anychip_tensor_type(t, nullptr, nullptr, dims, 1, nullptr, nullptr), ANYCHIP_ERROR_INVALID_ARGUMENT);
  ASSERT_OK(anychip_tensor_bytes(t, &data_bytes, &scale_bytes));
  EXPECT_EQ(data_bytes, 768u);
  EXPECT_EQ(scale_bytes, 6u);
  char* text = nullptr;
  ASSERT_OK(anychip_tensor_describe(t, &text));
  EXPECT_EQ(take(text), "f8e4m3[3, 256] scaled<1x128, ue8m0>");

  std::vector<unsigned char> data(768, 0x38), scales(6, 127), back(768), back_scales(6);
  EXPECT_EQ(anychip_tensor_upload(t, s, data.data(), 767, scales.data(), 6), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(anychip_last_error_message(),
               "anychip_tensor_upload: tensor f8e4m3[3, 256] scaled<1x128, ue8m0> holds 768 data bytes, not 767");
  EXPECT_EQ(anychip_tensor_upload(t, s, data.data(), 768, nullptr, 0), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(anychip_tensor_upload(t, sim_stream, data.data(), 768, scales.data(), 6), ANYCHIP_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(anychip_last_error_message(), "anychip_tensor_upload: the stream is on sim:npu-ue8m0, the tensor on cpu");
  ASSERT_OK(anychip_tensor_upload(t, s, data.data(), 768, scales.data(), 6));
  ASSERT_OK(anychip_tensor_download(t, s, back.data(), 768, nullptr, 0));  // scales optional
  EXPECT_EQ(back, data);
  ASSERT_OK(anychip_tensor_download(t, s, back.data(), 768, back_scales.data(), 6));
  EXPECT_EQ(back_scales, scales);
}

// Runs the examples' graph through the C ABI and through the C++ API on the same inputs:
// the same kernels, the same checks, the same output bytes.
void expect_c_run_equals_cpp_run(const char* device_id) {
  SCOPED_TRACE(device_id);
  const ir::Graph cpp_graph = cpp_gemm_and_attention();
  std::vector<HostTensor> host;
  for (std::size_t i = 0; i < cpp_graph.inputs().size(); ++i)
    host.push_back(HostTensor::random(cpp_graph.value(cpp_graph.inputs()[i]).type, 40 + i));

  // C++.
  Device dev = Device::open(device_id);
  CompileOptions no_cache;
  no_cache.use_cache = false;
  Executable exe = compile(cpp_graph, dev, no_cache);
  Stream stream = dev.create_stream();
  std::vector<Tensor> in;
  for (const HostTensor& h : host) in.push_back(dev.upload(h, stream));
  std::vector<Tensor> out = exe.allocate_outputs();
  exe.run(stream, in, out);
  const std::vector<KernelCheck> cpp_checks = exe.check_last_run(stream);

  // C.
  CGraph g;
  CDevice d;
  CExecutable e;
  CStream s;
  ASSERT_OK(anychip_graph_create(nullptr, g.out()));
  build_gemm_and_attention(g);
  ASSERT_OK(anychip_device_open(device_id, 0, d.out()));
  ASSERT_OK(anychip_compile(g, d, ANYCHIP_COMPILE_NO_CACHE, nullptr, e.out()));
  ASSERT_OK(anychip_stream_create(d, s.out()));
  std::vector<std::unique_ptr<CTensor>> c_in, c_out;
  std::vector<const anychip_tensor*> in_ptrs, out_ptrs;
  for (std::size_t i = 0; i < host.size(); ++i) {
    c_in.push_back(std::make_unique<CTensor>());
    ASSERT_OK(anychip_executable_allocate_input(e, i, c_in.back()->out()));
    ASSERT_OK(anychip_tensor_upload(*c_in.back(), s, host[i].data.data(), host[i].data.size(),
                                    host[i].scales.empty() ? nullptr : host[i].scales.data(), host[i].scales.size()));
    in_ptrs.push_back(*c_in.back());
  }
  for (std::size_t i = 0; i < 2; ++i) {
    c_out.push_back(std::make_unique<CTensor>());
    ASSERT_OK(anychip_executable_allocate_output(e, i, c_out.back()->out()));
    out_ptrs.push_back(*c_out.back());
  }
  CEvent start, end;
  ASSERT_OK(anychip_event_record(s, start.out()));
  ASSERT_OK(anychip_executable_run(e, s, in_ptrs.data(), in_ptrs.size(), out_ptrs.data(), out_ptrs.size()));
  ASSERT_OK(anychip_event_record(s, end.out()));
  ASSERT_OK(anychip_stream_synchronize(s));
  double elapsed = -1;
  ASSERT_OK(anychip_event_elapsed_seconds(start, end, &elapsed));
  EXPECT_GT(elapsed, 0.0);

  size_t n_kernels = 0;
  ASSERT_OK(anychip_executable_kernel_count(e, &n_kernels));
  ASSERT_EQ(n_kernels, exe.kernels().size());
  std::vector<double> seconds(n_kernels), rel_err(n_kernels), tolerance(n_kernels);
  std::vector<int> ok(n_kernels);
  int all_ok = 0;
  ASSERT_OK(anychip_executable_last_kernel_seconds(e, s, seconds.data(), n_kernels));
  EXPECT_EQ(anychip_executable_last_kernel_seconds(e, s, seconds.data(), n_kernels + 1),
            ANYCHIP_ERROR_INVALID_ARGUMENT);
  ASSERT_OK(anychip_executable_check_last_run(e, s, n_kernels, rel_err.data(), tolerance.data(), ok.data(), &all_ok));
  EXPECT_EQ(all_ok, 1);
  for (size_t i = 0; i < n_kernels; ++i) {
    char *label = nullptr, *op = nullptr;
    double flops = 0, min_bytes = 0;
    ASSERT_OK(anychip_executable_kernel_info(e, i, &label, &op, &flops, &min_bytes));
    EXPECT_EQ(take(label), exe.kernels()[i].label);
    EXPECT_EQ(take(op), exe.kernels()[i].op);
    EXPECT_EQ(flops, exe.kernels()[i].flops);
    EXPECT_EQ(min_bytes, exe.kernels()[i].min_bytes);
    EXPECT_EQ(rel_err[i], cpp_checks[i].rel_err);
    EXPECT_EQ(tolerance[i], cpp_checks[i].tolerance);
    EXPECT_EQ(ok[i], 1);
    EXPECT_GE(seconds[i], 0.0);
  }
  for (std::size_t i = 0; i < 2; ++i) {
    const HostTensor want = out[i].download(stream);
    std::vector<std::byte> got(want.data.size());
    ASSERT_OK(anychip_tensor_download(*c_out[i], s, got.data(), got.size(), nullptr, 0));
    EXPECT_TRUE(got == want.data) << "output " << i << " differs from the C++ run";
  }
}

TEST(CApi, GemmAndAttentionRunAsInCppOnCpu) { expect_c_run_equals_cpp_run("cpu"); }
TEST(CApi, GemmAndAttentionRunAsInCppOnTheSimulator) { expect_c_run_equals_cpp_run("sim:npu-ue8m0"); }

TEST(CApi, ATracingDeviceHandsOverItsTrace) {
  const std::string text = "graph @g {\n  %x: f32[4, 256] = input\n  %y: f32[4, 128] = silu_mul(%x)\n  return %y\n}\n";
  CGraph g;
  CDevice d;
  CExecutable e;
  CStream s;
  CTensor x, y;
  ASSERT_OK(anychip_graph_parse(text.c_str(), nullptr, g.out()));
  ASSERT_OK(anychip_device_open("sim:npu-ue8m0", ANYCHIP_DEVICE_TRACE, d.out()));
  ASSERT_OK(anychip_compile(g, d, ANYCHIP_COMPILE_NO_CACHE, nullptr, e.out()));
  ASSERT_OK(anychip_stream_create(d, s.out()));
  ASSERT_OK(anychip_executable_allocate_input(e, 0, x.out()));
  ASSERT_OK(anychip_executable_allocate_output(e, 0, y.out()));
  std::vector<float> host(4 * 256, 0.5f);
  ASSERT_OK(anychip_tensor_upload(x, s, host.data(), host.size() * 4, nullptr, 0));
  const anychip_tensor* in[] = {x};
  const anychip_tensor* out[] = {y};
  ASSERT_OK(anychip_executable_run(e, s, in, 1, out, 1));
  ASSERT_OK(anychip_stream_synchronize(s));
  char* json = nullptr;
  ASSERT_OK(anychip_device_take_trace(d, &json));
  const std::string trace = take(json);
  EXPECT_NE(trace.find("traceEvents"), std::string::npos) << trace.substr(0, 200);
  ASSERT_OK(anychip_device_id(d, &json));
  EXPECT_EQ(take(json), "sim:npu-ue8m0");

  CDevice cpu;
  ASSERT_OK(anychip_device_open("cpu", ANYCHIP_DEVICE_TRACE, cpu.out()));
  ASSERT_OK(anychip_device_take_trace(cpu, &json));
  EXPECT_EQ(take(json), "");  // the CPU does not trace
}

}  // namespace
