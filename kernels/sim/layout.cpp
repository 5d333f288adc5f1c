// The layout ops on the simulator: rope, slice, concat.
//
//   rope    streaming over tiles of m tokens x n heads: the tile's rows (one per token and
//           head, dim columns) and the m positions in, one Rope vector instruction (the
//           heads of a token share its position), out
//   slice   a pure copy (DMA in, DMA out): the input viewed as [outer, axis, inner] gives
//           one box of `outer` rows of size*inner elements
//   concat  a pure copy: each operand is a family of boxes in the output. A box's row is
//           the longest run of elements contiguous in both the operand and the output;
//           the dimension before it gives the box's rows (stride 0 where the operand is
//           broadcast: the same row is re-loaded, as MLA's shared k_pe for every head),
//           and the dimensions before that enumerate the boxes.
// Copies are cut into steps of at most m rows x n bytes of one box.
#include <memory>
#include <numeric>
#include <vector>

#include "anychip/error.hpp"
#include "kernels/sim/ops.hpp"
#include "kernels/sim/stream_op.hpp"
#include "kernels/sim/tile_builder.hpp"

namespace anychip::kernels::sim {
namespace {

// ---------------------------------------------------------------------------------------
// rope: args [x, pos, y]; tiles m tokens x n heads

struct RopeOp final : StreamOp {
  RopeProblem p;
  Tiles2d g;  // tokens x heads
  std::int64_t es = 1;
  Addr x[kMaxStreamStages], pos[kMaxStreamStages], y[kMaxStreamStages];
  Footprint fp;
  RopeOp(const RopeProblem& p_, const TileConfig& t)
      : StreamOp(t), p(p_), g(p.tokens, p.heads, t.m, t.n), es(bytes_of(p.dtype, 1)) {
    Allocator spm(Space::Spm);
    const std::int64_t tile = g.tm * g.tn * p.dim * es;
    for (int s = 0; s < stages; ++s) x[s] = spm.take(tile), pos[s] = spm.take(g.tm * 4), y[s] = spm.take(tile);
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return g.steps(); }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t token = p.heads * p.dim * es;
    e.load(x[s], args[0] + t.r0 * token + t.c0 * p.dim * es, t.re, t.ce * p.dim * es, token);
    e.load(pos[s], args[1] + t.r0 * 4, 1, t.re * 4, t.re * 4);
  }
  void compute(Emitter& e, std::int64_t step, int s) const override {
    const auto t = g.tile(step);
    Vec v;
    v.op = VecOp::Rope, v.dst = y[s], v.src0 = x[s], v.src1 = pos[s], v.rows = t.re * t.ce, v.cols = p.dim;
    v.block_rows = t.ce, v.block_cols = p.rot, v.imm = p.theta, v.rope = p.scaling;
    v.dtype_in = v.dtype_out = p.dtype;
    e.vec(v);
  }
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const auto t = g.tile(step);
    const std::int64_t token = p.heads * p.dim * es;
    e.store(args[2] + t.r0 * token + t.c0 * p.dim * es, t.re, t.ce * p.dim * es, token, y[s]);
  }
};

// ---------------------------------------------------------------------------------------
// Copies: boxes of rows x row_bytes, from a source operand to the output.

struct BoxFamily {
  int src_arg = 0;
  std::int64_t src0 = 0, dst0 = 0;  // byte offsets of box 0
  // The boxes: a mixed-radix count over dims (last fastest), each dimension moving the
  // source and the output by its strides (bytes).
  std::vector<std::int64_t> dims, src_strides, dst_strides;
  std::int64_t rows = 1, row_bytes = 0, src_stride = 0, dst_stride = 0;
  std::int64_t boxes() const {
    return std::accumulate(dims.begin(), dims.end(), std::int64_t{1}, std::multiplies<>());
  }
};

struct CopyOp final : StreamOp {
  std::vector<BoxFamily> families;
  std::int64_t tm = 1, tn = 1;  // rows and bytes per step
  int out_arg = 0;
  std::vector<std::int64_t> first_step;  // of each family, and the total
  Addr buf[kMaxStreamStages];
  Footprint fp;

  CopyOp(std::vector<BoxFamily> f, int out, const TileConfig& t)
      : StreamOp(t), families(std::move(f)), tm(std::max(t.m, 1)), tn(std::max(t.n, 1)), out_arg(out) {
    first_step.push_back(0);
    for (const BoxFamily& b : families)
      first_step.push_back(first_step.back() +
                           (b.rows > 0 && b.row_bytes > 0 ? b.boxes() * ceil_div(b.rows, tm) * ceil_div(b.row_bytes, tn)
                                                          : 0));
    Allocator spm(Space::Spm);
    for (int s = 0; s < stages; ++s) buf[s] = spm.take(tm * tn);
    fp = {spm.bytes(), 0};
  }
  Footprint footprint() const { return fp; }
  std::int64_t steps() const override { return first_step.back(); }

