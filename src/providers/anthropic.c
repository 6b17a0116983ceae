/* providers/anthropic — the Anthropic Messages API both ways (see anthropic.h, prov.h).
 *
 * Upstream: an OpenAI chat request becomes a Messages request the way LiteLLM's AnthropicConfig
 * builds it (system messages lifted into "system", roles merged so they alternate, tool calls and
 * tool results as tool_use / tool_result blocks, response_format as a forced "json_tool_call"
 * tool), and the answer or event stream comes back as chat.completion / chat.completion.chunk.
 * Claude on Vertex AI is the same body without "model" and with anthropic_version
 * "vertex-2023-10-16", sent to rawPredict / streamRawPredict with a Google bearer token.
 *
 * Ingress: a Messages request becomes an OpenAI request for any other provider the way LiteLLM's
 * /v1/messages adapter does it, and the OpenAI answer or chunks become Anthropic's message object
 * or exact event sequence.
 *
 * Requests and whole responses go through cJSON: they are parsed once and rebuilt, which costs an
 * allocation per node but keeps every mapping readable. Streamed chunks are written straight into
 * the output sbuf (one cJSON parse per upstream event, no tree for the output), since a long
 * answer is thousands of events.
 *
 * Deliberate differences from LiteLLM, all in cases where LiteLLM's result cannot work or needs
 * I/O a pure translator cannot do: an api_base ending in "/v1" gets "/messages" appended rather
 * than "/v1/messages"; http:// image URLs are sent as URL sources instead of being downloaded and
 * inlined; a Vertex api_base that is only scheme://host[:port] replaces Google's host (LiteLLM
 * appends ":rawPredict" to whatever api_base says, which is kept when api_base has a path).
 * Choices between LiteLLM versions: "system" is a plain string when it is one text without
 * cache_control (older LiteLLM, docs/reference) and a list of text blocks otherwise (newer
 * LiteLLM always sends the list; Anthropic accepts both); response_format always becomes the
 * forced tool, never "output_format", so one body works for every Claude model and for Vertex.
 * An "error" event inside a stream takes its status from error.type (rate_limit_error → 429)
 * where LiteLLM reports every stream error as 500. */
#include "providers/anthropic.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JSON_TOOL_NAME "json_tool_call" /* LiteLLM's RESPONSE_FORMAT_TOOL_NAME */
#define VERTEX_ANTHROPIC_VERSION "vertex-2023-10-16"
#define DEFAULT_ANTHROPIC_VERSION "2023-06-01"
#define OAUTH_TOKEN_PREFIX "sk-ant-oat"
#define OAUTH_BETA "oauth-2025-04-20"

/* ---- small helpers ------------------------------------------------------------------------ */

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *get_str(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool is_null_or_absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* Token counts and indexes from untrusted JSON: out-of-range doubles become 0 instead of an
 * undefined conversion. */
static int64_t get_i64(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble > -9.0e18 && v->valuedouble < 9.0e18))
        return 0;
    return (int64_t)v->valuedouble;
}

static bool str_eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static bool starts_with(const char *s, const char *p)
{
    return s && strncmp(s, p, strlen(p)) == 0;
}

static bool ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static char *xstrdup(const char *s) { return s ? dupn(s, strlen(s)) : NULL; }

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = malloc((size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* Anthropic ids must match ^[a-zA-Z0-9_-]+$ (LiteLLM sanitises the same way); a Gemini
 * thought-signature suffix is cut first. */
static char *sanitize_tool_id(const char *id)
{
    if (!id)
        id = "";
    size_t n = strlen(id);
    const char *sep = strstr(id, "__thought__");
    if (sep)
        n = (size_t)(sep - id);
    char *out = dupn(id, n);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (!isalnum(ch) && ch != '_' && ch != '-')
            out[i] = '_';
    }
    return out;
}

static const char *err_type_for(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 408:
        return "timeout";
    case 429:
        return "rate_limit_error";
    case 503:
        return "service_unavailable";
    default:
        return status >= 500 ? "internal_server_error" : "invalid_request_error";
    }
}

/* status: the provider's own (Anthropic 529, ...); the client gets LiteLLM's mapping and wording
 * (exception_mapping_utils): for Anthropic, two body texts are recognised before the status —
 * a too-long prompt (ContextWindowExceededError, 400, so routers can fall back to a larger
 * context) and "overloaded_error" (InternalServerError, 500), both worded "AnthropicError - ". */
static void set_provider_error(prov_err *err, const char *exc_name, int status, const char *text)
{
    if (!text)
        text = "";
    if (strcmp(exc_name, "AnthropicException") == 0) {
        if (strstr(text, "prompt is too long") || strstr(text, "prompt: length")) {
            prov_err_set(err, 400, err_type_for(400), NULL,
                         "litellm.ContextWindowExceededError: AnthropicError - %s", text);
            return;
        }
        if (strstr(text, "overloaded_error")) {
            prov_err_set(err, 500, err_type_for(500), NULL,
                         "litellm.InternalServerError: AnthropicError - %s", text);
            return;
        }
    }
    int mapped = prov_map_status(status);
    const char *cls = prov_exception_class(mapped);
    const char *suffix = "";
    if (str_eq(cls, "InternalServerError"))
        suffix = ". Handle with `litellm.InternalServerError`.";
    else if (str_eq(cls, "ServiceUnavailableError"))
        suffix = ". Handle with `litellm.ServiceUnavailableError`.";
    prov_err_set(err, mapped, err_type_for(mapped), NULL, "litellm.%s: %s - %s%s", cls, exc_name,
                 text, suffix);
}

static void set_bad_request(prov_err *err, const char *exc_name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_bad_request(prov_err *err, const char *exc_name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char m[512];
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    prov_err_set(err, 400, "invalid_request_error", NULL, "litellm.BadRequestError: %s - %s",
                 exc_name, m);
}

/* Anthropic error.type → the HTTP status Anthropic uses for it. */
static int status_for_anthropic_error(const char *type)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {
        {"invalid_request_error", 400}, {"authentication_error", 401},
        {"permission_error", 403},      {"not_found_error", 404},
        {"request_too_large", 413},     {"rate_limit_error", 429},
        {"api_error", 500},             {"timeout_error", 504},
        {"overloaded_error", 529},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (str_eq(type, map[i].type))
            return map[i].status;
    return 500;
}

/* ---- OpenAI → Anthropic: request ---------------------------------------------------------- */

typedef struct {
    const prov_ctx *c;
    bool vertex;
    const char *provider;  /* "anthropic" / "vertex_ai" in UnsupportedParamsError */
    const char *exc_name;  /* "AnthropicException" / "VertexAIException" */
} req_env;

static cJSON *text_block(const char *text, size_t n)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "text");
    char *t = dupn(text, n);
    cJSON_AddStringToObject(b, "text", t ? t : "");
    free(t);
    return b;
}

static void copy_cache_control(cJSON *dst, const cJSON *src)
{
    const cJSON *cc = get(src, "cache_control");
    if (cJSON_IsObject(cc) && !get(dst, "cache_control"))
        cJSON_AddItemToObject(dst, "cache_control", cJSON_Duplicate(cc, 1));
}

/* "data:<mime>;base64,<data>" → media type and data spans. */
static bool parse_data_url(const char *url, const char **mime, size_t *mime_len, const char **data)
{
    if (!starts_with(url, "data:"))
        return false;
    const char *p = url + 5;
    const char *semi = strstr(p, ";base64,");
    if (!semi)
        return false;
    *mime = p;
    *mime_len = (size_t)(semi - p);
    *data = semi + 8;
    return true;
}

/* An OpenAI image_url part (or a file's data URL) → an Anthropic image / document block. */
static cJSON *media_block(const char *url, const char *format, req_env *env, prov_err *err)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *src = cJSON_CreateObject();
    const char *mime, *data;
    size_t ml;
    if (starts_with(url, "http://") || starts_with(url, "https://")) {
        cJSON_AddStringToObject(b, "type", "image");
        cJSON_AddStringToObject(src, "type", "url");
        cJSON_AddStringToObject(src, "url", url);
    } else if (parse_data_url(url, &mime, &ml, &data)) {
        char *m = format ? xstrdup(format) : dupn(mime, ml);
        bool image = m && strncmp(m, "image/", 6) == 0;
        cJSON_AddStringToObject(b, "type", image ? "image" : "document");
        cJSON_AddStringToObject(src, "type", "base64");
        cJSON_AddStringToObject(src, "media_type", m ? m : "");
        cJSON_AddStringToObject(src, "data", data);
        free(m);
    } else {
        cJSON_Delete(b);
        cJSON_Delete(src);
        set_bad_request(err, env->exc_name,
                        "Invalid image url: expected an http(s) URL or a base64 data URL, got "
                        "'%.64s'",
                        url);
        return NULL;
    }
    cJSON_AddItemToObject(b, "source", src);
    return b;
}

static cJSON *image_part_block(const cJSON *part, req_env *env, prov_err *err)
{
    const cJSON *iu = get(part, "image_url");
    const char *url = cJSON_IsString(iu) ? iu->valuestring : get_str(iu, "url");
    if (!url) {
        set_bad_request(err, env->exc_name, "image_url part without a url");
        return NULL;
    }
    cJSON *b = media_block(url, get_str(iu, "format"), env, err);
    if (b)
        copy_cache_control(b, part);
    return b;
}

static cJSON *file_part_block(const cJSON *part, req_env *env, prov_err *err)
{
    const cJSON *f = get(part, "file");
    const char *data = get_str(f, "file_data");
    const char *id = get_str(f, "file_id");
    cJSON *b = NULL;
    if (data) {
        b = media_block(data, get_str(f, "format"), env, err);
    } else if (id) {
        b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "document");
        cJSON *src = cJSON_AddObjectToObject(b, "source");
        cJSON_AddStringToObject(src, "type", "file");
        cJSON_AddStringToObject(src, "file_id", id);
    } else {
        set_bad_request(err, env->exc_name, "file part needs file_data or file_id");
    }
    if (b)
        copy_cache_control(b, part);
    return b;
}

/* User content (string or parts) → blocks appended to arr. */
static int user_blocks(const cJSON *content, cJSON *arr, req_env *env, prov_err *err)
{
    if (cJSON_IsString(content)) {
        cJSON_AddItemToArray(arr, text_block(content->valuestring, strlen(content->valuestring)));
        return 0;
    }
    if (is_null_or_absent(content))
        return 0;
    if (!cJSON_IsArray(content)) {
        set_bad_request(err, env->exc_name, "message content must be a string or a list");
        return -1;
    }
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const char *type = get_str(part, "type");
        cJSON *b = NULL;
        if (cJSON_IsString(part)) {
            b = text_block(part->valuestring, strlen(part->valuestring));
        } else if (str_eq(type, "text")) {
            const char *t = get_str(part, "text");
            b = text_block(t ? t : "", t ? strlen(t) : 0);
            copy_cache_control(b, part);
        } else if (str_eq(type, "image_url")) {
            if (!(b = image_part_block(part, env, err)))
                return -1;
        } else if (str_eq(type, "file")) {
            if (!(b = file_part_block(part, env, err)))
                return -1;
        } else if (str_eq(type, "input_audio")) {
            continue; /* no Anthropic equivalent; LiteLLM drops it too */
        } else if (cJSON_IsObject(part) && type) {
            b = cJSON_Duplicate(part, 1); /* already an Anthropic block (document, ...) */
        } else {
            continue;
        }
        cJSON_AddItemToArray(arr, b);
    }
    return 0;
}

/* A message-level cache_control lands on the message's last block (LiteLLM's rule). */
static void apply_msg_cache_control(cJSON *arr, int from, const cJSON *msg)
{
    const cJSON *cc = get(msg, "cache_control");
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsObject(cc) || n <= from)
        return;
    cJSON *last = cJSON_GetArrayItem(arr, n - 1);
    if (!get(last, "cache_control"))
        cJSON_AddItemToObject(last, "cache_control", cJSON_Duplicate(cc, 1));
}

