/* limits — see limits.h. Layout: LIM_STRIPES independent chained hash tables, each behind its
 * own mutex and on its own cache lines. An entry is freed only by a sweep, and only when nothing
 * holds it (no ticket, no reservation) and it carries nothing worth keeping (window over, no
 * unflushed spend), so tickets and reservations can keep raw entry pointers. */
#include "limits/limits.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIM_STRIPES 64 /* power of two; 2 threads on distinct keys rarely meet */
#define LIM_INITIAL_BUCKETS 16

typedef struct lim_entry {
    struct lim_entry *next;
    uint64_t hash;
    int64_t win_start;   /* whole seconds; INT64_MIN: no window yet */
    int64_t requests;    /* in the current window */
    int64_t tokens;      /* in the current window */
    int64_t inflight;    /* admitted, not released */
    int64_t nreserved;   /* budget reservations outstanding */
    double reserved;     /* their total */
    double unflushed;    /* settled spend not yet reported written */
    double written;      /* all spend the flusher reported written (only grows; pins the entry) */
    size_t keylen;
    char key[];
} lim_entry;

typedef struct {
    pthread_mutex_t mu;
    lim_entry **buckets;
    size_t nbuckets, count;
    double next_sweep;
} __attribute__((aligned(64))) lim_stripe;

struct lim {
    lim_stripe stripes[LIM_STRIPES];
    int window_s;
    bool budget_strict;
};

/* FNV-1a, then a final mix so both the stripe (low bits) and bucket (high bits) are spread. */
static uint64_t hash_key(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static inline unsigned stripe_of(uint64_t h) { return (unsigned)(h & (LIM_STRIPES - 1)); }
static inline size_t bucket_of(const lim_stripe *s, uint64_t h)
{
    return (size_t)(h >> 8) & (s->nbuckets - 1);
}

lim *lim_new(const lim_options *opt)
{
    lim *l = aligned_alloc(64, sizeof *l);
    if (!l)
        return NULL;
    memset(l, 0, sizeof *l);
    l->window_s = opt && opt->window_s > 0 ? opt->window_s : 0;
    if (!l->window_s) {
        const char *env = getenv("LITELLM_RATE_LIMIT_WINDOW_SIZE");
        long w = env ? strtol(env, NULL, 10) : 0;
        l->window_s = w > 0 && w < 86400 * 366 ? (int)w : 60;
    }
    l->budget_strict = opt && opt->budget_strict;
    for (int i = 0; i < LIM_STRIPES; i++) {
        lim_stripe *s = &l->stripes[i];
        pthread_mutex_init(&s->mu, NULL);
        s->buckets = calloc(LIM_INITIAL_BUCKETS, sizeof *s->buckets);
        if (!s->buckets) {
            for (int j = 0; j <= i; j++) {
                free(l->stripes[j].buckets);
                pthread_mutex_destroy(&l->stripes[j].mu);
            }
            free(l);
            return NULL;
        }
        s->nbuckets = LIM_INITIAL_BUCKETS;
    }
    return l;
}

void lim_free(lim *l)
{
    if (!l)
        return;
    for (int i = 0; i < LIM_STRIPES; i++) {
        lim_stripe *s = &l->stripes[i];
        for (size_t b = 0; b < s->nbuckets; b++)
            for (lim_entry *e = s->buckets[b], *nx; e; e = nx) {
                nx = e->next;
                free(e);
            }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(l);
}

/* ---- entries (caller holds the stripe lock) ---------------------------------------------- */

static lim_entry *find(lim_stripe *s, uint64_t h, const char *key, size_t n)
{
    for (lim_entry *e = s->buckets[bucket_of(s, h)]; e; e = e->next)
        if (e->hash == h && e->keylen == n && memcmp(e->key, key, n) == 0)
            return e;
    return NULL;
}

static void grow(lim_stripe *s)
{
    size_t nb = s->nbuckets * 2;
    lim_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nbuckets; i++)
        for (lim_entry *e = s->buckets[i], *nx; e; e = nx) {
            nx = e->next;
            size_t j = (size_t)(e->hash >> 8) & (nb - 1);
            e->next = b[j];
            b[j] = e;
        }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

static lim_entry *find_or_add(lim_stripe *s, uint64_t h, const char *key, size_t n)
{
    lim_entry *e = find(s, h, key, n);
    if (e)
        return e;
    e = malloc(sizeof *e + n + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->win_start = INT64_MIN;
    e->keylen = n;
    memcpy(e->key, key, n);
    e->key[n] = '\0';
    if (s->count >= s->nbuckets)
        grow(s);
    size_t b = bucket_of(s, h);
    e->next = s->buckets[b];
    s->buckets[b] = e;
    s->count++;
    return e;
}

static inline bool window_over(const lim *l, const lim_entry *e, int64_t now_s)
{
    return e->win_start == INT64_MIN || now_s - e->win_start >= l->window_s;
}

/* LiteLLM's reset: the window restarts at the first request after it ended. */
static inline void roll(const lim *l, lim_entry *e, int64_t now_s)
{
    if (window_over(l, e, now_s)) {
        e->win_start = now_s;
        e->requests = 0;
        e->tokens = 0;
    }
}

/* Spend the entity has that a record read when the written total was written_at_load does not
 * show: what was written since, plus what is not written yet. */
static inline double not_in_record(const lim_entry *e, double written_at_load)
{
    double since = e->written - written_at_load;
    return (since > 0 ? since : 0) + e->unflushed;
}

static inline bool idle(const lim *l, const lim_entry *e, int64_t now_s)
{
    /* an entry that has had spend written is kept: cached records measure from its total */
    return e->inflight == 0 && e->nreserved == 0 && e->unflushed == 0 && e->written == 0 &&
           window_over(l, e, now_s);
}

static size_t sweep_stripe(lim *l, lim_stripe *s, double now)
{
    int64_t now_s = (int64_t)floor(now);
    size_t freed = 0;
    for (size_t b = 0; b < s->nbuckets; b++) {
        lim_entry **pp = &s->buckets[b];
        while (*pp) {
            lim_entry *e = *pp;
            if (idle(l, e, now_s)) {
                *pp = e->next;
                free(e);
                freed++;
            } else {
                pp = &e->next;
            }
        }
    }
    s->count -= freed;
    s->next_sweep = now + l->window_s;
    return freed;
}

static inline void maybe_sweep(lim *l, lim_stripe *s, double now)
{
    if (now >= s->next_sweep)
        sweep_stripe(l, s, now);
}

/* ---- multi-stripe locking ----------------------------------------------------------------- */

typedef struct {
    uint64_t hash;
    unsigned stripe;
    size_t len;
} keyinfo;

/* Sorted, de-duplicated stripe indexes of the given keys. */
static int stripe_set(const keyinfo *ki, const bool *use, int n, unsigned *out)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!use[i])
            continue;
        unsigned s = ki[i].stripe;
        int j = m;
        bool dup = false;
        for (int k = 0; k < m; k++)
            if (out[k] == s)
                dup = true;
        if (dup)
            continue;
        while (j > 0 && out[j - 1] > s) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = s;
        m++;
    }
    return m;
}

