// Mapping KernelSpecs onto the build-time SPIR-V variants (level_zero_kernels.hpp).
//
// The derivation of tiles into #defines is the OpenCL renderer's: a spec's compile-time
// #defines are read off kernels::opencl::render() for a GPU target, less the shapes, and
// compared with each variant's. So a variant can never run a spec that its #defines were
// not derived for, and a change to the derivation shows up as a test failure naming the
// variant, rather than as a wrong answer on a device.
#include "kernels/level_zero/level_zero_kernels.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <variant>

#include "anychip/error.hpp"

namespace anychip::kernels::level_zero {
namespace {

constexpr Variant kVariants[] = {
#define AC_SPIRV_VARIANT(name, file, m, n, k, defines) {#name, file, {m, n, k, 1}, defines},
#include "kernels/level_zero/spirv_variants.def"
#undef AC_SPIRV_VARIANT
};

// The compiled form of a GPU target: the variants are built for narrow work-items.
Target gpu(const Target& target) {
  Target t = target;
  t.wide_work_items = false;
  return t;
}

ShapeArg i32(std::string_view name, std::int64_t v) { return {name, ShapeArg::Type::i32, v, 0}; }
ShapeArg u64(std::string_view name, std::int64_t v) { return {name, ShapeArg::Type::u64, v, 0}; }
ShapeArg f32(std::string_view name, double v) { return {name, ShapeArg::Type::f32, 0, static_cast<float>(v)}; }

// #defines the OpenCL renderer emits for shapes that the SPIR-V kernels do not read
// (attention's batch is implied by the launch grid).
bool unused_shape(const Problem& p, std::string_view name) {
  return std::holds_alternative<AttentionProblem>(p) && name == "BATCH";
}

struct Compiled {
  std::string file;     // "gemm.cl"
  std::string defines;  // "NAME=VALUE ..." in the renderer's order, shapes left out
};

// A GPU without limits: the derivation does not depend on them, and the renderer needs
// tiles that make sense for the problem, which its check() tells.
Target unlimited(const Target& target) {
  Target t = gpu(target);
  t.max_work_group_size = t.max_work_item_sizes[0] = t.max_work_item_sizes[1] = t.max_work_item_sizes[2] = 1 << 30;
  t.local_mem_bytes = std::size_t{1} << 40;
  t.correctly_rounded_divide = true;
  return t;
}

// What the SPIR-V for `spec` is compiled from, as the OpenCL renderer derives it; an
// empty file when the tiles do not fit the problem.
Compiled compiled_form(const KernelSpec& spec, const Target& target) {
  if (!kernels::opencl::check(spec, unlimited(target)).empty()) return {};
  const std::string text = kernels::opencl::render(spec, unlimited(target));
  std::vector<ShapeArg> shapes = shape_args(spec.problem);
  Compiled c;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    constexpr std::string_view def = "#define ", marker = "// ---- ";
    if (line.rfind(marker, 0) == 0 && line.size() > marker.size() + 8 && line.ends_with(".cl ----")) {
      // "// ---- gemm.cl ----" starts a file: common.cl, then the op's.
      c.file = std::string(line.substr(marker.size(), line.size() - marker.size() - 5));
      if (c.file == "common.cl") continue;
      break;
    }
    if (line.rfind(def, 0) != 0 || !c.file.empty()) continue;
    const std::string_view body = line.substr(def.size());
    const std::size_t space = body.find(' ');
    const std::string_view name = body.substr(0, space);
    const std::string_view value = space == std::string_view::npos ? "" : body.substr(space + 1);
    const bool is_shape = std::any_of(shapes.begin(), shapes.end(), [&](const ShapeArg& a) { return a.name == name; });
    if (is_shape || unused_shape(spec.problem, name)) continue;
    if (!c.defines.empty()) c.defines += ' ';
    c.defines += std::string(name) + "=" + std::string(value);
  }
  return c;
}

bool implements(const Variant& v, const Compiled& c) {
  return !c.file.empty() && v.file == c.file && v.defines == c.defines;
}

// The compile-time parameters of a problem that a variant must match, in words.
std::string wanted(const Problem& problem) {
  return std::visit(
      [](const auto& p) -> std::string {
        using P = std::decay_t<decltype(p)>;
        auto n = [](DType d) { return std::string(dtype_name(d)); };
        if constexpr (std::is_same_v<P, GemmFp8Problem>) {
          return "gemm_fp8 " + n(p.a_dtype) + " x " + n(p.b_dtype) + ", scales " + n(p.a_scale_dtype) + "/" +
                 n(p.b_scale_dtype) + ", out " + n(p.out_dtype);
        } else if constexpr (std::is_same_v<P, GemmProblem>) {
          return "gemm " + n(p.in_dtype) + " -> " + n(p.out_dtype);
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          return "attention " + n(p.dtype) + " with head_dim " + std::to_string(p.head_dim) + ", head_dim_v " +
                 std::to_string(p.head_dim_v);
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          return "rmsnorm " + n(p.dtype) + " with " + n(p.weight_dtype) + " weights";
        } else if constexpr (std::is_same_v<P, SiluMulProblem>) {
          return "silu_mul " + n(p.dtype);
        } else if constexpr (std::is_same_v<P, AddProblem>) {
          return "add " + n(p.dtype);
        } else if constexpr (std::is_same_v<P, QuantizeProblem>) {
          return "quantize_fp8 " + n(p.in_dtype) + " -> " + n(p.out_dtype) + " with " + n(p.scale_dtype) + " scales";
        } else if constexpr (std::is_same_v<P, DequantizeProblem>) {
          return "dequantize " + n(p.in_dtype) + " with " + n(p.scale_dtype) + " scales -> " + n(p.out_dtype);
        } else {
          return std::string(op_name(Problem{p}));
        }
      },
      problem);
}

// A shape argument's value; floats exactly, as the OpenCL renderer's literals ("0x1.6a09e6p-4").
std::string value_text(const ShapeArg& a) {
  if (a.type != ShapeArg::Type::f32) return std::to_string(a.i);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", static_cast<double>(a.f));
  return buf;
}

std::string tiles_text(const TileConfig& t) {
  return std::to_string(t.m) + "x" + std::to_string(t.n) + "x" + std::to_string(t.k);
}

// The variants built for the problem's op (their names start with the op's name).
std::string variants_of(const Problem& problem) {
  const std::string op(op_name(problem));
  std::string s;
  for (const Variant& v : kVariants) {
    const bool ours = v.name.rfind(op + "_", 0) == 0 && !(op == "gemm" && v.name.rfind("gemm_fp8_", 0) == 0);
    if (ours) s += (s.empty() ? "" : ", ") + std::string(v.name);
  }
  return s.empty() ? "none" : s;
}

}  // namespace