static int assistant_blocks(const cJSON *msg, cJSON *arr, req_env *env, int msg_i, prov_err *err)
{
    const cJSON *tb = get(msg, "thinking_blocks");
    const cJSON *x;
    if (cJSON_IsArray(tb))
        cJSON_ArrayForEach(x, tb) if (cJSON_IsObject(x))
            cJSON_AddItemToArray(arr, cJSON_Duplicate(x, 1));

    const cJSON *content = get(msg, "content");
    if (cJSON_IsString(content)) {
        if (content->valuestring[0])
            cJSON_AddItemToArray(arr, text_block(content->valuestring,
                                                 strlen(content->valuestring)));
    } else if (cJSON_IsArray(content)) {
        cJSON_ArrayForEach(x, content) {
            const char *type = get_str(x, "type");
            if (str_eq(type, "text")) {
                const char *t = get_str(x, "text");
                if (!t || !t[0])
                    continue; /* Anthropic rejects empty text blocks */
                cJSON *b = text_block(t, strlen(t));
                copy_cache_control(b, x);
                cJSON_AddItemToArray(arr, b);
            } else if (str_eq(type, "thinking") || str_eq(type, "redacted_thinking")) {
                cJSON_AddItemToArray(arr, cJSON_Duplicate(x, 1));
            }
        }
    }

    const cJSON *calls = get(msg, "tool_calls");
    int ci = 0;
    if (cJSON_IsArray(calls)) {
        cJSON_ArrayForEach(x, calls) {
            const cJSON *fn = get(x, "function");
            const char *name = get_str(fn, "name");
            const char *args = get_str(fn, "arguments");
            cJSON *input;
            if (!args || !*args) {
                input = cJSON_CreateObject();
            } else if (!(input = cJSON_Parse(args))) {
                char where[96];
                snprintf(where, sizeof where, "messages[%d].tool_calls[%d].function.arguments",
                         msg_i, ci);
                set_bad_request(err, env->exc_name,
                                "Invalid JSON in %s: %.200s", where, args);
                return -1;
            }
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "type", "tool_use");
            char *id = sanitize_tool_id(get_str(x, "id"));
            cJSON_AddStringToObject(b, "id", id ? id : "");
            free(id);
            cJSON_AddStringToObject(b, "name", name ? name : "");
            cJSON_AddItemToObject(b, "input", input);
            copy_cache_control(b, x);
            cJSON_AddItemToArray(arr, b);
            ci++;
        }
    }
    return 0;
}

static cJSON *tool_result_block(const cJSON *msg, int idx, req_env *env, prov_err *err)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "tool_result");
    const char *tcid = get_str(msg, "tool_call_id");
    char fallback[32];
    if (!tcid) {
        snprintf(fallback, sizeof fallback, "call_function_%d", idx);
        tcid = fallback;
    }
    char *id = sanitize_tool_id(tcid);
    cJSON_AddStringToObject(b, "tool_use_id", id ? id : "");
    free(id);
    const cJSON *content = get(msg, "content");
    if (cJSON_IsString(content)) {
        cJSON_AddStringToObject(b, "content", content->valuestring);
    } else if (cJSON_IsArray(content)) {
        cJSON *arr = cJSON_AddArrayToObject(b, "content");
        if (user_blocks(content, arr, env, err) < 0) {
            cJSON_Delete(b);
            return NULL;
        }
    } else {
        cJSON_AddStringToObject(b, "content", "");
    }
    copy_cache_control(b, msg);
    return b;
}

/* Appends blocks to the conversation, merging into the previous message when the role repeats:
 * Anthropic requires user and assistant turns to alternate. */
static void push_turn(cJSON *msgs, const char *role, cJSON *blocks)
{
    if (cJSON_GetArraySize(blocks) == 0) {
        cJSON_Delete(blocks);
        return;
    }
    int n = cJSON_GetArraySize(msgs);
    cJSON *last = n ? cJSON_GetArrayItem(msgs, n - 1) : NULL;
    if (last && str_eq(get_str(last, "role"), role)) {
        cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
        cJSON *b;
        while ((b = cJSON_DetachItemFromArray(blocks, 0)))
            cJSON_AddItemToArray(content, b);
        cJSON_Delete(blocks);
        return;
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddItemToObject(m, "content", blocks);
    cJSON_AddItemToArray(msgs, m);
}

/* Anthropic refuses a final assistant turn that ends in whitespace (LiteLLM strips it). */
static void rstrip_final_assistant(cJSON *msgs)
{
    int n = cJSON_GetArraySize(msgs);
    cJSON *last = n ? cJSON_GetArrayItem(msgs, n - 1) : NULL;
    if (!last || !str_eq(get_str(last, "role"), "assistant"))
        return;
    cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
    int k = cJSON_GetArraySize(content);
    cJSON *b = k ? cJSON_GetArrayItem(content, k - 1) : NULL;
    if (!str_eq(get_str(b, "type"), "text"))
        return;
    const char *t = get_str(b, "text");
    if (!t)
        return;
    size_t len = strlen(t);
    while (len && isspace((unsigned char)t[len - 1]))
        len--;
    if (len == strlen(t))
        return;
    char *s = dupn(t, len);
    if (s) {
        cJSON_ReplaceItemInObjectCaseSensitive(b, "text", cJSON_CreateString(s));
        free(s);
    }
}

/* OpenAI messages → Anthropic messages plus the system blocks. */
static int convert_messages(const cJSON *messages, cJSON *msgs, cJSON *system, req_env *env,
                            prov_err *err)
{
    const cJSON *m;
    int i = 0;
    cJSON_ArrayForEach(m, messages) {
        const char *role = get_str(m, "role");
        const cJSON *content = get(m, "content");
        if (str_eq(role, "system") || str_eq(role, "developer")) {
            int from = cJSON_GetArraySize(system);
            if (cJSON_IsString(content)) {
                cJSON_AddItemToArray(system, text_block(content->valuestring,
                                                        strlen(content->valuestring)));
            } else if (cJSON_IsArray(content)) {
                const cJSON *p;
                cJSON_ArrayForEach(p, content) {
                    const char *t = get_str(p, "text");
                    if (!str_eq(get_str(p, "type"), "text") || !t)
                        continue;
                    cJSON *b = text_block(t, strlen(t));
                    copy_cache_control(b, p);
                    cJSON_AddItemToArray(system, b);
                }
            }
            apply_msg_cache_control(system, from, m);
        } else if (str_eq(role, "user")) {
            cJSON *blocks = cJSON_CreateArray();
            if (user_blocks(content, blocks, env, err) < 0) {
                cJSON_Delete(blocks);
                return -1;
            }
            apply_msg_cache_control(blocks, 0, m);
            push_turn(msgs, "user", blocks);
        } else if (str_eq(role, "assistant")) {
            cJSON *blocks = cJSON_CreateArray();
            if (assistant_blocks(m, blocks, env, i, err) < 0) {
                cJSON_Delete(blocks);
                return -1;
            }
            apply_msg_cache_control(blocks, 0, m);
            push_turn(msgs, "assistant", blocks);
        } else if (str_eq(role, "tool") || str_eq(role, "function")) {
            cJSON *b = tool_result_block(m, i, env, err);
            if (!b)
                return -1;
            cJSON *blocks = cJSON_CreateArray();
            cJSON_AddItemToArray(blocks, b);
            push_turn(msgs, "user", blocks);
        } else {
            set_bad_request(err, env->exc_name, "Invalid role '%s' in messages",
                            role ? role : "(missing)");
            return -1;
        }
        i++;
    }
    rstrip_final_assistant(msgs);
    return 0;
}

static cJSON *map_tool(const cJSON *t)
{
    if (get(t, "input_schema"))
        return cJSON_Duplicate(t, 1); /* already Anthropic-shaped */
    const char *type = get_str(t, "type");
    const cJSON *fn = get(t, "function");
    if (type && !str_eq(type, "function") && !str_eq(type, "custom"))
        return cJSON_Duplicate(t, 1); /* hosted tools (web_search_*, bash_*, computer_*, ...) */
    cJSON *o = cJSON_CreateObject();
    const char *name = get_str(fn, "name");
    cJSON_AddStringToObject(o, "name", name ? name : "");
    const char *desc = get_str(fn, "description");
    if (desc)
        cJSON_AddStringToObject(o, "description", desc);
    const cJSON *params = get(fn, "parameters");
    if (cJSON_IsObject(params)) {
        cJSON_AddItemToObject(o, "input_schema", cJSON_Duplicate(params, 1));
    } else {
        cJSON *s = cJSON_AddObjectToObject(o, "input_schema");
        cJSON_AddStringToObject(s, "type", "object");
        cJSON_AddObjectToObject(s, "properties");
    }
    copy_cache_control(o, t);
    copy_cache_control(o, fn);
    return o;
}

static cJSON *map_tool_choice(const cJSON *tc, const cJSON *parallel)
{
    cJSON *o = NULL;
    const char *s = cJSON_IsString(tc) ? tc->valuestring : NULL;
    if (str_eq(s, "auto") || str_eq(s, "required") || str_eq(s, "none")) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", str_eq(s, "required") ? "any" : s);
    } else if (cJSON_IsObject(tc)) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "tool");
        const char *name = get_str(get(tc, "function"), "name");
        if (name)
            cJSON_AddStringToObject(o, "name", name);
    }
    if (cJSON_IsBool(parallel) && !str_eq(s, "none")) {
        if (!o) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "auto");
        }
        cJSON_AddBoolToObject(o, "disable_parallel_tool_use", cJSON_IsFalse(parallel));
    }
    return o;
}

/* A "user" that is an e-mail address or a phone number is not sent (Anthropic rejects them). */
static bool valid_user_id(const char *u)
{
    const char *at = strchr(u, '@');
    if (at && at > u) {
        bool ok = true;
        for (const char *p = u; p < at && ok; p++)
            ok = isalnum((unsigned char)*p) || strchr("._%+-", *p);
        const char *dot = strrchr(at + 1, '.');
        if (ok && dot && dot > at + 1) {
            for (const char *p = at + 1; p < dot && ok; p++)
                ok = isalnum((unsigned char)*p) || strchr(".-", *p);
            size_t tld = 0;
            for (const char *p = dot + 1; *p && ok; p++, tld++)
                ok = isalpha((unsigned char)*p);
            if (ok && tld >= 2)
                return false;
        }
    }
    const char *p = u;
    if (*p == '+')
        p++;
    size_t n = 0;
    for (; *p; p++, n++)
        if (!isdigit((unsigned char)*p) && !strchr(" \t()-", *p))
            return true;
    return n < 7;
}

static int effort_budget(const char *effort)
{
    if (str_eq(effort, "minimal") || str_eq(effort, "low"))
        return 1024; /* Anthropic's minimum budget */
    if (str_eq(effort, "medium"))
        return 2048;
    if (str_eq(effort, "high"))
        return 4096;
    return -1;
}

static void add_beta_list(cJSON *list, const char *csv)
{
    while (csv && *csv) {
        while (*csv == ' ' || *csv == ',')
            csv++;
        const char *e = csv;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - csv);
        while (n && csv[n - 1] == ' ')
            n--;
        if (n) {
            char *b = dupn(csv, n);
            bool dup = false;
            const cJSON *x;
            cJSON_ArrayForEach(x, list) dup = dup || str_eq(x->valuestring, b);
            if (!dup && b)
                cJSON_AddItemToArray(list, cJSON_CreateString(b));
            free(b);
        }
        csv = e;
    }
}

