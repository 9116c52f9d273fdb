/* blob.c: opening and closing blob stores behind their ops tables. */
#include "base/base.h"

#include <stdlib.h>

#include "media/blob.h"

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
