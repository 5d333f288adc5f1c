// Rotary position embedding (kernels/problems.hpp, RopeProblem): within each head of
// x [TOKENS, HEADS, DIM], the last ROT columns are pairs (x[c0+2i], x[c0+2i+1]) rotated by
// the angle pos[t] * THETA^(-2i/ROT), c0 = DIM - ROT; the first c0 columns are copied.
//
// One work-group per token. Its work-items first form the token's ROT/2 cos/sin pairs in
// __local memory, then rotate every head with them. The angle is formed as the CPU
// backend forms it: pos times the inverse frequency, both in double (the frequencies are
// the host's std::pow, passed as literals), and only cos and sin are rounded to float. An
// angle formed in fp32 would be off by up to pos * 2^-23 rad. Without cl_khr_fp64 (some
// GPUs) the angle is fp32, which the rope tolerance allows for positions below 2^14.
// A negative position (invalid) makes the token's rows NaN: kernels cannot raise errors.
//
// Defines: TOKENS HEADS DIM ROT DTYPE LOCAL_SIZE; INV_FREQ (ROT/2 double literals in
// braces).

#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double angle_t;
#else
typedef float angle_t;
#endif

#define HALF (ROT / 2)
#define C0 (DIM - ROT)

__constant angle_t inv_freq[HALF] = INV_FREQ;

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void rope(__global const uchar* x_data, ulong x_off, __global const uchar* pos_data, ulong pos_off,
          __global uchar* y_data, ulong y_off) {
  const size_t t = get_group_id(0);
  if (t >= TOKENS) return;  // the whole work-group: no barrier is left waiting
  const int lid = get_local_id(0);
  __global const AC_CAT(AC_ELEM_, DTYPE)* x = (__global const AC_CAT(AC_ELEM_, DTYPE)*)(x_data + x_off) + t * (HEADS * DIM);
  __global AC_CAT(AC_ELEM_, DTYPE)* y = (__global AC_CAT(AC_ELEM_, DTYPE)*)(y_data + y_off) + t * (HEADS * DIM);
  const int pos = ((__global const int*)(pos_data + pos_off))[t];

  __local float cs[HALF], sn[HALF];
  for (int i = lid; i < HALF; i += LOCAL_SIZE) {
    const angle_t angle = (angle_t)pos * inv_freq[i];
    cs[i] = pos < 0 ? NAN : (float)cos(angle);
    sn[i] = pos < 0 ? NAN : (float)sin(angle);
  }
  AC_LOCAL_BARRIER();

#if C0 > 0
  // The copied columns move as stored bits; an invalid position poisons them too.
  for (int e = lid; e < HEADS * C0; e += LOCAL_SIZE) {
    const int i = (e / C0) * DIM + e % C0;
    if (pos < 0) AC_CAT(AC_STORE_, DTYPE)((__global uchar*)y, i, NAN);
    else y[i] = x[i];
  }
#endif
  for (int e = lid; e < HEADS * HALF; e += LOCAL_SIZE) {
    const int p = e % HALF;
    const int i = (e / HALF) * DIM + C0 + 2 * p;
    const float x0 = AC_CAT(AC_LOAD_, DTYPE)((__global const uchar*)x, i);
    const float x1 = AC_CAT(AC_LOAD_, DTYPE)((__global const uchar*)x, i + 1);
    AC_CAT(AC_STORE_, DTYPE)((__global uchar*)y, i, x0 * cs[p] - x1 * sn[p]);
    AC_CAT(AC_STORE_, DTYPE)((__global uchar*)y, i + 1, x0 * sn[p] + x1 * cs[p]);
  }
}
