#include "anychip/conformance.hpp"

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>

namespace anychip::conformance {
namespace {

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }
TensorType scaled(std::int64_t r, std::int64_t c, BlockShape b, DType s, DType fp8 = DType::f8e4m3) {
  return {fp8, {r, c}, ScaleLayout{b, s}};
}
std::string dn(DType d) { return std::string(dtype_name(d)); }

// Positions of consecutive tokens after a few thousand tokens of context, as a prefill
// chunk or a decode step sees them; the start varies with the seed. Below 2^14, the
// positions rope's tolerance assumes.
HostTensor positions(const TensorType& t, std::uint64_t seed) {
  std::vector<double> v(static_cast<std::size_t>(t.numel()));
  const auto first = static_cast<double>(2000 + seed % 4096);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = first + static_cast<double>(i);
  return HostTensor::encode(t, v);
}

// The routing of a MoE layer, built inside a case graph from random float inputs, so that
// the integer operands of the ops after it are valid: logits [T,E] and bias [E] ->
// moe_topk -> experts [T,k] -> moe_plan -> plan [3,P].
struct Route {
  std::int64_t tokens, experts, k, groups, top_groups;
};
struct Routed {
  ir::ValueId logits, experts;
};
Routed route(ir::Graph& g, Route r) {
  const ir::ValueId logits = g.input("logits", {DType::f32, {r.tokens, r.experts}, std::nullopt});
  const ir::ValueId bias = g.input("bias", {DType::f32, {r.experts}, std::nullopt});
  return {logits, g.moe_topk(logits, bias, r.k, r.groups, r.top_groups)};
}
ir::ValueId plan_of(ir::Graph& g, Route r, std::int64_t align) {
  return g.moe_plan(route(g, r).experts, r.experts, align);
}
std::int64_t plan_rows(Route r, std::int64_t align) { return ir::moe_plan_rows(r.tokens, r.k, r.experts, align); }

std::string route_name(Route r) {
  return "t" + std::to_string(r.tokens) + "_e" + std::to_string(r.experts) + "_k" + std::to_string(r.k) + "_g" +
         std::to_string(r.groups) + "_top" + std::to_string(r.top_groups);
}

std::vector<Case> build_cases() {
  std::vector<Case> cs;
  auto add_with = [&](std::string name, const std::function<ir::ValueId(ir::Graph&)>& build,
                      std::map<std::string, InputMaker> inputs) {
    ir::Graph g("conformance");
    g.output(build(g));
    cs.push_back({std::move(name), std::move(g), std::move(inputs)});
  };
  auto add = [&](std::string name, const std::function<ir::ValueId(ir::Graph&)>& build) {
    add_with(std::move(name), build, {});
  };
  using ir::Graph;

  // gemm_fp8: tile multiples and not, M = 1 (decode) and M in the thousands, both scale
  // formats, both outputs, E4M3 x E4M3 and E4M3 x E5M2.
  struct GemmShape { std::int64_t m, n, k; };
  for (GemmShape s : {GemmShape{1, 7, 128}, {1, 512, 1024}, {37, 130, 384}, {128, 256, 512},
                      {129, 257, 256}, {2048, 256, 256}})
    for (DType sd : {DType::ue8m0, DType::f32})
      for (DType out : {DType::f32, DType::bf16}) {
        if (s.m == 2048 && out == DType::bf16) continue;  // one large case per scale format
        add("gemm_fp8/m" + std::to_string(s.m) + "_n" + std::to_string(s.n) + "_k" + std::to_string(s.k) +
                "_" + dn(sd) + "_" + dn(out),
            [=](Graph& g) {
              return g.gemm_fp8(g.input("a", scaled(s.m, s.k, kActivationBlock, sd)),
                                g.input("b", scaled(s.n, s.k, kWeightBlock, sd)), out);
            });
      }
  add("gemm_fp8/m33_n65_k256_e5m2_weights", [](Graph& g) {
    return g.gemm_fp8(g.input("a", scaled(33, 256, kActivationBlock, DType::ue8m0)),
                      g.input("b", scaled(65, 256, kWeightBlock, DType::ue8m0, DType::f8e5m2)), DType::f32);
  });

  for (DType d : {DType::f32, DType::bf16})
    for (GemmShape s : {GemmShape{19, 33, 70}, {64, 128, 256}})
      add("gemm/m" + std::to_string(s.m) + "_n" + std::to_string(s.n) + "_k" + std::to_string(s.k) + "_" + dn(d),
          [=](Graph& g) { return g.gemm(g.input("a", plain(d, {s.m, s.k})), g.input("b", plain(d, {s.n, s.k})), d); });

  // attention: MHA, GQA, MQA; causal and not (Sq < Skv, Sq = Skv, Sq > Skv); decode
  // against a long KV; MLA decode Dk = 576, Dv = 512.
  struct Att { const char* name; std::int64_t b, sq, skv, hq, hkv, dk, dv; bool causal; DType d; };
  for (Att a : {Att{"mha_causal_bf16", 2, 17, 40, 4, 4, 64, 64, true, DType::bf16},
                Att{"mha_f32", 1, 64, 64, 2, 2, 128, 128, false, DType::f32},
                Att{"gqa_causal_longer_q_f16", 1, 45, 30, 8, 2, 32, 48, true, DType::f16},
                Att{"gqa_causal_square_bf16", 1, 128, 128, 8, 2, 128, 128, true, DType::bf16},
                Att{"mqa_bf16", 1, 9, 33, 4, 1, 64, 64, false, DType::bf16},
                Att{"decode_long_kv_bf16", 2, 1, 4096, 8, 2, 128, 128, false, DType::bf16},
                Att{"decode_causal_f16", 1, 1, 300, 4, 4, 64, 64, true, DType::f16},
                Att{"mla_decode_576_512_bf16", 1, 1, 512, 16, 1, 576, 512, false, DType::bf16},
                Att{"small_f32", 1, 9, 9, 2, 1, 24, 24, false, DType::f32}})
    add(std::string("attention/") + a.name, [=](Graph& g) {
      return g.attention(g.input("q", plain(a.d, {a.b, a.sq, a.hq, a.dk})),
                         g.input("k", plain(a.d, {a.b, a.skv, a.hkv, a.dk})),
                         g.input("v", plain(a.d, {a.b, a.skv, a.hkv, a.dv})), a.causal);
    });

  for (BlockShape blk : {kActivationBlock, kWeightBlock})
    for (DType sd : {DType::ue8m0, DType::f32})
      for (DType in : {DType::bf16, DType::f32})
        add("quantize_fp8/" + std::to_string(blk.rows) + "x128_" + dn(sd) + "_from_" + dn(in), [=](Graph& g) {
          return g.quantize_fp8(g.input("x", plain(in, {130, 300})), blk, sd);
        });
  add("quantize_fp8/e5m2_1x128", [](Graph& g) {
    return g.quantize_fp8(g.input("x", plain(DType::f32, {5, 200})), kActivationBlock, DType::ue8m0, DType::f8e5m2);
  });
  for (DType sd : {DType::ue8m0, DType::f32})
    for (DType out : {DType::f32, DType::bf16, DType::f16})
      add("dequantize/128x128_" + dn(sd) + "_to_" + dn(out), [=](Graph& g) {
        return g.dequantize(g.input("x", scaled(70, 260, kWeightBlock, sd)), out);
      });
  for (DType d : {DType::bf16, DType::f16, DType::f32})
    add("rmsnorm/" + dn(d), [=](Graph& g) {
      return g.rmsnorm(g.input("x", plain(d, {3, 5, 333})), g.input("w", plain(DType::f32, {333})));
    });
  for (DType d : {DType::bf16, DType::f32})
    add("silu_mul/" + dn(d), [=](Graph& g) { return g.silu_mul(g.input("x", plain(d, {7, 2 * 173}))); });
  for (DType d : {DType::f16, DType::bf16, DType::f32})
    add("add/" + dn(d), [=](Graph& g) { return g.add(g.input("a", plain(d, {3, 999})), g.input("b", plain(d, {3, 999}))); });

  // rope: full and partial heads (MLA's q: the last 64 of 192 columns; its k_pe: one
  // head), a tail of odd sizes, every float dtype; positions from `positions`.
  // DeepSeek-V3's YaRN scaling on two of them.
  struct Rope { const char* name; std::int64_t t, h, d; std::optional<std::int64_t> rot; double theta; DType dt;
                RopeScaling scaling = {}; };
  const RopeScaling v3_yarn{40, 4096, 32, 1};
  for (Rope r : {Rope{"f32_d64", 7, 3, 64, std::nullopt, 10000, DType::f32},
                 Rope{"bf16_mla_q_192_rot64", 5, 16, 192, 64, 10000, DType::bf16},
                 Rope{"f16_mla_k_pe_one_head", 9, 1, 64, std::nullopt, 10000, DType::f16},
                 Rope{"bf16_d40_rot24_theta50", 13, 2, 40, 24, 50, DType::bf16},
                 Rope{"f32_yarn_deepseek_v3", 7, 3, 64, std::nullopt, 10000, DType::f32, v3_yarn},
                 Rope{"bf16_yarn_mla_q_192_rot64", 5, 16, 192, 64, 10000, DType::bf16, v3_yarn}})
    add_with(std::string("rope/") + r.name, [=](Graph& g) {
      return g.rope(g.input("x", plain(r.dt, {r.t, r.h, r.d})), g.input("pos", plain(DType::i32, {r.t})), r.rot, r.theta,
                    r.scaling);
    }, {{"pos", positions}});

  add("slice/bf16_q_pe_last_axis", [](Graph& g) { return g.slice(g.input("x", plain(DType::bf16, {5, 4, 192})), -1, 128, 64); });
  add("slice/f32_middle_axis", [](Graph& g) { return g.slice(g.input("x", plain(DType::f32, {4, 10, 6})), 1, 3, 5); });
  add("slice/f16_first_axis", [](Graph& g) { return g.slice(g.input("x", plain(DType::f16, {9, 33})), 0, 2, 5); });
  add("slice/i32", [](Graph& g) { return g.slice(g.input("x", plain(DType::i32, {3, 100})), 1, 37, 50); });
  add("concat/bf16_mla_k_broadcast_k_pe", [](Graph& g) {
    return g.concat(g.input("a", plain(DType::bf16, {6, 4, 128})), g.input("b", plain(DType::bf16, {6, 1, 64})), 2);
  });
  add("concat/f32_first_axis", [](Graph& g) {
    return g.concat(g.input("a", plain(DType::f32, {3, 17})), g.input("b", plain(DType::f32, {5, 17})), 0);
  });
  add("concat/f16_middle_axis_broadcast_both", [](Graph& g) {
    return g.concat(g.input("a", plain(DType::f16, {3, 2, 1})), g.input("b", plain(DType::f16, {1, 3, 6})), 1);
  });
  add("concat/i32_last_axis", [](Graph& g) {
    return g.concat(g.input("a", plain(DType::i32, {2, 7})), g.input("b", plain(DType::i32, {2, 9})), -1);
  });

  // MoE routing. DeepSeek-V3: 256 experts in 8 groups, the best 4 groups, 8 experts.
  const Route deepseek{64, 256, 8, 8, 4};
  for (Route r : {deepseek, Route{33, 64, 6, 1, 1}, Route{17, 72, 5, 8, 3}, Route{5, 16, 3, 16, 4}})
    add("moe_topk/" + route_name(r), [=](Graph& g) { return route(g, r).experts; });
  for (Route r : {deepseek, Route{3, 10, 10, 1, 1}})
    add("moe_weights/" + route_name(r) + "_scale2.5", [=](Graph& g) {
      const Routed x = route(g, r);
      return g.moe_weights(x.logits, x.experts, 2.5);
    });
  // Plans: prefill (align 128), decode (align 8), no padding, and experts left empty (each
  // token's choices inside one group of four: at most 6 of 16 experts used).
  const Route decode{4, 32, 8, 4, 2}, sparse{3, 16, 2, 4, 1};
  for (auto [r, align] : {std::pair{deepseek, 128}, {decode, 8}, {Route{9, 16, 4, 1, 1}, 1}, {sparse, 32}})
    add("moe_plan/" + route_name(r) + "_align" + std::to_string(align), [=](Graph& g) { return plan_of(g, r, align); });

  const Route gather{20, 16, 3, 4, 2};
  for (DType d : {DType::f32, DType::bf16, DType::f16})
    add("moe_gather/" + route_name(gather) + "_align8_d130_" + dn(d), [=](Graph& g) {
      const ir::ValueId plan = plan_of(g, gather, 8);
      return g.moe_gather(g.input("x", plain(d, {gather.tokens, 130})), plan);
    });

  // The grouped GEMM's group operand is row 0 of the plan.
  struct Grouped { Route r; std::int64_t align, n, k; DType sd, out, b_fp8; };
  for (Grouped c : {Grouped{{16, 8, 2, 4, 2}, 128, 256, 256, DType::ue8m0, DType::bf16, DType::f8e4m3},
                    Grouped{{16, 8, 2, 4, 2}, 128, 256, 256, DType::f32, DType::f32, DType::f8e4m3},
                    Grouped{decode, 8, 256, 512, DType::ue8m0, DType::bf16, DType::f8e4m3},
                    Grouped{sparse, 32, 128, 384, DType::f32, DType::f32, DType::f8e5m2}})
    add("gemm_fp8_grouped/" + route_name(c.r) + "_align" + std::to_string(c.align) + "_n" + std::to_string(c.n) +
            "_k" + std::to_string(c.k) + "_" + dn(c.sd) + "_" + dn(c.out) + (c.b_fp8 == DType::f8e5m2 ? "_e5m2_weights" : ""),
        [=](Graph& g) {
          const std::int64_t rows = plan_rows(c.r, c.align);
          const ir::ValueId group = g.reshape(g.slice(plan_of(g, c.r, c.align), 0, 0, 1), {rows});
          return g.gemm_fp8_grouped(g.input("a", scaled(rows, c.k, kActivationBlock, c.sd)),
                                    g.input("b", scaled(c.r.experts * c.n, c.k, kWeightBlock, c.sd, c.b_fp8)), group,
                                    c.r.experts, c.out, c.align);
        });

  const Route combine{21, 32, 6, 4, 2};
  for (DType d : {DType::bf16, DType::f32, DType::f16})
    add("moe_combine/" + route_name(combine) + "_align16_d300_" + dn(d), [=](Graph& g) {
      const Routed x = route(g, combine);
      const ir::ValueId plan = g.moe_plan(x.experts, combine.experts, 16);
      const ir::ValueId weights = g.moe_weights(x.logits, x.experts, 2.5);
      return g.moe_combine(g.input("y", plain(d, {plan_rows(combine, 16), 300})), plan, weights);
    });

  add("reshape/of_silu_mul", [](Graph& g) { return g.reshape(g.silu_mul(g.input("x", plain(DType::f32, {4, 10}))), {2, 2, 5}); });
  return cs;
}


const KnownFailure* known_failure(const std::string& device, const std::string& name) {
  for (const KnownFailure& k : expected_failures())
    if (device.rfind(k.device_prefix, 0) == 0 && name.rfind(k.case_prefix, 0) == 0) return &k;
  return nullptr;
}

}  // namespace

