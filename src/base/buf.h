/* buf.h: growable byte buffer with an explicit cap (curl dynbuf).
 *
 * Every buffer whose size a client or upstream decides has a cap; appending past it
 * returns IG_E_TOOBIG and leaves the buffer as it was. The data is always NUL-terminated
 * (the terminator is not counted in len). Lifetime: the owner calls ig_buf_release(). */
#ifndef IG_BUF_H
#define IG_BUF_H

#include <stddef.h>

#include "base/err.h"

struct ig_buf {
    char *data;
    size_t len;
    size_t cap; /* allocated bytes */
    size_t max; /* most bytes len may reach */
};

#define IG_BUF_INIT(maxlen) {NULL, 0, 0, (maxlen)}

void ig_buf_init(struct ig_buf *b, size_t max);
void ig_buf_release(struct ig_buf *b);
/* Empty it, keep the allocation. */
void ig_buf_reset(struct ig_buf *b);
enum ig_err ig_buf_add(struct ig_buf *b, const void *p, size_t n);
enum ig_err ig_buf_adds(struct ig_buf *b, const char *s);
enum ig_err ig_buf_addf(struct ig_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Take the data out: the caller frees it; the buffer is left empty. */
char *ig_buf_detach(struct ig_buf *b, size_t *len);

#endif
