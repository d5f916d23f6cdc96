/* libFuzzer target: the checkpoint loader (train/safetensors.c, train/checkpoint.c).
 *   first byte even: the rest is a safetensors file, parsed from memory (mora_st_parse);
 *   first byte odd:  the rest is written as a checkpoint folder's adapter_model.safetensors (with a
 *                    valid adapter_config.json beside it) and loaded into a small adapter on the cpu
 *                    backend (mora_adapter_load).
 * Invariants: a parse gives MORA_OK or MORA_E_IO; a parsed tensor lies inside the input, has
 * shape·dtype bytes and no other tensor overlaps it; a load gives MORA_OK or MORA_E_IO (or
 * MORA_E_NOT_FOUND), and a failed load leaves the adapter's parameters as they were. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include "fuzz_common.h"
#include "safetensors.h"

static mora_context *ctx;
static mora_adapter *adapter;
static char folder[1024], model_path[1100];
static float *before, *after;
static int64_t arena_floats;
static void *params;

static const mora_adapter_layer_desc layers[2] = {
    {"model.layers.0.self_attn.q_proj", 16, 16, 0, 4, MORA_OP_ROPE, MORA_F32, MORA_F32},
    {"model.layers.0.mlp.up_proj", 16, 24, 0, 2, MORA_OP_SHARE, MORA_F32, MORA_F32},
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    mora_set_log_callback(fuzz_quiet_log, NULL);
    if (mora_context_create("cpu", 0, &ctx) != MORA_OK || mora_adapter_create(ctx, layers, 2, 4, NULL, &adapter) != MORA_OK ||
        mora_adapter_arena(adapter, MORA_ARENA_PARAMS, &params, &arena_floats) != MORA_OK)
        abort();
    before = malloc((size_t)arena_floats * sizeof *before);
    after = malloc((size_t)arena_floats * sizeof *after);
    for (int64_t i = 0; i < arena_floats; ++i) before[i] = (float)i * 0.25f;
    if (mora_buffer_write(ctx, params, 0, before, (size_t)arena_floats * sizeof *before) != MORA_OK) abort();
    snprintf(folder, sizeof folder, "%s/ckpt", fuzz_scratch_dir());
    if (mkdir(folder, 0700) != 0) abort();
    snprintf(model_path, sizeof model_path, "%s/adapter_model.safetensors", folder);
    char config[1100];
    snprintf(config, sizeof config, "%s/adapter_config.json", folder);
    FILE *f = fopen(config, "w");
    if (!f) abort();
    fputs("{\"peft_type\": \"LORA\", \"use_mora\": true, \"mora_type\": 1, \"r\": 1}", f);
    fclose(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t *body = data + 1;
    const size_t length = size - 1;
    if ((data[0] & 1) == 0) {
        mora_st_file f;
        const mora_status st = mora_st_parse(body, length, "input", &f);
        FUZZ_ASSERT(st == MORA_OK || st == MORA_E_IO);
        if (st != MORA_OK) return 0;
        for (int i = 0; i < f.count; ++i) {
            const mora_st_tensor *t = &f.tensors[i];
            FUZZ_ASSERT(t->data >= body && t->data + t->bytes <= body + length);
            uint64_t elements = 1;
            for (int d = 0; d < t->ndim; ++d) elements *= (uint64_t)t->shape[d];
            FUZZ_ASSERT(elements * mora_st_dtype_size(t->dtype) == t->bytes);
            for (int j = 0; j < i; ++j) {
                const mora_st_tensor *u = &f.tensors[j];
                FUZZ_ASSERT(t->bytes == 0 || u->bytes == 0 || t->data + t->bytes <= u->data || u->data + u->bytes <= t->data);
            }
            FUZZ_ASSERT(mora_st_find(&f, t->name) != NULL);
        }
        mora_st_file_free(&f);
        return 0;
    }
    FILE *out = fopen(model_path, "wb");
    if (!out) abort();
    if (length && fwrite(body, 1, length, out) != length) abort();
    fclose(out);
    const mora_status st = mora_adapter_load(adapter, folder);
    FUZZ_ASSERT(st == MORA_OK || st == MORA_E_IO || st == MORA_E_NOT_FOUND);
    if (mora_buffer_read(ctx, params, 0, after, (size_t)arena_floats * sizeof *after) != MORA_OK) abort();
    if (st != MORA_OK) {
        FUZZ_ASSERT(memcmp(before, after, (size_t)arena_floats * sizeof *after) == 0);
    } else { /* a good file was loaded: it is the new "before" */
        memcpy(before, after, (size_t)arena_floats * sizeof *after);
    }
    return 0;
}
