/*
 * The diff's summary: mapped, committed and resident bytes gained or lost, in all and by
 * category. One definition for diff's table, its JSON and its --fail-on-growth gate.
 */
#include <string.h>

#include "diff/diff.h"

static void add(struct diff_delta *d, const struct region *r, int sign)
{
    /* Unsigned arithmetic wraps; the sums are exact whenever the results fit (any real ones). */
    uint64_t size = r->end - r->start, committed = region_committed(r), rss = region_extra(r)->rss;
    if (sign < 0) {
        size = 0 - size;
        committed = 0 - committed;
        rss = 0 - rss;
    }
    d->mapped = (int64_t)((uint64_t)d->mapped + size);
    d->committed = (int64_t)((uint64_t)d->committed + committed);
    d->rss = (int64_t)((uint64_t)d->rss + rss);
    d->touched = 1;
}

static int side(const struct region_list *l, int sign, struct diff_summary *out)
{
    int mem = 1;
    for (size_t i = 0; i < l->n; i++) {
        const struct region *r = &l->v[i];
        mem &= (r->flags & REGION_HAS_MEM) != 0;
        if (r->category < CAT_COUNT)
            add(&out->cat[r->category], r, sign);
    }
    return mem;
}

void diff_summarize(const struct region_list *a, const struct region_list *b, int category,
                    struct diff_summary *out)
{
    memset(out, 0, sizeof(*out));
    int mem_a = side(a, -1, out), mem_b = side(b, +1, out);
    out->have_rss = mem_a && mem_b;
    for (int c = 0; c < CAT_COUNT; c++) {
        if (category >= 0 && c != category)
            continue;
        /* Wrapping sums, as in add(). */
        out->total.mapped = (int64_t)((uint64_t)out->total.mapped + (uint64_t)out->cat[c].mapped);
        out->total.committed =
            (int64_t)((uint64_t)out->total.committed + (uint64_t)out->cat[c].committed);
        out->total.rss = (int64_t)((uint64_t)out->total.rss + (uint64_t)out->cat[c].rss);
        out->total.touched |= out->cat[c].touched;
    }
}
