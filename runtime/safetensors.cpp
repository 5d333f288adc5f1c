#include "anychip/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "anychip/quantize.hpp"

namespace anychip {

namespace {

using json = nlohmann::json;

// The format's dtypes (safetensors/src/tensor.rs, enum Dtype), with the bits per element.
constexpr SafetensorsDType kDTypes[] = {
    {"BOOL", 8, std::nullopt},        {"F4", 4, std::nullopt},
    {"F6_E2M3", 6, std::nullopt},     {"F6_E3M2", 6, std::nullopt},
    {"U8", 8, std::nullopt},          {"I8", 8, std::nullopt},
    {"F8_E5M2", 8, DType::f8e5m2},    {"F8_E4M3", 8, DType::f8e4m3},
    {"F8_E8M0", 8, DType::ue8m0},     {"F8_E4M3FNUZ", 8, std::nullopt},
    {"F8_E5M2FNUZ", 8, std::nullopt}, {"I16", 16, std::nullopt},
    {"U16", 16, std::nullopt},        {"F16", 16, DType::f16},
    {"BF16", 16, DType::bf16},        {"I32", 32, DType::i32},
    {"U32", 32, std::nullopt},        {"F32", 32, DType::f32},
    {"C64", 64, std::nullopt},        {"F64", 64, std::nullopt},
    {"I64", 64, std::nullopt},        {"U64", 64, std::nullopt},
};

constexpr std::size_t kSizeFieldBytes = 8;
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kScaleSuffix = "_scale_inv";
// Deep enough for any header the format allows (object / entry / shape array) with room
// for a clear type error, shallow enough that a hostile header cannot build a huge tree.
constexpr std::size_t kMaxJsonDepth = 64;

[[noreturn]] void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

// Built by appending: GCC 12 warns (-Wrestrict, a false positive) on "'" + std::string(s).
std::string quote_name(std::string_view s) {
  std::string q;
  q.reserve(s.size() + 2);
  q.append(1, '\'').append(s).append(1, '\'');
  return q;
}

std::string errno_text() { return std::strerror(errno); }

std::string float_text(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

const SafetensorsDType* find_dtype(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return &d;
  return nullptr;
}

std::string dtype_list() {
  std::string s;
  for (const auto& d : kDTypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

// The name of a JSON value's type, for messages ("number", "array", ...).
std::string json_type(const json& v) {
  if (v.is_number_float()) return "number " + v.dump();
  if (v.is_number_integer()) return "integer " + v.dump();
  return v.type_name();
}

// Files are little-endian; anychip's host tensors hold host-order bytes.
void require_little_endian(const std::string& what) {
  if constexpr (std::endian::native != std::endian::little)
    fail(ErrorCode::Unsupported,
         what + ": safetensors files are little-endian and this host is not");
}

// The Levenshtein distance, for suggesting the names nearest to a mistyped one. Only the
// first 256 characters count, so that a file of enormous names cannot make an error
// message cost seconds.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  a = a.substr(0, 256);
  b = b.substr(0, 256);
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Thrown from the parser callback; turned into an Error once the parser has unwound.
struct DuplicateKey {
  std::string key;
  bool top_level;
  std::string parent;  // the nearest enclosing key
};
struct TooDeep {};

// Parses the header text, rejecting duplicate keys (nlohmann::json keeps the last of
// them silently) and nesting deeper than kMaxJsonDepth.
json parse_json(std::string_view text, const std::string& file,
                const std::string& what = "header") {
  struct Level {
    std::unordered_set<std::string> keys;
    std::string key;  // the latest key read at this level
  };
  std::vector<Level> levels;
  json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (levels.size() >= kMaxJsonDepth) throw TooDeep{};
        levels.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        levels.pop_back();
        break;
      case json::parse_event_t::key: {
        std::string key = parsed.get<std::string>();
        if (!levels.back().keys.insert(key).second) {
          std::string parent;
          for (std::size_t i = levels.size() - 1; i-- > 0 && parent.empty();)
            parent = levels[i].key;
          throw DuplicateKey{key, levels.size() == 1, parent};
        }
        levels.back().key = std::move(key);
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const DuplicateKey& d) {
    if (d.top_level)
      fail(ErrorCode::ParseError, file + ": " + what + " has the key " + quote_name(d.key) +
                                      (what == "header" ? " twice (tensor names must be unique)"
                                                        : " twice"));
    fail(ErrorCode::ParseError, file + ": " + what + " has the key " + quote_name(d.key) +
                                    " twice in " + quote_name(d.parent));
  } catch (const TooDeep&) {
    fail(ErrorCode::ParseError, file + ": " + what + " nests JSON deeper than " +
                                    std::to_string(kMaxJsonDepth) + " levels");
  } catch (const json::exception& e) {
    fail(ErrorCode::ParseError, file + ": " + what + " is not valid JSON: " + e.what());
  }
}

// A non-negative JSON integer, or nullopt (negative, fractional, too large, not a number).
std::optional<std::uint64_t> as_count(const json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  return v.get<std::uint64_t>();
}

std::string offsets_text(const SafetensorsEntry& e) {
  std::string t(1, '[');
  return t.append(std::to_string(e.begin))
      .append(", ")
      .append(std::to_string(e.end))
      .append(1, ']');
}

SafetensorsEntry parse_entry(const std::string& file, const std::string& name, const json& v) {
  const std::string where = file + ": tensor " + quote_name(name);
  if (!v.is_object())
    fail(ErrorCode::ParseError, where + ": entry must be an object, not " + json_type(v));
  for (const auto& [key, _] : v.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail(ErrorCode::ParseError, where + ": unknown key " + quote_name(key) +
                                      " (an entry holds dtype, shape and data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail(ErrorCode::ParseError, where + ": missing \"" + key + "\"");

  SafetensorsEntry e;
  e.name = name;
  const json& dtype = v["dtype"];
  if (!dtype.is_string())
    fail(ErrorCode::ParseError, where + ": dtype must be a string, not " + json_type(dtype));
  e.dtype = find_dtype(dtype.get_ref<const std::string&>());
  if (!e.dtype)
    fail(ErrorCode::ParseError, where + ": unknown dtype " +
                                    quote_name(dtype.get_ref<const std::string&>()) +
                                    " (the format's dtypes: " + dtype_list() + ")");

  const json& shape = v["shape"];
  if (!shape.is_array())
    fail(ErrorCode::ParseError, where + ": shape must be an array, not " + json_type(shape));
  std::uint64_t numel = 1;
  bool overflow = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    auto dim = as_count(shape[i]);
    if (!dim || *dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(ErrorCode::ParseError, where + ": shape[" + std::to_string(i) + "] is " +
                                      json_type(shape[i]) + ", not a non-negative integer");
    e.shape.push_back(static_cast<std::int64_t>(*dim));
    overflow = overflow || __builtin_mul_overflow(numel, *dim, &numel);
  }
  // A zero dimension makes an empty tensor whatever the others are.
  if (std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end()) overflow = false, numel = 0;
  std::uint64_t bits = 0;
  if (overflow || numel > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
      __builtin_mul_overflow(numel, std::uint64_t{e.dtype->bits}, &bits))
    fail(ErrorCode::ParseError, where + ": shape " + shape_str(e.shape) + " has too many elements");
  if (bits % 8 != 0)
    fail(ErrorCode::ParseError, where + ": " + std::string(e.dtype->name) + shape_str(e.shape) +
                                    " is " + std::to_string(bits) +
                                    " bits, not a whole number of bytes");

  const json& offsets = v["data_offsets"];
  std::optional<std::uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2)
    begin = as_count(offsets[0]), end = as_count(offsets[1]);
  if (!begin || !end)
    fail(ErrorCode::ParseError,
         where + ": data_offsets must be [begin, end], two non-negative integers, not " +
             offsets.dump());
  e.begin = *begin;
  e.end = *end;
  if (e.end < e.begin)
    fail(ErrorCode::ParseError,
         where + ": data_offsets " + offsets_text(e) + " end before they begin");
  if (e.end - e.begin != bits / 8)
    fail(ErrorCode::ParseError, where + ": data_offsets " + offsets_text(e) + " span " +
                                    std::to_string(e.end - e.begin) + " bytes, but " +
                                    std::string(e.dtype->name) + shape_str(e.shape) + " is " +
                                    std::to_string(bits / 8) + " bytes");
  return e;
}

// A weight scale breaks the layout's rule (see the header) unless finite and positive.
bool valid_scale(float s) { return std::isfinite(s) && s > 0; }

// The UE8M0 code of s, when s is a power of two UE8M0 holds exactly.
std::optional<std::uint8_t> exact_ue8m0(float s) {
  const std::uint8_t code = float_to_ue8m0(s, Rounding::NearestEven, Saturation::None);
  if (code == 0xFF || ue8m0_to_float(code) != s) return std::nullopt;
  return code;
}

// InvalidArgument for a lookup of a missing tensor, suggesting the closest names.
[[noreturn]] void fail_no_tensor(const std::string& where, std::string_view tensor,
                                 const std::vector<std::string>& names, const char* holder) {
  std::string message = where + ": no tensor " + quote_name(tensor);
  if (names.empty())
    fail(ErrorCode::InvalidArgument, message + "; " + holder + " holds no tensors");
  std::vector<std::pair<std::size_t, const std::string*>> near;
  for (const auto& n : names) near.emplace_back(edit_distance(tensor, n), &n);
  const std::size_t shown = std::min<std::size_t>(3, near.size());
  std::partial_sort(near.begin(), near.begin() + static_cast<std::ptrdiff_t>(shown), near.end(),
                    [](const auto& a, const auto& b) {
                      return std::tie(a.first, *a.second) < std::tie(b.first, *b.second);
                    });
  message += "; the closest names are ";
  for (std::size_t i = 0; i < shown; ++i) message += (i ? ", " : "") + quote_name(*near[i].second);
  fail(ErrorCode::InvalidArgument, message);
}

}  // namespace

std::span<const SafetensorsDType> safetensors_dtypes() { return kDTypes; }

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  fail(ErrorCode::Internal,
       "safetensors_dtype_name: no name for dtype " + std::string(dtype_name(dtype)));
}

// ---------------------------------------------------------------------------------------
// Reading

struct SafetensorsFile::Impl {
  std::string name;
  void* mapping = nullptr;  // the mmap of the file, or null when `owned` holds it
  std::size_t mapping_bytes = 0;
  std::vector<std::byte> owned;
  const std::byte* data = nullptr;  // the whole file
  std::size_t size = 0;
  std::size_t buffer_start = 0;  // 8 + N
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsEntry> entries;
  std::unordered_map<std::string_view, std::size_t> index;  // views into entries' names

  ~Impl() {
    if (mapping) ::munmap(mapping, mapping_bytes);
  }

  void validate();
};

void SafetensorsFile::Impl::validate() {
  if (size < kSizeFieldBytes)
    fail(ErrorCode::ParseError,
         name + ": " + std::to_string(size) + " bytes is too short for the 8-byte header size");
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < kSizeFieldBytes; ++i)
    n |= static_cast<std::uint64_t>(std::to_integer<unsigned>(data[i])) << (8 * i);
  if (n > kSafetensorsMaxHeaderBytes)
    fail(ErrorCode::ParseError, name + ": header size " + std::to_string(n) +
                                    " exceeds the format's limit of " +
                                    std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
  if (n > size - kSizeFieldBytes)
    fail(ErrorCode::ParseError, name + ": header size " + std::to_string(n) +
                                    " runs past the end of the file (" + std::to_string(size) +
                                    " bytes)");
  buffer_start = kSizeFieldBytes + static_cast<std::size_t>(n);

  std::string_view text(reinterpret_cast<const char*>(data + kSizeFieldBytes),
                        static_cast<std::size_t>(n));
  if (text.empty() || text.front() != '{')
    fail(ErrorCode::ParseError, name + ": header is not a JSON object (it must begin with '{')");
  // Writers pad the header with spaces so that the buffer is aligned; that is the only
  // thing allowed after the object.
  const std::string_view body = text.substr(0, text.find_last_not_of(' ') + 1);
  const json header = parse_json(body, name);
  if (body.back() != '}')
    fail(ErrorCode::ParseError,
         name + ": header has bytes other than spaces (0x20) after its JSON object");

  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object())
        fail(ErrorCode::ParseError,
             name + ": __metadata__ must be an object of strings, not " + json_type(value));
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          fail(ErrorCode::ParseError,
               name + ": __metadata__ " + quote_name(k) + " must be a string, not " + json_type(v));
        metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    entries.push_back(parse_entry(name, key, value));
  }

