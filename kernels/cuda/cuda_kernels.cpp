// Specialising the CUDA kernels for one KernelSpec (cuda_kernels.hpp).
//
// Each op has one design function (derive_*) that turns (spec, target) into every number
// its kernel and launch need; choose_tiles, check, render and launch_plan all read it, so
// the template arguments in the source and the grid the backend launches cannot disagree.
#include "kernels/cuda/cuda_kernels.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>
#include <variant>

#include "anychip/error.hpp"

namespace anychip::kernels::cuda {
namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }
int pow2_ceil(std::int64_t n) {
  int v = 1;
  while (v < n) v *= 2;
  return v;
}
std::string kib(std::size_t bytes) { return std::to_string((bytes + 1023) / 1024) + " KiB"; }

// The tag type of a dtype in common.cuh.
const char* tag(DType d) {
  switch (d) {
    case DType::f32: return "anychip::F32";
    case DType::bf16: return "anychip::BF16";
    case DType::f16: return "anychip::F16";
    case DType::f8e4m3: return "anychip::E4M3";
    case DType::f8e5m2: return "anychip::E5M2";
    case DType::ue8m0: return "anychip::UE8M0";
    default: return "void";
  }
}

std::string i64(std::int64_t v) { return std::to_string(v) + "LL"; }

// A float as an exact CUDA C++ literal ("0x1.6a09e6p-4f").
std::string float_literal(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%af", static_cast<double>(static_cast<float>(v)));
  return buf;
}

constexpr std::uint32_t kMaxGridYZ = 65535;
constexpr std::int64_t kMaxGridX = std::numeric_limits<std::int32_t>::max();
constexpr std::size_t kStaticSharedLimit = 48 * 1024;

// ---- gemm_fp8 -------------------------------------------------------------------------------

// Which FP8 GEMM kernel runs: wgmma on sm_90a for bf16 outputs; the mma.sync kernel
// elsewhere, EXACT (FP8 -> f16 on the f16 tensor cores, fp32-precision sums) for f32 outputs,
// which would show the FP8 tensor cores' ~14-bit sums (gemm_fp8_mma.cuh).
bool uses_wgmma(const GemmFp8Problem& p, const Target& target) {
  return target.wgmma() && p.out_dtype != DType::f32;
}

struct GemmFp8Design {
  bool wgmma = false;
  bool exact = false;
  int bm = 0, bn = 0, stages = 0;
  int warps_m = 1, warps_n = 1;  // mma.sync path
  unsigned threads = 0;
  std::size_t smem = 0;
};

std::size_t wgmma_smem(int bm, int bn, int stages) {  // sm90::gemm_fp8_smem_bytes
  return 1024 + static_cast<std::size_t>(stages) * (bm + bn) * 128 + 16 * static_cast<std::size_t>(stages);
}
std::size_t mma_smem(int bm, int bn, int stages) {  // mma::gemm_fp8_smem_bytes
  return static_cast<std::size_t>(stages) * (bm + bn) * (128 + 16);
}

// mma.sync path: warps of 32 rows; along N as many as keep a warp 32 or 64 columns wide
// and the CTA at 8 warps at most (a 128 x 128 tile: 4 x 2 warps of 32 x 64).
int mma_warps_n(int bm, int bn) { return std::max(1, std::min(bn / 32, 8 / std::max(1, bm / 32))); }

GemmFp8Design derive_gemm_fp8(const GemmFp8Problem& p, const TileConfig& t, const Target& target) {
  GemmFp8Design d;
  d.wgmma = uses_wgmma(p, target);
  d.exact = p.out_dtype == DType::f32;
  d.bm = t.m;
  d.bn = t.n;
  d.stages = t.stages;
  if (d.wgmma) {
    d.threads = 128 * static_cast<unsigned>(t.m / 64 + 1);
    d.smem = wgmma_smem(t.m, t.n, t.stages);
  } else {
    d.warps_m = std::max(1, t.m / 32);
    d.warps_n = mma_warps_n(t.m, t.n);
    d.threads = 32 * static_cast<unsigned>(d.warps_m * d.warps_n);
    d.smem = mma_smem(t.m, t.n, t.stages);
  }
  return d;
}

