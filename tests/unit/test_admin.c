/* Unit tests for the pure half of the management API (src/admin/common.c): durations and dates,
 * key and id generation, request validation and its messages, statement building, and the JSON
 * shape of key, team, user, organization and spend-log rows. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "admin/admin_int.h"
#include "util/hash.h"

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = s};
    return timegm(&tm);
}

/* ---- durations ---------------------------------------------------------------------------- */

static void test_duration_units(void **state)
{
    (void)state;
    time_t t0 = utc(2026, 3, 10, 12, 0, 0);
    assert_int_equal(adm_duration_seconds(t0, "30s"), 30);
    assert_int_equal(adm_duration_seconds(t0, "15m"), 15 * 60);
    assert_int_equal(adm_duration_seconds(t0, "30m"), 30 * 60);
    assert_int_equal(adm_duration_seconds(t0, "2h"), 2 * 3600);
    assert_int_equal(adm_duration_seconds(t0, "30h"), 30 * 3600);
    assert_int_equal(adm_duration_seconds(t0, "30d"), 30 * 86400);
    assert_int_equal(adm_duration_seconds(t0, "1w"), 7 * 86400);
    assert_int_equal(adm_duration_seconds(t0, "0s"), 0);
    /* March 10 + 1 month = April 10: 31 days */
    assert_int_equal(adm_duration_seconds(t0, "1mo"), 31 * 86400);
}

static void test_duration_months(void **state)
{
    (void)state;
    time_t out;
    /* the day is clamped to the end of a shorter month, leap years included */
    assert_int_equal(adm_duration_add(utc(2024, 1, 31, 8, 30, 0), "1mo", &out), 0);
    assert_int_equal(out, utc(2024, 2, 29, 8, 30, 0));
    assert_int_equal(adm_duration_add(utc(2023, 1, 31, 0, 0, 0), "1mo", &out), 0);
    assert_int_equal(out, utc(2023, 2, 28, 0, 0, 0));
    assert_int_equal(adm_duration_add(utc(2024, 2, 29, 0, 0, 0), "12mo", &out), 0);
    assert_int_equal(out, utc(2025, 2, 28, 0, 0, 0));
    /* across a year end */
    assert_int_equal(adm_duration_add(utc(2025, 11, 15, 1, 2, 3), "3mo", &out), 0);
    assert_int_equal(out, utc(2026, 2, 15, 1, 2, 3));
    assert_int_equal(adm_duration_add(utc(2025, 5, 31, 0, 0, 0), "1mo", &out), 0);
    assert_int_equal(out, utc(2025, 6, 30, 0, 0, 0));
}

static void test_duration_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "30", "s", "-5s", "30x", "1.5h", "30 d", " 30d",
                                      "30ss", "30D", "mo", "1mon", "99999999999999d",
                                      "4000mo", "30d ", "+3d"};
    time_t out;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (adm_duration_add(0, bad[i], &out) != -1)
            fail_msg("'%s' should not parse", bad[i]);
        assert_int_equal(adm_duration_seconds(0, bad[i]), -1);
    }
    assert_int_equal(adm_duration_add(0, NULL, &out), -1);
}

