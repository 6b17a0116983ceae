/* store — the database, kept off the request path.
 *
 * One interface, two backends: SQLite (embedded default, WAL, ./sluice.db) and PostgreSQL
 * (libpq; general_settings.database_url or DATABASE_URL). All database work happens on one store
 * thread: callers submit jobs from any thread and get the result back on their own event loop
 * through a mailbox (util/mbox.h). Workers never block on the database.
 *
 * The server binds and serves before any database work: store_open only starts the thread,
 * which connects (retrying with backoff while the database is down) and then runs the embedded
 * migrations in the background — under a PostgreSQL advisory lock, idempotently, recorded in
 * sluice_schema_version — unless DISABLE_SCHEMA_UPDATE=true. store_health says what is going on
 * (connected or why not, schema version, migrations pending) for /health/readiness.
 *
 * SQL is written once, portably: parameters are $1, $2, ... for both backends (SQLite binds them
 * by name), values go in and come out as text (NULL = SQL NULL), timestamps are ISO-8601 UTC
 * text, JSON is stored as text. Dialect-specific statements are rare and check db_dialect(). */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/mbox.h"

typedef enum { DB_SQLITE, DB_POSTGRES } db_dialect;

/* --- database URL ------------------------------------------------------------------------ */

typedef struct {
    db_dialect dialect;
    char *path;                 /* sqlite: file path (":memory:" allowed) */
    char *conninfo;             /* postgres: libpq keyword/value string (password escaped) */
    char *display;              /* for messages: the URL with the password replaced by *** */
} db_url;

/* Parses "postgres://user:pa%21ss@host:5432/db?sslmode=disable", "postgresql://...",
 * "sqlite:///path/to/file.db", "sqlite://:memory:" or a bare file path. Special characters in
 * passwords work raw ("p!ss") or percent-encoded. A driver suffix such as
 * "postgresql+psycopg://" is refused with a message telling the user to drop "+psycopg".
 * Returns 0, or -1 with a message in err. */
int db_url_parse(const char *url, db_url *out, char *err, size_t errlen);
void db_url_free(db_url *u);

/* --- statements (store thread only) -------------------------------------------------------- */

typedef struct db_conn db_conn;

typedef struct {
    int nrows, ncols;
    char **cols;  /* column names */
    char **v;     /* row-major nrows*ncols values; NULL = SQL NULL */
} db_result;

db_dialect db_conn_dialect(const db_conn *c);
/* Runs one statement with text parameters; rows (if any) into out (may be NULL).
 * Returns the number of rows affected/returned, or -1 with a message in err. */
int db_exec(db_conn *c, const char *sql, int nparams, const char *const *params, db_result *out,
            char *err, size_t errlen);
const char *db_value(const db_result *r, int row, const char *col); /* NULL if NULL or absent */
void db_result_free(db_result *r);
int db_begin(db_conn *c, char *err, size_t errlen);
int db_commit(db_conn *c, char *err, size_t errlen);
void db_rollback(db_conn *c);

/* --- the store --------------------------------------------------------------------------- */

typedef struct store store;

typedef struct store_job store_job;
struct store_job {
    /* Runs on the store thread with a live connection. Returns 0, or -1 with err filled. A job
     * submitted while the database is unavailable is not run: done gets status -1 and err
     * "database unavailable: <reason>" at once. */
    int (*run)(db_conn *c, store_job *j);
    /* Runs on the submitter's loop (posted to reply_to), or on the store thread if reply_to is
     * NULL. Owns the job from then on (typically frees it). */
    void (*done)(store_job *j);
    mbox *reply_to;
    int status;      /* result of run, or -1 */
    char err[512];
    void *ud;        /* caller's data */
};

typedef struct {
    const char *url;        /* NULL → sqlite at ./sluice.db */
    bool migrate;           /* run migrations in the background (false: DISABLE_SCHEMA_UPDATE) */
} store_cfg;

/* Starts the store thread and returns at once (never waits for the database). NULL only for a
 * URL that does not parse (message in err). */
store *store_open(const store_cfg *cfg, char *err, size_t errlen);
/* Queues a job (thread-safe). 0, or -1 when the store is closing. */
int store_submit(store *s, store_job *j);
/* Stops after the queued jobs (up to a few seconds), closes the connection, frees. */
void store_close(store *s);

typedef struct {
    bool connected;
    char reason[256];       /* why not connected (never a password) */
    int schema_version;     /* applied migrations, -1 unknown */
    int migrations_total;   /* embedded migrations */
    bool migrating;
    char dialect[16];       /* "sqlite" / "postgresql" */
    char display_url[256];
} store_health;

void store_get_health(store *s, store_health *h);

/* `sluice migrate`: connects (waiting up to timeout_s), applies pending migrations with one line
 * of progress each on out, exits. Returns 0 when the schema is current (a second run is a
 * no-op that says so). */
int store_migrate_offline(const char *url, double timeout_s, void *out_file);

#endif
