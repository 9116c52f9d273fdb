/* gemini_wire.c: the Gemini API wire format: request building, response and error parsing.
 *
 * Responses are read with cJSON; the request is written by hand into an ig_buf, because its
 * bulk is base64 (a 7 MB reference is ~9.4 MB of text) that a JSON tree would hold twice. */
#include "base/base.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "provider/gemini_wire.h"

#define B64_CHUNK (3 * 4096) /* bytes encoded per EVP_EncodeBlock call: a multiple of 3 */

/* ---- small helpers ---- */

/* If s[0..n) is not valid UTF-8, every byte above 0x7f becomes '?'. */
static void force_utf8(char *s, size_t n)
{
    if (ig_utf8_count(s, n) < 0)
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] > 0x7f)
                s[i] = '?';
}

/* Copy at most max bytes of s into dst (dstlen > 0), never splitting a UTF-8 sequence; if
 * the result is not valid UTF-8 every byte above 0x7f becomes '?', so a message built from
 * upstream text is always valid UTF-8. Returns the bytes written. */
static size_t put_text(char *dst, size_t dstlen, const char *s, size_t max)
{
    size_t slen = strlen(s), n = slen;

    if (n > max)
        n = max;
    if (n > dstlen - 1)
        n = dstlen - 1;
    if (n < slen)
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--; /* s[n] continues a sequence: cut before its lead byte */
    memmove(dst, s, n);
    dst[n] = '\0';
    force_utf8(dst, n);
    return n;
}

