/*
 * plot/chart.c — line and bar charts (see chart.h): data, layout, drawing, layout JSON.
 *
 * Layout works outwards in: the text sizes follow the canvas size (an 800x500 canvas gets text
 * scale 1.5, a cap height of 10.5 pixels, for ticks and 2 for the title), the margins follow
 * the text (title above, y tick labels and the rotated y label to the left, x tick labels and the x
 * label below), and what is left is the plot area. The y axis is chosen first (its ticks depend
 * only on the height), its widest label then sets the left margin, and the x axis comes last.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "plot/axis.h"
#include "plot/chart.h"
#include "plot/err.h"

/* Colours: matplotlib's "tab10" palette, grey last; ink and rules of the frame. */
static const uint32_t chart_palette[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                           0x8c564b, 0xe377c2, 0x17becf, 0xbcbd22, 0x7f7f7f};
#define CHART_BG 0xffffff
#define CHART_INK 0x222222   /* text, error bars */
#define CHART_SPINE 0x555555 /* axis lines and tick marks */
#define CHART_GRID 0xe3e3e3  /* major grid lines */
#define CHART_MINOR 0xf2f2f2 /* minor grid lines (log axes) */
#define CHART_MARKER_MAX 40  /* series with at most this many points get markers */
#define CHART_RAW_ALPHA 0.25 /* opacity of the raw series under a smoothed one */

struct chart_series {
    char *label;
    double *x, *y; /* [n] points sorted by x (ties in input order), finite */
    size_t n;
};

struct chart_bar {
    char *group, *label; /* group NULL: ungrouped */
    double value, err;   /* data units; err 0: no error bar */
    double box[4];       /* after render: x0, y0, x1, y1 in pixels */
    uint32_t color;      /* after render */
};

/* A rectangle in pixels, [x0,x1) x [y0,y1). */
struct chart_box {
    double x0, y0, x1, y1;
};

struct plot_chart {
    enum plot_kind kind;
    char *title, *xlabel, *ylabel;
    int logy, smooth;
    double xlim[2], ylim[2]; /* fixed limits, NaN: automatic */
    struct chart_series series[PLOT_MAX_SERIES];
    int nseries;
    struct chart_bar *bars; /* [nbars] of cap */
    int nbars, capbars;
    char err[PLOT_ERR_LEN];

    /* Layout of the last render. */
    int rendered, w, h;
    struct chart_box area;     /* plot area, pixels */
    struct plot_axis xa, ya;   /* xa unused by bar charts */
    struct chart_box legend;   /* x1 == 0: no legend */
    struct chart_box title_at; /* x1 == 0: no title */
    const char **slots;        /* bar charts: label under each slot (borrowed from the bars) */
    int nslots;
    double slot_w;      /* bar charts: width of one slot, pixels */
    size_t dropped;     /* points left out on the log axis */
    double ts, ls, tts; /* font scales: ticks and legend, axis labels, title */
};

struct plot_chart *plot_chart_create(enum plot_kind kind)
{
    struct plot_chart *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->kind = kind;
    ch->xlim[0] = ch->xlim[1] = ch->ylim[0] = ch->ylim[1] = NAN;
    return ch;
}

void plot_chart_free(struct plot_chart *ch)
{
    if (!ch)
        return;
    for (int i = 0; i < ch->nseries; i++) {
        free(ch->series[i].label);
        free(ch->series[i].x);
        free(ch->series[i].y);
    }
    for (int i = 0; i < ch->nbars; i++) {
        free(ch->bars[i].group);
        free(ch->bars[i].label);
    }
    free(ch->bars);
    free(ch->slots);
    free(ch->title);
    free(ch->xlabel);
    free(ch->ylabel);
    free(ch);
}

const char *plot_chart_errmsg(const struct plot_chart *ch)
{
    return ch->err;
}

uint32_t plot_chart_color(int i)
{
    return chart_palette[(unsigned)i % 10];
}

