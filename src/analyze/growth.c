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

/* Same file, or both anonymous: what lets a region continue another. */
static int same_backing(const struct region *a, const struct region *b)
{
    if ((a->path == NULL) != (b->path == NULL) || a->inode != b->inode ||
        a->dev_major != b->dev_major || a->dev_minor != b->dev_minor)
        return 0;
    return !a->path || (a->path_len == b->path_len && memcmp(a->path, b->path, a->path_len) == 0);
}

struct lineage {
    uint32_t region;    /* its region now */
    uint32_t first;     /* snapshot index where it began */
    uint32_t run_start; /* snapshot index where its current size began */
    uint32_t grew;      /* steps in which it grew */
    uint32_t born_at;   /* snapshot index of its birth, when born */
    int born;
    int ended;         /* its region ended at ended_at and nothing continued it */
    uint32_t ended_at; /* snapshot index of the last snapshot it was alive at */
    uint32_t peak_at;  /* snapshot index where it was largest (the first time) */
    uint64_t size_first, size, peak;
    struct fit fit;
};

struct state {
    const struct store_history *h;
    const struct times *tm;
    struct lineage *lin;
    size_t nlin, cap;
    uint32_t *lin_of; /* per region: its lineage */
};

static uint32_t lineage_new(struct state *s, uint32_t region, uint32_t k, int born)
{
    s->lin = xgrow(s->lin, &s->cap, s->nlin + 1, sizeof(*s->lin));
    struct lineage *l = &s->lin[s->nlin];
    const struct region *r = &s->h->regions.v[region];
    memset(l, 0, sizeof(*l));
    l->region = region;
    l->first = l->run_start = k;
    l->born = born;
    l->born_at = k;
    l->size_first = l->size = l->peak = r->end - r->start;
    l->peak_at = k;
    s->lin_of[region] = (uint32_t)s->nlin;
    return (uint32_t)s->nlin++;
}

/* Closes the lineage's current run of one size at snapshot k (exclusive). */
static void lineage_run(struct state *s, struct lineage *l, uint32_t k)
{
    fit_run(&l->fit, s->tm, l->run_start, k, (double)l->size);
    l->run_start = k;
}

/* Orders regions by (key snapshot, start): the ones that begin, or end, at each step. */
struct event {
    uint32_t k, region;
    uint64_t start;
};

static int cmp_event(const void *x, const void *y)
{
    const struct event *a = x, *b = y;
    if (a->k != b->k)
        return a->k < b->k ? -1 : 1;
    return a->start < b->start ? -1 : a->start > b->start;
}

struct pair {
    uint32_t gone, came;
    uint64_t overlap;
};

/*
 * One step, k-1 -> k: gone[0..ng) ended at k-1, came[0..nc) began at k, both sorted by start
 * and each disjoint. Continues, ends and begins lineages.
 */
