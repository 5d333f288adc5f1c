// One OpenCL device: buffers, in-order profiling queues, events, programs and launches.
//
// Timing. record() enqueues a marker (clEnqueueMarkerWithWaitList) and remembers the last
// command enqueued before it; the queue later tells it the first command enqueued after
// it. elapsed_seconds(start, end) is then the device time from the start of the first
// command after `start` to the end of the last command before `end`, from the commands'
// profiling timestamps: the time of the work between the two records, not counting the
// time the device waited for the host to enqueue it. With no command in between it is 0.
//
// Copies. write() copies the source into a staging allocation the queue owns until the
// copy completes, and enqueues a non-blocking write from it: the caller's memory may go
// away at once (Device::upload from a temporary does just that). read() is non-blocking;
// the destination is filled once the queue has passed it.
//
// Programs. compile() builds the rendered source and returns the driver's program binary
// (CL_PROGRAM_BINARIES) behind a small header, for the runtime's kernel cache; load()
// rebuilds a program from such a binary (clCreateProgramWithBinary) and throws if the
// driver rejects it, so the runtime rebuilds from source. The program compile() just
// built is kept for the load() that follows it, so a cache miss builds once.
#include "backends/opencl/opencl_device.hpp"

#if ANYCHIP_HAVE_OPENCL_HEADERS

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "anychip/error.hpp"

namespace anychip::backends::opencl {
namespace {

namespace kcl = kernels::opencl;

// Every payload compile() returns starts with this.
constexpr char kBinaryMagic[16] = {'a', 'n', 'y', 'c', 'h', 'i', 'p', '-', 'o', 'c', 'l', '-', 'b', 'i', 'n', '1'};

const Api* g_cl = nullptr;  // set by open_device(); the loader is never unloaded

void release_event(cl_event& e) {
  if (e) g_cl->clReleaseEvent(e);
  e = nullptr;
}

class ClBuffer final : public Buffer {
 public:
  ClBuffer(cl_mem mem, std::size_t size) : mem_(mem), size_(size) {}
  ~ClBuffer() override { g_cl->clReleaseMemObject(mem_); }
  std::size_t size() const override { return size_; }
  cl_mem mem() const { return mem_; }

 private:
  cl_mem mem_;
  std::size_t size_;
};

// One record(): its marker, and the commands on either side of it (see the top).
struct Mark {
  const void* queue = nullptr;
  cl_event marker = nullptr;
  cl_event last_before = nullptr;  // retained; null when nothing was enqueued before
  cl_event first_after = nullptr;  // retained; set when the next command is enqueued
  std::uint64_t seq = 0;           // commands enqueued on the queue before the mark
  ~Mark() {
    release_event(marker);
    release_event(last_before);
    release_event(first_after);
  }
};

class ClEvent final : public Event {
 public:
  explicit ClEvent(std::shared_ptr<Mark> m) : mark(std::move(m)) {}
  std::shared_ptr<Mark> mark;
};

class ClQueue final : public Queue {
 public:
  explicit ClQueue(cl_command_queue q) : queue(q) {}
  ~ClQueue() override {
    g_cl->clFinish(queue);
    release_staging(true);
    release_event(last);
    g_cl->clReleaseCommandQueue(queue);
  }

  // Takes ownership of `ev`, the event of a command just enqueued.
  void enqueued(cl_event ev) {
    ++seq;
    for (const auto& w : awaiting)
      if (auto m = w.lock()) {
        g_cl->clRetainEvent(ev);
        m->first_after = ev;
      }
    awaiting.clear();
    release_event(last);
    last = ev;
  }

  // Frees staging copies whose write has completed (all of them after a clFinish).
  void release_staging(bool all) {
    std::erase_if(staging, [&](Staging& s) {
      cl_int status = CL_COMPLETE;
      if (!all) g_cl->clGetEventInfo(s.done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, nullptr);
      if (status > CL_COMPLETE) return false;  // still queued, submitted or running
      release_event(s.done);
      return true;
    });
  }

  struct Staging {
    std::unique_ptr<std::byte[]> bytes;
    cl_event done = nullptr;
  };

