// The C ABI (anychip/anychip.h): each entry point checks its pointers, calls the C++ API,
// and turns whatever it throws into a status and this thread's last error message. The
// message of an anychip::Error is passed on unchanged, so the C and C++ sides report one
// failure identically.
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "anychip/anychip.h"
#include "ir/attr_text.hpp"
#include "runtime/c_api_status.hpp"
#include "runtime/handles.hpp"

struct anychip_device {
  anychip::Device device;
};
struct anychip_stream {
  anychip::Stream stream;
};
struct anychip_event {
  anychip::Event event;
};
struct anychip_tensor {
  anychip::Tensor tensor;
};
struct anychip_graph {
  anychip::ir::Graph graph;
};
struct anychip_executable {
  anychip::Executable exe;
};

namespace anychip::capi {
namespace {

std::string& last_error() {
  thread_local std::string message;
  return message;
}

// Runs `body` as the entry point `function`: OK and a cleared message, or the status of
// what it threw.
template <typename Body>
anychip_status guarded(const char* function, Body&& body) noexcept {
  try {
    body();
    last_error().clear();
    return ANYCHIP_OK;
  } catch (...) {
    return status_of_current_exception(function);
  }
}

[[noreturn]] void invalid(const char* function, const std::string& rule) {
  throw Error(ErrorCode::InvalidArgument, std::string(function) + ": " + rule);
}

template <typename T>
T& need(T* p, const char* function, const char* name) {
  if (!p) invalid(function, std::string(name) + " is NULL");
  return *p;
}
void need(const void* p, const char* function, const char* name) {
  if (!p) invalid(function, std::string(name) + " is NULL");
}

// A copy of `s` the caller frees with anychip_free.
char* copy_out(std::string_view s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) throw std::bad_alloc();
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

struct Freed {
  void operator()(char* p) const { std::free(p); }
};
using OwnedString = std::unique_ptr<char, Freed>;

DType dtype_of(anychip_dtype d, const char* function) {
  if (static_cast<int>(d) < 0 || static_cast<std::size_t>(d) >= std::size(kAllDTypes))
    invalid(function, "dtype " + std::to_string(static_cast<int>(d)) + " is no anychip_dtype");
  return static_cast<DType>(d);
}

TensorType type_of(anychip_dtype dtype, const int64_t* shape, size_t rank, const anychip_scale_layout* scale,
                   const char* function) {
  TensorType t;
  t.dtype = dtype_of(dtype, function);
  if (rank > 0 && !shape) invalid(function, "shape is NULL with rank " + std::to_string(rank));
  t.shape.assign(shape, shape + rank);
  if (scale) t.scale = ScaleLayout{{scale->block_rows, scale->block_cols}, dtype_of(scale->dtype, function)};
  return t;
}

// Checks a tensor type the caller made up (as Graph::input does), as an argument error.
void check_type(const TensorType& t, const char* function) {
  try {
    ir::verify_type(t, t.str());
  } catch (const Error& e) {
    invalid(function, e.what());
  }
}

// Backends cast a queue to their own type: a stream of another device must not reach them.
void check_same_device(const Tensor& t, const Stream& s, const char* function) {
  const detail::DeviceImpl& td = *t.data().impl()->device;
  if (&td != s.device().impl().get())
    invalid(function, "the stream is on " + s.device().info().id + ", the tensor on " + td.device->info().id);
}

std::string value_name(const char* name) { return name ? name : ""; }

}  // namespace

anychip_status status_of_current_exception(const char* function) noexcept {
  anychip_status status = ANYCHIP_ERROR_INTERNAL;
  try {
    try {
      throw;
    } catch (const Error& e) {
      status = status_of(e.code());
      last_error() = e.what();
    } catch (const std::bad_alloc&) {
      status = ANYCHIP_ERROR_OUT_OF_MEMORY;
      last_error() = std::string(function) + ": out of memory";
    } catch (const std::exception& e) {
      last_error() = std::string(function) + ": internal error: " + e.what();
    } catch (...) {
      last_error() = std::string(function) + ": internal error: an exception of unknown type";
    }
  } catch (...) {
    // Not even the message fits in memory: keep the status, drop the text.
    last_error().clear();
  }
  return status;
}

}  // namespace anychip::capi

