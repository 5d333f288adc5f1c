// Chip descriptions: the JSON schema, its validation, the built-in presets.
//
// The schema is one table (kFields) of every leaf key with its type, its bounds and where
// it lives in ChipDesc. parse_chip() walks the JSON against it (an unknown key, a wrong
// type or a value out of bounds is an error naming the file and the key path), then
// checks that every leaf was present; chip_to_json() writes the same table back. Adding a
// field to ChipDesc means adding one row here.
#include "simulator/chip.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "anychip/error.hpp"
#include "simulator/presets.hpp"

namespace anychip::sim {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

enum class Kind { Real, Int, Bool };

// The lower bound a value must respect.
enum class Bound { NonNegative, Positive, AtLeastOne };

struct Field {
  const char* path;  // dotted key path, e.g. "core.matrix.tile_m"
  Kind kind;
  Bound bound;
  void* (*member)(ChipDesc&);
};

#define ANYCHIP_FIELD(path, kind, bound, expr) \
  Field{path, Kind::kind, Bound::bound, [](ChipDesc& c) -> void* { return &c.expr; }}

// Every leaf of a chip description except name, description and sources, in ChipDesc's
// order. The numbers of a preset each need a source.
const Field kFields[] = {
    ANYCHIP_FIELD("clock_hz", Real, Positive, clock_hz),
    ANYCHIP_FIELD("cores", Int, AtLeastOne, cores),
    ANYCHIP_FIELD("core.matrix.fp8_flops_per_cycle", Real, NonNegative, core.matrix.fp8_flops_per_cycle),
    ANYCHIP_FIELD("core.matrix.bf16_flops_per_cycle", Real, NonNegative, core.matrix.bf16_flops_per_cycle),
    ANYCHIP_FIELD("core.matrix.f32_flops_per_cycle", Real, NonNegative, core.matrix.f32_flops_per_cycle),
    ANYCHIP_FIELD("core.matrix.tile_m", Int, AtLeastOne, core.matrix.tile_m),
    ANYCHIP_FIELD("core.matrix.tile_n", Int, AtLeastOne, core.matrix.tile_n),
    ANYCHIP_FIELD("core.matrix.tile_k", Int, AtLeastOne, core.matrix.tile_k),
    ANYCHIP_FIELD("core.matrix.issue_cycles", Int, NonNegative, core.matrix.issue_cycles),
    ANYCHIP_FIELD("core.matrix.native_ue8m0_scales", Bool, NonNegative, core.matrix.native_ue8m0_scales),
    ANYCHIP_FIELD("core.vector.lanes", Int, AtLeastOne, core.vector.lanes),
    ANYCHIP_FIELD("core.vector.add_cycles", Real, NonNegative, core.vector.add_cycles),
    ANYCHIP_FIELD("core.vector.mul_cycles", Real, NonNegative, core.vector.mul_cycles),
    ANYCHIP_FIELD("core.vector.fma_cycles", Real, NonNegative, core.vector.fma_cycles),
    ANYCHIP_FIELD("core.vector.max_cycles", Real, NonNegative, core.vector.max_cycles),
    ANYCHIP_FIELD("core.vector.exp_cycles", Real, NonNegative, core.vector.exp_cycles),
    ANYCHIP_FIELD("core.vector.div_cycles", Real, NonNegative, core.vector.div_cycles),
    ANYCHIP_FIELD("core.vector.convert_cycles", Real, NonNegative, core.vector.convert_cycles),
    ANYCHIP_FIELD("core.vector.issue_cycles", Int, NonNegative, core.vector.issue_cycles),
    ANYCHIP_FIELD("core.dma.bytes_per_cycle", Real, Positive, core.dma.bytes_per_cycle),
    ANYCHIP_FIELD("core.dma.issue_cycles", Int, NonNegative, core.dma.issue_cycles),
    ANYCHIP_FIELD("core.scratchpad_bytes", Int, AtLeastOne, core.scratchpad_bytes),
    ANYCHIP_FIELD("core.accumulator_bytes", Int, AtLeastOne, core.accumulator_bytes),
    ANYCHIP_FIELD("l2_bytes", Int, NonNegative, l2_bytes),
    ANYCHIP_FIELD("l2_bytes_per_s", Real, Positive, l2_bytes_per_s),
    ANYCHIP_FIELD("hbm_bytes", Int, AtLeastOne, hbm_bytes),
    ANYCHIP_FIELD("hbm_bytes_per_s", Real, Positive, hbm_bytes_per_s),
    ANYCHIP_FIELD("hbm_latency_ns", Real, NonNegative, hbm_latency_ns),
};
#undef ANYCHIP_FIELD

// The nested objects of the schema.
const char* const kObjects[] = {"core", "core.matrix", "core.vector", "core.dma"};

const Field* find_field(std::string_view path) {
  for (const Field& f : kFields)
    if (path == f.path) return &f;
  return nullptr;
}

bool is_object_path(std::string_view path) {
  return std::find(std::begin(kObjects), std::end(kObjects), path) != std::end(kObjects);
}

// A JSON value as the message shows it, shortened.
std::string shown(const Json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

class Parser {
 public:
  Parser(std::string_view where, bool require_sources)
      : where_(where), require_sources_(require_sources) {}

  ChipDesc parse(std::string_view text) {
    Json root;
    try {
      root = Json::parse(text.begin(), text.end());
    } catch (const Json::parse_error& e) {
      fail(ErrorCode::ParseError, std::string("invalid JSON: ") + e.what());
    }
    if (!root.is_object()) fail(ErrorCode::ParseError, "expected a JSON object at the top level, got " + shown(root));

    ChipDesc chip;
    const Json* sources = nullptr;
    bool have_name = false;
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string& key = it.key();
      if (key == "name" || key == "description") {
        if (!it->is_string()) fail_key(key, "expected a string, got " + shown(*it));
        (key == "name" ? chip.name : chip.description) = it->get<std::string>();
        have_name = have_name || key == "name";
      } else if (key == "sources") {
        if (!it->is_object()) fail_key(key, "expected an object (key path -> citation), got " + shown(*it));
        sources = &*it;
      } else {
        walk(chip, key, *it);
      }
    }
    if (!have_name) fail_key("name", "missing");
    if (chip.name.empty()) fail_key("name", "must not be empty");
    for (const Field& f : kFields)
      if (!seen_.count(f.path)) fail_key(f.path, "missing");

    if (sources) {
      for (auto it = sources->begin(); it != sources->end(); ++it) {
        const std::string path = "sources." + it.key();
        if (!find_field(it.key()))
          fail_key(path, "names no number of the chip description");
        if (!it->is_string() || it->get<std::string>().empty())
          fail_key(path, "expected a non-empty string (a citation or \"assumption: ...\"), got " + shown(*it));
        chip.sources[it.key()] = it->get<std::string>();
      }
    }
    if (require_sources_) {
      for (const Field& f : kFields)
        if (!chip.sources.count(f.path))
          fail_key(f.path, "has no source: every value of a preset needs \"sources\": {\"" +
                               std::string(f.path) + "\": \"<public source>\" or \"assumption: ...\"}");
    }
    return chip;
  }

 private:
  void walk(ChipDesc& chip, const std::string& path, const Json& value) {
    if (const Field* f = find_field(path)) {
      set(chip, *f, value);
      seen_.insert(path);
      return;
    }
    if (!is_object_path(path)) fail_key(path, "unknown key");
    if (!value.is_object()) fail_key(path, "expected an object, got " + shown(value));
    seen_.insert(path);
    for (auto it = value.begin(); it != value.end(); ++it) walk(chip, path + "." + it.key(), *it);
  }

  void set(ChipDesc& chip, const Field& f, const Json& v) {
    void* member = f.member(chip);
    if (f.kind == Kind::Bool) {
      if (!v.is_boolean()) fail_key(f.path, "expected true or false, got " + shown(v));
      *static_cast<bool*>(member) = v.get<bool>();
      return;
    }
    if (!v.is_number()) fail_key(f.path, "expected a number, got " + shown(v));
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail_key(f.path, "expected a finite number, got " + shown(v));
    if (f.kind == Kind::Int) {
      if (d != std::floor(d) || std::fabs(d) > 9007199254740992.0)
        fail_key(f.path, "expected an integer, got " + shown(v));
    }
    switch (f.bound) {
      case Bound::NonNegative:
        if (d < 0) fail_key(f.path, "must not be negative, got " + shown(v));
        break;
      case Bound::Positive:
        if (d <= 0) fail_key(f.path, "must be positive, got " + shown(v));
        break;
      case Bound::AtLeastOne:
        if (d < 1) fail_key(f.path, "must be at least 1, got " + shown(v));
        break;
    }
    if (f.kind == Kind::Int)
      *static_cast<std::int64_t*>(member) = v.is_number_integer() ? v.get<std::int64_t>() : static_cast<std::int64_t>(d);
    else
      *static_cast<double*>(member) = d;
  }

  [[noreturn]] void fail(ErrorCode code, const std::string& what) const {
    throw Error(code, std::string(where_) + ": " + what);
  }
  [[noreturn]] void fail_key(std::string_view path, const std::string& what) const {
    fail(ErrorCode::ParseError, "key " + std::string(path) + ": " + what);
  }

  std::string_view where_;
  bool require_sources_;
  std::set<std::string> seen_;
};

}  // namespace

