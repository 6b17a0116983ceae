/* router — LiteLLM's Router decisions: model groups, which deployment serves a request,
 * cooldowns, and the retry/fallback policy the caller's retry loop follows.
 *
 * Owns: router_settings (overriding the same names in litellm_settings), group resolution
 * (deployment id, model_group_alias, exact model_name, a deployment's litellm model, wildcard
 * model_names), the pick (order tiers, cooldowns, per-deployment rpm/tpm, strategies), per-
 * deployment bookkeeping (in flight, requests and tokens this minute, latency, failures) and
 * the policy helpers (retry counts, backoff, fallback groups, the "No deployments available"
 * message). No I/O, no sockets, no clock: every call that needs the time takes `now` (epoch
 * seconds), so tests inject it.
 *
 * Sharing: one router per config snapshot; the cfg must outlive it (deployment pointers and the
 * settings' cJSON point into it). Everything built by router_new is read-only afterwards; the
 * mutable per-deployment state is atomics (one 64-byte line per deployment), so router_pick,
 * router_begin and router_end take no lock; only a failure that may lead to a cooldown under the
 * allowed_fails counting rule takes that deployment's own mutex. Randomness comes from a
 * per-thread splitmix64 stream derived from the router's seed, so picks need no shared state.
 * Cost measured in test_router's throughput test: a pick over 4 deployments is ~30-60 ns.
 *
 * LiteLLM behaviour reproduced (litellm/router.py, router_utils/cooldown_handlers.py,
 * pattern_match_deployments.py, simple_shuffle.py, fallback_event_handlers.py):
 *  - cooldown only for 429, 401, 404, 408/timeouts and 5xx; other 4xx and connection errors
 *    never cool a deployment down. By default (no allowed_fails_policy and allowed_fails left at
 *    LiteLLM's default 3): a 429 cools down at once unless the deployment is alone in its
 *    group; >50% of this minute's calls failing (with >= 5 calls) cools down unless alone; 100%
 *    failing with >= 1000 calls cools down even when alone; 401/404 (not retryable) cool down at
 *    once. With allowed_fails_policy, or allowed_fails set to another value: a failure counter
 *    per deployment that expires cooldown_time after the last failure; the failure that makes it
 *    exceed allowed_fails (per error class from the policy) cools down. A success does not reset
 *    it (LiteLLM does not either).
 *  - cooldown length: litellm_params.cooldown_time of the deployment, else the upstream's
 *    Retry-After, else cooldown_time (default DEFAULT_COOLDOWN_TIME_SECONDS = 5); 0 = none.
 *  - background health checks (health.c) mark deployments down between checks, as LiteLLM's
 *    health-check-driven routing does, with its safety net: marks never empty a group (see
 *    router_health_report).
 *  - retries: retry_policy[class] > deployment litellm_params.num_retries > the request's
 *    num_retries > num_retries (default 2, openai.DEFAULT_MAX_RETRIES, or litellm_settings').
 *    Backoff: an instant retry when the group has another healthy deployment; else the
 *    upstream's Retry-After when 0 < it <= 60 s; else 0.5 s * 2^n capped at 8 s, times a jitter
 *    in [0.75, 1], and never less than retry_after.
 *  - fallbacks: request-body lists win over configured ones; context-window and content-policy
 *    errors use their own lists when configured (and then nothing else), otherwise `fallbacks`:
 *    the group's entry, an entry for the group without its provider prefix, then "*" (where
 *    default_fallbacks also go); at most max_fallbacks, never the failing group itself.
 *  - deployments without `order` rank after every ordered one (LiteLLM keeps only the lowest
 *    order present); simple-shuffle weights by weight, else rpm, else tpm, else uniform. */
#ifndef SLUICE_ROUTER_H
#define SLUICE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config/config.h"

typedef struct router router;
typedef struct router_group router_group;

typedef enum {
    ROUTER_SIMPLE_SHUFFLE = 0,
    ROUTER_LEAST_BUSY,
    ROUTER_LATENCY_BASED,
    ROUTER_USAGE_BASED, /* usage-based-routing and usage-based-routing-v2 */
} router_strategy;

/* What happened to a call, as the caller classifies it. Status codes decide the rest. */
typedef enum {
    ROUTER_OK = 0,
    ROUTER_RATE_LIMITED,    /* 429 */
    ROUTER_TIMEOUT,         /* 408, or our own timeout */
    ROUTER_SERVER_ERROR,    /* 5xx */
    ROUTER_CONNECTION_ERROR,/* no HTTP answer: connect/reset/DNS/TLS; never cools down */
    ROUTER_BAD_REQUEST,     /* other 4xx: the request's fault, not the deployment's */
    ROUTER_AUTH_ERROR,      /* 401 */
    ROUTER_NOT_FOUND,       /* 404 */
    ROUTER_CONTENT_POLICY,  /* the provider refused the content */
    ROUTER_CONTEXT_WINDOW,  /* the prompt does not fit the model */
    ROUTER_CANCELLED,       /* the client went away: only in flight and tokens are updated */
} router_outcome;

