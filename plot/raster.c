/*
 * plot/raster.c — the chart canvas (see raster.h) over a cairo image surface.
 *
 * The surface is CAIRO_FORMAT_RGB24 (one native-endian 0x00RRGGBB word per pixel), which is
 * both what plot_canvas_get() reads back and what cairo writes as an 8-bit RGB PNG. Every
 * drawing call saves the cairo state, sets its own clip and restores it, so no call leaks
 * state into the next; every call ends with a flush so that reads see the pixels.
 *
 * Cairo keeps coordinates in 24.8 fixed point, so a point a data set maps far off the canvas
 * (a fixed axis limit, a huge outlier) would wrap around: polylines are cut to the canvas,
 * grown by the line width, before cairo sees them (Liang-Barsky clipping of each segment).
 *
 * Text goes through cairo's "toy" text API with PLOT_FONT_FAMILY, which fontconfig resolves to
 * the DejaVu Sans that deploy/install-deps.sh installs. Hinting is off, so a string's width
 * scales with its size and measuring (plot_text_width) agrees with drawing.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "plot/err.h"
#include "plot/raster.h"

#define CANVAS_MAX_DIM 16384

struct plot_canvas {
    int w, h;
    cairo_surface_t *surface; /* RGB24, w x h, owned */
    cairo_t *cr;              /* draws on surface, owned */
    int clip[4];              /* x0, y0, x1, y1: pixels that polylines, discs and text may touch */
};

struct plot_canvas *plot_canvas_create(int w, int h, uint32_t bg)
{
    if (w < 1 || h < 1 || w > CANVAS_MAX_DIM || h > CANVAS_MAX_DIM)
        return NULL;
    struct plot_canvas *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->w = w;
    c->h = h;
    c->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(c->surface) != CAIRO_STATUS_SUCCESS)
        goto out_surface;
    c->cr = cairo_create(c->surface);
    if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS)
        goto out_cr;
    c->clip[2] = w;
    c->clip[3] = h;
    plot_canvas_rect(c, 0, 0, w, h, bg, 1);
    return c;
out_cr:
    cairo_destroy(c->cr);
out_surface:
    cairo_surface_destroy(c->surface);
    free(c);
    return NULL;
}

void plot_canvas_free(struct plot_canvas *c)
{
    if (!c)
        return;
    cairo_destroy(c->cr);
    cairo_surface_destroy(c->surface);
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

uint32_t plot_canvas_get(const struct plot_canvas *c, int x, int y)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return UINT32_MAX;
    /* cairo_image_surface_get_data takes a non-const surface but only returns its pointer. */
    const unsigned char *data = cairo_image_surface_get_data(c->surface);
    int stride = cairo_image_surface_get_stride(c->surface);
    uint32_t px;
    memcpy(&px, data + (size_t)y * stride + (size_t)x * 4, sizeof(px));
    return px & 0xffffff;
}

/* cairo_write_func_t onto a FILE *. */
static cairo_status_t canvas_write_file(void *closure, const unsigned char *data,
                                        unsigned int length)
{
    return fwrite(data, 1, length, closure) == length ? CAIRO_STATUS_SUCCESS
                                                      : CAIRO_STATUS_WRITE_ERROR;
}

int plot_canvas_write_png(struct plot_canvas *c, const char *path, char *err)
{
    /* A cairo context that failed (out of memory mid-drawing) stops drawing: no half picture. */
    cairo_status_t drawn = cairo_status(c->cr);
    if (drawn != CAIRO_STATUS_SUCCESS)
        return plot_fail(err, drawn == CAIRO_STATUS_NO_MEMORY ? PLOT_ENOMEM : PLOT_EIO,
                         "cannot write '%s': drawing failed: %s", path,
                         cairo_status_to_string(drawn));
    FILE *f = fopen(path, "wb");
    if (!f)
        return plot_fail(err, PLOT_EIO, "cannot write '%s': %s", path, strerror(errno));
    errno = 0;
    cairo_status_t st = cairo_surface_write_to_png_stream(c->surface, canvas_write_file, f);
    int saved = errno;
    if (fclose(f) && st == CAIRO_STATUS_SUCCESS) {
        saved = errno;
        st = CAIRO_STATUS_WRITE_ERROR;
    }
    if (st == CAIRO_STATUS_SUCCESS)
        return 0;
    remove(path); /* no truncated PNG left behind */
    if (st == CAIRO_STATUS_NO_MEMORY)
        return plot_fail(err, PLOT_ENOMEM, "out of memory writing '%s'", path);
    return plot_fail(err, PLOT_EIO, "cannot write '%s': %s", path,
                     st == CAIRO_STATUS_WRITE_ERROR && saved ? strerror(saved)
                                                             : cairo_status_to_string(st));
}

void plot_canvas_clip(struct plot_canvas *c, int x0, int y0, int x1, int y1)
{
    c->clip[0] = x0 < 0 ? 0 : x0;
    c->clip[1] = y0 < 0 ? 0 : y0;
    c->clip[2] = x1 > c->w ? c->w : x1;
    c->clip[3] = y1 > c->h ? c->h : y1;
}

