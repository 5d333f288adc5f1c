// The .acir text format: exact round trips and errors located as FILE:LINE:COLUMN.
#include <gtest/gtest.h>

#include "anychip/ir.hpp"

using namespace anychip;
using namespace anychip::ir;

namespace {

const char* kBlock = R"(graph @block {
  %x: bf16[64, 512] = input
  %norm_w: f32[512] = input
  %wq: f8e4m3[512, 512] scaled<128x128, ue8m0> = input
  %wk: f8e4m3[128, 512] scaled<128x128, f32> = input
  %h: bf16[64, 512] = rmsnorm(%x, %norm_w) {eps = 1e-06}
  %hq: f8e4m3[64, 512] scaled<1x128, ue8m0> = quantize_fp8(%h) {dtype = f8e4m3, block = 1x128, scale_dtype = ue8m0}
  %q: bf16[64, 512] = gemm_fp8(%hq, %wq) {out_dtype = bf16}
  %k: bf16[64, 128] = gemm_fp8(%hq, %wk) {out_dtype = bf16}
  %q4: bf16[1, 64, 8, 64] = reshape(%q) {shape = [1, 64, 8, 64]}
  %k4: bf16[1, 64, 2, 64] = reshape(%k) {shape = [1, 64, 2, 64]}
  %o: bf16[1, 64, 8, 64] = attention(%q4, %k4, %k4) {causal = true, scale = 0.125}
  %o2: bf16[64, 512] = reshape(%o) {shape = [64, 512]}
  %y: bf16[64, 512] = add(%o2, %x)
  %g: bf16[64, 256] = silu_mul(%y)
  %d: f32[64, 512] = dequantize(%hq) {dtype = f32}
  %p: f32[64, 64] = gemm(%d, %d) {out_dtype = f32}
  return %y, %g, %p
}
)";

TEST(TextFormat, PrintOfParseIsTheSameText) {
  EXPECT_EQ(print(parse(kBlock, "block.acir")), kBlock);
}

TEST(TextFormat, ParseOfPrintIsTheSameGraph) {
  Graph g("built");
  auto x = g.input("x", {DType::f32, {3, 256}, std::nullopt});
  auto q = g.quantize_fp8(x, kWeightBlock, DType::f32, DType::f8e5m2);
  auto w = g.input("w", {DType::f8e4m3, {7, 256}, ScaleLayout{kWeightBlock, DType::ue8m0}});
  auto a = g.quantize_fp8(x);
  g.output(g.gemm_fp8(a, w, DType::f32));
  g.output(g.dequantize(q, DType::bf16));
  g.output(g.rmsnorm(x, g.input("nw", {DType::bf16, {256}, std::nullopt}), 1.0 / 3.0));
  const std::string text = print(g);
  Graph back = parse(text);
  EXPECT_EQ(print(back), text);
  ASSERT_EQ(back.nodes().size(), g.nodes().size());
  for (std::size_t i = 0; i < g.nodes().size(); ++i) {
    EXPECT_EQ(back.nodes()[i].attrs, g.nodes()[i].attrs);
    EXPECT_EQ(back.value(back.nodes()[i].output).type, g.value(g.nodes()[i].output).type);
  }
}

TEST(TextFormat, FloatAttributesRoundTripExactly) {
  for (double v : {1e-6, 0.1, 1.0 / 3.0, 0.08838834764831845, 1e-300, 123456789.125}) {
    Graph g("g");
    auto x = g.input("x", {DType::f32, {2, 8}, std::nullopt});
    g.output(g.rmsnorm(x, g.input("w", {DType::f32, {8}, std::nullopt}), v));
    Graph back = parse(print(g));
    EXPECT_EQ(back.nodes().back().attr<double>("eps"), v) << print(g);
  }
}

TEST(TextFormat, OmittedResultTypesAndAttributesAreInferred) {
  Graph g = parse("# comment\ngraph @g {\n  %x: bf16[2, 8] = input  # trailing\n  %y = silu_mul(%x)\n  return %y\n}\n");
  EXPECT_EQ(print(g), "graph @g {\n  %x: bf16[2, 8] = input\n  %y: bf16[2, 4] = silu_mul(%x)\n  return %y\n}\n");
}

