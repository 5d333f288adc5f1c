// What a user can ask without running anything: the kernels a device would run, and the
// simulator's chips.
#include "kernels/lowering.hpp"
#include "runtime/handles.hpp"
#include "simulator/chip.hpp"

namespace anychip {

std::string emit(const ir::Graph& graph, const Device& device, std::string_view format) {
  ir::verify(graph);
  backends::Device& dev = *device.impl()->device;
  std::string out;
  for (const ir::Node& node : graph.nodes()) {
    std::optional<kernels::Problem> problem = kernels::lower(graph, node);
    if (!problem) continue;
    kernels::KernelSpec spec{*problem, dev.choose_tiles(*problem)};
    if (backends::Support s = dev.supports(spec); !s.ok)
      throw Error(ErrorCode::Unsupported, dev.info().id + " cannot run " + graph.label(node) + ": " + s.reason);
    std::string text = dev.emit(spec, format);
    if (format == "source") out += "// " + graph.label(node) + " on " + dev.info().id + "\n";
    out += text;
    if (!out.empty() && out.back() != '\n') out += '\n';
  }
  return out;
}

std::vector<std::string> chip_presets() { return sim::preset_names(); }

std::string chip_json(std::string_view preset_or_path) {
  return sim::chip_to_json(sim::load_chip(preset_or_path));
}

}  // namespace anychip
