// rope, slice and concat on the CPU (cpu_kernels.hpp; semantics in kernels/problems.hpp).
// slice and concat move bytes (any dtype, i32 included). rope forms each angle
// pos * theta^(-2i/rot) in double and rounds only its cos and sin to fp32: an angle formed
// in fp32 would be off by up to pos * 2^-23 rad (1e-3 at pos 8192), far above the
// rotation's own fp32 error. The cos/sin of one token serve all its heads.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/float_io.hpp"

namespace anychip::kernels::cpu {
namespace {

using std::int64_t;
constexpr int64_t kBytesPerTask = 1 << 16;

[[noreturn]] void invalid(const char* op, const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, std::string("cpu::") + op + ": " + message);
}

void check_data(const char* op, const char* what, const void* p, int64_t count) {
  if (count > 0 && p == nullptr) invalid(op, std::string(what) + " is null");
}

void check_element(const char* op, DType d) {
  if (d == DType::ue8m0) invalid(op, "dtype ue8m0 is a scale format, not a tensor element type");
}

int64_t grain(int64_t bytes_per_item) { return std::max<int64_t>(1, kBytesPerTask / std::max<int64_t>(bytes_per_item, 1)); }

std::string shapes(const ConcatProblem& p) {
  return shape_str(p.a_shape) + " and " + shape_str(p.b_shape) + " along axis " + std::to_string(p.axis) +
         " do not make " + shape_str(p.out_shape);
}

}  // namespace

void rope(const RopeProblem& p, ConstOperand x, ConstOperand pos, Operand y) {
  const char* op = "rope";
  if (p.tokens < 0 || p.heads < 0 || p.dim < 0)
    invalid(op, "negative shape tokens=" + std::to_string(p.tokens) + " heads=" + std::to_string(p.heads) +
                    " dim=" + std::to_string(p.dim));
  if (!is_float(p.dtype)) invalid(op, "dtype " + std::string(dtype_name(p.dtype)) + " is not f32, bf16 or f16");
  if (p.rot <= 0 || p.rot % 2 != 0 || p.rot > p.dim)
    invalid(op, "rot=" + std::to_string(p.rot) + " must be even, > 0 and <= dim=" + std::to_string(p.dim));
  const int64_t numel = p.tokens * p.heads * p.dim;
  check_data(op, "x", x.data, numel);
  check_data(op, "pos", pos.data, p.tokens);
  check_data(op, "y", y.data, numel);
  if (numel == 0) return;
  std::vector<std::int32_t> at(static_cast<std::size_t>(p.tokens));
  std::memcpy(at.data(), pos.data, at.size() * 4);
  for (int64_t t = 0; t < p.tokens; ++t)
    if (at[static_cast<std::size_t>(t)] < 0)
      invalid(op, "operand pos: token " + std::to_string(t) + " has position " +
                      std::to_string(at[static_cast<std::size_t>(t)]) + "; positions are >= 0");
  const int64_t half = p.rot / 2, c0 = p.dim - p.rot;
  std::vector<double> inv_freq(static_cast<std::size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[static_cast<std::size_t>(i)] = rope_inv_freq(i, p.rot, p.theta, p.scaling);

  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.tokens, grain(p.heads * p.dim * 4)), [&](const auto& range) {
    std::vector<float> cs(static_cast<std::size_t>(half)), sn(cs.size()), row(static_cast<std::size_t>(p.dim));
    for (int64_t t = range.begin(); t != range.end(); ++t) {
      const double position = at[static_cast<std::size_t>(t)];
      for (std::size_t i = 0; i < cs.size(); ++i) {
        const double angle = position * inv_freq[i];
        cs[i] = static_cast<float>(std::cos(angle));
        sn[i] = static_cast<float>(std::sin(angle));
      }
      for (int64_t h = 0; h < p.heads; ++h) {
        const int64_t offset = (t * p.heads + h) * p.dim;
        load(p.dtype, x.data, offset, p.dim, row.data());
        float* pair = row.data() + c0;
        for (std::size_t i = 0; i < cs.size(); ++i) {
          const float x0 = pair[2 * i], x1 = pair[2 * i + 1];
          pair[2 * i] = x0 * cs[i] - x1 * sn[i];
          pair[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
        }
        store(p.dtype, row.data(), p.dim, y.data, offset);
      }
    }
  });
}

