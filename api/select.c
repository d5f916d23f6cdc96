/* Which parameters a plan uses for each kernel kind, without tuning, on every backend: the kernels
 * cache's record for this device, shape and token-count bucket (the nearest bucket when that one is
 * absent), then the database shipped with the library (device → arch → vendor), then the declared
 * defaults.
 * Tuning happens only when asked (mora_plan_autotune, the plan option, or MORA_AUTOTUNE=1). */
#include <string.h>

#include "error.h"
#include "plan_internal.h"
#include "db.h"
#include "programs.h"
#include "tuner.h"

/* Token buckets are powers of two from 1 to 2^20 (mora_tuning_key). */
#define BUCKET_LOG_MAX 20

/* The token buckets to look in, as powers of two: tokens' own first, then the others by distance
 * (the larger first at equal distance). Returns how many (BUCKET_LOG_MAX + 1). */
static int bucket_order(int64_t tokens, int64_t order[BUCKET_LOG_MAX + 1]) {
    int own = 0, count = 0;
    while (own < BUCKET_LOG_MAX && ((int64_t)1 << own) < tokens) ++own;
    for (int distance = 0; distance <= BUCKET_LOG_MAX; ++distance)
        for (int side = 0; side < (distance ? 2 : 1); ++side) {
            const int log = side == 0 ? own + distance : own - distance;
            if (log >= 0 && log <= BUCKET_LOG_MAX) order[count++] = (int64_t)1 << log;
        }
    return count;
}

const char *mora_select_params(mora_context *ctx, mora_kernel_spec *spec, int64_t tokens) {
    mora_cache *cache = mora_context_cache(ctx);
    if (cache && mora_cache_enabled(cache)) {
        int64_t buckets[BUCKET_LOG_MAX + 1];
        const int count = bucket_order(tokens, buckets);
        for (int i = 0; i < count; ++i) {
            char key[1024];
            mora_tuning_key(ctx, spec->kind, &spec->shape, spec->dtype, buckets[i], key, sizeof key);
            mora_tuning_record rec;
            if (mora_cache_record_load(cache, key, &rec) != MORA_OK) continue;
            mora_kernel_spec candidate = *spec;
            if (mora_spec_apply_record(&candidate, &rec) == MORA_OK && mora_space_valid(&candidate, &ctx->info)) {
                *spec = candidate;
                mora_error_clear();
                return "cache";
            }
            /* the cache's load already rejects records with a bad checksum or values no tuner can
             * produce (mora_cache_record_check); what it cannot see is this device: a record whose
             * parameters break the device's limits or the space's rules was not written by a tuner
             * here, so it is removed with a warning, like any bad entry, and tuned again when asked */
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
