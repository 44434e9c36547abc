/*
 * The sweep: both lists are cut into elementary segments at every boundary of either, and each
 * segment is classified by what covers it before and after. Segments of the same kind between
 * the same two regions merge. Then in-place growth is recognised: a region whose extent changed
 * at one end while keeping its backing and protection is one grown or shrunk change, not a new
 * tail. A glibc thread arena that commits more of its PROT_NONE reservation is read as its rw
 * part grown and its reservation shrunk by the same bytes (the bytes move from one to the
 * other; nothing is reported as re-protected). On Windows a change of state (reserve to commit)
 * is always `committed` or `decommitted` over its exact range, never growth.
 */
#include "diff/diff.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

enum seg_kind { SEG_SAME, SEG_NEW, SEG_FREED, SEG_REPROT, SEG_REMAP, SEG_COMMIT, SEG_DECOMMIT };

struct seg {
    uint64_t start, end;
    size_t ia, ib; /* covering region in a / b, or SIZE_MAX */
    int kind;      /* enum seg_kind */
    int explained; /* part of a grown or shrunk change */
};

#define NONE SIZE_MAX

static const char *const kind_names[DIFF_KIND_COUNT] = {
    [DIFF_NEW] = "new",
    [DIFF_FREED] = "freed",
    [DIFF_GROWN] = "grown",
    [DIFF_SHRUNK] = "shrunk",
    [DIFF_REPROTECTED] = "reprotected",
    [DIFF_REMAPPED] = "remapped",
    [DIFF_RESIDENT] = "resident",
    [DIFF_COMMITTED] = "committed",
    [DIFF_DECOMMITTED] = "decommitted",
};

const char *diff_kind_name(int kind)
{
    return kind >= 0 && kind < DIFF_KIND_COUNT ? kind_names[kind] : "?";
}

void diff_result_init(struct diff_result *r)
{
    memset(r, 0, sizeof(*r));
}

