// The lowering of each op for the simulator: tile choice, footprint, programs.
// Internal to kernels/sim; sim_kernels.hpp dispatches on the problem's kind.
#pragma once

#include <string>

#include "kernels/sim/sim_kernels.hpp"

namespace anychip::kernels::sim {

// Each op provides, as overloads on its problem type:
//   TileConfig choose(const P&, const ChipDesc&);
//   std::string check(const P&, const TileConfig&, const ChipDesc&);   // "" = supported
//   Footprint footprint(const P&, const TileConfig&, const ChipDesc&);
//   TileKernel build(const P&, const TileConfig&, const ChipDesc&, int phase);
// and, for attention, phases() and workspace().
#define ANYCHIP_SIM_OP(P)                                                      \
  TileConfig choose(const P& p, const ChipDesc& chip);                        \
  std::string check(const P& p, const TileConfig& t, const ChipDesc& chip);   \
  Footprint footprint(const P& p, const TileConfig& t, const ChipDesc& chip); \
  TileKernel build(const P& p, const TileConfig& t, const ChipDesc& chip, int phase);
ANYCHIP_SIM_OP(GemmFp8Problem)
ANYCHIP_SIM_OP(GemmProblem)
ANYCHIP_SIM_OP(AttentionProblem)
ANYCHIP_SIM_OP(RmsNormProblem)
ANYCHIP_SIM_OP(SiluMulProblem)
ANYCHIP_SIM_OP(AddProblem)
ANYCHIP_SIM_OP(QuantizeProblem)
ANYCHIP_SIM_OP(DequantizeProblem)
ANYCHIP_SIM_OP(RopeProblem)
ANYCHIP_SIM_OP(SliceProblem)
ANYCHIP_SIM_OP(ConcatProblem)
ANYCHIP_SIM_OP(MoeTopkProblem)
ANYCHIP_SIM_OP(MoeWeightsProblem)
ANYCHIP_SIM_OP(MoePlanProblem)
ANYCHIP_SIM_OP(MoeGatherProblem)
ANYCHIP_SIM_OP(GemmFp8GroupedProblem)
ANYCHIP_SIM_OP(MoeCombineProblem)
#undef ANYCHIP_SIM_OP

int phases(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip);
std::int64_t workspace(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip);

}  // namespace anychip::kernels::sim
