#include "kernels/lowering.hpp"

namespace anychip::kernels {
namespace {

std::int64_t rows_of(const Shape& s) {
  std::int64_t r = 1;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) r *= s[i];
  return r;
}

}  // namespace

std::optional<Problem> lower(const ir::Graph& g, const ir::Node& node) {
  auto in = [&](std::size_t i) -> const TensorType& { return g.value(node.inputs[i]).type; };
  const TensorType& out = g.value(node.output).type;
  switch (node.op) {
    case ir::OpKind::gemm_fp8:
      return GemmFp8Problem{in(0).shape[0], in(1).shape[0], in(0).shape[1],
                            in(0).dtype,    in(1).dtype,    in(0).scale->dtype,
                            in(1).scale->dtype, out.dtype};
    case ir::OpKind::gemm:
      return GemmProblem{in(0).shape[0], in(1).shape[0], in(0).shape[1], in(0).dtype, out.dtype};
    case ir::OpKind::attention: {
      const Shape &q = in(0).shape, &k = in(1).shape, &v = in(2).shape;
      return AttentionProblem{q[0], q[1], k[1], q[2], k[2], q[3], v[3],
                              node.attr<bool>("causal"), node.attr<double>("scale"), in(0).dtype};
    }
    case ir::OpKind::quantize_fp8:
      return QuantizeProblem{in(0).shape[0], in(0).shape[1], in(0).dtype, out.dtype,
                             out.scale->block, out.scale->dtype};
    case ir::OpKind::dequantize:
      return DequantizeProblem{in(0).shape[0], in(0).shape[1], in(0).dtype, in(0).scale->block,
                               in(0).scale->dtype, out.dtype};
    case ir::OpKind::rmsnorm:
      return RmsNormProblem{rows_of(in(0).shape), in(0).shape.back(), node.attr<double>("eps"),
                            in(0).dtype, in(1).dtype};
    case ir::OpKind::silu_mul:
      return SiluMulProblem{rows_of(in(0).shape), out.shape.back(), in(0).dtype};
    case ir::OpKind::add:
      return AddProblem{in(0).numel(), in(0).dtype};
    case ir::OpKind::rope: {
      const Shape& x = in(0).shape;
      const RopeScaling scaling{node.attr<double>("yarn_factor"), node.attr<std::int64_t>("yarn_original_len"),
                                node.attr<double>("yarn_beta_fast"), node.attr<double>("yarn_beta_slow")};
      return RopeProblem{x[0], x[1], x[2], node.attr<std::int64_t>("dims"), node.attr<double>("theta"),
                         in(0).dtype, scaling};
    }
    case ir::OpKind::slice: {
      const Shape& x = in(0).shape;
      const auto axis = static_cast<std::size_t>(node.attr<std::int64_t>("axis"));
      SliceProblem p{1, x[axis], 1, node.attr<std::int64_t>("begin"),
                     node.attr<std::int64_t>("size"), in(0).dtype};
      for (std::size_t d = 0; d < axis; ++d) p.outer *= x[d];
      for (std::size_t d = axis + 1; d < x.size(); ++d) p.inner *= x[d];
      return p;
    }
    case ir::OpKind::concat:
      return ConcatProblem{out.shape, in(0).shape, in(1).shape, node.attr<std::int64_t>("axis"),
                           in(0).dtype};
    case ir::OpKind::moe_topk:
      return MoeTopkProblem{in(0).shape[0], in(0).shape[1], node.attr<std::int64_t>("k"),
                            node.attr<std::int64_t>("groups"), node.attr<std::int64_t>("top_groups")};
    case ir::OpKind::moe_weights:
      return MoeWeightsProblem{in(0).shape[0], in(0).shape[1], in(1).shape[1],
                               node.attr<double>("scale")};
    case ir::OpKind::moe_plan:
      return MoePlanProblem{in(0).shape[0], in(0).shape[1], node.attr<std::int64_t>("num_experts"),
                            node.attr<std::int64_t>("align"), out.shape[1]};
    case ir::OpKind::moe_gather:
      return MoeGatherProblem{in(0).shape[0], out.shape[0], in(0).shape[1], in(0).dtype};
    case ir::OpKind::gemm_fp8_grouped: {
      const std::int64_t groups = node.attr<std::int64_t>("groups");
      return GemmFp8GroupedProblem{in(0).shape[0],      out.shape[1],       in(0).shape[1],
                                   groups,              node.attr<std::int64_t>("align"),
                                   in(0).dtype,         in(1).dtype,        in(0).scale->dtype,
                                   in(1).scale->dtype,  out.dtype};
    }
    case ir::OpKind::moe_combine:
      return MoeCombineProblem{in(2).shape[0], in(2).shape[1], in(0).shape[0], in(0).shape[1],
                               in(0).dtype};
    case ir::OpKind::reshape:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace anychip::kernels
