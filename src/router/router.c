/* router — see router.h for what it owns and which LiteLLM rules it reproduces.
 *
 * Layout: everything router_new builds (groups, lookup tables, settings, per-deployment static
 * values) is immutable afterwards. The mutable part is one dstate per deployment, a 64-byte
 * aligned block of atomics so that two deployments never share a cache line. Counters that
 * belong to "this minute" are packed with the minute they count into one 64-bit word and
 * updated with compare-and-swap, so a new minute resets them without a sweeper and without a
 * lock: the first writer of a minute replaces the word. */
#include "router/router.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "providers/provider.h"

/* LiteLLM's constants (litellm/constants.py) */
#define DEFAULT_NUM_RETRIES 2           /* openai.DEFAULT_MAX_RETRIES */
#define DEFAULT_ALLOWED_FAILS 3
#define DEFAULT_COOLDOWN_TIME_S 5.0
#define DEFAULT_MAX_FALLBACKS 5         /* ROUTER_MAX_FALLBACKS */
#define FAILURE_THRESHOLD_PERCENT 0.5
#define FAILURE_THRESHOLD_MIN_REQUESTS 5
#define SINGLE_DEPLOYMENT_FAILURE_THRESHOLD 1000
#define INITIAL_RETRY_DELAY_S 0.5
#define MAX_RETRY_DELAY_S 8.0
#define HEADER_RETRY_AFTER_MAX_S 60.0   /* a longer Retry-After is not obeyed for backoff */
/* lowest_latency.py averages the last 10 samples; an EWMA with the same centre of mass */
#define LATENCY_ALPHA (2.0 / 11.0)
#define TIMEOUT_LATENCY_MS 1000000.0    /* a timed-out call counts as 1000 s, as LiteLLM logs it */
#define DEFAULT_LATENCY_TTL_S 3600.0

/* A pick snapshots availability in a stack bitmap: groups are capped at this size. */
#define MAX_GROUP 4096
/* Wildcard matching backtracks over the requested name: bound its cost. */
#define MAX_WILDCARD_NAME 1024

#define M24 0xFFFFFFull
#define M20 0xFFFFFull
#define M40 0xFFFFFFFFFFull

typedef struct {
    _Alignas(64) atomic_int inflight;
    atomic_llong cooldown_until_ms; /* 0 = not cooling */
    atomic_ullong rpm;              /* minute << 32 | requests */
    atomic_ullong tpm;              /* (minute & M24) << 40 | tokens */
    atomic_ullong sf;               /* (minute & M24) << 40 | successes << 20 | failures */
    atomic_ullong lat;              /* EWMA latency (ms per output token, else ms) as double
                                       bits; 0 = no sample */
    atomic_llong lat_at_ms;         /* when the last sample came */
    atomic_ullong ttft;             /* EWMA time to first token of streams (ms); 0 = none */
    atomic_llong ttft_at_ms;
    atomic_llong hc_down_until_ms;  /* a background health check found it down; 0 = not */
    pthread_mutex_t mu;             /* the allowed_fails counter below */
    int fails;
    double fails_expire;
} dstate;

typedef struct {
    double weight;      /* litellm_params.weight; < 0 = absent */
    long long order;    /* litellm_params.order; LLONG_MAX = absent (ranks last) */
    int num_retries;    /* litellm_params.num_retries; -1 = absent */
    double cooldown;    /* litellm_params.cooldown_time; < 0 = absent */
    int group;          /* its model_name group */
} dinfo;

struct router_group {
    const char *name;
    int *idx;           /* deployment indices into cfg->deps */
    double *w;          /* simple-shuffle weight of each member */
    int n;
    bool wildcard;
    int nlit;           /* wildcard: literal segments between the stars (stars + 1) */
    const char **lit;   /* pointers into name; lengths in litlen */
    size_t *litlen;
    size_t spec_len, spec_cx; /* LiteLLM's specificity: length and complexity of the regex */
};

typedef struct {
    const char *key;
    uint64_t h;
    int val;
} hent;

typedef struct {
    hent *e;
    size_t mask;
} htab;

typedef struct {
    const char *name, *target;
    bool hidden;
} alias_ent;

struct router {
    const cfg *c;
    router_settings s;
    size_t ndeps;
    dstate *st;
    dinfo *di;
    router_group *groups;
    int ngroups, nprimary;
    htab by_name;   /* model_name -> group */
    htab by_model;  /* litellm_params.model -> group (only names that are not a model_name) */
    htab by_id;     /* model_info.id -> deployment */
    int *wild;      /* wildcard groups, most specific first */
    int nwild;
    alias_ent *aliases;
    size_t naliases;
    htab by_alias;
    char *notes[8];
    size_t nnotes;
    atomic_ullong seed, gen, nthreads;
};

/* ---- small helpers ----------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static bool ht_init(htab *t, size_t n)
{
    size_t sz = 8;
    while (sz < n * 2)
        sz <<= 1;
    t->e = calloc(sz, sizeof *t->e);
    t->mask = sz - 1;
    return t->e != NULL;
}

/* Inserts key -> val unless present; returns the value now stored. */
static int ht_put(htab *t, const char *key, int val)
{
    uint64_t h = fnv1a(key);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        hent *e = &t->e[i];
        if (!e->key) {
            e->key = key;
            e->h = h;
            e->val = val;
            return val;
        }
        if (e->h == h && strcmp(e->key, key) == 0)
            return e->val;
    }
}

static int ht_get(const htab *t, const char *key)
{
    if (!t->e)
        return -1;
    uint64_t h = fnv1a(key);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const hent *e = &t->e[i];
        if (!e->key)
            return -1;
        if (e->h == h && strcmp(e->key, key) == 0)
            return e->val;
    }
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static atomic_ullong g_generation = 1;

static _Thread_local struct {
    unsigned long long gen;
    uint64_t s;
} t_rng;

/* Per-thread stream: the router's seed mixed with the thread's arrival order, so one thread
 * (tests) replays exactly and threads never share state. */
static uint64_t rnd64(router *rt)
{
    unsigned long long gen = atomic_load_explicit(&rt->gen, memory_order_acquire);
    if (t_rng.gen != gen) {
        unsigned long long k = atomic_fetch_add_explicit(&rt->nthreads, 1, memory_order_relaxed);
        t_rng.s = atomic_load_explicit(&rt->seed, memory_order_relaxed) ^
                  (k * 0xD1B54A32D192ED03ull);
        t_rng.gen = gen;
    }
    return splitmix64(&t_rng.s);
}

static double rnd01(router *rt)
{
    return (double)(rnd64(rt) >> 11) * 0x1.0p-53;
}

static uint64_t rnd_below(router *rt, uint64_t n)
{
    return n ? rnd64(rt) % n : 0;
}

static long long to_ms(double t)
{
    return (long long)llround(t * 1000.0);
}

static uint64_t minute_of(double now)
{
    return now > 0 ? (uint64_t)(now / 60.0) : 0;
}

static double dbits_get(const atomic_ullong *a)
{
    unsigned long long b = atomic_load_explicit(a, memory_order_relaxed);
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static unsigned long long dbits(double d)
{
    unsigned long long b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* a value's text for messages, shortened */
static void show(const cJSON *v, char *buf, size_t len)
{
    if (cJSON_IsString(v)) {
        snprintf(buf, len, "'%s'", v->valuestring);
        return;
    }
    char *t = cJSON_PrintUnformatted(v);
    snprintf(buf, len, "%s", t ? t : "?");
    free(t);
    if (strlen(buf) == len - 1 && len > 4)
        memcpy(buf + len - 4, "...", 4);
}

/* Numbers may arrive as strings (os.environ/ substitution): accept both. */
static bool as_num(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return isfinite(*out);
    }
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        double d = strtod(v->valuestring, &end);
        while (*end == ' ' || *end == '\t')
            end++;
        if (*end || !isfinite(d))
            return false;
        *out = d;
        return true;
    }
    return false;
}

static bool as_whole(const cJSON *v, long long lo, long long hi, long long *out)
{
    double d;
    if (!as_num(v, &d) || d != floor(d) || d < (double)lo || d > (double)hi)
        return false;
    *out = (long long)d;
    return true;
}

static bool as_bool(const cJSON *v, bool *out)
{
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return true;
    }
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) {
            *out = true;
            return true;
        }
        if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* ---- settings ---------------------------------------------------------------------------- */

typedef struct {
    const cJSON *v;
    const char *section;
} setting;

/* router_settings wins over litellm_settings; a null value is "not set" (Python None). */
static setting find_setting(const cfg *c, const char *key)
{
    const cJSON *secs[2] = {c->router_json, c->litellm_json};
    const char *names[2] = {"router_settings", "litellm_settings"};
    for (int i = 0; i < 2; i++) {
        if (!cJSON_IsObject(secs[i]))
            continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(secs[i], key);
        if (v && !cJSON_IsNull(v))
            return (setting){v, names[i]};
    }
    return (setting){NULL, NULL};
}

