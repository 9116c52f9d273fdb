/* app.c: process-wide helpers over the configuration. */
#include "base/base.h"
#include "core/app.h"

#include <string.h>

int64_t ig_app_expiry_s(const struct ig_app *app, const char *dialect)
{
    /* reAPI promises 7 days (seed 000); dialects with other promises add their rows here. */
    (void)dialect;
    return app->cfg.reapi_expiry_s;
}
