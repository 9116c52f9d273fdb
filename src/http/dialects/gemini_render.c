/* gemini_render.c: GenerateContentResponse bodies (wire-formats.md §1.5, §1.6) built from a
 * finished task, always in camelCase. The base64 of the images is written straight into the
 * output buffer: no JSON tree ever holds it. Pure apart from reading the blob store. */
#include "base/base.h"
#include "http/dialects/gemini_int.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B64_CHUNK (3 * 4096) /* input bytes per EVP_EncodeBlock call: a multiple of 3 */

enum ig_err ig_gemini_add_base64(struct ig_buf *b, const unsigned char *p, size_t n)
{
    unsigned char out[B64_CHUNK / 3 * 4 + 1];

    while (n > 0) {
        size_t k = n < B64_CHUNK ? n : B64_CHUNK;
        int m = EVP_EncodeBlock(out, p, (int)k);
        enum ig_err err;

        if (m < 0)
            return IG_E_INTERNAL;
        err = ig_buf_add(b, out, (size_t)m);
        if (err)
            return err;
        p += k;
        n -= k;
    }
    return IG_OK;
}

/* 0 = not in either alphabet; else value + 1. */
static unsigned char b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c - 'A' + 1);
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 27);
    if (c >= '0' && c <= '9')
        return (unsigned char)(c - '0' + 53);
    if (c == '+' || c == '-')
        return 63;
    if (c == '/' || c == '_')
        return 64;
    return 0;
}

