/* admin/common — the pure half of the management API (see admin_int.h): durations, keys and
 * ids, validation of request fields, statement building and the JSON shape of every row kind.
 * Nothing here touches the database, a socket or a thread, so all of it is unit-tested. */
#include "admin/admin_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "util/hash.h"
#include "util/duration.h"

/* ---- durations and times ------------------------------------------------------------------ */

int adm_duration_add(time_t from, const char *s, time_t *out)
{
    return duration_add(from, s, out);
}

long long adm_duration_seconds(time_t from, const char *s)
{
    time_t t;
    if (adm_duration_add(from, s, &t) < 0)
        return -1;
    return (long long)(t - from);
}

void adm_iso_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int adm_parse_date(const char *s, time_t *day_start)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return -1;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > duration_days_in_month(y, m - 1))
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    *day_start = timegm(&tm);
    return 0;
}

/* ---- keys and ids ------------------------------------------------------------------------- */

void adm_key_format(const unsigned char b[16], char out[26])
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *o = out;
    *o++ = 's';
    *o++ = 'k';
    *o++ = '-';
    int i = 0;
    for (; i + 3 <= 15; i += 3) { /* 5 full groups: 15 bytes → 20 characters */
        unsigned v = (unsigned)b[i] << 16 | (unsigned)b[i + 1] << 8 | b[i + 2];
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        *o++ = a[v >> 6 & 63];
        *o++ = a[v & 63];
    }
    unsigned v = (unsigned)b[15] << 16; /* the 16th byte: 2 characters, no padding */
    *o++ = a[v >> 18 & 63];
    *o++ = a[v >> 12 & 63];
    *o = 0;
}

int adm_key_new(char out[26])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    adm_key_format(b, out);
    return 0;
}

int adm_uuid(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10 */
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hx[b[i] >> 4];
        out[o++] = hx[b[i] & 15];
    }
    out[o] = 0;
    return 0;
}

void adm_token_of(const char *key, char out[65])
{
    size_t n = strlen(key);
    bool hex = n == 64;
    for (size_t i = 0; hex && i < n; i++)
        hex = isxdigit((unsigned char)key[i]);
    if (hex) {
        for (size_t i = 0; i < 64; i++)
            out[i] = (char)tolower((unsigned char)key[i]);
        out[64] = 0;
        return;
    }
    sha256_hex(key, n, out);
}

/* ---- validation --------------------------------------------------------------------------- */

static const char *json_kind(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "something else";
}

static bool valid_role(const char *s)
{
    static const char *const roles[] = {"proxy_admin", "proxy_admin_viewer", "internal_user",
                                        "internal_user_viewer"};
    for (size_t i = 0; i < sizeof roles / sizeof *roles; i++)
        if (!strcmp(s, roles[i]))
            return true;
    return false;
}

static int check_member(const cJSON *m, const char *name, int idx, char *err, size_t errlen)
{
    char where[96];
    if (idx >= 0)
        snprintf(where, sizeof where, "%s[%d]", name, idx);
    else
        snprintf(where, sizeof where, "%s", name);
    if (!cJSON_IsObject(m)) {
        snprintf(err, errlen, "Invalid value for '%s': expected an object {\"role\": \"admin\" | "
                              "\"user\", \"user_id\" or \"user_email\"}, got %s",
                 where, json_kind(m));
        return -1;
    }
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsString(role) || (strcmp(role->valuestring, "admin") &&
                                  strcmp(role->valuestring, "user"))) {
        snprintf(err, errlen, "Invalid value for '%s.role': expected \"admin\" or \"user\"",
                 where);
        return -1;
    }
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(m, "user_id");
    const cJSON *mail = cJSON_GetObjectItemCaseSensitive(m, "user_email");
    if ((uid && !cJSON_IsNull(uid) && (!cJSON_IsString(uid) || !*uid->valuestring)) ||
        (mail && !cJSON_IsNull(mail) && (!cJSON_IsString(mail) || !*mail->valuestring))) {
        snprintf(err, errlen, "Invalid value for '%s': user_id and user_email must be non-empty "
                              "strings", where);
        return -1;
    }
    if (!cJSON_IsString(uid) && !cJSON_IsString(mail)) {
        snprintf(err, errlen, "Invalid value for '%s': a member needs a user_id or a user_email",
                 where);
        return -1;
    }
    return 0;
}

