// The routing ops of a DeepSeek MoE layer on the CPU (cpu_kernels.hpp; semantics in
// kernels/problems.hpp): moe_topk, moe_weights, moe_plan, moe_gather, moe_combine.
// Index operands are checked before any work (one cheap pass), so a bad expert, token or
// row is an error naming the op, the operand and the entry, never a stray read.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/ir.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/float_io.hpp"

namespace anychip::kernels::cpu {
namespace {

using std::int64_t;
constexpr int64_t kElementsPerTask = 1 << 14;

[[noreturn]] void invalid(const char* op, const std::string& message) {
  throw Error(ErrorCode::InvalidArgument, std::string("cpu::") + op + ": " + message);
}

void check_data(const char* op, const char* what, const void* p, int64_t count) {
  if (count > 0 && p == nullptr) invalid(op, std::string(what) + " is null");
}

void check_shape(const char* op, std::initializer_list<std::pair<const char*, int64_t>> dims) {
  for (const auto& [what, v] : dims)
    if (v < 0) invalid(op, std::string(what) + "=" + std::to_string(v) + " is negative");
}

const std::int32_t* i32(const void* p) { return static_cast<const std::int32_t*>(p); }
std::size_t at(int64_t i) { return static_cast<std::size_t>(i); }

std::string choice(int64_t k, int64_t s) {
  return "token " + std::to_string(s / k) + " choice " + std::to_string(s % k);
}

// Checks that v[i] lies in [lo, hi) for i < n; `entry(i)` names entry i in the error.
template <typename Entry>
void check_range(const char* op, const char* operand, const std::int32_t* v, int64_t n, int64_t lo, int64_t hi,
                 const char* what, Entry entry) {
  for (int64_t i = 0; i < n; ++i)
    if (v[i] < lo || v[i] >= hi)
      invalid(op, std::string("operand ") + operand + ": " + entry(i) + " is " + std::to_string(v[i]) + "; " + what +
                      " lies in " + std::to_string(lo) + ".." + std::to_string(hi - 1));
}

int64_t grain(int64_t elements_per_item) {
  return std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(elements_per_item, 1));
}

float sigmoid(float l) { return 1.0f / (1.0f + std::exp(-l)); }

}  // namespace

void moe_topk(const MoeTopkProblem& p, ConstOperand logits, ConstOperand bias, Operand experts) {
  const char* op = "moe_topk";
  check_shape(op, {{"tokens", p.tokens}});
  if (p.experts <= 0 || p.groups <= 0 || p.experts % p.groups != 0 || p.top_groups <= 0 ||
      p.top_groups > p.groups || p.k <= 0 || p.k > p.top_groups * (p.experts / p.groups))
    invalid(op, "experts=" + std::to_string(p.experts) + " groups=" + std::to_string(p.groups) +
                    " top_groups=" + std::to_string(p.top_groups) + " k=" + std::to_string(p.k) +
                    ": groups must divide experts, top_groups <= groups, 1 <= k <= the experts of top_groups groups");
  check_data(op, "logits", logits.data, p.tokens * p.experts);
  check_data(op, "bias", bias.data, p.experts);
  check_data(op, "experts", experts.data, p.tokens * p.k);
  if (p.tokens == 0) return;
  const int64_t size = p.experts / p.groups;
  const auto* l = static_cast<const float*>(logits.data);
  const auto* b = static_cast<const float*>(bias.data);
  auto* out = static_cast<std::int32_t*>(experts.data);
  constexpr float kOut = -std::numeric_limits<float>::infinity();

  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.tokens, grain(4 * p.experts)), [&](const auto& range) {
    std::vector<float> key(at(p.experts)), score(at(p.groups));
    std::vector<int64_t> order(at(std::max(p.experts, p.groups)));
    for (int64_t t = range.begin(); t != range.end(); ++t) {
      for (int64_t e = 0; e < p.experts; ++e) {
        const float k = sigmoid(l[t * p.experts + e]) + b[e];
        key[at(e)] = std::isnan(k) ? kOut : k;  // a NaN never wins (and keeps the order strict)
      }
      // Best first; ties: lower index first (a strict total order, so the result is unique).
      auto better = [](const std::vector<float>& v) {
        return [&v](int64_t i, int64_t j) { return v[at(i)] > v[at(j)] || (v[at(i)] == v[at(j)] && i < j); };
      };
      if (p.top_groups < p.groups) {
        for (int64_t g = 0; g < p.groups; ++g) {
          float first = kOut, second = kOut;
          for (int64_t e = g * size; e < (g + 1) * size; ++e) {
            const float k = key[at(e)];
            if (k > first) {
              second = first;
              first = k;
            } else if (k > second) {
              second = k;
            }
          }
          score[at(g)] = size > 1 ? first + second : first;
        }
        std::iota(order.begin(), order.begin() + p.groups, int64_t{0});
        std::nth_element(order.begin(), order.begin() + p.top_groups, order.begin() + p.groups, better(score));
        for (int64_t r = p.top_groups; r < p.groups; ++r) {
          const int64_t g = order[at(r)];
          std::fill(key.begin() + g * size, key.begin() + (g + 1) * size, kOut);
        }
      }
      std::iota(order.begin(), order.begin() + p.experts, int64_t{0});
      std::partial_sort(order.begin(), order.begin() + p.k, order.begin() + p.experts, better(key));
      for (int64_t j = 0; j < p.k; ++j) out[t * p.k + j] = static_cast<std::int32_t>(order[at(j)]);
    }
  });
}

