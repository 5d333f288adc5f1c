/* Embedding anychip from C, against the installed package (anychip/anychip.h).
 *
 * Builds two graphs through the C ABI, a block-scaled FP8 GEMM (DeepSeek-V3's 1x128
 * activation and 128x128 weight scales, UE8M0) and a causal GQA attention in bf16, runs
 * each on every device named on the command line (default: cpu sim:npu-ue8m0) on fresh
 * random inputs, checks every kernel against the float64 reference, and prints a table.
 * Exits 1 when a check fails or a call returns an error.
 *
 *   embed_c [DEVICE ...]
 */
#include <anychip/anychip.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the failed call and the library's message; evaluates to 1 on failure. */
#define FAILED(call) failed((call), #call, __LINE__)

static int failed(anychip_status status, const char* call, int line) {
  if (status == ANYCHIP_OK) return 0;
  fprintf(stderr, "embed_c:%d: %s: %s: %s\n", line, call, anychip_status_name(status),
          anychip_last_error_message());
  return 1;
}

/* xorshift64*: uniform floats in [-1, 1), a fresh sequence per seed. */
static uint64_t rng_state;
static float next_uniform(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (float)((rng_state * 2685821657736338717ull) >> 40) / (float)(1 << 23) - 1.0f;
}

/* The GEMM: y[M,N] = a[M,K] b[N,K]^T, a with 1x128 and b with 128x128 UE8M0 scales. */
static anychip_status build_gemm(anychip_graph** out) {
  const int64_t a_shape[2] = {96, 512}, b_shape[2] = {384, 512};
  const anychip_scale_layout act = {1, 128, ANYCHIP_UE8M0}, weight = {128, 128, ANYCHIP_UE8M0};
  const char* attrs[] = {"out_dtype=bf16"};
  anychip_value v[3];
  anychip_graph* g = NULL;
  anychip_status s = anychip_graph_create("gemm", &g);
  if (s == ANYCHIP_OK) s = anychip_graph_add_input(g, "a", ANYCHIP_F8E4M3, a_shape, 2, &act, &v[0]);
  if (s == ANYCHIP_OK) s = anychip_graph_add_input(g, "b", ANYCHIP_F8E4M3, b_shape, 2, &weight, &v[1]);
  if (s == ANYCHIP_OK) s = anychip_graph_add_op(g, "gemm_fp8", v, 2, attrs, 1, "y", &v[2]);
  if (s == ANYCHIP_OK) s = anychip_graph_mark_output(g, v[2]);
  if (s != ANYCHIP_OK) {
    anychip_graph_release(g);
    return s;
  }
  *out = g;
  return ANYCHIP_OK;
}

/* Causal grouped-query attention: 8 query heads share 2 KV heads; q [1, 128, 8, 64]. */
static anychip_status build_attention(anychip_graph** out) {
  const int64_t q_shape[4] = {1, 128, 8, 64}, kv_shape[4] = {1, 128, 2, 64};
  const char* attrs[] = {"causal=true"};
  anychip_value v[4];
  anychip_graph* g = NULL;
  anychip_status s = anychip_graph_create("attention", &g);
  if (s == ANYCHIP_OK) s = anychip_graph_add_input(g, "q", ANYCHIP_BF16, q_shape, 4, NULL, &v[0]);
  if (s == ANYCHIP_OK) s = anychip_graph_add_input(g, "k", ANYCHIP_BF16, kv_shape, 4, NULL, &v[1]);
  if (s == ANYCHIP_OK) s = anychip_graph_add_input(g, "v", ANYCHIP_BF16, kv_shape, 4, NULL, &v[2]);
  if (s == ANYCHIP_OK) s = anychip_graph_add_op(g, "attention", v, 3, attrs, 1, "o", &v[3]);
  if (s == ANYCHIP_OK) s = anychip_graph_mark_output(g, v[3]);
  if (s != ANYCHIP_OK) {
    anychip_graph_release(g);
    return s;
  }
  *out = g;
  return ANYCHIP_OK;
}

/* Fills a tensor with fresh random values: float types encoded, FP8 block-quantized into
 * its own scale layout. */
static anychip_status fill_random(anychip_tensor* t, anychip_stream* stream) {
  anychip_dtype dtype;
  int64_t shape[8];
  size_t rank, data_bytes, scale_bytes, n = 1, i;
  int scaled;
  anychip_scale_layout layout;
  anychip_status s = anychip_tensor_type(t, &dtype, &rank, shape, 8, &scaled, &layout);
  if (s == ANYCHIP_OK) s = anychip_tensor_bytes(t, &data_bytes, &scale_bytes);
  if (s != ANYCHIP_OK) return s;
  for (i = 0; i < rank; ++i) n *= (size_t)shape[i];
  float* x = malloc(n * sizeof(float));
  unsigned char* data = malloc(data_bytes);
  unsigned char* scales = scale_bytes ? malloc(scale_bytes) : NULL;
  if (!x || !data || (scale_bytes && !scales)) {
    s = ANYCHIP_ERROR_OUT_OF_MEMORY;
  } else {
    for (i = 0; i < n; ++i) x[i] = next_uniform();
    if (scaled) {
      const int64_t cols = shape[rank - 1];
      s = anychip_quantize(x, (int64_t)(n / (size_t)cols), cols, dtype, &layout, data, scales);
    } else {
      s = anychip_encode(dtype, x, n, data);
    }
    if (s == ANYCHIP_OK) s = anychip_tensor_upload(t, stream, data, data_bytes, scales, scale_bytes);
  }
  free(x);
  free(data);
  free(scales);
  return s;
}

