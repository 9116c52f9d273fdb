/* server.c: HTTP threads, listeners, per-request context, replies, JSON protocol errors. */
#include "base/base.h"
#include "http/routes.h"
#include "http/server.h"
#include "policy/keys.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* the version of a request that never parsed */
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64

struct ig_http_thread {
    struct ig_http_server *srv;
    int index;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct ig_mailbox *mb;
    struct ig_store *store;
    struct ig_key_cache keys;
    int nconns;                 /* open client connections */
    bool accepting;
    uint64_t rid_seq;           /* request ids: random per-thread prefix + sequence */
    unsigned char rid_prefix[6];
    int fd;
};

struct ig_http_server {
    struct ig_app *app;
    int nthreads;
    int port;
    struct ig_http_thread th[MAX_THREADS];
};

/* The limits our evhttp_send_error() below names in its messages (process-wide, set once). */
static int64_t limit_body_bytes, limit_header_bytes;

/* ---- request context ------------------------------------------------------------------ */

/* A request id: a UUIDv7 (time + random bits) for protocol errors outside a thread... */
static void new_request_id(char *out, size_t n)
{
    struct ig_id id;
    char uuid[IG_ID_UUID_LEN + 1];

    ig_id_new(&id);
    ig_id_uuid(&id, uuid);
    snprintf(out, n, "req_%s", uuid);
}

/* ...and on a thread, the same shape without a CSPRNG call per request: the time, a random
 * per-thread prefix and a sequence number. Unique, not secret. */
static void thread_request_id(struct ig_http_thread *th, char *out, size_t n)
{
    struct ig_id id;
    uint64_t ms = (uint64_t)ig_now_ms(), seq = ++th->rid_seq;
    char uuid[IG_ID_UUID_LEN + 1];

    for (int i = 0; i < 6; i++)
        id.b[i] = (unsigned char)(ms >> (40 - 8 * i));
    id.b[6] = (unsigned char)(0x70 | (th->index & 0x0f));
    id.b[7] = th->rid_prefix[0];
    id.b[8] = (unsigned char)(0x80 | (th->rid_prefix[1] & 0x3f));
    id.b[9] = th->rid_prefix[2];
    for (int i = 0; i < 6; i++)
        id.b[10 + i] = (unsigned char)(seq >> (40 - 8 * i));
    ig_id_uuid(&id, uuid);
    snprintf(out, n, "req_%s", uuid);
}

static void add_common_headers(struct evhttp_request *req, const char *request_id);

void ig_hreq_free(struct ig_hreq *hr)
{
    if (hr->close_watch)
        event_free(hr->close_watch);
    free(hr);
}

/* ---- waiting requests: noticing a client that went away ----------------------------------
 * evhttp 2.1 stops reading a connection while its request is being answered, so it cannot see
 * the client close it (libevent issues #78, #666); re-enabling its read callback is unsafe (a
 * pipelined byte in that state aborts the process). Instead a separate read event watches the
 * socket and peeks: end of file (or an error) means the client is gone; a byte of a pipelined
 * request just ends the watching. */

static void on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    struct ig_hreq *hr = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(hr->req);
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
        if (n > 0)
            event_del(hr->close_watch);
        return;
    }
    /* Gone: tell the waiter, then drop the connection and its request without a reply. A
     * streamed reply is ended instead: evhttp then fails the write and frees both (freeing
     * the connection under a started reply leaked the request). */
    hr->on_close(hr->on_close_arg);
    if (hr->streaming) {
        struct evhttp_request *req = hr->req;

        ig_hreq_free(hr);
        evhttp_send_reply_end(req);
        return;
    }
    ig_hreq_free(hr);
    if (evcon)
        evhttp_connection_free(evcon);
}

void ig_http_on_close(struct ig_hreq *hr, void (*fn)(void *arg), void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(hr->req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

    if (fd < 0 || hr->close_watch)
        return;
    hr->on_close = fn;
    hr->on_close_arg = arg;
    hr->close_watch = event_new(hr->th->base, fd, EV_READ | EV_PERSIST, on_client_readable, hr);
    if (!hr->close_watch || event_add(hr->close_watch, NULL) != 0)
        IG_BUG("http: cannot watch a waiting request's connection");
}

/* ---- streamed replies (Server-Sent Events) ------------------------------------------------- */

void ig_http_stream_start(struct ig_hreq *hr, int status, const char *ctype)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(hr->req);

    add_common_headers(hr->req, hr->request_id);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-cache");
    hr->streaming = true;
    evhttp_send_reply_start(hr->req, status, ig_http_reason(status));
}

