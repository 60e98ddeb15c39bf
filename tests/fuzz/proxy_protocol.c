/* Fuzz target: the PROXY protocol header parser and the trusted-network
 * parser (translate/proxy_protocol.h).
 *
 * The input is the first bytes of a connection from a load balancer, or
 * anything else a peer might send there. Properties:
 * 1. Fed whole, one byte at a time, and in chunks split where the input's
 *    hash says, the parser gives the same status, takes the same number of
 *    bytes and produces the same header or error.
 * 2. It never takes a byte past the header: DONE takes exactly the header's
 *    length, which is at most PROXY_PROTOCOL_MAX; NEED_MORE takes everything
 *    and only while fewer than PROXY_PROTOCOL_MAX bytes have arrived.
 * 3. A DONE header is what the bytes say: a v1 line of at most 107 bytes
 *    ending in its first CRLF, whose addresses print back (inet_ntop, then
 *    inet_pton) to the same binary addresses; or a v2 header whose length is
 *    16 plus its length field and whose address bytes are the addresses
 *    returned. Writing the header back in the other version's form and
 *    parsing that gives the same addresses.
 * 4. The input as a network text (proxy_cidr_parse): an accepted network
 *    contains its own address, and not an address differing in its last
 *    prefix bit; the list parser never overruns its output array.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "fuzz_input.h"
#include "proxy_protocol.h"

struct run {
    enum proxy_protocol_status st;
    size_t taken;
    struct proxy_protocol pp;
};

/* chunked: split by rng (NULL: whole input in one call); one_byte: one byte
 * per call. */
static struct run feed(const uint8_t *data, size_t size, struct fuzz_rng *rng, bool one_byte)
{
    struct run r;
    proxy_protocol_init(&r.pp);
    r.st = PROXY_PROTOCOL_NEED_MORE;
    r.taken = 0;
    size_t off = 0;
    while (off < size && r.st == PROXY_PROTOCOL_NEED_MORE) {
        size_t n = one_byte ? 1 : rng ? fuzz_chunk_len(rng, size - off) : size - off;
        size_t used = 0;
        r.st = proxy_protocol_feed(&r.pp, data + off, n, &used);
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(r.st != PROXY_PROTOCOL_NEED_MORE || used == n);
        r.taken += used;
        off += n;
    }
    if (r.st != PROXY_PROTOCOL_NEED_MORE) {
        /* Sticky once decided: more bytes change nothing. */
        struct proxy_protocol before = r.pp;
        size_t used = 1;
        FUZZ_CHECK(proxy_protocol_feed(&r.pp, "x", 1, &used) == r.st && used == 0);
        FUZZ_CHECK(memcmp(&before, &r.pp, sizeof before) == 0);
    }
    return r;
}

static bool same_run(const struct run *a, const struct run *b)
{
    if (a->st != b->st || a->taken != b->taken)
        return false;
    if (a->st == PROXY_PROTOCOL_ERROR)
        return strcmp(proxy_protocol_error(&a->pp), proxy_protocol_error(&b->pp)) == 0;
    if (a->st == PROXY_PROTOCOL_DONE) {
        const struct proxy_protocol_header *x = &a->pp.header, *y = &b->pp.header;
        return x->version == y->version && x->local == y->local && x->length == y->length &&
               x->addrlen == y->addrlen && memcmp(&x->src, &y->src, sizeof x->src) == 0 &&
               memcmp(&x->dst, &y->dst, sizeof x->dst) == 0;
    }
    return true;
}

static const uint8_t *addr_bytes(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
    return ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static bool same_addresses(const struct proxy_protocol_header *a, const struct proxy_protocol_header *b)
{
    size_t n = a->src.ss_family == AF_INET ? 4 : 16;
    return a->local == b->local && a->addrlen == b->addrlen && a->src.ss_family == b->src.ss_family &&
           memcmp(addr_bytes(&a->src), addr_bytes(&b->src), n) == 0 &&
           memcmp(addr_bytes(&a->dst), addr_bytes(&b->dst), n) == 0 &&
           port_of(&a->src) == port_of(&b->src) && port_of(&a->dst) == port_of(&b->dst);
}

static struct run parse_whole(const uint8_t *data, size_t size)
{
    return feed(data, size, NULL, false);
}

/* The header in v1 form, parsed again. */
static void check_as_v1(const struct proxy_protocol_header *h)
{
    char line[PROXY_PROTOCOL_V1_MAX + 64];
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    int family = h->src.ss_family;
    FUZZ_CHECK(inet_ntop(family, addr_bytes(&h->src), src, sizeof src) != NULL);
    FUZZ_CHECK(inet_ntop(family, addr_bytes(&h->dst), dst, sizeof dst) != NULL);
    int n = snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n", family == AF_INET ? "TCP4" : "TCP6",
                     src, dst, port_of(&h->src), port_of(&h->dst));
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof line);
    struct run again = parse_whole((const uint8_t *)line, (size_t)n);
    /* inet_ntop's longest IPv6 forms (an embedded IPv4 address) can pass the
     * 107-byte bound the v1 format sets; those are refused, rightly. */
    if ((size_t)n > PROXY_PROTOCOL_V1_MAX) {
        FUZZ_CHECK(again.st == PROXY_PROTOCOL_ERROR);
        return;
    }
    FUZZ_CHECK(again.st == PROXY_PROTOCOL_DONE && again.taken == (size_t)n);
    FUZZ_CHECK(same_addresses(h, &again.pp.header));
}

