/* test_store.c: the SQLite store: schema, round trips, claims and leases, CAS transitions,
 * expiry sweeps, keys, and two connections on one file. */
#include "base/base.h"

#include "store/store.h"

#include <limits.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/support.h"

#define NOW INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */

struct fx {
    char dir[PATH_MAX];
    char path[PATH_MAX + 32];
    struct ig_store *s;
};

static int setup(void **state)
{
    struct fx *f = ig_xcalloc(1, sizeof(*f));

    ig_test_tmpdir(f->dir, sizeof(f->dir), "store");
    snprintf(f->path, sizeof(f->path), "sqlite:%s/imagegate.db", f->dir);
    f->s = ig_test_open_store(f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    ig_store_close(f->s);
    ig_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* A queued task created at `created`; the caller releases it. */
static void make_task(struct ig_task *t, int64_t created)
{
    ig_task_init(t);
    ig_id_new(&t->id);
    t->key_id = 1;
    snprintf(t->model, sizeof(t->model), "gemini-2.5-flash-image");
    snprintf(t->model_alias, sizeof(t->model_alias), "gemini-2.5-flash-image-preview");
    snprintf(t->dialect, sizeof(t->dialect), "reapi");
    t->max_attempts = 3;
    t->created_ms = created;
    t->deadline_ms = created + 600000;
    t->req.prompt = ig_xstrdup("a cat in a hat");
    t->req.n = 1;
    snprintf(t->req.ratio, sizeof(t->req.ratio), "1:1");
    snprintf(t->req.output_format, sizeof(t->req.output_format), "png");
}

static void insert(struct ig_store *s, struct ig_task *t)
{
    assert_int_equal(ig_store_task_insert(s, t), IG_OK);
}

static void get(struct ig_store *s, const struct ig_id *id, struct ig_task *out)
{
    ig_task_init(out);
    assert_int_equal(ig_store_task_get(s, id, out), IG_OK);
}

static void add_output(struct ig_task *t, const char *blob_seed, const char *ext)
{
    struct ig_output *o = ig_task_add_output(t);

    ig_sha256_hex(blob_seed, strlen(blob_seed), o->blob);
    snprintf(o->mime, sizeof(o->mime), "image/%s", ext);
    snprintf(o->ext, sizeof(o->ext), "%s", ext);
    o->width = 1024;
    o->height = 1024;
    o->bytes = 123456 + t->noutputs;
}

static void release_all(struct ig_task *t, int n)
{
    for (int i = 0; i < n; i++)
        ig_task_release(&t[i]);
}

static void test_store__migrate_is_idempotent(void **state)
{
    struct fx *f = *state;
    struct ig_errbuf eb;
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t counts[IG_TASK__COUNT];

    ig_errbuf_clear(&eb);
    assert_int_equal(ig_store_migrate(f->s, &eb), IG_OK);
    assert_int_equal(ig_store_migrate(f->s, &eb), IG_OK);
    assert_int_equal(ig_store_task_counts(f->s, counts), IG_OK);
    for (int i = 0; i < IG_TASK__COUNT; i++)
        assert_int_equal(counts[i], 0);

    assert_int_equal(sqlite3_open(f->path + strlen("sqlite:"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 7); /* the latest schema */
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* A schema newer than this build is refused. */
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ig_store_migrate(f->s, &eb), IG_E_STORE);
    assert_non_null(strstr(eb.msg, "newer"));
}

static void test_store__open_rejects_bad_dsn(void **state)
{
    struct ig_store *s = (struct ig_store *)1;
    struct ig_errbuf eb;

    ig_errbuf_clear(&eb);
    assert_int_equal(ig_store_open(&s, "postgres://localhost/x", &eb), IG_E_INVALID);
    assert_null(s);
    assert_int_equal(ig_store_open(&s, "sqlite:", &eb), IG_E_INVALID);
    assert_int_equal(ig_store_open(&s, "/nonexistent-dir/sub/x.db", &eb), IG_E_STORE);
    assert_null(s);
    assert_non_null(strstr(eb.msg, "cannot open"));
}

static void test_store__task_round_trip(void **state)
{
    struct fx *f = *state;
    struct ig_task t, g;

    make_task(&t, NOW);
    t.key_id = 77;
    snprintf(t.channel, sizeof(t.channel), "official-1");
    t.state = IG_TASK_SUCCEEDED;
    t.progress = 100;
    t.attempts = 2;
    t.max_attempts = 5;
    t.started_ms = NOW + 10;
    t.finished_ms = NOW + 20;
    t.expires_ms = NOW + 86400000;
    t.lease_until_ms = NOW + 30;
    snprintf(t.lease_owner, sizeof(t.lease_owner), "node-a/1234");
    free(t.req.prompt);
    t.req.prompt = ig_xstrdup("日本の猫 🐈");
    snprintf(t.req.resolution, sizeof(t.req.resolution), "2K");
    t.req.has_top_p = true;
    t.req.top_p = 0.9;
    t.req.nrefs = 2;
    t.req.refs[0] = ig_xstrdup("https://example.com/a.png");
    t.req.refs[1] = ig_xstrdup("https://example.com/b.png");
    t.req.official = true;
    add_output(&t, "one", "png");
    add_output(&t, "two", "webp");
    t.outputs_expired = true;
    t.usage.prompt_tokens = 11;
    t.usage.image_tokens = 2580;
    t.usage.text_tokens = 7;
    t.usage.images = 2;
    t.price_held = 78000;
    t.price_captured = 77400;
    ig_task_set_error(&t, IG_E_MODERATED, "blocked by safety");
    t.text = ig_xstrdup("some text");
    t.offline = true;
    insert(f->s, &t);

    get(f->s, &t.id, &g);
    assert_true(ig_id_equal(&g.id, &t.id));
    assert_int_equal(g.key_id, 77);
    assert_string_equal(g.model, t.model);
    assert_string_equal(g.model_alias, t.model_alias);
    assert_string_equal(g.dialect, "reapi");
    assert_string_equal(g.channel, "official-1");
    assert_int_equal(g.state, IG_TASK_SUCCEEDED);
    assert_int_equal(g.progress, 100);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(g.max_attempts, 5);
    assert_int_equal(g.created_ms, NOW);
    assert_int_equal(g.started_ms, NOW + 10);
    assert_int_equal(g.finished_ms, NOW + 20);
    assert_int_equal(g.deadline_ms, NOW + 600000);
    assert_int_equal(g.expires_ms, NOW + 86400000);
    assert_int_equal(g.lease_until_ms, NOW + 30);
    assert_string_equal(g.lease_owner, "node-a/1234");
    assert_string_equal(g.req.prompt, "日本の猫 🐈");
    assert_string_equal(g.req.ratio, "1:1");
    assert_string_equal(g.req.resolution, "2K");
    assert_int_equal(g.req.n, 1);
    assert_false(g.req.has_temperature);
    assert_true(g.req.has_top_p);
    assert_true(g.req.top_p == 0.9);
    assert_int_equal(g.req.nrefs, 2);
    assert_string_equal(g.req.refs[1], "https://example.com/b.png");
    assert_string_equal(g.req.output_format, "png");
    assert_true(g.req.official);
    assert_int_equal(g.noutputs, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(g.outputs[i].blob, t.outputs[i].blob);
        assert_string_equal(g.outputs[i].mime, t.outputs[i].mime);
        assert_string_equal(g.outputs[i].ext, t.outputs[i].ext);
        assert_int_equal(g.outputs[i].width, 1024);
        assert_int_equal(g.outputs[i].height, 1024);
        assert_int_equal(g.outputs[i].bytes, t.outputs[i].bytes);
    }
    assert_true(g.outputs_expired);
    assert_int_equal(g.usage.prompt_tokens, 11);
    assert_int_equal(g.usage.image_tokens, 2580);
    assert_int_equal(g.usage.text_tokens, 7);
    assert_int_equal(g.usage.images, 2);
    assert_int_equal(g.price_held, 78000);
    assert_int_equal(g.price_captured, 77400);
    assert_int_equal(g.err, IG_E_MODERATED);
    assert_string_equal(g.err_message, "blocked by safety");
    assert_string_equal(g.text, "some text");
    assert_true(g.offline);

    /* task_get releases what out held before. */
    assert_int_equal(ig_store_task_get(f->s, &t.id, &g), IG_OK);
    ig_task_release(&g);

    /* A fresh task reads back with NULL strings and no error. */
    ig_task_release(&t);
    make_task(&t, NOW);
    insert(f->s, &t);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_QUEUED);
    assert_int_equal(g.err, IG_OK);
    assert_null(g.err_message);
    assert_null(g.text);
    assert_int_equal(g.noutputs, 0);
    assert_string_equal(g.lease_owner, "");
    ig_task_release(&g);

    /* Same id twice: a conflict. */
    assert_int_equal(ig_store_task_insert(f->s, &t), IG_E_CONFLICT);
    ig_task_release(&t);

    /* Unknown id. */
    ig_id_new(&t.id);
    ig_task_init(&g);
    assert_int_equal(ig_store_task_get(f->s, &t.id, &g), IG_E_NOT_FOUND);
}

static void test_store__claim_oldest_first(void **state)
{
    struct fx *f = *state;
    static const int order[] = {3, 0, 4, 1, 2};
    struct ig_task t[5], out[5], g;
    struct ig_id failed[4];
    int nout, nfailed;
    int64_t counts[IG_TASK__COUNT];

    for (int i = 0; i < 5; i++)
        make_task(&t[i], NOW - 5000 + 1000 * i);
    for (int i = 0; i < 5; i++)
        insert(f->s, &t[order[i]]);

    assert_int_equal(ig_store_task_claim(f->s, NOW, "w1", NOW + 60000, 3, out, &nout, failed,
                                         4, &nfailed),
                     IG_OK);
    assert_int_equal(nout, 3);
    assert_int_equal(nfailed, 0);
    for (int i = 0; i < 3; i++) {
        assert_true(ig_id_equal(&out[i].id, &t[i].id));
        assert_int_equal(out[i].state, IG_TASK_RUNNING);
        assert_string_equal(out[i].lease_owner, "w1");
        assert_int_equal(out[i].lease_until_ms, NOW + 60000);
        assert_int_equal(out[i].attempts, 1);
        assert_int_equal(out[i].started_ms, NOW);
        assert_string_equal(out[i].req.prompt, "a cat in a hat");
        get(f->s, &t[i].id, &g);
        assert_int_equal(g.state, IG_TASK_RUNNING);
        assert_int_equal(g.attempts, 1);
        ig_task_release(&g);
    }
    release_all(out, nout);

    assert_int_equal(ig_store_task_claim(f->s, NOW, "w2", NOW + 60000, 5, out, &nout, failed,
                                         4, &nfailed),
                     IG_OK);
    assert_int_equal(nout, 2);
    assert_true(ig_id_equal(&out[0].id, &t[3].id));
    assert_true(ig_id_equal(&out[1].id, &t[4].id));
    release_all(out, nout);

    assert_int_equal(ig_store_task_claim(f->s, NOW, "w3", NOW + 60000, 5, out, &nout, failed,
                                         4, &nfailed),
                     IG_OK);
    assert_int_equal(nout, 0);
    assert_int_equal(ig_store_task_counts(f->s, counts), IG_OK);
    assert_int_equal(counts[IG_TASK_RUNNING], 5);
    assert_int_equal(counts[IG_TASK_QUEUED], 0);
    release_all(t, 5);
}

static void test_store__claim_reclaims_expired_lease(void **state)
{
    struct fx *f = *state;
    struct ig_task t, out[2], g;
    struct ig_id failed[2];
    int nout, nfailed;

    make_task(&t, NOW - 1000);
    t.started_ms = 0;
    insert(f->s, &t);
    assert_int_equal(ig_store_task_claim(f->s, NOW, "a", NOW + 1000, 2, out, &nout, failed, 2,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 1);
    release_all(out, nout);

    /* The lease still holds: nothing to claim. */
    assert_int_equal(ig_store_task_claim(f->s, NOW + 999, "b", NOW + 5000, 2, out, &nout,
                                         failed, 2, &nfailed),
                     IG_OK);
    assert_int_equal(nout, 0);

    /* Past it: another worker takes it over, attempt 2, started_ms kept. */
    assert_int_equal(ig_store_task_claim(f->s, NOW + 1001, "b", NOW + 9000, 2, out, &nout,
                                         failed, 2, &nfailed),
                     IG_OK);
    assert_int_equal(nout, 1);
    assert_int_equal(out[0].attempts, 2);
    assert_string_equal(out[0].lease_owner, "b");
    assert_int_equal(out[0].lease_until_ms, NOW + 9000);
    assert_int_equal(out[0].started_ms, NOW);
    release_all(out, nout);

    /* The first worker lost it: its renew and finish fail, nothing changes. */
    assert_int_equal(ig_store_task_renew(f->s, &t.id, "a", 1, NOW + 99999, 50), IG_E_CONFLICT);
    t.state = IG_TASK_SUCCEEDED;
    assert_int_equal(ig_store_task_finish(f->s, &t, "a", 1), IG_E_CONFLICT);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_RUNNING);
    assert_string_equal(g.lease_owner, "b");
    assert_int_equal(g.lease_until_ms, NOW + 9000);
    ig_task_release(&g);
    ig_task_release(&t);
}

static void test_store__claim_fails_doomed_tasks(void **state)
{
    struct fx *f = *state;
    struct ig_task late, spent, stale, ok, g, out[4];
    struct ig_id failed[4];
    int nout, nfailed;

    make_task(&late, NOW - 4000);
    late.deadline_ms = NOW - 1;
    insert(f->s, &late);
    make_task(&spent, NOW - 3000);
    spent.attempts = 3;
    spent.max_attempts = 3;
    insert(f->s, &spent);
    /* Running under a lease that ended, with its last attempt used up (a poison pill). */
    make_task(&stale, NOW - 2000);
    stale.state = IG_TASK_RUNNING;
    stale.attempts = 3;
    stale.lease_until_ms = NOW - 10;
    snprintf(stale.lease_owner, sizeof(stale.lease_owner), "dead");
    insert(f->s, &stale);
    make_task(&ok, NOW - 1000);
    insert(f->s, &ok);

    assert_int_equal(ig_store_task_claim(f->s, NOW, "w", NOW + 1000, 4, out, &nout, failed, 4,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 1);
    assert_true(ig_id_equal(&out[0].id, &ok.id));
    release_all(out, nout);
    assert_int_equal(nfailed, 3);
    assert_true(ig_id_equal(&failed[0], &late.id));
    assert_true(ig_id_equal(&failed[1], &spent.id));
    assert_true(ig_id_equal(&failed[2], &stale.id));

    get(f->s, &late.id, &g);
    assert_int_equal(g.state, IG_TASK_FAILED);
    assert_int_equal(g.err, IG_E_UPSTREAM_TIMEOUT);
    assert_string_equal(g.err_message, "task deadline passed before it could run");
    assert_int_equal(g.finished_ms, NOW);
    assert_int_equal(g.attempts, 0);
    ig_task_release(&g);
    get(f->s, &spent.id, &g);
    assert_int_equal(g.state, IG_TASK_FAILED);
    assert_int_equal(g.err, IG_E_INTERNAL);
    assert_string_equal(g.err_message,
                        "attempts exhausted after 3 tries: the task failed repeatedly");
    ig_task_release(&g);
    get(f->s, &stale.id, &g);
    assert_int_equal(g.state, IG_TASK_FAILED);
    assert_int_equal(g.err, IG_E_INTERNAL);
    assert_int_equal(g.attempts, 3);
    ig_task_release(&g);

    /* Failed tasks are terminal: a second claim neither fails nor claims them again. */
    assert_int_equal(ig_store_task_claim(f->s, NOW, "w", NOW + 1000, 4, out, &nout, failed, 4,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 0);
    assert_int_equal(nfailed, 0);
    ig_task_release(&late);
    ig_task_release(&spent);
    ig_task_release(&stale);
    ig_task_release(&ok);
}

static void test_store__claim_reports_at_most_maxfailed(void **state)
{
    struct fx *f = *state;
    struct ig_task t[3], out[1];
    struct ig_id failed[2];
    int nout, nfailed;
    int64_t counts[IG_TASK__COUNT];

    for (int i = 0; i < 3; i++) {
        make_task(&t[i], NOW - 3000 + i);
        t[i].deadline_ms = NOW - 1;
        insert(f->s, &t[i]);
    }
    /* Every task failed is reported: the third waits for the next call. */
    assert_int_equal(ig_store_task_claim(f->s, NOW, "w", NOW + 1000, 1, out, &nout, failed, 2,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 0);
    assert_int_equal(nfailed, 2);
    assert_int_equal(ig_store_task_claim(f->s, NOW, "w", NOW + 1000, 1, out, &nout, failed, 2,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 0);
    assert_int_equal(nfailed, 1);
    assert_true(ig_id_equal(&failed[0], &t[2].id));
    assert_int_equal(ig_store_task_counts(f->s, counts), IG_OK);
    assert_int_equal(counts[IG_TASK_FAILED], 3);
    release_all(t, 3);
}

static void test_store__claim_inside_caller_transaction(void **state)
{
    struct fx *f = *state;
    struct ig_task t, out[1], g;
    struct ig_id failed[1];
    int nout, nfailed;

    make_task(&t, NOW);
    insert(f->s, &t);
    assert_int_equal(ig_store_begin(f->s), IG_OK);
    assert_int_equal(ig_store_task_claim(f->s, NOW, "w", NOW + 1000, 1, out, &nout, failed, 1,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 1);
    release_all(out, nout);
    assert_int_equal(ig_store_rollback(f->s), IG_OK);
    /* The caller rolled back: the claim never happened. */
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_QUEUED);
    assert_int_equal(g.attempts, 0);
    ig_task_release(&g);
    ig_task_release(&t);
}

/* Insert one task and claim it as (owner, attempt 1). */
static void insert_and_claim(struct fx *f, struct ig_task *t, const char *owner)
{
    struct ig_task out[1];
    struct ig_id failed[1];
    int nout, nfailed;

    make_task(t, NOW);
    insert(f->s, t);
    assert_int_equal(ig_store_task_claim(f->s, NOW, owner, NOW + 60000, 1, out, &nout, failed, 1,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 1);
    assert_true(ig_id_equal(&out[0].id, &t->id));
    release_all(out, nout);
}

static void test_store__finish_is_compare_and_swap(void **state)
{
    struct fx *f = *state;
    struct ig_task t, g;

    insert_and_claim(f, &t, "owner");
    t.state = IG_TASK_SUCCEEDED;
    t.progress = 100;
    t.finished_ms = NOW + 5000;
    snprintf(t.channel, sizeof(t.channel), "offline");
    t.offline = true;
    t.usage.image_tokens = 1290;
    t.usage.images = 1;
    t.price_captured = 39000;
    t.expires_ms = NOW + 86400000;
    t.text = ig_xstrdup("done");
    add_output(&t, "finish", "png");

    assert_int_equal(ig_store_task_finish(f->s, &t, "intruder", 1), IG_E_CONFLICT);
    assert_int_equal(ig_store_task_finish(f->s, &t, "owner", 2), IG_E_CONFLICT);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_RUNNING);
    assert_int_equal(g.noutputs, 0);
    assert_null(g.text);
    assert_int_equal(g.finished_ms, 0);
    ig_task_release(&g);

    /* A non-terminal target state is a caller bug. */
    t.state = IG_TASK_QUEUED;
    assert_int_equal(ig_store_task_finish(f->s, &t, "owner", 1), IG_E_INVALID);
    t.state = IG_TASK_SUCCEEDED;

    assert_int_equal(ig_store_task_finish(f->s, &t, "owner", 1), IG_OK);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_SUCCEEDED);
    assert_int_equal(g.progress, 100);
    assert_int_equal(g.finished_ms, NOW + 5000);
    assert_string_equal(g.channel, "offline");
    assert_true(g.offline);
    assert_int_equal(g.usage.image_tokens, 1290);
    assert_int_equal(g.price_captured, 39000);
    assert_int_equal(g.expires_ms, NOW + 86400000);
    assert_int_equal(g.lease_until_ms, 0);
    assert_string_equal(g.text, "done");
    assert_int_equal(g.err, IG_OK);
    assert_int_equal(g.noutputs, 1);
    assert_string_equal(g.outputs[0].blob, t.outputs[0].blob);
    ig_task_release(&g);

    /* Twice: the second loses. */
    t.state = IG_TASK_FAILED;
    assert_int_equal(ig_store_task_finish(f->s, &t, "owner", 1), IG_E_CONFLICT);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_SUCCEEDED);
    ig_task_release(&g);
    ig_task_release(&t);
}

static void test_store__finish_failed_records_error(void **state)
{
    struct fx *f = *state;
    struct ig_task t, g;

    insert_and_claim(f, &t, "owner");
    t.state = IG_TASK_FAILED;
    t.finished_ms = NOW + 1;
    ig_task_set_error(&t, IG_E_UPSTREAM_FAILED, "upstream said no");
    t.upstream = ig_xstrdup("{\"attempts\":[{\"channel\":\"a\",\"status\":400}]}");
    assert_int_equal(ig_store_task_finish(f->s, &t, "owner", 1), IG_OK);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_FAILED);
    assert_int_equal(g.err, IG_E_UPSTREAM_FAILED);
    assert_string_equal(g.err_message, "upstream said no");
    assert_string_equal(g.upstream, t.upstream);
    ig_task_release(&g);
    ig_task_release(&t);
}

static void test_store__cancel(void **state)
{
    struct fx *f = *state;
    struct ig_task q, r, g;
    struct ig_id none;

    make_task(&q, NOW);
    insert(f->s, &q);
    assert_int_equal(ig_store_task_cancel(f->s, &q.id, NOW + 7), IG_OK);
    get(f->s, &q.id, &g);
    assert_int_equal(g.state, IG_TASK_CANCELLED);
    assert_int_equal(g.err, IG_E_CANCELLED);
    assert_int_equal(g.finished_ms, NOW + 7);
    ig_task_release(&g);
    /* Terminal: a second cancel conflicts. */
    assert_int_equal(ig_store_task_cancel(f->s, &q.id, NOW + 8), IG_E_CONFLICT);

    insert_and_claim(f, &r, "w");
    assert_int_equal(ig_store_task_cancel(f->s, &r.id, NOW + 9), IG_OK);
    /* The worker that held it cannot finish it afterwards. */
    r.state = IG_TASK_SUCCEEDED;
    assert_int_equal(ig_store_task_finish(f->s, &r, "w", 1), IG_E_CONFLICT);
    get(f->s, &r.id, &g);
    assert_int_equal(g.state, IG_TASK_CANCELLED);
    ig_task_release(&g);

    ig_id_new(&none);
    assert_int_equal(ig_store_task_cancel(f->s, &none, NOW), IG_E_NOT_FOUND);
    ig_task_release(&q);
    ig_task_release(&r);
}

static void test_store__requeue(void **state)
{
    struct fx *f = *state;
    struct ig_task t, g, out[1];
    struct ig_id failed[1];
    int nout, nfailed;

    insert_and_claim(f, &t, "w");
    assert_int_equal(ig_store_task_requeue(f->s, &t.id, "other", 1, true), IG_E_CONFLICT);
    assert_int_equal(ig_store_task_requeue(f->s, &t.id, "w", 2, true), IG_E_CONFLICT);
    /* uncount: the attempt is given back. */
    assert_int_equal(ig_store_task_requeue(f->s, &t.id, "w", 1, true), IG_OK);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_QUEUED);
    assert_int_equal(g.attempts, 0);
    assert_string_equal(g.lease_owner, "");
    assert_int_equal(g.lease_until_ms, 0);
    ig_task_release(&g);

    assert_int_equal(ig_store_task_claim(f->s, NOW, "w", NOW + 100, 1, out, &nout, failed, 1,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 1);
    assert_int_equal(out[0].attempts, 1);
    release_all(out, nout);
    /* Counted: the attempt stays used. */
    assert_int_equal(ig_store_task_requeue(f->s, &t.id, "w", 1, false), IG_OK);
    assert_int_equal(ig_store_task_claim(f->s, NOW, "w", NOW + 100, 1, out, &nout, failed, 1,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 1);
    assert_int_equal(out[0].attempts, 2);
    release_all(out, nout);
    ig_task_release(&t);
}

static void test_store__renew(void **state)
{
    struct fx *f = *state;
    struct ig_task t, g;

    insert_and_claim(f, &t, "w");
    assert_int_equal(ig_store_task_renew(f->s, &t.id, "w", 1, NOW + 120000, 30), IG_OK);
    get(f->s, &t.id, &g);
    assert_int_equal(g.lease_until_ms, NOW + 120000);
    assert_int_equal(g.progress, 30);
    ig_task_release(&g);
    /* A negative progress keeps the stored one. */
    assert_int_equal(ig_store_task_renew(f->s, &t.id, "w", 1, NOW + 130000, -1), IG_OK);
    get(f->s, &t.id, &g);
    assert_int_equal(g.lease_until_ms, NOW + 130000);
    assert_int_equal(g.progress, 30);
    ig_task_release(&g);
    assert_int_equal(ig_store_task_renew(f->s, &t.id, "w", 2, NOW + 140000, 70), IG_E_CONFLICT);
    assert_int_equal(ig_store_task_renew(f->s, &t.id, "x", 1, NOW + 140000, 70), IG_E_CONFLICT);
    ig_task_release(&t);
}

static void test_store__expire_leases(void **state)
{
    struct fx *f = *state;
    struct ig_task a, b, out[2];
    struct ig_id failed[2];
    int n, nout, nfailed;

    insert_and_claim(f, &a, "dead");
    insert_and_claim(f, &b, "dead");
    assert_int_equal(ig_store_task_claim(f->s, NOW + 1, "new", NOW + 1000, 2, out, &nout, failed,
                                         2, &nfailed),
                     IG_OK);
    assert_int_equal(nout, 0);
    assert_int_equal(ig_store_task_expire_leases(f->s, NOW + 1, &n), IG_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ig_store_task_claim(f->s, NOW + 1, "new", NOW + 1000, 2, out, &nout, failed,
                                         2, &nfailed),
                     IG_OK);
    assert_int_equal(nout, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(out[i].attempts, 2);
        assert_string_equal(out[i].lease_owner, "new");
    }
    release_all(out, nout);
    assert_int_equal(ig_store_task_expire_leases(f->s, NOW + 1, &n), IG_OK);
    assert_int_equal(n, 2);
    ig_task_release(&a);
    ig_task_release(&b);
}

struct seen {
    int n;
    char blob[8][IG_SHA256_HEX_LEN + 1];
    char ext[8][8];
};

static void on_blob(const char *blob, const char *ext, void *arg)
{
    struct seen *s = arg;

    assert_true(s->n < 8);
    snprintf(s->blob[s->n], sizeof(s->blob[0]), "%s", blob);
    snprintf(s->ext[s->n], sizeof(s->ext[0]), "%s", ext);
    s->n++;
}

static bool seen_has(const struct seen *s, const char *blob)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->blob[i], blob) == 0)
            return true;
    return false;
}

/* A succeeded task with outputs made from the given seeds, expiring at `expires`. */
static void insert_done(struct fx *f, struct ig_task *t, int64_t expires, const char *seed1,
                        const char *seed2)
{
    make_task(t, NOW);
    t->state = IG_TASK_SUCCEEDED;
    t->expires_ms = expires;
    add_output(t, seed1, "png");
    if (seed2)
        add_output(t, seed2, "jpeg");
    insert(f->s, t);
}

static void test_store__sweep_expired(void **state)
{
    struct fx *f = *state;
    struct ig_task a, b, c, d, e, g;
    struct seen seen = {0};
    int ntasks;

    insert_done(f, &a, NOW, "unique-a", "shared");   /* expires now */
    insert_done(f, &b, 0, "shared", NULL);            /* never expires, keeps "shared" */
    insert_done(f, &c, NOW + 1000, "later", NULL);    /* expires later */
    insert_done(f, &d, NOW - 5, "twice", NULL);       /* d and e share a blob, both expire */
    insert_done(f, &e, NOW - 5, "twice", "unique-e");
    /* A failed task with an expiry time is not swept (it has no outputs to show). */
    make_task(&g, NOW);
    g.state = IG_TASK_FAILED;
    g.expires_ms = NOW - 100;
    insert(f->s, &g);
    ig_task_release(&g);

    assert_int_equal(ig_store_sweep_expired(f->s, NOW, on_blob, &seen, &ntasks), IG_OK);
    assert_int_equal(ntasks, 3);
    assert_int_equal(seen.n, 3);
    assert_true(seen_has(&seen, a.outputs[0].blob));
    assert_true(seen_has(&seen, d.outputs[0].blob));
    assert_true(seen_has(&seen, e.outputs[1].blob));
    assert_false(seen_has(&seen, b.outputs[0].blob)); /* shared with unexpired b */
    for (int i = 0; i < seen.n; i++)
        if (strcmp(seen.blob[i], e.outputs[1].blob) == 0)
            assert_string_equal(seen.ext[i], "jpeg");

    get(f->s, &a.id, &g);
    assert_true(g.outputs_expired);
    assert_int_equal(g.noutputs, 2); /* the rows stay, for the record */
    ig_task_release(&g);
    get(f->s, &b.id, &g);
    assert_false(g.outputs_expired);
    ig_task_release(&g);

    /* Again at the same time: nothing new. */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(ig_store_sweep_expired(f->s, NOW, on_blob, &seen, &ntasks), IG_OK);
    assert_int_equal(ntasks, 0);
    assert_int_equal(seen.n, 0);

    /* Later: c goes. */
    assert_int_equal(ig_store_sweep_expired(f->s, NOW + 1000, on_blob, &seen, &ntasks), IG_OK);
    assert_int_equal(ntasks, 1);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.blob[0], c.outputs[0].blob);
    assert_string_equal(seen.ext[0], "png");

    /* A NULL callback only marks. */
    assert_int_equal(ig_store_sweep_expired(f->s, NOW + 2000, NULL, NULL, &ntasks), IG_OK);
    assert_int_equal(ntasks, 0);
    ig_task_release(&a);
    ig_task_release(&b);
    ig_task_release(&c);
    ig_task_release(&d);
    ig_task_release(&e);
}

