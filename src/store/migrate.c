/* store/migrate — applies the embedded migrations (src/store/migrations/NNN_name.sql), for the
 * store thread in the background and for `sluice migrate`.
 *
 * Each migration runs in its own transaction together with its row in sluice_schema_version,
 * so a migration is either applied and recorded or not applied at all; a failed one is rolled
 * back and retried later, and a crash half-way leaves nothing to repair by hand (LiteLLM's
 * "P3009 failed migration" state cannot happen). PostgreSQL runs DDL transactionally, and so
 * does SQLite.
 *
 * Concurrency. On PostgreSQL the whole run holds a session advisory lock with a fixed id, so
 * several instances starting at once apply each migration exactly once: the others wait, then
 * find nothing to do. The background runner only tries the lock (pg_try_advisory_lock) and
 * comes back later, because the store thread must keep serving jobs while another instance
 * migrates; `sluice migrate` waits on it. The lock belongs to the session, so an instance that
 * dies mid-run releases it with its connection. (Session locks do not survive a pooler in
 * transaction mode: point `sluice migrate` at the server itself.) On SQLite, BEGIN IMMEDIATE
 * serialises writers, and the version row is checked again inside the transaction. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "util/clock.h"

static const char create_version_table[] =
    "CREATE TABLE IF NOT EXISTS sluice_schema_version ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

static void utc_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void progress(const store_migrate_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress(const store_migrate_opts *o, const char *fmt, ...)
{
    if (!o || !o->progress)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(o->progress, fmt, ap);
    va_end(ap);
    fflush(o->progress);
}

/* 1 taken, 0 held by another session, -1 error */
static int take_lock(db_conn *c, const store_migrate_opts *o, char *err, size_t errlen)
{
    db_result r;
    if (db_exec(c, "SELECT pg_try_advisory_lock(" STORE_MIGRATION_LOCK_ID ") AS ok", 0, NULL, &r,
                err, errlen) < 0)
        return -1;
    const char *ok = db_value(&r, 0, "ok");
    bool got = ok && ok[0] == 't';
    db_result_free(&r);
    if (got)
        return 1;
    if (!o || !o->wait_for_lock)
        return 0;
    progress(o, "waiting for another instance to finish migrating (advisory lock)\n");
    if (db_exec(c, "SELECT pg_advisory_lock(" STORE_MIGRATION_LOCK_ID ")", 0, NULL, NULL, err,
                errlen) < 0)
        return -1;
    return 1;
}

static void release_lock(db_conn *c)
{
    char err[64];
    if (!c->broken)
        db_exec(c, "SELECT pg_advisory_unlock(" STORE_MIGRATION_LOCK_ID ")", 0, NULL, NULL, err,
                sizeof err);
}

int store_schema_version(db_conn *c, char *err, size_t errlen)
{
    db_result r;
    const char *exists_sql =
        c->dialect == DB_SQLITE
            ? "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND "
              "name = 'sluice_schema_version'"
            : "SELECT CASE WHEN to_regclass('sluice_schema_version') IS NULL THEN 0 ELSE 1 END "
              "AS n";
    if (db_exec(c, exists_sql, 0, NULL, &r, err, errlen) < 0)
        return -1;
    const char *n = db_value(&r, 0, "n");
    bool exists = n && atoi(n) > 0;
    db_result_free(&r);
    if (!exists)
        return 0;
    if (db_exec(c, "SELECT COALESCE(MAX(version), 0) AS v FROM sluice_schema_version", 0, NULL, &r,
                err, errlen) < 0)
        return -1;
    const char *v = db_value(&r, 0, "v");
    int ver = v ? atoi(v) : 0;
    db_result_free(&r);
    return ver;
}

static bool version_applied(db_conn *c, int version, bool *applied, char *err, size_t errlen)
{
    char vs[16];
    snprintf(vs, sizeof vs, "%d", version);
    const char *p[] = {vs};
    int n = db_exec(c, "SELECT version FROM sluice_schema_version WHERE version = $1", 1, p, NULL,
                    err, errlen);
    if (n < 0)
        return false;
    *applied = n > 0;
    return true;
}

