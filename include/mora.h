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
 *   CUDA, a hipDeviceptr_t on HIP, and a plain host pointer on the cpu backend. The library frees
 *   only what it allocated itself (a plan's own workspace, a context's own stream).
 * - Strides (ld*) count elements between the starts of consecutive rows.
 * - mora_last_error() is empty after a call that succeeded.
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

#include "mora_version.h" /* MORA_VERSION_MAJOR, _MINOR, _PATCH, _STRING: the header's version */

/* The version of the library actually loaded ("0.3.0"), and as one number (major·10000 + minor·100
 * + patch): compare with MORA_VERSION_STRING to catch a header / library mismatch. */
MORA_API const char *mora_version(void);
MORA_API int mora_version_number(void);

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
    X(MORA_E_VERIFY, -19, "a kernel's result disagrees with the float64 reference")                 \
    X(MORA_E_ALIAS, -20, "an output buffer overlaps another argument of the call")

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
 * never printed: they go to this callback, once each. Default: none (dropped). `user` is passed back.
 * Threading: the callback runs on the thread whose libmora call has something to tell (the tuner's
 * compile threads included), outside any lock of libmora, so it may be called from several threads at
 * once and must be thread-safe. mora_set_log_callback may be called at any time from any thread; a
 * message already being delivered may still reach the callback it replaced. */
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
 * Contexts and buffers.
 *
 * Streams: every call that touches the device is enqueued on the context's current stream/queue —
 * its own, or the caller's after mora_context_set_stream — in the order calls are made; only
 * mora_buffer_read/write, mora_synchronize and the creation / tuning calls wait for it.
 * ------------------------------------------------------------------------------------------- */
typedef struct mora_context mora_context;

/* backend: "auto" (cuda, then hip, then opencl on a device that is not the host's CPU, then cpu —
 * on the host's CPU libmora's own cpu path is faster than an OpenCL CPU driver such as PoCL), "cpu",
 * "opencl", "cuda" or "hip".
 * device: index among that backend's devices (0 = first). */
MORA_API mora_status mora_context_create(const char *backend, int device, mora_context **ctx);
/* A context around the application's own OpenCL objects (cl_context, a cl_device_id of it, and a
 * cl_command_queue of it, or NULL for one of libmora's). Buffers of that cl_context work directly.
 * The queue must be in-order. The caller keeps the objects alive while the context lives (the
 * context retains the cl_context and the queue). */
MORA_API mora_status mora_context_create_opencl(void *cl_context, void *cl_device_id, void *cl_command_queue,
                                                mora_context **ctx);
/* A context on CUDA device `device`'s primary context (the one the CUDA runtime and PyTorch use),
 * or on the application's CUcontext (cu_context != NULL; its device is used, `device` ignored);
 * cu_stream (a CUstream, may be NULL) is adopted at once. */
MORA_API mora_status mora_context_create_cuda(void *cu_context, int device, void *cu_stream, mora_context **ctx);
/* A context on HIP device `device` (HIP's device is its context), adopting hip_stream (may be NULL). */
MORA_API mora_status mora_context_create_hip(int device, void *hip_stream, mora_context **ctx);
/* Releases the caller's hold on the context. Plans and adapters of the context hold it too (as
 * OpenCL objects hold their cl_context): its device objects, programs and cache are closed when the
 * last holder lets go, so plans, adapters and the context may be destroyed in any order. Until then
 * the context still works for what remains to be done with it (mora_buffer_free of its buffers, in
 * particular); a second mora_context_destroy does nothing. Once closed, the handle is refused with
 * MORA_E_ARG as far as a check of its first word can tell (mora.h, "Handles"). NULL: nothing. */
MORA_API void mora_context_destroy(mora_context *ctx);
/* "cpu", "opencl", "cuda" or "hip". */
MORA_API const char *mora_context_backend(const mora_context *ctx);
MORA_API const char *mora_context_device_name(const mora_context *ctx);
/* Adopts the caller's queue/stream (cl_command_queue, CUstream, hipStream_t); NULL returns to the
 * context's own (the only value the cpu backend takes). An OpenCL queue must belong to the
 * context's cl_context and be in-order (an out-of-order queue is rejected: libmora's two-kernel
 * calls rely on the order). The caller keeps the stream alive while the context uses it. Not to be
 * called while another thread launches on the context. A pointer that is not a stream of this
 * runtime cannot always be told apart: passing one is undefined behaviour, as in the runtime itself. */
