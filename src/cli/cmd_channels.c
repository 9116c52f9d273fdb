/* cmd_channels.c: `imagegate channels list|test`: show the configured channels, and send one
 * real request through one of them. */
#include "base/base.h"
#include "cli/cli.h"
#include "core/catalog.h"
#include "media/image.h"
#include "net/transport.h"
#include "provider/channel.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: imagegate channels list [--config FILE]\n"
               "       imagegate channels test NAME [--config FILE] [--model M] [--prompt P]\n"
               "                                    [--out FILE]\n\n"
               "Channels come from the config file's \"channels\" array and from GEMINI_API_KEY /\n"
               "GEMINI_BASE_URL (see docs/channels.md).\n\n"
               "  list   print every channel (keys are never printed, only how many)\n"
               "  test   send one generation request through channel NAME and report what came\n"
               "         back: status, latency, image size, usage. Costs one real image.\n\n"
               "  --config FILE   config file [env IMAGEGATE_CONFIG]\n"
               "  --model M       catalog model to ask for [gemini-2.5-flash-image]\n"
               "  --prompt P      prompt [a red circle on a white background]\n"
               "  --out FILE      save the first image there\n");
}

static void on_done(struct ig_job *job)
{
    event_base_loopbreak(job->base);
}

static int test_channel(const struct ig_channel *c, const struct ig_model *m, const char *prompt,
                        const char *out)
{
    struct event_base *base = event_base_new();
    struct ig_transport *tp = ig_transport_new(base);
    struct ig_provider *p = ig_provider_gemini_new(c);
    struct ig_task t;
    struct ig_job job;
    int64_t t0;
    int rc = 1;

    ig_task_init(&t);
    ig_id_new(&t.id);
    t.req.prompt = ig_xstrdup(prompt);
    t.req.n = 1;
    snprintf(t.req.ratio, sizeof(t.req.ratio), "1:1");
    snprintf(t.req.resolution, sizeof(t.req.resolution), "%s", m->default_res);
    memset(&job, 0, sizeof(job));
    job.task = &t;
    job.model = m;
    job.base = base;
    job.tp = tp;
    job.ch = c;
    job.done = on_done;
    ig_model_output_size(m, "1:1", m->default_res, &job.width, &job.height);
    if (!ig_channel_serves(c, m, job.upstream_model, sizeof(job.upstream_model))) {
        fprintf(stderr, "imagegate channels test: channel %s does not serve %s\n", c->name, m->id);
        goto out;
    }
    t0 = ig_mono_ms();
    if (ig_provider_start(p, &job)) {
        fprintf(stderr, "imagegate channels test: the request could not start\n");
        goto out;
    }
    event_base_dispatch(base);
    printf("channel:  %s (%s)\nmodel:    %s\nstatus:   %d\nlatency:  %lld ms\nbytes:    %lld\n",
           c->name, c->base_url, job.upstream_model, job.http_status,
           (long long)(ig_mono_ms() - t0), (long long)job.bytes_in);
    if (job.err) {
        printf("result:   %s: %s\n", ig_strerror(job.err), job.errmsg);
        goto out;
    }
    for (int i = 0; i < job.nimages; i++) {
        enum ig_image_type ty = ig_image_sniff(job.images[i].data, job.images[i].len);
        int w = 0, h = 0;

        ig_image_dimensions(job.images[i].data, job.images[i].len, &ty, &w, &h);
        printf("image %d:  %s %dx%d, %zu bytes\n", i, ig_image_mime(ty) ? ig_image_mime(ty) : "?",
               w, h, job.images[i].len);
    }
    printf("usage:    prompt %lld tokens, image %lld, text %lld\n",
           (long long)job.usage.prompt_tokens, (long long)job.usage.image_tokens,
           (long long)job.usage.text_tokens);
    if (job.model_version[0])
        printf("version:  %s\n", job.model_version);
    if (out && job.nimages > 0) {
        FILE *f = fopen(out, "wb");

        if (!f || fwrite(job.images[0].data, 1, job.images[0].len, f) != job.images[0].len) {
            fprintf(stderr, "imagegate channels test: cannot write '%s'\n", out);
            if (f)
                fclose(f);
            goto out;
        }
        fclose(f);
        printf("saved:    %s\n", out);
    }
    rc = job.nimages > 0 ? 0 : 1;
out:
    ig_job_release(&job);
    ig_task_release(&t);
    ig_provider_free(p);
    ig_transport_free(tp);
    event_base_free(base);
    return rc;
}

int ig_cmd_channels(int argc, char **argv)
{
    const char *config = getenv("IMAGEGATE_CONFIG"), *name = NULL, *model = "gemini-2.5-flash-image";
    const char *prompt = "a red circle on a white background", *out = NULL;
    struct ig_channels *chs;
    struct ig_catalog *cat = NULL;
    struct ig_errbuf eb;
    const struct ig_model *m;
    int rc = 1;
    bool list;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    list = strcmp(argv[1], "list") == 0;
    if (!list && strcmp(argv[1], "test") != 0) {
        fprintf(stderr, "imagegate channels: unknown subcommand '%s'\n", argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] != '-' && !list && !name) {
            name = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "imagegate channels: option '%s' needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--config") == 0)
            config = argv[++i];
        else if (strcmp(argv[i], "--model") == 0)
            model = argv[++i];
        else if (strcmp(argv[i], "--prompt") == 0)
            prompt = argv[++i];
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[++i];
        else {
            fprintf(stderr, "imagegate channels: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!list && !name) {
        fprintf(stderr, "imagegate channels test: name a channel\n");
        return 2;
    }
    chs = ig_xcalloc(1, sizeof(*chs));
    ig_errbuf_clear(&eb);
    if (ig_channels_load(chs, config, &eb)) {
        fprintf(stderr, "imagegate channels: %s\n", eb.msg);
        goto out;
    }
    if (list) {
        if (chs->n == 0)
            printf("no channels: every model is served offline (set GEMINI_API_KEY or add "
                   "\"channels\" to the config file)\n");
        for (int i = 0; i < chs->n; i++) {
            const struct ig_channel *c = &chs->ch[i];

            printf("%s\t%s\t%s\tpriority=%d weight=%d%s keys=%d timeout_ms=%d models=", c->name,
                   ig_channel_type_name(c->type), c->base_url, c->priority, c->weight,
                   c->official ? " official" : "", c->nkeys, c->timeout_ms);
            if (c->nmodels == 0)
                printf("all");
            for (int k = 0; k < c->nmodels; k++)
                printf("%s%s%s%s", k ? "," : "", c->models[k].model,
                       c->models[k].upstream[0] ? "->" : "", c->models[k].upstream);
            printf("\n");
        }
        rc = 0;
        goto out;
    }
    if (ig_catalog_load_default(&cat, &eb) || !(m = ig_catalog_find(cat, model, NULL))) {
        fprintf(stderr, "imagegate channels test: unknown model '%s'\n", model);
        goto out;
    }
    for (int i = 0; i < chs->n; i++)
        if (strcmp(chs->ch[i].name, name) == 0) {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            rc = test_channel(&chs->ch[i], m, prompt, out);
            curl_global_cleanup();
            goto out;
        }
    fprintf(stderr, "imagegate channels test: no channel named '%s'\n", name);
out:
    ig_catalog_free(cat);
    free(chs);
    return rc;
}
