// The `anychip` command as a user runs it: exit codes, JSON fields, error messages.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

struct Result {
  int exit_code;
  std::string out;  // stdout and stderr together
};

Result anychip(const std::string& args) {
  static const std::string cache =
      (std::filesystem::temp_directory_path() / "anychip-cli-test-cache").string();
  const std::string cmd = "ANYCHIP_CACHE_DIR=" + cache + " " ANYCHIP_CLI " " + args + " 2>&1";
  Result r{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

nlohmann::json json_of(const Result& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << e.what() << "\n" << r.out;
    return {};
  }
}

TEST(Cli, DevicesJsonListsTheCpuAsAvailable) {
  Result r = anychip("devices --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = json_of(r);
  ASSERT_TRUE(j["devices"].is_array());
  bool cpu = false;
  for (auto& d : j["devices"]) {
    ASSERT_TRUE(d.contains("available"));
    ASSERT_TRUE(d.contains("reason"));
    if (d["id"] == "cpu") cpu = d["available"].get<bool>();
    if (!d["available"].get<bool>()) {
      EXPECT_FALSE(d["reason"].get<std::string>().empty());
    }
  }
  EXPECT_TRUE(cpu);
}

TEST(Cli, BenchGemmChecksAgainstTheReference) {
  Result r = anychip("bench gemm --device cpu --m 100 --n 300 --k 512 --out f32 --check --json --repeats 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = json_of(r);
  for (const char* key : {"device", "op", "m", "n", "k", "device_seconds", "host_seconds", "tflops", "rel_err"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["op"], "gemm_fp8");
  EXPECT_LT(j["rel_err"].get<double>(), 1e-5);
  EXPECT_GT(j["device_seconds"].get<double>(), 0.0);
}

TEST(Cli, BenchGemmWithoutCheckReportsNullRelErr) {
  Result r = anychip("bench gemm --device cpu --m 8 --n 8 --k 128 --scale-fmt fp32 --json --repeats 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(json_of(r)["rel_err"].is_null());
}

TEST(Cli, BenchAttentionChecksGqaCausal) {
  Result r = anychip(
      "bench attention --device cpu --batch 2 --heads 8 --kv-heads 2 --seq-q 33 --seq-kv 70 --head-dim 64 "
      "--causal --check --json --repeats 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = json_of(r);
  EXPECT_EQ(j["op"], "attention");
  EXPECT_LT(j["rel_err"].get<double>(), 1e-2);
}

TEST(Cli, RunChecksTheShippedDeepSeekBlock) {
  Result r = anychip("run " ANYCHIP_SOURCE_DIR "/examples/deepseek_block.acir --device cpu --check --json --repeats 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = json_of(r);
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_EQ(j["kernels"].size(), 9u);
  for (auto& k : j["kernels"]) EXPECT_TRUE(k["ok"].get<bool>()) << k.dump();
}

TEST(Cli, BadKIsAClearErrorNotACrash) {
  Result r = anychip("bench gemm --device cpu --m 4 --n 4 --k 1000");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("gemm_fp8 %d: operand a: K=1000 is not a multiple of 128"), std::string::npos) << r.out;
}

TEST(Cli, UnknownDeviceIsAClearError) {
  Result r = anychip("bench gemm --device tpu:0 --m 4 --n 4 --k 128");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("unknown device 'tpu:0'"), std::string::npos) << r.out;
}

TEST(Cli, ParseErrorNamesFileLineColumn) {
  const auto path = std::filesystem::temp_directory_path() / "anychip-cli-bad.acir";
  {
    FILE* f = fopen(path.c_str(), "w");
    fputs("graph @g {\n  %x: f32[4, 8] = input\n  %y = add(%x, %nope)\n  return %y\n}\n", f);
    fclose(f);
  }
  Result r = anychip("run " + path.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find(path.string() + ":3:16: %nope is not defined"), std::string::npos) << r.out;
}

TEST(Cli, UsageErrorExitsWithCode2Family) {
  Result r = anychip("bench gemm --m 4");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--n is required"), std::string::npos) << r.out;
}

}  // namespace

namespace {

TEST(Cli, SimBenchGemmReportsCyclesAndMatchesTheReference) {
  const std::string cmd = "bench gemm --device sim:npu-ue8m0 --m 256 --n 384 --k 512 --out f32 --check --json";
  Result a = anychip(cmd), b = anychip(cmd);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  ASSERT_EQ(b.exit_code, 0) << b.out;
  auto ja = json_of(a), jb = json_of(b);
  EXPECT_LT(ja["rel_err"].get<double>(), 1e-5);
  ASSERT_TRUE(ja.contains("cycles"));
  EXPECT_GT(ja["cycles"].get<double>(), 0);
  EXPECT_EQ(ja["cycles"], jb["cycles"]) << "simulated cycles must be deterministic";
  for (const char* key : {"utilization", "hbm_bytes", "bound", "device_seconds", "tflops"})
    EXPECT_TRUE(ja.contains(key)) << key;
}

TEST(Cli, TimingOnlySimulationOfADeepSeekGemm) {
  Result r = anychip("bench gemm --device sim:h800 --m 4096 --n 7168 --k 16384 --no-data --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = json_of(r);
  EXPECT_GT(j["cycles"].get<double>(), 0);
  EXPECT_TRUE(j["rel_err"].is_null());
  EXPECT_EQ(j["bound"], "compute");
}

TEST(Cli, NoDataWithCheckIsRejected) {
  Result r = anychip("bench gemm --device sim:tiny --m 8 --n 8 --k 128 --no-data --check");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("--check needs the data"), std::string::npos) << r.out;
}

TEST(Cli, ChipListAndShowPrintValidatedDescriptions) {
  Result list = anychip("chip list --json");
  ASSERT_EQ(list.exit_code, 0) << list.out;
  std::set<std::string> names;
  const auto chips = json_of(list)["chips"];
  for (auto& c : chips) names.insert(c["name"].get<std::string>());
  for (const char* preset : {"npu-ue8m0", "npu-fp32scale", "h800", "tiny"}) EXPECT_TRUE(names.count(preset)) << preset;
  Result show = anychip("chip show h800");
  ASSERT_EQ(show.exit_code, 0) << show.out;
  EXPECT_EQ(json_of(show)["cores"], 132);
}

TEST(Cli, ChipFileWithAnUnknownKeyIsRejectedNamingTheKey) {
  Result show = anychip("chip show h800");
  auto j = json_of(show);
  j["core"]["dma"]["bytes_per_clock"] = 64;  // not a key the model reads
  const auto path = std::filesystem::temp_directory_path() / "anychip-cli-bad-chip.json";
  {
    FILE* f = fopen(path.c_str(), "w");
    fputs(j.dump(2).c_str(), f);
    fclose(f);
  }
  Result r = anychip("chip show " + path.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("core.dma.bytes_per_clock"), std::string::npos) << r.out;
}

TEST(Cli, RunWritesATraceThatParses) {
  const auto path = std::filesystem::temp_directory_path() / "anychip-cli-trace.json";
  std::filesystem::remove(path);
  Result r = anychip("run " ANYCHIP_SOURCE_DIR "/examples/deepseek_block.acir --device sim:tiny --trace " + path.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  FILE* f = fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  auto trace = nlohmann::json::parse(f);
  fclose(f);
  EXPECT_FALSE(trace["traceEvents"].empty());
}

TEST(Cli, EmitPrintsTheTileProgramForASimTarget) {
  Result r = anychip("emit --target sim:npu-ue8m0 --op gemm_fp8 --m 256 --n 384 --k 512");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("mma"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("load"), std::string::npos) << r.out;
}

TEST(Cli, EmitPrintsEveryKernelOfAGraph) {
  Result r = anychip(std::string("emit --target sim:npu-ue8m0 --graph ") + ANYCHIP_SOURCE_DIR +
                     "/examples/deepseek_moe_prefill.acir");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* kernel : {"// moe_topk %", "// moe_plan %", "// gemm_fp8_grouped %", "// moe_combine %"})
    EXPECT_NE(r.out.find(kernel), std::string::npos) << kernel;
  Result op = anychip("emit --target sim:npu-ue8m0 --op moe_plan --m 4 --n 16");
  EXPECT_EQ(op.exit_code, 1);
  EXPECT_NE(op.out.find("write the graph in a .acir file (emit --graph FILE)"), std::string::npos) << op.out;
}

TEST(Cli, ConformanceOnOneDeviceReportsEveryCase) {
  Result r = anychip("conformance --device cpu --filter add/ --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = json_of(r);
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_EQ(j["devices"][0]["results"].size(), 3u);
}

}  // namespace
