// The HTML report: tables and SVG charts rendered here, so the page reads and prints
// without JavaScript; the script only highlights a kernel across tables and charts and
// checks that what the browser drew matches the embedded data.
#include "anychip/report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "simulator/chip.hpp"

namespace anychip {
namespace {

using nlohmann::json;

// ---- text ---------------------------------------------------------------------------

// Escapes text for HTML element content and quoted attribute values alike.
std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string printf_string(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// A number for a data-* attribute or an SVG coordinate: round-trips, no locale.
std::string attr_num(double v) { return printf_string("%.17g", v); }
std::string px(double v) { return printf_string("%.2f", v); }

// Three significant digits, more for numbers of 1000 and up: 1234 -> "1234", 12.34 -> "12.3",
// 0.01234 -> "0.0123". Tables put the numbers of one column in one unit (see Unit).
std::string digits(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : "inf";
  const double a = std::fabs(v);
  if (a >= 100 || a == 0) return printf_string("%.0f", v);
  if (a >= 10) return printf_string("%.1f", v);
  if (a >= 1) return printf_string("%.2f", v);
  return printf_string("%#.3g", v);  // 0.2999 -> "0.300", as precise as its neighbours
}

std::string sci(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : "inf";
  if (v == 0) return "0";
  return printf_string("%.2e", v);
}

// An SI prefix for a column of values, chosen from its largest value.
struct Unit {
  double scale = 1;
  std::string prefix;
};

Unit unit_for(double max_value) {
  static const char* prefixes[] = {"p", "n", "\xC2\xB5", "m", "", "k", "M", "G", "T", "P", "E"};
  if (!(max_value > 0) || !std::isfinite(max_value)) return {};
  int e = static_cast<int>(std::floor(std::log10(max_value) / 3));
  e = std::clamp(e, -4, 6);
  return {std::pow(1000.0, e), prefixes[e + 4]};
}

std::string with_unit(double v, const std::string& unit) {
  Unit u = unit_for(std::fabs(v));
  return digits(v / u.scale) + "\xC2\xA0" + u.prefix + unit;
}

// ---- what the page shows of each kernel ---------------------------------------------

const char* const kPipes[] = {"dma_in", "matrix", "vector", "dma_out"};
const char* const kPipeColors[] = {"#4e79a7", "#e15759", "#59a14f", "#f28e2b"};
// Tableau 20, the strong half first: a DeepSeek layer has some 20 ops.
const char* const kOpColors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#499894", "#b07aa1", "#b6992d",
                                 "#d37295", "#9d7660", "#79706e", "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a",
                                 "#86bcb6", "#d4a6c8", "#f1ce63", "#fabfd2", "#d7b5a6", "#bab0ac"};

struct KernelView {
  const KernelInfo* info = nullptr;
  double seconds = 0;
  const std::map<std::string, double>* counters = nullptr;
  const KernelCheck* check = nullptr;
  std::size_t key = 0;  // the kernel's row in its section (matches it across devices)
  double flops_per_s = 0, bytes_per_s = 0, share = 0;
  std::optional<double> hbm_bytes;
  std::string bound;  // "compute", "memory", or "" when the device does not say
  // The roofline point, when the kernel has FLOP, bytes and time.
  bool plotted = false;
  double roof_bytes = 0, intensity = 0;
  std::string unplotted_reason;

