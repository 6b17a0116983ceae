/* config — see config.h.
 *
 * Validation walks libfyaml's node tree directly (not a cJSON copy) so every problem can name
 * the line it comes from. Only litellm_params and model_info are also kept as cJSON, for
 * /model/info. Unknown keys are collected into cfg->ignored so the operator sees, once, what
 * sluice does not act on yet — LiteLLM configs carry many keys and silently dropping one is how
 * surprises happen. */
#include "config/config.h"

#include <errno.h>
#include <math.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "util/hash.h"
#include "util/duration.h"

const char cfg_demo_yaml[] =
    "# sluice's built-in demo: answers offline through LiteLLM's mock_response.\n"
    "model_list:\n"
    "  - model_name: demo\n"
    "    litellm_params:\n"
    "      model: openai/demo\n"
    "      mock_response: \"Hello from sluice! This answer comes from the built-in demo model, "
    "without any network.\"\n"
    "  - model_name: gpt-4o-mini\n"
    "    litellm_params:\n"
    "      model: openai/gpt-4o-mini\n"
    "      mock_response: \"This is sluice's demo standing in for gpt-4o-mini: point a "
    "config.yaml at a real provider to get real answers.\"\n"
    "  - model_name: text-embedding-3-small\n"
    "    litellm_params:\n"
    "      model: openai/text-embedding-3-small\n"
    "      mock_response: \"embedding\"\n"
    "    model_info:\n"
    "      mode: embedding\n";

/* ---- problems ---------------------------------------------------------------------------- */

static void add_problem(cfg_problems *p, bool warning, const char *file, int line, int col,
                        const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add_problem(cfg_problems *p, bool warning, const char *file, int line, int col,
                        const char *fmt, ...)
{
    cfg_problem *nv = realloc(p->v, (p->n + 1) * sizeof *nv);
    if (!nv)
        return;
    p->v = nv;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cfg_problem *e = &p->v[p->n++];
    e->file = strdup(file ? file : "<config>");
    e->line = line;
    e->column = col;
    e->msg = strdup(msg);
    e->warning = warning;
}

void cfg_problems_free(cfg_problems *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].file);
        free(p->v[i].msg);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

void cfg_problem_format(const cfg_problem *p, char *out, size_t outlen)
{
    const char *kind = p->warning ? "warning" : "error";
    if (p->line > 0 && p->column > 0)
        snprintf(out, outlen, "%s:%d:%d: %s: %s", p->file, p->line, p->column, kind, p->msg);
    else if (p->line > 0)
        snprintf(out, outlen, "%s:%d: %s: %s", p->file, p->line, kind, p->msg);
    else
        snprintf(out, outlen, "%s: %s: %s", p->file, kind, p->msg);
}

/* ---- .env -------------------------------------------------------------------------------- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = 0;
    return s;
}

int cfg_load_dotenv(const char *path, cfg_problems *probs)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[8192];
    int lineno = 0, set = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            add_problem(probs, true, path, lineno, 0, "line is not KEY=VALUE; skipped");
            continue;
        }
        *eq = 0;
        char *key = trim(s);
        char *val = trim(eq + 1);
        bool keyok = *key != 0;
        for (char *k = key; *k; k++)
            if (!(*k == '_' || (*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
                  (k != key && *k >= '0' && *k <= '9')))
                keyok = false;
        if (!keyok) {
            add_problem(probs, true, path, lineno, 0, "'%s' is not a valid variable name; skipped",
                        key);
            continue;
        }
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            char q = val[0];
            val[vl - 1] = 0;
            val++;
            if (q == '"') { /* minimal escapes inside double quotes */
                char *w = val;
                for (char *r = val; *r; r++) {
                    if (*r == '\\' && r[1]) {
                        r++;
                        *w++ = *r == 'n' ? '\n' : *r;
                    } else {
                        *w++ = *r;
                    }
                }
                *w = 0;
            }
        } else {
            /* unquoted: a " #" starts a comment */
            char *hash = strstr(val, " #");
            if (hash)
                *trim(hash) = 0, *hash = 0;
            val = trim(val);
        }
        if (!getenv(key)) {
            setenv(key, val, 0);
            set++;
        }
    }
    fclose(f);
    return set;
}

/* ---- YAML helpers ------------------------------------------------------------------------ */

typedef struct {
    const char *file;
    cfg_problems *probs;
    cfg *c;
    bool errors;
} loader;

static int node_line(struct fy_node *n)
{
    if (!n)
        return 0;
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR: {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
        return m ? m->line + 1 : 0;
    }
    case FYNT_MAPPING: {
        void *it = NULL;
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p ? node_line(fy_node_pair_key(p)) : 0;
    }
    case FYNT_SEQUENCE: {
        void *it = NULL;
        return node_line(fy_node_sequence_iterate(n, &it));
    }
    }
    return 0;
}

static int node_col(struct fy_node *n)
{
    if (!n || fy_node_get_type(n) != FYNT_SCALAR)
        return 0;
    struct fy_token *t = fy_node_get_scalar_token(n);
    const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
    return m ? m->column + 1 : 0;
}

#define ERR(L, node, ...)                                                                      \
    do {                                                                                       \
        add_problem((L)->probs, false, (L)->file, node_line(node), node_col(node), __VA_ARGS__); \
        (L)->errors = true;                                                                    \
    } while (0)
#define WARN(L, node, ...)                                                                     \
    add_problem((L)->probs, true, (L)->file, node_line(node), node_col(node), __VA_ARGS__)

