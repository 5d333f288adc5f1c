#include "tools/anychip/suite_format.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace anychip::cli::suite {

using nlohmann::json;

namespace {

bool is_word(std::string_view s) {
  if (s.empty()) return false;
  for (char ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_')) return false;
  return true;
}

// Ids and names: letters, digits, '_', '.', '-' (safe in JUnit names, file names, shells).
bool is_id(std::string_view s) {
  if (s.empty() || s.size() > 120) return false;
  for (char ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-'))
      return false;
  return true;
}

std::string shown(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

const char* type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::binary: return "binary data";
    case json::value_t::discarded: return "nothing";
    default: return "a number";
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// ----- one case -----

std::optional<BlockShape> parse_block(std::string_view s) {
  const std::size_t x = s.find('x');
  if (x == std::string_view::npos || x == 0 || x + 1 == s.size()) return std::nullopt;
  auto number = [](std::string_view t) -> std::int64_t {
    std::int64_t v = 0;
    for (char ch : t) {
      if (ch < '0' || ch > '9' || v > (1 << 24)) return -1;
      v = v * 10 + (ch - '0');
    }
    return v;
  };
  BlockShape b{number(s.substr(0, x)), number(s.substr(x + 1))};
  if (b.rows <= 0 || b.cols <= 0) return std::nullopt;
  return b;
}

DType read_dtype(const JsonReader& r, const json& j, const std::string& path) {
  std::string name = r.string(j, path);
  if (auto d = dtype_from_name(name)) return *d;
  std::vector<std::string> names;
  for (DType d : kAllDTypes) names.emplace_back(dtype_name(d));
  r.fail(path, "unknown dtype \"" + name + "\" (dtypes: " + join(names) + ")");
}

BlockShape read_block(const JsonReader& r, const json& j, const std::string& path) {
  std::string text = r.string(j, path);
  if (auto b = parse_block(text)) return *b;
  r.fail(path, "expected a block shape ROWSxCOLS such as \"1x128\", got \"" + text + "\"");
}

Shape read_shape(const JsonReader& r, const json& j, const std::string& path) {
  const json& a = r.array(j, path);
  Shape shape;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::int64_t d = r.integer(a[i], JsonReader::index_path(path, i));
    if (d <= 0) r.fail(JsonReader::index_path(path, i), "expected a dimension > 0, got " + std::to_string(d));
    shape.push_back(d);
  }
  return shape;
}

TensorType read_tensor_type(const JsonReader& r, const json& j, const std::string& path) {
  r.expect_object(j, path, {"dtype", "shape"}, {"scale"});
  TensorType t;
  t.dtype = read_dtype(r, j.at("dtype"), JsonReader::key_path(path, "dtype"));
  t.shape = read_shape(r, j.at("shape"), JsonReader::key_path(path, "shape"));
  if (j.contains("scale")) {
    const std::string sp = JsonReader::key_path(path, "scale");
    r.expect_object(j.at("scale"), sp, {"block", "dtype"});
    t.scale = ScaleLayout{read_block(r, j.at("scale").at("block"), JsonReader::key_path(sp, "block")),
                          read_dtype(r, j.at("scale").at("dtype"), JsonReader::key_path(sp, "dtype"))};
  }
  try {
    ir::verify_type(t, "this tensor");
  } catch (const Error& e) {
    r.fail(path, e.what());
  }
  return t;
}

ir::AttrValue read_attr(const JsonReader& r, const json& j, const std::string& path, ir::AttrKind kind) {
  switch (kind) {
    case ir::AttrKind::Int: return r.integer(j, path);
    case ir::AttrKind::Float: return r.number(j, path);
    case ir::AttrKind::Bool: return r.boolean(j, path);
    case ir::AttrKind::Dtype: return read_dtype(r, j, path);
    case ir::AttrKind::Block: return read_block(r, j, path);
    case ir::AttrKind::Shape: return read_shape(r, j, path);
  }
  r.fail(path, "attribute of an unknown kind");
}

std::vector<std::string> read_devices(const JsonReader& r, const json& j, const std::string& path) {
  const json& a = r.array(j, path);
  if (a.empty()) r.fail(path, "expected at least one device");
  std::vector<std::string> devices;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string p = JsonReader::index_path(path, i);
    std::string d = r.string(a[i], p);
    if (d.empty() || d.find_first_of(" \t\r\n") != std::string::npos)
      r.fail(p, "expected a device string such as \"cpu\" or \"sim:npu-ue8m0\", got " + shown(a[i]));
    for (const auto& seen : devices)
      if (seen == d) r.fail(p, "device \"" + d + "\" is listed twice");
    devices.push_back(std::move(d));
  }
  return devices;
}

Case read_case(JsonReader& r, const json& j, const std::string& path, const Suite& suite) {
  r.set_context("");
  r.expect_object(j, path, {"id", "op", "inputs"},
                  {"attrs", "max_rel_err", "cycle_rel_tol", "devices", "description"});
  Case c;
  c.path = path;
  c.id = r.string(j.at("id"), JsonReader::key_path(path, "id"));
  if (!is_id(c.id))
    r.fail(JsonReader::key_path(path, "id"),
           "expected an id of letters, digits, '_', '.' and '-' (at most 120), got " + shown(j.at("id")));
  r.set_context(" (case \"" + c.id + "\")");

  const std::string op_path = JsonReader::key_path(path, "op");
  c.op = r.string(j.at("op"), op_path);
  std::optional<ir::OpKind> kind = ir::op_from_name(c.op);
  if (!kind) {
    std::vector<std::string> names;
    for (const ir::OpInfo& info : ir::all_ops())
      if (info.category == ir::OpCategory::Kernel) names.emplace_back(info.name);
    r.fail(op_path, "unknown op \"" + c.op + "\" (ops: " + join(names) + ")");
  }
  const ir::OpInfo& info = ir::op_info(*kind);
  if (info.category != ir::OpCategory::Kernel)
    r.fail(op_path, "op " + c.op + " is a view: no kernel runs, so there is nothing to check");

  // Operands and attributes come from the op table (anychip/ops.def), so a new op needs
  // no change here.
  const std::string in_path = JsonReader::key_path(path, "inputs");
  {
    std::vector<std::string_view> operands(info.operands.begin(), info.operands.end());
    const json& in = j.at("inputs");
    if (!in.is_object()) r.fail(in_path, std::string("expected an object, got ") + type_name(in));
    for (auto& [key, value] : in.items()) {
      bool known = false;
      for (auto o : operands) known = known || o == key;
      if (!known)
        r.fail(JsonReader::key_path(in_path, key),
               "unknown operand of " + c.op + " (operands: " +
                   join(std::vector<std::string>(operands.begin(), operands.end())) + ")");
    }
    for (auto o : operands)
      if (!in.contains(std::string(o))) r.fail(JsonReader::key_path(in_path, o), "missing");
  }
  ir::NamedAttrs attrs;
  if (j.contains("attrs")) {
    const std::string ap = JsonReader::key_path(path, "attrs");
    const json& a = j.at("attrs");
    if (!a.is_object()) r.fail(ap, std::string("expected an object, got ") + type_name(a));
    for (auto& [key, value] : a.items()) {
      const ir::AttrSpec* spec = nullptr;
      for (const ir::AttrSpec& s : info.attrs)
        if (s.name == key) spec = &s;
      if (!spec) {
        std::vector<std::string> names;
        for (const ir::AttrSpec& s : info.attrs) names.emplace_back(s.name);
        r.fail(JsonReader::key_path(ap, key),
               "unknown attribute of " + c.op + " (attributes: " + (names.empty() ? "none" : join(names)) + ")");
      }
      attrs.emplace_back(key, read_attr(r, value, JsonReader::key_path(ap, key), spec->kind));
    }
  }

  ir::Graph g("suite_case");
  std::vector<ir::ValueId> inputs;
  for (auto o : info.operands) {
    const std::string op_in = JsonReader::key_path(in_path, o);
    TensorType t = read_tensor_type(r, j.at("inputs").at(std::string(o)), op_in);
    try {
      inputs.push_back(g.input(std::string(o), t));
    } catch (const Error& e) {
      r.fail(op_in, e.what());
    }
  }
  try {
    g.output(g.add(*kind, inputs, attrs, "out"));
    ir::verify(g);
  } catch (const Error& e) {
    r.fail(path, e.what());
  }
  c.graph = std::move(g);

  if (j.contains("max_rel_err")) {
    const std::string p = JsonReader::key_path(path, "max_rel_err");
    const double v = r.number(j.at("max_rel_err"), p);
    if (v < 0) r.fail(p, "expected a relative error >= 0, got " + shown(j.at("max_rel_err")));
    c.max_rel_err = v;
  }
  c.cycle_rel_tol = suite.cycle_rel_tol;
  if (j.contains("cycle_rel_tol")) {
    const std::string p = JsonReader::key_path(path, "cycle_rel_tol");
    c.cycle_rel_tol = r.number(j.at("cycle_rel_tol"), p);
    if (c.cycle_rel_tol < 0) r.fail(p, "expected a relative tolerance >= 0, got " + shown(j.at("cycle_rel_tol")));
  }
  if (j.contains("description")) r.string(j.at("description"), JsonReader::key_path(path, "description"));
  c.devices = j.contains("devices") ? read_devices(r, j.at("devices"), JsonReader::key_path(path, "devices"))
                                    : suite.devices;
  r.set_context("");
  return c;
}

}  // namespace

// ----- JsonReader -----

std::string JsonReader::key_path(const std::string& path, std::string_view key) {
  if (is_word(key)) return path.empty() ? std::string(key) : path + "." + std::string(key);
  return path + "[" + json(std::string(key)).dump(-1, ' ', false, json::error_handler_t::replace) + "]";
}

std::string JsonReader::index_path(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

void JsonReader::fail(const std::string& path, const std::string& message) const {
  throw SuiteError(file_ + ": " + (path.empty() ? std::string("top level") : "key " + path) + ": " +
                   message + context_);
}

void JsonReader::wrong_type(const json& j, const std::string& path, const char* expected) const {
  fail(path, std::string("expected ") + expected + ", got " + shown(j));
}

void JsonReader::expect_object(const json& j, const std::string& path,
                               std::initializer_list<std::string_view> required,
                               std::initializer_list<std::string_view> optional) const {
  if (!j.is_object()) wrong_type(j, path, "an object");
  for (auto& [key, value] : j.items()) {
    bool known = false;
    for (auto k : required) known = known || k == key;
    for (auto k : optional) known = known || k == key;
    if (!known) {
      std::vector<std::string> allowed;
      for (auto k : required) allowed.emplace_back(k);
      for (auto k : optional) allowed.emplace_back(k);
      fail(key_path(path, key), "unknown key (allowed: " + join(allowed) + ")");
    }
  }
  for (auto k : required)
    if (!j.contains(std::string(k))) fail(key_path(path, k), "missing");
}

const json& JsonReader::array(const json& j, const std::string& path) const {
  if (!j.is_array()) wrong_type(j, path, "an array");
  return j;
}

std::string JsonReader::string(const json& j, const std::string& path) const {
  if (!j.is_string()) wrong_type(j, path, "a string");
  return j.get<std::string>();
}

bool JsonReader::boolean(const json& j, const std::string& path) const {
  if (!j.is_boolean()) wrong_type(j, path, "a boolean");
  return j.get<bool>();
}

double JsonReader::number(const json& j, const std::string& path) const {
  if (!j.is_number()) wrong_type(j, path, "a number");
  const double v = j.get<double>();
  if (!std::isfinite(v)) wrong_type(j, path, "a finite number");
  return v;
}

std::int64_t JsonReader::integer(const json& j, const std::string& path) const {
  if (j.is_number_integer() && !(j.is_number_unsigned() && j.get<std::uint64_t>() > INT64_MAX))
    return j.get<std::int64_t>();
  wrong_type(j, path, "an integer");
}

std::uint64_t JsonReader::unsigned_integer(const json& j, const std::string& path) const {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(j.get<std::int64_t>());
  wrong_type(j, path, "an integer >= 0");
}

// ----- files -----

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw SuiteError(path + ": cannot read: is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SuiteError(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw SuiteError(path + ": cannot read: " + std::strerror(errno));
  return s.str();
}

void write_file_atomically(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp_name = ".";  // hidden, beside the target: same file system, so rename is atomic
  tmp_name += target.filename().string();
  tmp_name += ".tmp.";
  tmp_name += std::to_string(::getpid());
  const fs::path tmp = dir / tmp_name;
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw SuiteError(path + ": cannot write " + tmp.string() + ": " + std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fflush(f) == 0 && ok;
  ok = ::fsync(::fileno(f)) == 0 && ok;
  const int saved = errno;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw SuiteError(path + ": cannot write " + tmp.string() + ": " + std::strerror(saved ? saved : errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw SuiteError(path + ": cannot rename " + tmp.string() + " into place: " + std::strerror(err));
  }
}

json parse_json_strictly(const std::string& text, const std::string& file) {
  // The parser callback sees every key; a stack of frames gives each its path.
  struct Frame {
    bool object = false;
    std::set<std::string> keys;
    std::string key;        // objects: the key being read
    std::size_t index = 0;  // arrays: elements completed so far
  };
  std::vector<Frame> frames;
  std::optional<std::string> duplicate;
  auto path_of = [&](std::size_t depth) {
    std::string p;
    for (std::size_t i = 0; i < depth; ++i)
      p = frames[i].object ? JsonReader::key_path(p, frames[i].key) : JsonReader::index_path(p, frames[i].index);
    return p;
  };
  auto element_done = [&] {
    if (!frames.empty() && !frames.back().object) ++frames.back().index;
  };
  json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: frames.push_back({true, {}, {}, 0}); break;
      case json::parse_event_t::array_start: frames.push_back({false, {}, {}, 0}); break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames.pop_back();
        element_done();
        break;
      case json::parse_event_t::key: {
        Frame& f = frames.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second && !duplicate) duplicate = path_of(frames.size());
        break;
      }
      case json::parse_event_t::value: element_done(); break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb);
  } catch (const json::exception& e) {
    std::string what = e.what();
    const std::size_t at = what.find("] ");  // drop nlohmann's "[json.exception.parse_error.101] "
    throw SuiteError(file + ": not valid JSON: " + (at == std::string::npos ? what : what.substr(at + 2)));
  }
  if (duplicate) throw SuiteError(file + ": key " + *duplicate + ": duplicate key");
  return j;
}

// ----- suites -----

Suite load_suite(const std::string& path) {
  const json root = parse_json_strictly(read_text_file(path), path);
  JsonReader r(path);
  r.expect_object(root, "", {"name", "devices", "cycle_rel_tol", "cases"}, {"description"});
  Suite s;
  s.file = path;
  s.name = r.string(root.at("name"), "name");
  if (!is_id(s.name))
    r.fail("name", "expected a name of letters, digits, '_', '.' and '-', got " + shown(root.at("name")));
  if (root.contains("description")) r.string(root.at("description"), "description");
  s.devices = read_devices(r, root.at("devices"), "devices");
  s.cycle_rel_tol = r.number(root.at("cycle_rel_tol"), "cycle_rel_tol");
  if (s.cycle_rel_tol < 0) r.fail("cycle_rel_tol", "expected a relative tolerance >= 0, got " + shown(root.at("cycle_rel_tol")));
  const json& cases = r.array(root.at("cases"), "cases");
  if (cases.empty()) r.fail("cases", "expected at least one case");

  std::map<std::string, std::string> ids;  // id -> path
  for (std::size_t i = 0; i < s.devices.size(); ++i)
    s.device_uses.emplace_back(s.devices[i], JsonReader::index_path("devices", i));
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string p = JsonReader::index_path("cases", i);
    Case c = read_case(r, cases[i], p, s);
    if (auto it = ids.find(c.id); it != ids.end())
      r.fail(JsonReader::key_path(p, "id"), "duplicate case id \"" + c.id + "\" (also " + it->second + ")");
    ids.emplace(c.id, p);
    for (std::size_t d = 0; d < c.devices.size(); ++d) {
      bool seen = false;
      for (const auto& [dev, where] : s.device_uses) seen = seen || dev == c.devices[d];
      if (!seen)
        s.device_uses.emplace_back(c.devices[d], JsonReader::index_path(JsonReader::key_path(p, "devices"), d));
    }
    s.cases.push_back(std::move(c));
  }
  return s;
}