static void test_store__keys(void **state)
{
    struct fx *f = *state;
    struct ig_key k1, k2, got;
    unsigned char other[IG_SHA256_LEN];
    int64_t n;

    assert_int_equal(ig_store_key_count(f->s, &n), IG_OK);
    assert_int_equal(n, 0);
    memset(&k1, 0, sizeof(k1));
    ig_sha256("sk-one", 6, k1.hash);
    snprintf(k1.name, sizeof(k1.name), "first");
    k1.created_ms = NOW;
    k1.credits = 5000000;
    assert_int_equal(ig_store_key_insert(f->s, &k1), IG_OK);
    assert_true(k1.id > 0);
    memset(&k2, 0, sizeof(k2));
    ig_sha256("sk-two", 6, k2.hash);
    k2.revoked = true;
    assert_int_equal(ig_store_key_insert(f->s, &k2), IG_OK);
    assert_true(k2.id > k1.id);

    assert_int_equal(ig_store_key_by_hash(f->s, k1.hash, &got), IG_OK);
    assert_int_equal(got.id, k1.id);
    assert_memory_equal(got.hash, k1.hash, IG_SHA256_LEN);
    assert_string_equal(got.name, "first");
    assert_int_equal(got.created_ms, NOW);
    assert_int_equal(got.credits, 5000000);
    assert_false(got.revoked);
    assert_int_equal(ig_store_key_by_hash(f->s, k2.hash, &got), IG_OK);
    assert_int_equal(got.id, k2.id);
    assert_true(got.revoked);

    ig_sha256("sk-three", 8, other);
    assert_int_equal(ig_store_key_by_hash(f->s, other, &got), IG_E_NOT_FOUND);
    /* The same hash twice is a conflict. */
    assert_int_equal(ig_store_key_insert(f->s, &k1), IG_E_CONFLICT);
    assert_int_equal(ig_store_key_count(f->s, &n), IG_OK);
    assert_int_equal(n, 2);
}

