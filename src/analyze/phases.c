/*
 * Phases of a series. The cut is made in three passes, each linear in the snapshots:
 *
 * 1. Turning points with hysteresis: the series turns only when it has moved back from its
 *    running extreme by more than the noise band, so jitter inside the band never turns it.
 *    Between two turning points it rises or falls as a whole (a leg).
 * 2. Each leg keeps as its growth (or release) only the part that moves: from the last snapshot
 *    still near its low (high) end to the first near its other end; what lies outside is flat.
 *    A long pause inside the movement (a plateau at least a quarter of it) is flat too, and the
 *    parts on either side are moves of their own.
 * 3. Adjacent flats join; each phase gets its own least-squares rate; growths are held when
 *    the series never falls back near where they began; startup and shutdown are named.
 *
 * The noise band is 1% of the series' largest value, at least 1 MiB: rss moves by pages and
 * by allocator caches, committed by one-page mappings; neither is a phase.
 */
#include "analyze/phases.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define BAND_MIN (1024 * 1024)

const char *phase_kind_name(int kind)
{
    static const char *const names[] = {"flat", "growth", "release", "startup", "shutdown"};
    return kind >= 0 && kind <= PHASE_SHUTDOWN ? names[kind] : "?";
}

#define V(k) (v[(size_t)(k)*stride])

/* The least-squares slope (bytes per second) and fit of v against t over [a, b]. */
static void series_fit(const int64_t *v, size_t stride, const double *t, size_t a, size_t b,
                       double *rate, double *r2)
{
    double n = (double)(b - a + 1), st = 0, sv = 0;
    int64_t lo = V(a), hi = V(a);
    for (size_t k = a; k <= b; k++) {
        st += t[k];
        sv += (double)V(k);
        lo = V(k) < lo ? V(k) : lo;
        hi = V(k) > hi ? V(k) : hi;
    }
    double mt = st / n, mv = sv / n, ctt = 0, cvv = 0, ctv = 0;
    for (size_t k = a; k <= b; k++) {
        double dt = t[k] - mt, dv = (double)V(k) - mv;
        ctt += dt * dt;
        cvv += dv * dv;
        ctv += dt * dv;
    }
    /* A value that never changes has no rate, whatever the rounding. */
    int flat = lo == hi;
    *rate = ctt > 0 && !flat ? ctv / ctt : 0;
    *r2 = ctt > 0 && cvv > 0 && !flat ? (ctv * ctv) / (ctt * cvv) : 0;
    if (*r2 > 1)
        *r2 = 1;
}

struct cut {
    const int64_t *v;
    size_t stride;
    const double *t;
    int64_t band; /* the noise band: moves within it are not phases */
    int64_t trim; /* near an end: within a quarter of the band */
    struct phase *p;
    size_t n, cap;
};

static void push(struct cut *c, int kind, size_t from, size_t to)
{
    if (to <= from)
        return;
    /* Flats join; so do moves of one direction that meet. */
    if (c->n && c->p[c->n - 1].kind == kind && c->p[c->n - 1].to == from) {
        c->p[c->n - 1].to = to;
        return;
    }
    c->p = xgrow(c->p, &c->cap, c->n + 1, sizeof(*c->p));
    c->p[c->n++] = (struct phase){.kind = kind, .from = from, .to = to};
}

/* The longest run of [a, b] whose values stay within the trim band (greedy), as [*ra, *rb]. */
static void longest_plateau(const struct cut *c, size_t a, size_t b, size_t *ra, size_t *rb)
{
    const int64_t *v = c->v;
    size_t stride = c->stride, s = a, best_a = a, best_b = a;
    int64_t lo = V(a), hi = V(a);
    for (size_t k = a + 1; k <= b; k++) {
        int64_t x = V(k);
        int64_t nlo = x < lo ? x : lo, nhi = x > hi ? x : hi;
        if (nhi - nlo > c->trim) {
            s = k;
            lo = hi = x;
        } else {
            lo = nlo;
            hi = nhi;
        }
        if (c->t[k] - c->t[s] > c->t[best_b] - c->t[best_a]) {
            best_a = s;
            best_b = k;
        }
    }
    *ra = best_a;
    *rb = best_b;
}

/* The move of [a, b] (kind growth or release, its values already trimmed to the part that
 * moves), with its long pauses made flat. */