/* strdup of s, or NULL for NULL or "" (*ok cleared when memory runs out). */
static char *chart_dup(const char *s, int *ok)
{
    if (!s || !*s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *ok = 0;
    return d;
}

int plot_chart_set_text(struct plot_chart *ch, const char *title, const char *xlabel,
                        const char *ylabel)
{
    int ok = 1;
    free(ch->title);
    free(ch->xlabel);
    free(ch->ylabel);
    ch->title = chart_dup(title, &ok);
    ch->xlabel = chart_dup(xlabel, &ok);
    ch->ylabel = chart_dup(ylabel, &ok);
    return ok ? 0 : plot_fail(ch->err, PLOT_ENOMEM, "out of memory copying the chart's text");
}

void plot_chart_set_logy(struct plot_chart *ch, int on)
{
    ch->logy = !!on;
}
void plot_chart_set_smooth(struct plot_chart *ch, int k)
{
    ch->smooth = k > 1 ? k : 0;
}

void plot_chart_set_xlim(struct plot_chart *ch, double lo, double hi)
{
    ch->xlim[0] = lo;
    ch->xlim[1] = hi;
}

void plot_chart_set_ylim(struct plot_chart *ch, double lo, double hi)
{
    ch->ylim[0] = lo;
    ch->ylim[1] = hi;
}

/* A point with its input position, sorted by x with ties in input order (a stable sort). */
struct chart_pt {
    double x, y;
    size_t i;
};

static int chart_cmp_pt(const void *pa, const void *pb)
{
    const struct chart_pt *a = pa, *b = pb;
    return a->x < b->x ? -1 : a->x > b->x ? 1 : a->i < b->i ? -1 : a->i > b->i;
}

int plot_chart_add_series(struct plot_chart *ch, const char *label, const double *x,
                          const double *y, size_t n)
{
    if (ch->kind != PLOT_LINE)
        return plot_fail(ch->err, PLOT_EINVAL, "a bar chart takes bars, not series");
    if (ch->nseries == PLOT_MAX_SERIES)
        return plot_fail(ch->err, PLOT_ELIMIT, "too many series (at most %d)", PLOT_MAX_SERIES);
    struct chart_series *s = &ch->series[ch->nseries];
    struct chart_pt *pt = malloc((n ? n : 1) * sizeof(*pt));
    size_t m = 0;
    int ok = 1;
    s->x = malloc((n ? n : 1) * sizeof(*s->x));
    s->y = malloc((n ? n : 1) * sizeof(*s->y));
    s->label = chart_dup(label, &ok);
    if (!pt || !s->x || !s->y || !ok) {
        free(pt);
        free(s->x);
        free(s->y);
        free(s->label);
        memset(s, 0, sizeof(*s));
        return plot_fail(ch->err, PLOT_ENOMEM, "out of memory for a series of %zu points", n);
    }
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]))
            pt[m++] = (struct chart_pt){x[i], y[i], i};
    qsort(pt, m, sizeof(*pt), chart_cmp_pt);
    for (size_t i = 0; i < m; i++) {
        s->x[i] = pt[i].x;
        s->y[i] = pt[i].y;
    }
    s->n = m;
    free(pt);
    ch->nseries++;
    return 0;
}

int plot_chart_add_bar(struct plot_chart *ch, const char *group, const char *label, double value,
                       double err)
{
    if (ch->kind != PLOT_BAR)
        return plot_fail(ch->err, PLOT_EINVAL, "a line chart takes series, not bars");
    if (!isfinite(value))
        return plot_fail(ch->err, PLOT_EINVAL, "bar '%s': value is not a finite number",
                         label ? label : "");
    if (isnan(err))
        err = 0;
    if (!(err >= 0) || !isfinite(err))
        return plot_fail(ch->err, PLOT_EINVAL, "bar '%s': error must be a finite number >= 0",
                         label ? label : "");
    if (ch->nbars == PLOT_MAX_BARS)
        return plot_fail(ch->err, PLOT_ELIMIT, "too many bars (at most %d)", PLOT_MAX_BARS);
    if (group) { /* grouped bars take their colour from the label: at most PLOT_MAX_SERIES */
        int distinct = 0, known = 0;
        for (int i = 0; i < ch->nbars; i++) {
            if (!ch->bars[i].group)
                continue;
            int first = 1;
            for (int k = 0; k < i && first; k++)
                first = !ch->bars[k].group || strcmp(ch->bars[k].label, ch->bars[i].label);
            distinct += first;
            known |= !strcmp(ch->bars[i].label, label ? label : "");
        }
        if (!known && distinct == PLOT_MAX_SERIES)
            return plot_fail(ch->err, PLOT_ELIMIT, "too many bar labels across groups (at most %d)",
                             PLOT_MAX_SERIES);
    }
    if (ch->nbars == ch->capbars) {
        int cap = ch->capbars ? 2 * ch->capbars : 16;
        struct chart_bar *nb = realloc(ch->bars, cap * sizeof(*nb));
        if (!nb)
            return plot_fail(ch->err, PLOT_ENOMEM, "out of memory for %d bars", cap);
        ch->bars = nb;
        ch->capbars = cap;
    }
    struct chart_bar *b = &ch->bars[ch->nbars];
    memset(b, 0, sizeof(*b));
    b->group = group ? strdup(group) : NULL;
    b->label = strdup(label ? label : "");
    if ((group && !b->group) || !b->label) {
        free(b->group);
        free(b->label);
        return plot_fail(ch->err, PLOT_ENOMEM, "out of memory for a bar");
    }
    b->value = value;
    b->err = err;
    ch->nbars++;
    return 0;
}

/* ---- layout helpers ---- */

/* Pixel x of data x, and pixel y of data y, in the last render's plot area. */
static double chart_px(const struct plot_chart *ch, double x)
{
    return ch->area.x0 + plot_axis_frac(&ch->xa, x) * (ch->area.x1 - ch->area.x0);
}

static double chart_py(const struct plot_chart *ch, double y)
{
    return ch->area.y1 - plot_axis_frac(&ch->ya, y) * (ch->area.y1 - ch->area.y0);
}

void plot_chart_map(const struct plot_chart *ch, double x, double y, double *px, double *py)
{
    if (px && ch->kind == PLOT_LINE)
        *px = chart_px(ch, x);
    if (py)
        *py = chart_py(ch, y);
}

/* Widest tick label of axis a at scale s, pixels. */
static double chart_tick_width(const struct plot_axis *a, double s)
{
    double w = 0;
    char buf[64];
    for (int i = 0; i < a->nticks; i++) {
        plot_axis_label(a, a->ticks[i], buf, sizeof(buf));
        w = fmax(w, plot_text_width(buf, s));
    }
    return w;
}

