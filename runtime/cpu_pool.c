/* The host kernels' worker pool (see cpu_pool.h). One generation per call: the caller publishes the
 * work, bumps the generation and wakes every pool thread; thread i runs item i + 1 when there is
 * one, and the last to finish wakes the caller. A child process after fork() has none of the
 * parent's threads: pthread_atfork resets the pool there, and it starts again on first use. */
#include "cpu_pool.h"

#include <pthread.h>
#include <string.h>

#define POOL_MAX_THREADS 63 /* with the caller: MORA_CPU_MAX_THREADS workers */

static struct {
    pthread_mutex_t busy;   /* held by the call that uses the pool */
    pthread_mutex_t lock;   /* guards everything below */
    pthread_cond_t start, done;
    int threads;            /* started so far */
    unsigned long generation;
    unsigned long born[POOL_MAX_THREADS]; /* the generation each thread was started in: it waits for the next */
    int workers;            /* items of the current call */
    int pending;            /* pool threads still running an item of it */
    void (*fn)(void *, int);
    void *arg;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          0, 0, {0}, 0, 0, NULL, NULL};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void reset_in_child(void) {
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.start, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.threads = 0;
    pool.pending = 0;
    pool.workers = 0;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, reset_in_child); }

static void *pool_thread(void *arg) {
    const int index = (int)(long)arg; /* runs item index + 1 */
    pthread_mutex_lock(&pool.lock);
    unsigned long seen = pool.born[index]; /* not pool.generation: the call that started it may have begun already */
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.start, &pool.lock);
        seen = pool.generation;
        if (index + 1 >= pool.workers) continue;
        void (*fn)(void *, int) = pool.fn;
        void *work = pool.arg;
        pthread_mutex_unlock(&pool.lock);
        fn(work, index + 1);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

/* Starts pool threads up to `count` (with the lock held); returns how many there are. */
static int grow(int count) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (pool.threads < count) {
        pthread_t t;
        pool.born[pool.threads] = pool.generation;
        if (pthread_create(&t, &attr, pool_thread, (void *)(long)pool.threads) != 0) break;
        ++pool.threads;
    }
    pthread_attr_destroy(&attr);
    return pool.threads;
}

void mora_cpu_pool_run(int workers, void (*fn)(void *arg, int w), void *arg) {
    if (workers > POOL_MAX_THREADS + 1) workers = POOL_MAX_THREADS + 1;
    if (workers <= 1 || pthread_mutex_trylock(&pool.busy) != 0) {
        for (int w = 0; w < workers || w == 0; ++w) fn(arg, w);
        return;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&pool.lock);
    const int helpers = grow(workers - 1); /* may start fewer: the rest run here */
    const int on_pool = helpers < workers - 1 ? helpers : workers - 1;
    pool.fn = fn;
    pool.arg = arg;
    pool.workers = on_pool + 1;
    pool.pending = on_pool;
    ++pool.generation;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.lock);
    fn(arg, 0);
    for (int w = on_pool + 1; w < workers; ++w) fn(arg, w); /* items no thread could take */
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}
