// The functional units: each instruction executed on the bytes of one core's buffers and
// the device memory, in program order (program.hpp says why that is the semantics).
//
// Arithmetic, where the ISA comment leaves it open:
//  * Elements are decoded to fp32 (FP8 through a 256-entry table, exactly), computed in
//    fp32 and encoded once to the output dtype with anychip's conversions (round to
//    nearest even; FP8 with finite saturation).
//  * Mma: each product element is sum over k, in k order from +0, of a[i,k] * b[j,k] in
//    fp32 (a multiply then an add: floating-point contraction is off in this file, so
//    every host and every ISA clone gives the same bits); then acc = p * s (or acc += p * s)
//    with s = scale_a[i] * scale_b[0] when scaled, else acc (+)= p.
//  * ScaleAccumulate: dst += src0 * (src1[row] * imm).   RowScale: dst = src0 * src1[row].
//  * RmsNorm, SiluMul: as the CPU kernels (kernels/cpu/elementwise.cpp): the sum of
//    squares in double, y = x * (float(1 / sqrt(mean + eps)) * w); silu(x) * y =
//    x / (1 + exp(-x)) * y.
//  * SoftmaxStep: m_new = max(m, max over visible keys of s * scale); alpha = exp(m - m_new);
//    P = exp(s * scale - m_new) (0 where masked); l = l * alpha + sum of P in fp32 (before
//    P is rounded to dtype_out). A row that has seen no visible key yet keeps m = -inf,
//    l unchanged, alpha = 1 and P = 0.
//  * Quantize / Dequantize are anychip::quantize_blocks / dequantize_blocks.
// Before each work item the bytes its program touches are poisoned (0xFF: NaN in every
// float format), so a program that reads what it never wrote gives NaN, not stale data.
#pragma GCC optimize("fp-contract=off")

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "anychip/quantize.hpp"
#include "simulator/engine_impl.hpp"
#include "simulator/program_impl.hpp"

namespace anychip::sim::detail {
namespace {

using std::int64_t;

struct Fp8Tables {
  std::array<float, 256> e4m3, e5m2;
  Fp8Tables() {
    for (int i = 0; i < 256; ++i) {
      e4m3[static_cast<std::size_t>(i)] = e4m3_to_float(static_cast<std::uint8_t>(i));
      e5m2[static_cast<std::size_t>(i)] = e5m2_to_float(static_cast<std::uint8_t>(i));
    }
  }
};

const Fp8Tables& fp8_tables() {
  static const Fp8Tables tables;
  return tables;
}

// n elements of dtype d at src -> fp32.
void decode(const std::byte* src, DType d, int64_t n, float* out) {
  const auto* u8 = reinterpret_cast<const std::uint8_t*>(src);
  switch (d) {
    case DType::f32:
      std::memcpy(out, src, static_cast<std::size_t>(n) * 4);
      return;
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, u8 + 2 * i, 2);
        out[i] = std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
      }
      return;
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, u8 + 2 * i, 2);
        out[i] = f16_to_float(h);
      }
      return;
    case DType::f8e4m3: {
      const float* t = fp8_tables().e4m3.data();
      for (int64_t i = 0; i < n; ++i) out[i] = t[u8[i]];
      return;
    }
    case DType::f8e5m2: {
      const float* t = fp8_tables().e5m2.data();
      for (int64_t i = 0; i < n; ++i) out[i] = t[u8[i]];
      return;
    }
    case DType::ue8m0:
      for (int64_t i = 0; i < n; ++i) out[i] = ue8m0_to_float(u8[i]);
      return;
    case DType::i32:
      break;
  }
  throw Error(ErrorCode::Internal, "simulator: cannot decode " + std::string(dtype_name(d)));
}

