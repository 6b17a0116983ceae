/* Unit tests for config: LiteLLM-style config.yaml loading, validation, .env handling. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config/config.h"

/* ---- fixture: a private temp directory per test ------------------------------------------- */

typedef struct {
    char dir[64];
    char cfg_path[128];
    char env_path[128];
    cfg_problems probs;
    bool yaml_error;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-cfgtest-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->cfg_path, sizeof f->cfg_path, "%s/config.yaml", f->dir);
    snprintf(f->env_path, sizeof f->env_path, "%s/.env", f->dir);
    /* the loader also consults these: keep the environment from leaking into results */
    unsetenv("LITELLM_MASTER_KEY");
    unsetenv("OPENAI_API_KEY");
    unsetenv("SSL_VERIFY");
    unsetenv("SSL_CERT_FILE");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unlink(f->cfg_path);
    unlink(f->env_path);
    rmdir(f->dir);
    cfg_problems_free(&f->probs);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static cfg *load_text(fixture *f, const char *yaml)
{
    write_file(f->cfg_path, yaml);
    cfg_problems_free(&f->probs);
    f->yaml_error = true; /* must be reset by cfg_load */
    return cfg_load(f->cfg_path, &f->probs, &f->yaml_error);
}

static void dump_problems(const fixture *f)
{
    for (size_t i = 0; i < f->probs.n; i++) {
        char buf[1400];
        cfg_problem_format(&f->probs.v[i], buf, sizeof buf);
        print_message("  problem: %s\n", buf);
    }
}

/* Loads yaml expecting success (the problems are printed when it fails). */
static cfg *load_ok(fixture *f, const char *yaml)
{
    cfg *c = load_text(f, yaml);
    if (!c) {
        dump_problems(f);
        fail_msg("config did not load:\n%s", yaml);
    }
    return c;
}

static size_t count_kind(const fixture *f, bool warning)
{
    size_t n = 0;
    for (size_t i = 0; i < f->probs.n; i++)
        n += f->probs.v[i].warning == warning;
    return n;
}

/* The first problem of the kind whose message contains needle; fails the test when absent. */
static const cfg_problem *find_problem(const fixture *f, bool warning, const char *needle)
{
    for (size_t i = 0; i < f->probs.n; i++)
        if (f->probs.v[i].warning == warning && strstr(f->probs.v[i].msg, needle))
            return &f->probs.v[i];
    dump_problems(f);
    fail_msg("no %s mentioning '%s'", warning ? "warning" : "error", needle);
    return NULL;
}

/* Loads yaml expecting failure with an error containing needle at the given line (and column
 * when col > 0). */
static void expect_error(fixture *f, const char *yaml, const char *needle, int line, int col)
{
    cfg *c = load_text(f, yaml);
    if (c) {
        cfg_free(c);
        dump_problems(f);
        fail_msg("config loaded but should fail with '%s':\n%s", needle, yaml);
    }
    assert_false(f->yaml_error);
    const cfg_problem *p = find_problem(f, false, needle);
    assert_string_equal(p->file, f->cfg_path);
    if (p->line != line || (col > 0 && p->column != col)) {
        dump_problems(f);
        fail_msg("'%s' reported at %d:%d, want %d:%d", needle, p->line, p->column, line, col);
    }
}

static bool has_ignored(const cfg *c, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < c->nignored; i++)
        if (strncmp(c->ignored[i], prefix, n) == 0 && c->ignored[i][n] == ' ')
            return true;
    return false;
}

static size_t count_ignored(const cfg *c, const char *prefix)
{
    size_t n = strlen(prefix), k = 0;
    for (size_t i = 0; i < c->nignored; i++)
        if (strncmp(c->ignored[i], prefix, n) == 0 && c->ignored[i][n] == ' ')
            k++;
    return k;
}

/* ---- a full config ------------------------------------------------------------------------ */

static const char FULL[] =
    "# a LiteLLM proxy config\n"                                   /* 1 */
    "environment_variables:\n"                                     /* 2 */
    "  SLUICE_T_FROM_CFG: key-from-config\n"                       /* 3 */
    "general_settings:\n"                                          /* 4 */
    "  master_key: sk-master-0123456789\n"                         /* 5 */
    "  alerting: [\"slack\"]\n"                                    /* 6 */
    "litellm_settings:\n"                                          /* 7 */
    "  drop_params: true\n"                                        /* 8 */
    "  request_timeout: 45\n"                                      /* 9 */
    "model_list:\n"                                                /* 10 */
    "  - model_name: gpt-4o\n"                                     /* 11 */
    "    litellm_params:\n"                                        /* 12 */
    "      model: openai/gpt-4o\n"                                 /* 13 */
    "      api_key: os.environ/SLUICE_T_KEY\n"                     /* 14 */
    "      api_base: os.environ/SLUICE_T_BASE\n"                   /* 15 */
    "      timeout: 30\n"                                          /* 16 */
    "      stream_timeout: 5.5\n"                                  /* 17 */
    "      max_retries: 2\n"                                       /* 18 */
    "      rpm: 100\n"                                             /* 19 */
    "    model_info:\n"                                            /* 20 */
    "      id: dep-one\n"                                          /* 21 */
    "      mode: chat\n"                                           /* 22 */
    "  - model_name: llama\n"                                      /* 23 */
    "    litellm_params:\n"                                        /* 24 */
    "      model: hosted_vllm/meta-llama/Llama-3\n"                /* 25 */
    "      api_base: http://vllm.internal:8000/v1\n"               /* 26 */
    "      api_key: os.environ/SLUICE_T_FROM_CFG\n"                /* 27 */
    "      rpm: 5\n"                                               /* 28 */
    "  - model_name: gpt-4o\n"                                     /* 29 */
    "    litellm_params:\n"                                        /* 30 */
    "      model: gpt-4o-mini\n"                                   /* 31 */
    "      mock_response: \"canned\"\n"                            /* 32 */
    "some_future_section:\n"                                       /* 33 */
    "  x: 1\n";                                                    /* 34 */

