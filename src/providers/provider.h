/* providers/provider — the provider families sluice knows by name, and which it serves today.
 * A deployment's `model: <provider>/<name>` picks one; unknown or not-yet-implemented providers
 * still load (listed in /v1/models) and answer 400 naming the provider. */
#ifndef SLUICE_PROVIDER_H
#define SLUICE_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    PROV_OPENAI,            /* openai/ and bare OpenAI model names */
    PROV_OPENAI_COMPATIBLE, /* hosted_vllm/, openai_compatible/, openai_like/, lm_studio/ ... */
    PROV_OLLAMA_CHAT,       /* ollama_chat/: Ollama's OpenAI-compatible /v1 API */
    PROV_AZURE,             /* azure/<deployment>: OpenAI format, Azure URLs and api-key */
    PROV_ANTHROPIC,         /* anthropic/<model>: Messages API */
    PROV_VERTEX_GEMINI,     /* vertex_ai/<gemini model>: generateContent */
    PROV_VERTEX_CLAUDE,     /* vertex_ai/claude-*: rawPredict */
    PROV_GEMINI,            /* gemini/<model>: AI Studio */
    PROV_UNIMPLEMENTED,     /* a provider LiteLLM has and sluice does not (yet) */
} prov_kind;

/* OpenAI-shaped upstreams: bodies pass through byte for byte. */
static inline bool prov_is_openai_shaped(prov_kind k)
{
    return k == PROV_OPENAI || k == PROV_OPENAI_COMPATIBLE || k == PROV_OLLAMA_CHAT ||
           k == PROV_AZURE;
}

typedef enum { EP_CHAT, EP_COMPLETIONS, EP_EMBEDDINGS } prov_endpoint;

/* Splits "provider/model". Returns the kind; *provider_len is the provider prefix length (0 when
 * the string has no known prefix and is treated as an OpenAI model name). */
prov_kind prov_classify(const char *model, size_t *provider_len);
/* The path appended to api_base for an endpoint ("/chat/completions", ...). */
const char *prov_endpoint_path(prov_endpoint ep);
const char *prov_endpoint_name(prov_endpoint ep);

#endif