static void lock_set(lim *l, const unsigned *set, int m)
{
    for (int i = 0; i < m; i++)
        pthread_mutex_lock(&l->stripes[set[i]].mu);
}

static void unlock_set(lim *l, const unsigned *set, int m)
{
    for (int i = m - 1; i >= 0; i--)
        pthread_mutex_unlock(&l->stripes[set[i]].mu);
}

/* ---- rate limits --------------------------------------------------------------------------- */

static inline bool has_limit(const lim_check *c)
{
    return c->key && (c->rpm_limit >= 0 || c->tpm_limit >= 0 || c->max_parallel >= 0);
}

static inline lim_count count_of(int64_t limit, int64_t used)
{
    lim_count c = {limit < 0 ? LIM_UNLIMITED : limit, 0};
    if (limit >= 0)
        c.remaining = limit > used ? limit - used : 0;
    return c;
}

static void fill_status(const lim *l, const lim_check *c, const lim_entry *e, int64_t now_s,
                        lim_status *st)
{
    bool live = e && !window_over(l, e, now_s);
    st->requests = count_of(c->rpm_limit, live ? e->requests : 0);
    st->tokens = count_of(c->tpm_limit, live ? e->tokens : 0);
    st->parallel = count_of(c->max_parallel, e ? e->inflight : 0);
    st->reset_at = (double)((live ? e->win_start : now_s) + l->window_s);
}

