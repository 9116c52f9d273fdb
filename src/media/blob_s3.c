/* blob_s3.c: the "s3" blob store: objects <prefix><sha256>.<ext> in a bucket of any
 * S3-compatible server (AWS S3, MinIO, Ceph, R2, ...).
 *
 * Requests are PUT, GET, HEAD and DELETE on one object, signed with AWS Signature V4 by
 * libcurl (CURLOPT_AWS_SIGV4). libcurl 7.88 (Debian 12) hashes no upload body for the
 * signature, so every request carries x-amz-content-sha256 itself, which libcurl signs as
 * the payload hash: the SHA-256 of the empty body, or for a PUT the blob's own name, which is
 * the SHA-256 of its bytes, so the server checks the upload against it. A put is durable when
 * the server answered 200; it is idempotent (same bytes, same key). Path-style
 * ({endpoint}/{bucket}/{key}) and virtual-host style ({bucket}.{host}/{key}) addressing.
 *
 * The endpoint is the operator's, so it is not subject to the reference-URL address policy;
 * still: http and https only, no redirects, no proxy from the environment, TLS verified,
 * connect and per-operation timeouts, and a byte cap on every read. Transient failures
 * (connection errors, 429, 5xx) are retried within the operation's time budget: every
 * operation is idempotent. Easy handles are kept for reuse (their connections stay open);
 * each is used by one thread at a time. The secret key goes only to libcurl and to the HMAC of
 * presigned URLs; it is never logged.
 *
 * Event loops never call the blocking ops: ig_blob_open_fd_async() fetches on this store's
 * own threads into a memfd and posts the descriptor to the caller's mailbox, and presigned
 * URLs (SigV4 query signing with OpenSSL's HMAC-SHA256: libcurl does not presign) let
 * clients fetch from the bucket directly. */
#include "base/base.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "media/blob.h"
#include "media/image.h"

#define MAX_IDLE_HANDLES 16
#define MAX_ATTEMPTS     3
#define ERRBODY_MAX      4096
#define EMPTY_SHA256     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

IG_STATIC void ig_s3_presign_at(char *url, size_t n, const char *scheme, const char *authority,
                                const char *path, const char *region, const char *access,
                                const char *secret, int64_t unix_s, int ttl_s);
IG_STATIC size_t ig_s3_uri_encode(char *out, size_t n, const char *s, bool keep_slash);

struct s3 {
    char scheme[8];      /* "http" or "https" */
    char authority[320]; /* host[:port] of requests: bucket.host[:port] in virtual-host style */
    char base[512];      /* path before the key: [/endpoint path][/bucket] */
    char region[64];
    char prefix[260];    /* "" or ends in '/' */
    char sigv4[96];      /* "aws:amz:<region>:s3" */
    char *access, *secret;
    int presign_ttl_s;
    int64_t max_bytes;
    long connect_timeout_ms, timeout_ms;
    /* idle easy handles */
    pthread_mutex_t mu;
    CURL *idle[MAX_IDLE_HANDLES];
    int nidle;
    /* asynchronous reads */
    struct ig_pool *io;
    pthread_cond_t cv;
    int inflight;        /* under mu */
    bool quiesced;       /* under mu */
};

/* ---- names ------------------------------------------------------------------------------- */


static const char *mime_of(const char *ext)
{
    static const enum ig_image_type types[] = {IG_IMG_PNG, IG_IMG_JPEG, IG_IMG_WEBP, IG_IMG_HEIF,
                                               IG_IMG_AVIF};

    for (size_t i = 0; i < IG_ARRAY_LEN(types); i++)
        if (strcmp(ig_image_ext(types[i]), ext) == 0)
            return ig_image_mime(types[i]);
    return "application/octet-stream";
}

/* RFC 3986 unreserved characters stay, everything else is %XX (SigV4's UriEncode). Returns
 * the length it needed (the output is cut, NUL-terminated, when n is too small). */
IG_STATIC size_t ig_s3_uri_encode(char *out, size_t n, const char *s, bool keep_slash)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t k = 0, w = 0; /* needed; written (stops at the first piece that does not fit) */
    bool full = n == 0;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        size_t need = plain ? 1 : 3;

        if (!full && w + need < n) {
            if (plain) {
                out[w] = (char)c;
            } else {
                out[w] = '%';
                out[w + 1] = hexd[c >> 4];
                out[w + 2] = hexd[c & 15];
            }
            w += need;
        } else {
            full = true;
        }
        k += need;
    }
    if (n)
        out[w] = '\0';
    return k;
}

