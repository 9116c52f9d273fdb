/* test_task.c: the canonical task: state names, copies, and the request's JSON round trip. */
#include "base/base.h"

#include "core/task.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void assert_request_equal(const struct ig_request *a, const struct ig_request *b)
{
    if (a->prompt || b->prompt) {
        assert_non_null(a->prompt);
        assert_non_null(b->prompt);
        assert_string_equal(a->prompt, b->prompt);
    }
    assert_string_equal(a->ratio, b->ratio);
    assert_string_equal(a->resolution, b->resolution);
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->has_temperature, b->has_temperature);
    assert_int_equal(a->has_top_p, b->has_top_p);
    if (a->has_temperature)
        assert_memory_equal(&a->temperature, &b->temperature, sizeof(double));
    if (a->has_top_p)
        assert_memory_equal(&a->top_p, &b->top_p, sizeof(double));
    assert_int_equal(a->nrefs, b->nrefs);
    for (int i = 0; i < a->nrefs; i++)
        assert_string_equal(a->refs[i], b->refs[i]);
    assert_string_equal(a->output_format, b->output_format);
    assert_int_equal(a->output_quality, b->output_quality);
    assert_int_equal(a->official, b->official);
    assert_int_equal(a->system != NULL, b->system != NULL);
    if (a->system)
        assert_string_equal(a->system, b->system);
    assert_int_equal(a->safety != NULL, b->safety != NULL);
    if (a->safety)
        assert_string_equal(a->safety, b->safety);
    assert_int_equal(a->has_top_k, b->has_top_k);
    assert_int_equal(a->has_seed, b->has_seed);
    if (a->has_top_k)
        assert_int_equal(a->top_k, b->top_k);
    if (a->has_seed)
        assert_int_equal(a->seed, b->seed);
}

/* JSON out, back in, and out again: the second text must equal the first. */
static void round_trip(const struct ig_request *r)
{
    struct ig_request back;
    char *json = ig_request_to_json(r);
    char *again;

    assert_non_null(json);
    assert_int_equal(ig_request_from_json(&back, json), IG_OK);
    assert_request_equal(r, &back);
    again = ig_request_to_json(&back);
    assert_string_equal(json, again);
    free(again);
    free(json);
    ig_request_release(&back);
}

static void test_task__state_names(void **state)
{
    static const char *const names[] = {"queued", "running", "succeeded", "failed",
                                        "cancelled"};
    enum ig_task_state s;

    assert_int_equal(IG_ARRAY_LEN(names), IG_TASK__COUNT);
    for (int i = 0; i < IG_TASK__COUNT; i++) {
        assert_string_equal(ig_task_state_name((enum ig_task_state)i), names[i]);
        assert_true(ig_task_state_parse(names[i], &s));
        assert_int_equal(s, i);
    }
    assert_false(ig_task_state_parse("Queued", &s));
    assert_false(ig_task_state_parse("", &s));
    assert_false(ig_task_state_parse(NULL, &s));
    assert_string_equal(ig_task_state_name(IG_TASK__COUNT), "unknown");
    assert_false(ig_task_state_is_terminal(IG_TASK_QUEUED));
    assert_false(ig_task_state_is_terminal(IG_TASK_RUNNING));
    assert_true(ig_task_state_is_terminal(IG_TASK_SUCCEEDED));
    assert_true(ig_task_state_is_terminal(IG_TASK_FAILED));
    assert_true(ig_task_state_is_terminal(IG_TASK_CANCELLED));
}

static void test_task__request_json_round_trip_full(void **state)
{
    struct ig_request r;

    memset(&r, 0, sizeof(r));
    /* Unicode (CJK, emoji, combining mark), quotes, backslash, control characters. */
    r.prompt = ig_xstrdup("一只猫 🐱 café \"quoted\" back\\slash\ttab\nnewline \x01");
    snprintf(r.ratio, sizeof(r.ratio), "16:9");
    snprintf(r.resolution, sizeof(r.resolution), "4K");
    r.n = 4;
    r.has_temperature = true;
    r.temperature = 0.1 + 0.2; /* 0.30000000000000004: needs 17 digits */
    r.has_top_p = true;
    r.top_p = 2.0 / 3.0;
    r.nrefs = 14;
    for (int i = 0; i < r.nrefs; i++)
        r.refs[i] = ig_xasprintf("https://example.com/ref/%d.png?sig=a%%2Fb&x=%d", i, i * 7);
    snprintf(r.output_format, sizeof(r.output_format), "webp");
    r.output_quality = 85;
    r.official = true;
    r.system = ig_xstrdup("You are a product photographer. \"No\" text\n改");
    r.safety = ig_xstrdup("[{\"category\":\"HARM_CATEGORY_HARASSMENT\",\"threshold\":\"BLOCK_NONE\"}]");
    r.has_top_k = true;
    r.top_k = 40;
    r.has_seed = true;
    r.seed = -2147483647 - 1;
    round_trip(&r);
    ig_request_release(&r);
}

