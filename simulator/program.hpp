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
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "anychip/dtype.hpp"

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

// DMA in: Hbm region -> dense rows at dst (Spm or Acc).
struct Load {
  Region src;
  Addr dst;
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
  std::int64_t block_rows = 1, block_cols = 128;  // Quantize / Dequantize
  DType dtype_in = DType::f32, dtype_out = DType::f32;
  DType scale_dtype = DType::f32;  // ScaleAccumulate / Quantize / Dequantize
  double imm = 0;                  // eps (RmsNorm), extra factor (ScaleAccumulate)
  SoftmaxParams softmax;           // SoftmaxStep only
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
