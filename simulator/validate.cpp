// Program validation: everything that can be known about a program before it runs. A
// program that passes cannot touch a byte outside its core's buffers (or outside the
// device memory, in a functional run), and every operand has a dtype its unit executes.
#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/quantize.hpp"
#include "simulator/engine_impl.hpp"
#include "simulator/program_impl.hpp"

namespace anychip::sim::detail {

void instruction_error(const RunContext& ctx, std::int64_t item, const Program& program, std::size_t index,
                       const std::string& what) {
  throw Error(ErrorCode::InvalidArgument, "kernel " + std::string(ctx.kernel) + ": work item " +
                                              std::to_string(item) + ": instruction " + std::to_string(index) +
                                              " (" + to_text(program.instrs[index]) + "): " + what);
}

namespace {

constexpr int kMaxFlags = 1 << 16;
constexpr std::int64_t kMaxBytes = std::int64_t{1} << 50;  // far beyond any memory; keeps products exact

bool is_element_dtype(DType d) { return is_float(d) || is_fp8(d); }

class Checker {
 public:
  Checker(const RunContext& ctx, std::int64_t item, const Program& program, std::int64_t hbm_bytes)
      : ctx_(ctx), chip_(*ctx.chip), item_(item), program_(program), hbm_bytes_(hbm_bytes) {}