/* Parameters of the OpenAI API that Anthropic has no equivalent for. */
static bool is_unsupported_openai_param(const char *k, const cJSON *v)
{
    static const char *const names[] = {
        "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
        "seed", "modalities", "prediction", "audio", "service_tier", "functions",
        "function_call", "store",
    };
    if (str_eq(k, "n"))
        return !(cJSON_IsNumber(v) && v->valuedouble == 1);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (str_eq(k, names[i]))
            return true;
    return false;
}

/* Members handled below (or consumed by the gateway) rather than passed through. */
static bool is_mapped_param(const char *k)
{
    static const char *const names[] = {
        "model", "messages", "stream", "stream_options", "stop", "temperature", "top_p",
        "max_tokens", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls",
        "response_format", "user", "reasoning_effort", "thinking", "web_search_options",
        "extra_headers", "extra_body", "n",
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (str_eq(k, names[i]))
            return true;
    return oai_is_gateway_param(k, strlen(k));
}

static cJSON *json_tool(const cJSON *rf)
{
    const char *type = get_str(rf, "type");
    if (!type || str_eq(type, "text"))
        return NULL;
    const cJSON *schema = get(rf, "response_schema");
    if (!schema)
        schema = get(get(rf, "json_schema"), "schema");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", JSON_TOOL_NAME);
    cJSON *in = cJSON_AddObjectToObject(t, "input_schema");
    cJSON_AddStringToObject(in, "type", "object");
    if (cJSON_IsObject(schema)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, schema) {
            cJSON_DeleteItemFromObjectCaseSensitive(in, x->string);
            cJSON_AddItemToObject(in, x->string, cJSON_Duplicate(x, 1));
        }
    } else {
        cJSON_AddBoolToObject(in, "additionalProperties", true);
        cJSON_AddObjectToObject(in, "properties");
    }
    return t;
}

static cJSON *web_search_tool(const cJSON *opts)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "web_search_20250305");
    cJSON_AddStringToObject(t, "name", "web_search");
    const cJSON *approx = get(get(opts, "user_location"), "approximate");
    if (cJSON_IsObject(approx)) {
        cJSON *loc = cJSON_AddObjectToObject(t, "user_location");
        cJSON_AddStringToObject(loc, "type", "approximate");
        static const char *const keys[] = {"city", "region", "country", "timezone"};
        for (size_t i = 0; i < 4; i++) {
            const cJSON *v = get(approx, keys[i]);
            if (v)
                cJSON_AddItemToObject(loc, keys[i], cJSON_Duplicate(v, 1));
        }
    }
    const char *size = get_str(opts, "search_context_size");
    int uses = str_eq(size, "low") ? 1 : str_eq(size, "medium") ? 5 : str_eq(size, "high") ? 10 : 0;
    if (uses)
        cJSON_AddNumberToObject(t, "max_uses", uses);
    return t;
}

static void put(cJSON *body, const char *k, cJSON *v)
{
    if (!v)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(body, k);
    cJSON_AddItemToObject(body, k, v);
}

static cJSON *build_body(req_env *env, const cJSON *req, cJSON *betas, cJSON *extra_headers,
                         prov_err *err)
{
    const prov_ctx *c = env->c;
    if (!cJSON_IsObject(req)) {
        set_bad_request(err, env->exc_name, "request body must be a JSON object");
        return NULL;
    }

    /* Unsupported parameters first: LiteLLM refuses before translating anything. */
    sbuf names;
    sbuf_init(&names);
    const cJSON *x;
    cJSON_ArrayForEach(x, req) {
        if (!x->string || cJSON_IsNull(x) || !is_unsupported_openai_param(x->string, x))
            continue;
        sbuf_adds(&names, names.len ? ", '" : "'");
        sbuf_adds(&names, x->string);
        sbuf_adds(&names, "'");
    }
    if (names.len && !c->drop_params) {
        prov_err_set(err, 400, "invalid_request_error", NULL,
                     "litellm.UnsupportedParamsError: %s does not support parameters: [%s], for "
                     "model=%s. To drop these, set `litellm.drop_params=True` or for proxy:\n\n"
                     "`litellm_settings:\n drop_params: true`\n. \n If you want to use these "
                     "params dynamically send allowed_openai_params=[%s] in your request.",
                     env->provider, names.p, c->upstream_model ? c->upstream_model : "", names.p);
        sbuf_free(&names);
        return NULL;
    }
    sbuf_free(&names);

    const cJSON *messages = get(req, "messages");
    if (!cJSON_IsArray(messages)) {
        set_bad_request(err, env->exc_name, "'messages' must be a list");
        return NULL;
    }

    cJSON *body = cJSON_CreateObject();
    if (!env->vertex)
        cJSON_AddStringToObject(body, "model", c->upstream_model ? c->upstream_model : "");
    else
        cJSON_AddStringToObject(body, "anthropic_version", VERTEX_ANTHROPIC_VERSION);
    cJSON *msgs = cJSON_AddArrayToObject(body, "messages");
    cJSON *system = cJSON_CreateArray();
    if (convert_messages(messages, msgs, system, env, err) < 0) {
        cJSON_Delete(system);
        cJSON_Delete(body);
        return NULL;
    }
    int nsys = cJSON_GetArraySize(system);
    if (nsys == 1 && !get(cJSON_GetArrayItem(system, 0), "cache_control")) {
        cJSON_AddStringToObject(body, "system", get_str(cJSON_GetArrayItem(system, 0), "text"));
        cJSON_Delete(system);
    } else if (nsys > 0) {
        cJSON_AddItemToObject(body, "system", system);
    } else {
        cJSON_Delete(system);
    }

    const cJSON *mt = get(req, "max_completion_tokens");
    if (is_null_or_absent(mt))
        mt = get(req, "max_tokens");
    bool have_max = cJSON_IsNumber(mt);
    cJSON_AddNumberToObject(body, "max_tokens",
                            have_max ? mt->valuedouble : ANTH_DEFAULT_MAX_TOKENS);

    const cJSON *stop = get(req, "stop");
    if (cJSON_IsString(stop) || cJSON_IsArray(stop)) {
        cJSON *seq = cJSON_CreateArray();
        const cJSON *one = stop;
        bool single = cJSON_IsString(stop);
        for (const cJSON *s = single ? one : stop->child; s; s = single ? NULL : s->next) {
            if (!cJSON_IsString(s))
                continue;
            bool blank = true;
            for (const char *p = s->valuestring; *p && blank; p++)
                blank = isspace((unsigned char)*p);
            if (blank && *s->valuestring && c->drop_params)
                continue; /* Anthropic rejects whitespace-only stop sequences */
            cJSON_AddItemToArray(seq, cJSON_CreateString(s->valuestring));
        }
        if (cJSON_GetArraySize(seq))
            cJSON_AddItemToObject(body, "stop_sequences", seq);
        else
            cJSON_Delete(seq);
    }
    static const char *const numeric[] = {"temperature", "top_p"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = get(req, numeric[i]);
        if (cJSON_IsNumber(v))
            cJSON_AddNumberToObject(body, numeric[i], v->valuedouble);
    }

    /* Tools: the client's, then hosted web search, then the response_format tool. */
    cJSON *tools = cJSON_CreateArray();
    const cJSON *tl = get(req, "tools");
    if (cJSON_IsArray(tl))
        cJSON_ArrayForEach(x, tl) cJSON_AddItemToArray(tools, map_tool(x));
    const cJSON *wso = get(req, "web_search_options");
    if (cJSON_IsObject(wso))
        cJSON_AddItemToArray(tools, web_search_tool(wso));

    /* thinking: explicit "thinking" wins over reasoning_effort */
    cJSON *thinking = NULL;
    const cJSON *th = get(req, "thinking");
    const char *effort = get_str(req, "reasoning_effort");
    if (cJSON_IsObject(th)) {
        thinking = cJSON_Duplicate(th, 1);
    } else if (effort && !str_eq(effort, "none") && !str_eq(effort, "disable")) {
        int budget = effort_budget(effort);
        if (budget < 0) {
            set_bad_request(err, env->exc_name, "Unmapped reasoning effort: %s", effort);
            cJSON_Delete(tools);
            cJSON_Delete(body);
            return NULL;
        }
        thinking = cJSON_CreateObject();
        cJSON_AddStringToObject(thinking, "type", "enabled");
        cJSON_AddNumberToObject(thinking, "budget_tokens", budget);
    }
    bool thinking_on = thinking && str_eq(get_str(thinking, "type"), "enabled");
    if (thinking_on && !have_max && cJSON_IsNumber(get(thinking, "budget_tokens")))
        cJSON_ReplaceItemInObjectCaseSensitive(
            body, "max_tokens",
            cJSON_CreateNumber(get(thinking, "budget_tokens")->valuedouble +
                               ANTH_DEFAULT_MAX_TOKENS));

    cJSON *tool_choice = map_tool_choice(get(req, "tool_choice"), get(req, "parallel_tool_calls"));
    cJSON *jt = json_tool(get(req, "response_format"));
    if (jt) {
        cJSON_AddItemToArray(tools, jt);
        if (!thinking_on) { /* a forced tool is not allowed together with thinking */
            cJSON_Delete(tool_choice);
            tool_choice = cJSON_CreateObject();
            cJSON_AddStringToObject(tool_choice, "name", JSON_TOOL_NAME);
            cJSON_AddStringToObject(tool_choice, "type", "tool");
        }
    }
    if (cJSON_GetArraySize(tools))
        cJSON_AddItemToObject(body, "tools", tools);
    else
        cJSON_Delete(tools);
    put(body, "tool_choice", tool_choice);

    const char *user = get_str(req, "user");
    if (user && valid_user_id(user)) {
        cJSON *md = cJSON_AddObjectToObject(body, "metadata");
        cJSON_AddStringToObject(md, "user_id", user);
    }
    if (c->stream || cJSON_IsTrue(get(req, "stream")))
        cJSON_AddBoolToObject(body, "stream", true);
    put(body, "thinking", thinking);

    /* Provider-specific members (top_k, container, mcp_servers, ...) go through as LiteLLM
     * passes them. */
    cJSON_ArrayForEach(x, req) {
        if (!x->string || is_mapped_param(x->string) || is_unsupported_openai_param(x->string, x))
            continue;
        if (env->vertex && str_eq(x->string, "anthropic_version"))
            continue;
        put(body, x->string, cJSON_Duplicate(x, 1));
    }
    const cJSON *eb = get(req, "extra_body");
    if (cJSON_IsObject(eb))
        cJSON_ArrayForEach(x, eb) if (x->string) put(body, x->string, cJSON_Duplicate(x, 1));

    const cJSON *eh = get(req, "extra_headers");
    if (cJSON_IsObject(eh))
        cJSON_ArrayForEach(x, eh) {
            if (!x->string || !cJSON_IsString(x))
                continue;
            if (strcasecmp(x->string, "anthropic-beta") == 0)
                add_beta_list(betas, x->valuestring);
            else
                cJSON_AddItemToObject(extra_headers, x->string, cJSON_CreateString(x->valuestring));
        }
    add_beta_list(betas, c->anthropic_beta);
    if (env->vertex && cJSON_GetArraySize(betas))
        put(body, "anthropic_beta", cJSON_Duplicate(betas, 1));
    return body;
}

static char *join_betas(const cJSON *betas)
{
    sbuf b;
    sbuf_init(&b);
    const cJSON *x;
    cJSON_ArrayForEach(x, betas) {
        if (b.len)
            sbuf_adds(&b, ",");
        sbuf_adds(&b, x->valuestring);
    }
    return sbuf_take(&b, NULL);
}

static char *anthropic_url(const char *api_base)
{
    const char *base = api_base && *api_base ? api_base : "https://api.anthropic.com";
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    if (ends_with(base, n, "/v1/messages"))
        return dupn(base, n);
    if (ends_with(base, n, "/v1"))
        return str_printf("%.*s/messages", (int)n, base);
    return str_printf("%.*s/v1/messages", (int)n, base);
}

