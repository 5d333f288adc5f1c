// What anychip.hpp and anychip.h promise about threads, held to: several threads compile
// and run graphs on ONE shared device at once, each on its own stream, and get bitwise the
// results of one thread; concurrent compiles share one kernel cache directory; the same
// through the C ABI.
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cctype>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "anychip/anychip.h"
#include "anychip/anychip.hpp"

using namespace anychip;

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 2;

struct Workload {
  std::string name;
  ir::Graph graph;
  std::vector<HostTensor> inputs;
};

// A block-scaled FP8 GEMM, a causal GQA attention, and the DeepSeek-style block of the
// examples (rmsnorm, quantize, FP8 GEMMs, attention, residual), with fixed random inputs.
std::vector<Workload> workloads(bool with_block) {
  std::vector<Workload> w;
  {
    ir::Graph g("gemm");
    auto a = g.input("a", {DType::f8e4m3, {128, 512}, ScaleLayout{kActivationBlock, DType::ue8m0}});
    auto b = g.input("b", {DType::f8e4m3, {256, 512}, ScaleLayout{kWeightBlock, DType::ue8m0}});
    g.output(g.gemm_fp8(a, b, DType::bf16, "y"));
    w.push_back({"gemm_fp8", std::move(g), {}});
  }
  {
    ir::Graph g("attention");
    auto q = g.input("q", {DType::bf16, {1, 128, 8, 64}, std::nullopt});
    auto k = g.input("k", {DType::bf16, {1, 128, 2, 64}, std::nullopt});
    auto v = g.input("v", {DType::bf16, {1, 128, 2, 64}, std::nullopt});
    g.output(g.attention(q, k, v, true));
    w.push_back({"attention", std::move(g), {}});
  }
  if (with_block)
    w.push_back({"deepseek_block", ir::parse_file(std::string(ANYCHIP_SOURCE_DIR) + "/examples/deepseek_block.acir"), {}});
  std::uint64_t seed = 7;
  for (Workload& x : w)
    for (ir::ValueId v : x.graph.inputs()) x.inputs.push_back(HostTensor::random(x.graph.value(v).type, seed++));
  return w;
}

using Bytes = std::vector<std::byte>;

// Compiles and runs one workload on `device` on a stream of its own; the outputs' bytes.
// `shared_inputs`, when given, are device tensors other threads read at the same time.
std::vector<Bytes> run(const Workload& w, const Device& device, const CompileOptions& options,
                       const std::vector<Tensor>* shared_inputs = nullptr) {
  Executable exe = compile(w.graph, device, options);
  Stream stream = device.create_stream();
  std::vector<Tensor> in;
  if (shared_inputs) in = *shared_inputs;
  else
    for (const HostTensor& h : w.inputs) in.push_back(device.upload(h, stream));
  std::vector<Tensor> out = exe.allocate_outputs();
  exe.run(stream, in, out);
  std::vector<Bytes> bytes;
  for (const Tensor& t : out) bytes.push_back(t.download(stream).data);
  return bytes;
}

