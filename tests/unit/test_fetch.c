/* test_fetch.c: real transfers through ig_transport + ig_fetch, to loopback only.
 *
 * An evhttp server on 127.0.0.1 (port 0) runs on its own thread and event_base and counts the
 * requests it gets; the transport runs on the test thread's event_base. No test contacts an
 * address outside 127.0.0.0/8. */
#include "base/base.h"

#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "net/fetch.h"
#include "net/transport.h"
#include "support/support.h"

/* ---- the loopback server ---- */

static struct ig_fake_http srv;   /* the reference server */
static struct ig_fake_http proxy; /* a would-be proxy: nothing may ever reach it */

static void reply_bytes(struct ig_fake_req *r, int code, size_t n, const char *ctype)
{
    char *data = ig_xmalloc(n ? n : 1);

    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    ig_fake_reply(r, code, ctype, data, n);
    free(data);
}

static void reply_redirect(struct ig_fake_req *r, const char *location)
{
    char *body = ig_xasprintf("moved to %s\n", location);

    ig_fake_reply_header(r, "Location", location);
    ig_fake_reply_str(r, 302, NULL, body);
    free(body);
}

static void reply_chunked(struct evhttp_request *req, size_t total, size_t chunk)
{
    struct evbuffer *b = evbuffer_new();
    char *data = ig_xmalloc(chunk);

    memset(data, 'z', chunk);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/octet-stream");
    evhttp_send_reply_start(req, 200, "OK");
    for (size_t sent = 0; sent < total; sent += chunk) {
        evbuffer_add(b, data, chunk);
        evhttp_send_reply_chunk(req, b);
    }
    evhttp_send_reply_end(req);
    free(data);
    evbuffer_free(b);
}

static void handle(struct ig_fake_req *r, void *arg)
{
    struct evhttp_request *req = r->ev;
    struct evhttp_uri *u = evhttp_uri_parse(r->uri);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    const char *query = u ? evhttp_uri_get_query(u) : NULL;

    if (!path)
        path = "";
    if (strcmp(path, "/ok") == 0) {
        reply_bytes(r, 200, 1024, "image/png");
    } else if (strcmp(path, "/big") == 0) {
        reply_bytes(r, 200, 64 * 1024, "image/png");
    } else if (strcmp(path, "/chunked") == 0) {
        reply_chunked(req, 64 * 1024, 4096);
    } else if (strcmp(path, "/liar") == 0) {
        /* Announces 100000 bytes, sends 500: only an early refusal makes this too big. */
        struct evbuffer *b = evbuffer_new();
        char data[500];

        memset(data, 'l', sizeof(data));
        evbuffer_add(b, data, sizeof(data));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", "100000");
        evhttp_send_reply_start(req, 200, "OK");
        evhttp_send_reply_chunk(req, b);
        evhttp_send_reply_end(req);
        evbuffer_free(b);
    } else if (strcmp(path, "/missing") == 0) {
        reply_bytes(r, 404, 64, "text/plain");
    } else if (strcmp(path, "/ua") == 0) {
        const char *ua = ig_fake_header(r, "User-Agent");

        ig_fake_reply_str(r, 200, NULL, ua ? ua : "");
    } else if (strcmp(path, "/redirect") == 0) {
        long n = query && strncmp(query, "n=", 2) == 0 ? strtol(query + 2, NULL, 10) : 0;
        char loc[64];

        if (n <= 0) {
            reply_bytes(r, 200, 1024, "image/png");
        } else {
            snprintf(loc, sizeof(loc), "/redirect?n=%ld", n - 1);
            reply_redirect(r, loc);
        }
    } else if (strcmp(path, "/redirect-file") == 0) {
        reply_redirect(r, "file:///etc/passwd");
    } else if (strcmp(path, "/stall") == 0) {
        /* Never answer: evhttp_free() reclaims the request at the end. */
    } else {
        reply_bytes(r, 404, 0, NULL);
    }
    if (u)
        evhttp_uri_free(u);
}

/* ---- the client side ---- */

struct fx {
    struct event_base *base;
    struct ig_transport *tp;
};

struct outcome {
    int calls;
    enum ig_err err;
    char msg[256];
    long status;
    size_t len;
    char ctype[128];
    char body[64];
};

static int completed; /* fetch callbacks run so far, across outcomes */

