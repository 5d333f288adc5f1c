// One Level Zero device: memory, queues, events, modules and launches.
//
// Queues. A Queue is one immediate command list (zeCommandListCreateImmediate, from a
// command queue descriptor on the device's compute group, asynchronous). Commands on a
// command list may overlap unless told otherwise, so each command waits for the previous
// one's event: a chain that makes the queue in order, as the backend interface requires.
// synchronize() waits on the last event of the chain.
//
// Events. Every command signals its own event, from host-visible pools created with
// ZE_EVENT_POOL_FLAG_KERNEL_TIMESTAMP, so each command has start and end timestamps in
// the device's clock. An event lives while the queue still needs it (commands in flight)
// or a record() refers to it. record() enqueues nothing: it remembers the last command
// before it, and the queue later tells it the first command after it (as the OpenCL
// backend's markers do). elapsed_seconds(start, end) is the device time from the start of
// the first command after `start` to the end of the last command before `end`: the work
// between the two records, not the time the device waited for the host. With no command
// in between it is 0. Across two queues it is the time between the ends of the commands
// before each record.
//
// Copies. Device memory comes from zeMemAllocDevice. write() copies the source into a
// host allocation (zeMemAllocHost) that the queue frees once the copy has completed, so
// the caller's memory may go away at once. read() copies into a host allocation, and into
// the caller's memory once the queue has passed it (at the latest in synchronize()): the
// core API does not promise that a device copies to or from memory it did not allocate.
//
// Modules. compile() builds the spec's SPIR-V variant (zeModuleCreate with
// ZE_MODULE_FORMAT_IL_SPIRV; on failure the error carries the build log) and returns the
// driver's native binary (zeModuleGetNativeBinary) behind a small header, for the
// runtime's kernel cache; load() creates the module from it (ZE_MODULE_FORMAT_NATIVE), or
// from SPIR-V when the driver gave no native binary. The module compile() just built is
// kept for the load() that follows it.
#include "backends/level_zero/level_zero_device.hpp"

#if ANYCHIP_HAVE_LEVEL_ZERO_HEADERS

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "anychip/error.hpp"
#include "backends/level_zero/spirv_modules.hpp"

namespace anychip::backends::level_zero {
namespace {

namespace klz = kernels::level_zero;

// Every payload compile() returns starts with this, then one byte: the module format.
constexpr char kBinaryMagic[16] = {'a', 'n', 'y', 'c', 'h', 'i', 'p', '-', 'z', 'e', '-', 'b', 'i', 'n', '1', '\0'};
constexpr std::uint32_t kEventsPerPool = 256;
constexpr std::uint64_t kForever = std::numeric_limits<std::uint64_t>::max();

const Api* g_ze = nullptr;  // set by open_device(); the loader is never unloaded

// The context of an open device; shared by what may outlive the Device object (events).
struct Context {
  ze_context_handle_t handle = nullptr;
  ze_device_handle_t device = nullptr;
  ~Context() {
    if (handle) g_ze->zeContextDestroy(handle);
  }
};

// One event pool and which of its slots are taken.
struct EventPool {
  std::shared_ptr<Context> context;
  ze_event_pool_handle_t handle = nullptr;
  std::mutex mutex;
  std::vector<std::uint32_t> free_slots;
  ~EventPool() {
    if (handle) g_ze->zeEventPoolDestroy(handle);
  }
};

// One command's completion event; destroyed (and its slot freed) with the last reference.
struct ZeEvent {
  ze_event_handle_t handle = nullptr;
  std::shared_ptr<EventPool> pool;
  std::uint32_t slot = 0;
  ~ZeEvent() {
    g_ze->zeEventDestroy(handle);
    std::lock_guard lock(pool->mutex);
    pool->free_slots.push_back(slot);
  }
  bool done() const { return g_ze->zeEventQueryStatus(handle) == ZE_RESULT_SUCCESS; }
};
using EventRef = std::shared_ptr<ZeEvent>;

struct HostMemory {
  std::shared_ptr<Context> context;
  void* ptr = nullptr;
  HostMemory(std::shared_ptr<Context> c, void* p) : context(std::move(c)), ptr(p) {}
  HostMemory(HostMemory&& o) noexcept : context(std::move(o.context)), ptr(std::exchange(o.ptr, nullptr)) {}
  HostMemory& operator=(HostMemory&& o) noexcept {
    std::swap(context, o.context);
    std::swap(ptr, o.ptr);
    return *this;
  }
  ~HostMemory() {
    if (ptr) g_ze->zeMemFree(context->handle, ptr);
  }
};

class ZeBuffer final : public Buffer {
 public:
  ZeBuffer(std::shared_ptr<Context> context, void* ptr, std::size_t size)
      : context_(std::move(context)), ptr_(ptr), size_(size) {}
  ~ZeBuffer() override { g_ze->zeMemFree(context_->handle, ptr_); }
  std::size_t size() const override { return size_; }
  void* ptr() const { return ptr_; }

