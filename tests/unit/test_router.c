/* test_router.c: the channel router: picking, retries with backoff, failover, cool-down after
 * 429, disabling refused keys, the official pin and the offline fallback, with scripted
 * providers behind the channels (no network). */
#include "base/base.h"
#include "core/catalog.h"
#include "provider/channel.h"

#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

extern struct ig_provider *(*router_make_provider)(const struct ig_channel *c);

/* ---- a scripted provider: each channel answers from its own list of outcomes ---------- */

struct outcome {
    enum ig_err err;
    int status;
    bool retryable, maybe, auth;
    int64_t retry_after_ms;
    bool partial; /* with IG_OK: one image only, the other calls failed as described */
};

#define SCRIPT_MAX 16

struct script {
    char channel[64];
    int n, next;
    struct outcome o[SCRIPT_MAX];
    struct outcome dflt;       /* once the list is used up */
    int calls;
    int64_t call_ms[64];
};

static struct script scripts[4];
static int nscripts;
static struct event_base *base;

static struct script *script_for(const char *name)
{
    for (int i = 0; i < nscripts; i++)
        if (strcmp(scripts[i].channel, name) == 0)
            return &scripts[i];
    fail_msg("no script for channel %s", name);
    return NULL;
}

struct pending {
    struct ig_job *job;
    struct script *sc;
    struct event *ev;
};

static void answer(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    struct outcome o = p->sc->next < p->sc->n ? p->sc->o[p->sc->next++] : p->sc->dflt;
    struct ig_job *job = p->job;

    job->err = o.err;
    job->http_status = o.status;
    job->retryable = o.retryable;
    job->maybe_executed = o.maybe;
    job->auth_failed = o.auth;
    job->retry_after_ms = o.retry_after_ms;
    if (!o.err) {
        int add = o.partial ? 1 : job->want > 0 ? job->want : job->task->req.n;

        for (int i = 0; i < add; i++) {
            job->images[job->nimages].data = ig_xmalloc(4);
            job->images[job->nimages].len = 4;
            job->nimages++;
        }
    } else {
        snprintf(job->errmsg, sizeof(job->errmsg), "scripted %s", ig_strerror(o.err));
    }
    event_free(p->ev);
    free(p);
    job->done(job);
}

static enum ig_err scripted_start(struct ig_provider *prov, struct ig_job *job)
{
    struct pending *p = ig_xcalloc(1, sizeof(*p));
    struct timeval tv = {0, 0};

    p->job = job;
    p->sc = prov->ctx;
    if (p->sc->calls < 64)
        p->sc->call_ms[p->sc->calls] = ig_mono_ms();
    p->sc->calls++;
    p->ev = evtimer_new(base, answer, p);
    evtimer_add(p->ev, &tv);
    return IG_OK;
}

static void scripted_free(struct ig_provider *p)
{
    free(p);
}

static const struct ig_provider_ops scripted_ops = {
    .name = "scripted", .abi_version = 1, .start = scripted_start, .free = scripted_free};

static struct ig_provider *make_scripted(const struct ig_channel *c)
{
    struct ig_provider *p = ig_xcalloc(1, sizeof(*p));

    p->ops = &scripted_ops;
    p->ctx = script_for(c->name);
    return p;
}

/* The offline stand-in: answers at once, counts calls. */
static int offline_calls;

static enum ig_err offline_start(struct ig_provider *prov, struct ig_job *job)
{
    static struct script off;

    offline_calls++;
    memset(&off, 0, sizeof(off));
    return scripted_start(&(struct ig_provider){.ops = &scripted_ops, .ctx = &off}, job);
}

static const struct ig_provider_ops offline_ops = {
    .name = "offline", .abi_version = 1, .start = offline_start, .free = scripted_free};

/* ---- fixture ------------------------------------------------------------------------- */