static void on_fetch(struct ig_fetch_result *r, void *arg)
{
    struct outcome *o = arg;

    o->calls++;
    completed++;
    o->err = r->err;
    snprintf(o->msg, sizeof(o->msg), "%s", r->errmsg);
    o->status = r->status;
    o->len = r->body.len;
    snprintf(o->ctype, sizeof(o->ctype), "%s", r->content_type);
    if (r->body.data)
        snprintf(o->body, sizeof(o->body), "%s", r->body.data);
    ig_buf_release(&r->body);
}

typedef bool cond_fn(void *arg);

struct waiter {
    struct event_base *base;
    cond_fn *cond;
    void *arg;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;

    if (w->cond(w->arg))
        event_base_loopbreak(w->base);
}

/* Run the loop until cond holds (checked every 5 ms) or timeout_ms passes. */
static bool run_until(struct event_base *base, cond_fn *cond, void *arg, int timeout_ms)
{
    struct waiter w = {base, cond, arg};
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, &w);
    struct timeval tv = {0, 5000};
    int64_t deadline = ig_mono_ms() + timeout_ms;

    event_add(tick, &tv);
    while (!cond(arg) && ig_mono_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return cond(arg);
}

static bool outcome_done(void *arg)
{
    return ((struct outcome *)arg)->calls > 0;
}

static void url_for(struct ig_fake_http *s, const char *path, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%d%s", s->port, path);
}

static void loopback_opts(struct ig_fetch_opts *o)
{
    ig_fetch_opts_default(o);
    o->allow_loopback = true;
    o->total_timeout_ms = 10000;
}

static void fetch_url(struct fx *fx, const char *url, const struct ig_fetch_opts *o,
                      struct outcome *out)
{
    memset(out, 0, sizeof(*out));
    assert_int_equal(ig_fetch_start(fx->tp, url, o, on_fetch, out), IG_OK);
    assert_true(run_until(fx->base, outcome_done, out, 15000));
    assert_int_equal(out->calls, 1);
    assert_int_equal(ig_transport_active(fx->tp), 0);
}

static void fetch_path(struct fx *fx, const char *path, const struct ig_fetch_opts *o,
                       struct outcome *out)
{
    char url[256];

    url_for(&srv, path, url, sizeof(url));
    fetch_url(fx, url, o, out);
}