  std::sort(entries.begin(), entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
            });
  std::uint64_t next = 0;  // where the next tensor must begin
  const SafetensorsEntry* prev = nullptr;
  for (const auto& e : entries) {
    if (e.begin < next)
      fail(ErrorCode::ParseError, name + ": tensors " + quote_name(prev->name) + " (data_offsets " +
                                      offsets_text(*prev) + ") and " + quote_name(e.name) +
                                      " (data_offsets " + offsets_text(e) + ") overlap");
    if (e.begin > next)
      fail(ErrorCode::ParseError, name + ": bytes [" + std::to_string(next) + ", " +
                                      std::to_string(e.begin) +
                                      ") of the buffer belong to no tensor (a hole before " +
                                      quote_name(e.name) + "); tensors must tile the buffer");
    next = e.end;
    prev = &e;
  }
  const std::uint64_t buffer_bytes = size - buffer_start;
  if (next > buffer_bytes)
    fail(ErrorCode::ParseError, name + ": truncated: tensor " + quote_name(prev->name) +
                                    " ends at byte " + std::to_string(next) +
                                    " of the buffer, but the file holds " +
                                    std::to_string(buffer_bytes) + " bytes after the header");
  if (next < buffer_bytes)
    fail(ErrorCode::ParseError,
         name + ": the last " + std::to_string(buffer_bytes - next) +
             " bytes of the buffer belong to no tensor (the tensors end at byte " +
             std::to_string(next) + " of " + std::to_string(buffer_bytes) +
             "); tensors must tile the buffer");