static void test_iso_and_dates(void **state)
{
    (void)state;
    char iso[32];
    adm_iso_time(utc(2026, 11, 22, 1, 2, 3), iso);
    assert_string_equal(iso, "2026-11-22T01:02:03Z");
    time_t d;
    assert_int_equal(adm_parse_date("2024-02-29", &d), 0);
    assert_int_equal(d, utc(2024, 2, 29, 0, 0, 0));
    assert_int_equal(adm_parse_date("2026-12-31", &d), 0);
    static const char *const bad[] = {"2023-02-29", "2024-02-30", "2024-13-01", "2024-00-10",
                                      "2024-1-01", "20240101", "2024-01-01T00:00:00", "",
                                      "abcd-ef-gh", "2024-04-31"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (adm_parse_date(bad[i], &d) != -1)
            fail_msg("'%s' should not be a date", bad[i]);
}

/* ---- keys and ids ------------------------------------------------------------------------- */

static void test_key_format(void **state)
{
    (void)state;
    unsigned char zero[16] = {0}, ones[16];
    memset(ones, 0xff, sizeof ones);
    char k[26];
    adm_key_format(zero, k);
    assert_string_equal(k, "sk-AAAAAAAAAAAAAAAAAAAAAA");
    adm_key_format(ones, k);
    assert_string_equal(k, "sk-_____________________w"); /* URL-safe alphabet, no padding */
    unsigned char seq[16];
    for (int i = 0; i < 16; i++)
        seq[i] = (unsigned char)i;
    adm_key_format(seq, k);
    assert_string_equal(k, "sk-AAECAwQFBgcICQoLDA0ODw"); /* base64url of 00..0f without "==" */
}

static void test_key_new(void **state)
{
    (void)state;
    regex_t re;
    assert_int_equal(regcomp(&re, "^sk-[A-Za-z0-9_-]{22}$", REG_EXTENDED | REG_NOSUB), 0);
    char a[26], b[26];
    for (int i = 0; i < 200; i++) {
        assert_int_equal(adm_key_new(a), 0);
        if (regexec(&re, a, 0, NULL, 0) != 0)
            fail_msg("bad key format: %s", a);
    }
    assert_int_equal(adm_key_new(b), 0);
    assert_string_not_equal(a, b);
    regfree(&re);
}

static void test_token_of(void **state)
{
    (void)state;
    char t[65], want[65];
    const char *key = "sk-AAECAwQFBgcICQoLDA0ODw";
    adm_token_of(key, t);
    sha256_hex(key, strlen(key), want); /* the hash of the whole key, prefix included */
    assert_string_equal(t, want);
    assert_int_equal(strlen(t), 64);
    /* a hash is taken as it is, lowercased */
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(want[i] >= 'a' && want[i] <= 'f' ? want[i] - 32 : want[i]);
    adm_token_of(upper, t);
    assert_string_equal(t, want);
    adm_token_of(want, t);
    assert_string_equal(t, want);
    /* 63 hex digits is not a hash: it is hashed */
    char shortish[64];
    memcpy(shortish, want, 63);
    shortish[63] = 0;
    adm_token_of(shortish, t);
    assert_string_not_equal(t, want);
}

static void test_uuid(void **state)
{
    (void)state;
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    char u[37], v[37];
    assert_int_equal(adm_uuid(u), 0);
    assert_int_equal(adm_uuid(v), 0);
    assert_int_equal(regexec(&re, u, 0, NULL, 0), 0);
    assert_string_not_equal(u, v);
    regfree(&re);
}

/* ---- validation --------------------------------------------------------------------------- */

/* Validates body against the key fields; returns the message ("" when valid). */
static const char *check(const adm_field *f, size_t n, const char *body, const char **bad)
{
    static char err[512];
    err[0] = 0;
    cJSON *in = cJSON_Parse(body);
    assert_non_null(in);
    int rc = adm_validate(in, f, n, err, sizeof err, bad);
    cJSON_Delete(in);
    if (rc == 0)
        assert_string_equal(err, "");
    return err;
}

#define KEY_OK(body)                                                                          \
    do {                                                                                      \
        const char *b_;                                                                       \
        const char *m_ = check(adm_key_fields, adm_key_nfields, body, &b_);                   \
        if (*m_)                                                                              \
            fail_msg("%s rejected: %s", body, m_);                                            \
        assert_null(b_);                                                                      \
    } while (0)

#define KEY_BAD(body, field, fragment)                                                        \
    do {                                                                                      \
        const char *b_;                                                                       \
        const char *m_ = check(adm_key_fields, adm_key_nfields, body, &b_);                   \
        if (!*m_)                                                                             \
            fail_msg("%s accepted", body);                                                    \
        assert_non_null(b_);                                                                  \
        assert_string_equal(b_, field);                                                       \
        if (!strstr(m_, fragment))                                                            \
            fail_msg("message for %s: '%s' lacks '%s'", body, m_, fragment);                  \
    } while (0)

static void test_validate_keys(void **state)
{
    (void)state;
    KEY_OK("{}");
    KEY_OK("{\"key_alias\":\"ci\",\"duration\":\"30d\",\"models\":[\"gpt-4o\",\"openai/*\"],"
           "\"aliases\":{\"gpt\":\"gpt-4o\"},\"max_budget\":10.5,\"soft_budget\":5,"
           "\"budget_duration\":\"1mo\",\"spend\":0,\"user_id\":\"u1\",\"team_id\":\"t1\","
           "\"max_parallel_requests\":2,\"tpm_limit\":1000,\"rpm_limit\":10,"
           "\"metadata\":{\"a\":1},\"blocked\":false,\"key\":\"sk-custom-1234\","
           "\"tags\":[\"x\"]}");
    /* null is accepted for every field; unknown fields are ignored, as LiteLLM does */
    KEY_OK("{\"duration\":null,\"max_budget\":null,\"models\":null,\"metadata\":null}");
    KEY_OK("{\"guardrails\":[\"x\"],\"something_new\":{\"deep\":true}}");
    KEY_OK("{\"models\":[],\"rpm_limit\":9007199254740992}");

    KEY_BAD("{\"max_budget\":\"ten\"}", "max_budget", "'max_budget': expected a number");
    KEY_BAD("{\"max_budget\":-1}", "max_budget", "must be >= 0");
    KEY_BAD("{\"rpm_limit\":1.5}", "rpm_limit", "'rpm_limit': expected an integer");
    KEY_BAD("{\"tpm_limit\":-3}", "tpm_limit", "from 0 to 2^53");
    KEY_BAD("{\"rpm_limit\":1e300}", "rpm_limit", "from 0 to 2^53");
    KEY_BAD("{\"models\":\"gpt-4o\"}", "models", "expected an array of model names");
    KEY_BAD("{\"models\":[\"a\",3]}", "models", "'models[1]'");
    KEY_BAD("{\"models\":[\"\"]}", "models", "'models[0]'");
    KEY_BAD("{\"aliases\":{\"a\":1}}", "aliases", "'aliases.a'");
    KEY_BAD("{\"metadata\":[1]}", "metadata", "'metadata': expected an object");
    KEY_BAD("{\"blocked\":\"yes\"}", "blocked", "true or false");
    KEY_BAD("{\"duration\":\"30x\"}", "duration", "not a duration");
    KEY_BAD("{\"duration\":30}", "duration", "'duration'");
    KEY_BAD("{\"budget_duration\":\"soon\"}", "budget_duration", "not a duration");
    KEY_BAD("{\"key\":\"abc\"}", "key", "must start with 'sk-'");
    KEY_BAD("{\"key\":\"sk-\"}", "key", "must start with 'sk-'");
    KEY_BAD("{\"key\":\"sk-with space\"}", "key", "printable");
    KEY_BAD("{\"user_id\":42}", "user_id", "'user_id': expected a string");
    KEY_BAD("{\"team_id\":[\"t\"]}", "team_id", "got an array");
}

static void test_validate_other_tables(void **state)
{
    (void)state;
    const char *bad, *m;
    m = check(adm_user_fields, adm_user_nfields, "{\"user_role\":\"god\"}", &bad);
    assert_string_equal(bad, "user_role");
    assert_non_null(strstr(m, "'god' is not a role"));
    m = check(adm_user_fields, adm_user_nfields,
              "{\"user_role\":\"internal_user_viewer\",\"teams\":[\"t\"],\"auto_create_key\":"
              "false}", &bad);
    assert_string_equal(m, "");
    m = check(adm_team_fields, adm_team_nfields,
              "{\"members_with_roles\":[{\"role\":\"admin\",\"user_id\":\"u\"},"
              "{\"role\":\"owner\",\"user_id\":\"v\"}]}", &bad);
    assert_string_equal(bad, "members_with_roles");
    assert_non_null(strstr(m, "'members_with_roles[1].role'"));
    m = check(adm_team_fields, adm_team_nfields,
              "{\"members_with_roles\":[{\"role\":\"user\"}]}", &bad);
    assert_non_null(strstr(m, "needs a user_id or a user_email"));
    m = check(adm_team_fields, adm_team_nfields,
              "{\"member\":{\"role\":\"user\",\"user_email\":\"a@b.c\"}}", &bad);
    assert_string_equal(m, "");
    m = check(adm_team_fields, adm_team_nfields, "{\"member\":\"u1\"}", &bad);
    assert_string_equal(bad, "member");
    m = check(adm_org_fields, adm_org_nfields, "{\"models\":{}}", &bad);
    assert_string_equal(bad, "models");

    char err[256];
    cJSON *arr = cJSON_Parse("[1]");
    assert_int_equal(adm_validate(arr, adm_key_fields, adm_key_nfields, err, sizeof err, &bad),
                     -1);
    assert_non_null(strstr(err, "must be a JSON object"));
    cJSON_Delete(arr);
}

static void test_field_text(void **state)
{
    (void)state;
    cJSON *in = cJSON_Parse("{\"max_budget\":0.1,\"rpm_limit\":9007199254740992,\"blocked\":true,"
                            "\"models\":[\"a\",\"b\"],\"key_alias\":\"x\",\"metadata\":null}");
    static const adm_field money = {"max_budget", FT_MONEY, "max_budget", NULL};
    static const adm_field count = {"rpm_limit", FT_COUNT, "rpm_limit", NULL};
    static const adm_field flag = {"blocked", FT_BOOL, "blocked", "0"};
    static const adm_field models = {"models", FT_MODELS, "models", "[]"};
    static const adm_field str = {"key_alias", FT_STR, "key_alias", NULL};
    static const adm_field md = {"metadata", FT_OBJ, "metadata", "{}"};
    char *t = adm_field_text(cJSON_GetObjectItem(in, "max_budget"), &money);
    assert_float_equal(strtod(t, NULL), 0.1, 0); /* round-trips exactly */
    free(t);
    t = adm_field_text(cJSON_GetObjectItem(in, "rpm_limit"), &count);
    assert_string_equal(t, "9007199254740992");
    free(t);
    t = adm_field_text(cJSON_GetObjectItem(in, "blocked"), &flag);
    assert_string_equal(t, "1");
    free(t);
    t = adm_field_text(cJSON_GetObjectItem(in, "models"), &models);
    assert_string_equal(t, "[\"a\",\"b\"]");
    free(t);
    t = adm_field_text(cJSON_GetObjectItem(in, "key_alias"), &str);
    assert_string_equal(t, "x");
    free(t);
    assert_null(adm_field_text(cJSON_GetObjectItem(in, "metadata"), &md));
    cJSON_Delete(in);
}

/* ---- statements --------------------------------------------------------------------------- */

static void test_qb(void **state)
{
    (void)state;
    cJSON *in = cJSON_Parse("{\"key_alias\":\"a\",\"models\":null,\"user_id\":\"u\","
                            "\"duration\":\"1h\",\"budget_duration\":null,\"tags\":[\"t\"]}");
    adm_qb q;
    qb_init(&q);
    static const char *const skip[] = {"user_id", NULL};
    qb_set(&q, false, "token", "abc");
    qb_fields(&q, false, in, adm_key_fields, adm_key_nfields, skip);
    char *sql = qb_insert_sql(&q, "sluice_keys");
    assert_string_equal(sql, "INSERT INTO sluice_keys (token, key_alias, models, budget_duration) "
                             "VALUES ($1, $2, $3, $4)");
    assert_int_equal(q.n, 4);
    assert_string_equal(q.params[0], "abc");
    assert_string_equal(q.params[1], "a");
    assert_string_equal(q.params[2], "[]"); /* null → the NOT NULL column's default */
    assert_null(q.params[3]);              /* null → SQL NULL for a nullable column */
    free(sql);
    qb_free(&q);

    qb_init(&q);
    qb_fields(&q, true, in, adm_key_fields, adm_key_nfields, NULL);
    qb_times(&q, true, in, utc(2026, 1, 1, 0, 0, 0), true);
    sql = qb_update_sql(&q, "sluice_keys", "token", "tok");
    assert_string_equal(sql, "UPDATE sluice_keys SET key_alias = $1, models = $2, "
                             "budget_duration = $3, user_id = $4, expires = $5, "
                             "budget_reset_at = $6 WHERE token = $7");
    assert_string_equal(q.params[4], "2026-01-01T01:00:00Z");
    assert_null(q.params[5]); /* budget_duration: null clears the reset time */
    assert_string_equal(q.params[6], "tok");
    free(sql);
    qb_free(&q);

    /* an update with nothing to set has no statement */
    cJSON *empty = cJSON_CreateObject();
    qb_init(&q);
    qb_fields(&q, true, empty, adm_key_fields, adm_key_nfields, NULL);
    assert_null(qb_update_sql(&q, "sluice_keys", "token", "tok"));
    qb_free(&q);
    cJSON_Delete(empty);
    cJSON_Delete(in);
}

static void test_metadata_tags(void **state)
{
    (void)state;
    cJSON *in = cJSON_Parse("{\"metadata\":{\"team\":\"x\"},\"tags\":[\"prod\"]}");
    char *s = adm_metadata_text(in, NULL);
    assert_string_equal(s, "{\"team\":\"x\",\"tags\":[\"prod\"]}");
    free(s);
    cJSON_Delete(in);
    /* tags alone keep what the row had */
    in = cJSON_Parse("{\"tags\":[\"a\"]}");
    cJSON *old = cJSON_Parse("{\"owner\":\"me\",\"tags\":[\"old\"]}");
    s = adm_metadata_text(in, old);
    assert_string_equal(s, "{\"owner\":\"me\",\"tags\":[\"a\"]}");
    free(s);
    cJSON_Delete(in);
    cJSON_Delete(old);
    in = cJSON_Parse("{\"key_alias\":\"x\"}");
    assert_null(adm_metadata_text(in, NULL));
    cJSON_Delete(in);
}

/* ---- rows → JSON -------------------------------------------------------------------------- */

/* A db_result built by hand: cols and one row of values (NULL = SQL NULL). */
typedef struct {
    db_result r;
    char *cols[40];
    char *vals[40];
} fake_row;

static void fake(fake_row *f, const char *const *pairs, int n)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < n; i++) {
        f->cols[i] = (char *)pairs[2 * i];
        f->vals[i] = (char *)pairs[2 * i + 1];
    }
    f->r.nrows = 1;
    f->r.ncols = n;
    f->r.cols = f->cols;
    f->r.v = f->vals;
}

