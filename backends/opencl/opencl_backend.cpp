// The OpenCL backend: finding platforms and devices, and opening one (opencl_backend.hpp).
#include "backends/opencl/opencl_backend.hpp"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "backends/opencl/opencl_device.hpp"

namespace anychip::backends {
namespace {

DeviceInfo unavailable(std::string reason) {
  DeviceInfo info;
  info.id = "opencl";
  info.backend = "opencl";
  info.name = "OpenCL";
  info.available = false;
  info.unavailable_reason = std::move(reason);
  return info;
}

#if ANYCHIP_HAVE_OPENCL_HEADERS

namespace ocl = backends::opencl;

template <class T>
T device_value(const ocl::Api& cl, cl_device_id d, cl_device_info what) {
  T v{};
  if (cl.clGetDeviceInfo(d, what, sizeof v, &v, nullptr) != CL_SUCCESS) return T{};
  return v;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string device_string(const ocl::Api& cl, cl_device_id d, cl_device_info what) {
  std::size_t n = 0;
  if (cl.clGetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string s(n, '\0');
  if (cl.clGetDeviceInfo(d, what, n, s.data(), nullptr) != CL_SUCCESS) return {};
  return trimmed(std::move(s));
}

std::string platform_string(const ocl::Api& cl, cl_platform_id p, cl_platform_info what) {
  std::size_t n = 0;
  if (cl.clGetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string s(n, '\0');
  if (cl.clGetPlatformInfo(p, what, n, s.data(), nullptr) != CL_SUCCESS) return {};
  return trimmed(std::move(s));
}

// "OpenCL 1.2 ..." -> 102; 0 when unreadable.
int version_of(const std::string& s, const char* prefix) {
  const std::string p(prefix);
  if (s.rfind(p, 0) != 0) return 0;
  int major = 0, minor = 0;
  if (std::sscanf(s.c_str() + p.size(), "%d.%d", &major, &minor) != 2) return 0;
  return major * 100 + minor;
}

ocl::DeviceEntry describe_device(const ocl::Api& cl, cl_platform_id platform, cl_device_id device, int index) {
  ocl::DeviceEntry e;
  e.platform = platform;
  e.device = device;
  e.platform_name = platform_string(cl, platform, CL_PLATFORM_NAME);
  e.platform_version = platform_string(cl, platform, CL_PLATFORM_VERSION);
  e.driver_version = device_string(cl, device, CL_DRIVER_VERSION);
  e.c_version = device_string(cl, device, CL_DEVICE_OPENCL_C_VERSION);
  const std::string device_version = device_string(cl, device, CL_DEVICE_VERSION);
  e.is_cpu = (device_value<cl_device_type>(cl, device, CL_DEVICE_TYPE) & CL_DEVICE_TYPE_CPU) != 0;

  DeviceInfo& info = e.info;
  info.id = "opencl:" + std::to_string(index);
  info.backend = "opencl";
  info.name = device_string(cl, device, CL_DEVICE_NAME);
  info.arch = e.c_version + ", driver " + e.driver_version + " (" + e.platform_name + ")";
  info.memory_bytes = device_value<cl_ulong>(cl, device, CL_DEVICE_GLOBAL_MEM_SIZE);
  info.compute_units = static_cast<int>(device_value<cl_uint>(cl, device, CL_DEVICE_MAX_COMPUTE_UNITS));
  info.dtypes = {DType::f32, DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2};
  info.scale_dtypes = {DType::f32, DType::ue8m0};

  kernels::opencl::Target& t = e.target;
  t.wide_work_items = e.is_cpu;
  t.max_work_group_size = device_value<std::size_t>(cl, device, CL_DEVICE_MAX_WORK_GROUP_SIZE);
  std::size_t sizes[3] = {0, 0, 0};
  if (device_value<cl_uint>(cl, device, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS) >= 3)
    cl.clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof sizes, sizes, nullptr);
  for (int i = 0; i < 3; ++i) t.max_work_item_sizes[i] = sizes[i];
  t.local_mem_bytes = device_value<cl_ulong>(cl, device, CL_DEVICE_LOCAL_MEM_SIZE);
  t.compute_units = std::max(1, info.compute_units);
  t.correctly_rounded_divide =
      (device_value<cl_device_fp_config>(cl, device, CL_DEVICE_SINGLE_FP_CONFIG) & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;

  // What the kernels need: OpenCL 1.2 (markers with wait lists, the C 1.2 language), a
  // compiler, and the device switched on.
  if (!device_value<cl_bool>(cl, device, CL_DEVICE_AVAILABLE)) {
    info.unavailable_reason = "the driver reports the device as not available";
  } else if (!device_value<cl_bool>(cl, device, CL_DEVICE_COMPILER_AVAILABLE)) {
    info.unavailable_reason = "the driver has no OpenCL C compiler for it";
  } else if (version_of(device_version, "OpenCL ") < 102 || version_of(e.c_version, "OpenCL C ") < 102) {
    info.unavailable_reason = "it supports " + device_version + " / " + e.c_version + "; anychip needs OpenCL 1.2";
  } else if (t.max_work_group_size == 0) {
    info.unavailable_reason = "the driver reports no work-group size";
  }
  info.available = info.unavailable_reason.empty();
  return e;
}

struct Enumeration {
  std::vector<ocl::DeviceEntry> devices;
  std::string why_none;  // set when there are no devices
};

Enumeration enumerate_all() {
  Enumeration en;
  std::string why;
  const ocl::Api* cl = ocl::api(&why);
  if (!cl) {
    en.why_none = why;
    return en;
  }
  cl_uint n_platforms = 0;
  cl_int err = cl->clGetPlatformIDs(0, nullptr, &n_platforms);
  if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (err == CL_SUCCESS && n_platforms == 0)) {
    en.why_none = "no OpenCL platforms (the ICD loader found no installed driver)";
    return en;
  }
  if (err != CL_SUCCESS) {
    en.why_none = "no OpenCL platforms (clGetPlatformIDs: " + ocl::error_name(err) + ")";
    return en;
  }
  std::vector<cl_platform_id> platforms(n_platforms);
  if (cl->clGetPlatformIDs(n_platforms, platforms.data(), nullptr) != CL_SUCCESS) {
    en.why_none = "no OpenCL platforms (clGetPlatformIDs failed)";
    return en;
  }
  for (cl_platform_id p : platforms) {
    cl_uint n = 0;
    if (cl->clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &n) != CL_SUCCESS || n == 0) continue;
    std::vector<cl_device_id> ids(n);
    if (cl->clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, n, ids.data(), nullptr) != CL_SUCCESS) continue;
    for (cl_device_id d : ids)
      en.devices.push_back(describe_device(*cl, p, d, static_cast<int>(en.devices.size())));
  }
  if (en.devices.empty())
    en.why_none = "no OpenCL devices on " + std::to_string(n_platforms) + " platform(s)";
  return en;
}

class OpenClBackend final : public Backend {
 public:
  std::string_view name() const override { return "opencl"; }

