/* providers/gemini — Gemini's generateContent API, on Vertex AI (prov_vertex_gemini) and on Google
 * AI Studio (prov_gemini). Both speak the same body; they differ in URL and credentials.
 *
 *   OpenAI chat request      → GenerateContentRequest (contents, systemInstruction, tools,
 *                              toolConfig, safetySettings, generationConfig)
 *   GenerateContentResponse  → chat.completion; with :streamGenerateContent?alt=sse every SSE
 *                              event is a whole GenerateContentResponse → chat.completion.chunk
 *   Google error body        → LiteLLM-style error ("litellm.RateLimitError: VertexAIException -")
 *   embeddings               → :predict (Vertex AI) / :batchEmbedContents (AI Studio)
 *
 * The mapping is LiteLLM's (llms/vertex_ai/gemini/transformation.py,
 * vertex_and_google_ai_studio_gemini.py, common_utils.py), including its quirks where a client
 * could notice them: tool results that are JSON objects are sent as the functionResponse itself,
 * a user turn without text gets a " " text part, the first candidate blocked by a safety filter
 * turns the whole answer into one content_filter choice, a stream always ends with a
 * finish_reason. Where sluice differs it says so next to the code.
 *
 * Everything is built with cJSON: a request is parsed once by the gateway anyway, and Gemini
 * bodies are small next to the model's latency. The cost is an allocation per node; the benefit
 * is that every output is valid JSON by construction, which matters more for a fuzzed
 * translator than a few microseconds. No sockets, clocks, threads or globals. */
#include "providers/prov.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Which of the two front doors: the body mapping is shared. */
typedef struct {
    bool studio;          /* AI Studio (gemini/): API key, v1beta, no project */
    const char *provider; /* LiteLLM's provider name, used in messages */
} gkind;

static const gkind K_VERTEX = {false, "vertex_ai"};
static const gkind K_STUDIO = {true, "gemini"};

/* LiteLLM names the exception "VertexAIException" for vertex_ai and gemini alike (both go
 * through the same branch of exception_mapping_utils). */
#define EXC_NAME "VertexAIException"

/* JSON schemas nested deeper than this are refused rather than recursed into. */
#define SCHEMA_MAX_DEPTH 64

/* Candidates tracked per stream (Gemini's candidateCount is at most 8). */
#define MAX_CAND 8

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

/* A member that is present and not null (LiteLLM treats None as "not given"). */
static const cJSON *param(const cJSON *req, const char *k)
{
    const cJSON *v = get(req, k);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* v when it is an array, else NULL (for cJSON_ArrayForEach, which takes any node). */
static const cJSON *arr(const cJSON *v)
{
    return cJSON_IsArray(v) ? v : NULL;
}

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static bool has_prefix(const char *s, const char *p)
{
    return s && strncmp(s, p, strlen(p)) == 0;
}

/* Case-insensitive substring test for model-name rules. */
static bool icontains(const char *hay, const char *needle)
{
    if (!hay)
        return false;
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

/* A JSON number as an integer; dflt when absent, not a number, or outside [lo, hi] (casting an
 * out-of-range double is undefined behaviour, and upstream bodies are not trusted). */
static int64_t num_in(const cJSON *v, int64_t lo, int64_t hi, int64_t dflt)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi))
        return dflt;
    return (int64_t)v->valuedouble;
}

static int64_t num_i64(const cJSON *v, int64_t dflt)
{
    return num_in(v, 0, INT64_C(1) << 53, dflt);
}

static void add_dup(cJSON *obj, const char *k, const cJSON *v)
{
    cJSON *d = cJSON_Duplicate(v, true);
    if (d)
        cJSON_AddItemToObject(obj, k, d);
}

/* Prints o unformatted into a heap string, free()d by the caller (prov_http_req_free frees the
 * body): cJSON allocates with malloc unless hooks are installed, and sluice installs none. */
static char *print(const cJSON *o, size_t *len)
{
    char *s = cJSON_PrintUnformatted(o);
    if (s && len)
        *len = strlen(s);
    return s;
}

static void oom(prov_err *err)
{
    prov_err_set(err, 500, "api_error", NULL, "litellm.InternalServerError: out of memory");
}

/* OpenAI-style error type for a (mapped) status. */
static const char *err_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* The model id as it appears in the URL: "vertex_ai/gemini/<id>" routes to <id> (LiteLLM's
 * "gemini spec" models), so everything up to the last slash goes. */
