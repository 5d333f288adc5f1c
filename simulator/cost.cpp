// Instruction costs from the chip description: the matrix unit's padded FLOPs, the vector
// unit's primitive-operation table, the DMA engine's issue cost and rate.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "simulator/engine.hpp"
#include "simulator/program_impl.hpp"

namespace anychip::sim {
namespace {

bool narrow(DType d) { return d != DType::f32; }

std::int64_t round_up(std::int64_t v, std::int64_t to) { return (v + to - 1) / to * to; }

}  // namespace

// The one table of vector costs: primitive operations per element, by op.
//   Convert          1 convert
//   Add              1 add
//   ScaleAccumulate  1 fma                      (the per-row scale product is per row, not per element)
//   RowScale         1 mul
//   RowDivide        1 div
//   SiluMul          1 exp, 1 add, 1 div, 1 mul (x / (1 + exp(-x)) * y)
//   RmsNorm          1 fma, 2 mul               (sum of squares; x * rstd * w)
//   Quantize         1 max, 1 mul, 1 convert    (amax; x / s; to FP8)
//   Dequantize       1 convert, 1 mul
//   SoftmaxStep      1 max, 1 fma, 1 exp, 1 add (row max; s*scale - m; exp; row sum)
//   Rope             r/h exp, r mul, r fma      (r = block_cols / cols, the rotated share; sin and
//                                               cos once per position and pair, shared by the h =
//                                               block_rows rows of the position, at the SFU's exp
//                                               rate; x0*c - x1*s as a mul and an fma)
//   TopK             1 exp, 2 add, 1 div,       (sigmoid; + bias; a group's two largest keys;
//                    2 + k*top/groups max        k passes of arg-max over the kept groups'
//                                                experts; per element of logits)
//   MoeWeights       1 exp, 2 add, 2 div, 1 mul (sigmoid; sum; normalise; scale; per chosen
//                                               expert, rows x k elements)
//   MoePlan          4 add                      (counting sort per (token, choice): histogram,
//                                               prefix, rank, placement)
// plus one convert when an element operand read as dtype_in is narrow (not f32) and one
// when the result written as dtype_out is narrow, where the op does not already count it.
VectorMix vector_cost(const Vec& v) {
  VectorMix m;
  switch (v.op) {
    case VecOp::Convert:
      m.convert = 1;
      return m;
    case VecOp::Add:
      m.add = 1;
      m.convert = narrow(v.dtype_in) + narrow(v.dtype_out);
      return m;
    case VecOp::ScaleAccumulate:
      m.fma = 1;
      return m;
    case VecOp::RowScale:
      m.mul = 1;
      return m;
    case VecOp::RowDivide:
      m.div = 1;
      m.convert = narrow(v.dtype_out);
      return m;
    case VecOp::SiluMul:
      m.exp = 1, m.add = 1, m.div = 1, m.mul = 1;
      m.convert = narrow(v.dtype_in) + narrow(v.dtype_out);
      return m;
    case VecOp::RmsNorm:
      m.fma = 1, m.mul = 2;
      m.convert = narrow(v.dtype_in) + narrow(v.dtype_out);
      return m;
    case VecOp::Quantize:
      m.max = 1, m.mul = 1, m.convert = 1 + narrow(v.dtype_in);
      return m;
    case VecOp::Dequantize:
      m.convert = 1 + narrow(v.dtype_out), m.mul = 1;
      return m;
    case VecOp::SoftmaxStep:
      m.max = 1, m.fma = 1, m.exp = 1, m.add = 1;
      m.convert = narrow(v.dtype_out);
      return m;
    case VecOp::Rope: {
      const double rotated = v.cols > 0 ? static_cast<double>(v.block_cols) / static_cast<double>(v.cols) : 0.0;
      m.exp = rotated / static_cast<double>(std::max<std::int64_t>(v.block_rows, 1));
      m.mul = rotated, m.fma = rotated;
      m.convert = narrow(v.dtype_in) + narrow(v.dtype_out);
      return m;
    }
    case VecOp::TopK:
      m.exp = 1, m.add = 2, m.div = 1;
      m.max = 2 + static_cast<double>(v.moe.k) * static_cast<double>(v.moe.top_groups) /
                      static_cast<double>(std::max<std::int64_t>(v.moe.groups, 1));
      return m;
    case VecOp::MoeWeights:
      m.exp = 1, m.add = 2, m.div = 2, m.mul = 1;
      return m;
    case VecOp::MoePlan:
      m.add = 4;
      return m;
  }
  return m;
}

namespace detail {

double mma_flops_per_cycle(const MatrixUnitDesc& matrix, DType a, DType b) {
  auto rate = [&](DType d) {
    if (is_fp8(d)) return matrix.fp8_flops_per_cycle;
    if (d == DType::bf16 || d == DType::f16) return matrix.bf16_flops_per_cycle;
    if (d == DType::f32) return matrix.f32_flops_per_cycle;
    return 0.0;
  };
  return std::min(rate(a), rate(b));
}

double mma_cycles(const MatrixUnitDesc& matrix, const Mma& mma) {
  const double rate = mma_flops_per_cycle(matrix, mma.a_dtype, mma.b_dtype);
  if (rate <= 0) return 0;
  const double padded = 2.0 * static_cast<double>(round_up(mma.m, matrix.tile_m)) *
                        static_cast<double>(round_up(mma.n, matrix.tile_n)) *
                        static_cast<double>(round_up(mma.k, matrix.tile_k));
  return padded / rate + static_cast<double>(matrix.issue_cycles);
}

double vec_cycles(const VectorUnitDesc& vu, const Vec& v) {
  const VectorMix m = vector_cost(v);
  const double per_vector = m.add * vu.add_cycles + m.mul * vu.mul_cycles + m.fma * vu.fma_cycles +
                            m.max * vu.max_cycles + m.exp * vu.exp_cycles + m.div * vu.div_cycles +
                            m.convert * vu.convert_cycles;
  const std::int64_t elements = v.rows * v.cols;
  const std::int64_t vectors = (elements + vu.lanes - 1) / vu.lanes;
  return static_cast<double>(vectors) * per_vector + static_cast<double>(vu.issue_cycles);
}

}  // namespace detail

namespace detail {

// The DMA engine reads a gather's indices before it can address the data: one dependent
// HBM access, on the issuing pipe (docs/simulator.md).
double index_read_cycles(const ChipDesc& chip) { return chip.hbm_latency_ns * 1e-9 * chip.clock_hz; }

}  // namespace detail

double instruction_cycles(const ChipDesc& chip, const Instr& instr) {
  const CoreDesc& core = chip.core;
  return std::visit(
      [&](const auto& i) -> double {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, Load>)
          return static_cast<double>(core.dma.issue_cycles) + (i.index ? detail::index_read_cycles(chip) : 0.0) +
                 static_cast<double>(detail::dma_bytes(i.src)) / core.dma.bytes_per_cycle;
        else if constexpr (std::is_same_v<T, Store>)
          return static_cast<double>(core.dma.issue_cycles) +
                 static_cast<double>(detail::dma_bytes(i.dst)) / core.dma.bytes_per_cycle;
        else if constexpr (std::is_same_v<T, Mma>)
          return detail::mma_cycles(core.matrix, i);
        else if constexpr (std::is_same_v<T, Vec>)
          return detail::vec_cycles(core.vector, i);
        else
          return 0.0;
      },
      instr);
}

}  // namespace anychip::sim