/* The request path of an object: base + "/" + prefix + id + "." + ext (all safe characters,
 * checked at open, so the path is its own canonical form). */
static void object_path(const struct s3 *s, const char *id, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/%s%s.%s", s->base, s->prefix, id, ext);
}

/* ---- one request ------------------------------------------------------------------------- */

enum sink { SINK_NONE, SINK_BUF, SINK_FD };

struct xfer {
    /* upload */
    const unsigned char *up;
    size_t uplen, upoff;
    /* download */
    enum sink sink;
    struct ig_buf *buf;   /* SINK_BUF */
    int fd;               /* SINK_FD */
    int64_t got, max;     /* bytes of a 2xx body so far; its cap */
    bool toobig, ioerr;
    CURL *h;
    /* the body of an error answer, for the message */
    char err[ERRBODY_MAX + 1];
    size_t errlen;
};

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb, left = x->uplen - x->upoff;

    if (n > left)
        n = left;
    if (n)
        memcpy(p, x->up + x->upoff, n);
    x->upoff += n;
    return n;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
    struct xfer *x = arg;

    if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->uplen)
        return CURL_SEEKFUNC_FAIL;
    x->upoff = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static int write_fd(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        size_t room = ERRBODY_MAX - x->errlen;

        if (n < room)
            room = n;
        memcpy(x->err + x->errlen, p, room);
        x->errlen += room;
        x->err[x->errlen] = '\0';
        return n;
    }
    if (x->sink == SINK_NONE)
        return n;
    if (x->got + (int64_t)n > x->max) {
        x->toobig = true;
        return 0; /* aborts the transfer */
    }
    if (x->sink == SINK_BUF ? ig_buf_add(x->buf, p, n) != IG_OK : write_fd(x->fd, p, n) != 0) {
        x->ioerr = true;
        return 0;
    }
    x->got += (int64_t)n;
    return n;
}

/* The text of <tag>...</tag> in an S3 error body ("" when absent). */
static void xml_field(const char *body, const char *tag, char *out, size_t n)
{
    char open[32], close[32];
    const char *a, *b;

    out[0] = '\0';
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    a = strstr(body, open);
    if (!a)
        return;
    a += strlen(open);
    b = strstr(a, close);
    if (!b)
        return;
    snprintf(out, n, "%.*s", (int)(b - a), a);
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
}

static CURL *handle_get(struct s3 *s)
{
    CURL *h = NULL;

    pthread_mutex_lock(&s->mu);
    if (s->nidle > 0)
        h = s->idle[--s->nidle];
    pthread_mutex_unlock(&s->mu);
    if (!h) {
        h = curl_easy_init();
        if (!h)
            IG_BUG("curl_easy_init failed");
    }
    return h;
}

static void handle_put(struct s3 *s, CURL *h)
{
    curl_easy_reset(h); /* keeps the connections, DNS and TLS session caches */
    pthread_mutex_lock(&s->mu);
    if (s->nidle < MAX_IDLE_HANDLES) {
        s->idle[s->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_cleanup(h);
}

struct req {
    const char *method; /* "PUT", "GET", "HEAD", "DELETE" */
    const char *path;   /* request path, already encoded */
    const char *content_sha256;
    const char *content_type;
    struct xfer *x;
    /* out */
    long status;
    int64_t length;     /* Content-Length of the answer (HEAD), -1 when unknown */
    char detail[400];   /* what went wrong, for logs and errbufs (no secrets) */
};

static void set_options(struct s3 *s, CURL *h, struct req *r, const char *url,
                        struct curl_slist *hdrs, long timeout_ms)
{
    struct xfer *x = r->x;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* no proxy from the environment */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "imagegate");
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s->access);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->uplen);
    } else if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
}

static bool transient(CURLcode rc, long status)
{
    if (rc == CURLE_OK)
        return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
           rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
           rc == CURLE_PARTIAL_FILE || rc == CURLE_OPERATION_TIMEDOUT;
}

/* Restart a download sink for another attempt. */
static bool sink_rewind(struct xfer *x)
{
    x->got = 0;
    x->errlen = 0;
    x->err[0] = '\0';
    x->upoff = 0;
    if (x->sink == SINK_BUF)
        ig_buf_reset(x->buf);
    else if (x->sink == SINK_FD && (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0))
        return false;
    return true;
}

/* Run one request with retries within the operation's budget. IG_OK means a 2xx answer
 * (the body in the sink); otherwise r->status and r->detail say what happened. */
static enum ig_err perform(struct s3 *s, struct req *r)
{
    struct xfer *x = r->x;
    char url[1200], hsha[128], htype[128];
    struct curl_slist *hdrs = NULL;
    int64_t deadline = ig_mono_ms() + s->timeout_ms;
    enum ig_err err = IG_E_IO;
    CURL *h = handle_get(s);