static const char *model_id(const prov_ctx *c)
{
    const char *m = c->upstream_model ? c->upstream_model : "";
    const char *s = strrchr(m, '/');
    return s ? s + 1 : m;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* Gemini 3 models take thinkingLevel instead of thinkingBudget and no penalties (LiteLLM's
 * _is_gemini_3_or_newer). */
static bool is_gemini3(const char *model)
{
    return icontains(model, "gemini-3");
}

/* LiteLLM offers reasoning_effort only for models its price map marks as reasoning models.
 * sluice has no price map here, so it refuses only the families known to lack thinking
 * (1.x, 2.0 except the -thinking experiments); anything newer is assumed to think. */
static bool supports_reasoning(const char *model)
{
    if (icontains(model, "thinking"))
        return true;
    return !(icontains(model, "gemini-1.") || icontains(model, "gemini-2.0") ||
             icontains(model, "gemini-pro"));
}

/* ---- URLs --------------------------------------------------------------------------------- */

/* Appends api_base without trailing slashes. */
static void add_base(sbuf *b, const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    sbuf_add(b, base, n);
}

/* Does api_base already name the model (…/models/<m> or …/endpoints/<id>)? That is the form
 * LiteLLM's _check_custom_proxy expects for vertex_ai ("{api_base}:{endpoint}", e.g. a
 * Cloudflare AI Gateway URL). A bare origin or prefix ("http://127.0.0.1:9000",
 * ".../google-vertex-ai") would turn into a broken "host:generateContent" there; sluice treats
 * such a base as a replacement for the Google host and appends the standard path instead. */
static bool base_names_model(const char *base)
{
    const char *p = strstr(base, "://");
    p = p ? strchr(p + 3, '/') : strchr(base, '/');
    return p && (strstr(p, "/models/") || strstr(p, "/endpoints/"));
}

/* method: generateContent, streamGenerateContent, predict, batchEmbedContents. */
static char *build_url(const gkind *k, const prov_ctx *c, const char *method, bool sse,
                       bool v1beta1, prov_err *err)
{
    const char *model = model_id(c);
    const char *base = c->api_base && *c->api_base ? c->api_base : NULL;
    sbuf b;
    sbuf_init(&b);
    if (k->studio) {
        /* LiteLLM: "{api_base}/models/{model}:{endpoint}", default base .../v1beta. The key
         * travels in x-goog-api-key, never in the URL. */
        add_base(&b, base ? base : "https://generativelanguage.googleapis.com/v1beta");
        sbuf_addf(&b, "/models/%s:%s", model, method);
    } else if (base && base_names_model(base)) {
        add_base(&b, base);
        sbuf_addf(&b, ":%s", method);
    } else {
        const char *loc = c->location && *c->location ? c->location : "us-central1";
        if (!c->project || !*c->project) {
            sbuf_free(&b);
            prov_err_set(err, 500, "api_error", NULL,
                         "litellm.InternalServerError: " EXC_NAME
                         " - no Vertex AI project for this deployment (set vertex_project)");
            return NULL;
        }
        if (base)
            add_base(&b, base);
        else if (strcmp(loc, "global") == 0)
            sbuf_adds(&b, "https://aiplatform.googleapis.com");
        else if (!strchr(loc, '-')) /* multi-region "us" / "eu" */
            sbuf_addf(&b, "https://aiplatform.%s.rep.googleapis.com", loc);
        else
            sbuf_addf(&b, "https://%s-aiplatform.googleapis.com", loc);
        sbuf_addf(&b, "/%s/projects/%s/locations/%s/", v1beta1 ? "v1beta1" : "v1", c->project,
                  loc);
        /* an all-digit model is a tuned model's endpoint id */
        if (all_digits(model))
            sbuf_addf(&b, "endpoints/%s:%s", model, method);
        else
            sbuf_addf(&b, "publishers/google/models/%s:%s", model, method);
    }
    if (sse)
        sbuf_adds(&b, "?alt=sse");
    char *url = sbuf_take(&b, NULL);
    if (!url)
        oom(err);
    return url;
}

static void add_auth(const gkind *k, const prov_ctx *c, prov_http_req *r)
{
    prov_http_req_add_header(r, "Content-Type", "application/json");
    if (k->studio) {
        if (c->api_key && *c->api_key)
            prov_http_req_add_header(r, "x-goog-api-key", c->api_key);
    } else if (c->access_token && *c->access_token) {
        sbuf b;
        sbuf_init(&b);
        sbuf_adds(&b, "Bearer ");
        sbuf_adds(&b, c->access_token);
        char *v = sbuf_take(&b, NULL);
        if (v)
            prov_http_req_add_header(r, "Authorization", v);
        free(v);
    }
}

/* ---- media parts -------------------------------------------------------------------------- */

/* Mime types by file extension: LiteLLM's tables for gs:// (file types Gemini accepts) and for
 * https:// URLs (_get_image_mime_type_from_url), merged. */
static const struct {
    const char *ext, *mime;
} MIME_BY_EXT[] = {
    {"png", "image/png"},    {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"},
    {"webp", "image/webp"},  {"heic", "image/heic"},     {"heif", "image/heif"},
    {"pdf", "application/pdf"}, {"txt", "text/plain"},   {"mp3", "audio/mp3"},
    {"wav", "audio/wav"},    {"flac", "audio/flac"},     {"aac", "audio/aac"},
    {"m4a", "audio/m4a"},    {"opus", "audio/opus"},     {"mp4", "video/mp4"},
    {"mov", "video/mov"},    {"mpeg", "video/mpeg"},     {"mpg", "video/mpeg"},
    {"avi", "video/avi"},    {"wmv", "video/wmv"},       {"mpegps", "video/mpegps"},
    {"flv", "video/flv"},    {"webm", "video/webm"},     {"3gp", "video/3gpp"},
};

/* The extension of a URL's path (query and fragment ignored), mapped; NULL when unknown. */
static const char *mime_from_url(const char *url)
{
    size_t end = strcspn(url, "?#");
    const char *dot = NULL;
    for (size_t i = 0; i < end; i++) {
        if (url[i] == '.')
            dot = url + i;
        else if (url[i] == '/')
            dot = NULL;
    }
    if (!dot)
        return NULL;
    size_t n = (size_t)(url + end - dot - 1);
    for (size_t i = 0; i < sizeof MIME_BY_EXT / sizeof *MIME_BY_EXT; i++)
        if (strlen(MIME_BY_EXT[i].ext) == n && strncasecmp(dot + 1, MIME_BY_EXT[i].ext, n) == 0)
            return MIME_BY_EXT[i].mime;
    return NULL;
}

/* An image_url / file / audio reference → an inlineData or fileData part.
 *   data:<mime>;base64,<data>       → inlineData {mimeType, data}
 *   gs://…, https://…, http://…     → fileData {mimeType (format, else by extension), fileUri}
 *   anything else (bare base64)     → inlineData with mimeType = format
 * LiteLLM downloads http(s) URLs whose type it cannot tell and inlines them; a translator cannot
 * fetch, so such a URL is refused with a hint (pass image_url.format, or a data: URL). */
static cJSON *media_part(const char *url, const char *format, prov_err *err)
{
    cJSON *part = cJSON_CreateObject();
    if (!part) {
        oom(err);
        return NULL;
    }
    if (has_prefix(url, "data:")) {
        const char *b64 = strstr(url, ";base64,");
        if (!b64) {
            prov_err_set(err, 400, "invalid_request_error", "messages",
                         "litellm.BadRequestError: only base64 data: URLs are supported for "
                         "Gemini media parts");
            cJSON_Delete(part);
            return NULL;
        }
        const char *mt = url + 5;
        size_t mlen = strcspn(mt, ";,");
        cJSON *blob = cJSON_AddObjectToObject(part, "inlineData");
        if (format && *format) {
            cJSON_AddStringToObject(blob, "mimeType", format);
        } else {
            char *m = strndup(mt, mlen);
            cJSON_AddStringToObject(blob, "mimeType", m ? m : "");
            free(m);
        }
        cJSON_AddStringToObject(blob, "data", b64 + 8);
    } else if (has_prefix(url, "gs://") || has_prefix(url, "https://") ||
               has_prefix(url, "http://")) {
        const char *mime = format && *format ? format : mime_from_url(url);
        if (!mime) {
            prov_err_set(err, 400, "invalid_request_error", "messages",
                         "litellm.BadRequestError: cannot tell the media type of %s for Gemini; "
                         "set image_url.format (e.g. \"image/png\") or send a data: URL",
                         url);
            cJSON_Delete(part);
            return NULL;
        }
        cJSON *fd = cJSON_AddObjectToObject(part, "fileData");
        cJSON_AddStringToObject(fd, "mimeType", mime);
        cJSON_AddStringToObject(fd, "fileUri", url);
    } else {
        cJSON *blob = cJSON_AddObjectToObject(part, "inlineData");
        cJSON_AddStringToObject(blob, "mimeType", format && *format ? format : "");
        cJSON_AddStringToObject(blob, "data", url);
    }
    return part;
}

/* ---- JSON schema → Gemini Schema ---------------------------------------------------------
 * LiteLLM's _build_vertex_schema: $defs/$ref inlined; type lists split ("null" → nullable);
 * anyOf without its null member and the rest marked nullable; "properties" implies type object;
 * empty items → {type: object}; "" in enum → null; only the Schema fields Gemini knows are kept
 * (additionalProperties, strict, $schema, $id, ... dropped), format only when enum/date-time;
 * a node with anyOf keeps only anyOf (its title/description copied into the branches). For
 * structured output, propertyOrdering is added so fields come back in the client's order. */

static const char *const SCHEMA_FIELDS[] = {
    "type",      "format",      "title",         "description",   "nullable",  "default",
    "items",     "minItems",    "maxItems",      "enum",          "properties", "propertyOrdering",
    "required",  "minProperties", "maxProperties", "minimum",     "maximum",   "minLength",
    "maxLength", "pattern",     "example",       "anyOf",
};

static bool schema_field(const char *k)
{
    for (size_t i = 0; i < sizeof SCHEMA_FIELDS / sizeof *SCHEMA_FIELDS; i++)
        if (strcmp(SCHEMA_FIELDS[i], k) == 0)
            return true;
    return false;
}

static cJSON *conv_schema(const cJSON *in, const cJSON *defs, int depth, bool ordering,
                          prov_err *err);

static bool is_null_type(const cJSON *s)
{
    const char *t = get_str(s, "type");
    return t && strcmp(t, "null") == 0 && cJSON_GetArraySize(s) == 1;
}

/* Converts an anyOf/oneOf list: branches converted, {"type":"null"} removed and the others made
 * nullable. NULL with err on failure. */
static cJSON *conv_anyof(const cJSON *list, const cJSON *defs, int depth, bool ordering,
                         prov_err *err)
{
    cJSON *out = cJSON_CreateArray();
    bool had_null = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (is_null_type(it)) {
            had_null = true;
            continue;
        }
        cJSON *b = conv_schema(it, defs, depth + 1, ordering, err);
        if (!b) {
            cJSON_Delete(out);
            return NULL;
        }
        cJSON_AddItemToArray(out, b);
    }
    if (cJSON_GetArraySize(out) == 0) {
        cJSON_Delete(out);
        prov_err_set(err, 400, "invalid_request_error", "tools",
                     "litellm.BadRequestError: Invalid input: AnyOf schema with only null type is "
                     "not supported. Please provide a non-null type.");
        return NULL;
    }
    if (had_null) {
        cJSON *b;
        cJSON_ArrayForEach(b, out)
        {
            cJSON_DeleteItemFromObjectCaseSensitive(b, "nullable");
            cJSON_AddTrueToObject(b, "nullable");
        }
    }
    return out;
}

static cJSON *conv_schema(const cJSON *in, const cJSON *defs, int depth, bool ordering,
                          prov_err *err)
{
    if (depth > SCHEMA_MAX_DEPTH) {
        prov_err_set(err, 400, "invalid_request_error", "tools",
                     "litellm.BadRequestError: JSON schema nested deeper than %d levels (or a "
                     "recursive $ref), which Gemini cannot take",
                     SCHEMA_MAX_DEPTH);
        return NULL;
    }
    if (!cJSON_IsObject(in))
        return cJSON_CreateObject();
    const char *ref = get_str(in, "$ref");
    if (ref) {
        const char *name = strrchr(ref, '/');
        name = name ? name + 1 : ref;
        const cJSON *target = get(defs, name);
        if (!target) {
            prov_err_set(err, 400, "invalid_request_error", "tools",
                         "litellm.BadRequestError: JSON schema $ref %s not found in $defs", ref);
            return NULL;
        }
        return conv_schema(target, defs, depth + 1, ordering, err);
    }
    if (cJSON_GetArraySize(in) == 0) { /* {} (e.g. an anyOf branch or items): any object */
        cJSON *any = cJSON_CreateObject();
        cJSON_AddStringToObject(any, "type", "object");
        return any;
    }

    cJSON *out = cJSON_CreateObject();
    if (!out) {
        oom(err);
        return NULL;
    }
    bool nullable = false;
    const cJSON *anyof = get(in, "anyOf");
    if (!cJSON_IsArray(anyof))
        anyof = get(in, "oneOf"); /* no oneOf in Gemini; anyOf is the closest it has */
    cJSON *types_anyof = NULL;     /* from a type list with more than one non-null type */

    const cJSON *t = get(in, "type");
    if (cJSON_IsArray(t)) {
        cJSON *rest = cJSON_CreateArray();
        const cJSON *e;
        cJSON_ArrayForEach(e, t)
        {
            if (!cJSON_IsString(e))
                continue;
            if (strcmp(e->valuestring, "null") == 0)
                nullable = true;
            else
                cJSON_AddItemToArray(rest, cJSON_CreateString(e->valuestring));
        }
        int n = cJSON_GetArraySize(rest);
        if (n == 1) {
            cJSON_AddStringToObject(out, "type", cJSON_GetArrayItem(rest, 0)->valuestring);
        } else if (n > 1) {
            types_anyof = cJSON_CreateArray();
            cJSON_ArrayForEach(e, rest)
            {
                cJSON *b = cJSON_CreateObject();
                cJSON_AddStringToObject(b, "type", e->valuestring);
                if (nullable)
                    cJSON_AddTrueToObject(b, "nullable");
                cJSON_AddItemToArray(types_anyof, b);
            }
        }
        cJSON_Delete(rest);
    }

    if (cJSON_IsArray(anyof) || types_anyof) {
        cJSON *list = types_anyof;
        if (!list) {
            list = conv_anyof(anyof, defs, depth, ordering, err);
            if (!list) {
                cJSON_Delete(out);
                return NULL;
            }
        }
        /* only anyOf survives; title/description move into the branches */
        const char *title = get_str(in, "title"), *desc = get_str(in, "description");
        cJSON *b;
        cJSON_ArrayForEach(b, list)
        {
            if (title && !get(b, "title"))
                cJSON_AddStringToObject(b, "title", title);
            if (desc && !get(b, "description"))
                cJSON_AddStringToObject(b, "description", desc);
        }
        cJSON_Delete(out);
        out = cJSON_CreateObject();
        cJSON_AddItemToObject(out, "anyOf", list);
        return out;
    }

    const cJSON *props = get(in, "properties");
    if (cJSON_IsObject(props) && !get(out, "type"))
        cJSON_AddStringToObject(out, "type", "object");

    const cJSON *m;
    cJSON_ArrayForEach(m, in)
    {
        const char *k = m->string;
        if (!k || !schema_field(k) || strcmp(k, "anyOf") == 0 || get(out, k))
            continue;
        if (strcmp(k, "type") == 0) {
            if (cJSON_IsString(m) && !cJSON_IsObject(props))
                cJSON_AddStringToObject(out, "type", m->valuestring);
        } else if (strcmp(k, "properties") == 0) {
            if (!cJSON_IsObject(m))
                continue;
            cJSON *po = cJSON_AddObjectToObject(out, "properties");
            const cJSON *p;
            cJSON_ArrayForEach(p, m)
            {
                cJSON *s = conv_schema(p, defs, depth + 1, ordering, err);
                if (!s) {
                    cJSON_Delete(out);
                    return NULL;
                }
                cJSON_AddItemToObject(po, p->string, s);
            }
        } else if (strcmp(k, "items") == 0) {
            if (!cJSON_IsObject(m))
                continue; /* tuple validation has no Gemini equivalent */
            cJSON *s = conv_schema(m, defs, depth + 1, ordering, err);
            if (!s) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToObject(out, "items", s);
        } else if (strcmp(k, "enum") == 0) {
            if (!cJSON_IsArray(m))
                continue;
            cJSON *en = cJSON_AddArrayToObject(out, "enum");
            const cJSON *e;
            cJSON_ArrayForEach(e, m)
            {
                if (cJSON_IsString(e) && !*e->valuestring)
                    cJSON_AddItemToArray(en, cJSON_CreateNull());
                else
                    cJSON_AddItemToArray(en, cJSON_Duplicate(e, true));
            }
        } else if (strcmp(k, "format") == 0) {
            if (cJSON_IsString(m) &&
                (strcmp(m->valuestring, "enum") == 0 || strcmp(m->valuestring, "date-time") == 0))
                cJSON_AddStringToObject(out, "format", m->valuestring);
        } else if (strcmp(k, "required") == 0) {
            if (cJSON_IsArray(m))
                add_dup(out, k, m);
        } else {
            add_dup(out, k, m);
        }
    }
    if (nullable && !get(out, "nullable"))
        cJSON_AddTrueToObject(out, "nullable");
    if (ordering && cJSON_IsObject(get(out, "properties")) && !get(out, "propertyOrdering")) {
        cJSON *po = cJSON_AddArrayToObject(out, "propertyOrdering");
        const cJSON *p;
        cJSON_ArrayForEach(p, get(out, "properties"))
            cJSON_AddItemToArray(po, cJSON_CreateString(p->string));
    }
    return out;
}

/* Top-level: pulls $defs (or definitions) out, then converts. */
static cJSON *gemini_schema(const cJSON *schema, bool ordering, prov_err *err)
{
    const cJSON *defs = get(schema, "$defs");
    if (!defs)
        defs = get(schema, "definitions");
    return conv_schema(schema, defs, 0, ordering, err);
}

/* A function with no arguments: Gemini refuses an OBJECT with empty properties ("properties:
 * should be non-empty for OBJECT type"), so such parameters are left out altogether. */
static bool empty_object_schema(const cJSON *s)
{
    const char *t = get_str(s, "type");
    const cJSON *p = get(s, "properties");
    return t && strcasecmp(t, "object") == 0 && (!p || cJSON_GetArraySize(p) == 0) &&
           !get(s, "anyOf");
}

/* ---- request ------------------------------------------------------------------------------ */

/* Parameters the mapping consumes: model, messages, stream(_options), temperature, top_p, top_k,
 * max_tokens, max_completion_tokens, stop, n, presence/frequency_penalty, seed, response_format,
 * tools, functions, tool_choice, function_call, reasoning_effort, thinking, logprobs,
 * top_logprobs, modalities, parallel_tool_calls, safety_settings, web_search_options,
 * cached_content, labels. Ignored without complaint: user, store, service_tier, and any key
 * that is not an OpenAI parameter (LiteLLM treats those as provider extras). */

/* OpenAI parameters Gemini has no equivalent for: 400 unless drop_params (LiteLLM's
 * UnsupportedParamsError). Unknown non-OpenAI keys are ignored, as LiteLLM does. */
static const char *const UNSUPPORTED[] = {
    "logit_bias", "prediction", "audio", "verbosity",
};

static bool in_list(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], k) == 0)
            return true;
    return false;
}

