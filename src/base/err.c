/* err.c: names of the error vocabulary and the error buffer. */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[IG_E__COUNT] = {
    [IG_OK] = "ok",
    [IG_E_NOMEM] = "out_of_memory",
    [IG_E_AGAIN] = "again",
    [IG_E_INVALID] = "invalid_request",
    [IG_E_UNAUTHENTICATED] = "unauthenticated",
    [IG_E_FORBIDDEN] = "forbidden",
    [IG_E_INSUFFICIENT] = "insufficient_credits",
    [IG_E_RATE_LIMITED] = "rate_limited",
    [IG_E_NOT_FOUND] = "not_found",
    [IG_E_METHOD] = "method_not_allowed",
    [IG_E_CONFLICT] = "conflict",
    [IG_E_TOOBIG] = "too_large",
    [IG_E_GONE] = "gone",
    [IG_E_MODERATED] = "moderated",
    [IG_E_UPSTREAM_SUBMIT] = "provider_submit_failed",
    [IG_E_UPSTREAM_TIMEOUT] = "provider_timeout",
    [IG_E_UPSTREAM_FAILED] = "provider_failed",
    [IG_E_REFERENCE] = "reference_failed",
    [IG_E_BLOCKED] = "address_blocked",
    [IG_E_IO] = "io_error",
    [IG_E_STORE] = "store_error",
    [IG_E_CANCELLED] = "cancelled",
    [IG_E_INTERNAL] = "internal",
};

const char *ig_strerror(enum ig_err err)
{
    if ((unsigned)err >= IG_E__COUNT || !names[err])
        return "internal";
    return names[err];
}

enum ig_err ig_err_from_name(const char *name)
{
    for (int i = 0; name && i < IG_E__COUNT; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return (enum ig_err)i;
    return IG_E_INTERNAL;
}

void ig_errbuf_clear(struct ig_errbuf *eb)
{
    eb->field[0] = '\0';
    eb->msg[0] = '\0';
}

enum ig_err ig_fail(struct ig_errbuf *eb, enum ig_err err, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (!eb)
        return err;
    snprintf(eb->field, sizeof(eb->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
    va_end(ap);
    return err;
}
