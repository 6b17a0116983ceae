/* fuzz_gauth — the pure parsers behind Google OAuth (upstream/gauth_internal.h) and the proxy
 * decision (upstream/proxy.h), all on one input:
 *   the payload as a credentials file (gauth_test_parse_creds) and as a token endpoint answer
 *   (gauth_test_parse_token, HTTP status picked by flags);
 *   the payload split at '\n' into HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY and a URL, for
 *   ups_proxy_for_url, ups_no_proxy_match and ups_host_is_loopback.
 * Oracles: parsed credentials have the fields their kind needs; error messages do not depend on
 * the bytes of a secret (private_key, client_secret, refresh_token, access_token); a token is
 * fit for an Authorization header; the proxy answer is "" or one of the configured proxies, and
 * a URL whose host libcurl resolves to loopback is never proxied (the promise in proxy.h). */
#include "fuzz_common.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <strings.h>

#include "upstream/gauth_internal.h"
#include "upstream/proxy.h"

static const long statuses[] = {200, 200, 200, 201, 400, 401, 403, 500};

/* (private_key is left out: changing its bytes changes what kind of key it is, and saying that
 * it is not an RSA PEM key is a fair thing for a message to say.) */
static const char *const secret_keys[] = {"client_secret", "refresh_token", "access_token",
                                          "id_token"};

/* A copy of j with every secret string replaced by one of the same length and shape class
 * (letters stay letters, digits digits, the rest unchanged), or NULL when j holds no secret. */
static cJSON *redacted(const cJSON *j)
{
    if (!cJSON_IsObject(j))
        return NULL;
    cJSON *c = NULL;
    for (size_t i = 0; i < sizeof secret_keys / sizeof *secret_keys; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, secret_keys[i]);
        if (!cJSON_IsString(v) || !v->valuestring || !v->valuestring[0])
            continue;
        if (!c)
            c = cJSON_Duplicate(j, 1);
        char *r = strdup(v->valuestring);
        for (char *p = r; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)('a' + (*p - 'a' + 7) % 26);
            else if (*p >= 'A' && *p <= 'Z')
                *p = (char)('A' + (*p - 'A' + 7) % 26);
            else if (*p >= '0' && *p <= '9')
                *p = (char)('0' + (*p - '0' + 3) % 10);
        cJSON_ReplaceItemInObjectCaseSensitive(c, secret_keys[i], cJSON_CreateString(r));
        free(r);
    }
    return c;
}

/* Error messages must not carry key material: the parser's message for the input (serialised
 * by cJSON) and for the same input with its secrets changed must be equal whenever both fail. A
 * message that differs says something about a secret's bytes. */
static void check_no_secret(const cJSON *j, long status)
{
    cJSON *r = redacted(j);
    if (!r)
        return;
    char *a = cJSON_PrintUnformatted(j), *b = cJSON_PrintUnformatted(r);
    FZ_CHECK(a && b, "cJSON_PrintUnformatted");
    char ea[512] = "", eb[512] = "";
    gauth_creds ca, cb;
    int ra = gauth_test_parse_creds(a, strlen(a), "s.json", &ca, ea, sizeof ea);
    int rb = gauth_test_parse_creds(b, strlen(b), "s.json", &cb, eb, sizeof eb);
    if (ra < 0 && rb < 0 && strcmp(ea, eb) != 0) {
        fz_dump("input", a, strlen(a));
        fz_fail("parse_creds error depends on a secret's bytes:\n  %s\n  %s", ea, eb);
    }
    gauth_test_creds_free(&ca);
    gauth_test_creds_free(&cb);
    char *ta = NULL, *tb = NULL;
    long long x;
    ea[0] = eb[0] = 0;
    ra = gauth_test_parse_token(a, strlen(a), status, &ta, &x, ea, sizeof ea);
    rb = gauth_test_parse_token(b, strlen(b), status, &tb, &x, eb, sizeof eb);
    if (ra < 0 && rb < 0 && strcmp(ea, eb) != 0) {
        fz_dump("input", a, strlen(a));
        fz_fail("parse_token error depends on a secret's bytes:\n  %s\n  %s", ea, eb);
    }
    free(ta);
    free(tb);
    free(a);
    free(b);
    cJSON_Delete(r);
}

