// Specialising the OpenCL kernels for one KernelSpec (opencl_kernels.hpp).
//
// What the tile fields of a KernelSpec mean here, per op:
//   gemm_fp8, gemm,  m x n: the work-group's tile of D (BM x BN); k: the K columns staged
//   gemm_fp8_grouped in __local memory at a time (TK; FP8: a divisor of 128). k == K is the
//                    few-rows kernel (gemm_fp8_dot.cl). Grouped: BM divides the align.
//   attention        m: query positions per work-group (BQ); n: keys per staged tile
//                    (BKV); k: query heads per work-group, all of one KV head (GH).
//   the other ops    m: work-items per work-group; n: elements per work-item (elementwise
//                    ops and the copies: slice, concat, moe_gather, moe_combine).
// Everything else the kernels need (register blocks, vector widths, work-group shapes)
// follows from the tiles and the Target, here, in one place: derive_* below.
#include "kernels/opencl/opencl_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "anychip/error.hpp"

namespace anychip::kernels::opencl {
namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }

// The largest of 16, 8, 4, 2, 1 that divides n and is at most `cap`.
int pow2_divisor(std::int64_t n, int cap = 16) {
  for (int v = cap; v > 1; v /= 2)
    if (n % v == 0) return v;
  return 1;
}

int pow2_floor(std::size_t n) {
  int v = 1;
  while (static_cast<std::size_t>(v) * 2 <= n) v *= 2;
  return v;
}

std::string kib(std::size_t bytes) { return std::to_string((bytes + 1023) / 1024) + " KiB"; }

// A float as an exact OpenCL C literal ("0x1.6a09e6p-4f").
std::string float_literal(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%af", static_cast<double>(static_cast<float>(v)));
  return buf;
}

// ---- GEMM -------------------------------------------------------------------------------

struct GemmShape {
  std::int64_t m, n, k;
  bool fp8;
  std::int64_t align = 0;  // gemm_fp8_grouped's row alignment; 0: not grouped
};

GemmShape gemm_shape(const Problem& p) {
  if (auto* g = std::get_if<GemmFp8Problem>(&p)) return {g->m, g->n, g->k, true};
  if (auto* g = std::get_if<GemmFp8GroupedProblem>(&p)) return {g->m, g->n, g->k, true, g->align};
  const auto& g = std::get<GemmProblem>(p);
  return {g.m, g.n, g.k, false};
}

template <typename P>
constexpr bool is_gemm = std::is_same_v<P, GemmFp8Problem> || std::is_same_v<P, GemmProblem> ||
                         std::is_same_v<P, GemmFp8GroupedProblem>;

// The FP8 GEMM for few rows (gemm_fp8_dot.cl): one work-item per group, all of K of A
// staged at once (tile k == K), dot products along K. Chosen for M <= 8, where gemm.cl's
// transposed staging of B costs more than the arithmetic it feeds.
constexpr std::int64_t kDotMaxRows = 8;

bool is_dot(const GemmShape& s, const TileConfig& t, const Target& target) {
  return target.wide_work_items && s.fp8 && s.k > 0 && t.k == s.k && t.m <= 16;
}

struct GemmDerived {
  int wg_m = 1, wg_n = 1;  // work-items along m and n
  int mr = 1, nr = 1, vec = 1;
  bool acc_local = false;
};

GemmDerived derive_gemm(const TileConfig& t, const Target& target) {
  GemmDerived d;
  if (target.wide_work_items) {
    d.mr = pow2_divisor(t.m);
    d.nr = d.vec = pow2_divisor(t.n);
    d.acc_local = true;
  } else {
    d.mr = pow2_divisor(t.m, 4);
    d.nr = d.vec = pow2_divisor(t.n, 4);
    d.wg_m = t.m / d.mr;
    d.wg_n = t.n / d.nr;
  }
  return d;
}

std::size_t gemm_local_bytes(const GemmShape& s, const TileConfig& t, const Target& target) {
  if (is_dot(s, t, target)) return static_cast<std::size_t>(t.m) * static_cast<std::size_t>(s.k) * 4;
  const GemmDerived d = derive_gemm(t, target);
  std::size_t floats = static_cast<std::size_t>(t.m) * t.k + static_cast<std::size_t>(t.k) * t.n;
  if (d.acc_local) floats += static_cast<std::size_t>(t.m) * t.n;
  return floats * 4;
}

// A tile side for an extent: the extent rounded up to `step` when that is at most 256;
// else the multiple of `step` in [128, 256] that pads the extent least (the largest on a
// tie): 2112 columns take 192 (11 tiles, none padded), not 256 (9 tiles, 192 padded).
std::int64_t least_padding(std::int64_t extent, std::int64_t step) {
  if (extent <= 256) return round_up(extent, step);
  std::int64_t best = 256;
  for (std::int64_t side = 256; side >= 128; side -= step)
    if (round_up(extent, side) < round_up(extent, best)) best = side;
  return best;
}

