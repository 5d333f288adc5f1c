// Simulator kernels: every op of kernels/problems.hpp lowered to tile programs for a
// modelled chip (simulator/program.hpp), and the tile chooser that sizes them.
//
// Kernel arguments. A TileKernel's `args` are Hbm byte addresses, in this order:
//   1. each input operand in the op's operand order: its data, then its scales if it is
//      block-scaled;
//   2. the output: its data, then its scales (quantize_fp8 only);
//   3. the constants block: the bytes of constants(), which the backend keeps in device
//      memory (zeros, -inf, identity matrices, FP8 ones: the ISA has no fill, transpose or
//      UE8M0 conversion instruction, so kernels load these);
//   4. the workspace: workspace_bytes(spec, chip) bytes of device scratch (0 for most
//      kernels; then any address).
// So gemm_fp8 takes [A, A scales, B, B scales, D, constants, workspace], attention
// [Q, K, V, O, constants, workspace], quantize_fp8 [x, q, q scales, constants, workspace],
// gemm_fp8_grouped [A, A scales, B, B scales, group, D, constants, workspace].
//
// A kernel may have several phases (split-KV attention: partial results, then their
// combination); the backend runs phase 0, 1, ... one after another with the same args.
//
// Tile configurations (TileConfig, per op; stages, 2 to 4, is the number of buffers each
// streamed operand gets: enough stages cover the HBM latency):
//   gemm_fp8    m x n output tile, k = 128 (one scale block per step)
//   gemm        m x n output tile, k = K step
//   attention   m = query positions per work item, n = keys per KV tile, k = query heads per
//               work item (a divisor of heads_q / heads_kv: a work item shares its KV tiles
//               among the heads of one KV group)
//   rmsnorm     m = rows per step (whole rows), n = dim
//   silu_mul    m x n = rows x output columns per step
//   add         m = 1, n = elements per step
//   quantize_fp8, dequantize   m x n = rows x columns per step, multiples of the block
//   gemm_fp8_grouped  as gemm_fp8, with m dividing align (a tile never mixes groups)
//   rope        m tokens x n heads per step
//   slice, concat   m rows x n bytes per step of one box (a pure copy)
//   moe_topk, moe_weights   m tokens per step
//   moe_plan    m = plan rows per work item (every item sorts all tokens*k choices)
//   moe_gather  m plan rows x n columns per step;  moe_combine  m tokens x n columns
// Work items of the streaming ops (rmsnorm, silu_mul, add, quantize_fp8, dequantize, rope,
// slice, concat, moe_topk, moe_weights, moe_gather, moe_combine) each take a contiguous run
// of steps, as many items as the chip has cores.
//
// Every program obeys the rule of simulator/program.hpp (check_program in
// program_check.hpp verifies it): one signal -> wait pair per buffer and direction, and a
// buffer is overwritten only after the pipe that reads it has signalled it free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/kernel_spec.hpp"
#include "simulator/chip.hpp"
#include "simulator/program.hpp"

namespace anychip::kernels::sim {

using ::anychip::sim::ChipDesc;
using ::anychip::sim::Program;
using ::anychip::sim::TileKernel;

// The constants block (argument 3). Layout, in bytes:
inline constexpr std::int64_t kConstZeros = 0;              // 16 KiB of zero bytes
inline constexpr std::int64_t kConstNegInf = 16 * 1024;     // 4096 f32 -inf
inline constexpr std::int64_t kConstIdentityF32 = 32 * 1024;   // 128 x 128 f32 identity
inline constexpr std::int64_t kConstIdentityBf16 = 96 * 1024;  // 128 x 128 bf16 identity
inline constexpr std::int64_t kConstIdentityF16 = 128 * 1024;  // 128 x 128 f16 identity
inline constexpr std::int64_t kConstOnesE4m3 = 160 * 1024;     // 4096 e4m3 ones (0x38)
inline constexpr std::int64_t kConstBytes = 164 * 1024;
inline constexpr std::int64_t kConstOnesBytes = 4096;
inline constexpr std::int64_t kConstVectorBytes = 16 * 1024;  // zeros / -inf run this long
inline constexpr std::int64_t kConstIdentitySize = 128;
std::span<const std::byte> constants();

// Number of Hbm arguments of the op's kernels (operands, constants, workspace), and their
// names in order ("a", "a scales", "b", "b scales", "d", "constants", "workspace").
std::size_t arg_count(const Problem& problem);
std::vector<std::string> arg_names(const Problem& problem);

// The tiles for `problem` on `chip`: the configuration with the fewest estimated cycles
// among those whose buffers (double-buffered operands counted twice) fit the chip's
// scratchpad and accumulator. Falls back to the smallest tiles when none fits (then
// unsupported() says why).
TileConfig choose_tiles(const Problem& problem, const ChipDesc& chip);

// Why `spec` cannot run on `chip` ("" if it can): an unsupported dtype, a shape rule
// (gemm_fp8's K % 128), or tiles whose buffers do not fit.
std::string unsupported(const KernelSpec& spec, const ChipDesc& chip);

// Bytes of scratchpad and accumulator a work item of `spec` uses.
struct Footprint {
  std::int64_t scratchpad_bytes = 0;
  std::int64_t accumulator_bytes = 0;
};
Footprint footprint(const KernelSpec& spec, const ChipDesc& chip);

// Phases of the kernel (1 except split-KV attention) and the device scratch they share.
int phase_count(const KernelSpec& spec, const ChipDesc& chip);
std::int64_t workspace_bytes(const KernelSpec& spec, const ChipDesc& chip);

// The kernel (phase `phase`) of `spec` on `chip`. Deterministic: the same spec and chip
// give the same programs. Throws anychip::Error(Unsupported) when unsupported() is not "".
TileKernel lower(const KernelSpec& spec, const ChipDesc& chip, int phase = 0);

}  // namespace anychip::kernels::sim
