/* test_adapter — the training runtime on one backend (argv[1]: cpu or opencl): layers and arenas,
 * AdamW against a float64 reference of torch.optim.AdamW's rule over many steps (with and without
 * clipping), ReMoRA (W0 + ΔW before equals W0' after; M, m, v zero; the sharing type advanced),
 * checkpoints (round trip, the PEFT layout's tensor names, bad files rejected without changing
 * anything) and, on the cpu backend, exact resume in a fresh process. Exits 77 when the backend is
 * absent. */
#define _DEFAULT_SOURCE
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "backend_harness.h"
#include "safetensors.h"

static const char *backend;

static mora_context *open_context(void) {
    mora_context *ctx = NULL;
    const mora_status st = mora_context_create(backend, 0, &ctx);
    if (st == MORA_E_NO_BACKEND) SKIP("backend %s is not available here: %s", backend, mora_last_error());
    REQUIRE_OK(st);
    return ctx;
}

static const mora_adapter_layer_desc layers[] = {
    {"model.layers.0.self_attn.q_proj", 64, 64, 2, 0, MORA_OP_ROPE, MORA_F32, MORA_F32},
    {"model.layers.0.self_attn.v_proj", 64, 40, 2, 0, MORA_OP_SHARE, MORA_F32, MORA_F32},
    {"model.layers.0.mlp.down_proj", 96, 64, 0, 12, MORA_OP_SHARE, MORA_F32, MORA_BF16},
};
#define LAYERS 3

static float *read_arena(mora_context *ctx, mora_adapter *a, mora_arena which, int64_t *count) {
    void *buffer = NULL;
    REQUIRE_OK(mora_adapter_arena(a, which, &buffer, count));
    float *host = malloc((size_t)*count * sizeof *host);
    REQUIRE_OK(mora_buffer_read(ctx, buffer, 0, host, (size_t)*count * sizeof *host));
    return host;
}

static void write_arena(mora_context *ctx, mora_adapter *a, mora_arena which, const float *host) {
    void *buffer = NULL;
    int64_t count = 0;
    REQUIRE_OK(mora_adapter_arena(a, which, &buffer, &count));
    REQUIRE_OK(mora_buffer_write(ctx, buffer, 0, host, (size_t)count * sizeof *host));
}

/* ---- layers, arenas ---- */
static void check_layout(mora_context *ctx) {
    mora_adapter *a = NULL;
    mora_adapter_layer_desc dup[2] = {layers[0], layers[0]};
    CHECK_STATUS(mora_adapter_create(ctx, dup, 2, 8, NULL, &a), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "layers[1].name") != NULL);
    CHECK_STATUS(mora_adapter_create(ctx, layers, 0, 8, NULL, &a), MORA_E_SIZE);
    CHECK(a == NULL);
    REQUIRE_OK(mora_adapter_create(ctx, layers, LAYERS, 8, NULL, &a));
    CHECK_EQ_INT(mora_adapter_layer_count(a), LAYERS);
    int index = -1;
    REQUIRE_OK(mora_adapter_find(a, "model.layers.0.mlp.down_proj", &index));
    CHECK_EQ_INT(index, 2);
    CHECK_STATUS(mora_adapter_find(a, "lm_head", &index), MORA_E_NOT_FOUND);
    int64_t end = 0;
    for (int i = 0; i < LAYERS; ++i) {
        mora_adapter_layer_info info;
        REQUIRE_OK(mora_adapter_layer(a, i, &info));
        CHECK_EQ_INT(info.offset % MORA_ARENA_ALIGN, 0);
        CHECK(info.offset >= end);
        end = info.offset + info.shape.rhat * info.shape.rhat;
    }
    mora_adapter_layer_info info;
    REQUIRE_OK(mora_adapter_layer(a, 0, &info));
    CHECK_EQ_INT(info.shape.rhat, 16); /* sqrt(128 · 2) */
    REQUIRE_OK(mora_adapter_layer(a, 2, &info));
    CHECK_EQ_INT(info.shape.rhat, 12);
    CHECK_EQ_INT(info.lora_rank, 1); /* 144 / 160 rounds to 1 */
    CHECK_STATUS(mora_adapter_layer(a, 3, &info), MORA_E_ARG);
    int64_t count = 0;
    float *params = read_arena(ctx, a, MORA_ARENA_PARAMS, &count);
    CHECK(count >= end);
    int zero = 1;
    for (int64_t i = 0; i < count; ++i) zero &= params[i] == 0.0f;
    CHECK(zero); /* ΔW = 0 at the start */
    free(params);
    mora_adapter_destroy(a);
}

