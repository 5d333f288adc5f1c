// The simulator backend (sim_backend.hpp).
//
// Device memory is one host address range standing for the chip's HBM: a buffer is an
// address range in it, and kernels receive Hbm addresses (kernels/sim/sim_kernels.hpp has
// their order). The range is reserved lazily (pages appear when written), so a chip with
// 80 GB of HBM costs the host only what is used. In timing-only mode (DeviceOptions::
// timing_only) buffers get addresses without bytes: writes are dropped and reads give
// zeros.
//
// A queue is synchronous and holds a simulated clock in cycles: a launch runs the
// Simulator on the kernel's phases (functionally unless timing-only) and advances the
// clock by their cycles; host <-> device copies take no simulated time. An event is the
// clock when the queue reached it, so elapsed seconds are cycles / clock_hz, and
// counters() sums the statistics of the launches between two events.
#include "backends/sim/sim_backend.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "anychip/error.hpp"
#include "kernels/sim/sim_kernels.hpp"
#include "simulator/engine.hpp"

namespace anychip::backends {
namespace {

namespace hw = ::anychip::sim;
namespace ks = ::anychip::kernels::sim;

constexpr std::int64_t kAlignment = 256;
constexpr std::int64_t kMinReservation = std::int64_t{1} << 30;

std::int64_t align_up(std::int64_t v, std::int64_t a) { return (v + a - 1) / a * a; }

// The chip's HBM: an address allocator over [0, capacity) and, unless timing-only, host
// bytes behind the addresses.
class DeviceMemory {
 public:
  DeviceMemory(std::string device, std::int64_t capacity, bool backed)
      : device_(std::move(device)), capacity_(capacity) {
    if (backed) {
      // Reserve the whole HBM without committing it; fall back to less where the host
      // refuses (strict overcommit), down to 1 GiB.
      for (std::int64_t size = capacity; size >= std::min(capacity, kMinReservation); size /= 2) {
        void* p = mmap(nullptr, static_cast<std::size_t>(size), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
          base_ = static_cast<std::byte*>(p);
          reserved_ = size;
          break;
        }
      }
      if (!base_)
        throw Error(ErrorCode::OutOfMemory, device_ + ": cannot reserve host memory for the simulated HBM");
      capacity_ = reserved_;
    }
    free_[0] = capacity_;
  }
  ~DeviceMemory() {
    if (base_) munmap(base_, static_cast<std::size_t>(reserved_));
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  // First fit in address order.
  std::int64_t allocate(std::int64_t bytes) {
    const std::int64_t size = align_up(std::max<std::int64_t>(bytes, 1), kAlignment);
    std::lock_guard lock(mu_);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < size) continue;
      const std::int64_t addr = it->first, left = it->second - size;
      free_.erase(it);
      if (left > 0) free_[addr + size] = left;
      return addr;
    }
    throw Error(ErrorCode::OutOfMemory, device_ + ": cannot allocate " + std::to_string(bytes) + " bytes (" +
                                            std::to_string(capacity_) + " bytes of device memory" +
                                            (base_ ? " the host could reserve" : "") + ")");
  }

  void release(std::int64_t addr, std::int64_t bytes) {
    const std::int64_t size = align_up(std::max<std::int64_t>(bytes, 1), kAlignment);
    if (base_) {
      // Give whole pages back to the host (they read as zeros when touched again).
      const std::int64_t page = sysconf(_SC_PAGESIZE);
      const std::int64_t first = align_up(addr, page), last = (addr + size) / page * page;
      if (last > first) madvise(base_ + first, static_cast<std::size_t>(last - first), MADV_DONTNEED);
    }
    std::lock_guard lock(mu_);
    auto [it, inserted] = free_.emplace(addr, size);
    if (auto next = std::next(it); next != free_.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_.erase(it);
      }
    }
  }

  bool backed() const { return base_ != nullptr; }
  std::byte* at(std::int64_t addr) const { return base_ + addr; }
  std::span<std::byte> bytes() const {
    return base_ ? std::span<std::byte>(base_, static_cast<std::size_t>(reserved_)) : std::span<std::byte>();
  }

 private:
  std::string device_;
  std::int64_t capacity_ = 0, reserved_ = 0;
  std::byte* base_ = nullptr;
  std::mutex mu_;
  std::map<std::int64_t, std::int64_t> free_;  // address -> bytes, coalesced
};