/* Index of the slot named name among the first n of names, or -1. */
static int chart_find(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return i;
    return -1;
}

/*
 * Bar charts: the slots along the axis (groups, or one per bar when no bar has a group), the
 * legend labels (names, for grouped bars) and each bar's slot and label index. Returns 0 or
 * PLOT_ELIMIT / PLOT_ENOMEM.
 */
static int chart_bar_slots(struct plot_chart *ch, const char **names, int *nnames, int *slot,
                           int *lab)
{
    int grouped = 0;
    for (int i = 0; i < ch->nbars; i++)
        grouped |= ch->bars[i].group != NULL;
    free(ch->slots);
    ch->nslots = 0;
    if (!(ch->slots = malloc(ch->nbars * sizeof(*ch->slots))))
        return plot_fail(ch->err, PLOT_ENOMEM, "out of memory laying out %d bars", ch->nbars);
    *nnames = 0;
    for (int i = 0; i < ch->nbars; i++) {
        struct chart_bar *b = &ch->bars[i];
        if (!grouped) {
            slot[i] = ch->nslots;
            ch->slots[ch->nslots++] = b->label;
            lab[i] = i;
            continue;
        }
        const char *g = b->group ? b->group : "";
        if ((slot[i] = chart_find(ch->slots, ch->nslots, g)) < 0) {
            slot[i] = ch->nslots;
            ch->slots[ch->nslots++] = g;
        }
        if ((lab[i] = chart_find(names, *nnames, b->label)) < 0) {
            if (*nnames == PLOT_MAX_SERIES)
                return plot_fail(ch->err, PLOT_ELIMIT,
                                 "too many bar labels across groups (at most %d)", PLOT_MAX_SERIES);
            lab[i] = *nnames;
            names[(*nnames)++] = b->label;
        }
    }
    return 0;
}

/* ---- drawing ---- */

/* The title and axis labels, around the plot area. */
static void chart_draw_text(struct plot_chart *ch, struct plot_canvas *c, double pad)
{
    if (ch->title) {
        double tw = plot_text_width(ch->title, ch->tts);
        double x = floor((ch->w - tw) / 2);
        if (x < pad)
            x = pad;
        ch->title_at = (struct chart_box){x, pad, x + tw, pad + plot_text_height(ch->tts)};
        plot_canvas_text(c, x, pad, ch->title, ch->tts, CHART_INK, PLOT_TEXT_RIGHT);
    }
    if (ch->xlabel) {
        double tw = plot_text_width(ch->xlabel, ch->ls);
        double x = floor((ch->area.x0 + ch->area.x1 - tw) / 2);
        double y = ch->h - pad - plot_text_height(ch->ls);
        plot_canvas_text(c, x, floor(y), ch->xlabel, ch->ls, CHART_INK, PLOT_TEXT_RIGHT);
    }
    if (ch->ylabel) {
        double tw = plot_text_width(ch->ylabel, ch->ls);
        double y = floor((ch->area.y0 + ch->area.y1 - tw) / 2);
        plot_canvas_text(c, pad, y < 0 ? 0 : y, ch->ylabel, ch->ls, CHART_INK, PLOT_TEXT_UP);
    }
}

/* Grid lines (minor ones first), tick marks and tick labels of the y axis. */
static void chart_draw_yaxis(struct plot_chart *ch, struct plot_canvas *c, double tick)
{
    const struct chart_box *a = &ch->area;
    char buf[64];
    for (int i = 0; i < ch->ya.nminor; i++) {
        int y = (int)floor(chart_py(ch, ch->ya.minor[i]));
        plot_canvas_rect(c, (int)a->x0, y, (int)a->x1, y + 1, CHART_MINOR, 1);
    }
    for (int i = 0; i < ch->ya.nticks; i++) {
        double py = chart_py(ch, ch->ya.ticks[i]);
        int y = (int)floor(py);
        plot_canvas_rect(c, (int)a->x0, y, (int)a->x1, y + 1, CHART_GRID, 1);
        plot_canvas_rect(c, (int)(a->x0 - tick), y, (int)a->x0, y + 1, CHART_SPINE, 1);
        plot_axis_label(&ch->ya, ch->ya.ticks[i], buf, sizeof(buf));
        double tw = plot_text_width(buf, ch->ts);
        plot_canvas_text(c, floor(a->x0 - tick - 4 - tw), floor(py - plot_text_height(ch->ts) / 2),
                         buf, ch->ts, CHART_INK, PLOT_TEXT_RIGHT);
    }
}

/* Grid lines, tick marks and tick labels of the x axis (line charts). */
static void chart_draw_xaxis(struct plot_chart *ch, struct plot_canvas *c, double tick)
{
    const struct chart_box *a = &ch->area;
    char buf[64];
    for (int i = 0; i < ch->xa.nticks; i++) {
        double px = chart_px(ch, ch->xa.ticks[i]);
        int x = (int)floor(px);
        x = x >= (int)a->x1 ? (int)a->x1 - 1 : x;
        plot_canvas_rect(c, x, (int)a->y0, x + 1, (int)a->y1, CHART_GRID, 1);
        plot_canvas_rect(c, x, (int)a->y1, x + 1, (int)(a->y1 + tick), CHART_SPINE, 1);
        plot_axis_label(&ch->xa, ch->xa.ticks[i], buf, sizeof(buf));
        double tw = plot_text_width(buf, ch->ts);
        plot_canvas_text(c, floor(px - tw / 2), a->y1 + tick + 4, buf, ch->ts, CHART_INK,
                         PLOT_TEXT_RIGHT);
    }
}