    snprintf(url, sizeof(url), "%s://%s%s", s->scheme, s->authority, r->path);
    snprintf(hsha, sizeof(hsha), "x-amz-content-sha256: %s",
             r->content_sha256 ? r->content_sha256 : EMPTY_SHA256);
    hdrs = curl_slist_append(hdrs, hsha);
    if (r->content_type) {
        snprintf(htype, sizeof(htype), "Content-Type: %s", r->content_type);
        hdrs = curl_slist_append(hdrs, htype);
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    if (!hdrs)
        IG_BUG("out of memory");
    x->h = h;
    r->status = 0;
    r->length = -1;
    for (int attempt = 1;; attempt++) {
        int64_t left = deadline - ig_mono_ms();
        CURLcode rc;
        curl_off_t cl = -1;

        if (attempt > 1 && !sink_rewind(x)) {
            snprintf(r->detail, sizeof(r->detail), "cannot rewind the download file");
            break;
        }
        x->toobig = x->ioerr = false;
        set_options(s, h, r, url, hdrs, left > 1 ? (long)left : 1L);
        rc = curl_easy_perform(h);
        r->status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        if (x->toobig) {
            snprintf(r->detail, sizeof(r->detail), "the object is larger than %lld bytes",
                     (long long)x->max);
            err = IG_E_TOOBIG;
            break;
        }
        if (x->ioerr) {
            snprintf(r->detail, sizeof(r->detail), "could not keep the downloaded bytes: %s",
                     strerror(errno));
            break;
        }
        if (rc == CURLE_OK && r->status >= 200 && r->status <= 299) {
            if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
                r->length = cl;
            err = IG_OK;
            break;
        }
        if (rc != CURLE_OK) {
            snprintf(r->detail, sizeof(r->detail), "%s", curl_easy_strerror(rc));
        } else {
            char code[64], msg[256];

            xml_field(x->err, "Code", code, sizeof(code));
            xml_field(x->err, "Message", msg, sizeof(msg));
            snprintf(r->detail, sizeof(r->detail), "HTTP %ld%s%s%s%s", r->status,
                     code[0] ? " " : "", code, msg[0] ? ": " : "", msg);
        }
        left = deadline - ig_mono_ms();
        if (attempt >= MAX_ATTEMPTS || !transient(rc, r->status) || left < 50)
            break;
        {
            int64_t wait = 100LL << (2 * (attempt - 1)); /* 100 ms, 400 ms */
            struct timespec ts;

            if (wait > left / 2)
                wait = left / 2;
            ts.tv_sec = (time_t)(wait / 1000);
            ts.tv_nsec = (long)(wait % 1000) * 1000000L;
            nanosleep(&ts, NULL);
        }
    }
    curl_slist_free_all(hdrs);
    handle_put(s, h);
    return err;
}

/* A request that failed: IG_E_NOT_FOUND for a missing object (404 but not NoSuchBucket),
 * else err, with a warning naming the operation. */
static enum ig_err failed(const struct req *r, enum ig_err err, const char *key)
{
    if (err == IG_E_IO && r->status == 404 && !strstr(r->x->err, "NoSuchBucket"))
        return IG_E_NOT_FOUND;
    ig_warn("blob s3: %s %.80s failed: %s", r->method, key, r->detail);
    return err;
}

/* ---- ops --------------------------------------------------------------------------------- */

static enum ig_err s3_put(struct ig_blob *b, const void *data, size_t len, const char *ext,
                          char *id)
{
    struct s3 *s = b->ctx;
    char hex[IG_SHA256_HEX_LEN + 1], path[1024];
    struct xfer x = {.sink = SINK_NONE, .up = data, .uplen = len};
    struct req r = {.method = "PUT", .path = path, .content_sha256 = hex, .x = &x};
    enum ig_err err;

    if (!ig_blob_ext_ok(ext) || (!data && len))
        return IG_E_INVALID;
    ig_sha256_hex(data ? data : "", len, hex);
    object_path(s, hex, ext, path, sizeof(path));
    r.content_type = mime_of(ext);
    err = perform(s, &r);
    if (err) {
        ig_warn("blob s3: PUT %s.%s failed: %s", hex, ext, r.detail);
        return err == IG_E_TOOBIG ? IG_E_IO : err;
    }
    memcpy(id, hex, sizeof(hex));
    return IG_OK;
}

static enum ig_err s3_stat(struct ig_blob *b, const char *id, const char *ext, int64_t *size)
{
    struct s3 *s = b->ctx;
    char path[1024];
    struct xfer x = {.sink = SINK_NONE};
    struct req r = {.method = "HEAD", .path = path, .x = &x};
    enum ig_err err;