  index.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) index.emplace(entries[i].name, i);
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto impl = std::make_unique<Impl>();
  impl->name = path.string();
  require_little_endian(impl->name);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorCode::IoError, impl->name + ": cannot open: " + errno_text());
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    fail(ErrorCode::IoError, impl->name + ": cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) fail(ErrorCode::IoError, impl->name + ": not a regular file");
  const auto size = static_cast<std::size_t>(st.st_size);
  void* m = size > 0 ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  if (m != MAP_FAILED) {
    impl->mapping = m;
    impl->mapping_bytes = size;
    impl->data = static_cast<const std::byte*>(m);
    impl->size = size;
  } else {
    // Some file systems cannot map; read the file instead.
    impl->owned.resize(size);
    std::size_t got = 0;
    while (got < size) {
      const ssize_t r = ::read(fd, impl->owned.data() + got, size - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail(ErrorCode::IoError, impl->name + ": cannot read: " + errno_text());
      if (r == 0) break;  // shrank since fstat; validation judges what is there
      got += static_cast<std::size_t>(r);
    }
    impl->owned.resize(got);
    impl->data = impl->owned.data();
    impl->size = got;
  }
  impl->validate();
  return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::from_bytes(std::vector<std::byte> bytes, std::string name) {
  auto impl = std::make_unique<Impl>();
  impl->name = std::move(name);
  require_little_endian(impl->name);
  impl->owned = std::move(bytes);
  impl->data = impl->owned.data();
  impl->size = impl->owned.size();
  impl->validate();
  return SafetensorsFile(std::move(impl));
}

const std::string& SafetensorsFile::name() const { return impl_->name; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
  return impl_->metadata;
}
const std::vector<SafetensorsEntry>& SafetensorsFile::tensors() const { return impl_->entries; }

const SafetensorsEntry* SafetensorsFile::find(std::string_view tensor) const {
  auto it = impl_->index.find(tensor);
  return it == impl_->index.end() ? nullptr : &impl_->entries[it->second];
}

const SafetensorsEntry& SafetensorsFile::at(std::string_view tensor) const {
  if (const auto* e = find(tensor)) return *e;
  fail_no_tensor(impl_->name, tensor, tensor_names(), "the file");
}

std::vector<std::string> SafetensorsFile::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(impl_->entries.size());
  for (const auto& e : impl_->entries) names.push_back(e.name);
  return names;
}

std::span<const std::byte> SafetensorsFile::bytes(std::string_view tensor) const {
  const auto& e = at(tensor);
  return {impl_->data + impl_->buffer_start + e.begin, static_cast<std::size_t>(e.end - e.begin)};
}

HostTensor SafetensorsFile::load(std::string_view tensor) const {
  const auto& e = at(tensor);
  if (!e.dtype->dtype) {
    std::string known;
    for (const auto& d : kDTypes)
      if (d.dtype) known += (known.empty() ? "" : ", ") + std::string(d.name);
    fail(ErrorCode::Unsupported, impl_->name + ": tensor " + quote_name(e.name) + " is " +
                                     std::string(e.dtype->name) +
                                     ", which anychip has no dtype for (it loads " + known + ")");
  }
  HostTensor h;
  h.type = TensorType{*e.dtype->dtype, e.shape, std::nullopt};
  const auto b = bytes(tensor);
  h.data.assign(b.begin(), b.end());
  return h;
}

HostTensor load_fp8_weight(const SafetensorsSource& file, std::string_view prefix,
                           DType scale_dtype) {
  if (!is_scale_dtype(scale_dtype))
    fail(ErrorCode::InvalidArgument, "load_fp8_weight: scale_dtype must be f32 or ue8m0, not " +
                                         std::string(dtype_name(scale_dtype)));
  const std::string weight_name = std::string(prefix) + ".weight";
  const std::string scale_name = weight_name + std::string(kScaleSuffix);
  const std::string& f = file.name();
  const SafetensorsEntry& w = file.at(weight_name);
  if (w.dtype->dtype != DType::f8e4m3)
    fail(ErrorCode::ParseError, f + ": tensor " + quote_name(weight_name) + " is " +
                                    std::string(w.dtype->name) + "; an FP8 weight must be F8_E4M3");
  if (w.shape.size() != 2)
    fail(ErrorCode::ParseError, f + ": tensor " + quote_name(weight_name) + " has shape " +
                                    shape_str(w.shape) + "; an FP8 weight must be 2-D [out, in]");
  const SafetensorsEntry* s = file.find(scale_name);
  if (!s)
    fail(ErrorCode::ParseError, f + ": FP8 weight " + quote_name(weight_name) +
                                    " has no scale tensor " + quote_name(scale_name) +
                                    " (an F32 scale per 128x128 block)");
  if (s->dtype->dtype != DType::f32)
    fail(ErrorCode::ParseError, f + ": tensor " + quote_name(scale_name) + " is " +
                                    std::string(s->dtype->name) + "; a weight scale must be F32");

  TensorType type{DType::f8e4m3, w.shape, ScaleLayout{kWeightBlock, scale_dtype}};
  const Shape want = type.scale_shape();
  if (s->shape != want)
    fail(ErrorCode::ParseError, f + ": tensor " + quote_name(scale_name) + " has shape " +
                                    shape_str(s->shape) + "; weight " + quote_name(weight_name) +
                                    " " + shape_str(w.shape) + " needs " + shape_str(want) +
                                    " (one scale per 128x128 block)");

  HostTensor h;
  h.type = type;
  const auto wb = file.bytes(weight_name);
  h.data.assign(wb.begin(), wb.end());
  h.scales.resize(type.scale_bytes());
  const auto sb = file.bytes(scale_name);
  const std::size_t count = static_cast<std::size_t>(type.scale_count());
  for (std::size_t i = 0; i < count; ++i) {
    float v;
    std::memcpy(&v, sb.data() + 4 * i, 4);
    const std::string block = "block [" + std::to_string(i / static_cast<std::size_t>(want[1])) +
                              ", " + std::to_string(i % static_cast<std::size_t>(want[1])) + "]";
    if (!valid_scale(v))
      fail(ErrorCode::ParseError, f + ": tensor " + quote_name(scale_name) + ": " + block +
                                      " has scale " + float_text(v) +
                                      "; a weight scale must be finite and positive");
    if (scale_dtype == DType::f32) {
      std::memcpy(h.scales.data() + 4 * i, &v, 4);
    } else if (auto code = exact_ue8m0(v)) {
      h.scales[i] = std::byte{*code};
    } else {
      fail(ErrorCode::ParseError,
           f + ": tensor " + quote_name(scale_name) + ": " + block + " has scale " + float_text(v) +
               ", not a power of two in UE8M0's range (2^-127..2^127); load it "
               "with f32 scales");
    }
  }
  return h;
}

// ---------------------------------------------------------------------------------------
// Sharded checkpoints

namespace {

// A shard path of an index must stay inside the index's directory.
void check_shard_path(const std::string& index, const std::string& tensor,
                      const std::string& shard) {
  const std::string where = index + ": weight_map " + quote_name(tensor) + " -> " +
                            quote_name(shard);
  if (shard.empty()) fail(ErrorCode::ParseError, where + ": the shard path is empty");
  const std::filesystem::path p(shard);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory())
    fail(ErrorCode::ParseError,
         where + ": the shard path is absolute; shards must lie in the index's directory");
  for (const auto& part : p)
    if (part == "..")
      fail(ErrorCode::ParseError,
           where + ": the shard path contains \"..\"; shards must lie in the index's directory");
}

std::string read_text_file(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(ErrorCode::IoError, path.string() + ": cannot open: " + errno_text());
  std::string text;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) fail(ErrorCode::IoError, path.string() + ": cannot read");
  return text;
}

}  // namespace

