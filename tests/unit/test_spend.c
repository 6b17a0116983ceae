/* Unit tests for spend: the shipped price table, lookup order and overrides, cost with prompt
 * cache reads/writes and long-context tiers, estimates, warn-once, and the accumulator (bound,
 * spill file, recovery, restore, concurrent adds). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "spend/spend.h"

/* ctest runs in tests/unit; run by hand from elsewhere, find it next to this source file */
static const char *shipped_json(void)
{
    static char path[4096];
    const char *rel = "../../src/spend/prices.json";
    if (access(rel, R_OK) == 0)
        return rel;
    const char *tail = strstr(__FILE__, "tests/unit/test_spend.c");
    if (!tail)
        return rel;
    snprintf(path, sizeof path, "%.*ssrc/spend/prices.json", (int)(tail - __FILE__), __FILE__);
    return path;
}
#define SHIPPED_JSON shipped_json()

static void assert_close(double got, double want)
{
    double tol = fabs(want) * 1e-9 + 1e-15;
    if (fabs(got - want) > tol)
        fail_msg("got %.17g, want %.17g", got, want);
}

/* The shipped table: embedded when the build includes src/spend/CMakeLists.txt, else read from
 * the source tree so its content is still checked. */
static spend_table *shipped(void)
{
    spend_table *t = spend_table_new();
    assert_non_null(t);
    if (!spend_prices_embedded()) {
        char err[256];
        int n = spend_table_merge_file(t, SHIPPED_JSON, err, sizeof err);
        if (n < 0)
            fail_msg("%s", err);
    }
    return t;
}

static void test_embedded(void **state)
{
    (void)state;
    if (!spend_prices_embedded()) {
        print_message("prices.json is not embedded in this build: add "
                      "include(src/spend/CMakeLists.txt) to CMakeLists.txt\n");
        skip();
    }
    spend_table *t = spend_table_new();
    assert_true(spend_table_count(t) > 100);
    spend_price p;
    assert_true(spend_table_lookup(t, NULL, "gpt-4o", NULL, NULL, &p));
    spend_table_free(t);
    assert_true(spend_price_lookup(NULL, "anthropic/claude-3-5-sonnet-20241022", NULL, NULL, &p));
    assert_string_equal(p.key, "claude-3-5-sonnet-20241022");
}

static void test_shipped_file_is_litellm_format(void **state)
{
    (void)state;
    FILE *f = fopen(SHIPPED_JSON, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    assert_non_null(root);
    int count = 0;
    for (const cJSON *e = root->child; e; e = e->next, count++) {
        const char *prov = cJSON_GetStringValue(cJSON_GetObjectItem(e, "litellm_provider"));
        const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(e, "mode"));
        if (!prov || !mode || !cJSON_IsNumber(cJSON_GetObjectItem(e, "input_cost_per_token")) ||
            !cJSON_IsNumber(cJSON_GetObjectItem(e, "output_cost_per_token")) ||
            !cJSON_IsNumber(cJSON_GetObjectItem(e, "max_input_tokens")))
            fail_msg("entry %s lacks a required field", e->string);
    }
    spend_table *t = spend_table_new();
    char err[128];
    if (!spend_prices_embedded())
        assert_int_equal(spend_table_merge_file(t, SHIPPED_JSON, err, sizeof err), count);
    assert_int_equal(spend_table_count(t), (size_t)count);
    spend_table_free(t);
    cJSON_Delete(root);
}

typedef struct {
    const char *base, *model, *resp;
    const char *key;
    double in, out, cread, cwrite;
} lookup_case;