// n fp32 values -> dtype d at dst.
void encode(const float* in, int64_t n, DType d, std::byte* dst) {
  auto* u8 = reinterpret_cast<std::uint8_t*>(dst);
  switch (d) {
    case DType::f32:
      std::memcpy(dst, in, static_cast<std::size_t>(n) * 4);
      return;
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i) {
        const std::uint16_t h = float_to_bf16(in[i]);
        std::memcpy(u8 + 2 * i, &h, 2);
      }
      return;
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) {
        const std::uint16_t h = float_to_f16(in[i]);
        std::memcpy(u8 + 2 * i, &h, 2);
      }
      return;
    case DType::f8e4m3:
      for (int64_t i = 0; i < n; ++i) u8[i] = float_to_e4m3(in[i]);
      return;
    case DType::f8e5m2:
      for (int64_t i = 0; i < n; ++i) u8[i] = float_to_e5m2(in[i]);
      return;
    default:
      break;
  }
  throw Error(ErrorCode::Internal, "simulator: cannot encode " + std::string(dtype_name(d)));
}

float load_f32(const std::byte* p, int64_t i) {
  float v;
  std::memcpy(&v, p + 4 * i, 4);
  return v;
}

void store_f32(std::byte* p, int64_t i, float v) { std::memcpy(p + 4 * i, &v, 4); }

constexpr int64_t kRowBlock = 4;  // rows of the product computed together

// p[i, j] = sum over kk of a[i, kk] * bt[kk, j], in kk order. a is m x k (m a multiple of
// kRowBlock), bt is k x n (n a multiple of kCols), p is m x n. The kRowBlock x kCols block
// of sums stays in registers across the k loop; the compiler vectorises along j. (4 x 64
// measured fastest of 2..8 x 32..64 on AVX2 and AVX-512 hosts.)
template <int64_t kCols>
__attribute__((target_clones("avx512f", "avx2", "default"))) void product_nt(const float* __restrict a,
                                                                             const float* __restrict bt,
                                                                             float* __restrict p, int64_t m,
                                                                             int64_t n, int64_t k) {
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const float* a0 = a + i0 * k;
    for (int64_t j0 = 0; j0 < n; j0 += kCols) {
      float s[kRowBlock][kCols] = {};
      for (int64_t kk = 0; kk < k; ++kk) {
        const float* b = bt + kk * n + j0;
        for (int64_t r = 0; r < kRowBlock; ++r) {
          const float x = a0[r * k + kk];
          for (int64_t j = 0; j < kCols; ++j) s[r][j] += x * b[j];
        }
      }
      for (int64_t r = 0; r < kRowBlock; ++r)
        for (int64_t j = 0; j < kCols; ++j) p[(i0 + r) * n + j0 + j] = s[r][j];
    }
  }
}

// Narrow products (attention's small tiles) use 16 columns, to pad less.
int64_t column_block(int64_t n) { return n >= 48 ? 64 : 16; }

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

}  // namespace

FunctionalCore::FunctionalCore(const ChipDesc& chip)
    : spm_(static_cast<std::size_t>(chip.core.scratchpad_bytes)),
      acc_(static_cast<std::size_t>(chip.core.accumulator_bytes)) {}

std::byte* FunctionalCore::at(Addr a) {
  return (a.space == Space::Acc ? acc_.data() : spm_.data()) + a.offset;
}

void FunctionalCore::fail(const std::string& what) const {
  instruction_error(*ctx_, item_, *program_, index_, what);
}

void FunctionalCore::run(const RunContext& ctx, int64_t item, const Program& program, const ProgramFacts& facts,
                         std::span<std::byte> hbm) {
  ctx_ = &ctx, item_ = item, program_ = &program;
  std::memset(spm_.data(), 0xFF, static_cast<std::size_t>(facts.spm_used));
  std::memset(acc_.data(), 0xFF, static_cast<std::size_t>(facts.acc_used));
  for (index_ = 0; index_ < program.instrs.size(); ++index_) {
    const Instr& instr = program.instrs[index_];
    if (const auto* l = std::get_if<Load>(&instr)) {
      load(*l, hbm);
    } else if (const auto* s = std::get_if<Store>(&instr)) {
      const std::byte* src = at(s->src);
      const auto rb = static_cast<std::size_t>(s->dst.row_bytes);
      for (int64_t r = 0; r < s->dst.rows; ++r)
        std::memcpy(hbm.data() + s->dst.base.offset + r * s->dst.stride, src + r * s->dst.row_bytes, rb);
    } else if (const auto* m = std::get_if<Mma>(&instr)) {
      mma(*m);
    } else if (const auto* v = std::get_if<Vec>(&instr)) {
      vec(*v);
    }
    // Signal and Wait order the pipes; in program order they do nothing.
  }
}