static int setup(void **state)
{
    struct fx *fx = ig_xcalloc(1, sizeof(*fx));

    fx->base = event_base_new();
    fx->tp = ig_transport_new(fx->base);
    ig_fake_http_reset(&srv);
    ig_fake_http_reset(&proxy);
    completed = 0;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    ig_transport_free(fx->tp);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* ---- fetch tests ---- */

static void test_fetch__opts_default(void **state)
{
    struct ig_fetch_opts o;

    memset(&o, 0xa5, sizeof(o));
    ig_fetch_opts_default(&o);
    assert_int_equal(o.max_bytes, 7 * 1024 * 1024);
    assert_int_equal(o.connect_timeout_ms, 5000);
    assert_int_equal(o.total_timeout_ms, 30000);
    assert_int_equal(o.max_redirects, 3);
    assert_false(o.allow_loopback);
}

static void test_fetch__loopback_allowed_ok(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    fetch_path(*state, "/ok", &o, &out);
    assert_int_equal(out.err, IG_OK);
    assert_int_equal(out.status, 200);
    assert_int_equal(out.len, 1024);
    assert_string_equal(out.ctype, "image/png");
    assert_string_equal(out.msg, "");
    assert_int_equal(ig_fake_http_requests(&srv), 1);
}

static void test_fetch__user_agent(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    fetch_path(*state, "/ua", &o, &out);
    assert_int_equal(out.err, IG_OK);
    assert_string_equal(out.body, "imagegate/0.1");
}

static void test_fetch__loopback_blocked_by_default(void **state)
{
    static const char *const hosts[] = {"127.0.0.1", "2130706433", "0x7f.1", "[::1]",
                                        "[::ffff:127.0.0.1]"};
    struct ig_fetch_opts o;
    struct outcome out;
    char url[256];

    ig_fetch_opts_default(&o);
    for (size_t i = 0; i < IG_ARRAY_LEN(hosts); i++) {
        snprintf(url, sizeof(url), "http://%s:%d/ok?secret=token", hosts[i], srv.port);
        fetch_url(*state, url, &o, &out);
        assert_int_equal(out.err, IG_E_BLOCKED);
        assert_non_null(strstr(out.msg, "loopback"));
        assert_null(strstr(out.msg, "secret"));
        assert_null(strstr(out.msg, "/ok"));
        assert_int_equal(out.len, 0);
    }
    assert_string_equal(out.msg, "address ::ffff:127.0.0.1 is loopback");
    assert_int_equal(ig_fake_http_requests(&srv), 0);
}

static void test_fetch__too_big_content_length(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    o.max_bytes = 1000;
    fetch_path(*state, "/big", &o, &out);
    assert_int_equal(out.err, IG_E_TOOBIG);
    assert_string_equal(out.msg, "reference exceeds 1000 bytes");
    assert_int_equal(out.len, 0);
}

static void test_fetch__too_big_announced_early(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;
    int64_t t0 = ig_mono_ms();

    loopback_opts(&o);
    o.max_bytes = 1000;
    o.total_timeout_ms = 3000;
    fetch_path(*state, "/liar", &o, &out);
    assert_int_equal(out.err, IG_E_TOOBIG);
    assert_true(ig_mono_ms() - t0 < 2000);
}

static void test_fetch__too_big_chunked(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    o.max_bytes = 1000;
    fetch_path(*state, "/chunked", &o, &out);
    assert_int_equal(out.err, IG_E_TOOBIG);
    assert_string_equal(out.msg, "reference exceeds 1000 bytes");
    assert_int_equal(out.len, 0);

    o.max_bytes = 64 * 1024; /* exactly the body: fits */
    fetch_path(*state, "/chunked", &o, &out);
    assert_int_equal(out.err, IG_OK);
    assert_int_equal(out.len, 64 * 1024);
}

static void test_fetch__cap_boundary(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    o.max_bytes = 1024;
    fetch_path(*state, "/ok", &o, &out);
    assert_int_equal(out.err, IG_OK);
    assert_int_equal(out.len, 1024);
    o.max_bytes = 1023;
    fetch_path(*state, "/ok", &o, &out);
    assert_int_equal(out.err, IG_E_TOOBIG);
}

static void test_fetch__http_404(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    fetch_path(*state, "/missing", &o, &out);
    assert_int_equal(out.err, IG_E_REFERENCE);
    assert_int_equal(out.status, 404);
    assert_non_null(strstr(out.msg, "404"));
    assert_null(strstr(out.msg, "abc")); /* the body starts "abcdef..." */
    assert_int_equal(out.len, 0);
}

static void test_fetch__stall_times_out(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;
    int64_t t0 = ig_mono_ms();

    loopback_opts(&o);
    o.total_timeout_ms = 300;
    fetch_path(*state, "/stall", &o, &out);
    assert_int_equal(out.err, IG_E_REFERENCE);
    assert_string_equal(out.msg, "reference timed out after 300 ms");
    assert_true(ig_mono_ms() - t0 < 2000);
}

static void test_fetch__connection_refused(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    char url[128];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* Take a free port, then close it: nothing listens there. */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);

    loopback_opts(&o);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", ntohs(sin.sin_port));
    fetch_url(*state, url, &o, &out);
    assert_int_equal(out.err, IG_E_REFERENCE);
    assert_non_null(strstr(out.msg, "could not connect"));
}

static void test_fetch__redirect_not_followed(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    o.max_redirects = 0;
    fetch_path(*state, "/redirect?n=1", &o, &out);
    assert_int_equal(out.err, IG_E_REFERENCE);
    assert_int_equal(out.status, 302);
    assert_string_equal(out.msg, "reference redirected (redirects are not followed)");
    assert_int_equal(out.len, 0);
    assert_int_equal(ig_fake_http_requests(&srv), 1);
}

static void test_fetch__redirect_followed(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    fetch_path(*state, "/redirect?n=2", &o, &out);
    assert_int_equal(out.err, IG_OK);
    assert_int_equal(out.status, 200);
    assert_int_equal(out.len, 1024); /* the redirect bodies are not part of it */
    assert_int_equal(ig_fake_http_requests(&srv), 3);
}

static void test_fetch__redirect_chain_too_long(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    fetch_path(*state, "/redirect?n=10", &o, &out);
    assert_int_equal(out.err, IG_E_REFERENCE);
    assert_non_null(strstr(out.msg, "more than 3"));
    assert_int_equal(ig_fake_http_requests(&srv), 4);
}