void ig_http_stream_chunk(struct ig_hreq *hr, const void *p, size_t n)
{
    struct evbuffer *buf = evbuffer_new();

    if (!buf)
        IG_BUG("out of memory streaming a reply");
    evbuffer_add(buf, p, n);
    evhttp_send_reply_chunk(hr->req, buf);
    evbuffer_free(buf);
}

void ig_http_stream_end(struct ig_hreq *hr)
{
    evhttp_send_reply_end(hr->req);
    ig_hreq_free(hr);
}

static void add_common_headers(struct evhttp_request *req, const char *request_id)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "X-Request-Id", request_id);
    evhttp_add_header(h, "Server", "imagegate");
}

void ig_http_header(struct ig_hreq *hr, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(hr->req), name, value);
}

const char *ig_http_get_header(struct ig_hreq *hr, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(hr->req), name);
}

const char *ig_http_body(struct ig_hreq *hr, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(hr->req);
    size_t n = evbuffer_get_length(in);
    unsigned char *p;

    if (!hr->body_nul) { /* NUL-terminate in place, once (a route may run again: parked) */
        evbuffer_add(in, "", 1);
        hr->body_nul = true;
    } else {
        n--;
    }
    p = evbuffer_pullup(in, -1);
    *len = n;
    return (const char *)p;
}

const char *ig_http_bearer(struct ig_hreq *hr, size_t *len)
{
    const char *a = ig_http_get_header(hr, "Authorization");

    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    *len = strlen(a);
    while (*len && a[*len - 1] == ' ')
        (*len)--;
    return *len ? a : NULL;
}

static void send_buffer(struct ig_hreq *hr, int status, const char *ctype, struct evbuffer *buf)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(hr->req);

    add_common_headers(hr->req, hr->request_id);
    if (ctype)
        evhttp_add_header(h, "Content-Type", ctype);
    evhttp_send_reply(hr->req, status, ig_http_reason(status), buf);
    ig_hreq_free(hr);
}

static void free_cjson_string(const void *data, size_t len, void *arg)
{
    cJSON_free((void *)data);
}

void ig_http_reply_json(struct ig_hreq *hr, int status, cJSON *json)
{
    char *s = cJSON_PrintUnformatted(json);
    struct evbuffer *buf = evbuffer_new();

    cJSON_Delete(json);
    if (!s || !buf)
        IG_BUG("out of memory rendering a reply");
    evbuffer_add_reference(buf, s, strlen(s), free_cjson_string, NULL);
    send_buffer(hr, status, "application/json", buf);
    evbuffer_free(buf);
}

void ig_http_reply_bytes(struct ig_hreq *hr, int status, const char *ctype, const void *p, size_t n)
{
    struct evbuffer *buf = evbuffer_new();

    evbuffer_add(buf, p, n);
    send_buffer(hr, status, ctype, buf);
    evbuffer_free(buf);
}

static void verror(struct ig_hreq *hr, int status, enum ig_err err, const char *field,
                   const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (status <= 0)
        status = ig_http_status_for(err);
    (hr->render_error ? hr->render_error : ig_generic_error)(hr, status, err, field, msg);
}

void ig_http_error(struct ig_hreq *hr, enum ig_err err, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verror(hr, 0, err, field, fmt, ap);
    va_end(ap);
}

void ig_http_error_status(struct ig_hreq *hr, int status, enum ig_err err, const char *field,
                          const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verror(hr, status, err, field, fmt, ap);
    va_end(ap);
}

/* ---- libevent's own error replies ----------------------------------------------------------
 * libevent 2.1 has no error callback (evhttp_set_errorcb arrived in 2.2): when it refuses a
 * request itself (body over max-body-bytes, headers over max-header-bytes, a malformed
 * request line) it calls evhttp_send_error(), which answers in HTML. Its internal calls go
 * through the PLT, so this definition in the executable (linked with -rdynamic) takes their
 * place, and every reply of the server is JSON. */
