/* Unit tests for router: settings, group resolution (aliases, wildcards), picking (weights,
 * tiers, strategies, limits, cooldowns), bookkeeping across threads, and the retry/fallback
 * policy. Configs are real config.yaml text loaded with cfg_load; time is injected. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "router/router.h"

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

/* 2026-01-01T00:00:00Z, the start of a minute */
#define T0 1767225600.0

/* one model_list entry; params are extra litellm_params lines (6 spaces) */
#define DEP(id, name, model, params)                                                             \
    "  - model_name: \"" name "\"\n"                                                             \
    "    litellm_params:\n"                                                                      \
    "      model: \"" model "\"\n"                                                               \
    "      mock_response: hi\n" params "    model_info:\n"                                       \
    "      id: " id "\n"

typedef struct {
    char dir[64];
    char path[128];
    cfg *c;
    router *rt;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-routertest-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/config.yaml", f->dir);
    unsetenv("OPENAI_API_KEY");
    unsetenv("LITELLM_MASTER_KEY");
    *state = f;
    return 0;
}

static void drop(fixture *f)
{
    router_free(f->rt);
    f->rt = NULL;
    cfg_free(f->c);
    f->c = NULL;
}

static int teardown(void **state)
{
    fixture *f = *state;
    drop(f);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static cfg *load_cfg(fixture *f, const char *yaml)
{
    drop(f);
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    assert_true(fputs(yaml, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
    cfg_problems probs = {0};
    bool ye = false;
    f->c = cfg_load(f->path, &probs, &ye);
    if (!f->c)
        for (size_t i = 0; i < probs.n; i++) {
            char line[512];
            cfg_problem_format(&probs.v[i], line, sizeof line);
            fprintf(stderr, "%s\n", line);
        }
    cfg_problems_free(&probs);
    assert_non_null(f->c);
    return f->c;
}

/* a router for yaml; fails the test when the settings do not load */
static router *mk(fixture *f, const char *yaml)
{
    load_cfg(f, yaml);
    char err[512];
    f->rt = router_new(f->c, err, sizeof err);
    if (!f->rt)
        fprintf(stderr, "router_new: %s\n", err);
    assert_non_null(f->rt);
    router_seed(f->rt, 42);
    return f->rt;
}

/* router_new's error for yaml ("" when it loaded) */
static const char *mk_err(fixture *f, const char *yaml)
{
    static char err[512];
    load_cfg(f, yaml);
    err[0] = 0;
    f->rt = router_new(f->c, err, sizeof err);
    if (f->rt) {
        router_free(f->rt);
        f->rt = NULL;
        return "";
    }
    return err;
}

static const cfg_deployment *dep(fixture *f, const char *id)
{
    for (size_t i = 0; i < f->c->ndeps; i++)
        if (strcmp(f->c->deps[i].id, id) == 0)
            return &f->c->deps[i];
    fail_msg("no deployment %s", id);
    return NULL;
}

static const router_group *grp(fixture *f, const char *name)
{
    const router_group *g = router_find_group(f->rt, name);
    assert_non_null(g);
    return g;
}

static const char *pick_id(fixture *f, const char *group, double now)
{
    router_pick_result r;
    assert_true(router_pick(f->rt, grp(f, group), NULL, 0, now, &r));
    return r.d->id;
}

static bool fail_with(fixture *f, const char *id, router_outcome oc, int status, double retry_after,
                      double now)
{
    const cfg_deployment *d = dep(f, id);
    router_begin(f->rt, d, now);
    router_report rep = {oc, status, 100, 0, retry_after, 0, -1};
    return router_end(f->rt, d, &rep, now);
}

static void succeed(fixture *f, const char *id, double latency, long tokens, double now)
{
    const cfg_deployment *d = dep(f, id);
    assert_true(router_begin(f->rt, d, now));
    router_report rep = {ROUTER_OK, 200, latency, tokens, -1, 0, -1};
    assert_false(router_end(f->rt, d, &rep, now));
}

/* picks n times and counts how often each of ids[] came out */
static void count_picks(fixture *f, const char *group, int n, const char *const *ids, int nids,
                        int *counts)
{
    memset(counts, 0, (size_t)nids * sizeof *counts);
    for (int i = 0; i < n; i++) {
        const char *id = pick_id(f, group, T0 + 1);
        int k;
        for (k = 0; k < nids; k++)
            if (strcmp(ids[k], id) == 0)
                break;
        assert_true(k < nids);
        counts[k]++;
    }
}

/* ---- settings ------------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    fixture *f = *state;
    router *rt = mk(f, "model_list:\n" DEP("a", "m", "openai/x", ""));
    const router_settings *s = router_get_settings(rt);
    assert_int_equal(s->strategy, ROUTER_SIMPLE_SHUFFLE);
    assert_int_equal(s->num_retries, 2);
    assert_int_equal(s->max_fallbacks, 5);
    assert_int_equal(s->allowed_fails, 3);
    assert_false(s->allowed_fails_counting);
    assert_true(s->cooldown_time == 5.0);
    assert_true(s->retry_after == 0);
    assert_false(s->disable_cooldowns);
    assert_null(s->fallbacks);
    assert_null(router_notes(rt)[0]);
    for (int i = 0; i < ROUTER_NCLASSES; i++)
        assert_int_equal(s->retry_policy[i], -1);
}

static void test_settings_override_and_values(void **state)
{
    fixture *f = *state;
    router *rt = mk(f, "model_list:\n" DEP("a", "m", "openai/x", "")
                       "litellm_settings:\n"
                       "  num_retries: 5\n"
                       "  allowed_fails: 1\n"
                       "  fallbacks: [{\"m\": [\"n\"]}]\n"
                       "router_settings:\n"
                       "  num_retries: \"7\"\n"              /* as os.environ/ would give it */
                       "  routing_strategy: usage-based-routing\n"
                       "  retry_after: 1.5\n"
                       "  cooldown_time: 30\n"
                       "  disable_cooldowns: \"True\"\n"
                       "  enable_pre_call_checks: true\n"
                       "  max_fallbacks: 2\n"
                       "  allowed_fails: 1\n"
                       "  routing_strategy_args: {lowest_latency_buffer: 0.5, ttl: 60}\n"
                       "  retry_policy: {RateLimitErrorRetries: 3, BadRequestErrorRetries: 0}\n");
    const router_settings *s = router_get_settings(rt);
    assert_int_equal(s->num_retries, 7);
    assert_int_equal(s->strategy, ROUTER_USAGE_BASED);
    assert_true(s->retry_after == 1.5);
    assert_true(s->cooldown_time == 30);
    assert_true(s->disable_cooldowns);
    assert_true(s->enable_pre_call_checks);
    assert_int_equal(s->max_fallbacks, 2);
    /* same as litellm_settings' value: LiteLLM keeps the failure-rate rule */
    assert_int_equal(s->allowed_fails, 1);
    assert_false(s->allowed_fails_counting);
    assert_true(s->lowest_latency_buffer == 0.5);
    assert_true(s->latency_ttl == 60);
    assert_int_equal(s->retry_policy[ROUTER_CLASS_RATE_LIMIT], 3);
    assert_int_equal(s->retry_policy[ROUTER_CLASS_BAD_REQUEST], 0);
    assert_int_equal(s->retry_policy[ROUTER_CLASS_TIMEOUT], -1);
    assert_non_null(s->fallbacks); /* from litellm_settings */

    rt = mk(f, "model_list:\n" DEP("a", "m", "openai/x", "")
               "litellm_settings: {num_retries: 5}\n"
               "router_settings:\n"
               "  routing_strategy: cost-based-routing\n"
               "  allowed_fails: 2\n");
    s = router_get_settings(rt);
    assert_int_equal(s->num_retries, 5);
    assert_int_equal(s->strategy, ROUTER_SIMPLE_SHUFFLE);
    assert_true(s->allowed_fails_counting);
    assert_non_null(router_notes(rt)[0]);
    assert_non_null(strstr(router_notes(rt)[0], "cost-based-routing"));
    assert_null(router_notes(rt)[1]);
}

static void test_settings_errors(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"router_settings: {num_retries: -1}\n",
         "router_settings.num_retries must be a whole number >= 0, got -1"},
        {"litellm_settings: {num_retries: 2.5}\n", "litellm_settings.num_retries"},
        {"router_settings: {routing_strategy: fastest}\n",
         "router_settings.routing_strategy must be one of"},
        {"router_settings: {fallbacks: gpt-4}\n", "router_settings.fallbacks must be a list"},
        {"router_settings: {fallbacks: [{\"a\": [\"b\"], \"c\": [\"d\"]}]}\n",
         "router_settings.fallbacks[0] must map exactly one model group"},
        {"router_settings: {context_window_fallbacks: [{\"a\": \"b\"}]}\n",
         "router_settings.context_window_fallbacks[0].a must be a list of model group names"},
        {"router_settings: {default_fallbacks: [1]}\n", "router_settings.default_fallbacks"},
        {"router_settings: {retry_policy: {RateLimitRetries: 3}}\n",
         "router_settings.retry_policy: unknown key 'RateLimitRetries'"},
        {"router_settings: {retry_policy: {TimeoutErrorRetries: -2}}\n",
         "router_settings.retry_policy.TimeoutErrorRetries must be a whole number >= 0"},
        {"router_settings: {allowed_fails_policy: [1]}\n",
         "router_settings.allowed_fails_policy must be a mapping"},
        {"router_settings: {model_group_alias: {fast: 3}}\n",
         "router_settings.model_group_alias.fast must be a model group name"},
        {"router_settings: {model_group_alias: {fast: {model: m, hidden: maybe}}}\n",
         "router_settings.model_group_alias.fast.hidden must be true or false"},
        {"router_settings: {cooldown_time: soon}\n",
         "router_settings.cooldown_time must be a number"},
        {"router_settings: {disable_cooldowns: perhaps}\n",
         "router_settings.disable_cooldowns must be true or false"},
        {"router_settings: {allowed_fails: -1}\n", "router_settings.allowed_fails"},
        {"router_settings: {routing_strategy_args: {lowest_latency_buffer: -1}}\n",
         "routing_strategy_args.lowest_latency_buffer"},
        {"router_settings: {stream_timeout: 0}\n", "router_settings.stream_timeout"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml, "model_list:\n" DEP("a", "m", "openai/x", "") "%s",
                 cases[i].yaml);
        const char *err = mk_err(f, yaml);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].want);
    }
    const char *err = mk_err(f, "model_list:\n" DEP("a", "m", "openai/x", "      weight: -1\n"));
    assert_non_null(strstr(err, "model 'm' (line 2): litellm_params.weight must be a number >= 0"));
    err = mk_err(f, "model_list:\n" DEP("a", "m", "openai/x", "      order: first\n"));
    assert_non_null(strstr(err, "litellm_params.order must be a whole number, got 'first'"));
    err = mk_err(f, "model_list:\n" DEP("a", "m", "openai/x", "      num_retries: -3\n"));
    assert_non_null(strstr(err, "litellm_params.num_retries"));
}

