#include "tools/anychip/suite_report.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "tools/anychip/suite_format.hpp"

namespace anychip::cli::suite {

using nlohmann::json;

const char* status_name(Status s) {
  switch (s) {
    case Status::passed: return "passed";
    case Status::failed: return "failed";
    case Status::error: return "error";
    case Status::skipped: return "skipped";
  }
  return "?";
}

const char* cycle_check_name(CycleCheck c) {
  switch (c) {
    case CycleCheck::none: return "none";
    case CycleCheck::ok: return "ok";
    case CycleCheck::regression: return "regression";
    case CycleCheck::faster: return "faster";
    case CycleCheck::no_baseline: return "no_baseline";
    case CycleCheck::missing_counter: return "missing_counter";
    case CycleCheck::not_reported: return "not_reported";
  }
  return "?";
}

Summary summarize(const std::vector<PairResult>& results) {
  Summary s;
  for (const PairResult& r : results) {
    ++s.runs;
    switch (r.status) {
      case Status::passed: ++s.passed; break;
      case Status::failed: ++s.failed; break;
      case Status::error: ++s.errors; break;
      case Status::skipped: ++s.skipped; break;
    }
    s.faster += r.cycle_check == CycleCheck::faster;
    s.no_baseline += r.cycle_check == CycleCheck::no_baseline;
  }
  return s;
}

namespace {

template <typename T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json rel_err_json(const std::optional<double>& v) {
  if (!v) return nullptr;
  if (std::isnan(*v)) return "nan";
  if (std::isinf(*v)) return "inf";
  return *v;
}

json summary_json(const Summary& s) {
  return {{"runs", s.runs},       {"passed", s.passed},   {"failed", s.failed},
          {"errors", s.errors},   {"skipped", s.skipped}, {"faster", s.faster},
          {"no_baseline", s.no_baseline}};
}

std::string sci(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.2f%%", 100 * fraction);
  return buf;
}

std::string status_text(const PairResult& r) {
  switch (r.status) {
    case Status::passed:
      if (r.message.empty()) return "ok";
      return r.cycle_check == CycleCheck::faster ? r.message : "ok: " + r.message;
    case Status::failed: return "FAIL: " + r.message;
    case Status::error: return "ERROR: " + r.message;
    case Status::skipped: return "skipped: " + r.message;
  }
  return "?";
}

// One line with every number of a result, for JUnit bodies.
std::string details(const PairResult& r) {
  std::string s = "op=" + r.op + " device=" + r.device;
  if (r.rel_err) s += " rel_err=" + sci(*r.rel_err);
  if (r.tolerance) s += " tolerance=" + sci(*r.tolerance);
  if (r.cycles) s += " cycles=" + std::to_string(*r.cycles);
  if (r.baseline_cycles) s += " baseline_cycles=" + std::to_string(*r.baseline_cycles);
  if (r.cycle_change) s += " change=" + percent(*r.cycle_change);
  if (r.cycle_check != CycleCheck::none) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", r.cycle_rel_tol);
    s += std::string(" cycle_check=") + cycle_check_name(r.cycle_check) + " cycle_rel_tol=" + buf;
  }
  return s;
}

std::string seconds_attr(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", std::max(s, 0.0));
  return buf;
}

// The length of one UTF-8 sequence starting at s[i], or 0 if it is not valid UTF-8.
std::size_t utf8_length(const std::string& s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (b(i + k) & 0x3F);
  const std::uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
    return 0;
  return n;
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    switch (c) {
      case '&': out += "&amp;"; ++i; continue;
      case '<': out += "&lt;"; ++i; continue;
      case '>': out += "&gt;"; ++i; continue;
      case '"': out += "&quot;"; ++i; continue;
      case '\'': out += "&apos;"; ++i; continue;
      case '\n': out += "&#10;"; ++i; continue;
      case '\r': out += "&#13;"; ++i; continue;
      case '\t': out += "&#9;"; ++i; continue;
      default: break;
    }
    const std::size_t n = utf8_length(s, i);
    if (n == 0 || (n == 1 && static_cast<unsigned char>(c) < 0x20) || c == 0x7F) {
      out += "\xEF\xBF\xBD";  // U+FFFD: XML 1.0 cannot hold this byte
      ++i;
      continue;
    }
    out.append(s, i, n);
    i += n;
  }
  return out;
}

