// Block-scaled FP8 GEMM for few rows of A (decode: M <= 16), one work-item per group.
//
// Same operation as gemm.cl (D = A B^T, DESIGN.md "FP8 GEMM"), computed as dot products
// along K instead of outer products: with so few rows, every code of B is used by at
// most 16 multiply-adds, and gemm.cl's transposed staging of B would cost more than the
// arithmetic. Here A (BM rows, all of K) is decoded once into __local memory; B is read
// straight from global memory, 16 codes of a row at a time along K (contiguous: one
// prefetchable stream per row), decoded in registers and multiplied into 16-wide partial
// sums, R rows x 16/R columns of them. At the end of each 128-wide block the partials are
// summed and promoted in fp32: acc += dot * sA[m,b] * sB[n/128,b].
//
// GROUPED 1 is gemm_fp8_grouped with a small align (decode): as in gemm.cl, a work-group
// takes BM rows (BM divides align: one group, then padding), the group of the first row,
// and that group's weight; work-group (i, j) computes columns [i BN, i BN + BN) of rows
// [j BM, j BM + BM). Only the group's leading rows are staged and multiplied (R: their
// count rounded up to a power of two, so one valid row gets 16 columns of partial sums,
// as the plain kernel's M = 1); the rows after them are stored as 0 (padding, -1) or NaN
// (a group out of range or breaking the layout). Plain: R = BM.
//
// Defines: M N K; A_FP8 B_FP8 (f8e4m3 | f8e5m2); SA SB (f32 | ue8m0); OUT (f32 | bf16);
// BM (a power of two, 1 to 16; >= M unless GROUPED) BN (columns per work-group; a
// multiple of 16 when GROUPED); GROUPED GROUPS (optional).

#ifndef GROUPED
#define GROUPED 0
#endif
#define SCALE_BYTES_f32 4
#define SCALE_BYTES_ue8m0 1

#define KB (K / 128)

inline float hsum16(float16 v) {
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
  const float2 c = b.lo + b.hi;
  return c.x + c.y;
}

