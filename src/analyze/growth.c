/*
 * Growth over a recording. Values change only where a region opens or closes, so every series
 * is built from difference arrays over the regions' snapshot intervals, and every regression
 * from piecewise-constant runs against prefix sums of the snapshot times: nothing here visits
 * snapshots x regions.
 *
 * Lineages: at each step (snapshot k-1 to k) the regions that ended are matched with the regions
 * that began, by address overlap and backing (the same file, or both anonymous). An ended region
 * continues as the new region that overlaps it most; where several would continue into one (a
 * merge), the one overlapping most does and the others end. So a region that grows at either
 * end, is split by mprotect or merged with a neighbour keeps its lineage. A new region that
 * overlaps no ended region of its backing was born at k.
 */
#include "analyze/growth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* Sums over the snapshot times (seconds from the first) of the indexes below k. */
struct times {
    double *t, *t1, *t2; /* t[k]; t1[k] = sum of t[i] for i < k; t2[k] likewise of t[i]^2 */
};

/* A least-squares fit of a value against time, from its sums over n snapshots. */
struct fit {
    double n, st, stt, sv, stv, svv;
    double vmin, vmax; /* a value that never changes has no rate, whatever the rounding */
};

static void fit_run(struct fit *f, const struct times *tm, size_t a, size_t b, double v)
{
    double n = (double)(b - a);
    if (f->n == 0 || v < f->vmin)
        f->vmin = v;
    if (f->n == 0 || v > f->vmax)
        f->vmax = v;
    f->n += n;
    f->st += tm->t1[b] - tm->t1[a];
    f->stt += tm->t2[b] - tm->t2[a];
    f->sv += v * n;
    f->stv += v * (tm->t1[b] - tm->t1[a]);
    f->svv += v * v * n;
}

static void fit_result(const struct fit *f, double *rate, double *r2)
{
    double vt = f->n * f->stt - f->st * f->st, vv = f->n * f->svv - f->sv * f->sv;
    double cov = f->n * f->stv - f->st * f->sv;
    int flat = f->vmin == f->vmax;
    *rate = vt > 0 && !flat ? cov / vt : 0;
    *r2 = vt > 0 && vv > 0 && !flat ? (cov * cov) / (vt * vv) : 0;
    if (*r2 > 1)
        *r2 = 1;
}

/* The statistics of one series of n values: its ends, peak, phases and held growth. */
static void series_stat(const int64_t *v, size_t stride, size_t n, const struct times *tm,
                        const struct series_context *ctx, struct growth_stat *out)
{
    struct series_phases p;
    series_phases_find(v, stride, n, tm->t, ctx, &p);
    memset(out, 0, sizeof(*out));
    out->start = v[0];
    out->end = v[(n - 1) * stride];
    out->delta = out->end - out->start;
    out->peak = p.peak;
    out->peak_bytes = v[p.peak * stride];
    out->slope = p.slope;
    out->band = p.band;
    out->onset = out->stopped = GROWTH_NONE;
    if (p.held < p.n) {
        const struct phase *h = &p.v[p.held];
        out->onset = h->from;
        out->stopped = h->to;
        out->rate = h->rate;
        out->r2 = h->r2;
        /* It goes on when no move follows it and the quiet after it is shorter than a pause
         * that would have cut it. */
        int moved_after = 0;
        size_t last = n - 1; /* the last snapshot before shutdown */
        for (size_t i = p.held + 1; i < p.n; i++) {
            if (p.v[i].kind == PHASE_SHUTDOWN)
                last = p.v[i].from;
            else
                moved_after |= p.v[i].kind != PHASE_FLAT;
        }
        double quiet = tm->t[last] - tm->t[h->to], length = tm->t[h->to] - tm->t[h->from];
        out->growing = !moved_after && quiet < length / 4;
    }
    out->phases = p.v;
    out->nphases = p.n;
}

