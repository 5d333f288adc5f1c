// The tile ISA's helpers: which pipe runs an instruction, and the readable text of
// programs (one instruction per line, its pipe first, so that a reader can follow each
// pipe's queue by eye).
#include "simulator/program.hpp"

#include <cstdio>
#include <type_traits>

#include "simulator/program_impl.hpp"

namespace anychip::sim {

std::string_view pipe_name(Pipe p) {
  switch (p) {
    case Pipe::DmaIn: return "dma_in";
    case Pipe::Matrix: return "matrix";
    case Pipe::Vector: return "vector";
    case Pipe::DmaOut: return "dma_out";
  }
  return "?";
}

Pipe pipe_of(const Instr& instr) {
  return std::visit(
      [](const auto& i) -> Pipe {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, Load>) return Pipe::DmaIn;
        else if constexpr (std::is_same_v<T, Store>) return Pipe::DmaOut;
        else if constexpr (std::is_same_v<T, Mma>) return Pipe::Matrix;
        else if constexpr (std::is_same_v<T, Vec>) return Pipe::Vector;
        else return i.pipe;  // Signal, Wait
      },
      instr);
}

namespace detail {

std::string_view vec_op_name(VecOp op) {
  switch (op) {
    case VecOp::Convert: return "convert";
    case VecOp::Add: return "add";
    case VecOp::ScaleAccumulate: return "scale_accumulate";
    case VecOp::RowScale: return "row_scale";
    case VecOp::RowDivide: return "row_divide";
    case VecOp::SiluMul: return "silu_mul";
    case VecOp::RmsNorm: return "rms_norm";
    case VecOp::Quantize: return "quantize";
    case VecOp::Dequantize: return "dequantize";
    case VecOp::SoftmaxStep: return "softmax_step";
    case VecOp::Rope: return "rope";
    case VecOp::TopK: return "topk";
    case VecOp::MoeWeights: return "moe_weights";
    case VecOp::MoePlan: return "moe_plan";
  }
  return "?";
}

std::string_view short_dtype(DType d) {
  switch (d) {
    case DType::f8e4m3: return "e4m3";
    case DType::f8e5m2: return "e5m2";
    default: return dtype_name(d);
  }
}

std::string_view space_name(Space s) {
  switch (s) {
    case Space::Hbm: return "hbm";
    case Space::Spm: return "spm";
    case Space::Acc: return "acc";
  }
  return "?";
}

std::string hex(std::int64_t v) {
  char buf[32];
  if (v < 0)
    std::snprintf(buf, sizeof buf, "-0x%llx", static_cast<unsigned long long>(-v));
  else
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string addr_text(Addr a) { return std::string(space_name(a.space)) + "[" + hex(a.offset) + "]"; }

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string dims(std::int64_t a, std::int64_t b) { return std::to_string(a) + "x" + std::to_string(b); }

std::string mma_dtypes(const Mma& m) {
  if (m.a_dtype == m.b_dtype) return std::string(short_dtype(m.a_dtype));
  return std::string(short_dtype(m.a_dtype)) + "*" + std::string(short_dtype(m.b_dtype));
}

// The short name of an instruction for traces: "load 128x128B", "mma 128x256x128 e4m3".
std::string instr_name(const Instr& instr) {
  return std::visit(
      [](const auto& i) -> std::string {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, Load>) {
          return std::string(!i.index ? "load " : i.index->per_row ? "gather rows " : "gather ") +
                 dims(i.src.rows, i.src.row_bytes) + "B";
        } else if constexpr (std::is_same_v<T, Store>) {
          return "store " + dims(i.dst.rows, i.dst.row_bytes) + "B";
        } else if constexpr (std::is_same_v<T, Mma>) {
          return "mma " + std::to_string(i.m) + "x" + std::to_string(i.n) + "x" + std::to_string(i.k) + " " +
                 mma_dtypes(i) + (i.scaled ? " scaled" : "");
        } else if constexpr (std::is_same_v<T, Vec>) {
          return std::string(vec_op_name(i.op)) + " " + dims(i.rows, i.cols);
        } else if constexpr (std::is_same_v<T, Signal>) {
          return "signal f" + std::to_string(i.flag);
        } else {
          return "wait f" + std::to_string(i.flag);
        }
      },
      instr);
}

}  // namespace detail

