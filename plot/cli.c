/*
 * plot/cli.c — `bitdistill plot line | bar`: result charts as PNG files (docs/plot.md).
 *
 *   bitdistill plot line --out loss.png [--x step] [--y loss[,ce,...]] [--filter stage=3]
 *                        [--logy] [--smooth K] [LABEL=]FILE...
 *   bitdistill plot bar --out acc.png [--ymin 0.5] [GROUP/]LABEL=VALUE[±ERR]...
 *
 * Exit status: 0 written, 1 the data cannot be plotted (unreadable file, no numeric points),
 * 2 usage (unknown option, bad number, bad bar or series argument).
 */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plot/chart.h"
#include "plot/cli.h"
#include "plot/data.h"
#include "plot/err.h"
#include "plot/raster.h"

#define CLI_MAX_FILTERS 16
#define CLI_MAX_Y 8

struct cli_opts {
    enum plot_kind kind;
    const char *out, *title, *x, *y, *xlabel, *ylabel, *group_sep;
    int logy, smooth, layout, w, h;
    double xmin, xmax, ymin, ymax;
    struct plot_filter filters[CLI_MAX_FILTERS];
    int nfilters;
};

static void cli_usage(FILE *f, enum plot_kind kind)
{
    if (kind == PLOT_LINE)
        fprintf(
            f, "usage: bitdistill plot line --out FILE.png [OPTIONS] [LABEL=]FILE...\n"
               "Line chart of numbers from JSON lines (e.g. `bitdistill train` events) or a table\n"
               "with a header row (TSV, CSV). One series per FILE (and per --y field).\n\n"
               "  --out FILE         PNG to write (required)\n"
               "  --x FIELD          x field (default step; @n numbers the points 0, 1, ...)\n"
               "  --y FIELD[,FIELD]  y field(s) (default loss; several give one series each)\n"
               "  --filter F=V       keep records whose field F equals V (F!=V: differs);\n"
               "                     repeatable, all must hold (e.g. --filter type=step\n"
               "                     --filter stage=3)\n"
               "  --logy             log10 y axis (points with y <= 0 are left out)\n"
               "  --smooth K         draw the trailing mean over K points; raw series faint\n"
               "  --title T, --xlabel T, --ylabel T   text (axis labels default to the fields)\n"
               "  --xmin V, --xmax V, --ymin V, --ymax V   fixed axis limits\n"
               "  --size WxH         image size in pixels (default 800x500)\n"
               "  --layout           print the layout (plot area, ticks, legend) as JSON\n");
    else
        fprintf(
            f, "usage: bitdistill plot bar --out FILE.png [OPTIONS] [GROUP/]LABEL=VALUE[±ERR]...\n"
               "Bar chart of values, with optional error bars (ERR after ±, +- or +/-). Bars with\n"
               "a GROUP stand side by side per group, coloured by LABEL (e.g. methods x tasks).\n\n"
               "  --out FILE         PNG to write (required)\n"
               "  --title T, --ylabel T, --xlabel T   text\n"
               "  --ymin V, --ymax V fixed y limits (bars rise from --ymin when 0 is below it)\n"
               "  --logy             log10 y axis\n"
               "  --group-sep S      separator of GROUP and LABEL (default /; \"\" for none)\n"
               "  --size WxH         image size in pixels (default 800x500)\n"
               "  --layout           print the layout (plot area, ticks, bars) as JSON\n");
}

/* Parse the finite number s for option name into *v; on error print it and return 0. */
static int cli_number(const char *name, const char *s, double *v)
{
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || !isfinite(d)) {
        fprintf(stderr, "bitdistill plot: bad %s '%s': not a number\n", name, s);
        return 0;
    }
    *v = d;
    return 1;
}

