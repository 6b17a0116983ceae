/* Unit tests for upstream/gauth: the RS256 JWT assertion, credential parsing and source
 * resolution, token response parsing, and end to end against an in-process token server and
 * metadata server on 127.0.0.1 (shared refreshes, cached tokens, proactive refresh, errors,
 * backoff). Test keys live in tests/fixtures/gauth/ (made for these tests, never used anywhere). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "upstream/gauth.h"
#include "upstream/gauth_internal.h"
#include "util/mbox.h"

#define FIX "../fixtures/gauth/"
#define SA_EMAIL "sluice-test@sluice-test.iam.gserviceaccount.com"
#define SA_KID "0123456789abcdef0123456789abcdef01234567"
#define META_PATH "/computeMetadata/v1/instance/service-accounts/default/token"

static char g_tmp[64]; /* per-run temp directory */

/* ---- helpers ------------------------------------------------------------------------------ */

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = 0;
    fclose(fp);
    return s;
}

static void spew(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static char *tmp_path(const char *name)
{
    static char buf[8][256];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 256, "%s/%s", g_tmp, name);
    return p;
}

static EVP_PKEY *load_key(const char *path, bool pub)
{
    char *pem = slurp(path);
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = pub ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL)
                      : PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    free(pem);
    assert_non_null(k);
    return k;
}

/* base64url (no padding) → bytes; -1 on characters outside the alphabet. */
static int b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    size_t padded = (n + 3) / 4 * 4;
    char *t = malloc(padded + 1);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=')
            return free(t), -1;
        t[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    for (size_t i = n; i < padded; i++)
        t[i] = '=';
    t[padded] = 0;
    assert_true(cap >= padded / 4 * 3);
    int len = EVP_DecodeBlock(out, (unsigned char *)t, (int)padded);
    free(t);
    if (len < 0)
        return -1;
    return len - (int)(padded - n);
}

/* Splits a JWT, checks the alphabet, verifies RS256 with pub and returns header and claims as
 * parsed JSON. false (with a reason) instead of failing, so the test server can use it too. */
static bool jwt_check(const char *jwt, EVP_PKEY *pub, cJSON **hdr, cJSON **claims,
                      char *why, size_t whylen)
{
    *hdr = *claims = NULL;
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.')) {
        snprintf(why, whylen, "not three parts");
        return false;
    }
    for (const char *p = jwt; *p; p++)
        if (*p == '=' || *p == '+' || *p == '/') {
            snprintf(why, whylen, "character '%c' in a base64url JWT", *p);
            return false;
        }
    unsigned char h[1024], c[2048], sig[1024];
    int hl = b64url_decode(jwt, (size_t)(d1 - jwt), h, sizeof h);
    int cl = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), c, sizeof c);
    int sl = b64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof sig);
    if (hl < 0 || cl < 0 || sl < 0) {
        snprintf(why, whylen, "bad base64url");
        return false;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, (size_t)sl, (const unsigned char *)jwt,
                              (size_t)(d2 - jwt)) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        snprintf(why, whylen, "signature does not verify");
        return false;
    }
    *hdr = cJSON_ParseWithLength((const char *)h, (size_t)hl);
    *claims = cJSON_ParseWithLength((const char *)c, (size_t)cl);
    if (!*hdr || !*claims) {
        cJSON_Delete(*hdr);
        cJSON_Delete(*claims);
        *hdr = *claims = NULL;
        snprintf(why, whylen, "header or claims not JSON");
        return false;
    }
    return true;
}

static const char *jget(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* The fixture service account with token_uri replaced (NULL: removed). Heap string. */
static char *sa_json(const char *token_uri)
{
    char *text = slurp(FIX "service_account.json");
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "token_uri");
    if (token_uri)
        cJSON_AddStringToObject(j, "token_uri", token_uri);
    char *out = cJSON_Print(j);
    cJSON_Delete(j);
    return out;
}

/* A 40-character run from the middle of the fixture key's base64: must never appear in output. */
static const char *key_needle(void)
{
    static char needle[41];
    if (!needle[0]) {
        char *pem = slurp(FIX "test_key.pem");
        char *line2 = strchr(strchr(pem, '\n') + 1, '\n') + 1; /* third line */
        memcpy(needle, line2, 40);
        free(pem);
    }
    return needle;
}

static void assert_no_secrets(const char *msg)
{
    if (strstr(msg, "PRIVATE KEY") || strstr(msg, key_needle()) ||
        strstr(msg, "test-client-secret") || strstr(msg, "test-refresh-token") ||
        strstr(msg, "MII"))
        fail_msg("message leaks secret material: %s", msg);
}

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        const char *h_ = (hay), *n_ = (needle);                                             \
        if (!h_ || !strstr(h_, n_))                                                         \
            fail_msg("expected \"%s\" to contain \"%s\"", h_ ? h_ : "(null)", n_);          \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- JWT ---------------------------------------------------------------------------------- */

