/* blob.h: content-addressed storage of result images, as an ops table behind wrappers.
 *
 * A blob is named by the SHA-256 of its bytes plus an extension ("<64 hex>.png"). put is
 * durable when it returns and idempotent (the same bytes give the same name). Safe to call
 * from any thread. Backends:
 *   - "fs" (blob_fs.c): files under <data>/blobs/ab/cd/<hash>.<ext>; put is durable after a
 *     temp file, fsync, rename and fsync of the directory.
 *   - "s3" (blob_s3.c): objects <prefix><hash>.<ext> in a bucket of any S3-compatible server,
 *     signed with AWS Signature V4; put is durable when the server answered 200 to the PUT.
 *
 * put, open_fd, get, stat and del block: call them from pool threads or the writer thread,
 * never from an event loop, except where a backend says it does no network I/O (fs). Event
 * loops read with ig_blob_open_fd_async() and link with ig_blob_presign(). */
#ifndef IG_BLOB_H
#define IG_BLOB_H

#include "base/base.h"

struct ig_blob;

/* The result of an asynchronous read: fd (the caller closes it; -1 when only the size was
 * asked for, or on error) and size. Runs on the loop of the mailbox given. */
typedef void ig_blob_read_fn(void *arg, enum ig_err err, int fd, int64_t size);

struct ig_blob_ops {
    const char *name;
    int abi_version; /* 1: open..del; 2: adds stat, presign, open_fd_async, quiesce */
    enum ig_err (*open)(struct ig_blob *b, const char *root, struct ig_errbuf *eb);
    void (*close)(struct ig_blob *b);
    /* Store bytes; writes the hex SHA-256 into id (65 bytes). Idempotent. */
    enum ig_err (*put)(struct ig_blob *b, const void *data, size_t len, const char *ext, char *id);
    /* Open for reading: a file descriptor the caller closes, and its size. IG_E_NOT_FOUND. */
    enum ig_err (*open_fd)(struct ig_blob *b, const char *id, const char *ext, int *fd,
                           int64_t *size);
    /* Read the whole blob into memory (capped at max bytes). */
    enum ig_err (*get)(struct ig_blob *b, const char *id, const char *ext, size_t max,
                       unsigned char **data, size_t *len);
    /* Delete; IG_OK when already absent. */
    enum ig_err (*del)(struct ig_blob *b, const char *id, const char *ext);
    /* ---- abi_version 2; each may be NULL (the wrappers below supply the default) ---- */
    /* Whether the blob exists and its size, without reading it. IG_E_NOT_FOUND. */
    enum ig_err (*stat)(struct ig_blob *b, const char *id, const char *ext, int64_t *size);
    /* A URL a client may GET the blob at directly (time-limited); false when the backend
     * does not hand out URLs. Never blocks (no I/O). */
    bool (*presign)(struct ig_blob *b, const char *id, const char *ext, char *url, size_t n);
    /* open_fd (body true) or stat (body false) off the calling loop: done(arg, ...) runs
     * later on mb's loop. */
    void (*open_fd_async)(struct ig_blob *b, const char *id, const char *ext, bool body,
                          struct ig_mailbox *mb, ig_blob_read_fn *done, void *arg);
    /* Wait until every asynchronous read under way has posted its result; reads asked for
     * afterwards run in the caller's thread. For shutdown, before the loops' mailboxes go. */
    void (*quiesce)(struct ig_blob *b);
};

struct ig_blob {
    const struct ig_blob_ops *ops;
    void *ctx;
};

/* The "s3" backend's settings (strings borrowed during ig_blob_open_s3 only). */
struct ig_blob_s3_opts {
    const char *endpoint;   /* http(s)://host[:port][/path], the S3 API of the server */
    const char *region;     /* signing region, e.g. "us-east-1" */
    const char *bucket;
    const char *prefix;     /* key prefix, "" or a folder ("results/"; a '/' is added) */
    const char *access_key;
    const char *secret_key; /* never logged */
    bool path_style;        /* {endpoint}/{bucket}/{key} instead of {bucket}.{host}/{key} */
    int presign_ttl_s;      /* > 0: ig_blob_presign hands out URLs valid this long */
    int64_t max_bytes;      /* largest object open_fd reads (IG_E_TOOBIG above) */
    int connect_timeout_ms; /* per connection */
    int timeout_ms;         /* per operation, retries included */
    int io_threads;         /* threads for ig_blob_open_fd_async */
    bool probe;             /* at open: PUT, GET and DELETE a probe object */
};

enum ig_err ig_blob_open_fs(struct ig_blob **out, const char *root, struct ig_errbuf *eb);
/* A blob's name parts: 64 lower-case hex digits; 1-7 of [a-z0-9]. */
bool ig_blob_id_ok(const char *id);
bool ig_blob_ext_ok(const char *ext);
/* Connect to the bucket; with opts->probe, proves that put, get and del work (credentials,
 * permissions, signing) and fails with what the server said otherwise. */
enum ig_err ig_blob_open_s3(struct ig_blob **out, const struct ig_blob_s3_opts *opts,
                            struct ig_errbuf *eb);
void ig_blob_close(struct ig_blob *b);

static inline enum ig_err ig_blob_put(struct ig_blob *b, const void *data, size_t len,
                                      const char *ext, char *id)
{
    return b->ops->put(b, data, len, ext, id);
}
static inline enum ig_err ig_blob_open_fd(struct ig_blob *b, const char *id, const char *ext,
                                          int *fd, int64_t *size)
{
    return b->ops->open_fd(b, id, ext, fd, size);
}
static inline enum ig_err ig_blob_get(struct ig_blob *b, const char *id, const char *ext,
                                      size_t max, unsigned char **data, size_t *len)
{
    return b->ops->get(b, id, ext, max, data, len);
}
static inline enum ig_err ig_blob_del(struct ig_blob *b, const char *id, const char *ext)
{
    return b->ops->del(b, id, ext);
}
/* Existence and size; backends without stat open and close the blob. */
enum ig_err ig_blob_stat(struct ig_blob *b, const char *id, const char *ext, int64_t *size);
/* A direct URL for clients (see the op); false for backends that serve through imagegate. */
bool ig_blob_presign(struct ig_blob *b, const char *id, const char *ext, char *url, size_t n);
/* Read without blocking the calling loop. Backends without the op open the blob in the
 * caller's thread (fs: a local open) and call done before returning; either way done runs
 * exactly once, on mb's loop. With body false, fd is -1 and only the size is known. */
void ig_blob_open_fd_async(struct ig_blob *b, const char *id, const char *ext, bool body,
                           struct ig_mailbox *mb, ig_blob_read_fn *done, void *arg);
/* See the op; a no-op for backends without asynchronous reads. */
void ig_blob_quiesce(struct ig_blob *b);

extern const struct ig_blob_ops ig_blob_fs_ops;
extern const struct ig_blob_ops ig_blob_s3_ops;

#endif
