/* buf.c: bounded growable buffer. */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ig_buf_init(struct ig_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void ig_buf_release(struct ig_buf *b)
{
    free(b->data);
    ig_buf_init(b, b->max);
}

void ig_buf_reset(struct ig_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static enum ig_err grow(struct ig_buf *b, size_t need)
{
    size_t ncap;

    if (need > b->max || need + 1 < need)
        return IG_E_TOOBIG;
    if (need + 1 <= b->cap)
        return IG_OK;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need + 1)
        ncap *= 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    b->data = ig_xrealloc(b->data, ncap);
    b->cap = ncap;
    return IG_OK;
}

enum ig_err ig_buf_add(struct ig_buf *b, const void *p, size_t n)
{
    enum ig_err err;

    if (n > b->max - b->len) /* also catches len + n wrapping around */
        return IG_E_TOOBIG;
    err = grow(b, b->len + n);

    if (err)
        return err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return IG_OK;
}

enum ig_err ig_buf_adds(struct ig_buf *b, const char *s)
{
    return ig_buf_add(b, s, strlen(s));
}

enum ig_err ig_buf_addf(struct ig_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    enum ig_err err;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return IG_E_INVALID;
    err = grow(b, b->len + (size_t)n);
    if (err)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return IG_OK;
}

char *ig_buf_detach(struct ig_buf *b, size_t *len)
{
    char *p = b->data;

    if (!p)
        p = ig_xstrdup("");
    if (len)
        *len = b->len;
    ig_buf_init(b, b->max);
    return p;
}