struct lineage {
    uint32_t slot;      /* its region now: a slot of the walk */
    uint32_t first;     /* snapshot index where it began */
    uint32_t run_start; /* snapshot index where its current size began */
    uint32_t grew;      /* steps in which it grew */
    int born;           /* it began after the range's first snapshot, from nothing */
    uint32_t peak_at;   /* snapshot index where it was largest (the first time) */
    uint64_t size_first, size, peak;
    struct fit fit;
};

/* The regions that gave back most, as many as are shown: a heap with the one that would be
 * listed last on top, each region held alone until the result takes it. */
struct released {
    struct growth_release *v;
    void **hold;
    size_t n, cap, top;
};

struct state {
    struct store_walk *w;
    const struct times *tm;
    const struct growth_opts *o;
    size_t nsnaps;
    struct lineage *lin;
    size_t nlin, cap;
    uint32_t *spare; /* lineages free for reuse */
    size_t nspare, spare_cap;
    uint32_t *lin_of; /* per slot: the lineage of its region */
    size_t lin_of_cap;
    struct released rel;
    struct pair *pairs;
    size_t pcap;
};

static const struct region *slot_region(const struct state *s, uint32_t slot)
{
    return store_walk_region(s->w, slot);
}

static void lineage_new(struct state *s, uint32_t slot, uint32_t k, int born)
{
    uint32_t i;
    if (s->nspare) {
        i = s->spare[--s->nspare];
    } else {
        s->lin = xgrow(s->lin, &s->cap, s->nlin + 1, sizeof(*s->lin));
        i = (uint32_t)s->nlin++;
    }
    struct lineage *l = &s->lin[i];
    const struct region *r = slot_region(s, slot);
    memset(l, 0, sizeof(*l));
    l->slot = slot;
    l->first = l->run_start = k;
    l->born = born;
    l->size_first = l->size = l->peak = r->end - r->start;
    l->peak_at = k;
    s->lin_of[slot] = i;
}

/* Closes the lineage's current run of one size at snapshot k (exclusive). */
static void lineage_run(struct state *s, struct lineage *l, uint32_t k)
{
    fit_run(&l->fit, s->tm, l->run_start, k, (double)l->size);
    l->run_start = k;
}

struct pair {
    uint32_t gone, came;
    uint64_t overlap;
};

/* Largest given back first; then by address, then the earliest. */
static int cmp_release(const void *x, const void *y)
{
    const struct growth_release *a = x, *b = y;
    uint64_t ga = a->peak - a->size_last, gb = b->peak - b->size_last;
    if (ga != gb)
        return ga > gb ? -1 : 1;
    if (a->now.start != b->now.start)
        return a->now.start < b->now.start ? -1 : 1;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->last < b->last ? -1 : a->last > b->last;
}

static void released_swap(struct released *r, size_t i, size_t j)
{
    struct growth_release t = r->v[i];
    void *h = r->hold[i];
    r->v[i] = r->v[j];
    r->hold[i] = r->hold[j];
    r->v[j] = t;
    r->hold[j] = h;
}

/* Restores the heap below i: a parent is listed after its children. */
static void released_down(struct released *r, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= r->n)
            return;
        if (c + 1 < r->n && cmp_release(&r->v[c + 1], &r->v[c]) > 0)
            c++;
        if (cmp_release(&r->v[c], &r->v[i]) <= 0)
            return;
        released_swap(r, i, c);
        i = c;
    }
}

/* Offers g (its region as the walk holds it) to the list. */
static void released_offer(struct released *r, const struct growth_release *g)
{
    size_t i;
    if (r->top && r->n == r->top) {
        if (cmp_release(g, &r->v[0]) >= 0)
            return; /* it would be listed after all of them */
        free(r->hold[0]);
        r->v[0] = *g;
        r->hold[0] = region_hold(&r->v[0].now);
        released_down(r, 0);
        return;
    }
    r->v = xgrow(r->v, &r->cap, r->n + 1, sizeof(*r->v));
    r->hold = xreallocarray(r->hold, r->cap, sizeof(*r->hold));
    i = r->n++;
    r->v[i] = *g;
    r->hold[i] = region_hold(&r->v[i].now);
    for (; i > 0 && cmp_release(&r->v[i], &r->v[(i - 1) / 2]) > 0; i = (i - 1) / 2)
        released_swap(r, i, (i - 1) / 2);
}