static int check_value(const cJSON *v, const adm_field *f, char *err, size_t errlen)
{
    const char *n = f->name;
    switch (f->type) {
    case FT_STR:
        if (!cJSON_IsString(v))
            goto bad;
        return 0;
    case FT_MONEY:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            goto bad;
        if (v->valuedouble < 0) {
            snprintf(err, errlen, "Invalid value for '%s': must be >= 0, got %g", n,
                     v->valuedouble);
            return -1;
        }
        return 0;
    case FT_COUNT:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
            v->valuedouble != floor(v->valuedouble))
            goto bad;
        if (v->valuedouble < 0 || v->valuedouble > 9007199254740992.0) {
            snprintf(err, errlen, "Invalid value for '%s': must be an integer from 0 to 2^53, "
                                  "got %g", n, v->valuedouble);
            return -1;
        }
        return 0;
    case FT_BOOL:
        if (!cJSON_IsBool(v))
            goto bad;
        return 0;
    case FT_MODELS:
    case FT_STRLIST: {
        if (!cJSON_IsArray(v))
            goto bad;
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            if (!cJSON_IsString(it) || (f->type == FT_MODELS && !*it->valuestring)) {
                snprintf(err, errlen, "Invalid value for '%s[%d]': expected a non-empty string, "
                                      "got %s", n, i, json_kind(it));
                return -1;
            }
            i++;
        }
        return 0;
    }
    case FT_STRMAP: {
        if (!cJSON_IsObject(v))
            goto bad;
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            if (!cJSON_IsString(it)) {
                snprintf(err, errlen, "Invalid value for '%s.%s': expected a string, got %s", n,
                         it->string, json_kind(it));
                return -1;
            }
        }
        return 0;
    }
    case FT_OBJ:
        if (!cJSON_IsObject(v))
            goto bad;
        return 0;
    case FT_DURATION: {
        time_t t;
        if (!cJSON_IsString(v))
            goto bad;
        if (adm_duration_add(0, v->valuestring, &t) < 0) {
            snprintf(err, errlen, "Invalid value for '%s': '%.64s' is not a duration; use a "
                                  "number and a unit: \"30s\", \"30m\", \"30h\", \"30d\", \"2w\" "
                                  "or \"1mo\"", n, v->valuestring);
            return -1;
        }
        return 0;
    }
    case FT_ROLE:
        if (!cJSON_IsString(v))
            goto bad;
        if (!valid_role(v->valuestring)) {
            snprintf(err, errlen, "Invalid value for '%s': '%.64s' is not a role; use "
                                  "proxy_admin, proxy_admin_viewer, internal_user or "
                                  "internal_user_viewer", n, v->valuestring);
            return -1;
        }
        return 0;
    case FT_MEMBERS: {
        if (!cJSON_IsArray(v))
            goto bad;
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            if (check_member(it, n, i++, err, errlen) < 0)
                return -1;
        }
        return 0;
    }
    case FT_MEMBER1: {
        if (cJSON_IsObject(v))
            return check_member(v, n, -1, err, errlen);
        if (!cJSON_IsArray(v))
            goto bad;
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            if (check_member(it, n, i++, err, errlen) < 0)
                return -1;
        }
        return 0;
    }
    case FT_KEY: {
        if (!cJSON_IsString(v))
            goto bad;
        const char *s = v->valuestring;
        size_t len = strlen(s);
        if (len < 4 || strncmp(s, "sk-", 3) != 0) {
            snprintf(err, errlen, "Invalid value for '%s': a custom key must start with 'sk-' "
                                  "and have characters after it", n);
            return -1;
        }
        if (len > 256) {
            snprintf(err, errlen, "Invalid value for '%s': a custom key may have at most 256 "
                                  "characters", n);
            return -1;
        }
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) {
                snprintf(err, errlen, "Invalid value for '%s': a custom key may only contain "
                                      "printable ASCII characters without spaces", n);
                return -1;
            }
        return 0;
    }
    }
