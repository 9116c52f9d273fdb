/* test_keys.c: API keys: format and checksum, creation and lookup against a real SQLite store,
 * the hash-only storage rule, and the per-thread cache. */
#include "base/base.h"

#include "policy/keys.h"
#include "store/store.h"

#include <limits.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/support.h"

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ^igk_[0-9A-Za-z]{49}$ */
static bool matches_format(const char *k)
{
    if (strlen(k) != IG_KEY_LEN || strncmp(k, "igk_", 4) != 0)
        return false;
    for (size_t i = 4; i < IG_KEY_LEN; i++)
        if (!k[i] || !strchr(b62, k[i]))
            return false;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_keys__generate_format(void **state)
{
    char k[IG_KEY_LEN + 1];

    assert_int_equal(IG_KEY_LEN, 53);
    assert_int_equal(IG_KEY_BODY_LEN + IG_KEY_SUM_LEN, 49);
    ig_key_generate(k);
    assert_int_equal(strlen(k), IG_KEY_LEN);
    assert_true(matches_format(k));
    assert_true(ig_key_well_formed(k, strlen(k)));
}

static void test_keys__thousand_distinct(void **state)
{
    enum { N = 1000 };
    char (*keys)[IG_KEY_LEN + 1] = ig_xcalloc(N, sizeof(*keys));
    const char **sorted = ig_xcalloc(N, sizeof(*sorted));
    int seen[62] = {0}, distinct_chars = 0;

    for (int i = 0; i < N; i++) {
        ig_key_generate(keys[i]);
        if (!matches_format(keys[i]) || !ig_key_well_formed(keys[i], IG_KEY_LEN))
            fail_msg("key %d malformed: %s", i, keys[i]);
        sorted[i] = keys[i];
        for (int k = 4; k < 4 + IG_KEY_BODY_LEN; k++)
            seen[strchr(b62, keys[i][k]) - b62]++;
    }
    qsort(sorted, N, sizeof(*sorted), cmp_str);
    for (int i = 1; i < N; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            fail_msg("duplicate key %s", sorted[i]);
    /* 43,000 body characters: every one of the 62 shows up. */
    for (int i = 0; i < 62; i++)
        distinct_chars += seen[i] > 0;
    assert_int_equal(distinct_chars, 62);
    free(sorted);
    free(keys);
}

/* The checksum as keys.h describes it: SHA-256 of prefix + body, first 4 bytes big-endian,
 * written as 6 base62 digits. */
static void test_keys__checksum_definition(void **state)
{
    char k[IG_KEY_LEN + 1], sum[IG_KEY_SUM_LEN + 1];
    unsigned char d[IG_SHA256_LEN];
    uint32_t v;

    ig_key_generate(k);
    ig_sha256(k, 4 + IG_KEY_BODY_LEN, d);
    v = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    for (int i = IG_KEY_SUM_LEN - 1; i >= 0; i--) {
        sum[i] = b62[v % 62];
        v /= 62;
    }
    sum[IG_KEY_SUM_LEN] = '\0';
    assert_string_equal(k + 4 + IG_KEY_BODY_LEN, sum);
}

static void test_keys__single_char_change_is_refused(void **state)
{
    for (int round = 0; round < 5; round++) {
        char k[IG_KEY_LEN + 1];

        ig_key_generate(k);
        for (int i = 0; i < IG_KEY_LEN; i++) {
            char saved = k[i];

            /* Another base62 character (a look-alike typo), and one outside the alphabet. */
            k[i] = b62[(strchr(b62, saved) ? strchr(b62, saved) - b62 + 1 : 0) % 62];
            if (k[i] == saved)
                k[i] = 'Q';
            if (ig_key_well_formed(k, IG_KEY_LEN))
                fail_msg("position %d changed '%c' -> '%c' still well formed", i, saved, k[i]);
            k[i] = '-';
            assert_false(ig_key_well_formed(k, IG_KEY_LEN));
            k[i] = saved;
        }
        assert_true(ig_key_well_formed(k, IG_KEY_LEN));
        /* Swapping two adjacent distinct body characters (a transposition). */
        for (int i = 4; i < 4 + IG_KEY_BODY_LEN - 1; i++) {
            char t = k[i];

            if (k[i] == k[i + 1])
                continue;
            k[i] = k[i + 1];
            k[i + 1] = t;
            if (ig_key_well_formed(k, IG_KEY_LEN))
                fail_msg("transposition at %d still well formed", i);
            k[i + 1] = k[i];
            k[i] = t;
        }
    }
}

static void test_keys__prefix_and_length(void **state)
{
    char k[IG_KEY_LEN + 2], bad[IG_KEY_LEN + 2];

    ig_key_generate(k);
    memcpy(bad, k, sizeof(k));
    bad[0] = 'x';
    assert_false(ig_key_well_formed(bad, IG_KEY_LEN));
    memcpy(bad, k, sizeof(k));
    bad[2] = 'K';
    assert_false(ig_key_well_formed(bad, IG_KEY_LEN));
    memcpy(bad, k, sizeof(k));
    bad[3] = '-';
    assert_false(ig_key_well_formed(bad, IG_KEY_LEN));
    memcpy(bad, "sk_", 3); /* another vendor's prefix */
    assert_false(ig_key_well_formed(bad, IG_KEY_LEN));

    assert_false(ig_key_well_formed(k, IG_KEY_LEN - 1));
    assert_false(ig_key_well_formed(k, 0));
    assert_false(ig_key_well_formed("", 0));
    assert_false(ig_key_well_formed("igk_", 4));
    memcpy(bad, k, IG_KEY_LEN);
    bad[IG_KEY_LEN] = 'A';
    bad[IG_KEY_LEN + 1] = '\0';
    assert_false(ig_key_well_formed(bad, IG_KEY_LEN + 1));
    /* An embedded NUL inside the length is refused. */
    memcpy(bad, k, IG_KEY_LEN + 1);
    bad[20] = '\0';
    assert_false(ig_key_well_formed(bad, IG_KEY_LEN));
}

/* ---- with a store ---- */

struct fx {
    char dir[PATH_MAX];
    char db[PATH_MAX + 32];
    char dsn[PATH_MAX + 64];
    struct ig_store *s;
};

static int store_setup(void **state)
{
    struct fx *f = ig_xcalloc(1, sizeof(*f));

    ig_test_tmpdir(f->dir, sizeof(f->dir), "keys");
    snprintf(f->db, sizeof(f->db), "%s/imagegate.db", f->dir);
    snprintf(f->dsn, sizeof(f->dsn), "sqlite:%s", f->db);
    f->s = ig_test_open_store(f->dsn);
    *state = f;
    return 0;
}

static int store_teardown(void **state)
{
    struct fx *f = *state;

    ig_store_close(f->s);
    ig_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* Run one statement on the database through a connection of our own. */
static void db_exec(struct fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;

    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    sqlite3_close(db);
}

static void test_keys__create_then_check(void **state)
{
    struct fx *f = *state;
    char secret[IG_KEY_LEN + 1];
    struct ig_key made, got;
    int64_t before = ig_now_ms();

    memset(&made, 0, sizeof(made));
    assert_int_equal(ig_key_create(f->s, "alice", 5000000, false, secret, &made), IG_OK);
    assert_true(matches_format(secret));
    assert_true(made.id > 0);
    assert_string_equal(made.name, "alice");
    assert_int_equal(made.credits, 5000000);
    assert_true(made.created_ms >= before && made.created_ms <= ig_now_ms());

    memset(&got, 0, sizeof(got));
    assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &got), IG_OK);
    assert_int_equal(got.id, made.id);
    assert_string_equal(got.name, "alice");
    assert_int_equal(got.credits, 5000000);
    assert_int_equal(got.created_ms, made.created_ms);
    assert_false(got.revoked);
    assert_memory_equal(got.hash, made.hash, IG_SHA256_LEN);

    /* A second key is a different row; each secret finds its own. */
    {
        char secret2[IG_KEY_LEN + 1];
        struct ig_key made2;

        assert_int_equal(ig_key_create(f->s, NULL, 0, false, secret2, &made2), IG_OK);
        assert_true(made2.id != made.id);
        assert_string_not_equal(secret2, secret);
        assert_int_equal(ig_key_check(f->s, secret2, IG_KEY_LEN, &got), IG_OK);
        assert_int_equal(got.id, made2.id);
        assert_string_equal(got.name, "");
        assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &got), IG_OK);
        assert_int_equal(got.id, made.id);
    }
    /* out may be NULL. */
    assert_int_equal(ig_key_create(f->s, "bob", 1, false, secret, NULL), IG_OK);
    assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &got), IG_OK);
    assert_string_equal(got.name, "bob");
}