  cl_command_queue queue;
  cl_event last = nullptr;  // the last command enqueued (retained)
  std::uint64_t seq = 0;
  std::vector<std::weak_ptr<Mark>> awaiting;  // marks waiting for their first_after
  std::vector<Staging> staging;
};

class ClKernel final : public Kernel {
 public:
  ClKernel(cl_program p, cl_kernel k, kcl::Launch l) : program(p), kernel(k), launch(std::move(l)) {}
  ~ClKernel() override {
    g_cl->clReleaseKernel(kernel);
    g_cl->clReleaseProgram(program);
  }
  cl_program program;
  cl_kernel kernel;
  kcl::Launch launch;
  std::mutex mutex;  // clSetKernelArg + enqueue must not interleave across threads
};

ClBuffer& cl_buffer(Buffer& b) { return static_cast<ClBuffer&>(b); }
const ClBuffer& cl_buffer(const Buffer& b) { return static_cast<const ClBuffer&>(b); }
ClQueue& cl_queue(Queue& q) { return static_cast<ClQueue&>(q); }

cl_ulong profile(const cl_event e, cl_profiling_info what, const std::string& id) {
  cl_ulong t = 0;
  const cl_int err = g_cl->clGetEventProfilingInfo(e, what, sizeof t, &t, nullptr);
  if (err != CL_SUCCESS)
    throw Error(ErrorCode::Internal, id + ": reading an event's profiling time failed: " + error_name(err) +
                                         " (was the queue synchronized?)");
  return t;
}

class ClDevice final : public Device {
 public:
  ClDevice(const DeviceEntry& entry, cl_context context, kcl::Target target)
      : entry_(entry), context_(context), target_(target) {
    build_options_ = "-cl-std=CL1.2";
    if (target_.correctly_rounded_divide) build_options_ += " -cl-fp32-correctly-rounded-divide-sqrt";
    compiler_id_ = "opencl " + entry_.platform_name + " (" + entry_.platform_version + "); " + entry_.info.name +
                   "; driver " + entry_.driver_version + "; " + entry_.c_version + "; " + build_options_;
  }

  ~ClDevice() override {
    if (recent_.program) g_cl->clReleaseProgram(recent_.program);
    g_cl->clReleaseContext(context_);
  }

  const DeviceInfo& info() const override { return entry_.info; }

  std::unique_ptr<Buffer> allocate(std::size_t bytes) override {
    cl_int err = CL_SUCCESS;
    cl_mem mem = g_cl->clCreateBuffer(context_, CL_MEM_READ_WRITE, bytes == 0 ? 1 : bytes, nullptr, &err);
    if (err != CL_SUCCESS || !mem) {
      const bool oom = err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
                       err == CL_OUT_OF_HOST_MEMORY || err == CL_INVALID_BUFFER_SIZE;
      throw Error(oom ? ErrorCode::OutOfMemory : ErrorCode::Internal,
                  id() + ": cannot allocate " + std::to_string(bytes) + " bytes: " + error_name(err));
    }
    return std::make_unique<ClBuffer>(mem, bytes);
  }

  std::unique_ptr<Queue> create_queue() override {
    cl_int err = CL_SUCCESS;
    cl_command_queue q = g_cl->clCreateCommandQueue(context_, entry_.device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS) fail("creating a command queue", err);
    return std::make_unique<ClQueue>(q);
  }

  void write(Queue& queue, Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) override {
    check_range(dst, offset, bytes, "write");
    if (bytes == 0) return;
    ClQueue& q = cl_queue(queue);
    q.release_staging(false);
    ClQueue::Staging s;
    s.bytes = std::make_unique_for_overwrite<std::byte[]>(bytes);
    std::memcpy(s.bytes.get(), src, bytes);
    cl_event ev = nullptr;
    const cl_int err = g_cl->clEnqueueWriteBuffer(q.queue, cl_buffer(dst).mem(), CL_FALSE, offset, bytes,
                                                  s.bytes.get(), 0, nullptr, &ev);
    if (err != CL_SUCCESS) fail("enqueueing a write of " + std::to_string(bytes) + " bytes", err);
    g_cl->clRetainEvent(ev);
    s.done = ev;
    q.staging.push_back(std::move(s));
    q.enqueued(ev);
  }

