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

struct key_rec;

/* Who is calling, as resolved by the dispatcher before a handler runs. */
typedef enum {
    IDENT_PUBLIC, /* a public route: nobody was asked */
    IDENT_OPEN,   /* no master key configured: everything allowed (loopback only) */
    IDENT_MASTER, /* the master key */
    IDENT_KEY,    /* a virtual key (rec below) */
} ident_kind;

typedef struct {
    ident_kind kind;
    bool admin;            /* master key, open proxy, or a key whose user is a proxy_admin */
    struct key_rec *rec;   /* IDENT_KEY: the key's record, referenced for the handler's call;
                              an async handler that keeps it takes its own reference */
    char token[65];        /* SHA-256 hex of the presented key ("" for open/public) */
} auth_ident;

/* The key from the request headers, or NULL. *malformed is set for a bad Authorization. */
const char *auth_extract(const struct evkeyvalq *h, size_t *len, bool *malformed);
auth_result auth_check(const cfg *c, const struct evkeyvalq *h);
/* Client-facing message for a failed check (LiteLLM's wording). */
const char *auth_message(auth_result r);
/* "sk-...abcd" (keys under 16 characters: "***"): the only form of a key that may appear in a
 * message. */
void auth_abbrev(const char *key, size_t len, char out[16]);

#endif
