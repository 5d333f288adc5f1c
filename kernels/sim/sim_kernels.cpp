// The entry points of kernels/sim (sim_kernels.hpp): dispatch on the problem's kind to
// the op's lowering (ops.hpp), and the constants block.
#include "kernels/sim/sim_kernels.hpp"

#include <cstring>
#include <limits>
#include <type_traits>
#include <variant>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "kernels/sim/ops.hpp"

namespace anychip::kernels::sim {
namespace {

template <typename T>
void put(std::vector<std::byte>& bytes, std::int64_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

std::vector<std::byte> make_constants() {
  std::vector<std::byte> c(static_cast<std::size_t>(kConstBytes), std::byte{0});
  for (std::int64_t i = 0; i < kConstVectorBytes / 4; ++i)
    put(c, kConstNegInf + 4 * i, -std::numeric_limits<float>::infinity());
  for (std::int64_t i = 0; i < kConstOnesBytes; ++i) put(c, kConstOnesE4m3 + i, float_to_e4m3(1.0f));
  for (std::int64_t i = 0; i < kConstIdentitySize; ++i) {
    const std::int64_t diag = i * kConstIdentitySize + i;
    put(c, kConstIdentityF32 + 4 * diag, 1.0f);
    put(c, kConstIdentityBf16 + 2 * diag, float_to_bf16(1.0f));
    put(c, kConstIdentityF16 + 2 * diag, float_to_f16(1.0f));
  }
  return c;
}

// The buffers of each op: its inputs (with their scales) and its output.
std::vector<std::string> operand_names(const Problem& p) {
  struct Names {
    using V = std::vector<std::string>;
    V operator()(const GemmFp8Problem&) const { return {"a", "a scales", "b", "b scales", "d"}; }
    V operator()(const GemmProblem&) const { return {"a", "b", "d"}; }
    V operator()(const AttentionProblem&) const { return {"q", "k", "v", "o"}; }
    V operator()(const RmsNormProblem&) const { return {"x", "w", "y"}; }
    V operator()(const SiluMulProblem&) const { return {"x", "y"}; }
    V operator()(const AddProblem&) const { return {"a", "b", "y"}; }
    V operator()(const QuantizeProblem&) const { return {"x", "q", "q scales"}; }
    V operator()(const DequantizeProblem&) const { return {"q", "q scales", "y"}; }
    V operator()(const RopeProblem&) const { return {"x", "pos", "y"}; }
    V operator()(const SliceProblem&) const { return {"x", "y"}; }
    V operator()(const ConcatProblem&) const { return {"a", "b", "y"}; }
    V operator()(const MoeTopkProblem&) const { return {"logits", "bias", "experts"}; }
    V operator()(const MoeWeightsProblem&) const { return {"logits", "experts", "weights"}; }
    V operator()(const MoePlanProblem&) const { return {"experts", "plan"}; }
    V operator()(const MoeGatherProblem&) const { return {"x", "plan", "y"}; }
    V operator()(const GemmFp8GroupedProblem&) const { return {"a", "a scales", "b", "b scales", "group", "d"}; }
    V operator()(const MoeCombineProblem&) const { return {"y", "plan", "weights", "out"}; }
  };
  return std::visit(Names{}, p);
}

}  // namespace

std::span<const std::byte> constants() {
  static const std::vector<std::byte> bytes = make_constants();
  return bytes;
}

std::size_t arg_count(const Problem& problem) { return operand_names(problem).size() + 2; }

std::vector<std::string> arg_names(const Problem& problem) {
  std::vector<std::string> names = operand_names(problem);
  names.push_back("constants");
  names.push_back("workspace");
  return names;
}

TileConfig choose_tiles(const Problem& problem, const ChipDesc& chip) {
  return std::visit([&](const auto& p) { return choose(p, chip); }, problem);
}

std::string unsupported(const KernelSpec& spec, const ChipDesc& chip) {
  return std::visit([&](const auto& p) { return check(p, spec.tiles, chip); }, spec.problem);
}

Footprint footprint(const KernelSpec& spec, const ChipDesc& chip) {
  return std::visit([&](const auto& p) { return footprint(p, spec.tiles, chip); }, spec.problem);
}

int phase_count(const KernelSpec& spec, const ChipDesc& chip) {
  if (const auto* a = std::get_if<AttentionProblem>(&spec.problem)) return phases(*a, spec.tiles, chip);
  return 1;
}

std::int64_t workspace_bytes(const KernelSpec& spec, const ChipDesc& chip) {
  if (const auto* a = std::get_if<AttentionProblem>(&spec.problem)) return workspace(*a, spec.tiles, chip);
  return 0;
}

TileKernel lower(const KernelSpec& spec, const ChipDesc& chip, int phase) {
  if (const std::string why = unsupported(spec, chip); !why.empty())
    throw Error(ErrorCode::Unsupported, "sim:" + chip.name + " cannot run " + describe(spec) + ": " + why);
  if (phase < 0 || phase >= phase_count(spec, chip))
    throw Error(ErrorCode::InvalidArgument, "sim: " + describe(spec) + " has no phase " + std::to_string(phase));
  return std::visit([&](const auto& p) { return build(p, spec.tiles, chip, phase); }, spec.problem);
}

}  // namespace anychip::kernels::sim
