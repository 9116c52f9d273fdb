/* test_writer.c: the writer thread: completions on the submitting loop, per-job rollback
 * inside a batch, commit failure, synchronous use, durability, and group-commit throughput. */
#include "base/base.h"

#include "store/writer.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/support.h"

#define NOW INT64_C(1767225600000)

struct fx {
    char dir[PATH_MAX];
    char path[PATH_MAX + 32];
    struct ig_writer *w;
    struct ig_store *reader;
    struct event_base *base;
    struct ig_mailbox *mb;
    pthread_t loop_thread;
    int ndone, want;
};

static int setup(void **state)
{
    struct fx *f = ig_xcalloc(1, sizeof(*f));

    ig_test_tmpdir(f->dir, sizeof(f->dir), "writer");
    snprintf(f->path, sizeof(f->path), "sqlite:%s/imagegate.db", f->dir);
    f->w = ig_writer_new(ig_test_open_store(f->path), 256);
    f->reader = ig_test_open_store(f->path);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->mb = ig_mailbox_new(f->base);
    f->loop_thread = pthread_self();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    ig_writer_free(f->w);
    ig_mailbox_free(f->mb);
    event_base_free(f->base);
    ig_store_close(f->reader);
    ig_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* Run the loop until f->ndone reaches f->want (or 60 s pass). */
static void run_loop(struct fx *f)
{
    ig_test_run_until(f->base, &f->ndone, f->want, 60);
    assert_int_equal(f->ndone, f->want);
}

/* Insert a fresh queued task with the given id. */
static enum ig_err insert_task(struct ig_store *s, const struct ig_id *id)
{
    struct ig_task t;
    enum ig_err err;

    ig_task_init(&t);
    t.id = *id;
    t.key_id = 1;
    snprintf(t.model, sizeof(t.model), "gemini-2.5-flash-image");
    t.created_ms = NOW;
    t.max_attempts = 3;
    t.req.prompt = ig_xstrdup("a fox in the snow");
    t.req.n = 1;
    err = ig_store_task_insert(s, &t);
    ig_task_release(&t);
    return err;
}

static bool task_exists(struct ig_store *s, const struct ig_id *id)
{
    struct ig_task t;
    enum ig_err err;

    ig_task_init(&t);
    err = ig_store_task_get(s, id, &t);
    ig_task_release(&t);
    assert_true(err == IG_OK || err == IG_E_NOT_FOUND);
    return err == IG_OK;
}

struct item {
    struct fx *f;
    struct ig_id id;
    enum ig_err want, got;
    bool done, on_loop;
};

/* Inserts its row, then fails when asked to: the row must vanish with the savepoint. */
static enum ig_err item_job(struct ig_store *s, void *arg)
{
    struct item *it = arg;
    enum ig_err err = insert_task(s, &it->id);

    return err ? err : it->want;
}

static void item_done(enum ig_err err, void *arg)
{
    struct item *it = arg;

    it->got = err;
    it->done = true;
    it->on_loop = pthread_equal(pthread_self(), it->f->loop_thread);
    it->f->ndone++;
}

#define NITEMS 1000
#define NTHREADS 4

struct submitter {
    struct fx *f;
    struct item *items;
    int from, to;
};

static void *submit_main(void *arg)
{
    struct submitter *sb = arg;

    for (int i = sb->from; i < sb->to; i++)
        ig_writer_submit(sb->f->w, item_job, item_done, sb->f->mb, &sb->items[i]);
    return NULL;
}

static void test_writer__many_jobs_from_threads(void **state)
{
    struct fx *f = *state;
    struct item *items = ig_xcalloc(NITEMS, sizeof(*items));
    struct submitter sb[NTHREADS];
    pthread_t th[NTHREADS];
    int64_t counts[IG_TASK__COUNT];
    int nfail = 0;

    for (int i = 0; i < NITEMS; i++) {
        items[i].f = f;
        ig_id_new(&items[i].id);
        /* Every seventh job fails, each with a result of its own. */
        items[i].want = i % 7 == 3 ? IG_E_CONFLICT : i % 7 == 5 ? IG_E_INVALID : IG_OK;
        nfail += items[i].want != IG_OK;
    }
    f->want = NITEMS;
    for (int t = 0; t < NTHREADS; t++) {
        sb[t] = (struct submitter){f, items, t * NITEMS / NTHREADS, (t + 1) * NITEMS / NTHREADS};
        assert_int_equal(pthread_create(&th[t], NULL, submit_main, &sb[t]), 0);
    }
    run_loop(f);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);

    for (int i = 0; i < NITEMS; i++) {
        assert_true(items[i].done);
        assert_true(items[i].on_loop);
        assert_int_equal(items[i].got, items[i].want);
    }
    /* Committed rows are exactly those of the jobs that succeeded. */
    assert_int_equal(ig_store_task_counts(f->reader, counts), IG_OK);
    assert_int_equal(counts[IG_TASK_QUEUED], NITEMS - nfail);
    for (int i = 0; i < 70; i++)
        assert_int_equal(task_exists(f->reader, &items[i].id), items[i].want == IG_OK);
    free(items);
}

