// op_name and describe (kernel_spec.hpp). describe() is part of the kernel-cache key:
// every field of the problem and of the tiles appears, labelled, and doubles are printed
// as the shortest text that reads back to the same value, so two different specs never
// give the same line.
#include "kernels/kernel_spec.hpp"

#include <charconv>
#include <string>
#include <system_error>
#include <variant>

namespace anychip::kernels {
namespace {

class Line {
 public:
  explicit Line(std::string_view op) : s_(op) {}

  Line& field(std::string_view key, std::int64_t v) { return put(key, std::to_string(v)); }
  Line& field(std::string_view key, DType v) { return put(key, dtype_name(v)); }
  Line& field(std::string_view key, bool v) { return put(key, v ? "1" : "0"); }
  Line& field(std::string_view key, double v) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
    return put(key, ec == std::errc() ? std::string_view(buf, static_cast<std::size_t>(end - buf))
                                      : std::string_view("?"));
  }
  Line& field(std::string_view key, BlockShape b) {
    return put(key, std::to_string(b.rows) + "x" + std::to_string(b.cols));
  }
  Line& field(std::string_view key, const Shape& s) {
    std::string text;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (i) text += 'x';
      text += std::to_string(s[i]);
    }
    return put(key, text);
  }
  Line& field(std::string_view key, const TileConfig& t) {
    return put(key, std::to_string(t.m) + "x" + std::to_string(t.n) + "x" + std::to_string(t.k) +
                        "s" + std::to_string(t.stages));
  }
  std::string str() && { return std::move(s_); }

 private:
  Line& put(std::string_view key, std::string_view value) {
    s_ += ' ';
    s_ += key;
    s_ += '=';
    s_ += value;
    return *this;
  }
  std::string s_;
};

struct Name {
  std::string_view operator()(const GemmFp8Problem&) const { return "gemm_fp8"; }
  std::string_view operator()(const GemmProblem&) const { return "gemm"; }
  std::string_view operator()(const AttentionProblem&) const { return "attention"; }
  std::string_view operator()(const RmsNormProblem&) const { return "rmsnorm"; }
  std::string_view operator()(const SiluMulProblem&) const { return "silu_mul"; }
  std::string_view operator()(const AddProblem&) const { return "add"; }
  std::string_view operator()(const QuantizeProblem&) const { return "quantize_fp8"; }
  std::string_view operator()(const DequantizeProblem&) const { return "dequantize"; }
  std::string_view operator()(const RopeProblem&) const { return "rope"; }
  std::string_view operator()(const SliceProblem&) const { return "slice"; }
  std::string_view operator()(const ConcatProblem&) const { return "concat"; }
  std::string_view operator()(const MoeTopkProblem&) const { return "moe_topk"; }
  std::string_view operator()(const MoeWeightsProblem&) const { return "moe_weights"; }
  std::string_view operator()(const MoePlanProblem&) const { return "moe_plan"; }
  std::string_view operator()(const MoeGatherProblem&) const { return "moe_gather"; }
  std::string_view operator()(const GemmFp8GroupedProblem&) const { return "gemm_fp8_grouped"; }
  std::string_view operator()(const MoeCombineProblem&) const { return "moe_combine"; }
};

