// The backend interface: how the runtime talks to one kind of chip.
//
// A backend enumerates its devices; a device allocates memory, copies, runs in-order
// queues, records events, and turns a KernelSpec into a launchable kernel in three steps
// (render -> compile -> load) so that the runtime can keep the compiled binary in the
// on-disk kernel cache between them. Modelled on ggml-backend-impl.h and IREE's HAL
// device.h: every function says what it does, what it returns, whether it may fail.
//
// Errors: every function that can fail throws anychip::Error with a code and a message
// naming the device and the thing that went wrong. Nothing aborts the process.
// Threads: a Device may be used from several threads at once, except that one Queue is
// used by one thread at a time.
#pragma once

#include <concepts>
#include <map>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anychip/device.hpp"
#include "anychip/error.hpp"
#include "kernels/kernel_spec.hpp"

namespace anychip::backends {

// Device memory. Opaque to the runtime; each backend derives its own.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual std::size_t size() const = 0;
};

// An in-order stream of copies and launches on one device.
class Queue {
 public:
  virtual ~Queue() = default;
};

// A point in a queue; once the queue has passed it, it holds a device timestamp.
class Event {
 public:
  virtual ~Event() = default;
};

// A compiled and loaded kernel for one KernelSpec, ready to launch.
class Kernel {
 public:
  virtual ~Kernel() = default;
};

// One operand of a launch: a region of a buffer and, for block-scaled FP8, its scales.
struct BufferOperand {
  Buffer* data = nullptr;
  std::size_t offset = 0;
  Buffer* scales = nullptr;  // null unless the operand is block-scaled
  std::size_t scales_offset = 0;
};

// The answer to supports(): yes, or no with the reason ("f8e5m2 operands are not supported").
struct Support {
  bool ok = true;
  std::string reason;
  static Support yes() { return {}; }
  static Support no(std::string why) { return {false, std::move(why)}; }
};

class Device {
 public:
  virtual ~Device() = default;

  // Identity and capabilities; valid for the device's lifetime. Never fails.
  virtual const DeviceInfo& info() const = 0;

  // Allocates `bytes` (> 0) of device memory, contents undefined. Throws OutOfMemory.
  virtual std::unique_ptr<Buffer> allocate(std::size_t bytes) = 0;

  // Creates an in-order queue.
  virtual std::unique_ptr<Queue> create_queue() = 0;

  // Enqueues a host-to-device copy. `src` must stay valid until the queue has passed it.
  virtual void write(Queue& queue, Buffer& dst, std::size_t offset, const void* src,
                     std::size_t bytes) = 0;

  // Enqueues a device-to-host copy. `dst` is filled once the queue has passed it.
  virtual void read(Queue& queue, const Buffer& src, std::size_t offset, void* dst,
                    std::size_t bytes) = 0;

  // Blocks until everything enqueued on `queue` so far has finished.
  virtual void synchronize(Queue& queue) = 0;

  // Enqueues an event; it completes when the queue reaches it.
  virtual std::unique_ptr<Event> record(Queue& queue) = 0;

  // Device seconds from `start` to `end`, both recorded and completed (synchronize first).
  virtual double elapsed_seconds(const Event& start, const Event& end) = 0;

  // Whether this device can run `spec`, and if not why. A query, never a failing call:
  // callers use it to fall back to another device.
  virtual Support supports(const kernels::KernelSpec& spec) const = 0;

  // Tile configuration this device prefers for `problem` (the runtime puts it into the
  // KernelSpec it compiles).
  virtual kernels::TileConfig choose_tiles(const kernels::Problem& problem) const = 0;

  // Names the compiler and target ("nvrtc 13.0 sm_90a", "cpu avx512bf16"): a change here
  // must change the compiled binary's cache key.
  virtual std::string compiler_id() const = 0;

  // The kernel's source for `spec`, as `anychip emit` prints it; part of the cache key.
  virtual std::string render(const kernels::KernelSpec& spec) const = 0;

  // Optional. The kernel for `spec` in another form than its source, for `anychip emit
  // --format`: e.g. "ptx" or "cubin" from a compiling backend. Throws Unsupported for a
  // format the backend does not produce (the default: every format but "source").
  virtual std::string emit(const kernels::KernelSpec& spec, std::string_view format) {
    if (format == "source") return render(spec);
    throw Error(ErrorCode::Unsupported,
                info().id + " does not produce '" + std::string(format) + "' (it emits: source)");
  }

  // Compiles rendered source into a binary that load() accepts. The runtime caches the
  // result on disk under a key of (spec, source, compiler_id). Throws on a build failure
  // with the compiler's log in the message.
  virtual std::vector<std::byte> compile(const kernels::KernelSpec& spec,
                                         const std::string& source) = 0;

  // Loads a binary from compile() (possibly from an earlier process) for launching.
  // Throws if the binary is unusable; the runtime then drops the cache entry and recompiles.
  virtual std::unique_ptr<Kernel> load(const kernels::KernelSpec& spec,
                                       std::span<const std::byte> binary) = 0;

  // Enqueues one launch. Inputs are in the op's operand order.
  virtual void launch(Queue& queue, Kernel& kernel, std::span<const BufferOperand> inputs,
                      const BufferOperand& output) = 0;

  // Optional. What the device measured between two completed events beyond time, as
  // named counters ("cycles", "util.matrix", "hbm_bytes", "bound", ...). Empty by default.
  virtual std::map<std::string, double> counters(const Event& start, const Event& end) {
    return {};
  }

  // Optional. Chrome trace JSON (Perfetto opens it) of everything launched since the last
  // call, when the device was opened with tracing; empty when the device does not trace.
  virtual std::string take_trace() { return {}; }
};

// One kind of chip ("cpu", "opencl", ...).
class Backend {
 public:
  virtual ~Backend() = default;

  // The prefix of this backend's device strings.
  virtual std::string_view name() const = 0;

  // Every device this backend knows of, available or not (with the reason). Never throws:
  // a missing driver is an unavailable device, not an error.
  virtual std::vector<DeviceInfo> enumerate() = 0;

  // Opens one device by its id ("cpu", "opencl:1"). Throws Unavailable, with the reason.
  // Options a backend does not support are ignored (DeviceOptions says which apply where).
  virtual std::unique_ptr<Device> open(std::string_view id, const DeviceOptions& options) = 0;
};

// A backend is a Backend with a default constructor: the registry builds one of each.
template <typename T>
concept BackendImpl = std::derived_from<T, Backend> && std::default_initializable<T>;

// Every backend built into this library, in the order `anychip devices` lists them.
std::span<Backend* const> all_backends();

}  // namespace anychip::backends
