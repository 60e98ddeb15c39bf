/* Fuzz target: what a Redis Cluster node sends that steers routing
 * (translate/redis_cluster_map.h).
 * - The input as an error reply: cluster_redirect_parse either refuses it
 *   (kind NONE) or gives a slot under 16384 and an address that is
 *   canonical (parsing it again gives itself) and that the text ends with;
 *   a refused text stays refused with "MOVED " and "ASK " swapped.
 * - The input as CLUSTER NODES text: a parsed map names only nodes it holds,
 *   each once, each a canonical address; every owned slot points at one of
 *   them; at least one slot is owned.
 * - The key slot of the input is under 16384 and equals the slot of its hash
 *   tag wrapped in other bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "redis_cluster_map.h"

static void check_redirect(const char *in, size_t size)
{
    struct cluster_redirect r;
    bool ok = cluster_redirect_parse(in, size, &r);
    FUZZ_CHECK(ok == (r.kind != CLUSTER_REDIRECT_NONE));
    if (!ok)
        return;
    FUZZ_CHECK(r.slot < CLUSTER_SLOTS);
    size_t alen = strlen(r.address);
    FUZZ_CHECK(alen > 0 && alen < CLUSTER_ADDRESS_MAX);
    char again[CLUSTER_ADDRESS_MAX];
    FUZZ_CHECK(cluster_address_canonical(r.address, alen, again) && strcmp(again, r.address) == 0);
    /* The port the text ends with is the address's. */
    const char *port = strrchr(r.address, ':');
    size_t plen = strlen(port);
    FUZZ_CHECK(size >= plen && memcmp(in + size - plen, port, plen) == 0);
}

static void check_nodes(const char *in, size_t size)
{
    static struct cluster_map map;
    if (!cluster_nodes_parse(in, size, &map))
        return;
    FUZZ_CHECK(map.n_nodes > 0 && map.n_nodes <= CLUSTER_NODES_MAX);
    for (unsigned i = 0; i < map.n_nodes; i++) {
        char again[CLUSTER_ADDRESS_MAX];
        size_t len = strlen(map.nodes[i]);
        FUZZ_CHECK(cluster_address_canonical(map.nodes[i], len, again) && strcmp(again, map.nodes[i]) == 0);
        for (unsigned j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(map.nodes[i], map.nodes[j]) != 0);
    }
    unsigned owned = 0;
    for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
        FUZZ_CHECK(map.owner[s] == CLUSTER_NO_NODE || map.owner[s] < map.n_nodes);
        owned += map.owner[s] != CLUSTER_NO_NODE;
    }
    FUZZ_CHECK(owned > 0 && owned == cluster_map_covered(&map));
}

static void check_slot(const char *in, size_t size)
{
    unsigned slot = cluster_key_slot(in, size);
    FUZZ_CHECK(slot < CLUSTER_SLOTS);
    /* Wrapped as a popgate key wraps a user: the same slot when the input
     * has no brace (a user with none), or its own tag otherwise. */
    if (size == 0 || memchr(in, '{', size) || memchr(in, '}', size))
        return;
    char *key = malloc(size + 16);
    FUZZ_CHECK(key != NULL);
    memcpy(key, "pg1:{", 5);
    memcpy(key + 5, in, size);
    memcpy(key + 5 + size, "}:lock:x", 8);
    FUZZ_CHECK(cluster_key_slot(key, size + 13) == slot);
    free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    check_redirect(in, size);
    check_nodes(in, size);
    check_slot(in, size);
    return 0;
}
