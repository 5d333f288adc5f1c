// The HTML report: what the page holds for real runs on cpu and sim:*, escaping of hostile
// strings, the embedded JSON, the roofs, and roofline coordinates worked out by hand.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "anychip/anychip.hpp"
#include "anychip/report.hpp"

using namespace anychip;
using nlohmann::json;

namespace {

const char* const kSmallBlock = R"(graph @small {
  %x: bf16[32, 256] = input
  %w: f32[256] = input
  %wq: f8e4m3[128, 256] scaled<128x128, ue8m0> = input
  %h: bf16[32, 256] = rmsnorm(%x, %w) {eps = 1e-06}
  %hq: f8e4m3[32, 256] scaled<1x128, ue8m0> = quantize_fp8(%h) {dtype = f8e4m3, block = 1x128, scale_dtype = ue8m0}
  %y: bf16[32, 128] = gemm_fp8(%hq, %wq) {out_dtype = bf16}
  return %y
}
)";

// Runs the small block once on `device_id`, checked, and captures it for the report.
ReportRun run_small_block(const std::string& device_id) {
  ir::Graph g = ir::parse(kSmallBlock);
  Device device = Device::open(device_id);
  CompileOptions options;
  options.use_cache = false;
  Executable exe = compile(g, device, options);
  Stream stream = device.create_stream();
  std::vector<Tensor> in;
  for (std::size_t i = 0; i < g.inputs().size(); ++i)
    in.push_back(device.upload(HostTensor::random(g.value(g.inputs()[i]).type, 7 + i), stream));
  std::vector<Tensor> out = exe.allocate_outputs();
  exe.run(stream, in, out);
  std::vector<KernelCheck> checks = exe.check_last_run(stream);
  return capture_run(exe, stream, &checks);
}

json embedded_json(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"anychip-report-data\">";
  const std::size_t a = html.find(open);
  EXPECT_NE(a, std::string::npos);
  if (a == std::string::npos) return {};
  const std::size_t b = html.find("</script>", a);
  return json::parse(html.substr(a + open.size(), b - a - open.size()));
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// The <table class="kernels"> of one run.
std::string kernel_table(const std::string& html, int section, int run) {
  const std::string open = "<table class=\"kernels\" data-section=\"" + std::to_string(section) + "\" data-run=\"" +
                           std::to_string(run) + "\">";
  const std::size_t a = html.find(open);
  if (a == std::string::npos) return {};
  return html.substr(a, html.find("</table>", a) - a);
}

std::string attribute(const std::string& element, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(element, m, std::regex(" " + name + "=\"([^\"]*)\""))) return {};
  return m[1];
}

double chip_number(const json& chip, const std::string& path) {
  const json* at = &chip;
  std::stringstream parts(path);
  for (std::string key; std::getline(parts, key, '.');) at = &(*at)[key];
  return at->get<double>();
}

TEST(Report, RunsOnCpuAndSimGiveOneTableRowPerKernelAndMatchingJson) {
  Report report("small block");
  ReportSection& section = report.add_section("graph @small");
  section.runs.push_back(run_small_block("sim:npu-ue8m0"));
  section.runs.push_back(run_small_block("cpu"));
  const std::string html = html_report(report);

  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("http://"), std::string::npos) << "the page must not load anything";
  EXPECT_EQ(html.find("https://"), std::string::npos) << "the page must not load anything";
  const json data = embedded_json(html);
  ASSERT_EQ(data["sections"].size(), 1u);
  const json& runs = data["sections"][0]["runs"];
  ASSERT_EQ(runs.size(), 2u);
  for (int r = 0; r < 2; ++r) {
    const ReportRun& run = section.runs[static_cast<std::size_t>(r)];
    ASSERT_EQ(run.kernels.size(), 3u);
    EXPECT_EQ(runs[r]["device"]["id"], run.device.id);
    const std::string table = kernel_table(html, 0, r);
    EXPECT_EQ(count(table, "<tr data-k="), run.kernels.size()) << run.device.id;
    double total = 0;
    for (std::size_t k = 0; k < run.kernels.size(); ++k) {
      const json& jk = runs[r]["kernels"][k];
      EXPECT_EQ(jk["label"], run.kernels[k].label);
      EXPECT_EQ(jk["op"], run.kernels[k].op);
      EXPECT_DOUBLE_EQ(jk["seconds"].get<double>(), run.seconds[k]);
      EXPECT_DOUBLE_EQ(jk["flops"].get<double>(), run.kernels[k].flops);
      EXPECT_EQ(jk["check"]["ok"], run.checks[k].ok);
      EXPECT_DOUBLE_EQ(jk["check"]["rel_err"].get<double>(), run.checks[k].rel_err);
      EXPECT_NE(table.find(">" + run.kernels[k].label + "</td>"), std::string::npos) << run.kernels[k].label;
      total += run.seconds[k];
    }
    EXPECT_DOUBLE_EQ(runs[r]["total_seconds"].get<double>(), total);
  }
  // The simulator measures HBM traffic and pipes; the CPU neither.
  EXPECT_EQ(runs[0]["roofline_bytes"], "hbm");
  EXPECT_EQ(runs[1]["roofline_bytes"], "minimum");
  EXPECT_TRUE(runs[0]["kernels"][0]["counters"].contains("util.matrix"));
  EXPECT_NE(html.find("<svg class=\"pipes\" data-section=\"0\" data-run=\"0\""), std::string::npos);
  EXPECT_EQ(html.find("<svg class=\"pipes\" data-section=\"0\" data-run=\"1\""), std::string::npos);
  EXPECT_NE(html.find("<h3>Per kernel, side by side</h3>"), std::string::npos);
}