static void test_store__two_connections_see_commits(void **state)
{
    struct fx *f = *state;
    struct ig_store *s2;
    struct ig_errbuf eb;
    struct ig_task t, g, out[1];
    struct ig_id failed[1];
    int nout, nfailed;

    ig_errbuf_clear(&eb);
    /* A bare path works as well as "sqlite:PATH". */
    assert_int_equal(ig_store_open(&s2, f->path + strlen("sqlite:"), &eb), IG_OK);
    assert_int_equal(ig_store_migrate(s2, &eb), IG_OK);
    assert_string_equal(s2->ops->name, "sqlite");
    assert_int_equal(s2->ops->abi_version, 1);

    make_task(&t, NOW);
    insert(f->s, &t);
    get(s2, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_QUEUED);
    ig_task_release(&g);

    assert_int_equal(ig_store_task_claim(s2, NOW, "two", NOW + 100, 1, out, &nout, failed, 1,
                                         &nfailed),
                     IG_OK);
    assert_int_equal(nout, 1);
    release_all(out, nout);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_RUNNING);
    assert_string_equal(g.lease_owner, "two");
    ig_task_release(&g);

    /* An open write transaction on one holds the other's writes back (busy), not its reads. */
    assert_int_equal(ig_store_begin(s2), IG_OK);
    assert_int_equal(ig_store_task_cancel(s2, &t.id, NOW), IG_OK);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_RUNNING); /* not committed yet */
    ig_task_release(&g);
    assert_int_equal(ig_store_commit(s2), IG_OK);
    get(f->s, &t.id, &g);
    assert_int_equal(g.state, IG_TASK_CANCELLED);
    ig_task_release(&g);

    ig_store_close(s2);
    ig_task_release(&t);
}

