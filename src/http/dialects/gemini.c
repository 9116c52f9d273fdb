/* gemini.c: the Gemini API dialect (seed 003, wire-formats.md §1): generateContent and
 * streamGenerateContent (synchronous: the request waits on its task without holding a thread),
 * models list and get. Keys from x-goog-api-key, ?key= or Authorization: Bearer; request
 * fields in camelCase or snake_case; replies and errors exactly in Google's shapes. */
#include "base/base.h"
#include "core/engine.h"
#include "http/dialects/gemini_int.h"
#include "http/idempotency.h"
#include "http/routes.h"
#include "media/image.h"
#include "net/fetch.h"
#include "policy/keys.h"
#include "policy/limits.h"
#include "provider/channel.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEEPALIVE_S       15 /* an SSE comment while a stream waits for its task */
#define PAGE_SIZE_DEFAULT 50
#define PAGE_SIZE_MAX     1000
#define TOKEN_LIMIT       32768 /* inputTokenLimit / outputTokenLimit of the models resource */
#define MODELS_VERSION    "v1beta"

/* ---- errors: Google's envelope {"error":{"code","message","status","details"}} ------------ */

static const char *google_status(int status, enum ig_err err)
{
    switch (err) {
    case IG_E_INVALID:
    case IG_E_REFERENCE:
    case IG_E_BLOCKED:
    case IG_E_TOOBIG:
    case IG_E_MODERATED:
        return "INVALID_ARGUMENT";
    case IG_E_UNAUTHENTICATED:
        /* Google answers a bad key with 400 INVALID_ARGUMENT, a missing one with 403. */
        return status == 400   ? "INVALID_ARGUMENT"
               : status == 403 ? "PERMISSION_DENIED"
                               : "UNAUTHENTICATED";
    case IG_E_FORBIDDEN:
        return "PERMISSION_DENIED";
    case IG_E_INSUFFICIENT:
        return "FAILED_PRECONDITION";
    case IG_E_RATE_LIMITED:
        return "RESOURCE_EXHAUSTED";
    case IG_E_NOT_FOUND:
    case IG_E_GONE:
        return "NOT_FOUND";
    case IG_E_METHOD:
        return "UNIMPLEMENTED";
    case IG_E_CONFLICT:
        return "ABORTED";
    case IG_E_CANCELLED:
        return "CANCELLED";
    case IG_E_AGAIN:
    case IG_E_UPSTREAM_SUBMIT:
        return "UNAVAILABLE";
    case IG_E_UPSTREAM_TIMEOUT:
        return "DEADLINE_EXCEEDED";
    default:
        return "INTERNAL";
    }
}

/* The error object alone (also sent as an SSE event when a stream has begun). */
cJSON *ig_gemini_error_json(const char *request_id, int status, enum ig_err err, const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON *details = NULL, *d;

    cJSON_AddNumberToObject(e, "code", status);
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "status", google_status(status, err));
    details = cJSON_AddArrayToObject(e, "details");
    if (err == IG_E_UNAUTHENTICATED && status == 400) {
        cJSON *md;

        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "@type", "type.googleapis.com/google.rpc.ErrorInfo");
        cJSON_AddStringToObject(d, "reason", "API_KEY_INVALID");
        cJSON_AddStringToObject(d, "domain", "googleapis.com");
        md = cJSON_AddObjectToObject(d, "metadata");
        cJSON_AddStringToObject(md, "service", "generativelanguage.googleapis.com");
        cJSON_AddItemToArray(details, d);
    }
    /* The request id, in the google.rpc type made for it. */
    d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "@type", "type.googleapis.com/google.rpc.RequestInfo");
    cJSON_AddStringToObject(d, "requestId", request_id);
    cJSON_AddItemToArray(details, d);
    return root;
}

void ig_gemini_error(struct ig_hreq *hr, int status, enum ig_err err, const char *field,
                     const char *msg)
{
    ig_http_reply_json(hr, status, ig_gemini_error_json(hr->request_id, status, err, msg));
}

/* ---- small helpers ---------------------------------------------------------------------- */