/* The lineage, whose region r is as last seen at snapshot last, gave memory back: freed when
 * it ended there, or smaller than at its peak. */
static void lineage_released(struct state *s, const struct lineage *l, const struct region *r,
                             int freed, uint32_t last)
{
    uint64_t size_last = freed ? 0 : l->size;
    if (l->peak <= size_last || region_committed(r) == 0 ||
        (s->o->category >= 0 && r->category != s->o->category))
        return;
    struct growth_release g = {
        .now = *r,
        .first = l->first,
        .peak_at = l->peak_at,
        .last = last,
        .size_first = l->size_first,
        .peak = l->peak,
        .size_last = size_last,
        .freed = freed,
    };
    released_offer(&s->rel, &g);
}

/* Same file, or both anonymous: what lets a region continue another. */
static int same_backing(const struct region *a, const struct region *b)
{
    if ((a->path == NULL) != (b->path == NULL) || a->inode != b->inode ||
        a->dev_major != b->dev_major || a->dev_minor != b->dev_minor)
        return 0;
    return !a->path || (a->path_len == b->path_len && memcmp(a->path, b->path, a->path_len) == 0);
}

/*
 * One step, k-1 -> k: the slots gone[0..ng) ended at k-1, came[0..nc) began at k, both sorted
 * by start and each disjoint. Continues, ends and begins lineages.
 */
static void step(struct state *s, uint32_t k, const uint32_t *gone, size_t ng, const uint32_t *came,
                 size_t nc)
{
    size_t np = 0;
    for (size_t i = 0, j = 0; i < ng && j < nc;) {
        const struct region *g = slot_region(s, gone[i]), *c = slot_region(s, came[j]);
        uint64_t lo = g->start > c->start ? g->start : c->start;
        uint64_t hi = g->end < c->end ? g->end : c->end;
        if (lo < hi && same_backing(g, c)) {
            s->pairs = xgrow(s->pairs, &s->pcap, np + 1, sizeof(*s->pairs));
            s->pairs[np++] = (struct pair){(uint32_t)i, (uint32_t)j, hi - lo};
        }
        if (g->end <= c->end)
            i++;
        else
            j++;
    }
    /* Each ended region's best successor; then each new region's best predecessor among the
     * ended regions that chose it. */
    size_t *succ = xmalloc((ng ? ng : 1) * sizeof(*succ));
    uint64_t *succ_ov = xcalloc(ng ? ng : 1, sizeof(*succ_ov));
    size_t *pred = xmalloc((nc ? nc : 1) * sizeof(*pred));
    uint64_t *pred_ov = xcalloc(nc ? nc : 1, sizeof(*pred_ov));
    char *touched = xcalloc(nc ? nc : 1, 1);
    for (size_t i = 0; i < ng; i++)
        succ[i] = SIZE_MAX;
    for (size_t j = 0; j < nc; j++)
        pred[j] = SIZE_MAX;
    for (size_t p = 0; p < np; p++) {
        const struct pair *x = &s->pairs[p];
        touched[x->came] = 1;
        if (x->overlap > succ_ov[x->gone]) {
            succ_ov[x->gone] = x->overlap;
            succ[x->gone] = x->came;
        }
    }
    for (size_t i = 0; i < ng; i++)
        if (succ[i] != SIZE_MAX && succ_ov[i] > pred_ov[succ[i]]) {
            pred_ov[succ[i]] = succ_ov[i];
            pred[succ[i]] = i;
        }
    for (size_t i = 0; i < ng; i++) {
        uint32_t li = s->lin_of[gone[i]];
        struct lineage *l = &s->lin[li];
        lineage_run(s, l, k);
        if (succ[i] == SIZE_MAX || pred[succ[i]] != i) {
            /* It ends here: what it held is given back. */
            lineage_released(s, l, slot_region(s, gone[i]), 1, k - 1);
            s->spare = xgrow(s->spare, &s->spare_cap, s->nspare + 1, sizeof(*s->spare));
            s->spare[s->nspare++] = li;
            continue;
        }
        const struct region *c = slot_region(s, came[succ[i]]);
        uint64_t size = c->end - c->start;
        if (size > l->size)
            l->grew++;
        l->size = size;
        if (size > l->peak) {
            l->peak = size;
            l->peak_at = k;
        }
        l->slot = came[succ[i]];
        s->lin_of[l->slot] = li;
    }
    for (size_t j = 0; j < nc; j++)
        if (pred[j] == SIZE_MAX)
            lineage_new(s, came[j], k, !touched[j]);
    free(succ);
    free(succ_ov);
    free(pred);
    free(pred_ov);
    free(touched);
}

