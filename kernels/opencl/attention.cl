// Attention, flash style: O = softmax(SCALE * Q K^T) V over Q [B, SQ, HQ, DK],
// K [B, SKV, HKV, DK], V [B, SKV, HKV, DV] -> O [B, SQ, HQ, DV], fp32 throughout.
//
// A work-group owns R = BQ x GH rows: BQ query positions times GH query heads that share
// one KV head (GQA/MQA: the heads of a group read the same K and V tiles, so the tiles are
// staged once for all of them). Row r is query q0 + r / GH, head h0 + r % GH. The group
// walks the keys in tiles of BKV: it stages K transposed (Kt [DK][BKV]) and V (Vs [BKV][DV])
// in __local memory, and each work-item takes RB rows at a time:
//   scores  s = Q Kt as 16-wide vectors along the keys, in registers; masked (past SKV, and
//           causal: key j visible to query i when j <= i + SKV - SQ, bottom-right aligned);
//   online softmax in base 2 (SCORE_SCALE = SCALE * log2 e): the running row max m and
//           sum l, the tile's probabilities p = 2^(s - m) into Ps [R][BKV];
//   O      = O * 2^(m_old - m) + p V, along DV in VD-wide vectors, in Os [R][DV].
// Only a BKV-wide strip of scores per row ever exists: nothing of size SQ x SKV. Key tiles
// past the last key any row of the group can see (causal) are never loaded. A row that
// sees no key outputs 0.
//
// Defines: BATCH SQ SKV HQ HKV DK DV CAUSAL SCORE_SCALE DTYPE; BQ GH BKV RB VD LOCAL_SIZE.

#define GROUP (HQ / HKV)
#define R (BQ * GH)
#define NQB ((SQ + BQ - 1) / BQ)
#define NHB (GROUP / GH)
#define NRB (R / RB)
#define NJ (BKV / 16)

#if VD == 1
typedef float vecd;
#define VLOADD(p) (*(p))
#define VSTORED(v, p) (*(p) = (v))
#else
typedef AC_CAT(float, VD) vecd;
#define VLOADD(p) AC_CAT(vload, VD)(0, p)
#define VSTORED(v, p) AC_CAT(vstore, VD)(v, 0, p)
#endif

inline float hmax16(float16 v) {
  const float8 a = fmax(v.lo, v.hi);
  const float4 b = fmax(a.lo, a.hi);
  const float2 c = fmax(b.lo, b.hi);
  return fmax(c.x, c.y);
}

