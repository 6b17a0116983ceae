/* upstream/proxy — which outbound proxy, if any, a given upstream URL goes through.
 * HTTP(S)_PROXY, ALL_PROXY and NO_PROXY (either case; lower case wins, as curl and Python do) are
 * honoured, except that loopback — 127.0.0.0/8, ::1, localhost and *.localhost — is never sent to
 * a proxy, whatever the environment says: a corporate proxy cannot reach the operator's own
 * loopback services, and LiteLLM users lost local vLLM/Ollama that way. Decided once per
 * deployment at start-up, never per request. Pure: no globals, the environment is passed in. */
#ifndef SLUICE_UPS_PROXY_H
#define SLUICE_UPS_PROXY_H

#include <stdbool.h>

typedef struct {
    const char *http_proxy, *https_proxy, *all_proxy, *no_proxy;
} ups_proxy_env;

/* Reads the variables from the process environment (pointers into environ). */
void ups_proxy_env_read(ups_proxy_env *e);
bool ups_host_is_loopback(const char *host);
/* host matches a NO_PROXY list: "*", exact names, domain suffixes (".corp" or "corp" matches
 * "x.corp"), IP literals and IPv4 CIDR blocks; ports in entries are ignored. */
bool ups_no_proxy_match(const char *no_proxy, const char *host);
/* The proxy URL for url, or "" for a direct connection. Heap string; caller frees. */
char *ups_proxy_for_url(const ups_proxy_env *e, const char *url);

#endif