namespace {

using namespace detail;

std::string region_text(const Region& r) {
  std::string s = std::string(space_name(r.base.space)) + "[" + hex(r.base.offset);
  if (r.rows > 1) s += " + r*" + std::to_string(r.stride);
  return s + "]";
}

std::string conversion(DType in, DType out) {
  return std::string(short_dtype(in)) + "->" + std::string(short_dtype(out));
}

std::string vec_text(const Vec& v) {
  const std::string op(vec_op_name(v.op));
  const std::string dst = addr_text(v.dst), a = addr_text(v.src0), b = addr_text(v.src1);
  const std::string shape = dims(v.rows, v.cols);
  switch (v.op) {
    case VecOp::Convert:
      return op + " " + dst + " <- " + a + " " + shape + " " + conversion(v.dtype_in, v.dtype_out);
    case VecOp::Add:
      return op + " " + dst + " <- " + a + " + " + b + " " + shape + " " + conversion(v.dtype_in, v.dtype_out);
    case VecOp::ScaleAccumulate:
      return op + " " + dst + " += " + a + " * " + b + "[row] (" + std::string(short_dtype(v.scale_dtype)) +
             ") * " + num(v.imm) + " " + shape;
    case VecOp::RowScale:
      return op + " " + dst + " <- " + a + " * " + b + "[row] " + shape;
    case VecOp::RowDivide:
      return op + " " + dst + " <- " + a + " / " + b + "[row] " + shape + " f32->" +
             std::string(short_dtype(v.dtype_out));
    case VecOp::SiluMul:
      return op + " " + dst + " <- silu(" + a + ") * " + b + " " + shape + " " + conversion(v.dtype_in, v.dtype_out);
    case VecOp::RmsNorm:
      return op + " " + dst + " <- " + a + " weight " + b + " eps " + num(v.imm) + " " + shape + " " +
             conversion(v.dtype_in, v.dtype_out);
    case VecOp::Quantize:
      return op + " " + dst + ", scales " + addr_text(v.aux) + " <- " + a + " " + shape + " " +
             conversion(v.dtype_in, v.dtype_out) + " blocks " + dims(v.block_rows, v.block_cols) + " " +
             std::string(short_dtype(v.scale_dtype));
    case VecOp::Dequantize:
      return op + " " + dst + " <- " + a + " * scales " + b + " " + shape + " " + conversion(v.dtype_in, v.dtype_out) +
             " blocks " + dims(v.block_rows, v.block_cols) + " " + std::string(short_dtype(v.scale_dtype));
    case VecOp::SoftmaxStep: {
      const SoftmaxParams& s = v.softmax;
      std::string t = op + " " + dst + " <- " + a + " " + shape + " f32->" + std::string(short_dtype(v.dtype_out)) +
                      " scale " + num(s.scale) + " max " + addr_text(s.max) + " sum " + addr_text(s.sum) +
                      " alpha " + addr_text(s.alpha);
      if (s.causal)
        t += " causal q0=" + std::to_string(s.first_query) + " k0=" + std::to_string(s.first_key) +
             " diag=" + std::to_string(s.diag);
      return t;
    }
    case VecOp::Rope:
      return op + " " + dst + " <- " + a + " pos " + b + "[row/" + std::to_string(v.block_rows) + "] " + shape +
             " rot " + std::to_string(v.block_cols) + " theta " + num(v.imm) +
             (v.rope.factor > 1 ? " yarn " + num(v.rope.factor) + "/" + std::to_string(v.rope.original_len) + "/" +
                                      num(v.rope.beta_fast) + "/" + num(v.rope.beta_slow)
                                : std::string()) +
             " " + conversion(v.dtype_in, v.dtype_out);
    case VecOp::TopK:
      return op + " " + dst + " <- " + a + " bias " + b + " " + shape + " k " + std::to_string(v.moe.k) + " groups " +
             std::to_string(v.moe.top_groups) + "/" + std::to_string(v.moe.groups);
    case VecOp::MoeWeights:
      return op + " " + dst + " <- " + a + " chosen " + b + " " + shape + " experts " + std::to_string(v.moe.experts) +
             " scale " + num(v.imm);
    case VecOp::MoePlan:
      return op + " " + dst + " <- " + a + " " + shape + " experts " + std::to_string(v.moe.experts) + " align " +
             std::to_string(v.moe.align) + " rows " + std::to_string(v.moe.first_row) + "+" +
             std::to_string(v.moe.window) + " of " + std::to_string(v.moe.plan_rows);
  }
  return op;
}

std::string index_text(const ::anychip::sim::LoadIndex& x) {
  return " idx " + std::string(x.per_row ? "hbm[" + hex(x.at) + " + r*" + std::to_string(x.stride) + "]"
                                          : "hbm[" + hex(x.at) + "]") +
         " * " + std::to_string(x.scale) + " < " + std::to_string(x.bound);
}

std::string body_text(const Instr& instr) {
  return std::visit(
      [](const auto& i) -> std::string {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, Load>) {
          return "load " + addr_text(i.dst) + " <- " + region_text(i.src) + " " + dims(i.src.rows, i.src.row_bytes) + "B" +
                 (i.index ? index_text(*i.index) : "");
        } else if constexpr (std::is_same_v<T, Store>) {
          return "store " + region_text(i.dst) + " <- " + addr_text(i.src) + " " + dims(i.dst.rows, i.dst.row_bytes) +
                 "B";
        } else if constexpr (std::is_same_v<T, Mma>) {
          std::string t = "mma " + addr_text(i.acc) + (i.accumulate ? " += " : " = ") + addr_text(i.a) + " x " +
                          addr_text(i.b) + "^T " + std::to_string(i.m) + "x" + std::to_string(i.n) + "x" +
                          std::to_string(i.k) + " " + mma_dtypes(i);
          if (i.scaled)
            t += " scaled(" + addr_text(i.scale_a.addr) + " " + std::string(short_dtype(i.scale_a.dtype)) + ", " +
                 addr_text(i.scale_b.addr) + " " + std::string(short_dtype(i.scale_b.dtype)) + ")";
          return t;
        } else if constexpr (std::is_same_v<T, Vec>) {
          return vec_text(i);
        } else if constexpr (std::is_same_v<T, Signal>) {
          return "signal f" + std::to_string(i.flag);
        } else {
          return "wait f" + std::to_string(i.flag);
        }
      },
      instr);
}

}  // namespace

std::string to_text(const Instr& instr) {
  std::string line(pipe_name(pipe_of(instr)));
  line.resize(8, ' ');  // "dma_out " is the longest pipe name plus one space
  return line + body_text(instr);
}

std::string to_text(const Program& program) {
  std::string out;
  for (const Instr& instr : program.instrs) out += to_text(instr) + "\n";
  return out;
}

}  // namespace anychip::sim
