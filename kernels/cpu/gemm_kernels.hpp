// Internals of the CPU GEMMs (cpu::gemm_fp8, cpu::gemm): the instruction-set ladder, the
// one argument block both GEMMs reduce to, and the per-ISA engines the driver calls.
//
// Shape of the computation (the GotoBLAS/BLIS loop nest, one C tile per TBB task):
//   driver (gemm_driver.cpp):  C is cut into tiles of mc x nc; tiles run in parallel.
//   tile   (gemm_tile.hpp):    for each K chunk of kc: decode+pack the A rows (row-major,
//                              bf16 or f32) and the B columns (k-major micro-panels of nr
//                              columns), then run the mr x nr micro-kernel over the tile,
//                              accumulating into an fp32 tile buffer; finally round the
//                              buffer to the output dtype.
//   engine (gemm_avx512*.cpp, gemm_avx2.cpp, gemm_generic.cpp): the packing routines and
//                              micro-kernels of one instruction set, each compiled for that
//                              ISA with #pragma GCC target, so one binary runs everywhere.
// With block scales (FP8), the micro-kernel sums each 128-wide K block in registers and
// adds partial * (sA[m,b] * sB[n/128,b]) to the tile buffer ("promotion"); nr divides 128,
// so one micro-tile sees one sB per block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anychip/dtype.hpp"

namespace anychip::kernels::cpu::gemm_detail {

// Ordered: a CPU that runs one runs every lower one.
enum class Isa : int { generic = 0, avx2 = 1, avx512bf16 = 2 };

std::string_view isa_name(Isa isa);
// The best instruction set this CPU (and OS) supports; detected once.
Isa detected_isa();
// detected_isa(), lowered by ANYCHIP_CPU_ISA=avx2|generic (read on every call, so tests
// can switch paths). Throws anychip::Error for an unknown value.
Isa active_isa();

// D[m,n] = sum_k A[m,k] * B[n,k] ("NT", both row-major, dense), or, when a_scales is
// set, the block-scaled FP8 GEMM of DESIGN.md (K % 128 == 0, A scales 1x128, B scales
// 128x128). A and B are both FP8 (f8e4m3/f8e5m2, independently) or both the same float
// dtype (f32 or bf16). Arguments are validated by the public entry points.
struct GemmArgs {
  std::int64_t m = 0, n = 0, k = 0;
  DType a_dtype = DType::f32, b_dtype = DType::f32;
  const void* a = nullptr;
  const void* b = nullptr;
  const void* a_scales = nullptr;  // [m, k/128]
  const void* b_scales = nullptr;  // [ceil(n/128), k/128]
  DType a_scale_dtype = DType::f32, b_scale_dtype = DType::f32;
  void* d = nullptr;
  DType out_dtype = DType::f32;

  bool scaled() const { return a_scales != nullptr; }
};

// One C tile: rows [i0, i0+mc), columns [j0, j0+nc); j0 is a multiple of the engine's nr.
struct Tile {
  std::int64_t i0 = 0, mc = 0, j0 = 0, nc = 0;
};

// The blocking of one engine and the function that computes one tile.
struct Engine {
  std::string_view name;  // "avx512bf16 bf16-dot", "avx2 f32-fma", ...
  int mr = 0, nr = 0;     // micro-tile; nr divides 128
  int mc = 0, nc = 0;     // largest tile (mc a multiple of mr, nc of nr)
  int kc = 0;             // K chunk packed at a time (a multiple of 128)
  // Scratch bytes one tile of at most mc x nc needs (packed panels, scales, fp32 tile).
  std::size_t (*workspace_bytes)(std::int64_t mc, std::int64_t nc) = nullptr;
  // Computes tile t of D. workspace: workspace_bytes(t.mc, t.nc) bytes, 64-byte aligned.
  void (*tile)(const GemmArgs& g, const Tile& t, std::byte* workspace) = nullptr;
};

// Whether the CPU has AVX-512 VBMI (byte permutes: the faster FP8 decoder); detected once.
bool cpu_has_avx512vbmi();

// The engine of each instruction set for these arguments (FP8, bf16 or f32 inputs).
// engine_avx512 needs Isa::avx512bf16 (and, when vbmi is true, cpu_has_avx512vbmi());
// engine_avx512_vbmi is its VBMI variant; engine_avx2 needs Isa::avx2.
Engine engine_avx512(const GemmArgs& g, bool vbmi);
Engine engine_avx512_vbmi(const GemmArgs& g);
Engine engine_avx2(const GemmArgs& g);
Engine engine_generic(const GemmArgs& g);

// The engine active_isa() selects for g.
Engine select_engine(const GemmArgs& g);

// Runs g on all cores (oneTBB) with the engine of active_isa(), or with engine e. M, N or
// K may be 0.
void run_gemm(const GemmArgs& g);
void run_gemm(const GemmArgs& g, const Engine& e);

}  // namespace anychip::kernels::cpu::gemm_detail
