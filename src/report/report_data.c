/* The recording reduced to what a screen shows: time buckets and the address-space strip. */
#include <string.h>

#include "report/report.h"
#include "util/xalloc.h"

size_t report_buckets(const int64_t *t_ms, size_t n, size_t width, struct report_bucket **out)
{
    *out = NULL;
    if (!n || !width)
        return 0;
    struct report_bucket *v = xmalloc(n * sizeof(*v));
    size_t groups = 0;
    int64_t t0 = t_ms[0], span = t_ms[n - 1] - t_ms[0];
    size_t prev = (size_t)-1;
    for (size_t k = 0; k < n; k++) {
        size_t b;
        if (n <= width) {
            b = k;
        } else if (span > 0) {
            int64_t dt = t_ms[k] - t0;
            if (dt < 0)
                dt = 0;
            if (dt > span)
                dt = span;
            /* dt * width stays far below 2^63 for any real recording (width ~1000). */
            b = (size_t)((double)dt / ((double)span + 1) * (double)width);
        } else {
            b = k * width / n;
        }
        if (groups && b == prev) {
            v[groups - 1].last = k;
        } else {
            v[groups].first = v[groups].last = k;
            groups++;
        }
        prev = b;
    }
    *out = v;
    return groups;
}

/* The first byte of pixel p of width over total bytes: p * total / width, without overflow. */
static uint64_t pixel_edge(size_t p, size_t width, uint64_t total)
{
    return (uint64_t)p * (total / width) + (uint64_t)p * (total % width) / width;
}

size_t report_strip(const struct region_list *l, size_t width, struct report_pixel **out)
{
    *out = NULL;
    uint64_t total = region_list_mapped(l);
    if (!total || !width)
        return 0;
    struct report_pixel *px = xcalloc(width, sizeof(*px));
    size_t p = 0;
    uint64_t at = 0; /* bytes laid down so far */
    for (size_t i = 0; i < l->n && p < width; i++) {
        const struct region *r = &l->v[i];
        uint64_t lo = at, hi = at + (r->end - r->start);
        while (p < width) {
            uint64_t p_lo = pixel_edge(p, width, total), p_hi = pixel_edge(p + 1, width, total);
            uint64_t a = lo > p_lo ? lo : p_lo, b = hi < p_hi ? hi : p_hi;
            if (a < b) {
                struct report_pixel *x = &px[p];
                if (!x->regions)
                    x->start = r->start + (a - lo);
                x->end = r->start + (b - lo);
                x->regions++;
                x->bytes[r->category] += b - a;
            }
            if (hi < p_hi)
                break; /* the pixel goes on into the next region */
            p++;
            if (hi == p_hi)
                break;
        }
        at = hi;
    }
    for (size_t k = 0; k < width; k++) {
        int best = 0;
        for (int c = 1; c < CAT_COUNT; c++)
            if (px[k].bytes[c] > px[k].bytes[best])
                best = c;
        px[k].category = (uint8_t)best;
    }
    *out = px;
    return width;
}
