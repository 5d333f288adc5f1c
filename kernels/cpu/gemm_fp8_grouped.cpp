// cpu::gemm_fp8_grouped: the grouped block-scaled FP8 GEMM of DeepGEMM's contiguous layout
// (kernels/problems.hpp). The rows are cut into runs of one group; each run is a plain
// FP8 GEMM (gemm_kernels.hpp) of its rows of A against its group's slice of B (rows
// g*n.., scale rows g*n/128..). Runs go in parallel; a long run also splits into tiles
// inside run_gemm. Padding rows (-1) are written as zeros and cost nothing else.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <cstring>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/gemm_kernels.hpp"

namespace anychip::kernels::cpu {
namespace {

using std::int64_t;

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::InvalidArgument, "cpu::gemm_fp8_grouped: " + what);
}

std::string name(DType d) { return std::string(dtype_name(d)); }

struct Run {
  int64_t first = 0, rows = 0;
  std::int32_t group = 0;
};

// The runs of equal group (>= 0) in group[0..m), after checking every entry and the
// layout contract: inside an align-row tile a row keeps the group of the row above or is
// padding (-1).
std::vector<Run> runs_of(const GemmFp8GroupedProblem& p, const std::int32_t* group) {
  std::vector<Run> runs;
  std::int32_t above = -1;
  for (int64_t r = 0; r < p.m; ++r) {
    const std::int32_t g = group[r];
    require(g >= -1 && g < p.groups, "operand group: row " + std::to_string(r) + " has group " + std::to_string(g) +
                                         ", not -1 (padding) or a group (0.." + std::to_string(p.groups - 1) + ")");
    require(r % p.align == 0 || g == above || g == -1,
            "operand group: row " + std::to_string(r) + " has group " + std::to_string(g) + " but row " +
                std::to_string(r - 1) + " has " + std::to_string(above) + "; inside an align=" +
                std::to_string(p.align) + "-row tile a row keeps the group of the row above or is padding (-1)");
    if (g >= 0) {
      if (!runs.empty() && runs.back().group == g && runs.back().first + runs.back().rows == r)
        ++runs.back().rows;
      else
        runs.push_back({r, 1, g});
    }
    above = g;
  }
  return runs;
}

}  // namespace

void gemm_fp8_grouped(const GemmFp8GroupedProblem& p, ConstOperand a, ConstOperand b, ConstOperand group, Operand d) {
  require(p.m >= 0 && p.n >= 0 && p.k >= 0, "negative shape m=" + std::to_string(p.m) + " n=" + std::to_string(p.n) +
                                                " k=" + std::to_string(p.k));
  require(p.k % 128 == 0, "K=" + std::to_string(p.k) + " is not a multiple of 128");
  require(p.n % 128 == 0, "N=" + std::to_string(p.n) + " is not a multiple of 128");
  require(p.groups > 0 && p.align > 0, "groups=" + std::to_string(p.groups) + " and align=" +
                                           std::to_string(p.align) + " must be > 0");
  require(is_fp8(p.a_dtype), "operand a: dtype " + name(p.a_dtype) + " is not f8e4m3 or f8e5m2");
  require(is_fp8(p.b_dtype), "operand b: dtype " + name(p.b_dtype) + " is not f8e4m3 or f8e5m2");
  require(is_scale_dtype(p.a_scale_dtype), "operand a: scale dtype " + name(p.a_scale_dtype) + " is not f32 or ue8m0");
  require(is_scale_dtype(p.b_scale_dtype), "operand b: scale dtype " + name(p.b_scale_dtype) + " is not f32 or ue8m0");
  require(p.out_dtype == DType::f32 || p.out_dtype == DType::bf16,
          "output dtype " + name(p.out_dtype) + " is not f32 or bf16");
  if (p.m == 0 || p.n == 0) return;
  require(d.data != nullptr, "output: null data pointer");
  require(group.data != nullptr, "operand group: null data pointer");
  if (p.k > 0) {
    require(a.data != nullptr && a.scales != nullptr, "operand a: null data or scales pointer");
    require(b.data != nullptr && b.scales != nullptr, "operand b: null data or scales pointer");
  }
  const auto* groups = static_cast<const std::int32_t*>(group.data);
  const std::vector<Run> runs = runs_of(p, groups);

  const int64_t kb = p.k / 128;
  const auto out_size = static_cast<int64_t>(dtype_size(p.out_dtype));
  const auto sa_size = static_cast<int64_t>(dtype_size(p.a_scale_dtype));
  const auto sb_size = static_cast<int64_t>(dtype_size(p.b_scale_dtype));
  auto* out = static_cast<std::byte*>(d.data);
  for (int64_t r = 0; r < p.m; ++r)
    if (groups[r] < 0) std::memset(out + r * p.n * out_size, 0, static_cast<std::size_t>(p.n * out_size));

  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, runs.size(), 1), [&](const auto& range) {
    for (std::size_t i = range.begin(); i != range.end(); ++i) {
      const Run& run = runs[i];
      gemm_detail::GemmArgs g;
      g.m = run.rows;
      g.n = p.n;
      g.k = p.k;
      g.a_dtype = p.a_dtype;
      g.b_dtype = p.b_dtype;
      g.a = static_cast<const std::byte*>(a.data) + run.first * p.k;
      g.a_scales = static_cast<const std::byte*>(a.scales) + run.first * kb * sa_size;
      g.b = static_cast<const std::byte*>(b.data) + run.group * p.n * p.k;
      g.b_scales = static_cast<const std::byte*>(b.scales) + run.group * (p.n / 128) * kb * sb_size;
      g.a_scale_dtype = p.a_scale_dtype;
      g.b_scale_dtype = p.b_scale_dtype;
      g.d = out + run.first * p.n * out_size;
      g.out_dtype = p.out_dtype;
      gemm_detail::run_gemm(g);
    }
  });
}

}  // namespace anychip::kernels::cpu