TEST(Report, SimRoofsAreTheChipsPeaksAndCpuHasNoneWithANote) {
  const json chip = json::parse(chip_json("npu-ue8m0"));
  const double cores = chip_number(chip, "cores"), clock = chip_number(chip, "clock_hz");
  DeviceInfo sim;
  sim.id = "sim:npu-ue8m0", sim.backend = "sim";
  const Ceilings c = device_ceilings(sim);
  ASSERT_FALSE(c.compute.empty());
  EXPECT_EQ(c.compute[0].name, "FP8 matrix");
  EXPECT_DOUBLE_EQ(c.compute[0].per_second, chip_number(chip, "core.matrix.fp8_flops_per_cycle") * cores * clock);
  for (std::size_t i = 1; i < c.compute.size(); ++i) EXPECT_LE(c.compute[i].per_second, c.compute[i - 1].per_second);
  ASSERT_EQ(c.memory.size(), 1u);
  EXPECT_EQ(c.memory[0].name, "HBM");
  EXPECT_DOUBLE_EQ(c.memory[0].per_second, chip_number(chip, "hbm_bytes_per_s"));

  DeviceInfo cpu;
  cpu.id = "cpu", cpu.backend = "cpu";
  const Ceilings none = device_ceilings(cpu);
  EXPECT_TRUE(none.compute.empty());
  EXPECT_TRUE(none.memory.empty());
  EXPECT_NE(none.note.find("cpu"), std::string::npos);

  // The page draws the sim roofs, carries them in its JSON, and says why cpu has none.
  Report report("roofs");
  ReportSection& section = report.add_section("graph @small");
  section.runs.push_back(run_small_block("sim:npu-ue8m0"));
  section.runs.push_back(run_small_block("cpu"));
  const std::string html = html_report(report);
  const json runs = embedded_json(html)["sections"][0]["runs"];
  EXPECT_DOUBLE_EQ(runs[0]["ceilings"]["compute"][0]["flops_per_s"].get<double>(), c.compute[0].per_second);
  EXPECT_DOUBLE_EQ(runs[0]["ceilings"]["memory"][0]["bytes_per_s"].get<double>(), c.memory[0].per_second);
  EXPECT_TRUE(runs[1]["ceilings"]["compute"].empty());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<line class=\"roof compute\" data-ceiling=\"FP8 matrix\"[^>]*>")));
  EXPECT_DOUBLE_EQ(std::stod(attribute(m[0], "data-flops-per-s")), c.compute[0].per_second);
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<line class=\"roof memory\" data-ceiling=\"HBM\"[^>]*>")));
  EXPECT_DOUBLE_EQ(std::stod(attribute(m[0], "data-bytes-per-s")), 1.6e12);
  EXPECT_NE(html.find("No roofs: " + none.note), std::string::npos);
}

// A run built by hand, with every number chosen so that the chart can be worked out on paper.
ReportRun hand_run() {
  ReportRun r;
  r.device.id = "sim:paper", r.device.backend = "sim", r.device.name = "a chip on paper";
  r.kernels = {{"gemm_fp8 %y", "gemm_fp8", "gemm_fp8 m=1", 2e9, 1e9}, {"reshape-like %z", "copy", "copy", 0, 4096}};
  r.seconds = {1e-3, 1e-6};
  r.counters = {{{"hbm_bytes", 5e8}, {"cycles", 1e6}, {"bound", 0.0}}, {{"hbm_bytes", 4096}, {"cycles", 1e3}, {"bound", 0.0}}};
  r.ceilings.compute = {{"Peak", 1e13}};
  r.ceilings.memory = {{"HBM", 1e12}};
  return r;
}