// Validation has checked the indices' addresses and the hull of indices 0..bound-1, so
// only an index's value can be out of range here.
void FunctionalCore::load(const Load& l, std::span<std::byte> hbm) {
  std::byte* dst = at(l.dst);
  const auto rb = static_cast<std::size_t>(l.src.row_bytes);
  if (!l.index) {
    for (int64_t r = 0; r < l.src.rows; ++r)
      std::memcpy(dst + r * l.src.row_bytes, hbm.data() + l.src.base.offset + r * l.src.stride, rb);
    return;
  }
  const LoadIndex& x = *l.index;
  auto index_at = [&](int64_t r) {
    std::int32_t v;
    std::memcpy(&v, hbm.data() + x.at + (x.per_row ? r * x.stride : 0), 4);
    if (v >= x.bound)
      fail("gather index " + std::to_string(v) + " (row " + std::to_string(r) + ", at hbm[" +
           hex(x.at + (x.per_row ? r * x.stride : 0)) + "]) is out of range: indices must be below " +
           std::to_string(x.bound) + " (negative: zero fill)");
    return static_cast<int64_t>(v);
  };
  const int64_t whole = x.per_row ? 0 : index_at(0);
  for (int64_t r = 0; r < l.src.rows; ++r) {
    const int64_t idx = x.per_row ? index_at(r) : whole;
    std::byte* row = dst + r * l.src.row_bytes;
    if (idx < 0) std::memset(row, 0, rb);
    else std::memcpy(row, hbm.data() + l.src.base.offset + r * l.src.stride + idx * x.scale, rb);
  }
}

void FunctionalCore::mma(const Mma& m) {
  const int64_t cols = column_block(m.n);
  const int64_t mp = round_up(m.m, kRowBlock), np = round_up(m.n, cols);
  a_.resize(static_cast<std::size_t>(mp * m.k));
  decode(at(m.a), m.a_dtype, m.m * m.k, a_.data());
  std::fill(a_.begin() + m.m * m.k, a_.end(), 0.0f);
  // B^T, k x np, zero-padded columns: row j of B decoded, then scattered into column j.
  bt_.resize(static_cast<std::size_t>(m.k * np));
  if (np != m.n)
    for (int64_t kk = 0; kk < m.k; ++kk) std::fill_n(bt_.data() + kk * np + m.n, np - m.n, 0.0f);
  t0_.resize(static_cast<std::size_t>(m.k));
  const int64_t b_row = m.k * static_cast<int64_t>(dtype_size(m.b_dtype));
  for (int64_t j = 0; j < m.n; ++j) {
    decode(at(m.b) + j * b_row, m.b_dtype, m.k, t0_.data());
    float* col = bt_.data() + j;
    for (int64_t kk = 0; kk < m.k; ++kk) col[kk * np] = t0_[static_cast<std::size_t>(kk)];
  }
  p_.resize(static_cast<std::size_t>(mp * np));
  if (cols == 64) product_nt<64>(a_.data(), bt_.data(), p_.data(), mp, np, m.k);
  else product_nt<16>(a_.data(), bt_.data(), p_.data(), mp, np, m.k);

  float sb = 1.0f;
  if (m.scaled) {
    t1_.resize(static_cast<std::size_t>(m.m));
    decode(at(m.scale_a.addr), m.scale_a.dtype, m.m, t1_.data());
    decode(at(m.scale_b.addr), m.scale_b.dtype, 1, &sb);
  }
  // acc rows go through a float buffer: the accumulator's bytes need not be aligned.
  t2_.resize(static_cast<std::size_t>(m.n));
  float* __restrict row = t2_.data();
  std::byte* acc = at(m.acc);
  const auto row_bytes = static_cast<std::size_t>(m.n) * 4;
  for (int64_t i = 0; i < m.m; ++i) {
    const float* __restrict p = p_.data() + i * np;
    std::byte* dst = acc + i * m.n * 4;
    if (!m.scaled && !m.accumulate) {
      std::memcpy(dst, p, row_bytes);
      continue;
    }
    if (m.accumulate) std::memcpy(row, dst, row_bytes);
    if (m.scaled) {
      const float s = t1_[static_cast<std::size_t>(i)] * sb;
      if (m.accumulate)
        for (int64_t j = 0; j < m.n; ++j) row[j] = row[j] + p[j] * s;
      else
        for (int64_t j = 0; j < m.n; ++j) row[j] = p[j] * s;
    } else {
      for (int64_t j = 0; j < m.n; ++j) row[j] = row[j] + p[j];
    }
    std::memcpy(dst, row, row_bytes);
  }
}