// The problem's fields, in declaration order.
struct Fields {
  Line& line;
  void operator()(const GemmFp8Problem& p) const {
    line.field("m", p.m).field("n", p.n).field("k", p.k).field("a", p.a_dtype).field("b", p.b_dtype)
        .field("sa", p.a_scale_dtype).field("sb", p.b_scale_dtype).field("out", p.out_dtype);
  }
  void operator()(const GemmProblem& p) const {
    line.field("m", p.m).field("n", p.n).field("k", p.k).field("in", p.in_dtype)
        .field("out", p.out_dtype);
  }
  void operator()(const AttentionProblem& p) const {
    line.field("batch", p.batch).field("sq", p.seq_q).field("skv", p.seq_kv).field("hq", p.heads_q)
        .field("hkv", p.heads_kv).field("dk", p.head_dim).field("dv", p.head_dim_v)
        .field("causal", p.causal).field("scale", p.scale).field("dtype", p.dtype);
  }
  void operator()(const RmsNormProblem& p) const {
    line.field("rows", p.rows).field("dim", p.dim).field("eps", p.eps).field("dtype", p.dtype)
        .field("w", p.weight_dtype);
  }
  void operator()(const SiluMulProblem& p) const {
    line.field("rows", p.rows).field("dim", p.dim).field("dtype", p.dtype);
  }
  void operator()(const AddProblem& p) const {
    line.field("numel", p.numel).field("dtype", p.dtype);
  }
  void operator()(const QuantizeProblem& p) const {
    line.field("rows", p.rows).field("cols", p.cols).field("in", p.in_dtype).field("out", p.out_dtype)
        .field("block", p.block).field("scale", p.scale_dtype);
  }
  void operator()(const DequantizeProblem& p) const {
    line.field("rows", p.rows).field("cols", p.cols).field("in", p.in_dtype).field("block", p.block)
        .field("scale", p.scale_dtype).field("out", p.out_dtype);
  }
  void operator()(const RopeProblem& p) const {
    line.field("tokens", p.tokens).field("heads", p.heads).field("dim", p.dim).field("rot", p.rot)
        .field("theta", p.theta).field("dtype", p.dtype);
    if (p.scaling.factor > 1)
      line.field("yarn", p.scaling.factor).field("yarn_len", p.scaling.original_len)
          .field("beta_fast", p.scaling.beta_fast).field("beta_slow", p.scaling.beta_slow);
  }
  void operator()(const SliceProblem& p) const {
    line.field("outer", p.outer).field("axis_len", p.in_axis).field("inner", p.inner)
        .field("begin", p.begin).field("size", p.size).field("dtype", p.dtype);
  }
  void operator()(const ConcatProblem& p) const {
    line.field("out", p.out_shape).field("a", p.a_shape).field("b", p.b_shape).field("axis", p.axis)
        .field("dtype", p.dtype);
  }
  void operator()(const MoeTopkProblem& p) const {
    line.field("tokens", p.tokens).field("experts", p.experts).field("k", p.k)
        .field("groups", p.groups).field("top_groups", p.top_groups);
  }
  void operator()(const MoeWeightsProblem& p) const {
    line.field("tokens", p.tokens).field("experts", p.experts).field("k", p.k).field("scale", p.scale);
  }
  void operator()(const MoePlanProblem& p) const {
    line.field("tokens", p.tokens).field("k", p.k).field("experts", p.experts).field("align", p.align)
        .field("rows", p.rows);
  }
  void operator()(const MoeGatherProblem& p) const {
    line.field("tokens", p.tokens).field("rows", p.rows).field("dim", p.dim).field("dtype", p.dtype);
  }
  void operator()(const GemmFp8GroupedProblem& p) const {
    line.field("m", p.m).field("n", p.n).field("k", p.k).field("groups", p.groups)
        .field("align", p.align).field("a", p.a_dtype).field("b", p.b_dtype)
        .field("sa", p.a_scale_dtype).field("sb", p.b_scale_dtype).field("out", p.out_dtype);
  }
  void operator()(const MoeCombineProblem& p) const {
    line.field("tokens", p.tokens).field("k", p.k).field("rows", p.rows).field("dim", p.dim)
        .field("dtype", p.dtype);
  }
};

}  // namespace

std::string_view op_name(const Problem& p) { return std::visit(Name{}, p); }

std::string describe(const KernelSpec& spec) {
  Line line(op_name(spec.problem));
  std::visit(Fields{line}, spec.problem);
  line.field("tiles", spec.tiles);
  return std::move(line).str();
}

}  // namespace anychip::kernels
