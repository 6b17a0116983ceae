/* policy — see policy.h.
 *
 * The flusher is one thread that wakes every proxy_batch_write_at seconds (and once more at
 * shutdown), takes the whole in-memory batch and hands it to the store as one job: spend rows
 * inserted (ON CONFLICT DO NOTHING, so a batch replayed after a crash writes nothing twice) and
 * entity totals incremented, in one transaction. If the database is away the batch goes back
 * into the accumulator (spilling to a local file past its bound) and is retried next time, so
 * spend waits and nothing is lost. After a successful write the cached records of the keys
 * involved are dropped, so the next request reads the new totals from the database, and the
 * written amounts leave the in-memory "unflushed" spend. */
#include "policy.h"

#include <event2/http.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin.h"
#include "obs/log.h"
#include "spend/spend.h"
#include "util/sbuf.h"
#include "util/thread.h"
#include "util/clock.h"
#include "util/duration.h"

static lim *g_lim;
static spend_accum *g_acc;
static store *g_store;
static keycache *g_kc;
static const cfg *g_cfg;
static pthread_t g_flusher;
static bool g_flusher_started;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static bool g_stop;
/* Rows added since the flusher last took the batch. Past FLUSH_EARLY_ROWS the flusher is woken
 * before proxy_batch_write_at: at thousands of requests a second the in-memory bound (10,000
 * rows) would otherwise fill within a second and rows would spill to the local file, whose
 * JSON formatting and write(2) then run on the request threads. */
#define FLUSH_EARLY_ROWS 4000
static atomic_long g_unflushed_rows;

/* limits/' name for an entity: "key:<hash>", "user:<id>", "team:<id>", "org:<id>" (kind is a
 * spend_entity, in the same order as entities_of lists a record's). */
static void entity_name(char *out, size_t n, int kind, const char *id)
{
    static const char *const pre[4] = {"key:", "user:", "team:", "org:"};
    snprintf(out, n, "%s%s", pre[kind & 3], id ? id : "");
}

/* A key record's entities in spend_entity order: key, user, team, organization (NULL: none). */
static void entities_of(key_rec *k, key_entity *out[4])
{
    out[0] = &k->key;
    out[1] = k->has_user ? &k->user : NULL;
    out[2] = k->has_team ? &k->team : NULL;
    out[3] = k->has_org ? &k->org : NULL;
}

/* Two per request: formatted once a second per thread (gmtime_r takes glibc's time-zone
 * lock, shared by every worker). */
static void iso_time(time_t t, char out[32])
{
    static _Thread_local time_t t_last = (time_t)-1;
    static _Thread_local char t_text[32];
    if (t != t_last) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(t_text, sizeof t_text, "%Y-%m-%dT%H:%M:%SZ", &tm);
        t_last = t;
    }
    memcpy(out, t_text, 32);
}


/* ---- admission -------------------------------------------------------------------------- */

static bool model_listed(char *const *models, int n, const char *model, const cfg_deployment *dep)
{
    for (int i = 0; i < n; i++) {
        const char *m = models[i];
        if (!strcmp(m, model) || !strcmp(m, "*") || !strcmp(m, "all-proxy-models"))
            return true;
        if (strchr(m, '*') && (fnmatch(m, model, 0) == 0 || (dep && fnmatch(m, dep->model, 0) == 0)))
            return true;
    }
    return false;
}

