/* keys.c: key format, hashing and lookup. */
#include "base/base.h"
#include "policy/keys.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void checksum(const char *key, char *out)
{
    unsigned char d[IG_SHA256_LEN];
    uint32_t v;

    ig_sha256(key, 4 + IG_KEY_BODY_LEN, d);
    v = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    for (int i = IG_KEY_SUM_LEN - 1; i >= 0; i--) {
        out[i] = b62[v % 62];
        v /= 62;
    }
}

void ig_key_generate(char *out)
{
    int n = 0;

    memcpy(out, IG_KEY_PREFIX, 4);
    while (n < IG_KEY_BODY_LEN) {
        unsigned char r[64];

        ig_random_bytes(r, sizeof(r));
        for (size_t i = 0; i < sizeof(r) && n < IG_KEY_BODY_LEN; i++)
            if (r[i] < 248) /* 248 = 4 * 62: no modulo bias */
                out[4 + n++] = b62[r[i] % 62];
    }
    checksum(out, out + 4 + IG_KEY_BODY_LEN);
    out[IG_KEY_LEN] = '\0';
}

bool ig_key_well_formed(const char *key, size_t len)
{
    char sum[IG_KEY_SUM_LEN];

    if (len != IG_KEY_LEN || memcmp(key, IG_KEY_PREFIX, 4) != 0)
        return false;
    for (size_t i = 4; i < len; i++)
        if (!strchr(b62, key[i]) || key[i] == '\0')
            return false;
    checksum(key, sum);
    return memcmp(sum, key + 4 + IG_KEY_BODY_LEN, IG_KEY_SUM_LEN) == 0;
}

void ig_key_hash(const char *key, size_t len, unsigned char out[IG_SHA256_LEN])
{
    ig_sha256(key, len, out);
}

void ig_key_template(struct ig_key *k)
{
    memset(k, 0, sizeof(*k));
    k->rate_rpm = -1; /* the server's defaults */
    k->max_tasks = -1;
    k->scopes = IG_SCOPE_GENERATE;
}

enum ig_err ig_key_create_ex(struct ig_store *s, struct ig_key *k, char *secret)
{
    ig_key_generate(secret);
    ig_key_hash(secret, IG_KEY_LEN, k->hash);
    k->created_ms = ig_now_ms();
    k->id = 0;
    return ig_store_key_insert(s, k);
}

enum ig_err ig_key_create(struct ig_store *s, const char *name, int64_t credits, bool metered,
                          char *secret, struct ig_key *out)
{
    struct ig_key k;
    enum ig_err err;

    ig_key_template(&k);
    snprintf(k.name, sizeof(k.name), "%s", name ? name : "");
    k.credits = credits;
    k.metered = metered;
    err = ig_key_create_ex(s, &k, secret);
    if (!err && out)
        *out = k;
    return err;
}

bool ig_key_allows_model(const struct ig_key *k, const char *model_id)
{
    size_t n = strlen(model_id);

    if (!k->models[0])
        return true;
    for (const char *p = k->models; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len == n && memcmp(p, model_id, n) == 0)
            return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}

enum ig_err ig_key_check(struct ig_store *s, const char *key, size_t len, struct ig_key *out)
{
    unsigned char h[IG_SHA256_LEN];
    enum ig_err err;

    if (!ig_key_well_formed(key, len))
        return IG_E_UNAUTHENTICATED;
    ig_key_hash(key, len, h);
    err = ig_store_key_by_hash(s, h, out);
    if (err == IG_E_NOT_FOUND)
        return IG_E_UNAUTHENTICATED;
    if (err)
        return err;
    if (!ig_ct_equal(out->hash, h, IG_SHA256_LEN) || out->revoked ||
        (out->expires_ms > 0 && ig_now_ms() >= out->expires_ms))
        return IG_E_UNAUTHENTICATED;
    return IG_OK;
}

/* Bumped by ig_key_cache_flush_all(): every thread's cache drops its entries at its next
 * lookup. */
static atomic_uint key_generation;

void ig_key_cache_flush_all(void)
{
    atomic_fetch_add(&key_generation, 1);
}

enum ig_err ig_key_check_cached(struct ig_key_cache *c, struct ig_store *s, const char *key,
                                size_t len, struct ig_key *out)
{
    int64_t now = ig_mono_ms();
    unsigned slot;
    enum ig_err err;

    if (len != IG_KEY_LEN)
        return IG_E_UNAUTHENTICATED;
    /* The last characters are the checksum: already uniformly spread. */
    slot = ((unsigned char)key[len - 1] * 31u + (unsigned char)key[len - 2]) % IG_KEY_CACHE_SIZE;
    if (c->generation != atomic_load(&key_generation)) { /* a key was revoked here */
        memset(c->e, 0, sizeof(c->e));
        c->generation = atomic_load(&key_generation);
    }
    if (c->e[slot].until_mono_ms > now && ig_ct_equal(c->e[slot].secret, key, IG_KEY_LEN) &&
        !(c->e[slot].key.expires_ms > 0 && ig_now_ms() >= c->e[slot].key.expires_ms)) {
        *out = c->e[slot].key;
        return IG_OK;
    }
    err = ig_key_check(s, key, len, out);
    if (!err) {
        memcpy(c->e[slot].secret, key, IG_KEY_LEN);
        c->e[slot].key = *out;
        c->e[slot].until_mono_ms = now + IG_KEY_CACHE_MS;
    }
    return err;
}
