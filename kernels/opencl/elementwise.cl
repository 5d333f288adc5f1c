// Elementwise ops: add (y = a + b over NUMEL elements) and silu_mul (y[r, c] =
// silu(x[r, c]) * x[r, DIM + c] over ROWS x DIM outputs), computed in fp32.
//
// Work-group g, work-item l handles elements g * LOCAL_SIZE * CHUNK + j * LOCAL_SIZE + l,
// j < CHUNK: neighbouring work-items touch neighbouring elements (coalesced on GPUs), and
// with one work-item per group (CPU runtimes) a work-item walks one contiguous chunk.
//
// Defines: OP_ADD or OP_SILU_MUL; DTYPE; NUMEL (add) or ROWS DIM (silu_mul); LOCAL_SIZE CHUNK.

#if OP_ADD
__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void add(__global const uchar* a_data, ulong a_off, __global const uchar* b_data, ulong b_off,
         __global uchar* y_data, ulong y_off AC_SHAPE_PARAMS(const ulong NUMEL)) {
  __global const uchar* a = a_data + a_off;
  __global const uchar* b = b_data + b_off;
  __global uchar* y = y_data + y_off;
  const size_t base = get_group_id(0) * (size_t)(LOCAL_SIZE * CHUNK) + get_local_id(0);
  for (int j = 0; j < CHUNK; ++j) {
    const size_t i = base + (size_t)j * LOCAL_SIZE;
    if (i < NUMEL) AC_CAT(AC_STORE_, DTYPE)(y, i, AC_CAT(AC_LOAD_, DTYPE)(a, i) + AC_CAT(AC_LOAD_, DTYPE)(b, i));
  }
}
#endif

#if OP_SILU_MUL
__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void silu_mul(__global const uchar* x_data, ulong x_off, __global uchar* y_data, ulong y_off
              AC_SHAPE_PARAMS(const int ROWS, const int DIM)) {
  __global const uchar* x = x_data + x_off;
  __global uchar* y = y_data + y_off;
  const size_t base = get_group_id(0) * (size_t)(LOCAL_SIZE * CHUNK) + get_local_id(0);
  for (int j = 0; j < CHUNK; ++j) {
    const size_t i = base + (size_t)j * LOCAL_SIZE;
    if (i < (size_t)ROWS * DIM) {
      const size_t r = i / DIM, c = i % DIM;
      const float g = AC_CAT(AC_LOAD_, DTYPE)(x, r * (2 * DIM) + c);
      const float u = AC_CAT(AC_LOAD_, DTYPE)(x, r * (2 * DIM) + DIM + c);
      AC_CAT(AC_STORE_, DTYPE)(y, i, g / (1.0f + exp(-g)) * u);
    }
  }
}
#endif
