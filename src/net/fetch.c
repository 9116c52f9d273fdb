/* fetch.c: SSRF-safe fetching of client-supplied URLs over the transport (reliability.md §1).
 *
 * The address gate is CURLOPT_OPENSOCKETFUNCTION: the address judged is the address connected,
 * for every address of a name and every redirect hop; CURLOPT_PREREQFUNCTION re-checks the
 * connected peer as a backstop. A fetch never reuses nor leaves a connection behind, so a
 * connection vetted under one policy never serves another. Messages and logs carry the host
 * only: never the body, never the path or query. */
#include "base/base.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "net/addr.h"
#include "net/fetch.h"
#include "net/transport.h"

#define FETCH_USER_AGENT "imagegate/0.1"
#define LOW_SPEED_LIMIT 1024L /* bytes per second ... */
#define LOW_SPEED_TIME 10L    /* ... sustained for this many seconds */

struct fetch {
    struct ig_fetch_opts o;
    ig_fetch_done_fn *done;
    void *arg;
    CURLU *url;
    char host[256];             /* for logs and messages: no path, no query */
    long hop_status;            /* status line of the response being received */
    bool blocked;
    enum ig_addr_class blocked_class;
    char blocked_addr[INET6_ADDRSTRLEN];
    bool toobig;
    int64_t started_ms;
    struct ig_fetch_result res;
    char errbuf[CURL_ERROR_SIZE];
};

void ig_fetch_opts_default(struct ig_fetch_opts *o)
{
    o->max_bytes = 7 * 1024 * 1024;
    o->connect_timeout_ms = 5000;
    o->total_timeout_ms = 30000;
    o->max_redirects = 3;
    o->allow_loopback = false;
}

/* Parse url into a new CURLU handle and apply the URL rules. */
static enum ig_err parse_url(const char *url, CURLU **out, struct ig_errbuf *eb)
{
    CURLU *h = curl_url();
    CURLUcode uc;
    char *part = NULL;
    enum ig_err err = IG_OK;

    if (!h)
        return ig_fail(eb, IG_E_NOMEM, "url", "out of memory");
    if (!url || !*url) {
        err = ig_fail(eb, IG_E_INVALID, "url", "url is empty");
        goto out;
    }
    /* Let any scheme parse so the message can name the rule that was broken. */
    uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        err = ig_fail(eb, IG_E_INVALID, "url", "url is not valid: %s", curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(h, CURLUPART_SCHEME, &part, 0) != CURLUE_OK || !part ||
        (strcasecmp(part, "http") != 0 && strcasecmp(part, "https") != 0)) {
        err = ig_fail(eb, IG_E_INVALID, "url", "url scheme must be http or https");
        goto out;
    }
    curl_free(part);
    part = NULL;
    if (curl_url_get(h, CURLUPART_HOST, &part, 0) != CURLUE_OK || !part || !*part) {
        err = ig_fail(eb, IG_E_INVALID, "url", "url has no host");
        goto out;
    }
    curl_free(part);
    part = NULL;
    if (curl_url_get(h, CURLUPART_USER, &part, 0) == CURLUE_OK ||
        curl_url_get(h, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK ||
        curl_url_get(h, CURLUPART_OPTIONS, &part, 0) == CURLUE_OK) {
        err = ig_fail(eb, IG_E_INVALID, "url", "url must not contain a user name or password");
        goto out;
    }
out:
    curl_free(part);
    if (err || !out)
        curl_url_cleanup(h);
    else
        *out = h;
    return err;
}

enum ig_err ig_fetch_check_url(const char *url, struct ig_errbuf *eb)
{
    return parse_url(url, NULL, eb);
}

static void block(struct fetch *f, enum ig_addr_class cls, const char *addr)
{
    if (f->blocked)
        return; /* keep the first refusal: it is the one the message names */
    f->blocked = true;
    f->blocked_class = cls;
    snprintf(f->blocked_addr, sizeof(f->blocked_addr), "%s", addr);
}

/* CURLOPT_OPENSOCKETFUNCTION: the gate. Once any address was refused, refuse every later one
 * too: a name with one forbidden answer is refused as a whole (reject-if-any). */
static curl_socket_t opensocket_cb(void *clientp, curlsocktype purpose,
                                   struct curl_sockaddr *address)
{
    struct fetch *f = clientp;
    enum ig_addr_class cls = ig_addr_classify(&address->addr);
    char text[INET6_ADDRSTRLEN] = "?";
    curl_socket_t fd;