/* ---- picking -------------------------------------------------------------------------------- */

static void test_weights(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      weight: 1\n")
              DEP("b", "m", "openai/x", "      weight: 2\n")
                  DEP("c", "m", "openai/x", "      weight: 7\n")
                      DEP("z", "m", "openai/x", "      weight: 0\n"));
    static const char *const ids[] = {"a", "b", "c", "z"};
    int n[4];
    count_picks(f, "m", 10000, ids, 4, n);
    assert_true(fabs(n[0] / 10000.0 - 0.1) < 0.02);
    assert_true(fabs(n[1] / 10000.0 - 0.2) < 0.02);
    assert_true(fabs(n[2] / 10000.0 - 0.7) < 0.02);
    assert_int_equal(n[3], 0);

    /* the same seed replays the same choices */
    router_seed(f->rt, 7);
    char first[16][8];
    for (int i = 0; i < 16; i++)
        snprintf(first[i], sizeof first[i], "%s", pick_id(f, "m", T0));
    router_seed(f->rt, 7);
    for (int i = 0; i < 16; i++)
        assert_string_equal(first[i], pick_id(f, "m", T0));
}

static void test_rpm_tpm_weighting(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      rpm: 100\n")
              DEP("b", "m", "openai/x", "      rpm: 300\n")
                  DEP("c", "t", "openai/x", "      tpm: 1000\n")
                      DEP("d", "t", "openai/x", "      tpm: 9000\n")
                          DEP("e", "u", "openai/x", "") DEP("f", "u", "openai/x", ""));
    static const char *const ab[] = {"a", "b"}, *const cd[] = {"c", "d"}, *const ef[] = {"e", "f"};
    int n[2];
    count_picks(f, "m", 10000, ab, 2, n);
    assert_true(fabs(n[0] / 10000.0 - 0.25) < 0.02);
    count_picks(f, "t", 10000, cd, 2, n);
    assert_true(fabs(n[0] / 10000.0 - 0.10) < 0.02);
    count_picks(f, "u", 10000, ef, 2, n);
    assert_true(fabs(n[0] / 10000.0 - 0.5) < 0.03);
}

static void test_order_tiers(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a1", "m", "openai/x", "      order: 1\n")
              DEP("a2", "m", "openai/x", "      order: 1\n")
                  DEP("b", "m", "openai/x", "      order: 2\n") DEP("none", "m", "openai/x", ""));
    for (int i = 0; i < 200; i++) {
        const char *id = pick_id(f, "m", T0);
        assert_true(strcmp(id, "a1") == 0 || strcmp(id, "a2") == 0);
    }
    /* tier 1 unavailable (one tried, one cooling) → tier 2 */
    const char *ex[] = {"a1"};
    assert_true(fail_with(f, "a2", ROUTER_RATE_LIMITED, 429, -1, T0));
    router_pick_result r;
    assert_true(router_pick(f->rt, grp(f, "m"), ex, 1, T0 + 1, &r));
    assert_string_equal(r.d->id, "b");
    /* every ordered one unavailable → the one without order */
    const char *ex2[] = {"a1", "b"};
    assert_true(router_pick(f->rt, grp(f, "m"), ex2, 2, T0 + 1, &r));
    assert_string_equal(r.d->id, "none");
    /* a2 back after its cooldown: tier 1 again */
    for (int i = 0; i < 50; i++) {
        assert_true(router_pick(f->rt, grp(f, "m"), ex, 1, T0 + 5.001, &r));
        assert_string_equal(r.d->id, "a2");
    }
}

