/*
 * engine/err.c — eng_strerror and the error-message helper.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "engine/err.h"

const char *eng_strerror(int status)
{
    switch (status) {
    case ENG_OK: return "success";
#define ENG_STATUS_CASE_(name, code, text)                                                         \
    case ENG_##name: return text;
        ENG_STATUS_MAP(ENG_STATUS_CASE_)
#undef ENG_STATUS_CASE_
    }
    return "unknown engine error";
}

int eng_fail(char *err, int status, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        va_start(ap, fmt);
        vsnprintf(err, ENG_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return status;
}
