// The layer's end-to-end checks (the per-kernel check is Executable::check_last_run):
//   against the float64 evaluation of the whole graph (anychip/reference.hpp), and
//   decode against prefill (the absorbed form computes the same function).
// Each returns lines for a table: what was compared, rel_err, its bound, and why.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "anychip/ir.hpp"
#include "anychip/tensor.hpp"
#include "layer_config.hpp"

namespace deepseek_layer {

struct CheckLine {
  std::string what;    // "prefill out vs float64 evaluation"
  double rel_err = 0;  // ||device - other|| / ||other||
  double bound = 0;
  bool ok = false;
  std::string note;  // routing flips and the like; "" when nothing to add
};

// The bounds, derived in README.md ("Checks and their bounds").
//
// Device vs the float64 evaluation of the same graph on the same inputs. Both sides store
// every intermediate in its dtype, so they differ only where a device's fp32 arithmetic
// lands on the other side of a rounding boundary. Every FP8 quantization of an activation
// turns a small difference d (relative) into a few E4M3 code flips, an rms difference of
// about sqrt(d * 2^-3) (p = d / 2^-3 of the codes move by a code spacing of up to 2^-3);
// repeated, this tends to the E4M3 rounding noise itself, at most 2^-4 / sqrt(3) = 3.6%
// relative rms per quantized tensor, independently on each side: 5.1% for their
// difference. The layer output is x + attention + experts, where only the last two carry
// that noise, so its relative difference stays below 5.1%; 5e-2 is the bound. A wrong
// kernel, buffer or view gives an error of order 1.
inline constexpr double kEndToEndBound = 5e-2;
// The latent cache row: rmsnorm and rope of one FP8 GEMM over the quantized attention
// input; two quantizations upstream at most (attn_in_q): the same noise argument.
inline constexpr double kLatentBound = 5e-2;
// Decode against prefill, attention output o: the absorbed weights are requantized (a
// fresh E4M3 rounding of each composed weight, on q_latent and on o), the prefill
// quantizes rmsnorm(c_kv) to FP8 before kv_b_proj while decode attends to the bf16 latent
// (on k_nope and v), and the attention outputs are quantized in other tiles (128 against
// 512 columns per head): four E4M3 roundings that differ between the forms, each at most
// 2^-4 / sqrt(3) = 3.6% rms relative, sqrt(4) * 3.6% = 7.2% together; 2x margin.
inline constexpr double kAttentionFormsBound = 0.15;
// Decode against prefill, layer output (same routing): out = x + o + ffn. Besides o's
// 7.2%, the FFN's input differs, so its two quantized activations (ffn_in_q / routed_in_q
// and the SwiGLU output) fall on other E4M3 codes on the two sides, up to sqrt(2) x 5.1%
// = 7.2% of the FFN output, and the input difference itself carries through (up to 7.2%
// of o). Independent roundings add in quadrature; with |o| and |ffn| below |out|:
// sqrt(3) x 7.2% = 12.5%; 0.15.
inline constexpr double kDecodeVsPrefillBound = 0.15;
// The decode's new latent row against the prefill's row for the same token: the same ops
// on the same row, so only GEMM summation order (M = 1 against M = T) may move a bf16
// rounding, amplified by nothing but rmsnorm and rope: two bf16 ulps, 2 * 2^-8.
inline constexpr double kLatentRowBound = 8e-3;
// A routing decision taken the other way must be a near-tie: the keys (sigmoid(logit) +
// bias) of the experts swapped may differ by at most this much in the float64
// evaluation. Logits move by about the relative difference of their input (<= 5%, above)
// times their size (~1 here), and sigmoid' <= 1/4.
inline constexpr double kRoutingTieBound = 2e-2;

// The device's outputs of `graph` (out, kv, experts, o) against evaluate_reference on the
// same inputs. Where the device routed a token differently (a near-tie), the evaluation
// is repeated with the device's routing given, and each flip is reported with its key gap.
std::vector<CheckLine> check_against_reference(const LayerConfig& c,
                                               const anychip::ir::Graph& graph,
                                               std::span<const anychip::HostTensor> inputs,
                                               std::span<const anychip::HostTensor> outputs,
                                               const std::string& phase);

// The decode's outputs for token `row` against the prefill's row `row`. When the two
// routed the token differently, the decode graph is evaluated in float64 with the
// prefill's routing given (decode_inputs are its inputs) and compared instead.
std::vector<CheckLine> check_decode_vs_prefill(const anychip::ir::Graph& decode,
                                               std::span<const anychip::HostTensor> decode_inputs,
                                               std::span<const anychip::HostTensor> decode_outputs,
                                               std::span<const anychip::HostTensor> prefill_outputs,
                                               std::int64_t row);

// Row r of a [rows, ...] tensor (unscaled) as a [1, ...] tensor; rows [0, n) with take_rows.
anychip::HostTensor take_row(const anychip::HostTensor& t, std::int64_t r);
anychip::HostTensor take_rows(const anychip::HostTensor& t, std::int64_t n);

}  // namespace deepseek_layer
