/* anychip: the C ABI.
 *
 * A thin layer over the C++ API (anychip/anychip.hpp) for engines written in C, or that
 * want a stable binary interface. C99 and C++; no C++ type crosses it.
 *
 *   anychip_device* dev;  anychip_graph* g;  anychip_executable* exe;  anychip_stream* s;
 *   anychip_device_open("sim:npu-ue8m0", 0, &dev);
 *   anychip_graph_parse_file("block.acir", &g);
 *   anychip_compile(g, dev, 0, NULL, &exe);
 *   anychip_stream_create(dev, &s);
 *   ... anychip_executable_allocate_input(exe, i, &t); anychip_tensor_upload(t, s, ...);
 *   anychip_executable_run(exe, s, inputs, n_in, outputs, n_out);
 *   anychip_tensor_download(outputs[0], s, y, y_bytes, NULL, 0);
 *
 * Versions. ANYCHIP_ABI_VERSION is major * 10000 + minor * 100 + patch of the header a
 * program was compiled with; anychip_abi_version() is that of the library it runs with.
 * They are compatible when the majors are equal and the library's minor is at least the
 * header's (ANYCHIP_ABI_COMPATIBLE). Within a major, functions are only added, enum values
 * only appended, and the one struct of this header (anychip_scale_layout) never changes;
 * handles are opaque and never exposed by value. The shared library's SONAME carries the
 * major (libanychip.so.1).
 *
 * Errors. Every function that can fail returns an anychip_status; ANYCHIP_OK is 0. The
 * statuses map one to one onto anychip::ErrorCode, and the message of a failed call is
 * the what() of the anychip::Error the C++ API throws for the same failure. Out-parameters
 * are written only on success. No C++ exception crosses this interface: an allocation
 * failure is ANYCHIP_ERROR_OUT_OF_MEMORY, anything unforeseen ANYCHIP_ERROR_INTERNAL.
 *
 * Ownership. A handle returned through an out-parameter (`anychip_x** out`) is the
 * caller's, released with anychip_x_release(); releasing NULL does nothing. Objects share
 * what they use: a tensor, stream or executable keeps its device alive, so they may be
 * released in any order. A string returned through `char** out` is the caller's, freed
 * with anychip_free(). Functions returning `const char*` return static or thread-local
 * text the caller must not free.
 *
 * Blocking. Calls that enqueue work on a stream (anychip_executable_run,
 * anychip_event_record) return without waiting for it; calls that copy to or from the
 * host or read results (anychip_tensor_upload, anychip_tensor_download, anychip_stream_synchronize, the
 * anychip_executable_last_* and _check functions) wait for the stream first. Compiling
 * blocks.
 *
 * Threads. Any function may be called from any thread. Calls on distinct handles may
 * always run at once, and so may these on one handle: on a device, every call taking it
 * (streams, tensors, uploads and downloads on distinct streams, compiles, also into one
 * kernel cache directory, the trace); on a graph, the calls taking it const (print,
 * io_count, compile); on an executable, the calls taking it const (kernel_count,
 * kernel_info, allocate_input / allocate_output); on a tensor, type queries and downloads
 * on distinct streams; on events, elapsed_seconds. One thread at a time: a stream and
 * everything enqueued on it; one executable's run, last_kernel_seconds and
 * check_last_run, which share its last run and its intermediate tensors (give each thread
 * its own executable: compiles after the first hit the kernel cache); a graph being built
 * (add_input, add_op, mark_output). An upload must not overlap any other use of its
 * tensor, and a release any other use of its handle. The last error message is per
 * thread. tests/runtime/thread_safety_test.cpp checks this.
 */
#ifndef ANYCHIP_ANYCHIP_H
#define ANYCHIP_ANYCHIP_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define ANYCHIP_API
#elif defined(__GNUC__) || defined(__clang__)
#define ANYCHIP_API __attribute__((visibility("default")))
#else
#define ANYCHIP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ----- versions ----------------------------------------------------------------------- */

