// The SPIR-V modules built at build time (cmake/spirv.cmake: one per variant of
// kernels/level_zero/spirv_variants.def) and embedded into the library.
#pragma once

#include <span>
#include <string_view>

namespace anychip::backends::level_zero {

struct SpirvModule {
  std::string_view name;                // the variant's name
  std::span<const unsigned char> bytes;  // the module, SPIR-V words in host byte order
};

// Every embedded module; empty when the library was built without them.
std::span<const SpirvModule> spirv_modules();

// The module built for the variant `name`, or nullptr.
const SpirvModule* find_spirv_module(std::string_view name);

// Which tools built the modules ("clang 14.0.6, llvm-spirv-14, SPIR-V 1.2"), or, when there
// are none, why ("built without SPIR-V kernels: no clang and llvm-spirv of one LLVM version").
std::string_view spirv_build_info();

}  // namespace anychip::backends::level_zero