MORA_API mora_status mora_context_set_stream(mora_context *ctx, void *native_stream);

/* Device buffers of the context (see "Conventions" for what a buffer is on each backend). read and
 * write wait for the stream; offsets and sizes are checked against the buffer where its size can be
 * told: always on OpenCL, CUDA and HIP; on the cpu backend for buffers from mora_buffer_alloc, not for
 * the caller's own host pointers (accepted too, but a too-small one is the caller's overrun, as with
 * memcpy). */
MORA_API mora_status mora_buffer_alloc(mora_context *ctx, size_t bytes, void **buf);
MORA_API mora_status mora_buffer_free(mora_context *ctx, void *buf);
MORA_API mora_status mora_buffer_write(mora_context *ctx, void *buf, size_t offset, const void *src,
                                       size_t bytes);
MORA_API mora_status mora_buffer_read(mora_context *ctx, const void *buf, size_t offset, void *dst,
                                      size_t bytes);
/* Waits until everything enqueued on the context's stream has finished. */
MORA_API mora_status mora_synchronize(mora_context *ctx);

/* ---------------------------------------------------------------------------------------------
 * Plans: the compiled kernels of one shape, activation dtype and device, run on the caller's
 * buffers. A plan owns no trainable state: M (r̂ x r̂ float32, row a = output a) and its gradient
 * dM are the caller's device buffers, like the activations, so an optimizer updates M in place and
 * a data-parallel trainer all-reduces dM where it lies.
 *
 * Preparation happens at creation: the parameters are chosen (kernels cache record for the
 * max_tokens bucket, else the nearest bucket → the database shipped with libmora → defaults; tuning
 * only when asked), every kernel the plan will run is compiled (or loaded from the cache's
 * binaries), and the workspace is allocated. After that, mora_forward, mora_backward and mora_merge
 * never compile, allocate, free or synchronise: they validate their arguments and enqueue kernels
 * on the context's stream. On CUDA and HIP they can therefore be captured into a graph. (On the
 * cpu backend they run synchronously, on the calling thread and worker threads started and joined
 * within the call: no device memory is allocated, but thread creation is.)
 *
 * Handles: contexts, plans and adapters start with a magic word that every call checks first, so a
 * destroyed handle (while its memory is not yet reused) or a pointer to another kind of object is
 * MORA_E_ARG instead of a crash. A plan keeps its context alive (mora_context_destroy).
 *
 * Arguments of the three calls: `scale` / `s` must be finite (MORA_E_ARG). An output (y; dx, dM; W)
 * must not overlap any other buffer argument of the same call — the same buffer, or byte ranges of
 * one allocation that share an element (rows of equal stride that interleave without touching are
 * fine): MORA_E_ALIAS. Inputs may overlap each other (x == M is defined: both are only read).
 * Buffers of another context are refused where the runtime tells an allocation's owner (OpenCL:
 * CL_MEM_CONTEXT; CUDA: CU_POINTER_ATTRIBUTE_CONTEXT; HIP: the pointer's device; the cpu backend: its
 * registry of mora_buffer_alloc blocks; a plain host pointer is the caller's and always accepted).
 *
 * Threading: a context and its plans may be used from several threads at once — plan creation,
 * the three calls, buffer calls. Calls on one plan are serialised by the plan (they share its
 * workspace and kernel objects); calls on different plans run concurrently and never share a kernel
 * object. Not concurrent with anything else on the same object: mora_plan_destroy,
 * mora_plan_set_workspace, mora_plan_autotune, mora_context_set_stream, mora_context_destroy.
 * ------------------------------------------------------------------------------------------- */
typedef struct mora_plan mora_plan;

/* The calls a plan prepares (mora_plan_options.calls). */
#define MORA_PLAN_FORWARD 1u  /* mora_forward */
#define MORA_PLAN_BACKWARD 2u /* mora_backward (dx and dM) */
#define MORA_PLAN_MERGE 4u    /* mora_merge */

