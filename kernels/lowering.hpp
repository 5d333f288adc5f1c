// Lowering: one verified IR node to the concrete problem its kernel solves.
#pragma once

#include <optional>

#include "anychip/ir.hpp"
#include "kernels/problems.hpp"

namespace anychip::kernels {

// The problem of a Kernel-category node; nullopt for a View (reshape), which needs no
// kernel. The node must come from a verified graph.
std::optional<Problem> lower(const ir::Graph& graph, const ir::Node& node);

}  // namespace anychip::kernels
