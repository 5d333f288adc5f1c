// The public runtime API on the CPU device: compile, run, events, errors.
#include <cmath>

#include <gtest/gtest.h>

#include "anychip/anychip.hpp"

using namespace anychip;

namespace {

CompileOptions no_cache() {
  CompileOptions o;
  o.use_cache = false;
  return o;
}

TEST(Runtime, DeepSeekBlockRunsAndEveryKernelMatchesTheReference) {
  ir::Graph g = ir::parse_file(std::string(ANYCHIP_SOURCE_DIR) + "/examples/deepseek_block.acir");
  Device cpu = Device::open("cpu");
  Executable exe = compile(g, cpu, no_cache());
  EXPECT_EQ(exe.kernels().size(), 9u);  // reshapes are views, not kernels
  Stream s = cpu.create_stream();
  std::vector<Tensor> in;
  for (std::size_t i = 0; i < g.inputs().size(); ++i)
    in.push_back(cpu.upload(HostTensor::random(g.value(g.inputs()[i]).type, 100 + i), s));
  std::vector<Tensor> out = exe.allocate_outputs();
  exe.run(s, in, out);
  auto seconds = exe.last_kernel_seconds(s);
  ASSERT_EQ(seconds.size(), exe.kernels().size());
  for (double t : seconds) EXPECT_GE(t, 0.0);
  for (const KernelCheck& c : exe.check_last_run(s)) EXPECT_TRUE(c.ok) << c.label << ": " << c.rel_err;
  std::vector<double> y = out[0].download(s).values();
  double sum = 0;
  for (double v : y) sum += std::abs(v);
  EXPECT_GT(sum, 0.0);
}

TEST(Runtime, OutputThatIsAViewOfAnIntermediateIsWrittenInPlace) {
  ir::Graph g("g");
  auto x = g.input("x", {DType::f32, {4, 16}, std::nullopt});
  auto y = g.silu_mul(x);
  g.output(g.reshape(y, {2, 2, 8}));
  Device cpu = Device::open("cpu");
  Executable exe = compile(g, cpu, no_cache());
  Stream s = cpu.create_stream();
  HostTensor hx = HostTensor::random(g.value(x).type, 1);
  std::vector<Tensor> in = {cpu.upload(hx, s)};
  std::vector<Tensor> out = exe.allocate_outputs();
  exe.run(s, in, out);
  EXPECT_EQ(out[0].type().shape, (Shape{2, 2, 8}));
  std::vector<double> got = out[0].download(s).values(), xv = hx.values();
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 8; ++c) {
      double gate = xv[r * 16 + c], up = xv[r * 16 + 8 + c];
      EXPECT_NEAR(got[r * 8 + c], gate / (1 + std::exp(-gate)) * up, 1e-5);
    }
}

TEST(Runtime, RunRejectsAnInputOfTheWrongType) {
  ir::Graph g("g");
  auto x = g.input("x", {DType::f32, {4, 16}, std::nullopt});
  g.output(g.silu_mul(x));
  Device cpu = Device::open("cpu");
  Executable exe = compile(g, cpu, no_cache());
  Stream s = cpu.create_stream();
  std::vector<Tensor> in = {cpu.allocate(TensorType{DType::bf16, {4, 16}, std::nullopt})};
  std::vector<Tensor> out = exe.allocate_outputs();
  try {
    exe.run(s, in, out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(std::string(e.what()), "run: input %x: expected f32[4, 16], got bf16[4, 16]");
  }
}

TEST(Runtime, UnknownDeviceNamesTheBackendsThatExist) {
  try {
    Device::open("tpu:0");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("unknown device 'tpu:0' (backends in this build: cpu"), std::string::npos)
        << e.what();
  }
}

TEST(Runtime, OutputThatIsAGraphInputIsRejected) {
  ir::Graph g("g");
  auto x = g.input("x", {DType::f32, {4, 16}, std::nullopt});
  g.output(g.reshape(x, {64}));
  try {
    compile(g, Device::open("cpu"), no_cache());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "graph @g: output %1 is a graph input (or a view of one); nothing computes it");
  }
}

TEST(Runtime, DevicesListTheCpuAsAvailable) {
  auto devices = list_devices();
  ASSERT_FALSE(devices.empty());
  EXPECT_EQ(devices[0].id, "cpu");
  EXPECT_TRUE(devices[0].available);
  EXPECT_GT(devices[0].compute_units, 0);
  EXPECT_GT(devices[0].memory_bytes, 0u);
}

TEST(Runtime, BufferCopyOutOfRangeIsAnErrorNotACrash) {
  Device cpu = Device::open("cpu");
  Stream s = cpu.create_stream();
  Buffer b = cpu.allocate(16);
  std::vector<char> host(32);
  EXPECT_THROW(b.write(s, host.data(), 32), Error);
  EXPECT_THROW(b.read(s, host.data(), 8, 12), Error);
}

// A backend casts buffers and queues to its own types, so memory of one device must never
// reach another's kernels or copies: the API says so instead.
TEST(Runtime, TensorsAndStreamsOfAnotherDeviceAreRejected) {
  ir::Graph g("g");
  g.output(g.silu_mul(g.input("x", {DType::f32, {4, 16}, std::nullopt})));
  Device cpu = Device::open("cpu");
  Device sim = Device::open("sim:tiny");
  Executable exe = compile(g, cpu, no_cache());
  Stream s = cpu.create_stream();
  std::vector<Tensor> in = {sim.allocate(TensorType{DType::f32, {4, 16}, std::nullopt})};
  std::vector<Tensor> out = exe.allocate_outputs();
  try {
    exe.run(s, in, out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(std::string(e.what()), "run: input %x is in the memory of another device than cpu's");
  }
  Stream sim_stream = sim.create_stream();
  std::vector<char> host(16);
  try {
    out[0].data().write(sim_stream, host.data(), host.size());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(std::string(e.what()), "Buffer::write: the stream belongs to another device than the buffer");
  }
  EXPECT_THROW(out[0].data().read(sim_stream, host.data(), host.size()), Error);
}

}  // namespace