/* rawPredict URL for Claude on Vertex AI. An api_base that is only scheme://host[:port] takes the
 * place of Google's host (mock upstreams, private endpoints); one with a path is used as LiteLLM
 * uses it: "{api_base}:{endpoint}", plus "?alt=sse" when streaming.
 * Shared with the /v1/messages pass-through (declared in anthropic.h). */
char *anth_vertex_url(const prov_ctx *c, bool stream, prov_err *err)
{
    const char *endpoint = stream ? "streamRawPredict" : "rawPredict";
    const char *loc = c->location && *c->location ? c->location : "us-central1";
    const char *model = c->upstream_model ? c->upstream_model : "";
    if (c->api_base && *c->api_base) {
        size_t n = strlen(c->api_base);
        while (n && c->api_base[n - 1] == '/')
            n--;
        const char *host = strstr(c->api_base, "://");
        host = host && host + 3 <= c->api_base + n ? host + 3 : c->api_base;
        const char *slash = memchr(host, '/', (size_t)(c->api_base + n - host));
        if (slash)
            return str_printf("%.*s:%s%s", (int)n, c->api_base, endpoint, stream ? "?alt=sse" : "");
        if (!c->project || !*c->project)
            goto no_project;
        return str_printf("%.*s/v1/projects/%s/locations/%s/publishers/anthropic/models/%s:%s",
                          (int)n, c->api_base, c->project, loc, model, endpoint);
    }
    if (!c->project || !*c->project)
        goto no_project;
    if (strcmp(loc, "global") == 0)
        return str_printf("https://aiplatform.googleapis.com/v1/projects/%s/locations/global/"
                          "publishers/anthropic/models/%s:%s",
                          c->project, model, endpoint);
    return str_printf("https://%s-aiplatform.googleapis.com/v1/projects/%s/locations/%s/"
                      "publishers/anthropic/models/%s:%s",
                      loc, c->project, loc, model, endpoint);
no_project:
    prov_err_set(err, 400, "invalid_request_error", NULL,
                 "litellm.BadRequestError: VertexAIException - vertex_project is required for "
                 "vertex_ai/%s",
                 model);
    return NULL;
}

static int chat_request_common(const prov_ctx *c, const cJSON *req, prov_http_req *out,
                               prov_err *err, bool vertex)
{
    memset(out, 0, sizeof *out);
    req_env env = {
        .c = c,
        .vertex = vertex,
        .provider = vertex ? "vertex_ai" : "anthropic",
        .exc_name = vertex ? "VertexAIException" : "AnthropicException",
    };
    cJSON *betas = cJSON_CreateArray();
    cJSON *extra_headers = cJSON_CreateObject();
    cJSON *body = build_body(&env, req, betas, extra_headers, err);
    int rc = -1;
    if (!body)
        goto done;
    bool stream = c->stream || cJSON_IsTrue(get(req, "stream"));
    out->url = vertex ? anth_vertex_url(c, stream, err) : anthropic_url(c->api_base);
    if (!out->url)
        goto done;
    out->body = cJSON_PrintUnformatted(body);
    if (!out->body) {
        prov_err_set(err, 500, "internal_server_error", NULL, "out of memory");
        goto done;
    }
    out->body_len = strlen(out->body);

    const char *key = c->api_key;
    if (vertex) {
        char *auth = str_printf("Bearer %s", c->access_token ? c->access_token : "");
        prov_http_req_add_header(out, "Authorization", auth);
        free(auth);
    } else if (starts_with(key, OAUTH_TOKEN_PREFIX)) {
        /* Claude subscription OAuth tokens: bearer auth plus the OAuth beta (LiteLLM) */
        char *auth = str_printf("Bearer %s", key);
        prov_http_req_add_header(out, "authorization", auth);
        free(auth);
        prov_http_req_add_header(out, "anthropic-dangerous-direct-browser-access", "true");
        add_beta_list(betas, OAUTH_BETA);
    } else if (key) {
        prov_http_req_add_header(out, "x-api-key", key);
    }
    if (!vertex) {
        const char *v = c->anthropic_version && *c->anthropic_version ? c->anthropic_version
                                                                        : DEFAULT_ANTHROPIC_VERSION;
        prov_http_req_add_header(out, "anthropic-version", v);
    }
    if (cJSON_GetArraySize(betas)) {
        char *b = join_betas(betas);
        prov_http_req_add_header(out, "anthropic-beta", b);
        free(b);
    }
    prov_http_req_add_header(out, "accept", "application/json");
    prov_http_req_add_header(out, "content-type", "application/json");
    const cJSON *h;
    cJSON_ArrayForEach(h, extra_headers) prov_http_req_add_header(out, h->string, h->valuestring);
    rc = 0;
done:
    if (rc < 0)
        prov_http_req_free(out);
    cJSON_Delete(body);
    cJSON_Delete(betas);
    cJSON_Delete(extra_headers);
    return rc;
}

static int anth_chat_request(const prov_ctx *c, const cJSON *req, prov_http_req *out,
                             prov_err *err)
{
    return chat_request_common(c, req, out, err, false);
}

static int vertex_chat_request(const prov_ctx *c, const cJSON *req, prov_http_req *out,
                               prov_err *err)
{
    return chat_request_common(c, req, out, err, true);
}

/* ---- Anthropic → OpenAI: response --------------------------------------------------------- */

static const char *map_stop_reason(const char *r)
{
    if (!r || str_eq(r, "end_turn") || str_eq(r, "stop_sequence") || str_eq(r, "pause_turn"))
        return "stop";
    if (str_eq(r, "max_tokens") || str_eq(r, "model_context_window_exceeded"))
        return "length";
    if (str_eq(r, "tool_use"))
        return "tool_calls";
    if (str_eq(r, "refusal"))
        return "content_filter";
    return "stop";
}

typedef struct {
    int64_t input, output, cache_create, cache_read;
} anth_usage;

static void read_anth_usage(const cJSON *u, anth_usage *a, bool partial)
{
    if (!cJSON_IsObject(u))
        return;
    /* message_delta carries cumulative counts; fields it omits keep their message_start value */
    if (!partial || cJSON_IsNumber(get(u, "input_tokens")))
        a->input = get_i64(u, "input_tokens");
    if (!partial || cJSON_IsNumber(get(u, "output_tokens")))
        a->output = get_i64(u, "output_tokens");
    if (!partial || cJSON_IsNumber(get(u, "cache_creation_input_tokens")))
        a->cache_create = get_i64(u, "cache_creation_input_tokens");
    if (!partial || cJSON_IsNumber(get(u, "cache_read_input_tokens")))
        a->cache_read = get_i64(u, "cache_read_input_tokens");
}

/* LiteLLM's calculate_usage: prompt tokens include cache writes and reads. */
static void fill_oai_usage(const anth_usage *a, oai_usage *u)
{
    if (!u)
        return;
    u->prompt_tokens = a->input + a->cache_create + a->cache_read;
    u->completion_tokens = a->output;
    u->total_tokens = u->prompt_tokens + u->completion_tokens;
    u->cached_tokens = a->cache_read;
    u->cache_creation_tokens = a->cache_create;
}

