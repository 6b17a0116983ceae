/* tests/fuzz/fuzz_common — what every libFuzzer harness here shares: the input convention, the
 * chunker that cuts a byte stream where the fuzzer says, and the output oracles (is this JSON,
 * is this a well-formed OpenAI SSE stream, is this header line injectable).
 *
 * Input convention (all harnesses that consume a byte stream):
 *
 *     <payload> [0xFF <spec>]
 *
 * Everything after the LAST 0xFF byte is the spec, everything before it the payload. 0xFF never
 * occurs in UTF-8, so the fixture files under tests/fixtures/ are used unchanged as seeds (no
 * spec), and the fuzzer can still steer the splitting by inserting a 0xFF and mutating the tail.
 *   spec[0]    flags: harness-specific variations (ctx.stream, include_usage, status, ...)
 *   spec[1..]  chunk sizes for streamed input, cycled; 0 means "all that is left"
 * Without a spec, flags and chunk sizes come from a PRNG seeded with a hash of the payload, so a
 * given input always runs the same way (reproducers replay exactly).
 *
 * Oracles abort() with a message on stderr; libFuzzer saves the input as a crash. Everything is
 * static and header-only so each harness is one translation unit. */
#ifndef SLUICE_FUZZ_COMMON_H
#define SLUICE_FUZZ_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/openai.h"
#include "providers/prov.h"
#include "util/jscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- failing loudly ------------------------------------------------------------------------ */

static inline void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\n==FUZZ ORACLE== ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fz_fail(__VA_ARGS__);                                                                  \
    } while (0)

/* Oracles for bugs already reported can be switched off by id while fuzzing on, so one open
 * bug does not hide the next: FUZZ_KNOWN=header_injection,sse_limit_boundary,... (run.sh passes the
 * environment through; by default every oracle is on). Known UB is suppressed the UBSan way,
 * UBSAN_OPTIONS=suppressions=FILE. */
static inline bool fz_known(const char *id)
{
    const char *k = getenv("FUZZ_KNOWN");
    size_t n = strlen(id);
    for (const char *p = k; p && *p;) {
        size_t l = strcspn(p, ", ");
        if (l == n && memcmp(p, id, n) == 0)
            return true;
        p += l;
        p += strspn(p, ", ");
    }
    return false;
}