void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
    char rid[48], msg[256];
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char *s;

    switch (error) {
    case 413:
        snprintf(msg, sizeof(msg),
                 "request too large: the body may be at most %lld bytes and the request line "
                 "with headers at most %lld bytes",
                 (long long)limit_body_bytes, (long long)limit_header_bytes);
        break;
    case 400:
        snprintf(msg, sizeof(msg),
                 "malformed HTTP request, or a request line with headers over %lld bytes",
                 (long long)limit_header_bytes);
        break;
    case 405:
        snprintf(msg, sizeof(msg), "method not allowed");
        break;
    case 417:
        snprintf(msg, sizeof(msg), "unsupported Expect header");
        break;
    default:
        snprintf(msg, sizeof(msg), "%s", reason ? reason : ig_http_reason(error));
    }
    new_request_id(rid, sizeof(rid));
    {
        /* The dialect's own error shape where the path names one (Google's for /v1beta/). */
        const char *uri = evhttp_request_get_uri(req);

        if (uri && strncmp(uri, "/v1beta/", 8) == 0) {
            cJSON_Delete(root);
            root = ig_gemini_error_json(rid, error, error == 413 ? IG_E_TOOBIG : IG_E_INVALID,
                                        msg);
        } else {
            cJSON_AddNumberToObject(e, "code", error);
            cJSON_AddStringToObject(e, "type", error == 413 ? "too_large" : "invalid_request");
            cJSON_AddStringToObject(e, "message", msg);
            cJSON_AddStringToObject(e, "request_id", rid);
        }
    }
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    evbuffer_add(buf, s, strlen(s));
    cJSON_free(s);
    /* A request line that never parsed leaves the version at 0.0: answer as HTTP/1.1. */
    if (req->major == 0) {
        req->major = 1;
        req->minor = 1;
    }
    evhttp_clear_headers(h);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Connection", "close");
    add_common_headers(req, rid);
    evhttp_send_reply(req, error, reason ? reason : ig_http_reason(error), buf);
    evbuffer_free(buf);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void on_request(struct evhttp_request *req, void *arg)
{
    struct ig_http_thread *th = arg;
    struct ig_hreq *hr = ig_xcalloc(1, sizeof(*hr));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *rawpath = uri ? evhttp_uri_get_path(uri) : NULL;
    char *decoded;
    size_t dlen = 0;

    hr->req = req;
    hr->th = th;
    hr->app = th->srv->app;
    hr->store = th->store;
    hr->mb = th->mb;
    hr->keys = &th->keys;
    hr->method = (int)evhttp_request_get_command(req);
    hr->render_error = ig_generic_error;
    thread_request_id(th, hr->request_id, sizeof(hr->request_id));
    if (!rawpath || !rawpath[0])
        rawpath = "/";
    decoded = evhttp_uridecode(rawpath, 0, &dlen);
    if (!decoded || dlen >= sizeof(hr->path) || strlen(decoded) != dlen) {
        /* NUL bytes or oversize paths never reach a route. */
        free(decoded);
        ig_http_error(hr, IG_E_INVALID, "path", "the request path is malformed or too long");
        return;
    }
    snprintf(hr->path, sizeof(hr->path), "%s", decoded);
    free(decoded);
    ig_route_dispatch(hr);
}

/* ---- connections: counted so a thread holds at most max-connections ------------------------
 * evhttp 2.1 has no connection limit and no close notification. New connections are counted
 * where evhttp asks for their bufferevent (evhttp_set_bevcb); closed ones where evhttp frees
 * them: like evhttp_send_error above, evhttp_connection_free is reached through the PLT, so
 * the definition below sees every free and hands over to libevent's. At the limit a thread
 * stops accepting (the kernel backlog holds the rest) until a connection closes. */

static struct ig_http_server *servers[4]; /* running servers (tests may run several) */
static pthread_mutex_t servers_mu = PTHREAD_MUTEX_INITIALIZER;

