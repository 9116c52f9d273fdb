/* reapi.c: the reAPI dialect (seed 000): POST /api/v1/images/generations submits a task,
 * GET /api/v1/tasks/{id} polls it. Numeric error codes in {"error":{code,message,request_id}}. */
#include "base/base.h"
#include "core/engine.h"
#include "http/idempotency.h"
#include "http/routes.h"
#include "net/fetch.h"
#include "policy/keys.h"
#include "policy/limits.h"
#include "provider/channel.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROMPT_MAX_CHARS 1000
#define REF_MAX 14
#define URL_MAX_BYTES 4096

static int reapi_code(enum ig_err err)
{
    switch (err) {
    case IG_E_UNAUTHENTICATED:
    case IG_E_FORBIDDEN:
        return 10003;
    case IG_E_INVALID:
    case IG_E_CONFLICT: /* an Idempotency-Key reused with another request (422) */
    case IG_E_TOOBIG:
    case IG_E_REFERENCE:
    case IG_E_BLOCKED:
    case IG_E_METHOD:
        return 20003;
    case IG_E_NOT_FOUND:
    case IG_E_GONE:
        return 20004;
    case IG_E_INSUFFICIENT:
        return 30001;
    case IG_E_RATE_LIMITED:
        return 50001;
    case IG_E_UPSTREAM_SUBMIT:
        return 80001;
    case IG_E_UPSTREAM_TIMEOUT:
        return 80002;
    case IG_E_UPSTREAM_FAILED:
    case IG_E_MODERATED:
        return 80003;
    default:
        return 60099;
    }
}

void ig_reapi_error(struct ig_hreq *hr, int status, enum ig_err err, const char *field,
                    const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");

    cJSON_AddNumberToObject(e, "code", reapi_code(err));
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "request_id", hr->request_id);
    ig_http_reply_json(hr, status, root);
}

/* The key of the request, or an error reply already sent (returns false). */
static bool authenticate(struct ig_hreq *hr, struct ig_key *key)
{
    size_t len = 0;
    const char *tok = ig_http_bearer(hr, &len);
    enum ig_err err;

    if (!tok) {
        ig_http_error(hr, IG_E_UNAUTHENTICATED, "Authorization",
                      "API key missing: send the header Authorization: Bearer <key>");
        return false;
    }
    err = ig_key_check_cached(hr->keys, hr->store, tok, len, key);
    if (err == IG_E_UNAUTHENTICATED) {
        ig_http_error(hr, err, "Authorization", "API key invalid");
        return false;
    }
    if (err) {
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
        return false;
    }
    if (!(key->scopes & IG_SCOPE_GENERATE)) {
        ig_http_error(hr, IG_E_FORBIDDEN, "Authorization",
                      "this API key may not generate images (it has no generate scope)");
        return false;
    }
    return true;
}

/* ---- submit -------------------------------------------------------------------------------- */

struct submit {
    struct ig_hreq *hr;
    bool offline;              /* no channel serves the model: the offline provider will */
    struct ig_idem_use *idem;  /* an Idempotency-Key's first use, or NULL */
    char *accepted;            /* the 200 body, rendered before the insert */
};

/* The answer to an accepted submit: {id, model, status, created_at}. Rendered before the
 * insert, so an Idempotency-Key record can carry it, byte for byte. */
static char *render_accepted(const struct ig_task *t)
{
    cJSON *root = cJSON_CreateObject();
    char id[5 + IG_ID_HEX_LEN + 1] = "task_", *s;

    ig_id_hex(&t->id, id + 5);
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "model", t->model_alias);
    cJSON_AddStringToObject(root, "status", "processing");
    cJSON_AddNumberToObject(root, "created_at", (double)(t->created_ms / 1000));
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        IG_BUG("out of memory rendering a reply");
    return s;
}

static void submitted(enum ig_err err, const struct ig_task *t, void *arg)
{
    struct submit *sb = arg;
    struct ig_hreq *hr = sb->hr;

    if (err == IG_E_INSUFFICIENT) {
        ig_http_error(hr, IG_E_INSUFFICIENT, "credits",
                      "insufficient credits: this request holds $%lld.%06lld",
                      (long long)(t->price_held / 1000000), (long long)(t->price_held % 1000000));
    } else if (err == IG_E_RATE_LIMITED) {
        ig_http_header(hr, "Retry-After", "1");
        ig_http_error(hr, IG_E_RATE_LIMITED, "tasks",
                      "rate limited: this key already has %d unfinished tasks", t->admit_max_tasks);
    } else if (err) {
        ig_error("reapi: storing a new task failed: %s", ig_strerror(err));
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
    } else {
        if (sb->offline)
            ig_http_header(hr, "X-Imagegate-Offline", "true");
        ig_http_reply_bytes(hr, 200, "application/json", sb->accepted, strlen(sb->accepted));
    }
    if (sb->idem)
        ig_idem_end(sb->idem); /* duplicates waiting for this one go again, and replay */
    cJSON_free(sb->accepted);
    free(sb);
}

