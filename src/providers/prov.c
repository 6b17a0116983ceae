/* providers/prov — helpers shared by the translating providers (prov.h): the upstream request
 * record, the client-facing error record, and LiteLLM's status/exception-class mapping.
 *
 * The status mapping follows LiteLLM's exception_mapping_utils for Anthropic and Vertex AI:
 * only the statuses LiteLLM names explicitly keep their value; any other 4xx becomes a
 * BadRequestError (400) and any other 5xx an InternalServerError (500). Anthropic's 529
 * "overloaded_error" is one of those: LiteLLM raises InternalServerError, so the client sees 500
 * ("litellm.InternalServerError: AnthropicException - Overloaded. Handle with
 * `litellm.InternalServerError`."), not 503. Only a provider 503 is ServiceUnavailableError. */
#include "providers/prov.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prov_http_req_free(prov_http_req *r)
{
    if (!r)
        return;
    free(r->url);
    free(r->body);
    for (int i = 0; i < r->nheaders; i++)
        free(r->headers[i]);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

void prov_http_req_add_header(prov_http_req *r, const char *name, const char *value)
{
    if (!r || !name)
        return;
    if (!value)
        value = "";
    /* header names are HTTP tokens and values carry no control characters: anything else
     * (from a client-supplied field) could inject or break headers, so it is not sent */
    if (!*name)
        return;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *c))
            return;
    for (const unsigned char *c = (const unsigned char *)value; *c; c++)
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
            return;
    size_t nl = strlen(name), vl = strlen(value);
    char *line = malloc(nl + 2 + vl + 1);
    if (!line)
        return;
    memcpy(line, name, nl);
    memcpy(line + nl, ": ", 2);
    memcpy(line + nl + 2, value, vl + 1);
    char **h = realloc(r->headers, (size_t)(r->nheaders + 1) * sizeof *h);
    if (!h) {
        free(line);
        return;
    }
    h[r->nheaders++] = line;
    r->headers = h;
}

/* The error must start zeroed ({0}); setting it again replaces the previous message/param. */
void prov_err_set(prov_err *e, int status, const char *type, const char *param, const char *fmt,
                  ...)
{
    if (!e)
        return;
    free(e->message);
    free(e->param);
    e->message = NULL;
    e->param = NULL;
    e->status = status;
    e->type = type;
    if (param)
        e->param = strdup(param);

    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *m = malloc((size_t)n + 1);
    if (!m)
        return;
    va_start(ap, fmt);
    vsnprintf(m, (size_t)n + 1, fmt, ap);
    va_end(ap);
    e->message = m;
}

void prov_err_free(prov_err *e)
{
    if (!e)
        return;
    free(e->message);
    free(e->param);
    e->message = NULL;
    e->param = NULL;
}

int prov_map_status(int status)
{
    switch (status) {
    case 400:
    case 413: /* LiteLLM: "status_code == 400 or status_code == 413" → BadRequestError */
        return 400;
    case 401:
    case 403:
    case 404:
    case 408:
    case 422:
    case 429:
    case 500:
    case 503:
        return status;
    default:
        break;
    }
    if (status >= 500)
        return 500; /* 502, 504, Anthropic 529 overloaded → InternalServerError */
    if (status >= 400)
        return 400;
    return 500; /* a "failure" with a non-error status: treat as an upstream fault */
}

const char *prov_exception_class(int status)
{
    switch (status) {
    case 400:
        return "BadRequestError";
    case 401:
        return "AuthenticationError";
    case 403:
        return "PermissionDeniedError";
    case 404:
        return "NotFoundError";
    case 408:
        return "Timeout";
    case 422:
        return "UnprocessableEntityError";
    case 429:
        return "RateLimitError";
    case 503:
        return "ServiceUnavailableError";
    default:
        break;
    }
    if (status >= 500 || status < 400)
        return "InternalServerError";
    return "BadRequestError";
}
