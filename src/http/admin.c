/* admin.c: the admin API (a key with the admin scope): keys and their balances, limits and
 * revocation — what `imagegate keys` does on the command line, over HTTP. Money is written
 * as decimal strings of US dollars ("5.00"), never as JSON numbers. Writes go through the
 * writer thread; the answer is sent from its completion. Documented in docs/admin.md. */
#include "base/base.h"
#include "http/routes.h"
#include "policy/keys.h"
#include "store/writer.h"

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/* ---- rendering -------------------------------------------------------------------------- */

static cJSON *key_json(const struct ig_key *k)
{
    cJSON *o = cJSON_CreateObject(), *sc = cJSON_AddArrayToObject(o, "scopes");
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    char usd[32];

    cJSON_AddNumberToObject(o, "id", (double)k->id);
    cJSON_AddStringToObject(o, "name", k->name);
    cJSON_AddNumberToObject(o, "created_at", (double)(k->created_ms / 1000));
    cJSON_AddBoolToObject(o, "metered", k->metered);
    ig_usd_format(k->credits, usd, sizeof(usd));
    cJSON_AddStringToObject(o, "balance_usd", usd);
    cJSON_AddBoolToObject(o, "revoked", k->revoked);
    if (k->scopes & IG_SCOPE_GENERATE)
        cJSON_AddItemToArray(sc, cJSON_CreateString("generate"));
    if (k->scopes & IG_SCOPE_ADMIN)
        cJSON_AddItemToArray(sc, cJSON_CreateString("admin"));
    if (k->expires_ms > 0)
        cJSON_AddNumberToObject(o, "expires_at", (double)(k->expires_ms / 1000));
    else
        cJSON_AddNullToObject(o, "expires_at");
    for (const char *p = k->models; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char m[IG_MODEL_NAME_MAX];

        snprintf(m, sizeof(m), "%.*s", (int)len, p);
        cJSON_AddItemToArray(models, cJSON_CreateString(m));
        p += len + (end ? 1 : 0);
    }
    if (k->rate_rpm >= 0)
        cJSON_AddNumberToObject(o, "rate_rpm", k->rate_rpm);
    else
        cJSON_AddNullToObject(o, "rate_rpm");
    if (k->max_tasks >= 0)
        cJSON_AddNumberToObject(o, "max_tasks", k->max_tasks);
    else
        cJSON_AddNullToObject(o, "max_tasks");
    return o;
}

/* ---- authentication --------------------------------------------------------------------- */

static bool admin_auth(struct ig_hreq *hr)
{
    size_t len = 0;
    const char *tok = ig_http_bearer(hr, &len);
    struct ig_key k;
    enum ig_err err;

    if (!tok) {
        ig_http_error(hr, IG_E_UNAUTHENTICATED, "Authorization",
                      "API key missing: send the header Authorization: Bearer <admin key>");
        return false;
    }
    err = ig_key_check_cached(hr->keys, hr->store, tok, len, &k);
    if (err == IG_E_UNAUTHENTICATED) {
        ig_http_error(hr, err, "Authorization", "API key invalid");
        return false;
    }
    if (err) {
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
        return false;
    }
    if (!(k.scopes & IG_SCOPE_ADMIN)) {
        ig_http_error(hr, IG_E_FORBIDDEN, "Authorization",
                      "this API key has no admin scope");
        return false;
    }
    return true;
}

static cJSON *json_body(struct ig_hreq *hr)
{
    size_t len;
    const char *body = ig_http_body(hr, &len);
    cJSON *root = len ? cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1) : cJSON_CreateObject();

    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        ig_http_error(hr, IG_E_INVALID, "body", "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* A limit field: absent (keep *out), null (-1: the server's default) or a count. */
static bool limit_field(struct ig_hreq *hr, const cJSON *root, const char *name, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);

    if (!v)
        return true;
    if (cJSON_IsNull(v)) {
        *out = -1;
        return true;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 10000000 ||
        v->valuedouble != (double)(int)v->valuedouble) {
        ig_http_error(hr, IG_E_INVALID, name,
                      "%s must be null (the server's default) or a whole number 0..10000000 "
                      "(0 = no limit)", name);
        return false;
    }
    *out = (int)v->valuedouble;
    return true;
}

/* ---- writes through the writer thread --------------------------------------------------- */

struct wop {
    struct ig_hreq *hr;
    int kind;                 /* W_* */
    struct ig_key k;          /* create: the template, then the key; others: its id */
    char secret[IG_KEY_LEN + 1];
    int64_t amount;
    char note[256];
    int64_t balance;
};