static void test_jwt_sign_and_verify(void **state)
{
    (void)state;
    EVP_PKEY *priv = load_key(FIX "test_key.pem", false);
    EVP_PKEY *pub = load_key(FIX "test_key.pub.pem", true);
    char err[256] = "";
    char *jwt = gauth_test_jwt(priv, SA_KID, SA_EMAIL, GAUTH_SCOPE,
                               "https://oauth2.googleapis.com/token", 1700000000LL, err,
                               sizeof err);
    assert_non_null(jwt);
    cJSON *h, *c;
    char why[128];
    if (!jwt_check(jwt, pub, &h, &c, why, sizeof why))
        fail_msg("%s", why);
    assert_string_equal(jget(h, "alg"), "RS256");
    assert_string_equal(jget(h, "typ"), "JWT");
    assert_string_equal(jget(h, "kid"), SA_KID);
    assert_int_equal(cJSON_GetArraySize(h), 3);
    assert_string_equal(jget(c, "iss"), SA_EMAIL);
    assert_string_equal(jget(c, "scope"), "https://www.googleapis.com/auth/cloud-platform");
    assert_string_equal(jget(c, "aud"), "https://oauth2.googleapis.com/token");
    assert_true(jnum(c, "iat") == 1700000000.0);
    assert_true(jnum(c, "exp") == 1700003600.0);
    assert_int_equal(cJSON_GetArraySize(c), 5);
    cJSON_Delete(h);
    cJSON_Delete(c);

    /* a tampered claims part no longer verifies */
    char *dot = strchr(jwt, '.');
    dot[1] = dot[1] == 'A' ? 'B' : 'A';
    assert_false(jwt_check(jwt, pub, &h, &c, why, sizeof why));
    free(jwt);

    /* no kid: no kid member; odd characters in claims stay valid JSON */
    jwt = gauth_test_jwt(priv, NULL, "we\"ird\\iss", GAUTH_SCOPE, "http://127.0.0.1:1/t", 5, err,
                         sizeof err);
    assert_non_null(jwt);
    if (!jwt_check(jwt, pub, &h, &c, why, sizeof why))
        fail_msg("%s", why);
    assert_null(cJSON_GetObjectItemCaseSensitive(h, "kid"));
    assert_string_equal(jget(c, "iss"), "we\"ird\\iss");
    assert_true(jnum(c, "exp") == 3605.0);
    cJSON_Delete(h);
    cJSON_Delete(c);
    free(jwt);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
}

/* ---- credential parsing ------------------------------------------------------------------- */

static void test_parse_service_account(void **state)
{
    (void)state;
    char *text = slurp(FIX "service_account.json");
    gauth_creds c;
    char err[256] = "";
    assert_int_equal(gauth_test_parse_creds(text, strlen(text), "x.json", &c, err, sizeof err), 0);
    assert_int_equal(c.kind, GAUTH_SERVICE_ACCOUNT);
    assert_string_equal(c.client_email, SA_EMAIL);
    assert_string_equal(c.private_key_id, SA_KID);
    assert_string_equal(c.token_uri, "https://oauth2.googleapis.com/token");
    assert_non_null(c.pkey);
    assert_true(EVP_PKEY_is_a(c.pkey, "RSA"));
    gauth_test_creds_free(&c);
    free(text);

    /* token_uri defaults to Google's; a custom one is kept */
    text = sa_json(NULL);
    assert_int_equal(gauth_test_parse_creds(text, strlen(text), "x", &c, err, sizeof err), 0);
    assert_string_equal(c.token_uri, "https://oauth2.googleapis.com/token");
    gauth_test_creds_free(&c);
    free(text);
    text = sa_json("http://127.0.0.1:9/token");
    assert_int_equal(gauth_test_parse_creds(text, strlen(text), "x", &c, err, sizeof err), 0);
    assert_string_equal(c.token_uri, "http://127.0.0.1:9/token");
    gauth_test_creds_free(&c);
    free(text);
}

static void test_parse_authorized_user(void **state)
{
    (void)state;
    char *text = slurp(FIX "authorized_user.json");
    gauth_creds c;
    char err[256] = "";
    assert_int_equal(gauth_test_parse_creds(text, strlen(text), "adc", &c, err, sizeof err), 0);
    assert_int_equal(c.kind, GAUTH_AUTHORIZED_USER);
    assert_string_equal(c.client_id, "123456789-test.apps.googleusercontent.com");
    assert_string_equal(c.client_secret, "test-client-secret-not-real");
    assert_string_equal(c.refresh_token, "1//test-refresh-token-not-real");
    assert_string_equal(c.token_uri, "https://oauth2.googleapis.com/token");
    assert_null(c.pkey);
    gauth_test_creds_free(&c);
    free(text);

    const char *with_uri = "{\"type\":\"authorized_user\",\"client_id\":\"a\",\"client_secret\":"
                           "\"b\",\"refresh_token\":\"c\",\"token_uri\":\"https://t.example/tok\"}";
    assert_int_equal(
        gauth_test_parse_creds(with_uri, strlen(with_uri), "adc", &c, err, sizeof err), 0);
    assert_string_equal(c.token_uri, "https://t.example/tok");
    gauth_test_creds_free(&c);
}

/* A PEM string as a JSON string literal body (newlines escaped). */
static char *json_escape(const char *s)
{
    cJSON *str = cJSON_CreateString(s);
    char *p = cJSON_PrintUnformatted(str);
    cJSON_Delete(str);
    return p;
}

