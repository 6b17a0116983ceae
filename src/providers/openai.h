/* providers/openai — the OpenAI wire format, which is also sluice's own API: parsing a client's
 * request just enough to route it, rebuilding the upstream body from the client's untouched byte
 * spans, framing SSE, and reading usage out of responses and stream chunks.
 * Pure functions: no sockets, threads or globals, so everything here is unit-tested and fuzzed. */
#ifndef SLUICE_PROV_OPENAI_H
#define SLUICE_PROV_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/jscan.h"

#define OAI_MAX_MEMBERS 64

/* What the gateway needs from a client's request body. Spans point into the caller's buffer. */
typedef struct {
    jmember m[OAI_MAX_MEMBERS];
    int count;            /* top-level members recorded (bodies with more are refused) */
    char *model;          /* decoded "model" (heap; NULL when absent) */
    bool stream;          /* "stream": true */
    bool include_usage;   /* the client itself asked for stream usage */
    const jmember *stream_options;
    char *mock_response;  /* LiteLLM's request-level mock_response (heap; NULL when absent) */
    int64_t max_tokens;   /* max_tokens / max_completion_tokens, -1 when absent */
    char *user;           /* "user" (heap; NULL when absent): the end user, for spend logs */
} oai_request;

/* Parses body as a JSON object. Returns 0, or -1 with a client-facing message in err. */
int oai_parse_request(const char *body, size_t len, oai_request *r, char *err, size_t errlen);
void oai_request_free(oai_request *r);

/* Members of a client body that are LiteLLM/sluice controls, never forwarded upstream (a client's
 * api_key/api_base above all: the provider key comes from the config). */
bool oai_is_gateway_param(const char *key, size_t len);

/* Builds the upstream body: the client's members in order with "model" set to upstream_model,
 * gateway-only members dropped and, when inject_usage, stream_options.include_usage forced true.
 * Returns a heap buffer (caller frees) and its length in *out_len; NULL on allocation failure. */
char *oai_build_upstream_body(const char *body, const oai_request *r, const char *upstream_model,
                              bool inject_usage, size_t *out_len);
/* The same into a caller-owned buffer, grown with realloc when *cap is too small (so a recycled
 * buffer costs no allocation). False on allocation failure (*buf stays the caller's). */
bool oai_build_upstream_body_buf(const char *body, const oai_request *r,
                                 const char *upstream_model, bool inject_usage, char **buf,
                                 size_t *cap, size_t *out_len);

/* Token usage as reported by a provider. -1 = not reported. */
typedef struct {
    int64_t prompt_tokens, completion_tokens, total_tokens;
    int64_t cached_tokens;          /* prompt_tokens_details.cached_tokens (cache reads) */
    int64_t cache_creation_tokens;  /* Anthropic-style cache writes (LiteLLM's
                                       usage.cache_creation_input_tokens) */
} oai_usage;

void oai_usage_init(oai_usage *u);
/* Reads a "usage" object value (span including braces) into u; false when it is not an object. */
bool oai_usage_parse(const char *v, size_t len, oai_usage *u);
/* Reads top-level "usage" from a complete response body. */
bool oai_response_usage(const char *body, size_t len, oai_usage *u);

/* Classification of one streamed chunk's JSON. */
typedef enum {
    OAI_CHUNK_CONTENT,    /* an ordinary chunk: forward it. Only chunks carrying a usage object
                             are validated; the rest are recognised by their leading '{' */
    OAI_CHUNK_USAGE_ONLY, /* "choices": [] with a usage object: forward only if the client asked */
    OAI_CHUNK_DONE,       /* the [DONE] sentinel */
    OAI_CHUNK_OTHER,      /* not a JSON object, or a usage-carrying chunk that does not parse
                             (forwarded untouched) */
} oai_chunk_kind;

/* Classifies a data payload; fills u when the chunk carries a usage object. */
oai_chunk_kind oai_classify_chunk(const char *data, size_t len, oai_usage *u);

/* ---- SSE framing ---------------------------------------------------------------------------
 * Feed bytes as they arrive; complete events are reported with their raw lines (without the
 * terminating blank line; line endings inside are left as the upstream sent them) and their data
 * payload. Partial events wait in the parser's buffer, which is bounded: an event larger than
 * max_event is an error, however its bytes arrive. */
typedef struct {
    char *buf;
    size_t len, cap;
    size_t max_event;
    char *data;     /* scratch for multi-line data payloads */
    size_t data_cap;
} sse_parser;

typedef struct {
    const char *raw;  /* the event's lines, without the terminating blank line */
    size_t raw_len;
    const char *data; /* concatenated data: fields (joined by \n), or NULL if none */
    size_t data_len;
} sse_event;

/* Returns 1 per event via cb; cb returns non-zero to stop (sse_feed then returns that value). */
typedef int (*sse_event_cb)(void *ud, const sse_event *ev);

void sse_init(sse_parser *p, size_t max_event);
void sse_free(sse_parser *p);
/* 0 on success, a non-zero cb result, or -1 when an event exceeds max_event / out of memory. */
int sse_feed(sse_parser *p, const char *bytes, size_t n, sse_event_cb cb, void *ud);
/* Bytes buffered for an incomplete event. */
static inline size_t sse_pending(const sse_parser *p) { return p->len; }

#endif
