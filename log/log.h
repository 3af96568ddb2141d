/*
 * log/log.h — leveled logging to stderr, one line per event.
 *
 * Lines look like `2026-11-22T20:50:00.123Z info  message`. Under systemd (JOURNAL_STREAM set)
 * the timestamp is left to the journal and each line starts with a `<N>` syslog priority prefix
 * instead (sd-daemon(3)). The level threshold is process-wide state set once at start-up and on
 * SIGHUP from the loop thread; logging itself is thread-safe (one fprintf per line).
 */
#ifndef BD_LOG_LOG_H
#define BD_LOG_LOG_H

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Parse "error|warn|info|debug"; returns the level or -1. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);

/* Set the threshold; lines above it are dropped. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_line(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_line(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_line(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_line(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_line(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