static void test_exclusion(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", ""));
    const char *ex[] = {"a"};
    router_pick_result r;
    for (int i = 0; i < 50; i++) {
        assert_true(router_pick(f->rt, grp(f, "m"), ex, 1, T0, &r));
        assert_string_equal(r.d->id, "b");
    }
    const char *all[] = {"b", "a"};
    assert_false(router_pick(f->rt, grp(f, "m"), all, 2, T0, &r));
    assert_int_equal(r.status, ROUTER_NONE_EXCLUDED);
    assert_int_equal(r.nexcluded, 2);
    assert_int_equal(r.retry_after_s, 0);
}

static void test_least_busy(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              DEP("c", "m", "openai/x", "") "router_settings: {routing_strategy: least-busy}\n");
    const cfg_deployment *a = dep(f, "a"), *b = dep(f, "b"), *c = dep(f, "c");
    assert_true(router_begin(f->rt, a, T0));
    assert_true(router_begin(f->rt, a, T0));
    assert_true(router_begin(f->rt, b, T0));
    for (int i = 0; i < 20; i++)
        assert_string_equal(pick_id(f, "m", T0), "c");
    assert_true(router_begin(f->rt, c, T0));
    assert_true(router_begin(f->rt, c, T0));
    for (int i = 0; i < 20; i++)
        assert_string_equal(pick_id(f, "m", T0), "b");
    router_report ok = {ROUTER_OK, 200, 10, 5, -1, 0, -1};
    router_end(f->rt, a, &ok, T0);
    router_end(f->rt, a, &ok, T0);
    for (int i = 0; i < 20; i++)
        assert_string_equal(pick_id(f, "m", T0), "a");
    router_dep_stats st;
    router_stats(f->rt, a, T0, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.requests_this_minute, 2);
    assert_int_equal(st.successes_this_minute, 2);
    router_stats(f->rt, c, T0, &st);
    assert_int_equal(st.in_flight, 2);
    /* a cancelled call frees its slot and counts nothing else */
    assert_true(router_begin(f->rt, b, T0));
    router_report gone = {ROUTER_CANCELLED, 0, 3, 7, -1, 0, -1};
    assert_false(router_end(f->rt, b, &gone, T0));
    router_stats(f->rt, b, T0, &st);
    assert_int_equal(st.in_flight, 1);
    assert_int_equal(st.successes_this_minute + st.failures_this_minute, 0);
    assert_int_equal(st.tokens_this_minute, 7);
    /* ties are shared */
    router_end(f->rt, b, &ok, T0);
    router_end(f->rt, c, &ok, T0);
    router_end(f->rt, c, &ok, T0);
    static const char *const ids[] = {"a", "b", "c"};
    int n[3];
    count_picks(f, "m", 3000, ids, 3, n);
    for (int i = 0; i < 3; i++)
        assert_true(n[i] > 800);
}

static void test_latency_based(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              DEP("c", "m", "openai/x", "")
                  "router_settings: {routing_strategy: latency-based-routing}\n");
    /* unmeasured deployments come first (latency 0), as LiteLLM's */
    succeed(f, "a", 100, 1, T0);
    succeed(f, "b", 50, 1, T0);
    for (int i = 0; i < 20; i++)
        assert_string_equal(pick_id(f, "m", T0), "c");
    succeed(f, "c", 200, 1, T0);
    for (int i = 0; i < 20; i++)
        assert_string_equal(pick_id(f, "m", T0), "b");
    /* b slows down: the EWMA moves past a */
    for (int i = 0; i < 30; i++)
        succeed(f, "b", 400, 1, T0 + 1);
    router_dep_stats st;
    router_stats(f->rt, dep(f, "b"), T0 + 1, &st);
    assert_true(st.latency_ms > 300 && st.latency_ms < 400);
    assert_string_equal(pick_id(f, "m", T0 + 1), "a");
    /* a timeout counts as a very slow call */
    fail_with(f, "a", ROUTER_TIMEOUT, 408, -1, T0 + 2);
    assert_string_equal(pick_id(f, "m", T0 + 2), "c");

    /* lowest_latency_buffer: anything within best * (1 + buffer) shares the traffic */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              DEP("c", "m", "openai/x", "")
                  "router_settings:\n"
                  "  routing_strategy: latency-based-routing\n"
                  "  routing_strategy_args: {lowest_latency_buffer: 1.0}\n");
    succeed(f, "a", 100, 1, T0);
    succeed(f, "b", 60, 1, T0);
    succeed(f, "c", 130, 1, T0);
    static const char *const ids[] = {"a", "b", "c"};
    int n[3];
    count_picks(f, "m", 2000, ids, 3, n);
    assert_true(n[0] > 800 && n[1] > 800);
    assert_int_equal(n[2], 0);
}

/* lowest_latency.py's measures: latency per output token for ordinary calls, time to first
 * token for streams */
static void test_latency_per_token_and_ttft(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              "router_settings: {routing_strategy: latency-based-routing}\n");
    /* a: long answers, 10 ms per token but 1 s a call, and a slow first token when streaming;
     * b: short answers, 30 ms per token, 300 ms a call, a quick first token */
    router_report ra = {ROUTER_OK, 200, 1000, 150, -1, 100, 500};
    router_report rb = {ROUTER_OK, 200, 300, 60, -1, 10, 50};
    assert_true(router_begin(f->rt, dep(f, "a"), T0));
    router_end(f->rt, dep(f, "a"), &ra, T0);
    assert_true(router_begin(f->rt, dep(f, "b"), T0));
    router_end(f->rt, dep(f, "b"), &rb, T0);
    router_pick_result r;
    for (int i = 0; i < 20; i++) {
        assert_true(router_pick_for(f->rt, grp(f, "m"), NULL, 0, 0, false, T0 + 1, &r));
        assert_string_equal(r.d->id, "a"); /* per output token */
        assert_true(router_pick_for(f->rt, grp(f, "m"), NULL, 0, 0, true, T0 + 1, &r));
        assert_string_equal(r.d->id, "b"); /* time to first token */
    }
    /* a deployment that never streamed is ranked for streams by its per-token latency */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              "router_settings: {routing_strategy: latency-based-routing}\n");
    router_report na = {ROUTER_OK, 200, 200, 20, -1, 10, -1}; /* 20 ms per token */
    router_report sb = {ROUTER_OK, 200, 900, 20, -1, 10, 40};  /* first token after 40 ms */
    assert_true(router_begin(f->rt, dep(f, "a"), T0));
    router_end(f->rt, dep(f, "a"), &na, T0);
    assert_true(router_begin(f->rt, dep(f, "b"), T0));
    router_end(f->rt, dep(f, "b"), &sb, T0);
    assert_true(router_pick_for(f->rt, grp(f, "m"), NULL, 0, 0, true, T0 + 1, &r));
    assert_string_equal(r.d->id, "a"); /* 20 beats 40 */
}

static void test_usage_based_tpm(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "      tpm: 20\n")
              "router_settings: {routing_strategy: usage-based-routing-v2}\n");
    succeed(f, "a", 10, 1000, T0);
    succeed(f, "b", 10, 10, T0);
    for (int i = 0; i < 10; i++)
        assert_string_equal(pick_id(f, "m", T0 + 1), "b");
    succeed(f, "b", 10, 15, T0 + 2); /* 25 >= tpm 20: b is out for this minute */
    for (int i = 0; i < 10; i++)
        assert_string_equal(pick_id(f, "m", T0 + 3), "a");
    router_dep_stats st;
    router_stats(f->rt, dep(f, "b"), T0 + 3, &st);
    assert_int_equal(st.tokens_this_minute, 25);
    /* a new minute starts from zero */
    assert_string_equal(pick_id(f, "m", T0 + 60), "a");
    succeed(f, "a", 10, 5, T0 + 60);
    assert_string_equal(pick_id(f, "m", T0 + 61), "b");
}

