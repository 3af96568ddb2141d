/*
 * tests/test-plot.c — the plot/ module: the PNGs cairo writes from a canvas against a decoder
 * written here (chunk walk, CRC-32 computed bit by bit, zlib inflate, the five PNG filters
 * undone), text drawing and metrics, tick selection and labels, canvas drawing, chart geometry,
 * and the argument and file parsers.
 * The end-to-end checks of `bitdistill plot` (pngcheck, pngjs) are tests/test-plot-cli.sh.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "plot/axis.h"
#include "plot/chart.h"
#include "plot/data.h"
#include "plot/err.h"
#include "plot/raster.h"
#include "tests/tap.h"

/* Pixel tolerance of chart geometry checks: positions are rounded to whole pixels. */
#define GEOM_TOL_PX 1.5

/* ---- an independent PNG decoder (8-bit RGB, non-interlaced only) ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* CRC-32 (ISO-HDLC, reflected 0xEDB88320) one bit at a time, as in the PNG specification's annex.
 */
static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/*
 * Decode png into *rgb (malloc'd) and its size; filters_seen gets a bit per filter type used.
 * Returns NULL on success or a static description of the first defect.
 */
static const char *decode_png(const uint8_t *png, size_t n, uint8_t **rgb, int *w, int *h,
                              unsigned *filters_seen)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *idat = NULL;
    size_t idat_len = 0, pos = 8;
    int seen_ihdr = 0, seen_iend = 0;
    *rgb = NULL;
    if (n < 8 || memcmp(png, sig, 8))
        return "bad signature";
    while (pos + 12 <= n && !seen_iend) {
        uint32_t len = be32(png + pos);
        const uint8_t *type = png + pos + 4, *data = png + pos + 8;
        if (pos + 12 + len > n)
            return "chunk runs past the end";
        if (crc_bitwise(type, len + 4) != be32(data + len))
            return "bad chunk CRC";
        if (!memcmp(type, "IHDR", 4)) {
            if (len != 13 || pos != 8)
                return "IHDR not first or wrong length";
            *w = (int)be32(data);
            *h = (int)be32(data + 4);
            if (data[8] != 8 || data[9] != 2 || data[10] || data[11] || data[12])
                return "not 8-bit RGB non-interlaced";
            seen_ihdr = 1;
        } else if (!memcmp(type, "IDAT", 4)) {
            uint8_t *ni = realloc(idat, idat_len + len + 1);
            if (!ni)
                return "out of memory";
            idat = ni;
            memcpy(idat + idat_len, data, len);
            idat_len += len;
        } else if (!memcmp(type, "IEND", 4)) {
            seen_iend = 1;
        } else if (!(type[0] & 0x20)) {
            return "unknown critical chunk";
        }
        pos += 12 + len;
    }
    if (!seen_ihdr || !seen_iend || pos != n) {
        free(idat);
        return "missing IHDR/IEND or trailing bytes";
    }
    size_t stride = (size_t)*w * 3;
    uLongf raw_len = (uLongf)(*h * (stride + 1));
    uint8_t *raw = malloc(raw_len), *out = malloc(stride * *h);
    if (!raw || !out || uncompress(raw, &raw_len, idat, idat_len) != Z_OK ||
        raw_len != (uLongf)(*h * (stride + 1))) {
        free(idat);
        free(raw);
        free(out);
        return "IDAT does not inflate to h*(1+3w) bytes";
    }
    free(idat);
    *filters_seen = 0;
    for (int y = 0; y < *h; y++) {
        const uint8_t *src = raw + y * (stride + 1);
        uint8_t *dst = out + y * stride, *up = y ? dst - stride : NULL;
        if (src[0] > 4) {
            free(raw);
            free(out);
            return "bad filter type";
        }
        *filters_seen |= 1u << src[0];
        for (size_t i = 0; i < stride; i++) {
            int a = i >= 3 ? dst[i - 3] : 0, b = up ? up[i] : 0, c = up && i >= 3 ? up[i - 3] : 0;
            int pred = src[0] == 1   ? a
                       : src[0] == 2 ? b
                       : src[0] == 3 ? (a + b) / 2
                       : src[0] == 4 ? paeth(a, b, c)
                                     : 0;
            dst[i] = (uint8_t)(src[1 + i] + pred);
        }
    }
    free(raw);
    *rgb = out;
    return NULL;
}