TEST(Report, RooflinePointAndRoofsLieWhereTheyAreComputedByHand) {
  Report report("paper");
  report.add_section("paper").runs.push_back(hand_run());
  const std::string html = html_report(report);

  // The point: 2e9 FLOP over 5e8 HBM bytes = 4 FLOP/B, at 2e9 FLOP / 1 ms = 2 TFLOP/s.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<svg class=\"roofline\"[^>]*>")));
  const std::string svg = m[0];
  // x: from 4 FLOP/B and the ridge at 1e13 / 1e12 = 10 FLOP/B: half decades with 0.15 of
  // margin give [0, 1.5], widened to two decades: [-0.5, 1.5]. y: 2e12 and 1e13 give
  // [12, 13.5], widened to [11.5, 13.5].
  EXPECT_EQ(attribute(svg, "data-log-x"), "-0.5 1.5");
  EXPECT_EQ(attribute(svg, "data-log-y"), "11.5 13.5");
  EXPECT_EQ(attribute(svg, "data-plot"), "46 10 276 210");
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<circle [^>]*>")));
  const std::string circle = m[0];
  EXPECT_DOUBLE_EQ(std::stod(attribute(circle, "data-intensity")), 4.0);
  EXPECT_DOUBLE_EQ(std::stod(attribute(circle, "data-flops-per-s")), 2e12);
  const double cx = 46 + (std::log10(4.0) + 0.5) / 2 * 276;             // 198.08
  const double cy = 10 + 210 - (std::log10(2e12) - 11.5) / 2 * 210;     // 135.89
  EXPECT_NEAR(std::stod(attribute(circle, "cx")), cx, 0.006);
  EXPECT_NEAR(std::stod(attribute(circle, "cy")), cy, 0.006);
  // One point only: the second kernel has no FLOP, and the page says so.
  EXPECT_EQ(count(html, "<circle "), 1u);
  EXPECT_NE(html.find("Not plotted (no FLOP): 2 reshape-like %z."), std::string::npos);

  // The HBM slope runs from the left edge (10^-0.5 FLOP/B at 10^11.5 FLOP/s: the bottom
  // left corner) to the ridge (10 FLOP/B, 1e13 FLOP/s); the peak from there to the right.
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<line class=\"roof memory\"[^>]*>")));
  const std::string slope = m[0];
  EXPECT_NEAR(std::stod(attribute(slope, "x1")), 46, 0.006);
  EXPECT_NEAR(std::stod(attribute(slope, "y1")), 220, 0.006);
  EXPECT_NEAR(std::stod(attribute(slope, "x2")), 46 + 1.5 / 2 * 276, 0.006);
  EXPECT_NEAR(std::stod(attribute(slope, "y2")), 220 - 1.5 / 2 * 210, 0.006);
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<line class=\"roof compute\"[^>]*>")));
  const std::string peak = m[0];
  EXPECT_NEAR(std::stod(attribute(peak, "x1")), 46 + 1.5 / 2 * 276, 0.006);
  EXPECT_NEAR(std::stod(attribute(peak, "x2")), 46 + 276, 0.006);
  EXPECT_NEAR(std::stod(attribute(peak, "y1")), 220 - 1.5 / 2 * 210, 0.006);

  const json k = embedded_json(html)["sections"][0]["runs"][0]["kernels"][0];
  EXPECT_DOUBLE_EQ(k["roofline"]["intensity"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(k["roofline"]["bytes"].get<double>(), 5e8);
  EXPECT_TRUE(embedded_json(html)["sections"][0]["runs"][0]["kernels"][1]["roofline"].is_null());
}

TEST(Report, HostileLabelsAreEscapedInHtmlAndJson) {
  const std::string label = "</script><b>bold</b><script>alert(1)</script>";
  const std::string op = "<img src=x onerror=alert(2)>";
  ReportRun r = hand_run();
  r.kernels[0].label = label;
  r.kernels[0].op = op;
  r.kernels[0].spec = "\" onmouseover=\"alert(3)";
  r.device.id = "sim:\"quoted\" & <odd>";
  r.note = "<!-- not a comment";
  Report report("<title>&", "</style><i>x</i>");
  report.add_section("<h1>section</h1>").runs.push_back(r);
  const std::string html = html_report(report);

  for (const std::string& raw : {label, op, std::string("<b>bold</b>"), std::string("onerror=alert(2)>"),
                                 std::string("\" onmouseover=\"alert(3)"), std::string("<odd>"),
                                 std::string("<!-- not"), std::string("<h1>section"), std::string("</style><i>")})
    EXPECT_EQ(html.find(raw), std::string::npos) << raw;
  // Exactly the page's own two scripts and one style, closed once each.
  EXPECT_EQ(count(html, "</script>"), 2u);
  EXPECT_EQ(count(html, "<script"), 2u);
  EXPECT_EQ(count(html, "</style>"), 1u);
  EXPECT_NE(html.find("&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;"), std::string::npos);
  // The JSON carries the strings exactly.
  const json data = embedded_json(html);
  EXPECT_EQ(data["title"], "<title>&");
  EXPECT_EQ(data["sections"][0]["title"], "<h1>section</h1>");
  EXPECT_EQ(data["sections"][0]["runs"][0]["kernels"][0]["label"], label);
  EXPECT_EQ(data["sections"][0]["runs"][0]["kernels"][0]["op"], op);
  EXPECT_EQ(data["sections"][0]["runs"][0]["device"]["id"], r.device.id);
  EXPECT_EQ(data["sections"][0]["runs"][0]["note"], r.note);
}

TEST(Report, DevicesAreMatchedByKernelLabelSideBySide) {
  ReportRun a = hand_run(), b = hand_run();
  b.device.id = "sim:other";
  std::swap(b.kernels[0], b.kernels[1]);
  std::swap(b.seconds[0], b.seconds[1]);
  std::swap(b.counters[0], b.counters[1]);
  b.seconds[1] = 2e-3;  // the GEMM takes twice as long on the other chip
  b.kernels.push_back({"only here %w", "add", "add", 10, 10});
  b.seconds.push_back(1e-6);
  b.counters.push_back({{"hbm_bytes", 10}});
  Report report("side by side");
  ReportSection& s = report.add_section("two chips");
  s.runs = {a, b};
  const std::string html = html_report(report);
  const json runs = embedded_json(html)["sections"][0]["runs"];
  // The GEMM is row 0 in both runs, wherever it is in the second one's order.
  EXPECT_EQ(runs[0]["kernels"][0]["row"], 0);
  EXPECT_EQ(runs[1]["kernels"][1]["label"], "gemm_fp8 %y");
  EXPECT_EQ(runs[1]["kernels"][1]["row"], 0);
  EXPECT_EQ(runs[1]["kernels"][2]["row"], 2);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<table class=\"compare\">[\\s\\S]*?</table>")));
  const std::string table = m[0];
  EXPECT_EQ(count(table, "<tr data-k="), 3u);
  EXPECT_NE(table.find("2.00\xC3\x97"), std::string::npos) << "the GEMM's ratio to the first device";
  EXPECT_NE(table.find("&mdash;"), std::string::npos) << "the kernel the first device did not run";
}

