// GEMM, D = A B^T with A [M, K] and B [N, K] row-major ("NT"), in two flavours:
//   GEMM_FP8 1: block-scaled FP8 (DESIGN.md, "FP8 GEMM"): A with 1x128 scales SA, B with
//               128x128 scales SB; K % 128 == 0.
//   GEMM_FP8 0: f32 / bf16 / f16 inputs (IN), any K.
//
// One work-group computes a BM x BN tile of D. K is walked in promotion blocks of PB
// columns (the 128-wide scale blocks for FP8; one staged slice otherwise), each staged TK
// columns at a time in __local memory, decoded to f32: As [BM][TK] row-major, Bs [TK][BN]
// transposed so that a row of it is a vector along N. A work-item owns a TM x TN sub-tile
// and walks it in MR x NR register blocks: per k, NR/VEC vector loads of Bs, MR broadcasts
// of As, MR * NR/VEC fused multiply-adds into the block's partial sums. At the end of a
// promotion block the partial is promoted in fp32, acc += partial * sA[m,b] * sB[n/128,b]
// (acc += partial without scales), as DESIGN.md prescribes.
//
// GROUPED 1 (FP8 only) is gemm_fp8_grouped, DeepGEMM's contiguous layout: B holds GROUPS
// weights of N rows each, and an i32 operand `group` [M] (after B) gives each row's. BM
// divides the layout's align, so a tile is one group's rows followed by padding (-1): the
// tile takes the group of its first row, B and its scales offset to that weight. Only the
// leading rows of that group are staged and multiplied; padding rows are stored as 0, and
// a row whose group breaks the layout (or is out of range) as NaN, since a kernel cannot
// raise an error.
//
// Defines: M N K; GEMM_FP8; A_FP8 B_FP8 SA SB (FP8) or IN (float); OUT; BM BN TK; WG_M WG_N
// (work-items along m and n); MR NR VEC; ACC_LOCAL (accumulators in __local memory, for
// work-items with large sub-tiles); GROUPED GROUPS (optional, GROUPED 0 by default).
// Either PB == TK, or TM == MR and TN == NR (a work-item's partial then lives across the
// slices of a block).

#ifndef GROUPED
#define GROUPED 0
#endif
#define SCALE_BYTES_f32 4
#define SCALE_BYTES_ue8m0 1

#define TM (BM / WG_M)
#define TN (BN / WG_N)
#define WG_SIZE (WG_M * WG_N)
#define NV (NR / VEC)
#if GEMM_FP8
#define PB 128
#define NPB (K / 128)
#else
#define PB TK
#define NPB ((K + TK - 1) / TK)
#endif

#if VEC == 1
typedef float vecf;
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#else
typedef AC_CAT(float, VEC) vecf;
#define VLOAD(p) AC_CAT(vload, VEC)(0, p)
#define VSTORE(v, p) AC_CAT(vstore, VEC)(v, 0, p)
#endif

#if GEMM_FP8
// Byte interleaves of the low and high halves of two vectors (vector literals, which
// compilers turn into one shuffle; the shuffle2 builtin is not always one).
#define ZIP_LO(x, y) ((uchar16)((x).s0, (y).s0, (x).s1, (y).s1, (x).s2, (y).s2, (x).s3, (y).s3, \
                                (x).s4, (y).s4, (x).s5, (y).s5, (x).s6, (y).s6, (x).s7, (y).s7))
#define ZIP_HI(x, y) ((uchar16)((x).s8, (y).s8, (x).s9, (y).s9, (x).sa, (y).sa, (x).sb, (y).sb, \
                                (x).sc, (y).sc, (x).sd, (y).sd, (x).se, (y).se, (x).sf, (y).sf))

// Staging is split into items spread over the work-items, [lid, end) in steps of
// WG_SIZE. A: an item is 16 codes of one row. B: an item is a 16 x 16 block of codes (16
// rows of N, 16 columns of K), transposed in registers by four rounds of byte interleaves
// before it is decoded, so that every store into Bs is a whole vector along N.
#define A_ITEMS (BM * (TK / 16))
#define B_ITEMS ((BN / 16) * (TK / 16))

