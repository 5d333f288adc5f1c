// A one-line progress display for long runs, shown on a terminal and silent otherwise.
//
//   anychip::Progress progress("prefill", layers.size());
//   for (auto& layer : layers) {
//     progress.step("layer " + layer.name);   // "prefill [3/61] layer 2 (12 s)"
//     ...
//   }                                         // the line is erased when progress goes
//
// It writes to stderr only, never to stdout (which may carry JSON). It is on when stderr
// is a terminal, where it redraws one line in place, and once a second with the time
// elapsed, so a step that takes minutes still shows that it runs. Call clear() before
// printing to the same terminal while it is shown. ANYCHIP_PROGRESS=0 turns it off;
// ANYCHIP_PROGRESS=1 turns it on even when stderr is not a terminal (a CI log), where each
// update is a line of its own.
//
// Threads: every member may be called from several threads at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace anychip {

class Progress {
 public:
  // `prefix` starts every line (a device, a phase); `total` is the number of steps
  // expected, 0 when unknown (no count is shown then).
  explicit Progress(std::string prefix = {}, std::size_t total = 0);
  ~Progress();  // erases the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Whether anything is shown: see the top of this file.
  bool enabled() const { return mode_ != Mode::off; }

  // Shows `what` without counting a step ("compiling", "checking").
  void show(std::string_view what);
  // Counts one step and shows `what` beside the count: "[3/9] what". Whether `what` names
  // the step just begun or just finished is the caller's choice.
  void step(std::string_view what);
  void set_total(std::size_t total);
  // Erases the line, e.g. before printing to the same terminal; the next update redraws.
  void clear();

 private:
  enum class Mode { off, terminal, lines };
  void draw();  // mu_ held

  Mode mode_;
  std::string prefix_, what_;
  std::size_t total_, done_ = 0;
  bool drawn_ = false, stop_ = false;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::thread ticker_;  // terminal only: redraws the elapsed time
};

}  // namespace anychip