  ProgramFacts run() {
    std::vector<std::int64_t> signals, waits;
    for (index_ = 0; index_ < program_.instrs.size(); ++index_) {
      std::visit([&](const auto& i) { check(i); }, program_.instrs[index_]);
      const Instr& instr = program_.instrs[index_];
      if (const auto* s = std::get_if<Signal>(&instr)) count(signals, s->flag);
      if (const auto* w = std::get_if<Wait>(&instr)) count(waits, w->flag);
    }
    // A wait beyond the signals of its flag can never be satisfied.
    for (std::size_t f = 0; f < waits.size(); ++f) {
      const std::int64_t s = f < signals.size() ? signals[f] : 0;
      if (waits[f] <= s) continue;
      std::int64_t seen = 0;
      for (index_ = 0; index_ < program_.instrs.size(); ++index_) {
        const auto* w = std::get_if<Wait>(&program_.instrs[index_]);
        if (w && w->flag == static_cast<int>(f) && ++seen > s)
          fail("deadlock: this wait can never be satisfied: flag " + std::to_string(f) + " is signalled " +
               std::to_string(s) + " times and waited on " + std::to_string(waits[f]) + " times");
      }
    }
    facts_.flags = static_cast<int>(std::max(signals.size(), waits.size()));
    return facts_;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { instruction_error(ctx_, item_, program_, index_, what); }

  void count(std::vector<std::int64_t>& counts, int flag) {
    if (static_cast<std::size_t>(flag) >= counts.size()) counts.resize(static_cast<std::size_t>(flag) + 1);
    ++counts[static_cast<std::size_t>(flag)];
  }

  void check_count(const char* what, std::int64_t v) const {
    if (v < 0 || v > kMaxBytes) fail(std::string(what) + " = " + std::to_string(v) + " is out of range");
  }

  std::int64_t product(std::int64_t a, std::int64_t b, const char* what) const {
    std::int64_t r;
    if (__builtin_mul_overflow(a, b, &r) || r > kMaxBytes) fail(std::string(what) + " is too large");
    return r;
  }

  // `bytes` bytes at `a` must lie in one of the core's buffers (`allowed` spaces).
  void local(const char* operand, Addr a, std::int64_t bytes, bool spm_ok, bool acc_ok) {
    const bool ok = (a.space == Space::Spm && spm_ok) || (a.space == Space::Acc && acc_ok);
    if (!ok) {
      std::string spaces = spm_ok && acc_ok ? "spm or acc" : spm_ok ? "spm" : "acc";
      fail(std::string(operand) + " is in " + std::string(space_name(a.space)) + "; it must be in " + spaces);
    }
    if (bytes == 0) return;
    const bool spm = a.space == Space::Spm;
    const std::int64_t capacity = spm ? chip_.core.scratchpad_bytes : chip_.core.accumulator_bytes;
    if (a.offset < 0 || a.offset > capacity || bytes > capacity - a.offset)
      fail(std::string(operand) + " " + std::string(space_name(a.space)) + "[" + hex(a.offset) + ", " +
           hex(a.offset + bytes) + ") is beyond the " + (spm ? "scratchpad" : "accumulator buffer") + " (" +
           (spm ? "scratchpad_bytes" : "accumulator_bytes") + " = " + std::to_string(capacity) + " on chip " +
           chip_.name + ")");
    std::int64_t& used = spm ? facts_.spm_used : facts_.acc_used;
    used = std::max(used, a.offset + bytes);
  }

  void hbm(const char* operand, const Region& r) {
    if (r.base.space != Space::Hbm)
      fail(std::string(operand) + " is in " + std::string(space_name(r.base.space)) + "; it must be in hbm");
    check_count("rows", r.rows);
    check_count("row_bytes", r.row_bytes);
    check_count("stride", r.stride);
    if (r.rows == 0 || r.row_bytes == 0 || hbm_bytes_ < 0) return;
    const std::int64_t last = product(r.rows - 1, r.stride, "the region") + r.row_bytes;
    if (r.base.offset < 0 || r.base.offset > hbm_bytes_ || last > hbm_bytes_ - r.base.offset)
      fail(std::string(operand) + " hbm[" + hex(r.base.offset) + ", " + hex(r.base.offset + last) +
           ") is beyond the device memory given to the run (" + std::to_string(hbm_bytes_) + " bytes)");
  }

  void dtype_in(const char* what, DType d, bool ok, const char* allowed) const {
    if (!ok) fail(std::string(what) + " " + std::string(dtype_name(d)) + " is not supported (" + allowed + ")");
  }

  void check(const Load& l) {
    local("destination", l.dst, product(l.src.rows, l.src.row_bytes, "the load"), true, true);
    if (!l.index) {
      hbm("source", l.src);
      return;
    }
    const LoadIndex& x = *l.index;
    check_count("index stride", x.stride);
    check_count("index scale", x.scale);
    if (x.bound < 1 || x.bound > kMaxBytes) fail("index bound " + std::to_string(x.bound) + " must be positive");
    if (x.assumed < 0 || x.assumed >= x.bound)
      fail("assumed index " + std::to_string(x.assumed) + " is outside 0.." + std::to_string(x.bound - 1));
    // The indices themselves, and the hull of every row any index 0..bound-1 can address.
    hbm("index", Region{{Space::Hbm, x.at}, x.per_row ? l.src.rows : 1, 4, x.stride});
    Region hull = l.src;
    hull.row_bytes = product(x.bound - 1, x.scale, "the gathered source") + l.src.row_bytes;
    hbm("gathered source", hull);
  }

  void check(const Store& s) {
    hbm("destination", s.dst);
    local("source", s.src, product(s.dst.rows, s.dst.row_bytes, "the store"), true, true);
  }

  void check(const Mma& m) {
    if (m.m < 1 || m.n < 1 || m.k < 1 || m.m > kMaxBytes || m.n > kMaxBytes || m.k > kMaxBytes)
      fail("m, n, k must be positive");
    auto operand_ok = [](DType d) { return is_fp8(d) || is_float(d); };
    dtype_in("a_dtype", m.a_dtype, operand_ok(m.a_dtype), "f8e4m3, f8e5m2, bf16, f16, f32");
    dtype_in("b_dtype", m.b_dtype, operand_ok(m.b_dtype), "f8e4m3, f8e5m2, bf16, f16, f32");
    if (mma_flops_per_cycle(chip_.core.matrix, m.a_dtype, m.b_dtype) <= 0)
      fail("the matrix unit of chip " + chip_.name + " has no rate for " + std::string(dtype_name(m.a_dtype)) +
           " x " + std::string(dtype_name(m.b_dtype)));
    local("a", m.a, product(product(m.m, m.k, "a"), static_cast<std::int64_t>(dtype_size(m.a_dtype)), "a"), true,
          false);
    local("b", m.b, product(product(m.n, m.k, "b"), static_cast<std::int64_t>(dtype_size(m.b_dtype)), "b"), true,
          false);
    local("acc", m.acc, product(product(m.m, m.n, "acc"), 4, "acc"), false, true);
    if (!m.scaled) return;
    if (!chip_.core.matrix.native_ue8m0_scales)
      fail("a scaled mma needs a matrix unit with native block scales; chip " + chip_.name +
           " has native_ue8m0_scales false: accumulate unscaled and rescale on the vector unit (ScaleAccumulate)");
    dtype_in("scale_a dtype", m.scale_a.dtype, is_scale_dtype(m.scale_a.dtype), "f32, ue8m0");
    dtype_in("scale_b dtype", m.scale_b.dtype, is_scale_dtype(m.scale_b.dtype), "f32, ue8m0");
    local("scale_a", m.scale_a.addr, m.m * static_cast<std::int64_t>(dtype_size(m.scale_a.dtype)), true, false);
    local("scale_b", m.scale_b.addr, static_cast<std::int64_t>(dtype_size(m.scale_b.dtype)), true, false);
  }

  void check(const Vec& v) {
    check_count("rows", v.rows);
    check_count("cols", v.cols);
    const std::int64_t n = product(v.rows, v.cols, "rows x cols");
    auto bytes = [&](std::int64_t count, DType d) {
      return product(count, static_cast<std::int64_t>(dtype_size(d)), "an operand");
    };
    const char* const kElem = "f32, bf16, f16, f8e4m3, f8e5m2";
    const char* const kFloat = "f32, bf16, f16";
    switch (v.op) {
      case VecOp::Convert:  // ue8m0 in: scales widened for the vector unit
        dtype_in("dtype_in", v.dtype_in, is_element_dtype(v.dtype_in) || v.dtype_in == DType::ue8m0,
                 "f32, bf16, f16, f8e4m3, f8e5m2, ue8m0");
        dtype_in("dtype_out", v.dtype_out, is_element_dtype(v.dtype_out), kElem);
        local("src0", v.src0, bytes(n, v.dtype_in), true, true);
        local("dst", v.dst, bytes(n, v.dtype_out), true, true);
        return;
      case VecOp::Add:
      case VecOp::SiluMul:
        dtype_in("dtype_in", v.dtype_in, is_element_dtype(v.dtype_in), kElem);
        dtype_in("dtype_out", v.dtype_out, is_element_dtype(v.dtype_out), kElem);
        local("src0", v.src0, bytes(n, v.dtype_in), true, true);
        local("src1", v.src1, bytes(n, v.dtype_in), true, true);
        local("dst", v.dst, bytes(n, v.dtype_out), true, true);
        return;
      case VecOp::ScaleAccumulate:
        dtype_in("scale_dtype", v.scale_dtype, is_scale_dtype(v.scale_dtype), "f32, ue8m0");
        local("src0", v.src0, bytes(n, DType::f32), true, true);
        local("src1", v.src1, bytes(v.rows, v.scale_dtype), true, true);
        local("dst", v.dst, bytes(n, DType::f32), true, true);
        return;
      case VecOp::RowScale:
      case VecOp::RowDivide:
        if (v.op == VecOp::RowDivide) dtype_in("dtype_out", v.dtype_out, is_element_dtype(v.dtype_out), kElem);
        local("src0", v.src0, bytes(n, DType::f32), true, true);
        local("src1", v.src1, bytes(v.rows, DType::f32), true, true);
        local("dst", v.dst, bytes(n, v.op == VecOp::RowDivide ? v.dtype_out : DType::f32), true, true);
        return;
      case VecOp::RmsNorm:
        dtype_in("dtype_in", v.dtype_in, is_float(v.dtype_in), kFloat);
        dtype_in("dtype_out", v.dtype_out, is_element_dtype(v.dtype_out), kElem);
        local("src0", v.src0, bytes(n, v.dtype_in), true, true);
        local("src1", v.src1, bytes(v.cols, v.dtype_in), true, true);
        local("dst", v.dst, bytes(n, v.dtype_out), true, true);
        return;
      case VecOp::Quantize:
      case VecOp::Dequantize: {
        const bool q = v.op == VecOp::Quantize;
        if (v.block_rows < 1 || v.block_cols < 1) fail("block_rows and block_cols must be positive");
        dtype_in("scale_dtype", v.scale_dtype, is_scale_dtype(v.scale_dtype), "f32, ue8m0");
        const BlockShape block{v.block_rows, v.block_cols};
        const std::int64_t scales = product(scale_rows(v.rows, block), scale_cols(v.cols, block), "the scales");
        if (q) {
          dtype_in("dtype_in", v.dtype_in, is_float(v.dtype_in), kFloat);
          dtype_in("dtype_out", v.dtype_out, is_fp8(v.dtype_out), "f8e4m3, f8e5m2");
          local("src0", v.src0, bytes(n, v.dtype_in), true, true);
          local("dst", v.dst, bytes(n, v.dtype_out), true, true);
          local("aux", v.aux, bytes(scales, v.scale_dtype), true, true);
        } else {
          dtype_in("dtype_in", v.dtype_in, is_fp8(v.dtype_in), "f8e4m3, f8e5m2");
          dtype_in("dtype_out", v.dtype_out, is_element_dtype(v.dtype_out), kElem);
          local("src0", v.src0, bytes(n, v.dtype_in), true, true);
          local("src1", v.src1, bytes(scales, v.scale_dtype), true, true);
          local("dst", v.dst, bytes(n, v.dtype_out), true, true);
        }
        return;
      }
      case VecOp::SoftmaxStep:
        dtype_in("dtype_out", v.dtype_out, is_element_dtype(v.dtype_out), kElem);
        local("src0", v.src0, bytes(n, DType::f32), true, true);
        local("dst", v.dst, bytes(n, v.dtype_out), true, true);
        local("max", v.softmax.max, bytes(v.rows, DType::f32), true, true);
        local("sum", v.softmax.sum, bytes(v.rows, DType::f32), true, true);
        local("alpha", v.softmax.alpha, bytes(v.rows, DType::f32), true, true);
        return;
      case VecOp::Rope:
        dtype_in("dtype_in", v.dtype_in, is_float(v.dtype_in), kFloat);
        dtype_in("dtype_out", v.dtype_out, is_float(v.dtype_out), kFloat);
        if (v.block_rows < 1) fail("rope rows per position (block_rows) must be positive");
        if (v.block_cols < 0 || v.block_cols % 2 != 0 || v.block_cols > v.cols)
          fail("rope rotates " + std::to_string(v.block_cols) + " columns (block_cols): it must be even and at most cols " +
               std::to_string(v.cols));
        local("src0", v.src0, bytes(n, v.dtype_in), true, true);
        local("src1", v.src1, bytes((v.rows + v.block_rows - 1) / v.block_rows, DType::i32), true, true);
        local("dst", v.dst, bytes(n, v.dtype_out), true, true);
        return;
      case VecOp::TopK: {
        const MoeParams& m = v.moe;
        if (m.groups < 1 || v.cols % m.groups != 0 || m.top_groups < 1 || m.top_groups > m.groups || m.k < 1 ||
            m.k > m.top_groups * (v.cols / m.groups))
          fail("topk of k=" + std::to_string(m.k) + " among " + std::to_string(m.top_groups) + " of " +
               std::to_string(m.groups) + " groups of " + std::to_string(v.cols) +
               " experts: groups must divide the experts and the kept groups must hold k experts");
        local("src0", v.src0, bytes(n, DType::f32), true, true);
        local("src1", v.src1, bytes(v.cols, DType::f32), true, true);
        local("dst", v.dst, bytes(product(v.rows, m.k, "the chosen experts"), DType::i32), true, true);
        return;
      }
      case VecOp::MoeWeights:
        if (v.moe.experts < 1 || v.moe.experts > kMaxBytes) fail("moe_weights needs experts >= 1");
        local("src0", v.src0, bytes(product(v.rows, v.moe.experts, "the logits"), DType::f32), true, true);
        local("src1", v.src1, bytes(n, DType::i32), true, true);
        local("dst", v.dst, bytes(n, DType::f32), true, true);
        return;
      case VecOp::MoePlan: {
        const MoeParams& m = v.moe;
        if (m.experts < 1 || m.align < 1 || m.first_row < 0 || m.window < 0 || m.plan_rows < 0 ||
            m.experts > kMaxBytes || m.align > kMaxBytes || m.first_row > kMaxBytes || m.window > kMaxBytes ||
            m.plan_rows > kMaxBytes)
          fail("moe_plan needs experts >= 1, align >= 1 and a window of rows at or after 0");
        local("src0", v.src0, bytes(n, DType::i32), true, true);
        local("dst", v.dst, bytes(product(3, m.window, "the plan window"), DType::i32), true, true);
        return;
      }
    }
    fail("unknown vector op " + std::to_string(static_cast<int>(v.op)));
  }

  void check_flag(Pipe pipe, int flag) const {
    if (static_cast<int>(pipe) >= kPipes) fail("pipe " + std::to_string(static_cast<int>(pipe)) + " does not exist");
    if (flag < 0 || flag >= kMaxFlags)
      fail("flag " + std::to_string(flag) + " is out of range (0.." + std::to_string(kMaxFlags - 1) + ")");
  }
  void check(const Signal& s) const { check_flag(s.pipe, s.flag); }
  void check(const Wait& w) const { check_flag(w.pipe, w.flag); }

  const RunContext& ctx_;
  const ChipDesc& chip_;
  std::int64_t item_;
  const Program& program_;
  std::int64_t hbm_bytes_;
  std::size_t index_ = 0;
  ProgramFacts facts_;
};

}  // namespace

ProgramFacts validate_program(const RunContext& ctx, std::int64_t item, const Program& program,
                              std::int64_t hbm_bytes) {
  return Checker(ctx, item, program, hbm_bytes).run();
}

}  // namespace anychip::sim::detail