/* Holds the writer inside a batch until released, so the next jobs queue up together. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
};

static enum ig_err gate_job(struct ig_store *s, void *arg)
{
    struct gate *g = arg;

    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return IG_OK;
}

static void gate_close(struct ig_writer *w, struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->entered = false;
    g->open = false;
    ig_writer_submit(w, gate_job, NULL, NULL, g);
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* Inserts two rows and then fails: both must be rolled back, the neighbours kept. */
static enum ig_err two_rows_then_fail(struct ig_store *s, void *arg)
{
    struct item *it = arg;
    struct ig_id other = it->id;
    enum ig_err err;

    other.b[15] ^= 0xff;
    err = insert_task(s, &it->id);
    if (!err)
        err = insert_task(s, &other);
    return err ? err : it->want;
}

static void test_writer__failed_job_rolls_back_alone(void **state)
{
    struct fx *f = *state;
    struct item it[5];
    struct gate g;
    struct ig_id other;

    memset(it, 0, sizeof(it));
    for (int i = 0; i < 5; i++) {
        it[i].f = f;
        ig_id_new(&it[i].id);
        it[i].want = IG_OK;
    }
    it[1].want = IG_E_UPSTREAM_FAILED;
    it[3].want = IG_E_INVALID;
    /* Hold the writer so that all five land in one batch after the gate's. */
    gate_close(f->w, &g);
    for (int i = 0; i < 5; i++)
        ig_writer_submit(f->w, i == 3 ? two_rows_then_fail : item_job, item_done, f->mb, &it[i]);
    gate_open(&g);
    f->want = 5;
    run_loop(f);
    gate_destroy(&g);

    for (int i = 0; i < 5; i++) {
        assert_int_equal(it[i].got, it[i].want);
        assert_int_equal(task_exists(f->reader, &it[i].id), it[i].want == IG_OK);
    }
    other = it[3].id;
    other.b[15] ^= 0xff;
    assert_false(task_exists(f->reader, &other));
}

/* A store whose commit fails on demand (SQLite's fault-injection idea, through the ops). */
static struct ig_store_ops fault_ops;
static bool fail_commit;

static enum ig_err fault_commit(struct ig_store *s)
{
    if (fail_commit) {
        snprintf(s->errmsg, sizeof(s->errmsg), "injected commit failure");
        return IG_E_STORE;
    }
    return ig_store_sqlite_ops.commit(s);
}