/* Options structs begin with their own size, so that they can grow without breaking callers: set
 * struct_size = sizeof(the struct) as your mora.h declares it (the *_INIT macros do), and a library
 * newer than your header reads only that many bytes (the members after them keep their defaults); a
 * size that is not one of the layouts the library knows is MORA_E_ARG. */
typedef struct mora_plan_options {
    size_t struct_size;         /* sizeof(mora_plan_options) */
    unsigned calls;             /* MORA_PLAN_* bits; 0: all three */
    unsigned merge_dtypes;      /* bit (1u << dtype) per W dtype mora_merge will take; 0: the activation dtype */
    int external_workspace;     /* 1: allocate no workspace; the caller gives one (mora_plan_set_workspace) */
    int autotune;               /* 1: tune, at creation, every kind the kernels cache has no record for
                                   (MORA_AUTOTUNE=1 in the environment does the same) */
    double tune_budget_seconds; /* for autotune, all kinds together, wall time; 0: 60; at most
                                   MORA_TUNE_MAX_BUDGET_SECONDS */
} mora_plan_options;
/* The largest tuning budget (seconds of wall time, all kinds together) any call takes: a day. A
 * larger one is MORA_E_ARG. The tuner stops on time: what runs past the budget is at most the
 * candidate being measured and the confirmation of the winner. */
#define MORA_TUNE_MAX_BUDGET_SECONDS 86400.0
/* Every option at its default: `mora_plan_options o = MORA_PLAN_OPTIONS_INIT; o.calls = ...;` */
#define MORA_PLAN_OPTIONS_INIT {sizeof(mora_plan_options), 0u, 0u, 0, 0, 0.0}

/* Creates a plan for `max_tokens` (the largest n a backward will take with the plan's own
 * workspace — and a forward on the cpu backend, whose tiles are packed there; on the other backends
 * forward and merge take any n). options may be NULL (all calls, W of the activation
 * dtype, the plan's own workspace, no tuning). */
MORA_API mora_status mora_plan_create(mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t max_tokens,
                                      const mora_plan_options *options, mora_plan **plan);
MORA_API void mora_plan_destroy(mora_plan *plan);
/* Bytes of workspace a call of n tokens needs with the plan's parameters (a backward; on the cpu
 * backend a forward too; 0 is possible). */
MORA_API mora_status mora_plan_workspace_size(const mora_plan *plan, int64_t n, size_t *bytes);
/* Gives the plan the caller's workspace (a device buffer of the context, at least `bytes` bytes,
 * which bounds the n of a backward), or NULL to go back to a workspace of the plan's own for
 * max_tokens (allocated now). The caller keeps its workspace alive and does not use it while the
 * plan's calls may be running on the stream. */
MORA_API mora_status mora_plan_set_workspace(mora_plan *plan, void *workspace, size_t bytes);
/* Tunes every kind the plan prepared on its device (tokens to time with, 0: max_tokens; the budget
 * for all kinds together, wall time, 0: 60 s, at most MORA_TUNE_MAX_BUDGET_SECONDS), stores the winners (records and binaries) in the kernels
 * cache, and uses them from now on. On the cpu backend: the cpu path's tokens per tile and threads. */
MORA_API mora_status mora_plan_autotune(mora_plan *plan, int64_t tokens, double budget_seconds);

/* y[i][:] += scale · decomp(M · comp(x[i][:])) for n tokens; x rows are ldx elements apart
 * (ldx >= d_in), y rows ldy apart (ldy >= d_out), both of the plan's dtype. */
MORA_API mora_status mora_forward(mora_plan *plan, const void *M, const void *x, int64_t ldx, void *y, int64_t ldy,
                                  int64_t n, float scale);
/* With g = decomp^T(dy) per token (and block):
 *   dM += scale · Σ_tokens Σ_blocks g ⊗ c          (dM: r̂ x r̂ float32; may be NULL: not computed)
 *   dx += scale · comp^T(M^T g)                     (dx rows lddx apart; may be NULL: not computed)
 * A forward y += s·f(x) has the backward of dy with scale = s. Everything is validated before
 * anything is launched: on a bad argument neither output changed (only a failure the device reports
 * after the first kernel was enqueued, MORA_E_LAUNCH, can leave dM updated). */
