/*
 * plot/cli.h — `bitdistill plot line | bar` (docs/plot.md), listed in cmd/cli.c's table.
 */
#ifndef BD_PLOT_CLI_H
#define BD_PLOT_CLI_H

/* argv[0] = "plot", argv[1] = "line" or "bar". Returns the exit status (0, 1 failure, 2 usage). */
int plot_cli_main(int argc, char **argv);

#endif
