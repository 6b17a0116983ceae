/* providers/openai — see openai.h. */
#include "providers/openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LiteLLM reads these from the body itself and does not pass them to the provider. Checked
 * for every top-level member of every request, so the lengths are stored beside the names. */
#define GP(s) {s, sizeof s - 1}
static const struct {
    const char *name;
    size_t len;
} gateway_params[] = {
    GP("mock_response"), GP("mock_testing_fallbacks"), GP("mock_testing_rate_limit_error"),
    GP("mock_timeout"), GP("mock_tool_calls"), GP("fallbacks"),
    GP("context_window_fallback_dict"), GP("num_retries"), GP("max_retries"), GP("caching"),
    GP("cache"), GP("metadata"), GP("litellm_metadata"), GP("tags"), GP("guardrails"),
    GP("drop_params"), GP("api_key"), GP("api_base"), GP("base_url"), GP("api_version"),
    GP("timeout"), GP("request_timeout"), GP("disable_fallbacks"), GP("litellm_call_id"),
    GP("no-log"), GP("proxy_server_request"),
};
#undef GP

bool oai_is_gateway_param(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof gateway_params / sizeof *gateway_params; i++)
        if (gateway_params[i].len == len && memcmp(gateway_params[i].name, key, len) == 0)
            return true;
    return false;
}