  void read(Queue& queue, const Buffer& src, std::size_t offset, void* dst, std::size_t bytes) override {
    check_range(src, offset, bytes, "read");
    if (bytes == 0) return;
    ClQueue& q = cl_queue(queue);
    cl_event ev = nullptr;
    const cl_int err =
        g_cl->clEnqueueReadBuffer(q.queue, cl_buffer(src).mem(), CL_FALSE, offset, bytes, dst, 0, nullptr, &ev);
    if (err != CL_SUCCESS) fail("enqueueing a read of " + std::to_string(bytes) + " bytes", err);
    q.enqueued(ev);
  }

  void synchronize(Queue& queue) override {
    ClQueue& q = cl_queue(queue);
    const cl_int err = g_cl->clFinish(q.queue);
    if (err != CL_SUCCESS) fail("waiting for the queue (clFinish)", err);
    q.release_staging(true);
  }

  std::unique_ptr<Event> record(Queue& queue) override {
    ClQueue& q = cl_queue(queue);
    auto m = std::make_shared<Mark>();
    m->queue = &q;
    m->seq = q.seq;
    const cl_int err = g_cl->clEnqueueMarkerWithWaitList(q.queue, 0, nullptr, &m->marker);
    if (err != CL_SUCCESS) fail("enqueueing a marker", err);
    if (q.last) {
      g_cl->clRetainEvent(q.last);
      m->last_before = q.last;
    }
    q.awaiting.push_back(m);
    return std::make_unique<ClEvent>(std::move(m));
  }

  double elapsed_seconds(const Event& start, const Event& end) override {
    const Mark& s = *static_cast<const ClEvent&>(start).mark;
    const Mark& e = *static_cast<const ClEvent&>(end).mark;
    cl_event both[2] = {s.marker, e.marker};
    if (const cl_int err = g_cl->clWaitForEvents(2, both); err != CL_SUCCESS) fail("waiting for events", err);
    if (s.queue != e.queue) {  // different queues: only the markers' own times relate them
      const double ns = static_cast<double>(profile(e.marker, CL_PROFILING_COMMAND_END, id())) -
                        static_cast<double>(profile(s.marker, CL_PROFILING_COMMAND_END, id()));
      return ns * 1e-9;
    }
    if (e.seq <= s.seq || !s.first_after || !e.last_before) return 0.0;
    const cl_ulong t0 = profile(s.first_after, CL_PROFILING_COMMAND_START, id());
    const cl_ulong t1 = profile(e.last_before, CL_PROFILING_COMMAND_END, id());
    return t1 > t0 ? static_cast<double>(t1 - t0) * 1e-9 : 0.0;
  }

  Support supports(const kernels::KernelSpec& spec) const override {
    std::string why = kcl::check(spec, target_);
    return why.empty() ? Support::yes() : Support::no(std::move(why));
  }

  kernels::TileConfig choose_tiles(const kernels::Problem& problem) const override {
    return kcl::choose_tiles(problem, target_);
  }

  std::string compiler_id() const override { return compiler_id_; }

  std::string render(const kernels::KernelSpec& spec) const override { return kcl::render(spec, target_); }

  std::vector<std::byte> compile(const kernels::KernelSpec& spec, const std::string& source) override {
    const char* text = source.c_str();
    const std::size_t length = source.size();
    cl_int err = CL_SUCCESS;
    cl_program program = g_cl->clCreateProgramWithSource(context_, 1, &text, &length, &err);
    if (err != CL_SUCCESS) fail("creating a program for " + kernels::describe(spec), err);
    build(program, spec, "building");

    std::size_t size = 0;
    err = g_cl->clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr);
    std::vector<std::byte> payload(sizeof kBinaryMagic + size);
    std::memcpy(payload.data(), kBinaryMagic, sizeof kBinaryMagic);
    unsigned char* binary = reinterpret_cast<unsigned char*>(payload.data() + sizeof kBinaryMagic);
    if (err == CL_SUCCESS && size > 0)
      err = g_cl->clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof binary, &binary, nullptr);
    if (err != CL_SUCCESS || size == 0) {
      g_cl->clReleaseProgram(program);
      throw Error(ErrorCode::Internal, id() + ": the driver gave no program binary for " + kernels::describe(spec) +
                                           (err != CL_SUCCESS ? ": " + error_name(err) : std::string()));
    }
    std::lock_guard lock(recent_mutex_);
    if (recent_.program) g_cl->clReleaseProgram(recent_.program);
    recent_ = {payload, program};
    return payload;
  }

