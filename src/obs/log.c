/* obs/log — see log.h. */
#include "obs/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/sbuf.h"

static bool g_json, g_debug;

/* Worker threads batch their lines: one write(2) per flush instead of one per request. */
static _Thread_local sbuf t_batch;
static _Thread_local bool t_batching;
#define BATCH_FLUSH_BYTES (32 * 1024)

static void write_all(const char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(2, p + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void log_batch_begin(void)
{
    t_batching = true;
}

void log_flush(void)
{
    if (t_batch.len) {
        write_all(t_batch.p, t_batch.len);
        t_batch.len = 0;
    }
}

void log_batch_end(void)
{
    log_flush();
    sbuf_free(&t_batch);
    t_batching = false;
}

void log_init(bool json, bool debug)
{
    g_json = json;
    g_debug = debug;
}

bool log_debug_enabled(void)
{
    return g_debug;
}

static void timestamp(char *out, size_t n)
{
    /* the seconds part is formatted once per second per thread */
    static _Thread_local time_t t_sec = -1;
    static _Thread_local char t_prefix[24];
    static _Thread_local size_t t_plen;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec != t_sec) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        t_plen = strftime(t_prefix, sizeof t_prefix, "%Y-%m-%dT%H:%M:%S", &tm);
        t_sec = tv.tv_sec;
    }
    if (n < t_plen + 6)
        return;
    memcpy(out, t_prefix, t_plen);
    unsigned ms = (unsigned)(tv.tv_usec / 1000);
    out[t_plen] = '.';
    out[t_plen + 1] = (char)('0' + ms / 100);
    out[t_plen + 2] = (char)('0' + ms / 10 % 10);
    out[t_plen + 3] = (char)('0' + ms % 10);
    out[t_plen + 4] = 'Z';
    out[t_plen + 5] = 0;
}

static const char *level_name(log_level l)
{
    switch (l) {
    case LOG_DEBUG: return "debug";
    case LOG_INFO: return "info";
    case LOG_WARN: return "warning";
    case LOG_ERROR: return "error";
    }
    return "info";
}

/* Ends the record that starts at b->p[start] and writes it (or leaves it in the thread's batch
 * when b is the batch). One record, one line: a model name or message carrying a newline
 * cannot forge a record. */
static void finish_record(sbuf *b, size_t start)
{
    for (size_t i = start; i < b->len; i++)
        if ((unsigned char)b->p[i] < 0x20)
            b->p[i] = ' ';
    sbuf_add(b, "\n", 1);
    if (b->failed) {
        if (b == &t_batch)
            sbuf_free(&t_batch); /* out of memory: drop the batch rather than the process */
        return;
    }
    if (b != &t_batch)
        write_all(b->p, b->len);
    else if (t_batch.len >= BATCH_FLUSH_BYTES)
        log_flush();
}

static void emit(sbuf *b)
{
    if (t_batching) {
        size_t start = t_batch.len;
        sbuf_add(&t_batch, b->p, b->len);
        finish_record(&t_batch, start);
    } else {
        finish_record(b, 0);
    }
}

void log_msg(log_level lvl, const char *fmt, ...)
{
    if (lvl == LOG_DEBUG && !g_debug)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[40];
    timestamp(ts, sizeof ts);
    sbuf b;
    sbuf_init(&b);
    if (g_json) {
        sbuf_addf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_name(lvl));
        sbuf_add_jstr(&b, msg);
        sbuf_adds(&b, "}");
    } else {
        sbuf_addf(&b, "%s %-7s %s", ts, level_name(lvl), msg);
    }
    emit(&b);
    sbuf_free(&b);
}

void log_access(const log_access_rec *r)
{
    char ts[40];
    timestamp(ts, sizeof ts);
    sbuf local;
    sbuf_init(&local);
    /* straight into the thread's batch when there is one: no temporary buffer per request */
    sbuf *b = t_batching ? &t_batch : &local;
    size_t start = b->len;
    if (g_json) {
        sbuf_adds(b, "{\"ts\":\"");
        sbuf_adds(b, ts);
        sbuf_adds(b, "\",\"level\":\"info\",\"msg\":\"access\",\"method\":");
        sbuf_add_jstr(b, r->method);
        sbuf_adds(b, ",\"path\":");
        sbuf_add_jstr(b, r->path);
        sbuf_adds(b, ",\"status\":");
        sbuf_add_u64(b, (unsigned)r->status);
        sbuf_adds(b, ",\"model\":");
        sbuf_add_jstr(b, r->model);
        sbuf_adds(b, ",\"upstream_ms\":");
        if (r->upstream_ms >= 0)
            sbuf_add_ms3(b, r->upstream_ms);
        else
            sbuf_adds(b, "null");
        sbuf_adds(b, ",\"overhead_us\":");
        sbuf_add_u64(b, r->overhead_us > 0 ? (unsigned long long)r->overhead_us : 0);
        sbuf_adds(b, r->stream ? ",\"stream\":true,\"call_id\":" : ",\"stream\":false,\"call_id\":");
        sbuf_add_jstr(b, r->call_id);
        if (r->deployment_id) {
            sbuf_adds(b, ",\"model_id\":");
            sbuf_add_jstr(b, r->deployment_id);
        }
        if (r->error) {
            sbuf_adds(b, ",\"error\":");
            sbuf_add_jstr(b, r->error);
        }
        sbuf_adds(b, "}");
    } else {
        sbuf_adds(b, ts);
        sbuf_adds(b, " access  ");
        sbuf_adds(b, r->method);
        sbuf_add(b, " ", 1);
        sbuf_adds(b, r->path);
        sbuf_add(b, " ", 1);
        sbuf_add_u64(b, (unsigned)r->status);
        sbuf_adds(b, " model=");
        sbuf_adds(b, r->model ? r->model : "-");
        sbuf_adds(b, " upstream_ms=");
        if (r->upstream_ms >= 0)
            sbuf_add_ms3(b, r->upstream_ms);
        else
            sbuf_adds(b, "-");
        sbuf_adds(b, " overhead_us=");
        sbuf_add_u64(b, r->overhead_us > 0 ? (unsigned long long)r->overhead_us : 0);
        if (r->stream)
            sbuf_adds(b, " stream");
        sbuf_adds(b, " call_id=");
        sbuf_adds(b, r->call_id ? r->call_id : "-");
        if (r->error) {
            sbuf_adds(b, " error=\"");
            sbuf_adds(b, r->error);
            sbuf_adds(b, "\"");
        }
    }
    finish_record(b, start);
    sbuf_free(&local);
}
