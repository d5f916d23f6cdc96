/* libmora — specialised, autotuned GPU kernels for MoRA fine-tuning.
 *
 * MoRA adapts a frozen linear layer y = W0·x with one trainable square matrix M (r̂ x r̂) placed
 * between two parameter-free operators:  y = W0·x + scale · decomp(M · comp(x)).
 * docs/operators.md describes every operator; this header is the whole public surface.
 *
 * Conventions
 * - Every fallible call returns a mora_status: MORA_OK (0) or a negative error. On error nothing the
 *   caller passed in was changed, and mora_last_error() holds a sentence naming the argument, its
 *   value and the limit it broke. The library never prints and never exits.
 * - Matrices are row-major. Activations: x is n x d_in, y is n x d_out (n = tokens). M is r̂ x r̂ with
 *   row a = output a (like torch.nn.Linear(r̂, r̂).weight). A weight W is d_out x d_in.
 * - Device memory belongs to the caller: a `void *` buffer is a cl_mem on OpenCL, a CUdeviceptr on
 *   CUDA, a hipDeviceptr_t on HIP, and a plain host pointer on the cpu backend.
 */
#ifndef MORA_H
#define MORA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define MORA_API
#else
#define MORA_API __attribute__((visibility("default")))
#endif

#define MORA_VERSION_MAJOR 0
#define MORA_VERSION_MINOR 1
#define MORA_VERSION_PATCH 0
#define MORA_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------------------------------------
 * Status codes. One list builds the enum, the names and the messages. Codes are only ever
 * appended at the end, never renumbered.
 * ------------------------------------------------------------------------------------------- */
#define MORA_STATUS_LIST(X)                                                                  \
    X(MORA_OK, 0, "success")                                                                 \
    X(MORA_E_ARG, -1, "invalid argument")                                                    \
    X(MORA_E_NULL, -2, "a required pointer argument is NULL")                                \
    X(MORA_E_SIZE, -3, "a size is zero, negative or too large")                              \
    X(MORA_E_CONSTRAINT, -4, "r̂ breaks the operator's constraint")                           \
    X(MORA_E_ODD_RHAT, -5, "the rope operator needs an even r̂")                              \
    X(MORA_E_OVERFLOW, -6, "sizes whose products overflow")                                  \
    X(MORA_E_UNKNOWN_OP, -7, "unknown operator name or id")                                  \
    X(MORA_E_UNKNOWN_DTYPE, -8, "unknown data type")                                         \
    X(MORA_E_NO_MEMORY, -9, "out of host or device memory")                                  \
    X(MORA_E_NO_BACKEND, -10, "the requested backend is not available")                     \
    X(MORA_E_COMPILE, -11, "kernel compilation failed")                                      \
    X(MORA_E_LAUNCH, -12, "kernel launch or device call failed")                             \
    X(MORA_E_DEVICE, -13, "device error")                                                    \
    X(MORA_E_UNSUPPORTED, -14, "not supported by this backend or build")                     \
    X(MORA_E_UNKNOWN_KIND, -15, "unknown kernel kind")                                       \
    X(MORA_E_PARAM, -16, "invalid tuning parameter")                                         \
    X(MORA_E_NOT_FOUND, -17, "no such entry")                                                \
    X(MORA_E_IO, -18, "file input/output failed")                                            \
    X(MORA_E_VERIFY, -19, "a kernel's result disagrees with the float64 reference")

typedef enum mora_status {
#define MORA_STATUS_ENUM_(name, value, message) name = value,
    MORA_STATUS_LIST(MORA_STATUS_ENUM_)
#undef MORA_STATUS_ENUM_
} mora_status;

/* Short English message for a status ("r̂ breaks the operator's constraint"); never NULL. */
MORA_API const char *mora_status_string(mora_status s);
/* Enum spelling of a status ("MORA_E_CONSTRAINT"); never NULL. */
MORA_API const char *mora_status_name(mora_status s);
/* Thread-local sentence describing the last failure on this thread ("d_in=0: must be >= 1").
 * Empty string when nothing has failed yet. Valid until the next libmora call on this thread. */
MORA_API const char *mora_last_error(void);