struct BadText {
  const char* name;
  const char* text;
  const char* message;
};

const BadText kBadTexts[] = {
    {"MissingGraphKeyword", "grph @g {\n}\n", "t.acir:1:1: expected 'graph @name {'"},
    {"UnknownDtype", "graph @g {\n  %x: f64[2] = input\n  return %x\n}\n",
     "t.acir:2:7: unknown dtype 'f64' (f32, bf16, f16, f8e4m3, f8e5m2, ue8m0, i32)"},
    {"UnknownOp", "graph @g {\n  %x: f32[2, 2] = input\n  %y = matmul(%x, %x)\n  return %y\n}\n",
     "t.acir:3:8: unknown op 'matmul' (ops: gemm_fp8, gemm, attention, quantize_fp8, dequantize, rmsnorm, silu_mul, add, rope, slice, concat, moe_topk, moe_weights, moe_plan, moe_gather, gemm_fp8_grouped, moe_combine, reshape)"},
    {"UndefinedValue", "graph @g {\n  %x: f32[2, 2] = input\n  %y = add(%x, %z)\n  return %y\n}\n",
     "t.acir:3:16: %z is not defined (values are defined before use)"},
    {"UnknownAttribute", "graph @g {\n  %x: f32[2, 2] = input\n  %y = add(%x, %x) {alpha = 2}\n  return %y\n}\n",
     "t.acir:3:21: add has no attribute 'alpha' (attributes: none)"},
    {"BadAttributeValue",
     "graph @g {\n  %x: f32[2, 128] = input\n  %y = quantize_fp8(%x) {block = 1by128}\n  return %y\n}\n",
     "t.acir:3:34: expected a block shape like 1x128"},
    {"MissingReturn", "graph @g {\n  %x: f32[2, 2] = input\n", "t.acir:3:1: expected 'return' and '}' before the end of the file"},
    {"InputWithoutType", "graph @g {\n  %x = input\n  return %x\n}\n",
     "t.acir:2:8: input %x needs a type: %x: TYPE = input"},
    {"DeclaredTypeDiffers", "graph @g {\n  %x: f32[2, 2] = input\n  %y: f32[2, 3] = add(%x, %x)\n  return %y\n}\n",
     "t.acir:3:3: add %y: declared type f32[2, 3] differs from the inferred f32[2, 2]"},
    {"RuleBrokenIsLocated",
     "graph @g {\n  %a: f8e4m3[4, 1000] scaled<1x128, ue8m0> = input\n  %b: f8e4m3[4, 1000] scaled<128x128, ue8m0> = input\n  %y = gemm_fp8(%a, %b)\n  return %y\n}\n",
     "t.acir:4:3: gemm_fp8 %y: operand a: K=1000 is not a multiple of 128"},
    {"TrailingText", "graph @g {\n  %x: f32[2] = input\n  %y = add(%x, %x)\n  return %y\n}\nextra\n",
     "t.acir:6:1: unexpected text after the graph's closing '}'"},
};

void PrintTo(const BadText& b, std::ostream* os) { *os << b.name; }

class TextFormatRejects : public ::testing::TestWithParam<BadText> {};

TEST_P(TextFormatRejects, WithFileLineColumn) {
  try {
    parse(GetParam().text, "t.acir");
    FAIL() << "parsed bad text; expected: " << GetParam().message;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), GetParam().message);
  }
}

INSTANTIATE_TEST_SUITE_P(Ir, TextFormatRejects, ::testing::ValuesIn(kBadTexts),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(TextFormat, MissingFileIsAnIoError) {
  try {
    parse_file("/nonexistent/graph.acir");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::IoError);
    EXPECT_EQ(std::string(e.what()), "/nonexistent/graph.acir: cannot open for reading");
  }
}

}  // namespace
