/* test_offline.c: the offline provider on a real loop, mailbox and pool. */
#include "base/base.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/catalog.h"
#include "core/task.h"
#include "media/image.h"
#include "media/vips.h"
#include "provider/provider.h"

struct env {
    struct event_base *base;
    struct ig_mailbox *mb;
    struct ig_pool *pool;
    struct ig_model model;
};

/* One run of a job: the task it reads, how often done ran and when. */
struct run {
    struct ig_task task;
    struct ig_job job;
    int done_calls;
    int64_t started_ms, done_ms;
};

static struct env env;

static void on_done(struct ig_job *job)
{
    struct run *r = job->arg;

    r->done_calls++;
    r->done_ms = ig_mono_ms();
    event_base_loopbreak(env.base);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(env.base);
}

static double timeout_scale(void)
{
    const char *m = getenv("IG_TEST_TIMEOUT_MULTIPLIER");
    double v = m ? strtod(m, NULL) : 1.0;

    return v >= 1.0 ? v : 1.0;
}

static int group_setup(void **state)
{
    struct ig_model *m = &env.model;

    if (evthread_use_pthreads() != 0 || ig_vips_init() != IG_OK)
        return -1;
    env.base = event_base_new();
    env.mb = ig_mailbox_new(env.base);
    env.pool = ig_pool_new(2);
    /* gemini-2.5-flash-image as the catalog describes it, 16:9 only */
    memset(m, 0, sizeof(*m));
    snprintf(m->id, sizeof(m->id), "gemini-2.5-flash-image");
    m->nres = 1;
    snprintf(m->res[0], sizeof(m->res[0]), "1K");
    snprintf(m->default_res, sizeof(m->default_res), "1K");
    m->nratios = 1;
    snprintf(m->ratios[0].ratio, sizeof(m->ratios[0].ratio), "16:9");
    m->ratios[0].w[0] = 1344;
    m->ratios[0].h[0] = 768;
    m->max_refs = 3;
    m->max_n = 4;
    m->image_tokens[0] = 1290;
    return 0;
}

static int group_teardown(void **state)
{
    ig_pool_free(env.pool);
    ig_mailbox_free(env.mb);
    event_base_free(env.base);
    return 0;
}

static void run_init(struct run *r, const char *prompt, int n, int w, int h)
{
    memset(r, 0, sizeof(*r));
    ig_id_new(&r->task.id);
    r->task.req.prompt = ig_xstrdup(prompt);
    r->task.req.n = n;
    snprintf(r->task.req.ratio, sizeof(r->task.req.ratio), "16:9");
    snprintf(r->task.req.resolution, sizeof(r->task.req.resolution), "1K");
    r->job.task = &r->task;
    r->job.model = &env.model;
    r->job.width = w;
    r->job.height = h;
    r->job.base = env.base;
    r->job.mb = env.mb;
    r->job.pool = env.pool;
    r->job.done = on_done;
    r->job.arg = r;
}

static void run_release(struct run *r)
{
    ig_job_release(&r->job);
    free(r->task.req.prompt);
}

/* Add a reference image (copied: the job owns its refs). */
static void run_add_ref(struct run *r, const void *data, size_t len)
{
    struct ig_image *im = ig_job_add_ref(&r->job);

    im->data = ig_xmalloc(len ? len : 1);
    memcpy(im->data, data, len);
    im->len = len;
}

/* Start the job and run the loop until done (or a guard timeout). */
static enum ig_err run_job(struct ig_provider *p, struct run *r)
{
    struct timeval guard = {(time_t)(60 * timeout_scale()), 0};
    struct event *ev;
    enum ig_err err;

    r->started_ms = ig_mono_ms();
    err = ig_provider_start(p, &r->job);
    if (err)
        return err;
    assert_int_equal(r->done_calls, 0); /* never inside start */
    ev = evtimer_new(env.base, on_guard, NULL);
    evtimer_add(ev, &guard);
    event_base_dispatch(env.base);
    assert_int_equal(r->done_calls, 1);
    /* and only once: let anything else queued run */
    guard.tv_sec = 0;
    guard.tv_usec = 10 * 1000;
    evtimer_add(ev, &guard);
    event_base_dispatch(env.base);
    event_free(ev);
    assert_int_equal(r->done_calls, 1);
    assert_null(r->job.pctx);
    return IG_OK;
}

