#include "checkpoint.hpp"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/quantize.hpp"

namespace deepseek_layer {

using anychip::DType;
using anychip::Error;
using anychip::ErrorCode;
using anychip::HostTensor;
using anychip::ScaleLayout;
using anychip::Shape;
using anychip::TensorType;

namespace {

TensorType fp8_weight_type(std::int64_t rows, std::int64_t cols) {
  return {DType::f8e4m3, {rows, cols}, ScaleLayout{anychip::kWeightBlock, DType::ue8m0}};
}

// Each tensor gets its own stream, seeded by the run's seed and the tensor's name, so a
// tensor's values do not depend on which tensors were drawn before it.
std::mt19937_64 rng_for(std::uint64_t seed, const std::string& name) {
  std::uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return std::mt19937_64(h);
}

// A linear layer's weight [out, in]: uniform with the variance of a 1/sqrt(in) init,
// times a power of two between 1/4 and 2 drawn per 128x128 block.
HostTensor random_linear(std::int64_t out, std::int64_t in, std::mt19937_64 rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::uniform_int_distribution<int> e(-2, 1);
  const std::int64_t bcols = (in + 127) / 128;
  std::vector<double> mag(static_cast<std::size_t>(((out + 127) / 128) * bcols));
  for (double& m : mag) m = std::ldexp(1.0, e(rng));
  const double bound = std::sqrt(3.0 / static_cast<double>(in));
  std::vector<double> v(static_cast<std::size_t>(out * in));
  for (std::int64_t r = 0; r < out; ++r)
    for (std::int64_t k = 0; k < in; ++k)
      v[static_cast<std::size_t>(r * in + k)] =
          u(rng) * bound * mag[static_cast<std::size_t>((r / 128) * bcols + k / 128)];
  return HostTensor::encode(fp8_weight_type(out, in), v);
}

HostTensor random_vector(DType dtype, std::int64_t n, double center, double spread,
                         std::mt19937_64 rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& x : v) x = center + spread * u(rng);
  return HostTensor::encode({dtype, {n}, std::nullopt}, v);
}

HostTensor random_matrix(DType dtype, std::int64_t rows, std::int64_t cols, std::mt19937_64 rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const double bound = std::sqrt(3.0 / static_cast<double>(cols));
  std::vector<double> v(static_cast<std::size_t>(rows * cols));
  for (double& x : v) x = bound * u(rng);
  return HostTensor::encode({dtype, {rows, cols}, std::nullopt}, v);
}

std::string expert(std::int64_t e, const char* proj) {
  return "mlp.experts." + std::to_string(e) + "." + proj;
}

class Loader {
 public:
  Loader(const LayerConfig& c, const anychip::SafetensorsSource& f) : c_(c), f_(f) {}

  HostTensor fp8(const std::string& module, std::int64_t out, std::int64_t in) const {
    const std::string prefix = c_.prefix() + module;
    HostTensor w = anychip::load_fp8_weight(f_, prefix, DType::ue8m0);
    expect_shape(prefix + ".weight", w.type.shape, {out, in});
    return w;
  }
  HostTensor plain(const std::string& name, DType dtype, Shape shape) const {
    const std::string full = c_.prefix() + name;
    HostTensor t = f_.load(full);
    if (t.type.dtype != dtype)
      throw Error(ErrorCode::InvalidArgument,
                  f_.name() + ": " + full + " is " +
                      std::string(anychip::safetensors_dtype_name(t.type.dtype)) +
                      ", DeepSeek's layout has " +
                      std::string(anychip::safetensors_dtype_name(dtype)));
    expect_shape(full, t.type.shape, shape);
    return t;
  }

 private:
  void expect_shape(const std::string& name, const Shape& got, const Shape& want) const {
    if (got != want)
      throw Error(ErrorCode::InvalidArgument,
                  f_.name() + ": " + name + " is " + anychip::shape_str(got) +
                      ", the layer at scale '" + c_.scale + "' needs " + anychip::shape_str(want) +
                      " (is --scale right?)");
  }
  const LayerConfig& c_;
  const anychip::SafetensorsSource& f_;
};

}  // namespace

