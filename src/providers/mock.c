/* providers/mock — see mock.h. */
#include "providers/mock.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jscan.h"
#include "util/sbuf.h"

static int64_t est_tokens(size_t bytes)
{
    return bytes == 0 ? 0 : (int64_t)(bytes + 3) / 4;
}

static void fill_usage(oai_usage *u, size_t prompt_bytes, size_t text_bytes)
{
    u->prompt_tokens = est_tokens(prompt_bytes);
    u->completion_tokens = est_tokens(text_bytes);
    u->total_tokens = u->prompt_tokens + u->completion_tokens;
    u->cached_tokens = -1;
    u->cache_creation_tokens = -1;
}

static void add_usage(sbuf *b, const oai_usage *u)
{
    sbuf_addf(b, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}",
              (long long)u->prompt_tokens, (long long)u->completion_tokens,
              (long long)u->total_tokens);
}

char *mock_completion(prov_endpoint ep, const mock_ctx *c, const char *text, size_t *len,
                      oai_usage *usage)
{
    sbuf b;
    sbuf_init(&b);
    fill_usage(usage, c->prompt_bytes, strlen(text));
    sbuf_adds(&b, "{\"id\":");
    sbuf_add_jstr(&b, c->id);
    if (ep == EP_COMPLETIONS) {
        sbuf_addf(&b, ",\"object\":\"text_completion\",\"created\":%ld,\"model\":", c->created);
        sbuf_add_jstr(&b, c->model);
        sbuf_adds(&b, ",\"choices\":[{\"index\":0,\"text\":");
        sbuf_add_jstr(&b, text);
        sbuf_adds(&b, ",\"logprobs\":null,\"finish_reason\":\"stop\"}]");
    } else {
        sbuf_addf(&b, ",\"object\":\"chat.completion\",\"created\":%ld,\"model\":", c->created);
        sbuf_add_jstr(&b, c->model);
        sbuf_adds(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        sbuf_add_jstr(&b, text);
        sbuf_adds(&b, "},\"finish_reason\":\"stop\"}]");
    }
    sbuf_adds(&b, ",\"usage\":");
    add_usage(&b, usage);
    sbuf_adds(&b, "}");
    return sbuf_take(&b, len);
}

static void chunk_head(sbuf *b, prov_endpoint ep, const mock_ctx *c)
{
    sbuf_adds(b, "data: {\"id\":");
    sbuf_add_jstr(b, c->id);
    sbuf_addf(b, ",\"object\":\"%s\",\"created\":%ld,\"model\":",
              ep == EP_COMPLETIONS ? "text_completion" : "chat.completion.chunk", c->created);
    sbuf_add_jstr(b, c->model);
}

/* Length of the next piece: about three characters, never splitting a UTF-8 sequence. */
static size_t piece_len(const char *s, size_t left)
{
    size_t n = 0, chars = 0;
    while (n < left && chars < 3) {
        n++;
        while (n < left && ((unsigned char)s[n] & 0xC0) == 0x80)
            n++;
        chars++;
    }
    return n;
}

char *mock_stream(prov_endpoint ep, const mock_ctx *c, const char *text, bool include_usage,
                  size_t *len, oai_usage *usage)
{
    sbuf b;
    sbuf_init(&b);
    size_t tl = strlen(text);
    fill_usage(usage, c->prompt_bytes, tl);
    if (ep == EP_CHAT) {
        chunk_head(&b, ep, c);
        sbuf_adds(&b, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                      "\"finish_reason\":null}]}\n\n");
    }
    for (size_t off = 0; off < tl;) {
        size_t n = piece_len(text + off, tl - off);
        chunk_head(&b, ep, c);
        if (ep == EP_COMPLETIONS) {
            sbuf_adds(&b, ",\"choices\":[{\"index\":0,\"text\":");
            sbuf_add_jstrn(&b, text + off, n);
            sbuf_adds(&b, ",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
        } else {
            sbuf_adds(&b, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
            sbuf_add_jstrn(&b, text + off, n);
            sbuf_adds(&b, "},\"finish_reason\":null}]}\n\n");
        }
        off += n;
    }
    chunk_head(&b, ep, c);
    if (ep == EP_COMPLETIONS)
        sbuf_adds(&b, ",\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,"
                      "\"finish_reason\":\"stop\"}]}\n\n");
    else
        sbuf_adds(&b, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    if (include_usage) {
        chunk_head(&b, ep, c);
        sbuf_adds(&b, ",\"choices\":[],\"usage\":");
        add_usage(&b, usage);
        sbuf_adds(&b, "}\n\n");
    }
    sbuf_adds(&b, "data: [DONE]\n\n");
    return sbuf_take(&b, len);
}

/* A deterministic pseudo-embedding: unit-length, seeded by the input's bytes. */
static void vector_for(const char *s, size_t n, float *v, int dims)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    double norm = 0;
    for (int i = 0; i < dims; i++) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        v[i] = (float)((double)(h >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        norm += (double)v[i] * v[i];
    }
    norm = sqrt(norm);
    for (int i = 0; i < dims && norm > 0; i++)
        v[i] = (float)(v[i] / norm);
}

static void add_b64(sbuf *b, const unsigned char *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    sbuf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            x |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            x |= p[i + 2];
        char q[4] = {t[(x >> 18) & 63], t[(x >> 12) & 63], i + 1 < n ? t[(x >> 6) & 63] : '=',
                     i + 2 < n ? t[x & 63] : '='};
        sbuf_add(b, q, 4);
    }
    sbuf_add(b, "\"", 1);
}

static void add_embedding(sbuf *b, int index, const char *s, size_t n, int dims, bool base64)
{
    float v[4096];
    vector_for(s, n, v, dims);
    sbuf_addf(b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", index ? "," : "", index);
    if (base64) {
        unsigned char raw[4096 * 4];
        for (int i = 0; i < dims; i++) {
            uint32_t x;
            memcpy(&x, &v[i], 4);
            raw[i * 4] = (unsigned char)x; /* little-endian float32, as OpenAI sends */
            raw[i * 4 + 1] = (unsigned char)(x >> 8);
            raw[i * 4 + 2] = (unsigned char)(x >> 16);
            raw[i * 4 + 3] = (unsigned char)(x >> 24);
        }
        add_b64(b, raw, (size_t)dims * 4);
    } else {
        sbuf_add(b, "[", 1);
        for (int i = 0; i < dims; i++)
            sbuf_addf(b, "%s%.8g", i ? "," : "", (double)v[i]);
        sbuf_add(b, "]", 1);
    }
    sbuf_add(b, "}", 1);
}

char *mock_embeddings(const char *body, size_t body_len, const mock_ctx *c, size_t *len,
                      oai_usage *usage, char *err, size_t errlen)
{
    jmember m[OAI_MAX_MEMBERS];
    int n = jscan_object(body, body_len, m, OAI_MAX_MEMBERS, NULL);
    if (n > OAI_MAX_MEMBERS)
        n = OAI_MAX_MEMBERS;
    const jmember *in = n > 0 ? jscan_find(body, m, n, "input") : NULL;
    if (!in) {
        snprintf(err, errlen, "'input' is required for embeddings");
        return NULL;
    }
    int dims = 8;
    double d;
    const jmember *dm = jscan_find(body, m, n, "dimensions");
    if (dm && jscan_number(body + dm->val_off, dm->val_len, &d) && d >= 1 && d <= 4096)
        dims = (int)d;
    const jmember *ef = jscan_find(body, m, n, "encoding_format");
    bool base64 = ef && ef->val_len == 8 && memcmp(body + ef->val_off, "\"base64\"", 8) == 0;

    sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"object\":\"list\",\"data\":[");
    const char *v = body + in->val_off;
    int count = 0;
    if (v[0] == '"') {
        add_embedding(&b, count++, v, in->val_len, dims, base64);
    } else if (v[0] == '[') {
        /* items: strings or token arrays each get a vector; a flat token array is one input */
        size_t i = 1;
        bool flat_tokens = false;
        while (i < in->val_len) {
            while (i < in->val_len && strchr(" \t\r\n,", v[i]))
                i++;
            if (i >= in->val_len || v[i] == ']')
                break;
            long l = jscan_value(v + i, in->val_len - i, NULL);
            if (l <= 0)
                break;
            if (v[i] == '"' || v[i] == '[')
                add_embedding(&b, count++, v + i, (size_t)l, dims, base64);
            else
                flat_tokens = true;
            i += (size_t)l;
        }
        if (flat_tokens && count == 0)
            add_embedding(&b, count++, v, in->val_len, dims, base64);
    }
    if (count == 0) {
        sbuf_free(&b);
        snprintf(err, errlen, "'input' must be a string, a list of strings or a list of tokens");
        return NULL;
    }
    usage->prompt_tokens = est_tokens(in->val_len);
    usage->completion_tokens = 0;
    usage->total_tokens = usage->prompt_tokens;
    usage->cached_tokens = -1;
    usage->cache_creation_tokens = -1;
    sbuf_adds(&b, "],\"model\":");
    sbuf_add_jstr(&b, c->model);
    sbuf_addf(&b, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}",
              (long long)usage->prompt_tokens, (long long)usage->total_tokens);
    return sbuf_take(&b, len);
}
