/* provider_openai.c: the "openai" provider: the Images API of an OpenAI-compatible channel
 * (wire-formats.md §3).
 *
 * OpenAI-style servers take a count, so a job for n images is one call: text-to-image is a
 * JSON POST to {base_url}/v1/images/generations, an edit (references present) a multipart
 * POST to {base_url}/v1/images/edits with one file part per reference ("image" for a single
 * one, "image[]" repeated otherwise, as the openai SDK sends them). The answer's data[] items
 * carry b64_json (decoded here) or a url, which is downloaded through the SSRF-safe fetcher
 * (net/fetch.h) before done runs; never with a raw transfer.
 *
 * Failures are classified as the Gemini provider does (reliability.md §8): 408/429/502/503 and
 * connection failures before the body went are retryable (Retry-After and OpenAI's
 * retry-after-ms honoured); timeouts after sending, 500, 504 and resets after sending may have
 * run; 401/403 refuse the key; a content-policy refusal is IG_E_MODERATED; other 4xx, a
 * malformed answer, bad base64 or an answer over the cap are IG_E_UPSTREAM_FAILED.
 *
 * Keys are secrets: they go only into the Authorization header, never into a log line or a
 * message; an upstream message quoting one is withheld. Logs never carry a body or base64. */
#include "base/base.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "media/image.h"
#include "net/addr.h"
#include "net/fetch.h"
#include "net/transport.h"
#include "provider/channel.h"
#include "provider/gemini_wire.h"
#include "provider/provider.h"
#include "provider/upstream.h"

#define DEFAULT_MAX_RESPONSE (64LL << 20)

struct openai {
    const struct ig_channel *c;
    atomic_ulong next_key; /* round robin over c->keys, across jobs and loops */
    /* The channel's own host is loopback (a local relay, or a test's fake upstream): only
     * then may result URLs it hands back point at loopback too. */
    bool loopback;
};

struct ojob;

/* One data[] item given as a URL, being downloaded. */
struct oslot {
    struct ojob *oj;
    struct ig_image im; /* filled when the download (or the decode) succeeds */
    bool filled;
};

struct ojob {
    struct openai *o;
    struct ig_job *job;
    char *url;
    char *body;          /* JSON body (generations); NULL for an edit */
    size_t body_len;
    curl_mime *mime;     /* multipart body (edits) */
    struct curl_slist *headers; /* holds the key: freed as soon as the transfer ends */
    struct ig_upstream_rx rx;
    char errbuf[CURL_ERROR_SIZE];
    int n;
    int64_t started_ms;

    /* The outcome of the call, before merging into the job. */
    struct ig_job out;
    int nslots, pending;
    struct oslot slots[IG_MAX_OUTPUTS];
    int fetch_failed;
    char fetch_msg[256];
};

/* ---- the answer ---- */

/* Standard base64 with '=' padding; whitespace is not expected and refused. */
static bool b64_decode(const char *s, size_t len, struct ig_image *im)
{
    unsigned char *out;
    size_t pad = 0;
    int m;

    if (len == 0 || len % 4 != 0 || len > (size_t)INT32_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];

        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/' || (ch == '=' && i >= len - 2)))
            return false;
    }
    if (s[len - 1] == '=')
        pad++;
    if (s[len - 2] == '=')
        pad++;
    if (pad == 1 && s[len - 2] == '=')
        return false;
    out = ig_xmalloc(len / 4 * 3 + 1);
    m = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (m < 0 || (size_t)m < pad || (size_t)m - pad == 0) {
        free(out);
        return false;
    }
    im->data = out;
    im->len = (size_t)m - pad;
    return true;
}

static void set_mime(struct ig_image *im)
{
    const char *mime = ig_image_mime(ig_image_sniff(im->data, im->len));

    snprintf(im->mime, sizeof(im->mime), "%s", mime ? mime : "image/png");
}

static void finish(struct ojob *oj);