void diff_result_release(struct diff_result *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

int64_t diff_mapped_delta(const struct diff_change *c)
{
    switch (c->kind) {
    case DIFF_NEW:
        return (int64_t)(c->end - c->start);
    case DIFF_FREED:
        return (int64_t)(0 - (c->end - c->start));
    case DIFF_GROWN:
    case DIFF_SHRUNK:
        return c->delta;
    default:
        return 0;
    }
}

/* Same file (or none) at the same file offset for address at, same sharing, same allocation. */
static int same_backing(const struct region *a, const struct region *b, uint64_t at)
{
    if ((a->path == NULL) != (b->path == NULL))
        return 0;
    if (a->path && (a->path_len != b->path_len || memcmp(a->path, b->path, a->path_len) != 0))
        return 0;
    if (!region_same_file_id(a, b))
        return 0;
    if ((a->flags & REGION_DELETED) != (b->flags & REGION_DELETED))
        return 0;
    if (a->perms[3] != b->perms[3])
        return 0;
    /* A file's pages are identified by their offset; anonymous memory shows offset 0. */
    if (region_is_file(a) && a->offset + (at - a->start) != b->offset + (at - b->start))
        return 0;
    if ((a->flags & REGION_HAS_WIN) && (b->flags & REGION_HAS_WIN) &&
        (region_extra(a)->type != region_extra(b)->type ||
         region_extra(a)->alloc_base != region_extra(b)->alloc_base))
        return 0;
    return 1;
}

static int same_protection(const struct region *a, const struct region *b)
{
    if (memcmp(a->perms, b->perms, 3) != 0)
        return 0;
    if ((a->flags & REGION_HAS_WIN) && (b->flags & REGION_HAS_WIN) &&
        region_extra(a)->protect != region_extra(b)->protect)
        return 0;
    return 1;
}

static int classify(const struct region *ra, const struct region *rb, uint64_t at)
{
    if (!ra)
        return SEG_NEW;
    if (!rb)
        return SEG_FREED;
    if (!same_backing(ra, rb, at))
        return SEG_REMAP;
    if ((ra->flags & REGION_HAS_WIN) && (rb->flags & REGION_HAS_WIN) &&
        region_extra(ra)->state != region_extra(rb)->state)
        return region_extra(rb)->state == WIN_STATE_COMMIT ? SEG_COMMIT : SEG_DECOMMIT;
    if (!same_protection(ra, rb))
        return SEG_REPROT;
    return SEG_SAME;
}

struct segs {
    struct seg *v;
    size_t n, cap;
};

static void add_seg(struct segs *s, uint64_t start, uint64_t end, size_t ia, size_t ib, int kind)
{
    if (s->n) {
        struct seg *last = &s->v[s->n - 1];
        if (last->end == start && last->ia == ia && last->ib == ib && last->kind == kind) {
            last->end = end;
            return;
        }
    }
    s->v = xgrow(s->v, &s->cap, s->n + 1, sizeof(*s->v));
    s->v[s->n++] = (struct seg){start, end, ia, ib, kind, 0};
}

/* Cuts both lists into segments at every boundary; gaps in both are skipped. */
static void sweep(const struct region_list *a, const struct region_list *b, struct segs *out)
{
    size_t i = 0, j = 0;
    uint64_t pos = 0;
    while (i < a->n || j < b->n) {
        const struct region *ra = i < a->n ? &a->v[i] : NULL;
        const struct region *rb = j < b->n ? &b->v[j] : NULL;
        if (ra && ra->end <= pos) {
            i++;
            continue;
        }
        if (rb && rb->end <= pos) {
            j++;
            continue;
        }
        int a_in = ra && ra->start <= pos, b_in = rb && rb->start <= pos;
        if (!a_in && !b_in) {
            pos = !ra ? rb->start : !rb ? ra->start : ra->start < rb->start ? ra->start : rb->start;
            continue;
        }
        uint64_t end = a_in ? ra->end : ra ? ra->start : rb->end;
        uint64_t bend = b_in ? rb->end : rb ? rb->start : end;
        if (bend < end)
            end = bend;
        add_seg(out, pos, end, a_in ? i : NONE, b_in ? j : NONE,
                classify(a_in ? ra : NULL, b_in ? rb : NULL, pos));
        pos = end;
    }
}

/* First and last segment of each region, so a region's segments can be visited together. */
struct span_idx {
    size_t first, last;
};

static struct span_idx *index_regions(const struct segs *s, size_t n, int side_b)
{
    struct span_idx *x = xmalloc((n ? n : 1) * sizeof(*x));
    for (size_t k = 0; k < n; k++)
        x[k] = (struct span_idx){NONE, NONE};
    for (size_t k = 0; k < s->n; k++) {
        size_t r = side_b ? s->v[k].ib : s->v[k].ia;
        if (r == NONE)
            continue;
        if (x[r].first == NONE)
            x[r].first = k;
        x[r].last = k;
    }
    return x;
}

/*
 * In-place partners: an old and a new region sharing a start or an end, with the same backing
 * and protection over their overlap. pred[ib] is the old region a new one grew or shrank from;
 * succ[ia] the new region an old one became.
 */
static void find_partners(const struct region_list *a, const struct region_list *b,
                          const struct segs *s, size_t *pred, size_t *succ)
{
    for (size_t k = 0; k < b->n; k++)
        pred[k] = NONE;
    for (size_t k = 0; k < a->n; k++)
        succ[k] = NONE;
    for (size_t k = 0; k < s->n; k++) {
        const struct seg *g = &s->v[k];
        if (g->kind != SEG_SAME)
            continue;
        const struct region *ra = &a->v[g->ia], *rb = &b->v[g->ib];
        if (ra->start == rb->start && ra->end == rb->end)
            continue;
        if (ra->start != rb->start && ra->end != rb->end)
            continue;
        if (pred[g->ib] == NONE)
            pred[g->ib] = g->ia;
        if (succ[g->ia] == NONE)
            succ[g->ia] = g->ib;
    }
}

/* to - from as a signed number, computed without signed overflow: exact whenever the true
 * difference fits in 64 bits (any real size or rss does). */
static int64_t signed_delta(uint64_t from, uint64_t to)
{
    return (int64_t)(to - from);
}

static int64_t size_delta(const struct region *ra, const struct region *rb)
{
    return signed_delta(ra->end - ra->start, rb->end - rb->start);
}

static void push(struct diff_result *out, int kind, uint64_t start, uint64_t end,
                 const struct region *now, const struct region *before, int64_t delta)
{
    out->v = xgrow(out->v, &out->cap, out->n + 1, sizeof(*out->v));
    out->v[out->n++] = (struct diff_change){kind, start, end, now, before, delta};
}

static int cmp_change(const void *x, const void *y)
{
    const struct diff_change *a = x, *b = y;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->kind - b->kind;
}

/* No access at all: a reservation (an arena's PROT_NONE tail) or a guard. */
static int no_access(const struct region *r)
{
    return r->perms[0] == '-' && r->perms[1] == '-' && r->perms[2] == '-';
}

/*
 * A segment where a glibc arena's rw part took bytes from its PROT_NONE reservation: what was
 * no-access in a region that shrank in place is accessible in a region that grew in place.
 */
static int arena_seg(const struct region_list *a, const struct region_list *b, const struct seg *g,
                     const size_t *pred, const size_t *succ)
{
    return g->kind == SEG_REPROT && succ[g->ia] != NONE && succ[g->ia] != g->ib &&
           pred[g->ib] != NONE && pred[g->ib] != g->ia && no_access(&a->v[g->ia]) &&
           !no_access(&b->v[g->ib]);
}

/*
 * A new region grew from its partner when every segment it has beyond the partner was unmapped
 * before, or is an arena segment. Shrinking is the mirror.
 */
static int grew(const struct region_list *a, const struct region_list *b, const struct segs *s,
                const struct span_idx *bx, size_t ib, size_t ia, const size_t *pred,
                const size_t *succ)
{
    for (size_t k = bx[ib].first; k <= bx[ib].last; k++) {
        const struct seg *g = &s->v[k];
        if (g->ia == ia || g->kind == SEG_NEW || (g->ia != NONE && arena_seg(a, b, g, pred, succ)))
            continue;
        return 0;
    }
    return 1;
}

static int shrank(const struct region_list *a, const struct region_list *b, const struct segs *s,
                  const struct span_idx *ax, size_t ia, size_t ib, const size_t *pred,
                  const size_t *succ)
{
    for (size_t k = ax[ia].first; k <= ax[ia].last; k++) {
        const struct seg *g = &s->v[k];
        if (g->ib == ib || g->kind == SEG_FREED ||
            (g->ib != NONE && arena_seg(a, b, g, pred, succ)))
            continue;
        return 0;
    }
    return 1;
}

/*
 * An arena segment is accounted for by both sides at once: the rw part's growth and the
 * reservation's shrinking. Where one side does not hold (the other region changed in some other
 * way too), neither may claim the segment: it is then reported as what it is, reprotected.
 * Repeats until no claim is withdrawn.
 */
static void pair_arena_claims(const struct segs *s, const size_t *pred, const size_t *succ,
                              char *grown, char *shrunk)
{
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t k = 0; k < s->n; k++) {
            const struct seg *g = &s->v[k];
            if (g->kind != SEG_REPROT || g->ia == NONE || g->ib == NONE)
                continue;
            int by_growth = grown[g->ib] && pred[g->ib] != g->ia;
            int by_shrink = shrunk[g->ia] && succ[g->ia] != g->ib;
            if (by_growth && !by_shrink) {
                grown[g->ib] = 0;
                changed = 1;
            } else if (by_shrink && !by_growth) {
                shrunk[g->ia] = 0;
                changed = 1;
            }
        }
    }
}