/* ---- AdamW against float64 ---- */
typedef struct reference_adamw {
    double *p, *m, *v;
} reference_adamw;

static double reference_step(reference_adamw *r, double *g, int64_t count, const mora_adamw *hp, int64_t t) {
    double norm = 0;
    for (int64_t i = 0; i < count; ++i) norm += g[i] * g[i];
    norm = sqrt(norm);
    const double coef = hp->max_grad_norm > 0 ? fmin(1.0, hp->max_grad_norm / (norm + 1e-6)) : 1.0;
    const double b1 = hp->beta1, b2 = hp->beta2;
    for (int64_t i = 0; i < count; ++i) {
        g[i] *= coef;
        r->p[i] *= 1.0 - (double)hp->lr * hp->weight_decay;
        r->m[i] = b1 * r->m[i] + (1 - b1) * g[i];
        r->v[i] = b2 * r->v[i] + (1 - b2) * g[i] * g[i];
        const double mhat = r->m[i] / (1 - pow(b1, (double)t)), vhat = r->v[i] / (1 - pow(b2, (double)t));
        r->p[i] -= hp->lr * mhat / (sqrt(vhat) + hp->eps);
    }
    return norm;
}

static void check_adamw(mora_context *ctx, int clip) {
    mora_adapter *a = NULL;
    REQUIRE_OK(mora_adapter_create(ctx, layers, LAYERS, 8, NULL, &a));
    void *buffer = NULL;
    int64_t count = 0;
    REQUIRE_OK(mora_adapter_arena(a, MORA_ARENA_PARAMS, &buffer, &count));
    reference_adamw r = {calloc((size_t)count, 8), calloc((size_t)count, 8), calloc((size_t)count, 8)};
    double *g = calloc((size_t)count, 8);
    float *host = calloc((size_t)count, 4);
    check_rng rng = {99u + (uint64_t)clip};
    for (int64_t i = 0; i < count; ++i) host[i] = (float)(0.1 * check_rng_uniform(&rng)), r.p[i] = host[i];
    write_arena(ctx, a, MORA_ARENA_PARAMS, host);
    mora_adamw hp = mora_adamw_defaults();
    hp.lr = 0.01f;
    hp.weight_decay = 0.1f;
    hp.max_grad_norm = clip ? 0.5f : 0.0f;
    double worst[3] = {0, 0, 0}, norm_error = 0;
    for (int step = 1; step <= 25; ++step) {
        for (int64_t i = 0; i < count; ++i) host[i] = (float)(step % 5 == 0 ? 0.0 : check_rng_uniform(&rng)), g[i] = host[i];
        write_arena(ctx, a, MORA_ARENA_GRADS, host);
        REQUIRE_OK(mora_adapter_step(a, &hp));
        const double norm = reference_step(&r, g, count, &hp, step);
        if (clip) {
            float got = 0;
            REQUIRE_OK(mora_adapter_last_grad_norm(a, &got));
            norm_error = fmax(norm_error, fabs(got - norm) / (norm > 0 ? norm : 1));
        }
        const double *refs[3] = {r.p, r.m, r.v};
        const mora_arena which[3] = {MORA_ARENA_PARAMS, MORA_ARENA_EXP_AVG, MORA_ARENA_EXP_AVG_SQ};
        for (int k = 0; k < 3; ++k) {
            float *got = read_arena(ctx, a, which[k], &count);
            double *gotd = malloc((size_t)count * 8);
            for (int64_t i = 0; i < count; ++i) gotd[i] = got[i];
            const double err = check_rel_error(gotd, refs[k], count);
            worst[k] = isnan(err) ? INFINITY : fmax(worst[k], err);
            free(got), free(gotd);
        }
    }
    printf("%s AdamW%s over 25 steps: relative error M %.2g, m %.2g, v %.2g%s\n", backend, clip ? " + clipping" : "",
           worst[0], worst[1], worst[2], clip ? "" : "");
    if (clip) printf("  gradient norm relative error %.2g\n", norm_error);
    CHECK(worst[0] < 2e-6 && worst[1] < 2e-6 && worst[2] < 2e-6);
    if (clip) CHECK(norm_error < 1e-5);
    CHECK_EQ_INT(mora_adapter_steps(a), 25);
    if (!clip) CHECK_STATUS(mora_adapter_last_grad_norm(a, &(float){0}), MORA_E_NOT_FOUND);
    mora_adamw bad = hp;
    bad.beta1 = 1.0f;
    CHECK_STATUS(mora_adapter_step(a, &bad), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "beta1=1") != NULL);
    free(r.p), free(r.m), free(r.v), free(g), free(host);
    mora_adapter_destroy(a);
}