static const char *const retry_policy_keys[ROUTER_NCLASSES] = {
    "BadRequestErrorRetries",  "AuthenticationErrorRetries",
    "TimeoutErrorRetries",     "RateLimitErrorRetries",
    "ContentPolicyViolationErrorRetries", "InternalServerErrorRetries",
    "NotFoundErrorRetries",    NULL, NULL,
};

static const char *const allowed_fails_keys[ROUTER_NCLASSES] = {
    "BadRequestErrorAllowedFails",  "AuthenticationErrorAllowedFails",
    "TimeoutErrorAllowedFails",     "RateLimitErrorAllowedFails",
    "ContentPolicyViolationErrorAllowedFails", "InternalServerErrorAllowedFails",
    "NotFoundErrorAllowedFails",    "ServiceUnavailableErrorAllowedFails",
    "BadGatewayErrorAllowedFails",
};

static bool parse_policy(setting st, const char *key, const char *const *names, int *out,
                         char *err, size_t errlen)
{
    char shown[96];
    if (!cJSON_IsObject(st.v)) {
        show(st.v, shown, sizeof shown);
        set_err(err, errlen, "%s.%s must be a mapping like {\"%s\": 3}, got %s", st.section, key,
                names[3], shown);
        return false;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, st.v)
    {
        int k = -1;
        for (int i = 0; i < ROUTER_NCLASSES; i++)
            if (names[i] && strcmp(names[i], it->string) == 0)
                k = i;
        if (k < 0) {
            char list[512] = "";
            for (int i = 0; i < ROUTER_NCLASSES; i++)
                if (names[i])
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                             list[0] ? ", " : "", names[i]);
            set_err(err, errlen, "%s.%s: unknown key '%s' (expected one of %s)", st.section, key,
                    it->string, list);
            return false;
        }
        if (cJSON_IsNull(it))
            continue;
        long long n;
        if (!as_whole(it, 0, INT_MAX, &n)) {
            show(it, shown, sizeof shown);
            set_err(err, errlen, "%s.%s.%s must be a whole number >= 0, got %s", st.section, key,
                    it->string, shown);
            return false;
        }
        out[k] = (int)n;
    }
    return true;
}

static bool all_strings(const cJSON *arr)
{
    if (!cJSON_IsArray(arr))
        return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it))
            return false;
    }
    return true;
}

/* [{"gpt-4": ["claude", ...]}, ...] */
static bool valid_fallback_list(setting st, const char *key, char *err, size_t errlen)
{
    char shown[96];
    if (!cJSON_IsArray(st.v)) {
        show(st.v, shown, sizeof shown);
        set_err(err, errlen, "%s.%s must be a list like [{\"gpt-4\": [\"claude\"]}], got %s",
                st.section, key, shown);
        return false;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, st.v)
    {
        if (!cJSON_IsObject(item) || cJSON_GetArraySize(item) != 1) {
            show(item, shown, sizeof shown);
            set_err(err, errlen,
                    "%s.%s[%d] must map exactly one model group to a list of fallback groups, "
                    "like {\"gpt-4\": [\"claude\"]}, got %s",
                    st.section, key, i, shown);
            return false;
        }
        const cJSON *list = item->child;
        if (!all_strings(list)) {
            show(list, shown, sizeof shown);
            set_err(err, errlen, "%s.%s[%d].%s must be a list of model group names, got %s",
                    st.section, key, i, list->string, shown);
            return false;
        }
        i++;
    }
    return true;
}

static void add_note(router *rt, const char *text)
{
    if (rt->nnotes >= sizeof rt->notes / sizeof *rt->notes - 1)
        return;
    rt->notes[rt->nnotes] = strdup(text);
    if (rt->notes[rt->nnotes])
        rt->nnotes++;
}

static bool load_aliases(router *rt, setting st, char *err, size_t errlen)
{
    char shown[96];
    if (!cJSON_IsObject(st.v)) {
        show(st.v, shown, sizeof shown);
        set_err(err, errlen,
                "%s.model_group_alias must be a mapping like {\"alias\": \"model-group\"}, got %s",
                st.section, shown);
        return false;
    }
    size_t n = (size_t)cJSON_GetArraySize(st.v);
    rt->aliases = calloc(n ? n : 1, sizeof *rt->aliases);
    if (!rt->aliases || !ht_init(&rt->by_alias, n)) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, st.v)
    {
        alias_ent a = {it->string, NULL, false};
        if (cJSON_IsString(it) && it->valuestring[0]) {
            a.target = it->valuestring;
        } else if (cJSON_IsObject(it)) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "model");
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(it, "hidden");
            if (cJSON_IsString(m) && m->valuestring[0])
                a.target = m->valuestring;
            if (h && !cJSON_IsNull(h) && !as_bool(h, &a.hidden)) {
                show(h, shown, sizeof shown);
                set_err(err, errlen, "%s.model_group_alias.%s.hidden must be true or false, got %s",
                        st.section, it->string, shown);
                return false;
            }
        }
        if (!a.target) {
            show(it, shown, sizeof shown);
            set_err(err, errlen,
                    "%s.model_group_alias.%s must be a model group name or {\"model\": name, "
                    "\"hidden\": true}, got %s",
                    st.section, it->string, shown);
            return false;
        }
        if (ht_put(&rt->by_alias, a.name, (int)rt->naliases) == (int)rt->naliases)
            rt->aliases[rt->naliases++] = a;
    }
    return true;
}

