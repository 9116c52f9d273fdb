/* keys.h: API keys. A key is "igk_" + 43 base62 characters of randomness (256 bits from
 * OpenSSL's CSPRNG) + 6 base62 characters of checksum, so a typo or a look-alike is refused
 * before any lookup and a leaked key is easy for secret scanners to recognise. Only the
 * SHA-256 of a key is stored; the comparison after lookup is constant-time. */
#ifndef IG_KEYS_H
#define IG_KEYS_H

#include "base/base.h"
#include "store/store.h"

#define IG_KEY_PREFIX "igk_"
#define IG_KEY_BODY_LEN 43
#define IG_KEY_SUM_LEN 6
#define IG_KEY_LEN (4 + IG_KEY_BODY_LEN + IG_KEY_SUM_LEN)

/* A new key (out has IG_KEY_LEN + 1 bytes). */
void ig_key_generate(char *out);
/* Prefix, length, alphabet and checksum all right. */
bool ig_key_well_formed(const char *key, size_t len);
void ig_key_hash(const char *key, size_t len, unsigned char out[IG_SHA256_LEN]);

/* Create and store a key; the secret is written to secret (IG_KEY_LEN + 1 bytes). credits
 * (micro-dollars) is its opening balance, entered in the ledger. A metered key is refused a
 * request its balance cannot pay; an unmetered one never is (its balance goes below zero by
 * what it spent). */
enum ig_err ig_key_create(struct ig_store *s, const char *name, int64_t credits, bool metered,
                          char *secret, struct ig_key *out);

/* A key with the defaults: generate scope, the server's limits, no expiry, every model. */
void ig_key_template(struct ig_key *k);
/* Create and store the key described by k (name, credits, metered, scopes, limits, expiry,
 * models); sets its id, hash and creation time; the secret as for ig_key_create. */
enum ig_err ig_key_create_ex(struct ig_store *s, struct ig_key *k, char *secret);
/* May this key use this catalog model? */
bool ig_key_allows_model(const struct ig_key *k, const char *model_id);

/* The key a request presents: IG_E_UNAUTHENTICATED for a malformed, unknown, revoked or
 * expired key. */
enum ig_err ig_key_check(struct ig_store *s, const char *key, size_t len, struct ig_key *out);

/* A small per-thread cache of recently checked keys, so a busy client costs no hash and no
 * lookup per request. Entries live IG_KEY_CACHE_MS: a key revoked in the store stops working
 * within that time. Owned by one thread; no locking. */
#define IG_KEY_CACHE_SIZE 32
#define IG_KEY_CACHE_MS 1000

struct ig_key_cache {
    unsigned generation;
    struct {
        char secret[IG_KEY_LEN];
        int64_t until_mono_ms; /* 0 = empty */
        struct ig_key key;
    } e[IG_KEY_CACHE_SIZE];
};

/* After a revocation in this process: every thread's cache forgets its keys (thread-safe),
 * so the revocation holds at once rather than within IG_KEY_CACHE_MS. */
void ig_key_cache_flush_all(void);

/* ig_key_check through the cache. */
enum ig_err ig_key_check_cached(struct ig_key_cache *c, struct ig_store *s, const char *key,
                                size_t len, struct ig_key *out);

#endif
