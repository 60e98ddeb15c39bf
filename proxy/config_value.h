/* config_value: the value spellings every config section shares (booleans,
 * bounded numbers, seconds, bounded strings, host:port). Pure. Each returns
 * false, leaving *out unchanged, for a value it does not accept. */
#ifndef POPGATE_CONFIG_VALUE_H
#define POPGATE_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>

/* yes/no, true/false, on/off, 1/0 (case-insensitive). */
bool config_parse_bool(const char *v, bool *out);
/* Decimal min..max, no sign. */
bool config_parse_uint(const char *v, unsigned min, unsigned max, unsigned *out);
/* Seconds, fractions allowed ("0.5"), 0..max. */
bool config_parse_seconds(const char *v, double max, double *out);
/* Copies v when it fits in cap bytes with its NUL. */
bool config_copy_string(char *dst, size_t cap, const char *v);
/* "host:port" or "[v6 address]:port"; the host is copied into host (cap bytes). */
bool config_parse_host_port(const char *v, char *host, size_t cap, unsigned *port);

#endif