static void write_usage_json(sbuf *b, const anth_usage *a)
{
    oai_usage u;
    fill_oai_usage(a, &u);
    sbuf_adds(b, "{\"prompt_tokens\":");
    sbuf_add_u64(b, (unsigned long long)u.prompt_tokens);
    sbuf_adds(b, ",\"completion_tokens\":");
    sbuf_add_u64(b, (unsigned long long)u.completion_tokens);
    sbuf_adds(b, ",\"total_tokens\":");
    sbuf_add_u64(b, (unsigned long long)u.total_tokens);
    sbuf_adds(b, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    sbuf_add_u64(b, (unsigned long long)a->cache_read);
    sbuf_adds(b, "},\"cache_creation_input_tokens\":");
    sbuf_add_u64(b, (unsigned long long)a->cache_create);
    sbuf_adds(b, ",\"cache_read_input_tokens\":");
    sbuf_add_u64(b, (unsigned long long)a->cache_read);
    sbuf_adds(b, "}");
}

static const char *exc_name_of(const prov_ctx *c, bool vertex)
{
    (void)c;
    return vertex ? "VertexAIException" : "AnthropicException";
}

/* The JSON-mode tool's input becomes the message text (its "values" member when present). */
static char *json_mode_text(const cJSON *input)
{
    const cJSON *v = get(input, "values");
    return cJSON_PrintUnformatted(v ? v : input);
}

static int chat_response_common(const prov_ctx *c, const char *body, size_t len, sbuf *out,
                                oai_usage *u, prov_err *err, bool vertex)
{
    const char *exc = exc_name_of(c, vertex);
    cJSON *r = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(r)) {
        cJSON_Delete(r);
        char *raw = dupn(body, len > 2000 ? 2000 : len);
        prov_err_set(err, 500, "internal_server_error", NULL,
                     "litellm.APIError: %s - Unable to get json response, Original Response: %s",
                     exc, raw ? raw : "");
        free(raw);
        return -1;
    }
    if (str_eq(get_str(r, "type"), "error") || cJSON_IsObject(get(r, "error"))) {
        const cJSON *e = get(r, "error");
        char *raw = dupn(body, len);
        set_provider_error(err, exc, status_for_anthropic_error(get_str(e, "type")), raw);
        free(raw);
        cJSON_Delete(r);
        return -1;
    }

    sbuf text, reasoning;
    sbuf_init(&text);
    sbuf_init(&reasoning);
    cJSON *tool_calls = cJSON_CreateArray();
    cJSON *thinking_blocks = cJSON_CreateArray();
    char *json_text = NULL;
    bool have_reasoning = false;
    const cJSON *blk;
    cJSON_ArrayForEach(blk, get(r, "content")) {
        const char *type = get_str(blk, "type");
        if (str_eq(type, "text")) {
            const char *t = get_str(blk, "text");
            if (t)
                sbuf_adds(&text, t);
        } else if (str_eq(type, "tool_use") || str_eq(type, "server_tool_use")) {
            const cJSON *input = get(blk, "input");
            if (str_eq(get_str(blk, "name"), JSON_TOOL_NAME) && !json_text) {
                json_text = json_mode_text(input);
                continue;
            }
            cJSON *tc = cJSON_CreateObject();
            cJSON_AddStringToObject(tc, "id", get_str(blk, "id") ? get_str(blk, "id") : "");
            cJSON_AddStringToObject(tc, "type", "function");
            cJSON *fn = cJSON_AddObjectToObject(tc, "function");
            cJSON_AddStringToObject(fn, "name", get_str(blk, "name") ? get_str(blk, "name") : "");
            char *args = input ? cJSON_PrintUnformatted(input) : NULL;
            cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
            free(args);
            cJSON_AddItemToArray(tool_calls, tc);
        } else if (str_eq(type, "thinking")) {
            const char *t = get_str(blk, "thinking");
            if (t)
                sbuf_adds(&reasoning, t);
            have_reasoning = true;
            cJSON_AddItemToArray(thinking_blocks, cJSON_Duplicate(blk, 1));
        } else if (str_eq(type, "redacted_thinking")) {
            have_reasoning = true;
            cJSON_AddItemToArray(thinking_blocks, cJSON_Duplicate(blk, 1));
        }
    }
    if (json_text) /* LiteLLM appends the JSON-mode answer to any text */
        sbuf_adds(&text, json_text);

    const char *stop_reason = get_str(r, "stop_reason");
    const char *finish = map_stop_reason(stop_reason);
    if (json_text && cJSON_GetArraySize(tool_calls) == 0)
        finish = "stop";

    anth_usage au = {0};
    read_anth_usage(get(r, "usage"), &au, false);
    fill_oai_usage(&au, u);

    const char *id = get_str(r, "id");
    const char *model = c->client_model ? c->client_model : get_str(r, "model");
    sbuf_adds(out, "{\"id\":");
    sbuf_add_jstr(out, id ? id : (c->response_id ? c->response_id : ""));
    sbuf_adds(out, ",\"object\":\"chat.completion\",\"created\":");
    sbuf_addf(out, "%ld", c->created);
    sbuf_adds(out, ",\"model\":");
    sbuf_add_jstr(out, model ? model : "");
    sbuf_adds(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (text.len || json_text)
        sbuf_add_jstrn(out, text.p ? text.p : "", text.len);
    else
        sbuf_adds(out, "null");
    if (cJSON_GetArraySize(tool_calls)) {
        char *tc = cJSON_PrintUnformatted(tool_calls);
        sbuf_adds(out, ",\"tool_calls\":");
        sbuf_adds(out, tc ? tc : "[]");
        free(tc);
    }
    if (have_reasoning) {
        sbuf_adds(out, ",\"reasoning_content\":");
        sbuf_add_jstrn(out, reasoning.p ? reasoning.p : "", reasoning.len);
        char *tb = cJSON_PrintUnformatted(thinking_blocks);
        sbuf_adds(out, ",\"thinking_blocks\":");
        sbuf_adds(out, tb ? tb : "[]");
        free(tb);
    }
    sbuf_adds(out, "},\"finish_reason\":");
    sbuf_add_jstr(out, finish);
    sbuf_adds(out, "}],\"usage\":");
    write_usage_json(out, &au);
    sbuf_adds(out, "}");

    free(json_text);
    sbuf_free(&text);
    sbuf_free(&reasoning);
    cJSON_Delete(tool_calls);
    cJSON_Delete(thinking_blocks);
    cJSON_Delete(r);
    if (out->failed) {
        prov_err_set(err, 500, "internal_server_error", NULL, "out of memory");
        return -1;
    }
    return 0;
}

static int anth_chat_response(const prov_ctx *c, const char *body, size_t len, sbuf *out,
                              oai_usage *u, prov_err *err)
{
    return chat_response_common(c, body, len, out, u, err, false);
}

static int vertex_chat_response(const prov_ctx *c, const char *body, size_t len, sbuf *out,
                                oai_usage *u, prov_err *err)
{
    return chat_response_common(c, body, len, out, u, err, true);
}

static void error_common(const prov_ctx *c, int status, const char *body, size_t len,
                         prov_err *err, bool vertex)
{
    while (len && isspace((unsigned char)body[len - 1]))
        len--;
    char *text = dupn(body ? body : "", body ? len : 0);
    set_provider_error(err, exc_name_of(c, vertex), status, text);
    free(text);
}

static void anth_error(const prov_ctx *c, int status, const char *body, size_t len, prov_err *err)
{
    error_common(c, status, body, len, err, false);
}

static void vertex_error(const prov_ctx *c, int status, const char *body, size_t len,
                         prov_err *err)
{
    error_common(c, status, body, len, err, true);
}

/* ---- Anthropic → OpenAI: stream ----------------------------------------------------------- */

enum { BLK_OTHER, BLK_TEXT, BLK_TOOL, BLK_JSON_TOOL, BLK_THINKING };

typedef struct {
    int kind;
    int tool_index; /* OpenAI tool_calls[].index for BLK_TOOL */
} blk_info;

typedef struct {
    char *id, *model, *fallback_id;
    long created;
    bool include_usage, vertex;
    bool sent_role;
    int tool_count;
    bool json_mode_only; /* the JSON-mode tool was used and no other tool */
    blk_info *blocks;
    int nblocks;
    anth_usage usage;
} anth_stream;

static prov_stream *stream_new_common(const prov_ctx *c, bool vertex)
{
    anth_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->model = xstrdup(c->client_model ? c->client_model : c->upstream_model);
    s->fallback_id = xstrdup(c->response_id ? c->response_id : "");
    s->created = c->created;
    s->include_usage = c->include_usage;
    s->vertex = vertex;
    return (prov_stream *)s;
}

static prov_stream *anth_stream_new(const prov_ctx *c) { return stream_new_common(c, false); }
static prov_stream *vertex_stream_new(const prov_ctx *c) { return stream_new_common(c, true); }

static void anth_stream_free(prov_stream *ps)
{
    anth_stream *s = (anth_stream *)ps;
    if (!s)
        return;
    free(s->id);
    free(s->model);
    free(s->fallback_id);
    free(s->blocks);
    free(s);
}

static blk_info *block_at(anth_stream *s, int64_t index64, bool create)
{
    if (index64 < 0 || index64 > 4096) /* Anthropic answers have a handful of blocks */
        return NULL;
    int index = (int)index64;
    if (index >= s->nblocks) {
        if (!create)
            return NULL;
        int n = index + 1;
        blk_info *b = realloc(s->blocks, (size_t)n * sizeof *b);
        if (!b)
            return NULL;
        memset(b + s->nblocks, 0, (size_t)(n - s->nblocks) * sizeof *b);
        s->blocks = b;
        s->nblocks = n;
    }
    return &s->blocks[index];
}

static void chunk_open(anth_stream *s, sbuf *out)
{
    sbuf_adds(out, "data: {\"id\":");
    sbuf_add_jstr(out, s->id ? s->id : s->fallback_id);
    sbuf_adds(out, ",\"object\":\"chat.completion.chunk\",\"created\":");
    sbuf_addf(out, "%ld", s->created);
    sbuf_adds(out, ",\"model\":");
    sbuf_add_jstr(out, s->model ? s->model : "");
    sbuf_adds(out, ",\"choices\":[{\"index\":0,\"delta\":{");
}

static void chunk_close(sbuf *out, const char *finish)
{
    sbuf_adds(out, "},\"finish_reason\":");
    if (finish)
        sbuf_add_jstr(out, finish);
    else
        sbuf_adds(out, "null");
    sbuf_adds(out, "}]}\n\n");
}

static void emit_content(anth_stream *s, sbuf *out, const char *text)
{
    chunk_open(s, out);
    sbuf_adds(out, "\"content\":");
    sbuf_add_jstr(out, text);
    chunk_close(out, NULL);
}

static void emit_thinking(anth_stream *s, sbuf *out, const char *thinking, const char *signature)
{
    chunk_open(s, out);
    if (thinking) {
        sbuf_adds(out, "\"reasoning_content\":");
        sbuf_add_jstr(out, thinking);
        sbuf_adds(out, ",");
    }
    sbuf_adds(out, "\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":");
    sbuf_add_jstr(out, thinking ? thinking : "");
    sbuf_adds(out, ",\"signature\":");
    sbuf_add_jstr(out, signature ? signature : "");
    sbuf_adds(out, "}]");
    chunk_close(out, NULL);
}

static int anth_stream_event_common(anth_stream *s, const sse_event *ev, sbuf *out, oai_usage *u,
                                    prov_err *err)
{
    if (!ev->data || ev->data_len == 0)
        return 0;
    cJSON *j = cJSON_ParseWithLength(ev->data, ev->data_len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return 0; /* not an Anthropic event: nothing to translate */
    }
    const char *type = get_str(j, "type");
    int rc = 0;
    if (str_eq(type, "message_start")) {
        const cJSON *m = get(j, "message");
        const char *id = get_str(m, "id");
        if (id && !s->id)
            s->id = xstrdup(id);
        read_anth_usage(get(m, "usage"), &s->usage, false);
        fill_oai_usage(&s->usage, u);
        if (!s->sent_role) {
            s->sent_role = true;
            chunk_open(s, out);
            sbuf_adds(out, "\"role\":\"assistant\",\"content\":\"\"");
            chunk_close(out, NULL);
        }
    } else if (str_eq(type, "content_block_start")) {
        const cJSON *cb = get(j, "content_block");
        const char *bt = get_str(cb, "type");
        blk_info *b = block_at(s, get_i64(j, "index"), true);
        if (!b)
            goto done;
        if (str_eq(bt, "text")) {
            b->kind = BLK_TEXT;
            const char *t = get_str(cb, "text");
            if (t && *t)
                emit_content(s, out, t);
        } else if (str_eq(bt, "tool_use") || str_eq(bt, "server_tool_use")) {
            const char *name = get_str(cb, "name");
            if (str_eq(name, JSON_TOOL_NAME)) {
                b->kind = BLK_JSON_TOOL;
                if (s->tool_count == 0)
                    s->json_mode_only = true;
                goto done;
            }
            b->kind = BLK_TOOL;
            b->tool_index = s->tool_count++;
            s->json_mode_only = false;
            chunk_open(s, out);
            sbuf_addf(out, "\"tool_calls\":[{\"index\":%d,\"id\":", b->tool_index);
            sbuf_add_jstr(out, get_str(cb, "id") ? get_str(cb, "id") : "");
            sbuf_adds(out, ",\"type\":\"function\",\"function\":{\"name\":");
            sbuf_add_jstr(out, name ? name : "");
            sbuf_adds(out, ",\"arguments\":\"\"}}]");
            chunk_close(out, NULL);
        } else if (str_eq(bt, "thinking")) {
            b->kind = BLK_THINKING;
            const char *t = get_str(cb, "thinking");
            if (t && *t)
                emit_thinking(s, out, t, NULL);
        } else if (str_eq(bt, "redacted_thinking")) {
            b->kind = BLK_OTHER;
            chunk_open(s, out);
            sbuf_adds(out, "\"thinking_blocks\":[{\"type\":\"redacted_thinking\",\"data\":");
            sbuf_add_jstr(out, get_str(cb, "data") ? get_str(cb, "data") : "");
            sbuf_adds(out, "}]");
            chunk_close(out, NULL);
        } else {
            b->kind = BLK_OTHER;
        }
    } else if (str_eq(type, "content_block_delta")) {
        const cJSON *d = get(j, "delta");
        const char *dt = get_str(d, "type");
        blk_info *b = block_at(s, get_i64(j, "index"), false);
        int kind = b ? b->kind : BLK_TEXT;
        if (str_eq(dt, "text_delta")) {
            const char *t = get_str(d, "text");
            if (t && *t)
                emit_content(s, out, t);
        } else if (str_eq(dt, "input_json_delta")) {
            const char *pj = get_str(d, "partial_json");
            if (!pj || !*pj)
                goto done;
            if (kind == BLK_JSON_TOOL) {
                emit_content(s, out, pj);
            } else if (kind == BLK_TOOL) {
                chunk_open(s, out);
                sbuf_addf(out, "\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":",
                          b->tool_index);
                sbuf_add_jstr(out, pj);
                sbuf_adds(out, "}}]");
                chunk_close(out, NULL);
            }
        } else if (str_eq(dt, "thinking_delta")) {
            const char *t = get_str(d, "thinking");
            if (t)
                emit_thinking(s, out, t, NULL);
        } else if (str_eq(dt, "signature_delta")) {
            const char *sig = get_str(d, "signature");
            if (sig)
                emit_thinking(s, out, NULL, sig);
        }
    } else if (str_eq(type, "message_delta")) {
        read_anth_usage(get(j, "usage"), &s->usage, true);
        fill_oai_usage(&s->usage, u);
        const char *sr = get_str(get(j, "delta"), "stop_reason");
        const char *finish = map_stop_reason(sr);
        if (s->json_mode_only && str_eq(finish, "tool_calls"))
            finish = "stop";
        chunk_open(s, out);
        chunk_close(out, finish);
    } else if (str_eq(type, "error")) {
        const cJSON *e = get(j, "error");
        const char *msg = get_str(e, "message");
        char *raw = NULL;
        if (!msg)
            msg = raw = dupn(ev->data, ev->data_len);
        set_provider_error(err, s->vertex ? "VertexAIException" : "AnthropicException",
                           status_for_anthropic_error(get_str(e, "type")), msg);
        free(raw);
        rc = -1;
    }
    /* ping, content_block_stop, message_stop: nothing to send */
done:
    cJSON_Delete(j);
    if (rc == 0 && out->failed) {
        prov_err_set(err, 500, "internal_server_error", NULL, "out of memory");
        return -1;
    }
    return rc;
}

static int anth_stream_event(prov_stream *ps, const sse_event *ev, sbuf *out, oai_usage *u,
                             prov_err *err)
{
    return anth_stream_event_common((anth_stream *)ps, ev, out, u, err);
}

static int anth_stream_end(prov_stream *ps, sbuf *out, oai_usage *u)
{
    anth_stream *s = (anth_stream *)ps;
    fill_oai_usage(&s->usage, u);
    if (s->include_usage) {
        sbuf_adds(out, "data: {\"id\":");
        sbuf_add_jstr(out, s->id ? s->id : s->fallback_id);
        sbuf_adds(out, ",\"object\":\"chat.completion.chunk\",\"created\":");
        sbuf_addf(out, "%ld", s->created);
        sbuf_adds(out, ",\"model\":");
        sbuf_add_jstr(out, s->model ? s->model : "");
        sbuf_adds(out, ",\"choices\":[],\"usage\":");
        write_usage_json(out, &s->usage);
        sbuf_adds(out, "}\n\n");
    }
    sbuf_adds(out, "data: [DONE]\n\n");
    return out->failed ? -1 : 0;
}

const prov_ops prov_anthropic = {
    .name = "anthropic",
    .chat_request = anth_chat_request,
    .chat_response = anth_chat_response,
    .stream_new = anth_stream_new,
    .stream_event = anth_stream_event,
    .stream_end = anth_stream_end,
    .stream_free = anth_stream_free,
    .error = anth_error,
    .embed_request = NULL,
    .embed_response = NULL,
};

const prov_ops prov_vertex_claude = {
    .name = "vertex_ai",
    .chat_request = vertex_chat_request,
    .chat_response = vertex_chat_response,
    .stream_new = vertex_stream_new,
    .stream_event = anth_stream_event,
    .stream_end = anth_stream_end,
    .stream_free = anth_stream_free,
    .error = vertex_error,
    .embed_request = NULL,
    .embed_response = NULL,
};

/* ---- ingress: Anthropic request → OpenAI request ------------------------------------------ */

static void ingress_err(prov_err *err, const char *msg)
{
    prov_err_set(err, 400, "invalid_request_error", NULL, "%s", msg);
}

static char *image_source_url(const cJSON *src)
{
    const char *type = get_str(src, "type");
    if (str_eq(type, "base64")) {
        const char *mt = get_str(src, "media_type");
        const char *data = get_str(src, "data");
        if (!data || !*data)
            return NULL;
        return str_printf("data:%s;base64,%s", mt ? mt : "image/jpeg", data);
    }
    if (str_eq(type, "url"))
        return xstrdup(get_str(src, "url") ? get_str(src, "url") : "");
    return NULL;
}

static cJSON *oai_text_part(const char *t)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "text");
    cJSON_AddStringToObject(p, "text", t ? t : "");
    return p;
}

