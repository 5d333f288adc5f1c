// Self-contained HTML performance reports: per-kernel tables, rooflines against the chip's
// ceilings, pipe utilization on simulated chips, and devices side by side.
//
//   anychip::Report report("DeepSeek-V3 layer, 1/8 scale");
//   anychip::ReportSection& prefill = report.add_section("prefill, 512 tokens");
//   for (const char* id : {"sim:npu-ue8m0", "sim:npu-fp32scale", "sim:h800"}) {
//     anychip::Device device = anychip::Device::open(id);
//     anychip::Executable exe = anychip::compile(graph, device);
//     anychip::Stream stream = device.create_stream();
//     ... upload inputs, exe.run(stream, inputs, outputs) ...
//     std::vector<anychip::KernelCheck> checks = exe.check_last_run(stream);  // optional
//     prefill.runs.push_back(anychip::capture_run(exe, stream, &checks));
//   }
//   anychip::write_html_report("layer.report.html", report);
//
// The page needs nothing but a browser: CSS, SVG charts and a little JavaScript (hover
// highlighting) are inline, and the numbers are embedded as JSON in
// <script type="application/json" id="anychip-report-data"> for other tools to read. The
// tables and charts are plain HTML and SVG, so the page reads and prints without JavaScript.
// Every string from a graph or a device is escaped.
//
// Threads: the functions keep no state; a Report is a plain value.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "anychip/anychip.hpp"

namespace anychip {

// One roof of a roofline: a peak rate of the device.
struct Ceiling {
  std::string name;        // "FP8 matrix", "HBM"
  double per_second = 0;   // FLOP/s for a compute ceiling, bytes/s for a memory one
};

struct Ceilings {
  std::vector<Ceiling> compute;  // FLOP/s, highest first
  std::vector<Ceiling> memory;   // bytes/s
  std::string note;              // where the numbers come from, or why there are none
};

// The peaks anychip knows for a device. sim:* devices: from the chip description (matrix
// unit per operand type, vector unit, HBM). Other devices: none, with a note saying so;
// nothing is guessed.
Ceilings device_ceilings(const DeviceInfo& device);

// One run of a graph on one device. The vectors are per kernel, in kernels' order.
struct ReportRun {
  DeviceInfo device;
  std::vector<KernelInfo> kernels;
  std::vector<double> seconds;                          // device seconds of each kernel
  std::vector<std::map<std::string, double>> counters;  // Executable::last_kernel_counters(); may be empty
  std::vector<KernelCheck> checks;                      // one per kernel, or empty when no check ran
  Ceilings ceilings;
  std::string note;  // shown with the device: "median of 5 runs", "timing only"
};

// The last run of `exe` on `stream` (synchronizes), with the device's ceilings. `checks`,
// when given, is what exe.check_last_run(stream) returned.
ReportRun capture_run(const Executable& exe, Stream& stream, const std::vector<KernelCheck>* checks = nullptr);

// One graph on one or more devices; the first run is the one the others are compared with.
// Kernels are matched across runs by label.
struct ReportSection {
  std::string title;  // "graph @deepseek_block", "decode, batch 32"
  std::vector<ReportRun> runs;
};

struct Report {
  Report() = default;
  explicit Report(std::string report_title, std::string report_subtitle = {})
      : title(std::move(report_title)), subtitle(std::move(report_subtitle)) {}

  std::string title;
  std::string subtitle;  // one line under the title: the command, the date
  std::vector<ReportSection> sections;

  ReportSection& add_section(std::string section_title) {
    sections.push_back(ReportSection{std::move(section_title), {}});
    return sections.back();
  }
};

// The page. Throws InvalidArgument, naming the section and device, when a run's vectors
// disagree in length with its kernels.
std::string html_report(const Report& report);

// Writes html_report(report) to `path` atomically (a temporary file beside it, renamed into
// place), so a reader never sees half a page. Throws IoError naming the path and the reason.
void write_html_report(const std::string& path, const Report& report);

}  // namespace anychip
