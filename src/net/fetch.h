/* fetch.h: SSRF-safe fetching of client-supplied URLs (reference images), over the transport.
 *
 * http/https only; no userinfo; the resolved address is classified in libcurl's
 * open-socket callback, so the address checked is the address connected (every address of
 * a name, every redirect hop); no proxy from the environment; redirects re-checked the same
 * way and capped; bytes capped in the write callback; connect and total timeouts; no
 * Content-Encoding decoding. reliability.md §1. */
#ifndef IG_FETCH_H
#define IG_FETCH_H

#include "base/base.h"

struct ig_transport;

struct ig_fetch_opts {
    size_t max_bytes;       /* body cap; exceeding it fails with IG_E_TOOBIG */
    long connect_timeout_ms;
    long total_timeout_ms;
    int max_redirects;      /* 0 = a 3xx answer is an error */
    bool allow_loopback;    /* tests only: loopback addresses allowed */
};

void ig_fetch_opts_default(struct ig_fetch_opts *o);

struct ig_fetch_result {
    enum ig_err err;        /* IG_OK, IG_E_BLOCKED, IG_E_TOOBIG, IG_E_TIMEOUT-ish, IG_E_REFERENCE */
    char errmsg[256];       /* for clients: never contains the body */
    long status;            /* HTTP status, 0 if none */
    struct ig_buf body;     /* owned by the callback from the moment it runs */
    char content_type[128];
};

typedef void ig_fetch_done_fn(struct ig_fetch_result *res, void *arg);

/* Validate a URL before any network use: scheme http/https, host present, no userinfo,
 * parseable by curl_url(). Writes the reason into eb. */
enum ig_err ig_fetch_check_url(const char *url, struct ig_errbuf *eb);

/* Start a fetch; done runs on the transport's loop exactly once (unless an error is returned
 * here, in which case it never runs). The result's body is the callback's to release. */
enum ig_err ig_fetch_start(struct ig_transport *tp, const char *url, const struct ig_fetch_opts *o,
                           ig_fetch_done_fn *done, void *arg);

#endif