static cJSON *oai_image_part(const char *url)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "image_url");
    cJSON *iu = cJSON_AddObjectToObject(p, "image_url");
    cJSON_AddStringToObject(iu, "url", url);
    return p;
}

static cJSON *tool_result_to_oai(const cJSON *blk)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "tool");
    const char *id = get_str(blk, "tool_use_id");
    cJSON_AddStringToObject(m, "tool_call_id", id ? id : "");
    const cJSON *content = get(blk, "content");
    if (cJSON_IsString(content)) {
        cJSON_AddStringToObject(m, "content", content->valuestring);
    } else if (cJSON_IsArray(content) && cJSON_GetArraySize(content) == 1) {
        const cJSON *c0 = content->child;
        char *url = NULL;
        const char *s = cJSON_IsString(c0)                      ? c0->valuestring
                        : str_eq(get_str(c0, "type"), "text")   ? get_str(c0, "text")
                        : str_eq(get_str(c0, "type"), "image")
                            ? (url = image_source_url(get(c0, "source")))
                            : NULL;
        cJSON_AddStringToObject(m, "content", s ? s : "");
        free(url);
    } else if (cJSON_IsArray(content)) {
        cJSON *parts = cJSON_AddArrayToObject(m, "content");
        const cJSON *c;
        cJSON_ArrayForEach(c, content) {
            const char *type = get_str(c, "type");
            if (cJSON_IsString(c)) {
                cJSON_AddItemToArray(parts, oai_text_part(c->valuestring));
            } else if (str_eq(type, "text")) {
                cJSON_AddItemToArray(parts, oai_text_part(get_str(c, "text")));
            } else if (str_eq(type, "image")) {
                char *url = image_source_url(get(c, "source"));
                if (url && *url)
                    cJSON_AddItemToArray(parts, oai_image_part(url));
                free(url);
            }
        }
    } else {
        cJSON_AddStringToObject(m, "content", "");
    }
    return m;
}

static int ingress_user(const cJSON *m, cJSON *out, prov_err *err)
{
    const cJSON *content = get(m, "content");
    if (cJSON_IsString(content)) {
        cJSON *um = cJSON_CreateObject();
        cJSON_AddStringToObject(um, "role", "user");
        cJSON_AddStringToObject(um, "content", content->valuestring);
        cJSON_AddItemToArray(out, um);
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        ingress_err(err, "messages: user content must be a string or a list of content blocks");
        return -1;
    }
    cJSON *parts = cJSON_CreateArray();
    const cJSON *blk;
    cJSON_ArrayForEach(blk, content) {
        const char *type = get_str(blk, "type");
        if (str_eq(type, "text")) {
            cJSON_AddItemToArray(parts, oai_text_part(get_str(blk, "text")));
        } else if (str_eq(type, "image") || str_eq(type, "document")) {
            char *url = image_source_url(get(blk, "source"));
            if (url && *url)
                cJSON_AddItemToArray(parts, oai_image_part(url));
            free(url);
        } else if (str_eq(type, "tool_result")) {
            cJSON_AddItemToArray(out, tool_result_to_oai(blk)); /* tool messages come first */
        }
    }
    if (cJSON_GetArraySize(parts)) {
        cJSON *um = cJSON_CreateObject();
        cJSON_AddStringToObject(um, "role", "user");
        cJSON_AddItemToObject(um, "content", parts);
        cJSON_AddItemToArray(out, um);
    } else {
        cJSON_Delete(parts);
    }
    return 0;
}

static void ingress_assistant(const cJSON *m, cJSON *out)
{
    const cJSON *content = get(m, "content");
    sbuf text;
    sbuf_init(&text);
    bool have_text = false;
    cJSON *calls = cJSON_CreateArray();
    cJSON *thinking = cJSON_CreateArray();
    if (cJSON_IsString(content)) {
        sbuf_adds(&text, content->valuestring);
        have_text = true;
    } else if (cJSON_IsArray(content)) {
        const cJSON *blk;
        cJSON_ArrayForEach(blk, content) {
            const char *type = get_str(blk, "type");
            if (str_eq(type, "text")) {
                const char *t = get_str(blk, "text");
                sbuf_adds(&text, t ? t : "");
                have_text = true;
            } else if (str_eq(type, "tool_use")) {
                cJSON *tc = cJSON_CreateObject();
                const char *id = get_str(blk, "id");
                cJSON_AddStringToObject(tc, "id", id ? id : "");
                cJSON_AddStringToObject(tc, "type", "function");
                cJSON *fn = cJSON_AddObjectToObject(tc, "function");
                const char *name = get_str(blk, "name");
                cJSON_AddStringToObject(fn, "name",
                                        name && *name ? name : "litellm_unnamed_tool");
                const cJSON *input = get(blk, "input");
                char *args = input ? cJSON_PrintUnformatted(input) : NULL;
                cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
                free(args);
                cJSON_AddItemToArray(calls, tc);
            } else if (str_eq(type, "thinking")) {
                cJSON *t = cJSON_CreateObject();
                cJSON_AddStringToObject(t, "type", "thinking");
                const char *th = get_str(blk, "thinking");
                const char *sig = get_str(blk, "signature");
                cJSON_AddStringToObject(t, "thinking", th ? th : "");
                cJSON_AddStringToObject(t, "signature", sig ? sig : "");
                cJSON_AddItemToArray(thinking, t);
            } else if (str_eq(type, "redacted_thinking")) {
                cJSON *t = cJSON_CreateObject();
                cJSON_AddStringToObject(t, "type", "redacted_thinking");
                const char *data = get_str(blk, "data");
                cJSON_AddStringToObject(t, "data", data ? data : "");
                cJSON_AddItemToArray(thinking, t);
            }
        }
    }
    if (have_text || cJSON_GetArraySize(calls) || cJSON_GetArraySize(thinking)) {
        cJSON *am = cJSON_CreateObject();
        cJSON_AddStringToObject(am, "role", "assistant");
        if (have_text)
            cJSON_AddItemToObject(am, "content", cJSON_CreateString(text.p ? text.p : ""));
        else
            cJSON_AddNullToObject(am, "content");
        if (cJSON_GetArraySize(calls))
            cJSON_AddItemToObject(am, "tool_calls", calls), calls = NULL;
        if (cJSON_GetArraySize(thinking))
            cJSON_AddItemToObject(am, "thinking_blocks", thinking), thinking = NULL;
        cJSON_AddItemToArray(out, am);
    }
    cJSON_Delete(calls);
    cJSON_Delete(thinking);
    sbuf_free(&text);
}

static const char *effort_for_budget(int64_t b)
{
    if (b >= 4096)
        return "high";
    if (b >= 2048)
        return "medium";
    if (b >= 1024)
        return "low";
    return "minimal";
}

/* OpenAI strict mode wants additionalProperties:false and every property required. */
static void strictify_schema(cJSON *s)
{
    if (!cJSON_IsObject(s))
        return;
    cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    if (str_eq(get_str(s, "type"), "object") && cJSON_IsObject(props)) {
        put(s, "additionalProperties", cJSON_CreateFalse());
        cJSON *req = cJSON_CreateArray();
        cJSON *p;
        cJSON_ArrayForEach(p, props) {
            cJSON_AddItemToArray(req, cJSON_CreateString(p->string));
            strictify_schema(p);
        }
        put(s, "required", req);
    }
    strictify_schema(cJSON_GetObjectItemCaseSensitive(s, "items"));
    static const char *const lists[] = {"anyOf", "oneOf", "allOf"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *x, *l = cJSON_GetObjectItemCaseSensitive(s, lists[i]);
        if (cJSON_IsArray(l))
            cJSON_ArrayForEach(x, l) strictify_schema(x);
    }
    static const char *const defs[] = {"$defs", "definitions"};
    for (size_t i = 0; i < 2; i++) {
        cJSON *x, *d = cJSON_GetObjectItemCaseSensitive(s, defs[i]);
        if (cJSON_IsObject(d))
            cJSON_ArrayForEach(x, d) strictify_schema(x);
    }
}

static bool is_hosted_tool_type(const char *type)
{
    static const char *const prefixes[] = {"bash_", "text_editor_", "code_execution_",
                                           "computer_"};
    for (size_t i = 0; type && i < sizeof prefixes / sizeof *prefixes; i++)
        if (starts_with(type, prefixes[i]))
            return true;
    return false;
}

static cJSON *anth_to_openai_request_raw(const cJSON *areq, prov_err *err);

/* Top-level field names that JSON must escape (control characters, quotes, backslashes) are
 * dropped from the translated request: the gateway refuses escaped field names, and no OpenAI
 * parameter is spelled that way. */
cJSON *anth_to_openai_request(const cJSON *areq, prov_err *err)
{
    cJSON *o = anth_to_openai_request_raw(areq, err);
    if (!o)
        return NULL;
    cJSON *it = o->child;
    while (it) {
        cJSON *next = it->next;
        bool bad = !it->string;
        for (const unsigned char *c = (const unsigned char *)it->string; !bad && *c; c++)
            bad = *c < 0x20 || *c == '"' || *c == '\\' || *c == 0x7f;
        if (bad)
            cJSON_Delete(cJSON_DetachItemViaPointer(o, it));
        it = next;
    }
    return o;
}