std::span<const Variant> variants() { return kVariants; }

std::vector<ShapeArg> shape_args(const Problem& problem) {
  return std::visit(
      [](const auto& p) -> std::vector<ShapeArg> {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, GemmFp8Problem> || std::is_same_v<P, GemmProblem>) {
          return {i32("M", p.m), i32("N", p.n), i32("K", p.k)};
        } else if constexpr (std::is_same_v<P, AttentionProblem>) {
          // The kernels take softmax in base 2: SCALE * log2(e), rounded to float as the
          // OpenCL renderer's literal is.
          return {i32("SQ", p.seq_q),      i32("SKV", p.seq_kv),       i32("HQ", p.heads_q),
                  i32("HKV", p.heads_kv), i32("CAUSAL", p.causal ? 1 : 0), f32("SCORE_SCALE", p.scale * 1.4426950408889634)};
        } else if constexpr (std::is_same_v<P, RmsNormProblem>) {
          return {i32("ROWS", p.rows), i32("DIM", p.dim), f32("EPS", p.eps)};
        } else if constexpr (std::is_same_v<P, SiluMulProblem>) {
          return {i32("ROWS", p.rows), i32("DIM", p.dim)};
        } else if constexpr (std::is_same_v<P, AddProblem>) {
          return {u64("NUMEL", p.numel)};
        } else if constexpr (std::is_same_v<P, QuantizeProblem> || std::is_same_v<P, DequantizeProblem>) {
          return {i32("ROWS", p.rows), i32("COLS", p.cols), i32("BR", p.block.rows), i32("BC", p.block.cols)};
        } else {
          return {};  // ops without a Level Zero kernel (compiled_form says so)
        }
      },
      problem);
}

const Variant* find_variant(const KernelSpec& spec, const Target& target, std::string* why) {
  const Compiled c = compiled_form(spec, target);
  for (const Variant& v : kVariants)
    if (v.tiles.m == spec.tiles.m && v.tiles.n == spec.tiles.n && v.tiles.k == spec.tiles.k && implements(v, c))
      return &v;
  if (why) {
    bool any_tiles = false;
    for (const Variant& v : kVariants) {
      KernelSpec s = spec;
      s.tiles = v.tiles;
      if (implements(v, compiled_form(s, target))) any_tiles = true;
    }
    *why = any_tiles ? "no SPIR-V variant of " + wanted(spec.problem) + " with tiles " + tiles_text(spec.tiles) +
                           " (built: " + variants_of(spec.problem) + ")"
                     : "no SPIR-V variant for " + wanted(spec.problem) + " (built: " + variants_of(spec.problem) + ")";
  }
  return nullptr;
}