void moe_weights(const MoeWeightsProblem& p, ConstOperand logits, ConstOperand experts, Operand weights) {
  const char* op = "moe_weights";
  check_shape(op, {{"tokens", p.tokens}, {"experts", p.experts}, {"k", p.k}});
  if (!(std::isfinite(p.scale) && p.scale > 0)) invalid(op, "scale must be finite and > 0");
  check_data(op, "logits", logits.data, p.tokens * p.experts);
  check_data(op, "experts", experts.data, p.tokens * p.k);
  check_data(op, "weights", weights.data, p.tokens * p.k);
  const std::int32_t* chosen = i32(experts.data);
  check_range(op, "experts", chosen, p.tokens * p.k, 0, p.experts, "an expert", [&](int64_t s) { return choice(p.k, s); });
  const auto* l = static_cast<const float*>(logits.data);
  auto* w = static_cast<float*>(weights.data);
  const auto scale = static_cast<float>(p.scale);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.tokens, grain(p.k)), [&](const auto& range) {
    for (int64_t t = range.begin(); t != range.end(); ++t) {
      float sum = 0;
      for (int64_t j = 0; j < p.k; ++j) sum += w[t * p.k + j] = sigmoid(l[t * p.experts + chosen[t * p.k + j]]);
      const float factor = scale / sum;
      for (int64_t j = 0; j < p.k; ++j) w[t * p.k + j] *= factor;
    }
  });
}

// A counting sort: count each expert's choices, give each used expert a block of its
// count rounded up to align (in expert order), then place the choices in (token, choice)
// order. Serial: O(tokens * k + rows) integer work, small next to the GEMMs it feeds.
void moe_plan(const MoePlanProblem& p, ConstOperand experts, Operand plan) {
  const char* op = "moe_plan";
  check_shape(op, {{"tokens", p.tokens}, {"k", p.k}});
  if (p.experts <= 0 || p.align <= 0) invalid(op, "experts and align must be > 0");
  if (p.rows != ir::moe_plan_rows(p.tokens, p.k, p.experts, p.align))
    invalid(op, "rows=" + std::to_string(p.rows) + " is not moe_plan_rows(...) = " +
                    std::to_string(ir::moe_plan_rows(p.tokens, p.k, p.experts, p.align)));
  const int64_t choices = p.tokens * p.k;
  check_data(op, "experts", experts.data, choices);
  check_data(op, "plan", plan.data, 3 * p.rows);
  const std::int32_t* chosen = i32(experts.data);
  check_range(op, "experts", chosen, choices, 0, p.experts, "an expert", [&](int64_t s) { return choice(p.k, s); });

  std::vector<int64_t> next(at(p.experts), 0);  // counts, then each expert's next row
  for (int64_t s = 0; s < choices; ++s) ++next[at(chosen[s])];
  int64_t row = 0;
  for (int64_t& n : next) {
    const int64_t count = n;
    n = row;
    row += (count + p.align - 1) / p.align * p.align;
  }
  auto* expert_of = static_cast<std::int32_t*>(plan.data);
  std::int32_t* token_of = expert_of + p.rows;
  std::int32_t* row_of = expert_of + 2 * p.rows;
  std::fill(expert_of, expert_of + 3 * p.rows, -1);
  for (int64_t s = 0; s < choices; ++s) {
    const std::int32_t e = chosen[s];
    const int64_t r = next[at(e)]++;
    expert_of[r] = e;
    token_of[r] = static_cast<std::int32_t>(s / p.k);
    row_of[s] = static_cast<std::int32_t>(r);
  }
}

