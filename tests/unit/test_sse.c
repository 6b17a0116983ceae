/* Unit tests for the SSE framer in providers/openai (sse_feed). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/openai.h"

/* Records every event as "R<raw>|D<data or ~>\n" (with the lengths, so embedded newlines and
 * empty payloads are unambiguous). */
typedef struct {
    char *log;
    size_t len, cap;
    int events;
    int stop_at;   /* return stop_rc from the stop_at-th event (1-based); 0 = never */
    int stop_rc;
    int with_data; /* events that had a data payload */
} collector;

static void log_add(collector *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 1024;
        while (nc < c->len + n + 1)
            nc *= 2;
        c->log = realloc(c->log, nc);
        assert_non_null(c->log);
        c->cap = nc;
    }
    memcpy(c->log + c->len, s, n);
    c->len += n;
    c->log[c->len] = 0;
}

static int on_event(void *ud, const sse_event *ev)
{
    collector *c = ud;
    char hdr[64];
    int k = snprintf(hdr, sizeof hdr, "R%zu:", ev->raw_len);
    log_add(c, hdr, (size_t)k);
    log_add(c, ev->raw, ev->raw_len);
    if (ev->data) {
        k = snprintf(hdr, sizeof hdr, "|D%zu:", ev->data_len);
        log_add(c, hdr, (size_t)k);
        log_add(c, ev->data, ev->data_len);
        c->with_data++;
    } else {
        assert_int_equal(ev->data_len, 0);
        log_add(c, "|~", 2);
    }
    log_add(c, "\n", 1);
    c->events++;
    if (c->stop_at && c->events == c->stop_at)
        return c->stop_rc;
    return 0;
}

static void coll_free(collector *c)
{
    free(c->log);
    memset(c, 0, sizeof *c);
}

static const char *coll_log(const collector *c)
{
    return c->log ? c->log : "";
}

/* Feeds s in pieces whose sizes come from sizes[] (cycled); every call must return 0. */
static void feed_chunked(sse_parser *p, collector *c, const char *s, size_t n, const size_t *sizes,
                         size_t nsizes)
{
    size_t off = 0, k = 0;
    while (off < n) {
        size_t step = sizes[k++ % nsizes];
        if (step > n - off)
            step = n - off;
        int rc = sse_feed(p, s + off, step, on_event, c);
        if (rc != 0)
            fail_msg("sse_feed returned %d at offset %zu", rc, off);
        off += step;
    }
}

/* A stream exercising every framing rule at once. */
static const char STREAM[] =
    "data: {\"a\":1}\n\n"
    ": keepalive\n\n"
    "event: message\ndata: line1\ndata: line2\n\n"
    "data:nospace\r\n\r\n"
    "id: 7\r\ndata: crlf\r\n\r\n"
    "data: mixed\r\n\n"
    "data: cr-only\r\r"
    "\n\n" /* stray blank lines between events are not events */
    "data:  two spaces\n"
    "retry: 100\n\n"
    "data:\n\n"
    "data: a\ndata:\ndata: b\n\n"
    "data: \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80\n\n"
    "data: [DONE]\n\n";

/* The log line on_event writes for one event; data NULL = no data field. */
static void expect_add(collector *c, const char *raw, const char *data)
{
    sse_event ev = {.raw = raw, .raw_len = strlen(raw), .data = data, .data_len = data ? strlen(data) : 0};
    on_event(c, &ev);
}

/* The log for STREAM, built from the events it holds. */
static char *expected_log(void)
{
    collector c = {0};
    expect_add(&c, "data: {\"a\":1}", "{\"a\":1}");
    expect_add(&c, ": keepalive", NULL);
    expect_add(&c, "event: message\ndata: line1\ndata: line2", "line1\nline2");
    expect_add(&c, "data:nospace", "nospace");
    expect_add(&c, "id: 7\r\ndata: crlf", "crlf");
    expect_add(&c, "data: mixed", "mixed");
    expect_add(&c, "data: cr-only", "cr-only");
    expect_add(&c, "data:  two spaces\nretry: 100", " two spaces");
    expect_add(&c, "data:", "");
    expect_add(&c, "data: a\ndata:\ndata: b", "a\n\nb");
    expect_add(&c, "data: \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80",
               "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80");
    expect_add(&c, "data: [DONE]", "[DONE]");
    return c.log;
}

static char *EXPECTED;

static int setup_expected(void **state)
{
    (void)state;
    EXPECTED = expected_log();
    return EXPECTED ? 0 : -1;
}

