/* hash — SHA-256 helpers (OpenSSL EVP) and constant-time comparison. */
#ifndef SLUICE_HASH_H
#define SLUICE_HASH_H

#include <stdbool.h>
#include <stddef.h>

/* out receives 32 bytes. Parts are hashed in order as one message. */
void sha256_parts(const void *const *parts, const size_t *lens, int nparts, unsigned char out[32]);
void sha256(const void *data, size_t len, unsigned char out[32]);
/* 64 lowercase hex chars + NUL */
void sha256_hex(const void *data, size_t len, char out[65]);
void hex_encode(const unsigned char *d, size_t n, char *out);
/* Compares two secrets in time that depends only on their lengths. */
bool secret_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
