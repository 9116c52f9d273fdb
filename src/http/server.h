/* server.h: the HTTP front: libevent evhttp, one event loop per thread, each accepting on a
 * duplicate of one listening socket (no SO_REUSEPORT: a second server on the same port must
 * fail to start, not silently share the traffic).
 *
 * Handlers never block: reads of the store run on the thread's own read connection (WAL
 * readers do not wait for the writer), writes go to the writer thread and the reply is sent
 * from its completion, on the same loop. Every reply carries X-Request-Id; every error is
 * JSON. Limits: header bytes, body bytes, connections per thread, idle timeout. */
#ifndef IG_HTTP_SERVER_H
#define IG_HTTP_SERVER_H

#include "core/app.h"
#include "store/store.h"

struct evhttp_request;
struct cJSON;
struct ig_http_server;
struct ig_http_thread;
struct ig_key_cache;

/* One request being answered. Lifetime: from the route call until a reply is sent. */
struct ig_hreq {
    struct evhttp_request *req;
    struct ig_http_thread *th;
    struct ig_app *app;
    struct ig_store *store;      /* this thread's read connection */
    struct ig_mailbox *mb;       /* this thread's loop */
    struct ig_key_cache *keys;   /* this thread's key cache */
    char request_id[48];
    char path[1024];             /* decoded path, no query */
    int method;                  /* EVHTTP_REQ_* */
    struct event *close_watch;   /* ig_http_on_close: the client socket, while we wait */
    void (*on_close)(void *arg);
    void *on_close_arg;
    bool streaming;              /* ig_http_stream_start was called */
    bool body_nul;               /* ig_http_body has put its NUL after the body */
    /* How errors are shaped on this route (set by the router from the dialect). */
    void (*render_error)(struct ig_hreq *hr, int status, enum ig_err err, const char *field,
                         const char *msg);
};

struct ig_http_server *ig_http_start(struct ig_app *app, struct ig_errbuf *eb);
/* The port actually bound (useful with port 0). */
int ig_http_port(const struct ig_http_server *s);
/* Stop accepting new connections; existing ones are still served. */
void ig_http_stop_accepting(struct ig_http_server *s);
/* Stop the loops (replies under way are sent first) and free everything. */
void ig_http_stop(struct ig_http_server *s);

/* ---- helpers for handlers (run on the request's loop) ---- */

/* Send a JSON reply; takes ownership of json (a cJSON tree), frees the request context. */
void ig_http_reply_json(struct ig_hreq *hr, int status, struct cJSON *json);
/* Send raw bytes with a content type (copied). */
void ig_http_reply_bytes(struct ig_hreq *hr, int status, const char *ctype, const void *p, size_t n);
/* Send an error in the route's dialect shape; status from the error map unless status > 0. */
void ig_http_error(struct ig_hreq *hr, enum ig_err err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ig_http_error_status(struct ig_hreq *hr, int status, enum ig_err err, const char *field,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Add a response header. */
void ig_http_header(struct ig_hreq *hr, const char *name, const char *value);
/* A request header, or NULL. */
const char *ig_http_get_header(struct ig_hreq *hr, const char *name);
/* The request body as one contiguous NUL-terminated block (len set); never NULL. */
const char *ig_http_body(struct ig_hreq *hr, size_t *len);
/* The Bearer token of the Authorization header, or NULL. */
const char *ig_http_bearer(struct ig_hreq *hr, size_t *len);
/* A request that waits (a synchronous dialect): fn(arg) runs on this loop if the client's
 * connection closes before the reply is complete; hr is freed right after fn returns, so fn
 * must forget it. Set once per request. */
void ig_http_on_close(struct ig_hreq *hr, void (*fn)(void *arg), void *arg);
/* A streamed reply (Server-Sent Events): headers now with chunked encoding, then chunks, then
 * the end (which frees hr). ig_http_stream_chunk copies the bytes. */
void ig_http_stream_start(struct ig_hreq *hr, int status, const char *ctype);
void ig_http_stream_chunk(struct ig_hreq *hr, const void *p, size_t n);
void ig_http_stream_end(struct ig_hreq *hr);
/* Free a request context without replying (only after a reply was sent some other way). */
void ig_hreq_free(struct ig_hreq *hr);


/* HTTP status for an error of the vocabulary (one table: errmap.c). */
int ig_http_status_for(enum ig_err err);
const char *ig_http_reason(int status);

#endif
