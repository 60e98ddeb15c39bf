/* PROXY protocol v1/v2 parser and trusted networks; the contract is in
 * proxy_protocol.h. */
#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v1_prefix[] = { 'P', 'R', 'O', 'X', 'Y', ' ' };
static const uint8_t v2_signature[] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* Address block sizes by family (specification section 2.2). */
#define V2_INET_LEN 12
#define V2_INET6_LEN 36
#define V2_UNIX_LEN 216

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1

void proxy_protocol_init(struct proxy_protocol *pp)
{
    memset(pp, 0, sizeof *pp);
    pp->phase = PROXY_PHASE_SIGNATURE;
}

static enum proxy_protocol_status fail(struct proxy_protocol *pp, const char *why)
{
    pp->phase = PROXY_PHASE_ERROR;
    pp->error = why;
    return PROXY_PROTOCOL_ERROR;
}

static enum proxy_protocol_status done(struct proxy_protocol *pp)
{
    pp->phase = PROXY_PHASE_DONE;
    pp->header.length = pp->seen;
    return PROXY_PROTOCOL_DONE;
}

static void set_local(struct proxy_protocol_header *h)
{
    h->local = true;
    memset(&h->src, 0, sizeof h->src);
    memset(&h->dst, 0, sizeof h->dst);
    h->addrlen = 0;
}

static void set_inet(struct sockaddr_storage *ss, const uint8_t addr[4], uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, addr, 4);
    sin->sin_port = htons(port);
}

static void set_inet6(struct sockaddr_storage *ss, const uint8_t addr[16], uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, addr, 16);
    sin6->sin6_port = htons(port);
}

/* ---- version 1 ------------------------------------------------------------ */

/* One space-separated field of the v1 line: [*pos, next space or end). */
static bool v1_field(const char *line, size_t len, size_t *pos, const char **field, size_t *flen)
{
    size_t start = *pos;
    size_t end = start;
    while (end < len && line[end] != ' ')
        end++;
    if (end == start)
        return false;
    *field = line + start;
    *flen = end - start;
    *pos = end < len ? end + 1 : end;
    return true;
}