static VipsImage *decode(const struct ig_image *im)
{
    VipsImage *v = vips_image_new_from_buffer(im->data, im->len, "", NULL);

    assert_non_null(v);
    return v;
}

static void band_means(VipsImage *v, int left, int top, int w, int h, double mean[3])
{
    for (int b = 0; b < 3; b++) {
        VipsImage *area = NULL, *band = NULL;

        assert_int_equal(vips_extract_area(v, &area, left, top, w, h, NULL), 0);
        assert_int_equal(vips_extract_band(area, &band, b, NULL), 0);
        assert_int_equal(vips_avg(band, &mean[b], NULL), 0);
        g_object_unref(band);
        g_object_unref(area);
    }
}

static void check_png(const struct ig_image *im, int w, int h)
{
    enum ig_image_type t;
    int gw = 0, gh = 0;
    VipsImage *v;

    assert_non_null(im->data);
    assert_string_equal(im->mime, "image/png");
    assert_int_equal(im->width, w);
    assert_int_equal(im->height, h);
    assert_int_equal(ig_image_dimensions(im->data, im->len, &t, &gw, &gh), IG_OK);
    assert_int_equal(t, IG_IMG_PNG);
    assert_int_equal(gw, w);
    assert_int_equal(gh, h);
    v = decode(im);
    assert_int_equal(v->Xsize, w);
    assert_int_equal(v->Ysize, h);
    assert_int_equal(v->Bands, 3);
    assert_int_equal(v->BandFmt, VIPS_FORMAT_UCHAR);
    g_object_unref(v);
}

static bool same_image(const struct ig_image *a, const struct ig_image *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void test_offline__text_to_image(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(0, 0);
    struct run a, b, c;

    assert_string_equal(p->ops->name, "offline");
    run_init(&a, "a lighthouse at dusk, oil painting", 2, 1344, 768);
    assert_int_equal(run_job(p, &a), IG_OK);
    assert_int_equal(a.job.err, IG_OK);
    assert_string_equal(a.job.channel, "offline");
    assert_int_equal(a.job.nimages, 2);
    check_png(&a.job.images[0], 1344, 768);
    check_png(&a.job.images[1], 1344, 768);
    assert_false(same_image(&a.job.images[0], &a.job.images[1]));
    assert_int_equal(a.job.usage.images, 2);
    assert_int_equal(a.job.usage.image_tokens, 2580);
    assert_int_equal(a.job.usage.prompt_tokens, 9); /* 34 characters / 4, rounded up */
    assert_int_equal(a.job.usage.text_tokens, 0);

    /* the same request: byte-identical; another prompt: other images */
    run_init(&b, "a lighthouse at dusk, oil painting", 2, 1344, 768);
    assert_int_equal(run_job(p, &b), IG_OK);
    assert_int_equal(b.job.nimages, 2);
    assert_true(same_image(&a.job.images[0], &b.job.images[0]));
    assert_true(same_image(&a.job.images[1], &b.job.images[1]));
    run_init(&c, "a lighthouse at dawn, oil painting", 2, 1344, 768);
    assert_int_equal(run_job(p, &c), IG_OK);
    assert_int_equal(c.job.nimages, 2);
    assert_false(same_image(&a.job.images[0], &c.job.images[0]));
    assert_false(same_image(&a.job.images[1], &c.job.images[1]));

    run_release(&a);
    run_release(&b);
    run_release(&c);
    ig_provider_free(p);
}

/* Characters, not bytes: 8 two-byte characters are 2 tokens. */
static void test_offline__prompt_tokens_count_characters(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(0, 0);
    struct run r;

    run_init(&r, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 1, 16, 9);
    assert_int_equal(run_job(p, &r), IG_OK);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.usage.prompt_tokens, 2);
    assert_int_equal(r.job.usage.images, 1);
    assert_int_equal(r.job.usage.image_tokens, 1290);
    check_png(&r.job.images[0], 16, 9);
    run_release(&r);
    ig_provider_free(p);
}

