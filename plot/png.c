/*
 * plot/png.c — the PNG encoder (see png.h): filter rows, deflate with zlib, frame in chunks.
 *
 * Workload: one image of about 800x500 per `bitdistill plot`, so clarity wins over speed; the
 * filter choice tries all five filters per row (5 passes over 2.4 kB), which costs far less than
 * the deflate that follows.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "plot/err.h"
#include "plot/png.h"

#define PNG_BPP 3 /* bytes per pixel: 8-bit RGB */

static uint8_t png_paeth(uint8_t a, uint8_t b, uint8_t c)
{
    int p = (int)a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc)
        return a;
    return pb <= pc ? b : c;
}

/*
 * Filter one row (stride bytes of cur, prev the row above or NULL for the first row) with
 * filter type ft into out (stride bytes). Returns the sum of the residuals as signed bytes'
 * magnitudes, the cost the filter choice minimises.
 */
static unsigned long png_filter_row(int ft, const uint8_t *cur, const uint8_t *prev, size_t stride,
                                    uint8_t *out)
{
    unsigned long cost = 0;
    for (size_t i = 0; i < stride; i++) {
        uint8_t a = i >= PNG_BPP ? cur[i - PNG_BPP] : 0;
        uint8_t b = prev ? prev[i] : 0;
        uint8_t c = prev && i >= PNG_BPP ? prev[i - PNG_BPP] : 0;
        uint8_t pred = 0;
        switch (ft) {
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (uint8_t)(((unsigned)a + b) / 2); break;
        case 4: pred = png_paeth(a, b, c); break;
        }
        out[i] = (uint8_t)(cur[i] - pred);
        cost += (unsigned long)abs((int8_t)out[i]);
    }
    return cost;
}

static void png_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Append one chunk (length, type, data, CRC of type+data) at *pos of buf (room checked by caller).
 */
static void png_chunk(uint8_t *buf, size_t *pos, const char type[4], const uint8_t *data,
                      size_t len)
{
    uint8_t *p = buf + *pos;
    png_put32(p, (uint32_t)len);
    memcpy(p + 4, type, 4);
    if (len)
        memcpy(p + 8, data, len);
    png_put32(p + 8 + len, (uint32_t)crc32(0L, p + 4, (uInt)(len + 4)));
    *pos += 12 + len;
}

int plot_png_encode(const uint8_t *rgb, int w, int h, uint8_t **out, size_t *n, char *err)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const char text[] = "Software\0bitdistill plot";
    int rc = 0;
    *out = NULL;
    *n = 0;
    if (w < 1 || h < 1 || w > PLOT_PNG_MAX_DIM || h > PLOT_PNG_MAX_DIM)
        return plot_fail(err, PLOT_EINVAL, "image size %dx%d outside 1..%d", w, h,
                         PLOT_PNG_MAX_DIM);
    size_t stride = (size_t)w * PNG_BPP, raw_len = (size_t)h * (stride + 1);
    uint8_t *raw = malloc(raw_len), *trial = malloc(stride);
    uLongf zlen = compressBound((uLong)raw_len);
    uint8_t *z = malloc(zlen), *png = NULL;
    if (!raw || !trial || !z) {
        rc =
            plot_fail(err, PLOT_ENOMEM, "cannot allocate %zu bytes for a %dx%d PNG", raw_len, w, h);
        goto out_free;
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *cur = rgb + (size_t)y * stride, *prev = y ? cur - stride : NULL;
        uint8_t *dst = raw + (size_t)y * (stride + 1);
        unsigned long best = png_filter_row(0, cur, prev, stride, dst + 1);
        dst[0] = 0;
        for (int ft = 1; ft <= 4; ft++) {
            unsigned long cost = png_filter_row(ft, cur, prev, stride, trial);
            if (cost < best) {
                best = cost;
                dst[0] = (uint8_t)ft;
                memcpy(dst + 1, trial, stride);
            }
        }
    }
    int zrc = compress2(z, &zlen, raw, (uLong)raw_len, 6);
    if (zrc != Z_OK) {
        rc = plot_fail(err, zrc == Z_MEM_ERROR ? PLOT_ENOMEM : PLOT_EIO, "deflate failed: %s",
                       zError(zrc));
        goto out_free;
    }
    size_t total = sizeof(sig) + (12 + 13) + (12 + sizeof(text) - 1) + (12 + zlen) + 12;
    if (!(png = malloc(total))) {
        rc = plot_fail(err, PLOT_ENOMEM, "cannot allocate %zu bytes for a PNG", total);
        goto out_free;
    }
    uint8_t ihdr[13];
    png_put32(ihdr, (uint32_t)w);
    png_put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: truecolour */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* not interlaced */
    size_t pos = sizeof(sig);
    memcpy(png, sig, sizeof(sig));
    png_chunk(png, &pos, "IHDR", ihdr, sizeof(ihdr));
    png_chunk(png, &pos, "tEXt", (const uint8_t *)text, sizeof(text) - 1);
    png_chunk(png, &pos, "IDAT", z, zlen);
    png_chunk(png, &pos, "IEND", NULL, 0);
    *out = png;
    *n = pos;
out_free:
    free(z);
    free(trial);
    free(raw);
    return rc;
}

int plot_png_write(const char *path, const uint8_t *rgb, int w, int h, char *err)
{
    uint8_t *png;
    size_t n;
    int rc = plot_png_encode(rgb, w, h, &png, &n, err);
    if (rc)
        return rc;
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = plot_fail(err, PLOT_EIO, "cannot write '%s': %s", path, strerror(errno));
        goto out_png;
    }
    if (fwrite(png, 1, n, f) != n) {
        rc = plot_fail(err, PLOT_EIO, "cannot write '%s': %s", path, strerror(errno));
        fclose(f);
        remove(path); /* no truncated PNG left behind */
        goto out_png;
    }
    if (fclose(f)) {
        rc = plot_fail(err, PLOT_EIO, "cannot write '%s': %s", path, strerror(errno));
        remove(path);
        goto out_png;
    }
out_png:
    free(png);
    return rc;
}