static void list_models(char *const *models, int n, char *out, size_t len)
{
    size_t o = (size_t)snprintf(out, len, "[");
    for (int i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s'%s'", i ? ", " : "", models[i]);
    if (o < len)
        snprintf(out + o, len - o, "]");
}

static void deny(policy_denial *d, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void deny(policy_denial *d, int status, const char *type, const char *fmt, ...)
{
    d->status = status;
    d->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
}

const char *policy_alias(const auth_ident *id, const char *model)
{
    if (!id || id->kind != IDENT_KEY || !id->rec || !id->rec->aliases || !model)
        return NULL;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(id->rec->aliases, model);
    return cJSON_IsString(a) ? a->valuestring : NULL;
}

static void spend_price_for(const cfg_deployment *dep, const char *model, spend_price *p,
                            bool *known)
{
    spend_override ov;
    spend_override_init(&ov);
    const char *base = NULL;
    if (dep) {
        const cJSON *lp = dep->litellm_params;
        const cJSON *v;
        if ((v = cJSON_GetObjectItemCaseSensitive(lp, "input_cost_per_token")) && cJSON_IsNumber(v))
            ov.input_cost_per_token = v->valuedouble;
        if ((v = cJSON_GetObjectItemCaseSensitive(lp, "output_cost_per_token")) && cJSON_IsNumber(v))
            ov.output_cost_per_token = v->valuedouble;
        if ((v = cJSON_GetObjectItemCaseSensitive(lp, "cache_read_input_token_cost")) &&
            cJSON_IsNumber(v))
            ov.cache_read_input_token_cost = v->valuedouble;
        if ((v = cJSON_GetObjectItemCaseSensitive(lp, "cache_creation_input_token_cost")) &&
            cJSON_IsNumber(v))
            ov.cache_creation_input_token_cost = v->valuedouble;
        const cJSON *bm = cJSON_GetObjectItemCaseSensitive(dep->model_info, "base_model");
        if (cJSON_IsString(bm))
            base = bm->valuestring;
    }
    *known = spend_price_lookup(base, dep ? dep->model : model, NULL, &ov, p);
}

/* The admission estimate of a request's cost: 0 when its price is unknown. */
static double estimate_for(const policy_request *pr)
{
    if (!pr)
        return 0;
    spend_price p;
    bool known;
    spend_price_for(pr->dep, pr->model, &p, &known);
    return known ? spend_estimate(&p, pr->prompt_bytes, pr->max_tokens) : 0;
}

/* litellm_settings.max_budget: every request's cost, master key included, counts against one
 * proxy-wide budget. As in LiteLLM it is the cost this process has seen since it started (the
 * entity is never reported written, so its settled spend only grows); unlike LiteLLM it is
 * shared by all worker threads and reserved at admission, so concurrent calls cannot overrun
 * it together. */
static bool proxy_budget_check(lim_budget_check *c)
{
    if (!(g_cfg && g_cfg->max_budget >= 0))
        return false;
    *c = (lim_budget_check){.entity = "proxy:", .spend = 0, .max_budget = g_cfg->max_budget};
    return true;
}

/* Reserves the request's estimate on every budget check, all or nothing; false after filling d
 * with LiteLLM's budget_exceeded refusal. */
static bool reserve_budgets(const lim_budget_check *bc, int nb, const policy_request *pr,
                            policy_grant *g, policy_denial *d)
{
    if (!nb)
        return true;
    lim_budget_verdict bv;
    int rc = lim_budget_reserve_all(g_lim, bc, nb, estimate_for(pr), &g->resv, &bv);
    if (rc == 0) {
        deny(d, 400, "budget_exceeded", "x");
        lim_format_budget_refusal(&bv, d->message, sizeof d->message);
        return false;
    }
    g->reserved = rc == 1;
    return true;
}

bool policy_admit(const auth_ident *id, const policy_request *pr, policy_grant *g,
                  policy_denial *d)
{
    memset(g, 0, sizeof *g);
    memset(d, 0, sizeof *d);
    d->requests.limit = d->tokens.limit = -1;
    iso_time(time(NULL), g->start_time);
    snprintf(g->token, sizeof g->token, "%s", id ? id->token : "");
    g->active = true;
    if (!id || id->kind != IDENT_KEY || !id->rec) {
        /* master key / open proxy: no per-key policy, only the proxy-wide budget */
        lim_budget_check proxy;
        if (!reserve_budgets(&proxy, proxy_budget_check(&proxy), pr, g, d))
            goto refused;
        return true;
    }
    key_rec *k = id->rec;
    time_t now = time(NULL);
    if (k->key.blocked) {
        deny(d, 401, "auth_error", "Authentication Error, Key is blocked. Update via "
                                   "`/key/unblock` if you're admin.");
        goto refused;
    }
    if (k->expires && k->expires < now) {
        char a[32], b[32];
        iso_time(k->expires, a);
        iso_time(now, b);
        deny(d, 401, "expired_key", "Authentication Error - Expired Key. Key Expiry time %s and "
                                    "current time %s", a, b);
        goto refused;
    }
    if (k->has_team && k->team.blocked) {
        deny(d, 401, "team_model_access_denied", "Authentication Error, Team=%s is blocked. "
                                                 "Update via `/team/unblock` if you're admin.",
             k->team.id);
        goto refused;
    }
    /* model access: the key's list ("all-team-models" = the team's), then the team's */
    char list[400];
    bool all_team = false;
    for (int i = 0; i < k->key.nmodels; i++)
        all_team |= !strcmp(k->key.models[i], "all-team-models");
    if (k->key.nmodels > 0 && !all_team &&
        !model_listed(k->key.models, k->key.nmodels, pr->model, pr->dep)) {
        list_models(k->key.models, k->key.nmodels, list, sizeof list);
        deny(d, 401, "key_model_access_denied", "key not allowed to access model. This key can "
                                                "only access models=%s. Tried to access %s",
             list, pr->model);
        goto refused;
    }
    if (k->has_team && k->team.nmodels > 0 &&
        !model_listed(k->team.models, k->team.nmodels, pr->model, pr->dep)) {
        list_models(k->team.models, k->team.nmodels, list, sizeof list);
        deny(d, 401, "team_model_access_denied", "team not allowed to access model. This team "
                                                 "can only access models=%s. Tried to access %s",
             list, pr->model);
        goto refused;
    }
    /* budgets, reserved all-or-nothing */
    key_entity *ents[4];
    entities_of(k, ents);
    for (int i = 0; i < 4; i++)
        if (ents[i] && ents[i]->id)
            entity_name(g->desc[i], sizeof g->desc[i], i, ents[i]->id);
    lim_budget_check bc[5];
    int nb = 0;
    for (int i = 0; i < 4; i++)
        if (ents[i] && g->desc[i][0] && ents[i]->max_budget >= 0)
            bc[nb++] = (lim_budget_check){.entity = g->desc[i], .spend = ents[i]->spend,
                                          .written_at_load = ents[i]->written_at_load,
                                          .max_budget = ents[i]->max_budget};
    nb += proxy_budget_check(&bc[nb]);
    if (!reserve_budgets(bc, nb, pr, g, d))
        goto refused;
    /* rate limits, all-or-nothing across key, user, team, organization */
    for (int i = 0; i < 4; i++) {
        if (!ents[i] || !g->desc[i][0])
            continue;
        if (ents[i]->rpm_limit < 0 && ents[i]->tpm_limit < 0 && ents[i]->max_parallel < 0)
            continue;
        g->checks[g->nchecks++] = (lim_check){.key = g->desc[i], .rpm_limit = ents[i]->rpm_limit,
                                              .tpm_limit = ents[i]->tpm_limit,
                                              .max_parallel = ents[i]->max_parallel};
    }
    if (g->nchecks) {
        int rc = lim_admit(g_lim, g->checks, g->nchecks, clock_wall(), &g->verdict);
        if (rc == 0) {
            deny(d, 429, "rate_limit_error", "x");
            lim_format_refusal(&g->verdict, d->message, sizeof d->message);
            d->requests = g->verdict.requests;
            d->tokens = g->verdict.tokens;
            d->retry_after = g->verdict.retry_after;
            snprintf(d->limit_type, sizeof d->limit_type, "%s", lim_kind_name(g->verdict.kind));
            if (g->reserved)
                lim_budget_settle(g_lim, &g->resv, 0);
            g->reserved = false;
            goto refused;
        }
        g->admitted = rc == 1;
    }
    key_rec_ref(k);
    g->rec = k;
    return true;
refused:
    memset(g, 0, sizeof *g);
    return false;
}

void policy_counts_headers(const lim_count *requests, const lim_count *tokens,
                           struct evkeyvalq *h)
{
    char v[32];
    if (requests->limit >= 0) {
        snprintf(v, sizeof v, "%lld", (long long)requests->limit);
        evhttp_add_header(h, "x-ratelimit-limit-requests", v);
        snprintf(v, sizeof v, "%lld", (long long)requests->remaining);
        evhttp_add_header(h, "x-ratelimit-remaining-requests", v);
    }
    if (tokens->limit >= 0) {
        snprintf(v, sizeof v, "%lld", (long long)tokens->limit);
        evhttp_add_header(h, "x-ratelimit-limit-tokens", v);
        snprintf(v, sizeof v, "%lld", (long long)tokens->remaining);
        evhttp_add_header(h, "x-ratelimit-remaining-tokens", v);
    }
}

void policy_rate_headers(const policy_grant *g, struct evkeyvalq *h)
{
    if (g->admitted)
        policy_counts_headers(&g->verdict.requests, &g->verdict.tokens, h);
}

double policy_key_spend(const policy_grant *g)
{
    if (!g->rec)
        return -1;
    char e[80];
    entity_name(e, sizeof e, SPEND_KEY, g->rec->token);
    return g->rec->key.spend + lim_budget_spend_since(g_lim, e, g->rec->key.written_at_load);
}

void policy_end(policy_grant *g, const policy_outcome *o, policy_result *res)
{
    memset(res, 0, sizeof *res);
    res->cost = -1;
    res->key_spend = -1;
    res->requests.limit = res->tokens.limit = -1;
    if (!g->active)
        return;
    const policy_request *pr = o->req;
    spend_price p;
    bool known;
    spend_price_for(pr ? pr->dep : NULL, pr ? pr->model : NULL, &p, &known);
    spend_usage su;
    spend_usage_from_oai(o->usage, o->usage->cache_creation_tokens, &su);
    bool have_usage = o->usage->prompt_tokens >= 0 || o->usage->completion_tokens >= 0;
    double cost = 0;
    bool ok2xx = o->status >= 200 && o->status < 300;
    if (known && have_usage)
        known = spend_cost(&p, &su, &cost);
    else if (have_usage && ok2xx && pr && pr->dep && !pr->dep->mock_response && spend_warn_once(pr->dep->model))
        log_msg(LOG_WARN, "no price for model %s: its spend is recorded as unknown "
                          "(cost_known=0), not as $0", pr->dep->model);
    bool cost_known = known && have_usage;
    if (!have_usage)
        cost = 0;
    res->cost = cost_known ? cost : -1;
    int64_t total = o->usage->total_tokens >= 0 ? o->usage->total_tokens
                    : (o->usage->prompt_tokens > 0 ? o->usage->prompt_tokens : 0) +
                          (o->usage->completion_tokens > 0 ? o->usage->completion_tokens : 0);
    if (g->admitted) {
        if (total > 0)
            lim_add_tokens(g_lim, &g->verdict.ticket, total, clock_wall());
        lim_release(g_lim, &g->verdict.ticket);
    }
    if (g->reserved)
        lim_budget_settle(g_lim, &g->resv, cost_known ? cost : 0);
    /* what the response headers report, read before the grant is cleared */
    res->key_spend = policy_key_spend(g);
    if (g->admitted) {
        res->requests = g->verdict.requests;
        res->tokens = g->verdict.tokens;
    }
    /* the spend row: every request that was admitted, with its status */
    const key_rec *k = g->rec;
    char end[32];
    iso_time(time(NULL), end);
    spend_row row = {
        .request_id = o->request_id,
        .call_type = o->call_type,
        .api_key = g->token[0] ? g->token : NULL,
        .spend = cost_known ? cost : 0,
        /* no usage on a failed call: it cost nothing; on a success: unknown, never "$0" */
        .cost_known = have_usage ? cost_known : !ok2xx,
        .total_tokens = total,
        .prompt_tokens = o->usage->prompt_tokens > 0 ? o->usage->prompt_tokens : 0,
        .completion_tokens = o->usage->completion_tokens > 0 ? o->usage->completion_tokens : 0,
        .cache_read_tokens = su.cache_read_tokens > 0 ? su.cache_read_tokens : 0,
        .cache_creation_tokens = su.cache_creation_tokens > 0 ? su.cache_creation_tokens : 0,
        .start_time = g->start_time,
        .end_time = end,
        .model = pr && pr->dep ? pr->dep->model : (pr ? pr->model : NULL),
        .model_group = pr ? pr->model : NULL,
        .model_id = pr && pr->dep ? pr->dep->id : NULL,
        .custom_llm_provider = pr && pr->dep ? pr->dep->provider : NULL,
        .user_id = k && k->has_user ? k->user.id : NULL,
        .team_id = k && k->has_team ? k->team.id : NULL,
        .organization_id = k && k->has_org ? k->org.id : NULL,
        .end_user = o->end_user,
        .status = ok2xx ? "success" : "failure",
        .metadata = "{}",
    };
    if (!g_cfg->disable_spend_logs) {
        spend_accum_add(g_acc, &row);
        if (atomic_fetch_add(&g_unflushed_rows, 1) + 1 == FLUSH_EARLY_ROWS) {
            pthread_mutex_lock(&g_mu);
            pthread_cond_broadcast(&g_cv);
            pthread_mutex_unlock(&g_mu);
        }
    } else if (cost_known && cost > 0) {
        if (row.api_key)
            spend_accum_add_increment(g_acc, SPEND_KEY, row.api_key, cost);
        if (row.user_id)
            spend_accum_add_increment(g_acc, SPEND_USER, row.user_id, cost);
        if (row.team_id)
            spend_accum_add_increment(g_acc, SPEND_TEAM, row.team_id, cost);
        if (row.organization_id)
            spend_accum_add_increment(g_acc, SPEND_ORG, row.organization_id, cost);
    }
    key_rec_unref(g->rec);
    memset(g, 0, sizeof *g);
}

/* ---- the flusher ------------------------------------------------------------------------ */

typedef struct {
    store_job job;
    spend_batch batch;
    bool finished;
    char reset_keys[8][65];  /* a few reset entities to drop from the cache (all when more) */
    int nreset;
    bool reset_many;
} flush_job;

static const char *const inc_table[] = {"sluice_keys", "sluice_users", "sluice_teams",
                                        "sluice_organizations"};
static const char *const inc_idcol[] = {"token", "user_id", "team_id", "organization_id"};

static char *num_str(double v, char out[40])
{
    snprintf(out, 40, "%.17g", v);
    return out;
}

static char *int_str(int64_t v, char out[24])
{
    /* by hand: the flusher formats five of these per spend row */
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) && n < 23);
    int o = 0;
    if (v < 0)
        out[o++] = '-';
    while (n)
        out[o++] = tmp[--n];
    out[o] = 0;
    return out;
}