/* Engine loop: one result URL downloaded (or not). */
static void fetch_done(struct ig_fetch_result *res, void *arg)
{
    struct oslot *s = arg;
    struct ojob *oj = s->oj;

    oj->out.bytes_in += (int64_t)res->body.len; /* the download is part of the answer */
    if (res->err == IG_OK && res->body.len > 0) {
        s->im.data = (unsigned char *)ig_buf_detach(&res->body, &s->im.len);
        set_mime(&s->im);
        s->filled = true;
    } else {
        if (oj->fetch_failed++ == 0)
            snprintf(oj->fetch_msg, sizeof(oj->fetch_msg), "%s",
                     res->err ? res->errmsg : "an empty image");
    }
    ig_debug("openai: channel %s: result download: %s, %zu bytes", oj->o->c->name,
             ig_strerror(res->err), s->filled ? s->im.len : (size_t)0);
    ig_buf_release(&res->body);
    if (--oj->pending == 0)
        finish(oj);
}

static int64_t json_int(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (int64_t)v->valuedouble : 0;
}

/* A 200: decode b64_json items now, start downloads of url items. Writes out. */
static void parse_success(struct ojob *oj)
{
    const struct ig_channel *c = oj->o->c;
    struct ig_job *out = &oj->out;
    cJSON *root = cJSON_ParseWithLengthOpts(oj->rx.body.data, oj->rx.body.len, NULL, 0);
    const cJSON *data, *usage, *item;
    int room = IG_MAX_OUTPUTS - oj->job->nimages;

    if (!cJSON_IsObject(root)) {
        ig_upstream_set_msg(out, IG_E_UPSTREAM_FAILED, "upstream returned a malformed response");
        goto out;
    }
    data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (data && !cJSON_IsArray(data)) {
        ig_upstream_set_msg(out, IG_E_UPSTREAM_FAILED, "upstream returned a malformed response");
        goto out;
    }
    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        out->usage.prompt_tokens = json_int(usage, "input_tokens");
        out->usage.image_tokens = json_int(usage, "output_tokens");
    }
    /* Decode every item first: a bad one fails the answer before any download starts. */
    cJSON_ArrayForEach(item, data)
    {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(item, "b64_json");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(item, "url");
        struct oslot *s;

        if (!cJSON_IsObject(item)) {
            ig_upstream_set_msg(out, IG_E_UPSTREAM_FAILED,
                                "upstream returned a malformed response");
            goto out;
        }
        if (oj->nslots >= room)
            break; /* more than asked for and no room: the rest are dropped */
        s = &oj->slots[oj->nslots];
        if (cJSON_IsString(b) && b->valuestring[0]) {
            if (!b64_decode(b->valuestring, strlen(b->valuestring), &s->im)) {
                ig_upstream_set_msg(out, IG_E_UPSTREAM_FAILED,
                                    "upstream returned an image with bad base64");
                goto out;
            }
            set_mime(&s->im);
            s->filled = true;
            s->oj = oj;
            oj->nslots++;
        } else if (cJSON_IsString(u) && u->valuestring[0]) {
            s->oj = oj;
            oj->nslots++; /* downloaded below */
        }
        /* an item with neither (revised_prompt only) adds nothing */
    }
    /* Now the downloads. The result URL is as trusted as the channel that gave it: it goes
     * through the SSRF-safe fetcher like a client's reference, and may be loopback only when
     * the channel itself is on loopback (a local relay; the tests' fake upstream). */
    {
        int k = 0;

        cJSON_ArrayForEach(item, data)
        {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(item, "b64_json");
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(item, "url");
            struct ig_fetch_opts fo;
            struct oslot *s;

            if (k >= oj->nslots)
                break;
            if (cJSON_IsString(b) && b->valuestring[0]) {
                k++;
                continue;
            }
            if (!(cJSON_IsString(u) && u->valuestring[0]))
                continue;
            s = &oj->slots[k++];
            ig_fetch_opts_default(&fo);
            if (c->max_response_bytes > 0)
                fo.max_bytes = (size_t)c->max_response_bytes;
            if (c->timeout_ms > 0)
                fo.total_timeout_ms = c->timeout_ms;
            fo.allow_loopback = oj->o->loopback;
            oj->pending++;
            if (ig_fetch_start(oj->job->tp, u->valuestring, &fo, fetch_done, s) != IG_OK) {
                oj->pending--;
                if (oj->fetch_failed++ == 0)
                    snprintf(oj->fetch_msg, sizeof(oj->fetch_msg),
                             "the result URL was refused");
            }
        }
    }