inline float hsum16(float16 v) {
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
  const float2 c = b.lo + b.hi;
  return c.x + c.y;
}

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void attention(__global const uchar* q_data, ulong q_off, __global const uchar* k_data, ulong k_off,
               __global const uchar* v_data, ulong v_off, __global uchar* o_data, ulong o_off) {
  __global const uchar* qg = q_data + q_off;
  __global const uchar* kg = k_data + k_off;
  __global const uchar* vg = v_data + v_off;
  __global uchar* og = o_data + o_off;

  __local float Qs[R * DK];
  __local float Kt[DK * BKV];
  __local float Vs[BKV * DV];
  __local float Os[R * DV];
  __local float Ps[R * BKV];
  __local float Mrow[R];
  __local float Lrow[R];

  const int lid = get_local_id(0);
  int wg = get_group_id(0);
  const int qb = wg % NQB;
  wg /= NQB;
  const int hb = wg % NHB;
  wg /= NHB;
  const int hk = wg % HKV;
  const int bi = wg / HKV;
  const int q0 = qb * BQ;
  const int h0 = hk * GROUP + hb * GH;

  for (int i = lid; i < R * DK; i += LOCAL_SIZE) {
    const int r = i / DK, d = i % DK;
    const int qi = q0 + r / GH, h = h0 + r % GH;
    Qs[i] = qi < SQ ? AC_CAT(AC_LOAD_, DTYPE)(qg, (((size_t)bi * SQ + qi) * HQ + h) * DK + d) : 0.0f;
  }
  for (int rb = lid; rb < NRB; rb += LOCAL_SIZE)
    for (int r = rb * RB; r < rb * RB + RB; ++r) {
      Mrow[r] = -INFINITY;
      Lrow[r] = 0.0f;
      for (int d = 0; d < DV; ++d) Os[r * DV + d] = 0.0f;
    }

  // Keys past kv_end are invisible to every row of the group.
  const int q_last = min(q0 + BQ, SQ) - 1;
  const int kv_end = CAUSAL ? min(SKV, q_last + SKV - SQ + 1) : SKV;
  const int16 iota = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

  for (int kv0 = 0; kv0 < kv_end; kv0 += BKV) {
    AC_LOCAL_BARRIER();
    for (int i = lid; i < BKV * DK; i += LOCAL_SIZE) {
      const int j = i / DK, d = i % DK, kj = kv0 + j;
      Kt[d * BKV + j] = kj < SKV ? AC_CAT(AC_LOAD_, DTYPE)(kg, (((size_t)bi * SKV + kj) * HKV + hk) * DK + d) : 0.0f;
    }
    for (int i = lid; i < BKV * DV; i += LOCAL_SIZE) {
      const int j = i / DV, d = i % DV, kj = kv0 + j;
      Vs[i] = kj < SKV ? AC_CAT(AC_LOAD_, DTYPE)(vg, (((size_t)bi * SKV + kj) * HKV + hk) * DV + d) : 0.0f;
    }
    AC_LOCAL_BARRIER();

    for (int rb = lid; rb < NRB; rb += LOCAL_SIZE) {
      const int r0 = rb * RB;
      float16 s[RB][NJ];
#pragma unroll
      for (int i = 0; i < RB; ++i)
#pragma unroll
        for (int j = 0; j < NJ; ++j) s[i][j] = (float16)0.0f;
      for (int d = 0; d < DK; ++d) {
        float16 kv[NJ];
#pragma unroll
        for (int j = 0; j < NJ; ++j) kv[j] = vload16(j, Kt + d * BKV);
#pragma unroll
        for (int i = 0; i < RB; ++i) {
          const float16 qv = (float16)Qs[(r0 + i) * DK + d];
#pragma unroll
          for (int j = 0; j < NJ; ++j) s[i][j] = fma(qv, kv[j], s[i][j]);
        }
      }

      float alpha[RB];
#pragma unroll
      for (int i = 0; i < RB; ++i) {
        const int r = r0 + i, qi = q0 + r / GH;
        // The last key this row sees (-1 for a padding row past SQ).
        const int last = qi >= SQ ? -1 : (CAUSAL ? min(qi + SKV - SQ, SKV - 1) : SKV - 1);
        float16 mx = (float16)(-INFINITY);
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          const int16 key = iota + (kv0 + j * 16);
          s[i][j] = select((float16)(-INFINITY), s[i][j] * SCORE_SCALE, key <= last);
          mx = fmax(mx, s[i][j]);
        }
        const float m_old = Mrow[r];
        const float m_new = fmax(m_old, hmax16(mx));
        if (m_new == -INFINITY) {  // nothing visible yet: p = 0, O and l stay 0
          alpha[i] = 1.0f;
#pragma unroll
          for (int j = 0; j < NJ; ++j) vstore16((float16)0.0f, j, Ps + r * BKV);
          continue;
        }
        alpha[i] = exp2(m_old - m_new);
        float16 sum = (float16)0.0f;
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          const float16 p = exp2(s[i][j] - m_new);
          vstore16(p, j, Ps + r * BKV);
          sum += p;
        }
        Lrow[r] = Lrow[r] * alpha[i] + hsum16(sum);
        Mrow[r] = m_new;
      }

      for (int dc = 0; dc < DV; dc += VD) {
        vecd o[RB];
#pragma unroll
        for (int i = 0; i < RB; ++i) o[i] = VLOADD(Os + (r0 + i) * DV + dc) * alpha[i];
        for (int j = 0; j < BKV; ++j) {
          const vecd v = VLOADD(Vs + j * DV + dc);
#pragma unroll
          for (int i = 0; i < RB; ++i) o[i] = fma((vecd)Ps[(r0 + i) * BKV + j], v, o[i]);
        }
#pragma unroll
        for (int i = 0; i < RB; ++i) VSTORED(o[i], Os + (r0 + i) * DV + dc);
      }
    }
  }

  for (int rb = lid; rb < NRB; rb += LOCAL_SIZE)
    for (int r = rb * RB; r < rb * RB + RB; ++r) {
      const int qi = q0 + r / GH, h = h0 + r % GH;
      if (qi >= SQ) continue;
      const float l = Lrow[r];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const size_t base = (((size_t)bi * SQ + qi) * HQ + h) * DV;
      for (int d = 0; d < DV; ++d) AC_CAT(AC_STORE_, DTYPE)(og, base + d, Os[r * DV + d] * inv);
    }
}