 private:
  std::shared_ptr<Context> context_;
  void* ptr_;
  std::size_t size_;
};

// One record(): the commands on either side of it (see the top).
struct Mark {
  const void* queue = nullptr;
  std::uint64_t seq = 0;  // commands enqueued on the queue before the mark
  EventRef last_before;   // null when nothing was enqueued before
  EventRef first_after;   // set when the next command is enqueued
};

class ZeMarkEvent final : public Event {
 public:
  explicit ZeMarkEvent(std::shared_ptr<Mark> m) : mark(std::move(m)) {}
  std::shared_ptr<Mark> mark;
};

class ZeQueue final : public Queue {
 public:
  ZeQueue(std::shared_ptr<Context> context, ze_command_list_handle_t list) : context(std::move(context)), list(list) {}
  ~ZeQueue() override {
    if (last) g_ze->zeEventHostSynchronize(last->handle, kForever);
    finish_copies(true);
    inflight.clear();
    g_ze->zeCommandListDestroy(list);
  }

  // A fresh event for the next command. Throws on a driver failure.
  EventRef new_event(const std::string& device_id) {
    for (const auto& pool : pools) {
      std::unique_lock lock(pool->mutex);
      if (pool->free_slots.empty()) continue;
      const std::uint32_t slot = pool->free_slots.back();
      pool->free_slots.pop_back();
      lock.unlock();
      return create_event(pool, slot, device_id);
    }
    auto pool = std::make_shared<EventPool>();
    pool->context = context;
    ze_event_pool_desc_t desc{};
    desc.stype = ZE_STRUCTURE_TYPE_EVENT_POOL_DESC;
    desc.flags = ZE_EVENT_POOL_FLAG_HOST_VISIBLE | ZE_EVENT_POOL_FLAG_KERNEL_TIMESTAMP;
    desc.count = kEventsPerPool;
    ze_device_handle_t device = context->device;
    if (const ze_result_t r = g_ze->zeEventPoolCreate(context->handle, &desc, 1, &device, &pool->handle);
        r != ZE_RESULT_SUCCESS)
      throw Error(ErrorCode::Internal, device_id + ": creating an event pool failed: " + result_name(r));
    for (std::uint32_t i = kEventsPerPool; i-- > 1;) pool->free_slots.push_back(i);
    pools.push_back(pool);
    return create_event(pool, 0, device_id);
  }

  // The previous command's event, for the next command to wait on (null: none).
  ze_event_handle_t wait_handle() const { return last ? last->handle : nullptr; }

  // Takes note of a command just appended, which signals `ev`.
  void enqueued(EventRef ev) {
    ++seq;
    for (const auto& w : awaiting)
      if (auto m = w.lock()) m->first_after = ev;
    awaiting.clear();
    last = ev;
    inflight.push_back(std::move(ev));
    // The chain completes in order. An event can go once the command that waits on it
    // (the next one) is done too: its slot may then be reused without a pending wait
    // reading it.
    while (inflight.size() > 1 && inflight[1]->done()) inflight.pop_front();
    finish_copies(false);
  }

