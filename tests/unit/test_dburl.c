/* Unit tests for store/dburl: every database URL form sluice accepts, passwords with special
 * characters (raw and percent-encoded), the driver-suffix refusal, display strings without the
 * password, and conninfo quoting, checked by parsing the result back with libpq itself. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/store.h"
#include "store/store_internal.h"

/* The value libpq reads for keyword kw from conninfo (malloc'd), or NULL when unset. */
static char *ci_get(const char *conninfo, const char *kw)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    if (!opts)
        fail_msg("libpq cannot parse conninfo: %s", errmsg ? errmsg : "?");
    char *v = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (!strcmp(o->keyword, kw) && o->val)
            v = strdup(o->val);
    PQconninfoFree(opts);
    return v;
}

static void expect_kw(const db_url *u, const char *kw, const char *want)
{
    char *v = ci_get(u->conninfo, kw);
    if (!want) {
        if (v)
            fail_msg("%s: expected unset, got '%s'", kw, v);
        return;
    }
    if (!v)
        fail_msg("%s: expected '%s', got nothing (conninfo without it)", kw, want);
    if (strcmp(v, want))
        fail_msg("%s: expected '%s', got '%s'", kw, want, v);
    free(v);
}

static void parse_ok(const char *url, db_url *u)
{
    char err[256];
    if (db_url_parse(url, u, err, sizeof err) != 0)
        fail_msg("'%s' did not parse: %s", url, err);
}

static void parse_fails(const char *url, const char *msg_part)
{
    db_url u;
    char err[256] = "";
    assert_int_equal(db_url_parse(url, &u, err, sizeof err), -1);
    if (msg_part && !strstr(err, msg_part))
        fail_msg("'%s': error '%s' lacks '%s'", url, err, msg_part);
    assert_null(u.conninfo);
    assert_null(u.path);
    assert_null(u.display);
}

/* ---- postgres ----------------------------------------------------------------------------- */

static void test_postgres_full(void **state)
{
    (void)state;
    db_url u;
    parse_ok("postgres://user:pass@db.internal:5432/litellm?sslmode=disable", &u);
    assert_int_equal(u.dialect, DB_POSTGRES);
    assert_null(u.path);
    expect_kw(&u, "host", "db.internal");
    expect_kw(&u, "port", "5432");
    expect_kw(&u, "dbname", "litellm");
    expect_kw(&u, "user", "user");
    expect_kw(&u, "password", "pass");
    expect_kw(&u, "sslmode", "disable");
    expect_kw(&u, "connect_timeout", "5");
    expect_kw(&u, "fallback_application_name", "sluice");
    assert_string_equal(u.display, "postgres://user:***@db.internal:5432/litellm?sslmode=disable");
    db_url_free(&u);
    assert_null(u.conninfo);
    db_url_free(&u); /* twice is harmless */

    parse_ok("postgresql://user@localhost/db", &u);
    assert_int_equal(u.dialect, DB_POSTGRES);
    expect_kw(&u, "host", "localhost");
    expect_kw(&u, "port", NULL);
    expect_kw(&u, "password", NULL);
    assert_string_equal(u.display, "postgresql://user@localhost/db");
    db_url_free(&u);

    parse_ok("POSTGRESQL://host", &u); /* scheme case does not matter; everything else optional */
    expect_kw(&u, "host", "host");
    expect_kw(&u, "dbname", NULL);
    expect_kw(&u, "user", NULL);
    db_url_free(&u);
}

