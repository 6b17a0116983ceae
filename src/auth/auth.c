/* auth — see auth.h. */
#include "auth/auth.h"

#include <event2/http.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/hash.h"

static const char *header(const struct evkeyvalq *h, const char *name)
{
    return evhttp_find_header(h, name);
}

const char *auth_extract(const struct evkeyvalq *h, size_t *len, bool *malformed)
{
    *malformed = false;
    const char *v = header(h, "Authorization");
    if (v) {
        while (*v == ' ')
            v++;
        if (strncasecmp(v, "Bearer ", 7) == 0)
            v += 7;
        else if (strncasecmp(v, "Basic ", 6) == 0)
            v += 6;
        else if (*v) {
            *malformed = true;
            return NULL;
        }
        while (*v == ' ')
            v++;
        size_t n = strlen(v);
        while (n && v[n - 1] == ' ')
            n--;
        if (n) {
            *len = n;
            return v;
        }
    }
    static const char *const others[] = {"x-api-key", "api-key", "x-goog-api-key",
                                         "x-litellm-api-key", "Ocp-Apim-Subscription-Key"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        v = header(h, others[i]);
        if (v && *v) {
            *len = strlen(v);
            return v;
        }
    }
    return NULL;
}

auth_result auth_check(const cfg *c, const struct evkeyvalq *h)
{
    if (!c->master_key)
        return AUTH_OPEN;
    size_t len = 0;
    bool malformed;
    const char *key = auth_extract(h, &len, &malformed);
    if (malformed)
        return AUTH_MALFORMED;
    if (!key)
        return AUTH_MISSING;
    if (secret_equal(key, len, c->master_key, strlen(c->master_key)))
        return AUTH_OK;
    return AUTH_INVALID;
}

const char *auth_message(auth_result r)
{
    switch (r) {
    case AUTH_MISSING:
        return "Authentication Error, No api key passed in.";
    case AUTH_MALFORMED:
        return "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` "
               "prefix.";
    case AUTH_INVALID:
        return "Authentication Error, Invalid proxy server token passed. The key is neither the "
               "master key nor a known virtual key.";
    default:
        return "";
    }
}

void auth_abbrev(const char *key, size_t len, char out[16])
{
    if (len < 16) /* short keys would be mostly revealed by their ends */
        snprintf(out, 16, "***");
    else
        snprintf(out, 16, "%.3s...%.4s", key, key + len - 4);
}
