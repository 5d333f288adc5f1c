// The routing ops of a DeepSeek MoE layer (kernels/problems.hpp): moe_topk, moe_weights,
// moe_plan, moe_gather, moe_combine. One op per program, chosen by OP_<name>.
//
// Kernels cannot raise errors, so an index operand out of range is never followed: what
// depends on it is poisoned instead (NaN weights and sums; a gathered row of all-ones
// bytes, NaN in every float format; a choice left out of the plan, -1), and the check
// against the reference fails on it.
//
// Defines: LOCAL_SIZE, and per op:
//   moe_topk: TOKENS EXPERTS K GROUPS TOP_GROUPS      moe_weights: TOKENS EXPERTS K SCALE
//   moe_plan: TOKENS K EXPERTS ALIGN ROWS             moe_gather: TOKENS ROWS DIM ELEM CW RPG
//   moe_combine: TOKENS K ROWS DIM DTYPE CW

inline float sigmoid(float l) { return 1.0f / (1.0f + exp(-l)); }

// ---- moe_topk: one work-item per token ---------------------------------------------------
// Keys sigmoid(logit) + bias in fp32 (NaN never wins); each group scores the sum of its
// two best keys; the experts of all but the TOP_GROUPS best groups are masked to -inf;
// the K best keys are written best first. "Best" is a strict order: larger value, then
// lower index, so ties go to the lower index and the choice is unique, as on the CPU.
#if OP_MOE_TOPK
#define GSIZE (EXPERTS / GROUPS)

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void moe_topk(__global const uchar* l_data, ulong l_off, __global const uchar* b_data, ulong b_off,
              __global uchar* o_data, ulong o_off) {
  const int t = get_global_id(0);
  if (t >= TOKENS) return;
  __global const float* logits = (__global const float*)(l_data + l_off) + (size_t)t * EXPERTS;
  __global const float* bias = (__global const float*)(b_data + b_off);
  __global int* out = (__global int*)(o_data + o_off) + (size_t)t * K;

  float key[EXPERTS];
  for (int e = 0; e < EXPERTS; ++e) {
    const float k = sigmoid(logits[e]) + bias[e];
    key[e] = isnan(k) ? -INFINITY : k;
  }
#if TOP_GROUPS < GROUPS
  float score[GROUPS];
  for (int g = 0; g < GROUPS; ++g) {
    float first = -INFINITY, second = -INFINITY;
    for (int e = g * GSIZE; e < (g + 1) * GSIZE; ++e) {
      const float k = key[e];
      if (k > first) {
        second = first;
        first = k;
      } else if (k > second) {
        second = k;
      }
    }
    score[g] = GSIZE > 1 ? first + second : first;
  }
  uchar kept[GROUPS];
  for (int g = 0; g < GROUPS; ++g) kept[g] = 0;
  for (int r = 0; r < TOP_GROUPS; ++r) {
    int best = -1;
    for (int g = 0; g < GROUPS; ++g)
      if (!kept[g] && (best < 0 || score[g] > score[best])) best = g;
    kept[best] = 1;
  }
  for (int g = 0; g < GROUPS; ++g)
    if (!kept[g])
      for (int e = g * GSIZE; e < (g + 1) * GSIZE; ++e) key[e] = -INFINITY;
#endif
  uchar taken[EXPERTS];
  for (int e = 0; e < EXPERTS; ++e) taken[e] = 0;
  for (int j = 0; j < K; ++j) {
    int best = -1;
    for (int e = 0; e < EXPERTS; ++e)
      if (!taken[e] && (best < 0 || key[e] > key[best])) best = e;
    taken[best] = 1;
    out[j] = best;
  }
}
#endif

// ---- moe_weights: one work-item per token ------------------------------------------------
// w[t,j] = SCALE * s_j / sum_j s_j, s_j = sigmoid(logits[t, chosen[t,j]]), in fp32.
#if OP_MOE_WEIGHTS
__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void moe_weights(__global const uchar* l_data, ulong l_off, __global const uchar* c_data, ulong c_off,
                 __global uchar* w_data, ulong w_off) {
  const int t = get_global_id(0);
  if (t >= TOKENS) return;
  __global const float* logits = (__global const float*)(l_data + l_off) + (size_t)t * EXPERTS;
  __global const int* chosen = (__global const int*)(c_data + c_off) + (size_t)t * K;
  __global float* w = (__global float*)(w_data + w_off) + (size_t)t * K;
  float sum = 0.0f;
  for (int j = 0; j < K; ++j) {
    const int e = chosen[j];
    const float s = e >= 0 && e < EXPERTS ? sigmoid(logits[e]) : NAN;
    w[j] = s;
    sum += s;
  }
  const float factor = SCALE / sum;
  for (int j = 0; j < K; ++j) w[j] *= factor;
}
#endif

