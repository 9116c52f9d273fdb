/* blob.h: content-addressed storage of result images, as an ops table behind wrappers.
 *
 * A blob is named by the SHA-256 of its bytes plus an extension ("<64 hex>.png"). put is
 * durable when it returns (temp file, fsync, rename, fsync of the directory). Safe to call
 * from any thread. Backends: "fs" (files under <data>/blobs/ab/cd/<hash>.<ext>); an
 * S3-compatible backend implements the same ops. */
#ifndef IG_BLOB_H
#define IG_BLOB_H

#include "base/base.h"

struct ig_blob;

struct ig_blob_ops {
    const char *name;
    int abi_version; /* 1 */
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
};

struct ig_blob {
    const struct ig_blob_ops *ops;
    void *ctx;
};

enum ig_err ig_blob_open_fs(struct ig_blob **out, const char *root, struct ig_errbuf *eb);
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

extern const struct ig_blob_ops ig_blob_fs_ops;

#endif
