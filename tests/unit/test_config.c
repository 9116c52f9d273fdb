/* test_config.c: the option table: defaults, typed setters with their bounds, the JSON config
 * file, IMAGEGATE_* environment overrides and --help. */
#include "base/base.h"

#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

/* Every option name, as documented in config.c's table. */
static const char *const all_names[] = {
    "listen", "data", "public-url", "config", "catalog", "log-level", "http-threads",
    "cpu-threads", "max-body-bytes", "max-header-bytes", "conn-timeout", "max-inflight",
    "task-timeout", "lease", "max-attempts", "grace", "reapi-expiry", "sweep-interval",
    "offline-latency-ms", "offline-failure-rate", "ref-max-bytes", "ref-max-pixels",
    "fetch-connect-timeout-ms", "fetch-timeout-ms", "fetch-max-redirects",
    "fetch-allow-loopback",
};

struct fx {
    char dir[PATH_MAX];
    char file[PATH_MAX + 32];
    struct ig_config c;
    struct ig_errbuf eb;
};

/* Drop every IMAGEGATE_* variable so the caller's environment cannot leak into the tests. */
static void clear_env(void)
{
    for (;;) {
        char name[256];
        const char *eq;
        char **e;

        for (e = environ; *e; e++)
            if (strncmp(*e, "IMAGEGATE_", 10) == 0)
                break;
        if (!*e)
            return;
        eq = strchr(*e, '=');
        snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - *e) : (int)strlen(*e), *e);
        unsetenv(name);
    }
}

