// Dequantization: y[r, c] = fp8(q[r, c]) * scale of its BR x BC block, in fp32, stored as
// OUT. Elementwise, laid out over work-items as in elementwise.cl.
//
// Defines: ROWS COLS BR BC FP8 (f8e4m3 | f8e5m2) SCALE (f32 | ue8m0) OUT LOCAL_SIZE CHUNK.

#define NBC ((COLS + BC - 1) / BC)

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void dequantize(__global const uchar* q_data, ulong q_off, __global const uchar* s_data, ulong s_off,
                __global uchar* y_data, ulong y_off AC_SHAPE_PARAMS(const int ROWS, const int COLS, const int BR, const int BC)) {
  __global const uchar* q = q_data + q_off;
  __global const uchar* scales = s_data + s_off;
  __global uchar* y = y_data + y_off;
  const size_t base = get_group_id(0) * (size_t)(LOCAL_SIZE * CHUNK) + get_local_id(0);
  for (int j = 0; j < CHUNK; ++j) {
    const size_t i = base + (size_t)j * LOCAL_SIZE;
    if (i < (size_t)ROWS * COLS) {
      const int r = i / COLS, c = i % COLS;
      const float s = AC_CAT(AC_SCALE_, SCALE)(scales, (r / BR) * NBC + c / BC);
      AC_CAT(AC_STORE_, OUT)(y, i, AC_CAT(AC_FP8_, FP8)(q[i]) * s);
    }
  }
}