static void test_shipped_lookups(void **state)
{
    (void)state;
    spend_table *t = shipped();
    const lookup_case cases[] = {
        {NULL, "gpt-4o", NULL, "gpt-4o", 2.5e-6, 1e-5, 1.25e-6, -1},
        {NULL, "openai/gpt-4o-mini", NULL, "gpt-4o-mini", 1.5e-7, 6e-7, 7.5e-8, -1},
        {NULL, "openai/gpt-4.1", NULL, "gpt-4.1", 2e-6, 8e-6, 5e-7, -1},
        {NULL, "openai/o3-mini", NULL, "o3-mini", 1.1e-6, 4.4e-6, 5.5e-7, -1},
        {NULL, "openai/text-embedding-3-small", NULL, "text-embedding-3-small", 2e-8, 0, -1, -1},
        /* Azure: provider/model first; a custom deployment name needs base_model */
        {NULL, "azure/gpt-4o", NULL, "azure/gpt-4o", 2.5e-6, 1e-5, 1.25e-6, -1},
        {"gpt-4.1-mini", "azure/my-deployment", NULL, "azure/gpt-4.1-mini", 4e-7, 1.6e-6, 1e-7,
         -1},
        {"azure/o4-mini", "azure/prod-reasoner", NULL, "azure/o4-mini", 1.1e-6, 4.4e-6, 2.75e-7,
         -1},
        {NULL, "azure/my-deployment", "gpt-4o-2024-08-06", "azure/gpt-4o-2024-08-06", 2.5e-6,
         1e-5, 1.25e-6, -1},
        /* Anthropic: bare keys */
        {NULL, "anthropic/claude-3-5-sonnet-20241022", NULL, "claude-3-5-sonnet-20241022", 3e-6,
         1.5e-5, 3e-7, 3.75e-6},
        {NULL, "anthropic/claude-3-7-sonnet-20250219", NULL, "claude-3-7-sonnet-20250219", 3e-6,
         1.5e-5, 3e-7, 3.75e-6},
        {NULL, "anthropic/claude-sonnet-4-20250514", NULL, "claude-sonnet-4-20250514", 3e-6,
         1.5e-5, 3e-7, 3.75e-6},
        {NULL, "anthropic/claude-opus-4-1-20250805", NULL, "claude-opus-4-1-20250805", 1.5e-5,
         7.5e-5, 1.5e-6, 1.875e-5},
        {NULL, "anthropic/claude-3-5-haiku-20241022", NULL, "claude-3-5-haiku-20241022", 8e-7,
         4e-6, 8e-8, 1e-6},
        /* Claude on Vertex: "@version" as LiteLLM names them, and stripped when unknown */
        {NULL, "vertex_ai/claude-3-5-sonnet-v2@20241022", NULL,
         "vertex_ai/claude-3-5-sonnet-v2@20241022", 3e-6, 1.5e-5, 3e-7, 3.75e-6},
        {NULL, "vertex_ai/claude-sonnet-4@20990101", NULL, "vertex_ai/claude-sonnet-4", 3e-6,
         1.5e-5, 3e-7, 3.75e-6},
        {NULL, "vertex_ai/claude-opus-4-1@20250805", NULL, "vertex_ai/claude-opus-4-1@20250805",
         1.5e-5, 7.5e-5, 1.5e-6, 1.875e-5},
        /* Gemini on Vertex: bare keys (vertex_ai-language-models); AI Studio: gemini/ */
        {NULL, "vertex_ai/gemini-2.0-flash", NULL, "gemini-2.0-flash", 1.5e-7, 6e-7, 3.75e-8, -1},
        {NULL, "gemini/gemini-2.0-flash", NULL, "gemini/gemini-2.0-flash", 1e-7, 4e-7, 2.5e-8,
         -1},
        {NULL, "vertex_ai/gemini-2.5-pro", NULL, "gemini-2.5-pro", 1.25e-6, 1e-5, 1.25e-7, -1},
        {NULL, "gemini/gemini-2.5-flash", NULL, "gemini/gemini-2.5-flash", 3e-7, 2.5e-6, 3e-8,
         -1},
        {NULL, "vertex_ai/gemini-1.5-pro-002", NULL, "gemini-1.5-pro-002", 1.25e-6, 5e-6, -1, -1},
        {NULL, "gemini/gemini-1.5-flash", NULL, "gemini/gemini-1.5-flash", 7.5e-8, 3e-7, -1, -1},
        {NULL, "vertex_ai/text-embedding-005", NULL, "text-embedding-005", 1e-7, 0, -1, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const lookup_case *c = &cases[i];
        spend_price p;
        if (!spend_table_lookup(t, c->base, c->model, c->resp, NULL, &p))
            fail_msg("no price for %s", c->model);
        if (strcmp(p.key, c->key) != 0)
            fail_msg("%s matched %s, want %s", c->model, p.key, c->key);
        assert_close(p.input_cost_per_token, c->in);
        assert_close(p.output_cost_per_token, c->out);
        assert_close(p.cache_read_input_token_cost, c->cread);
        assert_close(p.cache_creation_input_token_cost, c->cwrite);
    }
    spend_price p;
    assert_true(spend_table_lookup(t, NULL, "anthropic/claude-3-5-sonnet-20241022", NULL, NULL,
                                   &p));
    assert_string_equal(p.provider, "anthropic");
    assert_string_equal(p.mode, "chat");
    assert_int_equal(p.max_input_tokens, 200000);
    assert_int_equal(p.max_output_tokens, 8192);
    /* unknown */
    assert_false(spend_table_lookup(t, NULL, "openai/gpt-unknown-9", NULL, NULL, &p));
    assert_string_equal(p.key, "");
    assert_string_equal(p.provider, "openai");
    assert_false(spend_table_lookup(t, NULL, "azure/my-deployment", NULL, NULL, &p));
    assert_false(spend_table_lookup(t, NULL, NULL, NULL, NULL, &p));
    spend_table_free(t);
}

static void test_lookup_order(void **state)
{
    (void)state;
    spend_table *t = spend_table_new();
    const char *json =
        "{\"sample_spec\": {\"input_cost_per_token\": 0.0},"
        " \"zz-model\": {\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": 2e-6},"
        " \"azure/zz-model\": {\"input_cost_per_token\": 3e-6, \"output_cost_per_token\": 4e-6},"
        " \"zz-base\": {\"input_cost_per_token\": 5e-6, \"output_cost_per_token\": 6e-6},"
        " \"vertex_ai/zz-claude\": {\"input_cost_per_token\": 7e-6, \"output_cost_per_token\": 8e-6},"
        " \"zz-image\": {\"output_cost_per_image\": 0.04, \"mode\": \"image_generation\"},"
        " \"not-an-object\": 3}";
    char err[128];
    assert_int_equal(spend_table_merge_json(t, json, strlen(json), err, sizeof err), 4);
    size_t count = spend_table_count(t);
    spend_price p;
    /* base_model wins */
    assert_true(spend_table_lookup(t, "zz-base", "azure/zz-model", NULL, NULL, &p));
    assert_string_equal(p.key, "zz-base");
    /* provider/model before model */
    assert_true(spend_table_lookup(t, NULL, "azure/zz-model", NULL, NULL, &p));
    assert_string_equal(p.key, "azure/zz-model");
    assert_true(spend_table_lookup(t, NULL, "openai/zz-model", NULL, NULL, &p));
    assert_string_equal(p.key, "zz-model");
    /* a bare base_model is tried under the deployment's provider first */
    assert_true(spend_table_lookup(t, "zz-model", "azure/deploy-1", NULL, NULL, &p));
    assert_string_equal(p.key, "azure/zz-model");
    /* unknown base_model falls through to the model */
    assert_true(spend_table_lookup(t, "nope", "openai/zz-model", NULL, NULL, &p));
    assert_string_equal(p.key, "zz-model");
    /* @version stripped only from the last path segment */
    assert_true(spend_table_lookup(t, NULL, "vertex_ai/zz-claude@2024", NULL, NULL, &p));
    assert_string_equal(p.key, "vertex_ai/zz-claude");
    assert_false(spend_table_lookup(t, NULL, "@x/none", NULL, NULL, &p));
    /* response_model as the last resort */
    assert_true(spend_table_lookup(t, NULL, "azure/deploy-2", "zz-model", NULL, &p));
    assert_string_equal(p.key, "azure/zz-model");
    /* entries without a token price are not prices */
    assert_false(spend_table_lookup(t, NULL, "zz-image", NULL, NULL, &p));

    /* bad input leaves the table alone */
    assert_int_equal(spend_table_merge_json(t, "{\"a\":", 5, err, sizeof err), -1);
    assert_non_null(strstr(err, "not valid JSON"));
    assert_int_equal(spend_table_merge_json(t, "[1]", 3, err, sizeof err), -1);
    assert_int_equal(spend_table_count(t), count);
    assert_int_equal(spend_table_merge_file(t, "/nonexistent/prices.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/prices.json"));
    spend_table_free(t);
}

