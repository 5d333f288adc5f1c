// CUDA devices: what both kinds share (tiles, the fit check, rendering, NVRTC, emit), the
// compile-only target, and the GPU: device memory (cuMemAlloc), streams, events
// (cuEventRecord / cuEventElapsedTime: device time), modules loaded from cubins
// (cuModuleLoadData) and launches (cuLaunchKernel, dynamic shared memory raised past 48 KiB
// where a kernel needs it, TMA tensor maps encoded per launch with cuTensorMapEncodeTiled).
//
// Contexts. A GPU device uses the device's primary context (the one the CUDA runtime and
// PyTorch use too), pushed around each driver call and popped after, so the calling
// thread's current context is left as it was.
//
// Copies. write() is cuMemcpyHtoDAsync from pageable memory: the driver stages the source
// before the call returns, so the caller's memory may go away at once. read() into
// pageable memory returns once the copy is done.
#include "backends/cuda/cuda_device.hpp"

#if ANYCHIP_HAVE_CUDA_HEADERS

#include <cstring>
#include <mutex>
#include <vector>

#include "anychip/error.hpp"
#include "backends/cuda/nvrtc_compiler.hpp"

namespace anychip::backends::cuda {
namespace {

namespace kc = kernels::cuda;

// Rendering, compiling and emitting: all a compile-only target does, and what a GPU adds to.
class CudaDeviceBase : public Device {
 public:
  CudaDeviceBase(const Nvrtc& nvrtc, DeviceInfo info, kc::Target target)
      : nvrtc_(nvrtc), info_(std::move(info)), target_(std::move(target)),
        compiler_id_(nvrtc_compiler_id(nvrtc, target_.arch)) {}

  const DeviceInfo& info() const override { return info_; }

  Support supports(const kernels::KernelSpec& spec) const override {
    std::string why = kc::check(spec, target_);
    return why.empty() ? Support::yes() : Support::no(std::move(why));
  }

  kernels::TileConfig choose_tiles(const kernels::Problem& problem) const override {
    return kc::choose_tiles(problem, target_);
  }

  std::string compiler_id() const override { return compiler_id_; }

  std::string render(const kernels::KernelSpec& spec) const override { return kc::render(spec, target_); }

  std::string emit(const kernels::KernelSpec& spec, std::string_view format) override {
    if (format == "source") return render(spec);
    if (format == "ptx") return build(spec, render(spec)).ptx;
    if (format == "cubin") {
      const std::vector<std::byte> cubin = build(spec, render(spec)).cubin;
      return std::string(reinterpret_cast<const char*>(cubin.data()), cubin.size());
    }
    throw Error(ErrorCode::Unsupported,
                info_.id + " does not produce '" + std::string(format) + "' (it emits: source, ptx, cubin)");
  }

  std::vector<std::byte> compile(const kernels::KernelSpec& spec, const std::string& source) override {
    return build(spec, source).cubin;
  }

 protected:
  CompileOutput build(const kernels::KernelSpec& spec, const std::string& source) const {
    return nvrtc_compile(nvrtc_, source, target_.arch, kernels::describe(spec) + " on " + info_.id);
  }

  const Nvrtc& nvrtc_;
  DeviceInfo info_;
  kc::Target target_;
  std::string compiler_id_;
};

// ---- compile-only ------------------------------------------------------------------------------

class CompileOnlyDevice final : public CudaDeviceBase {
 public:
  CompileOnlyDevice(const Nvrtc& nvrtc, DeviceInfo info, kc::Target target, std::string why)
      : CudaDeviceBase(nvrtc, std::move(info), std::move(target)), why_(std::move(why)) {}

  std::unique_ptr<Buffer> allocate(std::size_t) override { refuse(); }
  std::unique_ptr<Queue> create_queue() override { refuse(); }
  void write(Queue&, Buffer&, std::size_t, const void*, std::size_t) override { refuse(); }
  void read(Queue&, const Buffer&, std::size_t, void*, std::size_t) override { refuse(); }
  void synchronize(Queue&) override { refuse(); }
  std::unique_ptr<Event> record(Queue&) override { refuse(); }
  double elapsed_seconds(const Event&, const Event&) override { refuse(); }
  std::unique_ptr<Kernel> load(const kernels::KernelSpec&, std::span<const std::byte>) override { refuse(); }
  void launch(Queue&, Kernel&, std::span<const BufferOperand>, const BufferOperand&) override { refuse(); }

