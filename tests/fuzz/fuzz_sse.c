/* fuzz_sse — the SSE framer (sse_feed) and the chunk classifier (oai_classify_chunk).
 *
 * The payload is fed twice: cut at the fuzzer's points (see fuzz_common.h), and in one piece.
 * Both runs end the way the gateway ends a stream (a final "\n\n" when bytes are pending). The
 * framer promises that the split does not matter, so both must report the same events (raw
 * lines and data payloads, byte for byte), the same classification of each payload and the same
 * outcome — including the max_event error, which the header promises "however its bytes
 * arrive". flags selects a small max_event for a quarter of the inputs so the limit is reached. */
#include "fuzz_common.h"

typedef struct {
    char *log;
    size_t len, cap;
    int events;
} ev_log;

static void log_add(ev_log *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        while (nc < l->len + n)
            nc *= 2;
        char *nb = realloc(l->log, nc);
        FZ_CHECK(nb != NULL, "realloc");
        l->log = nb;
        l->cap = nc;
    }
    memcpy(l->log + l->len, p, n);
    l->len += n;
}

static int on_event(void *ud, const sse_event *ev)
{
    ev_log *l = ud;
    FZ_CHECK(ev->raw != NULL || ev->raw_len == 0, "raw NULL");
    FZ_CHECK(ev->raw_len > 0, "empty event reported");
    FZ_CHECK(ev->data != NULL || ev->data_len == 0, "data_len without data");
    /* the event's bytes end at a line end, and contain no blank line */
    for (size_t i = 0; i + 1 < ev->raw_len; i++) {
        bool blank = (ev->raw[i] == '\n' && (ev->raw[i + 1] == '\n' || ev->raw[i + 1] == '\r')) ||
                     (ev->raw[i] == '\r' && ev->raw[i + 1] == '\r');
        if (blank) {
            fz_dump("raw", ev->raw, ev->raw_len);
            fz_fail("an event contains a blank line");
        }
    }
    FZ_CHECK(ev->raw[0] != '\n' && ev->raw[0] != '\r', "an event starts with a line end");
    size_t hdr[3] = {ev->raw_len, ev->data ? ev->data_len : (size_t)-1, 0};
    oai_usage u;
    oai_usage_init(&u);
    FZ_CHECK(ev->raw[ev->raw_len - 1] != '\n' && ev->raw[ev->raw_len - 1] != '\r',
             "an event's raw bytes end with a line end");
    if (ev->data) {
        FZ_CHECK(ev->data_len <= ev->raw_len, "data longer than the event");
        hdr[2] = (size_t)oai_classify_chunk(ev->data, ev->data_len, &u);
        FZ_CHECK(hdr[2] <= OAI_CHUNK_OTHER, "chunk kind %zu", hdr[2]);
    }
    log_add(l, hdr, sizeof hdr);
    log_add(l, &u, sizeof u);
    log_add(l, ev->raw, ev->raw_len);
    if (ev->data)
        log_add(l, ev->data, ev->data_len);
    l->events++;
    return 0;
}

/* Feeds like the gateway: stop at the first error; at the end, terminate a pending event. */
static int run(sse_parser *p, ev_log *l, const char *s, size_t n, fz_input *in)
{
    size_t off = 0;
    fz_chunker ch = {in, 0};
    while (off < n) {
        size_t k = in ? fz_next_chunk(&ch, n - off) : n;
        int rc = sse_feed(p, s + off, k, on_event, l);
        FZ_CHECK(rc == 0 || rc == -1, "sse_feed returned %d", rc);
        if (rc < 0)
            return -1;
        off += k;
        /* an event of max_event bytes may wait with its line endings (up to 4 bytes) */
        FZ_CHECK(sse_pending(p) <= p->max_event + 4, "%zu bytes pending, max_event %zu",
                 sse_pending(p), p->max_event);
    }
    if (sse_pending(p)) {
        int rc = sse_feed(p, "\n\n", 2, on_event, l);
        if (rc < 0)
            return -1;
        /* a lone "\r" at the end waits for a possible "\n": the gateway's "\n\n" completes it */
        FZ_CHECK(sse_pending(p) == 0, "%zu bytes still pending after the final blank line",
                 sse_pending(p));
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_input in = fz_split(data, size);
    size_t max_event =
        (in.flags & 0xC0) == 0xC0 ? 1 + (size_t)(in.flags & 0x3F) * 4 : (size_t)1 << 20;

    sse_parser a, b;
    ev_log la = {0}, lb = {0};
    sse_init(&a, max_event);
    sse_init(&b, max_event);
    int ra = run(&a, &la, in.p, in.n, &in);
    int rb = run(&b, &lb, in.p, in.n, NULL);
    /* FUZZ_KNOWN=sse_limit_boundary: an event of max_event bytes passes when its blank line
     * comes in the same read and fails when the line end is buffered first (the pending-bytes
     * check counts terminators, emit_event does not). Then only ask that one run's events be a
     * prefix of the other's. */
    const ev_log *sh = la.len <= lb.len ? &la : &lb, *lo = sh == &la ? &lb : &la;
    bool skip = (ra < 0 || rb < 0) && fz_known("sse_limit_boundary") &&
                (sh->len == 0 || memcmp(sh->log, lo->log, sh->len) == 0);
    if (!skip &&
        (ra != rb || la.len != lb.len || (la.len && memcmp(la.log, lb.log, la.len) != 0))) {
        fz_dump("payload", in.p, in.n);
        fz_fail("split feed: rc %d, %d events; one piece: rc %d, %d events (max_event %zu)", ra,
                la.events, rb, lb.events, max_event);
    }
    sse_free(&a);
    sse_free(&b);
    free(la.log);
    free(lb.log);
    return 0;
}
