// The event-driven timing engine (docs/simulator.md has the model and its assumptions).
//
// Each core runs one work item at a time; its four pipes each execute their own queue in
// order. Time jumps from event to event (a compute instruction ending, a DMA's issue
// phase ending, the first of the transfers sharing a memory finishing, a landing that a
// signal waits for, a core draining); no idle cycle is visited. Simultaneous events are
// handled in a fixed order (time, core, pipe, kind), and nothing depends on host threads or
// pointers, so the same kernel gives the same cycles on every host.
//
// DMA: an instruction first spends the DMA's issue cycles on its pipe, then streams its
// bytes through one of two shared memories, HBM (L2 misses and all stores) or L2 (loads of
// a region still resident), by processor sharing: the n transfers streaming through a
// memory each get min(the core's DMA rate, memory rate / n). When the last byte has
// streamed, the pipe takes its next instruction (requests are pipelined), and the data
// lands one memory latency later. A `signal` on a DMA pipe does not hold its pipe: it
// counts when everything its pipe loaded before it has landed (as a TMA transaction
// barrier does), or, for stores, once their bytes have left the core's buffers (as
// cp.async.bulk.wait_group.read: the buffer may be reused), while the pipe goes on with its
// next transfer. A core drains when its last store has reached HBM.
//
// Processor sharing is computed without touching every transfer: all transfers in a memory
// stream at the same rate, so each memory keeps the bytes one transfer has received since
// it last went idle ("served"), and a transfer finishes when served reaches the value it
// joined at plus its bytes. Each memory keeps the time of its earliest finisher, updated
// on every join and finish; the main loop takes the earliest of the event queue and the
// two memories, so a change of rate leaves no stale event behind.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <cstring>
#include <queue>
#include <unordered_set>

#include "anychip/error.hpp"
#include "simulator/engine_impl.hpp"
#include "simulator/program_impl.hpp"

namespace anychip::sim::detail {
namespace {

using std::int64_t;
using std::uint32_t;

constexpr double kNever = std::numeric_limits<double>::infinity();

enum class OpKind : std::uint8_t { Load, Store, Compute, Signal, Wait };

// One instruction as the timing engine needs it, costed once when the item starts. Kept
// to 32 bytes and stored per pipe in queue order: the engine visits a different core at
// almost every event, so each op it reads is usually a cache miss, and the next op of a
// pipe is prefetched when the pipe starts an instruction.
struct TimedOp {
  double cycles = 0;   // Compute: its duration; Load/Store: the DMA issue cycles
  int64_t bytes = 0;   // Load/Store
  uint32_t index = 0;  // position in the program
  int arg = 0;         // Signal/Wait: the flag; Load/Store: the region's index in CoreRun::regions
  OpKind kind = OpKind::Compute;
  std::uint8_t flags = 0;  // Load: kIndexed, kBypassL2
};
constexpr std::uint8_t kIndexed = 1;   // a gather: its indices are read first
constexpr std::uint8_t kBypassL2 = 2;  // rows scattered by their indices: from HBM, not tracked in L2
static_assert(sizeof(TimedOp) == 32);

struct RegionKey {
  int64_t base, rows, row_bytes, stride;
  bool operator==(const RegionKey&) const = default;
};

struct RegionHash {
  std::size_t operator()(const RegionKey& k) const {
    std::uint64_t h = static_cast<std::uint64_t>(k.base) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<std::uint64_t>(k.rows) + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
    h ^= static_cast<std::uint64_t>(k.row_bytes) + 0x94D049BB133111EBull + (h << 6) + (h >> 2);
    h ^= static_cast<std::uint64_t>(k.stride) + 0xBF58476D1CE4E5B9ull + (h << 6) + (h >> 2);
    return static_cast<std::size_t>(h ^ (h >> 31));
  }
};

// Which regions L2 holds: an LRU of whole regions (an exact region read again hits; a
// region that only overlaps a resident one misses), capacity l2_bytes. The index is an
// open-addressing table (linear probing, backward-shift deletion) of node numbers with a
// 32-bit fingerprint, so a lookup costs one or two cache lines and no allocation.
class L2Residency {
 public:
  explicit L2Residency(int64_t capacity) : capacity_(capacity) { slots_.resize(1024); }

