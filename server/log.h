/*
 * server/log.h — leveled logging to stderr, one line per event.
 *
 * Lines look like `2026-11-22T20:50:00.123Z info  message`. Under systemd (JOURNAL_STREAM set)
 * the timestamp is left to the journal and each line starts with a `<N>` syslog priority prefix
 * instead (sd-daemon(3)). The level threshold is process-wide state set once at start-up and on
 * SIGHUP from the loop thread; logging itself is thread-safe (one fprintf per line).
 */
#ifndef BD_SERVER_LOG_H
#define BD_SERVER_LOG_H

enum srv_log_level { SRV_LOG_ERROR = 0, SRV_LOG_WARN, SRV_LOG_INFO, SRV_LOG_DEBUG };

/* Parse "error|warn|info|debug"; returns the level or -1. */
int srv_log_level_parse(const char *s);
const char *srv_log_level_name(enum srv_log_level level);

/* Set the threshold; lines above it are dropped. */
void srv_log_set_level(enum srv_log_level level);
enum srv_log_level srv_log_get_level(void);

void srv_log(enum srv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define srv_log_error(...) srv_log(SRV_LOG_ERROR, __VA_ARGS__)
#define srv_log_warn(...) srv_log(SRV_LOG_WARN, __VA_ARGS__)
#define srv_log_info(...) srv_log(SRV_LOG_INFO, __VA_ARGS__)
#define srv_log_debug(...) srv_log(SRV_LOG_DEBUG, __VA_ARGS__)

#endif