/* A query parameter into out. false when absent; *toolong when it did not fit. */
static bool query_get(struct ig_hreq *hr, const char *name, char *out, size_t outlen, bool *toolong)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq kv;
    const char *v;
    bool found = false;

    if (toolong)
        *toolong = false;
    if (!q || evhttp_parse_query_str(q, &kv) != 0)
        return false;
    v = evhttp_find_header(&kv, name);
    if (v) {
        found = true;
        if (strlen(v) >= outlen && toolong)
            *toolong = true;
        snprintf(out, outlen, "%s", v);
    }
    evhttp_clear_headers(&kv);
    return found;
}

static void task_id_string(const struct ig_id *id, char *out /* 5 + 32 + 1 */)
{
    memcpy(out, "task_", 5);
    ig_id_hex(id, out + 5);
}

/* ---- authentication ------------------------------------------------------------------- */

static bool authenticate(struct ig_hreq *hr, struct ig_key *key)
{
    char qkey[IG_KEY_LEN + 2];
    const char *tok = ig_http_get_header(hr, "x-goog-api-key");
    size_t len = 0;
    bool toolong = false;
    enum ig_err err;

    if (tok) {
        while (*tok == ' ')
            tok++;
        len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            len--;
    } else if (query_get(hr, "key", qkey, sizeof(qkey), &toolong)) {
        tok = qkey;
        len = toolong ? sizeof(qkey) - 1 : strlen(qkey); /* too long: refused as malformed */
    } else {
        tok = ig_http_bearer(hr, &len);
    }
    if (!tok || len == 0) {
        ig_http_error_status(hr, 403, IG_E_UNAUTHENTICATED, "key",
                             "Method doesn't allow unregistered callers (callers without "
                             "established identity). Please use API Key or other form of API "
                             "consumer identity to call this API.");
        return false;
    }
    err = ig_key_check_cached(hr->keys, hr->store, tok, len, key);
    if (err == IG_E_UNAUTHENTICATED) {
        ig_http_error_status(hr, 400, err, "key",
                             "API key not valid. Please pass a valid API key.");
        return false;
    }
    if (err) {
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error encountered.");
        return false;
    }
    return true;
}

/* The admission checks of a generation after the key: its scope, then its request rate.
 * false: an error reply has been sent. */
static bool admit(struct ig_hreq *hr, const struct ig_key *key)
{
    int64_t wait_ms;
    char secs[24];

    if (!(key->scopes & IG_SCOPE_GENERATE)) {
        ig_http_error(hr, IG_E_FORBIDDEN, "key",
                      "this API key may not generate images (it has no generate scope)");
        return false;
    }
    if (ig_admit_rate(hr->app, key, &wait_ms))
        return true;
    snprintf(secs, sizeof(secs), "%lld", (long long)((wait_ms + 999) / 1000));
    ig_http_header(hr, "Retry-After", secs);
    ig_http_error(hr, IG_E_RATE_LIMITED, "rate",
                  "Resource has been exhausted: this key may make %d requests per minute; retry "
                  "in %s s",
                  key->rate_rpm >= 0 ? key->rate_rpm : hr->app->cfg.rate_rpm, secs);
    return false;
}

static void model_not_found(struct ig_hreq *hr, const char *name, const char *method)
{
    ig_http_error(hr, IG_E_NOT_FOUND, "model",
                  "models/%.96s is not found for API version " MODELS_VERSION
                  ", or is not supported for %s. Call ListModels to see the list of available "
                  "models and their supported methods.",
                  name, method);
}

/* ---- models: list and get ------------------------------------------------------------- */

static cJSON *model_json(const struct ig_model *m, const char *name)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *methods;
    char full[IG_MODEL_NAME_MAX + 8];

    snprintf(full, sizeof(full), "models/%s", name);
    cJSON_AddStringToObject(o, "name", full);
    cJSON_AddStringToObject(o, "baseModelId", m->id);
    cJSON_AddStringToObject(o, "version", "001");
    cJSON_AddStringToObject(o, "displayName", m->display_name);
    cJSON_AddStringToObject(o, "description", m->description);
    cJSON_AddNumberToObject(o, "inputTokenLimit", TOKEN_LIMIT);
    cJSON_AddNumberToObject(o, "outputTokenLimit", TOKEN_LIMIT);
    methods = cJSON_AddArrayToObject(o, "supportedGenerationMethods");
    cJSON_AddItemToArray(methods, cJSON_CreateString("generateContent"));
    cJSON_AddItemToArray(methods, cJSON_CreateString("streamGenerateContent"));
    cJSON_AddNumberToObject(o, "temperature", 1);
    cJSON_AddNumberToObject(o, "topP", 0.95);
    cJSON_AddNumberToObject(o, "topK", 64);
    cJSON_AddNumberToObject(o, "maxTemperature", 2);
    cJSON_AddBoolToObject(o, "thinking", false);
    return o;
}

