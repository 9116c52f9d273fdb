/* test_gemini_dialect.c: the Gemini dialect's pure parts: base64 in both alphabets, the
 * moderation outcome read from a task, and GenerateContentResponse bodies built from a task
 * (whole and as stream events), with a blob store that serves fixed bytes. */
#include "base/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "http/dialects/gemini_int.h"

/* ---- base64 ---- */

static void decode_ok(const char *in, const char *want, size_t wantlen)
{
    unsigned char *out = NULL;
    size_t len = 0;

    assert_int_equal(ig_gemini_b64_decode(in, strlen(in), 1000, &out, &len), IG_OK);
    assert_int_equal(len, wantlen);
    assert_memory_equal(out, want, wantlen);
    free(out);
}

static void test_gemini_dialect__b64_decode(void **state)
{
    unsigned char *out = NULL;
    size_t len = 0;

    decode_ok("", "", 0);
    decode_ok("Zg==", "f", 1);
    decode_ok("Zg", "f", 1);
    decode_ok("Zm8=", "fo", 2);
    decode_ok("Zm8", "fo", 2);
    decode_ok("Zm9v", "foo", 3);
    decode_ok("+/+/", "\xfb\xff\xbf", 3);
    decode_ok("-_-_", "\xfb\xff\xbf", 3); /* URL-safe */
    /* Refused: characters outside both alphabets, white space, padding in the middle or
     * where no group of four ends, a lone sixth bit group, non-zero leftover bits. */
    const char *bad[] = {"Zm9v!", "Zm 9v", "Zg==Zg==", "Zg=", "Z===", "Z", "Zm9vZ", "Zh==",
                         "Zm9=", "=", "===="};
    for (size_t i = 0; i < IG_ARRAY_LEN(bad); i++)
        assert_int_equal(ig_gemini_b64_decode(bad[i], strlen(bad[i]), 1000, &out, &len),
                         IG_E_INVALID);
    /* The cap is on decoded bytes: 3 fit in 3, not in 2. */
    assert_int_equal(ig_gemini_b64_decode("Zm9v", 4, 3, &out, &len), IG_OK);
    free(out);
    assert_int_equal(ig_gemini_b64_decode("Zm9v", 4, 2, &out, &len), IG_E_TOOBIG);
    assert_int_equal(ig_gemini_b64_decode("Zm8", 3, 1, &out, &len), IG_E_TOOBIG);
}

static void test_gemini_dialect__b64_round_trip(void **state)
{
    unsigned char in[300], *out = NULL;
    size_t len = 0;
    struct ig_buf b = IG_BUF_INIT(1000);

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 0; n < sizeof(in); n += 37) {
        ig_buf_reset(&b);
        assert_int_equal(ig_gemini_add_base64(&b, in, n), IG_OK);
        assert_int_equal(b.len, (n + 2) / 3 * 4);
        assert_int_equal(ig_gemini_b64_decode(b.data ? b.data : "", b.len, n, &out, &len), IG_OK);
        assert_int_equal(len, n);
        assert_memory_equal(out, in, n);
        free(out);
    }
    ig_buf_release(&b);
}

/* ---- moderation ---- */

static void moderation(enum ig_err err, const char *msg, const char *block, const char *finish,
                       const char *text)
{
    struct ig_task t;
    char b[48], f[48], x[512];

    ig_task_init(&t);
    ig_task_set_error(&t, err, msg);
    ig_gemini_moderation(&t, b, sizeof(b), f, sizeof(f), x, sizeof(x));
    assert_string_equal(b, block);
    assert_string_equal(f, finish);
    assert_string_equal(x, text);
    ig_task_release(&t);
}

static void test_gemini_dialect__moderation(void **state)
{
    moderation(IG_E_MODERATED, "prompt blocked by the model's safety system: PROHIBITED_CONTENT",
               "PROHIBITED_CONTENT", "", "");
    moderation(IG_E_MODERATED, "the model refused the request: IMAGE_SAFETY", "", "IMAGE_SAFETY",
               "");
    moderation(IG_E_MODERATED, "the model refused the request: SAFETY: I can't draw that", "",
               "SAFETY", "I can't draw that");
    moderation(IG_E_UPSTREAM_FAILED, "the model returned no image (finishReason NO_IMAGE)", "",
               "NO_IMAGE", "");
    /* An upstream failure of another kind is not a refusal. */
    moderation(IG_E_UPSTREAM_FAILED, "the model returned no image (finishReason none)", "", "",
               "");
    moderation(IG_E_UPSTREAM_FAILED, "upstream 503 UNAVAILABLE: overloaded", "", "", "");
    /* Another provider's refusal: an image refused, its words kept. */
    moderation(IG_E_MODERATED, "content policy violation", "", "IMAGE_SAFETY",
               "content policy violation");
}

/* ---- rendering ---- */

static const unsigned char fake_png[] = "\x89PNG\r\n\x1a\n-fake-image-bytes-";

static enum ig_err fake_get(struct ig_blob *b, const char *id, const char *ext, size_t max,
                            unsigned char **data, size_t *len)
{
    if (strcmp(id, "missing") == 0)
        return IG_E_NOT_FOUND;
    *len = sizeof(fake_png) - 1 + strlen(id); /* distinct bytes per blob */
    *data = ig_xmalloc(*len);
    memcpy(*data, fake_png, sizeof(fake_png) - 1);
    memcpy(*data + sizeof(fake_png) - 1, id, strlen(id));
    return IG_OK;
}