TileConfig gemm_tiles(const GemmShape& s, const Target& target) {
  TileConfig t;
  t.stages = 1;
  if (target.wide_work_items && s.fp8 && s.m <= kDotMaxRows && s.k > 0) {
    int rows = 1;
    while (rows < s.m) rows *= 2;
    if (static_cast<std::size_t>(rows) * static_cast<std::size_t>(s.k) * 4 <= target.local_mem_bytes / 2) {
      t.m = rows;
      t.k = static_cast<int>(s.k);
      t.n = 128;
      while (ceil_div(s.n, t.n) < 4 * target.compute_units && t.n > 16) t.n /= 2;
      return t;
    }
  }
  if (target.wide_work_items) {
    // One core per work-group: 16 x 16 register blocks (16 zmm accumulators) over a tile
    // of up to 256 x 256, 128 columns of K staged at a time (one FP8 scale block). Wide
    // tiles matter: every tile decodes its A rows again, every 128 columns of K.
    int block = 16;
    if (s.m < 16)
      for (block = 1; block < s.m;) block *= 2;
    t.m = static_cast<int>(least_padding(std::max<std::int64_t>(s.m, 1), block));
    t.n = static_cast<int>(least_padding(std::max<std::int64_t>(s.n, 1), 16));
    // Enough work-groups to balance the cores: narrower, then shorter tiles.
    const auto groups = [&] { return ceil_div(s.m, t.m) * ceil_div(s.n, t.n); };
    while (groups() < 4 * target.compute_units && t.n > 64) t.n = static_cast<int>(std::max<std::int64_t>(64, round_up(t.n / 2, 16)));
    while (groups() < 4 * target.compute_units && t.m >= 128) t.m = static_cast<int>(round_up(t.m / 2, 16));
    t.k = s.fp8 ? 128 : static_cast<int>(std::min<std::int64_t>(128, round_up(std::max<std::int64_t>(s.k, 1), 16)));
  } else {
    // Many narrow work-items: 4 x 4 outputs each, 16 x 16 of them (fewer when the
    // device's work-groups are smaller), 32 columns of K staged at a time.
    int side = 64;
    while (side > 16 && static_cast<std::size_t>((side / 4) * (side / 4)) > target.max_work_group_size) side /= 2;
    t.m = t.n = side;
    t.k = 32;
  }
  // Within the device's local memory: narrower, then shorter tiles (GPUs: thinner slices
  // of K first). What still does not fit is for supports() to refuse.
  while (gemm_local_bytes(s, t, target) > target.local_mem_bytes) {
    if (!target.wide_work_items && t.k > 16) {
      t.k /= 2;
    } else if (t.n > 16) {
      t.n = static_cast<int>(round_up(t.n / 2, 16));
      if (!target.wide_work_items) t.m = t.n;
    } else if (t.m > 1 && target.wide_work_items) {
      t.m = t.m > 16 ? static_cast<int>(round_up(t.m / 2, 16)) : t.m / 2;
    } else {
      break;
    }
  }
  return t;
}

// gemm_fp8_grouped: a work-group's rows must lie in one align-row tile of the contiguous
// layout, so BM divides align; otherwise as the plain FP8 GEMM. Wide work-items: align up
// to 16 (decode) takes the few-rows kernel with BM the largest power of two (<= 16) that
// divides align; a larger align takes the tiled kernel with BM the largest multiple of 16
// (<= 256) that divides it. Narrow: the plain GEMM's tiles, BM halved until it divides
// align.
TileConfig grouped_tiles(const GemmShape& s, const Target& target) {
  TileConfig t;
  t.stages = 1;
  const std::int64_t align = std::max<std::int64_t>(s.align, 1);
  const int pow2 = pow2_divisor(align);
  std::int64_t tall = 0;  // the tiled kernel's BM on wide work-items, 0 if none
  for (std::int64_t bm = 256; bm >= 16; bm -= 16)
    if (align % bm == 0) {
      tall = bm;
      break;
    }
  if (target.wide_work_items && (align <= 16 || tall == 0) && s.k > 0 &&
      static_cast<std::size_t>(pow2) * static_cast<std::size_t>(s.k) * 4 <= target.local_mem_bytes / 2) {
    t.m = pow2;
    t.k = static_cast<int>(s.k);
    t.n = 128;
    while (ceil_div(s.m, t.m) * ceil_div(s.n, t.n) < 4 * target.compute_units && t.n > 16) t.n /= 2;
    return t;
  }
  t = gemm_tiles({s.m, s.n, s.k, true}, target);
  if (target.wide_work_items) {
    t.m = static_cast<int>(tall > 0 ? tall : pow2);
    t.k = 128;  // gemm_tiles gives few rows the few-rows kernel (k = K), which did not fit
  } else {
    while (align % t.m != 0) t.m /= 2;  // the side gemm_tiles chose is a power of two
  }
  // Within local memory: narrower tiles first, then shorter ones that still divide align.
  while (gemm_local_bytes(s, t, target) > target.local_mem_bytes) {
    if (t.n > 16) {
      t.n = static_cast<int>(round_up(t.n / 2, 16));
    } else if (t.m % 2 == 0 && align % (t.m / 2) == 0) {
      t.m /= 2;
    } else {
      break;
    }
  }
  return t;
}