static bool param_unsupported(const char *k, const char *model)
{
    if (in_list(k, UNSUPPORTED, sizeof UNSUPPORTED / sizeof *UNSUPPORTED))
        return true;
    /* LiteLLM lists no penalties for Gemini 3 (and one 2.5 preview) */
    if (strcmp(k, "presence_penalty") == 0 || strcmp(k, "frequency_penalty") == 0)
        return is_gemini3(model) || strcmp(model, "gemini-2.5-pro-preview-06-05") == 0;
    if (strcmp(k, "reasoning_effort") == 0)
        return !supports_reasoning(model);
    return false;
}

/* Collects the unsupported parameters present ("'a', 'b'"); returns how many. */
static int unsupported_params(const cJSON *req, const char *model, sbuf *names,
                              const char **first)
{
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, req)
    {
        const char *k = m->string;
        if (!k || cJSON_IsNull(m) || !param_unsupported(k, model))
            continue;
        sbuf_adds(names, n ? ", '" : "'");
        sbuf_adds(names, k);
        sbuf_adds(names, "'");
        if (!n)
            *first = k;
        n++;
    }
    return n;
}

static void unsupported_error(const gkind *k, const char *model, const char *names,
                              const char *first, prov_err *err)
{
    prov_err_set(err, 400, "invalid_request_error", first,
                 "litellm.UnsupportedParamsError: %s does not support parameters: [%s], for "
                 "model=%s. To drop these, set `litellm.drop_params=True` or for proxy:\n\n"
                 "`litellm_settings:\n drop_params: true`\n",
                 k->provider, names, model);
}

/* contents[] under construction: consecutive same-role turns are merged (Gemini wants user and
 * model to alternate). */
typedef struct {
    cJSON *contents;
    cJSON *last_parts;
    const char *last_role;
    cJSON *sys_parts; /* systemInstruction.parts, created on first use */
} conv;

static cJSON *parts_for(conv *cv, const char *role)
{
    if (cv->last_parts && streq(cv->last_role, role))
        return cv->last_parts;
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "role", role);
    cJSON *parts = cJSON_AddArrayToObject(content, "parts");
    cJSON_AddItemToArray(cv->contents, content);
    cv->last_parts = parts;
    cv->last_role = role;
    return parts;
}

static void add_text_part(cJSON *parts, const char *text)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "text", text);
    cJSON_AddItemToArray(parts, p);
}

/* Text of a content that is a string or a list of {type:text} parts (joined). */
static void content_text(const cJSON *content, sbuf *b)
{
    if (cJSON_IsString(content)) {
        sbuf_adds(b, content->valuestring);
        return;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr(content))
    {
        const char *t = get_str(e, "text");
        if (streq(get_str(e, "type"), "text") && t)
            sbuf_adds(b, t);
    }
}

static int system_message(conv *cv, const cJSON *msg)
{
    const cJSON *content = get(msg, "content");
    if (!cv->sys_parts)
        cv->sys_parts = cJSON_CreateArray();
    if (cJSON_IsString(content)) {
        if (*content->valuestring)
            add_text_part(cv->sys_parts, content->valuestring);
    } else if (cJSON_IsArray(content)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, content)
        {
            const char *t = get_str(e, "text");
            if (streq(get_str(e, "type"), "text") && t && *t)
                add_text_part(cv->sys_parts, t);
        }
    }
    return 0;
}

static int user_message(conv *cv, const cJSON *msg, prov_err *err)
{
    const cJSON *content = get(msg, "content");
    if (cJSON_IsString(content)) {
        if (*content->valuestring)
            add_text_part(parts_for(cv, "user"), content->valuestring);
        else
            parts_for(cv, "user"); /* an empty turn still gets the " " part below */
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        parts_for(cv, "user");
        return 0;
    }
    cJSON *parts = parts_for(cv, "user");
    const cJSON *e;
    cJSON_ArrayForEach(e, content)
    {
        const char *type = get_str(e, "type");
        cJSON *p = NULL;
        if (streq(type, "text")) {
            const char *t = get_str(e, "text");
            if (t && *t)
                add_text_part(parts, t);
            continue;
        } else if (streq(type, "image_url")) {
            const cJSON *iu = get(e, "image_url");
            const char *url = cJSON_IsString(iu) ? iu->valuestring : get_str(iu, "url");
            if (!url)
                continue;
            p = media_part(url, get_str(iu, "format"), err);
        } else if (streq(type, "input_audio")) {
            const cJSON *ia = get(e, "input_audio");
            const char *data = get_str(ia, "data"), *fmt = get_str(ia, "format");
            if (!data)
                continue;
            char mime[64] = "";
            if (fmt && !strchr(fmt, '/'))
                snprintf(mime, sizeof mime, "audio/%s", fmt);
            p = media_part(data, *mime ? mime : fmt, err);
        } else if (streq(type, "file")) {
            const cJSON *f = get(e, "file");
            const char *ref = get_str(f, "file_id");
            if (!ref)
                ref = get_str(f, "file_data");
            if (!ref) {
                prov_err_set(err, 400, "invalid_request_error", "messages",
                             "litellm.BadRequestError: Unknown file type. Please pass in a "
                             "file_id or file_data");
                return -1;
            }
            p = media_part(ref, get_str(f, "format"), err);
        } else {
            continue; /* unknown part types are skipped, as LiteLLM does */
        }
        if (!p)
            return -1;
        cJSON_AddItemToArray(parts, p);
    }
    return 0;
}

/* OpenAI tool-call arguments (a JSON string) → functionCall.args (an object). */
static cJSON *parse_args(const char *args, prov_err *err)
{
    if (!args || !*args)
        return cJSON_CreateObject();
    cJSON *a = cJSON_Parse(args);
    if (!cJSON_IsObject(a)) {
        cJSON_Delete(a);
        prov_err_set(err, 400, "invalid_request_error", "messages",
                     "litellm.BadRequestError: tool call arguments must be a JSON object for "
                     "Gemini, got: %.200s",
                     args);
        return NULL;
    }
    return a;
}

/* Gemini's thoughtSignature on a function call must come back with it in the next request
 * (Gemini 3 refuses the turn otherwise). OpenAI clients only keep the tool call id, so, as
 * LiteLLM does, the signature rides in the id: "<id>__thought__<signature>". */
#define THOUGHT_SEP "__thought__"

/* Google's documented placeholder for function calls that carry no signature (history from
 * another model, or calls the client made up). */
#define DUMMY_THOUGHT_SIGNATURE "skip_thought_signature_validator"

