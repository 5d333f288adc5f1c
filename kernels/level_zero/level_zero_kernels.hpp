// The kernels of the Level Zero backend: SPIR-V modules compiled at BUILD time
// (cmake/spirv.cmake) from the same OpenCL C sources as the OpenCL backend
// (kernels/opencl/*.cl), one module per variant of spirv_variants.def, and the code that
// maps a KernelSpec onto them. Nothing here talks to a driver; backends/level_zero does.
//
// A variant fixes what the OpenCL backend would #define at run time except the shapes:
// dtypes, tiles, head dimensions (attention's __local arrays are sized by them) and the
// values derived from the tiles for a GPU (many narrow work-items per work-group). The
// shapes (M, N, K, SQ, ...) are kernel arguments, after the buffers (AC_SHAPE_ARGS in
// kernels/opencl/common.cl). A spec runs on a variant when the OpenCL renderer, given the
// spec and a GPU target, derives exactly the variant's #defines: one source of truth for
// the derivation, and the tests check every variant against it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/kernel_spec.hpp"
#include "kernels/opencl/opencl_kernels.hpp"

namespace anychip::kernels::level_zero {

// One SPIR-V module built at build time: spirv/<name>.spv.
struct Variant {
  std::string_view name;     // "gemm_fp8_e4m3_e4m3_ue8m0_bf16_t64x64x32"
  std::string_view file;     // the op's OpenCL C file ("gemm.cl"), compiled after common.cl
  TileConfig tiles;          // the KernelSpec tiles it implements
  std::string_view defines;  // "GEMM_FP8=1 A_FP8=f8e4m3 ...": everything but the shapes
};

// Every variant, in the order choose_tiles() prefers them (spirv_variants.def).
std::span<const Variant> variants();

// The device limits the kernels need: the OpenCL kernels' Target, always with narrow
// work-items (the variants are built for GPUs).
using Target = kernels::opencl::Target;

// The tiles for `problem`: the first variant (in table order) that implements the
// problem and fits the device. When none does, the OpenCL choice for a GPU, which
// check() then refuses with the reason.
TileConfig choose_tiles(const Problem& problem, const Target& target);

// The variant that is the compiled form of `spec`, or nullptr with the reason in `why`
// ("no SPIR-V variant for attention with head_dim 32, head_dim_v 48 (built: ...)").
const Variant* find_variant(const KernelSpec& spec, const Target& target, std::string* why);

// "" when `spec` can run on `target`, else why not: dtypes, device limits (work-group
// size, local memory), 32-bit shape arguments, and a variant that implements it.
std::string check(const KernelSpec& spec, const Target& target);

// The OpenCL C that spec's module was compiled from (#defines, then common.cl and the
// op's file), with a header naming the variant and the shape arguments' values.
std::string render(const KernelSpec& spec, const Target& target);

// The spirv_variants.def line that would build `spec`'s kernel (for the tests' messages
// and for whoever adds a variant).
std::string variant_line(const KernelSpec& spec, const Target& target);

// The __kernel's name in the module built from `variant` ("gemm", "add", ...).
std::string kernel_name(const Variant& variant);

// One scalar argument after the buffers.
struct ShapeArg {
  enum class Type { i32, u64, f32 };
  std::string_view name;  // as the kernel names the parameter ("M", "SCORE_SCALE")
  Type type = Type::i32;
  std::int64_t i = 0;  // i32 and u64
  float f = 0;         // f32
  std::size_t size() const { return type == Type::u64 ? 8 : 4; }
};

// How one kernel is launched on Level Zero.
struct Launch {
  std::string kernel;                     // the __kernel's name
  std::uint32_t group_size[3] = {1, 1, 1};   // work-items per group (the reqd_work_group_size)
  std::uint32_t group_count[3] = {1, 1, 1};  // groups in each dimension; any 0: nothing to run
  std::vector<bool> scaled_inputs;        // per input: whether its scales are passed
  bool scaled_output = false;
  std::vector<ShapeArg> shape_args;       // after the buffer arguments, in order
};

// Arguments: per input its data pointer and byte offset (ulong), then its scales pointer
// and offset when scaled; the output's likewise; then shape_args.
Launch launch(const KernelSpec& spec, const Target& target);

// The shape arguments of spec's kernel, in order, with their values.
std::vector<ShapeArg> shape_args(const Problem& problem);

}  // namespace anychip::kernels::level_zero