static void test_overrides(void **state)
{
    (void)state;
    spend_table *t = shipped();
    spend_override ov;
    spend_override_init(&ov);
    spend_price p;
    /* unset overrides change nothing */
    assert_true(spend_table_lookup(t, NULL, "gpt-4o", NULL, &ov, &p));
    assert_close(p.input_cost_per_token, 2.5e-6);
    /* per deployment (litellm_params): individual fields replace the table's */
    ov.input_cost_per_token = 1e-6;
    ov.cache_creation_input_token_cost = 9e-6;
    assert_true(spend_table_lookup(t, NULL, "gpt-4o", NULL, &ov, &p));
    assert_close(p.input_cost_per_token, 1e-6);
    assert_close(p.output_cost_per_token, 1e-5);
    assert_close(p.cache_read_input_token_cost, 1.25e-6);
    assert_close(p.cache_creation_input_token_cost, 9e-6);
    /* a self-hosted model known only from its deployment's prices */
    spend_override_init(&ov);
    ov.output_cost_per_token = 2e-6;
    assert_true(spend_table_lookup(t, NULL, "hosted_vllm/llama-3", NULL, &ov, &p));
    assert_string_equal(p.key, "");
    assert_close(p.input_cost_per_token, 0);
    assert_close(p.output_cost_per_token, 2e-6);
    /* cache prices alone do not price a model */
    spend_override_init(&ov);
    ov.cache_read_input_token_cost = 1e-7;
    assert_false(spend_table_lookup(t, NULL, "hosted_vllm/llama-3", NULL, &ov, &p));
    spend_table_free(t);
}

