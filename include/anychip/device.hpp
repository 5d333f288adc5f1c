// What anychip knows about one device, as `anychip devices` lists it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "anychip/dtype.hpp"

namespace anychip {

struct DeviceInfo {
  std::string id;       // the device string: "cpu", "sim:npu-ue8m0", "opencl:0", "cuda:0"
  std::string backend;  // "cpu", "sim", "opencl", "level_zero", "cuda"
  std::string name;     // what the driver calls it
  bool available = false;
  std::string unavailable_reason;  // why not, when !available ("no CUDA driver", ...)
  std::string arch;                // instruction set or architecture ("avx512bf16", "sm_90a")
  std::uint64_t memory_bytes = 0;
  int compute_units = 0;               // cores, SMs, compute units
  std::vector<DType> dtypes;           // element types its kernels take
  std::vector<DType> scale_dtypes;     // block-scale formats its FP8 GEMM takes
};

// How to open a device.
struct DeviceOptions {
  // Simulated devices only: model time without computing the data (large what-if runs).
  // Outputs are then undefined and results cannot be checked.
  bool timing_only = false;
  // Collect a Chrome trace of what runs (simulated devices: one track per core and pipe).
  bool trace = false;
};

}  // namespace anychip