    if (address->family == AF_INET) {
        struct sockaddr_in sin;

        memcpy(&sin, &address->addr, sizeof(sin));
        inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text));
    } else if (address->family == AF_INET6) {
        struct sockaddr_in6 sin6;

        memcpy(&sin6, &address->addr, sizeof(sin6));
        inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text));
    }
    if (purpose != CURLSOCKTYPE_IPCXN)
        cls = IG_ADDR_INVALID;
    if (!ig_addr_allowed(cls, f->o.allow_loopback)) {
        ig_debug("fetch: host %s: refused %s address %s", f->host, ig_addr_class_name(cls), text);
        block(f, cls, text);
        return CURL_SOCKET_BAD;
    }
    if (f->blocked)
        return CURL_SOCKET_BAD;
    fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* CURLOPT_PREREQFUNCTION: the backstop, run on the connected peer before the request goes. */
static int prereq_cb(void *clientp, char *conn_primary_ip, char *conn_local_ip,
                     int conn_primary_port, int conn_local_port)
{
    struct fetch *f = clientp;
    enum ig_addr_class cls = ig_addr_classify_str(conn_primary_ip);

    if (!ig_addr_allowed(cls, f->o.allow_loopback)) {
        block(f, cls, conn_primary_ip ? conn_primary_ip : "?");
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static bool header_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);

    return n > k && line[k] == ':' && strncasecmp(line, name, k) == 0;
}

/* CURLOPT_HEADERFUNCTION: track each response of a redirect chain; refuse an announced
 * Content-Length above the cap before any body byte arrives. */
static size_t header_cb(char *line, size_t size, size_t nitems, void *userp)
{
    struct fetch *f = userp;
    size_t n = size * nitems;

    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = memchr(line, ' ', n);

        f->hop_status = 0;
        if (sp && (size_t)(sp - line) + 4 <= n) {
            char code[4];

            memcpy(code, sp + 1, 3);
            code[3] = '\0';
            f->hop_status = strtol(code, NULL, 10);
        }
        /* A new response: whatever an earlier hop sent is not the reference. */
        ig_buf_reset(&f->res.body);
        return n;
    }
    if (header_is(line, n, "content-length") && (f->hop_status < 300 || f->hop_status > 399)) {
        char num[32];
        size_t k = strlen("content-length:");
        size_t len = n - k < sizeof(num) - 1 ? n - k : sizeof(num) - 1;
        char *end;
        unsigned long long v;

        memcpy(num, line + k, len);
        num[len] = '\0';
        v = strtoull(num, &end, 10);
        if (end != num && v > f->o.max_bytes) {
            f->toobig = true;
            return 0;
        }
    }
    return n;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct fetch *f = userp;
    size_t n = size * nmemb;

    if (ig_buf_add(&f->res.body, data, n) != IG_OK) {
        f->toobig = true;
        return 0; /* CURLE_WRITE_ERROR: stop now, the cap is the cap */
    }
    return n;
}

static void set_result(struct fetch *f, CURL *easy, CURLcode rc)
{
    struct ig_fetch_result *r = &f->res;
    char *ctype = NULL;
    curl_off_t connect_us = 0;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype)
        snprintf(r->content_type, sizeof(r->content_type), "%s", ctype);
    r->err = IG_E_REFERENCE;

    if (f->blocked) {
        r->err = IG_E_BLOCKED;
        snprintf(r->errmsg, sizeof(r->errmsg), "address %s is %s", f->blocked_addr,
                 ig_addr_class_name(f->blocked_class));
        return;
    }
    if (f->toobig) {
        r->err = IG_E_TOOBIG;
        snprintf(r->errmsg, sizeof(r->errmsg), "reference exceeds %zu bytes", f->o.max_bytes);
        return;
    }
    switch (rc) {
    case CURLE_OK:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        if (strstr(f->errbuf, "too slow"))
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "reference transfer too slow (under %ld bytes/s for %ld s)", LOW_SPEED_LIMIT,
                     LOW_SPEED_TIME);
        else if (connect_us == 0 && f->o.connect_timeout_ms < f->o.total_timeout_ms)
            snprintf(r->errmsg, sizeof(r->errmsg), "reference connect timed out after %ld ms",
                     f->o.connect_timeout_ms);
        else
            snprintf(r->errmsg, sizeof(r->errmsg), "reference timed out after %ld ms",
                     f->o.total_timeout_ms);
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(r->errmsg, sizeof(r->errmsg), "could not resolve host %.200s", f->host);
        return;
    case CURLE_COULDNT_CONNECT:
        snprintf(r->errmsg, sizeof(r->errmsg), "could not connect to host %.200s", f->host);
        return;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(r->errmsg, sizeof(r->errmsg), "reference redirected more than %d times",
                 f->o.max_redirects);
        return;
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(r->errmsg, sizeof(r->errmsg),
                 "reference redirected to a scheme other than http or https");
        return;
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(r->errmsg, sizeof(r->errmsg), "reference host certificate is not trusted");
        return;
    case CURLE_ABORTED_BY_CALLBACK:
        r->err = IG_E_CANCELLED;
        snprintf(r->errmsg, sizeof(r->errmsg), "reference fetch cancelled");
        return;
    default:
        snprintf(r->errmsg, sizeof(r->errmsg), "reference fetch failed: %s",
                 curl_easy_strerror(rc));
        return;
    }

    if (r->status >= 400) {
        snprintf(r->errmsg, sizeof(r->errmsg), "reference answered HTTP %ld", r->status);
    } else if (r->status >= 300) {
        if (f->o.max_redirects <= 0)
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "reference redirected (redirects are not followed)");
        else
            snprintf(r->errmsg, sizeof(r->errmsg), "reference answered HTTP %ld", r->status);
    } else if (r->status < 200) {
        snprintf(r->errmsg, sizeof(r->errmsg), "reference gave no HTTP answer");
    } else {
        r->err = IG_OK;
    }
}

