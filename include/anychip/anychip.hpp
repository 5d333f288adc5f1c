// anychip: the C++ API.
//
//   auto device = anychip::Device::open("cpu");
//   anychip::ir::Graph g = anychip::ir::parse_file("block.acir");
//   anychip::Executable exe = anychip::compile(g, device);
//   anychip::Stream stream = device.create_stream();
//   std::vector<anychip::Tensor> in = {device.upload(x, stream), ...};
//   std::vector<anychip::Tensor> out = exe.allocate_outputs();
//   exe.run(stream, in, out);
//   stream.synchronize();
//   anychip::HostTensor y = out[0].download(stream);
//
// Every failure throws anychip::Error (anychip/error.hpp). Handles (Device, Buffer,
// Tensor, Stream, Event, Executable) are cheap to copy and share what they refer to;
// the underlying object lives while any handle does.
//
// Threads: calls on distinct objects may always run at once, and so may these on one
// object: on a Device, all of its calls and compile() for it (also into one kernel cache
// directory: entries are written atomically); on an ir::Graph, its const members (so
// compile() of one graph from several threads); on an Executable, graph(), device(),
// kernels(), cache_stats() and allocate_outputs(); on a Buffer or Tensor, reads (read,
// download) on distinct streams; on an Event, seconds_since(); list_devices(). One thread
// at a time: a Stream and everything enqueued on it; an Executable's run(),
// last_kernel_seconds(), last_kernel_counters() and check_last_run(), which share its
// last run and intermediate tensors (give each thread its own Executable, compiled from
// the same graph: compiles after the first hit the kernel cache); building an ir::Graph.
// A write to a Buffer or Tensor must not overlap any other use of it. Copying and dropping
// handles is safe anywhere. tests/runtime/thread_safety_test.cpp checks this on cpu,
// sim:* and opencl:* devices.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anychip/device.hpp"
#include "anychip/dtype.hpp"
#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "anychip/ir.hpp"
#include "anychip/quantize.hpp"
#include "anychip/tensor.hpp"

namespace anychip {

std::string_view version();

namespace detail {
struct DeviceImpl;
struct BufferImpl;
struct StreamImpl;
struct EventImpl;
struct ExecutableImpl;
}  // namespace detail

// Every device of every backend built in, available or not (with the reason).
std::vector<DeviceInfo> list_devices();

class Stream;
class Event;
class Buffer;
class Tensor;

class Device {
 public:
  // Opens a device by its string ("cpu", "opencl:0", ...). Throws Unavailable with the
  // reason, or InvalidArgument for a string no backend knows.
  static Device open(std::string_view id, const DeviceOptions& options = {});

  const DeviceInfo& info() const;
  Stream create_stream() const;
  // Device memory of `bytes` bytes, contents undefined.
  Buffer allocate(std::size_t bytes) const;
  // A tensor of `type` in device memory (data, and scales when block-scaled).
  Tensor allocate(const TensorType& type) const;
  // Allocates a tensor and copies `host` into it; returns once the copy is done (so
  // `host` may go away). For asynchronous copies use Buffer::write.
  Tensor upload(const HostTensor& host, Stream& stream) const;
  // Chrome trace JSON of everything run since the last call, if the device was opened
  // with DeviceOptions::trace and traces; "" otherwise.
  std::string take_trace() const;

  std::shared_ptr<detail::DeviceImpl> impl() const { return impl_; }

 private:
  explicit Device(std::shared_ptr<detail::DeviceImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::DeviceImpl> impl_;
  friend class Stream;
};

class Buffer {
 public:
  std::size_t size() const;
  // Enqueue copies between host memory and this buffer. The host memory must stay valid
  // (and, for read, unread) until the stream has passed the copy: synchronize first.
  void write(Stream& stream, const void* src, std::size_t bytes, std::size_t offset = 0) const;
  void read(Stream& stream, void* dst, std::size_t bytes, std::size_t offset = 0) const;

  std::shared_ptr<detail::BufferImpl> impl() const { return impl_; }
  explicit Buffer(std::shared_ptr<detail::BufferImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<detail::BufferImpl> impl_;
};

// A typed tensor in device memory.
class Tensor {
 public:
  Tensor(TensorType type, Buffer data, std::optional<Buffer> scales);
  const TensorType& type() const { return type_; }
  const Buffer& data() const { return data_; }
  const std::optional<Buffer>& scales() const { return scales_; }
  // Copies the tensor to the host (synchronizes the stream).
  HostTensor download(Stream& stream) const;