static void test_file_layered_over_shipped(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-test-spend-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/prices.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"gpt-4o\": {\"input_cost_per_token\": 1e-06},\n"
          " \"my-org/finetune\": {\"input_cost_per_token\": 4e-06, \"output_cost_per_token\": "
          "8e-06, \"litellm_provider\": \"openai\", \"mode\": \"chat\"}}\n",
          f);
    fclose(f);

    spend_table *t = shipped();
    size_t before = spend_table_count(t);
    char err[256];
    assert_int_equal(spend_table_merge_file(t, path, err, sizeof err), 2);
    assert_int_equal(spend_table_count(t), before + 1);
    spend_price p;
    assert_true(spend_table_lookup(t, NULL, "gpt-4o", NULL, NULL, &p));
    assert_close(p.input_cost_per_token, 1e-6);  /* from the file */
    assert_close(p.output_cost_per_token, 1e-5); /* kept from the shipped entry */
    assert_close(p.cache_read_input_token_cost, 1.25e-6);
    assert_true(spend_table_lookup(t, NULL, "openai/my-org/finetune", NULL, NULL, &p));
    assert_string_equal(p.key, "my-org/finetune");
    spend_table_free(t);

    /* the process-wide table */
    if (spend_prices_embedded()) {
        assert_int_equal(spend_price_load_file(path, err, sizeof err), 2);
        assert_true(spend_price_lookup(NULL, "gpt-4o", NULL, NULL, &p));
        assert_close(p.input_cost_per_token, 1e-6);
        assert_close(p.output_cost_per_token, 1e-5);
        assert_true(spend_price_lookup(NULL, "anthropic/claude-opus-4-20250514", NULL, NULL, &p));
        /* a bad file keeps the table in use */
        assert_int_equal(spend_price_load_file("/nonexistent.json", err, sizeof err), -1);
        assert_true(spend_price_lookup(NULL, "my-org/finetune", NULL, NULL, &p));
    }
    unlink(path);
    rmdir(dir);
}

