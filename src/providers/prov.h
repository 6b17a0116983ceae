/* providers/prov — the interface every translating provider implements (Anthropic, Gemini on
 * Vertex AI and AI Studio, Claude on Vertex AI). OpenAI-shaped upstreams (openai/, azure/,
 * hosted_vllm/, ...) do not go through it: their bodies pass through byte for byte
 * (providers/openai.h).
 *
 * Everything here is pure: a function gets the request context and bytes, and returns bytes.
 * No sockets, threads, clocks or globals — the gateway does the I/O — so each translator is
 * unit-tested on fixture files and fuzzed.
 *
 * Ownership: every heap result (prov_http_req fields, prov_err.message, stream state) is owned
 * by the caller once returned and freed with the matching *_free function. Output bytes are
 * appended to a caller-owned sbuf. */
#ifndef SLUICE_PROV_H
#define SLUICE_PROV_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "providers/openai.h"
#include "util/sbuf.h"

/* What a translator knows about the deployment and the request. Strings are borrowed. */
typedef struct {
    const char *upstream_model; /* "claude-3-5-sonnet-20241022", "gemini-2.0-flash", ... */
    const char *api_base;       /* the deployment's api_base, or NULL for the provider default */
    const char *api_key;        /* provider key (Anthropic x-api-key, Gemini x-goog-api-key) */
    const char *project;        /* Vertex AI project */
    const char *location;       /* Vertex AI location; "global" uses the host without region */
    const char *access_token;   /* Google OAuth access token (Vertex AI), fetched by the gateway */
    bool stream;                /* the client asked for a stream */
    bool include_usage;         /* ...with stream_options.include_usage */
    bool drop_params;           /* drop unsupported OpenAI params instead of refusing them */
    const char *anthropic_version; /* client's anthropic-version header, or NULL */
    const char *anthropic_beta;    /* client's anthropic-beta header, or NULL */
    const char *response_id;    /* id to use in responses when the provider gives none */
    long created;               /* unix time for "created" */
    const char *client_model;   /* the model name the client asked for (reported back) */
} prov_ctx;

/* An upstream HTTP request: always POST. */
typedef struct {
    char *url;
    char *body;
    size_t body_len;
    char **headers; /* "Name: value" lines */
    int nheaders;
} prov_http_req;

void prov_http_req_free(prov_http_req *r);
/* Appends a "Name: value" header (copied). */
void prov_http_req_add_header(prov_http_req *r, const char *name, const char *value);

/* A client-facing error: HTTP status, OpenAI error type, message (heap), param (heap or NULL).
 * Start from a zeroed struct; setting it again replaces the message and param. */
typedef struct {
    int status;
    const char *type;
    char *message;
    char *param;
} prov_err;

void prov_err_set(prov_err *e, int status, const char *type, const char *param, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
void prov_err_free(prov_err *e);

typedef struct prov_stream prov_stream; /* a translator's streaming state */

typedef struct {
    const char *name; /* provider name as in "anthropic/..." (for messages) */
    /* OpenAI chat request (parsed) → upstream request. Unsupported parameters → 400 naming the
     * parameter and the provider, unless ctx->drop_params. */
    int (*chat_request)(const prov_ctx *c, const cJSON *req, prov_http_req *out, prov_err *err);
    /* Upstream 2xx body → OpenAI chat.completion JSON appended to out; usage filled. */
    int (*chat_response)(const prov_ctx *c, const char *body, size_t len, sbuf *out,
                         oai_usage *u, prov_err *err);
    /* Streaming: one decoder per request. Each upstream SSE event yields zero or more complete
     * OpenAI SSE events ("data: {chat.completion.chunk}\n\n") appended to out. stream_end
     * appends the final chunks — the usage chunk when ctx->include_usage — and
     * "data: [DONE]\n\n". An error inside the stream (an upstream error event) is returned as -1
     * with err set; the gateway turns it into an SSE error event. */
    prov_stream *(*stream_new)(const prov_ctx *c);
    int (*stream_event)(prov_stream *s, const sse_event *ev, sbuf *out, oai_usage *u,
                        prov_err *err);
    int (*stream_end)(prov_stream *s, sbuf *out, oai_usage *u);
    void (*stream_free)(prov_stream *s);
    /* Upstream non-2xx → client error: LiteLLM's status mapping and a message carrying the
     * provider's own text, prefixed like LiteLLM ("litellm.BadRequestError: AnthropicException
     * - ..."). */
    void (*error)(const prov_ctx *c, int status, const char *body, size_t len, prov_err *err);
    /* Embeddings, for providers that have them (NULL otherwise). */
    int (*embed_request)(const prov_ctx *c, const cJSON *req, prov_http_req *out, prov_err *err);
    int (*embed_response)(const prov_ctx *c, const cJSON *req, const char *body, size_t len,
                          sbuf *out, oai_usage *u, prov_err *err);
} prov_ops;

extern const prov_ops prov_anthropic;      /* anthropic/<model>: Messages API */
extern const prov_ops prov_vertex_claude;  /* vertex_ai/claude-*: rawPredict / streamRawPredict */
extern const prov_ops prov_vertex_gemini;  /* vertex_ai/<gemini model>: generateContent */
extern const prov_ops prov_gemini;         /* gemini/<model>: AI Studio generateContent */

/* LiteLLM's class name for a status ("BadRequestError", "RateLimitError", ...). */
const char *prov_exception_class(int status);
/* Maps a provider status to the status LiteLLM answers with (e.g. Anthropic's 529 "overloaded"
 * → 500, as LiteLLM's InternalServerError). */
int prov_map_status(int status);

#endif