static void no_status(lim_status *st, int64_t now_s, int window_s)
{
    st->requests = st->tokens = st->parallel = (lim_count){LIM_UNLIMITED, 0};
    st->reset_at = (double)(now_s + window_s);
}

/* The most restrictive limit per type across statuses. */
static void summarize(lim_verdict *v)
{
    v->requests = v->tokens = (lim_count){LIM_UNLIMITED, 0};
    for (int i = 0; i < v->nstatus; i++) {
        const lim_status *st = &v->status[i];
        if (st->requests.limit >= 0 &&
            (v->requests.limit < 0 || st->requests.remaining < v->requests.remaining))
            v->requests = st->requests;
        if (st->tokens.limit >= 0 &&
            (v->tokens.limit < 0 || st->tokens.remaining < v->tokens.remaining))
            v->tokens = st->tokens;
    }
}

static void verdict_init(lim_verdict *v, int n)
{
    v->allowed = false;
    v->index = -1;
    v->kind = LIM_NONE;
    v->limit = v->remaining = 0;
    v->reset_at = 0;
    v->retry_after = 0;
    v->key[0] = '\0';
    v->nstatus = n;
    v->ticket.n = 0;
}

int lim_admit(lim *l, const lim_check *checks, int n, double now, lim_verdict *v)
{
    if (n < 0 || n > LIM_MAX_CHECKS || (n > 0 && !checks)) {
        verdict_init(v, 0);
        summarize(v);
        return -1;
    }
    verdict_init(v, n);
    int64_t now_s = (int64_t)floor(now);
    keyinfo ki[LIM_MAX_CHECKS] = {{0}};
    bool use[LIM_MAX_CHECKS] = {false};
    lim_entry *ent[LIM_MAX_CHECKS];
    for (int i = 0; i < n; i++) {
        use[i] = has_limit(&checks[i]);
        ent[i] = NULL;
        if (use[i]) {
            ki[i].len = strlen(checks[i].key);
            ki[i].hash = hash_key(checks[i].key, ki[i].len);
            ki[i].stripe = stripe_of(ki[i].hash);
        }
    }
    unsigned set[LIM_MAX_CHECKS];
    int m = stripe_set(ki, use, n, set);
    lock_set(l, set, m);
    for (int i = 0; i < m; i++)
        maybe_sweep(l, &l->stripes[set[i]], now);

    int rc = 1;
    /* after a refusal the remaining descriptors are still looked up, for the statuses */
    for (int i = 0; i < n && rc >= 0; i++) {
        if (!use[i])
            continue;
        lim_stripe *s = &l->stripes[ki[i].stripe];
        lim_entry *e = find_or_add(s, ki[i].hash, checks[i].key, ki[i].len);
        if (!e) {
            rc = -1;
            break;
        }
        ent[i] = e;
        roll(l, e, now_s);
        if (rc == 0)
            continue;
        const lim_check *c = &checks[i];
        lim_kind k = LIM_NONE;
        int64_t limit = 0;
        if (c->rpm_limit >= 0 && e->requests >= c->rpm_limit)
            k = LIM_REQUESTS, limit = c->rpm_limit;
        else if (c->tpm_limit >= 0 && e->tokens >= c->tpm_limit)
            k = LIM_TOKENS, limit = c->tpm_limit;
        else if (c->max_parallel >= 0 && e->inflight >= c->max_parallel)
            k = LIM_PARALLEL, limit = c->max_parallel;
        if (k != LIM_NONE) {
            rc = 0;
            v->index = i;
            v->kind = k;
            v->limit = limit;
            v->remaining = 0;
            if (k == LIM_PARALLEL) {
                /* a slot frees whenever a request ends: no window to wait for */
                v->retry_after = 1;
                v->reset_at = now + 1;
            } else {
                v->reset_at = (double)(e->win_start + l->window_s);
                double wait = ceil(v->reset_at - now);
                v->retry_after = wait < 1 ? 1 : (int)wait;
            }
            snprintf(v->key, sizeof v->key, "%s", c->key);
        }
    }
    if (rc == 1) {
        /* count once per distinct entry; dedupe by pointer */
        for (int i = 0; i < n; i++) {
            lim_entry *e = ent[i];
            if (!e)
                continue;
            bool seen = false;
            for (int j = 0; j < v->ticket.n; j++)
                if (v->ticket.e[j] == e)
                    seen = true;
            if (seen)
                continue;
            e->requests++;
            e->inflight++;
            v->ticket.e[v->ticket.n++] = e;
        }
        v->allowed = true;
    }
    if (rc >= 0) {
        for (int i = 0; i < n; i++) {
            if (ent[i])
                fill_status(l, &checks[i], ent[i], now_s, &v->status[i]);
            else
                no_status(&v->status[i], now_s, l->window_s);
        }
    }
    unlock_set(l, set, m);
    if (rc < 0)
        v->nstatus = 0;
    summarize(v);
    return rc;
}

