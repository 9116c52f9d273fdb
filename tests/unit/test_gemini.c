/* test_gemini.c: the Gemini wire format (request, response, errors) and the "gemini" provider
 * against a fake upstream on loopback.
 *
 * The fake upstream is an evhttp server on 127.0.0.1 (port 0) on its own thread and
 * event_base; it answers from a script indexed by request count and records what it got. The
 * transport runs on the test thread's event_base. No test contacts an address outside
 * 127.0.0.0/8 (the proxy variables are cleared so a developer's proxy is not used). */
#include "base/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>

#include "core/catalog.h"
#include "core/task.h"
#include "net/transport.h"
#include "provider/channel.h"
#include "provider/gemini_wire.h"
#include "provider/provider.h"
#include "support/support.h"

/* ---- helpers ---- */

static char *b64(const void *p, size_t n)
{
    char *out = ig_xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static unsigned char *unb64(const char *s, size_t *n)
{
    size_t len = strlen(s), pad = 0;
    unsigned char *out = ig_xmalloc(len / 4 * 3 + 1);
    int m = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);

    assert_true(m >= 0);
    if (len && s[len - 1] == '=')
        pad++;
    if (len > 1 && s[len - 2] == '=')
        pad++;
    *n = (size_t)m - pad;
    return out;
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* Image bytes: the PNG signature, then a tag, then filler up to n bytes. */
static unsigned char *image_bytes(const char *tag, size_t n)
{
    unsigned char *p = ig_xmalloc(n);
    size_t tl = strlen(tag);

    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 3);
    memcpy(p, png_sig, n < 8 ? n : 8);
    if (n > 8 + tl)
        memcpy(p + 8, tag, tl);
    return p;
}

struct jobfx {
    struct ig_task task;
    struct ig_model model;
    struct ig_job job;
};

static void jobfx_init(struct jobfx *f, const char *prompt)
{
    memset(f, 0, sizeof(*f));
    ig_task_init(&f->task);
    f->task.req.prompt = ig_xstrdup(prompt);
    f->task.req.n = 1;
    snprintf(f->task.req.ratio, sizeof(f->task.req.ratio), "16:9");
    snprintf(f->task.req.resolution, sizeof(f->task.req.resolution), "1K");
    snprintf(f->model.id, sizeof(f->model.id), "gemini-2.5-flash-image");
    snprintf(f->model.upstream, sizeof(f->model.upstream), "gemini-2.5-flash-image");
    f->model.nres = 1;
    snprintf(f->model.res[0], sizeof(f->model.res[0]), "1K");
    f->job.task = &f->task;
    f->job.model = &f->model;
}

static void jobfx_release(struct jobfx *f)
{
    ig_job_release(&f->job);
    ig_task_release(&f->task);
}

static void add_ref(struct jobfx *f, const char *mime, const unsigned char *p, size_t n)
{
    struct ig_image *im = ig_job_add_ref(&f->job);

    im->data = ig_xmalloc(n ? n : 1);
    memcpy(im->data, p, n);
    im->len = n;
    snprintf(im->mime, sizeof(im->mime), "%s", mime);
}

static cJSON *build_parsed(struct jobfx *f, char **text)
{
    size_t len = 0;
    char *body = ig_gemini_build_request(&f->job, &len);
    cJSON *root;

    assert_non_null(body);
    assert_int_equal(len, strlen(body));
    root = cJSON_ParseWithLengthOpts(body, len, NULL, 0);
    assert_non_null(root);
    if (text)
        *text = body;
    else
        free(body);
    return root;
}

static const cJSON *path(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    assert_non_null(v);
    return v;
}

/* ---- build_request ---- */

static void test_gemini__build_text_only(void **state)
{
    struct jobfx f;
    char *body;
    cJSON *root;
    const cJSON *contents, *c0, *parts, *gc, *mods, *ic;

    jobfx_init(&f, "a cat on a mat");
    root = build_parsed(&f, &body);
    assert_string_equal(body, "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"a cat on a "
                              "mat\"}]}],\"generationConfig\":{\"responseModalities\":[\"TEXT\","
                              "\"IMAGE\"],\"imageConfig\":{\"aspectRatio\":\"16:9\"}}}");
    assert_int_equal(cJSON_GetArraySize(root), 2);
    contents = path(root, "contents");
    assert_true(cJSON_IsArray(contents));
    assert_int_equal(cJSON_GetArraySize(contents), 1);
    c0 = cJSON_GetArrayItem(contents, 0);
    assert_string_equal(path(c0, "role")->valuestring, "user");
    parts = path(c0, "parts");
    assert_int_equal(cJSON_GetArraySize(parts), 1);
    assert_string_equal(path(cJSON_GetArrayItem(parts, 0), "text")->valuestring, "a cat on a mat");
    gc = path(root, "generationConfig");
    mods = path(gc, "responseModalities");
    assert_int_equal(cJSON_GetArraySize(mods), 2);
    assert_string_equal(cJSON_GetArrayItem(mods, 0)->valuestring, "TEXT");
    assert_string_equal(cJSON_GetArrayItem(mods, 1)->valuestring, "IMAGE");
    assert_null(cJSON_GetObjectItemCaseSensitive(gc, "temperature"));
    assert_null(cJSON_GetObjectItemCaseSensitive(gc, "topP"));
    ic = path(gc, "imageConfig");
    assert_string_equal(path(ic, "aspectRatio")->valuestring, "16:9");
    assert_null(cJSON_GetObjectItemCaseSensitive(ic, "imageSize"));
    cJSON_Delete(root);
    free(body);

    /* No ratio: the model matches the reference; no imageConfig at all. */
    f.task.req.ratio[0] = '\0';
    root = build_parsed(&f, NULL);
    assert_null(cJSON_GetObjectItemCaseSensitive(path(root, "generationConfig"), "imageConfig"));
    cJSON_Delete(root);
    jobfx_release(&f);
}

/* What a Gemini API client sent beside its contents goes up as it came. */
static void test_gemini__build_passes_system_safety_topk_seed(void **state)
{
    struct jobfx f;
    char *body;
    cJSON *root;

    jobfx_init(&f, "a lighthouse");
    f.task.req.system = ig_xstrdup("Answer in the style of \"ukiyo-e\".");
    f.task.req.safety = ig_xstrdup("[{\"category\":\"HARM_CATEGORY_HARASSMENT\","
                                   "\"threshold\":\"BLOCK_ONLY_HIGH\"}]");
    f.task.req.has_top_k = true;
    f.task.req.top_k = 40;
    f.task.req.has_seed = true;
    f.task.req.seed = 7;
    root = build_parsed(&f, &body);
    assert_string_equal(body,
                        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"a lighthouse\"}]}],"
                        "\"generationConfig\":{\"responseModalities\":[\"TEXT\",\"IMAGE\"],\"topK\":40,"
                        "\"seed\":7,\"imageConfig\":{\"aspectRatio\":\"16:9\"}},"
                        "\"systemInstruction\":{\"parts\":[{\"text\":\"Answer in the style of "
                        "\\\"ukiyo-e\\\".\"}]},\"safetySettings\":[{\"category\":"
                        "\"HARM_CATEGORY_HARASSMENT\",\"threshold\":\"BLOCK_ONLY_HIGH\"}]}");
    cJSON_Delete(root);
    free(body);
    jobfx_release(&f);
}

