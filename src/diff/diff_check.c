/*
 * The diff's invariants, checked from the outside: changes in address order that never overlap;
 * A with every change applied (what was removed taken out, what was added put in) is exactly
 * B's layout, byte for byte and attribute for attribute, so every changed byte is accounted for
 * once; and the changes' mapped deltas add up to B's mapped bytes less A's. Tests and fuzzers
 * run it on every diff they make.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"
#include "util/compiler.h"
#include "util/xalloc.h"

/* A range of the rebuilt layout and the region whose attributes it has. */
struct piece {
    uint64_t start, end;
    const struct region *r;
};

struct pieces {
    struct piece *v;
    size_t n, cap;
};

static void add(struct pieces *p, uint64_t start, uint64_t end, const struct region *r)
{
    p->v = xgrow(p->v, &p->cap, p->n + 1, sizeof(*p->v));
    p->v[p->n++] = (struct piece){start, end, r};
}

static int cmp_piece(const void *x, const void *y)
{
    const struct piece *a = x, *b = y;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->end < b->end ? -1 : a->end > b->end;
}

static int fail(char *why, size_t n, const char *fmt, ...) VMSNAP_PRINTF(3, 4);

static int fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The same attributes at address at: protection, backing (file offset included), state. */
static int same_at(const struct region *x, const struct region *y, uint64_t at)
{
    if (memcmp(x->perms, y->perms, 4) != 0 || !region_same_file_id(x, y) ||
        (x->flags & (REGION_DELETED | REGION_HAS_WIN)) !=
            (y->flags & (REGION_DELETED | REGION_HAS_WIN)))
        return 0;
    if ((x->path == NULL) != (y->path == NULL) ||
        (x->path && (x->path_len != y->path_len || memcmp(x->path, y->path, x->path_len) != 0)))
        return 0;
    if (region_is_file(x) && x->offset + (at - x->start) != y->offset + (at - y->start))
        return 0;
    const struct region_extra *a = region_extra(x), *b = region_extra(y);
    if ((x->flags & REGION_HAS_WIN) && (a->state != b->state || a->type != b->type ||
                                        a->protect != b->protect || a->alloc_base != b->alloc_base))
        return 0;
    return 1;
}

/* Takes the sorted, disjoint ranges cut out of the sorted, disjoint pieces; each must be there. */
static int cut(struct pieces *p, struct piece *cuts, size_t ncuts, char *why, size_t n)
{
    struct pieces out = {0};
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < p->n; i++) {
        uint64_t pos = p->v[i].start;
        while (k < ncuts && cuts[k].start < p->v[i].end) {
            if (cuts[k].start < pos) {
                rc = fail(why, n, "a change removes [0x%llx, 0x%llx), not all of it mapped before",
                          (unsigned long long)cuts[k].start, (unsigned long long)cuts[k].end);
                goto out;
            }
            if (cuts[k].start > pos)
                add(&out, pos, cuts[k].start, p->v[i].r);
            if (cuts[k].end > p->v[i].end) {
                /* The cut goes on into the next piece, which must start right here. */
                if (i + 1 >= p->n || p->v[i + 1].start != p->v[i].end) {
                    rc = fail(why, n, "a change removes [0x%llx, 0x%llx), a gap in it",
                              (unsigned long long)cuts[k].start, (unsigned long long)cuts[k].end);
                    goto out;
                }
                cuts[k].start = p->v[i].end;
                pos = p->v[i].end;
                break;
            }
            pos = cuts[k].end;
            k++;
        }
        if (pos < p->v[i].end)
            add(&out, pos, p->v[i].end, p->v[i].r);
    }
    if (k < ncuts)
        rc = fail(why, n, "a change removes [0x%llx, 0x%llx), which was not mapped",
                  (unsigned long long)cuts[k].start, (unsigned long long)cuts[k].end);
out:
    free(p->v);
    *p = out;
    return rc;
}