/* ---- the ledger ------------------------------------------------------------------------- */

static int64_t new_key(struct ig_store *s, const char *secret, int64_t credits, bool metered)
{
    struct ig_key k;

    memset(&k, 0, sizeof(k));
    ig_sha256(secret, strlen(secret), k.hash);
    k.created_ms = NOW;
    k.credits = credits;
    k.metered = metered;
    assert_int_equal(ig_store_key_insert(s, &k), IG_OK);
    return k.id;
}

static int64_t key_balance(struct ig_store *s, const char *secret)
{
    unsigned char h[IG_SHA256_LEN];
    struct ig_key k;

    ig_sha256(secret, strlen(secret), h);
    assert_int_equal(ig_store_key_by_hash(s, h, &k), IG_OK);
    return k.credits;
}

struct sums {
    int n, bad;
};

static void count_balances(int64_t key_id, int64_t balance, int64_t sum, void *arg)
{
    struct sums *c = arg;

    c->n++;
    c->bad += balance != sum;
}

static void assert_ledger_adds_up(struct ig_store *s, int nkeys)
{
    struct sums c = {0, 0};

    assert_int_equal(ig_store_ledger_check(s, count_balances, &c), IG_OK);
    assert_int_equal(c.n, nkeys);
    assert_int_equal(c.bad, 0);
}