static const struct outcome OK = {IG_OK, 200, false, false, false, 0, false};
static const struct outcome E503 = {IG_E_UPSTREAM_SUBMIT, 503, true, false, false, 0, false};
static const struct outcome ETIMEOUT = {IG_E_UPSTREAM_TIMEOUT, 0, false, true, false, 0, false};
static const struct outcome E401 = {IG_E_UPSTREAM_SUBMIT, 401, false, false, true, 0, false};
static const struct outcome E400 = {IG_E_UPSTREAM_FAILED, 400, false, false, false, 0, false};

static struct ig_catalog *catalog;
static const struct ig_model *model;

static void add_channel(struct ig_channels *chs, const char *name, int prio, int weight,
                        bool official, struct outcome dflt)
{
    struct ig_channel *c = &chs->ch[chs->n++];
    struct script *sc = &scripts[nscripts++];

    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->type = IG_CHANNEL_GEMINI;
    c->priority = prio;
    c->weight = weight;
    c->official = official;
    c->nkeys = 1;
    memset(sc, 0, sizeof(*sc));
    snprintf(sc->channel, sizeof(sc->channel), "%s", name);
    sc->dflt = dflt;
}

static void push(const char *channel, struct outcome o)
{
    struct script *sc = script_for(channel);

    sc->o[sc->n++] = o;
}

static struct ig_router_opts fast_opts(void)
{
    struct ig_router_opts o;

    ig_router_opts_default(&o);
    o.backoff_base_ms = 20;
    o.backoff_max_ms = 40;
    o.cooldown_ms = 100;
    return o;
}

struct run {
    struct ig_task task;
    struct ig_job job;
    bool done;
    int64_t took_ms;
};

static void on_done(struct ig_job *job)
{
    struct run *r = job->arg;

    r->done = true;
    event_base_loopbreak(base);
}

/* Run one job through the router to its end. */
static void run_job_n(struct ig_provider *router, struct run *r, bool official, int n)
{
    int64_t t0 = ig_mono_ms();

    memset(r, 0, sizeof(*r));
    ig_task_init(&r->task);
    ig_id_new(&r->task.id);
    r->task.req.n = n;
    r->task.req.official = official;
    r->job.task = &r->task;
    r->job.model = model;
    r->job.base = base;
    r->job.done = on_done;
    r->job.arg = r;
    assert_int_equal(ig_provider_start(router, &r->job), IG_OK);
    while (!r->done)
        event_base_dispatch(base);
    r->took_ms = ig_mono_ms() - t0;
}

static void run_job(struct ig_provider *router, struct run *r, bool official)
{
    run_job_n(router, r, official, 1);
}

static void run_release(struct run *r)
{
    ig_job_release(&r->job);
    ig_task_release(&r->task);
}

static struct ig_provider *offline_new(void)
{
    struct ig_provider *p = ig_xcalloc(1, sizeof(*p));

    p->ops = &offline_ops;
    return p;
}

static int setup(void **state)
{
    struct ig_errbuf eb;

    nscripts = 0;
    offline_calls = 0;
    router_make_provider = make_scripted;
    base = event_base_new();
    assert_int_equal(ig_catalog_load_default(&catalog, &eb), IG_OK);
    model = ig_catalog_find(catalog, "gemini-2.5-flash-image", NULL);
    assert_non_null(model);
    return 0;
}