class SimBuffer final : public Buffer {
 public:
  SimBuffer(std::shared_ptr<DeviceMemory> memory, std::size_t bytes)
      : memory_(std::move(memory)), size_(bytes), addr_(memory_->allocate(static_cast<std::int64_t>(bytes))) {}
  ~SimBuffer() override { memory_->release(addr_, static_cast<std::int64_t>(size_)); }
  std::size_t size() const override { return size_; }
  std::int64_t addr() const { return addr_; }

 private:
  std::shared_ptr<DeviceMemory> memory_;
  std::size_t size_;
  std::int64_t addr_;
};

// What one launch measured, and its roofline terms.
struct LaunchStats {
  hw::RunStats run;
  double memory_cycles = 0, compute_cycles = 0;
};

class SimQueue final : public Queue {
 public:
  double clock = 0;  // cycles
  std::vector<LaunchStats> launches;
};

class SimEvent final : public Event {
 public:
  const SimQueue* queue = nullptr;
  double cycles = 0;
  std::size_t launches = 0;  // launches on the queue before the event
};

class SimKernel final : public Kernel {
 public:
  kernels::KernelSpec spec;
  std::vector<hw::TileKernel> phases;
  std::int64_t workspace = 0;
  DType matrix_dtype = DType::f32;  // the operand dtype of its mma instructions (roofline)
};

DType matrix_dtype(const kernels::Problem& p) {
  if (const auto* g = std::get_if<kernels::GemmFp8Problem>(&p)) return g->a_dtype;
  if (const auto* g = std::get_if<kernels::GemmFp8GroupedProblem>(&p)) return g->a_dtype;
  if (const auto* g = std::get_if<kernels::GemmProblem>(&p)) return g->in_dtype;
  if (const auto* a = std::get_if<kernels::AttentionProblem>(&p)) return a->dtype;
  return DType::f32;
}

// FNV-1a, 64 bits: a stable hash of the chip description for compiler_id().
std::string chip_hash(const hw::ChipDesc& chip) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : hw::chip_to_json(chip)) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

DeviceInfo sim_info(const std::string& id, const hw::ChipDesc& chip) {
  DeviceInfo info;
  info.id = id;
  info.backend = "sim";
  // The description is for `anychip chip show`; a device line wants a short name.
  info.name = "simulated " + chip.name;
  info.available = true;
  info.arch = chip.core.matrix.native_ue8m0_scales ? "native UE8M0 scales" : "block scales on the vector unit";
  info.memory_bytes = static_cast<std::uint64_t>(chip.hbm_bytes);
  info.compute_units = static_cast<int>(chip.cores);
  info.dtypes = {DType::f32, DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2, DType::i32};
  info.scale_dtypes = {DType::ue8m0, DType::f32};
  return info;
}

const SimBuffer& sim_buffer(const Buffer& b) { return static_cast<const SimBuffer&>(b); }

void check_range(const std::string& device, const Buffer& b, std::size_t offset, std::size_t bytes, const char* what) {
  if (offset > b.size() || bytes > b.size() - offset)
    throw Error(ErrorCode::InvalidArgument, device + ": " + what + " of " + std::to_string(bytes) +
                                                " bytes at offset " + std::to_string(offset) +
                                                " overruns a buffer of " + std::to_string(b.size()) + " bytes");
}

class SimDevice final : public Device {
 public:
  SimDevice(std::string id, hw::ChipDesc chip, const DeviceOptions& options)
      : chip_(std::move(chip)),
        info_(sim_info(id, chip_)),
        options_(options),
        compiler_id_("anychip-sim " + chip_.name + " " + chip_hash(chip_)),
        memory_(std::make_shared<DeviceMemory>(info_.id, chip_.hbm_bytes, !options.timing_only)) {
    // The constants block every kernel reads (sim_kernels.hpp, argument 3).
    constants_ = memory_->allocate(ks::kConstBytes);
    if (memory_->backed()) std::memcpy(memory_->at(constants_), ks::constants().data(), ks::constants().size());
  }
  ~SimDevice() override { memory_->release(constants_, ks::kConstBytes); }

  const DeviceInfo& info() const override { return info_; }

  std::unique_ptr<Buffer> allocate(std::size_t bytes) override {
    return std::make_unique<SimBuffer>(memory_, bytes);
  }

