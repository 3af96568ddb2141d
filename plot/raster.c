/*
 * plot/raster.c — the canvas (see raster.h): pixels, the coverage mask and the shapes.
 *
 * Workload: one chart per process, a few thousand line segments and a few hundred glyphs on an
 * 800x500 canvas. Each shape scans only the pixels of its bounding box, so a chart draws in
 * milliseconds; the mask costs 4 bytes a pixel and lives as long as the canvas.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plot/font.h"
#include "plot/raster.h"

struct plot_canvas {
    int w, h;               /* size, pixels */
    uint8_t *rgb;           /* [h][w][3] pixels, top row first */
    float *mask;            /* [h][w] coverage 0..1 of the shape being drawn; 0 between shapes */
    int mx0, my0, mx1, my1; /* pixels [mx0,mx1) x [my0,my1) may hold non-zero mask */
    int cx0, cy0, cx1, cy1; /* clip: shapes touch only pixels [cx0,cx1) x [cy0,cy1) */
};

struct plot_canvas *plot_canvas_create(int w, int h, uint32_t bg)
{
    if (w < 1 || h < 1 || w > 16384 || h > 16384)
        return NULL;
    struct plot_canvas *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->w = w;
    c->h = h;
    c->rgb = malloc((size_t)w * h * 3);
    c->mask = calloc((size_t)w * h, sizeof(*c->mask));
    if (!c->rgb || !c->mask) {
        plot_canvas_free(c);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)w * h; i++) {
        c->rgb[3 * i] = (uint8_t)(bg >> 16);
        c->rgb[3 * i + 1] = (uint8_t)(bg >> 8);
        c->rgb[3 * i + 2] = (uint8_t)bg;
    }
    c->mx0 = c->w;
    c->my0 = c->h;
    c->cx1 = w;
    c->cy1 = h;
    return c;
}

void plot_canvas_free(struct plot_canvas *c)
{
    if (!c)
        return;
    free(c->rgb);
    free(c->mask);
    free(c);
}

int plot_canvas_width(const struct plot_canvas *c)
{
    return c->w;
}
int plot_canvas_height(const struct plot_canvas *c)
{
    return c->h;
}
const uint8_t *plot_canvas_rgb(const struct plot_canvas *c)
{
    return c->rgb;
}

uint32_t plot_canvas_get(const struct plot_canvas *c, int x, int y)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return UINT32_MAX;
    const uint8_t *p = c->rgb + ((size_t)y * c->w + x) * 3;
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* Mix color into pixel p with weight a (0..1). */
static void canvas_mix(uint8_t *p, uint32_t color, double a)
{
    int rgb[3] = {(int)(color >> 16 & 0xff), (int)(color >> 8 & 0xff), (int)(color & 0xff)};
    for (int k = 0; k < 3; k++)
        p[k] = (uint8_t)lrint(p[k] + (rgb[k] - p[k]) * a);
}

void plot_canvas_rect(struct plot_canvas *c, int x0, int y0, int x1, int y1, uint32_t color,
                      double alpha)
{
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > c->w ? c->w : x1;
    y1 = y1 > c->h ? c->h : y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            canvas_mix(c->rgb + ((size_t)y * c->w + x) * 3, color, alpha);
}

void plot_canvas_clip(struct plot_canvas *c, int x0, int y0, int x1, int y1)
{
    c->cx0 = x0 < 0 ? 0 : x0;
    c->cy0 = y0 < 0 ? 0 : y0;
    c->cx1 = x1 > c->w ? c->w : x1;
    c->cy1 = y1 > c->h ? c->h : y1;
}

/* Clip the box [*x0,*x1) x [*y0,*y1) to the clip box and grow the mask's dirty box by it. */
static int mask_box(struct plot_canvas *c, int *x0, int *y0, int *x1, int *y1)
{
    *x0 = *x0 < c->cx0 ? c->cx0 : *x0;
    *y0 = *y0 < c->cy0 ? c->cy0 : *y0;
    *x1 = *x1 > c->cx1 ? c->cx1 : *x1;
    *y1 = *y1 > c->cy1 ? c->cy1 : *y1;
    if (*x0 >= *x1 || *y0 >= *y1)
        return 0;
    c->mx0 = *x0 < c->mx0 ? *x0 : c->mx0;
    c->my0 = *y0 < c->my0 ? *y0 : c->my0;
    c->mx1 = *x1 > c->mx1 ? *x1 : c->mx1;
    c->my1 = *y1 > c->my1 ? *y1 : c->my1;
    return 1;
}

