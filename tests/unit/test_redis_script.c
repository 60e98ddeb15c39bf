/* Unit tests for backends/redis_script.c and lua_scripts.c: each script's
 * source is its preamble naming KEYS and ARGV, then its body; every position
 * of every script has a name, unique within the script; and the SHA1 that
 * EVALSHA sends is the one of that source; a call whose keys would land on
 * two Redis Cluster slots is refused before anything is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "redis_script.h"
#include "redis_store.h"

static void test_preamble_names_keys_and_args(void **state)
{
    (void)state;
    const char *release = redis_script_source(LUA_LOCK_RELEASE);
    assert_non_null(release);
    static const char want[] = "local lock_key, sessions_key = KEYS[1], KEYS[2]\nlocal token = ARGV[1]\n";
    assert_memory_equal(release, want, strlen(want));
    assert_string_equal(release + strlen(want), lua_script(LUA_LOCK_RELEASE)->body);

    /* The lock's script names the legacy check's keys after its own. */
    const char *acquire = redis_script_source(LUA_LOCK_ACQUIRE);
    assert_non_null(acquire);
    static const char acquire_want[] =
        "local lock_key, sessions_key, delay_key, uidl_key, legacy_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]\n";
    assert_memory_equal(acquire, acquire_want, strlen(acquire_want));

    /* Extra arguments start after the named ones. */
    const char *save = redis_script_source(LUA_UIDL_SAVE);
    assert_non_null(save);
    assert_non_null(strstr(save, "local set_marker, marker = ARGV[1], ARGV[2]\nlocal first_extra = 3\n"));
}

static void test_every_position_named_once(void **state)
{
    (void)state;
    for (int id = 0; id < LUA_SCRIPTS; id++) {
        const struct lua_script *s = lua_script((enum lua_script_id)id);
        assert_non_null(s);
        assert_non_null(s->name);
        assert_non_null(redis_script_source((enum lua_script_id)id));
        const char *names[64];
        unsigned n = 0;
        for (unsigned i = 0; i < s->n_keys; i++)
            names[n++] = s->keys[i];
        for (unsigned i = 0; i < s->n_args; i++)
            names[n++] = s->args[i];
        for (unsigned i = 0; i < n; i++) {
            assert_non_null(names[i]);
            for (unsigned j = i + 1; j < n; j++)
                assert_string_not_equal(names[i], names[j]);
        }
    }
    assert_null(lua_script(LUA_SCRIPTS));
    assert_null(redis_script_source(LUA_SCRIPTS));
    assert_null(redis_script_sha1(LUA_SCRIPTS));
}

static void test_sha1_is_of_the_source(void **state)
{
    (void)state;
    for (int id = 0; id < LUA_SCRIPTS; id++) {
        const char *source = redis_script_source((enum lua_script_id)id);
        const char *sha1 = redis_script_sha1((enum lua_script_id)id);
        assert_non_null(sha1);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        assert_true(EVP_Digest(source, strlen(source), md, &md_len, EVP_sha1(), NULL));
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        for (unsigned i = 0; i < md_len; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        assert_int_equal(strlen(sha1), REDIS_SCRIPT_SHA1_HEX);
        assert_string_equal(sha1, hex);
    }
}

static void never_called(const redisReply *reply, const char *error, void *arg)
{
    (void)reply; (void)error; (void)arg;
    fail_msg("a refused or cancelled call's callback ran");
}

static void test_script_keys_must_share_a_slot(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(0);
    assert_non_null(loop);
    /* Nothing listens there: the check needs no Redis, and no call is sent. */
    struct redis_store_config cfg = { .address = "127.0.0.1:1", .timeout = 1 };
    struct redis_store *store = redis_store_new(loop, &cfg);
    assert_non_null(store);
    const char *args[] = { "token" };
    const char *split[] = { "pg1:{alice}:lock:phone", "pg1:{bob}:sessions" };
    assert_null(redis_script_call(store, LUA_LOCK_RELEASE, split, args, NULL, 0, never_called, NULL));
    const char *untagged[] = { "pg1:alice:lock:phone", "pg1:alice:sessions" };
    assert_null(redis_script_call(store, LUA_LOCK_RELEASE, untagged, args, NULL, 0, never_called, NULL));
    const char *same[] = { "pg1:{alice}:lock:phone", "pg1:{alice}:sessions" };
    struct redis_request *req = redis_script_call(store, LUA_LOCK_RELEASE, same, args, NULL, 0, never_called, NULL);
    assert_non_null(req);
    redis_request_cancel(req);
    redis_store_free(store);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preamble_names_keys_and_args),
        cmocka_unit_test(test_every_position_named_once),
        cmocka_unit_test(test_sha1_is_of_the_source),
        cmocka_unit_test(test_script_keys_must_share_a_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