MORA_API mora_status mora_backward(mora_plan *plan, const void *M, const void *x, int64_t ldx, const void *dy,
                                   int64_t lddy, void *dx, int64_t lddx, void *dM, int64_t n, float scale);
/* W[j][:] (rows ldw >= d_in apart, of w_dtype, one the plan prepared) += s · ΔW, touching only the
 * entries ΔW has; s = -1 unmerges. */
MORA_API mora_status mora_merge(mora_plan *plan, const void *M, void *W, int64_t ldw, mora_dtype w_dtype, float s);

/* ---------------------------------------------------------------------------------------------
 * Adapters: the thin training runtime. A named set of MoRA layers on one context whose trainable
 * state lives in four contiguous float32 device arenas — M, dM, and AdamW's m and v — so one
 * optimizer call and one all-reduce (MPI_Allreduce / ncclAllReduce of the gradient arena, which
 * libmora never does itself) serve the whole model. Layer i's M is the r̂ x r̂ block at its offset
 * in the parameter arena (the same offset in the others); offsets are multiples of
 * MORA_ARENA_ALIGN elements and the padding between layers stays zero. Layers of one shape, op and
 * dtype share one plan. Threading: as plans, calls on one adapter are not concurrent with
 * mora_adapter_step, _remora, _load or _destroy.
 * ------------------------------------------------------------------------------------------- */
typedef struct mora_adapter mora_adapter;

#define MORA_ARENA_ALIGN 128 /* elements (512 bytes): OpenCL sub-buffers need aligned origins */

typedef struct mora_adapter_layer_desc {
    const char *name;  /* the module's name in the model, e.g. "model.layers.0.self_attn.q_proj" */
    int64_t d_in, d_out;
    int64_t lora_rank; /* r: r̂ = mora_shape_make's; 0: give rhat instead (the checkpoint's "r" is then
                          the rank of the nearest parameter count) */
    int64_t rhat;      /* used when lora_rank == 0 */
    mora_op op;
    mora_dtype dtype;   /* activations */
    mora_dtype w_dtype; /* the base weight W0 that ReMoRA merges into */
} mora_adapter_layer_desc;

typedef struct mora_adapter_options {
    size_t struct_size; /* sizeof(mora_adapter_options) (see mora_plan_options) */
    int remora_types; /* ReMoRA's cycle of sharing types: 4 (share → group → group-tile →
                         share-interleave → share, the reference's default) or 2 (share ↔ group);
                         0: 4 */
} mora_adapter_options;
#define MORA_ADAPTER_OPTIONS_INIT {sizeof(mora_adapter_options), 0}

/* Creates the layers (names unique), the arenas (M, m, v zero: ΔW = 0) and the plans, for up to
 * max_tokens tokens per backward. options may be NULL. */
MORA_API mora_status mora_adapter_create(mora_context *ctx, const mora_adapter_layer_desc *layers, int count,
                                         int64_t max_tokens, const mora_adapter_options *options,
                                         mora_adapter **adapter);
MORA_API void mora_adapter_destroy(mora_adapter *adapter);
MORA_API int mora_adapter_layer_count(const mora_adapter *adapter);
/* The index of the layer called `name`, or MORA_E_NOT_FOUND. */
MORA_API mora_status mora_adapter_find(const mora_adapter *adapter, const char *name, int *index);

typedef struct mora_adapter_layer_info {
    const char *name;  /* valid while the adapter lives */
    mora_shape shape;  /* op: the current one (ReMoRA advances the sharing types) */
    mora_dtype dtype, w_dtype;
    int64_t lora_rank; /* as given, or derived from r̂ */
    int64_t offset;    /* elements from the start of every arena */
} mora_adapter_layer_info;
MORA_API mora_status mora_adapter_layer(const mora_adapter *adapter, int index, mora_adapter_layer_info *info);

