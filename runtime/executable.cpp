// compile() and Executable: the pipeline from a verified graph to kernels on a device.
#include <map>

#include "kernels/lowering.hpp"
#include "kernels/reference/reference.hpp"
#include "kernels/reference/tolerance.hpp"
#include "runtime/handles.hpp"
#include "runtime/kernel_cache.hpp"

namespace anychip {
namespace detail {

struct ExecutableImpl {
  struct Step {
    std::size_t node;
    kernels::KernelSpec spec;
    std::shared_ptr<backends::Kernel> kernel;
  };

  ExecutableImpl(ir::Graph g, Device d) : graph(std::move(g)), device(std::move(d)) {}

  ir::Graph graph;
  Device device;
  std::vector<Step> steps;
  std::vector<KernelInfo> infos;
  std::vector<ir::ValueId> root;            // the value whose memory each value uses
  std::vector<std::optional<Tensor>> owned;  // intermediates, by root value
  std::vector<std::optional<Tensor>> bound;  // every root value's tensor in the last run
  std::vector<Event> events;                 // the last run: one before each step, one after all
  std::optional<Stream> last_stream;
  CacheStats cache;

  // The tensor of value v in the last run (a view shares its root's buffers).
  Tensor tensor_of(ir::ValueId v) const {
    const auto& t = bound[static_cast<std::size_t>(root[static_cast<std::size_t>(v)])];
    if (!t) throw Error(ErrorCode::InvalidArgument, "executable: no run yet");
    const TensorType& type = graph.value(v).type;
    return type == t->type() ? *t : Tensor(type, t->data(), t->scales());
  }
};

}  // namespace detail

namespace {

backends::Device& backend_device(const Device& d) { return *d.impl()->device; }

backends::BufferOperand operand_of(const Tensor& t) {
  backends::BufferOperand op;
  op.data = t.data().impl()->buffer.get();
  if (t.scales()) op.scales = t.scales()->impl()->buffer.get();
  return op;
}

void check_type(const Tensor& t, const ir::Value& v, const char* what) {
  if (t.type() != v.type)
    throw Error(ErrorCode::InvalidArgument, std::string("run: ") + what + " %" + v.name + ": expected " +
                                                v.type.str() + ", got " + t.type().str());
}

// The backend casts a tensor's buffers to its own type: they must be the device's.
void check_device(const Tensor& t, const ir::Value& v, const Device& device, const char* what) {
  const bool ours = t.data().impl()->device == device.impl() &&
                    (!t.scales() || t.scales()->impl()->device == device.impl());
  if (!ours)
    throw Error(ErrorCode::InvalidArgument, std::string("run: ") + what + " %" + v.name +
                                                " is in the memory of another device than " +
                                                device.info().id + "'s");
}

}  // namespace

Executable compile(const ir::Graph& graph, const Device& device, const CompileOptions& options) {
  ir::verify(graph);
  auto impl = std::make_shared<detail::ExecutableImpl>(graph, device);
  const ir::Graph& g = impl->graph;
  backends::Device& dev = backend_device(device);

  // Views share the memory of their root value.
  impl->root.resize(g.values().size());
  for (std::size_t v = 0; v < g.values().size(); ++v) {
    impl->root[v] = static_cast<ir::ValueId>(v);
    std::int32_t p = g.values()[v].producer;
    if (p >= 0 && ir::op_info(g.nodes()[static_cast<std::size_t>(p)].op).category == ir::OpCategory::View)
      impl->root[v] = impl->root[static_cast<std::size_t>(g.nodes()[static_cast<std::size_t>(p)].inputs[0])];
  }
  std::vector<bool> is_output_root(g.values().size(), false);
  for (ir::ValueId out : g.outputs()) {
    auto r = static_cast<std::size_t>(impl->root[static_cast<std::size_t>(out)]);
    if (g.values()[r].producer < 0)
      throw Error(ErrorCode::InvalidGraph, "graph @" + g.name() + ": output %" + g.value(out).name +
                                               " is a graph input (or a view of one); nothing computes it");
    if (is_output_root[r])
      throw Error(ErrorCode::InvalidGraph, "graph @" + g.name() + ": output %" + g.value(out).name +
                                               " shares its memory with another output");
    is_output_root[r] = true;
  }

  rt::KernelCache cache(options.cache_dir.empty() ? rt::KernelCache::default_dir()
                                                  : std::filesystem::path(options.cache_dir));
  std::map<std::string, std::shared_ptr<backends::Kernel>> loaded;  // identical specs share a kernel
  for (std::size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& node = g.nodes()[i];
    std::optional<kernels::Problem> problem = kernels::lower(g, node);
    if (!problem) continue;
    kernels::KernelSpec spec{*problem, dev.choose_tiles(*problem)};
    if (backends::Support s = dev.supports(spec); !s.ok)
      throw Error(ErrorCode::Unsupported, dev.info().id + " cannot run " + g.label(node) + ": " + s.reason);
    const std::string source = dev.render(spec);
    const std::string key = rt::KernelCache::key(
        {kernels::describe(spec), source, dev.compiler_id(), dev.info().id, version()});
    std::shared_ptr<backends::Kernel> kernel;
    if (auto it = loaded.find(key); it != loaded.end()) kernel = it->second;
    if (!kernel && options.use_cache) {
      if (auto binary = cache.load(key)) {
        try {
          kernel = dev.load(spec, *binary);
        } catch (const Error&) {
          cache.remove(key);  // stale or foreign: rebuild below
        }
      }
    }
    if (!kernel) {
      std::vector<std::byte> binary = dev.compile(spec, source);
      if (options.use_cache) cache.store(key, binary);
      kernel = dev.load(spec, binary);
    }
    loaded[key] = kernel;
    impl->infos.push_back({g.label(node), std::string(ir::op_info(node.op).name), kernels::describe(spec),
                           kernels::problem_flops(*problem), kernels::problem_min_bytes(*problem)});
    impl->steps.push_back({i, std::move(spec), std::move(kernel)});
  }
  auto s = cache.stats();
  impl->cache = {s.hits, s.misses, s.corrupt, s.write_failures};

  // Intermediates live as long as the executable; outputs are the caller's.
  impl->owned.resize(g.values().size());
  impl->bound.resize(g.values().size());
  for (std::size_t v = 0; v < g.values().size(); ++v)
    if (impl->root[v] == static_cast<ir::ValueId>(v) && g.values()[v].producer >= 0 && !is_output_root[v])
      impl->owned[v] = device.allocate(g.values()[v].type);
  return Executable(std::move(impl));
}

const ir::Graph& Executable::graph() const { return impl_->graph; }
const Device& Executable::device() const { return impl_->device; }
const std::vector<KernelInfo>& Executable::kernels() const { return impl_->infos; }
CacheStats Executable::cache_stats() const { return impl_->cache; }

std::vector<Tensor> Executable::allocate_outputs() const {
  std::vector<Tensor> out;
  for (ir::ValueId v : impl_->graph.outputs()) out.push_back(impl_->device.allocate(impl_->graph.value(v).type));
  return out;
}

void Executable::run(Stream& stream, std::span<const Tensor> inputs, std::span<const Tensor> outputs) {
  detail::ExecutableImpl& x = *impl_;
  const ir::Graph& g = x.graph;
  if (inputs.size() != g.inputs().size() || outputs.size() != g.outputs().size())
    throw Error(ErrorCode::InvalidArgument,
                "run: graph @" + g.name() + " takes " + std::to_string(g.inputs().size()) + " inputs and " +
                    std::to_string(g.outputs().size()) + " outputs, got " + std::to_string(inputs.size()) +
                    " and " + std::to_string(outputs.size()));
  if (stream.device().impl() != x.device.impl())
    throw Error(ErrorCode::InvalidArgument, "run: the stream belongs to another device than the executable");
  for (std::size_t v = 0; v < g.values().size(); ++v) x.bound[v] = x.owned[v];
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    check_type(inputs[i], g.value(g.inputs()[i]), "input");
    check_device(inputs[i], g.value(g.inputs()[i]), x.device, "input");
    x.bound[static_cast<std::size_t>(g.inputs()[i])] = inputs[i];
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const ir::ValueId v = g.outputs()[i];
    check_type(outputs[i], g.value(v), "output");
    check_device(outputs[i], g.value(v), x.device, "output");
    const auto r = static_cast<std::size_t>(x.root[static_cast<std::size_t>(v)]);
    x.bound[r] = Tensor(g.values()[r].type, outputs[i].data(), outputs[i].scales());
  }

