/* provider_gemini.c: the "gemini" provider: generateContent calls to a Gemini API channel.
 *
 * Gemini image models answer one image per call, so a job for n images runs n transfers in
 * parallel over the engine loop's transport, all POSTing the same body (built once per job).
 * When the last one ends the results are merged: the images of every successful transfer in
 * order (fewer than n is a partial success), or, when none succeeded, the first failure with
 * its classification for the router's retry decision (retryable / maybe_executed /
 * auth_failed / retry_after_ms; reliability.md §8).
 *
 * Keys are secrets: they go only into the x-goog-api-key header, never into a log line or a
 * message; a message the upstream wrote that quotes one is withheld. Logs name the channel,
 * the status and the byte counts, never a body.
 *
 * The same engine serves Vertex AI (provider_vertex.c) through gemini_int.h: a variant gives
 * the URL and the authorisation (a Bearer token, fixed or from an asynchronous source). */
#include "base/base.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "net/transport.h"
#include "provider/channel.h"
#include "provider/gemini_int.h"
#include "provider/gemini_wire.h"
#include "provider/provider.h"
#include "provider/upstream.h"

#define DEFAULT_MAX_RESPONSE (64LL << 20)

struct gemini {
    const struct ig_channel *c;
    struct ig_gemini_variant v; /* where the calls go and how they are authorised */
    atomic_ulong next_key; /* round robin over c->keys, across transfers, jobs and loops */
};

struct gjob;

/* One transfer (one image asked for). Its outcome is parsed into a scratch job (out) so the
 * wire parser writes the same fields it writes for a whole job; finish() merges them. */
struct gxfer {
    struct gjob *gj;
    int index;
    struct curl_slist *headers; /* holds the key: freed as soon as the transfer ends */
    struct ig_upstream_rx rx;
    char errbuf[CURL_ERROR_SIZE];
    struct ig_job *out; /* made when the transfer ends: thousands of calls may be waiting */
};

/* The transfer's scratch job, made on first use. */
static struct ig_job *xout(struct gxfer *x)
{
    if (!x->out)
        x->out = ig_xcalloc(1, sizeof(*x->out));
    return x->out;
}

struct gjob {
    struct gemini *g;
    struct ig_job *job;
    char *url;
    char *body; /* shared by every transfer (CURLOPT_POSTFIELDS does not copy) */
    size_t body_len;
    const char *bearer; /* the Bearer token of this job's calls (v.bearer or token), or NULL */
    char *token;        /* owned copy of an asynchronous token (a secret: wiped on free) */
    int n, pending;
    int64_t started_ms;
    struct gxfer *x; /* n of them */
};

/* ---- classification ---- */

/* Did an earlier attempt of this job on this channel end in a 401? */
static bool refused_before(const struct gjob *gj)
{
    const struct ig_job *job = gj->job;

    for (int i = 0; i < job->nattempts; i++)
        if (job->attempts[i].http_status == 401 &&
            strcmp(job->attempts[i].channel, gj->g->c->name) == 0)
            return true;
    return false;
}

static void classify_http(struct gjob *gj, struct gxfer *x, long status)
{
    const struct ig_channel *c = gj->g->c;
    struct ig_job *out = xout(x);
    struct ig_gemini_error ge;

    if (status >= 200 && status <= 299) {
        ig_gemini_parse_response(x->rx.body.data, x->rx.body.len, out);
        return;
    }
    ig_gemini_parse_error((int)status, x->rx.body.data, x->rx.body.len, &ge);
    if (x->rx.retry_after_ms >= 0)
        out->retry_after_ms = x->rx.retry_after_ms;
    else if (ge.retry_after_ms > 0)
        out->retry_after_ms = ge.retry_after_ms;
    /* An invalid key is a 400 INVALID_ARGUMENT whose ErrorInfo says API_KEY_INVALID
     * (wire-formats.md §1.8): as much a refused key as a 401 or a 403. */
    if (status == 401 && gj->token && !refused_before(gj)) {
        /* An access token from the token source may have been revoked or expired early: it
         * is dropped (below), and the call, which never ran, is retried with a fresh one.
         * Only a fresh token refused too disables the channel. */
        out->retryable = true;
        ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT,
                            "the upstream refused the access token of channel %s (HTTP 401); "
                            "retrying with a new one", c->name);
        return;
    }
    if (status == 401 || status == 403 ||
        (status == 400 && (strcmp(ge.reason, "API_KEY_INVALID") == 0 ||
                           strcmp(ge.reason, "API_KEY_EXPIRED") == 0))) {
        out->auth_failed = true;
        ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT,
                            "the upstream refused the %s of channel %s (HTTP %ld%s%s)",
                            gj->bearer ? "access token" : "API key", c->name, status,
                            ge.status[0] ? " " : "", ge.status);
        return;
    }
    ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT, "%s", ge.msg);
    ig_upstream_classify_status(out, status, IG_E_UPSTREAM_FAILED);
}