  // Frees staging of completed writes and completes reads that are done (all after a wait).
  void finish_copies(bool all) {
    std::erase_if(writes, [&](const Staged& s) { return all || s.done->done(); });
    std::erase_if(reads, [&](const Readback& r) {
      if (!all && !r.done->done()) return false;
      std::memcpy(r.dst, r.host.ptr, r.bytes);
      return true;
    });
  }

  struct Staged {
    HostMemory host;
    EventRef done;
  };
  struct Readback {
    HostMemory host;
    void* dst;
    std::size_t bytes;
    EventRef done;
  };

  std::shared_ptr<Context> context;
  ze_command_list_handle_t list;
  std::vector<std::shared_ptr<EventPool>> pools;
  EventRef last;                   // the last command's event
  std::deque<EventRef> inflight;   // events of commands that may not have completed
  std::uint64_t seq = 0;
  std::vector<std::weak_ptr<Mark>> awaiting;  // marks waiting for their first_after
  std::vector<Staged> writes;
  std::vector<Readback> reads;

 private:
  EventRef create_event(const std::shared_ptr<EventPool>& pool, std::uint32_t slot, const std::string& device_id) {
    ze_event_desc_t desc{};
    desc.stype = ZE_STRUCTURE_TYPE_EVENT_DESC;
    desc.index = slot;
    desc.signal = ZE_EVENT_SCOPE_FLAG_HOST;
    desc.wait = ZE_EVENT_SCOPE_FLAG_HOST;
    ze_event_handle_t handle = nullptr;
    if (const ze_result_t r = g_ze->zeEventCreate(pool->handle, &desc, &handle); r != ZE_RESULT_SUCCESS) {
      std::lock_guard lock(pool->mutex);
      pool->free_slots.push_back(slot);
      throw Error(ErrorCode::Internal, device_id + ": creating an event failed: " + result_name(r));
    }
    auto ev = std::make_shared<ZeEvent>();
    ev->handle = handle;
    ev->pool = pool;
    ev->slot = slot;
    return ev;
  }
};

class ZeKernel final : public Kernel {
 public:
  ZeKernel(ze_module_handle_t m, ze_kernel_handle_t k, klz::Launch l) : module(m), kernel(k), launch(std::move(l)) {}
  ~ZeKernel() override {
    g_ze->zeKernelDestroy(kernel);
    g_ze->zeModuleDestroy(module);
  }
  ze_module_handle_t module;
  ze_kernel_handle_t kernel;
  klz::Launch launch;
  std::mutex mutex;  // setting arguments + appending must not interleave across threads
};

ZeBuffer& ze_buffer(Buffer& b) { return static_cast<ZeBuffer&>(b); }
const ZeBuffer& ze_buffer(const Buffer& b) { return static_cast<const ZeBuffer&>(b); }
ZeQueue& ze_queue(Queue& q) { return static_cast<ZeQueue&>(q); }

bool is_oom(ze_result_t r) {
  return r == ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY || r == ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
}

class ZeDevice final : public Device {
 public:
  ZeDevice(const DeviceEntry& entry, std::shared_ptr<Context> context)
      : entry_(entry), context_(std::move(context)) {
    if (entry_.target.correctly_rounded_divide) build_flags_ = "-cl-fp32-correctly-rounded-divide-sqrt";
    compiler_id_ = "level_zero " + entry_.info.name + "; " + entry_.info.arch + "; driver " +
                   std::to_string(entry_.driver_version) + "; modules: " + std::string(spirv_build_info()) +
                   "; build flags '" + build_flags_ + "'";
  }

  ~ZeDevice() override {
    if (recent_.module) g_ze->zeModuleDestroy(recent_.module);
  }

  const DeviceInfo& info() const override { return entry_.info; }