  std::vector<DeviceInfo> enumerate() override {
    const Enumeration& en = enumeration();
    if (en.devices.empty()) return {unavailable(en.why_none)};
    std::vector<DeviceInfo> out;
    for (const ocl::DeviceEntry& e : en.devices) out.push_back(e.info);
    return out;
  }

  std::unique_ptr<Device> open(std::string_view id, const DeviceOptions&) override {
    const Enumeration& en = enumeration();
    if (en.devices.empty()) throw Error(ErrorCode::Unavailable, "device " + std::string(id) + " is unavailable: " + en.why_none);
    const std::string_view prefix = "opencl:";
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
      throw Error(ErrorCode::InvalidArgument, "opencl: no device '" + std::string(id) + "' (this machine has opencl:0" +
                                                  (en.devices.size() > 1 ? " to opencl:" + std::to_string(en.devices.size() - 1) : "") + ")");
    const ocl::DeviceEntry& e = en.devices[index];
    if (!e.info.available)
      throw Error(ErrorCode::Unavailable, "device " + e.info.id + " is unavailable: " + e.info.unavailable_reason);
    return ocl::open_device(*ocl::api(nullptr), e);
  }

 private:
  // Platforms and devices do not come and go while a process runs: found once.
  const Enumeration& enumeration() {
    std::call_once(once_, [this] { enumeration_ = enumerate_all(); });
    return enumeration_;
  }
  std::once_flag once_;
  Enumeration enumeration_;
};

#else  // !ANYCHIP_HAVE_OPENCL_HEADERS

class OpenClBackend final : public Backend {
 public:
  std::string_view name() const override { return "opencl"; }
  std::vector<DeviceInfo> enumerate() override { return {unavailable(kReason)}; }
  std::unique_ptr<Device> open(std::string_view id, const DeviceOptions&) override {
    throw Error(ErrorCode::Unavailable, "device " + std::string(id) + " is unavailable: " + kReason);
  }

 private:
  static constexpr const char* kReason = "unavailable: built without OpenCL headers (<CL/cl.h>)";
};

#endif

static_assert(BackendImpl<OpenClBackend>);

}  // namespace

std::unique_ptr<Backend> make_opencl_backend() { return std::make_unique<OpenClBackend>(); }

}  // namespace anychip::backends