void ig_gemini_models_list(struct ig_hreq *hr, const char *param)
{
    const struct ig_catalog *c = hr->app->catalog;
    struct ig_key key;
    char v[32];
    bool toolong;
    long size = PAGE_SIZE_DEFAULT, offset = 0, idx = 0;
    cJSON *root, *arr;
    bool more = false;

    if (!authenticate(hr, &key))
        return;
    if (query_get(hr, "pageSize", v, sizeof(v), &toolong) ||
        query_get(hr, "page_size", v, sizeof(v), &toolong)) {
        char *end;

        size = strtol(v, &end, 10);
        if (toolong || !v[0] || *end || size < 0) {
            ig_http_error(hr, IG_E_INVALID, "pageSize", "pageSize must be a non-negative integer");
            return;
        }
        if (size == 0)
            size = PAGE_SIZE_DEFAULT;
        if (size > PAGE_SIZE_MAX)
            size = PAGE_SIZE_MAX; /* as Google does: coerced, not refused */
    }
    if (query_get(hr, "pageToken", v, sizeof(v), &toolong) ||
        query_get(hr, "page_token", v, sizeof(v), &toolong)) {
        char *end;

        /* The token is "ig1." + the offset: opaque to clients, checked here. */
        if (v[0]) {
            offset = strncmp(v, "ig1.", 4) == 0 ? strtol(v + 4, &end, 10) : -1;
            if (toolong || offset <= 0 || v[4] == '\0' || *end) {
                ig_http_error(hr, IG_E_INVALID, "pageToken", "Invalid page token.");
                return;
            }
        }
    }
    root = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(root, "models");
    for (int i = 0; i < ig_catalog_count(c); i++) {
        const char *const *names = ig_catalog_names(c, i);

        for (int j = 0; names[j]; j++, idx++) {
            if (idx < offset)
                continue;
            if (idx >= offset + size) {
                more = true;
                break;
            }
            cJSON_AddItemToArray(arr, model_json(ig_catalog_at(c, i), names[j]));
        }
        if (more)
            break;
    }
    if (more) {
        snprintf(v, sizeof(v), "ig1.%ld", offset + size);
        cJSON_AddStringToObject(root, "nextPageToken", v);
    }
    ig_http_reply_json(hr, 200, root);
}

void ig_gemini_models_get(struct ig_hreq *hr, const char *param)
{
    const struct ig_model *m;
    struct ig_key key;

    if (!authenticate(hr, &key))
        return;
    m = ig_catalog_find(hr->app->catalog, param, NULL);
    if (!m) {
        model_not_found(hr, param, "getModel");
        return;
    }
    ig_http_reply_json(hr, 200, model_json(m, param));
}

/* ---- generateContent: the request's life -------------------------------------------------- */

enum mode {
    MODE_JSON,  /* :generateContent: one GenerateContentResponse */
    MODE_SSE,   /* :streamGenerateContent?alt=sse: data: events, no [DONE] */
    MODE_ARRAY, /* :streamGenerateContent without alt=sse: a JSON array of the same responses */
};

/* One generateContent request. Held by: the HTTP request (until the reply is sent or the
 * client goes away), the CPU pool job under way, the submit callback, the waiter. Freed when
 * the last lets go. */
struct gen {
    struct ig_hreq *hr; /* NULL once replied or the client is gone */
    struct ig_app *app;
    struct ig_mailbox *mb;
    int holds;
    enum mode mode;
    bool urls;      /* response_format=url */
    bool streaming; /* SSE headers sent */
    bool replying;  /* the final answer is being built */
    struct ig_id id;
    char idstr[5 + IG_ID_HEX_LEN + 1];
    const struct ig_model *m;
    struct ig_key key;   /* the caller's */
    struct ig_task task; /* until handed to the engine */
    struct ig_waiter *w;
    struct ig_idem_use *idem; /* an Idempotency-Key's first use, until the task is stored */
    struct event *keepalive;
    int ninline;
    struct ig_gemini_inline inl[IG_MAX_REFS];
    /* Results of pool jobs. */
    enum ig_err err;
    char errmsg[512];
    struct ig_task *fin; /* the finished task being rendered */
    int nchunks;
    char *chunks[IG_MAX_OUTPUTS + 1];
    size_t lens[IG_MAX_OUTPUTS + 1];
};