#define ANYCHIP_ABI_VERSION_MAJOR 1
#define ANYCHIP_ABI_VERSION_MINOR 0
#define ANYCHIP_ABI_VERSION_PATCH 0
#define ANYCHIP_ABI_VERSION \
  (ANYCHIP_ABI_VERSION_MAJOR * 10000 + ANYCHIP_ABI_VERSION_MINOR * 100 + ANYCHIP_ABI_VERSION_PATCH)
/* Whether a library reporting ABI version `lib` serves a program built with this header. */
#define ANYCHIP_ABI_COMPATIBLE(lib)             \
  ((lib) / 10000 == ANYCHIP_ABI_VERSION_MAJOR && \
   (lib) >= ANYCHIP_ABI_VERSION_MAJOR * 10000 + ANYCHIP_ABI_VERSION_MINOR * 100)

/* The ABI version the library was built with (ANYCHIP_ABI_VERSION of its header). */
ANYCHIP_API uint32_t anychip_abi_version(void);
/* The library's release, e.g. "0.1.0"; static text. */
ANYCHIP_API const char* anychip_version_string(void);

/* ----- errors ------------------------------------------------------------------------- */

/* ANYCHIP_OK, then one status per anychip::ErrorCode, in its order (ErrorCode + 1). */
typedef enum anychip_status {
  ANYCHIP_OK = 0,
  ANYCHIP_ERROR_INVALID_ARGUMENT = 1, /* a value passed breaks a documented rule */
  ANYCHIP_ERROR_INVALID_GRAPH = 2,    /* the verifier rejected an op, operand or attribute */
  ANYCHIP_ERROR_PARSE = 3,            /* a .acir text is malformed */
  ANYCHIP_ERROR_UNSUPPORTED = 4,      /* the device can never run this */
  ANYCHIP_ERROR_UNAVAILABLE = 5,      /* the device or backend cannot be used here */
  ANYCHIP_ERROR_OUT_OF_MEMORY = 6,    /* an allocation failed */
  ANYCHIP_ERROR_IO = 7,               /* a file could not be read or written */
  ANYCHIP_ERROR_INTERNAL = 8          /* a broken invariant inside anychip: a bug */
} anychip_status;

/* The message of the last failed call on this thread ("" after a successful one); valid
 * until the next anychip call on this thread. Never NULL. */
ANYCHIP_API const char* anychip_last_error_message(void);
/* "ok", or the name of the matching anychip::ErrorCode ("invalid_argument", ...);
 * "unknown" for a value that is no status. Static text. */
ANYCHIP_API const char* anychip_status_name(anychip_status status);
/* Frees a string (or other memory) this library returned through a `char**`. NULL is a
 * no-op. */
ANYCHIP_API void anychip_free(void* p);

/* ----- element types and scale layouts ------------------------------------------------ */

/* Mirrors anychip::DType, value for value. */
typedef enum anychip_dtype {
  ANYCHIP_F32 = 0,    /* IEEE binary32 */
  ANYCHIP_BF16 = 1,   /* bfloat16 */
  ANYCHIP_F16 = 2,    /* IEEE binary16 */
  ANYCHIP_F8E4M3 = 3, /* OCP FP8 E4M3 "fn": max 448, no infinity */
  ANYCHIP_F8E5M2 = 4, /* OCP FP8 E5M2 */
  ANYCHIP_UE8M0 = 5,  /* unsigned power-of-two scale 2^(e-127) */
  ANYCHIP_I32 = 6     /* int32 */
} anychip_dtype;

/* "f32", "f8e4m3", ... (the .acir spelling); NULL for a value that is no dtype. */
ANYCHIP_API const char* anychip_dtype_name(anychip_dtype dtype);
/* Bytes per element; 0 for a value that is no dtype. */
ANYCHIP_API size_t anychip_dtype_size(anychip_dtype dtype);

/* The block scaling of an FP8 tensor: one scale per block_rows x block_cols block of the
 * last two dimensions (activations 1x128, weights 128x128), stored as `dtype` (ANYCHIP_F32
 * or ANYCHIP_UE8M0), row-major [ceil(rows / block_rows), ceil(cols / block_cols)].
 * Frozen for ABI major 1. Where a function takes `const anychip_scale_layout*`, NULL
 * means an unscaled tensor. */