 private:
  [[noreturn]] void refuse() const {
    throw Error(ErrorCode::Unavailable, info_.id + " is compile-only: " + why_);
  }
  std::string why_;
};

// ---- the GPU -----------------------------------------------------------------------------------

const Driver* g_cu = nullptr;  // set by open_gpu(); the driver is never unloaded

// Makes `ctx` current for the scope, restoring what was current before.
class ContextScope {
 public:
  explicit ContextScope(CUcontext ctx) { ok_ = g_cu->cuCtxPushCurrent(ctx) == CUDA_SUCCESS; }
  ~ContextScope() {
    CUcontext popped = nullptr;
    if (ok_) g_cu->cuCtxPopCurrent(&popped);
  }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  bool ok_ = false;
};

class CuBuffer final : public Buffer {
 public:
  CuBuffer(CUcontext ctx, CUdeviceptr ptr, std::size_t size) : ctx_(ctx), ptr_(ptr), size_(size) {}
  ~CuBuffer() override {
    ContextScope scope(ctx_);
    g_cu->cuMemFree(ptr_);
  }
  std::size_t size() const override { return size_; }
  CUdeviceptr ptr() const { return ptr_; }

 private:
  CUcontext ctx_;
  CUdeviceptr ptr_;
  std::size_t size_;
};

class CuQueue final : public Queue {
 public:
  CuQueue(CUcontext ctx, CUstream s) : ctx(ctx), stream(s) {}
  ~CuQueue() override {
    ContextScope scope(ctx);
    g_cu->cuStreamSynchronize(stream);
    g_cu->cuStreamDestroy(stream);
  }
  CUcontext ctx;
  CUstream stream;
};

class CuEvent final : public Event {
 public:
  CuEvent(CUcontext ctx, CUevent e) : ctx(ctx), event(e) {}
  ~CuEvent() override {
    ContextScope scope(ctx);
    g_cu->cuEventDestroy(event);
  }
  CUcontext ctx;
  CUevent event;
};

class CuKernel final : public Kernel {
 public:
  CuKernel(CUcontext ctx, CUmodule module, kc::LaunchPlan plan) : ctx(ctx), module(module), plan(std::move(plan)) {}
  ~CuKernel() override {
    ContextScope scope(ctx);
    if (scratch) g_cu->cuMemFree(scratch);
    g_cu->cuModuleUnload(module);
  }
  CUcontext ctx;
  CUmodule module;
  kc::LaunchPlan plan;
  std::vector<CUfunction> functions;  // one per plan step
  // Scratch the steps share (split attention's partial results). Launches of one kernel
  // on several streams at once would share it: an Executable runs on one stream at a time.
  CUdeviceptr scratch = 0;
};

class GpuDevice final : public CudaDeviceBase {
 public:
  GpuDevice(const Nvrtc& nvrtc, const GpuEntry& entry, CUcontext ctx)
      : CudaDeviceBase(nvrtc, entry.info, entry.target), device_(entry.device), ctx_(ctx) {}

  ~GpuDevice() override { g_cu->cuDevicePrimaryCtxRelease(device_); }

  std::unique_ptr<Buffer> allocate(std::size_t bytes) override {
    ContextScope scope(ctx_);
    CUdeviceptr ptr = 0;
    const CUresult r = g_cu->cuMemAlloc(&ptr, bytes == 0 ? 1 : bytes);
    if (r != CUDA_SUCCESS)
      throw Error(r == CUDA_ERROR_OUT_OF_MEMORY ? ErrorCode::OutOfMemory : ErrorCode::Internal,
                  id() + ": cannot allocate " + std::to_string(bytes) + " bytes: " + error_text(*g_cu, r));
    return std::make_unique<CuBuffer>(ctx_, ptr, bytes);
  }

  std::unique_ptr<Queue> create_queue() override {
    ContextScope scope(ctx_);
    CUstream s = nullptr;
    check(g_cu->cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), "creating a stream");
    return std::make_unique<CuQueue>(ctx_, s);
  }

  void write(Queue& queue, Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) override {
    check_range(dst, offset, bytes, "write");
    if (bytes == 0) return;
    ContextScope scope(ctx_);
    check(g_cu->cuMemcpyHtoDAsync(buffer(dst).ptr() + offset, src, bytes, stream(queue)),
          "copying " + std::to_string(bytes) + " bytes to the device");
  }

  void read(Queue& queue, const Buffer& src, std::size_t offset, void* dst, std::size_t bytes) override {
    check_range(src, offset, bytes, "read");
    if (bytes == 0) return;
    ContextScope scope(ctx_);
    check(g_cu->cuMemcpyDtoHAsync(dst, buffer(src).ptr() + offset, bytes, stream(queue)),
          "copying " + std::to_string(bytes) + " bytes from the device");
  }

  void synchronize(Queue& queue) override {
    ContextScope scope(ctx_);
    check(g_cu->cuStreamSynchronize(stream(queue)), "waiting for the stream");
  }

