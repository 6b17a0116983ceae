/* auth/keys — see keys.h.
 *
 * The cache is a hash table under one mutex: a lookup holds it for a hash and a pointer copy,
 * far less than anything else a request does, so one lock is enough. A miss starts one store
 * job per key however many requests are waiting for it; waiters are called back through their
 * own worker's mailbox. A record older than the TTL is still returned at once while a refresh
 * runs in the background (stale-while-revalidate), so a hot key never waits on the database and
 * keeps working while the database is down. Unknown keys are remembered as absent for a few
 * seconds so a flood of bad keys cannot turn into a flood of queries. */
#include "auth/keys.h"
#include "util/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NEGATIVE_TTL_S 5.0
#define NBUCKETS 1024

typedef struct waiter {
    struct waiter *next;
    mbox *mb;
    key_lookup_cb cb;
    void *arg;
    key_rec *rec;     /* filled when answered */
    char *db_error;
} waiter;

typedef struct entry {
    struct entry *next;
    char token[65];
    key_rec *rec;     /* NULL: absent (or not loaded yet) */
    double loaded;    /* monotonic seconds; 0 = never */
    bool loading;
    waiter *waiters;
} entry;

struct keycache {
    pthread_mutex_t mu;
    store *st;
    double ttl;
    key_stamp_fn stamp;
    void *stamp_ctx;
    entry *buckets[NBUCKETS];
};


void key_rec_ref(key_rec *k)
{
    if (k)
        atomic_fetch_add(&k->refs, 1);
}

static void entity_free(key_entity *e)
{
    free(e->id);
    free(e->budget_duration);
    for (int i = 0; i < e->nmodels; i++)
        free(e->models[i]);
    free(e->models);
}

void key_rec_unref(key_rec *k)
{
    if (!k || atomic_fetch_sub(&k->refs, 1) != 1)
        return;
    free(k->key_alias);
    free(k->key_name);
    free(k->user_role);
    cJSON_Delete(k->aliases);
    cJSON_Delete(k->metadata);
    entity_free(&k->key);
    entity_free(&k->team);
    entity_free(&k->user);
    entity_free(&k->org);
    free(k);
}

/* ---- rows → records ---------------------------------------------------------------------- */

static time_t parse_time(const char *s)
{
    if (!s || !*s)
        return 0;
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0;
    double sec = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%lf", &y, &mo, &d, &h, &mi, &sec) < 3 &&
        sscanf(s, "%d-%d-%d %d:%d:%lf", &y, &mo, &d, &h, &mi, &sec) < 3)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = (int)sec;
    return timegm(&tm);
}

static double num(const char *s, double dflt)
{
    if (!s || !*s)
        return dflt;
    char *end;
    double v = strtod(s, &end);
    return end == s ? dflt : v;
}

static char *dup0(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void fill_entity(key_entity *e, const db_result *r, int row, const char *prefix)
{
    char col[64];
#define COL(name) (snprintf(col, sizeof col, "%s%s", prefix, name), db_value(r, row, col))
    e->id = dup0(COL("id"));
    e->spend = num(COL("spend"), 0);
    e->max_budget = num(COL("max_budget"), -1);
    e->budget_duration = dup0(COL("budget_duration"));
    e->budget_reset_at = parse_time(COL("budget_reset_at"));
    e->rpm_limit = (long)num(COL("rpm_limit"), -1);
    e->tpm_limit = (long)num(COL("tpm_limit"), -1);
    e->max_parallel = (long)num(COL("max_parallel_requests"), -1);
    const char *b = COL("blocked");
    e->blocked = b && (b[0] == '1' || b[0] == 't' || b[0] == 'T');
    const char *m = COL("models");
#undef COL
    cJSON *arr = m ? cJSON_Parse(m) : NULL;
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n > 0) {
        e->models = calloc((size_t)n, sizeof *e->models);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr)
        {
            if (cJSON_IsString(it) && e->models)
                e->models[e->nmodels++] = strdup(it->valuestring);
        }
    }
    cJSON_Delete(arr);
}

key_rec *key_rec_from_row(const db_result *r, int row)
{
    key_rec *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    atomic_init(&k->refs, 1);
    snprintf(k->token, sizeof k->token, "%s", db_value(r, row, "k_id") ? db_value(r, row, "k_id")
                                                                        : "");
    k->key_alias = dup0(db_value(r, row, "key_alias"));
    k->key_name = dup0(db_value(r, row, "key_name"));
    k->user_role = dup0(db_value(r, row, "u_user_role"));
    k->expires = parse_time(db_value(r, row, "expires"));
    const char *a = db_value(r, row, "aliases");
    k->aliases = a ? cJSON_Parse(a) : NULL;
    const char *md = db_value(r, row, "metadata");
    k->metadata = md ? cJSON_Parse(md) : NULL;
    fill_entity(&k->key, r, row, "k_");
    k->has_team = db_value(r, row, "t_id") != NULL;
    if (k->has_team)
        fill_entity(&k->team, r, row, "t_");
    k->has_user = db_value(r, row, "u_id") != NULL;
    if (k->has_user)
        fill_entity(&k->user, r, row, "u_");
    k->has_org = db_value(r, row, "o_id") != NULL;
    if (k->has_org)
        fill_entity(&k->org, r, row, "o_");
    k->loaded_at = time(NULL);
    return k;
}