int oai_parse_request(const char *body, size_t len, oai_request *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    jscan_err je;
    int n = jscan_object(body, len, r->m, OAI_MAX_MEMBERS, &je);
    if (n < 0) {
        snprintf(err, errlen, "Invalid JSON in request body: %s at byte %zu", je.msg, je.offset);
        return -1;
    }
    if (n > OAI_MAX_MEMBERS) {
        snprintf(err, errlen, "Request body has %d top-level fields; at most %d are accepted", n,
                 OAI_MAX_MEMBERS);
        return -1;
    }
    r->count = n;
    /* Keys are compared as written. A key spelled with escapes ("mo\u0064el") or given twice
     * would be read one way here and another way upstream — routing and access checks on one
     * model, the upstream answering with another — so such bodies are refused. */
    for (int i = 0; i < n; i++) {
        const char *k = body + r->m[i].key_off;
        size_t kl = r->m[i].key_len;
        if (memchr(k, '\\', kl)) {
            snprintf(err, errlen, "Request body field names must not contain escapes (field at "
                                  "byte %zu)", r->m[i].off);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (r->m[j].key_len == kl && memcmp(body + r->m[j].key_off, k, kl) == 0) {
                snprintf(err, errlen, "Duplicate field '%.*s' in the request body", (int)kl, k);
                return -1;
            }
    }
    const jmember *m = jscan_find(body, r->m, n, "model");
    if (m) {
        r->model = jscan_strdup(body + m->val_off, m->val_len);
        if (!r->model) {
            snprintf(err, errlen, "'model' must be a string");
            return -1;
        }
    }
    r->stream = jscan_is_true(body, jscan_find(body, r->m, n, "stream"));
    const jmember *so = jscan_find(body, r->m, n, "stream_options");
    if (so && !jscan_is_null(body, so)) {
        if (body[so->val_off] != '{') {
            snprintf(err, errlen, "'stream_options' must be an object");
            return -1;
        }
        r->stream_options = so;
        jmember inner[16];
        int k = jscan_object(body + so->val_off, so->val_len, inner, 16, NULL);
        if (k > 16)
            k = 16;
        if (k > 0)
            r->include_usage =
                jscan_is_true(body + so->val_off, jscan_find(body + so->val_off, inner, k,
                                                             "include_usage"));
    }
    r->max_tokens = -1;
    const jmember *mt = jscan_find(body, r->m, n, "max_completion_tokens");
    if (!mt)
        mt = jscan_find(body, r->m, n, "max_tokens");
    double d;
    if (mt && jscan_number(body + mt->val_off, mt->val_len, &d) && d >= 0)
        r->max_tokens = d < 1e15 ? (int64_t)d : (int64_t)1e15;
    const jmember *um = jscan_find(body, r->m, n, "user");
    if (um && body[um->val_off] == '"')
        r->user = jscan_strdup(body + um->val_off, um->val_len);
    const jmember *mr = jscan_find(body, r->m, n, "mock_response");
    if (mr && !jscan_is_null(body, mr)) {
        r->mock_response = jscan_strdup(body + mr->val_off, mr->val_len);
        if (!r->mock_response) {
            snprintf(err, errlen, "'mock_response' must be a string");
            return -1;
        }
    }
    return 0;
}

void oai_request_free(oai_request *r)
{
    free(r->model);
    free(r->mock_response);
    free(r->user);
    r->model = r->mock_response = r->user = NULL;
}

static void put(char *out, size_t *o, const char *s, size_t n)
{
    memcpy(out + *o, s, n);
    *o += n;
}

#define PUTS(out, o, lit) put(out, o, lit, sizeof(lit) - 1)

char *oai_build_upstream_body(const char *body, const oai_request *r, const char *upstream_model,
                              bool inject_usage, size_t *out_len)
{
    char *buf = NULL;
    size_t cap = 0;
    if (!oai_build_upstream_body_buf(body, r, upstream_model, inject_usage, &buf, &cap, out_len)) {
        free(buf);
        return NULL;
    }
    return buf;
}

bool oai_build_upstream_body_buf(const char *body, const oai_request *r,
                                 const char *upstream_model, bool inject_usage, char **buf,
                                 size_t *cap, size_t *out_len)
{
    size_t ml = strlen(upstream_model);
    size_t total = 2 + json_escaped_size(ml) + 16 /* "model": */ + 64 /* stream_options */;
    for (int i = 0; i < r->count; i++)
        total += (r->m[i].val_off + r->m[i].val_len - r->m[i].off) + 1;
    if (*cap < total) {
        char *nb = realloc(*buf, total);
        if (!nb)
            return false;
        *buf = nb;
        *cap = total;
    }
    char *out = *buf;
    size_t o = 0;
    bool first = true, wrote_model = false, wrote_so = false;
    out[o++] = '{';
    for (int i = 0; i < r->count; i++) {
        const jmember *m = &r->m[i];
        const char *key = body + m->key_off;
        if (oai_is_gateway_param(key, m->key_len))
            continue;
        bool is_model = m->key_len == 5 && memcmp(key, "model", 5) == 0;
        bool is_so = m->key_len == 14 && memcmp(key, "stream_options", 14) == 0;
        if ((is_model && wrote_model) || (is_so && wrote_so))
            continue; /* duplicate keys: the first one wins, as it did for routing */
        if (!first)
            out[o++] = ',';
        first = false;
        if (is_model) {
            PUTS(out, &o, "\"model\":");
            json_escape(out, total, &o, upstream_model, ml);
            wrote_model = true;
        } else if (is_so && inject_usage && !r->include_usage) {
            /* keep the client's other stream options, force include_usage */
            PUTS(out, &o, "\"stream_options\":{\"include_usage\":true");
            if (m == r->stream_options) {
                const char *v = body + m->val_off;
                jmember inner[16];
                int k = jscan_object(v, m->val_len, inner, 16, NULL);
                for (int j = 0; j < k && j < 16; j++) {
                    if (inner[j].key_len == 13 && memcmp(v + inner[j].key_off, "include_usage", 13) == 0)
                        continue;
                    size_t span = inner[j].val_off + inner[j].val_len - inner[j].off;
                    /* total reserved the whole member once already; this re-use fits in it */
                    out[o++] = ',';
                    put(out, &o, v + inner[j].off, span);
                }
            }
            out[o++] = '}';
            wrote_so = true;
        } else {
            put(out, &o, body + m->off, m->val_off + m->val_len - m->off);
            if (is_so)
                wrote_so = true;
        }
    }
    if (!wrote_model && upstream_model[0]) {
        if (!first)
            out[o++] = ',';
        first = false;
        PUTS(out, &o, "\"model\":");
        json_escape(out, total, &o, upstream_model, ml);
    }
    if (inject_usage && !wrote_so) {
        if (!first)
            out[o++] = ',';
        PUTS(out, &o, "\"stream_options\":{\"include_usage\":true}");
    }
    out[o++] = '}';
    *out_len = o;
    return true;
}

void oai_usage_init(oai_usage *u)
{
    u->prompt_tokens = u->completion_tokens = u->total_tokens = u->cached_tokens = -1;
    u->cache_creation_tokens = -1;
}

static int64_t member_int(const char *s, const jmember *m)
{
    if (!m)
        return -1;
    const char *v = s + m->val_off;
    int64_t n = 0;
    size_t i = 0;
    for (; i < m->val_len && i < 18 && v[i] >= '0' && v[i] <= '9'; i++)
        n = n * 10 + (v[i] - '0');
    if (i == m->val_len && i > 0)
        return n; /* the usual case: a plain non-negative integer */
    double d;
    if (!jscan_number(v, m->val_len, &d) || !(d >= 0))
        return -1;
    return d < 1e15 ? (int64_t)d : (int64_t)1e15; /* no token count is that large */
}

bool oai_usage_parse(const char *v, size_t len, oai_usage *u)
{
    jmember m[24];
    if (len == 0 || v[0] != '{')
        return false;
    int n = jscan_object(v, len, m, 24, NULL);
    if (n < 0)
        return false;
    if (n > 24)
        n = 24;
    u->prompt_tokens = member_int(v, jscan_find(v, m, n, "prompt_tokens"));
    u->completion_tokens = member_int(v, jscan_find(v, m, n, "completion_tokens"));
    u->total_tokens = member_int(v, jscan_find(v, m, n, "total_tokens"));
    u->cache_creation_tokens = member_int(v, jscan_find(v, m, n, "cache_creation_input_tokens"));
    const jmember *d = jscan_find(v, m, n, "prompt_tokens_details");
    if (d && v[d->val_off] == '{') {
        jmember dm[16];
        int k = jscan_object(v + d->val_off, d->val_len, dm, 16, NULL);
        if (k > 16)
            k = 16;
        if (k > 0)
            u->cached_tokens =
                member_int(v + d->val_off, jscan_find(v + d->val_off, dm, k, "cached_tokens"));
    }
    if (u->total_tokens < 0 && u->prompt_tokens >= 0 && u->completion_tokens >= 0)
        u->total_tokens = u->prompt_tokens + u->completion_tokens;
    return true;
}

bool oai_response_usage(const char *body, size_t len, oai_usage *u)
{
    /* Providers put "usage" last, after the (possibly long) choices: search backwards for the
     * key instead of scanning the whole answer. Inside a JSON string every quote is escaped, so
     * an unescaped "usage" followed by ':' and '{' can only be a key; a nested "usage" key is
     * possible in principle, so the candidate is checked to be a usage-shaped object. */
    static const char key[] = "\"usage\"";
    for (size_t i = len; i >= sizeof key - 1; i--) {
        size_t at = i - (sizeof key - 1);
        if (body[at] != '"' || memcmp(body + at, key, sizeof key - 1) != 0)
            continue;
        if (at > 0 && body[at - 1] == '\\')
            continue;
        size_t p = i;
        while (p < len && (body[p] == ' ' || body[p] == '\n' || body[p] == '\t' || body[p] == '\r'))
            p++;
        if (p >= len || body[p] != ':')
            continue;
        p++;
        while (p < len && (body[p] == ' ' || body[p] == '\n' || body[p] == '\t' || body[p] == '\r'))
            p++;
        if (p >= len || body[p] != '{')
            continue;
        long vl = jscan_value(body + p, len - p, NULL);
        if (vl > 0 && oai_usage_parse(body + p, (size_t)vl, u) &&
            (u->prompt_tokens >= 0 || u->completion_tokens >= 0 || u->total_tokens >= 0))
            return true;
    }
    return false;
}

oai_chunk_kind oai_classify_chunk(const char *data, size_t len, oai_usage *u)
{
    while (len && (data[len - 1] == ' ' || data[len - 1] == '\r'))
        len--;
    while (len && data[0] == ' ')
        data++, len--;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return OAI_CHUNK_DONE;
    /* Fast path: almost every chunk has no usage object ("usage":null or no key at all), and
     * those are forwarded untouched whatever they hold, so only a chunk with a "usage" key
     * followed by an object is worth parsing. */
    bool maybe_usage = false;
    for (const char *p = data, *end = data + len;
         (p = memmem(p, (size_t)(end - p), "\"usage\"", 7)) != NULL; p += 7) {
        const char *q = p + 7;
        while (q < end && (*q == ' ' || *q == ':' || *q == '\n' || *q == '\r' || *q == '\t'))
            q++;
        if (q < end && *q == '{') {
            maybe_usage = true;
            break;
        }
    }
    if (!maybe_usage)
        return data[0] == '{' ? OAI_CHUNK_CONTENT : OAI_CHUNK_OTHER;
    jmember m[32];
    int n = jscan_object(data, len, m, 32, NULL);
    if (n < 0)
        return OAI_CHUNK_OTHER;
    if (n > 32)
        n = 32;
    const jmember *um = jscan_find(data, m, n, "usage");
    bool has_usage = um && data[um->val_off] == '{' && oai_usage_parse(data + um->val_off, um->val_len, u);
    if (!has_usage)
        return OAI_CHUNK_CONTENT;
    const jmember *ch = jscan_find(data, m, n, "choices");
    if (ch) {
        /* "[]" possibly with inner whitespace */
        const char *v = data + ch->val_off;
        size_t i = 1;
        while (i < ch->val_len && (v[i] == ' ' || v[i] == '\n' || v[i] == '\t' || v[i] == '\r'))
            i++;
        if (v[0] == '[' && i < ch->val_len && v[i] == ']')
            return OAI_CHUNK_USAGE_ONLY;
        return OAI_CHUNK_CONTENT;
    }
    return OAI_CHUNK_USAGE_ONLY;
}

/* ---- SSE ---- */

void sse_init(sse_parser *p, size_t max_event)
{
    memset(p, 0, sizeof *p);
    p->max_event = max_event;
}

void sse_free(sse_parser *p)
{
    free(p->buf);
    free(p->data);
    memset(p, 0, sizeof *p);
}

/* Finds the end of the first event in s[0..n): returns the index just past its blank line and
 * sets *body_len to the length of its lines without the last line's terminator; 0 if the event
 * is not complete yet. Lines end in "\n", "\r\n" or "\r" (a "\r" at the very end of the
 * input waits, since a "\n" may follow). */
static size_t find_event_end(const char *s, size_t n, size_t *body_len)
{
    size_t i = 0, last_end = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n;
        const char *cr = memchr(s + i, '\r', e - i);
        if (cr)
            e = (size_t)(cr - s);
        if (e == n)
            return 0;
        size_t next;
        if (s[e] == '\r') {
            if (e + 1 == n)
                return 0;
            next = e + (s[e + 1] == '\n' ? 2 : 1);
        } else {
            next = e + 1;
        }
        if (e == i) {
            *body_len = last_end;
            return next;
        }
        last_end = e;
        i = next;
    }
    return 0;
}

