/* fuzz_input: choices a fuzz target derives from its input (split points,
 * output sizes, consumer decisions), shared by the targets in tests/fuzz.
 *
 * The choices come from a pseudo-random generator seeded with a hash of the
 * whole input, so a crash reproduces from the saved input alone and the seed
 * files stay plain protocol text without a header of control bytes. Every
 * mutation of an input also gives it new split points, which is how the
 * fuzzer reaches the split-dependent states (a CR at the end of one chunk, a
 * literal ending exactly at a chunk boundary). Header only: each target is one
 * .c file and the Makefile builds every .c file in tests/fuzz as a target.
 */
#ifndef POPGATE_FUZZ_INPUT_H
#define POPGATE_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A violated property must stop the run with the input saved, as a crash
 * does; abort() is what libFuzzer treats as one. */
#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* FNV-1a over the input: the seed of the choices. */
static inline uint64_t fuzz_hash(const uint8_t *data, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* xorshift64*: small, fast, and never stuck at zero once seeded non-zero. */
struct fuzz_rng {
    uint64_t s;
};

static inline void fuzz_rng_init(struct fuzz_rng *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

static inline uint64_t fuzz_rng_next(struct fuzz_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dULL;
}

/* Uniform enough in [lo, hi] for choosing sizes; lo <= hi. */
static inline size_t fuzz_rng_range(struct fuzz_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(fuzz_rng_next(r) % ((uint64_t)(hi - lo) + 1));
}

/* Length of the next chunk to feed, 1..left (left >= 1): mostly one to a few
 * bytes, where the state carried between calls matters, sometimes a long run,
 * where the bulk paths run. */
static inline size_t fuzz_chunk_len(struct fuzz_rng *r, size_t left)
{
    size_t n;
    switch (fuzz_rng_next(r) % 4) {
    case 0: n = 1; break;
    case 1: n = fuzz_rng_range(r, 1, 4); break;
    case 2: n = fuzz_rng_range(r, 1, 32); break;
    default: n = fuzz_rng_range(r, 1, left); break;
    }
    return n < left ? n : left;
}

/* A growable byte log: the events of one run, serialised, so two runs can be
 * compared with memcmp. Bounded by the input: each event records at most the
 * bytes it was made of plus a fixed header. */
struct fuzz_log {
    uint8_t *p;
    size_t len;
    size_t cap;
};

static inline void fuzz_log_put(struct fuzz_log *l, const void *data, size_t n)
{
    if (n > l->cap - l->len) {
        size_t cap = l->cap ? l->cap : 256;
        while (n > cap - l->len)
            cap *= 2;
        uint8_t *p = realloc(l->p, cap);
        FUZZ_CHECK(p != NULL);
        l->p = p;
        l->cap = cap;
    }
    if (n > 0) {
        memcpy(l->p + l->len, data, n);
        l->len += n;
    }
}

/* One event: a type byte, a length, then the bytes. */
static inline void fuzz_log_event(struct fuzz_log *l, uint8_t type, const void *data, size_t n)
{
    fuzz_log_put(l, &type, 1);
    fuzz_log_put(l, &n, sizeof n);
    fuzz_log_put(l, data, n);
}

static inline bool fuzz_log_equal(const struct fuzz_log *a, const struct fuzz_log *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static inline void fuzz_log_free(struct fuzz_log *l)
{
    free(l->p);
    l->p = NULL;
    l->len = l->cap = 0;
}

#endif
