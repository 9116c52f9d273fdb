/* config.c: the option table and its loaders. */
#include "base/base.h"
#include "config/config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum opt_type { OPT_STR, OPT_INT, OPT_I64, OPT_DOUBLE, OPT_BOOL };

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;
    size_t size; /* for strings */
    double min, max;
    const char *def;
    const char *help;
};

#define STR(n, f, d, h) {n, OPT_STR, offsetof(struct ig_config, f), sizeof(((struct ig_config *)0)->f), 0, 0, d, h}
#define INT(n, f, lo, hi, d, h) {n, OPT_INT, offsetof(struct ig_config, f), 0, lo, hi, d, h}
#define I64(n, f, lo, hi, d, h) {n, OPT_I64, offsetof(struct ig_config, f), 0, lo, hi, d, h}
#define DBL(n, f, lo, hi, d, h) {n, OPT_DOUBLE, offsetof(struct ig_config, f), 0, lo, hi, d, h}
#define BOOL(n, f, d, h) {n, OPT_BOOL, offsetof(struct ig_config, f), 0, 0, 1, d, h}

static const struct opt opts[] = {
    STR("listen", listen, "127.0.0.1:8080", "address and port to serve HTTP on"),
    STR("data", data_dir, "./data", "data directory: database, stored images, first key"),
    STR("public-url", public_url, "", "base URL clients reach this server at (default http://<listen>)"),
    STR("config", config_file, "", "JSON config file with any of these options"),
    STR("catalog", catalog_file, "", "model catalog JSON (default: the compiled-in etc/models.json)"),
    STR("log-level", log_level, "info", "debug, info, warn, error or off"),
    INT("http-threads", http_threads, 0, 64, "0", "HTTP event-loop threads (0 = one per core)"),
    INT("cpu-threads", cpu_threads, 0, 64, "0", "threads for image work (0 = one per core)"),
    I64("max-body-bytes", max_body_bytes, 1024, 1 << 30, "10485760", "largest request body accepted (413 above)"),
    I64("max-header-bytes", max_header_bytes, 1024, 1 << 20, "16384", "largest request line + headers accepted"),
    INT("max-connections", max_connections, 1, 1000000, "4096",
        "open client connections per HTTP thread; past it new ones wait in the backlog"),
    INT("conn-timeout", conn_timeout_s, 1, 3600, "30", "seconds a connection may idle or take to send a request"),
    INT("max-inflight", max_inflight, 1, 100000, "256", "tasks run at once by this node"),
    INT("rate-rpm", rate_rpm, 0, 1000000, "600",
        "submits per minute per key (GCRA; 0 = no limit); a key may have its own"),
    INT("rate-burst", rate_burst, 1, 1000000, "60",
        "submits a key may make at once before the per-minute pace applies"),
    INT("max-tasks-per-key", max_tasks_per_key, 0, 10000000, "1000",
        "unfinished (queued or running) tasks per key (0 = no limit); a key may have its own"),
    INT("idempotency-ttl", idempotency_ttl_s, 60, 30 * 86400, "86400",
        "seconds an Idempotency-Key's first response is replayed"),
    INT("idempotency-wait-ms", idempotency_wait_ms, 0, 600000, "5000",
        "how long a duplicate waits for its first request's admission before a 409"),
    INT("task-timeout", task_timeout_s, 1, 86400, "600", "seconds from submit until a task fails as timed out (80002)"),
    INT("lease", lease_s, 5, 86400, "60", "seconds a running task's lease lasts between renewals"),
    INT("max-attempts", max_attempts, 1, 100, "3", "times a task may be started before it fails (poison tasks)"),
    INT("grace", grace_s, 0, 3600, "20", "seconds running tasks get to finish on SIGTERM before being requeued"),
    I64("reapi-expiry", reapi_expiry_s, 60, 10LL * 365 * 86400, "604800", "seconds reAPI result URLs stay valid (7 days)"),
    INT("sweep-interval", sweep_interval_s, 1, 86400, "60", "seconds between expiry sweeps"),
    INT("offline-latency-ms", offline_latency_ms, 0, 600000, "0", "added latency of the offline provider"),
    DBL("offline-failure-rate", offline_failure_rate, 0, 1, "0", "share of offline tasks that fail (tests, load tests)"),
    I64("ref-max-bytes", ref_max_bytes, 1024, 1 << 30, "7340032", "largest reference image (7 MB)"),
    I64("ref-max-pixels", ref_max_pixels, 1, 1LL << 40, "50000000", "most pixels in a reference image"),
    INT("fetch-connect-timeout-ms", fetch_connect_timeout_ms, 100, 600000, "5000", "reference fetch connect timeout"),
    INT("fetch-timeout-ms", fetch_timeout_ms, 100, 3600000, "30000", "reference fetch total timeout"),
    INT("fetch-max-redirects", fetch_max_redirects, 0, 10, "3", "redirects followed (each hop re-checked)"),
    BOOL("fetch-allow-loopback", fetch_allow_loopback, "false",
         "TESTS ONLY: let reference URLs reach loopback addresses"),
    INT("upstream-max-attempts", upstream_max_attempts, 1, 16, "5",
        "upstream attempts per task run (retries and failover)"),
    INT("upstream-budget-ms", upstream_budget_ms, 0, 3600000, "30000",
        "time within which an upstream call may be retried"),
    INT("upstream-backoff-base-ms", upstream_backoff_base_ms, 0, 600000, "500",
        "first retry waits up to this (exponential, full jitter)"),
    INT("upstream-backoff-max-ms", upstream_backoff_max_ms, 0, 600000, "8000",
        "longest wait between retries"),
    INT("upstream-cooldown-ms", upstream_cooldown_ms, 0, 3600000, "10000",
        "a channel answering 429 without Retry-After rests this long"),
    BOOL("upstream-retry-maybe-executed", upstream_retry_maybe_executed, "false",
         "also retry calls that may have run upstream (timeouts after sending, 500, 504): "
         "may double-bill"),
    STR("blob-backend", blob_backend, "fs", "where result images are stored: fs (under --data) or s3"),
    STR("s3-endpoint", s3_endpoint, "", "S3 API URL, e.g. https://s3.us-east-1.amazonaws.com"),
    STR("s3-region", s3_region, "us-east-1", "S3 signing region"),
    STR("s3-bucket", s3_bucket, "", "S3 bucket for result images"),
    STR("s3-prefix", s3_prefix, "", "S3 key prefix (a folder, e.g. results/)"),
    BOOL("s3-path-style", s3_path_style, "false",
         "S3 path-style URLs ({endpoint}/{bucket}/{key}) instead of {bucket}.{host}"),
    INT("s3-presign-ttl", s3_presign_ttl_s, 0, 604800, "0",
        "seconds a presigned S3 URL is valid; media URLs redirect to it (0 = proxy the bytes)"),
    STR("s3-access-key", s3_access_key, "", "S3 access key id"),
    STR("s3-secret-key", s3_secret_key, "",
        "S3 secret key (prefer IMAGEGATE_S3_SECRET_KEY or the config file: flags show in ps)"),
    I64("s3-max-object-bytes", s3_max_object_bytes, 1024, 1LL << 32, "67108864",
        "largest S3 object read back (64 MiB)"),
    INT("s3-connect-timeout-ms", s3_connect_timeout_ms, 100, 600000, "5000", "S3 connect timeout"),
    INT("s3-timeout-ms", s3_timeout_ms, 100, 3600000, "30000",
        "S3 time per operation, retries included"),
    INT("s3-proxy-threads", s3_proxy_threads, 1, 256, "8",
        "threads fetching S3 objects for media requests in proxy mode"),
};

