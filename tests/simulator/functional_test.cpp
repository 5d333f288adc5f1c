// The functional units: every instruction against a straightforward computation on the
// same inputs (fresh random data, poisoned outputs), bit for bit where the semantics pin
// the arithmetic down.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "anychip/formats.hpp"
#include "anychip/quantize.hpp"
#include "simulator/engine.hpp"

namespace anychip::sim {
namespace {

using std::int64_t;

constexpr Addr spm(int64_t offset) { return {Space::Spm, offset}; }
constexpr Addr acc(int64_t offset) { return {Space::Acc, offset}; }

// One work item: inputs are placed in HBM and loaded, the instructions under test run,
// outputs are stored back; the HBM outside the inputs is poisoned.
class Item {
 public:
  Item() : hbm_(1 << 22, std::byte{0xEE}) {}

  template <class T>
  void input(Addr dst, const std::vector<T>& data) {
    input_bytes(dst, data.data(), data.size() * sizeof(T));
  }
  void input_bytes(Addr dst, const void* data, std::size_t bytes) {
    std::memcpy(hbm_.data() + next_, data, bytes);
    const auto n = static_cast<int64_t>(bytes);
    program_.instrs.push_back(Load{Region{{Space::Hbm, next_}, 1, n, n}, dst});
    next_ += (n + 63) / 64 * 64;
  }
  void add(Instr instr) { program_.instrs.push_back(instr); }
  // Stores `count` elements of T from src; read them with get() after run().
  template <class T>
  int64_t output(Addr src, std::size_t count) {
    const auto n = static_cast<int64_t>(count * sizeof(T));
    const int64_t at = next_;
    program_.instrs.push_back(Store{src, Region{{Space::Hbm, at}, 1, n, n}});
    next_ += (n + 63) / 64 * 64;
    return at;
  }
  template <class T>
  std::vector<T> get(int64_t at, std::size_t count) const {
    std::vector<T> out(count);
    std::memcpy(out.data(), hbm_.data() + at, count * sizeof(T));
    return out;
  }
  RunStats run(const char* chip = "tiny") {
    TileKernel k;
    k.name = "functional_test";
    k.work_items = 1;
    k.build = [this](int64_t, std::span<const int64_t>, Program& out) { out = program_; };
    Simulator sim(load_chip(chip));
    return sim.run(k, {}, hbm_, RunOptions{});
  }
  std::vector<std::byte>& hbm() { return hbm_; }

