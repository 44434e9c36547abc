/* Allocation wrappers that abort on out-of-memory and check size arithmetic for overflow. */
#ifndef VMSNAP_XALLOC_H
#define VMSNAP_XALLOC_H

#include <stddef.h>

#include "util/compiler.h"

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
/* Resizes ptr to count * size bytes; aborts if the product overflows. */
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a heap string formatted like printf; the caller frees it. */
char *xasprintf(const char *fmt, ...) VMSNAP_PRINTF(1, 2);

/* Grows *cap (elements) so that at least need elements fit; returns the possibly moved array. */
void *xgrow(void *ptr, size_t *cap, size_t need, size_t size);

#endif
