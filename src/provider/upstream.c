/* upstream.c: receiving and classifying one upstream call, shared by the HTTP providers
 * (upstream.h). */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provider/channel.h"
#include "provider/gemini_wire.h"
#include "provider/upstream.h"

void ig_upstream_rx_init(struct ig_upstream_rx *rx, size_t max)
{
    ig_buf_init(&rx->body, max);
    rx->toobig = false;
    rx->retry_after_ms = rx->retry_after_ms_ms = -1;
}

/* ---- curl callbacks ---- */

size_t ig_upstream_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct ig_upstream_rx *rx = userp;
    size_t n = size * nmemb;

    /* The cap applies to the decoded bytes: gzip from the upstream is decoded before here. */
    if (ig_buf_add(&rx->body, data, n) != IG_OK) {
        rx->toobig = true;
        return 0; /* CURLE_WRITE_ERROR: stop now */
    }
    return n;
}

static bool header_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);

    return n > k && line[k] == ':' && strncasecmp(line, name, k) == 0;
}

static void header_value(const char *line, size_t n, size_t k, char *v, size_t vlen)
{
    size_t len = n - k < vlen - 1 ? n - k : vlen - 1;

    memcpy(v, line + k, len);
    v[len] = '\0';
}

size_t ig_upstream_header_cb(char *line, size_t size, size_t nitems, void *userp)
{
    struct ig_upstream_rx *rx = userp;
    size_t n = size * nitems;
    char v[128];

    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue): forget the last */
        rx->retry_after_ms = rx->retry_after_ms_ms = -1;
    } else if (header_is(line, n, "retry-after-ms")) {
        char *end;
        double ms;

        header_value(line, n, strlen("retry-after-ms:"), v, sizeof(v));
        ms = strtod(v, &end);
        if (end != v && ms >= 0 && ms < 1e11)
            rx->retry_after_ms_ms = (int64_t)(ms + 0.999);
    } else if (header_is(line, n, "retry-after")) {
        header_value(line, n, strlen("retry-after:"), v, sizeof(v));
        rx->retry_after_ms = ig_gemini_parse_retry_after(v, ig_now_ms());
    }
    return n;
}

/* ---- classification ---- */

void ig_upstream_set_msg(struct ig_job *out, enum ig_err err, const char *fmt, ...)
{
    va_list ap;

    out->err = err;
    va_start(ap, fmt);
    vsnprintf(out->errmsg, sizeof(out->errmsg), fmt, ap);
    va_end(ap);
}

bool ig_upstream_body_sent(CURL *easy, curl_off_t body_len)
{
    curl_off_t pre = 0, up = 0, total = body_len;

    curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
    if (body_len < 0) {
        total = -1;
        curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_UPLOAD_T, &total);
    }
    return pre > 0 && (total >= 0 ? up >= total : up > 0);
}

void ig_upstream_classify_curl(struct ig_job *out, CURLcode rc, bool sent, int timeout_ms)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        out->retryable = true;
        ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT, "could not reach the upstream: %s",
                            curl_easy_strerror(rc));
        return;
    case CURLE_OPERATION_TIMEDOUT:
        if (!sent) {
            out->retryable = true;
            ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT, "could not reach the upstream: %s",
                                curl_easy_strerror(rc));
        } else {
            out->maybe_executed = true;
            ig_upstream_set_msg(out, IG_E_UPSTREAM_TIMEOUT,
                                "the upstream did not answer within %d ms", timeout_ms);
        }
        return;
    case CURLE_ABORTED_BY_CALLBACK:
        out->maybe_executed = sent;
        ig_upstream_set_msg(out, IG_E_CANCELLED, "the upstream request was cancelled");
        return;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        /* The connection broke: before the whole body went, the upstream cannot have run it. */
        out->maybe_executed = sent;
        out->retryable = !sent;
        ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT, "the upstream connection failed: %s",
                            curl_easy_strerror(rc));
        return;
    default:
        /* Anything else (a bad URL, a TLS setup error, corrupt gzip) is not worth repeating
         * on this channel; once the body went it may have run. */
        out->maybe_executed = sent;
        ig_upstream_set_msg(out, IG_E_UPSTREAM_SUBMIT, "the upstream request failed: %s",
                            curl_easy_strerror(rc));
        return;
    }
}

bool ig_upstream_classify_transfer(struct ig_job *out, CURL *easy, CURLcode rc,
                                   const struct ig_upstream_rx *rx, bool sent, int timeout_ms,
                                   long *status)
{
    curl_off_t down = 0;

    *status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
    curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
    out->http_status = (int)*status;
    out->bytes_in =
        (int64_t)down > (int64_t)rx->body.len ? (int64_t)down : (int64_t)rx->body.len;

    if (rx->toobig) {
        out->maybe_executed = true; /* it ran: this is its answer */
        ig_upstream_set_msg(out, IG_E_UPSTREAM_FAILED, "upstream response exceeds %zu bytes",
                            rx->body.max);
        return false;
    }
    if (rc != CURLE_OK) {
        ig_upstream_classify_curl(out, rc, sent, timeout_ms);
        return false;
    }
    return true;
}

void ig_upstream_classify_status(struct ig_job *out, long status, enum ig_err client_err)
{
    switch (status) {
    case 408: /* the request did not arrive whole */
    case 429:
    case 502:
    case 503:
        out->retryable = true;
        break;
    case 504:
        out->maybe_executed = true;
        out->err = IG_E_UPSTREAM_TIMEOUT;
        break;
    default:
        if (status >= 500) {
            out->maybe_executed = true; /* 500 and the rest: it may have run */
        } else {
            out->err = client_err; /* 400, 404, ...: asking again changes nothing */
            out->retry_after_ms = 0;
        }
        break;
    }
}

void ig_upstream_redact(const struct ig_channel *c, const char *bearer, struct ig_job *out)
{
    bool quoted = bearer && bearer[0] && strstr(out->errmsg, bearer);

    for (int i = 0; !quoted && i < c->nkeys && i < IG_CHANNEL_MAX_KEYS; i++)
        quoted = c->keys[i][0] && strstr(out->errmsg, c->keys[i]);
    if (quoted)
        snprintf(out->errmsg, sizeof(out->errmsg),
                 "upstream answered HTTP %d (its message quoted the %s and is withheld)",
                 out->http_status, bearer ? "access token" : "API key");
}

CURLcode ig_upstream_easy_setup(CURL *e, const struct ig_channel *c, const char *url,
                                struct curl_slist *headers, struct ig_upstream_rx *rx,
                                char *errbuf)
{
    CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* a trusted upstream: the cap counts decoded bytes */
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Thousands of calls wait 5-120 s each: a 4 KiB receive buffer instead of libcurl's 16 KiB
     * keeps the memory of a waiting call small (a 4K image still arrives at full speed). */
    SET(CURLOPT_BUFFERSIZE, 4096L);
    SET(CURLOPT_WRITEFUNCTION, ig_upstream_write_cb);
    SET(CURLOPT_WRITEDATA, rx);
    SET(CURLOPT_HEADERFUNCTION, ig_upstream_header_cb);
    SET(CURLOPT_HEADERDATA, rx);
    SET(CURLOPT_USERAGENT, "imagegate/0.1");
    SET(CURLOPT_ERRORBUFFER, errbuf);
#undef SET
    return rc;
}