 private:
  TensorType type_;
  Buffer data_;
  std::optional<Buffer> scales_;
};

class Stream {
 public:
  explicit Stream(const Device& device);
  // Blocks until everything enqueued so far has finished.
  void synchronize();
  // Enqueues an event that completes when the stream reaches it.
  Event record();
  const Device& device() const { return device_; }
  std::shared_ptr<detail::StreamImpl> impl() const { return impl_; }

 private:
  Device device_;
  std::shared_ptr<detail::StreamImpl> impl_;
};

class Event {
 public:
  // Device seconds from `start` to this event; both recorded and completed.
  double seconds_since(const Event& start) const;
  explicit Event(std::shared_ptr<detail::EventImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::EventImpl> impl() const { return impl_; }

 private:
  std::shared_ptr<detail::EventImpl> impl_;
};

struct CompileOptions {
  bool use_cache = true;  // keep compiled kernels in the on-disk kernel cache
  std::string cache_dir;  // "" = $ANYCHIP_CACHE_DIR, $XDG_CACHE_HOME/anychip/kernels, ~/.cache/...
};

// One kernel of an executable.
struct KernelInfo {
  std::string label;  // "gemm_fp8 %q"
  std::string op;     // "gemm_fp8"
  std::string spec;   // the KernelSpec's canonical line
  double flops = 0;
  double min_bytes = 0;  // bytes it must move at least once
};

// One kernel of the last run compared with the float64 reference.
struct KernelCheck {
  std::string label;
  double rel_err = 0;    // ||out - ref|| / ||ref||; moe_topk: 0 for a valid top-k up to
                         // near-ties, infinity otherwise (kernels/reference: mismatch)
  double tolerance = 0;  // the bound for this op and dtype
  bool ok = false;
};

struct CacheStats {
  std::size_t hits = 0, misses = 0, corrupt = 0, write_failures = 0;
};

class Executable {
 public:
  const ir::Graph& graph() const;
  const Device& device() const;
  const std::vector<KernelInfo>& kernels() const;
  // What compile() found in and wrote to the kernel cache.
  CacheStats cache_stats() const;

  // Output tensors of the graph's output types, on the executable's device.
  std::vector<Tensor> allocate_outputs() const;

  // Enqueues one run: inputs and outputs in the graph's order, of the graph's types.
  void run(Stream& stream, std::span<const Tensor> inputs, std::span<const Tensor> outputs);

  // Device seconds of each kernel (kernels() order) in the last run; synchronizes.
  std::vector<double> last_kernel_seconds(Stream& stream) const;
  // What the device measured for each kernel of the last run beyond time (simulators:
  // "cycles", "util.<pipe>", "hbm_bytes", "l2_bytes", "bound" ...); empty maps elsewhere.
  std::vector<std::map<std::string, double>> last_kernel_counters(Stream& stream) const;

  // Compares every kernel of the last run with the float64 reference, on the very inputs
  // that kernel read (so each kernel is judged alone). Synchronizes.
  std::vector<KernelCheck> check_last_run(Stream& stream) const;

  std::shared_ptr<detail::ExecutableImpl> impl() const { return impl_; }
  explicit Executable(std::shared_ptr<detail::ExecutableImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<detail::ExecutableImpl> impl_;
};

// The kernels `device` would run for `graph`, as text: what the backend renders for each
// kernel (sim:* its tile program, cpu its plan, later CUDA C++ / OpenCL C). `format` is
// "source" or a backend's binary-ish format ("ptx", "cubin") where it has one; a format
// the device does not produce is Unsupported.
std::string emit(const ir::Graph& graph, const Device& device, std::string_view format = "source");

// The simulator's chip presets ("npu-ue8m0", "h800", ...) and a chip's description as
// JSON (a preset name or the path of a chip JSON file; validated).
std::vector<std::string> chip_presets();
std::string chip_json(std::string_view preset_or_path);

// Verifies the graph, lowers every op to a kernel for `device`, and compiles the kernels
// (through the kernel cache). Throws InvalidGraph, or Unsupported naming the op the
// device cannot run and why.
Executable compile(const ir::Graph& graph, const Device& device, const CompileOptions& options = {});

}  // namespace anychip