  std::unique_ptr<Queue> create_queue() override { return std::make_unique<SimQueue>(); }

  void write(Queue&, Buffer& dst, std::size_t offset, const void* src, std::size_t bytes) override {
    check_range(info_.id, dst, offset, bytes, "write");
    if (memory_->backed() && bytes) std::memcpy(memory_->at(sim_buffer(dst).addr()) + offset, src, bytes);
  }

  void read(Queue&, const Buffer& src, std::size_t offset, void* dst, std::size_t bytes) override {
    check_range(info_.id, src, offset, bytes, "read");
    if (!bytes) return;
    if (memory_->backed()) std::memcpy(dst, memory_->at(sim_buffer(src).addr()) + offset, bytes);
    else std::memset(dst, 0, bytes);
  }

  void synchronize(Queue&) override {}

  std::unique_ptr<Event> record(Queue& queue) override {
    auto& q = static_cast<SimQueue&>(queue);
    auto e = std::make_unique<SimEvent>();
    e->queue = &q, e->cycles = q.clock, e->launches = q.launches.size();
    return e;
  }

  double elapsed_seconds(const Event& start, const Event& end) override {
    const auto& a = static_cast<const SimEvent&>(start);
    const auto& b = static_cast<const SimEvent&>(end);
    if (a.queue != b.queue) throw Error(ErrorCode::InvalidArgument, info_.id + ": events of different queues");
    return (b.cycles - a.cycles) / chip_.clock_hz;
  }

  Support supports(const kernels::KernelSpec& spec) const override {
    const std::string why = ks::unsupported(spec, chip_);
    return why.empty() ? Support::yes() : Support::no(why);
  }

  kernels::TileConfig choose_tiles(const kernels::Problem& problem) const override {
    return ks::choose_tiles(problem, chip_);
  }

  std::string compiler_id() const override { return compiler_id_; }

  // The kernel as `anychip emit` prints it: what it is, how it is cut, and work item 0.
  std::string render(const kernels::KernelSpec& spec) const override {
    std::string t = "# anychip simulator kernel (tile programs, simulator/program.hpp)\n";
    t += "kernel " + kernels::describe(spec) + "\n";
    t += "chip " + chip_.name + ": " + std::to_string(chip_.cores) + " cores\n";
    if (const std::string why = ks::unsupported(spec, chip_); !why.empty()) return t + "unsupported: " + why + "\n";
    const kernels::TileConfig& tiles = spec.tiles;
    t += "tiles m=" + std::to_string(tiles.m) + " n=" + std::to_string(tiles.n) + " k=" + std::to_string(tiles.k) +
         " stages=" + std::to_string(tiles.stages) + "\n";
    const ks::Footprint f = ks::footprint(spec, chip_);
    t += "per work item: " + std::to_string(f.scratchpad_bytes) + " of " + std::to_string(chip_.core.scratchpad_bytes) +
         " scratchpad bytes, " + std::to_string(f.accumulator_bytes) + " of " +
         std::to_string(chip_.core.accumulator_bytes) + " accumulator bytes\n";
    const std::vector<std::string> names = ks::arg_names(spec.problem);
    t += "args (hbm addresses below: argument i at i << 40):";
    for (std::size_t i = 0; i < names.size(); ++i) {
      t += ' ';
      t += std::to_string(i);
      t += '=';
      t += names[i];
    }
    t += "\nworkspace " + std::to_string(ks::workspace_bytes(spec, chip_)) + " bytes\n";
    std::vector<std::int64_t> args(names.size());
    for (std::size_t i = 0; i < args.size(); ++i) args[i] = static_cast<std::int64_t>(i) << 40;
    const int phases = ks::phase_count(spec, chip_);
    for (int phase = 0; phase < phases; ++phase) {
      const hw::TileKernel k = ks::lower(spec, chip_, phase);
      t += "phase " + std::to_string(phase) + ": " + k.name + ", " + std::to_string(k.work_items) + " work items\n";
    }
    for (int phase = 0; phase < phases; ++phase) {
      const hw::TileKernel k = ks::lower(spec, chip_, phase);
      if (k.work_items == 0) continue;
      hw::Program program;
      k.build(0, args, program);
      t += "\n# phase ";
      t += std::to_string(phase);
      t += ", work item 0 (";
      t += std::to_string(program.instrs.size());
      t += " instructions)\n";
      t += hw::to_text(program);
    }
    return t;
  }