/* Warnings the library has to tell (an unwritable cache directory, a corrupt cache entry) are
 * never printed: they go to this callback, once each. Default: none (dropped). `user` is passed back. */
typedef enum mora_log_level { MORA_LOG_INFO = 0, MORA_LOG_WARNING = 1 } mora_log_level;
typedef void (*mora_log_fn)(mora_log_level level, const char *message, void *user);
MORA_API void mora_set_log_callback(mora_log_fn fn, void *user);

/* ---------------------------------------------------------------------------------------------
 * Operators, data types, shapes.
 * ------------------------------------------------------------------------------------------- */
/* Values equal the reference implementation's type ids where it has one. */
typedef enum mora_op {
    MORA_OP_TRUNCATE = 0,
    MORA_OP_SHARE = 1,
    MORA_OP_GROUP = 2,
    MORA_OP_GROUP_TILE = 3,
    MORA_OP_SHARE_INTERLEAVE = 4,
    MORA_OP_RESHAPE = 5,
    MORA_OP_ROPE = 6
} mora_op;
#define MORA_OP_COUNT 7

typedef enum mora_dtype { MORA_F32 = 0, MORA_F16 = 1, MORA_BF16 = 2 } mora_dtype;
#define MORA_DTYPE_COUNT 3

typedef struct mora_shape {
    int64_t d_in;  /* input features of the adapted layer */
    int64_t d_out; /* output features of the adapted layer */
    int64_t rhat;  /* side of the square matrix M */
    mora_op op;    /* compression / decompression operator pair */
} mora_shape;

/* "truncate" "share" "group" "group-tile" "share-interleave" "reshape" "rope", or the ids "0".."6". */
MORA_API mora_status mora_op_from_string(const char *name, mora_op *op);
/* Canonical name of an operator ("rope"); "unknown" for a value outside the enum. */
MORA_API const char *mora_op_name(mora_op op);
/* "f32" "f16" "bf16" (also "float32" "float16" "bfloat16"). */
MORA_API mora_status mora_dtype_from_string(const char *name, mora_dtype *dtype);
MORA_API const char *mora_dtype_name(mora_dtype dtype);
/* Bytes per element of an activation dtype (4, 2, 2); 0 for an unknown dtype. */
MORA_API size_t mora_dtype_size(mora_dtype dtype);

/* r̂ for a LoRA rank with the same parameter count: floor(sqrt((d_in + d_out) * lora_rank) + 0.5).
 * Returns -1 (and sets mora_last_error) for non-positive or overflowing arguments. This is the raw
 * formula: mora_shape_make additionally makes it even for rope. */
MORA_API int64_t mora_rhat_from_rank(int64_t d_in, int64_t d_out, int64_t lora_rank);

/* Fills *s for a layer d_in -> d_out adapted with the parameter budget of LoRA rank lora_rank.
 * For rope an odd formula result r̂ becomes r̂ - 1 (compare with mora_rhat_from_rank to tell). */
MORA_API mora_status mora_shape_make(mora_shape *s, int64_t d_in, int64_t d_out, int64_t lora_rank,
                                     mora_op op);
/* Checks a shape whose r̂ was given directly: sizes >= 1, the operator's constraint on r̂, even r̂
 * for rope, and that d_in*d_out, r̂*r̂ and the padded length fit in 64-bit byte counts. */
MORA_API mora_status mora_shape_check(const mora_shape *s);

/* Number of r̂-blocks the compressed input has: ceil(d_in / r̂) for reshape and rope, 1 otherwise. */
MORA_API int64_t mora_shape_blocks(const mora_shape *s);

/* ---------------------------------------------------------------------------------------------
 * float64 reference: the oracle of every test and of the tuner. Row-major; y, dx and dM
 * accumulate (+=); dx or dM may be NULL to skip that output. n = 0 is a no-op that succeeds
 * (x, y, dy, dx may then be NULL). Cost O(n * blocks * r̂^2).
 * ------------------------------------------------------------------------------------------- */
/* y[n][d_out] += scale * decomp(M · comp(x[n][d_in])) */
MORA_API mora_status mora_ref_forward(const mora_shape *s, const double *M, const double *x, double *y,
                                      int64_t n, double scale);