static void creds(const fz_input *in)
{
    gauth_creds c;
    char err[512];
    err[0] = 0;
    int rc = gauth_test_parse_creds(in->p, in->n, "fuzz.json", &c, err, sizeof err);
    FZ_CHECK(rc == 0 || rc == -1, "parse_creds returned %d", rc);
    if (rc == 0) {
        FZ_CHECK(c.token_uri != NULL, "credentials without token_uri");
        if (c.kind == GAUTH_SERVICE_ACCOUNT)
            FZ_CHECK(c.client_email && c.pkey, "service account without email or key");
        else if (c.kind == GAUTH_AUTHORIZED_USER)
            FZ_CHECK(c.client_id && c.client_secret && c.refresh_token,
                     "authorized_user without id, secret or refresh token");
        else
            fz_fail("parsed credentials of kind %d", (int)c.kind);
    } else {
        FZ_CHECK(err[0] && strncmp(err, "fuzz.json: ", 11) == 0, "error not naming its source: %s",
                 err);
    }
    gauth_test_creds_free(&c);
}

static void token(const fz_input *in)
{
    long status = statuses[in->flags & 7];
    char *tok = NULL;
    long long exp = -5;
    char err[512];
    err[0] = 0;
    int rc = gauth_test_parse_token(in->p, in->n, status, &tok, &exp, err, sizeof err);
    FZ_CHECK(rc == 0 || rc == -1, "parse_token returned %d", rc);
    if (rc == 0) {
        FZ_CHECK(status >= 200 && status <= 299, "token accepted with HTTP %ld", status);
        FZ_CHECK(tok && tok[0], "no token");
        for (const char *p = tok; *p; p++)
            FZ_CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f,
                     "token with byte 0x%02x would break the Authorization header",
                     (unsigned char)*p);
        FZ_CHECK(exp >= 0 && exp <= 7 * 86400, "expires_in %lld", exp);
    } else {
        FZ_CHECK(tok == NULL, "token set on failure");
        FZ_CHECK(err[0], "no error message");
    }
    free(tok);
}

/* The host libcurl will connect to for url, or NULL. Caller frees with curl_free. */
static char *curl_host(const char *url)
{
    CURLU *u = curl_url();
    FZ_CHECK(u != NULL, "curl_url");
    char *host = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        host = NULL;
    curl_url_cleanup(u);
    return host;
}

static void proxy(const fz_input *in)
{
    char *s = fz_strndup(in->p, in->n);
    char *f[5] = {NULL, NULL, NULL, NULL, NULL};
    char *p = s;
    for (int i = 0; i < 5 && p; i++) {
        f[i] = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl++ = 0;
        p = nl;
    }
    ups_proxy_env e = {f[0] && *f[0] ? f[0] : NULL, f[1] && *f[1] ? f[1] : NULL,
                       f[2] && *f[2] ? f[2] : NULL, f[3] && *f[3] ? f[3] : NULL};
    const char *url = f[4] ? f[4] : (f[0] ? f[0] : "");
    char *px = ups_proxy_for_url(&e, url);
    FZ_CHECK(px != NULL, "ups_proxy_for_url returned NULL");
    FZ_CHECK(px[0] == 0 || (e.http_proxy && strcmp(px, e.http_proxy) == 0) ||
                 (e.https_proxy && strcmp(px, e.https_proxy) == 0) ||
                 (e.all_proxy && strcmp(px, e.all_proxy) == 0),
             "proxy \"%s\" is none of the configured ones", px);
    if (px[0] && (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) &&
        !fz_known("proxy_loopback_alias")) {
        char *h = curl_host(url);
        if (h && ups_host_is_loopback(h)) {
            fprintf(stderr, "url: %s\nlibcurl connects to: %s\nproxy: %s\n", url, h, px);
            fz_fail("a URL whose host libcurl resolves to loopback is sent to the proxy");
        }
        curl_free(h);
    }
    free(px);
    for (int i = 0; i < 5; i++)
        if (f[i]) {
            ups_host_is_loopback(f[i]);
            ups_no_proxy_match(f[i], f[4] ? f[4] : "example.com");
        }
    if (f[3])
        ups_no_proxy_match(f[3], url);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_input in = fz_split(data, size);
    cJSON *j = cJSON_ParseWithLength(in.p, in.n);
    creds(&in);
    token(&in);
    check_no_secret(j, statuses[in.flags & 7]);
    cJSON_Delete(j);
    proxy(&in);
    return 0;
}