/* Write c to a file, read it back and decode it here; 1 when every pixel matches. */
static int png_round_trip(struct plot_canvas *c, const char *path, const char **why)
{
    char err[PLOT_ERR_LEN] = "";
    int w = plot_canvas_width(c), h = plot_canvas_height(c), dw = 0, dh = 0, same = 1;
    if (plot_canvas_write_png(c, path, err)) {
        *why = "write failed";
        TAP_DIAG("%s", err);
        return 0;
    }
    FILE *f = fopen(path, "rb");
    uint8_t *png = malloc(64 << 20), *back = NULL;
    size_t n = f && png ? fread(png, 1, 64 << 20, f) : 0;
    if (f)
        fclose(f);
    unsigned filters;
    *why = n ? decode_png(png, n, &back, &dw, &dh, &filters) : "cannot read the file back";
    free(png);
    if (*why)
        return 0;
    for (int y = 0; y < h && same && dw == w && dh == h; y++)
        for (int x = 0; x < w && same; x++) {
            const uint8_t *p = back + ((size_t)y * w + x) * 3;
            uint32_t want = plot_canvas_get(c, x, y);
            same = ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) == want;
            if (!same)
                TAP_DIAG("pixel (%d,%d): file %02x%02x%02x, canvas %06x", x, y, p[0], p[1], p[2],
                         (unsigned)want);
        }
    free(back);
    *why = dw != w || dh != h ? "size differs" : same ? "ok" : "pixels differ";
    return dw == w && dh == h && same;
}

static void test_png(void)
{
    static const int sizes[][2] = {{1, 1}, {2, 3}, {15, 17}, {17, 15}, {64, 33}, {300, 7}};
    char dir[] = "/tmp/bd-test-png-XXXXXX", path[128];
    if (!mkdtemp(dir))
        TAP_BAIL("mkdtemp failed");
    snprintf(path, sizeof(path), "%s/c.png", dir);
    uint64_t seed = 12345;
    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
        int w = sizes[t][0], h = sizes[t][1];
        struct plot_canvas *c = plot_canvas_create(w, h, 0x336699);
        /* Flat runs, single pixels of noise, an anti-aliased line and text: every kind of row. */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if ((x + y) % 7 == 0) {
                    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                    plot_canvas_rect(c, x, y, x + 1, y + 1, (uint32_t)(seed >> 40) & 0xffffff, 1);
                }
        plot_canvas_line(c, 0.3, 0.2, w - 0.4, h - 0.7, 1.3, 0xff8800);
        plot_canvas_text(c, 1, 1, "Ag", 1, 0x000000, PLOT_TEXT_RIGHT);
        const char *why = "";
        int same = png_round_trip(c, path, &why);
        TAP_OK(same, "png %dx%d decodes to the canvas' pixels (%s)", w, h, why);
        plot_canvas_free(c);
    }
    struct plot_canvas *c = plot_canvas_create(4, 4, 0);
    char err[PLOT_ERR_LEN] = "";
    int rc = plot_canvas_write_png(c, "/nonexistent-dir/x.png", err);
    TAP_OK(rc == PLOT_EIO && strstr(err, "/nonexistent-dir/x.png") && strstr(err, "No such file"),
           "png write error names the path and the cause: %s", err);
    plot_canvas_free(c);
    remove(path);
    rmdir(dir);
}

/* ---- text ---- */

/* Ink (pixels not white) of canvas c: count, and its bounding box [x0,x1) x [y0,y1). */
static int ink_box(const struct plot_canvas *c, int box[4])
{
    int n = 0;
    box[0] = box[1] = 1 << 20;
    box[2] = box[3] = -1;
    for (int y = 0; y < plot_canvas_height(c); y++)
        for (int x = 0; x < plot_canvas_width(c); x++)
            if (plot_canvas_get(c, x, y) != 0xffffff) {
                n++;
                box[0] = x < box[0] ? x : box[0];
                box[1] = y < box[1] ? y : box[1];
                box[2] = x + 1 > box[2] ? x + 1 : box[2];
                box[3] = y + 1 > box[3] ? y + 1 : box[3];
            }
    return n;
}

/* Text s alone on a white w x h canvas at (x, y): a new canvas the caller frees. */
static struct plot_canvas *text_alone(const char *s, double scale, enum plot_text_dir dir)
{
    struct plot_canvas *c = plot_canvas_create(120, 120, 0xffffff);
    plot_canvas_text(c, 20, 20, s, scale, 0x000000, dir);
    return c;
}

/* Whether two canvases of the same size hold the same pixels. */
static int same_pixels(const struct plot_canvas *a, const struct plot_canvas *b)
{
    for (int y = 0; y < plot_canvas_height(a); y++)
        for (int x = 0; x < plot_canvas_width(a); x++)
            if (plot_canvas_get(a, x, y) != plot_canvas_get(b, x, y))
                return 0;
    return 1;
}