static void test_gemini__build_references_in_order(void **state)
{
    struct jobfx f;
    /* Sizes around the encoder's chunk (12288 input bytes) and not multiples of 3. */
    size_t n0 = 100001, n1 = 12289;
    unsigned char *r0 = image_bytes("ref0", n0), *r1 = image_bytes("ref1", n1);
    cJSON *root;
    const cJSON *parts;
    char *whole;

    jobfx_init(&f, "merge these");
    add_ref(&f, "image/png", r0, n0);
    add_ref(&f, "image/jpeg", r1, n1);
    root = build_parsed(&f, NULL);
    parts = path(cJSON_GetArrayItem(path(root, "contents"), 0), "parts");
    assert_int_equal(cJSON_GetArraySize(parts), 3);
    assert_string_equal(path(cJSON_GetArrayItem(parts, 0), "text")->valuestring, "merge these");
    for (int i = 0; i < 2; i++) {
        const cJSON *inl = path(cJSON_GetArrayItem(parts, i + 1), "inlineData");
        const char *data = path(inl, "data")->valuestring;
        size_t n = 0;
        unsigned char *dec = unb64(data, &n);

        assert_string_equal(path(inl, "mimeType")->valuestring, i ? "image/jpeg" : "image/png");
        assert_int_equal(n, i ? n1 : n0);
        assert_memory_equal(dec, i ? r1 : r0, n);
        whole = b64(i ? r1 : r0, n);
        assert_string_equal(data, whole); /* chunked encoding == encoding the whole */
        free(whole);
        free(dec);
    }
    cJSON_Delete(root);
    free(r0);
    free(r1);
    jobfx_release(&f);
}

static void test_gemini__build_sampling_only_when_set(void **state)
{
    struct jobfx f;
    cJSON *root;
    const cJSON *gc;
    char *body;

    jobfx_init(&f, "x");
    f.task.req.has_temperature = true;
    f.task.req.temperature = 0.7;
    f.task.req.top_p = 0.5; /* not set: must not appear */
    root = build_parsed(&f, &body);
    gc = path(root, "generationConfig");
    assert_true(path(gc, "temperature")->valuedouble == 0.7);
    assert_non_null(strstr(body, "\"temperature\":0.7,"));
    assert_null(cJSON_GetObjectItemCaseSensitive(gc, "topP"));
    cJSON_Delete(root);
    free(body);

    f.task.req.has_temperature = false;
    f.task.req.has_top_p = true;
    f.task.req.top_p = 0.95;
    root = build_parsed(&f, NULL);
    gc = path(root, "generationConfig");
    assert_null(cJSON_GetObjectItemCaseSensitive(gc, "temperature"));
    assert_true(path(gc, "topP")->valuedouble == 0.95);
    cJSON_Delete(root);

    f.task.req.has_temperature = true;
    f.task.req.temperature = 0;
    root = build_parsed(&f, NULL);
    gc = path(root, "generationConfig");
    assert_true(path(gc, "temperature")->valuedouble == 0.0);
    assert_true(path(gc, "topP")->valuedouble == 0.95);
    cJSON_Delete(root);
    jobfx_release(&f);
}

static void test_gemini__build_image_size_only_multi_resolution(void **state)
{
    struct jobfx f;
    cJSON *root;
    const cJSON *ic;

    jobfx_init(&f, "x");
    root = build_parsed(&f, NULL);
    ic = path(path(root, "generationConfig"), "imageConfig");
    assert_null(cJSON_GetObjectItemCaseSensitive(ic, "imageSize"));
    cJSON_Delete(root);

    f.model.nres = 3;
    snprintf(f.model.res[1], sizeof(f.model.res[1]), "2K");
    snprintf(f.model.res[2], sizeof(f.model.res[2]), "4K");
    snprintf(f.task.req.resolution, sizeof(f.task.req.resolution), "2K");
    root = build_parsed(&f, NULL);
    ic = path(path(root, "generationConfig"), "imageConfig");
    assert_string_equal(path(ic, "imageSize")->valuestring, "2K");
    assert_string_equal(path(ic, "aspectRatio")->valuestring, "16:9");
    cJSON_Delete(root);

    f.task.req.ratio[0] = '\0'; /* imageSize alone */
    root = build_parsed(&f, NULL);
    ic = path(path(root, "generationConfig"), "imageConfig");
    assert_int_equal(cJSON_GetArraySize(ic), 1);
    assert_string_equal(path(ic, "imageSize")->valuestring, "2K");
    cJSON_Delete(root);
    jobfx_release(&f);
}

static void test_gemini__build_prompt_escaped(void **state)
{
    static const char prompt[] = "He said \"hi\"\nthen\ttabbed \\ back\r\x01\x1f\b\f "
                                 "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8d\x8c </script>";
    struct jobfx f;
    char *body;
    cJSON *root;
    const cJSON *parts;

    jobfx_init(&f, prompt);
    root = build_parsed(&f, &body);
    parts = path(cJSON_GetArrayItem(path(root, "contents"), 0), "parts");
    assert_string_equal(path(cJSON_GetArrayItem(parts, 0), "text")->valuestring, prompt);
    assert_non_null(strstr(body, "He said \\\"hi\\\"\\nthen\\ttabbed \\\\ back\\r\\u0001\\u001f"
                                 "\\b\\f caf\xc3\xa9"));
    for (const char *p = body; *p; p++)
        assert_true((unsigned char)*p >= 0x20); /* no raw control character survives */
    cJSON_Delete(root);
    free(body);
    jobfx_release(&f);
}

/* ---- parse_response ---- */

static char *response_with(const char *parts, const char *finish, const char *usage)
{
    return ig_xasprintf("{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[%s]},"
                        "\"finishReason\":\"%s\",\"index\":0}]%s%s,"
                        "\"modelVersion\":\"gemini-2.5-flash-image\",\"responseId\":\"resp-1\"}",
                        parts, finish, usage ? ",\"usageMetadata\":" : "", usage ? usage : "");
}

