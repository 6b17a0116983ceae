/* upstream/gauth_internal — gauth.c's pure pieces (credential parsing, JWT signing, token
 * response parsing) and a clock hook, exposed for tests/unit/test_gauth.c only. Nothing in src/
 * but gauth.c includes this file. */
#ifndef SLUICE_GAUTH_INTERNAL_H
#define SLUICE_GAUTH_INTERNAL_H

#include <stddef.h>

#include <openssl/evp.h>

typedef enum { GAUTH_SERVICE_ACCOUNT = 1, GAUTH_AUTHORIZED_USER, GAUTH_METADATA } gauth_kind;

/* Parsed credentials. Strings are heap copies; pkey is set for service accounts. */
typedef struct {
    gauth_kind kind;
    char *client_email, *private_key_id, *token_uri; /* service_account (token_uri: both) */
    char *client_id, *client_secret, *refresh_token; /* authorized_user */
    EVP_PKEY *pkey;
} gauth_creds;

#define GAUTH_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define GAUTH_TOKEN_URI "https://oauth2.googleapis.com/token"

/* Parses a credentials JSON document. source names it in messages ("/path/key.json", "inline
 * vertex_credentials"). 0, or -1 with "<source>: <problem>" in err (never key material). */
int gauth_test_parse_creds(const char *json, size_t len, const char *source, gauth_creds *c,
                           char *err, size_t errlen);
/* Frees the strings (wiped first) and the key; c may be zeroed or partly filled. */
void gauth_test_creds_free(gauth_creds *c);

/* The signed RS256 assertion "header.claims.signature" for iss/scope/aud at time iat (exp is
 * iat + 3600); kid may be NULL. Heap string, or NULL with a reason in err. */
char *gauth_test_jwt(EVP_PKEY *pkey, const char *kid, const char *iss, const char *scope,
                     const char *aud, long long iat, char *err, size_t errlen);

/* Parses a token endpoint's answer. 0 with *token (heap) and *expires_in set, or -1 with a
 * message naming the HTTP status and the endpoint's error code and description. */
int gauth_test_parse_token(const char *body, size_t len, long http_status, char **token,
                           long long *expires_in, char *err, size_t errlen);

/* Moves gauth's monotonic clock forward (expiry, proactive refresh and backoff all use it) and
 * wakes the refresh thread, so tests can reach "five minutes before expiry" without waiting. */
void gauth_test_advance(double seconds);

#endif
