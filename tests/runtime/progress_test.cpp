// The progress line: on stderr only, silent when stderr is not a terminal unless
// ANYCHIP_PROGRESS=1, off with ANYCHIP_PROGRESS=0.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "anychip/progress.hpp"

namespace {

// Runs `body` with stderr and stdout sent to files; returns what each received.
struct Captured {
  std::string out, err;
};

template <class F>
Captured capture(F body) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string out_path = (dir / ("anychip-progress-out-" + std::to_string(::getpid()))).string();
  const std::string err_path = (dir / ("anychip-progress-err-" + std::to_string(::getpid()))).string();
  std::fflush(stdout), std::fflush(stderr);
  const int saved_out = ::dup(STDOUT_FILENO), saved_err = ::dup(STDERR_FILENO);
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::dup2(out_fd, STDOUT_FILENO), ::dup2(err_fd, STDERR_FILENO);
  body();
  std::fflush(stdout), std::fflush(stderr);
  ::dup2(saved_out, STDOUT_FILENO), ::dup2(saved_err, STDERR_FILENO);
  for (int fd : {out_fd, err_fd, saved_out, saved_err}) ::close(fd);
  // A line shows the elapsed time once a second has passed; a slow machine may get there.
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    std::filesystem::remove(path);
    return std::regex_replace(s.str(), std::regex(R"( \(\d+ s\))"), "");
  };
  return {slurp(out_path), slurp(err_path)};
}

class ProgressTest : public ::testing::Test {
 protected:
  void TearDown() override { ::unsetenv("ANYCHIP_PROGRESS"); }
};

TEST_F(ProgressTest, SilentWhenStderrIsNotATerminal) {
  ::unsetenv("ANYCHIP_PROGRESS");
  Captured c = capture([] {
    anychip::Progress p("sim:h800", 2);
    EXPECT_FALSE(p.enabled());
    p.step("timed run");
    p.show("checking");
  });
  EXPECT_EQ(c.err, "");
  EXPECT_EQ(c.out, "");
}

TEST_F(ProgressTest, ForcedOnWritesOneLinePerUpdateToStderrOnly) {
  ::setenv("ANYCHIP_PROGRESS", "1", 1);
  Captured c = capture([] {
    anychip::Progress p("sim:h800", 2);
    EXPECT_TRUE(p.enabled());
    p.show("compiling");
    p.step("warm-up run");
    p.step("timed run");
    p.set_total(0);
    p.show("checking");
  });
  EXPECT_EQ(c.err, "sim:h800 [0/2] compiling\nsim:h800 [1/2] warm-up run\nsim:h800 [2/2] timed run\nsim:h800 checking\n");
  EXPECT_EQ(c.out, "");
}

// On a terminal (a pseudo-terminal 24 columns wide here) the line is redrawn in place, cut
// to the width so that it never wraps, and erased at the end.
TEST_F(ProgressTest, OnATerminalRedrawsOneLineCutToTheWidthAndErasesIt) {
  ::unsetenv("ANYCHIP_PROGRESS");
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave, 0);
  winsize ws{};
  ws.ws_col = 24, ws.ws_row = 10;
  ASSERT_EQ(::ioctl(slave, TIOCSWINSZ, &ws), 0);
  std::fflush(stderr);
  const int saved_err = ::dup(STDERR_FILENO);
  ::dup2(slave, STDERR_FILENO);
  {
    anychip::Progress p("sim:npu", 3);
    EXPECT_TRUE(p.enabled());
    p.step("a");
    p.step("a step with a long name");
  }
  std::fflush(stderr);
  ::dup2(saved_err, STDERR_FILENO);
  ::close(saved_err);
  std::string got;
  ::fcntl(master, F_SETFL, O_NONBLOCK);
  char buf[256];
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  ::close(slave);
  ::close(master);
  // Once a second the line is redrawn with the time; a slow machine may see that happen.
  got = std::regex_replace(got, std::regex(R"( \(\d+ s\))"), "");
  got = std::regex_replace(got, std::regex("(\r\033\\[K[^\r]+)\\1+"), "$1");
  EXPECT_EQ(got, "\r\033[Ksim:npu [1/3] a\r\033[Ksim:npu [2/3] a step wi\r\033[K");
}

// A step that takes long is redrawn with the time elapsed, without a call. (The wait ends
// as soon as the redraw arrives; its bound only keeps a broken ticker from hanging.)
TEST_F(ProgressTest, OnATerminalTheElapsedTimeTicksDuringALongStep) {
  ::unsetenv("ANYCHIP_PROGRESS");
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave, 0);
  ::fcntl(master, F_SETFL, O_NONBLOCK);
  std::string got;
  auto drain = [&] {
    char buf[256];
    for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  };
  std::fflush(stderr);
  const int saved_err = ::dup(STDERR_FILENO);
  ::dup2(slave, STDERR_FILENO);
  {
    anychip::Progress p("sim:h800", 1);
    p.step("timed run");
    for (int i = 0; i < 600 && got.find(" s)") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      drain();
    }
  }
  std::fflush(stderr);
  ::dup2(saved_err, STDERR_FILENO);
  ::close(saved_err);
  drain();
  ::close(slave);
  ::close(master);
  EXPECT_EQ(got.rfind("\r\033[Ksim:h800 [1/1] timed run\r\033[Ksim:h800 [1/1] timed run (", 0), 0u) << got;
  EXPECT_EQ(got.substr(got.size() - 4), "\r\033[K") << "erased at the end";
}

TEST_F(ProgressTest, ZeroTurnsItOff) {
  ::setenv("ANYCHIP_PROGRESS", "0", 1);
  Captured c = capture([] {
    anychip::Progress p("x", 1);
    EXPECT_FALSE(p.enabled());
    p.step("a");
  });
  EXPECT_EQ(c.err, "");
}

TEST_F(ProgressTest, StepsFromManyThreadsAreEachCountedOnce) {
  ::setenv("ANYCHIP_PROGRESS", "1", 1);
  Captured c = capture([] {
    anychip::Progress p("suite", 400);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < 100; ++i) p.step("case");
      });
    for (auto& t : threads) t.join();
  });
  std::istringstream lines(c.err);
  std::size_t n = 0;
  std::string last;
  for (std::string line; std::getline(lines, line); ++n) last = line;
  EXPECT_EQ(n, 400u);
  EXPECT_EQ(last, "suite [400/400] case");
}

}  // namespace