/* Blend the mask onto the pixels in color at opacity alpha, then clear it. */
static void mask_flush(struct plot_canvas *c, uint32_t color, double alpha)
{
    for (int y = c->my0; y < c->my1; y++) {
        float *m = c->mask + (size_t)y * c->w;
        for (int x = c->mx0; x < c->mx1; x++) {
            if (m[x] > 0)
                canvas_mix(c->rgb + ((size_t)y * c->w + x) * 3, color,
                           (m[x] > 1 ? 1 : m[x]) * alpha);
            m[x] = 0;
        }
    }
    c->mx0 = c->w;
    c->my0 = c->h;
    c->mx1 = c->my1 = 0;
}

/* Add the area that the rectangle [fx0,fx1) x [fy0,fy1) covers of each pixel to the mask. */
static void mask_add_rect(struct plot_canvas *c, double fx0, double fy0, double fx1, double fy1)
{
    if (!(fx0 < c->cx1 && fy0 < c->cy1 && fx1 > c->cx0 && fy1 > c->cy0))
        return; /* also drops NaN */
    fx0 = fmax(fx0, c->cx0);
    fy0 = fmax(fy0, c->cy0);
    fx1 = fmin(fx1, c->cx1);
    fy1 = fmin(fy1, c->cy1);
    int x0 = (int)floor(fx0), y0 = (int)floor(fy0), x1 = (int)ceil(fx1), y1 = (int)ceil(fy1);
    if (!mask_box(c, &x0, &y0, &x1, &y1))
        return;
    for (int y = y0; y < y1; y++) {
        double cy = fmin(y + 1, fy1) - fmax(y, fy0);
        for (int x = x0; x < x1; x++) {
            double cx = fmin(x + 1, fx1) - fmax(x, fx0);
            if (cx > 0 && cy > 0)
                c->mask[(size_t)y * c->w + x] += (float)(cx * cy);
        }
    }
}

/*
 * Clip the segment (*ax,*ay)-(*bx,*by) to the box [x0,x1] x [y0,y1] (Liang-Barsky), so that far
 * away end points (a value mapped off the axis) cost nothing and never overflow an int. A new
 * end point takes the boundary's coordinate exactly and the other one by interpolation from the
 * nearer old end point, which keeps it accurate when both ends lie far outside. Returns 0 when
 * nothing of the segment is in the box.
 */
static int segment_clip(double x0, double y0, double x1, double y1, double *ax, double *ay,
                        double *bx, double *by)
{
    double t0 = 0, t1 = 1, dx = *bx - *ax, dy = *by - *ay;
    double p[4] = {-dx, dx, -dy, dy}, q[4] = {*ax - x0, x1 - *ax, *ay - y0, y1 - *ay};
    double edge[4] = {x0, x1, y0, y1};
    int k0 = -1, k1 = -1;
    if (!isfinite(*ax) || !isfinite(*ay) || !isfinite(*bx) || !isfinite(*by))
        return 0;
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0)
                return 0;
            continue;
        }
        double t = q[i] / p[i];
        if (p[i] < 0 && t > t0) {
            t0 = t;
            k0 = i;
        } else if (p[i] > 0 && t < t1) {
            t1 = t;
            k1 = i;
        }
        if (t0 > t1)
            return 0;
    }
    double sx = *ax, sy = *ay, ex = *bx, ey = *by;
    if (k0 >= 0) {
        *ax = k0 < 2 ? edge[k0] : t0 < 0.5 ? sx + t0 * dx : ex - (1 - t0) * dx;
        *ay = k0 >= 2 ? edge[k0] : t0 < 0.5 ? sy + t0 * dy : ey - (1 - t0) * dy;
    }
    if (k1 >= 0) {
        *bx = k1 < 2 ? edge[k1] : t1 < 0.5 ? sx + t1 * dx : ex - (1 - t1) * dx;
        *by = k1 >= 2 ? edge[k1] : t1 < 0.5 ? sy + t1 * dy : ey - (1 - t1) * dy;
    }
    return 1;
}

