// Block-scaled FP8 GEMM for few rows of A (decode: M <= 16), one work-item per group.
//
// Same operation as gemm.cl (D = A B^T, DESIGN.md "FP8 GEMM"), computed as dot products
// along K instead of outer products: with so few rows, every code of B is used by at
// most 16 multiply-adds, and gemm.cl's transposed staging of B would cost more than the
// arithmetic. Here A (BM rows, all of K) is decoded once into __local memory; B is read
// straight from global memory, 16 codes of a row at a time along K (contiguous: one
// prefetchable stream per row), decoded in registers and multiplied into 16-wide partial
// sums, BM rows x NG columns of them. At the end of each 128-wide block the partials are
// summed and promoted in fp32: acc += dot * sA[m,b] * sB[n/128,b].
//
// Defines: M N K; A_FP8 B_FP8 (f8e4m3 | f8e5m2); SA SB (f32 | ue8m0); OUT (f32 | bf16);
// BM (a power of two, 1 to 16, >= M) BN (columns per work-group).

#define KB (K / 128)
#define NG (16 / BM)  // columns per register group: BM x NG partial sums of 16 lanes

inline float hsum16(float16 v) {
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
  const float2 c = b.lo + b.hi;
  return c.x + c.y;
}

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void gemm(__global const uchar* a_data, ulong a_off, __global const uchar* a_scales, ulong sa_off,
          __global const uchar* b_data, ulong b_off, __global const uchar* b_scales, ulong sb_off,
          __global uchar* d_data, ulong d_off) {
  __global const uchar* a = a_data + a_off;
  __global const uchar* b = b_data + b_off;
  __global const uchar* sa = a_scales + sa_off;
  __global const uchar* sb = b_scales + sb_off;
  __global uchar* d = d_data + d_off;

  __local float As[BM * K];
  for (int i = 0; i < BM * (K / 16); ++i) {
    const int r = i / (K / 16), c = (i % (K / 16)) * 16;
    const uchar16 codes = r < M ? vload16(0, a + (size_t)r * K + c) : (uchar16)0;
    vstore16(AC_CAT(AC_FP8X16_, A_FP8)(codes), 0, As + r * K + c);
  }

  const int n_end = min((int)(get_group_id(0) + 1) * BN, N);
  for (int n0 = get_group_id(0) * BN; n0 < n_end; n0 += NG) {
    float acc[BM][NG];
#pragma unroll
    for (int m = 0; m < BM; ++m)
#pragma unroll
      for (int g = 0; g < NG; ++g) acc[m][g] = 0.0f;

    for (int blk = 0; blk < KB; ++blk) {
      float16 part[BM][NG];
#pragma unroll
      for (int m = 0; m < BM; ++m)
#pragma unroll
        for (int g = 0; g < NG; ++g) part[m][g] = (float16)0.0f;
      for (int kc = 0; kc < 128; kc += 16) {
        const int k = blk * 128 + kc;
        float16 bv[NG];
#pragma unroll
        for (int g = 0; g < NG; ++g)
          bv[g] = n0 + g < N ? AC_CAT(AC_FP8X16_, B_FP8)(vload16(0, b + (size_t)(n0 + g) * K + k)) : (float16)0.0f;
#pragma unroll
        for (int m = 0; m < BM; ++m) {
          const float16 av = vload16(0, As + m * K + k);
#pragma unroll
          for (int g = 0; g < NG; ++g) part[m][g] = fma(av, bv[g], part[m][g]);
        }
      }
      float s_b[NG];
#pragma unroll
      for (int g = 0; g < NG; ++g)
        s_b[g] = n0 + g < N ? AC_CAT(AC_SCALE_, SB)(sb, ((n0 + g) / 128) * KB + blk) : 0.0f;
#pragma unroll
      for (int m = 0; m < BM; ++m) {
        const float s_a = m < M ? AC_CAT(AC_SCALE_, SA)(sa, m * KB + blk) : 0.0f;
#pragma unroll
        for (int g = 0; g < NG; ++g) acc[m][g] = fma(hsum16(part[m][g]), s_a * s_b[g], acc[m][g]);
      }
    }

#pragma unroll
    for (int m = 0; m < BM; ++m)
#pragma unroll
      for (int g = 0; g < NG; ++g)
        if (m < M && n0 + g < N) AC_CAT(AC_STORE_, OUT)(d, (size_t)m * N + n0 + g, acc[m][g]);
  }
}