void lim_add_tokens(lim *l, const lim_ticket *t, int64_t tokens, double now)
{
    if (!t || tokens <= 0)
        return;
    int64_t now_s = (int64_t)floor(now);
    for (int i = 0; i < t->n; i++) {
        lim_entry *e = t->e[i];
        lim_stripe *s = &l->stripes[stripe_of(e->hash)];
        pthread_mutex_lock(&s->mu);
        roll(l, e, now_s);
        e->tokens += tokens;
        pthread_mutex_unlock(&s->mu);
    }
}

void lim_release(lim *l, lim_ticket *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        lim_entry *e = t->e[i];
        lim_stripe *s = &l->stripes[stripe_of(e->hash)];
        pthread_mutex_lock(&s->mu);
        if (e->inflight > 0)
            e->inflight--;
        pthread_mutex_unlock(&s->mu);
    }
    t->n = 0;
}

void lim_remaining(lim *l, const lim_check *checks, int n, double now, lim_verdict *v)
{
    if (n < 0 || n > LIM_MAX_CHECKS || (n > 0 && !checks))
        n = 0;
    verdict_init(v, n);
    v->allowed = true;
    int64_t now_s = (int64_t)floor(now);
    for (int i = 0; i < n; i++) {
        const lim_check *c = &checks[i];
        if (!has_limit(c)) {
            no_status(&v->status[i], now_s, l->window_s);
            continue;
        }
        size_t len = strlen(c->key);
        uint64_t h = hash_key(c->key, len);
        lim_stripe *s = &l->stripes[stripe_of(h)];
        pthread_mutex_lock(&s->mu);
        fill_status(l, c, find(s, h, c->key, len), now_s, &v->status[i]);
        pthread_mutex_unlock(&s->mu);
    }
    summarize(v);
}

const char *lim_kind_name(lim_kind k)
{
    switch (k) {
    case LIM_REQUESTS: return "requests";
    case LIM_TOKENS: return "tokens";
    case LIM_PARALLEL: return "max_parallel_requests";
    case LIM_NONE: break;
    }
    return "none";
}

void lim_descriptor_label(const char *key, char *name, size_t namelen, const char **value)
{
    const char *colon = key ? strchr(key, ':') : NULL;
    if (!colon) {
        snprintf(name, namelen, "api_key");
        *value = key ? key : "";
        return;
    }
    size_t kl = (size_t)(colon - key);
    *value = colon + 1;
    if (kl == 3 && memcmp(key, "key", 3) == 0)
        snprintf(name, namelen, "api_key");
    else if (kl == 3 && memcmp(key, "org", 3) == 0)
        snprintf(name, namelen, "organization");
    else
        snprintf(name, namelen, "%.*s", (int)kl, key);
}

int lim_format_refusal(const lim_verdict *v, char *buf, size_t buflen)
{
    char name[32];
    const char *value;
    lim_descriptor_label(v->key, name, sizeof name, &value);
    time_t t = (time_t)v->reset_at;
    struct tm tm;
    char when[32] = "";
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    return snprintf(buf, buflen,
                    "Rate limit exceeded for %s: %s. Limit type: %s. Current limit: %lld, "
                    "Remaining: %lld. Limit resets at: %s UTC",
                    name, value, lim_kind_name(v->kind), (long long)v->limit,
                    (long long)v->remaining, when);
}

size_t lim_sweep(lim *l, double now)
{
    size_t freed = 0;
    for (int i = 0; i < LIM_STRIPES; i++) {
        pthread_mutex_lock(&l->stripes[i].mu);
        freed += sweep_stripe(l, &l->stripes[i], now);
        pthread_mutex_unlock(&l->stripes[i].mu);
    }
    return freed;
}

