#include "server/cli.h"
#include <stdio.h>
int srv_cli_keys(int argc, char **argv) { fprintf(stderr, "keys: not yet\n"); return 1; }
int srv_cli_serve(int argc, char **argv) { fprintf(stderr, "serve: not yet\n"); return 1; }