double ChipDesc::peak_flops(DType operand) const {
  double per_cycle = 0;
  switch (operand) {
    case DType::f8e4m3:
    case DType::f8e5m2: per_cycle = core.matrix.fp8_flops_per_cycle; break;
    case DType::bf16:
    case DType::f16: per_cycle = core.matrix.bf16_flops_per_cycle; break;
    case DType::f32: per_cycle = core.matrix.f32_flops_per_cycle; break;
    default:
      throw Error(ErrorCode::InvalidArgument, "peak_flops: " + std::string(dtype_name(operand)) +
                                                  " is not a matrix operand dtype (f8e4m3, f8e5m2, bf16, f16, f32)");
  }
  return per_cycle * static_cast<double>(cores) * clock_hz;
}

ChipDesc parse_chip(std::string_view json_text, std::string_view where, bool require_sources) {
  return Parser(where, require_sources).parse(json_text);
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const detail::Preset& p : detail::embedded_presets()) names.emplace_back(p.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::string_view preset_json(std::string_view name) {
  for (const detail::Preset& p : detail::embedded_presets())
    if (p.name == name) return p.json;
  return {};
}

ChipDesc load_chip(std::string_view preset_or_path) {
  const std::string_view preset = preset_json(preset_or_path);
  if (!preset.empty()) return parse_chip(preset, std::string(preset_or_path) + ".json", true);

  const std::string path(preset_or_path);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::string names;
    for (const std::string& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::InvalidArgument, "chip \"" + path + "\": not a preset (" + names +
                                                ") and no readable file of that name");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::IoError, "chip \"" + path + "\": cannot read the file");
  return parse_chip(text.str(), path, false);
}

std::string chip_to_json(const ChipDesc& chip) {
  OrderedJson out;
  out["name"] = chip.name;
  out["description"] = chip.description;
  ChipDesc c = chip;  // Field::member hands out mutable pointers (it is shared with the parser)
  for (const Field& f : kFields) {
    OrderedJson* node = &out;
    std::string_view path = f.path;
    for (std::size_t dot; (dot = path.find('.')) != std::string_view::npos; path.remove_prefix(dot + 1))
      node = &(*node)[std::string(path.substr(0, dot))];
    OrderedJson& leaf = (*node)[std::string(path)];
    switch (f.kind) {
      case Kind::Bool: leaf = *static_cast<const bool*>(f.member(c)); break;
      case Kind::Int: leaf = *static_cast<const std::int64_t*>(f.member(c)); break;
      case Kind::Real: leaf = *static_cast<const double*>(f.member(c)); break;
    }
  }
  OrderedJson sources = OrderedJson::object();
  for (const Field& f : kFields) {  // in schema order, not alphabetical
    auto it = chip.sources.find(f.path);
    if (it != chip.sources.end()) sources[f.path] = it->second;
  }
  out["sources"] = sources;
  return out.dump(2) + "\n";
}

}  // namespace anychip::sim
