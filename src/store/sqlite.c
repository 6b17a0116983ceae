/* store/sqlite — the embedded backend.
 *
 * Opened in WAL mode (readers in other processes, e.g. the sqlite3 shell or `sluice key`, never
 * block the store thread's writes), synchronous=NORMAL (a power cut may lose the last few
 * commits but never corrupts the file: the WAL trade-off SQLite documents), busy_timeout 5 s
 * for the rare second process, foreign keys off (the schema declares none; referential checks
 * are the admin API's job, identically on both backends).
 *
 * Parameters are written $1..$n as for PostgreSQL; the text is rewritten to SQLite's numbered
 * ?1..?n (outside quoted strings) before it is prepared, so binding is by index and the same
 * $k may appear more than once. A statement naming a parameter the caller did not pass is an
 * error here too, rather than a silent NULL, so SQL that works on SQLite does not first fail on
 * PostgreSQL.
 *
 * Prepared statements are cached per connection (a small LRU keyed by the SQL text): the spend
 * flusher runs the same 40-row INSERT of 880 parameters thousands of times a minute, and
 * preparing it — and binding by name, which SQLite resolves with a linear search per name —
 * had been most of the store thread's time (docs/performance.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store_internal.h"

#define BUSY_TIMEOUT_MS 5000
#define STMT_CACHE 16

typedef struct {
    char *sql;         /* the caller's text (with $k), NULL: free slot */
    uint64_t hash;
    sqlite3_stmt *st;
    uint64_t used;     /* LRU clock */
} cached_stmt;

typedef struct {
    cached_stmt v[STMT_CACHE];
    uint64_t clock;
} stmt_cache;

static uint64_t sql_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void cache_free(stmt_cache *sc)
{
    if (!sc)
        return;
    for (int i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(sc->v[i].st);
        free(sc->v[i].sql);
    }
    free(sc);
}

static void fail(db_conn *c, int rc, char *err, size_t errlen)
{
    sqlite3 *db = c->h;
    int primary = rc & 0xff;
    if (primary == SQLITE_IOERR || primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB ||
        primary == SQLITE_CANTOPEN)
        c->broken = true;
    db_clean_message(c->lasterr, sizeof c->lasterr, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                     NULL);
    if (err && errlen)
        snprintf(err, errlen, "%s", c->lasterr);
}

void sqlite_interrupt(db_conn *c)
{
    sqlite3_interrupt(c->h);
}

db_conn *sqlite_connect(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
        /* the first statement reads the file: "file is not a database" shows up here */
        rc = sqlite3_exec(db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                          "PRAGMA foreign_keys=OFF;",
                          NULL, NULL, &msg);
    }
    if (rc != SQLITE_OK) {
        char clean[256];
        db_clean_message(clean, sizeof clean,
                         msg ? msg : db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), NULL);
        snprintf(err, errlen, "cannot open sqlite database '%s': %s", path, clean);
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    db_conn *c = calloc(1, sizeof *c);
    if (!c) {
        sqlite3_close(db);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->dialect = DB_SQLITE;
    c->h = db;
    return c;
}

void sqlite_disconnect(db_conn *c)
{
    cache_free(c->stmts);
    sqlite3_close_v2(c->h);
    free(c);
}

bool sqlite_in_txn(db_conn *c)
{
    return !sqlite3_get_autocommit(c->h);
}

/* Copies sql with $k rewritten to ?k outside quoted strings, identifiers and -- comments; NULL with a
 * message for any other parameter form ("$name", "?", ":name", "@name"). */
static char *rewrite_params(const char *sql, char *err, size_t errlen)
{
    size_t n = strlen(sql);
    char *out = malloc(n + 1);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char quote = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = sql[i];
        if (quote) {
            if (ch == quote)
                quote = 0; /* a doubled quote reopens at once: same result */
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
        } else if (ch == '-' && sql[i + 1] == '-') { /* a comment, to the end of the line */
            while (i < n && sql[i] != '\n')
                out[o++] = sql[i++];
            if (i == n)
                break;
            ch = sql[i];
        } else if (ch == '$' || ch == '?' || ch == ':' || ch == '@') {
            bool numbered = ch == '$' && sql[i + 1] >= '1' && sql[i + 1] <= '9';
            bool param = ch == '$' || ch == '?' ||
                         (sql[i + 1] == '_' || (sql[i + 1] >= 'A' && sql[i + 1] <= 'Z') ||
                          (sql[i + 1] >= 'a' && sql[i + 1] <= 'z'));
            if (numbered) {
                ch = '?';
            } else if (param) {
                snprintf(err, errlen, "unsupported parameter '%.16s': write $1, $2, ...", sql + i);
                free(out);
                return NULL;
            }
        }
        out[o++] = ch;
    }
    out[o] = 0;
    return out;
}