typedef struct anychip_scale_layout {
  int64_t block_rows;
  int64_t block_cols;
  anychip_dtype dtype;
} anychip_scale_layout;

/* Converts n floats to `dtype` (f32, bf16, f16, f8e4m3, f8e5m2, i32), rounding to nearest
 * even; FP8 saturates to the largest finite value. dst holds n * anychip_dtype_size(dtype)
 * bytes. */
ANYCHIP_API anychip_status anychip_encode(anychip_dtype dtype, const float* src, size_t n, void* dst);
/* Converts n elements of `dtype` (any dtype) to float. */
ANYCHIP_API anychip_status anychip_decode(anychip_dtype dtype, const void* src, size_t n, float* dst);
/* Block-quantizes a row-major rows x cols float matrix to `fp8` (f8e4m3 or f8e5m2) by the
 * DeepSeek-V3 recipe: q receives rows * cols bytes, scales the scale array of `layout`. */
ANYCHIP_API anychip_status anychip_quantize(const float* x, int64_t rows, int64_t cols,
                                            anychip_dtype fp8, const anychip_scale_layout* layout,
                                            void* q, void* scales);

/* ----- opaque handles ----------------------------------------------------------------- */

typedef struct anychip_device anychip_device;         /* an open device */
typedef struct anychip_stream anychip_stream;         /* an in-order queue on a device */
typedef struct anychip_event anychip_event;           /* a point in a stream, with a time */
typedef struct anychip_tensor anychip_tensor;         /* device memory with its type */
typedef struct anychip_graph anychip_graph;           /* a tensor IR graph */
typedef struct anychip_executable anychip_executable; /* a graph compiled for a device */

/* ----- devices ------------------------------------------------------------------------ */

/* The number of devices of every backend built in, available or not. Enumerates the
 * backends on each call (cheap; a driver is loaded once per process). */
ANYCHIP_API anychip_status anychip_device_count(size_t* count);
/* Device `index` (< count) of that list: its id ("cpu", "sim:npu-ue8m0", "opencl:0"),
 * its name, whether it is available, and if not why ("" when available). Each string is
 * the caller's (anychip_free); pass NULL for what you do not want. */
ANYCHIP_API anychip_status anychip_device_info(size_t index, char** id, char** name, int* available,
                                               char** unavailable_reason);

/* Flags of anychip_device_open. */
#define ANYCHIP_DEVICE_TIMING_ONLY 1u /* sim:*: model time without computing data */
#define ANYCHIP_DEVICE_TRACE 2u       /* collect a Chrome trace (anychip_device_take_trace) */

/* Opens a device by its id. ANYCHIP_ERROR_UNAVAILABLE names the reason;
 * ANYCHIP_ERROR_INVALID_ARGUMENT an id no backend knows or an unknown flag. */
ANYCHIP_API anychip_status anychip_device_open(const char* id, uint32_t flags, anychip_device** out);
ANYCHIP_API void anychip_device_release(anychip_device* device);
/* The device's id, the caller's string. */
ANYCHIP_API anychip_status anychip_device_id(const anychip_device* device, char** id);
/* Chrome trace JSON (Perfetto opens it) of everything run since the last call, when the
 * device was opened with ANYCHIP_DEVICE_TRACE and traces; "" otherwise. The caller's
 * string. */
ANYCHIP_API anychip_status anychip_device_take_trace(anychip_device* device, char** json);

/* ----- streams and events ------------------------------------------------------------- */

ANYCHIP_API anychip_status anychip_stream_create(anychip_device* device, anychip_stream** out);
ANYCHIP_API void anychip_stream_release(anychip_stream* stream);
/* Blocks until everything enqueued on the stream so far has finished. */
ANYCHIP_API anychip_status anychip_stream_synchronize(anychip_stream* stream);

/* Enqueues an event that completes when the stream reaches it. Does not block. */
ANYCHIP_API anychip_status anychip_event_record(anychip_stream* stream, anychip_event** out);
ANYCHIP_API void anychip_event_release(anychip_event* event);
/* Device seconds from `start` to `end`, two events of one stream, both completed
 * (synchronize the stream first). */
