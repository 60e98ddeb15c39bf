/* array_grow.c: see array_grow.h. */
#include "array_grow.h"

#include <stdint.h>
#include <stdlib.h>

bool array_reserve(void **p, size_t *cap, size_t used, size_t n, size_t elem, size_t first, size_t max)
{
    if (used > max || n > max - used)
        return false;
    if (used + n <= *cap)
        return true;
    size_t new_cap = *cap ? *cap : (first ? first : 1);
    while (new_cap < used + n)
        new_cap = new_cap > max / 2 ? max : new_cap * 2;
    if (new_cap > max)
        new_cap = max;
    if (new_cap > SIZE_MAX / elem)
        return false;
    void *q = realloc(*p, new_cap * elem);
    if (!q)
        return false;
    *p = q;
    *cap = new_cap;
    return true;
}
