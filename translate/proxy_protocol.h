/* proxy_protocol: the HAProxy PROXY protocol header, versions 1 and 2
 * (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt), and the
 * trusted-network check that decides who may send one. Pure: no I/O.
 *
 * A load balancer puts the header in front of the client's bytes, so the
 * gateway sees the real client address for its logs, limits and throttles.
 * The parser is fed the first bytes of a connection in any split and says
 * NEED_MORE, DONE or ERROR. It never takes a byte past the header: on DONE,
 * *used is the number of bytes of the last input that belonged to it, and the
 * rest of that input is the client's (a TLS ClientHello, say).
 *
 * Intended use on a non-blocking socket (the header is not reread):
 *   n = recv(fd, buf, PROXY_PROTOCOL_MAX, MSG_PEEK);
 *   st = proxy_protocol_feed(&pp, buf, n, &used);
 *   recv(fd, buf, used, 0);   -- drop exactly the header bytes seen
 * On NEED_MORE every byte fed was header (used == n), so the peeked bytes are
 * read for real and the level-triggered read watcher does not spin.
 *
 * Bounds: a header is at most PROXY_PROTOCOL_MAX (536) bytes, the size the
 * specification guarantees a sender can put in one TCP segment. Version 1
 * lines are at most 107 bytes (the specification's own bound). A version 2
 * header announcing more than 536 - 16 bytes of addresses and TLVs is refused
 * as soon as its length field is read; TLVs are skipped without being stored.
 *
 * Accepted forms:
 * - v1 "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (and TCP6): single spaces,
 *   addresses as inet_pton reads them for that family, ports 0..65535 in
 *   decimal without leading zeros.
 * - v1 "PROXY UNKNOWN[ anything]\r\n": local (keep the socket's peer).
 * - v2 PROXY over STREAM with AF_INET or AF_INET6: the addresses.
 * - v2 LOCAL (health checks from the balancer itself), v2 UNSPEC and v2
 *   AF_UNIX: local; the address block is skipped.
 * Everything else is an ERROR, with a reason for the log: a v2 DGRAM
 * transport, unknown version, command or family, an address block shorter
 * than its family needs, a v1 line without CRLF in 107 bytes or with a bad
 * field, and any first bytes that are neither signature.
 */
#ifndef POPGATE_PROXY_PROTOCOL_H
#define POPGATE_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_PROTOCOL_MAX 536     /* longest header accepted, v1 or v2 */
#define PROXY_PROTOCOL_V1_MAX 107  /* longest v1 line, CRLF included */
#define PROXY_PROTOCOL_V2_HEAD 16  /* signature, version/command, family, length */
/* The part of a v2 address block that is kept: two IPv6 addresses and ports. */
#define PROXY_PROTOCOL_V2_ADDR_KEEP 36

enum proxy_protocol_status {
    PROXY_PROTOCOL_NEED_MORE,  /* every byte fed so far is header; feed more */
    PROXY_PROTOCOL_DONE,       /* the header is complete: see pp->header */
    PROXY_PROTOCOL_ERROR,      /* not a valid header: close the connection */
};

struct proxy_protocol_header {
    unsigned version;          /* 1 or 2 */
    /* true: v2 LOCAL, v2 UNSPEC or AF_UNIX, v1 UNKNOWN. The socket's own peer
     * is the client; src and dst are zeroed. */
    bool local;
    struct sockaddr_storage src;   /* AF_INET or AF_INET6, port set */
    struct sockaddr_storage dst;
    socklen_t addrlen;             /* of src and dst (same family) */
    size_t length;                 /* header bytes, all of which were consumed */
};

enum proxy_protocol_phase {
    PROXY_PHASE_SIGNATURE,     /* matching "PROXY " or the v2 signature */
    PROXY_PHASE_V1_LINE,       /* collecting the v1 line up to its LF */
    PROXY_PHASE_V2_HEAD,       /* collecting the 16 fixed v2 bytes */
    PROXY_PHASE_V2_BODY,       /* address block and TLVs */
    PROXY_PHASE_DONE,
    PROXY_PHASE_ERROR,
};

/* One per connection, on the stack or inside the connection's object; no
 * resources, so no deinit. Copyable. */
struct proxy_protocol {
    enum proxy_protocol_phase phase;
    size_t seen;               /* header bytes consumed so far, <= PROXY_PROTOCOL_MAX */
    size_t total;              /* v2: 16 + announced length, once known */
    size_t keep;               /* v2: bytes of the address block to keep */
    /* v1: the line (<= 107 bytes); v2: the 16 fixed bytes, then at most
     * PROXY_PROTOCOL_V2_ADDR_KEEP address bytes. */
    uint8_t buf[PROXY_PROTOCOL_V1_MAX + 1];
    size_t buf_len;
    const char *error;         /* static text, set with PROXY_PHASE_ERROR */
    struct proxy_protocol_header header;
};

void proxy_protocol_init(struct proxy_protocol *pp);

/* Feed the next bytes of the connection. *used gets how many of them were
 * header: all of them on NEED_MORE, the header's tail on DONE, and on ERROR
 * the bytes up to and including the one that made the header invalid. Once
 * DONE or ERROR, later calls return the same status with *used = 0. */
enum proxy_protocol_status proxy_protocol_feed(struct proxy_protocol *pp, const void *data,
                                               size_t len, size_t *used);

/* Why the header was refused; NULL unless the parser is in error. */
const char *proxy_protocol_error(const struct proxy_protocol *pp);

/* Trusted networks. Comparison follows nginx's set_real_ip_from: an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports
 * for an IPv4 client) is compared as the IPv4 address, and a network written
 * inside ::ffff:0:0/96 (prefix >= 96) is stored as the IPv4 network it names.
 * Otherwise an IPv4 address is never inside an IPv6 network, nor the reverse:
 * "::/0" means every IPv6 client, not every client. */
struct proxy_cidr {
    sa_family_t family;        /* AF_INET or AF_INET6 */
    uint8_t prefix;            /* 0..32 or 0..128 */
    uint8_t addr[16];          /* network address; first 4 bytes for AF_INET */
};

/* Longest text of one network: an IPv6 address in its longest form
 * (45 characters, INET6_ADDRSTRLEN - 1) and "/128". */
#define PROXY_CIDR_TEXT_MAX 49

/* "10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8"; an address without a
 * prefix is one host. Refused: empty text, a bad address, a prefix out of
 * range or with leading zeros, and host bits set below the prefix
 * ("10.0.0.1/8", usually a typo for a host or a wrong prefix). len bytes of
 * text, not NUL-terminated. */
bool proxy_cidr_parse(const char *text, size_t len, struct proxy_cidr *out);

/* A list of networks separated by spaces, tabs or commas, as a config value
 * holds it. At most max networks into out; *count gets how many. False with a
 * message in err (which names the offending network) on a bad network or too
 * many of them; out and *count are then unspecified. An empty list is valid. */
bool proxy_cidr_list_parse(const char *text, struct proxy_cidr *out, size_t max, size_t *count,
                           char *err, size_t errlen);

/* Is addr (AF_INET or AF_INET6; anything else is never inside) inside net? */
bool proxy_cidr_contains(const struct proxy_cidr *net, const struct sockaddr *addr);
/* Inside any of the count networks of list? */
bool proxy_cidr_list_contains(const struct proxy_cidr *list, size_t count, const struct sockaddr *addr);

#endif