/* Start a drawing call: save the state, clip to the clip box, set the colour. */
static void canvas_begin(struct plot_canvas *c, uint32_t color, double alpha)
{
    cairo_save(c->cr);
    int w = c->clip[2] - c->clip[0], h = c->clip[3] - c->clip[1];
    cairo_rectangle(c->cr, c->clip[0], c->clip[1], w > 0 ? w : 0, h > 0 ? h : 0);
    cairo_clip(c->cr);
    cairo_set_source_rgba(c->cr, ((color >> 16) & 0xff) / 255.0, ((color >> 8) & 0xff) / 255.0,
                          (color & 0xff) / 255.0, alpha);
}

static void canvas_end(struct plot_canvas *c)
{
    cairo_restore(c->cr);
    cairo_surface_flush(c->surface);
}

void plot_canvas_rect(struct plot_canvas *c, int x0, int y0, int x1, int y1, uint32_t color,
                      double alpha)
{
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > c->w ? c->w : x1;
    y1 = y1 > c->h ? c->h : y1;
    if (x0 >= x1 || y0 >= y1 || !(alpha > 0))
        return;
    cairo_save(c->cr);
    cairo_set_source_rgba(c->cr, ((color >> 16) & 0xff) / 255.0, ((color >> 8) & 0xff) / 255.0,
                          (color & 0xff) / 255.0, alpha > 1 ? 1 : alpha);
    cairo_rectangle(c->cr, x0, y0, x1 - x0, y1 - y0);
    cairo_fill(c->cr);
    canvas_end(c);
}

/*
 * The point where the segment from (x0,y0) by (dx,dy) meets box edge `edge` (0 left, 1 right,
 * 2 top, 3 bottom of box), or the end point itself for edge -1 (t = 0) or 4 (t = 1). The
 * coordinate along the edge is the edge's own value, not x0 + t*dx, which loses every digit
 * when the ends lie 1e300 pixels apart.
 */
static void canvas_edge_point(double x0, double y0, double dx, double dy, const double box[4],
                              int edge, double t, double *x, double *y)
{
    if (edge < 0 || edge > 3) {
        *x = t == 0 ? x0 : x0 + dx;
        *y = t == 0 ? y0 : y0 + dy;
    } else if (edge < 2) {
        *x = box[edge == 0 ? 0 : 2];
        *y = y0 + (*x - x0) * (dy / dx);
    } else {
        *y = box[edge == 2 ? 1 : 3];
        *x = x0 + (*y - y0) * (dx / dy);
    }
}

/*
 * Cut the segment (x0,y0)-(x1,y1) to the box [bx0,bx1] x [by0,by1] (Liang-Barsky): returns 0
 * when nothing is left, else 1 with the part inside from (*ax,*ay) to (*bx,*by); *whole_end is
 * 1 when that part ends at (x1,y1) itself.
 */
static int canvas_cut(double x0, double y0, double x1, double y1, const double box[4], double *ax,
                      double *ay, double *bx, double *by, int *whole_end)
{
    double dx = x1 - x0, dy = y1 - y0;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {x0 - box[0], box[2] - x0, y0 - box[1], box[3] - y0};
    double t0 = 0, t1 = 1;
    int e0 = -1, e1 = 4;
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0)
                return 0;
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0 && r > t0) {
            t0 = r;
            e0 = i;
        } else if (p[i] > 0 && r < t1) {
            t1 = r;
            e1 = i;
        }
    }
    if (t0 > t1)
        return 0;
    canvas_edge_point(x0, y0, dx, dy, box, e0, t0, ax, ay);
    canvas_edge_point(x0, y0, dx, dy, box, e1, t1, bx, by);
    *whole_end = e1 == 4;
    return 1;
}

void plot_canvas_polyline(struct plot_canvas *c, const double *x, const double *y, size_t n,
                          double width, uint32_t color, double alpha)
{
    double m = width + 2;
    double box[4] = {-m, -m, c->w + m, c->h + m};
    canvas_begin(c, color, alpha);
    cairo_set_line_width(c->cr, width);
    cairo_set_line_cap(c->cr, CAIRO_LINE_CAP_ROUND);
    cairo_set_line_join(c->cr, CAIRO_LINE_JOIN_ROUND);
    cairo_new_path(c->cr);
    int pen = 0; /* the path's current point is where the next segment starts */
    for (size_t i = 0; i < n; i++) {
        int ok = !isnan(x[i]) && !isnan(y[i]);
        int prev = i > 0 && !isnan(x[i - 1]) && !isnan(y[i - 1]);
        int next = i + 1 < n && !isnan(x[i + 1]) && !isnan(y[i + 1]);
        if (ok && !prev && !next) {
            /* A lone point: a degenerate closed sub-path, which cairo strokes as a dot of the
             * line's width under round caps. */
            if (x[i] >= box[0] && x[i] <= box[2] && y[i] >= box[1] && y[i] <= box[3]) {
                cairo_move_to(c->cr, x[i], y[i]);
                cairo_close_path(c->cr);
            }
            pen = 0;
            continue;
        }
        if (!ok || !next) {
            pen = pen && ok;
            continue;
        }
        double ax, ay, bx, by;
        int whole_end;
        if (!canvas_cut(x[i], y[i], x[i + 1], y[i + 1], box, &ax, &ay, &bx, &by, &whole_end)) {
            pen = 0;
            continue;
        }
        if (!pen || ax != x[i] || ay != y[i])
            cairo_move_to(c->cr, ax, ay);
        cairo_line_to(c->cr, bx, by);
        pen = whole_end;
    }
    cairo_stroke(c->cr);
    canvas_end(c);
}