static void test_key_json(void **state)
{
    (void)state;
    static const char *const row[] = {
        "token", "ab12", "key_name", "sk-...wxyz", "key_alias", NULL, "spend", "0.25",
        "max_budget", "10", "soft_budget", NULL, "budget_duration", "30d", "budget_reset_at",
        "2026-02-01T00:00:00Z", "expires", NULL, "models", "[\"gpt-4o\",\"openai/*\"]",
        "aliases", "{}", "metadata", "{\"tags\":[\"x\"]}", "rpm_limit", "100", "tpm_limit",
        "9007199254740993", "max_parallel_requests", NULL, "team_id", "t1", "user_id", NULL,
        "organization_id", NULL, "blocked", "1", "created_at", "2026-01-01T00:00:00Z",
        "updated_at", "2026-01-01T00:00:00Z", "created_by", "default_user_id", "updated_by",
        "default_user_id"};
    fake_row f;
    fake(&f, row, (int)(sizeof row / sizeof *row / 2));
    assert_string_equal(adm_col(&f.r, 0, "key_name"), "sk-...wxyz");
    assert_null(adm_col(&f.r, 0, "key_alias"));
    assert_null(adm_col(&f.r, 0, "no_such_column"));
    assert_null(adm_col(&f.r, 1, "token"));
    cJSON *k = adm_key_json(&f.r, 0);
    char *s = cJSON_PrintUnformatted(k);
    cJSON *j = cJSON_Parse(s); /* raw big integers must still be valid JSON */
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "token")->valuestring, "ab12");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "key_alias")));
    assert_float_equal(cJSON_GetObjectItem(j, "spend")->valuedouble, 0.25, 0);
    assert_float_equal(cJSON_GetObjectItem(j, "max_budget")->valuedouble, 10, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "soft_budget")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "expires")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "models")), 2);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "aliases")));
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"), "tags"), 0)
            ->valuestring,
        "x");
    assert_int_equal(cJSON_GetObjectItem(j, "rpm_limit")->valueint, 100);
    assert_non_null(strstr(s, "\"tpm_limit\":9007199254740993")); /* digits kept, no rounding */
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "max_parallel_requests")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "blocked")));
    assert_string_equal(cJSON_GetObjectItem(j, "budget_reset_at")->valuestring,
                        "2026-02-01T00:00:00Z");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "config")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "allowed_cache_controls")));
    free(s);
    cJSON_Delete(j);
    cJSON_Delete(k);
}

