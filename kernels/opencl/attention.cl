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
#if DV % (4 * VD) == 0
#define NDC 4
#elif DV % (2 * VD) == 0
#define NDC 2
#else
#define NDC 1
#endif

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

// Float interleaves of the low and high halves of two vectors, for 16 x 16 transposes.
#define ZIPF_LO(x, y) ((float16)((x).s0, (y).s0, (x).s1, (y).s1, (x).s2, (y).s2, (x).s3, (y).s3, \
                                 (x).s4, (y).s4, (x).s5, (y).s5, (x).s6, (y).s6, (x).s7, (y).s7))
#define ZIPF_HI(x, y) ((float16)((x).s8, (y).s8, (x).s9, (y).s9, (x).sa, (y).sa, (x).sb, (y).sb, \
                                 (x).sc, (y).sc, (x).sd, (y).sd, (x).se, (y).se, (x).sf, (y).sf))
#define DK16 (DK / 16 * 16)
#define DV16 (DV / 16 * 16)

// Element offset of row (b, key, kv head) of K (width DK) or V (width DV).
#define KV_ROW(b, key, h, width) ((((size_t)(b) * SKV + (key)) * HKV + (h)) * (width))

// Stages keys [kv0, kv0 + BKV) of K transposed into Kt [DK][BKV] (zeros past SKV): 16 keys
// x 16 dims at a time, loaded as vectors along the dims, transposed in registers (four
// rounds of interleaves), stored as vectors along the keys; dims past the last 16 one by
// one.
inline void stage_k(__global const uchar* kg, int bi, int hk, int kv0, int lid, __local float* Kt
                    AC_SHAPE_PARAMS(const int SKV, const int HKV)) {
  for (int i = lid; i < (BKV / 16) * (DK16 / 16); i += LOCAL_SIZE) {
    const int j0 = (i / (DK16 / 16)) * 16, d0 = (i % (DK16 / 16)) * 16;
    float16 t[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int key = kv0 + j0 + j;
      t[j] = key < SKV ? AC_CAT(AC_LOAD16_, DTYPE)(kg, KV_ROW(bi, key, hk, DK) + d0) : (float16)0.0f;
    }
#pragma unroll
    for (int round = 0; round < 4; ++round) {
      float16 u[16];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        u[2 * j] = ZIPF_LO(t[j], t[j + 8]);
        u[2 * j + 1] = ZIPF_HI(t[j], t[j + 8]);
      }
#pragma unroll
      for (int j = 0; j < 16; ++j) t[j] = u[j];
    }
#pragma unroll
    for (int d = 0; d < 16; ++d) vstore16(t[d], 0, Kt + (d0 + d) * BKV + j0);
  }
#if DK != DK16
  for (int i = lid; i < BKV * (DK - DK16); i += LOCAL_SIZE) {
    const int j = i / (DK - DK16), d = DK16 + i % (DK - DK16), key = kv0 + j;
    Kt[d * BKV + j] = key < SKV ? AC_CAT(AC_LOAD_, DTYPE)(kg, KV_ROW(bi, key, hk, DK) + d) : 0.0f;
  }
#endif
}

// Stages keys [kv0, kv0 + BKV) of V into Vs [BKV][DV] (zeros past SKV), 16 dims at a time.
inline void stage_v(__global const uchar* vg, int bi, int hk, int kv0, int lid, __local float* Vs
                    AC_SHAPE_PARAMS(const int SKV, const int HKV)) {
  for (int i = lid; i < BKV * (DV16 / 16); i += LOCAL_SIZE) {
    const int j = i / (DV16 / 16), d = (i % (DV16 / 16)) * 16, key = kv0 + j;
    vstore16(key < SKV ? AC_CAT(AC_LOAD16_, DTYPE)(vg, KV_ROW(bi, key, hk, DV) + d) : (float16)0.0f, 0, Vs + j * DV + d);
  }
#if DV != DV16
  for (int i = lid; i < BKV * (DV - DV16); i += LOCAL_SIZE) {
    const int j = i / (DV - DV16), d = DV16 + i % (DV - DV16), key = kv0 + j;
    Vs[j * DV + d] = key < SKV ? AC_CAT(AC_LOAD_, DTYPE)(vg, KV_ROW(bi, key, hk, DV) + d) : 0.0f;
  }
#endif
}

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void attention(__global const uchar* q_data, ulong q_off, __global const uchar* k_data, ulong k_off,
               __global const uchar* v_data, ulong v_off, __global uchar* o_data, ulong o_off
               AC_SHAPE_PARAMS(const int SQ, const int SKV, const int HQ, const int HKV, const int CAUSAL, const float SCORE_SCALE)) {
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
    stage_k(kg, bi, hk, kv0, lid, Kt AC_SHAPE_FORWARD(SKV, HKV));
    stage_v(vg, bi, hk, kv0, lid, Vs AC_SHAPE_FORWARD(SKV, HKV));
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

      // O = O * alpha + P V: RB rows x NDC vectors of O in registers per pass over the keys.
      for (int dc = 0; dc < DV; dc += VD * NDC) {
        vecd o[RB][NDC];
#pragma unroll
        for (int i = 0; i < RB; ++i)
#pragma unroll
          for (int c = 0; c < NDC; ++c) o[i][c] = VLOADD(Os + (r0 + i) * DV + dc + c * VD) * alpha[i];
        for (int j = 0; j < BKV; ++j) {
          vecd v[NDC];
#pragma unroll
          for (int c = 0; c < NDC; ++c) v[c] = VLOADD(Vs + j * DV + dc + c * VD);
#pragma unroll
          for (int i = 0; i < RB; ++i) {
            const vecd p = (vecd)Ps[(r0 + i) * BKV + j];
#pragma unroll
            for (int c = 0; c < NDC; ++c) o[i][c] = fma(p, v[c], o[i][c]);
          }
        }
#pragma unroll
        for (int i = 0; i < RB; ++i)
#pragma unroll
          for (int c = 0; c < NDC; ++c) VSTORED(o[i][c], Os + (r0 + i) * DV + dc + c * VD);
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