/* The left and bottom axis lines, drawn over the grid. */
static void chart_draw_spines(struct plot_chart *ch, struct plot_canvas *c)
{
    const struct chart_box *a = &ch->area;
    plot_canvas_rect(c, (int)a->x0 - 1, (int)a->y0, (int)a->x0, (int)a->y1 + 1, CHART_SPINE, 1);
    plot_canvas_rect(c, (int)a->x0 - 1, (int)a->y1, (int)a->x1, (int)a->y1 + 1, CHART_SPINE, 1);
}

/*
 * Line charts: the legend, one row per entry (a colour swatch, then the label) in a white box,
 * in the corner of the plot area where it hides the fewest samples of the lines (every ~4
 * pixels along each segment; pxs[s][0..np[s]) are series s's points in pixels, borrowed),
 * preferring top right, top left, bottom right, bottom left.
 */
static void chart_draw_legend(struct plot_chart *ch, struct plot_canvas *c, const char **labels,
                              int n, const double *const *pxs, const double *const *pys,
                              const size_t *np)
{
    double lh = plot_text_height(ch->ts) + 8 * ch->ts / 1.5, pad = 8, sw = 22, tw = 0;
    for (int i = 0; i < n; i++)
        tw = fmax(tw, plot_text_width(labels[i], ch->ts));
    double bw = ceil(pad + sw + 6 + tw + pad);
    double bh = ceil(n * lh + 2 * pad - (lh - plot_text_height(ch->ts)));
    const struct chart_box *a = &ch->area;
    double m = 8;
    struct chart_box corners[4] = {
        {a->x1 - m - bw, a->y0 + m, a->x1 - m, a->y0 + m + bh},
        {a->x0 + m, a->y0 + m, a->x0 + m + bw, a->y0 + m + bh},
        {a->x1 - m - bw, a->y1 - m - bh, a->x1 - m, a->y1 - m},
        {a->x0 + m, a->y1 - m - bh, a->x0 + m + bw, a->y1 - m},
    };
    int best = 0;
    size_t best_hits = (size_t)-1;
    for (int k = 0; k < 4 && pxs; k++) {
        size_t hits = 0;
        const struct chart_box *b = &corners[k];
        for (int s = 0; s < n; s++)
            for (size_t i = 0; i < np[s]; i++) {
                double x0 = pxs[s][i], y0 = pys[s][i];
                double x1 = i + 1 < np[s] ? pxs[s][i + 1] : x0,
                       y1 = i + 1 < np[s] ? pys[s][i + 1] : y0;
                double len = fmin(hypot(x1 - x0, y1 - y0), 4000);
                int steps = 1 + (int)(len / 4);
                for (int t = 0; t < steps; t++) {
                    double x = x0 + (x1 - x0) * t / steps, y = y0 + (y1 - y0) * t / steps;
                    hits += x >= b->x0 - 4 && x < b->x1 + 4 && y >= b->y0 - 4 && y < b->y1 + 4;
                }
            }
        if (hits < best_hits) {
            best_hits = hits;
            best = k;
        }
    }
    struct chart_box b = corners[best];
    b.x0 = floor(b.x0);
    b.y0 = floor(b.y0);
    b.x1 = b.x0 + bw;
    b.y1 = b.y0 + bh;
    ch->legend = b;
    plot_canvas_rect(c, (int)b.x0, (int)b.y0, (int)b.x1, (int)b.y1, CHART_BG, 0.9);
    plot_canvas_rect(c, (int)b.x0, (int)b.y0, (int)b.x1, (int)b.y0 + 1, 0xcccccc, 1);
    plot_canvas_rect(c, (int)b.x0, (int)b.y1 - 1, (int)b.x1, (int)b.y1, 0xcccccc, 1);
    plot_canvas_rect(c, (int)b.x0, (int)b.y0, (int)b.x0 + 1, (int)b.y1, 0xcccccc, 1);
    plot_canvas_rect(c, (int)b.x1 - 1, (int)b.y0, (int)b.x1, (int)b.y1, 0xcccccc, 1);
    for (int i = 0; i < n; i++) {
        double ty = b.y0 + pad + i * lh, cy = ty + plot_text_height(ch->ts) / 2;
        if (ch->kind == PLOT_LINE)
            plot_canvas_line(c, b.x0 + pad, cy, b.x0 + pad + sw, cy, 2.5, plot_chart_color(i));
        else
            plot_canvas_rect(c, (int)(b.x0 + pad), (int)(cy - 5), (int)(b.x0 + pad + sw),
                             (int)(cy + 5), plot_chart_color(i), 1);
        plot_canvas_text(c, b.x0 + pad + sw + 6, floor(ty), labels[i], ch->ts, CHART_INK,
                         PLOT_TEXT_RIGHT);
    }
}