using namespace anychip;
using capi::guarded;
using capi::need;

extern "C" {

// ----- versions and errors -----

uint32_t anychip_abi_version(void) { return ANYCHIP_ABI_VERSION; }

const char* anychip_version_string(void) {
  static const std::string v(version());
  return v.c_str();
}

const char* anychip_last_error_message(void) { return capi::last_error().c_str(); }

const char* anychip_status_name(anychip_status status) {
  if (status == ANYCHIP_OK) return "ok";
  for (const auto& row : capi::kStatusOfCode)
    if (row.status == status) return error_code_name(row.code).data();
  return "unknown";
}

void anychip_free(void* p) { std::free(p); }

// ----- element types -----

const char* anychip_dtype_name(anychip_dtype dtype) {
  if (static_cast<int>(dtype) < 0 || static_cast<std::size_t>(dtype) >= std::size(kAllDTypes)) return nullptr;
  return dtype_name(static_cast<DType>(dtype)).data();
}

size_t anychip_dtype_size(anychip_dtype dtype) {
  if (static_cast<int>(dtype) < 0 || static_cast<std::size_t>(dtype) >= std::size(kAllDTypes)) return 0;
  return dtype_size(static_cast<DType>(dtype));
}

anychip_status anychip_encode(anychip_dtype dtype, const float* src, size_t n, void* dst) {
  constexpr const char* fn = "anychip_encode";
  return guarded(fn, [&] {
    const DType d = capi::dtype_of(dtype, fn);
    if (d == DType::ue8m0) capi::invalid(fn, "ue8m0 holds scales: use anychip_quantize");
    if (n == 0) return;
    need(src, fn, "src");
    need(dst, fn, "dst");
    std::vector<double> v(src, src + n);
    encode_values(d, v.data(), n, dst);
  });
}

anychip_status anychip_decode(anychip_dtype dtype, const void* src, size_t n, float* dst) {
  constexpr const char* fn = "anychip_decode";
  return guarded(fn, [&] {
    const DType d = capi::dtype_of(dtype, fn);
    if (n == 0) return;
    need(src, fn, "src");
    need(dst, fn, "dst");
    std::vector<double> v(n);
    decode_values(d, src, n, v.data());
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(v[i]);
  });
}

anychip_status anychip_quantize(const float* x, int64_t rows, int64_t cols, anychip_dtype fp8,
                                const anychip_scale_layout* layout, void* q, void* scales) {
  constexpr const char* fn = "anychip_quantize";
  return guarded(fn, [&] {
    const anychip_scale_layout& l = need(layout, fn, "layout");
    const int64_t shape[2] = {rows, cols};
    const TensorType t = capi::type_of(fp8, shape, 2, &l, fn);
    capi::check_type(t, fn);
    need(x, fn, "x");
    need(q, fn, "q");
    need(scales, fn, "scales");
    const auto n = static_cast<std::size_t>(t.numel());
    quantize_blocks({x, n}, rows, cols, t.scale->block, t.dtype, t.scale->dtype,
                    {static_cast<std::uint8_t*>(q), n}, {static_cast<std::byte*>(scales), t.scale_bytes()});
  });
}

// ----- devices -----

anychip_status anychip_device_count(size_t* count) {
  constexpr const char* fn = "anychip_device_count";
  return guarded(fn, [&] { need(count, fn, "count") = list_devices().size(); });
}

anychip_status anychip_device_info(size_t index, char** id, char** name, int* available, char** unavailable_reason) {
  constexpr const char* fn = "anychip_device_info";
  return guarded(fn, [&] {
    const std::vector<DeviceInfo> all = list_devices();
    if (index >= all.size())
      capi::invalid(fn, "index " + std::to_string(index) + " is past the " + std::to_string(all.size()) + " devices");
    const DeviceInfo& d = all[index];
    capi::OwnedString i(id ? capi::copy_out(d.id) : nullptr), n(name ? capi::copy_out(d.name) : nullptr),
        r(unavailable_reason ? capi::copy_out(d.available ? "" : d.unavailable_reason) : nullptr);
    if (id) *id = i.release();
    if (name) *name = n.release();
    if (unavailable_reason) *unavailable_reason = r.release();
    if (available) *available = d.available ? 1 : 0;
  });
}

anychip_status anychip_device_open(const char* id, uint32_t flags, anychip_device** out) {
  constexpr const char* fn = "anychip_device_open";
  return guarded(fn, [&] {
    need(id, fn, "id");
    need(out, fn, "out");
    constexpr uint32_t known = ANYCHIP_DEVICE_TIMING_ONLY | ANYCHIP_DEVICE_TRACE;
    if (flags & ~known) capi::invalid(fn, "unknown flags " + std::to_string(flags & ~known));
    DeviceOptions options;
    options.timing_only = (flags & ANYCHIP_DEVICE_TIMING_ONLY) != 0;
    options.trace = (flags & ANYCHIP_DEVICE_TRACE) != 0;
    *out = new anychip_device{Device::open(id, options)};
  });
}

void anychip_device_release(anychip_device* device) { delete device; }

anychip_status anychip_device_id(const anychip_device* device, char** id) {
  constexpr const char* fn = "anychip_device_id";
  return guarded(fn, [&] {
    const auto& d = need(device, fn, "device");
    need(id, fn, "id") = capi::copy_out(d.device.info().id);
  });
}

anychip_status anychip_device_take_trace(anychip_device* device, char** json) {
  constexpr const char* fn = "anychip_device_take_trace";
  return guarded(fn, [&] {
    auto& d = need(device, fn, "device");
    need(json, fn, "json");
    *json = capi::copy_out(d.device.take_trace());
  });
}

// ----- streams and events -----

anychip_status anychip_stream_create(anychip_device* device, anychip_stream** out) {
  constexpr const char* fn = "anychip_stream_create";
  return guarded(fn, [&] {
    auto& d = need(device, fn, "device");
    need(out, fn, "out") = new anychip_stream{d.device.create_stream()};
  });
}

void anychip_stream_release(anychip_stream* stream) { delete stream; }

anychip_status anychip_stream_synchronize(anychip_stream* stream) {
  constexpr const char* fn = "anychip_stream_synchronize";
  return guarded(fn, [&] { need(stream, fn, "stream").stream.synchronize(); });
}

anychip_status anychip_event_record(anychip_stream* stream, anychip_event** out) {
  constexpr const char* fn = "anychip_event_record";
  return guarded(fn, [&] {
    auto& s = need(stream, fn, "stream");
    need(out, fn, "out") = new anychip_event{s.stream.record()};
  });
}

void anychip_event_release(anychip_event* event) { delete event; }

anychip_status anychip_event_elapsed_seconds(const anychip_event* start, const anychip_event* end, double* seconds) {
  constexpr const char* fn = "anychip_event_elapsed_seconds";
  return guarded(fn, [&] {
    const auto& a = need(start, fn, "start");
    const auto& b = need(end, fn, "end");
    if (a.event.impl()->device != b.event.impl()->device) capi::invalid(fn, "the events are of different devices");
    need(seconds, fn, "seconds") = b.event.seconds_since(a.event);
  });
}

// ----- tensors -----

anychip_status anychip_tensor_create(anychip_device* device, anychip_dtype dtype, const int64_t* shape, size_t rank,
                                     const anychip_scale_layout* scale, anychip_tensor** out) {
  constexpr const char* fn = "anychip_tensor_create";
  return guarded(fn, [&] {
    auto& d = need(device, fn, "device");
    need(out, fn, "out");
    const TensorType t = capi::type_of(dtype, shape, rank, scale, fn);
    capi::check_type(t, fn);
    *out = new anychip_tensor{d.device.allocate(t)};
  });
}

void anychip_tensor_release(anychip_tensor* tensor) { delete tensor; }

anychip_status anychip_tensor_bytes(const anychip_tensor* tensor, size_t* data_bytes, size_t* scale_bytes) {
  constexpr const char* fn = "anychip_tensor_bytes";
  return guarded(fn, [&] {
    const TensorType& t = need(tensor, fn, "tensor").tensor.type();
    if (data_bytes) *data_bytes = t.data_bytes();
    if (scale_bytes) *scale_bytes = t.scale_bytes();
  });
}

anychip_status anychip_tensor_type(const anychip_tensor* tensor, anychip_dtype* dtype, size_t* rank, int64_t* shape,
                                   size_t capacity, int* scaled, anychip_scale_layout* scale) {
  constexpr const char* fn = "anychip_tensor_type";
  return guarded(fn, [&] {
    const TensorType& t = need(tensor, fn, "tensor").tensor.type();
    if (shape && capacity < t.shape.size())
      capi::invalid(fn, "shape has room for " + std::to_string(capacity) + " dims; " + t.str() + " has " +
                            std::to_string(t.shape.size()));
    if (dtype) *dtype = static_cast<anychip_dtype>(t.dtype);
    if (rank) *rank = t.shape.size();
    if (shape) std::copy(t.shape.begin(), t.shape.end(), shape);
    if (scaled) *scaled = t.scale ? 1 : 0;
    if (scale && t.scale)
      *scale = {t.scale->block.rows, t.scale->block.cols, static_cast<anychip_dtype>(t.scale->dtype)};
  });
}

anychip_status anychip_tensor_describe(const anychip_tensor* tensor, char** type) {
  constexpr const char* fn = "anychip_tensor_describe";
  return guarded(fn, [&] {
    const auto& t = need(tensor, fn, "tensor");
    need(type, fn, "type") = capi::copy_out(t.tensor.type().str());
  });
}

namespace {

// Host sizes of an upload or download must be the tensor's exactly; scales are optional
// on download.
void check_host_sizes(const Tensor& t, const void* data, size_t data_bytes, const void* scales, size_t scale_bytes,
                      bool scales_optional, const char* fn) {
  const TensorType& type = t.type();
  if (data_bytes != type.data_bytes())
    capi::invalid(fn, "tensor " + type.str() + " holds " + std::to_string(type.data_bytes()) + " data bytes, not " +
                          std::to_string(data_bytes));
  if (data_bytes > 0 && !data) capi::invalid(fn, "data is NULL");
  if (scales_optional && !scales && scale_bytes == 0) return;
  if (scale_bytes != type.scale_bytes())
    capi::invalid(fn, "tensor " + type.str() + " holds " + std::to_string(type.scale_bytes()) +
                          " scale bytes, not " + std::to_string(scale_bytes));
  if (scale_bytes > 0 && !scales) capi::invalid(fn, "scales is NULL");
}

}  // namespace

anychip_status anychip_tensor_upload(anychip_tensor* tensor, anychip_stream* stream, const void* data,
                                     size_t data_bytes, const void* scales, size_t scale_bytes) {
  constexpr const char* fn = "anychip_tensor_upload";
  return guarded(fn, [&] {
    const Tensor& t = need(tensor, fn, "tensor").tensor;
    Stream& s = need(stream, fn, "stream").stream;
    capi::check_same_device(t, s, fn);
    check_host_sizes(t, data, data_bytes, scales, scale_bytes, false, fn);
    if (data_bytes) t.data().write(s, data, data_bytes);
    if (scale_bytes) t.scales()->write(s, scales, scale_bytes);
    s.synchronize();
  });
}

anychip_status anychip_tensor_download(const anychip_tensor* tensor, anychip_stream* stream, void* data,
                                       size_t data_bytes, void* scales, size_t scale_bytes) {
  constexpr const char* fn = "anychip_tensor_download";
  return guarded(fn, [&] {
    const Tensor& t = need(tensor, fn, "tensor").tensor;
    Stream& s = need(stream, fn, "stream").stream;
    capi::check_same_device(t, s, fn);
    check_host_sizes(t, data, data_bytes, scales, scale_bytes, true, fn);
    if (data_bytes) t.data().read(s, data, data_bytes);
    if (scales && scale_bytes) t.scales()->read(s, scales, scale_bytes);
    s.synchronize();
  });
}

// ----- graphs -----

anychip_status anychip_graph_create(const char* name, anychip_graph** out) {
  constexpr const char* fn = "anychip_graph_create";
  return guarded(fn, [&] { need(out, fn, "out") = new anychip_graph{ir::Graph(name ? name : "main")}; });
}

anychip_status anychip_graph_parse(const char* text, const char* filename, anychip_graph** out) {
  constexpr const char* fn = "anychip_graph_parse";
  return guarded(fn, [&] {
    need(text, fn, "text");
    need(out, fn, "out") = new anychip_graph{ir::parse(text, filename ? filename : "<input>")};
  });
}

anychip_status anychip_graph_parse_file(const char* path, anychip_graph** out) {
  constexpr const char* fn = "anychip_graph_parse_file";
  return guarded(fn, [&] {
    need(path, fn, "path");
    need(out, fn, "out") = new anychip_graph{ir::parse_file(path)};
  });
}

void anychip_graph_release(anychip_graph* graph) { delete graph; }

anychip_status anychip_graph_add_input(anychip_graph* graph, const char* name, anychip_dtype dtype,
                                       const int64_t* shape, size_t rank, const anychip_scale_layout* scale,
                                       anychip_value* value) {
  constexpr const char* fn = "anychip_graph_add_input";
  return guarded(fn, [&] {
    auto& g = need(graph, fn, "graph");
    need(name, fn, "name");
    need(value, fn, "value");
    *value = g.graph.input(name, capi::type_of(dtype, shape, rank, scale, fn));
  });
}

namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// "name=value" as .acir writes an attribute of `op`, to what Graph::add takes. An unknown
// name passes through with a placeholder value, so that Graph::add reports it as it
// reports any unknown attribute (naming the op's attributes).
std::pair<std::string, ir::AttrValue> parse_attr(const ir::OpInfo& op, const std::string& label, const char* text,
                                                 const char* fn) {
  if (!text) capi::invalid(fn, "an attribute is NULL");
  const std::string_view t(text);
  const std::size_t eq = t.find('=');
  if (eq == std::string_view::npos) capi::invalid(fn, "attribute '" + std::string(t) + "' is not name=value");
  std::string name = trim(t.substr(0, eq)), value = trim(t.substr(eq + 1));
  for (const ir::AttrSpec& a : op.attrs) {
    if (a.name != name) continue;
    std::optional<ir::AttrValue> v = ir::detail::parse_attr_value(a.kind, value);
    if (!v)
      throw Error(ErrorCode::InvalidGraph, label + ": attribute '" + name + "' must be " +
                                               std::string(ir::detail::attr_kind_name(a.kind)) + ", got '" +
                                               value + "'");
    return {std::move(name), std::move(*v)};
  }
  return {std::move(name), ir::AttrValue(std::int64_t{0})};
}

}  // namespace

