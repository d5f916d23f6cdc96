/* memorize — MoRA's memorisation claim reproduced in miniature with libmora (issue 13).
 *
 * Main task (the paper's UUID memorisation, scaled down): N random key -> value pairs of 32 hex
 * characters. The key, one-hot (32 x 16 = 512 inputs), goes through a small frozen random residual
 * ReLU MLP (512 -> H, `depth` residual H -> H blocks, H -> 512 logits; GEMMs through cblas_sgemm)
 * whose every linear layer carries an adapter; the 512 logits are 32 softmaxes over the value's
 * characters (cross-entropy); metric: character accuracy on the pairs, against the training step.
 * Counterpoint: a linear associative memory — one frozen random d x d layer, N random unit keys to
 * N random unit values, MSE; recall = the fraction of keys whose output is nearest (cosine) to its
 * own value among all values.
 *
 * Methods, all at LoRA rank r's parameter count, all with AdamW (torch's rule):
 *   lora         ΔW = (alpha/r)·B·A, A random (PEFT's kaiming-uniform), B zero, alpha = r; forward,
 *                backward and AdamW written here with cblas (the baseline, not a libmora feature)
 *   mora-rope    libmora's adapter, op rope (r̂ from r through lora_rank)
 *   mora-share   libmora's adapter, op share
 *   remora-share share, mora_adapter_remora every K steps (merge into the frozen weights, reset,
 *                cycle share -> group -> group-tile -> share-interleave), lr re-warmed after each
 *   remora-rope  rope, the same merges (rope keeps its type)
 *   relora       ReLoRA, ReMoRA's like-for-like control: LoRA merged into the frozen weights every K
 *                steps (W += (alpha/r)·B·A), A drawn again, B = 0, AdamW's moments and step reset, the
 *                learning rate re-warmed as ReMoRA's
 * Each method takes the best of a learning-rate sweep, judged by the mean over the seeds; a best at an
 * edge of the sweep extends it (--extend-edges) until the best is inside. Schedule for all: linear
 * warm-up over 5 % of the steps, cosine decay to 0; weight decay 0 (memorisation); the global
 * gradient norm clipped (--clip, torch's clip_grad_norm_ rule) for every method.
 * Every cell is run for every seed (--seeds: the task's data, the frozen network and the adapters'
 * initialisation all follow the seed) and reported as mean ± sample sd; the report claims that one
 * method beats another only where their intervals (mean ± sd) separate.
 * The frozen head (the last layer) is scaled by --head-scale, so that the starting loss is close to
 * ln 16 (uniform predictions) instead of a random head's larger loss. The fraction of dead ReLUs
 * (hidden units zero for every key) and the gradient norm are logged with the curves.
 * The singular values of each learned ΔW (MoRA: mora_ref_delta_weight of M, plus what ReMoRA
 * merged; LoRA: B·A) come from LAPACKE; "significant" = above 1 % of the largest.
 *
 *   build/examples/memorize [--quick] [--out DIR] [--n N] [--width H] [--depth D] [--steps S]
 *       [--ranks 8,32] [--lrs 3e-3,1e-2,3e-2] [--methods lora,relora,mora-rope,...] [--remora-every K]
 *       [--lin-d D] [--lin-n N] [--lin-steps S] [--tasks uuid,linear] [--seeds 1,2,3] [--clip G]
 *       [--head-scale X] [--extend-edges E]
 *
 * Writes into DIR: curves_main.csv, curves_linear.csv (every run), summary.csv, spectra.csv,
 * curve_*.dat (one per run), best_sv_*.csv (the spectra the plots show), plots (*.png, when gnuplot is installed) and report.md.
 * Exit status: 0; 1 when a check fails (--quick: a method whose loss did not fall by 10 %, a missing report
 * file, the example's AdamW or clipping disagreeing with libmora's, a ReLoRA merge that changes the
 * layer's output); 2 on a usage error.
 * Run with OPENBLAS_NUM_THREADS=1 (the README explains why). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#ifdef MORA_HAVE_LAPACKE
#include <lapacke.h>
#endif
#include <mora.h>

#include "random.h" /* core/random.h: the project's seeded generator (header-only) */

#define TRY(call)                                                                     \
    do {                                                                              \
        const mora_status s_ = (call);                                                \
        if (s_ != MORA_OK) {                                                          \
            fprintf(stderr, "memorize: %s failed: %s\n", #call, mora_last_error());   \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

enum { KEY_CHARS = 32, HEX = 16, ONEHOT = KEY_CHARS * HEX, MAX_LAYERS = 16, MAX_LIST = 8, MAX_LRS = MAX_LIST + 8 };

static void *xmalloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "memorize: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}
#define NEW(type, count) ((type *)xmalloc(sizeof(type) * (size_t)(count)))

/* ---- random numbers: the project's splitmix64 (a header-only utility, not libmora's API), Box-Muller ---- */
static uint64_t rng_next(uint64_t *s) { return mora_random_next(s); }
static double rng_uniform(uint64_t *s) { return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0; }
static float rng_normal(uint64_t *s) {
    const double u = rng_uniform(s), v = rng_uniform(s);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* ---- methods ---- */
typedef struct method {
    const char *name;
    int mora;  /* 0: LoRA */
    mora_op op;
    int remora; /* merge and restart every K steps: ReMoRA (mora) or ReLoRA (LoRA) */
} method;
static const method all_methods[] = {
    {"lora", 0, MORA_OP_SHARE, 0},         {"relora", 0, MORA_OP_SHARE, 1},
    {"mora-rope", 1, MORA_OP_ROPE, 0},     {"mora-share", 1, MORA_OP_SHARE, 0},
    {"remora-share", 1, MORA_OP_SHARE, 1}, {"remora-rope", 1, MORA_OP_ROPE, 1},
};
static const char default_methods[] = "lora,relora,mora-rope,mora-share,remora-share,remora-rope";
enum { METHOD_COUNT = (int)(sizeof all_methods / sizeof all_methods[0]) };

/* ---- one adapted model: frozen weights (host = the cpu backend's device memory) and its adapter ---- */
typedef struct model {
    int L;
    int64_t d_in[MAX_LAYERS], d_out[MAX_LAYERS];
    float *W[MAX_LAYERS], *W_init[MAX_LAYERS]; /* W changes only through ReMoRA's merges */
    const method *m;
    int r;
    /* LoRA: A (r x d_in) and B (d_out x r) per layer in one arena, with grads and moments */
    float *P, *G, *Mo, *V, *tmp1, *tmp2;
    int64_t off_A[MAX_LAYERS], off_B[MAX_LAYERS], count;
    float lora_scale;
    int64_t lora_t;    /* AdamW step */
    uint64_t lora_rng; /* draws A at the start and again after every ReLoRA merge */
    /* MoRA */
    mora_context *ctx;
    mora_adapter *ad;
    int64_t max_tokens;
} model;

/* LoRA's start: A drawn as PEFT's kaiming_uniform_(a = sqrt 5) = U(-1/sqrt(d_in), 1/sqrt(d_in)), B = 0 */
static void lora_draw_A(model *md) {
    for (int l = 0; l < md->L; ++l) {
        const double bound = 1.0 / sqrt((double)md->d_in[l]);
        for (int64_t i = 0; i < md->r * md->d_in[l]; ++i)
            md->P[md->off_A[l] + i] = (float)((2 * rng_uniform(&md->lora_rng) - 1) * bound);
        memset(md->P + md->off_B[l], 0, sizeof(float) * (size_t)(md->d_out[l] * md->r));
    }
}

static void model_init(model *md, mora_context *ctx, int L, const int64_t *d_in, const int64_t *d_out,
                       float *const *W_frozen, const method *m, int r, int64_t max_tokens, uint64_t seed) {
    memset(md, 0, sizeof *md);
    md->L = L, md->m = m, md->r = r, md->ctx = ctx, md->max_tokens = max_tokens;
    int64_t widest = 0;
    for (int l = 0; l < L; ++l) {
        md->d_in[l] = d_in[l], md->d_out[l] = d_out[l];
        const size_t sz = (size_t)(d_in[l] * d_out[l]);
        md->W[l] = NEW(float, sz), md->W_init[l] = NEW(float, sz);
        memcpy(md->W[l], W_frozen[l], sz * sizeof(float));
        memcpy(md->W_init[l], W_frozen[l], sz * sizeof(float));
        if (d_in[l] > widest) widest = d_in[l];
        if (d_out[l] > widest) widest = d_out[l];
    }
    if (!m->mora) {
        int64_t c = 0;
        for (int l = 0; l < L; ++l) {
            md->off_A[l] = c, c += r * d_in[l];
            md->off_B[l] = c, c += d_out[l] * r;
        }
        md->count = c;
        md->P = NEW(float, c), md->G = NEW(float, c), md->Mo = NEW(float, c), md->V = NEW(float, c);
        md->tmp1 = NEW(float, max_tokens * r), md->tmp2 = NEW(float, max_tokens * r);
        md->lora_scale = 1.0f; /* alpha = r */
        md->lora_rng = seed;
        lora_draw_A(md);
    } else {
        mora_adapter_layer_desc desc[MAX_LAYERS];
        char names[MAX_LAYERS][32];
        for (int l = 0; l < L; ++l) {
            snprintf(names[l], sizeof names[l], "layers.%d", l);
            desc[l] = (mora_adapter_layer_desc){names[l], d_in[l], d_out[l], r, 0, m->op, MORA_F32, MORA_F32};
        }
        TRY(mora_adapter_create(ctx, desc, L, max_tokens, NULL, &md->ad));
        void *p;
        TRY(mora_adapter_arena(md->ad, MORA_ARENA_PARAMS, &p, &md->count));
    }
}

static void model_free(model *md) {
    for (int l = 0; l < md->L; ++l) free(md->W[l]), free(md->W_init[l]);
    free(md->P), free(md->G), free(md->Mo), free(md->V), free(md->tmp1), free(md->tmp2);
    if (md->ad) mora_adapter_destroy(md->ad);
}

/* trainable parameters (without the arena's alignment padding) */
static int64_t model_params(const model *md) {
    if (!md->m->mora) return md->count;
    int64_t c = 0;
    for (int l = 0; l < md->L; ++l) {
        mora_adapter_layer_info info;
        TRY(mora_adapter_layer(md->ad, l, &info));
        c += info.shape.rhat * info.shape.rhat;
    }
    return c;
}

/* z (n x d_out, rows ldz apart) = x·Wᵀ + adapter(x) */
static void layer_forward(model *md, int l, const float *x, int64_t ldx, float *z, int64_t ldz, int64_t n) {
    const int64_t di = md->d_in[l], dout = md->d_out[l];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)dout, (int)di, 1.0f, x, (int)ldx, md->W[l],
                (int)di, 0.0f, z, (int)ldz);
    if (md->m->mora) {
        TRY(mora_adapter_forward(md->ad, l, x, ldx, z, ldz, n, 1.0f));
    } else {
        const int r = md->r;
        const float *A = md->P + md->off_A[l], *B = md->P + md->off_B[l];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, r, (int)di, 1.0f, x, (int)ldx, A, (int)di, 0.0f,
                    md->tmp1, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)dout, r, md->lora_scale, md->tmp1, r, B, r,
                    1.0f, z, (int)ldz);
    }
}