static int function_call_part(cJSON *parts, const cJSON *fn, const char *id, prov_err *err)
{
    const char *name = get_str(fn, "name");
    cJSON *args = parse_args(get_str(fn, "arguments"), err);
    if (!args)
        return -1;
    cJSON *p = cJSON_CreateObject();
    cJSON *fc = cJSON_AddObjectToObject(p, "functionCall");
    cJSON_AddStringToObject(fc, "name", name ? name : "");
    cJSON_AddItemToObject(fc, "args", args);
    const char *sig = id ? strstr(id, THOUGHT_SEP) : NULL;
    if (sig && sig[strlen(THOUGHT_SEP)])
        cJSON_AddStringToObject(p, "thoughtSignature", sig + strlen(THOUGHT_SEP));
    cJSON_AddItemToArray(parts, p);
    return 0;
}

static int assistant_message(conv *cv, const cJSON *msg, prov_err *err)
{
    sbuf text;
    sbuf_init(&text);
    content_text(get(msg, "content"), &text);
    const cJSON *calls = get(msg, "tool_calls");
    const cJSON *fcall = get(msg, "function_call");
    bool any = text.len > 0 || (cJSON_IsArray(calls) && cJSON_GetArraySize(calls) > 0) ||
               cJSON_IsObject(fcall);
    if (!any) {
        sbuf_free(&text);
        return 0;
    }
    cJSON *parts = parts_for(cv, "model");
    if (text.len)
        add_text_part(parts, text.p);
    sbuf_free(&text);
    const cJSON *tc;
    cJSON_ArrayForEach(tc, arr(calls))
    {
        const cJSON *fn = get(tc, "function");
        if (!cJSON_IsObject(fn))
            continue;
        if (function_call_part(parts, fn, get_str(tc, "id"), err) < 0)
            return -1;
    }
    if (!cJSON_IsArray(calls) && cJSON_IsObject(fcall) &&
        function_call_part(parts, fcall, NULL, err) < 0)
        return -1;
    return 0;
}

/* The function name for a tool result: the tool call with the same id earlier in the
 * conversation (the latest one wins), else the message's own "name". */
static const char *tool_name(const cJSON *messages, int upto, const cJSON *msg)
{
    const char *id = get_str(msg, "tool_call_id");
    for (int i = upto - 1; id && i >= 0; i--) {
        const cJSON *m = cJSON_GetArrayItem(messages, i);
        if (!streq(get_str(m, "role"), "assistant"))
            continue;
        const cJSON *tc;
        cJSON_ArrayForEach(tc, get(m, "tool_calls"))
        {
            if (streq(get_str(tc, "id"), id)) {
                const char *n = get_str(get(tc, "function"), "name");
                if (n && *n)
                    return n;
            }
        }
    }
    const char *n = get_str(msg, "name");
    return n && *n ? n : NULL;
}

/* role tool / function → functionResponse in a user turn. A result that is a JSON object is sent
 * as the response itself (LiteLLM's convert_to_gemini_tool_call_result); anything else is
 * wrapped as {"content": "<text>"}. */
static int tool_message(conv *cv, const cJSON *messages, int idx, const cJSON *msg, prov_err *err)
{
    const char *name = tool_name(messages, idx, msg);
    if (!name) {
        prov_err_set(err, 400, "invalid_request_error", "messages",
                     "litellm.BadRequestError: Missing corresponding tool call for tool response "
                     "message (messages[%d], tool_call_id %s)",
                     idx, get_str(msg, "tool_call_id") ? get_str(msg, "tool_call_id") : "null");
        return -1;
    }
    sbuf text;
    sbuf_init(&text);
    content_text(get(msg, "content"), &text);
    const char *s = text.p ? text.p : "";
    while (isspace((unsigned char)*s))
        s++;
    cJSON *response = NULL;
    if (*s == '{') {
        response = cJSON_Parse(s);
        if (!cJSON_IsObject(response)) {
            cJSON_Delete(response);
            response = NULL;
        }
    }
    if (!response) {
        response = cJSON_CreateObject();
        cJSON_AddStringToObject(response, "content", text.p ? text.p : "");
    }
    sbuf_free(&text);
    cJSON *p = cJSON_CreateObject();
    cJSON *fr = cJSON_AddObjectToObject(p, "functionResponse");
    cJSON_AddStringToObject(fr, "name", name);
    cJSON_AddItemToObject(fr, "response", response);
    cJSON_AddItemToArray(parts_for(cv, "user"), p);
    return 0;
}

/* A user turn must carry some text (Vertex: "Unable to submit request because it must have a
 * text parameter"); LiteLLM adds " " to media-only turns. Turns with function responses are
 * left alone. */
static void pad_user_turns(cJSON *contents)
{
    cJSON *c;
    cJSON_ArrayForEach(c, contents)
    {
        if (!streq(get_str(c, "role"), "user"))
            continue;
        cJSON *parts = cJSON_GetObjectItemCaseSensitive(c, "parts");
        bool text = false, fr = false;
        const cJSON *p;
        cJSON_ArrayForEach(p, parts)
        {
            const char *t = get_str(p, "text");
            text = text || (t && *t);
            fr = fr || get(p, "functionResponse");
        }
        if (!text && !fr)
            add_text_part(parts, " ");
    }
}

/* Gemini 3 validates the signature of the first function call in each model turn; turns whose
 * calls carry none get Google's placeholder (LiteLLM does the same). */
static void sign_function_calls(cJSON *contents)
{
    cJSON *c;
    cJSON_ArrayForEach(c, contents)
    {
        if (!streq(get_str(c, "role"), "model"))
            continue;
        cJSON *first = NULL;
        bool signed_any = false;
        cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(c, "parts"))
        {
            if (!get(p, "functionCall"))
                continue;
            if (!first)
                first = p;
            signed_any = signed_any || get(p, "thoughtSignature");
        }
        if (first && !signed_any)
            cJSON_AddStringToObject(first, "thoughtSignature", DUMMY_THOUGHT_SIGNATURE);
    }
}

static int convert_messages(const cJSON *messages, bool gemini3, cJSON *body, prov_err *err)
{
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        prov_err_set(err, 400, "invalid_request_error", "messages",
                     "litellm.BadRequestError: 'messages' must be a non-empty array");
        return -1;
    }
    conv cv = {.contents = cJSON_CreateArray()};
    int i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, messages)
    {
        const char *role = get_str(msg, "role");
        int rc;
        if (streq(role, "system") || streq(role, "developer"))
            rc = system_message(&cv, msg);
        else if (streq(role, "user"))
            rc = user_message(&cv, msg, err);
        else if (streq(role, "assistant"))
            rc = assistant_message(&cv, msg, err);
        else if (streq(role, "tool") || streq(role, "function"))
            rc = tool_message(&cv, messages, i, msg, err);
        else {
            prov_err_set(err, 400, "invalid_request_error", "messages",
                         "litellm.BadRequestError: Invalid message role %s at messages[%d]",
                         role ? role : "(missing)", i);
            rc = -1;
        }
        if (rc < 0) {
            cJSON_Delete(cv.contents);
            cJSON_Delete(cv.sys_parts);
            return -1;
        }
        i++;
    }
    if (cJSON_GetArraySize(cv.contents) == 0) /* system prompt only: Gemini needs a turn */
        parts_for(&cv, "user");
    pad_user_turns(cv.contents);
    if (gemini3)
        sign_function_calls(cv.contents);
    cJSON_AddItemToObject(body, "contents", cv.contents);
    if (cv.sys_parts && cJSON_GetArraySize(cv.sys_parts) > 0) {
        cJSON *si = cJSON_AddObjectToObject(body, "systemInstruction");
        cJSON_AddItemToObject(si, "parts", cv.sys_parts);
    } else {
        cJSON_Delete(cv.sys_parts);
    }
    return 0;
}

/* Built-in Google tools passed through, under their camelCase names. */
static const struct {
    const char *key, *alias;
} GOOGLE_TOOLS[] = {
    {"googleSearch", "google_search"},
    {"googleSearchRetrieval", "google_search_retrieval"},
    {"enterpriseWebSearch", "enterprise_web_search"},
    {"urlContext", "url_context"},
    {"codeExecution", "code_execution"},
};

static bool is_search_tool(const char *key)
{
    return strcmp(key, "codeExecution") != 0;
}