json report_json(const Report& report) {
  json results = json::array();
  for (const PairResult& r : report.results) {
    results.push_back({{"index", r.index},
                       {"case", r.case_id},
                       {"op", r.op},
                       {"device", r.device},
                       {"status", status_name(r.status)},
                       {"rel_err", rel_err_json(r.rel_err)},
                       {"tolerance", optional_json(r.tolerance)},
                       {"numeric_ok", optional_json(r.numeric_ok)},
                       {"cycles", optional_json(r.cycles)},
                       {"baseline_cycles", optional_json(r.baseline_cycles)},
                       {"cycle_change", optional_json(r.cycle_change)},
                       {"cycle_rel_tol", r.cycle_rel_tol},
                       {"cycle_check", r.cycle_check == CycleCheck::none ? json(nullptr)
                                                                         : json(cycle_check_name(r.cycle_check))},
                       {"message", r.message},
                       {"host_seconds", r.host_seconds}});
  }
  const Summary s = summarize(report.results);
  return {{"format", "anychip-suite-results"},
          {"version", 1},
          {"suite", report.suite},
          {"suite_file", report.suite_file},
          {"baseline_file", optional_json(report.baseline_file)},
          {"shard", {{"index", report.shard_index}, {"count", report.shard_count}}},
          {"total", report.total},
          {"host_seconds", report.host_seconds},
          {"summary", summary_json(s)},
          {"ok", s.ok()},
          {"results", results}};
}

