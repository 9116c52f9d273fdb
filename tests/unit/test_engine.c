/* test_engine.c: the engine as synchronous dialects use it: admission with a waiter, the
 * completed task handed to the waiter's loop, unwaiting, `blob:` references read from the
 * blob store, and waiters told when a stop leaves their task in the queue. A real store,
 * writer, blob store and the offline provider; no network. */
#include "base/base.h"
#include "core/engine.h"
#include "media/image.h"
#include "media/vips.h"
#include "provider/provider.h"
#include "store/writer.h"
#include "support/support.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

struct fixture {
    char dir[512];
    struct ig_app app;
    struct event_base *base; /* the "HTTP" loop the waiters are told on */
    struct ig_mailbox *mb;
};

struct seen {
    int calls, submitted;
    enum ig_err submit_err;
    bool had_task;
    struct ig_task task; /* copy of what the waiter got */
};

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void start(struct fixture *f, int latency_ms, int max_inflight)
{
    struct ig_errbuf eb;
    char path[600];
    struct ig_store *s;

    memset(f, 0, sizeof(*f));
    ig_test_tmpdir(f->dir, sizeof(f->dir), "engine");
    ig_config_defaults(&f->app.cfg);
    f->app.cfg.max_inflight = max_inflight;
    f->app.cfg.cpu_threads = 1;
    snprintf(f->app.cfg.data_dir, sizeof(f->app.cfg.data_dir), "%s", f->dir);
    assert_int_equal(ig_catalog_load_default(&f->app.catalog, &eb), IG_OK);
    snprintf(path, sizeof(path), "%s/imagegate.db", f->dir);
    s = ig_test_open_store(path);
    {
        struct ig_key k; /* key 1, unmetered: tasks hold and settle against it */

        memset(&k, 0, sizeof(k));
        ig_sha256("engine-test", 11, k.hash);
        assert_int_equal(ig_store_key_insert(s, &k), IG_OK);
        assert_int_equal(k.id, 1);
    }
    snprintf(path, sizeof(path), "%s/blobs", f->dir);
    assert_int_equal(ig_blob_open_fs(&f->app.blob, path, &eb), IG_OK);
    f->app.writer = ig_writer_new(s, 64);
    f->app.engine = ig_engine_start(&f->app, ig_provider_offline_new(latency_ms, 0));
    f->base = event_base_new();
    f->mb = ig_mailbox_new(f->base);
}