/* The cached statement for sql, prepared on a miss (the least recently used one is dropped).
 * NULL with err set on failure, or with *empty set when sql holds no statement. */
static sqlite3_stmt *get_stmt(db_conn *c, const char *sql, bool *empty, char *err, size_t errlen)
{
    *empty = false;
    stmt_cache *sc = c->stmts;
    if (!sc && !(sc = c->stmts = calloc(1, sizeof *sc))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uint64_t h = sql_hash(sql);
    cached_stmt *slot = &sc->v[0];
    for (int i = 0; i < STMT_CACHE; i++) {
        cached_stmt *e = &sc->v[i];
        if (e->sql && e->hash == h && strcmp(e->sql, sql) == 0) {
            e->used = ++sc->clock;
            return e->st;
        }
        if (!e->sql || (slot->sql && e->used < slot->used))
            slot = e;
    }
    char *text = rewrite_params(sql, err, errlen);
    if (!text)
        return NULL;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(c->h, text, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK) {
        free(text);
        fail(c, rc, err, errlen);
        return NULL;
    }
    for (; tail && *tail; tail++)
        if (*tail != ' ' && *tail != '\n' && *tail != '\t' && *tail != '\r' && *tail != ';') {
            free(text);
            sqlite3_finalize(st);
            snprintf(err, errlen, "db_exec runs one statement (use db_exec_script for several)");
            return NULL;
        }
    free(text);
    if (!st) {
        *empty = true; /* only whitespace or comments */
        return NULL;
    }
    char *copy = strdup(sql);
    if (!copy) {
        sqlite3_finalize(st);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sqlite3_finalize(slot->st);
    free(slot->sql);
    *slot = (cached_stmt){.sql = copy, .hash = h, .st = st, .used = ++sc->clock};
    return st;
}

int sqlite_exec(db_conn *c, const char *sql, int nparams, const char *const *params,
                db_result *out, char *err, size_t errlen)
{
    sqlite3 *db = c->h;
    const char **vals = NULL;
    bool empty;
    sqlite3_stmt *st = get_stmt(c, sql, &empty, err, errlen);
    if (!st)
        return empty ? 0 : -1;
    int ret = -1;
    int rc;
    int np = sqlite3_bind_parameter_count(st); /* the largest ?k */
    if (np > nparams) {
        snprintf(err, errlen, "parameter $%d has no value (%d given)", np, nparams);
        goto out;
    }
    for (int k = 1; k <= np; k++) {
        rc = params[k - 1] ? sqlite3_bind_text(st, k, params[k - 1], -1, SQLITE_STATIC)
                           : sqlite3_bind_null(st, k);
        if (rc != SQLITE_OK) {
            fail(c, rc, err, errlen);
            goto out;
        }
    }
    int ncols = sqlite3_column_count(st);
    if (out && ncols) {
        vals = calloc((size_t)ncols, sizeof *vals);
        if (!vals) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        for (int i = 0; i < ncols; i++)
            vals[i] = sqlite3_column_name(st, i);
        if (db_result_set_cols(out, ncols, vals) < 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    sqlite3_int64 before = sqlite3_total_changes64(db);
    int rows = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        if (!vals)
            continue;
        for (int i = 0; i < ncols; i++)
            vals[i] = sqlite3_column_type(st, i) == SQLITE_NULL
                          ? NULL
                          : (const char *)sqlite3_column_text(st, i);
        if (db_result_add_row(out, vals) < 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        fail(c, rc, err, errlen);
        goto out;
    }
    /* sqlite3_changes keeps the count of the last INSERT/UPDATE/DELETE across other statements,
     * so DDL and BEGIN would report a stale number without the total_changes comparison */
    if (ncols)
        ret = rows;
    else
        ret = sqlite3_total_changes64(db) != before ? (int)sqlite3_changes64(db) : 0;
out:
    free(vals);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st); /* the parameters were bound SQLITE_STATIC: drop them */
    return ret;
}

int sqlite_exec_script(db_conn *c, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int primary = rc & 0xff;
        if (primary == SQLITE_IOERR || primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB ||
            primary == SQLITE_CANTOPEN)
            c->broken = true;
        db_clean_message(c->lasterr, sizeof c->lasterr, msg ? msg : sqlite3_errstr(rc), NULL);
        snprintf(err, errlen, "%s", c->lasterr);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}