    if (!ig_blob_id_ok(id) || !ig_blob_ext_ok(ext))
        return IG_E_INVALID;
    object_path(s, id, ext, path, sizeof(path));
    err = perform(s, &r);
    if (err)
        return failed(&r, err, id);
    if (r.length < 0) {
        ig_warn("blob s3: HEAD %.12s… answered without a Content-Length", id);
        return IG_E_IO;
    }
    *size = r.length;
    return IG_OK;
}

static enum ig_err s3_open_fd(struct ig_blob *b, const char *id, const char *ext, int *pfd,
                              int64_t *size)
{
    struct s3 *s = b->ctx;
    char path[1024];
    struct xfer x = {.sink = SINK_FD, .max = s->max_bytes};
    struct req r = {.method = "GET", .path = path, .x = &x};
    enum ig_err err;
    int fd;

    if (!ig_blob_id_ok(id) || !ig_blob_ext_ok(ext))
        return IG_E_INVALID;
    object_path(s, id, ext, path, sizeof(path));
    fd = memfd_create("imagegate-blob", MFD_CLOEXEC);
    if (fd < 0) {
        ig_warn("blob s3: memfd_create: %s", strerror(errno));
        return IG_E_IO;
    }
    x.fd = fd;
    err = perform(s, &r);
    if (err) {
        close(fd);
        return failed(&r, err, id);
    }
    if (r.length >= 0 && r.length != x.got) {
        ig_warn("blob s3: GET %.12s… gave %lld of %lld bytes", id, (long long)x.got,
                (long long)r.length);
        close(fd);
        return IG_E_IO;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return IG_E_IO;
    }
    *pfd = fd;
    *size = x.got;
    return IG_OK;
}

static enum ig_err s3_get(struct ig_blob *b, const char *id, const char *ext, size_t max,
                          unsigned char **data, size_t *len)
{
    struct s3 *s = b->ctx;
    char path[1024];
    struct ig_buf buf;
    struct xfer x = {.sink = SINK_BUF, .buf = &buf};
    struct req r = {.method = "GET", .path = path, .x = &x};
    enum ig_err err;
    size_t n = 0;

    if (!ig_blob_id_ok(id) || !ig_blob_ext_ok(ext))
        return IG_E_INVALID;
    x.max = max < (uint64_t)s->max_bytes ? (int64_t)max : s->max_bytes;
    ig_buf_init(&buf, (size_t)x.max);
    object_path(s, id, ext, path, sizeof(path));
    err = perform(s, &r);
    if (err) {
        ig_buf_release(&buf);
        return err == IG_E_TOOBIG ? IG_E_TOOBIG : failed(&r, err, id);
    }
    if (r.length >= 0 && r.length != x.got) {
        ig_buf_release(&buf);
        return IG_E_IO;
    }
    *data = (unsigned char *)ig_buf_detach(&buf, &n);
    if (!*data)
        *data = ig_xcalloc(1, 1);
    *len = n;
    return IG_OK;
}

static enum ig_err s3_del(struct ig_blob *b, const char *id, const char *ext)
{
    struct s3 *s = b->ctx;
    char path[1024];
    struct xfer x = {.sink = SINK_NONE};
    struct req r = {.method = "DELETE", .path = path, .x = &x};
    enum ig_err err;

    if (!ig_blob_id_ok(id) || !ig_blob_ext_ok(ext))
        return IG_E_INVALID;
    object_path(s, id, ext, path, sizeof(path));
    err = perform(s, &r);
    if (err) {
        err = failed(&r, err, id);
        return err == IG_E_NOT_FOUND ? IG_OK : err; /* gone already */
    }
    return IG_OK;
}

/* ---- presigned URLs ---------------------------------------------------------------------- */

static void hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int n = 0;

    if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n) ||
        n != 32)
        IG_BUG("HMAC-SHA256 failed");
}

/* A SigV4 presigned GET URL (query-string authentication, UNSIGNED-PAYLOAD, only the host
 * header signed) at time unix_s, valid ttl_s seconds. path is the encoded request path. */
