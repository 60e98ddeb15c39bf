/* log: one key=value line per event on stderr (journald adds the time stamp
 * under systemd; we add ts= for plain files too).
 *
 *   ts=2026-11-23T14:00:00.123Z level=info sid=1f2e3d4c event=login user=alice result=ok
 *
 * Values are quoted when they hold spaces, quotes or '='; bytes outside
 * printable ASCII are written as \xNN, so a hostile user name cannot forge a
 * log line. Callers never pass a password: nothing here could tell one apart. */
#ifndef POPGATE_LOG_H
#define POPGATE_LOG_H

#include <stdint.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
/* Parse "debug" / "info" / "warn" / "error"; returns -1 if unknown. */
int log_level_parse(const char *name);

/* The end of log_event's pairs: a typed null pointer, as variadic calls need. */
#define LOG_END ((const char *)0)

/* Variadic pairs of (const char *key, const char *value), ended by LOG_END.
 * A NULL value is skipped. sid may be NULL for process-wide events. */
void log_event(enum log_level level, const char *sid, const char *event, ...)
    __attribute__((sentinel));

/* Format a number for log_event arguments: LOG_U64(n) lives until the end of
 * the enclosing full expression's block. */
const char *log_format_u64(char buf[24], uint64_t value);
#define LOG_U64(v) log_format_u64((char[24]){0}, (uint64_t)(v))

#endif