/* gradients of the adapter accumulate; dx (may be NULL) = dz·W + the adapter's part */
static void layer_backward(model *md, int l, const float *x, int64_t ldx, const float *dz, int64_t ldz, float *dx,
                           int64_t lddx, int64_t n) {
    const int64_t di = md->d_in[l], dout = md->d_out[l];
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)di, (int)dout, 1.0f, dz, (int)ldz, md->W[l],
                    (int)di, 0.0f, dx, (int)lddx);
    if (md->m->mora) {
        TRY(mora_adapter_backward(md->ad, l, x, ldx, dz, ldz, dx, lddx, n, 1.0f));
    } else {
        const int r = md->r;
        const float s = md->lora_scale;
        const float *A = md->P + md->off_A[l], *B = md->P + md->off_B[l];
        float *dA = md->G + md->off_A[l], *dB = md->G + md->off_B[l], *t = md->tmp1, *dt = md->tmp2;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, r, (int)di, 1.0f, x, (int)ldx, A, (int)di, 0.0f, t,
                    r); /* t = x·Aᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, r, (int)dout, s, dz, (int)ldz, B, r, 0.0f, dt,
                    r); /* dt = s·dz·B */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)dout, r, (int)n, s, dz, (int)ldz, t, r, 1.0f, dB,
                    r); /* dB += s·dzᵀ·t */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, (int)di, (int)n, 1.0f, dt, r, x, (int)ldx, 1.0f, dA,
                    (int)di); /* dA += dtᵀ·x */
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)di, r, 1.0f, dt, r, A, (int)di, 1.0f, dx,
                        (int)lddx); /* dx += dt·A */
    }
}

static void model_zero_grad(model *md) {
    if (md->m->mora) TRY(mora_adapter_zero_grad(md->ad));
    else memset(md->G, 0, sizeof(float) * (size_t)md->count);
}

/* torch.optim.AdamW's rule for one flat tensor, in torch's order of operations (as libmora's
 * mora_adapter_step; check_adamw compares the two) */
static void adamw_host(float *p, const float *g, float *m, float *v, int64_t count, int64_t t, const mora_adamw *hp) {
    const float bc1 = 1.0f - powf(hp->beta1, (float)t), bc2 = 1.0f - powf(hp->beta2, (float)t);
    const float step_size = hp->lr / bc1, bc2_sqrt = sqrtf(bc2);
    for (int64_t i = 0; i < count; ++i) {
        p[i] *= 1.0f - hp->lr * hp->weight_decay;
        m[i] += (1.0f - hp->beta1) * (g[i] - m[i]);
        v[i] = v[i] * hp->beta2 + ((1.0f - hp->beta2) * g[i]) * g[i];
        p[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + hp->eps);
    }
}

/* torch's clip_grad_norm_ on one flat gradient: the norm, then every element times
 * min(1, max_norm / (norm + 1e-6)) (as mora_adapter_step with max_grad_norm; check_adamw compares) */
static double grad_norm(const float *g, int64_t count) {
    double sum = 0;
    for (int64_t i = 0; i < count; ++i) sum += (double)g[i] * g[i];
    return sqrt(sum);
}
static void clip_host(float *g, int64_t count, float max_norm) {
    const float norm = (float)grad_norm(g, count);
    float coef = max_norm / (norm + 1e-6f);
    if (coef > 1.0f) coef = 1.0f;
    for (int64_t i = 0; i < count; ++i) g[i] *= coef;
}

/* The adapter's global gradient norm before clipping (the cpu backend's arenas are host memory). */
static double model_grad_norm(model *md) {
    if (!md->m->mora) return grad_norm(md->G, md->count);
    void *g;
    int64_t count;
    TRY(mora_synchronize(md->ctx));
    TRY(mora_adapter_arena(md->ad, MORA_ARENA_GRADS, &g, &count));
    return grad_norm(g, count);
}

/* One AdamW step, the global gradient norm clipped to max_grad_norm first (0: no clipping). */
static void model_step(model *md, float lr, float max_grad_norm) {
    mora_adamw hp = mora_adamw_defaults();
    hp.lr = lr, hp.weight_decay = 0.0f, hp.max_grad_norm = max_grad_norm;
    if (md->m->mora) {
        TRY(mora_adapter_step(md->ad, &hp));
        TRY(mora_synchronize(md->ctx));
    } else {
        if (max_grad_norm > 0) clip_host(md->G, md->count, max_grad_norm);
        adamw_host(md->P, md->G, md->Mo, md->V, md->count, ++md->lora_t, &hp);
    }
}

/* Merge and restart. MoRA: ReMoRA (mora_adapter_remora). LoRA: ReLoRA — W += (alpha/r)·B·A for
 * every layer (W d_out x d_in, B d_out x r, A r x d_in), A drawn again, B = 0, moments and step reset. */
static void model_remora(model *md) {
    if (!md->m->mora) {
        for (int l = 0; l < md->L; ++l)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)md->d_out[l], (int)md->d_in[l], md->r,
                        md->lora_scale, md->P + md->off_B[l], md->r, md->P + md->off_A[l], (int)md->d_in[l], 1.0f, md->W[l],
                        (int)md->d_in[l]);
        lora_draw_A(md);
        memset(md->Mo, 0, sizeof(float) * (size_t)md->count);
        memset(md->V, 0, sizeof(float) * (size_t)md->count);
        md->lora_t = 0;
        return;
    }
    void *W[MAX_LAYERS];
    int64_t ld[MAX_LAYERS];
    for (int l = 0; l < md->L; ++l) W[l] = md->W[l], ld[l] = md->d_in[l];
    TRY(mora_adapter_remora(md->ad, W, ld));
    TRY(mora_synchronize(md->ctx));
}

/* the whole learned update of layer l (double, d_out x d_in): (W − W_init) + the adapter's ΔW now */
static void model_delta(model *md, int l, double *dW) {
    const int64_t di = md->d_in[l], dout = md->d_out[l];
    for (int64_t i = 0; i < di * dout; ++i) dW[i] = (double)md->W[l][i] - md->W_init[l][i];
    if (md->m->mora) {
        mora_adapter_layer_info info;
        TRY(mora_adapter_layer(md->ad, l, &info));
        void *p;
        int64_t count;
        TRY(mora_adapter_arena(md->ad, MORA_ARENA_PARAMS, &p, &count));
        const int64_t rh = info.shape.rhat;
        double *M = NEW(double, rh * rh), *D = NEW(double, di * dout);
        for (int64_t i = 0; i < rh * rh; ++i) M[i] = ((const float *)p)[info.offset + i];
        TRY(mora_ref_delta_weight(&info.shape, M, D));
        for (int64_t i = 0; i < di * dout; ++i) dW[i] += D[i];
        free(M), free(D);
    } else {
        const float *A = md->P + md->off_A[l], *B = md->P + md->off_B[l];
        for (int64_t j = 0; j < dout; ++j)
            for (int k = 0; k < md->r; ++k) {
                const double b = (double)md->lora_scale * B[j * md->r + k];
                for (int64_t i = 0; i < di; ++i) dW[j * di + i] += b * A[k * di + i];
            }
    }
}

/* singular values (descending) into sv (min(rows, cols)); returns 0 without LAPACKE */
static int singular_values(const double *A, int64_t rows, int64_t cols, double *sv) {
#ifdef MORA_HAVE_LAPACKE
    double *a = NEW(double, rows * cols);
    memcpy(a, A, sizeof(double) * (size_t)(rows * cols));
    const lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', (lapack_int)rows, (lapack_int)cols, a,
                                           (lapack_int)cols, sv, NULL, (lapack_int)rows, NULL, (lapack_int)cols);
    free(a);
    if (info != 0) {
        fprintf(stderr, "memorize: LAPACKE_dgesdd failed (info %d)\n", (int)info);
        return 0;
    }
    return 1;
#else
    (void)A, (void)rows, (void)cols, (void)sv;
    return 0;
#endif
}
static int significant(const double *sv, int64_t k) {
    int c = 0;
    for (int64_t i = 0; i < k; ++i) c += sv[i] > 0.01 * sv[0];
    return c;
}

/* ---- configuration and results ---- */
typedef struct config {
    int quick;
    const char *out;
    int64_t n, width, depth, steps, remora_every;
    int ranks[MAX_LIST], nranks;
    float lrs[MAX_LIST];
    int nlrs;
    const method *methods[METHOD_COUNT];
    int nmethods;
    int64_t lin_d, lin_n, lin_steps;
    uint64_t seeds[MAX_LIST];
    int nseeds;
    float clip;       /* global gradient-norm clipping for every method; 0: none */
    float head_scale; /* the frozen head's initial scale (1: a random layer like the others) */
    int extend_edges; /* learning-rate steps added at most beyond a sweep edge that is best */
    int log_every, lin_log_every;
    int task_on[2]; /* uuid, linear */
    int have_target; /* sv_linear_target.csv written */
} config;

