/*
 * LD_PRELOAD shim for the test suite's private servers: syslog() lines go to
 * the file named by $SYSLOG_TO_FILE instead of /dev/log.
 *
 * Cyrus logs only through syslog, and a test machine (a container, CI) often
 * has no syslog daemon; the test bed needs the server's log for its own
 * failure reports, and must not create /dev/log on the host. Each line is one
 * write(2) with O_APPEND, so lines from the many server processes do not
 * interleave. Without $SYSLOG_TO_FILE the messages are dropped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

static const char *log_ident = "";

void openlog(const char *ident, int option, int facility)
{
    (void)option;
    (void)facility;
    log_ident = ident ? ident : "";
}

void closelog(void)
{
}

void vsyslog(int priority, const char *format, va_list ap)
{
    const char *path = getenv("SYSLOG_TO_FILE");
    if (path == NULL)
        return;
    int saved_errno = errno;
    char line[4096];
    int head = snprintf(line, sizeof line, "%s[%d] <%d> ", log_ident, (int)getpid(),
                        priority & LOG_PRIMASK);
    if (head < 0 || (size_t)head >= sizeof line - 1)
        head = 0;
    errno = saved_errno; /* for %m */
    int body = vsnprintf(line + head, sizeof line - 1 - (size_t)head, format, ap);
    size_t len = (size_t)head;
    if (body > 0)
        len += (size_t)body < sizeof line - 1 - (size_t)head ? (size_t)body
                                                            : sizeof line - 2 - (size_t)head;
    line[len++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t written = write(fd, line, len);
        (void)written; /* a lost log line is not worth failing the server for */
        close(fd);
    }
    errno = saved_errno;
}

void syslog(int priority, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vsyslog(priority, format, ap);
    va_end(ap);
}

/* What calls to syslog() become under _FORTIFY_SOURCE (Debian builds). */
void __syslog_chk(int priority, int flag, const char *format, ...)
{
    (void)flag;
    va_list ap;
    va_start(ap, format);
    vsyslog(priority, format, ap);
    va_end(ap);
}

void __vsyslog_chk(int priority, int flag, const char *format, va_list ap)
{
    (void)flag;
    vsyslog(priority, format, ap);
}
