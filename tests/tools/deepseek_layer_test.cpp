// examples/deepseek_layer as a porting engineer runs it: a tiny DeepSeek-V3 layer through
// prefill and decode with every check on cpu and sim:npu-ue8m0, the report over three
// simulated chips, its checkpoint's layout, its .acir, and the rejection of a damaged
// checkpoint (exit 2 with the loader's message).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "anychip/ir.hpp"
#include "anychip/safetensors.hpp"

namespace {

namespace fs = std::filesystem;

#ifndef ANYCHIP_DEEPSEEK_LAYER
#define ANYCHIP_DEEPSEEK_LAYER ""
#endif

struct Result {
  int exit_code;
  std::string out;  // stdout and stderr together
};

Result layer(const std::string& args) {
  static const std::string cache =
      (fs::temp_directory_path() / "anychip-deepseek-layer-test-cache").string();
  const std::string cmd =
      "ANYCHIP_CACHE_DIR=" + cache + " " ANYCHIP_DEEPSEEK_LAYER " " + args + " 2>&1";
  Result r{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class DeepseekLayer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(ANYCHIP_DEEPSEEK_LAYER).empty())
      GTEST_SKIP() << "built with ANYCHIP_BUILD_EXAMPLES=OFF: no deepseek_layer program";
    dir_ = fs::temp_directory_path() /
           ("deepseek-layer-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }
  // Writes the tiny checkpoint and the graphs into dir_ (and runs on cpu, unchecked).
  fs::path write_checkpoint() {
    Result r =
        layer("--scale tiny --write-checkpoint " + dir_.string() + " --emit-acir " + dir_.string());
    EXPECT_EQ(r.exit_code, 0) << r.out;
    const fs::path file = dir_ / "model.layers.3.tiny.safetensors";
    EXPECT_TRUE(fs::exists(file)) << r.out;
    return file;
  }
  fs::path dir_;
};

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST_F(DeepseekLayer, TinyPrefillAndDecodePassEveryCheckOnCpuAndNpuUe8m0) {
  Result r = layer("--scale tiny --device cpu --device sim:npu-ue8m0 --check");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("check: passed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
  for (const char* device : {"cpu", "sim:npu-ue8m0"}) {
    SCOPED_TRACE(device);
    EXPECT_NE(r.out.find(std::string("prefill on ") + device), std::string::npos);
    EXPECT_NE(r.out.find(std::string("decode on ") + device), std::string::npos);
  }
  // Every layer check ran on both devices: against the float64 evaluation (routing, out,
  // kv, o for each form) and decode against prefill (kv row, o, out).
  EXPECT_EQ(count(r.out, "out vs float64 evaluation"), 4u) << r.out;
  EXPECT_EQ(count(r.out, "decode o (absorbed) vs prefill row 15"), 2u) << r.out;
  EXPECT_EQ(count(r.out, "decode kv row vs prefill row 15"), 2u) << r.out;
  // The kernels the layer needs beyond the block, each checked.
  for (const char* kernel : {"gemm_fp8_grouped %experts_gate_up", "moe_topk %experts",
                             "rope %q_rope", "attention %attn_latent", "moe_combine %routed"})
    EXPECT_NE(r.out.find(kernel), std::string::npos) << kernel;
}

TEST_F(DeepseekLayer, ReportShowsThreeSimulatedChipsSideBySide) {
  const fs::path report = dir_ / "layer.html";
  Result r =
      layer("--scale tiny --device sim:npu-ue8m0 --compare sim:npu-fp32scale,sim:h800 --report " +
            report.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_TRUE(fs::exists(report)) << r.out;
  std::ifstream f(report);
  const std::string html((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const char* s : {"sim:npu-ue8m0", "sim:npu-fp32scale", "sim:h800", "prefill, 16 tokens",
                        "decode, 1 token after 15 cached", "gemm_fp8_grouped %experts_down"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  EXPECT_NE(r.out.find("device time by op"), std::string::npos) << r.out;
}

TEST_F(DeepseekLayer, CheckpointHasDeepSeekNamesDtypesAndBlockScales) {
  const fs::path file = write_checkpoint();
  anychip::SafetensorsFile f = anychip::SafetensorsFile::open(file);
  const std::string p = "model.layers.3.";
  auto dtype = [&](const std::string& name) { return std::string(f.at(p + name).dtype->name); };
  EXPECT_EQ(dtype("self_attn.q_a_proj.weight"), "F8_E4M3");
  EXPECT_EQ(dtype("self_attn.q_a_proj.weight_scale_inv"), "F32");
  EXPECT_EQ(dtype("self_attn.kv_a_proj_with_mqa.weight"), "F8_E4M3");
  EXPECT_EQ(dtype("input_layernorm.weight"), "BF16");
  EXPECT_EQ(dtype("self_attn.kv_a_layernorm.weight"), "BF16");
  EXPECT_EQ(dtype("mlp.gate.weight"), "BF16");
  EXPECT_EQ(dtype("mlp.gate.e_score_correction_bias"), "F32");
  EXPECT_EQ(dtype("mlp.experts.31.down_proj.weight"), "F8_E4M3");
  EXPECT_EQ(dtype("mlp.shared_experts.up_proj.weight_scale_inv"), "F32");
  // kv_a_proj_with_mqa is [576, hidden]: 4.5 row blocks, the last one partial, as in V3.
  EXPECT_EQ(f.at(p + "self_attn.kv_a_proj_with_mqa.weight").shape, (anychip::Shape{576, 256}));
  EXPECT_EQ(f.at(p + "self_attn.kv_a_proj_with_mqa.weight_scale_inv").shape,
            (anychip::Shape{5, 2}));
  EXPECT_EQ(f.find(p + "mlp.experts.32.up_proj.weight"), nullptr);
  // Scales are powers of two (DeepSeek-V3.1's UE8M0 recipe): loading them as ue8m0 works.
  anychip::HostTensor w =
      anychip::load_fp8_weight(f, p + "self_attn.q_b_proj", anychip::DType::ue8m0);
  EXPECT_EQ(w.type.str(), "f8e4m3[384, 256] scaled<128x128, ue8m0>");
}

TEST_F(DeepseekLayer, ShardedCheckpointDirectoryPassesEveryCheckOnCpu) {
  const fs::path file = write_checkpoint();
  // Re-shard the written checkpoint over three files, tensors dealt out in name order, so
  // that each weight and its weight_scale_inv land in different shards (as in V3's files).
  const anychip::SafetensorsFile single = anychip::SafetensorsFile::open(file);
  std::vector<std::string> names = single.tensor_names();
  std::sort(names.begin(), names.end());
  anychip::SafetensorsShardedWriter w(3);
  for (std::size_t i = 0; i < names.size(); ++i)
    w.shard(i % 3).add(names[i], single.load(names[i]));
  const fs::path sharded = dir_ / "sharded";
  w.write(sharded);
  const auto ckpt = anychip::SafetensorsCheckpoint::open(sharded);
  const std::string q_b = "model.layers.3.self_attn.q_b_proj.weight";
  EXPECT_NE(ckpt.shard_of(q_b).name(), ckpt.shard_of(q_b + "_scale_inv").name());

  Result r = layer("--scale tiny --device cpu --check --checkpoint " + sharded.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("check: passed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
  EXPECT_EQ(count(r.out, "out vs float64 evaluation"), 2u) << r.out;
  EXPECT_NE(r.out.find("decode on cpu"), std::string::npos) << r.out;
}

TEST_F(DeepseekLayer, EmittedAcirParsesBackToTheSameGraphs) {
  write_checkpoint();
  for (const char* name : {"prefill.acir", "decode.acir"}) {
    SCOPED_TRACE(name);
    std::ifstream f(dir_ / name);
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    anychip::ir::Graph g = anychip::ir::parse(text, name);
    EXPECT_EQ(anychip::ir::print(g), text);
    EXPECT_EQ(g.outputs().size(), 4u);
  }
  std::ifstream f(dir_ / "decode.acir");
  const std::string decode((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The absorbed form: MQA over the 576-wide latent (one KV head), values its first 512.
  EXPECT_NE(decode.find("%k_latent: bf16[1, 16, 1, 576] = concat(%cache4, %row4) {axis = 1}"),
            std::string::npos)
      << decode;
  EXPECT_NE(decode.find("%attn_latent: bf16[1, 1, 2, 512] = attention(%q4, %k_latent, %v_latent)"),
            std::string::npos)
      << decode;
  EXPECT_NE(decode.find("%wq_b_absorbed: f8e4m3[1152, 256] scaled<128x128, ue8m0> = input"),
            std::string::npos);
  EXPECT_NE(decode.find("%wo_absorbed: f8e4m3[256, 1024] scaled<128x128, ue8m0> = input"),
            std::string::npos);
}

TEST_F(DeepseekLayer, TruncatedCheckpointExitsWith2AndTheLoadersMessage) {
  const fs::path file = write_checkpoint();
  fs::resize_file(file, fs::file_size(file) / 2);
  Result r = layer("--scale tiny --check --checkpoint " + file.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("cannot load the checkpoint: parse_error: " + file.string() + ": truncated"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("prefill on"), std::string::npos) << "ran despite the bad checkpoint:\n"
                                                         << r.out;
}

TEST_F(DeepseekLayer, MalformedHeaderExitsWith2AndTheLoadersMessage) {
  const fs::path file = write_checkpoint();
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.put('[');  // the header must be one JSON object
  }
  Result r = layer("--scale tiny --checkpoint " + file.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("cannot load the checkpoint: parse_error: " + file.string()),
            std::string::npos)
      << r.out;
}

TEST_F(DeepseekLayer, CheckpointOfAnotherScaleIsRejectedNamingTheTensor) {
  const fs::path file = write_checkpoint();
  Result r = layer("--scale small --checkpoint " + file.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("model.layers.3.input_layernorm.weight is [256], the layer at scale 'small' "
                       "needs [1024]"),
            std::string::npos)
      << r.out;
}

TEST_F(DeepseekLayer, SizesBreakingTheOpsRulesAreUsageErrors) {
  Result r = layer("--scale tiny --hidden 200");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("hidden 200 is not a multiple of 128"), std::string::npos) << r.out;
  r = layer("--scale tiny --timing-only --check");
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

}  // namespace

#ifdef ANYCHIP_DEEPSEEK_LAYER_SOURCES
#include <random>

#include "examples/deepseek_layer/checkpoint.hpp"

namespace {

using deepseek_layer::LayerConfig;

std::vector<double> uniform(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> v(n);
  for (double& x : v) x = u(rng);
  return v;
}

double dot(const double* a, const double* b, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

LayerConfig three_heads() {
  LayerConfig c = deepseek_layer::preset("tiny");
  c.heads = 3;
  return c;
}

// Before requantization the absorbed query is exact algebra: per head,
// (W_UK_h^T W_UQ_h c_q) . c_kv == (W_UQ_h c_q) . (W_UK_h c_kv), and its rope rows are q_b's.
TEST(DeepseekLayerWeights, AbsorbedQueryGivesThePrefillScoresHeadByHead) {
  const LayerConfig c = three_heads();
  const std::int64_t Q = c.q_lora, L = c.kv_lora, D = c.latent_dim();
  const std::vector<double> q_b = uniform(c.heads * c.qk_dim() * Q, 1);
  const std::vector<double> kv_b = uniform(c.heads * (c.nope + c.v_dim) * L, 2);
  const std::vector<double> cq = uniform(Q, 3), ckv = uniform(L, 4);
  const std::vector<double> a = deepseek_layer::compose_q_b_absorbed(c, q_b, kv_b);
  ASSERT_EQ(a.size(), static_cast<std::size_t>(c.heads * D * Q));
  for (std::int64_t h = 0; h < c.heads; ++h) {
    double prefill = 0;
    for (std::int64_t d = 0; d < c.nope; ++d) {
      const double q = dot(&q_b[(h * c.qk_dim() + d) * Q], cq.data(), Q);
      const double k = dot(&kv_b[(h * (c.nope + c.v_dim) + d) * L], ckv.data(), L);
      prefill += q * k;
    }
    double absorbed = 0;
    for (std::int64_t r = 0; r < L; ++r)
      absorbed += dot(&a[(h * D + r) * Q], cq.data(), Q) * ckv[r];
    EXPECT_NEAR(absorbed, prefill, 1e-9 * (1 + std::abs(prefill))) << "head " << h;
    for (std::int64_t j = 0; j < c.rope; ++j)
      for (std::int64_t k = 0; k < Q; ++k)
        ASSERT_EQ(a[(h * D + L + j) * Q + k], q_b[(h * c.qk_dim() + c.nope + j) * Q + k])
            << "head " << h << " rope row " << j;
  }
}

// sum_h W_O_h (W_UV_h z_h) == wo_absorbed [z_0 | z_1 | ...] for latent attention outputs z_h.
TEST(DeepseekLayerWeights, AbsorbedOutputIsWoTimesWuvHeadByHead) {
  const LayerConfig c = three_heads();
  const std::int64_t L = c.kv_lora, K = c.heads * c.v_dim;
  const std::vector<double> o = uniform(c.hidden * K, 5);
  const std::vector<double> kv_b = uniform(c.heads * (c.nope + c.v_dim) * L, 6);
  const std::vector<double> z = uniform(c.heads * L, 7);
  const std::vector<double> a = deepseek_layer::compose_o_absorbed(c, o, kv_b);
  std::vector<double> v(K);  // per head, W_UV_h z_h
  for (std::int64_t h = 0; h < c.heads; ++h)
    for (std::int64_t d = 0; d < c.v_dim; ++d)
      v[h * c.v_dim + d] = dot(&kv_b[(h * (c.nope + c.v_dim) + c.nope + d) * L], &z[h * L], L);
  for (std::int64_t n = 0; n < c.hidden; n += 17) {
    const double prefill = dot(&o[n * K], v.data(), K);
    const double absorbed = dot(&a[n * c.heads * L], z.data(), c.heads * L);
    EXPECT_NEAR(absorbed, prefill, 1e-9 * (1 + std::abs(prefill))) << "row " << n;
  }
}

TEST(DeepseekLayerWeights, StackingKeepsEveryExpertsBlocksAndScalesExactly) {
  const anychip::TensorType t{anychip::DType::f8e4m3,
                              {256, 384},
                              anychip::ScaleLayout{anychip::kWeightBlock, anychip::DType::ue8m0}};
  const anychip::HostTensor a = anychip::HostTensor::random(t, 8),
                            b = anychip::HostTensor::random(t, 9);
  const anychip::HostTensor s = deepseek_layer::stack_rows({&a, &b}, "test");
  EXPECT_EQ(s.type.str(), "f8e4m3[512, 384] scaled<128x128, ue8m0>");
  std::vector<double> want = a.values();
  const std::vector<double> bv = b.values();
  want.insert(want.end(), bv.begin(), bv.end());
  EXPECT_EQ(s.values(), want);
  // 100 rows would cut a 128-row scale block between two experts.
  const anychip::TensorType odd{anychip::DType::f8e4m3, {100, 384}, t.scale};
  const anychip::HostTensor c = anychip::HostTensor::random(odd, 10);
  EXPECT_THROW(deepseek_layer::stack_rows({&a, &c}, "test"), anychip::Error);
}

}  // namespace
#endif