/* The header in v2 form, parsed again. */
static void check_as_v2(const struct proxy_protocol_header *h)
{
    static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
    uint8_t out[16 + 36];
    size_t alen = h->src.ss_family == AF_INET ? 4 : 16;
    memcpy(out, sig, 12);
    out[12] = 0x21;
    out[13] = h->src.ss_family == AF_INET ? 0x11 : 0x21;
    out[14] = 0;
    out[15] = (uint8_t)(2 * alen + 4);
    memcpy(out + 16, addr_bytes(&h->src), alen);
    memcpy(out + 16 + alen, addr_bytes(&h->dst), alen);
    uint16_t sp = port_of(&h->src), dp = port_of(&h->dst);
    uint8_t *p = out + 16 + 2 * alen;
    p[0] = (uint8_t)(sp >> 8);
    p[1] = (uint8_t)sp;
    p[2] = (uint8_t)(dp >> 8);
    p[3] = (uint8_t)dp;
    size_t n = 16 + 2 * alen + 4;
    struct run again = parse_whole(out, n);
    FUZZ_CHECK(again.st == PROXY_PROTOCOL_DONE && again.taken == n);
    FUZZ_CHECK(same_addresses(h, &again.pp.header));
}

static void check_done(const uint8_t *data, size_t size, const struct run *r)
{
    const struct proxy_protocol_header *h = &r->pp.header;
    FUZZ_CHECK(r->taken == h->length && h->length <= size && h->length <= PROXY_PROTOCOL_MAX);
    FUZZ_CHECK(proxy_protocol_error(&r->pp) == NULL);
    if (h->version == 1) {
        FUZZ_CHECK(h->length <= PROXY_PROTOCOL_V1_MAX && h->length >= 8);
        FUZZ_CHECK(memcmp(data, "PROXY ", 6) == 0);
        FUZZ_CHECK(data[h->length - 2] == '\r' && data[h->length - 1] == '\n');
        FUZZ_CHECK(memchr(data, '\n', h->length - 1) == NULL);
    } else {
        FUZZ_CHECK(h->version == 2 && h->length >= 16);
        FUZZ_CHECK(h->length == 16 + (size_t)((data[14] << 8) | data[15]));
        FUZZ_CHECK((data[12] >> 4) == 2);
    }
    if (h->local) {
        FUZZ_CHECK(h->addrlen == 0 && h->src.ss_family == 0 && h->dst.ss_family == 0);
        return;
    }
    FUZZ_CHECK(h->src.ss_family == h->dst.ss_family);
    FUZZ_CHECK((h->src.ss_family == AF_INET && h->addrlen == sizeof(struct sockaddr_in)) ||
               (h->src.ss_family == AF_INET6 && h->addrlen == sizeof(struct sockaddr_in6)));
    if (h->version == 2) {
        size_t alen = h->src.ss_family == AF_INET ? 4 : 16;
        const uint8_t *a = data + 16;
        FUZZ_CHECK(memcmp(a, addr_bytes(&h->src), alen) == 0);
        FUZZ_CHECK(memcmp(a + alen, addr_bytes(&h->dst), alen) == 0);
        FUZZ_CHECK(port_of(&h->src) == ((a[2 * alen] << 8) | a[2 * alen + 1]));
        FUZZ_CHECK(port_of(&h->dst) == ((a[2 * alen + 2] << 8) | a[2 * alen + 3]));
        check_as_v1(h);
    } else {
        check_as_v2(h);
    }
}

static void check_cidr(const uint8_t *data, size_t size)
{
    struct proxy_cidr net;
    if (!proxy_cidr_parse((const char *)data, size, &net))
        return;
    FUZZ_CHECK(size <= PROXY_CIDR_TEXT_MAX);
    FUZZ_CHECK((net.family == AF_INET && net.prefix <= 32) || (net.family == AF_INET6 && net.prefix <= 128));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = net.family;
    uint8_t *a = net.family == AF_INET ? (uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr
                                       : ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
    memcpy(a, net.addr, net.family == AF_INET ? 4 : 16);
    FUZZ_CHECK(proxy_cidr_contains(&net, (const struct sockaddr *)&ss));
    if (net.prefix > 0) {
        unsigned bit = net.prefix - 1u;
        a[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
        /* Flipping a bit of ::ffff:0:0/96 itself turns a mapped address into
         * a plain IPv6 one: still outside, which is the point. */
        FUZZ_CHECK(!proxy_cidr_contains(&net, (const struct sockaddr *)&ss));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole = parse_whole(data, size);
    struct run bytes = feed(data, size, NULL, true);
    struct fuzz_rng rng;
    fuzz_rng_init(&rng, fuzz_hash(data, size));
    struct run chunks = feed(data, size, &rng, false);
    FUZZ_CHECK(same_run(&whole, &bytes));
    FUZZ_CHECK(same_run(&whole, &chunks));

    switch (whole.st) {
    case PROXY_PROTOCOL_NEED_MORE:
        FUZZ_CHECK(whole.taken == size && size < PROXY_PROTOCOL_MAX);
        break;
    case PROXY_PROTOCOL_ERROR:
        FUZZ_CHECK(whole.taken >= 1 && whole.taken <= size && whole.taken <= PROXY_PROTOCOL_MAX);
        FUZZ_CHECK(proxy_protocol_error(&whole.pp) != NULL);
        break;
    case PROXY_PROTOCOL_DONE:
        check_done(data, size, &whole);
        break;
    }

    check_cidr(data, size);

    /* The list parser takes a C string. */
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    struct proxy_cidr list[4];
    size_t count = 0;
    char err[128];
    if (proxy_cidr_list_parse(text, list, 4, &count, err, sizeof err))
        FUZZ_CHECK(count <= 4);
    free(text);
    return 0;
}