  std::unique_ptr<Buffer> allocate(std::size_t bytes) override {
    ze_device_mem_alloc_desc_t desc{};
    desc.stype = ZE_STRUCTURE_TYPE_DEVICE_MEM_ALLOC_DESC;
    void* ptr = nullptr;
    const ze_result_t r = g_ze->zeMemAllocDevice(context_->handle, &desc, bytes == 0 ? 1 : bytes, 64, entry_.device, &ptr);
    if (r != ZE_RESULT_SUCCESS || !ptr)
      throw Error(is_oom(r) || r == ZE_RESULT_ERROR_UNSUPPORTED_SIZE ? ErrorCode::OutOfMemory : ErrorCode::Internal,
                  id() + ": cannot allocate " + std::to_string(bytes) + " bytes: " + result_name(r));
    return std::make_unique<ZeBuffer>(context_, ptr, bytes);
  }

  std::unique_ptr<Queue> create_queue() override {
    ze_command_queue_desc_t desc{};
    desc.stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_DESC;
    desc.ordinal = entry_.compute_ordinal;
    desc.index = 0;
    desc.mode = ZE_COMMAND_QUEUE_MODE_ASYNCHRONOUS;
    desc.priority = ZE_COMMAND_QUEUE_PRIORITY_NORMAL;
    ze_command_list_handle_t list = nullptr;
    const ze_result_t r = g_ze->zeCommandListCreateImmediate(context_->handle, entry_.device, &desc, &list);
    if (r != ZE_RESULT_SUCCESS) fail("creating an immediate command list", r);
    return std::make_unique<ZeQueue>(context_, list);
  }

  void write(Queue& queue, Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) override {
    check_range(dst, offset, bytes, "write");
    if (bytes == 0) return;
    ZeQueue& q = ze_queue(queue);
    HostMemory host = host_alloc(bytes);
    std::memcpy(host.ptr, src, bytes);
    EventRef ev = q.new_event(id());
    ze_event_handle_t wait = q.wait_handle();
    const ze_result_t r = g_ze->zeCommandListAppendMemoryCopy(q.list, static_cast<char*>(ze_buffer(dst).ptr()) + offset,
                                                              host.ptr, bytes, ev->handle, wait ? 1 : 0,
                                                              wait ? &wait : nullptr);
    if (r != ZE_RESULT_SUCCESS) fail("appending a write of " + std::to_string(bytes) + " bytes", r);
    q.writes.push_back({std::move(host), ev});
    q.enqueued(std::move(ev));
  }

  void read(Queue& queue, const Buffer& src, std::size_t offset, void* dst, std::size_t bytes) override {
    check_range(src, offset, bytes, "read");
    if (bytes == 0) return;
    ZeQueue& q = ze_queue(queue);
    HostMemory host = host_alloc(bytes);
    EventRef ev = q.new_event(id());
    ze_event_handle_t wait = q.wait_handle();
    const ze_result_t r = g_ze->zeCommandListAppendMemoryCopy(
        q.list, host.ptr, static_cast<const char*>(ze_buffer(src).ptr()) + offset, bytes, ev->handle, wait ? 1 : 0,
        wait ? &wait : nullptr);
    if (r != ZE_RESULT_SUCCESS) fail("appending a read of " + std::to_string(bytes) + " bytes", r);
    q.reads.push_back({std::move(host), dst, bytes, ev});
    q.enqueued(std::move(ev));
  }

  void synchronize(Queue& queue) override {
    ZeQueue& q = ze_queue(queue);
    if (q.last)
      if (const ze_result_t r = g_ze->zeEventHostSynchronize(q.last->handle, kForever); r != ZE_RESULT_SUCCESS)
        fail("waiting for the queue (zeEventHostSynchronize)", r);
    q.finish_copies(true);
    q.inflight.clear();
  }

  std::unique_ptr<Event> record(Queue& queue) override {
    ZeQueue& q = ze_queue(queue);
    auto m = std::make_shared<Mark>();
    m->queue = &q;
    m->seq = q.seq;
    m->last_before = q.last;
    q.awaiting.push_back(m);
    return std::make_unique<ZeMarkEvent>(std::move(m));
  }