static bool is_null_scalar(struct fy_node *n)
{
    if (!n)
        return true;
    if (fy_node_get_type(n) != FYNT_SCALAR || fy_node_get_style(n) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    return len == 0 || (len == 1 && s[0] == '~') || (len == 4 && strncasecmp(s, "null", 4) == 0);
}

/* Scalar text with os.environ/VAR resolved. Returns a heap string, or NULL when the node is not
 * a scalar, is null, or names an unset variable (which is warned about: LiteLLM treats it as
 * None, and a config that is fine apart from one unused provider's key must still start). */
static char *scalar_str_q(loader *L, struct fy_node *n, const char *what, bool quiet);

static char *scalar_str(loader *L, struct fy_node *n, const char *what)
{
    return scalar_str_q(L, n, what, false);
}

static char *scalar_str_q(loader *L, struct fy_node *n, const char *what, bool quiet)
{
    if (is_null_scalar(n))
        return NULL;
    if (fy_node_get_type(n) != FYNT_SCALAR) {
        ERR(L, n, "%s must be a string, not a %s", what,
            fy_node_get_type(n) == FYNT_MAPPING ? "mapping" : "list");
        return NULL;
    }
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    if (len > 11 && strncmp(s, "os.environ/", 11) == 0) {
        char var[256];
        size_t vl = len - 11 < sizeof var - 1 ? len - 11 : sizeof var - 1;
        memcpy(var, s + 11, vl);
        var[vl] = 0;
        const char *v = getenv(var);
        if (!v) {
            if (!quiet)
                WARN(L, n, "%s: environment variable %s (os.environ/%s) is not set", what, var,
                     var);
            return NULL;
        }
        return strdup(v);
    }
    return strndup(s, len);
}

static bool scalar_num(loader *L, struct fy_node *n, const char *what, double *out)
{
    char *s = scalar_str(L, n, what);
    if (!s)
        return false;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    bool ok = end != s && *trim(end) == 0 && errno == 0 && isfinite(d) && fabs(d) < 1e15;
    if (!ok)
        ERR(L, n, "%s must be a (finite) number, got '%s'", what, s);
    free(s);
    if (ok)
        *out = d;
    return ok;
}

static bool parse_bool_text(const char *s, bool *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"};
    static const char *const f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0)
            return *out = true, true;
        if (strcasecmp(s, f[i]) == 0)
            return *out = false, true;
    }
    return false;
}

static bool scalar_bool(loader *L, struct fy_node *n, const char *what, bool *out)
{
    char *s = scalar_str(L, n, what);
    if (!s)
        return false;
    bool ok = parse_bool_text(s, out);
    if (!ok)
        ERR(L, n, "%s must be true or false, got '%s'", what, s);
    free(s);
    return ok;
}

/* ssl_verify as LiteLLM takes it: true / false, or the path of a CA bundle (verification on,
 * against that bundle). A path that cannot be read is an error: a typo would otherwise fail
 * every request with a TLS error far from its cause. */
static bool ssl_verify_text(loader *L, struct fy_node *n, const char *what, const char *s,
                            int *verify, char **ca_file)
{
    bool b;
    if (parse_bool_text(s, &b)) {
        *verify = b;
        return true;
    }
    if (access(s, R_OK) != 0) {
        ERR(L, n, "%s: '%s' is neither true/false nor a readable CA bundle file (%s)", what, s,
            strerror(errno));
        return false;
    }
    *verify = 1;
    *ca_file = strdup(s);
    return true;
}

static void scalar_ssl_verify(loader *L, struct fy_node *n, const char *what, int *verify,
                              char **ca_file)
{
    char *s = scalar_str(L, n, what);
    if (s)
        ssl_verify_text(L, n, what, s, verify, ca_file);
    free(s);
}

/* YAML subtree → cJSON with os.environ/ substitution; plain scalars become numbers/bools/null
 * the way PyYAML would type them. */
static cJSON *to_json(loader *L, struct fy_node *n)
{
    if (!n || is_null_scalar(n))
        return cJSON_CreateNull();
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING: {
        cJSON *o = cJSON_CreateObject();
        void *it = NULL;
        struct fy_node_pair *p;
        while ((p = fy_node_mapping_iterate(n, &it))) {
            size_t kl;
            const char *k = fy_node_get_scalar(fy_node_pair_key(p), &kl);
            if (!k)
                continue;
            char *key = strndup(k, kl);
            cJSON_AddItemToObject(o, key, to_json(L, fy_node_pair_value(p)));
            free(key);
        }
        return o;
    }
    case FYNT_SEQUENCE: {
        cJSON *a = cJSON_CreateArray();
        void *it = NULL;
        struct fy_node *e;
        while ((e = fy_node_sequence_iterate(n, &it)))
            cJSON_AddItemToArray(a, to_json(L, e));
        return a;
    }
    case FYNT_SCALAR:
    default: {
        size_t len;
        const char *s = fy_node_get_scalar(n, &len);
        if (fy_node_get_style(n) == FYNS_PLAIN) {
            char tmp[64];
            if (len < sizeof tmp) {
                memcpy(tmp, s, len);
                tmp[len] = 0;
                bool b;
                if ((strcasecmp(tmp, "true") == 0 || strcasecmp(tmp, "false") == 0) &&
                    parse_bool_text(tmp, &b))
                    return cJSON_CreateBool(b);
                char *end;
                double d = strtod(tmp, &end);
                if (end != tmp && *end == 0 && strspn(tmp, "+-0123456789.eE") == len)
                    return cJSON_CreateNumber(d);
            }
        }
        /* quiet: the field's own parser has already warned about an unset variable */
        char *v = scalar_str_q(L, n, "value", true);
        cJSON *r = v ? cJSON_CreateString(v) : cJSON_CreateNull();
        free(v);
        return r;
    }
    }
}

static void note_ignored(loader *L, const char *section, const char *key, struct fy_node *n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s%s (line %d)", section, *section ? "." : "", key,
             node_line(n));
    /* once per key name: a 40-deployment config lists "litellm_params.rpm" once */
    size_t kl = strlen(section) + (*section ? 1 : 0) + strlen(key);
    for (size_t i = 0; i < L->c->nignored; i++)
        if (strncmp(L->c->ignored[i], buf, kl) == 0 && L->c->ignored[i][kl] == ' ')
            return;
    char **nv = realloc(L->c->ignored, (L->c->nignored + 1) * sizeof *nv);
    if (!nv)
        return;
    L->c->ignored = nv;
    L->c->ignored[L->c->nignored++] = strdup(buf);
}

static bool key_is(struct fy_node_pair *p, const char *k, char *keybuf, size_t keylen)
{
    size_t len;
    const char *s = fy_node_get_scalar(fy_node_pair_key(p), &len);
    keybuf[0] = 0; /* a non-scalar key must not be read as the previous one */
    if (!s)
        return false;
    size_t l = len < keylen - 1 ? len : keylen - 1;
    memcpy(keybuf, s, l);
    keybuf[l] = 0;
    return k && strcmp(keybuf, k) == 0;
}