void write_random_checkpoint(const LayerConfig& c, const std::filesystem::path& path,
                             std::uint64_t seed) {
  anychip::SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.set_metadata("anychip.example", "deepseek_layer");
  w.set_metadata("anychip.scale", c.scale);
  w.set_metadata("anychip.config", c.summary());
  w.set_metadata("anychip.seed", std::to_string(seed));
  const std::string p = c.prefix();
  auto linear = [&](const std::string& module, std::int64_t out, std::int64_t in) {
    w.add_fp8_weight(p + module, random_linear(out, in, rng_for(seed, p + module)));
  };
  auto norm = [&](const std::string& name, std::int64_t n) {
    w.add(p + name, random_vector(DType::bf16, n, 1.0, 0.25, rng_for(seed, p + name)));
  };
  norm("input_layernorm.weight", c.hidden);
  linear("self_attn.q_a_proj", c.q_lora, c.hidden);
  norm("self_attn.q_a_layernorm.weight", c.q_lora);
  linear("self_attn.q_b_proj", c.heads * c.qk_dim(), c.q_lora);
  linear("self_attn.kv_a_proj_with_mqa", c.latent_dim(), c.hidden);
  norm("self_attn.kv_a_layernorm.weight", c.kv_lora);
  linear("self_attn.kv_b_proj", c.heads * (c.nope + c.v_dim), c.kv_lora);
  linear("self_attn.o_proj", c.hidden, c.heads * c.v_dim);
  norm("post_attention_layernorm.weight", c.hidden);
  w.add(p + "mlp.gate.weight",
        random_matrix(DType::bf16, c.experts, c.hidden, rng_for(seed, p + "mlp.gate.weight")));
  w.add(p + "mlp.gate.e_score_correction_bias",
        random_vector(DType::f32, c.experts, 0.0, 0.05,
                      rng_for(seed, p + "mlp.gate.e_score_correction_bias")));
  for (std::int64_t e = 0; e < c.experts; ++e) {
    linear(expert(e, "gate_proj"), c.moe_inter, c.hidden);
    linear(expert(e, "up_proj"), c.moe_inter, c.hidden);
    linear(expert(e, "down_proj"), c.hidden, c.moe_inter);
  }
  linear("mlp.shared_experts.gate_proj", c.shared_inter(), c.hidden);
  linear("mlp.shared_experts.up_proj", c.shared_inter(), c.hidden);
  linear("mlp.shared_experts.down_proj", c.hidden, c.shared_inter());
  std::filesystem::create_directories(path.parent_path().empty() ? "." : path.parent_path());
  w.write(path);
}

HostTensor stack_rows(const std::vector<const HostTensor*>& parts, const std::string& what) {
  if (parts.empty()) throw Error(ErrorCode::InvalidArgument, what + ": nothing to stack");
  const TensorType& first = parts[0]->type;
  std::int64_t rows = 0;
  for (const HostTensor* t : parts) {
    if (t->type.shape.size() != 2 || t->type.shape[1] != first.shape[1] ||
        t->type.dtype != first.dtype || t->type.scale != first.scale || !first.scale ||
        first.scale->block != anychip::kWeightBlock)
      throw Error(ErrorCode::InvalidArgument,
                  what + ": part " + t->type.str() + " does not stack with " + first.str());
    if (t->type.shape[0] % 128 != 0)
      throw Error(ErrorCode::InvalidArgument,
                  what + ": part " + t->type.str() +
                      " has rows not a multiple of 128; its scale blocks would split");
    rows += t->type.shape[0];
  }
  HostTensor out(TensorType{first.dtype, {rows, first.shape[1]}, first.scale});
  std::size_t data = 0, scales = 0;
  for (const HostTensor* t : parts) {
    std::memcpy(out.data.data() + data, t->data.data(), t->data.size());
    std::memcpy(out.scales.data() + scales, t->scales.data(), t->scales.size());
    data += t->data.size();
    scales += t->scales.size();
  }
  return out;
}

std::vector<double> compose_q_b_absorbed(const LayerConfig& c, const std::vector<double>& qb,
                                         const std::vector<double>& kvb) {
  const std::int64_t L = c.kv_lora, Q = c.q_lora, D = c.latent_dim();
  std::vector<double> out(static_cast<std::size_t>(c.heads * D * Q), 0.0);
  for (std::int64_t h = 0; h < c.heads; ++h) {
    for (std::int64_t d = 0; d < c.nope; ++d) {
      const double* uq = &qb[static_cast<std::size_t>((h * c.qk_dim() + d) * Q)];
      const double* uk = &kvb[static_cast<std::size_t>((h * (c.nope + c.v_dim) + d) * L)];
      for (std::int64_t r = 0; r < L; ++r) {
        double* row = &out[static_cast<std::size_t>((h * D + r) * Q)];
        const double a = uk[r];
        for (std::int64_t k = 0; k < Q; ++k) row[k] += a * uq[k];
      }
    }
    for (std::int64_t j = 0; j < c.rope; ++j)
      std::memcpy(&out[static_cast<std::size_t>((h * D + L + j) * Q)],
                  &qb[static_cast<std::size_t>((h * c.qk_dim() + c.nope + j) * Q)],
                  static_cast<std::size_t>(Q) * sizeof(double));
  }
  return out;
}