bad:;
    static const char *const want[] = {
        [FT_STR] = "a string",
        [FT_MONEY] = "a number",
        [FT_COUNT] = "an integer",
        [FT_BOOL] = "true or false",
        [FT_MODELS] = "an array of model names",
        [FT_STRLIST] = "an array of strings",
        [FT_STRMAP] = "an object of strings",
        [FT_OBJ] = "an object",
        [FT_DURATION] = "a duration string such as \"30d\"",
        [FT_ROLE] = "a role string",
        [FT_MEMBERS] = "an array of members",
        [FT_KEY] = "a string starting with 'sk-'",
        [FT_MEMBER1] = "a member object or an array of them",
    };
    snprintf(err, errlen, "Invalid value for '%s': expected %s or null, got %s", n, want[f->type],
             json_kind(v));
    return -1;
}

int adm_validate(const cJSON *in, const adm_field *f, size_t n, char *err, size_t errlen,
                 const char **bad)
{
    *bad = NULL;
    if (!cJSON_IsObject(in)) {
        snprintf(err, errlen, "The request body must be a JSON object");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, f[i].name);
        if (!v || cJSON_IsNull(v))
            continue;
        if (check_value(v, &f[i], err, errlen) < 0) {
            *bad = f[i].name;
            return -1;
        }
    }
    return 0;
}

char *adm_field_text(const cJSON *v, const adm_field *f)
{
    char buf[64];
    if (!v || cJSON_IsNull(v))
        return NULL;
    switch (f->type) {
    case FT_STR:
    case FT_DURATION:
    case FT_ROLE:
    case FT_KEY:
        return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    case FT_MONEY:
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        return strdup(buf);
    case FT_COUNT:
        snprintf(buf, sizeof buf, "%lld", (long long)v->valuedouble);
        return strdup(buf);
    case FT_BOOL:
        return strdup(cJSON_IsTrue(v) ? "1" : "0");
    default:
        return cJSON_PrintUnformatted(v);
    }
}

/* Field tables: what each endpoint accepts and where it goes. Fields without a column are
 * handled by the endpoint itself (durations become timestamps, keys are hashed, ...). */
const adm_field adm_key_fields[] = {
    {"key_alias", FT_STR, "key_alias", NULL},
    {"duration", FT_DURATION, NULL, NULL},
    {"key", FT_KEY, NULL, NULL},
    {"new_key", FT_KEY, NULL, NULL},
    {"models", FT_MODELS, "models", "[]"},
    {"aliases", FT_STRMAP, "aliases", "{}"},
    {"max_budget", FT_MONEY, "max_budget", NULL},
    {"soft_budget", FT_MONEY, "soft_budget", NULL},
    {"budget_duration", FT_DURATION, "budget_duration", NULL},
    {"spend", FT_MONEY, "spend", "0"},
    {"user_id", FT_STR, "user_id", NULL},
    {"team_id", FT_STR, "team_id", NULL},
    {"organization_id", FT_STR, "organization_id", NULL},
    {"max_parallel_requests", FT_COUNT, "max_parallel_requests", NULL},
    {"tpm_limit", FT_COUNT, "tpm_limit", NULL},
    {"rpm_limit", FT_COUNT, "rpm_limit", NULL},
    {"metadata", FT_OBJ, "metadata", "{}"},
    {"blocked", FT_BOOL, "blocked", "0"},
    {"tags", FT_STRLIST, NULL, NULL},
};
const size_t adm_key_nfields = sizeof adm_key_fields / sizeof *adm_key_fields;