static char *image_part(const char *key, const char *mimekey, const unsigned char *p, size_t n)
{
    char *d = b64(p, n);
    char *s = ig_xasprintf("{\"%s\":{\"%s\":\"image/png\",\"data\":\"%s\"}}", key, mimekey, d);

    free(d);
    return s;
}

static enum ig_err parse(const char *body, struct ig_job *job)
{
    memset(job, 0, sizeof(*job));
    return ig_gemini_parse_response(body, strlen(body), job);
}

static void test_gemini__parse_one_image(void **state)
{
    unsigned char *img = image_bytes("one", 1000);
    char *part = image_part("inlineData", "mimeType", img, 1000);
    char *body = response_with(part, "STOP",
                               "{\"promptTokenCount\":17,\"candidatesTokenCount\":1290,"
                               "\"totalTokenCount\":1307,\"candidatesTokensDetails\":"
                               "[{\"modality\":\"IMAGE\",\"tokenCount\":1290}]}");
    struct ig_job job;

    assert_int_equal(parse(body, &job), IG_OK);
    assert_int_equal(job.err, IG_OK);
    assert_string_equal(job.errmsg, "");
    assert_int_equal(job.nimages, 1);
    assert_int_equal(job.images[0].len, 1000);
    assert_memory_equal(job.images[0].data, img, 1000);
    assert_string_equal(job.images[0].mime, "image/png");
    assert_int_equal(job.images[0].width, 0);
    assert_null(job.text);
    assert_int_equal(job.usage.prompt_tokens, 17);
    assert_int_equal(job.usage.image_tokens, 1290);
    assert_int_equal(job.usage.text_tokens, 0);
    assert_int_equal(job.usage.images, 1);
    assert_string_equal(job.model_version, "gemini-2.5-flash-image");
    assert_string_equal(job.response_id, "resp-1");
    ig_job_release(&job);
    free(body);
    free(part);
    free(img);
}

/* Google's own sample: candidatesTokenCount 1306 with only IMAGE 1290 detailed: the other 16
 * are text tokens (and are priced as such). */
static void test_gemini__parse_undetailed_tokens_are_text(void **state)
{
    unsigned char *a = image_bytes("A", 300);
    char *pa = image_part("inlineData", "mimeType", a, 300);
    char *body = response_with(pa, "STOP",
                               "{\"promptTokenCount\":5,\"candidatesTokenCount\":1306,"
                               "\"candidatesTokensDetails\":[{\"modality\":\"IMAGE\",\"tokenCount\":"
                               "1290}]}");
    struct ig_job job;

    assert_int_equal(parse(body, &job), IG_OK);
    assert_int_equal(job.usage.image_tokens, 1290);
    assert_int_equal(job.usage.text_tokens, 16);
    ig_job_release(&job);
    free(body);
    free(pa);
    free(a);
}

static void test_gemini__parse_two_images_and_text(void **state)
{
    unsigned char *a = image_bytes("A", 300), *b = image_bytes("B", 301);
    char *pa = image_part("inlineData", "mimeType", a, 300);
    char *pb = image_part("inlineData", "mimeType", b, 301);
    char *parts =
        ig_xasprintf("{\"text\":\"Here you go:\"},%s,{\"text\":\"and another\"},%s", pa, pb);
    char *body = response_with(parts, "STOP",
                               "{\"promptTokenCount\":20,\"candidatesTokenCount\":2592,"
                               "\"candidatesTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":"
                               "12},{\"modality\":\"IMAGE\",\"tokenCount\":1290},{\"modality\":"
                               "\"IMAGE\",\"tokenCount\":1290}]}");
    struct ig_job job;

    assert_int_equal(parse(body, &job), IG_OK);
    assert_int_equal(job.nimages, 2);
    assert_memory_equal(job.images[0].data, a, 300);
    assert_memory_equal(job.images[1].data, b, 301);
    assert_int_equal(job.images[1].len, 301);
    assert_string_equal(job.text, "Here you go:\nand another");
    assert_int_equal(job.usage.prompt_tokens, 20);
    assert_int_equal(job.usage.image_tokens, 2 * 1290);
    assert_int_equal(job.usage.text_tokens, 12);
    assert_int_equal(job.usage.images, 2);
    ig_job_release(&job);
    free(body);
    free(parts);
    free(pa);
    free(pb);
    free(a);
    free(b);
}

static void test_gemini__parse_every_candidate_and_skips_thoughts(void **state)
{
    unsigned char *a = image_bytes("A", 64), *t = image_bytes("T", 64);
    char *pa = image_part("inlineData", "mimeType", a, 64);
    char *pt = image_part("inlineData", "mimeType", t, 64);
    char *body;
    struct ig_job job;

    /* A thought image in candidate 0 (skipped), the answer in candidate 1. */
    pt[strlen(pt) - 1] = '\0'; /* reopen the part object to add "thought":true */
    body = ig_xasprintf("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"thinking...\","
                        "\"thought\":true},%s,\"thought\":true}]},\"finishReason\":\"STOP\"},"
                        "{\"content\":{\"parts\":[%s]},\"finishReason\":\"STOP\"}],"
                        "\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":99}}",
                        pt, pa);
    assert_int_equal(parse(body, &job), IG_OK);
    assert_int_equal(job.nimages, 1);
    assert_memory_equal(job.images[0].data, a, 64);
    assert_null(job.text);
    /* No modality details: everything counts as text. */
    assert_int_equal(job.usage.image_tokens, 0);
    assert_int_equal(job.usage.text_tokens, 99);
    ig_job_release(&job);
    free(body);
    free(pa);
    free(pt);
    free(a);
    free(t);
}

static void test_gemini__parse_snake_case(void **state)
{
    unsigned char *img = image_bytes("snake", 77);
    char *part = image_part("inline_data", "mime_type", img, 77);
    char *body = ig_xasprintf("{\"candidates\":[{\"content\":{\"parts\":[%s]},\"finish_reason\":"
                              "\"STOP\"}],\"usage_metadata\":{\"prompt_token_count\":9}}",
                              part);
    struct ig_job job;

    assert_int_equal(parse(body, &job), IG_OK);
    assert_int_equal(job.nimages, 1);
    assert_int_equal(job.images[0].len, 77);
    assert_memory_equal(job.images[0].data, img, 77);
    assert_string_equal(job.images[0].mime, "image/png");
    assert_int_equal(job.usage.prompt_tokens, 9);
    ig_job_release(&job);
    free(body);
    free(part);
    free(img);
}

