/* backends/cpu/threadpool.c — a fork-join pool for the CPU kernels.
 *
 * A decode step runs ~300 parallel regions of a few microseconds each, so a
 * run must cost well under a microsecond when the workers are awake, and must
 * not stall when a worker is late (asleep, or preempted on a busy machine):
 *  - a run has n shares (fn(ctx, i, n) for i < n). The caller publishes
 *    (fn, ctx), resets `done` and `next_share`, and bumps `gen`. Every
 *    thread, the caller included, claims shares with fetch_add(next_share)
 *    until they run out, so each share runs exactly once, on whichever
 *    thread gets to it first; a worker that wakes late finds none left and
 *    the caller never waits for a thread that has not started;
 *  - the caller returns when `done` (shares finished) reaches n. Ordering:
 *    fn/ctx are written before the release reset of next_share, a claim is
 *    an acquire RMW on it; each finished share is a release RMW on done, the
 *    caller reads done with acquire, so all writes of fn are visible after;
 *  - idle workers spin on `gen`, yield the CPU after SX_TP_YIELD_NS (at once
 *    when there are more threads than cores), and sleep on work_cv after
 *    SX_TP_SPIN_NS. Sleepers are woken only when n_sleeping > 0: a worker
 *    increments n_sleeping then re-reads gen under the mutex, the caller bumps
 *    gen then reads n_sleeping (both seq_cst), so no wake-up is lost. The
 *    caller waiting on a long share sleeps on done_cv the same way.
 * Tested by tests/test_cpu_fast.c (10k runs, counter and visibility checks,
 * TSan clean).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "backends/cpu/cpu_fast.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SX_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define SX_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define SX_CPU_RELAX() ((void)0)
#endif

/* How long an idle worker spins before sleeping, and how long the caller
 * spins on a late worker before it sleeps. */
#define SX_TP_SPIN_NS 200000LL
#define SX_TP_WAIT_SPIN_NS 2000000LL
/* After this long spinning, yield the CPU between checks (other processes,
 * or our own descheduled threads, may be waiting for it). */
#define SX_TP_YIELD_NS 20000LL

typedef struct sx_tp_worker {
    struct sx_threadpool *tp;
    pthread_t thread;
    int index;
    bool started;
} sx_tp_worker;

struct sx_threadpool {
    int n; /* threads including the caller */
    bool pin;
    bool caller_pinned;       /* pin: caller_thread is bound to core 0 */
    pthread_t caller_thread;
    bool oversubscribed; /* more threads than CPUs: yield while spinning */
    sx_tp_worker *workers; /* [n - 1], worker i has index i + 1 */

    /* written by the caller before bumping gen */
    sx_parallel_fn fn;
    void *ctx;

    _Alignas(64) _Atomic unsigned gen; /* bumped once per run */
    _Atomic int stop;
    _Alignas(64) _Atomic int next_share; /* next share index to claim (>= n: none left) */
    _Alignas(64) _Atomic int done;       /* shares finished in the current run */
    _Alignas(64) _Atomic int n_sleeping; /* workers waiting on work_cv */
    _Atomic int caller_sleeping;         /* caller waiting on done_cv */

    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;

    void *scratch;
    size_t scratch_size;
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits until gen != seen (or stop); returns the new gen. */
static unsigned wait_for_work(sx_threadpool *tp, unsigned seen) {
    int64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        unsigned g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&tp->stop, memory_order_relaxed)) return g;
        SX_CPU_RELAX();
        if ((i & 255) == 0) {
            int64_t t = now_ns();
            if (t0 == 0) t0 = t;
            else if (t - t0 > SX_TP_SPIN_NS) break;
            else if (tp->oversubscribed || t - t0 > SX_TP_YIELD_NS) sched_yield(); /* a thread we wait for may need this CPU */
        }
    }
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add(&tp->n_sleeping, 1); /* seq_cst: pairs with the caller */
    unsigned g;
    while ((g = atomic_load(&tp->gen)) == seen && !atomic_load(&tp->stop))
        pthread_cond_wait(&tp->work_cv, &tp->mu);
    atomic_fetch_sub(&tp->n_sleeping, 1);
    pthread_mutex_unlock(&tp->mu);
    return g;
}

/* Claims and runs shares of the current run until none are left. */
static void run_shares(sx_threadpool *tp) {
    const int n = tp->n;
    for (;;) {
        const int i = atomic_fetch_add_explicit(&tp->next_share, 1, memory_order_acq_rel);
        if (i >= n) return;
        tp->fn(tp->ctx, i, n);
        if (atomic_fetch_add(&tp->done, 1) + 1 == n && /* seq_cst: pairs with wait_done */
            atomic_load(&tp->caller_sleeping)) {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->done_cv);
            pthread_mutex_unlock(&tp->mu);
        }
    }
}

static void *worker_main(void *arg) {
    sx_tp_worker *w = (sx_tp_worker *)arg;
    sx_threadpool *tp = w->tp;
    if (tp->pin && !sx_cpu_pin_current_thread(w->index))
        SX_LOGD("threadpool: could not pin worker %d", w->index);
    unsigned seen = 0; /* gen starts at 0 */
    for (;;) {
        seen = wait_for_work(tp, seen);
        if (atomic_load_explicit(&tp->stop, memory_order_acquire)) break;
        run_shares(tp);
    }
    return NULL;
}

static void wake_workers(sx_threadpool *tp) {
    if (atomic_load(&tp->n_sleeping) > 0) { /* seq_cst, after the gen store */
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->work_cv);
        pthread_mutex_unlock(&tp->mu);
    }
}