out:
    cJSON_Delete(root);
}

/* The OpenAI error envelope: {"error":{"message","type","param","code"}}. */
struct oerr {
    char msg[400];
    char type[64];
    char code[64];
};

static void parse_error(const char *body, size_t len, struct oerr *e)
{
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, NULL, 0);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *v;

    memset(e, 0, sizeof(*e));
    if (cJSON_IsObject(err)) {
        v = cJSON_GetObjectItemCaseSensitive(err, "message");
        if (cJSON_IsString(v))
            snprintf(e->msg, sizeof(e->msg), "%s", v->valuestring);
        v = cJSON_GetObjectItemCaseSensitive(err, "type");
        if (cJSON_IsString(v))
            snprintf(e->type, sizeof(e->type), "%s", v->valuestring);
        v = cJSON_GetObjectItemCaseSensitive(err, "code");
        if (cJSON_IsString(v))
            snprintf(e->code, sizeof(e->code), "%s", v->valuestring);
    } else if (cJSON_IsString(err)) { /* some relays flatten it */
        snprintf(e->msg, sizeof(e->msg), "%s", err->valuestring);
    }
    cJSON_Delete(root);
}

static bool is_moderation(const struct oerr *e)
{
    return strcmp(e->code, "content_policy_violation") == 0 ||
           strcmp(e->code, "moderation_blocked") == 0 ||
           strcmp(e->type, "image_generation_user_error") == 0 || strcasestr(e->msg, "safety");
}

static void classify_http(struct ojob *oj, long status)
{
    const struct ig_channel *c = oj->o->c;
    struct ig_job *out = &oj->out;
    struct oerr e;

    if (status >= 200 && status <= 299) {
        parse_success(oj);
        return;
    }
    parse_error(oj->rx.body.data, oj->rx.body.len, &e);
    if (oj->rx.retry_after_ms_ms >= 0)
        out->retry_after_ms = oj->rx.retry_after_ms_ms;
    else if (oj->rx.retry_after_ms >= 0)
        out->retry_after_ms = oj->rx.retry_after_ms;
    if (status == 401 || status == 403) {
        out->auth_failed = true;
        ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT,
                            "the upstream refused the API key of channel %s (HTTP %ld)", c->name,
                            status);
        return;
    }
    if (e.msg[0])
        ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT, "upstream %ld: %s", status, e.msg);
    else
        ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT, "upstream %ld", status);
    ig_upstream_classify_status(out, status,
                                is_moderation(&e) ? IG_E_MODERATED : IG_E_UPSTREAM_FAILED);
}

static void classify(struct ojob *oj, CURL *easy, CURLcode rc)
{
    bool sent = ig_upstream_body_sent(easy, -1);
    long status;

    if (!ig_upstream_classify_transfer(&oj->out, easy, rc, &oj->rx, sent, oj->o->c->timeout_ms,
                                       &status))
        return;
    classify_http(oj, status);
    ig_upstream_redact(oj->o->c, NULL, &oj->out);
}

/* ---- finishing ---- */

static void ojob_free(struct ojob *oj)
{
    curl_slist_free_all(oj->headers);
    curl_mime_free(oj->mime);
    ig_buf_release(&oj->rx.body);
    for (int i = 0; i < oj->nslots; i++)
        ig_image_release(&oj->slots[i].im);
    ig_job_release(&oj->out);
    free(oj->body);
    free(oj->url);
    free(oj);
}