void FunctionalCore::vec(const Vec& v) {
  const int64_t rows = v.rows, cols = v.cols, n = rows * cols;
  if (n == 0) return;
  const auto un = static_cast<std::size_t>(n);
  const auto ucols = static_cast<std::size_t>(cols);
  switch (v.op) {
    case VecOp::Convert:
      t0_.resize(un);
      decode(at(v.src0), v.dtype_in, n, t0_.data());
      encode(t0_.data(), n, v.dtype_out, at(v.dst));
      return;
    case VecOp::Add:
      t0_.resize(un), t1_.resize(un);
      decode(at(v.src0), v.dtype_in, n, t0_.data());
      decode(at(v.src1), v.dtype_in, n, t1_.data());
      for (std::size_t i = 0; i < un; ++i) t0_[i] += t1_[i];
      encode(t0_.data(), n, v.dtype_out, at(v.dst));
      return;
    case VecOp::SiluMul:
      t0_.resize(un), t1_.resize(un);
      decode(at(v.src0), v.dtype_in, n, t0_.data());
      decode(at(v.src1), v.dtype_in, n, t1_.data());
      for (std::size_t i = 0; i < un; ++i) {
        const float g = t0_[i];
        t0_[i] = g / (1.0f + std::exp(-g)) * t1_[i];
      }
      encode(t0_.data(), n, v.dtype_out, at(v.dst));
      return;
    case VecOp::ScaleAccumulate: {
      t1_.resize(static_cast<std::size_t>(rows));
      decode(at(v.src1), v.scale_dtype, rows, t1_.data());
      const std::byte* src = at(v.src0);
      std::byte* dst = at(v.dst);
      const auto imm = static_cast<float>(v.imm);
      for (int64_t r = 0; r < rows; ++r) {
        const float s = t1_[static_cast<std::size_t>(r)] * imm;
        for (int64_t c = 0; c < cols; ++c) {
          const int64_t i = r * cols + c;
          store_f32(dst, i, load_f32(dst, i) + load_f32(src, i) * s);
        }
      }
      return;
    }
    case VecOp::RowScale:
    case VecOp::RowDivide: {
      t0_.resize(un), t1_.resize(static_cast<std::size_t>(rows));
      decode(at(v.src0), DType::f32, n, t0_.data());
      decode(at(v.src1), DType::f32, rows, t1_.data());
      for (int64_t r = 0; r < rows; ++r) {
        const float s = t1_[static_cast<std::size_t>(r)];
        float* row = t0_.data() + r * cols;
        if (v.op == VecOp::RowScale)
          for (int64_t c = 0; c < cols; ++c) row[c] *= s;
        else
          for (int64_t c = 0; c < cols; ++c) row[c] /= s;
      }
      encode(t0_.data(), n, v.op == VecOp::RowScale ? DType::f32 : v.dtype_out, at(v.dst));
      return;
    }
    case VecOp::RmsNorm: {
      t0_.resize(un), t1_.resize(ucols);
      decode(at(v.src0), v.dtype_in, n, t0_.data());
      decode(at(v.src1), v.dtype_in, cols, t1_.data());
      for (int64_t r = 0; r < rows; ++r) {
        float* row = t0_.data() + r * cols;
        double sum_sq = 0;
        for (int64_t c = 0; c < cols; ++c) sum_sq += static_cast<double>(row[c]) * row[c];
        const auto inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(cols) + v.imm));
        for (int64_t c = 0; c < cols; ++c) row[c] *= inv_rms * t1_[static_cast<std::size_t>(c)];
      }
      encode(t0_.data(), n, v.dtype_out, at(v.dst));
      return;
    }
    case VecOp::Quantize: {
      const BlockShape block{v.block_rows, v.block_cols};
      const int64_t scales = scale_rows(rows, block) * scale_cols(cols, block);
      t0_.resize(un);
      decode(at(v.src0), v.dtype_in, n, t0_.data());
      q_.resize(un + static_cast<std::size_t>(scales) * dtype_size(v.scale_dtype));
      std::span<std::uint8_t> q(q_.data(), un);
      std::span<std::byte> s(reinterpret_cast<std::byte*>(q_.data() + un), q_.size() - un);
      quantize_blocks(t0_, rows, cols, block, v.dtype_out, v.scale_dtype, q, s);
      std::memcpy(at(v.dst), q.data(), q.size());
      std::memcpy(at(v.aux), s.data(), s.size());
      return;
    }
    case VecOp::Dequantize: {
      const BlockShape block{v.block_rows, v.block_cols};
      const int64_t scales = scale_rows(rows, block) * scale_cols(cols, block);
      q_.resize(un);
      std::memcpy(q_.data(), at(v.src0), un);
      t0_.resize(un);
      dequantize_blocks(q_, std::span<const std::byte>(at(v.src1), static_cast<std::size_t>(scales) * dtype_size(v.scale_dtype)),
                        rows, cols, block, v.dtype_in, v.scale_dtype, t0_);
      encode(t0_.data(), n, v.dtype_out, at(v.dst));
      return;
    }
    case VecOp::Rope:
      rope(v);
      return;
    case VecOp::TopK:
      topk(v);
      return;
    case VecOp::MoeWeights:
      moe_weights(v);
      return;
    case VecOp::MoePlan:
      moe_plan(v);
      return;
    case VecOp::SoftmaxStep: {
      const SoftmaxParams& sp = v.softmax;
      constexpr float kNegInf = -std::numeric_limits<float>::infinity();
      const auto scale = static_cast<float>(sp.scale);
      t0_.resize(un);
      decode(at(v.src0), DType::f32, n, t0_.data());
      std::byte* mx = at(sp.max);
      std::byte* sum = at(sp.sum);
      std::byte* alpha = at(sp.alpha);
      for (int64_t r = 0; r < rows; ++r) {
        float* row = t0_.data() + r * cols;
        const int64_t query = sp.first_query + r;
        // Keys first_key + c with c < visible are visible.
        int64_t visible = cols;
        if (sp.causal) visible = std::clamp<int64_t>(query + sp.diag - sp.first_key + 1, 0, cols);
        float row_max = kNegInf;
        for (int64_t c = 0; c < visible; ++c) {
          row[c] *= scale;
          row_max = std::max(row_max, row[c]);
        }
        const float m_old = load_f32(mx, r);
        const float m_new = std::max(m_old, row_max);
        float l = load_f32(sum, r);
        if (m_new == kNegInf) {
          std::fill(row, row + cols, 0.0f);
          store_f32(alpha, r, 1.0f);
          continue;
        }
        const float a = std::exp(m_old - m_new);
        float row_sum = 0;
        for (int64_t c = 0; c < visible; ++c) {
          row[c] = std::exp(row[c] - m_new);
          row_sum += row[c];
        }
        std::fill(row + visible, row + cols, 0.0f);
        l = l * a + row_sum;
        store_f32(mx, r, m_new);
        store_f32(sum, r, l);
        store_f32(alpha, r, a);
      }
      encode(t0_.data(), n, v.dtype_out, at(v.dst));
      return;
    }
  }
}

