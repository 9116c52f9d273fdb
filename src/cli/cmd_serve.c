/* cmd_serve.c: `imagegate serve`: open the store, start the engine and the HTTP threads,
 * wait for SIGTERM/SIGINT, stop gracefully. */
#include "base/base.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/app.h"
#include "core/engine.h"
#include "http/idempotency.h"
#include "http/server.h"
#include "media/vips.h"
#include "policy/keys.h"
#include "policy/limits.h"
#include "provider/channel.h"
#include "provider/provider.h"
#include "store/store.h"
#include "store/writer.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: imagegate serve [options]\n\n"
               "Runs the gateway: the HTTP API (reAPI dialect), the task engine and the stored\n"
               "result images. On an empty data directory it creates a first API key and saves\n"
               "it to <data>/first-key.txt. SIGTERM or SIGINT stops it gracefully: no new\n"
               "connections, running tasks get --grace seconds, the rest are requeued.\n\n"
               "options:\n");
    ig_config_print_help(f);
}

static int parse_args(struct ig_config *cfg, int argc, char **argv, bool *help)
{
    struct ig_errbuf eb;
    const char *envcfg = getenv("IMAGEGATE_CONFIG");

    ig_config_defaults(cfg);
    *help = false;
    /* The config file comes first so that flags override it. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            envcfg = argv[i + 1];
    ig_errbuf_clear(&eb);
    if (envcfg && ig_config_set(cfg, "config", envcfg, &eb))
        goto bad;
    if (ig_config_load_file_env(cfg, &eb))
        goto bad;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *val;
        char namebuf[64];
        const char *eq;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "imagegate serve: unexpected argument '%s'\n", a);
            return 2;
        }
        name = a + 2;
        eq = strchr(name, '=');
        if (eq) {
            snprintf(namebuf, sizeof(namebuf), "%.*s", (int)(eq - name), name);
            name = namebuf;
            val = eq + 1;
        } else if (ig_config_is_flag(name)) {
            val = "true";
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "imagegate serve: option '--%s' needs a value\n", name);
            return 2;
        }
        if (ig_config_set(cfg, name, val, &eb))
            goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "imagegate serve: %s\n", eb.msg);
    return 2;
}

/* The first start on an empty data directory: make a key and leave it where only the owner
 * can read it. */
static int first_key(struct ig_store *s, const struct ig_app *app)
{
    int64_t n = 0;
    struct ig_key k;
    char secret[IG_KEY_LEN + 1], path[1100];
    int fd;

    if (ig_store_key_count(s, &n) || n > 0)
        return 0;
    /* The operator's own key: unmetered, without rate limits, with the admin scope. */
    ig_key_template(&k);
    snprintf(k.name, sizeof(k.name), "first key");
    k.rate_rpm = 0;
    k.max_tasks = 0;
    k.scopes = IG_SCOPE_GENERATE | IG_SCOPE_ADMIN;
    if (ig_key_create_ex(s, &k, secret)) {
        ig_error("serve: could not create the first API key");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/first-key.txt", app->cfg.data_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, secret, strlen(secret)) != (ssize_t)strlen(secret) ||
        write(fd, "\n", 1) != 1 || fsync(fd)) {
        ig_error("serve: could not write '%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    fprintf(stderr,
            "\nimagegate: created a first API key and saved it in %s (readable only by you).\n"
            "Try it:\n\n"
            "  curl %s/api/v1/images/generations \\\n"
            "    -H \"Authorization: Bearer $(cat %s)\" \\\n"
            "    -d '{\"model\": \"gemini-2.5-flash-image-preview\", \"prompt\": \"moonlight on a "
            "bamboo path, ink wash painting\", \"size\": \"16:9\"}'\n\n",
            path, app->public_url, path);
    return 0;
}

/* The blob store --blob-backend names: fs under the data directory, or an S3 bucket. */
static enum ig_err open_blob(struct ig_app *app, const char *blobdir, struct ig_errbuf *eb)
{
    const struct ig_config *c = &app->cfg;
    struct ig_blob_s3_opts o = {0};

    if (strcmp(c->blob_backend, "fs") == 0)
        return ig_blob_open_fs(&app->blob, blobdir, eb);
    if (strcmp(c->blob_backend, "s3") != 0)
        return ig_fail(eb, IG_E_INVALID, "blob-backend",
                       "--blob-backend must be fs or s3, got '%s'", c->blob_backend);
    o.endpoint = c->s3_endpoint;
    o.region = c->s3_region;
    o.bucket = c->s3_bucket;
    o.prefix = c->s3_prefix;
    o.access_key = c->s3_access_key;
    o.secret_key = c->s3_secret_key;
    o.path_style = c->s3_path_style;
    o.presign_ttl_s = c->s3_presign_ttl_s;
    o.max_bytes = c->s3_max_object_bytes;
    o.connect_timeout_ms = c->s3_connect_timeout_ms;
    o.timeout_ms = c->s3_timeout_ms;
    o.io_threads = c->s3_proxy_threads;
    o.probe = true;
    return ig_blob_open_s3(&app->blob, &o, eb);
}

static enum ig_err noop_job(struct ig_store *s, void *arg)
{
    return IG_OK;
}

int ig_cmd_serve(int argc, char **argv)
{
    struct ig_app *app = ig_xcalloc(1, sizeof(*app));
    struct ig_store *s = NULL;
    struct ig_http_server *http = NULL;
    struct ig_provider *provider;
    struct ig_errbuf eb;
    sigset_t sigs;
    bool help;
    int rc, sig = 0, expired = 0;
    char blobdir[600];
    int lvl;

    rc = parse_args(&app->cfg, argc, argv, &help);
    if (rc || help) {
        if (help)
            usage(stdout);
        free(app);
        return rc;
    }
    lvl = ig_log_level_parse(app->cfg.log_level);
    if (lvl < 0) {
        fprintf(stderr, "imagegate serve: --log-level must be debug, info, warn, error or off\n");
        free(app);
        return 2;
    }
    ig_log_set_level((enum ig_log_level)lvl);
    {
        const char *off = getenv("IMAGEGATE_CLOCK_OFFSET_MS");
        if (off)
            ig_time_set_offset_ms(strtoll(off, NULL, 10));
    }

    /* Signals are taken by sigwait() in this thread only. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ig_errbuf_clear(&eb);
    rc = 1;
    if (ig_vips_init()) {
        ig_error("serve: libvips failed to start");
        goto out;
    }
    if (mkdir(app->cfg.data_dir, 0700) && errno != EEXIST) {
        ig_error("serve: cannot create data directory '%s': %s", app->cfg.data_dir, strerror(errno));
        goto out;
    }
    snprintf(app->db_path, sizeof(app->db_path), "%s/imagegate.db", app->cfg.data_dir);
    snprintf(blobdir, sizeof(blobdir), "%s/blobs", app->cfg.data_dir);
    if (app->cfg.catalog_file[0] ? ig_catalog_load_file(&app->catalog, app->cfg.catalog_file, &eb)
                                 : ig_catalog_load_default(&app->catalog, &eb)) {
        ig_error("serve: %s", eb.msg);
        goto out;
    }
    if (ig_store_open(&s, app->db_path, &eb) || ig_store_migrate(s, &eb)) {
        ig_error("serve: store: %s", eb.msg);
        goto out;
    }
    /* Single node: every lease in the store belongs to a process that is gone. */
    if (ig_store_task_expire_leases(s, ig_now_ms(), &expired) == IG_OK && expired)
        ig_info("serve: %d task(s) were running when the last process stopped; taking them up again",
                expired);
    if (open_blob(app, blobdir, &eb)) {
        ig_error("serve: blobs: %s", eb.msg);
        goto out;
    }
    app->writer = ig_writer_new(s, 256);
    s = NULL;

    {
        struct ig_router_opts ro;
        struct ig_channels *chs = ig_xcalloc(1, sizeof(*chs));

        if (ig_channels_load(chs, app->cfg.config_file, &eb) ||
            ig_channels_check(chs, app->catalog, &eb)) {
            ig_error("serve: channels: %s", eb.msg);
            free(chs);
            ig_writer_free(app->writer);
            app->writer = NULL;
            goto out;
        }
        ig_router_opts_default(&ro);
        ro.max_attempts = app->cfg.upstream_max_attempts;
        ro.budget_ms = app->cfg.upstream_budget_ms;
        ro.backoff_base_ms = app->cfg.upstream_backoff_base_ms;
        ro.backoff_max_ms = app->cfg.upstream_backoff_max_ms;
        ro.cooldown_ms = app->cfg.upstream_cooldown_ms;
        ro.retry_maybe_executed = app->cfg.upstream_retry_maybe_executed;
        app->offline = chs->n == 0;
        for (int i = 0; i < chs->n; i++)
            ig_info("serve: channel %s: %s at %s, priority %d, weight %d%s, %d key(s)",
                    chs->ch[i].name, ig_channel_type_name(chs->ch[i].type), chs->ch[i].base_url,
                    chs->ch[i].priority, chs->ch[i].weight, chs->ch[i].official ? ", official" : "",
                    chs->ch[i].nkeys);
        provider = ig_router_new(chs, &ro,
                                 ig_provider_offline_new(app->cfg.offline_latency_ms,
                                                         app->cfg.offline_failure_rate));
        free(chs);
        app->router = provider;
        if (!app->offline)
            for (int i = 0; i < ig_catalog_count(app->catalog); i++)
                if (!ig_router_serves(provider, ig_catalog_at(app->catalog, i)))
                    ig_warn("serve: no channel serves %s: it is served OFFLINE (local stand-in "
                            "images marked X-Imagegate-Offline: true)",
                            ig_catalog_at(app->catalog, i)->id);
    }
    app->limiter = ig_limiter_new();
    app->idem = ig_idem_registry_new();
    app->engine = ig_engine_start(app, provider);
    app->pool = ig_pool_new(app->cfg.cpu_threads > 0 ? app->cfg.cpu_threads
                                                     : (int)sysconf(_SC_NPROCESSORS_ONLN));

    http = ig_http_start(app, &eb);
    if (!http) {
        ig_error("serve: %s", eb.msg);
        goto stop_engine;
    }
    if (app->cfg.public_url[0]) {
        snprintf(app->public_url, sizeof(app->public_url), "%s", app->cfg.public_url);
    } else {
        char host[128];
        const char *colon = strrchr(app->cfg.listen, ':');

        snprintf(host, sizeof(host), "%.*s", (int)(colon - app->cfg.listen), app->cfg.listen);
        if (!host[0] || strcmp(host, "0.0.0.0") == 0)
            snprintf(host, sizeof(host), "127.0.0.1");
        snprintf(app->public_url, sizeof(app->public_url), "http://%s:%d", host, ig_http_port(http));
    }
    while (app->public_url[0] && app->public_url[strlen(app->public_url) - 1] == '/')
        app->public_url[strlen(app->public_url) - 1] = '\0';
    {
        struct ig_store *ks = NULL;
        if (ig_store_open(&ks, app->db_path, &eb) == IG_OK) {
            int bad = first_key(ks, app);
            ig_store_close(ks);
            if (bad)
                goto stop_http;
        }
    }
    if (app->offline)
        ig_warn("serve: OFFLINE MODE: no upstream channel is configured, so every model is served "
                "by the offline provider (deterministic local images, not model output; results "
                "are marked with X-Imagegate-Offline: true). Set GEMINI_API_KEY or add channels "
                "to the config file.");
    ig_info("http: listening on %s (port %d), data in %s", app->cfg.listen, ig_http_port(http),
            app->cfg.data_dir);
    fprintf(stdout, "listening on port %d\n", ig_http_port(http));
    fflush(stdout);

    sigwait(&sigs, &sig);
    ig_info("serve: %s received: stopping (grace %d s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            app->cfg.grace_s);
    rc = 0;
    ig_http_stop_accepting(http);
stop_http:
    ig_engine_stop(app->engine, app->cfg.grace_s);
    /* Every write queued by the HTTP threads has completed once this no-op has. */
    ig_writer_run_sync(app->writer, noop_job, NULL);
    /* Media reads under way on the blob store's threads post to the HTTP loops' mailboxes,
     * which ig_http_stop frees: let them post first (later ones run on the loop itself). */
    ig_blob_quiesce(app->blob);
    ig_http_stop(http);
    goto free_engine;
stop_engine:
    ig_engine_stop(app->engine, 0);
free_engine:
    ig_engine_free(app->engine);
    ig_pool_free(app->pool); /* (ig_http_stop has freed it, if the server started) */
    ig_writer_free(app->writer);
    ig_info("serve: stopped");
out:
    if (s)
        ig_store_close(s);
    ig_blob_close(app->blob);
    ig_limiter_free(app->limiter);
    ig_idem_registry_free(app->idem);
    ig_catalog_free(app->catalog);
    ig_vips_shutdown();
    curl_global_cleanup();
    free(app);
    return rc;
}