anychip_status anychip_graph_add_op(anychip_graph* graph, const char* op, const anychip_value* inputs,
                                    size_t n_inputs, const char* const* attrs, size_t n_attrs, const char* name,
                                    anychip_value* value) {
  constexpr const char* fn = "anychip_graph_add_op";
  return guarded(fn, [&] {
    auto& g = need(graph, fn, "graph");
    need(op, fn, "op");
    need(value, fn, "value");
    if (n_inputs > 0 && !inputs) capi::invalid(fn, "inputs is NULL with n_inputs " + std::to_string(n_inputs));
    if (n_attrs > 0 && !attrs) capi::invalid(fn, "attrs is NULL with n_attrs " + std::to_string(n_attrs));
    const std::optional<ir::OpKind> kind = ir::op_from_name(op);
    if (!kind) {
      std::string ops;
      for (const ir::OpInfo& o : ir::all_ops()) ops += (ops.empty() ? "" : ", ") + std::string(o.name);
      capi::invalid(fn, "unknown op '" + std::string(op) + "' (ops: " + ops + ")");
    }
    const ir::OpInfo& info = ir::op_info(*kind);
    const std::string label = std::string(info.name) + (name && *name ? " %" + std::string(name) : "");
    ir::NamedAttrs named;
    for (size_t i = 0; i < n_attrs; ++i) named.push_back(parse_attr(info, label, attrs[i], fn));
    *value = g.graph.add(*kind, std::vector<ir::ValueId>(inputs, inputs + n_inputs), std::move(named),
                         capi::value_name(name));
  });
}

