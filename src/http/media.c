/* media.c: GET/HEAD /media/tasks/{task hex}/{index}.{ext}: the stored result images, at URLs
 * that stay the same until the task's results expire (then 410). Public like a CDN URL: the
 * task id (74 random bits) is the capability. ETag is the content hash; Range (one range),
 * If-None-Match and HEAD are honoured, the same for every blob store: fs opens the file on
 * this loop (a local open), s3 fetches the object on the blob store's own threads and the
 * reply is sent from the completion posted back to this loop. An s3 store with presigned URLs
 * makes the answer a 307 to the object in the bucket instead (after the same 404/410
 * checks). */
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

/* What the reply needs once the blob is open (the task itself is released by then). */
struct media_read {
    struct ig_hreq *hr;
    char mime[24];
};

static void media_send(void *arg, enum ig_err err, int fd, int64_t size);

void ig_media_get(struct ig_hreq *hr, const char *rest)
{
    char hex[IG_ID_HEX_LEN + 1], ext[8], etag[IG_SHA256_HEX_LEN + 3], cc[64], url[2048];
    struct ig_id id;
    struct ig_task t;
    const struct ig_output *o;
    struct media_read *mr;
    int idx, consumed = 0;
    int64_t now;
    const char *inm;
    bool presigned;
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
    /* A blob store that hands out its own URLs (S3 presigned): redirect there. The URL is
     * valid for a limited time, so the redirect itself is not to be cached. */
    presigned = ig_blob_presign(hr->app->blob, o->blob, o->ext, url, sizeof(url));
    snprintf(etag, sizeof(etag), "\"%s\"", o->blob);
    ig_http_header(hr, "ETag", etag);
    if (presigned) {
        snprintf(cc, sizeof(cc), "no-store");
    } else {
        ig_http_header(hr, "Accept-Ranges", "bytes");
        snprintf(cc, sizeof(cc), "public, max-age=%" PRId64 ", immutable",
                 t.expires_ms ? (t.expires_ms - now) / 1000 : 31536000);
    }
    ig_http_header(hr, "Cache-Control", cc);
    if (t.offline)
        ig_http_header(hr, "X-Imagegate-Offline", "true");
    inm = ig_http_get_header(hr, "If-None-Match");
    if (inm && (strstr(inm, o->blob) || strcmp(inm, "*") == 0)) {
        ig_task_release(&t);
        ig_http_reply_bytes(hr, 304, NULL, "", 0);
        return;
    }
    if (presigned) {
        struct evbuffer *buf = evbuffer_new();

        ig_task_release(&t);
        ig_http_header(hr, "Location", url);
        ig_http_header(hr, "Content-Length", "0");
        ig_http_header(hr, "X-Request-Id", hr->request_id);
        ig_http_header(hr, "Server", "imagegate");
        evhttp_send_reply(hr->req, 307, "Temporary Redirect", buf);
        evbuffer_free(buf);
        ig_hreq_free(hr);
        return;
    }
    mr = ig_xcalloc(1, sizeof(*mr));
    mr->hr = hr;
    snprintf(mr->mime, sizeof(mr->mime), "%s", o->mime);
    /* fs opens the file right here; s3 fetches on its own threads and answers on this loop.
     * HEAD needs only the size. */
    ig_blob_open_fd_async(hr->app->blob, o->blob, o->ext, hr->method != EVHTTP_REQ_HEAD, hr->mb,
                          media_send, mr);
    ig_task_release(&t);
}

/* The blob is open (or could not be): answer with it, whole or the range asked for. */
static void media_send(void *arg, enum ig_err err, int fd, int64_t size)
{
    struct media_read *mr = arg;
    struct ig_hreq *hr = mr->hr;
    char mime[24], num[32];
    int64_t start = 0, end = 0;
    const char *range;
    struct evbuffer *buf;
    int r;

    snprintf(mime, sizeof(mime), "%s", mr->mime);
    free(mr);
    if (err) {
        ig_http_error(hr, err == IG_E_NOT_FOUND ? IG_E_GONE : IG_E_INTERNAL, "path",
                      err == IG_E_NOT_FOUND ? "this result is no longer stored"
                                            : "could not read the stored result");
        return;
    }
    range = ig_http_get_header(hr, "Range");
    r = range ? parse_range(range, size, &start, &end) : 0;
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        snprintf(num, sizeof(num), "bytes */%" PRId64, size);
        ig_http_header(hr, "Content-Range", num);
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
    ig_http_header(hr, "Content-Type", mime);
    ig_http_header(hr, "X-Request-Id", hr->request_id);
    ig_http_header(hr, "Server", "imagegate");
    buf = evbuffer_new();
    if (hr->method == EVHTTP_REQ_HEAD || size == 0 || fd < 0) {
        if (fd >= 0)
            close(fd);
    } else if (evbuffer_add_file(buf, fd, start, end - start + 1)) {
        close(fd);
        evbuffer_free(buf);
        ig_http_error(hr, IG_E_INTERNAL, NULL, "could not send the stored result");
        return;
    }
    evhttp_send_reply(hr->req, r ? 206 : 200, r ? "Partial Content" : "OK", buf);
    evbuffer_free(buf);
    ig_hreq_free(hr);
}