static void step(struct state *s, uint32_t k, const struct event *gone, size_t ng,
                 const struct event *came, size_t nc, struct pair **pairs, size_t *pcap)
{
    const struct region *v = s->h->regions.v;
    size_t np = 0;
    for (size_t i = 0, j = 0; i < ng && j < nc;) {
        const struct region *g = &v[gone[i].region], *c = &v[came[j].region];
        uint64_t lo = g->start > c->start ? g->start : c->start;
        uint64_t hi = g->end < c->end ? g->end : c->end;
        if (lo < hi && same_backing(g, c)) {
            *pairs = xgrow(*pairs, pcap, np + 1, sizeof(**pairs));
            (*pairs)[np++] = (struct pair){(uint32_t)i, (uint32_t)j, hi - lo};
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
        const struct pair *x = &(*pairs)[p];
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
        struct lineage *l = &s->lin[s->lin_of[gone[i].region]];
        lineage_run(s, l, k);
        if (succ[i] == SIZE_MAX || pred[succ[i]] != i) {
            l->ended = 1; /* it ends here */
            l->ended_at = k - 1;
            continue;
        }
        const struct region *c = &v[came[succ[i]].region];
        uint64_t size = c->end - c->start;
        if (size > l->size)
            l->grew++;
        l->size = size;
        if (size > l->peak) {
            l->peak = size;
            l->peak_at = k;
        }
        l->region = came[succ[i]].region;
        s->lin_of[l->region] = s->lin_of[gone[i].region];
    }
    for (size_t j = 0; j < nc; j++)
        if (pred[j] == SIZE_MAX)
            lineage_new(s, came[j].region, k, !touched[j]);
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

/* Largest given back first. */
static int cmp_release(const void *x, const void *y)
{
    const struct growth_release *a = x, *b = y;
    uint64_t ga = a->peak - a->size_last, gb = b->peak - b->size_last;
    if (ga != gb)
        return ga > gb ? -1 : 1;
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

/* Committed bytes by category per snapshot, and per-region rss where every snapshot has it. */
static void build_series(const struct store_history *h, struct growth_result *out, int64_t *cat_rss)
{
    size_t n = h->nsnaps;
    int64_t *dc = xcalloc((n + 1) * CAT_COUNT, sizeof(*dc));
    for (size_t i = 0; i < h->regions.n; i++) {
        const struct region *r = &h->regions.v[i];
        int64_t c = (int64_t)region_committed(r);
        dc[(size_t)h->alive[i].first * CAT_COUNT + r->category] += c;
        dc[((size_t)h->alive[i].last + 1) * CAT_COUNT + r->category] -= c;
        out->cat[r->category].present = 1;
    }
    int64_t run[CAT_COUNT] = {0};
    for (size_t k = 0; k < n; k++) {
        out->committed_series[k] = 0;
        for (int c = 0; c < CAT_COUNT; c++) {
            run[c] += dc[k * CAT_COUNT + (size_t)c];
            out->cat_committed[k * CAT_COUNT + (size_t)c] = run[c];
            out->committed_series[k] += run[c];
        }
    }
    if (cat_rss) {
        memset(dc, 0, (n + 1) * CAT_COUNT * sizeof(*dc));
        for (size_t m = 0; m < h->nmem; m++) {
            const struct store_hmem *x = &h->mem[m];
            const struct store_halive *a = &h->alive[x->region];
            /* An interval of figures ends with its region at the latest. */
            uint32_t lo = x->first > a->first ? x->first : a->first;
            uint32_t hi = x->last < a->last ? x->last : a->last;
            if (lo > hi)
                continue;
            int c = h->regions.v[x->region].category;
            dc[(size_t)lo * CAT_COUNT + (size_t)c] += (int64_t)x->rss;
            dc[((size_t)hi + 1) * CAT_COUNT + (size_t)c] -= (int64_t)x->rss;
        }
        memset(run, 0, sizeof(run));
        for (size_t k = 0; k < n; k++)
            for (int c = 0; c < CAT_COUNT; c++) {
                run[c] += dc[k * CAT_COUNT + (size_t)c];
                cat_rss[k * CAT_COUNT + (size_t)c] = run[c];
            }
    }
    free(dc);
}

static void follow(const struct store_history *h, const struct times *tm,
                   const struct growth_opts *o, struct growth_result *out)
{
    size_t n = h->nsnaps, nr = h->regions.n;
    struct state s = {h, tm, NULL, 0, 0, xcalloc(nr ? nr : 1, sizeof(uint32_t))};
    struct event *begins = xmalloc((nr ? nr : 1) * sizeof(*begins));
    struct event *ends = xmalloc((nr ? nr : 1) * sizeof(*ends));
    size_t nb = 0, ne = 0;
    for (size_t i = 0; i < nr; i++) {
        const struct store_halive *a = &h->alive[i];
        uint64_t start = h->regions.v[i].start;
        if (a->first == 0)
            lineage_new(&s, (uint32_t)i, 0, 0); /* there at the start: not born in the range */
        else
            begins[nb++] = (struct event){a->first, (uint32_t)i, start};
        if (a->last + 1 < n)
            ends[ne++] = (struct event){a->last + 1, (uint32_t)i, start};
    }
    if (nb > 1)
        qsort(begins, nb, sizeof(*begins), cmp_event);
    if (ne > 1)
        qsort(ends, ne, sizeof(*ends), cmp_event);
    struct pair *pairs = NULL;
    size_t pcap = 0;
    for (size_t bi = 0, ei = 0; bi < nb || ei < ne;) {
        uint32_t k =
            bi < nb && (ei >= ne || begins[bi].k <= ends[ei].k) ? begins[bi].k : ends[ei].k;
        size_t b0 = bi, e0 = ei;
        while (bi < nb && begins[bi].k == k)
            bi++;
        while (ei < ne && ends[ei].k == k)
            ei++;
        step(&s, k, ends + e0, ei - e0, begins + b0, bi - b0, &pairs, &pcap);
    }
    free(pairs);

    /* The lineages alive at the end: those whose region lives to the last snapshot. */
    struct born *born = xmalloc((s.nlin ? s.nlin : 1) * sizeof(*born));
    size_t nborn = 0;
    out->lineages = xmalloc((s.nlin ? s.nlin : 1) * sizeof(*out->lineages));
    for (size_t i = 0; i < s.nlin; i++) {
        struct lineage *l = &s.lin[i];
        const struct region *r = &h->regions.v[l->region];
        if (h->alive[l->region].last + 1 != n)
            continue;
        if (o->category >= 0 && r->category != o->category)
            continue;
        lineage_run(&s, l, (uint32_t)n);
        if (l->born)
            born[nborn++] = (struct born){r, l->born_at};
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
    if (out->nlineages > 1)
        qsort(out->lineages, out->nlineages, sizeof(*out->lineages), cmp_lineage);
    if (o->top && out->nlineages > o->top)
        out->nlineages = o->top;

    /* Those that gave back: freed, or smaller at the end than at their peak. */
    out->released = xmalloc((s.nlin ? s.nlin : 1) * sizeof(*out->released));
    for (size_t i = 0; i < s.nlin; i++) {
        const struct lineage *l = &s.lin[i];
        const struct region *r = &h->regions.v[l->region];
        uint64_t last = l->ended ? 0 : l->size;
        if (l->peak <= last || region_committed(r) == 0 ||
            (o->category >= 0 && r->category != o->category))
            continue;
        struct growth_release *g = &out->released[out->nreleased++];
        g->now = *r;
        g->first = l->first;
        g->peak_at = l->peak_at;
        g->last = l->ended ? l->ended_at : n - 1;
        g->size_first = l->size_first;
        g->peak = l->peak;
        g->size_last = last;
        g->freed = l->ended;
    }
    if (out->nreleased > 1)
        qsort(out->released, out->nreleased, sizeof(*out->released), cmp_release);
    if (o->top && out->nreleased > o->top)
        out->nreleased = o->top;

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
    /* What is kept of the history's regions is copied: the result stands alone. */
    for (size_t i = 0; i < out->nlineages; i++)
        region_rehome(&out->names, &out->lineages[i].now);
    for (size_t i = 0; i < out->nsurvivors; i++)
        region_rehome(&out->names, &out->survivors[i].like);
    for (size_t i = 0; i < out->nreleased; i++)
        region_rehome(&out->names, &out->released[i].now);
    free(born);
    free(begins);
    free(ends);
    free(s.lin);
    free(s.lin_of);
}

int growth_compute(const struct store_history *h, const struct growth_opts *o,
                   struct growth_result *out, struct err *e)
{
    size_t n = h->nsnaps;
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return err_set(e, ERR_NOTFOUND, "no snapshots in the range");
    out->nsnaps = n;
    region_list_init(&out->names);
    out->snaps = xmalloc(n * sizeof(*out->snaps));
    for (size_t k = 0; k < n; k++) {
        struct growth_snap *g = &out->snaps[k];
        const struct store_hsnap *x = &h->snaps[k];
        g->id = x->id;
        g->seq = x->seq;
        g->taken_ms = x->taken_ms;
        memcpy(g->taken_at, x->taken_at, sizeof(g->taken_at));
        g->label = x->label ? region_list_intern(&out->names, x->label, strlen(x->label)) : NULL;
    }
    out->duration_s = (double)(h->snaps[n - 1].taken_ms - h->snaps[0].taken_ms) / 1000.0;
    struct times tm = {xmalloc(n * sizeof(double)), xcalloc(n + 1, sizeof(double)),
                       xcalloc(n + 1, sizeof(double))};
    for (size_t k = 0; k < n; k++) {
        tm.t[k] = (double)(h->snaps[k].taken_ms - h->snaps[0].taken_ms) / 1000.0;
        tm.t1[k + 1] = tm.t1[k] + tm.t[k];
        tm.t2[k + 1] = tm.t2[k] + tm.t[k] * tm.t[k];
    }
    out->have_rss = out->have_cat_rss = 1;
    for (size_t k = 0; k < n; k++) {
        out->have_rss &= h->snaps[k].have_rss;
        out->have_cat_rss &= h->snaps[k].smaps;
    }
    out->committed_series = xmalloc(n * sizeof(int64_t));
    out->rss_series = xmalloc(n * sizeof(int64_t));
    out->cat_committed = xmalloc(n * CAT_COUNT * sizeof(int64_t));
    int64_t *cat_rss = out->have_cat_rss ? xmalloc(n * CAT_COUNT * sizeof(int64_t)) : NULL;
    build_series(h, out, cat_rss);
    out->cat_rss = cat_rss;
    for (size_t k = 0; k < n; k++)
        out->rss_series[k] = (int64_t)h->snaps[k].rss_bytes;
    series_stat(out->committed_series, 1, n, &tm, &o->ctx, &out->committed);
    if (out->have_rss)
        series_stat(out->rss_series, 1, n, &tm, &o->ctx, &out->rss);
    for (int c = 0; c < CAT_COUNT; c++) {
        if (!out->cat[c].present || (o->category >= 0 && c != o->category)) {
            out->cat[c].present = 0;
            continue;
        }
        series_stat(out->cat_committed + c, CAT_COUNT, n, &tm, &o->ctx, &out->cat[c].committed);
        if (cat_rss)
            series_stat(cat_rss + c, CAT_COUNT, n, &tm, &o->ctx, &out->cat[c].rss);
    }
    follow(h, &tm, o, out);
    free(tm.t);
    free(tm.t1);
    free(tm.t2);
    return 0;
}

void growth_result_release(struct growth_result *r)
{
    free(r->committed.phases);
    free(r->rss.phases);
    for (int c = 0; c < CAT_COUNT; c++) {
        free(r->cat[c].committed.phases);
        free(r->cat[c].rss.phases);
    }
    free(r->committed_series);
    free(r->rss_series);
    free(r->cat_committed);
    free(r->cat_rss);
    free(r->lineages);
    free(r->released);
    free(r->survivors);
    free(r->snaps);
    region_list_release(&r->names);
    memset(r, 0, sizeof(*r));
}

int growth_load(struct store *st, int64_t target_id, const char *from, const char *to,
                const struct growth_opts *o, struct growth_load *out, struct err *e)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = store_resolve_range(st, target_id, from, to, &out->target, &out->from, &out->to, e)) <
            0 ||
        (rc = store_target_get(st, out->target, &out->t, e)) < 0 ||
        (rc = store_read_history(st, out->target, out->from, out->to, &out->h, e)) < 0)
        return rc;
    /* Start-up is the first growth of a target recorded from its start, when the range begins
     * there; shutdown the last release of one that exited, when the range ends there. */
    int64_t t, first, last;
    if ((rc = store_resolve_range(st, out->target, NULL, NULL, &t, &first, &last, e)) < 0)
        return rc;
    const char *origin = out->t.origin ? out->t.origin : "";
    struct growth_opts with = *o;
    with.ctx.from_start = out->from == first && (strcmp(origin, STORE_ORIGIN_LAUNCHED) == 0 ||
                                                 strcmp(origin, STORE_ORIGIN_FORKED) == 0 ||
                                                 strcmp(origin, STORE_ORIGIN_EXEC) == 0);
    with.ctx.exited = out->to == last && out->t.exited_at != NULL;
    return growth_compute(&out->h, &with, &out->g, e);
}

void growth_load_release(struct growth_load *l)
{
    growth_result_release(&l->g);
    store_history_release(&l->h);
    store_target_release(&l->t);
}
