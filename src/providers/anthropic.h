/* providers/anthropic — the Anthropic Messages API, both ways.
 *
 * Upstream (prov_anthropic, prov_vertex_claude in prov.h): OpenAI chat requests translated to
 * Messages requests and the answers (and SSE event streams) back.
 *
 * Ingress (POST /v1/messages, as the Anthropic SDK and Claude Code send it): for Anthropic and
 * Claude-on-Vertex deployments the body passes through (anth_vertex_body adapts it for
 * rawPredict); for any other provider the request is translated to OpenAI chat format, served
 * by that provider, and the OpenAI answer or chunk stream translated back into Anthropic's
 * message object or exact event sequence (message_start, content_block_start,
 * content_block_delta, content_block_stop, message_delta, message_stop).
 *
 * Pure functions: no sockets, threads or globals. */
#ifndef SLUICE_PROV_ANTHROPIC_H
#define SLUICE_PROV_ANTHROPIC_H

#include "providers/prov.h"

/* LiteLLM's default max_tokens when an OpenAI request has none (DEFAULT_MAX_TOKENS, 4096). */
#define ANTH_DEFAULT_MAX_TOKENS 4096

/* --- ingress --- */

/* Anthropic Messages request → OpenAI chat request (caller deletes). NULL with err (400). */
cJSON *anth_to_openai_request(const cJSON *areq, prov_err *err);
/* OpenAI chat.completion body → Anthropic message JSON appended to out. */
int anth_from_openai_response(const char *body, size_t len, const char *model, sbuf *out,
                              prov_err *err);

typedef struct anth_out_stream anth_out_stream;
/* OpenAI chunk payloads (the JSON after "data: ") → Anthropic SSE events appended to out
 * ("event: <type>\ndata: {...}\n\n"). msg_id is used in message_start. */
anth_out_stream *anth_out_stream_new(const char *model, const char *msg_id);
int anth_out_stream_chunk(anth_out_stream *s, const char *chunk, size_t len, sbuf *out);
/* Closes open blocks and emits message_delta (stop_reason, usage) and message_stop. */
int anth_out_stream_end(anth_out_stream *s, sbuf *out);
void anth_out_stream_free(anth_out_stream *s);

/* Anthropic's error shape: {"type":"error","error":{"type":"invalid_request_error",...}}. */
char *anth_error_body(int status, const char *message, size_t *len);

/* The rawPredict (streamRawPredict when stream) URL of Claude on Vertex AI for ctx's project,
 * location, model and api_base. Heap string; NULL with err set when no project is configured. */
char *anth_vertex_url(const prov_ctx *c, bool stream, prov_err *err);

/* A /v1/messages body for Vertex AI rawPredict: "model" removed, "anthropic_version":
 * "vertex-2023-10-16" added unless present; everything else byte-identical. Caller frees. */
char *anth_vertex_body(const char *body, size_t len, size_t *out_len);

#endif