static void fetch_free(struct fetch *f)
{
    curl_url_cleanup(f->url);
    free(f);
}

/* The transport's done: the easy handle is out of the multi and ours to clean up. */
static void fetch_done(CURL *easy, CURLcode rc, void *arg)
{
    struct fetch *f = arg;

    set_result(f, easy, rc);
    if (f->res.err)
        ig_buf_release(&f->res.body);
    ig_debug("fetch: host %s: %s, status %ld, %zu bytes, %lld ms%s%s", f->host,
             ig_strerror(f->res.err), f->res.status, f->res.body.len,
             (long long)(ig_mono_ms() - f->started_ms), f->errbuf[0] ? ": " : "", f->errbuf);
    curl_easy_cleanup(easy);
    f->done(&f->res, f->arg); /* the body is the callback's from here */
    fetch_free(f);
}

static CURL *make_easy(struct fetch *f)
{
    CURL *e = curl_easy_init();
    CURLcode rc = CURLE_OK;

    if (!e)
        return NULL;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_CURLU, f->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PROXY, ""); /* never a proxy from the environment: the gate would see it */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
    SET(CURLOPT_OPENSOCKETDATA, f);
    SET(CURLOPT_PREREQFUNCTION, prereq_cb);
    SET(CURLOPT_PREREQDATA, f);
    SET(CURLOPT_FRESH_CONNECT, 1L);
    SET(CURLOPT_FORBID_REUSE, 1L);
    SET(CURLOPT_FOLLOWLOCATION, f->o.max_redirects > 0 ? 1L : 0L);
    SET(CURLOPT_MAXREDIRS, (long)(f->o.max_redirects > 0 ? f->o.max_redirects : 0));
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, f);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, f);
    SET(CURLOPT_CONNECTTIMEOUT_MS, f->o.connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, f->o.total_timeout_ms);
    SET(CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_LIMIT);
    SET(CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME);
    SET(CURLOPT_USERAGENT, FETCH_USER_AGENT);
    SET(CURLOPT_ERRORBUFFER, f->errbuf);
#undef SET
    if (rc != CURLE_OK) {
        ig_warn("fetch: setting up the transfer failed: %s", curl_easy_strerror(rc));
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

enum ig_err ig_fetch_start(struct ig_transport *tp, const char *url, const struct ig_fetch_opts *o,
                           ig_fetch_done_fn *done, void *arg)
{
    struct ig_errbuf eb;
    struct ig_fetch_opts defaults;
    struct fetch *f = ig_xcalloc(1, sizeof(*f));
    char *host = NULL;
    CURL *easy = NULL;
    enum ig_err err;

    if (!o) {
        ig_fetch_opts_default(&defaults);
        o = &defaults;
    }
    ig_errbuf_clear(&eb);
    err = parse_url(url, &f->url, &eb);
    if (err) {
        ig_debug("fetch: refused url: %s", eb.msg);
        goto out;
    }
    if (curl_url_get(f->url, CURLUPART_HOST, &host, 0) == CURLUE_OK && host)
        snprintf(f->host, sizeof(f->host), "%s", host);
    curl_free(host);
    f->o = *o;
    f->done = done;
    f->arg = arg;
    f->started_ms = ig_mono_ms();
    ig_buf_init(&f->res.body, o->max_bytes);

    easy = make_easy(f);
    if (!easy) {
        err = IG_E_INTERNAL;
        goto out;
    }
    err = ig_transport_add(tp, easy, fetch_done, f);
    if (err)
        goto out;
    ig_debug("fetch: host %s: started", f->host);
    easy = NULL;
    f = NULL;
out:
    if (easy)
        curl_easy_cleanup(easy);
    if (f)
        fetch_free(f);
    return err;
}