std::string gemm_check(const GemmShape& s, const TileConfig& t, const Target& target) {
  if (t.m <= 0 || t.n <= 0 || t.k <= 0) return "tiles must be positive";
  if (s.align > 0 && s.align % t.m != 0)
    return "tile m=" + std::to_string(t.m) + " does not divide align=" + std::to_string(s.align) +
           ": a work-group's rows must hold one group of the contiguous layout";
  if (is_dot(s, t, target)) {
    if ((t.m & (t.m - 1)) != 0 || (s.align == 0 && t.m < s.m))
      return "tile m=" + std::to_string(t.m) + " (rows of A, all of K staged) must be a power of two >= M";
    const int columns = s.align > 0 ? 16 : 16 / t.m;  // grouped: one row may take 16 columns at a time
    if (t.n % columns != 0) return "tile n=" + std::to_string(t.n) + " is not a multiple of " + std::to_string(columns);
    return {};
  }
  if (t.n % 16 != 0) return "tile n=" + std::to_string(t.n) + " is not a multiple of 16";
  if (t.k % 16 != 0) return "tile k=" + std::to_string(t.k) + " is not a multiple of 16";
  if (s.fp8 && 128 % t.k != 0) return "tile k=" + std::to_string(t.k) + " does not divide the 128-wide scale blocks";
  const GemmDerived d = derive_gemm(t, target);
  if (t.m % d.wg_m != 0 || t.n % d.wg_n != 0) return "tile does not split evenly over the work-items";
  const int tm = t.m / d.wg_m, tn = t.n / d.wg_n;
  if (tm % d.mr != 0 || tn % d.nr != 0) return "work-item tile does not split into register blocks";
  const int pb = s.fp8 ? 128 : t.k;
  if (t.stages != 1) return "stages=" + std::to_string(t.stages) + ": the kernel stages one slice at a time (1)";
  if (pb != t.k && (tm != d.mr || tn != d.nr))
    return "a work-item with several register blocks needs a whole promotion block staged (tile k=" +
           std::to_string(pb) + ")";
  return {};
}

// ---- attention --------------------------------------------------------------------------

struct AttentionDerived {
  int rb = 1;          // rows per register block
  int vd = 1;          // vector width along head_dim_v
  int local_size = 1;  // work-items per work-group
};

AttentionDerived derive_attention(const AttentionProblem& p, const TileConfig& t, const Target& target) {
  AttentionDerived d;
  const std::int64_t rows = static_cast<std::int64_t>(t.m) * t.k;
  d.vd = pow2_divisor(p.head_dim_v);
  if (target.wide_work_items) {
    d.rb = pow2_divisor(rows, 4);
  } else {
    d.rb = 1;
    d.local_size = static_cast<int>(rows);
  }
  return d;
}

std::size_t attention_local_bytes(const AttentionProblem& p, const TileConfig& t) {
  const std::size_t rows = static_cast<std::size_t>(t.m) * static_cast<std::size_t>(t.k);
  const std::size_t dk = static_cast<std::size_t>(p.head_dim), dv = static_cast<std::size_t>(p.head_dim_v);
  const std::size_t bkv = static_cast<std::size_t>(t.n);
  return 4 * (rows * dk + dk * bkv + bkv * dv + rows * dv + rows * bkv + 2 * rows);
}

TileConfig attention_tiles(const AttentionProblem& p, const Target& target) {
  TileConfig t;
  t.stages = 1;
  const std::int64_t group = p.heads_kv > 0 ? std::max<std::int64_t>(1, p.heads_q / p.heads_kv) : 1;
  const std::int64_t max_rows = target.wide_work_items ? 64 : 16;
  // Heads per work-group: the whole group when it fits in the rows, else its largest
  // divisor that does.
  std::int64_t gh = std::min(group, max_rows);
  while (group % gh != 0) --gh;
  std::int64_t bq = std::max<std::int64_t>(1, std::min<std::int64_t>(std::max<std::int64_t>(p.seq_q, 1), max_rows / gh));
  t.k = static_cast<int>(gh);
  t.m = static_cast<int>(bq);
  t.n = target.wide_work_items ? static_cast<int>(std::min<std::int64_t>(64, round_up(std::max<std::int64_t>(p.seq_kv, 1), 16)))
                               : 16;
  // Within the device's local memory: fewer keys per tile, then fewer query positions,
  // then fewer heads per work-group. What still does not fit (MLA's 576/512 on a 48 KiB
  // GPU) is for supports() to refuse.
  while (attention_local_bytes(p, t) > target.local_mem_bytes) {
    if (t.n > 16) {
      t.n = static_cast<int>(round_up(t.n / 2, 16));
    } else if (t.m > 1) {
      t.m /= 2;
    } else if (t.k > 1) {
      int k = t.k - 1;
      while (group % k != 0) --k;
      t.k = k;
    } else {
      break;
    }
  }
  return t;
}

std::string attention_check(const AttentionProblem& p, const TileConfig& t, const Target& target) {
  if (t.m <= 0 || t.n <= 0 || t.k <= 0) return "tiles must be positive";
  if (t.n % 16 != 0) return "tile n=" + std::to_string(t.n) + " (keys per tile) is not a multiple of 16";
  if (p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) return "heads_q is not a multiple of heads_kv";
  if ((p.heads_q / p.heads_kv) % t.k != 0)
    return "tile k=" + std::to_string(t.k) + " (heads per work-group) does not divide the group of " +
           std::to_string(p.heads_q / p.heads_kv);
  if (p.head_dim <= 0 || p.head_dim_v <= 0) return "head dimensions must be positive";
  return {};
}

// ---- the streaming ops --------------------------------------------------------------------

// Work-items per group and elements per work-item of the elementwise kernels.
TileConfig streaming_tiles(const Target& target, bool elementwise) {
  TileConfig t;
  t.stages = 1;
  if (target.wide_work_items) {
    t.m = 1;
    t.n = elementwise ? 4096 : 0;
  } else {
    t.m = std::min(256, pow2_floor(target.max_work_group_size));
    t.n = elementwise ? 4 : 0;
  }
  return t;
}