static bool load_settings(router *rt, char *err, size_t errlen)
{
    const cfg *c = rt->c;
    router_settings *s = &rt->s;
    char shown[96];
    *s = (router_settings){
        .strategy = ROUTER_SIMPLE_SHUFFLE,
        .num_retries = DEFAULT_NUM_RETRIES,
        .max_fallbacks = DEFAULT_MAX_FALLBACKS,
        .allowed_fails = DEFAULT_ALLOWED_FAILS,
        .cooldown_time = DEFAULT_COOLDOWN_TIME_S,
        .latency_ttl = DEFAULT_LATENCY_TTL_S,
    };
    for (int i = 0; i < ROUTER_NCLASSES; i++)
        s->retry_policy[i] = s->allowed_fails_policy[i] = -1;

    setting st = find_setting(c, "routing_strategy");
    if (st.v) {
        const char *v = cJSON_IsString(st.v) ? st.v->valuestring : NULL;
        if (v && strcmp(v, "simple-shuffle") == 0) {
            s->strategy = ROUTER_SIMPLE_SHUFFLE;
        } else if (v && strcmp(v, "least-busy") == 0) {
            s->strategy = ROUTER_LEAST_BUSY;
        } else if (v && strcmp(v, "latency-based-routing") == 0) {
            s->strategy = ROUTER_LATENCY_BASED;
        } else if (v && (strcmp(v, "usage-based-routing-v2") == 0 ||
                         strcmp(v, "usage-based-routing") == 0)) {
            s->strategy = ROUTER_USAGE_BASED;
        } else if (v && strcmp(v, "cost-based-routing") == 0) {
            char note[160];
            snprintf(note, sizeof note, "%s.routing_strategy cost-based-routing is not "
                     "implemented: using simple-shuffle", st.section);
            add_note(rt, note);
        } else {
            show(st.v, shown, sizeof shown);
            set_err(err, errlen,
                    "%s.routing_strategy must be one of simple-shuffle, least-busy, "
                    "latency-based-routing, usage-based-routing-v2, usage-based-routing, "
                    "cost-based-routing; got %s",
                    st.section, shown);
            return false;
        }
    }

    struct {
        const char *key;
        int *out;
    } ints[] = {{"num_retries", &s->num_retries}, {"max_fallbacks", &s->max_fallbacks}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        st = find_setting(c, ints[i].key);
        if (!st.v)
            continue;
        long long n;
        if (!as_whole(st.v, 0, 1000000, &n)) {
            show(st.v, shown, sizeof shown);
            set_err(err, errlen, "%s.%s must be a whole number >= 0, got %s", st.section,
                    ints[i].key, shown);
            return false;
        }
        *ints[i].out = (int)n;
    }

    /* allowed_fails: LiteLLM switches from the failure-rate rule to counting only when the
     * router's value differs from litellm_settings' (default 3) — or a policy is given. */
    setting af_l = {NULL, NULL}, af_r = {NULL, NULL};
    if (cJSON_IsObject(c->litellm_json)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->litellm_json, "allowed_fails");
        if (v && !cJSON_IsNull(v))
            af_l = (setting){v, "litellm_settings"};
    }
    if (cJSON_IsObject(c->router_json)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->router_json, "allowed_fails");
        if (v && !cJSON_IsNull(v))
            af_r = (setting){v, "router_settings"};
    }
    long long lit_af = DEFAULT_ALLOWED_FAILS;
    setting afs[2] = {af_l, af_r};
    for (int i = 0; i < 2; i++) {
        if (!afs[i].v)
            continue;
        long long n;
        if (!as_whole(afs[i].v, 0, INT_MAX, &n)) {
            show(afs[i].v, shown, sizeof shown);
            set_err(err, errlen, "%s.allowed_fails must be a whole number >= 0, got %s",
                    afs[i].section, shown);
            return false;
        }
        s->allowed_fails = (int)n;
        if (i == 0)
            lit_af = n;
        else if (n != lit_af)
            s->allowed_fails_counting = true;
    }

    struct {
        const char *key;
        double *out;
        bool positive;
    } nums[] = {{"retry_after", &s->retry_after, false},
                {"timeout", &s->timeout, true},
                {"stream_timeout", &s->stream_timeout, true},
                {"cooldown_time", &s->cooldown_time, false}};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        st = find_setting(c, nums[i].key);
        if (!st.v)
            continue;
        double d;
        if (!as_num(st.v, &d) || d < 0 || (nums[i].positive && d == 0)) {
            show(st.v, shown, sizeof shown);
            set_err(err, errlen, "%s.%s must be a number of seconds %s 0, got %s", st.section,
                    nums[i].key, nums[i].positive ? ">" : ">=", shown);
            return false;
        }
        *nums[i].out = d;
    }

    struct {
        const char *key;
        bool *out;
    } bools[] = {{"disable_cooldowns", &s->disable_cooldowns},
                 {"enable_pre_call_checks", &s->enable_pre_call_checks}};
    for (size_t i = 0; i < sizeof bools / sizeof *bools; i++) {
        st = find_setting(c, bools[i].key);
        if (st.v && !as_bool(st.v, bools[i].out)) {
            show(st.v, shown, sizeof shown);
            set_err(err, errlen, "%s.%s must be true or false, got %s", st.section,
                    bools[i].key, shown);
            return false;
        }
    }

    s->enforce_deployment_limits = s->enable_pre_call_checks ||
                                   s->strategy == ROUTER_USAGE_BASED ||
                                   s->strategy == ROUTER_LATENCY_BASED;
    st = find_setting(c, "optional_pre_call_checks");
    if (st.v) {
        if (!cJSON_IsArray(st.v)) {
            show(st.v, shown, sizeof shown);
            set_err(err, errlen, "%s.optional_pre_call_checks must be a list, got %s", st.section,
                    shown);
            return false;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, st.v)
            if (cJSON_IsString(it) && strcmp(it->valuestring, "enforce_model_rate_limits") == 0)
                s->enforce_deployment_limits = true;
    }

    st = find_setting(c, "retry_policy");
    if (st.v && !parse_policy(st, "retry_policy", retry_policy_keys, s->retry_policy, err, errlen))
        return false;
    st = find_setting(c, "allowed_fails_policy");
    if (st.v) {
        if (!parse_policy(st, "allowed_fails_policy", allowed_fails_keys,
                          s->allowed_fails_policy, err, errlen))
            return false;
        s->allowed_fails_counting = true;
    }

    const char *lists[3] = {"fallbacks", "context_window_fallbacks", "content_policy_fallbacks"};
    const cJSON **louts[3] = {&s->fallbacks, &s->context_window_fallbacks,
                              &s->content_policy_fallbacks};
    for (int i = 0; i < 3; i++) {
        st = find_setting(c, lists[i]);
        if (!st.v)
            continue;
        if (!valid_fallback_list(st, lists[i], err, errlen))
            return false;
        *louts[i] = st.v;
    }
    st = find_setting(c, "default_fallbacks");
    if (st.v) {
        if (!all_strings(st.v)) {
            show(st.v, shown, sizeof shown);
            set_err(err, errlen, "%s.default_fallbacks must be a list of model group names, got %s",
                    st.section, shown);
            return false;
        }
        s->default_fallbacks = st.v;
    }

    st = find_setting(c, "routing_strategy_args");
    if (st.v) {
        if (!cJSON_IsObject(st.v)) {
            show(st.v, shown, sizeof shown);
            set_err(err, errlen, "%s.routing_strategy_args must be a mapping, got %s", st.section,
                    shown);
            return false;
        }
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(st.v, "lowest_latency_buffer");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(st.v, "ttl");
        if (b && !cJSON_IsNull(b) && (!as_num(b, &s->lowest_latency_buffer) ||
                                      s->lowest_latency_buffer < 0)) {
            show(b, shown, sizeof shown);
            set_err(err, errlen,
                    "%s.routing_strategy_args.lowest_latency_buffer must be a number >= 0, got %s",
                    st.section, shown);
            return false;
        }
        if (t && !cJSON_IsNull(t) && (!as_num(t, &s->latency_ttl) || s->latency_ttl <= 0)) {
            show(t, shown, sizeof shown);
            set_err(err, errlen, "%s.routing_strategy_args.ttl must be a number of seconds > 0, "
                                 "got %s", st.section, shown);
            return false;
        }
    }

    st = find_setting(c, "model_group_alias");
    if (st.v && !load_aliases(rt, st, err, errlen))
        return false;
    return true;
}

/* litellm_params.weight / order / num_retries / cooldown_time of each deployment */
static bool load_deployment_params(router *rt, char *err, size_t errlen)
{
    char shown[96];
    for (size_t i = 0; i < rt->ndeps; i++) {
        const cfg_deployment *d = &rt->c->deps[i];
        dinfo *di = &rt->di[i];
        *di = (dinfo){.weight = -1, .order = LLONG_MAX, .num_retries = -1, .cooldown = -1};
        const cJSON *p = d->litellm_params;
        if (!cJSON_IsObject(p))
            continue;
        const cJSON *v;
        const char *bad = NULL, *want = NULL;
        if ((v = cJSON_GetObjectItemCaseSensitive(p, "weight")) && !cJSON_IsNull(v) &&
            (!as_num(v, &di->weight) || di->weight < 0))
            bad = "weight", want = "a number >= 0";
        else if ((v = cJSON_GetObjectItemCaseSensitive(p, "order")) && !cJSON_IsNull(v) &&
                 !as_whole(v, INT_MIN, INT_MAX, &di->order))
            bad = "order", want = "a whole number";
        else if ((v = cJSON_GetObjectItemCaseSensitive(p, "cooldown_time")) && !cJSON_IsNull(v) &&
                 (!as_num(v, &di->cooldown) || di->cooldown < 0))
            bad = "cooldown_time", want = "a number of seconds >= 0";
        else if ((v = cJSON_GetObjectItemCaseSensitive(p, "num_retries")) && !cJSON_IsNull(v)) {
            long long n;
            if (!as_whole(v, 0, 1000000, &n))
                bad = "num_retries", want = "a whole number >= 0";
            else
                di->num_retries = (int)n;
        }
        if (bad) {
            show(v, shown, sizeof shown);
            set_err(err, errlen, "model '%s' (line %d): litellm_params.%s must be %s, got %s",
                    d->model_name, d->line, bad, want, shown);
            return false;
        }
    }
    return true;
}

/* ---- groups ------------------------------------------------------------------------------ */

/* Python's re.escape (3.7+) escapes these; LiteLLM ranks wildcard patterns by the length and
 * "complexity" of the escaped regex, so we compute the same numbers from the name. */
static void pattern_specificity(const char *name, size_t *len, size_t *cx)
{
    static const char esc[] = "()[]{}?*+-|^$\\.&~# \t\n\r\v\f";
    static const char complexity[] = "*+?\\^$|()";
    *len = *cx = 0;
    for (const char *p = name; *p; p++) {
        if (*p == '*') { /* "(.*)" */
            *len += 4;
            *cx += 3;
        } else if (strchr(esc, *p)) {
            *len += 2;
            *cx += 1 + (strchr(complexity, *p) ? 1 : 0);
        } else {
            *len += 1;
        }
    }
}

static bool build_wildcard(router_group *g)
{
    int stars = 0;
    for (const char *p = g->name; *p; p++)
        stars += *p == '*';
    if (stars > ROUTER_MAX_STARS)
        return false;
    g->wildcard = true;
    g->nlit = stars + 1;
    g->lit = calloc((size_t)g->nlit, sizeof *g->lit);
    g->litlen = calloc((size_t)g->nlit, sizeof *g->litlen);
    if (!g->lit || !g->litlen)
        return false;
    const char *p = g->name;
    for (int i = 0; i < g->nlit; i++) {
        const char *e = strchr(p, '*');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        g->lit[i] = p;
        g->litlen[i] = l;
        p += l + 1;
    }
    pattern_specificity(g->name, &g->spec_len, &g->spec_cx);
    return true;
}

