// Attribute values as .acir text: shared by the text format and the op table's defaults.
#pragma once

#include <optional>
#include <string_view>

#include "anychip/ir.hpp"

namespace anychip::ir::detail {

// Parses a whole attribute value of the given kind; nullopt if `text` is not one.
std::optional<AttrValue> parse_attr_value(AttrKind kind, std::string_view text);

std::string_view attr_kind_name(AttrKind kind);

}  // namespace anychip::ir::detail
