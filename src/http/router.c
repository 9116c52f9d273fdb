/* router.c: method + path -> handler, and the generic routes (health, errors). */
#include "base/base.h"
#include "http/routes.h"

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>

enum match { EXACT, PARAM /* prefix + one segment */, REST /* prefix + anything */ };

#define PARAM_MAX 256 /* a segment before a ":verb" suffix, copied out of the path */

struct route {
    const char *path;
    enum match match;
    int methods;              /* EVHTTP_REQ_* mask */
    ig_route_fn *fn;
    ig_error_render_fn *err;
    const char *allow;        /* Allow header for 405 */
    /* PARAM only: the segment must end with this (Google's custom verbs, ":generateContent"),
     * and the handler gets the segment without it. */
    const char *suffix;
};

static const struct route routes[] = {
    {"/healthz", EXACT, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, ig_health_get, ig_generic_error, "GET, HEAD", NULL},
    {"/api/v1/images/generations", EXACT, EVHTTP_REQ_POST, ig_reapi_submit, ig_reapi_error, "POST", NULL},
    {"/api/v1/tasks/", PARAM, EVHTTP_REQ_GET, ig_reapi_poll, ig_reapi_error, "GET", NULL},
    {"/v1beta/models", EXACT, EVHTTP_REQ_GET, ig_gemini_models_list, ig_gemini_error, "GET", NULL},
    {"/v1beta/models/", PARAM, EVHTTP_REQ_POST, ig_gemini_generate, ig_gemini_error, "POST", ":generateContent"},
    {"/v1beta/models/", PARAM, EVHTTP_REQ_POST, ig_gemini_stream, ig_gemini_error, "POST", ":streamGenerateContent"},
    {"/v1beta/models/", PARAM, EVHTTP_REQ_GET, ig_gemini_models_get, ig_gemini_error, "GET", NULL},
    {"/media/tasks/", REST, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, ig_media_get, ig_generic_error, "GET, HEAD", NULL},
    {"/admin/v1/keys", EXACT, EVHTTP_REQ_GET | EVHTTP_REQ_POST, ig_admin_keys, ig_generic_error, "GET, POST", NULL},
    {"/admin/v1/keys/", REST, EVHTTP_REQ_GET | EVHTTP_REQ_POST, ig_admin_key, ig_generic_error, "GET, POST", NULL},
    {"/admin/v1/usage", EXACT, EVHTTP_REQ_GET, ig_admin_usage, ig_generic_error, "GET", NULL},
};

static const char *match(const struct route *r, const char *path)
{
    size_t n = strlen(r->path);

    switch (r->match) {
    case EXACT:
        return strcmp(path, r->path) == 0 ? path + n : NULL;
    case PARAM:
        if (strncmp(path, r->path, n) != 0 || !path[n] || strchr(path + n, '/'))
            return NULL;
        if (r->suffix) {
            size_t seg = strlen(path + n), sl = strlen(r->suffix);

            if (seg <= sl || seg - sl >= PARAM_MAX || strcmp(path + n + seg - sl, r->suffix) != 0)
                return NULL;
        }
        return path + n;
    case REST:
        if (strncmp(path, r->path, n) != 0 || !path[n])
            return NULL;
        return path + n;
    }
    return NULL;
}

void ig_route_dispatch(struct ig_hreq *hr)
{
    const struct route *found = NULL;
    const char *param = NULL;
    char seg[PARAM_MAX];

    for (size_t i = 0; i < IG_ARRAY_LEN(routes); i++) {
        const char *p = match(&routes[i], hr->path);

        if (!p)
            continue;
        found = &routes[i];
        param = p;
        if (routes[i].methods & hr->method)
            break;
    }
    if (!found) {
        hr->render_error = ig_generic_error;
        ig_http_error(hr, IG_E_NOT_FOUND, "path", "no route for %s", hr->path);
        return;
    }
    hr->render_error = found->err;
    if (!(found->methods & hr->method)) {
        ig_http_header(hr, "Allow", found->allow);
        ig_http_error(hr, IG_E_METHOD, "method", "%s accepts %s only", found->path, found->allow);
        return;
    }
    if (found->suffix) {
        snprintf(seg, sizeof(seg), "%.*s", (int)(strlen(param) - strlen(found->suffix)), param);
        param = seg;
    }
    found->fn(hr, param);
}

void ig_generic_error(struct ig_hreq *hr, int status, enum ig_err err, const char *field,
                      const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");

    cJSON_AddNumberToObject(e, "code", status);
    cJSON_AddStringToObject(e, "type", ig_strerror(err));
    cJSON_AddStringToObject(e, "message", msg);
    if (field && field[0])
        cJSON_AddStringToObject(e, "param", field);
    cJSON_AddStringToObject(e, "request_id", hr->request_id);
    ig_http_reply_json(hr, status, root);
}

void ig_health_get(struct ig_hreq *hr, const char *param)
{
    cJSON *root = cJSON_CreateObject();

    cJSON_AddStringToObject(root, "status", "ok");
    cJSON_AddBoolToObject(root, "offline", hr->app->offline);
    ig_http_reply_json(hr, 200, root);
}
