// The ISA for DeepSeek's MoE layer: gather loads (data-dependent addressing) and the
// routing / RoPE vector ops, against straightforward computations; their errors; how the
// timing engine costs an index read and which address it assumes without data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "simulator/engine.hpp"

namespace anychip::sim {
namespace {

using std::int64_t;

constexpr Addr spm(int64_t offset) { return {Space::Spm, offset}; }

TileKernel one_item(Program program, std::string name = "moe_isa_test") {
  TileKernel k;
  k.name = std::move(name);
  k.work_items = 1;
  k.build = [program = std::move(program)](int64_t, std::span<const int64_t>, Program& out) { out = program; };
  return k;
}

// A device memory poisoned with 0xEE, with helpers to put and get typed arrays.
struct Hbm {
  std::vector<std::byte> bytes = std::vector<std::byte>(1 << 20, std::byte{0xEE});
  template <class T>
  void put(int64_t at, const std::vector<T>& v) {
    std::memcpy(bytes.data() + at, v.data(), v.size() * sizeof(T));
  }
  template <class T>
  std::vector<T> get(int64_t at, std::size_t n) const {
    std::vector<T> v(n);
    std::memcpy(v.data(), bytes.data() + at, n * sizeof(T));
    return v;
  }
};

RunStats run(const Program& p, Hbm& hbm, const char* chip = "tiny", bool functional = true) {
  Simulator sim(load_chip(chip));
  RunOptions opt;
  opt.functional = functional;
  return sim.run(one_item(p), {}, functional ? std::span<std::byte>(hbm.bytes) : std::span<std::byte>(), opt);
}

std::string error_of(const Program& p, Hbm& hbm) {
  try {
    run(p, hbm);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Load gather(int64_t dst, int64_t base, int64_t rows, int64_t row_bytes, int64_t stride, LoadIndex index) {
  return Load{Region{{Space::Hbm, base}, rows, row_bytes, stride}, spm(dst), index};
}

Store store(int64_t hbm, int64_t src, int64_t rows, int64_t row_bytes) {
  return Store{spm(src), Region{{Space::Hbm, hbm}, rows, row_bytes, row_bytes}};
}

// Source rows 0..15 of 16 bytes at 0x1000: row i holds bytes i*16 .. i*16+15.
void put_rows(Hbm& hbm) {
  std::vector<std::uint8_t> rows(256);
  std::iota(rows.begin(), rows.end(), 0);
  hbm.put(0x1000, rows);
}

TEST(Gather, PerRowIndicesPickRowsAndNegativeOnesZeroFill) {
  Hbm hbm;
  put_rows(hbm);
  hbm.put(0x2000, std::vector<std::int32_t>{5, -1, 15, 0, 5});
  Program p;
  p.instrs.push_back(gather(0, 0x1000, 5, 16, 0, LoadIndex{0x2000, true, 4, 16, 16, 0}));
  p.instrs.push_back(store(0x3000, 0, 5, 16));
  run(p, hbm);
  const auto out = hbm.get<std::uint8_t>(0x3000, 80);
  const int want[] = {5, -1, 15, 0, 5};
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 16; ++c)
      EXPECT_EQ(out[static_cast<std::size_t>(r * 16 + c)], want[r] < 0 ? 0 : want[r] * 16 + c) << "row " << r;
}

TEST(Gather, PerRowIndicesFollowTheirStrideAndAddToTheRowAddress) {
  Hbm hbm;
  put_rows(hbm);
  // Indices 8 bytes apart (every other int); source rows 2 rows apart plus index rows.
  hbm.put(0x2000, std::vector<std::int32_t>{3, 99, 1, 99, 0, 99});
  Program p;
  p.instrs.push_back(gather(0, 0x1000, 3, 8, 32, LoadIndex{0x2000, true, 8, 16, 10, 0}));
  p.instrs.push_back(store(0x3000, 0, 3, 8));
  run(p, hbm);
  const auto out = hbm.get<std::uint8_t>(0x3000, 24);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 8; ++c) {
      const int idx = r == 0 ? 3 : r == 1 ? 1 : 0;
      EXPECT_EQ(out[static_cast<std::size_t>(r * 8 + c)], (2 * r + idx) * 16 + c) << "row " << r;
    }
}

TEST(Gather, AMaskKeepsRowsInPlaceAndZeroesNegativeOnes) {
  Hbm hbm;
  put_rows(hbm);
  hbm.put(0x2000, std::vector<std::int32_t>{7, -1, 0, -5});
  Program p;
  p.instrs.push_back(gather(0, 0x1000, 4, 16, 16, LoadIndex{0x2000, true, 4, 0, 8, 0}));
  p.instrs.push_back(store(0x3000, 0, 4, 16));
  run(p, hbm);
  const auto out = hbm.get<std::uint8_t>(0x3000, 64);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 16; ++c)
      EXPECT_EQ(out[static_cast<std::size_t>(r * 16 + c)], r % 2 ? 0 : r * 16 + c) << "row " << r;
}

TEST(Gather, OneIndexMovesTheWholeRegionOrZeroFillsIt) {
  for (std::int32_t index : {2, -1}) {
    Hbm hbm;
    put_rows(hbm);
    hbm.put(0x2000, std::vector<std::int32_t>{index});
    Program p;
    // Two rows of 16 bytes, 32 bytes apart; a group is 64 bytes further on.
    p.instrs.push_back(gather(0, 0x1000, 2, 16, 32, LoadIndex{0x2000, false, 4, 64, 3, 0}));
    p.instrs.push_back(store(0x3000, 0, 2, 16));
    run(p, hbm);
    const auto out = hbm.get<std::uint8_t>(0x3000, 32);
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 16; ++c)
        EXPECT_EQ(out[static_cast<std::size_t>(r * 16 + c)], index < 0 ? 0 : 128 + r * 32 + c) << "index " << index;
  }
}

