// The conformance suite: every op against the float64 reference, written once and run on
// any device (the IREE HAL CTS and ggml's test-backend-ops are the models).
//
// Each case is a small graph: one op under test, preceded where needed by the ops that make
// its index operands valid the way a model does (logits -> moe_topk -> moe_plan -> ...);
// every kernel of the graph is checked. On a device a case ends as one of:
//   Pass / Fail            ran, and rel_err is within / beyond the op's tolerance;
//   Unsupported            the device can never run it (its backend's supports() says no);
//   ExpectedFailure        a known bug, listed in expected_failures() with its reason;
//   UnexpectedPass         listed as a known bug but passed: remove the entry.
// Fail and UnexpectedPass are failures of the run. Inputs are fresh random tensors (never
// zeros; an input that random values would make invalid, like rope's positions, has its
// own maker), outputs are poisoned first so that an unwritten element fails (NaN bytes;
// 0x7F bytes for i32, whose all-ones -1 is a valid padding entry).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "anychip/anychip.hpp"

namespace anychip::conformance {

// The contents of one graph input of type t, for a seed.
using InputMaker = std::function<HostTensor(const TensorType& t, std::uint64_t seed)>;

struct Case {
  std::string name;  // "gemm_fp8/m37_n130_k384_ue8m0_bf16", unique
  ir::Graph graph;   // the op under test (and the ops and views that feed it)
  // Makers by graph input name; any other input is HostTensor::random.
  std::map<std::string, InputMaker> inputs = {};
};

// Graph input i of case c for this seed: its maker in c.inputs, else HostTensor::random.
HostTensor make_input(const Case& c, std::size_t i, std::uint64_t seed);

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