#define ENTITY_COLS(p, t, idcol)                                                               \
    t "." idcol " AS " p "id, " t ".spend AS " p "spend, " t ".max_budget AS " p "max_budget, " \
    t ".budget_duration AS " p "budget_duration, " t ".budget_reset_at AS " p                   \
    "budget_reset_at, " t ".rpm_limit AS " p "rpm_limit, " t ".tpm_limit AS " p "tpm_limit, "   \
    t ".max_parallel_requests AS " p "max_parallel_requests, " t ".models AS " p "models"

/* The key with everything enforcement needs about its team, user and organization. */
static const char load_sql[] =
    "SELECT k.key_name, k.key_alias, k.expires, k.aliases, k.metadata, k.blocked AS k_blocked, "
    ENTITY_COLS("k_", "k", "token") ", "
    ENTITY_COLS("t_", "t", "team_id") ", t.blocked AS t_blocked, "
    ENTITY_COLS("u_", "u", "user_id") ", u.user_role AS u_user_role, "
    ENTITY_COLS("o_", "o", "organization_id") " "
    "FROM sluice_keys k "
    "LEFT JOIN sluice_teams t ON t.team_id = k.team_id "
    "LEFT JOIN sluice_users u ON u.user_id = k.user_id "
    "LEFT JOIN sluice_organizations o ON o.organization_id = COALESCE(k.organization_id, "
    "t.organization_id) "
    "WHERE k.token = $1";

/* ---- cache ------------------------------------------------------------------------------ */

keycache *keycache_new(store *st, double ttl_s)
{
    keycache *kc = calloc(1, sizeof *kc);
    if (!kc)
        return NULL;
    pthread_mutex_init(&kc->mu, NULL);
    kc->st = st;
    kc->ttl = ttl_s > 0 ? ttl_s : 60;
    return kc;
}

static void entry_free(entry *e)
{
    key_rec_unref(e->rec);
    while (e->waiters) { /* only at shutdown: nobody is left to call */
        waiter *w = e->waiters;
        e->waiters = w->next;
        free(w);
    }
    free(e);
}

void keycache_free(keycache *kc)
{
    if (!kc)
        return;
    for (int i = 0; i < NBUCKETS; i++)
        for (entry *e = kc->buckets[i]; e;) {
            entry *n = e->next;
            entry_free(e);
            e = n;
        }
    pthread_mutex_destroy(&kc->mu);
    free(kc);
}

static unsigned bucket_of(const char *token)
{
    unsigned h = 2166136261u;
    for (const char *p = token; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % NBUCKETS;
}

static entry *find(keycache *kc, const char *token, bool create)
{
    unsigned b = bucket_of(token);
    for (entry *e = kc->buckets[b]; e; e = e->next)
        if (strcmp(e->token, token) == 0)
            return e;
    if (!create)
        return NULL;
    entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->token, sizeof e->token, "%s", token);
    e->next = kc->buckets[b];
    kc->buckets[b] = e;
    return e;
}

typedef struct {
    store_job job;
    keycache *kc;
    char token[65];
    key_rec *rec;
} load_job;

static int load_run(db_conn *c, store_job *j)
{
    load_job *lj = (load_job *)j;
    db_result r = {0};
    const char *params[1] = {lj->token};
    if (db_exec(c, load_sql, 1, params, &r, j->err, sizeof j->err) < 0)
        return -1;
    if (r.nrows > 0)
        lj->rec = key_rec_from_row(&r, 0);
    db_result_free(&r);
    if (lj->rec && lj->kc->stamp) /* on the store thread, so no flush lands in between */
        lj->kc->stamp(lj->kc->stamp_ctx, lj->rec);
    return 0;
}

static void deliver(void *arg)
{
    waiter *w = arg;
    w->cb(w->arg, w->rec, w->db_error);
    free(w->db_error);
    free(w);
}

