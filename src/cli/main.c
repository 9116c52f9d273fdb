/* main.c: imagegate's entry point: dispatch to a subcommand. */
#include "base/base.h"
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "imagegate %s: an asynchronous image-generation API gateway\n\n"
               "usage: imagegate <command> [options]\n\n"
               "commands:\n"
               "  serve     run the gateway (HTTP API, task engine, stored images)\n"
               "  keys      API keys, balances and limits: create, list, show, credit, limits,\n"
               "            revoke, check\n"
               "  channels  list the upstream channels, or test one with a real request\n"
               "  usage     what keys used and were charged, by day and model or by channel\n\n"
               "Run 'imagegate <command> --help' for a command's options.\n",
            "0.1.0");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("imagegate 0.1.0\n");
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0)
        return ig_cmd_serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "keys") == 0)
        return ig_cmd_keys(argc - 1, argv + 1);
    if (strcmp(argv[1], "channels") == 0)
        return ig_cmd_channels(argc - 1, argv + 1);
    if (strcmp(argv[1], "usage") == 0)
        return ig_cmd_usage(argc - 1, argv + 1);
    fprintf(stderr, "imagegate: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
