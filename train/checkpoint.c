/* Checkpoints in the MoRA reference's PEFT layout (mora.h: mora_adapter_save / _load):
 *
 *   adapter_model.safetensors  base_model.model.<name>.lora_A.weight and .lora_B.weight = M (F32,
 *                              r̂ x r̂) per layer, as the reference's PEFT fork writes them with safe
 *                              serialisation; __metadata__: format "pt", libmora.ops (each layer's
 *                              current type id, comma-separated), libmora.step, libmora.version
 *   adapter_config.json        the fork's LoraConfig, every field it has and no other (write_config):
 *                              peft_type LORA, use_mora true, mora_type (the first layer's type id), r
 *                              (the LoRA rank), target_modules, rank_pattern, ...
 *   optimizer.safetensors      <name>.exp_avg and <name>.exp_avg_sq per layer (F32, r̂ x r̂)
 *
 * Loading validates everything into host staging copies first and touches the adapter only when
 * every check passed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapter_internal.h"
#include "error.h"
#include "safetensors.h"
#include "shape.h"

#define MODEL_FILE "adapter_model.safetensors"
#define CONFIG_FILE "adapter_config.json"
#define OPTIMIZER_FILE "optimizer.safetensors"
#define MAX_FILE_BYTES ((size_t)1 << 36)

static char *join(const char *folder, const char *file) {
    const size_t n = strlen(folder) + strlen(file) + 2;
    char *path = malloc(n);
    if (path) snprintf(path, n, "%s/%s", folder, file);
    return path;
}

/* "base_model.model.<name>.lora_A.weight" and friends, into out (NULL-terminated, malloc'd). */
static char *tensor_name(const char *prefix, const char *name, const char *suffix) {
    const size_t n = strlen(prefix) + strlen(name) + strlen(suffix) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", prefix, name, suffix);
    return s;
}

static mora_status read_arena(mora_adapter *a, mora_arena which, float **host) {
    *host = malloc((size_t)a->total * sizeof **host);
    if (!*host) return mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory for %lld floats", (long long)a->total);
    const mora_status st = mora_context_buffer_read(a->ctx, a->arenas[which], 0, *host, (size_t)a->total * sizeof **host);
    if (st != MORA_OK) free(*host), *host = NULL;
    return st;
}

/* adapter_config.json: exactly the fields of the reference's LoraConfig (its PeftConfigMixin, PeftConfig
 * and LoraConfig dataclasses; tests/fixtures/mora-reference/lora_config_fields.json lists them with the
 * commit they were read from), with the values its PEFT fork's save_pretrained writes for a MoRA
 * adapter, so that the reference's LoraConfig(**json) accepts the file. libmora's own facts (version,
 * each layer's type, the step) are in adapter_model.safetensors' __metadata__, not here.
 *   target_modules  the last component of each layer's name, once each (the reference adapts every
 *                   module of the base model whose name ends so; a layer this adapter does not hold
 *                   then starts at M = 0, ΔW = 0)
 *   r, mora_type    the first layer's LoRA rank and type; rank_pattern: {name: r} for every layer
 *                   whose rank differs from the first's
 *   lora_alpha      r (MoRA ignores it: its scaling is 1)
 *   inference_mode  true, base_model_name_or_path "" (a C adapter knows no model name): as the
 *                   reference's save_pretrained writes them */
