// Type rules of the ops in anychip/ops.def, and the whole-graph verifier.
#include <algorithm>
#include <cmath>

#include "ir/type_rules.hpp"

namespace anychip::ir {
namespace detail {

void OpCheck::fail(const std::string& rule) const {
  throw Error(ErrorCode::InvalidGraph, label + ": " + rule);
}

void OpCheck::fail_operand(std::size_t i, const std::string& rule) const {
  throw Error(ErrorCode::InvalidGraph,
              label + ": operand " + std::string(info.operands[i]) + ": " + rule);
}

namespace {

std::string dims(const Shape& s) { return shape_str(s); }
std::string name(DType d) { return std::string(dtype_name(d)); }
std::string block_str(BlockShape b) { return std::to_string(b.rows) + "x" + std::to_string(b.cols); }

void expect_rank(OpCheck& c, std::size_t i, std::size_t rank) {
  const TensorType& t = c.operand(i);
  if (t.shape.size() != rank)
    c.fail_operand(i, "rank " + std::to_string(t.shape.size()) + " (shape " + dims(t.shape) +
                          "), expected rank " + std::to_string(rank));
}

void expect_float(OpCheck& c, std::size_t i) {
  const TensorType& t = c.operand(i);
  if (!is_float(t.dtype) || t.scale)
    c.fail_operand(i, "dtype " + t.str() + " is not f32, bf16 or f16");
}

void expect_unscaled_dtype_in(OpCheck& c, std::size_t i, std::initializer_list<DType> allowed,
                              const std::string& allowed_text) {
  const TensorType& t = c.operand(i);
  bool ok = !t.scale;
  if (ok) {
    ok = false;
    for (DType d : allowed) ok = ok || t.dtype == d;
  }
  if (!ok) c.fail_operand(i, "dtype " + t.str() + " is not " + allowed_text);
}

void expect_same_dtype(OpCheck& c, std::size_t i, std::size_t j) {
  if (c.operand(i).dtype != c.operand(j).dtype)
    c.fail_operand(j, "dtype " + name(c.operand(j).dtype) + " differs from operand " +
                          std::string(c.info.operands[i]) + "'s " + name(c.operand(i).dtype));
}

void expect_scaled_fp8(OpCheck& c, std::size_t i, BlockShape block, const char* why) {
  const TensorType& t = c.operand(i);
  if (!is_fp8(t.dtype))
    c.fail_operand(i, "dtype " + name(t.dtype) + " is not an FP8 type (f8e4m3, f8e5m2)");
  if (!t.scale)
    c.fail_operand(i, "must be block-scaled: " + t.str() + " has no scaled<" + block_str(block) +
                          ", f32|ue8m0>");
  if (t.scale->block != block)
    c.fail_operand(i, "scale block " + block_str(t.scale->block) + " must be " + block_str(block) +
                          " (" + why + ")");
}

DType out_dtype_in(OpCheck& c, std::initializer_list<DType> allowed, const std::string& text) {
  DType out = c.attr<DType>("out_dtype");
  for (DType d : allowed)
    if (d == out) return out;
  c.fail("out_dtype " + name(out) + " is not " + text);
}

TensorType rule_gemm_fp8(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_rank(c, 1, 2);
  expect_scaled_fp8(c, 0, kActivationBlock, "per-token 1x128 activation tiles");
  expect_scaled_fp8(c, 1, kWeightBlock, "128x128 weight blocks");
  const std::int64_t m = c.operand(0).shape[0], k = c.operand(0).shape[1];
  const std::int64_t n = c.operand(1).shape[0], kb = c.operand(1).shape[1];
  if (kb != k)
    c.fail_operand(1, "K=" + std::to_string(kb) + " differs from operand a's K=" + std::to_string(k));
  if (k % 128 != 0) c.fail_operand(0, "K=" + std::to_string(k) + " is not a multiple of 128");
  DType out = out_dtype_in(c, {DType::bf16, DType::f32}, "bf16 or f32");
  return {out, {m, n}, std::nullopt};
}

TensorType rule_gemm(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_rank(c, 1, 2);
  expect_unscaled_dtype_in(c, 0, {DType::f32, DType::bf16}, "f32 or bf16");
  expect_same_dtype(c, 0, 1);
  const std::int64_t k = c.operand(0).shape[1], kb = c.operand(1).shape[1];
  if (kb != k)
    c.fail_operand(1, "K=" + std::to_string(kb) + " differs from operand a's K=" + std::to_string(k));
  DType out = out_dtype_in(c, {DType::bf16, DType::f32}, "bf16 or f32");
  return {out, {c.operand(0).shape[0], c.operand(1).shape[0]}, std::nullopt};
}

TensorType rule_attention(OpCheck& c) {
  for (std::size_t i = 0; i < 3; ++i) {
    expect_rank(c, i, 4);
    expect_float(c, i);
  }
  expect_same_dtype(c, 0, 1);
  expect_same_dtype(c, 0, 2);
  const Shape &q = c.operand(0).shape, &k = c.operand(1).shape, &v = c.operand(2).shape;
  auto same = [&](std::size_t i, const Shape& s, std::size_t dim, std::int64_t want,
                  const std::string& what) {
    if (s[dim] != want)
      c.fail_operand(i, what + "=" + std::to_string(s[dim]) + " differs from " +
                            std::to_string(want) + " (shape " + dims(s) + ")");
  };
  same(1, k, 0, q[0], "batch");
  same(2, v, 0, q[0], "batch");
  same(1, k, 3, q[3], "head_dim");
  same(2, v, 1, k[1], "seq_kv");
  same(2, v, 2, k[2], "heads_kv");
  if (q[2] % k[2] != 0)
    c.fail_operand(1, "heads_q=" + std::to_string(q[2]) + " is not divisible by heads_kv=" +
                          std::to_string(k[2]));
  if (!c.has_attr("scale"))
    c.attrs[attr_index(c.info.kind, "scale")] = 1.0 / std::sqrt(static_cast<double>(q[3]));
  const double scale = c.attr<double>("scale");
  if (!(std::isfinite(scale) && scale > 0)) c.fail("scale " + attr_text(scale) + " must be finite and > 0");
  return {c.operand(0).dtype, {q[0], q[1], q[2], v[3]}, std::nullopt};
}

TensorType rule_quantize_fp8(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_float(c, 0);
  DType dtype = c.attr<DType>("dtype");
  if (!is_fp8(dtype)) c.fail("dtype " + name(dtype) + " is not an FP8 type (f8e4m3, f8e5m2)");
  BlockShape block = c.attr<BlockShape>("block");
  if (block.rows <= 0 || block.cols <= 0) c.fail("block " + block_str(block) + " must be positive");
  DType scale_dtype = c.attr<DType>("scale_dtype");
  if (!is_scale_dtype(scale_dtype)) c.fail("scale_dtype " + name(scale_dtype) + " is not f32 or ue8m0");
  return {dtype, c.operand(0).shape, ScaleLayout{block, scale_dtype}};
}

TensorType rule_dequantize(OpCheck& c) {
  expect_rank(c, 0, 2);
  const TensorType& x = c.operand(0);
  if (!is_fp8(x.dtype) || !x.scale)
    c.fail_operand(0, x.str() + " is not a block-scaled FP8 tensor");
  DType dtype = c.attr<DType>("dtype");
  if (!is_float(dtype)) c.fail("dtype " + name(dtype) + " is not f32, bf16 or f16");
  return {dtype, x.shape, std::nullopt};
}

TensorType rule_rmsnorm(OpCheck& c) {
  expect_float(c, 0);
  expect_float(c, 1);
  const Shape& x = c.operand(0).shape;
  if (x.empty()) c.fail_operand(0, "must have at least one dimension");
  expect_rank(c, 1, 1);
  if (c.operand(1).shape[0] != x.back())
    c.fail_operand(1, "length " + std::to_string(c.operand(1).shape[0]) +
                          " differs from operand x's last dimension " + std::to_string(x.back()));
  const double eps = c.attr<double>("eps");
  if (!(eps >= 0 && std::isfinite(eps))) c.fail("eps " + attr_text(eps) + " must be finite and >= 0");
  return {c.operand(0).dtype, x, std::nullopt};
}

TensorType rule_silu_mul(OpCheck& c) {
  expect_float(c, 0);
  Shape s = c.operand(0).shape;
  if (s.empty()) c.fail_operand(0, "must have at least one dimension");
  if (s.back() % 2 != 0)
    c.fail_operand(0, "last dimension " + std::to_string(s.back()) +
                          " is odd; it must hold gate and up halves");
  s.back() /= 2;
  return {c.operand(0).dtype, s, std::nullopt};
}

TensorType rule_add(OpCheck& c) {
  expect_float(c, 0);
  expect_float(c, 1);
  expect_same_dtype(c, 0, 1);
  if (c.operand(1).shape != c.operand(0).shape)
    c.fail_operand(1, "shape " + dims(c.operand(1).shape) + " differs from operand a's " +
                          dims(c.operand(0).shape));
  return {c.operand(0).dtype, c.operand(0).shape, std::nullopt};
}

// ---- transformer-layer plumbing: rope, slice, concat ----

std::int64_t int_attr_at_least(OpCheck& c, std::string_view attr, std::int64_t min) {
  const std::int64_t v = c.attr<std::int64_t>(attr);
  if (v < min) c.fail(std::string(attr) + " " + std::to_string(v) + " must be >= " + std::to_string(min));
  return v;
}

void expect_dtype(OpCheck& c, std::size_t i, DType d) {
  const TensorType& t = c.operand(i);
  if (t.dtype != d || t.scale) c.fail_operand(i, "dtype " + t.str() + " is not " + name(d));
}

void expect_dim(OpCheck& c, std::size_t i, std::size_t dim, std::int64_t want, const std::string& what) {
  const Shape& s = c.operand(i).shape;
  if (s[dim] != want)
    c.fail_operand(i, "dimension " + std::to_string(dim) + " of " + dims(s) + " is " +
                          std::to_string(s[dim]) + ", expected " + what + " " + std::to_string(want));
}

// An axis attribute resolved against `rank` (negative counts from the end).
std::int64_t resolve_axis(OpCheck& c, std::size_t rank) {
  std::int64_t& axis = c.attr<std::int64_t>("axis");
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r)
    c.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  if (axis < 0) axis += r;
  return axis;
}

TensorType rule_rope(OpCheck& c) {
  expect_rank(c, 0, 3);
  expect_float(c, 0);
  expect_rank(c, 1, 1);
  expect_dtype(c, 1, DType::i32);
  const Shape& x = c.operand(0).shape;
  expect_dim(c, 1, 0, x[0], "operand x's tokens");
  if (!c.has_attr("dims")) c.attrs[attr_index(c.info.kind, "dims")] = x[2];
  const std::int64_t rot = c.attr<std::int64_t>("dims");
  if (rot <= 0 || rot % 2 != 0 || rot > x[2])
    c.fail("dims " + std::to_string(rot) + " must be even, > 0 and <= the head dimension " +
           std::to_string(x[2]));
  const double theta = c.attr<double>("theta");
  if (!(std::isfinite(theta) && theta > 1)) c.fail("theta " + attr_text(theta) + " must be finite and > 1");
  const double factor = c.attr<double>("yarn_factor");
  if (!(std::isfinite(factor) && factor >= 1)) c.fail("yarn_factor " + attr_text(factor) + " must be finite and >= 1");
  if (factor > 1) {
    if (c.attr<std::int64_t>("yarn_original_len") <= 0)
      c.fail("yarn_original_len " + std::to_string(c.attr<std::int64_t>("yarn_original_len")) +
             " must be > 0 when yarn_factor > 1");
    const double fast = c.attr<double>("yarn_beta_fast"), slow = c.attr<double>("yarn_beta_slow");
    if (!(std::isfinite(fast) && slow > 0 && fast > slow))
      c.fail("yarn_beta_fast " + attr_text(fast) + " and yarn_beta_slow " + attr_text(slow) +
             " must satisfy beta_fast > beta_slow > 0");
  }
  return {c.operand(0).dtype, x, std::nullopt};
}

TensorType rule_slice(OpCheck& c) {
  const TensorType& x = c.operand(0);
  if (x.scale) c.fail_operand(0, x.str() + " is block-scaled; slicing would cut its scale blocks");
  const std::int64_t axis = resolve_axis(c, x.shape.size());
  const std::int64_t begin = c.attr<std::int64_t>("begin"), size = c.attr<std::int64_t>("size");
  if (begin < 0 || size <= 0 || begin + size > x.shape[axis])
    c.fail("begin " + std::to_string(begin) + " size " + std::to_string(size) +
           " must lie inside dimension " + std::to_string(axis) + " of " + dims(x.shape));
  Shape out = x.shape;
  out[axis] = size;
  return {x.dtype, out, std::nullopt};
}

TensorType rule_concat(OpCheck& c) {
  const TensorType &a = c.operand(0), &b = c.operand(1);
  for (std::size_t i = 0; i < 2; ++i)
    if (c.operand(i).scale) c.fail_operand(i, c.operand(i).str() + " is block-scaled; concat takes unscaled tensors");
  expect_same_dtype(c, 0, 1);
  if (b.shape.size() != a.shape.size())
    c.fail_operand(1, "rank " + std::to_string(b.shape.size()) + " differs from operand a's " +
                          std::to_string(a.shape.size()));
  const std::int64_t axis = resolve_axis(c, a.shape.size());
  Shape out = a.shape;
  for (std::size_t d = 0; d < out.size(); ++d) {
    if (static_cast<std::int64_t>(d) == axis) {
      out[d] = a.shape[d] + b.shape[d];
    } else if (a.shape[d] != b.shape[d] && a.shape[d] != 1 && b.shape[d] != 1) {
      c.fail_operand(1, "dimension " + std::to_string(d) + " is " + std::to_string(b.shape[d]) +
                            ", operand a's is " + std::to_string(a.shape[d]) +
                            "; they must be equal or one of them 1 (broadcast)");
    } else {
      out[d] = std::max(a.shape[d], b.shape[d]);
    }
  }
  return {a.dtype, out, std::nullopt};
}

// ---- mixture of experts ----

TensorType rule_moe_topk(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_dtype(c, 0, DType::f32);
  expect_rank(c, 1, 1);
  expect_dtype(c, 1, DType::f32);
  const std::int64_t tokens = c.operand(0).shape[0], experts = c.operand(0).shape[1];
  expect_dim(c, 1, 0, experts, "operand logits' experts");
  const std::int64_t k = int_attr_at_least(c, "k", 1);
  const std::int64_t groups = int_attr_at_least(c, "groups", 1);
  const std::int64_t top = int_attr_at_least(c, "top_groups", 1);
  if (experts % groups != 0)
    c.fail("groups " + std::to_string(groups) + " does not divide the " + std::to_string(experts) + " experts");
  if (top > groups)
    c.fail("top_groups " + std::to_string(top) + " exceeds groups " + std::to_string(groups));
  if (k > top * (experts / groups))
    c.fail("k " + std::to_string(k) + " exceeds the " + std::to_string(top * (experts / groups)) +
           " experts of the top_groups groups");
  return {DType::i32, {tokens, k}, std::nullopt};
}

TensorType rule_moe_weights(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_dtype(c, 0, DType::f32);
  expect_rank(c, 1, 2);
  expect_dtype(c, 1, DType::i32);
  expect_dim(c, 1, 0, c.operand(0).shape[0], "operand logits' tokens");
  const double scale = c.attr<double>("scale");
  if (!(std::isfinite(scale) && scale > 0)) c.fail("scale " + attr_text(scale) + " must be finite and > 0");
  return {DType::f32, c.operand(1).shape, std::nullopt};
}

TensorType rule_moe_plan(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_dtype(c, 0, DType::i32);
  const std::int64_t experts = int_attr_at_least(c, "num_experts", 1);
  const std::int64_t align = int_attr_at_least(c, "align", 1);
  const Shape& s = c.operand(0).shape;
  if (s[1] > experts)
    c.fail_operand(0, "k=" + std::to_string(s[1]) + " exceeds num_experts " + std::to_string(experts));
  return {DType::i32, {3, moe_plan_rows(s[0], s[1], experts, align)}, std::nullopt};
}

void expect_plan(OpCheck& c, std::size_t i) {
  expect_rank(c, i, 2);
  expect_dtype(c, i, DType::i32);
  if (c.operand(i).shape[0] != 3)
    c.fail_operand(i, "shape " + dims(c.operand(i).shape) + " is not a moe_plan [3, rows]");
}

TensorType rule_moe_gather(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_float(c, 0);
  expect_plan(c, 1);
  return {c.operand(0).dtype, {c.operand(1).shape[1], c.operand(0).shape[1]}, std::nullopt};
}

TensorType rule_gemm_fp8_grouped(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_rank(c, 1, 2);
  expect_scaled_fp8(c, 0, kActivationBlock, "per-token 1x128 activation tiles");
  expect_scaled_fp8(c, 1, kWeightBlock, "128x128 weight blocks");
  expect_rank(c, 2, 1);
  expect_dtype(c, 2, DType::i32);
  const std::int64_t m = c.operand(0).shape[0], k = c.operand(0).shape[1];
  const std::int64_t rows = c.operand(1).shape[0], kb = c.operand(1).shape[1];
  const std::int64_t groups = int_attr_at_least(c, "groups", 1);
  int_attr_at_least(c, "align", 1);
  if (kb != k)
    c.fail_operand(1, "K=" + std::to_string(kb) + " differs from operand a's K=" + std::to_string(k));
  if (k % 128 != 0) c.fail_operand(0, "K=" + std::to_string(k) + " is not a multiple of 128");
  if (rows % groups != 0 || (rows / groups) % 128 != 0)
    c.fail_operand(1, std::to_string(rows) + " rows are not groups=" + std::to_string(groups) +
                          " weights of N rows with N a multiple of 128");
  expect_dim(c, 2, 0, m, "operand a's M");
  DType out = out_dtype_in(c, {DType::bf16, DType::f32}, "bf16 or f32");
  return {out, {m, rows / groups}, std::nullopt};
}

TensorType rule_moe_combine(OpCheck& c) {
  expect_rank(c, 0, 2);
  expect_float(c, 0);
  expect_plan(c, 1);
  expect_rank(c, 2, 2);
  expect_dtype(c, 2, DType::f32);
  const Shape &y = c.operand(0).shape, &plan = c.operand(1).shape, &w = c.operand(2).shape;
  if (plan[1] != y[0])
    c.fail_operand(1, "rows=" + std::to_string(plan[1]) + " differs from operand y's " + std::to_string(y[0]));
  if (w[0] * w[1] > plan[1])
    c.fail_operand(2, "holds " + std::to_string(w[0] * w[1]) + " choices, more than the plan's " +
                          std::to_string(plan[1]) + " rows");
  return {c.operand(0).dtype, {w[0], y[1]}, std::nullopt};
}

TensorType rule_reshape(OpCheck& c) {
  const TensorType& x = c.operand(0);
  if (x.scale) c.fail_operand(0, x.str() + " is block-scaled; reshaping would move its scale blocks");
  const Shape& shape = c.attr<Shape>("shape");
  TensorType out{x.dtype, shape, std::nullopt};
  for (std::int64_t d : shape)
    if (d <= 0) c.fail("shape " + dims(shape) + " has a dimension <= 0");
  if (out.numel() != x.numel())
    c.fail("shape " + dims(shape) + " has " + std::to_string(out.numel()) +
           " elements, operand x " + dims(x.shape) + " has " + std::to_string(x.numel()));
  return out;
}

}  // namespace

TensorType infer_type(OpCheck& check) {
  switch (check.info.kind) {
#define ANYCHIP_OP(name, ...) \
  case OpKind::name: return rule_##name(check);
#include "anychip/ops.def"
#undef ANYCHIP_OP
  }
  throw Error(ErrorCode::Internal, check.label + ": op without a type rule");
}

}  // namespace detail

