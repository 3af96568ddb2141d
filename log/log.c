/*
 * log/log.c — see log.h. The threshold and the systemd flag are the only globals of the
 * server (STYLE.md rule 6 allows process-wide flags set once); both are plain ints read racily
 * by design: a stale read drops or keeps one line.
 */
#include "log/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *const log_names[] = {"error", "warn", "info", "debug"};
static const int log_syslog[] = {3, 4, 6, 7};
static volatile int log_level = LOG_LEVEL_INFO;
static int log_journal = -1; /* -1 unknown, 0 plain, 1 under systemd */

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, log_names[i]))
            return i;
    if (!strcmp(s, "warning"))
        return LOG_LEVEL_WARN;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level < 4 ? log_names[level] : "?";
}

void log_set_level(enum log_level level)
{
    log_level = level;
}

enum log_level log_get_level(void)
{
    return (enum log_level)log_level;
}

void log_line(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    int n = 0;
    va_list ap;

    if ((int)level > log_level)
        return;
    if (log_journal < 0)
        log_journal = getenv("JOURNAL_STREAM") != NULL;
    if (log_journal) {
        n = snprintf(line, sizeof(line), "<%d>", log_syslog[level]);
    } else {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(line + n, sizeof(line) - n, ".%03dZ %-5s ", (int)(tv.tv_usec / 1000),
                      log_names[level]);
    }
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}