static mora_status write_config(mora_adapter *a, const char *path) {
    json_t *config = json_object(), *targets = json_array(), *ranks = json_object();
    int ok = config && targets && ranks;
    const int64_t r = a->layers[0].lora_rank;
    for (int i = 0; i < a->count && ok; ++i) { /* the last component of each name, once each */
        const char *dot = strrchr(a->layers[i].name, '.');
        const char *module = dot ? dot + 1 : a->layers[i].name;
        int seen = 0;
        for (size_t k = 0; k < json_array_size(targets); ++k) seen |= strcmp(json_string_value(json_array_get(targets, k)), module) == 0;
        if (!seen) ok = json_array_append_new(targets, json_string(module)) == 0;
        if (ok && a->layers[i].lora_rank != r)
            ok = json_object_set_new(ranks, a->layers[i].name, json_integer((json_int_t)a->layers[i].lora_rank)) == 0;
    }
    /* PeftConfigMixin, PeftConfig */
    ok = ok && json_object_set_new(config, "auto_mapping", json_null()) == 0;
    ok = ok && json_object_set_new(config, "base_model_name_or_path", json_string("")) == 0;
    ok = ok && json_object_set_new(config, "revision", json_null()) == 0;
    ok = ok && json_object_set_new(config, "peft_type", json_string("LORA")) == 0;
    ok = ok && json_object_set_new(config, "task_type", json_string("CAUSAL_LM")) == 0;
    ok = ok && json_object_set_new(config, "inference_mode", json_true()) == 0;
    /* LoraConfig */
    ok = ok && json_object_set_new(config, "r", json_integer((json_int_t)r)) == 0;
    ok = ok && json_object_set(config, "target_modules", targets) == 0;
    ok = ok && json_object_set_new(config, "lora_alpha", json_integer((json_int_t)r)) == 0;
    ok = ok && json_object_set_new(config, "lora_dropout", json_real(0.0)) == 0;
    ok = ok && json_object_set_new(config, "fan_in_fan_out", json_false()) == 0;
    ok = ok && json_object_set_new(config, "bias", json_string("none")) == 0;
    ok = ok && json_object_set_new(config, "use_rslora", json_false()) == 0;
    ok = ok && json_object_set_new(config, "modules_to_save", json_null()) == 0;
    ok = ok && json_object_set_new(config, "init_lora_weights", json_true()) == 0;
    ok = ok && json_object_set_new(config, "layers_to_transform", json_null()) == 0;
    ok = ok && json_object_set_new(config, "layers_pattern", json_null()) == 0;
    ok = ok && json_object_set(config, "rank_pattern", ranks) == 0;
    ok = ok && json_object_set_new(config, "alpha_pattern", json_object()) == 0;
    ok = ok && json_object_set_new(config, "megatron_config", json_null()) == 0;
    ok = ok && json_object_set_new(config, "megatron_core", json_string("megatron.core")) == 0;
    ok = ok && json_object_set_new(config, "loftq_config", json_object()) == 0;
    ok = ok && json_object_set_new(config, "use_dora", json_false()) == 0;
    ok = ok && json_object_set_new(config, "use_mora", json_true()) == 0;
    ok = ok && json_object_set_new(config, "mora_type", json_integer((json_int_t)a->layers[0].shape.op)) == 0;
    char *text = ok ? json_dumps(config, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(config), json_decref(targets), json_decref(ranks);
    if (!text) return mora_fail(MORA_E_NO_MEMORY, "%s: the config could not be made", path);
    const mora_status st = mora_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

mora_status mora_adapter_save(mora_adapter *a, const char *folder) {
    mora_error_clear();
    MORA_CHECK_ADAPTER(a);
    MORA_CHECK_PTR(folder);
    if (mkdir(folder, 0755) != 0 && errno != EEXIST)
        return mora_fail(MORA_E_IO, "folder=\"%s\": cannot be created: %s", folder, strerror(errno));
    float *arenas[3] = {NULL, NULL, NULL};
    const mora_arena which[3] = {MORA_ARENA_PARAMS, MORA_ARENA_EXP_AVG, MORA_ARENA_EXP_AVG_SQ};
    mora_status st = MORA_OK;
    for (int k = 0; k < 3 && st == MORA_OK; ++k) st = read_arena(a, which[k], &arenas[k]);
    mora_st_out *model = calloc((size_t)a->count * 2, sizeof *model), *optimizer = calloc((size_t)a->count * 2, sizeof *optimizer);
    char **names = calloc((size_t)a->count * 4, sizeof *names);
    char *ops = calloc((size_t)a->count, 4);
    if (st == MORA_OK && (!model || !optimizer || !names || !ops)) st = mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
    for (int i = 0; i < a->count && st == MORA_OK; ++i) {
        const adapter_layer *l = &a->layers[i];
        const char *suffixes[4] = {".lora_A.weight", ".lora_B.weight", ".exp_avg", ".exp_avg_sq"};
        for (int k = 0; k < 4; ++k) names[4 * i + k] = tensor_name(k < 2 ? "base_model.model." : "", l->name, suffixes[k]);
        for (int k = 0; k < 4 && st == MORA_OK; ++k)
            if (!names[4 * i + k]) st = mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
        for (int k = 0; k < 4; ++k) {
            mora_st_out *t = k < 2 ? &model[2 * i + k] : &optimizer[2 * i + k - 2];
            *t = (mora_st_out){names[4 * i + k], 2, {l->shape.rhat, l->shape.rhat}, arenas[k < 2 ? 0 : k - 1] + l->offset};
        }
        snprintf(ops + strlen(ops), 4, "%s%d", i ? "," : "", (int)l->shape.op);
    }
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)a->steps);
    const char *keys[4] = {"format", "libmora.ops", "libmora.step", "libmora.version"};
    const char *values[4] = {"pt", ops, step, MORA_VERSION_STRING};
    char *paths[3] = {join(folder, MODEL_FILE), join(folder, OPTIMIZER_FILE), join(folder, CONFIG_FILE)};
    if (st == MORA_OK && (!paths[0] || !paths[1] || !paths[2])) st = mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
    if (st == MORA_OK) st = mora_st_write(paths[0], model, 2 * a->count, keys, values, 4);
    if (st == MORA_OK) st = mora_st_write(paths[1], optimizer, 2 * a->count, keys + 2, values + 2, 1);
    if (st == MORA_OK) st = write_config(a, paths[2]);
    for (int k = 0; k < 3; ++k) free(arenas[k]), free(paths[k]);
    for (int i = 0; names && i < 4 * a->count; ++i) free(names[i]);
    free(model), free(optimizer), free(names), free(ops);
    return st;
}

