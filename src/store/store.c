/* store — the store thread: job queue, connection life cycle, background migrations, health.
 *
 * Threads. store_open starts one store thread, which owns the connection and runs every job
 * and migration in submission order. Connecting happens on a short-lived connector thread so
 * that a server that swallows packets (connect_timeout, 5 s by default) never holds jobs up:
 * while the database is known to be down, jobs fail at once with "database unavailable:
 * <reason>" even as a retry is in flight. Only the very first attempt after store_open is
 * waited for (the database is not known to be down yet, and SQLite or a healthy server answer
 * within milliseconds), as is the last-chance attempt store_close makes to flush queued jobs.
 *
 * Locking. One mutex guards the queue, the health record and the connector hand-off; nobody
 * holds it while a statement runs. The connection itself is the store thread's alone;
 * s->live publishes it (under the mutex) only so store_close can interrupt a statement that
 * outlives the drain deadline.
 *
 * Failure model. Connect failures retry with backoff (0.5 s doubling to 10 s). A connection
 * that breaks during a job fails that job with the reason, marks the store disconnected and
 * reconnects at once in the background; one found dead before a job (closed by the server
 * while idle) is replaced first and the job runs on the new one; an idle connection is also
 * checked every 2 s, so health notices a restart without waiting for a job. Every (re)connect
 * runs the migrations again (a no-op unless the database was replaced), unless migrate is off.
 * A failed migration is reported in health and retried with the same backoff while jobs keep
 * running. TCP keepalives (dburl.c) catch a server that vanished without closing anything.
 *
 * Cost. The whole queue is served by one connection: a slow statement delays every job behind
 * it, including cache-miss key lookups. Spend writes are batched upstream (one job per flush)
 * so this is one statement stream per process, which SQLite wants anyway; a second connection
 * for reads is the step to take if lookups ever queue behind writes. */
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/log.h"
#include "store/store_internal.h"
#include "util/thread.h"
#include "util/clock.h"

#define BACKOFF_MIN_S 0.5
#define BACKOFF_MAX_S 10.0
#define LOCK_POLL_S 0.25     /* another instance is migrating: look again this often */
#define CLOSE_DRAIN_S 5.0    /* store_close runs queued jobs for this long */
#define CLOSE_CANCEL_S 2.0   /* ... then interrupts the running statement after this much more */
#define ALIVE_CHECK_S 2.0    /* an idle PostgreSQL connection is checked this often */

typedef struct qnode {
    struct qnode *next;
    store_job *j;
} qnode;

struct store {
    db_url url;
    bool migrate;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* under mu */
    qnode *head, *tail;
    bool closing;
    double close_deadline;
    store_health h;
    bool connecting;     /* a connector thread is running */
    bool connect_done;   /* ... and has finished: result below */
    db_conn *connect_result;
    char connect_err[256];
    pthread_t connector;
    db_conn *live;       /* == conn, for store_close's interrupt */

    /* store thread only */
    db_conn *conn;
    bool known_down;     /* the last attempt failed or the connection broke: fail jobs at once */
    bool waited_once;    /* the first attempt has finished */
    bool close_retry;    /* the last-chance reconnect at close has been started */
    double backoff, next_connect;
    bool need_migrate, need_version;
    double mig_backoff, next_migrate;
    double next_alive;
};


static void set_reason(store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* caller holds mu */
static void set_reason(store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->h.reason, sizeof s->h.reason, fmt, ap);
    va_end(ap);
}

/* Starts a thread with every signal blocked, so signals keep going to the threads that
 * handle them (the main loop). */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- delivery ------------------------------------------------------------------------------ */

static void deliver_cb(void *arg)
{
    store_job *j = arg;
    j->done(j);
}

static void deliver(store_job *j)
{
    if (!j->done)
        return;
    if (!j->reply_to) {
        j->done(j);
        return;
    }
    if (mbox_post(j->reply_to, deliver_cb, j) < 0)
        /* out of memory: running done here would break the caller's threading, so the job is
         * dropped (and leaked) with a log line */
        log_msg(LOG_ERROR, "store: cannot post a job result (out of memory); job dropped");
}

static void fail_job(store_job *j, const char *prefix, const char *reason)
{
    j->status = -1;
    snprintf(j->err, sizeof j->err, "%s%s", prefix, reason);
    deliver(j);
}

/* ---- connections --------------------------------------------------------------------------- */

