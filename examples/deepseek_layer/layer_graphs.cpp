#include "layer_graphs.hpp"

#include "anychip/error.hpp"

namespace deepseek_layer {

using anychip::DType;
using anychip::ScaleLayout;
using anychip::TensorType;
using anychip::ir::Graph;
using anychip::ir::ValueId;

namespace {

TensorType bf16(anychip::Shape s) { return {DType::bf16, std::move(s), std::nullopt}; }
TensorType fp8_weight(std::int64_t rows, std::int64_t cols) {
  return {DType::f8e4m3, {rows, cols}, ScaleLayout{anychip::kWeightBlock, DType::ue8m0}};
}

struct Front {
  ValueId x, pos, attn_in_q, cq_q;
};

// rmsnorm -> quantize -> q_a_proj -> rmsnorm -> quantize: the query's low-rank path up to
// q_b (which differs between the forms), shared by both graphs.
Front front(Graph& g, const LayerConfig& c, std::int64_t tokens) {
  Front f;
  f.x = g.input("x", bf16({tokens, c.hidden}));
  f.pos = g.input("pos", {DType::i32, {tokens}, std::nullopt});
  const ValueId attn_norm = g.input("attn_norm", bf16({c.hidden}));
  const ValueId wq_a = g.input("wq_a", fp8_weight(c.q_lora, c.hidden));
  const ValueId q_a_norm = g.input("q_a_norm", bf16({c.q_lora}));
  const ValueId attn_in = g.rmsnorm(f.x, attn_norm, c.rms_eps, "attn_in");
  f.attn_in_q =
      g.quantize_fp8(attn_in, anychip::kActivationBlock, DType::ue8m0, DType::f8e4m3, "attn_in_q");
  const ValueId cq = g.gemm_fp8(f.attn_in_q, wq_a, DType::bf16, "c_q");
  const ValueId cq_n = g.rmsnorm(cq, q_a_norm, c.rms_eps, "c_q_norm");
  f.cq_q = g.quantize_fp8(cq_n, anychip::kActivationBlock, DType::ue8m0, DType::f8e4m3, "c_q_q");
  return f;
}

struct Latent {
  ValueId c_kv_n;  // rmsnorm(c_kv) [T, 512]
  ValueId k_pe;    // rope(k_pe) [T, 1, 64]
  ValueId row;     // concat of the two [T, 1, 576]: the cache row
};

// kv_a_proj_with_mqa -> [c_kv | k_pe] -> rmsnorm(c_kv), rope(k_pe): the MLA latent.
Latent latent(Graph& g, const LayerConfig& c, std::int64_t tokens, ValueId attn_in_q, ValueId pos,
              ValueId wkv_a, ValueId kv_a_norm) {
  const ValueId kv_a = g.gemm_fp8(attn_in_q, wkv_a, DType::bf16, "kv_a");
  const ValueId c_kv = g.slice(kv_a, 1, 0, c.kv_lora, "c_kv");
  const ValueId k_pe = g.slice(kv_a, 1, c.kv_lora, c.rope, "k_pe");
  Latent l;
  l.c_kv_n = g.rmsnorm(c_kv, kv_a_norm, c.rms_eps, "c_kv_norm");
  const ValueId k_pe3 = g.reshape(k_pe, {tokens, 1, c.rope}, "k_pe3");
  l.k_pe = g.rope(k_pe3, pos, c.rope, c.rope_theta, c.rope_scaling, "k_pe_rope");
  const ValueId c_kv3 = g.reshape(l.c_kv_n, {tokens, 1, c.kv_lora}, "c_kv3");
  l.row = g.concat(c_kv3, l.k_pe, 2, "kv_latent");
  return l;
}

// post_attention rmsnorm -> router -> routed experts (grouped FP8 GEMMs) + shared expert,
// added to the residual h. Returns the layer output; sets `experts`.
ValueId moe(Graph& g, const LayerConfig& c, ValueId h, std::int64_t align, ValueId& experts) {
  const std::int64_t E = c.experts, I = c.moe_inter;
  const ValueId ffn_norm = g.input("ffn_norm", bf16({c.hidden}));
  const ValueId w_router = g.input("w_router", bf16({E, c.hidden}));
  const ValueId router_bias = g.input("router_bias", {DType::f32, {E}, std::nullopt});
  const ValueId w13 = g.input("w13", fp8_weight(E * 2 * I, c.hidden));
  const ValueId w2 = g.input("w2", fp8_weight(E * c.hidden, I));
  const ValueId ws13 = g.input("ws13", fp8_weight(2 * c.shared_inter(), c.hidden));
  const ValueId ws2 = g.input("ws2", fp8_weight(c.hidden, c.shared_inter()));

  const ValueId ffn_in = g.rmsnorm(h, ffn_norm, c.rms_eps, "ffn_in");
  const ValueId logits = g.gemm(ffn_in, w_router, DType::f32, "router_logits");
  experts = g.moe_topk(logits, router_bias, c.top_k, c.groups, c.top_groups, "experts");
  const ValueId weights = g.moe_weights(logits, experts, c.routed_scale, "routing_weights");
  const ValueId plan = g.moe_plan(experts, E, align, "plan");
  const std::int64_t rows = g.value(plan).type.shape[1];
  const ValueId group = g.reshape(g.slice(plan, 0, 0, 1, "plan_expert"), {rows}, "row_expert");
  const ValueId routed_in = g.moe_gather(ffn_in, plan, "routed_in");
  const ValueId routed_in_q = g.quantize_fp8(routed_in, anychip::kActivationBlock, DType::ue8m0,
                                             DType::f8e4m3, "routed_in_q");
  const ValueId gate_up =
      g.gemm_fp8_grouped(routed_in_q, w13, group, E, DType::bf16, align, "experts_gate_up");
  const ValueId act = g.silu_mul(gate_up, "experts_act");
  const ValueId act_q =
      g.quantize_fp8(act, anychip::kActivationBlock, DType::ue8m0, DType::f8e4m3, "experts_act_q");
  const ValueId down = g.gemm_fp8_grouped(act_q, w2, group, E, DType::bf16, align, "experts_down");
  const ValueId routed = g.moe_combine(down, plan, weights, "routed");

  const ValueId ffn_in_q =
      g.quantize_fp8(ffn_in, anychip::kActivationBlock, DType::ue8m0, DType::f8e4m3, "ffn_in_q");
  const ValueId s_gate_up = g.gemm_fp8(ffn_in_q, ws13, DType::bf16, "shared_gate_up");
  const ValueId s_act = g.silu_mul(s_gate_up, "shared_act");
  const ValueId s_act_q =
      g.quantize_fp8(s_act, anychip::kActivationBlock, DType::ue8m0, DType::f8e4m3, "shared_act_q");
  const ValueId shared = g.gemm_fp8(s_act_q, ws2, DType::bf16, "shared");
  const ValueId ffn_out = g.add(routed, shared, "ffn_out");
  return g.add(h, ffn_out, "out");
}

// The tail both forms share: the attention output [T, H * width] through o_proj into the
// residual, then the MoE FFN; marks the graph's outputs (out, kv row, experts, o).
void finish(Graph& g, const LayerConfig& c, ValueId x, ValueId attn2, ValueId wo, ValueId row,
            std::int64_t align) {
  const ValueId attn_q =
      g.quantize_fp8(attn2, anychip::kActivationBlock, DType::ue8m0, DType::f8e4m3, "attn_q");
  const ValueId o = g.gemm_fp8(attn_q, wo, DType::bf16, "o");
  const ValueId h = g.add(x, o, "h");
  ValueId experts;
  const ValueId out = moe(g, c, h, align, experts);
  g.output(out);
  g.output(row);
  g.output(experts);
  g.output(o);
}

}  // namespace

Graph prefill_graph(const LayerConfig& c, std::int64_t tokens, std::int64_t align) {
  validate(c);
  if (tokens < 1)
    throw anychip::Error(anychip::ErrorCode::InvalidArgument, "prefill: tokens must be >= 1");
  Graph g("deepseek_v3_layer" + std::to_string(c.layer) + "_prefill");
  const std::int64_t H = c.heads, T = tokens;
  Front f = front(g, c, T);
  const ValueId wq_b = g.input("wq_b", fp8_weight(H * c.qk_dim(), c.q_lora));
  const ValueId wkv_a = g.input("wkv_a", fp8_weight(c.latent_dim(), c.hidden));
  const ValueId kv_a_norm = g.input("kv_a_norm", bf16({c.kv_lora}));
  const ValueId wkv_b = g.input("wkv_b", fp8_weight(H * (c.nope + c.v_dim), c.kv_lora));
  const ValueId wo = g.input("wo", fp8_weight(c.hidden, H * c.v_dim));

  const ValueId q = g.gemm_fp8(f.cq_q, wq_b, DType::bf16, "q");
  const ValueId q3 = g.reshape(q, {T, H, c.qk_dim()}, "q3");
  const ValueId q_rope = g.rope(q3, f.pos, c.rope, c.rope_theta, c.rope_scaling, "q_rope");

  Latent l = latent(g, c, T, f.attn_in_q, f.pos, wkv_a, kv_a_norm);
  const ValueId c_kv_q =
      g.quantize_fp8(l.c_kv_n, anychip::kActivationBlock, DType::ue8m0, DType::f8e4m3, "c_kv_q");
  const ValueId kv = g.gemm_fp8(c_kv_q, wkv_b, DType::bf16, "kv");
  const ValueId kv3 = g.reshape(kv, {T, H, c.nope + c.v_dim}, "kv3");
  const ValueId k_nope = g.slice(kv3, 2, 0, c.nope, "k_nope");
  const ValueId v = g.slice(kv3, 2, c.nope, c.v_dim, "v");
  const ValueId k = g.concat(k_nope, l.k_pe, 2, "k");  // k_pe [T,1,64] broadcast over heads

  const ValueId q4 = g.reshape(q_rope, {1, T, H, c.qk_dim()}, "q4");
  const ValueId k4 = g.reshape(k, {1, T, H, c.qk_dim()}, "k4");
  const ValueId v4 = g.reshape(v, {1, T, H, c.v_dim}, "v4");
  const ValueId attn = g.attention(q4, k4, v4, true, c.softmax_scale(), "attn");
  finish(g, c, f.x, g.reshape(attn, {T, H * c.v_dim}, "attn2"), wo, l.row, align);
  return g;
}

Graph decode_graph(const LayerConfig& c, std::int64_t cached, std::int64_t align) {
  validate(c);
  if (cached < 1)
    throw anychip::Error(anychip::ErrorCode::InvalidArgument,
                         "decode: the cache must hold >= 1 token");
  Graph g("deepseek_v3_layer" + std::to_string(c.layer) + "_decode");
  const std::int64_t H = c.heads, D = c.latent_dim(), L = c.kv_lora;
  Front f = front(g, c, 1);
  const ValueId cache = g.input("kv_cache", bf16({cached, 1, D}));
  const ValueId wq_b = g.input("wq_b_absorbed", fp8_weight(H * D, c.q_lora));
  const ValueId wkv_a = g.input("wkv_a", fp8_weight(D, c.hidden));
  const ValueId kv_a_norm = g.input("kv_a_norm", bf16({L}));
  const ValueId wo = g.input("wo_absorbed", fp8_weight(c.hidden, H * L));

  // The query in latent space: [q_nope W_UK | q_pe] per head, 576 wide.
  const ValueId q = g.gemm_fp8(f.cq_q, wq_b, DType::bf16, "q_latent");
  const ValueId q3 = g.reshape(q, {1, H, D}, "q3");
  const ValueId q_rope = g.rope(q3, f.pos, c.rope, c.rope_theta, c.rope_scaling, "q_rope");

  Latent l = latent(g, c, 1, f.attn_in_q, f.pos, wkv_a, kv_a_norm);
  const ValueId cache4 = g.reshape(cache, {1, cached, 1, D}, "cache4");
  const ValueId row4 = g.reshape(l.row, {1, 1, 1, D}, "row4");
  // MQA over the latent: one KV head whose key is the whole row and whose value is its
  // first 512 columns (c_kv).
  const ValueId k = g.concat(cache4, row4, 1, "k_latent");
  const ValueId v = g.slice(k, 3, 0, L, "v_latent");
  const ValueId q4 = g.reshape(q_rope, {1, 1, H, D}, "q4");
  const ValueId attn = g.attention(q4, k, v, false, c.softmax_scale(), "attn_latent");
  finish(g, c, f.x, g.reshape(attn, {1, H * L}, "attn2"), wo, l.row, align);
  return g;
}

}  // namespace deepseek_layer