  std::unique_ptr<Event> record(Queue& queue) override {
    ContextScope scope(ctx_);
    CUevent e = nullptr;
    check(g_cu->cuEventCreate(&e, CU_EVENT_DEFAULT), "creating an event");
    auto event = std::make_unique<CuEvent>(ctx_, e);
    check(g_cu->cuEventRecord(e, stream(queue)), "recording an event");
    return event;
  }

  double elapsed_seconds(const Event& start, const Event& end) override {
    ContextScope scope(ctx_);
    const CUevent s = static_cast<const CuEvent&>(start).event, e = static_cast<const CuEvent&>(end).event;
    check(g_cu->cuEventSynchronize(e), "waiting for an event");
    float ms = 0;
    check(g_cu->cuEventElapsedTime(&ms, s, e), "reading the time between two events");
    return static_cast<double>(ms) * 1e-3;
  }

  std::unique_ptr<Kernel> load(const kernels::KernelSpec& spec, std::span<const std::byte> binary) override {
    const std::string what = kernels::describe(spec);
    // NVRTC's cubins are ELF files; anything else is a stale or foreign cache entry.
    if (binary.size() < 4 || std::memcmp(binary.data(), "\x7f" "ELF", 4) != 0)
      throw Error(ErrorCode::Internal, id() + ": not a cubin (" + what + ")");
    ContextScope scope(ctx_);
    CUmodule module = nullptr;
    // cuModuleLoadData takes the image by address; copy it so the alignment is the allocator's.
    std::vector<std::byte> image(binary.begin(), binary.end());
    if (const CUresult r = g_cu->cuModuleLoadData(&module, image.data()); r != CUDA_SUCCESS)
      throw Error(ErrorCode::Internal, id() + ": the driver rejects the cubin of " + what + ": " + error_text(*g_cu, r));
    auto k = std::make_unique<CuKernel>(ctx_, module, kc::launch_plan(spec, target_));
    for (const kc::Step& step : k->plan.steps) {
      CUfunction f = nullptr;
      if (const CUresult r = g_cu->cuModuleGetFunction(&f, module, step.kernel.c_str()); r != CUDA_SUCCESS)
        throw Error(ErrorCode::Internal,
                    id() + ": no kernel '" + step.kernel + "' in the cubin of " + what + ": " + error_text(*g_cu, r));
      if (step.shared_bytes > 48 * 1024)
        check(g_cu->cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                       static_cast<int>(step.shared_bytes)),
              "allowing " + std::to_string(step.shared_bytes) + " bytes of shared memory for " + step.kernel);
      k->functions.push_back(f);
    }
    if (k->plan.scratch_bytes > 0) {
      const CUresult r = g_cu->cuMemAlloc(&k->scratch, k->plan.scratch_bytes);
      if (r != CUDA_SUCCESS)
        throw Error(r == CUDA_ERROR_OUT_OF_MEMORY ? ErrorCode::OutOfMemory : ErrorCode::Internal,
                    id() + ": cannot allocate " + std::to_string(k->plan.scratch_bytes) + " bytes of scratch for " +
                        what + ": " + error_text(*g_cu, r));
    }
    return k;
  }

  void launch(Queue& queue, Kernel& kernel, std::span<const BufferOperand> inputs,
              const BufferOperand& output) override {
    CuKernel& k = static_cast<CuKernel&>(kernel);
    const kc::LaunchPlan& plan = k.plan;
    if (inputs.size() != plan.scaled_inputs.size())
      throw Error(ErrorCode::InvalidArgument, id() + ": kernel '" + plan.steps.front().kernel + "' takes " +
                                                  std::to_string(plan.scaled_inputs.size()) + " inputs, got " +
                                                  std::to_string(inputs.size()));
    ContextScope scope(ctx_);
    for (std::size_t i = 0; i < plan.steps.size(); ++i) {
      const kc::Step& step = plan.steps[i];
      if (step.grid[0] == 0 || step.grid[1] == 0 || step.grid[2] == 0) continue;  // an empty problem
      // Argument storage: stable addresses until cuLaunchKernel has copied them.
      std::vector<CUdeviceptr> pointers;
      std::vector<CUtensorMap> maps;
      pointers.reserve(step.params.size());
      maps.reserve(step.params.size());
      std::vector<void*> args;
      for (const kc::Param& p : step.params) {
        if (p.kind == kc::Param::Kind::TensorMap) {
          maps.push_back(tensor_map(p, operand_address(p, inputs, output, k, step)));
          args.push_back(&maps.back());
        } else {
          pointers.push_back(operand_address(p, inputs, output, k, step));
          args.push_back(&pointers.back());
        }
      }
      check(g_cu->cuLaunchKernel(k.functions[i], step.grid[0], step.grid[1], step.grid[2], step.block[0],
                                 step.block[1], step.block[2], step.shared_bytes, stream(queue), args.data(), nullptr),
            "launching " + step.kernel);
    }
  }

