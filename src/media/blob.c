/* blob.c: opening and closing blob stores behind their ops tables. */
#include "base/base.h"

#include <stdlib.h>
#include <unistd.h>

#include "media/blob.h"

bool ig_blob_ext_ok(const char *ext)
{
    size_t n = 0;

    if (!ext)
        return false;
    for (; ext[n]; n++)
        if (n >= 7 || !((ext[n] >= 'a' && ext[n] <= 'z') || (ext[n] >= '0' && ext[n] <= '9')))
            return false;
    return n >= 1;
}

bool ig_blob_id_ok(const char *id)
{
    size_t n = 0;

    if (!id)
        return false;
    for (; id[n]; n++)
        if (n >= IG_SHA256_HEX_LEN ||
            !((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
            return false;
    return n == IG_SHA256_HEX_LEN;
}

enum ig_err ig_blob_open_fs(struct ig_blob **out, const char *root, struct ig_errbuf *eb)
{
    struct ig_blob *b = ig_xcalloc(1, sizeof(*b));
    enum ig_err err;

    b->ops = &ig_blob_fs_ops;
    err = b->ops->open(b, root, eb);
    if (err) {
        free(b);
        return err;
    }
    *out = b;
    return IG_OK;
}

void ig_blob_close(struct ig_blob *b)
{
    if (!b)
        return;
    b->ops->close(b);
    free(b);
}

/* ---- abi_version 2 ops, with defaults for backends that lack them ---- */

enum ig_err ig_blob_stat(struct ig_blob *b, const char *id, const char *ext, int64_t *size)
{
    enum ig_err err;
    int fd = -1;

    if (b->ops->abi_version >= 2 && b->ops->stat)
        return b->ops->stat(b, id, ext, size);
    err = b->ops->open_fd(b, id, ext, &fd, size);
    if (!err)
        close(fd);
    return err;
}

bool ig_blob_presign(struct ig_blob *b, const char *id, const char *ext, char *url, size_t n)
{
    if (b->ops->abi_version >= 2 && b->ops->presign)
        return b->ops->presign(b, id, ext, url, n);
    return false;
}

void ig_blob_open_fd_async(struct ig_blob *b, const char *id, const char *ext, bool body,
                           struct ig_mailbox *mb, ig_blob_read_fn *done, void *arg)
{
    enum ig_err err;
    int64_t size = 0;
    int fd = -1;

    if (b->ops->abi_version >= 2 && b->ops->open_fd_async) {
        b->ops->open_fd_async(b, id, ext, body, mb, done, arg);
        return;
    }
    /* A backend without it reads locally (fs): done right here, on the caller's loop. */
    err = b->ops->open_fd(b, id, ext, &fd, &size);
    if (!err && !body) {
        close(fd);
        fd = -1;
    }
    done(arg, err, err ? -1 : fd, err ? 0 : size);
}

void ig_blob_quiesce(struct ig_blob *b)
{
    if (b && b->ops->abi_version >= 2 && b->ops->quiesce)
        b->ops->quiesce(b);
}
