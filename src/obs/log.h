/* obs/log — process logs and the one-line-per-request access log, as text or JSON
 * (--json_logs / litellm_settings.json_logs). Each line is one write(2) to stderr, so lines from
 * worker threads never interleave. Nothing here ever receives a secret: callers pass model names,
 * hosts and ids, never keys or request bodies. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdbool.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

void log_init(bool json, bool debug);
bool log_debug_enabled(void);
void log_msg(log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct {
    const char *method, *path, *model, *call_id, *deployment_id;
    int status;
    double upstream_ms; /* < 0: no upstream call */
    long overhead_us;
    bool stream;
    const char *error; /* short reason for non-2xx, or NULL */
} log_access_rec;

void log_access(const log_access_rec *r);

/* Worker threads call log_batch_begin once: their lines then collect in a thread-local buffer
 * written by log_flush (called from a 100 ms timer, and when 32 KiB are waiting) instead of one
 * write(2) each. log_batch_end flushes and frees the buffer at thread exit. */
void log_batch_begin(void);
void log_flush(void);
void log_batch_end(void);

#endif