static cJSON *anth_to_openai_request_raw(const cJSON *areq, prov_err *err)
{
    if (!cJSON_IsObject(areq)) {
        ingress_err(err, "request body must be a JSON object");
        return NULL;
    }
    const cJSON *messages = get(areq, "messages");
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        ingress_err(err, "messages: field required (a non-empty list)");
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    const cJSON *model = get(areq, "model");
    if (model)
        cJSON_AddItemToObject(o, "model", cJSON_Duplicate(model, 1));
    cJSON *msgs = cJSON_AddArrayToObject(o, "messages");

    const cJSON *sys = get(areq, "system");
    if (cJSON_IsString(sys) && *sys->valuestring) {
        cJSON *sm = cJSON_CreateObject();
        cJSON_AddStringToObject(sm, "role", "system");
        cJSON_AddStringToObject(sm, "content", sys->valuestring);
        cJSON_AddItemToArray(msgs, sm);
    } else if (cJSON_IsArray(sys)) {
        cJSON *parts = cJSON_CreateArray();
        const cJSON *b;
        cJSON_ArrayForEach(b, sys) if (str_eq(get_str(b, "type"), "text"))
            cJSON_AddItemToArray(parts, oai_text_part(get_str(b, "text")));
        if (cJSON_GetArraySize(parts)) {
            cJSON *sm = cJSON_CreateObject();
            cJSON_AddStringToObject(sm, "role", "system");
            cJSON_AddItemToObject(sm, "content", parts);
            cJSON_AddItemToArray(msgs, sm);
        } else {
            cJSON_Delete(parts);
        }
    }

    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role = get_str(m, "role");
        if (str_eq(role, "user")) {
            if (ingress_user(m, msgs, err) < 0) {
                cJSON_Delete(o);
                return NULL;
            }
        } else if (str_eq(role, "assistant")) {
            ingress_assistant(m, msgs);
        } else {
            ingress_err(err, "messages: role must be 'user' or 'assistant'");
            cJSON_Delete(o);
            return NULL;
        }
    }

    const char *user = get_str(get(areq, "metadata"), "user_id");
    if (user)
        cJSON_AddStringToObject(o, "user", user);

    const cJSON *tc = get(areq, "tool_choice");
    const char *tct = get_str(tc, "type");
    if (tct) {
        if (str_eq(tct, "any"))
            cJSON_AddStringToObject(o, "tool_choice", "required");
        else if (str_eq(tct, "auto") || str_eq(tct, "none"))
            cJSON_AddStringToObject(o, "tool_choice", tct);
        else if (str_eq(tct, "tool")) {
            cJSON *c = cJSON_AddObjectToObject(o, "tool_choice");
            cJSON_AddStringToObject(c, "type", "function");
            cJSON *fn = cJSON_AddObjectToObject(c, "function");
            const char *name = get_str(tc, "name");
            cJSON_AddStringToObject(fn, "name", name ? name : "");
        } else {
            ingress_err(err, "tool_choice: type must be one of auto, any, tool, none");
            cJSON_Delete(o);
            return NULL;
        }
    }

    const cJSON *tools = get(areq, "tools");
    if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools)) {
        cJSON *ot = cJSON_CreateArray();
        const cJSON *t;
        int idx = 0;
        cJSON_ArrayForEach(t, tools) {
            const char *type = get_str(t, "type");
            const char *name = get_str(t, "name");
            if ((type && starts_with(type, "web_search")) || str_eq(name, "web_search")) {
                if (!get(o, "web_search_options"))
                    cJSON_AddObjectToObject(o, "web_search_options");
            } else if (is_hosted_tool_type(type)) {
                cJSON_AddItemToArray(ot, cJSON_Duplicate(t, 1));
            } else {
                cJSON *f = cJSON_CreateObject();
                cJSON_AddStringToObject(f, "type", "function");
                cJSON *fn = cJSON_AddObjectToObject(f, "function");
                char fallback[40];
                snprintf(fallback, sizeof fallback, "litellm_unnamed_tool_%d", idx);
                cJSON_AddStringToObject(fn, "name", name && *name ? name : fallback);
                const char *desc = get_str(t, "description");
                if (desc)
                    cJSON_AddStringToObject(fn, "description", desc);
                const cJSON *schema = get(t, "input_schema");
                if (schema)
                    cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(schema, 1));
                const cJSON *x;
                cJSON_ArrayForEach(x, t) {
                    if (!x->string || str_eq(x->string, "name") ||
                        str_eq(x->string, "input_schema") || str_eq(x->string, "description") ||
                        str_eq(x->string, "cache_control") || str_eq(x->string, "type"))
                        continue;
                    cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
                    if (!params)
                        params = cJSON_AddObjectToObject(fn, "parameters");
                    put(params, x->string, cJSON_Duplicate(x, 1));
                }
                cJSON_AddItemToArray(ot, f);
            }
            idx++;
        }
        if (cJSON_GetArraySize(ot))
            cJSON_AddItemToObject(o, "tools", ot);
        else
            cJSON_Delete(ot);
    }

    const cJSON *th = get(areq, "thinking");
    const char *tht = get_str(th, "type");
    if (str_eq(tht, "enabled")) {
        cJSON_AddStringToObject(o, "reasoning_effort",
                                effort_for_budget(get_i64(th, "budget_tokens")));
    } else if (str_eq(tht, "adaptive")) {
        const char *eff = get_str(get(areq, "output_config"), "effort");
        cJSON_AddStringToObject(o, "reasoning_effort", eff ? eff : "medium");
    }

    const cJSON *of = get(areq, "output_format");
    if (!of)
        of = get(get(areq, "output_config"), "format");
    if (str_eq(get_str(of, "type"), "json_schema") && cJSON_IsObject(get(of, "schema"))) {
        cJSON *rf = cJSON_AddObjectToObject(o, "response_format");
        cJSON_AddStringToObject(rf, "type", "json_schema");
        cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
        cJSON_AddStringToObject(js, "name", "structured_output");
        cJSON *schema = cJSON_Duplicate(get(of, "schema"), 1);
        strictify_schema(schema);
        cJSON_AddItemToObject(js, "schema", schema);
        cJSON_AddBoolToObject(js, "strict", true);
    }

    const cJSON *ss = get(areq, "stop_sequences");
    if (cJSON_IsArray(ss) && cJSON_GetArraySize(ss))
        cJSON_AddItemToObject(o, "stop", cJSON_Duplicate(ss, 1));
    if (cJSON_IsTrue(get(areq, "stream"))) {
        cJSON_AddBoolToObject(o, "stream", true);
        cJSON *so = cJSON_AddObjectToObject(o, "stream_options");
        cJSON_AddBoolToObject(so, "include_usage", true);
    }

    /* the rest (max_tokens, temperature, top_p, top_k, ...) passes through as LiteLLM passes it */
    static const char *const handled[] = {
        "model", "messages", "system", "metadata", "tool_choice", "tools", "thinking",
        "output_format", "output_config", "stop_sequences", "stream", "anthropic_version",
        "anthropic_beta",
    };
    const cJSON *x;
    cJSON_ArrayForEach(x, areq) {
        bool skip = !x->string;
        for (size_t i = 0; !skip && i < sizeof handled / sizeof *handled; i++)
            skip = str_eq(x->string, handled[i]);
        if (!skip)
            put(o, x->string, cJSON_Duplicate(x, 1));
    }
    return o;
}

/* ---- ingress: OpenAI response → Anthropic message ----------------------------------------- */

static const char *anth_stop_reason(const char *finish)
{
    if (str_eq(finish, "length"))
        return "max_tokens";
    if (str_eq(finish, "tool_calls") || str_eq(finish, "function_call"))
        return "tool_use";
    return "end_turn";
}

typedef struct {
    int64_t input, output, cache_read, cache_create;
} in_usage;

static int64_t first_positive(const cJSON *o, const char *a, const char *b)
{
    int64_t v = get_i64(o, a);
    if (v <= 0 && b)
        v = get_i64(o, b);
    return v > 0 ? v : 0;
}

static void read_oai_usage(const cJSON *u, in_usage *a)
{
    if (!cJSON_IsObject(u))
        return;
    const cJSON *det = get(u, "prompt_tokens_details");
    a->cache_read = first_positive(u, "cache_read_input_tokens", NULL);
    if (!a->cache_read)
        a->cache_read = first_positive(det, "cached_tokens", NULL);
    a->cache_create = first_positive(u, "cache_creation_input_tokens", NULL);
    if (!a->cache_create)
        a->cache_create = first_positive(det, "cache_creation_tokens", "cache_write_tokens");
    int64_t prompt = get_i64(u, "prompt_tokens");
    a->input = prompt - a->cache_read - a->cache_create;
    if (a->input < 0)
        a->input = 0;
    a->output = get_i64(u, "completion_tokens");
}

static void write_anth_usage(sbuf *b, const in_usage *a)
{
    sbuf_adds(b, "{\"input_tokens\":");
    sbuf_add_u64(b, (unsigned long long)a->input);
    sbuf_adds(b, ",\"output_tokens\":");
    sbuf_add_u64(b, (unsigned long long)a->output);
    if (a->cache_create > 0) {
        sbuf_adds(b, ",\"cache_creation_input_tokens\":");
        sbuf_add_u64(b, (unsigned long long)a->cache_create);
    }
    if (a->cache_read > 0) {
        sbuf_adds(b, ",\"cache_read_input_tokens\":");
        sbuf_add_u64(b, (unsigned long long)a->cache_read);
    }
    sbuf_adds(b, "}");
}

static cJSON *parse_args(const char *args)
{
    cJSON *in = args && *args ? cJSON_Parse(args) : NULL;
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        in = cJSON_CreateObject();
    }
    return in;
}

