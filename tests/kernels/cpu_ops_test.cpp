// Every CPU op against the float64 reference, on fresh random inputs, with the output
// poisoned (NaN bytes) first so that an unwritten element fails, within the tolerance
// table's bound for the problem (quantization: bit for bit).
#include "kernels/cpu/cpu_kernels.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/quantize.hpp"
#include "anychip/tensor.hpp"
#include "kernels/kernel_spec.hpp"
#include "kernels/reference/reference.hpp"
#include "kernels/reference/tolerance.hpp"

namespace anychip::kernels {
namespace {

constexpr DType kFloatDTypes[] = {DType::f32, DType::bf16, DType::f16};

TensorType tensor(DType d, Shape shape, std::optional<ScaleLayout> scale = std::nullopt) {
  return {d, std::move(shape), scale};
}

// An output buffer of type t whose every byte is 0xFF: NaN in f32, bf16, f16, E4M3,
// E5M2 and UE8M0.
HostTensor poisoned(const TensorType& t) {
  HostTensor h(t);
  std::memset(h.data.data(), 0xFF, h.data.size());
  std::memset(h.scales.data(), 0xFF, h.scales.size());
  return h;
}

ConstOperand operand(const HostTensor& t) {
  return {t.data.data(), t.scales.empty() ? nullptr : t.scales.data()};
}

struct Outcome {
  HostTensor out;
  std::vector<double> ref;
  double err = 0;
};

// Runs p on the CPU and in the reference; checks rel_err <= tolerance(p).
Outcome check(const Problem& p, const std::vector<HostTensor>& inputs, const TensorType& out_type) {
  Outcome o{poisoned(out_type), std::vector<double>(static_cast<std::size_t>(out_type.numel())), 0};
  std::vector<ConstOperand> in;
  for (const HostTensor& t : inputs) in.push_back(operand(t));
  cpu::run(p, in, {o.out.data.data(), o.out.scales.empty() ? nullptr : o.out.scales.data()});
  reference::run(p, in, o.ref.data());
  o.err = rel_err(o.out.values(), o.ref);
  EXPECT_LE(o.err, reference::tolerance(p)) << describe(KernelSpec{p, {}});
  return o;
}

std::uint64_t seed_of(const Problem& p) { return std::hash<std::string>{}(describe(KernelSpec{p, {}})); }

// ---- attention --------------------------------------------------------------------------

Outcome check_attention(AttentionProblem p) {
  if (p.scale == 0) p.scale = 1.0 / std::sqrt(static_cast<double>(p.head_dim));
  const std::uint64_t seed = seed_of(p);
  const std::vector<HostTensor> qkv = {
      HostTensor::random(tensor(p.dtype, {p.batch, p.seq_q, p.heads_q, p.head_dim}), seed),
      HostTensor::random(tensor(p.dtype, {p.batch, p.seq_kv, p.heads_kv, p.head_dim}), seed + 1),
      HostTensor::random(tensor(p.dtype, {p.batch, p.seq_kv, p.heads_kv, p.head_dim_v}), seed + 2)};
  return check(p, qkv, tensor(p.dtype, {p.batch, p.seq_q, p.heads_q, p.head_dim_v}));
}

AttentionProblem attn(std::int64_t batch, std::int64_t sq, std::int64_t skv, std::int64_t hq, std::int64_t hkv,
                      std::int64_t dk, std::int64_t dv, bool causal, DType dtype) {
  return {.batch = batch, .seq_q = sq, .seq_kv = skv, .heads_q = hq, .heads_kv = hkv, .head_dim = dk,
          .head_dim_v = dv, .causal = causal, .scale = 0, .dtype = dtype};
}

TEST(Attention, MultiHeadMatchesReferenceInEveryDtype) {
  for (DType d : kFloatDTypes)
    for (bool causal : {false, true}) check_attention(attn(2, 37, 53, 3, 3, 40, 40, causal, d));
}

TEST(Attention, CausalAlignsBottomRight) {
  // Sq < Skv: the last query sees every key, the first Skv - Sq + 1 of them.
  check_attention(attn(1, 70, 150, 2, 2, 64, 64, true, DType::bf16));
  check_attention(attn(1, 100, 100, 2, 2, 64, 64, true, DType::f32));
}

TEST(Attention, CausalQueriesBeforeTheFirstKeyGiveZero) {
  // Sq > Skv: queries 0 .. Sq-Skv-1 see no key and must write exact zeros.
  const AttentionProblem p = attn(2, 50, 20, 2, 1, 32, 48, true, DType::f32);
  const Outcome o = check_attention(p);
  const std::vector<double> out = o.out.values();
  for (std::int64_t b = 0; b < p.batch; ++b)
    for (std::int64_t i = 0; i < p.seq_q - p.seq_kv; ++i)
      for (std::int64_t e = 0; e < p.heads_q * p.head_dim_v; ++e)
        ASSERT_EQ(out[static_cast<std::size_t>((b * p.seq_q + i) * p.heads_q * p.head_dim_v + e)], 0.0) << i;
}

TEST(Attention, GroupedQueryHeadsShareTheirKvHead) {
  for (DType d : kFloatDTypes) check_attention(attn(1, 20, 75, 8, 2, 72, 24, true, d));
  check_attention(attn(2, 9, 40, 12, 4, 16, 16, false, DType::bf16));
}

TEST(Attention, MultiQueryHeadsShareTheOneKvHead) {
  check_attention(attn(1, 33, 130, 6, 1, 48, 48, false, DType::bf16));
  check_attention(attn(1, 33, 130, 6, 1, 48, 48, true, DType::f16));
}

TEST(Attention, HonoursTheGivenScale) {
  AttentionProblem p = attn(1, 5, 60, 2, 2, 32, 32, false, DType::f32);
  p.scale = 0.7;
  check_attention(p);
}

TEST(Attention, DecodeAgainstALongKvSplitsTheKeys) {
  check_attention(attn(1, 1, 4096, 8, 2, 128, 128, false, DType::bf16));
  check_attention(attn(1, 1, 32768, 4, 1, 64, 64, true, DType::bf16));
  check_attention(attn(2, 1, 3001, 1, 1, 80, 80, true, DType::f32));  // partial last tile
}

TEST(Attention, SpeculativeDecodeIsCausalWithinTheNewTokens) {
  check_attention(attn(1, 4, 1000, 8, 1, 64, 64, true, DType::bf16));
}

TEST(Attention, MlaDecodeHasWiderKeysThanValues) {
  check_attention(attn(1, 1, 1500, 16, 1, 576, 512, true, DType::bf16));
  check_attention(attn(1, 2, 300, 4, 1, 576, 512, true, DType::f32));
}

TEST(Attention, EveryInstructionSetMatchesTheReference) {
  const char* saved = std::getenv("ANYCHIP_CPU_ISA");
  const std::string restore = saved ? saved : "";
  for (const char* forced : {"generic", "avx2"}) {
    setenv("ANYCHIP_CPU_ISA", forced, 1);
    SCOPED_TRACE(std::string("ANYCHIP_CPU_ISA=") + forced + " -> " + std::string(cpu::isa()));
    check_attention(attn(1, 21, 90, 4, 2, 40, 24, true, DType::f16));
    check_attention(attn(1, 1, 2000, 2, 1, 64, 64, false, DType::bf16));
    check_attention(attn(2, 13, 300, 6, 2, 72, 40, true, DType::f32));
  }
  if (saved) setenv("ANYCHIP_CPU_ISA", restore.c_str(), 1);
  else unsetenv("ANYCHIP_CPU_ISA");
}

TEST(Attention, RejectsHeadsNotAMultipleOfKvHeads) {
  const AttentionProblem p = attn(1, 1, 1, 3, 2, 8, 8, false, DType::f32);
  std::vector<float> buf(64);
  EXPECT_THROW(cpu::attention(p, {buf.data()}, {buf.data()}, {buf.data()}, {buf.data()}), Error);
}

// ---- rmsnorm, silu_mul, add -------------------------------------------------------------

TEST(RmsNorm, MatchesReferenceInEveryDtype) {
  for (DType d : kFloatDTypes)
    for (DType w : {DType::f32, DType::bf16}) {
      const RmsNormProblem p{.rows = 7, .dim = 1000, .eps = 1e-6, .dtype = d, .weight_dtype = w};
      check(p, {HostTensor::random(tensor(d, {p.rows, p.dim}), seed_of(p)), HostTensor::random(tensor(w, {p.dim}), 7)},
            tensor(d, {p.rows, p.dim}));
    }
}

TEST(RmsNorm, EpsDominatesTinyRows) {
  const RmsNormProblem p{.rows = 3, .dim = 64, .eps = 10.0, .dtype = DType::f32, .weight_dtype = DType::f32};
  check(p, {HostTensor::random(tensor(p.dtype, {p.rows, p.dim}), 3), HostTensor::random(tensor(DType::f32, {p.dim}), 4)},
        tensor(p.dtype, {p.rows, p.dim}));
}

TEST(SiluMul, GatesTheSecondHalfInEveryDtype) {
  for (DType d : kFloatDTypes) {
    const SiluMulProblem p{.rows = 5, .dim = 333, .dtype = d};
    check(p, {HostTensor::random(tensor(d, {p.rows, 2 * p.dim}), seed_of(p))}, tensor(d, {p.rows, p.dim}));
  }
}

TEST(Add, AddsElementwiseAcrossTaskBoundaries) {
  for (DType d : kFloatDTypes) {
    const AddProblem p{.numel = 100003, .dtype = d};
    check(p, {HostTensor::random(tensor(d, {p.numel}), seed_of(p)), HostTensor::random(tensor(d, {p.numel}), seed_of(p) + 1)},
          tensor(d, {p.numel}));
  }
}

// ---- quantize_fp8, dequantize -----------------------------------------------------------

TEST(QuantizeFp8, EqualsQuantizeBlocksBitForBit) {
  for (BlockShape block : {kActivationBlock, kWeightBlock})
    for (DType scale : {DType::ue8m0, DType::f32})
      for (DType in : kFloatDTypes)
        for (DType fp8 : {DType::f8e4m3, DType::f8e5m2}) {
          if (fp8 == DType::f8e5m2 && in != DType::bf16) continue;
          const QuantizeProblem p{.rows = 300, .cols = 390, .in_dtype = in, .out_dtype = fp8,
                                  .block = block, .scale_dtype = scale};
          const HostTensor x = HostTensor::random(tensor(in, {p.rows, p.cols}), seed_of(p));
          const TensorType out_type = tensor(fp8, {p.rows, p.cols}, ScaleLayout{block, scale});
          const Outcome o = check(p, {x}, out_type);
          EXPECT_EQ(o.err, 0.0);

          // The same codes and scales as quantize_blocks on the exactly converted input.
          const std::vector<double> xd = x.values();
          const std::vector<float> xf(xd.begin(), xd.end());
          HostTensor want(out_type);
          quantize_blocks(xf, p.rows, p.cols, block, fp8, scale,
                          {reinterpret_cast<std::uint8_t*>(want.data.data()), want.data.size()}, want.scales);
          EXPECT_EQ(o.out.data, want.data) << describe(KernelSpec{p, {}});
          EXPECT_EQ(o.out.scales, want.scales) << describe(KernelSpec{p, {}});
        }
}

TEST(Dequantize, MultipliesByBlockScalesInEveryOutputDtype) {
  for (BlockShape block : {kActivationBlock, kWeightBlock})
    for (DType scale : {DType::ue8m0, DType::f32})
      for (DType out : kFloatDTypes) {
        const DequantizeProblem p{.rows = 260, .cols = 300, .in_dtype = DType::f8e4m3, .block = block,
                                  .scale_dtype = scale, .out_dtype = out};
        check(p, {HostTensor::random(tensor(p.in_dtype, {p.rows, p.cols}, ScaleLayout{block, scale}), seed_of(p))},
              tensor(out, {p.rows, p.cols}));
      }
  const DequantizeProblem e5{.rows = 3, .cols = 200, .in_dtype = DType::f8e5m2, .out_dtype = DType::bf16};
  check(e5, {HostTensor::random(tensor(e5.in_dtype, {3, 200}, ScaleLayout{e5.block, e5.scale_dtype}), 5)},
        tensor(DType::bf16, {3, 200}));
}

// ---- run --------------------------------------------------------------------------------

TEST(CpuRun, RejectsTheWrongNumberOfInputs) {
  const Problem p = AddProblem{.numel = 1, .dtype = DType::f32};
  float a = 1, y = 0;
  const ConstOperand one[] = {{&a}};
  EXPECT_THROW(cpu::run(p, one, {&y}), Error);
}

}  // namespace
}  // namespace anychip::kernels