static void classify(struct gjob *gj, struct gxfer *x, CURL *easy, CURLcode rc)
{
    bool sent = ig_upstream_body_sent(easy, (curl_off_t)gj->body_len);
    long status;

    if (!ig_upstream_classify_transfer(xout(x), easy, rc, &x->rx, sent, gj->g->c->timeout_ms,
                                       &status))
        return;
    classify_http(gj, x, status);
    ig_upstream_redact(gj->g->c, gj->bearer, xout(x));
}

/* ---- merging ---- */

static void move_image(struct ig_image *dst, struct ig_image *src)
{
    *dst = *src;
    memset(src, 0, sizeof(*src));
}

static void merge_success(struct gjob *gj)
{
    struct ig_job *job = gj->job;
    bool first = true, failed_any = false, retryable = true, maybe = false;
    int before = job->nimages;

    for (int i = 0; i < gj->n; i++) {
        struct ig_job *o = xout(&gj->x[i]);

        if (o->err) {
            /* describe the calls that failed, so the router can ask again for what is missing */
            if (!failed_any)
                job->http_status = o->http_status;
            failed_any = true;
            retryable = retryable && o->retryable;
            maybe = maybe || o->maybe_executed;
            if (o->retry_after_ms > job->retry_after_ms)
                job->retry_after_ms = o->retry_after_ms;
            continue;
        }
        /* One image per call is what is asked; a call that sent more keeps them all (the
         * model does not always follow the count), up to IG_MAX_OUTPUTS. */
        for (int k = 0; k < o->nimages && job->nimages < IG_MAX_OUTPUTS; k++)
            move_image(&job->images[job->nimages++], &o->images[k]);
        job->usage.prompt_tokens += o->usage.prompt_tokens;
        job->usage.image_tokens += o->usage.image_tokens;
        job->usage.text_tokens += o->usage.text_tokens;
        if (first && !job->text) {
            job->text = o->text;
            o->text = NULL;
        }
        if (first) {
            if (!failed_any)
                job->http_status = o->http_status;
            memcpy(job->model_version, o->model_version, sizeof(job->model_version));
            memcpy(job->response_id, o->response_id, sizeof(job->response_id));
            first = false;
        }
    }
    job->usage.images = job->nimages;
    job->err = IG_OK;
    job->errmsg[0] = '\0';
    if (failed_any) {
        job->retryable = retryable && !maybe;
        job->maybe_executed = maybe;
    }
    if (job->nimages - before < gj->n)
        snprintf(job->errmsg, sizeof(job->errmsg), "%d of %d images were produced",
                 job->nimages - before, gj->n);
}

/* None succeeded: the first failure speaks for the job. The job is retryable only if no
 * transfer can have run, and maybe_executed if any can have (a 503 next to a timeout after
 * sending must not be retried as if nothing had happened). */
