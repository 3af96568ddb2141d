/*
 * tests/tap.h — a tiny TAP producer for the C tests.
 *
 * Every assertion prints one "ok N - name" or "not ok N - name" line; automake's tap-driver.sh
 * counts them, so `make check` reports real assertions, not programs. A test ends with
 * tap_done(), which prints the plan and returns the exit status.
 *
 *   TAP_OK(x == 3, "x is three (got %d)", x);
 *   TAP_SKIP("no GPU: cudaGetDeviceCount returned 0");
 *   return tap_done();
 */
#ifndef BD_TESTS_TAP_H
#define BD_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_count_;
static int tap_failed_;

static inline int tap_ok_(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline int tap_ok_(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    tap_count_++;
    if (!cond)
        tap_failed_++;
    printf("%sok %d - ", cond ? "" : "not ", tap_count_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        printf("# failed at %s:%d\n", file, line);
    fflush(stdout);
    return cond;
}

#define TAP_OK(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* A diagnostic line (not counted). */
#define TAP_DIAG(...)                                                                              \
    do {                                                                                           \
        printf("# ");                                                                              \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        fflush(stdout);                                                                            \
    } while (0)

/* One skipped check with its reason; tap-driver.sh counts it as SKIP, never as PASS. */
#define TAP_SKIP(...)                                                                              \
    do {                                                                                           \
        tap_count_++;                                                                              \
        printf("ok %d # SKIP ", tap_count_);                                                       \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        fflush(stdout);                                                                            \
    } while (0)

/* Abort the whole test program (counted as an error by the driver). */
#define TAP_BAIL(...)                                                                              \
    do {                                                                                           \
        printf("Bail out! ");                                                                      \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        fflush(stdout);                                                                            \
        exit(1);                                                                                   \
    } while (0)

/* The shared datasets (../shared/data beside the checkout, its README lists them): $SHARED_DATA
 * when set, else $top_srcdir/../shared/data. Tests that need them skip with "needs ..." when a
 * file is absent; SHARED_DATA=/nonexistent runs the suite as a clone without the data does. */
static inline const char *tap_data_dir(void)
{
    static char dir[512];
    const char *env = getenv("SHARED_DATA"), *top = getenv("top_srcdir");
    if (env && *env)
        snprintf(dir, sizeof(dir), "%s", env);
    else
        snprintf(dir, sizeof(dir), "%s/../shared/data", top ? top : ".");
    return dir;
}

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count_);
    fflush(stdout);
    return tap_failed_ ? 1 : 0;
}

#endif