static void test_team_json(void **state)
{
    (void)state;
    static const char *const row[] = {
        "team_id", "t1", "team_alias", "core", "models", "[]", "spend", "0", "max_budget", NULL,
        "members_with_roles",
        "[{\"user_id\":\"a\",\"role\":\"admin\"},{\"user_id\":\"b\",\"role\":\"user\"},"
        "{\"user_email\":\"c@x\",\"role\":\"user\"}]",
        "metadata", "{}", "blocked", "0"};
    fake_row f;
    fake(&f, row, (int)(sizeof row / sizeof *row / 2));
    cJSON *t = adm_team_json(&f.r, 0);
    assert_string_equal(cJSON_GetObjectItem(t, "team_alias")->valuestring, "core");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(t, "blocked")));
    cJSON *admins = cJSON_GetObjectItem(t, "admins");
    cJSON *members = cJSON_GetObjectItem(t, "members");
    assert_int_equal(cJSON_GetArraySize(admins), 1);
    assert_string_equal(cJSON_GetArrayItem(admins, 0)->valuestring, "a");
    assert_int_equal(cJSON_GetArraySize(members), 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "members_with_roles")), 3);
    /* a column missing from the row reads as null ([] / {} for JSON columns) */
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(t, "organization_id")));
    cJSON_Delete(t);
}