anychip_status anychip_graph_mark_output(anychip_graph* graph, anychip_value value) {
  constexpr const char* fn = "anychip_graph_mark_output";
  return guarded(fn, [&] { need(graph, fn, "graph").graph.output(value); });
}

anychip_status anychip_graph_io_count(const anychip_graph* graph, size_t* inputs, size_t* outputs) {
  constexpr const char* fn = "anychip_graph_io_count";
  return guarded(fn, [&] {
    const ir::Graph& g = need(graph, fn, "graph").graph;
    if (inputs) *inputs = g.inputs().size();
    if (outputs) *outputs = g.outputs().size();
  });
}

anychip_status anychip_graph_print(const anychip_graph* graph, char** text) {
  constexpr const char* fn = "anychip_graph_print";
  return guarded(fn, [&] {
    const auto& g = need(graph, fn, "graph");
    need(text, fn, "text") = capi::copy_out(ir::print(g.graph));
  });
}

// ----- compile and run -----

anychip_status anychip_compile(const anychip_graph* graph, anychip_device* device, uint32_t flags,
                               const char* cache_dir, anychip_executable** out) {
  constexpr const char* fn = "anychip_compile";
  return guarded(fn, [&] {
    const auto& g = need(graph, fn, "graph");
    auto& d = need(device, fn, "device");
    need(out, fn, "out");
    if (flags & ~ANYCHIP_COMPILE_NO_CACHE)
      capi::invalid(fn, "unknown flags " + std::to_string(flags & ~ANYCHIP_COMPILE_NO_CACHE));
    CompileOptions options;
    options.use_cache = (flags & ANYCHIP_COMPILE_NO_CACHE) == 0;
    if (cache_dir) options.cache_dir = cache_dir;
    *out = new anychip_executable{compile(g.graph, d.device, options)};
  });
}

