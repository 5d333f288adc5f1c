// One OpenCL device as the backend found it, and the Device over it (opencl_device.cpp).
#pragma once

#include "backends/opencl/opencl_api.hpp"

#if ANYCHIP_HAVE_OPENCL_HEADERS

#include <memory>
#include <string>

#include "backends/backend.hpp"
#include "kernels/opencl/opencl_kernels.hpp"

namespace anychip::backends::opencl {

// What enumeration learnt about one device.
struct DeviceEntry {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  DeviceInfo info;
  std::string platform_name, platform_version;
  std::string driver_version, c_version;
  bool is_cpu = false;
  kernels::opencl::Target target;  // from the device's limits; wide work-items on CPUs
};

// Opens the device (a context on it). Throws Unavailable when the driver refuses.
std::unique_ptr<Device> open_device(const Api& cl, const DeviceEntry& entry);

}  // namespace anychip::backends::opencl

#endif  // ANYCHIP_HAVE_OPENCL_HEADERS