static bool in_list(const char *k, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(k, *list) == 0)
            return true;
    return false;
}

static bool is_mapping(struct fy_node *n)
{
    return n && fy_node_get_type(n) == FYNT_MAPPING;
}

/* ---- sections ---------------------------------------------------------------------------- */

static bool valid_http_url(const char *u)
{
    return (strncasecmp(u, "http://", 7) == 0 && u[7] && u[7] != '/') ||
           (strncasecmp(u, "https://", 8) == 0 && u[8] && u[8] != '/');
}

static char *host_of(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *at = NULL;
    size_t n = strcspn(p, "/?#");
    for (size_t i = 0; i < n; i++)
        if (p[i] == '@')
            at = p + i; /* never show userinfo */
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    return strndup(p, n);
}

#define AZURE_DEFAULT_API_VERSION "2024-10-21"

/* Keys router/ and spend/ read from the JSON copies of litellm_params / router_settings /
 * litellm_settings: accepted here without being reported as ignored. */
static const char *const router_param_keys[] = {
    "weight", "order", "num_retries", "cooldown_time", "input_cost_per_token",
    "output_cost_per_token", "cache_read_input_token_cost", "cache_creation_input_token_cost",
    NULL};
static const char *const router_setting_keys[] = {
    "routing_strategy", "routing_strategy_args", "num_retries", "retry_after",
    "stream_timeout", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
    "default_fallbacks", "max_fallbacks", "allowed_fails", "allowed_fails_policy",
    "cooldown_time", "disable_cooldowns", "retry_policy", "model_group_alias",
    "enable_pre_call_checks", "optional_pre_call_checks", NULL};

static void env_default(char **field, const char *var)
{
    const char *v;
    if (!*field && (v = getenv(var)) && *v)
        *field = strdup(v);
}

/* vertex_project / vertex_ai_project (and the _location pair) are aliases in LiteLLM, where the
 * vertex_* name wins when both are given; a second value replaces nothing silently. */
static void vertex_alias(loader *L, struct fy_node *v, const char *key, const char *canonical,
                         const char *model_name, char **dst)
{
    char what[64];
    snprintf(what, sizeof what, "litellm_params.%s", key);
    char *val = scalar_str(L, v, what);
    if (!*dst) {
        *dst = val;
        return;
    }
    if (val && strcmp(val, *dst) != 0)
        WARN(L, v, "model '%s': both %s and its alias are set to different values; using %s",
             model_name, canonical, canonical);
    if (val && strcmp(key, canonical) == 0) {
        free(*dst);
        *dst = val;
    } else {
        free(val);
    }
}