static int teardown_expected(void **state)
{
    (void)state;
    free(EXPECTED);
    EXPECTED = NULL;
    return 0;
}

#define ASSERT_LOG(c, ...)                                                                       \
    do {                                                                                         \
        collector want_ = {0};                                                                   \
        const char *const evs_[] = {__VA_ARGS__};                                                \
        for (size_t i_ = 0; i_ < sizeof evs_ / sizeof *evs_; i_ += 2)                            \
            expect_add(&want_, evs_[i_], evs_[i_ + 1]);                                          \
        assert_string_equal(coll_log(c), coll_log(&want_));                                      \
        coll_free(&want_);                                                                       \
    } while (0)

static void test_whole_stream_at_once(void **state)
{
    (void)state;
    sse_parser p;
    sse_init(&p, 4096);
    collector c = {0};
    assert_int_equal(sse_feed(&p, STREAM, sizeof STREAM - 1, on_event, &c), 0);
    assert_string_equal(coll_log(&c), EXPECTED);
    assert_int_equal(c.events, 12);
    assert_int_equal(c.with_data, 11);
    assert_int_equal(sse_pending(&p), 0);
    coll_free(&c);
    sse_free(&p);
}

static void test_one_byte_at_a_time(void **state)
{
    (void)state;
    sse_parser p;
    sse_init(&p, 4096);
    collector c = {0};
    const size_t one = 1;
    feed_chunked(&p, &c, STREAM, sizeof STREAM - 1, &one, 1);
    assert_string_equal(coll_log(&c), EXPECTED);
    assert_int_equal(sse_pending(&p), 0);
    coll_free(&c);
    sse_free(&p);
}

static void test_random_chunkings(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    for (int iter = 0; iter < 300; iter++) {
        size_t sizes[32];
        for (size_t i = 0; i < 32; i++) {
            seed = seed * 1103515245u + 12345u;
            uint32_t r = (seed >> 16) & 0x7fff;
            /* mostly small pieces, sometimes large ones */
            sizes[i] = (r % 8 == 0) ? 1 + r % 97 : 1 + r % 7;
        }
        sse_parser p;
        sse_init(&p, 4096);
        collector c = {0};
        feed_chunked(&p, &c, STREAM, sizeof STREAM - 1, sizes, 32);
        if (strcmp(coll_log(&c), EXPECTED) != 0)
            fail_msg("chunking %d differs:\n%s", iter, coll_log(&c));
        assert_int_equal(sse_pending(&p), 0);
        coll_free(&c);
        sse_free(&p);
    }
    /* every two-piece split */
    for (size_t cut = 0; cut <= sizeof STREAM - 1; cut++) {
        sse_parser p;
        sse_init(&p, 4096);
        collector c = {0};
        assert_int_equal(sse_feed(&p, STREAM, cut, on_event, &c), 0);
        assert_int_equal(sse_feed(&p, STREAM + cut, sizeof STREAM - 1 - cut, on_event, &c), 0);
        if (strcmp(coll_log(&c), EXPECTED) != 0)
            fail_msg("split at %zu differs:\n%s", cut, coll_log(&c));
        coll_free(&c);
        sse_free(&p);
    }
}

static void test_terminators(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"data: x\n\n", "R7:data: x|D1:x\n"},
        {"data: x\r\n\r\n", "R7:data: x|D1:x\n"},
        {"data: x\r\r", NULL}, /* a final \r waits: a \n may follow */
        {"data: x\r\n\n", "R7:data: x|D1:x\n"},
        {"data: x\n\r\n", "R7:data: x|D1:x\n"},
        {"data: x\r\n\r", NULL},
        {"data: x\n", NULL}, /* no blank line yet */
        {"data: x", NULL},
        {"\n\n\r\n", ""},    /* only blank lines: nothing */
        {"data: a\rdata: b\r\n\n", "R15:data: a\rdata: b|D3:a\nb\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sse_parser p;
        sse_init(&p, 1024);
        collector c = {0};
        assert_int_equal(sse_feed(&p, cases[i].in, strlen(cases[i].in), on_event, &c), 0);
        if (cases[i].want) {
            if (strcmp(coll_log(&c), cases[i].want) != 0)
                fail_msg("case %zu: got <%s>", i, coll_log(&c));
            assert_int_equal(sse_pending(&p), 0);
        } else {
            assert_int_equal(c.events, 0);
            assert_int_equal(sse_pending(&p), strlen(cases[i].in));
        }
        coll_free(&c);
        sse_free(&p);
    }
}