/* ---- loading ---- */

/* Copies the F32 r̂ x r̂ tensor `name` of f into dst, or fails naming it and the problem. */
static mora_status take_tensor(const mora_st_file *f, const char *file, const char *name, int64_t rhat, float *dst,
                               const mora_st_tensor **found) {
    const mora_st_tensor *t = mora_st_find(f, name);
    if (!t) return mora_fail(MORA_E_IO, "%s: tensor \"%s\" is missing", file, name);
    if (strcmp(t->dtype, "F32") != 0) return mora_fail(MORA_E_IO, "%s: tensor \"%s\": dtype %s, expected F32", file, name, t->dtype);
    if (t->ndim != 2 || t->shape[0] != rhat || t->shape[1] != rhat)
        return mora_fail(MORA_E_IO, "%s: tensor \"%s\": shape [%lld, %lld] (%d dimensions), the adapter's layer has r̂ = %lld",
                         file, name, t->ndim > 0 ? (long long)t->shape[0] : -1LL, t->ndim > 1 ? (long long)t->shape[1] : -1LL,
                         t->ndim, (long long)rhat);
    memcpy(dst, t->data, (size_t)t->bytes);
    if (found) *found = t;
    return MORA_OK;
}

static int ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Each layer's type from "1,1,6" (libmora's metadata: one id per layer of the file, in the order of
 * the file's lora_A tensors' data, which is the order its writer held the layers in), or every
 * layer's from the config's mora_type. A layer takes the id of its own tensor's place in the file,
 * so an adapter whose layers are in another order than the writer's still gets each its own type. */
