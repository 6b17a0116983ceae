/* spend/accum — the spend-log rows between flushes; see spend.h.
 *
 * Pure data behind one mutex. A row is copied into a single allocation (struct + strings), so
 * adding costs one malloc outside the lock and a pointer push inside it. Entity increments are
 * not kept per row: the batch derives them from its rows at take time, which is what makes the
 * spill file self-sufficient — a row re-read after a crash brings its increments with it, and
 * a row is never counted twice (once in memory, once from the file).
 *
 * The spill file is append-only JSON lines written with O_APPEND. spend_accum_take reads it from
 * a remembered offset, at most max_rows rows per take, and truncates it once read to the end.
 * What a crash can cost: rows in memory (as with any in-memory batch), and, for rows already
 * taken from a file that was not yet read to its end, a second write after restart (rows are
 * keyed by request_id, so the writer can skip duplicates: INSERT ... ON CONFLICT DO NOTHING;
 * their entity increments would be applied again). */
#include "spend/spend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* ---- rows ---------------------------------------------------------------------------------- */

typedef enum { F_STR, F_DBL, F_I64, F_BOOL } ftype;

static const struct {
    const char *name; /* the sluice_spend_logs column */
    size_t off;
    ftype type;
} fields[] = {
    {"request_id", offsetof(spend_row, request_id), F_STR},
    {"call_type", offsetof(spend_row, call_type), F_STR},
    {"api_key", offsetof(spend_row, api_key), F_STR},
    {"spend", offsetof(spend_row, spend), F_DBL},
    {"cost_known", offsetof(spend_row, cost_known), F_BOOL},
    {"total_tokens", offsetof(spend_row, total_tokens), F_I64},
    {"prompt_tokens", offsetof(spend_row, prompt_tokens), F_I64},
    {"completion_tokens", offsetof(spend_row, completion_tokens), F_I64},
    {"cache_read_tokens", offsetof(spend_row, cache_read_tokens), F_I64},
    {"cache_creation_tokens", offsetof(spend_row, cache_creation_tokens), F_I64},
    {"start_time", offsetof(spend_row, start_time), F_STR},
    {"end_time", offsetof(spend_row, end_time), F_STR},
    {"model", offsetof(spend_row, model), F_STR},
    {"model_group", offsetof(spend_row, model_group), F_STR},
    {"model_id", offsetof(spend_row, model_id), F_STR},
    {"custom_llm_provider", offsetof(spend_row, custom_llm_provider), F_STR},
    {"user_id", offsetof(spend_row, user_id), F_STR},
    {"team_id", offsetof(spend_row, team_id), F_STR},
    {"organization_id", offsetof(spend_row, organization_id), F_STR},
    {"end_user", offsetof(spend_row, end_user), F_STR},
    {"status", offsetof(spend_row, status), F_STR},
    {"metadata", offsetof(spend_row, metadata), F_STR},
};
#define NFIELDS (sizeof fields / sizeof *fields)

static inline const char **str_at(const spend_row *r, size_t off)
{
    return (const char **)((const char *)r + off);
}

static const char *defaults(size_t off)
{
    if (off == offsetof(spend_row, status))
        return "success";
    if (off == offsetof(spend_row, metadata))
        return "{}";
    if (off == offsetof(spend_row, call_type))
        return "";
    return NULL;
}

/* One allocation: the struct, then every string. */
static spend_row *row_copy(const spend_row *src)
{
    size_t need = sizeof(spend_row);
    for (size_t i = 0; i < NFIELDS; i++) {
        if (fields[i].type != F_STR)
            continue;
        const char *s = *str_at(src, fields[i].off);
        if (!s)
            s = defaults(fields[i].off);
        if (s)
            need += strlen(s) + 1;
    }
    spend_row *r = malloc(need);
    if (!r)
        return NULL;
    *r = *src;
    char *p = (char *)(r + 1);
    for (size_t i = 0; i < NFIELDS; i++) {
        if (fields[i].type != F_STR)
            continue;
        const char *s = *str_at(src, fields[i].off);
        if (!s)
            s = defaults(fields[i].off);
        if (s) {
            size_t n = strlen(s) + 1;
            memcpy(p, s, n);
            *str_at(r, fields[i].off) = p;
            p += n;
        } else {
            *str_at(r, fields[i].off) = NULL;
        }
    }
    return r;
}