typedef struct result {
    const char *task;
    const method *m;
    int r;
    float lr;
    uint64_t seed;
    int64_t params;
    char rhats[64];
    double first_loss, final_loss, final_metric, best_metric;
    double final_dead, max_dead; /* dead ReLUs (uuid): hidden units zero for every key, share of all */
    double first_grad_norm, final_grad_norm; /* before clipping */
    int sig[MAX_LAYERS];
    int L;
    int have_sv;
    double seconds;
} result;

static FILE *open_out(const config *c, const char *name, const char *mode) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", c->out, name);
    FILE *f = fopen(path, mode);
    if (!f) {
        fprintf(stderr, "memorize: cannot write %s\n", path);
        exit(1);
    }
    return f;
}

static float schedule(const config *c, int64_t step, int64_t steps, int64_t since_reset, int remora) {
    const int64_t warm = steps / 20 > 0 ? steps / 20 : 1;
    double f = step < warm ? (double)(step + 1) / (double)warm
                           : 0.5 * (1.0 + cos(3.141592653589793 * (double)(step - warm) / (double)(steps - warm)));
    if (remora) { /* the reference's re-warm-up after every merge (it uses 50 steps; here K/5) */
        int64_t rewarm = c->remora_every / 5 > 0 ? c->remora_every / 5 : 1;
        if (since_reset < rewarm) f *= (double)(since_reset + 1) / (double)rewarm;
    }
    return (float)f;
}

static void fill_rhats(result *res, model *md) {
    res->rhats[0] = 0;
    if (!md->m->mora) {
        snprintf(res->rhats, sizeof res->rhats, "-");
        return;
    }
    size_t used = 0;
    for (int l = 0; l < md->L && used + 8 < sizeof res->rhats; ++l) {
        mora_adapter_layer_info info;
        TRY(mora_adapter_layer(md->ad, l, &info));
        used += (size_t)snprintf(res->rhats + used, sizeof res->rhats - used, "%s%lld", l ? "/" : "",
                                 (long long)info.shape.rhat);
    }
}

static void spectra(const config *c, model *md, result *res, FILE *fs) {
    res->have_sv = 0;
    res->L = md->L;
    for (int l = 0; l < md->L; ++l) {
        const int64_t di = md->d_in[l], dout = md->d_out[l], k = di < dout ? di : dout;
        double *dW = NEW(double, di * dout), *sv = NEW(double, k);
        model_delta(md, l, dW);
        if (singular_values(dW, dout, di, sv)) {
            res->have_sv = 1;
            res->sig[l] = significant(sv, k);
            for (int64_t i = 0; i < k; ++i)
                fprintf(fs, "%s,%s,%d,%g,%d,%lld,%.9g\n", res->task, md->m->name, md->r, res->lr, l, (long long)i, sv[i]);
        }
        free(dW), free(sv);
    }
    (void)c;
}

/* ---- the main task ---- */
typedef struct uuid_task {
    int64_t n, width, depth, L;
    float *X;          /* n x 512 one-hot keys */
    int *val;          /* n x 32 characters */
    float *W0[MAX_LAYERS];
    int64_t d_in[MAX_LAYERS], d_out[MAX_LAYERS];
} uuid_task;

static void uuid_make(uuid_task *t, const config *c, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->n = c->n, t->width = c->width, t->depth = c->depth, t->L = c->depth + 2;
    uint64_t s = seed * 7919u + 1;
    t->X = NEW(float, t->n * ONEHOT), t->val = NEW(int, t->n * KEY_CHARS);
    for (int64_t i = 0; i < t->n; ++i)
        for (int j = 0; j < KEY_CHARS; ++j) {
            t->X[i * ONEHOT + j * HEX + (int)(rng_next(&s) % HEX)] = 1.0f;
            t->val[i * KEY_CHARS + j] = (int)(rng_next(&s) % HEX);
        }
    for (int64_t l = 0; l < t->L; ++l) {
        t->d_in[l] = l == 0 ? ONEHOT : t->width;
        t->d_out[l] = l == t->L - 1 ? ONEHOT : t->width;
        /* the first layer sees 32 ones: std 1/sqrt(32) gives unit pre-activations; the others 1/sqrt(fan-in);
         * the head times head_scale (small: logits near 0, the starting loss near ln 16) */
        const double std = (l == 0 ? 1.0 / sqrt((double)KEY_CHARS) : 1.0 / sqrt((double)t->d_in[l])) *
                           (l == t->L - 1 ? c->head_scale : 1.0);
        t->W0[l] = NEW(float, t->d_in[l] * t->d_out[l]);
        for (int64_t i = 0; i < t->d_in[l] * t->d_out[l]; ++i) t->W0[l][i] = (float)(std * rng_normal(&s));
    }
}

static void uuid_free(uuid_task *t) {
    free(t->X), free(t->val);
    for (int64_t l = 0; l < t->L; ++l) free(t->W0[l]);
}

/* one full-batch step: loss and accuracy of the forward before the update */
/* the share of the hidden units (all hidden layers) whose pre-activation is <= 0 for every key */
static double dead_relus(float *const *z, int64_t hidden_layers, int64_t n, int64_t H) {
    int64_t dead = 0;
    for (int64_t l = 0; l < hidden_layers; ++l)
        for (int64_t j = 0; j < H; ++j) {
            int64_t i = 0;
            while (i < n && z[l][i * H + j] <= 0) ++i;
            dead += i == n;
        }
    return (double)dead / (double)(hidden_layers * H);
}