  double elapsed_seconds(const Event& start, const Event& end) override {
    const Mark& s = *static_cast<const ZeMarkEvent&>(start).mark;
    const Mark& e = *static_cast<const ZeMarkEvent&>(end).mark;
    for (const EventRef& ev : {s.last_before, e.last_before})
      if (ev)
        if (const ze_result_t r = g_ze->zeEventHostSynchronize(ev->handle, kForever); r != ZE_RESULT_SUCCESS)
          fail("waiting for an event", r);
    std::uint64_t t0 = 0, t1 = 0;
    if (s.queue != e.queue) {  // different queues: the ends of the work before each record
      if (!e.last_before || (!s.last_before && !s.first_after)) return 0.0;
      t0 = s.last_before ? timestamp(*s.last_before).global.kernelEnd : timestamp(*s.first_after).global.kernelStart;
      t1 = timestamp(*e.last_before).global.kernelEnd;
    } else {
      if (e.seq <= s.seq || !s.first_after || !e.last_before) return 0.0;
      t0 = timestamp(*s.first_after).global.kernelStart;
      t1 = timestamp(*e.last_before).global.kernelEnd;
    }
    const std::uint64_t ticks = (t1 - t0) & entry_.timestamp_mask;  // the counter may wrap
    return static_cast<double>(ticks) * entry_.ns_per_tick * 1e-9;
  }

  Support supports(const kernels::KernelSpec& spec) const override {
    std::string why = klz::check(spec, entry_.target);
    return why.empty() ? Support::yes() : Support::no(std::move(why));
  }

  kernels::TileConfig choose_tiles(const kernels::Problem& problem) const override {
    return klz::choose_tiles(problem, entry_.target);
  }

  std::string compiler_id() const override { return compiler_id_; }

  std::string render(const kernels::KernelSpec& spec) const override {
    const SpirvModule& m = module_for(spec);
    // The module's checksum, so that the kernel cache's key follows the SPIR-V.
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char b : m.bytes) h = (h ^ b) * 1099511628211ull;
    char line[96];
    std::snprintf(line, sizeof line, "// SPIR-V: %zu bytes, FNV-1a %016llx\n", m.bytes.size(),
                  static_cast<unsigned long long>(h));
    return line + klz::render(spec, entry_.target);
  }

  std::string emit(const kernels::KernelSpec& spec, std::string_view format) override {
    if (format == "source") return render(spec);
    if (format == "spirv") {
      const SpirvModule& m = module_for(spec);
      return std::string(reinterpret_cast<const char*>(m.bytes.data()), m.bytes.size());
    }
    throw Error(ErrorCode::Unsupported, id() + " does not produce '" + std::string(format) + "' (it emits: source, spirv)");
  }

  std::vector<std::byte> compile(const kernels::KernelSpec& spec, const std::string&) override {
    // The source is the variant's, which was compiled at build time: build its SPIR-V.
    const SpirvModule& m = module_for(spec);
    ze_module_handle_t module = build(ZE_MODULE_FORMAT_IL_SPIRV, m.bytes.data(), m.bytes.size(), spec, "building");
    std::size_t size = 0;
    ze_result_t r = g_ze->zeModuleGetNativeBinary(module, &size, nullptr);
    std::vector<std::byte> payload(sizeof kBinaryMagic + 1);
    std::memcpy(payload.data(), kBinaryMagic, sizeof kBinaryMagic);
    if (r == ZE_RESULT_SUCCESS && size > 0) {
      payload.back() = std::byte{ZE_MODULE_FORMAT_NATIVE};
      payload.resize(payload.size() + size);
      r = g_ze->zeModuleGetNativeBinary(module, &size, reinterpret_cast<std::uint8_t*>(payload.data() + sizeof kBinaryMagic + 1));
    }
    if (r != ZE_RESULT_SUCCESS || size == 0) {  // no native binary: cache the SPIR-V itself
      payload.resize(sizeof kBinaryMagic + 1);
      payload.back() = std::byte{ZE_MODULE_FORMAT_IL_SPIRV};
      const auto* b = reinterpret_cast<const std::byte*>(m.bytes.data());
      payload.insert(payload.end(), b, b + m.bytes.size());
    }
    std::lock_guard lock(recent_mutex_);
    if (recent_.module) g_ze->zeModuleDestroy(recent_.module);
    recent_ = {payload, module};
    return payload;
  }