// The tile by estimated time: waves of CTAs, each bound by its tensor-core work or by the
// bytes of A and B tiles it streams (mostly from L2), per SM.
TileConfig gemm_fp8_tiles(const GemmFp8Problem& p, const Target& target) {
  const bool wgmma = uses_wgmma(p, target);
  // Per SM: dense FP8 tensor-core rate and tile bandwidth (H100: 1979 TFLOP/s / 132 SMs;
  // Ada: ~730 / 142), and about 100 GB/s of L2-served tile traffic each.
  const double flops_per_sm = wgmma ? 15e12 : 5e12;
  const double bytes_per_sm = 100e9;
  const std::vector<int> bms = wgmma ? std::vector<int>{64, 128} : std::vector<int>{32, 64, 128};
  struct Candidate { int bm, bn; double time; };
  std::vector<Candidate> candidates;
  for (int bm : bms) {
    if (bm > 64 && p.m <= bm / 2) continue;  // mostly empty rows
    for (int bn : {16, 32, 64, 128}) {
      if (!wgmma && bn < 32) continue;
      // An mma.sync CTA of fewer than 4 warps leaves SM sub-partitions idle; only a problem
      // that one such tile covers takes one.
      if (!wgmma && (bm / 32) * mma_warps_n(bm, bn) < 4 && !(p.m <= bm && p.n <= bn)) continue;
      const double blocks = static_cast<double>(ceil_div(p.m, bm) * ceil_div(p.n, bn));
      const double waves = std::ceil(blocks / target.multiprocessors);
      const double k = static_cast<double>(p.k);
      const double per_block = std::max(2.0 * bm * bn * k / flops_per_sm, (bm + bn) * k / bytes_per_sm);
      candidates.push_back({bm, bn, waves * per_block});
    }
  }
  // The largest tile within 10% of the fastest estimate: the model is rough, and larger
  // tiles move fewer bytes per FLOP than it credits them for.
  double fastest = candidates.front().time;
  for (const Candidate& c : candidates) fastest = std::min(fastest, c.time);
  TileConfig best{0, 0, 128, 0};
  for (const Candidate& c : candidates)
    if (c.time <= fastest * 1.1 && c.bm * c.bn > best.m * best.n) {
      best.m = c.bm;
      best.n = c.bn;
    }
  // As many stages as fit (up to 8 TMA stages; 4 cp.async stages, which leaves room for a
  // second CTA per SM), never more than there are K blocks.
  const std::int64_t kblocks = std::max<std::int64_t>(1, p.k / 128);
  int stages = 1;
  for (int s = wgmma ? 8 : 4; s >= 1; --s) {
    const std::size_t need = wgmma ? wgmma_smem(best.m, best.n, s) : mma_smem(best.m, best.n, s);
    if (need <= target.shared_memory_per_block) {
      stages = s;
      break;
    }
  }
  best.stages = static_cast<int>(std::min<std::int64_t>(stages, std::max<std::int64_t>(kblocks, wgmma ? 1 : 2)));
  if (!wgmma) best.stages = std::max(best.stages, 2);
  return best;
}

std::string gemm_fp8_check(const GemmFp8Problem& p, const TileConfig& t, const Target& target) {
  if (target.compute_capability < 89)
    return "FP8 tensor-core MMA needs sm_89 or newer (this target is " + target.arch + ")";
  if (!is_fp8(p.a_dtype) || !is_fp8(p.b_dtype)) return "operands must be f8e4m3 or f8e5m2";
  if (!is_scale_dtype(p.a_scale_dtype) || !is_scale_dtype(p.b_scale_dtype)) return "scales must be f32 or ue8m0";
  if (p.out_dtype != DType::f32 && p.out_dtype != DType::bf16) return "output must be f32 or bf16";
  if (p.k % 128 != 0) return "K=" + std::to_string(p.k) + " is not a multiple of 128";
  if (p.m >= (std::int64_t{1} << 31) || p.n >= (std::int64_t{1} << 31) || p.k >= (std::int64_t{1} << 31))
    return "M, N and K must each be below 2^31";
  const bool wgmma = uses_wgmma(p, target);
  if (t.k != 128) return "tile k must be 128 (one scale block per stage)";
  if (wgmma && t.m != 64 && t.m != 128) return "tile m must be 64 or 128 for wgmma";
  if (!wgmma && t.m != 32 && t.m != 64 && t.m != 128) return "tile m must be 32, 64 or 128";
  if (t.n != 16 && t.n != 32 && t.n != 64 && t.n != 128) return "tile n must be 16, 32, 64 or 128";
  if (!wgmma && t.n < 32) return "tile n must be at least 32 on the mma.sync path";
  if (t.stages < (wgmma ? 1 : 2) || t.stages > 8) return "stages must be 1..8 (2..8 with mma.sync)";
  const GemmFp8Design d = derive_gemm_fp8(p, t, target);
  if (d.smem > target.shared_memory_per_block)
    return "tiles need " + kib(d.smem) + " of shared memory; a block may have " + kib(target.shared_memory_per_block);
  if (ceil_div(p.m, t.m) * ceil_div(p.n, t.n) > kMaxGridX) return "too many output tiles";
  return {};
}

// ---- gemm ------------------------------------------------------------------------------------

constexpr int kGemmThreadTile = 4;  // each thread owns 4 x 4 outputs

TileConfig gemm_tiles() { return {64, 64, 16, 1}; }

std::string gemm_check(const GemmProblem& p, const TileConfig& t) {
  if (!is_float(p.in_dtype) || !is_float(p.out_dtype)) return "operands must be f32, bf16 or f16";
  if (t.m <= 0 || t.n <= 0 || t.k <= 0 || t.m % kGemmThreadTile != 0 || t.n % kGemmThreadTile != 0)
    return "tiles must be positive multiples of 4";
  if ((t.m / kGemmThreadTile) * (t.n / kGemmThreadTile) > 1024) return "a tile of more than 1024 threads";
  const std::size_t smem = 4 * static_cast<std::size_t>(t.k) * (t.m + 4 + t.n + 4);
  if (smem > kStaticSharedLimit) return "tiles need " + kib(smem) + " of static shared memory (48 KiB at most)";
  if (ceil_div(p.m, t.m) > kMaxGridYZ) return "M=" + std::to_string(p.m) + " needs more than 65535 row tiles";
  return {};
}

