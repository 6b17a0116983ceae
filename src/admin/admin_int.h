/* admin internals — shared by the files of src/admin/, not part of the module's interface.
 *
 * Two halves. The pure half (common.c) has no threads, sockets or database: duration strings,
 * key and id generation, request validation against field tables, and shaping of result rows
 * into LiteLLM's JSON; tests/unit/test_admin.c covers it. The plumbing half (core.c) turns a
 * request into a store job: the handler validates on the worker, the job does the SQL on the
 * store thread and leaves a status and a JSON body, and `done` replies on the worker.
 *
 * Every handler follows the same path so that the rules hold everywhere: bad input is refused
 * before the database is touched; the caller's own rows (its user id, team, role) are read in
 * the same job as the change, so ownership checks never use a stale cache; the key cache is
 * invalidated on the store thread right after the change is committed, before any later load
 * can run there. */
#ifndef SLUICE_ADMIN_INT_H
#define SLUICE_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "admin/admin.h"
#include "util/sbuf.h"

/* ---- pure helpers (common.c) --------------------------------------------------------------- */

/* adm_duration_add is declared in admin.h (policy.c schedules budget resets with it). */
/* The duration in seconds counted from `from` (months depend on the start). -1 when invalid. */
long long adm_duration_seconds(time_t from, const char *s);

/* "2026-11-22T01:02:03Z" */
void adm_iso_time(time_t t, char out[32]);
/* "YYYY-MM-DD" (a real calendar date) → 0 and the start of that day (UTC), else -1. */
int adm_parse_date(const char *s, time_t *day_start);

/* "sk-" + 22 URL-safe base64 characters of 16 bytes (26 bytes with NUL). */
void adm_key_format(const unsigned char bytes[16], char out[26]);
/* A fresh key from OpenSSL's RAND_bytes. 0, or -1 if the generator fails. */
int adm_key_new(char out[26]);
/* A random UUID v4 (37 bytes with NUL), thread-safe. */
int adm_uuid(char out[37]);
/* The stored form of a key given by a client: a 64-hex-digit hash is taken as it is
 * (lowercased), anything else is a plaintext key and is hashed. */
void adm_token_of(const char *key, char out[65]);

/* Field types of request bodies. */
typedef enum {
    FT_STR,      /* string */
    FT_MONEY,    /* finite number >= 0 (USD) */
    FT_COUNT,    /* integer >= 0, at most 2^53 (so it survives a double) */
    FT_BOOL,
    FT_MODELS,   /* array of non-empty strings ([] = all) */
    FT_STRLIST,  /* array of strings */
    FT_STRMAP,   /* object whose values are strings (model aliases) */
    FT_OBJ,      /* any object (metadata) */
    FT_DURATION, /* string parseable by adm_duration_add */
    FT_ROLE,     /* proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer */
    FT_MEMBERS,  /* [{"role":"admin"|"user","user_id"?,"user_email"?}] */
    FT_KEY,      /* a custom key: string starting with "sk-", printable, <= 256 chars */
    FT_MEMBER1,  /* one member object or an array of them */
} adm_ftype;

typedef struct {
    const char *name;  /* JSON field */
    adm_ftype type;
    const char *col;   /* column it is stored in; NULL: handled by the endpoint */
    const char *dflt;  /* value stored for an explicit null when the column is NOT NULL */
} adm_field;

/* Checks every field of `in` that is in the table (null is accepted for all of them; fields not
 * in the table are ignored, as LiteLLM ignores fields it does not know). `in` must be an object.
 * 0, or -1 with a message naming the field in err and the field's name in *bad. */
int adm_validate(const cJSON *in, const adm_field *f, size_t n, char *err, size_t errlen,
                 const char **bad);
/* The text a valid value is stored as (malloc'd), or NULL for SQL NULL (then f->dflt applies). */
char *adm_field_text(const cJSON *v, const adm_field *f);

extern const adm_field adm_key_fields[];
extern const size_t adm_key_nfields;
extern const adm_field adm_team_fields[];
extern const size_t adm_team_nfields;
extern const adm_field adm_user_fields[];
extern const size_t adm_user_nfields;
extern const adm_field adm_org_fields[];
extern const size_t adm_org_nfields;

/* A result row's value by column name (NULL for SQL NULL or an unknown column). Works on any
 * db_result, without the store. */
