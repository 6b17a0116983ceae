/* Unit tests for upstream/proxy: loopback detection, NO_PROXY matching, proxy choice; and
 * upstream's TLS choice (ssl_verify precedence) and TLS error classes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/proxy.h"
#include "upstream/upstream.h"

static void test_loopback_hosts(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "127.0.0.1",     "127.5.6.7",        "127.255.255.255", "::1",
        "[::1]",         "0:0:0:0:0:0:0:1",  "localhost",       "LOCALHOST",
        "LocalHost",     "localhost.",       "foo.localhost",   "a.b.LOCALHOST",
        "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "::ffff:127.9.8.7",
    };
    static const char *const no[] = {
        "128.0.0.1",      "126.255.255.255", "10.0.0.1",        "0.0.0.0",
        "192.168.1.1",    "example.com",     "localhost.example.com",
        "notlocalhost",   "xlocalhost",      "localhostx",      "localhost.com",
        "::",             "::2",             "::ffff:10.0.0.1", "[::2]",
        "",               "[]",              "127.0.0.1.example.com",
        "fe80::1",
    };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!ups_host_is_loopback(yes[i]))
            fail_msg("'%s' should be loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (ups_host_is_loopback(no[i]))
            fail_msg("'%s' should not be loopback", no[i]);
}

typedef struct {
    const char *no_proxy, *host;
    bool want;
} np_case;

static void test_no_proxy_match(void **state)
{
    (void)state;
    static const np_case cases[] = {
        /* empty lists never match */
        {NULL, "example.com", false},
        {"", "example.com", false},
        {" , ,", "example.com", false},
        /* "*" matches everything */
        {"*", "example.com", true},
        {"*", "10.1.2.3", true},
        {"a.com, *", "b.com", true},
        /* exact names, case-insensitive */
        {"example.com", "example.com", true},
        {"example.com", "EXAMPLE.COM", true},
        {"example.com", "example.org", false},
        /* domain suffixes, with or without the leading dot */
        {".corp.com", "a.corp.com", true},
        {".corp.com", "x.y.corp.com", true},
        {".corp.com", "corp.com", true},
        {".corp.com", "notcorp.com", false},
        {"corp.com", "a.corp.com", true},
        {"corp.com", "notcorp.com", false},
        {"corp.com", "corp.com.evil.net", false},
        {"corp.com", "com", false},
        /* ports in entries are ignored */
        {"corp.com:8080", "a.corp.com", true},
        {"corp.com:8080", "corp.com", true},
        {".corp.com:443", "notcorp.com", false},
        /* IPv4 literals and CIDR blocks */
        {"10.1.2.3", "10.1.2.3", true},
        {"10.1.2.3", "10.1.2.4", false},
        {"10.0.0.0/8", "10.200.3.4", true},
        {"10.0.0.0/8", "11.0.0.1", false},
        {"10.0.0.0/8", "tenten.example", false},
        {"192.168.1.0/24", "192.168.1.77", true},
        {"192.168.1.0/24", "192.168.2.77", false},
        {"172.16.0.0/12", "172.31.255.1", true},
        {"172.16.0.0/12", "172.32.0.1", false},
        {"10.0.0.0/33", "10.0.0.1", false},
        /* IPv6 literals, bracketed or not */
        {"::1", "[::1]", true},
        {"[fd00::1]", "fd00::1", true},
        {"fd00::1", "fd00::2", false},
        /* lists with spaces and commas */
        {"a.com, b.com", "b.com", true},
        {" a.com ,  .b.com ,c.com ", "x.b.com", true},
        {"a.com,,c.com", "c.com", true},
        {"a.com b.com", "b.com", true},
        {"a.com, b.com", "c.com", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool got = ups_no_proxy_match(cases[i].no_proxy, cases[i].host);
        if (got != cases[i].want)
            fail_msg("NO_PROXY '%s' host '%s': got %d, want %d",
                     cases[i].no_proxy ? cases[i].no_proxy : "(null)", cases[i].host, got,
                     cases[i].want);
    }
}

/* ups_proxy_for_url as a plain string comparison (frees the result). */
static void expect_proxy(const ups_proxy_env *e, const char *url, const char *want)
{
    char *got = ups_proxy_for_url(e, url);
    assert_non_null(got);
    if (strcmp(got, want) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: got '%s', want '%s'", url, got, want);
        free(got);
        fail_msg("%s", msg);
    }
    free(got);
}

