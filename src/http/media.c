/* media.c: GET/HEAD /media/tasks/{task hex}/{index}.{ext}: the stored result images, at URLs
 * that stay the same until the task's results expire (then 410). Public like a CDN URL: the
 * task id (74 random bits) is the capability. ETag is the content hash; Range (one range),
 * If-None-Match and HEAD are honoured. */
#include "base/base.h"
#include "http/routes.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

IG_STATIC int parse_range(const char *h, int64_t size, int64_t *start, int64_t *end);

/* Parse "bytes=a-b", "bytes=a-", "bytes=-n" against size. Returns 1 for a satisfiable range
 * (start/end inclusive set), 0 to ignore the header (serve whole), -1 for unsatisfiable. */
IG_STATIC int parse_range(const char *h, int64_t size, int64_t *start, int64_t *end)
{
    char *p;
    long long a, b;

    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0; /* other units and multiple ranges: serve the whole */
    h += 6;
    if (*h == '-') {
        b = strtoll(h + 1, &p, 10);
        if (p == h + 1 || *p || b <= 0)
            return b == 0 && p != h + 1 && !*p ? -1 : 0;
        if (size == 0)
            return -1;
        *start = b >= size ? 0 : size - b;
        *end = size - 1;
        return 1;
    }
    a = strtoll(h, &p, 10);
    if (p == h || *p != '-' || a < 0)
        return 0;
    h = p + 1;
    if (!*h) {
        b = size - 1;
    } else {
        b = strtoll(h, &p, 10);
        if (p == h || *p || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *start = a;
    *end = b >= size ? size - 1 : b;
    return 1;
}

void ig_media_get(struct ig_hreq *hr, const char *rest)
{
    char hex[IG_ID_HEX_LEN + 1], ext[8], etag[IG_SHA256_HEX_LEN + 3], num[32], cc[64];
    struct ig_id id;
    struct ig_task t;
    const struct ig_output *o;
    int idx, consumed = 0, fd = -1, r;
    int64_t size = 0, start = 0, end = 0, now;
    const char *inm, *range;
    struct evbuffer *buf;
    enum ig_err err;

    if (sscanf(rest, "%32[0-9a-f]/%d.%7[a-z]%n", hex, &idx, ext, &consumed) != 3 ||
        rest[consumed] || strlen(hex) != IG_ID_HEX_LEN || !ig_id_parse(hex, &id) || idx < 0) {
        ig_http_error(hr, IG_E_NOT_FOUND, "path", "no such media");
        return;
    }
    ig_task_init(&t);
    err = ig_store_task_get(hr->store, &id, &t);
    if (err || t.state != IG_TASK_SUCCEEDED || idx >= t.noutputs ||
        strcmp(t.outputs[idx].ext, ext) != 0) {
        ig_task_release(&t);
        if (err && err != IG_E_NOT_FOUND)
            ig_http_error(hr, IG_E_INTERNAL, NULL, "could not read the task");
        else
            ig_http_error(hr, IG_E_NOT_FOUND, "path", "no such media");
        return;
    }
    now = ig_now_ms();
    if (t.outputs_expired || (t.expires_ms && t.expires_ms <= now)) {
        char when[32];

        ig_time_iso8601(t.expires_ms, when, sizeof(when));
        ig_task_release(&t);
        ig_http_error(hr, IG_E_GONE, "path",
                      "this result expired at %s; results are kept for a limited time — download "
                      "them to your own storage",
                      when);
        return;
    }
    o = &t.outputs[idx];
    snprintf(etag, sizeof(etag), "\"%s\"", o->blob);
    ig_http_header(hr, "ETag", etag);
    ig_http_header(hr, "Accept-Ranges", "bytes");
    snprintf(cc, sizeof(cc), "public, max-age=%" PRId64 ", immutable",
             t.expires_ms ? (t.expires_ms - now) / 1000 : 31536000);
    ig_http_header(hr, "Cache-Control", cc);
    if (t.offline)
        ig_http_header(hr, "X-Imagegate-Offline", "true");
    inm = ig_http_get_header(hr, "If-None-Match");
    if (inm && (strstr(inm, o->blob) || strcmp(inm, "*") == 0)) {
        ig_task_release(&t);
        ig_http_reply_bytes(hr, 304, NULL, "", 0);
        return;
    }
    err = ig_blob_open_fd(hr->app->blob, o->blob, o->ext, &fd, &size);
    if (err) {
        ig_task_release(&t);
        ig_http_error(hr, err == IG_E_NOT_FOUND ? IG_E_GONE : IG_E_INTERNAL, "path",
                      err == IG_E_NOT_FOUND ? "this result is no longer stored"
                                            : "could not read the stored result");
        return;
    }
    range = ig_http_get_header(hr, "Range");
    r = range ? parse_range(range, size, &start, &end) : 0;
    if (r < 0) {
        close(fd);
        snprintf(num, sizeof(num), "bytes */%" PRId64, size);
        ig_http_header(hr, "Content-Range", num);
        ig_task_release(&t);
        ig_http_error_status(hr, 416, IG_E_INVALID, "Range", "range not satisfiable for %" PRId64
                             " bytes", size);
        return;
    }
    if (r == 0) {
        start = 0;
        end = size - 1;
    } else {
        char cr[96];

        snprintf(cr, sizeof(cr), "bytes %" PRId64 "-%" PRId64 "/%" PRId64, start, end, size);
        ig_http_header(hr, "Content-Range", cr);
    }
    snprintf(num, sizeof(num), "%" PRId64, end - start + 1);
    ig_http_header(hr, "Content-Length", num);
    ig_http_header(hr, "Content-Type", o->mime);
    ig_http_header(hr, "X-Request-Id", hr->request_id);
    ig_http_header(hr, "Server", "imagegate");
    buf = evbuffer_new();
    if (hr->method == EVHTTP_REQ_HEAD || size == 0) {
        close(fd);
    } else if (evbuffer_add_file(buf, fd, start, end - start + 1)) {
        close(fd);
        evbuffer_free(buf);
        ig_task_release(&t);
        ig_http_error(hr, IG_E_INTERNAL, NULL, "could not send the stored result");
        return;
    }
    ig_task_release(&t);
    evhttp_send_reply(hr->req, r ? 206 : 200, r ? "Partial Content" : "OK", buf);
    evbuffer_free(buf);
    ig_hreq_free(hr);
}