/* Engine loop: the call and every download ended. */
static void finish(struct ojob *oj)
{
    struct ig_job *job = oj->job;
    struct ig_job *out = &oj->out;
    int before = job->nimages, added;

    /* Images, usage and text from an earlier attempt of the router stay: this one adds. */
    job->retryable = job->maybe_executed = job->auth_failed = false;
    job->retry_after_ms = 0;
    job->http_status = out->http_status;
    job->bytes_in = out->bytes_in;
    snprintf(job->channel, sizeof(job->channel), "%s", oj->o->c->name);
    if (out->err == IG_OK) {
        for (int i = 0; i < oj->nslots && job->nimages < IG_MAX_OUTPUTS; i++) {
            struct oslot *s = &oj->slots[i];

            if (!s->filled)
                continue;
            job->images[job->nimages++] = s->im;
            memset(&s->im, 0, sizeof(s->im));
            s->filled = false;
        }
        added = job->nimages - before;
        job->usage.prompt_tokens += out->usage.prompt_tokens;
        job->usage.image_tokens += out->usage.image_tokens;
        job->usage.images = job->nimages;
        if (added == 0) {
            job->err = IG_E_UPSTREAM_FAILED;
            if (oj->fetch_failed) {
                job->maybe_executed = true; /* it ran: only the download failed */
                snprintf(job->errmsg, sizeof(job->errmsg),
                         "the upstream's result could not be downloaded: %s", oj->fetch_msg);
            } else {
                snprintf(job->errmsg, sizeof(job->errmsg), "upstream returned no image");
            }
        } else {
            job->err = IG_OK;
            job->errmsg[0] = '\0';
            if (oj->fetch_failed)
                job->maybe_executed = true;
            if (added < oj->n)
                snprintf(job->errmsg, sizeof(job->errmsg), "%d of %d images were produced",
                         added, oj->n);
        }
    } else {
        job->err = out->err;
        memcpy(job->errmsg, out->errmsg, sizeof(job->errmsg));
        job->retryable = out->retryable && !out->maybe_executed;
        job->maybe_executed = out->maybe_executed;
        job->auth_failed = out->auth_failed;
        job->retry_after_ms = out->retry_after_ms;
    }
    ig_debug("openai: channel %s: status %d, %d images of %d, %lld bytes in, %lld ms: %s",
             oj->o->c->name, job->http_status, job->nimages - before, oj->n,
             (long long)job->bytes_in, (long long)(ig_mono_ms() - oj->started_ms),
             ig_strerror(job->err));
    job->pctx = NULL;
    ojob_free(oj);
    job->done(job);
}

/* The transport's done: the handle is out of the multi and ours to clean up. */
static void xfer_done(CURL *easy, CURLcode rc, void *arg)
{
    struct ojob *oj = arg;

    classify(oj, easy, rc);
    curl_easy_cleanup(easy);
    curl_slist_free_all(oj->headers);
    oj->headers = NULL;
    curl_mime_free(oj->mime);
    oj->mime = NULL;
    ig_buf_release(&oj->rx.body);
    if (oj->out.err != IG_OK) {
        /* a failed answer keeps no partial decode */
        for (int i = 0; i < oj->nslots; i++)
            ig_image_release(&oj->slots[i].im);
        oj->nslots = 0;
        if (oj->pending == 0)
            finish(oj);
        return;
    }
    if (oj->pending == 0)
        finish(oj);
    /* else the last download finishes */
}

/* ---- starting ---- */

static struct curl_slist *make_headers(struct openai *o, bool json)
{
    const struct ig_channel *c = o->c;
    struct curl_slist *h = NULL, *t;
    char line[300];