  // Whether `key` is resident (it becomes the most recent); if not, it is inserted.
  bool access(const RegionKey& key, int64_t bytes) {
    const std::size_t h = RegionHash{}(key);
    const uint32_t n = find(key, h);
    if (n != kNone) {
      touch(n);
      return true;
    }
    insert(key, h, bytes);
    return false;
  }

  // Makes `key` resident (a store writes through L2).
  void write(const RegionKey& key, int64_t bytes) {
    const std::size_t h = RegionHash{}(key);
    const uint32_t n = find(key, h);
    if (n != kNone) touch(n);
    else insert(key, h, bytes);
  }

 private:
  static constexpr uint32_t kNone = ~0u;
  struct Node {
    RegionKey key;
    int64_t bytes;
    uint32_t prev, next;  // prev: more recent
    uint32_t hash;
  };
  struct Slot {
    uint32_t node = kNone;
    uint32_t hash = 0;
  };

  std::size_t mask() const { return slots_.size() - 1; }

  uint32_t find(const RegionKey& key, std::size_t h) const {
    const auto h32 = static_cast<uint32_t>(h);
    for (std::size_t i = h & mask();; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (s.node == kNone) return kNone;
      if (s.hash == h32 && nodes_[s.node].key == key) return s.node;
    }
  }

  void place(uint32_t n) {
    std::size_t i = nodes_[n].hash & mask();
    while (slots_[i].node != kNone) i = (i + 1) & mask();
    slots_[i] = Slot{n, nodes_[n].hash};
  }

  void unplace(uint32_t n) {
    std::size_t i = nodes_[n].hash & mask();
    while (slots_[i].node != n) i = (i + 1) & mask();
    // Backward-shift deletion: move later members of the probe run into the hole.
    for (std::size_t j = (i + 1) & mask(); slots_[j].node != kNone; j = (j + 1) & mask()) {
      const std::size_t home = slots_[j].hash & mask();
      if (((j - home) & mask()) >= ((j - i) & mask())) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
  }

  void insert(const RegionKey& key, std::size_t h, int64_t bytes) {
    if (bytes > capacity_ || bytes <= 0) return;
    while (used_ + bytes > capacity_) evict();
    uint32_t n;
    if (!free_.empty()) {
      n = free_.back();
      free_.pop_back();
    } else {
      n = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back();
    }
    nodes_[n] = Node{key, bytes, kNone, kNone, static_cast<uint32_t>(h)};
    link_front(n);
    used_ += bytes;
    if (2 * (++count_) > slots_.size()) {  // keep the table at most half full
      slots_.assign(2 * slots_.size(), Slot{});
      for (uint32_t x = head_; x != kNone; x = nodes_[x].next) place(x);
    } else {
      place(n);
    }
  }

  void evict() {
    const uint32_t n = tail_;
    unlink(n);
    unplace(n);
    --count_;
    used_ -= nodes_[n].bytes;
    free_.push_back(n);
  }

  void touch(uint32_t n) {
    if (head_ == n) return;
    unlink(n);
    link_front(n);
  }

  void unlink(uint32_t n) {
    Node& x = nodes_[n];
    if (x.prev != kNone) nodes_[x.prev].next = x.next;
    else head_ = x.next;
    if (x.next != kNone) nodes_[x.next].prev = x.prev;
    else tail_ = x.prev;
  }

  void link_front(uint32_t n) {
    nodes_[n].prev = kNone;
    nodes_[n].next = head_;
    if (head_ != kNone) nodes_[head_].prev = n;
    head_ = n;
    if (tail_ == kNone) tail_ = n;
  }

  int64_t capacity_;
  int64_t used_ = 0;
  std::size_t count_ = 0;
  std::vector<Node> nodes_;
  std::vector<uint32_t> free_;
  std::vector<Slot> slots_;
  uint32_t head_ = kNone, tail_ = kNone;
};

enum class EventKind : std::uint8_t { ComputeDone, IssueDone, MemoryFinish, FlagLanded, Drained };


struct Event {
  double time;
  uint32_t core;
  std::uint8_t pipe;
  EventKind kind;
  std::uint8_t memory;  // MemoryFinish
  uint32_t item;        // FlagLanded: the work item that signalled
  int flag;             // FlagLanded
};

struct Later {
  bool operator()(const Event& a, const Event& b) const {
    if (a.time != b.time) return a.time > b.time;
    if (a.core != b.core) return a.core > b.core;
    if (a.pipe != b.pipe) return a.pipe > b.pipe;
    if (a.kind != b.kind) return a.kind > b.kind;
    return a.memory > b.memory;
  }
};

// A memory shared by processor sharing (see the top of the file).
struct SharedMemory {
  struct Transfer {
    double finish;  // the value of `served` at which it has streamed all its bytes
    uint32_t core;
    std::uint8_t pipe;
  };
  struct FinishesLater {
    bool operator()(const Transfer& a, const Transfer& b) const {
      if (a.finish != b.finish) return a.finish > b.finish;
      if (a.core != b.core) return a.core > b.core;
      return a.pipe > b.pipe;
    }
  };