static int teardown(void **state)
{
    event_base_free(base);
    ig_catalog_free(catalog);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_router__success_first_try(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    add_channel(&chs, "a", 0, 1, false, OK);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nattempts, 1);
    assert_string_equal(r.job.attempts[0].channel, "a");
    assert_int_equal(r.job.attempts[0].http_status, 200);
    assert_string_equal(r.job.channel, "a");
    assert_false(r.job.offline);
    assert_int_equal(r.job.nimages, 1);
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__retries_503_then_succeeds(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    add_channel(&chs, "a", 0, 1, false, OK);
    push("a", E503);
    push("a", E503);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nattempts, 3);
    assert_int_equal(r.job.attempts[0].http_status, 503);
    assert_int_equal(r.job.attempts[1].http_status, 503);
    assert_int_equal(r.job.attempts[2].http_status, 200);
    assert_int_equal(script_for("a")->calls, 3);
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__gives_up_after_max_attempts(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    o.max_attempts = 3;
    add_channel(&chs, "a", 0, 1, false, E503);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    assert_int_equal(r.job.err, IG_E_UPSTREAM_SUBMIT);
    assert_int_equal(r.job.nattempts, 3);
    assert_int_equal(script_for("a")->calls, 3);
    assert_string_equal(r.job.errmsg, "scripted provider_submit_failed");
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__terminal_error_not_retried(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    add_channel(&chs, "a", 0, 1, false, E400);
    add_channel(&chs, "b", 0, 1, false, OK);
    rt = ig_router_new(&chs, &o, offline_new());
    for (int i = 0; i < 10; i++) {
        run_job(rt, &r, false);
        /* a 400 is the request's fault: no other channel is asked */
        assert_int_equal(r.job.nattempts, 1);
        run_release(&r);
    }
    ig_provider_free(rt);
}

static void test_router__maybe_executed_only_when_allowed(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    add_channel(&chs, "a", 0, 1, false, OK);
    push("a", ETIMEOUT);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    assert_int_equal(r.job.err, IG_E_UPSTREAM_TIMEOUT);
    assert_int_equal(r.job.nattempts, 1);
    run_release(&r);
    ig_provider_free(rt);

    nscripts = 0;
    memset(&chs, 0, sizeof(chs));
    o.retry_maybe_executed = true;
    add_channel(&chs, "a", 0, 1, false, OK);
    push("a", ETIMEOUT);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nattempts, 2);
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__fails_over_to_lower_tier_at_once(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    o.backoff_base_ms = 2000; /* a backoff would show in the time taken */
    o.backoff_max_ms = 2000;
    add_channel(&chs, "a", 10, 1, false, E503);
    add_channel(&chs, "b", 5, 1, false, OK);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nattempts, 2);
    assert_string_equal(r.job.attempts[0].channel, "a");
    assert_string_equal(r.job.attempts[1].channel, "b");
    assert_string_equal(r.job.channel, "b");
    assert_true(r.took_ms < 1000);
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__refused_key_disables_channel(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    add_channel(&chs, "a", 10, 1, false, E401);
    add_channel(&chs, "b", 5, 1, false, OK);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nattempts, 2);
    run_release(&r);
    for (int i = 0; i < 5; i++) {
        run_job(rt, &r, false);
        assert_int_equal(r.job.nattempts, 1);
        assert_string_equal(r.job.channel, "b");
        run_release(&r);
    }
    assert_int_equal(script_for("a")->calls, 1);
    ig_provider_free(rt);
}

static void test_router__429_cools_channel_down(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;
    struct outcome e429 = {IG_E_UPSTREAM_SUBMIT, 429, true, false, false, 300, false};
    struct script *sc;

    add_channel(&chs, "a", 0, 1, false, OK);
    push("a", e429);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    sc = script_for("a");
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nattempts, 2);
    assert_int_equal(sc->calls, 2);
    /* Retry-After: 300 ms honoured */
    assert_true(sc->call_ms[1] - sc->call_ms[0] >= 290);
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__budget_bounds_retries(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;
    struct outcome e429 = {IG_E_UPSTREAM_SUBMIT, 429, true, false, false, 5000, false};

    o.budget_ms = 200;
    add_channel(&chs, "a", 0, 1, false, OK);
    push("a", e429);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    /* waiting 5 s would break the 200 ms budget: the 429 is the answer */
    assert_int_equal(r.job.err, IG_E_UPSTREAM_SUBMIT);
    assert_int_equal(r.job.nattempts, 1);
    assert_true(r.took_ms < 1000);
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__official_pin(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    add_channel(&chs, "cheap", 10, 1, false, OK);
    add_channel(&chs, "google", 1, 1, true, OK);
    rt = ig_router_new(&chs, &o, offline_new());
    for (int i = 0; i < 10; i++) {
        run_job(rt, &r, true);
        assert_string_equal(r.job.channel, "google");
        run_release(&r);
        run_job(rt, &r, false);
        assert_string_equal(r.job.channel, "cheap");
        run_release(&r);
    }
    ig_provider_free(rt);
}

static void test_router__official_pin_without_official_channel_fails(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    add_channel(&chs, "cheap", 10, 1, false, OK);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, true);
    assert_int_equal(r.job.err, IG_E_UPSTREAM_SUBMIT);
    assert_int_equal(r.job.nattempts, 0);
    assert_non_null(strstr(r.job.errmsg, "official"));
    assert_int_equal(script_for("cheap")->calls, 0);
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__unserved_model_goes_offline(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;
    const struct ig_model *pro = ig_catalog_find(catalog, "gemini-3-pro-image-preview", NULL);

    add_channel(&chs, "a", 0, 1, false, OK);
    chs.ch[0].nmodels = 1;
    snprintf(chs.ch[0].models[0].model, sizeof(chs.ch[0].models[0].model), "%s", model->id);
    snprintf(chs.ch[0].models[0].upstream, sizeof(chs.ch[0].models[0].upstream), "flash-x");
    rt = ig_router_new(&chs, &o, offline_new());
    assert_true(ig_router_serves(rt, model));
    assert_false(ig_router_serves(rt, pro));
    run_job(rt, &r, false);
    assert_false(r.job.offline);
    assert_string_equal(r.job.upstream_model, "flash-x");
    run_release(&r);
    model = pro;
    run_job(rt, &r, false);
    assert_true(r.job.offline);
    assert_int_equal(offline_calls, 1);
    assert_int_equal(script_for("a")->calls, 1);
    run_release(&r);
    model = ig_catalog_find(catalog, "gemini-2.5-flash-image", NULL);
    ig_provider_free(rt);
}

static void test_router__weights_share_a_tier(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;
    int a, b;

    add_channel(&chs, "a", 0, 3, false, OK);
    add_channel(&chs, "b", 0, 1, false, OK);
    add_channel(&chs, "low", -1, 100, false, OK);
    rt = ig_router_new(&chs, &o, offline_new());
    for (int i = 0; i < 400; i++) {
        run_job(rt, &r, false);
        run_release(&r);
    }
    a = script_for("a")->calls;
    b = script_for("b")->calls;
    assert_int_equal(a + b, 400);
    assert_int_equal(script_for("low")->calls, 0);
    assert_in_range(a, 255, 345); /* 300 expected */
    ig_provider_free(rt);
}

static void test_router__partial_result_asks_only_for_the_rest(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;
    struct outcome half = {IG_OK, 503, true, false, false, 0, true};
    struct outcome half_maybe = {IG_OK, 504, false, true, false, 0, true};

    add_channel(&chs, "a", 0, 1, false, OK);
    push("a", half); /* 1 of 3 images, the other calls got 503 */
    push("a", half); /* 1 more */
    rt = ig_router_new(&chs, &o, offline_new());
    run_job_n(rt, &r, false, 3);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nimages, 3);
    assert_int_equal(r.job.nattempts, 3);
    assert_int_equal(r.job.want, 1); /* the last attempt asked for the one missing image */
    run_release(&r);

    /* the failed calls may have run upstream: keep what came, do not ask again */
    push("a", half_maybe);
    run_job_n(rt, &r, false, 3);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nimages, 1);
    assert_int_equal(r.job.nattempts, 1);
    run_release(&r);

    /* retries run out: a partial success with what was delivered */
    o.max_attempts = 2;
    ig_provider_free(rt);
    nscripts = 0;
    memset(&chs, 0, sizeof(chs));
    add_channel(&chs, "a", 0, 1, false, E503);
    push("a", half);
    rt = ig_router_new(&chs, &o, offline_new());
    run_job_n(rt, &r, false, 2);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nimages, 1);
    assert_int_equal(r.job.nattempts, 2);
    assert_string_equal(r.job.errmsg, "1 of 2 images were produced");
    run_release(&r);
    ig_provider_free(rt);
}

