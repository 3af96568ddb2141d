/*
 * cmd/cli.h — the `bitdistill` command-line tool: one table of subcommands.
 *
 * Each subcommand is `int fn(int argc, char **argv)` with argv[0] = the subcommand name; it
 * returns the process exit status (0 ok, 1 failure, 2 usage error) and prints its own errors
 * to stderr. Folders implement their commands (engine: tokenize/forward/..., bench: bench) and
 * list them in cli.c's table.
 */
#ifndef BD_CMD_CLI_H
#define BD_CMD_CLI_H

typedef int (*cmd_fn)(int argc, char **argv);

struct cmd_entry {
    const char *name;    /* subcommand, e.g. "keys" */
    const char *summary; /* one line for `bitdistill --help` */
    cmd_fn fn;
};

/* Commands implemented in cmd/ (keys_cli.c). */
int cmd_keys(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