Report report_from_json(const json& j, const std::string& file) {
  JsonReader r(file);
  r.expect_object(j, "",
                  {"format", "version", "suite", "suite_file", "baseline_file", "shard", "total",
                   "host_seconds", "summary", "ok", "results"});
  if (r.string(j.at("format"), "format") != "anychip-suite-results")
    r.fail("format", "expected \"anychip-suite-results\" (the output of `anychip suite run --json`)");
  if (r.integer(j.at("version"), "version") != 1) r.fail("version", "expected 1, the only version this anychip reads");
  Report rep;
  rep.suite = r.string(j.at("suite"), "suite");
  rep.suite_file = r.string(j.at("suite_file"), "suite_file");
  if (!j.at("baseline_file").is_null()) rep.baseline_file = r.string(j.at("baseline_file"), "baseline_file");
  r.expect_object(j.at("shard"), "shard", {"index", "count"});
  const std::int64_t count = r.integer(j.at("shard").at("count"), "shard.count");
  const std::int64_t index = r.integer(j.at("shard").at("index"), "shard.index");
  if (count < 1) r.fail("shard.count", "expected an integer >= 1");
  if (index < 0 || index >= count) r.fail("shard.index", "expected 0 <= index < count");
  rep.shard_index = static_cast<std::size_t>(index);
  rep.shard_count = static_cast<std::size_t>(count);
  const std::int64_t total = r.integer(j.at("total"), "total");
  if (total < 0) r.fail("total", "expected an integer >= 0");
  rep.total = static_cast<std::size_t>(total);
  rep.host_seconds = r.number(j.at("host_seconds"), "host_seconds");
  r.boolean(j.at("ok"), "ok");
  if (!j.at("summary").is_object()) r.fail("summary", "expected an object");

  const json& results = r.array(j.at("results"), "results");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const std::string p = JsonReader::index_path("results", i);
    const json& x = results[i];
    r.expect_object(x, p,
                    {"index", "case", "op", "device", "status", "rel_err", "tolerance", "numeric_ok", "cycles",
                     "baseline_cycles", "cycle_change", "cycle_rel_tol", "cycle_check", "message",
                     "host_seconds"});
    auto key = [&](const char* k) { return JsonReader::key_path(p, k); };
    PairResult pr;
    const std::int64_t idx = r.integer(x.at("index"), key("index"));
    if (idx < 0 || static_cast<std::size_t>(idx) >= rep.total)
      r.fail(key("index"), "expected 0 <= index < total (" + std::to_string(rep.total) + ")");
    pr.index = static_cast<std::size_t>(idx);
    pr.case_id = r.string(x.at("case"), key("case"));
    pr.op = r.string(x.at("op"), key("op"));
    pr.device = r.string(x.at("device"), key("device"));
    const std::string status = r.string(x.at("status"), key("status"));
    bool found = false;
    for (Status s : {Status::passed, Status::failed, Status::error, Status::skipped})
      if (status == status_name(s)) pr.status = s, found = true;
    if (!found) r.fail(key("status"), "expected passed, failed, error or skipped, got \"" + status + "\"");
    const json& re = x.at("rel_err");
    if (re.is_string() && re.get<std::string>() == "inf") pr.rel_err = INFINITY;
    else if (re.is_string() && re.get<std::string>() == "nan") pr.rel_err = NAN;
    else if (!re.is_null()) pr.rel_err = r.number(re, key("rel_err"));
    if (!x.at("tolerance").is_null()) pr.tolerance = r.number(x.at("tolerance"), key("tolerance"));
    if (!x.at("numeric_ok").is_null()) pr.numeric_ok = r.boolean(x.at("numeric_ok"), key("numeric_ok"));
    if (!x.at("cycles").is_null()) pr.cycles = r.unsigned_integer(x.at("cycles"), key("cycles"));
    if (!x.at("baseline_cycles").is_null())
      pr.baseline_cycles = r.unsigned_integer(x.at("baseline_cycles"), key("baseline_cycles"));
    if (!x.at("cycle_change").is_null()) pr.cycle_change = r.number(x.at("cycle_change"), key("cycle_change"));
    pr.cycle_rel_tol = r.number(x.at("cycle_rel_tol"), key("cycle_rel_tol"));
    if (!x.at("cycle_check").is_null()) {
      const std::string cc = r.string(x.at("cycle_check"), key("cycle_check"));
      bool known = false;
      for (CycleCheck c : {CycleCheck::ok, CycleCheck::regression, CycleCheck::faster, CycleCheck::no_baseline,
                           CycleCheck::missing_counter, CycleCheck::not_reported})
        if (cc == cycle_check_name(c)) pr.cycle_check = c, known = true;
      if (!known) r.fail(key("cycle_check"), "unknown cycle check \"" + cc + "\"");
    }
    pr.message = r.string(x.at("message"), key("message"));
    pr.host_seconds = r.number(x.at("host_seconds"), key("host_seconds"));
    rep.results.push_back(std::move(pr));
  }
  return rep;
}

void print_report(const Report& report, std::FILE* out) {
  std::size_t wc = 4, wd = 6;
  for (const PairResult& r : report.results) {
    wc = std::max(wc, r.case_id.size());
    wd = std::max(wd, r.device.size());
  }
  std::fprintf(out, "suite %s (%s)", report.suite.c_str(), report.suite_file.c_str());
  if (report.baseline_file) std::fprintf(out, ", baseline %s", report.baseline_file->c_str());
  if (report.shard_count > 1) std::fprintf(out, ", shard %zu/%zu", report.shard_index, report.shard_count);
  std::fprintf(out, "\n%-*s  %-*s  %9s  %9s  %12s  %8s  %s\n", static_cast<int>(wc), "case", static_cast<int>(wd),
               "device", "rel_err", "tolerance", "cycles", "vs base", "status");
  for (const PairResult& r : report.results) {
    std::fprintf(out, "%-*s  %-*s  %9s  %9s  %12s  %8s  %s\n", static_cast<int>(wc), r.case_id.c_str(),
                 static_cast<int>(wd), r.device.c_str(), r.rel_err ? sci(*r.rel_err).c_str() : "-",
                 r.tolerance ? sci(*r.tolerance).c_str() : "-",
                 r.cycles ? std::to_string(*r.cycles).c_str() : "-",
                 r.cycle_change ? percent(*r.cycle_change).c_str() : "-", status_text(r).c_str());
  }
  const Summary s = summarize(report.results);
  if (!s.ok()) {
    std::fprintf(out, "\nfailures:\n");
    for (const PairResult& r : report.results)
      if (r.status == Status::failed || r.status == Status::error)
        std::fprintf(out, "  %s on %s: %s\n", r.case_id.c_str(), r.device.c_str(), status_text(r).c_str());
  }
  std::fprintf(out, "\n%zu runs: %zu passed, %zu failed, %zu errors, %zu skipped", s.runs, s.passed, s.failed,
               s.errors, s.skipped);
  if (report.updating_baseline) {
    std::fprintf(out, "; baseline rewritten with the cycles of the runs that passed");
  } else {
    if (s.faster) std::fprintf(out, "; %zu faster than the baseline (update it)", s.faster);
    if (s.no_baseline) std::fprintf(out, "; %zu without a baseline", s.no_baseline);
  }
  std::fprintf(out, "; %.1f s\n%s\n", report.host_seconds, s.ok() ? "suite: PASSED" : "suite: FAILED");
}

