/*
 * plot/chart.h — line and bar charts drawn on a plot_canvas: title, axes with nice ticks (linear
 * or log-y), grid, axis labels, legend, up to PLOT_MAX_SERIES series in distinct colours.
 *
 * A chart collects its data (copied), then plot_chart_render() lays it out for a canvas size
 * and draws it. After a render the layout stays readable: plot_chart_map() turns data into
 * pixel coordinates and plot_chart_layout_json() describes the plot area, ticks, legend and
 * bars, which is what tests and scripts need to find things in the picture.
 *
 * Line charts draw each series through its points in order of x, with markers when a series
 * has few points; with smoothing K > 1 the raw series is drawn faint and its trailing mean over
 * K points solid. Bar charts draw one bar per value, with error bars and the value printed
 * above; bars with a group are placed side by side per group (groups along the axis, labels in
 * the legend), bars without one get a slot each with the label under it.
 */
#ifndef BD_PLOT_CHART_H
#define BD_PLOT_CHART_H

#include <stddef.h>
#include <stdint.h>

#include "plot/raster.h"

#define PLOT_MAX_SERIES 10 /* line series, or distinct bar labels in a grouped bar chart */
#define PLOT_MAX_BARS 256

enum plot_kind { PLOT_LINE, PLOT_BAR };

struct plot_chart;

/* An empty chart of the given kind; NULL when memory runs out. */
struct plot_chart *plot_chart_create(enum plot_kind kind);

/* Free the chart and everything it copied; NULL is a no-op. */
void plot_chart_free(struct plot_chart *ch);

/* The last error message (borrowed; "" when none). */
const char *plot_chart_errmsg(const struct plot_chart *ch);

/* The colour of series i (cycling through the palette). */
uint32_t plot_chart_color(int i);

/* Copy the title and axis labels (NULL or "" leaves one out). Returns 0 or PLOT_ENOMEM. */
int plot_chart_set_text(struct plot_chart *ch, const char *title, const char *xlabel,
                        const char *ylabel);

/* Log10 y axis: points with y <= 0 are left out (counted in the layout as "dropped"). */
void plot_chart_set_logy(struct plot_chart *ch, int on);

/* Fixed axis limits; NaN leaves that limit automatic. */
void plot_chart_set_xlim(struct plot_chart *ch, double lo, double hi);
void plot_chart_set_ylim(struct plot_chart *ch, double lo, double hi);

/* Smooth line series with a trailing mean over k points (k <= 1: off). */
void plot_chart_set_smooth(struct plot_chart *ch, int k);

/*
 * Add a line series (line charts): label and the n points (x[i], y[i]) are copied; points with
 * a non-finite coordinate are left out. Returns 0, PLOT_ELIMIT past PLOT_MAX_SERIES series,
 * PLOT_EINVAL on a bar chart, or PLOT_ENOMEM.
 */
int plot_chart_add_series(struct plot_chart *ch, const char *label, const double *x,
                          const double *y, size_t n);

/*
 * Add a bar (bar charts): group (NULL: none) and label are copied; err is the half-height of
 * the error bar (0 or NaN: none). Returns 0, PLOT_EINVAL (non-finite value, negative err, a
 * line chart), PLOT_ELIMIT past PLOT_MAX_BARS bars or PLOT_MAX_SERIES labels in groups, or
 * PLOT_ENOMEM.
 */
int plot_chart_add_bar(struct plot_chart *ch, const char *group, const char *label, double value,
                       double err);

/*
 * Lay the chart out on a w x h canvas and draw it into a new canvas that *out owns (free with
 * plot_canvas_free). Returns 0, PLOT_ENODATA when there is nothing to draw, PLOT_EINVAL for a
 * size under 200x150 or contradictory limits, or PLOT_ENOMEM; the message is in _errmsg().
 */
int plot_chart_render(struct plot_chart *ch, int w, int h, struct plot_canvas **out);

/* After a render: the pixel position of data point (x, y) (bar charts: y only, *px untouched). */
void plot_chart_map(const struct plot_chart *ch, double x, double y, double *px, double *py);

/* After a render: the number of points left out for having y <= 0 on a log axis. */
size_t plot_chart_dropped(const struct plot_chart *ch);

/* After a render: the layout as one line of JSON (malloc'd, caller frees), or NULL. */
char *plot_chart_layout_json(const struct plot_chart *ch);

#endif