// ---- attention -------------------------------------------------------------------------------

struct AttentionDesign {
  std::int64_t group = 1, rows = 0;  // heads per KV head; rows per (batch, KV head)
  int bq = 16, bkv = 64, wd = 1, stages = 1, splits = 1;
  int dkp = 16, dvp = 8;
  unsigned threads = 32;
  std::size_t smem = 0;
  std::int64_t row_blocks = 1;
  std::size_t partial_lse_offset = 0, scratch_bytes = 0;
};

std::size_t attention_smem(int bq, int bkv, int stages, int dkp, int dvp) {  // flash::Shape::SMEM_BYTES
  return 2 * (static_cast<std::size_t>(bq) * (dkp + 8) + static_cast<std::size_t>(stages) * bkv * (dkp + 8 + dvp + 8));
}

int attention_warps_dv(const AttentionProblem& p) {
  // At most 128 output columns (64 accumulator registers) per warp.
  return static_cast<int>(std::max<std::int64_t>(1, ceil_div(round_up(p.head_dim_v, 8), 128)));
}

AttentionDesign derive_attention(const AttentionProblem& p, const TileConfig& t, const Target& target) {
  AttentionDesign d;
  d.group = p.heads_kv > 0 ? p.heads_q / p.heads_kv : 1;
  d.rows = p.seq_q * d.group;
  d.bq = t.m;
  d.bkv = t.n;
  d.wd = t.k;
  d.stages = t.stages;
  d.dkp = static_cast<int>(round_up(p.head_dim, 16));
  d.dvp = static_cast<int>(round_up(p.head_dim_v, 8 * std::max(1, d.wd)));
  d.threads = 32 * static_cast<unsigned>(std::max(1, d.bq / 16) * std::max(1, d.wd));
  d.smem = attention_smem(d.bq, d.bkv, d.stages, d.dkp, d.dvp);
  d.row_blocks = d.bq > 0 ? ceil_div(d.rows, d.bq) : 0;
  // Split the keys when the CTAs would not fill the GPU: about one wave in all, at least
  // one tile per split.
  const std::int64_t base = d.row_blocks * p.batch * p.heads_kv;
  const std::int64_t tiles = d.bkv > 0 ? ceil_div(p.seq_kv, d.bkv) : 0;
  d.splits = 1;
  if (base > 0 && tiles > 1 && base < target.multiprocessors) {
    std::int64_t splits = std::min<std::int64_t>({ceil_div(target.multiprocessors, base), tiles, 64});
    const std::int64_t per_split = ceil_div(tiles, splits);
    d.splits = static_cast<int>(ceil_div(tiles, per_split));
  }
  if (d.splits > 1) {
    const std::size_t partial_rows = static_cast<std::size_t>(d.splits) * p.batch * p.heads_kv * d.rows;
    d.partial_lse_offset = static_cast<std::size_t>(round_up(static_cast<std::int64_t>(partial_rows * p.head_dim_v * 4), 256));
    d.scratch_bytes = d.partial_lse_offset + partial_rows * 4;
  }
  return d;
}

TileConfig attention_tiles(const AttentionProblem& p, const Target& target) {
  TileConfig t;
  t.k = attention_warps_dv(p);
  const std::int64_t group = p.heads_kv > 0 ? std::max<std::int64_t>(1, p.heads_q / p.heads_kv) : 1;
  const std::int64_t rows = std::max<std::int64_t>(1, p.seq_q * group);
  const int warp_rows = static_cast<int>(std::min<std::int64_t>({4, ceil_div(rows, 16), std::max(1, 8 / t.k)}));
  t.m = 16 * std::max(1, warp_rows);
  const int dkp = static_cast<int>(round_up(std::max<std::int64_t>(p.head_dim, 1), 16));
  const int dvp = static_cast<int>(round_up(std::max<std::int64_t>(p.head_dim_v, 1), 8 * t.k));
  t.n = 16;
  t.stages = 1;
  for (auto [bkv, stages] : {std::pair{64, 2}, {32, 2}, {64, 1}, {32, 1}, {16, 2}, {16, 1}}) {
    if (attention_smem(t.m, bkv, stages, dkp, dvp) <= target.shared_memory_per_block) {
      t.n = bkv;
      t.stages = stages;
      break;
    }
  }
  return t;
}