 private:
  std::vector<std::byte> hbm_;
  Program program_;
  int64_t next_ = 0;
};

std::vector<float> randn(std::size_t n, unsigned seed, float scale = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

// Encodes floats in dtype d (as the simulator's operands are stored).
std::vector<std::uint8_t> encode(const std::vector<float>& v, DType d) {
  std::vector<std::uint8_t> out(v.size() * dtype_size(d));
  for (std::size_t i = 0; i < v.size(); ++i) {
    switch (d) {
      case DType::f32: std::memcpy(&out[4 * i], &v[i], 4); break;
      case DType::bf16: {
        const std::uint16_t h = float_to_bf16(v[i]);
        std::memcpy(&out[2 * i], &h, 2);
        break;
      }
      case DType::f16: {
        const std::uint16_t h = float_to_f16(v[i]);
        std::memcpy(&out[2 * i], &h, 2);
        break;
      }
      case DType::f8e4m3: out[i] = float_to_e4m3(v[i]); break;
      case DType::f8e5m2: out[i] = float_to_e5m2(v[i]); break;
      default: ADD_FAILURE();
    }
  }
  return out;
}

float decode_one(const std::uint8_t* p, DType d) {
  std::uint16_t h;
  switch (d) {
    case DType::f32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case DType::bf16: std::memcpy(&h, p, 2); return bf16_to_float(h);
    case DType::f16: std::memcpy(&h, p, 2); return f16_to_float(h);
    case DType::f8e4m3: return e4m3_to_float(*p);
    case DType::f8e5m2: return e5m2_to_float(*p);
    case DType::ue8m0: return ue8m0_to_float(*p);
    default: ADD_FAILURE(); return 0;
  }
}

std::vector<float> decode(const std::vector<std::uint8_t>& bytes, DType d) {
  std::vector<float> out(bytes.size() / dtype_size(d));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = decode_one(&bytes[i * dtype_size(d)], d);
  return out;
}

TEST(Functional, LoadAndStoreCopyStridedRowsAndNothingElse) {
  Item item;
  std::vector<std::uint8_t> src(2000);
  std::mt19937 rng(1);
  for (auto& b : src) b = static_cast<std::uint8_t>(rng());
  std::memcpy(item.hbm().data() + 100000, src.data(), src.size());
  item.add(Load{Region{{Space::Hbm, 100013}, 5, 37, 100}, spm(64)});
  item.add(Store{spm(64), Region{{Space::Hbm, 200000}, 5, 37, 50}});
  item.run();
  const auto* out = reinterpret_cast<const std::uint8_t*>(item.hbm().data()) + 200000;
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 37; ++c) EXPECT_EQ(out[r * 50 + c], src[13 + r * 100 + c]);
    if (r < 4) {
      for (int c = 37; c < 50; ++c) EXPECT_EQ(out[r * 50 + c], 0xEE) << "row " << r << " gap byte " << c;
    }
  }
}

TEST(Functional, MmaSumsProductsInKOrderForEveryOperandDtype) {
  const int64_t m = 20, n = 33, k = 64;
  for (DType d : {DType::f8e4m3, DType::f8e5m2, DType::bf16, DType::f16, DType::f32}) {
    SCOPED_TRACE(dtype_name(d));
    const std::vector<float> a = decode(encode(randn(m * k, 2), d), d), b = decode(encode(randn(n * k, 3), d), d);
    const std::vector<float> a2 = decode(encode(randn(m * k, 4), d), d);
    Item item;
    const int64_t bsz = n * k * static_cast<int64_t>(dtype_size(d));
    item.input(spm(0), encode(a, d));
    item.input(spm(bsz + 4096), encode(b, d));
    item.input(spm(2 * bsz + 8192), encode(a2, d));
    Mma mma;
    mma.a = spm(0), mma.b = spm(bsz + 4096), mma.acc = acc(256);
    mma.a_dtype = mma.b_dtype = d;
    mma.m = m, mma.n = n, mma.k = k;
    mma.accumulate = false;
    item.add(mma);
    mma.a = spm(2 * bsz + 8192);
    mma.accumulate = true;
    item.add(mma);
    const int64_t out = item.output<float>(acc(256), m * n);
    item.run();
    const std::vector<float> got = item.get<float>(out, m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        float s1 = 0, s2 = 0;
        for (int64_t kk = 0; kk < k; ++kk) {
          const float p1 = a[i * k + kk] * b[j * k + kk], p2 = a2[i * k + kk] * b[j * k + kk];
          s1 += p1;
          s2 += p2;
        }
        const float want = s1 + s2;
        ASSERT_EQ(bits(got[i * n + j]), bits(want)) << i << "," << j;
      }
  }
}

TEST(Functional, ScaledMmaMultipliesEachRowByItsScaleAndTheBlockScale) {
  const int64_t m = 16, n = 24, k = 128;
  for (DType sd : {DType::ue8m0, DType::f32}) {
    SCOPED_TRACE(dtype_name(sd));
    const std::vector<float> a = decode(encode(randn(m * k, 5), DType::f8e4m3), DType::f8e4m3);
    const std::vector<float> b = decode(encode(randn(n * k, 6), DType::f8e4m3), DType::f8e4m3);
    std::vector<float> sa(m), sb = {sd == DType::ue8m0 ? 0.0078125f : 0.3f};
    std::vector<std::uint8_t> sa_bytes, sb_bytes;
    for (int64_t i = 0; i < m; ++i) sa[i] = sd == DType::ue8m0 ? std::ldexp(1.0f, static_cast<int>(i) - 8) : 0.01f * (i + 1);
    if (sd == DType::ue8m0) {
      for (float s : sa) sa_bytes.push_back(float_to_ue8m0(s));
      sb_bytes.push_back(float_to_ue8m0(sb[0]));
    } else {
      sa_bytes = encode(sa, DType::f32);
      sb_bytes = encode(sb, DType::f32);
    }
    Item item;
    item.input(spm(0), encode(a, DType::f8e4m3));
    item.input(spm(4096), encode(b, DType::f8e4m3));
    item.input(spm(8192), sa_bytes);
    item.input(spm(8192 + 256), sb_bytes);
    Mma mma;
    mma.a = spm(0), mma.b = spm(4096), mma.acc = acc(0);
    mma.m = m, mma.n = n, mma.k = k;
    mma.accumulate = false;
    mma.scaled = true;
    mma.scale_a = {spm(8192), sd};
    mma.scale_b = {spm(8192 + 256), sd};
    item.add(mma);
    mma.accumulate = true;  // the same product again: acc = p*s + p*s
    item.add(mma);
    const int64_t out = item.output<float>(acc(0), m * n);
    item.run();
    const std::vector<float> got = item.get<float>(out, m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        float p = 0;
        for (int64_t kk = 0; kk < k; ++kk) p += a[i * k + kk] * b[j * k + kk];
        const float s = sa[i] * sb[0];
        const float once = p * s;
        ASSERT_EQ(bits(got[i * n + j]), bits(once + p * s)) << i << "," << j;
      }
  }
}

TEST(Functional, ConvertRoundsToTheOutputDtypeAsAnychipDoes) {
  std::vector<float> x = randn(300, 7, 100);
  x.push_back(1000.0f);  // saturates to 448 in e4m3
  x.push_back(-1e6f);
  x.push_back(std::numeric_limits<float>::quiet_NaN());
  x.push_back(1e-9f);
  const int64_t n = static_cast<int64_t>(x.size());
  for (DType out : {DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2, DType::f32}) {
    SCOPED_TRACE(dtype_name(out));
    Item item;
    item.input(spm(0), x);
    Vec v;
    v.op = VecOp::Convert;
    v.src0 = spm(0), v.dst = spm(8192);
    v.rows = 4, v.cols = n / 4;
    v.dtype_in = DType::f32, v.dtype_out = out;
    item.add(v);
    const int64_t at = item.output<std::uint8_t>(spm(8192), x.size() * dtype_size(out));
    item.run();
    EXPECT_EQ(item.get<std::uint8_t>(at, x.size() * dtype_size(out)), encode(x, out));
  }
  // And back from narrow inputs (ue8m0 scales included) to f32, exactly.
  for (DType in : {DType::bf16, DType::f8e4m3, DType::ue8m0}) {
    SCOPED_TRACE(dtype_name(in));
    std::vector<std::uint8_t> raw(256 * dtype_size(in));
    for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::uint8_t>(i * 37 + 11);
    Item item;
    item.input(spm(0), raw);
    Vec v;
    v.op = VecOp::Convert;
    v.src0 = spm(0), v.dst = spm(4096);
    v.rows = 1, v.cols = 256;
    v.dtype_in = in, v.dtype_out = DType::f32;
    item.add(v);
    const int64_t at = item.output<float>(spm(4096), 256);
    item.run();
    const std::vector<float> got = item.get<float>(at, 256), want = decode(raw, in);
    for (int i = 0; i < 256; ++i) EXPECT_EQ(bits(got[i]), bits(want[i])) << i;
  }
}

// Runs one vector instruction on f32 inputs at spm 0 (src0), 64 KiB (src1); returns dst.
template <class Out = float>
std::vector<Out> run_vec(Vec v, const std::vector<float>& src0, const std::vector<std::uint8_t>& src1,
                         std::size_t out_count, std::vector<float> dst_init = {}) {
  Item item;
  item.input(spm(0), encode(src0, v.dtype_in));
  if (!src1.empty()) item.input(spm(65536), src1);
  if (!dst_init.empty()) item.input(acc(0), dst_init);
  v.src0 = spm(0), v.src1 = spm(65536);
  if (dst_init.empty()) v.dst = spm(131072);
  else v.dst = acc(0);
  item.add(v);
  const int64_t at = item.output<Out>(v.dst, out_count);
  item.run();
  return item.get<Out>(at, out_count);
}

TEST(Functional, AddSiluMulRmsNormFollowTheirFormulas) {
  const int64_t rows = 3, cols = 96;
  const std::vector<float> x = decode(encode(randn(rows * cols, 8), DType::bf16), DType::bf16);
  const std::vector<float> y = decode(encode(randn(rows * cols, 9), DType::bf16), DType::bf16);
  const std::vector<float> w = decode(encode(randn(cols, 10), DType::bf16), DType::bf16);
  Vec v;
  v.rows = rows, v.cols = cols;
  v.dtype_in = DType::bf16, v.dtype_out = DType::f32;

  v.op = VecOp::Add;
  std::vector<float> got = run_vec(v, x, encode(y, DType::bf16), x.size());
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(bits(got[i]), bits(x[i] + y[i]));

  v.op = VecOp::SiluMul;
  got = run_vec(v, x, encode(y, DType::bf16), x.size());
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(bits(got[i]), bits(x[i] / (1.0f + std::exp(-x[i])) * y[i]));

  v.op = VecOp::RmsNorm;
  v.imm = 1e-6;
  got = run_vec(v, x, encode(w, DType::bf16), x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += static_cast<double>(x[r * cols + c]) * x[r * cols + c];
    const auto inv = static_cast<float>(1.0 / std::sqrt(ss / cols + 1e-6));
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(bits(got[r * cols + c]), bits(x[r * cols + c] * (inv * w[c])));
  }
}

TEST(Functional, RowOpsUseOneValuePerRow) {
  const int64_t rows = 5, cols = 40;
  const std::vector<float> x = randn(rows * cols, 11), s = {0.5f, -2.0f, 3.0f, 0.125f, 7.0f};
  Vec v;
  v.rows = rows, v.cols = cols;
  v.op = VecOp::RowScale;
  std::vector<float> got = run_vec(v, x, encode(s, DType::f32), x.size());
  for (int64_t i = 0; i < rows * cols; ++i) EXPECT_EQ(bits(got[i]), bits(x[i] * s[i / cols]));

  v.op = VecOp::RowDivide;
  v.dtype_out = DType::bf16;
  const std::vector<std::uint16_t> div = run_vec<std::uint16_t>(v, x, encode(s, DType::f32), x.size());
  for (int64_t i = 0; i < rows * cols; ++i) EXPECT_EQ(div[i], float_to_bf16(x[i] / s[i / cols]));

  // ScaleAccumulate onto an accumulator, with UE8M0 scales and an extra factor.
  v.op = VecOp::ScaleAccumulate;
  v.dtype_out = DType::f32;
  v.scale_dtype = DType::ue8m0;
  v.imm = 0.75;
  const std::vector<std::uint8_t> e = {120, 127, 130, 1, 200};
  const std::vector<float> init = randn(rows * cols, 12);
  got = run_vec(v, x, e, x.size(), init);
  for (int64_t i = 0; i < rows * cols; ++i)
    EXPECT_EQ(bits(got[i]), bits(init[i] + x[i] * (ue8m0_to_float(e[i / cols]) * 0.75f)));
}

TEST(Functional, QuantizeIsQuantizeBlocksBitForBit) {
  struct Case {
    int64_t rows, cols;
    BlockShape block;
    DType fp8, scale;
    DType in;
  };
  for (const Case c : {Case{4, 256, {1, 128}, DType::f8e4m3, DType::ue8m0, DType::f32},
                       Case{6, 200, {2, 128}, DType::f8e4m3, DType::f32, DType::f32},
                       Case{3, 128, {1, 64}, DType::f8e5m2, DType::ue8m0, DType::bf16}}) {
    SCOPED_TRACE(std::to_string(c.rows) + "x" + std::to_string(c.cols));
    std::vector<float> x = decode(encode(randn(c.rows * c.cols, 13, 40), c.in), c.in);
    x[5] = 0;  // a zero block element and a huge one
    x[7] = 30720.0f;
    const int64_t nscales = scale_rows(c.rows, c.block) * scale_cols(c.cols, c.block);
    std::vector<std::uint8_t> want_q(x.size());
    std::vector<std::byte> want_s(static_cast<std::size_t>(nscales) * dtype_size(c.scale));
    quantize_blocks(x, c.rows, c.cols, c.block, c.fp8, c.scale, want_q, want_s);

    Item item;
    item.input(spm(0), encode(x, c.in));
    Vec v;
    v.op = VecOp::Quantize;
    v.src0 = spm(0), v.dst = spm(65536), v.aux = spm(131072);
    v.rows = c.rows, v.cols = c.cols;
    v.block_rows = c.block.rows, v.block_cols = c.block.cols;
    v.dtype_in = c.in, v.dtype_out = c.fp8, v.scale_dtype = c.scale;
    item.add(v);
    const int64_t q_at = item.output<std::uint8_t>(spm(65536), x.size());
    const int64_t s_at = item.output<std::byte>(spm(131072), want_s.size());
    item.run();
    EXPECT_EQ(item.get<std::uint8_t>(q_at, x.size()), want_q);
    EXPECT_EQ(item.get<std::byte>(s_at, want_s.size()), want_s);

    // Dequantize undoes it as dequantize_blocks does.
    std::vector<float> want_x(x.size());
    dequantize_blocks(want_q, want_s, c.rows, c.cols, c.block, c.fp8, c.scale, want_x);
    Item back;
    back.input(spm(0), want_q);
    back.input_bytes(spm(65536), want_s.data(), want_s.size());
    Vec d;
    d.op = VecOp::Dequantize;
    d.src0 = spm(0), d.src1 = spm(65536), d.dst = spm(131072);
    d.rows = c.rows, d.cols = c.cols;
    d.block_rows = c.block.rows, d.block_cols = c.block.cols;
    d.dtype_in = c.fp8, d.dtype_out = DType::f32, d.scale_dtype = c.scale;
    back.add(d);
    const int64_t x_at = back.output<float>(spm(131072), x.size());
    back.run();
    const std::vector<float> got = back.get<float>(x_at, x.size());
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(bits(got[i]), bits(want_x[i])) << i;
  }
}

TEST(Functional, SoftmaxStepIsTheOnlineSoftmaxWithACausalMask) {
  // Two key tiles of 8 (keys 0..7, 8..15) over 12 queries (0..11); query i sees key j iff
  // j <= i - 1: query 0 sees nothing at all, query 1 only key 0, query 11 keys up to 10.
  const int64_t rows = 12, cols = 8, first_query = 0, diag = -1;
  const double scale = 0.37;
  const std::vector<float> s1 = randn(rows * cols, 14, 3), s2 = randn(rows * cols, 15, 3);
  Item item;
  const float ninf = -std::numeric_limits<float>::infinity();
  item.input(spm(0), s1);
  item.input(spm(1024), s2);
  item.input(spm(4096), std::vector<float>(rows, ninf));  // m
  item.input(spm(4352), std::vector<float>(rows, 0.0f));  // l
  int64_t p_at[2], m_at[2], l_at[2], a_at[2];
  for (int t = 0; t < 2; ++t) {
    Vec v;
    v.op = VecOp::SoftmaxStep;
    v.src0 = spm(t * 1024);
    v.dst = spm(8192 + t * 1024);
    v.rows = rows, v.cols = cols;
    v.dtype_out = DType::f32;
    v.softmax = {spm(4096), spm(4352), spm(4608), scale, true, first_query, t * cols, diag};
    item.add(v);
    p_at[t] = item.output<float>(v.dst, rows * cols);
    m_at[t] = item.output<float>(spm(4096), rows);
    l_at[t] = item.output<float>(spm(4352), rows);
    a_at[t] = item.output<float>(spm(4608), rows);
  }
  item.run();

  std::vector<float> m(rows, ninf), l(rows, 0.0f);
  for (int t = 0; t < 2; ++t) {
    const std::vector<float>& s = t == 0 ? s1 : s2;
    const auto p = item.get<float>(p_at[t], rows * cols), gm = item.get<float>(m_at[t], rows);
    const auto gl = item.get<float>(l_at[t], rows), ga = item.get<float>(a_at[t], rows);
    for (int64_t r = 0; r < rows; ++r) {
      float mx = ninf;
      auto visible = [&](int64_t c) { return t * cols + c <= first_query + r + diag; };
      for (int64_t c = 0; c < cols; ++c)
        if (visible(c)) mx = std::max(mx, s[r * cols + c] * static_cast<float>(scale));
      const float m_new = std::max(m[r], mx);
      if (m_new == ninf) {  // saw no key yet: nothing changes
        EXPECT_EQ(ga[r], 1.0f);
        EXPECT_EQ(gl[r], 0.0f);
        for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(p[r * cols + c], 0.0f);
        continue;
      }
      const float alpha = std::exp(m[r] - m_new);
      float sum = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const float want = visible(c) ? std::exp(s[r * cols + c] * static_cast<float>(scale) - m_new) : 0.0f;
        EXPECT_EQ(bits(p[r * cols + c]), bits(want)) << "tile " << t << " row " << r << " col " << c;
        sum += want;
      }
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
      EXPECT_EQ(bits(gm[r]), bits(m[r]));
      EXPECT_EQ(bits(gl[r]), bits(l[r]));
      EXPECT_EQ(bits(ga[r]), bits(alpha));
    }
  }
  // Query 0 saw no key: its running max is still -inf.
  EXPECT_EQ(item.get<float>(m_at[1], rows)[0], ninf);
}