static void test_keys__unknown_and_malformed_are_unauthenticated(void **state)
{
    struct fx *f = *state;
    char secret[IG_KEY_LEN + 1], other[IG_KEY_LEN + 1];
    struct ig_key got;

    assert_int_equal(ig_key_create(f->s, "alice", 0, false, secret, NULL), IG_OK);
    ig_key_generate(other); /* well formed, never stored */
    assert_true(ig_key_well_formed(other, IG_KEY_LEN));
    assert_int_equal(ig_key_check(f->s, other, IG_KEY_LEN, &got), IG_E_UNAUTHENTICATED);

    secret[10] = secret[10] == 'a' ? 'b' : 'a';
    assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &got), IG_E_UNAUTHENTICATED);
    assert_int_equal(ig_key_check(f->s, "igk_short", 9, &got), IG_E_UNAUTHENTICATED);
    assert_int_equal(ig_key_check(f->s, "", 0, &got), IG_E_UNAUTHENTICATED);
    assert_int_equal(ig_key_check(f->s, "Bearer x", 8, &got), IG_E_UNAUTHENTICATED);
}

static void test_keys__revoked_is_unauthenticated(void **state)
{
    struct fx *f = *state;
    char secret[IG_KEY_LEN + 1];
    struct ig_key made, got;
    char sql[128];

    assert_int_equal(ig_key_create(f->s, "alice", 0, false, secret, &made), IG_OK);
    assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &got), IG_OK);
    snprintf(sql, sizeof(sql), "UPDATE keys SET revoked = 1 WHERE id = %lld", (long long)made.id);
    db_exec(f, sql);
    assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &got), IG_E_UNAUTHENTICATED);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    struct ig_buf b = IG_BUF_INIT((size_t)1 << 30);
    char chunk[65536];
    size_t n;
    bool found = false;

    if (!fp)
        return false;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        assert_int_equal(ig_buf_add(&b, chunk, n), IG_OK);
    fclose(fp);
    if (b.len >= strlen(needle))
        for (size_t i = 0; i + strlen(needle) <= b.len && !found; i++)
            found = memcmp(b.data + i, needle, strlen(needle)) == 0;
    ig_buf_release(&b);
    return found;
}

