/* writer.c: the writer thread: queued store jobs run in batches, one transaction and one
 * fsync per batch (group commit), each job under its own savepoint. */
#include "base/base.h"

#include "store/writer.h"

#include <pthread.h>
#include <stdlib.h>

/* A queued job; after the batch it travels to the submitter's loop as its completion. */
struct job {
    struct job *next;
    ig_writer_job_fn *fn;
    ig_writer_done_fn *done;
    struct ig_mailbox *mb;
    void *arg;
    enum ig_err result;
};

struct ig_writer {
    struct ig_store *s;
    int max_batch;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail; /* guarded by mu */
    bool stopping;           /* guarded by mu */
    bool exited;             /* guarded by mu */
};

/* Runs on the submitter's loop. */
static void deliver(void *arg)
{
    struct job *j = arg;

    j->done(j->result, j->arg);
    free(j);
}

static void complete(struct job *j)
{
    if (!j->done)
        free(j);
    else if (j->mb)
        ig_mailbox_post(j->mb, deliver, j);
    else
        deliver(j); /* no loop to go to (ig_writer_run_sync): complete on this thread */
}

/* Run one job under a savepoint. Returns false when the batch transaction is no longer usable
 * (the store failed under us), which fails the rest of the batch. */
static bool run_job(struct ig_store *s, struct job *j)
{
    if (ig_store_savepoint(s)) {
        j->result = IG_E_STORE;
        return false;
    }
    j->result = j->fn(s, j->arg);
    if (j->result) {
        if (ig_store_rollback_to(s) || ig_store_release(s))
            return false;
        return true;
    }
    if (ig_store_release(s)) {
        j->result = IG_E_STORE;
        return false;
    }
    return true;
}

static void run_batch(struct ig_writer *w, struct job *batch)
{
    struct job *j, *next;
    bool ok = ig_store_begin(w->s) == IG_OK;

    for (j = batch; ok && j; j = j->next)
        ok = run_job(w->s, j);
    if (ok)
        ok = ig_store_commit(w->s) == IG_OK;
    if (!ok) {
        ig_warn("writer: batch transaction failed, its jobs fail: %s", w->s->errmsg);
        ig_store_rollback(w->s);
        for (j = batch; j; j = j->next)
            j->result = IG_E_STORE;
    }
    for (j = batch; j; j = next) {
        next = j->next;
        complete(j);
    }
}

static void *writer_main(void *arg)
{
    struct ig_writer *w = arg;

    for (;;) {
        struct job *batch, *last;
        int n = 1;

        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head) {
            w->exited = true;
            pthread_mutex_unlock(&w->mu);
            break;
        }
        /* Take up to max_batch: whatever queued while the last batch was committing. */
        batch = w->head;
        last = batch;
        while (last->next && n < w->max_batch) {
            last = last->next;
            n++;
        }
        w->head = last->next;
        if (!w->head)
            w->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&w->mu);

        run_batch(w, batch);
    }
    return NULL;
}

struct ig_writer *ig_writer_new(struct ig_store *s, int max_batch)
{
    struct ig_writer *w = ig_xcalloc(1, sizeof(*w));

    w->s = s;
    w->max_batch = max_batch > 0 ? max_batch : 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
        IG_BUG("writer: cannot start the writer thread");
    return w;
}

void ig_writer_free(struct ig_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    /* The thread leaves only once the queue is empty, so every queued job has run. */
    pthread_join(w->thread, NULL);
    ig_store_close(w->s);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void ig_writer_submit(struct ig_writer *w, ig_writer_job_fn *job, ig_writer_done_fn *done,
                      struct ig_mailbox *mb, void *arg)
{
    struct job *j = ig_xmalloc(sizeof(*j));

    j->next = NULL;
    j->fn = job;
    j->done = done;
    j->mb = mb;
    j->arg = arg;
    j->result = IG_OK;
    pthread_mutex_lock(&w->mu);
    if (w->exited)
        IG_BUG("writer: job submitted after the writer stopped");
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ig_writer_run_sync's job: the caller's job plus what its thread waits on. */
struct sync_call {
    ig_writer_job_fn *fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    enum ig_err result;
};

static enum ig_err sync_job(struct ig_store *s, void *arg)
{
    struct sync_call *c = arg;

    return c->fn(s, c->arg);
}

static void sync_done(enum ig_err err, void *arg)
{
    struct sync_call *c = arg;

    pthread_mutex_lock(&c->mu);
    c->result = err;
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

enum ig_err ig_writer_run_sync(struct ig_writer *w, ig_writer_job_fn *job, void *arg)
{
    struct sync_call c = {.fn = job, .arg = arg, .done = false, .result = IG_OK};

    if (pthread_equal(pthread_self(), w->thread))
        IG_BUG("writer: ig_writer_run_sync called from a writer job (it would wait forever)");
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    /* A done with no mailbox runs on the writer thread, right after the commit. */
    ig_writer_submit(w, sync_job, sync_done, NULL, &c);
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return c.result;
}
