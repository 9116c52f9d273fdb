/* cmd_usage.c: `imagegate usage`: what keys used and were charged, by day and model, or by
 * channel, from the store (tab-separated, a header line first). */
#include "base/base.h"
#include "cli/cli.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: imagegate usage [--data DIR] [--key ID] [--days N] [--by model|channel]\n\n"
               "Tasks created in the last N days (default 30; UTC days), with images, tokens,\n"
               "what was charged, what the upstreams cost (channels' cost_per_image_usd) and\n"
               "the margin, for one key or all of them; by day and model, or (--by channel) by\n"
               "the channel that ran them.\n\n"
               "  --data DIR   data directory [./data] (env IMAGEGATE_DATA)\n"
               "  --key ID     one key (see imagegate keys list) [all]\n"
               "  --days N     1..3650 [30]\n"
               "  --by WHAT    model (per day) or channel [model]\n");
}

static void print_row(const struct ig_usage_row *r, void *arg)
{
    char usd[32], cost[32], margin[32];
    bool *by_channel = arg;

    ig_usd_format(r->charged, usd, sizeof(usd));
    ig_usd_format(r->cost, cost, sizeof(cost));
    ig_usd_format(r->charged - r->cost, margin, sizeof(margin));
    if (*by_channel)
        printf("%s", r->name[0] ? r->name : "-");
    else
        printf("%s\t%s", r->day, r->name);
    printf("\t%lld\t%lld\t%lld\t%lld\t%lld\t%s\t%s\t%s\n", (long long)r->tasks,
           (long long)r->succeeded, (long long)r->images, (long long)r->image_tokens,
           (long long)r->text_tokens, usd, cost, margin);
}

int ig_cmd_usage(int argc, char **argv)
{
    const char *data = getenv("IMAGEGATE_DATA");
    long long key = 0, days = 30;
    bool by_channel = false;
    char path[1024];
    struct ig_store *s = NULL;
    struct ig_errbuf eb;
    int64_t now = ig_now_ms();
    enum ig_err err;

    if (!data)
        data = "./data";
    for (int i = 1; i < argc; i++) {
        char *end;

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "imagegate usage: option '%s' needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--data") == 0) {
            data = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0) {
            key = strtoll(argv[++i], &end, 10);
            if (*end || key <= 0) {
                fprintf(stderr, "imagegate usage: --key takes a key id, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--days") == 0) {
            days = strtoll(argv[++i], &end, 10);
            if (*end || days < 1 || days > 3650) {
                fprintf(stderr, "imagegate usage: --days takes 1..3650, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--by") == 0) {
            i++;
            if (strcmp(argv[i], "channel") == 0) {
                by_channel = true;
            } else if (strcmp(argv[i], "model") != 0) {
                fprintf(stderr, "imagegate usage: --by takes model or channel, got '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "imagegate usage: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    snprintf(path, sizeof(path), "%s/imagegate.db", data);
    ig_errbuf_clear(&eb);
    if (ig_store_open(&s, path, &eb) || ig_store_migrate(s, &eb)) {
        fprintf(stderr, "imagegate usage: %s\n", eb.msg[0] ? eb.msg : "cannot open the store");
        if (s)
            ig_store_close(s);
        return 1;
    }
    printf(by_channel ? "channel" : "day\tmodel");
    printf("\ttasks\tsucceeded\timages\timage_tokens\ttext_tokens\tcharged_usd\tcost_usd\t"
           "margin_usd\n");
    /* whole UTC days: from the start of the day N-1 days ago to now */
    err = ig_store_usage(s, key, (now / 86400000 - (days - 1)) * 86400000, now + 1, by_channel,
                         print_row, &by_channel);
    ig_store_close(s);
    if (err) {
        fprintf(stderr, "imagegate usage: %s\n", ig_strerror(err));
        return 1;
    }
    return 0;
}