struct SafetensorsCheckpoint::Impl {
  struct Shard {
    std::filesystem::path path;
    std::string relative;  // as the index spells it
    std::vector<std::string> tensors;  // those the weight_map assigns to it
    std::unique_ptr<SafetensorsFile> file;  // null until first needed
  };
  std::string name;                        // the index, or the single file
  std::vector<Shard> shards;               // sorted by relative path
  std::map<std::string, std::size_t, std::less<>> shard_of;  // tensor -> shard
  std::mutex open_mutex;                   // guards Shard::file

  // The shard, opened and checked against the map on first use.
  const SafetensorsFile& file(std::size_t i) {
    std::lock_guard<std::mutex> lock(open_mutex);
    Shard& s = shards[i];
    if (s.file) return *s.file;
    auto f = std::make_unique<SafetensorsFile>(SafetensorsFile::open(s.path));
    for (const auto& e : f->tensors()) {
      auto it = shard_of.find(e.name);
      if (it == shard_of.end())
        fail(ErrorCode::ParseError, name + ": tensor " + quote_name(e.name) + " is in shard " +
                                        quote_name(s.relative) +
                                        " but the weight_map does not list it");
      if (it->second != i)
        fail(ErrorCode::ParseError,
             name + ": tensor " + quote_name(e.name) + " is in shard " + quote_name(s.relative) +
                 " but the weight_map maps it to " + quote_name(shards[it->second].relative) +
                 " (one of the two would be silently ignored)");
    }
    for (const auto& tensor : s.tensors)
      if (!f->find(tensor))
        fail(ErrorCode::ParseError, name + ": the weight_map maps tensor " + quote_name(tensor) +
                                        " to shard " + quote_name(s.relative) +
                                        ", which does not hold it");
    s.file = std::move(f);
    return *s.file;
  }
  const SafetensorsFile* file_of(std::string_view tensor) {
    auto it = shard_of.find(tensor);
    return it == shard_of.end() ? nullptr : &file(it->second);
  }

