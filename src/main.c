/* main — the command line: `sluice [serve options]`, `sluice check`, `sluice version`.
 * Flags mirror LiteLLM's (`--config`, `--port`, `--host`, `--num_workers`, `--detailed_debug`)
 * so switching is changing one command. */
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "auth/keys.h"
#include "config/config.h"
#include "store/store.h"
#include "gateway.h"
#include "health.h"
#include "http/server.h"
#include "policy.h"
#include "obs/log.h"
#include "routes.h"
#include "upstream/gauth.h"
#include "upstream/proxy.h"

static void usage(FILE *f)
{
    fprintf(f,
            "sluice %s — an LLM API gateway, drop-in for the LiteLLM proxy\n"
            "\n"
            "Usage:\n"
            "  sluice [--config FILE] [--port 4000] [--host 127.0.0.1] [--num_workers N]\n"
            "         [--detailed_debug] [--json_logs]\n"
            "  sluice check --config FILE   validate a config: every problem with file:line\n"
            "  sluice migrate [--config FILE]  apply database migrations and exit\n"
            "  sluice version               print the version\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE     LiteLLM config.yaml (model_list, general_settings, ...).\n"
            "                        Without it sluice serves a built-in offline demo.\n"
            "  --port N              port to listen on (default 4000, or $PORT)\n"
            "  --host H              address to bind (default 127.0.0.1, or $HOST). A\n"
            "                        non-loopback host needs general_settings.master_key.\n"
            "  --num_workers N       worker threads (default: number of cores, or $NUM_WORKERS)\n"
            "  --detailed_debug      debug logging (never logs keys or request bodies)\n"
            "  --json_logs           one JSON object per log line\n"
            "  -h, --help            this help\n"
            "\n"
            "Environment: LITELLM_MASTER_KEY, HTTP_PROXY/HTTPS_PROXY/NO_PROXY (loopback is never\n"
            "proxied), OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, AZURE_API_KEY/BASE/VERSION,\n"
            "VERTEXAI_PROJECT/LOCATION, GOOGLE_APPLICATION_CREDENTIALS, SSL_VERIFY, SSL_CERT_FILE,\n"
            "DATABASE_URL, DISABLE_SCHEMA_UPDATE; a .env file beside the config is loaded.\n"
            "Docs: docs/configuration.md, docs/api.md, docs/operations.md.\n",
            SLUICE_VERSION);
}

