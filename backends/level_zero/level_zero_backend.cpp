// The Level Zero backend: initializing the loader, finding drivers and devices, and
// opening one (level_zero_backend.hpp).
#include "backends/level_zero/level_zero_backend.hpp"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "backends/level_zero/level_zero_device.hpp"
#include "backends/level_zero/spirv_modules.hpp"

#if ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

namespace anychip::backends::level_zero {
namespace {

// The SPIR-V version of the embedded modules (cmake/spirv.cmake: --spirv-max-version=1.2).
constexpr std::uint32_t kSpirvVersion = ZE_MAKE_VERSION(1, 2);

std::string version_text(std::uint32_t v) {
  return std::to_string(ZE_MAJOR_VERSION(v)) + "." + std::to_string(ZE_MINOR_VERSION(v));
}

const char* type_name(ze_device_type_t t) {
  switch (t) {
    case ZE_DEVICE_TYPE_GPU: return "GPU";
    case ZE_DEVICE_TYPE_CPU: return "CPU";
    case ZE_DEVICE_TYPE_FPGA: return "FPGA";
    case ZE_DEVICE_TYPE_MCA: return "memory copy accelerator";
    case ZE_DEVICE_TYPE_VPU: return "VPU";
    default: return "device";
  }
}

DeviceEntry describe_device(const Api& ze, ze_driver_handle_t driver, std::uint32_t driver_version,
                            std::uint32_t api_version, ze_device_handle_t device, int index) {
  DeviceEntry e;
  e.driver = driver;
  e.device = device;
  e.driver_version = driver_version;
  e.api_version = api_version;
  DeviceInfo& info = e.info;
  info.id = "level_zero:" + std::to_string(index);
  info.backend = "level_zero";
  info.dtypes = {DType::f32, DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2};
  info.scale_dtypes = {DType::f32, DType::ue8m0};

  // From API 1.2 on, timerResolution can be had in ticks per second (exact), rather than
  // in whole nanoseconds per tick (83 for an 83.3 ns tick).
  const bool ticks_per_second = api_version >= ZE_API_VERSION_1_2;
  ze_device_properties_t props{};
  props.stype = ticks_per_second ? ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES_1_2 : ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES;
  if (const ze_result_t r = ze.zeDeviceGetProperties(device, &props); r != ZE_RESULT_SUCCESS) {
    info.name = "Level Zero device";
    info.unavailable_reason = "zeDeviceGetProperties: " + result_name(r);
    return e;
  }
  ze_device_compute_properties_t compute{};
  compute.stype = ZE_STRUCTURE_TYPE_DEVICE_COMPUTE_PROPERTIES;
  const ze_result_t compute_result = ze.zeDeviceGetComputeProperties(device, &compute);
  ze_device_module_properties_t module{};
  module.stype = ZE_STRUCTURE_TYPE_DEVICE_MODULE_PROPERTIES;
  const ze_result_t module_result = ze.zeDeviceGetModuleProperties(device, &module);

  std::uint32_t n_memories = 0;
  if (ze.zeDeviceGetMemoryProperties(device, &n_memories, nullptr) == ZE_RESULT_SUCCESS && n_memories > 0) {
    std::vector<ze_device_memory_properties_t> memories(n_memories);
    for (auto& m : memories) m.stype = ZE_STRUCTURE_TYPE_DEVICE_MEMORY_PROPERTIES;
    if (ze.zeDeviceGetMemoryProperties(device, &n_memories, memories.data()) == ZE_RESULT_SUCCESS)
      for (std::uint32_t i = 0; i < n_memories; ++i) info.memory_bytes += memories[i].totalSize;
  }

  bool has_compute_queue = false;
  std::uint32_t n_groups = 0;
  if (ze.zeDeviceGetCommandQueueGroupProperties(device, &n_groups, nullptr) == ZE_RESULT_SUCCESS && n_groups > 0) {
    std::vector<ze_command_queue_group_properties_t> groups(n_groups);
    for (auto& g : groups) g.stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_GROUP_PROPERTIES;
    if (ze.zeDeviceGetCommandQueueGroupProperties(device, &n_groups, groups.data()) == ZE_RESULT_SUCCESS)
      for (std::uint32_t i = 0; i < n_groups && !has_compute_queue; ++i)
        if (groups[i].flags & ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE) {
          e.compute_ordinal = i;
          has_compute_queue = true;
        }
  }

  info.name = props.name;
  char ids[64];
  std::snprintf(ids, sizeof ids, "vendor 0x%04x device 0x%04x", props.vendorId, props.deviceId);
  info.arch = std::string(type_name(props.type)) + " " + ids + ", Level Zero " + version_text(api_version) +
              ", driver " + std::to_string(driver_version) + ", SPIR-V " + version_text(module.spirvVersionSupported);
  info.compute_units = static_cast<int>(props.numSlices * props.numSubslicesPerSlice * props.numEUsPerSubslice);
  if (props.timerResolution > 0)
    e.ns_per_tick = ticks_per_second ? 1e9 / static_cast<double>(props.timerResolution)
                                     : static_cast<double>(props.timerResolution);
  e.timestamp_mask = props.kernelTimestampValidBits == 0 || props.kernelTimestampValidBits >= 64
                         ? ~std::uint64_t{0}
                         : (std::uint64_t{1} << props.kernelTimestampValidBits) - 1;

  kernels::level_zero::Target& t = e.target;
  t.wide_work_items = false;
  t.max_work_group_size = compute.maxTotalGroupSize;
  t.max_work_item_sizes[0] = compute.maxGroupSizeX;
  t.max_work_item_sizes[1] = compute.maxGroupSizeY;
  t.max_work_item_sizes[2] = compute.maxGroupSizeZ;
  t.local_mem_bytes = compute.maxSharedLocalMemory;
  t.compute_units = std::max(1, info.compute_units);
  t.correctly_rounded_divide = (module.fp32flags & ZE_DEVICE_FP_FLAG_ROUNDED_DIVIDE_SQRT) != 0;

  if (compute_result != ZE_RESULT_SUCCESS) {
    info.unavailable_reason = "zeDeviceGetComputeProperties: " + result_name(compute_result);
  } else if (module_result != ZE_RESULT_SUCCESS) {
    info.unavailable_reason = "zeDeviceGetModuleProperties: " + result_name(module_result);
  } else if (module.spirvVersionSupported < kSpirvVersion) {
    info.unavailable_reason = "it takes SPIR-V up to " + version_text(module.spirvVersionSupported) +
                              "; the kernels are SPIR-V " + version_text(kSpirvVersion);
  } else if (!has_compute_queue) {
    info.unavailable_reason = "it has no command queue group for compute";
  } else if (t.max_work_group_size == 0) {
    info.unavailable_reason = "the driver reports no work-group size";
  } else if (spirv_modules().empty()) {
    info.unavailable_reason = std::string(spirv_build_info());
  }
  info.available = info.unavailable_reason.empty();
  return e;
}

}  // namespace

std::vector<DeviceEntry> find_devices(const Api& ze, std::string* why_none) {
  std::vector<DeviceEntry> devices;
  auto none = [&](std::string why) {
    if (why_none) *why_none = std::move(why);
    return std::vector<DeviceEntry>{};
  };
  // zeInit may be called more than once per process; later calls return the first result.
  if (const ze_result_t r = ze.zeInit(0); r != ZE_RESULT_SUCCESS)
    return none("no Level Zero driver: zeInit returned " + result_name(r));
  std::uint32_t n_drivers = 0;
  if (const ze_result_t r = ze.zeDriverGet(&n_drivers, nullptr); r != ZE_RESULT_SUCCESS || n_drivers == 0)
    return none(r != ZE_RESULT_SUCCESS ? "no Level Zero driver: zeDriverGet returned " + result_name(r)
                                       : "no Level Zero driver (the loader found none)");
  std::vector<ze_driver_handle_t> drivers(n_drivers);
  if (ze.zeDriverGet(&n_drivers, drivers.data()) != ZE_RESULT_SUCCESS) return none("no Level Zero driver (zeDriverGet failed)");
  for (ze_driver_handle_t driver : drivers) {
    ze_api_version_t api_version = ZE_API_VERSION_1_0;
    ze.zeDriverGetApiVersion(driver, &api_version);
    ze_driver_properties_t props{};
    props.stype = ZE_STRUCTURE_TYPE_DRIVER_PROPERTIES;
    ze.zeDriverGetProperties(driver, &props);
    std::uint32_t n = 0;
    if (ze.zeDeviceGet(driver, &n, nullptr) != ZE_RESULT_SUCCESS || n == 0) continue;
    std::vector<ze_device_handle_t> handles(n);
    if (ze.zeDeviceGet(driver, &n, handles.data()) != ZE_RESULT_SUCCESS) continue;
    for (std::uint32_t i = 0; i < n; ++i)
      devices.push_back(describe_device(ze, driver, props.driverVersion, static_cast<std::uint32_t>(api_version),
                                        handles[i], static_cast<int>(devices.size())));
  }
  if (devices.empty()) return none("no Level Zero devices on " + std::to_string(n_drivers) + " driver(s)");
  return devices;
}

}  // namespace anychip::backends::level_zero

