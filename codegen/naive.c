/* The naive baseline kernels (templates/naive.kern): the same assembly as every generated kernel —
 * dialect layer, the shape's compile-time constants, common.kern — followed by naive.kern instead of
 * a kind's tiled template. mora-bench measures the tuned kernels against them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels.h"

mora_status mora_codegen_naive(const mora_kernel_spec *spec, char **source) {
    MORA_CHECK_PTR(spec);
    MORA_CHECK_PTR(source);
    if ((int)spec->kind < 0 || (int)spec->kind >= MORA_KIND_COUNT)
        return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: no naive kernel (fwd, bwd_dx, bwd_dm, merge have one)", (int)spec->kind);
    if (spec->dialect == MORA_DIALECT_HOST)
        return mora_fail(MORA_E_UNSUPPORTED, "dialect host: the naive kernels are generated for opencl, cuda and hip only");
    /* the kind's declared defaults get #defined (unused by naive.kern), so that the spec's own
     * parameter values cannot make the generation fail */
    const mora_kernel_spec naive = mora_spec_default(&spec->shape, spec->dtype, spec->kind, spec->dialect);
    char *body = NULL;
    /* naive.kern's one entry point runs work-groups of MORA_NAIVE_LS: that is its launch bound (the
     * kind's own entry points, whose work-group sizes mora_codegen_template would state, are absent) */
    MORA_TRY(mora_codegen_template_bounded(&naive, "naive.kern", MORA_NAIVE_LS, &body));
    char banner[160];
    const int banner_length =
        snprintf(banner, sizeof banner,
                 "// naive baseline kernel (templates/naive.kern): one work-item per output, no tiling\n"
                 "#define NAIVE_KIND %d\n",
                 (int)spec->kind);
    const size_t length = strlen(body);
    char *text = malloc((size_t)banner_length + length + 1);
    if (!text) {
        free(body);
        return mora_fail(MORA_E_NO_MEMORY, "naive code generation: out of memory");
    }
    memcpy(text, banner, (size_t)banner_length);
    memcpy(text + banner_length, body, length + 1);
    free(body);
    *source = text;
    return MORA_OK;
}