static void test_loopback_never_proxied(void **state)
{
    (void)state;
    ups_proxy_env e = {.http_proxy = "http://hp:3128",
                       .https_proxy = "http://sp:3128",
                       .all_proxy = "socks5://ap:1080",
                       .no_proxy = ""};
    expect_proxy(&e, "http://127.0.0.1:8000/v1", "");
    expect_proxy(&e, "https://127.0.0.1/v1", "");
    expect_proxy(&e, "http://127.3.2.1:8000", "");
    expect_proxy(&e, "http://localhost:11434/v1", "");
    expect_proxy(&e, "http://LOCALHOST:11434", "");
    expect_proxy(&e, "http://vllm.localhost:8000/v1", "");
    expect_proxy(&e, "http://[::1]:8000/v1", "");
    expect_proxy(&e, "http://[::1]/v1", "");
    expect_proxy(&e, "http://[::ffff:127.0.0.1]:8000/v1", "");
    expect_proxy(&e, "http://localhost", "");
    expect_proxy(&e, "http://127.0.0.1?x=1", "");
    e.no_proxy = NULL;
    expect_proxy(&e, "http://127.0.0.1:8000/v1", "");
    expect_proxy(&e, "https://localhost/v1", "");
}

static void test_scheme_picks_proxy(void **state)
{
    (void)state;
    ups_proxy_env e = {.http_proxy = "http://hp:3128",
                       .https_proxy = "http://sp:3128",
                       .all_proxy = "socks5://ap:1080",
                       .no_proxy = NULL};
    expect_proxy(&e, "https://api.openai.com/v1", "http://sp:3128");
    expect_proxy(&e, "HTTPS://API.OPENAI.COM/v1", "http://sp:3128");
    expect_proxy(&e, "http://vllm.internal:8000/v1", "http://hp:3128");
    expect_proxy(&e, "http://10.0.0.5:8000/v1", "http://hp:3128");
    expect_proxy(&e, "http://[2001:db8::1]:8000/v1", "http://hp:3128");
    expect_proxy(&e, "http://example.com?x=1", "http://hp:3128");

    /* falls back to all_proxy for the scheme that has none */
    e.https_proxy = NULL;
    expect_proxy(&e, "https://api.openai.com/v1", "socks5://ap:1080");
    expect_proxy(&e, "http://vllm.internal:8000/v1", "http://hp:3128");
    e.https_proxy = "http://sp:3128";
    e.http_proxy = NULL;
    expect_proxy(&e, "http://vllm.internal:8000/v1", "socks5://ap:1080");
    expect_proxy(&e, "https://api.openai.com/v1", "http://sp:3128");

    /* nothing configured: direct */
    ups_proxy_env none = {0};
    expect_proxy(&none, "https://api.openai.com/v1", "");
    expect_proxy(&none, "http://vllm.internal:8000/v1", "");

    /* not an http(s) URL: direct */
    expect_proxy(&e, "ftp://files.example.com/", "");
    expect_proxy(&e, "api.openai.com/v1", "");
}

static void test_no_proxy_respected(void **state)
{
    (void)state;
    ups_proxy_env e = {.http_proxy = "http://hp:3128",
                       .https_proxy = "http://sp:3128",
                       .all_proxy = NULL,
                       .no_proxy = "internal, .corp.example,10.0.0.0/8,api.openai.com:443"};
    expect_proxy(&e, "http://vllm.internal:8000/v1", "");
    expect_proxy(&e, "https://llm.corp.example/v1", "");
    expect_proxy(&e, "https://corp.example/v1", "");
    expect_proxy(&e, "http://10.20.30.40:8000/v1", "");
    expect_proxy(&e, "https://api.openai.com/v1", "");
    expect_proxy(&e, "https://api.openai.com:443/v1", "");
    expect_proxy(&e, "https://notcorp.example/v1", "http://sp:3128");
    expect_proxy(&e, "http://11.0.0.1:8000/v1", "http://hp:3128");
    expect_proxy(&e, "https://api.anthropic.com/v1", "http://sp:3128");
    e.no_proxy = "*";
    expect_proxy(&e, "https://api.anthropic.com/v1", "");
}

static void test_userinfo_ignored(void **state)
{
    (void)state;
    ups_proxy_env e = {.http_proxy = "http://hp:3128",
                       .https_proxy = "http://sp:3128",
                       .all_proxy = NULL,
                       .no_proxy = "internal"};
    /* the host is after the userinfo */
    expect_proxy(&e, "http://user:pass@127.0.0.1:8000/v1", "");
    expect_proxy(&e, "http://user@localhost/v1", "");
    expect_proxy(&e, "http://u:p@vllm.internal:8000/v1", "");
    expect_proxy(&e, "https://user:secret@api.openai.com/v1", "http://sp:3128");
    /* a loopback-looking userinfo does not make a remote host loopback */
    expect_proxy(&e, "http://127.0.0.1@evil.example/v1", "http://hp:3128");
    expect_proxy(&e, "http://localhost:8000@evil.example/v1", "http://hp:3128");
    expect_proxy(&e, "http://internal@evil.example/v1", "http://hp:3128");
    /* an @ after the authority (in the path or query) is not userinfo */
    expect_proxy(&e, "http://127.0.0.1:8000/v1/@evil.example", "");
    expect_proxy(&e, "http://127.0.0.1:8000/v1?u=a@evil.example", "");
}

