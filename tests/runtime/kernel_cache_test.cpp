// The on-disk kernel cache: content addressing, atomic writes, corrupt entries.
#include "runtime/kernel_cache.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "anychip/anychip.hpp"

using anychip::rt::KernelCache;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("anychip-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

std::vector<std::byte> bytes_of(const std::string& s) {
  auto p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

TEST(KernelCache, StoredPayloadLoadsBack) {
  KernelCache cache(fresh_dir("store"));
  const std::string key = KernelCache::key({"spec", "source", "compiler"});
  EXPECT_FALSE(cache.load(key));
  ASSERT_TRUE(cache.store(key, bytes_of("binary")));
  auto got = cache.load(key);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, bytes_of("binary"));
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 1u);
}

TEST(KernelCache, KeyChangesWithEveryPartAndIsNotAConcatenation) {
  const std::string k = KernelCache::key({"a", "b", "c"});
  EXPECT_EQ(k.size(), 32u);
  EXPECT_EQ(k, KernelCache::key({"a", "b", "c"}));
  EXPECT_NE(k, KernelCache::key({"a", "b", "d"}));
  EXPECT_NE(k, KernelCache::key({"ab", "", "c"}));
  EXPECT_NE(k, KernelCache::key({"a", "bc"}));
}

// Every way a file can be damaged: truncated, a flipped payload bit, a bad header, empty.
TEST(KernelCache, CorruptEntryIsDetectedRemovedAndReportedAsMiss) {
  KernelCache cache(fresh_dir("corrupt"));
  const std::string key = KernelCache::key({"k"});
  const std::vector<std::function<void(std::string&)>> damage = {
      [](std::string& s) { s.resize(s.size() - 3); },
      [](std::string& s) { s.back() ^= 0x01; },
      [](std::string& s) { s[0] = 'X'; },
      [](std::string& s) { s.clear(); },
      [](std::string& s) { s += "trailing"; },
  };
  for (std::size_t i = 0; i < damage.size(); ++i) {
    ASSERT_TRUE(cache.store(key, bytes_of("a compiled kernel binary")));
    std::string content;
    {
      std::ifstream in(cache.path_of(key), std::ios::binary);
      content.assign(std::istreambuf_iterator<char>(in), {});
    }
    damage[i](content);
    {
      std::ofstream out(cache.path_of(key), std::ios::binary | std::ios::trunc);
      out << content;
    }
    EXPECT_FALSE(cache.load(key)) << "damage " << i;
    EXPECT_FALSE(fs::exists(cache.path_of(key))) << "damage " << i;
    EXPECT_EQ(cache.stats().corrupt, i + 1);
  }
}

TEST(KernelCache, ConcurrentWritersAndReadersNeverSeeAPartialEntry) {
  KernelCache cache(fresh_dir("threads"));
  const std::string key = KernelCache::key({"shared"});
  std::string big(1 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : big) c = static_cast<char>(rng());
  const auto payload = bytes_of(big);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        if ((t + i) % 2) {
          cache.store(key, payload);
        } else if (auto got = cache.load(key); got && *got != payload) {
          ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(cache.stats().corrupt, 0u);
  auto got = cache.load(key);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, payload);
  std::size_t leftovers = 0;
  for (auto& entry : fs::directory_iterator(cache.dir())) leftovers += entry.path().extension() != ".kernel";
  EXPECT_EQ(leftovers, 0u) << "temporary files left behind";
}

TEST(KernelCache, ConcurrentWriterProcessesLeaveOneValidEntry) {
  const fs::path dir = fresh_dir("procs");
  const std::string key = KernelCache::key({"procs"});
  const auto payload = bytes_of(std::string(300000, 'k'));
  std::vector<pid_t> children;
  for (int p = 0; p < 4; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      KernelCache c(dir);
      bool ok = true;
      for (int i = 0; i < 25; ++i) ok = c.store(key, payload) && ok;
      _exit(ok ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  KernelCache cache(dir);
  auto got = cache.load(key);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, payload);
}

TEST(KernelCache, UnwritableDirectoryCountsAFailureAndDoesNotThrow) {
  KernelCache cache("/dev/null/anychip");
  EXPECT_FALSE(cache.store(KernelCache::key({"x"}), bytes_of("y")));
  EXPECT_EQ(cache.stats().write_failures, 1u);
}

// Through the runtime: a second compile hits; a corrupt entry is rebuilt.
TEST(KernelCache, CompileUsesTheCacheAndRebuildsACorruptEntry) {
  using namespace anychip;
  const fs::path dir = fresh_dir("compile");
  ir::Graph g("g");
  auto x = g.input("x", {DType::f32, {4, 256}, std::nullopt});
  g.output(g.quantize_fp8(x));
  g.output(g.silu_mul(x));
  Device cpu = Device::open("cpu");
  CompileOptions opts;
  opts.cache_dir = dir.string();

  Executable first = compile(g, cpu, opts);
  EXPECT_EQ(first.cache_stats().misses, 2u);
  EXPECT_EQ(first.cache_stats().hits, 0u);
  Executable second = compile(g, cpu, opts);
  EXPECT_EQ(second.cache_stats().hits, 2u);

  for (auto& entry : fs::directory_iterator(dir)) {
    std::ofstream out(entry.path(), std::ios::binary | std::ios::app);
    out << "garbage";
  }
  Executable third = compile(g, cpu, opts);
  EXPECT_EQ(third.cache_stats().corrupt, 2u);
  EXPECT_EQ(third.cache_stats().hits, 0u);
  Executable fourth = compile(g, cpu, opts);
  EXPECT_EQ(fourth.cache_stats().hits, 2u) << "the corrupt entries were rebuilt";

  Stream s = cpu.create_stream();
  std::vector<Tensor> in = {cpu.upload(HostTensor::random(g.value(x).type, 3), s)};
  std::vector<Tensor> out = fourth.allocate_outputs();
  fourth.run(s, in, out);
  for (const KernelCheck& c : fourth.check_last_run(s)) EXPECT_TRUE(c.ok) << c.label << " " << c.rel_err;
}

}  // namespace