static void load_deployment(loader *L, struct fy_node *item, size_t index)
{
    cfg *c = L->c;
    if (!is_mapping(item)) {
        ERR(L, item, "model_list[%zu] must be a mapping with model_name and litellm_params", index);
        return;
    }
    struct fy_node *name_n = NULL, *params_n = NULL, *info_n = NULL;
    void *it = NULL;
    struct fy_node_pair *p;
    char key[128];
    while ((p = fy_node_mapping_iterate(item, &it))) {
        if (key_is(p, "model_name", key, sizeof key))
            name_n = fy_node_pair_value(p);
        else if (strcmp(key, "litellm_params") == 0)
            params_n = fy_node_pair_value(p);
        else if (strcmp(key, "model_info") == 0)
            info_n = fy_node_pair_value(p);
        else
            note_ignored(L, "model_list[]", key, fy_node_pair_key(p));
    }
    char *model_name = scalar_str(L, name_n, "model_name");
    if (!model_name || !*model_name) {
        ERR(L, item, "model_list[%zu] has no model_name", index);
        free(model_name);
        return;
    }
    if (!is_mapping(params_n)) {
        ERR(L, params_n ? params_n : item, "model '%s' needs a litellm_params mapping",
            model_name);
        free(model_name);
        return;
    }
    if (info_n && !is_null_scalar(info_n) && !is_mapping(info_n)) {
        ERR(L, info_n, "model '%s': model_info must be a mapping", model_name);
        info_n = NULL;
    }

    cfg_deployment d = {0};
    d.model_name = model_name;
    d.line = node_line(item);
    d.drop_params = -1;
    d.ssl_verify = -1;
    d.timeout = 0;
    d.stream_timeout = 0;
    d.max_retries = 0;
    struct fy_node *model_n = NULL;
    it = NULL;
    while ((p = fy_node_mapping_iterate(params_n, &it))) {
        struct fy_node *v = fy_node_pair_value(p);
        key_is(p, NULL, key, sizeof key);
        if (strcmp(key, "model") == 0) {
            model_n = v;
            d.model = scalar_str(L, v, "litellm_params.model");
        } else if (strcmp(key, "api_base") == 0 || strcmp(key, "base_url") == 0) {
            free(d.api_base);
            d.api_base = scalar_str(L, v, "litellm_params.api_base");
            if (d.api_base && !valid_http_url(d.api_base)) {
                ERR(L, v, "model '%s': api_base must be an http:// or https:// URL, got '%s'",
                    model_name, d.api_base);
            }
        } else if (strcmp(key, "api_key") == 0) {
            d.api_key = scalar_str(L, v, "litellm_params.api_key");
        } else if (strcmp(key, "timeout") == 0) {
            if (scalar_num(L, v, "litellm_params.timeout", &d.timeout) && d.timeout <= 0)
                ERR(L, v, "model '%s': timeout must be a positive number of seconds", model_name);
        } else if (strcmp(key, "stream_timeout") == 0) {
            if (scalar_num(L, v, "litellm_params.stream_timeout", &d.stream_timeout) &&
                d.stream_timeout <= 0)
                ERR(L, v, "model '%s': stream_timeout must be a positive number of seconds",
                    model_name);
        } else if (strcmp(key, "max_retries") == 0) {
            double r;
            if (scalar_num(L, v, "litellm_params.max_retries", &r)) {
                if (r < 0 || r > 10 || r != (int)r)
                    ERR(L, v, "model '%s': max_retries must be a whole number from 0 to 10",
                        model_name);
                else
                    d.max_retries = (int)r;
            }
        } else if (strcmp(key, "rpm") == 0 || strcmp(key, "tpm") == 0) {
            double r;
            if (scalar_num(L, v, key[0] == 'r' ? "litellm_params.rpm" : "litellm_params.tpm", &r)) {
                if (r < 0)
                    ERR(L, v, "model '%s': %s must not be negative", model_name, key);
                else if (key[0] == 'r')
                    d.rpm = (long)r;
                else
                    d.tpm = (long)r;
            }
            /* used by the router for selection */
        } else if (in_list(key, router_param_keys)) {
            /* read by router/ from litellm_params */
        } else if (strcmp(key, "mock_response") == 0) {
            d.mock_response = scalar_str(L, v, "litellm_params.mock_response");
        } else if (strcmp(key, "api_version") == 0) {
            d.api_version = scalar_str(L, v, "litellm_params.api_version");
        } else if (strcmp(key, "vertex_project") == 0 || strcmp(key, "vertex_ai_project") == 0) {
            vertex_alias(L, v, key, "vertex_project", model_name, &d.vertex_project);
        } else if (strcmp(key, "vertex_location") == 0 || strcmp(key, "vertex_ai_location") == 0) {
            vertex_alias(L, v, key, "vertex_location", model_name, &d.vertex_location);
        } else if (strcmp(key, "vertex_credentials") == 0) {
            d.vertex_credentials = scalar_str(L, v, "litellm_params.vertex_credentials");
        } else if (strcmp(key, "drop_params") == 0) {
            bool b;
            if (scalar_bool(L, v, "litellm_params.drop_params", &b))
                d.drop_params = b;
        } else if (strcmp(key, "ssl_verify") == 0) {
            free(d.ssl_ca_file);
            d.ssl_ca_file = NULL;
            scalar_ssl_verify(L, v, "litellm_params.ssl_verify", &d.ssl_verify, &d.ssl_ca_file);
        } else {
            note_ignored(L, "litellm_params", key, fy_node_pair_key(p));
        }
    }
    if (!d.model || !*d.model) {
        ERR(L, model_n ? model_n : params_n, "model '%s': litellm_params.model is required "
                                             "(e.g. openai/gpt-4o)", model_name);
        goto fail;
    }
    size_t pl;
    d.kind = prov_classify(d.model, &pl);
    d.provider = pl ? strndup(d.model, pl) : strdup("openai");
    d.upstream_model = strdup(d.model + (pl ? pl + 1 : 0));
    d.litellm_params = to_json(L, params_n);
    /* secrets never leave through /model/info */
    static const char *const secret_keys[] = {"api_key", "vertex_credentials",
                                              "aws_secret_access_key", "aws_session_token",
                                              "client_secret", "azure_ad_token", NULL};
    for (const char *const *k = secret_keys; *k; k++)
        cJSON_DeleteItemFromObjectCaseSensitive(d.litellm_params, *k);
    d.model_info = info_n ? to_json(L, info_n) : cJSON_CreateObject();
    if (!cJSON_IsObject(d.model_info)) {
        cJSON_Delete(d.model_info);
        d.model_info = cJSON_CreateObject();
    }
    cJSON *idj = cJSON_GetObjectItemCaseSensitive(d.model_info, "id");
    if (cJSON_IsString(idj) && idj->valuestring[0]) {
        d.id = strdup(idj->valuestring);
    } else {
        /* LiteLLM derives an id from the deployment's params; ours hashes the public parts */
        char *txt = cJSON_PrintUnformatted(d.litellm_params);
        const void *parts[2] = {model_name, txt ? txt : ""};
        size_t lens[2] = {strlen(model_name) + 1, txt ? strlen(txt) : 0};
        unsigned char dg[32];
        sha256_parts(parts, lens, 2, dg);
        free(txt);
        d.id = malloc(65);
        hex_encode(dg, 32, d.id);
        cJSON_DeleteItemFromObjectCaseSensitive(d.model_info, "id");
        cJSON_AddStringToObject(d.model_info, "id", d.id);
    }
    for (size_t i = 0; i < c->ndeps; i++)
        if (strcmp(c->deps[i].id, d.id) == 0)
            ERR(L, item, "model '%s': deployment id '%s' is already used by model '%s' (line %d)",
                model_name, d.id, c->deps[i].model_name, c->deps[i].line);

    switch (d.kind) {
    case PROV_OPENAI:
        if (!d.api_base && !d.mock_response)
            d.api_base = strdup("https://api.openai.com/v1");
        if (!d.api_key && !d.mock_response) {
            const char *k = getenv("OPENAI_API_KEY");
            if (k)
                d.api_key = strdup(k);
            else if (strcmp(d.api_base, "https://api.openai.com/v1") == 0)
                WARN(L, params_n, "model '%s': no api_key and OPENAI_API_KEY is not set",
                     model_name);
        }
        break;
    case PROV_OLLAMA_CHAT:
        if (!d.api_base && !d.mock_response)
            d.api_base = strdup("http://localhost:11434");
        break;
    case PROV_OPENAI_COMPATIBLE:
        if (!d.api_base && !d.mock_response)
            ERR(L, params_n, "model '%s': provider '%s' needs an api_base", model_name,
                d.provider);
        break;
    case PROV_AZURE:
        env_default(&d.api_key, "AZURE_API_KEY");
        env_default(&d.api_base, "AZURE_API_BASE");
        env_default(&d.api_version, "AZURE_API_VERSION");
        if (!d.api_version)
            d.api_version = strdup(AZURE_DEFAULT_API_VERSION);
        if (!d.api_base && !d.mock_response)
            ERR(L, params_n, "model '%s': azure needs an api_base (or AZURE_API_BASE)",
                model_name);
        break;
    case PROV_ANTHROPIC:
        env_default(&d.api_key, "ANTHROPIC_API_KEY");
        env_default(&d.api_base, "ANTHROPIC_API_BASE");
        if (!d.api_base && !d.mock_response)
            d.api_base = strdup("https://api.anthropic.com");
        if (!d.api_key && !d.mock_response)
            WARN(L, params_n, "model '%s': no api_key and ANTHROPIC_API_KEY is not set",
                 model_name);
        break;
    case PROV_GEMINI:
        env_default(&d.api_key, "GEMINI_API_KEY");
        if (!d.api_key && !d.mock_response)
            WARN(L, params_n, "model '%s': no api_key and GEMINI_API_KEY is not set",
                 model_name);
        break;
    case PROV_VERTEX_GEMINI:
    case PROV_VERTEX_CLAUDE:
        env_default(&d.vertex_project, "VERTEXAI_PROJECT");
        env_default(&d.vertex_location, "VERTEXAI_LOCATION");
        if (!d.vertex_location)
            d.vertex_location = strdup("us-central1"); /* LiteLLM's default */
        if (!d.vertex_project && !d.mock_response)
            WARN(L, params_n, "model '%s': no vertex_project and VERTEXAI_PROJECT is not set; "
                              "the project_id of the credentials will be used if they have one",
                 model_name);
        break;
    case PROV_UNIMPLEMENTED:
        WARN(L, model_n, "model '%s': provider '%s' is not implemented yet; requests for it "
                         "will get a 400 naming the provider",
             model_name, d.provider);
        break;
    }
    if (d.api_base && prov_is_openai_shaped(d.kind)) {
        size_t bl = strlen(d.api_base);
        while (bl > 0 && d.api_base[bl - 1] == '/')
            d.api_base[--bl] = 0;
        if (d.kind == PROV_OLLAMA_CHAT && !(bl >= 3 && strcmp(d.api_base + bl - 3, "/v1") == 0)) {
            /* ollama_chat speaks Ollama's OpenAI-compatible API under /v1 */
            char *nb = malloc(bl + 4);
            memcpy(nb, d.api_base, bl);
            memcpy(nb + bl, "/v1", 4);
            free(d.api_base);
            d.api_base = nb;
        }
        for (int ep = 0; ep < 3; ep++) {
            const char *path = prov_endpoint_path((prov_endpoint)ep);
            size_t n = strlen(d.api_base) + strlen(path) + strlen(d.upstream_model) +
                       (d.api_version ? strlen(d.api_version) : 0) + 64;
            d.url[ep] = malloc(n);
            if (d.kind == PROV_AZURE) /* the deployment is in the path, the version a query */
                snprintf(d.url[ep], n, "%s/openai/deployments/%s%s?api-version=%s", d.api_base,
                         d.upstream_model, path, d.api_version);
            else
                snprintf(d.url[ep], n, "%s%s", d.api_base, path);
        }
    }
    if (d.api_base) {
        size_t bl = strlen(d.api_base);
        while (bl > 0 && d.api_base[bl - 1] == '/')
            d.api_base[--bl] = 0;
        d.host = host_of(d.api_base);
    } else if (d.kind == PROV_VERTEX_GEMINI || d.kind == PROV_VERTEX_CLAUDE) {
        char h[256];
        if (strcmp(d.vertex_location ? d.vertex_location : "", "global") == 0)
            snprintf(h, sizeof h, "aiplatform.googleapis.com");
        else
            snprintf(h, sizeof h, "%s-aiplatform.googleapis.com",
                     d.vertex_location ? d.vertex_location : "us-central1");
        d.host = strdup(h);
    } else if (d.kind == PROV_GEMINI) {
        d.host = strdup("generativelanguage.googleapis.com");
    }
    {
        cfg_deployment *nd = realloc(c->deps, (c->ndeps + 1) * sizeof *nd);
        if (!nd)
            goto fail;
        c->deps = nd;
        c->deps[c->ndeps++] = d;
    }
    return;
fail:
    free(d.model_name);
    free(d.model);
    free(d.provider);
    free(d.upstream_model);
    free(d.api_base);
    free(d.api_key);
    free(d.mock_response);
    free(d.api_version);
    free(d.vertex_project);
    free(d.vertex_location);
    free(d.vertex_credentials);
    free(d.id);
    free(d.host);
    for (int ep = 0; ep < 3; ep++)
        free(d.url[ep]);
    cJSON_Delete(d.litellm_params);
    cJSON_Delete(d.model_info);
}

