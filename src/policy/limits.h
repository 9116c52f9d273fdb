/* limits.h: per-key request rate, as a generic cell rate algorithm (GCRA: the "virtual
 * scheduling" form of a leaky bucket, as in ATM's GCRA and redis-cell). One limiter per
 * process, shared by every HTTP thread behind one mutex, so a key's limit holds exactly
 * however its requests spread over threads. Per key it keeps one number: the theoretical
 * arrival time of its next request.
 *
 * The other per-key limit, tasks in flight, is checked by the store in the transaction that
 * inserts the task (exact by construction: the writer serialises inserts). */
#ifndef IG_LIMITS_H
#define IG_LIMITS_H

#include "base/base.h"
#include "core/app.h"
#include "store/store.h"

struct ig_limiter;

struct ig_limiter *ig_limiter_new(void);
void ig_limiter_free(struct ig_limiter *l);

/* May key_id make a request at now_ms, at rpm requests per minute with bursts of up to
 * burst at once? rpm <= 0: no limit. On refusal *retry_after_ms says when one will be
 * allowed (> 0) and nothing is counted. */
bool ig_limiter_allow(struct ig_limiter *l, int64_t key_id, int rpm, int burst, int64_t now_ms,
                      int64_t *retry_after_ms);

/* What every submit route checks after authenticating, with the key's own limits or the
 * server's (--rate-rpm, --rate-burst, --max-tasks-per-key). */
bool ig_admit_rate(struct ig_app *app, const struct ig_key *k, int64_t *retry_after_ms);
/* The key's limit of unfinished tasks (0 = none): the task's admit_max_tasks. */
int ig_admit_max_tasks(const struct ig_app *app, const struct ig_key *k);

#endif
