/*
 * plot/font.h — the built-in 5x7 bitmap font of the plots (printable ASCII plus a few symbols a
 * results chart needs: ± × · – — α β γ δ λ μ σ τ).
 *
 * A glyph is a string of '#' (ink) and '.' (paper), 5 characters per row, top row first: 7 rows
 * above the baseline, and 2 more for letters with descenders (g j p q y β γ μ _). Code points
 * the font lacks draw as a hollow box. Text advances PLOT_FONT_ADVANCE cells per character.
 */
#ifndef BD_PLOT_FONT_H
#define BD_PLOT_FONT_H

#include <stdint.h>

#define PLOT_FONT_W       5 /* glyph width, cells */
#define PLOT_FONT_ASCENT  7 /* rows above the baseline */
#define PLOT_FONT_H       9 /* rows with descenders */
#define PLOT_FONT_ADVANCE 6 /* cells from one character to the next */

/* The glyph of code point cp (a static string of 35 or 45 characters, never NULL). */
const char *plot_font_glyph(uint32_t cp);

/* Whether the font has a glyph of its own for cp (others draw as a box). */
int plot_font_has(uint32_t cp);

/*
 * Decode the next UTF-8 character at *s and advance *s past it; a malformed byte decodes as
 * U+FFFD and advances one byte. Returns 0 at the end of the string (not advancing).
 */
uint32_t plot_utf8_next(const char **s);

/* Number of characters (code points) in the UTF-8 string s. */
int plot_utf8_len(const char *s);

#endif