/* LiteLLM's tpm test counts the request's own input: used + input > tpm skips the deployment */
static void test_tpm_counts_the_request(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      tpm: 1000\n")
              DEP("b", "m", "openai/x", "      tpm: 100000\n")
          "router_settings: {routing_strategy: usage-based-routing-v2}\n");
    succeed(f, "a", 10, 900, T0);
    succeed(f, "b", 10, 950, T0);
    router_pick_result r;
    /* a has used the least: a small request goes there, a big one does not fit */
    assert_true(router_pick_for(f->rt, grp(f, "m"), NULL, 0, 50, false, T0 + 1, &r));
    assert_string_equal(r.d->id, "a");
    assert_true(router_pick_for(f->rt, grp(f, "m"), NULL, 0, 500, false, T0 + 1, &r));
    assert_string_equal(r.d->id, "b");
    /* exactly at the limit still fits (the test is >, not >=) */
    assert_true(router_pick_for(f->rt, grp(f, "m"), NULL, 0, 100, false, T0 + 1, &r));
    assert_string_equal(r.d->id, "a");
    /* simple-shuffle: tpm is a weight only, never a reason to skip */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      tpm: 1000\n"));
    succeed(f, "a", 10, 5000, T0);
    assert_true(router_pick_for(f->rt, grp(f, "m"), NULL, 0, 500, false, T0 + 1, &r));
}

static void test_rpm_limit(void **state)
{
    fixture *f = *state;
    /* simple-shuffle alone: rpm is a weight, not a limit (LiteLLM) */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      rpm: 1\n")
              DEP("b", "m", "openai/x", "      rpm: 1000\n"));
    for (int i = 0; i < 5; i++)
        assert_true(router_begin(f->rt, dep(f, "a"), T0 + 1));
    int hits = 0;
    for (int i = 0; i < 4000; i++)
        hits += strcmp(pick_id(f, "m", T0 + 2), "a") == 0;
    assert_true(hits > 0 && hits < 20); /* about 4 in 4000, and never refused */
    /* enforced with optional_pre_call_checks: [enforce_model_rate_limits] (or
     * enable_pre_call_checks, usage-based-routing-v2, latency-based-routing) */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      rpm: 2\n")
              DEP("b", "m", "openai/x", "      rpm: 3\n")
          "router_settings: {optional_pre_call_checks: [enforce_model_rate_limits]}\n");
    const cfg_deployment *a = dep(f, "a");
    assert_true(router_begin(f->rt, a, T0 + 1));
    assert_true(router_begin(f->rt, a, T0 + 2));
    assert_false(router_begin(f->rt, a, T0 + 3)); /* the third of the minute is refused */
    for (int i = 0; i < 200; i++)
        assert_string_equal(pick_id(f, "m", T0 + 4), "b");
    /* next minute: a is back (weighted 2:3 by rpm) */
    int n[2] = {0, 0};
    for (int i = 0; i < 1000; i++)
        n[strcmp(pick_id(f, "m", T0 + 61), "a") == 0 ? 0 : 1]++;
    assert_true(n[0] > 300 && n[1] > 450);

    /* everything at its limit: a 429 until the next minute */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      rpm: 1\n")
          "router_settings: {enable_pre_call_checks: true}\n");
    assert_true(router_begin(f->rt, dep(f, "a"), T0 + 15.5));
    router_pick_result r;
    assert_false(router_pick(f->rt, grp(f, "m"), NULL, 0, T0 + 15.5, &r));
    assert_int_equal(r.status, ROUTER_NONE_RATE_LIMITED);
    assert_int_equal(r.nlimited, 1);
    assert_true(r.retry_at == T0 + 60);
    assert_int_equal(r.retry_after_s, 45);
    assert_true(router_pick(f->rt, grp(f, "m"), NULL, 0, T0 + 60, &r));
}

/* ---- cooldowns ------------------------------------------------------------------------------ */

static void test_cooldown_allowed_fails(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              "router_settings: {allowed_fails: 2, cooldown_time: 10}\n");
    const cfg_deployment *a = dep(f, "a");
    assert_false(fail_with(f, "a", ROUTER_SERVER_ERROR, 500, -1, T0));
    assert_false(fail_with(f, "a", ROUTER_SERVER_ERROR, 503, -1, T0 + 1));
    assert_false(router_is_cooling(f->rt, a, T0 + 1));
    /* the third failure exceeds allowed_fails */
    assert_true(fail_with(f, "a", ROUTER_SERVER_ERROR, 500, -1, T0 + 2));
    assert_true(router_is_cooling(f->rt, a, T0 + 2));
    for (int i = 0; i < 100; i++)
        assert_string_equal(pick_id(f, "m", T0 + 11.9), "b");
    router_dep_stats st;
    router_stats(f->rt, a, T0 + 3, &st);
    assert_true(st.cooldown_until == T0 + 12);
    /* recovered after cooldown_time */
    assert_false(router_is_cooling(f->rt, a, T0 + 12));
    int n[2] = {0, 0};
    for (int i = 0; i < 200; i++)
        n[strcmp(pick_id(f, "m", T0 + 12), "a") == 0 ? 0 : 1]++;
    assert_true(n[0] > 50);

    /* the counter forgets failures cooldown_time after the last one */
    assert_false(fail_with(f, "b", ROUTER_SERVER_ERROR, 500, -1, T0 + 20));
    assert_false(fail_with(f, "b", ROUTER_SERVER_ERROR, 500, -1, T0 + 21));
    assert_false(fail_with(f, "b", ROUTER_SERVER_ERROR, 500, -1, T0 + 31.5));
    assert_false(router_is_cooling(f->rt, dep(f, "b"), T0 + 31.5));
    /* client errors and connection errors never count */
    for (int i = 0; i < 5; i++) {
        assert_false(fail_with(f, "a", ROUTER_BAD_REQUEST, 400, -1, T0 + 40));
        assert_false(fail_with(f, "a", ROUTER_CONTEXT_WINDOW, 400, -1, T0 + 40));
        assert_false(fail_with(f, "a", ROUTER_CONNECTION_ERROR, 0, -1, T0 + 40));
    }
    assert_false(router_is_cooling(f->rt, a, T0 + 40));

    /* allowed_fails_policy per class */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              "router_settings:\n"
              "  allowed_fails_policy: {RateLimitErrorAllowedFails: 0, "
              "InternalServerErrorAllowedFails: 4}\n");
    assert_true(fail_with(f, "a", ROUTER_RATE_LIMITED, 429, -1, T0));
    for (int i = 0; i < 4; i++)
        assert_false(fail_with(f, "b", ROUTER_SERVER_ERROR, 500, -1, T0 + i));
    assert_true(fail_with(f, "b", ROUTER_SERVER_ERROR, 500, -1, T0 + 4));
}

