/* providers/mock — LiteLLM's `mock_response`: answers shaped exactly like an OpenAI upstream's,
 * built without any network, for demos and tests. Pure functions. Token counts are estimates
 * (about four bytes a token), so spend and limits behave as they would for real traffic. */
#ifndef SLUICE_PROV_MOCK_H
#define SLUICE_PROV_MOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "providers/openai.h"
#include "providers/provider.h"

typedef struct {
    const char *id;    /* response id, e.g. "chatcmpl-…" */
    const char *model; /* model to report */
    long created;      /* unix seconds */
    size_t prompt_bytes; /* size of the client's request, for the prompt-token estimate */
} mock_ctx;

/* Non-streamed chat.completion / text_completion body. Caller frees. */
char *mock_completion(prov_endpoint ep, const mock_ctx *c, const char *text, size_t *len,
                      oai_usage *usage);
/* The whole SSE stream (chunks of a few characters, finish chunk, usage chunk when
 * include_usage, [DONE]). Caller frees. */
char *mock_stream(prov_endpoint ep, const mock_ctx *c, const char *text, bool include_usage,
                  size_t *len, oai_usage *usage);
/* An embeddings list for the request body's "input" (one vector per input item), float or
 * base64 as encoding_format asks. Returns NULL with err set for a body without a valid input. */
char *mock_embeddings(const char *body, size_t body_len, const mock_ctx *c, size_t *len,
                      oai_usage *usage, char *err, size_t errlen);

#endif