std::string streaming_check(const TileConfig& t, bool elementwise) {
  if (t.m <= 0 || (t.m & (t.m - 1)) != 0) return "tile m=" + std::to_string(t.m) + " (work-items) is not a power of two";
  if (elementwise && t.n <= 0) return "tile n (elements per work-item) must be positive";
  return {};
}

// The storage type a copy moves an element of `d` as ("" when none).
const char* elem_type(DType d) {
  if (d == DType::ue8m0) return "";
  switch (dtype_size(d)) {
    case 1: return "uchar";
    case 2: return "ushort";
    case 4: return "uint";
    default: return "";
  }
}

// The copies (slice, concat, moe_gather, moe_combine) cut the output into rows of `last`
// elements; a work-group copies up to m * n columns of `rpg` rows.
struct CopyLayout {
  std::int64_t rows = 0, last = 0, cw = 1, rpg = 1;
};

CopyLayout copy_layout(std::int64_t rows, std::int64_t last, const TileConfig& t) {
  CopyLayout c;
  c.rows = rows;
  c.last = last;
  const std::int64_t per_group = std::max<std::int64_t>(1, static_cast<std::int64_t>(t.m) * t.n);
  c.cw = std::max<std::int64_t>(1, std::min(last, per_group));
  c.rpg = std::max<std::int64_t>(1, per_group / c.cw);
  return c;
}

CopyLayout copy_layout(const Problem& problem, const TileConfig& t) {
  return std::visit(
      [&](const auto& p) -> CopyLayout {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, SliceProblem>) {
          return copy_layout(p.outer, p.size * p.inner, t);
        } else if constexpr (std::is_same_v<P, ConcatProblem>) {
          std::int64_t numel = 1;
          for (std::int64_t d : p.out_shape) numel *= d;
          const std::int64_t last = p.out_shape.empty() ? 1 : p.out_shape.back();
          return copy_layout(last > 0 ? numel / last : 0, last, t);
        } else if constexpr (std::is_same_v<P, MoeGatherProblem>) {
          return copy_layout(p.rows, p.dim, t);
        } else if constexpr (std::is_same_v<P, MoeCombineProblem>) {
          CopyLayout c = copy_layout(p.tokens, p.dim, t);
          c.rpg = 1;  // a work-group sums one token
          return c;
        } else {
          return {};
        }
      },
      problem);
}

template <typename P>
constexpr bool is_copy = std::is_same_v<P, SliceProblem> || std::is_same_v<P, ConcatProblem> ||
                         std::is_same_v<P, MoeGatherProblem> || std::is_same_v<P, MoeCombineProblem>;

// The kernels index elements of a row, and whole small tensors, with 32-bit ints.
std::string int_range_check(const char* what, std::int64_t v) {
  if (v >= (std::int64_t{1} << 31))
    return std::string(what) + "=" + std::to_string(v) + " exceeds the kernel's 32-bit indices";
  return {};
}

const char* float_name(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f8e4m3: return "f8e4m3";
    case DType::f8e5m2: return "f8e5m2";
    case DType::ue8m0: return "ue8m0";
    default: return "unsupported";
  }
}