/* The Gemini passthroughs: absent stays absent (no key in the JSON), zero stays present, a
 * copy owns its own strings, and a wrong type is refused. */
static void test_task__request_json_gemini_passthroughs(void **state)
{
    struct ig_request r, back;
    struct ig_task t, c;
    char *json;

    memset(&r, 0, sizeof(r));
    r.prompt = ig_xstrdup("a red bicycle");
    json = ig_request_to_json(&r);
    assert_null(strstr(json, "system"));
    assert_null(strstr(json, "safety"));
    assert_null(strstr(json, "top_k"));
    assert_null(strstr(json, "seed"));
    assert_int_equal(ig_request_from_json(&back, json), IG_OK);
    assert_null(back.system);
    assert_null(back.safety);
    assert_false(back.has_top_k);
    assert_false(back.has_seed);
    ig_request_release(&back);
    free(json);

    r.has_seed = true;
    r.seed = 0;
    r.has_top_k = true;
    r.top_k = 0;
    r.system = ig_xstrdup("");
    json = ig_request_to_json(&r);
    assert_non_null(strstr(json, "\"seed\":0"));
    assert_non_null(strstr(json, "\"top_k\":0"));
    assert_non_null(strstr(json, "\"system\":\"\""));
    free(json);
    round_trip(&r);

    ig_task_init(&t);
    t.req = r; /* takes over the strings */
    t.req.safety = ig_xstrdup("[]");
    ig_task_copy(&c, &t);
    assert_ptr_not_equal(c.req.system, t.req.system);
    assert_ptr_not_equal(c.req.safety, t.req.safety);
    assert_string_equal(c.req.safety, "[]");
    ig_task_release(&t);
    assert_string_equal(c.req.system, "");
    ig_task_release(&c);

    assert_int_equal(ig_request_from_json(&back, "{\"system\":1}"), IG_E_INVALID);
    assert_int_equal(ig_request_from_json(&back, "{\"safety\":[]}"), IG_E_INVALID);
    assert_int_equal(ig_request_from_json(&back, "{\"top_k\":1.5}"), IG_E_INVALID);
    assert_int_equal(ig_request_from_json(&back, "{\"seed\":\"7\"}"), IG_E_INVALID);
}

static void test_task__request_json_round_trip_minimal(void **state)
{
    struct ig_request r, back;
    char *json;

    memset(&r, 0, sizeof(r));
    r.prompt = ig_xstrdup("a red bicycle");
    r.n = 1;
    json = ig_request_to_json(&r);
    assert_null(strstr(json, "temperature"));
    assert_null(strstr(json, "top_p"));
    assert_non_null(strstr(json, "\"refs\":[]"));
    assert_int_equal(ig_request_from_json(&back, json), IG_OK);
    assert_false(back.has_temperature);
    assert_false(back.has_top_p);
    assert_int_equal(back.nrefs, 0);
    assert_false(back.official);
    assert_request_equal(&r, &back);
    ig_request_release(&back);
    free(json);

    /* Zero temperature is still present: has_* decides, not the value. */
    r.has_temperature = true;
    r.temperature = 0.0;
    round_trip(&r);
    ig_request_release(&r);

    /* No prompt at all survives as no prompt. */
    memset(&r, 0, sizeof(r));
    round_trip(&r);
}

static void test_task__request_json_rejects_bad_input(void **state)
{
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "{\"prompt\": \"x\"",
        "{\"prompt\": \"x\"} trailing",
        "{\"prompt\": 5}",
        "{\"ratio\": \"123456789\"}",
        "{\"ratio\": 16}",
        "{\"n\": \"2\"}",
        "{\"n\": 1.5}",
        "{\"n\": 1e12}",
        "{\"temperature\": \"hot\"}",
        "{\"official\": 1}",
        "{\"refs\": \"https://x\"}",
        "{\"refs\": [1]}",
        "{\"refs\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\","
        "\"m\",\"n\",\"o\",\"p\",\"q\"]}",
        "{\"refs\": [\"a\", 2]}",
    };
    struct ig_request r;

    for (size_t i = 0; i < IG_ARRAY_LEN(bad); i++) {
        assert_int_equal(ig_request_from_json(&r, bad[i]), IG_E_INVALID);
        /* Nothing is left allocated on failure. */
        assert_null(r.prompt);
        assert_int_equal(r.nrefs, 0);
    }
    assert_int_equal(ig_request_from_json(&r, NULL), IG_E_INVALID);
    /* Unknown keys are ignored (forward compatibility of stored rows). */
    assert_int_equal(ig_request_from_json(&r, "{\"prompt\":\"x\",\"future\":{\"a\":1}}"), IG_OK);
    assert_string_equal(r.prompt, "x");
    ig_request_release(&r);
}