/* Compiles `graph` for `device`, runs it once on random inputs, checks it, prints one line
 * per kernel. Returns 0 when every kernel is within its tolerance. */
static int run_on(const anychip_graph* graph, anychip_device* device, const char* device_id) {
  enum { kMaxIo = 8, kMaxKernels = 16 };
  anychip_executable* exe = NULL;
  anychip_stream* stream = NULL;
  anychip_tensor* in[kMaxIo] = {0};
  anychip_tensor* out[kMaxIo] = {0};
  size_t n_in = 0, n_out = 0, n_kernels = 0, i;
  double seconds[kMaxKernels], rel_err[kMaxKernels], tolerance[kMaxKernels];
  int ok[kMaxKernels], all_ok = 0, result = 1;

  if (FAILED(anychip_compile(graph, device, 0, NULL, &exe)) || FAILED(anychip_stream_create(device, &stream)) ||
      FAILED(anychip_graph_io_count(graph, &n_in, &n_out)) ||
      FAILED(anychip_executable_kernel_count(exe, &n_kernels)))
    goto done;
  if (n_in > kMaxIo || n_out > kMaxIo || n_kernels > kMaxKernels) {
    fprintf(stderr, "embed_c: the graph is larger than this example handles\n");
    goto done;
  }
  for (i = 0; i < n_in; ++i)
    if (FAILED(anychip_executable_allocate_input(exe, i, &in[i])) || FAILED(fill_random(in[i], stream)))
      goto done;
  for (i = 0; i < n_out; ++i)
    if (FAILED(anychip_executable_allocate_output(exe, i, &out[i]))) goto done;
  if (FAILED(anychip_executable_run(exe, stream, (const anychip_tensor* const*)in, n_in,
                                    (const anychip_tensor* const*)out, n_out)) ||
      FAILED(anychip_executable_last_kernel_seconds(exe, stream, seconds, n_kernels)) ||
      FAILED(anychip_executable_check_last_run(exe, stream, n_kernels, rel_err, tolerance, ok, &all_ok)))
    goto done;
  for (i = 0; i < n_kernels; ++i) {
    char* label = NULL;
    double flops = 0;
    if (FAILED(anychip_executable_kernel_info(exe, i, &label, NULL, &flops, NULL))) goto done;
    printf("%-16s %-22s %12.3e %10.1f %10.2e %9.1e  %s\n", device_id, label, seconds[i],
           seconds[i] > 0 ? flops / seconds[i] * 1e-9 : 0.0, rel_err[i], tolerance[i], ok[i] ? "ok" : "FAIL");
    anychip_free(label);
  }
  result = all_ok ? 0 : 1;
done:
  for (i = 0; i < kMaxIo; ++i) {
    anychip_tensor_release(in[i]);
    anychip_tensor_release(out[i]);
  }
  anychip_stream_release(stream);
  anychip_executable_release(exe);
  return result;
}

int main(int argc, char** argv) {
  const char* default_devices[] = {"cpu", "sim:npu-ue8m0"};
  const char* const* devices = argc > 1 ? (const char* const*)(argv + 1) : default_devices;
  const int n_devices = argc > 1 ? argc - 1 : 2;
  anychip_graph* graphs[2] = {NULL, NULL};
  int failures = 0, d, k;

  /* A library of another ABI major (or an older minor) than this header cannot serve us. */
  if (!ANYCHIP_ABI_COMPATIBLE(anychip_abi_version())) {
    fprintf(stderr, "embed_c: built for anychip ABI %d, the library has %u\n", ANYCHIP_ABI_VERSION,
            (unsigned)anychip_abi_version());
    return 1;
  }
  printf("anychip %s (C ABI %u.%u.%u)\n", anychip_version_string(), (unsigned)anychip_abi_version() / 10000,
         (unsigned)anychip_abi_version() / 100 % 100, (unsigned)anychip_abi_version() % 100);
  rng_state = 0x9E3779B97F4A7C15ull;
  if (FAILED(build_gemm(&graphs[0])) || FAILED(build_attention(&graphs[1]))) {
    anychip_graph_release(graphs[0]);
    return 1;
  }
  printf("%-16s %-22s %12s %10s %10s %9s\n", "device", "kernel", "seconds", "GFLOP/s", "rel_err", "tolerance");
  for (d = 0; d < n_devices; ++d) {
    anychip_device* device = NULL;
    if (FAILED(anychip_device_open(devices[d], 0, &device))) {
      ++failures;
      continue;
    }
    for (k = 0; k < 2; ++k) failures += run_on(graphs[k], device, devices[d]);
    anychip_device_release(device);
  }
  anychip_graph_release(graphs[0]);
  anychip_graph_release(graphs[1]);
  if (failures) fprintf(stderr, "embed_c: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