static void test_gemini__parse_prompt_blocked(void **state)
{
    static const char body[] =
        "{\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},"
        "\"usageMetadata\":{\"promptTokenCount\":271,\"totalTokenCount\":271},"
        "\"modelVersion\":\"gemini-2.5-flash-image\",\"responseId\":\"r\"}";
    struct ig_job job;

    assert_int_equal(parse(body, &job), IG_E_MODERATED);
    assert_int_equal(job.err, IG_E_MODERATED);
    assert_string_equal(job.errmsg,
                        "prompt blocked by the model's safety system: PROHIBITED_CONTENT");
    assert_int_equal(job.nimages, 0);
    assert_int_equal(job.usage.prompt_tokens, 271);
    ig_job_release(&job);
}

static void test_gemini__parse_image_safety(void **state)
{
    unsigned char *img = image_bytes("unsafe", 50);
    char *part = image_part("inlineData", "mimeType", img, 50);
    char *parts = ig_xasprintf("%s,{\"text\":\"I can't make that.\"}", part);
    char *body = response_with(parts, "IMAGE_SAFETY", NULL);
    struct ig_job job;

    assert_int_equal(parse(body, &job), IG_E_MODERATED);
    assert_string_equal(job.errmsg, "the model refused the request: IMAGE_SAFETY: I can't make "
                                    "that.");
    assert_int_equal(job.nimages, 0); /* images that came with a safety stop are dropped */
    assert_null(job.images[0].data);
    ig_job_release(&job);
    free(body);
    free(parts);
    free(part);
    free(img);

    body = response_with("", "SAFETY", NULL);
    assert_int_equal(parse(body, &job), IG_E_MODERATED);
    assert_string_equal(job.errmsg, "the model refused the request: SAFETY");
    ig_job_release(&job);
    free(body);
}

static void test_gemini__parse_text_only_fails(void **state)
{
    char *body = response_with("{\"text\":\"Sorry, I can only describe images.\"}", "STOP", NULL);
    struct ig_job job;
    char big[2000], *parts;

    assert_int_equal(parse(body, &job), IG_E_UPSTREAM_FAILED);
    assert_string_equal(job.errmsg, "Sorry, I can only describe images.");
    assert_string_equal(job.text, "Sorry, I can only describe images.");
    assert_int_equal(job.nimages, 0);
    ig_job_release(&job);
    free(body);

    body = response_with("", "NO_IMAGE", NULL);
    assert_int_equal(parse(body, &job), IG_E_UPSTREAM_FAILED);
    assert_string_equal(job.errmsg, "the model returned no image (finishReason NO_IMAGE)");
    ig_job_release(&job);
    free(body);

    assert_int_equal(parse("{\"candidates\":[]}", &job), IG_E_UPSTREAM_FAILED);
    assert_string_equal(job.errmsg, "the model returned no image (no candidates)");
    ig_job_release(&job);

    /* A long text is cut at 400 bytes, on a UTF-8 boundary (3-byte characters). */
    for (size_t i = 0; i + 3 < sizeof(big); i += 3)
        memcpy(big + i, "\xe6\x97\xa5", 3);
    big[1998] = '\0';
    parts = ig_xasprintf("{\"text\":\"%s\"}", big);
    body = response_with(parts, "STOP", NULL);
    assert_int_equal(parse(body, &job), IG_E_UPSTREAM_FAILED);
    assert_int_equal(strlen(job.errmsg), 399);
    assert_true(ig_utf8_count(job.errmsg, strlen(job.errmsg)) == 133);
    assert_int_equal(strlen(job.text), 1998);
    ig_job_release(&job);
    free(body);
    free(parts);
}

static void expect_malformed(const char *body, size_t len)
{
    struct ig_job job;

    memset(&job, 0, sizeof(job));
    assert_int_equal(ig_gemini_parse_response(body, len, &job), IG_E_UPSTREAM_FAILED);
    assert_string_equal(job.errmsg, "upstream returned a malformed response");
    assert_int_equal(job.nimages, 0);
    assert_null(job.text);
    ig_job_release(&job);
}

static void test_gemini__parse_malformed(void **state)
{
    static const char *const bad_b64[] = {"abc",      "ab!d",       "a=bc", "ab c",
                                          "abcd====", "YWJj\nZGVm", "",     "===="};
    unsigned char *img = image_bytes("ok", 30);
    char *good = image_part("inlineData", "mimeType", img, 30);
    char *body = response_with(good, "STOP", NULL);

    expect_malformed("", 0);
    expect_malformed("not json", 8);
    expect_malformed("[1,2]", 5);
    expect_malformed("\"str\"", 5);
    expect_malformed(body, strlen(body) - 5); /* truncated */
    expect_malformed(body, strlen(body) / 2); /* truncated mid-base64 */
    {
        char *trailing = ig_xasprintf("%s}", body);

        expect_malformed(trailing, strlen(trailing));
        free(trailing);
    }
    for (size_t i = 0; i < IG_ARRAY_LEN(bad_b64); i++) {
        /* A good image first: it must be dropped too. */
        char *parts = ig_xasprintf("%s,{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":"
                                   "\"%s\"}}",
                                   good, bad_b64[i]);
        char *b = response_with(parts, "STOP", NULL);

        expect_malformed(b, strlen(b));
        free(b);
        free(parts);
    }
    /* An image part without data. */
    {
        char *b = response_with("{\"inlineData\":{\"mimeType\":\"image/png\"}}", "STOP", NULL);

        expect_malformed(b, strlen(b));
        free(b);
    }
    free(body);
    free(good);
    free(img);
}

static void test_gemini__parse_padding_exact_length(void **state)
{
    /* 1, 2 and 3 trailing bytes: "==", "=" and no padding. */
    for (size_t n = 10; n <= 12; n++) {
        unsigned char *img = image_bytes("p", n);
        char *part = image_part("inlineData", "mimeType", img, n);
        char *body = response_with(part, "STOP", NULL);
        struct ig_job job;

        assert_int_equal(parse(body, &job), IG_OK);
        assert_int_equal(job.images[0].len, n);
        assert_memory_equal(job.images[0].data, img, n);
        ig_job_release(&job);
        free(body);
        free(part);
        free(img);
    }
}

