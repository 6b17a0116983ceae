/* jscan — a validating JSON scanner that records where top-level members are, without building
 * a tree. The request hot path needs three things from a chat body: is it valid JSON, where is
 * "model", and what are "stream"/"stream_options". A cJSON parse allocates every node of every
 * message; this walks the bytes once and allocates nothing, so rewriting the body is a handful of
 * memcpy()s of untouched spans (numbers above 2^53 and key order survive byte-for-byte). */
#ifndef SLUICE_JSCAN_H
#define SLUICE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    size_t key_off, key_len; /* the key's bytes between the quotes (escapes not decoded) */
    size_t val_off, val_len; /* the value, exactly as written */
    size_t off;              /* where the member starts (its opening quote) */
} jmember;

#define JSCAN_MAX_DEPTH 256

typedef struct {
    char msg[96];  /* what is wrong, e.g. "unterminated string" */
    size_t offset; /* byte offset of the problem */
} jscan_err;

/* Validates that s[0..n) is exactly one JSON object (surrounding whitespace allowed) and records
 * its top-level members in order into out[0..max). Returns the number of members (which may be
 * larger than max: members past max are validated but not recorded), or -1 with *err filled. */
int jscan_object(const char *s, size_t n, jmember *out, int max, jscan_err *err);

/* Validates one JSON value of any type; returns its length in bytes (from s) or -1. */
long jscan_value(const char *s, size_t n, jscan_err *err);

/* Finds a member by (unescaped, plain ASCII) key; NULL if absent. */
const jmember *jscan_find(const char *s, const jmember *m, int count, const char *key);

/* Helpers on a recorded value span. */
bool jscan_is_true(const char *s, const jmember *m);
bool jscan_is_null(const char *s, const jmember *m);
/* Decodes a JSON string value (with its quotes) into a new NUL-terminated heap string; NULL if the
 * value is not a string or contains a NUL. The caller frees. */
char *jscan_strdup(const char *v, size_t len);
/* Number value as double / long long; false if the value is not a number. */
bool jscan_number(const char *v, size_t len, double *out);

/* Appends s as a JSON string literal (with quotes) to out[*len..cap); returns false if it
 * does not fit. */
bool json_escape(char *out, size_t cap, size_t *len, const char *s, size_t n);
/* Bytes json_escape would need (an upper bound). */
size_t json_escaped_size(size_t n);

#endif