std::string junit_xml(const Report& report) {
  // Devices in order of first appearance, each with its results.
  std::vector<std::string> devices;
  std::map<std::string, std::vector<const PairResult*>> by_device;
  for (const PairResult& r : report.results) {
    if (!by_device.count(r.device)) devices.push_back(r.device);
    by_device[r.device].push_back(&r);
  }
  const Summary all = summarize(report.results);
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += "<testsuites name=\"" + xml_escape(report.suite) + "\" tests=\"" + std::to_string(all.runs) +
       "\" failures=\"" + std::to_string(all.failed) + "\" errors=\"" + std::to_string(all.errors) +
       "\" skipped=\"" + std::to_string(all.skipped) + "\" time=\"" + seconds_attr(report.host_seconds) + "\">\n";
  for (const std::string& device : devices) {
    std::vector<PairResult> rs;
    double seconds = 0;
    for (const PairResult* r : by_device[device]) {
      rs.push_back(*r);
      seconds += r->host_seconds;
    }
    const Summary s = summarize(rs);
    const std::string suite_name = xml_escape(report.suite + "." + device);
    x += "  <testsuite name=\"" + suite_name + "\" tests=\"" + std::to_string(s.runs) + "\" failures=\"" +
         std::to_string(s.failed) + "\" errors=\"" + std::to_string(s.errors) + "\" skipped=\"" +
         std::to_string(s.skipped) + "\" time=\"" + seconds_attr(seconds) + "\">\n";
    x += "    <properties>\n      <property name=\"device\" value=\"" + xml_escape(device) +
         "\"/>\n      <property name=\"suite_file\" value=\"" + xml_escape(report.suite_file) + "\"/>\n";
    if (report.baseline_file)
      x += "      <property name=\"baseline_file\" value=\"" + xml_escape(*report.baseline_file) + "\"/>\n";
    x += "    </properties>\n";
    for (const PairResult& r : rs) {
      x += "    <testcase name=\"" + xml_escape(r.case_id) + "\" classname=\"" + suite_name + "\" time=\"" +
           seconds_attr(r.host_seconds) + "\">\n";
      switch (r.status) {
        case Status::failed:
          x += std::string("      <failure type=\"") + (r.numeric_ok == false ? "numeric" : "cycles") +
               "\" message=\"" + xml_escape(r.message) + "\">" + xml_escape(details(r)) + "</failure>\n";
          break;
        case Status::error:
          x += "      <error type=\"error\" message=\"" + xml_escape(r.message) + "\">" + xml_escape(details(r)) +
               "</error>\n";
          break;
        case Status::skipped: x += "      <skipped message=\"" + xml_escape(r.message) + "\"/>\n"; break;
        case Status::passed: break;
      }
      if (r.status != Status::skipped) {
        std::string out = details(r);
        if (r.status == Status::passed && !r.message.empty()) out = r.message + "\n" + out;
        x += "      <system-out>" + xml_escape(out) + "</system-out>\n";
      }
      x += "    </testcase>\n";
    }
    x += "  </testsuite>\n";
  }
  x += "</testsuites>\n";
  return x;
}

}  // namespace anychip::cli::suite
