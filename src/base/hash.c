/* hash.c: SHA-256 through OpenSSL's EVP interface. */
#include "base/base.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

void ig_sha256(const void *data, size_t len, unsigned char out[IG_SHA256_LEN])
{
    unsigned int n = 0;

    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != IG_SHA256_LEN)
        IG_BUG("sha256 failed");
}

void ig_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hexd[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[in[i] >> 4];
        out[2 * i + 1] = hexd[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void ig_sha256_hex(const void *data, size_t len, char out[IG_SHA256_HEX_LEN + 1])
{
    unsigned char d[IG_SHA256_LEN];

    ig_sha256(data, len, d);
    ig_hex_encode(d, sizeof(d), out);
}

bool ig_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