static void test_router__channel_config_parse(void **state)
{
    struct ig_channels chs;
    struct ig_errbuf eb;
    const char *ok = "[{\"name\":\"g\",\"type\":\"gemini\",\"base_url\":\"http://127.0.0.1:9/\","
                     "\"keys\":[\"k1\",\"k2\"],\"priority\":3,\"weight\":2,\"official\":true,"
                     "\"timeout_ms\":1500,\"models\":{\"gemini-2.5-flash-image\":\"up-x\"},"
                     "\"cost_per_image_usd\":\"0.0387\"},"
                     "{\"name\":\"d\",\"key\":\"k\"}]";
    char up[96];

    ig_errbuf_clear(&eb);
    assert_int_equal(ig_channels_parse(&chs, ok, strlen(ok), &eb), IG_OK);
    assert_int_equal(chs.n, 2);
    assert_string_equal(chs.ch[0].base_url, "http://127.0.0.1:9");
    assert_int_equal(chs.ch[0].nkeys, 2);
    assert_int_equal(chs.ch[0].priority, 3);
    assert_int_equal(chs.ch[0].weight, 2);
    assert_true(chs.ch[0].official);
    assert_int_equal(chs.ch[0].timeout_ms, 1500);
    assert_int_equal(chs.ch[0].cost_per_image, 38700);
    assert_true(ig_channel_serves(&chs.ch[0], model, up, sizeof(up)));
    assert_string_equal(up, "up-x");
    /* defaults: Google's URL, every model, weight 1 */
    assert_string_equal(chs.ch[1].base_url, "https://generativelanguage.googleapis.com");
    assert_true(ig_channel_serves(&chs.ch[1], model, up, sizeof(up)));
    assert_string_equal(up, "gemini-2.5-flash-image");
    assert_int_equal(chs.ch[1].weight, 1);
    assert_false(chs.ch[1].official);

    static const char *const bad[] = {
        "{}",
        "[{\"type\":\"gemini\",\"key\":\"k\"}]",
        "[{\"name\":\"a\"}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"type\":\"sd\"}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"base_url\":\"ftp://x\"}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"weight\":0}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"timeout_ms\":1.5}]",
        "[{\"name\":\"a\",\"key\":\"k\"},{\"name\":\"a\",\"key\":\"k\"}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"official\":1}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"models\":[\"x\"]}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"type\":\"openai\"}]", /* needs base_url */
        "[{\"name\":\"a\",\"type\":\"vertex\"}]",
        "[{\"name\":\"a\",\"type\":\"vertex\",\"key\":\"k\",\"access_token\":\"t\"}]",
        "[{\"name\":\"a\",\"type\":\"vertex\",\"access_token\":\"t\"}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"priorty\":3}]",
        "[{\"name\":\"a\",\"key\":\"k\",\"cost_per_image_usd\":0.04}]", /* a string */
        "[{\"name\":\"a\",\"key\":\"k\",\"cost_per_image_usd\":\"-1\"}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ig_errbuf_clear(&eb);
        assert_int_equal(ig_channels_parse(&chs, bad[i], strlen(bad[i]), &eb), IG_E_INVALID);
        assert_true(eb.msg[0] != '\0');
    }
}

