/* config_value.c: see config_value.h. */
#include "config_value.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool config_parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on")) {
        *out = true;
        return true;
    }
    if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "off")) {
        *out = false;
        return true;
    }
    return false;
}

bool config_parse_uint(const char *v, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < min || n > max)
        return false;
    *out = (unsigned)n;
    return true;
}

bool config_parse_seconds(const char *v, double max, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < 0 || d > max)
        return false;
    *out = d;
    return true;
}

bool config_copy_string(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

bool config_parse_host_port(const char *v, char *host, size_t cap, unsigned *port)
{
    const char *host_start = v, *host_end, *port_text;
    if (v[0] == '[') {
        host_start = v + 1;
        host_end = strchr(v, ']');
        if (!host_end || host_end[1] != ':')
            return false;
        port_text = host_end + 2;
    } else {
        host_end = strrchr(v, ':');
        if (!host_end)
            return false;
        port_text = host_end + 1;
    }
    size_t len = (size_t)(host_end - host_start);
    unsigned p;
    if (len == 0 || len >= cap || !config_parse_uint(port_text, 1, 65535, &p))
        return false;
    memcpy(host, host_start, len);
    host[len] = '\0';
    *port = p;
    return true;
}