  std::vector<std::byte> compile(const kernels::KernelSpec&, const std::string& source) override {
    const auto* p = reinterpret_cast<const std::byte*>(source.data());
    return {p, p + source.size()};
  }

  std::unique_ptr<Kernel> load(const kernels::KernelSpec& spec, std::span<const std::byte> binary) override {
    const std::string expected = render(spec);
    if (binary.size() != expected.size() || std::memcmp(binary.data(), expected.data(), binary.size()) != 0)
      throw Error(ErrorCode::Internal, info_.id + ": kernel does not match its rendering for " + kernels::describe(spec));
    auto k = std::make_unique<SimKernel>();
    k->spec = spec;
    for (int phase = 0; phase < ks::phase_count(spec, chip_); ++phase) k->phases.push_back(ks::lower(spec, chip_, phase));
    k->workspace = ks::workspace_bytes(spec, chip_);
    k->matrix_dtype = matrix_dtype(spec.problem);
    return k;
  }

  void launch(Queue& queue, Kernel& kernel, std::span<const BufferOperand> inputs,
              const BufferOperand& output) override {
    auto& q = static_cast<SimQueue&>(queue);
    const auto& k = static_cast<const SimKernel&>(kernel);
    std::vector<std::int64_t> args;
    auto add = [&](const BufferOperand& op) {
      if (!op.data) throw Error(ErrorCode::InvalidArgument, info_.id + ": launch of a null buffer");
      args.push_back(sim_buffer(*op.data).addr() + static_cast<std::int64_t>(op.offset));
      if (op.scales) args.push_back(sim_buffer(*op.scales).addr() + static_cast<std::int64_t>(op.scales_offset));
    };
    for (const BufferOperand& op : inputs) add(op);
    add(output);
    const std::size_t expected = ks::arg_count(k.spec.problem) - 2;
    if (args.size() != expected)
      throw Error(ErrorCode::InvalidArgument, info_.id + ": " + kernels::describe(k.spec) + " takes " +
                                                  std::to_string(expected) + " buffers (data and scales), got " +
                                                  std::to_string(args.size()));
    args.push_back(constants_);
    struct Scratch {
      DeviceMemory& memory;
      std::int64_t addr = 0, bytes = 0;
      ~Scratch() {
        if (bytes > 0) memory.release(addr, bytes);
      }
    } workspace{*memory_};
    if (k.workspace > 0) workspace.addr = memory_->allocate(k.workspace), workspace.bytes = k.workspace;
    args.push_back(workspace.addr);

    hw::Simulator simulator(chip_);
    hw::RunOptions opt;
    opt.functional = !options_.timing_only;
    opt.trace = options_.trace;
    LaunchStats s;
    std::vector<hw::TraceEvent> events;
    for (const hw::TileKernel& phase : k.phases) {
      const hw::RunStats r = simulator.run(phase, args, memory_->bytes(), opt, opt.trace ? &events : nullptr);
      if (opt.trace) {
        std::lock_guard lock(trace_mu_);
        for (hw::TraceEvent& e : events) {
          e.start_cycle += q.clock, e.end_cycle += q.clock;
          trace_.push_back(std::move(e));
        }
      }
      q.clock += r.cycles;
      s.run.cycles += r.cycles;
      for (int p = 0; p < hw::kPipes; ++p) s.run.busy_cycles[static_cast<std::size_t>(p)] += r.busy_cycles[static_cast<std::size_t>(p)];
      s.run.hbm_bytes += r.hbm_bytes;
      s.run.l2_bytes += r.l2_bytes;
      s.run.flops += r.flops;
      s.run.instructions += r.instructions;
      s.run.cores_used = std::max(s.run.cores_used, r.cores_used);
    }
    const double peak = ks_matrix_peak(k.matrix_dtype);
    s.memory_cycles = s.run.hbm_bytes / (chip_.hbm_bytes_per_s / chip_.clock_hz);
    s.compute_cycles = peak > 0 ? s.run.flops / peak : 0;
    q.launches.push_back(s);
  }