static void test_fetch__redirect_to_file_refused(void **state)
{
    struct ig_fetch_opts o;
    struct outcome out;

    loopback_opts(&o);
    fetch_path(*state, "/redirect-file", &o, &out);
    assert_int_equal(out.err, IG_E_REFERENCE);
    assert_int_equal(out.len, 0);
    assert_null(strstr(out.msg, "root:"));
}

static void set_proxy_env(const char *value)
{
    static const char *const names[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                        "all_proxy", "ALL_PROXY"};

    for (size_t i = 0; i < IG_ARRAY_LEN(names); i++) {
        if (value)
            setenv(names[i], value, 1);
        else
            unsetenv(names[i]);
    }
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
}

static void on_raw_done(CURL *easy, CURLcode rc, void *arg)
{
    struct outcome *o = arg;

    o->calls++;
    o->err = rc == CURLE_OK ? IG_OK : IG_E_REFERENCE;
    curl_easy_cleanup(easy);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

static void test_fetch__proxy_env_ignored(void **state)
{
    struct fx *fx = *state;
    struct ig_fetch_opts o;
    struct outcome out;
    char proxy_url[64], url[128];
    CURL *easy;

    snprintf(proxy_url, sizeof(proxy_url), "http://127.0.0.1:%d", proxy.port);
    set_proxy_env(proxy_url);

    /* Control: a plain handle does obey the environment and reaches the proxy. */
    url_for(&srv, "/ok", url, sizeof(url));
    easy = curl_easy_init();
    assert_non_null(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
    memset(&out, 0, sizeof(out));
    assert_int_equal(ig_transport_add(fx->tp, easy, on_raw_done, &out), IG_OK);
    assert_true(run_until(fx->base, outcome_done, &out, 10000));
    assert_int_equal(ig_fake_http_requests(&proxy), 1);
    ig_fake_http_reset(&proxy);
    ig_fake_http_reset(&srv);

    loopback_opts(&o);
    fetch_path(fx, "/ok", &o, &out);
    set_proxy_env(NULL);
    assert_int_equal(out.err, IG_OK);
    assert_int_equal(out.len, 1024);
    assert_int_equal(ig_fake_http_requests(&srv), 1);
    assert_int_equal(ig_fake_http_requests(&proxy), 0);
}

#define CONCURRENT 200

static bool all_completed(void *arg)
{
    return completed >= *(int *)arg;
}

static void test_fetch__concurrent(void **state)
{
    struct fx *fx = *state;
    struct ig_fetch_opts o;
    struct outcome *outs = ig_xcalloc(CONCURRENT, sizeof(*outs));
    int want = CONCURRENT;
    char url[128];

    loopback_opts(&o);
    url_for(&srv, "/ok", url, sizeof(url));
    for (int i = 0; i < CONCURRENT; i++)
        assert_int_equal(ig_fetch_start(fx->tp, url, &o, on_fetch, &outs[i]), IG_OK);
    assert_int_equal(ig_transport_active(fx->tp), CONCURRENT);
    assert_true(run_until(fx->base, all_completed, &want, 30000));
    for (int i = 0; i < CONCURRENT; i++) {
        assert_int_equal(outs[i].calls, 1);
        assert_int_equal(outs[i].err, IG_OK);
        assert_int_equal(outs[i].len, 1024);
    }
    assert_int_equal(ig_transport_active(fx->tp), 0);
    assert_int_equal(ig_fake_http_requests(&srv), CONCURRENT);
    free(outs);
}

static void test_fetch__start_rejects_bad_url(void **state)
{
    struct fx *fx = *state;
    struct ig_fetch_opts o;
    struct outcome out;

    memset(&out, 0, sizeof(out));
    loopback_opts(&o);
    assert_int_equal(ig_fetch_start(fx->tp, "file:///etc/passwd", &o, on_fetch, &out),
                     IG_E_INVALID);
    assert_int_equal(ig_fetch_start(fx->tp, "http://u:p@127.0.0.1/", &o, on_fetch, &out),
                     IG_E_INVALID);
    assert_int_equal(ig_transport_active(fx->tp), 0);
    event_base_loop(fx->base, EVLOOP_NONBLOCK);
    assert_int_equal(out.calls, 0);
}

/* ---- transport tests ---- */

struct raw {
    int calls;
    CURLcode rc;
};

static void on_raw(CURL *easy, CURLcode rc, void *arg)
{
    struct raw *r = arg;

    r->calls++;
    r->rc = rc;
    curl_easy_cleanup(easy);
}

static bool raw_done(void *arg)
{
    return ((struct raw *)arg)->calls > 0;
}

static bool srv_has_request(void *arg)
{
    return ig_fake_http_requests(&srv) > 0;
}

static bool never(void *arg)
{
    return false;
}

static CURL *stall_handle(void)
{
    CURL *easy = curl_easy_init();
    char url[128];

    url_for(&srv, "/stall", url, sizeof(url));
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 20000L);
    return easy;
}

static void test_fetch__transport_cancel_runs_done_once(void **state)
{
    struct fx *fx = *state;
    struct raw r = {0, CURLE_OK};
    CURL *easy = stall_handle();

    assert_int_equal(ig_transport_add(fx->tp, easy, on_raw, &r), IG_OK);
    assert_int_equal(ig_transport_active(fx->tp), 1);
    assert_true(run_until(fx->base, srv_has_request, NULL, 10000));

    ig_transport_cancel(fx->tp, easy);
    ig_transport_cancel(fx->tp, easy); /* a second cancel is a no-op */
    assert_int_equal(r.calls, 0);      /* never synchronously */
    assert_true(run_until(fx->base, raw_done, &r, 5000));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, CURLE_ABORTED_BY_CALLBACK);
    run_until(fx->base, never, NULL, 100);
    assert_int_equal(r.calls, 1);
    assert_int_equal(ig_transport_active(fx->tp), 0);
}

