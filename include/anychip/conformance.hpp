// The conformance suite: every op against the float64 reference, written once and run on
// any device (the IREE HAL CTS and ggml's test-backend-ops are the models).
//
// Each case is a one-op graph. On a device a case ends as one of:
//   Pass / Fail            ran, and rel_err is within / beyond the op's tolerance;
//   Unsupported            the device can never run it (its backend's supports() says no);
//   ExpectedFailure        a known bug, listed in expected_failures() with its reason;
//   UnexpectedPass         listed as a known bug but passed: remove the entry.
// Fail and UnexpectedPass are failures of the run. Inputs are fresh random tensors (never
// zeros), outputs are poisoned with NaN bytes first so that an unwritten element fails.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "anychip/anychip.hpp"

namespace anychip::conformance {

struct Case {
  std::string name;  // "gemm_fp8/m37_n130_k384_ue8m0_bf16", unique
  ir::Graph graph;   // one kernel op (and views)
};

// The suite, in a fixed order.
const std::vector<Case>& cases();

// A known bug on some devices: devices whose id starts with `device_prefix`, cases whose
// name starts with `case_prefix`.
struct KnownFailure {
  std::string device_prefix;
  std::string case_prefix;
  std::string reason;
};
std::span<const KnownFailure> expected_failures();

enum class Outcome { Pass, Fail, Unsupported, ExpectedFailure, UnexpectedPass };
std::string_view outcome_name(Outcome o);  // "pass", "FAIL", "unsupported", "xfail", "XPASS"
constexpr bool is_failure(Outcome o) { return o == Outcome::Fail || o == Outcome::UnexpectedPass; }

struct Result {
  std::string case_name;
  std::string device;
  Outcome outcome = Outcome::Fail;
  double rel_err = 0, tolerance = 0;
  std::string detail;  // the reason for unsupported/xfail, or the error, or the failing kernel
};

// Runs one case on `device` (compile without the on-disk cache, run, check). Never throws
// for what the device does: a device error becomes a Fail with the message as detail.
Result run_case(const Case& c, const Device& device, std::uint64_t seed);

// Runs every case whose name starts with `filter` ("" = all).
std::vector<Result> run(const Device& device, std::uint64_t seed, std::string_view filter = "");

}  // namespace anychip::conformance