namespace {

std::int32_t load_i32(const std::byte* p, int64_t i) {
  std::int32_t v;
  std::memcpy(&v, p + 4 * i, 4);
  return v;
}

void store_i32(std::byte* p, int64_t i, std::int32_t v) { std::memcpy(p + 4 * i, &v, 4); }

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

void FunctionalCore::rope(const Vec& v) {
  const int64_t rows = v.rows, cols = v.cols, rot = v.block_cols, first = cols - rot, n = rows * cols;
  t0_.resize(static_cast<std::size_t>(n));
  decode(at(v.src0), v.dtype_in, n, t0_.data());
  const std::byte* pos = at(v.src1);
  // cos and sin of the angles of one position, shared by its block_rows rows.
  t1_.resize(static_cast<std::size_t>(rot));
  for (int64_t r = 0; r < rows; ++r) {
    if (r % v.block_rows == 0) {
      const double p = load_i32(pos, r / v.block_rows);
      for (int64_t i = 0; i < rot / 2; ++i) {
        const double angle = p * rope_inv_freq(i, rot, v.imm, v.rope);
        t1_[static_cast<std::size_t>(2 * i)] = static_cast<float>(std::cos(angle));
        t1_[static_cast<std::size_t>(2 * i + 1)] = static_cast<float>(std::sin(angle));
      }
    }
    float* x = t0_.data() + r * cols + first;
    for (int64_t i = 0; i < rot / 2; ++i) {
      const float c = t1_[static_cast<std::size_t>(2 * i)], s = t1_[static_cast<std::size_t>(2 * i + 1)];
      const float x0 = x[2 * i], x1 = x[2 * i + 1];
      x[2 * i] = x0 * c - x1 * s;
      x[2 * i + 1] = x0 * s + x1 * c;
    }
  }
  encode(t0_.data(), n, v.dtype_out, at(v.dst));
}

void FunctionalCore::topk(const Vec& v) {
  const int64_t experts = v.cols, groups = v.moe.groups, per = experts / groups, k = v.moe.k;
  const auto ue = static_cast<std::size_t>(experts);
  t0_.resize(ue), t1_.resize(ue), t2_.resize(static_cast<std::size_t>(groups));
  decode(at(v.src1), DType::f32, experts, t1_.data());
  const std::byte* logits = at(v.src0);
  std::byte* out = at(v.dst);
  float* keys = t0_.data();
  float* score = t2_.data();
  // Best first; ties to the lower index; a NaN key ranks as -inf (a strict weak order).
  auto better = [](const float* key) {
    return [key](int64_t a, int64_t b) {
      const float x = key[a] == key[a] ? key[a] : -std::numeric_limits<float>::infinity();
      const float y = key[b] == key[b] ? key[b] : -std::numeric_limits<float>::infinity();
      return x > y || (x == y && a < b);
    };
  };
  for (int64_t r = 0; r < v.rows; ++r) {
    for (int64_t e = 0; e < experts; ++e) keys[e] = sigmoid(load_f32(logits, r * experts + e)) + t1_[static_cast<std::size_t>(e)];
    for (int64_t g = 0; g < groups; ++g) {
      const float* kg = keys + g * per;
      if (per == 1) {
        score[g] = kg[0];
        continue;
      }
      int64_t best = 0;
      for (int64_t e = 1; e < per; ++e)
        if (better(kg)(e, best)) best = e;
      int64_t second = best == 0 ? 1 : 0;
      for (int64_t e = 0; e < per; ++e)
        if (e != best && better(kg)(e, second)) second = e;
      score[g] = kg[best] + kg[second];
    }
    n0_.resize(static_cast<std::size_t>(groups));
    for (int64_t g = 0; g < groups; ++g) n0_[static_cast<std::size_t>(g)] = g;
    std::partial_sort(n0_.begin(), n0_.begin() + v.moe.top_groups, n0_.end(), better(score));
    n1_.clear();
    for (int64_t i = 0; i < v.moe.top_groups; ++i)
      for (int64_t e = 0; e < per; ++e) n1_.push_back(n0_[static_cast<std::size_t>(i)] * per + e);
    std::partial_sort(n1_.begin(), n1_.begin() + k, n1_.end(), better(keys));
    for (int64_t j = 0; j < k; ++j) store_i32(out, r * k + j, static_cast<std::int32_t>(n1_[static_cast<std::size_t>(j)]));
  }
}

void FunctionalCore::moe_weights(const Vec& v) {
  const int64_t k = v.cols, experts = v.moe.experts;
  const std::byte* logits = at(v.src0);
  const std::byte* chosen = at(v.src1);
  std::byte* out = at(v.dst);
  t0_.resize(static_cast<std::size_t>(k));
  const auto scale = static_cast<float>(v.imm);
  for (int64_t r = 0; r < v.rows; ++r) {
    float sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const std::int32_t e = load_i32(chosen, r * k + j);
      if (e < 0 || e >= experts)
        fail("row " + std::to_string(r) + " chooses expert " + std::to_string(e) + ", outside 0.." +
             std::to_string(experts - 1));
      t0_[static_cast<std::size_t>(j)] = sigmoid(load_f32(logits, r * experts + e));
      sum += t0_[static_cast<std::size_t>(j)];
    }
    for (int64_t j = 0; j < k; ++j) store_f32(out, r * k + j, t0_[static_cast<std::size_t>(j)] / sum * scale);
  }
}