static void test_cr_at_end_of_feed(void **state)
{
    (void)state;
    sse_parser p;
    sse_init(&p, 1024);
    collector c = {0};
    /* "\r" ends the feed: nothing may be reported yet */
    assert_int_equal(sse_feed(&p, "data: a\r", 8, on_event, &c), 0);
    assert_int_equal(c.events, 0);
    /* the \n completes a CRLF line ending, not a blank line */
    assert_int_equal(sse_feed(&p, "\n", 1, on_event, &c), 0);
    assert_int_equal(c.events, 0);
    assert_int_equal(sse_feed(&p, "\r", 1, on_event, &c), 0);
    assert_int_equal(c.events, 0);
    assert_int_equal(sse_feed(&p, "\ndata: b\r", 9, on_event, &c), 0);
    assert_string_equal(coll_log(&c), "R7:data: a|D1:a\n");
    /* a lone \r followed by something else is a line ending of its own */
    assert_int_equal(sse_feed(&p, "\rdata: c\n\n", 10, on_event, &c), 0);
    assert_string_equal(coll_log(&c), "R7:data: a|D1:a\nR7:data: b|D1:b\nR7:data: c|D1:c\n");
    assert_int_equal(sse_pending(&p), 0);
    coll_free(&c);
    sse_free(&p);

    /* "data: x\r\r" at the end of one feed, then a new event */
    sse_init(&p, 1024);
    assert_int_equal(sse_feed(&p, "data: x\r\r", 9, on_event, &c), 0);
    assert_int_equal(c.events, 0);
    assert_int_equal(sse_feed(&p, "data: y\n\n", 9, on_event, &c), 0);
    assert_string_equal(coll_log(&c), "R7:data: x|D1:x\nR7:data: y|D1:y\n");
    coll_free(&c);
    sse_free(&p);
}

static void test_comments_and_fields(void **state)
{
    (void)state;
    const char *in = ": ping\nevent: delta\nid: 42\n: another\ndata: {\"x\":1}\n\n";
    sse_parser p;
    sse_init(&p, 1024);
    collector c = {0};
    assert_int_equal(sse_feed(&p, in, strlen(in), on_event, &c), 0);
    /* raw keeps every line (comments and event: included); data only the data: fields */
    const char *raw = ": ping\nevent: delta\nid: 42\n: another\ndata: {\"x\":1}";
    char want[256];
    snprintf(want, sizeof want, "R%zu:%s|D7:{\"x\":1}\n", strlen(raw), raw);
    assert_string_equal(coll_log(&c), want);
    coll_free(&c);

    /* a field named like data but not data: is not data */
    const char *in2 = "database: 1\ndata2: 2\n\n";
    assert_int_equal(sse_feed(&p, in2, strlen(in2), on_event, &c), 0);
    assert_string_equal(coll_log(&c), "R20:database: 1\ndata2: 2|~\n");
    coll_free(&c);
    sse_free(&p);
}

static void test_event_too_large(void **state)
{
    (void)state;
    char big[200];
    memcpy(big, "data: ", 6);
    memset(big + 6, 'x', sizeof big - 6);

    /* one byte at a time: the buffered partial event crosses max_event → -1 */
    sse_parser p;
    sse_init(&p, 64);
    collector c = {0};
    int rc = 0;
    size_t i;
    for (i = 0; i < sizeof big && rc == 0; i++)
        rc = sse_feed(&p, big + i, 1, on_event, &c);
    assert_int_equal(rc, -1);
    assert_true(i > 64 && i <= 70); /* max_event, plus room for its line endings */
    assert_int_equal(c.events, 0);
    sse_free(&p);

    /* one incomplete piece larger than max_event → -1 */
    sse_init(&p, 64);
    assert_int_equal(sse_feed(&p, big, sizeof big, on_event, &c), -1);
    assert_int_equal(c.events, 0);
    sse_free(&p);

    /* the bound is per event: many small events in one feed are fine */
    char many[2000];
    size_t o = 0;
    for (int k = 0; k < 40; k++)
        o += (size_t)snprintf(many + o, sizeof many - o, "data: event-%02d\n\n", k);
    sse_init(&p, 64);
    assert_int_equal(sse_feed(&p, many, o, on_event, &c), 0);
    assert_int_equal(c.events, 40);
    coll_free(&c);
    sse_free(&p);
    sse_init(&p, 64);
    const size_t one = 1;
    feed_chunked(&p, &c, many, o, &one, 1);
    assert_int_equal(c.events, 40);
    coll_free(&c);
    sse_free(&p);
}

