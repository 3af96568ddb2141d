/*
 * plot/err.c — plot_strerror and the error-message helper.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "plot/err.h"

const char *plot_strerror(int status)
{
    switch (status) {
    case PLOT_OK: return "success";
#define PLOT_STATUS_CASE_(name, code, text)                                                        \
    case PLOT_##name: return text;
        PLOT_STATUS_MAP(PLOT_STATUS_CASE_)
#undef PLOT_STATUS_CASE_
    }
    return "unknown plot error";
}

int plot_fail(char *err, int status, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        va_start(ap, fmt);
        vsnprintf(err, PLOT_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return status;
}
