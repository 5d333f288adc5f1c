#include "backends/backend.hpp"
#include "backends/cpu/cpu_backend.hpp"
#include "backends/cuda/cuda_backend.hpp"
#include "backends/level_zero/level_zero_backend.hpp"
#include "backends/opencl/opencl_backend.hpp"
#include "backends/sim/sim_backend.hpp"

namespace anychip::backends {

std::span<Backend* const> all_backends() {
  // Built once, on first use, and kept for the life of the process.
  static const std::vector<std::unique_ptr<Backend>> owned = [] {
    std::vector<std::unique_ptr<Backend>> v;
    v.push_back(make_cpu_backend());
    v.push_back(make_sim_backend());
    v.push_back(make_opencl_backend());
    v.push_back(make_level_zero_backend());
    v.push_back(make_cuda_backend());
    return v;
  }();
  static const std::vector<Backend*> view = [] {
    std::vector<Backend*> v;
    for (const auto& b : owned) v.push_back(b.get());
    return v;
  }();
  return view;
}

}  // namespace anychip::backends