// Decodes columns [k0, k0 + TK) of A into As; rows from m_end on are zero. With one work-item
// per group it also reads one byte of every cache line the next slice will need (the BM
// rows are K bytes apart, too many streams for a hardware prefetcher, and prefetch() does
// nothing on some CPU runtimes), so that those misses are served during this slice's
// arithmetic; the bytes are summed and returned only to keep the loads alive.
inline uint stage_a(__global const uchar* a, int m_base, int m_end, int k0, int lid, __local float* As
                    AC_SHAPE_PARAMS(const int M, const int N, const int K)) {
  uint touched = 0;
  for (int i = lid; i < A_ITEMS; i += WG_SIZE) {
    const int r = i / (TK / 16), c = (i % (TK / 16)) * 16;
    const int m = m_base + r;
    const uchar16 codes = m < m_end ? vload16(0, a + (size_t)m * K + k0 + c) : (uchar16)0;
#if AC_ONE_WORK_ITEM
    if (m < m_end && k0 + TK < K && c % 64 == 0) touched += a[(size_t)m * K + k0 + TK + c];
#endif
    vstore16(AC_CAT(AC_FP8X16_, A_FP8)(codes), 0, As + r * TK + c);
  }
  return touched;
}

// Decodes columns [k0, k0 + TK) of B into Bs, transposed; rows past N are zero.
inline void stage_b(__global const uchar* b, int n_base, int k0, int lid, __local float* Bs
                    AC_SHAPE_PARAMS(const int M, const int N, const int K)) {
  for (int i = lid; i < B_ITEMS; i += WG_SIZE) {
    const int r = (i / (TK / 16)) * 16, c = (i % (TK / 16)) * 16;
    uchar16 t[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int n = n_base + r + j;
      t[j] = n < N ? vload16(0, b + (size_t)n * K + k0 + c) : (uchar16)0;
    }
#pragma unroll
    for (int round = 0; round < 4; ++round) {
      uchar16 u[16];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        u[2 * j] = ZIP_LO(t[j], t[j + 8]);
        u[2 * j + 1] = ZIP_HI(t[j], t[j + 8]);
      }
#pragma unroll
      for (int j = 0; j < 16; ++j) t[j] = u[j];
    }
    // t[j] is now column k0 + c + j of the 16 rows.
#pragma unroll
    for (int j = 0; j < 16; ++j) vstore16(AC_CAT(AC_FP8X16_, B_FP8)(t[j]), 0, Bs + (c + j) * BN + r);
  }
}
#else
// Staging items are single elements; elements past m_end, N or K are zero.
inline uint stage_a(__global const uchar* a, int m_base, int m_end, int k0, int lid, __local float* As
                    AC_SHAPE_PARAMS(const int M, const int N, const int K)) {
  for (int i = lid; i < BM * TK; i += WG_SIZE) {
    const int m = m_base + i / TK, k = k0 + i % TK;
    As[i] = m < m_end && k < K ? AC_CAT(AC_LOAD_, IN)(a, (size_t)m * K + k) : 0.0f;
  }
  return 0;
}

inline void stage_b(__global const uchar* b, int n_base, int k0, int lid, __local float* Bs
                    AC_SHAPE_PARAMS(const int M, const int N, const int K)) {
  for (int i = lid; i < BN * TK; i += WG_SIZE) {
    const int r = i / TK, c = i % TK;
    const int n = n_base + r, k = k0 + c;
    Bs[c * BN + r] = n < N && k < K ? AC_CAT(AC_LOAD_, IN)(b, (size_t)n * K + k) : 0.0f;
  }
}
#endif

__kernel __attribute__((reqd_work_group_size(WG_N, WG_M, 1)))
void gemm(__global const uchar* a_data, ulong a_off,
#if GEMM_FP8
          __global const uchar* a_scales, ulong sa_off,
#endif
          __global const uchar* b_data, ulong b_off,
#if GEMM_FP8
          __global const uchar* b_scales, ulong sb_off,
#endif
#if GROUPED
          __global const uchar* g_data, ulong g_off,
#endif
          __global uchar* d_data, ulong d_off AC_SHAPE_PARAMS(const int M, const int N, const int K)) {
  __global const uchar* a = a_data + a_off;
  __global const uchar* b = b_data + b_off;
#if GEMM_FP8
  __global const uchar* sa = a_scales + sa_off;
  __global const uchar* sb = b_scales + sb_off;
#endif
  __global uchar* d = d_data + d_off;

  __local float As[BM * TK];
  __local float Bs[TK * BN];

  const int lx = get_local_id(0), ly = get_local_id(1);
  const int lid = ly * WG_N + lx;
  const int m_base = get_group_id(1) * BM, n_base = get_group_id(0) * BN;
  const int wm = ly * TM, wn = lx * TN;  // this work-item's sub-tile within the tile

#if GROUPED
  __global const int* group = (__global const int*)(g_data + g_off);
  const int grp = group[m_base];
  int valid = 0;  // the tile's leading rows of group grp: the rows to compute
  if (grp >= 0 && grp < GROUPS)
    while (valid < BM && m_base + valid < M && group[m_base + valid] == grp) ++valid;
  const int m_end = m_base + valid;
  if (valid > 0) {
    b += (size_t)grp * N * K;
    sb += (size_t)grp * (N / 128) * (K / 128) * AC_CAT(SCALE_BYTES_, SB);
  }
  const int n_blocks = valid > 0 ? NPB : 0;
#else
  const int m_end = M;
  const int n_blocks = NPB;
#endif

#if ACC_LOCAL
  __local float acc_tile[BM * BN];
#define ACC(i, j) (acc_tile + (wm + (i)) * BN + wn + (j))
#else
  float acc_priv[TM * TN];
#define ACC(i, j) (acc_priv + (i) * TN + (j))
#endif
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) *ACC(i, j) = 0.0f;
#if PB != TK
  vecf part[MR][NV];