const std::vector<Case>& cases() {
  static const std::vector<Case> all = build_cases();
  return all;
}

HostTensor make_input(const Case& c, std::size_t i, std::uint64_t seed) {
  const ir::Value& v = c.graph.value(c.graph.inputs().at(i));
  if (auto it = c.inputs.find(v.name); it != c.inputs.end()) return it->second(v.type, seed);
  return HostTensor::random(v.type, seed);
}

std::span<const KnownFailure> expected_failures() {
  // None known. An entry reads {"opencl:", "attention/mla", "why, and the issue that tracks it"}.
  static const std::vector<KnownFailure> known;
  return known;
}

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::Pass: return "pass";
    case Outcome::Fail: return "FAIL";
    case Outcome::Unsupported: return "unsupported";
    case Outcome::ExpectedFailure: return "xfail";
    case Outcome::UnexpectedPass: return "XPASS";
  }
  return "?";
}

Result run_case(const Case& c, const Device& device, std::uint64_t seed) {
  Result r;
  r.case_name = c.name;
  r.device = device.info().id;
  bool passed = false;
  try {
    CompileOptions opts;
    opts.use_cache = false;
    Executable exe = compile(c.graph, device, opts);
    Stream s = device.create_stream();
    std::vector<Tensor> in, out;
    for (std::size_t i = 0; i < c.graph.inputs().size(); ++i) in.push_back(device.upload(make_input(c, i, seed + i), s));
    for (ir::ValueId v : c.graph.outputs()) out.push_back(device.upload(HostTensor::poisoned(c.graph.value(v).type), s));
    exe.run(s, in, out);
    passed = true;
    // The figure shown is the first failing kernel's, else the last kernel's (the op
    // under test; the ones before it make its index operands).
    for (const KernelCheck& k : exe.check_last_run(s)) {
      if (!passed) break;
      r.rel_err = k.rel_err;
      r.tolerance = k.tolerance;
      if (!k.ok) {
        passed = false;
        r.detail = k.label + ": rel_err " + std::to_string(k.rel_err) + " > " + std::to_string(k.tolerance);
      }
    }
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Unsupported) {
      r.outcome = Outcome::Unsupported;
      r.detail = e.what();
      return r;
    }
    r.detail = e.what();
  }
  const KnownFailure* known = known_failure(r.device, r.case_name);
  if (known) {
    r.outcome = passed ? Outcome::UnexpectedPass : Outcome::ExpectedFailure;
    r.detail = passed ? "passes: remove it from expected_failures() (" + known->reason + ")" : known->reason;
  } else {
    r.outcome = passed ? Outcome::Pass : Outcome::Fail;
  }
  return r;
}

std::vector<Result> run(const Device& device, std::uint64_t seed, std::string_view filter) {
  std::vector<Result> results;
  for (std::size_t i = 0; i < cases().size(); ++i) {
    const Case& c = cases()[i];
    if (c.name.rfind(filter, 0) != 0) continue;
    results.push_back(run_case(c, device, seed + 1000 * i));
  }
  return results;
}

}  // namespace anychip::conformance
