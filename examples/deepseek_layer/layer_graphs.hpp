// The layer as anychip graphs: the prefill form (MLA with per-head K and V up-projected
// from the latent) and the absorbed decode form (attention over the latent cache itself).
//
// Inputs, by name: x (bf16 [T, hidden]), pos (i32 [T], each token's position), in decode
// kv_cache (bf16 [T, 1, 576], the latent rows of the earlier tokens), then the weights as
// load_layer_weights names them (checkpoint.hpp). Outputs, in order: out (bf16
// [T, hidden], the layer's output), kv (prefill: the latent cache [T, 1, 576] =
// concat(rmsnorm(c_kv), rope(k_pe)); decode: the new token's row [1, 1, 576]), experts
// (i32 [T, top_k], the routed experts, best first: what an engine logs for load balance),
// and o (bf16 [T, hidden], the attention block's output before the residual add: where
// the two forms of MLA must agree, so a port can compare them without the MoE on top).
#pragma once

#include <cstdint>

#include "anychip/ir.hpp"
#include "layer_config.hpp"

namespace deepseek_layer {

// `tokens` tokens at once, causal. `align` is the grouped GEMM's row alignment (128:
// DeepGEMM's contiguous layout).
anychip::ir::Graph prefill_graph(const LayerConfig& c, std::int64_t tokens,
                                 std::int64_t align = 128);

// One new token after `cached` tokens (cached >= 1), its position given by pos. `align` is
// small: one token routes to top_k experts, and 128-row alignment would pad each to 128.
anychip::ir::Graph decode_graph(const LayerConfig& c, std::int64_t cached, std::int64_t align = 8);

}  // namespace deepseek_layer
