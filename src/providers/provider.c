/* providers/provider — see provider.h. */
#include "providers/provider.h"

#include <string.h>

static const struct {
    const char *prefix;
    prov_kind kind;
} known[] = {
    {"openai", PROV_OPENAI},
    {"text-completion-openai", PROV_OPENAI},
    {"hosted_vllm", PROV_OPENAI_COMPATIBLE},
    {"openai_compatible", PROV_OPENAI_COMPATIBLE},
    {"openai_like", PROV_OPENAI_COMPATIBLE},
    {"lm_studio", PROV_OPENAI_COMPATIBLE},
    {"llamafile", PROV_OPENAI_COMPATIBLE},
    {"ollama_chat", PROV_OLLAMA_CHAT},
    {"azure", PROV_AZURE},
    {"anthropic", PROV_ANTHROPIC},
    {"vertex_ai", PROV_VERTEX_GEMINI}, /* claude-* models: PROV_VERTEX_CLAUDE, below */
    {"gemini", PROV_GEMINI},
};

prov_kind prov_classify(const char *model, size_t *provider_len)
{
    const char *slash = strchr(model, '/');
    *provider_len = 0;
    if (!slash)
        return PROV_OPENAI; /* LiteLLM treats a bare name like gpt-4o as OpenAI */
    size_t pl = (size_t)(slash - model);
    *provider_len = pl;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strlen(known[i].prefix) == pl && memcmp(known[i].prefix, model, pl) == 0) {
            if (known[i].kind == PROV_VERTEX_GEMINI && strncmp(model + pl + 1, "claude", 6) == 0)
                return PROV_VERTEX_CLAUDE;
            return known[i].kind;
        }
    return PROV_UNIMPLEMENTED;
}

const char *prov_endpoint_path(prov_endpoint ep)
{
    switch (ep) {
    case EP_CHAT: return "/chat/completions";
    case EP_COMPLETIONS: return "/completions";
    case EP_EMBEDDINGS: return "/embeddings";
    }
    return "/";
}

const char *prov_endpoint_name(prov_endpoint ep)
{
    switch (ep) {
    case EP_CHAT: return "chat";
    case EP_COMPLETIONS: return "completion";
    case EP_EMBEDDINGS: return "embedding";
    }
    return "?";
}