void anychip_executable_release(anychip_executable* exe) { delete exe; }

namespace {

anychip_status allocate_io(const anychip_executable* exe, size_t index, bool input, anychip_tensor** out,
                           const char* fn) {
  return guarded(fn, [&] {
    const Executable& x = need(exe, fn, "exe").exe;
    need(out, fn, "out");
    const auto& ids = input ? x.graph().inputs() : x.graph().outputs();
    if (index >= ids.size())
      capi::invalid(fn, "index " + std::to_string(index) + " is past the graph's " + std::to_string(ids.size()) +
                            (input ? " inputs" : " outputs"));
    *out = new anychip_tensor{x.device().allocate(x.graph().value(ids[index]).type)};
  });
}

std::vector<Tensor> tensors_of(const anychip_tensor* const* t, size_t n, const char* what, const char* fn) {
  if (n > 0 && !t) capi::invalid(fn, std::string(what) + " is NULL with a count of " + std::to_string(n));
  std::vector<Tensor> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!t[i]) capi::invalid(fn, std::string(what) + "[" + std::to_string(i) + "] is NULL");
    v.push_back(t[i]->tensor);
  }
  return v;
}

void check_kernel_count(const Executable& x, size_t count, const char* fn) {
  if (count != x.kernels().size())
    capi::invalid(fn, "count is " + std::to_string(count) + "; the executable runs " +
                          std::to_string(x.kernels().size()) + " kernels");
}

}  // namespace