static void test_full_config(void **state)
{
    fixture *f = *state;
    setenv("SLUICE_T_KEY", "sk-provider-secret", 1);
    setenv("SLUICE_T_BASE", "http://127.0.0.1:9999/v1/", 1);
    cfg *c = load_ok(f, FULL);
    assert_false(f->yaml_error);
    assert_int_equal(count_kind(f, false), 0);

    assert_string_equal(c->path, f->cfg_path);
    assert_string_equal(c->master_key, "sk-master-0123456789");
    assert_true(c->drop_params);
    assert_true(c->request_timeout == 45.0);
    assert_int_equal(c->ndeps, 3);

    const cfg_deployment *d = &c->deps[0];
    assert_string_equal(d->model_name, "gpt-4o");
    assert_string_equal(d->model, "openai/gpt-4o");
    assert_string_equal(d->provider, "openai");
    assert_int_equal(d->kind, PROV_OPENAI);
    assert_string_equal(d->upstream_model, "gpt-4o");
    assert_string_equal(d->api_key, "sk-provider-secret");
    assert_string_equal(d->api_base, "http://127.0.0.1:9999/v1"); /* trailing slash trimmed */
    assert_string_equal(d->url[EP_CHAT], "http://127.0.0.1:9999/v1/chat/completions");
    assert_string_equal(d->url[EP_COMPLETIONS], "http://127.0.0.1:9999/v1/completions");
    assert_string_equal(d->url[EP_EMBEDDINGS], "http://127.0.0.1:9999/v1/embeddings");
    assert_string_equal(d->host, "127.0.0.1:9999");
    assert_true(d->timeout == 30.0);
    assert_true(d->stream_timeout == 5.5);
    assert_int_equal(d->max_retries, 2);
    assert_int_equal(d->rpm, 100);
    assert_string_equal(d->id, "dep-one");
    assert_int_equal(d->line, 11);
    assert_null(d->mock_response);
    /* the displayable params: substituted, without the key */
    assert_non_null(d->litellm_params);
    assert_null(cJSON_GetObjectItemCaseSensitive(d->litellm_params, "api_key"));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d->litellm_params, "model")->valuestring,
                        "openai/gpt-4o");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d->litellm_params, "api_base")->valuestring,
                        "http://127.0.0.1:9999/v1/");
    assert_true(cJSON_GetObjectItemCaseSensitive(d->litellm_params, "timeout")->valuedouble == 30.0);
    char *shown = cJSON_PrintUnformatted(d->litellm_params);
    assert_null(strstr(shown, "sk-provider-secret"));
    free(shown);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d->model_info, "mode")->valuestring, "chat");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d->model_info, "id")->valuestring, "dep-one");

    d = &c->deps[1];
    assert_string_equal(d->model_name, "llama");
    assert_string_equal(d->provider, "hosted_vllm");
    assert_int_equal(d->kind, PROV_OPENAI_COMPATIBLE);
    assert_string_equal(d->upstream_model, "meta-llama/Llama-3");
    assert_string_equal(d->url[EP_CHAT], "http://vllm.internal:8000/v1/chat/completions");
    /* environment_variables applies before os.environ/ is resolved */
    assert_string_equal(d->api_key, "key-from-config");
    assert_int_equal(d->line, 23);
    /* an id is derived when none is configured, and it is stable */
    assert_int_equal(strlen(d->id), 64);
    assert_int_equal(strspn(d->id, "0123456789abcdef"), 64);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d->model_info, "id")->valuestring, d->id);

    d = &c->deps[2];
    assert_string_equal(d->provider, "openai"); /* bare names are OpenAI models */
    assert_int_equal(d->kind, PROV_OPENAI);
    assert_string_equal(d->upstream_model, "gpt-4o-mini");
    assert_string_equal(d->mock_response, "canned");
    assert_null(d->api_base); /* mock-only: no upstream */
    assert_null(d->url[EP_CHAT]);
    assert_string_not_equal(d->id, c->deps[1].id);

    /* lookups find the first deployment of a group */
    assert_ptr_equal(cfg_find_model(c, "gpt-4o"), &c->deps[0]);
    assert_ptr_equal(cfg_find_model(c, "llama"), &c->deps[1]);
    assert_null(cfg_find_model(c, "gpt-4"));

    /* ignored keys: listed, with their section, once per key name */
    assert_true(has_ignored(c, "general_settings.alerting"));
    assert_true(has_ignored(c, "some_future_section"));
    assert_false(has_ignored(c, "litellm_params.rpm")); /* the router uses it */
    assert_false(has_ignored(c, "general_settings.master_key"));
    assert_false(has_ignored(c, "litellm_params.model"));
    bool found_line = false;
    for (size_t i = 0; i < c->nignored; i++)
        if (strcmp(c->ignored[i], "general_settings.alerting (line 6)") == 0)
            found_line = true;
    assert_true(found_line);

    char first_id[65];
    snprintf(first_id, sizeof first_id, "%s", c->deps[1].id);
    cfg_free(c);
    /* same config → same derived id */
    c = load_text(f, FULL);
    assert_non_null(c);
    assert_string_equal(c->deps[1].id, first_id);
    cfg_free(c);
    unsetenv("SLUICE_T_KEY");
    unsetenv("SLUICE_T_BASE");
}

