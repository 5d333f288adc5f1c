// `anychip suite run` and `anychip suite merge` as CI runs them: exit codes, the results
// JSON, JUnit XML, baselines, shards, and the errors of bad suite files (docs/suites.md).
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Result {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  std::string all() const { return out + err; }
};

// A fresh directory per test, removed at the end.
class SuiteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("anychip-suite-test-" + std::to_string(::getpid()) + "-" + info->test_suite_name() + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name)) << text;
    return path(name);
  }
  std::string write(const std::string& name, const json& j) const { return write(name, j.dump(2)); }

  // The first available simulated device (sim:tiny preferred), or "".
  std::string sim_device() const {
    Result r = anychip("devices --json");
    json j = json::parse(r.out, nullptr, false);
    if (r.exit_code != 0 || !j.is_object() || !j.contains("devices")) return "";
    std::string found;
    for (const auto& d : j["devices"]) {
      const std::string id = d.value("id", "");
      if (id.rfind("sim:", 0) != 0 || !d.value("available", false)) continue;
      if (id == "sim:tiny") return id;
      if (found.empty()) found = id;
    }
    return found;
  }

  // The command line that runs anychip with its own kernel cache.
  static std::string cli() {
    static const std::string cache = (fs::temp_directory_path() / "anychip-suite-test-cache").string();
    return "ANYCHIP_CACHE_DIR=" + cache + " " ANYCHIP_CLI;
  }

  Result anychip(const std::string& args) const {
    const std::string err_file = path("stderr.txt");
    const std::string cmd = cli() + " " + args + " 2>" + err_file;
    Result r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
    const int status = pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = read(err_file);
    return r;
  }

  static std::string read(const std::string& file) {
    std::ifstream in(file);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  static json json_of(const std::string& text) {
    try {
      return json::parse(text);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not JSON: " << e.what() << "\n" << text;
      return json::object();
    }
  }

  fs::path dir_;
};

json tensor(const std::string& dtype, std::vector<std::int64_t> shape) {
  return {{"dtype", dtype}, {"shape", shape}};
}

json scaled(std::vector<std::int64_t> shape, const std::string& block, const std::string& scale_dtype) {
  return {{"dtype", "f8e4m3"}, {"shape", shape}, {"scale", {{"block", block}, {"dtype", scale_dtype}}}};
}

