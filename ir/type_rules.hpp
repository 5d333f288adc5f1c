// The type rule of every op: checks operands and attributes, resolves op-dependent
// defaults, and returns the result type. Internal to ir/.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "anychip/ir.hpp"

namespace anychip::ir::detail {

// What one type rule sees, and how it reports a broken rule.
struct OpCheck {
  std::string label;  // "gemm_fp8 %q"
  const OpInfo& info;
  std::vector<const TensorType*> operands;
  std::vector<std::optional<AttrValue>> attrs;  // in op_info order; empty = not given

  [[noreturn]] void fail(const std::string& rule) const;
  [[noreturn]] void fail_operand(std::size_t i, const std::string& rule) const;

  const TensorType& operand(std::size_t i) const { return *operands[i]; }
  template <typename T>
  T& attr(std::string_view name) {
    auto& slot = attrs[attr_index(info.kind, name)];
    if (!slot) fail("attribute '" + std::string(name) + "' is required");
    return std::get<T>(*slot);
  }
  bool has_attr(std::string_view name) const { return attrs[attr_index(info.kind, name)].has_value(); }
};

// Runs the op's rule. Throws Error(InvalidGraph) naming the op, operand and rule.
TensorType infer_type(OpCheck& check);

}  // namespace anychip::ir::detail
