// The simulator backend: devices "sim:<preset>" (one per chip preset) and
// "sim:<path to chip.json>", running the tile programs of kernels/sim on the Simulator.
#pragma once

#include <memory>

#include "backends/backend.hpp"

namespace anychip::backends {

std::unique_ptr<Backend> make_sim_backend();

}  // namespace anychip::backends