static void *connector_main(void *arg)
{
    store *s = arg;
    thread_background("sluice-dbconn");
    char err[256] = "";
    db_conn *c = db_connect(&s->url, err, sizeof err); /* s->url is immutable: no lock */
    pthread_mutex_lock(&s->mu);
    s->connect_result = c;
    snprintf(s->connect_err, sizeof s->connect_err, "%s", err[0] ? err : "cannot connect");
    s->connect_done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* mu held */
static void start_connect(store *s, double now)
{
    s->connect_done = false;
    s->connect_result = NULL;
    int rc = spawn(&s->connector, connector_main, s);
    if (rc != 0) {
        s->known_down = true;
        s->waited_once = true;
        set_reason(s, "cannot start a thread to connect: %s", strerror(rc));
        s->next_connect = now + s->backoff;
        return;
    }
    s->connecting = true;
}

/* mu held; collects the connector's result */
static void finish_connect(store *s, double now)
{
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->connector, NULL);
    pthread_mutex_lock(&s->mu);
    s->connecting = false;
    s->connect_done = false;
    s->waited_once = true;
    db_conn *c = s->connect_result;
    s->connect_result = NULL;
    if (c) {
        bool was_down = s->known_down;
        s->conn = s->live = c;
        s->known_down = false;
        s->backoff = BACKOFF_MIN_S;
        s->h.connected = true;
        s->h.reason[0] = 0;
        s->need_migrate = s->migrate;
        s->need_version = !s->migrate;
        s->h.migrating = s->migrate;
        s->next_migrate = now;
        s->mig_backoff = BACKOFF_MIN_S;
        s->next_alive = now + ALIVE_CHECK_S;
        log_msg(LOG_INFO, "store: %s %s", was_down ? "reconnected to" : "connected to",
                s->url.display);
        return;
    }
    bool changed = strcmp(s->h.reason, s->connect_err) != 0;
    snprintf(s->h.reason, sizeof s->h.reason, "%s", s->connect_err);
    if (changed || !s->known_down)
        log_msg(LOG_WARN, "store: database unavailable (%s): %s; retrying every %.1f-%.0f s",
                s->url.display, s->h.reason, BACKOFF_MIN_S, BACKOFF_MAX_S);
    s->known_down = true;
    s->next_connect = now + s->backoff;
    s->backoff = fmin(s->backoff * 2, BACKOFF_MAX_S);
}

/* Drops a dead connection. Called without mu. */
static void drop_conn(store *s, const char *why, bool fail_fast)
{
    pthread_mutex_lock(&s->mu);
    s->live = NULL;
    s->h.connected = false;
    set_reason(s, "%s", why);
    s->known_down = fail_fast;
    s->next_connect = 0; /* reconnect at once */
    s->backoff = BACKOFF_MIN_S;
    s->need_migrate = s->need_version = false;
    s->h.migrating = false;
    pthread_mutex_unlock(&s->mu);
    log_msg(LOG_WARN, "store: %s (%s); reconnecting", why, s->url.display);
    db_disconnect(s->conn);
    s->conn = NULL;
}

/* ---- jobs and migrations ---------------------------------------------------------------------- */

static void run_job(store *s, store_job *j)
{
    j->status = 0;
    j->err[0] = 0;
    s->conn->lasterr[0] = 0;
    if (j->run)
        j->status = j->run(s->conn, j);
    if (j->status < 0 && !j->err[0])
        snprintf(j->err, sizeof j->err, "%s",
                 s->conn->lasterr[0] ? s->conn->lasterr : "store job failed");
    if (s->conn->broken) {
        char why[300];
        snprintf(why, sizeof why, "connection lost: %s",
                 s->conn->lasterr[0] ? s->conn->lasterr : "I/O error");
        if (j->status >= 0) /* the job did not notice (it ignored an error): tell its owner */
            j->status = -1;
        if (!j->err[0])
            snprintf(j->err, sizeof j->err, "%s", why);
        drop_conn(s, why, true);
    } else {
        db_after_job(s->conn);
    }
    deliver(j);
}

static void on_applied(void *ud, int version)
{
    store *s = ud;
    pthread_mutex_lock(&s->mu);
    s->h.schema_version = version;
    pthread_mutex_unlock(&s->mu);
}

