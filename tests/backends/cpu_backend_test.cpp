// Every op of the op table through the public API on the CPU device, against the float64
// reference, on fresh random inputs and shapes that are not multiples of any tile, with
// the output poisoned first so an unwritten element fails.
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "anychip/anychip.hpp"

using namespace anychip;
using ir::Graph;
using ir::OpKind;

namespace {

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }
TensorType scaled(std::int64_t r, std::int64_t c, BlockShape b, DType s, DType fp8 = DType::f8e4m3) {
  return {fp8, {r, c}, ScaleLayout{b, s}};
}

// Graphs with one op each; several per op so dtypes, layouts and awkward shapes are covered.
std::map<OpKind, std::vector<Graph>> cases() {
  std::map<OpKind, std::vector<Graph>> c;
  auto add = [&](OpKind op, auto&& build) {
    Graph g(std::string(ir::op_info(op).name) + "_" + std::to_string(c[op].size()));
    g.output(build(g));
    c[op].push_back(std::move(g));
  };
  for (auto [m, n, k] : {std::array<std::int64_t, 3>{1, 7, 128}, {37, 130, 384}, {129, 257, 256}})
    for (DType s : {DType::ue8m0, DType::f32})
      for (DType out : {DType::f32, DType::bf16})
        add(OpKind::gemm_fp8, [&](Graph& g) {
          return g.gemm_fp8(g.input("a", scaled(m, k, kActivationBlock, s)),
                            g.input("b", scaled(n, k, kWeightBlock, s, DType::f8e5m2)), out);
        });
  for (DType d : {DType::f32, DType::bf16})
    add(OpKind::gemm, [&](Graph& g) {
      return g.gemm(g.input("a", plain(d, {19, 70})), g.input("b", plain(d, {33, 70})), d);
    });
  struct Att { std::int64_t b, sq, skv, hq, hkv, dk, dv; bool causal; DType d; };
  for (Att a : {Att{2, 17, 40, 4, 4, 64, 64, true, DType::bf16},   // MHA, Sq < Skv
                Att{1, 45, 30, 8, 2, 32, 48, true, DType::f16},    // GQA, Sq > Skv, Dk != Dv
                Att{1, 1, 1000, 16, 1, 576, 512, false, DType::bf16},  // MQA decode, MLA dims
                Att{1, 9, 9, 2, 1, 24, 24, false, DType::f32}})
    add(OpKind::attention, [&](Graph& g) {
      return g.attention(g.input("q", plain(a.d, {a.b, a.sq, a.hq, a.dk})),
                         g.input("k", plain(a.d, {a.b, a.skv, a.hkv, a.dk})),
                         g.input("v", plain(a.d, {a.b, a.skv, a.hkv, a.dv})), a.causal);
    });
  for (BlockShape blk : {kActivationBlock, kWeightBlock})
    for (DType s : {DType::ue8m0, DType::f32})
      add(OpKind::quantize_fp8, [&](Graph& g) { return g.quantize_fp8(g.input("x", plain(DType::bf16, {130, 300})), blk, s); });
  add(OpKind::quantize_fp8, [&](Graph& g) {
    return g.quantize_fp8(g.input("x", plain(DType::f32, {5, 200})), kActivationBlock, DType::ue8m0, DType::f8e5m2);
  });
  for (DType out : {DType::f32, DType::bf16, DType::f16})
    add(OpKind::dequantize, [&](Graph& g) { return g.dequantize(g.input("x", scaled(70, 260, kWeightBlock, DType::ue8m0)), out); });
  for (DType d : {DType::bf16, DType::f32})
    add(OpKind::rmsnorm, [&](Graph& g) {
      return g.rmsnorm(g.input("x", plain(d, {3, 5, 333})), g.input("w", plain(DType::f32, {333})));
    });
  add(OpKind::silu_mul, [&](Graph& g) { return g.silu_mul(g.input("x", plain(DType::bf16, {7, 2 * 173}))); });
  add(OpKind::add, [&](Graph& g) {
    return g.add(g.input("a", plain(DType::f16, {3, 999})), g.input("b", plain(DType::f16, {3, 999})));
  });
  add(OpKind::reshape, [&](Graph& g) {
    return g.reshape(g.silu_mul(g.input("x", plain(DType::f32, {4, 10}))), {2, 2, 5});
  });
  return c;
}

HostTensor poisoned(const TensorType& t) {
  HostTensor h(t);
  std::fill(h.data.begin(), h.data.end(), std::byte{0xFF});  // NaN in every float format
  std::fill(h.scales.begin(), h.scales.end(), std::byte{0xFF});
  return h;
}

TEST(CpuBackend, EveryOpOfTheOpTableHasCases) {
  auto c = cases();
  for (const ir::OpInfo& op : ir::all_ops()) EXPECT_FALSE(c[op.kind].empty()) << op.name << " has no case";
}

TEST(CpuBackend, EveryOpMatchesTheReferenceOnRandomInputs) {
  Device cpu = Device::open("cpu");
  Stream s = cpu.create_stream();
  CompileOptions opts;
  opts.use_cache = false;
  std::mt19937_64 seeds(std::random_device{}());
  for (auto& [op, graphs] : cases()) {
    for (const Graph& g : graphs) {
      const std::uint64_t seed = seeds();
      SCOPED_TRACE("graph @" + g.name() + " seed " + std::to_string(seed) + "\n" + ir::print(g));
      Executable exe = compile(g, cpu, opts);
      std::vector<Tensor> in, out;
      for (std::size_t i = 0; i < g.inputs().size(); ++i)
        in.push_back(cpu.upload(HostTensor::random(g.value(g.inputs()[i]).type, seed + i), s));
      for (ir::ValueId v : g.outputs()) out.push_back(cpu.upload(poisoned(g.value(v).type), s));
      exe.run(s, in, out);
      for (const KernelCheck& c : exe.check_last_run(s))
        EXPECT_TRUE(c.ok) << c.label << ": rel_err " << c.rel_err << " > " << c.tolerance;
    }
  }
}

}  // namespace