static void merge_failure(struct gjob *gj)
{
    struct ig_job *job = gj->job;
    struct ig_job *f = xout(&gj->x[0]);
    bool retryable = true, maybe = false;
    int64_t retry_after = 0;

    for (int i = 0; i < gj->n; i++) {
        const struct ig_job *o = xout(&gj->x[i]);

        retryable = retryable && o->retryable;
        maybe = maybe || o->maybe_executed;
        if (o->retry_after_ms > retry_after)
            retry_after = o->retry_after_ms;
    }
    job->err = f->err ? f->err : IG_E_INTERNAL;
    memcpy(job->errmsg, f->errmsg, sizeof(job->errmsg));
    job->http_status = f->http_status;
    job->auth_failed = f->auth_failed;
    job->retryable = retryable && !maybe;
    job->maybe_executed = maybe;
    job->retry_after_ms = retry_after;
    if (!job->text) { /* the refusal text of a moderated answer, for the record */
        job->text = f->text;
        f->text = NULL;
    }
    memcpy(job->model_version, f->model_version, sizeof(job->model_version));
    memcpy(job->response_id, f->response_id, sizeof(job->response_id));
}

static void gjob_free(struct gjob *gj)
{
    for (int i = 0; gj->x && i < gj->n; i++) {
        curl_slist_free_all(gj->x[i].headers);
        ig_buf_release(&gj->x[i].rx.body);
        if (gj->x[i].out) {
            ig_job_release(gj->x[i].out);
            free(gj->x[i].out);
        }
    }
    free(gj->x);
    free(gj->body);
    free(gj->url);
    if (gj->token) {
        memset(gj->token, 0, strlen(gj->token));
        free(gj->token);
    }
    free(gj);
}

/* Engine loop: the last transfer ended. */
static void finish(struct gjob *gj)
{
    struct ig_job *job = gj->job;
    const struct ig_gemini_variant *v = &gj->g->v;
    int64_t bytes = 0;
    int nok = 0;
    bool refused = false;

    for (int i = 0; i < gj->n; i++) {
        bytes += xout(&gj->x[i])->bytes_in;
        nok += xout(&gj->x[i])->err == IG_OK;
        refused = refused || xout(&gj->x[i])->http_status == 401;
    }
    /* A token from the token source that the upstream refused is not worth keeping. */
    if (refused && gj->token && v->refused)
        v->refused(v->vctx);
    /* Images, usage and text from an earlier attempt of the router stay: this one adds to
     * them. */
    job->retryable = job->maybe_executed = job->auth_failed = false;
    job->retry_after_ms = 0;
    if (nok > 0)
        merge_success(gj);
    else
        merge_failure(gj);
    job->bytes_in = bytes;
    snprintf(job->channel, sizeof(job->channel), "%s", gj->g->c->name);
    ig_debug("%s: channel %s: %d of %d transfers ok, %d images, %lld bytes in, %lld ms: %s",
             v->name, gj->g->c->name, nok, gj->n, job->nimages, (long long)bytes,
             (long long)(ig_mono_ms() - gj->started_ms), ig_strerror(job->err));
    job->pctx = NULL;
    gjob_free(gj);
    job->done(job);
}

/* The transport's done: the handle is out of the multi and ours to clean up. */
static void xfer_done(CURL *easy, CURLcode rc, void *arg)
{
    struct gxfer *x = arg;
    struct gjob *gj = x->gj;

    classify(gj, x, easy, rc);
    if (IG_LOG_DEBUG >= ig_log_level_cur) {
        curl_off_t conn = 0, pre = 0, first = 0, up = 0;
        long reused = 0, lport = 0;

        curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &conn);
        curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
        curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first);
        curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &reused);
        curl_easy_getinfo(easy, CURLINFO_LOCAL_PORT, &lport);
        ig_debug("%s: channel %s: transfer %d: status %d, %lld bytes in, %lld of %zu bytes "
                 "out, %s connection (port %ld), connect %lld us, sent %lld us, first byte %lld "
                 "us: %s%s%s",
                 gj->g->v.name, gj->g->c->name, x->index, xout(x)->http_status, (long long)xout(x)->bytes_in,
                 (long long)up, gj->body_len, reused ? "new" : "reused", lport, (long long)conn,
                 (long long)pre, (long long)first, ig_strerror(xout(x)->err),
                 x->errbuf[0] ? ": " : "", x->errbuf);
    }
    curl_easy_cleanup(easy);
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    ig_buf_release(&x->rx.body);
    if (--gj->pending == 0)
        finish(gj);
}

/* ---- starting ---- */

