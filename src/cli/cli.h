/* cli.h: the subcommands of the imagegate binary (git builtin/ style). */
#ifndef IG_CLI_H
#define IG_CLI_H

int ig_cmd_serve(int argc, char **argv);
int ig_cmd_keys(int argc, char **argv);
int ig_cmd_channels(int argc, char **argv);
int ig_cmd_usage(int argc, char **argv);

#endif
