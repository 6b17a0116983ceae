/* auth/keys — virtual keys as the request path sees them: an in-memory cache of key records
 * (with their team, user and organization limits) keyed by the SHA-256 hex of the key, loaded
 * from the store on a miss without blocking the worker, and invalidated at once when the
 * management API changes a key in this instance.
 *
 * Records are immutable once published and reference-counted: a request holds its record until
 * it ends, while the cache may already hold a newer one. Spend that happened since the record
 * was loaded is not in it: limits/ keeps the in-memory delta, measured from the written total
 * stamped into the record when it was read (lim_budget_spend_since), so a record stays exact
 * after spend is written and is reloaded only when its TTL runs out. */
#ifndef SLUICE_AUTH_KEYS_H
#define SLUICE_AUTH_KEYS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "store/store.h"
#include "util/mbox.h"

/* Limits and budget of one entity (key, team, user or organization). */
typedef struct {
    char *id;                /* key hash, team_id, user_id or organization_id */
    double spend;            /* as loaded from the store */
    double written_at_load;  /* limits/' written total for this entity at that moment */
    double max_budget;       /* < 0: none */
    char *budget_duration;   /* "30d", NULL: none */
    time_t budget_reset_at;  /* 0: none */
    long rpm_limit, tpm_limit, max_parallel; /* < 0: none */
    char **models;           /* allowed models; nmodels == 0: all */
    int nmodels;
    bool blocked;
} key_entity;

typedef struct key_rec {
    atomic_int refs;
    char token[65];          /* SHA-256 hex of the key */
    char *key_alias;
    char *key_name;          /* "sk-...abcd" */
    char *user_role;         /* the key's user's role ("proxy_admin", ...), NULL if no user */
    time_t expires;          /* 0: never */
    cJSON *aliases;          /* model alias map */
    cJSON *metadata;
    key_entity key;
    bool has_team, has_user, has_org;
    key_entity team, user, org;
    time_t loaded_at;
} key_rec;

void key_rec_ref(key_rec *k);
void key_rec_unref(key_rec *k);

/* Builds a record from a store row joined as keys_load does (exposed for the admin API, which
 * returns the same fields). */
key_rec *key_rec_from_row(const db_result *r, int row);

typedef struct keycache keycache;

/* ttl_s: how long a loaded record is trusted (LiteLLM's user_api_key_cache_ttl, default 60). */
keycache *keycache_new(store *st, double ttl_s);
void keycache_free(keycache *kc);

/* Runs on the store thread right after a record was read, to stamp written_at_load. */
typedef void (*key_stamp_fn)(void *ctx, key_rec *rec);
void keycache_set_stamp(keycache *kc, key_stamp_fn fn, void *ctx);

typedef void (*key_lookup_cb)(void *arg, key_rec *rec, const char *db_error);

/* Looks up a key by hash. A cached answer is returned at once: 1 with *out referenced, or 1 with
 * *out NULL when the key is known not to exist (remembered for a few seconds).
 * Otherwise returns 0 and cb runs later on mb's loop with the record (referenced; NULL when the
 * key does not exist) or, when the store is unavailable, db_error set and — if a stale record
 * is cached — that record (the API keeps serving cached keys while the database is down).
 * -1 when the lookup cannot be queued. */
int keycache_get(keycache *kc, const char *token, mbox *mb, key_lookup_cb cb, void *arg,
                 key_rec **out);
/* Drops a key (and, with token NULL, everything) so the next request reloads it. */
void keycache_invalidate(keycache *kc, const char *token);
/* Drops every key of a team / user (after /team/update, /user/update, ...). */
void keycache_invalidate_owner(keycache *kc, const char *team_id, const char *user_id);
/* Marks a key (token NULL: every key; or the keys of a team / user) for re-reading before its
 * next use, keeping the record: the next lookup waits for the database, and if the database is
 * down it still gets this record. Used after a budget period was reset. */
void keycache_refresh(keycache *kc, const char *token, const char *team_id, const char *user_id);

#endif