static void test_dotenv_beside_config(void **state)
{
    fixture *f = *state;
    unsetenv("SLUICE_T_DOT_NEW");
    setenv("SLUICE_T_DOT_SET", "from-process", 1);
    write_file(f->env_path, "SLUICE_T_DOT_NEW=from-dotenv\nSLUICE_T_DOT_SET=from-dotenv\n"
                            "SLUICE_T_DOT_BASE=http://localhost:8080/\n");
    cfg *c = load_ok(f, "model_list:\n"
                          "  - model_name: m\n"
                          "    litellm_params:\n"
                          "      model: openai/m\n"
                          "      api_key: os.environ/SLUICE_T_DOT_NEW\n"
                          "      api_base: os.environ/SLUICE_T_DOT_BASE\n"
                          "  - model_name: n\n"
                          "    litellm_params:\n"
                          "      model: openai/n\n"
                          "      api_key: os.environ/SLUICE_T_DOT_SET\n"
                          "      api_base: http://localhost:8081\n");
    assert_string_equal(getenv("SLUICE_T_DOT_NEW"), "from-dotenv");
    assert_string_equal(getenv("SLUICE_T_DOT_SET"), "from-process"); /* not overridden */
    assert_string_equal(c->deps[0].api_key, "from-dotenv");
    assert_string_equal(c->deps[0].url[EP_CHAT], "http://localhost:8080/chat/completions");
    assert_string_equal(c->deps[1].api_key, "from-process");
    cfg_free(c);
    unsetenv("SLUICE_T_DOT_NEW");
    unsetenv("SLUICE_T_DOT_SET");
    unsetenv("SLUICE_T_DOT_BASE");
}

static void test_environment_variables_override(void **state)
{
    fixture *f = *state;
    setenv("SLUICE_T_ENV_OVR", "old", 1);
    cfg *c = load_ok(f, "environment_variables:\n"
                          "  SLUICE_T_ENV_OVR: new\n"
                          "  SLUICE_T_ENV_NUM: 42\n"
                          "model_list:\n"
                          "  - model_name: m\n"
                          "    litellm_params:\n"
                          "      model: openai/m\n"
                          "      mock_response: hi\n");
    assert_string_equal(getenv("SLUICE_T_ENV_OVR"), "new");
    assert_string_equal(getenv("SLUICE_T_ENV_NUM"), "42");
    cfg_free(c);
    unsetenv("SLUICE_T_ENV_OVR");
    unsetenv("SLUICE_T_ENV_NUM");
}

static void test_master_key_from_env(void **state)
{
    fixture *f = *state;
    const char *yaml = "model_list:\n"
                       "  - model_name: m\n"
                       "    litellm_params:\n"
                       "      model: openai/m\n"
                       "      mock_response: hi\n";
    cfg *c = load_text(f, yaml);
    assert_non_null(c);
    assert_null(c->master_key); /* open proxy */
    cfg_free(c);

    setenv("LITELLM_MASTER_KEY", "sk-from-env", 1);
    c = load_text(f, yaml);
    assert_non_null(c);
    assert_string_equal(c->master_key, "sk-from-env");
    cfg_free(c);

    setenv("LITELLM_MASTER_KEY", "not-sk", 1);
    c = load_text(f, yaml);
    assert_null(c);
    find_problem(f, false, "LITELLM_MASTER_KEY");
    unsetenv("LITELLM_MASTER_KEY");
}

static void test_openai_defaults(void **state)
{
    fixture *f = *state;
    const char *yaml = "model_list:\n"
                       "  - model_name: real\n"
                       "    litellm_params:\n"
                       "      model: openai/gpt-4o\n";
    /* no key anywhere: loads, with a warning, against the OpenAI API */
    cfg *c = load_text(f, yaml);
    assert_non_null(c);
    assert_int_equal(count_kind(f, false), 0);
    find_problem(f, true, "OPENAI_API_KEY");
    assert_null(c->deps[0].api_key);
    assert_string_equal(c->deps[0].api_base, "https://api.openai.com/v1");
    assert_string_equal(c->deps[0].url[EP_CHAT], "https://api.openai.com/v1/chat/completions");
    assert_string_equal(c->deps[0].host, "api.openai.com");
    cfg_free(c);

    /* OPENAI_API_KEY is the fallback key */
    setenv("OPENAI_API_KEY", "sk-openai-env", 1);
    c = load_text(f, yaml);
    assert_non_null(c);
    assert_string_equal(c->deps[0].api_key, "sk-openai-env");
    assert_int_equal(f->probs.n, 0);
    cfg_free(c);
    unsetenv("OPENAI_API_KEY");
}