static CURL *make_easy(struct gjob *gj, struct gxfer *x)
{
    const struct ig_channel *c = gj->g->c;
    CURL *e = curl_easy_init();
    CURLcode rc = CURLE_OK;

    if (!e)
        return NULL;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    rc = ig_upstream_easy_setup(e, c, gj->url, x->headers, &x->rx, x->errbuf);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)gj->body_len);
    SET(CURLOPT_POSTFIELDS, gj->body);
#undef SET
    if (rc != CURLE_OK) {
        ig_warn("%s: channel %s: setting up the transfer failed: %s", gj->g->v.name, c->name,
                curl_easy_strerror(rc));
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

/* Request headers of one transfer: the Bearer token when there is one, else the next key in
 * the rotation. */
static struct curl_slist *make_headers(struct gemini *g, const char *bearer)
{
    const struct ig_channel *c = g->c;
    struct curl_slist *h = NULL, *t;
    char line[300];

    /* "Expect:" turns off libcurl's 100-continue wait for bodies over 1 MB. */
    static const char *const fixed[] = {"Content-Type: application/json", "Expect:"};

    for (size_t i = 0; i < IG_ARRAY_LEN(fixed); i++) {
        t = curl_slist_append(h, fixed[i]);
        if (!t)
            goto fail;
        h = t;
    }
    if (bearer) {
        char *auth = ig_xasprintf("Authorization: Bearer %s", bearer);

        t = curl_slist_append(h, auth);
        memset(auth, 0, strlen(auth));
        free(auth);
        if (!t)
            goto fail;
        h = t;
    } else if (c->nkeys > 0) {
        /* A channel without keys (a keyless relay) sends no key header. */
        const char *key = c->keys[atomic_fetch_add(&g->next_key, 1) % (unsigned long)c->nkeys];

        snprintf(line, sizeof(line), "x-goog-api-key: %s", key);
        t = curl_slist_append(h, line);
        if (!t)
            goto fail;
        h = t;
    }
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

/* Model ids are [A-Za-z0-9._-]: nothing in the path needs escaping, and nothing else may
 * reach it. */
static bool model_id_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == '_'))
            return false;
    return true;
}

/* Start the n transfers of a prepared job. Returns how many started; the ones that did not
 * are recorded as failures that provably did not run. */
static int launch(struct gjob *gj)
{
    struct gemini *g = gj->g;
    const struct ig_channel *c = g->c;
    struct ig_job *job = gj->job;

    for (int i = 0; i < gj->n; i++) {
        struct gxfer *x = &gj->x[i];
        CURL *easy = NULL;

        x->headers = make_headers(g, gj->bearer);
        if (x->headers)
            easy = make_easy(gj, x);
        if (easy && ig_transport_add(job->tp, easy, xfer_done, x) == IG_OK) {
            gj->pending++;
            continue;
        }
        /* Never started: recorded as a failure that provably did not run. */
        if (easy)
            curl_easy_cleanup(easy);
        curl_slist_free_all(x->headers);
        x->headers = NULL;
        xout(x)->retryable = true;
        ig_upstream_set_msg(xout(x), IG_E_INTERNAL, "%s: channel %s: the transfer could not start",
                            g->v.name, c->name);
    }
    if (gj->pending > 0)
        ig_debug("%s: channel %s: %d transfers started, %zu request bytes", g->v.name, c->name,
                 gj->pending, gj->body_len);
    return gj->pending;
}

/* Engine loop: the asynchronous token arrived (or did not). */
static void token_ready(const char *token, enum ig_err err, const char *msg, void *arg)
{
    struct gjob *gj = arg;
    const struct ig_channel *c = gj->g->c;

    if (err == IG_OK && token && token[0]) {
        gj->token = ig_xstrdup(token);
        gj->bearer = gj->token;
        if (launch(gj) > 0)
            return;
    } else {
        for (int i = 0; i < gj->n; i++) {
            struct ig_job *out = xout(&gj->x[i]);

            if (err == IG_E_UNAUTHENTICATED)
                out->auth_failed = true;
            else
                out->retryable = true; /* nothing went upstream */
            ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT, "%s: channel %s: no access token: %s",
                                gj->g->v.name, c->name, msg && msg[0] ? msg : ig_strerror(err));
        }
    }
    finish(gj); /* nothing is running: the job ends here, on the loop */
}

