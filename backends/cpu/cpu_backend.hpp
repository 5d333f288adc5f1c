// The CPU backend: device "cpu", host memory, synchronous queues, the kernels of
// kernels/cpu/ (oneTBB-parallel, instruction set picked at run time).
#pragma once

#include <memory>

#include "backends/backend.hpp"

namespace anychip::backends {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace anychip::backends
