/* gateway — the LLM request path: parse → route to a deployment → mock or upstream → relay
 * (streamed with backpressure, or whole) → access log. Sits on top of http/, upstream/,
 * providers/ and config/. */
#ifndef SLUICE_GATEWAY_H
#define SLUICE_GATEWAY_H

#include "http/server.h"

/* Derives what the hot path needs per deployment before serving: the upstream header list
 * (provider auth, content type, no Expect: 100-continue) and the outbound proxy decision.
 * Returns 0, or -1 on allocation failure. */
int gw_prepare(cfg *c);
/* The router built by gw_prepare (model aliases for /v1/models). */
struct router;
const struct router *gw_router(void);
/* Frees what gw_prepare built (the router), after serving. */
void gw_release(void);

/* Frees the calling worker thread's caches; call as the thread ends. */
void gw_thread_exit(void);

void gw_chat(worker *w, struct evhttp_request *req, const auth_ident *id);
void gw_completions(worker *w, struct evhttp_request *req, const auth_ident *id);
void gw_embeddings(worker *w, struct evhttp_request *req, const auth_ident *id);
/* POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API in front of any
 * provider. */
void gw_messages(worker *w, struct evhttp_request *req, const auth_ident *id);
void gw_count_tokens(worker *w, struct evhttp_request *req, const auth_ident *id);

#endif
