/* What the fake GPU runtimes (fake_cuda_driver.c, fake_hip_runtime.c) count and record; read by
 * test_backend_fake.c through dlsym on the loaded fake. */
#ifndef MORA_TESTS_FAKE_GPU_H
#define MORA_TESTS_FAKE_GPU_H

#include <stddef.h>

#define FAKE_MAX_ARGS 16

typedef struct fake_gpu_stats {
    int contexts_retained;     /* CUDA: retains minus releases of the primary context */
    int depth;                 /* CUDA: contexts pushed and not popped yet */
    int max_depth;             /* CUDA: deepest context stack seen */
    int unbalanced_pops;       /* CUDA: pops with nothing pushed */
    int calls_without_context; /* calls made without the device's context (CUDA) or device (HIP) current */
    int bad_pointers;          /* frees / copies of memory the runtime did not allocate */
    int live_allocations, live_modules, live_streams, live_events;
    int elf_modules;           /* modules loaded from an ELF image (CUBIN / code object) */
    int synchronizations, events_recorded, launches;
    int allocation_calls, free_calls, module_loads; /* every call, whatever became of it */
    char last_entry[64];
    unsigned last_dims[6];     /* grid x y z, block x y z */
    void *last_stream;
    int last_arg_count;
    unsigned char last_args[FAKE_MAX_ARGS][8];
} fake_gpu_stats;

/* The counters of the loaded fake. */
fake_gpu_stats *fake_gpu_state(void);
/* A valid stream of another context / device, which the backend must refuse to adopt (NULL: none). */
void *fake_gpu_foreign_stream(void);
/* A device allocation of `bytes` made by another context (CUDA) / on another device (HIP), which
 * the backend must refuse as a call's buffer; kept (in the fake's table) until the process ends. */
void *fake_gpu_foreign_allocation(size_t bytes);

#endif