static void load_general(loader *L, struct fy_node *n)
{
    void *it = NULL;
    struct fy_node_pair *p;
    char key[128];
    while ((p = fy_node_mapping_iterate(n, &it))) {
        struct fy_node *v = fy_node_pair_value(p);
        key_is(p, NULL, key, sizeof key);
        if (strcmp(key, "master_key") == 0) {
            free(L->c->master_key);
            L->c->master_key = scalar_str(L, v, "general_settings.master_key");
            if (L->c->master_key && strncmp(L->c->master_key, "sk-", 3) != 0) {
                ERR(L, v, "general_settings.master_key must start with 'sk-' (LiteLLM's rule; "
                          "it keeps a key hash from being usable as a key)");
            }
        } else if (strcmp(key, "database_url") == 0) {
            free(L->c->database_url);
            L->c->database_url = scalar_str(L, v, "general_settings.database_url");
        } else if (strcmp(key, "proxy_batch_write_at") == 0) {
            double t;
            if (scalar_num(L, v, "general_settings.proxy_batch_write_at", &t)) {
                if (t <= 0 || t > 3600)
                    ERR(L, v, "general_settings.proxy_batch_write_at must be between 0 and 3600 "
                              "seconds");
                else
                    L->c->batch_write_s = t;
            }
        } else if (strcmp(key, "allow_requests_on_db_unavailable") == 0) {
            scalar_bool(L, v, "general_settings.allow_requests_on_db_unavailable",
                        &L->c->allow_on_db_unavailable);
        } else if (strcmp(key, "user_api_key_cache_ttl") == 0) {
            double t;
            if (scalar_num(L, v, "general_settings.user_api_key_cache_ttl", &t) && t > 0)
                L->c->key_cache_ttl_s = t;
        } else if (strcmp(key, "disable_prisma_schema_update") == 0) {
            scalar_bool(L, v, "general_settings.disable_prisma_schema_update",
                        &L->c->disable_schema_update);
        } else if (strcmp(key, "background_health_checks") == 0) {
            scalar_bool(L, v, "general_settings.background_health_checks",
                        &L->c->background_health_checks);
        } else if (strcmp(key, "enable_health_check_routing") == 0) {
            scalar_bool(L, v, "general_settings.enable_health_check_routing",
                        &L->c->health_check_routing);
        } else if (strcmp(key, "health_check_interval") == 0) {
            double t;
            if (scalar_num(L, v, "general_settings.health_check_interval", &t)) {
                if (!(t >= 1 && t <= 86400))
                    ERR(L, v, "general_settings.health_check_interval must be between 1 and "
                              "86400 seconds");
                else
                    L->c->health_check_interval_s = t;
            }
        } else if (strcmp(key, "maximum_spend_logs_retention_period") == 0 ||
                   strcmp(key, "maximum_spend_logs_retention_interval") == 0) {
            bool period = key[strlen(key) - 1] == 'd'; /* ..._period */
            char what[160];
            snprintf(what, sizeof what, "general_settings.%s", key);
            char *s = scalar_str(L, v, what);
            time_t now = time(NULL), t;
            if (s && (duration_add(now, s, &t) < 0 || t <= now)) {
                ERR(L, v, "%s must be a duration like \"7d\", \"24h\", \"60m\" or \"3600s\", "
                          "got '%s'", what, s);
            } else if (s && period) {
                free(L->c->spend_logs_retention);
                L->c->spend_logs_retention = s;
                s = NULL;
            } else if (s) {
                L->c->spend_logs_cleanup_s = (double)(t - now);
            }
            free(s);
        } else if (strcmp(key, "disable_spend_logs") == 0) {
            scalar_bool(L, v, "general_settings.disable_spend_logs", &L->c->disable_spend_logs);
        } else if (strcmp(key, "max_request_size_mb") == 0) {
            double mb;
            if (scalar_num(L, v, "general_settings.max_request_size_mb", &mb)) {
                if (mb <= 0 || mb > 4096)
                    ERR(L, v, "general_settings.max_request_size_mb must be between 0 and 4096");
                else
                    L->c->max_request_bytes = (size_t)(mb * 1024 * 1024);
            }
        } else {
            note_ignored(L, "general_settings", key, fy_node_pair_key(p));
        }
    }
}

