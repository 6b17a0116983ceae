/* upstream/gauth — Google OAuth2 access tokens for Vertex AI.
 *
 * Credential sources, in LiteLLM's order: the deployment's vertex_credentials (a file path or
 * the JSON itself), else GOOGLE_APPLICATION_CREDENTIALS, else the gcloud ADC file
 * (~/.config/gcloud/application_default_credentials.json, or $CLOUDSDK_CONFIG/...), else the GCE
 * metadata server ($GCE_METADATA_HOST or metadata.google.internal). Service accounts sign an
 * RS256 JWT with OpenSSL and exchange it at the file's token_uri; authorized_user files use the
 * refresh-token grant (token_uri from the file when present, else Google's).
 *
 * One gauth per distinct source, shared by all workers. Tokens are cached until 5 minutes before
 * they expire and refreshed ahead of time by gauth's own thread, so a request with a cached
 * token never waits on the network, and concurrent requests share one refresh. Errors name the
 * source (file path, "metadata server", account email) — never a key, token or secret. */
#ifndef SLUICE_GAUTH_H
#define SLUICE_GAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "util/mbox.h"

typedef struct gauth gauth;

/* The shared handle for a credential source (vertex_credentials may be NULL). Loads and checks
 * the file now (at config load, on the main thread). NULL with a message in err on failure. */
gauth *gauth_get(const char *vertex_credentials, char *err, size_t errlen);

/* TLS verification for token requests: litellm_settings.ssl_verify (or SSL_VERIFY) and the CA
 * bundle from it or SSL_CERT_FILE, as read into the config. verify false skips certificate and
 * host name checks; ca_file (copied; NULL = libcurl's default store) is then the only trusted
 * bundle. Takes effect from the next token request; the default is to verify. */
void gauth_set_tls(bool verify, const char *ca_file);

/* Called on the requesting thread (through its mailbox) once a token or an error is known. The
 * token string is valid only during the call. Callbacks never run after gauth_shutdown. */
typedef void (*gauth_cb)(void *arg, const char *token, const char *error);

/* If a valid token is cached, copies it into buf and returns 1. Otherwise returns 0 and cb(arg)
 * will be posted to mb when the (shared) refresh ends; -1 if the request could not be queued or
 * buf is too small for the token. */
int gauth_token(gauth *g, mbox *mb, gauth_cb cb, void *arg, char *buf, size_t buflen);

/* "service account sa@proj.iam.gserviceaccount.com (from /path/key.json)" etc.: safe to show. */
const char *gauth_describe(const gauth *g);

/* Stops the refresh thread and frees every handle; pending waiters are dropped uncalled. Must
 * run before the workers' mailboxes are freed (http_opts.before_teardown). Idempotent. */
void gauth_shutdown(void);

#endif