const adm_field adm_team_fields[] = {
    {"team_alias", FT_STR, "team_alias", NULL},
    {"team_id", FT_STR, NULL, NULL},
    {"organization_id", FT_STR, "organization_id", NULL},
    {"models", FT_MODELS, "models", "[]"},
    {"max_budget", FT_MONEY, "max_budget", NULL},
    {"budget_duration", FT_DURATION, "budget_duration", NULL},
    {"rpm_limit", FT_COUNT, "rpm_limit", NULL},
    {"tpm_limit", FT_COUNT, "tpm_limit", NULL},
    {"max_parallel_requests", FT_COUNT, "max_parallel_requests", NULL},
    {"metadata", FT_OBJ, "metadata", "{}"},
    {"blocked", FT_BOOL, "blocked", "0"},
    {"members_with_roles", FT_MEMBERS, NULL, NULL},
    {"admins", FT_STRLIST, NULL, NULL},
    {"members", FT_STRLIST, NULL, NULL},
    {"tags", FT_STRLIST, NULL, NULL},
    {"member", FT_MEMBER1, NULL, NULL},
    {"user_id", FT_STR, NULL, NULL},
    {"user_email", FT_STR, NULL, NULL},
};
const size_t adm_team_nfields = sizeof adm_team_fields / sizeof *adm_team_fields;

const adm_field adm_user_fields[] = {
    {"user_id", FT_STR, NULL, NULL},
    {"user_email", FT_STR, "user_email", NULL},
    {"user_alias", FT_STR, "user_alias", NULL},
    {"user_role", FT_ROLE, "user_role", "internal_user"},
    {"teams", FT_STRLIST, NULL, NULL},
    {"organization_id", FT_STR, "organization_id", NULL},
    {"max_budget", FT_MONEY, "max_budget", NULL},
    {"budget_duration", FT_DURATION, "budget_duration", NULL},
    {"models", FT_MODELS, "models", "[]"},
    {"rpm_limit", FT_COUNT, "rpm_limit", NULL},
    {"tpm_limit", FT_COUNT, "tpm_limit", NULL},
    {"max_parallel_requests", FT_COUNT, "max_parallel_requests", NULL},
    {"metadata", FT_OBJ, "metadata", "{}"},
    {"spend", FT_MONEY, "spend", "0"},
    {"auto_create_key", FT_BOOL, NULL, NULL},
    /* the auto-created key's own fields */
    {"key_alias", FT_STR, NULL, NULL},
    {"duration", FT_DURATION, NULL, NULL},
    {"aliases", FT_STRMAP, NULL, NULL},
};
const size_t adm_user_nfields = sizeof adm_user_fields / sizeof *adm_user_fields;

const adm_field adm_org_fields[] = {
    {"organization_alias", FT_STR, "organization_alias", NULL},
    {"organization_id", FT_STR, NULL, NULL},
    {"models", FT_MODELS, "models", "[]"},
    {"max_budget", FT_MONEY, "max_budget", NULL},
    {"budget_duration", FT_DURATION, "budget_duration", NULL},
    {"rpm_limit", FT_COUNT, "rpm_limit", NULL},
    {"tpm_limit", FT_COUNT, "tpm_limit", NULL},
    {"max_parallel_requests", FT_COUNT, "max_parallel_requests", NULL},
    {"metadata", FT_OBJ, "metadata", "{}"},
};
const size_t adm_org_nfields = sizeof adm_org_fields / sizeof *adm_org_fields;

/* ---- statement building -------------------------------------------------------------------- */

void qb_init(adm_qb *q)
{
    memset(q, 0, sizeof *q);
    sbuf_init(&q->cols);
    sbuf_init(&q->vals);
}

void qb_free(adm_qb *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->params[i]);
    sbuf_free(&q->cols);
    sbuf_free(&q->vals);
    q->n = 0;
}

static int qb_param_own(adm_qb *q, char *v)
{
    if (q->n >= (int)(sizeof q->params / sizeof *q->params)) {
        free(v);
        q->failed = true;
        return 0;
    }
    q->params[q->n++] = v;
    return q->n;
}

int qb_param(adm_qb *q, const char *v)
{
    char *c = v ? strdup(v) : NULL;
    if (v && !c) {
        q->failed = true;
        return 0;
    }
    return qb_param_own(q, c);
}

