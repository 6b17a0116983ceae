/* spend/price — the price table, cost and estimates; see spend.h.
 *
 * The table is an open-addressing hash map from model key to spend_price. The shipped table
 * has ~150 entries, but a user may point spend_price_load_file at LiteLLM's full map (~4,000
 * entries), hence a hash rather than a scan. The process-wide table sits behind a rwlock:
 * lookups copy a spend_price out under the read lock, a reload builds a new table and swaps it
 * under the write lock, so no reader ever sees a half-merged table. */
#include "spend/spend.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#ifdef SLUICE_PRICES_EMBEDDED
#include "spend/prices_gen.h" /* spend_prices_json[], generated from src/spend/prices.json */
#endif

typedef struct {
    char *key; /* NULL = empty slot */
    uint64_t hash;
    spend_price p;
} slot;

struct spend_table {
    slot *slots;
    size_t cap, count; /* cap: power of two, count <= cap / 2 */
};

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static inline bool is_set(double v) { return v >= 0; } /* SPEND_UNSET and NaN are not */

void spend_override_init(spend_override *o)
{
    o->input_cost_per_token = o->output_cost_per_token = SPEND_UNSET;
    o->cache_read_input_token_cost = o->cache_creation_input_token_cost = SPEND_UNSET;
}

static void price_init(spend_price *p)
{
    memset(p, 0, sizeof *p);
    p->input_cost_per_token = p->output_cost_per_token = SPEND_UNSET;
    p->cache_read_input_token_cost = p->cache_creation_input_token_cost = SPEND_UNSET;
    p->input_cost_per_token_above_128k_tokens = SPEND_UNSET;
    p->output_cost_per_token_above_128k_tokens = SPEND_UNSET;
    p->input_cost_per_token_above_200k_tokens = SPEND_UNSET;
    p->output_cost_per_token_above_200k_tokens = SPEND_UNSET;
    p->cache_read_input_token_cost_above_200k_tokens = SPEND_UNSET;
    p->cache_creation_input_token_cost_above_200k_tokens = SPEND_UNSET;
}

/* ---- the map ------------------------------------------------------------------------------- */

static slot *probe(const spend_table *t, const char *key, size_t n, uint64_t h)
{
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        slot *s = &t->slots[i];
        if (!s->key || (s->hash == h && strlen(s->key) == n && memcmp(s->key, key, n) == 0))
            return s;
    }
}

static bool rehash(spend_table *t, size_t cap)
{
    slot *old = t->slots;
    size_t oldcap = t->cap;
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots) {
        t->slots = old;
        return false;
    }
    t->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            *probe(t, old[i].key, strlen(old[i].key), old[i].hash) = old[i];
    free(old);
    return true;
}

static const spend_price *table_get(const spend_table *t, const char *key, size_t n)
{
    if (!t || !t->count)
        return NULL;
    slot *s = probe(t, key, n, hash_str(key, n));
    return s->key ? &s->p : NULL;
}

spend_table *spend_table_new(void)
{
    spend_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cap = 256;
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
#ifdef SLUICE_PRICES_EMBEDDED
    char err[160];
    if (spend_table_merge_json(t, (const char *)spend_prices_json, sizeof spend_prices_json - 1,
                               err, sizeof err) < 0) {
        /* the shipped file is checked by test_spend; reaching this is a build defect */
        fprintf(stderr, "sluice: embedded prices.json: %s\n", err);
    }
#endif
    return t;
}

bool spend_prices_embedded(void)
{
#ifdef SLUICE_PRICES_EMBEDDED
    return true;
#else
    return false;
#endif
}

void spend_table_free(spend_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].key);
    free(t->slots);
    free(t);
}

size_t spend_table_count(const spend_table *t) { return t ? t->count : 0; }

/* ---- reading LiteLLM's format -------------------------------------------------------------- */

static void num_field(const cJSON *o, const char *name, double *dst)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && isfinite(v->valuedouble))
        *dst = v->valuedouble;
}

