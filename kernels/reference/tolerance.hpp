// The one table of error bounds: how far a backend's output may be from the float64
// reference (reference.hpp), as rel_err = ||out - ref||_2 / ||ref||_2 (anychip/tensor.hpp),
// per op and dtype. Tests, the CLI's --check and the conformance suite all read it.
//
// How a bound is derived. Both sides read the same inputs, decoded exactly, so the
// difference has only three sources:
//   1. rounding the result to the output dtype, at most u relative per element, hence at
//      most u in the L2 ratio: u = 2^-24 (f32), 2^-8 (bf16), 2^-11 (f16);
//   2. fp32 arithmetic inside the kernel: a sum of n products in some order (about
//      sqrt(n) * 2^-24 relative on random inputs), exp / rsqrt approximations of a few ulp,
//      and for attention the fp32 rounding of a score s, an absolute error that exp turns
//      into a relative one of |s| * 2^-24 (|s| reaches tens on random inputs);
//   3. one intermediate a backend may legitimately keep in the storage dtype (the softmax
//      probabilities P in bf16/f16 before the P*V product on tensor cores, silu(g) before
//      the multiply), another u.
// A bound adds the worst per-element value of the sources the op allows, with a margin
// of about 2x, rounded to a readable number: a correct kernel never fails it, while a
// wrong index, a missing scale or an unwritten element (errors of order 1) always does.
// Quantization is exact arithmetic (quantize_blocks), so its bound is 0: bit for bit.
#pragma once

#include <string_view>

#include "kernels/problems.hpp"

namespace anychip::kernels::reference {

struct Tolerance {
  double bound = 0;         // the largest rel_err a correct backend may show
  std::string_view reason;  // one line: where the error comes from
};

// The bound for this problem, with its reason.
Tolerance tolerance_rule(const Problem& p);

// tolerance_rule(p).bound.
double tolerance(const Problem& p);

}  // namespace anychip::kernels::reference
