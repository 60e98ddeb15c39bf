/* hash64: the project's one non-cryptographic hash, 64-bit FNV-1a: message
 * state ids (login_name.h), maildrop folder tags, the per-address limit table.
 * Not for anything an attacker could aim collisions at to gain something. */
#ifndef POPGATE_HASH64_H
#define POPGATE_HASH64_H

#include <stddef.h>
#include <stdint.h>

#define HASH64_SEED 0xcbf29ce484222325ULL

uint64_t hash64(uint64_t seed, const void *data, size_t len);

#endif