std::string attention_check(const AttentionProblem& p, const TileConfig& t, const Target& target) {
  if (p.dtype == DType::f32)
    return "attention in f32 is not supported (the tensor-core kernel takes bf16 or f16, and rounding f32 "
           "inputs to them would exceed the f32 error bound)";
  if (p.dtype != DType::bf16 && p.dtype != DType::f16) return "dtype must be bf16 or f16";
  if (target.compute_capability < 80) return "bf16/f16 mma.sync needs sm_80 or newer";
  if (p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) return "heads_q is not a multiple of heads_kv";
  if (p.head_dim <= 0 || p.head_dim_v <= 0) return "head dimensions must be positive";
  if (t.m <= 0 || t.m % 16 != 0 || t.m > 64) return "tile m (rows per CTA) must be 16, 32, 48 or 64";
  if (t.n != 16 && t.n != 32 && t.n != 64) return "tile n (keys per tile) must be 16, 32 or 64";
  if (t.k <= 0 || (t.m / 16) * t.k > 8) return "tile k (warps along Dv) must be positive, 8 warps at most";
  if (round_up(p.head_dim_v, 8 * t.k) / t.k > 128)
    return "tile k=" + std::to_string(t.k) + " leaves more than 128 output columns per warp";
  if (t.stages != 1 && t.stages != 2) return "stages must be 1 or 2";
  const AttentionDesign d = derive_attention(p, t, target);
  if (d.smem > target.shared_memory_per_block)
    return "head dims " + std::to_string(p.head_dim) + "/" + std::to_string(p.head_dim_v) + " need " + kib(d.smem) +
           " of shared memory; a block may have " + kib(target.shared_memory_per_block);
  if (p.batch * p.heads_kv > kMaxGridYZ) return "batch x heads_kv exceeds 65535";
  if (d.row_blocks > kMaxGridX) return "too many query rows";
  return {};
}

// ---- quantize, dequantize, rmsnorm, silu_mul, add ----------------------------------------------

constexpr int kStreamThreads = 256;
constexpr int kStreamUnroll = 4;
constexpr int kMaxValuesPerThread = 64;  // register-held elements per thread

struct QuantizeDesign {
  int v = 1, tpb = 1, threads = 1, cpt = 1;
  std::int64_t blocks = 0, ctas = 0;
};

QuantizeDesign derive_quantize(const QuantizeProblem& p, const TileConfig& t) {
  QuantizeDesign d;
  d.v = t.n;
  d.tpb = t.k;
  d.threads = t.m;
  const std::int64_t chunks = p.block.rows * std::max<std::int64_t>(1, p.block.cols / std::max(1, d.v));
  d.cpt = static_cast<int>(ceil_div(chunks, std::max(1, d.tpb)));
  d.blocks = scale_rows(p.rows, p.block) * scale_cols(p.cols, p.block);
  d.ctas = ceil_div(d.blocks, std::max(1, d.threads / std::max(1, d.tpb)));
  return d;
}

TileConfig quantize_tiles(const QuantizeProblem& p) {
  TileConfig t;
  t.stages = 1;
  t.n = (p.cols % 8 == 0 && p.block.cols % 8 == 0) ? 8 : 1;
  const std::int64_t chunks = std::max<std::int64_t>(1, p.block.rows * (p.block.cols / t.n));
  if (chunks <= 32) {
    t.k = pow2_ceil(chunks);
    t.m = kStreamThreads;
  } else {
    t.k = t.m = std::min(kStreamThreads, pow2_ceil(chunks));
  }
  return t;
}

std::string quantize_check(const QuantizeProblem& p, const TileConfig& t) {
  if (!is_float(p.in_dtype) || !is_fp8(p.out_dtype) || !is_scale_dtype(p.scale_dtype))
    return "quantizes f32/bf16/f16 to f8e4m3/f8e5m2 with f32/ue8m0 scales";
  if (p.block.rows <= 0 || p.block.cols <= 0) return "block dimensions must be positive";
  if (t.n != 1 && t.n != 8) return "tile n (chunk) must be 1 or 8";
  if (t.n == 8 && (p.cols % 8 != 0 || p.block.cols % 8 != 0)) return "8-element chunks need cols and block cols % 8 == 0";
  if (t.k <= 0 || (t.k & (t.k - 1)) != 0 || t.m % t.k != 0 || t.m % 32 != 0 || t.m > 1024)
    return "tile k (threads per block) must be a power of two dividing tile m, a multiple of 32 up to 1024";
  if (t.k > 32 && t.k != t.m) return "a scale block wider than a warp takes the whole CTA (tile k == tile m)";
  const QuantizeDesign d = derive_quantize(p, t);
  if (static_cast<std::int64_t>(d.cpt) * d.v > kMaxValuesPerThread)
    return "scale blocks of " + std::to_string(p.block.rows) + "x" + std::to_string(p.block.cols) +
           " hold more elements than the CTA keeps in registers (" + std::to_string(kMaxValuesPerThread * t.k) + ")";
  if (d.ctas > kMaxGridX) return "too many scale blocks";
  return {};
}

int chunk_for(std::int64_t inner) { return inner % 8 == 0 ? 8 : 1; }

TileConfig elementwise_tiles(int v) { return {kStreamThreads, v, kStreamUnroll, 1}; }