static void test_store__ledger_hold_and_settle(void **state)
{
    struct fx *f = *state;
    struct ig_task t, u, fin;
    int64_t key = new_key(f->s, "paying", 100000, true);
    struct ig_task claimed[2];
    int nclaimed = 0, nfailed = 0;
    struct ig_id failed[2];

    /* a hold the balance can pay: taken with the task */
    make_task(&t, NOW);
    t.key_id = key;
    t.req.n = 2;
    t.price_held = 78000;
    insert(f->s, &t);
    assert_int_equal(key_balance(f->s, "paying"), 22000);
    /* one it cannot: refused, and no task row */
    make_task(&u, NOW + 1);
    u.key_id = key;
    u.price_held = 39000;
    assert_int_equal(ig_store_task_insert(f->s, &u), IG_E_INSUFFICIENT);
    ig_task_init(&fin);
    assert_int_equal(ig_store_task_get(f->s, &u.id, &fin), IG_E_NOT_FOUND);
    ig_task_release(&fin);
    assert_int_equal(key_balance(f->s, "paying"), 22000);
    /* the task succeeds with one of its two images: pays for one */
    assert_int_equal(ig_store_task_claim(f->s, NOW + 10, "node-a", NOW + 60000, 2, claimed, &nclaimed,
                                         failed, 2, &nfailed),
                     IG_OK);
    assert_int_equal(nclaimed, 1);
    ig_task_copy(&fin, &claimed[0]);
    fin.state = IG_TASK_SUCCEEDED;
    fin.finished_ms = NOW + 20;
    fin.price_captured = 39000;
    assert_int_equal(ig_store_task_finish(f->s, &fin, "node-a", 1), IG_OK);
    assert_int_equal(key_balance(f->s, "paying"), 100000 - 39000);
    assert_ledger_adds_up(f->s, 1);
    /* a second finish (a replay, a bug) cannot settle again */
    assert_int_equal(ig_store_task_finish(f->s, &fin, "node-a", 1), IG_E_CONFLICT);
    assert_int_equal(key_balance(f->s, "paying"), 100000 - 39000);
    ig_task_release(&fin);
    ig_task_release(&claimed[0]);
    ig_task_release(&t);
    ig_task_release(&u);
}