static void test_user_org_json(void **state)
{
    (void)state;
    static const char *const urow[] = {"user_id", "u1", "user_role", "internal_user", "teams",
                                       "[\"t1\"]", "spend", "1.5", "metadata", "not json"};
    fake_row f;
    fake(&f, urow, (int)(sizeof urow / sizeof *urow / 2));
    cJSON *u = adm_user_json(&f.r, 0);
    assert_string_equal(cJSON_GetObjectItem(u, "user_role")->valuestring, "internal_user");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(u, "teams"), 0)->valuestring,
                        "t1");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(u, "metadata"))); /* bad JSON → {} */
    assert_float_equal(cJSON_GetObjectItem(u, "spend")->valuedouble, 1.5, 0);
    cJSON_Delete(u);

    static const char *const orow[] = {"organization_id", "o1", "organization_alias", "acme",
                                       "max_budget", "100", "rpm_limit", "5", "models", "[]"};
    fake(&f, orow, (int)(sizeof orow / sizeof *orow / 2));
    cJSON *o = adm_org_json(&f.r, 0);
    assert_string_equal(cJSON_GetObjectItem(o, "budget_id")->valuestring, "o1");
    cJSON *b = cJSON_GetObjectItem(o, "litellm_budget_table");
    assert_true(cJSON_IsObject(b));
    assert_string_equal(cJSON_GetObjectItem(b, "budget_id")->valuestring, "o1");
    assert_float_equal(cJSON_GetObjectItem(b, "max_budget")->valuedouble, 100, 0);
    assert_int_equal(cJSON_GetObjectItem(b, "rpm_limit")->valueint, 5);
    cJSON_Delete(o);
}