  double counter(const std::string& name) const {
    auto it = counters->find(name);
    return it == counters->end() ? 0.0 : it->second;
  }
  bool has(const std::string& name) const { return counters->count(name) != 0; }
};

struct RunView {
  const ReportRun* run = nullptr;
  std::size_t index = 0;
  std::vector<KernelView> kernels;
  double total = 0;
  bool simulated = false;   // the device reports cycles and pipe utilization
  bool hbm_traffic = false; // roofline bytes are measured HBM traffic, not the minimum
  bool checked = false;
  std::size_t failed = 0;
};

struct SectionView {
  const ReportSection* section = nullptr;
  std::size_t index = 0;
  std::vector<RunView> runs;
  std::vector<std::string> keys;  // kernel rows, matched across runs by label
  // Shared roofline axes (log10 bounds), so that the devices' charts compare point by point.
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool has_roofline = false;
};

const std::map<std::string, double> kNoCounters;

void check_lengths(const ReportSection& s, const ReportRun& r) {
  auto fail = [&](const std::string& what, std::size_t n) {
    throw Error(ErrorCode::InvalidArgument,
                "report section '" + s.title + "', run on " + r.device.id + ": " + std::to_string(r.kernels.size()) +
                    " kernels but " + std::to_string(n) + " " + what);
  };
  if (r.seconds.size() != r.kernels.size()) fail("times (seconds)", r.seconds.size());
  if (!r.counters.empty() && r.counters.size() != r.kernels.size()) fail("counter sets", r.counters.size());
  if (!r.checks.empty() && r.checks.size() != r.kernels.size()) fail("checks", r.checks.size());
}

SectionView view_section(const ReportSection& s, std::size_t index) {
  SectionView sv;
  sv.section = &s;
  sv.index = index;
  std::map<std::string, std::size_t> key_of;
  for (std::size_t r = 0; r < s.runs.size(); ++r) {
    const ReportRun& run = s.runs[r];
    check_lengths(s, run);
    RunView rv;
    rv.run = &run;
    rv.index = r;
    rv.checked = !run.checks.empty();
    rv.hbm_traffic = !run.counters.empty() &&
                     std::all_of(run.counters.begin(), run.counters.end(),
                                 [](const auto& c) { return c.count("hbm_bytes") != 0; });
    std::map<std::string, int> seen;
    for (std::size_t k = 0; k < run.kernels.size(); ++k) {
      KernelView kv;
      kv.info = &run.kernels[k];
      kv.seconds = run.seconds[k];
      kv.counters = run.counters.empty() ? &kNoCounters : &run.counters[k];
      kv.check = rv.checked ? &run.checks[k] : nullptr;
      // The n-th kernel of a label in one run matches the n-th of that label in another.
      const int n = seen[kv.info->label]++;
      const std::string key = n == 0 ? kv.info->label : kv.info->label + " #" + std::to_string(n + 1);
      auto [it, added] = key_of.emplace(key, sv.keys.size());
      if (added) sv.keys.push_back(key);
      kv.key = it->second;
      rv.total += kv.seconds;
      rv.simulated = rv.simulated || kv.has("cycles");
      if (kv.has("bound")) kv.bound = kv.counter("bound") >= 0.5 ? "compute" : "memory";
      if (kv.has("hbm_bytes")) kv.hbm_bytes = kv.counter("hbm_bytes");
      if (kv.check && !kv.check->ok) ++rv.failed;
      rv.kernels.push_back(std::move(kv));
    }
    for (KernelView& kv : rv.kernels) {
      const double t = kv.seconds;
      kv.flops_per_s = t > 0 ? kv.info->flops / t : 0;
      kv.bytes_per_s = t > 0 ? kv.info->min_bytes / t : 0;
      kv.share = rv.total > 0 ? t / rv.total : 0;
      kv.roof_bytes = rv.hbm_traffic ? *kv.hbm_bytes : kv.info->min_bytes;
      if (!(t > 0)) kv.unplotted_reason = "no time";
      else if (!(kv.info->flops > 0)) kv.unplotted_reason = "no FLOP";
      else if (!(kv.roof_bytes > 0)) kv.unplotted_reason = rv.hbm_traffic ? "no HBM traffic" : "no bytes";
      kv.plotted = kv.unplotted_reason.empty();
      if (kv.plotted) kv.intensity = kv.info->flops / kv.roof_bytes;
    }
    sv.runs.push_back(std::move(rv));
  }

  // Axes: half decades around every point and every roof, at least two decades each.
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  auto take_x = [&](double v) { xmin = std::min(xmin, v), xmax = std::max(xmax, v); };
  auto take_y = [&](double v) { ymin = std::min(ymin, v), ymax = std::max(ymax, v); };
  for (const RunView& rv : sv.runs) {
    for (const KernelView& kv : rv.kernels)
      if (kv.plotted) take_x(kv.intensity), take_y(kv.flops_per_s), sv.has_roofline = true;
    for (const Ceiling& c : rv.run->ceilings.compute) {
      take_y(c.per_second);
      for (const Ceiling& m : rv.run->ceilings.memory) take_x(c.per_second / m.per_second);
    }
  }
  if (sv.has_roofline) {
    auto below = [](double v) { return std::floor((std::log10(v) - 0.15) * 2) / 2; };
    auto above = [](double v) { return std::ceil((std::log10(v) + 0.15) * 2) / 2; };
    sv.x0 = below(xmin), sv.x1 = above(xmax), sv.y0 = below(ymin), sv.y1 = above(ymax);
    if (sv.x1 - sv.x0 < 2) sv.x0 = sv.x1 - 2;
    if (sv.y1 - sv.y0 < 2) sv.y0 = sv.y1 - 2;
  }
  return sv;
}

// ---- the embedded data --------------------------------------------------------------

json device_json(const DeviceInfo& d) {
  return {{"id", d.id}, {"name", d.name}, {"backend", d.backend}, {"arch", d.arch}, {"compute_units", d.compute_units}};
}

json run_json(const RunView& rv) {
  const ReportRun& r = *rv.run;
  json compute = json::array(), memory = json::array();
  for (const Ceiling& c : r.ceilings.compute) compute.push_back({{"name", c.name}, {"flops_per_s", c.per_second}});
  for (const Ceiling& c : r.ceilings.memory) memory.push_back({{"name", c.name}, {"bytes_per_s", c.per_second}});
  json kernels = json::array();
  for (const KernelView& kv : rv.kernels) {
    json counters = json::object();
    for (const auto& [name, value] : *kv.counters) counters[name] = value;
    json k = {{"label", kv.info->label},
              {"op", kv.info->op},
              {"spec", kv.info->spec},
              {"row", kv.key},
              {"seconds", kv.seconds},
              {"flops", kv.info->flops},
              {"min_bytes", kv.info->min_bytes},
              {"flops_per_s", kv.flops_per_s},
              {"bytes_per_s", kv.bytes_per_s},
              {"share", kv.share},
              {"bound", kv.bound.empty() ? json(nullptr) : json(kv.bound)},
              {"counters", counters},
              {"check", nullptr},
              {"roofline", nullptr}};
    if (kv.check)
      k["check"] = {{"rel_err", kv.check->rel_err}, {"tolerance", kv.check->tolerance}, {"ok", kv.check->ok}};
    if (kv.plotted)
      k["roofline"] = {{"intensity", kv.intensity}, {"flops_per_s", kv.flops_per_s}, {"bytes", kv.roof_bytes}};
    kernels.push_back(std::move(k));
  }
  return {{"device", device_json(r.device)},
          {"note", r.note},
          {"total_seconds", rv.total},
          {"ceilings", {{"compute", compute}, {"memory", memory}, {"note", r.ceilings.note}}},
          {"roofline_bytes", rv.hbm_traffic ? "hbm" : "minimum"},
          {"kernels", kernels}};
}

// JSON inside <script>: '<', '>' and '&' occur only inside JSON strings, where \u escapes
// mean the same, so "</script>" or "<!--" in a label cannot end the block.
std::string script_safe(const std::string& json_text) {
  std::string out;
  out.reserve(json_text.size());
  for (char c : json_text) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

// ---- page pieces --------------------------------------------------------------------

class OpColors {
 public:
  std::string operator()(const std::string& op) {
    auto [it, added] = colors_.emplace(op, kOpColors[colors_.size() % std::size(kOpColors)]);
    if (added) order_.push_back(op);
    return it->second;
  }
  std::string legend(const std::vector<std::string>& ops) {
    std::string h = "<p class=\"legend\">";
    for (const std::string& op : ops)
      h += "<span><i style=\"background:" + (*this)(op) + "\"></i>" + esc(op) + "</span>";
    return h + "</p>\n";
  }

 private:
  std::map<std::string, std::string> colors_;
  std::vector<std::string> order_;
};

std::string device_line(const ReportRun& r) {
  std::string s = "<b>" + esc(r.device.id) + "</b>";
  std::string detail = r.device.name;
  if (!r.device.arch.empty()) detail += (detail.empty() ? "" : ", ") + r.device.arch;
  if (r.device.compute_units > 0) detail += ", " + std::to_string(r.device.compute_units) + " units";
  if (!detail.empty()) s += " <span class=\"dim\">" + esc(detail) + "</span>";
  return s;
}

std::string check_summary(const RunView& rv) {
  if (!rv.checked) return "<span class=\"dim\">not checked</span>";
  if (rv.failed == 0) return "<span class=\"ok\">all " + std::to_string(rv.kernels.size()) + " ok</span>";
  return "<span class=\"fail\">" + std::to_string(rv.failed) + " FAILED</span>";
}

std::string ratio(double v, double first) {
  if (!(first > 0) || !(v > 0)) return "";
  const double x = v / first;
  const char* cls = x > 1.02 ? "slower" : x < 0.98 ? "faster" : "same";
  return "<span class=\"" + std::string(cls) + "\">" + printf_string("%.2f", x) + "\xC3\x97</span>";
}

// One horizontal bar per run, as long as its total, cut into its kernels.
std::string time_bar(const RunView& rv, double longest, OpColors& colors) {
  const double width = 260, height = 14;
  const double w = longest > 0 ? width * rv.total / longest : 0;
  std::string h = "<svg class=\"timebar\" width=\"" + px(width) + "\" height=\"" + px(height) + "\" viewBox=\"0 0 " +
                  px(width) + " " + px(height) + "\" role=\"img\" aria-label=\"time per kernel\">";
  double x = 0;
  for (const KernelView& kv : rv.kernels) {
    const double seg = rv.total > 0 ? w * kv.seconds / rv.total : 0;
    h += "<rect data-k=\"" + std::to_string(kv.key) + "\" x=\"" + px(x) + "\" y=\"0\" width=\"" + px(seg) +
         "\" height=\"" + px(height) + "\" fill=\"" + colors(kv.info->op) + "\"><title>" + esc(kv.info->label) + ": " +
         esc(with_unit(kv.seconds, "s")) + " (" + digits(100 * kv.share) + "%)</title></rect>";
    x += seg;
  }
  return h + "</svg>";
}

std::string summary_table(const SectionView& sv, OpColors& colors) {
  double longest = 0;
  for (const RunView& rv : sv.runs) longest = std::max(longest, rv.total);
  const Unit u = unit_for(longest);
  const bool many = sv.runs.size() > 1;
  std::string h = "<table class=\"summary\"><thead><tr><th class=\"l\">device</th><th>kernels</th><th>time (" +
                  u.prefix + "s)</th>";
  if (many) h += "<th>vs first</th>";
  h += "<th class=\"l\">check</th><th class=\"l\">time by kernel</th></tr></thead><tbody>\n";
  for (const RunView& rv : sv.runs) {
    // The device's description is under its charts; here it would push the bars off the page.
    h += "<tr><td class=\"l\" title=\"" + esc(rv.run->device.name) + "\"><b>" + esc(rv.run->device.id) + "</b>";
    if (!rv.run->note.empty()) h += " <span class=\"dim\">&middot; " + esc(rv.run->note) + "</span>";
    h += "</td><td>" + std::to_string(rv.kernels.size()) + "</td><td>" + digits(rv.total / u.scale) + "</td>";
    if (many) h += "<td>" + (rv.index == 0 ? std::string("<span class=\"dim\">1.00\xC3\x97</span>") : ratio(rv.total, sv.runs[0].total)) + "</td>";
    h += "<td class=\"l\">" + check_summary(rv) + "</td><td class=\"l\">" + time_bar(rv, longest, colors) + "</td></tr>\n";
  }
  return h + "</tbody></table>\n";
}

// Kernels side by side: one row per kernel, time, ratio to the first device and bound.
std::string comparison_table(const SectionView& sv) {
  double longest = 0;
  std::vector<std::vector<const KernelView*>> cell(sv.keys.size(), std::vector<const KernelView*>(sv.runs.size()));
  for (const RunView& rv : sv.runs)
    for (const KernelView& kv : rv.kernels) {
      cell[kv.key][rv.index] = &kv;
      longest = std::max(longest, kv.seconds);
    }
  const Unit u = unit_for(longest);
  std::string h = "<table class=\"compare\"><thead><tr><th class=\"l\" rowspan=\"2\">kernel</th><th class=\"l\" rowspan=\"2\">op</th>";
  for (const RunView& rv : sv.runs)
    h += "<th class=\"dev\" colspan=\"" + std::string(rv.index == 0 ? "2" : "3") + "\">" + esc(rv.run->device.id) + "</th>";
  h += "</tr><tr>";
  for (const RunView& rv : sv.runs) {
    h += "<th class=\"first-of-dev\">time (" + u.prefix + "s)</th>";
    if (rv.index > 0) h += "<th>vs first</th>";
    h += "<th class=\"l\">bound</th>";
  }
  h += "</tr></thead><tbody>\n";
  for (std::size_t key = 0; key < sv.keys.size(); ++key) {
    const KernelView* any = nullptr;
    for (const KernelView* kv : cell[key]) any = any ? any : kv;
    h += "<tr data-k=\"" + std::to_string(key) + "\"><td class=\"l\" title=\"" + esc(any->info->spec) + "\">" +
         esc(sv.keys[key]) + "</td><td class=\"l\">" + esc(any->info->op) + "</td>";
    const KernelView* first = cell[key][0];
    for (const RunView& rv : sv.runs) {
      const KernelView* kv = cell[key][rv.index];
      if (!kv) {
        h += std::string("<td class=\"first-of-dev dim\">&mdash;</td>") + (rv.index > 0 ? "<td></td>" : "") + "<td></td>";
        continue;
      }
      h += "<td class=\"first-of-dev\">" + digits(kv->seconds / u.scale) + "</td>";
      if (rv.index > 0) h += "<td>" + (first ? ratio(kv->seconds, first->seconds) : std::string()) + "</td>";
      h += "<td class=\"l dim\">" + esc(kv->bound) + "</td>";
    }
    h += "</tr>\n";
  }
  h += "</tbody><tfoot><tr><td class=\"l\">total</td><td></td>";
  for (const RunView& rv : sv.runs) {
    h += "<td class=\"first-of-dev\">" + digits(rv.total / u.scale) + "</td>";
    if (rv.index > 0) h += "<td>" + ratio(rv.total, sv.runs[0].total) + "</td>";
    h += "<td></td>";
  }
  return h + "</tr></tfoot></table>\n";
}

std::string kernel_table(const SectionView& sv, const RunView& rv, OpColors& colors) {
  double t_max = 0, f_max = 0, b_max = 0, hbm_max = 0;
  for (const KernelView& kv : rv.kernels) {
    t_max = std::max(t_max, kv.seconds);
    f_max = std::max(f_max, kv.flops_per_s);
    b_max = std::max(b_max, kv.bytes_per_s);
    if (kv.hbm_bytes && kv.seconds > 0) hbm_max = std::max(hbm_max, *kv.hbm_bytes / kv.seconds);
  }
  double all_flops = 0;
  for (const KernelView& kv : rv.kernels) all_flops += kv.info->flops;
  t_max = std::max(t_max, rv.total);
  f_max = std::max(f_max, rv.total > 0 ? all_flops / rv.total : 0);
  const Unit ut = unit_for(t_max), uf = unit_for(f_max), ub = unit_for(b_max), uh = unit_for(hbm_max);
  const bool hbm = rv.hbm_traffic;
  const bool bound = std::any_of(rv.kernels.begin(), rv.kernels.end(), [](const KernelView& k) { return !k.bound.empty(); });

  std::string h = "<table class=\"kernels\" data-section=\"" + std::to_string(sv.index) + "\" data-run=\"" +
                  std::to_string(rv.index) + "\"><thead><tr><th>#</th><th class=\"l\">kernel</th><th class=\"l\">op</th>" +
                  "<th>time (" + ut.prefix + "s)</th><th title=\"the kernel's FLOP / its time\">" + uf.prefix +
                  "FLOP/s</th><th title=\"the bytes the kernel must move at least / its time\">" + ub.prefix + "B/s</th>";
  if (hbm) h += "<th title=\"HBM traffic the simulator measured / time\">HBM " + uh.prefix + "B/s</th>";
  h += std::string("<th title=\"FLOP per ") + (hbm ? "byte of HBM traffic" : "byte it must move") + "\">FLOP/B</th>";
  if (bound) h += "<th class=\"l\">bound</th>";
  h += "<th class=\"l share\">share of time</th>";
  if (rv.simulated) h += "<th>cycles</th>";
  if (rv.checked) h += "<th>rel. error</th><th>tolerance</th><th class=\"l\">check</th>";
  h += "</tr></thead><tbody>\n";
  std::size_t i = 0;
  for (const KernelView& kv : rv.kernels) {
    h += "<tr data-k=\"" + std::to_string(kv.key) + "\"><td class=\"dim\">" + std::to_string(++i) +
         "</td><td class=\"l\" title=\"" + esc(kv.info->spec) + "\"><i class=\"swatch\" style=\"background:" +
         colors(kv.info->op) + "\"></i>" + esc(kv.info->label) + "</td><td class=\"l\">" + esc(kv.info->op) + "</td><td>" +
         digits(kv.seconds / ut.scale) + "</td><td>" + digits(kv.flops_per_s / uf.scale) + "</td><td>" +
         digits(kv.bytes_per_s / ub.scale) + "</td>";
    if (hbm) h += "<td>" + (kv.seconds > 0 ? digits(*kv.hbm_bytes / kv.seconds / uh.scale) : std::string("&mdash;")) + "</td>";
    h += "<td>" + (kv.plotted ? digits(kv.intensity) : std::string("<span class=\"dim\">&mdash;</span>")) + "</td>";
    if (bound) h += "<td class=\"l\">" + esc(kv.bound) + "</td>";
    h += "<td class=\"l share\"><span class=\"bar\"><span style=\"width:" + px(100 * kv.share) + "%\"></span></span>" +
         printf_string("%.1f", 100 * kv.share) + "%</td>";
    if (rv.simulated) h += "<td>" + printf_string("%.0f", kv.counter("cycles")) + "</td>";
    if (rv.checked) {
      h += "<td>" + sci(kv.check->rel_err) + "</td><td>" + sci(kv.check->tolerance) + "</td><td class=\"l\">" +
           (kv.check->ok ? "<span class=\"ok\">ok</span>" : "<span class=\"fail\">FAIL</span>") + "</td>";
    }
    h += "</tr>\n";
  }
  h += "</tbody><tfoot><tr><td></td><td class=\"l\">total</td><td></td><td>" + digits(rv.total / ut.scale) + "</td><td>" +
       digits(rv.total > 0 ? all_flops / rv.total / uf.scale : 0) + "</td><td></td>";
  if (hbm) h += "<td></td>";
  h += "<td></td>";
  if (bound) h += "<td></td>";
  h += "<td class=\"l share\">100%</td>";
  if (rv.simulated) {
    double cycles = 0;
    for (const KernelView& kv : rv.kernels) cycles += kv.counter("cycles");
    h += "<td>" + printf_string("%.0f", cycles) + "</td>";
  }
  if (rv.checked) h += "<td></td><td></td><td class=\"l\">" + check_summary(rv) + "</td>";
  return h + "</tr></tfoot></table>\n";
}

// Decade labels: 0.01, 0.1, 1, 10, 100, 1k ... for intensities; 1G, 10G ... for FLOP/s.
std::string decade_label(int e, bool si) {
  if (!si && e >= -3 && e <= 2) return printf_string("%g", std::pow(10.0, e));
  if (e < -3 || e > 17) return "1e" + std::to_string(e);
  static const char* prefixes[] = {"m", "", "k", "M", "G", "T", "P"};
  const int group = (e + 3) / 3 - (e < -3 ? 1 : 0);
  const int within = e - (group - 1) * 3;
  return printf_string("%g", std::pow(10.0, within)) + prefixes[group];
}

// A roof's name as a tag beside the chart: its first word ("FP8 matrix" -> "FP8"), or
// "vector" for a vector unit, since FP32 names both a matrix and a vector roof.
std::string roof_tag(const std::string& name) {
  if (name.find("vector") != std::string::npos) return "vector";
  std::string first = name.substr(0, name.find(' '));
  return first.size() > 8 ? first.substr(0, 8) : first;
}

struct Plot {
  double left = 46, top = 10, width = 276, height = 210;
  double x0, x1, y0, y1;  // log10 bounds
  double x(double v) const { return left + (std::log10(v) - x0) / (x1 - x0) * width; }
  double y(double v) const { return top + height - (std::log10(v) - y0) / (y1 - y0) * height; }
};

std::string roofline_svg(const SectionView& sv, const RunView& rv, OpColors& colors) {
  Plot p;
  p.x0 = sv.x0, p.x1 = sv.x1, p.y0 = sv.y0, p.y1 = sv.y1;
  const double W = p.left + p.width + 40, H = p.top + p.height + 40;
  std::string h = "<svg class=\"roofline\" data-section=\"" + std::to_string(sv.index) + "\" data-run=\"" +
                  std::to_string(rv.index) + "\" data-log-x=\"" + attr_num(p.x0) + " " + attr_num(p.x1) +
                  "\" data-log-y=\"" + attr_num(p.y0) + " " + attr_num(p.y1) + "\" data-plot=\"" + attr_num(p.left) + " " +
                  attr_num(p.top) + " " + attr_num(p.width) + " " + attr_num(p.height) + "\" width=\"" + px(W) +
                  "\" height=\"" + px(H) + "\" viewBox=\"0 0 " + px(W) + " " + px(H) +
                  "\" role=\"img\" aria-label=\"roofline of " + esc(rv.run->device.id) + "\">\n";
  // Grid and axes.
  h += "<g class=\"grid\">";
  for (int e = static_cast<int>(std::ceil(p.x0)); e <= static_cast<int>(std::floor(p.x1)); ++e) {
    const double x = p.x(std::pow(10.0, e));
    h += "<line x1=\"" + px(x) + "\" y1=\"" + px(p.top) + "\" x2=\"" + px(x) + "\" y2=\"" + px(p.top + p.height) + "\"/>";
    h += "<text class=\"tick\" x=\"" + px(x) + "\" y=\"" + px(p.top + p.height + 13) + "\" text-anchor=\"middle\">" +
         decade_label(e, false) + "</text>";
  }
  for (int e = static_cast<int>(std::ceil(p.y0)); e <= static_cast<int>(std::floor(p.y1)); ++e) {
    const double y = p.y(std::pow(10.0, e));
    h += "<line x1=\"" + px(p.left) + "\" y1=\"" + px(y) + "\" x2=\"" + px(p.left + p.width) + "\" y2=\"" + px(y) + "\"/>";
    h += "<text class=\"tick\" x=\"" + px(p.left - 5) + "\" y=\"" + px(y + 3.5) + "\" text-anchor=\"end\">" +
         decade_label(e, true) + "</text>";
  }
  h += "</g><rect class=\"frame\" x=\"" + px(p.left) + "\" y=\"" + px(p.top) + "\" width=\"" + px(p.width) +
       "\" height=\"" + px(p.height) + "\"/>\n";
  h += "<text class=\"axis\" x=\"" + px(p.left + p.width / 2) + "\" y=\"" + px(H - 8) + "\" text-anchor=\"middle\">" +
       (rv.hbm_traffic ? "FLOP per byte of HBM traffic" : "FLOP per byte the kernel must move") + "</text>";
  h += "<text class=\"axis\" transform=\"translate(11 " + px(p.top + p.height / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">FLOP/s</text>\n";

  // Roofs: each bandwidth slope up to the highest compute roof, each compute roof from
  // where the fastest memory meets it.
  const Ceilings& c = rv.run->ceilings;
  const double lo_x = std::pow(10.0, p.x0), hi_x = std::pow(10.0, p.x1);
  const double lo_y = std::pow(10.0, p.y0), hi_y = std::pow(10.0, p.y1);
  double top_compute = 0, fastest_memory = 0;
  for (const Ceiling& k : c.compute) top_compute = std::max(top_compute, k.per_second);
  for (const Ceiling& m : c.memory) fastest_memory = std::max(fastest_memory, m.per_second);
  h += "<g class=\"roofs\">";
  for (const Ceiling& m : c.memory) {
    const double a = std::max(lo_x, lo_y / m.per_second);
    const double b = std::min(hi_x, (top_compute > 0 ? top_compute : hi_y) / m.per_second);
    if (!(a < b)) continue;
    const double xa = p.x(a), ya = p.y(a * m.per_second), xb = p.x(b), yb = p.y(b * m.per_second);
    h += "<line class=\"roof memory\" data-ceiling=\"" + esc(m.name) + "\" data-bytes-per-s=\"" + attr_num(m.per_second) +
         "\" x1=\"" + px(xa) + "\" y1=\"" + px(ya) + "\" x2=\"" + px(xb) + "\" y2=\"" + px(yb) + "\"><title>" +
         esc(m.name) + ": " + esc(with_unit(m.per_second, "B/s")) + "</title></line>";
    const double angle = std::atan2(yb - ya, xb - xa) * 180 / M_PI;
    const double lx = xa + 0.12 * (xb - xa), ly = ya + 0.12 * (yb - ya);
    h += "<text class=\"roof-label\" transform=\"translate(" + px(lx) + " " + px(ly - 4) + ") rotate(" + px(angle) +
         ")\">" + esc(m.name) + " " + esc(with_unit(m.per_second, "B/s")) + "</text>";
  }
  // A compute roof is tagged right of the frame, where nothing else is drawn (its full
  // name and rate are in the note under the chart); tags of close roofs (BF16 is half of
  // FP8) step down so that they do not overlap.
  std::vector<Ceiling> compute = c.compute;
  std::sort(compute.begin(), compute.end(), [](const Ceiling& a, const Ceiling& b) { return a.per_second > b.per_second; });
  double last_label_y = -INFINITY;
  for (const Ceiling& k : compute) {
    const double a = fastest_memory > 0 ? std::max(lo_x, k.per_second / fastest_memory) : lo_x;
    const double y = p.y(k.per_second);
    const double label_y = std::max(y + 3.5, last_label_y + 10);
    last_label_y = label_y;
    const bool top = k.per_second == top_compute;
    h += "<line class=\"roof compute" + std::string(top ? "" : " lesser") + "\" data-ceiling=\"" + esc(k.name) +
         "\" data-flops-per-s=\"" + attr_num(k.per_second) + "\" x1=\"" + px(p.x(a)) + "\" y1=\"" + px(y) + "\" x2=\"" +
         px(p.x(hi_x)) + "\" y2=\"" + px(y) + "\"><title>" + esc(k.name) + ": " + esc(with_unit(k.per_second, "FLOP/s")) +
         "</title></line>";
    h += "<text class=\"roof-label\" x=\"" + px(p.left + p.width + 4) + "\" y=\"" + px(label_y) + "\">" +
         esc(roof_tag(k.name)) + "<title>" + esc(k.name) + ": " + esc(with_unit(k.per_second, "FLOP/s")) + "</title></text>";
  }
  h += "</g>\n<g class=\"points\">";
  std::size_t i = 0;
  for (const KernelView& kv : rv.kernels) {
    ++i;
    if (!kv.plotted) continue;
    const double x = p.x(kv.intensity), y = p.y(kv.flops_per_s);
    h += "<g class=\"pt\" data-k=\"" + std::to_string(kv.key) + "\"><circle cx=\"" + px(x) + "\" cy=\"" + px(y) +
         "\" r=\"4.5\" fill=\"" + colors(kv.info->op) + "\" data-intensity=\"" + attr_num(kv.intensity) +
         "\" data-flops-per-s=\"" + attr_num(kv.flops_per_s) + "\"><title>" + std::to_string(i) + " " +
         esc(kv.info->label) + "\n" + esc(with_unit(kv.flops_per_s, "FLOP/s")) + " at " + digits(kv.intensity) +
         " FLOP/B, " + esc(with_unit(kv.seconds, "s")) + (kv.bound.empty() ? "" : ", " + kv.bound + "-bound") +
         "</title></circle><text class=\"pt-label\" x=\"" + px(x + 5.5) + "\" y=\"" + px(y - 4) + "\">" +
         std::to_string(i) + "</text></g>";
  }
  h += "</g></svg>";
  return h;
}

std::string roofline_figure(const SectionView& sv, const RunView& rv, OpColors& colors) {
  const ReportRun& r = *rv.run;
  std::string h = "<figure class=\"chart\"><figcaption>" + device_line(r) + "</figcaption>" + roofline_svg(sv, rv, colors);
  std::string notes;
  if (r.ceilings.compute.empty() && r.ceilings.memory.empty()) {
    notes += "No roofs: " + esc(r.ceilings.note.empty() ? "the peaks of this device are not known" : r.ceilings.note) + ".";
  } else {
    notes += "Roofs:";
    const char* sep = " ";
    for (const Ceiling& k : r.ceilings.compute)
      notes += sep + esc(k.name) + " " + esc(with_unit(k.per_second, "FLOP/s")), sep = ", ";
    for (const Ceiling& m : r.ceilings.memory) notes += sep + esc(m.name) + " " + esc(with_unit(m.per_second, "B/s")), sep = ", ";
    notes += ".";
    if (!r.ceilings.note.empty()) notes += " " + esc(r.ceilings.note) + ".";
  }
  // Kernels without a point, by reason; by number alone when there are many (a layer's
  // slices and reshapes), the table has their names.
  std::map<std::string, std::vector<std::string>> missing;
  std::size_t unplotted = 0, i = 0;
  for (const KernelView& kv : rv.kernels) unplotted += !kv.plotted;
  for (const KernelView& kv : rv.kernels) {
    ++i;
    if (!kv.plotted)
      missing[kv.unplotted_reason].push_back(std::to_string(i) + (unplotted <= 4 ? " " + esc(kv.info->label) : ""));
  }
  for (const auto& [reason, kernels] : missing) {
    notes += " Not plotted (" + reason + "):";
    for (std::size_t m = 0; m < kernels.size(); ++m) notes += (m ? ", " : " ") + kernels[m];
    notes += ".";
  }
  if (!notes.empty()) h += "<p class=\"note\">" + notes + "</p>";
  return h + "</figure>\n";
}

// One row per kernel and one lane per pipe: the busy percentage, then a bar on a 0-100%
// scale. Lanes keep the four pipes apart and the rows compact enough for a whole layer.
std::string pipes_figure(const SectionView& sv, const RunView& rv) {
  const double label_w = 122, num_w = 20, bar_w = 38, lane_w = num_w + bar_w + 6, row_h = 14, top = 18;
  const double W = label_w + 4 * lane_w, H = top + static_cast<double>(rv.kernels.size()) * row_h + 4;
  std::string h = "<figure class=\"chart\"><figcaption>" + device_line(*rv.run) +
                  "</figcaption><svg class=\"pipes\" data-section=\"" + std::to_string(sv.index) + "\" data-run=\"" +
                  std::to_string(rv.index) + "\" width=\"" + px(W) + "\" height=\"" + px(H) + "\" viewBox=\"0 0 " + px(W) +
                  " " + px(H) + "\" role=\"img\" aria-label=\"pipe utilization on " + esc(rv.run->device.id) + "\">\n";
  for (int p = 0; p < 4; ++p) {
    const double x = label_w + p * lane_w;
    h += "<text class=\"lane\" x=\"" + px(x + num_w + bar_w / 2) + "\" y=\"11\" text-anchor=\"middle\">" + kPipes[p] +
         "</text><rect class=\"lane-bg\" x=\"" + px(x + num_w + 2) + "\" y=\"" + px(top - 2) + "\" width=\"" + px(bar_w) +
         "\" height=\"" + px(H - top) + "\"/>";
  }
  double y = top;
  std::size_t i = 0;
  for (const KernelView& kv : rv.kernels) {
    ++i;
    std::string label = std::to_string(i) + " " + kv.info->label;
    std::string shown = label;
    if (shown.size() > 21) {
      std::size_t n = 20;
      while (n > 0 && (static_cast<unsigned char>(shown[n]) & 0xC0) == 0x80) --n;  // whole UTF-8 sequences only
      shown = shown.substr(0, n) + "\xE2\x80\xA6";
    }
    h += "<g class=\"row\" data-k=\"" + std::to_string(kv.key) + "\"><rect class=\"row-bg\" x=\"0\" y=\"" + px(y) +
         "\" width=\"" + px(W) + "\" height=\"" + px(row_h) + "\"/><text class=\"row-label\" x=\"" + px(label_w - 6) +
         "\" y=\"" + px(y + 10.5) + "\" text-anchor=\"end\">" + esc(shown) + "<title>" + esc(label) + "</title></text>";
    for (int p = 0; p < 4; ++p) {
      const double u = std::clamp(kv.counter(std::string("util.") + kPipes[p]), 0.0, 1.0);
      const double x = label_w + p * lane_w;
      h += "<text class=\"val\" x=\"" + px(x + num_w) + "\" y=\"" + px(y + 10.5) + "\" text-anchor=\"end\">" +
           printf_string("%.0f", 100 * u) + "</text><rect x=\"" + px(x + num_w + 2) + "\" y=\"" + px(y + 3) + "\" width=\"" +
           px(bar_w * u) + "\" height=\"" + px(row_h - 6) + "\" fill=\"" + kPipeColors[p] + "\" data-util=\"" + attr_num(u) +
           "\"><title>" + esc(kv.info->label) + ": " + kPipes[p] + " busy " + printf_string("%.1f", 100 * u) +
           "% of the time</title></rect>";
    }
    h += "</g>";
    y += row_h;
  }
  return h + "</svg><p class=\"note\">Percent of the time each pipe is busy while the kernel runs, averaged over the "
             "cores; each bar spans 0-100%.</p></figure>\n";
}

std::string section_html(const SectionView& sv, OpColors& colors) {
  const ReportSection& s = *sv.section;
  std::string h = "<section id=\"section-" + std::to_string(sv.index) + "\" data-section=\"" + std::to_string(sv.index) +
                  "\">\n<h2>" + esc(s.title) + "</h2>\n";
  if (sv.runs.empty()) return h + "<p class=\"note\">No runs.</p></section>\n";
  std::vector<std::string> ops;
  for (const RunView& rv : sv.runs)
    for (const KernelView& kv : rv.kernels)
      if (std::find(ops.begin(), ops.end(), kv.info->op) == ops.end()) ops.push_back(kv.info->op);
  const bool many = sv.runs.size() > 1;

  h += summary_table(sv, colors);
  h += colors.legend(ops);
  auto tables = [&] {
    for (const RunView& rv : sv.runs) {
      if (many) h += "<h3>Kernels on " + esc(rv.run->device.id) + "</h3>\n";
      h += kernel_table(sv, rv, colors);
    }
  };
  auto charts = [&] {
    if (sv.has_roofline) {
      h += "<h3>Roofline</h3>\n<div class=\"charts\">\n";
      for (const RunView& rv : sv.runs) h += roofline_figure(sv, rv, colors);
      h += "</div>\n";
    }
    if (std::any_of(sv.runs.begin(), sv.runs.end(), [](const RunView& rv) { return rv.simulated; })) {
      h += "<h3>Pipe utilization</h3>\n<div class=\"charts\">\n";
      for (const RunView& rv : sv.runs)
        if (rv.simulated) h += pipes_figure(sv, rv);
      h += "</div>\n";
    }
  };
  if (many) {
    h += "<h3>Per kernel, side by side</h3>\n" + comparison_table(sv);
    charts();
    tables();
  } else {
    tables();
    charts();
  }
  return h + "</section>\n";
}

const char* const kStyle = R"CSS(
:root { color-scheme: light; --fg: #1b1f24; --dim: #6a737d; --rule: #d8dee4; --head: #f3f5f7; --hl: #fff3bf; }
* { box-sizing: border-box; }
body { margin: 24px 32px; color: var(--fg); background: #fff; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 16px; margin: 28px 0 8px; padding-bottom: 3px; border-bottom: 1px solid var(--rule); }
h3 { font-size: 13px; margin: 18px 0 6px; }
header p { margin: 0; }
nav { margin: 10px 0 0; }
nav a { margin-right: 14px; }
.dim { color: var(--dim); }
.note { color: var(--dim); font-size: 12px; margin: 4px 0 0; max-width: 60em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 4px 0 8px; }
th, td { padding: 2px 8px; text-align: right; white-space: nowrap; border-bottom: 1px solid #eef1f4; }
th { font-weight: 600; background: var(--head); border-bottom: 1px solid var(--rule); }
th.l, td.l { text-align: left; }
th.dev { text-align: center; border-left: 1px solid var(--rule); }
.first-of-dev { border-left: 1px solid var(--rule); }
tfoot td { font-weight: 600; border-top: 1px solid var(--rule); border-bottom: none; }
tbody tr:hover, tr.hl { background: var(--hl); }
td.share { min-width: 120px; }
.bar { display: inline-block; width: 60px; height: 8px; margin-right: 6px; background: #eef1f4; vertical-align: middle; }
.bar span { display: block; height: 100%; background: #4e79a7; }
.swatch { display: inline-block; width: 8px; height: 8px; margin-right: 6px; border-radius: 1px; }
.ok { color: #1a7f37; }
.fail { color: #cf222e; font-weight: 700; }
.slower { color: #a40e26; }
.faster { color: #1a7f37; }
.same { color: var(--dim); }
.legend { margin: 2px 0 6px; color: var(--dim); font-size: 12px; }
.legend span { margin-right: 14px; white-space: nowrap; }
.legend i { display: inline-block; width: 9px; height: 9px; margin-right: 4px; vertical-align: -1px; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: flex-start; }
figure.chart { margin: 0; max-width: 380px; }
figcaption { margin-bottom: 2px; }
svg { display: block; overflow: visible; }
svg text { font-family: inherit; fill: var(--fg); }
svg .tick { font-size: 10px; fill: var(--dim); }
svg .axis { font-size: 11px; fill: var(--dim); }
svg .grid line { stroke: #eceff2; stroke-width: 1; }
svg .frame { fill: none; stroke: #b6bec7; }
svg .roof { stroke: #3c434b; stroke-width: 1.6; }
svg .roof.lesser { stroke: #8c959f; stroke-width: 1; stroke-dasharray: 4 3; }
svg .roof-label { font-size: 9.5px; fill: #3c434b; }
svg .roof-label, svg .pt-label { paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg .pt circle { stroke: #fff; stroke-width: 1; }
svg .pt-label { font-size: 9px; fill: var(--dim); }
svg .pt.hl circle { stroke: #1b1f24; stroke-width: 2; }
svg .row-label { font-size: 11px; }
svg .row-bg { fill: transparent; }
svg .row.hl .row-bg { fill: var(--hl); }
svg .lane { font-size: 10px; fill: var(--dim); }
svg .lane-bg { fill: #f3f5f7; }
svg .val { font-size: 10px; fill: var(--fg); font-variant-numeric: tabular-nums; }
svg.timebar rect { stroke: #fff; stroke-width: 0.5; }
svg.timebar rect.hl { stroke: #1b1f24; stroke-width: 1.5; }
#js-errors { color: #cf222e; }
@page { size: A4 landscape; margin: 10mm; }
@media print {
  body { margin: 0; font-size: 10px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section { break-before: page; }
  section:first-of-type { break-before: auto; }
  figure, table, h3 { break-inside: avoid; }
  h3 { break-after: avoid; }
  tbody tr:hover { background: none; }
  nav { display: none; }
  .note, .legend { font-size: 9px; }
  .charts { gap: 4px 2%; }
  figure.chart { width: 32%; }
  figure.chart svg { width: 100%; height: auto; }
}
)CSS";

// Highlights one kernel everywhere in its section on hover, and checks that the browser
// drew what the data says: one point per plotted kernel inside each roofline's frame, one
// row per kernel in each table. The result lands on <body data-rendered="ok" ...>, and
// any script error in #js-errors, for a headless browser to read.
const char* const kScript = R"JS(
(function () {
  var errors = [];
  function fail(message) {
    errors.push(message);
    var box = document.getElementById('js-errors');
    box.hidden = false;
    box.textContent = errors.join('\n');
    document.body.setAttribute('data-js-errors', String(errors.length));
  }
  window.addEventListener('error', function (e) { fail(e.message + ' (' + e.filename + ':' + e.lineno + ')'); });
  try {
    var data = JSON.parse(document.getElementById('anychip-report-data').textContent);
    document.querySelectorAll('section[data-section]').forEach(function (section) {
      section.querySelectorAll('[data-k]').forEach(function (el) {
        var k = el.getAttribute('data-k');
        var same = section.querySelectorAll('[data-k="' + k + '"]');
        el.addEventListener('mouseenter', function () { same.forEach(function (s) { s.classList.add('hl'); }); });
        el.addEventListener('mouseleave', function () { same.forEach(function (s) { s.classList.remove('hl'); }); });
      });
    });
    var points = 0, rows = 0, charts = 0;
    data.sections.forEach(function (section, si) {
      section.runs.forEach(function (run, ri) {
        var where = 'section ' + si + ', ' + run.device.id + ': ';
        var sel = '[data-section="' + si + '"][data-run="' + ri + '"]';
        var table = document.querySelector('table.kernels' + sel);
        var n = table ? table.querySelectorAll('tbody tr').length : 0;
        if (n !== run.kernels.length) fail(where + n + ' table rows for ' + run.kernels.length + ' kernels');
        if (table && table.getBoundingClientRect().height <= 0) fail(where + 'the table has no height');
        rows += n;
        var expected = run.kernels.filter(function (k) { return k.roofline !== null; }).length;
        if (expected === 0) return;
        var svg = document.querySelector('svg.roofline' + sel);
        if (!svg) { fail(where + 'no roofline'); return; }
        charts += 1;
        var frame = svg.querySelector('rect.frame').getBoundingClientRect();
        var circles = svg.querySelectorAll('.pt circle');
        if (circles.length !== expected) fail(where + circles.length + ' roofline points for ' + expected + ' kernels');
        circles.forEach(function (c) {
          var b = c.getBoundingClientRect(), cx = b.left + b.width / 2, cy = b.top + b.height / 2;
          if (b.width <= 0 || cx < frame.left - 1 || cx > frame.right + 1 || cy < frame.top - 1 || cy > frame.bottom + 1)
            fail(where + 'a roofline point is drawn outside the chart');
        });
        points += circles.length;
      });
    });
    document.body.setAttribute('data-roofline-points', String(points));
    document.body.setAttribute('data-rooflines', String(charts));
    document.body.setAttribute('data-table-rows', String(rows));
    document.body.setAttribute('data-rendered', errors.length ? 'mismatch' : 'ok');
  } catch (e) {
    fail(String(e && e.stack || e));
    document.body.setAttribute('data-rendered', 'error');
  }
})();
)JS";

}  // namespace

Ceilings device_ceilings(const DeviceInfo& device) {
  Ceilings c;
  if (device.backend != "sim" || device.id.rfind("sim:", 0) != 0) {
    c.note = "anychip does not know the peak FLOP/s or bandwidth of " + device.id + ", so no roofs are drawn";
    return c;
  }
  const std::string chip_name = device.id.substr(4);
  sim::ChipDesc chip;
  try {
    chip = sim::load_chip(chip_name);
  } catch (const std::exception& e) {
    c.note = "the chip description could not be read again (" + std::string(e.what()) + "), so no roofs are drawn";
    return c;
  }
  const double cores = static_cast<double>(chip.cores);
  c.compute = {{"FP8 matrix", chip.peak_flops(DType::f8e4m3)},
               {"BF16 matrix", chip.peak_flops(DType::bf16)},
               {"FP32 matrix", chip.peak_flops(DType::f32)}};
  const auto& v = chip.core.vector;
  if (v.fma_cycles > 0)
    c.compute.push_back({"FP32 vector", 2.0 * static_cast<double>(v.lanes) / v.fma_cycles * cores * chip.clock_hz});
  std::erase_if(c.compute, [](const Ceiling& k) { return !(k.per_second > 0); });
  std::sort(c.compute.begin(), c.compute.end(), [](const Ceiling& a, const Ceiling& b) { return a.per_second > b.per_second; });
  c.memory = {{"HBM", chip.hbm_bytes_per_s}};
  c.note = "From the chip description " + chip.name + ": per-core rate \xC3\x97 " + std::to_string(chip.cores) +
           " cores \xC3\x97 clock";
  return c;
}

ReportRun capture_run(const Executable& exe, Stream& stream, const std::vector<KernelCheck>* checks) {
  ReportRun r;
  r.device = exe.device().info();
  r.kernels = exe.kernels();
  r.seconds = exe.last_kernel_seconds(stream);
  r.counters = exe.last_kernel_counters(stream);
  if (checks) r.checks = *checks;
  r.ceilings = device_ceilings(r.device);
  return r;
}

std::string html_report(const Report& report) {
  std::vector<SectionView> sections;
  for (std::size_t i = 0; i < report.sections.size(); ++i) sections.push_back(view_section(report.sections[i], i));

  json data = {{"format", "anychip-report"}, {"version", 1}, {"anychip", std::string(version())},
               {"title", report.title}, {"subtitle", report.subtitle}, {"sections", json::array()}};
  for (const SectionView& sv : sections) {
    json runs = json::array();
    for (const RunView& rv : sv.runs) runs.push_back(run_json(rv));
    data["sections"].push_back({{"title", sv.section->title}, {"runs", runs}});
  }

  OpColors colors;
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                  "<meta name=\"generator\" content=\"anychip " + std::string(version()) + "\">\n<title>" +
                  esc(report.title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body data-rendered=\"no\">\n";
  h += "<header><h1>" + esc(report.title) + "</h1>";
  if (!report.subtitle.empty()) h += "<p class=\"dim\">" + esc(report.subtitle) + "</p>";
  h += "<p class=\"dim\">Device time per kernel; FLOP/s and B/s from each kernel's FLOP and the bytes it must move. "
       "Hover a row or a point to find the kernel in every table and chart.</p>";
  if (sections.size() > 1) {
    h += "<nav>";
    for (const SectionView& sv : sections)
      h += "<a href=\"#section-" + std::to_string(sv.index) + "\">" + esc(sv.section->title) + "</a>";
    h += "</nav>";
  }
  h += "</header>\n";
  for (const SectionView& sv : sections) h += section_html(sv, colors);
  h += "<pre id=\"js-errors\" hidden></pre>\n";
  h += "<script type=\"application/json\" id=\"anychip-report-data\">" + script_safe(data.dump()) + "</script>\n";
  h += std::string("<script>") + kScript + "</script>\n</body>\n</html>\n";
  return h;
}

void write_html_report(const std::string& path, const Report& report) {
  const std::string html = html_report(report);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto io_error = [&](const std::string& what, int err) {
    std::remove(tmp.c_str());
    return Error(ErrorCode::IoError, path + ": cannot write the report: " + what + std::strerror(err));
  };
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw io_error("", errno);
  const bool written = std::fwrite(html.data(), 1, html.size(), f) == html.size();
  const int write_errno = errno;
  if (std::fclose(f) != 0 || !written) throw io_error("", written ? errno : write_errno);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error(ErrorCode::IoError, path + ": cannot write the report: " + ec.message());
  }
}

}  // namespace anychip