static int function_declaration(cJSON *decls, const cJSON *fn, prov_err *err)
{
    const char *name = get_str(fn, "name");
    if (!name || !*name) {
        prov_err_set(err, 400, "invalid_request_error", "tools",
                     "litellm.BadRequestError: every tool needs function.name");
        return -1;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToArray(decls, d);
    cJSON_AddStringToObject(d, "name", name);
    const char *desc = get_str(fn, "description");
    if (desc)
        cJSON_AddStringToObject(d, "description", desc);
    const cJSON *params = get(fn, "parameters");
    if (cJSON_IsObject(params)) {
        cJSON *s = gemini_schema(params, false, err);
        if (!s)
            return -1;
        if (empty_object_schema(s))
            cJSON_Delete(s);
        else
            cJSON_AddItemToObject(d, "parameters", s);
    }
    return 0;
}

static int convert_tools(const cJSON *req, cJSON *body, prov_err *err)
{
    const cJSON *tools = param(req, "tools");
    const cJSON *functions = param(req, "functions");
    const cJSON *wso = param(req, "web_search_options");
    cJSON *decls = cJSON_CreateArray();
    cJSON *special = cJSON_CreateObject(); /* key → value, one Tool each */
    const cJSON *lists[2] = {cJSON_IsArray(tools) ? tools : NULL,
                             cJSON_IsArray(functions) ? functions : NULL};
    for (int l = 0; l < 2; l++) {
        const cJSON *t;
        cJSON_ArrayForEach(t, lists[l])
        {
            const char *type = get_str(t, "type");
            const cJSON *fn = get(t, "function");
            if (cJSON_IsObject(fn) || (!type && get_str(t, "name"))) {
                if (function_declaration(decls, cJSON_IsObject(fn) ? fn : t, err) < 0)
                    goto fail;
                continue;
            }
            if (streq(type, "web_search") || streq(type, "web_search_preview")) {
                if (!get(special, "googleSearch"))
                    cJSON_AddObjectToObject(special, "googleSearch");
                continue;
            }
            for (size_t g = 0; g < sizeof GOOGLE_TOOLS / sizeof *GOOGLE_TOOLS; g++) {
                const cJSON *v = get(t, GOOGLE_TOOLS[g].key);
                if (!v)
                    v = get(t, GOOGLE_TOOLS[g].alias);
                if (v && !get(special, GOOGLE_TOOLS[g].key))
                    add_dup(special, GOOGLE_TOOLS[g].key, v);
            }
        }
    }
    if (cJSON_IsObject(wso) && !get(special, "googleSearch"))
        cJSON_AddObjectToObject(special, "googleSearch");

    bool have_decls = cJSON_GetArraySize(decls) > 0;
    if (!have_decls && cJSON_GetArraySize(special) == 0) {
        cJSON_Delete(decls);
        cJSON_Delete(special);
        return 0;
    }
    cJSON *out = cJSON_AddArrayToObject(body, "tools");
    if (have_decls) {
        cJSON *tool = cJSON_CreateObject();
        cJSON_AddItemToObject(tool, "functionDeclarations", decls);
        cJSON_AddItemToArray(out, tool);
        decls = NULL;
    }
    cJSON *s;
    cJSON_ArrayForEach(s, special)
    {
        /* Vertex AI refuses search tools next to function declarations; LiteLLM keeps the
         * functions and drops the search tools. */
        if (have_decls && is_search_tool(s->string))
            continue;
        cJSON *tool = cJSON_CreateObject();
        add_dup(tool, s->string, s);
        cJSON_AddItemToArray(out, tool);
    }
    cJSON_Delete(decls);
    cJSON_Delete(special);
    return 0;
fail:
    cJSON_Delete(decls);
    cJSON_Delete(special);
    return -1;
}

/* tool_choice → toolConfig.functionCallingConfig. Returns 1 when the value is one Gemini cannot
 * express (the caller refuses it unless drop_params). */
static int convert_tool_choice(const cJSON *tc, cJSON *body)
{
    const char *mode = NULL, *name = NULL;
    if (cJSON_IsString(tc)) {
        if (strcmp(tc->valuestring, "none") == 0)
            mode = "NONE";
        else if (strcmp(tc->valuestring, "auto") == 0)
            mode = "AUTO";
        else if (strcmp(tc->valuestring, "required") == 0 ||
                 strcmp(tc->valuestring, "any") == 0)
            mode = "ANY";
        else
            return 1;
    } else if (cJSON_IsObject(tc)) {
        name = get_str(get(tc, "function"), "name");
        if (!name)
            name = get_str(tc, "name");
        mode = "ANY";
    } else {
        return 1;
    }
    cJSON *cfg = cJSON_AddObjectToObject(body, "toolConfig");
    cJSON *fcc = cJSON_AddObjectToObject(cfg, "functionCallingConfig");
    cJSON_AddStringToObject(fcc, "mode", mode);
    if (name) {
        cJSON *names = cJSON_AddArrayToObject(fcc, "allowedFunctionNames");
        cJSON_AddItemToArray(names, cJSON_CreateString(name));
    }
    return 0;
}

/* reasoning_effort → thinkingConfig (LiteLLM's budgets: minimal 128 (2.5-flash 1, 2.5-flash-lite
 * 512), low 1024, medium 2048, high 4096, disable/none 0 without thoughts; Gemini 3 models get
 * thinkingLevel instead). NULL for an unknown effort. */
static cJSON *thinking_for_effort(const char *model, const char *effort)
{
    cJSON *tc = cJSON_CreateObject();
    bool include = true;
    if (is_gemini3(model)) {
        bool flash3 = icontains(model, "gemini-3-flash") || icontains(model, "gemini-3.1-flash");
        bool pro31 = icontains(model, "gemini-3.1-pro-preview");
        const char *level;
        if (streq(effort, "minimal"))
            level = flash3 ? "minimal" : "low";
        else if (streq(effort, "low"))
            level = "low";
        else if (streq(effort, "medium"))
            level = flash3 || pro31 ? "medium" : "high";
        else if (streq(effort, "high") || streq(effort, "max") || streq(effort, "xhigh"))
            level = "high";
        else if (streq(effort, "disable") || streq(effort, "none")) {
            level = flash3 ? "minimal" : "low";
            include = false;
        } else {
            cJSON_Delete(tc);
            return NULL;
        }
        cJSON_AddStringToObject(tc, "thinkingLevel", level);
    } else {
        int budget;
        if (streq(effort, "minimal")) {
            if (icontains(model, "gemini-2.5-flash-lite"))
                budget = 512;
            else if (icontains(model, "gemini-2.5-pro"))
                budget = 128;
            else if (icontains(model, "gemini-2.5-flash"))
                budget = 1;
            else
                budget = 128;
        } else if (streq(effort, "low")) {
            budget = 1024;
        } else if (streq(effort, "medium")) {
            budget = 2048;
        } else if (streq(effort, "high") || streq(effort, "max") || streq(effort, "xhigh")) {
            budget = 4096;
        } else if (streq(effort, "disable") || streq(effort, "none")) {
            budget = 0;
            include = false;
        } else {
            cJSON_Delete(tc);
            return NULL;
        }
        cJSON_AddNumberToObject(tc, "thinkingBudget", budget);
    }
    cJSON_AddBoolToObject(tc, "includeThoughts", include);
    return tc;
}

/* Anthropic-style thinking {type, budget_tokens} → thinkingConfig (LiteLLM's
 * _map_thinking_param). */
static cJSON *thinking_for_param(const char *model, const cJSON *th)
{
    bool enabled = streq(get_str(th, "type"), "enabled");
    const cJSON *budget = get(th, "budget_tokens");
    bool zero = cJSON_IsNumber(budget) && budget->valuedouble == 0;
    cJSON *tc = cJSON_CreateObject();
    if (is_gemini3(model)) {
        cJSON_AddBoolToObject(tc, "includeThoughts", enabled && cJSON_IsNumber(budget) && !zero);
    } else {
        if (enabled && !zero)
            cJSON_AddTrueToObject(tc, "includeThoughts");
        if (cJSON_IsNumber(budget))
            cJSON_AddNumberToObject(tc, "thinkingBudget", budget->valuedouble);
    }
    return tc;
}

/* response_format → responseMimeType (+ responseSchema). */
static int convert_response_format(const cJSON *rf, cJSON *gc, prov_err *err)
{
    const char *type = get_str(rf, "type");
    const cJSON *schema = NULL;
    if (get(rf, "response_schema"))
        schema = get(rf, "response_schema");
    else if (streq(type, "json_schema"))
        schema = get(get(rf, "json_schema"), "schema");
    if (streq(type, "json_object") || cJSON_IsObject(schema))
        cJSON_AddStringToObject(gc, "responseMimeType", "application/json");
    else if (streq(type, "text"))
        cJSON_AddStringToObject(gc, "responseMimeType", "text/plain");
    if (cJSON_IsObject(schema)) {
        /* responseSchema (OpenAPI subset, every Gemini version). LiteLLM's newest releases send
         * responseJsonSchema to Gemini 2.0+ instead; responseSchema works on all of them. */
        cJSON *s = gemini_schema(schema, true, err);
        if (!s)
            return -1;
        cJSON_AddItemToObject(gc, "responseSchema", s);
    }
    return 0;
}

static cJSON *build_chat_body(const gkind *k, const prov_ctx *c, const cJSON *req, prov_err *err)
{
    const char *model = model_id(c);
    cJSON *body = cJSON_CreateObject();
    if (!body) {
        oom(err);
        return NULL;
    }
    if (convert_messages(get(req, "messages"), is_gemini3(model), body, err) < 0)
        goto fail;
    if (convert_tools(req, body, err) < 0)
        goto fail;

    const cJSON *tc = param(req, "tool_choice");
    if (!tc)
        tc = param(req, "function_call");
    if (tc && convert_tool_choice(tc, body) && !c->drop_params) {
        char *v = cJSON_PrintUnformatted(tc);
        prov_err_set(err, 400, "invalid_request_error", "tool_choice",
                     "litellm.UnsupportedParamsError: %s doesn't support tool_choice=%s. "
                     "Supported tool_choice values=['auto', 'required', json object]. To drop "
                     "it from the call, set `litellm.drop_params = True.",
                     k->provider, v ? v : "?");
        free(v);
        goto fail;
    }

    /* parallel_tool_calls=false cannot be honoured with several tools (LiteLLM refuses it). */
    const cJSON *ptc = param(req, "parallel_tool_calls");
    const cJSON *tools = param(req, "tools");
    if (cJSON_IsFalse(ptc) && !c->drop_params && cJSON_GetArraySize(tools) > 1) {
        prov_err_set(err, 400, "invalid_request_error", "parallel_tool_calls",
                     "litellm.UnsupportedParamsError: `parallel_tool_calls=False` is not "
                     "supported by Gemini when multiple tools are provided. Specify a single "
                     "tool, or set `parallel_tool_calls=True`. If you want to drop this param, "
                     "set `litellm.drop_params = True`");
        goto fail;
    }

    const cJSON *ss = param(req, "safety_settings");
    if (!ss)
        ss = param(req, "safetySettings");
    if (ss)
        add_dup(body, "safetySettings", ss);

    cJSON *gc = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "generationConfig", gc);
    const cJSON *v;
    if ((v = param(req, "temperature")))
        add_dup(gc, "temperature", v);
    else if (is_gemini3(model)) /* LiteLLM: Gemini 3 misbehaves below 1.0; default it */
        cJSON_AddNumberToObject(gc, "temperature", 1.0);
    if ((v = param(req, "top_p")))
        add_dup(gc, "topP", v);
    if ((v = param(req, "top_k")))
        add_dup(gc, "topK", v);
    if ((v = param(req, "max_completion_tokens")) || (v = param(req, "max_tokens")))
        add_dup(gc, "maxOutputTokens", v);
    if ((v = param(req, "stop"))) {
        if (cJSON_IsString(v)) {
            cJSON *list = cJSON_AddArrayToObject(gc, "stopSequences");
            cJSON_AddItemToArray(list, cJSON_CreateString(v->valuestring));
        } else if (cJSON_IsArray(v)) {
            add_dup(gc, "stopSequences", v);
        }
    }
    if ((v = param(req, "n")))
        add_dup(gc, "candidateCount", v);
    bool no_penalties = param_unsupported("presence_penalty", model);
    if ((v = param(req, "presence_penalty")) && !no_penalties)
        add_dup(gc, "presencePenalty", v);
    if ((v = param(req, "frequency_penalty")) && !no_penalties)
        add_dup(gc, "frequencyPenalty", v);
    if ((v = param(req, "seed")))
        add_dup(gc, "seed", v);
    if ((v = param(req, "logprobs")))
        add_dup(gc, "responseLogprobs", v);
    if ((v = param(req, "top_logprobs")))
        add_dup(gc, "logprobs", v);
    if (cJSON_IsObject(v = param(req, "response_format")) &&
        convert_response_format(v, gc, err) < 0)
        goto fail;
    if (cJSON_IsArray(v = param(req, "modalities"))) {
        cJSON *rm = cJSON_AddArrayToObject(gc, "responseModalities");
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            const char *s = cJSON_IsString(e) ? e->valuestring : "";
            const char *m = streq(s, "text")    ? "TEXT"
                            : streq(s, "image") ? "IMAGE"
                            : streq(s, "audio") ? "AUDIO"
                                                : "MODALITY_UNSPECIFIED";
            cJSON_AddItemToArray(rm, cJSON_CreateString(m));
        }
    }
    if (cJSON_IsObject(v = param(req, "thinking")))
        cJSON_AddItemToObject(gc, "thinkingConfig", thinking_for_param(model, v));
    if ((v = param(req, "reasoning_effort")) && supports_reasoning(model)) {
        const char *effort = cJSON_IsString(v) ? v->valuestring : get_str(v, "effort");
        if (effort) {
            cJSON *th = thinking_for_effort(model, effort);
            if (!th) {
                prov_err_set(err, 400, "invalid_request_error", "reasoning_effort",
                             "litellm.BadRequestError: Invalid reasoning effort: %s", effort);
                goto fail;
            }
            cJSON_DeleteItemFromObjectCaseSensitive(gc, "thinkingConfig");
            cJSON_AddItemToObject(gc, "thinkingConfig", th);
        }
    }
    if (cJSON_GetArraySize(gc) == 0)
        cJSON_DeleteItemFromObjectCaseSensitive(body, "generationConfig");

    if (cJSON_IsString(v = param(req, "cached_content")))
        cJSON_AddStringToObject(body, "cachedContent", v->valuestring);
    if (!k->studio && cJSON_IsObject(v = param(req, "labels")))
        add_dup(body, "labels", v);
    return body;