static int emit_event(sse_parser *p, const char *s, size_t len, sse_event_cb cb, void *ud)
{
    sse_event ev = {.raw = s, .raw_len = len, .data = NULL, .data_len = 0};
    if (len == 0)
        return 0;
    if (len > p->max_event) /* however the bytes were split across feeds */
        return -1;
    /* walk lines collecting data: fields */
    size_t nfields = 0, dlen = 0;
    const char *first = NULL;
    size_t first_len = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && s[e] != '\n' && s[e] != '\r')
            e++;
        if (e - i >= 5 && memcmp(s + i, "data:", 5) == 0) {
            const char *v = s + i + 5;
            size_t vl = e - i - 5;
            if (vl && *v == ' ')
                v++, vl--;
            if (nfields == 0) {
                first = v;
                first_len = vl;
            } else {
                if (nfields == 1) {
                    if (p->data_cap < len + 1) {
                        char *nd = realloc(p->data, len + 1);
                        if (!nd)
                            return -1;
                        p->data = nd;
                        p->data_cap = len + 1;
                    }
                    memcpy(p->data, first, first_len);
                    dlen = first_len;
                }
                p->data[dlen++] = '\n';
                memcpy(p->data + dlen, v, vl);
                dlen += vl;
            }
            nfields++;
        }
        i = e;
        if (i < len && s[i] == '\r')
            i++;
        if (i < len && s[i] == '\n')
            i++;
    }
    if (nfields == 1) {
        ev.data = first;
        ev.data_len = first_len;
    } else if (nfields > 1) {
        ev.data = p->data;
        ev.data_len = dlen;
    }
    return cb(ud, &ev);
}