/* Height of a legend row above the plot area (bar charts), pixels. */
static double chart_legend_row_h(const struct plot_chart *ch)
{
    return ceil(plot_text_height(ch->ts) + 6);
}

/*
 * Bar charts: the legend as one centred row between the title and the plot area, where it can
 * never hide a bar.
 */
static void chart_draw_legend_row(struct plot_chart *ch, struct plot_canvas *c, const char **labels,
                                  int n, double y)
{
    double sw = 14, gap = 18, total = 0;
    for (int i = 0; i < n; i++)
        total += sw + 6 + plot_text_width(labels[i], ch->ts) + (i ? gap : 0);
    double x = floor((ch->area.x0 + ch->area.x1 - total) / 2), th = plot_text_height(ch->ts);
    x = x < 0 ? 0 : x;
    ch->legend = (struct chart_box){x, y, x + total, y + chart_legend_row_h(ch)};
    for (int i = 0; i < n; i++) {
        double ty = y + 3;
        plot_canvas_rect(c, (int)x, (int)ty, (int)(x + sw), (int)(ty + th), plot_chart_color(i), 1);
        plot_canvas_text(c, x + sw + 6, ty, labels[i], ch->ts, CHART_INK, PLOT_TEXT_RIGHT);
        x += sw + 6 + plot_text_width(labels[i], ch->ts) + gap;
    }
}

/* The text scales and margins shared by both kinds; sets ch->area's y extent and ch->ts/ls/tts. */
static void chart_layout_frame(struct plot_chart *ch, int w, int h, double *pad, double *tick)
{
    double k = fmax(1, fmin(w / 800.0, h / 500.0));
    ch->ts = 1.5 * k;
    ch->ls = 1.5 * k;
    ch->tts = 2 * k;
    *pad = floor(10 * k);
    *tick = floor(5 * k);
    ch->w = w;
    ch->h = h;
    ch->area.y0 = *pad + (ch->title ? plot_text_height(ch->tts) + *pad * 1.5 : *pad);
    ch->area.y1 = h - *pad - *tick - 4 - plot_text_height(ch->ts) - 2 * ch->ts -
                  (ch->xlabel ? plot_text_height(ch->ls) + *pad : 0);
    ch->area.y0 = floor(ch->area.y0);
    ch->area.y1 = floor(ch->area.y1);
    memset(&ch->legend, 0, sizeof(ch->legend));
    memset(&ch->title_at, 0, sizeof(ch->title_at));
}

/* Left and right edges of the area once the y axis is known. */
static void chart_layout_sides(struct plot_chart *ch, double pad, double tick, double right)
{
    ch->area.x0 = floor(pad + (ch->ylabel ? plot_text_height(ch->ls) + pad : 0) +
                        chart_tick_width(&ch->ya, ch->ts) + tick + 4 + 1);
    ch->area.x1 = floor(ch->w - pad - right);
}

/* Y axis over [lo, hi] honouring fixed limits; target ticks from the area's height. */
static int chart_yaxis(struct plot_chart *ch, double lo, double hi)
{
    int fix_lo = !isnan(ch->ylim[0]), fix_hi = !isnan(ch->ylim[1]);
    lo = fix_lo ? ch->ylim[0] : lo;
    hi = fix_hi ? ch->ylim[1] : hi;
    if (fix_lo && fix_hi && !(hi > lo))
        return plot_fail(ch->err, PLOT_EINVAL, "y limits: %g is not below %g", lo, hi);
    if (fix_lo && !fix_hi && hi < lo)
        hi = lo; /* all data below a fixed minimum */
    if (fix_hi && !fix_lo && lo > hi)
        lo = hi;
    if (ch->logy) {
        if (lo <= 0 || hi <= 0)
            return plot_fail(ch->err, PLOT_EINVAL, "log y axis: limits must be above 0");
        plot_axis_log(&ch->ya, lo, hi, fix_lo, fix_hi);
    } else {
        int target = (int)((ch->area.y1 - ch->area.y0) / 55);
        plot_axis_linear(&ch->ya, lo, hi, fix_lo, fix_hi, target < 3 ? 3 : target);
    }
    return 0;
}