/* The environment comes first, as in LiteLLM: SSL_VERIFY (true/false or a CA bundle path) over
 * litellm_settings.ssl_verify, and SSL_CERT_FILE as the CA bundle when none was named. */
static void global_tls(loader *L, struct fy_node *where)
{
    const char *v = getenv("SSL_VERIFY");
    if (v && *v) {
        int verify = L->c->ssl_verify;
        char *ca = NULL;
        if (ssl_verify_text(L, where, "SSL_VERIFY (environment)", v, &verify, &ca)) {
            L->c->ssl_verify = verify;
            free(L->c->ssl_ca_file);
            L->c->ssl_ca_file = ca;
        }
    }
    const char *cf = getenv("SSL_CERT_FILE");
    if (cf && *cf && !L->c->ssl_ca_file) {
        if (access(cf, R_OK) == 0)
            L->c->ssl_ca_file = strdup(cf);
        else
            WARN(L, where, "SSL_CERT_FILE=%s cannot be read (%s): the system's CA bundle is used",
                 cf, strerror(errno));
    }
    if (!L->c->ssl_verify)
        WARN(L, where, "TLS certificate verification is off for every upstream (ssl_verify: false)");
}

static void load_litellm_settings(loader *L, struct fy_node *n)
{
    void *it = NULL;
    struct fy_node_pair *p;
    char key[128];
    while ((p = fy_node_mapping_iterate(n, &it))) {
        struct fy_node *v = fy_node_pair_value(p);
        key_is(p, NULL, key, sizeof key);
        if (strcmp(key, "json_logs") == 0) {
            scalar_bool(L, v, "litellm_settings.json_logs", &L->c->json_logs);
        } else if (strcmp(key, "drop_params") == 0) {
            scalar_bool(L, v, "litellm_settings.drop_params", &L->c->drop_params);
        } else if (strcmp(key, "request_timeout") == 0) {
            double t;
            if (scalar_num(L, v, "litellm_settings.request_timeout", &t) && t > 0)
                L->c->request_timeout = t;
        } else if (strcmp(key, "max_budget") == 0) {
            double b;
            if (scalar_num(L, v, "litellm_settings.max_budget", &b)) {
                if (b < 0)
                    ERR(L, v, "litellm_settings.max_budget must not be negative");
                else
                    L->c->max_budget = b;
            }
        } else if (strcmp(key, "ssl_verify") == 0) {
            free(L->c->ssl_ca_file);
            L->c->ssl_ca_file = NULL;
            scalar_ssl_verify(L, v, "litellm_settings.ssl_verify", &L->c->ssl_verify,
                              &L->c->ssl_ca_file);
        } else if (strcmp(key, "set_verbose") == 0) {
            /* deprecated in LiteLLM too; --detailed_debug is the switch */
        } else {
            if (!in_list(key, router_setting_keys))
                note_ignored(L, "litellm_settings", key, fy_node_pair_key(p));
        }
    }
}

static void load_router_settings(loader *L, struct fy_node *n)
{
    void *it = NULL;
    struct fy_node_pair *p;
    char key[128];
    while ((p = fy_node_mapping_iterate(n, &it))) {
        key_is(p, NULL, key, sizeof key);
        if (strcmp(key, "timeout") == 0) {
            double t;
            if (scalar_num(L, fy_node_pair_value(p), "router_settings.timeout", &t) && t > 0)
                L->c->request_timeout = t;
        } else if (!in_list(key, router_setting_keys)) {
            note_ignored(L, "router_settings", key, fy_node_pair_key(p));
        }
    }
}

static void load_sluice_settings(loader *L, struct fy_node *n)
{
    void *it = NULL;
    struct fy_node_pair *p;
    char key[128];
    while ((p = fy_node_mapping_iterate(n, &it))) {
        struct fy_node *v = fy_node_pair_value(p);
        key_is(p, NULL, key, sizeof key);
        if (strcmp(key, "model_prices_file") == 0) {
            free(L->c->price_file);
            L->c->price_file = scalar_str(L, v, "sluice_settings.model_prices_file");
        } else if (strcmp(key, "graceful_shutdown_seconds") == 0) {
            double t;
            if (scalar_num(L, v, "sluice_settings.graceful_shutdown_seconds", &t)) {
                if (t < 0)
                    ERR(L, v, "sluice_settings.graceful_shutdown_seconds must not be negative");
                else
                    L->c->graceful_shutdown_s = t;
            }
        } else {
            WARN(L, fy_node_pair_key(p), "sluice_settings.%s is not a sluice setting", key);
        }
    }
}

