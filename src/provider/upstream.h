/* upstream.h: what the HTTP providers (provider_gemini.c, provider_openai.c) share about one
 * upstream call: receiving the answer under a cap, reading its Retry-After headers, and
 * classifying how it ended for the router's retry decision (reliability.md §8).
 *
 * A provider keeps a struct ig_upstream_rx per transfer, points CURLOPT_WRITEFUNCTION and
 * CURLOPT_HEADERFUNCTION at the callbacks below with the rx as their data, and when the
 * transfer ends calls ig_upstream_classify_transfer(); only an HTTP answer is left to it,
 * whose error body it parses in its own dialect before ig_upstream_classify_status(). */
#ifndef IG_UPSTREAM_H
#define IG_UPSTREAM_H

#include "base/base.h"

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "provider/provider.h"

struct ig_channel;

/* The answer of one transfer as it arrives. */
struct ig_upstream_rx {
    struct ig_buf body;         /* capped: a longer answer sets toobig and stops the transfer */
    bool toobig;
    int64_t retry_after_ms;     /* from a Retry-After header, -1 when none */
    int64_t retry_after_ms_ms;  /* from a retry-after-ms header (OpenAI), -1 when none */
};

/* The options every upstream call shares: the URL (http/https only), the headers, the
 * channel's connect and total timeouts, decoded bodies, HTTP/2 where offered, a 4 KiB receive
 * buffer, the answer into rx and curl's error text into errbuf (CURL_ERROR_SIZE bytes).
 * TLS verification stays at libcurl's default (on); no CURLOPT_PROXY: the environment decides.
 * The body is the caller's to set. */
CURLcode ig_upstream_easy_setup(CURL *e, const struct ig_channel *c, const char *url,
                                struct curl_slist *headers, struct ig_upstream_rx *rx,
                                char *errbuf);

/* Empty, with a body cap of max bytes. Release with ig_buf_release(&rx->body). */
void ig_upstream_rx_init(struct ig_upstream_rx *rx, size_t max);

/* CURLOPT_WRITEFUNCTION with a struct ig_upstream_rx as CURLOPT_WRITEDATA. */
size_t ig_upstream_write_cb(char *data, size_t size, size_t nmemb, void *userp);
/* CURLOPT_HEADERFUNCTION with a struct ig_upstream_rx as CURLOPT_HEADERDATA: records
 * Retry-After and retry-after-ms, forgetting them when a new response starts. */
size_t ig_upstream_header_cb(char *line, size_t size, size_t nitems, void *userp);

/* Set out->err and format out->errmsg. */
void ig_upstream_set_msg(struct ig_job *out, enum ig_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Was the whole body handed over? Only then may the upstream have run the request. body_len
 * is the size of the body, or -1 to take the upload size libcurl knows (unknown: any byte). */
bool ig_upstream_body_sent(CURL *easy, curl_off_t body_len);

/* A transfer that ended with rc other than CURLE_OK: never ran (retryable), may have run
 * (sent), cancelled, or a connection that failed. timeout_ms is the channel's, for the
 * message. */
void ig_upstream_classify_curl(struct ig_job *out, CURLcode rc, bool sent, int timeout_ms);

/* The end of a transfer: records http_status and bytes_in, classifies an answer over the cap
 * or a transfer that failed (ig_upstream_classify_curl). Returns true when an HTTP answer
 * arrived whole: its status (*status) is the caller's to classify. */
bool ig_upstream_classify_transfer(struct ig_job *out, CURL *easy, CURLcode rc,
                                   const struct ig_upstream_rx *rx, bool sent, int timeout_ms,
                                   long *status);

/* A non-2xx answer whose message the caller has set (err IG_E_UPSTREAM_SUBMIT): 408, 429, 502
 * and 503 are retryable, 504 a timeout that may have run, 500 and the other 5xx may have run;
 * any other status fails with client_err and no Retry-After (asking again changes nothing). */
void ig_upstream_classify_status(struct ig_job *out, long status, enum ig_err client_err);

/* Withhold out->errmsg when it quotes one of the channel's keys or bearer (NULL when none). */
void ig_upstream_redact(const struct ig_channel *c, const char *bearer, struct ig_job *out);

#endif