static int setup(void **state)
{
    struct fx *f = ig_xcalloc(1, sizeof(*f));
    const char *base = getenv("IG_TEST_TMP");

    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0700) != 0 && errno != EEXIST)
        fail_msg("cannot create %s", base);
    snprintf(f->dir, sizeof(f->dir), "%s/config.XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->file, sizeof(f->file), "%s/imagegate.json", f->dir);
    clear_env();
    ig_config_defaults(&f->c);
    ig_errbuf_clear(&f->eb);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    clear_env();
    unlink(f->file);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Point c->config_file at path through the option itself (it is a string option too). */
static void use_file(struct fx *f, const char *path)
{
    if (ig_config_set(&f->c, "config", path, &f->eb) != IG_OK)
        fail_msg("config = '%s' refused: %s", path, f->eb.msg);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

/* Set an option that must be refused as invalid; the error names the option. */
static void set_invalid(struct fx *f, const char *name, const char *value, const char *want_msg)
{
    ig_errbuf_clear(&f->eb);
    if (ig_config_set(&f->c, name, value, &f->eb) != IG_E_INVALID)
        fail_msg("%s = '%s' was not refused", name, value);
    assert_string_equal(f->eb.field, name);
    assert_non_null(strstr(f->eb.msg, name));
    if (want_msg && !strstr(f->eb.msg, want_msg))
        fail_msg("%s = '%s': message '%s' lacks '%s'", name, value, f->eb.msg, want_msg);
}

static void set_ok(struct fx *f, const char *name, const char *value)
{
    ig_errbuf_clear(&f->eb);
    if (ig_config_set(&f->c, name, value, &f->eb) != IG_OK)
        fail_msg("%s = '%s' refused: %s", name, value, f->eb.msg);
}

static void test_config__defaults(void **state)
{
    struct fx *f = *state;
    const struct ig_config *c = &f->c;

    assert_string_equal(c->listen, "127.0.0.1:8080");
    assert_string_equal(c->data_dir, "./data");
    assert_string_equal(c->public_url, "");
    assert_string_equal(c->config_file, "");
    assert_string_equal(c->catalog_file, "");
    assert_string_equal(c->log_level, "info");
    assert_int_equal(c->http_threads, 0);
    assert_int_equal(c->cpu_threads, 0);
    assert_int_equal(c->max_body_bytes, 10485760);
    assert_int_equal(c->max_header_bytes, 16384);
    assert_int_equal(c->conn_timeout_s, 30);
    assert_int_equal(c->max_inflight, 256);
    assert_int_equal(c->task_timeout_s, 600);
    assert_int_equal(c->lease_s, 60);
    assert_int_equal(c->max_attempts, 3);
    assert_int_equal(c->grace_s, 20);
    assert_int_equal(c->reapi_expiry_s, 604800);
    assert_int_equal(c->sweep_interval_s, 60);
    assert_int_equal(c->offline_latency_ms, 0);
    assert_true(c->offline_failure_rate == 0.0);
    assert_int_equal(c->ref_max_bytes, 7340032);
    assert_int_equal(c->ref_max_pixels, 50000000);
    assert_int_equal(c->fetch_connect_timeout_ms, 5000);
    assert_int_equal(c->fetch_timeout_ms, 30000);
    assert_int_equal(c->fetch_max_redirects, 3);
    assert_false(c->fetch_allow_loopback);
}

static void test_config__int64_bounds(void **state)
{
    struct fx *f = *state;

    set_ok(f, "max-body-bytes", "1024");
    assert_int_equal(f->c.max_body_bytes, 1024);
    set_invalid(f, "max-body-bytes", "1023", "outside");
    assert_int_equal(f->c.max_body_bytes, 1024); /* a refused value changes nothing */
    set_ok(f, "max-body-bytes", "1073741824");
    assert_int_equal(f->c.max_body_bytes, INT64_C(1073741824));
    set_invalid(f, "max-body-bytes", "1073741825", "outside");
    set_invalid(f, "max-body-bytes", "-1", "outside");

    set_ok(f, "reapi-expiry", "60");
    assert_int_equal(f->c.reapi_expiry_s, 60);
    set_invalid(f, "reapi-expiry", "59", NULL);
    set_ok(f, "reapi-expiry", "315360000");
    assert_int_equal(f->c.reapi_expiry_s, INT64_C(315360000));
    set_invalid(f, "reapi-expiry", "315360001", NULL);

    /* Beyond 32 bits, stored exactly. */
    set_ok(f, "ref-max-pixels", "1099511627776");
    assert_int_equal(f->c.ref_max_pixels, INT64_C(1099511627776));
    set_invalid(f, "ref-max-pixels", "1099511627777", NULL);
    set_invalid(f, "ref-max-pixels", "0", NULL);
}

static void test_config__int_bounds(void **state)
{
    struct fx *f = *state;

    set_ok(f, "http-threads", "0");
    set_ok(f, "http-threads", "64");
    assert_int_equal(f->c.http_threads, 64);
    set_invalid(f, "http-threads", "65", "outside");
    set_invalid(f, "http-threads", "-1", "outside");
    assert_int_equal(f->c.http_threads, 64);
    set_ok(f, "lease", "5");
    assert_int_equal(f->c.lease_s, 5);
    set_invalid(f, "lease", "4", NULL);
    set_ok(f, "fetch-max-redirects", "10");
    set_invalid(f, "fetch-max-redirects", "11", NULL);
    set_ok(f, "max-attempts", "100");
    set_invalid(f, "max-attempts", "0", NULL);
    set_ok(f, "fetch-timeout-ms", "3600000");
    assert_int_equal(f->c.fetch_timeout_ms, 3600000);
    set_invalid(f, "fetch-timeout-ms", "99", NULL);
}

static void test_config__double_bounds(void **state)
{
    struct fx *f = *state;

    set_ok(f, "offline-failure-rate", "1");
    assert_true(f->c.offline_failure_rate == 1.0);
    set_ok(f, "offline-failure-rate", "0.25");
    assert_true(f->c.offline_failure_rate == 0.25);
    set_ok(f, "offline-failure-rate", "0");
    assert_true(f->c.offline_failure_rate == 0.0);
    set_invalid(f, "offline-failure-rate", "1.01", "outside");
    set_invalid(f, "offline-failure-rate", "-0.01", "outside");
    set_invalid(f, "offline-failure-rate", "nan", NULL);
    set_invalid(f, "offline-failure-rate", "inf", NULL);
    set_invalid(f, "offline-failure-rate", "0.5x", "not a number");
    assert_true(f->c.offline_failure_rate == 0.0);
}

static void test_config__malformed_numbers(void **state)
{
    struct fx *f = *state;

    set_invalid(f, "http-threads", "1.5", "not a whole number");
    set_invalid(f, "max-body-bytes", "2048.5", "not a whole number");
    set_invalid(f, "max-body-bytes", "abc", "not a number");
    set_invalid(f, "max-body-bytes", "", "not a number");
    set_invalid(f, "max-body-bytes", "2048 ", "not a number");
    set_invalid(f, "max-body-bytes", "2k", "not a number");
    set_invalid(f, "max-body-bytes", "1e400", NULL);
    set_invalid(f, "max-body-bytes", "nan", NULL);
    assert_int_equal(f->c.max_body_bytes, 10485760);
    /* A whole number in another spelling is still a whole number. */
    set_ok(f, "max-body-bytes", "2048.0");
    assert_int_equal(f->c.max_body_bytes, 2048);
    set_ok(f, "max-body-bytes", "4e3");
    assert_int_equal(f->c.max_body_bytes, 4000);
}

static void test_config__unknown_option(void **state)
{
    struct fx *f = *state;

    assert_int_equal(ig_config_set(&f->c, "max-body", "2048", &f->eb), IG_E_NOT_FOUND);
    assert_string_equal(f->eb.field, "max-body");
    assert_non_null(strstr(f->eb.msg, "max-body"));
    assert_int_equal(ig_config_set(&f->c, "", "x", &f->eb), IG_E_NOT_FOUND);
    assert_int_equal(ig_config_set(&f->c, "MAX-BODY-BYTES", "2048", &f->eb), IG_E_NOT_FOUND);
    assert_int_equal(ig_config_set(&f->c, "max_body_bytes", "2048", &f->eb), IG_E_NOT_FOUND);
    assert_int_equal(f->c.max_body_bytes, 10485760);
}

static void test_config__booleans(void **state)
{
    struct fx *f = *state;
    static const char *const yes[] = {"true", "1", "yes"};
    static const char *const no[] = {"false", "0", "no"};
    static const char *const bad[] = {"TRUE", "on", "off", "2", "", "y", "truex"};

    for (size_t i = 0; i < IG_ARRAY_LEN(yes); i++) {
        f->c.fetch_allow_loopback = false;
        set_ok(f, "fetch-allow-loopback", yes[i]);
        assert_true(f->c.fetch_allow_loopback);
    }
    for (size_t i = 0; i < IG_ARRAY_LEN(no); i++) {
        f->c.fetch_allow_loopback = true;
        set_ok(f, "fetch-allow-loopback", no[i]);
        assert_false(f->c.fetch_allow_loopback);
    }
    for (size_t i = 0; i < IG_ARRAY_LEN(bad); i++) {
        f->c.fetch_allow_loopback = true;
        set_invalid(f, "fetch-allow-loopback", bad[i], "expected true or false");
        assert_true(f->c.fetch_allow_loopback);
    }
    assert_true(ig_config_is_flag("fetch-allow-loopback"));
    assert_false(ig_config_is_flag("listen"));
    assert_false(ig_config_is_flag("max-body-bytes"));
    assert_false(ig_config_is_flag("no-such-option"));
}

static void test_config__string_length(void **state)
{
    struct fx *f = *state;
    char v[200];

    memset(v, 'a', 127);
    v[127] = '\0';
    set_ok(f, "listen", v); /* sizeof listen - 1 fits */
    assert_string_equal(f->c.listen, v);
    memset(v, 'b', 128);
    v[128] = '\0';
    set_invalid(f, "listen", v, "longer than 127 bytes");
    memset(v, 'a', 127);
    v[127] = '\0';
    assert_string_equal(f->c.listen, v);
    set_ok(f, "listen", "");
    assert_string_equal(f->c.listen, "");
    set_ok(f, "log-level", "debug");
    assert_string_equal(f->c.log_level, "debug");
    set_invalid(f, "log-level", "0123456789abcdef", "longer than 15 bytes");
}

static void test_config__file_applies(void **state)
{
    struct fx *f = *state;

    write_file(f->file, "{\n"
                        "  \"listen\": \"0.0.0.0:9000\",\n"
                        "  \"max-body-bytes\": 4096,\n"
                        "  \"reapi-expiry\": 3600,\n"
                        "  \"offline-failure-rate\": 0.25,\n"
                        "  \"http-threads\": \"3\",\n"
                        "  \"fetch-allow-loopback\": true,\n"
                        "  \"channels\": {\"gemini\": {\"keys\": [\"k1\", \"k2\"]}},\n"
                        "  \"extra-list\": [1, 2, 3],\n"
                        "  \"log-level\": \"warn\"\n"
                        "}\n");
    use_file(f, f->file);
    if (ig_config_load_file_env(&f->c, &f->eb) != IG_OK)
        fail_msg("load failed: %s", f->eb.msg);
    assert_string_equal(f->c.listen, "0.0.0.0:9000");
    assert_int_equal(f->c.max_body_bytes, 4096);
    assert_int_equal(f->c.reapi_expiry_s, 3600);
    assert_true(f->c.offline_failure_rate == 0.25);
    assert_int_equal(f->c.http_threads, 3);
    assert_true(f->c.fetch_allow_loopback);
    assert_string_equal(f->c.log_level, "warn");
    /* Untouched options keep their defaults. */
    assert_int_equal(f->c.max_header_bytes, 16384);
    assert_string_equal(f->c.data_dir, "./data");

    /* false in a file. */
    write_file(f->file, "{\"fetch-allow-loopback\": false}");
    assert_int_equal(ig_config_load_file_env(&f->c, &f->eb), IG_OK);
    assert_false(f->c.fetch_allow_loopback);
}

static void test_config__no_file_no_env_keeps_defaults(void **state)
{
    struct fx *f = *state;
    struct ig_config d;

    ig_config_defaults(&d);
    assert_int_equal(ig_config_load_file_env(&f->c, &f->eb), IG_OK);
    assert_memory_equal(&f->c, &d, sizeof(d));
}

static void load_expect(struct fx *f, const char *text, enum ig_err want, const char *field,
                        const char *want_msg)
{
    enum ig_err err;

    write_file(f->file, text);
    use_file(f, f->file);
    ig_errbuf_clear(&f->eb);
    err = ig_config_load_file_env(&f->c, &f->eb);
    if (err != want)
        fail_msg("file '%s': got %s, want %s (%s)", text, ig_strerror(err), ig_strerror(want),
                 f->eb.msg);
    if (field)
        assert_string_equal(f->eb.field, field);
    if (want_msg && !strstr(f->eb.msg, want_msg))
        fail_msg("file '%s': message '%s' lacks '%s'", text, f->eb.msg, want_msg);
}

static void test_config__file_errors(void **state)
{
    struct fx *f = *state;

    load_expect(f, "{\"listen\": \"x:1\", \"max-bodybytes\": 1}", IG_E_INVALID, "max-bodybytes",
                "unknown option 'max-bodybytes'");
    load_expect(f, "[1, 2]", IG_E_INVALID, "config", "not a JSON object");
    load_expect(f, "\"listen\"", IG_E_INVALID, "config", "not a JSON object");
    load_expect(f, "{\"listen\": ", IG_E_INVALID, "config", "not a JSON object");
    load_expect(f, "", IG_E_INVALID, "config", "not a JSON object");
    load_expect(f, "{\"max-body-bytes\": 1000}", IG_E_INVALID, "max-body-bytes", "outside");
    load_expect(f, "{\"max-body-bytes\": 2048.5}", IG_E_INVALID, "max-body-bytes",
                "not a whole number");
    load_expect(f, "{\"listen\": null}", IG_E_INVALID, "listen",
                "must be a string, number or boolean");
    load_expect(f, "{\"fetch-allow-loopback\": \"maybe\"}", IG_E_INVALID, "fetch-allow-loopback",
                "expected true or false");

    {
        char missing[PATH_MAX + 32];

        snprintf(missing, sizeof(missing), "%s/missing.json", f->dir);
        use_file(f, missing);
    }
    assert_int_equal(ig_config_load_file_env(&f->c, &f->eb), IG_E_IO);
    assert_non_null(strstr(f->eb.msg, "missing.json"));
}

static void test_config__env_overrides_file(void **state)
{
    struct fx *f = *state;

    write_file(f->file, "{\"max-body-bytes\": 4096, \"listen\": \"0.0.0.0:1\"}");
    use_file(f, f->file);
    assert_int_equal(setenv("IMAGEGATE_MAX_BODY_BYTES", "2048", 1), 0);
    assert_int_equal(setenv("IMAGEGATE_FETCH_ALLOW_LOOPBACK", "yes", 1), 0);
    assert_int_equal(setenv("IMAGEGATE_OFFLINE_FAILURE_RATE", "0.5", 1), 0);
    if (ig_config_load_file_env(&f->c, &f->eb) != IG_OK)
        fail_msg("load failed: %s", f->eb.msg);
    assert_int_equal(f->c.max_body_bytes, 2048);
    assert_string_equal(f->c.listen, "0.0.0.0:1"); /* from the file, no env for it */
    assert_true(f->c.fetch_allow_loopback);
    assert_true(f->c.offline_failure_rate == 0.5);
    unsetenv("IMAGEGATE_FETCH_ALLOW_LOOPBACK");
    unsetenv("IMAGEGATE_OFFLINE_FAILURE_RATE");

    /* Without the variable, the file's value stands. */
    unsetenv("IMAGEGATE_MAX_BODY_BYTES");
    assert_int_equal(ig_config_load_file_env(&f->c, &f->eb), IG_OK);
    assert_int_equal(f->c.max_body_bytes, 4096);

    /* A bad value in the environment is an error naming the option. */
    assert_int_equal(setenv("IMAGEGATE_MAX_BODY_BYTES", "12", 1), 0);
    assert_int_equal(ig_config_load_file_env(&f->c, &f->eb), IG_E_INVALID);
    assert_string_equal(f->eb.field, "max-body-bytes");
    unsetenv("IMAGEGATE_MAX_BODY_BYTES");
}

static void test_config__env_without_file(void **state)
{
    struct fx *f = *state;

    assert_int_equal(setenv("IMAGEGATE_LISTEN", "[::1]:8443", 1), 0);
    assert_int_equal(setenv("IMAGEGATE_REF_MAX_PIXELS", "1000", 1), 0);
    /* IMAGEGATE_CONFIG is not read here: the file was chosen before this call. */
    assert_int_equal(setenv("IMAGEGATE_CONFIG", "/nonexistent/imagegate.json", 1), 0);
    assert_int_equal(ig_config_load_file_env(&f->c, &f->eb), IG_OK);
    assert_string_equal(f->c.listen, "[::1]:8443");
    assert_int_equal(f->c.ref_max_pixels, 1000);
    assert_string_equal(f->c.config_file, "");
}

static void test_config__help_lists_every_option(void **state)
{
    FILE *fp = tmpfile();
    char text[16384];
    size_t n;

    assert_non_null(fp);
    ig_config_print_help(fp);
    rewind(fp);
    n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    assert_true(n > 0 && n < sizeof(text) - 1);
    text[n] = '\0';
    for (size_t i = 0; i < IG_ARRAY_LEN(all_names); i++) {
        char want[64];

        snprintf(want, sizeof(want), "--%s ", all_names[i]);
        if (!strstr(text, want))
            fail_msg("--help lacks '%s'", want);
    }
    assert_non_null(strstr(text, "--max-body-bytes N"));
    assert_non_null(strstr(text, "--listen TEXT"));
    assert_non_null(strstr(text, "[10485760]"));
    assert_non_null(strstr(text, "[127.0.0.1:8080]"));
    assert_non_null(strstr(text, "IMAGEGATE_MAX_BODY_BYTES"));
    /* Booleans take no value. */
    assert_null(strstr(text, "--fetch-allow-loopback N"));
    assert_null(strstr(text, "--fetch-allow-loopback TEXT"));
}

static void test_config__every_documented_name_is_settable(void **state)
{
    struct fx *f = *state;

    /* Setting each option to its own default text proves the name exists. */
    for (size_t i = 0; i < IG_ARRAY_LEN(all_names); i++) {
        enum ig_err err = ig_config_set(&f->c, all_names[i],
                                        ig_config_is_flag(all_names[i]) ? "false" : "1024",
                                        &f->eb);
        if (err == IG_E_NOT_FOUND)
            fail_msg("option '%s' unknown", all_names[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config__defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__int64_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__int_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__double_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__malformed_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__unknown_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__booleans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__string_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__file_applies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__no_file_no_env_keeps_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config__file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__env_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__env_without_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__help_lists_every_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config__every_documented_name_is_settable, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
