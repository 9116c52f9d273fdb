/* cmd_keys.c: `imagegate keys create|list|credit|check`: API keys and their balances. */
#include "base/base.h"
#include "cli/cli.h"
#include "policy/keys.h"
#include "core/catalog.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: imagegate keys create [--data DIR] [--name NAME] [--credits USD]\n"
               "                             [--scopes generate|admin|generate,admin]\n"
               "                             [--expires-at UNIX] [--models ID,ID...]\n"
               "       imagegate keys revoke ID [--data DIR]\n"
               "       imagegate keys list   [--data DIR]\n"
               "       imagegate keys show ID [--data DIR]\n"
               "       imagegate keys credit ID --amount USD [--note TEXT] [--data DIR]\n"
               "       imagegate keys limits ID [--rpm N|default] [--max-tasks N|default] [--data DIR]\n"
               "       imagegate keys check  [--data DIR]\n\n"
               "create  makes an API key and prints it alone on stdout; only its SHA-256 is\n"
               "        stored, so keep the printed key. With --credits the key is metered: it\n"
               "        holds that opening balance and is refused (402) what it cannot pay.\n"
               "        Without, it is unmetered: never refused, its charges still recorded.\n"
               "        --scopes (default generate), --expires-at and --models (catalog ids it\n"
               "        may use; default every model) restrict it.\n"
               "revoke  refuses the key from now on\n"
               "list    one line per key: id, name, metered or not, balance, revoked, submits\n"
               "        per minute and unfinished tasks allowed (default = the server's\n"
               "        --rate-rpm / --max-tasks-per-key, 0 = no limit)\n"
               "show    one key, as list prints it, with its scopes, expiry and models\n"
               "limits  sets a key's own limits (0 = none, default = the server's)\n"
               "credit  adds USD to a key's balance (a negative amount takes away; a metered\n"
               "        key never goes below 0) and prints the new balance\n"
               "check   verifies that every key's balance equals the sum of its ledger entries\n\n"
               "  --data DIR       data directory [./data] (env IMAGEGATE_DATA)\n"
               "  --name NAME      a label for the key\n"
               "  --credits USD    opening balance in US dollars, e.g. 5.00\n"
               "  --amount USD     e.g. 10.00 or -2.50\n");
}

static void print_usd(FILE *f, int64_t micro)
{
    char buf[32];

    ig_usd_format(micro, buf, sizeof(buf));
    fputs(buf, f);
}

static struct ig_store *open_store(const char *data, const char *cmd)
{
    char path[1024];
    struct ig_store *s = NULL;
    struct ig_errbuf eb;

    snprintf(path, sizeof(path), "%s/imagegate.db", data);
    ig_errbuf_clear(&eb);
    if (ig_store_open(&s, path, &eb) || ig_store_migrate(s, &eb)) {
        fprintf(stderr, "imagegate keys %s: %s\n", cmd, eb.msg[0] ? eb.msg : "cannot open the store");
        if (s)
            ig_store_close(s);
        return NULL;
    }
    return s;
}

static void print_limit(int v)
{
    if (v < 0)
        printf("default");
    else
        printf("%d", v);
}

static void list_one(const struct ig_key *k, void *arg)
{
    printf("%lld\t%s\t%s\t", (long long)k->id, k->name[0] ? k->name : "-",
           k->metered ? "metered" : "unmetered");
    print_usd(stdout, k->credits);
    printf("\t%s\trpm=", k->revoked ? "revoked" : "active");
    print_limit(k->rate_rpm);
    printf("\tmax-tasks=");
    print_limit(k->max_tasks);
    printf("\n");
}

/* "default" -> -1, else a count 0..10000000 */
static bool parse_limit(const char *s, int *out)
{
    char *end;
    long v;

    if (strcmp(s, "default") == 0) {
        *out = -1;
        return true;
    }
    v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 10000000)
        return false;
    *out = (int)v;
    return true;
}

struct found {
    int64_t id;
    bool found;
    struct ig_key k;
};

static void find_one(const struct ig_key *k, void *arg)
{
    struct found *f = arg;

    if (k->id == f->id) {
        f->found = true;
        f->k = *k;
    }
}

struct check {
    int keys, bad;
};

static void check_one(int64_t key_id, int64_t balance, int64_t sum, void *arg)
{
    struct check *c = arg;

    c->keys++;
    if (balance != sum) {
        c->bad++;
        printf("key %lld: balance ", (long long)key_id);
        print_usd(stdout, balance);
        printf(" but its ledger sums to ");
        print_usd(stdout, sum);
        printf("\n");
    }
}

