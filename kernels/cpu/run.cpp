// cpu::run: the CPU kernel of a problem, chosen by its kind (cpu_kernels.hpp).
#include <string>
#include <type_traits>
#include <variant>

#include "anychip/error.hpp"
#include "kernels/cpu/cpu_kernels.hpp"

namespace anychip::kernels::cpu {
namespace {

void require_inputs(std::string_view op, std::span<const ConstOperand> inputs, std::size_t n) {
  if (inputs.size() != n)
    throw Error(ErrorCode::InvalidArgument, "cpu::run: " + std::string(op) + " takes " +
                                                std::to_string(n) + " inputs, got " +
                                                std::to_string(inputs.size()));
}

}  // namespace

void run(const Problem& problem, std::span<const ConstOperand> in, Operand out) {
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, GemmFp8Problem>) {
          require_inputs("gemm_fp8", in, 2);
          gemm_fp8(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, GemmProblem>) {
          require_inputs("gemm", in, 2);
          gemm(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          require_inputs("attention", in, 3);
          attention(p, in[0], in[1], in[2], out);
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          require_inputs("rmsnorm", in, 2);
          rmsnorm(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, SiluMulProblem>) {
          require_inputs("silu_mul", in, 1);
          silu_mul(p, in[0], out);
        } else if constexpr (std::is_same_v<P, AddProblem>) {
          require_inputs("add", in, 2);
          add(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          require_inputs("quantize_fp8", in, 1);
          quantize_fp8(p, in[0], out);
        } else if constexpr (std::is_same_v<P, DequantizeProblem>) {
          require_inputs("dequantize", in, 1);
          dequantize(p, in[0], out);
        } else if constexpr (std::is_same_v<P, RopeProblem>) {
          require_inputs("rope", in, 2);
          rope(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, SliceProblem>) {
          require_inputs("slice", in, 1);
          slice(p, in[0], out);
        } else if constexpr (std::is_same_v<P, ConcatProblem>) {
          require_inputs("concat", in, 2);
          concat(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, MoeTopkProblem>) {
          require_inputs("moe_topk", in, 2);
          moe_topk(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, MoeWeightsProblem>) {
          require_inputs("moe_weights", in, 2);
          moe_weights(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, MoePlanProblem>) {
          require_inputs("moe_plan", in, 1);
          moe_plan(p, in[0], out);
        } else if constexpr (std::is_same_v<P, MoeGatherProblem>) {
          require_inputs("moe_gather", in, 2);
          moe_gather(p, in[0], in[1], out);
        } else if constexpr (std::is_same_v<P, GemmFp8GroupedProblem>) {
          require_inputs("gemm_fp8_grouped", in, 3);
          gemm_fp8_grouped(p, in[0], in[1], in[2], out);
        } else {
          static_assert(std::is_same_v<P, MoeCombineProblem>);
          require_inputs("moe_combine", in, 3);
          moe_combine(p, in[0], in[1], in[2], out);
        }
      },
      problem);
}

}  // namespace anychip::kernels::cpu