typedef struct {
    const char *config;
    const char *host;
    int port;
    int workers;
    bool debug, json_logs;
} options;

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out)
{
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || n < lo || n > hi) {
        fprintf(stderr, "sluice: %s needs a number from %d to %d, got '%s'\n", flag, lo, hi,
                v ? v : "");
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* Returns 0, or the exit code to use. */
static int parse_args(int argc, char **argv, int start, options *o)
{
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char flag[64];
        const char *eq = strchr(a, '=');
        if (a[0] == '-' && a[1] == '-' && eq) {
            snprintf(flag, sizeof flag, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(flag, sizeof flag, "%s", a);
        }
#define NEXT() (val ? val : (i + 1 < argc ? argv[++i] : NULL))
        if (!strcmp(flag, "-h") || !strcmp(flag, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(flag, "-c") || !strcmp(flag, "--config")) {
            o->config = NEXT();
            if (!o->config) {
                fprintf(stderr, "sluice: --config needs a file\n");
                return 2;
            }
        } else if (!strcmp(flag, "--port") || !strcmp(flag, "-p")) {
            if (parse_int("--port", NEXT(), 1, 65535, &o->port) < 0)
                return 2;
        } else if (!strcmp(flag, "--host")) {
            o->host = NEXT();
            if (!o->host) {
                fprintf(stderr, "sluice: --host needs an address\n");
                return 2;
            }
        } else if (!strcmp(flag, "--num_workers") || !strcmp(flag, "--num-workers")) {
            if (parse_int("--num_workers", NEXT(), 1, 256, &o->workers) < 0)
                return 2;
        } else if (!strcmp(flag, "--detailed_debug") || !strcmp(flag, "--debug")) {
            o->debug = true;
        } else if (!strcmp(flag, "--json_logs")) {
            o->json_logs = true;
        } else {
            fprintf(stderr, "sluice: unknown option '%s' (see sluice --help)\n", a);
            return 2;
        }
#undef NEXT
    }
    return 0;
}

static void print_problems(const cfg_problems *p)
{
    char line[1400];
    for (size_t i = 0; i < p->n; i++) {
        cfg_problem_format(&p->v[i], line, sizeof line);
        fprintf(stderr, "%s\n", line);
    }
}

static int cmd_check(int argc, char **argv)
{
    options o = {0};
    int rc = parse_args(argc, argv, 2, &o);
    if (rc)
        return rc;
    if (!o.config) {
        fprintf(stderr, "sluice check: --config FILE is required\n");
        return 2;
    }
    cfg_problems probs = {0};
    bool yaml_err;
    cfg *c = cfg_load(o.config, &probs, &yaml_err);
    print_problems(&probs);
    size_t errors = 0;
    for (size_t i = 0; i < probs.n; i++)
        errors += !probs.v[i].warning;
    if (c) {
        for (size_t i = 0; i < c->nignored; i++)
            fprintf(stderr, "%s: note: ignored (not implemented yet): %s\n", o.config,
                    c->ignored[i]);
        printf("%s: OK — %zu deployment%s, %zu warning%s\n", o.config, c->ndeps,
               c->ndeps == 1 ? "" : "s", probs.n, probs.n == 1 ? "" : "s");
    } else {
        printf("%s: %zu error%s\n", o.config, errors, errors == 1 ? "" : "s");
    }
    cfg_free(c);
    cfg_problems_free(&probs);
    return c ? 0 : (yaml_err ? 2 : 1);
}

/* `sluice migrate`: the same embedded migrations the server runs in the background, run in the
 * foreground with progress, for deploy pipelines that want them before rollout. */
static int cmd_migrate(int argc, char **argv)
{
    options o = {0};
    int rc = parse_args(argc, argv, 2, &o);
    if (rc)
        return rc;
    char *url = NULL;
    if (o.config) {
        cfg_problems probs = {0};
        bool yaml_err;
        cfg *c = cfg_load(o.config, &probs, &yaml_err);
        print_problems(&probs);
        cfg_problems_free(&probs);
        if (!c)
            return yaml_err ? 2 : 1;
        url = c->database_url ? strdup(c->database_url) : NULL;
        cfg_free(c);
    } else if (getenv("DATABASE_URL") && *getenv("DATABASE_URL")) {
        url = strdup(getenv("DATABASE_URL"));
    }
    rc = store_migrate_offline(url, 30, stdout);
    free(url);
    return rc;
}

static store *g_store;

/* Runs once the workers have stopped, before their mailboxes go away: nothing may post to them
 * afterwards. The store runs its queued jobs (the last spend batch) before it closes. */
static void stop_backends(void)
{
    gauth_shutdown();
    policy_shutdown(); /* the last spend batch, before the store stops taking jobs */
    store_close(g_store);
    g_store = NULL;
}

/* Each worker thread as it ends: the background health checks (worker 0), then the gateway's
 * per-thread caches. */
static void worker_thread_exit(void)
{
    health_thread_exit();
    gw_thread_exit();
}

static int env_int(const char *name, int lo, int hi, int def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    return (*end || n < lo || n > hi) ? def : (int)n;
}

static int cmd_serve(int argc, char **argv)
{
    options o = {0};
    o.port = env_int("PORT", 1, 65535, 4000);
    o.workers = env_int("NUM_WORKERS", 1, 256, 0);
    o.host = getenv("HOST") && *getenv("HOST") ? getenv("HOST") : "127.0.0.1";
    int rc = parse_args(argc, argv, 1, &o);
    if (rc)
        return rc;
    if (o.workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.workers = n > 0 ? (int)(n > 64 ? 64 : n) : 1;
    }

    cfg_problems probs = {0};
    bool yaml_err;
    cfg *c = cfg_load(o.config, &probs, &yaml_err);
    log_init(o.json_logs || (c && c->json_logs), o.debug);
    print_problems(&probs);
    cfg_problems_free(&probs);
    if (!c) {
        fprintf(stderr, "sluice: %s has errors; not starting (run `sluice check --config %s`)\n",
                o.config ? o.config : "config", o.config ? o.config : "FILE");
        return yaml_err ? 2 : 1;
    }
    if (!o.config)
        log_msg(LOG_INFO, "no --config given: serving the built-in offline demo (models: demo, "
                          "gpt-4o-mini, text-embedding-3-small)");
    if (c->nignored) {
        char buf[4096];
        size_t off = 0;
        for (size_t i = 0; i < c->nignored && off < sizeof buf - 8; i++)
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? ", " : "",
                                    c->ignored[i]);
        log_msg(LOG_WARN, "ignored config keys (not implemented yet): %s", buf);
    }
    if (!c->master_key) {
        if (!ups_host_is_loopback(o.host)) {
            fprintf(stderr, "sluice: refusing to listen on %s without a master key: anyone who "
                            "can reach it could spend your provider keys. Set "
                            "general_settings.master_key (sk-...) or LITELLM_MASTER_KEY, or use "
                            "--host 127.0.0.1.\n", o.host);
            cfg_free(c);
            return 1;
        }
        log_msg(LOG_WARN, "NO MASTER KEY: open proxy — every request on %s is allowed without a "
                          "key. Set general_settings.master_key before exposing sluice.", o.host);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* the store only starts its thread here: sluice binds and serves before any database work */
    char err[512];
    store_cfg sc = {.url = c->database_url, .migrate = !c->disable_schema_update};
    g_store = store_open(&sc, err, sizeof err);
    if (!g_store) {
        fprintf(stderr, "sluice: %s\n", err);
        cfg_free(c);
        return 1;
    }
    keycache *kc = keycache_new(g_store, c->key_cache_ttl_s);
    admin_init(&(admin_env){.st = g_store, .kc = kc, .cfg = c});
    if (!kc || policy_init(c, g_store, kc) < 0 || gw_prepare(c) < 0 ||
        routes_init(c, g_store) < 0) {
        fprintf(stderr, "sluice: could not prepare the config (see above)\n");
        stop_backends();
        return 1;
    }
    int n;
    const http_route *table = routes_table(&n);
    http_opts ho = {.host = o.host, .port = o.port, .workers = o.workers, .cfg = c,
                    .routes = table, .nroutes = n, .keys = kc,
                    .allow_on_db_unavailable = c->allow_on_db_unavailable,
                    .thread_start = health_thread_start, .thread_exit = worker_thread_exit,
                    .before_teardown = stop_backends};
    rc = http_serve(&ho);
    stop_backends(); /* no-op when http_serve already did it; covers a failed start */
    keycache_free(kc);
    gw_release();
    routes_free();
    cfg_free(c);
    curl_global_cleanup();
    libevent_global_shutdown();
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version") ||
                     !strcmp(argv[1], "-v"))) {
        printf("sluice %s (libevent %s, %s, allocator %s)\n", SLUICE_VERSION,
               event_get_version(), curl_version(), SLUICE_ALLOCATOR);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "check"))
        return cmd_check(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "migrate"))
        return cmd_migrate(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (argc > 1 && argv[1][0] != '-') {
        fprintf(stderr, "sluice: unknown command '%s' (see sluice --help)\n", argv[1]);
        return 2;
    }
    return cmd_serve(argc, argv);
}
