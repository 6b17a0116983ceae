/* spend — what a call cost and where that goes until the database has it.
 *
 * price.c: the price table in LiteLLM's model_prices_and_context_window.json format (our own
 *   table for the models sluice's providers serve, src/spend/prices.json, embedded at build
 *   time), optionally layered with a user file in the same format; lookup in LiteLLM's order;
 *   cost from token counts including prompt-cache reads and writes; admission estimates.
 * accum.c: the in-memory batch of spend-log rows between flushes, bounded, spilling to a local
 *   JSON-lines file past the bound so nothing is lost while the database is away.
 *
 * An unknown price is never a silent zero: lookups and spend_cost say whether the price was
 * known, and the caller writes cost_known = 0 and warns once per model (spend_warn_once). */
#ifndef SLUICE_SPEND_H
#define SLUICE_SPEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "providers/openai.h"

/* ---- prices -------------------------------------------------------------------------------- */

#define SPEND_UNSET (-1.0) /* a cost field the entry does not set */

/* One model's token prices (USD per token), the fields of LiteLLM's price map that sluice uses.
 * Optional fields are SPEND_UNSET when absent. A value type: copy it freely. */
typedef struct {
    double input_cost_per_token;
    double output_cost_per_token;
    double cache_read_input_token_cost;     /* absent: input_cost_per_token */
    double cache_creation_input_token_cost; /* absent: input_cost_per_token */
    /* Long-context tiers, applied when the prompt (all input tokens) exceeds the threshold;
     * absent: the base rate. */
    double input_cost_per_token_above_128k_tokens;
    double output_cost_per_token_above_128k_tokens;
    double input_cost_per_token_above_200k_tokens;
    double output_cost_per_token_above_200k_tokens;
    double cache_read_input_token_cost_above_200k_tokens;
    double cache_creation_input_token_cost_above_200k_tokens;
    int64_t max_input_tokens, max_output_tokens; /* 0: unknown */
    char key[128];         /* the table key that matched ("" when only overrides priced it) */
    char provider[40];     /* litellm_provider */
    char mode[24];         /* "chat", "embedding", ... */
} spend_price;

/* Per-deployment prices from litellm_params (input_cost_per_token, output_cost_per_token,
 * cache_read_input_token_cost, cache_creation_input_token_cost); SPEND_UNSET = not given. */
typedef struct {
    double input_cost_per_token;
    double output_cost_per_token;
    double cache_read_input_token_cost;
    double cache_creation_input_token_cost;
} spend_override;

void spend_override_init(spend_override *o);

typedef struct spend_table spend_table;

/* A table holding the shipped prices (NULL on allocation failure). */
spend_table *spend_table_new(void);
void spend_table_free(spend_table *t);
/* Layers a LiteLLM-format JSON object over t: for a model already present, the fields given
 * replace the shipped ones (as litellm.register_model merges); new models are added. Entries
 * without a token price (images, audio, "sample_spec") are ignored. Returns the number of
 * entries read, or -1 with a message in err (t unchanged). */
int spend_table_merge_json(spend_table *t, const char *json, size_t len, char *err,
                           size_t errlen);
int spend_table_merge_file(spend_table *t, const char *path, char *err, size_t errlen);
size_t spend_table_count(const spend_table *t);

/* Finds a model's price, LiteLLM's order: base_model (model_info.base_model), then model as
 * configured ("provider/name", e.g. litellm_params.model), then the bare name, then
 * response_model (what the upstream reported, e.g. Azure's real model behind a deployment
 * name) with and without the provider; each candidate is tried as given and with a Vertex
 * "@version" suffix removed. Any argument may be NULL. Overrides (may be NULL) then replace
 * individual fields; a deployment that sets input or output cost is priced even when no entry
 * matched (unset fields count 0). Returns false (out->key "") when nothing priced the model. */
bool spend_table_lookup(const spend_table *t, const char *base_model, const char *model,
                        const char *response_model, const spend_override *ov, spend_price *out);

/* The process-wide table: the shipped prices, plus whatever spend_price_load_file layered on.
 * Safe from any thread; reloading swaps the table while lookups copy out of the old one. */
int spend_price_load_file(const char *path, char *err, size_t errlen);
bool spend_price_lookup(const char *base_model, const char *model, const char *response_model,
                        const spend_override *ov, spend_price *out);
/* Whether the build embedded src/spend/prices.json (false means every model is unknown until
 * a file is loaded: the build is missing include(src/spend/CMakeLists.txt)). */
bool spend_prices_embedded(void);

/* ---- cost ---------------------------------------------------------------------------------- */

/* Token counts of one call in OpenAI's convention: prompt_tokens counts every input token,
 * including cache reads and cache writes (sluice's Anthropic decoder reports it that way too).
 * Negative = not reported (counts as 0). */
typedef struct {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cache_read_tokens;     /* prompt_tokens_details.cached_tokens / cache_read_input_tokens */
    int64_t cache_creation_tokens; /* Anthropic cache_creation_input_tokens */
} spend_usage;

/* From a provider's oai_usage (cached_tokens → cache reads), plus the cache writes, which
 * oai_usage does not carry (pass -1 when unknown). */
void spend_usage_from_oai(const oai_usage *u, int64_t cache_creation_tokens, spend_usage *out);