  static std::unique_ptr<Impl> single(const std::filesystem::path& path);
  static std::unique_ptr<Impl> index(const std::filesystem::path& path);
};

std::unique_ptr<SafetensorsCheckpoint::Impl> SafetensorsCheckpoint::Impl::single(
    const std::filesystem::path& path) {
  auto impl = std::make_unique<Impl>();
  impl->name = path.string();
  auto file = std::make_unique<SafetensorsFile>(SafetensorsFile::open(path));
  for (const auto& e : file->tensors()) impl->shard_of.emplace(e.name, 0);
  impl->shards.push_back(Shard{path, path.filename().string(), {}, std::move(file)});
  return impl;
}

std::unique_ptr<SafetensorsCheckpoint::Impl> SafetensorsCheckpoint::Impl::index(
    const std::filesystem::path& path) {
  auto impl = std::make_unique<Impl>();
  const std::string& name = impl->name = path.string();
  const std::string text = read_text_file(path);
  const json root = parse_json(text, name, "index");
  if (!root.is_object())
    fail(ErrorCode::ParseError, name + ": an index must be a JSON object, not " + json_type(root));
  for (const auto& [key, _] : root.items())
    if (key != "metadata" && key != "weight_map")
      fail(ErrorCode::ParseError, name + ": unknown key " + quote_name(key) +
                                      " (an index holds metadata and weight_map)");
  if (root.contains("metadata")) {
    const json& m = root["metadata"];
    if (!m.is_object())
      fail(ErrorCode::ParseError, name + ": metadata must be an object, not " + json_type(m));
    if (m.contains("total_size") && !as_count(m["total_size"]))
      fail(ErrorCode::ParseError,
           name + ": metadata.total_size must be a non-negative integer, not " +
               json_type(m["total_size"]));
  }
  if (!root.contains("weight_map"))
    fail(ErrorCode::ParseError,
         name + ": missing \"weight_map\" (the object of tensor name -> shard file)");
  const json& map = root["weight_map"];
  if (!map.is_object())
    fail(ErrorCode::ParseError, name + ": weight_map must be an object, not " + json_type(map));

  std::map<std::string, std::vector<std::string>> by_shard;  // shard -> its tensors
  for (const auto& [tensor, shard] : map.items()) {
    if (!shard.is_string())
      fail(ErrorCode::ParseError, name + ": weight_map " + quote_name(tensor) +
                                      " must be a shard file name (a string), not " +
                                      json_type(shard));
    const auto& s = shard.get_ref<const std::string&>();
    check_shard_path(name, tensor, s);
    by_shard[s].push_back(tensor);
  }
  const std::filesystem::path dir = path.parent_path();
  for (auto& [relative, tensors] : by_shard) {
    const std::filesystem::path shard_path = dir / relative;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(shard_path, ec))
      fail(ErrorCode::IoError,
           name + ": shard " + quote_name(relative) + " (holding " + quote_name(tensors.front()) +
               (tensors.size() > 1 ? " and " + std::to_string(tensors.size() - 1) + " more" : "") +
               ") does not exist as a file: " + shard_path.string());
    const std::size_t i = impl->shards.size();
    for (const auto& t : tensors) impl->shard_of.emplace(t, i);
    impl->shards.push_back(Shard{shard_path, relative, std::move(tensors), nullptr});
  }
  return impl;
}