static int chart_render_line(struct plot_chart *ch, struct plot_canvas *c)
{
    double pad, tick, xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    size_t total = 0;
    int rc = 0;
    chart_layout_frame(ch, ch->w, ch->h, &pad, &tick);
    ch->dropped = 0;
    for (int s = 0; s < ch->nseries; s++)
        for (size_t i = 0; i < ch->series[s].n; i++) {
            double x = ch->series[s].x[i], y = ch->series[s].y[i];
            if (ch->logy && y <= 0) {
                ch->dropped++;
                continue;
            }
            xlo = fmin(xlo, x);
            xhi = fmax(xhi, x);
            ylo = fmin(ylo, y);
            yhi = fmax(yhi, y);
            total++;
        }
    if (!total)
        return plot_fail(ch->err, PLOT_ENODATA,
                         ch->logy && ch->dropped ? "no points above 0 for the log y axis"
                                                 : "no points to plot");
    if ((rc = chart_yaxis(ch, ylo, yhi)))
        return rc;
    int fix_lo = !isnan(ch->xlim[0]), fix_hi = !isnan(ch->xlim[1]);
    double lo = fix_lo ? ch->xlim[0] : xlo, hi = fix_hi ? ch->xlim[1] : xhi;
    if (fix_lo && fix_hi && !(hi > lo))
        return plot_fail(ch->err, PLOT_EINVAL, "x limits: %g is not below %g", lo, hi);
    if (fix_lo && !fix_hi && hi < lo)
        hi = lo;
    if (fix_hi && !fix_lo && lo > hi)
        lo = hi;
    /* Room on the right for half of the last x label: estimate it with a first x axis. */
    chart_layout_sides(ch, pad, tick, 0);
    plot_axis_linear(&ch->xa, lo, hi, fix_lo, fix_hi, (int)((ch->area.x1 - ch->area.x0) / 100));
    double right = chart_tick_width(&ch->xa, ch->ts) / 2;
    chart_layout_sides(ch, pad, tick, right);
    int target = (int)((ch->area.x1 - ch->area.x0) / 100);
    plot_axis_linear(&ch->xa, lo, hi, fix_lo, fix_hi, target < 3 ? 3 : target);

    chart_draw_yaxis(ch, c, tick);
    chart_draw_xaxis(ch, c, tick);
    chart_draw_spines(ch, c);
    chart_draw_text(ch, c, pad);

    /* Series, clipped to the area: raw (faint when smoothed), smoothed, markers. */
    double *pxs[PLOT_MAX_SERIES] = {0}, *pys[PLOT_MAX_SERIES] = {0};
    size_t np[PLOT_MAX_SERIES] = {0};
    const char *labels[PLOT_MAX_SERIES];
    plot_canvas_clip(c, (int)ch->area.x0 - 2, (int)ch->area.y0 - 2, (int)ch->area.x1 + 2,
                     (int)ch->area.y1 + 2); /* a line along a limit shows whole */
    for (int s = 0; s < ch->nseries; s++) {
        const struct chart_series *se = &ch->series[s];
        uint32_t col = plot_chart_color(s);
        labels[s] = se->label ? se->label : "";
        pxs[s] = malloc((se->n ? se->n : 1) * sizeof(double));
        pys[s] = malloc((se->n ? se->n : 1) * sizeof(double));
        if (!pxs[s] || !pys[s]) {
            rc = plot_fail(ch->err, PLOT_ENOMEM, "out of memory drawing %zu points", se->n);
            goto out_points;
        }
        size_t m = 0;
        for (size_t i = 0; i < se->n; i++) {
            if (ch->logy && se->y[i] <= 0)
                continue;
            pxs[s][m] = chart_px(ch, se->x[i]);
            pys[s][m++] = chart_py(ch, se->y[i]);
        }
        np[s] = m;
        if (ch->smooth && m > 1) {
            plot_canvas_polyline(c, pxs[s], pys[s], m, 1.5, col, CHART_RAW_ALPHA);
            double sum = 0; /* trailing mean of y (of log10 y on a log axis), window smooth */
            double *win = malloc(m * sizeof(*win));
            if (!win) {
                rc = plot_fail(ch->err, PLOT_ENOMEM, "out of memory smoothing %zu points", m);
                goto out_points;
            }
            for (size_t i = 0, j = 0; i < se->n; i++) {
                if (ch->logy && se->y[i] <= 0)
                    continue;
                win[j] = ch->logy ? log10(se->y[i]) : se->y[i];
                sum += win[j];
                if (j >= (size_t)ch->smooth)
                    sum -= win[j - ch->smooth];
                size_t k = j + 1 < (size_t)ch->smooth ? j + 1 : (size_t)ch->smooth;
                pys[s][j++] = chart_py(ch, ch->logy ? pow(10, sum / k) : sum / k);
            }
            free(win);
        }
        plot_canvas_polyline(c, pxs[s], pys[s], m, 2.0, col, 1.0);
        for (size_t i = 0; m <= CHART_MARKER_MAX && i < m; i++)
            plot_canvas_disc(c, pxs[s][i], pys[s][i], 3.5, col);
    }
    plot_canvas_clip(c, 0, 0, ch->w, ch->h);
    if (ch->nseries > 1 || (ch->nseries == 1 && ch->series[0].label))
        chart_draw_legend(ch, c, labels, ch->nseries, (const double *const *)pxs,
                          (const double *const *)pys, np);
out_points:
    plot_canvas_clip(c, 0, 0, ch->w, ch->h);
    for (int s = 0; s < ch->nseries; s++) {
        free(pxs[s]);
        free(pys[s]);
    }
    return rc;
}

/*
 * Decimals that print every bar value exactly (0.912 and 0.8 -> 3: "0.912", "0.800"), or -1
 * when some value needs more than 4 (then each prints with 4 significant digits).
 */
static int chart_bar_decimals(const struct plot_chart *ch)
{
    int dec = 0;
    for (int i = 0; i < ch->nbars; i++) {
        double v = ch->bars[i].value;
        int d = 0;
        while (d <= 4 && fabs(round(v * pow(10, d)) / pow(10, d) - v) > 1e-9 * fmax(1, fabs(v)))
            d++;
        if (d > 4)
            return -1;
        dec = d > dec ? d : dec;
    }
    return dec;
}