ANYCHIP_API anychip_status anychip_event_elapsed_seconds(const anychip_event* start, const anychip_event* end,
                                                         double* seconds);

/* ----- tensors ------------------------------------------------------------------------ */

/* Allocates a tensor of dtype[shape[0], ..., shape[rank-1]] (rank >= 1), block-scaled by
 * `scale` when not NULL (FP8 only), on `device`; contents undefined. */
ANYCHIP_API anychip_status anychip_tensor_create(anychip_device* device, anychip_dtype dtype,
                                                 const int64_t* shape, size_t rank,
                                                 const anychip_scale_layout* scale, anychip_tensor** out);
ANYCHIP_API void anychip_tensor_release(anychip_tensor* tensor);
/* Bytes of the tensor's data and of its scale array (0 when unscaled); NULL to skip. */
ANYCHIP_API anychip_status anychip_tensor_bytes(const anychip_tensor* tensor, size_t* data_bytes,
                                                size_t* scale_bytes);
/* The tensor's dtype; its rank, and its dims into shape[0 .. rank) when capacity >= rank
 * (shape may be NULL with capacity 0 to ask the rank alone); *scaled = 1 and its scale
 * layout when it is block-scaled, else *scaled = 0. NULL to skip. */
ANYCHIP_API anychip_status anychip_tensor_type(const anychip_tensor* tensor, anychip_dtype* dtype, size_t* rank,
                                               int64_t* shape, size_t capacity, int* scaled,
                                               anychip_scale_layout* scale);
/* The tensor's type as .acir spells it ("f8e4m3[64, 512] scaled<1x128, ue8m0>"), the
 * caller's string. */
ANYCHIP_API anychip_status anychip_tensor_describe(const anychip_tensor* tensor, char** type);
/* Copies host memory into the tensor: `data` (row-major, exactly its data bytes) and, for
 * a block-scaled tensor, `scales` (exactly its scale bytes; NULL and 0 otherwise).
 * Returns when the copy is done, so the host memory may be reused at once. */
ANYCHIP_API anychip_status anychip_tensor_upload(anychip_tensor* tensor, anychip_stream* stream,
                                                 const void* data, size_t data_bytes,
                                                 const void* scales, size_t scale_bytes);
/* Copies the tensor to host memory, after everything enqueued on the stream before it;
 * sizes as for upload (`scales` may be NULL with 0 to skip the scales). Blocks. */
ANYCHIP_API anychip_status anychip_tensor_download(const anychip_tensor* tensor, anychip_stream* stream,
                                                   void* data, size_t data_bytes, void* scales,
                                                   size_t scale_bytes);

/* ----- graphs ------------------------------------------------------------------------- */

/* Values of a graph are numbered: inputs and op results, in the order they were made. */
typedef int32_t anychip_value;

/* An empty graph named `name` (NULL: "main"). */
ANYCHIP_API anychip_status anychip_graph_create(const char* name, anychip_graph** out);
/* Parses .acir text; `filename` (NULL: "<input>") names it in errors
 * ("FILE:LINE:COLUMN: ..."). ANYCHIP_ERROR_PARSE or ANYCHIP_ERROR_INVALID_GRAPH. */
ANYCHIP_API anychip_status anychip_graph_parse(const char* text, const char* filename, anychip_graph** out);
/* Parses a .acir file; ANYCHIP_ERROR_IO when it cannot be read. */
ANYCHIP_API anychip_status anychip_graph_parse_file(const char* path, anychip_graph** out);
ANYCHIP_API void anychip_graph_release(anychip_graph* graph);

/* Declares a graph input %name of the given type; its value through `value`. */
ANYCHIP_API anychip_status anychip_graph_add_input(anychip_graph* graph, const char* name, anychip_dtype dtype,
                                                   const int64_t* shape, size_t rank,
                                                   const anychip_scale_layout* scale, anychip_value* value);
/* Appends the op `op` (a name of anychip/ops.def: "gemm_fp8", "attention", ...) over
 * `inputs` in its operand order. Each of `attrs` is one attribute as .acir writes it,
 * "name=value" ("causal=true", "out_dtype=f32", "block=128x128", "shape=[1, 64, 8, 128]");
 * attributes not given take their defaults. `name` names the result (NULL or "": the next
 * number). Verified at once: ANYCHIP_ERROR_INVALID_GRAPH names the op and the rule broken,
 * and leaves the graph unchanged. */