enum { W_CREATE, W_REVOKE, W_CREDIT, W_LIMITS };

static enum ig_err wop_job(struct ig_store *s, void *arg)
{
    struct wop *w = arg;
    enum ig_err err;

    switch (w->kind) {
    case W_CREATE:
        return ig_key_create_ex(s, &w->k, w->secret);
    case W_REVOKE:
        err = ig_store_key_revoke(s, w->k.id);
        break;
    case W_CREDIT:
        err = ig_store_key_credit(s, w->k.id, w->amount, ig_now_ms(),
                                  w->note[0] ? w->note : NULL, &w->balance);
        break;
    default:
        err = ig_store_key_set_limits(s, w->k.id, w->k.rate_rpm, w->k.max_tasks);
        break;
    }
    if (!err)
        err = ig_store_key_get(s, w->k.id, &w->k);
    return err;
}

static void wop_done(enum ig_err err, void *arg)
{
    struct wop *w = arg;
    struct ig_hreq *hr = w->hr;

    if (err == IG_E_NOT_FOUND) {
        ig_http_error(hr, err, "id", "no key has this id");
    } else if (err == IG_E_INSUFFICIENT) {
        ig_http_error_status(hr, 409, IG_E_INSUFFICIENT, "amount_usd",
                             "a metered key's balance cannot go below 0");
    } else if (err) {
        ig_error("admin: a key operation failed: %s", ig_strerror(err));
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
    } else {
        cJSON *o = key_json(&w->k);

        if (w->kind == W_REVOKE)
            ig_key_cache_flush_all(); /* refused from the next request on, on every thread */
        if (w->kind == W_CREATE) /* the only time the secret is shown */
            cJSON_AddStringToObject(o, "key", w->secret);
        ig_http_reply_json(hr, w->kind == W_CREATE ? 201 : 200, o);
    }
    memset(w->secret, 0, sizeof(w->secret));
    free(w);
}

static void wop_submit(struct wop *w)
{
    ig_writer_submit(w->hr->app->writer, wop_job, wop_done, w->hr->mb, w);
}

/* ---- POST /admin/v1/keys ------------------------------------------------------------------ */

static void create_key(struct ig_hreq *hr)
{
    cJSON *root = json_body(hr);
    const cJSON *v;
    struct wop *w;

    if (!root)
        return;
    w = ig_xcalloc(1, sizeof(*w));
    w->hr = hr;
    w->kind = W_CREATE;
    ig_key_template(&w->k);
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "name"))) {
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof(w->k.name)) {
            ig_http_error(hr, IG_E_INVALID, "name", "name must be a string of at most %d bytes",
                          (int)sizeof(w->k.name) - 1);
            goto bad;
        }
        snprintf(w->k.name, sizeof(w->k.name), "%s", v->valuestring);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "credits_usd"))) {
        if (!cJSON_IsString(v) || !ig_usd_parse(v->valuestring, false, &w->k.credits)) {
            ig_http_error(hr, IG_E_INVALID, "credits_usd",
                          "credits_usd must be US dollars as a decimal string, e.g. \"5.00\"");
            goto bad;
        }
        w->k.metered = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "metered"))) {
        if (!cJSON_IsBool(v)) {
            ig_http_error(hr, IG_E_INVALID, "metered", "metered must be true or false");
            goto bad;
        }
        w->k.metered = cJSON_IsTrue(v);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "scopes"))) {
        const cJSON *it;

        w->k.scopes = 0;
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
            goto bad_scopes;
        cJSON_ArrayForEach(it, v) {
            if (cJSON_IsString(it) && strcmp(it->valuestring, "generate") == 0)
                w->k.scopes |= IG_SCOPE_GENERATE;
            else if (cJSON_IsString(it) && strcmp(it->valuestring, "admin") == 0)
                w->k.scopes |= IG_SCOPE_ADMIN;
            else
                goto bad_scopes;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "expires_at")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble <= (double)(ig_now_ms() / 1000) ||
            v->valuedouble > 1e11) {
            ig_http_error(hr, IG_E_INVALID, "expires_at",
                          "expires_at must be a future Unix time in seconds, or null");
            goto bad;
        }
        w->k.expires_ms = (int64_t)v->valuedouble * 1000;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "models")) && !cJSON_IsNull(v)) {
        const cJSON *it;
        size_t used = 0;

        if (!cJSON_IsArray(v)) {
            ig_http_error(hr, IG_E_INVALID, "models", "models must be an array of model ids");
            goto bad;
        }
        cJSON_ArrayForEach(it, v) {
            const struct ig_model *m = cJSON_IsString(it)
                                           ? ig_catalog_find(hr->app->catalog, it->valuestring, NULL)
                                           : NULL;
            int n;

            if (!m) {
                ig_http_error(hr, IG_E_INVALID, "models", "models: %s is not a model id",
                              cJSON_IsString(it) ? it->valuestring : "(not a string)");
                goto bad;
            }
            n = snprintf(w->k.models + used, sizeof(w->k.models) - used, "%s%s", used ? "," : "",
                         m->id);
            if (n < 0 || (size_t)n >= sizeof(w->k.models) - used) {
                ig_http_error(hr, IG_E_INVALID, "models", "models: too many");
                goto bad;
            }
            used += (size_t)n;
        }
    }
    if (!limit_field(hr, root, "rate_rpm", &w->k.rate_rpm) ||
        !limit_field(hr, root, "max_tasks", &w->k.max_tasks))
        goto out;
    cJSON_Delete(root);
    wop_submit(w);
    return;