IG_STATIC void ig_s3_presign_at(char *url, size_t n, const char *scheme, const char *authority,
                                const char *path, const char *region, const char *access,
                                const char *secret, int64_t unix_s, int ttl_s)
{
    char date[20], day[10], scope[128], cred[320], cred_enc[960], query[1200], hash[65];
    char creq[3000], sts[400], secret4[300], sig[65];
    unsigned char k[32];
    struct tm tm;
    time_t t = (time_t)unix_s;

    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
    strftime(day, sizeof(day), "%Y%m%d", &tm);
    snprintf(scope, sizeof(scope), "%s/%s/s3/aws4_request", day, region);
    snprintf(cred, sizeof(cred), "%s/%s", access, scope);
    ig_s3_uri_encode(cred_enc, sizeof(cred_enc), cred, false);
    /* Already in the canonical order: parameters sorted by name. */
    snprintf(query, sizeof(query),
             "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s"
             "&X-Amz-Expires=%d&X-Amz-SignedHeaders=host",
             cred_enc, date, ttl_s);
    snprintf(creq, sizeof(creq), "GET\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", path, query,
             authority);
    ig_sha256_hex(creq, strlen(creq), hash);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope, hash);
    snprintf(secret4, sizeof(secret4), "AWS4%s", secret);
    hmac256(secret4, strlen(secret4), day, k);
    hmac256(k, sizeof(k), region, k);
    hmac256(k, sizeof(k), "s3", k);
    hmac256(k, sizeof(k), "aws4_request", k);
    hmac256(k, sizeof(k), sts, k);
    ig_hex_encode(k, sizeof(k), sig);
    OPENSSL_cleanse(secret4, sizeof(secret4));
    OPENSSL_cleanse(k, sizeof(k));
    snprintf(url, n, "%s://%s%s?%s&X-Amz-Signature=%s", scheme, authority, path, query, sig);
}

static bool s3_presign(struct ig_blob *b, const char *id, const char *ext, char *url, size_t n)
{
    struct s3 *s = b->ctx;
    char path[1024];
    struct timespec ts;

    if (s->presign_ttl_s <= 0 || !ig_blob_id_ok(id) || !ig_blob_ext_ok(ext))
        return false;
    object_path(s, id, ext, path, sizeof(path));
    /* The real clock, not ig_now_ms(): the server checks the signature's time against its own. */
    clock_gettime(CLOCK_REALTIME, &ts);
    ig_s3_presign_at(url, n, s->scheme, s->authority, path, s->region, s->access, s->secret,
                     (int64_t)ts.tv_sec, s->presign_ttl_s);
    return true;
}

/* ---- asynchronous reads ------------------------------------------------------------------ */

struct aread {
    struct ig_blob *b;
    char id[IG_SHA256_HEX_LEN + 1], ext[8];
    bool body;
    struct ig_mailbox *mb;
    ig_blob_read_fn *done;
    void *arg;
    enum ig_err err;
    int fd;
    int64_t size;
};

static void aread_run(struct aread *a)
{
    a->fd = -1;
    a->size = 0;
    a->err = a->body ? s3_open_fd(a->b, a->id, a->ext, &a->fd, &a->size)
                     : s3_stat(a->b, a->id, a->ext, &a->size);
}

static void aread_deliver(void *arg)
{
    struct aread *a = arg;

    a->done(a->arg, a->err, a->fd, a->size);
    free(a);
}

static void aread_work(void *arg)
{
    struct aread *a = arg;
    struct s3 *s = a->b->ctx;

    aread_run(a);
    ig_mailbox_post(a->mb, aread_deliver, a);
    /* posted: from here the mailbox's owner is responsible for it */
    pthread_mutex_lock(&s->mu);
    if (--s->inflight == 0)
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void s3_open_fd_async(struct ig_blob *b, const char *id, const char *ext, bool body,
                             struct ig_mailbox *mb, ig_blob_read_fn *done, void *arg)
{
    struct s3 *s = b->ctx;
    struct aread *a;
    bool inline_run;

    if (!ig_blob_id_ok(id) || !ig_blob_ext_ok(ext)) {
        done(arg, IG_E_INVALID, -1, 0);
        return;
    }
    a = ig_xcalloc(1, sizeof(*a));
    a->b = b;
    memcpy(a->id, id, sizeof(a->id));
    snprintf(a->ext, sizeof(a->ext), "%s", ext);
    a->body = body;
    a->mb = mb;
    a->done = done;
    a->arg = arg;
    pthread_mutex_lock(&s->mu);
    inline_run = s->quiesced;
    if (!inline_run)
        s->inflight++;
    pthread_mutex_unlock(&s->mu);
    if (inline_run) { /* shutting down: blocks this loop, within the operation's timeout */
        aread_run(a);
        aread_deliver(a);
        return;
    }
    ig_pool_submit(s->io, aread_work, NULL, NULL, a);
}

static void s3_quiesce(struct ig_blob *b)
{
    struct s3 *s = b->ctx;

    pthread_mutex_lock(&s->mu);
    s->quiesced = true;
    while (s->inflight > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* ---- open and close ---------------------------------------------------------------------- */

static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);

    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return false;
    }
    return b[0] != '.' && b[0] != '-' && b[n - 1] != '.' && b[n - 1] != '-' && !strstr(b, "..");
}

