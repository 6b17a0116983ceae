/* fuzz_openai_to_provider — an OpenAI chat request (cJSON_Parse of the input, as the gateway
 * parses bodies bound for a translated upstream) through chat_request of every translator:
 * prov_anthropic, prov_vertex_claude, prov_vertex_gemini, prov_gemini, each with stream off and
 * on and drop_params off and on (flags vary the rest of the ctx: api_base, location, include_usage,
 * anthropic-version/-beta). A successful translation must be a sendable request: URL without
 * whitespace, JSON object body, header lines without CR/LF (fuzz_common.h). */
#include "fuzz_prov.h"

static const struct {
    const prov_ops *ops;
    const char *model;
} targets[] = {
    {&prov_anthropic, "claude-3-5-sonnet-20241022"},
    {&prov_anthropic, "claude-opus-4-1-20250805"},
    {&prov_vertex_claude, "claude-3-5-sonnet-v2@20241022"},
    {&prov_vertex_gemini, "gemini-2.0-flash"},
    {&prov_vertex_gemini, "gemini-3-pro-preview"},
    {&prov_gemini, "gemini-2.5-flash"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_input in = fz_split(data, size);
    cJSON *req = cJSON_ParseWithLength(in.p, in.n);
    if (!req)
        return 0;
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) {
        for (int v = 0; v < 4; v++) {
            uint8_t flags = (uint8_t)((in.flags & ~0x04) | ((v & 1) ? 0x04 : 0));
            prov_ctx c = fz_ctx(targets[t].model, flags, (v & 2) != 0);
            fz_chat_request(targets[t].ops->name, targets[t].ops, &c, req);
        }
    }
    cJSON_Delete(req);
    return 0;
}
