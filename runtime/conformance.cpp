#include "anychip/conformance.hpp"

#include <algorithm>
#include <functional>

namespace anychip::conformance {
namespace {

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }
TensorType scaled(std::int64_t r, std::int64_t c, BlockShape b, DType s, DType fp8 = DType::f8e4m3) {
  return {fp8, {r, c}, ScaleLayout{b, s}};
}
std::string dn(DType d) { return std::string(dtype_name(d)); }

std::vector<Case> build_cases() {
  std::vector<Case> cs;
  auto add = [&](std::string name, const std::function<ir::ValueId(ir::Graph&)>& build) {
    ir::Graph g("conformance");
    g.output(build(g));
    cs.push_back({std::move(name), std::move(g)});
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
    for (std::size_t i = 0; i < c.graph.inputs().size(); ++i)
      in.push_back(device.upload(HostTensor::random(c.graph.value(c.graph.inputs()[i]).type, seed + i), s));
    for (ir::ValueId v : c.graph.outputs()) out.push_back(device.upload(HostTensor::poisoned(c.graph.value(v).type), s));
    exe.run(s, in, out);
    passed = true;
    for (const KernelCheck& k : exe.check_last_run(s)) {
      r.rel_err = std::max(r.rel_err, k.rel_err);
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