int anth_from_openai_response(const char *body, size_t len, const char *model, sbuf *out,
                              prov_err *err)
{
    cJSON *r = cJSON_ParseWithLength(body, len);
    const cJSON *choice = cJSON_GetArrayItem(get(r, "choices"), 0);
    const cJSON *msg = get(choice, "message");
    if (!cJSON_IsObject(r) || !cJSON_IsObject(msg)) {
        cJSON_Delete(r);
        prov_err_set(err, 500, "api_error", NULL,
                     "The upstream answer is not an OpenAI chat.completion");
        return -1;
    }
    cJSON *content = cJSON_CreateArray();
    const cJSON *tb = get(msg, "thinking_blocks");
    const char *rc = get_str(msg, "reasoning_content");
    if (cJSON_IsArray(tb) && cJSON_GetArraySize(tb)) {
        const cJSON *b;
        cJSON_ArrayForEach(b, tb) {
            const char *type = get_str(b, "type");
            cJSON *o = cJSON_CreateObject();
            if (str_eq(type, "redacted_thinking")) {
                cJSON_AddStringToObject(o, "type", "redacted_thinking");
                cJSON_AddStringToObject(o, "data", get_str(b, "data") ? get_str(b, "data") : "");
            } else {
                cJSON_AddStringToObject(o, "type", "thinking");
                const char *t = get_str(b, "thinking"), *sig = get_str(b, "signature");
                cJSON_AddStringToObject(o, "thinking", t ? t : "");
                if (sig)
                    cJSON_AddStringToObject(o, "signature", sig);
                else
                    cJSON_AddNullToObject(o, "signature");
            }
            cJSON_AddItemToArray(content, o);
        }
    } else if (rc && *rc) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "thinking");
        cJSON_AddStringToObject(o, "thinking", rc);
        cJSON_AddNullToObject(o, "signature");
        cJSON_AddItemToArray(content, o);
    }
    const cJSON *text = get(msg, "content");
    if (cJSON_IsString(text)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "text");
        cJSON_AddStringToObject(o, "text", text->valuestring);
        cJSON_AddItemToArray(content, o);
    } else if (cJSON_IsArray(text)) {
        sbuf t;
        sbuf_init(&t);
        const cJSON *p;
        cJSON_ArrayForEach(p, text) if (get_str(p, "text")) sbuf_adds(&t, get_str(p, "text"));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "text");
        cJSON_AddStringToObject(o, "text", t.p ? t.p : "");
        cJSON_AddItemToArray(content, o);
        sbuf_free(&t);
    }
    const cJSON *tc;
    cJSON_ArrayForEach(tc, get(msg, "tool_calls")) {
        const cJSON *fn = get(tc, "function");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "tool_use");
        char *id = sanitize_tool_id(get_str(tc, "id"));
        cJSON_AddStringToObject(o, "id", id ? id : "");
        free(id);
        cJSON_AddStringToObject(o, "name", get_str(fn, "name") ? get_str(fn, "name") : "");
        cJSON_AddItemToObject(o, "input", parse_args(get_str(fn, "arguments")));
        cJSON_AddItemToArray(content, o);
    }

    in_usage usage = {0};
    read_oai_usage(get(r, "usage"), &usage);
    const char *id = get_str(r, "id");
    const char *rmodel = model ? model : get_str(r, "model");
    sbuf_adds(out, "{\"id\":");
    sbuf_add_jstr(out, id ? id : "");
    sbuf_adds(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    sbuf_add_jstr(out, rmodel ? rmodel : "unknown-model");
    char *cs = cJSON_PrintUnformatted(content);
    sbuf_adds(out, ",\"content\":");
    sbuf_adds(out, cs ? cs : "[]");
    free(cs);
    sbuf_adds(out, ",\"stop_reason\":");
    sbuf_add_jstr(out, anth_stop_reason(get_str(choice, "finish_reason")));
    sbuf_adds(out, ",\"stop_sequence\":null,\"usage\":");
    write_anth_usage(out, &usage);
    sbuf_adds(out, "}");
    cJSON_Delete(content);
    cJSON_Delete(r);
    if (out->failed) {
        prov_err_set(err, 500, "api_error", NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- ingress: OpenAI chunks → Anthropic events -------------------------------------------- */

enum { OB_NONE, OB_TEXT, OB_THINKING, OB_TOOL };

typedef struct {
    int oai_index; /* tool_calls[].index */
    int block;     /* Anthropic content block index */
} tool_map;

struct anth_out_stream {
    char *model, *msg_id;
    bool started, delta_sent;
    int open;       /* OB_* of the open block */
    int open_index; /* its Anthropic index */
    int next_index;
    int open_tool;  /* OpenAI index of the open tool_use block */
    tool_map *tools;
    int ntools;
    const char *stop_reason;
    in_usage usage;
};

anth_out_stream *anth_out_stream_new(const char *model, const char *msg_id)
{
    anth_out_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->model = xstrdup(model ? model : "");
    s->msg_id = xstrdup(msg_id ? msg_id : "");
    s->open_tool = -1;
    return s;
}

void anth_out_stream_free(anth_out_stream *s)
{
    if (!s)
        return;
    free(s->model);
    free(s->msg_id);
    free(s->tools);
    free(s);
}

static void ev_open(sbuf *out, const char *type)
{
    sbuf_adds(out, "event: ");
    sbuf_adds(out, type);
    sbuf_adds(out, "\ndata: {\"type\":\"");
    sbuf_adds(out, type);
    sbuf_adds(out, "\"");
}

static void ev_close(sbuf *out) { sbuf_adds(out, "}\n\n"); }

static void out_start(anth_out_stream *s, sbuf *out)
{
    if (s->started)
        return;
    s->started = true;
    ev_open(out, "message_start");
    sbuf_adds(out, ",\"message\":{\"id\":");
    sbuf_add_jstr(out, s->msg_id);
    sbuf_adds(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    sbuf_add_jstr(out, s->model);
    sbuf_adds(out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                   "\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}");
    ev_close(out);
}

static void out_close_block(anth_out_stream *s, sbuf *out)
{
    if (s->open == OB_NONE)
        return;
    ev_open(out, "content_block_stop");
    sbuf_addf(out, ",\"index\":%d", s->open_index);
    ev_close(out);
    s->open = OB_NONE;
    s->open_tool = -1;
}

static void out_open_block(anth_out_stream *s, sbuf *out, int kind, const char *id,
                           const char *name)
{
    out_close_block(s, out);
    s->open = kind;
    s->open_index = s->next_index++;
    ev_open(out, "content_block_start");
    sbuf_addf(out, ",\"index\":%d,\"content_block\":", s->open_index);
    if (kind == OB_TEXT) {
        sbuf_adds(out, "{\"type\":\"text\",\"text\":\"\"}");
    } else if (kind == OB_THINKING) {
        sbuf_adds(out, "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}");
    } else {
        sbuf_adds(out, "{\"type\":\"tool_use\",\"id\":");
        sbuf_add_jstr(out, id);
        sbuf_adds(out, ",\"name\":");
        sbuf_add_jstr(out, name);
        sbuf_adds(out, ",\"input\":{}}");
    }
    ev_close(out);
}

static void out_delta(anth_out_stream *s, sbuf *out, const char *dtype, const char *field,
                      const char *value)
{
    ev_open(out, "content_block_delta");
    sbuf_addf(out, ",\"index\":%d,\"delta\":{\"type\":\"%s\",\"%s\":", s->open_index, dtype,
              field);
    sbuf_add_jstr(out, value);
    sbuf_adds(out, "}");
    ev_close(out);
}

static void out_message_delta(anth_out_stream *s, sbuf *out)
{
    if (s->delta_sent)
        return;
    s->delta_sent = true;
    ev_open(out, "message_delta");
    sbuf_adds(out, ",\"delta\":{\"stop_reason\":");
    sbuf_add_jstr(out, s->stop_reason ? s->stop_reason : "end_turn");
    sbuf_adds(out, ",\"stop_sequence\":null},\"usage\":");
    write_anth_usage(out, &s->usage);
    ev_close(out);
}

static int tool_block_for(anth_out_stream *s, int oai_index)
{
    for (int i = 0; i < s->ntools; i++)
        if (s->tools[i].oai_index == oai_index)
            return s->tools[i].block;
    return -1;
}

static void out_tool_call(anth_out_stream *s, sbuf *out, const cJSON *tc)
{
    const cJSON *fn = get(tc, "function");
    int64_t idx64 = get_i64(tc, "index");
    int idx = idx64 >= 0 && idx64 < 1024 ? (int)idx64 : 0;
    const char *id = get_str(tc, "id");
    const char *name = get_str(fn, "name");
    const char *args = get_str(fn, "arguments");
    if (tool_block_for(s, idx) < 0) {
        tool_map *t = realloc(s->tools, (size_t)(s->ntools + 1) * sizeof *t);
        if (!t)
            return;
        s->tools = t;
        char gen[96];
        snprintf(gen, sizeof gen, "toolu_%.60s_%d", s->msg_id, idx);
        char *clean = sanitize_tool_id(id ? id : gen);
        out_open_block(s, out, OB_TOOL, clean ? clean : "", name ? name : "");
        free(clean);
        s->tools[s->ntools++] = (tool_map){idx, s->open_index};
        s->open_tool = idx;
    }
    /* arguments for a tool whose block is already closed cannot be sent any more: Anthropic
     * blocks are sequential. OpenAI-compatible servers stream tool calls one after another. */
    if (args && *args && s->open == OB_TOOL && s->open_tool == idx)
        out_delta(s, out, "input_json_delta", "partial_json", args);
}

int anth_out_stream_chunk(anth_out_stream *s, const char *chunk, size_t len, sbuf *out)
{
    cJSON *j = cJSON_ParseWithLength(chunk, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return 0;
    }
    out_start(s, out);
    const cJSON *u = get(j, "usage");
    if (cJSON_IsObject(u)) {
        memset(&s->usage, 0, sizeof s->usage);
        read_oai_usage(u, &s->usage);
    }
    const cJSON *choice = cJSON_GetArrayItem(get(j, "choices"), 0);
    const cJSON *d = get(choice, "delta");
    const char *rc = get_str(d, "reasoning_content");
    if (rc && *rc) {
        if (s->open != OB_THINKING)
            out_open_block(s, out, OB_THINKING, NULL, NULL);
        out_delta(s, out, "thinking_delta", "thinking", rc);
    }
    const cJSON *tb;
    cJSON_ArrayForEach(tb, get(d, "thinking_blocks")) {
        const char *sig = get_str(tb, "signature");
        if (!sig || !*sig)
            continue;
        if (s->open != OB_THINKING)
            out_open_block(s, out, OB_THINKING, NULL, NULL);
        out_delta(s, out, "signature_delta", "signature", sig);
    }
    const char *text = get_str(d, "content");
    if (text && *text) {
        if (s->open != OB_TEXT)
            out_open_block(s, out, OB_TEXT, NULL, NULL);
        out_delta(s, out, "text_delta", "text", text);
    }
    const cJSON *tc;
    cJSON_ArrayForEach(tc, get(d, "tool_calls")) out_tool_call(s, out, tc);

    const char *finish = get_str(choice, "finish_reason");
    if (finish) {
        out_close_block(s, out);
        s->stop_reason = anth_stop_reason(finish);
    }
    /* message_delta waits for anth_out_stream_end: it carries the usage, which OpenAI sends after
     * the finish_reason (and some servers repeat, growing, on several chunks). */
    cJSON_Delete(j);
    return out->failed ? -1 : 0;
}

int anth_out_stream_end(anth_out_stream *s, sbuf *out)
{
    out_start(s, out);
    out_close_block(s, out);
    out_message_delta(s, out);
    ev_open(out, "message_stop");
    ev_close(out);
    return out->failed ? -1 : 0;
}

/* ---- errors and Vertex bodies ------------------------------------------------------------- */

char *anth_error_body(int status, const char *message, size_t *len)
{
    const char *type;
    switch (status) {
    case 401:
        type = "authentication_error";
        break;
    case 403:
        type = "permission_error";
        break;
    case 404:
        type = "not_found_error";
        break;
    case 413:
        type = "request_too_large";
        break;
    case 429:
        type = "rate_limit_error";
        break;
    case 503:
    case 529:
        type = "overloaded_error";
        break;
    default:
        type = status >= 500 ? "api_error" : "invalid_request_error";
    }
    sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"type\":\"error\",\"error\":{\"type\":\"");
    sbuf_adds(&b, type);
    sbuf_adds(&b, "\",\"message\":");
    sbuf_add_jstr(&b, message ? message : "");
    sbuf_adds(&b, "}}");
    return sbuf_take(&b, len);
}

char *anth_vertex_body(const char *body, size_t len, size_t *out_len)
{
    int n = jscan_object(body, len, NULL, 0, NULL);
    if (n < 0)
        return NULL;
    jmember *m = calloc(n ? (size_t)n : 1, sizeof *m);
    if (!m)
        return NULL;
    jscan_object(body, len, m, n, NULL);
    bool has_version = jscan_find(body, m, n, "anthropic_version") != NULL;
    sbuf b;
    sbuf_init(&b);
    sbuf_reserve(&b, len + 48);
    sbuf_adds(&b, "{");
    bool first = true;
    if (!has_version) {
        sbuf_adds(&b, "\"anthropic_version\":\"" VERTEX_ANTHROPIC_VERSION "\"");
        first = false;
    }
    for (int i = 0; i < n; i++) {
        if (m[i].key_len == 5 && memcmp(body + m[i].key_off, "model", 5) == 0)
            continue;
        if (!first)
            sbuf_adds(&b, ",");
        first = false;
        sbuf_add(&b, body + m[i].off, m[i].val_off + m[i].val_len - m[i].off);
    }
    sbuf_adds(&b, "}");
    free(m);
    return sbuf_take(&b, out_len);
}