static void test_parse_errors(void **state)
{
    (void)state;
    char *pem = slurp(FIX "test_key.pem");
    char *pem_lit = json_escape(pem);
    /* the same key encrypted with a passphrase, and an EC key: both refused */
    EVP_PKEY *priv = load_key(FIX "test_key.pem", false);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(b, priv, EVP_aes_256_cbc(), NULL, 0, NULL,
                                                   (void *)"passphrase"),
                     1);
    char *enc = NULL;
    long el = BIO_get_mem_data(b, &enc);
    char *enc_pem = strndup(enc, (size_t)el);
    BIO_free(b);
    char *enc_lit = json_escape(enc_pem);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, ec, NULL, NULL, 0, NULL, NULL);
    el = BIO_get_mem_data(b, &enc);
    char *ec_pem = strndup(enc, (size_t)el);
    BIO_free(b);
    char *ec_lit = json_escape(ec_pem);
    /* a truncated real key */
    char *trunc = strdup(pem);
    trunc[strlen(trunc) / 2] = 0;
    char *trunc_lit = json_escape(trunc);

    struct {
        char *json;
        const char *want;
    } cases[] = {
        {strdup(""), "not valid JSON"},
        {strdup("{\"type\":\"service_account\""), "not valid JSON"},
        {NULL, "not valid JSON (error at byte"}, /* key text, then garbage: filled below */
        {strdup("[1,2]"), "not a JSON object"},
        {strdup("{}"), "no \"type\" field"},
        {strdup("{\"type\":42}"), "no \"type\" field"},
        {strdup("{\"type\":\"external_account\"}"),
         "credential type \"external_account\" is not supported"},
        {strdup("{\"type\":\"bad\\n\\u0001type\"}"), "credential type \"bad??type\""},
        {NULL, "\"client_email\" is missing"},
        {strdup("{\"type\":\"service_account\",\"client_email\":\"a@b\"}"),
         "\"private_key\" is missing"},
        {strdup("{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":\"\"}"),
         "\"private_key\" is missing"},
        {strdup("{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":"
                "\"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}"),
         "\"private_key\" is not an unencrypted PEM private key"},
        {NULL, "\"private_key\" is not an unencrypted PEM private key"}, /* truncated */
        {NULL, "\"private_key\" is not an unencrypted PEM private key"}, /* encrypted */
        {NULL, "\"private_key\" is not an RSA key"},                     /* EC */
        {NULL, "\"token_uri\" is not an http(s) URL"},
        {strdup("{\"type\":\"authorized_user\",\"client_secret\":\"test-client-secret\","
                "\"refresh_token\":\"test-refresh-token\"}"),
         "\"client_id\" is missing"},
        {strdup("{\"type\":\"authorized_user\",\"client_id\":\"x\","
                "\"refresh_token\":\"test-refresh-token\"}"),
         "\"client_secret\" is missing"},
        {strdup("{\"type\":\"authorized_user\",\"client_id\":\"x\","
                "\"client_secret\":\"test-client-secret\",\"refresh_token\":7}"),
         "\"refresh_token\" is missing"},
    };
    if (asprintf(&cases[2].json, "{\"type\":\"service_account\",\"private_key\":%s oops}",
                 pem_lit) < 0 ||
        asprintf(&cases[8].json, "{\"type\":\"service_account\",\"private_key\":%s}", pem_lit) <
            0 ||
        asprintf(&cases[12].json,
                 "{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":%s}",
                 trunc_lit) < 0 ||
        asprintf(&cases[13].json,
                 "{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":%s}",
                 enc_lit) < 0 ||
        asprintf(&cases[14].json,
                 "{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":%s}",
                 ec_lit) < 0 ||
        asprintf(&cases[15].json,
                 "{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":%s,"
                 "\"token_uri\":\"ftp://x\"}",
                 pem_lit) < 0)
        fail();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gauth_creds c;
        char err[512] = "";
        int rc = gauth_test_parse_creds(cases[i].json, strlen(cases[i].json), "/etc/sa.json", &c,
                                        err, sizeof err);
        if (rc != -1)
            fail_msg("case %zu: accepted %s", i, cases[i].json);
        if (strncmp(err, "/etc/sa.json: ", 14) != 0)
            fail_msg("case %zu: message does not start with the source: %s", i, err);
        assert_contains(err, cases[i].want);
        assert_no_secrets(err);
        assert_null(c.pkey);
        assert_null(c.client_email);
        free(cases[i].json);
    }
    EVP_PKEY_free(priv);
    EVP_PKEY_free(ec);
    free(pem);
    free(pem_lit);
    free(enc_pem);
    free(enc_lit);
    free(ec_pem);
    free(ec_lit);
    free(trunc);
    free(trunc_lit);
}

/* ---- source resolution (gauth_get) -------------------------------------------------------- */

static void clear_env(void)
{
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    unsetenv("GCE_METADATA_HOST");
    setenv("CLOUDSDK_CONFIG", tmp_path("no-gcloud"), 1); /* does not exist */
}

static void test_get_sources(void **state)
{
    (void)state;
    clear_env();
    char err[512];
    char *sa = slurp(FIX "service_account.json");
    char *au = slurp(FIX "authorized_user.json");
    const char *sa_path = tmp_path("sa.json");
    spew(sa_path, sa);

    /* a path */
    gauth *g1 = gauth_get(sa_path, err, sizeof err);
    assert_non_null(g1);
    char want[512];
    snprintf(want, sizeof want, "service account " SA_EMAIL " (from %s)", sa_path);
    assert_string_equal(gauth_describe(g1), want);
    /* same source, same handle */
    assert_ptr_equal(gauth_get(sa_path, err, sizeof err), g1);
    /* GOOGLE_APPLICATION_CREDENTIALS naming the same file shares it too */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", sa_path, 1);
    assert_ptr_equal(gauth_get(NULL, err, sizeof err), g1);
    assert_ptr_equal(gauth_get("", err, sizeof err), g1);

    /* inline JSON, leading whitespace allowed; deduplicated by content */
    char *inl = NULL;
    assert_true(asprintf(&inl, " \n\t%s", sa) > 0);
    gauth *g2 = gauth_get(inl, err, sizeof err);
    assert_non_null(g2);
    assert_ptr_not_equal(g2, g1);
    assert_string_equal(gauth_describe(g2),
                        "service account " SA_EMAIL " (from inline vertex_credentials)");
    assert_ptr_equal(gauth_get(inl, err, sizeof err), g2);
    assert_ptr_equal(gauth_get(inl + 3, err, sizeof err), g2);
    free(inl);

    /* GOOGLE_APPLICATION_CREDENTIALS, alone */
    const char *au_path = tmp_path("au.json");
    spew(au_path, au);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", au_path, 1);
    gauth *g3 = gauth_get(NULL, err, sizeof err);
    assert_non_null(g3);
    snprintf(want, sizeof want, "authorized user (from GOOGLE_APPLICATION_CREDENTIALS file %s)",
             au_path);
    assert_string_equal(gauth_describe(g3), want);
    /* vertex_credentials wins over the environment */
    assert_ptr_equal(gauth_get(sa_path, err, sizeof err), g1);

    /* ADC file under $CLOUDSDK_CONFIG, then under $HOME/.config/gcloud */
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    char *cfgdir = strdup(tmp_path("gcloud"));
    mkdir(cfgdir, 0700);
    char *adc = NULL;
    assert_true(asprintf(&adc, "%s/application_default_credentials.json", cfgdir) > 0);
    spew(adc, au);
    setenv("CLOUDSDK_CONFIG", cfgdir, 1);
    gauth *g4 = gauth_get(NULL, err, sizeof err);
    assert_non_null(g4);
    snprintf(want, sizeof want, "authorized user (from ADC file %s)", adc);
    assert_string_equal(gauth_describe(g4), want);
    free(adc);
    unsetenv("CLOUDSDK_CONFIG");
    char *home = strdup(tmp_path("home"));
    char *d = NULL;
    assert_true(asprintf(&d, "%s/.config", home) > 0);
    mkdir(home, 0700);
    mkdir(d, 0700);
    free(d);
    assert_true(asprintf(&d, "%s/.config/gcloud", home) > 0);
    mkdir(d, 0700);
    assert_true(asprintf(&adc, "%s/application_default_credentials.json", d) > 0);
    spew(adc, sa);
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", home, 1);
    gauth *g5 = gauth_get(NULL, err, sizeof err);
    assert_non_null(g5);
    snprintf(want, sizeof want, "service account " SA_EMAIL " (from ADC file %s)", adc);
    assert_string_equal(gauth_describe(g5), want);
    /* a broken ADC file is an error, not a silent fall-through to the metadata server */
    spew(adc, "{\"type\":\"service_account\"}");
    assert_null(gauth_get(NULL, err, sizeof err));
    snprintf(want, sizeof want, "ADC file %s: \"client_email\" is missing", adc);
    assert_contains(err, want);
    unlink(adc);
    free(adc);
    free(d);

    /* nothing else: the metadata server */
    gauth *g6 = gauth_get(NULL, err, sizeof err);
    assert_non_null(g6);
    assert_string_equal(gauth_describe(g6), "GCE metadata server");
    assert_ptr_equal(gauth_get(NULL, err, sizeof err), g6);
    setenv("GCE_METADATA_HOST", "127.0.0.1:9", 1);
    gauth *g7 = gauth_get(NULL, err, sizeof err);
    assert_non_null(g7);
    assert_ptr_not_equal(g7, g6);
    assert_string_equal(gauth_describe(g7), "GCE metadata server at 127.0.0.1:9");
    if (old_home)
        setenv("HOME", old_home, 1);
    free(old_home);
    free(home);
    free(cfgdir);
    free(sa);
    free(au);
    clear_env();
    gauth_shutdown();
}