static void move(struct cut *c, int kind, size_t a, size_t b)
{
    size_t pa, pb;
    longest_plateau(c, a, b, &pa, &pb);
    double whole = c->t[b] - c->t[a];
    const int64_t *v = c->v;
    size_t stride = c->stride;
    /* Each side of the pause must move by more than the noise band to be a move of its own. */
    int64_t before = V(pa) - V(a), after = V(b) - V(pb);
    before = before < 0 ? -before : before;
    after = after < 0 ? -after : after;
    if (pb > pa + 2 && pa > a && pb < b && c->t[pb] - c->t[pa] >= whole / 4 && before > c->band &&
        after > c->band) {
        move(c, kind, a, pa);
        push(c, PHASE_FLAT, pa, pb);
        move(c, kind, pb, b);
        return;
    }
    push(c, kind, a, b);
}

/* The leg [a, b] from one turning point to the next. */
static void leg(struct cut *c, size_t a, size_t b)
{
    const int64_t *v = c->v;
    size_t stride = c->stride;
    int64_t d = V(b) - V(a);
    if (d <= c->band && d >= -c->band) {
        push(c, PHASE_FLAT, a, b);
        return;
    }
    int up = d > 0;
    /* The last snapshot still near the start, the first near the end. What lies outside is
     * flat only when it lasts longer than the move would take to cross the near band twice at
     * its own pace: a steady ramp is near its ends only briefly, and stays one growth. */
    size_t s = a, e = b;
    for (size_t k = a; k <= b; k++)
        if (up ? V(k) < V(a) + c->trim : V(k) > V(a) - c->trim)
            s = k;
    if (s > a && c->t[b] > c->t[s]) {
        double pace = fabs((double)(V(b) - V(s))) / (c->t[b] - c->t[s]);
        if (c->t[s] - c->t[a] <= 2 * (double)c->trim / pace)
            s = a;
    }
    for (size_t k = b + 1; k-- > s;)
        if (up ? V(k) > V(b) - c->trim : V(k) < V(b) + c->trim)
            e = k;
    if (e < b && c->t[e] > c->t[s]) {
        double pace = fabs((double)(V(e) - V(s))) / (c->t[e] - c->t[s]);
        if (c->t[b] - c->t[e] <= 2 * (double)c->trim / pace)
            e = b;
    }
    push(c, PHASE_FLAT, a, s);
    move(c, up ? PHASE_GROWTH : PHASE_RELEASE, s, e);
    push(c, PHASE_FLAT, e, b);
}

/* The phase a program recorded from its start grows in first: index into c->p, or c->n. */
static size_t first_growth(const struct cut *c)
{
    size_t i = c->n && c->p[0].kind == PHASE_FLAT && c->p[0].to - c->p[0].from <= 2 ? 1 : 0;
    return i < c->n && c->p[i].kind == PHASE_GROWTH ? i : c->n;
}

/*
 * A program recorded from its start starts up until it first holds still: three snapshots
 * within the trim band after it has grown by more than the noise band. What grows after that
 * is growth of its own, however soon it comes (a program that loads, settles for a second and
 * then leaks).
 */
static void cut_startup(struct cut *c)
{
    size_t i = first_growth(c);
    if (i == c->n)
        return;
    const int64_t *v = c->v;
    size_t stride = c->stride, a = c->p[i].from, b = c->p[i].to, s = a;
    int64_t lo = V(a), hi = V(a);
    for (size_t k = a + 1; k < b; k++) {
        int64_t x = V(k), nlo = x < lo ? x : lo, nhi = x > hi ? x : hi;
        if (nhi - nlo > c->trim) {
            s = k;
            lo = hi = x;
            continue;
        }
        lo = nlo;
        hi = nhi;
        if (k - s < 2 || s == a || V(s) - V(a) <= c->band)
            continue;
        size_t q = k;
        while (q + 1 < b && V(q + 1) - lo <= c->trim && hi - V(q + 1) <= c->trim)
            q++;
        if (V(b) - V(q) <= c->band)
            return; /* nothing grows after it settles: it is all start-up */
        c->p = xgrow(c->p, &c->cap, c->n + 2, sizeof(*c->p));
        memmove(&c->p[i + 3], &c->p[i + 1], (c->n - i - 1) * sizeof(*c->p));
        c->p[i] = (struct phase){.kind = PHASE_GROWTH, .from = a, .to = s};
        c->p[i + 1] = (struct phase){.kind = PHASE_FLAT, .from = s, .to = q};
        c->p[i + 2] = (struct phase){.kind = PHASE_GROWTH, .from = q, .to = b};
        c->n += 2;
        return;
    }
}