static int cmp_lineage(const void *x, const void *y)
{
    const struct growth_lineage *a = x, *b = y;
    if (a->delta != b->delta)
        return a->delta > b->delta ? -1 : 1;
    return a->now.start < b->now.start ? -1 : a->now.start > b->now.start;
}

static int survivor_key_cmp(const struct region *a, const struct region *b)
{
    if (a->category != b->category)
        return a->category < b->category ? -1 : 1;
    int p = memcmp(a->perms, b->perms, 4);
    if (p)
        return p;
    if ((a->path == NULL) != (b->path == NULL))
        return a->path ? 1 : -1;
    if (a->path) {
        size_t n = a->path_len < b->path_len ? a->path_len : b->path_len;
        int c = memcmp(a->path, b->path, n);
        if (c || a->path_len != b->path_len)
            return c ? c : (a->path_len < b->path_len ? -1 : 1);
    }
    uint64_t sa = a->end - a->start, sb = b->end - b->start;
    return sa < sb ? -1 : sa > sb;
}

struct born {
    const struct region *r;
    uint32_t at;
};

static int cmp_born(const void *x, const void *y)
{
    const struct born *a = x, *b = y;
    int c = survivor_key_cmp(a->r, b->r);
    return c ? c : (a->at < b->at ? -1 : a->at > b->at);
}

static int cmp_survivor(const void *x, const void *y)
{
    const struct growth_survivor *a = x, *b = y;
    /* A reservation that commits nothing never outranks a leak. */
    if (a->committed != b->committed)
        return a->committed > b->committed ? -1 : 1;
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes ? -1 : 1;
    return survivor_key_cmp(&a->like, &b->like);
}

/* Committed bytes by category: the running totals hold from snapshot index *filled to k. */
static void fill_series(struct growth_result *out, const int64_t *run, size_t *filled, size_t k)
{
    for (; *filled < k; (*filled)++) {
        int64_t *row = out->cat_committed + *filled * CAT_COUNT, sum = 0;
        for (int c = 0; c < CAT_COUNT; c++) {
            row[c] = run[c];
            sum += run[c];
        }
        out->committed_series[*filled] = sum;
    }
}