fail:
    cJSON_Delete(body);
    return NULL;
}

static int chat_request(const gkind *k, const prov_ctx *c, const cJSON *req, prov_http_req *out,
                        prov_err *err)
{
    if (!cJSON_IsObject(req)) {
        prov_err_set(err, 400, "invalid_request_error", NULL,
                     "litellm.BadRequestError: request body must be a JSON object");
        return -1;
    }
    const char *model = model_id(c);
    if (!c->drop_params) {
        sbuf names;
        sbuf_init(&names);
        const char *first = NULL;
        if (unsupported_params(req, model, &names, &first) > 0) {
            unsupported_error(k, model, names.p ? names.p : "", first, err);
            sbuf_free(&names);
            return -1;
        }
        sbuf_free(&names);
    }
    cJSON *body = build_chat_body(k, c, req, err);
    if (!body)
        return -1;
    bool cached = get(body, "cachedContent") != NULL; /* context caching lives in v1beta1 */
    char *url = build_url(k, c, c->stream ? "streamGenerateContent" : "generateContent",
                          c->stream, cached, err);
    size_t len = 0;
    char *text = url ? print(body, &len) : NULL;
    cJSON_Delete(body);
    if (!text) {
        if (url)
            oom(err);
        free(url);
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->url = url;
    out->body = text;
    out->body_len = len;
    add_auth(k, c, out);
    return 0;
}

/* ---- errors ------------------------------------------------------------------------------- */

/* Google's error object ({"error":{"code","message","status"}}, or a one-element array of it as
 * streamGenerateContent answers) → client error. http_status is the HTTP status (or the code in
 * an in-stream error). The message is Google's own text after LiteLLM's prefix. */
static void google_error(int http_status, const cJSON *obj, const char *raw, size_t rawlen,
                         prov_err *err)
{
    if (cJSON_IsArray(obj))
        obj = cJSON_GetArrayItem(obj, 0);
    const cJSON *e = get(obj, "error");
    const char *msg = get_str(e, "message");
    if (!msg && cJSON_IsString(e))
        msg = e->valuestring;
    if (http_status < 400) {
        http_status = (int)num_in(get(e, "code"), 100, 599, 500);
    }
    int status = prov_map_status(http_status);
    /* AI Studio answers a bad key with 400 INVALID_ARGUMENT; LiteLLM reports it as 401 */
    if (msg && strstr(msg, "API key not valid"))
        status = 401;
    const char *cls = prov_exception_class(status);
    if (msg && *msg) {
        prov_err_set(err, status, err_type(status), NULL, "litellm.%s: " EXC_NAME " - %s", cls,
                     msg);
    } else if (raw && rawlen) {
        int n = rawlen > 2000 ? 2000 : (int)rawlen;
        prov_err_set(err, status, err_type(status), NULL, "litellm.%s: " EXC_NAME " - %.*s", cls,
                     n, raw);
    } else {
        prov_err_set(err, status, err_type(status), NULL,
                     "litellm.%s: " EXC_NAME " - upstream returned HTTP %d", cls, http_status);
    }
}

static void error_impl(const prov_ctx *c, int status, const char *body, size_t len,
                       prov_err *err)
{
    cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    google_error(status, j, body, len, err);
    cJSON_Delete(j);
}

static void bad_upstream(prov_err *err, const char *what)
{
    prov_err_set(err, 500, "api_error", NULL,
                 "litellm.InternalServerError: " EXC_NAME
                 " - Error converting to valid response block: %s",
                 what);
}

/* ---- usage -------------------------------------------------------------------------------- */

typedef struct {
    bool present;
    int64_t prompt, candidates, total, cached, thoughts; /* -1 = absent */
} gusage;

static void usage_read(const cJSON *um, gusage *g)
{
    g->present = cJSON_IsObject(um);
    g->prompt = num_i64(get(um, "promptTokenCount"), 0);
    g->candidates = num_i64(get(um, "candidatesTokenCount"), 0);
    g->total = num_i64(get(um, "totalTokenCount"), -1);
    g->cached = num_i64(get(um, "cachedContentTokenCount"), -1);
    g->thoughts = num_i64(get(um, "thoughtsTokenCount"), -1);
}

/* completion_tokens: candidates, plus thoughts unless the candidates count already includes them
 * (LiteLLM's test: prompt + candidates == total means inclusive). */
static int64_t usage_completion(const gusage *g)
{
    int64_t c = g->candidates;
    if (g->thoughts > 0 && g->prompt + g->candidates != g->total)
        c += g->thoughts;
    return c;
}

static int64_t usage_total(const gusage *g)
{
    return g->total >= 0 ? g->total : g->prompt + usage_completion(g);
}

static void usage_add(cJSON *parent, const gusage *g)
{
    cJSON *u = cJSON_AddObjectToObject(parent, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)g->prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)usage_completion(g));
    cJSON_AddNumberToObject(u, "total_tokens", (double)usage_total(g));
    if (g->cached >= 0) {
        cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
        cJSON_AddNumberToObject(d, "cached_tokens", (double)g->cached);
    }
    if (g->thoughts >= 0) {
        cJSON *d = cJSON_AddObjectToObject(u, "completion_tokens_details");
        cJSON_AddNumberToObject(d, "reasoning_tokens", (double)g->thoughts);
    }
}

static void usage_fill(const gusage *g, oai_usage *u)
{
    if (!u || !g->present)
        return;
    u->prompt_tokens = g->prompt;
    u->completion_tokens = usage_completion(g);
    u->total_tokens = usage_total(g);
    u->cached_tokens = g->cached;
    u->cache_creation_tokens = 0; /* Gemini bills cache storage, not cache writes */
}

/* ---- candidates → messages ---------------------------------------------------------------- */