bad_scopes:
    ig_http_error(hr, IG_E_INVALID, "scopes",
                  "scopes must be a non-empty array of \"generate\" and \"admin\"");
bad:
out:
    cJSON_Delete(root);
    free(w);
}

/* ---- the key collection and each key ------------------------------------------------------ */

static void list_add(const struct ig_key *k, void *arg)
{
    cJSON_AddItemToArray(arg, key_json(k));
}

void ig_admin_keys(struct ig_hreq *hr, const char *param)
{
    cJSON *root, *data;

    if (!admin_auth(hr))
        return;
    if (hr->method == EVHTTP_REQ_POST) {
        create_key(hr);
        return;
    }
    root = cJSON_CreateObject();
    data = cJSON_AddArrayToObject(root, "data");
    if (ig_store_key_list(hr->store, list_add, data)) {
        cJSON_Delete(root);
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
        return;
    }
    ig_http_reply_json(hr, 200, root);
}

/* /admin/v1/keys/{id}[/revoke|/credit|/limits] */
void ig_admin_key(struct ig_hreq *hr, const char *param)
{
    char *end;
    long long id = strtoll(param, &end, 10);
    const char *action = *end == '/' ? end + 1 : end;
    struct ig_key k;
    struct wop *w;
    cJSON *root;

    if (!admin_auth(hr))
        return;
    if (end == param || id <= 0 || (*end && *end != '/')) {
        ig_http_error(hr, IG_E_NOT_FOUND, "id", "no key has this id");
        return;
    }
    if (!*action) {
        enum ig_err err;

        if (hr->method != EVHTTP_REQ_GET) {
            ig_http_header(hr, "Allow", "GET");
            ig_http_error(hr, IG_E_METHOD, NULL, "use GET on a key");
            return;
        }
        err = ig_store_key_get(hr->store, id, &k);
        if (err == IG_E_NOT_FOUND)
            ig_http_error(hr, err, "id", "no key has this id");
        else if (err)
            ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
        else
            ig_http_reply_json(hr, 200, key_json(&k));
        return;
    }
    if (strcmp(action, "revoke") != 0 && strcmp(action, "credit") != 0 &&
        strcmp(action, "limits") != 0) {
        ig_http_error(hr, IG_E_NOT_FOUND, "path", "no route for %s", hr->path);
        return;
    }
    if (hr->method != EVHTTP_REQ_POST) {
        ig_http_header(hr, "Allow", "POST");
        ig_http_error(hr, IG_E_METHOD, NULL, "use POST on /%s", action);
        return;
    }
    if (!(root = json_body(hr)))
        return;
    w = ig_xcalloc(1, sizeof(*w));
    w->hr = hr;
    w->k.id = id;
    if (strcmp(action, "revoke") == 0) {
        w->kind = W_REVOKE;
    } else if (strcmp(action, "credit") == 0) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "amount_usd");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "note");

        w->kind = W_CREDIT;
        if (!cJSON_IsString(a) || !ig_usd_parse(a->valuestring, true, &w->amount) ||
            w->amount == 0) {
            ig_http_error(hr, IG_E_INVALID, "amount_usd",
                          "amount_usd must be non-zero US dollars as a decimal string, e.g. "
                          "\"10.00\" or \"-2.50\"");
            goto bad;
        }
        if (n && (!cJSON_IsString(n) || strlen(n->valuestring) >= sizeof(w->note))) {
            ig_http_error(hr, IG_E_INVALID, "note", "note must be a string of at most %d bytes",
                          (int)sizeof(w->note) - 1);
            goto bad;
        }
        if (n)
            snprintf(w->note, sizeof(w->note), "%s", n->valuestring);
    } else {
        enum ig_err err = ig_store_key_get(hr->store, id, &k);

        w->kind = W_LIMITS;
        if (err) {
            if (err == IG_E_NOT_FOUND)
                ig_http_error(hr, err, "id", "no key has this id");
            else
                ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
            goto bad;
        }
        w->k = k;
        if (!limit_field(hr, root, "rate_rpm", &w->k.rate_rpm) ||
            !limit_field(hr, root, "max_tasks", &w->k.max_tasks))
            goto bad;
    }
    cJSON_Delete(root);
    wop_submit(w);
    return;
