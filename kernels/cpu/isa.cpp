// Run-time instruction-set selection for the CPU kernels.
//
// The library is built for baseline x86-64; faster paths are compiled with per-function
// targets and chosen here from CPUID (and XGETBV: the OS must save the wider registers).
//   avx512bf16  AVX-512 F/BW/VL/DQ + AVX512_BF16 (vdpbf16ps), e.g. AMD Zen 4, Intel
//               Cooper Lake / Sapphire Rapids
//   avx2        AVX2 + FMA + F16C + BMI1/2 (Intel Haswell, AMD Zen 1 and later)
//   generic     portable C++
// ANYCHIP_CPU_ISA=avx2|generic forces a lower path (tests, comparisons); naming a path
// above what the CPU has keeps the detected one; any other value is an error.
#include <cstdlib>
#include <string>
#include <string_view>

#include "anychip/error.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/gemm_kernels.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace anychip::kernels::cpu {
namespace gemm_detail {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
Isa detect() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::generic;
  const bool osxsave = ecx & (1u << 27), avx = ecx & (1u << 28), fma = ecx & (1u << 12), f16c = ecx & (1u << 29);
  if (!osxsave || !avx) return Isa::generic;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool os_ymm = (xcr0_lo & 0x6u) == 0x6u;             // SSE and AVX state
  const bool os_zmm = (xcr0_lo & 0xE6u) == 0xE6u;           // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!os_ymm || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return Isa::generic;
  // The avx2 path is compiled for AVX2, FMA, F16C, BMI1 and BMI2 (all of Haswell / Zen).
  const bool avx2 = (ebx & (1u << 5)) && fma && f16c && (ebx & (1u << 3)) && (ebx & (1u << 8));
  const bool avx512 = (ebx & (1u << 16)) && (ebx & (1u << 17)) && (ebx & (1u << 30)) && (ebx & (1u << 31));
  const unsigned max_subleaf = eax;
  bool bf16 = false;
  if (max_subleaf >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) bf16 = eax & (1u << 5);
  if (os_zmm && avx512 && bf16 && avx2) return Isa::avx512bf16;
  if (avx2) return Isa::avx2;
  return Isa::generic;
}
bool detect_avx512vbmi() {
  unsigned eax, ebx, ecx, edx;
  if (detected_isa() != Isa::avx512bf16 || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ecx & (1u << 1);
}
#else
Isa detect() { return Isa::generic; }
bool detect_avx512vbmi() { return false; }
#endif

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512bf16: return "avx512bf16";
    case Isa::avx2: return "avx2";
    case Isa::generic: break;
  }
  return "generic";
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

bool cpu_has_avx512vbmi() {
  static const bool vbmi = detect_avx512vbmi();
  return vbmi;
}

Isa active_isa() {
  const Isa best = detected_isa();
  const char* forced = std::getenv("ANYCHIP_CPU_ISA");
  if (forced == nullptr || *forced == '\0') return best;
  const std::string_view want(forced);
  for (Isa isa : {Isa::avx512bf16, Isa::avx2, Isa::generic})
    if (want == isa_name(isa)) return isa < best ? isa : best;
  throw Error(ErrorCode::InvalidArgument,
              "ANYCHIP_CPU_ISA=" + std::string(want) + ": expected avx512bf16, avx2 or generic");
}

}  // namespace gemm_detail

std::string_view isa() { return gemm_detail::isa_name(gemm_detail::active_isa()); }

}  // namespace anychip::kernels::cpu