void diff_regions(const struct region_list *a, const struct region_list *b, struct diff_result *out)
{
    struct segs s = {0};
    sweep(a, b, &s);
    struct span_idx *ax = index_regions(&s, a->n, 0), *bx = index_regions(&s, b->n, 1);
    size_t *pred = xmalloc((b->n ? b->n : 1) * sizeof(*pred));
    size_t *succ = xmalloc((a->n ? a->n : 1) * sizeof(*succ));
    find_partners(a, b, &s, pred, succ);

    /* Validate the partners, then mark the segments their size change accounts for. */
    char *grown = xcalloc(b->n + 1, 1), *shrunk = xcalloc(a->n + 1, 1);
    for (size_t ib = 0; ib < b->n; ib++) {
        size_t ia = pred[ib];
        if (ia != NONE && b->v[ib].end - b->v[ib].start > a->v[ia].end - a->v[ia].start &&
            grew(a, b, &s, bx, ib, ia, pred, succ))
            grown[ib] = 1;
    }
    for (size_t ia = 0; ia < a->n; ia++) {
        size_t ib = succ[ia];
        if (ib != NONE && a->v[ia].end - a->v[ia].start > b->v[ib].end - b->v[ib].start &&
            shrank(a, b, &s, ax, ia, ib, pred, succ))
            shrunk[ia] = 1;
    }
    pair_arena_claims(&s, pred, succ, grown, shrunk);
    for (size_t k = 0; k < s.n; k++) {
        struct seg *g = &s.v[k];
        if (g->kind == SEG_SAME)
            continue;
        if (g->ib != NONE && grown[g->ib] && g->ia != pred[g->ib])
            g->explained = 1;
        if (g->ia != NONE && shrunk[g->ia] && g->ib != succ[g->ia])
            g->explained = 1;
    }

    for (size_t ib = 0; ib < b->n; ib++)
        if (grown[ib]) {
            const struct region *rb = &b->v[ib], *ra = &a->v[pred[ib]];
            push(out, DIFF_GROWN, rb->start, rb->end, rb, ra, size_delta(ra, rb));
        }
    for (size_t ia = 0; ia < a->n; ia++)
        if (shrunk[ia]) {
            const struct region *ra = &a->v[ia], *rb = &b->v[succ[ia]];
            push(out, DIFF_SHRUNK, rb->start, rb->end, rb, ra, size_delta(ra, rb));
        }
    for (size_t k = 0; k < s.n; k++) {
        const struct seg *g = &s.v[k];
        const struct region *ra = g->ia != NONE ? &a->v[g->ia] : NULL;
        const struct region *rb = g->ib != NONE ? &b->v[g->ib] : NULL;
        if (g->explained)
            continue;
        switch (g->kind) {
        case SEG_SAME:
            /* Resident memory is compared for a region that is the same before and after. */
            if (ra->start == rb->start && ra->end == rb->end && (ra->flags & REGION_HAS_MEM) &&
                (rb->flags & REGION_HAS_MEM) && region_extra(ra)->rss != region_extra(rb)->rss)
                push(out, DIFF_RESIDENT, rb->start, rb->end, rb, ra,
                     signed_delta(region_extra(ra)->rss, region_extra(rb)->rss));
            break;
        case SEG_NEW:
            push(out, DIFF_NEW, g->start, g->end, rb, NULL, 0);
            break;
        case SEG_FREED:
            push(out, DIFF_FREED, g->start, g->end, NULL, ra, 0);
            break;
        case SEG_REPROT:
            push(out, DIFF_REPROTECTED, g->start, g->end, rb, ra, 0);
            break;
        case SEG_REMAP:
            push(out, DIFF_REMAPPED, g->start, g->end, rb, ra, 0);
            break;
        case SEG_COMMIT:
            push(out, DIFF_COMMITTED, g->start, g->end, rb, ra, 0);
            break;
        case SEG_DECOMMIT:
            push(out, DIFF_DECOMMITTED, g->start, g->end, rb, ra, 0);
            break;
        }
    }
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_change);
    free(grown);
    free(shrunk);
    free(pred);
    free(succ);
    free(ax);
    free(bx);
    free(s.v);
}

uint64_t diff_change_bytes(const struct diff_change *c)
{
    switch (c->kind) {
    case DIFF_GROWN:
    case DIFF_SHRUNK:
    case DIFF_RESIDENT:
        return (uint64_t)(c->delta < 0 ? -c->delta : c->delta);
    default:
        return c->end - c->start;
    }
}

void diff_grown_part(const struct diff_change *c, uint64_t *start, uint64_t *end)
{
    const struct region *a = c->before, *b = c->now;
    uint64_t tail = b->end > a->end ? b->end - a->end : 0;
    uint64_t head = b->start < a->start ? a->start - b->start : 0;
    if (tail >= head) {
        *start = a->end > b->start ? a->end : b->start;
        *end = b->end;
    } else {
        *start = b->start;
        *end = a->start < b->end ? a->start : b->end;
    }
}