    /* "Expect:" turns off libcurl's 100-continue wait for large bodies. */
    t = curl_slist_append(h, "Expect:");
    if (!t)
        goto fail;
    h = t;
    t = curl_slist_append(h, "Accept: application/json");
    if (!t)
        goto fail;
    h = t;
    if (json) {
        t = curl_slist_append(h, "Content-Type: application/json");
        if (!t)
            goto fail;
        h = t;
    }
    /* A channel without keys (a keyless relay) sends no Authorization. */
    if (c->nkeys > 0) {
        const char *key = c->keys[atomic_fetch_add(&o->next_key, 1) % (unsigned long)c->nkeys];

        snprintf(line, sizeof(line), "Authorization: Bearer %s", key);
        t = curl_slist_append(h, line);
        explicit_bzero(line, sizeof(line));
        if (!t)
            goto fail;
        h = t;
    }
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

static char *build_json(const struct ig_job *job, const char *model, int n, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    char size[32];
    char *s;

    snprintf(size, sizeof(size), "%dx%d", job->width, job->height);
    if (!root || !cJSON_AddStringToObject(root, "model", model) ||
        !cJSON_AddStringToObject(root, "prompt", job->task->req.prompt ? job->task->req.prompt
                                                                       : "") ||
        !cJSON_AddNumberToObject(root, "n", n) || !cJSON_AddStringToObject(root, "size", size) ||
        !cJSON_AddStringToObject(root, "response_format", "b64_json")) {
        cJSON_Delete(root);
        return NULL;
    }
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (s)
        *len = strlen(s);
    return s;
}

static bool mime_field(curl_mime *m, const char *name, const char *value)
{
    curl_mimepart *p = curl_mime_addpart(m);

    return p && curl_mime_name(p, name) == CURLE_OK &&
           curl_mime_data(p, value, CURL_ZERO_TERMINATED) == CURLE_OK;
}

static curl_mime *build_mime(CURL *e, const struct ig_job *job, const char *model, int n)
{
    curl_mime *m = curl_mime_init(e);
    char num[16], size[32];

    if (!m)
        return NULL;
    snprintf(num, sizeof(num), "%d", n);
    snprintf(size, sizeof(size), "%dx%d", job->width, job->height);
    if (!mime_field(m, "model", model) ||
        !mime_field(m, "prompt", job->task->req.prompt ? job->task->req.prompt : "") ||
        !mime_field(m, "n", num) || !mime_field(m, "size", size) ||
        !mime_field(m, "response_format", "b64_json"))
        goto fail;
    for (int i = 0; i < job->nrefs; i++) {
        const struct ig_image *r = &job->refs[i];
        enum ig_image_type t = ig_image_sniff(r->data, r->len);
        const char *ext = t != IG_IMG_UNKNOWN ? ig_image_ext(t) : "png";
        const char *type = r->mime[0] ? r->mime : ig_image_mime(t);
        curl_mimepart *p = curl_mime_addpart(m);
        char fname[32];

        snprintf(fname, sizeof(fname), "image-%d.%s", i, ext ? ext : "png");
        if (!p || curl_mime_name(p, job->nrefs == 1 ? "image" : "image[]") != CURLE_OK ||
            curl_mime_data(p, (const char *)r->data, r->len) != CURLE_OK ||
            curl_mime_filename(p, fname) != CURLE_OK ||
            curl_mime_type(p, type ? type : "application/octet-stream") != CURLE_OK)
            goto fail;
    }
    return m;
fail:
    curl_mime_free(m);
    return NULL;
}

static CURL *make_easy(struct ojob *oj, const char *model)
{
    const struct ig_channel *c = oj->o->c;
    CURL *e = curl_easy_init();
    CURLcode rc = CURLE_OK;

    if (!e)
        return NULL;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    rc = ig_upstream_easy_setup(e, c, oj->url, oj->headers, &oj->rx, oj->errbuf);
    if (oj->body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)oj->body_len);
        SET(CURLOPT_POSTFIELDS, oj->body);
    } else {
        oj->mime = build_mime(e, oj->job, model, oj->n);
        if (!oj->mime)
            rc = CURLE_OUT_OF_MEMORY;
        SET(CURLOPT_MIMEPOST, oj->mime);
    }
#undef SET
    if (rc != CURLE_OK) {
        ig_warn("openai: channel %s: setting up the transfer failed: %s", c->name,
                curl_easy_strerror(rc));
        curl_easy_cleanup(e);
        curl_mime_free(oj->mime);
        oj->mime = NULL;
        return NULL;
    }
    return e;
}

/* Model ids go into a JSON/multipart field, not a path; still keep them to printable ASCII
 * without quotes or controls. */
static bool model_id_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == '_' || *s == '/' || *s == ':' || *s == '@'))
            return false;
    return true;
}

