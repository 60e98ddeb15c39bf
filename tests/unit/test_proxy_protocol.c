/* Unit tests for translate/proxy_protocol: PROXY protocol v1 and v2 headers
 * fed whole, one byte at a time and in random splits, every kind of malformed
 * header, and the trusted-network parser and matcher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "proxy_protocol.h"

/* ---- helpers ------------------------------------------------------------------ */

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* A v2 header: signature, ver_cmd, fam, then body of body_len bytes (may be
 * NULL: zero bytes). out must hold 16 + body_len. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t body_len)
{
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(body_len >> 8);
    out[15] = (uint8_t)body_len;
    if (body_len)
        memcpy(out + 16, body, body_len);
    return 16 + body_len;
}

/* The bytes an IPv4 address block holds: src, dst, sport, dport. */
static size_t inet_block(uint8_t *out, const char *src, const char *dst, uint16_t sport, uint16_t dport)
{
    assert_int_equal(inet_pton(AF_INET, src, out), 1);
    assert_int_equal(inet_pton(AF_INET, dst, out + 4), 1);
    out[8] = (uint8_t)(sport >> 8);
    out[9] = (uint8_t)sport;
    out[10] = (uint8_t)(dport >> 8);
    out[11] = (uint8_t)dport;
    return 12;
}

static size_t inet6_block(uint8_t *out, const char *src, const char *dst, uint16_t sport, uint16_t dport)
{
    assert_int_equal(inet_pton(AF_INET6, src, out), 1);
    assert_int_equal(inet_pton(AF_INET6, dst, out + 16), 1);
    out[32] = (uint8_t)(sport >> 8);
    out[33] = (uint8_t)sport;
    out[34] = (uint8_t)(dport >> 8);
    out[35] = (uint8_t)dport;
    return 36;
}

/* The outcome of one feeding: status, header bytes taken in all, and the
 * parser (header or error). */
struct outcome {
    enum proxy_protocol_status st;
    size_t taken;
    struct proxy_protocol pp;
};

/* Feeds data in chunks whose sizes come from next_chunk until the parser
 * stops needing more or the data runs out. */
static struct outcome feed_split(const uint8_t *data, size_t len, size_t (*next_chunk)(size_t left))
{
    struct outcome o;
    proxy_protocol_init(&o.pp);
    o.taken = 0;
    o.st = PROXY_PROTOCOL_NEED_MORE;
    size_t off = 0;
    while (o.st == PROXY_PROTOCOL_NEED_MORE && off < len) {
        size_t n = next_chunk(len - off);
        size_t used = 0;
        o.st = proxy_protocol_feed(&o.pp, data + off, n, &used);
        assert_true(used <= n);
        if (o.st == PROXY_PROTOCOL_NEED_MORE)
            assert_int_equal(used, n);
        o.taken += used;
        off += n;
    }
    return o;
}

static size_t chunk_all(size_t left) { return left; }
static size_t chunk_one(size_t left) { (void)left; return 1; }
static size_t chunk_random(size_t left) { return 1 + (size_t)rand() % left; }

static void assert_same_outcome(const struct outcome *a, const struct outcome *b)
{
    assert_int_equal(a->st, b->st);
    assert_int_equal(a->taken, b->taken);
    if (a->st == PROXY_PROTOCOL_DONE) {
        const struct proxy_protocol_header *x = &a->pp.header, *y = &b->pp.header;
        assert_int_equal(x->version, y->version);
        assert_int_equal(x->local, y->local);
        assert_int_equal(x->length, y->length);
        assert_int_equal(x->addrlen, y->addrlen);
        assert_memory_equal(&x->src, &y->src, sizeof x->src);
        assert_memory_equal(&x->dst, &y->dst, sizeof x->dst);
    } else if (a->st == PROXY_PROTOCOL_ERROR) {
        assert_string_equal(proxy_protocol_error(&a->pp), proxy_protocol_error(&b->pp));
    }
}

/* Whole, byte by byte and 200 random splits must agree; the whole feeding is
 * returned for the caller's checks. */
static struct outcome feed_every_way(const uint8_t *data, size_t len)
{
    struct outcome whole = feed_split(data, len, chunk_all);
    struct outcome bytes = feed_split(data, len, chunk_one);
    assert_same_outcome(&whole, &bytes);
    for (int i = 0; i < 200; i++) {
        struct outcome r = feed_split(data, len, chunk_random);
        assert_same_outcome(&whole, &r);
    }
    return whole;
}

