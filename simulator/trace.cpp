// Chrome trace / Perfetto JSON of a simulated run: one process per core, one thread per
// pipe, complete ("X") events whose times are microseconds of simulated time.
#include <algorithm>
#include <cstdio>
#include <set>
#include <string>

#include "simulator/engine.hpp"

namespace anychip::sim {
namespace {

void append_escaped(std::string& out, std::string_view s) {
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += ch;
    }
  }
}

}  // namespace

std::string chrome_trace_json(const ChipDesc& chip, std::span<const TraceEvent> events) {
  std::set<std::int64_t> cores;
  for (const TraceEvent& e : events) cores.insert(e.core);
  const double us_per_cycle = 1e6 / chip.clock_hz;

  std::string out = "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"chip\":\"";
  append_escaped(out, chip.name);
  out += "\",\"clock_hz\":" + std::to_string(chip.clock_hz) + "},\"traceEvents\":[\n";
  bool first = true;
  auto sep = [&] {
    if (!first) out += ",\n";
    first = false;
  };
  char buf[160];
  for (std::int64_t core : cores) {
    sep();
    std::snprintf(buf, sizeof buf,
                  "{\"ph\":\"M\",\"pid\":%lld,\"name\":\"process_name\",\"args\":{\"name\":\"core %lld\"}}",
                  static_cast<long long>(core), static_cast<long long>(core));
    out += buf;
    out += ",\n";
    std::snprintf(buf, sizeof buf, "{\"ph\":\"M\",\"pid\":%lld,\"name\":\"process_sort_index\",\"args\":{\"sort_index\":%lld}}",
                  static_cast<long long>(core), static_cast<long long>(core));
    out += buf;
    for (int p = 0; p < kPipes; ++p) {
      const std::string_view name = pipe_name(static_cast<Pipe>(p));
      std::snprintf(buf, sizeof buf,
                    ",\n{\"ph\":\"M\",\"pid\":%lld,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"%.*s\"}}"
                    ",\n{\"ph\":\"M\",\"pid\":%lld,\"tid\":%d,\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":%d}}",
                    static_cast<long long>(core), p, static_cast<int>(name.size()), name.data(),
                    static_cast<long long>(core), p, p);
      out += buf;
    }
  }
  for (const TraceEvent& e : events) {
    sep();
    std::snprintf(buf, sizeof buf, "{\"ph\":\"X\",\"pid\":%lld,\"tid\":%d,\"ts\":%.6f,\"dur\":%.6f,\"name\":\"",
                  static_cast<long long>(e.core), static_cast<int>(e.pipe), e.start_cycle * us_per_cycle,
                  (e.end_cycle - e.start_cycle) * us_per_cycle);
    out += buf;
    append_escaped(out, e.name);
    std::snprintf(buf, sizeof buf, "\",\"args\":{\"start_cycle\":%.1f,\"cycles\":%.1f}}", e.start_cycle,
                  e.end_cycle - e.start_cycle);
    out += buf;
  }
  out += "\n]}\n";
  return out;
}

}  // namespace anychip::sim