char *spend_row_to_json(const spend_row *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool ok = true;
    for (size_t i = 0; i < NFIELDS && ok; i++) {
        const void *at = (const char *)r + fields[i].off;
        cJSON *v = NULL;
        switch (fields[i].type) {
        case F_STR: {
            const char *s = *(const char *const *)at;
            v = s ? cJSON_CreateString(s) : cJSON_CreateNull();
            break;
        }
        case F_DBL: v = cJSON_CreateNumber(*(const double *)at); break;
        case F_I64: v = cJSON_CreateNumber((double)*(const int64_t *)at); break;
        case F_BOOL: v = cJSON_CreateNumber(*(const bool *)at ? 1 : 0); break;
        }
        ok = v && cJSON_AddItemToObject(o, fields[i].name, v);
        if (!ok)
            cJSON_Delete(v);
    }
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* NULL when the line is not a row (it needs at least a request_id). */
static spend_row *row_from_json(const char *line, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    spend_row tmp;
    memset(&tmp, 0, sizeof tmp);
    for (size_t i = 0; i < NFIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fields[i].name);
        void *at = (char *)&tmp + fields[i].off;
        switch (fields[i].type) {
        case F_STR: *(const char **)at = cJSON_IsString(v) ? v->valuestring : NULL; break;
        case F_DBL: *(double *)at = cJSON_IsNumber(v) ? v->valuedouble : 0; break;
        case F_I64: *(int64_t *)at = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0; break;
        case F_BOOL:
            *(bool *)at = cJSON_IsNumber(v) ? v->valuedouble != 0 : cJSON_IsTrue(v);
            break;
        }
    }
    spend_row *r = tmp.request_id ? row_copy(&tmp) : NULL;
    cJSON_Delete(o);
    return r;
}

/* ---- increments, summed per entity --------------------------------------------------------- */

typedef struct {
    spend_increment *v;
    size_t n, cap;
    size_t *idx; /* open addressing: index + 1 into v, 0 = empty */
    size_t idxcap;
} agg;

static uint64_t ent_hash(spend_entity k, const char *id)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)k;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

static bool agg_reindex(agg *g, size_t cap)
{
    size_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return false;
    for (size_t i = 0; i < g->n; i++) {
        size_t j = (size_t)ent_hash(g->v[i].kind, g->v[i].id) & (cap - 1);
        while (idx[j])
            j = (j + 1) & (cap - 1);
        idx[j] = i + 1;
    }
    free(g->idx);
    g->idx = idx;
    g->idxcap = cap;
    return true;
}

/* Adds amount to (kind, id); id is copied unless take_id (then it is owned by g on success). */
static bool agg_add(agg *g, spend_entity kind, char *id, double amount, bool take_id)
{
    if ((g->n + 1) * 2 > g->idxcap && !agg_reindex(g, g->idxcap ? g->idxcap * 2 : 64))
        return false;
    size_t j = (size_t)ent_hash(kind, id) & (g->idxcap - 1);
    while (g->idx[j]) {
        spend_increment *e = &g->v[g->idx[j] - 1];
        if (e->kind == kind && strcmp(e->id, id) == 0) {
            e->amount += amount;
            if (take_id)
                free(id);
            return true;
        }
        j = (j + 1) & (g->idxcap - 1);
    }
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 16;
        spend_increment *nv = realloc(g->v, nc * sizeof *nv);
        if (!nv)
            return false;
        g->v = nv;
        g->cap = nc;
    }
    char *own = take_id ? id : strdup(id);
    if (!own)
        return false;
    g->v[g->n] = (spend_increment){kind, own, amount};
    g->idx[j] = ++g->n;
    return true;
}

static void agg_free(agg *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i].id);
    free(g->v);
    free(g->idx);
    memset(g, 0, sizeof *g);
}

/* Hands the array over (ids included); g is reset. */
static spend_increment *agg_release(agg *g, size_t *n)
{
    spend_increment *v = g->v;
    *n = g->n;
    free(g->idx);
    memset(g, 0, sizeof *g);
    return v;
}

static bool row_increments(agg *g, const spend_row *r)
{
    if (!r->cost_known || !(r->spend > 0))
        return true;
    const struct {
        spend_entity k;
        const char *id;
    } ents[] = {{SPEND_KEY, r->api_key},
                {SPEND_USER, r->user_id},
                {SPEND_TEAM, r->team_id},
                {SPEND_ORG, r->organization_id}};
    for (size_t i = 0; i < sizeof ents / sizeof *ents; i++)
        if (ents[i].id && *ents[i].id && !agg_add(g, ents[i].k, (char *)ents[i].id, r->spend, false))
            return false;
    return true;
}

/* ---- the accumulator ----------------------------------------------------------------------- */

/* Two locks, taken in this order: mu (rows in memory, extras) and spill_mu (the file, its
 * offset and the counters). Rows are formatted outside both and written under spill_mu only, so
 * a flusher spilling thousands of rows never holds up the request threads adding theirs. */