/* ---- errors, each with its line ----------------------------------------------------------- */

static void test_error_master_key(void **state)
{
    fixture *f = *state;
    expect_error(f, "general_settings:\n  master_key: abc123\nmodel_list: []\n", "sk-", 2, 15);
}

static void test_error_model_list_not_list(void **state)
{
    fixture *f = *state;
    expect_error(f, "general_settings: {}\nmodel_list: gpt-4o\n", "model_list", 2, 13);
    expect_error(f, "model_list:\n  model_name: a\n", "model_list must be a list", 2, 0);
}

static void test_error_entry_without_model_name(void **state)
{
    fixture *f = *state;
    expect_error(f, "model_list:\n"
                    "  - model_name: ok\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      mock_response: x\n"
                    "  - litellm_params:\n"
                    "      model: openai/b\n",
                 "model_name", 6, 0);
    /* an empty model_name counts as none */
    expect_error(f, "model_list:\n"
                    "  - model_name: \"\"\n"
                    "    litellm_params:\n"
                    "      model: openai/b\n",
                 "model_name", 2, 0);
    /* an entry that is not a mapping */
    expect_error(f, "model_list:\n  - just-a-string\n", "model_list[0]", 2, 0);
}

static void test_error_entry_without_litellm_params(void **state)
{
    fixture *f = *state;
    expect_error(f, "model_list:\n  - model_name: a\n    model_info:\n      mode: chat\n",
                 "litellm_params", 2, 0);
    expect_error(f, "model_list:\n  - model_name: a\n    litellm_params: openai/a\n",
                 "litellm_params", 3, 21);
}

static void test_error_entry_without_model(void **state)
{
    fixture *f = *state;
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      api_base: http://localhost:1234\n"
                    "      api_key: x\n",
                 "litellm_params.model is required", 4, 0);
}

static void test_error_api_base_scheme(void **state)
{
    fixture *f = *state;
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      api_base: ftp://files.example.com/v1\n",
                 "api_base", 5, 17);
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      api_base: localhost:8000\n",
                 "api_base", 5, 17);
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      api_base: \"http://\"\n",
                 "api_base", 5, 0);
}

static void test_error_timeouts(void **state)
{
    fixture *f = *state;
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      mock_response: x\n"
                    "      timeout: -5\n",
                 "timeout", 6, 16);
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      mock_response: x\n"
                    "      timeout: soon\n",
                 "number", 6, 16);
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      mock_response: x\n"
                    "      timeout: 10s\n",
                 "number", 6, 16);
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      mock_response: x\n"
                    "      stream_timeout: 0\n",
                 "stream_timeout", 6, 23);
}

static void test_error_hosted_vllm_needs_api_base(void **state)
{
    fixture *f = *state;
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: hosted_vllm/meta-llama/Llama-3\n",
                 "api_base", 4, 0);
}

static void test_error_duplicate_id(void **state)
{
    fixture *f = *state;
    expect_error(f, "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params:\n"
                    "      model: openai/a\n"
                    "      mock_response: x\n"
                    "    model_info:\n"
                    "      id: same\n"
                    "  - model_name: b\n"
                    "    litellm_params:\n"
                    "      model: openai/b\n"
                    "      mock_response: y\n"
                    "    model_info:\n"
                    "      id: same\n",
                 "same", 8, 0);
    /* the message names the other deployment and its line */
    const cfg_problem *p = find_problem(f, false, "same");
    assert_non_null(strstr(p->msg, "line 2"));
}

static void test_error_all_reported(void **state)
{
    fixture *f = *state;
    /* several problems in one file: every one is reported, not only the first */
    cfg *c = load_text(f, "general_settings:\n"
                          "  master_key: bad\n"
                          "model_list:\n"
                          "  - model_name: a\n"
                          "    litellm_params:\n"
                          "      model: openai/a\n"
                          "      api_base: gopher://x\n"
                          "  - model_name: b\n");
    assert_null(c);
    assert_true(count_kind(f, false) >= 3);
    assert_int_equal(find_problem(f, false, "master_key")->line, 2);
    assert_int_equal(find_problem(f, false, "api_base")->line, 7);
    assert_int_equal(find_problem(f, false, "litellm_params")->line, 8);
}

/* Loads yaml expecting a malformed-YAML failure; returns the first problem. */
static const cfg_problem *expect_yaml_error(fixture *f, const char *yaml)
{
    cfg *c = load_text(f, yaml);
    if (c) {
        cfg_free(c);
        fail_msg("malformed YAML was loaded:\n%s", yaml);
    }
    assert_true(f->yaml_error);
    assert_true(f->probs.n >= 1);
    const cfg_problem *p = &f->probs.v[0];
    assert_false(p->warning);
    assert_string_equal(p->file, f->cfg_path);
    assert_non_null(strstr(p->msg, "YAML"));
    return p;
}

