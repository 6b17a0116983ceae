/* Unit tests for store: statements on both backends, migrations (applied once, recorded,
 * rolled back and retried on failure, idempotent), jobs delivered to the submitter's event loop
 * through a mailbox, failing at once while the database is down, health, `sluice migrate`, and
 * the drain at close.
 *
 * PostgreSQL tests run when SLUICE_TEST_PG_URL names a server (scripts/pg.sh start prints one)
 * and are skipped otherwise. Each works in a schema of its own (the URL's schema= parameter),
 * so runs can share a database. They also cover two instances migrating at once (the advisory
 * lock) and connections killed with pg_terminate_backend while busy and while idle. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "store/store.h"
#include "store/store_internal.h"
#include "util/mbox.h"

static char g_tmp[64];
static const char *g_pg; /* SLUICE_TEST_PG_URL or NULL */

/* ---- helpers ---------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    usleep((useconds_t)(s * 1e6));
}

static char *tmp_path(const char *name)
{
    static char buf[8][256];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 256, "%s/%s", g_tmp, name);
    return p;
}

static char *sqlite_url(const char *name)
{
    static char buf[4][300];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, 300, "sqlite://%s", tmp_path(name));
    return p;
}

/* A port on 127.0.0.1 that nothing listens on (bound, then released). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* A listener that never accepts: the kernel completes the handshake, then nothing answers. */
static int blackhole(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

typedef struct {
    struct event_base *base;
    mbox *mb;
} loop;

static void loop_init(loop *l)
{
    l->base = event_base_new();
    assert_non_null(l->base);
    l->mb = mbox_new(l->base);
    assert_non_null(l->mb);
}

static void loop_free(loop *l)
{
    mbox_free(l->mb);
    event_base_free(l->base);
}

/* A job running one statement; the result is copied for the test to look at. */
typedef struct {
    store_job job; /* first: the callbacks cast back */
    const char *sql;
    int nparams;
    const char *params[8];
    int rows;
    db_result res;
    atomic_bool done;
    pthread_t done_thread;
    int seq, *order, *norder;
    atomic_int *counter;
    loop *lp;
} tjob;

static int run_sql(db_conn *c, store_job *j)
{
    tjob *t = (tjob *)j;
    t->rows = db_exec(c, t->sql, t->nparams, t->params, &t->res, j->err, sizeof j->err);
    return t->rows < 0 ? -1 : 0;
}

static void on_done(store_job *j)
{
    tjob *t = (tjob *)j;
    t->done_thread = pthread_self();
    if (t->order)
        t->order[(*t->norder)++] = t->seq;
    if (t->counter)
        atomic_fetch_add(t->counter, 1);
    loop *lp = t->lp; /* t belongs to the test again once done is set */
    atomic_store(&t->done, true);
    if (lp)
        event_base_loopbreak(lp->base);
}

static void tjob_init(tjob *t, loop *lp, const char *sql, int n, ...)
{
    memset(t, 0, sizeof *t);
    t->job.run = run_sql;
    t->job.done = on_done;
    t->job.reply_to = lp ? lp->mb : NULL;
    t->lp = lp;
    t->sql = sql;
    t->nparams = n;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        t->params[i] = va_arg(ap, const char *);
    va_end(ap);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until t is done; fails after timeout seconds. */
static void wait_job(loop *lp, tjob *t, double timeout)
{
    struct event *ev = event_new(lp->base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 20000};
    event_add(ev, &tv);
    double end = now_s() + timeout;
    while (!atomic_load(&t->done) && now_s() < end)
        event_base_loop(lp->base, EVLOOP_ONCE);
    event_free(ev);
    if (!atomic_load(&t->done))
        fail_msg("job '%s' not done after %.1f s", t->sql, timeout);
}

/* Submits sql and waits; returns the row count (or -1) and leaves the result in t. */
static int q(store *s, loop *lp, tjob *t, const char *sql, int n, ...)
{
    memset(t, 0, sizeof *t);
    t->job.run = run_sql;
    t->job.done = on_done;
    t->job.reply_to = lp->mb;
    t->lp = lp;
    t->sql = sql;
    t->nparams = n;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        t->params[i] = va_arg(ap, const char *);
    va_end(ap);
    assert_int_equal(store_submit(s, &t->job), 0);
    wait_job(lp, t, 20);
    return t->job.status < 0 ? -1 : t->rows;
}

/* First value of the first row of sql, as a static string ("" for NULL / no row). */
static const char *q1(store *s, loop *lp, const char *sql)
{
    static char out[256];
    tjob t;
    if (q(s, lp, &t, sql, 0) < 0)
        fail_msg("'%s' failed: %s", sql, t.job.err);
    const char *v = t.res.nrows && t.res.ncols ? t.res.v[0] : NULL;
    snprintf(out, sizeof out, "%s", v ? v : "");
    db_result_free(&t.res);
    return out;
}

typedef bool (*health_pred)(const store_health *h, const void *arg);

static void wait_health(store *s, health_pred p, const void *arg, double timeout, store_health *h)
{
    double end = now_s() + timeout;
    for (;;) {
        store_get_health(s, h);
        if (p(h, arg))
            return;
        if (now_s() > end)
            fail_msg("health not reached after %.1f s: connected=%d reason='%s' version=%d "
                     "migrating=%d",
                     timeout, h->connected, h->reason, h->schema_version, h->migrating);
        sleep_s(0.01);
    }
}

static bool h_current(const store_health *h, const void *arg)
{
    (void)arg;
    return h->connected && !h->migrating && h->schema_version == h->migrations_total;
}

static bool h_connected(const store_health *h, const void *arg)
{
    (void)arg;
    return h->connected;
}

static bool h_reason_has(const store_health *h, const void *arg)
{
    return strstr(h->reason, (const char *)arg) != NULL;
}

static store *open_store(const char *url, bool migrate)
{
    store_cfg cfg = {.url = url, .migrate = migrate};
    char err[256];
    store *s = store_open(&cfg, err, sizeof err);
    if (!s)
        fail_msg("store_open(%s): %s", url, err);
    return s;
}

static db_conn *connect_url(const char *url)
{
    db_url u;
    char err[256];
    if (db_url_parse(url, &u, err, sizeof err) < 0)
        fail_msg("%s", err);
    db_conn *c = db_connect(&u, err, sizeof err);
    db_url_free(&u);
    if (!c)
        fail_msg("connect %s: %s", url, err);
    return c;
}

static void exec_ok(db_conn *c, const char *sql)
{
    char err[256];
    if (db_exec(c, sql, 0, NULL, NULL, err, sizeof err) < 0)
        fail_msg("'%s': %s", sql, err);
}

static char *close_stream(FILE *f, char **buf)
{
    fclose(f);
    return *buf;
}

/* ---- PostgreSQL scaffolding ---------------------------------------------------------------- */

typedef struct {
    char schema[64];
    char url[1024]; /* g_pg + schema= + application_name= */
} pgctx;

static int pg_setup(void **state)
{
    if (!g_pg)
        return 0;
    static int n;
    pgctx *p = calloc(1, sizeof *p);
    snprintf(p->schema, sizeof p->schema, "sluice_ut_%d_%d", (int)getpid(), ++n);
    snprintf(p->url, sizeof p->url, "%s%sschema=%s&application_name=%s", g_pg,
             strchr(g_pg, '?') ? "&" : "?", p->schema, p->schema);
    db_conn *c = connect_url(g_pg);
    char sql[160];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", p->schema);
    exec_ok(c, sql);
    db_disconnect(c);
    *state = p;
    return 0;
}

static int pg_teardown(void **state)
{
    pgctx *p = *state;
    if (!p)
        return 0;
    db_conn *c = connect_url(g_pg);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", p->schema);
    exec_ok(c, sql);
    db_disconnect(c);
    free(p);
    *state = NULL;
    return 0;
}

#define NEED_PG()                                                                          \
    do {                                                                                   \
        if (!g_pg) {                                                                       \
            skip();                                                                        \
        }                                                                                  \
    } while (0)

/* ---- db_exec on a connection, both dialects ------------------------------------------------ */

static void exercise_db_exec(db_conn *c)
{
    char err[256];
    db_result r;
    bool pg = db_conn_dialect(c) == DB_POSTGRES;

    assert_int_equal(db_exec(c,
                             "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, "
                             "score DOUBLE PRECISION)",
                             0, NULL, NULL, err, sizeof err),
                     0);
    const char *p1[] = {"1", "alice", "1.5"};
    assert_int_equal(db_exec(c, "INSERT INTO t (id, name, score) VALUES ($1, $2, $3)", 3, p1,
                             NULL, err, sizeof err),
                     1);
    const char *p2[] = {"2", NULL, NULL}; /* SQL NULLs */
    assert_int_equal(db_exec(c, "INSERT INTO t (id, name, score) VALUES ($1, $2, $3)", 3, p2,
                             NULL, err, sizeof err),
                     1);
    /* DDL after DML counts nothing (SQLite's sqlite3_changes would still say 1) */
    assert_int_equal(db_exec(c, "CREATE INDEX t_name ON t (name)", 0, NULL, NULL, err, sizeof err),
                     0);

    assert_int_equal(db_exec(c, "SELECT id, name, score FROM t ORDER BY id", 0, NULL, &r, err,
                             sizeof err),
                     2);
    assert_int_equal(r.nrows, 2);
    assert_int_equal(r.ncols, 3);
    assert_string_equal(r.cols[1], "name");
    assert_string_equal(db_value(&r, 0, "id"), "1");
    assert_string_equal(db_value(&r, 0, "name"), "alice");
    assert_string_equal(db_value(&r, 0, "score"), "1.5");
    assert_null(db_value(&r, 1, "name"));
    assert_null(db_value(&r, 1, "score"));
    assert_null(db_value(&r, 0, "absent"));
    assert_null(db_value(&r, 2, "id"));
    assert_null(db_value(&r, -1, "id"));
    db_result_free(&r);
    assert_null(r.v);
    db_result_free(&r);

    /* UPDATE counts rows; a parameter used twice; numbers as text */
    const char *p3[] = {"1", "1"};
    assert_int_equal(db_exec(c, "UPDATE t SET score = score + $1 WHERE id = $2", 2, p3, NULL, err,
                             sizeof err),
                     1);
    const char *p4[] = {"zed"};
    assert_int_equal(db_exec(c, "UPDATE t SET name = $1 WHERE name IS NULL OR name <> $1", 1, p4,
                             NULL, err, sizeof err),
                     2);
    assert_int_equal(db_exec(c, "UPDATE t SET name = 'x' WHERE id = 99", 0, NULL, NULL, err,
                             sizeof err),
                     0);
    assert_int_equal(db_exec(c, "SELECT score FROM t WHERE id = $1", 1, (const char *[]){"1"}, &r,
                             err, sizeof err),
                     1);
    assert_string_equal(db_value(&r, 0, "score"), "2.5");
    db_result_free(&r);

    /* RETURNING, and rows without a result buffer */
    assert_int_equal(db_exec(c, "INSERT INTO t (id, name) VALUES ($1, $2) RETURNING id", 2,
                             (const char *[]){"3", "carol"}, &r, err, sizeof err),
                     1);
    assert_string_equal(db_value(&r, 0, "id"), "3");
    db_result_free(&r);
    assert_int_equal(db_exec(c, "SELECT id FROM t", 0, NULL, NULL, err, sizeof err), 3);
    assert_int_equal(db_exec(c, "SELECT id FROM t WHERE id > 100", 0, NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.nrows, 0);
    assert_int_equal(r.ncols, 1);
    db_result_free(&r);

    /* errors */
    assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES ($1)", 1, (const char *[]){"1"}, NULL,
                             err, sizeof err),
                     -1);
    assert_true(err[0]);
    assert_int_equal(db_exec(c, "SELECT nope FROM t", 0, NULL, &r, err, sizeof err), -1);
    assert_true(err[0]);
    assert_null(r.v); /* a failed statement leaves an empty result */
    assert_int_equal(db_exec(c, "SELECT $2", 1, (const char *[]){"a"}, NULL, err, sizeof err),
                     -1);
    assert_int_equal(db_exec(c, "SELECT 1; SELECT 2", 0, NULL, NULL, err, sizeof err), -1);
    assert_int_equal(db_exec(c, "SELEC 1", 0, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "syntax error"));
    if (!pg) {
        assert_int_equal(db_exec(c, "SELECT ?", 0, NULL, NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, "$1"));
        assert_int_equal(db_exec(c, "SELECT $name", 0, NULL, NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, "$name"));
    }
    /* "$1" inside a string or a comment is text, not a parameter */
    assert_int_equal(db_exec(c, "SELECT '$1 '' $2', $1 -- not $3\n", 1, (const char *[]){"v"}, &r,
                             err, sizeof err),
                     1);
    assert_string_equal(r.v[0], "$1 ' $2");
    assert_string_equal(r.v[1], "v");
    db_result_free(&r);
    /* the same statement, many times with other values (a cached statement is reset and
     * rebound each time), and a wide one */
    for (int i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        assert_int_equal(db_exec(c, "SELECT $1 || '-' || $1", 1, (const char *[]){v}, &r, err,
                                 sizeof err),
                         1);
        char want[40];
        snprintf(want, sizeof want, "%d-%d", i, i);
        assert_string_equal(r.v[0], want);
        db_result_free(&r);
    }
    {
        enum { W = 500 };
        static char sql[W * 32], vals[W][8];
        const char *pv[W];
        size_t o = (size_t)snprintf(sql, sizeof sql, "SELECT CAST($1 AS INTEGER)");
        for (int i = 0; i < W; i++) {
            if (i)
                o += (size_t)snprintf(sql + o, sizeof sql - o, " + CAST($%d AS INTEGER)", i + 1);
            snprintf(vals[i], sizeof vals[i], "%d", i);
            pv[i] = vals[i];
        }
        assert_int_equal(db_exec(c, sql, W, pv, &r, err, sizeof err), 1);
        assert_string_equal(r.v[0], "124750"); /* 0 + 1 + ... + 499 */
        db_result_free(&r);
    }

    /* transactions */
    assert_int_equal(db_begin(c, err, sizeof err), 0);
    assert_int_equal(db_exec(c, "DELETE FROM t", 0, NULL, NULL, err, sizeof err), 3);
    db_rollback(c);
    assert_int_equal(db_exec(c, "SELECT id FROM t", 0, NULL, NULL, err, sizeof err), 3);
    assert_int_equal(db_begin(c, err, sizeof err), 0);
    assert_int_equal(db_exec(c, "DELETE FROM t WHERE id = 3", 0, NULL, NULL, err, sizeof err), 1);
    assert_int_equal(db_commit(c, err, sizeof err), 0);
    assert_int_equal(db_exec(c, "SELECT id FROM t", 0, NULL, NULL, err, sizeof err), 2);
    db_rollback(c); /* nothing open: harmless */
    if (pg) {
        /* COMMIT of a failed transaction is a ROLLBACK and must not look like success */
        assert_int_equal(db_begin(c, err, sizeof err), 0);
        assert_int_equal(db_exec(c, "DELETE FROM t", 0, NULL, NULL, err, sizeof err), 2);
        assert_int_equal(db_exec(c, "SELECT nope", 0, NULL, NULL, err, sizeof err), -1);
        assert_int_equal(db_commit(c, err, sizeof err), -1);
        assert_non_null(strstr(err, "rolled back"));
        assert_int_equal(db_exec(c, "SELECT id FROM t", 0, NULL, NULL, err, sizeof err), 2);
    }
    assert_int_equal(db_exec(c, "DROP TABLE t", 0, NULL, NULL, err, sizeof err), 0);
}

static void test_sqlite_db_exec(void **state)
{
    (void)state;
    db_conn *c = connect_url("sqlite://:memory:");
    assert_int_equal(db_conn_dialect(c), DB_SQLITE);
    exercise_db_exec(c);
    db_disconnect(c);

    c = connect_url(sqlite_url("exec.db"));
    exercise_db_exec(c);
    db_result r;
    char err[128];
    assert_int_equal(db_exec(c, "PRAGMA journal_mode", 0, NULL, &r, err, sizeof err), 1);
    assert_string_equal(r.v[0], "wal");
    db_result_free(&r);
    db_disconnect(c);

    /* an unopenable file names itself */
    db_url u;
    assert_int_equal(db_url_parse("sqlite:///nonexistent-dir/x/y.db", &u, err, sizeof err), 0);
    assert_null(db_connect(&u, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/x/y.db"));
    db_url_free(&u);
}

/* ---- migrations ------------------------------------------------------------------------------ */

static void check_migrated(store *s, loop *lp)
{
    tjob t;
    char want[16];
    snprintf(want, sizeof want, "%d", store_migrations_count);
    assert_string_equal(q1(s, lp, "SELECT count(*) FROM sluice_schema_version"), want);
    assert_int_equal(q(s, lp, &t, "SELECT version, name, applied_at FROM sluice_schema_version "
                                  "ORDER BY version", 0),
                     store_migrations_count);
    assert_string_equal(db_value(&t.res, 0, "version"), "1");
    assert_string_equal(db_value(&t.res, 0, "name"), "001_init");
    const char *at = db_value(&t.res, 0, "applied_at");
    assert_int_equal(strlen(at), 20); /* 2026-11-22T01:02:03Z */
    assert_int_equal(at[10], 'T');
    assert_int_equal(at[19], 'Z');
    db_result_free(&t.res);
    /* the schema is usable: a key row goes in and comes back */
    assert_int_equal(q(s, lp, &t,
                       "INSERT INTO sluice_keys (token, key_alias, created_at, updated_at) "
                       "VALUES ($1, $2, $3, $3)",
                       3, "abc123", NULL, "2026-01-01T00:00:00Z"),
                     1);
    assert_string_equal(q1(s, lp, "SELECT models FROM sluice_keys WHERE token = 'abc123'"), "[]");
}

static void migrations_twice(const char *url, const char *dialect)
{
    loop lp;
    loop_init(&lp);
    store_health h;

    store *s = open_store(url, true);
    wait_health(s, h_current, NULL, 20, &h);
    assert_true(h.connected);
    assert_string_equal(h.reason, "");
    assert_int_equal(h.migrations_total, store_migrations_count);
    assert_int_equal(h.schema_version, store_migrations[store_migrations_count - 1].version);
    assert_string_equal(h.dialect, dialect);
    check_migrated(s, &lp);
    char applied[64];
    snprintf(applied, sizeof applied, "%s",
             q1(s, &lp, "SELECT applied_at FROM sluice_schema_version WHERE version = 1"));
    store_close(s);

    sleep_s(1.1); /* a re-applied migration would get a later applied_at */
    s = open_store(url, true);
    wait_health(s, h_current, NULL, 20, &h);
    assert_string_equal(q1(s, &lp, "SELECT count(*) FROM sluice_schema_version"), "1");
    assert_string_equal(q1(s, &lp, "SELECT applied_at FROM sluice_schema_version WHERE version = 1"),
                        applied);
    assert_string_equal(q1(s, &lp, "SELECT count(*) FROM sluice_keys"), "1"); /* data kept */
    store_close(s);

    /* `sluice migrate` agrees there is nothing to do */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(store_migrate_offline(url, 5, f), 0);
    close_stream(f, &buf);
    if (!strstr(buf, "schema is up to date (version 1)"))
        fail_msg("unexpected output:\n%s", buf);
    assert_null(strstr(buf, "applying"));
    free(buf);
    loop_free(&lp);
}

/* The embedded text is the file, byte for byte. */
static void test_embedded_migrations(void **state)
{
    (void)state;
    assert_true(store_migrations_count >= 1);
    assert_null(store_migrations[store_migrations_count].sql); /* sentinel */
    for (int i = 0; i < store_migrations_count; i++) {
        const store_migration *m = &store_migrations[i];
        assert_int_equal(m->version, i + 1);
        char path[256];
        snprintf(path, sizeof path, "../../src/store/migrations/%s.sql", m->name);
        FILE *f = fopen(path, "rb");
        if (!f)
            fail_msg("cannot open %s (run from tests/unit)", path);
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        assert_int_equal(strlen(m->sql), n);
        assert_string_equal(m->sql, buf);
    }
}

/* Several migrations: each recorded as it succeeds, a failing one rolled back whole, the rerun
 * applies only what is missing. */
static void migrate_list(db_conn *c)
{
    store_migration list[] = {
        {1, "001_a", "CREATE TABLE ml_a (x INTEGER); INSERT INTO ml_a VALUES (1);"},
        {2, "002_b", "CREATE TABLE ml_b (x INTEGER);"},
        {3, "003_c", "CREATE TABLE ml_c (x INTEGER); INSERT INTO ml_nope VALUES (1);"},
        {0, NULL, NULL},
    };
    char err[512], *buf = NULL;
    size_t len = 0;
    int version, napplied;
    FILE *f = open_memstream(&buf, &len);
    store_migrate_opts o = {.progress = f, .wait_for_lock = true};
    assert_int_equal(store_migrate_run(c, list, 3, &o, &version, &napplied, err, sizeof err), -1);
    fclose(f);
    /* (another run sharing the database may add a line about waiting for the lock) */
    if (!strstr(buf, "applying 001_a ... ok\napplying 002_b ... ok\napplying 003_c ... failed\n"))
        fail_msg("unexpected output:\n%s", buf);
    free(buf);
    assert_non_null(strstr(err, "migration 003_c failed: "));
    assert_non_null(strstr(err, "ml_nope"));
    assert_int_equal(version, 2);
    assert_int_equal(napplied, 2);
    assert_int_equal(store_schema_version(c, err, sizeof err), 2);
    db_result r;
    /* 003 left nothing behind */
    assert_int_equal(db_exec(c, "SELECT x FROM ml_c", 0, NULL, NULL, err, sizeof err), -1);

    list[2].sql = "CREATE TABLE ml_c (x INTEGER); INSERT INTO ml_a VALUES (3);";
    store_migrate_opts w = {.wait_for_lock = true};
    assert_int_equal(store_migrate_run(c, list, 3, &w, &version, &napplied, err, sizeof err), 1);
    assert_int_equal(version, 3);
    assert_int_equal(napplied, 1);
    assert_int_equal(db_exec(c, "SELECT x FROM ml_a ORDER BY x", 0, NULL, &r, err, sizeof err), 2);
    db_result_free(&r);
    assert_int_equal(store_migrate_run(c, list, 3, &w, &version, &napplied, err, sizeof err), 1);
    assert_int_equal(napplied, 0);
    assert_int_equal(version, 3);
    assert_int_equal(db_exec(c, "SELECT version FROM sluice_schema_version", 0, NULL, NULL, err,
                             sizeof err),
                     3);
}

static void test_sqlite_migrate_list(void **state)
{
    (void)state;
    db_conn *c = connect_url("sqlite://:memory:");
    char err[128];
    assert_int_equal(store_schema_version(c, err, sizeof err), 0); /* no table yet */
    migrate_list(c);
    db_disconnect(c);
}

static void test_sqlite_migrations(void **state)
{
    (void)state;
    migrations_twice(sqlite_url("mig.db"), "sqlite");
}

static void test_sqlite_memory(void **state)
{
    (void)state;
    loop lp;
    loop_init(&lp);
    store_health h;
    store *s = open_store("sqlite://:memory:", true);
    wait_health(s, h_current, NULL, 10, &h);
    assert_string_equal(h.display_url, "sqlite://:memory:");
    check_migrated(s, &lp);
    store_close(s);
    loop_free(&lp);
}

static void test_migrate_disabled(void **state)
{
    (void)state;
    loop lp;
    loop_init(&lp);
    store_health h;
    store *s = open_store(sqlite_url("nomig.db"), false);
    wait_health(s, h_connected, NULL, 10, &h);
    for (int i = 0; i < 200 && h.schema_version < 0; i++) {
        sleep_s(0.01);
        store_get_health(s, &h);
    }
    assert_int_equal(h.schema_version, 0);
    assert_false(h.migrating);
    tjob t;
    assert_int_equal(q(s, &lp, &t, "SELECT token FROM sluice_keys", 0), -1);
    assert_non_null(strstr(t.job.err, "no such table"));
    store_close(s);
    loop_free(&lp);
}

/* A table in the way makes 001 fail: nothing of it stays, health says why, jobs still run,
 * and once the obstacle is gone the retry succeeds. */
static void test_migration_failure_retried(void **state)
{
    (void)state;
    const char *url = sqlite_url("broken.db");
    db_conn *c = connect_url(url);
    exec_ok(c, "CREATE TABLE sluice_keys (token TEXT PRIMARY KEY)");
    db_disconnect(c);

    loop lp;
    loop_init(&lp);
    store_health h;
    store *s = open_store(url, true);
    wait_health(s, h_reason_has, "migration 001_init failed", 10, &h);
    assert_non_null(strstr(h.reason, "key_alias"));
    assert_true(h.connected);
    assert_true(h.migrating);
    assert_int_equal(h.schema_version, 0);
    assert_string_equal(q1(s, &lp, "SELECT 40 + 2"), "42");
    assert_string_equal(q1(s, &lp, "SELECT count(*) FROM sqlite_master "
                                   "WHERE name = 'sluice_organizations'"),
                        "0"); /* rolled back */
    assert_string_equal(q1(s, &lp, "SELECT count(*) FROM sluice_schema_version"), "0");

    tjob t;
    assert_int_equal(q(s, &lp, &t, "DROP TABLE sluice_keys", 0), 0);
    wait_health(s, h_current, NULL, 15, &h);
    assert_string_equal(h.reason, "");
    store_close(s);

    char *buf = NULL;
    size_t len = 0;
    c = connect_url(url);
    exec_ok(c, "DROP TABLE sluice_keys");
    exec_ok(c, "CREATE TABLE sluice_keys (token TEXT PRIMARY KEY)");
    exec_ok(c, "DELETE FROM sluice_schema_version");
    db_disconnect(c);
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(store_migrate_offline(url, 1, f), 1);
    close_stream(f, &buf);
    if (!strstr(buf, "applying 001_init ... failed\n") ||
        !strstr(buf, "error: migration 001_init failed: "))
        fail_msg("unexpected output:\n%s", buf);
    free(buf);
    loop_free(&lp);
}

static void test_migrate_offline(void **state)
{
    (void)state;
    const char *url = sqlite_url("offline.db");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(store_migrate_offline(url, 5, f), 0);
    close_stream(f, &buf);
    if (!strstr(buf, "applying 001_init ... ok\n") ||
        !strstr(buf, "schema is at version 1 (1 migration applied)"))
        fail_msg("unexpected output:\n%s", buf);
    free(buf);

    f = open_memstream(&buf, &len);
    assert_int_equal(store_migrate_offline(url, 5, f), 0);
    close_stream(f, &buf);
    assert_non_null(strstr(buf, "schema is up to date (version 1)\n"));
    free(buf);

    f = open_memstream(&buf, &len);
    assert_int_equal(store_migrate_offline("postgresql+psycopg://u:pw@h/db", 5, f), 2);
    close_stream(f, &buf);
    assert_non_null(strstr(buf, "drop the '+psycopg' driver suffix"));
    free(buf);

    /* unreachable: gives up after the timeout with libpq's reason, never the password */
    char pgurl[128];
    snprintf(pgurl, sizeof pgurl, "postgresql://u:Sup3rS3cret@127.0.0.1:%d/db", closed_port());
    f = open_memstream(&buf, &len);
    double t0 = now_s();
    assert_int_equal(store_migrate_offline(pgurl, 1.0, f), 1);
    double took = now_s() - t0;
    close_stream(f, &buf);
    assert_true(took >= 0.9 && took < 4);
    if (!strstr(buf, "cannot connect: ") || !strstr(buf, "Connection refused"))
        fail_msg("unexpected output:\n%s", buf);
    assert_null(strstr(buf, "Sup3rS3cret"));
    assert_non_null(strstr(buf, "u:***@127.0.0.1"));
    free(buf);
}

/* ---- jobs ---------------------------------------------------------------------------------- */

#define NJOBS 50

typedef struct {
    store *s;
    tjob *jobs;
    int n;
} submitter;

static void *submit_thread(void *arg)
{
    submitter *sb = arg;
    for (int i = 0; i < sb->n; i++)
        assert_int_equal(store_submit(sb->s, &sb->jobs[i].job), 0);
    return NULL;
}

static void jobs_on_loop(const char *url)
{
    loop lp;
    loop_init(&lp);
    store_health h;
    store *s = open_store(url, true);
    wait_health(s, h_current, NULL, 20, &h);

    /* in order, each on this thread, parameters and NULLs intact */
    static tjob jobs[NJOBS];
    int order[NJOBS], norder = 0;
    char ids[NJOBS][16];
    for (int i = 0; i < NJOBS; i++) {
        snprintf(ids[i], sizeof ids[i], "req-%02d", i);
        tjob_init(&jobs[i], &lp,
                  "INSERT INTO sluice_spend_logs (request_id, call_type, spend, start_time, "
                  "end_time, model) VALUES ($1, 'chat', $2, $3, $3, $4)",
                  4, ids[i], "0.25", "2026-01-01T00:00:00Z", i % 2 ? NULL : "gpt");
        jobs[i].seq = i;
        jobs[i].order = order;
        jobs[i].norder = &norder;
        assert_int_equal(store_submit(s, &jobs[i].job), 0);
    }
    for (int i = 0; i < NJOBS; i++) {
        wait_job(&lp, &jobs[i], 10);
        assert_int_equal(jobs[i].job.status, 0);
        assert_int_equal(jobs[i].rows, 1);
        assert_true(pthread_equal(jobs[i].done_thread, pthread_self()));
    }
    for (int i = 0; i < NJOBS; i++)
        assert_int_equal(order[i], i);
    assert_string_equal(q1(s, &lp, "SELECT count(*) FROM sluice_spend_logs WHERE model IS NULL"),
                        "25");
    assert_string_equal(q1(s, &lp, "SELECT SUM(spend) FROM sluice_spend_logs"), "12.5");

    /* submitted from another thread, delivered here */
    static tjob more[10];
    for (int i = 0; i < 10; i++)
        tjob_init(&more[i], &lp, "SELECT $1 AS v", 1, "x");
    submitter sb = {s, more, 10};
    pthread_t th;
    pthread_create(&th, NULL, submit_thread, &sb);
    pthread_join(th, NULL);
    for (int i = 0; i < 10; i++) {
        wait_job(&lp, &more[i], 10);
        assert_true(pthread_equal(more[i].done_thread, pthread_self()));
        assert_string_equal(db_value(&more[i].res, 0, "v"), "x");
        db_result_free(&more[i].res);
    }

    /* no mailbox: done runs on the store thread */
    tjob t;
    tjob_init(&t, NULL, "SELECT 1", 0);
    assert_int_equal(store_submit(s, &t.job), 0);
    for (int i = 0; i < 1000 && !atomic_load(&t.done); i++)
        sleep_s(0.01);
    assert_true(atomic_load(&t.done));
    assert_false(pthread_equal(t.done_thread, pthread_self()));
    db_result_free(&t.res);

    /* a failing job reports the database's message */
    assert_int_equal(q(s, &lp, &t, "SELECT * FROM no_such_table", 0), -1);
    assert_non_null(strstr(t.job.err, "no_such_table"));
    /* a job that leaves a transaction open does not leak it into the next job */
    assert_int_equal(q(s, &lp, &t, "BEGIN", 0), 0);
    assert_int_equal(q(s, &lp, &t, "DELETE FROM sluice_spend_logs", 0), NJOBS);
    assert_int_equal(q(s, &lp, &t, "BEGIN", 0), 0);
    store_close(s);
    loop_free(&lp);
}

static void test_sqlite_jobs(void **state)
{
    (void)state;
    jobs_on_loop(sqlite_url("jobs.db"));
}

static atomic_int g_flushed;

static void test_close_drains(void **state)
{
    (void)state;
    const char *url = sqlite_url("drain.db");
    store *s = open_store(url, true);
    enum { N = 300 };
    static tjob jobs[N];
    static char ids[N][16];
    atomic_store(&g_flushed, 0);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "r%d", i);
        tjob_init(&jobs[i], NULL,
                  "INSERT INTO sluice_spend_logs (request_id, call_type, start_time, end_time) "
                  "VALUES ($1, 'chat', 'a', 'b')",
                  1, ids[i]);
        jobs[i].counter = &g_flushed;
        assert_int_equal(store_submit(s, &jobs[i].job), 0);
    }
    store_close(s); /* right away: migrations, then every queued job */
    assert_int_equal(atomic_load(&g_flushed), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(jobs[i].job.status, 0);
    db_conn *c = connect_url(url);
    db_result r;
    char err[128];
    assert_int_equal(db_exec(c, "SELECT count(*) AS n FROM sluice_spend_logs", 0, NULL, &r, err,
                             sizeof err),
                     1);
    assert_string_equal(db_value(&r, 0, "n"), "300");
    db_result_free(&r);
    db_disconnect(c);
}

/* ---- database unavailable ------------------------------------------------------------------ */

static void test_unreachable_fails_at_once(void **state)
{
    (void)state;
    char url[160], display[160];
    int port = closed_port();
    snprintf(url, sizeof url, "postgresql://sluice:S3cr3t!pw@127.0.0.1:%d/sluice", port);
    snprintf(display, sizeof display, "postgresql://sluice:***@127.0.0.1:%d/sluice", port);
    loop lp;
    loop_init(&lp);
    store *s = open_store(url, true);
    store_health h;
    store_get_health(s, &h);
    assert_string_equal(h.dialect, "postgresql");
    assert_string_equal(h.display_url, display);

    for (int i = 0; i < 5; i++) {
        tjob t;
        double t0 = now_s();
        assert_int_equal(q(s, &lp, &t, "SELECT 1", 0), -1);
        double took = now_s() - t0;
        if (took > 0.5)
            fail_msg("job %d took %.2f s to fail", i, took);
        if (strncmp(t.job.err, "database unavailable: ", 22) || !strstr(t.job.err, "refused"))
            fail_msg("err: %s", t.job.err);
        assert_null(strstr(t.job.err, "S3cr3t"));
        sleep_s(0.2);
    }
    store_get_health(s, &h);
    assert_false(h.connected);
    assert_non_null(strstr(h.reason, "Connection refused"));
    assert_null(strstr(h.reason, "S3cr3t"));
    assert_int_equal(h.schema_version, -1);

    /* close with jobs queued and the database down: each gets its answer, quickly */
    static tjob jobs[20];
    atomic_store(&g_flushed, 0);
    for (int i = 0; i < 20; i++) {
        tjob_init(&jobs[i], NULL, "SELECT 1", 0);
        jobs[i].counter = &g_flushed;
        store_submit(s, &jobs[i].job);
    }
    double t0 = now_s();
    store_close(s);
    assert_true(now_s() - t0 < 2);
    assert_int_equal(atomic_load(&g_flushed), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(jobs[i].job.status, -1);
    loop_free(&lp);
}

/* A server that never answers costs the first job connect_timeout (2 s, libpq's minimum); while
 * the store then knows the database is down, jobs fail at once even with a retry in flight. */
static void test_silent_server_does_not_hold_jobs(void **state)
{
    (void)state;
    int port, fd = blackhole(&port);
    char url[160];
    snprintf(url, sizeof url, "postgresql://u@127.0.0.1:%d/db?connect_timeout=2", port);
    loop lp;
    loop_init(&lp);
    store *s = open_store(url, true);
    tjob t;
    double t0 = now_s();
    assert_int_equal(q(s, &lp, &t, "SELECT 1", 0), -1);
    double took = now_s() - t0;
    assert_true(took > 1.5 && took < 5);
    assert_non_null(strstr(t.job.err, "database unavailable: "));
    sleep_s(1.0); /* the retry (0.5 s after the failure) is now waiting on the silent server */
    for (int i = 0; i < 3; i++) {
        t0 = now_s();
        assert_int_equal(q(s, &lp, &t, "SELECT 1", 0), -1);
        took = now_s() - t0;
        if (took > 0.5) /* the attempt in flight lasts 2 s */
            fail_msg("job took %.2f s while a reconnect was in flight", took);
    }
    store_health h;
    store_get_health(s, &h);
    assert_false(h.connected);
    assert_non_null(strstr(h.reason, "timeout"));
    store_close(s);
    close(fd);
    loop_free(&lp);
}

/* ---- PostgreSQL ------------------------------------------------------------------------------ */

static void test_pg_db_exec(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    db_conn *c = connect_url(p->url);
    assert_int_equal(db_conn_dialect(c), DB_POSTGRES);
    exercise_db_exec(c);
    db_disconnect(c);
}

static void test_pg_migrate_list(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    db_conn *c = connect_url(p->url);
    char err[128];
    assert_int_equal(store_schema_version(c, err, sizeof err), 0);
    migrate_list(c);
    db_disconnect(c);
}

static void test_pg_migrations(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    migrations_twice(p->url, "postgresql");
}

static void test_pg_jobs(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    jobs_on_loop(p->url);
}

typedef struct {
    const char *url;
    int rc;
    char *out;
} offline_run;

static void *offline_thread(void *arg)
{
    offline_run *r = arg;
    size_t len = 0;
    FILE *f = open_memstream(&r->out, &len);
    r->rc = store_migrate_offline(r->url, 10, f);
    fclose(f);
    return NULL;
}

/* Two instances (and two `sluice migrate`s) at once: one migrates, the others wait on the
 * advisory lock, then find nothing to do. Jobs keep running while a store waits for the lock. */
static void test_pg_concurrent_migrations(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    loop lp;
    loop_init(&lp);
    db_conn *holder = connect_url(p->url);
    exec_ok(holder, "SELECT pg_advisory_lock(" STORE_MIGRATION_LOCK_ID ")");

    store *a = open_store(p->url, true), *b = open_store(p->url, true);
    offline_run r1 = {p->url, -1, NULL}, r2 = {p->url, -1, NULL};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, offline_thread, &r1);
    pthread_create(&t2, NULL, offline_thread, &r2);

    store_health h;
    wait_health(a, h_connected, NULL, 10, &h);
    wait_health(b, h_connected, NULL, 10, &h);
    sleep_s(0.5);
    store_get_health(a, &h);
    assert_true(h.migrating);
    assert_int_equal(h.schema_version, -1);
    assert_string_equal(q1(a, &lp, "SELECT 6 * 7"), "42"); /* not blocked by the lock */
    assert_string_equal(q1(b, &lp, "SELECT 'still serving'"), "still serving");

    /* both `sluice migrate`s are queued on the lock before it is released */
    for (int i = 0;; i++) {
        db_result r;
        char err[256];
        const char *prm[] = {p->schema};
        assert_int_equal(db_exec(holder,
                                 "SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a "
                                 "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND NOT "
                                 "l.granted AND a.application_name = $1",
                                 1, prm, &r, err, sizeof err),
                         1);
        int n = atoi(db_value(&r, 0, "n"));
        db_result_free(&r);
        if (n >= 2)
            break;
        if (i > 1000)
            fail_msg("the offline migrations are not waiting on the lock");
        sleep_s(0.01);
    }
    exec_ok(holder, "SELECT pg_advisory_unlock(" STORE_MIGRATION_LOCK_ID ")");
    wait_health(a, h_current, NULL, 20, &h);
    assert_string_equal(h.reason, "");
    wait_health(b, h_current, NULL, 20, &h);
    assert_string_equal(h.reason, "");
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_int_equal(r1.rc, 0);
    assert_int_equal(r2.rc, 0);
    assert_non_null(strstr(r1.out, "waiting for another instance"));
    assert_non_null(strstr(r2.out, "waiting for another instance"));
    int applied = (strstr(r1.out, "applying 001_init ... ok") != NULL) +
                  (strstr(r2.out, "applying 001_init ... ok") != NULL);
    assert_true(applied <= 1);
    free(r1.out);
    free(r2.out);
    assert_string_equal(q1(a, &lp, "SELECT count(*) FROM sluice_schema_version"), "1");
    store_close(a);
    store_close(b);
    db_disconnect(holder);
    loop_free(&lp);
}

/* pid of the store's backend (by application_name), waiting until it is in `state` */
static char *backend_pid(db_conn *c, const char *app, const char *st)
{
    static char pid[32];
    const char *prm[] = {app, st};
    for (int i = 0; i < 1000; i++) {
        db_result r;
        char err[256];
        int n = db_exec(c,
                        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
                        "AND state = $2 AND pid <> pg_backend_pid()",
                        2, prm, &r, err, sizeof err);
        if (n < 0)
            fail_msg("%s", err);
        if (n == 1) {
            snprintf(pid, sizeof pid, "%s", db_value(&r, 0, "pid"));
            db_result_free(&r);
            return pid;
        }
        db_result_free(&r);
        sleep_s(0.01);
    }
    fail_msg("no %s backend for %s", st, app);
    return NULL;
}

static void terminate(db_conn *c, const char *pid)
{
    char err[256];
    const char *prm[] = {pid};
    if (db_exec(c, "SELECT pg_terminate_backend(CAST($1 AS INTEGER))", 1, prm, NULL, err,
                sizeof err) != 1)
        fail_msg("%s", err);
    /* wait until it is gone */
    for (int i = 0; i < 500; i++) {
        int n = db_exec(c, "SELECT pid FROM pg_stat_activity WHERE pid = CAST($1 AS INTEGER)", 1,
                        prm, NULL, err, sizeof err);
        if (n == 0)
            return;
        sleep_s(0.01);
    }
    fail_msg("backend %s still there", pid);
}

static void test_pg_killed_mid_job(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    loop lp;
    loop_init(&lp);
    store_health h;
    store *s = open_store(p->url, true);
    wait_health(s, h_current, NULL, 20, &h);
    db_conn *admin = connect_url(g_pg);

    tjob slow;
    tjob_init(&slow, &lp, "SELECT pg_sleep(30)", 0);
    assert_int_equal(store_submit(s, &slow.job), 0);
    terminate(admin, backend_pid(admin, p->schema, "active"));
    wait_job(&lp, &slow, 10);
    assert_int_equal(slow.job.status, -1);
    if (!strstr(slow.job.err, "terminating connection") && !strstr(slow.job.err, "closed"))
        fail_msg("err: %s", slow.job.err);

    /* back in business after the reconnect, schema checked again */
    wait_health(s, h_current, NULL, 10, &h);
    assert_string_equal(q1(s, &lp, "SELECT count(*) FROM sluice_schema_version"), "1");
    store_close(s);
    db_disconnect(admin);
    loop_free(&lp);
}

static void test_pg_killed_while_idle(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    loop lp;
    loop_init(&lp);
    store_health h;
    store *s = open_store(p->url, true);
    wait_health(s, h_current, NULL, 20, &h);
    db_conn *admin = connect_url(g_pg);
    assert_string_equal(q1(s, &lp, "SELECT 1"), "1");
    for (int round = 0; round < 3; round++) {
        terminate(admin, backend_pid(admin, p->schema, "idle"));
        sleep_s(0.05);
        /* the next job notices before it runs and gets a fresh connection */
        assert_string_equal(q1(s, &lp, "SELECT 'after'"), "after");
    }
    /* with no job coming, the periodic check replaces the connection within a few seconds */
    char old[32];
    snprintf(old, sizeof old, "%s", backend_pid(admin, p->schema, "idle"));
    terminate(admin, old);
    double end = now_s() + 6;
    for (;;) {
        db_result r;
        char err[256];
        const char *prm[] = {p->schema};
        int n = db_exec(admin, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", 1,
                        prm, &r, err, sizeof err);
        bool fresh = n == 1 && strcmp(db_value(&r, 0, "pid"), old) != 0;
        db_result_free(&r);
        if (fresh)
            break;
        if (now_s() > end)
            fail_msg("the store did not reconnect by itself");
        sleep_s(0.05);
    }
    store_get_health(s, &h);
    assert_true(h.connected);
    store_close(s);
    db_disconnect(admin);
    loop_free(&lp);
}

static void test_pg_migrate_offline(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(store_migrate_offline(p->url, 5, f), 0);
    close_stream(f, &buf);
    if (!strstr(buf, "applying 001_init ... ok\n"))
        fail_msg("unexpected output:\n%s", buf);
    free(buf);
    f = open_memstream(&buf, &len);
    assert_int_equal(store_migrate_offline(p->url, 5, f), 0);
    close_stream(f, &buf);
    assert_non_null(strstr(buf, "schema is up to date (version 1)"));
    free(buf);
}

/* A statement still running when the drain time is up is cancelled: close cannot hang. */
static void test_pg_close_interrupts(void **state)
{
    NEED_PG();
    pgctx *p = *state;
    loop lp;
    loop_init(&lp);
    store_health h;
    store *s = open_store(p->url, true);
    wait_health(s, h_current, NULL, 20, &h);
    tjob slow, after;
    tjob_init(&slow, NULL, "SELECT pg_sleep(60)", 0);
    tjob_init(&after, NULL, "SELECT 1", 0);
    assert_int_equal(store_submit(s, &slow.job), 0);
    assert_int_equal(store_submit(s, &after.job), 0);
    sleep_s(0.2);
    double t0 = now_s();
    store_close(s);
    double took = now_s() - t0;
    if (took < 4 || took > 12)
        fail_msg("close took %.1f s", took);
    assert_true(atomic_load(&slow.done));
    assert_int_equal(slow.job.status, -1);
    assert_non_null(strstr(slow.job.err, "cancel"));
    assert_true(atomic_load(&after.done));
    assert_int_equal(after.job.status, -1);
    assert_non_null(strstr(after.job.err, "store closed"));
    loop_free(&lp);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/sluice-store-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    g_pg = getenv("SLUICE_TEST_PG_URL");
    if (g_pg && !*g_pg)
        g_pg = NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_db_exec),
        cmocka_unit_test(test_embedded_migrations),
        cmocka_unit_test(test_sqlite_migrate_list),
        cmocka_unit_test(test_sqlite_migrations),
        cmocka_unit_test(test_sqlite_memory),
        cmocka_unit_test(test_migrate_disabled),
        cmocka_unit_test(test_migration_failure_retried),
        cmocka_unit_test(test_migrate_offline),
        cmocka_unit_test(test_sqlite_jobs),
        cmocka_unit_test(test_close_drains),
        cmocka_unit_test(test_unreachable_fails_at_once),
        cmocka_unit_test(test_silent_server_does_not_hold_jobs),
        cmocka_unit_test_setup_teardown(test_pg_db_exec, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_migrate_list, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_migrations, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_jobs, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_concurrent_migrations, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_killed_mid_job, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_killed_while_idle, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_migrate_offline, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_close_interrupts, pg_setup, pg_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