typedef enum mora_arena {
    MORA_ARENA_PARAMS = 0,  /* every layer's M */
    MORA_ARENA_GRADS = 1,   /* every layer's dM: all-reduce this one */
    MORA_ARENA_EXP_AVG = 2, /* AdamW's m */
    MORA_ARENA_EXP_AVG_SQ = 3 /* AdamW's v */
} mora_arena;
/* The arena's device buffer (see "Conventions") and its length in float32 elements. */
MORA_API mora_status mora_adapter_arena(const mora_adapter *adapter, mora_arena which, void **buffer, int64_t *count);

/* Layer `index`'s forward / backward through its plan on its slice of the arenas (dM accumulates
 * into the gradient arena; dx may be NULL). Same arguments and rules as mora_forward / mora_backward. */
MORA_API mora_status mora_adapter_forward(mora_adapter *adapter, int index, const void *x, int64_t ldx, void *y,
                                          int64_t ldy, int64_t n, float scale);
MORA_API mora_status mora_adapter_backward(mora_adapter *adapter, int index, const void *x, int64_t ldx,
                                           const void *dy, int64_t lddy, void *dx, int64_t lddx, int64_t n,
                                           float scale);
/* dM = 0 over the whole gradient arena (enqueued). */
MORA_API mora_status mora_adapter_zero_grad(mora_adapter *adapter);

/* torch.optim.AdamW's hyper-parameters; mora_adamw_defaults() gives torch's defaults. */
typedef struct mora_adamw {
    size_t struct_size; /* sizeof(mora_adamw) (see mora_plan_options) */
    float lr, beta1, beta2, eps, weight_decay;
    float max_grad_norm; /* > 0: clip the global gradient norm first (clip_grad_norm_); 0: no clipping */
} mora_adamw;
/* torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2, no clipping. The macro
 * is sized by your header; the function (kept for bindings) by the library's. */
#define MORA_ADAMW_DEFAULTS {sizeof(mora_adamw), 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, 0.0f}
MORA_API mora_adamw mora_adamw_defaults(void);
/* Every hyper-parameter must be finite: lr, eps, weight_decay, max_grad_norm >= 0, betas in [0, 1).
 * One AdamW step over every arena element (step t = the adapter's count + 1), fused into one pass
 * (two more small kernels when clipping). Enqueued: nothing waits. dM is left as it was (scaled by
 * the clip coefficient when clipping), so zero it before the next accumulation. */
MORA_API mora_status mora_adapter_step(mora_adapter *adapter, const mora_adamw *hp);
/* The steps taken since creation or the last ReMoRA reset. */
MORA_API int64_t mora_adapter_steps(const mora_adapter *adapter);
/* The global gradient norm of the last clipped step (waits for it); MORA_E_NOT_FOUND if none. */
MORA_API mora_status mora_adapter_last_grad_norm(mora_adapter *adapter, float *norm);

/* ReMoRA, as the method's reference trainer does it every K steps: W0 += ΔW for every layer (W[i]
 * of the layer's w_dtype, rows ld[i] apart), then M = 0, m = v = 0 and the step count reset, and
 * the sharing types advanced one place in their cycle (rope, reshape and truncate keep theirs; a
 * type whose constraint the shape breaks is passed over). The learning-rate re-warmup (the
 * reference: linear over 50 steps) is the trainer's. Plans for new types are made here (compiles). */
MORA_API mora_status mora_adapter_remora(mora_adapter *adapter, void *const *W, const int64_t *ld);

/* Checkpoints in the MoRA reference's PEFT layout: `folder`/adapter_model.safetensors (per layer
 * base_model.model.<name>.lora_A.weight and .lora_B.weight, both M, float32 r̂ x r̂; libmora's
 * per-layer types and the step in __metadata__), adapter_config.json (peft_type LORA, use_mora,
 * mora_type, r, target_modules, ...) and optimizer.safetensors (m, v). Written atomically (temp
 * file, fsync, rename); the folder is created if missing. Loading checks every field and the shapes
 * against the adapter, and changes nothing when it fails (the error names the file, tensor and
 * problem); optimizer.safetensors is optional on load (absent: m = v = 0, step 0). */
MORA_API mora_status mora_adapter_save(mora_adapter *adapter, const char *folder);
MORA_API mora_status mora_adapter_load(mora_adapter *adapter, const char *folder);

#ifdef __cplusplus
}
#endif
#endif /* MORA_H */