static void test_get_errors(void **state)
{
    (void)state;
    clear_env();
    char err[512];
    /* unreadable: missing file, a directory */
    const char *missing = tmp_path("nope.json");
    assert_null(gauth_get(missing, err, sizeof err));
    char want[512];
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", missing);
    assert_string_equal(err, want);
    assert_null(gauth_get(g_tmp, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot read: not a regular file", g_tmp);
    assert_string_equal(err, want);
    /* bad JSON in a file: named by path, no key text */
    char *pem = slurp(FIX "test_key.pem");
    char *lit = json_escape(pem);
    char *bad = NULL;
    assert_true(asprintf(&bad, "{\"type\":\"service_account\",\"private_key\":%s,}", lit) > 0);
    const char *p = tmp_path("bad.json");
    spew(p, bad);
    assert_null(gauth_get(p, err, sizeof err));
    snprintf(want, sizeof want, "%s: not valid JSON", p);
    assert_contains(err, want);
    assert_no_secrets(err);
    /* the same inline */
    assert_null(gauth_get(bad, err, sizeof err));
    assert_contains(err, "inline vertex_credentials: not valid JSON");
    assert_no_secrets(err);
    free(bad);
    /* unparsable private key, inline */
    assert_true(asprintf(&bad,
                         "{\"type\":\"service_account\",\"client_email\":\"a@b\","
                         "\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nMIIsecret\\n\"}") > 0);
    assert_null(gauth_get(bad, err, sizeof err));
    assert_string_equal(err, "inline vertex_credentials: \"private_key\" is not an unencrypted PEM "
                             "private key");
    free(bad);
    /* unknown type via GOOGLE_APPLICATION_CREDENTIALS */
    p = tmp_path("ext.json");
    spew(p, "{\"type\":\"external_account\",\"audience\":\"x\"}");
    setenv("GOOGLE_APPLICATION_CREDENTIALS", p, 1);
    assert_null(gauth_get(NULL, err, sizeof err));
    snprintf(want, sizeof want, "GOOGLE_APPLICATION_CREDENTIALS file %s: credential type", p);
    assert_contains(err, want);
    /* a missing GOOGLE_APPLICATION_CREDENTIALS file is an error too */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", missing, 1);
    assert_null(gauth_get(NULL, err, sizeof err));
    assert_contains(err, "GOOGLE_APPLICATION_CREDENTIALS file");
    assert_contains(err, "No such file");
    free(lit);
    free(pem);
    clear_env();
    gauth_shutdown();
}

/* ---- token responses ---------------------------------------------------------------------- */

static void test_parse_token_response(void **state)
{
    (void)state;
    char *tok;
    long long ei;
    char err[512];
    const char *ok = "{\"access_token\":\"ya29.abc-DEF_123\",\"expires_in\":3599,"
                     "\"token_type\":\"Bearer\"}";
    assert_int_equal(gauth_test_parse_token(ok, strlen(ok), 200, &tok, &ei, err, sizeof err), 0);
    assert_string_equal(tok, "ya29.abc-DEF_123");
    assert_int_equal(ei, 3599);
    free(tok);
    const char *str_exp =
        "{\"access_token\":\"t\",\"expires_in\":\"120\",\"token_type\":\"bearer\"}";
    assert_int_equal(
        gauth_test_parse_token(str_exp, strlen(str_exp), 200, &tok, &ei, err, sizeof err), 0);
    assert_int_equal(ei, 120);
    free(tok);
    const char *no_exp = "{\"access_token\":\"t\"}";
    assert_int_equal(
        gauth_test_parse_token(no_exp, strlen(no_exp), 200, &tok, &ei, err, sizeof err), 0);
    assert_int_equal(ei, 3600);
    free(tok);

    struct {
        const char *body;
        long status;
        const char *want;
    } bad[] = {
        {"{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}", 400,
         "HTTP 400: invalid_grant: Invalid JWT Signature."},
        {"{\"error\":\"invalid_client\"}", 401, "HTTP 401: invalid_client"},
        {"{\"error\":{\"code\":403,\"message\":\"Permission denied\",\"status\":"
         "\"PERMISSION_DENIED\"}}",
         403, "HTTP 403: PERMISSION_DENIED: Permission denied"},
        {"<html>Service Unavailable</html>", 503, "HTTP 503"},
        {"", 500, "HTTP 500"},
        {"{\"error\":\"x\\ny\",\"error_description\":\"line\\r\\nbreak\"}", 400,
         "HTTP 400: x?y: line??break"},
        {"not json", 200, "not a JSON object"},
        {"{\"expires_in\":3600}", 200, "no usable \"access_token\""},
        {"{\"access_token\":\"\"}", 200, "no usable \"access_token\""},
        {"{\"access_token\":\"a b\"}", 200, "no usable \"access_token\""},
        {"{\"access_token\":\"ab\\r\\nX-Injected: 1\"}", 200, "no usable \"access_token\""},
        {"{\"access_token\":\"ab\",\"token_type\":\"mac\"}", 200, "token_type \"mac\""},
        {"{\"access_token\":\"ab\",\"expires_in\":-5}", 200, "\"expires_in\""},
        {"{\"access_token\":\"ab\",\"expires_in\":\"soon\"}", 200, "\"expires_in\""},
        {"{\"access_token\":\"ab\",\"expires_in\":true}", 200, "\"expires_in\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tok = (char *)"unchanged";
        err[0] = 0;
        int rc = gauth_test_parse_token(bad[i].body, strlen(bad[i].body), bad[i].status, &tok,
                                        &ei, err, sizeof err);
        if (rc != -1)
            fail_msg("case %zu accepted", i);
        assert_null(tok);
        assert_contains(err, bad[i].want);
    }
}

/* ---- an in-process token server ----------------------------------------------------------- */

typedef struct {
    int fd, port;
    pthread_t th;
    atomic_bool stop;
    EVP_PKEY *pub;
    pthread_mutex_t mu;
    /* behaviour */
    int fail_next;      /* answer this many requests with 400 invalid_grant */
    int delay_ms;       /* before answering */
    long long expires_in;
    /* observations */
    int requests, jwt_ok, refresh_ok, meta_ok, bad;
    char aud[256];
    char last_problem[256];
} tsrv;

static void url_decode(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '%' && s[1] && s[2]) {
            char hx[3] = {s[1], s[2], 0};
            *o++ = (char)strtol(hx, NULL, 16);
            s += 2;
        } else {
            *o++ = *s == '+' ? ' ' : *s;
        }
    }
    *o = 0;
}

/* The decoded value of name in a form body, or NULL. Heap string. */
static char *form_get(const char *body, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = body; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t l = amp ? (size_t)(amp - p) : strlen(p);
        if (l > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            char *v = strndup(p + nl + 1, l - nl - 1);
            url_decode(v);
            return v;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void srv_problem(tsrv *s, const char *what)
{
    s->bad++;
    snprintf(s->last_problem, sizeof s->last_problem, "%s", what);
}

/* Checks one request (under s->mu); returns the status to answer. */
static int srv_check(tsrv *s, const char *method, const char *path, const char *headers,
                     const char *body)
{
    if (strcmp(method, "GET") == 0) {
        if (strcmp(path, META_PATH) != 0)
            srv_problem(s, "metadata: wrong path");
        else if (!strcasestr(headers, "\r\nMetadata-Flavor: Google\r\n"))
            srv_problem(s, "metadata: no Metadata-Flavor header");
        else
            s->meta_ok++;
        return 200;
    }
    if (!strcasestr(headers, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"))
        srv_problem(s, "POST without a form content type");
    char *gt = form_get(body, "grant_type");
    if (gt && strcmp(gt, "urn:ietf:params:oauth:grant-type:jwt-bearer") == 0) {
        char *a = form_get(body, "assertion");
        cJSON *h = NULL, *c = NULL;
        char why[128];
        if (!a || !jwt_check(a, s->pub, &h, &c, why, sizeof why))
            srv_problem(s, a ? why : "no assertion");
        else if (!jget(h, "kid") || strcmp(jget(h, "kid"), SA_KID) != 0 ||
                 !jget(c, "iss") || strcmp(jget(c, "iss"), SA_EMAIL) != 0 ||
                 !jget(c, "aud") || strcmp(jget(c, "aud"), s->aud) != 0 ||
                 !jget(c, "scope") ||
                 strcmp(jget(c, "scope"), "https://www.googleapis.com/auth/cloud-platform") != 0 ||
                 jnum(c, "exp") - jnum(c, "iat") != 3600 ||
                 fabs(jnum(c, "iat") - (double)time(NULL)) > 60)
            srv_problem(s, "unexpected JWT claims");
        else
            s->jwt_ok++;
        cJSON_Delete(h);
        cJSON_Delete(c);
        free(a);
    } else if (gt && strcmp(gt, "refresh_token") == 0) {
        char *id = form_get(body, "client_id"), *sec = form_get(body, "client_secret"),
             *rt = form_get(body, "refresh_token");
        if (id && sec && rt && strcmp(id, "123456789-test.apps.googleusercontent.com") == 0 &&
            strcmp(sec, "test-client-secret-not-real") == 0 &&
            strcmp(rt, "1//test-refresh-token-not-real") == 0)
            s->refresh_ok++;
        else
            srv_problem(s, "bad refresh_token grant");
        free(id);
        free(sec);
        free(rt);
    } else {
        srv_problem(s, "unknown grant_type");
    }
    free(gt);
    if (s->fail_next > 0) {
        s->fail_next--;
        return 400;
    }
    return 200;
}

static void srv_handle(tsrv *s, int c)
{
    char buf[16384];
    size_t n = 0;
    char *eoh = NULL;
    double deadline = now_s() + 5;
    while (!eoh && n + 1 < sizeof buf && now_s() < deadline) {
        ssize_t r = recv(c, buf + n, sizeof buf - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
        buf[n] = 0;
        eoh = strstr(buf, "\r\n\r\n");
    }
    if (!eoh)
        return;
    size_t clen = 0;
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < eoh)
        clen = strtoul(cl + 17, NULL, 10);
    size_t hdr_len = (size_t)(eoh + 4 - buf);
    while (n < hdr_len + clen && n + 1 < sizeof buf) {
        ssize_t r = recv(c, buf + n, sizeof buf - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
    }
    buf[n] = 0;
    eoh[2] = 0; /* headers end with their last \r\n */
    char method[8] = "", path[256] = "";
    sscanf(buf, "%7s %255s", method, path);
    pthread_mutex_lock(&s->mu);
    s->requests++;
    int status = srv_check(s, method, path, buf, buf + hdr_len);
    int nreq = s->requests, delay = s->delay_ms;
    long long ei = s->expires_in;
    pthread_mutex_unlock(&s->mu);
    for (int t = 0; t < delay && !atomic_load(&s->stop); t += 5)
        sleep_ms(5);
    char body[256], resp[512];
    if (status == 200)
        snprintf(body, sizeof body,
                 "{\"access_token\":\"tok-%d\",\"expires_in\":%lld,\"token_type\":\"Bearer\"}",
                 nreq, ei);
    else
        snprintf(body, sizeof body,
                 "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}");
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                      "%zu\r\nConnection: close\r\n\r\n%s",
                      status, status == 200 ? "OK" : "Bad Request", strlen(body), body);
    if (send(c, resp, (size_t)rl, MSG_NOSIGNAL) < 0) {
    }
}

static void *srv_main(void *arg)
{
    tsrv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pf = {.fd = s->fd, .events = POLLIN};
        if (poll(&pf, 1, 20) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        srv_handle(s, c);
        close(c);
    }
    return NULL;
}

static tsrv *srv_start(void)
{
    tsrv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    s->pub = load_key(FIX "test_key.pub.pem", true);
    s->expires_in = 3600;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 64), 0);
    socklen_t al = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    snprintf(s->aud, sizeof s->aud, "http://127.0.0.1:%d/token", s->port);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

static void srv_stop(tsrv *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    close(s->fd);
    if (s->bad)
        fail_msg("token server saw %d bad request(s), last: %s", s->bad, s->last_problem);
    EVP_PKEY_free(s->pub);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void srv_set(tsrv *s, int *field, int v)
{
    pthread_mutex_lock(&s->mu);
    *field = v;
    pthread_mutex_unlock(&s->mu);
}

static int srv_get(tsrv *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* A temp credentials file for the fixture service account, token_uri pointing at s. */
static char *sa_file(tsrv *s, const char *name)
{
    char *text = sa_json(s->aud);
    char *p = strdup(tmp_path(name));
    spew(p, text);
    free(text);
    return p;
}

/* ---- a "worker": its own event_base and mailbox ------------------------------------------- */

typedef struct {
    struct event_base *base;
    mbox *mb;
    struct event *tick;
    int immediate, queued, failed_queue;
    int got_token, got_error;
    char first_token[64], first_error[512];
    bool mixed; /* callbacks disagreed on the token */
} worker;

static void on_token(void *arg, const char *token, const char *error)
{
    worker *w = arg;
    if (token) {
        if (!w->got_token++)
            snprintf(w->first_token, sizeof w->first_token, "%s", token);
        else if (strcmp(w->first_token, token) != 0)
            w->mixed = true;
    } else {
        assert_non_null(error);
        if (!w->got_error++)
            snprintf(w->first_error, sizeof w->first_error, "%s", error);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static void worker_init(worker *w)
{
    memset(w, 0, sizeof *w);
    w->base = event_base_new();
    assert_non_null(w->base);
    w->mb = mbox_new(w->base);
    assert_non_null(w->mb);
    w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 20000};
    event_add(w->tick, &tv);
}

static void worker_free(worker *w)
{
    event_free(w->tick);
    mbox_free(w->mb);
    event_base_free(w->base);
}

/* Runs w's loop until every queued request has its callback (or 5 s pass). */
static void worker_drain(worker *w)
{
    double deadline = now_s() + 5;
    while (w->got_token + w->got_error < w->queued && now_s() < deadline)
        event_base_loop(w->base, EVLOOP_ONCE);
}

/* n gauth_token calls; immediate answers must carry want_cached (when not NULL). */
static void worker_ask(worker *w, gauth *g, int n, const char *want_cached)
{
    for (int i = 0; i < n; i++) {
        char buf[128] = "";
        int rc = gauth_token(g, w->mb, on_token, w, buf, sizeof buf);
        if (rc == 1) {
            w->immediate++;
            if (want_cached && strcmp(buf, want_cached) != 0)
                w->mixed = true;
        } else if (rc == 0) {
            w->queued++;
        } else {
            w->failed_queue++;
        }
    }
}

/* Mailboxes are freed only after gauth_shutdown has joined the refresh thread: mbox_post writes
 * the eventfd after releasing the mailbox lock, so a worker that freed its mailbox as soon as its
 * last callback ran could race the poster's write. The helper threads' workers wait here. */
static worker *g_dead[64];
static int g_ndead;
static pthread_mutex_t g_dead_mu = PTHREAD_MUTEX_INITIALIZER;

static void bury_workers(void)
{
    for (int i = 0; i < g_ndead; i++) {
        worker_free(g_dead[i]);
        free(g_dead[i]);
    }
    g_ndead = 0;
}

typedef struct {
    worker *w;
    gauth *g;
    int n;
    pthread_barrier_t *bar;
} ask_job;

static void *ask_thread(void *arg)
{
    ask_job *j = arg;
    pthread_barrier_wait(j->bar);
    worker_ask(j->w, j->g, j->n, NULL);
    worker_drain(j->w);
    return NULL;
}

/* Two threads ask for g's token n times each, concurrently. */
static void ask_concurrently(gauth *g, int n, ask_job jobs[2])
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].g = g;
        jobs[i].n = n;
        jobs[i].bar = &bar;
        jobs[i].w = malloc(sizeof(worker));
        assert_non_null(jobs[i].w);
        worker_init(jobs[i].w);
        pthread_mutex_lock(&g_dead_mu);
        assert_true(g_ndead < 64);
        g_dead[g_ndead++] = jobs[i].w;
        pthread_mutex_unlock(&g_dead_mu);
        assert_int_equal(pthread_create(&th[i], NULL, ask_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
}

static bool wait_for(tsrv *s, const int *field, int want, double secs)
{
    double deadline = now_s() + secs;
    while (srv_get(s, field) < want && now_s() < deadline)
        sleep_ms(5);
    return srv_get(s, field) >= want;
}

/* ---- end to end ----------------------------------------------------------------------------- */

static void test_e2e_service_account(void **state)
{
    (void)state;
    clear_env();
    tsrv *s = srv_start();
    /* long enough for every request below to queue behind one refresh */
    srv_set(s, &s->delay_ms, 300);
    char *path = sa_file(s, "e2e-sa.json");
    char err[512];
    gauth *g = gauth_get(path, err, sizeof err);
    if (!g)
        fail_msg("%s", err);

    /* round 1: 2 × 50 requests, nothing cached: one refresh, everyone gets its token */
    ask_job jobs[2];
    ask_concurrently(g, 50, jobs);
    for (int i = 0; i < 2; i++) {
        worker *w = jobs[i].w;
        assert_int_equal(w->failed_queue, 0);
        assert_int_equal(w->immediate, 0);
        assert_int_equal(w->queued, 50);
        assert_int_equal(w->got_token, 50);
        assert_int_equal(w->got_error, 0);
        assert_false(w->mixed);
        assert_string_equal(w->first_token, "tok-1");
    }
    assert_int_equal(srv_get(s, &s->requests), 1);
    assert_int_equal(srv_get(s, &s->jwt_ok), 1);

    /* an idle source is not refreshed ahead of time: nobody asked since tok-1 was stored */
    gauth_test_advance(3600 - 250);
    sleep_ms(100);
    assert_int_equal(srv_get(s, &s->requests), 1);

    /* round 2: tok-1 has 250 s left: answered at once from the cache, and this traffic makes
     * the thread refresh it in the background (less than 5 minutes left), so nobody waits */
    srv_set(s, &s->delay_ms, 0);
    ask_concurrently(g, 50, jobs);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i].w->immediate, 50);
        assert_int_equal(jobs[i].w->queued, 0);
        assert_int_equal(jobs[i].w->failed_queue, 0);
    }
    worker w;
    worker_init(&w);
    worker_ask(&w, g, 1, NULL);
    assert_int_equal(w.immediate, 1);
    /* a buffer too small for the token is refused, not truncated */
    char tiny[4];
    assert_int_equal(gauth_token(g, w.mb, on_token, &w, tiny, sizeof tiny), -1);
    assert_true(wait_for(s, &s->requests, 2, 3));
    double deadline = now_s() + 3;
    char buf[128] = "";
    while (now_s() < deadline) {
        assert_int_equal(gauth_token(g, w.mb, on_token, &w, buf, sizeof buf), 1);
        if (strcmp(buf, "tok-2") == 0)
            break;
        assert_string_equal(buf, "tok-1");
        sleep_ms(5);
    }
    assert_string_equal(buf, "tok-2");
    assert_int_equal(srv_get(s, &s->jwt_ok), 2);
    sleep_ms(50);
    assert_int_equal(srv_get(s, &s->requests), 2);

    /* a token with less than a minute left is not handed out: requests wait for a new one,
     * sharing one refresh whether they or the thread's own schedule started it */
    srv_set(s, &s->delay_ms, 200);
    gauth_test_advance(3600);
    worker_ask(&w, g, 3, NULL);
    assert_int_equal(w.queued, 3);
    worker_drain(&w);
    assert_int_equal(w.got_token, 3);
    assert_int_equal(w.got_error, 0);
    assert_string_equal(w.first_token, "tok-3");
    assert_false(w.mixed);
    assert_int_equal(srv_get(s, &s->requests), 3);

    gauth_shutdown();
    bury_workers();
    worker_free(&w);
    unlink(path);
    free(path);
    srv_stop(s);
}

static void test_e2e_error_and_backoff(void **state)
{
    (void)state;
    clear_env();
    tsrv *s = srv_start();
    srv_set(s, &s->fail_next, 1);
    char *path = sa_file(s, "e2e-err.json");
    char err[512];
    gauth *g = gauth_get(path, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    worker w;
    worker_init(&w);
    worker_ask(&w, g, 5, NULL);
    assert_int_equal(w.queued, 5);
    worker_drain(&w);
    assert_int_equal(w.got_error, 5);
    assert_int_equal(w.got_token, 0);
    assert_contains(w.first_error, "service account " SA_EMAIL);
    assert_contains(w.first_error, path);
    assert_contains(w.first_error, "HTTP 400: invalid_grant: Invalid JWT Signature.");
    assert_no_secrets(w.first_error);
    assert_int_equal(srv_get(s, &s->requests), 1);

    /* the next request waits out the 1 s backoff, then gets the retry's token */
    worker_ask(&w, g, 2, NULL);
    assert_int_equal(w.queued, 7);
    sleep_ms(150);
    assert_int_equal(srv_get(s, &s->requests), 1); /* still backing off */
    gauth_test_advance(1.5);
    worker_drain(&w);
    assert_int_equal(w.got_token, 2);
    assert_string_equal(w.first_token, "tok-2");
    assert_int_equal(srv_get(s, &s->requests), 2);
    gauth_shutdown();
    bury_workers();
    worker_free(&w);
    unlink(path);
    free(path);
    srv_stop(s);
}

/* A background refresh that fails leaves the cached token in service and is retried after the
 * backoff, with nobody waiting. */
static void test_e2e_proactive_failure(void **state)
{
    (void)state;
    clear_env();
    tsrv *s = srv_start();
    char *path = sa_file(s, "e2e-proactive.json");
    char err[512];
    gauth *g = gauth_get(path, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    worker w;
    worker_init(&w);
    worker_ask(&w, g, 1, NULL);
    worker_drain(&w);
    assert_string_equal(w.first_token, "tok-1");
    srv_set(s, &s->fail_next, 1);
    gauth_test_advance(3600 - 200);
    worker_ask(&w, g, 1, "tok-1"); /* in use: the thread refreshes, and fails */
    assert_int_equal(w.immediate, 1);
    assert_true(wait_for(s, &s->requests, 2, 3));
    sleep_ms(50);
    worker_ask(&w, g, 5, "tok-1"); /* still served */
    assert_int_equal(w.immediate, 6);
    assert_int_equal(w.got_error, 0);
    assert_int_equal(srv_get(s, &s->requests), 2);
    gauth_test_advance(1.5); /* past the 1 s backoff */
    assert_true(wait_for(s, &s->requests, 3, 3));
    double deadline = now_s() + 3;
    char buf[64] = "";
    while (now_s() < deadline && strcmp(buf, "tok-3") != 0) {
        assert_int_equal(gauth_token(g, w.mb, on_token, &w, buf, sizeof buf), 1);
        sleep_ms(5);
    }
    assert_string_equal(buf, "tok-3");
    assert_false(w.mixed);
    gauth_shutdown();
    worker_free(&w);
    unlink(path);
    free(path);
    srv_stop(s);
}

static void test_e2e_connection_refused(void **state)
{
    (void)state;
    clear_env();
    /* a port nobody listens on */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char uri[64];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/token", ntohs(a.sin_port));
    char *text = sa_json(uri);
    char err[512];
    gauth *g = gauth_get(text, err, sizeof err);
    free(text);
    assert_non_null(g);
    worker w;
    worker_init(&w);
    worker_ask(&w, g, 1, NULL);
    worker_drain(&w);
    assert_int_equal(w.got_error, 1);
    assert_contains(w.first_error, "(from inline vertex_credentials)");
    assert_contains(w.first_error, uri);
    assert_contains(w.first_error, "failed");
    gauth_shutdown();
    bury_workers();
    worker_free(&w);
}

static void test_e2e_authorized_user(void **state)
{
    (void)state;
    clear_env();
    tsrv *s = srv_start();
    char *au = slurp(FIX "authorized_user.json");
    cJSON *j = cJSON_Parse(au);
    free(au);
    cJSON_AddStringToObject(j, "token_uri", s->aud);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    const char *p = tmp_path("e2e-au.json");
    spew(p, text);
    free(text);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", p, 1);
    char err[512];
    gauth *g = gauth_get(NULL, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    worker w;
    worker_init(&w);
    worker_ask(&w, g, 3, NULL);
    worker_drain(&w);
    assert_int_equal(w.got_token, 3);
    assert_string_equal(w.first_token, "tok-1");
    assert_int_equal(srv_get(s, &s->refresh_ok), 1);
    assert_int_equal(srv_get(s, &s->requests), 1);
    gauth_shutdown();
    bury_workers();
    worker_free(&w);
    unlink(p);
    clear_env();
    srv_stop(s);
}

static void test_e2e_metadata_server(void **state)
{
    (void)state;
    clear_env();
    tsrv *s = srv_start();
    srv_set(s, &s->delay_ms, 100);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", s->port);
    setenv("GCE_METADATA_HOST", host, 1);
    char err[512];
    gauth *g = gauth_get(NULL, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    char want[128];
    snprintf(want, sizeof want, "GCE metadata server at %s", host);
    assert_string_equal(gauth_describe(g), want);
    ask_job jobs[2];
    ask_concurrently(g, 20, jobs);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i].w->got_token, jobs[i].w->queued);
        assert_int_equal(jobs[i].w->queued + jobs[i].w->immediate, 20);
        if (jobs[i].w->queued)
            assert_string_equal(jobs[i].w->first_token, "tok-1");
        assert_false(jobs[i].w->mixed);
    }
    assert_int_equal(srv_get(s, &s->meta_ok), 1);
    assert_int_equal(srv_get(s, &s->requests), 1);
    gauth_shutdown();
    bury_workers();
    clear_env();
    srv_stop(s);
}

/* gauth_shutdown with waiters queued and a refresh in flight: no callbacks, nothing leaks, and
 * it does not wait out the server. */
static void test_shutdown_in_flight(void **state)
{
    (void)state;
    clear_env();
    tsrv *s = srv_start();
    srv_set(s, &s->delay_ms, 1500);
    char *path = sa_file(s, "e2e-shutdown.json");
    char err[512];
    gauth *g = gauth_get(path, err, sizeof err);
    assert_non_null(g);
    worker w;
    worker_init(&w);
    worker_ask(&w, g, 4, NULL);
    assert_true(wait_for(s, &s->requests, 1, 3));
    double t0 = now_s();
    gauth_shutdown();
    bury_workers();
    assert_true(now_s() - t0 < 0.5);
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    assert_int_equal(w.got_token + w.got_error, 0);
    worker_free(&w);
    unlink(path);
    free(path);
    srv_stop(s);
}

/* ---- main ----------------------------------------------------------------------------------- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int group_setup(void **state)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/sluice-gauth-XXXXXX");
    if (!mkdtemp(g_tmp))
        return -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* loopback is never proxied anyway; keep the environment out of the picture regardless */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    return 0;
}

static int group_teardown(void **state)
{
    gauth_shutdown();
    bury_workers();
    nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_sign_and_verify),
        cmocka_unit_test(test_parse_service_account),
        cmocka_unit_test(test_parse_authorized_user),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_get_sources),
        cmocka_unit_test(test_get_errors),
        cmocka_unit_test(test_parse_token_response),
        cmocka_unit_test(test_e2e_service_account),
        cmocka_unit_test(test_e2e_error_and_backoff),
        cmocka_unit_test(test_e2e_proactive_failure),
        cmocka_unit_test(test_e2e_connection_refused),
        cmocka_unit_test(test_e2e_authorized_user),
        cmocka_unit_test(test_e2e_metadata_server),
        cmocka_unit_test(test_shutdown_in_flight),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