static void int_field(const cJSON *o, const char *name, int64_t *dst)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 9e15)
        *dst = (int64_t)v->valuedouble;
}

static void str_field(const cJSON *o, const char *name, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v) && v->valuestring)
        snprintf(dst, cap, "%s", v->valuestring);
}

static void apply_fields(spend_price *p, const cJSON *o)
{
    num_field(o, "input_cost_per_token", &p->input_cost_per_token);
    num_field(o, "output_cost_per_token", &p->output_cost_per_token);
    num_field(o, "cache_read_input_token_cost", &p->cache_read_input_token_cost);
    num_field(o, "cache_creation_input_token_cost", &p->cache_creation_input_token_cost);
    num_field(o, "input_cost_per_token_above_128k_tokens",
              &p->input_cost_per_token_above_128k_tokens);
    num_field(o, "output_cost_per_token_above_128k_tokens",
              &p->output_cost_per_token_above_128k_tokens);
    num_field(o, "input_cost_per_token_above_200k_tokens",
              &p->input_cost_per_token_above_200k_tokens);
    num_field(o, "output_cost_per_token_above_200k_tokens",
              &p->output_cost_per_token_above_200k_tokens);
    num_field(o, "cache_read_input_token_cost_above_200k_tokens",
              &p->cache_read_input_token_cost_above_200k_tokens);
    num_field(o, "cache_creation_input_token_cost_above_200k_tokens",
              &p->cache_creation_input_token_cost_above_200k_tokens);
    int_field(o, "max_input_tokens", &p->max_input_tokens);
    int_field(o, "max_output_tokens", &p->max_output_tokens);
    str_field(o, "litellm_provider", p->provider, sizeof p->provider);
    str_field(o, "mode", p->mode, sizeof p->mode);
}

int spend_table_merge_json(spend_table *t, const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= json && at <= json + len ? (long)(at - json) : -1;
        snprintf(err, errlen, "not valid JSON (near byte %ld)", off);
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "expected a JSON object of model entries");
        cJSON_Delete(root);
        return -1;
    }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!cJSON_IsObject(e) || !e->string || strcmp(e->string, "sample_spec") == 0)
            continue;
        size_t kl = strlen(e->string);
        if (kl == 0 || kl >= sizeof ((spend_price *)0)->key)
            continue;
        if ((t->count + 1) * 2 > t->cap && !rehash(t, t->cap * 2)) {
            snprintf(err, errlen, "out of memory");
            cJSON_Delete(root);
            return -1;
        }
        uint64_t h = hash_str(e->string, kl);
        slot *s = probe(t, e->string, kl, h);
        if (s->key) {
            apply_fields(&s->p, e); /* merge over the existing entry */
            n++;
            continue;
        }
        spend_price p;
        price_init(&p);
        apply_fields(&p, e);
        if (!is_set(p.input_cost_per_token) && !is_set(p.output_cost_per_token))
            continue; /* priced per image/second/query: not a token price */
        memcpy(p.key, e->string, kl + 1);
        s->key = strdup(e->string);
        if (!s->key) {
            snprintf(err, errlen, "out of memory");
            cJSON_Delete(root);
            return -1;
        }
        s->hash = h;
        s->p = p;
        t->count++;
        n++;
    }
    cJSON_Delete(root);
    return n;
}

int spend_table_merge_file(spend_table *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            size_t nc = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", path);
                return -1;
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    char inner[160];
    int n = spend_table_merge_json(t, buf, len, inner, sizeof inner);
    free(buf);
    if (n < 0)
        snprintf(err, errlen, "%s: %s", path, inner);
    return n;
}

/* ---- lookup -------------------------------------------------------------------------------- */

/* name, then name without a trailing "@version" (Vertex model versions: claude-...@20241022) */
static const spend_price *try_name(const spend_table *t, const char *name, size_t n)
{
    const spend_price *p = table_get(t, name, n);
    if (p)
        return p;
    size_t base = 0; /* the '@' must be in the last path segment */
    for (size_t i = 0; i < n; i++)
        if (name[i] == '/')
            base = i + 1;
    const char *at = memchr(name + base, '@', n - base);
    if (at && at > name + base)
        return table_get(t, name, (size_t)(at - name));
    return NULL;
}