/*
 * Raise the mask to the coverage of a capsule of radius r around the segment (ax,ay)-(bx,by):
 * a pixel whose centre is d from the segment is covered by clamp(r + 0.5 - d, 0, 1), which is
 * exact for a long edge crossing the pixel and close enough at the caps.
 */
static void mask_max_segment(struct plot_canvas *c, double ax, double ay, double bx, double by,
                             double r)
{
    if (!segment_clip(c->cx0 - r - 1, c->cy0 - r - 1, c->cx1 + r + 1, c->cy1 + r + 1, &ax, &ay, &bx,
                      &by))
        return;
    int x0 = (int)floor(fmin(ax, bx) - r - 1), x1 = (int)ceil(fmax(ax, bx) + r + 1);
    int y0 = (int)floor(fmin(ay, by) - r - 1), y1 = (int)ceil(fmax(ay, by) + r + 1);
    if (!mask_box(c, &x0, &y0, &x1, &y1))
        return;
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double thin = r < 0.5 ? 2 * r : 1; /* lines under a pixel wide fade instead of thinning */
    for (int y = y0; y < y1; y++) {
        for (int x = x0; x < x1; x++) {
            double px = x + 0.5 - ax, py = y + 0.5 - ay;
            double t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - t * dx, ey = py - t * dy;
            double cov = (fmax(r, 0.5) + 0.5 - sqrt(ex * ex + ey * ey)) * thin;
            float *m = c->mask + (size_t)y * c->w + x;
            if (cov > *m)
                *m = (float)(cov > 1 ? 1 : cov);
        }
    }
}

void plot_canvas_polyline(struct plot_canvas *c, const double *x, const double *y, size_t n,
                          double width, uint32_t color, double alpha)
{
    double r = width / 2;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]) || isnan(y[i]))
            continue;
        int has_prev = i > 0 && !isnan(x[i - 1]) && !isnan(y[i - 1]);
        int has_next = i + 1 < n && !isnan(x[i + 1]) && !isnan(y[i + 1]);
        if (has_next)
            mask_max_segment(c, x[i], y[i], x[i + 1], y[i + 1], r);
        else if (!has_prev)
            mask_max_segment(c, x[i], y[i], x[i], y[i], r);
    }
    mask_flush(c, color, alpha);
}

void plot_canvas_line(struct plot_canvas *c, double x0, double y0, double x1, double y1,
                      double width, uint32_t color)
{
    double xs[2] = {x0, x1}, ys[2] = {y0, y1};
    plot_canvas_polyline(c, xs, ys, 2, width, color, 1.0);
}

void plot_canvas_disc(struct plot_canvas *c, double cx, double cy, double r, uint32_t color)
{
    mask_max_segment(c, cx, cy, cx, cy, r);
    mask_flush(c, color, 1.0);
}

double plot_text_width(const char *s, double scale)
{
    int n = plot_utf8_len(s);
    return n ? ((double)n * PLOT_FONT_ADVANCE - (PLOT_FONT_ADVANCE - PLOT_FONT_W)) * scale : 0;
}

double plot_text_height(double scale)
{
    return PLOT_FONT_ASCENT * scale;
}

void plot_canvas_text(struct plot_canvas *c, double x, double y, const char *s, double scale,
                      uint32_t color, enum plot_text_dir dir)
{
    double tw = plot_text_width(s, scale);
    uint32_t cp;
    for (int i = 0; (cp = plot_utf8_next(&s)); i++) {
        const char *g = plot_font_glyph(cp);
        int rows = (int)strlen(g) / PLOT_FONT_W;
        for (int gy = 0; gy < rows; gy++) {
            for (int gx = 0; gx < PLOT_FONT_W; gx++) {
                if (g[gy * PLOT_FONT_W + gx] != '#')
                    continue;
                double u = ((double)i * PLOT_FONT_ADVANCE + gx) * scale, v = gy * scale;
                if (dir == PLOT_TEXT_UP) /* text u runs up from y + tw; v runs right from x */
                    mask_add_rect(c, x + v, y + tw - u - scale, x + v + scale, y + tw - u);
                else
                    mask_add_rect(c, x + u, y + v, x + u + scale, y + v + scale);
            }
        }
    }
    mask_flush(c, color, 1.0);
}