/* keys list | check | credit */
static int keys_other(const char *cmd, int argc, char **argv, const char *data)
{
    const char *id_arg = NULL, *note = NULL;
    int64_t amount = 0;
    int rpm = -2, max_tasks = -2; /* -2: not given */
    bool have_amount = false;
    struct ig_store *s;
    enum ig_err err;
    int rc = 0;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] != '-' &&
            (strcmp(cmd, "credit") == 0 || strcmp(cmd, "limits") == 0 ||
             strcmp(cmd, "revoke") == 0 || strcmp(cmd, "show") == 0) &&
            !id_arg) {
            id_arg = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "imagegate keys %s: option '%s' needs a value\n", cmd, argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--data") == 0) {
            data = argv[++i];
        } else if (strcmp(cmd, "limits") == 0 &&
                   (strcmp(argv[i], "--rpm") == 0 || strcmp(argv[i], "--max-tasks") == 0)) {
            int *dst = strcmp(argv[i], "--rpm") == 0 ? &rpm : &max_tasks;

            if (!parse_limit(argv[i + 1], dst)) {
                fprintf(stderr, "imagegate keys limits: %s takes a count (0 = no limit) or "
                                "'default', got '%s'\n", argv[i], argv[i + 1]);
                return 2;
            }
            i++;
        } else if (strcmp(cmd, "credit") == 0 && strcmp(argv[i], "--note") == 0) {
            note = argv[++i];
        } else if (strcmp(cmd, "credit") == 0 && strcmp(argv[i], "--amount") == 0) {
            const char *v = argv[++i];

            if (!ig_usd_parse(v, true, &amount) || amount == 0) {
                fprintf(stderr, "imagegate keys credit: --amount takes non-zero US dollars as a "
                                "decimal like 10.00 or -2.50, got '%s'\n", v);
                return 2;
            }
            have_amount = true;
        } else {
            fprintf(stderr, "imagegate keys %s: unknown option '%s'\n", cmd, argv[i]);
            return 2;
        }
    }
    if (strcmp(cmd, "credit") == 0 && (!id_arg || !have_amount)) {
        fprintf(stderr, "imagegate keys credit: needs a key id (see keys list) and --amount\n");
        return 2;
    }
    if ((strcmp(cmd, "revoke") == 0 || strcmp(cmd, "show") == 0) && !id_arg) {
        fprintf(stderr, "imagegate keys %s: needs a key id (see keys list)\n", cmd);
        return 2;
    }
    if (strcmp(cmd, "limits") == 0 && (!id_arg || (rpm == -2 && max_tasks == -2))) {
        fprintf(stderr, "imagegate keys limits: needs a key id (see keys list) and --rpm or "
                        "--max-tasks\n");
        return 2;
    }
    if (!(s = open_store(data, cmd)))
        return 1;
    if (strcmp(cmd, "list") == 0) {
        err = ig_store_key_list(s, list_one, NULL);
    } else if (strcmp(cmd, "check") == 0) {
        struct check c = {0, 0};

        err = ig_store_ledger_check(s, check_one, &c);
        if (!err && c.bad == 0)
            printf("ok: %d key(s), every balance equals the sum of its ledger entries\n", c.keys);
        if (!err && c.bad > 0)
            rc = 1;
    } else if (strcmp(cmd, "show") == 0) {
        char *end;
        long long id = strtoll(id_arg, &end, 10);
        struct ig_key k;

        err = *end || id <= 0 ? IG_E_NOT_FOUND : ig_store_key_get(s, id, &k);
        if (err == IG_E_NOT_FOUND) {
            fprintf(stderr, "imagegate keys show: no key has the id '%s'\n", id_arg);
            ig_store_close(s);
            return 1;
        }
        if (!err) {
            list_one(&k, NULL);
            printf("scopes: %s%s%s\n", k.scopes & IG_SCOPE_GENERATE ? "generate" : "",
                   (k.scopes & IG_SCOPE_GENERATE) && (k.scopes & IG_SCOPE_ADMIN) ? "," : "",
                   k.scopes & IG_SCOPE_ADMIN ? "admin" : "");
            if (k.expires_ms > 0)
                printf("expires: %lld\n", (long long)(k.expires_ms / 1000));
            else
                printf("expires: never\n");
            printf("models: %s\n", k.models[0] ? k.models : "all");
        }
    } else if (strcmp(cmd, "revoke") == 0) {
        char *end;
        long long id = strtoll(id_arg, &end, 10);

        err = *end || id <= 0 ? IG_E_NOT_FOUND : ig_store_key_revoke(s, id);
        if (err == IG_E_NOT_FOUND) {
            fprintf(stderr, "imagegate keys revoke: no key has the id '%s'\n", id_arg);
            ig_store_close(s);
            return 1;
        }
        if (!err)
            printf("key %lld revoked (a running server refuses it within %d ms)\n", id,
                   IG_KEY_CACHE_MS);
    } else if (strcmp(cmd, "limits") == 0) {
        char *end;
        long long id = strtoll(id_arg, &end, 10);
        struct found f = {id, false, {0}};

        if (*end || id <= 0) {
            fprintf(stderr, "imagegate keys limits: '%s' is not a key id (see keys list)\n", id_arg);
            ig_store_close(s);
            return 2;
        }
        err = ig_store_key_list(s, find_one, &f);
        if (!err && !f.found) {
            fprintf(stderr, "imagegate keys limits: no key has this id\n");
            ig_store_close(s);
            return 1;
        }
        if (!err)
            err = ig_store_key_set_limits(s, id, rpm != -2 ? rpm : f.k.rate_rpm,
                                          max_tasks != -2 ? max_tasks : f.k.max_tasks);
        if (!err && (err = ig_store_key_list(s, find_one, &f)) == IG_OK)
            list_one(&f.k, NULL);
    } else {
        char *end;
        long long id = strtoll(id_arg, &end, 10);
        int64_t balance = 0;

        if (*end || id <= 0) {
            fprintf(stderr, "imagegate keys credit: '%s' is not a key id (see keys list)\n", id_arg);
            ig_store_close(s);
            return 2;
        }
        err = ig_store_key_credit(s, id, amount, ig_now_ms(), note, &balance);
        if (err == IG_E_NOT_FOUND || err == IG_E_INSUFFICIENT) {
            fprintf(stderr, "imagegate keys credit: %s\n",
                    err == IG_E_NOT_FOUND ? "no key has this id"
                                          : "a metered key's balance cannot go below 0");
            ig_store_close(s);
            return 1;
        }
        if (!err) {
            print_usd(stdout, balance);
            printf("\n");
        }
    }
    if (err) {
        fprintf(stderr, "imagegate keys %s: %s\n", cmd, ig_strerror(err));
        rc = 1;
    }
    ig_store_close(s);
    return rc;
}

