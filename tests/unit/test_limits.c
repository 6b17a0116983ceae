/* Unit tests for limits: rpm/tpm windows, parallel requests, all-or-nothing admission,
 * exactness under threads, idle expiry, and budget reservations. Time is injected. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limits/limits.h"

/* sanitizers slow the locks 2-20x: the timing bound only holds for normal builds */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* 2026-01-01T00:00:00Z */
#define T0 1767225600.0

static lim *new_lim(void)
{
    lim_options o = {.window_s = 60};
    lim *l = lim_new(&o);
    assert_non_null(l);
    return l;
}

static lim_check chk(const char *key, int64_t rpm, int64_t tpm, int64_t par)
{
    return (lim_check){key, rpm, tpm, par};
}

static void test_rpm_refusal_and_reset(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_check c = chk("key:abc123", 2, LIM_UNLIMITED, LIM_UNLIMITED);
    lim_verdict v;
    double t = T0 + 0.25; /* window starts at T0 (whole seconds, as LiteLLM's int(now)) */
    assert_int_equal(lim_admit(l, &c, 1, t, &v), 1);
    assert_true(v.allowed);
    assert_int_equal(v.requests.limit, 2);
    assert_int_equal(v.requests.remaining, 1);
    assert_int_equal(v.tokens.limit, LIM_UNLIMITED);
    lim_release(l, &v.ticket);
    assert_int_equal(lim_admit(l, &c, 1, t + 10, &v), 1);
    assert_int_equal(v.requests.remaining, 0);
    lim_release(l, &v.ticket);

    assert_int_equal(lim_admit(l, &c, 1, t + 20, &v), 0);
    assert_false(v.allowed);
    assert_int_equal(v.index, 0);
    assert_int_equal(v.kind, LIM_REQUESTS);
    assert_int_equal(v.limit, 2);
    assert_int_equal(v.remaining, 0);
    assert_true(v.reset_at == T0 + 60);
    assert_int_equal(v.retry_after, 40); /* ceil(T0 + 60 - (T0 + 20.25)) */
    assert_int_equal(v.ticket.n, 0);
    assert_int_equal(v.requests.remaining, 0);
    char msg[256];
    lim_format_refusal(&v, msg, sizeof msg);
    assert_string_equal(msg, "Rate limit exceeded for api_key: abc123. Limit type: requests. "
                             "Current limit: 2, Remaining: 0. Limit resets at: 2026-01-01 "
                             "00:01:00 UTC");
    /* a refused request is not counted: still refused, same reset */
    assert_int_equal(lim_admit(l, &c, 1, t + 59.5, &v), 0);
    assert_int_equal(v.retry_after, 1);
    lim_free(l);
}

static void test_window_rollover(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_check c = chk("user:u1", 1, LIM_UNLIMITED, LIM_UNLIMITED);
    lim_verdict v;
    double first = T0 + 30.7; /* window [T0+30, T0+90) */
    assert_int_equal(lim_admit(l, &c, 1, first, &v), 1);
    lim_release(l, &v.ticket);
    assert_int_equal(lim_admit(l, &c, 1, T0 + 89.99, &v), 0);
    assert_true(v.reset_at == T0 + 90);
    /* the window is anchored to the first request, not the minute */
    assert_int_equal(lim_admit(l, &c, 1, T0 + 90, &v), 1);
    assert_true(v.status[0].reset_at == T0 + 150);
    lim_release(l, &v.ticket);
    assert_int_equal(lim_admit(l, &c, 1, T0 + 100, &v), 0);
    /* a long idle gap: the next request starts a fresh window at its own time */
    assert_int_equal(lim_admit(l, &c, 1, T0 + 1000.5, &v), 1);
    assert_true(v.status[0].reset_at == T0 + 1060);
    lim_release(l, &v.ticket);
    lim_free(l);
}

