// One Level Zero device as the backend found it, and the Device over it
// (level_zero_device.cpp).
#pragma once

#include "backends/level_zero/level_zero_api.hpp"

#if ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "kernels/level_zero/level_zero_kernels.hpp"

namespace anychip::backends::level_zero {

// What enumeration learnt about one device.
struct DeviceEntry {
  ze_driver_handle_t driver = nullptr;
  ze_device_handle_t device = nullptr;
  DeviceInfo info;
  std::uint32_t driver_version = 0;
  std::uint32_t api_version = 0;    // ZE_MAKE_VERSION(major, minor)
  std::uint32_t compute_ordinal = 0;  // the command queue group that runs kernels
  double ns_per_tick = 1;           // kernel timestamps
  std::uint64_t timestamp_mask = ~std::uint64_t{0};
  kernels::level_zero::Target target;  // from the device's limits
};

// Every device of every driver, numbered in one flat list (level_zero:<n>), after
// zeInit; empty, with the reason in `why_none`, when there is none. Never throws.
std::vector<DeviceEntry> find_devices(const Api& ze, std::string* why_none);

// Opens the device (a context on its driver). Throws Unavailable when the driver refuses.
std::unique_ptr<Device> open_device(const Api& ze, const DeviceEntry& entry);

}  // namespace anychip::backends::level_zero

#endif  // ANYCHIP_HAVE_LEVEL_ZERO_HEADERS