std::string elementwise_check(const TileConfig& t, std::int64_t chunks, bool need_aligned_chunk, std::int64_t inner) {
  if (t.m <= 0 || t.m % 32 != 0 || t.m > 1024) return "tile m (threads) must be a multiple of 32 up to 1024";
  if (t.n != 1 && t.n != 8) return "tile n (chunk) must be 1 or 8";
  if (need_aligned_chunk && t.n == 8 && inner % 8 != 0) return "8-element chunks need the row length % 8 == 0";
  if (t.k <= 0 || t.k > 16) return "tile k (chunks per thread) must be 1..16";
  if (ceil_div(chunks + 1, static_cast<std::int64_t>(t.m) * t.k) > kMaxGridX) return "too many elements";
  return {};
}

TileConfig rmsnorm_tiles(const RmsNormProblem& p) {
  const int v = chunk_for(p.dim);
  const std::int64_t chunks = std::max<std::int64_t>(1, p.dim / v);
  // About four chunks per thread.
  const int threads = std::clamp(pow2_ceil(ceil_div(chunks, 4)), 32, 1024);
  return {threads, v, 0, 1};
}

std::string rmsnorm_check(const RmsNormProblem& p, const TileConfig& t) {
  if (!is_float(p.dtype) || !is_float(p.weight_dtype)) return "dtypes must be f32, bf16 or f16";
  if (t.m < 32 || t.m > 1024 || (t.m & (t.m - 1)) != 0) return "tile m (threads) must be a power of two in 32..1024";
  if (t.n != 1 && t.n != 8) return "tile n (chunk) must be 1 or 8";
  if (t.n == 8 && p.dim % 8 != 0) return "8-element chunks need dim % 8 == 0";
  if (ceil_div(p.dim / t.n, t.m) * t.n > kMaxValuesPerThread)
    return "dim=" + std::to_string(p.dim) + " is more than a CTA keeps in registers (" +
           std::to_string(kMaxValuesPerThread * t.m) + ")";
  if (p.rows > kMaxGridX) return "too many rows";
  return {};
}

std::string dtype_float(DType d, const char* what) {
  return is_float(d) ? std::string() : std::string(what) + " must be f32, bf16 or f16";
}

// ---- rendering -------------------------------------------------------------------------------

std::string_view source(std::string_view name) {
  for (const EmbeddedFile& f : embedded_sources())
    if (f.name == name) return f.text;
  throw Error(ErrorCode::Internal, "cuda: kernel source " + std::string(name) + " is not embedded in this build");
}

struct Rendered {
  std::string file;     // the op's template
  std::string wrapper;  // the extern "C" kernels
};

std::string args(std::initializer_list<std::string> list) {
  std::string s;
  for (const std::string& a : list) s += (s.empty() ? "" : ", ") + a;
  return s;
}