// Columns [n_begin, n_end) of the first R rows (of `rows` valid ones), NGR columns at a
// time: R x NGR partial sums of 16 lanes, R * NGR == 16. R and NGR are literals at every
// call, so once inlined the loops unroll and the arrays live in registers. Static and
// always inlined: PoCL builds with -Dinline=, and an out-of-line copy, whose R is
// unknown, would fail its unroll pragmas with a warning in every build log.
static __attribute__((always_inline)) void dot_rows(const int R, const int NGR, __local const float* As, __global const uchar* b,
                     __global const uchar* sa, __global const uchar* sb, __global uchar* d, int rows,
                     int n_begin, int n_end) {
  for (int n0 = n_begin; n0 < n_end; n0 += NGR) {
    float acc[16];
#pragma unroll
    for (int i = 0; i < R * NGR; ++i) acc[i] = 0.0f;

    for (int blk = 0; blk < KB; ++blk) {
      float16 part[16];
#pragma unroll
      for (int i = 0; i < R * NGR; ++i) part[i] = (float16)0.0f;
      for (int kc = 0; kc < 128; kc += 16) {
        const int k = blk * 128 + kc;
        float16 bv[16];
#pragma unroll
        for (int g = 0; g < NGR; ++g)
          bv[g] = n0 + g < N ? AC_CAT(AC_FP8X16_, B_FP8)(vload16(0, b + (size_t)(n0 + g) * K + k)) : (float16)0.0f;
#pragma unroll
        for (int m = 0; m < R; ++m) {
          const float16 av = vload16(0, As + m * K + k);
#pragma unroll
          for (int g = 0; g < NGR; ++g) part[m * NGR + g] = fma(av, bv[g], part[m * NGR + g]);
        }
      }
      float s_b[16];
#pragma unroll
      for (int g = 0; g < NGR; ++g)
        s_b[g] = n0 + g < N ? AC_CAT(AC_SCALE_, SB)(sb, ((n0 + g) / 128) * KB + blk) : 0.0f;
#pragma unroll
      for (int m = 0; m < R; ++m) {
        const float s_a = m < rows ? AC_CAT(AC_SCALE_, SA)(sa, m * KB + blk) : 0.0f;
#pragma unroll
        for (int g = 0; g < NGR; ++g)
          acc[m * NGR + g] = fma(hsum16(part[m * NGR + g]), s_a * s_b[g], acc[m * NGR + g]);
      }
    }

#pragma unroll
    for (int m = 0; m < R; ++m)
#pragma unroll
      for (int g = 0; g < NGR; ++g)
        if (m < rows && n0 + g < N) AC_CAT(AC_STORE_, OUT)(d, (size_t)m * N + n0 + g, acc[m * NGR + g]);
  }
}

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void gemm(__global const uchar* a_data, ulong a_off, __global const uchar* a_scales, ulong sa_off,
          __global const uchar* b_data, ulong b_off, __global const uchar* b_scales, ulong sb_off,
#if GROUPED
          __global const uchar* g_data, ulong g_off,
#endif
          __global uchar* d_data, ulong d_off) {
  __global const uchar* b = b_data + b_off;
  __global const uchar* sb = b_scales + sb_off;
#if GROUPED
  // This work-group's rows: [m0, m0 + BM), of which the first `rows` are computed.
  __global const int* group = (__global const int*)(g_data + g_off);
  const int m0 = get_group_id(1) * BM;
  const int grp = group[m0];
  int rows = 0;
  if (grp >= 0 && grp < GROUPS)
    while (rows < BM && m0 + rows < M && group[m0 + rows] == grp) ++rows;
  if (rows > 0) {
    b += (size_t)grp * N * K;
    sb += (size_t)grp * (N / 128) * KB * AC_CAT(SCALE_BYTES_, SB);
  }
#else
  const int m0 = 0, rows = M;
#endif
  __global const uchar* a = a_data + a_off + (size_t)m0 * K;
  __global const uchar* sa = a_scales + sa_off + (size_t)m0 * KB * AC_CAT(SCALE_BYTES_, SA);
  __global uchar* d = d_data + d_off + (size_t)m0 * N * sizeof(AC_CAT(AC_ELEM_, OUT));

  // The rows that will be multiplied: `rows`, and zeros up to the register blocks' R.
  int staged = BM;
#if GROUPED
  for (staged = rows > 0 ? 1 : 0; staged < rows;) staged *= 2;
#endif
  __local float As[BM * K];
  for (int i = 0; i < staged * (K / 16); ++i) {
    const int r = i / (K / 16), c = (i % (K / 16)) * 16;
    const uchar16 codes = r < rows ? vload16(0, a + (size_t)r * K + c) : (uchar16)0;
    vstore16(AC_CAT(AC_FP8X16_, A_FP8)(codes), 0, As + r * K + c);
  }

  const int n_begin = get_group_id(0) * BN, n_end = min(n_begin + BN, N);
#if GROUPED
  // Decode leaves most tiles with one or two rows of their group: the partial sums go to
  // more columns instead of rows nobody reads (R rows, the next power of two >= rows).
  if (rows == 0) {
    // A tile of padding (or of a group out of range): nothing to multiply.
  } else if (rows == 1) dot_rows(1, 16, As, b, sa, sb, d, rows, n_begin, n_end);
#if BM >= 2
  else if (rows == 2) dot_rows(2, 8, As, b, sa, sb, d, rows, n_begin, n_end);
#endif
#if BM >= 4
  else if (rows <= 4) dot_rows(4, 4, As, b, sa, sb, d, rows, n_begin, n_end);
#endif
#if BM >= 8
  else if (rows <= 8) dot_rows(8, 2, As, b, sa, sb, d, rows, n_begin, n_end);
#endif
#if BM >= 16
  else if (rows <= 16) dot_rows(16, 1, As, b, sa, sb, d, rows, n_begin, n_end);
#endif

  // Past the group's leading rows: padding (0), or a row breaking the layout (NaN).
  for (int m = rows; m < BM && m0 + m < M; ++m) {
    const float v = group[m0 + m] == -1 ? 0.0f : NAN;
    for (int n = n_begin; n < n_end; ++n) AC_CAT(AC_STORE_, OUT)(d, (size_t)m * N + n, v);
  }
#else
  dot_rows(BM, 16 / BM, As, b, sa, sb, d, rows, n_begin, n_end);
#endif
}
