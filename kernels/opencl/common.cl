// Shared helpers of every anychip OpenCL kernel (OpenCL C 1.2), prepended by the renderer
// after the spec's #defines. The narrow-format conversions are integer code on bit
// patterns, ported from anychip/formats.hpp (DESIGN.md, "Numeric semantics"), so they agree bit
// for bit with anychip/formats.hpp whatever the device does with denormals or rounding
// modes. Nothing here produces or consumes a float denormal except the UE8M0 code 0x00
// (2^-127), which is one by definition.

#define AC_CAT2(a, b) a##b
#define AC_CAT(a, b) AC_CAT2(a, b)

// Shapes as kernel arguments. The OpenCL backend #defines every shape (M, N, K, SQ, ...)
// and these two macros expand to nothing. The Level Zero backend's SPIR-V is compiled
// once per tile variant, at build time, with AC_SHAPE_ARGS set and no shape #defines: a
// kernel then takes its shapes as trailing arguments named like the #defines
// (AC_SHAPE_PARAMS(const int M, ...)) and hands them to the helpers that read them
// (AC_SHAPE_FORWARD(M, ...)). kernels/level_zero/level_zero_kernels.cpp passes them.
#if AC_SHAPE_ARGS
#define AC_SHAPE_PARAMS(...) , __VA_ARGS__
#define AC_SHAPE_FORWARD(...) , __VA_ARGS__
#else
#define AC_SHAPE_PARAMS(...)
#define AC_SHAPE_FORWARD(...)
#endif

// A work-group barrier on __local memory; nothing when the work-group is one work-item
// (AC_ONE_WORK_ITEM, set by the renderer). Besides saving the barrier, that keeps CPU
// runtimes from splitting such kernels into per-barrier regions (PoCL 3.1 asserts on some
// loop shapes when it does).
#if AC_ONE_WORK_ITEM
#define AC_LOCAL_BARRIER()
#else
#define AC_LOCAL_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#endif

// ---- decoding --------------------------------------------------------------------------

// FP8 E4M3 "fn" byte -> float: bias 7, max 448, 0x7F/0xFF NaN (decoded as 0x7FFFFFFF).
inline float ac_e4m3_to_f32(uint b) {
  const uint em = b & 0x7Fu;
  const uint sign = (b & 0x80u) << 24;
  // Normal: exponent e+120, mantissa at bit 20. Subnormal m * 2^-9 is exact in float.
  const uint mag = em >= 8u ? (em << 20) + (120u << 23) : as_uint((float)em * 0x1p-9f);
  return as_float(em == 0x7Fu ? 0x7FFFFFFFu : (mag | sign));
}

// FP8 E5M2 byte -> float: bias 15, max 57344, 0x7C infinity, NaN above it.
inline float ac_e5m2_to_f32(uint b) {
  const uint em = b & 0x7Fu;
  const uint sign = (b & 0x80u) << 24;
  const uint mag = em >= 4u ? (em << 21) + (112u << 23) : as_uint((float)em * 0x1p-16f);
  // em << 21 + 112 << 23 maps 0x7C to exponent 143: infinity needs 255.
  return as_float(em > 0x7Cu ? 0x7FFFFFFFu : (em == 0x7Cu ? (0x7F800000u | sign) : (mag | sign)));
}

// UE8M0 byte -> float: 2^(e-127); 0xFF NaN (0x7FFF0000, as NVIDIA widens it); 0x00 2^-127.
inline float ac_ue8m0_to_f32(uint b) {
  return as_float(b == 0xFFu ? 0x7FFF0000u : (b == 0u ? 0x00400000u : (b << 23)));
}

inline float ac_bf16_to_f32(uint h) { return as_float(h << 16); }

// IEEE binary16 -> float; NaN decodes to 0x7FFFFFFF (as anychip/formats.hpp does).
inline float ac_f16_to_f32(uint h) {
  const uint sign = (h & 0x8000u) << 16;
  const uint em = h & 0x7FFFu;
  if (em >= 0x7C00u) return as_float(em == 0x7C00u ? (sign | 0x7F800000u) : 0x7FFFFFFFu);
  if (em >= 0x0400u) return as_float(sign | ((em << 13) + (112u << 23)));
  return as_float(sign | as_uint((float)em * 0x1p-24f));  // zero or subnormal: exact
}

// Sixteen FP8 codes at once, for the GEMM's operand staging (same results as above).
inline float16 ac_e4m3_to_f32x16(uchar16 c) {
  const uint16 b = convert_uint16(c);
  const uint16 em = b & 0x7Fu;
  const uint16 sign = (b & 0x80u) << 24;
  const uint16 nrm = (em << 20) + (120u << 23);
  const uint16 sub = as_uint16(convert_float16(em) * 0x1p-9f);
  const uint16 mag = select(sub, nrm, em >= 8u);
  return as_float16(select(mag | sign, (uint16)0x7FFFFFFFu, em == 0x7Fu));
}

inline float16 ac_e5m2_to_f32x16(uchar16 c) {
  const uint16 b = convert_uint16(c);
  const uint16 em = b & 0x7Fu;
  const uint16 sign = (b & 0x80u) << 24;
  const uint16 nrm = (em << 21) + (112u << 23);
  const uint16 sub = as_uint16(convert_float16(em) * 0x1p-16f);
  uint16 mag = select(sub, nrm, em >= 4u);
  mag = select(mag, (uint16)0x7F800000u, em == 0x7Cu);
  return as_float16(select(mag | sign, (uint16)0x7FFFFFFFu, em > 0x7Cu));
}