Rendered render_op(const KernelSpec& spec, const Target& target) {
  const TileConfig& t = spec.tiles;
  return std::visit(
      [&](const auto& p) -> Rendered {
        using P = std::decay_t<decltype(p)>;
        Rendered r;
        if constexpr (std::is_same_v<P, GemmFp8Problem>) {
          const GemmFp8Design d = derive_gemm_fp8(p, t, target);
          const std::string types = args({tag(p.a_dtype), tag(p.b_dtype), tag(p.a_scale_dtype), tag(p.b_scale_dtype),
                                          tag(p.out_dtype)});
          if (d.wgmma) {
            r.file = "gemm_fp8_sm90.cuh";
            r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(d.threads) +
                        ", 1) anychip_gemm_fp8(const __grid_constant__ anychip::TensorMap a, "
                        "const __grid_constant__ anychip::TensorMap b, const void* __restrict__ sa, "
                        "const void* __restrict__ sb, void* __restrict__ d) {\n"
                        "  anychip::sm90::gemm_fp8<" +
                        args({i64(p.m), i64(p.n), i64(p.k), std::to_string(d.bm), std::to_string(d.bn),
                              std::to_string(d.stages), types}) +
                        ">(&a, &b, sa, sb, d);\n}\n";
          } else {
            r.file = "gemm_fp8_mma.cuh";
            r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(d.threads) +
                        ") anychip_gemm_fp8(const anychip::u8* __restrict__ a, const void* __restrict__ sa, "
                        "const anychip::u8* __restrict__ b, const void* __restrict__ sb, void* __restrict__ d) {\n"
                        "  anychip::mma::gemm_fp8<" +
                        args({i64(p.m), i64(p.n), i64(p.k), std::to_string(d.bm), std::to_string(d.bn),
                              std::to_string(d.warps_m), std::to_string(d.warps_n), std::to_string(d.stages),
                              d.exact ? "true" : "false", types}) +
                        ">(a, sa, b, sb, d);\n}\n";
          }
        } else if constexpr (std::is_same_v<P, GemmProblem>) {
          r.file = "gemm.cuh";
          const int threads = (t.m / kGemmThreadTile) * (t.n / kGemmThreadTile);
          r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(threads) +
                      ") anychip_gemm(const void* __restrict__ a, const void* __restrict__ b, void* __restrict__ d) {\n"
                      "  anychip::simt::gemm<" +
                      args({i64(p.m), i64(p.n), i64(p.k), std::to_string(t.m), std::to_string(t.n), std::to_string(t.k),
                            std::to_string(kGemmThreadTile), std::to_string(kGemmThreadTile), tag(p.in_dtype),
                            tag(p.out_dtype)}) +
                      ">(a, b, d);\n}\n";
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          const AttentionDesign d = derive_attention(p, t, target);
          r.file = "attention.cuh";
          r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(d.threads) +
                      ") anychip_attention(const void* __restrict__ q, const void* __restrict__ k, "
                      "const void* __restrict__ v, void* __restrict__ o, float* __restrict__ partial_o, "
                      "float* __restrict__ partial_lse) {\n"
                      "  anychip::flash::attention<" +
                      args({i64(p.batch), i64(p.seq_q), i64(p.seq_kv), i64(p.heads_q), i64(p.heads_kv),
                            i64(p.head_dim), i64(p.head_dim_v), p.causal ? "true" : "false", std::to_string(d.bq),
                            std::to_string(d.bkv), std::to_string(d.wd), std::to_string(d.stages),
                            std::to_string(d.splits), tag(p.dtype)}) +
                      ">(q, k, v, o, partial_o, partial_lse, " + float_literal(p.scale * 1.4426950408889634) +
                      ");  // scale * log2(e)\n}\n";
          if (d.splits > 1)
            r.wrapper += "extern \"C\" __global__ void __launch_bounds__(128) anychip_attention_combine("
                         "const float* __restrict__ partial_o, const float* __restrict__ partial_lse, "
                         "void* __restrict__ o) {\n"
                         "  anychip::flash::attention_combine<" +
                         args({i64(p.batch), i64(p.seq_q), i64(p.heads_q), i64(p.heads_kv), i64(p.head_dim_v),
                               std::to_string(d.splits), tag(p.dtype)}) +
                         ">(partial_o, partial_lse, o);\n}\n";
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          const QuantizeDesign d = derive_quantize(p, t);
          r.file = "quantize.cuh";
          r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(d.threads) +
                      ") anychip_quantize_fp8(const void* __restrict__ x, anychip::u8* __restrict__ q, "
                      "void* __restrict__ scales) {\n"
                      "  anychip::quantize_fp8<" +
                      args({i64(p.rows), i64(p.cols), std::to_string(p.block.rows), std::to_string(p.block.cols),
                            std::to_string(d.v), std::to_string(d.tpb), std::to_string(d.threads), tag(p.in_dtype),
                            tag(p.out_dtype), tag(p.scale_dtype)}) +
                      ">(x, q, scales);\n}\n";
        } else if constexpr (std::is_same_v<P, DequantizeProblem>) {
          r.file = "quantize.cuh";
          r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(t.m) +
                      ") anychip_dequantize(const anychip::u8* __restrict__ q, const void* __restrict__ scales, "
                      "void* __restrict__ out) {\n"
                      "  anychip::dequantize<" +
                      args({i64(p.rows), i64(p.cols), std::to_string(p.block.rows), std::to_string(p.block.cols),
                            std::to_string(t.n), std::to_string(t.k), tag(p.in_dtype), tag(p.scale_dtype),
                            tag(p.out_dtype)}) +
                      ">(q, scales, out);\n}\n";
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          r.file = "elementwise.cuh";
          r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(t.m) +
                      ") anychip_rmsnorm(const void* __restrict__ x, const void* __restrict__ w, "
                      "void* __restrict__ y) {\n"
                      "  anychip::rmsnorm<" +
                      args({i64(p.rows), i64(p.dim), std::to_string(t.n), std::to_string(t.m), tag(p.dtype),
                            tag(p.weight_dtype)}) +
                      ">(x, w, y, " + float_literal(p.eps) + ");\n}\n";
        } else if constexpr (std::is_same_v<P, SiluMulProblem>) {
          r.file = "elementwise.cuh";
          r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(t.m) +
                      ") anychip_silu_mul(const void* __restrict__ x, void* __restrict__ y) {\n"
                      "  anychip::silu_mul<" +
                      args({i64(p.rows), i64(p.dim), std::to_string(t.n), std::to_string(t.k), tag(p.dtype)}) +
                      ">(x, y);\n}\n";
        } else if constexpr (!std::is_same_v<P, AddProblem>) {
          throw Error(ErrorCode::Internal, "cuda: no kernel template for " + describe(spec));
        } else {
          r.file = "elementwise.cuh";
          r.wrapper = "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(t.m) +
                      ") anychip_add(const void* __restrict__ a, const void* __restrict__ b, void* __restrict__ y) {\n"
                      "  anychip::add<" + args({i64(p.numel), std::to_string(t.k), tag(p.dtype)}) + ">(a, b, y);\n}\n";
        }
        return r;
      },
      spec.problem);
}

std::array<unsigned, 3> dims(std::int64_t x, std::int64_t y = 1, std::int64_t z = 1) {
  return {static_cast<unsigned>(x), static_cast<unsigned>(y), static_cast<unsigned>(z)};
}

Param param(Param::Kind kind, int input = 0) {
  Param p;
  p.kind = kind;
  p.input = input;
  return p;
}

}  // namespace