/* The rebuilt pieces, sorted, must tile B exactly with B's attributes. */
static int equals_layout(const struct pieces *p, const struct region_list *b, char *why, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct piece *x = &p->v[i];
        if (i > 0 && p->v[i - 1].end > x->start)
            return fail(why, n, "two changes claim the bytes at 0x%llx",
                        (unsigned long long)x->start);
        for (uint64_t pos = x->start; pos < x->end;) {
            while (j < b->n && b->v[j].end <= pos)
                j++;
            if (j >= b->n || b->v[j].start > pos)
                return fail(why, n, "0x%llx is mapped after applying the changes, not in B",
                            (unsigned long long)pos);
            if (!same_at(x->r, &b->v[j], pos))
                return fail(why, n, "0x%llx has other attributes after the changes than in B",
                            (unsigned long long)pos);
            pos = b->v[j].end < x->end ? b->v[j].end : x->end;
        }
    }
    /* Every byte of B is covered: the pieces do not overlap, so compare the totals. */
    uint64_t covered = 0;
    for (size_t i = 0; i < p->n; i++)
        covered += p->v[i].end - p->v[i].start;
    if (covered != region_list_mapped(b))
        return fail(why, n, "the changes leave %llu bytes mapped, B maps %llu",
                    (unsigned long long)covered, (unsigned long long)region_list_mapped(b));
    return 0;
}

int diff_check(const struct region_list *a, const struct region_list *b,
               const struct diff_result *d, char *why, size_t n)
{
    struct pieces layout = {0}, cuts = {0}, adds = {0};
    int rc = 0;
    uint64_t delta = 0;
    for (size_t i = 0; i < d->n; i++) {
        const struct diff_change *c = &d->v[i];
        if (c->start >= c->end)
            return fail(why, n, "change %zu (%s) is empty", i, diff_kind_name(c->kind));
        if (i > 0 && d->v[i - 1].end > c->start)
            return fail(why, n, "changes %zu and %zu overlap at 0x%llx", i - 1, i,
                        (unsigned long long)c->start);
        delta += (uint64_t)diff_mapped_delta(c);
    }
    if (delta != region_list_mapped(b) - region_list_mapped(a))
        return fail(why, n, "the changes' mapped deltas add up to %lld, B less A is %lld",
                    (long long)delta, (long long)(region_list_mapped(b) - region_list_mapped(a)));
    for (size_t i = 0; i < a->n; i++)
        add(&layout, a->v[i].start, a->v[i].end, &a->v[i]);
    for (size_t i = 0; i < d->n; i++) {
        const struct diff_change *c = &d->v[i];
        switch (c->kind) {
        case DIFF_NEW:
            add(&adds, c->start, c->end, c->now);
            break;
        case DIFF_FREED:
            add(&cuts, c->start, c->end, NULL);
            break;
        case DIFF_GROWN:
        case DIFF_SHRUNK:
            if (c->now->start != c->start || c->now->end != c->end)
                return fail(why, n, "a %s change is not its region's extent in B",
                            diff_kind_name(c->kind));
            add(&cuts, c->before->start, c->before->end, NULL);
            add(&adds, c->start, c->end, c->now);
            break;
        case DIFF_RESIDENT:
            if (c->before->start != c->now->start || c->before->end != c->now->end)
                return fail(why, n, "a resident change spans two different regions");
            break;
        default:
            add(&cuts, c->start, c->end, NULL);
            add(&adds, c->start, c->end, c->now);
            break;
        }
    }
    if (cuts.n)
        qsort(cuts.v, cuts.n, sizeof(*cuts.v), cmp_piece);
    for (size_t i = 1; i < cuts.n; i++)
        if (cuts.v[i - 1].end > cuts.v[i].start) {
            rc = fail(why, n, "two changes remove the bytes at 0x%llx",
                      (unsigned long long)cuts.v[i].start);
            goto out;
        }
    if ((rc = cut(&layout, cuts.v, cuts.n, why, n)) < 0)
        goto out;
    for (size_t i = 0; i < adds.n; i++)
        add(&layout, adds.v[i].start, adds.v[i].end, adds.v[i].r);
    if (layout.n)
        qsort(layout.v, layout.n, sizeof(*layout.v), cmp_piece);
    rc = equals_layout(&layout, b, why, n);
out:
    free(layout.v);
    free(cuts.v);
    free(adds.v);
    return rc;
}
