// Rotary position embedding frequencies, one definition for every backend.
//
// Pair i of the rotated columns (0 <= i < rot/2) turns by pos * rope_inv_freq(i, ...)
// radians. Without scaling that is theta^(-2i/rot). With YaRN scaling (factor > 1), as
// DeepSeek-V3 deploys it (`rope_scaling` in its config: factor 40, original context 4096,
// beta_fast 32, beta_slow 1; inference/model.py, precompute_freqs_cis), pairs that turn
// fewer than beta_slow times over the original context are slowed down by `factor`, pairs
// that turn more than beta_fast times keep their frequency, and a linear ramp over the
// pair index joins the two. The attention that reads such keys also scales its softmax by
// yarn_mscale(factor)^2 (the model's job: the attention op's `scale` attribute).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace anychip {

struct RopeScaling {
  double factor = 1;              // 1: no scaling
  std::int64_t original_len = 0;  // the context the model was trained at (factor > 1)
  double beta_fast = 32, beta_slow = 1;
  friend bool operator==(const RopeScaling&, const RopeScaling&) = default;
};

// The inverse frequency of pair i of `rot` rotated columns, in double.
inline double rope_inv_freq(std::int64_t i, std::int64_t rot, double theta, const RopeScaling& s = {}) {
  const double d = static_cast<double>(rot);
  const double freq = std::pow(theta, -2.0 * static_cast<double>(i) / d);
  if (!(s.factor > 1)) return freq;
  // The pair index at which a pair turns `turns` times over the original context.
  auto pair_turning = [&](double turns) {
    return d * std::log(static_cast<double>(s.original_len) / (turns * 2 * std::numbers::pi)) /
           (2 * std::log(theta));
  };
  const double low = std::max(std::floor(pair_turning(s.beta_fast)), 0.0);
  double high = std::min(std::ceil(pair_turning(s.beta_slow)), d - 1);
  if (low == high) high += 0.001;
  const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
  return freq / s.factor * ramp + freq * (1 - ramp);
}

// YaRN's attention-scale correction 0.1 * ln(factor) + 1 (1 without scaling); the softmax
// scale is multiplied by its square.
inline double yarn_mscale(double factor) { return factor > 1 ? 0.1 * std::log(factor) + 1 : 1; }

}  // namespace anychip