static void test_malformed_yaml_duplicate_key(void **state)
{
    fixture *f = *state;
    /* the second "master_key" is at line 3, column 3 */
    const cfg_problem *p = expect_yaml_error(f, "general_settings:\n"
                                                "  master_key: sk-a\n"
                                                "  master_key: sk-b\n"
                                                "model_list: []\n");
    if (p->line != 3 || p->column != 3) {
        dump_problems(f);
        fail_msg("duplicate key reported at %d:%d, want 3:3", p->line, p->column);
    }
}

static void test_malformed_yaml_bad_escape(void **state)
{
    fixture *f = *state;
    /* the invalid escape \q: its backslash is on line 2, column 10 */
    const cfg_problem *p = expect_yaml_error(f, "model_list: []\n"
                                                "a: [1, \"x\\q\"]\n");
    if (p->line != 2 || p->column != 10) {
        dump_problems(f);
        fail_msg("invalid escape reported at %d:%d, want 2:10", p->line, p->column);
    }
}

static void test_malformed_yaml_unclosed(void **state)
{
    fixture *f = *state;
    /* an unclosed flow sequence on line 3 of a 3-line file: reported at or after its start and
     * no further than the end of the file (line 4, column 1) */
    const cfg_problem *p =
        expect_yaml_error(f, "model_list:\n  - model_name: a\n    litellm_params: [x, y\n");
    if (p->line < 3 || p->line > 4 || p->column < 1 || (p->line == 4 && p->column != 1)) {
        dump_problems(f);
        fail_msg("unclosed sequence reported at %d:%d, want between 3:21 and 4:1", p->line,
                 p->column);
    }
}

/* Bytes libfyaml 0.7 hangs or crashes on are refused first, with the line they are on;
 * valid UTF-8 at the edges of the ranges still loads. */
static void test_malformed_yaml_bytes(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "model_list: []\n%\xff\n",             /* not a UTF-8 lead byte */
        "model_list: []\n%\xe0\x9b\x93\n",     /* overlong 3-byte form */
        "model_list: []\n%\xed\xa0\x80\n",     /* UTF-16 surrogate */
        "model_list: []\n%\xf4\x90\x80\x80\n", /* past U+10FFFF */
        "model_list: []\n%\xc0\xaf\n",         /* overlong 2-byte '/' */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const cfg_problem *p = expect_yaml_error(f, bad[i]);
        assert_non_null(strstr(p->msg, "invalid UTF-8"));
        assert_int_equal(p->line, 2);
    }
    cfg *c = load_ok(f, "model_list:\n  - model_name: \"\xe0\xa0\x80\xed\x9f\xbf\xf4\x8f\xbf\xbf\"\n"
                          "    litellm_params: {model: openai/x, mock_response: hi}\n");
    cfg_free(c);
}

/* libfyaml 0.7.12 segfaults on an explicit key with a tab after a colon: refused by name. */
static void test_explicit_key_with_tab_refused(void **state)
{
    fixture *f = *state;
    const cfg_problem *p = expect_yaml_error(f, "model_list: []\n? a:\t?\n");
    assert_non_null(strstr(p->msg, "explicit mapping key"));
    assert_int_equal(p->line, 2);
    p = expect_yaml_error(f, "x:\n  - ? a: \t-\n");
    assert_int_equal(p->line, 2);
    /* a tab after a colon alone is fine, and so is an explicit key without tabs */
    cfg *c = load_ok(f, "model_list:\n  - model_name: a\n    litellm_params:\n"
                          "      model:\topenai/x\n      mock_response: hi\n");
    cfg_free(c);
    c = load_ok(f, "? model_list\n: - model_name: a\n"
                     "    litellm_params: {model: openai/x, mock_response: hi}\n");
    cfg_free(c);
}

/* vertex_project / vertex_ai_project are aliases; vertex_project wins when both differ. */
static void test_vertex_alias_keys(void **state)
{
    fixture *f = *state;
    cfg *c = load_ok(f, "model_list:\n  - model_name: g\n    litellm_params:\n"
                          "      model: vertex_ai/gemini-2.0-flash\n"
                          "      vertex_ai_project: p2\n      vertex_project: p1\n"
                          "      vertex_location: us-east5\n      vertex_ai_location: us-east5\n");
    assert_string_equal(c->deps[0].vertex_project, "p1");
    assert_string_equal(c->deps[0].vertex_location, "us-east5");
    find_problem(f, true, "vertex_project and its alias");
    assert_int_equal(count_kind(f, true), 1);
    cfg_free(c);
}

