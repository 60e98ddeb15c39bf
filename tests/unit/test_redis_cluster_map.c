/* Unit tests for translate/redis_cluster_map.c: key slots as Redis computes
 * them (values from CLUSTER KEYSLOT on Redis 7.0), the redirect errors, and
 * CLUSTER NODES's text into a slot map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "redis_cluster_map.h"

static unsigned slot_of(const char *key)
{
    return cluster_key_slot(key, strlen(key));
}

static void test_key_slot_matches_redis(void **state)
{
    (void)state;
    /* The CRC16 check value Redis's crc16.c documents. */
    assert_int_equal(cluster_crc16("123456789", 9), 0x31c3);
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("bar"), 5061);
    assert_int_equal(slot_of("alice"), slot_of("{alice}"));
    /* Every key of a user shares the user's slot. */
    assert_int_equal(slot_of("pg1:{alice}:read"), slot_of("alice"));
    assert_int_equal(slot_of("pg1:{alice}:lock:phone"), slot_of("alice"));
    assert_int_equal(slot_of("pg1:{alice}:got:x{y}"), slot_of("alice"));
    /* An empty tag hashes the whole key; only the first tag counts. */
    assert_int_equal(slot_of("a{}b"), cluster_crc16("a{}b", 4) & 16383);
    assert_int_equal(slot_of("{a}{b}"), slot_of("a"));
    assert_int_equal(slot_of("{a"), cluster_crc16("{a", 2) & 16383);
    /* Binary keys. */
    assert_int_equal(cluster_key_slot("x\0{y}", 5), slot_of("y"));
}

static void expect_redirect(const char *err, enum cluster_redirect_kind kind, unsigned slot, const char *address)
{
    struct cluster_redirect r;
    bool ok = cluster_redirect_parse(err, strlen(err), &r);
    assert_int_equal(ok, kind != CLUSTER_REDIRECT_NONE);
    assert_int_equal(r.kind, kind);
    if (ok) {
        assert_int_equal(r.slot, slot);
        assert_string_equal(r.address, address);
    }
}

static void test_redirects(void **state)
{
    (void)state;
    expect_redirect("MOVED 3999 127.0.0.1:6381", CLUSTER_REDIRECT_MOVED, 3999, "127.0.0.1:6381");
    expect_redirect("ASK 16383 10.0.0.2:7000", CLUSTER_REDIRECT_ASK, 16383, "10.0.0.2:7000");
    expect_redirect("MOVED 0 ::1:7001", CLUSTER_REDIRECT_MOVED, 0, "[::1]:7001");
    expect_redirect("MOVED 0 [::1]:7001", CLUSTER_REDIRECT_MOVED, 0, "[::1]:7001");
    expect_redirect("MOVED 16384 127.0.0.1:6381", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("MOVED 1 127.0.0.1:0", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("MOVED 1 127.0.0.1:65536", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("MOVED 1 redis-a.example:6379", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("MOVED 1 :6379", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("MOVED 1 127.0.0.1:6379 x", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("MOVED x 127.0.0.1:6379", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("TRYAGAIN Multiple keys request during rehashing of slot", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("NOSCRIPT No matching script", CLUSTER_REDIRECT_NONE, 0, NULL);
    expect_redirect("MOVED ", CLUSTER_REDIRECT_NONE, 0, NULL);
}

static const char nodes_text[] =
    "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,h4 slave "
    "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n"
    "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected "
    "5461-10922\n"
    "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected "
    "10923-16383 [10923->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]\n"
    "6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 0 1426238316232 5 "
    "disconnected\n"
    "7ec23923021cf3ffec47632106199cb7f496ce01 :0@0 master,noaddr - 0 1426238316232 5 disconnected 5\n"
    "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected "
    "0-5459 5460\n";

static void test_cluster_nodes(void **state)
{
    (void)state;
    static struct cluster_map map;
    assert_true(cluster_nodes_parse(nodes_text, strlen(nodes_text), &map));
    assert_int_equal(map.n_nodes, 3);
    assert_int_equal(cluster_map_covered(&map), 16384);
    assert_string_equal(map.nodes[map.owner[0]], "127.0.0.1:30001");
    assert_string_equal(map.nodes[map.owner[5460]], "127.0.0.1:30001");
    assert_string_equal(map.nodes[map.owner[5461]], "127.0.0.1:30002");
    /* Migrating: still its owner's until the owner changes. */
    assert_string_equal(map.nodes[map.owner[10923]], "127.0.0.1:30003");
    assert_string_equal(map.nodes[map.owner[16383]], "127.0.0.1:30003");
    /* A MOVED adds the node, once. */
    unsigned n = cluster_map_node(&map, "127.0.0.1:30009");
    assert_int_equal(n, 3);
    assert_int_equal(cluster_map_node(&map, "127.0.0.1:30009"), 3);

    const char partial[] = "id 127.0.0.1:7000@17000 master - 0 0 1 connected 100-200\n";
    assert_true(cluster_nodes_parse(partial, strlen(partial), &map));
    assert_int_equal(cluster_map_covered(&map), 101);
    assert_int_equal(map.owner[99], CLUSTER_NO_NODE);

    static const char *const bad[] = {
        "",                                                             /* nobody owns anything */
        "id 127.0.0.1:7000@17000 master - 0 0 1 connected\n",          /* nor here */
        "id 127.0.0.1:7000@17000 master\n",                            /* too few fields */
        "id 127.0.0.1:7000@17000 master - 0 0 1 connected 200-100\n",  /* backwards */
        "id 127.0.0.1:7000@17000 master - 0 0 1 connected 16384\n",
        "id 127.0.0.1:7000@17000 master - 0 0 1 connected 1-x\n",
        "id host.example:7000@17000 master - 0 0 1 connected 1\n",     /* a name */
        "id 127.0.0.1:7000 master - 0 0 1 connected 1\n",              /* no bus port */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(cluster_nodes_parse(bad[i], strlen(bad[i]), &map));
}

static void test_addresses(void **state)
{
    (void)state;
    char out[CLUSTER_ADDRESS_MAX];
    assert_true(cluster_address_canonical("127.0.0.1:1", 11, out));
    assert_string_equal(out, "127.0.0.1:1");
    assert_true(cluster_address_canonical("fe80::1:2:6379", 14, out));
    assert_string_equal(out, "[fe80::1:2]:6379");
    assert_false(cluster_address_canonical("256.0.0.1:1", 11, out));
    assert_false(cluster_address_canonical("01.0.0.1:1", 10, out));
    assert_false(cluster_address_canonical("1.2.3:1", 7, out));
    assert_false(cluster_address_canonical("1:2:3:4:5:6:7:8:9:1", 19, out));
    assert_false(cluster_address_canonical("[::1]", 5, out));
    assert_false(cluster_address_canonical("::g:1", 5, out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot_matches_redis),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_cluster_nodes),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