SafetensorsCheckpoint::SafetensorsCheckpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsCheckpoint::SafetensorsCheckpoint(SafetensorsCheckpoint&&) noexcept = default;
SafetensorsCheckpoint& SafetensorsCheckpoint::operator=(SafetensorsCheckpoint&&) noexcept = default;
SafetensorsCheckpoint::~SafetensorsCheckpoint() = default;

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    if (path.extension() == ".json") return SafetensorsCheckpoint(Impl::index(path));
    return SafetensorsCheckpoint(Impl::single(path));
  }
  const fs::path index = path / kSafetensorsIndexName;
  if (fs::exists(index, ec)) return SafetensorsCheckpoint(Impl::index(index));
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(path, ec))
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path());
  if (ec) fail(ErrorCode::IoError, path.string() + ": cannot list the directory: " + ec.message());
  if (files.size() != 1)
    fail(ErrorCode::InvalidArgument,
         path.string() + ": a checkpoint directory holds " + std::string(kSafetensorsIndexName) +
             " or exactly one .safetensors file; this one has no index and " +
             std::to_string(files.size()) + " .safetensors files");
  return SafetensorsCheckpoint(Impl::single(files.front()));
}

const std::string& SafetensorsCheckpoint::name() const { return impl_->name; }

std::vector<std::filesystem::path> SafetensorsCheckpoint::shard_paths() const {
  std::vector<std::filesystem::path> paths;
  for (const auto& s : impl_->shards) paths.push_back(s.path);
  return paths;
}

const SafetensorsFile& SafetensorsCheckpoint::shard_of(std::string_view tensor) const {
  if (const SafetensorsFile* f = impl_->file_of(tensor)) return *f;
  fail_no_tensor(impl_->name, tensor, tensor_names(), "the checkpoint");
}

std::vector<std::string> SafetensorsCheckpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(impl_->shard_of.size());
  for (const auto& [n, _] : impl_->shard_of) names.push_back(n);
  return names;
}

const SafetensorsEntry* SafetensorsCheckpoint::find(std::string_view tensor) const {
  const SafetensorsFile* f = impl_->file_of(tensor);
  return f ? f->find(tensor) : nullptr;
}

const SafetensorsEntry& SafetensorsCheckpoint::at(std::string_view tensor) const {
  return shard_of(tensor).at(tensor);
}

std::span<const std::byte> SafetensorsCheckpoint::bytes(std::string_view tensor) const {
  return shard_of(tensor).bytes(tensor);
}

HostTensor SafetensorsCheckpoint::load(std::string_view tensor) const {
  return shard_of(tensor).load(tensor);
}

// ---------------------------------------------------------------------------------------
// Writing