/* TLS and health-check settings: defaults, values, and a CA path that does not exist. */
static void test_tls_and_health_settings(void **state)
{
    fixture *f = *state;
    const char *models = "model_list:\n  - model_name: a\n    litellm_params:\n"
                         "      model: openai/x\n      api_base: https://127.0.0.1:9/v1\n";
    cfg *c = load_ok(f, models);
    assert_int_equal(c->ssl_verify, 1);
    assert_null(c->ssl_ca_file);
    assert_int_equal(c->deps[0].ssl_verify, -1);
    assert_false(c->background_health_checks);
    assert_true(c->health_check_interval_s == 300);
    assert_true(c->health_check_routing);
    cfg_free(c);

    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "%s      ssl_verify: %s\n  - model_name: b\n    litellm_params:\n"
             "      model: openai/y\n      api_base: https://127.0.0.1:9/v1\n"
             "      ssl_verify: false\n"
             "litellm_settings:\n  ssl_verify: false\n"
             "general_settings:\n  background_health_checks: true\n"
             "  health_check_interval: 5\n  enable_health_check_routing: false\n",
             models, f->cfg_path);
    c = load_ok(f, yaml);
    assert_int_equal(c->deps[0].ssl_verify, 1);
    assert_string_equal(c->deps[0].ssl_ca_file, f->cfg_path); /* any readable file */
    assert_int_equal(c->deps[1].ssl_verify, 0);
    assert_null(c->deps[1].ssl_ca_file);
    assert_int_equal(c->ssl_verify, 0);
    find_problem(f, true, "verification is off");
    assert_true(c->background_health_checks);
    assert_true(c->health_check_interval_s == 5);
    assert_false(c->health_check_routing);
    cfg_free(c);

    snprintf(yaml, sizeof yaml, "%s      ssl_verify: /nonexistent/ca.pem\n", models);
    expect_error(f, yaml, "ssl_verify: '/nonexistent/ca.pem' is neither true/false nor a readable", 6, 0);

    /* spend-log retention: durations as LiteLLM writes them */
    snprintf(yaml, sizeof yaml,
             "%sgeneral_settings:\n  maximum_spend_logs_retention_period: 7d\n"
             "  maximum_spend_logs_retention_interval: 12h\n", models);
    c = load_ok(f, yaml);
    assert_string_equal(c->spend_logs_retention, "7d");
    assert_true(c->spend_logs_cleanup_s == 12 * 3600);
    cfg_free(c);
    c = load_ok(f, models);
    assert_null(c->spend_logs_retention);
    assert_true(c->spend_logs_cleanup_s == 86400);
    cfg_free(c);
    snprintf(yaml, sizeof yaml, "%sgeneral_settings:\n  maximum_spend_logs_retention_period: 7 days\n",
             models);
    expect_error(f, yaml, "maximum_spend_logs_retention_period must be a duration like", 7, 0);
}

static void test_empty_file_is_not_malformed(void **state)
{
    fixture *f = *state;
    /* an empty file (or one with only comments) is valid YAML: it is an empty config */
    static const char *const empties[] = {"", "# nothing here yet\n", "\n\n"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
        cfg *c = load_text(f, empties[i]);
        assert_null(c);
        if (f->yaml_error) {
            dump_problems(f);
            fail_msg("empty config <%s> reported as malformed YAML", empties[i]);
        }
        find_problem(f, false, "empty");
    }
}

static void test_yaml_error_flag_only_for_yaml(void **state)
{
    fixture *f = *state;
    /* a well-formed file with a semantic error is not a YAML error */
    cfg *c = load_text(f, "model_list: 5\n");
    assert_null(c);
    assert_false(f->yaml_error);
    /* a missing file is an error, not a YAML error */
    cfg_problems_free(&f->probs);
    bool ye = true;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.yaml", f->dir);
    c = cfg_load(missing, &f->probs, &ye);
    assert_null(c);
    assert_false(ye);
    assert_true(f->probs.n >= 1);
    assert_string_equal(f->probs.v[0].file, missing);
    assert_non_null(strstr(f->probs.v[0].msg, "cannot read"));
    /* top level is not a mapping */
    c = load_text(f, "- a\n- b\n");
    assert_null(c);
    assert_false(f->yaml_error);
    /* an explicitly empty document */
    c = load_text(f, "---\n");
    assert_null(c);
    assert_false(f->yaml_error);
    find_problem(f, false, "empty");
}

/* ---- warnings, not errors ----------------------------------------------------------------- */

static void test_warning_unset_env(void **state)
{
    fixture *f = *state;
    unsetenv("SLUICE_T_NEVER_SET");
    cfg *c = load_ok(f, "model_list:\n"
                          "  - model_name: a\n"
                          "    litellm_params:\n"
                          "      model: openai/a\n"
                          "      api_base: http://10.1.2.3:8000\n"
                          "      api_key: os.environ/SLUICE_T_NEVER_SET\n");
    assert_int_equal(count_kind(f, false), 0);
    const cfg_problem *p = find_problem(f, true, "SLUICE_T_NEVER_SET");
    assert_int_equal(p->line, 6);
    assert_int_equal(p->column, 16);
    assert_null(c->deps[0].api_key);
    cfg_free(c);
}