  double bytes_per_cycle = 0;     // the memory's rate
  double transfer_cap = 0;        // one transfer's rate at most (the core's DMA)
  double latency_cycles = 0;      // from the last byte streamed to the data landing
  double served = 0, last = 0;
  std::vector<Transfer> streaming;  // a heap, earliest finisher first
  double next_time = kNever;        // when streaming.front() finishes

  double rate() const {
    return std::min(transfer_cap, bytes_per_cycle / static_cast<double>(streaming.size()));
  }
  void advance(double now) {
    if (!streaming.empty()) served += rate() * (now - last);
    last = now;
  }
  double next_finish() const { return last + std::max(0.0, streaming.front().finish - served) / rate(); }
};

enum class PipeState : std::uint8_t { Ready, Busy, Blocked, Done };

struct PipeRun {
  uint32_t next = 0;  // position in the pipe's queue
  PipeState state = PipeState::Ready;
  bool waited = false;    // the head wait has blocked (for the trace)
  std::uint8_t memory = 0;  // of the streaming transfer
  int blocked_flag = -1;
  double start = 0;         // of the running instruction, or of the blocked wait
  double landed = 0;        // DMA pipes: when everything loaded so far has landed
  double written = 0;       // when everything stored so far has reached HBM
};

struct CoreRun {
  int64_t item = -1;
  bool active = false;
  int done_pipes = 0;
  unsigned ready = 0;  // pipes to step
  Program program;
  std::array<std::vector<TimedOp>, kPipes> ops;  // each pipe's queue
  std::vector<RegionKey> regions;                // of the DMA instructions
  std::vector<int> flags;
  std::array<PipeRun, kPipes> pipes;
  std::unordered_set<int64_t> index_lines;  // 64-byte lines of gather indices read by this item
};

class Engine {
 public:
  Engine(const RunContext& ctx, const TileKernel& kernel, std::span<const int64_t> args, int64_t hbm_bytes,
         std::span<const std::byte> hbm, std::vector<TraceEvent>* trace)
      : ctx_(ctx),
        chip_(*ctx.chip),
        kernel_(kernel),
        args_(args),
        hbm_bytes_(hbm_bytes),
        hbm_(hbm),
        trace_(trace),
        l2_(chip_.l2_bytes),
        cores_(static_cast<std::size_t>(std::min<int64_t>(chip_.cores, std::max<int64_t>(kernel.work_items, 0)))) {
    const double hbm_latency = chip_.hbm_latency_ns * 1e-9 * chip_.clock_hz;
    memories_[kHbm].bytes_per_cycle = chip_.hbm_bytes_per_s / chip_.clock_hz;
    memories_[kHbm].latency_cycles = hbm_latency;
    memories_[kL2].bytes_per_cycle = chip_.l2_bytes_per_s / chip_.clock_hz;
    memories_[kL2].latency_cycles = hbm_latency * kL2LatencyFraction;
    for (SharedMemory& m : memories_) m.transfer_cap = chip_.core.dma.bytes_per_cycle;
  }