static void test_cost(void **state)
{
    (void)state;
    spend_table *t = shipped();
    spend_price p;
    double c;

    /* Claude 3.5 Sonnet: 1000 prompt tokens of which 300 cache reads and 200 cache writes */
    assert_true(spend_table_lookup(t, NULL, "anthropic/claude-3-5-sonnet-20241022", NULL, NULL,
                                   &p));
    spend_usage u = {1000, 100, 300, 200};
    assert_true(spend_cost(&p, &u, &c));
    /* 500 × 3e-6 + 300 × 3e-7 + 200 × 3.75e-6 + 100 × 1.5e-5 */
    assert_close(c, 1.5e-3 + 9e-5 + 7.5e-4 + 1.5e-3);

    /* GPT-4o with 600 of 1000 prompt tokens cached (OpenAI: cached_tokens) */
    assert_true(spend_table_lookup(t, NULL, "gpt-4o", NULL, NULL, &p));
    oai_usage ou = {1000, 50, 1050, 600, -1};
    spend_usage_from_oai(&ou, -1, &u);
    assert_int_equal(u.cache_read_tokens, 600);
    assert_int_equal(u.cache_creation_tokens, -1);
    assert_true(spend_cost(&p, &u, &c));
    assert_close(c, 400 * 2.5e-6 + 600 * 1.25e-6 + 50 * 1e-5);

    /* no cache prices: cached tokens cost the input rate */
    assert_true(spend_table_lookup(t, NULL, "gpt-4o-2024-05-13", NULL, NULL, &p));
    assert_true(spend_cost(&p, &u, &c));
    assert_close(c, 1000 * 5e-6 + 50 * 1.5e-5);

    /* usage not reported: zero tokens, but the price is known */
    spend_usage none = {-1, -1, -1, -1};
    assert_true(spend_cost(&p, &none, &c));
    assert_close(c, 0);

    /* long-context tiers: Gemini 2.5 Pro above 200k, 1.5 Pro above 128k */
    assert_true(spend_table_lookup(t, NULL, "vertex_ai/gemini-2.5-pro", NULL, NULL, &p));
    spend_usage big = {250000, 1000, 0, 0};
    assert_true(spend_cost(&p, &big, &c));
    assert_close(c, 250000 * 2.5e-6 + 1000 * 1.5e-5);
    spend_usage big_cached = {250000, 1000, 100000, 0};
    assert_true(spend_cost(&p, &big_cached, &c));
    assert_close(c, 150000 * 2.5e-6 + 100000 * 2.5e-7 + 1000 * 1.5e-5);
    spend_usage small = {200000, 1000, 0, 0}; /* not above 200k */
    assert_true(spend_cost(&p, &small, &c));
    assert_close(c, 200000 * 1.25e-6 + 1000 * 1e-5);
    assert_true(spend_table_lookup(t, NULL, "gemini/gemini-1.5-pro", NULL, NULL, &p));
    spend_usage mid = {150000, 1000, 0, 0};
    assert_true(spend_cost(&p, &mid, &c));
    assert_close(c, 150000 * 2.5e-6 + 1000 * 1e-5);
    /* Claude Sonnet 4 above 200k: cache prices have their own tier */
    assert_true(spend_table_lookup(t, NULL, "anthropic/claude-sonnet-4-20250514", NULL, NULL, &p));
    spend_usage huge = {300000, 10, 50000, 10000};
    assert_true(spend_cost(&p, &huge, &c));
    assert_close(c, 240000 * 6e-6 + 50000 * 6e-7 + 10000 * 7.5e-6 + 10 * 2.25e-5);

    /* parts larger than the whole: trust the parts */
    assert_true(spend_table_lookup(t, NULL, "anthropic/claude-3-5-haiku-20241022", NULL, NULL, &p));
    spend_usage odd = {100, 0, 80, 40};
    assert_true(spend_cost(&p, &odd, &c));
    assert_close(c, 80 * 8e-8 + 40 * 1e-6);

    /* unknown model: not a silent zero */
    assert_false(spend_cost(NULL, &u, &c));
    assert_true(c == 0);
    spend_price unknown;
    assert_false(spend_table_lookup(t, NULL, "openai/gpt-unknown", NULL, NULL, &unknown));
    assert_false(spend_cost(&unknown, &u, &c));
    spend_table_free(t);
}

static void test_estimate(void **state)
{
    (void)state;
    spend_table *t = shipped();
    spend_price p;
    assert_true(spend_table_lookup(t, NULL, "gpt-4o", NULL, NULL, &p));
    /* 4000 bytes ≈ 1000 prompt tokens; no max_tokens: 4096 output tokens */
    assert_close(spend_estimate(&p, 4000, 0), 1000 * 2.5e-6 + 4096 * 1e-5);
    assert_close(spend_estimate(&p, 4001, 100), 1001 * 2.5e-6 + 100 * 1e-5);
    assert_close(spend_estimate(&p, 0, -5), 4096 * 1e-5);
    /* a model whose output cap is below the default */
    const char *json = "{\"tiny\": {\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": "
                       "2e-6, \"max_output_tokens\": 1000}}";
    char err[64];
    assert_int_equal(spend_table_merge_json(t, json, strlen(json), err, sizeof err), 1);
    assert_true(spend_table_lookup(t, NULL, "tiny", NULL, NULL, &p));
    assert_close(spend_estimate(&p, 400, 0), 100 * 1e-6 + 1000 * 2e-6);
    assert_close(spend_estimate(NULL, 400, 0), 0);
    spend_table_free(t);
}

