// The tile ISA: what one core executes.
//
// A kernel is a number of work items; a work item is a program, a list of instructions
// in program order. Each instruction runs on one of the core's four pipes (DMA in, matrix,
// vector, DMA out); every pipe executes its own instructions in order and the pipes run in
// parallel, synchronised only by flags: `signal f` adds one to the core's counter f, `wait
// f` blocks its pipe until f > 0 and then takes one. Double buffering is two buffers and
// two flags.
//
// Semantics are defined by program order: running the instructions one after another gives
// the result. A program is correct when its flags make every pipe-parallel schedule give
// the same result (the lowering's job). This lets the functional units execute programs
// sequentially, work items in parallel, while the timing engine runs the pipes in parallel.
//
// Memory spaces: Hbm (the device memory, shared by all cores, byte addresses), Spm (a
// core's scratchpad) and Acc (a core's fp32 accumulator buffer), each byte-addressed.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "anychip/dtype.hpp"
#include "anychip/rope.hpp"

namespace anychip::sim {

enum class Pipe : std::uint8_t { DmaIn, Matrix, Vector, DmaOut };
inline constexpr int kPipes = 4;
std::string_view pipe_name(Pipe p);  // "dma_in", "matrix", "vector", "dma_out"

enum class Space : std::uint8_t { Hbm, Spm, Acc };

struct Addr {
  Space space = Space::Spm;
  std::int64_t offset = 0;  // bytes
};

// rows x row_bytes bytes; row r starts at base + r * stride.
struct Region {
  Addr base;
  std::int64_t rows = 1;
  std::int64_t row_bytes = 0;
  std::int64_t stride = 0;
};

// Data-dependent addressing of a Load, as a DMA engine's gather mode: int32 indices read
// from Hbm move the source.
//   per_row false: one index, at Hbm byte address `at`; the whole source region starts
//     index * scale bytes further.
//   per_row true: row r's index is at `at + r * stride`; source row r starts at
//     base + r * src.stride + index_r * scale (src.stride 0: a pure gather of rows).
// A negative index zero-fills what it addresses (the whole destination, or row r): the
// padding of a grouped layout. An index >= bound is an error of the functional unit, which
// names the kernel and the instruction; nothing outside the hull of indices 0..bound-1 is
// ever read (validation checks that hull). scale 0 with per_row is a mask: rows whose
// index is negative become zeros, the others are loaded from their own address.
// `assumed` is the per-load index the timing engine uses when it has no data (a
// timing-only run); with data it reads the real one (docs/simulator.md).
struct LoadIndex {
  std::int64_t at = 0;
  bool per_row = false;
  std::int64_t stride = 4;
  std::int64_t scale = 0;
  std::int64_t bound = 1;
  std::int64_t assumed = 0;
};

// DMA in: Hbm region -> dense rows at dst (Spm or Acc); with `index`, a gather.
struct Load {
  Region src;
  Addr dst;
  std::optional<LoadIndex> index = std::nullopt;
};

// DMA out: dense rows at src (Spm or Acc) -> Hbm region.
struct Store {
  Addr src;
  Region dst;
};

// A block scale operand of an mma: `count` scales of dtype (f32 or ue8m0) at addr.
struct ScaleRef {
  Addr addr;
  DType dtype = DType::ue8m0;
};

// Matrix unit: acc[m x n] (+)= scale * (A[m x k] * B[n x k]^T), fp32 accumulation.
// A and B are dense row-major in Spm, of a_dtype / b_dtype (FP8, bf16, f16 or f32).
// With scales (native-UE8M0 chips only), row i of the product is multiplied by
// scale_a[i] * scale_b[0] before it is added: one 128-wide K block of a DeepSeek GEMM.
struct Mma {
  Addr a, b, acc;
  DType a_dtype = DType::f8e4m3, b_dtype = DType::f8e4m3;
  std::int64_t m = 0, n = 0, k = 0;
  bool accumulate = true;  // false: acc = product
  bool scaled = false;
  ScaleRef scale_a, scale_b;
};

// Vector unit operations. Each is a fixed sequence of primitive operations per element
// (vector_cost() gives the mix); rows x cols elements, dense row-major at each address.
enum class VecOp : std::uint8_t {
  Convert,          // dst[dtype_out] = src0[dtype_in]
  Add,              // dst = src0 + src1
  ScaleAccumulate,  // dst(f32) += src0(f32) * src1[row](scales, scale_dtype) * imm  (GEMM promotion)
  RowScale,         // dst(f32) = src0(f32) * src1[row] (f32)
  RowDivide,        // dst[dtype_out] = src0(f32) / src1[row] (f32)
  SiluMul,          // dst = silu(src0) * src1
  RmsNorm,          // dst = src0 / sqrt(mean_row(src0^2) + imm) * src1[col]
  Quantize,         // dst(fp8 dtype_out), aux(scales) = quantize_blocks(src0) with block_rows x block_cols
  Dequantize,       // dst = src0(fp8 dtype_in) * scale of its block_rows x block_cols block (src1)
  SoftmaxStep,      // online softmax: see SoftmaxParams
  // RoPE: rows of cols elements (dtype_in -> dtype_out); the last block_cols (even)
  // columns of each row are pairs (x0, x1) rotated by pos * rope_inv_freq(i, block_cols,
  // imm, rope) (anychip/rope.hpp), imm = theta, pos = src1[row / block_rows] (i32: block_rows rows share a position, the heads
  // of a token); the first cols - block_cols columns are copied. cos and sin are taken of
  // the angle evaluated in double and rounded to f32 (the SFU's range reduction is exact);
  // the rotation is computed in f32.
  Rope,
  // DeepSeek-V3 routing: src0 logits f32 rows x cols, src1 bias f32 [cols] -> dst i32
  // rows x moe.k: keys sigmoid(x) + bias in f32, moe.groups groups ranked by the sum of
  // their two largest keys (one key when a group has one expert), the moe.top_groups best
  // kept, then the k largest keys among their experts, best first; ties: lower index.
  TopK,
  // Routing weights: src0 logits f32 rows x moe.experts, src1 chosen i32 rows x cols ->
  // dst f32 rows x cols: s_j = sigmoid(logit of chosen j) in f32, w_j = s_j / sum_j s_j *
  // imm (summed in f32 in j order). A chosen expert outside 0..experts-1 is an error.
  MoeWeights,
  // The contiguous grouped layout (kernels/problems.hpp MoePlanProblem) by counting sort
  // of src0 = chosen i32 rows (tokens) x cols (k): writes rows moe.first_row ..
  // moe.first_row + moe.window - 1 of the plan as three i32 arrays of moe.window entries
  // at dst: expert, token, and the row of each (token, choice) s = first_row + i (-1 where
  // s >= tokens*k or the row is padding or beyond moe.plan_rows). Experts ascending, each
  // block at a multiple of moe.align, tokens in order. An expert outside 0..moe.experts-1
  // is an error.
  MoePlan,
};

// The parameters of TopK, MoeWeights and MoePlan.
struct MoeParams {
  std::int64_t k = 0, groups = 1, top_groups = 1;  // TopK
  std::int64_t experts = 0;                        // MoeWeights, MoePlan
  std::int64_t align = 1, first_row = 0, window = 0, plan_rows = 0;  // MoePlan
};

// The online-softmax step of flash attention on one score tile S (rows x cols, f32):
// with running max m and sum l per row (f32 vectors at `max` and `sum`), masked by the
// causal rule key > query + diag is -inf, it writes P = exp(S*scale - m_new) as dtype_out
// to dst, updates m and l, and writes alpha = exp(m_old - m_new) per row to `alpha`.
struct SoftmaxParams {
  Addr max, sum, alpha;
  double scale = 1;
  bool causal = false;
  std::int64_t first_query = 0, first_key = 0, diag = 0;  // key j visible iff j <= i + diag
};

struct Vec {
  VecOp op = VecOp::Convert;
  Addr dst, src0, src1;
  Addr aux;  // a second output (Quantize: the scales)
  std::int64_t rows = 0, cols = 0;
  std::int64_t block_rows = 1, block_cols = 128;  // Quantize / Dequantize; Rope: rows per position, rot
  DType dtype_in = DType::f32, dtype_out = DType::f32;
  DType scale_dtype = DType::f32;  // ScaleAccumulate / Quantize / Dequantize
  double imm = 0;  // eps (RmsNorm), extra factor (ScaleAccumulate), theta (Rope), scale (MoeWeights)
  SoftmaxParams softmax;           // SoftmaxStep only
  MoeParams moe;                   // TopK, MoeWeights, MoePlan
  RopeScaling rope = RopeScaling{};  // Rope: YaRN scaling of the frequencies (anychip/rope.hpp)
};

struct Signal {
  Pipe pipe;  // the pipe that signals, in its order
  int flag = 0;
};

struct Wait {
  Pipe pipe;  // the pipe that waits
  int flag = 0;
};

using Instr = std::variant<Load, Store, Mma, Vec, Signal, Wait>;

Pipe pipe_of(const Instr& instr);

struct Program {
  std::vector<Instr> instrs;
};

// A kernel for the simulator: `work_items` programs, built on demand (a large GEMM has
// thousands of work items; they are scheduled onto the cores in waves, a core taking the
// next item when its pipes have drained). `args` are the Hbm base addresses of the
// kernel's operands, in the order the lowering defines.
struct TileKernel {
  std::string name;
  std::int64_t work_items = 0;
  std::function<void(std::int64_t item, std::span<const std::int64_t> args, Program& out)> build;
};

// Readable text of one program (what `anychip emit --target sim:...` prints).
std::string to_text(const Program& program);
// One instruction on one line, its pipe first:
// "matrix  mma acc[0x0] += spm[0x0] x spm[0x4000]^T 128x128x128 e4m3".
std::string to_text(const Instr& instr);

// The primitive operations one element of a vector instruction costs, by primitive: the
// one table of vector costs (simulator/cost.cpp). An instruction of rows x cols elements
// takes issue_cycles + ceil(rows*cols / lanes) * sum(count * the chip's cycles for that
// primitive) cycles. Conversions from a narrow dtype_in or to a narrow dtype_out count.
struct VectorMix {
  double add = 0, mul = 0, fma = 0, max = 0, exp = 0, div = 0, convert = 0;
};
VectorMix vector_cost(const Vec& vec);

}  // namespace anychip::sim