 private:
  const std::string& id() const { return info_.id; }

  static CuBuffer& buffer(Buffer& b) { return static_cast<CuBuffer&>(b); }
  static const CuBuffer& buffer(const Buffer& b) { return static_cast<const CuBuffer&>(b); }
  static CUstream stream(Queue& q) { return static_cast<CuQueue&>(q).stream; }

  void check(CUresult r, const std::string& what) const {
    if (r == CUDA_SUCCESS) return;
    throw Error(r == CUDA_ERROR_OUT_OF_MEMORY ? ErrorCode::OutOfMemory : ErrorCode::Internal,
                id() + ": " + what + " failed: " + error_text(*g_cu, r));
  }

  void check_range(const Buffer& b, std::size_t offset, std::size_t bytes, const char* what) const {
    if (offset > b.size() || bytes > b.size() - offset)
      throw Error(ErrorCode::InvalidArgument, id() + ": " + what + " of " + std::to_string(bytes) + " bytes at offset " +
                                                  std::to_string(offset) + " overruns a buffer of " +
                                                  std::to_string(b.size()) + " bytes");
  }

  // The device address a parameter names. The kernels read and write 16 bytes at a time and
  // the tensor memory accelerator needs 16-byte aligned tensors, so every operand must be.
  CUdeviceptr operand_address(const kc::Param& p, std::span<const BufferOperand> inputs, const BufferOperand& output,
                              const CuKernel& k, const kc::Step& step) const {
    using K = kc::Param::Kind;
    Buffer* buf = nullptr;
    std::size_t offset = 0;
    std::string what;
    switch (p.kind) {
      case K::InputData:
      case K::TensorMap:
        buf = inputs[static_cast<std::size_t>(p.input)].data;
        offset = inputs[static_cast<std::size_t>(p.input)].offset;
        what = "input " + std::to_string(p.input) + "'s data";
        break;
      case K::InputScales:
        buf = inputs[static_cast<std::size_t>(p.input)].scales;
        offset = inputs[static_cast<std::size_t>(p.input)].scales_offset;
        what = "input " + std::to_string(p.input) + "'s scales";
        break;
      case K::OutputData:
        buf = output.data;
        offset = output.offset;
        what = "the output's data";
        break;
      case K::OutputScales:
        buf = output.scales;
        offset = output.scales_offset;
        what = "the output's scales";
        break;
      case K::Scratch:
        return k.scratch ? k.scratch + p.scratch_offset : 0;
    }
    if (!buf)
      throw Error(ErrorCode::InvalidArgument, id() + ": kernel '" + step.kernel + "': " + what + " buffer is missing");
    const CUdeviceptr address = buffer(*buf).ptr() + offset;
    if (address % 16 != 0)
      throw Error(ErrorCode::InvalidArgument, id() + ": kernel '" + step.kernel + "': " + what + " at offset " +
                                                  std::to_string(offset) + " is not 16-byte aligned");
    return address;
  }

  // A 2-D FP8 tensor map: 128-byte swizzled boxes, zeros out of bounds.
  CUtensorMap tensor_map(const kc::Param& p, CUdeviceptr address) const {
    CUtensorMap map;
    const cuuint64_t dims[2] = {p.map.cols, p.map.rows};
    const cuuint64_t strides[1] = {p.map.cols};  // bytes between rows
    const cuuint32_t box[2] = {p.map.box_cols, p.map.box_rows};
    const cuuint32_t element_strides[2] = {1, 1};
    const CUresult r = g_cu->cuTensorMapEncodeTiled(
        &map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, reinterpret_cast<void*>(address), dims, strides, box, element_strides,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    check(r, "encoding a tensor map of " + std::to_string(p.map.rows) + " x " + std::to_string(p.map.cols) + " bytes");
    return map;
  }

  CUdevice device_;
  CUcontext ctx_;
};

}  // namespace

std::unique_ptr<Device> open_gpu(const Driver& cu, const Nvrtc& nvrtc, const GpuEntry& entry) {
  g_cu = &cu;
  CUcontext ctx = nullptr;
  if (const CUresult r = cu.cuDevicePrimaryCtxRetain(&ctx, entry.device); r != CUDA_SUCCESS)
    throw Error(ErrorCode::Unavailable,
                "device " + entry.info.id + " is unavailable: retaining its context failed: " + error_text(cu, r));
  return std::make_unique<GpuDevice>(nvrtc, entry, ctx);
}

std::unique_ptr<Device> open_compile_only(const Nvrtc& nvrtc, DeviceInfo info, kc::Target target, std::string why) {
  return std::make_unique<CompileOnlyDevice>(nvrtc, std::move(info), std::move(target), std::move(why));
}

}  // namespace anychip::backends::cuda

#endif  // ANYCHIP_HAVE_CUDA_HEADERS