static mora_status read_types(mora_adapter *a, const mora_st_file *model, const char *folder, mora_op *types) {
    const char *ops = mora_st_meta(model, "libmora.ops");
    if (ops) {
        int held = 0; /* the file's layers: its lora_A tensors */
        for (int k = 0; k < model->count; ++k) held += ends_with(model->tensors[k].name, ".lora_A.weight");
        long *ids = calloc((size_t)(held > 0 ? held : 1), sizeof *ids);
        if (!ids) return mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
        const char *p = ops;
        mora_status st = MORA_OK;
        for (int i = 0; i < held && st == MORA_OK; ++i) {
            char *end = NULL;
            ids[i] = strtol(p, &end, 10);
            if (end == p || ids[i] < 0 || ids[i] >= MORA_OP_COUNT || (i + 1 < held ? *end != ',' : *end != '\0'))
                st = mora_fail(MORA_E_IO, "%s/" MODEL_FILE ": __metadata__ libmora.ops=\"%.200s\": expected %d type ids (one per lora_A tensor)",
                               folder, ops, held);
            p = end + 1;
        }
        for (int i = 0; i < a->count && st == MORA_OK; ++i) {
            char *name = tensor_name("base_model.model.", a->layers[i].name, ".lora_A.weight");
            const mora_st_tensor *t = name ? mora_st_find(model, name) : NULL;
            free(name);
            if (!t) {
                st = mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
                break;
            }
            int place = 0;
            for (int k = 0; k < model->count; ++k)
                place += ends_with(model->tensors[k].name, ".lora_A.weight") && model->tensors[k].data < t->data;
            types[i] = (mora_op)ids[place];
        }
        free(ids);
        return st;
    }
    char *path = join(folder, CONFIG_FILE);
    if (!path) return mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
    json_error_t jerr;
    json_t *config = json_load_file(path, 0, &jerr);
    mora_status st = MORA_OK;
    const json_t *type = config ? json_object_get(config, "mora_type") : NULL;
    if (!config) st = mora_fail(MORA_E_IO, "%s: %s", path, jerr.text);
    else if (!json_is_true(json_object_get(config, "use_mora")))
        st = mora_fail(MORA_E_IO, "%s: \"use_mora\" is not true: not a MoRA adapter", path);
    else if (!json_is_integer(type) || json_integer_value(type) < 0 || json_integer_value(type) >= MORA_OP_COUNT)
        st = mora_fail(MORA_E_IO, "%s: \"mora_type\" is not a type id 0..%d", path, MORA_OP_COUNT - 1);
    for (int i = 0; i < a->count && st == MORA_OK; ++i) types[i] = (mora_op)json_integer_value(type);
    json_decref(config);
    free(path);
    return st;
}