static void test_spend_json(void **state)
{
    (void)state;
    static const char *const row[] = {
        "request_id", "chatcmpl-1", "call_type", "acompletion", "api_key", "ab12", "spend",
        "0.000123", "total_tokens", "30", "prompt_tokens", "10", "completion_tokens", "20",
        "start_time", "2026-01-01T00:00:00Z", "end_time", "2026-01-01T00:00:01Z", "model",
        "gpt-4o", "model_group", "my-gpt", "user_id", "u1", "team_id", "t1", "organization_id",
        NULL, "metadata", "{\"user_api_key_alias\":\"a\"}", "status", "success", "cost_known",
        "1"};
    fake_row f;
    fake(&f, row, (int)(sizeof row / sizeof *row / 2));
    cJSON *s = adm_spend_json(&f.r, 0);
    assert_string_equal(cJSON_GetObjectItem(s, "startTime")->valuestring, "2026-01-01T00:00:00Z");
    assert_string_equal(cJSON_GetObjectItem(s, "endTime")->valuestring, "2026-01-01T00:00:01Z");
    assert_string_equal(cJSON_GetObjectItem(s, "user")->valuestring, "u1");
    assert_int_equal(cJSON_GetObjectItem(s, "prompt_tokens")->valueint, 10);
    assert_int_equal(cJSON_GetObjectItem(s, "completion_tokens")->valueint, 20);
    assert_float_equal(cJSON_GetObjectItem(s, "spend")->valuedouble, 0.000123, 0);
    assert_string_equal(cJSON_GetObjectItem(s, "cache_hit")->valuestring, "False");
    cJSON *md = cJSON_GetObjectItem(s, "metadata");
    assert_string_equal(cJSON_GetObjectItem(md, "user_api_key_alias")->valuestring, "a");
    assert_string_equal(cJSON_GetObjectItem(md, "user_api_key_team_id")->valuestring, "t1");
    assert_string_equal(cJSON_GetObjectItem(md, "user_api_key")->valuestring, "ab12");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(md, "user_api_key_org_id")));
    assert_null(cJSON_GetObjectItem(s, "cost_known"));
    cJSON_Delete(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_duration_months),
        cmocka_unit_test(test_duration_bad),
        cmocka_unit_test(test_iso_and_dates),
        cmocka_unit_test(test_key_format),
        cmocka_unit_test(test_key_new),
        cmocka_unit_test(test_token_of),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_validate_keys),
        cmocka_unit_test(test_validate_other_tables),
        cmocka_unit_test(test_field_text),
        cmocka_unit_test(test_qb),
        cmocka_unit_test(test_metadata_tags),
        cmocka_unit_test(test_key_json),
        cmocka_unit_test(test_team_json),
        cmocka_unit_test(test_user_org_json),
        cmocka_unit_test(test_spend_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