/* Validate the body into a task; on failure an error reply has been sent (returns false). */
static bool parse_submit(struct ig_hreq *hr, const cJSON *root, struct ig_task *t,
                         bool *offline_out)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "resolution");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "n");
    const cJSON *urls = cJSON_GetObjectItemCaseSensitive(root, "image_urls");
    const struct ig_model *m;
    struct ig_request *q = &t->req;
    bool official = false;
    long chars;
    char list[256];

    if (cJSON_IsNull(size))
        size = NULL;
    if (cJSON_IsNull(res))
        res = NULL;
    if (cJSON_IsNull(n))
        n = NULL;
    if (cJSON_IsNull(urls))
        urls = NULL;

    if (!model) {
        ig_http_error(hr, IG_E_INVALID, "model", "model is required");
        return false;
    }
    if (!cJSON_IsString(model)) {
        ig_http_error(hr, IG_E_INVALID, "model", "model must be a string");
        return false;
    }
    m = ig_catalog_find(hr->app->catalog, model->valuestring, &official);
    if (!m) {
        ig_http_error(hr, IG_E_INVALID, "model",
                      "model '%.96s' is not available; use gemini-2.5-flash-image-preview, "
                      "gemini-2.5-flash-image-preview-official, gemini-3-pro-image-preview or "
                      "gemini-3.1-flash-image-preview",
                      model->valuestring);
        return false;
    }
    snprintf(t->model, sizeof(t->model), "%s", m->id);
    if (offline_out)
        *offline_out = !ig_router_serves(hr->app->router, m);
    snprintf(t->model_alias, sizeof(t->model_alias), "%s", model->valuestring);
    q->official = official;

    if (!prompt || cJSON_IsNull(prompt)) {
        ig_http_error(hr, IG_E_INVALID, "prompt",
                      urls ? "prompt is required: image-to-image (image_urls) needs a prompt "
                             "describing what to do with the references"
                           : "prompt is required");
        return false;
    }
    if (!cJSON_IsString(prompt)) {
        ig_http_error(hr, IG_E_INVALID, "prompt", "prompt must be a string");
        return false;
    }
    chars = ig_utf8_count(prompt->valuestring, strlen(prompt->valuestring));
    if (chars < 0) {
        ig_http_error(hr, IG_E_INVALID, "prompt", "prompt is not valid UTF-8");
        return false;
    }
    if (chars < 1 || chars > PROMPT_MAX_CHARS) {
        ig_http_error(hr, IG_E_INVALID, "prompt",
                      "prompt must be 1 to %d characters, got %ld", PROMPT_MAX_CHARS, chars);
        return false;
    }
    q->prompt = ig_xstrdup(prompt->valuestring);

    if (size) {
        if (!cJSON_IsString(size) || !ig_model_ratio_find(m, size->valuestring)) {
            ig_model_ratio_list(m, list, sizeof(list));
            ig_http_error(hr, IG_E_INVALID, "size", "size must be one of %s", list);
            return false;
        }
        snprintf(q->ratio, sizeof(q->ratio), "%s", size->valuestring);
    }

    if (res) {
        if (!cJSON_IsString(res) || ig_model_res_index(m, res->valuestring) < 0) {
            if (m->nres == 1) {
                ig_http_error(hr, IG_E_INVALID, "resolution", "%s: only resolution=%s is supported",
                              t->model_alias, m->res[0]);
            } else {
                size_t o = 0;
                list[0] = '\0';
                for (int i = 0; i < m->nres; i++)
                    o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
                                          m->res[i]);
                ig_http_error(hr, IG_E_INVALID, "resolution", "%s: resolution must be one of %s",
                              t->model_alias, list);
            }
            return false;
        }
        snprintf(q->resolution, sizeof(q->resolution), "%s", res->valuestring);
    } else {
        snprintf(q->resolution, sizeof(q->resolution), "%s", m->default_res);
    }

    q->n = 1;
    if (n) {
        if (!cJSON_IsNumber(n)) {
            ig_http_error(hr, IG_E_INVALID, "n", "n must be a number, not a %s",
                          cJSON_IsString(n) ? "string" : "non-number");
            return false;
        }
        if (n->valuedouble != floor(n->valuedouble) || n->valuedouble < 1 ||
            n->valuedouble > m->max_n) {
            ig_http_error(hr, IG_E_INVALID, "n", "n must be a whole number from 1 to %d", m->max_n);
            return false;
        }
        q->n = (int)n->valuedouble;
    }

    if (urls) {
        const cJSON *u;
        int max = m->max_refs < REF_MAX ? m->max_refs : REF_MAX;

        if (!cJSON_IsArray(urls)) {
            ig_http_error(hr, IG_E_INVALID, "image_urls", "image_urls must be an array of URLs");
            return false;
        }
        if (cJSON_GetArraySize(urls) > max) {
            ig_http_error(hr, IG_E_INVALID, "image_urls",
                          "image_urls may hold at most %d URLs, got %d", max,
                          cJSON_GetArraySize(urls));
            return false;
        }
        cJSON_ArrayForEach(u, urls)
        {
            struct ig_errbuf eb;
            int i = q->nrefs;

            if (!cJSON_IsString(u)) {
                ig_http_error(hr, IG_E_INVALID, "image_urls", "image_urls[%d] must be a string", i);
                return false;
            }
            if (strncasecmp(u->valuestring, "data:", 5) == 0 ||
                strncasecmp(u->valuestring, "http", 4) != 0) {
                ig_http_error(hr, IG_E_INVALID, "image_urls",
                              "image_urls[%d] must be a public http(s) URL; data: URIs and base64 "
                              "are not accepted — upload the image and pass its URL",
                              i);
                return false;
            }
            if (strlen(u->valuestring) > URL_MAX_BYTES) {
                ig_http_error(hr, IG_E_INVALID, "image_urls",
                              "image_urls[%d] is longer than %d bytes", i, URL_MAX_BYTES);
                return false;
            }
            ig_errbuf_clear(&eb);
            if (ig_fetch_check_url(u->valuestring, &eb)) {
                ig_http_error(hr, IG_E_INVALID, "image_urls", "image_urls[%d]: %s", i, eb.msg);
                return false;
            }
            q->refs[q->nrefs++] = ig_xstrdup(u->valuestring);
        }
    }
    snprintf(q->output_format, sizeof(q->output_format), "png");
    return true;
}