/* cost = cache reads × cache_read rate + cache writes × cache_creation rate + the other prompt
 * tokens × input rate + completion tokens × output rate (each rate falling back to the input
 * rate when absent; the above-128k/200k tier when the prompt exceeds it). Returns false, with
 * *cost = 0, when p is NULL or priced nothing — the caller records cost_known = 0. */
bool spend_cost(const spend_price *p, const spend_usage *u, double *cost);

#define SPEND_DEFAULT_MAX_TOKENS 4096

/* A request's likely cost for budget reservation: about prompt_bytes / 4 prompt tokens and
 * max_tokens output tokens (<= 0: SPEND_DEFAULT_MAX_TOKENS, or the model's max_output_tokens
 * when smaller). 0 when p is NULL. */
double spend_estimate(const spend_price *p, size_t prompt_bytes, int64_t max_tokens);

/* True the first time a model is named (process-wide, thread-safe): "no price for model X,
 * spend recorded as unknown" is then logged once per model. After 4096 distinct names it
 * returns false, so a client inventing names cannot grow the set or flood the log. */
bool spend_warn_once(const char *model);

/* ---- accumulator --------------------------------------------------------------------------- */

/* One sluice_spend_logs row (src/store/migrations/001_init.sql), owned by the accumulator.
 * Strings may be NULL where the column is nullable; status NULL → "success", metadata NULL →
 * "{}", call_type NULL → "". Times are ISO-8601 UTC text ("2026-11-22T01:02:03Z"). */
typedef struct {
    const char *request_id, *call_type, *api_key;
    double spend;
    bool cost_known;
    int64_t total_tokens, prompt_tokens, completion_tokens;
    int64_t cache_read_tokens, cache_creation_tokens;
    const char *start_time, *end_time;
    const char *model, *model_group, *model_id, *custom_llm_provider;
    const char *user_id, *team_id, *organization_id, *end_user;
    const char *status, *metadata;
} spend_row;

typedef enum { SPEND_KEY, SPEND_USER, SPEND_TEAM, SPEND_ORG } spend_entity;

/* UPDATE <table> SET spend = spend + amount WHERE <id column> = id. */
typedef struct {
    spend_entity kind;
    char *id;
    double amount;
} spend_increment;

/* What one flush writes. Increments are derived from the rows (api_key → key, user_id,
 * team_id, organization_id, for rows with cost_known and spend > 0) plus those added with
 * spend_accum_add_increment, summed per entity. */
typedef struct {
    spend_row **rows;
    size_t nrows;
    spend_increment *incs;   /* everything to apply, one per entity */
    size_t nincs;
    spend_increment *extra;  /* the part of incs not derived from rows (kept for restore) */
    size_t nextra;
    size_t from_spill;       /* rows re-read from the spill file */
    size_t bad_lines;        /* spill lines that did not parse (e.g. cut by a crash), skipped */
} spend_batch;

typedef struct spend_accum spend_accum;

#define SPEND_ACCUM_MAX_ROWS 10000
#define SPEND_SPILL_DEFAULT "./sluice-spend-spill.jsonl"

/* max_rows <= 0: SPEND_ACCUM_MAX_ROWS; spill_path NULL: SPEND_SPILL_DEFAULT. The spill file is
 * not touched until needed; rows a previous process left in it are picked up by the first
 * spend_accum_take. NULL on allocation failure. */
spend_accum *spend_accum_new(size_t max_rows, const char *spill_path);
/* Frees the accumulator and every row still in memory (spilled rows stay in the file). */
void spend_accum_free(spend_accum *a);

/* Copies the row (one allocation). Past max_rows in memory, the row is appended to the spill
 * file instead (one write(2) per line, under the spill lock only — the slow path is only taken
 * while the flusher is behind or the database away). Returns 0 in memory, 1 spilled, -1 lost
 * (no memory, spill write failed: counted in stats.dropped). */
int spend_accum_add(spend_accum *a, const spend_row *row);
/* An increment with no row of its own. Returns false on allocation failure. */
bool spend_accum_add_increment(spend_accum *a, spend_entity kind, const char *id, double amount);

/* Hands every row and increment in memory to the flusher, plus up to max_rows rows re-read from
 * the spill file (the file is truncated once fully read; call again while stats.spill_pending to
 * drain a long backlog). The accumulator is then empty. Returns the number of rows in the batch,
 * or -1 when the spill file exists but cannot be read (the in-memory part is still in the batch)
 * or memory ran out summing increments (then everything stayed in the accumulator and the batch
 * is empty). One spill file per process: two processes must not share a path. */
long spend_accum_take(spend_accum *a, spend_batch *out);
/* The flusher could not write the batch: put everything back — rows to memory up to half of
 * max_rows, the rest to the spill file, written by the calling thread. The batch is emptied
 * (free it as usual). */
void spend_accum_restore(spend_accum *a, spend_batch *b);
void spend_batch_free(spend_batch *b);

typedef struct {
    size_t rows_in_memory;
    size_t rows_spilled;     /* appended to the spill file since start */
    size_t rows_dropped;     /* could not be kept anywhere */
    bool spill_pending;      /* the spill file holds rows not yet taken */
} spend_accum_stats;

void spend_accum_get_stats(spend_accum *a, spend_accum_stats *st);

/* Serialization used by the spill file, exposed for tests and tooling: one JSON object with the
 * column names as keys, no newline. Heap string (caller frees); NULL on allocation failure. */
char *spend_row_to_json(const spend_row *r);

#endif
