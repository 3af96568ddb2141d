/*
 * plot/data.h — the inputs of `bitdistill plot`: points from event logs (JSON lines) or tables
 * (TSV/CSV with a header row), record filters, and bar specifications.
 *
 * A file whose first non-blank character is '{' is read as JSON lines: every line an object,
 * such as the trainer's events (docs/train.md); lines that are not objects are skipped and
 * counted. Anything else is a table: the first line names the columns, separated by tabs if it
 * has any, else commas, else spaces. A record gives a point when it passes every filter and
 * both of its x and y fields are finite numbers (JSON numbers; numeric cells in a table). The
 * x field "@n" numbers the points 0, 1, 2, ... in file order.
 */
#ifndef BD_PLOT_DATA_H
#define BD_PLOT_DATA_H

#include <stddef.h>

/* "key=value" or "key!=value": a JSON string, number (compared as numbers), true, false, null. */
struct plot_filter {
    char key[64];
    char value[192];
    int negate; /* 1 for != */
};

/* Parse a filter argument into f. Returns 0 or PLOT_EINVAL with the message in err. */
int plot_filter_parse(const char *arg, struct plot_filter *f, char *err);

/* Points in file order; x and y malloc'd, owned by the struct. */
struct plot_points {
    double *x, *y; /* [n] */
    size_t n, cap;
};

/* Free the points' arrays and zero the struct. */
void plot_points_release(struct plot_points *p);

/*
 * Read the points (x field xf, y field yf) of the records of path ("-": standard input) that
 * pass the nf filters, appending to *pts (zeroed by the caller before the first read). Returns
 * 0, PLOT_EIO (cannot read), PLOT_EFORMAT (a table without the named columns) or PLOT_ENODATA
 * (no record gave a point, the message saying what the file holds), or PLOT_ENOMEM. *skipped
 * (may be NULL) receives the number of JSON lines that were not objects.
 */
int plot_data_read(const char *path, const char *xf, const char *yf, const struct plot_filter *f,
                   int nf, struct plot_points *pts, size_t *skipped, char *err);

/*
 * Parse a bar "[GROUP<sep>]LABEL=VALUE[±ERR]" (ERR also after "+-" or "+/-"); the group is split
 * at the first sep when sep is non-empty. *group (NULL when none) and *label are malloc'd for
 * the caller; *errv is 0 without an error bar. Returns 0, PLOT_EINVAL with the message in err,
 * or PLOT_ENOMEM.
 */
int plot_bar_parse(const char *arg, const char *sep, char **group, char **label, double *value,
                   double *errv, char *err);

#endif
