/*
 * plot/raster.h — an RGB canvas that cairo draws on: filled rectangles, thick anti-aliased
 * polylines, discs and text (DejaVu Sans through cairo's text API) at any size, upright or
 * rotated, written out as PNG by cairo.
 *
 * The canvas hides cairo from the chart code so that the layout speaks one unit: pixels, with
 * (0,0) the top-left corner of the top-left pixel; pixel (i,j) covers [i,i+1) x [j,j+1), so a
 * rectangle with whole-number corners fills whole pixels and a 1-pixel line along a pixel
 * centre fills one row. Colours are 0xRRGGBB. Everything is clipped to the canvas.
 *
 * Text sizes are given as a scale: a line of text at scale s is 7*s pixels from cap top to
 * baseline (the height of the 5x7 bitmap font the charts were first laid out with), so layouts
 * that grow with the canvas keep their proportions.
 */
#ifndef BD_PLOT_RASTER_H
#define BD_PLOT_RASTER_H

#include <stddef.h>
#include <stdint.h>

/* The font family every chart draws its text in (Debian's fonts-dejavu-core). */
#define PLOT_FONT_FAMILY "DejaVu Sans"

struct plot_canvas;

/* A w x h canvas filled with bg; NULL when w or h is outside 1..16384 or memory runs out. */
struct plot_canvas *plot_canvas_create(int w, int h, uint32_t bg);

/* Free the canvas and its pixels; NULL is a no-op. */
void plot_canvas_free(struct plot_canvas *c);

int plot_canvas_width(const struct plot_canvas *c);
int plot_canvas_height(const struct plot_canvas *c);

/* The colour of pixel (x, y), or UINT32_MAX outside the canvas. */
uint32_t plot_canvas_get(const struct plot_canvas *c, int x, int y);

/*
 * Write the canvas to path as an 8-bit RGB PNG, replacing the file; a partly written file is
 * removed, and nothing is written when drawing failed (cairo ran out of memory). Returns 0 or
 * PLOT_EIO / PLOT_ENOMEM with the message, naming path, in err (PLOT_ERR_LEN bytes or NULL).
 */
int plot_canvas_write_png(struct plot_canvas *c, const char *path, char *err);

/*
 * Limit the shapes drawn from now on (polylines, discs, text; not plot_canvas_rect) to the
 * pixels [x0,x1) x [y0,y1); plot_canvas_clip(c, 0, 0, w, h) lifts the limit.
 */
void plot_canvas_clip(struct plot_canvas *c, int x0, int y0, int x1, int y1);

/* Fill the pixels [x0,x1) x [y0,y1) with color at opacity alpha (0..1; 1 replaces). */
void plot_canvas_rect(struct plot_canvas *c, int x0, int y0, int x1, int y1, uint32_t color,
                      double alpha);

/*
 * A polyline through the n points (x[i], y[i]) (borrowed), width pixels wide with round joins
 * and caps, at opacity alpha (painted once, so the joints are not darker). A point with a NaN
 * coordinate breaks the line there; a lone point between breaks draws as a dot. Points may lie
 * far outside the canvas: segments are cut to it first.
 */
void plot_canvas_polyline(struct plot_canvas *c, const double *x, const double *y, size_t n,
                          double width, uint32_t color, double alpha);

/* A straight line from (x0,y0) to (x1,y1), width pixels wide (a two-point polyline). */
void plot_canvas_line(struct plot_canvas *c, double x0, double y0, double x1, double y1,
                      double width, uint32_t color);

/* A filled disc of radius r centred on (cx, cy). */
void plot_canvas_disc(struct plot_canvas *c, double cx, double cy, double r, uint32_t color);

/* Text direction: left to right, or rotated a quarter turn to read bottom to top. */
enum plot_text_dir { PLOT_TEXT_RIGHT = 0, PLOT_TEXT_UP = 1 };

/*
 * Draw the UTF-8 string s (borrowed) at scale (> 0). (x, y) is the top-left corner of the
 * text's box, plot_text_width() x plot_text_height() for PLOT_TEXT_RIGHT, the same box turned
 * on its side (height x width) for PLOT_TEXT_UP; descenders hang below (or right of) the box.
 * Bytes that are not UTF-8 draw as U+FFFD.
 */
void plot_canvas_text(struct plot_canvas *c, double x, double y, const char *s, double scale,
                      uint32_t color, enum plot_text_dir dir);

/* Advance width in pixels of the string s drawn at scale (0 for ""). */
double plot_text_width(const char *s, double scale);

/* Height in pixels of a line of text at scale, cap top to baseline (descenders not counted). */
double plot_text_height(double scale);

/*
 * Free the font caches that cairo and fontconfig keep for the life of the process, so that a
 * leak checker sees none. Only at the end of a program, once every canvas is freed, and never
 * while another thread draws; text drawn afterwards loads the fonts again.
 */
void plot_text_release(void);

#endif