/* dM[r̂][r̂] += Σ_tokens Σ_blocks g ⊗ c;  dx[n][d_in] += comp^T(M^T g), with g = decomp^T(dy). */
MORA_API mora_status mora_ref_backward(const mora_shape *s, const double *M, const double *x,
                                       const double *dy, double *dx, double *dM, int64_t n);
/* dW[d_out][d_in] = ΔW, the exact matrix of x -> decomp(M comp(x)); overwritten. */
MORA_API mora_status mora_ref_delta_weight(const mora_shape *s, const double *M, double *dW);

/* ---------------------------------------------------------------------------------------------
 * Runtime: contexts, buffers, layers.
 * ------------------------------------------------------------------------------------------- */
typedef struct mora_context mora_context;
typedef struct mora_layer mora_layer;

/* backend: "auto" (cuda, then hip, then opencl, then cpu), "cpu", "opencl", "cuda" or "hip".
 * device: index among that backend's devices (0 = first). */
MORA_API mora_status mora_context_create(const char *backend, int device, mora_context **ctx);
MORA_API void mora_context_destroy(mora_context *ctx);
/* "cpu", "opencl", "cuda" or "hip". */
MORA_API const char *mora_context_backend(const mora_context *ctx);
MORA_API const char *mora_context_device_name(const mora_context *ctx);
/* Adopts the caller's queue/stream (cl_command_queue, CUstream, hipStream_t); NULL returns to the
 * context's own. The caller keeps ownership and must keep it alive while the context uses it. */
MORA_API mora_status mora_context_set_stream(mora_context *ctx, void *native_stream);

MORA_API mora_status mora_buffer_alloc(mora_context *ctx, size_t bytes, void **buf);
MORA_API mora_status mora_buffer_free(mora_context *ctx, void *buf);
MORA_API mora_status mora_buffer_write(mora_context *ctx, void *buf, size_t offset, const void *src,
                                       size_t bytes);
MORA_API mora_status mora_buffer_read(mora_context *ctx, const void *buf, size_t offset, void *dst,
                                      size_t bytes);
MORA_API mora_status mora_synchronize(mora_context *ctx);

/* A layer owns M (float32, starts at zero) and its gradient dM (float32, accumulates) on the device,
 * and the compiled kernels of its shape. Activations are of `dtype`. */
MORA_API mora_status mora_layer_create(mora_context *ctx, const mora_shape *s, mora_dtype dtype,
                                       mora_layer **l);
MORA_API void mora_layer_destroy(mora_layer *l);
MORA_API mora_status mora_layer_set_weight(mora_layer *l, const float *M); /* host, r̂ x r̂ */
MORA_API mora_status mora_layer_get_weight(const mora_layer *l, float *M);
MORA_API mora_status mora_layer_get_grad(const mora_layer *l, float *dM); /* host copy of dM */
MORA_API mora_status mora_layer_zero_grad(mora_layer *l);
/* Tunes every kernel of the layer's shape on its device (tokens: the token count to time with, 0 for
 * the device's default; budget_seconds for all kernels together, 0 for 60), stores the winners in the
 * kernels cache and uses them from now on. Layers otherwise take their parameters from the cache,
 * then the database shipped with libmora, then the defaults; with the environment variable
 * MORA_AUTOTUNE=1, mora_layer_create tunes what the cache does not have. A no-op on the cpu backend. */
MORA_API mora_status mora_layer_autotune(mora_layer *l, int64_t tokens, double budget_seconds);

/* y[n][d_out] += scale * decomp(M comp(x)); x, y device buffers of the layer's dtype. */
MORA_API mora_status mora_forward(mora_layer *l, const void *x, void *y, int64_t n, float scale);
/* dM += Σ g ⊗ c; dx += comp^T(M^T g) when dx is not NULL. */
MORA_API mora_status mora_backward(mora_layer *l, const void *x, const void *dy, void *dx /* may be NULL */,
                                   int64_t n);
/* W[d_out][d_in] += s * ΔW, touching only the entries ΔW has; W of w_dtype on the device. */
MORA_API mora_status mora_merge(mora_layer *l, void *W, mora_dtype w_dtype, float s);

#ifdef __cplusplus
}
#endif
#endif /* MORA_H */
