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
#undef ANYCHIP_SIM_OP

// Ops the simulator has no lowering for yet: check() says so, and the rest is never called.
template <typename P>
TileConfig choose(const P&, const ChipDesc&) { return {}; }
template <typename P>
std::string check(const P&, const TileConfig&, const ChipDesc&) { return "not lowered for the simulator yet"; }
template <typename P>
Footprint footprint(const P&, const TileConfig&, const ChipDesc&) { return {}; }
template <typename P>
TileKernel build(const P&, const TileConfig&, const ChipDesc&, int) { return {}; }

int phases(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip);
std::int64_t workspace(const AttentionProblem& p, const TileConfig& t, const ChipDesc& chip);

}  // namespace anychip::kernels::sim