static void test_store__ledger_released_on_cancel_and_doom(void **state)
{
    struct fx *f = *state;
    struct ig_task a, b, claimed[2];
    int64_t key = new_key(f->s, "refunds", 200000, true);
    int nclaimed = 0, nfailed = 0;
    struct ig_id failed[2];

    make_task(&a, NOW);
    a.key_id = key;
    a.price_held = 39000;
    insert(f->s, &a);
    make_task(&b, NOW + 1);
    b.key_id = key;
    b.price_held = 78000;
    b.deadline_ms = NOW + 5; /* will be past its deadline at the claim */
    insert(f->s, &b);
    assert_int_equal(key_balance(f->s, "refunds"), 200000 - 117000);
    assert_int_equal(ig_store_task_cancel(f->s, &a.id, NOW + 2), IG_OK);
    assert_int_equal(key_balance(f->s, "refunds"), 200000 - 78000);
    /* cancelling again changes nothing */
    assert_int_equal(ig_store_task_cancel(f->s, &a.id, NOW + 3), IG_E_CONFLICT);
    assert_int_equal(ig_store_task_claim(f->s, NOW + 10, "node-a", NOW + 60000, 2, claimed, &nclaimed,
                                         failed, 2, &nfailed),
                     IG_OK);
    assert_int_equal(nclaimed, 0);
    assert_int_equal(nfailed, 1);
    assert_int_equal(key_balance(f->s, "refunds"), 200000);
    assert_ledger_adds_up(f->s, 1);
    ig_task_release(&a);
    ig_task_release(&b);
}

