/* idempotency.h: the Idempotency-Key header on submit routes, with Stripe's semantics (and the
 * IETF httpapi draft's): the same key and the same request within --idempotency-ttl (24 h)
 * replay the first response byte for byte and create nothing; the same key with another
 * request is 422. A duplicate that arrives while the first is still being admitted waits for
 * it (parked on the request's own loop, no thread held, at most --idempotency-wait-ms, then
 * 409) and then replays its response, or, if the first was refused, is admitted in its turn.
 *
 * Only an admitted request is recorded: its response is rendered before the insert and
 * written in the insert's own transaction (struct ig_task.idem), so a task never exists
 * without its record or the other way round. */
#ifndef IG_HTTP_IDEMPOTENCY_H
#define IG_HTTP_IDEMPOTENCY_H

#include "http/server.h"
#include "store/store.h"

struct ig_idem_registry;
struct ig_idem_use;

struct ig_idem_registry *ig_idem_registry_new(void);
void ig_idem_registry_free(struct ig_idem_registry *r);

enum ig_idem_step {
    IG_IDEM_NONE,    /* no Idempotency-Key: go on without */
    IG_IDEM_PROCEED, /* its first use: go on, and record the response (*use is set) */
    IG_IDEM_DONE,    /* answered (a replay, a 400 or a 422), or parked until the first ends */
};

/* After authentication on a submit route. route names it in the request's hash (so the same
 * key on another route is a different request); retry re-runs the route for a parked
 * duplicate. */
enum ig_idem_step ig_idem_begin(struct ig_hreq *hr, const struct ig_key *k, const char *route,
                                void (*retry)(struct ig_hreq *hr), struct ig_idem_use **use);
/* The same for a synchronous route, whose answer is the task's result rather than a stored
 * reply: a replay calls attach(hr, task) to answer from the first request's task (waiting for
 * it if it still runs) instead of replaying bytes. Record such a route's first use with
 * ig_idem_prepare(u, 200, IG_IDEM_TASK_CTYPE, "", 0): the task id is stored with it. */
#define IG_IDEM_TASK_CTYPE "application/vnd.imagegate.task"
enum ig_idem_step ig_idem_begin_sync(struct ig_hreq *hr, const struct ig_key *k, const char *route,
                                     void (*retry)(struct ig_hreq *hr),
                                     void (*attach)(struct ig_hreq *hr, const struct ig_id *task),
                                     struct ig_idem_use **use);
/* The response the route sends if the task is stored (copied); the record to put in
 * task.idem. */
const struct ig_idem_record *ig_idem_prepare(struct ig_idem_use *u, int status, const char *ctype,
                                             const char *body, size_t len);
/* Once the insert has committed (stored) or been refused: parked duplicates go again (and
 * replay); u is freed. Must be called once for every IG_IDEM_PROCEED, whatever happened. */
void ig_idem_end(struct ig_idem_use *u);

#endif
