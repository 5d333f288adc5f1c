// Block quantization to FP8, the DeepSeek-V3 recipe, bit for bit as anychip::quantize_blocks
// (anychip/quantize.hpp): per block of BR x BC elements,
//   amax = max |x| over the block's non-NaN elements
//   s    = max(amax, 1e-4) / FMT_MAX            (fp32; correctly rounded division)
//   s    = 2^ceil(log2 s)                        (UE8M0 scales: rounded up, saturating)
//   q    = fp8(x / s)                            (round to nearest even, finite saturation)
//
// One work-group per block: its work-items find the amax over strided shares of the
// block's rows, reduce it through __local memory, and quantize their shares.
//
// Defines: ROWS COLS BR BC IN (f32 | bf16 | f16) FP8 (f8e4m3 | f8e5m2) SCALE (f32 | ue8m0)
// LOCAL_SIZE.

#define NBC ((COLS + BC - 1) / BC)

#if FP8_IS_E4M3
#define FMT_MAX 448.0f
#define ENCODE(v) ac_f32_to_e4m3(v)
#else
#define FMT_MAX 57344.0f
#define ENCODE(v) ac_f32_to_e5m2(v)
#endif

__kernel __attribute__((reqd_work_group_size(LOCAL_SIZE, 1, 1)))
void quantize_fp8(__global const uchar* x_data, ulong x_off, __global uchar* q_data, ulong q_off,
                  __global uchar* s_data, ulong s_off AC_SHAPE_PARAMS(const int ROWS, const int COLS, const int BR, const int BC)) {
  __global const uchar* x = x_data + x_off;
  __global uchar* q = q_data + q_off;
  __global uchar* scales = s_data + s_off;
  __local float partial[LOCAL_SIZE];
  const int lid = get_local_id(0);
  const int bc = get_group_id(0), br = get_group_id(1);
  const int r0 = br * BR, c0 = bc * BC;
  const int h = min(BR, ROWS - r0), w = min(BC, COLS - c0);

  float amax = 0.0f;
  for (int r = r0; r < r0 + h; ++r)
    for (int c = c0 + lid; c < c0 + w; c += LOCAL_SIZE) {
      const float a = fabs(AC_CAT(AC_LOAD_, IN)(x, (size_t)r * COLS + c));
      amax = a > amax ? a : amax;  // a NaN compares false and is skipped
    }
  partial[lid] = amax;
  AC_LOCAL_BARRIER();
  for (int s = LOCAL_SIZE / 2; s > 0; s /= 2) {
    if (lid < s) partial[lid] = partial[lid + s] > partial[lid] ? partial[lid + s] : partial[lid];
    AC_LOCAL_BARRIER();
  }
  amax = partial[0];
  const float clamped = amax > 1e-4f ? amax : 1e-4f;
  float s = clamped / FMT_MAX;
#if SCALE_IS_UE8M0
  const uint code = ac_f32_to_ue8m0_up(s);
  s = ac_ue8m0_to_f32(code);
  if (lid == 0) scales[br * NBC + bc] = (uchar)code;
#else
  if (lid == 0) ((__global float*)scales)[br * NBC + bc] = s;
#endif
  for (int r = r0; r < r0 + h; ++r)
    for (int c = c0 + lid; c < c0 + w; c += LOCAL_SIZE) {
      const size_t i = (size_t)r * COLS + c;
      q[i] = (uchar)ENCODE(AC_CAT(AC_LOAD_, IN)(x, i) / s);
    }
}