void qb_set_own(adm_qb *q, bool upd, const char *col, char *v)
{
    int k = qb_param_own(q, v);
    if (!k)
        return;
    if (q->cols.len)
        sbuf_adds(&q->cols, ", ");
    if (upd) {
        sbuf_addf(&q->cols, "%s = $%d", col, k);
    } else {
        sbuf_adds(&q->cols, col);
        if (q->vals.len)
            sbuf_adds(&q->vals, ", ");
        sbuf_addf(&q->vals, "$%d", k);
    }
}

void qb_set(adm_qb *q, bool upd, const char *col, const char *v)
{
    char *c = v ? strdup(v) : NULL;
    if (v && !c) {
        q->failed = true;
        return;
    }
    qb_set_own(q, upd, col, c);
}

void qb_fields(adm_qb *q, bool upd, const cJSON *in, const adm_field *f, size_t n,
               const char *const *skip)
{
    for (size_t i = 0; i < n; i++) {
        if (!f[i].col)
            continue;
        bool skipped = false;
        for (const char *const *s = skip; s && *s && !skipped; s++)
            skipped = !strcmp(*s, f[i].name);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, f[i].name);
        if (skipped || !v)
            continue;
        char *t = adm_field_text(v, &f[i]);
        if (!t && f[i].dflt)
            t = strdup(f[i].dflt);
        qb_set_own(q, upd, f[i].col, t);
    }
}

char *qb_insert_sql(adm_qb *q, const char *table)
{
    if (q->failed || q->cols.failed || q->vals.failed)
        return NULL;
    sbuf b;
    sbuf_init(&b);
    sbuf_addf(&b, "INSERT INTO %s (%.*s) VALUES (%.*s)", table, (int)q->cols.len, q->cols.p,
              (int)q->vals.len, q->vals.p);
    return sbuf_take(&b, NULL);
}

char *qb_update_sql(adm_qb *q, const char *table, const char *wcol, const char *wval)
{
    int k = qb_param(q, wval);
    if (!k || q->failed || q->cols.failed || !q->cols.len)
        return NULL;
    sbuf b;
    sbuf_init(&b);
    sbuf_addf(&b, "UPDATE %s SET %.*s WHERE %s = $%d", table, (int)q->cols.len, q->cols.p, wcol,
              k);
    return sbuf_take(&b, NULL);
}

/* ---- rows → JSON ------------------------------------------------------------------------- */

const char *adm_col(const db_result *r, int row, const char *name)
{
    if (!r || row < 0 || row >= r->nrows)
        return NULL;
    for (int c = 0; c < r->ncols; c++)
        if (r->cols[c] && !strcmp(r->cols[c], name))
            return r->v[(size_t)row * (size_t)r->ncols + (size_t)c];
    return NULL;
}

typedef enum { C_STR, C_NUM, C_INT, C_BOOL, C_ARR, C_OBJ } ckind;

typedef struct {
    const char *col, *key;
    ckind k;
} cspec;

static cJSON *num_of(const char *s, bool integer)
{
    char *end;
    double d = strtod(s, &end);
    if (end == s || !isfinite(d))
        return cJSON_CreateNull();
    if (integer && fabs(d) >= 9007199254740992.0) {
        /* a double would round it: pass the digits through as they are */
        bool digits = *s == '-' || isdigit((unsigned char)*s);
        for (const char *p = s + 1; digits && *p; p++)
            digits = isdigit((unsigned char)*p);
        if (digits)
            return cJSON_CreateRaw(s);
    }
    return cJSON_CreateNumber(integer ? floor(d) : d);
}

static cJSON *value_of(const char *s, ckind k)
{
    if (!s) {
        if (k == C_ARR)
            return cJSON_CreateArray();
        if (k == C_OBJ)
            return cJSON_CreateObject();
        return cJSON_CreateNull();
    }
    switch (k) {
    case C_STR: return cJSON_CreateString(s);
    case C_NUM: return num_of(s, false);
    case C_INT: return num_of(s, true);
    case C_BOOL: return cJSON_CreateBool(s[0] == '1' || s[0] == 't' || s[0] == 'T');
    case C_ARR:
    case C_OBJ: {
        cJSON *j = cJSON_Parse(s);
        if ((k == C_ARR && cJSON_IsArray(j)) || (k == C_OBJ && cJSON_IsObject(j)))
            return j;
        cJSON_Delete(j);
        return k == C_ARR ? cJSON_CreateArray() : cJSON_CreateObject();
    }
    }
    return cJSON_CreateNull();
}