static void test_text(void)
{
    int box[4];
    /* "H" has no descender and no side bearing to speak of: its ink is its cap box. */
    struct plot_canvas *c = text_alone("H", 2, PLOT_TEXT_RIGHT);
    int n = ink_box(c, box);
    TAP_OK(n > 20 && abs(box[1] - 20) <= 1 && abs(box[3] - (20 + 14)) <= 1,
           "'H' at scale 2: cap top to baseline is 14 px (ink rows %d..%d)", box[1], box[3]);
    TAP_OK(box[0] >= 20 && box[2] <= 20 + (int)ceil(plot_text_width("H", 2)),
           "'H' ink within its advance width (%d..%d, width %.1f)", box[0], box[2],
           plot_text_width("H", 2));
    plot_canvas_free(c);

    /* "Ag" descends below the box by less than half a line; nothing above or left of it. */
    c = text_alone("Ag", 2, PLOT_TEXT_RIGHT);
    ink_box(c, box);
    TAP_OK(box[0] >= 19 && box[1] >= 19 && box[3] > 34 && box[3] <= 34 + 7 &&
               box[2] <= 20 + (int)ceil(plot_text_width("Ag", 2)) + 1,
           "'Ag': ink in its box, the descender below it (%d,%d)-(%d,%d)", box[0], box[1], box[2],
           box[3]);
    plot_canvas_free(c);

    /* Upward text: the same box turned on its side, reading bottom to top. */
    const char *s = "loss";
    double tw = plot_text_width(s, 2), th = plot_text_height(2);
    c = text_alone(s, 2, PLOT_TEXT_UP);
    ink_box(c, box);
    TAP_OK(box[0] >= 19 && box[1] >= 19 && box[2] <= 20 + th + 5 && box[3] <= 20 + tw + 1 &&
               box[3] - box[1] > tw - 4 && box[2] - box[0] < box[3] - box[1],
           "upward text lies in its turned box, taller than wide (%d,%d)-(%d,%d)", box[0], box[1],
           box[2], box[3]);
    plot_canvas_free(c);

    /* Metrics: hinting is off, so widths scale with the size and add up along the string. */
    double w1 = plot_text_width("ab", 1), w2 = plot_text_width("ab", 2);
    TAP_OK(w1 > 6 && fabs(w2 - 2 * w1) < 0.05 && fabs(plot_text_width("abab", 1) - 2 * w1) < 0.05 &&
               plot_text_width("", 3) == 0 && plot_text_height(2) == 14,
           "text metrics: 'ab' %.2f px at 1, %.2f at 2, '' 0, height 7 per scale", w1, w2);

    /* The chart font has the symbols results need: each draws its own glyph, none the
     * replacement box that a font without them (or a bad byte) gets. */
    static const char *const sym[] = {"\xc2\xb1", "\xce\xb1",     "\xce\xb2",    "\xce\xb3",
                                      "\xce\xbb", "\xe2\x80\x94", "\xef\xbf\xbd"};
    enum { NSYM = sizeof(sym) / sizeof(sym[0]) };
    struct plot_canvas *g[NSYM];
    int distinct = 1, inked = 1;
    for (int i = 0; i < NSYM; i++) {
        g[i] = text_alone(sym[i], 3, PLOT_TEXT_RIGHT);
        inked &= ink_box(g[i], box) > 10;
        for (int k = 0; k < i; k++)
            distinct &= !same_pixels(g[i], g[k]);
    }
    TAP_OK(inked && distinct, "± α β γ λ — and U+FFFD each draw ink, all different");
    c = text_alone("\xff", 3, PLOT_TEXT_RIGHT);
    TAP_OK(same_pixels(c, g[NSYM - 1]), "a byte that is not UTF-8 draws as U+FFFD");
    plot_canvas_rect(c, 0, 0, 2, 2, 0xff0000, 1);
    TAP_OK(plot_canvas_get(c, 1, 1) == 0xff0000, "the canvas still draws after a bad byte");
    plot_canvas_free(c);
    for (int i = 0; i < NSYM; i++)
        plot_canvas_free(g[i]);
    c = text_alone("F", 2, PLOT_TEXT_RIGHT);
    struct plot_canvas *l = text_alone("L", 2, PLOT_TEXT_RIGHT);
    TAP_OK(!same_pixels(c, l), "'F' and 'L' differ");
    plot_canvas_free(c);
    plot_canvas_free(l);
}

/* ---- axes ---- */