static void gen_free(struct gen *g)
{
    if (g->idem) /* refused before it was stored: duplicates waiting for it go again */
        ig_idem_end(g->idem);
    if (g->keepalive)
        event_free(g->keepalive);
    for (int i = 0; i < g->ninline; i++)
        cJSON_free(g->inl[i].b64);
    for (int i = 0; i < g->nchunks; i++)
        free(g->chunks[i]);
    if (g->fin) {
        ig_task_release(g->fin);
        free(g->fin);
    }
    ig_task_release(&g->task);
    free(g);
}

static void gen_release(struct gen *g)
{
    if (--g->holds == 0)
        gen_free(g);
}

static void stop_keepalive(struct gen *g)
{
    if (g->keepalive) {
        event_free(g->keepalive);
        g->keepalive = NULL;
    }
}

/* The reply went out (hr is freed): the request lets go. */
static void replied(struct gen *g)
{
    g->hr = NULL;
    stop_keepalive(g);
    gen_release(g);
}

/* The client went away before the reply was complete (hr is freed after this returns). */
static void on_close(void *arg)
{
    struct gen *g = arg;

    if (!g->hr)
        return;
    g->hr = NULL;
    stop_keepalive(g);
    if (g->idstr[0])
        ig_info("gemini: task %s: the client went away while waiting; the task goes on", g->idstr);
    if (g->w) {
        ig_engine_unwait(g->app->engine, g->w);
        g->w = NULL;
        gen_release(g); /* the waiter's hold */
    }
    gen_release(g); /* the request's */
}

/* An error in Google's envelope: a normal reply, or an event when a stream has begun. */
static void fail(struct gen *g, int status, enum ig_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct gen *g, int status, enum ig_err err, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status <= 0)
        status = ig_http_status_for(err);
    if (g->idstr[0] && !g->streaming) /* a task exists: name it, as every reply does */
        ig_http_header(g->hr, "X-Imagegate-Task-Id", g->idstr);
    if (g->streaming) {
        cJSON *e = ig_gemini_error_json(g->hr->request_id, status, err, msg);
        char *s = cJSON_PrintUnformatted(e);

        cJSON_Delete(e);
        if (!s)
            IG_BUG("out of memory rendering an error");
        ig_http_stream_chunk(g->hr, "data: ", 6);
        ig_http_stream_chunk(g->hr, s, strlen(s));
        ig_http_stream_chunk(g->hr, "\r\n\r\n", 4);
        cJSON_free(s);
        ig_http_stream_end(g->hr);
    } else {
        ig_http_error_status(g->hr, status, err, NULL, "%s", msg);
    }
    replied(g);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct gen *g = arg;

    if (g->hr && g->streaming && !g->replying)
        ig_http_stream_chunk(g->hr, ": keep-alive\n\n", 14);
}

static void start_stream(struct gen *g)
{
    /* Often enough that the connection's idle timeout never ends a stream that waits. */
    int ms = g->app->cfg.conn_timeout_s * 1000 / 2;
    struct timeval tv;

    if (g->streaming || g->mode != MODE_SSE)
        return;
    if (ms <= 0 || ms > KEEPALIVE_S * 1000)
        ms = KEEPALIVE_S * 1000;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    g->streaming = true;
    ig_http_header(g->hr, "X-Imagegate-Task-Id", g->idstr);
    if (g->task.offline)
        ig_http_header(g->hr, "X-Imagegate-Offline", "true");
    ig_http_stream_start(g->hr, 200, "text/event-stream");
    g->keepalive = event_new(ig_mailbox_base(g->mb), -1, EV_PERSIST, on_keepalive, g);
    evtimer_add(g->keepalive, &tv);
}