static void test_tpm(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_check c = chk("key:t", LIM_UNLIMITED, 100, LIM_UNLIMITED);
    lim_verdict v;
    assert_int_equal(lim_admit(l, &c, 1, T0, &v), 1);
    assert_int_equal(v.tokens.limit, 100);
    assert_int_equal(v.tokens.remaining, 100);
    assert_int_equal(v.requests.limit, LIM_UNLIMITED);
    lim_add_tokens(l, &v.ticket, 60, T0 + 1);
    lim_release(l, &v.ticket);
    /* 60 < 100: still admitted (TPM is checked pre-call against what is already used) */
    assert_int_equal(lim_admit(l, &c, 1, T0 + 2, &v), 1);
    assert_int_equal(v.tokens.remaining, 40);
    lim_add_tokens(l, &v.ticket, 50, T0 + 3);
    lim_release(l, &v.ticket);
    lim_add_tokens(l, &v.ticket, 1000, T0 + 3); /* released ticket: no-op */

    lim_verdict r;
    lim_remaining(l, &c, 1, T0 + 4, &r);
    assert_int_equal(r.tokens.limit, 100);
    assert_int_equal(r.tokens.remaining, 0);

    assert_int_equal(lim_admit(l, &c, 1, T0 + 4, &v), 0);
    assert_int_equal(v.kind, LIM_TOKENS);
    assert_int_equal(v.limit, 100);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after, 56);
    char msg[256];
    lim_format_refusal(&v, msg, sizeof msg);
    assert_non_null(strstr(msg, "Limit type: tokens. Current limit: 100, Remaining: 0."));

    /* next window */
    assert_int_equal(lim_admit(l, &c, 1, T0 + 60, &v), 1);
    assert_int_equal(v.tokens.remaining, 100);
    lim_release(l, &v.ticket);
    lim_free(l);
}

static void test_max_parallel(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_check c = chk("key:p", LIM_UNLIMITED, LIM_UNLIMITED, 2);
    lim_verdict a, b, x;
    assert_int_equal(lim_admit(l, &c, 1, T0, &a), 1);
    assert_int_equal(a.status[0].parallel.remaining, 1);
    assert_int_equal(lim_admit(l, &c, 1, T0, &b), 1);
    assert_int_equal(lim_admit(l, &c, 1, T0, &x), 0);
    assert_int_equal(x.kind, LIM_PARALLEL);
    assert_int_equal(x.limit, 2);
    assert_int_equal(x.retry_after, 1);
    char msg[256];
    lim_format_refusal(&x, msg, sizeof msg);
    assert_non_null(strstr(msg, "Limit type: max_parallel_requests. Current limit: 2"));
    lim_release(l, &a.ticket);
    lim_release(l, &a.ticket); /* double release is a no-op */
    assert_int_equal(lim_admit(l, &c, 1, T0, &x), 1);
    assert_int_equal(lim_admit(l, &c, 1, T0, &a), 0);
    lim_release(l, &b.ticket);
    lim_release(l, &x.ticket);
    lim_verdict r;
    lim_remaining(l, &c, 1, T0, &r);
    assert_int_equal(r.status[0].parallel.remaining, 2);
    lim_free(l);
}

