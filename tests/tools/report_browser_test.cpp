// The HTML report in a real browser: headless Chromium loads the page that
// `anychip run --compare ... --check --report` writes, runs its script, and the DOM it
// dumps must show the tables and rooflines drawn and no script error. The page's script
// counts what the browser laid out against the embedded data (see runtime/report.cpp).
// Skips when Chromium is not installed (./run installs Debian's `chromium`).
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "anychip/report.hpp"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// $ANYCHIP_CHROMIUM, else the first of the usual names on PATH.
std::string find_chromium() {
  if (const char* env = std::getenv("ANYCHIP_CHROMIUM"); env && *env) return env;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    for (const char* name : {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}) {
      const fs::path p = fs::path(dir) / name;
      if (::access(p.c_str(), X_OK) == 0) return p.string();
    }
  return {};
}

int run_shell(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class ReportBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = find_chromium();
    if (chromium_.empty()) GTEST_SKIP() << "chromium is not installed (./run installs Debian's chromium); set ANYCHIP_CHROMIUM to use another";
    dir_ = fs::temp_directory_path() / ("anychip-report-browser-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // The DOM after the page's scripts ran. Chromium as root needs --no-sandbox; a fresh
  // profile keeps runs apart; `timeout` bounds a browser that hangs.
  std::string dump_dom(const fs::path& page) {
    const fs::path dom = dir_ / "dom.html", log = dir_ / "chromium.log";
    const std::string cmd = "timeout 60 " + chromium_ +
                            " --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions"
                            " --user-data-dir=" + (dir_ / "profile").string() +
                            " --virtual-time-budget=5000 --window-size=1280,1024 --dump-dom file://" +
                            fs::absolute(page).string() + " >" + dom.string() + " 2>" + log.string();
    const int rc = run_shell(cmd);
    EXPECT_EQ(rc, 0) << cmd << "\n" << slurp(log);
    return slurp(dom);
  }

  static std::string body_attribute(const std::string& dom, const std::string& name) {
    std::smatch m;
    if (!std::regex_search(dom, m, std::regex("<body[^>]*\\s" + name + "=\"([^\"]*)\""))) return "(absent)";
    return m[1];
  }

  static std::size_t count(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
    return n;
  }

  static std::string js_errors(const std::string& dom) {
    std::smatch m;
    if (!std::regex_search(dom, m, std::regex("<pre id=\"js-errors\"[^>]*>([\\s\\S]*?)</pre>"))) return "(no #js-errors)";
    return m[1];
  }

  std::string chromium_;
  fs::path dir_;
};

TEST_F(ReportBrowser, ThreeChipComparisonRendersTablesAndRooflines) {
  const fs::path page = dir_ / "block.html";
  const std::string cache = (fs::temp_directory_path() / "anychip-cli-test-cache").string();
  const std::string cmd = "cd " ANYCHIP_SOURCE_DIR " && ANYCHIP_CACHE_DIR=" + cache + " " ANYCHIP_CLI
                          " run examples/deepseek_block.acir --device sim:npu-ue8m0 --compare sim:npu-fp32scale"
                          " --compare sim:h800 --check --report " + page.string() + " >" + (dir_ / "out.txt").string() + " 2>&1";
  ASSERT_EQ(run_shell(cmd), 0) << slurp(dir_ / "out.txt");

  const std::string dom = dump_dom(page);
  ASSERT_FALSE(dom.empty());
  EXPECT_EQ(body_attribute(dom, "data-rendered"), "ok") << js_errors(dom);
  EXPECT_EQ(body_attribute(dom, "data-js-errors"), "(absent)") << js_errors(dom);
  // 9 kernels on 3 chips: 27 rows, 27 points on 3 rooflines, 3 pipe charts.
  EXPECT_EQ(body_attribute(dom, "data-table-rows"), "27");
  EXPECT_EQ(body_attribute(dom, "data-roofline-points"), "27");
  EXPECT_EQ(body_attribute(dom, "data-rooflines"), "3");
  EXPECT_EQ(count(dom, "<g class=\"pt\""), 27u);
  EXPECT_EQ(count(dom, "<svg class=\"pipes\""), 3u);
  EXPECT_EQ(count(dom, "<table class=\"compare\">"), 1u);
  for (const char* chip : {"sim:npu-ue8m0", "sim:npu-fp32scale", "sim:h800"})
    EXPECT_NE(dom.find(std::string("<h3>Kernels on ") + chip + "</h3>"), std::string::npos) << chip;
}

// The page's own check can fail: with one table row removed it reports the mismatch.
TEST_F(ReportBrowser, AMissingTableRowIsReportedByThePage) {
  anychip::ReportRun run;
  run.device.id = "cpu", run.device.backend = "cpu";
  run.kernels = {{"gemm %a", "gemm", "gemm", 2e6, 1e4}, {"add %b", "add", "add", 1e3, 1e4}};
  run.seconds = {1e-5, 1e-6};
  anychip::Report report("two kernels");
  report.add_section("graph @g").runs.push_back(run);
  std::string html = anychip::html_report(report);
  const std::size_t row = html.find("<tr data-k=\"1\">");
  ASSERT_NE(row, std::string::npos);
  html.erase(row, html.find("</tr>", row) + 5 - row);
  const fs::path page = dir_ / "broken.html";
  std::ofstream(page) << html;

  const std::string dom = dump_dom(page);
  EXPECT_EQ(body_attribute(dom, "data-rendered"), "mismatch");
  EXPECT_NE(js_errors(dom).find("1 table rows for 2 kernels"), std::string::npos) << js_errors(dom);
}

// Labels that are HTML or script end up as text, and the script still runs.
TEST_F(ReportBrowser, HostileLabelsStayTextAndTheScriptStillRuns) {
  anychip::ReportRun run;
  run.device.id = "cpu", run.device.backend = "cpu";
  run.kernels = {{"</script><b id=\"injected\">x</b><script>throw 1</script>", "<i>op</i>", "spec", 2e6, 1e4}};
  run.seconds = {1e-5};
  anychip::Report report("<b>title</b>");
  report.add_section("</section><section>").runs.push_back(run);
  const fs::path page = dir_ / "hostile.html";
  anychip::write_html_report(page.string(), report);

  const std::string dom = dump_dom(page);
  EXPECT_EQ(body_attribute(dom, "data-rendered"), "ok") << js_errors(dom);
  EXPECT_EQ(body_attribute(dom, "data-roofline-points"), "1");
  EXPECT_EQ(dom.find("<b id=\"injected\""), std::string::npos);
  EXPECT_EQ(dom.find("<i>op</i>"), std::string::npos);
  EXPECT_NE(dom.find("&lt;/script&gt;&lt;b id=\"injected\"&gt;x&lt;/b&gt;"), std::string::npos);
}

}  // namespace