/* LiteLLM's map_finish_reason for Gemini's values. */
static const char *finish_reason(const char *fr)
{
    if (!fr)
        return NULL;
    if (strcmp(fr, "MAX_TOKENS") == 0)
        return "length";
    static const char *const filtered[] = {"SAFETY", "RECITATION", "BLOCKLIST",
                                           "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                                           "IMAGE_PROHIBITED_CONTENT"};
    for (size_t i = 0; i < sizeof filtered / sizeof *filtered; i++)
        if (strcmp(fr, filtered[i]) == 0)
            return "content_filter";
    return "stop"; /* STOP, FINISH_REASON_UNSPECIFIED, OTHER, LANGUAGE, MALFORMED_... */
}

static bool flagged(const char *fr)
{
    return fr && strcmp(finish_reason(fr), "content_filter") == 0;
}

/* What one candidate's parts say. */
typedef struct {
    sbuf text, reasoning;
    cJSON *tool_calls; /* array or NULL */
    cJSON *images;     /* array or NULL */
} cand_out;

static void cand_free(cand_out *o)
{
    sbuf_free(&o->text);
    sbuf_free(&o->reasoning);
    cJSON_Delete(o->tool_calls);
    cJSON_Delete(o->images);
}

/* Tool call ids: Gemini sends none, LiteLLM invents random ones; sluice derives them from the
 * response id and the call's position so a response translates the same way every time. */
static void read_parts(const cJSON *cand, const char *ids, int cidx, int *tool_index,
                       bool stream, cand_out *o)
{
    memset(o, 0, sizeof *o);
    const cJSON *p;
    cJSON_ArrayForEach(p, get(get(cand, "content"), "parts"))
    {
        const char *t = get_str(p, "text");
        const cJSON *fc = get(p, "functionCall");
        const cJSON *inl = get(p, "inlineData");
        if (t) {
            sbuf_adds(cJSON_IsTrue(get(p, "thought")) ? &o->reasoning : &o->text, t);
        } else if (cJSON_IsObject(fc)) {
            if (!o->tool_calls)
                o->tool_calls = cJSON_CreateArray();
            cJSON *call = cJSON_CreateObject();
            if (stream)
                cJSON_AddNumberToObject(call, "index", *tool_index);
            sbuf id;
            sbuf_init(&id);
            if (cidx)
                sbuf_addf(&id, "call_%.100s_%d_%d", ids, cidx, *tool_index);
            else
                sbuf_addf(&id, "call_%.100s_%d", ids, *tool_index);
            const char *sig = get_str(p, "thoughtSignature");
            if (sig && *sig) {
                sbuf_adds(&id, THOUGHT_SEP);
                sbuf_adds(&id, sig);
            }
            cJSON_AddStringToObject(call, "id", id.p ? id.p : "call");
            sbuf_free(&id);
            cJSON_AddStringToObject(call, "type", "function");
            cJSON *fn = cJSON_AddObjectToObject(call, "function");
            const char *name = get_str(fc, "name");
            cJSON_AddStringToObject(fn, "name", name ? name : "");
            const cJSON *args = get(fc, "args");
            char *a = args ? cJSON_PrintUnformatted(args) : NULL;
            cJSON_AddStringToObject(fn, "arguments", a ? a : "{}");
            free(a);
            cJSON_AddItemToArray(o->tool_calls, call);
            (*tool_index)++;
        } else if (cJSON_IsObject(inl)) {
            const char *mime = get_str(inl, "mimeType"), *data = get_str(inl, "data");
            if (!mime || !data)
                continue;
            if (has_prefix(mime, "image/")) {
                /* generated images: LiteLLM's message.images */
                if (!o->images)
                    o->images = cJSON_CreateArray();
                cJSON *img = cJSON_CreateObject();
                cJSON *iu = cJSON_AddObjectToObject(img, "image_url");
                sbuf u;
                sbuf_init(&u);
                sbuf_addf(&u, "data:%s;base64,", mime);
                sbuf_adds(&u, data);
                cJSON_AddStringToObject(iu, "url", u.p ? u.p : "");
                sbuf_free(&u);
                cJSON_AddStringToObject(iu, "detail", "auto");
                cJSON_AddNumberToObject(img, "index", cJSON_GetArraySize(o->images));
                cJSON_AddStringToObject(img, "type", "image_url");
                cJSON_AddItemToArray(o->images, img);
            } else if (!has_prefix(mime, "audio/")) {
                sbuf_addf(&o->text, "data:%s;base64,", mime);
                sbuf_adds(&o->text, data);
            }
        }
    }
}

static int cand_index(const cJSON *cand, int pos)
{
    return (int)num_in(get(cand, "index"), 0, 1 << 20, pos);
}

static void add_str_or_null(cJSON *o, const char *k, const sbuf *b)
{
    if (b->len && b->p)
        cJSON_AddStringToObject(o, k, b->p);
    else
        cJSON_AddNullToObject(o, k);
}

/* The one-choice answer LiteLLM gives when the prompt or the first candidate was blocked. */
static void blocked_choice(cJSON *choices)
{
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddNullToObject(msg, "content");
    cJSON_AddStringToObject(ch, "finish_reason", "content_filter");
    cJSON_AddItemToArray(choices, ch);
}

static const char *id_base(const prov_ctx *c, const char *response_id)
{
    if (c->response_id && *c->response_id)
        return c->response_id;
    return response_id && *response_id ? response_id : "gemini";
}

static int chat_response(const prov_ctx *c, const char *body, size_t len, sbuf *out,
                         oai_usage *u, prov_err *err)
{
    cJSON *r = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(r)) {
        cJSON_Delete(r);
        bad_upstream(err, "the body is not a JSON object");
        return -1;
    }
    if (get(r, "error")) {
        google_error(0, r, body, len, err);
        cJSON_Delete(r);
        return -1;
    }
    const char *rid = get_str(r, "responseId");
    const char *id = rid && *rid ? rid : (c->response_id ? c->response_id : "chatcmpl-gemini");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)c->created);
    cJSON_AddStringToObject(o, "model", c->client_model ? c->client_model : model_id(c));
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");

    const cJSON *cands = get(r, "candidates");
    const cJSON *first = cJSON_GetArrayItem(cands, 0);
    if (get_str(get(r, "promptFeedback"), "blockReason") ||
        flagged(get_str(first, "finishReason"))) {
        blocked_choice(choices);
    } else {
        int pos = 0;
        const cJSON *cand;
        cJSON_ArrayForEach(cand, arr(cands))
        {
            int idx = cand_index(cand, pos++);
            int tool_index = 0;
            cand_out co;
            read_parts(cand, id_base(c, rid), idx, &tool_index, false, &co);
            cJSON *ch = cJSON_CreateObject();
            cJSON_AddNumberToObject(ch, "index", idx);
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            add_str_or_null(msg, "content", &co.text);
            if (co.reasoning.len)
                cJSON_AddStringToObject(msg, "reasoning_content", co.reasoning.p);
            if (co.tool_calls) {
                cJSON_AddItemToObject(msg, "tool_calls", co.tool_calls);
                co.tool_calls = NULL;
                cJSON_AddStringToObject(ch, "finish_reason", "tool_calls");
            } else {
                const char *fr = finish_reason(get_str(cand, "finishReason"));
                cJSON_AddStringToObject(ch, "finish_reason", fr ? fr : "stop");
            }
            if (co.images) {
                cJSON_AddItemToObject(msg, "images", co.images);
                co.images = NULL;
            }
            cand_free(&co);
            cJSON_AddItemToArray(choices, ch);
        }
    }
    gusage g;
    usage_read(get(r, "usageMetadata"), &g);
    usage_add(o, &g);
    usage_fill(&g, u);
    cJSON_Delete(r);

    char *text = print(o, NULL);
    cJSON_Delete(o);
    if (!text) {
        oom(err);
        return -1;
    }
    sbuf_adds(out, text);
    free(text);
    if (out->failed) {
        oom(err);
        return -1;
    }
    return 0;
}

/* ---- streaming ---------------------------------------------------------------------------- */

struct prov_stream {
    char *id;         /* chunk id: the first responseId, else ctx->response_id */
    char *ctx_id;     /* ctx->response_id (tool call ids) */
    char *model;      /* reported model */
    long created;
    bool include_usage;
    bool started;     /* the first event fixed the id */
    bool any_finish;
    bool role_sent[MAX_CAND];
    bool saw_tools[MAX_CAND];
    int tool_index[MAX_CAND];
    gusage usage;
};

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && *s ? s : dflt);
}

static prov_stream *stream_new(const prov_ctx *c)
{
    prov_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ctx_id = dup_or(c->response_id, "");
    s->model = dup_or(c->client_model, model_id(c));
    s->created = c->created;
    s->include_usage = c->include_usage;
    usage_read(NULL, &s->usage); /* all counts absent until usageMetadata arrives */
    if (!s->ctx_id || !s->model) {
        free(s->ctx_id);
        free(s->model);
        free(s);
        return NULL;
    }
    return s;
}

static void stream_free(prov_stream *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->ctx_id);
    free(s->model);
    free(s);
}

static cJSON *chunk_new(const prov_stream *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id ? s->id : (*s->ctx_id ? s->ctx_id : "chatcmpl-gemini"));
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)s->created);
    cJSON_AddStringToObject(o, "model", s->model);
    return o;
}

static int emit(cJSON *chunk, sbuf *out, prov_err *err)
{
    char *text = print(chunk, NULL);
    cJSON_Delete(chunk);
    if (!text) {
        oom(err);
        return -1;
    }
    sbuf_adds(out, "data: ");
    sbuf_adds(out, text);
    sbuf_adds(out, "\n\n");
    free(text);
    if (out->failed) {
        oom(err);
        return -1;
    }
    return 0;
}

/* Per-candidate stream state; indexes past MAX_CAND share the last slot. */
static int slot_of(int idx)
{
    return idx >= 0 && idx < MAX_CAND ? idx : MAX_CAND - 1;
}

/* One GenerateContentResponse → at most one chunk carrying a choice per candidate that said
 * something (or finished). */
static int stream_object(prov_stream *s, const cJSON *r, sbuf *out, oai_usage *u, prov_err *err)
{
    if (get(r, "error")) {
        google_error(0, r, NULL, 0, err);
        return -1;
    }
    const char *rid = get_str(r, "responseId");
    if (!s->started) {
        s->started = true;
        if (rid && *rid && !(s->id = strdup(rid))) {
            oom(err);
            return -1;
        }
    }
    cJSON *chunk = chunk_new(s);
    cJSON *choices = cJSON_AddArrayToObject(chunk, "choices");

    if (get_str(get(r, "promptFeedback"), "blockReason")) {
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", 0);
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (!s->role_sent[0])
            cJSON_AddStringToObject(d, "role", "assistant");
        s->role_sent[0] = true;
        cJSON_AddNullToObject(d, "content");
        cJSON_AddStringToObject(ch, "finish_reason", "content_filter");
        cJSON_AddItemToArray(choices, ch);
        s->any_finish = true;
    }

    int pos = 0;
    const cJSON *cand;
    cJSON_ArrayForEach(cand, arr(get(r, "candidates")))
    {
        int idx = cand_index(cand, pos++);
        int slot = slot_of(idx);
        cand_out co;
        read_parts(cand, *s->ctx_id ? s->ctx_id : (s->id ? s->id : "gemini"), idx,
                   &s->tool_index[slot], true, &co);
        const char *fr = finish_reason(get_str(cand, "finishReason"));
        if (co.tool_calls)
            s->saw_tools[slot] = true;
        if (fr && s->saw_tools[slot] && strcmp(fr, "stop") == 0)
            fr = "tool_calls";
        bool says = co.text.len || co.reasoning.len || co.tool_calls || co.images;
        if (!says && !fr && s->role_sent[slot]) {
            cand_free(&co);
            continue;
        }
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", idx);
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (!s->role_sent[slot]) {
            cJSON_AddStringToObject(d, "role", "assistant");
            s->role_sent[slot] = true;
        }
        if (co.text.len)
            cJSON_AddStringToObject(d, "content", co.text.p);
        if (co.reasoning.len)
            cJSON_AddStringToObject(d, "reasoning_content", co.reasoning.p);
        if (co.tool_calls) {
            cJSON_AddItemToObject(d, "tool_calls", co.tool_calls);
            co.tool_calls = NULL;
        }
        if (co.images) {
            cJSON_AddItemToObject(d, "images", co.images);
            co.images = NULL;
        }
        if (fr) {
            cJSON_AddStringToObject(ch, "finish_reason", fr);
            s->any_finish = true;
        } else {
            cJSON_AddNullToObject(ch, "finish_reason");
        }
        cand_free(&co);
        cJSON_AddItemToArray(choices, ch);
    }

    const cJSON *um = get(r, "usageMetadata");
    if (cJSON_IsObject(um)) {
        usage_read(um, &s->usage);
        usage_fill(&s->usage, u);
    }
    if (cJSON_GetArraySize(choices) == 0) {
        cJSON_Delete(chunk);
        return 0;
    }
    return emit(chunk, out, err);
}