/* Retry-policy / allowed-fails-policy classes (LiteLLM's exception names). */
enum {
    ROUTER_CLASS_BAD_REQUEST,
    ROUTER_CLASS_AUTHENTICATION,
    ROUTER_CLASS_TIMEOUT,
    ROUTER_CLASS_RATE_LIMIT,
    ROUTER_CLASS_CONTENT_POLICY,
    ROUTER_CLASS_INTERNAL_SERVER,
    ROUTER_CLASS_NOT_FOUND,
    ROUTER_CLASS_SERVICE_UNAVAILABLE, /* allowed_fails_policy only */
    ROUTER_CLASS_BAD_GATEWAY,         /* allowed_fails_policy only */
    ROUTER_NCLASSES
};

typedef struct {
    router_strategy strategy;
    int num_retries;           /* default 2 */
    double retry_after;        /* minimum backoff, seconds (0) */
    double timeout;            /* seconds; 0 = unset (cfg->request_timeout applies) */
    double stream_timeout;     /* seconds; 0 = unset */
    int max_fallbacks;         /* 5 */
    int allowed_fails;         /* 3 */
    bool allowed_fails_counting; /* allowed_fails_policy given, or allowed_fails != 3 */
    int allowed_fails_policy[ROUTER_NCLASSES]; /* -1 = not set */
    int retry_policy[ROUTER_NCLASSES];         /* -1 = not set */
    double cooldown_time;      /* 5; 0 = never cool down */
    bool disable_cooldowns;
    bool enable_pre_call_checks; /* shown in messages; context-window checks are the caller's */
    /* Deployment rpm/tpm are hard limits (a deployment at its limit is skipped, all at their
     * limit → 429) under usage-based-routing-v2 and latency-based-routing, with
     * enable_pre_call_checks, or with optional_pre_call_checks: [enforce_model_rate_limits], as
     * in LiteLLM; otherwise they are only simple-shuffle's weights. */
    bool enforce_deployment_limits;
    double lowest_latency_buffer; /* routing_strategy_args (0) */
    double latency_ttl;        /* routing_strategy_args.ttl: older latency is unknown (3600) */
    /* as configured (pointers into the cfg); NULL when absent */
    const cJSON *fallbacks, *context_window_fallbacks, *content_policy_fallbacks,
        *default_fallbacks;
} router_settings;

/* Builds the router for a loaded config. NULL on a settings error (err names the key, e.g.
 * "router_settings.num_retries must be a whole number >= 0, got -1") or allocation failure. */
router *router_new(const cfg *c, char *err, size_t errlen);
void router_free(router *rt);
const router_settings *router_get_settings(const router *rt);
/* Things configured but approximated, for the start-up log ("routing_strategy
 * cost-based-routing is not implemented: using simple-shuffle"). NULL-terminated. */
const char *const *router_notes(const router *rt);
/* Makes the random choices reproducible (tests): every thread restarts its stream. */
void router_seed(router *rt, uint64_t seed);

/* ---- groups ---------------------------------------------------------------------------------*/

typedef enum {
    ROUTER_VIA_GROUP = 1,      /* exact model_name */
    ROUTER_VIA_ALIAS,          /* model_group_alias */
    ROUTER_VIA_DEPLOYMENT_ID,  /* the request named model_info.id: `pinned` */
    ROUTER_VIA_LITELLM_MODEL,  /* the request named a litellm_params.model */
    ROUTER_VIA_WILDCARD,       /* a model_name with '*' */
} router_via;

#define ROUTER_MAX_STARS 8

typedef struct {
    const router_group *group;
    const cfg_deployment *pinned; /* ROUTER_VIA_DEPLOYMENT_ID: call exactly this one */
    router_via via;
    const char *requested;        /* the name matched (after aliasing); captures index into it */
    int ncap;
    uint32_t cap_off[ROUTER_MAX_STARS], cap_len[ROUTER_MAX_STARS];
} router_route;

/* Resolves a requested model name. Precedence (LiteLLM's): a deployment id, then
 * model_group_alias, then an exact model_name, then deployments whose litellm_params.model is
 * the name, then wildcard model_names, most specific first (longest pattern; "*" last).
 * `model` must stay valid while *out is used. false: unknown model (the caller answers 400
 * "Invalid model name passed in model=X"). */