static cJSON *shape(const db_result *r, int row, const cspec *s, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < n && o; i++)
        cJSON_AddItemToObject(o, s[i].key, value_of(adm_col(r, row, s[i].col), s[i].k));
    return o;
}

static const cspec key_cols[] = {
    {"token", "token", C_STR},
    {"key_name", "key_name", C_STR},
    {"key_alias", "key_alias", C_STR},
    {"spend", "spend", C_NUM},
    {"max_budget", "max_budget", C_NUM},
    {"soft_budget", "soft_budget", C_NUM},
    {"budget_duration", "budget_duration", C_STR},
    {"budget_reset_at", "budget_reset_at", C_STR},
    {"expires", "expires", C_STR},
    {"models", "models", C_ARR},
    {"aliases", "aliases", C_OBJ},
    {"metadata", "metadata", C_OBJ},
    {"rpm_limit", "rpm_limit", C_INT},
    {"tpm_limit", "tpm_limit", C_INT},
    {"max_parallel_requests", "max_parallel_requests", C_INT},
    {"team_id", "team_id", C_STR},
    {"user_id", "user_id", C_STR},
    {"organization_id", "organization_id", C_STR},
    {"blocked", "blocked", C_BOOL},
    {"created_at", "created_at", C_STR},
    {"updated_at", "updated_at", C_STR},
    {"created_by", "created_by", C_STR},
    {"updated_by", "updated_by", C_STR},
};

cJSON *adm_key_json(const db_result *r, int row)
{
    cJSON *o = shape(r, row, key_cols, sizeof key_cols / sizeof *key_cols);
    /* LiteLLM's row has these too; sluice keeps no state for them */
    cJSON_AddItemToObject(o, "config", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "permissions", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "model_spend", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "model_max_budget", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "allowed_cache_controls", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "allowed_routes", cJSON_CreateArray());
    cJSON_AddNullToObject(o, "budget_id");
    return o;
}

static const cspec team_cols[] = {
    {"team_id", "team_id", C_STR},
    {"team_alias", "team_alias", C_STR},
    {"organization_id", "organization_id", C_STR},
    {"models", "models", C_ARR},
    {"max_budget", "max_budget", C_NUM},
    {"spend", "spend", C_NUM},
    {"budget_duration", "budget_duration", C_STR},
    {"budget_reset_at", "budget_reset_at", C_STR},
    {"rpm_limit", "rpm_limit", C_INT},
    {"tpm_limit", "tpm_limit", C_INT},
    {"max_parallel_requests", "max_parallel_requests", C_INT},
    {"members_with_roles", "members_with_roles", C_ARR},
    {"metadata", "metadata", C_OBJ},
    {"blocked", "blocked", C_BOOL},
    {"created_at", "created_at", C_STR},
    {"updated_at", "updated_at", C_STR},
    {"created_by", "created_by", C_STR},
    {"updated_by", "updated_by", C_STR},
};

void adm_team_derive_members(cJSON *team)
{
    cJSON_DeleteItemFromObjectCaseSensitive(team, "admins");
    cJSON_DeleteItemFromObjectCaseSensitive(team, "members");
    cJSON *admins = cJSON_AddArrayToObject(team, "admins");
    cJSON *members = cJSON_AddArrayToObject(team, "members");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(team, "members_with_roles"))
    {
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(m, "user_id");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(uid))
            continue;
        cJSON_AddItemToArray(members, cJSON_CreateString(uid->valuestring));
        if (cJSON_IsString(role) && !strcmp(role->valuestring, "admin"))
            cJSON_AddItemToArray(admins, cJSON_CreateString(uid->valuestring));
    }
}

cJSON *adm_team_json(const db_result *r, int row)
{
    cJSON *o = shape(r, row, team_cols, sizeof team_cols / sizeof *team_cols);
    adm_team_derive_members(o);
    cJSON_AddItemToObject(o, "model_spend", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "model_max_budget", cJSON_CreateObject());
    return o;
}

