/*
 * plot/axis.h — axis limits, "nice" tick values and tick labels, linear or log10.
 *
 * Linear axes take ticks at whole multiples of a step of 1, 2 or 5 times a power of ten, chosen
 * so that about `target` ticks span the data, and (unless a limit is fixed) widen the limits
 * out to the ticks around the data (Heckbert's "loose" labelling, Graphics Gems 1990). Log axes
 * take whole decades (every k-th one when there are many) or, when the data span two decades
 * or less, the 1-2-5 sequence, widened the same way; a decade then sits at the same distance
 * from the next wherever it is.
 */
#ifndef BD_PLOT_AXIS_H
#define BD_PLOT_AXIS_H

#include <stddef.h>

#define PLOT_MAX_TICKS 32

struct plot_axis {
    double lo, hi;                    /* limits shown, data units (lo < hi; > 0 on a log axis) */
    int log;                          /* 1: positions are linear in log10(value) */
    double step;                      /* linear: tick spacing, data units; log: 0 */
    int nticks;                       /* labelled ticks, ascending */
    double ticks[PLOT_MAX_TICKS];     /* values of the labelled ticks, data units */
    int nminor;                       /* unlabelled grid lines (log axes: 2..9 x 10^k) */
    double minor[8 * PLOT_MAX_TICKS]; /* their values, data units */
};

/*
 * Fill a with a linear axis over the data range [lo, hi] (lo <= hi, finite) aiming at about
 * target ticks; a limit with fix_lo / fix_hi set is kept exactly, the other is widened to a
 * tick. An empty range (lo == hi) is widened around the value first.
 */
void plot_axis_linear(struct plot_axis *a, double lo, double hi, int fix_lo, int fix_hi,
                      int target);

/* Fill a with a log10 axis over the data range [lo, hi] (0 < lo <= hi, finite); fixed limits as
 * above. */
void plot_axis_log(struct plot_axis *a, double lo, double hi, int fix_lo, int fix_hi);

/* Position of value v along the axis: 0 at lo, 1 at hi (outside for values beyond; NaN for v <= 0
 * on a log axis). */
double plot_axis_frac(const struct plot_axis *a, double v);

/*
 * The label of tick value v into buf (n bytes): as few digits as the tick spacing needs,
 * k/M/G suffixes from 10 000 up (token counts), e notation under 0.001 ("2e-5"); a log axis
 * reaching below 0.001 or to 100 000 labels every tick in e notation ("1e-5", "1e0", "1e2").
 */
void plot_axis_label(const struct plot_axis *a, double v, char *buf, size_t n);

/* Format v with at most `decimals` decimals, trailing zeros dropped ("0.5", "12", "-3.25"). */
void plot_fmt_num(double v, int decimals, char *buf, size_t n);

/* Format v with exactly `decimals` decimals ("0.800"); no "-0". */
void plot_fmt_fixed(double v, int decimals, char *buf, size_t n);

#endif
