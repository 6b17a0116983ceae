/* config — LiteLLM's config.yaml, read with libfyaml into an immutable snapshot.
 * Owns: `.env` beside the config, `environment_variables:`, `os.environ/VAR` substitution in any
 * string, validation with file:line for every problem, the list of keys sluice ignores, and the
 * derived per-deployment data the hot path wants precomputed (upstream URLs, auth headers,
 * proxy decision). A loaded cfg is never mutated; it is freed as a whole. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "providers/provider.h"

#include <curl/curl.h>

typedef struct {
    char *model_name;     /* public name (the model group) */
    char *model;          /* litellm_params.model, e.g. "openai/gpt-4o" */
    char *provider;       /* "openai", "hosted_vllm", "bedrock", ... */
    prov_kind kind;
    char *upstream_model; /* what is sent upstream as "model" */
    char *api_base;       /* without trailing slash; NULL for mock-only */
    char *api_key;        /* provider key (secret: never logged or returned) */
    double timeout;       /* seconds, whole non-streamed request */
    double stream_timeout;/* seconds, to first byte and between chunks */
    int max_retries;
    long rpm, tpm;
    char *mock_response;  /* answer offline with this text */
    char *api_version;    /* azure/ */
    char *vertex_project, *vertex_location, *vertex_credentials; /* vertex_ai/ */
    int drop_params;      /* -1 = inherit litellm_settings.drop_params, else 0/1 */
    int ssl_verify;       /* litellm_params.ssl_verify: -1 = inherit cfg.ssl_verify, else 0/1 */
    char *ssl_ca_file;    /* litellm_params.ssl_verify given as a CA bundle path (verify on) */
    char *id;             /* model_info.id, else a hash of the deployment */
    cJSON *litellm_params;/* as configured after substitution; api_key stripped for display */
    cJSON *model_info;
    int line;             /* where it is defined */
    /* derived */
    char *url[3];         /* indexed by prov_endpoint */
    CURLU *curlu[3];      /* the same, parsed once (libcurl reads them, never writes) */
    char *host;           /* host[:port] of api_base, for messages */
    char *proxy;          /* CURLOPT_PROXY value: "" = never proxied */
    struct curl_slist *headers; /* Authorization, Content-Type, Expect: (shared, read-only) */
    struct gauth *gauth;  /* Google credentials (vertex_ai/), shared; NULL when unavailable */
    char *gauth_error;    /* why there are none, for request errors */
} cfg_deployment;

typedef struct {
    char *path;
    cfg_deployment *deps;
    size_t ndeps;
    char *master_key;           /* NULL = open proxy (loopback only) */
    size_t max_request_bytes;   /* general_settings.max_request_size_mb */
    char *database_url;         /* general_settings.database_url or DATABASE_URL; NULL: sqlite */
    double batch_write_s;       /* general_settings.proxy_batch_write_at (default 10) */
    bool allow_on_db_unavailable; /* general_settings.allow_requests_on_db_unavailable */
    double key_cache_ttl_s;     /* general_settings.user_api_key_cache_ttl (default 60) */
    bool disable_schema_update; /* general_settings.disable_prisma_schema_update or
                                   DISABLE_SCHEMA_UPDATE=true */
    bool disable_spend_logs;    /* general_settings.disable_spend_logs */
    char *spend_logs_retention; /* general_settings.maximum_spend_logs_retention_period ("7d");
                                   NULL: spend-log rows are kept */
    double spend_logs_cleanup_s;/* general_settings.maximum_spend_logs_retention_interval
                                   (default 1 day) */
    double max_budget;          /* litellm_settings.max_budget: proxy-wide budget; < 0 none */
    char *price_file;           /* sluice_settings.model_prices_file: LiteLLM-format prices */
    bool json_logs;             /* litellm_settings.json_logs */
    bool drop_params;           /* litellm_settings.drop_params */
    double request_timeout;     /* default timeout (s) when a deployment has none */
    double graceful_shutdown_s; /* sluice_settings.graceful_shutdown_seconds */
    int ssl_verify;             /* litellm_settings.ssl_verify, else SSL_VERIFY; default 1 */
    char *ssl_ca_file;          /* litellm_settings.ssl_verify as a path, else SSL_VERIFY as a
                                   path, else SSL_CERT_FILE; NULL = the system's bundle */
    bool background_health_checks; /* general_settings.background_health_checks */
    double health_check_interval_s; /* general_settings.health_check_interval (default 300) */
    bool health_check_routing;  /* general_settings.enable_health_check_routing (default on:
                                   background checks steer traffic; false = /health cache only) */
    cJSON *router_json;         /* router_settings as configured (after substitution), or NULL */
    cJSON *litellm_json;        /* litellm_settings likewise: router/ reads both */
    char **ignored;             /* "general_settings.alerting (line 12)" ... */
    size_t nignored;
} cfg;

typedef struct {
    char *file;
    int line, column; /* 1-based; 0 = unknown */
    char *msg;
    bool warning;     /* does not stop start-up */
} cfg_problem;

typedef struct {
    cfg_problem *v;
    size_t n;
} cfg_problems;

/* The built-in demo used when sluice starts without --config: offline mock models. */
extern const char cfg_demo_yaml[];

/* Loads a config file (path) or, when path is NULL, the demo text. Returns NULL when there are
 * errors (warnings alone do not fail); every problem is appended to *probs. *yaml_error is set
 * when the failure is malformed YAML (the CLI exits 2 for those). */
cfg *cfg_load(const char *path, cfg_problems *probs, bool *yaml_error);
void cfg_free(cfg *c);

void cfg_problems_free(cfg_problems *p);
/* "file:line:col: error: msg" */
void cfg_problem_format(const cfg_problem *p, char *out, size_t outlen);

/* Loads KEY=VALUE lines from a .env file into the environment without overriding variables that
 * are already set. Returns the number of variables set, or -1 if the file cannot be read. Lines
 * that do not parse are reported into probs as warnings. */
int cfg_load_dotenv(const char *path, cfg_problems *probs);

/* Looks up a deployment group; returns the first deployment index or -1. */
const cfg_deployment *cfg_find_model(const cfg *c, const char *model_name);

#endif
