// The OpenCL backend: devices "opencl:<n>", every device of every OpenCL platform numbered
// in one flat list, running the OpenCL C kernels of kernels/opencl. The ICD loader is
// loaded at run time; without it (or built without <CL/cl.h>) the backend lists one
// unavailable device "opencl" with the reason.
#pragma once

#include <memory>

#include "backends/backend.hpp"

namespace anychip::backends {

std::unique_ptr<Backend> make_opencl_backend();

}  // namespace anychip::backends