size_t lim_entry_count(lim *l)
{
    size_t n = 0;
    for (int i = 0; i < LIM_STRIPES; i++) {
        pthread_mutex_lock(&l->stripes[i].mu);
        n += l->stripes[i].count;
        pthread_mutex_unlock(&l->stripes[i].mu);
    }
    return n;
}

/* ---- budgets ------------------------------------------------------------------------------- */

static inline bool has_budget(const lim_budget_check *c)
{
    return c->entity && c->max_budget >= 0; /* NaN compares false */
}

/* Sums of doubles drift by an ulp or two; a budget of 10×E must admit ten reservations of E. */
static inline bool exceeds(double total, double max)
{
    return total > max + fabs(max) * 1e-9;
}

int lim_budget_reserve_all(lim *l, const lim_budget_check *checks, int n, double estimate,
                           lim_reservation *out, lim_budget_verdict *bv)
{
    lim_budget_verdict local;
    if (!bv)
        bv = &local;
    *bv = (lim_budget_verdict){.allowed = false, .index = -1};
    out->n = 0;
    out->amount = 0;
    if (n < 0 || n > LIM_MAX_CHECKS || (n > 0 && !checks))
        return -1;
    if (!(estimate >= 0) || isinf(estimate))
        estimate = 0;
    keyinfo ki[LIM_MAX_CHECKS] = {{0}};
    bool use[LIM_MAX_CHECKS] = {false};
    lim_entry *ent[LIM_MAX_CHECKS];
    for (int i = 0; i < n; i++) {
        use[i] = has_budget(&checks[i]);
        ent[i] = NULL;
        if (use[i]) {
            ki[i].len = strlen(checks[i].entity);
            ki[i].hash = hash_key(checks[i].entity, ki[i].len);
            ki[i].stripe = stripe_of(ki[i].hash);
        }
    }
    unsigned set[LIM_MAX_CHECKS];
    int m = stripe_set(ki, use, n, set);
    lock_set(l, set, m);
    int rc = 1;
    for (int i = 0; i < n && rc == 1; i++) {
        if (!use[i])
            continue;
        lim_stripe *s = &l->stripes[ki[i].stripe];
        lim_entry *e = find_or_add(s, ki[i].hash, checks[i].entity, ki[i].len);
        if (!e) {
            rc = -1;
            break;
        }
        ent[i] = e;
        double spend = checks[i].spend > 0 ? checks[i].spend : 0;
        double current = spend + not_in_record(e, checks[i].written_at_load);
        double max = checks[i].max_budget;
        bool refuse = current + fabs(max) * 1e-9 >= max; /* spent, to within rounding */
        if (!refuse && (l->budget_strict || e->nreserved > 0))
            refuse = exceeds(current + e->reserved + estimate, max);
        if (refuse) {
            rc = 0;
            bv->index = i;
            bv->current = current;
            bv->reserved = e->reserved;
            bv->max_budget = max;
        }
    }
    if (rc == 1) {
        for (int i = 0; i < n; i++) {
            lim_entry *e = ent[i];
            if (!e)
                continue;
            bool seen = false;
            for (int j = 0; j < out->n; j++)
                if (out->e[j] == e)
                    seen = true;
            if (seen)
                continue;
            e->reserved += estimate;
            e->nreserved++;
            out->e[out->n++] = e;
        }
        out->amount = estimate;
        bv->allowed = true;
    }
    unlock_set(l, set, m);
    return rc;
}

bool lim_budget_reserve(lim *l, const char *entity, double spend_so_far, double max_budget,
                        double estimate, lim_reservation *out)
{
    lim_budget_check c = {.entity = entity, .spend = spend_so_far, .max_budget = max_budget};
    return lim_budget_reserve_all(l, &c, 1, estimate, out, NULL) == 1;
}

void lim_budget_settle(lim *l, lim_reservation *r, double actual_cost)
{
    if (!r)
        return;
    if (!(actual_cost > 0) || isinf(actual_cost))
        actual_cost = 0;
    for (int i = 0; i < r->n; i++) {
        lim_entry *e = r->e[i];
        lim_stripe *s = &l->stripes[stripe_of(e->hash)];
        pthread_mutex_lock(&s->mu);
        if (e->nreserved > 0)
            e->nreserved--;
        /* exact zero when nothing is outstanding, so rounding never accumulates */
        e->reserved = e->nreserved ? e->reserved - r->amount : 0;
        if (e->reserved < 0)
            e->reserved = 0;
        e->unflushed += actual_cost;
        pthread_mutex_unlock(&s->mu);
    }
    r->n = 0;
    r->amount = 0;
}

