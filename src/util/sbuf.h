/* sbuf — a growable byte buffer for building small responses. On allocation failure the buffer
 * enters a sticky failed state (sb->failed) and further appends are no-ops, so builders check
 * once at the end instead of after every append. */
#ifndef SLUICE_SBUF_H
#define SLUICE_SBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

void sbuf_init(sbuf *b);
void sbuf_free(sbuf *b);
bool sbuf_reserve(sbuf *b, size_t extra);
void sbuf_add(sbuf *b, const char *s, size_t n);
void sbuf_adds(sbuf *b, const char *s);
void sbuf_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal with quotes; NULL → null. */
void sbuf_add_jstr(sbuf *b, const char *s);
void sbuf_add_jstrn(sbuf *b, const char *s, size_t n);
/* Decimal integer, and milliseconds with three decimals ("12.345"), without printf. */
void sbuf_add_u64(sbuf *b, unsigned long long v);
void sbuf_add_ms3(sbuf *b, double ms);
/* The same into out (NUL-terminated); returns the length. */
size_t fmt_ms3(char out[32], double ms);
/* NUL-terminates and hands the buffer over (caller frees); NULL if building failed. */
char *sbuf_take(sbuf *b, size_t *len);

#endif