#endif  // ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

namespace anychip::backends {
namespace {

DeviceInfo unavailable(std::string reason) {
  DeviceInfo info;
  info.id = "level_zero";
  info.backend = "level_zero";
  info.name = "Level Zero";
  info.available = false;
  info.unavailable_reason = std::move(reason);
  return info;
}

#if ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

namespace lz = backends::level_zero;

struct Enumeration {
  std::vector<lz::DeviceEntry> devices;
  std::string why_none;  // set when there are no devices
};

Enumeration enumerate_all() {
  Enumeration en;
  if (const lz::Api* ze = lz::api(&en.why_none)) en.devices = lz::find_devices(*ze, &en.why_none);
  return en;
}

class LevelZeroBackend final : public Backend {
 public:
  std::string_view name() const override { return "level_zero"; }

  std::vector<DeviceInfo> enumerate() override {
    const Enumeration& en = enumeration();
    if (en.devices.empty()) return {unavailable(en.why_none)};
    std::vector<DeviceInfo> out;
    for (const lz::DeviceEntry& e : en.devices) out.push_back(e.info);
    return out;
  }

  std::unique_ptr<Device> open(std::string_view id, const DeviceOptions&) override {
    const Enumeration& en = enumeration();
    if (en.devices.empty())
      throw Error(ErrorCode::Unavailable, "device " + std::string(id) + " is unavailable: " + en.why_none);
    const std::string_view prefix = "level_zero:";
    std::size_t index = en.devices.size();
    if (id.substr(0, prefix.size()) == prefix && id.size() > prefix.size()) {
      index = 0;
      for (char c : id.substr(prefix.size())) {
        if (c < '0' || c > '9' || index > en.devices.size()) {
          index = en.devices.size();
          break;
        }
        index = index * 10 + static_cast<std::size_t>(c - '0');
      }
    }
    if (index >= en.devices.size())
      throw Error(ErrorCode::InvalidArgument,
                  "level_zero: no device '" + std::string(id) + "' (this machine has level_zero:0" +
                      (en.devices.size() > 1 ? " to level_zero:" + std::to_string(en.devices.size() - 1) : "") + ")");
    const lz::DeviceEntry& e = en.devices[index];
    if (!e.info.available)
      throw Error(ErrorCode::Unavailable, "device " + e.info.id + " is unavailable: " + e.info.unavailable_reason);
    return lz::open_device(*lz::api(nullptr), e);
  }

 private:
  // zeInit once, and drivers and devices do not come and go while a process runs.
  const Enumeration& enumeration() {
    std::call_once(once_, [this] { enumeration_ = enumerate_all(); });
    return enumeration_;
  }
  std::once_flag once_;
  Enumeration enumeration_;
};

#else  // !ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

class LevelZeroBackend final : public Backend {
 public:
  std::string_view name() const override { return "level_zero"; }
  std::vector<DeviceInfo> enumerate() override { return {unavailable(kReason)}; }
  std::unique_ptr<Device> open(std::string_view id, const DeviceOptions&) override {
    throw Error(ErrorCode::Unavailable, "device " + std::string(id) + " is unavailable: " + kReason);
  }

 private:
  static constexpr const char* kReason = "unavailable: built without Level Zero headers (<level_zero/ze_api.h>)";
};

#endif

static_assert(BackendImpl<LevelZeroBackend>);

}  // namespace

std::unique_ptr<Backend> make_level_zero_backend() { return std::make_unique<LevelZeroBackend>(); }

}  // namespace anychip::backends
