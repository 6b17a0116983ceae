/* store/postgres — the PostgreSQL backend, on libpq's blocking calls (it runs on the store
 * thread, which has nothing else to do while a statement runs).
 *
 * Every value goes as text through PQexecParams (no client-side quoting anywhere), and comes
 * back as text. Notices ("relation already exists, skipping" from the migrations' IF NOT
 * EXISTS) are dropped instead of printed on stderr, libpq's default.
 *
 * Dead connections. A statement that fails because the server went away leaves PQstatus at
 * CONNECTION_BAD; the job fails with the reason and c->broken tells the store thread to
 * reconnect. A connection the server closed while it sat idle (pg_terminate_backend, a
 * restart, idle_session_timeout) is caught before the next job by pg_alive, which reads what
 * the server sent without blocking; that job then runs on a fresh connection instead of
 * failing. Messages never contain the password: libpq does not put it in its messages, and
 * db_clean_message scrubs it anyway. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/store_internal.h"

static void drop_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* libpq's own messages for a lost connection end in a two-line guess ("This probably means
 * the server terminated abnormally ..."); the lines before it say what happened. */
static void conn_message(db_conn *c, const char *msg)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", msg);
    char *guess = strstr(buf, "\n\tThis probably means");
    if (guess)
        *guess = 0;
    db_clean_message(c->lasterr, sizeof c->lasterr, buf, c->secret);
}

db_conn *pg_connect(const char *conninfo, char *err, size_t errlen)
{
    char *secret = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (opts) {
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (!strcmp(o->keyword, "password") && o->val && *o->val)
                secret = strdup(o->val);
        PQconninfoFree(opts);
    }
    PGconn *pg = PQconnectdb(conninfo);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        db_clean_message(err, errlen, pg ? PQerrorMessage(pg) : "out of memory", secret);
        if (!err[0])
            snprintf(err, errlen, "cannot connect");
        PQfinish(pg);
        free(secret);
        return NULL;
    }
    PQsetNoticeProcessor(pg, drop_notice, NULL);
    PQsetClientEncoding(pg, "UTF8");
    db_conn *c = calloc(1, sizeof *c);
    if (!c) {
        PQfinish(pg);
        free(secret);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->dialect = DB_POSTGRES;
    c->h = pg;
    c->secret = secret;
    c->cancel = PQgetCancel(pg);
    return c;
}

void pg_disconnect(db_conn *c)
{
    if (c->cancel)
        PQfreeCancel(c->cancel);
    PQfinish(c->h);
    if (c->secret) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    free(c);
}

bool pg_in_txn(db_conn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->h);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

bool pg_alive(db_conn *c)
{
    PGconn *pg = c->h;
    if (PQstatus(pg) != CONNECTION_OK) {
        c->broken = true;
        conn_message(c, PQerrorMessage(pg));
        return false;
    }
    if (PQtransactionStatus(pg) != PQTRANS_IDLE)
        return true;
    /* Idle and readable means the server said something unprompted: almost always a FATAL
     * error followed by end of file. Reading it lets libpq notice the closed socket; the loop
     * covers the error and the EOF arriving in separate reads. */
    for (int i = 0; i < 4; i++) {
        struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
        if (p.fd < 0 || poll(&p, 1, 0) <= 0)
            break;
        if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) {
            c->broken = true;
            conn_message(c, PQerrorMessage(pg));
            return false;
        }
        (void)PQisBusy(pg); /* parses what arrived (an async error becomes a notice) */
        PGnotify *n;
        while ((n = PQnotifies(pg)))
            PQfreemem(n);
    }
    return true;
}

static void fail(db_conn *c, PGresult *res, char *err, size_t errlen)
{
    PGconn *pg = c->h;
    if (PQstatus(pg) == CONNECTION_BAD)
        c->broken = true;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary)
        db_clean_message(c->lasterr, sizeof c->lasterr, primary, c->secret);
    else
        conn_message(c, PQerrorMessage(pg));
    if (!c->lasterr[0])
        snprintf(c->lasterr, sizeof c->lasterr, "%s",
                 c->broken ? "connection to the database lost" : "query failed");
    snprintf(err, errlen, "%s", c->lasterr);
}

void pg_interrupt(db_conn *c)
{
    char buf[256];
    if (c->cancel)
        PQcancel(c->cancel, buf, sizeof buf);
}

int pg_exec(db_conn *c, const char *sql, int nparams, const char *const *params, db_result *out,
            char *err, size_t errlen)
{
    PGresult *res = PQexecParams(c->h, sql, nparams, NULL, params, NULL, NULL, 0);
    int ret = -1;
    switch (res ? PQresultStatus(res) : PGRES_FATAL_ERROR) {
    case PGRES_EMPTY_QUERY:
        ret = 0;
        break;
    case PGRES_COMMAND_OK:
        ret = atoi(PQcmdTuples(res)); /* "" (0) for statements that count nothing */
        break;
    case PGRES_TUPLES_OK: {
        int nrows = PQntuples(res), ncols = PQnfields(res);
        ret = nrows;
        if (!out || !ncols)
            break;
        const char **vals = calloc((size_t)ncols, sizeof *vals);
        if (!vals)
            goto oom;
        for (int i = 0; i < ncols; i++)
            vals[i] = PQfname(res, i);
        if (db_result_set_cols(out, ncols, vals) < 0) {
            free(vals);
            goto oom;
        }
        for (int r = 0; r < nrows; r++) {
            for (int i = 0; i < ncols; i++)
                vals[i] = PQgetisnull(res, r, i) ? NULL : PQgetvalue(res, r, i);
            if (db_result_add_row(out, vals) < 0) {
                free(vals);
                goto oom;
            }
        }
        free(vals);
        break;
    }
    default:
        fail(c, res, err, errlen);
        break;
    }
    PQclear(res);
    return ret;
oom:
    PQclear(res);
    snprintf(err, errlen, "out of memory");
    return -1;
}

int pg_commit(db_conn *c, char *err, size_t errlen)
{
    PGresult *res = PQexec(c->h, "COMMIT");
    int ret = 0;
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        fail(c, res, err, errlen);
        ret = -1;
    } else if (!strcmp(PQcmdStatus(res), "ROLLBACK")) {
        /* COMMIT of a transaction in which a statement failed succeeds as a ROLLBACK */
        snprintf(err, errlen, "transaction rolled back: a statement in it failed");
        ret = -1;
    }
    PQclear(res);
    return ret;
}

int pg_exec_script(db_conn *c, const char *sql, char *err, size_t errlen)
{
    /* the simple query protocol runs several statements in one call and stops at the first
     * error, whose result is the one returned */
    PGresult *res = PQexec(c->h, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int ret = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        fail(c, res, err, errlen);
        ret = -1;
    }
    PQclear(res);
    return ret;
}