static const struct opt *find(const char *name)
{
    for (size_t i = 0; i < IG_ARRAY_LEN(opts); i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

bool ig_config_is_flag(const char *name)
{
    const struct opt *o = find(name);
    return o && o->type == OPT_BOOL;
}

static enum ig_err set(struct ig_config *c, const struct opt *o, const char *v, struct ig_errbuf *eb)
{
    char *p = (char *)c + o->off;
    char *end;
    double d;

    switch (o->type) {
    case OPT_STR:
        if (strlen(v) >= o->size)
            return ig_fail(eb, IG_E_INVALID, o->name, "%s: value longer than %zu bytes", o->name,
                           o->size - 1);
        memcpy(p, v, strlen(v) + 1);
        return IG_OK;
    case OPT_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0)
            *(bool *)p = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0)
            *(bool *)p = false;
        else
            return ig_fail(eb, IG_E_INVALID, o->name, "%s: expected true or false, got '%s'",
                           o->name, v);
        return IG_OK;
    case OPT_INT:
    case OPT_I64:
    case OPT_DOUBLE:
        errno = 0;
        d = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(d))
            return ig_fail(eb, IG_E_INVALID, o->name, "%s: '%s' is not a number", o->name, v);
        if (o->type != OPT_DOUBLE && d != floor(d))
            return ig_fail(eb, IG_E_INVALID, o->name, "%s: '%s' is not a whole number", o->name, v);
        if (d < o->min || d > o->max)
            return ig_fail(eb, IG_E_INVALID, o->name, "%s: %s is outside %.17g..%.17g", o->name, v,
                           o->min, o->max);
        if (o->type == OPT_INT)
            *(int *)p = (int)d;
        else if (o->type == OPT_I64)
            *(int64_t *)p = (int64_t)d;
        else
            *(double *)p = d;
        return IG_OK;
    }
    return IG_E_INTERNAL;
}

