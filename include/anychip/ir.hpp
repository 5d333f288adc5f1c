// The tensor IR: a graph of ops over typed tensor values.
//
// Build a graph with ir::Graph (C++), or parse it from .acir text. Every op is verified
// the moment it is added: a broken rule throws anychip::Error(InvalidGraph) whose message
// names the op, its result and the operand, e.g.
//   "gemm_fp8 %q: operand b: K=512 differs from operand a's K=1024".
// The op set (operands, attributes, defaults) is declared once, in anychip/ops.def.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "anychip/dtype.hpp"
#include "anychip/error.hpp"
#include "anychip/quantize.hpp"
#include "anychip/rope.hpp"
#include "anychip/tensor.hpp"

namespace anychip::ir {

enum class OpKind : std::uint8_t {
#define ANYCHIP_OP(name, ...) name,
#include "anychip/ops.def"
#undef ANYCHIP_OP
};

enum class OpCategory : std::uint8_t { Kernel, View };

enum class AttrKind : std::uint8_t { Int, Float, Bool, Dtype, Block, Shape };

// One attribute value; the alternative's index is its AttrKind.
using AttrValue = std::variant<std::int64_t, double, bool, DType, BlockShape, Shape>;

struct AttrSpec {
  std::string_view name;
  AttrKind kind;
  std::string_view default_text;  // as written in .acir; empty: required or op-resolved
};

struct OpInfo {
  OpKind kind;
  std::string_view name;
  OpCategory category;
  std::vector<std::string_view> operands;
  std::vector<AttrSpec> attrs;
  std::string_view summary;
};

// The op table (anychip/ops.def), indexed by OpKind.
std::span<const OpInfo> all_ops();
const OpInfo& op_info(OpKind kind);
std::optional<OpKind> op_from_name(std::string_view name);

using ValueId = std::int32_t;

struct Value {
  std::string name;  // without the '%'
  TensorType type;
  std::int32_t producer = -1;  // index of the node that computes it; -1 for a graph input
};

struct Node {
  OpKind op;
  std::vector<ValueId> inputs;
  std::vector<AttrValue> attrs;  // one per op_info(op).attrs, defaults resolved
  ValueId output;

  // The attribute `name` of this node's op, as T (throws Internal on a wrong name or kind).
  template <typename T>
  const T& attr(std::string_view name) const;
};

using NamedAttrs = std::vector<std::pair<std::string, AttrValue>>;

class Graph {
 public:
  explicit Graph(std::string name = "main");

  const std::string& name() const { return name_; }

  // Declares a graph input. Throws InvalidGraph for a bad type or a name already used.
  ValueId input(std::string name, TensorType type);

  // Appends an op. `attrs` override the op's defaults by name; `name` names the result
  // ("" picks the next free number). Verifies at once and throws InvalidGraph on a
  // broken rule, leaving the graph unchanged.
  ValueId add(OpKind op, std::vector<ValueId> inputs, NamedAttrs attrs = {},
              std::string name = "");

  // Typed shorthands for add().
  ValueId gemm_fp8(ValueId a, ValueId b, DType out_dtype = DType::bf16, std::string name = "");
  ValueId gemm(ValueId a, ValueId b, DType out_dtype = DType::f32, std::string name = "");
  ValueId attention(ValueId q, ValueId k, ValueId v, bool causal = false,
                    std::optional<double> scale = std::nullopt, std::string name = "");
  ValueId quantize_fp8(ValueId x, BlockShape block = kActivationBlock,
                       DType scale_dtype = DType::ue8m0, DType dtype = DType::f8e4m3,
                       std::string name = "");
  ValueId dequantize(ValueId x, DType dtype = DType::f32, std::string name = "");
  ValueId rmsnorm(ValueId x, ValueId weight, double eps = 1e-6, std::string name = "");
  ValueId silu_mul(ValueId x, std::string name = "");
  ValueId add(ValueId a, ValueId b, std::string name = "");
  ValueId reshape(ValueId x, Shape shape, std::string name = "");
  ValueId rope(ValueId x, ValueId pos, std::optional<std::int64_t> dims = std::nullopt,
               double theta = 10000, const RopeScaling& scaling = {}, std::string name = "");
  ValueId slice(ValueId x, std::int64_t axis, std::int64_t begin, std::int64_t size,
                std::string name = "");
  ValueId concat(ValueId a, ValueId b, std::int64_t axis, std::string name = "");
  ValueId moe_topk(ValueId logits, ValueId bias, std::int64_t k, std::int64_t groups = 1,
                   std::int64_t top_groups = 1, std::string name = "");
  ValueId moe_weights(ValueId logits, ValueId experts, double scale = 1, std::string name = "");
  ValueId moe_plan(ValueId experts, std::int64_t num_experts, std::int64_t align = 128,
                   std::string name = "");
  ValueId moe_gather(ValueId x, ValueId plan, std::string name = "");
  ValueId gemm_fp8_grouped(ValueId a, ValueId b, ValueId group, std::int64_t groups,
                           DType out_dtype = DType::bf16, std::int64_t align = 128,
                           std::string name = "");
  ValueId moe_combine(ValueId y, ValueId plan, ValueId weights, std::string name = "");

  // Marks a value as a graph output (in call order).
  void output(ValueId v);

  const std::vector<Value>& values() const { return values_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<ValueId>& inputs() const { return inputs_; }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  const Value& value(ValueId v) const;
  std::optional<ValueId> find(std::string_view name) const;

  // "gemm_fp8 %q": how errors and reports name a node.
  std::string label(const Node& node) const;

 private:
  ValueId new_value(std::string name, TensorType type, std::int32_t producer);

  std::string name_;
  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<ValueId> inputs_;
  std::vector<ValueId> outputs_;
};

// The rows of a moe_plan: every (token, choice), plus up to align - 1 padding rows for
// each expert that can be chosen, rounded up to align.
constexpr std::int64_t moe_plan_rows(std::int64_t tokens, std::int64_t k, std::int64_t experts,
                                     std::int64_t align) {
  const std::int64_t choices = tokens * k;
  const std::int64_t used = experts < choices ? experts : choices;
  const std::int64_t rows = choices + used * (align - 1);
  return (rows + align - 1) / align * align;
}

// Checks the rules that concern the whole graph (it has an output, ...); op rules are
// checked by Graph::add. Throws InvalidGraph.
void verify(const Graph& graph);

// Checks a tensor type on its own (positive dims; a scale layout only on FP8, with a
// positive block and an f32 or ue8m0 scale dtype). `what` names it in the message.
void verify_type(const TensorType& type, std::string_view what);

// The .acir text format. print() is canonical: parse(print(g)) gives an equal graph, and
// print(parse(t)) == t for canonical t. parse() reports syntax errors as
// "FILE:LINE:COLUMN: message" (ParseError) and rule breaks as
// "FILE:LINE:COLUMN: gemm_fp8 %q: ..." (InvalidGraph).
std::string print(const Graph& graph);
Graph parse(std::string_view text, std::string_view filename = "<input>");
Graph parse_file(const std::string& path);

// Attribute values in .acir spelling ("1e-06", "1x128", "[1, 64]", "bf16", "true").
std::string attr_text(const AttrValue& value);

// ----- implementation details of Node::attr -----
std::size_t attr_index(OpKind op, std::string_view name);

template <typename T>
const T& Node::attr(std::string_view name) const {
  const AttrValue& v = attrs.at(attr_index(op, name));
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw Error(ErrorCode::Internal, "attribute '" + std::string(name) + "' has another kind");
}

}  // namespace anychip::ir
