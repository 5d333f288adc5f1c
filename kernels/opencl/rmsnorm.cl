// RMSNorm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + EPS) * w, in fp32.
//
// One work-group per row: its LOCAL_SIZE work-items sum squares over a strided share of
// the row, reduce through __local memory, then scale their share.
//
// Defines: ROWS DIM EPS DTYPE WDTYPE LOCAL_SIZE.

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void rmsnorm(__global const uchar* x_data, ulong x_off, __global const uchar* w_data, ulong w_off,
             __global uchar* y_data, ulong y_off AC_SHAPE_PARAMS(const int ROWS, const int DIM, const float EPS)) {
  __global const uchar* x = x_data + x_off + get_group_id(0) * (size_t)DIM * sizeof(AC_CAT(AC_ELEM_, DTYPE));
  __global const uchar* w = w_data + w_off;
  __global uchar* y = y_data + y_off + get_group_id(0) * (size_t)DIM * sizeof(AC_CAT(AC_ELEM_, DTYPE));
  __local float partial[LOCAL_SIZE];
  const int lid = get_local_id(0);

  float sum = 0.0f;
  for (int c = lid; c < DIM; c += LOCAL_SIZE) {
    const float v = AC_CAT(AC_LOAD_, DTYPE)(x, c);
    sum = fma(v, v, sum);
  }
  partial[lid] = sum;
  AC_LOCAL_BARRIER();
  for (int s = LOCAL_SIZE / 2; s > 0; s /= 2) {
    if (lid < s) partial[lid] += partial[lid + s];
    AC_LOCAL_BARRIER();
  }
  const float inv_rms = 1.0f / sqrt(partial[0] / (float)DIM + EPS);
  for (int c = lid; c < DIM; c += LOCAL_SIZE)
    AC_CAT(AC_STORE_, DTYPE)(y, c, AC_CAT(AC_LOAD_, DTYPE)(x, c) * inv_rms * AC_CAT(AC_LOAD_, WDTYPE)(w, c));
}