static int flush_run(db_conn *c, store_job *j)
{
    flush_job *fj = (flush_job *)j;
    spend_batch *b = &fj->batch;
    if (db_begin(c, j->err, sizeof j->err) < 0)
        return -1;
    /* Many rows per statement: preparing a statement costs tens of microseconds, which at tens
     * of thousands of rows a second was most of the store thread's work. 40 rows x 22
     * parameters stays far below both backends' parameter limits. */
    enum { COLS = 22, PER = 40 };
    static const char head[] =
        "INSERT INTO sluice_spend_logs (request_id, call_type, api_key, spend, cost_known, "
        "total_tokens, prompt_tokens, completion_tokens, cache_read_tokens, "
        "cache_creation_tokens, start_time, end_time, model, model_group, model_id, "
        "custom_llm_provider, user_id, team_id, organization_id, end_user, status, metadata) "
        "VALUES ";
    const char **params = malloc(sizeof(char *) * COLS * PER);
    char (*nums)[6][40] = malloc(sizeof(*nums) * PER);
    sbuf ins;
    sbuf_init(&ins);
    if (!params || !nums) {
        free(params);
        free(nums);
        snprintf(j->err, sizeof j->err, "out of memory");
        goto fail;
    }
    size_t built = 0; /* rows the text in ins has placeholders for (the store caches by text) */
    for (size_t i = 0; i < b->nrows; i += PER) {
        size_t n = b->nrows - i < PER ? b->nrows - i : PER;
        bool build = n != built;
        if (build) {
            ins.len = 0;
            sbuf_adds(&ins, head);
            built = n;
        }
        for (size_t k = 0; k < n; k++) {
            const spend_row *r = b->rows[i + k];
            const char **p = params + k * COLS;
            p[0] = r->request_id;
            p[1] = r->call_type;
            p[2] = r->api_key;
            p[3] = num_str(r->spend, nums[k][0]);
            p[4] = r->cost_known ? "1" : "0";
            p[5] = int_str(r->total_tokens, nums[k][1]);
            p[6] = int_str(r->prompt_tokens, nums[k][2]);
            p[7] = int_str(r->completion_tokens, nums[k][3]);
            p[8] = int_str(r->cache_read_tokens, nums[k][4]);
            p[9] = int_str(r->cache_creation_tokens, nums[k][5]);
            p[10] = r->start_time;
            p[11] = r->end_time;
            p[12] = r->model;
            p[13] = r->model_group;
            p[14] = r->model_id;
            p[15] = r->custom_llm_provider;
            p[16] = r->user_id;
            p[17] = r->team_id;
            p[18] = r->organization_id;
            p[19] = r->end_user;
            p[20] = r->status ? r->status : "success";
            p[21] = r->metadata ? r->metadata : "{}";
            if (!build)
                continue;
            sbuf_adds(&ins, k ? ",(" : "(");
            for (int col = 0; col < COLS; col++)
                sbuf_addf(&ins, col ? ",$%zu" : "$%zu", k * COLS + (size_t)col + 1);
            sbuf_adds(&ins, ")");
        }
        if (build)
            sbuf_adds(&ins, " ON CONFLICT (request_id) DO NOTHING");
        if (ins.failed ||
            db_exec(c, ins.p, (int)(n * COLS), params, NULL, j->err, sizeof j->err) < 0) {
            sbuf_free(&ins);
            free(params);
            free(nums);
            goto fail;
        }
        /* Between statements, let runnable request threads go first — a 4,000-row flush is
         * ~15 ms of CPU, and on a busy machine running it in one go shows up as milliseconds of
         * tail latency (p99 2.7 ms at one connection; 0.25–0.65 ms with this) — but only while
         * few new rows wait: once half an early flush's worth has come in meanwhile, the flush
         * runs flat out, so at saturation it keeps up and nothing spills. */
        if (atomic_load(&g_unflushed_rows) < FLUSH_EARLY_ROWS / 2)
            sched_yield();
    }
    sbuf_free(&ins);
    free(params);
    free(nums);
    char now[32];
    iso_time(time(NULL), now);
    for (size_t i = 0; i < b->nincs; i++) {
        const spend_increment *inc = &b->incs[i];
        char sql[200], amt[40];
        snprintf(sql, sizeof sql, "UPDATE %s SET spend = spend + $1, updated_at = $2 WHERE %s = $3",
                 inc_table[inc->kind], inc_idcol[inc->kind]);
        const char *p[3] = {num_str(inc->amount, amt), now, inc->id};
        if (db_exec(c, sql, 3, p, NULL, j->err, sizeof j->err) < 0)
            goto fail;
    }
    /* budget_duration resets that are due: spend back to 0, next reset scheduled */
    for (int t = 0; t < 4; t++) {
        char sql[300];
        db_result r = {0};
        snprintf(sql, sizeof sql, "SELECT %s AS id, budget_duration FROM %s WHERE "
                                  "budget_reset_at IS NOT NULL AND budget_reset_at <= $1",
                 inc_idcol[t], inc_table[t]);
        const char *p1[1] = {now};
        if (db_exec(c, sql, 1, p1, &r, j->err, sizeof j->err) < 0)
            goto fail;
        for (int row = 0; row < r.nrows; row++) {
            const char *id = db_value(&r, row, "id");
            time_t next_t;
            if (adm_duration_add(time(NULL), db_value(&r, row, "budget_duration"), &next_t) < 0)
                next_t = time(NULL) + 86400; /* an unreadable duration: try again tomorrow */
            char next[32];
            iso_time(next_t, next);
            snprintf(sql, sizeof sql, "UPDATE %s SET spend = 0, budget_reset_at = $1 WHERE %s = $2",
                     inc_table[t], inc_idcol[t]);
            const char *p2[2] = {next, id};
            if (db_exec(c, sql, 2, p2, NULL, j->err, sizeof j->err) < 0) {
                db_result_free(&r);
                goto fail;
            }
            char ent[100];
            entity_name(ent, sizeof ent, t, id);
            lim_budget_reset(g_lim, ent);
            if (t == 0 && fj->nreset < 8 && id)
                snprintf(fj->reset_keys[fj->nreset++], 65, "%s", id);
            else
                fj->reset_many = true;
        }
        db_result_free(&r);
    }
    if (db_commit(c, j->err, sizeof j->err) < 0)
        goto fail;
    return 0;
fail:
    db_rollback(c);
    return -1;
}