static void test_warning_unset_env_reported_once(void **state)
{
    fixture *f = *state;
    unsetenv("SLUICE_T_NEVER_SET");
    cfg *c = load_text(f, "model_list:\n"
                          "  - model_name: a\n"
                          "    litellm_params:\n"
                          "      model: openai/a\n"
                          "      api_base: http://10.1.2.3:8000\n"
                          "      api_key: os.environ/SLUICE_T_NEVER_SET\n");
    assert_non_null(c);
    cfg_free(c);
    /* one unset variable in one place: one warning */
    size_t n = 0;
    for (size_t i = 0; i < f->probs.n; i++)
        if (strstr(f->probs.v[i].msg, "SLUICE_T_NEVER_SET"))
            n++;
    if (n != 1) {
        dump_problems(f);
        fail_msg("the unset variable was warned about %zu times, want 1", n);
    }
}

static void test_warning_unimplemented_provider(void **state)
{
    fixture *f = *state;
    cfg *c = load_ok(f, "model_list:\n"
                          "  - model_name: claude\n"
                          "    litellm_params:\n"
                          "      model: bedrock/anthropic.claude-3-sonnet\n"
                          "  - model_name: ok\n"
                          "    litellm_params:\n"
                          "      model: openai/x\n"
                          "      mock_response: hi\n");
    assert_int_equal(count_kind(f, false), 0);
    assert_int_equal(c->ndeps, 2);
    assert_int_equal(c->deps[0].kind, PROV_UNIMPLEMENTED);
    assert_string_equal(c->deps[0].provider, "bedrock");
    assert_string_equal(c->deps[0].upstream_model, "anthropic.claude-3-sonnet");
    const cfg_problem *p = find_problem(f, true, "bedrock");
    assert_int_equal(p->line, 4);
    cfg_free(c);
}

static void test_ignored_once_per_key(void **state)
{
    fixture *f = *state;
    cfg *c = load_ok(f, "general_settings:\n"
                          "  alerting: [slack]\n"
                          "  alert_types: [llm_exceptions]\n"
                          "router_settings:\n"
                          "  routing_strategy: simple-shuffle\n"
                          "model_list:\n"
                          "  - model_name: a\n"
                          "    litellm_params:\n"
                          "      model: openai/a\n"
                          "      mock_response: x\n"
                          "      tpm: 1000\n"
                          "      custom_llm_provider: openai\n"
                          "  - model_name: b\n"
                          "    litellm_params:\n"
                          "      model: openai/b\n"
                          "      mock_response: y\n"
                          "      tpm: 2000\n"
                          "      custom_llm_provider: openai\n");
    assert_int_equal(count_ignored(c, "general_settings.alerting"), 1);
    assert_int_equal(count_ignored(c, "general_settings.alert_types"), 1);
    assert_int_equal(count_ignored(c, "router_settings.routing_strategy"), 0); /* router */
    assert_int_equal(count_ignored(c, "litellm_params.tpm"), 0);
    assert_int_equal(count_ignored(c, "litellm_params.custom_llm_provider"), 1);
    /* each entry carries the line of its first occurrence */
    bool seen = false;
    for (size_t i = 0; i < c->nignored; i++)
        if (strcmp(c->ignored[i], "litellm_params.custom_llm_provider (line 12)") == 0)
            seen = true;
    assert_true(seen);
    /* ignored keys are neither errors nor warnings */
    assert_int_equal(count_kind(f, false), 0);
    cfg_free(c);
}

/* ---- the built-in demo -------------------------------------------------------------------- */

static void test_demo_config(void **state)
{
    (void)state;
    cfg_problems probs = {0};
    bool ye = true;
    cfg *c = cfg_load(NULL, &probs, &ye);
    assert_non_null(c);
    assert_false(ye);
    for (size_t i = 0; i < probs.n; i++)
        assert_true(probs.v[i].warning);
    assert_null(c->path);
    assert_null(c->master_key);
    assert_true(c->ndeps >= 1);
    const cfg_deployment *d = cfg_find_model(c, "demo");
    assert_non_null(d);
    assert_non_null(d->mock_response);
    assert_true(strlen(d->mock_response) > 0);
    for (size_t i = 0; i < c->ndeps; i++) {
        assert_non_null(c->deps[i].mock_response); /* offline: every demo model is a mock */
        assert_null(c->deps[i].api_base);
    }
    cfg_free(c);
    cfg_problems_free(&probs);
}

/* ---- formatting --------------------------------------------------------------------------- */

static void test_problem_format(void **state)
{
    fixture *f = *state;
    char out[256];
    cfg_problem p = {.file = "conf.yaml", .line = 12, .column = 7, .msg = "bad thing",
                     .warning = false};
    cfg_problem_format(&p, out, sizeof out);
    assert_string_equal(out, "conf.yaml:12:7: error: bad thing");
    p.warning = true;
    cfg_problem_format(&p, out, sizeof out);
    assert_string_equal(out, "conf.yaml:12:7: warning: bad thing");
    /* truncation is safe */
    char tiny[10];
    cfg_problem_format(&p, tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);

    /* from a real load */
    expect_error(f, "general_settings:\n  master_key: nope\n", "sk-", 2, 15);
    const cfg_problem *rp = find_problem(f, false, "sk-");
    char full[1400];
    cfg_problem_format(rp, full, sizeof full);
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s:2:15: error: ", f->cfg_path);
    assert_int_equal(strncmp(full, prefix, strlen(prefix)), 0);
}