static void test_all_or_nothing(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_check cs[4] = {
        chk("key:k", 10, LIM_UNLIMITED, 5),
        chk("user:u", LIM_UNLIMITED, LIM_UNLIMITED, LIM_UNLIMITED), /* no limits: ignored */
        chk("team:t", 1, LIM_UNLIMITED, LIM_UNLIMITED),
        {NULL, 1, 1, 1}, /* no key: ignored */
    };
    lim_verdict v;
    assert_int_equal(lim_admit(l, cs, 4, T0, &v), 1);
    assert_int_equal(v.ticket.n, 2);
    assert_int_equal(v.nstatus, 4);
    assert_int_equal(v.status[0].requests.remaining, 9);
    assert_int_equal(v.status[1].requests.limit, LIM_UNLIMITED);
    assert_int_equal(v.status[2].requests.remaining, 0);
    /* the headers report the most restrictive descriptor */
    assert_int_equal(v.requests.limit, 1);
    assert_int_equal(v.requests.remaining, 0);
    lim_release(l, &v.ticket);

    for (int i = 0; i < 5; i++) {
        assert_int_equal(lim_admit(l, cs, 4, T0 + 1, &v), 0);
        assert_int_equal(v.index, 2);
        assert_string_equal(v.key, "team:t");
        /* statuses are still reported for every descriptor */
        assert_int_equal(v.status[0].requests.remaining, 9);
    }
    char msg[256];
    lim_format_refusal(&v, msg, sizeof msg);
    assert_non_null(strstr(msg, "Rate limit exceeded for team: t. Limit type: requests."));
    /* the refusals by the team consumed nothing from the key, nor an in-flight slot */
    lim_verdict r;
    lim_remaining(l, cs, 1, T0 + 1, &r);
    assert_int_equal(r.status[0].requests.remaining, 9);
    assert_int_equal(r.status[0].parallel.remaining, 5);

    /* the same descriptor twice is enforced by both checks but counted once */
    lim_check dup[2] = {chk("key:d", 3, LIM_UNLIMITED, LIM_UNLIMITED),
                        chk("key:d", 5, LIM_UNLIMITED, LIM_UNLIMITED)};
    assert_int_equal(lim_admit(l, dup, 2, T0, &v), 1);
    assert_int_equal(v.ticket.n, 1);
    assert_int_equal(v.status[0].requests.remaining, 2);
    assert_int_equal(v.status[1].requests.remaining, 4);
    lim_release(l, &v.ticket);

    /* too many descriptors */
    lim_check many[LIM_MAX_CHECKS + 1];
    for (int i = 0; i <= LIM_MAX_CHECKS; i++)
        many[i] = chk("key:x", 1, 1, 1);
    assert_int_equal(lim_admit(l, many, LIM_MAX_CHECKS + 1, T0, &v), -1);
    assert_false(v.allowed);
    lim_free(l);
}

static void test_labels(void **state)
{
    (void)state;
    char name[32];
    const char *val;
    lim_descriptor_label("key:abc", name, sizeof name, &val);
    assert_string_equal(name, "api_key");
    assert_string_equal(val, "abc");
    lim_descriptor_label("org:o1", name, sizeof name, &val);
    assert_string_equal(name, "organization");
    assert_string_equal(val, "o1");
    lim_descriptor_label("end_user:e:with:colons", name, sizeof name, &val);
    assert_string_equal(name, "end_user");
    assert_string_equal(val, "e:with:colons");
    lim_descriptor_label("nocolon", name, sizeof name, &val);
    assert_string_equal(name, "api_key");
    assert_string_equal(val, "nocolon");
    assert_string_equal(lim_kind_name(LIM_PARALLEL), "max_parallel_requests");
}

/* ---- threads ------------------------------------------------------------------------------- */

typedef struct {
    lim *l;
    const lim_check *checks;
    int n;
    long iters;
    long accepted;
    atomic_int *inflight;
    atomic_int *max_seen;
} worker;

static void *admit_loop(void *arg)
{
    worker *w = arg;
    lim_verdict v;
    for (long i = 0; i < w->iters; i++) {
        if (lim_admit(w->l, w->checks, w->n, T0 + 1, &v) == 1) {
            w->accepted++;
            if (w->inflight) {
                int now = atomic_fetch_add(w->inflight, 1) + 1;
                int m = atomic_load(w->max_seen);
                while (now > m && !atomic_compare_exchange_weak(w->max_seen, &m, now))
                    ;
                atomic_fetch_sub(w->inflight, 1);
            }
            lim_release(w->l, &v.ticket);
        }
    }
    return NULL;
}

static void run_workers(worker *w, int nthreads)
{
    pthread_t th[8];
    for (int i = 0; i < nthreads; i++)
        assert_int_equal(pthread_create(&th[i], NULL, admit_loop, &w[i]), 0);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
}

static void test_threads_exact(void **state)
{
    (void)state;
    lim *l = new_lim();
    /* the team refuses first; the key must then have counted exactly the admitted requests */
    lim_check cs[2] = {chk("key:shared", 150000, LIM_UNLIMITED, LIM_UNLIMITED),
                       chk("team:shared", 100000, LIM_UNLIMITED, LIM_UNLIMITED)};
    worker w[2] = {{l, cs, 2, 100000, 0, NULL, NULL}, {l, cs, 2, 100000, 0, NULL, NULL}};
    run_workers(w, 2);
    assert_int_equal(w[0].accepted + w[1].accepted, 100000);
    lim_verdict r;
    lim_remaining(l, cs, 2, T0 + 1, &r);
    assert_int_equal(r.status[0].requests.remaining, 50000);
    assert_int_equal(r.status[1].requests.remaining, 0);
    assert_int_equal(r.status[0].parallel.remaining, 0); /* no parallel limit set */
    lim_free(l);
}

