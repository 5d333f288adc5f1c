// The kernels the emulation runs: every conformance case, plus cases for the paths the
// suite's shapes do not reach (16-byte chunks, wide tiles, Dv split over warps, odd head
// dims, split keys with causal masks), each for sm_89 and sm_90 (mma.sync) and, for the
// FP8 GEMM, sm_90a (wgmma + TMA). list_kernels.cc and run_kernels.cc enumerate them the
// same way, so a kernel's index names the same spec in both.
#pragma once

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "anychip/conformance.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/lowering.hpp"

namespace anychip::emulation {

inline std::vector<conformance::Case> cases() {
  std::vector<conformance::Case> cs = conformance::cases();
  auto add = [&](std::string name, const std::function<ir::ValueId(ir::Graph&)>& build) {
    ir::Graph g("emulation");
    g.output(build(g));
    cs.push_back({std::move(name), std::move(g)});
  };
  auto plain = [](DType d, Shape s) { return TensorType{d, std::move(s), std::nullopt}; };
  auto scaled = [](std::int64_t r, std::int64_t c, BlockShape b, DType s, DType f = DType::f8e4m3) {
    return TensorType{f, {r, c}, ScaleLayout{b, s}};
  };
  using G = ir::Graph;
  const DType bf16 = DType::bf16, f16 = DType::f16, f32 = DType::f32;
  add("x/silu_mul_chunks_bf16", [&](G& g) { return g.silu_mul(g.input("x", plain(bf16, {5, 2 * 136}))); });
  add("x/silu_mul_chunks_f32", [&](G& g) { return g.silu_mul(g.input("x", plain(f32, {5, 2 * 136}))); });
  add("x/rmsnorm_chunks_bf16", [&](G& g) {
    return g.rmsnorm(g.input("x", plain(bf16, {6, 7168})), g.input("w", plain(f32, {7168})));
  });
  add("x/rmsnorm_chunks_f16_bf16_weights", [&](G& g) {
    return g.rmsnorm(g.input("x", plain(f16, {3, 264})), g.input("w", plain(bf16, {264})));
  });
  add("x/add_chunks_f32", [&](G& g) { return g.add(g.input("a", plain(f32, {4, 4096})), g.input("b", plain(f32, {4, 4096}))); });
  add("x/quantize_1x128_chunks_bf16", [&](G& g) {
    return g.quantize_fp8(g.input("x", plain(bf16, {33, 1032})), kActivationBlock, DType::ue8m0);
  });
  add("x/quantize_128x128_chunks_f32", [&](G& g) {
    return g.quantize_fp8(g.input("x", plain(f32, {200, 264})), kWeightBlock, DType::f32);
  });
  add("x/dequantize_chunks_bf16", [&](G& g) { return g.dequantize(g.input("x", scaled(70, 264, kWeightBlock, DType::ue8m0)), bf16); });
  add("x/dequantize_1x128_e5m2", [&](G& g) {
    return g.dequantize(g.input("x", scaled(9, 384, kActivationBlock, f32, DType::f8e5m2)), f32);
  });
  add("x/gemm_fp8_128x128_tiles", [&](G& g) {
    return g.gemm_fp8(g.input("a", scaled(300, 384, kActivationBlock, DType::ue8m0)),
                      g.input("b", scaled(520, 384, kWeightBlock, DType::ue8m0)), bf16);
  });
  add("x/attention_dv192_two_warps", [&](G& g) {
    return g.attention(g.input("q", plain(bf16, {1, 20, 4, 192})), g.input("k", plain(bf16, {1, 70, 2, 192})),
                       g.input("v", plain(bf16, {1, 70, 2, 192})), true);
  });
  add("x/attention_split_causal_two_queries", [&](G& g) {
    return g.attention(g.input("q", plain(f16, {2, 2, 8, 64})), g.input("k", plain(f16, {2, 700, 2, 64})),
                       g.input("v", plain(f16, {2, 700, 2, 64})), true);
  });
  add("x/attention_odd_head_dims", [&](G& g) {
    return g.attention(g.input("q", plain(bf16, {1, 5, 2, 20})), g.input("k", plain(bf16, {1, 37, 1, 20})),
                       g.input("v", plain(bf16, {1, 37, 1, 12})), false);
  });
  add("x/attention_causal_more_queries_than_keys", [&](G& g) {
    return g.attention(g.input("q", plain(bf16, {1, 70, 2, 64})), g.input("k", plain(bf16, {1, 20, 2, 64})),
                       g.input("v", plain(bf16, {1, 20, 2, 64})), true);
  });
  return cs;
}

struct KernelUnderTest {
  int index;
  std::string arch;
  const conformance::Case* c;
  const ir::Node* node;
  kernels::KernelSpec spec;
  kernels::cuda::Target target;
  std::string unsupported;  // check()'s reason, when not empty
};

// Calls fn for every kernel of every case on every target, in a fixed order.
inline void for_each_kernel(const std::function<void(const KernelUnderTest&)>& fn) {
  static const std::vector<conformance::Case> all = cases();
  int index = 0;
  for (const char* arch : {"sm_89", "sm_90", "sm_90a"}) {
    const kernels::cuda::Target target = kernels::cuda::target_for_arch(arch);
    for (const conformance::Case& c : all)
      for (const ir::Node& node : c.graph.nodes()) {
        std::optional<kernels::Problem> p = kernels::lower(c.graph, node);
        if (!p) continue;
        if (target.wgmma() && !std::holds_alternative<kernels::GemmFp8Problem>(*p)) continue;  // the same kernels as sm_90
        kernels::KernelSpec spec{*p, kernels::cuda::choose_tiles(*p, target)};
        if (c.name == "x/gemm_fp8_128x128_tiles") spec.tiles = {128, 128, 128, 2};
        fn({index++, arch, &c, &node, spec, target, kernels::cuda::check(spec, target)});
      }
  }
}

}  // namespace anychip::emulation