  std::unique_ptr<Kernel> load(const kernels::KernelSpec& spec, std::span<const std::byte> payload) override {
    const std::string what = kernels::describe(spec);
    const std::size_t header = sizeof kBinaryMagic + 1;
    if (payload.size() <= header || std::memcmp(payload.data(), kBinaryMagic, sizeof kBinaryMagic) != 0)
      throw Error(ErrorCode::Internal, id() + ": not an anychip Level Zero module (" + what + ")");
    const auto format = static_cast<ze_module_format_t>(payload[sizeof kBinaryMagic]);
    if (format != ZE_MODULE_FORMAT_NATIVE && format != ZE_MODULE_FORMAT_IL_SPIRV)
      throw Error(ErrorCode::Internal, id() + ": unknown module format in the binary of " + what);
    ze_module_handle_t module = take_recent(payload);
    if (!module)
      module = build(format, reinterpret_cast<const unsigned char*>(payload.data() + header), payload.size() - header,
                     spec, "loading the module of");

    klz::Launch launch = klz::launch(spec, entry_.target);
    ze_kernel_desc_t desc{};
    desc.stype = ZE_STRUCTURE_TYPE_KERNEL_DESC;
    desc.pKernelName = launch.kernel.c_str();
    ze_kernel_handle_t kernel = nullptr;
    if (const ze_result_t r = g_ze->zeKernelCreate(module, &desc, &kernel); r != ZE_RESULT_SUCCESS) {
      g_ze->zeModuleDestroy(module);
      throw Error(ErrorCode::Internal,
                  id() + ": no kernel '" + launch.kernel + "' in the module of " + what + ": " + result_name(r));
    }
    auto k = std::make_unique<ZeKernel>(module, kernel, launch);
    const std::uint32_t* gs = launch.group_size;
    if (const ze_result_t r = g_ze->zeKernelSetGroupSize(kernel, gs[0], gs[1], gs[2]); r != ZE_RESULT_SUCCESS)
      throw Error(ErrorCode::Unsupported, id() + " cannot run " + what + ": work-groups of " + std::to_string(gs[0]) +
                                              "x" + std::to_string(gs[1]) + "x" + std::to_string(gs[2]) + ": " +
                                              result_name(r));
    // The kernel's own needs can exceed the device's (shared local memory): refuse now
    // rather than fail at launch.
    ze_kernel_properties_t props{};
    props.stype = ZE_STRUCTURE_TYPE_KERNEL_PROPERTIES;
    if (g_ze->zeKernelGetProperties(kernel, &props) == ZE_RESULT_SUCCESS &&
        props.localMemSize > entry_.target.local_mem_bytes)
      throw Error(ErrorCode::Unsupported, id() + " cannot run " + what + ": it needs " +
                                              std::to_string(props.localMemSize) + " bytes of shared local memory, the device has " +
                                              std::to_string(entry_.target.local_mem_bytes));
    return k;
  }

