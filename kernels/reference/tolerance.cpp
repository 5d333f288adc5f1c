// The tolerance table (tolerance.hpp has how the bounds are derived).
#include "kernels/reference/tolerance.hpp"

#include <type_traits>
#include <variant>

namespace anychip::kernels::reference {
namespace {

// Output rounding u with ~2x margin: bf16 2 * 2^-8, f16 2 * 2^-11.
constexpr double kBf16Out = 8e-3;
constexpr double kF16Out = 1e-3;
// Output rounding plus one intermediate rounded to the storage dtype, with margin.
constexpr double kBf16TwoRoundings = 1e-2;
constexpr double kF16TwoRoundings = 1.5e-3;

// For ops whose f32 error is fp32 arithmetic only, and whose bf16/f16 error is the
// output rounding (plus that arithmetic, far smaller).
Tolerance by_output(DType out, Tolerance f32) {
  switch (out) {
    case DType::bf16:
      return {kBf16Out, "bf16 output rounding (<= 2^-8 relative per element), 2x margin"};
    case DType::f16:
      return {kF16Out, "f16 output rounding (<= 2^-11 relative per element), 2x margin"};
    default: return f32;
  }
}

struct Rule {
  Tolerance operator()(const GemmFp8Problem& p) const {
    return by_output(p.out_dtype,
                     {1e-5, "inputs exact on both sides; only fp32 summation order and block "
                            "scaling in fp32 differ (~sqrt(K) * 2^-24)"});
  }
  Tolerance operator()(const GemmProblem& p) const {
    return by_output(p.out_dtype,
                     {1e-5, "fp32 products and summation order differ (~sqrt(K) * 2^-24)"});
  }
  Tolerance operator()(const AttentionProblem& p) const {
    switch (p.dtype) {
      case DType::bf16:
        return {kBf16TwoRoundings,
                "bf16 output rounding plus P rounded to bf16 before P*V (2 x 2^-8), plus fp32 "
                "scores and exp approximation"};
      case DType::f16:
        return {kF16TwoRoundings,
                "f16 output rounding plus P rounded to f16 before P*V (2 x 2^-11), plus fp32 "
                "scores and exp approximation"};
      default:
        return {1e-4,
                "fp32 score rounding (|s| * 2^-24, |s| up to tens) turned relative by exp, exp "
                "approximations of a few ulp, fp32 sums over seq_kv"};
    }
  }
  Tolerance operator()(const RmsNormProblem& p) const {
    return by_output(p.dtype,
                     {1e-5, "fp32 sum of squares over dim and an rsqrt of a few ulp"});
  }
  Tolerance operator()(const SiluMulProblem& p) const {
    switch (p.dtype) {
      case DType::bf16:
        return {kBf16TwoRoundings,
                "bf16 output rounding plus silu(g) possibly rounded to bf16 before the "
                "multiply (2 x 2^-8)"};
      case DType::f16:
        return {kF16TwoRoundings,
                "f16 output rounding plus silu(g) possibly rounded to f16 before the "
                "multiply (2 x 2^-11)"};
      default:
        return {1e-5, "fp32 exp (a few ulp), division and product"};
    }
  }
  Tolerance operator()(const AddProblem& p) const {
    return by_output(p.dtype, {1e-6, "one fp32 rounding of the sum (<= 2^-24 per element)"});
  }
  Tolerance operator()(const QuantizeProblem&) const {
    return {0.0, "exact arithmetic (quantize_blocks): codes and scales must match bit for bit"};
  }
  Tolerance operator()(const DequantizeProblem& p) const {
    if (p.out_dtype != DType::f32) return by_output(p.out_dtype, {});
    if (p.scale_dtype == DType::ue8m0)
      return {0.0, "fp8 times a power of two is exact in fp32: bit for bit"};
    return {1e-7, "one fp32 rounding of fp8 * scale (<= 2^-24 per element)"};
  }
  // The angle pos * theta^(-2i/rot) may be formed in fp32: two roundings (theta^(-2i/rot)
  // and the product) of an angle up to pos rad give up to 2 pos 2^-24 rad, which sin and
  // cos pass on as an absolute error of that size per element (|x| ~ |y|: relative).
  // Positions are assumed below 2^14 (contexts of a few thousand tokens): 2^-9 ~ 2e-3 at
  // the highest frequency, the worst element; the L2 ratio over the lower frequencies and
  // the copied columns is several times smaller, which is the margin.
  Tolerance operator()(const RopeProblem& p) const {
    switch (p.dtype) {
      case DType::bf16:
        return {1e-2, "bf16 output rounding (2 x 2^-8) plus an angle formed in fp32 (2 pos 2^-24 rad, "
                      "pos < 2^14: 2e-3)"};
      case DType::f16:
        return {3e-3, "f16 output rounding (2 x 2^-11) plus an angle formed in fp32 (2 pos 2^-24 rad, "
                      "pos < 2^14: 2e-3)"};
      default:
        return {2e-3, "an angle formed in fp32: 2 pos 2^-24 rad for pos < 2^14, passed on by sin/cos "
                      "(2e-3 at worst); fp32 sin/cos and the rotation a few 2^-24"};
    }
  }
  Tolerance operator()(const SliceProblem&) const { return {0.0, "a copy: bit for bit"}; }
  Tolerance operator()(const ConcatProblem&) const { return {0.0, "a copy: bit for bit"}; }
  // Read by mismatch() (reference.hpp), not as a rel_err: keys sigmoid(l) + b differ from
  // the float64 ones by a few 2^-24 times max(1, |key|) (fp32 exp, division, bias add),
  // a difference of two keys by twice that (~4e-7); 1e-6 is that with a ~2x margin.
  Tolerance operator()(const MoeTopkProblem&) const {
    return {1e-6, "a valid group-limited top-k under the float64 keys up to near-ties: key differences "
                  "within 1e-6 x max(1, |key|) (fp32 keys: a few 2^-24)"};
  }
  Tolerance operator()(const MoeWeightsProblem&) const {
    return {1e-5, "fp32 sigmoid (exp of a few ulp), a sum of k terms and a division: ~(k + 4) 2^-24, "
                  "2x margin for k up to 64"};
  }
  Tolerance operator()(const MoePlanProblem&) const { return {0.0, "integer layout: exact"}; }
  Tolerance operator()(const MoeGatherProblem&) const { return {0.0, "a copy of rows (padding 0): bit for bit"}; }
  Tolerance operator()(const GemmFp8GroupedProblem& p) const {
    return by_output(p.out_dtype,
                     {1e-5, "as gemm_fp8: inputs exact on both sides; only fp32 summation order and block "
                            "scaling in fp32 differ (~sqrt(K) * 2^-24); padding rows exactly 0"});
  }
  Tolerance operator()(const MoeCombineProblem& p) const {
    return by_output(p.dtype, {1e-5, "fp32 products and a sum of k terms (~sqrt(k) * 2^-24, 2x margin "
                                     "and room for cancellation)"});
  }
};

}  // namespace

Tolerance tolerance_rule(const Problem& p) { return std::visit(Rule{}, p); }

double tolerance(const Problem& p) { return tolerance_rule(p).bound; }

}  // namespace anychip::kernels::reference
