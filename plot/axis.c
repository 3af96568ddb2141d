/*
 * plot/axis.c — tick selection and labels (see axis.h).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot/axis.h"

/* Relative slack when comparing a value with a tick, so 0.1*3 counts as 0.3. */
#define AXIS_EPS 1e-9

/* The 1-2-5 number nearest x (> 0): 1, 2 or 5 times a power of ten. */
static double axis_nice(double x)
{
    double e = floor(log10(x)), f = x / pow(10, e);
    double nf = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    return nf * pow(10, e);
}

void plot_axis_linear(struct plot_axis *a, double lo, double hi, int fix_lo, int fix_hi, int target)
{
    memset(a, 0, sizeof(*a));
    if (target < 2)
        target = 2;
    if (target > PLOT_MAX_TICKS / 2)
        target = PLOT_MAX_TICKS / 2;
    if (!(hi > lo)) { /* one value: widen by 10% of it (or by 1 around 0) */
        double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        if (!fix_lo || fix_hi)
            lo -= d;
        if (!fix_hi || fix_lo)
            hi += d;
        if (!(hi > lo))
            hi = lo + d;
    }
    double step = axis_nice((hi - lo) / (target - 1));
    if (!fix_lo)
        lo = floor(lo / step + AXIS_EPS) * step;
    if (!fix_hi)
        hi = ceil(hi / step - AXIS_EPS) * step;
    a->lo = lo;
    a->hi = hi;
    a->step = step;
    for (double k = ceil(lo / step - AXIS_EPS); k <= floor(hi / step + AXIS_EPS); k++) {
        if (a->nticks == PLOT_MAX_TICKS)
            break;
        double v = k * step;
        a->ticks[a->nticks++] = fabs(v) < step * AXIS_EPS ? 0 : v;
    }
}

/* Mantissas of the tick sequence used on short log axes. */
static const double axis_125[3] = {1, 2, 5};

void plot_axis_log(struct plot_axis *a, double lo, double hi, int fix_lo, int fix_hi)
{
    memset(a, 0, sizeof(*a));
    a->log = 1;
    if (!(hi > lo)) {
        if (!fix_lo || fix_hi)
            lo /= 2;
        if (!fix_hi || fix_lo)
            hi *= 2;
    }
    double e0 = floor(log10(lo) + AXIS_EPS), e1 = ceil(log10(hi) - AXIS_EPS);
    if (e1 <= e0)
        e1 = e0 + 1;
    if (e1 - e0 <= 2) { /* short: ticks at 1, 2, 5 x 10^k */
        double nlo = pow(10, e0), nhi = pow(10, e1);
        for (double e = e0; e <= e1; e++)
            for (int m = 0; m < 3; m++) {
                double v = axis_125[m] * pow(10, e);
                if (v <= lo * (1 + AXIS_EPS))
                    nlo = v;
                if (v >= hi * (1 - AXIS_EPS) && v < nhi)
                    nhi = v;
            }
        lo = fix_lo ? lo : nlo;
        hi = fix_hi ? hi : nhi;
        for (double e = e0; e <= e1; e++)
            for (int mant = 1; mant <= 9; mant++) {
                double v = mant * pow(10, e);
                if (v < lo * (1 - AXIS_EPS) || v > hi * (1 + AXIS_EPS))
                    continue;
                if ((mant == 1 || mant == 2 || mant == 5) && a->nticks < PLOT_MAX_TICKS)
                    a->ticks[a->nticks++] = v;
                else if (a->nminor < 8 * PLOT_MAX_TICKS)
                    a->minor[a->nminor++] = v;
            }
    } else { /* decades, every k-th labelled when there are more than 8 */
        int every = (int)ceil((e1 - e0) / 8);
        e0 = floor(e0 / every) * every;
        e1 = ceil(e1 / every) * every;
        lo = fix_lo ? lo : pow(10, e0);
        hi = fix_hi ? hi : pow(10, e1);
        for (double e = e0; e <= e1; e++) {
            double v = pow(10, e);
            int in = v >= lo * (1 - AXIS_EPS) && v <= hi * (1 + AXIS_EPS);
            if (in && fmod(e, every) == 0 && a->nticks < PLOT_MAX_TICKS)
                a->ticks[a->nticks++] = v;
            else if (in && a->nminor < 8 * PLOT_MAX_TICKS)
                a->minor[a->nminor++] = v;
            for (int mant = 2; every == 1 && e1 - e0 <= 6 && mant <= 9; mant++) {
                double m = mant * v;
                if (m >= lo && m <= hi && a->nminor < 8 * PLOT_MAX_TICKS)
                    a->minor[a->nminor++] = m;
            }
        }
    }
    a->lo = lo;
    a->hi = hi;
}