  void launch(Queue& queue, Kernel& kernel, std::span<const BufferOperand> inputs,
              const BufferOperand& output) override {
    ZeKernel& k = static_cast<ZeKernel&>(kernel);
    const klz::Launch& l = k.launch;
    if (inputs.size() != l.scaled_inputs.size())
      throw Error(ErrorCode::InvalidArgument, id() + ": kernel '" + l.kernel + "' takes " +
                                                  std::to_string(l.scaled_inputs.size()) + " inputs, got " +
                                                  std::to_string(inputs.size()));
    for (std::uint32_t c : l.group_count)
      if (c == 0) return;  // an empty problem: nothing to compute

    std::lock_guard lock(k.mutex);
    std::uint32_t index = 0;
    auto set = [&](std::size_t size, const void* value, const char* what) {
      if (const ze_result_t r = g_ze->zeKernelSetArgumentValue(k.kernel, index++, size, value); r != ZE_RESULT_SUCCESS)
        fail("setting " + std::string(what) + " (argument " + std::to_string(index - 1) + ") of kernel '" + l.kernel + "'", r);
    };
    auto buffer = [&](Buffer* b, std::size_t offset, const char* what) {
      if (!b) throw Error(ErrorCode::InvalidArgument, id() + ": kernel '" + l.kernel + "': " + what + " buffer is missing");
      void* ptr = ze_buffer(*b).ptr();
      const std::uint64_t off = offset;
      set(sizeof ptr, &ptr, what);
      set(sizeof off, &off, what);
    };
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      buffer(inputs[i].data, inputs[i].offset, "an input's data");
      if (l.scaled_inputs[i]) buffer(inputs[i].scales, inputs[i].scales_offset, "an input's scales");
    }
    buffer(output.data, output.offset, "the output's data");
    if (l.scaled_output) buffer(output.scales, output.scales_offset, "the output's scales");
    for (const klz::ShapeArg& a : l.shape_args) {
      const std::int32_t i32 = static_cast<std::int32_t>(a.i);
      const std::uint64_t u64 = static_cast<std::uint64_t>(a.i);
      const void* value = a.type == klz::ShapeArg::Type::i32   ? static_cast<const void*>(&i32)
                          : a.type == klz::ShapeArg::Type::u64 ? static_cast<const void*>(&u64)
                                                               : static_cast<const void*>(&a.f);
      set(a.size(), value, "a shape");
    }

    ZeQueue& q = ze_queue(queue);
    EventRef ev = q.new_event(id());
    ze_event_handle_t wait = q.wait_handle();
    const ze_group_count_t groups{l.group_count[0], l.group_count[1], l.group_count[2]};
    const ze_result_t r = g_ze->zeCommandListAppendLaunchKernel(q.list, k.kernel, &groups, ev->handle, wait ? 1 : 0,
                                                                wait ? &wait : nullptr);
    if (r != ZE_RESULT_SUCCESS) fail("launching kernel '" + l.kernel + "'", r);
    q.enqueued(std::move(ev));
  }

 private:
  const std::string& id() const { return entry_.info.id; }

  [[noreturn]] void fail(const std::string& what, ze_result_t r) const {
    throw Error(is_oom(r) ? ErrorCode::OutOfMemory : ErrorCode::Internal, id() + ": " + what + " failed: " + result_name(r));
  }

  void check_range(const Buffer& b, std::size_t offset, std::size_t bytes, const char* what) const {
    if (offset > b.size() || bytes > b.size() - offset)
      throw Error(ErrorCode::InvalidArgument, id() + ": " + what + " of " + std::to_string(bytes) + " bytes at offset " +
                                                  std::to_string(offset) + " overruns a buffer of " +
                                                  std::to_string(b.size()) + " bytes");
  }

  HostMemory host_alloc(std::size_t bytes) const {
    ze_host_mem_alloc_desc_t desc{};
    desc.stype = ZE_STRUCTURE_TYPE_HOST_MEM_ALLOC_DESC;
    void* ptr = nullptr;
    const ze_result_t r = g_ze->zeMemAllocHost(context_->handle, &desc, bytes, 64, &ptr);
    if (r != ZE_RESULT_SUCCESS || !ptr) fail("allocating " + std::to_string(bytes) + " bytes of host memory", r);
    return HostMemory(context_, ptr);
  }

