/* auth — who is calling. Reads the key from the headers LiteLLM accepts (Authorization: Bearer,
 * x-api-key, api-key, x-goog-api-key, x-litellm-api-key; Authorization wins) and checks it
 * against the master key in constant time. The bearer token is hostile input: it is never
 * logged, never echoed whole, and never used in a query. Virtual keys arrive with the store. */
#ifndef SLUICE_AUTH_H
#define SLUICE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/keyvalq_struct.h>

#include "config/config.h"

typedef enum {
    AUTH_OK,
    AUTH_OPEN,      /* no master key configured: open proxy (loopback only) */
    AUTH_MISSING,
    AUTH_MALFORMED, /* an Authorization scheme other than Bearer/Basic */
    AUTH_INVALID,
} auth_result;

/* The key from the request headers, or NULL. *malformed is set for a bad Authorization. */
const char *auth_extract(const struct evkeyvalq *h, size_t *len, bool *malformed);
auth_result auth_check(const cfg *c, const struct evkeyvalq *h);
/* Client-facing message for a failed check (LiteLLM's wording). */
const char *auth_message(auth_result r);
/* "sk-...abcd" (keys under 16 characters: "***"): the only form of a key that may appear in a
 * message. */
void auth_abbrev(const char *key, size_t len, char out[16]);

#endif
