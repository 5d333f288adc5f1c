// A text file compiled into the library (chip presets, kernel sources).
#pragma once

#include <span>
#include <string_view>

namespace anychip {

struct EmbeddedFile {
  std::string_view name;  // file name, e.g. "gemm_fp8.cl"
  std::string_view text;
};

}  // namespace anychip
