/* cmd_keys.c: `imagegate keys create`: make an API key and print it alone on stdout. */
#include "base/base.h"
#include "cli/cli.h"
#include "policy/keys.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: imagegate keys create [--data DIR] [--name NAME] [--credits USD]\n\n"
               "Creates an API key in the data directory's database and prints it alone on\n"
               "stdout. Only its SHA-256 is stored: keep the printed key.\n\n"
               "  --data DIR       data directory [./data] (env IMAGEGATE_DATA)\n"
               "  --name NAME      a label for the key\n"
               "  --credits USD    opening balance in US dollars, e.g. 5.00 [0]\n");
}

/* "5.00" -> 5000000 micro-dollars, decimal only. */
static bool parse_usd(const char *s, int64_t *out)
{
    int64_t whole = 0, frac = 0;
    int nf = 0;

    if (!*s)
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        whole = whole * 10 + (*s - '0');
        if (whole > 1000000000000LL)
            return false;
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++) {
            if (++nf > 6)
                return false;
            frac = frac * 10 + (*s - '0');
        }
        if (!nf)
            return false;
    }
    if (*s)
        return false;
    while (nf++ < 6)
        frac *= 10;
    *out = whole * 1000000 + frac;
    return true;
}

int ig_cmd_keys(int argc, char **argv)
{
    const char *data = getenv("IMAGEGATE_DATA");
    const char *name = "";
    int64_t credits = 0;
    char path[1024], secret[IG_KEY_LEN + 1];
    struct ig_store *s = NULL;
    struct ig_errbuf eb;
    enum ig_err err;

    if (!data)
        data = "./data";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "create") != 0) {
        fprintf(stderr, "imagegate keys: unknown subcommand '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "imagegate keys create: option '%s' needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--data") == 0)
            data = argv[++i];
        else if (strcmp(argv[i], "--name") == 0)
            name = argv[++i];
        else if (strcmp(argv[i], "--credits") == 0) {
            if (!parse_usd(argv[++i], &credits)) {
                fprintf(stderr, "imagegate keys create: --credits takes US dollars as a decimal "
                                "like 5.00, got '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "imagegate keys create: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (strlen(name) >= sizeof(((struct ig_key *)0)->name)) {
        fprintf(stderr, "imagegate keys create: --name is longer than 63 bytes\n");
        return 2;
    }
    if (mkdir(data, 0700) && errno != EEXIST) {
        fprintf(stderr, "imagegate keys create: cannot create '%s': %s\n", data, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/imagegate.db", data);
    ig_errbuf_clear(&eb);
    err = ig_store_open(&s, path, &eb);
    if (!err)
        err = ig_store_migrate(s, &eb);
    if (!err)
        err = ig_key_create(s, name, credits, secret, NULL);
    if (err) {
        fprintf(stderr, "imagegate keys create: %s\n", eb.msg[0] ? eb.msg : ig_strerror(err));
        if (s)
            ig_store_close(s);
        return 1;
    }
    ig_store_close(s);
    printf("%s\n", secret);
    return 0;
}
