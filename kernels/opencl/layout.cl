// slice and concat (kernels/problems.hpp, SliceProblem and ConcatProblem): copies of
// stored elements, any dtype (i32 included), bit for bit.
//
// The output is cut into rows along its last dimensions (LAST elements each). A
// work-group copies columns [g0 * CW, g0 * CW + CW) of RPG consecutive rows (g0, g1 its
// group ids); its work-items take every LOCAL_SIZE-th column, so neighbouring work-items
// touch neighbouring elements, and one work-item alone walks a contiguous run.
//
// Defines: OP_SLICE or OP_CONCAT; ELEM (the storage type: uchar, ushort or uint); ROWS LAST
// CW RPG LOCAL_SIZE.
//   slice: SRC_ROW (elements of an input row: in_axis * inner) SRC_SKIP (begin * inner).
//   concat: RANK AXIS A_AXIS (a's extent along the axis); OUT_DIMS, A_STRIDES, B_STRIDES:
//     RANK values in braces: the output's dimensions, and a's and b's element strides
//     per output dimension (0 where a size-1 dimension is broadcast).

#if OP_SLICE
__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void slice(__global const uchar* x_data, ulong x_off, __global uchar* y_data, ulong y_off) {
  __global const ELEM* x = (__global const ELEM*)(x_data + x_off);
  __global ELEM* y = (__global ELEM*)(y_data + y_off);
  const int lid = get_local_id(0);
  const int c0 = get_group_id(0) * CW, c1 = min(c0 + CW, LAST);
  const long r0 = (long)get_group_id(1) * RPG, r1 = min(r0 + RPG, (long)ROWS);
  for (long r = r0; r < r1; ++r) {
    __global const ELEM* src = x + r * SRC_ROW + SRC_SKIP;
    __global ELEM* dst = y + r * LAST;
    for (int c = c0 + lid; c < c1; c += LOCAL_SIZE) dst[c] = src[c];
  }
}
#endif

#if OP_CONCAT
__constant long out_dims[RANK] = OUT_DIMS;
__constant long a_strides[RANK] = A_STRIDES;
__constant long b_strides[RANK] = B_STRIDES;

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void concat(__global const uchar* a_data, ulong a_off, __global const uchar* b_data, ulong b_off,
            __global uchar* y_data, ulong y_off) {
  __global const ELEM* a = (__global const ELEM*)(a_data + a_off);
  __global const ELEM* b = (__global const ELEM*)(b_data + b_off);
  __global ELEM* y = (__global ELEM*)(y_data + y_off);
  const int lid = get_local_id(0);
  const int c0 = get_group_id(0) * CW, c1 = min(c0 + CW, LAST);
  const long r0 = (long)get_group_id(1) * RPG, r1 = min(r0 + RPG, (long)ROWS);
  for (long r = r0; r < r1; ++r) {
    // The row's index over the output's leading dimensions, and where it starts in a and
    // in b (b shifted back along the axis).
    long rest = r, oa = 0, ob = 0;
#if AXIS < RANK - 1
    long along = 0;
#endif
#pragma unroll
    for (int d = RANK - 2; d >= 0; --d) {
      const long i = rest % out_dims[d];
      rest /= out_dims[d];
#if AXIS < RANK - 1
      if (d == AXIS) along = i;
#endif
      oa += i * a_strides[d];
      ob += (d == AXIS ? i - A_AXIS : i) * b_strides[d];
    }
    __global ELEM* dst = y + r * LAST;
#if AXIS == RANK - 1
    for (int c = c0 + lid; c < min(c1, A_AXIS); c += LOCAL_SIZE) dst[c] = a[oa + c];
    for (int c = max(c0, A_AXIS) + lid; c < c1; c += LOCAL_SIZE) dst[c] = b[ob + c - A_AXIS];
#else
    __global const ELEM* src = along < A_AXIS ? a + oa : b + ob;
    const long step = along < A_AXIS ? a_strides[RANK - 1] : b_strides[RANK - 1];
    if (step != 0) {
      for (int c = c0 + lid; c < c1; c += LOCAL_SIZE) dst[c] = src[c];
    } else {
      const ELEM v = src[0];  // the last dimension is broadcast
      for (int c = c0 + lid; c < c1; c += LOCAL_SIZE) dst[c] = v;
    }
#endif
  }
}
#endif