/* Runs on the store thread (reply_to NULL): publish the result and answer every waiter. */
static void load_done(store_job *j)
{
    load_job *lj = (load_job *)j;
    keycache *kc = lj->kc;
    pthread_mutex_lock(&kc->mu);
    entry *e = find(kc, lj->token, true);
    waiter *ws = NULL;
    if (e) {
        e->loading = false;
        if (j->status == 0) {
            key_rec_unref(e->rec);
            e->rec = lj->rec; /* may be NULL: the key does not exist */
            lj->rec = NULL;
            e->loaded = clock_mono();
        }
        ws = e->waiters;
        e->waiters = NULL;
        for (waiter *w = ws; w; w = w->next) {
            w->rec = e->rec; /* on a database error: the stale record, if any */
            key_rec_ref(w->rec);
            if (j->status != 0)
                w->db_error = strdup(j->err[0] ? j->err : "database unavailable");
        }
    }
    pthread_mutex_unlock(&kc->mu);
    while (ws) {
        waiter *n = ws->next;
        if (mbox_post(ws->mb, deliver, ws) < 0) {
            key_rec_unref(ws->rec);
            free(ws->db_error);
            free(ws);
        }
        ws = n;
    }
    key_rec_unref(lj->rec);
    free(lj);
}

/* With kc->mu held: start a load unless one is running. */
static void start_load(keycache *kc, entry *e)
{
    if (e->loading)
        return;
    load_job *lj = calloc(1, sizeof *lj);
    if (!lj)
        return;
    lj->kc = kc;
    snprintf(lj->token, sizeof lj->token, "%s", e->token);
    lj->job.run = load_run;
    lj->job.done = load_done;
    lj->job.reply_to = NULL;
    e->loading = true;
    if (store_submit(kc->st, &lj->job) < 0) {
        e->loading = false;
        free(lj);
    }
}

void keycache_set_stamp(keycache *kc, key_stamp_fn fn, void *ctx)
{
    kc->stamp = fn;
    kc->stamp_ctx = ctx;
}

int keycache_get(keycache *kc, const char *token, mbox *mb, key_lookup_cb cb, void *arg,
                 key_rec **out)
{
    double now = clock_mono();
    pthread_mutex_lock(&kc->mu);
    entry *e = find(kc, token, true);
    if (!e) {
        pthread_mutex_unlock(&kc->mu);
        return -1;
    }
    if (e->loaded > 0) {
        double age = now - e->loaded;
        if (e->rec) {
            if (age > kc->ttl)
                start_load(kc, e); /* refresh in the background; serve what we have */
            key_rec_ref(e->rec);
            *out = e->rec;
            pthread_mutex_unlock(&kc->mu);
            return 1;
        }
        if (age <= NEGATIVE_TTL_S) { /* known absent */
            *out = NULL;
            pthread_mutex_unlock(&kc->mu);
            return 1;
        }
    }
    waiter *w = calloc(1, sizeof *w);
    if (!w) {
        pthread_mutex_unlock(&kc->mu);
        return -1;
    }
    w->mb = mb;
    w->cb = cb;
    w->arg = arg;
    w->next = e->waiters;
    e->waiters = w;
    start_load(kc, e);
    if (!e->loading) { /* the store refused the job (closing) */
        e->waiters = w->next;
        free(w);
        pthread_mutex_unlock(&kc->mu);
        return -1;
    }
    pthread_mutex_unlock(&kc->mu);
    return 0;
}

void keycache_invalidate(keycache *kc, const char *token)
{
    if (!kc)
        return;
    pthread_mutex_lock(&kc->mu);
    for (int i = 0; i < NBUCKETS; i++)
        for (entry *e = kc->buckets[i]; e; e = e->next)
            if (!token || strcmp(e->token, token) == 0) {
                key_rec_unref(e->rec);
                e->rec = NULL;
                e->loaded = 0; /* next lookup reloads */
            }
    pthread_mutex_unlock(&kc->mu);
}

void keycache_invalidate_owner(keycache *kc, const char *team_id, const char *user_id)
{
    if (!kc)
        return;
    pthread_mutex_lock(&kc->mu);
    for (int i = 0; i < NBUCKETS; i++)
        for (entry *e = kc->buckets[i]; e; e = e->next) {
            key_rec *r = e->rec;
            if (!r)
                continue;
            if ((team_id && r->has_team && r->team.id && strcmp(r->team.id, team_id) == 0) ||
                (user_id && r->has_user && r->user.id && strcmp(r->user.id, user_id) == 0)) {
                key_rec_unref(e->rec);
                e->rec = NULL;
                e->loaded = 0;
            }
        }
    pthread_mutex_unlock(&kc->mu);
}

void keycache_refresh(keycache *kc, const char *token, const char *team_id, const char *user_id)
{
    if (!kc)
        return;
    bool all = !token && !team_id && !user_id;
    pthread_mutex_lock(&kc->mu);
    for (int i = 0; i < NBUCKETS; i++)
        for (entry *e = kc->buckets[i]; e; e = e->next) {
            key_rec *r = e->rec;
            if (!r)
                continue;
            if (all || (token && strcmp(e->token, token) == 0) ||
                (team_id && r->has_team && r->team.id && strcmp(r->team.id, team_id) == 0) ||
                (user_id && r->has_user && r->user.id && strcmp(r->user.id, user_id) == 0))
                e->loaded = 0; /* reload before next use; the record stays as a fallback */
        }
    pthread_mutex_unlock(&kc->mu);
}
