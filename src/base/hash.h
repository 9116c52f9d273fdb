/* hash.h: SHA-256 (OpenSSL) and constant-time comparison. */
#ifndef IG_HASH_H
#define IG_HASH_H

#include <stdbool.h>
#include <stddef.h>

#define IG_SHA256_LEN 32
#define IG_SHA256_HEX_LEN 64

void ig_sha256(const void *data, size_t len, unsigned char out[IG_SHA256_LEN]);
/* 64 lower-case hex digits + NUL. */
void ig_sha256_hex(const void *data, size_t len, char out[IG_SHA256_HEX_LEN + 1]);
void ig_hex_encode(const unsigned char *in, size_t n, char *out);
/* Constant-time equality (CRYPTO_memcmp). */
bool ig_ct_equal(const void *a, const void *b, size_t n);

#endif