namespace {

void check_bytes(const std::string& name, const HostTensor& t) {
  for (std::int64_t d : t.type.shape)
    if (d < 0)
      fail(ErrorCode::InvalidArgument, "safetensors writer: tensor " + quote_name(name) +
                                           " has a negative dimension: " + t.type.str());
  if (t.data.size() != t.type.data_bytes())
    fail(ErrorCode::InvalidArgument, "safetensors writer: tensor " + quote_name(name) + " holds " +
                                         std::to_string(t.data.size()) + " bytes, but " +
                                         t.type.str() + " is " +
                                         std::to_string(t.type.data_bytes()));
}

void write_all(int fd, const void* p, std::size_t n, const std::string& path) {
  const auto* b = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail(ErrorCode::IoError, path + ": cannot write: " + errno_text());
    b += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Writes `path` through `body` into a temporary file beside it, flushed to disk, then
// renamed over it, so that `path` never names a partly written file.
void write_atomically(const std::filesystem::path& path,
                      const std::function<void(int fd, const std::string& tmp)>& body) {
  const std::string target = path.string();
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char suffix[40];
  std::snprintf(suffix, sizeof suffix, ".tmp.%ld.%016llx", static_cast<long>(::getpid()),
                static_cast<unsigned long long>(rng()));
  const std::string tmp = target + suffix;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) fail(ErrorCode::IoError, target + ": cannot create " + tmp + ": " + errno_text());
  bool open = true;
  try {
    body(fd, tmp);
    // On disk before the rename, so that a crash leaves the old file or the whole new one.
    if (::fsync(fd) != 0) fail(ErrorCode::IoError, tmp + ": cannot flush to disk: " + errno_text());
    open = false;
    if (::close(fd) != 0) fail(ErrorCode::IoError, tmp + ": cannot close: " + errno_text());
  } catch (...) {
    if (open) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), target.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    fail(ErrorCode::IoError, target + ": cannot rename " + tmp + " into place: " + why);
  }
  // Make the rename itself durable; a failure here loses no data, so it is not an error.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

void SafetensorsWriter::add_entry(Pending entry) {
  std::string name = entry.name;
  pending_.emplace(std::move(name), std::move(entry));
}

void SafetensorsWriter::add(std::string name, HostTensor tensor) {
  if (tensor.type.scale)
    fail(ErrorCode::InvalidArgument, "safetensors writer: tensor " + quote_name(name) +
                                         " is block-scaled (" + tensor.type.str() +
                                         "); add it with add_fp8_weight, which writes its scales");
  auto check_name = [&](const std::string& n) {
    if (n.empty() || n == kMetadataKey || pending_.count(n))
      fail(ErrorCode::InvalidArgument,
           "safetensors writer: the name " + quote_name(n) +
               (n.empty() || n == kMetadataKey ? " is reserved" : " is already taken"));
  };
  check_name(name);
  check_bytes(name, tensor);
  require_little_endian("safetensors writer");
  add_entry(Pending{name, tensor.type.dtype, tensor.type.shape, std::move(tensor.data)});
}

void SafetensorsWriter::add_fp8_weight(std::string_view prefix, HostTensor weight) {
  const std::string weight_name = std::string(prefix) + ".weight";
  const std::string scale_name = weight_name + std::string(kScaleSuffix);
  const TensorType& t = weight.type;
  if (t.dtype != DType::f8e4m3 || t.shape.size() != 2 || !t.scale ||
      t.scale->block != kWeightBlock || !is_scale_dtype(t.scale->dtype))
    fail(ErrorCode::InvalidArgument,
         "safetensors writer: weight " + quote_name(weight_name) + " is " + t.str() +
             "; the DeepSeek layout holds f8e4m3[out, in] scaled<128x128, f32 or ue8m0>");
  for (const std::string& n : {weight_name, scale_name})
    if (pending_.count(n))
      fail(ErrorCode::InvalidArgument,
           "safetensors writer: the name " + quote_name(n) + " is already taken");
  check_bytes(weight_name, weight);
  if (weight.scales.size() != t.scale_bytes())
    fail(ErrorCode::InvalidArgument, "safetensors writer: weight " + quote_name(weight_name) +
                                         " holds " + std::to_string(weight.scales.size()) +
                                         " scale bytes, but " + t.str() + " has " +
                                         std::to_string(t.scale_bytes()));
  require_little_endian("safetensors writer");

  const Shape scale_shape = t.scale_shape();
  const std::size_t count = static_cast<std::size_t>(t.scale_count());
  std::vector<std::byte> scales(4 * count);
  for (std::size_t i = 0; i < count; ++i) {
    const float v = load_scale(weight.scales.data(), t.scale->dtype, i);
    if (!valid_scale(v))
      fail(ErrorCode::InvalidArgument,
           "safetensors writer: weight " + quote_name(weight_name) + ": block [" +
               std::to_string(i / static_cast<std::size_t>(scale_shape[1])) + ", " +
               std::to_string(i % static_cast<std::size_t>(scale_shape[1])) + "] has scale " +
               float_text(v) + "; a weight scale must be finite and positive");
    std::memcpy(scales.data() + 4 * i, &v, 4);
  }
  add_entry(Pending{weight_name, DType::f8e4m3, t.shape, std::move(weight.data)});
  add_entry(Pending{scale_name, DType::f32, scale_shape, std::move(scales)});
}

std::vector<std::byte> SafetensorsWriter::serialize() const {
  const Layout layout = this->layout();
  std::vector<std::byte> out;
  std::size_t total = kSizeFieldBytes + layout.header.size();
  for (const auto* b : layout.buffers) total += b->size();
  out.reserve(total);
  const std::uint64_t n = layout.header.size();
  for (std::size_t i = 0; i < kSizeFieldBytes; ++i) out.push_back(std::byte(n >> (8 * i)));
  for (char c : layout.header) out.push_back(std::byte(c));
  for (const auto* b : layout.buffers) out.insert(out.end(), b->begin(), b->end());
  return out;
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  const Layout layout = this->layout();
  write_atomically(path, [&](int fd, const std::string& tmp) {
    unsigned char size_field[kSizeFieldBytes];
    const std::uint64_t n = layout.header.size();
    for (std::size_t i = 0; i < kSizeFieldBytes; ++i)
      size_field[i] = static_cast<unsigned char>(n >> (8 * i));
    write_all(fd, size_field, sizeof size_field, tmp);
    write_all(fd, layout.header.data(), layout.header.size(), tmp);
    for (const auto* b : layout.buffers) write_all(fd, b->data(), b->size(), tmp);
  });
}

// Lays the tensors out (largest elements first, then by name) and renders the header.
SafetensorsWriter::Layout SafetensorsWriter::layout() const {
  std::vector<const Pending*> order;
  for (const auto& [_, p] : pending_) order.push_back(&p);
  // pending_ is ordered by name, so a stable sort by element size keeps names in order.
  std::stable_sort(order.begin(), order.end(), [](const Pending* a, const Pending* b) {
    return dtype_size(a->dtype) > dtype_size(b->dtype);
  });
  json header = json::object();
  if (!metadata_.empty()) header[std::string(kMetadataKey)] = metadata_;
  Layout layout;
  std::uint64_t offset = 0;
  for (const Pending* p : order) {
    header[p->name] = {{"dtype", safetensors_dtype_name(p->dtype)},
                       {"shape", p->shape},
                       {"data_offsets", {offset, offset + p->bytes.size()}}};
    offset += p->bytes.size();
    layout.buffers.push_back(&p->bytes);
  }
  try {
    layout.header = header.dump();
  } catch (const json::exception& e) {
    fail(ErrorCode::InvalidArgument,
         std::string("safetensors writer: a tensor name or metadata string is not "
                     "valid UTF-8: ") +
             e.what());
  }
  // Pad so that the buffer, and with the order above every tensor, is 8-byte aligned.
  layout.header.resize((layout.header.size() + 7) / 8 * 8, ' ');
  if (layout.header.size() > kSafetensorsMaxHeaderBytes)
    fail(ErrorCode::InvalidArgument,
         "safetensors writer: the header would be " + std::to_string(layout.header.size()) +
             " bytes, over the format's limit of " + std::to_string(kSafetensorsMaxHeaderBytes));
  return layout;
}

// ---------------------------------------------------------------------------------------
// Writing a sharded checkpoint

SafetensorsShardedWriter::SafetensorsShardedWriter(std::size_t shard_count) {
  if (shard_count < 1 || shard_count > 99999)
    fail(ErrorCode::InvalidArgument,
         "safetensors sharded writer: " + std::to_string(shard_count) +
             " shards; a checkpoint has 1 to 99999 (the file names count them in five digits)");
  shards_.resize(shard_count);
}

SafetensorsWriter& SafetensorsShardedWriter::shard(std::size_t i) {
  if (i >= shards_.size())
    fail(ErrorCode::InvalidArgument, "safetensors sharded writer: shard " + std::to_string(i) +
                                         " of " + std::to_string(shards_.size()) +
                                         " (shards count from 0)");
  return shards_[i];
}

std::string SafetensorsShardedWriter::shard_file_name(std::size_t i) const {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards_.size());
  return name;
}