/* Send the rendered chunks in the request's mode. */
static void send_chunks(struct gen *g)
{
    struct ig_hreq *hr = g->hr;

    if (g->mode == MODE_SSE) {
        start_stream(g); /* normally already under way */
        for (int i = 0; i < g->nchunks; i++) {
            ig_http_stream_chunk(hr, "data: ", 6);
            ig_http_stream_chunk(hr, g->chunks[i], g->lens[i]);
            ig_http_stream_chunk(hr, "\r\n\r\n", 4);
        }
        ig_http_stream_end(hr);
    } else {
        ig_http_header(hr, "X-Imagegate-Task-Id", g->idstr);
        if (g->fin && g->fin->offline)
            ig_http_header(hr, "X-Imagegate-Offline", "true");
        if (g->mode == MODE_JSON && g->nchunks == 1) {
            ig_http_reply_bytes(hr, 200, "application/json", g->chunks[0], g->lens[0]);
        } else {
            struct ig_buf b = IG_BUF_INIT(IG_GEMINI_MAX_REPLY + 16);

            if (g->mode == MODE_ARRAY)
                ig_buf_add(&b, "[", 1);
            for (int i = 0; i < g->nchunks; i++) {
                if (i > 0)
                    ig_buf_add(&b, ",", 1);
                ig_buf_add(&b, g->chunks[i], g->lens[i]);
            }
            if (g->mode == MODE_ARRAY)
                ig_buf_add(&b, "]", 1);
            ig_http_reply_bytes(hr, 200, "application/json", b.data ? b.data : "", b.len);
            ig_buf_release(&b);
        }
    }
    replied(g);
}

static void render_work(void *arg)
{
    struct gen *g = arg;
    struct ig_gemini_render r;
    char version[IG_MODEL_NAME_MAX] = "";
    /* (ParseWithLengthOpts: cJSON_Parse writes a global error pointer, racy off the loop.) */
    cJSON *up = g->fin->upstream ? cJSON_ParseWithLengthOpts(g->fin->upstream,
                                                             strlen(g->fin->upstream) + 1, NULL, 1)
                                 : NULL;
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(up, "model_version");

    /* modelVersion: what the upstream said it ran, else the catalog id. */
    snprintf(version, sizeof(version), "%s",
             cJSON_IsString(mv) && mv->valuestring[0] ? mv->valuestring : g->fin->model);
    cJSON_Delete(up);
    memset(&r, 0, sizeof(r));
    r.t = g->fin;
    r.blob = g->app->blob;
    r.public_url = g->app->public_url;
    r.model_version = version;
    r.response_id = g->idstr;
    r.urls = g->urls;
    r.image_tokens = IG_GEMINI_IMAGE_TOKENS;
    if (g->m) {
        int ri = ig_model_res_index(g->m, g->fin->req.resolution);

        if (ri >= 0 && g->m->image_tokens[ri] > 0)
            r.image_tokens = g->m->image_tokens[ri];
    }
    g->err = ig_gemini_render_success(&r, g->mode != MODE_SSE, g->chunks, g->lens, &g->nchunks,
                                      g->errmsg, sizeof(g->errmsg));
}

static void render_done(void *arg)
{
    struct gen *g = arg;

    if (g->hr) {
        if (g->err) {
            ig_error("gemini: task %s: %s", g->idstr, g->errmsg);
            fail(g, 500, IG_E_INTERNAL, "Internal error encountered.");
        } else {
            send_chunks(g);
        }
    }
    gen_release(g); /* the pool job's */
}

/* A moderated (or imageless) outcome, as Google renders it: HTTP 200. */
static void send_refusal(struct gen *g, const char *block, const char *finish, const char *text)
{
    const struct ig_task *t = g->fin;
    cJSON *root = cJSON_CreateObject(), *usage;
    char *s;

    if (block[0]) {
        cJSON *pf = cJSON_AddObjectToObject(root, "promptFeedback");

        cJSON_AddStringToObject(pf, "blockReason", block);
    } else {
        cJSON *cands = cJSON_AddArrayToObject(root, "candidates");
        cJSON *c = cJSON_CreateObject();

        if (text[0]) {
            cJSON *content = cJSON_AddObjectToObject(c, "content");
            cJSON *parts = cJSON_AddArrayToObject(content, "parts");
            cJSON *p = cJSON_CreateObject();

            cJSON_AddStringToObject(content, "role", "model");
            cJSON_AddStringToObject(p, "text", text);
            cJSON_AddItemToArray(parts, p);
        }
        cJSON_AddStringToObject(c, "finishReason", finish);
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddItemToArray(cands, c);
    }
    usage = cJSON_AddObjectToObject(root, "usageMetadata");
    cJSON_AddNumberToObject(usage, "promptTokenCount", (double)t->usage.prompt_tokens);
    cJSON_AddNumberToObject(usage, "totalTokenCount", (double)t->usage.prompt_tokens);
    cJSON_AddStringToObject(root, "modelVersion", t->model);
    cJSON_AddStringToObject(root, "responseId", g->idstr);
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        IG_BUG("out of memory rendering a reply");
    g->chunks[0] = ig_xstrdup(s);
    g->lens[0] = strlen(s);
    g->nchunks = 1;
    cJSON_free(s);
    send_chunks(g);
}

