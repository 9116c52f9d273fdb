/* routes.h: the route table's handlers. Each dialect file provides its handlers and its
 * error renderer; router.c maps method + path to them. */
#ifndef IG_HTTP_ROUTES_H
#define IG_HTTP_ROUTES_H

#include "http/server.h"

typedef void ig_route_fn(struct ig_hreq *hr, const char *param);
typedef void ig_error_render_fn(struct ig_hreq *hr, int status, enum ig_err err, const char *field,
                                const char *msg);

/* Find the route for hr->method and hr->path and run it (or answer 404/405). */
void ig_route_dispatch(struct ig_hreq *hr);

/* Generic error shape for routes outside any dialect:
 * {"error":{"code":<status>,"type":"<canonical name>","message":"...","request_id":"..."}} */
ig_error_render_fn ig_generic_error;

/* reAPI (seed 000), src/http/dialects/reapi.c */
ig_route_fn ig_reapi_submit;
ig_route_fn ig_reapi_poll;
ig_error_render_fn ig_reapi_error;

/* Gemini API (seed 003), src/http/dialects/gemini.c */
ig_route_fn ig_gemini_generate;     /* POST /v1beta/models/{model}:generateContent */
ig_route_fn ig_gemini_stream;       /* POST /v1beta/models/{model}:streamGenerateContent */
ig_route_fn ig_gemini_models_list;  /* GET /v1beta/models */
ig_route_fn ig_gemini_models_get;   /* GET /v1beta/models/{model} */
ig_error_render_fn ig_gemini_error;
/* Google's envelope {"error":{code,message,status,details:[RequestInfo]}} as a tree (caller
 * deletes), for errors answered outside a route (evhttp's own 413/400 on /v1beta/ paths). */
struct cJSON *ig_gemini_error_json(const char *request_id, int status, enum ig_err err,
                                   const char *msg);

/* The admin API (admin scope), src/http/admin.c */
ig_route_fn ig_admin_keys; /* GET (list), POST (create) /admin/v1/keys */
ig_route_fn ig_admin_key;  /* /admin/v1/keys/{id}[/revoke|/credit|/limits] */
ig_route_fn ig_admin_usage; /* GET /admin/v1/usage?key_id=&days=&by=model|channel */

/* Stored result images, src/http/media.c */
ig_route_fn ig_media_get;

/* Health, src/http/router.c */
ig_route_fn ig_health_get;

#endif