void FunctionalCore::moe_plan(const Vec& v) {
  const MoeParams& m = v.moe;
  const int64_t choices = v.rows * v.cols, first = m.first_row, window = m.window;
  const std::byte* chosen = at(v.src0);
  std::byte* expert_of = at(v.dst);
  std::byte* token_of = expert_of + 4 * window;
  std::byte* row_of = token_of + 4 * window;
  for (int64_t i = 0; i < 3 * window; ++i) store_i32(expert_of, i, -1);
  // Counting sort: each expert's block starts where the previous one's aligned end is.
  n0_.assign(static_cast<std::size_t>(m.experts), 0);
  for (int64_t s = 0; s < choices; ++s) {
    const std::int32_t e = load_i32(chosen, s);
    if (e < 0 || e >= m.experts)
      fail("choice " + std::to_string(s) + " (token " + std::to_string(s / v.cols) + ") is expert " +
           std::to_string(e) + ", outside 0.." + std::to_string(m.experts - 1));
    ++n0_[static_cast<std::size_t>(e)];
  }
  int64_t start = 0;
  for (int64_t& c : n0_) {
    const int64_t count = c;
    c = start;  // now the next free row of the expert
    start += (count + m.align - 1) / m.align * m.align;
  }
  if (start > m.plan_rows)
    fail("the plan needs " + std::to_string(start) + " rows, more than its " + std::to_string(m.plan_rows));
  for (int64_t s = 0; s < choices; ++s) {
    const std::int32_t e = load_i32(chosen, s);
    const int64_t row = n0_[static_cast<std::size_t>(e)]++;
    if (row >= first && row < first + window) {
      store_i32(expert_of, row - first, e);
      store_i32(token_of, row - first, static_cast<std::int32_t>(s / v.cols));
    }
    if (s >= first && s < first + window) store_i32(row_of, s - first, static_cast<std::int32_t>(row));
  }
}

}  // namespace anychip::sim::detail
