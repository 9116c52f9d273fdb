/* pool.h: a fixed pool of threads for CPU work (image encode, base64, hashing, file writes),
 * run at a lower priority (nice 10) than the event loops.
 *
 * A job runs `work` on a pool thread, then `done` on the loop of the given mailbox, so the
 * loop never blocks on CPU or disk. Lifetime: process. ig_pool_free() finishes queued jobs. */
#ifndef IG_POOL_H
#define IG_POOL_H

#include "base/mailbox.h"

struct ig_pool;

typedef void ig_pool_fn(void *arg);

struct ig_pool *ig_pool_new(int nthreads);
void ig_pool_free(struct ig_pool *p);
/* `done` may be NULL (then mb may be NULL too). */
void ig_pool_submit(struct ig_pool *p, ig_pool_fn *work, ig_pool_fn *done, struct ig_mailbox *mb,
                    void *arg);

#endif
