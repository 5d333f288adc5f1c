#include "layer_checks.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "anychip/error.hpp"
#include "anychip/reference.hpp"

namespace deepseek_layer {

using anychip::Error;
using anychip::ErrorCode;
using anychip::HostTensor;
using anychip::ir::Graph;
using anychip::ir::ValueId;

namespace {

ValueId value_named(const Graph& g, const char* name) {
  if (auto v = g.find(name)) return *v;
  throw Error(ErrorCode::Internal, "graph @" + g.name() + " has no value %" + name);
}

std::set<int> experts_of(const HostTensor& experts, std::int64_t row) {
  const std::int64_t k = experts.type.shape[1];
  std::set<int> s;
  for (std::int64_t j = 0; j < k; ++j) {
    std::int32_t e;
    std::memcpy(&e, experts.data.data() + (row * k + j) * 4, 4);
    s.insert(e);
  }
  return s;
}

std::string set_str(const std::set<int>& s) {
  std::string r = "{";
  for (int e : s) {
    if (r.size() > 1) r += ',';
    r += std::to_string(e);
  }
  return r + "}";
}

CheckLine compare(std::string what, const HostTensor& got, const HostTensor& want, double bound) {
  CheckLine l;
  l.what = std::move(what);
  l.rel_err = anychip::rel_err(got.values(), want.values());
  l.bound = bound;
  l.ok = l.rel_err <= bound;
  return l;
}

}  // namespace

HostTensor take_rows(const HostTensor& t, std::int64_t n) {
  if (t.type.scale || t.type.shape.empty() || n < 1 || n > t.type.shape[0])
    throw Error(ErrorCode::InvalidArgument,
                "take_rows: " + std::to_string(n) + " rows of " + t.type.str());
  anychip::TensorType type = t.type;
  type.shape[0] = n;
  HostTensor r(type);
  std::memcpy(r.data.data(), t.data.data(), r.data.size());
  return r;
}

HostTensor take_row(const HostTensor& t, std::int64_t row) {
  if (t.type.scale || t.type.shape.empty() || row < 0 || row >= t.type.shape[0])
    throw Error(ErrorCode::InvalidArgument,
                "take_row: row " + std::to_string(row) + " of " + t.type.str());
  anychip::TensorType type = t.type;
  type.shape[0] = 1;
  HostTensor r(type);
  std::memcpy(r.data.data(), t.data.data() + static_cast<std::size_t>(row) * r.data.size(),
              r.data.size());
  return r;
}

std::vector<CheckLine> check_against_reference(const LayerConfig& c, const Graph& graph,
                                               std::span<const HostTensor> inputs,
                                               std::span<const HostTensor> outputs,
                                               const std::string& phase) {
  const ValueId out = graph.outputs()[0], kv = graph.outputs()[1], experts = graph.outputs()[2],
                o = graph.outputs()[3];
  std::vector<HostTensor> ref = anychip::evaluate_reference(graph, inputs);

  // Routing: the device's choice per token against the evaluation's.
  const std::vector<double> logits =
      ref[static_cast<std::size_t>(value_named(graph, "router_logits"))].values();
  const std::vector<double> bias =
      ref[static_cast<std::size_t>(value_named(graph, "router_bias"))].values();
  const std::int64_t tokens = outputs[2].type.shape[0];
  auto key = [&](std::int64_t t, int e) {
    return 1.0 / (1.0 + std::exp(-logits[static_cast<std::size_t>(t * c.experts + e)])) +
           bias[static_cast<std::size_t>(e)];
  };
  CheckLine routing{phase + " routing vs float64 evaluation", 0, kRoutingTieBound, true, ""};
  int flipped = 0;
  for (std::int64_t t = 0; t < tokens; ++t) {
    const std::set<int> dev = experts_of(outputs[2], t),
                        want = experts_of(ref[static_cast<std::size_t>(experts)], t);
    if (dev == want) continue;
    ++flipped;
    double weakest = INFINITY;
    for (int e : want) weakest = std::min(weakest, key(t, e));
    double gap = 0;
    for (int e : dev)
      if (!want.count(e)) gap = std::max(gap, weakest - key(t, e));
    routing.rel_err = std::max(routing.rel_err, gap);
    if (routing.note.size() < 200)
      routing.note +=
          "token " + std::to_string(t) + ": " + set_str(dev) + " vs " + set_str(want) + "; ";
  }
  routing.ok = routing.rel_err <= routing.bound;
  if (flipped) {
    routing.note = std::to_string(flipped) + " of " + std::to_string(tokens) +
                   " tokens routed differently (largest key gap is rel_err): " + routing.note +
                   "the evaluation below takes the device's routing";
    anychip::ReferenceOptions given;
    given.given[experts] = outputs[2];
    ref = anychip::evaluate_reference(graph, inputs, given);
  } else {
    routing.note = "all " + std::to_string(tokens) + " tokens routed as in float64";
  }
  std::vector<CheckLine> lines;
  lines.push_back(std::move(routing));
  lines.push_back(compare(phase + " out vs float64 evaluation", outputs[0],
                          ref[static_cast<std::size_t>(out)], kEndToEndBound));
  lines.push_back(compare(phase + " kv vs float64 evaluation", outputs[1],
                          ref[static_cast<std::size_t>(kv)], kLatentBound));
  lines.push_back(compare(phase + " o vs float64 evaluation", outputs[3],
                          ref[static_cast<std::size_t>(o)], kEndToEndBound));
  return lines;
}

std::vector<CheckLine> check_decode_vs_prefill(const Graph& decode,
                                               std::span<const HostTensor> decode_inputs,
                                               std::span<const HostTensor> decode_outputs,
                                               std::span<const HostTensor> prefill_outputs,
                                               std::int64_t row) {
  std::vector<CheckLine> lines;
  const HostTensor pre_out = take_row(prefill_outputs[0], row);
  const HostTensor pre_kv = take_row(prefill_outputs[1], row);
  const HostTensor pre_experts = take_row(prefill_outputs[2], row);
  const std::string r = std::to_string(row);
  lines.push_back(
      compare("decode kv row vs prefill row " + r, decode_outputs[1], pre_kv, kLatentRowBound));
  lines.push_back(compare("decode o (absorbed) vs prefill row " + r, decode_outputs[3],
                          take_row(prefill_outputs[3], row), kAttentionFormsBound));
  const std::set<int> dec = experts_of(decode_outputs[2], 0), pre = experts_of(pre_experts, 0);
  if (dec == pre) {
    CheckLine l = compare("decode out vs prefill row " + r, decode_outputs[0], pre_out,
                          kDecodeVsPrefillBound);
    l.note = "same routing " + set_str(dec);
    lines.push_back(std::move(l));
    return lines;
  }
  // A near-tie decided the other way by the drift of the absorbed form: compare the decode
  // as it would be with the prefill's routing, in float64, instead.
  anychip::ReferenceOptions given;
  given.given[decode.outputs()[2]] = pre_experts;
  const std::vector<HostTensor> ref = anychip::evaluate_reference(decode, decode_inputs, given);
  CheckLine l = compare("decode (float64, prefill's routing) out vs prefill row " + r,
                        ref[static_cast<std::size_t>(decode.outputs()[0])], pre_out,
                        kDecodeVsPrefillBound + kEndToEndBound);
  l.note = "decode routed " + set_str(dec) + ", prefill " + set_str(pre) + " (a near-tie)";
  lines.push_back(std::move(l));
  return lines;
}

}  // namespace deepseek_layer