std::string dtype_check(const Problem& problem) {
  auto is_f = [](DType d) { return is_float(d); };
  return std::visit(
      [&](const auto& p) -> std::string {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, GemmFp8Problem>) {
          if (!is_fp8(p.a_dtype) || !is_fp8(p.b_dtype)) return "operands must be f8e4m3 or f8e5m2";
          if (!is_scale_dtype(p.a_scale_dtype) || !is_scale_dtype(p.b_scale_dtype)) return "scales must be f32 or ue8m0";
          if (p.out_dtype != DType::f32 && p.out_dtype != DType::bf16) return "output must be f32 or bf16";
          if (p.k % 128 != 0) return "K=" + std::to_string(p.k) + " is not a multiple of 128";
        } else if constexpr (std::is_same_v<P, GemmProblem>) {
          if (!is_f(p.in_dtype) || !is_f(p.out_dtype)) return "operands must be f32, bf16 or f16";
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          if (!is_f(p.dtype)) return "dtype must be f32, bf16 or f16";
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          if (!is_f(p.dtype) || !is_f(p.weight_dtype)) return "dtypes must be f32, bf16 or f16";
        } else if constexpr (std::is_same_v<P, SiluMulProblem> || std::is_same_v<P, AddProblem>) {
          if (!is_f(p.dtype)) return "dtype must be f32, bf16 or f16";
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          if (!is_f(p.in_dtype) || !is_fp8(p.out_dtype) || !is_scale_dtype(p.scale_dtype))
            return "quantizes f32/bf16/f16 to f8e4m3/f8e5m2 with f32/ue8m0 scales";
          if (p.block.rows <= 0 || p.block.cols <= 0) return "block dimensions must be positive";
        } else if constexpr (std::is_same_v<P, DequantizeProblem>) {
          if (!is_fp8(p.in_dtype) || !is_f(p.out_dtype) || !is_scale_dtype(p.scale_dtype))
            return "dequantizes f8e4m3/f8e5m2 with f32/ue8m0 scales to f32/bf16/f16";
          if (p.block.rows <= 0 || p.block.cols <= 0) return "block dimensions must be positive";
        } else if constexpr (std::is_same_v<P, RopeProblem>) {
          if (!is_f(p.dtype)) return "dtype must be f32, bf16 or f16";
          if (p.rot <= 0 || p.rot % 2 != 0 || p.rot > p.dim)
            return "rot=" + std::to_string(p.rot) + " must be even, > 0 and <= dim=" + std::to_string(p.dim);
          return int_range_check("heads * dim", p.heads * p.dim);
        } else if constexpr (std::is_same_v<P, SliceProblem> || std::is_same_v<P, ConcatProblem> ||
                             std::is_same_v<P, MoeGatherProblem>) {
          if (*elem_type(p.dtype) == '\0') return "dtype " + std::string(dtype_name(p.dtype)) + " is not a tensor element type";
        } else if constexpr (std::is_same_v<P, MoeCombineProblem>) {
          if (!is_f(p.dtype)) return "dtype must be f32, bf16 or f16";
        } else if constexpr (std::is_same_v<P, MoeTopkProblem>) {
          if (p.experts <= 0 || p.groups <= 0 || p.experts % p.groups != 0 || p.top_groups <= 0 ||
              p.top_groups > p.groups || p.k <= 0 || p.k > p.top_groups * (p.experts / p.groups))
            return "experts=" + std::to_string(p.experts) + " groups=" + std::to_string(p.groups) +
                   " top_groups=" + std::to_string(p.top_groups) + " k=" + std::to_string(p.k) +
                   ": groups must divide experts, top_groups <= groups, 1 <= k <= the experts of top_groups groups";
          return int_range_check("tokens * experts", p.tokens * p.experts);
        } else if constexpr (std::is_same_v<P, MoeWeightsProblem>) {
          return int_range_check("tokens * experts", p.tokens * p.experts);
        } else if constexpr (std::is_same_v<P, MoePlanProblem>) {
          if (p.experts <= 0 || p.align <= 0) return "experts and align must be > 0";
          return int_range_check("3 * rows", 3 * p.rows);
        } else {
          static_assert(std::is_same_v<P, GemmFp8GroupedProblem>);
          if (!is_fp8(p.a_dtype) || !is_fp8(p.b_dtype)) return "operands must be f8e4m3 or f8e5m2";
          if (!is_scale_dtype(p.a_scale_dtype) || !is_scale_dtype(p.b_scale_dtype)) return "scales must be f32 or ue8m0";
          if (p.out_dtype != DType::f32 && p.out_dtype != DType::bf16) return "output must be f32 or bf16";
          if (p.k % 128 != 0) return "K=" + std::to_string(p.k) + " is not a multiple of 128";
          if (p.n % 128 != 0) return "N=" + std::to_string(p.n) + " is not a multiple of 128";
          if (p.groups <= 0 || p.align <= 0) return "groups and align must be > 0";
        }
        return {};
      },
      problem);
}

// ---- rendering --------------------------------------------------------------------------

class Defines {
 public:
  Defines& def(const std::string& name, const std::string& value) {
    text_ += "#define " + name + " " + value + "\n";
    return *this;
  }
  Defines& def(const std::string& name, std::int64_t value) { return def(name, std::to_string(value)); }
  std::string str() const { return text_; }

 private:
  std::string text_;
};

std::string_view source(std::string_view name) {
  for (const EmbeddedFile& f : embedded_sources())
    if (f.name == name) return f.text;
  throw Error(ErrorCode::Internal, "opencl: kernel source " + std::string(name) + " is not embedded in this build");
}

struct Renderer {
  const TileConfig& t;
  const Target& target;
  Defines d;
  std::string file;