/* Prints at most 300 bytes of s, escaped, for oracle messages. */
static inline void fz_dump(const char *what, const char *s, size_t n)
{
    fprintf(stderr, "%s (%zu bytes): \"", what, n);
    for (size_t i = 0; i < n && i < 300; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fprintf(stderr, "\"%s\n", n > 300 ? " ..." : "");
}

/* ---- input convention ---------------------------------------------------------------------- */

typedef struct {
    const char *p; /* payload */
    size_t n;
    const uint8_t *spec; /* chunk sizes (after the flags byte); NULL without a spec */
    size_t nspec;
    uint8_t flags;
    uint64_t rng; /* seeded from the payload when there is no spec */
} fz_input;

static inline uint64_t fz_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static inline uint64_t fz_rand(fz_input *in)
{
    uint64_t x = in->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return in->rng = x;
}

static inline fz_input fz_split(const uint8_t *data, size_t size)
{
    fz_input in;
    memset(&in, 0, sizeof in);
    const uint8_t *ff = size ? memrchr(data, 0xFF, size) : NULL;
    if (ff) {
        in.p = (const char *)data;
        in.n = (size_t)(ff - data);
        size_t rest = size - in.n - 1;
        in.flags = rest ? ff[1] : 0;
        in.spec = rest > 1 ? ff + 2 : NULL;
        in.nspec = rest > 1 ? rest - 1 : 0;
    } else {
        in.p = (const char *)data;
        in.n = size;
    }
    in.rng = fz_hash(in.p, in.n) | 1;
    if (!ff)
        in.flags = (uint8_t)(fz_rand(&in) >> 24);
    return in;
}

/* The next chunk length for streamed input (at least 1, at most left). */
typedef struct {
    fz_input *in;
    size_t k;
} fz_chunker;

static inline size_t fz_next_chunk(fz_chunker *c, size_t left)
{
    size_t want;
    if (c->in->spec) {
        uint8_t b = c->in->spec[c->k++ % c->in->nspec];
        want = b == 0 ? left : b;
    } else {
        uint64_t r = fz_rand(c->in);
        want = (r & 7) == 0 ? left : 1 + (size_t)((r >> 8) % 97);
    }
    if (want > left)
        want = left;
    return want ? want : 1;
}

/* A NUL-terminated heap copy of the payload (for cJSON and string APIs). */
static inline char *fz_strndup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* ---- output oracles ------------------------------------------------------------------------ */

static inline bool fz_is_json_object(const char *s, size_t n)
{
    return s && jscan_object(s, n, NULL, 0, NULL) >= 0;
}

/* Exactly one JSON value of any type, surrounding whitespace allowed. */
static inline bool fz_is_json_value(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
        i++;
    long l = jscan_value(s + i, n - i, NULL);
    if (l < 0)
        return false;
    for (i += (size_t)l; i < n; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
            return false;
    return true;
}

/* A translated upstream request must be sendable: a URL without whitespace or control bytes, a
 * JSON object body, and header lines that cannot split into two (CR/LF would let bytes from a
 * request or response smuggle extra headers). */
static inline void fz_check_http_req(const char *who, const prov_http_req *r)
{
    FZ_CHECK(r->url && r->url[0], "%s: chat_request succeeded without a URL", who);
    for (const char *p = r->url; *p; p++)
        FZ_CHECK((unsigned char)*p > 0x20 && (unsigned char)*p != 0x7f,
                 "%s: URL contains byte 0x%02x: %s", who, (unsigned char)*p, r->url);
    if (!fz_is_json_object(r->body, r->body_len)) {
        fz_dump("body", r->body ? r->body : "", r->body ? r->body_len : 0);
        fz_fail("%s: chat_request succeeded with a body that is not a JSON object", who);
    }
    for (int i = 0; i < r->nheaders; i++) {
        const char *h = r->headers[i];
        FZ_CHECK(h != NULL, "%s: NULL header line", who);
        if (fz_known("header_injection"))
            continue;
        if (strpbrk(h, "\r\n")) {
            fz_dump("header line", h, strlen(h));
            fz_fail("%s: header line with CR/LF (header injection upstream)", who);
        }
        /* a token, then ": " (RFC 9110 field-name: no separators, controls or spaces) */
        size_t nl = strcspn(h, ":");
        FZ_CHECK(nl > 0 && h[nl] == ':', "%s: header line without a name: %s", who, h);
        for (size_t k = 0; k < nl; k++)
            if ((unsigned char)h[k] <= 0x20 || (unsigned char)h[k] >= 0x7f ||
                strchr("\"(),/:;<=>?@[\\]{}", h[k])) {
                fz_dump("header line", h, strlen(h));
                fz_fail("%s: header name with byte 0x%02x", who, (unsigned char)h[k]);
            }
    }
}

/* An OpenAI SSE stream as the gateway sends it: complete events, each exactly one "data: "
 * line holding a JSON object or [DONE]; nothing after [DONE]. Also counts events. */
typedef struct {
    const char *who;
    int events;
    bool done;
} fz_oai_sse_check;

static inline int fz_on_oai_event(void *ud, const sse_event *ev)
{
    fz_oai_sse_check *c = ud;
    c->events++;
    if (!ev->data) {
        fz_dump("event", ev->raw, ev->raw_len);
        fz_fail("%s: emitted an SSE event without data", c->who);
    }
    if (c->done) {
        fz_dump("event", ev->raw, ev->raw_len);
        fz_fail("%s: emitted an event after [DONE]", c->who);
    }
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        c->done = true;
        return 0;
    }
    if (!fz_is_json_object(ev->data, ev->data_len)) {
        fz_dump("data", ev->data, ev->data_len);
        fz_fail("%s: emitted an SSE data payload that is not a JSON object", c->who);
    }
    return 0;
}

static inline void fz_check_oai_sse(const char *who, const char *s, size_t n, bool want_done)
{
    fz_oai_sse_check c = {who, 0, false};
    if (n == 0) { /* the gateway never feeds empty output (and s may be NULL then) */
        FZ_CHECK(!want_done, "%s: stream_end produced nothing, not even [DONE]", who);
        return;
    }
    sse_parser p;
    sse_init(&p, (size_t)1 << 30);
    sse_feed(&p, s, n, fz_on_oai_event, &c);
    if (sse_pending(&p)) {
        fz_dump("stream", s, n);
        fz_fail("%s: output ends inside an SSE event (%zu bytes pending)", who, sse_pending(&p));
    }
    sse_free(&p);
    if (want_done && !c.done) {
        fz_dump("stream", s, n);
        fz_fail("%s: stream_end did not finish with data: [DONE]", who);
    }
}

#endif