// Six small cases over the op kinds, on the given devices.
json small_suite(const std::vector<std::string>& devices) {
  json cases = json::array();
  cases.push_back({{"id", "gemm_fp8.edge.ue8m0"},
                   {"op", "gemm_fp8"},
                   {"inputs", {{"a", scaled({5, 256}, "1x128", "ue8m0")}, {"b", scaled({70, 256}, "128x128", "ue8m0")}}},
                   {"attrs", {{"out_dtype", "f32"}}}});
  cases.push_back({{"id", "gemm_fp8.fp32.bf16"},
                   {"op", "gemm_fp8"},
                   {"inputs", {{"a", scaled({16, 128}, "1x128", "f32")}, {"b", scaled({32, 128}, "128x128", "f32")}}}});
  cases.push_back({{"id", "attention.gqa.causal"},
                   {"op", "attention"},
                   {"inputs",
                    {{"q", tensor("bf16", {1, 9, 4, 32})}, {"k", tensor("bf16", {1, 20, 2, 32})},
                     {"v", tensor("bf16", {1, 20, 2, 32})}}},
                   {"attrs", {{"causal", true}}}});
  cases.push_back({{"id", "rmsnorm.f32"},
                   {"op", "rmsnorm"},
                   {"inputs", {{"x", tensor("f32", {3, 96})}, {"weight", tensor("f32", {96})}}},
                   {"max_rel_err", 1e-4}});
  cases.push_back({{"id", "quantize_fp8.ue8m0"},
                   {"op", "quantize_fp8"},
                   {"inputs", {{"x", tensor("f32", {4, 200})}}},
                   {"attrs", {{"block", "1x128"}, {"scale_dtype", "ue8m0"}}}});
  cases.push_back({{"id", "add.bf16"}, {"op", "add"}, {"inputs", {{"a", tensor("bf16", {2, 64})}, {"b", tensor("bf16", {2, 64})}}}});
  return {{"name", "small"}, {"devices", devices}, {"cycle_rel_tol", 0.02}, {"cases", cases}};
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string attr(const std::string& xml, const std::string& element, const std::string& name) {
  const std::size_t e = xml.find("<" + element + " ");
  if (e == std::string::npos) return "";
  const std::size_t end = xml.find('>', e);
  const std::size_t a = xml.find(" " + name + "=\"", e);
  if (a == std::string::npos || a > end) return "";
  const std::size_t v = a + name.size() + 3;
  return xml.substr(v, xml.find('"', v) - v);
}

// Well-formed XML: xmllint when installed, else a structural check (tags balance, every
// '&' starts an entity, no raw '<' in attribute values).
void expect_well_formed_xml(const std::string& file, const std::string& xml) {
  if (std::system("command -v xmllint >/dev/null 2>&1") == 0) {
    EXPECT_EQ(std::system(("xmllint --noout " + file).c_str()), 0) << xml;
    return;
  }
  std::vector<std::string> stack;
  for (std::size_t i = xml.find('<'); i != std::string::npos; i = xml.find('<', i + 1)) {
    const std::size_t end = xml.find('>', i);
    ASSERT_NE(end, std::string::npos);
    std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag[0] == '?') continue;
    if (tag[0] == '/') {
      ASSERT_FALSE(stack.empty()) << tag;
      EXPECT_EQ(stack.back(), tag.substr(1));
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(tag.substr(0, tag.find(' ')));
    }
    EXPECT_EQ(tag.find('<'), std::string::npos) << tag;
  }
  EXPECT_TRUE(stack.empty());
  for (std::size_t a = xml.find('&'); a != std::string::npos; a = xml.find('&', a + 1)) {
    const std::string rest = xml.substr(a, 6);
    EXPECT_TRUE(rest.rfind("&amp;", 0) == 0 || rest.rfind("&lt;", 0) == 0 || rest.rfind("&gt;", 0) == 0 ||
                rest.rfind("&quot;", 0) == 0 || rest.rfind("&apos;", 0) == 0 || rest.rfind("&#", 0) == 0)
        << rest;
  }
}

// The results without what differs between runs (times) or between a merge and a run
// (the shard it covers).
json comparable(json results) {
  results.erase("host_seconds");
  results.erase("shard");
  for (auto& r : results["results"]) r.erase("host_seconds");
  return results;
}