static void uuid_run(const config *c, mora_context *ctx, const uuid_task *t, uint64_t seed, const method *m, int r,
                     float lr, FILE *fc, FILE *fcurve, FILE *fs, result *res) {
    const int64_t n = t->n, H = t->width, L = t->L;
    model md;
    model_init(&md, ctx, (int)L, t->d_in, t->d_out, t->W0, m, r, n, seed * 31u + (uint64_t)r);
    memset(res, 0, sizeof *res);
    res->task = "uuid", res->m = m, res->r = r, res->lr = lr, res->seed = seed, res->params = model_params(&md);
    fill_rhats(res, &md);
    /* acts[l] = layer l's input; z[l] = its output before the nonlinearity */
    float *acts[MAX_LAYERS], *z[MAX_LAYERS];
    for (int64_t l = 0; l < L; ++l) {
        acts[l] = l == 0 ? t->X : NEW(float, n * H);
        z[l] = NEW(float, n * t->d_out[l]);
    }
    float *dlog = NEW(float, n * ONEHOT), *da = NEW(float, n * H), *dz = NEW(float, n * H), *da2 = NEW(float, n * H);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t since_reset = 0;
    for (int64_t step = 0; step <= c->steps; ++step) {
        /* forward */
        layer_forward(&md, 0, acts[0], ONEHOT, z[0], H, n);
        for (int64_t i = 0; i < n * H; ++i) acts[1][i] = z[0][i] > 0 ? z[0][i] : 0;
        for (int64_t l = 1; l < L - 1; ++l) {
            layer_forward(&md, (int)l, acts[l], H, z[l], H, n);
            for (int64_t i = 0; i < n * H; ++i) acts[l + 1][i] = acts[l][i] + (z[l][i] > 0 ? z[l][i] : 0);
        }
        float *logits = z[L - 1];
        layer_forward(&md, (int)L - 1, acts[L - 1], H, logits, ONEHOT, n);
        /* cross-entropy over n·32 characters, its gradient, accuracy */
        double loss = 0;
        int64_t correct = 0;
        const float inv = 1.0f / (float)(n * KEY_CHARS);
        for (int64_t i = 0; i < n * KEY_CHARS; ++i) {
            const float *lg = logits + i * HEX;
            float *g = dlog + i * HEX;
            int arg = 0;
            float mx = lg[0];
            for (int k = 1; k < HEX; ++k)
                if (lg[k] > mx) mx = lg[k], arg = k;
            double sum = 0;
            for (int k = 0; k < HEX; ++k) sum += exp((double)(lg[k] - mx));
            const int y = t->val[i];
            loss += log(sum) - (double)(lg[y] - mx);
            correct += arg == y;
            for (int k = 0; k < HEX; ++k) g[k] = (float)(exp((double)(lg[k] - mx)) / sum) * inv;
            g[y] -= inv;
        }
        loss /= (double)(n * KEY_CHARS);
        const double acc = (double)correct / (double)(n * KEY_CHARS);
        if (step == 0) res->first_loss = loss;
        res->final_loss = loss, res->final_metric = acc;
        if (acc > res->best_metric) res->best_metric = acc;
        const int logged = step % c->log_every == 0 || step == c->steps;
        if (logged || step == c->steps) {
            res->final_dead = dead_relus(z, L - 1, n, H);
            if (res->final_dead > res->max_dead) res->max_dead = res->final_dead;
        }
        if (step == c->steps) {
            fprintf(fc, "uuid,%s,%d,%g,%llu,%lld,%.6f,%.6f,%.4f,\n", m->name, r, lr, (unsigned long long)seed,
                    (long long)step, loss, acc, res->final_dead);
            if (fcurve) fprintf(fcurve, "%lld %.6f %.6f %.4f\n", (long long)step, loss, acc, res->final_dead);
            break;
        }
        /* backward */
        model_zero_grad(&md);
        layer_backward(&md, (int)L - 1, acts[L - 1], H, dlog, ONEHOT, da, H, n);
        for (int64_t l = L - 2; l >= 1; --l) { /* a_{l+1} = a_l + relu(z_l): da_l = da + (da ⊙ relu'(z_l))·W + … */
            for (int64_t i = 0; i < n * H; ++i) dz[i] = z[l][i] > 0 ? da[i] : 0;
            layer_backward(&md, (int)l, acts[l], H, dz, H, da2, H, n);
            for (int64_t i = 0; i < n * H; ++i) da[i] += da2[i];
        }
        for (int64_t i = 0; i < n * H; ++i) dz[i] = z[0][i] > 0 ? da[i] : 0;
        layer_backward(&md, 0, acts[0], ONEHOT, dz, H, NULL, 0, n);
        const double gnorm = model_grad_norm(&md);
        if (step == 0) res->first_grad_norm = gnorm;
        res->final_grad_norm = gnorm;
        if (logged) {
            fprintf(fc, "uuid,%s,%d,%g,%llu,%lld,%.6f,%.6f,%.4f,%.6g\n", m->name, r, lr, (unsigned long long)seed,
                    (long long)step, loss, acc, res->final_dead, gnorm);
            if (fcurve) fprintf(fcurve, "%lld %.6f %.6f %.4f\n", (long long)step, loss, acc, res->final_dead);
        }
        model_step(&md, lr * schedule(c, step, c->steps, since_reset, m->remora), c->clip);
        ++since_reset;
        if (m->remora && (step + 1) % c->remora_every == 0 && step + 1 < c->steps) {
            model_remora(&md);
            since_reset = 0;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (fs) spectra(c, &md, res, fs);
    for (int64_t l = 0; l < L; ++l) {
        if (l) free(acts[l]);
        free(z[l]);
    }
    free(dlog), free(da), free(dz), free(da2);
    model_free(&md);
}

/* ---- the counterpoint: a linear associative memory ---- */
typedef struct lin_task {
    int64_t d, n;
    float *K, *Vv, *W0; /* K: n x d keys (rows), Vv: n x d values, W0: d x d */
} lin_task;

static void unit_rows(float *a, int64_t rows, int64_t cols, uint64_t *s) {
    for (int64_t i = 0; i < rows; ++i) {
        double nn = 0;
        for (int64_t j = 0; j < cols; ++j) a[i * cols + j] = rng_normal(s), nn += (double)a[i * cols + j] * a[i * cols + j];
        for (int64_t j = 0; j < cols; ++j) a[i * cols + j] = (float)(a[i * cols + j] / sqrt(nn));
    }
}

static void lin_make(lin_task *t, const config *c, uint64_t seed) {
    t->d = c->lin_d, t->n = c->lin_n;
    uint64_t s = seed * 104729u + 5;
    t->K = NEW(float, t->n * t->d), t->Vv = NEW(float, t->n * t->d), t->W0 = NEW(float, t->d * t->d);
    unit_rows(t->K, t->n, t->d, &s);
    unit_rows(t->Vv, t->n, t->d, &s);
    for (int64_t i = 0; i < t->d * t->d; ++i) t->W0[i] = (float)(rng_normal(&s) / sqrt((double)t->d));
}

static void lin_run(const config *c, mora_context *ctx, const lin_task *t, uint64_t seed, const method *m, int r,
                    float lr, FILE *fc, FILE *fcurve, FILE *fs, result *res) {
    const int64_t n = t->n, d = t->d;
    model md;
    const int64_t dims[1] = {d};
    model_init(&md, ctx, 1, dims, dims, (float *const[]){t->W0}, m, r, n, seed * 17u + (uint64_t)r);
    memset(res, 0, sizeof *res);
    res->task = "linear", res->m = m, res->r = r, res->lr = lr, res->seed = seed, res->params = model_params(&md);
    fill_rhats(res, &md);
    float *Y = NEW(float, n * d), *S = NEW(float, n * n);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t since_reset = 0;
    for (int64_t step = 0; step <= c->lin_steps; ++step) {
        layer_forward(&md, 0, t->K, d, Y, d, n);
        /* recall: is its own value the nearest (cosine; the values are unit) to each output? */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)d, 1.0f, Y, (int)d, t->Vv, (int)d, 0.0f,
                    S, (int)n);
        int64_t hits = 0;
        for (int64_t i = 0; i < n; ++i) {
            int64_t arg = 0;
            for (int64_t j = 1; j < n; ++j)
                if (S[i * n + j] > S[i * n + arg]) arg = j;
            hits += arg == i;
        }
        double loss = 0;
        for (int64_t i = 0; i < n * d; ++i) {
            Y[i] -= t->Vv[i];
            loss += 0.5 * (double)Y[i] * Y[i];
            Y[i] /= (float)n;
        }
        loss /= (double)n;
        const double recall = (double)hits / (double)n;
        if (step == 0) res->first_loss = loss;
        res->final_loss = loss, res->final_metric = recall;
        if (recall > res->best_metric) res->best_metric = recall;
        const int logged = step % c->lin_log_every == 0 || step == c->lin_steps;
        if (step == c->lin_steps) {
            fprintf(fc, "linear,%s,%d,%g,%llu,%lld,%.6f,%.6f,,\n", m->name, r, lr, (unsigned long long)seed, (long long)step,
                    loss, recall);
            if (fcurve) fprintf(fcurve, "%lld %.6f %.6f\n", (long long)step, loss, recall);
            break;
        }
        model_zero_grad(&md);
        layer_backward(&md, 0, t->K, d, Y, d, NULL, 0, n);
        const double gnorm = model_grad_norm(&md);
        if (step == 0) res->first_grad_norm = gnorm;
        res->final_grad_norm = gnorm;
        if (logged) {
            fprintf(fc, "linear,%s,%d,%g,%llu,%lld,%.6f,%.6f,,%.6g\n", m->name, r, lr, (unsigned long long)seed,
                    (long long)step, loss, recall, gnorm);
            if (fcurve) fprintf(fcurve, "%lld %.6f %.6f\n", (long long)step, loss, recall);
        }
        model_step(&md, lr * schedule(c, step, c->lin_steps, since_reset, m->remora), c->clip);
        ++since_reset;
        if (m->remora && (step + 1) % c->remora_every == 0 && step + 1 < c->lin_steps) {
            model_remora(&md);
            since_reset = 0;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (fs) spectra(c, &md, res, fs);
    free(Y), free(S);
    model_free(&md);
}

/* The least-squares update the linear memory needs: ΔW* = (V − W0·K)ᵀ-solution of min ‖ΔW·K − T‖ with
 * the minimum norm (LAPACKE_dgelsd), and the fraction of its energy in its top k singular values —
 * what a rank-k update (LoRA) can reach at best. Writes the spectrum as method "target". */
static int lin_target(const lin_task *t, FILE *fs, double *sv_out) {
#ifdef MORA_HAVE_LAPACKE
    const int64_t n = t->n, d = t->d, rows = n > d ? n : d;
    double *A = NEW(double, n * d), *B = NEW(double, rows * d), *s = NEW(double, n < d ? n : d);
    /* rows i: k_iᵀ·ΔWᵀ = (v_i − W0 k_i)ᵀ */
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j) {
            A[i * d + j] = t->K[i * d + j];
            double w = 0;
            for (int64_t p = 0; p < d; ++p) w += (double)t->W0[j * d + p] * t->K[i * d + p];
            B[i * d + j] = t->Vv[i * d + j] - w;
        }
    lapack_int rank;
    lapack_int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)d, (lapack_int)d, A, (lapack_int)d, B,
                                     (lapack_int)d, s, -1.0, &rank);
    if (info != 0) {
        free(A), free(B), free(s);
        return 0;
    }
    double *dW = NEW(double, d * d); /* B's first d rows = ΔW*ᵀ */
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) dW[i * d + j] = B[j * d + i];
    const int ok = singular_values(dW, d, d, sv_out);
    if (ok)
        for (int64_t i = 0; i < d; ++i) fprintf(fs, "linear,target,0,0,0,%lld,%.9g\n", (long long)i, sv_out[i]);
    free(A), free(B), free(s), free(dW);
    return ok;
#else
    (void)t, (void)fs, (void)sv_out;
    return 0;
#endif
}

/* The example's AdamW against libmora's mora_adapter_step on the same parameters and gradients. */
static int check_adamw(mora_context *ctx) {
    const mora_adapter_layer_desc desc = {"check", 16, 16, 0, 8, MORA_OP_SHARE, MORA_F32, MORA_F32};
    mora_adapter *ad;
    TRY(mora_adapter_create(ctx, &desc, 1, 4, NULL, &ad));
    void *pp, *gp;
    int64_t count, gcount;
    TRY(mora_adapter_arena(ad, MORA_ARENA_PARAMS, &pp, &count));
    TRY(mora_adapter_arena(ad, MORA_ARENA_GRADS, &gp, &gcount));
    float *p = pp, *g = gp, *q = NEW(float, count), *h = NEW(float, count), *m = NEW(float, count), *v = NEW(float, count);
    uint64_t s = 99;
    for (int64_t i = 0; i < 64; ++i) p[i] = q[i] = rng_normal(&s);
    mora_adamw hp = mora_adamw_defaults();
    hp.lr = 0.01f; /* with torch's weight decay 1e-2, so the decay is checked too */
    double worst = 0;
    for (int step = 1; step <= 6; ++step) {
        for (int64_t i = 0; i < 64; ++i) g[i] = h[i] = rng_normal(&s) * (step == 3 ? 1e-3f : 1.0f);
        /* steps 4-6 clipped (norm about 8 > 2), step 3's tiny gradient is not: both sides of the rule */
        hp.max_grad_norm = step >= 3 ? 2.0f : 0.0f;
        TRY(mora_adapter_step(ad, &hp));
        TRY(mora_synchronize(ctx));
        if (hp.max_grad_norm > 0) clip_host(h, count, hp.max_grad_norm);
        adamw_host(q, h, m, v, count, step, &hp);
        for (int64_t i = 0; i < 64; ++i) {
            const double e = fabs((double)p[i] - q[i]) / (fabs((double)q[i]) + 1e-6);
            if (e > worst) worst = e;
        }
    }
    mora_adapter_destroy(ad);
    free(q), free(h), free(m), free(v);
    printf("memorize: the example's AdamW and clipping against mora_adapter_step over 6 steps: worst relative "
           "difference %.2e\n", worst);
    return worst < 1e-5;
}

/* ReLoRA's merge keeps the function: a layer's output with B·A trained equals, after the merge (W +=
 * s·B·A, A drawn again, B = 0), the merged layer's output. Random A and B on a 40 -> 24 layer, r = 3. */
