// The chip presets compiled into the library (generated from simulator/presets/*.json).
#pragma once

#include <span>
#include <string_view>

namespace anychip::sim::detail {

struct Preset {
  std::string_view name;  // the file name without .json
  std::string_view json;
};

std::span<const Preset> embedded_presets();

}  // namespace anychip::sim::detail