  std::unique_ptr<Kernel> load(const kernels::KernelSpec& spec, std::span<const std::byte> payload) override {
    const std::string what = kernels::describe(spec);
    if (payload.size() <= sizeof kBinaryMagic || std::memcmp(payload.data(), kBinaryMagic, sizeof kBinaryMagic) != 0)
      throw Error(ErrorCode::Internal, id() + ": not an anychip OpenCL program binary (" + what + ")");
    cl_program program = take_recent(payload);
    if (!program) {
      const auto* binary = reinterpret_cast<const unsigned char*>(payload.data() + sizeof kBinaryMagic);
      const std::size_t size = payload.size() - sizeof kBinaryMagic;
      cl_int status = CL_SUCCESS, err = CL_SUCCESS;
      program = g_cl->clCreateProgramWithBinary(context_, 1, &entry_.device, &size, &binary, &status, &err);
      if (err != CL_SUCCESS || status != CL_SUCCESS) {
        if (program) g_cl->clReleaseProgram(program);
        throw Error(ErrorCode::Internal, id() + ": the driver rejects the program binary of " + what + ": " +
                                             error_name(err != CL_SUCCESS ? err : status));
      }
      build(program, spec, "building the binary of");
    }
    kcl::Launch launch = kcl::launch(spec, target_);
    cl_int err = CL_SUCCESS;
    cl_kernel kernel = g_cl->clCreateKernel(program, launch.kernel.c_str(), &err);
    if (err != CL_SUCCESS) {
      g_cl->clReleaseProgram(program);
      throw Error(ErrorCode::Internal, id() + ": no kernel '" + launch.kernel + "' in the program of " + what + ": " +
                                           error_name(err));
    }
    auto k = std::make_unique<ClKernel>(program, kernel, launch);
    // The kernel's own limit can be below the device's (registers): refuse now rather
    // than fail at launch.
    std::size_t kernel_wg = 0;
    g_cl->clGetKernelWorkGroupInfo(kernel, entry_.device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kernel_wg, &kernel_wg, nullptr);
    const std::size_t wg = launch.local[0] * launch.local[1] * launch.local[2];
    if (kernel_wg != 0 && wg > kernel_wg)
      throw Error(ErrorCode::Unsupported, id() + " cannot run " + what + ": its work-groups of " + std::to_string(wg) +
                                              " work-items exceed this kernel's limit of " + std::to_string(kernel_wg));
    return k;
  }

  void launch(Queue& queue, Kernel& kernel, std::span<const BufferOperand> inputs,
              const BufferOperand& output) override {
    ClKernel& k = static_cast<ClKernel&>(kernel);
    const kcl::Launch& l = k.launch;
    if (inputs.size() != l.scaled_inputs.size())
      throw Error(ErrorCode::InvalidArgument, id() + ": kernel '" + l.kernel + "' takes " +
                                                  std::to_string(l.scaled_inputs.size()) + " inputs, got " +
                                                  std::to_string(inputs.size()));
    for (int d = 0; d < l.dims; ++d)
      if (l.global[d] == 0) return;  // an empty problem: nothing to compute

    std::lock_guard lock(k.mutex);
    cl_uint index = 0;
    auto arg = [&](Buffer* b, std::size_t offset, const char* what) {
      if (!b) throw Error(ErrorCode::InvalidArgument, id() + ": kernel '" + l.kernel + "': " + what + " buffer is missing");
      cl_mem mem = cl_buffer(*b).mem();
      const cl_ulong off = offset;
      cl_int err = g_cl->clSetKernelArg(k.kernel, index++, sizeof mem, &mem);
      if (err == CL_SUCCESS) err = g_cl->clSetKernelArg(k.kernel, index++, sizeof off, &off);
      if (err != CL_SUCCESS) fail("setting an argument of kernel '" + l.kernel + "'", err);
    };
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      arg(inputs[i].data, inputs[i].offset, "an input's data");
      if (l.scaled_inputs[i]) arg(inputs[i].scales, inputs[i].scales_offset, "an input's scale");
    }
    arg(output.data, output.offset, "the output's data");
    if (l.scaled_output) arg(output.scales, output.scales_offset, "the output's scale");

