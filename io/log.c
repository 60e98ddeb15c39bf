/* log.c: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level current_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
    [LOG_LEVEL_DEBUG] = "debug",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_ERROR] = "error",
};

void log_set_level(enum log_level level)
{
    current_level = level;
}

int log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *log_format_u64(char buf[24], uint64_t value)
{
    snprintf(buf, 24, "%llu", (unsigned long long)value);
    return buf;
}

/* A bounded line: values are truncated rather than letting one event grow
 * without limit. */
#define LOG_LINE_MAX 2048

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (n > sizeof l->buf - 1 - l->len)
        n = sizeof l->buf - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void put_value(struct line *l, const char *v)
{
    bool quote = *v == '\0' || strpbrk(v, " \"=") != NULL;
    if (quote)
        put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '\\' || *p == '"') {
            char esc[5];
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            put(l, esc, 4);
        } else {
            put(l, (const char *)p, 1);
        }
    }
    if (quote)
        put(l, "\"", 1);
}

void log_event(enum log_level level, const char *sid, const char *event, ...)
{
    if (level < current_level)
        return;
    struct line l = { .len = 0 };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[64];
    snprintf(stamp, sizeof stamp, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
    put_str(&l, stamp);
    put_str(&l, level_names[level]);
    if (sid) {
        put_str(&l, " sid=");
        put_str(&l, sid);
    }
    put_str(&l, " event=");
    put_str(&l, event);

    va_list ap;
    va_start(ap, event);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (!value)
            continue;
        put(&l, " ", 1);
        put_str(&l, key);
        put(&l, "=", 1);
        put_value(&l, value);
    }
    va_end(ap);
    l.buf[l.len++] = '\n';
    /* One write per line keeps lines whole when several processes share stderr. */
    fwrite(l.buf, 1, l.len, stderr);
    fflush(stderr);
}