double plot_axis_frac(const struct plot_axis *a, double v)
{
    if (a->log)
        return v > 0 ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : NAN;
    return (v - a->lo) / (a->hi - a->lo);
}

void plot_fmt_num(double v, int decimals, char *buf, size_t n)
{
    snprintf(buf, n, "%.*f", decimals < 0 ? 0 : decimals > 12 ? 12 : decimals, v);
    if (strchr(buf, '.')) {
        size_t len = strlen(buf);
        while (len && buf[len - 1] == '0')
            buf[--len] = 0;
        if (len && buf[len - 1] == '.')
            buf[--len] = 0;
    }
    if (!strcmp(buf, "-0"))
        strcpy(buf, "0");
}

void plot_fmt_fixed(double v, int decimals, char *buf, size_t n)
{
    snprintf(buf, n, "%.*f", decimals < 0 ? 0 : decimals > 12 ? 12 : decimals, v);
    if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1))
        memmove(buf, buf + 1, strlen(buf));
}

/* v in e notation with a compact mantissa and exponent: 2.5e-05 -> "2.5e-5", 1e+06 -> "1e6". */
static void axis_fmt_exp(double v, char *buf, size_t n)
{
    char tmp[64], mant[32];
    snprintf(tmp, sizeof(tmp), "%.2e", v); /* "d.dde[+-]xx": 3 significant digits */
    char *e = strchr(tmp, 'e');
    if (!e) { /* inf or nan */
        snprintf(buf, n, "%s", tmp);
        return;
    }
    *e = 0;
    plot_fmt_num(strtod(tmp, NULL), 2, mant, sizeof(mant));
    snprintf(buf, n, "%se%d", mant, atoi(e + 1));
}

/* Decimals that show a difference of d (> 0): 0.2 -> 1, 0.05 -> 2, 3 -> 0. */
static int axis_decimals(double d)
{
    int k = (int)ceil(-log10(d) - AXIS_EPS);
    return k < 0 ? 0 : k;
}

void plot_axis_label(const struct plot_axis *a, double v, char *buf, size_t n)
{
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    if (a->log) { /* plain numbers when every tick is, else e notation for all */
        if (a->lo >= 1e-3 * (1 - AXIS_EPS) && a->hi < 1e5)
            plot_fmt_num(v, axis_decimals(v), buf, n);
        else
            axis_fmt_exp(v, buf, n);
        return;
    }
    double m = fmax(fabs(a->lo), fabs(a->hi));
    if (m >= 1e4) {
        double scale = m >= 1e9 ? 1e9 : m >= 1e6 ? 1e6 : 1e3;
        const char *sfx = m >= 1e9 ? "G" : m >= 1e6 ? "M" : "k";
        plot_fmt_num(v / scale, axis_decimals(a->step / scale), buf, n);
        if (strlen(buf) + 2 <= n)
            strcat(buf, sfx);
    } else if (m < 1e-3) {
        axis_fmt_exp(v, buf, n);
    } else {
        plot_fmt_num(v, axis_decimals(a->step), buf, n);
    }
}