  struct Piece {
    int src_arg;
    std::int64_t src, dst, rows, bytes, src_stride, dst_stride;
  };
  Piece piece(std::int64_t step, Args args) const {
    std::size_t f = 0;
    while (step >= first_step[f + 1]) ++f;
    const BoxFamily& b = families[f];
    std::int64_t i = step - first_step[f];
    const std::int64_t cchunks = ceil_div(b.row_bytes, tn), rchunks = ceil_div(b.rows, tm);
    const std::int64_t ci = i % cchunks, ri = i / cchunks % rchunks;
    std::int64_t box = i / cchunks / rchunks;
    std::int64_t src = b.src0, dst = b.dst0;
    for (std::size_t d = b.dims.size(); d-- > 0;) {
      const std::int64_t at = box % b.dims[d];
      box /= b.dims[d];
      src += at * b.src_strides[d], dst += at * b.dst_strides[d];
    }
    const std::int64_t r0 = ri * tm, c0 = ci * tn;
    return {b.src_arg,
            args.empty() ? 0 : args[static_cast<std::size_t>(b.src_arg)] + src + r0 * b.src_stride + c0,
            args.empty() ? 0 : args[static_cast<std::size_t>(out_arg)] + dst + r0 * b.dst_stride + c0,
            std::min(tm, b.rows - r0),
            std::min(tn, b.row_bytes - c0),
            b.src_stride,
            b.dst_stride};
  }
  void load(Emitter& e, std::int64_t step, int s, Args args) const override {
    const Piece x = piece(step, args);
    e.load(buf[s], x.src, x.rows, x.bytes, x.src_stride);
  }
  void compute(Emitter&, std::int64_t, int) const override {}
  void store(Emitter& e, std::int64_t step, int s, Args args) const override {
    const Piece x = piece(step, args);
    e.store(x.dst, x.rows, x.bytes, x.dst_stride, buf[s]);
  }
};

std::vector<BoxFamily> slice_boxes(const SliceProblem& p) {
  const std::int64_t es = bytes_of(p.dtype, 1);
  BoxFamily b;
  b.src_arg = 0;
  b.src0 = p.begin * p.inner * es;
  b.rows = p.outer, b.row_bytes = p.size * p.inner * es;
  b.src_stride = p.in_axis * p.inner * es, b.dst_stride = b.row_bytes;
  return {b};
}

// Row-major strides (elements) of a shape.
std::vector<std::int64_t> strides_of(const Shape& s) {
  std::vector<std::int64_t> st(s.size(), 1);
  for (std::size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

// The length of dimension d in the copy of operand x: its own along the axis, the
// output's elsewhere (a broadcast dimension re-reads the operand).
std::int64_t d_size(const Shape& o, const Shape& x, std::size_t d, std::size_t axis) { return d == axis ? x[d] : o[d]; }

// The boxes that copy operand `arg` (shape x) into the output at `axis_offset` along axis.
BoxFamily concat_boxes(const ConcatProblem& p, int arg, const Shape& x, std::int64_t axis_offset) {
  const std::int64_t es = bytes_of(p.dtype, 1);
  const Shape& o = p.out_shape;
  const auto rank = o.size(), axis = static_cast<std::size_t>(p.axis);
  const std::vector<std::int64_t> xs = strides_of(x), os = strides_of(o);
  auto broadcast = [&](std::size_t d) { return d != axis && x[d] != o[d]; };
  // The contiguous run: trailing dimensions the operand fills, then the axis (contiguous
  // in both) if the run reaches it.
  std::size_t q = rank;
  while (q > 0 && q - 1 != axis && !broadcast(q - 1)) --q;
  std::int64_t row = 1;
  for (std::size_t d = q; d < rank; ++d) row *= o[d];
  if (q > 0 && q - 1 == axis) row *= x[--q];
  BoxFamily b;
  b.src_arg = arg;
  b.dst0 = axis_offset * os[axis] * es;
  b.row_bytes = row * es;
  if (q == 0) {
    b.rows = 1, b.src_stride = b.dst_stride = b.row_bytes;
    return b;
  }
  auto src_stride = [&](std::size_t d) { return broadcast(d) ? 0 : xs[d] * es; };
  const std::size_t last = q - 1;
  b.rows = d_size(o, x, last, axis);
  b.src_stride = src_stride(last), b.dst_stride = os[last] * es;
  for (std::size_t d = 0; d < last; ++d) {
    b.dims.push_back(d_size(o, x, d, axis));
    b.src_strides.push_back(src_stride(d));
    b.dst_strides.push_back(os[d] * es);
  }
  return b;
}

std::vector<BoxFamily> concat_boxes(const ConcatProblem& p) {
  const std::size_t rank = p.out_shape.size();
  if (p.a_shape.size() != rank || p.b_shape.size() != rank || p.axis < 0 || static_cast<std::size_t>(p.axis) >= rank)
    return {};  // check() says why
  return {concat_boxes(p, 0, p.a_shape, 0), concat_boxes(p, 1, p.b_shape, p.a_shape[static_cast<std::size_t>(p.axis)])};
}

std::vector<TileConfig> copy_candidates(const std::vector<BoxFamily>& families) {
  std::int64_t rows = 1, bytes = 1;
  for (const BoxFamily& b : families) rows = std::max(rows, b.rows), bytes = std::max(bytes, b.row_bytes);
  return grid_candidates(rows, bytes, 1, 1);
}

std::string check_copy(const char* op, const TileConfig& t) {
  if (auto why = check_stages(op, t); !why.empty()) return why;
  if (t.m <= 0 || t.n <= 0) return std::string(op) + ": tiles (rows x bytes per step) must be positive";
  return "";
}

}  // namespace

// rope --------------------------------------------------------------------------------------

std::string check(const RopeProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_stages("rope", t); !why.empty()) return why;
  if (auto why = check_float("rope dtype", p.dtype); !why.empty()) return why;
  if (p.rot < 0 || p.rot % 2 != 0 || p.rot > p.dim)
    return "rope: rotated columns " + std::to_string(p.rot) + " must be even and at most dim " + std::to_string(p.dim);
  if (t.m <= 0 || t.n <= 0) return "rope: tiles (tokens x heads) must be positive";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const RopeProblem& p, const TileConfig& t, const ChipDesc&) { return RopeOp(p, t).footprint(); }
