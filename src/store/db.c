/* store/db — the backend-neutral half of db_conn: dispatch to sqlite.c / postgres.c, results,
 * transactions and message cleaning. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

db_conn *db_connect(const db_url *u, char *err, size_t errlen)
{
    if (u->dialect == DB_SQLITE)
        return sqlite_connect(u->path, err, errlen);
    return pg_connect(u->conninfo, err, errlen);
}

void db_disconnect(db_conn *c)
{
    if (!c)
        return;
    if (c->dialect == DB_SQLITE)
        sqlite_disconnect(c);
    else
        pg_disconnect(c);
}

db_dialect db_conn_dialect(const db_conn *c)
{
    return c->dialect;
}

int db_exec(db_conn *c, const char *sql, int nparams, const char *const *params, db_result *out,
            char *err, size_t errlen)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = 0;
    int rc = c->dialect == DB_SQLITE ? sqlite_exec(c, sql, nparams, params, out, err, errlen)
                                     : pg_exec(c, sql, nparams, params, out, err, errlen);
    if (rc < 0 && out)
        db_result_free(out);
    return rc;
}

int db_exec_script(db_conn *c, const char *sql, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    return c->dialect == DB_SQLITE ? sqlite_exec_script(c, sql, err, errlen)
                                   : pg_exec_script(c, sql, err, errlen);
}

/* SQLite takes the write lock at BEGIN IMMEDIATE: a transaction that reads and then writes
 * cannot fail half-way with SQLITE_BUSY when another process holds the lock; it waits for
 * busy_timeout at the start instead. */
int db_begin(db_conn *c, char *err, size_t errlen)
{
    return db_exec(c, c->dialect == DB_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN", 0, NULL, NULL, err,
                   errlen) < 0
               ? -1
               : 0;
}

int db_commit(db_conn *c, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (c->dialect == DB_POSTGRES)
        return pg_commit(c, err, errlen);
    return db_exec(c, "COMMIT", 0, NULL, NULL, err, errlen) < 0 ? -1 : 0;
}

void db_rollback(db_conn *c)
{
    char err[8];
    if (c->dialect == DB_SQLITE ? sqlite_in_txn(c) : pg_in_txn(c))
        db_exec(c, "ROLLBACK", 0, NULL, NULL, err, sizeof err);
}

bool db_alive(db_conn *c)
{
    if (c->broken)
        return false;
    return c->dialect == DB_SQLITE ? true : pg_alive(c);
}

void db_interrupt(db_conn *c)
{
    if (c->dialect == DB_SQLITE)
        sqlite_interrupt(c);
    else
        pg_interrupt(c);
}

void db_after_job(db_conn *c)
{
    if (!c->broken)
        db_rollback(c);
}

/* ---- results -------------------------------------------------------------------------------- */

int db_result_set_cols(db_result *r, int ncols, const char *const *names)
{
    r->cols = calloc((size_t)(ncols ? ncols : 1), sizeof *r->cols);
    if (!r->cols)
        return -1;
    r->ncols = ncols;
    for (int i = 0; i < ncols; i++)
        if (!(r->cols[i] = strdup(names[i] ? names[i] : "")))
            return -1;
    return 0;
}

int db_result_add_row(db_result *r, const char *const *vals)
{
    /* v holds room for a power-of-two number of rows: it grows when nrows reaches one */
    size_t nc = (size_t)r->ncols, have = (size_t)r->nrows * nc;
    if (r->nrows == 0 || (r->nrows & (r->nrows - 1)) == 0) {
        size_t rows = r->nrows ? 2 * (size_t)r->nrows : 1;
        char **v = realloc(r->v, (rows * nc + 1) * sizeof *v);
        if (!v)
            return -1;
        r->v = v;
    }
    for (size_t i = 0; i < nc; i++) {
        r->v[have + i] = NULL;
        if (vals[i] && !(r->v[have + i] = strdup(vals[i]))) {
            for (size_t k = 0; k < i; k++)
                free(r->v[have + k]);
            return -1;
        }
    }
    r->nrows++;
    return 0;
}

const char *db_value(const db_result *r, int row, const char *col)
{
    if (!r || !r->v || row < 0 || row >= r->nrows || !col)
        return NULL;
    for (int i = 0; i < r->ncols; i++)
        if (!strcmp(r->cols[i], col))
            return r->v[(size_t)row * (size_t)r->ncols + (size_t)i];
    return NULL;
}

void db_result_free(db_result *r)
{
    if (!r)
        return;
    if (r->v)
        for (size_t i = 0; i < (size_t)r->nrows * (size_t)r->ncols; i++)
            free(r->v[i]);
    free(r->v);
    if (r->cols)
        for (int i = 0; i < r->ncols; i++)
            free(r->cols[i]);
    free(r->cols);
    memset(r, 0, sizeof *r);
}

/* ---- messages ------------------------------------------------------------------------------- */

void db_clean_message(char *out, size_t outlen, const char *msg, const char *secret)
{
    if (!outlen)
        return;
    size_t slen = secret ? strlen(secret) : 0;
    size_t o = 0;
    bool space = true; /* drops leading whitespace */
    for (const char *p = msg ? msg : ""; *p && o + 1 < outlen;) {
        if (slen && !strncmp(p, secret, slen)) {
            for (const char *s = "***"; *s && o + 1 < outlen; s++)
                out[o++] = *s;
            p += slen;
            space = false;
            continue;
        }
        char ch = *p++;
        if (ch == '\n' || ch == '\t' || ch == '\r' || ch == ' ') {
            if (!space)
                out[o++] = ' ';
            space = true;
            continue;
        }
        out[o++] = ch;
        space = false;
    }
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = 0;
}