bool router_resolve(const router *rt, const char *model, router_route *out);
/* The exact model_name group, or NULL. */
const router_group *router_find_group(const router *rt, const char *model_name);
const char *router_group_name(const router_group *g);
size_t router_group_size(const router_group *g);
const cfg_deployment *router_group_at(const router *rt, const router_group *g, size_t i);

/* The litellm model to call for deployment d on route r: the deployment's `model`, with each
 * '*' replaced by what the request's wildcard captured (a catch-all group whose model is
 * "openai/" followed by '*', asked for "gpt-4o", calls "openai/gpt-4o"); the requested name
 * itself when it captured more parts than the model has stars. Returns the part after the
 * provider prefix (what goes upstream as "model": "gpt-4o"), pointing into buf; NULL if buf
 * is too small. */
const char *router_model_for(const router_route *r, const cfg_deployment *d, char *buf,
                             size_t len);

/* model_group_alias entries, for /v1/models (hidden ones are not listed there). */
size_t router_alias_count(const router *rt);
void router_alias_at(const router *rt, size_t i, const char **alias, const char **group,
                     bool *hidden);

/* ---- picking --------------------------------------------------------------------------------*/

typedef enum {
    ROUTER_PICKED = 0,
    ROUTER_NONE_COOLDOWN,     /* every candidate is cooling down (some may be excluded) */
    ROUTER_NONE_RATE_LIMITED, /* candidates are at their own rpm/tpm for this minute */
    ROUTER_NONE_EXCLUDED,     /* every deployment was excluded by the caller (all tried) */
    ROUTER_NONE_EMPTY,        /* the group has no deployments */
} router_pick_status;

typedef struct {
    router_pick_status status;
    const cfg_deployment *d;  /* ROUTER_PICKED */
    /* otherwise: when one becomes available again and in how many whole seconds (>= 1; 0 for
     * EXCLUDED/EMPTY), for the 429's retry-after */
    double retry_at;
    int retry_after_s;
    int ncooling, nlimited, nexcluded;
    int nunhealthy; /* skipped as marked down by a background health check (see
                       router_health_report); counted like exclusions in `status` */
} router_pick_result;

/* Picks a deployment of g that is not cooling down, not excluded (model_info.id in
 * exclude_ids), and under its own rpm/tpm this minute; from the lowest `order` tier that has
 * one; by the configured strategy. Returns out->status == ROUTER_PICKED. No allocation, no
 * lock. The pick does not count the request: router_begin does. */
bool router_pick(router *rt, const router_group *g, const char *const *exclude_ids, int nexclude,
                 double now, router_pick_result *out);
/* The same, knowing the request: its input size (tokens, estimated) — a deployment whose tpm
 * this minute cannot take it is skipped where limits are enforced (LiteLLM: used + input >
 * tpm) — and whether it streams (latency routing then ranks by time to first token). */
bool router_pick_for(router *rt, const router_group *g, const char *const *exclude_ids,
                     int nexclude, long input_tokens, bool stream, double now,
                     router_pick_result *out);

/* LiteLLM's 429 text for a failed pick: "No deployments available for selected model, Try again
 * in N seconds. Passed model=X. pre-call-checks=False, cooldown_list=['id', ...]" with N the
 * retry_after_s of res (LiteLLM prints the configured cooldown length there; the time left is
 * what a client can use). Returns the length snprintf would have written. */
int router_format_no_deployments(const router *rt, const router_group *g, const char *model,
                                 const router_pick_result *res, double now, char *buf,
                                 size_t len);

/* ---- bookkeeping ----------------------------------------------------------------------------*/

/* Counts a call on d: in flight, and a request this minute. false (and nothing counted) when d
 * reached its rpm this minute meanwhile — another thread won the last slot: pick again with d
 * excluded. Exact across threads. */
bool router_begin(router *rt, const cfg_deployment *d, double now);

typedef struct {
    router_outcome outcome;
    int status;           /* upstream HTTP status; 0 = none */
    double latency_ms;    /* the whole call */
    long tokens;          /* total tokens, for tpm and usage-based routing (0 if unknown) */
    double retry_after_s; /* upstream Retry-After in seconds; < 0 = none */
    long completion_tokens; /* output tokens (0 if unknown): latency routing ranks non-streamed
                               calls by latency per output token, as LiteLLM does */
    double ttft_ms;       /* a stream's time to its first token (<= 0: not a stream); streamed
                             calls are ranked by it */
} router_report;

