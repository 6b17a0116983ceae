/* admin — LiteLLM's management API: /key/..., /team/..., /user/..., /organization/..., /spend/logs,
 * /global/spend, with LiteLLM's request and response shapes and its rules for who may read or
 * change what (admins manage everything; a key may read its own /key/info; ...). Every handler
 * answers asynchronously through store jobs; while the database is unavailable they answer 503
 * with the reason. Changes to keys, teams and users invalidate the key cache of this instance at
 * once. */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include "auth/auth.h"
#include "auth/keys.h"
#include "http/server.h"
#include "store/store.h"

typedef struct {
    store *st;
    keycache *kc;
    const cfg *cfg;
} admin_env;

/* Process-wide wiring, before serving. */
void admin_init(const admin_env *env);

/* The management routes (handlers take the caller's identity). */
const http_route *admin_routes(int *n);

#endif