static int ticks_are(const struct plot_axis *a, const double *want, int n)
{
    if (a->nticks != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (fabs(a->ticks[i] - want[i]) > 1e-9 * fmax(1, fabs(want[i])))
            return 0;
    return 1;
}

static void test_axis(void)
{
    struct plot_axis a;
    char buf[64];
    static const double t01[] = {0, 0.2, 0.4, 0.6, 0.8, 1};
    plot_axis_linear(&a, 0, 1, 0, 0, 6);
    TAP_OK(a.lo == 0 && a.hi == 1 && ticks_are(&a, t01, 6), "linear [0,1]: 0, 0.2, ..., 1");
    plot_axis_linear(&a, 0.013, 0.97, 0, 0, 6);
    TAP_OK(a.lo == 0 && fabs(a.hi - 1) < 1e-12 && ticks_are(&a, t01, 6),
           "linear [0.013,0.97] widens to [0,1]");
    plot_axis_linear(&a, 3, 597, 0, 0, 7);
    TAP_OK(a.lo == 0 && a.hi == 600 && a.step == 100 && a.nticks == 7,
           "linear [3,597]: [0,600] by 100 (got [%g,%g] by %g)", a.lo, a.hi, a.step);
    plot_axis_linear(&a, 0.5, 0.93, 1, 0, 6);
    TAP_OK(a.lo == 0.5 && a.hi >= 0.93 && a.ticks[0] == 0.5, "fixed lower limit kept: %g", a.lo);
    plot_axis_linear(&a, 3, 3, 0, 0, 5);
    TAP_OK(a.lo < 3 && a.hi > 3 && a.nticks >= 2, "one value widened: [%g,%g]", a.lo, a.hi);
    plot_axis_linear(&a, -0.3, 0.3, 0, 0, 7);
    plot_axis_label(&a, a.ticks[3], buf, sizeof(buf));
    TAP_OK(!strcmp(buf, "0"), "tick at zero labelled 0 (not -0): '%s'", buf);
    plot_axis_linear(&a, 0, 0.92, 0, 0, 6);
    plot_axis_label(&a, a.ticks[1], buf, sizeof(buf));
    TAP_OK(!strcmp(buf, "0.2"), "label 0.2: '%s'", buf);
    plot_axis_linear(&a, 0, 2.5e6, 0, 0, 6);
    plot_axis_label(&a, 1.5e6, buf, sizeof(buf));
    TAP_OK(!strcmp(buf, "1.5M"), "token counts in M: '%s'", buf);
    plot_axis_linear(&a, 1e-5, 1e-4, 0, 0, 6);
    plot_axis_label(&a, a.ticks[1], buf, sizeof(buf));
    TAP_OK(!strcmp(buf, "2e-5"), "learning rates in e notation: '%s'", buf);

    static const double dec[] = {1, 10, 100, 1000};
    plot_axis_log(&a, 1.3, 870, 0, 0);
    TAP_OK(a.log && a.lo == 1 && a.hi == 1000 && ticks_are(&a, dec, 4),
           "log [1.3,870]: decades 1..1000");
    double f1 = plot_axis_frac(&a, 10), f2 = plot_axis_frac(&a, 100);
    TAP_OK(fabs(f1 - 1.0 / 3) < 1e-12 && fabs(f2 - 2.0 / 3) < 1e-12,
           "log: decades evenly spaced (%g, %g)", f1, f2);
    TAP_OK(a.nminor == 24, "log: minor lines at 2..9 per decade (%d)", a.nminor);
    plot_axis_label(&a, 1000, buf, sizeof(buf));
    TAP_OK(!strcmp(buf, "1000"), "log label 1000: '%s'", buf);
    static const double s125[] = {0.2, 0.5, 1, 2, 5};
    plot_axis_log(&a, 0.31, 4.2, 0, 0);
    TAP_OK(ticks_are(&a, s125, 5) && fabs(a.lo - 0.2) < 1e-12 && a.hi == 5,
           "log over one decade: 0.2, 0.5, 1, 2, 5 (got %d ticks, [%g,%g])", a.nticks, a.lo, a.hi);
    plot_axis_log(&a, 1e-12, 1e3, 0, 0);
    TAP_OK(a.nticks <= 9 && a.nticks >= 5, "log over 15 decades: %d labelled ticks", a.nticks);
    plot_axis_label(&a, 1e-6, buf, sizeof(buf));
    TAP_OK(!strcmp(buf, "1e-6"), "log label 1e-6: '%s'", buf);
    plot_fmt_fixed(-0.0001, 2, buf, sizeof(buf));
    TAP_OK(!strcmp(buf, "0.00"), "fixed format drops -0: '%s'", buf);
}

/* ---- canvas ---- */

static void test_raster(void)
{
    struct plot_canvas *c = plot_canvas_create(40, 30, 0xffffff);
    TAP_OK(c && plot_canvas_get(c, 0, 0) == 0xffffff && plot_canvas_get(c, 40, 0) == UINT32_MAX,
           "canvas filled with the background; outside reads UINT32_MAX");
    TAP_OK(!plot_canvas_create(0, 10, 0) && !plot_canvas_create(10, 20000, 0),
           "canvas of bad size refused");
    plot_canvas_rect(c, 2, 3, 5, 6, 0xff0000, 1);
    int in = plot_canvas_get(c, 2, 3) == 0xff0000 && plot_canvas_get(c, 4, 5) == 0xff0000;
    int out = plot_canvas_get(c, 5, 5) == 0xffffff && plot_canvas_get(c, 4, 6) == 0xffffff &&
              plot_canvas_get(c, 1, 3) == 0xffffff;
    TAP_OK(in && out, "rect fills [x0,x1) x [y0,y1) exactly");
    plot_canvas_line(c, 5, 20.5, 35, 20.5, 1, 0x000000);
    TAP_OK(plot_canvas_get(c, 20, 20) == 0 && plot_canvas_get(c, 20, 18) == 0xffffff &&
               plot_canvas_get(c, 20, 22) == 0xffffff,
           "1-px horizontal line on a pixel centre is one solid row");
    plot_canvas_free(c);

    c = plot_canvas_create(100, 100, 0xffffff);
    plot_canvas_line(c, 10, 10, 90, 90, 2, 0x0000ff);
    int on = 0, off = 0;
    for (int i = 12; i < 88; i++) {
        on += plot_canvas_get(c, i, i) == 0x0000ff;
        off += plot_canvas_get(c, i, 100 - i) != 0xffffff && abs(i - 50) > 3;
    }
    TAP_OK(on == 76 && off == 0,
           "diagonal line: solid on the diagonal (%d/76), nothing on the other (%d)", on, off);
    uint32_t edge = plot_canvas_get(c, 52, 50);
    TAP_OK(edge != 0x0000ff && edge != 0xffffff && (edge & 0xff) == 0xff,
           "diagonal line edges are anti-aliased (0x%06x)", edge);
    plot_canvas_clip(c, 0, 0, 50, 100);
    plot_canvas_line(c, 10, 70, 90, 70, 3, 0xff0000);
    plot_canvas_clip(c, 0, 0, 100, 100);
    TAP_OK(plot_canvas_get(c, 30, 70) == 0xff0000 && plot_canvas_get(c, 60, 70) == 0xffffff,
           "clip box limits a line");
    plot_canvas_line(c, -1e300, 5.5, 1e300, 5.5, 1, 0x00ff00);
    TAP_OK(plot_canvas_get(c, 50, 5) == 0x00ff00,
           "a line between far-away end points is clipped, not lost");
    plot_canvas_free(c);

    /* Clipping applies to text as well. */
    c = plot_canvas_create(60, 30, 0xffffff);
    plot_canvas_clip(c, 0, 0, 20, 30);
    plot_canvas_text(c, 2, 5, "HHHHHH", 2, 0, PLOT_TEXT_RIGHT);
    plot_canvas_clip(c, 0, 0, 60, 30);
    int box[4];
    ink_box(c, box);
    TAP_OK(box[2] <= 20 && box[2] > 10, "clip box limits text (ink ends at x = %d)", box[2]);
    plot_canvas_free(c);
}

/* ---- charts ---- */

/* Whether some pixel within r of (x, y) has colour col. */
static int near_color(const struct plot_canvas *c, double x, double y, int r, uint32_t col)
{
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (plot_canvas_get(c, (int)floor(x) + dx, (int)floor(y) + dy) == col)
                return 1;
    return 0;
}

static void test_chart_line(void)
{
    struct plot_chart *ch = plot_chart_create(PLOT_LINE);
    struct plot_canvas *c = NULL;
    double x[101], y[101];
    for (int i = 0; i <= 100; i++)
        x[i] = y[i] = i / 100.0;
    plot_chart_set_text(ch, "y = x", "x", "y");
    TAP_OK(plot_chart_add_series(ch, "diag", x, y, 101) == 0, "add a series");
    TAP_OK(plot_chart_render(ch, 800, 500, &c) == 0, "render 800x500 (%s)", plot_chart_errmsg(ch));
    uint32_t col = plot_chart_color(0);
    double px, py, qx, qy;
    int on = 0, off = 0;
    for (int i = 5; i <= 95; i += 5) {
        double t = i / 100.0;
        plot_chart_map(ch, t, t, &px, &py);
        on += near_color(c, px, py, 1, col);
        plot_chart_map(ch, t, t > 0.5 ? t - 0.3 : t + 0.3, &qx, &qy);
        off += near_color(c, qx, qy, 3, col);
    }
    TAP_OK(on == 19 && off == 0, "y=x: series colour on the diagonal (%d/19), not off it (%d)", on,
           off);
    plot_chart_map(ch, 0, 0, &px, &py);
    plot_chart_map(ch, 1, 1, &qx, &qy);
    TAP_OK(qx - px > 600 && py - qy > 300, "plot area spans most of the canvas (%.0fx%.0f)",
           qx - px, py - qy);
    char *j = plot_chart_layout_json(ch);
    TAP_OK(j && strstr(j, "\"kind\":\"line\"") && strstr(j, "\"label\":\"diag\""),
           "layout JSON names the kind and the series");
    free(j);
    plot_canvas_free(c);

    /* Log y: y = 10^x for x = 0..3 is a straight line from corner to corner. */
    struct plot_chart *lg = plot_chart_create(PLOT_LINE);
    double lx[4] = {0, 1, 2, 3}, ly[4] = {1, 10, 100, 1000};
    plot_chart_add_series(lg, NULL, lx, ly, 4);
    plot_chart_set_logy(lg, 1);
    TAP_OK(plot_chart_render(lg, 800, 500, &c) == 0, "render log-y chart");
    double p[4];
    for (int i = 0; i < 4; i++)
        plot_chart_map(lg, lx[i], ly[i], &px, &p[i]);
    TAP_OK(fabs((p[0] - p[1]) - (p[1] - p[2])) < 1e-6 &&
               fabs((p[1] - p[2]) - (p[2] - p[3])) < 1e-6 && p[0] - p[1] > 50,
           "log y: decades evenly spaced (%.1f, %.1f, %.1f px)", p[0] - p[1], p[1] - p[2],
           p[2] - p[3]);
    int markers = 0; /* 2.5 px above and below the inner points: past the 2-px line, in a marker */
    for (int i = 1; i < 3; i++) {
        plot_chart_map(lg, lx[i], ly[i], &px, &py);
        markers += plot_canvas_get(c, (int)floor(px), (int)floor(py - 2.5)) == plot_chart_color(0);
        markers += plot_canvas_get(c, (int)floor(px), (int)floor(py + 2.5)) == plot_chart_color(0);
    }
    TAP_OK(markers == 4, "few points get markers (%d/4 probes)", markers);
    plot_canvas_free(c);
    plot_chart_free(lg);

    /* Errors. */
    struct plot_chart *e = plot_chart_create(PLOT_LINE);
    TAP_OK(plot_chart_render(e, 800, 500, &c) == PLOT_ENODATA && !c, "empty chart: %s",
           plot_chart_errmsg(e));
    double neg[2] = {-1, 0};
    plot_chart_add_series(e, "neg", lx, neg, 2);
    plot_chart_set_logy(e, 1);
    TAP_OK(plot_chart_render(e, 800, 500, &c) == PLOT_ENODATA &&
               strstr(plot_chart_errmsg(e), "above 0"),
           "log y with no positive y: %s", plot_chart_errmsg(e));
    int rc = 0;
    for (int i = 0; i < PLOT_MAX_SERIES; i++)
        rc = plot_chart_add_series(e, "s", lx, ly, 4);
    TAP_OK(rc == PLOT_ELIMIT, "series %d refused: %s", PLOT_MAX_SERIES + 1, plot_chart_errmsg(e));
    TAP_OK(plot_chart_render(e, 100, 100, &c) == PLOT_EINVAL, "tiny canvas refused: %s",
           plot_chart_errmsg(e));
    TAP_OK(plot_chart_add_bar(e, NULL, "a", 1, 0) == PLOT_EINVAL, "bars refused by a line chart");
    plot_chart_free(e);
    plot_chart_free(ch);
}

static void test_chart_bar(void)
{
    struct plot_chart *ch = plot_chart_create(PLOT_BAR);
    struct plot_canvas *c = NULL;
    plot_chart_set_text(ch, "bars", NULL, "value");
    plot_chart_add_bar(ch, NULL, "a", 1, 0);
    plot_chart_add_bar(ch, NULL, "b", 2, 0.1);
    plot_chart_add_bar(ch, NULL, "c", 4, 0);
    TAP_OK(plot_chart_render(ch, 800, 500, &c) == 0, "render bars (%s)", plot_chart_errmsg(ch));
    /* Measure each bar by scanning its centre column up from the axis for its colour. */
    double y0, hgt[3];
    plot_chart_map(ch, 0, 0, NULL, &y0);
    char *j = plot_chart_layout_json(ch);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof(key), "\"label\":\"%c\"", 'a' + i);
        const char *p = strstr(j, key), *x0s = p ? strstr(p, "\"x0\":") : NULL,
                   *x1s = p ? strstr(p, "\"x1\":") : NULL;
        int cx = x0s && x1s ? (int)atof(x0s + 5) + 2 : 0, n = 0; /* clear of the error bar */
        (void)x1s;
        for (int y = (int)y0 - 1; y > 0 && plot_canvas_get(c, cx, y) == plot_chart_color(i); y--)
            n++;
        hgt[i] = n;
    }
    free(j);
    TAP_OK(hgt[0] > 20 && fabs(hgt[1] - 2 * hgt[0]) <= 2 * GEOM_TOL_PX &&
               fabs(hgt[2] - 4 * hgt[0]) <= 4 * GEOM_TOL_PX,
           "bar heights proportional to 1:2:4 (%g, %g, %g px)", hgt[0], hgt[1], hgt[2]);
    plot_canvas_free(c);
    plot_chart_free(ch);

    ch = plot_chart_create(PLOT_BAR);
    plot_chart_add_bar(ch, "SST-2", "fp16", 0.91, 0);
    plot_chart_add_bar(ch, "SST-2", "bitdistill", 0.90, 0);
    plot_chart_add_bar(ch, "MNLI", "fp16", 0.80, 0);
    plot_chart_add_bar(ch, "MNLI", "bitdistill", 0.79, 0);
    plot_chart_set_ylim(ch, 0.5, NAN);
    TAP_OK(plot_chart_render(ch, 800, 500, &c) == 0, "render grouped bars with ymin 0.5");
    j = plot_chart_layout_json(ch);
    TAP_OK(j && strstr(j, "\"group\":\"MNLI\"") && strstr(j, "\"lo\":0.5,") &&
               strstr(j, "\"legend\":{"),
           "grouped bars: groups, fixed y minimum and a legend in the layout");
    free(j);
    plot_canvas_free(c);
    TAP_OK(plot_chart_add_bar(ch, NULL, "x", NAN, 0) == PLOT_EINVAL &&
               plot_chart_add_bar(ch, NULL, "x", 1, -1) == PLOT_EINVAL,
           "bar with NaN value or negative error refused");
    plot_chart_free(ch);
}

