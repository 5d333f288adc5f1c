#include <algorithm>
#include <charconv>

#include "ir/attr_text.hpp"
#include "ir/type_rules.hpp"

namespace anychip::ir {
namespace {

bool valid_value_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.';
  });
}

}  // namespace

Graph::Graph(std::string name) : name_(std::move(name)) {}

const Value& Graph::value(ValueId v) const {
  if (v < 0 || static_cast<std::size_t>(v) >= values_.size())
    throw Error(ErrorCode::InvalidArgument,
                "graph @" + name_ + ": value id " + std::to_string(v) + " does not exist");
  return values_[static_cast<std::size_t>(v)];
}

std::optional<ValueId> Graph::find(std::string_view name) const {
  for (std::size_t i = 0; i < values_.size(); ++i)
    if (values_[i].name == name) return static_cast<ValueId>(i);
  return std::nullopt;
}

std::string Graph::label(const Node& node) const {
  return std::string(op_info(node.op).name) + " %" + value(node.output).name;
}

ValueId Graph::new_value(std::string name, TensorType type, std::int32_t producer) {
  values_.push_back(Value{std::move(name), std::move(type), producer});
  return static_cast<ValueId>(values_.size() - 1);
}

ValueId Graph::input(std::string name, TensorType type) {
  if (!valid_value_name(name))
    throw Error(ErrorCode::InvalidGraph,
                "input %" + name + ": a name is letters, digits, '_' and '.', and not empty");
  if (find(name))
    throw Error(ErrorCode::InvalidGraph, "input %" + name + ": the name is already used");
  verify_type(type, "input %" + name);
  ValueId v = new_value(std::move(name), std::move(type), -1);
  inputs_.push_back(v);
  return v;
}

ValueId Graph::add(OpKind op, std::vector<ValueId> inputs, NamedAttrs attrs, std::string name) {
  const OpInfo& info = op_info(op);
  if (name.empty()) {
    for (std::size_t i = values_.size();; ++i) {
      name = std::to_string(i);
      if (!find(name)) break;
    }
  } else if (!valid_value_name(name)) {
    throw Error(ErrorCode::InvalidGraph, std::string(info.name) + " %" + name +
                                             ": a name is letters, digits, '_' and '.'");
  } else if (find(name)) {
    throw Error(ErrorCode::InvalidGraph,
                std::string(info.name) + " %" + name + ": the name is already used");
  }
  detail::OpCheck check{std::string(info.name) + " %" + name, info, {}, {}};

  if (inputs.size() != info.operands.size()) {
    std::string names;
    for (auto o : info.operands) names += (names.empty() ? "" : ", ") + std::string(o);
    check.fail("takes " + std::to_string(info.operands.size()) + " operands (" + names + "), got " +
               std::to_string(inputs.size()));
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i] < 0 || static_cast<std::size_t>(inputs[i]) >= values_.size())
      check.fail_operand(i, "value id " + std::to_string(inputs[i]) + " does not exist");
    check.operands.push_back(&values_[static_cast<std::size_t>(inputs[i])].type);
  }

  check.attrs.resize(info.attrs.size());
  for (std::size_t i = 0; i < info.attrs.size(); ++i)
    if (!info.attrs[i].default_text.empty())
      check.attrs[i] = detail::parse_attr_value(info.attrs[i].kind, info.attrs[i].default_text);
  for (auto& [attr_name, value] : attrs) {
    auto it = std::find_if(info.attrs.begin(), info.attrs.end(),
                           [&](const AttrSpec& a) { return a.name == attr_name; });
    if (it == info.attrs.end()) {
      std::string known;
      for (const AttrSpec& a : info.attrs) known += (known.empty() ? "" : ", ") + std::string(a.name);
      check.fail("unknown attribute '" + attr_name + "' (attributes: " +
                 (known.empty() ? "none" : known) + ")");
    }
    if (value.index() != static_cast<std::size_t>(it->kind))
      check.fail("attribute '" + attr_name + "' must be " +
                 std::string(detail::attr_kind_name(it->kind)));
    check.attrs[static_cast<std::size_t>(it - info.attrs.begin())] = value;
  }

  TensorType out = detail::infer_type(check);
  Node node{op, std::move(inputs), {}, -1};
  for (std::size_t i = 0; i < check.attrs.size(); ++i) {
    if (!check.attrs[i]) check.fail("attribute '" + std::string(info.attrs[i].name) + "' is required");
    node.attrs.push_back(std::move(*check.attrs[i]));
  }
  node.output = new_value(std::move(name), std::move(out), static_cast<std::int32_t>(nodes_.size()));
  nodes_.push_back(std::move(node));
  return nodes_.back().output;
}

