/* store/sqlite — the embedded backend.
 *
 * Opened in WAL mode (readers in other processes, e.g. the sqlite3 shell or `sluice key`, never
 * block the store thread's writes), synchronous=NORMAL (a power cut may lose the last few
 * commits but never corrupts the file: the WAL trade-off SQLite documents), busy_timeout 5 s
 * for the rare second process, foreign keys off (the schema declares none; referential checks
 * are the admin API's job, identically on both backends).
 *
 * Parameters are written $1..$n as for PostgreSQL and bound by name: SQLite reads "$1" as a
 * named parameter, and the same $k may appear more than once. A statement naming a parameter
 * the caller did not pass is an error here too, rather than a silent NULL, so SQL that works
 * on SQLite does not first fail on PostgreSQL.
 *
 * No statement cache: statements are prepared per call (tens of microseconds), which is noise
 * next to the batched spend writes and cache-miss lookups that reach the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store_internal.h"

#define BUSY_TIMEOUT_MS 5000

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
    sqlite3_close_v2(c->h);
    free(c);
}

bool sqlite_in_txn(db_conn *c)
{
    return !sqlite3_get_autocommit(c->h);
}

/* Checks that every parameter the statement names is $k with 1 <= k <= nparams. */
static int check_params(sqlite3_stmt *st, int nparams, char *err, size_t errlen)
{
    int np = sqlite3_bind_parameter_count(st);
    for (int i = 1; i <= np; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        char *end = NULL;
        long k = name && name[0] == '$' ? strtol(name + 1, &end, 10) : 0;
        if (!name || name[0] != '$' || !end || *end || end == name + 1) {
            snprintf(err, errlen, "unsupported parameter '%s': write $1, $2, ...",
                     name ? name : "?");
            return -1;
        }
        if (k < 1 || k > nparams) {
            snprintf(err, errlen, "parameter %s has no value (%d given)", name, nparams);
            return -1;
        }
    }
    return 0;
}

int sqlite_exec(db_conn *c, const char *sql, int nparams, const char *const *params,
                db_result *out, char *err, size_t errlen)
{
    sqlite3 *db = c->h;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    const char **vals = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);
    if (rc != SQLITE_OK) {
        fail(c, rc, err, errlen);
        return -1;
    }
    if (!st)
        return 0; /* only whitespace or comments */
    int ret = -1;
    for (; tail && *tail; tail++)
        if (*tail != ' ' && *tail != '\n' && *tail != '\t' && *tail != '\r' && *tail != ';') {
            snprintf(err, errlen, "db_exec runs one statement (use db_exec_script for several)");
            goto out;
        }
    if (check_params(st, nparams, err, errlen) < 0)
        goto out;
    for (int k = 1; k <= nparams; k++) {
        char name[16];
        snprintf(name, sizeof name, "$%d", k);
        int idx = sqlite3_bind_parameter_index(st, name);
        if (!idx)
            continue; /* passed but not used by this statement */
        rc = params[k - 1] ? sqlite3_bind_text(st, idx, params[k - 1], -1, SQLITE_STATIC)
                           : sqlite3_bind_null(st, idx);
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
    sqlite3_finalize(st);
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