static void submit_run(struct ig_hreq *hr);

void ig_reapi_submit(struct ig_hreq *hr, const char *param)
{
    submit_run(hr);
}

static void submit_run(struct ig_hreq *hr)
{
    struct ig_key key;
    struct submit *sb;
    struct ig_task task;
    struct ig_idem_use *idem = NULL;
    size_t len;
    const char *body;
    cJSON *root;

    if (!authenticate(hr, &key))
        return;
    {
        int64_t wait_ms;

        if (!ig_admit_rate(hr->app, &key, &wait_ms)) {
            char secs[24];

            snprintf(secs, sizeof(secs), "%lld", (long long)((wait_ms + 999) / 1000));
            ig_http_header(hr, "Retry-After", secs);
            ig_http_error(hr, IG_E_RATE_LIMITED, "rate",
                          "rate limited: this key may submit %d tasks per minute; retry in %s s",
                          key.rate_rpm >= 0 ? key.rate_rpm : hr->app->cfg.rate_rpm, secs);
            return;
        }
    }
    if (ig_idem_begin(hr, &key, "reapi.submit", submit_run, &idem) == IG_IDEM_DONE)
        return;
    body = ig_http_body(hr, &len);
    /* len + 1 takes in the NUL ig_http_body() puts after the body: cJSON then refuses anything
     * but white space after the value (and a NUL inside the body ends it early: refused too). */
    root = cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1);
    if (!root || !cJSON_IsObject(root)) {
        ig_http_error(hr, IG_E_INVALID, "body",
                      root ? "the request body must be a JSON object"
                           : "the request body is not valid JSON");
        cJSON_Delete(root);
        if (idem)
            ig_idem_end(idem);
        return;
    }
    sb = ig_xcalloc(1, sizeof(*sb));
    sb->hr = hr;
    sb->idem = idem;
    ig_task_init(&task);
    if (!parse_submit(hr, root, &task, &sb->offline)) {
        cJSON_Delete(root);
        ig_task_release(&task);
        if (idem)
            ig_idem_end(idem);
        free(sb);
        return;
    }
    cJSON_Delete(root);
    if (!ig_key_allows_model(&key, task.model)) {
        ig_http_error(hr, IG_E_FORBIDDEN, "model", "%s: this API key may not use this model",
                      task.model_alias);
        ig_task_release(&task);
        if (idem)
            ig_idem_end(idem);
        free(sb);
        return;
    }
    ig_id_new(&task.id);
    task.key_id = key.id;
    snprintf(task.dialect, sizeof(task.dialect), "reapi");
    task.state = IG_TASK_QUEUED;
    task.max_attempts = hr->app->cfg.max_attempts;
    task.admit_max_tasks = ig_admit_max_tasks(hr->app, &key);
    task.created_ms = ig_id_time_ms(&task.id);
    task.deadline_ms = task.created_ms + (int64_t)hr->app->cfg.task_timeout_s * 1000;
    sb->accepted = render_accepted(&task);
    if (idem)
        task.idem = ig_idem_prepare(idem, 200, "application/json", sb->accepted,
                                    strlen(sb->accepted));
    ig_engine_submit(hr->app->engine, &task, hr->mb, submitted, sb);
}