typedef struct {
    int trues;
} warn_arg;

static void *warn_loop(void *arg)
{
    warn_arg *w = arg;
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "unknown-model-%d", i);
        w->trues += spend_warn_once(name);
    }
    return NULL;
}

static void test_warn_once(void **state)
{
    (void)state;
    pthread_t a, b;
    warn_arg wa = {0}, wb = {0};
    pthread_create(&a, NULL, warn_loop, &wa);
    pthread_create(&b, NULL, warn_loop, &wb);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(wa.trues + wb.trues, 1000);
    assert_false(spend_warn_once("unknown-model-7"));
    assert_true(spend_warn_once("another-model"));
    assert_false(spend_warn_once("another-model"));
}

/* ---- accumulator --------------------------------------------------------------------------- */

static char tmpdir[64];
static char spill_path[128];

static int acc_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-test-accum-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(spill_path, sizeof spill_path, "%s/spill.jsonl", tmpdir);
    return 0;
}

static int acc_teardown(void **state)
{
    (void)state;
    unlink(spill_path);
    rmdir(tmpdir);
    return 0;
}

static spend_row make_row(char *id, size_t idlen, int i, const char *key, double spend)
{
    snprintf(id, idlen, "req-%06d", i);
    spend_row r = {0};
    r.request_id = id;
    r.call_type = "acompletion";
    r.api_key = key;
    r.spend = spend;
    r.cost_known = true;
    r.prompt_tokens = 10;
    r.completion_tokens = 5;
    r.total_tokens = 15;
    r.start_time = "2026-01-01T00:00:00Z";
    r.end_time = "2026-01-01T00:00:01Z";
    r.model = "gpt-4o";
    r.user_id = "u1";
    r.team_id = NULL;
    r.organization_id = "o1";
    return r;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static double inc_of(const spend_batch *b, spend_entity k, const char *id)
{
    for (size_t i = 0; i < b->nincs; i++)
        if (b->incs[i].kind == k && strcmp(b->incs[i].id, id) == 0)
            return b->incs[i].amount;
    return -1;
}

static void test_accum_bound_spill_recover(void **state)
{
    (void)state;
    spend_accum *a = spend_accum_new(5, spill_path);
    assert_non_null(a);
    char id[32];
    for (int i = 0; i < 12; i++) {
        spend_row r = make_row(id, sizeof id, i, "hashA", 0.25);
        assert_int_equal(spend_accum_add(a, &r), i < 5 ? 0 : 1);
    }
    spend_accum_stats st;
    spend_accum_get_stats(a, &st);
    assert_int_equal(st.rows_in_memory, 5);
    assert_int_equal(st.rows_spilled, 7);
    assert_true(st.spill_pending);
    assert_true(file_size(spill_path) > 0);

    /* the database is back: memory plus at most max_rows from the file */
    spend_batch b;
    assert_int_equal(spend_accum_take(a, &b), 10);
    assert_int_equal(b.from_spill, 5);
    assert_string_equal(b.rows[0]->request_id, "req-000000");
    assert_string_equal(b.rows[5]->request_id, "req-000005"); /* spilled rows, in order */
    assert_string_equal(b.rows[9]->request_id, "req-000009");
    assert_string_equal(b.rows[7]->status, "success");
    assert_string_equal(b.rows[7]->metadata, "{}");
    assert_null(b.rows[7]->team_id);
    assert_int_equal(b.rows[7]->total_tokens, 15);
    assert_true(b.rows[7]->cost_known);
    assert_int_equal(b.nincs, 3); /* key, user, org */
    assert_close(inc_of(&b, SPEND_KEY, "hashA"), 2.5);
    assert_close(inc_of(&b, SPEND_USER, "u1"), 2.5);
    assert_close(inc_of(&b, SPEND_ORG, "o1"), 2.5);
    assert_true(inc_of(&b, SPEND_TEAM, "") < 0);
    spend_batch_free(&b);
    spend_accum_get_stats(a, &st);
    assert_true(st.spill_pending);
    assert_int_equal(st.rows_in_memory, 0);

    assert_int_equal(spend_accum_take(a, &b), 2);
    assert_int_equal(b.from_spill, 2);
    assert_string_equal(b.rows[1]->request_id, "req-000011");
    spend_batch_free(&b);
    assert_int_equal(file_size(spill_path), 0); /* read to the end: truncated */
    spend_accum_get_stats(a, &st);
    assert_false(st.spill_pending);

    assert_int_equal(spend_accum_take(a, &b), 0);
    assert_int_equal(b.nincs, 0);
    spend_batch_free(&b);

    /* rows spilled by a process that then died are picked up by the next one */
    for (int i = 100; i < 110; i++) {
        spend_row r = make_row(id, sizeof id, i, "hashB", 0.5);
        spend_accum_add(a, &r);
    }
    spend_accum_free(a); /* the 5 rows in memory are lost with the process; 5 were spilled */
    a = spend_accum_new(5, spill_path);
    spend_accum_get_stats(a, &st);
    assert_true(st.spill_pending);
    assert_int_equal(spend_accum_take(a, &b), 5);
    assert_string_equal(b.rows[0]->request_id, "req-000105");
    assert_close(inc_of(&b, SPEND_KEY, "hashB"), 2.5); /* increments come back with the rows */
    spend_batch_free(&b);
    spend_accum_free(a);
}

static void test_accum_restore_and_extras(void **state)
{
    (void)state;
    spend_accum *a = spend_accum_new(4, spill_path);
    char id[32];
    for (int i = 0; i < 3; i++) {
        spend_row r = make_row(id, sizeof id, i, "k", 1.0);
        spend_accum_add(a, &r);
    }
    spend_row unknown = make_row(id, sizeof id, 3, "k", 0);
    unknown.cost_known = false; /* logged, but adds to nobody's spend */
    spend_accum_add(a, &unknown);
    assert_true(spend_accum_add_increment(a, SPEND_TEAM, "t9", 0.5));
    assert_true(spend_accum_add_increment(a, SPEND_TEAM, "t9", 0.25));
    assert_true(spend_accum_add_increment(a, SPEND_KEY, "k", 1.0));

    spend_batch b;
    assert_int_equal(spend_accum_take(a, &b), 4);
    assert_close(inc_of(&b, SPEND_KEY, "k"), 4.0);
    assert_close(inc_of(&b, SPEND_TEAM, "t9"), 0.75);
    assert_int_equal(b.nextra, 2);
    /* the write failed: everything goes back */
    spend_row late = make_row(id, sizeof id, 50, "k", 1.0);
    spend_accum_add(a, &late); /* arrived meanwhile */
    spend_accum_restore(a, &b);
    spend_batch_free(&b);
    spend_accum_stats st;
    spend_accum_get_stats(a, &st);
    /* back in memory up to half the bound (room for the request threads), the rest spilled
     * by the restoring thread */
    assert_int_equal(st.rows_in_memory, 2);
    assert_int_equal(st.rows_spilled, 3);

    assert_int_equal(spend_accum_take(a, &b), 5);
    assert_close(inc_of(&b, SPEND_KEY, "k"), 5.0);
    assert_close(inc_of(&b, SPEND_TEAM, "t9"), 0.75);
    assert_close(inc_of(&b, SPEND_USER, "u1"), 4.0);
    spend_batch_free(&b);
    spend_accum_free(a);
}

static void test_accum_bad_spill_lines(void **state)
{
    (void)state;
    FILE *f = fopen(spill_path, "w");
    assert_non_null(f);
    spend_row r = {0};
    r.request_id = "ok-1";
    r.call_type = "aembedding";
    r.api_key = "h\"quoted\"\n";
    r.spend = 0.125;
    r.cost_known = true;
    r.start_time = r.end_time = "2026-01-01T00:00:00Z";
    r.metadata = "{\"tags\":[\"a\"]}";
    char *line = spend_row_to_json(&r);
    fprintf(f, "%s\nnot json\n{\"no_request_id\":1}\n\n%s\n{\"request_id\":\"cut", line, line);
    free(line);
    fclose(f);
    spend_accum *a = spend_accum_new(100, spill_path);
    spend_batch b;
    assert_int_equal(spend_accum_take(a, &b), 2);
    assert_int_equal(b.bad_lines, 3);
    assert_string_equal(b.rows[0]->api_key, "h\"quoted\"\n");
    assert_string_equal(b.rows[0]->metadata, "{\"tags\":[\"a\"]}");
    assert_string_equal(b.rows[0]->call_type, "aembedding");
    assert_close(b.rows[0]->spend, 0.125);
    assert_close(inc_of(&b, SPEND_KEY, "h\"quoted\"\n"), 0.25);
    spend_batch_free(&b);
    assert_int_equal(file_size(spill_path), 0);
    spend_accum_free(a);

    /* an unwritable spill path: past the bound, rows are counted as dropped */
    a = spend_accum_new(1, "/nonexistent-dir/spill.jsonl");
    assert_int_equal(spend_accum_add(a, &r), 0);
    assert_int_equal(spend_accum_add(a, &r), -1);
    spend_accum_stats st;
    spend_accum_get_stats(a, &st);
    assert_int_equal(st.rows_dropped, 1);
    spend_accum_free(a);
}

#define ADDERS 4
#define PER_ADDER 5000

typedef struct {
    spend_accum *a;
    int base;
} adder;

static void *add_loop(void *arg)
{
    adder *w = arg;
    char id[32];
    for (int i = 0; i < PER_ADDER; i++) {
        spend_row r = make_row(id, sizeof id, w->base + i, "kc", 0.001);
        if (spend_accum_add(w->a, &r) < 0)
            return (void *)1;
    }
    return NULL;
}

static void test_accum_concurrent(void **state)
{
    (void)state;
    spend_accum *a = spend_accum_new(8000, spill_path);
    pthread_t th[ADDERS];
    adder w[ADDERS];
    for (int i = 0; i < ADDERS; i++) {
        w[i] = (adder){a, i * PER_ADDER};
        pthread_create(&th[i], NULL, add_loop, &w[i]);
    }
    /* a flusher taking batches while the adders run */
    static unsigned char seen[ADDERS * PER_ADDER];
    memset(seen, 0, sizeof seen);
    size_t total = 0;
    double key_spend = 0;
    for (int round = 0; round < 50; round++) {
        spend_batch b;
        assert_true(spend_accum_take(a, &b) >= 0);
        for (size_t i = 0; i < b.nrows; i++) {
            int n = atoi(b.rows[i]->request_id + 4);
            assert_int_equal(seen[n], 0);
            seen[n] = 1;
        }
        total += b.nrows;
        double k = inc_of(&b, SPEND_KEY, "kc");
        key_spend += k > 0 ? k : 0;
        spend_batch_free(&b);
        usleep(200);
    }
    for (int i = 0; i < ADDERS; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        assert_null(rv);
    }
    for (;;) {
        spend_batch b;
        assert_true(spend_accum_take(a, &b) >= 0);
        size_t n = b.nrows;
        for (size_t i = 0; i < b.nrows; i++) {
            int r = atoi(b.rows[i]->request_id + 4);
            assert_int_equal(seen[r], 0);
            seen[r] = 1;
        }
        total += n;
        double k = inc_of(&b, SPEND_KEY, "kc");
        key_spend += k > 0 ? k : 0;
        spend_batch_free(&b);
        spend_accum_stats st;
        spend_accum_get_stats(a, &st);
        if (n == 0 && !st.spill_pending && st.rows_in_memory == 0)
            break;
    }
    assert_int_equal(total, ADDERS * PER_ADDER); /* every row exactly once */
    assert_true(fabs(key_spend - ADDERS * PER_ADDER * 0.001) < 1e-6);
    spend_accum_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded),
        cmocka_unit_test(test_shipped_file_is_litellm_format),
        cmocka_unit_test(test_shipped_lookups),
        cmocka_unit_test(test_lookup_order),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_file_layered_over_shipped),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_warn_once),
        cmocka_unit_test_setup_teardown(test_accum_bound_spill_recover, acc_setup, acc_teardown),
        cmocka_unit_test_setup_teardown(test_accum_restore_and_extras, acc_setup, acc_teardown),
        cmocka_unit_test_setup_teardown(test_accum_bad_spill_lines, acc_setup, acc_teardown),
        cmocka_unit_test_setup_teardown(test_accum_concurrent, acc_setup, acc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