/* Walks the range: the committed series and the lineages step by step. */
static int walk(struct state *s, struct growth_result *out, struct err *e)
{
    int64_t run[CAT_COUNT] = {0};
    size_t filled = 0;
    struct store_step st;
    int rc;
    while ((rc = store_walk_next(s->w, &st, e)) == 1) {
        fill_series(out, run, &filled, st.k);
        uint32_t slots = store_walk_slots(s->w);
        if (slots > s->lin_of_cap)
            s->lin_of = xgrow(s->lin_of, &s->lin_of_cap, slots, sizeof(*s->lin_of));
        for (size_t i = 0; i < st.nended; i++) {
            const struct region *r = slot_region(s, st.ended[i]);
            run[r->category] -= (int64_t)region_committed(r);
        }
        for (size_t i = 0; i < st.nbegan; i++) {
            const struct region *r = slot_region(s, st.began[i]);
            run[r->category] += (int64_t)region_committed(r);
            out->cat[r->category].present = 1;
        }
        if (st.k == 0) {
            /* There at the start: not born in the range. */
            for (size_t i = 0; i < st.nbegan; i++)
                lineage_new(s, st.began[i], 0, 0);
        } else {
            step(s, st.k, st.ended, st.nended, st.began, st.nbegan);
        }
    }
    fill_series(out, run, &filled, s->nsnaps);
    return rc;
}

/* What the walk left: the lineages alive at the end, those that gave back, the survivors. */
static void conclude(struct state *s, struct growth_result *out)
{
    const struct growth_opts *o = s->o;
    size_t n = s->nsnaps;
    char *spare = xcalloc(s->nlin ? s->nlin : 1, 1);
    for (size_t i = 0; i < s->nspare; i++)
        spare[s->spare[i]] = 1;
    struct born *born = xmalloc((s->nlin ? s->nlin : 1) * sizeof(*born));
    size_t nborn = 0;
    out->lineages = xmalloc((s->nlin ? s->nlin : 1) * sizeof(*out->lineages));
    for (size_t i = 0; i < s->nlin; i++) {
        struct lineage *l = &s->lin[i];
        if (spare[i])
            continue; /* it ended */
        const struct region *r = slot_region(s, l->slot);
        if (o->category >= 0 && r->category != o->category)
            continue;
        lineage_run(s, l, (uint32_t)n);
        lineage_released(s, l, r, 0, (uint32_t)(n - 1));
        if (l->born)
            born[nborn++] = (struct born){r, l->first};
        /* Growth of memory that holds nothing (a reservation) is not growth. */
        if (l->size <= l->size_first || region_committed(r) == 0)
            continue;
        struct growth_lineage *g = &out->lineages[out->nlineages++];
        double r2;
        g->now = *r;
        g->first = l->first;
        g->size_first = l->size_first;
        g->size_last = l->size;
        g->delta = (int64_t)(l->size - l->size_first);
        fit_result(&l->fit, &g->rate, &r2);
        g->grew_share = n - 1 > l->first ? (double)l->grew / (double)(n - 1 - l->first) : 0;
    }
    free(spare);
    if (out->nlineages > 1)
        qsort(out->lineages, out->nlineages, sizeof(*out->lineages), cmp_lineage);
    if (o->top && out->nlineages > o->top)
        out->nlineages = o->top;

    if (nborn > 1)
        qsort(born, nborn, sizeof(*born), cmp_born);
    out->survivors = xmalloc((nborn ? nborn : 1) * sizeof(*out->survivors));
    for (size_t i = 0; i < nborn;) {
        size_t j = i;
        struct growth_survivor *g = &out->survivors[out->nsurvivors++];
        memset(g, 0, sizeof(*g));
        g->like = *born[i].r;
        g->first_born = born[i].at;
        for (; j < nborn && survivor_key_cmp(born[j].r, born[i].r) == 0; j++) {
            g->count++;
            g->bytes += born[j].r->end - born[j].r->start;
            g->committed += region_committed(born[j].r);
            g->last_born = born[j].at;
        }
        i = j;
    }
    if (out->nsurvivors > 1)
        qsort(out->survivors, out->nsurvivors, sizeof(*out->survivors), cmp_survivor);
    if (o->top && out->nsurvivors > o->top)
        out->nsurvivors = o->top;

    struct released *rel = &s->rel;
    if (rel->n > 1)
        qsort(rel->v, rel->n, sizeof(*rel->v), cmp_release); /* their holds go below */
    out->released = rel->v;
    out->nreleased = rel->n;
    rel->v = NULL;
    /* What is kept of the walk's regions is copied: the result stands alone. */
    for (size_t i = 0; i < out->nlineages; i++)
        region_rehome(&out->names, &out->lineages[i].now);
    for (size_t i = 0; i < out->nsurvivors; i++)
        region_rehome(&out->names, &out->survivors[i].like);
    for (size_t i = 0; i < out->nreleased; i++)
        region_rehome(&out->names, &out->released[i].now);
    free(born);
}