  RunStats run() {
    for (std::size_t c = 0; c < cores_.size(); ++c) start_item(static_cast<uint32_t>(c), next_item_++, 0.0);
    stats_.cores_used = static_cast<int64_t>(cores_.size());
    for (;;) {
      // The earliest of the queue and the two memories' first finishers.
      Event ev{kNever, 0, 0, EventKind::MemoryFinish, 0, 0, 0};
      bool from_queue = false;
      if (!events_.empty()) ev = events_.top(), from_queue = true;
      for (std::uint8_t m = 0; m < 2; ++m) {
        const SharedMemory& mem = memories_[m];
        if (mem.next_time == kNever) continue;
        const Event candidate{mem.next_time, mem.streaming.front().core, mem.streaming.front().pipe,
                              EventKind::MemoryFinish, m, 0, 0};
        if (ev.time == kNever || Later{}(ev, candidate)) ev = candidate, from_queue = false;
      }
      if (ev.time == kNever) break;
      if (from_queue) events_.pop();
      const double now = ev.time;
      switch (ev.kind) {
        case EventKind::ComputeDone: compute_done(ev.core, ev.pipe, now); break;
        case EventKind::IssueDone:
          start_stream(ev.core, ev.pipe, now);
          pump(ev.core, now);
          break;
        case EventKind::MemoryFinish: memory_finish(ev.memory, now); break;
        case EventKind::FlagLanded:
          if (cores_[ev.core].active && static_cast<uint32_t>(cores_[ev.core].item) == ev.item) {
            count_signal(ev.core, ev.flag);
            pump(ev.core, now);
          }
          break;
        case EventKind::Drained: drained(ev.core, now); break;
      }
    }
    for (std::size_t c = 0; c < cores_.size(); ++c)
      if (cores_[c].active) deadlock(cores_[c]);

    const double hbm_floor = stats_.hbm_bytes / memories_[kHbm].bytes_per_cycle;
    const double l2_floor = stats_.l2_bytes / memories_[kL2].bytes_per_cycle;
    stats_.roofline_cycles = std::max({hbm_floor, l2_floor, matrix_floor_});
    return stats_;
  }

 private:
  static constexpr std::uint8_t kHbm = 0, kL2 = 1;
  // L2 hit latency as a fraction of the HBM latency (an assumption: docs/simulator.md).
  static constexpr double kL2LatencyFraction = 0.5;

  static bool is_dma(int p) { return p == static_cast<int>(Pipe::DmaIn) || p == static_cast<int>(Pipe::DmaOut); }

  void push(double time, uint32_t core, int pipe, EventKind kind, uint32_t item = 0, int flag = 0) {
    events_.push(Event{time, core, static_cast<std::uint8_t>(pipe), kind, 0, item, flag});
  }

  void start_item(uint32_t c, int64_t item, double now) {
    CoreRun& core = cores_[c];
    core.item = item;
    core.active = true;
    core.program.instrs.clear();
    kernel_.build(item, args_, core.program);
    const ProgramFacts facts = validate_program(ctx_, item, core.program, hbm_bytes_);
    compile(core);
    core.flags.assign(static_cast<std::size_t>(facts.flags), 0);
    core.pipes = {};
    core.index_lines.clear();
    core.done_pipes = 0;
    core.ready = (1u << kPipes) - 1;
    pump(c, now);
  }

  void compile(CoreRun& core) {
    for (auto& q : core.ops) q.clear();
    core.regions.clear();
    const auto& instrs = core.program.instrs;
    for (std::size_t i = 0; i < instrs.size(); ++i) {
      TimedOp op;
      op.index = static_cast<uint32_t>(i);
      const Instr& instr = instrs[i];
      const Pipe pipe = pipe_of(instr);
      if (const auto* l = std::get_if<Load>(&instr)) {
        op.kind = OpKind::Load;
        if (l->index) gather_region(core, op, *l);
        else set_region(core, op, l->src);
      } else if (const auto* s = std::get_if<Store>(&instr)) {
        op.kind = OpKind::Store;
        set_region(core, op, s->dst);
      } else if (const auto* m = std::get_if<Mma>(&instr)) {
        op.kind = OpKind::Compute;
        op.cycles = mma_cycles(chip_.core.matrix, *m);
        // Counted when the item starts: every item runs to completion or the run fails.
        const double flops = 2.0 * static_cast<double>(m->m) * static_cast<double>(m->n) * static_cast<double>(m->k);
        stats_.flops += flops;
        matrix_floor_ += flops / (mma_flops_per_cycle(chip_.core.matrix, m->a_dtype, m->b_dtype) *
                                  static_cast<double>(chip_.cores));
      } else if (const auto* v = std::get_if<Vec>(&instr)) {
        op.kind = OpKind::Compute;
        op.cycles = vec_cycles(chip_.core.vector, *v);
      } else if (const auto* sg = std::get_if<Signal>(&instr)) {
        op.kind = OpKind::Signal;
        op.arg = sg->flag;
      } else if (const auto* w = std::get_if<Wait>(&instr)) {
        op.kind = OpKind::Wait;
        op.arg = w->flag;
      }
      core.ops[static_cast<std::size_t>(pipe)].push_back(op);
    }
  }

