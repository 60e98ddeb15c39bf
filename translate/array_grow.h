/* array_grow: the one way popgate grows an array or a byte pool. Pure.
 *
 * Doubling from a first size, so n appends cost O(n) copies in all, with a
 * stated bound on every growth: a caller names the most elements it will
 * ever hold, and a request past it fails instead of growing. */
#ifndef POPGATE_ARRAY_GROW_H
#define POPGATE_ARRAY_GROW_H

#include <stdbool.h>
#include <stddef.h>

/* Room for n more elements of elem bytes after the used ones in *p (*cap
 * elements allocated): doubles from `first` (or from *cap) until they fit,
 * never past max elements. False, with *p and *cap unchanged, when used + n
 * exceeds max or memory runs out. */
bool array_reserve(void **p, size_t *cap, size_t used, size_t n, size_t elem, size_t first, size_t max);

#endif