/* Can literals k.. be found in order in name[pos..n)? (leftmost-first is optimal for existence) */
static bool lits_fit(const router_group *g, int k, const char *name, size_t pos, size_t n)
{
    for (; k < g->nlit; k++) {
        if (!g->litlen[k])
            continue;
        const char *f = memmem(name + pos, n - pos, g->lit[k], g->litlen[k]);
        if (!f)
            return false;
        pos = (size_t)(f - name) + g->litlen[k];
    }
    return true;
}

/* Python re.match of the pattern with each '*' as a greedy "(.*)": anchored at the start only.
 * Each star takes the longest text after which the rest of the pattern can still match; cost
 * O(stars * n^2) at worst, hence the cap on n. */
static bool wildcard_match(const router_group *g, const char *name, router_route *r)
{
    size_t n = strlen(name);
    if (n > MAX_WILDCARD_NAME || n < g->litlen[0] || memcmp(name, g->lit[0], g->litlen[0]) != 0)
        return false;
    size_t pos = g->litlen[0];
    if (!lits_fit(g, 1, name, pos, n))
        return false;
    r->ncap = 0;
    for (int k = 1; k < g->nlit; k++) {
        /* lits_fit(k..) from pos held, so literal k fits somewhere in [pos, n - l] */
        size_t l = g->litlen[k], t = n - l;
        while (!(memcmp(name + t, g->lit[k], l) == 0 && lits_fit(g, k + 1, name, t + l, n))) {
            if (t == pos)
                return false; /* cannot happen, see above */
            t--;
        }
        r->cap_off[r->ncap] = (uint32_t)pos;
        r->cap_len[r->ncap] = (uint32_t)(t - pos);
        r->ncap++;
        pos = t + l;
    }
    return true;
}

static int cmp_wild(const void *a, const void *b, void *arg)
{
    const router *rt = arg;
    const router_group *ga = &rt->groups[*(const int *)a], *gb = &rt->groups[*(const int *)b];
    if (ga->spec_len != gb->spec_len)
        return ga->spec_len > gb->spec_len ? -1 : 1;
    if (ga->spec_cx != gb->spec_cx)
        return ga->spec_cx > gb->spec_cx ? -1 : 1;
    return *(const int *)a - *(const int *)b; /* stable: config order */
}

static void group_weights(router *rt, router_group *g)
{
    /* simple_shuffle.py: weight if set, else rpm, else tpm, else uniform. LiteLLM looks only
     * at the first healthy deployment to choose the mode; we look at the whole group, so a
     * weight on any deployment weights them all (missing ones count 0). */
    bool any_w = false, any_r = false, any_t = false;
    for (int i = 0; i < g->n; i++) {
        const cfg_deployment *d = &rt->c->deps[g->idx[i]];
        any_w |= rt->di[g->idx[i]].weight >= 0;
        any_r |= d->rpm > 0;
        any_t |= d->tpm > 0;
    }
    for (int i = 0; i < g->n; i++) {
        const cfg_deployment *d = &rt->c->deps[g->idx[i]];
        double w = 1;
        if (any_w)
            w = rt->di[g->idx[i]].weight >= 0 ? rt->di[g->idx[i]].weight : 0;
        else if (any_r)
            w = (double)(d->rpm > 0 ? d->rpm : 0);
        else if (any_t)
            w = (double)(d->tpm > 0 ? d->tpm : 0);
        g->w[i] = w;
    }
}

