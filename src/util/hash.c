/* hash — see hash.h. */
#include "util/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

void sha256_parts(const void *const *parts, const size_t *lens, int nparts, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 32;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (int i = 0; i < nparts; i++)
        EVP_DigestUpdate(ctx, parts[i], lens[i]);
    EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
}

void sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void hex_encode(const unsigned char *d, size_t n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = h[d[i] >> 4];
        out[2 * i + 1] = h[d[i] & 15];
    }
    out[2 * n] = 0;
}

void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    sha256(data, len, d);
    hex_encode(d, 32, out);
}

bool secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Time depends only on the lengths, never on where the bytes differ. Hashing both sides
     * first would hide the length too, but cost two EVP digests (~6% of a proxied request);
     * the length of an sk- key is no secret worth that. */
    if (alen != blen)
        return false;
    return CRYPTO_memcmp(a, b, alen) == 0;
}