static void stop(struct fixture *f, int grace_s)
{
    ig_engine_stop(f->app.engine, grace_s);
    ig_engine_free(f->app.engine);
    ig_writer_free(f->app.writer);
    ig_blob_close(f->app.blob);
    ig_catalog_free(f->app.catalog);
    ig_mailbox_free(f->mb);
    event_base_free(f->base);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void new_task(struct fixture *f, struct ig_task *t, const char *prompt, int n)
{
    ig_task_init(t);
    ig_id_new(&t->id);
    t->key_id = 1;
    snprintf(t->model, sizeof(t->model), "gemini-2.5-flash-image");
    snprintf(t->model_alias, sizeof(t->model_alias), "gemini-2.5-flash-image");
    snprintf(t->dialect, sizeof(t->dialect), "gemini");
    t->req.prompt = ig_xstrdup(prompt);
    snprintf(t->req.ratio, sizeof(t->req.ratio), "16:9");
    snprintf(t->req.resolution, sizeof(t->req.resolution), "1K");
    t->req.n = n;
    t->max_attempts = 3;
    t->created_ms = ig_id_time_ms(&t->id);
    t->deadline_ms = t->created_ms + 60000;
}

static void on_end(const struct ig_task *t, void *arg)
{
    struct seen *s = arg;

    s->calls++;
    s->had_task = t != NULL;
    if (t)
        ig_task_copy(&s->task, t);
    if (t && t->state == IG_TASK_FAILED)
        print_message("task failed: %s: %s\n", ig_strerror(t->err), t->err_message ? t->err_message : "");
}

static void on_submitted(enum ig_err err, const struct ig_task *t, void *arg)
{
    struct seen *s = arg;

    s->submitted++;
    s->submit_err = err;
}

static void submit_and_wait(struct fixture *f, struct ig_task *t, struct seen *s)
{
    ig_task_init(&s->task);
    ig_engine_wait(f->app.engine, &t->id, f->mb, on_end, s);
    ig_engine_submit(f->app.engine, t, f->mb, on_submitted, s);
}

static void test_engine__waiter_gets_the_completed_task(void **state)
{
    struct fixture f;
    struct ig_task t;
    struct seen s = {0};
    struct ig_id id;

    start(&f, 0, 8);
    new_task(&f, &t, "a lighthouse at dusk", 2);
    id = t.id;
    submit_and_wait(&f, &t, &s);
    ig_test_run_until(f.base, &s.calls, 1, 20);
    assert_int_equal(s.submitted, 1);
    assert_int_equal(s.submit_err, IG_OK);
    assert_int_equal(s.calls, 1);
    assert_true(s.had_task);
    assert_true(ig_id_equal(&s.task.id, &id));
    assert_int_equal(s.task.state, IG_TASK_SUCCEEDED);
    assert_string_equal(s.task.dialect, "gemini");
    assert_int_equal(s.task.noutputs, 2);
    assert_int_equal(s.task.price_held, 2 * 39000);
    assert_int_equal(s.task.price_captured, 2 * 39000);
    for (int i = 0; i < 2; i++) {
        unsigned char *data;
        size_t len;
        int w = 0, h = 0;
        enum ig_image_type ty = IG_IMG_UNKNOWN;

        assert_string_equal(s.task.outputs[i].ext, "png");
        assert_int_equal(s.task.outputs[i].width, 1344);
        assert_int_equal(s.task.outputs[i].height, 768);
        assert_int_equal(ig_blob_get(f.app.blob, s.task.outputs[i].blob, "png", 64 << 20, &data,
                                     &len),
                         IG_OK);
        assert_int_equal((int64_t)len, s.task.outputs[i].bytes);
        assert_int_equal(ig_image_dimensions(data, len, &ty, &w, &h), IG_OK);
        assert_int_equal(w, 1344);
        assert_int_equal(h, 768);
        free(data);
    }
    ig_task_release(&s.task);
    stop(&f, 0);
}

static void test_engine__unwaited_waiter_is_not_called(void **state)
{
    struct fixture f;
    struct ig_task t;
    struct seen s = {0}, other = {0};
    struct ig_waiter *w;
    struct ig_id id;

    start(&f, 300, 8);
    new_task(&f, &t, "unwaited", 1);
    id = t.id;
    w = ig_engine_wait(f.app.engine, &id, f.mb, on_end, &s);
    ig_engine_wait(f.app.engine, &id, f.mb, on_end, &other); /* a second client, still waiting */
    ig_engine_submit(f.app.engine, &t, f.mb, on_submitted, &s);
    ig_engine_unwait(f.app.engine, w);
    ig_test_run_until(f.base, &other.calls, 1, 20);
    assert_int_equal(other.calls, 1);
    assert_int_equal(other.task.state, IG_TASK_SUCCEEDED);
    assert_int_equal(s.calls, 0);
    ig_task_release(&other.task);
    stop(&f, 0);
}

static void test_engine__blob_reference_is_read_from_the_store(void **state)
{
    struct fixture f;
    struct ig_task t, bad;
    struct seen s = {0}, sb = {0};
    unsigned char *png;
    size_t len;
    char id[IG_SHA256_HEX_LEN + 1], ref[128];

    start(&f, 0, 8);
    /* a 640x480 PNG as a dialect would have stored it */
    {
        VipsImage *im = NULL;

        assert_int_equal(vips_black(&im, 640, 480, "bands", 3, NULL), 0);
        assert_int_equal(ig_vips_encode(im, "png", 0, &png, &len), IG_OK);
        g_object_unref(im);
    }
    assert_int_equal(ig_blob_put(f.app.blob, png, len, "png", id), IG_OK);
    free(png);
    new_task(&f, &t, "edit the stored image", 1);
    t.req.ratio[0] = '\0'; /* inherit the reference's shape */
    snprintf(ref, sizeof(ref), "blob:%s.png", id);
    t.req.refs[0] = ig_xstrdup(ref);
    t.req.nrefs = 1;
    submit_and_wait(&f, &t, &s);
    new_task(&f, &bad, "a stored image that is gone", 1);
    bad.req.refs[0] = ig_xstrdup("blob:0000000000000000000000000000000000000000000000000000000000000000.png");
    bad.req.nrefs = 1;
    submit_and_wait(&f, &bad, &sb);
    ig_test_run_until(f.base, &s.calls, 1, 20);
    ig_test_run_until(f.base, &sb.calls, 1, 20);
    assert_int_equal(s.task.state, IG_TASK_SUCCEEDED);
    assert_int_equal(s.task.noutputs, 1);
    assert_int_equal(s.task.outputs[0].width, 1184); /* 4:3, the nearest ratio to 640x480 */
    assert_int_equal(s.task.outputs[0].height, 864);
    assert_int_equal(sb.task.state, IG_TASK_FAILED);
    assert_int_equal(sb.task.err, IG_E_REFERENCE);
    assert_non_null(strstr(sb.task.err_message, "the stored image is gone"));
    ig_task_release(&s.task);
    ig_task_release(&sb.task);
    stop(&f, 0);
}

static void test_engine__stop_tells_waiters_of_tasks_left_queued(void **state)
{
    struct fixture f;
    struct ig_task a, b;
    struct seen sa = {0}, sb = {0};

    start(&f, 1500, 1); /* one slot: the second task waits in the queue */
    new_task(&f, &a, "runs", 1);
    new_task(&f, &b, "queued", 1);
    submit_and_wait(&f, &a, &sa);
    submit_and_wait(&f, &b, &sb);
    ig_test_run_until(f.base, &sb.submitted, 1, 20);
    ig_engine_stop(f.app.engine, 0); /* a goes back to the queue, b never ran */
    ig_test_run_until(f.base, &sb.calls, 1, 5);
    ig_test_run_until(f.base, &sa.calls, 1, 5);
    assert_int_equal(sa.calls, 1);
    assert_false(sa.had_task); /* read the store: it is queued again */
    assert_int_equal(sb.calls, 1);
    assert_false(sb.had_task);
    ig_engine_free(f.app.engine);
    f.app.engine = NULL;
    ig_writer_free(f.app.writer);
    ig_blob_close(f.app.blob);
    ig_catalog_free(f.app.catalog);
    ig_mailbox_free(f.mb);
    event_base_free(f.base);
    nftw(f.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine__waiter_gets_the_completed_task),
        cmocka_unit_test(test_engine__unwaited_waiter_is_not_called),
        cmocka_unit_test(test_engine__blob_reference_is_read_from_the_store),
        cmocka_unit_test(test_engine__stop_tells_waiters_of_tasks_left_queued),
    };

    if (evthread_use_pthreads() != 0 || ig_vips_init() != IG_OK)
        return 1;
    ig_log_set_level(getenv("IG_TEST_LOG") ? IG_LOG_DEBUG : IG_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
