// The Level Zero backend: devices "level_zero:<n>", every device of every Level Zero
// driver numbered in one flat list, running SPIR-V modules built at build time from the
// OpenCL C kernels (kernels/level_zero). The loader (libze_loader.so.1) is loaded at run
// time; without it, without a driver, or built without <level_zero/ze_api.h>, the backend
// lists one unavailable device "level_zero" with the reason.
#pragma once

#include <memory>

#include "backends/backend.hpp"

namespace anychip::backends {

std::unique_ptr<Backend> make_level_zero_backend();

}  // namespace anychip::backends
