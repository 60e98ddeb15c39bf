/* redis_cluster_map.c: see redis_cluster_map.h. */
#include "redis_cluster_map.h"

#include <string.h>

uint16_t cluster_crc16(const char *buf, size_t len)
{
    /* CRC16-CCITT (XMODEM): polynomial 0x1021, initial 0, as Redis's crc16.c. */
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned cluster_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return cluster_crc16(open + 1, (size_t)(close - open - 1)) & (CLUSTER_SLOTS - 1);
    }
    return cluster_crc16(key, len) & (CLUSTER_SLOTS - 1);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Decimal digits only, at most max; false for none or too many. */
static bool parse_number(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    if (len == 0 || len > 6)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool ipv4_valid(const char *s, size_t len)
{
    unsigned parts = 0;
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && is_digit(s[i]))
            i++;
        unsigned long octet;
        if (!parse_number(s + start, i - start, 255, &octet) || (i - start > 1 && s[start] == '0'))
            return false;
        parts++;
        if (i == len)
            break;
        if (s[i] != '.')
            return false;
        i++;
    }
    return parts == 4;
}

/* Hex groups and colons, at most one "::", an optional dotted IPv4 tail:
 * a syntax check strict enough that no name passes. */
static bool ipv6_valid(const char *s, size_t len)
{
    if (len < 2 || len > 45)
        return false;
    unsigned groups = 0;
    bool gap = false;
    size_t i = 0;
    if (s[0] == ':') {
        if (s[1] != ':')
            return false;
        gap = true;
        i = 2;
    }
    while (i < len) {
        size_t start = i;
        while (i < len && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            i++;
        if (i < len && s[i] == '.') {
            if (!ipv4_valid(s + start, len - start))
                return false;
            groups += 2;  /* the dotted tail ends the address */
            break;
        }
        if (i == start || i - start > 4)
            return false;
        groups++;
        if (i == len)
            break;
        if (s[i] != ':')
            return false;
        i++;
        if (i < len && s[i] == ':') {
            if (gap)
                return false;
            gap = true;
            i++;
        } else if (i == len) {
            return false;
        }
    }
    return gap ? groups < 8 : groups == 8;
}

bool cluster_address_canonical(const char *s, size_t len, char out[CLUSTER_ADDRESS_MAX])
{
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon)
        return false;
    size_t host_len = (size_t)(colon - s);
    const char *host = s;
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
        if (!ipv6_valid(host, host_len))
            return false;
    } else if (!ipv4_valid(host, host_len) && !ipv6_valid(host, host_len)) {
        return false;
    }
    unsigned long port;
    size_t port_len = len - (size_t)(colon - s) - 1;
    if (!parse_number(colon + 1, port_len, 65535, &port) || port == 0)
        return false;
    bool v6 = memchr(host, ':', host_len) != NULL;
    size_t n = 0;
    if (v6)
        out[n++] = '[';
    memcpy(out + n, host, host_len);
    n += host_len;
    if (v6)
        out[n++] = ']';
    out[n++] = ':';
    memcpy(out + n, colon + 1, port_len);
    n += port_len;
    out[n] = '\0';
    return true;
}

bool cluster_redirect_parse(const char *err, size_t len, struct cluster_redirect *out)
{
    out->kind = CLUSTER_REDIRECT_NONE;
    enum cluster_redirect_kind kind;
    size_t pos;
    if (len > 6 && !memcmp(err, "MOVED ", 6)) {
        kind = CLUSTER_REDIRECT_MOVED;
        pos = 6;
    } else if (len > 4 && !memcmp(err, "ASK ", 4)) {
        kind = CLUSTER_REDIRECT_ASK;
        pos = 4;
    } else {
        return false;
    }
    const char *space = memchr(err + pos, ' ', len - pos);
    if (!space)
        return false;
    unsigned long slot;
    if (!parse_number(err + pos, (size_t)(space - err) - pos, CLUSTER_SLOTS - 1, &slot))
        return false;
    const char *addr = space + 1;
    size_t addr_len = len - (size_t)(addr - err);
    if (!cluster_address_canonical(addr, addr_len, out->address))
        return false;
    out->slot = (unsigned)slot;
    out->kind = kind;
    return true;
}