static void test_threads_parallel(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_check c = chk("key:par", LIM_UNLIMITED, LIM_UNLIMITED, 3);
    atomic_int inflight = 0, max_seen = 0;
    worker w[4];
    for (int i = 0; i < 4; i++)
        w[i] = (worker){l, &c, 1, 50000, 0, &inflight, &max_seen};
    run_workers(w, 4);
    assert_true(atomic_load(&max_seen) <= 3);
    assert_true(w[0].accepted + w[1].accepted + w[2].accepted + w[3].accepted > 0);
    lim_verdict r;
    lim_remaining(l, &c, 1, T0 + 1, &r);
    assert_int_equal(r.status[0].parallel.remaining, 3); /* every slot came back */
    lim_free(l);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_throughput(void **state)
{
    (void)state;
    lim *l = new_lim();
    /* worst case for the locks: both threads on the same key and team */
    lim_check cs[2] = {chk("key:hot", 100000000, 100000000, 1000),
                       chk("team:hot", 100000000, LIM_UNLIMITED, LIM_UNLIMITED)};
    worker w[2] = {{l, cs, 2, 1000000, 0, NULL, NULL}, {l, cs, 2, 1000000, 0, NULL, NULL}};
    double t = mono();
    run_workers(w, 2);
    double shared = mono() - t;
    assert_int_equal(w[0].accepted + w[1].accepted, 2000000);

    lim_check a = chk("key:a", 100000000, 100000000, 1000);
    lim_check b = chk("key:b", 100000000, 100000000, 1000);
    worker w2[2] = {{l, &a, 1, 1000000, 0, NULL, NULL}, {l, &b, 1, 1000000, 0, NULL, NULL}};
    t = mono();
    run_workers(w2, 2);
    double distinct = mono() - t;
    print_message("2 threads x 1e6 admit+release: %.3f s same key+team, %.3f s distinct keys\n",
                  shared, distinct);
    if (!SANITIZED) {
        assert_true(shared < 1.0);
        assert_true(distinct < 1.0);
    }
    lim_free(l);
}

static void test_idle_expiry(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_verdict v, held;
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        lim_check c = chk(key, 10, LIM_UNLIMITED, LIM_UNLIMITED);
        assert_int_equal(lim_admit(l, &c, 1, T0, &v), 1);
        lim_release(l, &v.ticket);
    }
    lim_check h = chk("key:held", 10, LIM_UNLIMITED, LIM_UNLIMITED);
    assert_int_equal(lim_admit(l, &h, 1, T0, &held), 1);
    lim_reservation res;
    assert_true(lim_budget_reserve(l, "team:reserved", 0, 1.0, 0.1, &res));
    lim_reservation spent;
    assert_true(lim_budget_reserve(l, "user:unflushed", 0, 1.0, 0.1, &spent));
    lim_budget_settle(l, &spent, 0.05);
    assert_int_equal(lim_entry_count(l), 1003);

    assert_int_equal(lim_sweep(l, T0 + 59), 0); /* windows still open */
    /* in flight, reserved or unflushed entries stay; the idle thousand go */
    assert_int_equal(lim_sweep(l, T0 + 61), 1000);
    assert_int_equal(lim_entry_count(l), 3);
    lim_release(l, &held.ticket);
    lim_budget_settle(l, &res, 0);
    lim_budget_flushed(l, "user:unflushed", 0.05);
    /* the entity whose spend was written keeps its written total (cached records measure
     * from it); the others go */
    assert_int_equal(lim_sweep(l, T0 + 62), 2);
    assert_int_equal(lim_entry_count(l), 1);
    assert_true(fabs(lim_budget_written(l, "user:unflushed") - 0.05) < 1e-12);

    /* admissions sweep lazily: once a window later, a new request clears its stripe */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        lim_check c = chk(key, 10, LIM_UNLIMITED, LIM_UNLIMITED);
        assert_int_equal(lim_admit(l, &c, 1, T0 + 100, &v), 1);
        lim_release(l, &v.ticket);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "user:%d", i);
        lim_check c = chk(key, 10, LIM_UNLIMITED, LIM_UNLIMITED);
        assert_int_equal(lim_admit(l, &c, 1, T0 + 500, &v), 1);
        lim_release(l, &v.ticket);
    }
    assert_true(lim_entry_count(l) <= 1000 + 64); /* old keys gone from every touched stripe */
    lim_free(l);
}