static void test_cooldown_default_rules(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              DEP("solo", "s", "openai/x", "")
                  DEP("slow", "c", "openai/x", "      cooldown_time: 42\n")
                      DEP("c2", "c", "openai/x", ""));
    /* 429 in a group with others: at once, for cooldown_time (5 s) */
    assert_true(fail_with(f, "a", ROUTER_RATE_LIMITED, 429, -1, T0));
    assert_true(router_is_cooling(f->rt, dep(f, "a"), T0 + 4.9));
    assert_false(router_is_cooling(f->rt, dep(f, "a"), T0 + 5));
    /* the upstream's Retry-After sets the length */
    assert_true(fail_with(f, "b", ROUTER_RATE_LIMITED, 429, 20, T0));
    assert_true(router_is_cooling(f->rt, dep(f, "b"), T0 + 19.9));
    assert_false(router_is_cooling(f->rt, dep(f, "b"), T0 + 20));
    /* the deployment's own cooldown_time wins over both */
    assert_true(fail_with(f, "slow", ROUTER_RATE_LIMITED, 429, 20, T0));
    assert_true(router_is_cooling(f->rt, dep(f, "slow"), T0 + 41.9));
    assert_false(router_is_cooling(f->rt, dep(f, "slow"), T0 + 42));
    /* alone in its group: a 429 does not cool it down, a 401 does */
    assert_false(fail_with(f, "solo", ROUTER_RATE_LIMITED, 429, -1, T0));
    assert_false(fail_with(f, "solo", ROUTER_SERVER_ERROR, 500, -1, T0));
    assert_true(fail_with(f, "solo", ROUTER_AUTH_ERROR, 401, -1, T0));
    /* 404 cools down; 400 and 403 do not */
    assert_true(fail_with(f, "c2", ROUTER_NOT_FOUND, 404, -1, T0 + 100));
    assert_false(fail_with(f, "a", ROUTER_BAD_REQUEST, 403, -1, T0 + 100));

    /* the failure rate: > 50% of this minute's calls with at least 5 calls */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", ""));
    succeed(f, "a", 10, 1, T0);
    succeed(f, "a", 10, 1, T0);
    assert_false(fail_with(f, "a", ROUTER_SERVER_ERROR, 500, -1, T0)); /* 1 of 3 */
    assert_false(fail_with(f, "a", ROUTER_SERVER_ERROR, 500, -1, T0)); /* 2 of 4 */
    assert_true(fail_with(f, "a", ROUTER_SERVER_ERROR, 500, -1, T0));  /* 3 of 5 */
    /* timeouts and 5xx alone, under 5 calls: no cooldown */
    assert_false(fail_with(f, "b", ROUTER_TIMEOUT, 0, -1, T0));
    assert_false(fail_with(f, "b", ROUTER_SERVER_ERROR, 502, -1, T0));

    /* cooldown_time 0 and disable_cooldowns turn it off */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              "router_settings: {cooldown_time: 0}\n");
    assert_false(fail_with(f, "a", ROUTER_RATE_LIMITED, 429, -1, T0));
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              "router_settings: {disable_cooldowns: true}\n");
    assert_false(fail_with(f, "a", ROUTER_RATE_LIMITED, 429, 30, T0));
    assert_false(fail_with(f, "a", ROUTER_AUTH_ERROR, 401, -1, T0));
    assert_false(router_is_cooling(f->rt, dep(f, "a"), T0));
}

static void test_all_cooling(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", ""));
    assert_true(fail_with(f, "a", ROUTER_RATE_LIMITED, 429, 20, T0));
    assert_true(fail_with(f, "b", ROUTER_RATE_LIMITED, 429, 9.5, T0 + 1));
    router_pick_result r;
    assert_false(router_pick(f->rt, grp(f, "m"), NULL, 0, T0 + 2, &r));
    assert_int_equal(r.status, ROUTER_NONE_COOLDOWN);
    assert_int_equal(r.ncooling, 2);
    assert_true(fabs(r.retry_at - (T0 + 10.5)) < 1e-6);
    assert_int_equal(r.retry_after_s, 9); /* ceil(8.5) */
    char msg[512];
    router_format_no_deployments(f->rt, grp(f, "m"), "m", &r, T0 + 2, msg, sizeof msg);
    assert_string_equal(msg, "No deployments available for selected model, Try again in 9 "
                             "seconds. Passed model=m. pre-call-checks=False, "
                             "cooldown_list=['a', 'b']");
    /* one excluded and the other cooling: still a cooldown answer */
    const char *ex[] = {"a"};
    assert_false(router_pick(f->rt, grp(f, "m"), ex, 1, T0 + 2, &r));
    assert_int_equal(r.status, ROUTER_NONE_COOLDOWN);
    assert_true(router_pick(f->rt, grp(f, "m"), NULL, 0, T0 + 10.5, &r));
    assert_string_equal(r.d->id, "b");
}

/* ---- resolution ----------------------------------------------------------------------------- */

static void test_resolve(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("g4o", "gpt-4o", "openai/gpt-4o", "")
              DEP("anth", "anthropic/*", "anthropic/*", "")
                  DEP("any", "*", "openai/*", "")
                      DEP("team", "team-*/m-*", "hosted_vllm/*-*", "")
                          DEP("multi", "x/*/*", "openai/*", "")
                              DEP("fixed", "fixed-*", "openai/gpt-4o-mini", "")
                                  "router_settings:\n"
                                  "  model_group_alias:\n"
                                  "    fast: gpt-4o\n"
                                  "    secret: {model: gpt-4o, hidden: true}\n"
                                  "    gpt-4o: anthropic/claude-via-alias\n");
    router_route r;
    char buf[128];
    const char *up;

    /* model_group_alias is consulted before the exact name (LiteLLM's order) */
    assert_true(router_resolve(f->rt, "fast", &r));
    assert_int_equal(r.via, ROUTER_VIA_ALIAS);
    assert_string_equal(router_group_name(r.group), "gpt-4o");
    assert_true(router_resolve(f->rt, "gpt-4o", &r));
    assert_int_equal(r.via, ROUTER_VIA_WILDCARD); /* the alias rewrote it */
    assert_string_equal(router_group_name(r.group), "anthropic/*");

    assert_true(router_resolve(f->rt, "anthropic/claude-x", &r));
    assert_int_equal(r.via, ROUTER_VIA_WILDCARD);
    assert_string_equal(router_group_name(r.group), "anthropic/*");
    up = router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, sizeof buf);
    assert_string_equal(buf, "anthropic/claude-x");
    assert_string_equal(up, "claude-x");

    /* "*" catches the rest and substitutes into the deployment's model */
    assert_true(router_resolve(f->rt, "llama3", &r));
    assert_string_equal(router_group_name(r.group), "*");
    up = router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, sizeof buf);
    assert_string_equal(buf, "openai/llama3");
    assert_string_equal(up, "llama3");

    /* several stars, in order */
    assert_true(router_resolve(f->rt, "team-blue/m-7b", &r));
    assert_string_equal(router_group_name(r.group), "team-*/m-*");
    assert_int_equal(r.ncap, 2);
    router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, sizeof buf);
    assert_string_equal(buf, "hosted_vllm/blue-7b");
    /* more parts than the model has stars: the requested name as it is */
    assert_true(router_resolve(f->rt, "x/a/b", &r));
    assert_string_equal(router_group_name(r.group), "x/*/*");
    router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, sizeof buf);
    assert_string_equal(buf, "x/a/b");
    /* no star in the model: the model as configured */
    assert_true(router_resolve(f->rt, "fixed-anything", &r));
    up = router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, sizeof buf);
    assert_string_equal(buf, "openai/gpt-4o-mini");
    assert_string_equal(up, "gpt-4o-mini");
    assert_null(router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, 5));

    /* a deployment id pins that deployment; a litellm model name routes to its deployments */
    assert_true(router_resolve(f->rt, "g4o", &r));
    assert_int_equal(r.via, ROUTER_VIA_DEPLOYMENT_ID);
    assert_string_equal(r.pinned->id, "g4o");
    assert_true(router_resolve(f->rt, "openai/gpt-4o", &r));
    assert_int_equal(r.via, ROUTER_VIA_LITELLM_MODEL);
    assert_int_equal(router_group_size(r.group), 1);
    assert_string_equal(router_group_at(f->rt, r.group, 0)->id, "g4o");

    /* aliases for /v1/models */
    assert_int_equal(router_alias_count(f->rt), 3);
    bool seen_hidden = false;
    for (size_t i = 0; i < router_alias_count(f->rt); i++) {
        const char *a, *g;
        bool hidden;
        router_alias_at(f->rt, i, &a, &g, &hidden);
        if (strcmp(a, "secret") == 0) {
            assert_true(hidden);
            assert_string_equal(g, "gpt-4o");
            seen_hidden = true;
        }
    }
    assert_true(seen_hidden);

    /* specificity: the longer pattern wins over a shorter one that also matches */
    mk(f, "model_list:\n" DEP("short", "openai/*", "openai/*", "")
              DEP("long", "openai/gpt-*", "azure/*", ""));
    assert_true(router_resolve(f->rt, "openai/gpt-5", &r));
    assert_string_equal(router_group_name(r.group), "openai/gpt-*");
    router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, sizeof buf);
    assert_string_equal(buf, "azure/5");
    assert_true(router_resolve(f->rt, "openai/o3", &r));
    assert_string_equal(router_group_name(r.group), "openai/*");
    assert_false(router_resolve(f->rt, "anthropic/claude", &r));
    assert_false(router_resolve(f->rt, "", &r));

    /* Python's re.match: greedy stars, the end of the name left free */
    mk(f, "model_list:\n" DEP("mini", "*-mini", "openai/*-mini", "")
              DEP("two", "p/*-*", "openai/*+*", ""));
    assert_true(router_resolve(f->rt, "gpt-4o-mini-2024", &r));
    assert_string_equal(router_group_name(r.group), "*-mini");
    router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, sizeof buf);
    assert_string_equal(buf, "openai/gpt-4o-mini");
    assert_true(router_resolve(f->rt, "p/a-b-c", &r));
    assert_string_equal(router_group_name(r.group), "p/*-*");
    router_model_for(&r, router_group_at(f->rt, r.group, 0), buf, sizeof buf);
    assert_string_equal(buf, "openai/a-b+c");
    assert_false(router_resolve(f->rt, "gpt-4o", &r));
}