static void test_store__key_credit(void **state)
{
    struct fx *f = *state;
    int64_t metered = new_key(f->s, "m", 0, true), free_key = new_key(f->s, "u", 0, false);
    int64_t bal = -1;

    assert_int_equal(ig_store_key_credit(f->s, metered, 2500000, NOW, "invoice", &bal), IG_OK);
    assert_int_equal(bal, 2500000);
    assert_int_equal(ig_store_key_credit(f->s, metered, -2500001, NOW, NULL, &bal), IG_E_INSUFFICIENT);
    assert_int_equal(key_balance(f->s, "m"), 2500000);
    assert_int_equal(ig_store_key_credit(f->s, metered, -500000, NOW, NULL, &bal), IG_OK);
    assert_int_equal(bal, 2000000);
    /* an unmetered key may go below zero */
    assert_int_equal(ig_store_key_credit(f->s, free_key, -1, NOW, NULL, &bal), IG_OK);
    assert_int_equal(bal, -1);
    assert_int_equal(ig_store_key_credit(f->s, 9999, 1, NOW, NULL, &bal), IG_E_NOT_FOUND);
    assert_int_equal(ig_store_key_credit(f->s, metered, 0, NOW, NULL, &bal), IG_E_INVALID);
    assert_ledger_adds_up(f->s, 2);
}

