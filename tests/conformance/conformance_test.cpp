// The conformance suite (anychip/conformance.hpp) on every device `anychip devices` lists:
// one test per case and available device; one skipped test per unavailable device, with
// its reason.
#include <random>

#include <gtest/gtest.h>

#include "anychip/conformance.hpp"

using namespace anychip;

namespace {

struct Param {
  std::string device;
  std::string case_name;  // empty for an unavailable device
  std::string reason;     // why the device is unavailable
};

// How gtest prints a parameter (instead of its bytes).
void PrintTo(const Param& p, std::ostream* os) { *os << p.device << " " << p.case_name; }

std::vector<Param> params() {
  std::vector<Param> ps;
  for (const DeviceInfo& d : list_devices()) {
    if (!d.available) {
      ps.push_back({d.id, "", d.unavailable_reason});
      continue;
    }
    for (const conformance::Case& c : conformance::cases()) ps.push_back({d.id, c.name, ""});
  }
  return ps;
}

std::string test_name(const ::testing::TestParamInfo<Param>& info) {
  std::string s = info.param.device + "__" + (info.param.case_name.empty() ? "unavailable" : info.param.case_name);
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

class Conformance : public ::testing::TestWithParam<Param> {};

TEST_P(Conformance, MatchesTheReference) {
  const Param& p = GetParam();
  if (p.case_name.empty()) GTEST_SKIP() << p.device << " is unavailable: " << p.reason;
  static std::mt19937_64 seeds(std::random_device{}());
  const std::uint64_t seed = seeds();
  const auto& cs = conformance::cases();
  auto it = std::find_if(cs.begin(), cs.end(), [&](const auto& c) { return c.name == p.case_name; });
  ASSERT_NE(it, cs.end());
  Device device = Device::open(p.device);
  conformance::Result r = conformance::run_case(*it, device, seed);
  switch (r.outcome) {
    case conformance::Outcome::Pass: break;
    case conformance::Outcome::Unsupported: GTEST_SKIP() << "unsupported: " << r.detail;
    case conformance::Outcome::ExpectedFailure: GTEST_SKIP() << "expected failure: " << r.detail;
    default: FAIL() << conformance::outcome_name(r.outcome) << " (seed " << seed << "): " << r.detail;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, Conformance, ::testing::ValuesIn(params()), test_name);

TEST(ConformanceSuite, CoversEveryOpOfTheOpTable) {
  for (const ir::OpInfo& op : ir::all_ops()) {
    bool covered = false;
    for (const auto& c : conformance::cases())
      for (const ir::Node& n : c.graph.nodes()) covered = covered || n.op == op.kind;
    EXPECT_TRUE(covered) << op.name << " has no conformance case";
  }
}

TEST(ConformanceSuite, CaseNamesAreUnique) {
  std::set<std::string> names;
  for (const auto& c : conformance::cases()) EXPECT_TRUE(names.insert(c.name).second) << c.name;
}

}  // namespace