enum ig_err ig_gemini_b64_decode(const char *s, size_t n, size_t max, unsigned char **out,
                                 size_t *outlen)
{
    unsigned char *buf;
    size_t o = 0, cap;
    uint32_t acc = 0;
    int bits = 0;

    /* Padding: at most two '=' at the very end, and only where a group of four ends. */
    if (n > 0 && s[n - 1] == '=') {
        if (n % 4)
            return IG_E_INVALID;
        n--;
        if (n > 0 && s[n - 1] == '=')
            n--;
    }
    if (n % 4 == 1)
        return IG_E_INVALID;
    cap = n / 4 * 3 + 3;
    if (n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > max)
        return IG_E_TOOBIG;
    buf = ig_xmalloc(cap);
    for (size_t i = 0; i < n; i++) {
        unsigned char v = b64_val((unsigned char)s[i]);

        if (!v) {
            free(buf);
            return IG_E_INVALID;
        }
        acc = (acc << 6) | (uint32_t)(v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) { /* leftover bits must be zero (canonical encoding) */
        free(buf);
        return IG_E_INVALID;
    }
    *out = buf;
    *outlen = o;
    return IG_OK;
}

/* A JSON string literal for s (quotes and escapes), appended. */
static enum ig_err add_json_string(struct ig_buf *b, const char *s)
{
    cJSON *str = cJSON_CreateString(s);
    char *printed = str ? cJSON_PrintUnformatted(str) : NULL;
    enum ig_err err;

    cJSON_Delete(str);
    if (!printed)
        IG_BUG("out of memory printing a JSON string");
    err = ig_buf_adds(b, printed);
    cJSON_free(printed);
    return err;
}

static int64_t image_tokens(const struct ig_gemini_render *r)
{
    if (r->t->usage.image_tokens > 0)
        return r->t->usage.image_tokens;
    return (int64_t)r->image_tokens * r->t->noutputs;
}

static enum ig_err add_usage(struct ig_buf *b, const struct ig_gemini_render *r)
{
    int64_t p = r->t->usage.prompt_tokens, im = image_tokens(r), tx = r->t->usage.text_tokens;
    enum ig_err err;

    err = ig_buf_addf(b,
                      "\"usageMetadata\":{\"promptTokenCount\":%lld,\"candidatesTokenCount\":%lld,"
                      "\"totalTokenCount\":%lld,\"promptTokensDetails\":[{\"modality\":\"TEXT\","
                      "\"tokenCount\":%lld}],\"candidatesTokensDetails\":[{\"modality\":\"IMAGE\","
                      "\"tokenCount\":%lld}",
                      (long long)p, (long long)(im + tx), (long long)(p + im + tx), (long long)p,
                      (long long)im);
    if (!err && tx > 0)
        err = ig_buf_addf(b, ",{\"modality\":\"TEXT\",\"tokenCount\":%lld}", (long long)tx);
    if (!err)
        err = ig_buf_adds(b, "]}");
    return err;
}

static enum ig_err add_tail(struct ig_buf *b, const struct ig_gemini_render *r, bool usage)
{
    enum ig_err err = IG_OK;

    if (usage) {
        err = ig_buf_adds(b, ",");
        if (!err)
            err = add_usage(b, r);
    }
    if (!err)
        err = ig_buf_adds(b, ",\"modelVersion\":");
    if (!err)
        err = add_json_string(b, r->model_version);
    if (!err)
        err = ig_buf_adds(b, ",\"responseId\":");
    if (!err)
        err = add_json_string(b, r->response_id);
    if (!err)
        err = ig_buf_adds(b, "}");
    return err;
}

/* One image part: inlineData with the bytes, or fileData with the stored media URL. */
static enum ig_err add_image_part(struct ig_buf *b, const struct ig_gemini_render *r, int i,
                                  char *errmsg, size_t errlen)
{
    const struct ig_output *o = &r->t->outputs[i];
    unsigned char *data = NULL;
    size_t len = 0;
    enum ig_err err;

    if (r->urls) {
        char hex[IG_ID_HEX_LEN + 1];

        ig_id_hex(&r->t->id, hex);
        return ig_buf_addf(b,
                           "{\"fileData\":{\"mimeType\":\"%s\",\"fileUri\":\"%s/media/tasks/%s/"
                           "%d.%s\"}}",
                           o->mime, r->public_url, hex, i, o->ext);
    }
    err = ig_blob_get(r->blob, o->blob, o->ext, IG_GEMINI_MAX_IMAGE_BYTES, &data, &len);
    if (err) {
        snprintf(errmsg, errlen, "result image %d could not be read: %s", i, ig_strerror(err));
        return IG_E_IO;
    }
    err = ig_buf_addf(b, "{\"inlineData\":{\"mimeType\":\"%s\",\"data\":\"", o->mime);
    if (!err)
        err = ig_gemini_add_base64(b, data, len);
    if (!err)
        err = ig_buf_adds(b, "\"}}");
    free(data);
    return err;
}

/* {"candidates":[{"content":{"role":"model","parts":[ ... opened; the caller adds parts. */
static enum ig_err open_candidate(struct ig_buf *b, bool first)
{
    return ig_buf_adds(b, first ? "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":["
                                : "{\"content\":{\"role\":\"model\",\"parts\":[");
}

static enum ig_err close_candidate(struct ig_buf *b, int index, bool finished)
{
    return ig_buf_addf(b, "]},%s\"index\":%d}", finished ? "\"finishReason\":\"STOP\"," : "",
                       index);
}

static void take(struct ig_buf *b, char **chunks, size_t *lens, int *n)
{
    chunks[*n] = ig_buf_detach(b, &lens[*n]);
    (*n)++;
}

enum ig_err ig_gemini_render_success(const struct ig_gemini_render *r, bool whole, char **chunks,
                                     size_t *lens, int *n, char *errmsg, size_t errlen)
{
    const struct ig_task *t = r->t;
    /* candidateCount > 1 asked for several candidates: one image each. */
    bool per_candidate = t->req.n > 1;
    bool text = t->text && t->text[0];
    struct ig_buf b = IG_BUF_INIT(IG_GEMINI_MAX_REPLY);
    enum ig_err err = IG_OK;

    *n = 0;
    errmsg[0] = '\0';
    if (whole) {
        err = open_candidate(&b, true);
        for (int i = 0; !err && i < t->noutputs; i++) {
            if (i > 0 && per_candidate) {
                err = close_candidate(&b, i - 1, true);
                if (!err)
                    err = ig_buf_adds(&b, ",");
                if (!err)
                    err = open_candidate(&b, false);
            }
            if (!err && i == 0 && text) {
                err = ig_buf_adds(&b, "{\"text\":");
                if (!err)
                    err = add_json_string(&b, t->text);
                if (!err)
                    err = ig_buf_adds(&b, "},");
            } else if (!err && i > 0 && !per_candidate) {
                err = ig_buf_adds(&b, ",");
            }
            if (!err)
                err = add_image_part(&b, r, i, errmsg, errlen);
        }
        if (!err)
            err = close_candidate(&b, per_candidate && t->noutputs ? t->noutputs - 1 : 0, true);
        if (!err)
            err = ig_buf_adds(&b, "]");
        if (!err)
            err = add_tail(&b, r, true);
        if (!err)
            take(&b, chunks, lens, n);
        goto out;
    }

    /* A stream: the text, then each image in its own event. */
    if (text && t->noutputs > 0) {
        err = open_candidate(&b, true);
        if (!err)
            err = ig_buf_adds(&b, "{\"text\":");
        if (!err)
            err = add_json_string(&b, t->text);
        if (!err)
            err = ig_buf_adds(&b, "}");
        if (!err)
            err = close_candidate(&b, 0, false);
        if (!err)
            err = ig_buf_adds(&b, "]");
        if (!err)
            err = add_tail(&b, r, false);
        if (!err)
            take(&b, chunks, lens, n);
    }
    for (int i = 0; !err && i < t->noutputs; i++) {
        bool last = i == t->noutputs - 1;

        err = open_candidate(&b, true);
        if (!err)
            err = add_image_part(&b, r, i, errmsg, errlen);
        if (!err)
            err = close_candidate(&b, per_candidate ? i : 0, last || per_candidate);
        if (!err)
            err = ig_buf_adds(&b, "]");
        if (!err)
            err = add_tail(&b, r, last);
        if (!err)
            take(&b, chunks, lens, n);
    }
out:
    ig_buf_release(&b);
    if (err) {
        for (int i = 0; i < *n; i++)
            free(chunks[i]);
        *n = 0;
        if (!errmsg[0])
            snprintf(errmsg, errlen, "the reply could not be built: %s", ig_strerror(err));
    }
    return err;
}

/* Copy the first word of s (letters, digits, '_') into out. */
static void first_word(const char *s, char *out, size_t outlen)
{
    size_t i = 0;

    while (s[i] && i + 1 < outlen &&
           ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        i++;
    memcpy(out, s, i);
    out[i] = '\0';
}

void ig_gemini_moderation(const struct ig_task *t, char *block, size_t blocklen, char *finish,
                          size_t finishlen, char *text, size_t textlen)
{
    /* The words the Gemini provider writes (gemini_wire.c, ig_gemini_parse_response). */
    static const char blocked[] = "prompt blocked by the model's safety system: ";
    static const char refused[] = "the model refused the request: ";
    static const char noimage[] = "the model returned no image (finishReason ";
    const char *m = t->err_message ? t->err_message : "";

    block[0] = finish[0] = text[0] = '\0';
    if (strncmp(m, blocked, sizeof(blocked) - 1) == 0) {
        first_word(m + sizeof(blocked) - 1, block, blocklen);
    } else if (strncmp(m, refused, sizeof(refused) - 1) == 0) {
        const char *rest = m + sizeof(refused) - 1;

        first_word(rest, finish, finishlen);
        rest += strlen(finish);
        if (strncmp(rest, ": ", 2) == 0)
            snprintf(text, textlen, "%s", rest + 2);
    } else if (strncmp(m, noimage, sizeof(noimage) - 1) == 0) {
        first_word(m + sizeof(noimage) - 1, finish, finishlen);
    }
    if (!block[0] && !finish[0] && t->err == IG_E_MODERATED) {
        /* Another provider's refusal: an image model's output refused. */
        snprintf(finish, finishlen, "IMAGE_SAFETY");
        snprintf(text, textlen, "%s", m);
    }
}
