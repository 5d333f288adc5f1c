// A chip, as the simulator models it: cores with a matrix unit, a vector unit, a
// scratchpad, an accumulator buffer and a DMA engine; a shared L2 and HBM.
//
// Chips are described in JSON (simulator/presets/*.json ship in the library); every key
// carries its unit in its name, and parse_chip() rejects an unknown key, a missing key or
// a value of the wrong type with an error naming the key. Each number of a preset cites
// its public source, or says it is an assumption, in "sources" (key path -> text).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "anychip/dtype.hpp"

namespace anychip::sim {

struct MatrixUnitDesc {
  double fp8_flops_per_cycle = 0;   // dense FP8 (e4m3/e5m2) FLOP per cycle, one core
  double bf16_flops_per_cycle = 0;  // dense BF16/F16 FLOP per cycle, one core
  double f32_flops_per_cycle = 0;   // F32 operands (TF32-class), one core
  // The unit's native MMA shape: an instruction's m, n, k are rounded up to multiples of
  // these for its cost (the padding is wasted work).
  std::int64_t tile_m = 0, tile_n = 0, tile_k = 0;
  std::int64_t issue_cycles = 0;  // fixed cost of one mma instruction
  // The unit applies per-block power-of-two (UE8M0) scales itself, at no cost. Without
  // it, block-scaled GEMMs rescale partial sums on the vector unit every 128 of K.
  bool native_ue8m0_scales = false;
};

// Cost, in cycles per `lanes` elements, of each primitive vector operation.
struct VectorUnitDesc {
  std::int64_t lanes = 0;  // fp32 elements processed per cycle by a 1-cycle primitive
  double add_cycles = 0, mul_cycles = 0, fma_cycles = 0, max_cycles = 0;
  double exp_cycles = 0, div_cycles = 0, convert_cycles = 0;
  std::int64_t issue_cycles = 0;  // fixed cost of one vector instruction
};

struct DmaDesc {
  double bytes_per_cycle = 0;     // what one core's DMA engine moves at most
  std::int64_t issue_cycles = 0;  // fixed cost of one transfer, before data flows
};

struct CoreDesc {
  MatrixUnitDesc matrix;
  VectorUnitDesc vector;
  DmaDesc dma;
  std::int64_t scratchpad_bytes = 0;   // operand tiles and vector temporaries
  std::int64_t accumulator_bytes = 0;  // fp32 accumulators written by the matrix unit
};

struct ChipDesc {
  std::string name;
  std::string description;
  double clock_hz = 0;
  std::int64_t cores = 0;
  CoreDesc core;
  std::int64_t l2_bytes = 0;
  double l2_bytes_per_s = 0;
  std::int64_t hbm_bytes = 0;
  double hbm_bytes_per_s = 0;
  double hbm_latency_ns = 0;
  std::map<std::string, std::string> sources;  // "core.matrix.fp8_flops_per_cycle" -> citation

  double peak_flops(DType operand) const;  // whole chip, per second
};

// Parses and validates a chip description. `where` names the file in messages:
// "npu.json: key core.matrix.fp8_flops_per_cycle: expected a number, got \"1e3\"".
// A preset must also cite a source for every number (require_sources).
ChipDesc parse_chip(std::string_view json_text, std::string_view where, bool require_sources = false);

// The presets built into the library, by name ("npu-ue8m0", "npu-fp32scale", "h800", ...).
std::vector<std::string> preset_names();
std::string_view preset_json(std::string_view name);  // empty if there is none

// A preset name or the path of a JSON file. Throws anychip::Error naming what is wrong.
ChipDesc load_chip(std::string_view preset_or_path);

// The description as JSON text (what `anychip chip show` prints).
std::string chip_to_json(const ChipDesc& chip);

}  // namespace anychip::sim