static void test_env_read(void **state)
{
    (void)state;
    static const char *const names[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                        "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unsetenv(names[i]);
    ups_proxy_env e;
    ups_proxy_env_read(&e);
    assert_null(e.http_proxy);
    assert_null(e.https_proxy);
    assert_null(e.all_proxy);
    assert_null(e.no_proxy);

    setenv("HTTP_PROXY", "http://upper:1", 1);
    setenv("https_proxy", "http://lower:2", 1);
    setenv("HTTPS_PROXY", "http://upper:2", 1);
    setenv("ALL_PROXY", "socks5://upper:3", 1);
    setenv("no_proxy", "", 1); /* empty lower case falls back to upper case */
    setenv("NO_PROXY", "corp", 1);
    ups_proxy_env_read(&e);
    assert_string_equal(e.http_proxy, "http://upper:1");
    assert_string_equal(e.https_proxy, "http://lower:2"); /* lower case wins */
    assert_string_equal(e.all_proxy, "socks5://upper:3");
    assert_string_equal(e.no_proxy, "corp");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unsetenv(names[i]);
}

/* ups_tls_choose: a deployment's ssl_verify (-1 = inherit) over the global one, its CA bundle
 * over the global one, and no bundle at all when verification is off. */
static void test_tls_choose(void **state)
{
    (void)state;
    static const struct {
        int dep_verify;
        const char *dep_ca;
        int global_verify;
        const char *global_ca;
        bool insecure;
        const char *ca;
    } cases[] = {
        {-1, NULL, 1, NULL, false, NULL},          /* defaults: verify, system store */
        {-1, NULL, 0, NULL, true, NULL},           /* global off */
        {-1, NULL, 0, "/g.pem", true, NULL},       /* off: a bundle (SSL_CERT_FILE) is moot */
        {-1, NULL, 1, "/g.pem", false, "/g.pem"},  /* global bundle */
        {1, NULL, 0, NULL, false, NULL},           /* deployment on under global off */
        {1, NULL, 0, "/g.pem", false, "/g.pem"},   /* ... still with SSL_CERT_FILE's bundle */
        {1, "/d.pem", 1, "/g.pem", false, "/d.pem"}, /* deployment bundle wins */
        {1, "/d.pem", 0, NULL, false, "/d.pem"},
        {0, NULL, 1, "/g.pem", true, NULL},        /* deployment off under global on */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ups_request r = {.insecure = !cases[i].insecure, .ca_file = "stale"};
        ups_tls_choose(&r, cases[i].dep_verify, cases[i].dep_ca, cases[i].global_verify,
                       cases[i].global_ca);
        if (r.insecure != cases[i].insecure)
            fail_msg("case %zu: insecure %d, want %d", i, r.insecure, cases[i].insecure);
        if (cases[i].ca ? !r.ca_file || strcmp(r.ca_file, cases[i].ca) : r.ca_file != NULL)
            fail_msg("case %zu: ca_file %s, want %s", i, r.ca_file ? r.ca_file : "(null)",
                     cases[i].ca ? cases[i].ca : "(null)");
    }
}

static void test_tls_error_classes(void **state)
{
    (void)state;
    assert_true(ups_tls_cert_error(CURLE_PEER_FAILED_VERIFICATION));
    assert_true(ups_tls_cert_error(CURLE_SSL_CACERT_BADFILE));
    assert_true(ups_tls_error(CURLE_PEER_FAILED_VERIFICATION));
    assert_false(ups_tls_cert_error(CURLE_SSL_CONNECT_ERROR));
    assert_true(ups_tls_error(CURLE_SSL_CONNECT_ERROR));
    static const CURLcode not_tls[] = {CURLE_OK, CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT,
                                       CURLE_COULDNT_RESOLVE_HOST, CURLE_RECV_ERROR,
                                       CURLE_GOT_NOTHING};
    for (size_t i = 0; i < sizeof not_tls / sizeof *not_tls; i++) {
        assert_false(ups_tls_error(not_tls[i]));
        assert_false(ups_tls_cert_error(not_tls[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_hosts),
        cmocka_unit_test(test_no_proxy_match),
        cmocka_unit_test(test_loopback_never_proxied),
        cmocka_unit_test(test_scheme_picks_proxy),
        cmocka_unit_test(test_no_proxy_respected),
        cmocka_unit_test(test_userinfo_ignored),
        cmocka_unit_test(test_env_read),
        cmocka_unit_test(test_tls_choose),
        cmocka_unit_test(test_tls_error_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