static bool build_groups(router *rt, char *err, size_t errlen)
{
    const cfg *c = rt->c;
    size_t nd = rt->ndeps;
    int *gid = calloc(nd ? nd : 1, sizeof *gid);   /* primary group of each deployment */
    int *mgid = calloc(nd ? nd : 1, sizeof *mgid); /* litellm-model group, or -1 */
    rt->groups = calloc(nd ? nd * 2 : 1, sizeof *rt->groups);
    if (!gid || !mgid || !rt->groups || !ht_init(&rt->by_name, nd) ||
        !ht_init(&rt->by_model, nd) || !ht_init(&rt->by_id, nd))
        goto oom;
    for (size_t i = 0; i < nd; i++) {
        int g = ht_put(&rt->by_name, c->deps[i].model_name, rt->ngroups);
        if (g == rt->ngroups)
            rt->groups[rt->ngroups++].name = c->deps[i].model_name;
        gid[i] = g;
        rt->groups[g].n++;
        rt->di[i].group = g;
        ht_put(&rt->by_id, c->deps[i].id, (int)i);
    }
    rt->nprimary = rt->ngroups;
    for (size_t i = 0; i < nd; i++) {
        mgid[i] = -1;
        if (!c->deps[i].model || ht_get(&rt->by_name, c->deps[i].model) >= 0)
            continue;
        int g = ht_put(&rt->by_model, c->deps[i].model, rt->ngroups);
        if (g == rt->ngroups)
            rt->groups[rt->ngroups++].name = c->deps[i].model;
        mgid[i] = g;
        rt->groups[g].n++;
    }
    for (int g = 0; g < rt->ngroups; g++) {
        router_group *gr = &rt->groups[g];
        if (gr->n > MAX_GROUP) {
            set_err(err, errlen, "model group '%s' has %d deployments; at most %d are supported",
                    gr->name, gr->n, MAX_GROUP);
            goto fail;
        }
        gr->idx = calloc((size_t)gr->n, sizeof *gr->idx);
        gr->w = calloc((size_t)gr->n, sizeof *gr->w);
        if (!gr->idx || !gr->w)
            goto oom;
        gr->n = 0;
    }
    for (size_t i = 0; i < nd; i++) {
        router_group *g = &rt->groups[gid[i]];
        g->idx[g->n++] = (int)i;
        if (mgid[i] >= 0) {
            g = &rt->groups[mgid[i]];
            g->idx[g->n++] = (int)i;
        }
    }
    for (int g = 0; g < rt->ngroups; g++)
        group_weights(rt, &rt->groups[g]);

    rt->wild = calloc((size_t)(rt->nprimary ? rt->nprimary : 1), sizeof *rt->wild);
    if (!rt->wild)
        goto oom;
    for (int g = 0; g < rt->nprimary; g++) {
        if (!strchr(rt->groups[g].name, '*'))
            continue;
        if (!build_wildcard(&rt->groups[g])) {
            set_err(err, errlen, "model_name '%s': at most %d '*' are supported, or out of memory",
                    rt->groups[g].name, ROUTER_MAX_STARS);
            goto fail;
        }
        rt->wild[rt->nwild++] = g;
    }
    qsort_r(rt->wild, (size_t)rt->nwild, sizeof *rt->wild, cmp_wild, rt);
    free(gid);
    free(mgid);
    return true;
oom:
    set_err(err, errlen, "out of memory");
fail:
    free(gid);
    free(mgid);
    return false;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

router *router_new(const cfg *c, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    router *rt = calloc(1, sizeof *rt);
    if (!rt) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    rt->c = c;
    rt->ndeps = c->ndeps;
    rt->di = calloc(rt->ndeps ? rt->ndeps : 1, sizeof *rt->di);
    size_t stbytes = (rt->ndeps ? rt->ndeps : 1) * sizeof(dstate);
    rt->st = aligned_alloc(_Alignof(dstate), stbytes);
    if (!rt->di || !rt->st) {
        free(rt->st);
        rt->st = NULL;
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    memset(rt->st, 0, stbytes);
    for (size_t i = 0; i < rt->ndeps; i++)
        pthread_mutex_init(&rt->st[i].mu, NULL);
    if (!load_settings(rt, err, errlen) || !load_deployment_params(rt, err, errlen) ||
        !build_groups(rt, err, errlen))
        goto fail;
    rt->notes[rt->nnotes] = NULL;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)rt;
    router_seed(rt, splitmix64(&seed));
    return rt;
fail:
    router_free(rt);
    return NULL;
}

void router_free(router *rt)
{
    if (!rt)
        return;
    if (rt->st)
        for (size_t i = 0; i < rt->ndeps; i++)
            pthread_mutex_destroy(&rt->st[i].mu);
    free(rt->st);
    free(rt->di);
    for (int g = 0; g < rt->ngroups; g++) {
        free(rt->groups[g].idx);
        free(rt->groups[g].w);
        free(rt->groups[g].lit);
        free(rt->groups[g].litlen);
    }
    free(rt->groups);
    free(rt->wild);
    free(rt->by_name.e);
    free(rt->by_model.e);
    free(rt->by_id.e);
    free(rt->by_alias.e);
    free(rt->aliases);
    for (size_t i = 0; i < rt->nnotes; i++)
        free(rt->notes[i]);
    free(rt);
}

const router_settings *router_get_settings(const router *rt)
{
    return &rt->s;
}

const char *const *router_notes(const router *rt)
{
    return (const char *const *)rt->notes;
}

void router_seed(router *rt, uint64_t seed)
{
    atomic_store_explicit(&rt->seed, seed, memory_order_relaxed);
    atomic_store_explicit(&rt->nthreads, 0, memory_order_relaxed);
    atomic_store_explicit(&rt->gen, atomic_fetch_add(&g_generation, 1) + 1,
                          memory_order_release);
}

/* ---- resolution -------------------------------------------------------------------------- */

bool router_resolve(const router *rt, const char *model, router_route *out)
{
    memset(out, 0, sizeof *out);
    if (!model || !*model)
        return false;
    out->requested = model;
    int i = ht_get(&rt->by_id, model);
    if (i >= 0) {
        out->pinned = &rt->c->deps[i];
        out->group = &rt->groups[rt->di[i].group];
        out->via = ROUTER_VIA_DEPLOYMENT_ID;
        return true;
    }
    router_via via = ROUTER_VIA_GROUP;
    int a = ht_get(&rt->by_alias, model);
    if (a >= 0) {
        model = rt->aliases[a].target;
        out->requested = model;
        via = ROUTER_VIA_ALIAS;
    }
    int g = ht_get(&rt->by_name, model);
    if (g >= 0) {
        out->group = &rt->groups[g];
        out->via = via;
        return true;
    }
    g = ht_get(&rt->by_model, model);
    if (g >= 0) {
        out->group = &rt->groups[g];
        out->via = via == ROUTER_VIA_ALIAS ? via : ROUTER_VIA_LITELLM_MODEL;
        return true;
    }
    for (int k = 0; k < rt->nwild; k++) {
        const router_group *wg = &rt->groups[rt->wild[k]];
        if (wildcard_match(wg, model, out)) {
            out->group = wg;
            out->via = ROUTER_VIA_WILDCARD;
            return true;
        }
    }
    return false;
}

const router_group *router_find_group(const router *rt, const char *model_name)
{
    int g = model_name ? ht_get(&rt->by_name, model_name) : -1;
    return g >= 0 ? &rt->groups[g] : NULL;
}

const char *router_group_name(const router_group *g)
{
    return g->name;
}

size_t router_group_size(const router_group *g)
{
    return (size_t)g->n;
}

const cfg_deployment *router_group_at(const router *rt, const router_group *g, size_t i)
{
    return i < (size_t)g->n ? &rt->c->deps[g->idx[i]] : NULL;
}

const char *router_model_for(const router_route *r, const cfg_deployment *d, char *buf,
                             size_t len)
{
    const char *m = d->model;
    int stars = 0;
    for (const char *p = m; *p; p++)
        stars += *p == '*';
    size_t o = 0;
    bool fits = true;
#define PUT(src, n)                                                                              \
    do {                                                                                         \
        size_t n_ = (n);                                                                         \
        if (o + n_ >= len) {                                                                     \
            fits = false;                                                                        \
        } else {                                                                                 \
            memcpy(buf + o, (src), n_);                                                          \
            o += n_;                                                                             \
        }                                                                                        \
    } while (0)
    if (stars == 0 || !r || r->ncap == 0) {
        PUT(m, strlen(m));
    } else if (r->ncap > stars) {
        /* more parts than stars: LiteLLM sends the requested name as it is */
        PUT(r->requested, strlen(r->requested));
    } else {
        int k = 0;
        for (const char *p = m; *p; p++) {
            if (*p == '*' && k < r->ncap) {
                PUT(r->requested + r->cap_off[k], r->cap_len[k]);
                k++;
            } else {
                PUT(p, 1);
            }
        }
    }
#undef PUT
    if (!fits || !len)
        return NULL;
    buf[o] = 0;
    size_t pl;
    prov_classify(buf, &pl);
    return buf + (pl ? pl + 1 : 0);
}

size_t router_alias_count(const router *rt)
{
    return rt->naliases;
}

void router_alias_at(const router *rt, size_t i, const char **alias, const char **group,
                     bool *hidden)
{
    const alias_ent *a = &rt->aliases[i];
    if (alias)
        *alias = a->name;
    if (group)
        *group = a->target;
    if (hidden)
        *hidden = a->hidden;
}

/* ---- per-deployment state ---------------------------------------------------------------- */

static long rpm_count(const dstate *s, uint64_t minute)
{
    unsigned long long w = atomic_load_explicit(&s->rpm, memory_order_relaxed);
    return (w >> 32) == (minute & 0xFFFFFFFFull) ? (long)(w & 0xFFFFFFFFull) : 0;
}

static long tpm_count(const dstate *s, uint64_t minute)
{
    unsigned long long w = atomic_load_explicit(&s->tpm, memory_order_relaxed);
    return (w >> 40) == (minute & M24) ? (long)(w & M40) : 0;
}

static void sf_counts(const dstate *s, uint64_t minute, int *succ, int *fail)
{
    unsigned long long w = atomic_load_explicit(&s->sf, memory_order_relaxed);
    if ((w >> 40) != (minute & M24)) {
        *succ = *fail = 0;
        return;
    }
    *succ = (int)((w >> 20) & M20);
    *fail = (int)(w & M20);
}

static void sf_add(dstate *s, uint64_t minute, bool ok, int *succ, int *fail)
{
    unsigned long long w = atomic_load_explicit(&s->sf, memory_order_relaxed), nw;
    uint64_t succv, failv;
    do {
        succv = failv = 0;
        if ((w >> 40) == (minute & M24)) {
            succv = (w >> 20) & M20;
            failv = w & M20;
        }
        if (ok && succv < M20)
            succv++;
        if (!ok && failv < M20)
            failv++;
        nw = ((minute & M24) << 40) | (succv << 20) | failv;
    } while (!atomic_compare_exchange_weak_explicit(&s->sf, &w, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
    *succ = (int)succv;
    *fail = (int)failv;
}

static void tpm_add(dstate *s, uint64_t minute, long tokens)
{
    if (tokens <= 0)
        return;
    unsigned long long w = atomic_load_explicit(&s->tpm, memory_order_relaxed), nw;
    do {
        uint64_t t = (w >> 40) == (minute & M24) ? (w & M40) : 0;
        t = t + (uint64_t)tokens > M40 ? M40 : t + (uint64_t)tokens;
        nw = ((minute & M24) << 40) | t;
    } while (!atomic_compare_exchange_weak_explicit(&s->tpm, &w, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* One EWMA (lat or ttft) as stored: value bits and the time of its last sample. */
static double ewma_get(const router *rt, const atomic_ullong *v, const atomic_llong *at,
                       long long now_ms)
{
    double l = dbits_get(v);
    if (l <= 0)
        return 0;
    if ((double)(now_ms - atomic_load_explicit(at, memory_order_relaxed)) >
        rt->s.latency_ttl * 1000.0)
        return 0; /* stale: as unknown, like an expired cache entry */
    return l;
}

static void ewma_add(router *rt, atomic_ullong *v, atomic_llong *at, double ms, long long now_ms)
{
    if (!(ms >= 0))
        return;
    if (ms == 0)
        ms = 1e-6; /* 0 bits mean "no sample" */
    unsigned long long w = atomic_load_explicit(v, memory_order_relaxed), nw;
    bool stale = (double)(now_ms - atomic_load_explicit(at, memory_order_relaxed)) >
                 rt->s.latency_ttl * 1000.0;
    do {
        double old;
        memcpy(&old, &w, sizeof old);
        double x = (old > 0 && !stale) ? old + LATENCY_ALPHA * (ms - old) : ms;
        nw = dbits(x);
    } while (!atomic_compare_exchange_weak_explicit(v, &w, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_store_explicit(at, now_ms, memory_order_relaxed);
}

/* lowest_latency.py's measure: for a streamed request the deployment's time to first token
 * when it has streamed before, else (and for other requests) its latency per output token. */
static double latency_of(const router *rt, const dstate *s, bool stream, long long now_ms)
{
    if (stream) {
        double t = ewma_get(rt, &s->ttft, &s->ttft_at_ms, now_ms);
        if (t > 0)
            return t;
    }
    return ewma_get(rt, &s->lat, &s->lat_at_ms, now_ms);
}

static int dep_index(const router *rt, const cfg_deployment *d)
{
    if (!d || d < rt->c->deps || d >= rt->c->deps + rt->ndeps)
        return -1;
    return (int)(d - rt->c->deps);
}

static bool cooling(const dstate *s, long long now_ms)
{
    return atomic_load_explicit(&s->cooldown_until_ms, memory_order_relaxed) > now_ms;
}

static bool hc_down(const dstate *s, long long now_ms)
{
    return atomic_load_explicit(&s->hc_down_until_ms, memory_order_relaxed) > now_ms;
}

/* Deployments that can take a call as far as health goes: not cooling, and not marked down by
 * a background health check — unless every non-cooling one is marked down, in which case the
 * marks are ignored (health checks alone never make a group unroutable). */
static void health_scan(const router *rt, const router_group *g, long long now_ms, int *warm,
                        int *up)
{
    *warm = *up = 0;
    for (int i = 0; i < g->n; i++) {
        const dstate *s = &rt->st[g->idx[i]];
        if (cooling(s, now_ms))
            continue;
        (*warm)++;
        *up += !hc_down(s, now_ms);
    }
}

static int count_healthy(const router *rt, const router_group *g, long long now_ms)
{
    int warm, up;
    health_scan(rt, g, now_ms, &warm, &up);
    return up ? up : warm;
}

/* ---- picking ----------------------------------------------------------------------------- */

static bool excluded(const cfg_deployment *d, const char *const *ex, int nex)
{
    for (int i = 0; i < nex; i++)
        if (ex[i] && strcmp(ex[i], d->id) == 0)
            return true;
    return false;
}

bool router_pick(router *rt, const router_group *g, const char *const *exclude_ids, int nexclude,
                 double now, router_pick_result *out)
{
    return router_pick_for(rt, g, exclude_ids, nexclude, 0, false, now, out);
}

bool router_pick_for(router *rt, const router_group *g, const char *const *exclude_ids,
                     int nexclude, long input_tokens, bool stream, double now,
                     router_pick_result *out)
{
    memset(out, 0, sizeof *out);
    if (!g || g->n == 0) {
        out->status = ROUTER_NONE_EMPTY;
        return false;
    }
    long long now_ms = to_ms(now);
    uint64_t minute = minute_of(now);
    uint64_t avail[MAX_GROUP / 64];
    memset(avail, 0, ((size_t)g->n + 63) / 64 * sizeof *avail);
    long long best_order = LLONG_MAX;
    bool any = false;
    double retry_at = INFINITY;

    /* pass 1: who can take a call now, and the lowest order tier among them. A deployment a
     * background health check marked down is skipped while the group has another one that is
     * neither cooling nor marked down (one excluded or at its rpm counts: that is capacity, not
     * health); otherwise the marks are ignored (LiteLLM's safety net: health checks alone never
     * make a group unroutable), the rule count_healthy applies too. */
    int warm, up;
    health_scan(rt, g, now_ms, &warm, &up);
    bool skip_down = up > 0 && up < warm;
    for (int i = 0; i < g->n; i++) {
        int di = g->idx[i];
        const cfg_deployment *d = &rt->c->deps[di];
        const dstate *s = &rt->st[di];
        if (nexclude > 0 && excluded(d, exclude_ids, nexclude)) {
            out->nexcluded++;
            continue;
        }
        long long cu = atomic_load_explicit(&s->cooldown_until_ms, memory_order_relaxed);
        if (cu > now_ms) {
            out->ncooling++;
            if (cu / 1000.0 < retry_at)
                retry_at = cu / 1000.0;
            continue;
        }
        if (skip_down && hc_down(s, now_ms)) {
            out->nunhealthy++;
            continue;
        }
        /* tpm: LiteLLM's test is used + this request's input > tpm (without an estimate: the
         * minute's tokens reached it) */
        if (rt->s.enforce_deployment_limits &&
            ((d->rpm > 0 && rpm_count(s, minute) >= d->rpm) ||
             (d->tpm > 0 && (input_tokens > 0 ? tpm_count(s, minute) + input_tokens > d->tpm
                                               : tpm_count(s, minute) >= d->tpm)))) {
            out->nlimited++;
            double next = (double)(minute + 1) * 60.0;
            if (next < retry_at)
                retry_at = next;
            continue;
        }
        avail[i >> 6] |= 1ull << (i & 63);
        if (!any || rt->di[di].order < best_order)
            best_order = rt->di[di].order;
        any = true;
    }
    if (!any) {
        out->status = out->nlimited                        ? ROUTER_NONE_RATE_LIMITED
                      : out->ncooling                      ? ROUTER_NONE_COOLDOWN
                      : out->nexcluded || out->nunhealthy ? ROUTER_NONE_EXCLUDED
                                                           : ROUTER_NONE_EMPTY;
        if (isfinite(retry_at)) {
            out->retry_at = retry_at;
            double left = ceil(retry_at - now - 1e-9);
            out->retry_after_s = left < 1 ? 1 : (int)left;
        }
        return false;
    }

    /* pass 2: the strategy, over the best tier; ties and weights draw from the thread's PRNG */
    int chosen = -1;
    switch (rt->s.strategy) {
    case ROUTER_SIMPLE_SHUFFLE: {
        /* weighted reservoir of one: exact weighted sampling in a single pass; if every
         * weight in the tier is 0, uniform among them */
        double tw = 0;
        int k = 0, uchosen = -1;
        for (int i = 0; i < g->n; i++) {
            if (!(avail[i >> 6] >> (i & 63) & 1) || rt->di[g->idx[i]].order != best_order)
                continue;
            if (rnd_below(rt, (uint64_t)++k) == 0)
                uchosen = i;
            double w = g->w[i];
            if (w > 0) {
                tw += w;
                if (rnd01(rt) * tw < w)
                    chosen = i;
            }
        }
        if (chosen < 0)
            chosen = uchosen;
        break;
    }
    case ROUTER_LEAST_BUSY:
    case ROUTER_USAGE_BASED:
    case ROUTER_LATENCY_BASED: {
        double best = INFINITY;
        int ties = 0;
        for (int i = 0; i < g->n; i++) {
            if (!(avail[i >> 6] >> (i & 63) & 1) || rt->di[g->idx[i]].order != best_order)
                continue;
            const dstate *s = &rt->st[g->idx[i]];
            double v = rt->s.strategy == ROUTER_LEAST_BUSY
                           ? (double)atomic_load_explicit(&s->inflight, memory_order_relaxed)
                       : rt->s.strategy == ROUTER_USAGE_BASED ? (double)tpm_count(s, minute)
                                                              : latency_of(rt, s, stream, now_ms);
            if (v < best) {
                best = v;
                ties = 1;
                chosen = i;
            } else if (v == best && rnd_below(rt, (uint64_t)++ties) == 0) {
                chosen = i;
            }
        }
        if (rt->s.strategy == ROUTER_LATENCY_BASED && rt->s.lowest_latency_buffer > 0 &&
            isfinite(best)) {
            /* lowest_latency_buffer: uniform among those within best * (1 + buffer) */
            double lim = best + best * rt->s.lowest_latency_buffer;
            int k = 0;
            for (int i = 0; i < g->n; i++) {
                if (!(avail[i >> 6] >> (i & 63) & 1) || rt->di[g->idx[i]].order != best_order)
                    continue;
                if (latency_of(rt, &rt->st[g->idx[i]], stream, now_ms) <= lim &&
                    rnd_below(rt, (uint64_t)++k) == 0)
                    chosen = i;
            }
        }
        break;
    }
    }
    out->status = ROUTER_PICKED;
    out->d = &rt->c->deps[g->idx[chosen]];
    return true;
}

int router_format_no_deployments(const router *rt, const router_group *g, const char *model,
                                 const router_pick_result *res, double now, char *buf,
                                 size_t len)
{
    char list[1024];
    size_t o = 0;
    long long now_ms = to_ms(now);
    list[0] = 0;
    for (int i = 0; g && i < g->n && o < sizeof list; i++) {
        int di = g->idx[i];
        if (!cooling(&rt->st[di], now_ms))
            continue;
        int w = snprintf(list + o, sizeof list - o, "%s'%s'", o ? ", " : "", rt->c->deps[di].id);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o >= sizeof list)
        memcpy(list + sizeof list - 4, "...", 4);
    int secs = res && res->retry_after_s > 0 ? res->retry_after_s
                                             : (int)ceil(rt->s.cooldown_time > 0
                                                             ? rt->s.cooldown_time
                                                             : DEFAULT_COOLDOWN_TIME_S);
    return snprintf(buf, len,
                    "No deployments available for selected model, Try again in %d seconds. "
                    "Passed model=%s. pre-call-checks=%s, cooldown_list=[%s]",
                    secs, model ? model : (g ? g->name : ""),
                    rt->s.enable_pre_call_checks ? "True" : "False", list);
}

/* ---- bookkeeping ------------------------------------------------------------------------- */

bool router_begin(router *rt, const cfg_deployment *d, double now)
{
    int i = dep_index(rt, d);
    if (i < 0)
        return false;
    dstate *s = &rt->st[i];
    uint64_t m = minute_of(now) & 0xFFFFFFFFull;
    unsigned long long w = atomic_load_explicit(&s->rpm, memory_order_relaxed), nw;
    do {
        uint64_t n = (w >> 32) == m ? (w & 0xFFFFFFFFull) : 0;
        if (rt->s.enforce_deployment_limits && d->rpm > 0 && n >= (uint64_t)d->rpm)
            return false;
        if (n < 0xFFFFFFFFull)
            n++;
        nw = (m << 32) | n;
    } while (!atomic_compare_exchange_weak_explicit(&s->rpm, &w, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&s->inflight, 1, memory_order_relaxed);
    return true;
}

router_outcome router_outcome_from_status(int status)
{
    if (status >= 200 && status < 300)
        return ROUTER_OK;
    switch (status) {
    case 0: return ROUTER_CONNECTION_ERROR;
    case 401: return ROUTER_AUTH_ERROR;
    case 404: return ROUTER_NOT_FOUND;
    case 408: return ROUTER_TIMEOUT;
    case 429: return ROUTER_RATE_LIMITED;
    default: break;
    }
    if (status >= 400 && status < 500)
        return ROUTER_BAD_REQUEST;
    return ROUTER_SERVER_ERROR;
}

/* the status LiteLLM's exception would carry */
static int status_of(const router_report *rep)
{
    if (rep->status > 0)
        return rep->status;
    switch (rep->outcome) {
    case ROUTER_RATE_LIMITED: return 429;
    case ROUTER_TIMEOUT: return 408;
    case ROUTER_AUTH_ERROR: return 401;
    case ROUTER_NOT_FOUND: return 404;
    case ROUTER_BAD_REQUEST:
    case ROUTER_CONTENT_POLICY:
    case ROUTER_CONTEXT_WINDOW: return 400;
    default: return 500;
    }
}

/* _is_cooldown_required: 429, 401, 404, 408 and 5xx; connection errors and other 4xx never */
static bool cooldown_eligible(const router_report *rep)
{
    if (rep->outcome == ROUTER_CONNECTION_ERROR || rep->outcome == ROUTER_OK)
        return false;
    if (rep->outcome == ROUTER_CONTENT_POLICY || rep->outcome == ROUTER_CONTEXT_WINDOW ||
        rep->outcome == ROUTER_BAD_REQUEST)
        return false;
    int st = status_of(rep);
    if (st >= 400 && st < 500)
        return st == 429 || st == 401 || st == 408 || st == 404;
    return true;
}

/* litellm._should_retry: 408, 409, 429 and 5xx */
static bool retryable_status(int st)
{
    return st == 408 || st == 409 || st == 429 || st >= 500;
}

static int allowed_fails_class(const router_report *rep)
{
    int st = status_of(rep);
    switch (rep->outcome) {
    case ROUTER_AUTH_ERROR: return ROUTER_CLASS_AUTHENTICATION;
    case ROUTER_TIMEOUT: return ROUTER_CLASS_TIMEOUT;
    case ROUTER_RATE_LIMITED: return ROUTER_CLASS_RATE_LIMIT;
    case ROUTER_NOT_FOUND: return ROUTER_CLASS_NOT_FOUND;
    case ROUTER_SERVER_ERROR:
        if (st == 503)
            return ROUTER_CLASS_SERVICE_UNAVAILABLE;
        if (st == 502)
            return ROUTER_CLASS_BAD_GATEWAY;
        return ROUTER_CLASS_INTERNAL_SERVER;
    default: return ROUTER_CLASS_BAD_REQUEST;
    }
}

static void cool_down(dstate *s, double now, double secs)
{
    long long until = to_ms(now + secs);
    long long cur = atomic_load_explicit(&s->cooldown_until_ms, memory_order_relaxed);
    while (cur < until && !atomic_compare_exchange_weak_explicit(&s->cooldown_until_ms, &cur, until,
                                                                 memory_order_relaxed,
                                                                 memory_order_relaxed))
        ;
}

bool router_end(router *rt, const cfg_deployment *d, const router_report *rep, double now)
{
    int i = dep_index(rt, d);
    if (i < 0 || !rep)
        return false;
    dstate *s = &rt->st[i];
    long long now_ms = to_ms(now);
    uint64_t minute = minute_of(now);
    atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_relaxed);
    tpm_add(s, minute, rep->tokens);
    if (rep->outcome == ROUTER_CANCELLED)
        return false;
    bool ok = rep->outcome == ROUTER_OK;
    int succ, fail;
    sf_add(s, minute, ok, &succ, &fail);
    if (ok) {
        double per = rep->completion_tokens > 0 ? rep->latency_ms / (double)rep->completion_tokens
                                                : rep->latency_ms;
        ewma_add(rt, &s->lat, &s->lat_at_ms, per, now_ms);
        if (rep->ttft_ms > 0)
            ewma_add(rt, &s->ttft, &s->ttft_at_ms, rep->ttft_ms, now_ms);
        return false;
    }
    if (rep->outcome == ROUTER_TIMEOUT) {
        ewma_add(rt, &s->lat, &s->lat_at_ms, TIMEOUT_LATENCY_MS, now_ms);
        if (dbits_get(&s->ttft) > 0) /* a streaming deployment: its streams wait too */
            ewma_add(rt, &s->ttft, &s->ttft_at_ms, TIMEOUT_LATENCY_MS, now_ms);
    }
    if (rt->s.disable_cooldowns || !cooldown_eligible(rep))
        return false;

    /* how long: the deployment's cooldown_time, else the upstream's Retry-After, else ours */
    double secs = rt->di[i].cooldown >= 0 ? rt->di[i].cooldown
                  : rep->retry_after_s >= 0 ? rep->retry_after_s
                                            : rt->s.cooldown_time;
    if (secs < 1e-9)
        return false;

    bool cool = false;
    if (rt->s.allowed_fails_counting) {
        /* v1: a failure counter that lives cooldown_time after the last failure */
        int cls = allowed_fails_class(rep);
        int allowed = rt->s.allowed_fails_policy[cls] >= 0 ? rt->s.allowed_fails_policy[cls]
                                                           : rt->s.allowed_fails;
        double ttl = rt->s.cooldown_time > 0 ? rt->s.cooldown_time : DEFAULT_COOLDOWN_TIME_S;
        pthread_mutex_lock(&s->mu);
        if (now >= s->fails_expire)
            s->fails = 0;
        if (s->fails + 1 > allowed) {
            cool = true;
        } else {
            s->fails++;
            s->fails_expire = now + ttl;
        }
        pthread_mutex_unlock(&s->mu);
    } else {
        /* v2: by this minute's failure rate, 429s, and errors not worth retrying */
        bool alone = rt->groups[rt->di[i].group].n <= 1;
        int total = succ + fail;
        double rate = total ? (double)fail / total : 0;
        int st = status_of(rep);
        if (st == 429 && !alone)
            cool = true;
        else if (rate >= 1.0 && total >= SINGLE_DEPLOYMENT_FAILURE_THRESHOLD)
            cool = true;
        else if (rate > FAILURE_THRESHOLD_PERCENT && total >= FAILURE_THRESHOLD_MIN_REQUESTS &&
                 !alone)
            cool = true;
        else if (!retryable_status(st))
            cool = true;
    }
    if (cool)
        cool_down(s, now, secs);
    return cool;
}

void router_stats(const router *rt, const cfg_deployment *d, double now, router_dep_stats *out)
{
    memset(out, 0, sizeof *out);
    out->latency_ms = -1;
    int i = dep_index(rt, d);
    if (i < 0)
        return;
    const dstate *s = &rt->st[i];
    uint64_t minute = minute_of(now);
    int inflight = atomic_load_explicit(&s->inflight, memory_order_relaxed);
    out->in_flight = inflight > 0 ? inflight : 0;
    out->requests_this_minute = rpm_count(s, minute);
    out->tokens_this_minute = tpm_count(s, minute);
    sf_counts(s, minute, &out->successes_this_minute, &out->failures_this_minute);
    long long cu = atomic_load_explicit(&s->cooldown_until_ms, memory_order_relaxed);
    out->cooldown_until = cu > to_ms(now) ? cu / 1000.0 : 0;
    double l = latency_of(rt, s, false, to_ms(now));
    out->latency_ms = l > 0 ? l : -1;
    out->health_down = hc_down(s, to_ms(now));
}

/* ---- background health checks ----------------------------------------------------------- */

/* What a probe's answer says about the deployment itself: no answer at all, or the statuses
 * that cool a deployment down after a real call (401, 404, 5xx) — except 408 and 429, which
 * say it is alive but slow or busy right now. Any other answer came from a reachable server
 * that took the key and knew the model (a 400 is more likely the one-token probe's fault). */
static bool probe_says_down(int status)
{
    if (status == 0)
        return true;
    if (status == 401 || status == 404)
        return true;
    return status >= 500;
}

bool router_health_report(const router *rt, const cfg_deployment *d, int status, double hold_s,
                          double now)
{
    int i = dep_index(rt, d);
    if (i < 0)
        return false;
    /* the marks live with the other per-deployment atomics: rt is const for the caller, the
     * state it points to is not */
    dstate *s = &rt->st[i];
    bool down = !rt->s.disable_cooldowns && probe_says_down(status) && hold_s > 0;
    atomic_store_explicit(&s->hc_down_until_ms, down ? to_ms(now + hold_s) : 0,
                          memory_order_relaxed);
    return down;
}

bool router_is_cooling(const router *rt, const cfg_deployment *d, double now)
{
    int i = dep_index(rt, d);
    return i >= 0 && cooling(&rt->st[i], to_ms(now));
}

/* ---- retry and fallback policy ------------------------------------------------------------ */

int router_retries_for(const router *rt, const cfg_deployment *d, router_outcome oc,
                       int request_num_retries)
{
    /* async_function_with_retries: the request's (or the router's) count, replaced by the
     * deployment's num_retries, replaced by retry_policy for the error's class */
    int n = request_num_retries >= 0 ? request_num_retries : rt->s.num_retries;
    int i = dep_index(rt, d);
    if (i >= 0 && rt->di[i].num_retries >= 0)
        n = rt->di[i].num_retries;
    const int *rp = rt->s.retry_policy;
    int p = -1;
    switch (oc) {
    case ROUTER_AUTH_ERROR: p = rp[ROUTER_CLASS_AUTHENTICATION]; break;
    case ROUTER_TIMEOUT: p = rp[ROUTER_CLASS_TIMEOUT]; break;
    case ROUTER_RATE_LIMITED: p = rp[ROUTER_CLASS_RATE_LIMIT]; break;
    case ROUTER_CONTENT_POLICY: /* a BadRequestError subclass: falls back to that key */
        p = rp[ROUTER_CLASS_CONTENT_POLICY] >= 0 ? rp[ROUTER_CLASS_CONTENT_POLICY]
                                                 : rp[ROUTER_CLASS_BAD_REQUEST];
        break;
    case ROUTER_CONTEXT_WINDOW:
    case ROUTER_BAD_REQUEST: p = rp[ROUTER_CLASS_BAD_REQUEST]; break;
    case ROUTER_NOT_FOUND: p = rp[ROUTER_CLASS_NOT_FOUND]; break;
    case ROUTER_SERVER_ERROR: p = rp[ROUTER_CLASS_INTERNAL_SERVER]; break;
    default: break;
    }
    if (p >= 0)
        n = p;
    return n;
}

static const cJSON *req_list(const cJSON *req, const char *key)
{
    if (!req)
        return NULL;
    if (cJSON_IsArray(req))
        return strcmp(key, "fallbacks") == 0 ? req : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    return cJSON_IsArray(v) ? v : NULL;
}

bool router_should_retry(const router *rt, const router_group *g, router_outcome oc,
                         const cJSON *req, double now)
{
    if (oc == ROUTER_OK || oc == ROUTER_CANCELLED)
        return false;
    const cJSON *cw = req_list(req, "context_window_fallbacks");
    const cJSON *cp = req_list(req, "content_policy_fallbacks");
    const cJSON *fb = req_list(req, "fallbacks");
    if (!cw)
        cw = rt->s.context_window_fallbacks;
    if (!cp)
        cp = rt->s.content_policy_fallbacks;
    bool have_fb = fb ? cJSON_GetArraySize(fb) > 0
                      : (rt->s.fallbacks && cJSON_GetArraySize(rt->s.fallbacks) > 0) ||
                            rt->s.default_fallbacks;
    int healthy = g ? count_healthy(rt, g, to_ms(now)) : 0;
    int all = g ? g->n : 0;
    if (oc == ROUTER_CONTEXT_WINDOW && cw)
        return false;
    if (oc == ROUTER_CONTENT_POLICY && cp)
        return false;
    if (oc == ROUTER_NOT_FOUND)
        return false;
    if (oc == ROUTER_RATE_LIMITED && healthy <= 0 && have_fb)
        return false;
    if (oc == ROUTER_AUTH_ERROR && all <= 1)
        return false;
    return healthy > 0;
}

int router_backoff_ms(router *rt, const router_group *g, int attempt, double retry_after_s,
                      double now)
{
    /* _time_to_sleep_before_retry: another healthy deployment in the group → now */
    if (g && g->n > 1 && count_healthy(rt, g, to_ms(now)) > 0)
        return 0;
    if (retry_after_s > 0 && retry_after_s <= HEADER_RETRY_AFTER_MAX_S)
        return (int)ceil(retry_after_s * 1000.0);
    int nb = attempt > 1 ? attempt - 1 : 0;
    if (nb > 30)
        nb = 30;
    double sleep = INITIAL_RETRY_DELAY_S * (double)(1u << nb);
    if (sleep > MAX_RETRY_DELAY_S)
        sleep = MAX_RETRY_DELAY_S;
    double t = sleep * (1.0 - 0.25 * rnd01(rt));
    if (t < rt->s.retry_after)
        t = rt->s.retry_after;
    return (int)ceil(t * 1000.0);
}

/* Python's _check_non_standard_fallback_format: plain names, or {"model": "x", ...} objects */
static bool non_standard(const cJSON *list)
{
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
        return false;
    bool all_str = true, all_obj = true, has_model = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        all_str &= cJSON_IsString(it);
        all_obj &= cJSON_IsObject(it);
        if (cJSON_IsObject(it)) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "model");
            if (m && !cJSON_IsArray(m))
                has_model = true;
        }
    }
    return all_str || (all_obj && has_model);
}

static const cJSON *entry_for(const cJSON *list, const char *group)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (cJSON_IsObject(it) && it->child && it->child->string &&
            strcmp(it->child->string, group) == 0)
            return it->child;
    }
    return NULL;
}

/* get_fallback_model_group: exact key, else the key equal to the group without its provider
 * prefix ("openai/gpt-4" matches "gpt-4"), else the last "*" entry */
static const cJSON *generic_entry(const cJSON *list, const char *group)
{
    const cJSON *exact = NULL, *stripped = NULL, *star = NULL, *it;
    const char *slash = strchr(group, '/');
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsObject(it) || !it->child || !it->child->string)
            continue;
        const char *k = it->child->string;
        if (strcmp(k, group) == 0) {
            exact = it->child;
            break;
        }
        if (slash && strcmp(k, slash + 1) == 0)
            stripped = it->child;
        else if (strcmp(k, "*") == 0)
            star = it->child;
    }
    return exact ? exact : stripped ? stripped : star;
}

static int add_groups(const cJSON *arr, const char *group, const char **out, int n, int lim)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (n >= lim)
            break;
        const char *name = NULL;
        if (cJSON_IsString(it))
            name = it->valuestring;
        else if (cJSON_IsObject(it)) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "model");
            if (cJSON_IsString(m))
                name = m->valuestring;
        }
        if (!name || !*name || (group && strcmp(name, group) == 0))
            continue;
        out[n++] = name;
    }
    return n;
}