static void migrate_step(store *s)
{
    store_migrate_opts o = {.wait_for_lock = false, .applied = on_applied, .ud = s};
    int version = -1, napplied = 0;
    char err[400] = "";
    int rc = store_migrate_run(s->conn, store_migrations, store_migrations_count, &o, &version,
                               &napplied, err, sizeof err);
    if (s->conn->broken) {
        char why[300];
        snprintf(why, sizeof why, "connection lost: %s", s->conn->lasterr);
        drop_conn(s, why, true);
        return;
    }
    double now = clock_mono();
    pthread_mutex_lock(&s->mu);
    if (rc == 1) {
        s->need_migrate = false;
        s->h.migrating = false;
        s->h.schema_version = version;
        s->h.reason[0] = 0;
        s->mig_backoff = BACKOFF_MIN_S;
    } else if (rc == 0) {
        s->next_migrate = now + LOCK_POLL_S;
    } else {
        set_reason(s, "%s", err);
        if (version >= 0)
            s->h.schema_version = version;
        s->next_migrate = now + s->mig_backoff;
        s->mig_backoff = fmin(s->mig_backoff * 2, BACKOFF_MAX_S);
    }
    pthread_mutex_unlock(&s->mu);
    int latest = store_migrations_count ? store_migrations[store_migrations_count - 1].version : 0;
    if (rc == 1 && napplied)
        log_msg(LOG_INFO, "store: applied %d migration%s, schema version %d", napplied,
                napplied == 1 ? "" : "s", version);
    if (rc == 1 && version > latest)
        log_msg(LOG_WARN, "store: the schema (version %d) is newer than this sluice knows (%d)",
                version, latest);
    if (rc < 0)
        log_msg(LOG_ERROR, "store: %s; retrying", err);
}