TileConfig choose_tiles(const Problem& problem, const Target& target) {
  // GEMMs: the smallest tile m that covers M (decode takes the short tiles), else the
  // tallest. Everything else: the first that fits.
  std::int64_t rows = 0;
  if (const auto* g = std::get_if<GemmFp8Problem>(&problem)) rows = g->m;
  if (const auto* g = std::get_if<GemmProblem>(&problem)) rows = g->m;
  const Variant* best = nullptr;
  for (const Variant& v : kVariants) {
    const KernelSpec spec{problem, v.tiles};
    if (!implements(v, compiled_form(spec, target)) || !kernels::opencl::check(spec, gpu(target)).empty()) continue;
    if (!best) {
      best = &v;
      if (rows == 0) break;
      continue;
    }
    const bool covers = v.tiles.m >= rows, best_covers = best->tiles.m >= rows;
    if (covers ? (!best_covers || v.tiles.m < best->tiles.m) : (!best_covers && v.tiles.m > best->tiles.m)) best = &v;
  }
  return best ? best->tiles : kernels::opencl::choose_tiles(problem, gpu(target));
}

std::string check(const KernelSpec& spec, const Target& target) {
  if (std::string why = kernels::opencl::check(spec, gpu(target)); !why.empty()) return why;
  for (const ShapeArg& a : shape_args(spec.problem))
    if (a.type == ShapeArg::Type::i32 &&
        (a.i < std::numeric_limits<std::int32_t>::min() || a.i > std::numeric_limits<std::int32_t>::max()))
      return std::string(a.name) + "=" + std::to_string(a.i) + " does not fit the kernels' 32-bit shape arguments";
  std::string why;
  return find_variant(spec, target, &why) ? std::string() : why;
}

std::string kernel_name(const Variant& variant) {
  if (variant.file == "elementwise.cl") return variant.defines.find("OP_ADD=1") != std::string_view::npos ? "add" : "silu_mul";
  if (variant.file == "quantize.cl") return "quantize_fp8";
  std::string_view stem = variant.file.substr(0, variant.file.find('.'));
  return std::string(stem);
}

std::string render(const KernelSpec& spec, const Target& target) {
  std::string why;
  const Variant* v = find_variant(spec, target, &why);
  if (!v) throw Error(ErrorCode::Unsupported, "level_zero: " + describe(spec) + ": " + why);
  std::string out = "// anychip Level Zero kernel: " + describe(spec) + "\n";
  out += "// SPIR-V module " + std::string(v->name) + ".spv, compiled at build time (cmake/spirv.cmake)\n";
  out += "// from the OpenCL C below; shapes are kernel arguments:";
  for (const ShapeArg& a : shape_args(spec.problem)) {
    out += ' ';
    out += a.name;
    out += '=';
    out += value_text(a);
  }
  out += "\n#define inline static inline\n#define AC_SHAPE_ARGS 1\n";
  std::string_view d = v->defines;
  while (!d.empty()) {
    const std::size_t space = d.find(' ');
    const std::string_view item = d.substr(0, space);
    const std::size_t eq = item.find('=');
    out += "#define " + std::string(item.substr(0, eq)) + " " + std::string(item.substr(eq + 1)) + "\n";
    d = space == std::string_view::npos ? std::string_view() : d.substr(space + 1);
  }
  for (const std::string_view file : {std::string_view("common.cl"), v->file}) {
    out += "\n// ---- " + std::string(file) + " ----\n";
    bool found = false;
    for (const EmbeddedFile& f : kernels::opencl::embedded_sources())
      if (f.name == file) {
        out += f.text;
        found = true;
      }
    if (!found) throw Error(ErrorCode::Internal, "level_zero: kernel source " + std::string(file) + " is not embedded");
  }
  return out;
}

std::string variant_line(const KernelSpec& spec, const Target& target) {
  const Compiled c = compiled_form(spec, target);
  const TileConfig& t = spec.tiles;
  return "AC_SPIRV_VARIANT(<name>, \"" + c.file + "\", " + std::to_string(t.m) + ", " + std::to_string(t.n) + ", " +
         std::to_string(t.k) + ", \"" + c.defines + "\")";
}

Launch launch(const KernelSpec& spec, const Target& target) {
  const kernels::opencl::Launch cl = kernels::opencl::launch(spec, gpu(target));
  Launch l;
  l.kernel = cl.kernel;
  for (int d = 0; d < 3; ++d) {
    l.group_size[d] = static_cast<std::uint32_t>(cl.local[d]);
    l.group_count[d] = d < cl.dims ? static_cast<std::uint32_t>(cl.global[d] / cl.local[d]) : 1;
  }
  l.scaled_inputs = cl.scaled_inputs;
  l.scaled_output = cl.scaled_output;
  l.shape_args = shape_args(spec.problem);
  return l;
}

}  // namespace anychip::kernels::level_zero
