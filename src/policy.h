/* policy — what a caller may do on the LLM routes, decided at admission, and what it spent,
 * recorded when the request ends. Sits on top of auth/keys (who), limits/ (rpm, tpm, parallel,
 * budget reservations) and spend/ (prices, the batch of spend rows), and owns the flusher that
 * writes that batch to the store every proxy_batch_write_at seconds — off the request path, in
 * one transaction per batch — and the budget_duration resets.
 *
 * Admission order, as LiteLLM checks: key blocked, key expired, team blocked, model access (key,
 * then team), budgets (key, user, team, organization: reserved with an estimate so concurrent
 * requests cannot overshoot), rate limits (rpm/tpm/max_parallel for key, user, team,
 * organization: all or nothing, exact across worker threads). */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "auth/keys.h"
#include "config/config.h"
#include "limits/limits.h"
#include "providers/openai.h"
#include "store/store.h"

/* Process-wide: starts the flusher thread. 0 or -1. */
int policy_init(const cfg *c, store *st, keycache *kc);
/* Writes what is left (the last batch) and stops the flusher. Call before store_close. */
void policy_shutdown(void);

/* Everything a request holds between admission and its end. Zero it before use. */
typedef struct {
    bool active;
    key_rec *rec;            /* referenced: the caller's key record (NULL: master/open) */
    char token[65];          /* hash of the caller's key, "" when none */
    lim_check checks[4];
    char desc[4][80];
    int nchecks;
    lim_verdict verdict;     /* ticket and remaining counts */
    bool admitted;
    lim_reservation resv;
    bool reserved;
    char start_time[32];
} policy_grant;

/* Why a request is refused: status, error type, message and headers to add. */
typedef struct {
    int status;
    const char *type;
    char message[600];
    int retry_after;         /* > 0: send retry-after */
    char limit_type[32];     /* rate_limit_type header */
    lim_count requests, tokens; /* for x-ratelimit-* on a 429 (limit < 0: none) */
} policy_denial;

typedef struct {
    const char *model;        /* the model group the client asked for */
    const cfg_deployment *dep;
    size_t prompt_bytes;
    int64_t max_tokens;       /* -1 when absent */
} policy_request;

/* Returns true (g filled; call policy_end exactly once) or false (d says why; g empty). */
bool policy_admit(const auth_ident *id, const policy_request *pr, policy_grant *g,
                  policy_denial *d);

typedef struct {
    const char *request_id;   /* call id */
    const char *call_type;    /* "acompletion", "aembedding", "atext_completion", "anthropic_messages" */
    const policy_request *req;
    const oai_usage *usage;   /* may hold -1s */
    int status;               /* final HTTP status */
    const char *end_user;     /* the request's "user" field, or NULL */
} policy_outcome;

/* What the response headers report once the request is settled. */
typedef struct {
    double cost;             /* -1: unknown */
    double key_spend;        /* the key's spend including this request; -1: no virtual key */
    lim_count requests, tokens; /* x-ratelimit-* (limit < 0: none) */
} policy_result;

/* Settles the request: tokens into the tpm windows, the real cost into the budgets, a spend row
 * into the batch, in-flight counts released. The grant is cleared; res says what to report. */
void policy_end(policy_grant *g, const policy_outcome *o, policy_result *res);

/* x-ratelimit-* headers from a live grant (streams, before settling) or from counts. */
void policy_rate_headers(const policy_grant *g, struct evkeyvalq *h);
void policy_counts_headers(const lim_count *requests, const lim_count *tokens,
                           struct evkeyvalq *h);
/* The key's spend including what is not flushed yet (x-litellm-key-spend); < 0 when none. */
double policy_key_spend(const policy_grant *g);

/* The rewritten model name when the key has an alias for it (keys' "aliases"), else NULL. */
const char *policy_alias(const auth_ident *id, const char *model);

#endif