  void set_region(CoreRun& core, TimedOp& op, const Region& r) {
    op.cycles = static_cast<double>(chip_.core.dma.issue_cycles);
    op.bytes = r.rows * r.row_bytes;
    op.arg = static_cast<int>(core.regions.size());
    core.regions.push_back(RegionKey{r.base.offset, r.rows, r.row_bytes, r.rows > 1 ? r.stride : 0});
  }

  // A gather. A per-load index moves the whole region: the real index when the run has
  // data, else the lowering's assumed one (docs/simulator.md); a negative index zero-fills
  // and moves no bytes. Rows scattered by per-row indices stream from HBM and are not
  // tracked in L2; a per-row mask (scale 0) loads the region as a plain load would.
  void gather_region(CoreRun& core, TimedOp& op, const Load& l) {
    const LoadIndex& x = *l.index;
    op.flags = kIndexed;
    Region r = l.src;
    if (x.per_row) {
      if (x.scale != 0) op.flags |= kBypassL2;
      set_region(core, op, r);
      return;
    }
    int64_t idx = x.assumed;
    if (!hbm_.empty()) {
      std::int32_t v;
      std::memcpy(&v, hbm_.data() + x.at, 4);  // validated: within the memory
      if (v < x.bound) idx = v;                 // out of range: the functional pass reports it
    }
    if (idx >= 0) r.base.offset += idx * x.scale;
    set_region(core, op, r);
    if (idx < 0) op.bytes = 0;
  }

  // The cycles a gather's index read adds to its issue: one HBM latency, unless every
  // 64-byte line of its indices has already been read by this work item (the DMA engine
  // keeps the indices it fetched, as a kernel keeps a tile's group in a register).
  double index_read(CoreRun& core, const TimedOp& op) {
    const Load& l = std::get<Load>(core.program.instrs[op.index]);
    const LoadIndex& x = *l.index;
    const int64_t last = x.at + (x.per_row ? (l.src.rows - 1) * x.stride : 0) + 4;
    bool missed = false;
    for (int64_t line = x.at / 64; line * 64 < last; ++line) missed |= core.index_lines.insert(line).second;
    if (!missed) return 0;
    stats_.hbm_bytes += static_cast<double>(x.per_row ? 4 * l.src.rows : 4);
    return index_read_cycles(chip_);
  }

  // Steps every ready pipe of core c, lowest pipe first, until none is ready.
  void pump(uint32_t c, double now) {
    CoreRun& core = cores_[c];
    while (core.ready) {
      const int p = std::countr_zero(core.ready);
      core.ready &= core.ready - 1;
      step(c, p, now);
    }
  }