int sse_feed(sse_parser *p, const char *bytes, size_t n, sse_event_cb cb, void *ud)
{
    /* Fast path: nothing buffered — parse straight out of the caller's bytes, copying only the
     * incomplete tail. Typical upstream reads hold one or more whole events. */
    const char *s;
    size_t len;
    if (p->len == 0) {
        s = bytes;
        len = n;
    } else {
        if (p->len + n > p->cap) {
            size_t nc = p->cap ? p->cap : 1024;
            while (nc < p->len + n)
                nc *= 2;
            char *nb = realloc(p->buf, nc);
            if (!nb)
                return -1;
            p->buf = nb;
            p->cap = nc;
        }
        memcpy(p->buf + p->len, bytes, n);
        p->len += n;
        s = p->buf;
        len = p->len;
    }
    size_t off = 0;
    int rc = 0;
    while (rc == 0) {
        size_t body_len;
        size_t end = find_event_end(s + off, len - off, &body_len);
        if (end == 0)
            break;
        rc = emit_event(p, s + off, body_len, cb, ud);
        off += end; /* a stopping callback leaves the rest buffered for a later feed */
    }
    size_t rest = len - off;
    if (rest > p->max_event + 4) /* an event of max_event bytes plus its line endings is fine */
        return -1;
    if (s == p->buf) {
        memmove(p->buf, p->buf + off, rest);
        p->len = rest;
    } else if (rest) {
        if (rest > p->cap) {
            size_t nc = p->cap ? p->cap : 1024;
            while (nc < rest)
                nc *= 2;
            char *nb = realloc(p->buf, nc);
            if (!nb)
                return -1;
            p->buf = nb;
            p->cap = nc;
        }
        memcpy(p->buf, s + off, rest);
        p->len = rest;
    }
    return rc;
}