/* The task is over (or as far as it will get while we wait): answer. Takes t. */
static void finish(struct gen *g, struct ig_task *t)
{
    char block[48], fin[48], text[512];

    g->replying = true;
    g->fin = t;
    if (t->state == IG_TASK_SUCCEEDED) {
        if (t->outputs_expired) {
            fail(g, 0, IG_E_GONE, "the results of task %s have expired", g->idstr);
            return;
        }
        g->holds++;
        ig_pool_submit(g->app->pool, render_work, render_done, g->mb, g);
        return;
    }
    if (t->state == IG_TASK_FAILED || t->state == IG_TASK_CANCELLED) {
        enum ig_err err = t->err ? t->err : IG_E_CANCELLED;

        ig_gemini_moderation(t, block, sizeof(block), fin, sizeof(fin), text, sizeof(text));
        if (err == IG_E_MODERATED || block[0] || fin[0]) {
            send_refusal(g, block, fin, text);
            return;
        }
        fail(g, 0, err, "%s", t->err_message ? t->err_message : ig_strerror(err));
        return;
    }
    fail(g, 503, IG_E_AGAIN,
         "The task %s is still %s; its result can be fetched later with the task id", g->idstr,
         ig_task_state_name(t->state));
}

static void waited(const struct ig_task *t, void *arg)
{
    struct gen *g = arg;
    struct ig_task *copy = ig_xcalloc(1, sizeof(*copy));

    g->w = NULL;
    if (!g->hr) { /* cannot happen: the close hook unwaits */
        free(copy);
        gen_release(g);
        return;
    }
    if (t) {
        ig_task_copy(copy, t);
    } else {
        /* It did not end in the engine's hands: as the store has it now. */
        enum ig_err err;

        ig_task_init(copy);
        err = ig_store_task_get(g->hr->store, &g->id, copy);
        if (err) {
            ig_task_release(copy);
            free(copy);
            fail(g, 503, IG_E_AGAIN, "The task %s could not be read back (%s); retry later",
                 g->idstr, ig_strerror(err));
            gen_release(g);
            return;
        }
    }
    finish(g, copy);
    gen_release(g); /* the waiter's */
}

static void submitted(enum ig_err err, const struct ig_task *t, void *arg)
{
    struct gen *g = arg;

    if (g->idem) { /* stored with its record, or refused: duplicates waiting go again */
        ig_idem_end(g->idem);
        g->idem = NULL;
    }
    if (err) {
        /* Nothing was stored: no task to name, nothing to wait for. */
        g->idstr[0] = '\0';
        if (g->w) {
            ig_engine_unwait(g->app->engine, g->w);
            g->w = NULL;
            gen_release(g);
        }
        if (err != IG_E_INSUFFICIENT && err != IG_E_RATE_LIMITED)
            ig_error("gemini: storing a new task failed: %s", ig_strerror(err));
        if (!g->hr || g->replying) {
            /* the client is gone: nothing to say */
        } else if (err == IG_E_INSUFFICIENT) {
            fail(g, 0, err, "insufficient credits: this request holds $%lld.%06lld",
                 (long long)(t->price_held / 1000000), (long long)(t->price_held % 1000000));
        } else if (err == IG_E_RATE_LIMITED) {
            ig_http_header(g->hr, "Retry-After", "1");
            fail(g, 0, err, "Resource has been exhausted: this key already has %d unfinished tasks",
                 t->admit_max_tasks);
        } else {
            fail(g, 0, IG_E_INTERNAL, "Internal error encountered.");
        }
    } else if (g->hr && !g->replying && g->mode == MODE_SSE) {
        start_stream(g);
    }
    gen_release(g); /* the submit callback's */
}