const char *adm_col(const db_result *r, int row, const char *name);

/* Rows → LiteLLM's JSON objects. */
cJSON *adm_key_json(const db_result *r, int row);   /* LiteLLM_VerificationToken */
cJSON *adm_team_json(const db_result *r, int row);  /* LiteLLM_TeamTable (+ admins, members) */
cJSON *adm_user_json(const db_result *r, int row);  /* LiteLLM_UserTable */
cJSON *adm_org_json(const db_result *r, int row);   /* LiteLLM_OrganizationTable + budget */
cJSON *adm_spend_json(const db_result *r, int row); /* LiteLLM_SpendLogs */

/* The members array of a team with admins / members derived from it. */
void adm_team_derive_members(cJSON *team);

/* Builds "INSERT ... VALUES ($1, ...)" and "UPDATE ... SET a = $1, ..." statements with their
 * text parameters (owned). */
typedef struct {
    sbuf cols, vals;  /* INSERT: column list and placeholders; UPDATE: SET list in cols */
    char *params[64];
    int n;
    bool failed;
} adm_qb;

void qb_init(adm_qb *q);
void qb_free(adm_qb *q);
/* Adds a parameter (copied; NULL = SQL NULL) and returns its number ($n), or 0 when full. */
int qb_param(adm_qb *q, const char *v);
/* col = value: for an INSERT (upd false) or an UPDATE's SET list (upd true). */
void qb_set(adm_qb *q, bool upd, const char *col, const char *v);
/* The same with value taken ownership of. */
void qb_set_own(adm_qb *q, bool upd, const char *col, char *v);
/* For every field of the table present in `in` with a column: col = adm_field_text (or dflt
 * when null). `skip` names fields handled by the caller (NULL-terminated), may be NULL. */
void qb_fields(adm_qb *q, bool upd, const cJSON *in, const adm_field *f, size_t n,
               const char *const *skip);
/* "INSERT INTO t (cols) VALUES (vals)" / "UPDATE t SET cols WHERE wcol = $k" (malloc'd). */
char *qb_insert_sql(adm_qb *q, const char *table);
char *qb_update_sql(adm_qb *q, const char *table, const char *wcol, const char *wval);

/* metadata with LiteLLM's top-level `tags` folded in (metadata.tags), as text; NULL when the
 * request has neither. A request with tags but no metadata keeps old_md's other entries. */
char *adm_metadata_text(const cJSON *in, const cJSON *old_md);
/* expires (from duration, when with_expires) and budget_reset_at (from budget_duration; an
 * explicit null clears it) for the fields present in in. */
void qb_times(adm_qb *q, bool upd, const cJSON *in, time_t now, bool with_expires);

/* ---- plumbing (core.c) ---------------------------------------------------------------------- */

extern admin_env g_adm;

typedef struct adm_job adm_job;
typedef int (*adm_fn)(db_conn *c, adm_job *j);

struct adm_job {
    store_job sj;
    worker *w;
    struct evhttp_request *req;
    adm_fn fn;
    cJSON *in;           /* body (POST/PATCH/DELETE) or query parameters (GET) as an object */
    char *arg;           /* a path parameter (/key/{key}/regenerate) */
    char path[128];      /* the route, for messages (the request is not read off its thread) */
    /* the caller */
    bool admin;
    ident_kind kind;
    char token[65];
    char *user_id, *team_id, *role; /* the caller key's row, loaded by adm_caller_load */
    /* the answer */
    int status;
    cJSON *out;
    char *etype, *eparam, *emsg;
    /* keys to drop from the cache once committed (done on the store thread) */
    char (*inval)[65];
    int ninval;
    char *inval_team, *inval_user;
    bool inval_all;
};

/* Starts a job for a request: copies the caller, takes `in` (freed with the job), submits.
 * Replies 503 itself when the store is unavailable. */
void adm_submit(worker *w, struct evhttp_request *req, const auth_ident *id, adm_fn fn,
                cJSON *in, const char *arg);

