// KernelSpec: everything that decides the code of one kernel: the problem (op, concrete
// shapes, dtypes, scale layout, resolved attributes) and the tile configuration chosen
// for the target device. Its canonical text is part of the kernel-cache key.
#pragma once

#include <string>

#include "kernels/problems.hpp"

namespace anychip::kernels {

// Tile sizes a backend chose for one problem; zero means "not used by this kernel".
struct TileConfig {
  int m = 0, n = 0, k = 0;
  int stages = 0;
  friend bool operator==(const TileConfig&, const TileConfig&) = default;
};

struct KernelSpec {
  Problem problem;
  TileConfig tiles;
  friend bool operator==(const KernelSpec&, const KernelSpec&) = default;
};

// The op's name in the IR ("gemm_fp8", "attention", ...).
std::string_view op_name(const Problem& p);

// One line that identifies the spec exactly, e.g.
// "gemm_fp8 m=256 n=384 k=512 a=f8e4m3 b=f8e4m3 sa=ue8m0 sb=ue8m0 out=f32 tiles=64x128x128s2".
std::string describe(const KernelSpec& spec);

}  // namespace anychip::kernels