static enum ig_err openai_start(struct ig_provider *p, struct ig_job *job)
{
    struct openai *o = p->ctx;
    const struct ig_channel *c = o->c;
    const char *model;
    struct ojob *oj;
    CURL *easy = NULL;
    int n;

    if (!job->task || !job->done || !job->tp)
        return IG_E_INTERNAL;
    n = job->want > 0 ? job->want : job->task->req.n > 0 ? job->task->req.n : 1;
    model = job->upstream_model;
    if (!model[0] && job->model)
        model = job->model->upstream[0] ? job->model->upstream : job->model->id;
    job->err = IG_OK;
    job->errmsg[0] = '\0';
    snprintf(job->channel, sizeof(job->channel), "%s", c->name);
    if (n + job->nimages > IG_MAX_OUTPUTS) {
        snprintf(job->errmsg, sizeof(job->errmsg), "at most %d images per request", IG_MAX_OUTPUTS);
        return job->err = IG_E_INVALID;
    }
    if (!model_id_ok(model)) {
        snprintf(job->errmsg, sizeof(job->errmsg), "openai: channel %s: invalid model id", c->name);
        return job->err = IG_E_INVALID;
    }

    oj = ig_xcalloc(1, sizeof(*oj));
    oj->o = o;
    oj->job = job;
    oj->n = n;
    oj->started_ms = ig_mono_ms();
    ig_upstream_rx_init(&oj->rx, (size_t)(c->max_response_bytes > 0 ? c->max_response_bytes
                                                                   : DEFAULT_MAX_RESPONSE));
    if (job->nrefs == 0) {
        oj->url = ig_xasprintf("%s/v1/images/generations", c->base_url);
        oj->body = build_json(job, model, n, &oj->body_len);
        if (!oj->body)
            goto fail;
    } else {
        oj->url = ig_xasprintf("%s/v1/images/edits", c->base_url);
    }
    oj->headers = make_headers(o, oj->body != NULL);
    if (oj->headers)
        easy = make_easy(oj, model);
    if (!easy)
        goto fail;
    job->pctx = oj;
    if (ig_transport_add(job->tp, easy, xfer_done, oj) != IG_OK) {
        curl_easy_cleanup(easy);
        job->pctx = NULL;
        goto fail;
    }
    ig_debug("openai: channel %s: %s for %d images started, %zu request bytes", c->name,
             job->nrefs ? "edit" : "generation", n, oj->body_len);
    return IG_OK;
fail:
    ojob_free(oj);
    snprintf(job->errmsg, sizeof(job->errmsg), "openai: channel %s: the transfer could not start",
             c->name);
    return job->err = IG_E_INTERNAL;
}

static void openai_free(struct ig_provider *p)
{
    if (!p)
        return;
    free(p->ctx);
    free(p);
}

static const struct ig_provider_ops openai_ops = {
    .name = "openai",
    .abi_version = 1,
    .start = openai_start,
    .free = openai_free,
};

/* Is the channel's own host loopback? ("localhost", 127.0.0.0/8, ::1) */
static bool base_is_loopback(const char *base_url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    bool lb = false;

    if (u && curl_url_set(u, CURLUPART_URL, base_url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
        char h[256];
        size_t len = strlen(host);

        if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
            snprintf(h, sizeof(h), "%.*s", (int)(len - 2), host + 1);
        else
            snprintf(h, sizeof(h), "%s", host);
        lb = strcasecmp(h, "localhost") == 0 || ig_addr_classify_str(h) == IG_ADDR_LOOPBACK;
    }
    curl_free(host);
    curl_url_cleanup(u);
    return lb;
}

struct ig_provider *ig_provider_openai_new(const struct ig_channel *c)
{
    struct ig_provider *p = ig_xcalloc(1, sizeof(*p));
    struct openai *o = ig_xcalloc(1, sizeof(*o));

    o->c = c;
    o->loopback = base_is_loopback(c->base_url);
    p->ops = &openai_ops;
    p->ctx = o;
    return p;
}