int store_migrate_run(db_conn *c, const store_migration *list, int n,
                      const store_migrate_opts *o, int *version, int *napplied, char *err,
                      size_t errlen)
{
    bool pg = c->dialect == DB_POSTGRES, locked = false;
    int rc = -1, top = 0;
    db_result r = {0};
    *napplied = 0;
    *version = -1;
    if (pg) {
        int l = take_lock(c, o, err, errlen);
        if (l <= 0)
            return l;
        locked = true;
    }
    if (db_exec(c, create_version_table, 0, NULL, NULL, err, errlen) < 0)
        goto out;
    if (db_exec(c, "SELECT version FROM sluice_schema_version", 0, NULL, &r, err, errlen) < 0)
        goto out;
    for (int k = 0; k < r.nrows; k++) {
        const char *v = db_value(&r, k, "version");
        if (v && atoi(v) > top)
            top = atoi(v);
    }
    *version = top;
    for (int i = 0; i < n; i++) {
        const store_migration *m = &list[i];
        bool done = false;
        for (int k = 0; k < r.nrows && !done; k++) {
            const char *v = db_value(&r, k, "version");
            done = v && atoi(v) == m->version;
        }
        if (done)
            continue;
        progress(o, "applying %s ... ", m->name);
        char msg[400] = "";
        bool applied_meanwhile = false;
        if (db_begin(c, msg, sizeof msg) < 0)
            goto failed;
        if (!version_applied(c, m->version, &applied_meanwhile, msg, sizeof msg))
            goto failed;
        if (applied_meanwhile) {
            db_rollback(c);
            progress(o, "already applied\n");
        } else {
            char vs[16], now[32];
            snprintf(vs, sizeof vs, "%d", m->version);
            utc_now(now);
            const char *p[] = {vs, m->name, now};
            if (db_exec_script(c, m->sql, msg, sizeof msg) < 0 ||
                db_exec(c,
                        "INSERT INTO sluice_schema_version (version, name, applied_at) "
                        "VALUES ($1, $2, $3)",
                        3, p, NULL, msg, sizeof msg) < 0 ||
                db_commit(c, msg, sizeof msg) < 0)
                goto failed;
            progress(o, "ok\n");
            (*napplied)++;
        }
        if (m->version > top)
            top = m->version;
        *version = top;
        if (o && o->applied)
            o->applied(o->ud, top);
        continue;
    failed:
        if (!c->broken)
            db_rollback(c);
        progress(o, "failed\n");
        snprintf(err, errlen, "migration %s failed: %s", m->name, msg);
        goto out;
    }
    *version = top;
    rc = 1;
out:
    db_result_free(&r);
    if (locked)
        release_lock(c);
    return rc;
}

/* ---- sluice migrate ------------------------------------------------------------------------ */


int store_migrate_offline(const char *url, double timeout_s, void *out_file)
{
    FILE *out = out_file ? out_file : stdout;
    db_url u;
    char err[512];
    if (db_url_parse(url && *url ? url : "./sluice.db", &u, err, sizeof err) < 0) {
        fprintf(out, "error: %s\n", err);
        return 2;
    }
    fprintf(out, "database: %s\n", u.display);
    fflush(out);
    double deadline = clock_mono() + (timeout_s > 0 ? timeout_s : 0), backoff = 0.5;
    bool said = false;
    db_conn *c;
    while (!(c = db_connect(&u, err, sizeof err))) {
        double left = deadline - clock_mono();
        if (left <= 0) {
            fprintf(out, "cannot connect: %s\n", err);
            db_url_free(&u);
            return 1;
        }
        if (!said) {
            fprintf(out, "waiting up to %.0f s for the database: %s\n", ceil(timeout_s), err);
            fflush(out);
            said = true;
        }
        double nap = backoff < left ? backoff : left;
        usleep((useconds_t)(nap * 1e6));
        backoff = backoff * 2 > 10 ? 10 : backoff * 2;
    }
    store_migrate_opts o = {.progress = out, .wait_for_lock = true};
    int version = -1, napplied = 0, ret = 0;
    int rc = store_migrate_run(c, store_migrations, store_migrations_count, &o, &version,
                               &napplied, err, sizeof err);
    int latest = store_migrations_count ? store_migrations[store_migrations_count - 1].version : 0;
    if (rc != 1) {
        fprintf(out, "error: %s\n", err);
        ret = 1;
    } else if (!napplied) {
        fprintf(out, "schema is up to date (version %d)\n", version);
    } else {
        fprintf(out, "schema is at version %d (%d migration%s applied)\n", version, napplied,
                napplied == 1 ? "" : "s");
    }
    if (rc == 1 && version > latest)
        fprintf(out, "note: the schema (version %d) is newer than this sluice knows (%d)\n",
                version, latest);
    fflush(out);
    db_disconnect(c);
    db_url_free(&u);
    return ret;
}