std::vector<double> compose_o_absorbed(const LayerConfig& c, const std::vector<double>& o,
                                       const std::vector<double>& kvb) {
  const std::int64_t L = c.kv_lora, K = c.heads * c.v_dim, N = c.heads * L;
  std::vector<double> out(static_cast<std::size_t>(c.hidden * N), 0.0);
  for (std::int64_t n = 0; n < c.hidden; ++n)
    for (std::int64_t h = 0; h < c.heads; ++h) {
      double* row = &out[static_cast<std::size_t>(n * N + h * L)];
      for (std::int64_t d = 0; d < c.v_dim; ++d) {
        const double a = o[static_cast<std::size_t>(n * K + h * c.v_dim + d)];
        const double* uv =
            &kvb[static_cast<std::size_t>((h * (c.nope + c.v_dim) + c.nope + d) * L)];
        for (std::int64_t r = 0; r < L; ++r) row[r] += a * uv[r];
      }
    }
  return out;
}

HostTensor absorb_q_b(const LayerConfig& c, const HostTensor& q_b, const HostTensor& kv_b) {
  return HostTensor::encode(fp8_weight_type(c.heads * c.latent_dim(), c.q_lora),
                            compose_q_b_absorbed(c, q_b.values(), kv_b.values()));
}

HostTensor absorb_o(const LayerConfig& c, const HostTensor& o_proj, const HostTensor& kv_b) {
  return HostTensor::encode(fp8_weight_type(c.hidden, c.heads * c.kv_lora),
                            compose_o_absorbed(c, o_proj.values(), kv_b.values()));
}

// A single file or a sharded checkpoint: a weight and its scale may be in different shards.
NamedTensors load_layer_weights(const LayerConfig& c, const anychip::SafetensorsSource& file) {
  Loader l(c, file);
  NamedTensors w;
  w["attn_norm"] = l.plain("input_layernorm.weight", DType::bf16, {c.hidden});
  w["wq_a"] = l.fp8("self_attn.q_a_proj", c.q_lora, c.hidden);
  w["q_a_norm"] = l.plain("self_attn.q_a_layernorm.weight", DType::bf16, {c.q_lora});
  w["wq_b"] = l.fp8("self_attn.q_b_proj", c.heads * c.qk_dim(), c.q_lora);
  w["wkv_a"] = l.fp8("self_attn.kv_a_proj_with_mqa", c.latent_dim(), c.hidden);
  w["kv_a_norm"] = l.plain("self_attn.kv_a_layernorm.weight", DType::bf16, {c.kv_lora});
  w["wkv_b"] = l.fp8("self_attn.kv_b_proj", c.heads * (c.nope + c.v_dim), c.kv_lora);
  w["wo"] = l.fp8("self_attn.o_proj", c.hidden, c.heads * c.v_dim);
  w["ffn_norm"] = l.plain("post_attention_layernorm.weight", DType::bf16, {c.hidden});
  w["w_router"] = l.plain("mlp.gate.weight", DType::bf16, {c.experts, c.hidden});
  w["router_bias"] = l.plain("mlp.gate.e_score_correction_bias", DType::f32, {c.experts});
  {
    std::vector<HostTensor> parts;
    parts.reserve(static_cast<std::size_t>(3 * c.experts));
    for (std::int64_t e = 0; e < c.experts; ++e) {
      parts.push_back(l.fp8(expert(e, "gate_proj"), c.moe_inter, c.hidden));
      parts.push_back(l.fp8(expert(e, "up_proj"), c.moe_inter, c.hidden));
    }
    std::vector<const HostTensor*> p;
    for (const HostTensor& t : parts) p.push_back(&t);
    w["w13"] = stack_rows(p, "experts' gate_proj|up_proj");
  }
  {
    std::vector<HostTensor> parts;
    for (std::int64_t e = 0; e < c.experts; ++e)
      parts.push_back(l.fp8(expert(e, "down_proj"), c.hidden, c.moe_inter));
    std::vector<const HostTensor*> p;
    for (const HostTensor& t : parts) p.push_back(&t);
    w["w2"] = stack_rows(p, "experts' down_proj");
  }
  const HostTensor sg = l.fp8("mlp.shared_experts.gate_proj", c.shared_inter(), c.hidden);
  const HostTensor su = l.fp8("mlp.shared_experts.up_proj", c.shared_inter(), c.hidden);
  w["ws13"] = stack_rows({&sg, &su}, "shared expert's gate_proj|up_proj");
  w["ws2"] = l.fp8("mlp.shared_experts.down_proj", c.hidden, c.shared_inter());
  w["wq_b_absorbed"] = absorb_q_b(c, w["wq_b"], w["wkv_b"]);
  w["wo_absorbed"] = absorb_o(c, w["wo"], w["wkv_b"]);
  return w;
}

}  // namespace deepseek_layer