/* The request body as a JSON object ({} when empty); NULL after replying 400 itself. */
cJSON *adm_body(struct evhttp_request *req);
/* The query string as an object of strings (never NULL). */
cJSON *adm_query(struct evhttp_request *req);
/* Replies at once (synchronous errors before a job exists). */
void adm_reply_error(struct evhttp_request *req, int status, const char *type, const char *param,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Validates `in` against a table and replies 400 when it fails. true when valid. */
bool adm_check(struct evhttp_request *req, const cJSON *in, const adm_field *f, size_t n);

/* A positive integer query parameter (absent: dflt): 0, or -1 after replying 400. */
int adm_query_int(struct evhttp_request *req, const cJSON *q, const char *name, long dflt,
                  long max, long *out);
/* A JSON array of non-empty strings? */
bool adm_string_array(const cJSON *a);

/* In a job: the answer. */
int adm_fail(adm_job *j, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int adm_forbidden(adm_job *j, const char *why);
void adm_ok(adm_job *j, cJSON *out);
/* Queues cache invalidations (applied after the job's run returns successfully). */
void adm_inval_key(adm_job *j, const char *token);
void adm_inval_owner(adm_job *j, const char *team_id, const char *user_id);

/* In a job: a statement; -1 (with sj.err) on a database error. */
int adm_exec(db_conn *c, adm_job *j, const char *sql, int n, const char *const *p,
             db_result *out);
/* Loads the caller's key row (user_id, team_id, role). 0 or -1. */
int adm_caller_load(db_conn *c, adm_job *j);
/* 1 if a row with col = v exists in table, 0 if not, -1 on a database error. */
int adm_exists(db_conn *c, adm_job *j, const char *table, const char *col, const char *v);
/* Runs a transaction body: begin, fn, commit (rollback when fn fails or sets an error). */
int adm_tx(db_conn *c, adm_job *j, adm_fn fn);
/* The current time as ISO text. */
void adm_now(char out[32]);
/* Is the caller's user an admin member of the team whose members_with_roles is `members`? */
bool adm_is_team_admin(const char *members_json, const char *user_id);
bool adm_is_team_member(const char *members_json, const char *user_id);
/* "who did it" for created_by/updated_by: the caller's user id or LiteLLM's admin name. */
const char *adm_actor(const adm_job *j);

/* A string field of in (NULL when absent, null or not a string). */
const char *adm_str(const cJSON *in, const char *name);
/* Is the field present in in (null included)? */
bool adm_has(const cJSON *in, const char *name);

/* Team membership, kept on both sides: the team's members_with_roles and the user's teams.
 * adm_ensure_user resolves a member ({user_id?, user_email?}) to a user id, creating the user
 * (internal_user) when it does not exist, as LiteLLM does. 0, 1 (answered) or -1. */
int adm_ensure_user(db_conn *c, adm_job *j, const cJSON *member, char **user_id);
int adm_user_teams_edit(db_conn *c, adm_job *j, const char *user_id, const char *team_id,
                        bool add);
/* role NULL removes the user from the team. */
int adm_team_members_edit(db_conn *c, adm_job *j, const char *team_id, const char *user_id,
                          const char *role);

/* ---- the endpoints ------------------------------------------------------------------------- */

/* Inserts a key from a generate-style request (already validated): used by /key/generate and by
 * /user/new. `user_id` overrides in's. On success *row_out is the key's JSON with the plaintext
 * `key` added; returns 0, or -1 on a database error, or 1 when it set an error answer. */
int adm_key_insert(db_conn *c, adm_job *j, const cJSON *in, const char *user_id, cJSON **row_out);

void adm_h_key_generate(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_key_update(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_key_delete(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_key_info(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_key_list(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_key_regenerate(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_key_block(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_key_unblock(worker *w, struct evhttp_request *req, const auth_ident *id);

void adm_h_team_new(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_team_update(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_team_delete(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_team_info(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_team_list(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_team_member_add(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_team_member_delete(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_team_block(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_team_unblock(worker *w, struct evhttp_request *req, const auth_ident *id);

void adm_h_user_new(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_user_update(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_user_delete(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_user_info(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_user_list(worker *w, struct evhttp_request *req, const auth_ident *id);

void adm_h_org_new(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_org_update(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_org_delete(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_org_info(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_org_list(worker *w, struct evhttp_request *req, const auth_ident *id);

void adm_h_spend_logs(worker *w, struct evhttp_request *req, const auth_ident *id);
void adm_h_global_spend(worker *w, struct evhttp_request *req, const auth_ident *id);

#endif