static int chart_render_bar(struct plot_chart *ch, struct plot_canvas *c)
{
    double pad, tick, lo = 0, hi = 0;
    int rc = 0, nnames = 0;
    const char *names[PLOT_MAX_SERIES];
    if (!ch->nbars)
        return plot_fail(ch->err, PLOT_ENODATA, "no bars to plot");
    int *slot = malloc(ch->nbars * sizeof(*slot)), *lab = malloc(ch->nbars * sizeof(*lab));
    if (!slot || !lab) {
        rc = plot_fail(ch->err, PLOT_ENOMEM, "out of memory laying out %d bars", ch->nbars);
        goto out_idx;
    }
    if ((rc = chart_bar_slots(ch, names, &nnames, slot, lab)))
        goto out_idx;
    chart_layout_frame(ch, ch->w, ch->h, &pad, &tick);
    double legend_y = ch->area.y0;
    if (nnames)
        ch->area.y0 += chart_legend_row_h(ch) + pad;
    for (int i = 0; i < ch->nbars; i++) {
        lo = fmin(lo, ch->bars[i].value - ch->bars[i].err);
        hi = fmax(hi, ch->bars[i].value + ch->bars[i].err);
    }
    if (!ch->logy && hi > lo) /* headroom for the value printed above the tallest bar */
        hi += (hi - (isnan(ch->ylim[0]) ? lo : ch->ylim[0])) * 0.06;
    if (ch->logy) {
        lo = INFINITY;
        for (int i = 0; i < ch->nbars; i++)
            if (ch->bars[i].value > 0)
                lo = fmin(lo, ch->bars[i].value);
        if (!isfinite(lo)) {
            rc = plot_fail(ch->err, PLOT_ENODATA, "no bar values above 0 for the log y axis");
            goto out_idx;
        }
    }
    if ((rc = chart_yaxis(ch, lo, hi)))
        goto out_idx;
    chart_layout_sides(ch, pad, tick, 0);
    const struct chart_box *a = &ch->area;
    ch->slot_w = (a->x1 - a->x0) / ch->nslots;

    chart_draw_yaxis(ch, c, tick);
    chart_draw_text(ch, c, pad);
    /* Bars rise from 0 when 0 is on the axis, else from the axis end nearest to 0. */
    double base = ch->ya.log      ? ch->ya.lo
                  : ch->ya.lo > 0 ? ch->ya.lo
                  : ch->ya.hi < 0 ? ch->ya.hi
                                  : 0;
    double pbase = chart_py(ch, base);
    int per = nnames ? nnames : 1;
    double bw = ch->slot_w * 0.8 / per;
    char buf[64];
    int decimals = chart_bar_decimals(ch);
    double *tops = malloc(ch->nbars * sizeof(*tops));
    if (!tops) {
        rc = plot_fail(ch->err, PLOT_ENOMEM, "out of memory laying out %d bars", ch->nbars);
        goto out_idx;
    }
    plot_canvas_clip(c, (int)a->x0, (int)a->y0, (int)a->x1, (int)a->y1);
    for (int i = 0; i < ch->nbars; i++) {
        struct chart_bar *b = &ch->bars[i];
        double x0 = a->x0 + ch->slot_w * (slot[i] + 0.1) + (nnames ? lab[i] * bw : 0);
        double pv = chart_py(ch, b->value);
        if (ch->ya.log && b->value <= 0)
            pv = pbase;
        pv = fmin(fmax(pv, a->y0), a->y1);
        b->color = plot_chart_color(nnames ? lab[i] : i);
        b->box[0] = round(x0);
        b->box[2] = round(x0 + bw) - (per > 1 ? 1 : 0);
        b->box[1] = round(fmin(pv, pbase));
        b->box[3] = round(fmax(pv, pbase));
        plot_canvas_rect(c, (int)b->box[0], (int)b->box[1], (int)b->box[2], (int)b->box[3],
                         b->color, 1);
        double top = pv, cx = (b->box[0] + b->box[2]) / 2;
        if (b->err > 0) {
            double e0 = chart_py(ch, b->value - b->err), e1 = chart_py(ch, b->value + b->err);
            double cap = fmin(bw * 0.3, 8);
            if (ch->ya.log && b->value - b->err <= 0)
                e0 = a->y1;
            plot_canvas_line(c, cx, e0, cx, e1, 1.5, CHART_INK);
            plot_canvas_line(c, cx - cap, e0, cx + cap, e0, 1.5, CHART_INK);
            plot_canvas_line(c, cx - cap, e1, cx + cap, e1, 1.5, CHART_INK);
            top = fmin(top, e1);
        }
        tops[i] = top;
    }
    plot_canvas_clip(c, 0, 0, ch->w, ch->h);
    for (int i = 0; i < ch->nbars; i++) { /* values above the bars, all with the same decimals */
        struct chart_bar *b = &ch->bars[i];
        double cx = (b->box[0] + b->box[2]) / 2;
        if (decimals >= 0)
            plot_fmt_fixed(b->value, decimals, buf, sizeof(buf));
        else
            snprintf(buf, sizeof(buf), "%.4g", b->value);
        double tw = plot_text_width(buf, ch->ts);
        double vs = tw <= bw + 4 ? ch->ts : plot_text_width(buf, 1) <= bw + 4 ? 1 : 0;
        if (vs > 0 && b->value >= base)
            plot_canvas_text(c, floor(cx - plot_text_width(buf, vs) / 2),
                             floor(fmax(tops[i], a->y0) - 4 - plot_text_height(vs)), buf, vs,
                             CHART_INK, PLOT_TEXT_RIGHT);
    }
    for (int s = 0; s < ch->nslots; s++) { /* slot names under the axis */
        double cx = a->x0 + ch->slot_w * (s + 0.5), tw = plot_text_width(ch->slots[s], ch->ts);
        double sc = tw <= ch->slot_w - 4 ? ch->ts : 1;
        plot_canvas_text(c, floor(cx - plot_text_width(ch->slots[s], sc) / 2), a->y1 + tick + 4,
                         ch->slots[s], sc, CHART_INK, PLOT_TEXT_RIGHT);
        int x = (int)floor(a->x0 + ch->slot_w * (s + 0.5));
        plot_canvas_rect(c, x, (int)a->y1, x + 1, (int)(a->y1 + tick), CHART_SPINE, 1);
    }
    chart_draw_spines(ch, c);
    if (nnames)
        chart_draw_legend_row(ch, c, names, nnames, legend_y);
    free(tops);
out_idx:
    free(slot);
    free(lab);
    return rc;
}