static void test_keys__store_holds_hash_never_key(void **state)
{
    struct fx *f = *state;
    char secret[IG_KEY_LEN + 1], path[PATH_MAX + 64];
    unsigned char want[IG_SHA256_LEN];
    struct ig_key made;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rows = 0;

    assert_int_equal(ig_key_create(f->s, "alice", 0, false, secret, &made), IG_OK);
    ig_sha256(secret, IG_KEY_LEN, want);
    assert_memory_equal(made.hash, want, IG_SHA256_LEN);

    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT * FROM keys", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int ncol = sqlite3_column_count(st);
        bool hash_seen = false;

        rows++;
        for (int c = 0; c < ncol; c++) {
            const char *name = sqlite3_column_name(st, c);
            const void *blob = sqlite3_column_blob(st, c);
            int n = sqlite3_column_bytes(st, c);
            const unsigned char *text;

            if (strcmp(name, "hash") == 0) {
                assert_int_equal(sqlite3_column_type(st, c), SQLITE_BLOB);
                assert_int_equal(n, IG_SHA256_LEN);
                assert_memory_equal(blob, want, IG_SHA256_LEN);
                hash_seen = true;
                continue;
            }
            text = sqlite3_column_text(st, c);
            if (text && (strstr((const char *)text, secret) ||
                         strstr((const char *)text, secret + 4)))
                fail_msg("column %s holds the key", name);
        }
        assert_true(hash_seen);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(rows, 1);

    /* Nowhere in the files either: not the key, not its body. */
    snprintf(path, sizeof(path), "%s", f->db);
    assert_false(file_contains(path, secret + 4));
    snprintf(path, sizeof(path), "%s-wal", f->db);
    assert_false(file_contains(path, secret + 4));
    snprintf(path, sizeof(path), "%s-journal", f->db);
    assert_false(file_contains(path, secret + 4));
}