/* ---- ReMoRA ---- */
static void check_remora(mora_context *ctx) {
    mora_adapter *a = NULL;
    REQUIRE_OK(mora_adapter_create(ctx, layers, LAYERS, 8, NULL, &a));
    int64_t count = 0;
    float *params = read_arena(ctx, a, MORA_ARENA_PARAMS, &count);
    check_rng rng = {7};
    for (int64_t i = 0; i < count; ++i) params[i] = (float)check_rng_uniform(&rng);
    write_arena(ctx, a, MORA_ARENA_PARAMS, params); /* (padding too: ReMoRA zeroes everything) */
    write_arena(ctx, a, MORA_ARENA_EXP_AVG, params);
    float *squares = malloc((size_t)count * 4); /* v is a mean of squares: never negative */
    for (int64_t i = 0; i < count; ++i) squares[i] = params[i] * params[i];
    write_arena(ctx, a, MORA_ARENA_EXP_AVG_SQ, squares);
    free(squares);
    mora_adamw lr0 = MORA_ADAMW_DEFAULTS;
    lr0.lr = lr0.weight_decay = 0.0f;
    REQUIRE_OK(mora_adapter_step(a, &lr0)); /* lr 0: M kept, a step counted */
    void *W[LAYERS];
    int64_t ld[LAYERS];
    double *expected[LAYERS];
    mora_shape before[LAYERS];
    for (int i = 0; i < LAYERS; ++i) {
        mora_adapter_layer_info info;
        REQUIRE_OK(mora_adapter_layer(a, i, &info));
        before[i] = info.shape;
        const mora_shape *s = &info.shape;
        ld[i] = s->d_in + 5;
        const size_t es = mora_dtype_size(info.w_dtype);
        const int64_t elems = s->d_out * ld[i];
        void *host = malloc((size_t)elems * es);
        double *w0 = malloc((size_t)elems * 8), *dw = malloc((size_t)(s->d_out * s->d_in) * 8), *Md = malloc((size_t)(s->rhat * s->rhat) * 8);
        harness_random(&rng, info.w_dtype, host, w0, elems, 1.0);
        float *M = read_arena(ctx, a, MORA_ARENA_PARAMS, &count);
        for (int64_t e = 0; e < s->rhat * s->rhat; ++e) Md[e] = M[info.offset + e];
        REQUIRE_OK(mora_ref_delta_weight(s, Md, dw));
        expected[i] = malloc((size_t)elems * 8);
        for (int64_t j = 0; j < s->d_out; ++j)
            for (int64_t p = 0; p < ld[i]; ++p) expected[i][j * ld[i] + p] = w0[j * ld[i] + p] + (p < s->d_in ? dw[j * s->d_in + p] : 0.0);
        REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)elems * es, &W[i]));
        REQUIRE_OK(mora_buffer_write(ctx, W[i], 0, host, (size_t)elems * es));
        free(host), free(w0), free(dw), free(Md), free(M);
    }
    CHECK_STATUS(mora_adapter_remora(a, (void *const[]){W[0], NULL, W[2]}, ld), MORA_E_NULL);
    float *unchanged = read_arena(ctx, a, MORA_ARENA_PARAMS, &count);
    CHECK(memcmp(unchanged, params, (size_t)count * 4) == 0); /* the failed call changed nothing */
    free(unchanged);
    REQUIRE_OK(mora_adapter_remora(a, W, ld));
    for (int i = 0; i < LAYERS; ++i) {
        mora_adapter_layer_info info;
        REQUIRE_OK(mora_adapter_layer(a, i, &info));
        const int64_t elems = info.shape.d_out * ld[i];
        const size_t es = mora_dtype_size(info.w_dtype);
        void *host = malloc((size_t)elems * es);
        double *got = malloc((size_t)elems * 8);
        REQUIRE_OK(mora_buffer_read(ctx, W[i], 0, host, (size_t)elems * es));
        for (int64_t e = 0; e < elems; ++e) got[e] = mora_load_act(info.w_dtype, host, e);
        const double err = check_rel_error(got, expected[i], elems);
        printf("ReMoRA %s: W0' vs W0 + ΔW relative error %.2g (%s), type %s -> %s\n", info.name, err,
               mora_dtype_name(info.w_dtype), mora_op_name(before[i].op), mora_op_name(info.shape.op));
        CHECK(err <= harness_tolerance(info.w_dtype));
        CHECK_EQ_INT(info.shape.op, before[i].op == MORA_OP_SHARE ? MORA_OP_GROUP : before[i].op);
        free(host), free(got), free(expected[i]);
        REQUIRE_OK(mora_buffer_free(ctx, W[i]));
    }
    const mora_arena zeroed[3] = {MORA_ARENA_PARAMS, MORA_ARENA_EXP_AVG, MORA_ARENA_EXP_AVG_SQ};
    for (int k = 0; k < 3; ++k) {
        float *arena = read_arena(ctx, a, zeroed[k], &count);
        int zero = 1;
        for (int64_t i = 0; i < count; ++i) zero &= arena[i] == 0.0f;
        CHECK(zero);
        free(arena);
    }
    CHECK_EQ_INT(mora_adapter_steps(a), 0);
    free(params);
    mora_adapter_destroy(a);
}