static const cspec user_cols[] = {
    {"user_id", "user_id", C_STR},
    {"user_email", "user_email", C_STR},
    {"user_alias", "user_alias", C_STR},
    {"user_role", "user_role", C_STR},
    {"teams", "teams", C_ARR},
    {"organization_id", "organization_id", C_STR},
    {"models", "models", C_ARR},
    {"max_budget", "max_budget", C_NUM},
    {"spend", "spend", C_NUM},
    {"budget_duration", "budget_duration", C_STR},
    {"budget_reset_at", "budget_reset_at", C_STR},
    {"rpm_limit", "rpm_limit", C_INT},
    {"tpm_limit", "tpm_limit", C_INT},
    {"max_parallel_requests", "max_parallel_requests", C_INT},
    {"metadata", "metadata", C_OBJ},
    {"created_at", "created_at", C_STR},
    {"updated_at", "updated_at", C_STR},
};

cJSON *adm_user_json(const db_result *r, int row)
{
    cJSON *o = shape(r, row, user_cols, sizeof user_cols / sizeof *user_cols);
    cJSON_AddItemToObject(o, "model_spend", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "model_max_budget", cJSON_CreateObject());
    cJSON_AddNullToObject(o, "sso_user_id");
    return o;
}

static const cspec org_cols[] = {
    {"organization_id", "organization_id", C_STR},
    {"organization_alias", "organization_alias", C_STR},
    {"organization_id", "budget_id", C_STR}, /* sluice keeps the budget in the row itself */
    {"metadata", "metadata", C_OBJ},
    {"models", "models", C_ARR},
    {"spend", "spend", C_NUM},
    {"max_budget", "max_budget", C_NUM},
    {"budget_duration", "budget_duration", C_STR},
    {"budget_reset_at", "budget_reset_at", C_STR},
    {"rpm_limit", "rpm_limit", C_INT},
    {"tpm_limit", "tpm_limit", C_INT},
    {"max_parallel_requests", "max_parallel_requests", C_INT},
    {"created_at", "created_at", C_STR},
    {"created_by", "created_by", C_STR},
    {"updated_at", "updated_at", C_STR},
    {"updated_by", "updated_by", C_STR},
};

static const cspec budget_cols[] = {
    {"organization_id", "budget_id", C_STR},
    {"max_budget", "max_budget", C_NUM},
    {"soft_budget", "soft_budget", C_NUM},
    {"max_parallel_requests", "max_parallel_requests", C_INT},
    {"tpm_limit", "tpm_limit", C_INT},
    {"rpm_limit", "rpm_limit", C_INT},
    {"model_max_budget", "model_max_budget", C_OBJ},
    {"budget_duration", "budget_duration", C_STR},
    {"budget_reset_at", "budget_reset_at", C_STR},
    {"created_at", "created_at", C_STR},
    {"updated_at", "updated_at", C_STR},
};

cJSON *adm_org_json(const db_result *r, int row)
{
    cJSON *o = shape(r, row, org_cols, sizeof org_cols / sizeof *org_cols);
    cJSON_AddItemToObject(o, "model_spend", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "litellm_budget_table",
                          shape(r, row, budget_cols, sizeof budget_cols / sizeof *budget_cols));
    return o;
}

static const cspec spend_cols[] = {
    {"request_id", "request_id", C_STR},
    {"call_type", "call_type", C_STR},
    {"api_key", "api_key", C_STR},
    {"spend", "spend", C_NUM},
    {"total_tokens", "total_tokens", C_INT},
    {"prompt_tokens", "prompt_tokens", C_INT},
    {"completion_tokens", "completion_tokens", C_INT},
    {"start_time", "startTime", C_STR},
    {"end_time", "endTime", C_STR},
    {"end_time", "completionStartTime", C_STR},
    {"model", "model", C_STR},
    {"model_id", "model_id", C_STR},
    {"model_group", "model_group", C_STR},
    {"custom_llm_provider", "custom_llm_provider", C_STR},
    {"user_id", "user", C_STR},
    {"team_id", "team_id", C_STR},
    {"organization_id", "organization_id", C_STR},
    {"end_user", "end_user", C_STR},
    {"status", "status", C_STR},
    {"metadata", "metadata", C_OBJ},
    {"cache_read_tokens", "cache_read_input_tokens", C_INT},
    {"cache_creation_tokens", "cache_creation_input_tokens", C_INT},
};

