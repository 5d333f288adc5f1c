// `anychip run --report`: the page is written, a bad path is a clear error that leaves the
// table intact, and progress never reaches stdout.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

struct Result {
  int exit_code = -1;
  std::string out, err;  // stdout, stderr
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ReportCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("anychip-report-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs the command from the source tree, stdout and stderr apart; `env` goes before it.
  Result anychip(const std::string& args, const std::string& env = "") {
    static const std::string cache = (fs::temp_directory_path() / "anychip-cli-test-cache").string();
    const fs::path out = dir_ / "stdout", err = dir_ / "stderr";
    const std::string cmd = "cd " ANYCHIP_SOURCE_DIR " && ANYCHIP_CACHE_DIR=" + cache + " " + env + " " ANYCHIP_CLI " " +
                            args + " >" + out.string() + " 2>" + err.string();
    Result r;
    const int status = std::system(cmd.c_str());
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out), r.err = slurp(err);
    fs::remove(out), fs::remove(err);
    return r;
  }

  static nlohmann::json embedded_json(const std::string& html) {
    const std::string open = "<script type=\"application/json\" id=\"anychip-report-data\">";
    const std::size_t a = html.find(open);
    if (a == std::string::npos) return {};
    return nlohmann::json::parse(html.substr(a + open.size(), html.find("</script>", a) - a - open.size()));
  }

  fs::path dir_;
};

TEST_F(ReportCli, RunWritesTheReportAndSaysWhere) {
  const fs::path page = dir_ / "block.html";
  Result r = anychip("run examples/deepseek_block.acir --device cpu --check --repeats 1 --report " + page.string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("report: " + page.string()), std::string::npos) << r.out;
  const std::string html = slurp(page);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  const nlohmann::json data = embedded_json(html);
  ASSERT_EQ(data["sections"].size(), 1u);
  const nlohmann::json& run = data["sections"][0]["runs"][0];
  EXPECT_EQ(run["device"]["id"], "cpu");
  ASSERT_EQ(run["kernels"].size(), 9u);
  for (const auto& k : run["kernels"]) EXPECT_EQ(k["check"]["ok"], true) << k["label"];
  EXPECT_EQ(run["ceilings"]["compute"].size(), 0u) << "the CPU's peaks are not known: none are made up";
}

TEST_F(ReportCli, BadReportPathIsAClearErrorAfterAnIntactTable) {
  const fs::path page = dir_ / "no-such-dir" / "block.html";
  Result r = anychip("run examples/deepseek_block.acir --device cpu --check --repeats 1 --report " + page.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("graph @deepseek_block on cpu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gemm_fp8 %o"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("check on cpu: every kernel matches the float64 reference"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("report:"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("anychip: error: " + page.string() + ": cannot write the report: No such file or directory"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(page.parent_path()));
}

TEST_F(ReportCli, JsonOnStdoutStaysJsonWhileProgressGoesToStderr) {
  const fs::path page = dir_ / "block.html";
  Result r = anychip("run examples/deepseek_block.acir --device sim:npu-ue8m0 --compare sim:h800 --json --report " +
                         page.string(),
                     "ANYCHIP_PROGRESS=1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << r.out;
  EXPECT_EQ(j["report"], page.string());
  EXPECT_EQ(j["compare"].size(), 1u);
  EXPECT_NE(r.err.find("sim:npu-ue8m0 [1/1] timed run"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sim:h800 [1/1] timed run"), std::string::npos) << r.err;
  EXPECT_EQ(embedded_json(slurp(page))["sections"][0]["runs"].size(), 2u);
}

TEST_F(ReportCli, NothingOnStderrWhenItIsNotATerminal) {
  Result r = anychip("run examples/deepseek_block.acir --device cpu --repeats 1 --json", "ANYCHIP_PROGRESS=");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

}  // namespace