/* ---- poll --------------------------------------------------------------------------------- */

static const char *reapi_status(enum ig_task_state s)
{
    switch (s) {
    case IG_TASK_SUCCEEDED:
        return "completed";
    case IG_TASK_FAILED:
    case IG_TASK_CANCELLED:
        return "failed";
    default:
        return "processing";
    }
}

void ig_reapi_poll(struct ig_hreq *hr, const char *param)
{
    struct ig_key key;
    struct ig_id id;
    struct ig_task t;
    enum ig_err err;
    cJSON *root;
    char hex[IG_ID_HEX_LEN + 1], idstr[5 + IG_ID_HEX_LEN + 1];

    if (!authenticate(hr, &key))
        return;
    if (strlen(param) > 64 || !ig_id_parse(param, &id)) {
        ig_http_error(hr, IG_E_NOT_FOUND, "id", "task '%.64s' not found", param);
        return;
    }
    ig_task_init(&t);
    err = ig_store_task_get(hr->store, &id, &t);
    if (err == IG_E_NOT_FOUND || (!err && t.key_id != key.id)) {
        ig_task_release(&t);
        ig_http_error(hr, IG_E_NOT_FOUND, "id", "task '%.64s' not found", param);
        return;
    }
    if (err) {
        ig_task_release(&t);
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
        return;
    }
    ig_id_hex(&t.id, hex);
    snprintf(idstr, sizeof(idstr), "task_%s", hex);
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", idstr);
    cJSON_AddStringToObject(root, "model", t.model_alias);
    cJSON_AddStringToObject(root, "status", reapi_status(t.state));
    cJSON_AddNumberToObject(root, "created_at", (double)(t.created_ms / 1000));
    if (t.state == IG_TASK_SUCCEEDED) {
        cJSON *out = cJSON_AddObjectToObject(root, "output");
        cJSON *arr = cJSON_AddArrayToObject(out, "image_urls");

        for (int i = 0; i < t.noutputs; i++) {
            char url[1024];

            snprintf(url, sizeof(url), "%s/media/tasks/%s/%d.%s", hr->app->public_url, hex, i,
                     t.outputs[i].ext);
            cJSON_AddItemToArray(arr, cJSON_CreateString(url));
        }
    } else {
        cJSON_AddNullToObject(root, "output");
    }
    if (t.state == IG_TASK_FAILED || t.state == IG_TASK_CANCELLED) {
        cJSON *e = cJSON_AddObjectToObject(root, "error");
        enum ig_err terr = t.state == IG_TASK_CANCELLED && !t.err ? IG_E_CANCELLED : t.err;

        cJSON_AddNumberToObject(e, "code", reapi_code(terr));
        cJSON_AddStringToObject(e, "message", t.err_message ? t.err_message : ig_strerror(terr));
    } else {
        cJSON_AddNullToObject(root, "error");
    }
    if (t.offline)
        ig_http_header(hr, "X-Imagegate-Offline", "true");
    ig_task_release(&t);
    ig_http_reply_json(hr, 200, root);
}