static int check_relora_merge(mora_context *ctx) {
    static const method relora = {"relora", 0, MORA_OP_SHARE, 1};
    const int64_t di = 40, dout = 24, n = 7;
    uint64_t s = 5;
    float *W = NEW(float, di * dout), *x = NEW(float, n * di), *y0 = NEW(float, n * dout), *y1 = NEW(float, n * dout);
    for (int64_t i = 0; i < di * dout; ++i) W[i] = rng_normal(&s);
    for (int64_t i = 0; i < n * di; ++i) x[i] = rng_normal(&s);
    model md;
    model_init(&md, ctx, 1, &di, &dout, (float *const[]){W}, &relora, 3, n, 11);
    for (int64_t i = 0; i < md.count; ++i) md.P[i] = rng_normal(&s);
    md.Mo[0] = md.V[0] = 1.0f, md.lora_t = 4;
    layer_forward(&md, 0, x, di, y0, dout, n);
    model_remora(&md);
    layer_forward(&md, 0, x, di, y1, dout, n);
    double worst = 0, largest = 0; /* the difference relative to the output's largest element */
    for (int64_t i = 0; i < n * dout; ++i) largest = fmax(largest, fabs((double)y0[i]));
    for (int64_t i = 0; i < n * dout; ++i) worst = fmax(worst, fabs((double)y1[i] - y0[i]) / largest);
    int reset = md.lora_t == 0 && md.Mo[0] == 0 && md.V[0] == 0;
    for (int64_t i = 0; i < dout * 3; ++i) reset &= md.P[md.off_B[0] + i] == 0;
    model_free(&md);
    free(W), free(x), free(y0), free(y1);
    printf("memorize: ReLoRA's merge keeps the layer's output: worst relative difference %.2e; B, moments and step "
           "reset: %s\n", worst, reset ? "yes" : "NO");
    return worst < 1e-5 && reset;
}

/* ---- reporting ---- */
/* One cell of the experiment: a (task, method, r, lr) over every seed run. */
typedef struct cell {
    int runs;
    double mean, sd, lo, hi;       /* the final metric: mean, sample sd (0 for one run), range */
    double loss_mean, loss_sd;     /* the final loss */
    double dead_mean;              /* the final dead-ReLU share */
    const result *first;           /* the first seed's run (its spectra and curve are the ones shown) */
} cell;

static int same_cell(const result *x, const char *task, const method *m, int r) {
    return !strcmp(x->task, task) && x->m == m && x->r == r;
}

static cell cell_of(const result *rs, int count, const char *task, const method *m, int r, float lr) {
    cell c = {0};
    double sum = 0, sum2 = 0, lsum = 0, lsum2 = 0, dsum = 0;
    for (int i = 0; i < count; ++i) {
        const result *x = &rs[i];
        if (!same_cell(x, task, m, r) || x->lr != lr) continue;
        if (!c.first) c.first = x, c.lo = c.hi = x->final_metric;
        ++c.runs;
        sum += x->final_metric, sum2 += x->final_metric * x->final_metric;
        lsum += x->final_loss, lsum2 += x->final_loss * x->final_loss;
        dsum += x->final_dead;
        c.lo = fmin(c.lo, x->final_metric), c.hi = fmax(c.hi, x->final_metric);
    }
    if (!c.runs) return c;
    const double k = c.runs;
    c.mean = sum / k, c.loss_mean = lsum / k, c.dead_mean = dsum / k;
    if (c.runs > 1) {
        c.sd = sqrt(fmax(0.0, (sum2 - k * c.mean * c.mean) / (k - 1)));
        c.loss_sd = sqrt(fmax(0.0, (lsum2 - k * c.loss_mean * c.loss_mean) / (k - 1)));
    }
    return c;
}

/* The learning rates run for (task, method, r), ascending. */
static int lrs_of(const result *rs, int count, const char *task, const method *m, int r, float *out) {
    int k = 0;
    for (int i = 0; i < count; ++i) {
        if (!same_cell(&rs[i], task, m, r)) continue;
        int j = 0;
        while (j < k && out[j] != rs[i].lr) ++j;
        if (j < k || k == MAX_LRS) continue;
        out[k++] = rs[i].lr;
        for (j = k - 1; j > 0 && out[j] < out[j - 1]; --j) {
            const float t = out[j];
            out[j] = out[j - 1], out[j - 1] = t;
        }
    }
    return k;
}

/* The best learning rate's cell for (task, method, r): the highest mean metric, ties to the lower mean
 * loss. *edge: 1 when that lr is the smallest of the sweep, 2 the largest, 0 inside (or one lr only). */
static cell best_cell(const result *rs, int count, const char *task, const method *m, int r, int *edge) {
    float lrs[MAX_LRS];
    const int k = lrs_of(rs, count, task, m, r, lrs);
    cell b = {0};
    int at = -1;
    for (int i = 0; i < k; ++i) {
        const cell c = cell_of(rs, count, task, m, r, lrs[i]);
        if (at < 0 || c.mean > b.mean + 1e-12 || (fabs(c.mean - b.mean) <= 1e-12 && c.loss_mean < b.loss_mean))
            b = c, at = i;
    }
    if (edge) *edge = k < 2 || at < 0 ? 0 : at == 0 ? 1 : at == k - 1 ? 2 : 0;
    return b;
}

/* The first seed's run at the best learning rate (the run whose curve and spectra are plotted). */
static const result *best_of(const result *rs, int count, const char *task, const method *m, int r) {
    return best_cell(rs, count, task, m, r, NULL).first;
}

static void shell_line(const char *cmd, char *buf, size_t size) {
    buf[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(buf, (int)size, p)) buf[0] = 0;
    pclose(p);
    buf[strcspn(buf, "\n")] = 0;
}

static void sig_string(const result *x, char *buf, size_t size) {
    if (!x->have_sv) {
        snprintf(buf, size, "n/a");
        return;
    }
    size_t used = 0;
    buf[0] = 0;
    for (int l = 0; l < x->L && used + 8 < size; ++l) used += (size_t)snprintf(buf + used, size - used, "%s%d", l ? "/" : "", x->sig[l]);
}

static int write_plots(const config *c, const char *tasks[2], int have_sv, const result *rs, int count) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        printf("memorize: gnuplot is not installed (Debian: gnuplot-nox): no plots\n");
        return 0;
    }
    FILE *g = open_out(c, "plots.gp", "w");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset datafile separator whitespace\nset key bottom right\nset grid\n");
    for (int tk = 0; tk < 2; ++tk)
        for (int ri = 0; ri < c->nranks && c->task_on[tk]; ++ri) {
            const int r = c->ranks[ri];
            fprintf(g, "set output '%s_r%d.png'\nset xlabel 'step'\nset ylabel '%s'\nset yrange [0:1.02]\nset logscale y2\nset y2tics\nset y2label 'loss (dashed)'\n",
                    tasks[tk], r, tk == 0 ? "character accuracy" : "recall");
            fprintf(g, "set title '%s, r = %d (best learning rate of each method)'\nplot ",
                    tk == 0 ? "UUID memorisation" : "linear associative memory", r);
            for (int mi = 0; mi < c->nmethods; ++mi) {
                const result *b = best_of(rs, count, tasks[tk], c->methods[mi], r);
                fprintf(g, "%s'curve_%s_r%d_%s_lr%g_s%llu.dat' using 1:3 with lines lw 2 lc %d title '%s (lr %g)', '' using 1:2 axes x1y2 with lines dt 2 lc %d notitle",
                        mi ? ", " : "", tasks[tk], r, c->methods[mi]->name, b->lr, (unsigned long long)b->seed, mi + 1,
                        c->methods[mi]->name, b->lr, mi + 1);
            }
            fprintf(g, "\nunset logscale y2\nunset y2tics\nunset y2label\nset yrange [*:*]\n");
        }
    if (have_sv) { /* spectra of the best runs: a chosen layer (the uuid net's first hidden block, the linear layer) */
        fprintf(g, "set datafile separator ','\nset logscale y\nset yrange [1e-4:2]\nset xlabel 'index'\nset ylabel 'singular value / largest'\nset key bottom left\n");
        for (int tk = 0; tk < 2; ++tk)
            for (int ri = 0; ri < c->nranks && c->task_on[tk]; ++ri) {
                const int r = c->ranks[ri], layer = tk == 0 ? 1 : 0;
                fprintf(g, "set output 'spectra_%s_r%d.png'\nset title 'singular values of the learned update (%s, layer %d, r = %d)'\nplot ",
                        tasks[tk], r, tasks[tk], layer, r);
                for (int mi = 0; mi < c->nmethods; ++mi)
                    fprintf(g, "%s'best_sv_%s_r%d_%s.csv' using 1:2 with lines lw 2 lc %d title '%s'", mi ? ", " : "", tasks[tk], r,
                            c->methods[mi]->name, mi + 1, c->methods[mi]->name);
                if (tk == 1 && c->have_target)
                    fprintf(g, ", 'sv_linear_target.csv' using 1:2 with lines lw 2 lc rgb 'gray' title 'least-squares ΔW*'");
                fprintf(g, ", 0.01 with lines dt 2 lw 2 lc rgb 'black' title '1 %% of the largest'\n");
            }
    }
    fclose(g);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot plots.gp", c->out);
    if (system(cmd) != 0) {
        fprintf(stderr, "memorize: gnuplot failed (the data files are there; see %s/plots.gp)\n", c->out);
        return 0;
    }
    return 1;
}