  // Runs pipe p of core c from its head instruction until it is busy, blocked or done.
  void step(uint32_t c, int p, double now) {
    CoreRun& core = cores_[c];
    PipeRun& pr = core.pipes[static_cast<std::size_t>(p)];
    const auto& queue = core.ops[static_cast<std::size_t>(p)];
    while (pr.state == PipeState::Ready) {
      if (pr.next == queue.size()) {
        pr.state = PipeState::Done;
        if (++core.done_pipes == kPipes) {
          double drained_at = now;
          for (const PipeRun& x : core.pipes) drained_at = std::max({drained_at, x.landed, x.written});
          push(drained_at, c, kPipes, EventKind::Drained);  // after every pipe's event at that time
        }
        return;
      }
      const TimedOp& op = queue[pr.next];
      switch (op.kind) {
        case OpKind::Wait: {
          int& flag = core.flags[static_cast<std::size_t>(op.arg)];
          if (flag == 0) {
            pr.state = PipeState::Blocked;
            pr.blocked_flag = op.arg;
            if (!pr.waited) pr.start = now;
            pr.waited = true;
            return;
          }
          --flag;
          if (trace_ && pr.waited && now > pr.start) emit(c, p, pr.start, now, op, "");
          pr.waited = false;
          retire(pr);
          break;
        }
        case OpKind::Signal:
          if (is_dma(p) && pr.landed > now)
            push(pr.landed, c, p, EventKind::FlagLanded, static_cast<uint32_t>(core.item), op.arg);
          else
            count_signal(c, op.arg);
          retire(pr);
          break;
        case OpKind::Compute:
          pr.state = PipeState::Busy;
          pr.start = now;
          __builtin_prefetch(&op + 1);
          push(now + op.cycles, c, p, EventKind::ComputeDone);
          return;
        case OpKind::Load:
        case OpKind::Store: {
          pr.state = PipeState::Busy;
          pr.start = now;
          __builtin_prefetch(&op + 1);
          const double issue = op.cycles + (op.flags & kIndexed ? index_read(core, op) : 0.0);
          if (issue > 0) push(now + issue, c, p, EventKind::IssueDone);
          else start_stream(c, p, now);
          return;
        }
      }
    }
  }

  // Adds one to flag `flag` of core c and readies the pipes blocked on it.
  void count_signal(uint32_t c, int flag) {
    CoreRun& core = cores_[c];
    ++core.flags[static_cast<std::size_t>(flag)];
    for (int q = 0; q < kPipes; ++q) {
      PipeRun& other = core.pipes[static_cast<std::size_t>(q)];
      if (other.state == PipeState::Blocked && other.blocked_flag == flag) {
        other.state = PipeState::Ready;
        core.ready |= 1u << q;
      }
    }
  }

  void retire(PipeRun& pr) {
    ++pr.next;
    ++stats_.instructions;
  }

  const TimedOp& head(const CoreRun& core, int p) const {
    return core.ops[static_cast<std::size_t>(p)][core.pipes[static_cast<std::size_t>(p)].next];
  }

  void compute_done(uint32_t c, int p, double now) {
    CoreRun& core = cores_[c];
    PipeRun& pr = core.pipes[static_cast<std::size_t>(p)];
    const TimedOp& op = head(core, p);
    stats_.busy_cycles[static_cast<std::size_t>(p)] += now - pr.start;
    if (trace_) emit(c, p, pr.start, now, op, "");
    retire(pr);
    pr.state = PipeState::Ready;
    core.ready |= 1u << p;
    pump(c, now);
  }

  void start_stream(uint32_t c, int p, double now) {
    CoreRun& core = cores_[c];
    PipeRun& pr = core.pipes[static_cast<std::size_t>(p)];
    const TimedOp& op = head(core, p);
    const RegionKey& key = core.regions[static_cast<std::size_t>(op.arg)];
    std::uint8_t memory = kHbm;
    if (op.kind == OpKind::Store) {
      l2_.write(key, op.bytes);
    } else if (!(op.flags & kBypassL2) && op.bytes > 0 && l2_.access(key, op.bytes)) {
      memory = kL2;
    }
    (memory == kL2 ? stats_.l2_bytes : stats_.hbm_bytes) += static_cast<double>(op.bytes);
    pr.memory = memory;
    if (op.bytes == 0) {
      finish_stream(c, p, now);  // the caller pumps the core
      return;
    }
    SharedMemory& m = memories_[memory];
    m.advance(now);
    if (m.streaming.empty()) m.served = 0;
    m.streaming.push_back({m.served + static_cast<double>(op.bytes), c, static_cast<std::uint8_t>(p)});
    std::push_heap(m.streaming.begin(), m.streaming.end(), SharedMemory::FinishesLater{});
    reschedule(memory);
  }