ANYCHIP_API anychip_status anychip_graph_add_op(anychip_graph* graph, const char* op, const anychip_value* inputs,
                                                size_t n_inputs, const char* const* attrs, size_t n_attrs,
                                                const char* name, anychip_value* value);
/* Marks a value as the next graph output. */
ANYCHIP_API anychip_status anychip_graph_mark_output(anychip_graph* graph, anychip_value value);
/* The graph's inputs and outputs, counted. */
ANYCHIP_API anychip_status anychip_graph_io_count(const anychip_graph* graph, size_t* inputs, size_t* outputs);
/* The graph as canonical .acir text, the caller's string. */
ANYCHIP_API anychip_status anychip_graph_print(const anychip_graph* graph, char** text);

/* ----- compile and run ---------------------------------------------------------------- */

/* Flags of anychip_compile. */
#define ANYCHIP_COMPILE_NO_CACHE 1u /* neither read nor write the on-disk kernel cache */

/* Verifies the graph, lowers every op to a kernel for `device` and compiles the kernels
 * through the kernel cache in `cache_dir` (NULL or "": $ANYCHIP_CACHE_DIR, else
 * $XDG_CACHE_HOME/anychip/kernels, else ~/.cache/anychip/kernels). The executable keeps a
 * copy of the graph. ANYCHIP_ERROR_UNSUPPORTED names the op the device cannot run. */
ANYCHIP_API anychip_status anychip_compile(const anychip_graph* graph, anychip_device* device, uint32_t flags,
                                           const char* cache_dir, anychip_executable** out);
ANYCHIP_API void anychip_executable_release(anychip_executable* exe);

/* A tensor of the type of graph input / output `index`, on the executable's device. */
ANYCHIP_API anychip_status anychip_executable_allocate_input(const anychip_executable* exe, size_t index,
                                                             anychip_tensor** out);
ANYCHIP_API anychip_status anychip_executable_allocate_output(const anychip_executable* exe, size_t index,
                                                              anychip_tensor** out);
/* Enqueues one run on `stream` (of the executable's device): inputs and outputs in the
 * graph's order, of the graph's types. Does not block. */
ANYCHIP_API anychip_status anychip_executable_run(anychip_executable* exe, anychip_stream* stream,
                                                  const anychip_tensor* const* inputs, size_t n_inputs,
                                                  const anychip_tensor* const* outputs, size_t n_outputs);

/* The number of kernels the executable runs (views such as reshape are none). */
ANYCHIP_API anychip_status anychip_executable_kernel_count(const anychip_executable* exe, size_t* count);
/* Kernel `index`: its label ("gemm_fp8 %q") and op ("gemm_fp8"), the caller's strings, its
 * floating-point operations and the bytes it must move at least once. NULL to skip. */
ANYCHIP_API anychip_status anychip_executable_kernel_info(const anychip_executable* exe, size_t index,
                                                          char** label, char** op, double* flops,
                                                          double* min_bytes);
/* Device seconds of each kernel in the last run, into seconds[0 .. count) where count is
 * the kernel count. Blocks until the run is done. */
ANYCHIP_API anychip_status anychip_executable_last_kernel_seconds(anychip_executable* exe, anychip_stream* stream,
                                                                  double* seconds, size_t count);
/* Compares every kernel of the last run with the float64 reference, each on the very
 * inputs it read: rel_err[i] = ||out - ref|| / ||ref||, tolerance[i] its bound, ok[i] = 1
 * when within it; *all_ok = 1 when every kernel is. Arrays hold the kernel count; any
 * pointer may be NULL. A failed comparison is not an error: the call returns ANYCHIP_OK.
 * Blocks. */
ANYCHIP_API anychip_status anychip_executable_check_last_run(anychip_executable* exe, anychip_stream* stream,
                                                             size_t count, double* rel_err, double* tolerance,
                                                             int* ok, int* all_ok);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ANYCHIP_ANYCHIP_H */
