/* test_http.c: the error-to-status table, reason phrases, and the media Range parser. */
#include "base/base.h"

#include "http/server.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* IG_STATIC in media.c. */
int parse_range(const char *h, int64_t size, int64_t *start, int64_t *end);

static void test_http__status_for_every_error(void **state)
{
    static const int want[IG_E__COUNT] = {
        [IG_OK] = 200,
        [IG_E_NOMEM] = 500,
        [IG_E_AGAIN] = 503,
        [IG_E_INVALID] = 400,
        [IG_E_UNAUTHENTICATED] = 401,
        [IG_E_FORBIDDEN] = 403,
        [IG_E_INSUFFICIENT] = 402,
        [IG_E_RATE_LIMITED] = 429,
        [IG_E_NOT_FOUND] = 404,
        [IG_E_METHOD] = 405,
        [IG_E_CONFLICT] = 409,
        [IG_E_TOOBIG] = 413,
        [IG_E_GONE] = 410,
        [IG_E_MODERATED] = 422,
        [IG_E_UPSTREAM_SUBMIT] = 502,
        [IG_E_UPSTREAM_TIMEOUT] = 504,
        [IG_E_UPSTREAM_FAILED] = 502,
        [IG_E_REFERENCE] = 400,
        [IG_E_BLOCKED] = 400,
        [IG_E_IO] = 500,
        [IG_E_STORE] = 500,
        [IG_E_CANCELLED] = 500,
        [IG_E_INTERNAL] = 500,
    };

    for (int e = 0; e < IG_E__COUNT; e++) {
        int got = ig_http_status_for((enum ig_err)e);

        if (want[e] == 0)
            fail_msg("no expectation for %s: add it to this table", ig_strerror((enum ig_err)e));
        if (got != want[e])
            fail_msg("%s -> %d, want %d", ig_strerror((enum ig_err)e), got, want[e]);
        /* Every status the table produces has a reason phrase. */
        assert_string_not_equal(ig_http_reason(got), "Unknown");
    }
    assert_int_equal(ig_http_status_for(IG_E__COUNT), 500);
}

static void test_http__reason_phrases(void **state)
{
    static const struct {
        int status;
        const char *reason;
    } cases[] = {
        {200, "OK"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {402, "Payment Required"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {0, "Unknown"},
        {299, "Unknown"},
        {-1, "Unknown"},
        {999, "Unknown"},
    };

    for (size_t i = 0; i < IG_ARRAY_LEN(cases); i++)
        assert_string_equal(ig_http_reason(cases[i].status), cases[i].reason);
}

struct range_case {
    const char *h;
    int64_t size;
    int want;
    int64_t start, end;
};

static void test_http__parse_range(void **state)
{
    static const struct range_case cases[] = {
        {"bytes=0-9", 100, 1, 0, 9},
        {"bytes=90-", 100, 1, 90, 99},
        {"bytes=-10", 100, 1, 90, 99},
        {"bytes=-200", 100, 1, 0, 99},
        {"bytes=100-", 100, -1, 0, 0},
        {"bytes=0-1000", 100, 1, 0, 99},
        {"bytes=5-1", 100, 0, 0, 0},
        {"items=0-1", 100, 0, 0, 0},
        {"bytes=0-1,3-4", 100, 0, 0, 0},
        {"bytes=-0", 100, -1, 0, 0},
        {"bytes=abc", 100, 0, 0, 0},
        /* More edges. */
        {"bytes=0-0", 100, 1, 0, 0},
        {"bytes=99-99", 100, 1, 99, 99},
        {"bytes=99-", 100, 1, 99, 99},
        {"bytes=0-", 100, 1, 0, 99},
        {"bytes=-1", 100, 1, 99, 99},
        {"bytes=-100", 100, 1, 0, 99},
        {"bytes=5-5", 100, 1, 5, 5},
        {"bytes=100-200", 100, -1, 0, 0},
        {"bytes=0-99999999999999999999", 100, 1, 0, 99}, /* last-pos saturates, clipped */
        {"bytes=99999999999999999999-", 100, -1, 0, 0},
        {"bytes=0-", 0, -1, 0, 0},                        /* nothing in an empty file */
        {"bytes=-5", 0, -1, 0, 0},
        {"bytes=", 100, 0, 0, 0},
        {"bytes=-", 100, 0, 0, 0},
        {"bytes=1", 100, 0, 0, 0},
        {"bytes=1-2x", 100, 0, 0, 0},
        {"bytes=-5x", 100, 0, 0, 0},
        {"bytes=--5", 100, 0, 0, 0},
        {"bytes=-1-5", 100, 0, 0, 0},
        {"Bytes=0-9", 100, 0, 0, 0},
        {"bytes 0-9", 100, 0, 0, 0},
        {"", 100, 0, 0, 0},
        {"bytes=5-,", 100, 0, 0, 0},
    };

    for (size_t i = 0; i < IG_ARRAY_LEN(cases); i++) {
        const struct range_case *c = &cases[i];
        int64_t start = -7, end = -7;
        int got = parse_range(c->h, c->size, &start, &end);

        if (got != c->want)
            fail_msg("'%s' size %lld: got %d, want %d", c->h, (long long)c->size, got, c->want);
        if (got == 1) {
            if (start != c->start || end != c->end)
                fail_msg("'%s' size %lld: [%lld, %lld], want [%lld, %lld]", c->h,
                         (long long)c->size, (long long)start, (long long)end,
                         (long long)c->start, (long long)c->end);
            assert_true(start <= end && end < c->size);
        }
    }
}

static void test_http__parse_range_large_file(void **state)
{
    const int64_t size = INT64_C(5) * 1024 * 1024 * 1024; /* 5 GiB: beyond 32 bits */
    int64_t start = 0, end = 0;

    assert_int_equal(parse_range("bytes=4294967296-", size, &start, &end), 1);
    assert_int_equal(start, INT64_C(4294967296));
    assert_int_equal(end, size - 1);
    assert_int_equal(parse_range("bytes=-4294967296", size, &start, &end), 1);
    assert_int_equal(start, size - INT64_C(4294967296));
    assert_int_equal(end, size - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http__status_for_every_error),
        cmocka_unit_test(test_http__reason_phrases),
        cmocka_unit_test(test_http__parse_range),
        cmocka_unit_test(test_http__parse_range_large_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
