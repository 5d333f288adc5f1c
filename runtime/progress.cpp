#include "anychip/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace anychip {
namespace {

std::size_t terminal_columns() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

// Cuts `s` to at most `bytes` bytes without splitting a UTF-8 sequence: a line wider than
// the terminal wraps, and "\r" then redraws only its last row.
std::string fit(std::string s, std::size_t bytes) {
  if (s.size() <= bytes) return s;
  std::size_t n = bytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

}  // namespace

Progress::Progress(std::string prefix, std::size_t total)
    : prefix_(std::move(prefix)), total_(total), start_(std::chrono::steady_clock::now()) {
  const char* env = std::getenv("ANYCHIP_PROGRESS");
  if (env && std::strcmp(env, "0") == 0)
    mode_ = Mode::off;
  else if (::isatty(STDERR_FILENO) == 1)
    mode_ = Mode::terminal;
  else
    mode_ = env && std::strcmp(env, "1") == 0 ? Mode::lines : Mode::off;
  if (mode_ == Mode::terminal)
    ticker_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; }))
        if (drawn_) draw();
    });
}

Progress::~Progress() {
  if (ticker_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    ticker_.join();
  }
  clear();
}

void Progress::show(std::string_view what) {
  if (mode_ == Mode::off) return;
  std::lock_guard lock(mu_);
  what_ = what;
  draw();
}

void Progress::step(std::string_view what) {
  if (mode_ == Mode::off) return;
  std::lock_guard lock(mu_);
  ++done_;
  what_ = what;
  draw();
}

void Progress::set_total(std::size_t total) {
  std::lock_guard lock(mu_);
  total_ = total;
}

void Progress::clear() {
  if (mode_ != Mode::terminal) return;
  std::lock_guard lock(mu_);
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

void Progress::draw() {
  const std::string& what = what_;
  std::string line = prefix_;
  if (total_ > 0) {
    if (!line.empty()) line += ' ';
    line += '[';
    line += std::to_string(done_);
    line += '/';
    line += std::to_string(total_);
    line += ']';
  }
  if (!what.empty()) {
    if (!line.empty()) line += ' ';
    line += what;
  }
  // The elapsed time says the run is alive when one step takes long.
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_).count();
  if (seconds >= 1) line += " (" + std::to_string(seconds) + " s)";
  if (mode_ == Mode::terminal) {
    line = fit(std::move(line), terminal_columns() - 1);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    drawn_ = true;
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace anychip