static void test_password_special_characters(void **state)
{
    (void)state;
    static const struct {
        const char *url, *password;
    } cases[] = {
        {"postgresql://admin:p!ss@db:5432/x", "p!ss"},
        {"postgresql://admin:p!ss@word@db:5432/x", "p!ss@word"},          /* last '@' wins */
        {"postgresql://admin:p%21ss%40word@db:5432/x", "p!ss@word"},      /* encoded */
        {"postgresql://admin:p%21ss@word@db:5432/x", "p!ss@word"},        /* mixed */
        {"postgresql://admin:a:b:c@db/x", "a:b:c"},                       /* raw ':' */
        {"postgresql://admin:a%3Ab@db/x", "a:b"},
        {"postgresql://admin:sl/ash#hash@db/x", "sl/ash#hash"},           /* raw '/' and '#' */
        {"postgresql://admin:q%3Fmark@db/x?sslmode=require", "q?mark"},   /* '?' must be encoded */
        {"postgresql://admin:100%sure@db/x", "100%sure"},                 /* bare '%' kept */
        {"postgresql://admin:%25%21@db/x", "%!"},
        {"postgresql://admin:it's%20a%20%5C%20'quote'@db/x", "it's a \\ 'quote'"},
        {"postgresql://admin:@@db/x", "@"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        db_url u;
        parse_ok(cases[i].url, &u);
        expect_kw(&u, "password", cases[i].password);
        expect_kw(&u, "user", "admin");
        expect_kw(&u, "host", "db");
        expect_kw(&u, "dbname", "x");
        if (strlen(cases[i].password) > 3 && strstr(u.display, cases[i].password))
            fail_msg("display '%s' shows the password", u.display);
        assert_non_null(strstr(u.display, "admin:***@db"));
        db_url_free(&u);
    }

    db_url u;
    parse_ok("postgresql://admin:@db/x", &u); /* empty password: none */
    expect_kw(&u, "password", NULL);
    assert_string_equal(u.display, "postgresql://admin@db/x");
    db_url_free(&u);

    parse_ok("postgresql://we%40ird%20user:pw@db/x", &u); /* user names decode too */
    expect_kw(&u, "user", "we@ird user");
    db_url_free(&u);
}

static void test_hosts(void **state)
{
    (void)state;
    db_url u;
    parse_ok("postgresql://u@[::1]:5433/db", &u);
    expect_kw(&u, "host", "::1");
    expect_kw(&u, "port", "5433");
    db_url_free(&u);

    parse_ok("postgresql://u@[2001:db8::7]/db", &u);
    expect_kw(&u, "host", "2001:db8::7");
    expect_kw(&u, "port", NULL);
    db_url_free(&u);

    /* unix socket: as a parameter, or percent-encoded in the host position */
    parse_ok("postgresql://u@/db?host=/var/run/postgresql", &u);
    expect_kw(&u, "host", "/var/run/postgresql");
    expect_kw(&u, "dbname", "db");
    db_url_free(&u);
    parse_ok("postgresql://u:pw@%2Fvar%2Frun%2Fpostgresql:5433/db", &u);
    expect_kw(&u, "host", "/var/run/postgresql");
    expect_kw(&u, "port", "5433");
    db_url_free(&u);
    parse_ok("postgresql://u@ignored/db?host=/tmp/sock", &u); /* the parameter overrides */
    expect_kw(&u, "host", "/tmp/sock");
    db_url_free(&u);

    parse_ok("postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write", &u);
    expect_kw(&u, "host", "h1,h2");
    expect_kw(&u, "port", "5432,5433");
    expect_kw(&u, "target_session_attrs", "read-write");
    db_url_free(&u);

    parse_fails("postgresql://u@h:port/db", "invalid port");
    parse_fails("postgresql://u:secret/db", "invalid port"); /* no host: not quoted back */
    parse_fails("postgresql://u@h:0/db", "invalid port");
    parse_fails("postgresql://u@h:65536/db", "invalid port");
    parse_fails("postgresql://u@[::1/db", "']'");
}

static void test_query_parameters(void **state)
{
    (void)state;
    db_url u;
    parse_ok("postgresql://u@h/db?sslmode=verify-full&connect_timeout=10&application_name=gw",
             &u);
    expect_kw(&u, "sslmode", "verify-full");
    expect_kw(&u, "connect_timeout", "10"); /* the default does not override */
    expect_kw(&u, "application_name", "gw");
    db_url_free(&u);

    /* what LiteLLM's CLI and Prisma put on DATABASE_URL: dropped, schema becomes search_path */
    parse_ok("postgresql://u@h/db?connection_limit=10&pool_timeout=60&pgbouncer=true&schema=app",
             &u);
    expect_kw(&u, "connection_limit", NULL);
    expect_kw(&u, "options", "-c search_path=app");
    db_url_free(&u);
    parse_ok("postgresql://u@h/db?options=-c%20statement_timeout%3D5000&schema=my%20app", &u);
    expect_kw(&u, "options", "-c statement_timeout=5000 -c search_path=my\\ app");
    db_url_free(&u);

    /* a password given as a parameter is masked in the display too */
    parse_ok("postgresql://u@h/db?password=s3cr%21t&sslmode=disable", &u);
    expect_kw(&u, "password", "s3cr!t");
    assert_string_equal(u.display, "postgresql://u@h/db?password=***&sslmode=disable");
    db_url_free(&u);

    parse_ok("postgresql://u@h/db?", &u); /* empty query */
    db_url_free(&u);

    parse_fails("postgresql://u@h/db?bogus=1", "unknown parameter 'bogus'");
    parse_fails("postgresql://u@h/db?sslmode", "has no value");

    /* malformed URLs never quote what may be the password */
    static const char *const bad[] = {"postgresql://u:pa?ss3cret@h/db",
                                      "postgresql://u:s3cret/db", "postgresql://u:s3cret?x@h"};
    for (int i = 0; i < 3; i++) {
        char err[256];
        assert_int_equal(db_url_parse(bad[i], &u, err, sizeof err), -1);
        if (strstr(err, "s3cret"))
            fail_msg("'%s': error quotes the password: %s", bad[i], err);
    }
    parse_fails("postgresql://u:pa?ss@h/db", "percent-encode a '?' in the password as %3F");
}

static void test_driver_suffix_refused(void **state)
{
    (void)state;
    static const char *const urls[] = {"postgresql+psycopg://u:secret@h/db",
                                       "postgresql+asyncpg://u:secret@h/db",
                                       "postgres+psycopg2://u:secret@h/db"};
    static const char *const suffix[] = {"psycopg", "asyncpg", "psycopg2"};
    for (int i = 0; i < 3; i++) {
        db_url u;
        char err[256], want[128];
        assert_int_equal(db_url_parse(urls[i], &u, err, sizeof err), -1);
        snprintf(want, sizeof want,
                 "drop the '+%s' driver suffix: sluice speaks PostgreSQL itself", suffix[i]);
        assert_string_equal(err, want);
        assert_null(strstr(err, "secret"));
    }
    parse_fails("sqlite+pysqlite:///x.db", "drop the '+pysqlite' driver suffix");
    parse_fails("mysql://u:secret@h/db", "unsupported database URL scheme 'mysql'");
    db_url u;
    char err[256];
    assert_int_equal(db_url_parse("mysql://u:secret@h/db", &u, err, sizeof err), -1);
    assert_null(strstr(err, "secret"));
}

static void test_conninfo_quoting(void **state)
{
    (void)state;
    char buf[64];
    strcpy(buf, "password=");
    int n = db_conninfo_quote(buf, sizeof buf, strlen(buf), "a'b\\c d");
    assert_int_equal(n, (int)strlen("password='a\\'b\\\\c d'"));
    assert_string_equal(buf, "password='a\\'b\\\\c d'");
    assert_int_equal(db_conninfo_quote(buf, 8, 0, "0123456789"), -1); /* too small */
    strcpy(buf, "x=");
    db_conninfo_quote(buf, sizeof buf, 2, "");
    assert_string_equal(buf, "x=''");

    /* every value survives libpq's own parser, whatever it contains */
    db_url u;
    parse_ok("postgresql://o'brien:%27%5C%20%27%27=x@h/d%20b?application_name=a%27b", &u);
    expect_kw(&u, "user", "o'brien");
    expect_kw(&u, "password", "'\\ ''=x");
    expect_kw(&u, "dbname", "d b");
    expect_kw(&u, "application_name", "a'b");
    db_url_free(&u);
}

/* ---- sqlite ------------------------------------------------------------------------------- */

static void test_sqlite_forms(void **state)
{
    (void)state;
    static const struct {
        const char *url, *path, *display;
    } cases[] = {
        {"sqlite:///var/lib/sluice/sluice.db", "/var/lib/sluice/sluice.db",
         "sqlite:///var/lib/sluice/sluice.db"},
        {"sqlite://data/sluice.db", "data/sluice.db", "sqlite://data/sluice.db"},
        {"sqlite://:memory:", ":memory:", "sqlite://:memory:"},
        {"sqlite:///:memory:", ":memory:", "sqlite://:memory:"},
        {"sqlite://", ":memory:", "sqlite://:memory:"},
        {"sqlite:///tmp/my%20db.db", "/tmp/my db.db", "sqlite:///tmp/my db.db"},
        {"./sluice.db", "./sluice.db", "./sluice.db"},
        {"/abs/file.db", "/abs/file.db", "/abs/file.db"},
        {"relative.db", "relative.db", "relative.db"},
        {"  sqlite:///x.db\n", "/x.db", "sqlite:///x.db"}, /* pasted with whitespace */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        db_url u;
        parse_ok(cases[i].url, &u);
        assert_int_equal(u.dialect, DB_SQLITE);
        assert_null(u.conninfo);
        assert_string_equal(u.path, cases[i].path);
        assert_string_equal(u.display, cases[i].display);
        db_url_free(&u);
    }
    parse_fails("sqlite:///x.db?mode=ro", "no parameters");
    parse_fails("", "empty");
    parse_fails("   ", "empty");
    parse_fails(NULL, "empty");
    parse_fails("postgresql://u:nul%00byte@h/db", "NUL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postgres_full),
        cmocka_unit_test(test_password_special_characters),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_query_parameters),
        cmocka_unit_test(test_driver_suffix_refused),
        cmocka_unit_test(test_conninfo_quoting),
        cmocka_unit_test(test_sqlite_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