static void md_default(cJSON *md, const char *name, const char *v)
{
    if (!cJSON_GetObjectItemCaseSensitive(md, name))
        cJSON_AddItemToObject(md, name, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

cJSON *adm_spend_json(const db_result *r, int row)
{
    cJSON *o = shape(r, row, spend_cols, sizeof spend_cols / sizeof *spend_cols);
    cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    /* LiteLLM's rows carry the caller in metadata; tests read user_api_key_team_id from there */
    md_default(md, "user_api_key", adm_col(r, row, "api_key"));
    md_default(md, "user_api_key_user_id", adm_col(r, row, "user_id"));
    md_default(md, "user_api_key_team_id", adm_col(r, row, "team_id"));
    md_default(md, "user_api_key_org_id", adm_col(r, row, "organization_id"));
    /* LiteLLM's cache_hit column is the text "True"/"False" */
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(md, "cache_hit");
    bool hit = cJSON_IsTrue(ch) || (cJSON_IsString(ch) && !strcmp(ch->valuestring, "True"));
    cJSON_AddStringToObject(o, "cache_hit", hit ? "True" : "False");
    cJSON_AddStringToObject(o, "cache_key", "");
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(md, "tags");
    cJSON_AddItemToObject(o, "request_tags",
                          cJSON_IsArray(tags) ? cJSON_Duplicate(tags, 1) : cJSON_CreateArray());
    cJSON_AddStringToObject(o, "api_base", "");
    cJSON_AddNullToObject(o, "requester_ip_address");
    cJSON_AddItemToObject(o, "messages", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "response", cJSON_CreateObject());
    const char *cost_known = adm_col(r, row, "cost_known");
    if (cost_known && cost_known[0] == '0')
        cJSON_AddFalseToObject(o, "cost_known"); /* sluice: the model had no price */
    return o;
}

/* ---- fields computed from others ---------------------------------------------------------- */

char *adm_metadata_text(const cJSON *in, const cJSON *old_md)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(in, "metadata");
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(in, "tags");
    if (!md && !cJSON_IsArray(tags))
        return NULL;
    cJSON *m = cJSON_IsObject(md)                      ? cJSON_Duplicate(md, 1)
               : (!md && cJSON_IsObject(old_md)) ? cJSON_Duplicate(old_md, 1)
                                                 : cJSON_CreateObject();
    if (cJSON_IsArray(tags)) {
        cJSON_DeleteItemFromObjectCaseSensitive(m, "tags");
        cJSON_AddItemToObject(m, "tags", cJSON_Duplicate(tags, 1));
    }
    char *s = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    return s;
}

void qb_times(adm_qb *q, bool upd, const cJSON *in, time_t now, bool with_expires)
{
    char ts[32];
    time_t t;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(in, "duration");
    /* duration null leaves expires alone (LiteLLM drops null durations) */
    if (with_expires && cJSON_IsString(d) && adm_duration_add(now, d->valuestring, &t) == 0) {
        adm_iso_time(t, ts);
        qb_set(q, upd, "expires", ts);
    }
    const cJSON *bd = cJSON_GetObjectItemCaseSensitive(in, "budget_duration");
    if (cJSON_IsString(bd) && adm_duration_add(now, bd->valuestring, &t) == 0) {
        adm_iso_time(t, ts);
        qb_set(q, upd, "budget_reset_at", ts);
    } else if (bd) {
        qb_set(q, upd, "budget_reset_at", NULL);
    }
}

bool adm_string_array(const cJSON *a)
{
    if (!cJSON_IsArray(a))
        return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (!cJSON_IsString(it) || !*it->valuestring)
            return false;
    }
    return true;
}