/* best_sv_<task>_r<r>_<method>.csv: index, σ/σ_max of the chosen layer of the best run, from spectra.csv */
static void write_best_spectra(const config *c, const result *rs, int count) {
    char path[1024];
    snprintf(path, sizeof path, "%s/spectra.csv", c->out);
    for (int tk = 0; tk < 2; ++tk) {
        const char *task = tk == 0 ? "uuid" : "linear";
        const int layer = tk == 0 ? 1 : 0;
        for (int ri = 0; ri < c->nranks; ++ri)
            for (int mi = 0; mi < c->nmethods; ++mi) {
                const result *b = best_of(rs, count, task, c->methods[mi], c->ranks[ri]);
                if (!b) continue;
                FILE *in = fopen(path, "r");
                if (!in) return;
                char name[256], line[512], want[160];
                snprintf(name, sizeof name, "best_sv_%s_r%d_%s.csv", task, c->ranks[ri], c->methods[mi]->name);
                FILE *o = open_out(c, name, "w");
                snprintf(want, sizeof want, "%s,%s,%d,%g,%d,", task, b->m->name, b->r, b->lr, layer);
                double top = -1;
                while (fgets(line, sizeof line, in)) {
                    if (strncmp(line, want, strlen(want))) continue;
                    long long idx;
                    double sv;
                    if (sscanf(line + strlen(want), "%lld,%lf", &idx, &sv) != 2) continue;
                    if (top < 0) top = sv > 0 ? sv : 1;
                    fprintf(o, "%lld,%.9g\n", idx, sv / top);
                }
                fclose(o), fclose(in);
            }
    }
}

/* The usage text: on stdout with status 0 for --help, on stderr with status 2 for a usage error. */
static void usage_exit(int status) {
    fprintf(status ? stderr : stdout,
            "usage: memorize [--quick] [--out DIR] [--n N] [--width H] [--depth D] [--steps S] [--ranks 8,32]\n"
            "                [--lrs 3e-3,1e-2,3e-2] [--methods %s]\n"
            "                [--remora-every K] [--lin-d D] [--lin-n N] [--lin-steps S] [--tasks uuid,linear]\n"
            "                [--seeds 1,2,3] [--seed S] [--clip G] [--head-scale X] [--extend-edges E]\n\n"
            "  --seeds LIST       every cell is run for each seed, reported as mean ± sd (default 1,2,3)\n"
            "  --seed S           one seed (the same as --seeds S)\n"
            "  --clip G           clip the global gradient norm to G for every method, 0: off (default 1)\n"
            "  --head-scale X     the frozen head's initial scale; small: the starting loss is near ln 16\n"
            "                     (default 0.1; 1: a random layer like the others)\n"
            "  --extend-edges E   a best learning rate at an edge of the sweep adds one more step beyond it,\n"
            "                     at most E times per method and rank (default 3; 0: off)\n"
            "  --quick            the check run by ctest: tiny sizes, 3 seeds, AdamW, clipping and ReLoRA's merge\n"
            "                     checked against libmora and by hand\n",
            default_methods);
    exit(status);
}

static void usage(void) { usage_exit(2); }

static int parse_ints(const char *s, int *out) {
    int k = 0;
    for (const char *p = s; *p && k < MAX_LIST;) {
        out[k++] = (int)strtol(p, (char **)&p, 10);
        if (*p == ',') ++p;
        else if (*p) usage();
    }
    return k;
}
static int parse_floats(const char *s, float *out) {
    int k = 0;
    for (const char *p = s; *p && k < MAX_LIST;) {
        out[k++] = strtof(p, (char **)&p);
        if (*p == ',') ++p;
        else if (*p) usage();
    }
    return k;
}
static int parse_seeds(const char *s, uint64_t *out) {
    int k = 0;
    for (const char *p = s; *p && k < MAX_LIST;) {
        const long long v = strtoll(p, (char **)&p, 10);
        if (v < 0) usage();
        out[k++] = (uint64_t)v;
        if (*p == ',') ++p;
        else if (*p) usage();
    }
    return k;
}

/* Every run of the experiment, in the order run (for each lr, each seed: a cell's first run is its first seed's). */
typedef struct run_list {
    result *rs;
    int count, capacity;
} run_list;

typedef struct experiment {
    const config *c;
    mora_context *ctx;
    uuid_task ut[MAX_LIST]; /* one task (data and frozen network) per seed */
    lin_task lt[MAX_LIST];
    FILE *fc_main, *fc_lin, *fs;
    run_list runs;
    int ok;
} experiment;

/* Runs one (task, method, r, lr) cell for every seed. */
static void run_cell(experiment *e, int tk, const method *m, int r, float lr) {
    const config *c = e->c;
    for (int si = 0; si < c->nseeds; ++si) {
        run_list *R = &e->runs;
        if (R->count == R->capacity) {
            R->capacity = R->capacity ? 2 * R->capacity : 64;
            R->rs = realloc(R->rs, sizeof *R->rs * (size_t)R->capacity);
            if (!R->rs) {
                fprintf(stderr, "memorize: out of memory\n");
                exit(1);
            }
        }
        result *x = &R->rs[R->count++];
        const uint64_t seed = c->seeds[si];
        char name[256];
        snprintf(name, sizeof name, "curve_%s_r%d_%s_lr%g_s%llu.dat", tk == 0 ? "uuid" : "linear", r, m->name, lr,
                 (unsigned long long)seed);
        FILE *fcurve = open_out(c, name, "w");
        fprintf(fcurve, "# step loss %s\n", tk == 0 ? "accuracy dead_relu" : "recall");
        FILE *fs = si == 0 ? e->fs : NULL; /* spectra of the first seed's runs only */
        if (tk == 0) uuid_run(c, e->ctx, &e->ut[si], seed, m, r, lr, e->fc_main, fcurve, fs, x);
        else lin_run(c, e->ctx, &e->lt[si], seed, m, r, lr, e->fc_lin, fcurve, fs, x);
        fclose(fcurve);
        char sig[128];
        sig_string(x, sig, sizeof sig);
        printf("  %-6s %-13s r=%-3d lr=%-7g seed %-3llu params %7lld  loss %.4f -> %.4f  %s %.4f", x->task, x->m->name,
               x->r, x->lr, (unsigned long long)seed, (long long)x->params, x->first_loss, x->final_loss,
               tk == 0 ? "acc" : "recall", x->final_metric);
        if (tk == 0) printf("  dead ReLUs %.3f", x->final_dead);
        printf("  sig. SVs %s  (%.1f s)\n", sig, x->seconds);
        fflush(stdout);
        if (!(x->final_loss < 0.9 * x->first_loss) || !isfinite(x->final_loss)) /* a diverging or too small lr */
            fprintf(stderr, "memorize: %s: %s at r=%d, lr=%g, seed %llu: loss %.4f -> %.4f, not 10 %% lower (noted)\n",
                    x->task, x->m->name, x->r, x->lr, (unsigned long long)seed, x->first_loss, x->final_loss);
    }
}

/* The next learning rate beyond x on the 1-3-10 grid (…, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, …): up, the
 * smallest grid value above 1.5·x; down, the largest below x/1.5. */
static float grid_next(float x, int up) {
    const double steps[2] = {1, 3};
    double best = up ? INFINITY : 0;
    for (int e10 = -8; e10 <= 1; ++e10)
        for (int k = 0; k < 2; ++k) {
            const double v = steps[k] * pow(10.0, e10);
            if (up && v > 1.5 * x && v < best) best = v;
            if (!up && v < x / 1.5 && v > best) best = v;
        }
    return (float)best;
}

/* The sweep of one (task, method, r): the given learning rates, then one more step beyond the edge
 * while the best (by the seeds' mean) sits at an edge, at most extend_edges times. */
static void run_sweep(experiment *e, int tk, const method *m, int r) {
    const config *c = e->c;
    const char *task = tk == 0 ? "uuid" : "linear";
    for (int li = 0; li < c->nlrs; ++li) run_cell(e, tk, m, r, c->lrs[li]);
    for (int ext = 0; ext < c->extend_edges; ++ext) {
        int edge;
        (void)best_cell(e->runs.rs, e->runs.count, task, m, r, &edge);
        float lrs[MAX_LRS];
        const int k = lrs_of(e->runs.rs, e->runs.count, task, m, r, lrs);
        if (!edge || k >= MAX_LRS) break;
        const float next = edge == 1 ? grid_next(lrs[0], 0) : grid_next(lrs[k - 1], 1);
        if (!(next >= 1e-6f && next <= 1.0f)) break;
        printf("memorize: %s %s r=%d: the best lr (%g) is the sweep's %s: extending it to lr %g\n", task, m->name, r,
               edge == 1 ? lrs[0] : lrs[k - 1], edge == 1 ? "smallest" : "largest", next);
        run_cell(e, tk, m, r, next);
    }
}

static void fmt_cell(const cell *x, char *buf, size_t size) {
    if (!x->runs) snprintf(buf, size, "—");
    else if (x->runs == 1) snprintf(buf, size, "%.4f", x->mean);
    else snprintf(buf, size, "%.4f ± %.4f", x->mean, x->sd);
}

/* Which method beats which, per rank: A > B only where A's mean − sd is above B's mean + sd, over at
 * least 3 seeds; everything else is "not separated". */
static void write_orderings(FILE *md, const config *c, const result *rs, int count, const char *task) {
    fprintf(md, "Orderings (best lr of each; A > B only where A's mean − sd lies above B's mean + sd):\n\n");
    for (int ri = 0; ri < c->nranks; ++ri) {
        const int r = c->ranks[ri];
        cell b[METHOD_COUNT];
        int order[METHOD_COUNT];
        for (int mi = 0; mi < c->nmethods; ++mi) b[mi] = best_cell(rs, count, task, c->methods[mi], r, NULL), order[mi] = mi;
        for (int i = 1; i < c->nmethods; ++i) /* by mean, descending */
            for (int j = i; j > 0 && b[order[j]].mean > b[order[j - 1]].mean; --j) {
                const int t = order[j];
                order[j] = order[j - 1], order[j - 1] = t;
            }
        if (c->nseeds < 3) {
            fprintf(md, "- r = %d: %d seed(s): no ordering is claimed (at least 3 are needed)\n", r, c->nseeds);
            continue;
        }
        fprintf(md, "- r = %d, separated:", r);
        int any = 0;
        for (int i = 0; i < c->nmethods; ++i)
            for (int j = i + 1; j < c->nmethods; ++j) {
                const cell *x = &b[order[i]], *y = &b[order[j]];
                if (x->mean - x->sd > y->mean + y->sd)
                    fprintf(md, "%s %s > %s", any++ ? "," : "", c->methods[order[i]]->name, c->methods[order[j]]->name);
            }
        fprintf(md, "%s\n- r = %d, not separated:", any ? "" : " none", r);
        any = 0;
        for (int i = 0; i < c->nmethods; ++i)
            for (int j = i + 1; j < c->nmethods; ++j) {
                const cell *x = &b[order[i]], *y = &b[order[j]];
                if (!(x->mean - x->sd > y->mean + y->sd))
                    fprintf(md, "%s %s ≈ %s", any++ ? "," : "", c->methods[order[i]]->name, c->methods[order[j]]->name);
            }
        fprintf(md, "%s\n", any ? "" : " none");
    }
    fprintf(md, "\n");
}

