// The layer's weights: a random checkpoint in DeepSeek-V3's FP8 safetensors layout, and
// loading one into the tensors the graphs take (experts stacked into the grouped layout,
// the absorbed MLA weights of the decode form composed and requantized).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "anychip/safetensors.hpp"
#include "anychip/tensor.hpp"
#include "layer_config.hpp"

namespace deepseek_layer {

// Writes a checkpoint of layer `c.layer` with Hugging Face names
// (model.layers.3.self_attn.q_a_proj.weight, ...): FP8 E4M3 linear weights with F32
// `weight_scale_inv` per 128x128 block (powers of two, as DeepSeek-V3.1's UE8M0 recipe
// makes them), BF16 RMSNorm weights, the router's weight in BF16 and its
// e_score_correction_bias in F32, as DeepSeek ships them. Values are fresh random numbers
// from `seed`, sized like a trained layer's (rows ~ 1/sqrt(fan_in)) with the magnitude
// varying by block so that a misplaced scale shows. IoError when it cannot be written.
void write_random_checkpoint(const LayerConfig& c, const std::filesystem::path& path,
                             std::uint64_t seed);

// Graph inputs by name (layer_graphs.hpp spells the names), as loaded.
using NamedTensors = std::map<std::string, anychip::HostTensor>;

// Loads the layer's weights from a checkpoint in the layout above: every tensor checked
// against the sizes of `c` (InvalidArgument naming the tensor, its shape and the one
// expected), FP8 weights as f8e4m3 scaled<128x128, ue8m0> (a scale that is not a power of
// two is an error naming its block; DeepSeek-V3.1 checkpoints have only powers of two).
// Expert weights are stacked into the grouped layout: w13 [E*2I, hidden] with expert e's
// rows [gate_e; up_e] and w2 [E*hidden, I]; the shared expert's into ws13 [2I_s, hidden]
// and ws2. The stacking copies whole 128-row blocks with their scales, so it is exact.
// The absorbed decode weights (wq_b_absorbed, wo_absorbed) are composed here too.
// `file` is one .safetensors file or a sharded checkpoint (anychip::SafetensorsCheckpoint).
NamedTensors load_layer_weights(const LayerConfig& c, const anychip::SafetensorsSource& file);

// The absorbed MLA weights (DeepSeek-V2 paper, section 2.1.3), composed in float64 from the
// dequantized checkpoint weights and requantized to FP8 with 128x128 UE8M0 scales:
//   wq_b_absorbed [H*576, q_lora]: per head h, rows 0..511 are W_UK_h^T W_UQ_h (the nope
//     query mapped into the latent space), rows 512..575 are q_b's rope rows unchanged;
//   wo_absorbed [hidden, H*512]: per head h, columns h*512.. are W_O_h W_UV_h.
// W_UQ_h: q_b rows h*192..h*192+127; W_UK_h / W_UV_h: kv_b rows h*256.. / h*256+128..
// (each [128, 512]); W_O_h: o_proj columns h*128..h*128+127.
// The compositions alone, in float64 on dequantized values (row-major, the shapes above).
std::vector<double> compose_q_b_absorbed(const LayerConfig& c, const std::vector<double>& q_b,
                                         const std::vector<double>& kv_b);
std::vector<double> compose_o_absorbed(const LayerConfig& c, const std::vector<double>& o_proj,
                                       const std::vector<double>& kv_b);
anychip::HostTensor absorb_q_b(const LayerConfig& c, const anychip::HostTensor& q_b,
                               const anychip::HostTensor& kv_b);
anychip::HostTensor absorb_o(const LayerConfig& c, const anychip::HostTensor& o_proj,
                             const anychip::HostTensor& kv_b);

// Rows stacked in order; every part f8e4m3 scaled<128x128> with a multiple of 128 rows
// and the same columns, so blocks stay whole.
anychip::HostTensor stack_rows(const std::vector<const anychip::HostTensor*>& parts,
                               const std::string& what);

}  // namespace deepseek_layer
