/* engine.h: the task engine. One thread with its own event loop claims runnable tasks from
 * the store (leases), fetches their references, runs them on a provider, stores the images
 * and completes the task with a compare-and-swap, all without blocking: store writes go
 * through the writer thread, CPU work to the pool, network through the curl transport.
 *
 * At-least-once with leases: a task whose process died is claimed again when its lease ends
 * (attempts counted at claim; a task that keeps failing stops at max_attempts). A task is
 * completed only by the holder of its current lease. */
#ifndef IG_ENGINE_H
#define IG_ENGINE_H

#include "core/app.h"
#include "core/task.h"

struct ig_engine;
struct ig_provider;

/* Start the engine thread. The provider is owned by the engine from now on. */
struct ig_engine *ig_engine_start(struct ig_app *app, struct ig_provider *provider);
/* Admission, thread-safe. Store a new task (state queued; id, times and request set) with one
 * durable commit. When the engine has room the task is stored already running — leased to
 * this engine, attempt 1 — and handed to the engine right after the commit, with no claim
 * round trip through the store; otherwise it waits in the queue for a claim. A crash after
 * the commit loses nothing either way: the lease ends and the task is claimed again.
 * Takes over *t (left empty). done(err, task, arg) then runs on mb's loop with the task as
 * stored; the task is freed when done returns. */
typedef void ig_engine_submit_fn(enum ig_err err, const struct ig_task *t, void *arg);
void ig_engine_submit(struct ig_engine *e, struct ig_task *t, struct ig_mailbox *mb,
                      ig_engine_submit_fn *done, void *arg);
/* What a task holds at admission: the model's price per image at its resolution (micro-
 * dollars, etc/models.json) times the images asked for. The store places the hold in the
 * task's own transaction (IG_E_INSUFFICIENT for a metered key that cannot pay) and settles it
 * in the one that ends the task: released, and what was delivered captured. */
int64_t ig_engine_price(const struct ig_app *app, const struct ig_task *t);
/* Synchronous dialects: wait for a task's end without holding a thread. Register before
 * ig_engine_submit (the task may end at once). fn runs once, on mb's loop, with the task as it
 * was completed (terminal state, outputs, text, usage, error, upstream record), or with NULL
 * when it did not end in this engine's hands (put back in the queue by a stop, its lease lost,
 * cancelled meanwhile, the finish failed): read it from the store then. The task passed to fn
 * is freed when fn returns. Thread-safe. */
struct ig_waiter;
typedef void ig_waiter_fn(const struct ig_task *t, void *arg);
struct ig_waiter *ig_engine_wait(struct ig_engine *e, const struct ig_id *id,
                                 struct ig_mailbox *mb, ig_waiter_fn *fn, void *arg);
/* On mb's loop only: fn will not run (the client went away, the submit failed). */
void ig_engine_unwait(struct ig_engine *e, struct ig_waiter *w);
/* Thread-safe: new tasks may be runnable. */
void ig_engine_wake(struct ig_engine *e);
/* Graceful stop: claim nothing more, give running tasks grace_s seconds to finish, put the
 * rest back to queued (their attempt given back), then stop the thread. Blocks. */
void ig_engine_stop(struct ig_engine *e, int grace_s);
void ig_engine_free(struct ig_engine *e);


#endif