void moe_gather(const MoeGatherProblem& p, ConstOperand x, ConstOperand plan, Operand y) {
  const char* op = "moe_gather";
  check_shape(op, {{"tokens", p.tokens}, {"rows", p.rows}, {"dim", p.dim}});
  if (p.dtype == DType::ue8m0) invalid(op, "dtype ue8m0 is a scale format, not a tensor element type");
  check_data(op, "x", x.data, p.tokens * p.dim);
  check_data(op, "plan", plan.data, 3 * p.rows);
  check_data(op, "y", y.data, p.rows * p.dim);
  const std::int32_t* token_of = i32(plan.data) + p.rows;
  check_range(op, "plan", token_of, p.rows, -1, p.tokens, "-1 (padding) or a token",
              [](int64_t r) { return "plan[1, " + std::to_string(r) + "]"; });
  const auto bytes = static_cast<int64_t>(dtype_size(p.dtype)) * p.dim;
  const auto* src = static_cast<const std::byte*>(x.data);
  auto* dst = static_cast<std::byte*>(y.data);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.rows, grain(bytes / 4)), [&](const auto& range) {
    for (int64_t r = range.begin(); r != range.end(); ++r) {
      if (token_of[r] < 0)
        std::memset(dst + r * bytes, 0, at(bytes));  // +0 in every float format
      else
        std::memcpy(dst + r * bytes, src + token_of[r] * bytes, at(bytes));
    }
  });
}

void moe_combine(const MoeCombineProblem& p, ConstOperand y, ConstOperand plan, ConstOperand weights, Operand out) {
  const char* op = "moe_combine";
  check_shape(op, {{"tokens", p.tokens}, {"k", p.k}, {"rows", p.rows}, {"dim", p.dim}});
  if (!is_float(p.dtype)) invalid(op, "dtype " + std::string(dtype_name(p.dtype)) + " is not f32, bf16 or f16");
  if (p.tokens * p.k > p.rows)
    invalid(op, std::to_string(p.tokens * p.k) + " choices, more than the plan's " + std::to_string(p.rows) + " rows");
  check_data(op, "y", y.data, p.rows * p.dim);
  check_data(op, "plan", plan.data, 3 * p.rows);
  check_data(op, "weights", weights.data, p.tokens * p.k);
  check_data(op, "out", out.data, p.tokens * p.dim);
  const std::int32_t* row_of = i32(plan.data) + 2 * p.rows;
  check_range(op, "plan", row_of, p.tokens * p.k, 0, p.rows, "a row", [&](int64_t s) {
    return "plan[2, " + std::to_string(s) + "] (" + choice(p.k, s) + ")";
  });
  const auto* w = static_cast<const float*>(weights.data);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.tokens, grain(p.k * p.dim)), [&](const auto& range) {
    std::vector<float> sum(at(p.dim)), row(at(p.dim));
    for (int64_t t = range.begin(); t != range.end(); ++t) {
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (int64_t j = 0; j < p.k; ++j) {
        load(p.dtype, y.data, row_of[t * p.k + j] * p.dim, p.dim, row.data());
        const float wj = w[t * p.k + j];
        for (std::size_t d = 0; d < sum.size(); ++d) sum[d] += wj * row[d];
      }
      store(p.dtype, sum.data(), p.dim, out.data, t * p.dim);
    }
  });
}

}  // namespace anychip::kernels::cpu