  std::map<std::string, double> counters(const Event& start, const Event& end) override {
    const auto& a = static_cast<const SimEvent&>(start);
    const auto& b = static_cast<const SimEvent&>(end);
    if (a.queue != b.queue) throw Error(ErrorCode::InvalidArgument, info_.id + ": events of different queues");
    LaunchStats sum;
    double roofline = 0;
    for (std::size_t i = a.launches; i < b.launches && i < a.queue->launches.size(); ++i) {
      const LaunchStats& l = a.queue->launches[i];
      sum.run.cycles += l.run.cycles;
      for (std::size_t p = 0; p < sum.run.busy_cycles.size(); ++p) sum.run.busy_cycles[p] += l.run.busy_cycles[p];
      sum.run.hbm_bytes += l.run.hbm_bytes;
      sum.run.l2_bytes += l.run.l2_bytes;
      sum.run.flops += l.run.flops;
      sum.run.instructions += l.run.instructions;
      sum.memory_cycles += l.memory_cycles;
      sum.compute_cycles += l.compute_cycles;
      roofline += std::max(l.memory_cycles, l.compute_cycles);
    }
    const double pipe_cycles = sum.run.cycles * static_cast<double>(chip_.cores);
    auto util = [&](hw::Pipe p) {
      return pipe_cycles > 0 ? sum.run.busy_cycles[static_cast<std::size_t>(p)] / pipe_cycles : 0.0;
    };
    return {{"cycles", sum.run.cycles},
            {"util.dma_in", util(hw::Pipe::DmaIn)},
            {"util.matrix", util(hw::Pipe::Matrix)},
            {"util.vector", util(hw::Pipe::Vector)},
            {"util.dma_out", util(hw::Pipe::DmaOut)},
            {"hbm_bytes", sum.run.hbm_bytes},
            {"l2_bytes", sum.run.l2_bytes},
            {"flops", sum.run.flops},
            {"instructions", static_cast<double>(sum.run.instructions)},
            {"roofline_cycles", roofline},
            {"bound", sum.compute_cycles > sum.memory_cycles ? 1.0 : 0.0}};
  }

  std::string take_trace() override {
    if (!options_.trace) return {};
    std::lock_guard lock(trace_mu_);
    std::string json = hw::chrome_trace_json(chip_, trace_);
    trace_.clear();
    return json;
  }

 private:
  // The whole chip's matrix FLOP per cycle for operands of dtype d.
  double ks_matrix_peak(DType d) const {
    const auto& m = chip_.core.matrix;
    const double per_core = is_fp8(d) ? m.fp8_flops_per_cycle
                            : (d == DType::bf16 || d == DType::f16) ? m.bf16_flops_per_cycle
                                                                     : m.f32_flops_per_cycle;
    return per_core * static_cast<double>(chip_.cores);
  }

  hw::ChipDesc chip_;
  DeviceInfo info_;
  DeviceOptions options_;
  std::string compiler_id_;
  std::shared_ptr<DeviceMemory> memory_;
  std::int64_t constants_ = 0;
  std::mutex trace_mu_;
  std::vector<hw::TraceEvent> trace_;
};

class SimBackend final : public Backend {
 public:
  std::string_view name() const override { return "sim"; }

  std::vector<DeviceInfo> enumerate() override {
    std::vector<DeviceInfo> devices;
    for (const std::string& preset : hw::preset_names()) {
      const std::string id = "sim:" + preset;
      try {
        devices.push_back(sim_info(id, hw::load_chip(preset)));
      } catch (const std::exception& e) {
        DeviceInfo info;
        info.id = id, info.backend = "sim", info.name = preset;
        info.unavailable_reason = e.what();
        devices.push_back(std::move(info));
      }
    }
    return devices;
  }

  std::unique_ptr<Device> open(std::string_view id, const DeviceOptions& options) override {
    if (id.substr(0, 4) != "sim:" || id.size() == 4)
      throw Error(ErrorCode::InvalidArgument,
                  "sim: no device '" + std::string(id) + "' (use sim:<preset> or sim:<path to chip.json>)");
    return std::make_unique<SimDevice>(std::string(id), hw::load_chip(id.substr(4)), options);
  }
};

static_assert(BackendImpl<SimBackend>);

}  // namespace

std::unique_ptr<Backend> make_sim_backend() { return std::make_unique<SimBackend>(); }

}  // namespace anychip::backends