/* LiteLLM's "provider/model, then model": a name with a provider prefix is tried whole, then
 * without it; a bare name is tried under the deployment's provider first, then bare. */
static const spend_price *try_candidate(const spend_table *t, const char *name,
                                        const char *provider, size_t plen)
{
    if (!name || !*name)
        return NULL;
    size_t n = strlen(name);
    const char *slash = strchr(name, '/');
    const spend_price *p;
    if (slash) {
        if ((p = try_name(t, name, n)))
            return p;
        return try_name(t, slash + 1, n - (size_t)(slash + 1 - name));
    }
    if (plen) {
        char buf[256];
        if (plen + 1 + n < sizeof buf) {
            memcpy(buf, provider, plen);
            buf[plen] = '/';
            memcpy(buf + plen + 1, name, n + 1);
            if ((p = try_name(t, buf, plen + 1 + n)))
                return p;
        }
    }
    return try_name(t, name, n);
}

bool spend_table_lookup(const spend_table *t, const char *base_model, const char *model,
                        const char *response_model, const spend_override *ov, spend_price *out)
{
    const char *provider = NULL;
    size_t plen = 0;
    if (model) {
        const char *slash = strchr(model, '/');
        if (slash) {
            provider = model;
            plen = (size_t)(slash - model);
        }
    }
    const spend_price *p = try_candidate(t, base_model, provider, plen);
    if (!p)
        p = try_candidate(t, model, provider, plen);
    if (!p)
        p = try_candidate(t, response_model, provider, plen);
    if (p) {
        *out = *p;
    } else {
        price_init(out);
        if (provider)
            snprintf(out->provider, sizeof out->provider, "%.*s", (int)plen, provider);
    }
    bool priced = p != NULL;
    if (ov) {
        if (is_set(ov->input_cost_per_token) || is_set(ov->output_cost_per_token)) {
            if (!priced) {
                out->input_cost_per_token = out->output_cost_per_token = 0;
                priced = true;
            }
        }
        if (is_set(ov->input_cost_per_token))
            out->input_cost_per_token = ov->input_cost_per_token;
        if (is_set(ov->output_cost_per_token))
            out->output_cost_per_token = ov->output_cost_per_token;
        if (is_set(ov->cache_read_input_token_cost))
            out->cache_read_input_token_cost = ov->cache_read_input_token_cost;
        if (is_set(ov->cache_creation_input_token_cost))
            out->cache_creation_input_token_cost = ov->cache_creation_input_token_cost;
    }
    return priced;
}

/* ---- the process-wide table ---------------------------------------------------------------- */

static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static spend_table *g_table;

static void g_init(void) { g_table = spend_table_new(); }

int spend_price_load_file(const char *path, char *err, size_t errlen)
{
    pthread_once(&g_once, g_init);
    spend_table *t = spend_table_new();
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = spend_table_merge_file(t, path, err, errlen);
    if (n < 0) {
        spend_table_free(t);
        return -1;
    }
    pthread_rwlock_wrlock(&g_lock);
    spend_table *old = g_table;
    g_table = t;
    pthread_rwlock_unlock(&g_lock);
    spend_table_free(old);
    return n;
}

bool spend_price_lookup(const char *base_model, const char *model, const char *response_model,
                        const spend_override *ov, spend_price *out)
{
    pthread_once(&g_once, g_init);
    pthread_rwlock_rdlock(&g_lock);
    bool ok = spend_table_lookup(g_table, base_model, model, response_model, ov, out);
    pthread_rwlock_unlock(&g_lock);
    return ok;
}

/* ---- cost ---------------------------------------------------------------------------------- */

