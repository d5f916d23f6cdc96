/* Which parameters a layer uses for each kernel kind, without tuning: the kernels cache's record
 * for this device and shape, then the database shipped with the library (device → arch → vendor),
 * then the declared defaults. Tuning happens only when asked (MORA_AUTOTUNE=1 or
 * mora_layer_autotune).
 *
 * The cache's load already rejects records with a bad checksum or values no tuner can produce
 * (mora_cache_record_check); what it cannot see is this device: a record whose parameters do not
 * fit the device's limits (work-group size, local memory) or the space's rules was not written by
 * a tuner on this device, so it is removed with a warning, like any bad entry, and the next
 * MORA_AUTOTUNE / mora_layer_autotune tunes the kind again instead of the layer quietly running
 * the defaults forever. */
#include <string.h>

#include "context.h"
#include "error.h"
#include "tuner.h"

const char *mora_select_params(mora_context *ctx, mora_kernel_spec *spec) {
    mora_cache *cache = mora_context_cache(ctx);
    if (cache && mora_cache_enabled(cache)) {
        /* the bucket of the device's default token count first, then every other bucket, large to small */
        const int64_t preferred = mora_default_tune_tokens(ctx);
        int64_t tries[32];
        int count = 0;
        tries[count++] = preferred;
        for (int64_t t = (int64_t)1 << 20; t >= 1; t /= 2)
            if (t != preferred) tries[count++] = t;
        for (int i = 0; i < count; ++i) {
            char key[1024];
            mora_tuning_key(ctx, spec->kind, &spec->shape, spec->dtype, tries[i], key, sizeof key);
            mora_tuning_record rec;
            if (mora_cache_record_load(cache, key, &rec) != MORA_OK) continue;
            mora_kernel_spec candidate = *spec;
            if (mora_spec_apply_record(&candidate, &rec) == MORA_OK && mora_space_valid(&candidate, &ctx->info)) {
                *spec = candidate;
                return "cache";
            }
            /* the reason: the spec check's sentence, or the space's pruning rules */
            const char *why = mora_spec_check(&candidate, ctx->info.max_work_group, ctx->info.local_mem_bytes) != MORA_OK
                                  ? mora_last_error()
                                  : "outside the tuner's search space for this device";
            mora_log(MORA_LOG_WARNING, "kernels cache: record for kind %s, key %s: %s; removed, will be re-tuned",
                     mora_kind_name(spec->kind), key, why);
            (void)mora_cache_record_remove(cache, key);
        }
    }
    mora_kernel_spec candidate = *spec;
    const char *matched = NULL;
    if (mora_db_lookup(ctx->be->name, ctx->info.name, ctx->info.arch, ctx->info.vendor, &candidate, &matched) == MORA_OK &&
        mora_space_valid(&candidate, &ctx->info)) {
        *spec = candidate;
        return "database";
    }
    mora_error_clear();
    return "default";
}