void slice(const SliceProblem& p, ConstOperand x, Operand y) {
  const char* op = "slice";
  check_element(op, p.dtype);
  if (p.outer < 0 || p.inner < 0 || p.begin < 0 || p.size < 0 || p.begin + p.size > p.in_axis)
    invalid(op, "begin=" + std::to_string(p.begin) + " size=" + std::to_string(p.size) +
                    " do not lie inside the axis of " + std::to_string(p.in_axis));
  const auto es = static_cast<int64_t>(dtype_size(p.dtype));
  const int64_t run = p.size * p.inner * es, in_row = p.in_axis * p.inner * es, skip = p.begin * p.inner * es;
  check_data(op, "x", x.data, p.outer * in_row);
  check_data(op, "y", y.data, p.outer * run);
  if (p.outer * run == 0) return;
  const auto* src = static_cast<const std::byte*>(x.data);
  auto* dst = static_cast<std::byte*>(y.data);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.outer, grain(run)), [&](const auto& range) {
    for (int64_t o = range.begin(); o != range.end(); ++o)
      std::memcpy(dst + o * run, src + o * in_row + skip, static_cast<std::size_t>(run));
  });
}

void concat(const ConcatProblem& p, ConstOperand a, ConstOperand b, Operand y) {
  const char* op = "concat";
  check_element(op, p.dtype);
  const std::size_t rank = p.out_shape.size();
  if (rank == 0 || p.a_shape.size() != rank || p.b_shape.size() != rank || p.axis < 0 ||
      static_cast<std::size_t>(p.axis) >= rank)
    invalid(op, shapes(p));
  const auto axis = static_cast<std::size_t>(p.axis);
  for (std::size_t d = 0; d < rank; ++d) {
    const int64_t o = p.out_shape[d];
    if (d == axis ? p.a_shape[d] + p.b_shape[d] != o
                  : (p.a_shape[d] != o && p.a_shape[d] != 1) || (p.b_shape[d] != o && p.b_shape[d] != 1))
      invalid(op, shapes(p));
  }
  // Element strides of a and b in the output's index space; 0 where a size-1 dimension
  // is broadcast (the axis itself never is).
  auto strides = [&](const Shape& s) {
    std::vector<int64_t> st(rank);
    int64_t step = 1;
    for (std::size_t d = rank; d-- > 0;) {
      st[d] = (s[d] == 1 && d != axis) ? 0 : step;
      step *= s[d];
    }
    return st;
  };
  const std::vector<int64_t> sa = strides(p.a_shape), sb = strides(p.b_shape);
  int64_t numel = 1, a_numel = 1, b_numel = 1;
  for (std::size_t d = 0; d < rank; ++d) {
    numel *= p.out_shape[d];
    a_numel *= p.a_shape[d];
    b_numel *= p.b_shape[d];
  }
  check_data(op, "a", a.data, a_numel);
  check_data(op, "b", b.data, b_numel);
  check_data(op, "y", y.data, numel);
  if (numel == 0) return;

  const auto es = static_cast<int64_t>(dtype_size(p.dtype));
  const int64_t last = p.out_shape[rank - 1], rows = numel / last;
  const auto* pa = static_cast<const std::byte*>(a.data);
  const auto* pb = static_cast<const std::byte*>(b.data);
  auto* out = static_cast<std::byte*>(y.data);
  // Copies `n` output elements starting at src (element stride `stride`: 0 broadcasts one).
  auto copy = [&](std::byte* dst, const std::byte* src, int64_t n, int64_t stride) {
    if (stride == 1) {
      std::memcpy(dst, src, static_cast<std::size_t>(n * es));
    } else {
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * es, src + i * stride * es, static_cast<std::size_t>(es));
    }
  };
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, grain(last * es)), [&](const auto& range) {
    std::vector<int64_t> at(rank, 0);
    for (int64_t r = range.begin(); r != range.end(); ++r) {
      int64_t rest = r;
      for (std::size_t d = rank - 1; d-- > 0;) {
        at[d] = rest % p.out_shape[d];
        rest /= p.out_shape[d];
      }
      std::byte* dst = out + r * last * es;
      int64_t oa = 0, ob = 0;  // offsets of this row in a and in b
      for (std::size_t d = 0; d + 1 < rank; ++d) {
        oa += at[d] * sa[d];
        ob += (d == axis ? at[d] - p.a_shape[d] : at[d]) * sb[d];
      }
      if (axis == rank - 1) {
        copy(dst, pa + oa * es, p.a_shape[axis], 1);
        copy(dst + p.a_shape[axis] * es, pb + ob * es, p.b_shape[axis], 1);
      } else if (at[axis] < p.a_shape[axis]) {
        copy(dst, pa + oa * es, last, sa[rank - 1]);
      } else {
        copy(dst, pb + ob * es, last, sb[rank - 1]);
      }
    }
  });
}

}  // namespace anychip::kernels::cpu