void spend_usage_from_oai(const oai_usage *u, int64_t cache_creation_tokens, spend_usage *out)
{
    out->prompt_tokens = u ? u->prompt_tokens : -1;
    out->completion_tokens = u ? u->completion_tokens : -1;
    out->cache_read_tokens = u ? u->cached_tokens : -1;
    out->cache_creation_tokens = cache_creation_tokens;
}

static inline int64_t nonneg(int64_t v) { return v > 0 ? v : 0; }
static inline double pick(double v, double fallback) { return is_set(v) ? v : fallback; }

bool spend_cost(const spend_price *p, const spend_usage *u, double *cost)
{
    *cost = 0;
    if (!p || (!is_set(p->input_cost_per_token) && !is_set(p->output_cost_per_token)))
        return false;
    if (!u)
        return true;
    int64_t prompt = nonneg(u->prompt_tokens), completion = nonneg(u->completion_tokens);
    int64_t cread = nonneg(u->cache_read_tokens), cwrite = nonneg(u->cache_creation_tokens);
    if (cread + cwrite > prompt) /* a provider that reports the parts but not the whole */
        prompt = cread + cwrite;
    int64_t text = prompt - cread - cwrite;

    double in = pick(p->input_cost_per_token, 0), out = pick(p->output_cost_per_token, 0);
    double cr_tier = SPEND_UNSET, cw_tier = SPEND_UNSET;
    if (prompt > 200000) {
        in = pick(p->input_cost_per_token_above_200k_tokens,
                  pick(p->input_cost_per_token_above_128k_tokens, in));
        out = pick(p->output_cost_per_token_above_200k_tokens,
                   pick(p->output_cost_per_token_above_128k_tokens, out));
        cr_tier = p->cache_read_input_token_cost_above_200k_tokens;
        cw_tier = p->cache_creation_input_token_cost_above_200k_tokens;
    } else if (prompt > 128000) {
        in = pick(p->input_cost_per_token_above_128k_tokens, in);
        out = pick(p->output_cost_per_token_above_128k_tokens, out);
    }
    double cr = pick(cr_tier, pick(p->cache_read_input_token_cost, in));
    double cw = pick(cw_tier, pick(p->cache_creation_input_token_cost, in));
    *cost = (double)text * in + (double)cread * cr + (double)cwrite * cw + (double)completion * out;
    return true;
}

double spend_estimate(const spend_price *p, size_t prompt_bytes, int64_t max_tokens)
{
    if (!p)
        return 0;
    int64_t out = max_tokens;
    if (out <= 0) {
        out = SPEND_DEFAULT_MAX_TOKENS;
        if (p->max_output_tokens > 0 && p->max_output_tokens < out)
            out = p->max_output_tokens;
    }
    spend_usage u = {(int64_t)((prompt_bytes + 3) / 4), out, 0, 0};
    double c;
    return spend_cost(p, &u, &c) ? c : 0;
}

/* ---- warn once ----------------------------------------------------------------------------- */

#define WARN_MAX 4096
#define WARN_CAP 8192 /* power of two, twice WARN_MAX */

static pthread_mutex_t warn_mu = PTHREAD_MUTEX_INITIALIZER;
static char **warn_set; /* open addressing, WARN_CAP slots */
static size_t warn_count;

bool spend_warn_once(const char *model)
{
    if (!model)
        model = "";
    size_t n = strlen(model);
    uint64_t h = hash_str(model, n);
    bool first = false;
    pthread_mutex_lock(&warn_mu);
    if (!warn_set)
        warn_set = calloc(WARN_CAP, sizeof *warn_set);
    if (warn_set) {
        size_t i = (size_t)h & (WARN_CAP - 1);
        while (warn_set[i] && strcmp(warn_set[i], model) != 0)
            i = (i + 1) & (WARN_CAP - 1);
        if (!warn_set[i] && warn_count < WARN_MAX && (warn_set[i] = strdup(model))) {
            warn_count++;
            first = true;
        }
    }
    pthread_mutex_unlock(&warn_mu);
    return first;
}