/* Runs fn on the entity's entry under its stripe lock: NULL when absent, or (create) a new
 * entry then (NULL only when out of memory). */
static double with_entry(lim *l, const char *entity, bool create, double amount,
                         double (*fn)(lim_entry *, double))
{
    if (!entity)
        return 0;
    size_t len = strlen(entity);
    uint64_t h = hash_key(entity, len);
    lim_stripe *s = &l->stripes[stripe_of(h)];
    pthread_mutex_lock(&s->mu);
    double r = fn(create ? find_or_add(s, h, entity, len) : find(s, h, entity, len), amount);
    pthread_mutex_unlock(&s->mu);
    return r;
}

static double with_entity(lim *l, const char *entity, double amount,
                          double (*fn)(lim_entry *, double))
{
    return with_entry(l, entity, false, amount, fn);
}

static double get_unflushed(lim_entry *e, double unused)
{
    (void)unused;
    return e ? e->unflushed : 0;
}

static double get_written(lim_entry *e, double unused)
{
    (void)unused;
    return e ? e->written : 0;
}

static double mark_written(lim_entry *e, double amount)
{
    if (e && amount > 0) {
        e->written += amount;
        e->unflushed -= amount;
        /* what is left after rounding is noise, and a non-zero value pins the entry */
        if (e->unflushed < 1e-12)
            e->unflushed = 0;
    }
    return 0;
}

static double zero_unflushed(lim_entry *e, double unused)
{
    (void)unused;
    if (e)
        e->unflushed = 0;
    return 0;
}

double lim_budget_spend(lim *l, const char *entity)
{
    return with_entity(l, entity, 0, get_unflushed);
}

double lim_budget_written(lim *l, const char *entity)
{
    return with_entity(l, entity, 0, get_written);
}

static double get_since(lim_entry *e, double written_at_load)
{
    return e ? not_in_record(e, written_at_load) : 0;
}

double lim_budget_spend_since(lim *l, const char *entity, double written_at_load)
{
    return with_entity(l, entity, written_at_load, get_since);
}

void lim_budget_flushed(lim *l, const char *entity, double amount)
{
    /* created when absent: an entity without a budget has no entry yet, and its cached records
     * (x-litellm-key-spend) measure what was written since they were read from it too */
    if (amount > 0)
        with_entry(l, entity, true, amount, mark_written);
}

void lim_budget_reset(lim *l, const char *entity)
{
    with_entity(l, entity, 0, zero_unflushed);
}

/* Shortest digits that round-trip, laid out as CPython's float_repr_style 'short': positional
 * for 1e-4 <= |x| < 1e16 (always with a fractional part), else d.ddde±XX. */
void lim_py_float(double x, char out[32])
{
    if (isnan(x)) {
        snprintf(out, 32, "nan");
        return;
    }
    if (isinf(x)) {
        snprintf(out, 32, x < 0 ? "-inf" : "inf");
        return;
    }
    if (x == 0) {
        snprintf(out, 32, signbit(x) ? "-0.0" : "0.0");
        return;
    }
    char e[40];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, x);
        if (strtod(e, NULL) == x)
            break;
    }
    snprintf(e, sizeof e, "%.*e", p - 1, x);
    int exp10 = atoi(strchr(e, 'e') + 1);
    if (exp10 >= -4 && exp10 < 16) {
        int decimals = p - 1 - exp10;
        if (decimals < 0)
            decimals = 0;
        snprintf(out, 32, "%.*f%s", decimals, x, decimals == 0 ? ".0" : "");
    } else {
        /* C prints at least two exponent digits, as Python does; at most 24 chars here */
        size_t n = strlen(e);
        if (n > 31)
            n = 31;
        memcpy(out, e, n);
        out[n] = '\0';
    }
}

int lim_format_budget_refusal(const lim_budget_verdict *bv, char *buf, size_t buflen)
{
    char cur[32], max[32];
    lim_py_float(bv->current, cur);
    lim_py_float(bv->max_budget, max);
    return snprintf(buf, buflen, "Budget has been exceeded! Current cost: %s, Max budget: %s", cur,
                    max);
}
