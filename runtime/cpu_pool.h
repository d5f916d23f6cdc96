/* Internal: the host kernels' worker threads — one pool per process, started on first use and kept,
 * so a call pays no thread start (a create and join cost tens of µs, as much as a small layer's
 * whole adapter). Workers sleep on a condition variable between calls: idle, they take no CPU from
 * the caller's own threads or a BLAS's. */
#ifndef MORA_RUNTIME_CPU_POOL_H
#define MORA_RUNTIME_CPU_POOL_H

/* Runs fn(arg, w) for w = 0 .. workers-1 and returns when all have: w = 0 on the calling thread, the
 * others on pool threads. When the pool is busy with another call (plans used from several threads
 * at once), or a thread cannot be started, the rest run on the calling thread one after another:
 * the same work items with the same indices, so results never depend on which thread ran them. */
void mora_cpu_pool_run(int workers, void (*fn)(void *arg, int w), void *arg);

#endif