TileConfig choose(const RopeProblem& p, const ChipDesc& chip) {
  std::vector<TileConfig> c;
  for (std::int64_t m : kRowTiles)
    if (c.empty() || m / 2 < p.tokens) c.push_back({static_cast<int>(m), static_cast<int>(p.heads), 0, 2});
  for (std::int64_t n : {1, 2, 4, 8, 16, 32, 64})
    if (n < p.heads) c.push_back({1, static_cast<int>(n), 0, 2});
  return choose_stream(c, chip, 5, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<RopeOp>(p, t); });
}
TileKernel build(const RopeProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return stream_kernel("rope", std::make_shared<RopeOp>(p, t), chip.cores);
}

// slice -------------------------------------------------------------------------------------

std::string check(const SliceProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_copy("slice", t); !why.empty()) return why;
  if (p.begin < 0 || p.size < 0 || p.begin + p.size > p.in_axis)
    return "slice: " + std::to_string(p.begin) + ".." + std::to_string(p.begin + p.size) + " is outside the axis of " +
           std::to_string(p.in_axis);
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const SliceProblem& p, const TileConfig& t, const ChipDesc&) {
  return CopyOp(slice_boxes(p), 1, t).footprint();
}
TileConfig choose(const SliceProblem& p, const ChipDesc& chip) {
  const auto boxes = slice_boxes(p);
  return choose_stream(copy_candidates(boxes), chip, 4, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<CopyOp>(boxes, 1, t); });
}
TileKernel build(const SliceProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return copy_kernel("slice", std::make_shared<CopyOp>(slice_boxes(p), 1, t), chip.cores);
}

// concat ------------------------------------------------------------------------------------

std::string check(const ConcatProblem& p, const TileConfig& t, const ChipDesc& chip) {
  if (auto why = check_copy("concat", t); !why.empty()) return why;
  const std::size_t rank = p.out_shape.size();
  if (p.a_shape.size() != rank || p.b_shape.size() != rank || p.axis < 0 || static_cast<std::size_t>(p.axis) >= rank)
    return "concat: operands must have the output's rank and the axis must be one of its dimensions";
  for (std::size_t d = 0; d < rank; ++d) {
    if (static_cast<std::int64_t>(d) == p.axis) continue;
    for (const Shape* s : {&p.a_shape, &p.b_shape})
      if ((*s)[d] != p.out_shape[d] && (*s)[d] != 1)
        return "concat: dimension " + std::to_string(d) + " of an operand is neither the output's nor 1";
  }
  if (p.a_shape[static_cast<std::size_t>(p.axis)] + p.b_shape[static_cast<std::size_t>(p.axis)] !=
      p.out_shape[static_cast<std::size_t>(p.axis)])
    return "concat: the operands' axis lengths do not add up to the output's";
  return fit_problem(footprint(p, t, chip), chip);
}
Footprint footprint(const ConcatProblem& p, const TileConfig& t, const ChipDesc&) {
  return CopyOp(concat_boxes(p), 2, t).footprint();
}
TileConfig choose(const ConcatProblem& p, const ChipDesc& chip) {
  const auto boxes = concat_boxes(p);
  return choose_stream(copy_candidates(boxes), chip, 5, problem_min_bytes(p),
                       [&](const TileConfig& t) { return std::make_shared<CopyOp>(boxes, 2, t); });
}
TileKernel build(const ConcatProblem& p, const TileConfig& t, const ChipDesc& chip, int) {
  return copy_kernel("concat", std::make_shared<CopyOp>(concat_boxes(p), 2, t), chip.cores);
}

}  // namespace anychip::kernels::sim