  void reschedule(std::uint8_t memory) {
    SharedMemory& m = memories_[memory];
    m.next_time = m.streaming.empty() ? kNever : m.next_finish();
  }

  void memory_finish(std::uint8_t memory, double now) {
    SharedMemory& m = memories_[memory];
    m.advance(now);
    finished_.clear();
    // The scheduled transfer, and any that finish within rounding of it.
    do {
      std::pop_heap(m.streaming.begin(), m.streaming.end(), SharedMemory::FinishesLater{});
      finished_.push_back(m.streaming.back());
      m.streaming.pop_back();
    } while (!m.streaming.empty() &&
             m.streaming.front().finish <= m.served + 1e-9 * std::max(1.0, m.streaming.front().finish));
    reschedule(memory);
    for (const auto& t : finished_) {
      finish_stream(t.core, t.pipe, now);
      pump(t.core, now);
    }
  }

  void finish_stream(uint32_t c, int p, double now) {
    CoreRun& core = cores_[c];
    PipeRun& pr = core.pipes[static_cast<std::size_t>(p)];
    const TimedOp& op = head(core, p);
    stats_.busy_cycles[static_cast<std::size_t>(p)] += now - pr.start;
    const double arrives = now + memories_[pr.memory].latency_cycles;
    if (op.kind == OpKind::Load) pr.landed = std::max(pr.landed, arrives);
    else pr.written = std::max(pr.written, arrives);
    if (trace_) emit(c, p, pr.start, now, op, pr.memory == kL2 ? " L2" : "");
    retire(pr);
    pr.state = PipeState::Ready;
    core.ready |= 1u << p;
  }

  void drained(uint32_t c, double now) {
    CoreRun& core = cores_[c];
    core.active = false;
    stats_.cycles = std::max(stats_.cycles, now);
    if (next_item_ < kernel_.work_items) start_item(c, next_item_++, now);
  }

  void emit(uint32_t c, int p, double start, double end, const TimedOp& op, const char* suffix) {
    trace_->push_back(TraceEvent{static_cast<int64_t>(c), static_cast<Pipe>(p), start, end,
                                 instr_name(cores_[c].program.instrs[op.index]) + suffix});
  }

  [[noreturn]] void deadlock(const CoreRun& core) {
    std::string blocked;
    std::size_t first = core.program.instrs.size();
    for (int p = 0; p < kPipes; ++p) {
      const PipeRun& pr = core.pipes[static_cast<std::size_t>(p)];
      if (pr.state != PipeState::Blocked) continue;
      const uint32_t index = head(core, p).index;
      first = std::min<std::size_t>(first, index);
      blocked += std::string(blocked.empty() ? "" : "; ") + std::string(pipe_name(static_cast<Pipe>(p))) +
                 " waits at instruction " + std::to_string(index) + " (" + to_text(core.program.instrs[index]) +
                 ") for flag " + std::to_string(pr.blocked_flag);
    }
    if (first == core.program.instrs.size())
      throw Error(ErrorCode::Internal, "kernel " + std::string(ctx_.kernel) + ": work item " +
                                           std::to_string(core.item) + ": the timing engine stopped early");
    instruction_error(ctx_, core.item, core.program, first, "deadlock: no pipe can progress: " + blocked);
  }

  const RunContext& ctx_;
  const ChipDesc& chip_;
  const TileKernel& kernel_;
  std::span<const int64_t> args_;
  int64_t hbm_bytes_;
  std::span<const std::byte> hbm_;
  std::vector<TraceEvent>* trace_;
  L2Residency l2_;
  std::vector<CoreRun> cores_;
  std::array<SharedMemory, 2> memories_;
  std::priority_queue<Event, std::vector<Event>, Later> events_;
  std::vector<SharedMemory::Transfer> finished_;
  int64_t next_item_ = 0;
  double matrix_floor_ = 0;
  RunStats stats_;
};

}  // namespace

RunStats run_timing(const RunContext& ctx, const TileKernel& kernel, std::span<const int64_t> args,
                    int64_t hbm_bytes, std::span<const std::byte> hbm, std::vector<TraceEvent>* trace) {
  return Engine(ctx, kernel, args, hbm_bytes, hbm, trace).run();
}

}  // namespace anychip::sim::detail