static int stream_event(prov_stream *s, const sse_event *ev, sbuf *out, oai_usage *u,
                        prov_err *err)
{
    if (!s || !ev || !ev->data)
        return 0;
    const char *d = ev->data;
    size_t n = ev->data_len;
    while (n && isspace((unsigned char)*d))
        d++, n--;
    while (n && isspace((unsigned char)d[n - 1]))
        n--;
    if (n == 0 || (n == 6 && memcmp(d, "[DONE]", 6) == 0))
        return 0;
    cJSON *j = cJSON_ParseWithLength(d, n);
    if (!j) {
        bad_upstream(err, "a stream event is not JSON");
        return -1;
    }
    int rc = 0;
    if (cJSON_IsArray(j)) { /* tolerate the JSON-array framing of non-SSE streams */
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            if ((rc = stream_object(s, e, out, u, err)) < 0)
                break;
        }
    } else if (cJSON_IsObject(j)) {
        rc = stream_object(s, j, out, u, err);
    } else {
        bad_upstream(err, "a stream event is not a JSON object");
        rc = -1;
    }
    cJSON_Delete(j);
    return rc;
}

/* LiteLLM's stream wrapper always ends with a finish_reason; if the upstream never sent one,
 * a closing {delta:{}, finish_reason:"stop"} chunk says so. Then the usage chunk (when asked
 * for) and [DONE]. */
static int stream_end(prov_stream *s, sbuf *out, oai_usage *u)
{
    prov_err err = {0};
    int rc = 0;
    if (!s->any_finish) {
        cJSON *chunk = chunk_new(s);
        cJSON *choices = cJSON_AddArrayToObject(chunk, "choices");
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", 0);
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (!s->role_sent[0])
            cJSON_AddStringToObject(d, "role", "assistant");
        cJSON_AddStringToObject(ch, "finish_reason", "stop");
        cJSON_AddItemToArray(choices, ch);
        s->any_finish = true;
        rc = emit(chunk, out, &err);
    }
    if (rc == 0 && s->include_usage) {
        cJSON *chunk = chunk_new(s);
        cJSON_AddArrayToObject(chunk, "choices");
        usage_add(chunk, &s->usage);
        rc = emit(chunk, out, &err);
    }
    usage_fill(&s->usage, u);
    sbuf_adds(out, "data: [DONE]\n\n");
    prov_err_free(&err);
    return rc < 0 || out->failed ? -1 : 0;
}

/* ---- embeddings --------------------------------------------------------------------------- */

static int embed_request(const gkind *k, const prov_ctx *c, const cJSON *req, prov_http_req *out,
                         prov_err *err)
{
    const cJSON *input = get(req, "input");
    cJSON *texts = cJSON_CreateArray();
    if (cJSON_IsString(input)) {
        cJSON_AddItemToArray(texts, cJSON_CreateString(input->valuestring));
    } else if (cJSON_IsArray(input)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, input)
        {
            if (!cJSON_IsString(e)) {
                cJSON_Delete(texts);
                prov_err_set(err, 400, "invalid_request_error", "input",
                             "litellm.BadRequestError: %s embeddings take a string or an array "
                             "of strings as input (token arrays are not supported)",
                             k->provider);
                return -1;
            }
            cJSON_AddItemToArray(texts, cJSON_CreateString(e->valuestring));
        }
    }
    if (cJSON_GetArraySize(texts) == 0) {
        cJSON_Delete(texts);
        prov_err_set(err, 400, "invalid_request_error", "input",
                     "litellm.BadRequestError: 'input' must be a non-empty string or array of "
                     "strings");
        return -1;
    }
    const cJSON *dims = param(req, "dimensions");
    const char *task = get_str(req, "task_type");
    if (!task)
        task = get_str(req, "input_type");
    const char *model = model_id(c);
    cJSON *body = cJSON_CreateObject();
    const cJSON *t;
    if (k->studio) {
        /* AI Studio: batchEmbedContents, one request per input */
        cJSON *reqs = cJSON_AddArrayToObject(body, "requests");
        char mname[256];
        snprintf(mname, sizeof mname, "models/%s", model);
        cJSON_ArrayForEach(t, texts)
        {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "model", mname);
            cJSON *content = cJSON_AddObjectToObject(r, "content");
            cJSON *parts = cJSON_AddArrayToObject(content, "parts");
            add_text_part(parts, t->valuestring);
            if (task)
                cJSON_AddStringToObject(r, "taskType", task);
            if (cJSON_IsNumber(dims))
                add_dup(r, "outputDimensionality", dims);
            cJSON_AddItemToArray(reqs, r);
        }
    } else {
        /* Vertex AI: text embedding models' :predict */
        cJSON *inst = cJSON_AddArrayToObject(body, "instances");
        cJSON_ArrayForEach(t, texts)
        {
            cJSON *i = cJSON_CreateObject();
            cJSON_AddStringToObject(i, "content", t->valuestring);
            if (task)
                cJSON_AddStringToObject(i, "task_type", task);
            cJSON_AddItemToArray(inst, i);
        }
        if (cJSON_IsNumber(dims)) {
            cJSON *p = cJSON_AddObjectToObject(body, "parameters");
            add_dup(p, "outputDimensionality", dims);
        }
    }
    cJSON_Delete(texts);
    char *url = build_url(k, c, k->studio ? "batchEmbedContents" : "predict", false, false, err);
    size_t len = 0;
    char *text = url ? print(body, &len) : NULL;
    cJSON_Delete(body);
    if (!text) {
        if (url)
            oom(err);
        free(url);
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->url = url;
    out->body = text;
    out->body_len = len;
    add_auth(k, c, out);
    return 0;
}

/* Vertex: predictions[i].embeddings.{values, statistics.token_count}; AI Studio:
 * embeddings[i].values (no token counts: usage reports 0 and the oai_usage stays "unknown"). */
static int embed_response(const gkind *k, const prov_ctx *c, const cJSON *req, const char *body,
                          size_t len, sbuf *out, oai_usage *u, prov_err *err)
{
    cJSON *r = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(r)) {
        cJSON_Delete(r);
        bad_upstream(err, "the body is not a JSON object");
        return -1;
    }
    const cJSON *list = get(r, k->studio ? "embeddings" : "predictions");
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(r);
        bad_upstream(err, k->studio ? "no embeddings[]" : "no predictions[]");
        return -1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    int64_t tokens = 0;
    bool counted = false;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *emb = k->studio ? e : get(e, "embeddings");
        const cJSON *values = get(emb, "values");
        const cJSON *tc = get(get(emb, "statistics"), "token_count");
        if (cJSON_IsNumber(tc)) {
            tokens += num_in(tc, 0, INT32_MAX, 0);
            counted = true;
        }
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "object", "embedding");
        cJSON_AddNumberToObject(d, "index", i++);
        if (cJSON_IsArray(values))
            add_dup(d, "embedding", values);
        else
            cJSON_AddArrayToObject(d, "embedding");
        cJSON_AddItemToArray(data, d);
    }
    cJSON_Delete(r);
    cJSON_AddStringToObject(o, "model", c->client_model ? c->client_model : model_id(c));
    cJSON *us = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(us, "prompt_tokens", (double)tokens);
    cJSON_AddNumberToObject(us, "total_tokens", (double)tokens);
    if (u && counted) {
        u->prompt_tokens = tokens;
        u->completion_tokens = 0;
        u->total_tokens = tokens;
    }
    char *text = print(o, NULL);
    cJSON_Delete(o);
    if (!text) {
        oom(err);
        return -1;
    }
    sbuf_adds(out, text);
    free(text);
    if (out->failed) {
        oom(err);
        return -1;
    }
    return 0;
}

/* ---- the two provider tables ----------------------------------------------------------------- */

static int vx_chat_request(const prov_ctx *c, const cJSON *req, prov_http_req *out, prov_err *e)
{
    return chat_request(&K_VERTEX, c, req, out, e);
}
static int st_chat_request(const prov_ctx *c, const cJSON *req, prov_http_req *out, prov_err *e)
{
    return chat_request(&K_STUDIO, c, req, out, e);
}
static int vx_embed_request(const prov_ctx *c, const cJSON *req, prov_http_req *out, prov_err *e)
{
    return embed_request(&K_VERTEX, c, req, out, e);
}
static int st_embed_request(const prov_ctx *c, const cJSON *req, prov_http_req *out, prov_err *e)
{
    return embed_request(&K_STUDIO, c, req, out, e);
}
static int vx_embed_response(const prov_ctx *c, const cJSON *req, const char *body, size_t len,
                             sbuf *out, oai_usage *u, prov_err *e)
{
    return embed_response(&K_VERTEX, c, req, body, len, out, u, e);
}
static int st_embed_response(const prov_ctx *c, const cJSON *req, const char *body, size_t len,
                             sbuf *out, oai_usage *u, prov_err *e)
{
    return embed_response(&K_STUDIO, c, req, body, len, out, u, e);
}

const prov_ops prov_vertex_gemini = {
    .name = "vertex_ai",
    .chat_request = vx_chat_request,
    .chat_response = chat_response,
    .stream_new = stream_new,
    .stream_event = stream_event,
    .stream_end = stream_end,
    .stream_free = stream_free,
    .error = error_impl,
    .embed_request = vx_embed_request,
    .embed_response = vx_embed_response,
};

const prov_ops prov_gemini = {
    .name = "gemini",
    .chat_request = st_chat_request,
    .chat_response = chat_response,
    .stream_new = stream_new,
    .stream_event = stream_event,
    .stream_end = stream_end,
    .stream_free = stream_free,
    .error = error_impl,
    .embed_request = st_embed_request,
    .embed_response = st_embed_response,
};
