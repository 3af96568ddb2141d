/*
 * util/grow.h — the growable array: make room for `need` elements in a heap array whose
 * capacity doubles, the idiom the parser, the metrics registry, the datasets and the results
 * table each wrote out by hand (with an overflow check none of them had).
 *
 *   struct tok *t = NULL; size_t n = 0, cap = 0;
 *   if (UTIL_GROW(t, cap, n + 1, 256))
 *       return ENOMEM_OF_THE_CALLER;
 *   t[n++] = x;
 *
 * The array stays owned by the caller (free() it); on failure it and the capacity are unchanged.
 */
#ifndef BD_UTIL_GROW_H
#define BD_UTIL_GROW_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* pv points to the array pointer (any T *), *cap is its capacity in elements of `size` bytes.
 * When need > *cap, the capacity doubles from max(*cap, first) until it holds need and the
 * array is reallocated. 0, or -1 when out of memory or the size overflows. */
static inline int util_grow(void *pv, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : (first ? first : 1);
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            return -1;
        nc *= 2;
    }
    if (nc > SIZE_MAX / size)
        return -1;
    void *old, *grown;
    memcpy(&old, pv, sizeof(old)); /* T * and void * share one representation on our targets */
    if (!(grown = realloc(old, nc * size)))
        return -1;
    memcpy(pv, &grown, sizeof(grown));
    *cap = nc;
    return 0;
}

/* UTIL_GROW(array, capacity, need, first): util_grow on an array variable and its size_t
 * capacity, with the element size taken from the array's type. */
#define UTIL_GROW(arr, cap, need, first) util_grow(&(arr), &(cap), (need), sizeof(*(arr)), (first))

#endif