/* ---- checkpoints ---- */

/* One deterministic training step: seeded x and dy per step, backward of every layer, AdamW. */
static void train_step(mora_context *ctx, mora_adapter *a, int step, void *x, void *dy) {
    REQUIRE_OK(mora_adapter_zero_grad(a));
    check_rng rng = {1000u + (uint64_t)step};
    float host[8 * 96];
    for (int i = 0; i < 8 * 96; ++i) host[i] = (float)check_rng_uniform(&rng);
    REQUIRE_OK(mora_buffer_write(ctx, x, 0, host, sizeof host));
    for (int i = 0; i < 8 * 96; ++i) host[i] = (float)check_rng_uniform(&rng);
    REQUIRE_OK(mora_buffer_write(ctx, dy, 0, host, sizeof host));
    for (int i = 0; i < LAYERS; ++i) {
        mora_adapter_layer_info info;
        REQUIRE_OK(mora_adapter_layer(a, i, &info));
        REQUIRE_OK(mora_adapter_backward(a, i, x, info.shape.d_in, dy, info.shape.d_out, NULL, 0, 8, 1.0f));
    }
    mora_adamw hp = mora_adamw_defaults();
    hp.max_grad_norm = 1.0f;
    REQUIRE_OK(mora_adapter_step(a, &hp));
}

static void train(mora_context *ctx, mora_adapter *a, int from, int to) {
    void *x = NULL, *dy = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, 8 * 96 * 4, &x));
    REQUIRE_OK(mora_buffer_alloc(ctx, 8 * 96 * 4, &dy));
    for (int step = from; step < to; ++step) train_step(ctx, a, step, x, dy);
    REQUIRE_OK(mora_buffer_free(ctx, x));
    REQUIRE_OK(mora_buffer_free(ctx, dy));
}

static int same_arenas(mora_context *ctx, mora_adapter *a, mora_context *ctx2, mora_adapter *b) {
    int same = 1;
    for (int k = 0; k < 4; ++k) {
        if (k == MORA_ARENA_GRADS) continue;
        int64_t n1 = 0, n2 = 0;
        float *x = read_arena(ctx, a, (mora_arena)k, &n1), *y = read_arena(ctx2, b, (mora_arena)k, &n2);
        same &= n1 == n2 && memcmp(x, y, (size_t)n1 * 4) == 0;
        free(x), free(y);
    }
    return same;
}

/* ---- the MoRA reference's adapter layout (tests/fixtures/mora-reference) ---- */

/* a counted check that says what failed */
#define CHECK_SAYS(cond, ...)                  \
    do {                                       \
        ++check_count_;                        \
        if (!(cond)) CHECK_FAIL_(__VA_ARGS__); \
    } while (0)

/* tests/fixtures/mora-reference/<file>, found from this source file's own path */
static void fixture_path(char *out, size_t size, const char *file) {
    const char *slash = strrchr(__FILE__, '/');
    const int dir = slash ? (int)(slash - __FILE__) : 1;
    snprintf(out, size, "%.*s/fixtures/mora-reference/%s", dir, slash ? __FILE__ : ".", file);
}