static void state_release(struct state *s)
{
    for (size_t i = 0; i < s->rel.n; i++)
        free(s->rel.hold[i]);
    free(s->rel.hold);
    free(s->rel.v);
    free(s->lin);
    free(s->spare);
    free(s->lin_of);
    free(s->pairs);
}

int growth_compute(struct store *st, int64_t target, int64_t from, int64_t to,
                   const struct growth_opts *o, struct growth_result *out, struct err *e)
{
    struct store_walk *w;
    memset(out, 0, sizeof(*out));
    region_list_init(&out->names);
    int rc = store_walk_open(st, target, from, to, &w, e);
    if (rc < 0) {
        store_walk_close(w);
        return rc;
    }
    size_t n;
    const struct store_hsnap *h = store_walk_snaps(w, &n);
    out->nsnaps = n;
    out->snaps = xmalloc(n * sizeof(*out->snaps));
    for (size_t k = 0; k < n; k++) {
        struct growth_snap *g = &out->snaps[k];
        const struct store_hsnap *x = &h[k];
        g->id = x->id;
        g->seq = x->seq;
        g->taken_ms = x->taken_ms;
        g->mark = x->mark;
        memcpy(g->taken_at, x->taken_at, sizeof(g->taken_at));
        g->label = x->label ? region_list_intern(&out->names, x->label, strlen(x->label)) : NULL;
    }
    out->duration_s = (double)(h[n - 1].taken_ms - h[0].taken_ms) / 1000.0;
    struct times tm = {xmalloc(n * sizeof(double)), xcalloc(n + 1, sizeof(double)),
                       xcalloc(n + 1, sizeof(double))};
    for (size_t k = 0; k < n; k++) {
        tm.t[k] = (double)(h[k].taken_ms - h[0].taken_ms) / 1000.0;
        tm.t1[k + 1] = tm.t1[k] + tm.t[k];
        tm.t2[k + 1] = tm.t2[k] + tm.t[k] * tm.t[k];
    }
    out->have_rss = out->have_cat_rss = 1;
    for (size_t k = 0; k < n; k++) {
        out->have_rss &= h[k].have_rss;
        out->have_cat_rss &= h[k].smaps;
    }
    out->committed_series = xmalloc(n * sizeof(int64_t));
    out->rss_series = xmalloc(n * sizeof(int64_t));
    out->pss_series = xmalloc(n * sizeof(int64_t));
    out->cat_committed = xmalloc(n * CAT_COUNT * sizeof(int64_t));
    for (size_t k = 0; k < n; k++) {
        out->rss_series[k] = (int64_t)h[k].rss_bytes;
        out->pss_series[k] = (int64_t)h[k].pss_bytes;
    }
    if (out->have_cat_rss) {
        out->cat_rss = xmalloc(n * CAT_COUNT * sizeof(int64_t));
        rc = store_walk_category_rss(w, target, out->cat_rss, e);
    }
    struct state s = {.w = w, .tm = &tm, .o = o, .nsnaps = n, .rel.top = o->top};
    if (rc == 0)
        rc = walk(&s, out, e);
    if (rc == 0) {
        conclude(&s, out);
        series_stat(out->committed_series, 1, n, &tm, &o->ctx, &out->committed);
        if (out->have_rss) {
            series_stat(out->rss_series, 1, n, &tm, &o->ctx, &out->rss);
            series_stat(out->pss_series, 1, n, &tm, &o->ctx, &out->pss);
        }
        for (int c = 0; c < CAT_COUNT; c++) {
            if (!out->cat[c].present || (o->category >= 0 && c != o->category)) {
                out->cat[c].present = 0;
                continue;
            }
            series_stat(out->cat_committed + c, CAT_COUNT, n, &tm, &o->ctx, &out->cat[c].committed);
            if (out->cat_rss)
                series_stat(out->cat_rss + c, CAT_COUNT, n, &tm, &o->ctx, &out->cat[c].rss);
        }
    }
    state_release(&s);
    store_walk_close(w);
    free(tm.t);
    free(tm.t1);
    free(tm.t2);
    /* Recorded with --stacks: the code that holds what the range made. */
    if (rc >= 0 && out->nsnaps)
        rc = sites_compute(st, target, out->snaps[0].id, out->snaps[out->nsnaps - 1].id, o->top,
                           &out->sites, &out->nsites, &out->have_sites, e);
    if (rc < 0)
        growth_result_release(out);
    return rc;
}