std::string arch_for(int major, int minor) {
  return "sm_" + std::to_string(major) + std::to_string(minor) + (major == 9 && minor == 0 ? "a" : "");
}

Target target_for_arch(std::string_view arch) {
  const std::string_view prefix = "sm_";
  std::string_view digits = arch.substr(0, arch.size() - (arch.ends_with('a') ? 1 : 0));
  int number = 0;
  bool ok = arch.starts_with(prefix) && digits.size() > prefix.size() && digits.size() <= prefix.size() + 3;
  if (ok) {
    digits.remove_prefix(prefix.size());
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    ok = ec == std::errc() && end == digits.data() + digits.size() && number >= 10;
  }
  if (!ok)
    throw Error(ErrorCode::InvalidArgument,
                "cuda: '" + std::string(arch) + "' is not a GPU architecture (expected sm_<digits>[a], e.g. sm_90a)");
  Target t;
  t.arch = std::string(arch);
  t.compute_capability = number;
  // The data-centre part of each architecture.
  if (number >= 100) {  // B200
    t.multiprocessors = 148;
    t.shared_memory_per_block = 232448;
  } else if (number >= 90) {  // H100 SXM / H800 / H200
    t.multiprocessors = 132;
    t.shared_memory_per_block = 232448;
  } else if (number == 89) {  // L40S
    t.multiprocessors = 142;
    t.shared_memory_per_block = 101376;
  } else if (number >= 86) {  // A40
    t.multiprocessors = 84;
    t.shared_memory_per_block = 101376;
  } else if (number >= 80) {  // A100
    t.multiprocessors = 108;
    t.shared_memory_per_block = 166912;
  } else {
    t.multiprocessors = 40;
    t.shared_memory_per_block = 65536;
  }
  return t;
}

TileConfig choose_tiles(const Problem& problem, const Target& target) {
  return std::visit(
      [&](const auto& p) -> TileConfig {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, GemmFp8Problem>) return gemm_fp8_tiles(p, target);
        else if constexpr (std::is_same_v<P, GemmProblem>) return gemm_tiles();
        else if constexpr (std::is_same_v<P, AttentionProblem>) return attention_tiles(p, target);
        else if constexpr (std::is_same_v<P, QuantizeProblem>) return quantize_tiles(p);
        else if constexpr (std::is_same_v<P, RmsNormProblem>) return rmsnorm_tiles(p);
        else if constexpr (std::is_same_v<P, DequantizeProblem>)
          return elementwise_tiles(p.cols % 8 == 0 && p.block.cols % 8 == 0 ? 8 : 1);
        else if constexpr (std::is_same_v<P, SiluMulProblem>) return elementwise_tiles(chunk_for(p.dim));
        else return elementwise_tiles(8);
      },
      problem);
}

std::string check(const KernelSpec& spec, const Target& target) {
  const TileConfig& t = spec.tiles;
  return std::visit(
      [&](const auto& p) -> std::string {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, GemmFp8Problem>) {
          return gemm_fp8_check(p, t, target);
        } else if constexpr (std::is_same_v<P, GemmProblem>) {
          return gemm_check(p, t);
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          return attention_check(p, t, target);
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          return quantize_check(p, t);
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          return rmsnorm_check(p, t);
        } else if constexpr (std::is_same_v<P, DequantizeProblem>) {
          if (!is_fp8(p.in_dtype) || !is_float(p.out_dtype) || !is_scale_dtype(p.scale_dtype))
            return "dequantizes f8e4m3/f8e5m2 with f32/ue8m0 scales to f32/bf16/f16";
          if (p.block.rows <= 0 || p.block.cols <= 0) return "block dimensions must be positive";
          if (t.n == 8 && p.block.cols % 8 != 0) return "8-element chunks need block cols % 8 == 0";
          return elementwise_check(t, p.rows * p.cols / std::max(1, t.n), true, p.cols);
        } else if constexpr (std::is_same_v<P, SiluMulProblem>) {
          if (std::string why = dtype_float(p.dtype, "dtype"); !why.empty()) return why;
          return elementwise_check(t, p.rows * p.dim / std::max(1, t.n), true, p.dim);
        } else if constexpr (!std::is_same_v<P, AddProblem>) {
          return "the CUDA backend has no " + std::string(op_name(spec.problem)) + " kernel yet";
        } else {
          if (std::string why = dtype_float(p.dtype, "dtype"); !why.empty()) return why;
          if (t.n != 8) return "tile n (chunk) must be 8 (the tail is handled apart)";
          return elementwise_check(t, p.numel / 8, false, p.numel);
        }
      },
      spec.problem);
}

std::string render(const KernelSpec& spec, const Target& target) {
  const Rendered r = render_op(spec, target);
  std::string out = "// anychip CUDA kernel for " + target.arch + ": " + describe(spec) + "\n";
  out += "// ---- common.cuh ----\n";
  out += source("common.cuh");
  out += "\n// ---- " + r.file + " ----\n";
  out += source(r.file);
  out += "\n// ---- this spec ----\n";
  out += r.wrapper;
  return out;
}