  backends::Device& dev = backend_device(x.device);
  backends::Queue& queue = *stream.impl()->queue;
  x.events.clear();
  x.last_stream = stream;
  std::vector<backends::BufferOperand> in;
  for (const auto& step : x.steps) {
    const ir::Node& node = g.nodes()[step.node];
    in.clear();
    for (ir::ValueId v : node.inputs) in.push_back(operand_of(x.tensor_of(v)));
    x.events.push_back(stream.record());
    dev.launch(queue, *step.kernel, in, operand_of(x.tensor_of(node.output)));
  }
  x.events.push_back(stream.record());
}

std::vector<double> Executable::last_kernel_seconds(Stream& stream) const {
  stream.synchronize();
  std::vector<double> s;
  for (std::size_t i = 0; i + 1 < impl_->events.size(); ++i)
    s.push_back(impl_->events[i + 1].seconds_since(impl_->events[i]));
  return s;
}

std::vector<std::map<std::string, double>> Executable::last_kernel_counters(Stream& stream) const {
  stream.synchronize();
  std::vector<std::map<std::string, double>> c;
  backends::Device& dev = backend_device(impl_->device);
  for (std::size_t i = 0; i + 1 < impl_->events.size(); ++i)
    c.push_back(dev.counters(*impl_->events[i].impl()->event, *impl_->events[i + 1].impl()->event));
  return c;
}

std::vector<KernelCheck> Executable::check_last_run(Stream& stream) const {
  const detail::ExecutableImpl& x = *impl_;
  if (x.events.empty()) throw Error(ErrorCode::InvalidArgument, "check_last_run: the executable has not run");
  stream.synchronize();
  std::vector<KernelCheck> checks;
  for (std::size_t s = 0; s < x.steps.size(); ++s) {
    const auto& step = x.steps[s];
    const ir::Node& node = x.graph.nodes()[step.node];
    std::vector<HostTensor> host;
    for (ir::ValueId v : node.inputs) host.push_back(x.tensor_of(v).download(stream));
    std::vector<kernels::ConstOperand> in;
    for (const HostTensor& h : host)
      in.push_back({h.data.data(), h.scales.empty() ? nullptr : h.scales.data()});
    const HostTensor out = x.tensor_of(node.output).download(stream);
    std::vector<double> ref(static_cast<std::size_t>(out.type.numel()));
    kernels::reference::run(step.spec.problem, in, ref.data());
    KernelCheck c;
    c.label = x.infos[s].label;
    // rel_err, except where values cannot be compared one by one (moe_topk's near-ties).
    c.rel_err = kernels::reference::mismatch(step.spec.problem, in, ref, out.values());
    c.tolerance = kernels::reference::tolerance(step.spec.problem);
    c.ok = c.rel_err <= c.tolerance;
    checks.push_back(std::move(c));
  }
  return checks;
}

}  // namespace anychip
