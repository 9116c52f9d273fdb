/* test_catalog.c: the model catalog: the compiled-in etc/models.json, name resolution, output
 * sizes per ratio and resolution, prices, nearest ratios, and the parser's errors. */
#include "base/base.h"

#include "core/catalog.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* IG_STATIC in catalog.c. */

#define M25 "gemini-2.5-flash-image"
#define M3PRO "gemini-3-pro-image-preview"
#define M31 "gemini-3.1-flash-image-preview"

static int setup(void **state)
{
    struct ig_catalog *c = NULL;
    struct ig_errbuf eb;

    ig_errbuf_clear(&eb);
    if (ig_catalog_load_default(&c, &eb) != IG_OK)
        fail_msg("compiled-in catalog does not load: %s", eb.msg);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ig_catalog_free(*state);
    return 0;
}

static const struct ig_model *must_find(const struct ig_catalog *c, const char *name,
                                        bool want_official)
{
    bool official = !want_official;
    const struct ig_model *m = ig_catalog_find(c, name, &official);

    if (!m)
        fail_msg("'%s' does not resolve", name);
    if (official != want_official)
        fail_msg("'%s': official=%d, want %d", name, official, want_official);
    return m;
}

static void test_catalog__default_loads(void **state)
{
    const struct ig_catalog *c = *state;

    assert_int_equal(ig_catalog_count(c), 3);
    assert_string_equal(ig_catalog_at(c, 0)->id, M25);
    assert_string_equal(ig_catalog_at(c, 1)->id, M3PRO);
    assert_string_equal(ig_catalog_at(c, 2)->id, M31);
    assert_null(ig_catalog_at(c, 3));
    assert_null(ig_catalog_at(c, -1));
    for (int i = 0; i < ig_catalog_count(c); i++) {
        const struct ig_model *m = ig_catalog_at(c, i);

        assert_true(m->display_name[0] != '\0');
        assert_string_equal(m->upstream, m->id);
        assert_true(m->max_n >= 1);
        assert_int_equal(m->max_refs, 14);
        assert_true(ig_model_res_index(m, m->default_res) >= 0);
        assert_string_equal(m->default_res, "1K");
    }
}

static void test_catalog__names_resolve(void **state)
{
    const struct ig_catalog *c = *state;
    const struct ig_model *m25 = must_find(c, M25, false);
    bool official = true;

    assert_string_equal(m25->id, M25);
    assert_ptr_equal(must_find(c, "gemini-2.5-flash-image-preview", false), m25);
    assert_ptr_equal(must_find(c, "gemini-2-5-flash-image", false), m25);
    assert_ptr_equal(must_find(c, "gemini-2.5-flash-image-official", true), m25);
    assert_ptr_equal(must_find(c, "gemini-2.5-flash-image-preview-official", true), m25);
    assert_ptr_equal(must_find(c, "gemini-2-5-flash-image-official", true), m25);

    assert_string_equal(must_find(c, M3PRO, false)->id, M3PRO);
    assert_string_equal(must_find(c, "gemini-3-pro-image", false)->id, M3PRO);
    assert_string_equal(must_find(c, "gemini-3-pro-image-official", true)->id, M3PRO);
    assert_string_equal(must_find(c, "gemini-3-pro-image-preview-official", true)->id, M3PRO);
    assert_string_equal(must_find(c, M31, false)->id, M31);
    assert_string_equal(must_find(c, "gemini-3.1-flash-image", false)->id, M31);
    assert_string_equal(must_find(c, "gemini-3.1-flash-image-official", true)->id, M31);

    assert_null(ig_catalog_find(c, "gemini-2.5-flash", &official));
    assert_null(ig_catalog_find(c, "GEMINI-2.5-FLASH-IMAGE", NULL));
    assert_null(ig_catalog_find(c, "", NULL));
    assert_null(ig_catalog_find(c, "gemini-2.5-flash-image ", NULL));
    assert_true(official); /* untouched when not found */
    /* official may be NULL. */
    assert_ptr_equal(ig_catalog_find(c, "gemini-2-5-flash-image-official", NULL), m25);
}