/* The flusher's store jobs: the store thread marks one finished, the flusher waits for it. */
static void job_finished(bool *finished)
{
    pthread_mutex_lock(&g_mu);
    *finished = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void job_wait(const bool *finished)
{
    pthread_mutex_lock(&g_mu);
    while (!*finished)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

/* Runs on the store thread right after the commit: the written amounts move from "unflushed" to
 * "written" before the store reads any key record again, so records loaded earlier (which lack
 * this spend) and later (which have it) both see the exact total. */
static void flush_done(store_job *j)
{
    flush_job *fj = (flush_job *)j;
    if (j->status == 0) {
        for (size_t i = 0; i < fj->batch.nincs; i++) {
            char ent[100];
            entity_name(ent, sizeof ent, fj->batch.incs[i].kind, fj->batch.incs[i].id);
            lim_budget_flushed(g_lim, ent, fj->batch.incs[i].amount);
        }
    }
    job_finished(&fj->finished);
}

/* One flush: take, write, wait for the store's answer. Returns whether more is pending. */
static bool flush_once(void)
{
    flush_job *fj = calloc(1, sizeof *fj);
    if (!fj)
        return false;
    atomic_store(&g_unflushed_rows, 0);
    long n = spend_accum_take(g_acc, &fj->batch);
    (void)n;
    fj->job.run = flush_run;
    fj->job.done = flush_done;
    fj->job.reply_to = NULL;
    if (store_submit(g_store, &fj->job) < 0) {
        spend_accum_restore(g_acc, &fj->batch);
        spend_batch_free(&fj->batch);
        free(fj);
        return false;
    }
    job_wait(&fj->finished);
    spend_batch *b = &fj->batch;
    if (fj->job.status != 0) {
        if (b->nrows || b->nincs)
            log_msg(LOG_WARN, "spend: %zu rows wait for the database (%s)", b->nrows,
                    fj->job.err);
        spend_accum_restore(g_acc, b);
    } else {
        /* written (flush_done already moved the amounts to "written"); cached records stay
         * valid. A reset budget period is read again before the key's next use. */
        if (fj->reset_many)
            keycache_refresh(g_kc, NULL, NULL, NULL);
        for (int i = 0; i < fj->nreset; i++)
            keycache_refresh(g_kc, fj->reset_keys[i], NULL, NULL);
    }
    bool ok = fj->job.status == 0;
    spend_batch_free(b);
    free(fj);
    spend_accum_stats st;
    spend_accum_get_stats(g_acc, &st);
    return ok && st.spill_pending;
}

/* ---- spend-log retention ------------------------------------------------------------------
 * general_settings.maximum_spend_logs_retention_period: every ..._retention_interval (default a
 * day, first run at start-up) the flusher deletes spend-log rows that started before now minus
 * the period, PRUNE_BATCH rows per store job so key lookups keep flowing between batches. */

#define PRUNE_BATCH 5000
#define STR_(x) #x
#define STR(x) STR_(x)

typedef struct {
    store_job job;
    char cutoff[32];
    int deleted;
    bool finished;
} prune_job;

static int prune_run(db_conn *c, store_job *j)
{
    prune_job *pj = (prune_job *)j;
    const char *p[1] = {pj->cutoff};
    int n = db_exec(c,
                    "DELETE FROM sluice_spend_logs WHERE request_id IN (SELECT request_id FROM "
                    "sluice_spend_logs WHERE start_time < $1 LIMIT " STR(PRUNE_BATCH) ")",
                    1, p, NULL, j->err, sizeof j->err);
    if (n < 0)
        return -1;
    pj->deleted = n;
    return 0;
}

static void prune_done(store_job *j)
{
    job_finished(&((prune_job *)j)->finished);
}

static void prune_spend_logs(void)
{
    static time_t next; /* flusher thread only */
    const char *period = g_cfg->spend_logs_retention;
    time_t now = time(NULL), until;
    if (!period || now < next || duration_add(now, period, &until) < 0)
        return;
    next = now + (time_t)g_cfg->spend_logs_cleanup_s;
    char cutoff[32];
    iso_time(now - (until - now), cutoff);
    long total = 0;
    for (int round = 0; round < 100000; round++) {
        prune_job *pj = calloc(1, sizeof *pj);
        if (!pj)
            break;
        snprintf(pj->cutoff, sizeof pj->cutoff, "%s", cutoff);
        pj->job.run = prune_run;
        pj->job.done = prune_done;
        if (store_submit(g_store, &pj->job) < 0) {
            free(pj);
            next = now + 60; /* closing or away: try again soon */
            break;
        }
        job_wait(&pj->finished);
        bool more = pj->job.status == 0 && pj->deleted >= PRUNE_BATCH;
        if (pj->job.status != 0) {
            log_msg(LOG_WARN, "spend logs: retention cleanup failed (%s); retrying in a minute",
                    pj->job.err);
            next = now + 60;
        } else {
            total += pj->deleted;
        }
        free(pj);
        if (!more)
            break;
    }
    if (total > 0)
        log_msg(LOG_INFO, "spend logs: deleted %ld rows that started before %s "
                          "(maximum_spend_logs_retention_period %s)", total, cutoff, period);
}

static void *flusher_main(void *arg)
{
    (void)arg;
    thread_background("sluice-spend");
    for (;;) {
        pthread_mutex_lock(&g_mu);
        if (!g_stop && atomic_load(&g_unflushed_rows) < FLUSH_EARLY_ROWS) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double t = g_cfg->batch_write_s;
            ts.tv_sec += (time_t)t;
            ts.tv_nsec += (long)((t - floor(t)) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&g_cv, &g_mu, &ts);
        }
        bool stop = g_stop;
        pthread_mutex_unlock(&g_mu);
        int rounds = 0;
        while (flush_once() && rounds++ < 100) { /* drain a spill backlog */
        }
        if (stop)
            break;
        prune_spend_logs();
    }
    return NULL;
}

/* keycache's stamp hook (store thread): each entity's written total as the record was read */
static void stamp_record(void *ctx, key_rec *k)
{
    (void)ctx;
    key_entity *ents[4];
    entities_of(k, ents);
    for (int i = 0; i < 4; i++)
        if (ents[i] && ents[i]->id) {
            char ent[100];
            entity_name(ent, sizeof ent, i, ents[i]->id);
            ents[i]->written_at_load = lim_budget_written(g_lim, ent);
        }
}

int policy_init(const cfg *c, store *st, keycache *kc)
{
    g_cfg = c;
    g_store = st;
    g_kc = kc;
    g_lim = lim_new(NULL);
    g_acc = spend_accum_new(0, NULL);
    if (!g_lim || !g_acc)
        return -1;
    if (kc)
        keycache_set_stamp(kc, stamp_record, NULL);
    if (c->price_file) {
        char err[512];
        if (spend_price_load_file(c->price_file, err, sizeof err) < 0)
            log_msg(LOG_WARN, "model prices file %s not loaded: %s", c->price_file, err);
    }
    /* the flusher must not take SIGTERM/SIGINT: the main thread turns those into a drain */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&g_flusher, NULL, flusher_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -1;
    g_flusher_started = true;
    return 0;
}

void policy_shutdown(void)
{
    if (!g_flusher_started)
        return;
    pthread_mutex_lock(&g_mu);
    g_stop = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pthread_join(g_flusher, NULL);
    g_flusher_started = false;
    spend_accum_free(g_acc);
    lim_free(g_lim);
    g_acc = NULL;
    g_lim = NULL;
}
