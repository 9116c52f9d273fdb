/* test_limits.c: the per-key GCRA: a burst, then the steady pace, Retry-After at the edge,
 * keys apart, no limit at rpm 0, and exactness across threads. */
#include "base/base.h"
#include "policy/limits.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define T0 INT64_C(1767225600000)

static void test_limits__burst_then_pace(void **state)
{
    struct ig_limiter *l = ig_limiter_new();
    int64_t wait = -1;

    /* 60 per minute, bursts of 3: three at once, the fourth waits a second */
    for (int i = 0; i < 3; i++)
        assert_true(ig_limiter_allow(l, 7, 60, 3, T0, &wait));
    assert_false(ig_limiter_allow(l, 7, 60, 3, T0, &wait));
    assert_int_equal(wait, 1000);
    /* refusals count nothing: 999 ms later still 1 ms to go, at 1000 ms one more */
    assert_false(ig_limiter_allow(l, 7, 60, 3, T0 + 999, &wait));
    assert_int_equal(wait, 1);
    assert_true(ig_limiter_allow(l, 7, 60, 3, T0 + 1000, &wait));
    assert_false(ig_limiter_allow(l, 7, 60, 3, T0 + 1000, &wait));
    /* after a quiet minute the burst is back, and no more than the burst */
    for (int i = 0; i < 3; i++)
        assert_true(ig_limiter_allow(l, 7, 60, 3, T0 + 61000, &wait));
    assert_false(ig_limiter_allow(l, 7, 60, 3, T0 + 61000, &wait));
    ig_limiter_free(l);
}

static void test_limits__keys_apart_and_off(void **state)
{
    struct ig_limiter *l = ig_limiter_new();
    int64_t wait;

    assert_true(ig_limiter_allow(l, 1, 1, 1, T0, &wait));
    assert_false(ig_limiter_allow(l, 1, 1, 1, T0, &wait));
    assert_int_equal(wait, 60000);
    assert_true(ig_limiter_allow(l, 2, 1, 1, T0, &wait)); /* another key: its own budget */
    assert_true(ig_limiter_allow(l, 1 + 1024, 1, 1, T0, &wait)); /* same bucket, other key */
    for (int i = 0; i < 10000; i++)
        assert_true(ig_limiter_allow(l, 3, 0, 1, T0, &wait)); /* rpm 0: no limit */
    assert_int_equal(wait, 0);
    ig_limiter_free(l);
}

/* A rate that does not divide a minute: 7 per minute, burst 1, over 10 minutes: 70 allowed. */
static void test_limits__uneven_rate_does_not_drift(void **state)
{
    struct ig_limiter *l = ig_limiter_new();
    int64_t wait;
    int ok = 0;

    for (int64_t ms = 0; ms < 600000; ms += 50)
        ok += ig_limiter_allow(l, 9, 7, 1, T0 + ms, &wait);
    assert_int_equal(ok, 70);
    ig_limiter_free(l);
}

struct racer {
    struct ig_limiter *l;
    int allowed;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    int64_t wait;

    for (int i = 0; i < 5000; i++)
        r->allowed += ig_limiter_allow(r->l, 42, 600, 100, T0, &wait);
    return NULL;
}

/* Four threads hammering one key at one instant: exactly the burst gets through. */
static void test_limits__exact_across_threads(void **state)
{
    struct racer r[4];
    pthread_t th[4];
    struct ig_limiter *l = ig_limiter_new();
    int total = 0;

    for (int i = 0; i < 4; i++) {
        r[i].l = l;
        r[i].allowed = 0;
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].allowed;
    }
    assert_int_equal(total, 100);
    ig_limiter_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits__burst_then_pace),
        cmocka_unit_test(test_limits__keys_apart_and_off),
        cmocka_unit_test(test_limits__uneven_rate_does_not_drift),
        cmocka_unit_test(test_limits__exact_across_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