static bool v1_port(const char *s, size_t len, uint16_t *out)
{
    if (len < 1 || len > 5 || (len > 1 && s[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* inet_pton wants a C string; an address field is at most 45 characters
 * (INET6_ADDRSTRLEN - 1), anything longer is not an address. */
static bool v1_addr(int family, const char *s, size_t len, uint8_t out[16])
{
    char text[INET6_ADDRSTRLEN];
    /* A NUL would end the text early for inet_pton and hide the rest. */
    if (len >= sizeof text || memchr(s, '\0', len) != NULL)
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    return inet_pton(family, text, out) == 1;
}

/* line: the v1 line without "PROXY " and without its CRLF. */
static enum proxy_protocol_status v1_parse(struct proxy_protocol *pp, const char *line, size_t len)
{
    struct proxy_protocol_header *h = &pp->header;
    h->version = 1;
    /* The specification: after UNKNOWN, anything up to the CRLF is ignored. */
    if (len >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (len == 7 || line[7] == ' ')) {
        set_local(h);
        return done(pp);
    }
    size_t pos = 0;
    const char *proto, *src, *dst, *sport, *dport;
    size_t proto_len, src_len, dst_len, sport_len, dport_len;
    if (!v1_field(line, len, &pos, &proto, &proto_len) || !v1_field(line, len, &pos, &src, &src_len) ||
        !v1_field(line, len, &pos, &dst, &dst_len) || !v1_field(line, len, &pos, &sport, &sport_len) ||
        !v1_field(line, len, &pos, &dport, &dport_len))
        return fail(pp, "v1: missing field");
    /* pos == len also refuses a trailing space (the last field ends at len). */
    if (pos != len || line[len - 1] == ' ')
        return fail(pp, "v1: extra field");
    int family;
    if (proto_len == 4 && memcmp(proto, "TCP4", 4) == 0)
        family = AF_INET;
    else if (proto_len == 4 && memcmp(proto, "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return fail(pp, "v1: unknown protocol");
    uint8_t a_src[16], a_dst[16];
    if (!v1_addr(family, src, src_len, a_src) || !v1_addr(family, dst, dst_len, a_dst))
        return fail(pp, "v1: bad address");
    uint16_t p_src, p_dst;
    if (!v1_port(sport, sport_len, &p_src) || !v1_port(dport, dport_len, &p_dst))
        return fail(pp, "v1: bad port");
    h->local = false;
    if (family == AF_INET) {
        set_inet(&h->src, a_src, p_src);
        set_inet(&h->dst, a_dst, p_dst);
        h->addrlen = sizeof(struct sockaddr_in);
    } else {
        set_inet6(&h->src, a_src, p_src);
        set_inet6(&h->dst, a_dst, p_dst);
        h->addrlen = sizeof(struct sockaddr_in6);
    }
    return done(pp);
}

/* One byte of the v1 line after "PROXY ". */
static enum proxy_protocol_status v1_byte(struct proxy_protocol *pp, uint8_t c)
{
    if (c == '\n') {
        if (pp->buf_len == 0 || pp->buf[pp->buf_len - 1] != '\r')
            return fail(pp, "v1: line not ended by CRLF");
        /* buf holds "PROXY " and the line up to its CR. */
        return v1_parse(pp, (const char *)pp->buf + sizeof v1_prefix, pp->buf_len - 1 - sizeof v1_prefix);
    }
    /* The LF would make the line one byte longer than what is stored. */
    if (pp->buf_len + 1 >= PROXY_PROTOCOL_V1_MAX)
        return fail(pp, "v1: line longer than 107 bytes");
    pp->buf[pp->buf_len++] = c;
    return PROXY_PROTOCOL_NEED_MORE;
}

/* ---- version 2 ------------------------------------------------------------ */

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* The 16 fixed bytes are in buf: check them and plan the body. */
static enum proxy_protocol_status v2_head(struct proxy_protocol *pp)
{
    uint8_t ver_cmd = pp->buf[12];
    uint8_t fam = pp->buf[13];
    size_t body = be16(pp->buf + 14);

    if ((ver_cmd >> 4) != 2)
        return fail(pp, "v2: unknown version");
    unsigned cmd = ver_cmd & 0x0f;
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return fail(pp, "v2: unknown command");
    if (body > PROXY_PROTOCOL_MAX - PROXY_PROTOCOL_V2_HEAD)
        return fail(pp, "v2: header longer than 536 bytes");
    pp->total = PROXY_PROTOCOL_V2_HEAD + body;
    pp->header.version = 2;
    pp->keep = 0;

    if (cmd == V2_CMD_LOCAL) {
        /* The specification: the family of a LOCAL header is ignored. */
        set_local(&pp->header);
    } else {
        size_t need;
        switch (fam) {
        case 0x00: need = 0; break;              /* UNSPEC */
        case 0x11: need = V2_INET_LEN; break;    /* TCP over IPv4 */
        case 0x21: need = V2_INET6_LEN; break;   /* TCP over IPv6 */
        case 0x31: need = V2_UNIX_LEN; break;    /* UNIX stream */
        case 0x12: case 0x22: case 0x32:
            return fail(pp, "v2: datagram transport on a stream");
        default:
            return fail(pp, "v2: unknown address family");
        }
        if (body < need)
            return fail(pp, "v2: address block too short");
        if (fam == 0x11 || fam == 0x21) {
            pp->header.local = false;
            pp->keep = need;
        } else {
            set_local(&pp->header);
        }
    }
    if (pp->seen == pp->total)
        return done(pp);
    pp->phase = PROXY_PHASE_V2_BODY;
    return PROXY_PROTOCOL_NEED_MORE;
}

/* The whole body has been consumed; the kept address bytes follow the head. */
static enum proxy_protocol_status v2_finish(struct proxy_protocol *pp)
{
    struct proxy_protocol_header *h = &pp->header;
    const uint8_t *a = pp->buf + PROXY_PROTOCOL_V2_HEAD;
    if (pp->keep == V2_INET_LEN) {
        set_inet(&h->src, a, be16(a + 8));
        set_inet(&h->dst, a + 4, be16(a + 10));
        h->addrlen = sizeof(struct sockaddr_in);
    } else if (pp->keep == V2_INET6_LEN) {
        set_inet6(&h->src, a, be16(a + 32));
        set_inet6(&h->dst, a + 16, be16(a + 34));
        h->addrlen = sizeof(struct sockaddr_in6);
    }
    return done(pp);
}

/* ---- the byte loop ---------------------------------------------------------- */

enum proxy_protocol_status proxy_protocol_feed(struct proxy_protocol *pp, const void *data,
                                               size_t len, size_t *used)
{
    const uint8_t *in = data;
    size_t i = 0;
    enum proxy_protocol_status st = PROXY_PROTOCOL_NEED_MORE;

    *used = 0;
    if (pp->phase == PROXY_PHASE_DONE)
        return PROXY_PROTOCOL_DONE;
    if (pp->phase == PROXY_PHASE_ERROR)
        return PROXY_PROTOCOL_ERROR;

    while (i < len && st == PROXY_PROTOCOL_NEED_MORE) {
        if (pp->phase == PROXY_PHASE_V2_BODY) {
            /* Address bytes are kept, TLVs skipped in bulk: the body is
             * bounded by total, never by what arrives. */
            size_t take = pp->total - pp->seen;
            if (take > len - i)
                take = len - i;
            size_t body_seen = pp->seen - PROXY_PROTOCOL_V2_HEAD;
            if (body_seen < pp->keep) {
                size_t k = pp->keep - body_seen;
                if (k > take)
                    k = take;
                memcpy(pp->buf + pp->buf_len, in + i, k);
                pp->buf_len += k;
            }
            pp->seen += take;
            i += take;
            if (pp->seen == pp->total)
                st = v2_finish(pp);
            continue;
        }

        uint8_t c = in[i++];
        pp->seen++;
        switch (pp->phase) {
        case PROXY_PHASE_SIGNATURE:
            /* The two signatures differ in their first byte, so buf_len
             * bytes of one of them have matched. */
            if (pp->buf_len == 0 ? c == v1_prefix[0]
                                 : pp->buf[0] == v1_prefix[0] && c == v1_prefix[pp->buf_len]) {
                pp->buf[pp->buf_len++] = c;
                if (pp->buf_len == sizeof v1_prefix)
                    pp->phase = PROXY_PHASE_V1_LINE;
            } else if (pp->buf_len == 0 ? c == v2_signature[0]
                                        : pp->buf[0] == v2_signature[0] && c == v2_signature[pp->buf_len]) {
                pp->buf[pp->buf_len++] = c;
                if (pp->buf_len == sizeof v2_signature)
                    pp->phase = PROXY_PHASE_V2_HEAD;
            } else {
                st = fail(pp, "no PROXY protocol signature");
            }
            break;
        case PROXY_PHASE_V1_LINE:
            st = v1_byte(pp, c);
            break;
        case PROXY_PHASE_V2_HEAD:
            pp->buf[pp->buf_len++] = c;
            if (pp->buf_len == PROXY_PROTOCOL_V2_HEAD)
                st = v2_head(pp);
            break;
        case PROXY_PHASE_V2_BODY:
        case PROXY_PHASE_DONE:
        case PROXY_PHASE_ERROR:
            break;
        }
    }
    *used = i;
    return st;
}

const char *proxy_protocol_error(const struct proxy_protocol *pp)
{
    return pp->phase == PROXY_PHASE_ERROR ? pp->error : NULL;
}

/* ---- trusted networks --------------------------------------------------------- */

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool proxy_cidr_parse(const char *text, size_t len, struct proxy_cidr *out)
{
    /* A NUL would end the text early for inet_pton and hide the rest. */
    if (len == 0 || len > PROXY_CIDR_TEXT_MAX || memchr(text, '\0', len) != NULL)
        return false;
    const char *slash = memchr(text, '/', len);
    size_t addr_len = slash ? (size_t)(slash - text) : len;
    char addr_text[PROXY_CIDR_TEXT_MAX + 1];
    if (addr_len == 0)
        return false;
    memcpy(addr_text, text, addr_len);
    addr_text[addr_len] = '\0';

    struct proxy_cidr net;
    memset(&net, 0, sizeof net);
    unsigned max_prefix;
    if (inet_pton(AF_INET, addr_text, net.addr) == 1) {
        net.family = AF_INET;
        max_prefix = 32;
    } else if (inet_pton(AF_INET6, addr_text, net.addr) == 1) {
        net.family = AF_INET6;
        max_prefix = 128;
    } else {
        return false;
    }

    unsigned prefix = max_prefix;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - addr_len - 1;
        if (plen < 1 || plen > 3 || (plen > 1 && p[0] == '0'))
            return false;
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (p[i] < '0' || p[i] > '9')
                return false;
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (prefix > max_prefix)
            return false;
    }

    for (unsigned bit = prefix; bit < max_prefix; bit++)
        if (net.addr[bit / 8] & (0x80 >> (bit % 8)))
            return false;

    if (net.family == AF_INET6 && prefix >= 96 && memcmp(net.addr, v4_mapped_prefix, 12) == 0) {
        memmove(net.addr, net.addr + 12, 4);
        memset(net.addr + 4, 0, 12);
        net.family = AF_INET;
        prefix -= 96;
    }
    net.prefix = (uint8_t)prefix;
    *out = net;
    return true;
}

bool proxy_cidr_list_parse(const char *text, struct proxy_cidr *out, size_t max, size_t *count,
                           char *err, size_t errlen)
{
    static const char separators[] = " \t,";
    size_t n = 0;
    const char *p = text;
    for (;;) {
        p += strspn(p, separators);
        if (*p == '\0')
            break;
        size_t len = strcspn(p, separators);
        if (n == max) {
            snprintf(err, errlen, "more than %zu trusted networks", max);
            return false;
        }
        if (!proxy_cidr_parse(p, len, &out[n])) {
            /* Quote at most what a network can be, so the message stays short. */
            int shown = len > PROXY_CIDR_TEXT_MAX ? PROXY_CIDR_TEXT_MAX : (int)len;
            snprintf(err, errlen, "bad network \"%.*s%s\" (want ADDRESS[/PREFIX], no host bits set)",
                     shown, p, len > PROXY_CIDR_TEXT_MAX ? "..." : "");
            return false;
        }
        n++;
        p += len;
    }
    *count = n;
    return true;
}

bool proxy_cidr_contains(const struct proxy_cidr *net, const struct sockaddr *addr)
{
    uint8_t a[16];
    sa_family_t family;
    if (addr->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(a, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr.s6_addr;
        if (memcmp(b, v4_mapped_prefix, 12) == 0) {
            family = AF_INET;
            memcpy(a, b + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(a, b, 16);
        }
    } else {
        return false;
    }
    if (family != net->family)
        return false;
    unsigned full = net->prefix / 8;
    if (memcmp(a, net->addr, full) != 0)
        return false;
    unsigned rest = net->prefix % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == net->addr[full];
}

bool proxy_cidr_list_contains(const struct proxy_cidr *list, size_t count, const struct sockaddr *addr)
{
    for (size_t i = 0; i < count; i++)
        if (proxy_cidr_contains(&list[i], addr))
            return true;
    return false;
}