/* Parse options into o; returns -1 to go on, else the exit status. */
static int cli_parse(int argc, char **argv, struct cli_opts *o)
{
    static const struct option opts[] = {
        {"out", 1, 0, 'o'},       {"title", 1, 0, 't'},  {"x", 1, 0, 'x'},
        {"y", 1, 0, 'y'},         {"xlabel", 1, 0, 'X'}, {"ylabel", 1, 0, 'Y'},
        {"logy", 0, 0, 'l'},      {"smooth", 1, 0, 's'}, {"filter", 1, 0, 'f'},
        {"xmin", 1, 0, 'a'},      {"xmax", 1, 0, 'b'},   {"ymin", 1, 0, 'c'},
        {"ymax", 1, 0, 'd'},      {"size", 1, 0, 'S'},   {"layout", 0, 0, 'L'},
        {"group-sep", 1, 0, 'g'}, {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    static const char line_only[] = "xyfsab", bar_only[] = "g";
    char err[PLOT_ERR_LEN];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != '?' && c != 'h' && strchr(o->kind == PLOT_LINE ? bar_only : line_only, c)) {
            const char *name = "?";
            for (const struct option *op = opts; op->name; op++)
                name = op->val == c ? op->name : name;
            fprintf(stderr, "bitdistill plot %s: option '--%s' is for %s charts\n", argv[0], name,
                    o->kind == PLOT_LINE ? "bar" : "line");
            return 2;
        }
        switch (c) {
        case 'o': o->out = optarg; break;
        case 't': o->title = optarg; break;
        case 'x': o->x = optarg; break;
        case 'y': o->y = optarg; break;
        case 'X': o->xlabel = optarg; break;
        case 'Y': o->ylabel = optarg; break;
        case 'l': o->logy = 1; break;
        case 'L': o->layout = 1; break;
        case 'g': o->group_sep = optarg; break;
        case 's': {
            double k;
            if (!cli_number("--smooth", optarg, &k))
                return 2;
            if (k < 1 || k > 1e6 || k != floor(k)) {
                fprintf(stderr,
                        "bitdistill plot: bad --smooth '%s': a whole number of points "
                        ">= 1\n",
                        optarg);
                return 2;
            }
            o->smooth = (int)k;
            break;
        }
        case 'f':
            if (o->nfilters == CLI_MAX_FILTERS) {
                fprintf(stderr, "bitdistill plot: too many --filter (at most %d)\n",
                        CLI_MAX_FILTERS);
                return 2;
            }
            if (plot_filter_parse(optarg, &o->filters[o->nfilters++], err)) {
                fprintf(stderr, "bitdistill plot: %s\n", err);
                return 2;
            }
            break;
        case 'a':
            if (!cli_number("--xmin", optarg, &o->xmin))
                return 2;
            break;
        case 'b':
            if (!cli_number("--xmax", optarg, &o->xmax))
                return 2;
            break;
        case 'c':
            if (!cli_number("--ymin", optarg, &o->ymin))
                return 2;
            break;
        case 'd':
            if (!cli_number("--ymax", optarg, &o->ymax))
                return 2;
            break;
        case 'S': {
            char tail;
            if (sscanf(optarg, "%dx%d%c", &o->w, &o->h, &tail) != 2 || o->w < 200 || o->h < 150 ||
                o->w > 8192 || o->h > 8192) {
                fprintf(stderr,
                        "bitdistill plot: bad --size '%s': WIDTHxHEIGHT from 200x150 to "
                        "8192x8192\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'h': cli_usage(stdout, o->kind); return 0;
        default: cli_usage(stderr, o->kind); return 2;
        }
    }
    if (!o->out) {
        fprintf(stderr, "bitdistill plot %s: --out FILE.png is required\n", argv[0]);
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "bitdistill plot %s: nothing to plot: give %s\n", argv[0],
                o->kind == PLOT_LINE ? "[LABEL=]FILE arguments" : "LABEL=VALUE arguments");
        return 2;
    }
    return -1;
}

/* Split "a,b,c" (at most CLI_MAX_Y) into fields, copied into buf. Returns the count or 0. */
static int cli_split_y(const char *s, char *buf, size_t n, char **fields)
{
    int k = 0;
    snprintf(buf, n, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (k == CLI_MAX_Y)
            return 0;
        fields[k++] = t;
    }
    return k;
}

/* Series argument: LABEL=FILE, or FILE (labelled by its name without directory and extension). */
static void cli_series_arg(const char *arg, char *label, size_t n, const char **path)
{
    const char *eq = strchr(arg, '=');
    if (eq && eq != arg && access(arg, F_OK) != 0) {
        snprintf(label, n, "%.*s", (int)(eq - arg), arg);
        *path = eq + 1;
        return;
    }
    const char *base = strrchr(arg, '/') ? strrchr(arg, '/') + 1 : arg, *dot = strrchr(base, '.');
    snprintf(label, n, "%.*s", (int)(dot && dot != base ? dot - base : (long)strlen(base)), base);
    *path = arg;
}

static int cli_line(int argc, char **argv, struct cli_opts *o, struct plot_chart *ch)
{
    char ybuf[256], err[PLOT_ERR_LEN], *yf[CLI_MAX_Y];
    int ny = cli_split_y(o->y, ybuf, sizeof(ybuf), yf), nfiles = argc - optind;
    if (!ny) {
        fprintf(stderr, "bitdistill plot line: bad --y '%s': 1 to %d field names\n", o->y,
                CLI_MAX_Y);
        return 2;
    }
    if (nfiles * ny > PLOT_MAX_SERIES) {
        fprintf(stderr, "bitdistill plot line: %d files x %d y fields is more than %d series\n",
                nfiles, ny, PLOT_MAX_SERIES);
        return 2;
    }
    int stdin_reads = 0;
    for (int i = optind; i < argc; i++) {
        char label[256];
        const char *path;
        cli_series_arg(argv[i], label, sizeof(label), &path);
        stdin_reads += !strcmp(path, "-") ? ny : 0;
    }
    if (stdin_reads > 1) {
        fprintf(stderr, "bitdistill plot line: standard input ('-') can be read once, for one "
                        "--y field\n");
        return 2;
    }
    for (int i = optind; i < argc; i++) {
        char label[256], full[300];
        const char *path;
        cli_series_arg(argv[i], label, sizeof(label), &path);
        for (int k = 0; k < ny; k++) {
            struct plot_points pts = {0};
            size_t skipped;
            int rc =
                plot_data_read(path, o->x, yf[k], o->filters, o->nfilters, &pts, &skipped, err);
            if (rc) {
                fprintf(stderr, "bitdistill plot: %s\n", err);
                plot_points_release(&pts);
                return 1;
            }
            if (skipped && k == 0)
                fprintf(stderr,
                        "bitdistill plot: '%s': %zu lines are not JSON objects "
                        "(skipped)\n",
                        path, skipped);
            if (ny == 1)
                snprintf(full, sizeof(full), "%s", label);
            else if (nfiles == 1)
                snprintf(full, sizeof(full), "%s", yf[k]);
            else
                snprintf(full, sizeof(full), "%s %s", label, yf[k]);
            rc = plot_chart_add_series(ch, full, pts.x, pts.y, pts.n);
            plot_points_release(&pts);
            if (rc) {
                fprintf(stderr, "bitdistill plot: %s\n", plot_chart_errmsg(ch));
                return 1;
            }
        }
    }
    plot_chart_set_smooth(ch, o->smooth);
    plot_chart_set_xlim(ch, o->xmin, o->xmax);
    const char *xlabel = o->xlabel ? o->xlabel : strcmp(o->x, "@n") ? o->x : "point";
    if (plot_chart_set_text(ch, o->title, xlabel, o->ylabel ? o->ylabel : ny == 1 ? yf[0] : NULL)) {
        fprintf(stderr, "bitdistill plot: %s\n", plot_chart_errmsg(ch));
        return 1;
    }
    return -1;
}

static int cli_bar(int argc, char **argv, struct cli_opts *o, struct plot_chart *ch)
{
    char err[PLOT_ERR_LEN];
    for (int i = optind; i < argc; i++) {
        char *group, *label;
        double v, e;
        int rc = plot_bar_parse(argv[i], o->group_sep, &group, &label, &v, &e, err);
        if (rc) {
            fprintf(stderr, "bitdistill plot: %s\n", rc == PLOT_EINVAL ? err : plot_strerror(rc));
            return 2;
        }
        rc = plot_chart_add_bar(ch, group, label, v, e);
        free(group);
        free(label);
        if (rc) {
            fprintf(stderr, "bitdistill plot: %s\n", plot_chart_errmsg(ch));
            return rc == PLOT_ENOMEM ? 1 : 2;
        }
    }
    if (plot_chart_set_text(ch, o->title, o->xlabel, o->ylabel)) {
        fprintf(stderr, "bitdistill plot: %s\n", plot_chart_errmsg(ch));
        return 1;
    }
    return -1;
}

int plot_cli_main(int argc, char **argv)
{
    struct cli_opts o = {.x = "step",
                         .y = "loss",
                         .group_sep = "/",
                         .w = 800,
                         .h = 500,
                         .xmin = NAN,
                         .xmax = NAN,
                         .ymin = NAN,
                         .ymax = NAN};
    char err[PLOT_ERR_LEN];
    if (argc < 2 || (strcmp(argv[1], "line") && strcmp(argv[1], "bar"))) {
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fprintf(help ? stdout : stderr,
                "usage: bitdistill plot line|bar --out FILE.png [OPTIONS] ARGS...\n"
                "  line  loss curves (any numeric fields) from event logs or tables\n"
                "  bar   values per label, optionally grouped, with error bars\n"
                "`bitdistill plot line --help`, `bitdistill plot bar --help` show the options.\n");
        if (!help && argc >= 2)
            fprintf(stderr, "bitdistill plot: unknown chart '%s'\n", argv[1]);
        return help ? 0 : 2;
    }
    o.kind = strcmp(argv[1], "line") ? PLOT_BAR : PLOT_LINE;
    argc--;
    argv++;
    int rc = cli_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    struct plot_chart *ch = plot_chart_create(o.kind);
    struct plot_canvas *c = NULL;
    if (!ch) {
        fprintf(stderr, "bitdistill plot: out of memory\n");
        return 1;
    }
    rc = o.kind == PLOT_LINE ? cli_line(argc, argv, &o, ch) : cli_bar(argc, argv, &o, ch);
    if (rc >= 0)
        goto out_chart;
    plot_chart_set_logy(ch, o.logy);
    plot_chart_set_ylim(ch, o.ymin, o.ymax);
    if (plot_chart_render(ch, o.w, o.h, &c)) {
        fprintf(stderr, "bitdistill plot: %s\n", plot_chart_errmsg(ch));
        rc = 1;
        goto out_chart;
    }
    if (plot_chart_dropped(ch))
        fprintf(stderr, "bitdistill plot: %zu points with y <= 0 left out of the log y axis\n",
                plot_chart_dropped(ch));
    if (plot_canvas_write_png(c, o.out, err)) {
        fprintf(stderr, "bitdistill plot: %s\n", err);
        rc = 1;
        goto out_canvas;
    }
    if (o.layout) {
        char *j = plot_chart_layout_json(ch);
        if (j)
            printf("%s\n", j);
        free(j);
    }
    rc = 0;
out_canvas:
    plot_canvas_free(c);
out_chart:
    plot_chart_free(ch);
    plot_text_release(); /* the command ends here: no font caches left for the leak checker */
    return rc;
}
