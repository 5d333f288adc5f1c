#include "layer_config.hpp"

#include <cmath>

#include "anychip/error.hpp"

namespace deepseek_layer {

using anychip::Error;
using anychip::ErrorCode;

double LayerConfig::softmax_scale() const {
  const double mscale = anychip::yarn_mscale(rope_scaling.factor);
  return mscale * mscale / std::sqrt(static_cast<double>(qk_dim()));
}

std::string LayerConfig::summary() const {
  auto s = [](std::int64_t v) { return std::to_string(v); };
  return "hidden " + s(hidden) + ", " + s(heads) + " heads, q_lora " + s(q_lora) + ", kv_lora " +
         s(kv_lora) + " + rope " + s(rope) + ", " + s(experts) + " experts (" + s(groups) +
         " groups, top-" + s(top_groups) + " groups, top-" + s(top_k) + "), moe_intermediate " +
         s(moe_inter) + ", " + s(shared_experts) + " shared";
}

LayerConfig preset(std::string_view scale) {
  LayerConfig c;
  c.scale = std::string(scale);
  if (scale == "full") return c;
  // Scaled down: hidden, heads, q_lora, experts and moe_intermediate shrink; the MLA head
  // dims and the 512 + 64 latent do not (the absorbed attention stays Dk 576 / Dv 512),
  // nor do top-8 of 8 groups with the top-4 groups kept, so routing keeps its shape.
  if (scale == "small") {
    c.hidden = 1024;
    c.heads = 16;
    c.q_lora = 512;
    c.experts = 64;  // 8 per group
    c.moe_inter = 256;
    return c;
  }
  if (scale == "tiny") {
    c.hidden = 256;
    c.heads = 2;
    c.q_lora = 256;
    c.experts = 32;  // 4 per group: the group score (sum of the two best) still chooses
    c.moe_inter = 128;
    return c;
  }
  throw Error(ErrorCode::InvalidArgument,
              "--scale: unknown scale '" + std::string(scale) + "' (tiny, small or full)");
}

void validate(const LayerConfig& c) {
  auto fail = [](const std::string& rule) { throw Error(ErrorCode::InvalidArgument, rule); };
  auto positive = [&](const char* name, std::int64_t v) {
    if (v <= 0) fail(std::string(name) + " " + std::to_string(v) + " must be > 0");
  };
  positive("hidden", c.hidden);
  positive("heads", c.heads);
  positive("q_lora", c.q_lora);
  positive("experts", c.experts);
  positive("moe_intermediate", c.moe_inter);
  positive("shared_experts", c.shared_experts);
  positive("top_k", c.top_k);
  // K of q_a/kv_a/gate|up (hidden), q_b (q_lora), down (moe_intermediate), kv_b (kv_lora),
  // o_proj (heads * v_dim) and the N of both grouped GEMMs (2 I, hidden).
  auto multiple_of_128 = [&](const char* name, std::int64_t v, const char* why) {
    if (v % 128 != 0)
      fail(std::string(name) + " " + std::to_string(v) + " is not a multiple of 128 (" + why + ")");
  };
  multiple_of_128("hidden", c.hidden,
                  "K of q_a_proj, kv_a_proj and the expert gate/up GEMM; N of down");
  multiple_of_128("q_lora", c.q_lora, "K of q_b_proj");
  multiple_of_128("moe_intermediate", c.moe_inter,
                  "K of the expert down GEMM, 128-row weight blocks per expert");
  if (c.kv_lora != 512 || c.rope != 64 || c.nope != 128 || c.v_dim != 128)
    fail(
        "the MLA head dims are fixed at kv_lora 512, rope 64, nope 128, v 128 (absorbed decode: Dk "
        "576, Dv 512)");
  if (c.experts % c.groups != 0)
    fail("groups " + std::to_string(c.groups) + " does not divide experts " +
         std::to_string(c.experts));
  if (c.top_groups > c.groups || c.top_k > c.top_groups * (c.experts / c.groups))
    fail("top_k " + std::to_string(c.top_k) + " exceeds the experts of the top " +
         std::to_string(c.top_groups) + " groups");
}

}  // namespace deepseek_layer