void verify_type(const TensorType& t, std::string_view what) {
  auto fail = [&](const std::string& rule) {
    throw Error(ErrorCode::InvalidGraph, std::string(what) + ": " + rule);
  };
  if (t.shape.empty()) fail("type " + t.str() + " has no dimensions");
  for (std::size_t i = 0; i < t.shape.size(); ++i)
    if (t.shape[i] <= 0)
      fail("dimension " + std::to_string(i) + " of " + shape_str(t.shape) + " is " +
           std::to_string(t.shape[i]) + "; dimensions must be positive");
  if (t.dtype == DType::ue8m0) fail("ue8m0 is a scale format, not a tensor element type");
  if (t.scale) {
    if (!is_fp8(t.dtype)) fail("scaled<...> needs an FP8 dtype, not " + std::string(dtype_name(t.dtype)));
    if (t.scale->block.rows <= 0 || t.scale->block.cols <= 0)
      fail("scale block " + std::to_string(t.scale->block.rows) + "x" +
           std::to_string(t.scale->block.cols) + " must be positive");
    if (!is_scale_dtype(t.scale->dtype))
      fail("scale dtype " + std::string(dtype_name(t.scale->dtype)) + " is not f32 or ue8m0");
    if (t.shape.size() != 2) fail("a block-scaled tensor must have rank 2, not " + shape_str(t.shape));
  }
}

void verify(const Graph& g) {
  if (g.outputs().empty())
    throw Error(ErrorCode::InvalidGraph, "graph @" + g.name() + ": has no outputs");
  for (std::size_t i = 0; i < g.outputs().size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (g.outputs()[i] == g.outputs()[j])
        throw Error(ErrorCode::InvalidGraph, "graph @" + g.name() + ": output %" +
                                                 g.value(g.outputs()[i]).name + " is returned twice");
}

}  // namespace anychip::ir