mora_status mora_adapter_load(mora_adapter *a, const char *folder) {
    mora_error_clear();
    MORA_CHECK_ADAPTER(a);
    MORA_CHECK_PTR(folder);
    char *model_path = join(folder, MODEL_FILE), *optimizer_path = join(folder, OPTIMIZER_FILE);
    float *staged[3] = {calloc((size_t)a->total, 4), calloc((size_t)a->total, 4), calloc((size_t)a->total, 4)};
    float *lora_b = NULL;
    mora_op *types = calloc((size_t)a->count, sizeof *types);
    mora_plan **plans = calloc((size_t)a->count, sizeof *plans);
    void *model_bytes = NULL, *optimizer_bytes = NULL;
    size_t model_size = 0, optimizer_size = 0;
    mora_st_file model = {0}, optimizer = {0};
    int64_t steps = 0;
    mora_status st = MORA_OK;
    if (!model_path || !optimizer_path || !staged[0] || !staged[1] || !staged[2] || !types || !plans)
        st = mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
    if (st == MORA_OK) st = mora_read_file(model_path, MAX_FILE_BYTES, &model_bytes, &model_size);
    if (st == MORA_OK) st = mora_st_parse(model_bytes, model_size, model_path, &model);
    for (int i = 0; i < a->count && st == MORA_OK; ++i) {
        const adapter_layer *l = &a->layers[i];
        char *na = tensor_name("base_model.model.", l->name, ".lora_A.weight");
        char *nb = tensor_name("base_model.model.", l->name, ".lora_B.weight");
        const int64_t r2 = l->shape.rhat * l->shape.rhat;
        free(lora_b);
        lora_b = malloc((size_t)r2 * sizeof *lora_b);
        if (!na || !nb || !lora_b) st = mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
        if (st == MORA_OK) st = take_tensor(&model, model_path, na, l->shape.rhat, staged[0] + l->offset, NULL);
        if (st == MORA_OK) st = take_tensor(&model, model_path, nb, l->shape.rhat, lora_b, NULL);
        if (st == MORA_OK && memcmp(lora_b, staged[0] + l->offset, (size_t)r2 * sizeof *lora_b) != 0)
            st = mora_fail(MORA_E_IO, "%s: tensors \"%s\" and \"%s\" differ; MoRA stores the one M twice", model_path, na, nb);
        free(na), free(nb);
    }
    if (st == MORA_OK) st = read_types(a, &model, folder, types);
    const char *step_text = st == MORA_OK ? mora_st_meta(&model, "libmora.step") : NULL;
    if (step_text) {
        char *end = NULL;
        steps = strtoll(step_text, &end, 10);
        if (end == step_text || *end || steps < 0)
            st = mora_fail(MORA_E_IO, "%s: __metadata__ libmora.step=\"%.40s\" is not a step count", model_path, step_text);
    }
    /* the optimizer's state: optional */
    if (st == MORA_OK) {
        const mora_status read = mora_read_file(optimizer_path, MAX_FILE_BYTES, &optimizer_bytes, &optimizer_size);
        if (read == MORA_E_NOT_FOUND) {
            steps = 0; /* a fresh optimizer: torch's AdamW counts from 0 again */
            mora_error_clear();
        } else {
            st = read;
            if (st == MORA_OK) st = mora_st_parse(optimizer_bytes, optimizer_size, optimizer_path, &optimizer);
            for (int i = 0; i < a->count && st == MORA_OK; ++i) {
                const adapter_layer *l = &a->layers[i];
                char *nm = tensor_name("", l->name, ".exp_avg"), *nv = tensor_name("", l->name, ".exp_avg_sq");
                if (!nm || !nv) st = mora_fail(MORA_E_NO_MEMORY, "checkpoint: out of host memory");
                if (st == MORA_OK) st = take_tensor(&optimizer, optimizer_path, nm, l->shape.rhat, staged[1] + l->offset, NULL);
                if (st == MORA_OK) st = take_tensor(&optimizer, optimizer_path, nv, l->shape.rhat, staged[2] + l->offset, NULL);
                free(nm), free(nv);
            }
        }
    }
    /* plans for the loaded types (may compile); then, with nothing left to fail, the adapter */
    for (int i = 0; i < a->count && st == MORA_OK; ++i) {
        mora_shape s = a->layers[i].shape;
        s.op = types[i];
        if (mora_shape_check(&s) != MORA_OK) {
            st = mora_fail(MORA_E_IO, "%s: layer \"%s\": type %d does not fit its shape (%s)", model_path, a->layers[i].name,
                           (int)types[i], mora_last_error());
            break;
        }
        st = mora_adapter_plan_for(a, &s, a->layers[i].dtype, a->layers[i].w_dtype, &plans[i]);
    }
    const mora_arena which[3] = {MORA_ARENA_PARAMS, MORA_ARENA_EXP_AVG, MORA_ARENA_EXP_AVG_SQ};
    for (int k = 0; k < 3 && st == MORA_OK; ++k)
        st = mora_context_buffer_write(a->ctx, a->arenas[which[k]], 0, staged[k], (size_t)a->total * sizeof(float));
    if (st == MORA_OK) {
        for (int i = 0; i < a->count; ++i) a->layers[i].shape.op = types[i], a->layers[i].plan = plans[i];
        a->steps = steps;
        a->clipped = 0;
        mora_error_clear();
    }
    mora_st_file_free(&model), mora_st_file_free(&optimizer);
    free(model_bytes), free(optimizer_bytes), free(model_path), free(optimizer_path), free(lora_b), free(types), free(plans);
    for (int k = 0; k < 3; ++k) free(staged[k]);
    return st;
}
