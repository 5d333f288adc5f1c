#include <string>

#include "anychip/error.hpp"
#include "anychip/reference.hpp"
#include "kernels/lowering.hpp"
#include "kernels/reference/reference.hpp"

namespace anychip {
namespace {

void expect_type(const HostTensor& t, const ir::Value& v, const std::string& what) {
  if (t.type != v.type)
    throw Error(ErrorCode::InvalidArgument, "evaluate_reference: " + what + " %" + v.name + " is " +
                                                t.type.str() + ", the graph declares " +
                                                v.type.str());
  if (t.data.size() != t.type.data_bytes() || t.scales.size() != t.type.scale_bytes())
    throw Error(ErrorCode::InvalidArgument,
                "evaluate_reference: " + what + " %" + v.name +
                    " holds a byte count that does not match its type " + t.type.str());
}

}  // namespace

std::vector<HostTensor> evaluate_reference(const ir::Graph& graph,
                                           std::span<const HostTensor> inputs,
                                           const ReferenceOptions& options) {
  ir::verify(graph);
  if (inputs.size() != graph.inputs().size())
    throw Error(ErrorCode::InvalidArgument, "evaluate_reference: graph @" + graph.name() +
                                                " takes " + std::to_string(graph.inputs().size()) +
                                                " inputs, " + std::to_string(inputs.size()) +
                                                " given");
  std::vector<HostTensor> values(graph.values().size());
  std::vector<bool> known(graph.values().size(), false);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const ir::ValueId v = graph.inputs()[i];
    expect_type(inputs[i], graph.value(v), "input");
    values[static_cast<std::size_t>(v)] = inputs[i];
    known[static_cast<std::size_t>(v)] = true;
  }
  for (const auto& [v, tensor] : options.given) {
    if (v < 0 || static_cast<std::size_t>(v) >= values.size())
      throw Error(ErrorCode::InvalidArgument, "evaluate_reference: given value id " +
                                                  std::to_string(v) + " is not a value of graph @" +
                                                  graph.name());
    if (graph.value(v).producer < 0)
      throw Error(ErrorCode::InvalidArgument,
                  "evaluate_reference: %" + graph.value(v).name +
                      " is a graph input; pass it as an input, not as given");
    expect_type(tensor, graph.value(v), "given value");
  }

  for (const ir::Node& node : graph.nodes()) {
    const auto out = static_cast<std::size_t>(node.output);
    const TensorType& type = graph.value(node.output).type;
    if (auto it = options.given.find(node.output); it != options.given.end()) {
      values[out] = it->second;
      known[out] = true;
      continue;
    }
    for (ir::ValueId v : node.inputs)
      if (!known[static_cast<std::size_t>(v)])
        throw Error(ErrorCode::Internal, graph.label(node) + ": operand %" + graph.value(v).name +
                                             " is used before it is computed");
    std::optional<kernels::Problem> problem = kernels::lower(graph, node);
    if (!problem) {
      // A view: the same bytes under a new type.
      HostTensor view = values[static_cast<std::size_t>(node.inputs[0])];
      view.type = type;
      values[out] = std::move(view);
    } else if (node.op == ir::OpKind::quantize_fp8) {
      // The recipe applied to the stored input is the stored result; recomputing it from
      // the dequantized reference value could pick another (equivalent) power-of-two scale.
      const std::vector<double> x = values[static_cast<std::size_t>(node.inputs[0])].values();
      values[out] = HostTensor::encode(type, x);
    } else {
      std::vector<kernels::ConstOperand> operands;
      for (ir::ValueId v : node.inputs) {
        const HostTensor& h = values[static_cast<std::size_t>(v)];
        operands.push_back({h.data.data(), h.scales.empty() ? nullptr : h.scales.data()});
      }
      std::vector<double> exact(static_cast<std::size_t>(type.numel()));
      try {
        kernels::reference::run(*problem, operands, exact.data());
      } catch (const Error& e) {
        throw Error(e.code(), graph.label(node) + ": " + e.what());
      }
      values[out] = HostTensor::encode(type, exact);
    }
    known[out] = true;
  }
  return values;
}

}  // namespace anychip