int router_fallbacks(const router *rt, const char *group, router_outcome oc, const cJSON *req,
                     const char **groups_out, int max)
{
    int lim = max < rt->s.max_fallbacks ? max : rt->s.max_fallbacks;
    if (lim <= 0 || !group || oc == ROUTER_OK || oc == ROUTER_CANCELLED)
        return 0;
    const cJSON *rfb = req_list(req, "fallbacks");
    if (rfb && non_standard(rfb))
        return add_groups(rfb, group, groups_out, 0, lim);
    if (oc == ROUTER_CONTEXT_WINDOW || oc == ROUTER_CONTENT_POLICY) {
        bool cwin = oc == ROUTER_CONTEXT_WINDOW;
        const cJSON *l =
            req_list(req, cwin ? "context_window_fallbacks" : "content_policy_fallbacks");
        if (!l)
            l = cwin ? rt->s.context_window_fallbacks : rt->s.content_policy_fallbacks;
        if (l) {
            /* configured: only the group's own entry, no generic fallback */
            const cJSON *e = entry_for(l, group);
            return e ? add_groups(e, group, groups_out, 0, lim) : 0;
        }
    }
    const cJSON *list = rfb ? rfb : rt->s.fallbacks;
    const cJSON *e = NULL;
    if (list) {
        e = generic_entry(list, group);
        if (e && strcmp(e->string, "*") == 0 && !rfb && rt->s.default_fallbacks)
            e = rt->s.default_fallbacks; /* appended after the configured list: wins as "*" */
    }
    if (!e && !rfb)
        e = rt->s.default_fallbacks;
    return e ? add_groups(e, group, groups_out, 0, lim) : 0;
}

double router_timeout_for(const router *rt, const cfg_deployment *d, bool stream)
{
    if (stream) {
        if (d && d->stream_timeout > 0)
            return d->stream_timeout;
        if (rt->s.stream_timeout > 0)
            return rt->s.stream_timeout;
    }
    if (d && d->timeout > 0)
        return d->timeout;
    if (rt->s.timeout > 0)
        return rt->s.timeout;
    return rt->c->request_timeout > 0 ? rt->c->request_timeout : 600;
}