anychip_status anychip_executable_allocate_input(const anychip_executable* exe, size_t index, anychip_tensor** out) {
  return allocate_io(exe, index, true, out, "anychip_executable_allocate_input");
}

anychip_status anychip_executable_allocate_output(const anychip_executable* exe, size_t index, anychip_tensor** out) {
  return allocate_io(exe, index, false, out, "anychip_executable_allocate_output");
}

anychip_status anychip_executable_run(anychip_executable* exe, anychip_stream* stream,
                                      const anychip_tensor* const* inputs, size_t n_inputs,
                                      const anychip_tensor* const* outputs, size_t n_outputs) {
  constexpr const char* fn = "anychip_executable_run";
  return guarded(fn, [&] {
    Executable& x = need(exe, fn, "exe").exe;
    Stream& s = need(stream, fn, "stream").stream;
    const std::vector<Tensor> in = tensors_of(inputs, n_inputs, "inputs", fn);
    const std::vector<Tensor> out = tensors_of(outputs, n_outputs, "outputs", fn);
    // Executable::run checks the stream; a tensor of another device would reach the backend.
    for (const std::vector<Tensor>* v : {&in, &out})
      for (const Tensor& t : *v)
        if (t.data().impl()->device != x.device().impl())
          capi::invalid(fn, "a tensor is on another device than the executable (" + x.device().info().id + ")");
    x.run(s, in, out);
  });
}