    ClQueue& q = cl_queue(queue);
    cl_event ev = nullptr;
    const cl_int err = g_cl->clEnqueueNDRangeKernel(q.queue, k.kernel, static_cast<cl_uint>(l.dims), nullptr, l.global,
                                                    l.local, 0, nullptr, &ev);
    if (err != CL_SUCCESS) fail("launching kernel '" + l.kernel + "'", err);
    q.enqueued(ev);
  }

 private:
  const std::string& id() const { return entry_.info.id; }

  [[noreturn]] void fail(const std::string& what, cl_int err) const {
    const bool oom = err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES || err == CL_OUT_OF_HOST_MEMORY;
    throw Error(oom ? ErrorCode::OutOfMemory : ErrorCode::Internal, id() + ": " + what + " failed: " + error_name(err));
  }

  void check_range(const Buffer& b, std::size_t offset, std::size_t bytes, const char* what) const {
    if (offset > b.size() || bytes > b.size() - offset)
      throw Error(ErrorCode::InvalidArgument, id() + ": " + what + " of " + std::to_string(bytes) + " bytes at offset " +
                                                  std::to_string(offset) + " overruns a buffer of " +
                                                  std::to_string(b.size()) + " bytes");
  }

  // Builds `program` for this device; on failure releases it and throws with the log.
  void build(cl_program program, const kernels::KernelSpec& spec, const char* doing) const {
    const cl_int err = g_cl->clBuildProgram(program, 1, &entry_.device, build_options_.c_str(), nullptr, nullptr);
    if (err == CL_SUCCESS) return;
    std::string log;
    std::size_t n = 0;
    if (g_cl->clGetProgramBuildInfo(program, entry_.device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n) == CL_SUCCESS && n > 0) {
      log.resize(n);
      g_cl->clGetProgramBuildInfo(program, entry_.device, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    }
    g_cl->clReleaseProgram(program);
    throw Error(ErrorCode::Internal, id() + ": " + doing + " " + kernels::describe(spec) + " failed: " +
                                         error_name(err) + "; build log:\n" + (log.empty() ? "(empty)" : log));
  }

  // The program compile() built for exactly this payload, if it is the latest one.
  cl_program take_recent(std::span<const std::byte> payload) {
    std::lock_guard lock(recent_mutex_);
    if (!recent_.program || recent_.payload.size() != payload.size() ||
        std::memcmp(recent_.payload.data(), payload.data(), payload.size()) != 0)
      return nullptr;
    cl_program p = recent_.program;
    recent_ = {};
    return p;
  }

  DeviceEntry entry_;
  cl_context context_;
  kcl::Target target_;
  std::string build_options_, compiler_id_;
  struct Recent {
    std::vector<std::byte> payload;
    cl_program program = nullptr;
  };
  std::mutex recent_mutex_;
  Recent recent_;
};

}  // namespace

std::unique_ptr<Device> open_device(const Api& cl, const DeviceEntry& entry) {
  g_cl = &cl;
  kcl::Target target = entry.target;
  // Which kernel shape to use can be forced, to run the GPU-style kernels on a CPU runtime
  // (their tests) or the other way round.
  if (const char* w = std::getenv("ANYCHIP_OPENCL_WORK_ITEMS")) {
    if (std::strcmp(w, "narrow") == 0) target.wide_work_items = false;
    if (std::strcmp(w, "wide") == 0) target.wide_work_items = true;
  }
  cl_int err = CL_SUCCESS;
  const cl_context_properties properties[] = {CL_CONTEXT_PLATFORM,
                                              reinterpret_cast<cl_context_properties>(entry.platform), 0};
  cl_context context = cl.clCreateContext(properties, 1, &entry.device, nullptr, nullptr, &err);
  if (err != CL_SUCCESS || !context)
    throw Error(ErrorCode::Unavailable, "device " + entry.info.id + " is unavailable: creating a context failed: " +
                                            error_name(err));
  return std::make_unique<ClDevice>(entry, context, target);
}

}  // namespace anychip::backends::opencl

#endif  // ANYCHIP_HAVE_OPENCL_HEADERS