  void operator()(const GemmFp8Problem& p) {
    d.def("GEMM_FP8", 1).def("A_FP8", float_name(p.a_dtype)).def("B_FP8", float_name(p.b_dtype))
        .def("SA", float_name(p.a_scale_dtype)).def("SB", float_name(p.b_scale_dtype));
    gemm_common({p.m, p.n, p.k, true}, p.out_dtype);
  }
  void operator()(const GemmProblem& p) {
    d.def("GEMM_FP8", 0).def("IN", float_name(p.in_dtype));
    gemm_common({p.m, p.n, p.k, false}, p.out_dtype);
  }
  void operator()(const GemmFp8GroupedProblem& p) {
    d.def("GEMM_FP8", 1).def("GROUPED", 1).def("GROUPS", p.groups).def("A_FP8", float_name(p.a_dtype))
        .def("B_FP8", float_name(p.b_dtype)).def("SA", float_name(p.a_scale_dtype)).def("SB", float_name(p.b_scale_dtype));
    gemm_common({p.m, p.n, p.k, true, p.align}, p.out_dtype);
  }
  void gemm_common(const GemmShape& s, DType out) {
    d.def("M", s.m).def("N", s.n).def("K", s.k).def("OUT", float_name(out));
    if (is_dot(s, t, target)) {
      d.def("BM", t.m).def("BN", t.n);
      file = "gemm_fp8_dot.cl";
      return;
    }
    const GemmDerived g = derive_gemm(t, target);
    d.def("BM", t.m).def("BN", t.n).def("TK", t.k).def("WG_M", g.wg_m).def("WG_N", g.wg_n);
    d.def("MR", g.mr).def("NR", g.nr).def("VEC", g.vec).def("ACC_LOCAL", g.acc_local ? 1 : 0);
    file = "gemm.cl";
  }
  void operator()(const AttentionProblem& p) {
    const AttentionDerived a = derive_attention(p, t, target);
    d.def("BATCH", p.batch).def("SQ", p.seq_q).def("SKV", p.seq_kv).def("HQ", p.heads_q).def("HKV", p.heads_kv);
    d.def("DK", p.head_dim).def("DV", p.head_dim_v).def("CAUSAL", p.causal ? 1 : 0);
    d.def("SCORE_SCALE", float_literal(p.scale * 1.4426950408889634));  // scale * log2(e)
    d.def("DTYPE", float_name(p.dtype));
    d.def("BQ", t.m).def("BKV", t.n).def("GH", t.k).def("RB", a.rb).def("VD", a.vd).def("LOCAL_SIZE", a.local_size);
    file = "attention.cl";
  }
  void operator()(const RmsNormProblem& p) {
    d.def("ROWS", p.rows).def("DIM", p.dim).def("EPS", float_literal(p.eps));
    d.def("DTYPE", float_name(p.dtype)).def("WDTYPE", float_name(p.weight_dtype)).def("LOCAL_SIZE", t.m);
    file = "rmsnorm.cl";
  }
  void operator()(const SiluMulProblem& p) {
    d.def("OP_SILU_MUL", 1).def("ROWS", p.rows).def("DIM", p.dim).def("DTYPE", float_name(p.dtype));
    d.def("LOCAL_SIZE", t.m).def("CHUNK", t.n);
    file = "elementwise.cl";
  }
  void operator()(const AddProblem& p) {
    d.def("OP_ADD", 1).def("NUMEL", p.numel).def("DTYPE", float_name(p.dtype));
    d.def("LOCAL_SIZE", t.m).def("CHUNK", t.n);
    file = "elementwise.cl";
  }
  void operator()(const QuantizeProblem& p) {
    d.def("ROWS", p.rows).def("COLS", p.cols).def("BR", p.block.rows).def("BC", p.block.cols);
    d.def("IN", float_name(p.in_dtype)).def("FP8_IS_E4M3", p.out_dtype == DType::f8e4m3 ? 1 : 0);
    d.def("SCALE_IS_UE8M0", p.scale_dtype == DType::ue8m0 ? 1 : 0).def("LOCAL_SIZE", t.m);
    file = "quantize.cl";
  }
  void operator()(const DequantizeProblem& p) {
    d.def("ROWS", p.rows).def("COLS", p.cols).def("BR", p.block.rows).def("BC", p.block.cols);
    d.def("FP8", float_name(p.in_dtype)).def("SCALE", float_name(p.scale_dtype)).def("OUT", float_name(p.out_dtype));
    d.def("LOCAL_SIZE", t.m).def("CHUNK", t.n);
    file = "dequantize.cl";
  }
  void operator()(const RopeProblem& p) {
    // The inverse frequencies as the CPU backend forms them (rope_inv_freq in double), exactly.
    std::string inv_freq = "{";
    for (std::int64_t i = 0; i < p.rot / 2; ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%a", i ? ", " : "",
                    rope_inv_freq(i, p.rot, p.theta, p.scaling));
      inv_freq += buf;
    }
    d.def("TOKENS", p.tokens).def("HEADS", p.heads).def("DIM", p.dim).def("ROT", p.rot);
    d.def("INV_FREQ", inv_freq + "}").def("DTYPE", float_name(p.dtype)).def("LOCAL_SIZE", t.m);
    file = "rope.cl";
  }
  void copy_common(const CopyLayout& c) {
    d.def("ROWS", c.rows).def("LAST", c.last).def("CW", c.cw).def("RPG", c.rpg).def("LOCAL_SIZE", t.m);
  }
  void operator()(const SliceProblem& p) {
    d.def("OP_SLICE", 1).def("ELEM", elem_type(p.dtype));
    d.def("SRC_ROW", p.in_axis * p.inner).def("SRC_SKIP", p.begin * p.inner);
    copy_common(copy_layout(Problem{p}, t));
    file = "layout.cl";
  }
  void operator()(const ConcatProblem& p) {
    const std::size_t rank = p.out_shape.size();
    const auto axis = static_cast<std::size_t>(p.axis);
    // Element strides of an input per output dimension; 0 where a size-1 dimension is
    // broadcast (never along the axis).
    auto strides = [&](const Shape& shape) {
      std::vector<std::int64_t> st(rank);
      std::int64_t step = 1;
      for (std::size_t i = rank; i-- > 0;) {
        st[i] = shape[i] == 1 && i != axis ? 0 : step;
        step *= shape[i];
      }
      return st;
    };
    auto braces = [](const std::vector<std::int64_t>& v) {
      std::string out = "{";
      for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
      return out + "}";
    };
    d.def("OP_CONCAT", 1).def("ELEM", elem_type(p.dtype)).def("RANK", static_cast<std::int64_t>(rank));
    d.def("AXIS", p.axis).def("A_AXIS", p.a_shape[axis]);
    d.def("OUT_DIMS", braces(p.out_shape)).def("A_STRIDES", braces(strides(p.a_shape))).def("B_STRIDES", braces(strides(p.b_shape)));
    copy_common(copy_layout(Problem{p}, t));
    file = "layout.cl";
  }
  void operator()(const MoeTopkProblem& p) {
    d.def("OP_MOE_TOPK", 1).def("TOKENS", p.tokens).def("EXPERTS", p.experts).def("K", p.k);
    d.def("GROUPS", p.groups).def("TOP_GROUPS", p.top_groups).def("LOCAL_SIZE", t.m);
    file = "moe.cl";
  }
  void operator()(const MoeWeightsProblem& p) {
    d.def("OP_MOE_WEIGHTS", 1).def("TOKENS", p.tokens).def("EXPERTS", p.experts).def("K", p.k);
    d.def("SCALE", float_literal(p.scale)).def("LOCAL_SIZE", t.m);
    file = "moe.cl";
  }
  void operator()(const MoePlanProblem& p) {
    d.def("OP_MOE_PLAN", 1).def("TOKENS", p.tokens).def("K", p.k).def("EXPERTS", p.experts);
    d.def("ALIGN", p.align).def("ROWS", p.rows).def("LOCAL_SIZE", t.m);
    file = "moe.cl";
  }
  void operator()(const MoeGatherProblem& p) {
    const CopyLayout c = copy_layout(Problem{p}, t);
    d.def("OP_MOE_GATHER", 1).def("TOKENS", p.tokens).def("ROWS", p.rows).def("DIM", p.dim);
    d.def("ELEM", elem_type(p.dtype)).def("CW", c.cw).def("RPG", c.rpg).def("LOCAL_SIZE", t.m);
    file = "moe.cl";
  }
  void operator()(const MoeCombineProblem& p) {
    const CopyLayout c = copy_layout(Problem{p}, t);
    d.def("OP_MOE_COMBINE", 1).def("TOKENS", p.tokens).def("K", p.k).def("ROWS", p.rows).def("DIM", p.dim);
    d.def("DTYPE", float_name(p.dtype)).def("CW", c.cw).def("LOCAL_SIZE", t.m);
    file = "moe.cl";
  }
};