/* Prefixes are folders of safe characters: no empty, "." or ".." segment, no leading '/'. */
static bool prefix_ok(const char *p)
{
    const char *seg = p;

    if (strlen(p) > 200)
        return false;
    for (const char *c = p;; c++) {
        if (*c == '/' || *c == '\0') {
            size_t len = (size_t)(c - seg);

            if (*c == '\0' && len == 0)
                return true; /* "" or a trailing '/' */
            if (len == 0 || (len == 1 && seg[0] == '.') ||
                (len == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*c == '\0')
                return true;
            seg = c + 1;
            continue;
        }
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            return false;
    }
}

static bool region_ok(const char *r)
{
    if (!*r || strlen(r) > 40)
        return false;
    for (; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-'))
            return false;
    return true;
}

static bool key_chars_ok(const char *k, bool access)
{
    if (!*k || strlen(k) > 200)
        return false;
    for (; *k; k++)
        if ((unsigned char)*k <= 0x20 || (unsigned char)*k >= 0x7f || (access && *k == '/'))
            return false;
    return true;
}

/* Split http(s)://host[:port][/path] into s->scheme, host (with brackets for IPv6), port
 * ("" when absent or the scheme's default) and path (no trailing '/'). */
static enum ig_err parse_endpoint(struct s3 *s, const char *ep, char *host, size_t hn, char *port,
                                  size_t pn, char *path, size_t pathn, struct ig_errbuf *eb)
{
    const char *h, *hend, *pend;
    size_t len;

    if (strncmp(ep, "https://", 8) == 0) {
        snprintf(s->scheme, sizeof(s->scheme), "https");
        h = ep + 8;
    } else if (strncmp(ep, "http://", 7) == 0) {
        snprintf(s->scheme, sizeof(s->scheme), "http");
        h = ep + 7;
    } else {
        return ig_fail(eb, IG_E_INVALID, "s3-endpoint",
                       "s3-endpoint must start with http:// or https://, got '%s'", ep);
    }
    pend = h + strcspn(h, "/?#");
    if (*pend == '?' || *pend == '#' || strchr(h, '?') || strchr(h, '#') || memchr(h, '@', (size_t)(pend - h)))
        return ig_fail(eb, IG_E_INVALID, "s3-endpoint",
                       "s3-endpoint must be scheme://host[:port][/path], without user, query or "
                       "fragment");
    if (*h == '[') {
        hend = memchr(h, ']', (size_t)(pend - h));
        if (!hend)
            return ig_fail(eb, IG_E_INVALID, "s3-endpoint", "s3-endpoint: unclosed '['");
        hend++;
    } else {
        hend = h;
        while (hend < pend && *hend != ':')
            hend++;
    }
    len = (size_t)(hend - h);
    if (len == 0 || len >= hn)
        return ig_fail(eb, IG_E_INVALID, "s3-endpoint", "s3-endpoint has no usable host");
    memcpy(host, h, len);
    host[len] = '\0';
    for (const char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.' || *c == '[' || *c == ']' || *c == ':'))
            return ig_fail(eb, IG_E_INVALID, "s3-endpoint", "s3-endpoint: bad host '%s'", host);
    port[0] = '\0';
    if (hend < pend) {
        long v;
        char *end;

        if (*hend != ':')
            return ig_fail(eb, IG_E_INVALID, "s3-endpoint", "s3-endpoint: bad host");
        v = strtol(hend + 1, &end, 10);
        if (end != pend || v < 1 || v > 65535)
            return ig_fail(eb, IG_E_INVALID, "s3-endpoint", "s3-endpoint: bad port");
        if (!((v == 443 && strcmp(s->scheme, "https") == 0) ||
              (v == 80 && strcmp(s->scheme, "http") == 0)))
            snprintf(port, pn, ":%ld", v);
    }
    len = strlen(pend);
    while (len > 0 && pend[len - 1] == '/')
        len--;
    if (len >= pathn)
        return ig_fail(eb, IG_E_INVALID, "s3-endpoint", "s3-endpoint: path too long");
    memcpy(path, pend, len);
    path[len] = '\0';
    if (path[0] && !prefix_ok(path + 1))
        return ig_fail(eb, IG_E_INVALID, "s3-endpoint",
                       "s3-endpoint: the path may hold only letters, digits, '-', '_', '.' and '/'");
    return IG_OK;
}

static bool is_ip_literal(const char *host)
{
    if (host[0] == '[')
        return true;
    for (const char *c = host; *c; c++)
        if (!((*c >= '0' && *c <= '9') || *c == '.'))
            return false;
    return true;
}

static void s3_free(struct s3 *s)
{
    if (!s)
        return;
    ig_pool_free(s->io);
    for (int i = 0; i < s->nidle; i++)
        curl_easy_cleanup(s->idle[i]);
    if (s->secret) {
        OPENSSL_cleanse(s->secret, strlen(s->secret));
        free(s->secret);
    }
    free(s->access);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* PUT, GET and DELETE of an object only this process names: the credentials, the bucket,
 * the permissions and the signing all work, or open says which does not. */
static enum ig_err probe(struct ig_blob *b, const char *where, struct ig_errbuf *eb)
{
    struct s3 *s = b->ctx;
    unsigned char rnd[8];
    char path[1024], name[40], hex[IG_SHA256_HEX_LEN + 1], body[64];
    struct ig_buf buf;
    struct xfer x = {.sink = SINK_NONE};
    struct req r = {.path = path, .x = &x};
    enum ig_err err;

    ig_random_bytes(rnd, sizeof(rnd));
    ig_hex_encode(rnd, sizeof(rnd), name);
    snprintf(body, sizeof(body), "imagegate probe %s\n", name);
    ig_sha256_hex(body, strlen(body), hex);
    snprintf(path, sizeof(path), "%s/%simagegate-probe-%s.txt", s->base, s->prefix, name);

    r.method = "PUT";
    r.content_sha256 = hex;
    r.content_type = "text/plain";
    x.up = (const unsigned char *)body;
    x.uplen = strlen(body);
    err = perform(s, &r);
    if (err)
        return ig_fail(eb, IG_E_IO, "s3", "s3: cannot write to %s: PUT: %s%s", where, r.detail,
                       r.status == 403 ? " (check --s3-access-key, --s3-secret-key, --s3-region "
                                         "and the key's permissions)"
                       : r.status == 404 ? " (does the bucket exist?)"
                                         : "");

    memset(&x, 0, sizeof(x));
    ig_buf_init(&buf, 1024);
    x.sink = SINK_BUF;
    x.buf = &buf;
    x.max = 1024;
    r.method = "GET";
    r.content_sha256 = NULL;
    r.content_type = NULL;
    err = perform(s, &r);
    if (!err && (buf.len != strlen(body) || memcmp(buf.data, body, buf.len) != 0)) {
        snprintf(r.detail, sizeof(r.detail), "it answered other bytes than were stored");
        err = IG_E_IO;
    }
    ig_buf_release(&buf);
    if (err) {
        ig_fail(eb, IG_E_IO, "s3", "s3: cannot read back from %s: GET: %s", where, r.detail);
        goto out;
    }
out:
    memset(&x, 0, sizeof(x));
    x.sink = SINK_NONE;
    r.method = "DELETE";
    if (perform(s, &r) && !err)
        err = ig_fail(eb, IG_E_IO, "s3", "s3: cannot delete from %s: DELETE: %s", where,
                      r.detail);
    return err;
}

static enum ig_err s3_open(struct ig_blob *b, const char *root, struct ig_errbuf *eb)
{
    const struct ig_blob_s3_opts *o = b->ctx; /* set by ig_blob_open_s3, replaced below */
    struct s3 *s;
    char host[256], port[8], epath[256], where[1000];
    enum ig_err err;

    b->ctx = NULL;
    if (!o || !o->endpoint || !o->endpoint[0])
        return ig_fail(eb, IG_E_INVALID, "s3-endpoint",
                       "the s3 blob backend needs --s3-endpoint (e.g. https://s3.us-east-1."
                       "amazonaws.com or http://127.0.0.1:9000)");
    if (!o->bucket || !bucket_ok(o->bucket))
        return ig_fail(eb, IG_E_INVALID, "s3-bucket",
                       "--s3-bucket must be 3-63 characters of a-z, 0-9, '.' and '-', got '%s'",
                       o->bucket ? o->bucket : "");
    if (!o->region || !region_ok(o->region))
        return ig_fail(eb, IG_E_INVALID, "s3-region",
                       "--s3-region must be a region name like us-east-1, got '%s'",
                       o->region ? o->region : "");
    if (!o->prefix || !prefix_ok(o->prefix))
        return ig_fail(eb, IG_E_INVALID, "s3-prefix",
                       "--s3-prefix may hold only letters, digits, '-', '_', '.' and '/' (no "
                       "leading '/', no empty, '.' or '..' part)");
    if (!o->access_key || !key_chars_ok(o->access_key, true))
        return ig_fail(eb, IG_E_INVALID, "s3-access-key",
                       "--s3-access-key (or IMAGEGATE_S3_ACCESS_KEY) is missing or malformed");
    if (!o->secret_key || !key_chars_ok(o->secret_key, false))
        return ig_fail(eb, IG_E_INVALID, "s3-secret-key",
                       "--s3-secret-key (or IMAGEGATE_S3_SECRET_KEY) is missing or malformed");
    if (o->presign_ttl_s < 0 || o->presign_ttl_s > 604800)
        return ig_fail(eb, IG_E_INVALID, "s3-presign-ttl",
                       "--s3-presign-ttl must be 0 (proxy) to 604800 seconds (7 days, the "
                       "longest SigV4 allows)");
    if (o->max_bytes < 1 || o->connect_timeout_ms < 1 || o->timeout_ms < 1)
        return ig_fail(eb, IG_E_INVALID, "s3", "s3: caps and timeouts must be positive");

    s = ig_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    err = parse_endpoint(s, o->endpoint, host, sizeof(host), port, sizeof(port), epath,
                         sizeof(epath), eb);
    if (err)
        goto fail;
    if (!o->path_style && is_ip_literal(host)) {
        err = ig_fail(eb, IG_E_INVALID, "s3-path-style",
                      "s3-endpoint '%s' is an IP address, which cannot carry the bucket as a "
                      "host name: set --s3-path-style",
                      o->endpoint);
        goto fail;
    }
    if (o->path_style) {
        snprintf(s->authority, sizeof(s->authority), "%s%s", host, port);
        snprintf(s->base, sizeof(s->base), "%s/%s", epath, o->bucket);
    } else {
        snprintf(s->authority, sizeof(s->authority), "%s.%s%s", o->bucket, host, port);
        snprintf(s->base, sizeof(s->base), "%s", epath);
    }
    snprintf(s->region, sizeof(s->region), "%s", o->region);
    snprintf(s->prefix, sizeof(s->prefix), "%s%s", o->prefix,
             o->prefix[0] && o->prefix[strlen(o->prefix) - 1] != '/' ? "/" : "");
    snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", o->region);
    s->access = ig_xstrdup(o->access_key);
    s->secret = ig_xstrdup(o->secret_key);
    s->presign_ttl_s = o->presign_ttl_s;
    s->max_bytes = o->max_bytes;
    s->connect_timeout_ms = o->connect_timeout_ms;
    s->timeout_ms = o->timeout_ms;
    s->io = ig_pool_new(o->io_threads > 0 ? o->io_threads : 4);
    b->ctx = s;
    snprintf(where, sizeof(where), "bucket '%s' at %s://%s%s (%s style)", o->bucket, s->scheme,
             s->authority, s->base, o->path_style ? "path" : "virtual-host");
    if (o->probe) {
        err = probe(b, where, eb);
        if (err) {
            b->ctx = NULL;
            goto fail;
        }
    }
    ig_info("blob s3: %s, prefix '%s', %s", where, s->prefix,
            s->presign_ttl_s > 0 ? "media by presigned URLs" : "media proxied");
    return IG_OK;
fail:
    s3_free(s);
    return err;
}

static void s3_close(struct ig_blob *b)
{
    s3_free(b->ctx);
    b->ctx = NULL;
}

const struct ig_blob_ops ig_blob_s3_ops = {
    .name = "s3",
    .abi_version = 2,
    .open = s3_open,
    .close = s3_close,
    .put = s3_put,
    .open_fd = s3_open_fd,
    .get = s3_get,
    .del = s3_del,
    .stat = s3_stat,
    .presign = s3_presign,
    .open_fd_async = s3_open_fd_async,
    .quiesce = s3_quiesce,
};

enum ig_err ig_blob_open_s3(struct ig_blob **out, const struct ig_blob_s3_opts *opts,
                            struct ig_errbuf *eb)
{
    struct ig_blob *b = ig_xcalloc(1, sizeof(*b));
    enum ig_err err;

    b->ops = &ig_blob_s3_ops;
    b->ctx = (void *)opts; /* the options reach open this way; open replaces ctx */
    err = b->ops->open(b, NULL, eb);
    if (err) {
        free(b);
        return err;
    }
    *out = b;
    return IG_OK;
}