bad:
    cJSON_Delete(root);
    free(w);
}

/* ---- GET /admin/v1/usage?key_id=&days=&by=model|channel ------------------------------------ */

static void usage_add(const struct ig_usage_row *r, void *arg)
{
    cJSON *o = cJSON_CreateObject();
    char usd[32];

    if (r->day[0])
        cJSON_AddStringToObject(o, "day", r->day);
    cJSON_AddStringToObject(o, r->day[0] ? "model" : "channel", r->name);
    cJSON_AddNumberToObject(o, "tasks", (double)r->tasks);
    cJSON_AddNumberToObject(o, "succeeded", (double)r->succeeded);
    cJSON_AddNumberToObject(o, "images", (double)r->images);
    cJSON_AddNumberToObject(o, "image_tokens", (double)r->image_tokens);
    cJSON_AddNumberToObject(o, "text_tokens", (double)r->text_tokens);
    ig_usd_format(r->charged, usd, sizeof(usd));
    cJSON_AddStringToObject(o, "charged_usd", usd);
    ig_usd_format(r->cost, usd, sizeof(usd));
    cJSON_AddStringToObject(o, "cost_usd", usd);
    ig_usd_format(r->charged - r->cost, usd, sizeof(usd));
    cJSON_AddStringToObject(o, "margin_usd", usd);
    cJSON_AddItemToArray(arg, o);
}

void ig_admin_usage(struct ig_hreq *hr, const char *param)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL, *v;
    struct evkeyvalq args;
    long long key_id = 0, days = 30;
    bool by_channel = false;
    int64_t now = ig_now_ms(), from;
    cJSON *root, *data;
    char *end;

    if (!admin_auth(hr))
        return;
    TAILQ_INIT(&args);
    if (q && evhttp_parse_query_str(q, &args) != 0) {
        ig_http_error(hr, IG_E_INVALID, "query", "the query string is malformed");
        return;
    }
    if ((v = evhttp_find_header(&args, "key_id"))) {
        key_id = strtoll(v, &end, 10);
        if (*end || key_id <= 0) {
            ig_http_error(hr, IG_E_INVALID, "key_id", "key_id must be a key id");
            goto out;
        }
    }
    if ((v = evhttp_find_header(&args, "days"))) {
        days = strtoll(v, &end, 10);
        if (*end || days < 1 || days > 3650) {
            ig_http_error(hr, IG_E_INVALID, "days", "days must be 1..3650");
            goto out;
        }
    }
    if ((v = evhttp_find_header(&args, "by"))) {
        if (strcmp(v, "channel") == 0) {
            by_channel = true;
        } else if (strcmp(v, "model") != 0) {
            ig_http_error(hr, IG_E_INVALID, "by", "by must be model or channel");
            goto out;
        }
    }
    from = (now / 86400000 - (days - 1)) * 86400000; /* whole UTC days */
    root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "from", (double)(from / 1000));
    cJSON_AddNumberToObject(root, "to", (double)(now / 1000));
    if (key_id)
        cJSON_AddNumberToObject(root, "key_id", (double)key_id);
    else
        cJSON_AddNullToObject(root, "key_id");
    data = cJSON_AddArrayToObject(root, "data");
    if (ig_store_usage(hr->store, key_id, from, now + 1, by_channel, usage_add, data)) {
        cJSON_Delete(root);
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
        goto out;
    }
    ig_http_reply_json(hr, 200, root);
out:
    evhttp_clear_headers(&args);
}