void growth_result_release(struct growth_result *r)
{
    free(r->committed.phases);
    free(r->rss.phases);
    free(r->pss.phases);
    for (int c = 0; c < CAT_COUNT; c++) {
        free(r->cat[c].committed.phases);
        free(r->cat[c].rss.phases);
    }
    free(r->committed_series);
    free(r->rss_series);
    free(r->pss_series);
    free(r->cat_committed);
    free(r->cat_rss);
    free(r->lineages);
    free(r->released);
    free(r->survivors);
    sites_free(r->sites, r->nsites);
    free(r->snaps);
    region_list_release(&r->names);
    memset(r, 0, sizeof(*r));
}

/* How target's range from..to was recorded: start-up is the first growth of a target
 * recorded from its start, when the range begins there; shutdown the last release of one that
 * exited, when the range ends there. */
static int context_of(struct store *st, const struct store_target *t, int64_t from, int64_t to,
                      struct series_context *ctx, struct err *e)
{
    int64_t target, first, last;
    int rc = store_resolve_range(st, t->id, NULL, NULL, &target, &first, &last, e);
    if (rc < 0)
        return rc;
    const char *origin = t->origin ? t->origin : "";
    ctx->from_start = from == first && (strcmp(origin, STORE_ORIGIN_LAUNCHED) == 0 ||
                                        strcmp(origin, STORE_ORIGIN_FORKED) == 0 ||
                                        strcmp(origin, STORE_ORIGIN_EXEC) == 0);
    ctx->exited = to == last && t->exited_at != NULL;
    return 0;
}

static void brief(const struct growth_stat *s, const struct growth_result *g,
                  struct growth_brief *b)
{
    memset(b, 0, sizeof(*b));
    b->start = s->start;
    b->end = s->end;
    b->delta = s->delta;
    b->peak_bytes = s->peak_bytes;
    b->peak = g->snaps[s->peak];
    b->peak.label = NULL;
    b->held = s->onset != GROWTH_NONE;
    if (b->held) {
        b->rate = s->rate;
        b->growing = s->growing;
        b->onset = g->snaps[s->onset];
        b->onset.label = NULL;
    }
}

/* Held growth first, fastest first; then the highest peak above start; then by id. */
static int cmp_proc(const void *x, const void *y)
{
    const struct growth_proc *a = x, *b = y;
    if (a->committed.held != b->committed.held)
        return a->committed.held ? -1 : 1;
    if (a->committed.rate != b->committed.rate)
        return a->committed.rate > b->committed.rate ? -1 : 1;
    int64_t pa = a->committed.peak_bytes - a->committed.start;
    int64_t pb = b->committed.peak_bytes - b->committed.start;
    if (pa != pb)
        return pa > pb ? -1 : 1;
    return a->t.id < b->t.id ? -1 : a->t.id > b->t.id;
}