static void submit(struct gen *g)
{
    struct ig_hreq *hr = g->hr;
    struct ig_task *t = &g->task;
    bool offline = !ig_router_serves(g->app->router, g->m);

    ig_id_new(&t->id);
    g->id = t->id;
    task_id_string(&g->id, g->idstr);
    snprintf(t->dialect, sizeof(t->dialect), "gemini");
    t->state = IG_TASK_QUEUED;
    t->max_attempts = hr->app->cfg.max_attempts;
    t->admit_max_tasks = ig_admit_max_tasks(hr->app, &g->key);
    t->created_ms = ig_id_time_ms(&t->id);
    t->deadline_ms = t->created_ms + (int64_t)hr->app->cfg.task_timeout_s * 1000;
    if (g->idem) /* the record of an Idempotency-Key: this task, stored with it */
        t->idem = ig_idem_prepare(g->idem, 200, IG_IDEM_TASK_CTYPE, "", 0);
    g->holds += 2; /* the waiter, the submit callback */
    g->w = ig_engine_wait(g->app->engine, &g->id, g->mb, waited, g);
    ig_engine_submit(g->app->engine, t, g->mb, submitted, g); /* takes over *t */
    g->task.offline = offline; /* for the stream's headers (the task struct is empty now) */
}

/* ---- inline references: decoded, checked and stored on the CPU pool ---------------------- */

static void inline_work(void *arg)
{
    struct gen *g = arg;

    g->err = ig_gemini_store_inline(g->app, g->inl, g->ninline, &g->task.req, g->errmsg,
                                    sizeof(g->errmsg));
    for (int i = 0; i < g->ninline; i++) {
        cJSON_free(g->inl[i].b64);
        g->inl[i].b64 = NULL;
    }
    g->ninline = 0;
}

static void inline_done(void *arg)
{
    struct gen *g = arg;

    if (g->hr) {
        if (g->err)
            fail(g, 0, g->err, "%s", g->errmsg);
        else
            submit(g);
    }
    gen_release(g); /* the pool job's */
}

/* ---- Idempotency-Key: a repeated call answers from the first call's task ----------------- */

static void retry_generate(struct ig_hreq *hr);
static void retry_stream(struct ig_hreq *hr);

/* response_format: false when it is neither url nor b64_json (a 400 has been sent). */
static bool want_urls(struct ig_hreq *hr, bool *urls)
{
    char v[16];
    bool toolong;

    *urls = false;
    if (query_get(hr, "response_format", v, sizeof(v), &toolong)) {
        if (strcmp(v, "url") == 0) {
            *urls = true;
        } else if (strcmp(v, "b64_json") != 0) {
            ig_http_error(hr, IG_E_INVALID, "response_format",
                          "response_format must be url or b64_json");
            return false;
        }
    }
    return true;
}

/* Wait for (or read) the task the first call with this key made, and answer from it. */
static void attach(struct ig_hreq *hr, const struct ig_id *id, enum mode mode)
{
    struct gen *g = ig_xcalloc(1, sizeof(*g));
    struct ig_task *t = ig_xcalloc(1, sizeof(*t));

    g->hr = hr;
    g->app = hr->app;
    g->mb = hr->mb;
    g->holds = 2; /* the request, the waiter */
    g->mode = mode;
    want_urls(hr, &g->urls); /* (checked by the first call, with the same query) */
    g->id = *id;
    task_id_string(&g->id, g->idstr);
    ig_task_init(&g->task);
    ig_http_on_close(hr, on_close, g);
    g->w = ig_engine_wait(g->app->engine, &g->id, g->mb, waited, g);
    ig_task_init(t);
    if (ig_store_task_get(hr->store, &g->id, t) == IG_OK) {
        g->m = ig_catalog_find(g->app->catalog, t->model, NULL);
        if (ig_task_state_is_terminal(t->state)) { /* it ended before the waiter was there */
            ig_engine_unwait(g->app->engine, g->w);
            g->w = NULL;
            gen_release(g);
            finish(g, t);
            return;
        }
    }
    ig_task_release(t);
    free(t);
    start_stream(g);
}

static void attach_generate(struct ig_hreq *hr, const struct ig_id *id)
{
    attach(hr, id, MODE_JSON);
}