// ---- moe_plan: one work-group ------------------------------------------------------------
// A counting sort. Count each expert's choices; give each expert a block of its count
// rounded up to ALIGN rows, in expert order; then place the choices in (token, choice)
// order: LOCAL_SIZE choices at a time, each work-item's row being its expert's next free
// row plus the number of earlier choices of that expert in the batch. The result depends
// on nothing but the input (no atomic decides a row).
#if OP_MOE_PLAN
#define CHOICES (TOKENS * K)
#if AC_ONE_WORK_ITEM
#define ALL_BARRIER()
#else
#define ALL_BARRIER() barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
#endif

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void moe_plan(__global const uchar* c_data, ulong c_off, __global uchar* p_data, ulong p_off) {
  __global const int* chosen = (__global const int*)(c_data + c_off);
  __global int* plan = (__global int*)(p_data + p_off);
  __local int count[EXPERTS];  // choices per expert, then each expert's next free row
  __local int batch[LOCAL_SIZE];
  const int lid = get_local_id(0);

  for (int i = lid; i < 3 * ROWS; i += LOCAL_SIZE) plan[i] = -1;
  for (int e = lid; e < EXPERTS; e += LOCAL_SIZE) count[e] = 0;
  ALL_BARRIER();
  for (int s = lid; s < CHOICES; s += LOCAL_SIZE) {
    const int e = chosen[s];
    if (e >= 0 && e < EXPERTS) atomic_inc(&count[e]);
  }
  ALL_BARRIER();
  if (lid == 0) {
    int row = 0;
    for (int e = 0; e < EXPERTS; ++e) {
      const int n = count[e];
      count[e] = row;
      row += (n + ALIGN - 1) / ALIGN * ALIGN;
    }
  }
  ALL_BARRIER();
  for (int base = 0; base < CHOICES; base += LOCAL_SIZE) {
    const int s = base + lid;
    int e = s < CHOICES ? chosen[s] : -1;
    if (e < 0 || e >= EXPERTS) e = -1;
    batch[lid] = e;
    ALL_BARRIER();
    if (e >= 0) {
      int rank = 0;
      for (int j = 0; j < lid; ++j) rank += batch[j] == e;
      const int r = count[e] + rank;
      plan[r] = e;
      plan[ROWS + r] = s / K;
      plan[2 * ROWS + s] = r;
    }
    ALL_BARRIER();
    if (e >= 0) atomic_inc(&count[e]);
    ALL_BARRIER();
  }
}
#endif

// ---- moe_gather: rows of x by plan[1, r], copied as stored -------------------------------
// Laid out over work-groups as layout.cl's copies: columns [g0 * CW, +CW) of RPG rows.
#if OP_MOE_GATHER
__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void moe_gather(__global const uchar* x_data, ulong x_off, __global const uchar* p_data, ulong p_off,
                __global uchar* y_data, ulong y_off) {
  __global const ELEM* x = (__global const ELEM*)(x_data + x_off);
  __global const int* token_of = (__global const int*)(p_data + p_off) + ROWS;
  __global ELEM* y = (__global ELEM*)(y_data + y_off);
  const int lid = get_local_id(0);
  const int c0 = get_group_id(0) * CW, c1 = min(c0 + CW, DIM);
  const int r0 = get_group_id(1) * RPG, r1 = min(r0 + RPG, ROWS);
  for (int r = r0; r < r1; ++r) {
    const int t = token_of[r];
    __global ELEM* dst = y + (size_t)r * DIM;
    if (t >= 0 && t < TOKENS) {
      __global const ELEM* src = x + (size_t)t * DIM;
      for (int c = c0 + lid; c < c1; c += LOCAL_SIZE) dst[c] = src[c];
    } else {
      const ELEM fill = t == -1 ? (ELEM)0 : (ELEM)~(ELEM)0;  // padding: +0; out of range: NaN
      for (int c = c0 + lid; c < c1; c += LOCAL_SIZE) dst[c] = fill;
    }
  }
}
#endif

// ---- moe_combine: out[t] = sum_j weights[t,j] * y[plan[2, t*K + j]], in fp32 ------------
// Work-group (g0, t) sums columns [g0 * CW, +CW) of token t.
#if OP_MOE_COMBINE
__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void moe_combine(__global const uchar* y_data, ulong y_off, __global const uchar* p_data, ulong p_off,
                 __global const uchar* w_data, ulong w_off, __global uchar* o_data, ulong o_off) {
  __global const uchar* y = y_data + y_off;
  const int t = get_group_id(1);
  __global const int* row_of = (__global const int*)(p_data + p_off) + 2 * ROWS + (size_t)t * K;
  __global const float* w = (__global const float*)(w_data + w_off) + (size_t)t * K;
  __global uchar* out = o_data + o_off;
  const int lid = get_local_id(0);
  const int c0 = get_group_id(0) * CW, c1 = min(c0 + CW, DIM);
  for (int c = c0 + lid; c < c1; c += LOCAL_SIZE) {
    float sum = 0.0f;
    for (int j = 0; j < K; ++j) {
      const int r = row_of[j];
      sum += r >= 0 && r < ROWS ? w[j] * AC_CAT(AC_LOAD_, DTYPE)(y, (size_t)r * DIM + c) : NAN;
    }
    AC_CAT(AC_STORE_, DTYPE)(out, (size_t)t * DIM + c, sum);
  }
}
#endif