std::vector<Pair> all_pairs(const Suite& suite) {
  std::vector<Pair> pairs;
  for (const Case& c : suite.cases)
    for (const std::string& d : c.devices) pairs.push_back({pairs.size(), &c, d});
  return pairs;
}

// ----- baselines -----

std::optional<std::uint64_t> Baseline::find(const std::string& device, const std::string& case_id) const {
  auto d = cycles.find(device);
  if (d == cycles.end()) return std::nullopt;
  auto c = d->second.find(case_id);
  if (c == d->second.end()) return std::nullopt;
  return c->second;
}

Baseline load_baseline(const std::string& path, const Suite& suite, bool drop_stale,
                       std::vector<std::string>* dropped) {
  const json root = parse_json_strictly(read_text_file(path), path);
  JsonReader r(path);
  r.expect_object(root, "", {"suite", "cycles"});
  Baseline b;
  b.suite = r.string(root.at("suite"), "suite");
  if (b.suite != suite.name)
    r.fail("suite", "this baseline is for suite \"" + b.suite + "\", not \"" + suite.name + "\" (" + suite.file + ")");
  const json& cycles = root.at("cycles");
  if (!cycles.is_object()) r.fail("cycles", std::string("expected an object, got ") + type_name(cycles));

  std::set<std::pair<std::string, std::string>> runs;  // (device, case)
  for (const Case& c : suite.cases)
    for (const std::string& d : c.devices) runs.emplace(d, c.id);
  for (auto& [device, per_case] : cycles.items()) {
    const std::string dp = JsonReader::key_path("cycles", device);
    if (!per_case.is_object()) r.fail(dp, std::string("expected an object (case id -> cycles), got ") + type_name(per_case));
    for (auto& [case_id, value] : per_case.items()) {
      const std::string cp = JsonReader::key_path(dp, case_id);
      const std::uint64_t n = r.unsigned_integer(value, cp);
      if (!runs.count({device, case_id})) {
        const std::string why = "suite \"" + suite.name + "\" (" + suite.file + ") does not run case \"" +
                                case_id + "\" on " + device;
        if (!drop_stale) r.fail(cp, why + "; remove the entry, or rewrite the file with --update-baseline");
        if (dropped) dropped->push_back(cp + ": " + why);
        continue;
      }
      b.cycles[device][case_id] = n;
    }
  }
  return b;
}

std::string baseline_json(const Baseline& baseline) {
  json cycles = json::object();
  for (const auto& [device, per_case] : baseline.cycles) {
    if (per_case.empty()) continue;
    json d = json::object();
    for (const auto& [id, n] : per_case) d[id] = n;
    cycles[device] = std::move(d);
  }
  return json{{"suite", baseline.suite}, {"cycles", cycles}}.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace anychip::cli::suite
