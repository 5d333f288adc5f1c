// Whole-graph float64 evaluation (anychip/reference.hpp): values stored as a device stores
// them, quantization by the recipe, views, given values, and the errors it reports.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>

#include "anychip/anychip.hpp"
#include "anychip/reference.hpp"

using namespace anychip;

namespace {

TensorType bf16(Shape s) { return {DType::bf16, std::move(s), std::nullopt}; }

TEST(ReferenceEval, RmsnormIsComputedExactlyThenRoundedToItsDtype) {
  ir::Graph g("g");
  ir::ValueId x = g.input("x", bf16({3, 256}));
  ir::ValueId w = g.input("w", {DType::f32, {256}, std::nullopt});
  g.output(g.rmsnorm(x, w, 1e-6, "y"));
  const HostTensor hx = HostTensor::random(g.value(x).type, 1),
                   hw = HostTensor::random(g.value(w).type, 2);
  std::vector<HostTensor> v = evaluate_reference(g, std::vector<HostTensor>{hx, hw});
  const HostTensor& y = v[static_cast<std::size_t>(g.outputs()[0])];
  ASSERT_EQ(y.type, g.value(g.outputs()[0]).type);
  const std::vector<double> xv = hx.values(), wv = hw.values();
  std::vector<double> want(xv.size());
  for (int r = 0; r < 3; ++r) {
    double ss = 0;
    for (int c = 0; c < 256; ++c) ss += xv[r * 256 + c] * xv[r * 256 + c];
    const double inv = 1 / std::sqrt(ss / 256 + 1e-6);
    for (int c = 0; c < 256; ++c) want[r * 256 + c] = xv[r * 256 + c] * inv * wv[c];
  }
  // Stored as bf16: the exact value rounded once, byte for byte.
  EXPECT_EQ(y.data, HostTensor::encode(y.type, want).data);
}

TEST(ReferenceEval, QuantizeIsTheRecipeOnTheStoredInputCodesAndScales) {
  ir::Graph g("g");
  ir::ValueId x = g.input("x", bf16({4, 384}));
  ir::ValueId q = g.quantize_fp8(x, kActivationBlock, DType::ue8m0, DType::f8e4m3, "q");
  g.output(q);
  const HostTensor hx = HostTensor::random(g.value(x).type, 3);
  std::vector<HostTensor> v = evaluate_reference(g, std::vector<HostTensor>{hx});
  const HostTensor want = HostTensor::encode(g.value(q).type, hx.values());
  EXPECT_EQ(v[static_cast<std::size_t>(q)].data, want.data);
  EXPECT_EQ(v[static_cast<std::size_t>(q)].scales, want.scales);
}

TEST(ReferenceEval, ViewsKeepTheBytesAndEveryValueIsReturned) {
  ir::Graph g("g");
  ir::ValueId x = g.input("x", bf16({2, 6}));
  ir::ValueId r = g.reshape(x, {3, 4}, "r");
  ir::ValueId y = g.add(r, r, "y");
  g.output(y);
  const HostTensor hx = HostTensor::random(g.value(x).type, 4);
  std::vector<HostTensor> v = evaluate_reference(g, std::vector<HostTensor>{hx});
  ASSERT_EQ(v.size(), g.values().size());
  EXPECT_EQ(v[static_cast<std::size_t>(r)].type, g.value(r).type);
  EXPECT_EQ(v[static_cast<std::size_t>(r)].data, hx.data);
  const std::vector<double> xv = hx.values(), yv = v[static_cast<std::size_t>(y)].values();
  for (std::size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(yv[i], 2 * xv[i]);  // doubling is exact
}

// A router whose choice is given: moe_weights must use the given experts, not its own.
TEST(ReferenceEval, AGivenValueReplacesTheComputedOneDownstream) {
  ir::Graph g("g");
  ir::ValueId logits = g.input("logits", {DType::f32, {2, 8}, std::nullopt});
  ir::ValueId bias = g.input("bias", {DType::f32, {8}, std::nullopt});
  ir::ValueId experts = g.moe_topk(logits, bias, 2, 1, 1, "experts");
  ir::ValueId weights = g.moe_weights(logits, experts, 1.0, "weights");
  g.output(experts);
  g.output(weights);
  std::vector<double> l(16), b(8, 0.0);
  for (int i = 0; i < 16; ++i) l[i] = 0.1 * i;  // both tokens pick experts 7, 6
  const std::vector<HostTensor> in = {HostTensor::encode(g.value(logits).type, l),
                                      HostTensor::encode(g.value(bias).type, b)};
  std::vector<HostTensor> natural = evaluate_reference(g, in);
  const std::vector<double> chosen = natural[static_cast<std::size_t>(experts)].values();
  EXPECT_EQ(chosen, (std::vector<double>{7, 6, 7, 6}));

  ReferenceOptions o;
  o.given[experts] = HostTensor::encode(g.value(experts).type, std::vector<double>{0, 1, 2, 3});
  std::vector<HostTensor> forced = evaluate_reference(g, in, o);
  EXPECT_EQ(forced[static_cast<std::size_t>(experts)].values(), (std::vector<double>{0, 1, 2, 3}));
  const std::vector<double> w = forced[static_cast<std::size_t>(weights)].values();
  auto sig = [](double z) { return 1 / (1 + std::exp(-z)); };
  EXPECT_NEAR(w[0], sig(l[0]) / (sig(l[0]) + sig(l[1])), 1e-6);
  EXPECT_NEAR(w[2], sig(l[8 + 2]) / (sig(l[8 + 2]) + sig(l[8 + 3])), 1e-6);
}

TEST(ReferenceEval, RejectsMissingMistypedAndMisplacedValues) {
  ir::Graph g("g");
  ir::ValueId x = g.input("x", bf16({2, 128}));
  ir::ValueId y = g.add(x, x, "y");
  g.output(y);
  const HostTensor hx = HostTensor::random(g.value(x).type, 5);
  auto code_of = [&](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::optional<ErrorCode>(e.code());
    }
    return std::optional<ErrorCode>();
  };
  EXPECT_EQ(code_of([&] { evaluate_reference(g, std::vector<HostTensor>{}); }),
            ErrorCode::InvalidArgument);
  const HostTensor wrong = HostTensor::random(bf16({2, 256}), 6);
  EXPECT_EQ(code_of([&] { evaluate_reference(g, std::vector<HostTensor>{wrong}); }),
            ErrorCode::InvalidArgument);
  ReferenceOptions o;
  o.given[x] = hx;  // an input is passed as an input
  EXPECT_EQ(code_of([&] { evaluate_reference(g, std::vector<HostTensor>{hx}, o); }),
            ErrorCode::InvalidArgument);
  ReferenceOptions o2;
  o2.given[y] = wrong;
  EXPECT_EQ(code_of([&] { evaluate_reference(g, std::vector<HostTensor>{hx}, o2); }),
            ErrorCode::InvalidArgument);
}

// The CPU backend rounds like the reference nearly everywhere, so the DeepSeek block's
// output (three FP8 quantizations deep) agrees with the evaluation far inside the 5e-2
// that two independent E4M3 roundings could differ by (examples/deepseek_layer/README.md).
TEST(ReferenceEval, AgreesWithTheCpuOnTheDeepSeekBlock) {
  ir::Graph g = ir::parse_file(std::string(ANYCHIP_SOURCE_DIR) + "/examples/deepseek_block.acir");
  Device cpu = Device::open("cpu");
  CompileOptions co;
  co.use_cache = false;
  Executable exe = compile(g, cpu, co);
  Stream s = cpu.create_stream();
  std::vector<HostTensor> host;
  std::vector<Tensor> in;
  for (std::size_t i = 0; i < g.inputs().size(); ++i) {
    host.push_back(HostTensor::random(g.value(g.inputs()[i]).type, 200 + i));
    in.push_back(cpu.upload(host.back(), s));
  }
  std::vector<Tensor> out = exe.allocate_outputs();
  exe.run(s, in, out);
  const std::vector<HostTensor> ref = evaluate_reference(g, host);
  const double err =
      rel_err(out[0].download(s).values(), ref[static_cast<std::size_t>(g.outputs()[0])].values());
  EXPECT_LT(err, 5e-2);
}

}  // namespace