static void update_accepting(struct ig_http_thread *th)
{
    struct evconnlistener *l = th->bound ? evhttp_bound_socket_get_listener(th->bound) : NULL;
    bool want = th->nconns < th->srv->app->cfg.max_connections;

    if (!l || want == th->accepting)
        return;
    th->accepting = want;
    if (want) {
        evconnlistener_enable(l);
    } else {
        evconnlistener_disable(l);
        ig_warn("http: thread %d has %d connections (max-connections): not accepting until one "
                "closes", th->index, th->nconns);
    }
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    struct ig_http_thread *th = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

    if (bev) {
        th->nconns++;
        update_accepting(th);
    }
    return bev;
}

/* The thread whose evhttp owns an incoming connection (runs on that thread). */
static struct ig_http_thread *thread_of(struct evhttp_connection *evcon)
{
    struct evhttp *http = evhttp_connection_get_server(evcon);
    struct ig_http_thread *found = NULL;

    if (!http)
        return NULL; /* an outgoing connection */
    pthread_mutex_lock(&servers_mu);
    for (size_t i = 0; i < IG_ARRAY_LEN(servers) && !found; i++)
        for (int k = 0; servers[i] && k < servers[i]->nthreads; k++)
            if (servers[i]->th[k].http == http)
                found = &servers[i]->th[k];
    pthread_mutex_unlock(&servers_mu);
    return found;
}

void evhttp_connection_free(struct evhttp_connection *evcon)
{
    static void (*real_free)(struct evhttp_connection *);
    struct ig_http_thread *th = thread_of(evcon);

    if (!real_free) {
        *(void **)&real_free = dlsym(RTLD_NEXT, "evhttp_connection_free");
        if (!real_free)
            IG_BUG("dlsym(evhttp_connection_free) failed");
    }
    real_free(evcon);
    if (th) {
        th->nconns--;
        update_accepting(th);
    }
}

static void register_server(struct ig_http_server *s, bool add)
{
    pthread_mutex_lock(&servers_mu);
    for (size_t i = 0; i < IG_ARRAY_LEN(servers); i++)
        if (add ? servers[i] == NULL : servers[i] == s) {
            servers[i] = add ? s : NULL;
            break;
        }
    pthread_mutex_unlock(&servers_mu);
}

/* ---- threads ------------------------------------------------------------------------------ */