std::size_t elementwise_groups(std::int64_t numel, const TileConfig& t) {
  return static_cast<std::size_t>(ceil_div(numel, static_cast<std::int64_t>(t.m) * t.n));
}

}  // namespace

TileConfig choose_tiles(const Problem& problem, const Target& target) {
  return std::visit(
      [&](const auto& p) -> TileConfig {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, GemmFp8GroupedProblem>) {
          return grouped_tiles(gemm_shape(problem), target);
        } else if constexpr (is_gemm<P>) {
          return gemm_tiles(gemm_shape(problem), target);
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          return attention_tiles(p, target);
        } else if constexpr (std::is_same_v<P, SiluMulProblem> || std::is_same_v<P, AddProblem> ||
                             std::is_same_v<P, DequantizeProblem> || is_copy<P>) {
          return streaming_tiles(target, true);
        } else {
          return streaming_tiles(target, false);
        }
      },
      problem);
}

std::size_t local_memory_bytes(const KernelSpec& spec, const Target& target) {
  return std::visit(
      [&](const auto& p) -> std::size_t {
        using P = std::decay_t<decltype(p)>;
        if constexpr (is_gemm<P>) {
          return gemm_local_bytes(gemm_shape(spec.problem), spec.tiles, target);
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          return attention_local_bytes(p, spec.tiles);
        } else if constexpr (std::is_same_v<P, RmsNormProblem> || std::is_same_v<P, QuantizeProblem>) {
          return static_cast<std::size_t>(std::max(spec.tiles.m, 0)) * 4;
        } else if constexpr (std::is_same_v<P, RopeProblem>) {
          return static_cast<std::size_t>(std::max<std::int64_t>(p.rot, 0)) * 4;  // cos and sin of rot/2 angles
        } else if constexpr (std::is_same_v<P, MoePlanProblem>) {
          return (static_cast<std::size_t>(std::max<std::int64_t>(p.experts, 0)) + static_cast<std::size_t>(std::max(spec.tiles.m, 0))) * 4;
        } else {
          return 0;
        }
      },
      spec.problem);
}

std::string check(const KernelSpec& spec, const Target& target) {
  if (std::string why = dtype_check(spec.problem); !why.empty()) return why;
  const TileConfig& t = spec.tiles;
  std::string why = std::visit(
      [&](const auto& p) -> std::string {
        using P = std::decay_t<decltype(p)>;
        if constexpr (is_gemm<P>) {
          return gemm_check(gemm_shape(spec.problem), t, target);
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          return attention_check(p, t, target);
        } else if constexpr (is_copy<P>) {
          if (std::string why = streaming_check(t, true); !why.empty()) return why;
          const CopyLayout c = copy_layout(spec.problem, t);
          if (std::string why = int_range_check("a row's elements", c.last); !why.empty()) return why;
          return int_range_check("rows", c.rows);
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          if (p.scale_dtype == DType::f32 && !target.correctly_rounded_divide)
            return "quantizing with f32 scales needs a correctly rounded division (x / s), which the "
                   "device does not offer (CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT)";
          return streaming_check(t, false);
        } else if constexpr (std::is_same_v<P, SiluMulProblem> || std::is_same_v<P, AddProblem> ||
                             std::is_same_v<P, DequantizeProblem>) {
          return streaming_check(t, true);
        } else {
          return streaming_check(t, false);
        }
      },
      spec.problem);
  if (!why.empty()) return why;

  const Launch l = launch(spec, target);
  const std::size_t wg = l.local[0] * l.local[1] * l.local[2];
  if (wg > target.max_work_group_size)
    return "a work-group of " + std::to_string(wg) + " work-items exceeds the device's " +
           std::to_string(target.max_work_group_size);
  for (int i = 0; i < l.dims; ++i)
    if (l.local[i] > target.max_work_item_sizes[i])
      return "a work-group " + std::to_string(l.local[i]) + " wide in dimension " + std::to_string(i) +
             " exceeds the device's " + std::to_string(target.max_work_item_sizes[i]);
  const std::size_t local = local_memory_bytes(spec, target);
  if (local > target.local_mem_bytes)
    return "tiles " + std::to_string(t.m) + "x" + std::to_string(t.n) + "x" + std::to_string(t.k) + " need " +
           kib(local) + " of local memory; the device has " + kib(target.local_mem_bytes);
  return {};
}