static void test_keys__cache_hits(void **state)
{
    struct fx *f = *state;
    struct ig_key_cache *cache = ig_xcalloc(1, sizeof(*cache));
    char secret[IG_KEY_LEN + 1], sql[128];
    struct ig_key made, a, b;

    assert_int_equal(ig_key_create(f->s, "alice", 42, false, secret, &made), IG_OK);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &a), IG_OK);
    assert_int_equal(a.id, made.id);
    assert_string_equal(a.name, "alice");
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &b), IG_OK);
    assert_memory_equal(&a, &b, sizeof(a));

    /* Proof the second answer came from the cache: revoke in the store; the store says no, the
     * cache (within IG_KEY_CACHE_MS) still says yes. */
    snprintf(sql, sizeof(sql), "UPDATE keys SET revoked = 1 WHERE id = %lld", (long long)made.id);
    db_exec(f, sql);
    assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &b), IG_E_UNAUTHENTICATED);
    memset(&b, 0, sizeof(b));
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &b), IG_OK);
    assert_int_equal(b.id, made.id);

    /* Expiry without sleeping: age every entry to now; the next call goes to the store. */
    for (int i = 0; i < IG_KEY_CACHE_SIZE; i++)
        if (cache->e[i].until_mono_ms)
            cache->e[i].until_mono_ms = ig_mono_ms();
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &b),
                     IG_E_UNAUTHENTICATED);
    free(cache);
}

static void test_keys__cache_refuses_what_store_refuses(void **state)
{
    struct fx *f = *state;
    struct ig_key_cache *cache = ig_xcalloc(1, sizeof(*cache));
    char secret[IG_KEY_LEN + 1], other[IG_KEY_LEN + 1];
    struct ig_key got;
    int used = 0;

    assert_int_equal(ig_key_create(f->s, "alice", 0, false, secret, NULL), IG_OK);
    ig_key_generate(other);
    assert_int_equal(ig_key_check_cached(cache, f->s, other, IG_KEY_LEN, &got),
                     IG_E_UNAUTHENTICATED);
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN - 1, &got),
                     IG_E_UNAUTHENTICATED);
    assert_int_equal(ig_key_check_cached(cache, f->s, "", 0, &got), IG_E_UNAUTHENTICATED);
    /* Nothing refused was cached. */
    for (int i = 0; i < IG_KEY_CACHE_SIZE; i++)
        used += cache->e[i].until_mono_ms != 0;
    assert_int_equal(used, 0);

    /* A key differing from a cached one only outside the slot characters is not a hit. */
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &got), IG_OK);
    memcpy(other + IG_KEY_LEN - 2, secret + IG_KEY_LEN - 2, 2); /* same slot */
    assert_int_equal(ig_key_check_cached(cache, f->s, other, IG_KEY_LEN, &got),
                     IG_E_UNAUTHENTICATED);
    /* Many keys through one cache: each answers with its own row. */
    for (int i = 0; i < 3 * IG_KEY_CACHE_SIZE; i++) {
        char s2[IG_KEY_LEN + 1];
        struct ig_key made;

        assert_int_equal(ig_key_create(f->s, "many", i, false, s2, &made), IG_OK);
        assert_int_equal(ig_key_check_cached(cache, f->s, s2, IG_KEY_LEN, &got), IG_OK);
        assert_int_equal(got.id, made.id);
        assert_int_equal(ig_key_check_cached(cache, f->s, s2, IG_KEY_LEN, &got), IG_OK);
        assert_int_equal(got.credits, i);
        assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &got), IG_OK);
        assert_string_equal(got.name, "alice");
    }
    free(cache);
}