void SafetensorsShardedWriter::write(const std::filesystem::path& dir) const {
  json map = json::object();
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    // The index would not name an empty shard, leaving a stray file beside it.
    if (shards_[i].pending_.empty())
      fail(ErrorCode::InvalidArgument, "safetensors sharded writer: shard " + std::to_string(i) +
                                           " (" + shard_file_name(i) + ") holds no tensors");
    for (const auto& [name, p] : shards_[i].pending_) {
      if (map.contains(name))
        fail(ErrorCode::InvalidArgument,
             "safetensors sharded writer: tensor " + quote_name(name) + " is in both " +
                 quote_name(map[name].get<std::string>()) + " and " +
                 quote_name(shard_file_name(i)) + "; a tensor lives in one shard");
      map[name] = shard_file_name(i);
      total += p.bytes.size();
    }
  }
  std::string text;
  try {
    text = json{{"metadata", {{"total_size", total}}}, {"weight_map", map}}.dump(2) + "\n";
  } catch (const json::exception& e) {
    fail(ErrorCode::InvalidArgument,
         std::string("safetensors sharded writer: a tensor name is not valid UTF-8: ") + e.what());
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(ErrorCode::IoError, dir.string() + ": cannot create the directory: " + ec.message());
  for (std::size_t i = 0; i < shards_.size(); ++i) shards_[i].write(dir / shard_file_name(i));
  write_atomically(dir / kSafetensorsIndexName, [&](int fd, const std::string& tmp) {
    write_all(fd, text.data(), text.size(), tmp);
  });
}

}  // namespace anychip