TEST(Gather, AnIndexOutOfRangeIsAnErrorNamingTheKernelAndInstruction) {
  Hbm hbm;
  put_rows(hbm);
  hbm.put(0x2000, std::vector<std::int32_t>{1, 16});
  Program p;
  p.instrs.push_back(gather(0, 0x1000, 2, 16, 0, LoadIndex{0x2000, true, 4, 16, 16, 0}));
  const std::string m = error_of(p, hbm);
  EXPECT_NE(m.find("kernel moe_isa_test: work item 0: instruction 0 (dma_in  load"), std::string::npos) << m;
  EXPECT_NE(m.find("gather index 16 (row 1"), std::string::npos) << m;
  EXPECT_NE(m.find("must be below 16"), std::string::npos) << m;
}

TEST(Gather, AHullBeyondTheMemoryIsRejectedBeforeAnythingIsRead) {
  Hbm hbm;
  hbm.put(0x2000, std::vector<std::int32_t>{0});
  Program p;
  // Index 0 is fine, but the bound admits indices whose rows lie past the memory.
  p.instrs.push_back(gather(0, 0x1000, 1, 16, 0, LoadIndex{0x2000, false, 4, 1 << 20, 4, 0}));
  const std::string m = error_of(p, hbm);
  EXPECT_NE(m.find("gathered source hbm["), std::string::npos) << m;
  EXPECT_NE(m.find("beyond the device memory"), std::string::npos) << m;
  // And indices that are themselves outside the memory.
  Program q;
  q.instrs.push_back(gather(0, 0x1000, 1, 16, 0, LoadIndex{int64_t{1} << 20, false, 4, 16, 1, 0}));
  EXPECT_NE(error_of(q, hbm).find("index hbm["), std::string::npos) << error_of(q, hbm);
}

TEST(Gather, AnAssumedIndexOutsideTheBoundIsRejected) {
  Hbm hbm;
  Program p;
  p.instrs.push_back(gather(0, 0x1000, 1, 16, 0, LoadIndex{0x2000, false, 4, 16, 4, 4}));
  EXPECT_NE(error_of(p, hbm).find("assumed index 4 is outside 0..3"), std::string::npos);
}

TEST(GatherTiming, TheIndexReadCostsOneLatencyPerWorkItemForTheSameIndices) {
  const ChipDesc chip = load_chip("tiny");
  const double latency = chip.hbm_latency_ns * 1e-9 * chip.clock_hz;
  auto cycles = [&](int loads, bool indexed) {
    Program p;
    for (int i = 0; i < loads; ++i) {
      Load l{Region{{Space::Hbm, 0x1000 + i * 4096}, 4, 1024, 1024}, spm(0), std::nullopt};
      if (indexed) l.index = LoadIndex{0x100, false, 4, 0, 1, 0};
      p.instrs.push_back(l);
    }
    Hbm hbm;
    return run(p, hbm, "tiny", false).cycles;
  };
  // The first gather waits for its index; the others reuse it.
  EXPECT_NEAR(cycles(1, true) - cycles(1, false), latency, 1e-6);
  EXPECT_NEAR(cycles(4, true) - cycles(4, false), latency, 1e-6);
  EXPECT_DOUBLE_EQ(instruction_cycles(chip, Load{Region{{Space::Hbm, 0}, 1, 64, 64}, spm(0), LoadIndex{}}),
                   instruction_cycles(chip, Load{Region{{Space::Hbm, 0}, 1, 64, 64}, spm(0)}) + latency);
}