TEST(Functional, ABufferNeverWrittenReadsAsNaN) {
  Item item;
  const int64_t at = item.output<float>(spm(1024), 8);
  item.run();
  for (float f : item.get<float>(at, 8)) EXPECT_TRUE(std::isnan(f));
}

TEST(Functional, WorkItemsRunIndependentlyOnTheHostThreads) {
  // 64 items, each adds its own two rows: every output written once and right.
  const int64_t items = 64, n = 512;
  std::vector<std::byte> hbm(static_cast<std::size_t>(items * n * 4 * 3));
  const std::vector<float> a = randn(items * n, 16), b = randn(items * n, 17);
  std::memcpy(hbm.data(), a.data(), a.size() * 4);
  std::memcpy(hbm.data() + a.size() * 4, b.data(), b.size() * 4);
  TileKernel k;
  k.name = "add_rows";
  k.work_items = items;
  k.build = [](int64_t item, std::span<const int64_t> args, Program& p) {
    const int64_t row = n * 4;
    p.instrs.push_back(Load{Region{{Space::Hbm, args[0] + item * row}, 1, row, row}, spm(0)});
    p.instrs.push_back(Load{Region{{Space::Hbm, args[1] + item * row}, 1, row, row}, spm(row)});
    p.instrs.push_back(Signal{Pipe::DmaIn, 0});
    p.instrs.push_back(Wait{Pipe::Vector, 0});
    Vec v;
    v.op = VecOp::Add;
    v.src0 = spm(0), v.src1 = spm(row), v.dst = spm(2 * row);
    v.rows = 1, v.cols = n;
    p.instrs.push_back(v);
    p.instrs.push_back(Signal{Pipe::Vector, 1});
    p.instrs.push_back(Wait{Pipe::DmaOut, 1});
    p.instrs.push_back(Store{spm(2 * row), Region{{Space::Hbm, args[2] + item * row}, 1, row, row}});
  };
  const std::vector<int64_t> args = {0, items * n * 4, 2 * items * n * 4};
  Simulator sim(load_chip("npu-ue8m0"));
  const RunStats s = sim.run(k, args, hbm, {});
  EXPECT_EQ(s.cores_used, 32);
  std::vector<float> out(static_cast<std::size_t>(items * n));
  std::memcpy(out.data(), hbm.data() + args[2], out.size() * 4);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(bits(out[i]), bits(a[i] + b[i])) << i;
}

}  // namespace
}  // namespace anychip::sim
