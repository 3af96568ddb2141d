/*
 * plot/err.h — status codes and error messages of the plotting tools (prefix plot_).
 *
 * Functions that act return 0 or a negative PLOT_E* code; plot_strerror() names the code. The
 * detailed message (naming the file, field or argument) goes into a caller buffer of
 * PLOT_ERR_LEN bytes, or is kept by the object (plot_chart_errmsg).
 */
#ifndef BD_PLOT_ERR_H
#define BD_PLOT_ERR_H

#define PLOT_ERR_LEN 512

#define PLOT_STATUS_MAP(X)                                                                         \
    X(EIO, -1, "input/output error")                                                               \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EINVAL, -3, "invalid argument")                                                              \
    X(EFORMAT, -4, "malformed input")                                                              \
    X(ENODATA, -5, "nothing to plot")                                                              \
    X(ELIMIT, -6, "too many series or bars")

enum plot_status {
    PLOT_OK = 0,
#define PLOT_STATUS_ENUM_(name, code, text) PLOT_##name = code,
    PLOT_STATUS_MAP(PLOT_STATUS_ENUM_)
#undef PLOT_STATUS_ENUM_
};

/* A static, human-readable name for a status code (never NULL). */
const char *plot_strerror(int status);

/* printf into err (PLOT_ERR_LEN bytes; NULL ignored) and return status, for `return
 * plot_fail(...)`. */
int plot_fail(char *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