TEST(Report, SectionsHoldDifferentGraphsOnOnePage) {
  Report report("layer");
  report.add_section("prefill").runs.push_back(hand_run());
  report.add_section("decode").runs.push_back(hand_run());
  const std::string html = html_report(report);
  EXPECT_NE(html.find("<a href=\"#section-0\">prefill</a><a href=\"#section-1\">decode</a>"), std::string::npos);
  EXPECT_NE(kernel_table(html, 1, 0).find("gemm_fp8 %y"), std::string::npos);
  EXPECT_EQ(embedded_json(html)["sections"].size(), 2u);
}

TEST(Report, RunWhoseVectorsDisagreeIsRejectedNamingSectionAndDevice) {
  ReportRun r = hand_run();
  r.seconds.pop_back();
  Report report("bad");
  report.add_section("prefill").runs.push_back(r);
  try {
    html_report(report);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'prefill'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sim:paper"), std::string::npos) << e.what();
  }
}

TEST(Report, WritesThePageAtomicallyAndNamesTheBadPath) {
  const auto dir = std::filesystem::temp_directory_path() / ("anychip-report-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  Report report("written");
  report.add_section("s").runs.push_back(hand_run());
  const std::string path = (dir / "out.html").string();
  write_html_report(path, report);
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), html_report(report));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1) << "no temporary file is left";

  const std::string bad = (dir / "no-such-dir" / "out.html").string();
  try {
    write_html_report(bad, report);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::IoError);
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