static void test_fetch__transport_cancel_before_loop(void **state)
{
    struct fx *fx = *state;
    struct raw r = {0, CURLE_OK};
    CURL *easy = stall_handle();

    assert_int_equal(ig_transport_add(fx->tp, easy, on_raw, &r), IG_OK);
    ig_transport_cancel(fx->tp, easy);
    assert_int_equal(r.calls, 0);
    assert_true(run_until(fx->base, raw_done, &r, 5000));
    run_until(fx->base, never, NULL, 100);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, CURLE_ABORTED_BY_CALLBACK);
    assert_int_equal(ig_fake_http_requests(&srv), 0);
}

static void test_fetch__transport_free_aborts(void **state)
{
    struct fx *fx = *state;
    struct raw r1 = {0, CURLE_OK}, r2 = {0, CURLE_OK};
    CURL *e1 = stall_handle(), *e2 = stall_handle();

    assert_int_equal(ig_transport_add(fx->tp, e1, on_raw, &r1), IG_OK);
    assert_int_equal(ig_transport_add(fx->tp, e2, on_raw, &r2), IG_OK);
    assert_true(run_until(fx->base, srv_has_request, NULL, 10000));
    ig_transport_cancel(fx->tp, e2); /* pending cancel event at free time */
    ig_transport_free(fx->tp);
    fx->tp = NULL;
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.rc, CURLE_ABORTED_BY_CALLBACK);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.rc, CURLE_ABORTED_BY_CALLBACK);
}

static int group_setup(void **state)
{
    if (getenv("IG_TEST_DEBUG"))
        ig_log_set_level(IG_LOG_DEBUG);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    if (evthread_use_pthreads() != 0)
        return -1;
    if (ig_fake_http_start(&srv, handle, NULL) != 0 || ig_fake_http_start(&proxy, handle, NULL) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    ig_fake_http_stop(&srv);
    ig_fake_http_stop(&proxy);
    curl_global_cleanup();
    libevent_global_shutdown();
    return 0;
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fetch__opts_default),
        T(test_fetch__loopback_allowed_ok),
        T(test_fetch__user_agent),
        T(test_fetch__loopback_blocked_by_default),
        T(test_fetch__too_big_content_length),
        T(test_fetch__too_big_announced_early),
        T(test_fetch__too_big_chunked),
        T(test_fetch__cap_boundary),
        T(test_fetch__http_404),
        T(test_fetch__stall_times_out),
        T(test_fetch__connection_refused),
        T(test_fetch__redirect_not_followed),
        T(test_fetch__redirect_followed),
        T(test_fetch__redirect_chain_too_long),
        T(test_fetch__redirect_to_file_refused),
        T(test_fetch__proxy_env_ignored),
        T(test_fetch__concurrent),
        T(test_fetch__start_rejects_bad_url),
        T(test_fetch__transport_cancel_runs_done_once),
        T(test_fetch__transport_cancel_before_loop),
        T(test_fetch__transport_free_aborts),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