static void test_router__env_channel(void **state)
{
    struct ig_channels chs;
    struct ig_errbuf eb;

    setenv("GEMINI_API_KEY", "env-key", 1);
    setenv("GEMINI_BASE_URL", "http://127.0.0.1:7/", 1);
    assert_int_equal(ig_channels_load(&chs, "", &eb), IG_OK);
    assert_int_equal(chs.n, 1);
    assert_string_equal(chs.ch[0].name, "gemini");
    assert_string_equal(chs.ch[0].keys[0], "env-key");
    assert_string_equal(chs.ch[0].base_url, "http://127.0.0.1:7");
    assert_true(chs.ch[0].official);
    unsetenv("GEMINI_BASE_URL");
    assert_int_equal(ig_channels_load(&chs, "", &eb), IG_OK);
    assert_string_equal(chs.ch[0].base_url, "https://generativelanguage.googleapis.com");
    unsetenv("GEMINI_API_KEY");
    assert_int_equal(ig_channels_load(&chs, "", &eb), IG_OK);
    assert_int_equal(chs.n, 0);
}

/* A job waiting out a long backoff is cancelled: it ends on the next loop turn with its last
 * attempt's error, and no further attempt. */
static void cancel_soon(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    struct ig_provider *rt = r->job.pctx; /* parked here by the test */

    r->job.pctx = NULL;
    r->job.cancelled = true;
    ig_provider_cancel(rt, &r->job);
}