/* ---- parsers ---- */

static void test_bar_parse(void)
{
    char *g, *l, err[PLOT_ERR_LEN];
    double v, e;
    int rc = plot_bar_parse("BitDistill=0.905", "/", &g, &l, &v, &e, err);
    TAP_OK(!rc && !g && !strcmp(l, "BitDistill") && v == 0.905 && e == 0, "LABEL=VALUE");
    free(l);
    rc = plot_bar_parse("SST-2/FP16-SFT=0.91\xc2\xb1"
                        "0.01",
                        "/", &g, &l, &v, &e, err);
    TAP_OK(!rc && g && !strcmp(g, "SST-2") && !strcmp(l, "FP16-SFT") && v == 0.91 && e == 0.01,
           "GROUP/LABEL=VALUE±ERR");
    free(g);
    free(l);
    rc = plot_bar_parse("a=1.5+-0.25", "/", &g, &l, &v, &e, err);
    TAP_OK(!rc && v == 1.5 && e == 0.25, "ERR after +-");
    free(g);
    free(l);
    rc = plot_bar_parse("w/o SubLN=0.8", "", &g, &l, &v, &e, err);
    TAP_OK(!rc && !g && !strcmp(l, "w/o SubLN"), "empty separator: '/' stays in the label");
    free(g);
    free(l);
    static const struct {
        const char *arg, *msg;
    } bad[] = {{"acc", "expected"},           {"=0.5", "empty label"},
               {"a=", "not a number"},        {"a=x", "'x' is not a number"},
               {"a=1±", "not a number >= 0"}, {"a=1+-x", "not a number"},
               {"/a=1", "empty group"},       {"a=0.5.1", "not a number"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        rc = plot_bar_parse(bad[i].arg, "/", &g, &l, &v, &e, err);
        TAP_OK(rc == PLOT_EINVAL && !g && !l && strstr(err, bad[i].msg) && strstr(err, bad[i].arg),
               "bad bar '%s' refused: %s", bad[i].arg, err);
    }
    struct plot_filter f;
    TAP_OK(!plot_filter_parse("stage=3", &f, err) && !strcmp(f.key, "stage") &&
               !strcmp(f.value, "3") && !f.negate,
           "filter stage=3");
    TAP_OK(!plot_filter_parse("model!=teacher", &f, err) && !strcmp(f.key, "model") && f.negate,
           "filter model!=teacher");
    TAP_OK(plot_filter_parse("stage", &f, err) == PLOT_EINVAL && strstr(err, "stage"),
           "filter without '=' refused: %s", err);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        TAP_BAIL("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void test_data(void)
{
    char dir[] = "/tmp/bd-test-plot-XXXXXX", path[128], err[PLOT_ERR_LEN];
    if (!mkdtemp(dir))
        TAP_BAIL("mkdtemp failed");
    struct plot_points p = {0};
    struct plot_filter f[2];
    size_t skipped;
    snprintf(path, sizeof(path), "%s/ev.jsonl", dir);
    write_file(path, "{\"type\":\"stage\",\"stage\":2,\"status\":\"start\"}\n"
                     "{\"type\":\"step\",\"stage\":2,\"step\":1,\"loss\":5.0}\n"
                     "{\"type\":\"step\",\"stage\":3,\"step\":1,\"loss\":4.0}\n"
                     "not json\n\n"
                     "{\"type\":\"step\",\"stage\":3,\"step\":2,\"loss\":3.5}\n"
                     "{\"type\":\"step\",\"stage\":3,\"step\":3,\"loss\":null}\n"
                     "{\"type\":\"eval\",\"stage\":4,\"model\":\"student\",\"accuracy\":0.8}\n");
    plot_filter_parse("stage=3", &f[0], err);
    int rc = plot_data_read(path, "step", "loss", f, 1, &p, &skipped, err);
    TAP_OK(!rc && p.n == 2 && p.x[0] == 1 && p.y[0] == 4.0 && p.x[1] == 2 && p.y[1] == 3.5 &&
               skipped == 1,
           "JSON lines: stage=3 filter, null and non-JSON lines skipped (%zu points, %zu skipped)",
           p.n, skipped);
    plot_points_release(&p);
    plot_filter_parse("type!=step", &f[0], err);
    rc = plot_data_read(path, "@n", "accuracy", f, 1, &p, NULL, err);
    TAP_OK(!rc && p.n == 1 && p.x[0] == 0 && p.y[0] == 0.8, "x '@n' and a != filter");
    plot_points_release(&p);
    rc = plot_data_read(path, "step", "rouge1", NULL, 0, &p, NULL, err);
    TAP_OK(rc == PLOT_ENODATA && strstr(err, "rouge1") && strstr(err, "type, stage"),
           "no numeric points: %s", err);
    plot_points_release(&p);

    snprintf(path, sizeof(path), "%s/t.tsv", dir);
    write_file(path, "step\tloss\tname\n0\t2.5\ta\n1\t\tb\n2\t1.5\ta\n3\tnan\ta\n");
    plot_filter_parse("name=a", &f[0], err);
    rc = plot_data_read(path, "step", "loss", f, 1, &p, NULL, err);
    TAP_OK(!rc && p.n == 2 && p.y[1] == 1.5,
           "TSV: header, filter on a column, empty and nan cells");
    plot_points_release(&p);
    rc = plot_data_read(path, "step", "acc", NULL, 0, &p, NULL, err);
    TAP_OK(rc == PLOT_EFORMAT && strstr(err, "'acc'") && strstr(err, "step, loss, name"),
           "TSV without the column: %s", err);
    plot_points_release(&p);
    snprintf(path, sizeof(path), "%s/t.csv", dir);
    write_file(path, "x, y\r\n1, 10\r\n2, 20\r\n");
    rc = plot_data_read(path, "x", "y", NULL, 0, &p, NULL, err);
    TAP_OK(!rc && p.n == 2 && p.y[1] == 20, "CSV with spaces and CRLF");
    plot_points_release(&p);
    snprintf(path, sizeof(path), "%s/empty", dir);
    write_file(path, "\n\n");
    rc = plot_data_read(path, "x", "y", NULL, 0, &p, NULL, err);
    TAP_OK(rc == PLOT_ENODATA && strstr(err, "empty"), "empty file: %s", err);
    snprintf(path, sizeof(path), "%s/missing.jsonl", dir);
    rc = plot_data_read(path, "x", "y", NULL, 0, &p, NULL, err);
    TAP_OK(rc == PLOT_EIO && strstr(err, "missing.jsonl") && strstr(err, "No such file"),
           "missing file: %s", err);
    plot_points_release(&p);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        TAP_DIAG("could not remove %s", dir);
}

int main(void)
{
    test_png();
    test_text();
    test_axis();
    test_raster();
    test_chart_line();
    test_chart_bar();
    test_bar_parse();
    test_data();
    plot_text_release();
    return tap_done();
}
