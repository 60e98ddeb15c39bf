/* redis_cluster_map: the pure parts of talking to a Redis Cluster, no I/O.
 *
 * - The hash slot of a key: CRC16 (XMODEM) of the key, or of its hash tag
 *   (the bytes between the first '{' and the first '}' after it, when not
 *   empty), modulo 16384. popgate's user keys carry {user}, so one user's
 *   keys share a slot and a Lua script may touch them all.
 * - The redirect errors: "MOVED <slot> <host>:<port>" and "ASK <slot>
 *   <host>:<port>" (hiredis hands over the error text without its '-').
 * - CLUSTER NODES's text into a slot map: which master serves each slot.
 *   CLUSTER NODES, not CLUSTER SLOTS, because it is one bulk string, parsed
 *   here without hiredis's reply tree (this layer must not see hiredis), and
 *   the same on Redis 5, 6 and 7.
 *
 * Addresses are numeric (IPv4 or IPv6) with a port, written back as
 * "a.b.c.d:port" or "[v6]:port", the form redis_store connects to; a host
 * name (cluster-announce-hostname with cluster-preferred-endpoint-type
 * hostname) is refused, so nothing ever resolves a name on the event loop.
 */
#ifndef POPGATE_REDIS_CLUSTER_MAP_H
#define POPGATE_REDIS_CLUSTER_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_SLOTS 16384
/* Masters a map holds: a cluster with more (each owning slots) is refused. */
#define CLUSTER_NODES_MAX 64
/* "[IPv6]:port" and its NUL. */
#define CLUSTER_ADDRESS_MAX 56
#define CLUSTER_NO_NODE 0xffff

uint16_t cluster_crc16(const char *buf, size_t len);
/* The slot of key (len bytes, binary-safe). */
unsigned cluster_key_slot(const char *key, size_t len);

enum cluster_redirect_kind {
    CLUSTER_REDIRECT_NONE,
    CLUSTER_REDIRECT_MOVED,  /* the slot lives there now: update the map */
    CLUSTER_REDIRECT_ASK     /* this once, during a migration: ASKING, then there */
};

struct cluster_redirect {
    enum cluster_redirect_kind kind;
    unsigned slot;
    char address[CLUSTER_ADDRESS_MAX];
};

/* Parses an error reply's text (len bytes). NONE (and false) for anything
 * that is not a well-formed redirect: a slot over 16383, a port out of
 * 1..65535, a host that is not a numeric address, trailing bytes. */
bool cluster_redirect_parse(const char *err, size_t len, struct cluster_redirect *out);

/* "host:port" (IPv6 unbracketed, as Redis writes it, or bracketed) into
 * out's canonical form. False for a name, an empty host or a bad port. */
bool cluster_address_canonical(const char *s, size_t len, char out[CLUSTER_ADDRESS_MAX]);

struct cluster_map {
    unsigned n_nodes;
    char nodes[CLUSTER_NODES_MAX][CLUSTER_ADDRESS_MAX];
    uint16_t owner[CLUSTER_SLOTS];   /* index into nodes, or CLUSTER_NO_NODE */
};

void cluster_map_clear(struct cluster_map *map);
/* The node's index, added when new; CLUSTER_NO_NODE when the map is full. */
unsigned cluster_map_node(struct cluster_map *map, const char *address);
/* Slots that have an owner. */
unsigned cluster_map_covered(const struct cluster_map *map);

/* CLUSTER NODES's text (len bytes) into map (cleared first). Lines are
 * "<id> <ip:port@cport[,host]> <flags> <master> <ping> <pong> <epoch>
 * <link> <slot>...": only nodes flagged master count (one flagged fail
 * too: its slots are its own until a replica takes them over, and a node's
 * view may be wrong; its connection failing re-reads the map), their slots
 * given as "n" or "a-b"; "[n->-id]" and "[n-<-id]" (a migration in
 * progress) are skipped, the slot stays with its owner. Returns false for
 * text that is not such a listing (a line without enough fields, a bad slot
 * range, a master's address that is not numeric, more masters than the map
 * holds) or that gives no slot to anyone; the map is then undefined. */
bool cluster_nodes_parse(const char *text, size_t len, struct cluster_map *map);

#endif