int plot_chart_render(struct plot_chart *ch, int w, int h, struct plot_canvas **out)
{
    *out = NULL;
    ch->rendered = 0;
    ch->err[0] = 0;
    if (w < 200 || h < 150 || w > 16384 || h > 16384)
        return plot_fail(ch->err, PLOT_EINVAL, "size %dx%d outside 200x150..16384x16384", w, h);
    struct plot_canvas *c = plot_canvas_create(w, h, CHART_BG);
    if (!c)
        return plot_fail(ch->err, PLOT_ENOMEM, "out of memory for a %dx%d canvas", w, h);
    ch->w = w;
    ch->h = h;
    int rc = ch->kind == PLOT_LINE ? chart_render_line(ch, c) : chart_render_bar(ch, c);
    if (rc) {
        plot_canvas_free(c);
        return rc;
    }
    ch->rendered = 1;
    *out = c;
    return 0;
}

/* ---- layout JSON ---- */

static json_t *chart_box_json(const struct chart_box *b)
{
    if (b->x1 == 0)
        return json_null();
    return json_pack("{s:f,s:f,s:f,s:f}", "x0", b->x0, "y0", b->y0, "x1", b->x1, "y1", b->y1);
}

static json_t *chart_axis_json(const struct plot_chart *ch, const struct plot_axis *a, int is_x)
{
    json_t *ticks = json_array();
    char buf[64];
    for (int i = 0; i < a->nticks; i++) {
        plot_axis_label(a, a->ticks[i], buf, sizeof(buf));
        double p = is_x ? chart_px(ch, a->ticks[i]) : chart_py(ch, a->ticks[i]);
        json_array_append_new(
            ticks, json_pack("{s:f,s:f,s:s}", "value", a->ticks[i], "px", p, "label", buf));
    }
    return json_pack("{s:f,s:f,s:b,s:o}", "lo", a->lo, "hi", a->hi, "log", a->log, "ticks", ticks);
}

static char *chart_color_hex(uint32_t c, char buf[8])
{
    snprintf(buf, 8, "#%06x", (unsigned)(c & 0xffffff));
    return buf;
}

size_t plot_chart_dropped(const struct plot_chart *ch)
{
    return ch->dropped;
}

char *plot_chart_layout_json(const struct plot_chart *ch)
{
    if (!ch->rendered)
        return NULL;
    char hex[8];
    json_t *j =
        json_pack("{s:s,s:i,s:i,s:o,s:o,s:o,s:o}", "kind", ch->kind == PLOT_LINE ? "line" : "bar",
                  "width", ch->w, "height", ch->h, "area", chart_box_json(&ch->area), "y",
                  chart_axis_json(ch, &ch->ya, 0), "legend", chart_box_json(&ch->legend), "title",
                  chart_box_json(&ch->title_at));
    if (!j)
        return NULL;
    if (ch->kind == PLOT_LINE) {
        json_t *ss = json_array();
        for (int s = 0; s < ch->nseries; s++)
            json_array_append_new(ss, json_pack("{s:s,s:s,s:I}", "label",
                                                ch->series[s].label ? ch->series[s].label : "",
                                                "color", chart_color_hex(plot_chart_color(s), hex),
                                                "points", (json_int_t)ch->series[s].n));
        json_object_set_new(j, "x", chart_axis_json(ch, &ch->xa, 1));
        json_object_set_new(j, "series", ss);
        json_object_set_new(j, "dropped", json_integer((json_int_t)ch->dropped));
    } else {
        json_t *bs = json_array();
        for (int i = 0; i < ch->nbars; i++) {
            const struct chart_bar *b = &ch->bars[i];
            json_t *o =
                json_pack("{s:s,s:f,s:f,s:s,s:f,s:f,s:f,s:f}", "label", b->label, "value", b->value,
                          "err", b->err, "color", chart_color_hex(b->color, hex), "x0", b->box[0],
                          "y0", b->box[1], "x1", b->box[2], "y1", b->box[3]);
            json_object_set_new(o, "group", b->group ? json_string(b->group) : json_null());
            json_array_append_new(bs, o);
        }
        json_object_set_new(j, "bars", bs);
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(j);
    return s;
}