void ig_config_defaults(struct ig_config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < IG_ARRAY_LEN(opts); i++)
        if (set(c, &opts[i], opts[i].def, NULL))
            IG_BUG("bad default for '%s'", opts[i].name);
}

enum ig_err ig_config_set(struct ig_config *c, const char *name, const char *value,
                          struct ig_errbuf *eb)
{
    const struct opt *o = find(name);

    if (!o)
        return ig_fail(eb, IG_E_NOT_FOUND, name, "unknown option '%s'", name);
    return set(c, o, value, eb);
}

static enum ig_err load_file(struct ig_config *c, const char *path, struct ig_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    struct ig_buf b = IG_BUF_INIT(1 << 20);
    char chunk[4096];
    size_t n;
    cJSON *root = NULL, *it;
    enum ig_err err = IG_OK;

    if (!f)
        return ig_fail(eb, IG_E_IO, "config", "cannot open config file '%s'", path);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (ig_buf_add(&b, chunk, n)) {
            err = ig_fail(eb, IG_E_TOOBIG, "config", "config file '%s' exceeds 1 MiB", path);
            goto out;
        }
    root = cJSON_ParseWithLengthOpts(b.data ? b.data : "", b.len, NULL, 0);
    if (!cJSON_IsObject(root)) {
        err = ig_fail(eb, IG_E_INVALID, "config", "config file '%s' is not a JSON object", path);
        goto out;
    }
    cJSON_ArrayForEach(it, root)
    {
        char num[64];
        const char *v;
        const struct opt *o = find(it->string);

        if (!o) {
            /* Sections read by other modules (e.g. "channels") are not options. */
            if (cJSON_IsObject(it) || cJSON_IsArray(it))
                continue;
            err = ig_fail(eb, IG_E_INVALID, it->string, "config file: unknown option '%s'",
                          it->string);
            goto out;
        }
        if (cJSON_IsString(it)) {
            v = it->valuestring;
        } else if (cJSON_IsNumber(it)) {
            snprintf(num, sizeof(num), "%.17g", it->valuedouble);
            v = num;
        } else if (cJSON_IsBool(it)) {
            v = cJSON_IsTrue(it) ? "true" : "false";
        } else {
            err = ig_fail(eb, IG_E_INVALID, it->string,
                          "config file: '%s' must be a string, number or boolean", it->string);
            goto out;
        }
        err = set(c, o, v, eb);
        if (err)
            goto out;
    }
out:
    cJSON_Delete(root);
    ig_buf_release(&b);
    fclose(f);
    return err;
}

enum ig_err ig_config_load_file_env(struct ig_config *c, struct ig_errbuf *eb)
{
    enum ig_err err;

    if (c->config_file[0]) {
        err = load_file(c, c->config_file, eb);
        if (err)
            return err;
    }
    for (size_t i = 0; i < IG_ARRAY_LEN(opts); i++) {
        char env[96] = "IMAGEGATE_";
        size_t k = strlen(env);
        const char *v;

        for (const char *p = opts[i].name; *p && k < sizeof(env) - 1; p++)
            env[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        env[k] = '\0';
        v = getenv(env);
        if (v && strcmp(opts[i].name, "config") != 0) {
            err = set(c, &opts[i], v, eb);
            if (err)
                return err;
        }
    }
    return IG_OK;
}

void ig_config_print_help(FILE *f)
{
    for (size_t i = 0; i < IG_ARRAY_LEN(opts); i++) {
        const struct opt *o = &opts[i];
        char arg[64];

        if (o->type == OPT_BOOL)
            snprintf(arg, sizeof(arg), "--%s", o->name);
        else
            snprintf(arg, sizeof(arg), "--%s %s", o->name,
                     o->type == OPT_STR ? "TEXT" : "N");
        fprintf(f, "  %-34s %s", arg, o->help);
        if (o->type == OPT_STR && o->def[0])
            fprintf(f, " [%s]", o->def);
        else if (o->type != OPT_STR)
            fprintf(f, " [%s]", o->def);
        fputc('\n', f);
    }
    fprintf(f, "  Every option may also be set as IMAGEGATE_<NAME> (e.g. IMAGEGATE_MAX_BODY_BYTES)"
               "\n  or as a key of the --config JSON file.\n");
}
