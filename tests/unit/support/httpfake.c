/* httpfake.c: the in-process loopback HTTP server of support.h. */
#include "base/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "support/support.h"

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "?";
    }
}

static void on_request(struct evhttp_request *ev, void *arg)
{
    struct ig_fake_http *s = arg;
    struct evbuffer *ib = evhttp_request_get_input_buffer(ev);
    size_t n = evbuffer_get_length(ib);
    char *body = ig_xmalloc(n + 1);
    struct ig_fake_req r;

    evbuffer_copyout(ib, body, n);
    body[n] = '\0';
    r.ev = ev;
    r.method = method_name(evhttp_request_get_command(ev));
    r.uri = evhttp_request_get_uri(ev);
    r.body = body;
    r.body_len = n;
    r.index = atomic_fetch_add(&s->requests, 1);
    s->handler(&r, s->arg);
    free(body);
}

static void *server_main(void *arg)
{
    struct ig_fake_http *s = arg;

    event_base_dispatch(s->base);
    return NULL;
}

int ig_fake_http_start(struct ig_fake_http *s, ig_fake_handler *handler, void *arg)
{
    struct evhttp_bound_socket *bound;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    pthread_mutex_init(&s->mu, NULL);
    atomic_store(&s->requests, 0);
    s->handler = handler;
    s->arg = arg;
    s->base = event_base_new();
    s->http = s->base ? evhttp_new(s->base) : NULL;
    if (!s->http)
        return -1;
    evhttp_set_gencb(s->http, on_request, s);
    evhttp_set_timeout(s->http, 60);
    evhttp_set_max_body_size(s->http, 64 * 1024 * 1024);
    bound = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    if (!bound)
        return -1;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len) != 0)
        return -1;
    s->port = ntohs(sin.sin_port);
    return pthread_create(&s->thread, NULL, server_main, s) == 0 ? 0 : -1;
}

void ig_fake_http_stop(struct ig_fake_http *s)
{
    event_base_loopexit(s->base, NULL);
    pthread_join(s->thread, NULL);
    evhttp_free(s->http); /* also reclaims requests the handler never answered */
    event_base_free(s->base);
    pthread_mutex_destroy(&s->mu);
}

int ig_fake_http_requests(struct ig_fake_http *s)
{
    return atomic_load(&s->requests);
}

void ig_fake_http_reset(struct ig_fake_http *s)
{
    atomic_store(&s->requests, 0);
}

void ig_fake_http_lock(struct ig_fake_http *s)
{
    pthread_mutex_lock(&s->mu);
}

void ig_fake_http_unlock(struct ig_fake_http *s)
{
    pthread_mutex_unlock(&s->mu);
}

const char *ig_fake_header(const struct ig_fake_req *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

void ig_fake_header_copy(const struct ig_fake_req *r, const char *name, char *out, size_t n)
{
    const char *v = ig_fake_header(r, name);

    snprintf(out, n, "%s", v ? v : "");
}

void ig_fake_reply_header(struct ig_fake_req *r, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

void ig_fake_reply(struct ig_fake_req *r, int status, const char *ctype, const void *body,
                   size_t len)
{
    struct evbuffer *b = evbuffer_new();

    if (len)
        evbuffer_add(b, body, len);
    if (ctype)
        ig_fake_reply_header(r, "Content-Type", ctype);
    evhttp_send_reply(r->ev, status, NULL, b);
    evbuffer_free(b);
}

void ig_fake_reply_str(struct ig_fake_req *r, int status, const char *ctype, const char *body)
{
    ig_fake_reply(r, status, ctype, body, strlen(body));
}