static void test_task__request_json_numbers_exact(void **state)
{
    static const double vals[] = {0.9, 0.1 + 0.2, 1.0 / 3.0, 1e-7, 2.0, 0.0, -0.0,
                                  4.9406564584124654e-324, 1.7976931348623157e308};
    struct ig_request r;
    char *json;

    memset(&r, 0, sizeof(r));
    r.has_top_p = true;
    r.top_p = 0.9;
    json = ig_request_to_json(&r);
    /* Short where short is exact. */
    assert_non_null(strstr(json, "\"top_p\":0.9,"));
    free(json);
    for (size_t i = 0; i < IG_ARRAY_LEN(vals); i++) {
        r.has_temperature = true;
        r.temperature = vals[i];
        round_trip(&r);
    }
}

static void fill_task(struct ig_task *t)
{
    ig_task_init(t);
    ig_id_new(&t->id);
    t->key_id = 42;
    snprintf(t->model, sizeof(t->model), "gemini-2.5-flash-image");
    t->req.prompt = ig_xstrdup("a lighthouse at dusk");
    t->req.nrefs = 3;
    for (int i = 0; i < 3; i++)
        t->req.refs[i] = ig_xasprintf("https://example.com/%d.jpg", i);
    t->text = ig_xstrdup("here is your lighthouse");
    ig_task_set_error(t, IG_E_MODERATED, "first message");
    ig_task_set_error(t, IG_E_UPSTREAM_FAILED, "second message");
}

static void test_task__init_copy_release(void **state)
{
    struct ig_task t, c;

    ig_task_init(&t);
    assert_int_equal(t.state, IG_TASK_QUEUED);
    assert_int_equal(t.err, IG_OK);
    assert_null(t.req.prompt);
    assert_null(t.err_message);
    ig_task_release(&t); /* releasing an empty task is fine */

    fill_task(&t);
    assert_int_equal(t.err, IG_E_UPSTREAM_FAILED);
    assert_string_equal(t.err_message, "second message");

    ig_task_copy(&c, &t);
    assert_true(ig_id_equal(&c.id, &t.id));
    assert_int_equal(c.key_id, 42);
    assert_string_equal(c.model, t.model);
    /* Deep: every string is a separate allocation with the same text. */
    assert_ptr_not_equal(c.req.prompt, t.req.prompt);
    assert_string_equal(c.req.prompt, t.req.prompt);
    assert_int_equal(c.req.nrefs, 3);
    for (int i = 0; i < 3; i++) {
        assert_ptr_not_equal(c.req.refs[i], t.req.refs[i]);
        assert_string_equal(c.req.refs[i], t.req.refs[i]);
    }
    assert_ptr_not_equal(c.text, t.text);
    assert_string_equal(c.text, t.text);
    assert_ptr_not_equal(c.err_message, t.err_message);
    assert_string_equal(c.err_message, t.err_message);

    /* Freeing the original leaves the copy intact (ASan checks the rest). */
    ig_task_release(&t);
    assert_null(t.req.prompt);
    assert_string_equal(c.req.prompt, "a lighthouse at dusk");
    ig_task_set_error(&c, IG_OK, NULL);
    assert_null(c.err_message);
    assert_int_equal(c.err, IG_OK);
    ig_task_release(&c);
    ig_task_release(&c); /* twice is fine: release leaves an initialised task */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task__state_names),
        cmocka_unit_test(test_task__request_json_round_trip_full),
        cmocka_unit_test(test_task__request_json_gemini_passthroughs),
        cmocka_unit_test(test_task__request_json_round_trip_minimal),
        cmocka_unit_test(test_task__request_json_rejects_bad_input),
        cmocka_unit_test(test_task__request_json_numbers_exact),
        cmocka_unit_test(test_task__init_copy_release),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