std::string render(const KernelSpec& spec, const Target& target) {
  Renderer r{spec.tiles, target, {}, {}};
  std::visit(r, spec.problem);
  const Launch l = launch(spec, target);
  r.d.def("AC_ONE_WORK_ITEM", l.local[0] * l.local[1] * l.local[2] == 1 ? 1 : 0);
  std::string out = "// anychip OpenCL kernel: " + describe(spec) + "\n";
  out += r.d.str();
  out += "\n// ---- common.cl ----\n";
  out += source("common.cl");
  out += "\n// ---- " + r.file + " ----\n";
  out += source(r.file);
  return out;
}

Launch launch(const KernelSpec& spec, const Target& target) {
  const TileConfig& t = spec.tiles;
  Launch l;
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (is_gemm<P>) {
          const GemmShape s = gemm_shape(spec.problem);
          const GemmDerived g = derive_gemm(t, target);
          l.kernel = "gemm";
          l.dims = 2;
          l.local[0] = static_cast<std::size_t>(g.wg_n);
          l.local[1] = static_cast<std::size_t>(g.wg_m);
          l.global[0] = static_cast<std::size_t>(ceil_div(s.n, t.n)) * l.local[0];
          l.global[1] = static_cast<std::size_t>(ceil_div(s.m, t.m)) * l.local[1];
          l.scaled_inputs = {s.fp8, s.fp8};
          if (s.align > 0) l.scaled_inputs.push_back(false);  // the group operand
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          const AttentionDerived a = derive_attention(p, t, target);
          const std::int64_t groups = p.batch * p.heads_kv * ((p.heads_q / p.heads_kv) / t.k) * ceil_div(p.seq_q, t.m);
          l.kernel = "attention";
          l.local[0] = static_cast<std::size_t>(a.local_size);
          l.global[0] = static_cast<std::size_t>(groups) * l.local[0];
          l.scaled_inputs = {false, false, false};
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          l.kernel = "rmsnorm";
          l.local[0] = static_cast<std::size_t>(t.m);
          l.global[0] = static_cast<std::size_t>(p.rows) * l.local[0];
          l.scaled_inputs = {false, false};
        } else if constexpr (std::is_same_v<P, SiluMulProblem>) {
          l.kernel = "silu_mul";
          l.local[0] = static_cast<std::size_t>(t.m);
          l.global[0] = elementwise_groups(p.rows * p.dim, t) * l.local[0];
          l.scaled_inputs = {false};
        } else if constexpr (std::is_same_v<P, AddProblem>) {
          l.kernel = "add";
          l.local[0] = static_cast<std::size_t>(t.m);
          l.global[0] = elementwise_groups(p.numel, t) * l.local[0];
          l.scaled_inputs = {false, false};
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          l.kernel = "quantize_fp8";
          l.dims = 2;
          l.local[0] = static_cast<std::size_t>(t.m);
          l.global[0] = static_cast<std::size_t>(scale_cols(p.cols, p.block)) * l.local[0];
          l.global[1] = static_cast<std::size_t>(scale_rows(p.rows, p.block));
          l.scaled_inputs = {false};
          l.scaled_output = true;
        } else if constexpr (std::is_same_v<P, DequantizeProblem>) {
          l.kernel = "dequantize";
          l.local[0] = static_cast<std::size_t>(t.m);
          l.global[0] = elementwise_groups(p.rows * p.cols, t) * l.local[0];
          l.scaled_inputs = {true};
        } else if constexpr (std::is_same_v<P, RopeProblem>) {
          l.kernel = "rope";
          l.local[0] = static_cast<std::size_t>(t.m);
          l.global[0] = static_cast<std::size_t>(std::max<std::int64_t>(p.tokens, 1)) * l.local[0];
          l.scaled_inputs = {false, false};
        } else if constexpr (is_copy<P>) {
          const CopyLayout c = copy_layout(spec.problem, t);
          l.kernel = op_name(spec.problem);
          l.dims = 2;
          l.local[0] = static_cast<std::size_t>(t.m);
          l.global[0] = static_cast<std::size_t>(std::max<std::int64_t>(ceil_div(c.last, c.cw), 1)) * l.local[0];
          l.global[1] = static_cast<std::size_t>(std::max<std::int64_t>(ceil_div(c.rows, c.rpg), 1));
          l.scaled_inputs.assign(std::is_same_v<P, SliceProblem> ? 1 : std::is_same_v<P, MoeCombineProblem> ? 3 : 2, false);
        } else if constexpr (std::is_same_v<P, MoeTopkProblem> || std::is_same_v<P, MoeWeightsProblem>) {
          l.kernel = op_name(spec.problem);
          l.local[0] = static_cast<std::size_t>(t.m);
          l.global[0] = static_cast<std::size_t>(std::max<std::int64_t>(ceil_div(p.tokens, t.m), 1)) * l.local[0];
          l.scaled_inputs = {false, false};
        } else if constexpr (std::is_same_v<P, MoePlanProblem>) {
          l.kernel = "moe_plan";
          l.local[0] = l.global[0] = static_cast<std::size_t>(t.m);  // one work-group
          l.scaled_inputs = {false};
        } else {
          static_assert(sizeof(P) == 0, "an op without an OpenCL launch");
        }
      },
      spec.problem);
  return l;
}

}  // namespace anychip::kernels::opencl
