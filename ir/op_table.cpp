// The op table, expanded from anychip/ops.def.
#include <array>

#include "anychip/ir.hpp"

namespace anychip::ir {
namespace {

#define OPERANDS(...) {__VA_ARGS__}
#define ATTRS(...) {__VA_ARGS__}
#define ATTR(name, kind, default_text) AttrSpec{#name, AttrKind::kind, default_text}
#define ANYCHIP_OP(name, category, operands, attrs, summary) \
  OpInfo{OpKind::name, #name, OpCategory::category, operands, attrs, summary},

const std::vector<OpInfo>& table() {
  static const std::vector<OpInfo> ops = {
#include "anychip/ops.def"
  };
  return ops;
}

#undef ANYCHIP_OP
#undef ATTR
#undef ATTRS
#undef OPERANDS

}  // namespace

std::span<const OpInfo> all_ops() { return table(); }

const OpInfo& op_info(OpKind kind) { return table()[static_cast<std::size_t>(kind)]; }

std::optional<OpKind> op_from_name(std::string_view name) {
  for (const OpInfo& op : table())
    if (op.name == name) return op.kind;
  return std::nullopt;
}

std::size_t attr_index(OpKind op, std::string_view name) {
  const OpInfo& info = op_info(op);
  for (std::size_t i = 0; i < info.attrs.size(); ++i)
    if (info.attrs[i].name == name) return i;
  throw Error(ErrorCode::Internal,
              std::string(info.name) + " has no attribute '" + std::string(name) + "'");
}

}  // namespace anychip::ir