// Sixteen IEEE binary16 values -> float (as ac_f16_to_f32).
inline float16 ac_f16_to_f32x16(ushort16 h16) {
  const uint16 h = convert_uint16(h16);
  const uint16 sign = (h & 0x8000u) << 16;
  const uint16 em = h & 0x7FFFu;
  const uint16 nrm = (em << 13) + (112u << 23);
  const uint16 sub = as_uint16(convert_float16(em) * 0x1p-24f);
  uint16 mag = select(sub, nrm, em >= 0x0400u);
  mag = select(mag, (uint16)0x7F800000u, em == 0x7C00u);
  return as_float16(select(mag | sign, (uint16)0x7FFFFFFFu, em > 0x7C00u));
}

// ---- encoding --------------------------------------------------------------------------

// Rounds a float magnitude a (finite, non-negative, below the target's overflow threshold)
// to nearest even in a binary format with exponent bias `bias` and `man` stored mantissa
// bits; returns the target's exponent and mantissa fields (formats.hpp round_magnitude).
inline uint ac_round_magnitude(uint a, uint bias, uint man) {
  const uint drop = 23u - man;
  const uint rebias = (127u - bias) << 23;
  uint v, sh;
  if (a >= rebias + (1u << 23)) {
    v = a - rebias;
    sh = drop;
  } else {
    const uint e = a >> 23;
    v = (a & 0x7FFFFFu) | (e != 0u ? 0x800000u : 0u);
    const uint s = 151u - bias - man - (e != 0u ? e : 1u);
    sh = s < 25u ? s : 25u;
  }
  return (v + ((1u << (sh - 1u)) - 1u) + ((v >> sh) & 1u)) >> sh;
}

// float -> E4M3, round to nearest even, finite saturation; NaN -> 0x7F.
inline uint ac_f32_to_e4m3(float x) {
  const uint u = as_uint(x);
  const uint sign = (u >> 24) & 0x80u;
  const uint a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return 0x7Fu;
  if (a > 0x43E80000u) return sign | 0x7Eu;  // beyond 464 (448 + half an ulp)
  return sign | ac_round_magnitude(a, 7u, 3u);
}

// float -> E5M2, round to nearest even, finite saturation; NaN -> 0x7F.
inline uint ac_f32_to_e5m2(float x) {
  const uint u = as_uint(x);
  const uint sign = (u >> 24) & 0x80u;
  const uint a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return 0x7Fu;
  if (a >= 0x47700000u) return sign | 0x7Bu;  // from 61440 (57344 + half an ulp)
  return sign | ac_round_magnitude(a, 15u, 2u);
}

// float -> UE8M0 rounding up (2^ceil(log2|x|)), finite saturation: NaN 0xFF, past 2^127 0xFE.
inline uint ac_f32_to_ue8m0_up(float x) {
  const uint a = as_uint(x) & 0x7FFFFFFFu;
  const uint e = a >> 23;
  const uint m = a & 0x7FFFFFu;
  const uint r = e + (m > (e != 0u ? 0u : 0x400000u) ? 1u : 0u);
  return a > 0x7F800000u ? 0xFFu : (r >= 0xFFu ? 0xFEu : r);
}

// float -> bf16, round to nearest even; NaN -> 0x7FFF.
inline uint ac_f32_to_bf16(float x) {
  const uint u = as_uint(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FFFu;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

// float -> IEEE binary16, round to nearest even; NaN -> 0x7FFF.
inline uint ac_f32_to_f16(float x) {
  const uint u = as_uint(x);
  const uint sign = (u >> 16) & 0x8000u;
  const uint a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return 0x7FFFu;
  if (a >= 0x47800000u) return sign | 0x7C00u;
  return sign | ac_round_magnitude(a, 15u, 10u);
}

// ---- element access by dtype -----------------------------------------------------------
// AC_LOAD_<dtype>(p, i): element i of a float tensor as float; AC_STORE_<dtype>(p, i, v)
// writes it (bf16 and f16 rounded to nearest even). p is a __global uchar pointer.

#define AC_LOAD_f32(p, i) (((__global const float*)(p))[i])
#define AC_LOAD_bf16(p, i) ac_bf16_to_f32(((__global const ushort*)(p))[i])
#define AC_LOAD_f16(p, i) ac_f16_to_f32(((__global const ushort*)(p))[i])
#define AC_STORE_f32(p, i, v) (((__global float*)(p))[i] = (v))
#define AC_STORE_bf16(p, i, v) (((__global ushort*)(p))[i] = (ushort)ac_f32_to_bf16(v))
#define AC_STORE_f16(p, i, v) (((__global ushort*)(p))[i] = (ushort)ac_f32_to_f16(v))

// AC_LOAD16_<dtype>(p, i): elements i .. i + 15 as a float16.
#define AC_LOAD16_f32(p, i) vload16(0, (__global const float*)(p) + (i))
#define AC_LOAD16_bf16(p, i) as_float16(convert_uint16(vload16(0, (__global const ushort*)(p) + (i))) << 16)
#define AC_LOAD16_f16(p, i) ac_f16_to_f32x16(vload16(0, (__global const ushort*)(p) + (i)))

// Scale entry i of a block-scale array (f32 or ue8m0).
#define AC_SCALE_f32(p, i) (((__global const float*)(p))[i])
#define AC_SCALE_ue8m0(p, i) ac_ue8m0_to_f32(((__global const uchar*)(p))[i])

#define AC_FP8_f8e4m3(b) ac_e4m3_to_f32(b)
#define AC_FP8_f8e5m2(b) ac_e5m2_to_f32(b)
#define AC_FP8X16_f8e4m3(c) ac_e4m3_to_f32x16(c)
#define AC_FP8X16_f8e5m2(c) ac_e5m2_to_f32x16(c)

// The storage type of each float dtype (for sizeof).
#define AC_ELEM_f32 float
#define AC_ELEM_bf16 ushort
#define AC_ELEM_f16 ushort