TEST_F(SuiteTest, SmallSuitePassesOnTheCpu) {
  const std::string suite = write("small.json", small_suite({"cpu"}));
  Result r = anychip("suite run " + suite + " --jobs 2");
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("6 runs: 6 passed, 0 failed, 0 errors, 0 skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("suite: PASSED"), std::string::npos) << r.out;
  for (const char* column : {"case", "device", "rel_err", "tolerance", "cycles", "vs base", "status"})
    EXPECT_NE(r.out.find(column), std::string::npos) << column;
  EXPECT_EQ(r.err, "") << "progress is shown on a terminal only";
}

TEST_F(SuiteTest, ProgressCounterIsShownOnATerminalOnly) {
  if (std::system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "no `script` to give the run a terminal";
  const std::string suite = write("small.json", small_suite({"cpu"}));
  // script(1) runs the command on a pseudo-terminal and copies what it writes to stdout.
  const std::string cmd = "script -qec '" + cli() + " suite run " + suite + " --json --jobs 1' /dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  pclose(p);
  EXPECT_NE(out.find("\r\033[K[1/6] "), std::string::npos) << out;
  EXPECT_NE(out.find("\r\033[K[6/6] 0 failed"), std::string::npos) << out;
}

TEST_F(SuiteTest, JsonResultsHoldEveryRunWithItsTolerance) {
  const std::string suite = write("small.json", small_suite({"cpu"}));
  Result r = anychip("suite run " + suite + " --json --jobs 2");
  ASSERT_EQ(r.exit_code, 0) << r.all();
  json j = json_of(r.out);
  EXPECT_EQ(j["format"], "anychip-suite-results");
  EXPECT_EQ(j["suite"], "small");
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_EQ(j["total"], 6);
  ASSERT_EQ(j["results"].size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    const json& x = j["results"][i];
    EXPECT_EQ(x["index"], i);
    EXPECT_EQ(x["device"], "cpu");
    EXPECT_EQ(x["status"], "passed") << x.dump();
    EXPECT_TRUE(x["numeric_ok"].get<bool>());
    EXPECT_LE(x["rel_err"].get<double>(), x["tolerance"].get<double>());
    EXPECT_TRUE(x["cycles"].is_null()) << "the cpu reports no cycles";
    EXPECT_EQ(x["cycle_check"], "not_reported");
  }
  EXPECT_EQ(j["results"][3]["tolerance"], 1e-4) << "a case's max_rel_err replaces the library's bound";
  EXPECT_EQ(j["results"][4]["tolerance"], 0.0) << "quantization is held to bit-exactness";
}

TEST_F(SuiteTest, RerunsGiveIdenticalNumbers) {
  const std::string suite = write("small.json", small_suite({"cpu"}));
  Result a = anychip("suite run " + suite + " --json --jobs 1");
  Result b = anychip("suite run " + suite + " --json --jobs 2");
  ASSERT_EQ(a.exit_code, 0) << a.all();
  ASSERT_EQ(b.exit_code, 0) << b.all();
  EXPECT_EQ(comparable(json_of(a.out)), comparable(json_of(b.out)));
}

TEST_F(SuiteTest, JunitIsWellFormedAndCountsMatch) {
  json s = small_suite({"cpu"});
  s["cases"][5]["max_rel_err"] = 0.0;  // bf16 add held to exactness: a numeric failure
  s["cases"][5]["description"] = "fails on purpose: <&\"'> must be escaped";
  const std::string suite = write("small.json", s);
  const std::string junit = path("out.xml");
  Result r = anychip("suite run " + suite + " --junit " + junit);
  ASSERT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.out.find("FAIL: rel_err"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exceeds the tolerance 0.00e+00 (the case's max_rel_err)"), std::string::npos) << r.out;
  const std::string xml = read(junit);
  expect_well_formed_xml(junit, xml);
  EXPECT_EQ(count(xml, "<testcase "), 6u);
  EXPECT_EQ(count(xml, "<testsuite "), 1u);
  EXPECT_EQ(count(xml, "<failure "), 1u);
  EXPECT_NE(xml.find("<failure type=\"numeric\" message=\"rel_err"), std::string::npos) << xml;
  EXPECT_NE(xml.find("the case&apos;s max_rel_err"), std::string::npos) << "apostrophe escaped";
  EXPECT_EQ(attr(xml, "testsuites", "tests"), "6");
  EXPECT_EQ(attr(xml, "testsuites", "failures"), "1");
  EXPECT_EQ(attr(xml, "testsuites", "skipped"), "0");
  EXPECT_EQ(attr(xml, "testsuite", "name"), "small.cpu");
  EXPECT_EQ(attr(xml, "testsuite", "tests"), "6");
  EXPECT_EQ(attr(xml, "testcase", "name"), "gemm_fp8.edge.ue8m0");
  EXPECT_EQ(attr(xml, "testcase", "classname"), "small.cpu");
}

TEST_F(SuiteTest, UnavailableDeviceIsSkippedWithItsReason) {
  Result devices = anychip("devices --json");
  ASSERT_EQ(devices.exit_code, 0);
  std::string unavailable, reason;
  const auto listed = json_of(devices.out)["devices"];  // a copy: the parsed object is a temporary
  for (const auto& d : listed)
    if (!d["available"].get<bool>()) {
      unavailable = d["id"];
      reason = d["reason"];
      break;
    }
  if (unavailable.empty()) GTEST_SKIP() << "every device built in is available here";
  const std::string suite = write("small.json", small_suite({"cpu", unavailable}));
  const std::string junit = path("out.xml");
  Result r = anychip("suite run " + suite + " --json --junit " + junit);
  ASSERT_EQ(r.exit_code, 0) << r.all();
  json j = json_of(r.out);
  EXPECT_EQ(j["summary"]["skipped"], 6);
  const std::string xml = read(junit);
  expect_well_formed_xml(junit, xml);
  EXPECT_EQ(count(xml, "<skipped message="), 6u);
  EXPECT_EQ(count(xml, "<testsuite "), 2u);
}

TEST_F(SuiteTest, ShardsPartitionTheRunsAndTheirMergeEqualsTheWholeRun) {
  json s = small_suite({"cpu"});
  s["cases"][0]["devices"] = {"cpu"};
  const std::string suite = write("small.json", s);
  Result whole = anychip("suite run " + suite + " --json");
  ASSERT_EQ(whole.exit_code, 0) << whole.all();

  std::set<std::size_t> seen;
  std::string parts;
  for (int i = 0; i < 4; ++i) {
    Result shard = anychip("suite run " + suite + " --json --jobs 1 --shard " + std::to_string(i) + "/4");
    ASSERT_EQ(shard.exit_code, 0) << shard.all();
    json j = json_of(shard.out);
    EXPECT_EQ(j["shard"]["index"], i);
    EXPECT_EQ(j["shard"]["count"], 4);
    EXPECT_EQ(j["total"], 6);
    for (const auto& x : j["results"]) {
      const std::size_t index = x["index"];
      EXPECT_EQ(index % 4, static_cast<std::size_t>(i));
      EXPECT_TRUE(seen.insert(index).second) << "run " << index << " is in two shards";
    }
    parts += ' ';
    parts += write("shard" + std::to_string(i) + ".json", shard.out);
  }
  EXPECT_EQ(seen.size(), 6u);

  Result merged = anychip("suite merge" + parts + " --json --junit " + path("merged.xml"));
  ASSERT_EQ(merged.exit_code, 0) << merged.all();
  EXPECT_EQ(comparable(json_of(merged.out)), comparable(json_of(whole.out)));
  expect_well_formed_xml(path("merged.xml"), read(path("merged.xml")));
  EXPECT_EQ(count(read(path("merged.xml")), "<testcase "), 6u);

  Result table = anychip("suite merge" + parts);
  EXPECT_EQ(table.exit_code, 0) << table.all();
  EXPECT_NE(table.out.find("6 runs: 6 passed"), std::string::npos) << table.out;
}

TEST_F(SuiteTest, MergeFailsWhenAShardFailedAndRejectsAMissingShard) {
  json s = small_suite({"cpu"});
  s["cases"][1]["max_rel_err"] = 0.0;  // run 1 fails: it lies in shard 1/2
  const std::string suite = write("small.json", s);
  Result a = anychip("suite run " + suite + " --json --shard 0/2");
  Result b = anychip("suite run " + suite + " --json --shard 1/2");
  EXPECT_EQ(a.exit_code, 0) << a.all();
  EXPECT_EQ(b.exit_code, 1) << b.all();
  const std::string fa = write("a.json", a.out), fb = write("b.json", b.out);

  Result merged = anychip("suite merge " + fa + " " + fb + " --json");
  EXPECT_EQ(merged.exit_code, 1) << merged.all();
  EXPECT_FALSE(json_of(merged.out)["ok"].get<bool>());

  Result missing = anychip("suite merge " + fa);
  EXPECT_EQ(missing.exit_code, 2) << missing.all();
  EXPECT_NE(missing.err.find("missing shard results: 1/2"), std::string::npos) << missing.err;

  Result twice = anychip("suite merge " + fa + " " + fa);
  EXPECT_EQ(twice.exit_code, 2) << twice.all();
  EXPECT_NE(twice.err.find("given twice"), std::string::npos) << twice.err;

  Result not_results = anychip("suite merge " + suite);
  EXPECT_EQ(not_results.exit_code, 2) << not_results.all();
  EXPECT_NE(not_results.err.find(suite + ": key cases: unknown key"), std::string::npos) << not_results.err;
}

// Results of every kind, as a shard would have written them: merge turns them into
// JUnit whatever devices this machine has.
TEST_F(SuiteTest, MergeWritesEveryKindOfResultToJunit) {
  auto result = [](std::size_t index, const std::string& id, const std::string& device, const std::string& status,
                   const std::string& cycle_check, const std::string& message) {
    json r = {{"index", index}, {"case", id}, {"op", "add"}, {"device", device}, {"status", status},
              {"rel_err", 1e-3}, {"tolerance", 8e-3}, {"numeric_ok", true}, {"cycles", 1200},
              {"baseline_cycles", 1000}, {"cycle_change", 0.2}, {"cycle_rel_tol", 0.02},
              {"cycle_check", cycle_check}, {"message", message}, {"host_seconds", 0.5}};
    if (status == "skipped" || status == "error")
      for (const char* k : {"rel_err", "tolerance", "numeric_ok", "cycles", "baseline_cycles", "cycle_change", "cycle_check"})
        r[k] = nullptr;
    return r;
  };
  json results = json::array();
  results.push_back(result(0, "a", "sim:x", "passed", "faster", "faster: update the baseline; 800 cycles vs the baseline 1000"));
  results.push_back(result(1, "a", "gpu:0", "skipped", "", "device unavailable: no <driver> & \"no\" 'GPU'\u0001 \u00e9"));
  results.push_back(result(2, "b", "sim:x", "failed", "regression", "cycle regression: 1200 cycles vs the baseline 1000"));
  results.push_back(result(3, "b", "gpu:0", "error", "", "Unsupported: add on gpu:0: f16 <not> supported"));
  results[0]["cycle_change"] = -0.2;
  results[2]["rel_err"] = "nan";
  results[2]["numeric_ok"] = false;
  const json report = {{"format", "anychip-suite-results"}, {"version", 1}, {"suite", "s"}, {"suite_file", "s.json"},
                       {"baseline_file", nullptr}, {"shard", {{"index", 0}, {"count", 1}}}, {"total", 4},
                       {"host_seconds", 2.0}, {"summary", json::object()}, {"ok", false}, {"results", results}};
  const std::string file = write("results.json", report);
  const std::string junit = path("out.xml");
  Result r = anychip("suite merge " + file + " --junit " + junit + " --json");
  EXPECT_EQ(r.exit_code, 1) << r.all();
  const json merged = json_of(r.out);
  EXPECT_EQ(merged["summary"], (json{{"runs", 4}, {"passed", 1}, {"failed", 1}, {"errors", 1}, {"skipped", 1},
                                     {"faster", 1}, {"no_baseline", 0}}));
  EXPECT_EQ(comparable(merged)["results"], comparable(report)["results"]) << "results survive a round trip";

  const std::string xml = read(junit);
  expect_well_formed_xml(junit, xml);
  EXPECT_EQ(attr(xml, "testsuites", "tests"), "4");
  EXPECT_EQ(attr(xml, "testsuites", "failures"), "1");
  EXPECT_EQ(attr(xml, "testsuites", "errors"), "1");
  EXPECT_EQ(attr(xml, "testsuites", "skipped"), "1");
  EXPECT_EQ(count(xml, "<testsuite "), 2u);
  EXPECT_NE(xml.find("<testsuite name=\"s.sim:x\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\""),
            std::string::npos) << xml;
  EXPECT_NE(xml.find("<testsuite name=\"s.gpu:0\" tests=\"2\" failures=\"0\" errors=\"1\" skipped=\"1\""),
            std::string::npos) << xml;
  EXPECT_NE(xml.find("<skipped message=\"device unavailable: no &lt;driver&gt; &amp; &quot;no&quot; &apos;GPU&apos;"
                     "\xEF\xBF\xBD \xC3\xA9\"/>"),
            std::string::npos) << xml;
  EXPECT_NE(xml.find("<failure type=\"numeric\" message=\"cycle regression"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<error type=\"error\" message=\"Unsupported: add on gpu:0: f16 &lt;not&gt; supported\">"),
            std::string::npos) << xml;
  EXPECT_NE(xml.find("<system-out>faster: update the baseline"), std::string::npos) << xml;
}

TEST_F(SuiteTest, UpdateBaselineWritesAFileThatMakesTheNextRunPass) {
  const std::string sim = sim_device();
  std::vector<std::string> devices = {"cpu"};
  if (!sim.empty()) devices.push_back(sim);
  const std::string suite = write("small.json", small_suite(devices));
  const std::string baseline = path("small.baseline.json");

  Result without = anychip("suite run " + suite + " --baseline " + baseline);
  EXPECT_EQ(without.exit_code, 2) << "a baseline that does not exist is an error unless it is being written";
  EXPECT_NE(without.err.find(baseline + ": cannot read"), std::string::npos) << without.err;

  Result update = anychip("suite run " + suite + " --baseline " + baseline + " --update-baseline");
  ASSERT_EQ(update.exit_code, 0) << update.all();
  json b = json_of(read(baseline));
  EXPECT_EQ(b["suite"], "small");
  ASSERT_TRUE(b["cycles"].is_object());
  EXPECT_FALSE(b["cycles"].contains("cpu")) << "the cpu reports no cycles: " << b.dump();
  if (!sim.empty()) {
    EXPECT_EQ(b["cycles"][sim].size(), 6u) << b.dump();
  }
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << "temporary file left behind";

  Result next = anychip("suite run " + suite + " --baseline " + baseline + " --require-baseline --json");
  ASSERT_EQ(next.exit_code, 0) << next.all();
  for (const auto& x : json_of(next.out)["results"]) {
    EXPECT_EQ(x["status"], "passed") << x.dump();
    if (x["device"] == sim) {
      EXPECT_EQ(x["cycle_check"], "ok") << x.dump();
      EXPECT_EQ(x["cycle_change"], 0.0) << "the simulator is deterministic";
    }
  }
}

TEST_F(SuiteTest, StricterBaselineFailsWithACycleRegressionAndLooserReportsFaster) {
  const std::string sim = sim_device();
  if (sim.empty()) GTEST_SKIP() << "no simulated device is built in yet: nothing reports cycles";
  const std::string suite = write("small.json", small_suite({sim}));
  const std::string baseline = path("b.json");
  ASSERT_EQ(anychip("suite run " + suite + " --baseline " + baseline + " --update-baseline").exit_code, 0);
  const json measured = json_of(read(baseline));

  json stricter = measured;  // the model's cycles cut by 20%: every run is 25% slower
  for (auto& [id, cycles] : stricter["cycles"][sim].items()) cycles = cycles.get<std::uint64_t>() * 8 / 10;
  write("b.json", stricter);
  const std::string junit = path("out.xml");
  Result r = anychip("suite run " + suite + " --baseline " + baseline + " --junit " + junit);
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.out.find("FAIL: cycle regression"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("+25."), std::string::npos) << r.out;
  const std::string xml = read(junit);
  expect_well_formed_xml(junit, xml);
  EXPECT_EQ(count(xml, "<failure type=\"cycles\""), 6u) << xml;

  json looser = measured;  // 20% more: every run is faster than its baseline
  for (auto& [id, cycles] : looser["cycles"][sim].items()) cycles = cycles.get<std::uint64_t>() * 12 / 10;
  write("b.json", looser);
  Result faster = anychip("suite run " + suite + " --baseline " + baseline + " --json");
  EXPECT_EQ(faster.exit_code, 0) << "faster is reported, not failed: " << faster.all();
  for (const auto& x : json_of(faster.out)["results"]) {
    EXPECT_EQ(x["cycle_check"], "faster") << x.dump();
    EXPECT_EQ(x["message"].get<std::string>().rfind("faster: update the baseline", 0), 0u) << x.dump();
  }
}

TEST_F(SuiteTest, ChipFileBesideTheSuiteIsADevice) {
  if (sim_device().empty()) GTEST_SKIP() << "no simulated device is built in";
  fs::create_directories(dir_ / "chips");
  fs::copy_file(ANYCHIP_SOURCE_DIR "/simulator/presets/tiny.json", dir_ / "chips" / "mine.json");
  json s = small_suite({"sim:chips/mine.json"});  // relative to the suite, not to the working directory
  const std::string suite = write("small.json", s);
  Result r = anychip("suite run " + suite + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.all();
  for (const auto& x : json_of(r.out)["results"]) {
    EXPECT_EQ(x["device"], "sim:chips/mine.json");
    EXPECT_TRUE(x["cycles"].is_number()) << x.dump();
  }
  s["devices"] = {"sim:chips/missing.json"};
  write("small.json", s);
  Result missing = anychip("suite run " + suite);
  EXPECT_EQ(missing.exit_code, 2) << missing.all();
  EXPECT_NE(missing.err.find(suite + ": key devices[0]: "), std::string::npos) << missing.err;
}

TEST_F(SuiteTest, BaselineEntryForADeviceWithoutCyclesFails) {
  const std::string suite = write("small.json", small_suite({"cpu"}));
  const std::string baseline = write("b.json", json{{"suite", "small"}, {"cycles", {{"cpu", {{"add.bf16", 1000}}}}}});
  Result r = anychip("suite run " + suite + " --baseline " + baseline + " --json");
  EXPECT_EQ(r.exit_code, 1) << r.all();
  json j = json_of(r.out);
  EXPECT_EQ(j["summary"]["failed"], 1);
  const json& x = j["results"][5];
  EXPECT_EQ(x["cycle_check"], "missing_counter");
  EXPECT_NE(x["message"].get<std::string>().find("cpu reported no \"cycles\" counter"), std::string::npos) << x.dump();
}

TEST_F(SuiteTest, BaselineOfAnotherSuiteOrOfARunTheSuiteLacksIsAnError) {
  const std::string suite = write("small.json", small_suite({"cpu"}));
  struct Bad {
    json baseline;
    std::string message;
  };
  const Bad bad[] = {
      {{{"suite", "other"}, {"cycles", json::object()}}, "key suite: this baseline is for suite \"other\", not \"small\""},
      {{{"suite", "small"}, {"cycles", {{"sim:npu-ue8m0", {{"add.bf16", 10}}}}}},
       "key cycles[\"sim:npu-ue8m0\"][\"add.bf16\"]: suite \"small\""},
      {{{"suite", "small"}, {"cycles", {{"cpu", {{"gone", 10}}}}}}, "key cycles.cpu.gone: suite \"small\""},
      {{{"suite", "small"}, {"cycles", {{"cpu", {{"add.bf16", -3}}}}}},
       "key cycles.cpu[\"add.bf16\"]: expected an integer >= 0, got -3"},
      {{{"suite", "small"}}, "key cycles: missing"},
  };
  for (const Bad& b : bad) {
    const std::string baseline = write("b.json", b.baseline);
    Result r = anychip("suite run " + suite + " --baseline " + baseline);
    EXPECT_EQ(r.exit_code, 2) << r.all();
    EXPECT_NE(r.err.find(baseline + ": " + b.message), std::string::npos) << r.err;
  }
  // --update-baseline drops what no longer belongs instead.
  write("b.json", json{{"suite", "small"}, {"cycles", {{"cpu", {{"gone", 10}}}}}});
  Result update = anychip("suite run " + suite + " --baseline " + path("b.json") + " --update-baseline");
  EXPECT_EQ(update.exit_code, 0) << update.all();
  EXPECT_NE(update.err.find("dropped cycles.cpu.gone"), std::string::npos) << update.err;
  EXPECT_EQ(json_of(read(path("b.json")))["cycles"], json::object());
}

TEST_F(SuiteTest, BadSuiteFilesExitWith2AndNameTheKey) {
  struct Bad {
    std::string what;
    std::function<void(json&)> edit;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {"unknown top-level key", [](json& s) { s["device"] = "cpu"; }, "key device: unknown key (allowed: name,"},
      {"missing top-level key", [](json& s) { s.erase("cycle_rel_tol"); }, "key cycle_rel_tol: missing"},
      {"wrong type", [](json& s) { s["cases"][2]["attrs"]["causal"] = "yes"; },
       "key cases[2].attrs.causal: expected a boolean, got \"yes\" (case \"attention.gqa.causal\")"},
      {"unknown op", [](json& s) { s["cases"][1]["op"] = "gemm8"; },
       "key cases[1].op: unknown op \"gemm8\" (ops: gemm_fp8, gemm,"},
      {"view op", [](json& s) { s["cases"][1]["op"] = "reshape"; }, "key cases[1].op: op reshape is a view"},
      {"unknown case key", [](json& s) { s["cases"][3]["casual"] = true; }, "key cases[3].casual: unknown key"},
      {"missing case key", [](json& s) { s["cases"][0].erase("inputs"); }, "key cases[0].inputs: missing"},
      {"unknown attribute", [](json& s) { s["cases"][0]["attrs"]["causal"] = true; },
       "key cases[0].attrs.causal: unknown attribute of gemm_fp8 (attributes: out_dtype)"},
      {"missing operand", [](json& s) { s["cases"][0]["inputs"].erase("b"); }, "key cases[0].inputs.b: missing"},
      {"unknown operand", [](json& s) { s["cases"][0]["inputs"]["c"] = s["cases"][0]["inputs"]["a"]; },
       "key cases[0].inputs.c: unknown operand of gemm_fp8 (operands: a, b)"},
      {"bad dimension", [](json& s) { s["cases"][3]["inputs"]["x"]["shape"][1] = 0; },
       "key cases[3].inputs.x.shape[1]: expected a dimension > 0, got 0"},
      {"unknown dtype", [](json& s) { s["cases"][5]["inputs"]["a"]["dtype"] = "fp4"; },
       "key cases[5].inputs.a.dtype: unknown dtype \"fp4\""},
      {"bad block", [](json& s) { s["cases"][0]["inputs"]["a"]["scale"]["block"] = "1by128"; },
       "key cases[0].inputs.a.scale.block: expected a block shape ROWSxCOLS"},
      {"rule of the op", [](json& s) { s["cases"][0]["inputs"]["b"]["shape"] = {70, 384}; },
       "key cases[0]: gemm_fp8 %out: operand b: K=384 differs from operand a's K=256 (case \"gemm_fp8.edge.ue8m0\")"},
      {"duplicate id", [](json& s) { s["cases"][4]["id"] = "add.bf16"; },
       "key cases[5].id: duplicate case id \"add.bf16\" (also cases[4])"},
      {"negative tolerance", [](json& s) { s["cases"][4]["max_rel_err"] = -1; },
       "key cases[4].max_rel_err: expected a relative error >= 0, got -1"},
      {"empty devices", [](json& s) { s["devices"] = json::array(); }, "key devices: expected at least one device"},
      {"duplicate device", [](json& s) { s["devices"] = {"cpu", "cpu"}; }, "key devices[1]: device \"cpu\" is listed twice"},
  };
  for (const Bad& b : bad) {
    json s = small_suite({"cpu"});
    b.edit(s);
    const std::string suite = write("bad.json", s);
    Result r = anychip("suite run " + suite);
    EXPECT_EQ(r.exit_code, 2) << b.what << ": " << r.all();
    EXPECT_NE(r.err.find("anychip: error: " + suite + ": " + b.message), std::string::npos) << b.what << ": " << r.err;
    EXPECT_EQ(r.out, "") << b.what;
  }
}

TEST_F(SuiteTest, MalformedFilesAndFlagsExitWith2) {
  const std::string duplicate = write("dup.json", std::string(R"({"name": "x", "devices": ["cpu"], "cycle_rel_tol": 0.02,
    "cases": [{"id": "a", "op": "add", "op": "gemm", "inputs": {}}]})"));
  Result r = anychip("suite run " + duplicate);
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find(duplicate + ": key cases[0].op: duplicate key"), std::string::npos) << r.err;

  const std::string broken = write("broken.json", std::string("{\"name\": \"x\",\n  \"devices\": [\"cpu\"\n"));
  r = anychip("suite run " + broken);
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find(broken + ": not valid JSON: "), std::string::npos) << r.err;

  r = anychip("suite run " + path("nope.json"));
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find(path("nope.json") + ": cannot read"), std::string::npos) << r.err;

  const std::string suite = write("small.json", small_suite({"cpu"}));
  for (const char* flags : {"--shard 4/4", "--shard 1", "--shard a/b", "--jobs 0", "--update-baseline"}) {
    r = anychip("suite run " + suite + " " + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << ": " << r.all();
    EXPECT_NE(r.err.find("anychip: error: --"), std::string::npos) << flags << ": " << r.err;
  }
}

TEST_F(SuiteTest, UnknownDeviceExitsWith2NamingTheKey) {
  json s = small_suite({"cpu"});
  s["cases"][2]["devices"] = {"cpu", "tpu:0"};
  const std::string suite = write("small.json", s);
  Result r = anychip("suite run " + suite);
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.err.find(suite + ": key cases[2].devices[1]: unknown device 'tpu:0'"), std::string::npos) << r.err;
}

TEST_F(SuiteTest, ShippedSuiteAndBaselineAreValid) {
  const std::string suite = ANYCHIP_SOURCE_DIR "/suites/sim_regression.json";
  const std::string baseline = ANYCHIP_SOURCE_DIR "/suites/sim_regression.baseline.json";
  // A few runs of the whole suite: the files load, agree with each other, and the
  // numerics pass. Cycle drift is the suite's own ctest entry's to report.
  Result r = anychip("suite run " + suite + " --baseline " + baseline + " --shard 0/32 --json");
  ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.all();
  json j = json_of(r.out);
  EXPECT_GE(j["total"].get<std::size_t>(), 40u * 4);
  EXPECT_EQ(j["summary"]["errors"], 0) << r.out;
  for (const auto& x : j["results"]) {
    EXPECT_NE(x["status"], "skipped") << "every device of the shipped suite is built in: " << x.dump();
    EXPECT_EQ(x["numeric_ok"], true) << x.dump();
  }
}

}  // namespace