// Eight items read the tile of group g (per-load index): with data, the real group; without,
// the assumed one. The same group for all -> L2 hits; a different group each -> none.
TEST(GatherTiming, TimingUsesTheRealIndexWithDataAndTheAssumedOneWithout) {
  const ChipDesc chip = load_chip("tiny");
  auto stats = [&](bool functional, bool same) {
    Hbm hbm;
    hbm.put(0x100, std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
    TileKernel k;
    k.name = "groups";
    k.work_items = 8;
    k.build = [same](int64_t item, std::span<const int64_t>, Program& out) {
      // The index of item i is at 0x100 + 4*i (0 when `same`); assumed: item i's own.
      const int64_t at = same ? 0x100 : 0x100 + 4 * item;
      out.instrs.push_back(
          Load{Region{{Space::Hbm, 0x1000}, 16, 1024, 1024}, spm(0), LoadIndex{at, false, 4, 16384, 8, item}});
    };
    Simulator sim(chip);
    RunOptions opt;
    opt.functional = functional;
    return sim.run(k, {}, functional ? std::span<std::byte>(hbm.bytes) : std::span<std::byte>(), opt);
  };
  // With data and one shared index: one miss, seven hits.
  EXPECT_EQ(stats(true, true).l2_bytes, 7 * 16 * 1024);
  // Without data every item assumes its own group: no hits.
  EXPECT_EQ(stats(false, true).l2_bytes, 0);
  EXPECT_EQ(stats(true, false).l2_bytes, 0);
}

TEST(GatherTiming, ScatteredRowsComeFromHbmButAMaskedTileCanHitInL2) {
  const ChipDesc chip = load_chip("tiny");
  auto l2 = [&](int64_t scale) {
    TileKernel k;
    k.name = "rows";
    k.work_items = 4;
    k.build = [scale](int64_t, std::span<const int64_t>, Program& out) {
      out.instrs.push_back(
          Load{Region{{Space::Hbm, 0x1000}, 16, 1024, scale ? 0 : 1024}, spm(0), LoadIndex{0x100, true, 4, scale, 16, 0}});
    };
    Simulator sim(chip);
    return sim.run(k, {}, {}, RunOptions{.functional = false}).l2_bytes;
  };
  EXPECT_EQ(l2(1024), 0);
  EXPECT_EQ(l2(0), 3 * 16 * 1024);
}

// --- vector ops ---------------------------------------------------------------------------

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

std::vector<float> uniform(std::size_t n, unsigned seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Loads the arrays at 0x10000 * (i + 1) into spm 0x8000 * i, runs `op`, stores `out_bytes`
// from spm `out_at` to hbm 0x80000.
template <class... Arrays>
void run_vec(Hbm& hbm, const Vec& op, int64_t out_at, int64_t out_bytes, const Arrays&... arrays) {
  Program p;
  int i = 0;
  auto load_one = [&](const auto& a) {
    const int64_t bytes = static_cast<int64_t>(a.size() * sizeof(a[0]));
    hbm.put(0x10000 * (i + 1), a);
    p.instrs.push_back(Load{Region{{Space::Hbm, 0x10000 * (i + 1)}, 1, bytes, bytes}, spm(0x8000 * i)});
    ++i;
  };
  (load_one(arrays), ...);
  p.instrs.push_back(op);
  p.instrs.push_back(store(0x80000, out_at, 1, out_bytes));
  run(p, hbm, "npu-ue8m0");
}

TEST(VectorOps, RopeRotatesTheLastColumnsOfEachRowByItsTokensPosition) {
  const int64_t tokens = 3, heads = 2, dim = 10, rot = 6;
  const double theta = 10000;
  const auto x = uniform(tokens * heads * dim, 3);
  const std::vector<std::int32_t> pos{0, 7, 4095};
  Vec v;
  v.op = VecOp::Rope, v.src0 = spm(0), v.src1 = spm(0x8000), v.dst = spm(0x10000);
  v.rows = tokens * heads, v.cols = dim, v.block_rows = heads, v.block_cols = rot, v.imm = theta;
  Hbm hbm;
  run_vec(hbm, v, 0x10000, tokens * heads * dim * 4, x, pos);
  const auto y = hbm.get<float>(0x80000, static_cast<std::size_t>(tokens * heads * dim));
  for (int64_t r = 0; r < tokens * heads; ++r) {
    const double p = pos[static_cast<std::size_t>(r / heads)];
    for (int64_t c = 0; c < dim - rot; ++c) EXPECT_EQ(y[static_cast<std::size_t>(r * dim + c)], x[static_cast<std::size_t>(r * dim + c)]);
    for (int64_t i = 0; i < rot / 2; ++i) {
      const double a = p * std::pow(theta, -2.0 * i / rot);
      const std::size_t c0 = static_cast<std::size_t>(r * dim + dim - rot + 2 * i);
      EXPECT_NEAR(y[c0], x[c0] * std::cos(a) - x[c0 + 1] * std::sin(a), 1e-6) << "row " << r << " pair " << i;
      EXPECT_NEAR(y[c0 + 1], x[c0] * std::sin(a) + x[c0 + 1] * std::cos(a), 1e-6) << "row " << r << " pair " << i;
    }
  }
}

TEST(VectorOps, TopKKeepsTheBestGroupsThenTheBestExpertsBestFirst) {
  // 8 experts in 4 groups of 2, keep 2 groups, choose 3. Keys = sigmoid(logit) + bias.
  const std::vector<float> bias{0, 0, 0, 0, 0, 0, 0.5f, 0};
  // Row 0: expert 7 alone is the best key (group 3 sum is high), group 1 has two good ones.
  // Row 1: all equal: ties go to lower indices (groups 0 and 1, experts 0, 1, 2).
  const std::vector<float> logits{-3, -3, 2, 1.5f, -3, -3, -3, 4,  //
                                  0, 0, 0, 0, 0, 0, -1e9f, 0};
  Vec v;
  v.op = VecOp::TopK, v.src0 = spm(0), v.src1 = spm(0x8000), v.dst = spm(0x10000), v.rows = 2, v.cols = 8;
  v.moe.k = 3, v.moe.groups = 4, v.moe.top_groups = 2;
  Hbm hbm;
  run_vec(hbm, v, 0x10000, 2 * 3 * 4, logits, bias);
  const auto out = hbm.get<std::int32_t>(0x80000, 6);
  EXPECT_EQ(out, (std::vector<std::int32_t>{7, 2, 3, 0, 1, 2}));
}

TEST(VectorOps, MoeWeightsNormaliseTheChosenSigmoidsAndScale) {
  const int64_t tokens = 3, experts = 6, k = 2;
  const auto logits = uniform(tokens * experts, 5, -3, 3);
  const std::vector<std::int32_t> chosen{5, 0, 2, 3, 1, 1};
  Vec v;
  v.op = VecOp::MoeWeights, v.src0 = spm(0), v.src1 = spm(0x8000), v.dst = spm(0x10000);
  v.rows = tokens, v.cols = k, v.moe.experts = experts, v.imm = 2.5;
  Hbm hbm;
  run_vec(hbm, v, 0x10000, tokens * k * 4, logits, chosen);
  const auto w = hbm.get<float>(0x80000, tokens * k);
  for (int64_t t = 0; t < tokens; ++t) {
    const float s0 = sigmoid(logits[static_cast<std::size_t>(t * experts + chosen[static_cast<std::size_t>(t * k)])]);
    const float s1 = sigmoid(logits[static_cast<std::size_t>(t * experts + chosen[static_cast<std::size_t>(t * k + 1)])]);
    EXPECT_EQ(w[static_cast<std::size_t>(t * k)], s0 / (s0 + s1) * 2.5f);
    EXPECT_EQ(w[static_cast<std::size_t>(t * k + 1)], s1 / (s0 + s1) * 2.5f);
  }
  // An expert id beyond the logits is an error, not a read past them.
  Program p;
  Hbm bad;
  bad.put(0x2000, std::vector<std::int32_t>{0, 6});
  p.instrs.push_back(Load{Region{{Space::Hbm, 0x2000}, 1, 8, 8}, spm(0x8000)});
  Vec one = v;
  one.rows = 1;
  p.instrs.push_back(one);
  const std::string m = error_of(p, bad);
  EXPECT_NE(m.find("instruction 1 (vector  moe_weights"), std::string::npos) << m;
  EXPECT_NE(m.find("row 0 chooses expert 6, outside 0..5"), std::string::npos) << m;
}

TEST(VectorOps, MoePlanIsTheAlignedCountingSortInWindows) {
  // 4 tokens x 2 choices over 3 experts, align 4.
  const std::vector<std::int32_t> chosen{2, 0, 2, 1, 0, 2, 1, 2};  // t0: 2,0  t1: 2,1  t2: 0,2  t3: 1,2
  // Expert 0: s=1 (t0), s=4 (t2) -> rows 0, 1; pad 2, 3.
  // Expert 1: s=3 (t1), s=6 (t3) -> rows 4, 5; pad 6, 7.
  // Expert 2: s=0, 2, 5, 7 (t0, t1, t2, t3) -> rows 8..11.
  const int64_t rows = 16;
  const std::vector<std::int32_t> expert{0, 0, -1, -1, 1, 1, -1, -1, 2, 2, 2, 2, -1, -1, -1, -1};
  const std::vector<std::int32_t> token{0, 2, -1, -1, 1, 3, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1};
  const std::vector<std::int32_t> row_of{8, 0, 9, 4, 1, 10, 5, 11, -1, -1, -1, -1, -1, -1, -1, -1};
  for (int64_t first : {0, 5, 10}) {
    const int64_t window = 6;
    Vec v;
    v.op = VecOp::MoePlan, v.src0 = spm(0), v.dst = spm(0x10000), v.rows = 4, v.cols = 2;
    v.moe.experts = 3, v.moe.align = 4, v.moe.first_row = first, v.moe.window = window, v.moe.plan_rows = rows;
    Hbm hbm;
    run_vec(hbm, v, 0x10000, 3 * window * 4, chosen);
    const auto out = hbm.get<std::int32_t>(0x80000, 3 * window);
    for (int64_t i = 0; i < window; ++i) {
      const auto r = static_cast<std::size_t>(first + i);
      const bool in = first + i < rows;
      EXPECT_EQ(out[static_cast<std::size_t>(i)], in ? expert[r] : -1) << "row " << first + i;
      EXPECT_EQ(out[static_cast<std::size_t>(window + i)], in ? token[r] : -1) << "row " << first + i;
      EXPECT_EQ(out[static_cast<std::size_t>(2 * window + i)], in ? row_of[r] : -1) << "choice " << first + i;
    }
  }
}

TEST(VectorOps, MoePlanRejectsAnExpertOutOfRange) {
  Hbm hbm;
  hbm.put(0x2000, std::vector<std::int32_t>{0, 3});
  Program p;
  p.instrs.push_back(Load{Region{{Space::Hbm, 0x2000}, 1, 8, 8}, spm(0)});
  Vec v;
  v.op = VecOp::MoePlan, v.src0 = spm(0), v.dst = spm(0x1000), v.rows = 1, v.cols = 2;
  v.moe.experts = 3, v.moe.align = 1, v.moe.window = 4, v.moe.plan_rows = 4;
  p.instrs.push_back(v);
  const std::string m = error_of(p, hbm);
  EXPECT_NE(m.find("choice 1 (token 0) is expert 3, outside 0..2"), std::string::npos) << m;
}

TEST(VectorOps, RoutingOpsCostTheirTableRows) {
  Vec v;
  v.op = VecOp::TopK, v.moe.k = 8, v.moe.groups = 8, v.moe.top_groups = 4;
  const VectorMix t = vector_cost(v);
  EXPECT_EQ(t.exp, 1);
  EXPECT_EQ(t.max, 6);  // a group's top two, then 8 arg-max passes over half the experts
  // MLA's q: the last 64 of 192 columns rotated, 128 heads sharing a token's angles.
  v.op = VecOp::Rope, v.dtype_in = v.dtype_out = DType::bf16, v.cols = 192, v.block_cols = 64, v.block_rows = 128;
  EXPECT_DOUBLE_EQ(vector_cost(v).exp, 64.0 / 192.0 / 128.0);
  EXPECT_DOUBLE_EQ(vector_cost(v).fma, 64.0 / 192.0);
  EXPECT_EQ(vector_cost(v).convert, 2);
  v.op = VecOp::MoePlan;
  EXPECT_EQ(vector_cost(v).add, 4);
  v.op = VecOp::MoeWeights;
  EXPECT_EQ(vector_cost(v).div, 2);
}

TEST(VectorOps, ProgramTextNamesTheNewOpsAndTheGather) {
  Vec v;
  v.op = VecOp::TopK, v.rows = 4, v.cols = 256, v.moe.k = 8, v.moe.groups = 8, v.moe.top_groups = 4;
  EXPECT_NE(to_text(Instr{v}).find("topk spm[0x0] <- spm[0x0] bias spm[0x0] 4x256 k 8 groups 4/8"), std::string::npos)
      << to_text(Instr{v});
  const Load l = gather(0, 0x1000, 4, 16, 0, LoadIndex{0x2000, true, 4, 16, 16, 0});
  EXPECT_NE(to_text(Instr{l}).find("idx hbm[0x2000 + r*4] * 16 < 16"), std::string::npos) << to_text(Instr{l});
}

}  // namespace
}  // namespace anychip::sim