static void test_keys__scopes_expiry_models(void **state)
{
    struct fx *f = *state;
    struct ig_key k, got;
    struct ig_key_cache *cache = ig_xcalloc(1, sizeof(*cache));
    char secret[IG_KEY_LEN + 1];

    ig_key_template(&k);
    assert_int_equal(k.scopes, IG_SCOPE_GENERATE);
    assert_int_equal(k.rate_rpm, -1);
    assert_int_equal(k.max_tasks, -1);
    snprintf(k.models, sizeof(k.models), "gemini-2.5-flash-image,gemini-3-pro-image-preview");
    k.scopes = IG_SCOPE_ADMIN;
    k.expires_ms = ig_now_ms() + 60000;
    assert_int_equal(ig_key_create_ex(f->s, &k, secret), IG_OK);
    assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &got), IG_OK);
    assert_int_equal(got.scopes, IG_SCOPE_ADMIN);
    assert_int_equal(got.expires_ms, k.expires_ms);
    assert_true(ig_key_allows_model(&got, "gemini-2.5-flash-image"));
    assert_true(ig_key_allows_model(&got, "gemini-3-pro-image-preview"));
    assert_false(ig_key_allows_model(&got, "gemini-2.5-flash"));   /* a prefix is not a match */
    assert_false(ig_key_allows_model(&got, "gemini-3.1-flash-image-preview"));
    got.models[0] = '\0';
    assert_true(ig_key_allows_model(&got, "anything"));
    /* cached, then revoked in the store: the flush makes the cache ask again at once */
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &got), IG_OK);
    assert_int_equal(ig_store_key_revoke(f->s, k.id), IG_OK);
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &got), IG_OK);
    ig_key_cache_flush_all();
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &got),
                     IG_E_UNAUTHENTICATED);
    /* expired: refused by the store check and by a warm cache entry alike */
    ig_key_template(&k);
    k.expires_ms = ig_now_ms() + 50;
    assert_int_equal(ig_key_create_ex(f->s, &k, secret), IG_OK);
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &got), IG_OK);
    usleep(80 * 1000);
    assert_int_equal(ig_key_check_cached(cache, f->s, secret, IG_KEY_LEN, &got),
                     IG_E_UNAUTHENTICATED);
    assert_int_equal(ig_key_check(f->s, secret, IG_KEY_LEN, &got), IG_E_UNAUTHENTICATED);
    free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys__generate_format),
        cmocka_unit_test(test_keys__thousand_distinct),
        cmocka_unit_test(test_keys__checksum_definition),
        cmocka_unit_test(test_keys__single_char_change_is_refused),
        cmocka_unit_test(test_keys__prefix_and_length),
        cmocka_unit_test_setup_teardown(test_keys__create_then_check, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_keys__unknown_and_malformed_are_unauthenticated,
                                        store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_keys__revoked_is_unauthenticated, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_keys__store_holds_hash_never_key, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_keys__cache_hits, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_keys__scopes_expiry_models, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_keys__cache_refuses_what_store_refuses, store_setup,
                                        store_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