/* A solid w x h JPEG of one colour, or two halves (left, right) when split. */
static void make_jpeg(int w, int h, const double left[3], const double right[3], int orientation,
                      void **buf, size_t *len)
{
    VipsImage *black = NULL, *l = NULL, *r = NULL, *lr = NULL, *u = NULL, *o = NULL;

    assert_int_equal(vips_black(&black, w / 2, h, "bands", 3, NULL), 0);
    assert_int_equal(vips_linear(black, &l, (double[]){1, 1, 1}, (double *)left, 3, NULL), 0);
    assert_int_equal(vips_linear(black, &r, (double[]){1, 1, 1}, (double *)right, 3, NULL), 0);
    assert_int_equal(vips_join(l, r, &lr, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
    assert_int_equal(vips_cast_uchar(lr, &u, NULL), 0);
    assert_int_equal(vips_copy(u, &o, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    if (orientation)
        vips_image_set_int(o, "orientation", orientation);
    assert_int_equal(vips_jpegsave_buffer(o, buf, len, "Q", 90, NULL), 0);
    g_object_unref(black);
    g_object_unref(l);
    g_object_unref(r);
    g_object_unref(lr);
    g_object_unref(u);
    g_object_unref(o);
}

static void edit_with_colour(struct ig_provider *p, const double rgb[3], int dominant)
{
    struct run r;
    void *jpeg = NULL;
    size_t len = 0;
    double mean[3];
    VipsImage *v;

    make_jpeg(640, 480, rgb, rgb, 0, &jpeg, &len);
    run_init(&r, "make it look like autumn", 2, 1344, 768);
    run_add_ref(&r, jpeg, len);
    g_free(jpeg);
    assert_int_equal(run_job(p, &r), IG_OK);
    assert_int_equal(r.job.err, IG_OK);
    assert_int_equal(r.job.nimages, 2);
    for (int i = 0; i < 2; i++) {
        check_png(&r.job.images[i], 1344, 768);
        v = decode(&r.job.images[i]);
        band_means(v, 0, 0, 1344, 768, mean);
        for (int b = 0; b < 3; b++)
            if (b != dominant)
                assert_true(mean[dominant] > mean[b] + 50);
        g_object_unref(v);
    }
    assert_false(same_image(&r.job.images[0], &r.job.images[1]));
    assert_int_equal(r.job.usage.image_tokens, 2580);
    run_release(&r);
}

static void test_offline__edit_follows_reference(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(0, 0);

    edit_with_colour(p, (double[]){230, 20, 20}, 0);
    edit_with_colour(p, (double[]){20, 230, 20}, 1);
    edit_with_colour(p, (double[]){20, 20, 230}, 2);
    ig_provider_free(p);
}

/* EXIF orientation 6 (rotate 90 clockwise): the left half (red) ends up on top. */
static void test_offline__edit_autorotates(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(0, 0);
    struct run r;
    void *jpeg = NULL;
    size_t len = 0;
    double top[3], bottom[3];
    VipsImage *v;

    make_jpeg(640, 480, (double[]){230, 20, 20}, (double[]){20, 20, 230}, 6, &jpeg, &len);
    run_init(&r, "rotate me", 1, 1344, 768);
    run_add_ref(&r, jpeg, len);
    g_free(jpeg);
    assert_int_equal(run_job(p, &r), IG_OK);
    assert_int_equal(r.job.err, IG_OK);
    check_png(&r.job.images[0], 1344, 768);
    v = decode(&r.job.images[0]);
    band_means(v, 100, 20, 1144, 100, top);
    band_means(v, 100, 648, 1144, 100, bottom);
    assert_true(top[0] > top[2] + 50);
    assert_true(bottom[2] > bottom[0] + 50);
    g_object_unref(v);
    run_release(&r);
    ig_provider_free(p);
}

/* A reference of the given shape: w x h, bands, band format, interpretation, as PNG or WebP. */
static void make_ref(int w, int h, int bands, VipsBandFormat fmt, VipsInterpretation interp,
                     bool webp, void **buf, size_t *len)
{
    VipsImage *black = NULL, *lin = NULL, *cast = NULL, *out = NULL;
    double a[4] = {1, 1, 1, 1}, b[4] = {90, 160, 30, 200};

    assert_int_equal(vips_black(&black, w, h, "bands", bands, NULL), 0);
    assert_int_equal(vips_linear(black, &lin, a, b, bands, NULL), 0);
    assert_int_equal(vips_cast(lin, &cast, fmt, NULL), 0);
    assert_int_equal(vips_copy(cast, &out, "interpretation", interp, NULL), 0);
    if (webp)
        assert_int_equal(vips_webpsave_buffer(out, buf, len, NULL), 0);
    else
        assert_int_equal(vips_pngsave_buffer(out, buf, len, NULL), 0);
    g_object_unref(black);
    g_object_unref(lin);
    g_object_unref(cast);
    g_object_unref(out);
}

/* Any accepted reference shape becomes exactly the asked size, for any aspect. */
static void test_offline__edit_exact_sizes(void **state)
{
    static const int sizes[][2] = {{640, 640}, {384, 672}, {768, 336}, {7, 5}};
    static const struct {
        int w, h, bands;
        VipsBandFormat fmt;
        VipsInterpretation interp;
        bool webp;
    } refs[] = {
        {333, 517, 4, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB, false}, /* alpha */
        {1, 1, 1, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W, false},      /* grey, 1 px */
        {50, 40, 2, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W, false},    /* grey + alpha */
        {50, 40, 3, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_RGB16, false}, /* 16-bit */
        {100, 60, 3, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB, true},   /* WebP */
    };
    struct ig_provider *p = ig_provider_offline_new(0, 0);

    for (size_t k = 0; k < IG_ARRAY_LEN(refs); k++) {
        void *ref = NULL;
        size_t len = 0;

        make_ref(refs[k].w, refs[k].h, refs[k].bands, refs[k].fmt, refs[k].interp, refs[k].webp,
                 &ref, &len);
        for (size_t i = 0; i < IG_ARRAY_LEN(sizes); i++) {
            struct run r;

            run_init(&r, "fit", 1, sizes[i][0], sizes[i][1]);
            run_add_ref(&r, ref, len);
            assert_int_equal(run_job(p, &r), IG_OK);
            if (r.job.err)
                fail_msg("reference %zu, %dx%d: %s", k, sizes[i][0], sizes[i][1], r.job.errmsg);
            check_png(&r.job.images[0], sizes[i][0], sizes[i][1]);
            run_release(&r);
        }
        g_free(ref);
    }
    ig_provider_free(p);
}

static void expect_reference_error(struct ig_provider *p, const void *data, size_t len)
{
    struct run r;

    run_init(&r, "edit this", 1, 1344, 768);
    run_add_ref(&r, data, len);
    assert_int_equal(run_job(p, &r), IG_OK);
    assert_int_equal(r.job.err, IG_E_REFERENCE);
    assert_int_equal(r.job.nimages, 0);
    assert_non_null(strstr(r.job.errmsg, "reference 0"));
    run_release(&r);
}

static void test_offline__undecodable_reference(void **state)
{
    static const char png_garbage[] = "\x89PNG\r\n\x1a\nthis is not a png at all";
    static const char svg[] =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"9\" height=\"9\"/>";
    struct ig_provider *p = ig_provider_offline_new(0, 0);
    void *jpeg = NULL;
    size_t len = 0;

    expect_reference_error(p, png_garbage, sizeof(png_garbage) - 1);
    expect_reference_error(p, svg, sizeof(svg) - 1);
    expect_reference_error(p, "", 0);
    /* a JPEG cut in half: fail_on=error stops at the truncation */
    make_jpeg(640, 480, (double[]){200, 10, 10}, (double[]){10, 10, 200}, 0, &jpeg, &len);
    expect_reference_error(p, jpeg, len / 2);
    g_free(jpeg);
    ig_provider_free(p);
}

static void test_offline__injected_failure(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(0, 1.0);
    struct run r;

    run_init(&r, "anything", 2, 1344, 768);
    assert_int_equal(run_job(p, &r), IG_OK);
    assert_int_equal(r.job.err, IG_E_UPSTREAM_FAILED);
    assert_int_equal(r.job.nimages, 0);
    assert_string_equal(r.job.errmsg, "offline provider: injected failure (failure_rate=1.00)");
    run_release(&r);
    ig_provider_free(p);
}

/* The decision is a function of the task id: the same id always gets the same answer. */
static void test_offline__failure_rate_is_per_task(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(0, 0.5);
    int failed = 0;

    for (int i = 0; i < 24; i++) {
        struct run r, again;
        struct ig_id id;

        run_init(&r, "x", 1, 8, 8);
        id = r.task.id;
        assert_int_equal(run_job(p, &r), IG_OK);
        run_init(&again, "x", 1, 8, 8);
        again.task.id = id;
        assert_int_equal(run_job(p, &again), IG_OK);
        assert_int_equal(r.job.err, again.job.err);
        failed += r.job.err == IG_E_UPSTREAM_FAILED;
        run_release(&r);
        run_release(&again);
    }
    assert_true(failed > 0 && failed < 24); /* wrong by chance once in 8 million runs */
    ig_provider_free(p);
}

static void test_offline__latency_on_the_loop(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(200, 0);
    struct run r;

    run_init(&r, "slow", 1, 64, 64);
    assert_int_equal(run_job(p, &r), IG_OK);
    assert_int_equal(r.job.err, IG_OK);
    assert_true(r.done_ms - r.started_ms >= 200);
    print_message("latency 200 ms: done after %lld ms\n", (long long)(r.done_ms - r.started_ms));
    run_release(&r);
    ig_provider_free(p);
}

static void test_offline__refuses_impossible_jobs(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(0, 0);
    struct run r;

    run_init(&r, "too many", IG_MAX_OUTPUTS + 1, 64, 64);
    assert_int_equal(ig_provider_start(p, &r.job), IG_E_INVALID);
    run_release(&r);
    run_init(&r, "no size", 1, 0, 64);
    assert_int_equal(ig_provider_start(p, &r.job), IG_E_INVALID);
    run_release(&r);
    run_init(&r, "huge", 1, 100000, 100000);
    assert_int_equal(ig_provider_start(p, &r.job), IG_E_INVALID);
    run_release(&r);
    assert_int_equal(r.done_calls, 0);
    ig_provider_free(p);
}

/* Not a pass/fail check: how long one 1024x1024 PNG takes, end to end. */
static void test_offline__speed_1k(void **state)
{
    struct ig_provider *p = ig_provider_offline_new(0, 0);
    int64_t total = 0, bytes = 0;
    const int runs = 5;

    for (int i = 0; i < runs; i++) {
        struct run r;
        char prompt[32];

        snprintf(prompt, sizeof(prompt), "speed %d", i);
        run_init(&r, prompt, 1, 1024, 1024);
        assert_int_equal(run_job(p, &r), IG_OK);
        assert_int_equal(r.job.err, IG_OK);
        total += r.done_ms - r.started_ms;
        bytes += (int64_t)r.job.images[0].len;
        run_release(&r);
    }
    print_message("offline: %.1f ms per 1024x1024 PNG (%lld bytes avg, %d runs)\n",
                  (double)total / runs, (long long)(bytes / runs), runs);
    ig_provider_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offline__text_to_image),
        cmocka_unit_test(test_offline__prompt_tokens_count_characters),
        cmocka_unit_test(test_offline__edit_follows_reference),
        cmocka_unit_test(test_offline__edit_autorotates),
        cmocka_unit_test(test_offline__edit_exact_sizes),
        cmocka_unit_test(test_offline__undecodable_reference),
        cmocka_unit_test(test_offline__injected_failure),
        cmocka_unit_test(test_offline__failure_rate_is_per_task),
        cmocka_unit_test(test_offline__latency_on_the_loop),
        cmocka_unit_test(test_offline__refuses_impossible_jobs),
        cmocka_unit_test(test_offline__speed_1k),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);

    ig_vips_shutdown();
    return rc;
}
