/* upstream/proxy — see proxy.h. */
#include "upstream/proxy.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *env2(const char *lower, const char *upper)
{
    const char *v = getenv(lower);
    if (v && *v)
        return v;
    v = getenv(upper);
    return v && *v ? v : NULL;
}

void ups_proxy_env_read(ups_proxy_env *e)
{
    e->http_proxy = env2("http_proxy", "HTTP_PROXY");
    e->https_proxy = env2("https_proxy", "HTTPS_PROXY");
    e->all_proxy = env2("all_proxy", "ALL_PROXY");
    e->no_proxy = env2("no_proxy", "NO_PROXY");
}

bool ups_host_is_loopback(const char *host)
{
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        char tmp[64];
        if (n - 2 >= sizeof tmp)
            return false;
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = 0;
        return ups_host_is_loopback(tmp);
    }
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return true;
    if (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0)
        return true;
    struct in_addr a4;
    /* inet_aton, unlike inet_pton, takes the shorthands resolvers accept ("127.1", "0x7f.1") */
    if (inet_aton(host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&a6))
            return a6.s6_addr[12] == 127;
    }
    return false;
}

static bool cidr_match(const char *entry, const char *host)
{
    const char *slash = strchr(entry, '/');
    if (!slash)
        return false;
    char net[64];
    size_t nl = (size_t)(slash - entry);
    if (nl >= sizeof net)
        return false;
    memcpy(net, entry, nl);
    net[nl] = 0;
    char *end;
    long bits = strtol(slash + 1, &end, 10);
    struct in_addr n4, h4;
    if (*end || bits < 0 || bits > 32 || inet_pton(AF_INET, net, &n4) != 1 ||
        inet_pton(AF_INET, host, &h4) != 1)
        return false;
    uint32_t mask = bits == 0 ? 0 : ~0u << (32 - bits);
    return (ntohl(n4.s_addr) & mask) == (ntohl(h4.s_addr) & mask);
}

bool ups_no_proxy_match(const char *no_proxy, const char *host)
{
    if (!no_proxy || !*no_proxy)
        return false;
    char hostbuf[256];
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1] → ::1 */
        host++;
        hl -= 2;
    }
    if (hl >= sizeof hostbuf)
        return false;
    memcpy(hostbuf, host, hl);
    hostbuf[hl] = 0;
    const char *p = no_proxy;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t l = strcspn(p, ", ");
        if (l == 0)
            break;
        char entry[256];
        if (l < sizeof entry) {
            memcpy(entry, p, l);
            entry[l] = 0;
            if (strcmp(entry, "*") == 0)
                return true;
            /* strip a :port, but not from an IPv6 literal */
            char *colon = strrchr(entry, ':');
            if (colon && strchr(entry, ':') == colon && !strchr(entry, '/'))
                *colon = 0;
            if (entry[0] == '[') {
                size_t el = strlen(entry);
                if (el >= 2 && entry[el - 1] == ']') {
                    memmove(entry, entry + 1, el - 2);
                    entry[el - 2] = 0;
                }
            }
            const char *e = entry[0] == '.' ? entry + 1 : entry;
            size_t el = strlen(e);
            if (strcasecmp(hostbuf, e) == 0)
                return true;
            if (el && hl > el && hostbuf[hl - el - 1] == '.' && strcasecmp(hostbuf + hl - el, e) == 0)
                return true;
            if (cidr_match(entry, hostbuf))
                return true;
        }
        p += l;
    }
    return false;
}

/* Splits scheme and host out of url into the buffers; false if url is not http(s). */
static bool url_parts(const char *url, bool *https, char *host, size_t hostcap)
{
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        *https = false;
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        *https = true;
        p = url + 8;
    } else {
        return false;
    }
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    size_t hl;
    if (p[0] == '[') {
        const char *rb = memchr(p, ']', n);
        if (!rb)
            return false;
        hl = (size_t)(rb - p) + 1;
    } else {
        const char *colon = memchr(p, ':', n);
        hl = colon ? (size_t)(colon - p) : n;
    }
    if (hl == 0 || hl >= hostcap)
        return false;
    memcpy(host, p, hl);
    host[hl] = 0;
    return true;
}

char *ups_proxy_for_url(const ups_proxy_env *e, const char *url)
{
    bool https;
    char host[256];
    if (!url_parts(url, &https, host, sizeof host))
        return strdup("");
    if (ups_host_is_loopback(host) || ups_no_proxy_match(e->no_proxy, host))
        return strdup("");
    const char *px = https ? e->https_proxy : e->http_proxy;
    if (!px)
        px = e->all_proxy;
    return strdup(px ? px : "");
}