static void test_writer__commit_failure_fails_whole_batch(void **state)
{
    struct fx *f = *state;
    struct ig_writer *w;
    struct ig_store *s = ig_test_open_store(f->path);
    struct item it[3];
    struct gate g;

    fault_ops = ig_store_sqlite_ops;
    fault_ops.commit = fault_commit;
    s->ops = &fault_ops;
    w = ig_writer_new(s, 64);
    memset(it, 0, sizeof(it));
    for (int i = 0; i < 3; i++) {
        it[i].f = f;
        ig_id_new(&it[i].id);
    }
    it[2].want = IG_E_INVALID;

    gate_close(w, &g);
    fail_commit = true;
    for (int i = 0; i < 3; i++)
        ig_writer_submit(w, item_job, item_done, f->mb, &it[i]);
    gate_open(&g);
    f->want = 3;
    run_loop(f);
    fail_commit = false;
    gate_destroy(&g);

    for (int i = 0; i < 3; i++) {
        assert_int_equal(it[i].got, IG_E_STORE);
        assert_false(task_exists(f->reader, &it[i].id));
    }
    /* The writer goes on working after the failure. */
    ig_id_new(&it[0].id);
    it[0].want = IG_OK;
    assert_int_equal(ig_writer_run_sync(w, item_job, &it[0]), IG_OK);
    assert_true(task_exists(f->reader, &it[0].id));
    ig_writer_free(w);
}

static void test_writer__run_sync(void **state)
{
    struct fx *f = *state;
    struct item it;

    memset(&it, 0, sizeof(it));
    it.f = f;
    ig_id_new(&it.id);
    it.want = IG_OK;
    assert_int_equal(ig_writer_run_sync(f->w, item_job, &it), IG_OK);
    /* Committed by the time run_sync returns. */
    assert_true(task_exists(f->reader, &it.id));

    ig_id_new(&it.id);
    it.want = IG_E_CONFLICT;
    assert_int_equal(ig_writer_run_sync(f->w, item_job, &it), IG_E_CONFLICT);
    assert_false(task_exists(f->reader, &it.id));
}

static enum ig_err insert_job(struct ig_store *s, void *arg)
{
    struct ig_id id;

    ig_id_new(&id);
    return insert_task(s, &id);
}

static void test_writer__free_drains_and_data_is_durable(void **state)
{
    struct fx *f = *state;
    struct ig_store *s;
    int64_t counts[IG_TASK__COUNT];

    for (int i = 0; i < 300; i++)
        ig_writer_submit(f->w, insert_job, NULL, NULL, NULL);
    /* Free runs every queued job before it returns. */
    ig_writer_free(f->w);
    ig_store_close(f->reader);
    s = ig_test_open_store(f->path);
    assert_int_equal(ig_store_task_counts(s, counts), IG_OK);
    assert_int_equal(counts[IG_TASK_QUEUED], 300);
    ig_store_close(s);
    f->reader = ig_test_open_store(f->path);
    f->w = ig_writer_new(ig_test_open_store(f->path), 256);
}

static enum ig_err noop_job(struct ig_store *s, void *arg)
{
    return IG_OK;
}

/* Time n inserts through a writer with the given batch bound. */
static double inserts_per_second(const char *path, int n, int max_batch)
{
    struct ig_writer *w = ig_writer_new(ig_test_open_store(path), max_batch);
    int64_t t0 = ig_mono_ms(), ms;

    for (int i = 0; i < n; i++)
        ig_writer_submit(w, insert_job, NULL, NULL, NULL);
    /* FIFO: when this one has committed, every insert before it has too. */
    assert_int_equal(ig_writer_run_sync(w, noop_job, NULL), IG_OK);
    ms = ig_mono_ms() - t0;
    ig_writer_free(w);
    return 1000.0 * n / (double)(ms > 0 ? ms : 1);
}

static void test_writer__group_commit_throughput(void **state)
{
    struct fx *f = *state;
    double batched, single;

    batched = inserts_per_second(f->path, 20000, 256);
    single = inserts_per_second(f->path, 200, 1);
    printf("writer: synchronous=FULL, 20000 task inserts with group commit: %.0f inserts/s; "
           "one commit per insert (200): %.0f inserts/s; ratio %.1fx\n",
           batched, single, batched / single);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writer__many_jobs_from_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer__failed_job_rolls_back_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_writer__commit_failure_fails_whole_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_writer__run_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer__free_drains_and_data_is_durable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_writer__group_commit_throughput, setup, teardown),
    };

    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
