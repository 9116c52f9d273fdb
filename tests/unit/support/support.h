/* support.h: helpers shared by the unit tests (compiled into ig_test_support).
 *
 *   - ig_fake_http: an in-process HTTP server on 127.0.0.1 (port 0) running its own event loop
 *     on its own thread; every request goes to a handler callback.
 *   - ig_test_tmpdir / ig_test_rmdir / ig_test_open_store: scratch directories and stores.
 *   - ig_test_run_until: run an event loop until a counter reaches a target. */
#ifndef IG_TEST_SUPPORT_H
#define IG_TEST_SUPPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct event_base;
struct evhttp;
struct evhttp_request;
struct ig_store;

/* ---- the fake HTTP server ---- */

/* One request, as the handler sees it. body is NUL-terminated and owned by the server: it is
 * only valid during the call. */
struct ig_fake_req {
    struct evhttp_request *ev; /* for replies ig_fake_reply cannot make (chunked, ...) */
    const char *method;
    const char *uri;           /* path and query, as sent */
    const char *body;
    size_t body_len;
    int index;                 /* 0-based arrival order since start or the last reset */
};

/* Answers r with ig_fake_reply() (or through r->ev); a handler that sends nothing leaves the
 * request stalled until ig_fake_http_stop(). Runs on the server thread. */
typedef void ig_fake_handler(struct ig_fake_req *r, void *arg);

struct ig_fake_http {
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    int port;                  /* set by ig_fake_http_start */
    atomic_int requests;       /* requests received since start or the last reset */
    pthread_mutex_t mu;        /* for the handler's recordings; the server never takes it */
    ig_fake_handler *handler;
    void *arg;
};

int ig_fake_http_start(struct ig_fake_http *s, ig_fake_handler *handler, void *arg);
void ig_fake_http_stop(struct ig_fake_http *s);
int ig_fake_http_requests(struct ig_fake_http *s);
void ig_fake_http_reset(struct ig_fake_http *s); /* request counter back to 0 */
void ig_fake_http_lock(struct ig_fake_http *s);
void ig_fake_http_unlock(struct ig_fake_http *s);

/* The request's header name (case-insensitive), or NULL. */
const char *ig_fake_header(const struct ig_fake_req *r, const char *name);
/* Copy header name (or "" when absent) into out. */
void ig_fake_header_copy(const struct ig_fake_req *r, const char *name, char *out, size_t n);
/* Add a header to the reply; call before ig_fake_reply. */
void ig_fake_reply_header(struct ig_fake_req *r, const char *name, const char *value);
/* Send the whole reply; ctype may be NULL (no Content-Type), body may be NULL when len is 0. */
void ig_fake_reply(struct ig_fake_req *r, int status, const char *ctype, const void *body,
                   size_t len);
/* Send a NUL-terminated body. */
void ig_fake_reply_str(struct ig_fake_req *r, int status, const char *ctype, const char *body);

/* ---- temporary directories and stores ---- */

/* Make a fresh directory $IG_TEST_TMP/<prefix>.XXXXXX (or under /tmp) into out; fails the
 * test when it cannot. */
void ig_test_tmpdir(char *out, size_t n, const char *prefix);
/* Remove dir and the files directly in it. */
void ig_test_rmdir(const char *dir);
/* Open and migrate the store at dsn; fails the test when it cannot. */
struct ig_store *ig_test_open_store(const char *dsn);

/* ---- event loops ---- */

/* Run base until *count reaches want, or timeout_s seconds pass. */
void ig_test_run_until(struct event_base *base, const int *count, int want, int timeout_s);

#endif