void series_phases_find(const int64_t *v, size_t stride, size_t n, const double *t,
                        const struct series_context *ctx, struct series_phases *out)
{
    memset(out, 0, sizeof(*out));
    int64_t top = 0;
    for (size_t k = 0; k < n; k++) {
        int64_t x = V(k) < 0 ? -V(k) : V(k);
        top = x > top ? x : top;
        if (V(k) > V(out->peak))
            out->peak = k;
    }
    struct cut c = {v, stride, t, top / 100 > BAND_MIN ? top / 100 : BAND_MIN, 0, NULL, 0, 0};
    c.trim = c.band / 4;
    double slope_r2;
    series_fit(v, stride, t, 0, n - 1, &out->slope, &slope_r2);

    /* 1. Turning points. */
    size_t last = 0, lo = 0, hi = 0, ext = 0;
    int dir = 0;
    for (size_t k = 1; k < n; k++) {
        if (dir == 0) {
            lo = V(k) < V(lo) ? k : lo;
            hi = V(k) > V(hi) ? k : hi;
            if (V(hi) - V(lo) > c.band) {
                dir = hi > lo ? 1 : -1;
                size_t turn = hi > lo ? lo : hi;
                if (turn > 0)
                    leg(&c, 0, turn);
                last = turn;
                ext = k;
            }
        } else if (dir > 0 ? V(k) > V(ext) : V(k) < V(ext)) {
            ext = k;
        } else if (dir > 0 ? V(ext) - V(k) > c.band : V(k) - V(ext) > c.band) {
            leg(&c, last, ext);
            last = ext;
            ext = k;
            dir = -dir;
        }
    }
    if (dir != 0) {
        leg(&c, last, ext);
        last = ext;
    }
    if (last < n - 1)
        leg(&c, last, n - 1);
    if (c.n == 0) { /* one snapshot: one flat of no length */
        c.p = xgrow(c.p, &c.cap, 1, sizeof(*c.p));
        c.p[c.n++] = (struct phase){.kind = PHASE_FLAT};
    }

    if (ctx && ctx->from_start)
        cut_startup(&c);

    /* 2. Rates, held growth, startup and shutdown. */
    for (size_t i = 0; i < c.n; i++) {
        struct phase *p = &c.p[i];
        p->delta = V(p->to) - V(p->from);
        if (p->to > p->from)
            series_fit(v, stride, t, p->from, p->to, &p->rate, &p->r2);
    }
    if (ctx && ctx->exited && c.n > 1) {
        /* The last move, when it is a release and at most a short flat follows it (two
         * snapshots, or three quarters of a second: the teardown). A release a second or more
         * before the exit is memory given back, as at any other time. */
        const struct phase *tail = &c.p[c.n - 1];
        size_t i = tail->kind == PHASE_FLAT &&
                           (tail->to - tail->from <= 2 || t[tail->to] - t[tail->from] <= 0.75)
                       ? c.n - 2
                       : c.n - 1;
        if (i > 0 && c.p[i].kind == PHASE_RELEASE)
            c.p[i].kind = PHASE_SHUTDOWN;
    }
    if (ctx && ctx->from_start) {
        /* The first growth, when at most a short flat comes before it (the first snapshot
         * can catch a program before its libraries are in), and something follows it. */
        size_t i = first_growth(&c);
        if (i + 1 < c.n)
            c.p[i].kind = PHASE_STARTUP;
    }
    /* Held: from the growth's end to the last snapshot before shutdown, the series keeps more
     * than half of what the growth gained (and more than the trim band): a cache that kept a
     * fifth of a request's memory gave the request back. */
    size_t end = n - 1;
    for (size_t i = 0; i < c.n; i++)
        if (c.p[i].kind == PHASE_SHUTDOWN)
            end = c.p[i].from;
    int64_t *after = xmalloc(n * sizeof(*after)); /* after[k]: the lowest value in [k, end] */
    after[end] = V(end);
    for (size_t k = end; k-- > 0;)
        after[k] = V(k) < after[k + 1] ? V(k) : after[k + 1];
    out->held = c.n;
    for (size_t i = 0; i < c.n; i++) {
        struct phase *p = &c.p[i];
        if (p->kind != PHASE_GROWTH && p->kind != PHASE_STARTUP)
            continue;
        int64_t gained = V(p->to) - V(p->from), kept = after[p->to] - V(p->from);
        p->held = p->to <= end && kept > c.trim && kept > gained / 2;
        if (p->held && p->kind == PHASE_GROWTH)
            out->held = i;
    }
    free(after);
    out->v = c.p;
    out->n = c.n;
    out->band = c.band;
}

void series_phases_release(struct series_phases *p)
{
    free(p->v);
    memset(p, 0, sizeof(*p));
}
