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
 * Each method takes the best of a small learning-rate sweep. Schedule for all: linear warm-up over
 * 5 % of the steps, cosine decay to 0; weight decay 0 (memorisation).
 * The singular values of each learned ΔW (MoRA: mora_ref_delta_weight of M, plus what ReMoRA
 * merged; LoRA: B·A) come from LAPACKE; "significant" = above 1 % of the largest.
 *
 *   build/examples/memorize [--quick] [--out DIR] [--n N] [--width H] [--depth D] [--steps S]
 *       [--ranks 8,32] [--lrs 3e-3,1e-2,3e-2] [--methods lora,mora-rope,mora-share,remora-share,remora-rope]
 *       [--remora-every K] [--lin-d D] [--lin-n N] [--lin-steps S] [--tasks uuid,linear] [--seed S]
 *
 * Writes into DIR: curves_main.csv, curves_linear.csv (every run), summary.csv, spectra.csv,
 * curve_*.dat (one per run), best_sv_*.csv (the spectra the plots show), plots (*.png, when gnuplot is installed) and report.md.
 * Exit status: 0; 1 when a check fails (--quick: a method whose loss did not fall by 10 %, a missing report
 * file, the example's AdamW disagreeing with libmora's); 2 on a usage error.
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

enum { KEY_CHARS = 32, HEX = 16, ONEHOT = KEY_CHARS * HEX, MAX_LAYERS = 16, MAX_LIST = 8 };

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
    int remora;
} method;
static const method all_methods[] = {
    {"lora", 0, MORA_OP_SHARE, 0},         {"mora-rope", 1, MORA_OP_ROPE, 0},
    {"mora-share", 1, MORA_OP_SHARE, 0},   {"remora-share", 1, MORA_OP_SHARE, 1},
    {"remora-rope", 1, MORA_OP_ROPE, 1},
};
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
    int64_t lora_t; /* AdamW step */
    /* MoRA */
    mora_context *ctx;
    mora_adapter *ad;
    int64_t max_tokens;
} model;

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
        uint64_t s = seed;
        for (int l = 0; l < L; ++l) { /* PEFT: kaiming_uniform_(a = sqrt 5) = U(-1/sqrt(d_in), 1/sqrt(d_in)) */
            const double bound = 1.0 / sqrt((double)d_in[l]);
            for (int64_t i = 0; i < r * d_in[l]; ++i) md->P[md->off_A[l] + i] = (float)((2 * rng_uniform(&s) - 1) * bound);
        }
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

static void model_step(model *md, float lr) {
    mora_adamw hp = mora_adamw_defaults();
    hp.lr = lr, hp.weight_decay = 0.0f;
    if (md->m->mora) {
        TRY(mora_adapter_step(md->ad, &hp));
        TRY(mora_synchronize(md->ctx));
    } else {
        adamw_host(md->P, md->G, md->Mo, md->V, md->count, ++md->lora_t, &hp);
    }
}

static void model_remora(model *md) {
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
    uint64_t seed;
    int log_every, lin_log_every;
    int task_on[2]; /* uuid, linear */
    int have_target; /* sv_linear_target.csv written */
} config;