/* ---- budgets ------------------------------------------------------------------------------- */

static void test_budget_basic(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_reservation r1, r2, r3;
    /* spend 0.5 of 1.0: a lone request passes whatever its estimate (LiteLLM's rule) */
    assert_true(lim_budget_reserve(l, "key:b", 0.5, 1.0, 0.8, &r1));
    /* a second concurrent one must fit beside the first */
    assert_false(lim_budget_reserve(l, "key:b", 0.5, 1.0, 0.1, &r2));
    lim_budget_settle(l, &r1, 0.2); /* cheaper than estimated */
    assert_true(fabs(lim_budget_spend(l, "key:b") - 0.2) < 1e-12);
    /* spend 0.5 + unflushed 0.2 = 0.7; 0.7 + 0.25 <= 1.0 alongside another in flight */
    assert_true(lim_budget_reserve(l, "key:b", 0.5, 1.0, 0.25, &r1));
    assert_true(lim_budget_reserve(l, "key:b", 0.5, 1.0, 0.05, &r2));
    assert_false(lim_budget_reserve(l, "key:b", 0.5, 1.0, 0.01, &r3));
    lim_budget_settle(l, &r1, 0.5); /* dearer than estimated */
    lim_budget_settle(l, &r1, 0.5); /* settled twice: no-op */
    lim_budget_settle(l, &r2, 0.05);
    assert_true(fabs(lim_budget_spend(l, "key:b") - 0.75) < 1e-12);
    /* 0.5 + 0.75 >= 1.0: exhausted, even with a zero estimate */
    lim_budget_verdict bv;
    lim_budget_check c = {"key:b", 0.5, 1.0, 0};
    assert_int_equal(lim_budget_reserve_all(l, &c, 1, 0, &r1, &bv), 0);
    assert_false(bv.allowed);
    assert_int_equal(bv.index, 0);
    assert_true(fabs(bv.current - 1.25) < 1e-12);
    assert_true(bv.max_budget == 1.0);

    /* the flusher wrote 0.75 and the cached spend now says 1.25 */
    lim_budget_flushed(l, "key:b", 0.75);
    assert_true(lim_budget_spend(l, "key:b") == 0);
    /* budget_duration reset: DB spend 0 */
    assert_true(lim_budget_reserve(l, "key:b", 0, 1.0, 0.3, &r1));
    lim_budget_settle(l, &r1, 0.3);
    lim_budget_reset(l, "key:b");
    assert_true(lim_budget_spend(l, "key:b") == 0);
    assert_true(lim_budget_reserve(l, "key:b", 0, 1.0, 0.9, &r1));
    lim_budget_settle(l, &r1, 0);

    /* max_budget 0 blocks everything; no budget never blocks */
    assert_false(lim_budget_reserve(l, "key:zero", 0, 0, 0, &r1));
    assert_true(lim_budget_reserve(l, "key:none", 1e9, -1, 5, &r1));
    assert_int_equal(r1.n, 0);
    lim_budget_settle(l, &r1, 5);
    assert_true(lim_budget_spend(l, "key:none") == 0);
    assert_true(lim_budget_spend(l, "key:never-seen") == 0);
    lim_free(l);
}

/* A cached record read before a flush (spend without it) and one read after (spend with it)
 * both see the exact total, without being reloaded: spend + written since the read +
 * unflushed. */
