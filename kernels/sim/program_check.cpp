// check_program (program_check.hpp): vector clocks over the happens-before order of the
// pipes, then a pairwise test of conflicting memory accesses.
#include "kernels/sim/program_check.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <type_traits>
#include <vector>

#include "kernels/sim/tile_builder.hpp"

namespace anychip::kernels::sim {
namespace {

using ::anychip::sim::kPipes;
using ::anychip::sim::pipe_of;
using ::anychip::sim::to_text;

struct Access {
  Space space;
  std::int64_t begin, end;  // bytes [begin, end)
  bool write;
};

using Clock = std::array<std::int64_t, kPipes>;  // instructions of each pipe known to be done

void add(std::vector<Access>& out, Addr a, std::int64_t bytes, bool write) {
  if (bytes > 0) out.push_back({a.space, a.offset, a.offset + bytes, write});
}

void add_region(std::vector<Access>& out, const Region& r, bool write) {
  if (r.rows <= 0 || r.row_bytes <= 0) return;
  // The rows one by one when few, else their hull (conservative).
  if (r.rows <= 64) {
    for (std::int64_t i = 0; i < r.rows; ++i)
      out.push_back({Space::Hbm, r.base.offset + i * r.stride, r.base.offset + i * r.stride + r.row_bytes, write});
  } else {
    out.push_back({Space::Hbm, r.base.offset, r.base.offset + (r.rows - 1) * r.stride + r.row_bytes, write});
  }
}

std::vector<Access> accesses(const Instr& instr) {
  std::vector<Access> a;
  std::visit(
      [&](const auto& i) {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, Load>) {
          if (i.index) {
            // The indices, and every byte any index below the bound can address.
            const auto& x = *i.index;
            add_region(a, Region{{Space::Hbm, x.at}, x.per_row ? i.src.rows : 1, 4, x.stride}, false);
            Region hull = i.src;
            hull.row_bytes += (x.bound - 1) * x.scale;
            add_region(a, hull, false);
          } else {
            add_region(a, i.src, false);
          }
          add(a, i.dst, i.src.rows * i.src.row_bytes, true);
        } else if constexpr (std::is_same_v<T, Store>) {
          add(a, i.src, i.dst.rows * i.dst.row_bytes, false);
          add_region(a, i.dst, true);
        } else if constexpr (std::is_same_v<T, Mma>) {
          add(a, i.a, bytes_of(i.a_dtype, i.m * i.k), false);
          add(a, i.b, bytes_of(i.b_dtype, i.n * i.k), false);
          if (i.scaled) {
            add(a, i.scale_a.addr, bytes_of(i.scale_a.dtype, i.m), false);
            add(a, i.scale_b.addr, bytes_of(i.scale_b.dtype, 1), false);
          }
          if (i.accumulate) add(a, i.acc, i.m * i.n * 4, false);
          add(a, i.acc, i.m * i.n * 4, true);
        } else if constexpr (std::is_same_v<T, Vec>) {
          const std::int64_t n = i.rows * i.cols;
          const BlockShape block{std::max<std::int64_t>(i.block_rows, 1), std::max<std::int64_t>(i.block_cols, 1)};
          const std::int64_t scales = scale_rows(i.rows, block) * scale_cols(i.cols, block);
          switch (i.op) {
            case VecOp::Convert:
              add(a, i.src0, bytes_of(i.dtype_in, n), false);
              add(a, i.dst, bytes_of(i.dtype_out, n), true);
              break;
            case VecOp::Add:
            case VecOp::SiluMul:
              add(a, i.src0, bytes_of(i.dtype_in, n), false);
              add(a, i.src1, bytes_of(i.dtype_in, n), false);
              add(a, i.dst, bytes_of(i.dtype_out, n), true);
              break;
            case VecOp::ScaleAccumulate:
              add(a, i.src0, n * 4, false);
              add(a, i.src1, bytes_of(i.scale_dtype, i.rows), false);
              add(a, i.dst, n * 4, false);
              add(a, i.dst, n * 4, true);
              break;
            case VecOp::RowScale:
            case VecOp::RowDivide:
              add(a, i.src0, n * 4, false);
              add(a, i.src1, i.rows * 4, false);
              add(a, i.dst, i.op == VecOp::RowScale ? n * 4 : bytes_of(i.dtype_out, n), true);
              break;
            case VecOp::RmsNorm:
              add(a, i.src0, bytes_of(i.dtype_in, n), false);
              add(a, i.src1, bytes_of(i.dtype_in, i.cols), false);
              add(a, i.dst, bytes_of(i.dtype_out, n), true);
              break;
            case VecOp::Quantize:
              add(a, i.src0, bytes_of(i.dtype_in, n), false);
              add(a, i.dst, bytes_of(i.dtype_out, n), true);
              add(a, i.aux, bytes_of(i.scale_dtype, scales), true);
              break;
            case VecOp::Dequantize:
              add(a, i.src0, bytes_of(i.dtype_in, n), false);
              add(a, i.src1, bytes_of(i.scale_dtype, scales), false);
              add(a, i.dst, bytes_of(i.dtype_out, n), true);
              break;
            case VecOp::SoftmaxStep:
              add(a, i.src0, n * 4, false);
              for (Addr v : {i.softmax.max, i.softmax.sum}) {
                add(a, v, i.rows * 4, false);
                add(a, v, i.rows * 4, true);
              }
              add(a, i.softmax.alpha, i.rows * 4, true);
              add(a, i.dst, bytes_of(i.dtype_out, n), true);
              break;
            case VecOp::Rope:
              add(a, i.src0, bytes_of(i.dtype_in, n), false);
              add(a, i.src1, ceil_div(i.rows, std::max<std::int64_t>(i.block_rows, 1)) * 4, false);
              add(a, i.dst, bytes_of(i.dtype_out, n), true);
              break;
            case VecOp::TopK:
              add(a, i.src0, n * 4, false);
              add(a, i.src1, i.cols * 4, false);
              add(a, i.dst, i.rows * i.moe.k * 4, true);
              break;
            case VecOp::MoeWeights:
              add(a, i.src0, i.rows * i.moe.experts * 4, false);
              add(a, i.src1, n * 4, false);
              add(a, i.dst, n * 4, true);
              break;
            case VecOp::MoePlan:
              add(a, i.src0, n * 4, false);
              add(a, i.dst, 3 * i.moe.window * 4, true);
              break;
          }
        }
      },
      instr);
  return a;
}

bool conflict(const Access& x, const Access& y) {
  return x.space == y.space && (x.write || y.write) && x.begin < y.end && y.begin < x.end;
}

std::string at(const Program& p, std::size_t i) {
  return "instruction " + std::to_string(i) + " (" + to_text(p.instrs[i]) + ")";
}

}  // namespace

