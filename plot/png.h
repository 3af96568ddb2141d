/*
 * plot/png.h — a PNG encoder for 8-bit RGB images (zlib deflate, per-row adaptive filters).
 *
 * The output is a plain, non-interlaced truecolour PNG (IHDR, one tEXt "Software", one IDAT,
 * IEND) that any decoder reads. Rows are filtered with the PNG filter (None, Sub, Up, Average,
 * Paeth) whose residuals have the smallest sum of magnitudes, the heuristic the PNG
 * specification recommends, then deflated by zlib.
 */
#ifndef BD_PLOT_PNG_H
#define BD_PLOT_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Largest width or height accepted, in pixels. */
#define PLOT_PNG_MAX_DIM 16384

/*
 * Encode rgb (h rows of w*3 bytes, top row first, borrowed) into a malloc'd PNG that *out owns
 * (the caller frees it), *n bytes long. Returns 0, PLOT_EINVAL for a size outside
 * 1..PLOT_PNG_MAX_DIM or PLOT_ENOMEM, with the message in err (PLOT_ERR_LEN bytes or NULL).
 */
int plot_png_encode(const uint8_t *rgb, int w, int h, uint8_t **out, size_t *n, char *err);

/* Encode rgb as plot_png_encode does and write it to path (replaced). Returns 0 or PLOT_E*. */
int plot_png_write(const char *path, const uint8_t *rgb, int w, int h, char *err);

#endif