void cluster_map_clear(struct cluster_map *map)
{
    map->n_nodes = 0;
    for (unsigned i = 0; i < CLUSTER_SLOTS; i++)
        map->owner[i] = CLUSTER_NO_NODE;
}

unsigned cluster_map_node(struct cluster_map *map, const char *address)
{
    for (unsigned i = 0; i < map->n_nodes; i++)
        if (!strcmp(map->nodes[i], address))
            return i;
    size_t len = strlen(address);
    if (map->n_nodes >= CLUSTER_NODES_MAX || len >= CLUSTER_ADDRESS_MAX)
        return CLUSTER_NO_NODE;
    memcpy(map->nodes[map->n_nodes], address, len + 1);
    return map->n_nodes++;
}

unsigned cluster_map_covered(const struct cluster_map *map)
{
    unsigned n = 0;
    for (unsigned i = 0; i < CLUSTER_SLOTS; i++)
        n += map->owner[i] != CLUSTER_NO_NODE;
    return n;
}

/* Whether the comma-separated flags hold flag. */
static bool has_flag(const char *flags, size_t len, const char *flag)
{
    size_t flen = strlen(flag);
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && flags[i] != ',')
            i++;
        if (i - start == flen && !memcmp(flags + start, flag, flen))
            return true;
        i++;
    }
    return false;
}

enum { FIELD_ADDR = 1, FIELD_FLAGS = 2, FIELD_FIRST_SLOT = 8 };

/* One slot entry: "n" or "a-b". */
static bool parse_slots(const char *s, size_t len, unsigned long *first, unsigned long *last)
{
    const char *dash = memchr(s, '-', len);
    if (!dash)
        return parse_number(s, len, CLUSTER_SLOTS - 1, first) && (*last = *first, true);
    return parse_number(s, (size_t)(dash - s), CLUSTER_SLOTS - 1, first) &&
           parse_number(dash + 1, len - (size_t)(dash - s) - 1, CLUSTER_SLOTS - 1, last) && *first <= *last;
}

static bool parse_line(const char *line, size_t len, struct cluster_map *map)
{
    const char *addr = NULL, *flags = NULL;
    size_t addr_len = 0, flags_len = 0;
    unsigned field = 0;
    unsigned node = CLUSTER_NO_NODE;
    size_t i = 0;
    while (i < len) {
        while (i < len && line[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && line[i] != ' ')
            i++;
        const char *tok = line + start;
        size_t tok_len = i - start;
        if (field == FIELD_ADDR) {
            addr = tok;
            addr_len = tok_len;
        } else if (field == FIELD_FLAGS) {
            flags = tok;
            flags_len = tok_len;
        } else if (field == FIELD_FIRST_SLOT - 1) {
            /* The fixed fields are read: is this a master that serves? */
            if (!has_flag(flags, flags_len, "master") || has_flag(flags, flags_len, "noaddr") ||
                has_flag(flags, flags_len, "handshake"))
                return true;
        } else if (field >= FIELD_FIRST_SLOT && tok[0] != '[') {
            unsigned long first, last;
            if (!parse_slots(tok, tok_len, &first, &last))
                return false;
            if (node == CLUSTER_NO_NODE) {
                /* "ip:port@cport" or "ip:port@cport,hostname". */
                const char *at = memchr(addr, '@', addr_len);
                char canonical[CLUSTER_ADDRESS_MAX];
                if (!at || !cluster_address_canonical(addr, (size_t)(at - addr), canonical))
                    return false;
                node = cluster_map_node(map, canonical);
                if (node == CLUSTER_NO_NODE)
                    return false;
            }
            for (unsigned long s = first; s <= last; s++)
                map->owner[s] = (uint16_t)node;
        }
        field++;
    }
    return field >= FIELD_FIRST_SLOT;
}

bool cluster_nodes_parse(const char *text, size_t len, struct cluster_map *map)
{
    cluster_map_clear(map);
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t n = end - pos;
        pos = end + 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        if (!parse_line(line, n, map))
            return false;
    }
    return cluster_map_covered(map) > 0;
}