/* "a,b" of model names (ids or aliases) -> their catalog ids; false (said why) if unknown. */
static bool canonical_models(char *list, size_t n)
{
    struct ig_catalog *cat = NULL;
    struct ig_errbuf eb;
    char out[512] = "", *save = NULL, *tok, *copy = ig_xstrdup(list);
    bool ok = true;

    if (ig_catalog_load_default(&cat, &eb)) {
        fprintf(stderr, "imagegate keys create: %s\n", eb.msg);
        free(copy);
        return false;
    }
    for (tok = strtok_r(copy, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        const struct ig_model *m = ig_catalog_find(cat, tok, NULL);
        size_t used = strlen(out);

        if (!m) {
            fprintf(stderr, "imagegate keys create: --models: '%s' is not a model\n", tok);
            ok = false;
        } else {
            snprintf(out + used, sizeof(out) - used, "%s%s", used ? "," : "", m->id);
        }
    }
    if (ok)
        snprintf(list, n, "%s", out);
    ig_catalog_free(cat);
    free(copy);
    return ok;
}

int ig_cmd_keys(int argc, char **argv)
{
    const char *data = getenv("IMAGEGATE_DATA");
    const char *name = "";
    struct ig_key k;
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
    if (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "check") == 0 ||
        strcmp(argv[1], "credit") == 0 || strcmp(argv[1], "limits") == 0 ||
        strcmp(argv[1], "revoke") == 0 || strcmp(argv[1], "show") == 0)
        return keys_other(argv[1], argc, argv, data);
    if (strcmp(argv[1], "create") != 0) {
        fprintf(stderr, "imagegate keys: unknown subcommand '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    ig_key_template(&k);
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
            k.metered = true;
            if (!ig_usd_parse(argv[++i], false, &k.credits)) {
                fprintf(stderr, "imagegate keys create: --credits takes US dollars as a decimal "
                                "like 5.00, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--scopes") == 0) {
            const char *v = argv[++i];

            k.scopes = strcmp(v, "generate") == 0         ? IG_SCOPE_GENERATE
                       : strcmp(v, "admin") == 0          ? IG_SCOPE_ADMIN
                       : strcmp(v, "generate,admin") == 0 ? IG_SCOPE_GENERATE | IG_SCOPE_ADMIN
                       : strcmp(v, "admin,generate") == 0 ? IG_SCOPE_GENERATE | IG_SCOPE_ADMIN
                                                          : 0;
            if (!k.scopes) {
                fprintf(stderr, "imagegate keys create: --scopes takes generate, admin or "
                                "generate,admin, got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(argv[i], "--expires-at") == 0) {
            char *end;
            long long t = strtoll(argv[++i], &end, 10);

            if (*end || t <= ig_now_ms() / 1000 || t > 100000000000LL) {
                fprintf(stderr, "imagegate keys create: --expires-at takes a future Unix time in "
                                "seconds, got '%s'\n", argv[i]);
                return 2;
            }
            k.expires_ms = (int64_t)t * 1000;
        } else if (strcmp(argv[i], "--models") == 0) {
            if (strlen(argv[++i]) >= sizeof(k.models)) {
                fprintf(stderr, "imagegate keys create: --models is too long\n");
                return 2;
            }
            snprintf(k.models, sizeof(k.models), "%s", argv[i]);
        } else {
            fprintf(stderr, "imagegate keys create: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (strlen(name) >= sizeof(k.name)) {
        fprintf(stderr, "imagegate keys create: --name is longer than 63 bytes\n");
        return 2;
    }
    snprintf(k.name, sizeof(k.name), "%s", name);
    if (k.models[0] && !canonical_models(k.models, sizeof(k.models)))
        return 2;
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
        err = ig_key_create_ex(s, &k, secret);
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