#endif

  uint touched = 0;
  for (int blk = 0; blk < n_blocks; ++blk) {
    for (int kt = 0; kt < PB; kt += TK) {
      AC_LOCAL_BARRIER();
      touched += stage_a(a, m_base, m_end, blk * PB + kt, lid, As AC_SHAPE_FORWARD(M, N, K));
      stage_b(b, n_base, blk * PB + kt, lid, Bs AC_SHAPE_FORWARD(M, N, K));
      AC_LOCAL_BARRIER();
      for (int rm = 0; rm < TM && m_base + wm + rm < m_end; rm += MR) {
        for (int rn = 0; rn < TN; rn += NR) {
#if PB == TK
          vecf part[MR][NV];
#endif
          if (PB == TK || kt == 0) {
#pragma unroll
            for (int i = 0; i < MR; ++i)
#pragma unroll
              for (int j = 0; j < NV; ++j) part[i][j] = (vecf)0.0f;
          }
          __local const float* ap = As + (wm + rm) * TK;
          __local const float* bp = Bs + wn + rn;
          for (int k = 0; k < TK; ++k) {
            vecf bv[NV];
#pragma unroll
            for (int j = 0; j < NV; ++j) bv[j] = VLOAD(bp + k * BN + j * VEC);
#pragma unroll
            for (int i = 0; i < MR; ++i) {
              const vecf av = (vecf)ap[i * TK + k];
#pragma unroll
              for (int j = 0; j < NV; ++j) part[i][j] = fma(av, bv[j], part[i][j]);
            }
          }
          if (kt + TK == PB) {
#if GEMM_FP8
            // One B scale per register block: NR divides 128.
            const int n = n_base + wn + rn;
            const float s_b = n < N ? AC_CAT(AC_SCALE_, SB)(sb, (n / 128) * (K / 128) + blk) : 0.0f;
#pragma unroll
            for (int i = 0; i < MR; ++i) {
              const int m = m_base + wm + rm + i;
              const vecf s = (vecf)(m < M ? AC_CAT(AC_SCALE_, SA)(sa, m * (K / 128) + blk) * s_b : 0.0f);
#pragma unroll
              for (int j = 0; j < NV; ++j) VSTORE(fma(part[i][j], s, VLOAD(ACC(rm + i, rn + j * VEC))), ACC(rm + i, rn + j * VEC));
            }
#else
#pragma unroll
            for (int i = 0; i < MR; ++i)
#pragma unroll
              for (int j = 0; j < NV; ++j) VSTORE(part[i][j] + VLOAD(ACC(rm + i, rn + j * VEC)), ACC(rm + i, rn + j * VEC));
#endif
          }
        }
      }
    }
  }

  volatile uint sink = touched;  // keeps stage_a's look-ahead loads
  (void)sink;

  for (int i = 0; i < TM; ++i) {
    const int m = m_base + wm + i;
    if (m >= M) break;
#if GROUPED
    // Past the tile's rows of its group: padding (0), or a row breaking the layout (NaN).
    const float other = group[m] == -1 ? 0.0f : NAN;
#define RESULT(i, j) (m < m_end ? *ACC(i, j) : other)
#else
#define RESULT(i, j) (*ACC(i, j))
#endif
    for (int j = 0; j < TN; ++j) {
      const int n = n_base + wn + j;
      if (n < N) AC_CAT(AC_STORE_, OUT)(d, (size_t)m * N + n, RESULT(i, j));
    }
  }
}
