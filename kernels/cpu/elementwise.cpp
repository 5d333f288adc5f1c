// rmsnorm, silu_mul and add on the CPU (cpu_kernels.hpp; semantics in kernels/problems.hpp).
// Memory-bound: each TBB task converts a slab of rows (or elements) to fp32, computes in
// fp32 (rmsnorm's sum of squares in double), and converts once on the way out.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/float_io.hpp"

namespace anychip::kernels::cpu {
namespace {

using std::int64_t;
constexpr int64_t kElementsPerTask = 1 << 14;

[[noreturn]] void invalid(const char* op, const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, std::string("cpu::") + op + ": " + message);
}

void check(const char* op, const char* what, int64_t v) {
  if (v < 0) invalid(op, std::string(what) + "=" + std::to_string(v) + " is negative");
}

void check_float(const char* op, const char* what, DType d) {
  if (!is_float(d))
    invalid(op, std::string(what) + "=" + std::string(dtype_name(d)) + " is not f32, bf16 or f16");
}

void check_data(const char* op, const char* what, const void* p, int64_t count) {
  if (count > 0 && p == nullptr) invalid(op, std::string(what) + " is null");
}

// Rows per task so that a task handles about kElementsPerTask elements.
int64_t row_grain(int64_t row_elements) {
  return std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(row_elements, 1));
}

}  // namespace

void rmsnorm(const RmsNormProblem& p, ConstOperand x, ConstOperand w, Operand y) {
  check("rmsnorm", "rows", p.rows);
  check("rmsnorm", "dim", p.dim);
  check_float("rmsnorm", "dtype", p.dtype);
  check_float("rmsnorm", "weight_dtype", p.weight_dtype);
  check_data("rmsnorm", "x", x.data, p.rows * p.dim);
  check_data("rmsnorm", "w", w.data, p.dim);
  check_data("rmsnorm", "y", y.data, p.rows * p.dim);
  if (p.rows * p.dim == 0) return;
  std::vector<float> wv(static_cast<std::size_t>(p.dim));
  load(p.weight_dtype, w.data, 0, p.dim, wv.data());
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.rows, row_grain(p.dim)), [&](const auto& range) {
    std::vector<float> row(static_cast<std::size_t>(p.dim));
    for (int64_t r = range.begin(); r != range.end(); ++r) {
      load(p.dtype, x.data, r * p.dim, p.dim, row.data());
      double sum_sq = 0;
      for (float v : row) sum_sq += static_cast<double>(v) * v;
      const auto inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(p.dim) + p.eps));
      for (int64_t c = 0; c < p.dim; ++c) row[static_cast<std::size_t>(c)] *= inv_rms * wv[static_cast<std::size_t>(c)];
      store(p.dtype, row.data(), p.dim, y.data, r * p.dim);
    }
  });
}

void silu_mul(const SiluMulProblem& p, ConstOperand x, Operand y) {
  check("silu_mul", "rows", p.rows);
  check("silu_mul", "dim", p.dim);
  check_float("silu_mul", "dtype", p.dtype);
  check_data("silu_mul", "x", x.data, p.rows * p.dim);
  check_data("silu_mul", "y", y.data, p.rows * p.dim);
  if (p.rows * p.dim == 0) return;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.rows, row_grain(3 * p.dim)), [&](const auto& range) {
    std::vector<float> gate(static_cast<std::size_t>(p.dim)), up(gate.size());
    for (int64_t r = range.begin(); r != range.end(); ++r) {
      load(p.dtype, x.data, 2 * r * p.dim, p.dim, gate.data());
      load(p.dtype, x.data, 2 * r * p.dim + p.dim, p.dim, up.data());
      for (std::size_t c = 0; c < gate.size(); ++c) {
        const float g = gate[c];
        gate[c] = g / (1.0f + std::exp(-g)) * up[c];
      }
      store(p.dtype, gate.data(), p.dim, y.data, r * p.dim);
    }
  });
}

void add(const AddProblem& p, ConstOperand a, ConstOperand b, Operand y) {
  check("add", "numel", p.numel);
  check_float("add", "dtype", p.dtype);
  check_data("add", "a", a.data, p.numel);
  check_data("add", "b", b.data, p.numel);
  check_data("add", "y", y.data, p.numel);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.numel, kElementsPerTask), [&](const auto& range) {
    const int64_t n = static_cast<int64_t>(range.size());
    std::vector<float> av(static_cast<std::size_t>(n)), bv(av.size());
    load(p.dtype, a.data, range.begin(), n, av.data());
    load(p.dtype, b.data, range.begin(), n, bv.data());
    for (std::size_t i = 0; i < av.size(); ++i) av[i] += bv[i];
    store(p.dtype, av.data(), n, y.data, range.begin());
  });
}

}  // namespace anychip::kernels::cpu