static void test_gemini__parse_large_image(void **state)
{
    size_t n = 3 * 1024 * 1024 / 4 * 3; /* 3 MB of base64 */
    unsigned char *img = image_bytes("large", n);
    char *part = image_part("inlineData", "mimeType", img, n);
    char *body = response_with(part, "STOP", NULL);
    struct ig_job job;
    struct timespec t0, t1;
    double ms;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(parse(body, &job), IG_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("parse of a %zu-byte response (3 MB of base64): %.2f ms\n", strlen(body), ms);
    assert_int_equal(job.nimages, 1);
    assert_int_equal(job.images[0].len, n);
    assert_memory_equal(job.images[0].data, img, n);
    ig_job_release(&job);
    free(body);
    free(part);
    free(img);
}

/* ---- parse_error ---- */

static void test_gemini__parse_error_retry_info(void **state)
{
    static const char body[] =
        "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, please check "
        "your plan.\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type."
        "googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{\"quotaValue\":\"250\"}]},"
        "{\"@type\":\"type.googleapis.com/google.rpc.Help\",\"links\":[]},"
        "{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"22s\"}]}}";
    struct ig_gemini_error ge;

    assert_int_equal(ig_gemini_parse_error(429, body, strlen(body), &ge), IG_OK);
    assert_int_equal(ge.retry_after_ms, 22000);
    assert_int_equal(ge.code, 429);
    assert_string_equal(ge.status, "RESOURCE_EXHAUSTED");
    assert_string_equal(ge.msg, "upstream 429 RESOURCE_EXHAUSTED: You exceeded your current "
                                "quota, please check your plan.");
}

static void test_gemini__parse_error_other_shapes(void **state)
{
    static const char key[] =
        "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API "
        "key.\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/"
        "google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\",\"domain\":\"googleapis.com\"}]}}";
    static const char html[] = "<html><body>502 Bad Gateway</body></html>";
    struct ig_gemini_error ge;

    assert_int_equal(ig_gemini_parse_error(400, key, strlen(key), &ge), IG_OK);
    assert_string_equal(ge.reason, "API_KEY_INVALID");
    assert_int_equal(ge.retry_after_ms, 0);
    assert_string_equal(ge.msg, "upstream 400 INVALID_ARGUMENT: API key not valid. Please pass "
                                "a valid API key.");

    assert_int_equal(ig_gemini_parse_error(502, html, strlen(html), &ge), IG_E_INVALID);
    assert_string_equal(ge.msg, "upstream answered HTTP 502");
    assert_int_equal(ig_gemini_parse_error(503, NULL, 0, &ge), IG_E_INVALID);
    assert_string_equal(ge.msg, "upstream answered HTTP 503");
    assert_int_equal(ig_gemini_parse_error(500, "{\"error\":\"x\"}", 13, &ge), IG_E_INVALID);

    /* Wrapped in an array, without status. */
    assert_int_equal(
        ig_gemini_parse_error(503, "[{\"error\":{\"code\":503,\"message\":\"busy\"}}]", 41, &ge),
        IG_OK);
    assert_string_equal(ge.msg, "upstream 503: busy");
}

static void test_gemini__durations(void **state)
{
    assert_int_equal(ig_gemini_parse_duration_ms("22s"), 22000);
    assert_int_equal(ig_gemini_parse_duration_ms("1.5s"), 1500);
    assert_int_equal(ig_gemini_parse_duration_ms("0.250s"), 250);
    assert_int_equal(ig_gemini_parse_duration_ms("0.000000001s"), 1); /* rounded up */
    assert_int_equal(ig_gemini_parse_duration_ms("0s"), 0);
    assert_int_equal(ig_gemini_parse_duration_ms("s"), -1);
    assert_int_equal(ig_gemini_parse_duration_ms("1.s"), -1);
    assert_int_equal(ig_gemini_parse_duration_ms("1.5"), -1);
    assert_int_equal(ig_gemini_parse_duration_ms("-1s"), -1);
    assert_int_equal(ig_gemini_parse_duration_ms("0.1234567891s"), -1);
    assert_int_equal(ig_gemini_parse_duration_ms(NULL), -1);

    assert_int_equal(ig_gemini_parse_retry_after(" 3\r\n", 0), 3000);
    assert_int_equal(ig_gemini_parse_retry_after("0", 0), 0);
    assert_int_equal(ig_gemini_parse_retry_after("soon", 0), -1);
    assert_int_equal(ig_gemini_parse_retry_after("", 0), -1);
    /* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
    assert_int_equal(
        ig_gemini_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000LL - 5000), 5000);
    assert_int_equal(
        ig_gemini_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000LL + 5000), 0);
}

/* ---- the fake upstream ---- */

enum reply_kind { R_IMAGE, R_STATUS, R_STALL, R_BIG };

struct reply {
    enum reply_kind kind;
    int status;
    const char *body;
    const char *retry_after;
};

#define MAX_SCRIPT 8
#define MAX_SEEN   8

struct server {
    struct ig_fake_http http;
    struct reply script[MAX_SCRIPT]; /* reply i to request i (the last repeats) */
    int nscript;
    char path[MAX_SEEN][256];
    char key[MAX_SEEN][64];
    char ctype[MAX_SEEN][64];
    char *body[MAX_SEEN];
};

static struct server srv;

static void reply_image(struct ig_fake_req *rq, int idx)
{
    char tag[16];
    unsigned char *img;
    char *part, *body;

    snprintf(tag, sizeof(tag), "img%d", idx);
    img = image_bytes(tag, 200);
    part = image_part("inlineData", "mimeType", img, 200);
    body = response_with(part, "STOP",
                         "{\"promptTokenCount\":10,\"candidatesTokenCount\":1290,"
                         "\"candidatesTokensDetails\":[{\"modality\":\"IMAGE\",\"tokenCount\":"
                         "1290}]}");
    ig_fake_reply_str(rq, 200, "application/json", body);
    free(body);
    free(part);
    free(img);
}

static void handle(struct ig_fake_req *rq, void *arg)
{
    struct server *s = arg;
    int idx = rq->index;
    struct reply r;

    ig_fake_http_lock(&s->http);
    if (idx < MAX_SEEN) {
        snprintf(s->path[idx], sizeof(s->path[idx]), "%s", rq->uri);
        ig_fake_header_copy(rq, "x-goog-api-key", s->key[idx], sizeof(s->key[idx]));
        ig_fake_header_copy(rq, "Content-Type", s->ctype[idx], sizeof(s->ctype[idx]));
        free(s->body[idx]);
        s->body[idx] = ig_xmalloc(rq->body_len + 1);
        memcpy(s->body[idx], rq->body, rq->body_len + 1);
    }
    r = s->script[idx < s->nscript ? idx : s->nscript - 1];
    ig_fake_http_unlock(&s->http);

    switch (r.kind) {
    case R_IMAGE:
        reply_image(rq, idx);
        break;
    case R_STATUS:
        if (r.retry_after)
            ig_fake_reply_header(rq, "Retry-After", r.retry_after);
        ig_fake_reply_str(rq, r.status, "application/json; charset=UTF-8", r.body);
        break;
    case R_BIG: {
        char *data = ig_xmalloc(64 * 1024);

        memset(data, ' ', 64 * 1024);
        ig_fake_reply(rq, 200, NULL, data, 64 * 1024);
        free(data);
        break;
    }
    case R_STALL:
        break; /* never answer: ig_fake_http_stop() reclaims it */
    }
}

static void server_stop(struct server *s)
{
    ig_fake_http_stop(&s->http);
    for (int i = 0; i < MAX_SEEN; i++)
        free(s->body[i]);
}

static void script(int n, ...)
{
    va_list ap;

    ig_fake_http_lock(&srv.http);
    va_start(ap, n);
    for (int i = 0; i < n && i < MAX_SCRIPT; i++)
        srv.script[i] = va_arg(ap, struct reply);
    va_end(ap);
    srv.nscript = n;
    ig_fake_http_unlock(&srv.http);
    ig_fake_http_reset(&srv.http);
}

/* ---- the client side ---- */

struct live {
    struct event_base *base;
    struct ig_transport *tp;
    struct ig_channel ch;
    struct ig_provider *p;
    struct jobfx f;
    int done_calls;
};

static void on_done(struct ig_job *job)
{
    struct live *l = job->arg;

    l->done_calls++;
    event_base_loopbreak(l->base);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static int live_setup(void **state)
{
    struct live *l = ig_xcalloc(1, sizeof(*l));
    struct ig_channel *c = &l->ch;

    l->base = event_base_new();
    l->tp = ig_transport_new(l->base);
    snprintf(c->name, sizeof(c->name), "gem-test");
    c->type = IG_CHANNEL_GEMINI;
    snprintf(c->base_url, sizeof(c->base_url), "http://127.0.0.1:%d", srv.http.port);
    c->nkeys = 2;
    snprintf(c->keys[0], sizeof(c->keys[0]), "AIzaKEY-one-secret");
    snprintf(c->keys[1], sizeof(c->keys[1]), "AIzaKEY-two-secret");
    c->timeout_ms = 5000;
    c->connect_timeout_ms = 2000;
    c->max_response_bytes = 1 << 20;
    l->p = ig_provider_gemini_new(c);
    jobfx_init(&l->f, "a banana in space");
    l->f.job.base = l->base;
    l->f.job.tp = l->tp;
    l->f.job.done = on_done;
    l->f.job.arg = l;
    snprintf(l->f.job.upstream_model, sizeof(l->f.job.upstream_model), "gemini-2.5-flash-image");
    *state = l;
    return 0;
}

static int live_teardown(void **state)
{
    struct live *l = *state;

    jobfx_release(&l->f);
    ig_provider_free(l->p);
    ig_transport_free(l->tp);
    event_base_free(l->base);
    free(l);
    return 0;
}

/* Start the job and run the loop until done (or 15 s). */
static void run_job(struct live *l)
{
    struct timeval tv = {15, 0};
    struct event *guard = evtimer_new(l->base, on_guard, l->base);

    assert_int_equal(ig_provider_start(l->p, &l->f.job), IG_OK);
    assert_int_equal(l->done_calls, 0); /* never inside start */
    evtimer_add(guard, &tv);
    while (l->done_calls == 0 && evtimer_pending(guard, NULL))
        event_base_loop(l->base, EVLOOP_ONCE);
    event_free(guard);
    assert_int_equal(l->done_calls, 1);
    assert_null(l->f.job.pctx);
    assert_int_equal(ig_transport_active(l->tp), 0);
    assert_string_equal(l->f.job.channel, "gem-test");
}

static void assert_no_key(const struct ig_job *job)
{
    assert_null(strstr(job->errmsg, "AIzaKEY"));
    assert_null(strstr(job->errmsg, "secret"));
}

static void test_gemini__live_success(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    cJSON *root;
    const cJSON *gc;

    script(1, (struct reply){R_IMAGE, 200, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_string_equal(job->errmsg, "");
    assert_int_equal(job->http_status, 200);
    assert_int_equal(job->nimages, 1);
    assert_int_equal(job->images[0].len, 200);
    assert_memory_equal(job->images[0].data, png_sig, 8);
    assert_memory_equal(job->images[0].data + 8, "img0", 4);
    assert_int_equal(job->usage.image_tokens, 1290);
    assert_int_equal(job->usage.prompt_tokens, 10);
    assert_int_equal(job->usage.images, 1);
    assert_string_equal(job->response_id, "resp-1");
    assert_true(job->bytes_in > 200);
    assert_false(job->retryable);
    assert_false(job->maybe_executed);
    assert_false(job->auth_failed);

    assert_int_equal(ig_fake_http_requests(&srv.http), 1);
    ig_fake_http_lock(&srv.http);
    assert_string_equal(srv.path[0], "/v1beta/models/gemini-2.5-flash-image:generateContent");
    assert_string_equal(srv.key[0], "AIzaKEY-one-secret");
    assert_string_equal(srv.ctype[0], "application/json");
    root = cJSON_Parse(srv.body[0]);
    ig_fake_http_unlock(&srv.http);
    assert_non_null(root);
    assert_string_equal(
        path(cJSON_GetArrayItem(path(cJSON_GetArrayItem(path(root, "contents"), 0), "parts"), 0),
             "text")
            ->valuestring,
        "a banana in space");
    gc = path(root, "generationConfig");
    assert_string_equal(path(path(gc, "imageConfig"), "aspectRatio")->valuestring, "16:9");
    assert_int_equal(cJSON_GetArraySize(path(gc, "responseModalities")), 2);
    cJSON_Delete(root);
}

static void test_gemini__live_503_retryable(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_STATUS, 503,
                             "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. "
                             "Please try again later.\",\"status\":\"UNAVAILABLE\"}}",
                             NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_int_equal(job->http_status, 503);
    assert_true(job->retryable);
    assert_false(job->maybe_executed);
    assert_false(job->auth_failed);
    assert_string_equal(job->errmsg, "upstream 503 UNAVAILABLE: The model is overloaded. Please "
                                     "try again later.");
    assert_int_equal(job->nimages, 0);
}

static void test_gemini__live_429_retry_after(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_STATUS, 429,
                             "{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":"
                             "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis."
                             "com/google.rpc.RetryInfo\",\"retryDelay\":\"22s\"}]}}",
                             "3"});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_int_equal(job->http_status, 429);
    assert_true(job->retryable);
    assert_int_equal(job->retry_after_ms, 3000); /* the header wins over RetryInfo */
    ig_job_reset_outputs(job);
    l->done_calls = 0;

    /* Without the header, RetryInfo speaks. */
    script(1, (struct reply){R_STATUS, 429,
                             "{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":"
                             "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis."
                             "com/google.rpc.RetryInfo\",\"retryDelay\":\"1.5s\"}]}}",
                             NULL});
    run_job(l);
    assert_int_equal(job->retry_after_ms, 1500);
    assert_true(job->retryable);
}

static void test_gemini__live_401_auth_failed(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_STATUS, 401,
                             "{\"error\":{\"code\":401,\"message\":\"bad key AIzaKEY-one-secret\","
                             "\"status\":\"UNAUTHENTICATED\"}}",
                             NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_true(job->auth_failed);
    assert_false(job->retryable);
    assert_int_equal(job->http_status, 401);
    assert_non_null(strstr(job->errmsg, "refused the API key of channel gem-test"));
    assert_no_key(job);
    ig_job_reset_outputs(job);
    l->done_calls = 0;

    /* Google's own shape: 400 INVALID_ARGUMENT with reason API_KEY_INVALID. */
    script(1, (struct reply){R_STATUS, 400,
                             "{\"error\":{\"code\":400,\"message\":\"API key not valid.\","
                             "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type."
                             "googleapis.com/google.rpc.ErrorInfo\",\"reason\":"
                             "\"API_KEY_INVALID\"}]}}",
                             NULL});
    run_job(l);
    assert_true(job->auth_failed);
    assert_no_key(job);
}

static void test_gemini__live_400_terminal(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_STATUS, 400,
                             "{\"error\":{\"code\":400,\"message\":\"Unsupported aspect ratio: "
                             "7:3\",\"status\":\"INVALID_ARGUMENT\"}}",
                             NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_FAILED);
    assert_int_equal(job->http_status, 400);
    assert_false(job->retryable);
    assert_false(job->maybe_executed);
    assert_false(job->auth_failed);
    assert_string_equal(job->errmsg,
                        "upstream 400 INVALID_ARGUMENT: Unsupported aspect ratio: 7:3");
}

static void test_gemini__live_500_504_maybe_executed(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_STATUS, 500, "oops", NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
    assert_string_equal(job->errmsg, "upstream answered HTTP 500");
    ig_job_reset_outputs(job);
    l->done_calls = 0;

    script(1, (struct reply){R_STATUS, 504,
                             "{\"error\":{\"code\":504,\"message\":\"Deadline expired\","
                             "\"status\":\"DEADLINE_EXCEEDED\"}}",
                             NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_TIMEOUT);
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
}

static void test_gemini__live_stall_times_out(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    int64_t t0 = ig_mono_ms();

    l->ch.timeout_ms = 300;
    script(1, (struct reply){R_STALL, 0, NULL, NULL});
    run_job(l);
    assert_true(ig_mono_ms() - t0 < 3000);
    assert_int_equal(job->err, IG_E_UPSTREAM_TIMEOUT);
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
    assert_int_equal(job->http_status, 0);
    assert_string_equal(job->errmsg, "the upstream did not answer within 300 ms");
}

static void test_gemini__live_response_too_big(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    l->ch.max_response_bytes = 4096;
    script(1, (struct reply){R_BIG, 200, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_FAILED);
    assert_string_equal(job->errmsg, "upstream response exceeds 4096 bytes");
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
    assert_int_equal(job->nimages, 0);
}

static void test_gemini__live_two_images(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    bool k1 = false, k2 = false;

    l->f.task.req.n = 2;
    script(1, (struct reply){R_IMAGE, 200, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_string_equal(job->errmsg, "");
    assert_int_equal(ig_fake_http_requests(&srv.http), 2);
    assert_int_equal(job->nimages, 2);
    assert_int_equal(job->usage.images, 2);
    assert_int_equal(job->usage.image_tokens, 2 * 1290);
    assert_int_equal(job->usage.prompt_tokens, 20);
    /* Each transfer asked once; the two answers are different images. */
    assert_memory_not_equal(job->images[0].data + 8, job->images[1].data + 8, 4);
    /* The keys went round robin. */
    ig_fake_http_lock(&srv.http);
    for (int i = 0; i < 2; i++) {
        k1 = k1 || strcmp(srv.key[i], "AIzaKEY-one-secret") == 0;
        k2 = k2 || strcmp(srv.key[i], "AIzaKEY-two-secret") == 0;
        assert_string_equal(srv.body[i], srv.body[0]); /* the same body for both */
    }
    ig_fake_http_unlock(&srv.http);
    assert_true(k1 && k2);
}

static void test_gemini__live_partial(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    l->f.task.req.n = 2;
    script(2, (struct reply){R_IMAGE, 200, NULL, NULL},
           (struct reply){R_STATUS, 503, "{\"error\":{\"code\":503,\"message\":\"busy\"}}", NULL});
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_int_equal(job->nimages, 1);
    assert_int_equal(job->usage.images, 1);
    assert_string_equal(job->errmsg, "1 of 2 images were produced");
    /* the failed call never ran: the router may ask again for the missing image */
    assert_true(job->retryable);
    assert_false(job->maybe_executed);
    assert_int_equal(job->http_status, 503);
}

static void test_gemini__live_connection_refused(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* Take a free port, then close it: nothing listens there. */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    snprintf(l->ch.base_url, sizeof(l->ch.base_url), "http://127.0.0.1:%d", ntohs(sin.sin_port));

    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_true(job->retryable);
    assert_false(job->maybe_executed);
    assert_int_equal(job->http_status, 0);
    assert_non_null(strstr(job->errmsg, "could not reach the upstream: "));
}

static void test_gemini__live_moderated(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_STATUS, 200,
                             "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":"
                             "{\"promptTokenCount\":8}}",
                             NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_MODERATED);
    assert_int_equal(job->http_status, 200);
    assert_false(job->retryable);
    assert_false(job->maybe_executed);
    assert_string_equal(job->errmsg, "prompt blocked by the model's safety system: SAFETY");
}

static void test_gemini__live_message_quoting_key_withheld(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_STATUS, 404,
                             "{\"error\":{\"code\":404,\"message\":\"no model for key "
                             "AIzaKEY-one-secret\",\"status\":\"NOT_FOUND\"}}",
                             NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_FAILED);
    assert_int_equal(job->http_status, 404);
    assert_no_key(job);
    assert_non_null(strstr(job->errmsg, "withheld"));
}

static void test_gemini__live_large_reference(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    size_t n = 1500 * 1000, got = 0;
    unsigned char *ref = image_bytes("bigref", n), *dec;
    int64_t t0 = ig_mono_ms();
    cJSON *root;
    const cJSON *parts;

    add_ref(&l->f, "image/png", ref, n);
    script(1, (struct reply){R_IMAGE, 200, NULL, NULL});
    run_job(l);
    /* No 100-continue round (libcurl waits up to 1 s for it on bodies over 1 MB). */
    assert_true(ig_mono_ms() - t0 < 900);
    assert_int_equal(job->err, IG_OK);
    ig_fake_http_lock(&srv.http);
    root = cJSON_Parse(srv.body[0]);
    ig_fake_http_unlock(&srv.http);
    assert_non_null(root);
    parts = path(cJSON_GetArrayItem(path(root, "contents"), 0), "parts");
    assert_int_equal(cJSON_GetArraySize(parts), 2);
    dec = unb64(path(path(cJSON_GetArrayItem(parts, 1), "inlineData"), "data")->valuestring, &got);
    assert_int_equal(got, n);
    assert_memory_equal(dec, ref, n);
    free(dec);
    cJSON_Delete(root);
    free(ref);
}

/* Many jobs over one transport, WINDOW in flight, a new one started as each ends (connections
 * are reused and replaced all along): every one ends once, with its image. */
enum { MANY_JOBS = 2000, MANY_WINDOW = 256 };

struct many {
    struct live *l;
    struct jobfx *fs;
    int started, ended, failed;
};

static struct many many;

static void many_start_next(void)
{
    struct jobfx *f = &many.fs[many.started++];

    jobfx_init(f, "many");
    f->job.base = many.l->base;
    f->job.tp = many.l->tp;
    f->job.done = NULL;
    f->job.arg = NULL;
}

static void on_many_done(struct ig_job *job)
{
    if (job->err || job->nimages != 1) {
        if (many.failed++ < 5)
            print_message("job failed: %s: %s\n", ig_strerror(job->err), job->errmsg);
    }
    many.ended++;
    ig_job_release(job);
    if (many.started < MANY_JOBS) {
        struct jobfx *f = &many.fs[many.started];

        many_start_next();
        f->job.done = on_many_done;
        if (ig_provider_start(many.l->p, &f->job) != IG_OK)
            many.failed++, many.ended++;
    }
}

static void test_gemini__live_many_jobs(void **state)
{
    struct live *l = *state;
    struct timeval tv = {60, 0};
    struct event *guard = evtimer_new(l->base, on_guard, l->base);
    int64_t t0 = ig_mono_ms();

    l->ch.timeout_ms = 2000;
    script(1, (struct reply){R_IMAGE, 200, NULL, NULL});
    memset(&many, 0, sizeof(many));
    many.l = l;
    many.fs = ig_xcalloc(MANY_JOBS, sizeof(*many.fs));
    for (int i = 0; i < MANY_WINDOW; i++) {
        struct jobfx *f = &many.fs[many.started];

        many_start_next();
        f->job.done = on_many_done;
        assert_int_equal(ig_provider_start(l->p, &f->job), IG_OK);
    }
    evtimer_add(guard, &tv);
    while (many.ended < MANY_JOBS && evtimer_pending(guard, NULL))
        event_base_loop(l->base, EVLOOP_ONCE);
    event_free(guard);
    print_message("%d jobs, %d at a time, in %lld ms\n", MANY_JOBS, MANY_WINDOW,
                  (long long)(ig_mono_ms() - t0));
    assert_int_equal(many.ended, MANY_JOBS);
    assert_int_equal(many.failed, 0);
    for (int i = 0; i < MANY_JOBS; i++)
        ig_task_release(&many.fs[i].task);
    free(many.fs);
}

static void test_gemini__live_bad_model_id(void **state)
{
    struct live *l = *state;

    snprintf(l->f.job.upstream_model, sizeof(l->f.job.upstream_model), "../x?key=1");
    assert_int_equal(ig_provider_start(l->p, &l->f.job), IG_E_INVALID);
    assert_int_equal(l->done_calls, 0);
    assert_null(l->f.job.pctx);
}

static int group_setup(void **state)
{
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};

    if (getenv("IG_TEST_DEBUG"))
        ig_log_set_level(IG_LOG_DEBUG);
    for (size_t i = 0; i < IG_ARRAY_LEN(proxies); i++)
        unsetenv(proxies[i]);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    if (evthread_use_pthreads() != 0)
        return -1;
    return ig_fake_http_start(&srv.http, handle, &srv);
}

static int group_teardown(void **state)
{
    server_stop(&srv);
    curl_global_cleanup();
    libevent_global_shutdown();
    return 0;
}

#define L(name) cmocka_unit_test_setup_teardown(name, live_setup, live_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemini__build_text_only),
        cmocka_unit_test(test_gemini__build_passes_system_safety_topk_seed),
        cmocka_unit_test(test_gemini__build_references_in_order),
        cmocka_unit_test(test_gemini__build_sampling_only_when_set),
        cmocka_unit_test(test_gemini__build_image_size_only_multi_resolution),
        cmocka_unit_test(test_gemini__build_prompt_escaped),
        cmocka_unit_test(test_gemini__parse_one_image),
        cmocka_unit_test(test_gemini__parse_two_images_and_text),
        cmocka_unit_test(test_gemini__parse_undetailed_tokens_are_text),
        cmocka_unit_test(test_gemini__parse_every_candidate_and_skips_thoughts),
        cmocka_unit_test(test_gemini__parse_snake_case),
        cmocka_unit_test(test_gemini__parse_prompt_blocked),
        cmocka_unit_test(test_gemini__parse_image_safety),
        cmocka_unit_test(test_gemini__parse_text_only_fails),
        cmocka_unit_test(test_gemini__parse_malformed),
        cmocka_unit_test(test_gemini__parse_padding_exact_length),
        cmocka_unit_test(test_gemini__parse_large_image),
        cmocka_unit_test(test_gemini__parse_error_retry_info),
        cmocka_unit_test(test_gemini__parse_error_other_shapes),
        cmocka_unit_test(test_gemini__durations),
        L(test_gemini__live_success),
        L(test_gemini__live_503_retryable),
        L(test_gemini__live_429_retry_after),
        L(test_gemini__live_401_auth_failed),
        L(test_gemini__live_400_terminal),
        L(test_gemini__live_500_504_maybe_executed),
        L(test_gemini__live_stall_times_out),
        L(test_gemini__live_response_too_big),
        L(test_gemini__live_two_images),
        L(test_gemini__live_partial),
        L(test_gemini__live_connection_refused),
        L(test_gemini__live_moderated),
        L(test_gemini__live_message_quoting_key_withheld),
        L(test_gemini__live_large_reference),
        L(test_gemini__live_many_jobs),
        L(test_gemini__live_bad_model_id),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