static void test_router__cancel_during_backoff_ends_at_once(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;
    struct event *ev;
    struct timeval tv = {0, 100 * 1000};
    int64_t t0 = ig_mono_ms();

    o.backoff_base_ms = 20000; /* a retry would come 0-20 s later... */
    o.backoff_max_ms = 20000;
    add_channel(&chs, "a", 0, 1, false, OK);
    push("a", (struct outcome){IG_E_UPSTREAM_SUBMIT, 503, true, false, false, 10000, false});
    rt = ig_router_new(&chs, &o, offline_new());
    memset(&r, 0, sizeof(r));
    ig_task_init(&r.task);
    ig_id_new(&r.task.id);
    r.task.req.n = 1;
    r.job.task = &r.task;
    r.job.model = model;
    r.job.base = base;
    r.job.done = on_done;
    r.job.arg = &r;
    r.job.pctx = rt;
    ev = evtimer_new(base, cancel_soon, &r); /* ...but the task is given up after 100 ms */
    evtimer_add(ev, &tv);
    assert_int_equal(ig_provider_start(rt, &r.job), IG_OK);
    while (!r.done)
        event_base_dispatch(base);
    assert_true(ig_mono_ms() - t0 < 5000);
    assert_int_equal(r.job.err, IG_E_UPSTREAM_SUBMIT); /* the last attempt's, kept */
    assert_int_equal(r.job.nattempts, 1);
    assert_int_equal(r.job.attempts[0].http_status, 503);
    assert_int_equal(script_for("a")->calls, 1);
    event_free(ev);
    run_release(&r);
    ig_provider_free(rt);
}

/* A job cancelled while its attempt runs: the attempt's failure is final, no failover. */
static enum ig_err cancelling_start(struct ig_provider *prov, struct ig_job *job)
{
    job->cancelled = true; /* the engine gave the task up while the call was out */
    return scripted_start(prov, job);
}

static const struct ig_provider_ops cancelling_ops = {
    .name = "cancelling", .abi_version = 1, .start = cancelling_start, .free = scripted_free};

static struct ig_provider *make_cancelling(const struct ig_channel *c)
{
    struct ig_provider *p = make_scripted(c);

    p->ops = &cancelling_ops;
    return p;
}

static void test_router__cancelled_attempt_is_not_retried(void **state)
{
    struct ig_channels chs = {0};
    struct ig_router_opts o = fast_opts();
    struct ig_provider *rt;
    struct run r;

    add_channel(&chs, "a", 0, 1, false, E503);
    add_channel(&chs, "b", 0, 1, false, OK);
    router_make_provider = make_cancelling;
    rt = ig_router_new(&chs, &o, offline_new());
    run_job(rt, &r, false);
    assert_int_equal(r.job.nattempts, 1);
    assert_int_equal(script_for("a")->calls + script_for("b")->calls, 1);
    run_release(&r);
    ig_provider_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_router__success_first_try, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__retries_503_then_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__gives_up_after_max_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__terminal_error_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__maybe_executed_only_when_allowed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router__fails_over_to_lower_tier_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router__refused_key_disables_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__429_cools_channel_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__budget_bounds_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__official_pin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__official_pin_without_official_channel_fails,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__unserved_model_goes_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__weights_share_a_tier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__partial_result_asks_only_for_the_rest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router__channel_config_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__env_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__cancel_during_backoff_ends_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router__cancelled_attempt_is_not_retried, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