static void attach_stream(struct ig_hreq *hr, const struct ig_id *id)
{
    char v[16];
    bool toolong;

    attach(hr, id,
           query_get(hr, "alt", v, sizeof(v), &toolong) && strcmp(v, "sse") == 0 ? MODE_SSE
                                                                                : MODE_ARRAY);
}

static void generate(struct ig_hreq *hr, const char *param, enum mode mode)
{
    struct ig_key key;
    struct gen *g;
    struct ig_gemini_parse pc;
    const struct ig_model *m;
    struct ig_idem_use *idem = NULL;
    bool official = false, toolong, ok, urls;
    char v[16], route[48];
    size_t len;
    const char *body;
    cJSON *root;

    if (!authenticate(hr, &key) || !admit(hr, &key))
        return;
    m = ig_catalog_find(hr->app->catalog, param, &official);
    if (!m) {
        model_not_found(hr, param, mode == MODE_JSON ? "generateContent" : "streamGenerateContent");
        return;
    }
    if (!ig_key_allows_model(&key, m->id)) {
        ig_http_error(hr, IG_E_FORBIDDEN, "model",
                      "models/%.96s: this API key may not use this model", param);
        return;
    }
    if (mode == MODE_SSE &&
        !(query_get(hr, "alt", v, sizeof(v), &toolong) && strcmp(v, "sse") == 0))
        mode = MODE_ARRAY;
    if (!want_urls(hr, &urls))
        return;
    /* The same key with the same request (model, mode, response_format, body) answers from
     * the first call's task. */
    snprintf(route, sizeof(route), "gemini.%d.%d", (int)mode, (int)urls);
    if (ig_idem_begin_sync(hr, &key, route, mode == MODE_JSON ? retry_generate : retry_stream,
                           mode == MODE_JSON ? attach_generate : attach_stream,
                           &idem) == IG_IDEM_DONE)
        return;
    g = ig_xcalloc(1, sizeof(*g));
    g->hr = hr;
    g->app = hr->app;
    g->mb = hr->mb;
    g->holds = 1;
    g->mode = mode;
    g->m = m;
    g->urls = urls;
    g->idem = idem;
    ig_task_init(&g->task);
    body = ig_http_body(hr, &len);
    root = cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        ig_http_error(hr, IG_E_INVALID, "body",
                      "Invalid JSON payload received: the body must be one JSON object "
                      "(GenerateContentRequest)");
        gen_free(g);
        return;
    }
    snprintf(g->task.model, sizeof(g->task.model), "%s", m->id);
    snprintf(g->task.model_alias, sizeof(g->task.model_alias), "%s", param);
    g->task.req.official = official;
    g->task.key_id = key.id;
    g->key = key;
    pc.hr = hr;
    pc.m = m;
    pc.q = &g->task.req;
    pc.inl = g->inl;
    pc.ninline = 0;
    ok = ig_gemini_parse(&pc, root);
    g->ninline = pc.ninline;
    if (!ok) {
        cJSON_Delete(root);
        gen_free(g);
        return;
    }
    cJSON_Delete(root);
    ig_http_on_close(hr, on_close, g);
    if (g->ninline > 0) {
        g->holds++;
        ig_pool_submit(g->app->pool, inline_work, inline_done, g->mb, g);
    } else {
        submit(g);
    }
}

void ig_gemini_generate(struct ig_hreq *hr, const char *param)
{
    generate(hr, param, MODE_JSON);
}

void ig_gemini_stream(struct ig_hreq *hr, const char *param)
{
    generate(hr, param, MODE_SSE);
}

/* A parked duplicate runs its route again (the route's parameter is in hr->path). */
static const char *model_param(struct ig_hreq *hr, char *out, size_t n, const char *verb)
{
    const char *p = hr->path + strlen("/v1beta/models/");
    const char *colon = strstr(p, verb);

    snprintf(out, n, "%.*s", colon ? (int)(colon - p) : (int)strlen(p), p);
    return out;
}

static void retry_generate(struct ig_hreq *hr)
{
    char m[256];

    generate(hr, model_param(hr, m, sizeof(m), ":generateContent"), MODE_JSON);
}

static void retry_stream(struct ig_hreq *hr)
{
    char m[256];

    generate(hr, model_param(hr, m, sizeof(m), ":streamGenerateContent"), MODE_SSE);
}
