// RoPE frequencies (anychip/rope.hpp) against DeepSeek-V3's YaRN recipe, worked by hand.
#include <cmath>

#include <gtest/gtest.h>

#include "anychip/rope.hpp"

namespace anychip {
namespace {

double plain(std::int64_t i) { return std::pow(10000.0, -2.0 * static_cast<double>(i) / 64); }

TEST(Rope, WithoutScalingTheFrequencyIsThetaToTheMinus2iOverRot) {
  for (std::int64_t i = 0; i < 32; ++i) EXPECT_EQ(rope_inv_freq(i, 64, 10000), plain(i)) << i;
  EXPECT_EQ(yarn_mscale(1), 1.0);
}

// DeepSeek-V3: rot 64, theta 10000, factor 40, original context 4096, beta 32 / 1. The
// pair turning 32 times over 4096 positions is 64 ln(4096 / (32 * 2 pi)) / (2 ln 10000) =
// 10.47, floored to 10; the one turning once is 22.54, ceiled to 23. Pairs up to 10 keep
// their frequency, pairs from 23 on are slowed 40x, in between a linear ramp.
TEST(Rope, YarnFollowsDeepSeekV3) {
  const RopeScaling v3{40, 4096, 32, 1};
  for (std::int64_t i = 0; i <= 10; ++i) EXPECT_DOUBLE_EQ(rope_inv_freq(i, 64, 10000, v3), plain(i)) << i;
  for (std::int64_t i = 23; i < 32; ++i) EXPECT_DOUBLE_EQ(rope_inv_freq(i, 64, 10000, v3), plain(i) / 40) << i;
  const double ramp = (16.0 - 10) / (23 - 10);
  EXPECT_DOUBLE_EQ(rope_inv_freq(16, 64, 10000, v3), plain(16) / 40 * ramp + plain(16) * (1 - ramp));
  EXPECT_NEAR(yarn_mscale(40), 1.3688879454113936, 1e-15);  // 0.1 ln 40 + 1
}

}  // namespace
}  // namespace anychip
