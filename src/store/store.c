/* store.c: pick a store backend from the DSN and open a connection with it. */
#include "base/base.h"

#include "store/store.h"

#include <stdlib.h>
#include <string.h>

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum ig_err ig_store_open(struct ig_store **out, const char *dsn, struct ig_errbuf *eb)
{
    struct ig_store *s = NULL;
    const struct ig_store_ops *ops = &ig_store_sqlite_ops;
    const char *path = dsn;
    enum ig_err err;

    *out = NULL;
    if (!dsn || !*dsn)
        return ig_fail(eb, IG_E_INVALID, "store", "no store given");
    if (has_prefix(dsn, "sqlite:")) {
        path = dsn + strlen("sqlite:");
    } else if (has_prefix(dsn, "postgres:") || has_prefix(dsn, "postgresql:")) {
        return ig_fail(eb, IG_E_INVALID, "store",
                       "this build has no PostgreSQL store; use \"sqlite:PATH\" or a file path");
    }
    if (!*path)
        return ig_fail(eb, IG_E_INVALID, "store", "store \"%s\" names no file", dsn);

    s = ig_xcalloc(1, sizeof(*s));
    s->ops = ops;
    err = ops->open(s, dsn, eb);
    if (err) {
        free(s);
        return err;
    }
    *out = s;
    return IG_OK;
}

void ig_store_close(struct ig_store *s)
{
    if (!s)
        return;
    s->ops->close(s);
    free(s);
}