static void test_budget_written_since_load(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_reservation r;
    lim_budget_verdict bv;
    /* record A read when the DB said 0.2 and nothing had been written yet */
    lim_budget_check a = {"team:w", 0.2, 1.0, lim_budget_written(l, "team:w")};
    assert_int_equal(lim_budget_reserve_all(l, &a, 1, 0.1, &r, &bv), 1);
    lim_budget_settle(l, &r, 0.5);
    assert_true(fabs(lim_budget_spend_since(l, "team:w", a.written_at_load) - 0.5) < 1e-12);
    /* the flusher writes the 0.5: the DB now says 0.7 */
    lim_budget_flushed(l, "team:w", 0.5);
    lim_budget_check b = {"team:w", 0.7, 1.0, lim_budget_written(l, "team:w")};
    assert_true(fabs(b.written_at_load - 0.5) < 1e-12);
    /* both records: current 0.7 */
    assert_int_equal(lim_budget_reserve_all(l, &a, 1, 0, &r, &bv), 1);
    lim_budget_settle(l, &r, 0.25);
    assert_true(fabs(lim_budget_spend_since(l, "team:w", a.written_at_load) - 0.75) < 1e-12);
    assert_true(fabs(lim_budget_spend_since(l, "team:w", b.written_at_load) - 0.25) < 1e-12);
    /* 0.95 now, from either record; another 0.05 exhausts it for both */
    lim_budget_flushed(l, "team:w", 0.25);
    assert_int_equal(lim_budget_reserve_all(l, &b, 1, 0, &r, &bv), 1);
    lim_budget_settle(l, &r, 0.05);
    assert_int_equal(lim_budget_reserve_all(l, &a, 1, 0, &r, &bv), 0);
    assert_true(fabs(bv.current - 1.0) < 1e-9);
    assert_int_equal(lim_budget_reserve_all(l, &b, 1, 0, &r, &bv), 0);
    assert_true(fabs(bv.current - 1.0) < 1e-9);
    /* a record read after everything was written: spend 1.0 in the DB, nothing since */
    lim_budget_flushed(l, "team:w", 0.05);
    lim_budget_check c = {"team:w", 1.0, 1.0, lim_budget_written(l, "team:w")};
    assert_int_equal(lim_budget_reserve_all(l, &c, 1, 0, &r, &bv), 0);
    assert_true(fabs(bv.current - 1.0) < 1e-9);
    /* an entity without a budget (never reserved) still gets its written total, so the spend
     * a cached record reports (x-litellm-key-spend) follows the flushes */
    assert_true(lim_budget_written(l, "key:nobudget") == 0);
    lim_budget_flushed(l, "key:nobudget", 0.25);
    lim_budget_flushed(l, "key:nobudget", 0.5);
    assert_true(fabs(lim_budget_written(l, "key:nobudget") - 0.75) < 1e-12);
    assert_true(fabs(lim_budget_spend_since(l, "key:nobudget", 0.25) - 0.5) < 1e-12);
    assert_true(lim_budget_spend(l, "key:nobudget") == 0); /* nothing unflushed */
    lim_free(l);
}

static void test_budget_message(void **state)
{
    (void)state;
    const struct {
        double x;
        const char *repr;
    } cases[] = {{3.5e-06, "3.5e-06"}, {1e-09, "1e-09"}, {0.1, "0.1"}, {100.0, "100.0"},
                 {0.0001, "0.0001"}, {1.5, "1.5"}, {123456.789, "123456.789"},
                 {1e16, "1e+16"}, {0.30000000000000004, "0.30000000000000004"}, {0, "0.0"},
                 {2.5e-05, "2.5e-05"}, {1234567890123456.0, "1234567890123456.0"}};
    char out[32];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lim_py_float(cases[i].x, out);
        assert_string_equal(out, cases[i].repr);
    }
    lim_budget_verdict bv = {.allowed = false, .index = 0, .current = 3.5e-06, .max_budget = 1e-09};
    char msg[128];
    lim_format_budget_refusal(&bv, msg, sizeof msg);
    assert_string_equal(msg, "Budget has been exceeded! Current cost: 3.5e-06, Max budget: 1e-09");
}

static void test_budget_strict(void **state)
{
    (void)state;
    lim_options o = {.window_s = 60, .budget_strict = true};
    lim *l = lim_new(&o);
    lim_reservation r;
    assert_false(lim_budget_reserve(l, "key:s", 0.5, 1.0, 0.8, &r));
    assert_true(lim_budget_reserve(l, "key:s", 0.5, 1.0, 0.5, &r));
    lim_budget_settle(l, &r, 0.1);
    lim_free(l);
}

