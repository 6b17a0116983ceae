/* admin — LiteLLM's management API: /key/..., /team/..., /user/..., /organization/..., /spend/logs,
 * /global/spend, with LiteLLM's request and response shapes and its rules for who may read or
 * change what (admins manage everything; a key may read its own /key/info; ...). Every handler
 * answers asynchronously through store jobs; while the database is unavailable they answer 503
 * with the reason. Changes to keys, teams and users invalidate the key cache of this instance at
 * once. */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <time.h>

#include "auth/auth.h"
#include "auth/keys.h"
#include "http/server.h"
#include "store/store.h"

typedef struct {
    store *st;
    keycache *kc;
    const cfg *cfg;
} admin_env;

/* Durations as LiteLLM writes them: "<n>s", "<n>m", "<n>h", "<n>d", "<n>w", "<n>mo": from +
 * the duration into *out; months are calendar months with the day clamped to the month's last
 * day (Jan 31 + 1mo = Feb 28/29). 0, or -1 for anything else (empty, negative, unknown unit,
 * trailing text, overflow). */
int adm_duration_add(time_t from, const char *s, time_t *out);

/* Process-wide wiring, before serving. */
void admin_init(const admin_env *env);

/* The management routes (handlers take the caller's identity). */
const http_route *admin_routes(int *n);

#endif