static void test_catalog__names_list(void **state)
{
    const struct ig_catalog *c = *state;
    const char *const *names = ig_catalog_names(c, 0);
    static const char *const want[] = {
        M25, "gemini-2.5-flash-image-preview", "gemini-2-5-flash-image",
        "gemini-2.5-flash-image-official", "gemini-2.5-flash-image-preview-official",
        "gemini-2-5-flash-image-official",
    };
    size_t n = 0;

    while (names[n])
        n++;
    assert_int_equal(n, IG_ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(names[i], want[i]);
}

static void test_catalog__25_sizes(void **state)
{
    const struct ig_catalog *c = *state;
    const struct ig_model *m = ig_catalog_find(c, M25, NULL);
    static const struct {
        const char *ratio;
        int w, h;
    } want[] = {
        {"1:1", 1024, 1024}, {"2:3", 832, 1248}, {"3:2", 1248, 832}, {"3:4", 864, 1184},
        {"4:3", 1184, 864},  {"4:5", 896, 1152}, {"5:4", 1152, 896}, {"9:16", 768, 1344},
        {"16:9", 1344, 768}, {"21:9", 1536, 672},
    };
    char list[256];

    assert_int_equal(m->nratios, IG_ARRAY_LEN(want));
    for (size_t i = 0; i < IG_ARRAY_LEN(want); i++) {
        int w = 0, h = 0;

        if (!ig_model_output_size(m, want[i].ratio, "1K", &w, &h))
            fail_msg("2.5 does not offer %s", want[i].ratio);
        if (w != want[i].w || h != want[i].h)
            fail_msg("2.5 %s: %dx%d, want %dx%d", want[i].ratio, w, h, want[i].w, want[i].h);
        assert_non_null(ig_model_ratio_find(m, want[i].ratio));
    }
    ig_model_ratio_list(m, list, sizeof(list));
    assert_string_equal(list, "1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9");
}

static void test_catalog__25_is_1k_only(void **state)
{
    const struct ig_catalog *c = *state;
    const struct ig_model *m = ig_catalog_find(c, M25, NULL);
    int w = -1, h = -1;

    assert_int_equal(m->nres, 1);
    assert_string_equal(m->res[0], "1K");
    assert_int_equal(ig_model_res_index(m, "1K"), 0);
    assert_int_equal(ig_model_res_index(m, "2K"), -1);
    assert_int_equal(ig_model_res_index(m, "4K"), -1);
    assert_int_equal(ig_model_res_index(m, "512"), -1);
    assert_int_equal(ig_model_res_index(m, "1k"), -1);
    assert_false(ig_model_output_size(m, "1:1", "2K", &w, &h));
    assert_false(ig_model_output_size(m, "1:1", "4K", &w, &h));
    assert_false(ig_model_output_size(m, "7:3", "1K", &w, &h));
    assert_false(ig_model_output_size(m, "4:1", "1K", &w, &h));
    assert_int_equal(w, -1); /* untouched when not offered */
    assert_int_equal(h, -1);
}

static void test_catalog__3pro_resolutions(void **state)
{
    const struct ig_catalog *c = *state;
    const struct ig_model *m = ig_catalog_find(c, M3PRO, NULL);
    int w = 0, h = 0;

    assert_int_equal(m->nres, 3);
    assert_string_equal(m->res[0], "1K");
    assert_string_equal(m->res[1], "2K");
    assert_string_equal(m->res[2], "4K");
    assert_true(ig_model_output_size(m, "16:9", "4K", &w, &h));
    assert_int_equal(w, 5504);
    assert_int_equal(h, 3072);
    assert_true(ig_model_output_size(m, "16:9", "2K", &w, &h));
    assert_int_equal(w, 2752);
    assert_int_equal(h, 1536);
    assert_true(ig_model_output_size(m, "1:1", "4K", &w, &h));
    assert_int_equal(w, 4096);
    assert_int_equal(h, 4096);
    assert_false(ig_model_output_size(m, "1:1", "512", &w, &h));
    assert_null(ig_model_ratio_find(m, "4:1"));
    assert_int_equal(m->price_per_image[2], 240000);
    assert_int_equal(m->image_tokens[2], 2000);
}

static void test_catalog__31_extreme_ratios(void **state)
{
    const struct ig_catalog *c = *state;
    const struct ig_model *m31 = ig_catalog_find(c, M31, NULL);
    const struct ig_model *m25 = ig_catalog_find(c, M25, NULL);
    int w = 0, h = 0;

    assert_non_null(ig_model_ratio_find(m31, "4:1"));
    assert_non_null(ig_model_ratio_find(m31, "1:4"));
    assert_non_null(ig_model_ratio_find(m31, "8:1"));
    assert_non_null(ig_model_ratio_find(m31, "1:8"));
    assert_null(ig_model_ratio_find(m25, "4:1"));
    assert_null(ig_model_ratio_find(m25, "1:8"));
    assert_true(ig_model_output_size(m31, "4:1", "1K", &w, &h));
    assert_int_equal(w, 2048);
    assert_int_equal(h, 512);
    assert_true(ig_model_output_size(m31, "1:1", "512", &w, &h));
    assert_int_equal(w, 512);
    assert_int_equal(h, 512);
    assert_int_equal(m31->nres, 4);
    assert_string_equal(m31->res[0], "512");
}

static void test_catalog__prices_and_tokens(void **state)
{
    const struct ig_catalog *c = *state;
    const struct ig_model *m25 = ig_catalog_find(c, M25, NULL);
    const struct ig_model *m31 = ig_catalog_find(c, M31, NULL);

    assert_int_equal(m25->price_per_image[0], 39000);
    assert_int_equal(m25->image_tokens[0], 1290);
    assert_int_equal(m31->price_per_image[ig_model_res_index(m31, "512")], 45000);
    assert_int_equal(m31->price_per_image[ig_model_res_index(m31, "4K")], 151000);
    assert_int_equal(m31->image_tokens[ig_model_res_index(m31, "512")], 747);
}

/* Data check: every listed size has (close to) the aspect its ratio names. */
static void test_catalog__sizes_match_their_ratio(void **state)
{
    const struct ig_catalog *c = *state;
    int bad = 0;

    for (int i = 0; i < ig_catalog_count(c); i++) {
        const struct ig_model *m = ig_catalog_at(c, i);

        for (int r = 0; r < m->nratios; r++) {
            const struct ig_model_ratio *mr = &m->ratios[r];
            int a = 0, b = 0;

            assert_int_equal(sscanf(mr->ratio, "%d:%d", &a, &b), 2);
            for (int k = 0; k < m->nres; k++) {
                double off;

                if (!mr->w[k])
                    continue; /* not offered at this resolution */
                off = fabs(log((double)mr->w[k] / mr->h[k]) - log((double)a / b));
                if (off > 0.05) {
                    print_error("%s: %s at %s is %dx%d (aspect %.3f, want %.3f)\n", m->id,
                                mr->ratio, m->res[k], mr->w[k], mr->h[k],
                                (double)mr->w[k] / mr->h[k], (double)a / b);
                    bad++;
                }
            }
        }
    }
    assert_int_equal(bad, 0);
}

static void test_catalog__nearest_ratio(void **state)
{
    const struct ig_catalog *c = *state;
    const struct ig_model *m25 = ig_catalog_find(c, M25, NULL);
    const struct ig_model *m31 = ig_catalog_find(c, M31, NULL);

    assert_string_equal(ig_model_nearest_ratio(m25, 640, 480), "4:3");
    /* 1:2: log 0.5 = -0.693; 9:16 is 0.118 away, 2:3 0.288: 9:16 is nearest. */
    assert_string_equal(ig_model_nearest_ratio(m25, 300, 600), "9:16");
    assert_string_equal(ig_model_nearest_ratio(m25, 1, 1), "1:1");
    assert_string_equal(ig_model_nearest_ratio(m25, 1920, 1080), "16:9");
    assert_string_equal(ig_model_nearest_ratio(m25, 2560, 1080), "21:9");
    assert_string_equal(ig_model_nearest_ratio(m25, 4000, 100), "21:9");
    assert_string_equal(ig_model_nearest_ratio(m25, 100, 4000), "9:16");
    assert_string_equal(ig_model_nearest_ratio(m25, 1080, 1350), "4:5");
    /* 3.1 has the extreme ratios. */
    assert_string_equal(ig_model_nearest_ratio(m31, 4000, 100), "8:1");
    assert_string_equal(ig_model_nearest_ratio(m31, 300, 600), "9:16");
    assert_string_equal(ig_model_nearest_ratio(m31, 1000, 250), "4:1");
    /* Degenerate sizes fall back to the first ratio. */
    assert_string_equal(ig_model_nearest_ratio(m25, 0, 100), "1:1");
    assert_string_equal(ig_model_nearest_ratio(m25, 100, -1), "1:1");
}

/* ---- the parser ---- */

/* A valid model; `extra` ("\"key\":value,") comes first, and cJSON finds the first of
 * duplicate keys, so it can also override a field. */
#define MODEL(id, extra)                                                                           \
    "{" extra "\"id\":\"" id "\",\"resolutions\":[\"1K\"],\"default_resolution\":\"1K\","          \
    "\"max_refs\":1,\"max_n\":1,\"image_tokens\":{\"1K\":100},"                                  \
    "\"price_per_image_usd\":{\"1K\":\"0.01\"},"                                                \
    "\"ratios\":[{\"ratio\":\"1:1\",\"sizes\":{\"1K\":[64,64]}}]}"

static void parse_ok(const char *json)
{
    struct ig_catalog *c = NULL;
    struct ig_errbuf eb;

    ig_errbuf_clear(&eb);
    if (ig_catalog_parse(&c, json, strlen(json), &eb) != IG_OK)
        fail_msg("refused: %s\n%s", eb.msg, json);
    ig_catalog_free(c);
}

static void parse_fails(const char *json, const char *want1, const char *want2)
{
    struct ig_catalog *c = (struct ig_catalog *)(uintptr_t)0x1;
    struct ig_errbuf eb;
    enum ig_err err;

    ig_errbuf_clear(&eb);
    err = ig_catalog_parse(&c, json, strlen(json), &eb);
    if (err == IG_OK)
        fail_msg("accepted:\n%s", json);
    assert_ptr_equal(c, (struct ig_catalog *)(uintptr_t)0x1); /* out untouched */
    assert_true(eb.msg[0] != '\0');
    if (want1 && !strstr(eb.msg, want1))
        fail_msg("message '%s' lacks '%s'\n%s", eb.msg, want1, json);
    if (want2 && !strstr(eb.msg, want2))
        fail_msg("message '%s' lacks '%s'\n%s", eb.msg, want2, json);
}

static void test_catalog__parse_minimal(void **state)
{
    const char *json = "{\"models\":[" MODEL("m1", "\"aliases\":[\"m1a\"],") "]}";
    struct ig_catalog *c = NULL;
    struct ig_errbuf eb;
    const struct ig_model *m;
    bool official = true;

    assert_int_equal(ig_catalog_parse(&c, json, strlen(json), &eb), IG_OK);
    assert_int_equal(ig_catalog_count(c), 1);
    m = ig_catalog_find(c, "m1a", &official);
    assert_non_null(m);
    assert_false(official);
    assert_string_equal(m->upstream, "m1"); /* defaults to the id */
    assert_string_equal(m->display_name, "");
    assert_int_equal(m->price_per_image[0], 10000);
    ig_catalog_free(c);

    parse_ok("{\"models\":[]}");
    parse_fails("{\"models\":[" MODEL("t", "\"price_per_1m_tokens_usd\":{\"image\":30},") "]}",
                "price_per_1m_tokens_usd", NULL);
    parse_fails("{\"models\":[" MODEL("t", "\"price_per_1m_tokens_usd\":{\"text\":\"1\"},") "]}",
                "price_per_1m_tokens_usd", NULL);
    ig_catalog_free(NULL);
}

/* What a task holds and pays, per image and by tokens. */
static void test_catalog__hold_and_capture(void **state)
{
    const struct ig_catalog *c = *state;
    const struct ig_model *m25 = ig_catalog_find(c, M25, NULL);
    const char *json = "{\"models\":[" MODEL("tok", "\"price_per_1m_tokens_usd\":{\"image\":\"30\","
                                                      "\"text\":\"2.50\"},") "]}";
    struct ig_catalog *tc = NULL;
    struct ig_errbuf eb;
    const struct ig_model *tm;

    /* per image: $0.039 each; a partial result pays for what came */
    assert_false(m25->token_priced);
    assert_int_equal(ig_model_hold(m25, 0, 2), 78000);
    assert_int_equal(ig_model_capture(m25, 78000, 2, 2, 2580, 16), 78000);
    assert_int_equal(ig_model_capture(m25, 78000, 2, 1, 1290, 0), 39000);
    assert_int_equal(ig_model_capture(m25, 78000, 2, 0, 0, 0), 0);
    assert_int_equal(ig_model_hold(m25, -1, 2), 0);
    /* by tokens: image_tokens 100 per image in the test model, $30 and $2.50 per million */
    assert_int_equal(ig_catalog_parse(&tc, json, strlen(json), &eb), IG_OK);
    tm = ig_catalog_find(tc, "tok", NULL);
    assert_true(tm->token_priced);
    assert_int_equal(tm->price_per_mtok_image, 30000000);
    assert_int_equal(tm->price_per_mtok_text, 2500000);
    assert_int_equal(ig_model_hold(tm, 0, 3), 9750);                  /* 300 x $32.50 / 1M */
    assert_int_equal(ig_model_capture(tm, 9750, 3, 3, 300, 16), 9040); /* 9000 + 40 */
    assert_int_equal(ig_model_capture(tm, 9750, 3, 2, 200, 0), 6000);
    assert_int_equal(ig_model_capture(tm, 9750, 3, 3, 300, 100000), 9750); /* never above the hold */
    assert_int_equal(ig_model_capture(tm, 9750, 3, 1, 1, 0), 30);     /* $30 / 1M = 30 µ$ */
    assert_int_equal(ig_model_capture(tm, 9750, 3, 1, 0, 1), 3);      /* 2.5 µ$ rounds up */
    assert_int_equal(ig_model_capture(tm, 9750, 3, 1, 0, 2), 5);
    ig_catalog_free(tc);
}

static void test_catalog__parse_errors(void **state)
{
    /* Not an object / no models array. */
    parse_fails("[]", "object", "models");
    parse_fails("not json", "'models'", NULL);
    parse_fails("{\"models\":{}}", "'models' array", NULL);
    parse_fails("", "'models'", NULL);
    /* Missing id. */
    parse_fails("{\"models\":[{\"resolutions\":[\"1K\"],\"default_resolution\":\"1K\"}]}", "'id'",
                NULL);
    parse_fails("{\"models\":[" MODEL("m1", "\"id\":5,") "]}", "'id'", NULL);
    /* Duplicate name across models, and within one. */
    parse_fails("{\"models\":[" MODEL("m1", "") "," MODEL("m2", "\"aliases\":[\"m1\"],") "]}",
                "'m1'", "used twice");
    parse_fails("{\"models\":[" MODEL("m1", "\"official_aliases\":[\"x\"],") "," MODEL(
                    "m2", "\"aliases\":[\"x\"],") "]}",
                "'x'", "used twice");
    parse_fails("{\"models\":[" MODEL("m1", "\"aliases\":[\"m1\"],") "]}", "'m1'", "used twice");
    parse_fails("{\"models\":[" MODEL("m1", "") "," MODEL("m1", "") "]}", "'m1'", "used twice");
    /* Bad ratio size. */
    parse_fails("{\"models\":[{\"id\":\"m1\",\"resolutions\":[\"1K\"],\"default_resolution\":"
                "\"1K\",\"max_refs\":1,\"max_n\":1,\"image_tokens\":{\"1K\":100},"
                "\"price_per_image_usd\":{\"1K\":\"0.01\"},"
                "\"ratios\":[{\"ratio\":\"1:1\",\"sizes\":{\"1K\":[0,5]}}]}]}",
                "ratio 1:1 size for 1K", "[w, h]");
    parse_fails("{\"models\":[{\"id\":\"m1\",\"resolutions\":[\"1K\"],\"default_resolution\":"
                "\"1K\",\"max_refs\":1,\"max_n\":1,\"image_tokens\":{\"1K\":100},"
                "\"price_per_image_usd\":{\"1K\":\"0.01\"},"
                "\"ratios\":[{\"ratio\":\"1:1\",\"sizes\":{\"1K\":[64]}}]}]}",
                "ratio 1:1 size", NULL);
    parse_fails("{\"models\":[{\"id\":\"m1\",\"resolutions\":[\"1K\"],\"default_resolution\":"
                "\"1K\",\"max_refs\":1,\"max_n\":1,\"image_tokens\":{\"1K\":100},"
                "\"price_per_image_usd\":{\"1K\":\"0.01\"},"
                "\"ratios\":[{\"ratio\":\"1:1\",\"sizes\":{\"1K\":[64,16385]}}]}]}",
                "ratio 1:1 size", NULL);
    /* default_resolution not listed. */
    parse_fails("{\"models\":[{\"id\":\"m1\",\"resolutions\":[\"1K\"],\"default_resolution\":"
                "\"2K\",\"max_refs\":1,\"max_n\":1,\"image_tokens\":{\"1K\":100},"
                "\"price_per_image_usd\":{\"1K\":\"0.01\"},"
                "\"ratios\":[{\"ratio\":\"1:1\",\"sizes\":{\"1K\":[64,64]}}]}]}",
                "default_resolution is not listed", "'m1'");
    /* Price as a number. */
    parse_fails("{\"models\":[{\"id\":\"m1\",\"resolutions\":[\"1K\"],\"default_resolution\":"
                "\"1K\",\"max_refs\":1,\"max_n\":1,\"image_tokens\":{\"1K\":100},"
                "\"price_per_image_usd\":{\"1K\":0.01},"
                "\"ratios\":[{\"ratio\":\"1:1\",\"sizes\":{\"1K\":[64,64]}}]}]}",
                "price_per_image_usd[1K]", "decimal string");
    parse_fails("{\"models\":[{\"id\":\"m1\",\"resolutions\":[\"1K\"],\"default_resolution\":"
                "\"1K\",\"max_refs\":1,\"max_n\":1,\"image_tokens\":{\"1K\":100},"
                "\"price_per_image_usd\":{\"1K\":\"0.0000001\"},"
                "\"ratios\":[{\"ratio\":\"1:1\",\"sizes\":{\"1K\":[64,64]}}]}]}",
                "price_per_image_usd", NULL);
    /* Missing tokens, bad limits, no ratios, too many resolutions. */
    parse_fails("{\"models\":[{\"id\":\"m1\",\"resolutions\":[\"1K\"],\"default_resolution\":"
                "\"1K\",\"max_refs\":1,\"max_n\":1,"
                "\"price_per_image_usd\":{\"1K\":\"0.01\"},"
                "\"ratios\":[{\"ratio\":\"1:1\",\"sizes\":{\"1K\":[64,64]}}]}]}",
                "image_tokens[1K]", NULL);
    parse_fails("{\"models\":[" MODEL("m1", "\"max_n\":0,") "]}", "'max_n'", NULL);
    parse_fails("{\"models\":[" MODEL("m1", "\"max_refs\":1.5,") "]}", "'max_refs'", NULL);
    parse_fails("{\"models\":[" MODEL("m1", "\"ratios\":[],") "]}", "'ratios'", NULL);
    parse_fails("{\"models\":[" MODEL("m1", "\"resolutions\":[\"a\",\"b\",\"c\",\"d\",\"e\"],") "]}",
                "'resolutions'", NULL);
    parse_fails("{\"models\":[" MODEL("m1", "\"aliases\":\"m1a\",") "]}", "'aliases'",
                "array");
    parse_fails("{\"models\":[" MODEL("m1", "\"aliases\":[\"\"],") "]}", "bad name", NULL);
}

static void test_catalog__load_file_missing(void **state)
{
    struct ig_catalog *c = NULL;
    struct ig_errbuf eb;

    assert_int_equal(ig_catalog_load_file(&c, "/nonexistent/models.json", &eb), IG_E_IO);
    assert_null(c);
    assert_non_null(strstr(eb.msg, "/nonexistent/models.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_catalog__default_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__names_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__names_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__25_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__25_is_1k_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__3pro_resolutions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__31_extreme_ratios, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__prices_and_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__sizes_match_their_ratio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog__nearest_ratio, setup, teardown),
        cmocka_unit_test(test_catalog__parse_minimal),
        cmocka_unit_test_setup_teardown(test_catalog__hold_and_capture, setup, teardown),
        cmocka_unit_test(test_catalog__parse_errors),
        cmocka_unit_test(test_catalog__load_file_missing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