static const struct ig_blob_ops fake_ops = {.name = "fake", .abi_version = 1, .get = fake_get};

static void add_output(struct ig_task *t, const char *blob)
{
    struct ig_output *o = ig_task_add_output(t);

    snprintf(o->blob, sizeof(o->blob), "%s", blob);
    snprintf(o->mime, sizeof(o->mime), "image/png");
    snprintf(o->ext, sizeof(o->ext), "png");
}

static cJSON *parse(const char *s, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(s, len);

    assert_non_null(j);
    return j;
}

static const char *part_b64(const cJSON *part)
{
    const cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(part, "inlineData"), "data");

    assert_true(cJSON_IsString(d));
    return d->valuestring;
}

static void expect_image(const cJSON *part, const char *blob)
{
    unsigned char *out = NULL;
    size_t len = 0;
    const char *s = part_b64(part);

    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(part, "inlineData"), "mimeType")->valuestring,
        "image/png");
    assert_int_equal(ig_gemini_b64_decode(s, strlen(s), 1000, &out, &len), IG_OK);
    assert_int_equal(len, sizeof(fake_png) - 1 + strlen(blob));
    assert_memory_equal(out + sizeof(fake_png) - 1, blob, strlen(blob));
    free(out);
}

static void test_gemini_dialect__render(void **state)
{
    struct ig_blob blob = {.ops = &fake_ops};
    struct ig_task t;
    struct ig_gemini_render r = {.blob = &blob, .public_url = "http://gw",
                                 .model_version = "gemini-2.5-flash-image",
                                 .response_id = "task_0123", .image_tokens = 1290};
    char *chunks[IG_MAX_OUTPUTS + 1], err[200];
    size_t lens[IG_MAX_OUTPUTS + 1];
    int n = 0;
    cJSON *j, *parts, *u;

    ig_task_init(&t);
    t.req.n = 1;
    t.text = ig_xstrdup("Here \"you\" go");
    t.usage.prompt_tokens = 17;
    add_output(&t, "aaa");
    add_output(&t, "bbb");
    r.t = &t;

    /* Whole: text first, then both images, one candidate; usage from the catalog's tokens. */
    assert_int_equal(ig_gemini_render_success(&r, true, chunks, lens, &n, err, sizeof(err)), IG_OK);
    assert_int_equal(n, 1);
    j = parse(chunks[0], lens[0]);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "candidates")), 1);
    parts = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "candidates"), 0), "content"),
        "parts");
    assert_int_equal(cJSON_GetArraySize(parts), 3);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(parts, 0), "text")->valuestring,
                        "Here \"you\" go");
    expect_image(cJSON_GetArrayItem(parts, 1), "aaa");
    expect_image(cJSON_GetArrayItem(parts, 2), "bbb");
    u = cJSON_GetObjectItem(j, "usageMetadata");
    assert_int_equal(cJSON_GetObjectItem(u, "candidatesTokenCount")->valueint, 2580);
    assert_int_equal(cJSON_GetObjectItem(u, "totalTokenCount")->valueint, 2597);
    assert_string_equal(cJSON_GetObjectItem(j, "responseId")->valuestring, "task_0123");
    cJSON_Delete(j);
    free(chunks[0]);

    /* A stream: the text, then each image alone; only the last finishes and counts. */
    assert_int_equal(ig_gemini_render_success(&r, false, chunks, lens, &n, err, sizeof(err)),
                     IG_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        const cJSON *c;

        j = parse(chunks[i], lens[i]);
        c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "candidates"), 0);
        parts = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "content"), "parts");
        assert_int_equal(cJSON_GetArraySize(parts), 1);
        assert_int_equal(cJSON_GetObjectItem(c, "finishReason") != NULL, i == 2);
        assert_int_equal(cJSON_GetObjectItem(j, "usageMetadata") != NULL, i == 2);
        if (i > 0)
            expect_image(cJSON_GetArrayItem(parts, 0), i == 1 ? "aaa" : "bbb");
        cJSON_Delete(j);
        free(chunks[i]);
    }

    /* response_format=url: fileData parts, no blob read. */
    r.urls = true;
    assert_int_equal(ig_gemini_render_success(&r, true, chunks, lens, &n, err, sizeof(err)), IG_OK);
    assert_non_null(strstr(chunks[0], "{\"fileData\":{\"mimeType\":\"image/png\",\"fileUri\":"
                                      "\"http://gw/media/tasks/00000000000000000000000000000000/"
                                      "1.png\"}}"));
    free(chunks[0]);
    r.urls = false;

    /* candidateCount 2: a candidate per image, indexed. */
    t.req.n = 2;
    assert_int_equal(ig_gemini_render_success(&r, true, chunks, lens, &n, err, sizeof(err)), IG_OK);
    j = parse(chunks[0], lens[0]);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "candidates")), 2);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "candidates"), 1), "index")
            ->valueint,
        1);
    cJSON_Delete(j);
    free(chunks[0]);

    /* A blob that cannot be read: an error, nothing handed out. */
    add_output(&t, "missing");
    assert_int_equal(ig_gemini_render_success(&r, false, chunks, lens, &n, err, sizeof(err)),
                     IG_E_IO);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "result image 2"));
    ig_task_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemini_dialect__b64_decode),
        cmocka_unit_test(test_gemini_dialect__b64_round_trip),
        cmocka_unit_test(test_gemini_dialect__moderation),
        cmocka_unit_test(test_gemini_dialect__render),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