/* adapter_config.json holds exactly the fields of the reference's LoraConfig (lora_config_fields.json,
 * read from its source), each fixed one with the value the reference's save_pretrained writes for a
 * MoRA adapter; and this adapter's own: r and lora_alpha (2), mora_type (6), the last names of its
 * layers, and rank_pattern for the layer whose rank differs (down_proj: r̂ = 12 given, rank 1). */
static void check_config_fields(const char *folder) {
    char path[400];
    fixture_path(path, sizeof path, "lora_config_fields.json");
    json_error_t jerr;
    json_t *spec = json_load_file(path, 0, &jerr);
    CHECK_SAYS(spec != NULL, "%s: %s", path, jerr.text);
    if (!spec) return;
    snprintf(path, sizeof path, "%s/adapter_config.json", folder);
    json_t *config = json_load_file(path, 0, &jerr);
    CHECK_SAYS(config != NULL, "%s: %s", path, jerr.text);
    if (!config) {
        json_decref(spec);
        return;
    }
    const json_t *fields = json_object_get(spec, "fields"), *dependent = json_object_get(spec, "adapter_dependent");
    CHECK_EQ_INT((long long)json_object_size(fields), 25);
    CHECK_EQ_INT((long long)json_object_size(config), (long long)json_object_size(fields));
    const char *key;
    json_t *value;
    json_object_foreach(config, key, value) {
        CHECK_SAYS(json_object_get(fields, key) != NULL, "adapter_config.json: \"%s\" is no field of the reference's LoraConfig", key);
    }
    json_object_foreach((json_t *)fields, key, value) {
        const json_t *got = json_object_get(config, key);
        int is_dependent = 0;
        for (size_t k = 0; k < json_array_size(dependent); ++k) is_dependent |= strcmp(json_string_value(json_array_get(dependent, k)), key) == 0;
        CHECK_SAYS(got != NULL, "adapter_config.json: the reference's field \"%s\" is missing", key);
        if (got && !is_dependent)
            CHECK_SAYS(json_equal(got, json_object_get(value, "mora_saved")),
                       "adapter_config.json: \"%s\" is not the value the reference writes for a MoRA adapter", key);
    }
    json_t *want = json_pack("{s:i, s:i, s:i, s:s, s:[sss], s:{s:i}}", "r", 2, "lora_alpha", 2, "mora_type", 6, "base_model_name_or_path", "",
                             "target_modules", "q_proj", "v_proj", "down_proj", "rank_pattern", "model.layers.0.mlp.down_proj", 1);
    json_object_foreach(want, key, value) {
        CHECK_SAYS(json_equal(json_object_get(config, key), value), "adapter_config.json: \"%s\" is not this adapter's", key);
    }
    json_decref(want), json_decref(config), json_decref(spec);
}

/* M[i][j] of the fixture's layer k (tests/fixtures/mora-reference/make_adapter.py: m_value) */
static float fixture_m(int k, int64_t i, int64_t j) { return (float)((i * 7 + j * 3 + k * 5) % 11 - 5) / 64.0f; }

/* a folder the reference wrote (no libmora metadata, mora_type 6 in the config) loads: its M, type 6 */
static void check_reference_fixture(mora_context *ctx) {
    const mora_adapter_layer_desc ref_layers[] = {
        {"model.layers.0.self_attn.q_proj", 64, 64, 4, 0, MORA_OP_ROPE, MORA_F32, MORA_F32},
        {"model.layers.0.mlp.down_proj", 128, 64, 4, 0, MORA_OP_ROPE, MORA_F32, MORA_F32},
    };
    char folder[400];
    fixture_path(folder, sizeof folder, "adapter");
    mora_adapter *a = NULL;
    REQUIRE_OK(mora_adapter_create(ctx, ref_layers, 2, 8, NULL, &a));
    const mora_status st = mora_adapter_load(a, folder);
    CHECK_STATUS(st, MORA_OK);
    if (st != MORA_OK) printf("the reference's adapter (%s): %s\n", folder, mora_last_error());
    int64_t count = 0;
    float *params = read_arena(ctx, a, MORA_ARENA_PARAMS, &count);
    const int64_t want_rhat[2] = {22, 28};
    for (int k = 0; k < 2; ++k) {
        mora_adapter_layer_info info;
        REQUIRE_OK(mora_adapter_layer(a, k, &info));
        CHECK_EQ_INT(info.shape.rhat, want_rhat[k]); /* the reference's r̂ for r = 4, type 6 */
        CHECK_EQ_INT(info.shape.op, MORA_OP_ROPE);
        int same = 1;
        for (int64_t i = 0; i < info.shape.rhat; ++i)
            for (int64_t j = 0; j < info.shape.rhat; ++j) same &= params[info.offset + i * info.shape.rhat + j] == fixture_m(k, i, j);
        CHECK(same);
    }
    CHECK_EQ_INT(mora_adapter_steps(a), 0);
    free(params);
    mora_adapter_destroy(a);
}