/* ---- retry and fallback policy ------------------------------------------------------------- */

static void test_retries(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "")
              DEP("b", "m", "openai/x", "      num_retries: 1\n")
                  "router_settings:\n"
                  "  num_retries: 4\n"
                  "  retry_policy:\n"
                  "    RateLimitErrorRetries: 3\n"
                  "    TimeoutErrorRetries: 2\n"
                  "    BadRequestErrorRetries: 0\n"
                  "    AuthenticationErrorRetries: 0\n"
                  "    InternalServerErrorRetries: 6\n");
    const cfg_deployment *a = dep(f, "a"), *b = dep(f, "b");
    /* global, request, deployment */
    assert_int_equal(router_retries_for(f->rt, a, ROUTER_CONNECTION_ERROR, -1), 4);
    assert_int_equal(router_retries_for(f->rt, a, ROUTER_CONNECTION_ERROR, 9), 9);
    assert_int_equal(router_retries_for(f->rt, b, ROUTER_CONNECTION_ERROR, 9), 1);
    assert_int_equal(router_retries_for(f->rt, NULL, ROUTER_CONNECTION_ERROR, -1), 4);
    /* retry_policy for the class wins over all of them */
    assert_int_equal(router_retries_for(f->rt, b, ROUTER_RATE_LIMITED, 9), 3);
    assert_int_equal(router_retries_for(f->rt, a, ROUTER_TIMEOUT, -1), 2);
    assert_int_equal(router_retries_for(f->rt, a, ROUTER_SERVER_ERROR, -1), 6);
    assert_int_equal(router_retries_for(f->rt, a, ROUTER_AUTH_ERROR, 5), 0);
    assert_int_equal(router_retries_for(f->rt, a, ROUTER_BAD_REQUEST, -1), 0);
    assert_int_equal(router_retries_for(f->rt, a, ROUTER_CONTEXT_WINDOW, -1), 0);
    /* content policy is a bad request unless it has its own key */
    assert_int_equal(router_retries_for(f->rt, a, ROUTER_CONTENT_POLICY, -1), 0);
    /* not in the policy: the count before it */
    assert_int_equal(router_retries_for(f->rt, b, ROUTER_NOT_FOUND, -1), 1);

    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "")
              "router_settings: {retry_policy: {ContentPolicyViolationErrorRetries: 5, "
              "BadRequestErrorRetries: 1}}\n");
    assert_int_equal(router_retries_for(f->rt, dep(f, "a"), ROUTER_CONTENT_POLICY, -1), 5);
    assert_int_equal(router_retries_for(f->rt, dep(f, "a"), ROUTER_SERVER_ERROR, -1), 2);
}

static void test_should_retry(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              DEP("solo", "s", "openai/x", "")
                  "router_settings:\n"
                  "  context_window_fallbacks: [{\"m\": [\"s\"]}]\n");
    const router_group *m = grp(f, "m"), *s = grp(f, "s");
    assert_true(router_should_retry(f->rt, m, ROUTER_SERVER_ERROR, NULL, T0));
    assert_true(router_should_retry(f->rt, m, ROUTER_BAD_REQUEST, NULL, T0));
    assert_false(router_should_retry(f->rt, m, ROUTER_NOT_FOUND, NULL, T0));
    assert_false(router_should_retry(f->rt, m, ROUTER_CONTEXT_WINDOW, NULL, T0));
    assert_true(router_should_retry(f->rt, m, ROUTER_CONTENT_POLICY, NULL, T0));
    assert_true(router_should_retry(f->rt, m, ROUTER_AUTH_ERROR, NULL, T0));
    assert_false(router_should_retry(f->rt, s, ROUTER_AUTH_ERROR, NULL, T0));
    /* no healthy deployment left: no retry */
    fail_with(f, "a", ROUTER_RATE_LIMITED, 429, -1, T0);
    assert_true(router_should_retry(f->rt, m, ROUTER_RATE_LIMITED, NULL, T0));
    fail_with(f, "b", ROUTER_RATE_LIMITED, 429, -1, T0);
    assert_false(router_should_retry(f->rt, m, ROUTER_SERVER_ERROR, NULL, T0));
    cJSON *req = cJSON_Parse("{\"content_policy_fallbacks\": [{\"m\": [\"s\"]}]}");
    assert_false(router_should_retry(f->rt, s, ROUTER_CONTENT_POLICY, req, T0));
    cJSON_Delete(req);
}

