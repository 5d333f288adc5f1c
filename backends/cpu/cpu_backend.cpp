// Queues on the CPU are synchronous: a copy or launch runs to completion on the calling
// thread (its kernels fan out over oneTBB's workers) before the call returns, so an event
// records the host clock at the moment the queue reaches it. That is the whole device
// timeline of a CPU, the way ggml's CPU backend runs its graph.
#include "backends/cpu/cpu_backend.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <oneapi/tbb/info.h>

#include "anychip/error.hpp"
#include "kernels/cpu/cpu_kernels.hpp"

namespace anychip::backends {
namespace {

constexpr std::size_t kAlignment = 64;

class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(std::size_t bytes) : size_(bytes) {
    std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    data_ = static_cast<std::byte*>(std::aligned_alloc(kAlignment, rounded));
    if (!data_)
      throw Error(ErrorCode::OutOfMemory, "cpu: cannot allocate " + std::to_string(bytes) + " bytes");
  }
  ~HostBuffer() override { std::free(data_); }
  std::size_t size() const override { return size_; }
  std::byte* data() const { return data_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

class CpuQueue final : public Queue {};

class CpuEvent final : public Event {
 public:
  std::chrono::steady_clock::time_point time = std::chrono::steady_clock::now();
};

class CpuKernel final : public Kernel {
 public:
  explicit CpuKernel(kernels::KernelSpec spec) : spec(std::move(spec)) {}
  kernels::KernelSpec spec;
};

HostBuffer& host(Buffer& b) { return static_cast<HostBuffer&>(b); }
const HostBuffer& host(const Buffer& b) { return static_cast<const HostBuffer&>(b); }

void check_range(const Buffer& b, std::size_t offset, std::size_t bytes, const char* what) {
  if (offset > b.size() || bytes > b.size() - offset)
    throw Error(ErrorCode::InvalidArgument,
                std::string("cpu: ") + what + " of " + std::to_string(bytes) + " bytes at offset " +
                    std::to_string(offset) + " overruns a buffer of " + std::to_string(b.size()) +
                    " bytes");
}

std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "CPU";
}

DeviceInfo cpu_info() {
  DeviceInfo info;
  info.id = "cpu";
  info.backend = "cpu";
  info.name = cpu_model_name();
  info.available = true;
  info.arch = std::string(kernels::cpu::isa());
  info.memory_bytes = static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                      static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  info.compute_units = tbb::info::default_concurrency();
  info.dtypes = {DType::f32, DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2};
  info.scale_dtypes = {DType::f32, DType::ue8m0};
  return info;
}

class CpuDevice final : public Device {
 public:
  CpuDevice() : info_(cpu_info()) {}

  const DeviceInfo& info() const override { return info_; }

  std::unique_ptr<Buffer> allocate(std::size_t bytes) override {
    return std::make_unique<HostBuffer>(bytes);
  }

  std::unique_ptr<Queue> create_queue() override { return std::make_unique<CpuQueue>(); }

  void write(Queue&, Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) override {
    check_range(dst, offset, bytes, "write");
    if (bytes) std::memcpy(host(dst).data() + offset, src, bytes);
  }

  void read(Queue&, const Buffer& src, std::size_t offset, void* dst, std::size_t bytes) override {
    check_range(src, offset, bytes, "read");
    if (bytes) std::memcpy(dst, host(src).data() + offset, bytes);
  }

  void synchronize(Queue&) override {}

  std::unique_ptr<Event> record(Queue&) override { return std::make_unique<CpuEvent>(); }

  double elapsed_seconds(const Event& start, const Event& end) override {
    return std::chrono::duration<double>(static_cast<const CpuEvent&>(end).time -
                                         static_cast<const CpuEvent&>(start).time)
        .count();
  }

  Support supports(const kernels::KernelSpec&) const override { return Support::yes(); }

  // The CPU kernels block for the caches themselves, at run time.
  kernels::TileConfig choose_tiles(const kernels::Problem&) const override { return {}; }

  std::string compiler_id() const override { return "cpu " + info_.arch; }

  // CPU kernels are compiled into the library; what a spec "compiles" to is the plan:
  // which kernel and instruction set run it.
  std::string render(const kernels::KernelSpec& spec) const override {
    return "# anychip cpu kernel plan\nkernel " + kernels::describe(spec) + "\nisa " + info_.arch + "\n";
  }

  std::vector<std::byte> compile(const kernels::KernelSpec&, const std::string& source) override {
    const auto* p = reinterpret_cast<const std::byte*>(source.data());
    return {p, p + source.size()};
  }

  std::unique_ptr<Kernel> load(const kernels::KernelSpec& spec,
                               std::span<const std::byte> binary) override {
    std::string expected = render(spec);
    if (binary.size() != expected.size() || std::memcmp(binary.data(), expected.data(), binary.size()) != 0)
      throw Error(ErrorCode::Internal, "cpu: kernel plan does not match " + kernels::describe(spec));
    return std::make_unique<CpuKernel>(spec);
  }

  void launch(Queue&, Kernel& kernel, std::span<const BufferOperand> inputs,
              const BufferOperand& output) override {
    auto ptr = [](Buffer* b, std::size_t offset) -> std::byte* {
      return b ? host(*b).data() + offset : nullptr;
    };
    std::vector<kernels::ConstOperand> in;
    in.reserve(inputs.size());
    for (const BufferOperand& op : inputs)
      in.push_back({ptr(op.data, op.offset), ptr(op.scales, op.scales_offset)});
    kernels::cpu::run(static_cast<CpuKernel&>(kernel).spec.problem, in,
                      {ptr(output.data, output.offset), ptr(output.scales, output.scales_offset)});
  }

 private:
  DeviceInfo info_;
};

class CpuBackend final : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }
  std::vector<DeviceInfo> enumerate() override { return {cpu_info()}; }
  std::unique_ptr<Device> open(std::string_view id, const DeviceOptions&) override {
    if (id != "cpu")
      throw Error(ErrorCode::InvalidArgument, "cpu: no device '" + std::string(id) + "' (the CPU is 'cpu')");
    return std::make_unique<CpuDevice>();
  }
};

static_assert(BackendImpl<CpuBackend>);

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace anychip::backends
