// Internal helpers of the simulator shared by its source files (not part of its API).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "simulator/chip.hpp"
#include "simulator/program.hpp"

namespace anychip::sim::detail {

std::string_view vec_op_name(VecOp op);
std::string_view short_dtype(DType d);  // "e4m3", "e5m2", "bf16", ...
std::string_view space_name(Space s);   // "hbm", "spm", "acc"
std::string hex(std::int64_t v);
std::string addr_text(Addr a);

// The short name of an instruction in traces: "load 128x128B", "mma 128x256x128 e4m3".
std::string instr_name(const Instr& instr);

// The matrix unit's FLOP per cycle for an mma of these operand dtypes (the slower of the
// two operands decides); 0 if the chip has no rate for one of them.
double mma_flops_per_cycle(const MatrixUnitDesc& matrix, DType a, DType b);

// Cycles of the matrix or vector instruction on `core`, issue cost included.
double mma_cycles(const MatrixUnitDesc& matrix, const Mma& mma);
double vec_cycles(const VectorUnitDesc& vector, const Vec& vec);

// The cycles a gather's index read holds its DMA pipe (one HBM latency), when the indices
// are not already held by the core.
double index_read_cycles(const ChipDesc& chip);

// The bytes a DMA instruction moves.
inline std::int64_t dma_bytes(const Region& r) { return r.rows * r.row_bytes; }

}  // namespace anychip::sim::detail