int main(int argc, char **argv) {
    config c = {0};
    const char *ranks = NULL, *lrs = NULL, *methods = NULL, *tasks_opt = "uuid,linear", *seeds = NULL;
    int64_t n = 0, width = 0, depth = -1, steps = 0, every = 0, lin_d = 0, lin_n = 0, lin_steps = 0;
    float clip = -1, head_scale = -1;
    int extend = -1;
    c.out = "memorize-out";
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) c.quick = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) usage_exit(0);
        else if (i + 1 >= argc) usage();
        else if (strcmp(a, "--out") == 0) c.out = argv[++i];
        else if (strcmp(a, "--n") == 0) n = atoll(argv[++i]);
        else if (strcmp(a, "--width") == 0) width = atoll(argv[++i]);
        else if (strcmp(a, "--depth") == 0) depth = atoll(argv[++i]);
        else if (strcmp(a, "--steps") == 0) steps = atoll(argv[++i]);
        else if (strcmp(a, "--ranks") == 0) ranks = argv[++i];
        else if (strcmp(a, "--lrs") == 0) lrs = argv[++i];
        else if (strcmp(a, "--methods") == 0) methods = argv[++i];
        else if (strcmp(a, "--remora-every") == 0) every = atoll(argv[++i]);
        else if (strcmp(a, "--lin-d") == 0) lin_d = atoll(argv[++i]);
        else if (strcmp(a, "--lin-n") == 0) lin_n = atoll(argv[++i]);
        else if (strcmp(a, "--lin-steps") == 0) lin_steps = atoll(argv[++i]);
        else if (strcmp(a, "--tasks") == 0) tasks_opt = argv[++i];
        else if (strcmp(a, "--seeds") == 0 || strcmp(a, "--seed") == 0) seeds = argv[++i];
        else if (strcmp(a, "--clip") == 0) clip = strtof(argv[++i], NULL);
        else if (strcmp(a, "--head-scale") == 0) head_scale = strtof(argv[++i], NULL);
        else if (strcmp(a, "--extend-edges") == 0) extend = atoi(argv[++i]);
        else usage();
    }
    /* defaults: the full experiment, or the quick check */
    c.n = n ? n : c.quick ? 48 : 512;
    c.width = width ? width : c.quick ? 64 : 256;
    c.depth = depth >= 0 ? depth : c.quick ? 1 : 2;
    c.steps = steps ? steps : c.quick ? 60 : 1000;
    c.lin_d = lin_d ? lin_d : c.quick ? 64 : 256;
    c.lin_n = lin_n ? lin_n : c.quick ? 32 : 128;
    c.lin_steps = lin_steps ? lin_steps : c.quick ? 60 : 1500;
    c.remora_every = every ? every : (c.steps / 6 > 0 ? c.steps / 6 : 1);
    c.nranks = parse_ints(ranks ? ranks : c.quick ? "8" : "8,32", c.ranks);
    c.nlrs = parse_floats(lrs ? lrs : c.quick ? "3e-3,1e-2" : "3e-3,1e-2,3e-2", c.lrs);
    c.nseeds = parse_seeds(seeds ? seeds : "1,2,3", c.seeds);
    c.clip = clip >= 0 ? clip : 1.0f;
    c.head_scale = head_scale >= 0 ? head_scale : 0.1f;
    c.extend_edges = extend >= 0 ? extend : c.quick ? 1 : 3;
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", methods ? methods : default_methods);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int found = 0;
            for (int k = 0; k < METHOD_COUNT; ++k)
                if (strcmp(tok, all_methods[k].name) == 0 && c.nmethods < METHOD_COUNT) c.methods[c.nmethods++] = &all_methods[k], found = 1;
            if (!found) usage();
        }
    }
    c.task_on[0] = strstr(tasks_opt, "uuid") != NULL, c.task_on[1] = strstr(tasks_opt, "linear") != NULL;
    if (!c.task_on[0] && !c.task_on[1]) usage();
    if (c.n < 1 || c.width < 2 || c.depth < 0 || c.depth + 2 > MAX_LAYERS || c.steps < 1 || c.lin_d < 2 || c.lin_n < 2 ||
        c.lin_steps < 1 || c.nranks < 1 || c.nlrs < 1 || c.nmethods < 1 || c.nseeds < 1 || !isfinite(c.clip) ||
        !isfinite(c.head_scale))
        usage();
    for (int i = 0; i < c.nranks; ++i)
        if (c.ranks[i] < 1) usage();
    for (int i = 0; i < c.nlrs; ++i)
        if (!(c.lrs[i] > 0 && c.lrs[i] <= 1)) usage();
    c.log_every = c.steps / 100 > 0 ? (int)(c.steps / 100) : 1;
    c.lin_log_every = c.lin_steps / 100 > 0 ? (int)(c.lin_steps / 100) : 1;
    mkdir(c.out, 0777);

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    static experiment e; /* static: the per-seed tasks are large */
    e.c = &c, e.ok = 1;
    TRY(mora_context_create("cpu", 0, &e.ctx));
    if (c.quick && !check_adamw(e.ctx)) {
        fprintf(stderr, "memorize: FAIL: the example's AdamW or clipping disagrees with mora_adapter_step\n");
        e.ok = 0;
    }
    if (c.quick && !check_relora_merge(e.ctx)) {
        fprintf(stderr, "memorize: FAIL: ReLoRA's merge changed the layer's output or did not reset B and AdamW\n");
        e.ok = 0;
    }

    printf("memorize: UUID task N=%lld, width %lld, depth %lld, %lld steps; linear memory d=%lld, N=%lld, %lld steps; "
           "ReMoRA/ReLoRA every %lld steps; %d seed(s); clip %g; head scale %g\n",
           (long long)c.n, (long long)c.width, (long long)c.depth, (long long)c.steps, (long long)c.lin_d,
           (long long)c.lin_n, (long long)c.lin_steps, (long long)c.remora_every, c.nseeds, c.clip, c.head_scale);
    for (int si = 0; si < c.nseeds; ++si) {
        uuid_make(&e.ut[si], &c, c.seeds[si]);
        lin_make(&e.lt[si], &c, c.seeds[si]);
    }

    e.fc_main = open_out(&c, "curves_main.csv", "w"), e.fc_lin = open_out(&c, "curves_linear.csv", "w");
    e.fs = open_out(&c, "spectra.csv", "w");
    fprintf(e.fc_main, "task,method,r,lr,seed,step,loss,accuracy,dead_relu,grad_norm\n");
    fprintf(e.fc_lin, "task,method,r,lr,seed,step,loss,recall,dead_relu,grad_norm\n");
    fprintf(e.fs, "task,method,r,lr,layer,index,sigma\n");
    for (int tk = 0; tk < 2; ++tk)
        for (int ri = 0; ri < c.nranks && c.task_on[tk]; ++ri)
            for (int mi = 0; mi < c.nmethods; ++mi) run_sweep(&e, tk, c.methods[mi], c.ranks[ri]);
    fclose(e.fc_main), fclose(e.fc_lin), fclose(e.fs);
    const result *rs = e.runs.rs;
    const int count = e.runs.count;
    /* every method trains at its best learning rate: each seed's loss falls by 10 % (--quick: a failure) */
    for (int i = 0; i < count; ++i) {
        const cell b = best_cell(rs, count, rs[i].task, rs[i].m, rs[i].r, NULL);
        if (rs[i].lr != b.first->lr || (rs[i].final_loss < 0.9 * rs[i].first_loss && isfinite(rs[i].final_loss))) continue;
        fprintf(stderr, "memorize: %s: %s at r=%d did not train at its best lr %g (seed %llu: loss %.4f -> %.4f)%s\n",
                rs[i].task, rs[i].m->name, rs[i].r, rs[i].lr, (unsigned long long)rs[i].seed, rs[i].first_loss,
                rs[i].final_loss, c.quick ? "" : " (noted)");
        if (c.quick) e.ok = 0;
    }

    double target_sv[4096];
    int have_target = 0;
    if (c.lin_d <= 4096 && c.task_on[1]) { /* the first seed's linear task */
        FILE *fs2 = open_out(&c, "spectra.csv", "a");
        have_target = lin_target(&e.lt[0], fs2, target_sv);
        fclose(fs2);
    }
    write_best_spectra(&c, rs, count);
    if (have_target) {
        FILE *ft = open_out(&c, "sv_linear_target.csv", "w");
        for (int64_t i = 0; i < c.lin_d; ++i) fprintf(ft, "%lld,%.9g\n", (long long)i, target_sv[i] / target_sv[0]);
        fclose(ft);
        c.have_target = 1;
    }
    const char *tasks[2] = {"uuid", "linear"};
    const int have_sv = count > 0 && rs[0].have_sv;
    const int plotted = write_plots(&c, tasks, have_sv, rs, count);
    clock_gettime(CLOCK_MONOTONIC, &end);
    const double wall = (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec);

    /* summary.csv (every run) and report.md (cells over the seeds) */
    FILE *fsum = open_out(&c, "summary.csv", "w");
    fprintf(fsum, "task,method,r,rhat_per_layer,params,lr,seed,first_loss,final_loss,final_metric,best_metric,"
                  "final_dead_relu,max_dead_relu,first_grad_norm,final_grad_norm,significant_sv_per_layer,seconds\n");
    for (int i = 0; i < count; ++i) {
        char sig[128];
        sig_string(&rs[i], sig, sizeof sig);
        fprintf(fsum, "%s,%s,%d,%s,%lld,%g,%llu,%.6f,%.6f,%.6f,%.6f,%.4f,%.4f,%.6g,%.6g,%s,%.2f\n", rs[i].task,
                rs[i].m->name, rs[i].r, rs[i].rhats, (long long)rs[i].params, rs[i].lr, (unsigned long long)rs[i].seed,
                rs[i].first_loss, rs[i].final_loss, rs[i].final_metric, rs[i].best_metric, rs[i].final_dead,
                rs[i].max_dead, rs[i].first_grad_norm, rs[i].final_grad_norm, sig, rs[i].seconds);
    }
    fclose(fsum);

    FILE *md = open_out(&c, "report.md", "w");
    char commit[128], machine[256], date[64];
    shell_line("git rev-parse --short HEAD 2>/dev/null", commit, sizeof commit);
    shell_line("grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'", machine, sizeof machine);
    const time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    struct utsname un;
    uname(&un);
    fprintf(md, "# Memorisation: MoRA vs LoRA vs ReMoRA vs ReLoRA at equal parameter count (generated)\n\n");
    fprintf(md, "- command: `");
    for (int i = 0; i < argc; ++i) fprintf(md, "%s%s", i ? " " : "", argv[i]);
    fprintf(md, "`\n- machine: %s, %ld cores online, %s %s; libmora %s, cpu backend; OPENBLAS_NUM_THREADS=%s\n",
            machine[0] ? machine : "unknown CPU", sysconf(_SC_NPROCESSORS_ONLN), un.sysname, un.release, mora_version(),
            getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "(unset)");
    fprintf(md, "- commit: %s; date: %s; wall time %.0f s\n", commit[0] ? commit : "unknown", date, wall);
    fprintf(md, "- seeds: ");
    for (int i = 0; i < c.nseeds; ++i) fprintf(md, "%s%llu", i ? ", " : "", (unsigned long long)c.seeds[i]);
    fprintf(md, " (each draws the task's data, the frozen network and the adapters' start); every cell is mean ± sample sd over them\n");
    if (c.task_on[0])
        fprintf(md, "- UUID task: N = %lld pairs, one-hot keys 32x16 -> residual ReLU MLP 512 -> %lld (+%lld residual blocks) -> 512 "
                    "logits (the frozen head scaled by %g: starting loss %.4f, ln 16 = 2.7726), every one of its %lld linear "
                    "layers adapted; full batch, %lld steps\n",
                (long long)c.n, (long long)c.width, (long long)c.depth, c.head_scale, e.runs.rs[0].first_loss,
                (long long)e.ut[0].L, (long long)c.steps);
    if (c.task_on[1])
        fprintf(md, "- linear memory: d = %lld, N = %lld unit keys -> unit values, MSE, %lld steps; recall = own value nearest by cosine\n",
                (long long)c.lin_d, (long long)c.lin_n, (long long)c.lin_steps);
    fprintf(md, "- AdamW (torch's rule; weight decay 0), warm-up 5 %% then cosine, the global gradient norm clipped to %g%s "
                "for every method; learning rates swept: ",
            c.clip, c.clip > 0 ? "" : " (off)");
    for (int i = 0; i < c.nlrs; ++i) fprintf(md, "%s%g", i ? ", " : "", c.lrs[i]);
    fprintf(md, ", extended by up to %d steps beyond an edge that is best; ReMoRA and ReLoRA merge every %lld steps and re-warm over %lld\n",
            c.extend_edges, (long long)c.remora_every, (long long)(c.remora_every / 5 > 0 ? c.remora_every / 5 : 1));
    fprintf(md, "- significant singular values (first seed's run): above 1 %% of the largest, per adapted layer (first/…/last)%s\n\n",
            have_sv ? "" : " — not computed: built without LAPACKE");
    int edges_left = 0;
    for (int tk = 0; tk < 2; ++tk) {
        if (!c.task_on[tk]) continue;
        const char *metric = tk == 0 ? "accuracy" : "recall";
        fprintf(md, "## %s\n\n| method | r | r̂ per layer | trainable params | best lr | final %s, mean ± sd | range | loss, mean ± sd |%s significant SVs | sweep |\n|---|---|---|---|---|---|---|---|%s---|---|\n",
                tk == 0 ? "UUID memorisation (character accuracy)" : "Linear associative memory (recall)", metric,
                tk == 0 ? " dead ReLUs |" : "", tk == 0 ? "---|" : "");
        for (int ri = 0; ri < c.nranks; ++ri)
            for (int mi = 0; mi < c.nmethods; ++mi) {
                int edge;
                const cell b = best_cell(rs, count, tasks[tk], c.methods[mi], c.ranks[ri], &edge);
                if (!b.first) continue;
                char sig[128], value[64];
                sig_string(b.first, sig, sizeof sig);
                fmt_cell(&b, value, sizeof value);
                fprintf(md, "| %s | %d | %s | %lld | %g | %s | %.4f–%.4f | %.4f ± %.4f |", b.first->m->name, b.first->r,
                        b.first->rhats, (long long)b.first->params, b.first->lr, value, b.lo, b.hi, b.loss_mean, b.loss_sd);
                if (tk == 0) fprintf(md, " %.3f |", b.dead_mean);
                fprintf(md, " %s | %s |\n", sig, edge ? "**best at the edge**" : "inside");
                if (edge) {
                    ++edges_left;
                    fprintf(stderr, "memorize: %s %s r=%d: the best lr %g is still at the sweep's edge: extend it (--lrs, --extend-edges)\n",
                            tasks[tk], b.first->m->name, b.first->r, b.first->lr);
                }
            }
        fprintf(md, "\n");
        write_orderings(md, &c, rs, count, tasks[tk]);
        float all_lrs[MAX_LRS * METHOD_COUNT];
        int nall = 0;
        for (int i = 0; i < count; ++i) {
            if (strcmp(rs[i].task, tasks[tk])) continue;
            int j = 0;
            while (j < nall && all_lrs[j] != rs[i].lr) ++j;
            if (j == nall && nall < MAX_LRS * METHOD_COUNT) all_lrs[nall++] = rs[i].lr;
        }
        for (int i = 1; i < nall; ++i)
            for (int j = i; j > 0 && all_lrs[j] < all_lrs[j - 1]; --j) {
                const float t = all_lrs[j];
                all_lrs[j] = all_lrs[j - 1], all_lrs[j - 1] = t;
            }
        fprintf(md, "The sweep (final %s at each learning rate, mean ± sd over the seeds; — not run):\n\n| method | r |", metric);
        for (int li = 0; li < nall; ++li) fprintf(md, " lr %g |", all_lrs[li]);
        fprintf(md, "\n|---|---|");
        for (int li = 0; li < nall; ++li) fprintf(md, "---|");
        fprintf(md, "\n");
        for (int ri = 0; ri < c.nranks; ++ri)
            for (int mi = 0; mi < c.nmethods; ++mi) {
                fprintf(md, "| %s | %d |", c.methods[mi]->name, c.ranks[ri]);
                for (int li = 0; li < nall; ++li) {
                    const cell x = cell_of(rs, count, tasks[tk], c.methods[mi], c.ranks[ri], all_lrs[li]);
                    char value[64];
                    fmt_cell(&x, value, sizeof value);
                    fprintf(md, " %s |", value);
                }
                fprintf(md, "\n");
            }
        fprintf(md, "\n");
        if (plotted)
            for (int ri = 0; ri < c.nranks; ++ri)
                fprintf(md, "![%s r=%d](%s_r%d.png)\n![spectra %s r=%d](spectra_%s_r%d.png)\n\n", tasks[tk], c.ranks[ri], tasks[tk],
                        c.ranks[ri], tasks[tk], c.ranks[ri], tasks[tk], c.ranks[ri]);
    }
    fprintf(md, "Sweep edges: %s.\n\n", edges_left ? "some best learning rates are still at an edge of their sweep (marked above): extend them before reading those rows"
                                                     : "every best learning rate lies inside its sweep");
    if (have_target) {
        double total_e = 0, acc_e = 0;
        for (int64_t i = 0; i < c.lin_d; ++i) total_e += target_sv[i] * target_sv[i];
        fprintf(md, "Linear memory (first seed): the least-squares update ΔW* = (V − W0·K)·K⁺ has %d significant singular values "
                    "of %lld; the share of its energy a rank-k update can take (its top k): ",
                significant(target_sv, c.lin_d), (long long)c.lin_d);
        for (int ri = 0; ri < c.nranks; ++ri) {
            acc_e = 0;
            for (int64_t kk = 0; kk < c.ranks[ri] && kk < c.lin_d; ++kk) acc_e += target_sv[kk] * target_sv[kk];
            fprintf(md, "%sk = %d: %.1f %%", ri ? ", " : "", c.ranks[ri], 100 * acc_e / total_e);
        }
        fprintf(md, ".\n\n");
    }
    fprintf(md, "All runs: `summary.csv`; curves: `curves_main.csv`, `curves_linear.csv` (with the dead-ReLU share and the "
                "gradient norm before clipping); singular values: `spectra.csv`.\n");
    fclose(md);

    /* the quick check: the report files exist */
    const char *needed[] = {"curves_main.csv", "curves_linear.csv", "summary.csv", "spectra.csv", "report.md"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; ++i) {
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", c.out, needed[i]);
        if (stat(path, &st) != 0 || st.st_size == 0) {
            fprintf(stderr, "memorize: FAIL: %s was not written\n", path);
            e.ok = 0;
        }
    }
    printf("memorize: %d runs in %.1f s; report: %s/report.md%s\n", count, wall, c.out, e.ok ? "" : " — FAILED");
    for (int si = 0; si < c.nseeds; ++si) {
        uuid_free(&e.ut[si]);
        free(e.lt[si].K), free(e.lt[si].Vv), free(e.lt[si].W0);
    }
    free(e.runs.rs);
    mora_context_destroy(e.ctx);
    return e.ok ? 0 : 1;
}