static void assert_addr(const struct sockaddr_storage *ss, const char *text, uint16_t port)
{
    char buf[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        assert_int_equal(ss->ss_family, AF_INET6);
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(buf, text);
}

/* A header followed by the client's first bytes: DONE, exactly the header
 * taken, whatever the split. */
static struct outcome expect_done(const uint8_t *hdr, size_t hdr_len, unsigned version, bool local)
{
    static const char tail[] = "\x16\x03\x01 client bytes";
    uint8_t data[PROXY_PROTOCOL_MAX + sizeof tail];
    assert_true(hdr_len <= PROXY_PROTOCOL_MAX);
    memcpy(data, hdr, hdr_len);
    memcpy(data + hdr_len, tail, sizeof tail - 1);
    struct outcome o = feed_every_way(data, hdr_len + sizeof tail - 1);
    assert_int_equal(o.st, PROXY_PROTOCOL_DONE);
    assert_int_equal(o.taken, hdr_len);
    assert_int_equal(o.pp.header.length, hdr_len);
    assert_int_equal(o.pp.header.version, version);
    assert_int_equal(o.pp.header.local, local);
    assert_null(proxy_protocol_error(&o.pp));
    if (local)
        assert_int_equal(o.pp.header.addrlen, 0);
    /* The header alone, without client bytes, is complete too. */
    struct outcome alone = feed_every_way(hdr, hdr_len);
    assert_same_outcome(&o, &alone);
    return o;
}

static struct outcome expect_done_text(const char *hdr, unsigned version, bool local)
{
    return expect_done((const uint8_t *)hdr, strlen(hdr), version, local);
}

/* Refused with a reason containing `why`, whatever the split, and the bytes
 * before the refusal all taken as header. */
static void expect_error(const uint8_t *data, size_t len, const char *why)
{
    struct outcome o = feed_every_way(data, len);
    assert_int_equal(o.st, PROXY_PROTOCOL_ERROR);
    assert_non_null(proxy_protocol_error(&o.pp));
    if (strstr(proxy_protocol_error(&o.pp), why) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", proxy_protocol_error(&o.pp), why);
    assert_true(o.taken >= 1 && o.taken <= len);
}

static void expect_error_text(const char *data, const char *why)
{
    expect_error((const uint8_t *)data, strlen(data), why);
}

/* ---- version 1 ---------------------------------------------------------------- */

static void test_v1_tcp4(void **state)
{
    (void)state;
    struct outcome o = expect_done_text("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 1, false);
    assert_int_equal(o.pp.header.addrlen, sizeof(struct sockaddr_in));
    assert_addr(&o.pp.header.src, "192.168.0.1", 56324);
    assert_addr(&o.pp.header.dst, "192.168.0.11", 443);
    o = expect_done_text("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", 1, false);
    assert_addr(&o.pp.header.src, "0.0.0.0", 0);
    assert_addr(&o.pp.header.dst, "255.255.255.255", 65535);
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    struct outcome o = expect_done_text("PROXY TCP6 2001:db8::1 ::1 65535 995\r\n", 1, false);
    assert_int_equal(o.pp.header.addrlen, sizeof(struct sockaddr_in6));
    assert_addr(&o.pp.header.src, "2001:db8::1", 65535);
    assert_addr(&o.pp.header.dst, "::1", 995);
    o = expect_done_text("PROXY TCP6 ::ffff:10.1.2.3 ::ffff:10.0.0.1 40000 110\r\n", 1, false);
    assert_addr(&o.pp.header.src, "::ffff:10.1.2.3", 40000);
    /* The longest TCP6 form with full-length addresses. */
    expect_done_text("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", 1, false);
}

static void test_v1_unknown(void **state)
{
    (void)state;
    expect_done_text("PROXY UNKNOWN\r\n", 1, true);
    /* Anything after UNKNOWN up to the CRLF is ignored, as the spec says. */
    expect_done_text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 1, true);
    expect_done_text("PROXY UNKNOWN whatever the sender wrote\r\n", 1, true);
    expect_error_text("PROXY UNKNOWNX\r\n", "v1:");
}

static void test_v1_length_bound(void **state)
{
    (void)state;
    /* The specification's worst case: exactly 107 bytes. */
    const char *max = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(max), PROXY_PROTOCOL_V1_MAX);
    expect_done_text(max, 1, true);

    /* 108 bytes: refused at the byte that cannot be the LF any more. */
    char longer[200];
    snprintf(longer, sizeof longer, "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n");
    assert_int_equal(strlen(longer), PROXY_PROTOCOL_V1_MAX + 1);
    expect_error_text(longer, "107");
    struct outcome o = feed_split((const uint8_t *)longer, strlen(longer), chunk_all);
    assert_int_equal(o.taken, PROXY_PROTOCOL_V1_MAX);

    /* A line that never ends stays bounded. */
    char endless[400];
    memset(endless, 'A', sizeof endless);
    memcpy(endless, "PROXY ", 6);
    expect_error((const uint8_t *)endless, sizeof endless, "107");
}

static void test_v1_malformed(void **state)
{
    (void)state;
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "CRLF");
    expect_error_text("PROXY \r\n", "missing field");
    expect_error_text("PROXY\r\n", "signature");
    expect_error_text("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "missing field");
    expect_error_text("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "missing field");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "missing field");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "extra field");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "extra field");
    expect_error_text("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol");
    expect_error_text("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol");
    expect_error_text("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol");
    /* Address of the other family, or not an address at all. */
    expect_error_text("PROXY TCP4 ::1 ::1 1 2\r\n", "bad address");
    expect_error_text("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "bad address");
    expect_error_text("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "bad address");
    expect_error_text("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "bad address");
    expect_error_text("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "bad address");
    expect_error_text("PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "bad address");
    expect_error_text("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555 ::1 1 2\r\n",
                      "bad address");
    /* Ports. */
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "bad port");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n", "bad port");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "bad port");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "bad port");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n", "bad port");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", "bad port");
    /* A CR inside the line is a byte of a field, not an end. */
    expect_error_text("PROXY TCP4 1.2.3.4\r 5.6.7.8 1 2\r\n", "bad address");
    expect_error_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "bad port");
}

static void test_v1_nul_inside_address(void **state)
{
    (void)state;
    static const char line[] = "PROXY TCP4 1.2.3.4\0x 5.6.7.8 1 2\r\n";
    expect_error((const uint8_t *)line, sizeof line - 1, "bad address");
    static const char port[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1\0 2\r\n";
    expect_error((const uint8_t *)port, sizeof port - 1, "bad port");
}

/* ---- version 2 ---------------------------------------------------------------- */

static void test_v2_inet(void **state)
{
    (void)state;
    uint8_t body[12], hdr[64];
    inet_block(body, "203.0.113.7", "10.0.0.5", 51234, 110);
    size_t n = v2(hdr, 0x21, 0x11, body, sizeof body);
    assert_int_equal(n, 28);
    struct outcome o = expect_done(hdr, n, 2, false);
    assert_int_equal(o.pp.header.addrlen, sizeof(struct sockaddr_in));
    assert_addr(&o.pp.header.src, "203.0.113.7", 51234);
    assert_addr(&o.pp.header.dst, "10.0.0.5", 110);
}

static void test_v2_inet6(void **state)
{
    (void)state;
    uint8_t body[36], hdr[64];
    inet6_block(body, "2001:db8::42", "fd00::1", 65535, 995);
    size_t n = v2(hdr, 0x21, 0x21, body, sizeof body);
    struct outcome o = expect_done(hdr, n, 2, false);
    assert_int_equal(o.pp.header.addrlen, sizeof(struct sockaddr_in6));
    assert_addr(&o.pp.header.src, "2001:db8::42", 65535);
    assert_addr(&o.pp.header.dst, "fd00::1", 995);
}

static void test_v2_tlvs_skipped(void **state)
{
    (void)state;
    /* HAProxy's send-proxy-v2 with proxy-v2-options: ALPN, authority, a
     * unique id and a CRC32C, then padding (PP2_TYPE_NOOP). */
    uint8_t body[PROXY_PROTOCOL_MAX], hdr[PROXY_PROTOCOL_MAX];
    size_t b = inet_block(body, "198.51.100.9", "10.0.0.5", 40000, 995);
    static const uint8_t tlvs[] = { 0x01, 0x00, 0x04, 'p', 'o', 'p', '3',
                                    0x02, 0x00, 0x0b, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'o', 'r', 'g',
                                    0x05, 0x00, 0x03, 'u', 'i', 'd',
                                    0x03, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,
                                    0x04, 0x00, 0x02, 0x00, 0x00 };
    memcpy(body + b, tlvs, sizeof tlvs);
    b += sizeof tlvs;
    size_t n = v2(hdr, 0x21, 0x11, body, b);
    struct outcome o = expect_done(hdr, n, 2, false);
    assert_addr(&o.pp.header.src, "198.51.100.9", 40000);

    /* TLV bytes are skipped unread: even garbage after the addresses is fine. */
    memset(body + 12, 0xff, 100);
    n = v2(hdr, 0x21, 0x11, body, 112);
    o = expect_done(hdr, n, 2, false);
    assert_addr(&o.pp.header.dst, "10.0.0.5", 995);
}

static void test_v2_length_bound(void **state)
{
    (void)state;
    uint8_t body[PROXY_PROTOCOL_MAX], hdr[PROXY_PROTOCOL_MAX + 16];
    memset(body, 0, sizeof body);
    inet6_block(body, "2001:db8::1", "2001:db8::2", 1, 2);
    /* Exactly 536 bytes in all: accepted. */
    size_t n = v2(hdr, 0x21, 0x21, body, PROXY_PROTOCOL_MAX - 16);
    assert_int_equal(n, PROXY_PROTOCOL_MAX);
    struct outcome o = expect_done(hdr, n, 2, false);
    assert_addr(&o.pp.header.src, "2001:db8::1", 1);
    /* One more: refused as soon as the length field is read. */
    n = v2(hdr, 0x21, 0x21, body, PROXY_PROTOCOL_MAX - 15);
    expect_error(hdr, 16, "536");
    o = feed_split(hdr, n, chunk_all);
    assert_int_equal(o.st, PROXY_PROTOCOL_ERROR);
    assert_int_equal(o.taken, 16);
    /* The largest length field. */
    hdr[14] = hdr[15] = 0xff;
    expect_error(hdr, 16, "536");
}

static void test_v2_local_and_unspec(void **state)
{
    (void)state;
    uint8_t body[300], hdr[400];
    memset(body, 0x5a, sizeof body);
    /* LOCAL: a health check from the balancer itself. */
    size_t n = v2(hdr, 0x20, 0x00, NULL, 0);
    assert_int_equal(n, 16);
    expect_done(hdr, n, 2, true);
    /* LOCAL ignores the family and skips whatever block comes with it. */
    n = v2(hdr, 0x20, 0x11, body, 12);
    expect_done(hdr, n, 2, true);
    n = v2(hdr, 0x20, 0x77, body, 3);
    expect_done(hdr, n, 2, true);
    /* PROXY with UNSPEC: no usable address, keep the socket's peer. */
    n = v2(hdr, 0x21, 0x00, NULL, 0);
    expect_done(hdr, n, 2, true);
    n = v2(hdr, 0x21, 0x00, body, 20);
    expect_done(hdr, n, 2, true);
    /* AF_UNIX source: no IP address to use either. */
    n = v2(hdr, 0x21, 0x31, body, 216);
    expect_done(hdr, n, 2, true);
}

static void test_v2_malformed(void **state)
{
    (void)state;
    uint8_t body[64], hdr[128];
    inet_block(body, "192.0.2.1", "192.0.2.2", 1, 2);

    /* Every byte of the signature matters. */
    for (size_t i = 0; i < 12; i++) {
        size_t n = v2(hdr, 0x21, 0x11, body, 12);
        hdr[i] ^= 0x20;
        expect_error(hdr, n, "signature");
        struct outcome o = feed_split(hdr, n, chunk_all);
        assert_int_equal(o.taken, i + 1);
    }
    size_t n = v2(hdr, 0x11, 0x11, body, 12);
    expect_error(hdr, n, "version");
    n = v2(hdr, 0x31, 0x11, body, 12);
    expect_error(hdr, n, "version");
    for (uint8_t cmd = 2; cmd < 16; cmd++) {
        n = v2(hdr, (uint8_t)(0x20 | cmd), 0x11, body, 12);
        expect_error(hdr, n, "command");
    }
    n = v2(hdr, 0x21, 0x12, body, 12);
    expect_error(hdr, n, "datagram");
    n = v2(hdr, 0x21, 0x22, body, 36);
    expect_error(hdr, n, "datagram");
    n = v2(hdr, 0x21, 0x32, body, 64);
    expect_error(hdr, n, "datagram");
    static const uint8_t bad_fams[] = { 0x01, 0x10, 0x13, 0x20, 0x41, 0xff };
    for (size_t i = 0; i < sizeof bad_fams; i++) {
        n = v2(hdr, 0x21, bad_fams[i], body, 12);
        expect_error(hdr, n, "family");
    }
    /* Address blocks shorter than their family needs. */
    n = v2(hdr, 0x21, 0x11, body, 11);
    expect_error(hdr, n, "too short");
    n = v2(hdr, 0x21, 0x21, body, 35);
    expect_error(hdr, n, "too short");
    n = v2(hdr, 0x21, 0x31, body, 64);
    expect_error(hdr, n, "too short");
}

static void test_v2_partial_needs_more(void **state)
{
    (void)state;
    uint8_t body[36], hdr[64];
    inet6_block(body, "2001:db8::1", "2001:db8::2", 1, 2);
    size_t n = v2(hdr, 0x21, 0x21, body, sizeof body);
    for (size_t cut = 0; cut < n; cut++) {
        struct outcome o = feed_split(hdr, cut, chunk_all);
        assert_int_equal(o.st, PROXY_PROTOCOL_NEED_MORE);
        assert_int_equal(o.taken, cut);
    }
}

/* What HAProxy 2.6 sent to a node (send-proxy-v2, then send-proxy), recorded
 * with the client's first line behind it. */
static void test_haproxy_recordings(void **state)
{
    (void)state;
    static const uint8_t v2_rec[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00\x00\x01\x7f\x00\x00\x01"
                                    "\xed\xe0\x5a\x46" "CAPA\r\n";
    struct outcome o = feed_every_way(v2_rec, sizeof v2_rec - 1);
    assert_int_equal(o.st, PROXY_PROTOCOL_DONE);
    assert_int_equal(o.taken, 28);
    assert_addr(&o.pp.header.src, "127.0.0.1", 60896);
    assert_addr(&o.pp.header.dst, "127.0.0.1", 23110);

    static const char v1_rec[] = "PROXY TCP4 127.0.0.1 127.0.0.1 41634 23111\r\nCAPA\r\n";
    o = feed_every_way((const uint8_t *)v1_rec, sizeof v1_rec - 1);
    assert_int_equal(o.st, PROXY_PROTOCOL_DONE);
    assert_int_equal(o.taken, sizeof v1_rec - 1 - 6);
    assert_addr(&o.pp.header.src, "127.0.0.1", 41634);
    assert_addr(&o.pp.header.dst, "127.0.0.1", 23111);
}

/* ---- both ------------------------------------------------------------------------ */

static void test_neither_signature(void **state)
{
    (void)state;
    expect_error_text("GET / HTTP/1.0\r\n", "signature");
    expect_error_text("USER alice\r\n", "signature");
    expect_error_text("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "signature");
    expect_error_text("PROXX TCP4\r\n", "signature");
    /* A TLS ClientHello from a client that should have come through the balancer. */
    static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
    expect_error(hello, sizeof hello, "signature");
    /* Starts like v2, goes on like v1. */
    expect_error_text("\r\nPROXY TCP4", "signature");
    struct outcome o = feed_split((const uint8_t *)"XPROXY", 6, chunk_all);
    assert_int_equal(o.taken, 1);
}

static void test_states_are_sticky(void **state)
{
    (void)state;
    struct proxy_protocol pp;
    size_t used = 99;
    proxy_protocol_init(&pp);
    assert_int_equal(proxy_protocol_feed(&pp, "", 0, &used), PROXY_PROTOCOL_NEED_MORE);
    assert_int_equal(used, 0);
    assert_null(proxy_protocol_error(&pp));
    static const char hdr[] = "PROXY UNKNOWN\r\nUSER x\r\n";
    assert_int_equal(proxy_protocol_feed(&pp, hdr, sizeof hdr - 1, &used), PROXY_PROTOCOL_DONE);
    assert_int_equal(used, 15);
    assert_int_equal(proxy_protocol_feed(&pp, "PROXY", 5, &used), PROXY_PROTOCOL_DONE);
    assert_int_equal(used, 0);

    proxy_protocol_init(&pp);
    assert_int_equal(proxy_protocol_feed(&pp, "NOPE", 4, &used), PROXY_PROTOCOL_ERROR);
    assert_int_equal(used, 1);
    assert_int_equal(proxy_protocol_feed(&pp, "PROXY UNKNOWN\r\n", 15, &used), PROXY_PROTOCOL_ERROR);
    assert_int_equal(used, 0);
    assert_non_null(proxy_protocol_error(&pp));
}

/* ---- trusted networks --------------------------------------------------------------- */

static bool parse(const char *text, struct proxy_cidr *out)
{
    return proxy_cidr_parse(text, strlen(text), out);
}

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
        sin6->sin6_family = AF_INET6;
    }
    return ss;
}

static bool inside(const char *net_text, const char *addr_text)
{
    struct proxy_cidr net;
    assert_true(parse(net_text, &net));
    struct sockaddr_storage ss = addr(addr_text);
    return proxy_cidr_contains(&net, (const struct sockaddr *)&ss);
}

static void test_cidr_parse(void **state)
{
    (void)state;
    struct proxy_cidr n;
    assert_true(parse("10.0.0.0/8", &n));
    assert_int_equal(n.family, AF_INET);
    assert_int_equal(n.prefix, 8);
    assert_int_equal(n.addr[0], 10);
    assert_true(parse("127.0.0.1/32", &n));
    assert_int_equal(n.prefix, 32);
    assert_true(parse("127.0.0.1", &n));
    assert_int_equal(n.prefix, 32);
    assert_true(parse("::1/128", &n));
    assert_int_equal(n.family, AF_INET6);
    assert_int_equal(n.prefix, 128);
    assert_true(parse("::1", &n));
    assert_int_equal(n.prefix, 128);
    assert_true(parse("fd00::/8", &n));
    assert_int_equal(n.prefix, 8);
    assert_true(parse("0.0.0.0/0", &n));
    assert_int_equal(n.prefix, 0);
    assert_true(parse("::/0", &n));
    assert_int_equal(n.family, AF_INET6);
    assert_true(parse("192.168.0.0/23", &n));
    /* A network inside ::ffff:0:0/96 is the IPv4 network it names. */
    assert_true(parse("::ffff:10.0.0.0/104", &n));
    assert_int_equal(n.family, AF_INET);
    assert_int_equal(n.prefix, 8);
    assert_int_equal(n.addr[0], 10);
    assert_true(parse("::ffff:0:0/96", &n));
    assert_int_equal(n.family, AF_INET);
    assert_int_equal(n.prefix, 0);
    /* The longest text there is. */
    assert_true(parse("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", &n));
    assert_int_equal(strlen("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128"), PROXY_CIDR_TEXT_MAX);
}

static void test_cidr_parse_refused(void **state)
{
    (void)state;
    struct proxy_cidr n;
    memset(&n, 0x5a, sizeof n);
    const char *bad[] = {
        "", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.1/8", "10.0.0.0/08",
        "10.0.0.0/8x", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/1000", "host.example/8",
        "10.0.0/8", "1.2.3.4/32/1", "::1/127/", "fe80::1%eth0", "fd00::1/8", " 10.0.0.0/8",
        "10.0.0.0 /8", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/1280",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], &n))
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(n.prefix, 0x5a);
    }
    /* A NUL in the text must not end it early. */
    assert_false(proxy_cidr_parse("10.0.0.0\0/8", 11, &n));
    assert_false(proxy_cidr_parse("10.0.0.0/8\0", 11, &n));
    /* Only len bytes are read. */
    assert_true(proxy_cidr_parse("10.0.0.0/8junk", 10, &n));
    assert_int_equal(n.prefix, 8);
}

static void test_cidr_contains(void **state)
{
    (void)state;
    assert_true(inside("10.0.0.0/8", "10.1.2.3"));
    assert_true(inside("10.0.0.0/8", "10.255.255.255"));
    assert_false(inside("10.0.0.0/8", "11.0.0.0"));
    assert_false(inside("10.0.0.0/8", "9.255.255.255"));
    assert_true(inside("127.0.0.1/32", "127.0.0.1"));
    assert_false(inside("127.0.0.1/32", "127.0.0.2"));
    /* Prefixes off a byte boundary. */
    assert_true(inside("192.168.0.0/23", "192.168.1.255"));
    assert_false(inside("192.168.0.0/23", "192.168.2.0"));
    assert_true(inside("10.0.0.0/31", "10.0.0.1"));
    assert_false(inside("10.0.0.0/31", "10.0.0.2"));
    assert_true(inside("0.0.0.0/0", "203.0.113.1"));
    assert_true(inside("::1/128", "::1"));
    assert_false(inside("::1/128", "::2"));
    assert_true(inside("fd00::/8", "fdff::1"));
    assert_false(inside("fd00::/8", "fe00::1"));
    assert_true(inside("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(inside("2001:db8::/33", "2001:db8:8000::1"));
    /* IPv4-mapped peers are their IPv4 address. */
    assert_true(inside("10.0.0.0/8", "::ffff:10.9.8.7"));
    assert_false(inside("10.0.0.0/8", "::ffff:11.9.8.7"));
    assert_true(inside("127.0.0.1/32", "::ffff:127.0.0.1"));
    assert_true(inside("::ffff:10.0.0.0/104", "10.1.1.1"));
    assert_true(inside("::ffff:10.0.0.0/104", "::ffff:10.1.1.1"));
    /* Otherwise the families do not mix. */
    assert_false(inside("::/0", "10.1.1.1"));
    assert_false(inside("::/0", "::ffff:10.1.1.1"));
    assert_true(inside("::/0", "2001:db8::1"));
    assert_false(inside("0.0.0.0/0", "::1"));
    assert_false(inside("127.0.0.1/32", "::1"));
    assert_false(inside("::1/128", "127.0.0.1"));
    /* Not an IP socket: never trusted. */
    struct proxy_cidr n;
    assert_true(parse("0.0.0.0/0", &n));
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    assert_false(proxy_cidr_contains(&n, (const struct sockaddr *)&un));
}

static void test_cidr_list(void **state)
{
    (void)state;
    struct proxy_cidr list[4];
    size_t count = 99;
    char err[128] = "";
    assert_true(proxy_cidr_list_parse("10.0.0.0/8, 127.0.0.1/32\t::1/128", list, 4, &count, err, sizeof err));
    assert_int_equal(count, 3);
    struct sockaddr_storage a = addr("10.2.3.4"), b = addr("::1"), c = addr("192.0.2.1"),
                            d = addr("::ffff:127.0.0.1");
    assert_true(proxy_cidr_list_contains(list, count, (const struct sockaddr *)&a));
    assert_true(proxy_cidr_list_contains(list, count, (const struct sockaddr *)&b));
    assert_false(proxy_cidr_list_contains(list, count, (const struct sockaddr *)&c));
    assert_true(proxy_cidr_list_contains(list, count, (const struct sockaddr *)&d));
    /* No networks: nobody is trusted. */
    assert_false(proxy_cidr_list_contains(list, 0, (const struct sockaddr *)&a));

    assert_true(proxy_cidr_list_parse("", list, 4, &count, err, sizeof err));
    assert_int_equal(count, 0);
    assert_true(proxy_cidr_list_parse(" ,, \t", list, 4, &count, err, sizeof err));
    assert_int_equal(count, 0);
    assert_true(proxy_cidr_list_parse("1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8", list, 4, &count, err,
                                      sizeof err));
    assert_int_equal(count, 4);

    assert_false(proxy_cidr_list_parse("1.0.0.0/8 2.0.0.0/8 3.0.0.0/8 4.0.0.0/8 5.0.0.0/8", list, 4,
                                       &count, err, sizeof err));
    assert_non_null(strstr(err, "more than 4"));
    assert_false(proxy_cidr_list_parse("10.0.0.0/8 10.0.0.1/8", list, 4, &count, err, sizeof err));
    assert_non_null(strstr(err, "\"10.0.0.1/8\""));
    /* A long bad item is quoted only in part. */
    char junk[300];
    memset(junk, 'x', sizeof junk - 1);
    junk[sizeof junk - 1] = '\0';
    assert_false(proxy_cidr_list_parse(junk, list, 4, &count, err, sizeof err));
    assert_non_null(strstr(err, "...\""));
    assert_true(strlen(err) < 120);
}

int main(void)
{
    srand(8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_length_bound),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v1_nul_inside_address),
        cmocka_unit_test(test_v2_inet),
        cmocka_unit_test(test_v2_inet6),
        cmocka_unit_test(test_v2_tlvs_skipped),
        cmocka_unit_test(test_v2_length_bound),
        cmocka_unit_test(test_v2_local_and_unspec),
        cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_v2_partial_needs_more),
        cmocka_unit_test(test_haproxy_recordings),
        cmocka_unit_test(test_neither_signature),
        cmocka_unit_test(test_states_are_sticky),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_parse_refused),
        cmocka_unit_test(test_cidr_contains),
        cmocka_unit_test(test_cidr_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