static void load_environment(loader *L, struct fy_node *n)
{
    void *it = NULL;
    struct fy_node_pair *p;
    char key[256];
    while ((p = fy_node_mapping_iterate(n, &it))) {
        key_is(p, NULL, key, sizeof key);
        char *v = scalar_str(L, fy_node_pair_value(p), "environment_variables value");
        if (v)
            setenv(key, v, 1); /* LiteLLM assigns os.environ[k] = v */
        free(v);
    }
}

static struct fy_node *section(loader *L, struct fy_node *root, const char *name)
{
    struct fy_node *n = fy_node_mapping_lookup_by_string(root, name, FY_NT);
    if (!n || is_null_scalar(n))
        return NULL;
    if (!is_mapping(n)) {
        ERR(L, n, "%s must be a mapping", name);
        return NULL;
    }
    return n;
}

static cfg *cfg_new(void)
{
    cfg *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->max_request_bytes = 32u * 1024 * 1024;
    c->request_timeout = 600;
    c->batch_write_s = 10;
    c->ssl_verify = 1;
    c->health_check_interval_s = 300; /* LiteLLM's default */
    c->health_check_routing = true;
    c->spend_logs_cleanup_s = 86400; /* LiteLLM's default: daily */
    c->key_cache_ttl_s = 60;
    c->max_budget = -1;
    c->graceful_shutdown_s = 30;
    return c;
}

/* Offset of the first NUL byte or invalid UTF-8 sequence, or (size_t)-1 when the text is
 * clean. */
static size_t text_problem(const char *t, size_t n)
{
    const unsigned char *s = (const unsigned char *)t;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == 0)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        /* strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF */
        size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len == 0 || i + len > n)
            return i;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        unsigned c1 = s[i + 1];
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
            (c == 0xF4 && c1 > 0x8F))
            return i;
        i += len;
    }
    return (size_t)-1;
}

/* libfyaml 0.7.12 crashes (a use after free in its parser cleanup, found by fuzzing) on an
 * explicit block key ("? ") whose content holds "key:" followed by whitespace with a tab and
 * then an indicator, e.g. "? a:<TAB>?". No sluice or LiteLLM config needs explicit keys, so a
 * file that has both an explicit key and a tab after a colon is refused before parsing. Returns
 * the 1-based line of the explicit key, or 0. */
static int explicit_key_with_tab(const char *t, size_t n)
{
    int qline = 0, line = 1;
    bool colon_tab = false;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        for (;;) { /* indentation, then any "- " / "? " block indicators */
            while (j < n && (t[j] == ' ' || t[j] == '\t'))
                j++;
            if (j + 1 < n && (t[j] == '-' || t[j] == '?') && (t[j + 1] == ' ' || t[j + 1] == '\t')) {
                if (t[j] == '?' && !qline)
                    qline = line;
                j += 2;
                continue;
            }
            if (j < n && t[j] == '?' && (j + 1 == n || t[j + 1] == '\n' || t[j + 1] == '\r') && !qline)
                qline = line;
            break;
        }
        for (; j < n && t[j] != '\n'; j++) {
            if (t[j] != ':')
                continue;
            for (size_t k = j + 1; k < n && (t[k] == ' ' || t[k] == '\t'); k++)
                if (t[k] == '\t')
                    colon_tab = true;
        }
        i = j + 1;
        line++;
    }
    return qline && colon_tab ? qline : 0;
}