  // The embedded module of spec's variant. Throws Unsupported when no variant runs it.
  const SpirvModule& module_for(const kernels::KernelSpec& spec) const {
    std::string why;
    const klz::Variant* v = klz::find_variant(spec, entry_.target, &why);
    if (!v) throw Error(ErrorCode::Unsupported, id() + " cannot run " + kernels::describe(spec) + ": " + why);
    const SpirvModule* m = find_spirv_module(v->name);
    if (!m)
      throw Error(ErrorCode::Internal, id() + ": the SPIR-V module " + std::string(v->name) + " is not in this build (" +
                                           std::string(spirv_build_info()) + ")");
    return *m;
  }

  // Creates a module; on failure throws with the driver's build log.
  ze_module_handle_t build(ze_module_format_t format, const unsigned char* bytes, std::size_t size,
                           const kernels::KernelSpec& spec, const char* doing) const {
    ze_module_desc_t desc{};
    desc.stype = ZE_STRUCTURE_TYPE_MODULE_DESC;
    desc.format = format;
    desc.inputSize = size;
    desc.pInputModule = bytes;
    desc.pBuildFlags = build_flags_.c_str();
    ze_module_handle_t module = nullptr;
    ze_module_build_log_handle_t log = nullptr;
    const ze_result_t r = g_ze->zeModuleCreate(context_->handle, entry_.device, &desc, &module, &log);
    std::string text;
    if (log) {
      std::size_t n = 0;
      if (g_ze->zeModuleBuildLogGetString(log, &n, nullptr) == ZE_RESULT_SUCCESS && n > 0) {
        text.resize(n);
        g_ze->zeModuleBuildLogGetString(log, &n, text.data());
        while (!text.empty() && (text.back() == '\0' || text.back() == '\n')) text.pop_back();
      }
      g_ze->zeModuleBuildLogDestroy(log);
    }
    if (r == ZE_RESULT_SUCCESS && module) return module;
    if (module) g_ze->zeModuleDestroy(module);
    throw Error(ErrorCode::Internal,
                id() + ": " + doing + " " + kernels::describe(spec) + " (" +
                    (format == ZE_MODULE_FORMAT_NATIVE ? "native binary" : "SPIR-V") + ") failed: " + result_name(r) +
                    "; build log:\n" + (text.empty() ? "(empty)" : text));
  }

  // The module compile() built for exactly this payload, if it is the latest one.
  ze_module_handle_t take_recent(std::span<const std::byte> payload) {
    std::lock_guard lock(recent_mutex_);
    if (!recent_.module || recent_.payload.size() != payload.size() ||
        std::memcmp(recent_.payload.data(), payload.data(), payload.size()) != 0)
      return nullptr;
    ze_module_handle_t m = recent_.module;
    recent_ = {};
    return m;
  }

  ze_kernel_timestamp_result_t timestamp(const ZeEvent& ev) const {
    ze_kernel_timestamp_result_t t{};
    if (const ze_result_t r = g_ze->zeEventQueryKernelTimestamp(ev.handle, &t); r != ZE_RESULT_SUCCESS)
      fail("reading a command's timestamps (was the queue synchronized?)", r);
    return t;
  }

  DeviceEntry entry_;
  std::shared_ptr<Context> context_;
  std::string build_flags_, compiler_id_;
  struct Recent {
    std::vector<std::byte> payload;
    ze_module_handle_t module = nullptr;
  };
  std::mutex recent_mutex_;
  Recent recent_;
};

}  // namespace

std::unique_ptr<Device> open_device(const Api& ze, const DeviceEntry& entry) {
  g_ze = &ze;
  auto context = std::make_shared<Context>();
  context->device = entry.device;
  ze_context_desc_t desc{};
  desc.stype = ZE_STRUCTURE_TYPE_CONTEXT_DESC;
  if (const ze_result_t r = ze.zeContextCreate(entry.driver, &desc, &context->handle); r != ZE_RESULT_SUCCESS)
    throw Error(ErrorCode::Unavailable,
                "device " + entry.info.id + " is unavailable: creating a context failed: " + result_name(r));
  return std::make_unique<ZeDevice>(entry, std::move(context));
}

}  // namespace anychip::backends::level_zero

#endif  // ANYCHIP_HAVE_LEVEL_ZERO_HEADERS