/* ---- cfg_load_dotenv ---------------------------------------------------------------------- */

static void test_dotenv_edge_cases(void **state)
{
    fixture *f = *state;
    static const char *const vars[] = {"SLUICE_T_D1", "SLUICE_T_D2", "SLUICE_T_D3",
                                       "SLUICE_T_D4", "SLUICE_T_D5", "SLUICE_T_D6",
                                       "SLUICE_T_D7", "SLUICE_T_D8", "_SLUICE_T_D9",
                                       "SLUICE_T_D10"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
    setenv("SLUICE_T_D8", "kept", 1);
    write_file(f->env_path,
               "# a comment\n"                                     /* 1 */
               "   # an indented comment\n"                        /* 2 */
               "\n"                                                /* 3 */
               "export SLUICE_T_D1=one\n"                          /* 4 */
               "SLUICE_T_D2 = \"two words\"\n"                     /* 5 */
               "SLUICE_T_D3='single $HOME \\n'\n"                  /* 6 */
               "SLUICE_T_D4=\"esc\\nline \\\"q\\\"\"\n"            /* 7 */
               "SLUICE_T_D5=unquoted # trailing comment\n"         /* 8 */
               "SLUICE_T_D6=\n"                                    /* 9 */
               "1BAD=x\n"                                          /* 10 */
               "BAD-NAME=y\n"                                      /* 11 */
               "no equals sign here\n"                             /* 12 */
               "SLUICE_T_D7=a=b#c\r\n"                             /* 13 */
               "SLUICE_T_D8=overridden\n"                          /* 14 */
               "_SLUICE_T_D9=u\n"                                  /* 15 */
               "=novalue\n"                                        /* 16 */
               "SLUICE_T_D10=\"x\" \n");                           /* 17 */
    cfg_problems probs = {0};
    int n = cfg_load_dotenv(f->env_path, &probs);
    assert_int_equal(n, 9);
    assert_string_equal(getenv("SLUICE_T_D1"), "one");
    assert_string_equal(getenv("SLUICE_T_D2"), "two words");
    assert_string_equal(getenv("SLUICE_T_D3"), "single $HOME \\n");
    assert_string_equal(getenv("SLUICE_T_D4"), "esc\nline \"q\"");
    assert_string_equal(getenv("SLUICE_T_D5"), "unquoted");
    assert_string_equal(getenv("SLUICE_T_D6"), "");
    assert_string_equal(getenv("SLUICE_T_D7"), "a=b#c");
    assert_string_equal(getenv("SLUICE_T_D8"), "kept");
    assert_string_equal(getenv("_SLUICE_T_D9"), "u");
    assert_string_equal(getenv("SLUICE_T_D10"), "x");
    assert_null(getenv("1BAD"));
    assert_null(getenv("BAD-NAME"));

    /* every unparseable line is a warning with its line number; nothing else is reported */
    assert_int_equal(probs.n, 4);
    int lines[4];
    for (size_t i = 0; i < probs.n; i++) {
        assert_true(probs.v[i].warning);
        assert_string_equal(probs.v[i].file, f->env_path);
        lines[i] = probs.v[i].line;
    }
    assert_int_equal(lines[0], 10);
    assert_int_equal(lines[1], 11);
    assert_int_equal(lines[2], 12);
    assert_int_equal(lines[3], 16);
    assert_non_null(strstr(probs.v[0].msg, "1BAD"));
    assert_non_null(strstr(probs.v[1].msg, "BAD-NAME"));
    cfg_problems_free(&probs);

    /* loading again sets nothing new: everything is already set */
    assert_int_equal(cfg_load_dotenv(f->env_path, &probs), 0);
    cfg_problems_free(&probs);

    /* a missing file */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/absent.env", f->dir);
    assert_int_equal(cfg_load_dotenv(missing, &probs), -1);
    assert_int_equal(probs.n, 0);

    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_full_config),
        T(test_dotenv_beside_config),
        T(test_environment_variables_override),
        T(test_master_key_from_env),
        T(test_openai_defaults),
        T(test_error_master_key),
        T(test_error_model_list_not_list),
        T(test_error_entry_without_model_name),
        T(test_error_entry_without_litellm_params),
        T(test_error_entry_without_model),
        T(test_error_api_base_scheme),
        T(test_error_timeouts),
        T(test_error_hosted_vllm_needs_api_base),
        T(test_error_duplicate_id),
        T(test_error_all_reported),
        T(test_malformed_yaml_duplicate_key),
        T(test_malformed_yaml_bad_escape),
        T(test_malformed_yaml_unclosed),
        T(test_malformed_yaml_bytes),
        T(test_explicit_key_with_tab_refused),
        T(test_vertex_alias_keys),
        T(test_tls_and_health_settings),
        T(test_empty_file_is_not_malformed),
        T(test_yaml_error_flag_only_for_yaml),
        T(test_warning_unset_env),
        T(test_warning_unset_env_reported_once),
        T(test_warning_unimplemented_provider),
        T(test_ignored_once_per_key),
        T(test_demo_config),
        T(test_problem_format),
        T(test_dotenv_edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