cfg *cfg_load(const char *path, cfg_problems *probs, bool *yaml_error)
{
    *yaml_error = false;
    const char *file = path ? path : "<demo>";
    if (path) {
        FILE *f = fopen(path, "r");
        if (!f) {
            add_problem(probs, false, path, 0, 0, "cannot read config file: %s", strerror(errno));
            return NULL;
        }
        fclose(f);
        /* .env beside the config: like LiteLLM's load_dotenv, never overrides the environment */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        char envpath[4200];
        if (slash) {
            slash[1] = 0;
            snprintf(envpath, sizeof envpath, "%s.env", dir);
        } else {
            snprintf(envpath, sizeof envpath, ".env");
        }
        cfg_load_dotenv(envpath, probs);
    }

    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.colorize = false;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (diag)
        fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {.search_path = NULL,
                                .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_AUTO,
                                .userdata = NULL,
                                .diag = diag};
    /* The text is read and checked first: a config is UTF-8 without NUL bytes, and libfyaml
     * 0.7 mishandles some inputs that are not (a crash on NUL after a tab, a hang on invalid
     * UTF-8 in a directive) or that use explicit keys with tabs (a crash) — found by fuzzing;
     * such files get a clear error instead. */
    char *text = NULL;
    size_t tlen = 0;
    if (path) {
        FILE *f = fopen(path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long sz = ftell(f);
            fseek(f, 0, SEEK_SET);
            if (sz >= 0 && sz < 64L * 1024 * 1024 && (text = malloc((size_t)sz + 1))) {
                tlen = fread(text, 1, (size_t)sz, f);
                text[tlen] = 0;
            }
            fclose(f);
        }
        if (!text) {
            add_problem(probs, false, file, 0, 0, "cannot read config file (or it is over 64 MiB)");
            fy_diag_destroy(diag);
            return NULL;
        }
        size_t bad = text_problem(text, tlen);
        if (bad != (size_t)-1) {
            int line = 1;
            for (size_t i = 0; i < bad; i++)
                line += text[i] == '\n';
            add_problem(probs, false, file, line, 0, "malformed YAML: %s at byte %zu",
                        memchr(text, 0, tlen) ? "a NUL byte" : "invalid UTF-8", bad);
            *yaml_error = true;
            free(text);
            fy_diag_destroy(diag);
            return NULL;
        }
        int qline = explicit_key_with_tab(text, tlen);
        if (qline) {
            add_problem(probs, false, file, qline, 0,
                        "unsupported YAML: an explicit mapping key (\"? \") in a file that has a tab "
                        "after a colon; write the key as \"key: value\" or use spaces");
            *yaml_error = true;
            free(text);
            fy_diag_destroy(diag);
            return NULL;
        }
    }
    struct fy_document *doc = path ? fy_document_build_from_string(&pcfg, text, tlen)
                                   : fy_document_build_from_string(&pcfg, cfg_demo_yaml, FY_NT);
    bool empty_stream = false;
    if (!doc && diag) {
        void *it0 = NULL;
        empty_stream = fy_diag_errors_iterate(diag, &it0) == NULL; /* "" or only comments */
    }
    if (empty_stream) {
        add_problem(probs, false, file, 0, 0, "the config is empty: it needs a model_list");
        free(text);
        fy_diag_destroy(diag);
        return NULL;
    }
    if (!doc || fy_document_resolve(doc) != 0) {
        bool any = false;
        void *it = NULL;
        struct fy_diag_error *e;
        while (diag && (e = fy_diag_errors_iterate(diag, &it))) {
            /* libfyaml's collected positions are already 1-based */
            add_problem(probs, false, file, e->line, e->column, "malformed YAML: %s", e->msg);
            any = true;
        }
        if (!any)
            add_problem(probs, false, file, 0, 0, "malformed YAML");
        *yaml_error = true;
        fy_document_destroy(doc);
        free(text); /* libfyaml parses in place: the text lives as long as the document */
        fy_diag_destroy(diag);
        return NULL;
    }

    cfg *c = cfg_new();
    c->path = path ? strdup(path) : NULL;
    loader L = {.file = file, .probs = probs, .c = c, .errors = false};
    struct fy_node *root = fy_document_root(doc);
    if (!root || is_null_scalar(root)) {
        add_problem(probs, false, file, 0, 0, "the config is empty: it needs a model_list");
        L.errors = true;
    } else if (!is_mapping(root)) {
        ERR(&L, root, "the config must be a mapping with model_list, general_settings, ...");
    } else {
        struct fy_node *env = section(&L, root, "environment_variables");
        if (env)
            load_environment(&L, env);
        void *it = NULL;
        struct fy_node_pair *p;
        char key[128];
        static const char *const top_known[] = {"model_list", "general_settings",
                                                "litellm_settings", "router_settings",
                                                "environment_variables", "sluice_settings", NULL};
        while ((p = fy_node_mapping_iterate(root, &it))) {
            key_is(p, NULL, key, sizeof key);
            if (!in_list(key, top_known))
                note_ignored(&L, "", key, fy_node_pair_key(p));
        }
        struct fy_node *gs = section(&L, root, "general_settings");
        if (gs)
            load_general(&L, gs);
        struct fy_node *ls = section(&L, root, "litellm_settings");
        if (ls) {
            load_litellm_settings(&L, ls);
            c->litellm_json = to_json(&L, ls);
        }
        global_tls(&L, root);
        struct fy_node *rs = section(&L, root, "router_settings");
        if (rs) {
            load_router_settings(&L, rs);
            c->router_json = to_json(&L, rs);
        }
        struct fy_node *ss = section(&L, root, "sluice_settings");
        if (ss)
            load_sluice_settings(&L, ss);
        struct fy_node *ml = fy_node_mapping_lookup_by_string(root, "model_list", FY_NT);
        if (ml && !is_null_scalar(ml)) {
            if (fy_node_get_type(ml) != FYNT_SEQUENCE) {
                ERR(&L, ml, "model_list must be a list of deployments");
            } else {
                void *sit = NULL;
                struct fy_node *item;
                size_t i = 0;
                while ((item = fy_node_sequence_iterate(ml, &sit)))
                    load_deployment(&L, item, i++);
            }
        }
        if (c->ndeps == 0 && !L.errors)
            WARN(&L, root, "model_list is empty: every model request will get a 400");
    }
    if (!c->database_url) {
        const char *du = getenv("DATABASE_URL");
        if (du && *du)
            c->database_url = strdup(du);
    }
    {
        const char *ds = getenv("DISABLE_SCHEMA_UPDATE");
        bool b;
        if (ds && parse_bool_text(ds, &b) && b)
            c->disable_schema_update = true;
        const char *bw = getenv("PROXY_BATCH_WRITE_AT");
        if (bw && atof(bw) > 0)
            c->batch_write_s = atof(bw);
    }
    if (!c->master_key) {
        const char *mk = getenv("LITELLM_MASTER_KEY");
        if (mk && *mk) {
            if (strncmp(mk, "sk-", 3) != 0) {
                add_problem(probs, false, file, 0, 0,
                            "LITELLM_MASTER_KEY must start with 'sk-' (LiteLLM's rule)");
                L.errors = true;
            } else {
                c->master_key = strdup(mk);
            }
        }
    }
    fy_document_destroy(doc);
    free(text);
    fy_diag_destroy(diag);
    if (L.errors) {
        cfg_free(c);
        return NULL;
    }
    return c;
}

void cfg_free(cfg *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ndeps; i++) {
        cfg_deployment *d = &c->deps[i];
        free(d->model_name);
        free(d->model);
        free(d->provider);
        free(d->upstream_model);
        free(d->api_base);
        free(d->api_key);
        free(d->mock_response);
        free(d->api_version);
        free(d->vertex_project);
        free(d->vertex_location);
        free(d->vertex_credentials);
        free(d->ssl_ca_file);
        free(d->gauth_error);
        free(d->id);
        free(d->host);
        free(d->proxy);
        for (int ep = 0; ep < 3; ep++)
            free(d->url[ep]);
        for (int ep = 0; ep < 3; ep++)
            curl_url_cleanup(d->curlu[ep]);
        cJSON_Delete(d->litellm_params);
        cJSON_Delete(d->model_info);
        curl_slist_free_all(d->headers);
    }
    free(c->deps);
    for (size_t i = 0; i < c->nignored; i++)
        free(c->ignored[i]);
    free(c->ignored);
    cJSON_Delete(c->router_json);
    cJSON_Delete(c->litellm_json);
    free(c->master_key);
    free(c->database_url);
    free(c->price_file);
    free(c->ssl_ca_file);
    free(c->spend_logs_retention);
    free(c->path);
    free(c);
}

const cfg_deployment *cfg_find_model(const cfg *c, const char *model_name)
{
    for (size_t i = 0; i < c->ndeps; i++)
        if (strcmp(c->deps[i].model_name, model_name) == 0)
            return &c->deps[i];
    return NULL;
}