static int listen_socket(const char *host, int port, struct ig_errbuf *eb)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char portstr[16];
    int fd = -1, one = 1, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai);
    if (rc) {
        ig_fail(eb, IG_E_INVALID, "listen", "cannot resolve listen host '%s': %s", host,
                gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* TCP_NODELAY, which accepted sockets inherit on Linux: a reply larger than one segment
     * must not have its tail held by Nagle until the client's delayed ACK (40 ms) — measured
     * on a 390 KB Gemini reply: 44 ms instead of 4 (bench/RESULTS.md). evhttp writes each
     * reply in one go, so nothing is lost by sending at once. */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
        ig_fail(eb, IG_E_IO, "listen", "cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len))
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void *thread_main(void *arg)
{
    struct ig_http_thread *th = arg;

    event_base_dispatch(th->base);
    return NULL;
}

/* Each thread accepts on its own duplicate of the one listening socket. */
static enum ig_err thread_init(struct ig_http_thread *th, int listen_fd, struct ig_errbuf *eb)
{
    struct ig_config *cfg = &th->srv->app->cfg;
    enum ig_err err;

    th->fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 0);
    if (th->fd < 0)
        return ig_fail(eb, IG_E_IO, "listen", "dup of the listening socket failed: %s",
                       strerror(errno));
    {
        /* evhttp turns reading and writing on and off around every request; the changelist
         * folds those into one epoll_ctl per fd and loop turn. Each base holds one dup of the
         * listening socket and nothing else duplicated, which the changelist requires. */
        struct event_config *ec = event_config_new();

        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        th->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    th->http = evhttp_new(th->base);
    if (!th->base || !th->http)
        IG_BUG("libevent allocation failed");
    th->mb = ig_mailbox_new(th->base);
    ig_random_bytes(th->rid_prefix, sizeof(th->rid_prefix));
    err = ig_store_open(&th->store, th->srv->app->db_path, eb);
    if (err)
        return err;
    evhttp_set_max_headers_size(th->http, (ev_ssize_t)cfg->max_header_bytes);
    evhttp_set_max_body_size(th->http, (ev_ssize_t)cfg->max_body_bytes);
    evhttp_set_timeout(th->http, cfg->conn_timeout_s);
    evhttp_set_allowed_methods(th->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(th->http, "application/json");
    evhttp_set_gencb(th->http, on_request, th);
    evhttp_set_bevcb(th->http, make_bev, th);
    th->bound = evhttp_accept_socket_with_handle(th->http, th->fd);
    if (!th->bound)
        return ig_fail(eb, IG_E_IO, "listen", "evhttp could not accept on the socket");
    th->accepting = true;
    return IG_OK;
}

struct ig_http_server *ig_http_start(struct ig_app *app, struct ig_errbuf *eb)
{
    struct ig_http_server *s = ig_xcalloc(1, sizeof(*s));
    char host[128];
    const char *colon = strrchr(app->cfg.listen, ':');
    int port;
    char *end;
    int lfd;

    if (!colon || colon == app->cfg.listen) {
        ig_fail(eb, IG_E_INVALID, "listen", "listen must be HOST:PORT, got '%s'", app->cfg.listen);
        free(s);
        return NULL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - app->cfg.listen), app->cfg.listen);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    port = (int)strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        ig_fail(eb, IG_E_INVALID, "listen", "bad port in '%s'", app->cfg.listen);
        free(s);
        return NULL;
    }
    limit_body_bytes = app->cfg.max_body_bytes;
    limit_header_bytes = app->cfg.max_header_bytes;
    s->app = app;
    s->nthreads = app->cfg.http_threads > 0 ? app->cfg.http_threads
                                            : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->nthreads < 1)
        s->nthreads = 1;
    if (s->nthreads > MAX_THREADS)
        s->nthreads = MAX_THREADS;
    lfd = listen_socket(host, port, eb);
    if (lfd < 0) {
        free(s);
        return NULL;
    }
    s->port = bound_port(lfd);
    for (int i = 0; i < s->nthreads; i++) {
        struct ig_http_thread *th = &s->th[i];

        th->srv = s;
        th->index = i;
        th->fd = -1;
        if (thread_init(th, lfd, eb)) {
            close(lfd);
            s->nthreads = i + 1;
            ig_http_stop(s);
            return NULL;
        }
    }
    close(lfd);
    register_server(s, true);
    for (int i = 0; i < s->nthreads; i++)
        if (pthread_create(&s->th[i].thread, NULL, thread_main, &s->th[i]) != 0)
            IG_BUG("pthread_create failed");
    return s;
}

int ig_http_port(const struct ig_http_server *s)
{
    return s->port;
}

static void stop_accepting_cb(void *arg)
{
    struct ig_http_thread *th = arg;

    if (th->bound) {
        evhttp_del_accept_socket(th->http, th->bound);
        th->bound = NULL;
        th->fd = -1; /* closed by the listener */
    }
}

void ig_http_stop_accepting(struct ig_http_server *s)
{
    for (int i = 0; i < s->nthreads; i++)
        if (s->th[i].mb)
            ig_mailbox_post(s->th[i].mb, stop_accepting_cb, &s->th[i]);
}

static void exit_cb(void *arg)
{
    struct ig_http_thread *th = arg;

    stop_accepting_cb(th);
    event_base_loopexit(th->base, NULL);
}

void ig_http_stop(struct ig_http_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nthreads; i++) {
        struct ig_http_thread *th = &s->th[i];

        if (th->thread) {
            ig_mailbox_post(th->mb, exit_cb, th);
            pthread_join(th->thread, NULL);
        }
    }
    register_server(s, false);
    /* CPU work the HTTP threads handed out posts its completion to their mailboxes: finish it
     * now, while they exist (ig_mailbox_free below runs what it posted). */
    ig_pool_free(s->app->pool);
    s->app->pool = NULL;
    for (int i = 0; i < s->nthreads; i++) {
        struct ig_http_thread *th = &s->th[i];

        ig_mailbox_free(th->mb); /* runs completions still queued: their replies go out first */
        if (th->http)
            evhttp_free(th->http);
        if (th->store)
            ig_store_close(th->store);
        if (th->base)
            event_base_free(th->base);
        if (th->fd >= 0 && !th->bound)
            close(th->fd);
    }
    free(s);
}