int growth_tree(struct store *st, const int64_t *ids, size_t n, int64_t win_from, int64_t win_to,
                struct growth_proc **out, size_t *nout, struct err *e)
{
    int rc = 0;
    *out = xcalloc(n ? n : 1, sizeof(**out));
    *nout = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int64_t target, from, to;
        if (win_from) {
            rc = store_window(st, ids[i], win_from, win_to, &from, &to, e);
            if (rc == 1) {
                rc = 0;
                continue; /* not alive then */
            }
        } else {
            rc = store_resolve_range(st, ids[i], NULL, NULL, &target, &from, &to, e);
        }
        if (rc < 0)
            break;
        struct growth_proc *p = &(*out)[*nout];
        struct growth_opts o = {.category = -1, .top = 1};
        struct growth_result g;
        if ((rc = store_target_get(st, ids[i], &p->t, e)) < 0)
            break;
        (*nout)++;
        if ((rc = context_of(st, &p->t, from, to, &o.ctx, e)) < 0 ||
            (rc = growth_compute(st, ids[i], from, to, &o, &g, e)) < 0)
            break;
        p->alive = p->t.exited_at == NULL;
        p->from = from;
        p->to = to;
        p->nsnaps = g.nsnaps;
        p->have_rss = g.have_rss;
        brief(&g.committed, &g, &p->committed);
        if (g.have_rss) {
            brief(&g.rss, &g, &p->rss);
            brief(&g.pss, &g, &p->pss);
        }
        growth_result_release(&g);
    }
    if (rc < 0) {
        growth_tree_release(*out, *nout);
        *out = NULL;
        *nout = 0;
        return rc;
    }
    if (*nout > 1)
        qsort(*out, *nout, sizeof(**out), cmp_proc);
    return 0;
}

void growth_tree_release(struct growth_proc *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_target_release(&v[i].t);
    free(v);
}

int growth_load(struct store *st, int64_t target_id, const char *from, const char *to,
                const struct growth_opts *o, int mode, struct growth_load *out, struct err *e)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = store_resolve_range(st, target_id, from, to, &out->target, &out->from, &out->to, e)) <
        0)
        return rc;
    if (mode != GROWTH_TREE_OFF) {
        int64_t *ids = NULL;
        size_t n = 0;
        out->root = out->target;
        if (!(mode == GROWTH_TREE_ON && target_id))
            rc = store_root_of(st, out->target, &out->root, e);
        if (rc == 0)
            rc = store_tree(st, out->root, &ids, &n, e);
        int ranged = from || to;
        if (rc == 0 && (n > 1 || mode == GROWTH_TREE_ON))
            rc = growth_tree(st, ids, n, ranged ? out->from : 0, out->to, &out->tree, &out->ntree,
                             e);
        free(ids);
        if (rc < 0)
            return rc;
        if (out->ntree && !ranged && out->tree[0].t.id != out->target) {
            /* The detail is the top process's whole recording. */
            out->target = out->tree[0].t.id;
            if ((rc = store_resolve_range(st, out->target, NULL, NULL, &out->target, &out->from,
                                          &out->to, e)) < 0)
                return rc;
        }
        out->chosen = out->ntree && !ranged;
    }
    struct growth_opts with = *o;
    if ((rc = store_target_get(st, out->target, &out->t, e)) < 0 ||
        (rc = context_of(st, &out->t, out->from, out->to, &with.ctx, e)) < 0)
        return rc;
    return growth_compute(st, out->target, out->from, out->to, &with, &out->g, e);
}

void growth_load_release(struct growth_load *l)
{
    growth_result_release(&l->g);
    store_target_release(&l->t);
    growth_tree_release(l->tree, l->ntree);
    l->tree = NULL;
    l->ntree = 0;
}