static enum ig_err gemini_start(struct ig_provider *p, struct ig_job *job)
{
    struct gemini *g = p->ctx;
    const struct ig_channel *c = g->c;
    const char *model;
    struct gjob *gj;
    char msg[256] = "";
    int n;

    if (!job->task || !job->done || !job->tp)
        return IG_E_INTERNAL;
    n = job->want > 0 ? job->want : job->task->req.n > 0 ? job->task->req.n : 1;
    model = job->upstream_model; /* the router writes the channel's name for the model */
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
        snprintf(job->errmsg, sizeof(job->errmsg), "%s: channel %s: invalid model id", g->v.name,
                 c->name);
        return job->err = IG_E_INVALID;
    }

    gj = ig_xcalloc(1, sizeof(*gj));
    gj->g = g;
    gj->job = job;
    gj->n = n;
    gj->started_ms = ig_mono_ms();
    gj->bearer = g->v.bearer;
    gj->x = ig_xcalloc((size_t)n, sizeof(*gj->x));
    for (int i = 0; i < n; i++) {
        struct gxfer *x = &gj->x[i];

        x->gj = gj;
        x->index = i;
        ig_upstream_rx_init(&x->rx, (size_t)(c->max_response_bytes > 0 ? c->max_response_bytes
                                                                       : DEFAULT_MAX_RESPONSE));
    }
    gj->url = g->v.url(g->v.vctx, c, model, msg, sizeof(msg));
    if (!gj->url) {
        gjob_free(gj);
        snprintf(job->errmsg, sizeof(job->errmsg), "%s: channel %s: %s", g->v.name, c->name,
                 msg);
        return job->err = IG_E_INVALID;
    }
    gj->body = ig_gemini_build_request(job, &gj->body_len);
    if (!gj->body) {
        gjob_free(gj);
        snprintf(job->errmsg, sizeof(job->errmsg), "the upstream request would exceed %u bytes",
                 IG_GEMINI_MAX_REQUEST);
        return job->err = IG_E_TOOBIG;
    }
    job->pctx = gj;
    if (g->v.token) {
        /* The transfers start when the token arrives (token_ready, on the loop). */
        g->v.token(g->v.vctx, job, token_ready, gj);
        return IG_OK;
    }
    if (launch(gj) == 0) {
        snprintf(job->errmsg, sizeof(job->errmsg), "%s", xout(&gj->x[0])->errmsg);
        job->pctx = NULL;
        gjob_free(gj);
        return job->err = IG_E_INTERNAL;
    }
    return IG_OK;
}

static void gemini_free(struct ig_provider *p)
{
    struct gemini *g;

    if (!p)
        return;
    g = p->ctx;
    if (g && g->v.free)
        g->v.free(g->v.vctx);
    free(g);
    free(p);
}

static const struct ig_provider_ops gemini_ops = {
    .name = "gemini",
    .abi_version = 1,
    .start = gemini_start,
    .free = gemini_free,
};

struct ig_provider *ig_gemini_provider_new(const struct ig_channel *c,
                                           const struct ig_gemini_variant *v)
{
    struct ig_provider *p = ig_xcalloc(1, sizeof(*p));
    struct gemini *g = ig_xcalloc(1, sizeof(*g));

    g->c = c;
    g->v = *v;
    p->ops = &gemini_ops;
    p->ctx = g;
    return p;
}

/* The Gemini API: {base_url}/v1beta/models/{model}:generateContent, keys in x-goog-api-key. */
static char *gemini_url(void *vctx, const struct ig_channel *c, const char *model, char *msg,
                        size_t msglen)
{
    return ig_xasprintf("%s/v1beta/models/%s:generateContent", c->base_url, model);
}

struct ig_provider *ig_provider_gemini_new(const struct ig_channel *c)
{
    const struct ig_gemini_variant v = {.name = "gemini", .url = gemini_url};

    return ig_gemini_provider_new(c, &v);
}
