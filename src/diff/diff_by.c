/*
 * Two snapshots compared by backing instead of by address: for each path (anonymous memory by
 * its category) or each category, the regions, mapped, committed and rss bytes on both sides.
 * The comparison that means something between two processes whose layouts differ (ASLR), or
 * two runs of one program, where a diff by address is all new and freed.
 */
#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"
#include "util/xalloc.h"

struct entry {
    const struct region *r;
    int side;
    int by; /* the key, beside each entry: qsort takes no context */
};

/* The key of a region: its path, or, anonymous (or by category), its category. */
static int key_cmp(int by, const struct region *a, const struct region *b)
{
    if (by == DIFF_BY_PATH && (a->path || b->path)) {
        if (!a->path || !b->path)
            return a->path ? 1 : -1;
        size_t n = a->path_len < b->path_len ? a->path_len : b->path_len;
        int c = memcmp(a->path, b->path, n);
        return c ? c : (a->path_len > b->path_len) - (a->path_len < b->path_len);
    }
    return (a->category > b->category) - (a->category < b->category);
}

static int cmp_entry(const void *x, const void *y)
{
    const struct entry *a = x, *b = y;
    return key_cmp(a->by, a->r, b->r);
}

static uint64_t mag(int64_t v)
{
    return v < 0 ? (uint64_t)-v : (uint64_t)v;
}

/* Largest committed change first, then largest mapped change, then by key. */
static int cmp_row(const void *x, const void *y)
{
    const struct diff_by_row *a = x, *b = y;
    uint64_t ca = mag(diff_by_delta(a, committed)), cb = mag(diff_by_delta(b, committed));
    if (ca != cb)
        return ca > cb ? -1 : 1;
    uint64_t ma = mag(diff_by_delta(a, mapped)), mb = mag(diff_by_delta(b, mapped));
    if (ma != mb)
        return ma > mb ? -1 : 1;
    return key_cmp(DIFF_BY_PATH, &a->like, &b->like);
}

void diff_by(const struct region_list *a, const struct region_list *b, int by, int category,
             struct diff_by_result *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = 0;
    struct entry *v = xmalloc((a->n + b->n + 1) * sizeof(*v));
    const struct region_list *side[2] = {a, b};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < side[k]->n; i++)
            if (category < 0 || side[k]->v[i].category == category)
                v[n++] = (struct entry){&side[k]->v[i], k, by};
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_entry);
    out->v = xmalloc((n ? n : 1) * sizeof(*out->v));
    for (size_t i = 0; i < n;) {
        struct diff_by_row *row = &out->v[out->n++];
        memset(row, 0, sizeof(*row));
        row->like = *v[i].r;
        if (by == DIFF_BY_CATEGORY)
            row->like.path = NULL;
        size_t j = i;
        for (; j < n && key_cmp(by, v[j].r, v[i].r) == 0; j++) {
            struct diff_by_side *s = &row->side[v[j].side];
            s->regions++;
            s->mapped += v[j].r->end - v[j].r->start;
            s->committed += region_committed(v[j].r);
            s->rss += region_extra(v[j].r)->rss;
        }
        i = j;
    }
    free(v);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), cmp_row);
}

void diff_by_release(struct diff_by_result *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

int diff_by_parse(const char *s)
{
    return strcmp(s, "path") == 0       ? DIFF_BY_PATH
           : strcmp(s, "category") == 0 ? DIFF_BY_CATEGORY
                                        : -1;
}
