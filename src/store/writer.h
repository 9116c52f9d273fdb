/* writer.h: the one writer thread that batches store writes into group commits.
 *
 * A job is a function run on the writer's own connection inside a savepoint of the current
 * batch transaction; when the batch has committed (one fsync for many jobs), the job's
 * `done` runs on the loop of the mailbox given with it, with the job's result. A job whose
 * function fails is rolled back to its savepoint alone; the rest of the batch commits. If the
 * commit itself fails, every job of the batch completes with IG_E_STORE.
 *
 * Lifetime: process. ig_writer_free() runs every queued job before it returns. */
#ifndef IG_WRITER_H
#define IG_WRITER_H

#include "store/store.h"

struct ig_writer;

/* Runs on the writer thread. Returns the job's result. */
typedef enum ig_err ig_writer_job_fn(struct ig_store *s, void *arg);
/* Runs on the submitting loop after commit (or failure). */
typedef void ig_writer_done_fn(enum ig_err err, void *arg);

/* Takes ownership of s (closed by ig_writer_free). max_batch bounds jobs per transaction. */
struct ig_writer *ig_writer_new(struct ig_store *s, int max_batch);
void ig_writer_free(struct ig_writer *w);
/* Thread-safe. `done` may be NULL (then mb may be NULL); a done with a NULL mb runs on the
 * writer thread right after the commit. */
void ig_writer_submit(struct ig_writer *w, ig_writer_job_fn *job, ig_writer_done_fn *done,
                      struct ig_mailbox *mb, void *arg);
/* Run a job and wait for its commit (for threads without a loop: CLI, start-up, tests). */
enum ig_err ig_writer_run_sync(struct ig_writer *w, ig_writer_job_fn *job, void *arg);

#endif