static void test_budget_all_or_none(void **state)
{
    (void)state;
    lim *l = new_lim();
    lim_budget_check cs[4] = {
        {"key:k", 0, 10.0, 0},
        {"user:u", 0, -1, 0}, /* no budget */
        {"team:t", 0, 1.0, 0},
        {"org:o", 0, 100.0, 0},
    };
    lim_reservation r1, r2;
    lim_budget_verdict bv;
    assert_int_equal(lim_budget_reserve_all(l, cs, 4, 0.6, &r1, &bv), 1);
    assert_int_equal(r1.n, 3);
    /* the team cannot hold a second 0.6 beside the first: nothing is reserved anywhere */
    assert_int_equal(lim_budget_reserve_all(l, cs, 4, 0.6, &r2, &bv), 0);
    assert_int_equal(bv.index, 2);
    assert_true(fabs(bv.reserved - 0.6) < 1e-12);
    assert_int_equal(r2.n, 0);
    /* the key alone still has room for 9.4: it reserved nothing for the refused request */
    lim_reservation rk;
    assert_true(lim_budget_reserve(l, "key:k", 0, 10.0, 9.4, &rk));
    lim_budget_settle(l, &rk, 0);
    lim_budget_settle(l, &r1, 0.7);
    assert_true(fabs(lim_budget_spend(l, "key:k") - 0.7) < 1e-12);
    assert_true(fabs(lim_budget_spend(l, "team:t") - 0.7) < 1e-12);
    assert_true(fabs(lim_budget_spend(l, "org:o") - 0.7) < 1e-12);
    assert_true(lim_budget_spend(l, "user:u") == 0);
    lim_free(l);
}

#define NRES 50
typedef struct {
    lim *l;
    double estimate;
    pthread_barrier_t *start, *held;
    bool ok;
} res_worker;

static void *reserve_one(void *arg)
{
    res_worker *w = arg;
    lim_reservation r;
    pthread_barrier_wait(w->start);
    w->ok = lim_budget_reserve(w->l, "team:race", 0.0, 10 * w->estimate, w->estimate, &r);
    pthread_barrier_wait(w->held); /* everyone holds until all have tried */
    if (w->ok)
        lim_budget_settle(w->l, &r, w->estimate);
    return NULL;
}

static void test_budget_concurrent(void **state)
{
    (void)state;
    lim *l = new_lim();
    const double e = 0.01; /* 10 × 0.01 is not exactly 0.1 in binary: the slack must cope */
    pthread_barrier_t start, held;
    pthread_barrier_init(&start, NULL, NRES);
    pthread_barrier_init(&held, NULL, NRES);
    pthread_t th[NRES];
    res_worker w[NRES];
    for (int i = 0; i < NRES; i++) {
        w[i] = (res_worker){l, e, &start, &held, false};
        assert_int_equal(pthread_create(&th[i], NULL, reserve_one, &w[i]), 0);
    }
    int passed = 0;
    for (int i = 0; i < NRES; i++) {
        pthread_join(th[i], NULL);
        passed += w[i].ok;
    }
    assert_int_equal(passed, 10);
    assert_true(fabs(lim_budget_spend(l, "team:race") - 10 * e) < 1e-12);
    /* the budget is now spent: nobody passes */
    lim_reservation r;
    assert_false(lim_budget_reserve(l, "team:race", 0.0, 10 * e, 0, &r));
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&held);
    lim_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpm_refusal_and_reset),
        cmocka_unit_test(test_window_rollover),
        cmocka_unit_test(test_tpm),
        cmocka_unit_test(test_max_parallel),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_threads_exact),
        cmocka_unit_test(test_threads_parallel),
        cmocka_unit_test(test_throughput),
        cmocka_unit_test(test_idle_expiry),
        cmocka_unit_test(test_budget_basic),
        cmocka_unit_test(test_budget_written_since_load),
        cmocka_unit_test(test_budget_message),
        cmocka_unit_test(test_budget_strict),
        cmocka_unit_test(test_budget_all_or_none),
        cmocka_unit_test(test_budget_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