LaunchPlan launch_plan(const KernelSpec& spec, const Target& target) {
  const TileConfig& t = spec.tiles;
  using K = Param::Kind;
  LaunchPlan plan;
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        Step s;
        if constexpr (std::is_same_v<P, GemmFp8Problem>) {
          const GemmFp8Design d = derive_gemm_fp8(p, t, target);
          s.kernel = "anychip_gemm_fp8";
          s.grid = dims(ceil_div(p.m, d.bm) * ceil_div(p.n, d.bn));  // 1-D: grouped_tile() places it
          s.block = dims(d.threads);
          s.shared_bytes = static_cast<unsigned>(d.smem);
          if (d.wgmma) {
            Param a = param(K::TensorMap, 0), b = param(K::TensorMap, 1);
            a.map = {static_cast<std::uint64_t>(p.m), static_cast<std::uint64_t>(p.k), static_cast<std::uint32_t>(d.bm), 128};
            b.map = {static_cast<std::uint64_t>(p.n), static_cast<std::uint64_t>(p.k), static_cast<std::uint32_t>(d.bn), 128};
            s.params = {a, b, param(K::InputScales, 0), param(K::InputScales, 1), param(K::OutputData)};
          } else {
            s.params = {param(K::InputData, 0), param(K::InputScales, 0), param(K::InputData, 1),
                        param(K::InputScales, 1), param(K::OutputData)};
          }
          plan.scaled_inputs = {true, true};
        } else if constexpr (std::is_same_v<P, GemmProblem>) {
          s.kernel = "anychip_gemm";
          s.grid = dims(ceil_div(p.n, t.n), ceil_div(p.m, t.m));
          s.block = dims((t.m / kGemmThreadTile) * (t.n / kGemmThreadTile));
          s.params = {param(K::InputData, 0), param(K::InputData, 1), param(K::OutputData)};
          plan.scaled_inputs = {false, false};
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          const AttentionDesign d = derive_attention(p, t, target);
          s.kernel = "anychip_attention";
          s.grid = dims(d.row_blocks, p.batch * p.heads_kv, d.splits);
          s.block = dims(d.threads);
          s.shared_bytes = static_cast<unsigned>(d.smem);
          Param lse = param(K::Scratch);
          lse.scratch_offset = d.partial_lse_offset;
          s.params = {param(K::InputData, 0), param(K::InputData, 1), param(K::InputData, 2), param(K::OutputData),
                      param(K::Scratch), lse};
          plan.scaled_inputs = {false, false, false};
          plan.scratch_bytes = d.scratch_bytes;
          if (d.splits > 1) {
            plan.steps.push_back(s);
            s = Step{};
            s.kernel = "anychip_attention_combine";
            s.grid = dims(p.batch * p.heads_kv * d.rows);
            s.block = dims(128);
            s.params = {param(K::Scratch), lse, param(K::OutputData)};
          }
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          const QuantizeDesign d = derive_quantize(p, t);
          s.kernel = "anychip_quantize_fp8";
          s.grid = dims(d.ctas);
          s.block = dims(d.threads);
          s.params = {param(K::InputData, 0), param(K::OutputData), param(K::OutputScales)};
          plan.scaled_inputs = {false};
          plan.scaled_output = true;
        } else if constexpr (std::is_same_v<P, DequantizeProblem>) {
          s.kernel = "anychip_dequantize";
          s.grid = dims(ceil_div(p.rows * p.cols / t.n, static_cast<std::int64_t>(t.m) * t.k));
          s.block = dims(t.m);
          s.params = {param(K::InputData, 0), param(K::InputScales, 0), param(K::OutputData)};
          plan.scaled_inputs = {true};
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          s.kernel = "anychip_rmsnorm";
          s.grid = dims(p.rows);
          s.block = dims(t.m);
          s.params = {param(K::InputData, 0), param(K::InputData, 1), param(K::OutputData)};
          plan.scaled_inputs = {false, false};
        } else if constexpr (std::is_same_v<P, SiluMulProblem>) {
          s.kernel = "anychip_silu_mul";
          s.grid = dims(ceil_div(p.rows * p.dim / t.n, static_cast<std::int64_t>(t.m) * t.k));
          s.block = dims(t.m);
          s.params = {param(K::InputData, 0), param(K::OutputData)};
          plan.scaled_inputs = {false};
        } else if constexpr (!std::is_same_v<P, AddProblem>) {
          throw Error(ErrorCode::Internal, "cuda: no launch plan for " + describe(spec));
        } else {
          s.kernel = "anychip_add";
          // One more chunk than whole chunks: its thread adds the tail.
          s.grid = dims(ceil_div(p.numel / 8 + 1, static_cast<std::int64_t>(t.m) * t.k));
          s.block = dims(t.m);
          s.params = {param(K::InputData, 0), param(K::InputData, 1), param(K::OutputData)};
          plan.scaled_inputs = {false, false};
        }
        plan.steps.push_back(std::move(s));
      },
      spec.problem);
  return plan;
}

}  // namespace anychip::kernels::cuda
