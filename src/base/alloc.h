/* alloc.h: allocation that aborts on failure, for small fixed-size objects (redis zmalloc,
 * git xmalloc). Anything sized by untrusted input goes through struct ig_buf with a cap. */
#ifndef IG_ALLOC_H
#define IG_ALLOC_H

#include <stddef.h>

void *ig_xmalloc(size_t n);
void *ig_xcalloc(size_t count, size_t size);
void *ig_xrealloc(void *p, size_t n);
char *ig_xstrdup(const char *s);
char *ig_xstrndup(const char *s, size_t n);
/* printf into a new heap string. */
char *ig_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Abort with file:line: for conditions that are bugs, never for client input (git BUG()). */
#define IG_BUG(...) ig_bug_fl(__FILE__, __LINE__, __VA_ARGS__)
void ig_bug_fl(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#endif