std::string sanitized(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() /
             ("anychip-threads-" + sanitized(name) + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

bool available(const std::string& id) {
  for (const DeviceInfo& d : list_devices())
    if (d.id == id) return d.available;
  return false;
}

class ThreadSafety : public ::testing::TestWithParam<std::string> {};

// kThreads threads, started together, each compile and run every workload kRounds times
// (each in another order) on one device, all compiles through one fresh cache directory.
// Odd rounds read input tensors that every thread shares; even rounds upload their own.
TEST_P(ThreadSafety, ThreadsSharingADeviceGetTheResultsOfOneThread) {
  const std::string id = GetParam();
  if (!available(id)) GTEST_SKIP() << id << " is not available here";
  const bool driver_compiles = id.rfind("opencl", 0) == 0 || id.rfind("level_zero", 0) == 0 ||
                               id.rfind("cuda", 0) == 0;
  const std::vector<Workload> work = workloads(true);
  Device device = Device::open(id);
  TempDir cache(id);
  CompileOptions cached;
  cached.cache_dir = cache.path.string();
  CompileOptions uncached;
  uncached.use_cache = false;

  // One thread first: what everyone must get. GPU backends fill the cache here, since a
  // driver builds a program for seconds (PoCL does), so that the threads load binaries
  // concurrently; on cpu and sim:* the threads' compiles miss and store concurrently.
  std::vector<std::vector<Bytes>> expected;
  for (const Workload& w : work) expected.push_back(run(w, device, driver_compiles ? cached : uncached));
  std::vector<std::vector<Tensor>> shared(work.size());
  {
    Stream s = device.create_stream();
    for (std::size_t i = 0; i < work.size(); ++i)
      for (const HostTensor& h : work[i].inputs) shared[i].push_back(device.upload(h, s));
  }

  std::vector<std::string> failures(kThreads);
  std::atomic<int> runs{0};
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      try {
        for (int round = 0; round < kRounds; ++round)
          for (std::size_t j = 0; j < work.size(); ++j) {
            const std::size_t i = (j + static_cast<std::size_t>(t + round)) % work.size();
            const std::vector<Bytes> got = run(work[i], device, cached, round % 2 ? &shared[i] : nullptr);
            ++runs;
            if (got != expected[i])
              failures[static_cast<std::size_t>(t)] += work[i].name + " (round " + std::to_string(round) + ") differs; ";
          }
      } catch (const std::exception& e) {
        failures[static_cast<std::size_t>(t)] += std::string("threw: ") + e.what();
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[static_cast<std::size_t>(t)], "") << "thread " << t;
  EXPECT_EQ(runs.load(), kThreads * kRounds * static_cast<int>(work.size()));

  // The concurrent writers left whole entries and no temporary files: a fresh compile
  // finds every kernel, and nothing corrupt.
  for (const auto& entry : std::filesystem::directory_iterator(cache.path))
    EXPECT_EQ(entry.path().extension(), ".kernel") << entry.path();
  for (const Workload& w : work) {
    const CacheStats s = compile(w.graph, device, cached).cache_stats();
    EXPECT_EQ(s.misses, 0u) << w.name;
    EXPECT_EQ(s.corrupt, 0u) << w.name;
    EXPECT_GT(s.hits, 0u) << w.name;
  }
}

// GPU devices run where a driver is (skipped otherwise).
INSTANTIATE_TEST_SUITE_P(Devices, ThreadSafety,
                         ::testing::Values("cpu", "sim:npu-ue8m0", "opencl:0", "level_zero:0", "cuda:0"),
                         [](const auto& info) { return sanitized(info.param); });

// The same through the C ABI: one anychip_device shared by every thread; each thread
// parses the graph, compiles, makes its stream and tensors, runs and downloads, all at
// once; the bytes are those of the C++ API in one thread.
void run_c_abi_threads(const std::string& id) {
  const std::vector<Workload> work = workloads(false);
  CompileOptions uncached;
  uncached.use_cache = false;
  std::vector<std::vector<Bytes>> expected;
  for (const Workload& w : work) expected.push_back(run(w, Device::open(id), uncached));
  const std::size_t expected_devices = list_devices().size();
  std::vector<std::string> texts;
  for (const Workload& w : work) texts.push_back(ir::print(w.graph));

  anychip_device* device = nullptr;
  ASSERT_EQ(anychip_device_open(id.c_str(), 0, &device), ANYCHIP_OK) << anychip_last_error_message();
  std::unique_ptr<anychip_device, void (*)(anychip_device*)> owner(device, anychip_device_release);

  std::vector<std::string> failures(kThreads);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::string& failure = failures[static_cast<std::size_t>(t)];
      auto ok = [&](anychip_status s, const char* what) {
        if (s != ANYCHIP_OK) failure += std::string(what) + ": " + anychip_last_error_message() + "; ";
        return s == ANYCHIP_OK;
      };
      start.arrive_and_wait();
      size_t n_devices = 0;
      if (ok(anychip_device_count(&n_devices), "device_count") && n_devices != expected_devices)
        failure += "device_count " + std::to_string(n_devices) + "; ";
      for (int round = 0; round < kRounds; ++round)
        for (std::size_t j = 0; j < work.size(); ++j) {
          const std::size_t i = (j + static_cast<std::size_t>(t + round)) % work.size();
          anychip_graph* g = nullptr;
          anychip_executable* exe = nullptr;
          anychip_stream* s = nullptr;
          std::vector<anychip_tensor*> in(work[i].inputs.size()), out(work[i].graph.outputs().size());
          bool good = ok(anychip_graph_parse(texts[i].c_str(), nullptr, &g), "parse") &&
                      ok(anychip_compile(g, device, ANYCHIP_COMPILE_NO_CACHE, nullptr, &exe), "compile") &&
                      ok(anychip_stream_create(device, &s), "stream");
          for (std::size_t k = 0; good && k < in.size(); ++k) {
            const HostTensor& h = work[i].inputs[k];
            good = ok(anychip_executable_allocate_input(exe, k, &in[k]), "allocate") &&
                   ok(anychip_tensor_upload(in[k], s, h.data.data(), h.data.size(),
                                            h.scales.empty() ? nullptr : h.scales.data(), h.scales.size()),
                      "upload");
          }
          for (std::size_t k = 0; good && k < out.size(); ++k)
            good = ok(anychip_executable_allocate_output(exe, k, &out[k]), "allocate");
          good = good && ok(anychip_executable_run(exe, s, in.data(), in.size(), out.data(), out.size()), "run");
          for (std::size_t k = 0; good && k < out.size(); ++k) {
            Bytes got(expected[i][k].size());
            good = ok(anychip_tensor_download(out[k], s, got.data(), got.size(), nullptr, 0), "download");
            if (good && got != expected[i][k]) failure += work[i].name + " differs; ";
          }
          for (anychip_tensor* x : in) anychip_tensor_release(x);
          for (anychip_tensor* x : out) anychip_tensor_release(x);
          anychip_stream_release(s);
          anychip_executable_release(exe);
          anychip_graph_release(g);
        }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[static_cast<std::size_t>(t)], "") << "thread " << t;
}

TEST(ThreadSafetyCApi, ThreadsSharingACpuDeviceGetTheResultsOfOneThread) { run_c_abi_threads("cpu"); }
TEST(ThreadSafetyCApi, ThreadsSharingASimulatedDeviceGetTheResultsOfOneThread) { run_c_abi_threads("sim:npu-ue8m0"); }

// Each thread's last error is its own, while the others fail and succeed around it.
TEST(ThreadSafetyCApi, EveryThreadKeepsItsOwnLastError) {
  std::vector<std::string> failures(kThreads);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      const std::string id = "nope" + std::to_string(t);
      for (int i = 0; i < 200; ++i) {
        anychip_device* d = nullptr;
        if (i % 2) {
          if (anychip_device_open("cpu", 0, &d) != ANYCHIP_OK || *anychip_last_error_message() != '\0')
            failures[static_cast<std::size_t>(t)] = "a success left a message";
          anychip_device_release(d);
        } else if (anychip_device_open(id.c_str(), 0, &d) != ANYCHIP_ERROR_INVALID_ARGUMENT ||
                   std::string(anychip_last_error_message()).find("'" + id + "'") == std::string::npos) {
          failures[static_cast<std::size_t>(t)] = std::string("got another thread's message: ") + anychip_last_error_message();
        }
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[static_cast<std::size_t>(t)], "") << "thread " << t;
}

}  // namespace
