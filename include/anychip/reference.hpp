// Whole-graph evaluation on the host with the float64 reference kernels: the oracle for a
// graph's end-to-end result, as Executable::check_last_run is the oracle for one kernel.
//
// Each op is computed exactly (kernels/reference: inputs decoded exactly, float64
// arithmetic), then its result is stored as a device stores it: rounded to the value's
// declared dtype (bf16, f32, i32), or, for quantize_fp8, quantized by the DeepSeek recipe
// (anychip/quantize.hpp) from its stored input, which is exact arithmetic and what every
// device must do bit for bit. So the evaluation and a device differ only where a device's
// fp32 arithmetic lands a value on the other side of a rounding boundary of a stored
// dtype, and in what such a difference does downstream; a check states its bound with that
// in mind.
//
// Discrete decisions (moe_topk's choice of experts) can flip at a near-tie for the same
// reason. ReferenceOptions::given takes such a value as given, e.g. from a device run, so
// that the rest of the graph is compared on the same decision; the caller checks the
// decision itself (a flip must be a near-tie).
//
// Threads: evaluate_reference keeps no state; calls may run concurrently.
#pragma once

#include <map>
#include <span>
#include <vector>

#include "anychip/ir.hpp"
#include "anychip/tensor.hpp"

namespace anychip {

struct ReferenceOptions {
  // Values taken as given instead of computed, by value id. Each must have the value's
  // type; a graph input may not be given here (pass it as an input).
  std::map<ir::ValueId, HostTensor> given;
};

// Evaluates `graph` on `inputs` (the graph's inputs, in order, of their declared types).
// Returns every value of the graph as stored, indexed by ValueId (so outputs are
// result[graph.outputs()[i]]). Throws InvalidArgument for a missing or mistyped input or
// given value, InvalidGraph for a graph that does not verify, and Unsupported for an op
// the reference does not implement.
std::vector<HostTensor> evaluate_reference(const ir::Graph& graph,
                                           std::span<const HostTensor> inputs,
                                           const ReferenceOptions& options = {});

}  // namespace anychip