std::string check_program(const Program& program) {
  const std::size_t n = program.instrs.size();
  std::vector<Clock> clock(n);
  std::vector<int> pipe(n);
  std::vector<std::int64_t> seq(n);  // 1-based position in its pipe
  std::array<Clock, kPipes> pipe_clock{};  // the clock of each pipe's last instruction
  struct FlagUse {
    int signal_pipe = -1, wait_pipe = -1;
    std::vector<std::size_t> signals;
    std::size_t waits = 0;
  };
  std::map<int, FlagUse> flags;

  for (std::size_t i = 0; i < n; ++i) {
    const Instr& instr = program.instrs[i];
    const int p = static_cast<int>(pipe_of(instr));
    pipe[i] = p;
    Clock c = pipe_clock[static_cast<std::size_t>(p)];
    seq[i] = ++c[static_cast<std::size_t>(p)];
    if (const auto* s = std::get_if<Signal>(&instr)) {
      FlagUse& f = flags[s->flag];
      if (f.signal_pipe >= 0 && f.signal_pipe != p)
        return at(program, i) + ": flag " + std::to_string(s->flag) + " is signalled from two pipes";
      f.signal_pipe = p;
      f.signals.push_back(i);
    } else if (const auto* w = std::get_if<Wait>(&instr)) {
      FlagUse& f = flags[w->flag];
      if (f.wait_pipe >= 0 && f.wait_pipe != p)
        return at(program, i) + ": flag " + std::to_string(w->flag) + " is waited on by two pipes";
      f.wait_pipe = p;
      if (f.waits >= f.signals.size())
        return at(program, i) + ": waits for a signal that comes later in program order (or never)";
      const Clock& s = clock[f.signals[f.waits++]];
      for (std::size_t q = 0; q < c.size(); ++q) c[q] = std::max(c[q], s[q]);
    }
    clock[i] = c;
    pipe_clock[static_cast<std::size_t>(p)] = c;
  }
  for (const auto& [flag, f] : flags)
    if (f.waits != f.signals.size())
      return "flag " + std::to_string(flag) + " is signalled " + std::to_string(f.signals.size()) +
             " times and waited on " + std::to_string(f.waits) + " times";

  std::vector<std::vector<Access>> acc(n);
  for (std::size_t i = 0; i < n; ++i) acc[i] = accesses(program.instrs[i]);
  for (std::size_t j = 0; j < n; ++j) {
    if (acc[j].empty()) continue;
    for (std::size_t i = 0; i < j; ++i) {
      if (pipe[i] == pipe[j] || acc[i].empty()) continue;
      if (clock[j][static_cast<std::size_t>(pipe[i])] >= seq[i]) continue;  // i happens before j
      for (const Access& x : acc[i])
        for (const Access& y : acc[j])
          if (conflict(x, y))
            return at(program, i) + " and " + at(program, j) +
                   " touch the same bytes from different pipes and no flag orders them";
    }
  }
  return "";
}

}  // namespace anychip::kernels::sim