static void check_checkpoints(mora_context *ctx) {
    char dir[] = "/tmp/mora-test-adapter-XXXXXX";
    REQUIRE_OK(mkdtemp(dir) ? MORA_OK : MORA_E_IO);
    char folder[256], path[300];
    snprintf(folder, sizeof folder, "%s/ckpt", dir);
    mora_adapter *a = NULL, *b = NULL;
    REQUIRE_OK(mora_adapter_create(ctx, layers, LAYERS, 8, NULL, &a));
    train(ctx, a, 0, 6);
    REQUIRE_OK(mora_adapter_save(a, folder));
    /* the files: the PEFT fork's names, M twice, F32 r̂ x r̂, libmora's metadata */
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", folder);
    void *bytes = NULL;
    size_t size = 0;
    REQUIRE_OK(mora_read_file(path, (size_t)1 << 30, &bytes, &size));
    mora_st_file f;
    REQUIRE_OK(mora_st_parse(bytes, size, path, &f));
    CHECK_EQ_INT(f.count, 2 * LAYERS);
    const mora_st_tensor *ta = mora_st_find(&f, "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
    const mora_st_tensor *tb = mora_st_find(&f, "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
    CHECK(ta && tb && ta->ndim == 2 && ta->shape[0] == 12 && ta->shape[1] == 12 && strcmp(ta->dtype, "F32") == 0);
    CHECK(ta && tb && ta->bytes == tb->bytes && memcmp(ta->data, tb->data, ta->bytes) == 0);
    CHECK(mora_st_meta(&f, "libmora.ops") && strcmp(mora_st_meta(&f, "libmora.ops"), "6,1,1") == 0);
    CHECK(mora_st_meta(&f, "libmora.step") && strcmp(mora_st_meta(&f, "libmora.step"), "6") == 0);
    uint64_t header = 0;
    memcpy(&header, bytes, 8);
    CHECK_EQ_INT(header % 8, 0);
    mora_st_file_free(&f);
    snprintf(path, sizeof path, "%s/adapter_config.json", folder);
    void *config = NULL;
    REQUIRE_OK(mora_read_file(path, 1 << 20, &config, &size));
    CHECK(strstr(config, "\"use_mora\": true") && strstr(config, "\"peft_type\": \"LORA\"") && strstr(config, "\"mora_type\": 6") &&
          strstr(config, "\"r\": 2") && strstr(config, "\"q_proj\""));
    free(config);
    check_config_fields(folder);

    /* round trip into a fresh adapter: the same bits, the same step */
    REQUIRE_OK(mora_adapter_create(ctx, layers, LAYERS, 8, NULL, &b));
    REQUIRE_OK(mora_adapter_load(b, folder));
    CHECK(same_arenas(ctx, a, ctx, b));
    CHECK_EQ_INT(mora_adapter_steps(b), 6);

    /* bad files are rejected with a sentence, and the adapter is left as it was */
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", folder);
    struct {
        const char *what;
        long cut;      /* truncate to this many bytes (-1: no) */
        long flip_at;  /* flip one data byte this far from the end (-1: no) */
        const char *want;
    } cases[] = {{"truncated", 100, -1, "header length"}, {"lora_B differs", -1, 4, "differ"}, {"empty", 0, -1, "too short"}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
        void *good = NULL;
        size_t good_size = 0;
        REQUIRE_OK(mora_read_file(path, (size_t)1 << 30, &good, &good_size));
        unsigned char *copy = malloc(good_size);
        memcpy(copy, good, good_size);
        size_t copy_size = good_size;
        if (cases[c].cut >= 0) copy_size = (size_t)cases[c].cut;
        if (cases[c].flip_at >= 0) copy[good_size - (size_t)cases[c].flip_at] ^= 0x40;
        FILE *out = fopen(path, "wb");
        fwrite(copy, 1, copy_size, out);
        fclose(out);
        mora_adapter *c2 = NULL;
        REQUIRE_OK(mora_adapter_create(ctx, layers, LAYERS, 8, NULL, &c2));
        train(ctx, c2, 0, 1);
        int64_t n0 = 0;
        float *before = read_arena(ctx, c2, MORA_ARENA_PARAMS, &n0);
        CHECK_STATUS(mora_adapter_load(c2, folder), MORA_E_IO);
        printf("bad checkpoint (%s): %s\n", cases[c].what, mora_last_error());
        CHECK(strstr(mora_last_error(), cases[c].want) != NULL);
        float *after = read_arena(ctx, c2, MORA_ARENA_PARAMS, &n0);
        CHECK(memcmp(before, after, (size_t)n0 * 4) == 0);
        CHECK_EQ_INT(mora_adapter_steps(c2), 1);
        free(before), free(after), free(copy);
        mora_adapter_destroy(c2);
        out = fopen(path, "wb"); /* put the good file back */
        fwrite(good, 1, good_size, out);
        fclose(out);
        free(good);
    }
    free(bytes);
    /* libmora.ops follows the file's layers: an adapter holding them in another order gets each its own type */
    {
        const mora_adapter_layer_desc reversed[LAYERS] = {layers[2], layers[1], layers[0]};
        mora_adapter *rev = NULL;
        REQUIRE_OK(mora_adapter_create(ctx, reversed, LAYERS, 8, NULL, &rev));
        REQUIRE_OK(mora_adapter_load(rev, folder));
        for (int i = 0; i < LAYERS; ++i) {
            mora_adapter_layer_info info;
            REQUIRE_OK(mora_adapter_layer(rev, i, &info));
            CHECK_EQ_INT(info.shape.op, reversed[i].op);
        }
        mora_adapter_destroy(rev);
    }
    /* a layer of another r̂ does not load */
    mora_adapter_layer_desc other[LAYERS];
    memcpy(other, layers, sizeof other);
    other[2].rhat = 10;
    mora_adapter *c3 = NULL;
    REQUIRE_OK(mora_adapter_create(ctx, other, LAYERS, 8, NULL, &c3));
    CHECK_STATUS(mora_adapter_load(c3, folder), MORA_E_IO);
    CHECK(strstr(mora_last_error(), "r̂ = 10") != NULL);
    mora_adapter_destroy(c3);

    /* exact resume in a fresh process (cpu: bit-reproducible): 6 steps, save, load, 5 more equals 11 */
    if (strcmp(backend, "cpu") == 0) {
        train(ctx, a, 6, 11);
        snprintf(path, sizeof path, "%s/resumed", dir);
        const pid_t child = fork();
        if (child == 0) {
            mora_context *fresh = NULL;
            mora_adapter *r = NULL;
            if (mora_context_create("cpu", 0, &fresh) != MORA_OK || mora_adapter_create(fresh, layers, LAYERS, 8, NULL, &r) != MORA_OK ||
                mora_adapter_load(r, folder) != MORA_OK)
                _exit(3);
            train(fresh, r, 6, 11);
            _exit(mora_adapter_save(r, path) == MORA_OK ? 0 : 4);
        }
        int status = 0;
        waitpid(child, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        mora_adapter *r = NULL;
        REQUIRE_OK(mora_adapter_create(ctx, layers, LAYERS, 8, NULL, &r));
        REQUIRE_OK(mora_adapter_load(r, path));
        const int same = same_arenas(ctx, a, ctx, r);
        printf("resume: 6 steps + save + load in a fresh process + 5 steps %s 11 steps bit for bit\n", same ? "equals" : "DIFFERS from");
        CHECK(same);
        CHECK_EQ_INT(mora_adapter_steps(r), 11);
        mora_adapter_destroy(r);
    }
    mora_adapter_destroy(a);
    mora_adapter_destroy(b);
    char command[300];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(command), 0);
}

int main(int argc, char **argv) {
    backend = argc > 1 ? argv[1] : "cpu";
    mora_context *ctx = open_context();
    check_layout(ctx);
    check_adamw(ctx, 0);
    check_adamw(ctx, 1);
    check_remora(ctx);
    check_checkpoints(ctx);
    check_reference_fixture(ctx);
    mora_context_destroy(ctx);
    return check_report();
}