static void test_backoff(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              DEP("solo", "s", "openai/x", ""));
    const router_group *m = grp(f, "m"), *s = grp(f, "s");
    /* another healthy deployment: retry at once (on it) */
    assert_int_equal(router_backoff_ms(f->rt, m, 0, 7, T0), 0);
    /* the upstream's Retry-After when reasonable */
    assert_int_equal(router_backoff_ms(f->rt, s, 0, 3, T0), 3000);
    assert_int_equal(router_backoff_ms(f->rt, s, 4, 0.25, T0), 250);
    /* otherwise exponential from 0.5 s with jitter in [0.75, 1] (a Retry-After over 60 s is
     * not obeyed); LiteLLM's first two waits share the exponent */
    static const int base[] = {500, 500, 1000, 2000, 4000, 8000, 8000, 8000};
    for (int attempt = 0; attempt < 8; attempt++)
        for (int k = 0; k < 50; k++) {
            int ms = router_backoff_ms(f->rt, s, attempt, k % 2 ? 120 : -1, T0);
            assert_true(ms >= base[attempt] * 3 / 4 && ms <= base[attempt]);
        }
    fail_with(f, "a", ROUTER_RATE_LIMITED, 429, -1, T0);
    fail_with(f, "b", ROUTER_RATE_LIMITED, 429, -1, T0);
    int ms = router_backoff_ms(f->rt, m, 2, -1, T0); /* nobody healthy: wait */
    assert_true(ms >= 750 && ms <= 1000);

    /* retry_after is the floor */
    mk(f, "model_list:\n" DEP("solo", "s", "openai/x", "") "router_settings: {retry_after: 2}\n");
    assert_int_equal(router_backoff_ms(f->rt, grp(f, "s"), 0, -1, T0), 2000);
    assert_int_equal(router_backoff_ms(f->rt, NULL, 0, 1, T0), 1000);
}

static int fb(fixture *f, const char *group, router_outcome oc, const char *req_json,
              const char **out, int max)
{
    cJSON *req = req_json ? cJSON_Parse(req_json) : NULL;
    if (req_json)
        assert_non_null(req);
    int n = router_fallbacks(f->rt, group, oc, req, out, max);
    /* the strings may point into req: copy them to static storage for the caller */
    static char keep[8][64];
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(keep[i], sizeof keep[i], "%s", out[i]);
        out[i] = keep[i];
    }
    cJSON_Delete(req);
    return n;
}

static void test_fallbacks(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "gpt-4", "openai/x", "")
              "router_settings:\n"
              "  fallbacks: [{\"gpt-4\": [\"claude\", \"gpt-4\", \"mistral\", \"llama\"]}, "
              "{\"gpt-3.5\": [\"gpt-4\"]}, {\"*\": [\"star\"]}]\n"
              "  context_window_fallbacks: [{\"gpt-4\": [\"gpt-4-32k\"]}]\n"
              "  default_fallbacks: [\"dflt\"]\n"
              "  max_fallbacks: 2\n");
    const char *out[8];
    /* generic: the group's list, without itself, at most max_fallbacks */
    assert_int_equal(fb(f, "gpt-4", ROUTER_SERVER_ERROR, NULL, out, 8), 2);
    assert_string_equal(out[0], "claude");
    assert_string_equal(out[1], "mistral");
    assert_int_equal(fb(f, "gpt-4", ROUTER_RATE_LIMITED, NULL, out, 1), 1);
    /* content-policy errors without content_policy_fallbacks use the generic lists */
    assert_int_equal(fb(f, "gpt-4", ROUTER_CONTENT_POLICY, NULL, out, 8), 2);
    assert_string_equal(out[0], "claude");
    /* context-window errors: their own list, and nothing else when it has no entry */
    assert_int_equal(fb(f, "gpt-4", ROUTER_CONTEXT_WINDOW, NULL, out, 8), 1);
    assert_string_equal(out[0], "gpt-4-32k");
    assert_int_equal(fb(f, "gpt-3.5", ROUTER_CONTEXT_WINDOW, NULL, out, 8), 0);
    /* the group without its provider prefix */
    assert_int_equal(fb(f, "openai/gpt-3.5", ROUTER_TIMEOUT, NULL, out, 8), 1);
    assert_string_equal(out[0], "gpt-4");
    /* anything else: "*", where default_fallbacks win (LiteLLM appends them last) */
    assert_int_equal(fb(f, "other", ROUTER_SERVER_ERROR, NULL, out, 8), 1);
    assert_string_equal(out[0], "dflt");

    /* the request's lists win: plain names apply to every error class */
    assert_int_equal(fb(f, "gpt-4", ROUTER_CONTEXT_WINDOW,
                        "{\"fallbacks\": [\"r1\", \"gpt-4\", \"r2\", \"r3\"]}", out, 8),
                     2);
    assert_string_equal(out[0], "r1");
    assert_string_equal(out[1], "r2");
    assert_int_equal(fb(f, "gpt-4", ROUTER_SERVER_ERROR,
                        "[{\"model\": \"r9\", \"messages\": []}]", out, 8),
                     1);
    assert_string_equal(out[0], "r9");
    /* standard format in the request replaces the configured list (and its "*") */
    assert_int_equal(fb(f, "gpt-4", ROUTER_SERVER_ERROR, "{\"fallbacks\": [{\"gpt-4\": [\"q\"]}]}",
                        out, 8),
                     1);
    assert_string_equal(out[0], "q");
    assert_int_equal(fb(f, "zzz", ROUTER_SERVER_ERROR, "{\"fallbacks\": [{\"gpt-4\": [\"q\"]}]}",
                        out, 8),
                     0);
    assert_int_equal(fb(f, "gpt-4", ROUTER_CONTEXT_WINDOW,
                        "{\"context_window_fallbacks\": [{\"gpt-4\": [\"big\"]}]}", out, 8),
                     1);
    assert_string_equal(out[0], "big");
    assert_int_equal(fb(f, "gpt-4", ROUTER_CONTENT_POLICY,
                        "{\"content_policy_fallbacks\": [{\"gpt-4\": [\"safe\"]}]}", out, 8),
                     1);
    assert_string_equal(out[0], "safe");

    /* nothing configured */
    mk(f, "model_list:\n" DEP("a", "gpt-4", "openai/x", ""));
    assert_int_equal(fb(f, "gpt-4", ROUTER_SERVER_ERROR, NULL, out, 8), 0);
    mk(f, "model_list:\n" DEP("a", "gpt-4", "openai/x", "")
              "litellm_settings: {default_fallbacks: [\"d1\", \"d2\"]}\n");
    assert_int_equal(fb(f, "gpt-4", ROUTER_SERVER_ERROR, NULL, out, 8), 2);
    assert_string_equal(out[1], "d2");
}

static void test_timeouts(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      timeout: 30\n      stream_timeout: 7\n")
              DEP("b", "m", "openai/x", "")
                  "litellm_settings: {request_timeout: 90}\n"
                  "router_settings: {stream_timeout: 12}\n");
    assert_true(router_timeout_for(f->rt, dep(f, "a"), false) == 30);
    assert_true(router_timeout_for(f->rt, dep(f, "a"), true) == 7);
    assert_true(router_timeout_for(f->rt, dep(f, "b"), true) == 12);
    assert_true(router_timeout_for(f->rt, dep(f, "b"), false) == 90);
}

static void test_outcome_from_status(void **state)
{
    (void)state;
    assert_int_equal(router_outcome_from_status(200), ROUTER_OK);
    assert_int_equal(router_outcome_from_status(0), ROUTER_CONNECTION_ERROR);
    assert_int_equal(router_outcome_from_status(400), ROUTER_BAD_REQUEST);
    assert_int_equal(router_outcome_from_status(401), ROUTER_AUTH_ERROR);
    assert_int_equal(router_outcome_from_status(403), ROUTER_BAD_REQUEST);
    assert_int_equal(router_outcome_from_status(404), ROUTER_NOT_FOUND);
    assert_int_equal(router_outcome_from_status(408), ROUTER_TIMEOUT);
    assert_int_equal(router_outcome_from_status(429), ROUTER_RATE_LIMITED);
    assert_int_equal(router_outcome_from_status(503), ROUTER_SERVER_ERROR);
    assert_int_equal(router_outcome_from_status(529), ROUTER_SERVER_ERROR);
}

