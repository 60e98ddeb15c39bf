/* pop3_status: see pop3_status.h. */
#include "pop3_status.h"

#include <stdio.h>
#include <string.h>

size_t pop3_status_line(char out[POP3_STATUS_LINE_MAX], const char *text)
{
    size_t len = strlen(text);
    if (len > POP3_STATUS_LINE_MAX - 2)
        return 0;
    memcpy(out, text, len);
    memcpy(out + len, "\r\n", 2);
    return len + 2;
}

size_t pop3_status_vformat(char out[POP3_STATUS_LINE_MAX], const char *fmt, va_list ap)
{
    /* One octet more than a line may hold tells a fit from a cut. */
    char text[POP3_STATUS_LINE_MAX - 1];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof text)
        return 0;
    return pop3_status_line(out, text);
}
