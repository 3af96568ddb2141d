/*
 * tests/eng_util.h — helpers shared by the engine tests: fixture paths, reading refs.json and
 * the float32 reference files, writing scratch files in a per-test temp directory.
 */
#ifndef BD_TESTS_ENG_UTIL_H
#define BD_TESTS_ENG_UTIL_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char eu_fx_[4096];

/* Path of a file under tests/fixtures/engine (static buffer, valid until the next call). */
static inline const char *eu_fx(const char *rel)
{
    const char *top = getenv("top_srcdir");
    snprintf(eu_fx_, sizeof(eu_fx_), "%s/tests/fixtures/engine/%s", top ? top : ".", rel);
    return eu_fx_;
}

static inline const char *eu_top(void)
{
    const char *top = getenv("top_srcdir");
    return top ? top : ".";
}

/* Read a whole file (n bytes, NUL-terminated copy) or NULL. */
static inline char *eu_read(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[sz] = 0;
        if (n)
            *n = (size_t)sz;
    }
    return b;
}

static inline int eu_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* A fresh temp dir (mkdtemp) for this test. */
static inline const char *eu_tmpdir(void)
{
    static char d[256];
    if (!d[0]) {
        snprintf(d, sizeof(d), "/tmp/bd-eng-test-XXXXXX");
        if (!mkdtemp(d))
            return "/tmp";
    }
    return d;
}

static inline void eu_rmrf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", dir);
}

/* max |a - b| over n */
static inline double eu_maxabs(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d)
            m = d != d ? INFINITY : d;
    }
    return m;
}

#endif