struct spend_accum {
    pthread_mutex_t mu;
    spend_row **rows;
    size_t nrows, cap, max_rows;
    agg extra;
    pthread_mutex_t spill_mu;
    char *spill_path;
    int spill_fd;      /* append descriptor, opened on first spill */
    off_t spill_off;   /* bytes of the file already taken */
    bool spill_pending;
    size_t spilled, dropped;
};

spend_accum *spend_accum_new(size_t max_rows, const char *spill_path)
{
    spend_accum *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->spill_path = strdup(spill_path ? spill_path : SPEND_SPILL_DEFAULT);
    if (!a->spill_path) {
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->spill_mu, NULL);
    a->max_rows = max_rows ? max_rows : SPEND_ACCUM_MAX_ROWS;
    a->spill_fd = -1;
    struct stat st;
    a->spill_pending = stat(a->spill_path, &st) == 0 && st.st_size > 0;
    return a;
}

void spend_accum_free(spend_accum *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nrows; i++)
        free(a->rows[i]);
    free(a->rows);
    agg_free(&a->extra);
    if (a->spill_fd >= 0)
        close(a->spill_fd);
    free(a->spill_path);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->spill_mu);
    free(a);
}

/* Caller holds the lock. */
static bool push_row(spend_accum *a, spend_row *r)
{
    if (a->nrows == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        if (nc > a->max_rows)
            nc = a->max_rows;
        spend_row **nr = realloc(a->rows, nc * sizeof *nr);
        if (!nr)
            return false;
        a->rows = nr;
        a->cap = nc;
    }
    a->rows[a->nrows++] = r;
    return true;
}

/* Formats the row and appends it as one line, with one write(2) so lines never interleave.
 * Takes spill_mu (not mu); counts the row as spilled or dropped. */
static bool spill_row(spend_accum *a, const spend_row *r)
{
    char *json = r ? spend_row_to_json(r) : NULL;
    pthread_mutex_lock(&a->spill_mu);
    bool ok = json != NULL;
    if (ok && a->spill_fd < 0) {
        a->spill_fd = open(a->spill_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        ok = a->spill_fd >= 0;
    }
    if (ok) {
        size_t n = strlen(json);
        json[n] = '\n'; /* overwrite the NUL: write n + 1 bytes */
        size_t done = 0;
        while (done < n + 1) {
            ssize_t w = write(a->spill_fd, json + done, n + 1 - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                ok = false;
                break;
            }
            done += (size_t)w;
        }
    }
    if (ok) {
        a->spilled++;
        a->spill_pending = true;
    } else {
        a->dropped++;
    }
    pthread_mutex_unlock(&a->spill_mu);
    free(json);
    return ok;
}

int spend_accum_add(spend_accum *a, const spend_row *row)
{
    spend_row *r = row_copy(row);
    pthread_mutex_lock(&a->mu);
    bool kept = r && a->nrows < a->max_rows && push_row(a, r);
    pthread_mutex_unlock(&a->mu);
    if (kept)
        return 0;
    /* past the bound (the flusher is behind, or the database away): to the file */
    int rc = spill_row(a, r ? r : row) ? 1 : -1;
    free(r);
    return rc;
}

bool spend_accum_add_increment(spend_accum *a, spend_entity kind, const char *id, double amount)
{
    if (!id || !*id)
        return true;
    pthread_mutex_lock(&a->mu);
    bool ok = agg_add(&a->extra, kind, (char *)id, amount, false);
    pthread_mutex_unlock(&a->mu);
    return ok;
}

/* Reads up to max rows from the spill file into rows[] (grown as needed). Caller holds mu and
 * spill_mu.
 * Returns false when the file exists but cannot be read. */
static bool read_spill(spend_accum *a, spend_row ***rows, size_t *nrows, size_t *cap, size_t max,
                       size_t *from_spill, size_t *bad)
{
    if (!a->spill_pending)
        return true;
    int fd = open(a->spill_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            a->spill_pending = false;
            a->spill_off = 0;
            return true;
        }
        return false;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return false;
    }
    if (fseeko(f, a->spill_off, SEEK_SET) != 0) {
        fclose(f);
        return false;
    }
    char *line = NULL;
    size_t linecap = 0, taken = 0;
    off_t off = a->spill_off;
    bool eof = false, ok = true;
    while (taken < max) {
        ssize_t len = getline(&line, &linecap, f);
        if (len < 0) {
            eof = !ferror(f);
            ok = eof;
            break;
        }
        off += len;
        size_t n = (size_t)len;
        if (n && line[n - 1] == '\n')
            n--;
        if (n == 0)
            continue;
        spend_row *r = row_from_json(line, n);
        if (!r) {
            (*bad)++;
            continue;
        }
        if (*nrows == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            spend_row **nr = realloc(*rows, nc * sizeof *nr);
            if (!nr) {
                free(r);
                off -= len; /* not consumed: read it next time */
                ok = false;
                break;
            }
            *rows = nr;
            *cap = nc;
        }
        (*rows)[(*nrows)++] = r;
        (*from_spill)++;
        taken++;
    }
    if (ok && !eof) { /* stopped at max: is anything left? */
        int c = fgetc(f);
        if (c == EOF)
            eof = !ferror(f);
        else
            ungetc(c, f);
    }
    free(line);
    fclose(f);
    if (eof) {
        /* everything read: empty the file (appends happen under the same lock) */
        if (truncate(a->spill_path, 0) == 0 || errno == ENOENT) {
            a->spill_off = 0;
            a->spill_pending = false;
        } else {
            a->spill_off = off;
        }
    } else {
        a->spill_off = off;
    }
    return ok;
}