anychip_status anychip_executable_kernel_count(const anychip_executable* exe, size_t* count) {
  constexpr const char* fn = "anychip_executable_kernel_count";
  return guarded(fn, [&] {
    const Executable& x = need(exe, fn, "exe").exe;
    need(count, fn, "count") = x.kernels().size();
  });
}

anychip_status anychip_executable_kernel_info(const anychip_executable* exe, size_t index, char** label, char** op,
                                              double* flops, double* min_bytes) {
  constexpr const char* fn = "anychip_executable_kernel_info";
  return guarded(fn, [&] {
    const Executable& x = need(exe, fn, "exe").exe;
    if (index >= x.kernels().size())
      capi::invalid(fn, "index " + std::to_string(index) + " is past the " + std::to_string(x.kernels().size()) +
                            " kernels");
    const KernelInfo& k = x.kernels()[index];
    capi::OwnedString l(label ? capi::copy_out(k.label) : nullptr), o(op ? capi::copy_out(k.op) : nullptr);
    if (label) *label = l.release();
    if (op) *op = o.release();
    if (flops) *flops = k.flops;
    if (min_bytes) *min_bytes = k.min_bytes;
  });
}

anychip_status anychip_executable_last_kernel_seconds(anychip_executable* exe, anychip_stream* stream,
                                                      double* seconds, size_t count) {
  constexpr const char* fn = "anychip_executable_last_kernel_seconds";
  return guarded(fn, [&] {
    const Executable& x = need(exe, fn, "exe").exe;
    Stream& s = need(stream, fn, "stream").stream;
    check_kernel_count(x, count, fn);
    if (count > 0) need(seconds, fn, "seconds");
    const std::vector<double> t = x.last_kernel_seconds(s);
    if (t.size() != count) capi::invalid(fn, "the executable has not run");
    std::copy(t.begin(), t.end(), seconds);
  });
}

anychip_status anychip_executable_check_last_run(anychip_executable* exe, anychip_stream* stream, size_t count,
                                                 double* rel_err, double* tolerance, int* ok, int* all_ok) {
  constexpr const char* fn = "anychip_executable_check_last_run";
  return guarded(fn, [&] {
    const Executable& x = need(exe, fn, "exe").exe;
    Stream& s = need(stream, fn, "stream").stream;
    check_kernel_count(x, count, fn);
    const std::vector<KernelCheck> checks = x.check_last_run(s);
    bool every = true;
    for (size_t i = 0; i < checks.size(); ++i) {
      if (rel_err) rel_err[i] = checks[i].rel_err;
      if (tolerance) tolerance[i] = checks[i].tolerance;
      if (ok) ok[i] = checks[i].ok ? 1 : 0;
      every = every && checks[i].ok;
    }
    if (all_ok) *all_ok = every ? 1 : 0;
  });
}

}  // extern "C"