typedef struct result {
    const char *task;
    const method *m;
    int r;
    float lr;
    int64_t params;
    char rhats[64];
    double first_loss, final_loss, final_metric, best_metric;
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

static void uuid_make(uuid_task *t, const config *c) {
    memset(t, 0, sizeof *t);
    t->n = c->n, t->width = c->width, t->depth = c->depth, t->L = c->depth + 2;
    uint64_t s = c->seed * 7919u + 1;
    t->X = NEW(float, t->n * ONEHOT), t->val = NEW(int, t->n * KEY_CHARS);
    for (int64_t i = 0; i < t->n; ++i)
        for (int j = 0; j < KEY_CHARS; ++j) {
            t->X[i * ONEHOT + j * HEX + (int)(rng_next(&s) % HEX)] = 1.0f;
            t->val[i * KEY_CHARS + j] = (int)(rng_next(&s) % HEX);
        }
    for (int64_t l = 0; l < t->L; ++l) {
        t->d_in[l] = l == 0 ? ONEHOT : t->width;
        t->d_out[l] = l == t->L - 1 ? ONEHOT : t->width;
        /* the first layer sees 32 ones: std 1/sqrt(32) gives unit pre-activations; the others 1/sqrt(fan-in) */
        const double std = l == 0 ? 1.0 / sqrt((double)KEY_CHARS) : 1.0 / sqrt((double)t->d_in[l]);
        t->W0[l] = NEW(float, t->d_in[l] * t->d_out[l]);
        for (int64_t i = 0; i < t->d_in[l] * t->d_out[l]; ++i) t->W0[l][i] = (float)(std * rng_normal(&s));
    }
}

static void uuid_free(uuid_task *t) {
    free(t->X), free(t->val);
    for (int64_t l = 0; l < t->L; ++l) free(t->W0[l]);
}

/* one full-batch step: loss and accuracy of the forward before the update */
static void uuid_run(const config *c, mora_context *ctx, const uuid_task *t, const method *m, int r, float lr,
                     FILE *fc, FILE *fcurve, FILE *fs, result *res) {
    const int64_t n = t->n, H = t->width, L = t->L;
    model md;
    model_init(&md, ctx, (int)L, t->d_in, t->d_out, t->W0, m, r, n, c->seed * 31u + (uint64_t)r);
    memset(res, 0, sizeof *res);
    res->task = "uuid", res->m = m, res->r = r, res->lr = lr, res->params = model_params(&md);
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
        if (step % c->log_every == 0 || step == c->steps) {
            fprintf(fc, "uuid,%s,%d,%g,%lld,%.6f,%.6f\n", m->name, r, lr, (long long)step, loss, acc);
            if (fcurve) fprintf(fcurve, "%lld %.6f %.6f\n", (long long)step, loss, acc);
        }
        if (step == c->steps) break;
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
        model_step(&md, lr * schedule(c, step, c->steps, since_reset, m->remora));
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

static void lin_make(lin_task *t, const config *c) {
    t->d = c->lin_d, t->n = c->lin_n;
    uint64_t s = c->seed * 104729u + 5;
    t->K = NEW(float, t->n * t->d), t->Vv = NEW(float, t->n * t->d), t->W0 = NEW(float, t->d * t->d);
    unit_rows(t->K, t->n, t->d, &s);
    unit_rows(t->Vv, t->n, t->d, &s);
    for (int64_t i = 0; i < t->d * t->d; ++i) t->W0[i] = (float)(rng_normal(&s) / sqrt((double)t->d));
}

static void lin_run(const config *c, mora_context *ctx, const lin_task *t, const method *m, int r, float lr, FILE *fc,
                    FILE *fcurve, FILE *fs, result *res) {
    const int64_t n = t->n, d = t->d;
    model md;
    const int64_t dims[1] = {d};
    model_init(&md, ctx, 1, dims, dims, (float *const[]){t->W0}, m, r, n, c->seed * 17u + (uint64_t)r);
    memset(res, 0, sizeof *res);
    res->task = "linear", res->m = m, res->r = r, res->lr = lr, res->params = model_params(&md);
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
        if (step % c->lin_log_every == 0 || step == c->lin_steps) {
            fprintf(fc, "linear,%s,%d,%g,%lld,%.6f,%.6f\n", m->name, r, lr, (long long)step, loss, recall);
            if (fcurve) fprintf(fcurve, "%lld %.6f %.6f\n", (long long)step, loss, recall);
        }
        if (step == c->lin_steps) break;
        model_zero_grad(&md);
        layer_backward(&md, 0, t->K, d, Y, d, NULL, 0, n);
        model_step(&md, lr * schedule(c, step, c->lin_steps, since_reset, m->remora));
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
        TRY(mora_adapter_step(ad, &hp));
        TRY(mora_synchronize(ctx));
        adamw_host(q, h, m, v, count, step, &hp);
        for (int64_t i = 0; i < 64; ++i) {
            const double e = fabs((double)p[i] - q[i]) / (fabs((double)q[i]) + 1e-6);
            if (e > worst) worst = e;
        }
    }
    mora_adapter_destroy(ad);
    free(q), free(h), free(m), free(v);
    printf("memorize: the example's AdamW against mora_adapter_step over 6 steps: worst relative difference %.2e\n", worst);
    return worst < 1e-5;
}

/* ---- reporting ---- */
static const result *best_of(const result *rs, int count, const char *task, const method *m, int r) {
    const result *b = NULL;
    for (int i = 0; i < count; ++i) {
        const result *x = &rs[i];
        if (strcmp(x->task, task) || x->m != m || x->r != r) continue;
        if (!b || x->final_metric > b->final_metric + 1e-12 ||
            (fabs(x->final_metric - b->final_metric) <= 1e-12 && x->final_loss < b->final_loss))
            b = x;
    }
    return b;
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

static const result *best_of(const result *rs, int count, const char *task, const method *m, int r);
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
                fprintf(g, "%s'curve_%s_r%d_%s_lr%g.dat' using 1:3 with lines lw 2 lc %d title '%s (lr %g)', '' using 1:2 axes x1y2 with lines dt 2 lc %d notitle",
                        mi ? ", " : "", tasks[tk], r, c->methods[mi]->name, b->lr, mi + 1, c->methods[mi]->name, b->lr, mi + 1);
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
            "                [--lrs 3e-3,1e-2,3e-2] [--methods lora,mora-rope,mora-share,remora-share,remora-rope]\n"
            "                [--remora-every K] [--lin-d D] [--lin-n N] [--lin-steps S] [--tasks uuid,linear] [--seed S]\n");
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

int main(int argc, char **argv) {
    config c = {0};
    const char *ranks = NULL, *lrs = NULL, *methods = NULL, *tasks_opt = "uuid,linear";
    int64_t n = 0, width = 0, depth = -1, steps = 0, every = 0, lin_d = 0, lin_n = 0, lin_steps = 0;
    c.out = "memorize-out", c.seed = 1;
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
        else if (strcmp(a, "--seed") == 0) c.seed = (uint64_t)atoll(argv[++i]);
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
    c.nlrs = parse_floats(lrs ? lrs : c.quick ? "1e-2" : "3e-3,1e-2,3e-2", c.lrs);
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", methods ? methods : "lora,mora-rope,mora-share,remora-share,remora-rope");
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
        c.lin_steps < 1 || c.nranks < 1 || c.nlrs < 1 || c.nmethods < 1)
        usage();
    for (int i = 0; i < c.nranks; ++i)
        if (c.ranks[i] < 1) usage();
    c.log_every = c.steps / 100 > 0 ? (int)(c.steps / 100) : 1;
    c.lin_log_every = c.lin_steps / 100 > 0 ? (int)(c.lin_steps / 100) : 1;
    mkdir(c.out, 0777);

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    mora_context *ctx;
    TRY(mora_context_create("cpu", 0, &ctx));
    int ok = 1;
    if (c.quick && !check_adamw(ctx)) {
        fprintf(stderr, "memorize: FAIL: the example's AdamW disagrees with mora_adapter_step\n");
        ok = 0;
    }

    printf("memorize: UUID task N=%lld, width %lld, depth %lld, %lld steps; linear memory d=%lld, N=%lld, %lld steps; "
           "ReMoRA every %lld steps\n",
           (long long)c.n, (long long)c.width, (long long)c.depth, (long long)c.steps, (long long)c.lin_d,
           (long long)c.lin_n, (long long)c.lin_steps, (long long)c.remora_every);
    uuid_task ut;
    uuid_make(&ut, &c);
    lin_task lt;
    lin_make(&lt, &c);

    FILE *fc_main = open_out(&c, "curves_main.csv", "w"), *fc_lin = open_out(&c, "curves_linear.csv", "w"),
         *fs = open_out(&c, "spectra.csv", "w");
    fprintf(fc_main, "task,method,r,lr,step,loss,accuracy\n");
    fprintf(fc_lin, "task,method,r,lr,step,loss,recall\n");
    fprintf(fs, "task,method,r,lr,layer,index,sigma\n");
    const int total = 2 * c.nranks * c.nmethods * c.nlrs;
    result *rs = NEW(result, total);
    int count = 0;
    for (int tk = 0; tk < 2; ++tk)
        for (int ri = 0; ri < c.nranks; ++ri)
            for (int mi = 0; mi < c.nmethods; ++mi)
                for (int li = 0; li < c.nlrs; ++li) {
                    if (!c.task_on[tk]) continue;
                    result *x = &rs[count++];
                    char name[256];
                    snprintf(name, sizeof name, "curve_%s_r%d_%s_lr%g.dat", tk == 0 ? "uuid" : "linear", c.ranks[ri],
                             c.methods[mi]->name, c.lrs[li]);
                    FILE *fcurve = open_out(&c, name, "w");
                    fprintf(fcurve, "# step loss %s\n", tk == 0 ? "accuracy" : "recall");
                    if (tk == 0) uuid_run(&c, ctx, &ut, c.methods[mi], c.ranks[ri], c.lrs[li], fc_main, fcurve, fs, x);
                    else lin_run(&c, ctx, &lt, c.methods[mi], c.ranks[ri], c.lrs[li], fc_lin, fcurve, fs, x);
                    fclose(fcurve);
                    char sig[128];
                    sig_string(x, sig, sizeof sig);
                    printf("  %-6s %-13s r=%-3d lr=%-7g params %7lld  loss %.4f -> %.4f  %s %.4f  sig. SVs %s  (%.1f s)\n",
                           x->task, x->m->name, x->r, x->lr, (long long)x->params, x->first_loss, x->final_loss,
                           tk == 0 ? "acc" : "recall", x->final_metric, sig, x->seconds);
                    fflush(stdout);
                    if (!(x->final_loss < 0.9 * x->first_loss) || !isfinite(x->final_loss)) {
                        /* --quick: a failure; a full run may hit it honestly (too few parameters, a diverging lr) */
                        fprintf(stderr, "memorize: %s: %s at r=%d, lr=%g: loss %.4f -> %.4f, not 10 %% lower%s\n", x->task,
                                x->m->name, x->r, x->lr, x->first_loss, x->final_loss, c.quick ? ": did not train" : " (noted)");
                        if (c.quick) ok = 0;
                    }
                }
    fclose(fc_main), fclose(fc_lin), fclose(fs);

    double target_sv[4096];
    int have_target = 0;
    if (c.lin_d <= 4096 && c.task_on[1]) {
        FILE *fs2 = open_out(&c, "spectra.csv", "a");
        have_target = lin_target(&lt, fs2, target_sv);
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

    /* summary.csv and report.md */
    FILE *fsum = open_out(&c, "summary.csv", "w");
    fprintf(fsum, "task,method,r,rhat_per_layer,params,lr,first_loss,final_loss,final_metric,best_metric,significant_sv_per_layer,seconds\n");
    for (int i = 0; i < count; ++i) {
        char sig[128];
        sig_string(&rs[i], sig, sizeof sig);
        fprintf(fsum, "%s,%s,%d,%s,%lld,%g,%.6f,%.6f,%.6f,%.6f,%s,%.2f\n", rs[i].task, rs[i].m->name, rs[i].r, rs[i].rhats,
                (long long)rs[i].params, rs[i].lr, rs[i].first_loss, rs[i].final_loss, rs[i].final_metric,
                rs[i].best_metric, sig, rs[i].seconds);
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
    fprintf(md, "# Memorisation: MoRA vs LoRA vs ReMoRA at equal parameter count (generated)\n\n");
    fprintf(md, "- command: `");
    for (int i = 0; i < argc; ++i) fprintf(md, "%s%s", i ? " " : "", argv[i]);
    fprintf(md, "`\n- machine: %s, %ld cores online, %s %s; libmora %s, cpu backend; OPENBLAS_NUM_THREADS=%s\n",
            machine[0] ? machine : "unknown CPU", sysconf(_SC_NPROCESSORS_ONLN), un.sysname, un.release, mora_version(),
            getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "(unset)");
    fprintf(md, "- commit: %s; date: %s; wall time %.0f s\n", commit[0] ? commit : "unknown", date, wall);
    fprintf(md, "- UUID task: N = %lld pairs, one-hot keys 32x16 -> residual ReLU MLP 512 -> %lld (+%lld residual blocks) -> 512 "
                "logits, every one of its %lld linear layers adapted; full batch, %lld steps\n",
            (long long)c.n, (long long)c.width, (long long)c.depth, (long long)ut.L, (long long)c.steps);
    fprintf(md, "- linear memory: d = %lld, N = %lld unit keys -> unit values, MSE, %lld steps; recall = own value nearest by cosine\n",
            (long long)c.lin_d, (long long)c.lin_n, (long long)c.lin_steps);
    fprintf(md, "- AdamW (torch's rule; weight decay 0), warm-up 5 %% then cosine; learning rates swept: ");
    for (int i = 0; i < c.nlrs; ++i) fprintf(md, "%s%g", i ? ", " : "", c.lrs[i]);
    fprintf(md, "; ReMoRA merges every %lld steps and re-warms over %lld\n", (long long)c.remora_every,
            (long long)(c.remora_every / 5 > 0 ? c.remora_every / 5 : 1));
    fprintf(md, "- significant singular values: above 1 %% of the largest, per adapted layer (first/…/last)%s\n\n",
            have_sv ? "" : " — not computed: built without LAPACKE");
    for (int tk = 0; tk < 2; ++tk) {
        if (!c.task_on[tk]) continue;
        fprintf(md, "## %s\n\n| method | r | r̂ per layer | trainable params | best lr | final %s | best %s | loss | significant SVs |\n|---|---|---|---|---|---|---|---|---|\n",
                tk == 0 ? "UUID memorisation (character accuracy)" : "Linear associative memory (recall)",
                tk == 0 ? "accuracy" : "recall", tk == 0 ? "accuracy" : "recall");
        for (int ri = 0; ri < c.nranks; ++ri)
            for (int mi = 0; mi < c.nmethods; ++mi) {
                const result *b = best_of(rs, count, tasks[tk], c.methods[mi], c.ranks[ri]);
                char sig[128];
                sig_string(b, sig, sizeof sig);
                fprintf(md, "| %s | %d | %s | %lld | %g | %.4f | %.4f | %.4f | %s |\n", b->m->name, b->r, b->rhats,
                        (long long)b->params, b->lr, b->final_metric, b->best_metric, b->final_loss, sig);
            }
        fprintf(md, "\nThe sweep (final %s at each learning rate):\n\n| method | r |", tk == 0 ? "accuracy" : "recall");
        for (int li = 0; li < c.nlrs; ++li) fprintf(md, " lr %g |", c.lrs[li]);
        fprintf(md, "\n|---|---|");
        for (int li = 0; li < c.nlrs; ++li) fprintf(md, "---|");
        fprintf(md, "\n");
        for (int ri = 0; ri < c.nranks; ++ri)
            for (int mi = 0; mi < c.nmethods; ++mi) {
                fprintf(md, "| %s | %d |", c.methods[mi]->name, c.ranks[ri]);
                for (int li = 0; li < c.nlrs; ++li)
                    for (int i = 0; i < count; ++i)
                        if (!strcmp(rs[i].task, tasks[tk]) && rs[i].m == c.methods[mi] && rs[i].r == c.ranks[ri] &&
                            rs[i].lr == c.lrs[li])
                            fprintf(md, " %.4f (loss %.3f) |", rs[i].final_metric, rs[i].final_loss);
                fprintf(md, "\n");
            }
        fprintf(md, "\n");
        if (plotted)
            for (int ri = 0; ri < c.nranks; ++ri)
                fprintf(md, "![%s r=%d](%s_r%d.png)\n![spectra %s r=%d](spectra_%s_r%d.png)\n\n", tasks[tk], c.ranks[ri], tasks[tk],
                        c.ranks[ri], tasks[tk], c.ranks[ri], tasks[tk], c.ranks[ri]);
    }
    if (have_target) {
        double total_e = 0, acc_e = 0;
        for (int64_t i = 0; i < c.lin_d; ++i) total_e += target_sv[i] * target_sv[i];
        fprintf(md, "Linear memory: the least-squares update ΔW* = (V − W0·K)·K⁺ has %d significant singular values "
                    "of %lld; the share of its energy a rank-k update can take (its top k): ",
                significant(target_sv, c.lin_d), (long long)c.lin_d);
        int64_t kk = 0;
        for (int ri = 0; ri < c.nranks; ++ri) {
            acc_e = 0;
            for (kk = 0; kk < c.ranks[ri] && kk < c.lin_d; ++kk) acc_e += target_sv[kk] * target_sv[kk];
            fprintf(md, "%sk = %d: %.1f %%", ri ? ", " : "", c.ranks[ri], 100 * acc_e / total_e);
        }
        fprintf(md, ".\n\n");
    }
    fprintf(md, "All runs: `summary.csv`; curves: `curves_main.csv`, `curves_linear.csv`; singular values: `spectra.csv`.\n");
    fclose(md);

    /* the quick check: the report files exist */
    const char *needed[] = {"curves_main.csv", "curves_linear.csv", "summary.csv", "spectra.csv", "report.md"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; ++i) {
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", c.out, needed[i]);
        if (stat(path, &st) != 0 || st.st_size == 0) {
            fprintf(stderr, "memorize: FAIL: %s was not written\n", path);
            ok = 0;
        }
    }
    printf("memorize: %d runs in %.1f s; report: %s/report.md%s\n", count, wall, c.out, ok ? "" : " — FAILED");
    free(rs);
    uuid_free(&ut);
    free(lt.K), free(lt.Vv), free(lt.W0);
    mora_context_destroy(ctx);
    return ok ? 0 : 1;
}