long spend_accum_take(spend_accum *a, spend_batch *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&a->mu);
    spend_row **rows = a->rows;
    size_t nrows = a->nrows, cap = a->cap;
    a->rows = NULL;
    a->nrows = a->cap = 0;
    agg extra = a->extra;
    memset(&a->extra, 0, sizeof a->extra);
    pthread_mutex_lock(&a->spill_mu);
    bool ok = read_spill(a, &rows, &nrows, &cap, a->max_rows, &out->from_spill, &out->bad_lines);
    pthread_mutex_unlock(&a->spill_mu);
    pthread_mutex_unlock(&a->mu);

    /* increments: rows first, then the extras (kept apart too, for restore) */
    agg all = {0};
    bool agg_ok = true;
    for (size_t i = 0; i < nrows && agg_ok; i++)
        agg_ok = row_increments(&all, rows[i]);
    for (size_t i = 0; i < extra.n && agg_ok; i++)
        agg_ok = agg_add(&all, extra.v[i].kind, extra.v[i].id, extra.v[i].amount, false);
    out->rows = rows;
    out->nrows = nrows;
    out->extra = agg_release(&extra, &out->nextra);
    if (agg_ok) {
        out->incs = agg_release(&all, &out->nincs);
    } else {
        /* out of memory: give everything back rather than lose the increments */
        agg_free(&all);
        spend_accum_restore(a, out);
        return -1;
    }
    return ok ? (long)nrows : -1;
}

void spend_accum_restore(spend_accum *a, spend_batch *b)
{
    /* Rows go back to memory up to half the bound, leaving the request threads room to add
     * theirs in memory; the rest is spilled here, on the flusher's thread, outside mu. */
    size_t keep_max = a->max_rows / 2, i = 0;
    pthread_mutex_lock(&a->mu);
    for (; i < b->nrows && a->nrows < keep_max; i++)
        if (!push_row(a, b->rows[i]))
            break;
    for (size_t k = 0; k < b->nextra; k++) {
        if (agg_add(&a->extra, b->extra[k].kind, b->extra[k].id, b->extra[k].amount, true))
            b->extra[k].id = NULL;
        else {
            pthread_mutex_lock(&a->spill_mu);
            a->dropped++;
            pthread_mutex_unlock(&a->spill_mu);
        }
    }
    pthread_mutex_unlock(&a->mu);
    for (; i < b->nrows; i++) {
        spill_row(a, b->rows[i]);
        free(b->rows[i]);
    }
    b->nrows = 0;
    for (size_t k = 0; k < b->nextra; k++)
        free(b->extra[k].id);
    b->nextra = 0;
    for (size_t k = 0; k < b->nincs; k++)
        free(b->incs[k].id);
    b->nincs = 0;
}

void spend_batch_free(spend_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nrows; i++)
        free(b->rows[i]);
    free(b->rows);
    for (size_t i = 0; i < b->nincs; i++)
        free(b->incs[i].id);
    free(b->incs);
    for (size_t i = 0; i < b->nextra; i++)
        free(b->extra[i].id);
    free(b->extra);
    memset(b, 0, sizeof *b);
}

void spend_accum_get_stats(spend_accum *a, spend_accum_stats *st)
{
    pthread_mutex_lock(&a->mu);
    st->rows_in_memory = a->nrows;
    pthread_mutex_lock(&a->spill_mu);
    st->rows_spilled = a->spilled;
    st->rows_dropped = a->dropped;
    st->spill_pending = a->spill_pending;
    pthread_mutex_unlock(&a->spill_mu);
    pthread_mutex_unlock(&a->mu);
}