/* ---- threads and cost ----------------------------------------------------------------------- */

typedef struct {
    fixture *f;
    int n, picked, refused;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    const router_group *g = router_find_group(w->f->rt, "m");
    for (int i = 0; i < w->n; i++) {
        router_pick_result r;
        if (!router_pick(w->f->rt, g, NULL, 0, T0 + 1, &r))
            continue;
        if (!router_begin(w->f->rt, r.d, T0 + 1)) {
            w->refused++;
            continue;
        }
        w->picked++;
        router_report rep = {ROUTER_OK, 200, 5, 1, -1, 0, -1};
        router_end(w->f->rt, r.d, &rep, T0 + 1);
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      rpm: 50000\n")
              DEP("b", "m", "openai/x", "      rpm: 1000000\n")
                  DEP("c", "m", "openai/x", "      rpm: 1000000\n")
              "router_settings: {routing_strategy: least-busy, enable_pre_call_checks: true}\n");
    int per = SANITIZED ? 60000 : 200000;
    worker_arg w[2] = {{f, per, 0, 0}, {f, per, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    long reqs = 0, toks = 0, succ = 0;
    static const char *const ids[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        router_dep_stats st;
        router_stats(f->rt, dep(f, ids[i]), T0 + 1, &st);
        assert_int_equal(st.in_flight, 0);
        assert_int_equal(st.failures_this_minute, 0);
        assert_int_equal(st.requests_this_minute, st.successes_this_minute);
        assert_int_equal(st.requests_this_minute, st.tokens_this_minute);
        if (i == 0)
            assert_true(st.requests_this_minute <= 50000); /* rpm exact across threads */
        reqs += st.requests_this_minute;
        toks += st.tokens_this_minute;
        succ += st.successes_this_minute;
    }
    assert_int_equal(reqs, w[0].picked + w[1].picked);
    assert_int_equal(toks, reqs);
    assert_int_equal(succ, reqs);
}

static void test_pick_cost(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "      weight: 1\n")
              DEP("b", "m", "openai/x", "      weight: 2\n")
                  DEP("c", "m", "openai/x", "      weight: 3\n")
                      DEP("d", "m", "openai/x", "      weight: 4\n"));
    const router_group *g = grp(f, "m");
    const char *ex[] = {"zz"};
    struct timespec a, b;
    int n = 1000000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    unsigned sink = 0;
    for (int i = 0; i < n; i++) {
        router_pick_result r;
        router_pick(f->rt, g, ex, 1, T0 + 1, &r);
        sink += (unsigned char)r.d->id[0];
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
    fprintf(stderr, "router_pick: %.1f ns per pick over 4 deployments (%u)\n", ns, sink & 1);
    if (!SANITIZED)
        assert_true(ns < 1000);
}

/* ---- background health checks -------------------------------------------------------------- */

static void test_health_marks(void **state)
{
    fixture *f = *state;
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              DEP("solo", "s", "openai/x", ""));
    const cfg_deployment *a = dep(f, "a"), *b = dep(f, "b"), *solo = dep(f, "solo");
    router_pick_result r;
    /* no answer, 401, 404, 5xx mark down; the pick keeps to the other one */
    const int down[] = {0, 401, 404, 500, 503};
    for (size_t k = 0; k < sizeof down / sizeof *down; k++) {
        assert_true(router_health_report(f->rt, b, down[k], 10, T0));
        for (int i = 0; i < 50; i++)
            assert_string_equal(pick_id(f, "m", T0 + 1), "a");
    }
    router_dep_stats st;
    router_stats(f->rt, b, T0 + 1, &st);
    assert_true(st.health_down);
    assert_int_equal(st.cooldown_until, 0); /* a mark is not a cooldown */
    assert_false(router_is_cooling(f->rt, b, T0 + 1));
    /* a excluded (a retry): b stays out; the caller sees an exclusion, not a cooldown */
    const char *ex[] = {"a"};
    assert_false(router_pick(f->rt, grp(f, "m"), ex, 1, T0 + 1, &r));
    assert_int_equal(r.status, ROUTER_NONE_EXCLUDED);
    assert_int_equal(r.nunhealthy, 1);
    assert_int_equal(r.ncooling, 0);
    /* a healthy answer (or 400/408/429: the server is there) clears the mark at once */
    const int up[] = {200, 400, 408, 429};
    for (size_t k = 0; k < sizeof up / sizeof *up; k++) {
        assert_true(router_health_report(f->rt, b, 500, 10, T0));
        assert_false(router_health_report(f->rt, b, up[k], 10, T0 + 1));
        const char *ids[] = {"a", "b"};
        int counts[2];
        count_picks(f, "m", 200, ids, 2, counts);
        assert_true(counts[1] > 50);
    }
    /* a mark ends by itself hold_s later if no check reports again */
    assert_true(router_health_report(f->rt, b, 0, 2, T0));
    assert_string_equal(pick_id(f, "m", T0 + 1.9), "a");
    {
        int nb = 0;
        for (int i = 0; i < 200; i++)
            nb += strcmp(pick_id(f, "m", T0 + 2.1), "b") == 0;
        assert_true(nb > 50);
    }
    /* safety net: every deployment marked → the marks are ignored */
    assert_true(router_health_report(f->rt, a, 500, 10, T0 + 3));
    assert_true(router_health_report(f->rt, b, 500, 10, T0 + 3));
    {
        int na = 0;
        for (int i = 0; i < 200; i++)
            na += strcmp(pick_id(f, "m", T0 + 4), "a") == 0;
        assert_true(na > 50 && na < 150);
    }
    assert_true(router_should_retry(f->rt, grp(f, "m"), ROUTER_SERVER_ERROR, NULL, T0 + 4));
    assert_true(router_health_report(f->rt, solo, 0, 10, T0 + 3));
    assert_string_equal(pick_id(f, "s", T0 + 4), "solo");
    /* ... and so when the only unmarked one is cooling: the marked one serves */
    assert_false(router_health_report(f->rt, a, 200, 10, T0 + 3));
    assert_true(fail_with(f, "a", ROUTER_RATE_LIMITED, 429, 30, T0 + 3));
    for (int i = 0; i < 20; i++)
        assert_string_equal(pick_id(f, "m", T0 + 4), "b");
    assert_true(router_should_retry(f->rt, grp(f, "m"), ROUTER_SERVER_ERROR, NULL, T0 + 4));
    /* disable_cooldowns turns the marks off */
    mk(f, "model_list:\n" DEP("a", "m", "openai/x", "") DEP("b", "m", "openai/x", "")
              "router_settings: {disable_cooldowns: true}\n");
    assert_false(router_health_report(f->rt, dep(f, "b"), 500, 10, T0));
    {
        int nb = 0;
        for (int i = 0; i < 200; i++)
            nb += strcmp(pick_id(f, "m", T0 + 1), "b") == 0;
        assert_true(nb > 50);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_override_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpm_tpm_weighting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_tiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_least_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_based, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_based_tpm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tpm_counts_the_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_per_token_and_ttft, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpm_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cooldown_allowed_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cooldown_default_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_cooling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_should_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
        cmocka_unit_test(test_outcome_from_status),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pick_cost, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