static void test_event_too_large_any_chunking(void **state)
{
    (void)state;
    /* The same oversized event must be refused however it arrives: here it comes complete in a
     * single read (as it would from a fast upstream) instead of in pieces. */
    char big[200];
    memcpy(big, "data: ", 6);
    memset(big + 6, 'x', sizeof big - 8);
    big[sizeof big - 2] = '\n';
    big[sizeof big - 1] = '\n';
    sse_parser p;
    sse_init(&p, 64);
    collector c = {0};
    int rc = sse_feed(&p, big, sizeof big, on_event, &c);
    int events = c.events;
    coll_free(&c);
    sse_free(&p);
    if (rc != -1)
        fail_msg("a complete %zu-byte event with max_event 64 gave %d (%d events) in one feed; "
                 "byte by byte it gives -1",
                 sizeof big, rc, events);
}

static void test_callback_stop(void **state)
{
    (void)state;
    const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4";
    sse_parser p;
    sse_init(&p, 1024);
    collector c = {0};
    c.stop_at = 2;
    c.stop_rc = 7;
    assert_int_equal(sse_feed(&p, in, strlen(in), on_event, &c), 7);
    assert_int_equal(c.events, 2);
    assert_string_equal(coll_log(&c), "R7:data: 1|D1:1\nR7:data: 2|D1:2\n");
    /* the rest is kept */
    assert_int_equal(sse_pending(&p), strlen("data: 3\n\ndata: 4"));
    c.stop_at = 0;
    /* a later feed continues with the buffered events, then the new bytes */
    assert_int_equal(sse_feed(&p, "\n\n", 2, on_event, &c), 0);
    assert_int_equal(c.events, 4);
    assert_string_equal(coll_log(&c),
                        "R7:data: 1|D1:1\nR7:data: 2|D1:2\nR7:data: 3|D1:3\nR7:data: 4|D1:4\n");
    assert_int_equal(sse_pending(&p), 0);
    coll_free(&c);
    sse_free(&p);

    /* stopping on the last complete event while bytes were already buffered */
    sse_init(&p, 1024);
    c.stop_at = 1;
    c.stop_rc = -5;
    assert_int_equal(sse_feed(&p, "data: a", 7, on_event, &c), 0);
    assert_int_equal(sse_feed(&p, "\n\ndata: b\n\ndata: c\n\n", 20, on_event, &c), -5);
    assert_int_equal(c.events, 1);
    c.stop_at = 0;
    /* an empty feed drains what is buffered */
    assert_int_equal(sse_feed(&p, "", 0, on_event, &c), 0);
    assert_string_equal(coll_log(&c), "R7:data: a|D1:a\nR7:data: b|D1:b\nR7:data: c|D1:c\n");
    coll_free(&c);
    sse_free(&p);
}

static void test_reuse_after_partial(void **state)
{
    (void)state;
    /* a partial event followed by feeds that complete it and carry more: the buffered path
     * and the direct path agree */
    sse_parser p;
    sse_init(&p, 1024);
    collector c = {0};
    assert_int_equal(sse_feed(&p, "data: {\"choices\":[{\"del", 23, on_event, &c), 0);
    assert_int_equal(sse_pending(&p), 23);
    const char *rest = "ta\":{}}]}\n\ndata: [DONE]\n\n";
    assert_int_equal(sse_feed(&p, rest, strlen(rest), on_event, &c), 0);
    ASSERT_LOG(&c, "data: {\"choices\":[{\"delta\":{}}]}", "{\"choices\":[{\"delta\":{}}]}",
               "data: [DONE]", "[DONE]");
    assert_int_equal(sse_pending(&p), 0);
    /* and once drained, the next feed takes the direct path again */
    assert_int_equal(sse_feed(&p, "data: z\n\n", 9, on_event, &c), 0);
    assert_int_equal(c.events, 3);
    coll_free(&c);
    sse_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_stream_at_once),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_random_chunkings),
        cmocka_unit_test(test_terminators),
        cmocka_unit_test(test_cr_at_end_of_feed),
        cmocka_unit_test(test_comments_and_fields),
        cmocka_unit_test(test_event_too_large),
        cmocka_unit_test(test_event_too_large_any_chunking),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_reuse_after_partial),
    };
    return cmocka_run_group_tests(tests, setup_expected, teardown_expected);
}
