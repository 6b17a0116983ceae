/* store internals — shared by store.c, db.c, sqlite.c, postgres.c, dburl.c and the unit tests;
 * nothing outside src/store and tests/unit includes this.
 *
 * A db_conn is one connection owned by one thread (the store thread, or `sluice migrate`).
 * db.c dispatches the public db_* calls to the backend named by c->dialect; the backends report
 * a connection that died under them by setting c->broken, which the store thread turns into
 * "disconnected, reconnect in the background". */
#ifndef SLUICE_STORE_INTERNAL_H
#define SLUICE_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "store/store.h"

struct db_conn {
    db_dialect dialect;
    bool broken;     /* the connection is gone (server closed it, I/O error): reconnect */
    void *h;         /* sqlite3 * or PGconn * */
    char *secret;    /* postgres password, scrubbed from every message; NULL if none */
    void *cancel;    /* PGcancel * (postgres), for db_interrupt */
    void *stmts;     /* sqlite: the prepared-statement cache */
    char lasterr[256]; /* the last error a statement on this connection reported */
};

/* --- connections (db.c dispatches, sqlite.c / postgres.c implement) ----------------------- */

/* Opens a connection; NULL with a message (never the password) in err. Blocks for up to the
 * URL's connect_timeout on PostgreSQL. */
db_conn *db_connect(const db_url *u, char *err, size_t errlen);
void db_disconnect(db_conn *c);
/* Runs a script of several statements without parameters (migrations). 0 or -1 with err. */
int db_exec_script(db_conn *c, const char *sql, char *err, size_t errlen);
/* Called before each job: false when the connection is known to be dead (PostgreSQL: the
 * server closed it while idle). Never blocks. */
bool db_alive(db_conn *c);
/* Called after each job: rolls back a transaction the job left open. */
void db_after_job(db_conn *c);
/* Asks the statement running on c (on another thread) to stop: PQcancel / sqlite3_interrupt.
 * Thread-safe, provided c is not disconnected meanwhile (the caller holds the lock under which
 * the owner disconnects). */
void db_interrupt(db_conn *c);

db_conn *sqlite_connect(const char *path, char *err, size_t errlen);
void sqlite_disconnect(db_conn *c);
int sqlite_exec(db_conn *c, const char *sql, int nparams, const char *const *params,
                db_result *out, char *err, size_t errlen);
int sqlite_exec_script(db_conn *c, const char *sql, char *err, size_t errlen);
bool sqlite_in_txn(db_conn *c);

db_conn *pg_connect(const char *conninfo, char *err, size_t errlen);
void pg_disconnect(db_conn *c);
int pg_exec(db_conn *c, const char *sql, int nparams, const char *const *params, db_result *out,
            char *err, size_t errlen);
int pg_exec_script(db_conn *c, const char *sql, char *err, size_t errlen);
/* COMMIT that fails when the server answers ROLLBACK (the transaction had already failed). */
int pg_commit(db_conn *c, char *err, size_t errlen);
bool pg_in_txn(db_conn *c);
bool pg_alive(db_conn *c);
void pg_interrupt(db_conn *c);
void sqlite_interrupt(db_conn *c);

/* --- results (db.c) ----------------------------------------------------------------------- */

/* Appends a row of ncols values (copied; NULL = SQL NULL) to r, whose cols are already set.
 * 0, or -1 when out of memory. */
int db_result_add_row(db_result *r, const char *const *vals);
/* Sets r's column names (copied). 0 or -1. */
int db_result_set_cols(db_result *r, int ncols, const char *const *names);

/* --- messages ------------------------------------------------------------------------------ */

/* Copies msg into out, collapsing newlines and tabs into single spaces, trimming, and replacing
 * every occurrence of secret (if non-empty) with "***". */
void db_clean_message(char *out, size_t outlen, const char *msg, const char *secret);

/* --- URLs (dburl.c) ------------------------------------------------------------------------ */

/* Appends value to a libpq keyword/value string as a single-quoted value, with ' and \
 * backslash-escaped. Returns the new length, or -1 when buf is too small. */
int db_conninfo_quote(char *buf, size_t cap, size_t len, const char *value);

/* --- migrations ---------------------------------------------------------------------------- */

typedef struct {
    int version;        /* NNN of NNN_name.sql */
    const char *name;   /* "001_init" */
    const char *sql;
} store_migration;

/* Generated at build time from src/store/migrations/NNN_*.sql (src/store/CMakeLists.txt),
 * sorted by version; store_migrations[store_migrations_count] is a {0, NULL, NULL} sentinel. */
extern const store_migration store_migrations[];
extern const int store_migrations_count;

/* The advisory lock every sluice instance takes around a migration run on PostgreSQL:
 * "sluice" in ASCII, then 00 01. Fixed forever: changing it lets two versions migrate at once. */
#define STORE_MIGRATION_LOCK_ID "8317151707346042881" /* 0x736c756963650001 */

typedef struct {
    FILE *progress;             /* "applying 001_init ... ok" lines, or NULL */
    bool wait_for_lock;         /* block on the advisory lock (offline) or give up at once */
    /* called after each applied migration with the new version (store health), or NULL */
    void (*applied)(void *ud, int version);
    void *ud;
} store_migrate_opts;

/* Applies the pending migrations of list[0..n) on c. Returns 1 when the schema is current, 0
 * when another instance holds the migration lock and wait_for_lock is false, -1 with err on
 * failure (the failing migration is rolled back and named in err). *version is the highest
 * applied version once known (-1 before), *napplied how many this run applied. */
int store_migrate_run(db_conn *c, const store_migration *list, int n,
                      const store_migrate_opts *o, int *version, int *napplied, char *err,
                      size_t errlen);
/* Reads the highest applied version: 0 when sluice_schema_version does not exist, -1 on error. */
int store_schema_version(db_conn *c, char *err, size_t errlen);

#endif