ValueId Graph::gemm_fp8(ValueId a, ValueId b, DType out_dtype, std::string name) {
  return add(OpKind::gemm_fp8, {a, b}, {{"out_dtype", out_dtype}}, std::move(name));
}
ValueId Graph::gemm(ValueId a, ValueId b, DType out_dtype, std::string name) {
  return add(OpKind::gemm, {a, b}, {{"out_dtype", out_dtype}}, std::move(name));
}
ValueId Graph::attention(ValueId q, ValueId k, ValueId v, bool causal, std::optional<double> scale,
                         std::string name) {
  NamedAttrs attrs{{"causal", causal}};
  if (scale) attrs.emplace_back("scale", *scale);
  return add(OpKind::attention, {q, k, v}, std::move(attrs), std::move(name));
}
ValueId Graph::quantize_fp8(ValueId x, BlockShape block, DType scale_dtype, DType dtype,
                            std::string name) {
  return add(OpKind::quantize_fp8, {x},
             {{"dtype", dtype}, {"block", block}, {"scale_dtype", scale_dtype}}, std::move(name));
}
ValueId Graph::dequantize(ValueId x, DType dtype, std::string name) {
  return add(OpKind::dequantize, {x}, {{"dtype", dtype}}, std::move(name));
}
ValueId Graph::rmsnorm(ValueId x, ValueId weight, double eps, std::string name) {
  return add(OpKind::rmsnorm, {x, weight}, {{"eps", eps}}, std::move(name));
}
ValueId Graph::silu_mul(ValueId x, std::string name) {
  return add(OpKind::silu_mul, {x}, {}, std::move(name));
}
ValueId Graph::add(ValueId a, ValueId b, std::string name) {
  return add(OpKind::add, {a, b}, {}, std::move(name));
}
ValueId Graph::reshape(ValueId x, Shape shape, std::string name) {
  return add(OpKind::reshape, {x}, {{"shape", std::move(shape)}}, std::move(name));
}
ValueId Graph::rope(ValueId x, ValueId pos, std::optional<std::int64_t> dims, double theta,
                    const RopeScaling& scaling, std::string name) {
  NamedAttrs attrs{{"theta", theta},
                   {"yarn_factor", scaling.factor},
                   {"yarn_original_len", scaling.original_len},
                   {"yarn_beta_fast", scaling.beta_fast},
                   {"yarn_beta_slow", scaling.beta_slow}};
  if (dims) attrs.emplace_back("dims", *dims);
  return add(OpKind::rope, {x, pos}, std::move(attrs), std::move(name));
}
ValueId Graph::slice(ValueId x, std::int64_t axis, std::int64_t begin, std::int64_t size,
                     std::string name) {
  return add(OpKind::slice, {x}, {{"axis", axis}, {"begin", begin}, {"size", size}}, std::move(name));
}
ValueId Graph::concat(ValueId a, ValueId b, std::int64_t axis, std::string name) {
  return add(OpKind::concat, {a, b}, {{"axis", axis}}, std::move(name));
}
ValueId Graph::moe_topk(ValueId logits, ValueId bias, std::int64_t k, std::int64_t groups,
                        std::int64_t top_groups, std::string name) {
  return add(OpKind::moe_topk, {logits, bias},
             {{"k", k}, {"groups", groups}, {"top_groups", top_groups}}, std::move(name));
}
ValueId Graph::moe_weights(ValueId logits, ValueId experts, double scale, std::string name) {
  return add(OpKind::moe_weights, {logits, experts}, {{"scale", scale}}, std::move(name));
}
ValueId Graph::moe_plan(ValueId experts, std::int64_t num_experts, std::int64_t align,
                        std::string name) {
  return add(OpKind::moe_plan, {experts}, {{"num_experts", num_experts}, {"align", align}},
             std::move(name));
}
ValueId Graph::moe_gather(ValueId x, ValueId plan, std::string name) {
  return add(OpKind::moe_gather, {x, plan}, {}, std::move(name));
}
ValueId Graph::gemm_fp8_grouped(ValueId a, ValueId b, ValueId group, std::int64_t groups,
                                DType out_dtype, std::int64_t align, std::string name) {
  return add(OpKind::gemm_fp8_grouped, {a, b, group},
             {{"groups", groups}, {"out_dtype", out_dtype}, {"align", align}}, std::move(name));
}
ValueId Graph::moe_combine(ValueId y, ValueId plan, ValueId weights, std::string name) {
  return add(OpKind::moe_combine, {y, plan, weights}, {}, std::move(name));
}

void Graph::output(ValueId v) {
  value(v);  // throws for an id that does not exist
  outputs_.push_back(v);
}

}  // namespace anychip::ir
