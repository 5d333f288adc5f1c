// A static check of the rule of simulator/program.hpp: every schedule of the pipes that
// the flags allow gives the program-order result. The lowerings' tests run it on every
// program they generate.
#pragma once

#include <string>

#include "kernels/sim/sim_kernels.hpp"

namespace anychip::kernels::sim {

// "" if `program` is race-free, else what is wrong with which instructions. Checks that:
//  - program order is itself a schedule: each wait comes after the signal it consumes
//    (the n-th wait of a flag consumes its n-th signal);
//  - each flag is signalled from one pipe and waited on by one pipe, as often as signalled;
//  - any two instructions on different pipes that touch a common byte (Spm, Acc or Hbm),
//    one of them writing it, are ordered by program order within pipes and signal -> wait
//    edges, in their program order.
std::string check_program(const Program& program);

}  // namespace anychip::kernels::sim