/* Ends a call started with router_begin (exactly one end per successful begin): in flight,
 * tokens this minute, latency, the minute's success/failure counts, and cooldown (see the top
 * of this file). Returns true when this failure put d into cooldown. */
bool router_end(router *rt, const cfg_deployment *d, const router_report *rep, double now);

/* Classifies an upstream HTTP status (0 = no answer) the way LiteLLM's exceptions map them;
 * context-window and content-policy errors need the body, so the caller refines 400s. */
router_outcome router_outcome_from_status(int status);

typedef struct {
    int in_flight;
    long requests_this_minute, tokens_this_minute;
    int successes_this_minute, failures_this_minute;
    double cooldown_until; /* 0 = not cooling */
    double latency_ms;     /* EWMA; < 0 = no sample */
    bool health_down;      /* marked down by a background health check */
} router_dep_stats;
void router_stats(const router *rt, const cfg_deployment *d, double now, router_dep_stats *out);
bool router_is_cooling(const router *rt, const cfg_deployment *d, double now);

/* ---- background health checks (general_settings.background_health_checks) ----------------- */

/* Records what a background health probe of d got back: its HTTP status, 0 when there was no
 * HTTP answer (refused, reset, DNS, TLS, timed out). No answer, 401, 404 and 5xx mark d down
 * for hold_s seconds (the caller passes a time past its next check, so the mark normally ends
 * with that check's report, not by itself); any other status — 2xx, and also 400, 408, 429:
 * the server is there and took the key — clears the mark at once. While marked, router_pick
 * skips d as long as its group has another deployment neither cooling nor marked (counted in
 * nunhealthy); when none is left the marks of that group are ignored and requests go to the
 * marked deployments as before (LiteLLM's health-check-routing safety net), where the usual
 * cooldowns apply. A mark is not a cooldown: it does not appear in cooldown_list, does not
 * shorten or end a cooldown, and ends with the next healthy check rather than after
 * cooldown_time. router_settings.disable_cooldowns turns the marks off too. Returns whether d
 * is marked now. Takes the const router the gateway hands out: the mark is one of the
 * per-deployment atomics, like the counters router_end updates. */
bool router_health_report(const router *rt, const cfg_deployment *d, int status, double hold_s,
                          double now);

/* ---- retry and fallback policy ------------------------------------------------------------- */

/* How many retries follow a first failure of class oc on d. request_num_retries: the request's
 * num_retries (body or x-litellm-num-retries header), -1 none. */
int router_retries_for(const router *rt, const cfg_deployment *d, router_outcome oc,
                       int request_num_retries);

/* LiteLLM's should_retry_this_error: false when this failure must go straight to fallbacks (or
 * to the client) — not found; a context-window or content-policy error while such fallbacks are
 * configured; a 429 with no healthy deployment left and fallbacks configured; an auth error in
 * a one-deployment group; no healthy (non-cooling) deployment left in g ("healthy" leaves out
 * deployments marked down by a health check unless that would leave none). req: the request body
 * (its fallback lists are read), or NULL. */
bool router_should_retry(const router *rt, const router_group *g, router_outcome oc,
                         const cJSON *req, double now);

/* Milliseconds to wait before retry number `attempt` (0 = the first retry). retry_after_s: the
 * upstream's Retry-After (< 0 none). g: the group being retried (NULL skips the instant-retry
 * rule). LiteLLM counts its exponent from the retries remaining, so the first two waits are both
 * the initial 0.5 s: 500, 500, 1000, 2000, 4000, 8000, 8000 ms before jitter. */
int router_backoff_ms(router *rt, const router_group *g, int attempt, double retry_after_s,
                      double now);

/* The model groups to fall back to after the retries are exhausted with a failure of class oc,
 * in order; at most min(max, max_fallbacks); never `group` itself. group: the model name as the
 * client sent it — LiteLLM keys fallbacks by that name (an alias, or the name a wildcard
 * matched), not by the group behind it. req: the request
 * body (its "fallbacks", "context_window_fallbacks", "content_policy_fallbacks" win over the
 * configured lists), or just its "fallbacks" array, or NULL. A request's "fallbacks" may also
 * be plain names or {"model": name, ...} objects: those apply to every error class. The strings
 * point into the cfg or into req. Returns how many were written to groups_out. */
int router_fallbacks(const router *rt, const char *group, router_outcome oc, const cJSON *req,
                     const char **groups_out, int max);

/* Upstream timeout in seconds: deployment stream_timeout/timeout, else router_settings
 * stream_timeout/timeout, else litellm_settings.request_timeout. */
double router_timeout_for(const router *rt, const cfg_deployment *d, bool stream);

#endif
