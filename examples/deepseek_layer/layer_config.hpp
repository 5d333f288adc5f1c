// The sizes of one DeepSeek-V3 MoE decoder layer (config.json of deepseek-ai/DeepSeek-V3),
// and the scaled-down variants the example runs by default.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "anychip/rope.hpp"

namespace deepseek_layer {

struct LayerConfig {
  std::string scale = "full";       // the preset it came from, for titles
  std::int64_t hidden = 7168;       // hidden_size
  std::int64_t heads = 128;         // num_attention_heads
  std::int64_t q_lora = 1536;       // q_lora_rank
  std::int64_t kv_lora = 512;       // kv_lora_rank
  std::int64_t nope = 128;          // qk_nope_head_dim
  std::int64_t rope = 64;           // qk_rope_head_dim
  std::int64_t v_dim = 128;         // v_head_dim
  std::int64_t experts = 256;       // n_routed_experts
  std::int64_t top_k = 8;           // num_experts_per_tok
  std::int64_t groups = 8;          // n_group
  std::int64_t top_groups = 4;      // topk_group
  double routed_scale = 2.5;        // routed_scaling_factor
  std::int64_t moe_inter = 2048;    // moe_intermediate_size
  std::int64_t shared_experts = 1;  // n_shared_experts
  double rms_eps = 1e-6;            // rms_norm_eps
  double rope_theta = 10000;        // rope_theta
  // rope_scaling: YaRN, factor 40 over the original 4096-token context, beta_fast 32,
  // beta_slow 1 (DeepSeek-V3 serves up to 16384 > 4096 tokens, so its inference code
  // always applies it; anychip/rope.hpp).
  anychip::RopeScaling rope_scaling{40, 4096, 32, 1};
  std::int64_t layer = 3;           // first_k_dense_replace: layers >= 3 are MoE

  std::int64_t qk_dim() const { return nope + rope; }         // 192
  std::int64_t latent_dim() const { return kv_lora + rope; }  // 576: the MLA cache row
  std::int64_t shared_inter() const { return moe_inter * shared_experts; }
  // The softmax scale of both forms: 1/sqrt(qk_dim) times YaRN's mscale^2 (1.874 for
  // factor 40); the absorbed form keeps it.
  double softmax_scale() const;
  // "model.layers.3."
  std::string prefix() const { return "model.layers." + std::to_string(layer) + "."; }
  // One line: "hidden 1024, 16 heads, q_lora 512, 64 experts (8 groups, top-4 groups, top-8), ..."
  std::string summary() const;
};

// The presets: "full" (DeepSeek-V3), "small", "tiny". Throws anychip::Error
// (InvalidArgument) for another name.
LayerConfig preset(std::string_view scale);

// Checks what the graphs need: every FP8 GEMM's K and every grouped GEMM's N a multiple
// of 128, experts divisible into groups, top_k within the top groups' experts, the MLA
// latent kept at 512 + 64 (the absorbed decode is Dk = 576 / Dv = 512). Throws
// InvalidArgument naming the size and the rule.
void validate(const LayerConfig& c);

}  // namespace deepseek_layer