void plot_canvas_line(struct plot_canvas *c, double x0, double y0, double x1, double y1,
                      double width, uint32_t color)
{
    double x[2] = {x0, x1}, y[2] = {y0, y1};
    plot_canvas_polyline(c, x, y, 2, width, color, 1);
}

void plot_canvas_disc(struct plot_canvas *c, double cx, double cy, double r, uint32_t color)
{
    if (!(r > 0) || !isfinite(cx) || !isfinite(cy) || cx < -r || cy < -r || cx > c->w + r ||
        cy > c->h + r)
        return;
    canvas_begin(c, color, 1);
    cairo_arc(c->cr, cx, cy, r, 0, 2 * M_PI);
    cairo_fill(c->cr);
    canvas_end(c);
}

/* ---- text ---- */

/*
 * A copy of s (malloc'd, caller frees) that is valid UTF-8: each byte that does not start a
 * well-formed sequence (overlong forms, surrogates and code points past U+10FFFF included)
 * becomes U+FFFD. Cairo refuses a whole string over one bad byte, and labels come from file
 * names and command lines. NULL when memory runs out.
 */
static char *text_valid_utf8(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *d = malloc(3 * n + 1);
    if (!d)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned b = p[i];
        size_t len = b < 0x80                 ? 1
                     : b >= 0xc2 && b <= 0xdf ? 2
                     : b >= 0xe0 && b <= 0xef ? 3
                     : b >= 0xf0 && b <= 0xf4 ? 4
                                              : 0;
        int good = len > 0 && i + len <= n;
        for (size_t k = 1; good && k < len; k++)
            good = (p[i + k] & 0xc0) == 0x80;
        if (good && len == 3) /* no overlongs (E0 80..9F), no surrogates (ED A0..BF) */
            good = !(b == 0xe0 && p[i + 1] < 0xa0) && !(b == 0xed && p[i + 1] >= 0xa0);
        if (good && len == 4) /* no overlongs (F0 80..8F), nothing past U+10FFFF (F4 90..) */
            good = !(b == 0xf0 && p[i + 1] < 0x90) && !(b == 0xf4 && p[i + 1] >= 0x90);
        if (good) {
            memcpy(d + o, p + i, len);
            o += len;
            i += len;
        } else {
            memcpy(d + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    d[o] = 0;
    return d;
}

/*
 * Select the chart font on cr at the size whose cap height (that of 'H') is 7*scale pixels,
 * with hinting off so that widths scale linearly and measuring agrees with drawing.
 */
static void text_font(cairo_t *cr, double scale)
{
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
    cairo_select_font_face(cr, PLOT_FONT_FAMILY, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_text_extents_t e = {0};
    cairo_set_font_size(cr, 100);
    cairo_text_extents(cr, "H", &e);
    double cap = e.y_bearing < 0 ? -e.y_bearing / 100 : 0.73; /* DejaVu Sans: 0.729 em */
    cairo_set_font_size(cr, plot_text_height(scale) / cap);
}

void plot_canvas_text(struct plot_canvas *c, double x, double y, const char *s, double scale,
                      uint32_t color, enum plot_text_dir dir)
{
    if (!*s || !(scale > 0) || !isfinite(x) || !isfinite(y))
        return;
    char *u = text_valid_utf8(s);
    if (!u)
        return;
    canvas_begin(c, color, 1);
    text_font(c->cr, scale);
    double th = plot_text_height(scale);
    if (dir == PLOT_TEXT_UP) {
        cairo_text_extents_t e = {0};
        cairo_text_extents(c->cr, u, &e);
        cairo_translate(c->cr, x + th, y + e.x_advance);
        cairo_rotate(c->cr, -M_PI / 2);
        cairo_move_to(c->cr, 0, 0);
    } else {
        cairo_move_to(c->cr, x, y + th);
    }
    cairo_show_text(c->cr, u);
    canvas_end(c);
    free(u);
}

double plot_text_width(const char *s, double scale)
{
    if (!*s || !(scale > 0))
        return 0;
    char *u = text_valid_utf8(s);
    if (!u)
        return 0;
    /* Measuring needs a context but no canvas: a 1x1 scratch surface. */
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *cr = cairo_create(sf);
    text_font(cr, scale);
    cairo_text_extents_t e = {0};
    cairo_text_extents(cr, u, &e);
    cairo_destroy(cr);
    cairo_surface_destroy(sf);
    free(u);
    return e.x_advance;
}

double plot_text_height(double scale)
{
    return 7 * scale;
}

void plot_text_release(void)
{
    cairo_debug_reset_static_data(); /* drops cairo's font faces, which hold fontconfig patterns */
    FcFini();
}