static void read_version(store *s)
{
    char err[300];
    int v = store_schema_version(s->conn, err, sizeof err);
    if (s->conn->broken) {
        char why[300];
        snprintf(why, sizeof why, "connection lost: %s", s->conn->lasterr);
        drop_conn(s, why, true);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->need_version = false;
    s->h.schema_version = v;
    pthread_mutex_unlock(&s->mu);
    int latest = store_migrations_count ? store_migrations[store_migrations_count - 1].version : 0;
    if (v >= 0 && v < latest)
        log_msg(LOG_WARN,
                "store: schema version %d, this sluice needs %d and schema updates are off: run "
                "`sluice migrate`",
                v, latest);
}

/* ---- the store thread ------------------------------------------------------------------------ */

static void cond_wait_until(store *s, double when)
{
    if (isinf(when)) {
        pthread_cond_wait(&s->cv, &s->mu);
        return;
    }
    struct timespec ts;
    double secs = floor(when);
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((when - secs) * 1e9);
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static void *store_main(void *arg)
{
    store *s = arg;
    thread_background("sluice-store");
    pthread_mutex_lock(&s->mu);
    for (;;) {
        double now = clock_mono();
        if (s->connecting && s->connect_done)
            finish_connect(s, now);
        if (!s->conn && !s->connecting &&
            (now >= s->next_connect || (s->closing && s->head && !s->close_retry))) {
            if (s->closing)
                s->close_retry = true;
            start_connect(s, now);
        }
        bool past_deadline = s->closing && now >= s->close_deadline;

        /* migrations first: jobs queued at start mostly need the schema */
        if (s->conn && !past_deadline && s->need_migrate && now >= s->next_migrate) {
            pthread_mutex_unlock(&s->mu);
            migrate_step(s);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->conn && s->need_version) {
            pthread_mutex_unlock(&s->mu);
            read_version(s);
            pthread_mutex_lock(&s->mu);
            continue;
        }

        /* jobs wait only for a first attempt, or for the last-chance one at close */
        bool waiting_for_attempt =
            !s->conn && s->connecting && (!s->waited_once || (s->closing && s->close_retry));
        if (s->head && (s->conn || !waiting_for_attempt || past_deadline)) {
            qnode *n = s->head;
            s->head = n->next;
            if (!s->head)
                s->tail = NULL;
            store_job *j = n->j;
            char reason[sizeof s->h.reason];
            snprintf(reason, sizeof reason, "%s", s->h.reason);
            pthread_mutex_unlock(&s->mu);
            if (s->conn && !past_deadline && !db_alive(s->conn)) {
                /* closed while idle: replace the connection, then run the job on the new one
                 * (it goes back to the head of the queue and waits for that one attempt) */
                char why[300];
                snprintf(why, sizeof why, "connection closed by the server: %s",
                         s->conn->lasterr[0] ? s->conn->lasterr : "end of file");
                drop_conn(s, why, false);
                pthread_mutex_lock(&s->mu);
                n->next = s->head;
                s->head = n;
                if (!s->tail)
                    s->tail = n;
                s->waited_once = false;
                continue;
            }
            free(n);
            if (past_deadline)
                fail_job(j, "store closed before the job ran", "");
            else if (!s->conn)
                fail_job(j, "database unavailable: ", reason[0] ? reason : "not connected");
            else
                run_job(s, j);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->closing && (!s->head || past_deadline))
            break;

        /* idle: notice a server that went away (restart, failover) without waiting for a job,
         * so health tells the truth; costs one poll(2), no query */
        if (s->conn && s->conn->dialect == DB_POSTGRES && now >= s->next_alive) {
            s->next_alive = now + ALIVE_CHECK_S;
            pthread_mutex_unlock(&s->mu);
            if (!db_alive(s->conn)) {
                char why[300];
                snprintf(why, sizeof why, "connection closed by the server: %s",
                         s->conn->lasterr[0] ? s->conn->lasterr : "end of file");
                drop_conn(s, why, false);
                pthread_mutex_lock(&s->mu);
                s->waited_once = false;
            } else {
                pthread_mutex_lock(&s->mu);
            }
            continue;
        }

        double wake = INFINITY;
        if (!s->conn && !s->connecting)
            wake = s->next_connect;
        if (s->conn && s->need_migrate)
            wake = fmin(wake, s->next_migrate);
        if (s->conn && s->conn->dialect == DB_POSTGRES)
            wake = fmin(wake, s->next_alive);
        if (s->closing)
            wake = fmin(wake, s->close_deadline);
        if (s->connecting && s->connect_done)
            continue;
        if (wake <= clock_mono())
            continue;
        cond_wait_until(s, wake);
    }
    s->live = NULL;
    bool connecting = s->connecting;
    pthread_mutex_unlock(&s->mu);
    if (connecting) {
        /* bounded by the URL's connect_timeout */
        pthread_join(s->connector, NULL);
        db_disconnect(s->connect_result);
        s->connect_result = NULL;
    }
    db_disconnect(s->conn);
    s->conn = NULL;
    return NULL;
}

/* ---- public ---------------------------------------------------------------------------------- */

store *store_open(const store_cfg *cfg, char *err, size_t errlen)
{
    store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *url = cfg && cfg->url && *cfg->url ? cfg->url : "./sluice.db";
    if (db_url_parse(url, &s->url, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    s->migrate = cfg ? cfg->migrate : true;
    s->backoff = s->mig_backoff = BACKOFF_MIN_S;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->h.connected = false;
    snprintf(s->h.reason, sizeof s->h.reason, "connecting");
    s->h.schema_version = -1;
    s->h.migrations_total = store_migrations_count;
    s->h.migrating = s->migrate;
    snprintf(s->h.dialect, sizeof s->h.dialect, "%s",
             s->url.dialect == DB_SQLITE ? "sqlite" : "postgresql");
    snprintf(s->h.display_url, sizeof s->h.display_url, "%s", s->url.display);
    int rc = spawn(&s->thread, store_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the store thread: %s", strerror(rc));
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        db_url_free(&s->url);
        free(s);
        return NULL;
    }
    return s;
}

int store_submit(store *s, store_job *j)
{
    qnode *n = malloc(sizeof *n);
    if (!n)
        return -1;
    n->next = NULL;
    n->j = j;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        free(n);
        return -1;
    }
    if (s->tail)
        s->tail->next = n;
    else
        s->head = n;
    s->tail = n;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void store_close(store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    s->close_deadline = clock_mono() + CLOSE_DRAIN_S;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);

    /* a statement still running after the drain deadline (a lock wait, a hung server) is
     * interrupted so shutdown cannot hang on it */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(CLOSE_DRAIN_S + CLOSE_CANCEL_S);
    if (pthread_timedjoin_np(s->thread, NULL, &ts) != 0) {
        pthread_mutex_lock(&s->mu);
        if (s->live) {
            log_msg(LOG_WARN, "store: interrupting a statement still running at shutdown");
            db_interrupt(s->live);
        }
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    db_url_free(&s->url);
    free(s);
}

void store_get_health(store *s, store_health *h)
{
    if (!s) {
        memset(h, 0, sizeof *h);
        snprintf(h->reason, sizeof h->reason, "no database configured");
        h->schema_version = -1;
        h->migrations_total = store_migrations_count;
        return;
    }
    pthread_mutex_lock(&s->mu);
    *h = s->h;
    pthread_mutex_unlock(&s->mu);
}