static void wait_done(sx_threadpool *tp) {
    int64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&tp->done, memory_order_acquire) == tp->n) return;
        SX_CPU_RELAX();
        if ((i & 255) == 0) {
            int64_t t = now_ns();
            if (t0 == 0) t0 = t;
            else if (t - t0 > SX_TP_WAIT_SPIN_NS) break;
            else if (tp->oversubscribed || t - t0 > SX_TP_YIELD_NS) sched_yield(); /* a worker may need our CPU */
        }
    }
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->caller_sleeping, 1); /* seq_cst: pairs with the worker's increment */
    while (atomic_load(&tp->done) != tp->n) pthread_cond_wait(&tp->done_cv, &tp->mu);
    atomic_store(&tp->caller_sleeping, 0);
    pthread_mutex_unlock(&tp->mu);
}

void sx_threadpool_run(sx_threadpool *tp, sx_parallel_fn fn, void *ctx) {
    if (!tp || tp->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    if (tp->pin && (!tp->caller_pinned || !pthread_equal(tp->caller_thread, pthread_self()))) {
        /* Workers own cores 1..n-1; the caller takes core 0, else it may sit
         * on a worker's core and the two take turns (measured: 8x slower). */
        tp->caller_pinned = sx_cpu_pin_current_thread(0);
        tp->caller_thread = pthread_self();
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->done, 0, memory_order_relaxed);
    atomic_store_explicit(&tp->next_share, 0, memory_order_release); /* publishes fn, ctx, done */
    atomic_fetch_add(&tp->gen, 1);                                   /* seq_cst: pairs with n_sleeping */
    wake_workers(tp);
    run_shares(tp);
    wait_done(tp);
}

int sx_threadpool_size(const sx_threadpool *tp) { return tp ? tp->n : 1; }

sx_status sx_threadpool_create(int n_threads, bool pin, sx_threadpool **out) {
    if (!out) return sx_set_error(SX_ERR_INVALID_ARG, "threadpool: out is NULL");
    *out = NULL;
    if (n_threads < 0 || n_threads > 1024)
        return sx_set_error(SX_ERR_INVALID_ARG, "threadpool: n_threads=%d", n_threads);
    if (n_threads == 0) n_threads = sx_cpu_physical_cores();
    sx_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "threadpool");
    tp->n = n_threads;
    tp->pin = pin;
    tp->oversubscribed = n_threads > sx_cpu_physical_cores();
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->stop, 0);
    atomic_init(&tp->next_share, n_threads); /* nothing to claim before the first run */
    atomic_init(&tp->done, 0);
    atomic_init(&tp->n_sleeping, 0);
    atomic_init(&tp->caller_sleeping, 0);
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->work_cv, NULL);
    pthread_cond_init(&tp->done_cv, NULL);
    if (n_threads > 1) {
        tp->workers = calloc((size_t)n_threads - 1, sizeof *tp->workers);
        if (!tp->workers) {
            sx_threadpool_destroy(tp);
            return sx_set_error(SX_ERR_OUT_OF_MEMORY, "threadpool: %d workers", n_threads);
        }
        for (int i = 0; i < n_threads - 1; i++) {
            sx_tp_worker *w = &tp->workers[i];
            w->tp = tp;
            w->index = i + 1;
            int rc = pthread_create(&w->thread, NULL, worker_main, w);
            if (rc != 0) {
                sx_threadpool_destroy(tp);
                return sx_set_error(SX_ERR_BACKEND, "threadpool: pthread_create failed (%s)",
                                    strerror(rc));
            }
            w->started = true;
        }
    }
    *out = tp;
    return SX_OK;
}

void sx_threadpool_destroy(sx_threadpool *tp) {
    if (!tp) return;
    atomic_store(&tp->stop, 1);
    atomic_fetch_add(&tp->gen, 1);
    pthread_mutex_lock(&tp->mu);
    pthread_cond_broadcast(&tp->work_cv);
    pthread_mutex_unlock(&tp->mu);
    if (tp->workers)
        for (int i = 0; i < tp->n - 1; i++)
            if (tp->workers[i].started) pthread_join(tp->workers[i].thread, NULL);
    free(tp->workers);
    pthread_cond_destroy(&tp->work_cv);
    pthread_cond_destroy(&tp->done_cv);
    pthread_mutex_destroy(&tp->mu);
    free(tp->scratch);
    free(tp);
}

/* The scratch of calls without a pool: one per thread, freed when the
 * thread exits (workers running one matmul each, a server's request
 * threads), through a key's destructor. */
typedef struct { void *buf; size_t size; } tls_scratch;
static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
static bool g_scratch_key_ok;

static void tls_scratch_free(void *p) {
    tls_scratch *t = p;
    free(t->buf);
    free(t);
}

static void scratch_key_init(void) { g_scratch_key_ok = pthread_key_create(&g_scratch_key, tls_scratch_free) == 0; }

static void *grow(void **buf, size_t *size, size_t bytes) {
    if (bytes <= *size && *buf) return *buf;
    size_t want = bytes + bytes / 4 + 64;
    want = (want + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, want);
    if (!p) return NULL;
    free(*buf);
    *buf = p;
    *size = want;
    return p;
}

void *sx_threadpool_scratch(sx_threadpool *tp, size_t bytes) {
    if (!tp) {
        pthread_once(&g_scratch_once, scratch_key_init);
        if (!g_scratch_key_ok) return NULL;
        tls_scratch *t = pthread_getspecific(g_scratch_key);
        if (!t) {
            if (!(t = calloc(1, sizeof *t))) return NULL;
            if (pthread_setspecific(g_scratch_key, t) != 0) {
                free(t);
                return NULL;
            }
        }
        return grow(&t->buf, &t->size, bytes);
    }
    return grow(&tp->scratch, &tp->scratch_size, bytes);
}