/* Append s after the text already in dst (NUL-terminated, size dstlen), as put_text. */
static void append_text(char *dst, size_t dstlen, const char *s, size_t max)
{
    size_t used = strlen(dst);

    if (used + 1 < dstlen)
        put_text(dst + used, dstlen - used, s, max);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* A member by its lowerCamelCase name or, failing that, its proto (snake_case) name: proto3
 * JSON parsers accept both (wire-formats.md §1.4), and relays do send snake_case. */
static cJSON *field(const cJSON *obj, const char *camel, const char *snake)
{
    cJSON *it;

    if (!cJSON_IsObject(obj))
        return NULL;
    it = cJSON_GetObjectItemCaseSensitive(obj, camel);
    if (!it && snake)
        it = cJSON_GetObjectItemCaseSensitive(obj, snake);
    return it;
}

static const char *field_str(const cJSON *obj, const char *camel, const char *snake)
{
    cJSON *it = field(obj, camel, snake);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* A non-negative integer count; 0 for anything else. Token counts arrive as JSON numbers
 * (int32 in the proto); int64 fields may come as strings in proto3 JSON, accepted too. */
static int64_t field_count(const cJSON *obj, const char *camel, const char *snake)
{
    cJSON *it = field(obj, camel, snake);
    double v;

    if (cJSON_IsNumber(it))
        v = it->valuedouble;
    else if (cJSON_IsString(it))
        v = strtod(it->valuestring, NULL);
    else
        return 0;
    if (!(v >= 0) || v > 1e15)
        return 0;
    return (int64_t)v;
}

/* The array, or NULL when it is anything else (cJSON_ArrayForEach would walk an object). */
static const cJSON *array_of(const cJSON *a)
{
    return cJSON_IsArray(a) ? a : NULL;
}

/* Parse exactly body[0..len): one JSON value, optionally surrounded by whitespace. */
static cJSON *parse_json(const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *root;

    if (!body || len == 0)
        return NULL;
    root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root)
        return NULL;
    for (const char *p = end; p && p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

/* ---- request ---- */

static enum ig_err add_json_string(struct ig_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s, *p;
    enum ig_err err = ig_buf_add(b, "\"", 1);

    for (p = s; !err && *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[7];
        size_t n = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
            break;
        }
        err = ig_buf_add(b, run, (size_t)(p - run));
        if (!err)
            err = ig_buf_add(b, esc, n);
        run = p + 1;
    }
    if (!err)
        err = ig_buf_add(b, run, (size_t)(p - run));
    if (!err)
        err = ig_buf_add(b, "\"", 1);
    return err;
}

/* The shortest of %.15g / %.17g that reads back as the same double ("0.7", not
 * "0.69999999999999996"). Non-finite values are not JSON: the caller skips them. */
static enum ig_err add_json_number(struct ig_buf *b, double v)
{
    char s[32];

    snprintf(s, sizeof(s), "%.15g", v);
    if (strtod(s, NULL) != v)
        snprintf(s, sizeof(s), "%.17g", v);
    return ig_buf_adds(b, s);
}

/* Standard base64 with padding, written straight into b in chunks of B64_CHUNK input bytes
 * (a multiple of 3, so the chunks join into the encoding of the whole). */
static enum ig_err add_base64(struct ig_buf *b, const unsigned char *p, size_t n)
{
    unsigned char out[B64_CHUNK / 3 * 4 + 1];
    enum ig_err err = IG_OK;

    while (!err && n > 0) {
        size_t k = n < B64_CHUNK ? n : B64_CHUNK;
        int m = EVP_EncodeBlock(out, p, (int)k);

        err = m < 0 ? IG_E_INTERNAL : ig_buf_add(b, out, (size_t)m);
        p += k;
        n -= k;
    }
    return err;
}

char *ig_gemini_build_request(const struct ig_job *job, size_t *len)
{
    struct ig_buf b = IG_BUF_INIT(IG_GEMINI_MAX_REQUEST);
    const struct ig_request *req;
    bool sized, ratio;
    enum ig_err err;

    if (!job || !job->task)
        return NULL;
    req = &job->task->req;
    err = ig_buf_adds(&b, "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":");
    if (!err)
        err = add_json_string(&b, req->prompt ? req->prompt : "");
    if (!err)
        err = ig_buf_adds(&b, "}");
    for (int i = 0; !err && i < job->nrefs && i < IG_MAX_REFS; i++) {
        const struct ig_image *ref = &job->refs[i];

        err = ig_buf_adds(&b, ",{\"inlineData\":{\"mimeType\":");
        if (!err)
            err = add_json_string(&b, ref->mime[0] ? ref->mime : "application/octet-stream");
        if (!err)
            err = ig_buf_adds(&b, ",\"data\":\"");
        if (!err && ref->data)
            err = add_base64(&b, ref->data, ref->len);
        if (!err)
            err = ig_buf_adds(&b, "\"}}");
    }
    if (!err)
        err = ig_buf_adds(&b,
                          "]}],\"generationConfig\":{\"responseModalities\":[\"TEXT\",\"IMAGE\"]");
    if (!err && req->has_temperature && isfinite(req->temperature)) {
        err = ig_buf_adds(&b, ",\"temperature\":");
        if (!err)
            err = add_json_number(&b, req->temperature);
    }
    if (!err && req->has_top_p && isfinite(req->top_p)) {
        err = ig_buf_adds(&b, ",\"topP\":");
        if (!err)
            err = add_json_number(&b, req->top_p);
    }
    if (!err && req->has_top_k)
        err = ig_buf_addf(&b, ",\"topK\":%d", req->top_k);
    if (!err && req->has_seed)
        err = ig_buf_addf(&b, ",\"seed\":%d", req->seed);
    /* An empty ratio lets the model match the first reference (its documented default). A
     * model with one resolution (gemini-2.5-flash-image: 1K) takes no imageSize. */
    ratio = req->ratio[0] != '\0';
    sized = job->model && job->model->nres > 1 && req->resolution[0] != '\0';
    if (!err && (ratio || sized)) {
        err = ig_buf_adds(&b, ",\"imageConfig\":{");
        if (!err && ratio) {
            err = ig_buf_adds(&b, "\"aspectRatio\":");
            if (!err)
                err = add_json_string(&b, req->ratio);
        }
        if (!err && sized) {
            err = ig_buf_adds(&b, ratio ? ",\"imageSize\":" : "\"imageSize\":");
            if (!err)
                err = add_json_string(&b, req->resolution);
        }
        if (!err)
            err = ig_buf_adds(&b, "}");
    }
    if (!err)
        err = ig_buf_adds(&b, "}");
    /* What a Gemini API client sent beside its contents goes up as it came (the dialect
     * checked it): the system instruction's text, and safetySettings as a compact array. */
    if (!err && req->system) {
        err = ig_buf_adds(&b, ",\"systemInstruction\":{\"parts\":[{\"text\":");
        if (!err)
            err = add_json_string(&b, req->system);
        if (!err)
            err = ig_buf_adds(&b, "}]}");
    }
    if (!err && req->safety && req->safety[0] == '[') {
        err = ig_buf_adds(&b, ",\"safetySettings\":");
        if (!err)
            err = ig_buf_adds(&b, req->safety);
    }
    if (!err)
        err = ig_buf_adds(&b, "}");
    if (err) {
        ig_buf_release(&b);
        return NULL;
    }
    return ig_buf_detach(&b, len);
}

/* ---- response ---- */

static const char *const safety_reasons[] = {
    "SAFETY",    "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT",
    "BLOCKLIST", "SPII",         "RECITATION",         "IMAGE_RECITATION",
};

static bool is_safety_reason(const char *r)
{
    for (size_t i = 0; i < IG_ARRAY_LEN(safety_reasons); i++)
        if (strcmp(r, safety_reasons[i]) == 0)
            return true;
    return false;
}

static const signed char b64_value[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['+'] = 1, ['/'] = 1,
};

/* Standard base64 with '=' padding, nothing else (no whitespace, no URL-safe alphabet, no
 * '=' but at the end): what the Gemini API sends. EVP_DecodeBlock counts padding as zero
 * bytes, so the exact length subtracts it. */
static enum ig_err b64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
    size_t pad = 0;
    unsigned char *buf;
    int m;

    if (n == 0 || n % 4 != 0 || n > INT_MAX)
        return IG_E_INVALID;
    if (s[n - 1] == '=') {
        pad = 1;
        if (s[n - 2] == '=')
            pad = 2;
    }
    for (size_t i = 0; i < n - pad; i++)
        if (!b64_value[(unsigned char)s[i]])
            return IG_E_INVALID;
    buf = malloc(n / 4 * 3 + 1);
    if (!buf)
        return IG_E_NOMEM;
    m = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
    if (m < 0 || (size_t)m != n / 4 * 3 || (size_t)m <= pad) {
        free(buf);
        return IG_E_INVALID;
    }
    *out = buf;
    *outlen = (size_t)m - pad;
    return IG_OK;
}

/* One inlineData part: decoded into the next image slot if it is an image. Parts beyond
 * IG_MAX_OUTPUTS images are not decoded. Non-image inline data (audio) is ignored. */
static enum ig_err take_inline(const cJSON *inl, struct ig_job *job)
{
    const char *mime = field_str(inl, "mimeType", "mime_type");
    cJSON *data = field(inl, "data", NULL);
    struct ig_image *im;
    enum ig_err err;

    if (!mime || strncasecmp(mime, "image/", 6) != 0)
        return IG_OK;
    if (!cJSON_IsString(data) || strlen(mime) >= sizeof(im->mime))
        return IG_E_INVALID;
    if (job->nimages >= IG_MAX_OUTPUTS)
        return IG_OK;
    im = &job->images[job->nimages];
    err = b64_decode(data->valuestring, strlen(data->valuestring), &im->data, &im->len);
    if (err)
        return err;
    for (size_t i = 0; mime[i]; i++)
        im->mime[i] = (char)(mime[i] >= 'A' && mime[i] <= 'Z' ? mime[i] - 'A' + 'a' : mime[i]);
    im->mime[strlen(mime)] = '\0';
    im->width = im->height = 0; /* the engine reads the real size from the bytes */
    job->nimages++;
    return IG_OK;
}

static void parse_usage(const cJSON *root, struct ig_job *job)
{
    const cJSON *um = field(root, "usageMetadata", "usage_metadata");
    const cJSON *details = field(um, "candidatesTokensDetails", "candidates_tokens_details");
    const cJSON *d;

    memset(&job->usage, 0, sizeof(job->usage));
    job->usage.prompt_tokens = field_count(um, "promptTokenCount", "prompt_token_count");
    if (cJSON_IsArray(details) && cJSON_GetArraySize(details) > 0) {
        int64_t total = field_count(um, "candidatesTokenCount", "candidates_token_count");

        cJSON_ArrayForEach(d, details)
        {
            const char *mod = field_str(d, "modality", NULL);
            int64_t n = field_count(d, "tokenCount", "token_count");

            if (mod && strcmp(mod, "IMAGE") == 0)
                job->usage.image_tokens += n;
            else if (mod && strcmp(mod, "TEXT") == 0)
                job->usage.text_tokens += n;
        }
        /* Google details only some modalities (an IMAGE 1290 inside a candidatesTokenCount
         * of 1306): what the details leave out of the total is text. */
        if (total > job->usage.image_tokens + job->usage.text_tokens)
            job->usage.text_tokens = total - job->usage.image_tokens;
    } else {
        job->usage.text_tokens = field_count(um, "candidatesTokenCount", "candidates_token_count");
    }
}

static void drop_images(struct ig_job *job)
{
    for (int i = 0; i < job->nimages; i++)
        ig_image_release(&job->images[i]);
    job->nimages = 0;
}

static enum ig_err set_result(struct ig_job *job, enum ig_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum ig_err set_result(struct ig_job *job, enum ig_err err, const char *fmt, ...)
{
    va_list ap;

    job->err = err;
    va_start(ap, fmt);
    vsnprintf(job->errmsg, sizeof(job->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

enum ig_err ig_gemini_parse_response(const char *body, size_t len, struct ig_job *job)
{
    cJSON *root = parse_json(body, len);
    const cJSON *cands, *cand;
    struct ig_buf text = IG_BUF_INIT(len + 1); /* text parts are shorter than the body */
    char first_reason[48] = "", safety[48] = "";
    const char *block, *s;
    bool malformed = false;
    int ncands = 0;

    job->errmsg[0] = '\0';
    if (!cJSON_IsObject(root)) {
        malformed = true;
        goto out;
    }
    cands = field(root, "candidates", NULL);
    cJSON_ArrayForEach(cand, array_of(cands))
    {
        const cJSON *parts, *part;
        const char *fr = field_str(cand, "finishReason", "finish_reason");

        if (!cJSON_IsObject(cand))
            continue;
        ncands++;
        if (fr && !first_reason[0])
            put_text(first_reason, sizeof(first_reason), fr, sizeof(first_reason) - 1);
        if (fr && !safety[0] && is_safety_reason(fr))
            put_text(safety, sizeof(safety), fr, sizeof(safety) - 1);
        parts = field(field(cand, "content", NULL), "parts", NULL);
        cJSON_ArrayForEach(part, array_of(parts))
        {
            const cJSON *inl;

            /* Thinking models (3 Pro Image) send draft images and reasoning as "thought"
             * parts: neither is the answer. */
            if (cJSON_IsTrue(field(part, "thought", NULL)))
                continue;
            s = field_str(part, "text", NULL);
            if (s && *s) {
                if ((text.len && ig_buf_add(&text, "\n", 1)) || ig_buf_adds(&text, s)) {
                    malformed = true;
                    goto out;
                }
            }
            inl = field(part, "inlineData", "inline_data");
            if (cJSON_IsObject(inl) && take_inline(inl, job)) {
                malformed = true;
                goto out;
            }
        }
    }
    parse_usage(root, job);
    s = field_str(root, "modelVersion", "model_version");
    if (s)
        put_text(job->model_version, sizeof(job->model_version), s, sizeof(job->model_version));
    s = field_str(root, "responseId", "response_id");
    if (s)
        put_text(job->response_id, sizeof(job->response_id), s, sizeof(job->response_id));
    if (text.len) {
        size_t n;

        job->text = ig_buf_detach(&text, &n);
        force_utf8(job->text, n); /* it reaches clients: keep it valid UTF-8 */
    }

    block =
        field_str(field(root, "promptFeedback", "prompt_feedback"), "blockReason", "block_reason");
    if (ncands == 0 && block) {
        set_result(job, IG_E_MODERATED, "prompt blocked by the model's safety system: ");
        append_text(job->errmsg, sizeof(job->errmsg), block, 64);
    } else if (safety[0]) {
        /* A safety finishReason means the upstream flagged what it made: images that came
         * with it are dropped rather than served past the model's own policy, and the
         * outcome is MODERATED (nothing usable, not a fault to retry). */
        drop_images(job);
        set_result(job, IG_E_MODERATED, "the model refused the request: %s", safety);
        if (job->text) {
            append_text(job->errmsg, sizeof(job->errmsg), ": ", 2);
            append_text(job->errmsg, sizeof(job->errmsg), job->text, sizeof(job->errmsg));
        }
    } else if (job->nimages == 0) {
        /* Usually a refusal or a question in words: the model's text says it best. */
        job->err = IG_E_UPSTREAM_FAILED;
        if (job->text)
            put_text(job->errmsg, sizeof(job->errmsg), job->text, IG_GEMINI_MAX_TEXT_IN_MSG);
        else if (ncands == 0)
            set_result(job, IG_E_UPSTREAM_FAILED, "the model returned no image (no candidates)");
        else
            set_result(job, IG_E_UPSTREAM_FAILED, "the model returned no image (finishReason %s)",
                       first_reason[0] ? first_reason : "none");
    } else {
        job->err = IG_OK;
    }
    job->usage.images = job->nimages;
out:
    ig_buf_release(&text);
    cJSON_Delete(root);
    if (malformed) {
        drop_images(job);
        free(job->text);
        job->text = NULL;
        memset(&job->usage, 0, sizeof(job->usage));
        return set_result(job, IG_E_UPSTREAM_FAILED, "upstream returned a malformed response");
    }
    return job->err;
}

/* ---- errors ---- */

enum ig_err ig_gemini_parse_error(int http_status, const char *body, size_t len,
                                  struct ig_gemini_error *out)
{
    cJSON *root = parse_json(body, len);
    const cJSON *env = root, *e, *details, *d, *code;
    const char *status, *message;

    memset(out, 0, sizeof(*out));
    out->code = http_status;
    if (cJSON_IsArray(env)) /* some Google front ends wrap the envelope in an array */
        env = cJSON_GetArrayItem(env, 0);
    e = field(env, "error", NULL);
    if (!cJSON_IsObject(e)) {
        snprintf(out->msg, sizeof(out->msg), "upstream answered HTTP %d", http_status);
        cJSON_Delete(root);
        return IG_E_INVALID;
    }
    code = field(e, "code", NULL);
    if (cJSON_IsNumber(code) && code->valuedouble >= 100 && code->valuedouble <= 999)
        out->code = (int)code->valuedouble;
    status = field_str(e, "status", NULL);
    if (status)
        put_text(out->status, sizeof(out->status), status, sizeof(out->status));
    message = field_str(e, "message", NULL);
    snprintf(out->msg, sizeof(out->msg), "upstream %d%s%s", out->code, out->status[0] ? " " : "",
             out->status);
    if (message && *message) {
        append_text(out->msg, sizeof(out->msg), ": ", 2);
        append_text(out->msg, sizeof(out->msg), message, sizeof(out->msg));
    }
    details = field(e, "details", NULL);
    cJSON_ArrayForEach(d, array_of(details))
    {
        const char *type = field_str(d, "@type", NULL);
        const char *v;

        if (!type)
            continue;
        if (ends_with(type, "google.rpc.RetryInfo")) {
            int64_t ms = ig_gemini_parse_duration_ms(field_str(d, "retryDelay", "retry_delay"));

            if (ms > 0)
                out->retry_after_ms = ms;
        } else if (ends_with(type, "google.rpc.ErrorInfo") && !out->reason[0]) {
            v = field_str(d, "reason", NULL);
            if (v)
                put_text(out->reason, sizeof(out->reason), v, sizeof(out->reason));
        }
    }
    cJSON_Delete(root);
    return IG_OK;
}

int64_t ig_gemini_parse_duration_ms(const char *s)
{
    int64_t sec = 0, frac = 0;
    int nd = 0, nf = 0;

    if (!s)
        return -1;
    for (; *s >= '0' && *s <= '9'; s++, nd++)
        if (sec < 1000000000) /* past 31 years the exact figure does not matter */
            sec = sec * 10 + (*s - '0');
    if (nd == 0)
        return -1;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, nf++)
            if (nf < 9)
                frac = frac * 10 + (*s - '0');
        if (nf == 0 || nf > 9)
            return -1;
        for (int i = nf; i < 9; i++)
            frac *= 10; /* nanoseconds */
    }
    if (s[0] != 's' || s[1] != '\0')
        return -1;
    return sec * 1000 + (frac + 999999) / 1000000;
}

int64_t ig_gemini_parse_retry_after(const char *value, int64_t now_ms)
{
    char v[128];
    size_t n;
    const char *p;
    time_t t;

    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' ||
                     value[n - 1] == '\n'))
        n--;
    if (n == 0 || n >= sizeof(v))
        return -1;
    memcpy(v, value, n);
    v[n] = '\0';
    for (p = v; *p >= '0' && *p <= '9'; p++)
        ;
    if (*p == '\0') {
        int64_t sec = 0;

        for (p = v; *p; p++)
            if (sec < 100000000)
                sec = sec * 10 + (*p - '0');
        return sec * 1000;
    }
    t = curl_getdate(v, NULL);
    if (t == (time_t)-1)
        return -1;
    return (int64_t)t * 1000 > now_ms ? (int64_t)t * 1000 - now_ms : 0;
}
