/* id.h: time-ordered 128-bit ids (UUIDv7, RFC 9562) and secure random bytes (OpenSSL).
 *
 * Rendered "task_<32 hex>" or as a dashed UUID where a dialect expects one; both parse. */
#ifndef IG_ID_H
#define IG_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ig_id {
    unsigned char b[16];
};

#define IG_ID_HEX_LEN 32
#define IG_ID_UUID_LEN 36

void ig_id_new(struct ig_id *id);
/* The 48-bit millisecond timestamp of a UUIDv7. */
int64_t ig_id_time_ms(const struct ig_id *id);
/* 32 lower-case hex digits + NUL (out >= 33 bytes). */
void ig_id_hex(const struct ig_id *id, char *out);
/* 8-4-4-4-12 + NUL (out >= 37 bytes). */
void ig_id_uuid(const struct ig_id *id, char *out);
/* Accepts "<32 hex>", "task_<32 hex>" (any prefix ending in '_' listed in the call) or a
 * dashed UUID, either case. Returns false for anything else. */
bool ig_id_parse(const char *s, struct ig_id *id);
bool ig_id_equal(const struct ig_id *a, const struct ig_id *b);
bool ig_id_is_zero(const struct ig_id *id);

/* Fill with cryptographically secure random bytes; aborts if the CSPRNG fails. */
void ig_random_bytes(void *p, size_t n);

#endif