static void test_store__unfinished_tasks_limit(void **state)
{
    struct fx *f = *state;
    struct ig_task t[3];
    int64_t key = new_key(f->s, "busy", 0, false);

    for (int i = 0; i < 3; i++) {
        make_task(&t[i], NOW + i);
        t[i].key_id = key;
        t[i].admit_max_tasks = 2;
    }
    insert(f->s, &t[0]);
    insert(f->s, &t[1]);
    assert_int_equal(ig_store_task_insert(f->s, &t[2]), IG_E_RATE_LIMITED);
    /* one ends: there is room again */
    assert_int_equal(ig_store_task_cancel(f->s, &t[0].id, NOW + 5), IG_OK);
    insert(f->s, &t[2]);
    /* other keys and unlimited tasks are not counted against it */
    t[0].admit_max_tasks = 0;
    ig_id_new(&t[0].id);
    insert(f->s, &t[0]);
    for (int i = 0; i < 3; i++)
        ig_task_release(&t[i]);
}

static void test_store__key_limits(void **state)
{
    struct fx *f = *state;
    struct ig_key k, got;

    memset(&k, 0, sizeof(k));
    ig_sha256("lim", 3, k.hash);
    k.rate_rpm = -1;
    k.max_tasks = 7;
    assert_int_equal(ig_store_key_insert(f->s, &k), IG_OK);
    assert_int_equal(ig_store_key_by_hash(f->s, k.hash, &got), IG_OK);
    assert_int_equal(got.rate_rpm, -1);
    assert_int_equal(got.max_tasks, 7);
    assert_int_equal(ig_store_key_set_limits(f->s, k.id, 0, -1), IG_OK);
    assert_int_equal(ig_store_key_by_hash(f->s, k.hash, &got), IG_OK);
    assert_int_equal(got.rate_rpm, 0);
    assert_int_equal(got.max_tasks, -1);
    assert_int_equal(ig_store_key_set_limits(f->s, 999, 1, 1), IG_E_NOT_FOUND);
}

static void test_store__idempotency_records(void **state)
{
    struct fx *f = *state;
    struct ig_task t, dup;
    struct ig_idem_record r, got;

    memset(&r, 0, sizeof(r));
    r.key_id = 1;
    snprintf(r.idem_key, sizeof(r.idem_key), "order-9");
    memset(r.request_hash, 0xab, sizeof(r.request_hash));
    r.status = 200;
    snprintf(r.content_type, sizeof(r.content_type), "application/json");
    r.response = (char *)"{\"id\":\"task_x\"}";
    r.len = strlen(r.response);
    r.created_ms = NOW;
    make_task(&t, NOW);
    t.idem = &r;
    insert(f->s, &t);
    assert_int_equal(ig_store_idem_get(f->s, 1, "order-9", NOW - 1000, &got), IG_OK);
    assert_int_equal(got.status, 200);
    assert_string_equal(got.content_type, "application/json");
    assert_int_equal(got.len, r.len);
    assert_memory_equal(got.response, r.response, r.len);
    assert_memory_equal(got.request_hash, r.request_hash, IG_SHA256_LEN);
    free(got.response);
    /* another API key, or a record older than asked for: none */
    assert_int_equal(ig_store_idem_get(f->s, 2, "order-9", NOW - 1000, &got), IG_E_NOT_FOUND);
    assert_int_equal(ig_store_idem_get(f->s, 1, "order-9", NOW + 1, &got), IG_E_NOT_FOUND);
    /* the same key once more: the whole insert fails, no second task */
    make_task(&dup, NOW + 5);
    dup.idem = &r;
    assert_int_equal(ig_store_task_insert(f->s, &dup), IG_E_CONFLICT);
    {
        struct ig_task none;

        ig_task_init(&none);
        assert_int_equal(ig_store_task_get(f->s, &dup.id, &none), IG_E_NOT_FOUND);
        ig_task_release(&none);
    }
    /* the sweep deletes records made before the cut */
    {
        int n = -1;

        assert_int_equal(ig_store_idem_sweep(f->s, NOW + 1, &n), IG_OK);
        assert_int_equal(n, 1);
        assert_int_equal(ig_store_idem_get(f->s, 1, "order-9", 0, &got), IG_E_NOT_FOUND);
    }
    ig_task_release(&t);
    ig_task_release(&dup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store__migrate_is_idempotent, setup, teardown),
        cmocka_unit_test(test_store__open_rejects_bad_dsn),
        cmocka_unit_test_setup_teardown(test_store__task_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__claim_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__claim_reclaims_expired_lease, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store__claim_fails_doomed_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__claim_reports_at_most_maxfailed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store__claim_inside_caller_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store__finish_is_compare_and_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__finish_failed_records_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store__cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__requeue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__renew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__expire_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__sweep_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__ledger_hold_and_settle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__ledger_released_on_cancel_and_doom, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store__key_credit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__unfinished_tasks_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__key_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__idempotency_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__two_connections_see_commits, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
