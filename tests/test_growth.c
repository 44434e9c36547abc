/*
 * Growth over a recording: first on histories written through the store with known timestamps
 * (exact rates, onsets, lineages and survivors), then end to end on live processes with scripted
 * behaviour: a leak at a known rate after a known delay, regions growing down and up in place,
 * threads whose arenas reserve memory, and a target that holds still.
 */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyze/growth.h"
#include "testutil.h"

#define K 1024ULL
#define M (1024ULL * 1024)

/* A history written snapshot by snapshot, one second apart. */
struct hist {
    char *path;
    struct store *st;
    struct store_writer *w;
    struct capture_target t;
    struct region_list l;
    int64_t ids[64];
    size_t n;
};

static void hist_open(struct hist *h)
{
    struct err e = {0};
    memset(h, 0, sizeof(*h));
    h->path = tu_tmppath("g.db", NULL);
    assert_int_equal(store_open(&h->st, h->path, STORE_WRITE, &e), 0);
    h->t = (struct capture_target){.pid = 7,
                                   .start_time = 1,
                                   .boot_id = "b",
                                   .exe = "/bin/leaky",
                                   .cmdline = "leaky",
                                   .exec_key = "k",
                                   .host = "h",
                                   .os = "linux"};
    assert_int_equal(store_writer_open(h->st, &h->t, &h->w, &e), 0);
    region_list_init(&h->l);
}

static void hist_close(struct hist *h)
{
    store_writer_close(h->w);
    store_close(h->st);
    region_list_release(&h->l);
    free(h->path);
}

static void add(struct hist *h, uint64_t start, uint64_t end, const char *perms)
{
    struct region *r = region_list_push(&h->l);
    r->start = start;
    r->end = end;
    memcpy(r->perms, perms, 5);
    r->category = perms[0] == '-' && perms[1] == '-' && perms[2] == '-' ? CAT_GUARD : CAT_ANON;
}

/* Writes the regions added since the last call as the next snapshot, then clears them. */
static void hist_snap(struct hist *h)
{
    struct err e = {0};
    struct capture_info info = {.detail = DETAIL_MAPS, .method = "maps"};
    info.taken_at_ms = 1800000000000LL + (int64_t)h->n * 1000;
    region_list_sanitize(&h->l);
    if (store_writer_write(h->w, &h->l, &info, NULL, 0, &h->ids[h->n], &e) < 0)
        fail_msg("write: %s", e.msg);
    h->n++;
    region_list_clear(&h->l);
}

static void hist_growth(struct hist *h, int category, struct growth_result *g)
{
    struct err e = {0};
    struct growth_opts o = {.category = category, .top = 10};
    if (growth_compute(h->st, store_writer_target(h->w), h->ids[0], h->ids[h->n - 1], &o, g, &e) <
        0)
        fail_msg("growth: %s", e.msg);
}

/* The least-squares slope of v[0..n) against t = 0, 1, 2, ... seconds, computed plainly. */
static double slope(const double *v, size_t n)
{
    double mt = (double)(n - 1) / 2, mv = 0, num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        mv += v[i] / (double)n;
    for (size_t i = 0; i < n; i++) {
        num += ((double)i - mt) * (v[i] - mv);
        den += ((double)i - mt) * ((double)i - mt);
    }
    return num / den;
}

/* A region that starts growing by 1 MiB a second at the sixth snapshot. */
static void test_rate_and_onset(void **state)
{
    (void)state;
    struct hist h;
    hist_open(&h);
    const uint64_t X = 0x7f0000000000ULL;
    double series[20];
    for (size_t k = 0; k < 20; k++) {
        uint64_t size = M + (k > 5 ? (k - 5) * M : 0);
        add(&h, 0x400000, 0x401000, "r-xp"); /* something that never changes */
        add(&h, X, X + size, "rw-p");
        series[k] = (double)(size + 4 * K);
        hist_snap(&h);
    }
    struct growth_result g;
    hist_growth(&h, -1, &g);
    assert_int_equal(g.nsnaps, 20);
    assert_true(fabs(g.duration_s - 19.0) < 1e-9);
    assert_int_equal(g.committed.start, (int64_t)(M + 4 * K));
    assert_int_equal(g.committed.delta, (int64_t)(14 * M));
    assert_int_equal(g.committed.onset, 5); /* the last snapshot before it grew */
    /* The rate is the growth's own, from its onset; the slope runs over every snapshot. */
    assert_true(fabs(g.committed.rate - (double)M) < 1e-6 * (double)M);
    assert_true(fabs(g.committed.r2 - 1.0) < 1e-9);
    assert_true(g.committed.growing);
    if (fabs(g.committed.slope - slope(series, 20)) > 1e-6 * slope(series, 20))
        fail_msg("slope %f, expected %f", g.committed.slope, slope(series, 20));
    assert_int_equal(g.committed.peak, 19);
    assert_int_equal(g.committed.peak_bytes, (int64_t)(15 * M + 4 * K));
    assert_int_equal(g.committed.nphases, 2);
    assert_int_equal(g.committed.phases[0].kind, PHASE_FLAT);
    assert_int_equal(g.committed.phases[1].kind, PHASE_GROWTH);
    assert_int_equal(g.committed.phases[1].from, 5);
    assert_int_equal(g.committed.phases[1].to, 19);
    assert_int_equal(g.cat[CAT_ANON].committed.delta, (int64_t)(14 * M));
    /* One lineage, the growing region, followed from the first snapshot. */
    assert_int_equal(g.nlineages, 1);
    assert_true(g.lineages[0].now.start == X);
    assert_int_equal(g.lineages[0].first, 0);
    assert_int_equal(g.lineages[0].size_first, M);
    assert_int_equal(g.lineages[0].delta, (int64_t)(14 * M));
    assert_true(fabs(g.lineages[0].grew_share - 14.0 / 19.0) < 1e-9);
    assert_int_equal(g.nsurvivors, 0);
    growth_result_release(&g);
    hist_close(&h);
}

/* One phase as a test expects it: kind, from, to, and held (-1: not a growth). */
struct want_phase {
    int kind;
    size_t from, to;
    int held;
};

/* Growth of a series of one anonymous region's sizes (bytes, one a second) beside a page that
 * never changes, with the context given; its committed phases must be `want`. */
static void shape(const uint64_t *sizes, size_t n, struct series_context ctx,
                  const struct want_phase *want, size_t nwant, struct growth_result *g,
                  struct hist *h)
{
    const uint64_t X = 0x7f0000000000ULL;
    hist_open(h);
    /* Recorded as the context says, so that the CLI sees the same. */
    if (ctx.from_start)
        store_writer_set_origin(h->w, STORE_ORIGIN_LAUNCHED);
    for (size_t k = 0; k < n; k++) {
        add(h, 0x400000, 0x401000, "r-xp");
        add(h, X, X + sizes[k], "rw-p");
        hist_snap(h);
    }
    struct err e = {0};
    if (ctx.exited && store_target_exited(h->st, store_writer_target(h->w),
                                          1800000000000LL + (int64_t)n * 1000, &e) < 0)
        fail_msg("exited: %s", e.msg);
    struct growth_opts o = {.category = -1, .top = 10, .ctx = ctx};
    if (growth_compute(h->st, store_writer_target(h->w), h->ids[0], h->ids[n - 1], &o, g, &e) < 0)
        fail_msg("growth: %s", e.msg);
    const struct growth_stat *s = &g->committed;
    /* The gate judges what is held: it trips under the held rate, and never when nothing is. */
    for (int over = 0; over < 2; over++) {
        char limit[32];
        snprintf(limit, sizeof(limit), "%.0f",
                 s->onset == GROWTH_NONE ? 1.0 : s->rate * (over ? 2 : 0.5));
        struct tu_run r;
        tu_vmsnap(&r, "-d", h->path, "growth", "--fail-on-rate", limit, NULL);
        int trips = s->onset != GROWTH_NONE && !over;
        if (r.status != trips)
            fail_msg("--fail-on-rate %s: status %d, not %d: %s", limit, r.status, trips, r.out);
        tu_run_release(&r);
    }
    int same = s->nphases == nwant;
    for (size_t i = 0; same && i < nwant; i++)
        same = s->phases[i].kind == want[i].kind && s->phases[i].from == want[i].from &&
               s->phases[i].to == want[i].to &&
               (want[i].held < 0 || s->phases[i].held == want[i].held);
    if (!same) {
        char got[2048];
        size_t len = 0;
        for (size_t i = 0; i < s->nphases; i++)
            len += (size_t)snprintf(got + len, sizeof(got) - len, " %s[%zu,%zu]%s",
                                    phase_kind_name(s->phases[i].kind), s->phases[i].from,
                                    s->phases[i].to, s->phases[i].held ? "held" : "");
        fail_msg("phases:%s", got);
    }
}

static void shape_done(struct growth_result *g, struct hist *h)
{
    growth_result_release(g);
    hist_close(h);
}

/*
 * Start-up to 41 MiB, a plateau, a 30 MiB hump given back, a quiet stretch, then a late leak of
 * 2 MiB/s that stops ten seconds before the end: the answer is the late leak, with its own rate
 * and onset; the hump is the peak, and start-up is not judged.
 */
static void test_phases_of_a_server(void **state)
{
    (void)state;
    uint64_t mib[51];
    for (size_t k = 0; k < 51; k++)
        mib[k] = k <= 4    ? 1 + 10 * k
                 : k <= 10 ? 41
                 : k <= 15 ? 41 + 10 * (k < 13 ? k - 10 : 3)
                 : k <= 25 ? 41
                 : k <= 40 ? 41 + 2 * (k - 25)
                           : 71;
    uint64_t sizes[51];
    for (size_t k = 0; k < 51; k++)
        sizes[k] = mib[k] * M;
    static const struct want_phase want[] = {
        {PHASE_STARTUP, 0, 4, 1},  {PHASE_FLAT, 4, 10, -1},     {PHASE_GROWTH, 10, 13, 0},
        {PHASE_FLAT, 13, 15, -1},  {PHASE_RELEASE, 15, 16, -1}, {PHASE_FLAT, 16, 25, -1},
        {PHASE_GROWTH, 25, 40, 1}, {PHASE_FLAT, 40, 50, -1},
    };
    struct hist h;
    struct growth_result g;
    shape(sizes, 51, (struct series_context){.from_start = 1}, want, 8, &g, &h);
    const struct growth_stat *s = &g.committed;
    assert_int_equal(s->onset, 25);
    assert_int_equal(s->stopped, 40);
    assert_true(fabs(s->rate - 2.0 * M) < 1e-6 * M);
    assert_false(s->growing);
    assert_int_equal(s->peak, 13);
    assert_int_equal(s->peak_bytes, (int64_t)(71 * M + 4 * K));
    assert_int_equal(s->delta, (int64_t)(70 * M));
    shape_done(&g, &h);

    /* Not recorded from its start: the first growth is a growth like any, and held. */
    static const struct want_phase attached[] = {
        {PHASE_GROWTH, 0, 4, 1},   {PHASE_FLAT, 4, 10, -1},     {PHASE_GROWTH, 10, 13, 0},
        {PHASE_FLAT, 13, 15, -1},  {PHASE_RELEASE, 15, 16, -1}, {PHASE_FLAT, 16, 25, -1},
        {PHASE_GROWTH, 25, 40, 1}, {PHASE_FLAT, 40, 50, -1},
    };
    shape(sizes, 51, (struct series_context){0}, attached, 8, &g, &h);
    assert_int_equal(g.committed.onset, 25);
    shape_done(&g, &h);
}

/* A leak of 1 MiB/s, a pause, then the process exits and gives everything back: shutdown is
 * not judged, so the leak is the answer; without the exit, the release gives it back. */
static void test_phases_leak_then_shutdown(void **state)
{
    (void)state;
    uint64_t sizes[28];
    for (size_t k = 0; k < 28; k++)
        sizes[k] = (k <= 20 ? 1 + k : k <= 25 ? 21 : k == 26 ? 2 : 1) * M;
    static const struct want_phase want[] = {
        {PHASE_GROWTH, 0, 20, 1}, {PHASE_FLAT, 20, 25, -1}, {PHASE_SHUTDOWN, 25, 27, -1}};
    struct hist h;
    struct growth_result g;
    shape(sizes, 28, (struct series_context){.exited = 1}, want, 3, &g, &h);
    assert_int_equal(g.committed.onset, 0);
    assert_true(fabs(g.committed.rate - (double)M) < 1e-6 * M);
    assert_int_equal(g.committed.delta, 0); /* start to end shows nothing */
    shape_done(&g, &h);
    static const struct want_phase alive[] = {
        {PHASE_GROWTH, 0, 20, 0}, {PHASE_FLAT, 20, 25, -1}, {PHASE_RELEASE, 25, 27, -1}};
    shape(sizes, 28, (struct series_context){0}, alive, 3, &g, &h);
    assert_int_equal(g.committed.onset, GROWTH_NONE);
    assert_true(g.committed.rate == 0);
    shape_done(&g, &h);
}

/* Noise of half a MiB on 100 MiB is no phase; a 20 MiB leak through the same noise is one,
 * from where it began. */
static void test_phases_noise(void **state)
{
    (void)state;
    uint64_t sizes[50];
    for (size_t k = 0; k < 50; k++)
        sizes[k] = 100 * M + (k % 2) * 512 * K + (k > 25 ? (k - 25) * M : 0);
    static const struct want_phase quiet[] = {{PHASE_FLAT, 0, 25, -1}};
    struct hist h;
    struct growth_result g;
    shape(sizes, 26, (struct series_context){0}, quiet, 1, &g, &h);
    assert_int_equal(g.committed.onset, GROWTH_NONE);
    shape_done(&g, &h);
    static const struct want_phase leak[] = {{PHASE_FLAT, 0, 24, -1}, {PHASE_GROWTH, 24, 49, 1}};
    shape(sizes, 50, (struct series_context){0}, leak, 2, &g, &h);
    assert_true(g.committed.growing);
    assert_true(fabs(g.committed.rate - (double)M) < 0.05 * M);
    shape_done(&g, &h);
}

/* A program that loads (2 MiB), settles for nine seconds, then leaks 512 KiB/s without a pause:
 * start-up ends where it first holds still, and the leak is a growth of its own. */
static void test_phases_startup_settles(void **state)
{
    (void)state;
    uint64_t sizes[51];
    for (size_t k = 0; k < 51; k++)
        sizes[k] = k == 0 ? 10 * M : 12 * M + (k > 10 ? (k < 38 ? k - 10 : 28) * 512 * K : 0);
    static const struct want_phase want[] = {{PHASE_STARTUP, 0, 1, 1},
                                             {PHASE_FLAT, 1, 10, -1},
                                             {PHASE_GROWTH, 10, 38, 1},
                                             {PHASE_FLAT, 38, 50, -1}};
    struct hist h;
    struct growth_result g;
    shape(sizes, 51, (struct series_context){.from_start = 1}, want, 4, &g, &h);
    assert_int_equal(g.committed.onset, 10);
    assert_true(fabs(g.committed.rate - 512.0 * K) < 1e-6 * K);
    shape_done(&g, &h);
}

/* A 50 MiB hump of which a cache keeps 8 MiB was given back; one that keeps 35 MiB is held. */
static void test_phases_partly_given_back(void **state)
{
    (void)state;
    uint64_t sizes[30];
    static const struct want_phase want[] = {{PHASE_FLAT, 0, 9, -1},
                                             {PHASE_GROWTH, 9, 10, 0},
                                             {PHASE_FLAT, 10, 19, -1},
                                             {PHASE_RELEASE, 19, 20, -1},
                                             {PHASE_FLAT, 20, 29, -1}};
    struct hist h;
    struct growth_result g;
    for (size_t k = 0; k < 30; k++)
        sizes[k] = (k < 10 ? 10 : k < 20 ? 60 : 18) * M;
    shape(sizes, 30, (struct series_context){0}, want, 5, &g, &h);
    assert_int_equal(g.committed.onset, GROWTH_NONE);
    assert_int_equal(g.committed.peak, 10);
    /* The region that grew and shrank is listed as having given back 42 MiB. */
    assert_int_equal(g.nreleased, 1);
    assert_int_equal(g.released[0].peak, 60 * M);
    assert_int_equal(g.released[0].size_last, 18 * M);
    assert_int_equal(g.released[0].peak_at, 10);
    assert_false(g.released[0].freed);
    shape_done(&g, &h);
    for (size_t k = 20; k < 30; k++)
        sizes[k] = 45 * M;
    static const struct want_phase kept[] = {{PHASE_FLAT, 0, 9, -1},
                                             {PHASE_GROWTH, 9, 10, 1},
                                             {PHASE_FLAT, 10, 19, -1},
                                             {PHASE_RELEASE, 19, 20, -1},
                                             {PHASE_FLAT, 20, 29, -1}};
    shape(sizes, 30, (struct series_context){0}, kept, 5, &g, &h);
    assert_int_equal(g.committed.onset, 9);
    shape_done(&g, &h);
}

/* One step of 50 MiB, held: a growth of one second. A slow ramp of 64 KiB/s, each step inside
 * the noise band: one growth from the first snapshot, still going. */
static void test_phases_step_and_ramp(void **state)
{
    (void)state;
    uint64_t sizes[41];
    for (size_t k = 0; k < 21; k++)
        sizes[k] = (k < 10 ? 10 : 60) * M;
    static const struct want_phase step[] = {
        {PHASE_FLAT, 0, 9, -1}, {PHASE_GROWTH, 9, 10, 1}, {PHASE_FLAT, 10, 20, -1}};
    struct hist h;
    struct growth_result g;
    shape(sizes, 21, (struct series_context){0}, step, 3, &g, &h);
    assert_int_equal(g.committed.onset, 9);
    assert_true(fabs(g.committed.rate - 50.0 * M) < 1e-6 * M);
    assert_false(g.committed.growing);
    shape_done(&g, &h);
    for (size_t k = 0; k < 41; k++)
        sizes[k] = 10 * M + k * 64 * K;
    static const struct want_phase ramp[] = {{PHASE_GROWTH, 0, 40, 1}};
    shape(sizes, 41, (struct series_context){0}, ramp, 1, &g, &h);
    assert_int_equal(g.committed.onset, 0);
    assert_true(g.committed.growing);
    assert_true(fabs(g.committed.rate - 64.0 * K) < 1e-6 * K);
    shape_done(&g, &h);
}

/*
 * A region growing downward (its start moves) and one growing upward, split by an mprotect
 * and merged back on the way: one lineage each. Memory made no-access is not growth.
 */
static void test_lineages_follow_either_end(void **state)
{
    (void)state;
    struct hist h;
    hist_open(&h);
    const uint64_t D = 0x7f0000000000ULL, U = 0x7e0000000000ULL, R = 0x7d0000000000ULL;
    for (uint64_t k = 0; k < 10; k++) {
        uint64_t lo = D - k * 64 * K;
        if (k >= 4 && k < 7) { /* split in three by mprotect of one page */
            add(&h, lo, lo + 4 * K, "rw-p");
            add(&h, lo + 4 * K, lo + 8 * K, "r--p");
            add(&h, lo + 8 * K, D + 64 * K, "rw-p");
        } else {
            add(&h, lo, D + 64 * K, "rw-p");
        }
        add(&h, U, U + 64 * K + k * 128 * K, "rw-p");
        add(&h, R, R + 64 * K + k * 64 * K, "---p"); /* a reservation growing */
        hist_snap(&h);
    }
    struct growth_result g;
    hist_growth(&h, -1, &g);
    assert_int_equal(g.nlineages, 2);
    assert_true(g.lineages[0].now.start == U);
    assert_int_equal(g.lineages[0].delta, (int64_t)(9 * 128 * K));
    assert_true(fabs(g.lineages[0].rate - 128.0 * K) < 1e-6);
    assert_true(g.lineages[1].now.start == D - 9 * 64 * K);
    assert_true(g.lineages[1].now.end == D + 64 * K);
    assert_int_equal(g.lineages[1].first, 0);
    assert_int_equal(g.lineages[1].delta, (int64_t)(9 * 64 * K));
    assert_int_equal(g.nsurvivors, 0); /* splits and merges are not births */
    assert_int_equal(g.cat[CAT_GUARD].committed.delta, 0);
    growth_result_release(&g);
    hist_close(&h);
}

/* A thousand-regions leak in small: 256 KiB regions born and never freed, grouped. */
static void test_survivors(void **state)
{
    (void)state;
    struct hist h;
    hist_open(&h);
    const uint64_t B = 0x7f0000000000ULL;
    for (uint64_t k = 0; k < 12; k++) {
        add(&h, 0x400000, 0x401000, "r-xp");
        for (uint64_t i = 1; i <= k; i++) {
            add(&h, B + i * M, B + i * M + 256 * K, "rw-p");
            if (i != 3 || k < 8) /* one 4 KiB region, born at 3, freed at 8 */
                add(&h, B + i * M + 512 * K, B + i * M + 516 * K, "rw-p");
        }
        hist_snap(&h);
    }
    struct growth_result g;
    hist_growth(&h, -1, &g);
    assert_int_equal(g.nsurvivors, 2);
    assert_int_equal(g.survivors[0].like.end - g.survivors[0].like.start, 256 * K);
    assert_int_equal(g.survivors[0].count, 11);
    assert_int_equal(g.survivors[0].bytes, 11 * 256 * K);
    assert_int_equal(g.survivors[0].first_born, 1);
    assert_int_equal(g.survivors[0].last_born, 11);
    assert_int_equal(g.survivors[1].count, 10);
    assert_int_equal(g.nlineages, 0); /* none of them grew */
    /* The one freed region gave back its 4 KiB: born at 3, last seen at 7. */
    assert_int_equal(g.nreleased, 1);
    assert_true(g.released[0].freed);
    assert_int_equal(g.released[0].peak, 4 * K);
    assert_int_equal(g.released[0].first, 3);
    assert_int_equal(g.released[0].last, 7);
    /* From a later snapshot, only what was born after it counts. */
    growth_result_release(&g);
    struct err e = {0};
    struct growth_opts o = {.category = CAT_ANON, .top = 10};
    assert_int_equal(
        growth_compute(h.st, store_writer_target(h.w), h.ids[6], h.ids[11], &o, &g, &e), 0);
    assert_int_equal(g.survivors[0].count, 5);
    assert_int_equal(g.nsnaps, 6);
    growth_result_release(&g);
    hist_close(&h);
}

/* Four 64 MiB no-access reservations and a 32 MiB leak, born together: the leak ranks first
 * among survivors and in diff's largest-first listing, because it commits memory. */
static void test_reservations_rank_after_leaks(void **state)
{
    (void)state;
    struct hist h;
    hist_open(&h);
    const uint64_t R = 0x7e0000000000ULL, L = 0x7f0000000000ULL;
    for (int k = 0; k < 3; k++) {
        add(&h, 0x400000, 0x401000, "r-xp");
        if (k > 0) {
            for (uint64_t i = 0; i < 4; i++)
                add(&h, R + i * 128 * M, R + i * 128 * M + 64 * M, "---p");
            add(&h, L, L + 32 * M, "rw-p");
        }
        hist_snap(&h);
    }
    struct growth_result g;
    hist_growth(&h, -1, &g);
    assert_int_equal(g.nsurvivors, 2);
    assert_int_equal(g.survivors[0].committed, 32 * M);
    assert_int_equal(g.survivors[0].bytes, 32 * M);
    assert_int_equal(g.survivors[1].committed, 0);
    assert_int_equal(g.survivors[1].bytes, 256 * M);
    growth_result_release(&g);
    store_writer_close(h.w);
    h.w = NULL;
    store_close(h.st);
    h.st = NULL;
    struct tu_run r;
    tu_vmsnap(&r, "-d", h.path, "diff", "first", "last", "--min-size", "1M", NULL);
    assert_int_equal(r.status, 1);
    const char *leak = strstr(r.out, "00007f0000000000-"),
               *res = strstr(r.out, "00007e0000000000-");
    if (!leak || !res || leak > res)
        fail_msg("the leak is not listed before the reservations:\n%s", r.out);
    tu_run_release(&r);
    region_list_release(&h.l);
    free(h.path);
}

/* The number that follows key in s, or fails. */
static double json_num(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    if (!p)
        fail_msg("no %s in %.300s", key, s);
    return strtod(p + strlen(key), NULL);
}

static char *run_ok(const char *db, const char *a1, const char *a2, const char *a3, const char *a4,
                    const char *a5, const char *a6)
{
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, a1, a2, a3, a4, a5, a6, NULL);
    if (r.status != 0)
        fail_msg("vmsnap %s %s: %d %s", a1, a2 ? a2 : "", r.status, r.err);
    char *out = strdup(r.out);
    tu_run_release(&r);
    return out;
}

/*
 * A live target leaks 1 MiB every 100 ms, starting 2 s after recording began, and stops
 * leaking a second before recording ends: onset and rate within 10%, survivors exact.
 */
static void test_live_leak(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    char *db = tu_tmppath("leak.db", NULL);
    /* The leaking thread first (its stack is in every snapshot), then the recorder. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t leak_start_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 2000;
    tu_child_ok(&c, "leak %llu 100 2000", M);
    struct tu_proc rec;
    tu_spawn_vmsnap(&rec, "-d", db, "record", "-p", pid, "-i", "100ms", "-t", "5s", "--detail",
                    "maps", NULL);
    usleep(4000 * 1000);
    uint64_t leaked = tu_child_ok(&c, "leak 0");
    struct tu_run r;
    tu_wait(&rec, &r);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);

    char *out = run_ok(db, "-j", "growth", NULL, NULL, NULL, NULL);
    const char *tot = strstr(out, "\"totals\":{\"committed\":");
    assert_non_null(tot);
    char want[64];
    snprintf(want, sizeof(want), "\"delta\":%llu", (unsigned long long)(leaked * M));
    if (!strstr(tot, want))
        fail_msg("committed delta is not %llu leaks of 1 MiB: %.300s", (unsigned long long)leaked,
                 tot);
    /* The onset: the last snapshot before the first leak, 2 s after it was asked for (within
     * 10%: a snapshot every 100 ms is taken up to 100 ms before the leak begins). */
    char sel[32];
    int64_t onset_snap = (int64_t)json_num(tot, "\"onset\":{\"snapshot\":");
    snprintf(sel, sizeof(sel), "%lld", (long long)onset_snap);
    char q[160];
    snprintf(q, sizeof(q),
             "SELECT CAST(round((julianday(taken_at) - 2440587.5) * 86400000) AS INTEGER) FROM "
             "snapshots WHERE id = %lld",
             (long long)onset_snap);
    char *first = run_ok(db, "query", q, NULL, NULL, NULL, NULL);
    double onset_ms = strtod(strchr(first, '\n') + 1, NULL) - (double)(leak_start_ms - 2000);
    print_message("leak: %llu regions; growth's onset %.0f ms after the leak was set to start in "
                  "2000\n",
                  (unsigned long long)leaked, onset_ms);
    assert_true(onset_ms >= 1800 && onset_ms <= 2200);
    char *ids = run_ok(db, "query",
                       "SELECT max(id) FROM snapshots WHERE mapped_bytes = (SELECT mapped_bytes "
                       "FROM snapshots WHERE seq = 1)",
                       NULL, NULL, NULL, NULL);
    assert_int_equal(strtoll(strchr(ids, '\n') + 1, NULL, 10), onset_snap);
    /* The rate while it leaked: from the onset to the first snapshot after the last leak. */
    char *end =
        run_ok(db, "query",
               "SELECT min(id) FROM snapshots WHERE mapped_bytes = (SELECT max(mapped_bytes) "
               "FROM snapshots)",
               NULL, NULL, NULL, NULL);
    char to[32];
    snprintf(to, sizeof(to), "%lld", strtoll(strchr(end, '\n') + 1, NULL, 10));
    char *ramp = run_ok(db, "-j", "growth", "--from", sel, "--to", to);
    double rate = json_num(strstr(ramp, "\"totals\""), "\"rate\":");
    print_message("leak: rate %.2f MiB/s while leaking (10 expected)\n", rate / M);
    assert_true(fabs(rate - 10.0 * M) <= 1.0 * M);
    /* Survivors: exactly the leaked regions, 1 MiB rw- anonymous each. */
    snprintf(want, sizeof(want), "\"size\":%llu,\"count\":%llu,", M, (unsigned long long)leaked);
    if (!strstr(strstr(out, "\"survivors\""), want))
        fail_msg("no survivor group of %llu x 1 MiB: %s", (unsigned long long)leaked,
                 strstr(out, "\"survivors\""));
    /* A CI gate on the rate. */
    struct tu_run gate;
    tu_vmsnap(&gate, "-d", db, "growth", "--fail-on-rate", "1M/s", NULL);
    assert_int_equal(gate.status, 1);
    tu_run_release(&gate);
    tu_vmsnap(&gate, "-d", db, "growth", "--fail-on-rate", "1G", NULL);
    assert_int_equal(gate.status, 0);
    tu_run_release(&gate);
    tu_vmsnap(&gate, "-d", db, "growth", "--category", "heap", "--fail-on-rate", "1K", NULL);
    assert_int_equal(gate.status, 0);
    tu_run_release(&gate);
    free(out);
    free(first);
    free(ids);
    free(end);
    free(ramp);
    tu_child_stop(&c);
    free(db);
}

static void snap(const char *db, pid_t pid)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", (int)pid);
    free(run_ok(db, "snap", "-p", p, "--detail", "maps", NULL));
}

/* Live regions growing downward and upward in place: one lineage each, the right delta. */
static void test_live_grow_down_and_up(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char *db = tu_tmppath("updown.db", NULL);
    const uint64_t D = 0x5a0000000ULL, U = 0x5c0000000ULL;
    tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)D, 64 * K);
    tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)U, 64 * K);
    snap(db, c.pid);
    for (uint64_t k = 1; k <= 5; k++) {
        tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)(D - k * 64 * K), 64 * K);
        tu_child_ok(&c, "mapat 0x%llx %llu rw-",
                    (unsigned long long)(U + 64 * K + (k - 1) * 128 * K), 128 * K);
        tu_child_ok(&c, "touch 0x%llx 4096", (unsigned long long)(D - k * 64 * K));
        snap(db, c.pid);
    }
    char *out = run_ok(db, "-j", "growth", NULL, NULL, NULL, NULL);
    char want[256];
    snprintf(want, sizeof(want),
             "{\"start\":\"0x%llx\",\"end\":\"0x%llx\",\"category\":\"anon\",\"perms\":\"rw-p\","
             "\"path\":null,\"first_snapshot\":1,\"size_first\":65536,\"size_last\":393216,"
             "\"delta\":327680,",
             (unsigned long long)(D - 5 * 64 * K), (unsigned long long)(D + 64 * K));
    if (!strstr(out, want))
        fail_msg("no downward lineage %s in %s", want, out);
    snprintf(want, sizeof(want),
             "{\"start\":\"0x%llx\",\"end\":\"0x%llx\",\"category\":\"anon\",\"perms\":\"rw-p\","
             "\"path\":null,\"first_snapshot\":1,\"size_first\":65536,\"size_last\":720896,"
             "\"delta\":655360,",
             (unsigned long long)U, (unsigned long long)(U + 64 * K + 5 * 128 * K));
    if (!strstr(out, want))
        fail_msg("no upward lineage %s in %s", want, out);
    assert_non_null(strstr(out, "\"survivors\":[]"));
    free(out);
    tu_child_stop(&c);
    free(db);
}

/*
 * Threads: each glibc arena reserves 64 MiB PROT_NONE. That is mapped growth but not committed
 * growth; the category_totals view agrees with growth.
 */
static void test_live_threads_reserve_not_commit(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char *db = tu_tmppath("threads.db", NULL);
    snap(db, c.pid);
    tu_child_ok(&c, "threads 4");
    snap(db, c.pid);
    char *out = run_ok(db, "-j", "growth", NULL, NULL, NULL, NULL);
    double committed = json_num(strstr(out, "\"totals\""), "\"delta\":");
    char *mapped = run_ok(db, "query",
                          "SELECT (SELECT mapped_bytes FROM snapshots WHERE seq = 2) - (SELECT "
                          "mapped_bytes FROM snapshots WHERE seq = 1)",
                          NULL, NULL, NULL, NULL);
    double mapped_delta = strtod(strchr(mapped, '\n') + 1, NULL);
    print_message("threads: mapped %+.1f MiB, committed %+.1f MiB\n", mapped_delta / M,
                  committed / M);
    assert_true(mapped_delta >= 4 * 32.0 * M); /* the arenas' reservations */
    assert_true(committed > 0 && committed < 8.0 * M);
    double guard = json_num(strstr(out, "{\"category\":\"guard\",\"committed\":"), "\"delta\":");
    assert_true(guard == 0);
    char *view = run_ok(db, "query",
                        "SELECT sum(CASE WHEN s.seq = 2 THEN committed ELSE -committed END) FROM "
                        "category_totals t JOIN snapshots s ON s.id = t.snapshot_id",
                        NULL, NULL, NULL, NULL);
    assert_true(strtod(strchr(view, '\n') + 1, NULL) == committed);
    free(out);
    free(mapped);
    free(view);
    tu_child_stop(&c);
    free(db);
}

/* The phases of the live target's committed bytes, as "kind[from-to]" by seq, held marked. */
static void phases_said(const char *json, char *out, size_t cap)
{
    const char *p = strstr(json, "\"totals\":{\"committed\":");
    assert_non_null(p);
    const char *end = strstr(p, "\"rss\":");
    size_t len = 0;
    out[0] = '\0';
    for (p = strstr(p, "{\"kind\":\""); p && (!end || p < end); p = strstr(p + 1, "{\"kind\":\"")) {
        const char *k = p + 9, *q = strchr(k, '"');
        long from = (long)json_num(p, "\"from\":{\"snapshot\":"), to = 0;
        const char *fs = strstr(p, "\"from\":{"), *ts = strstr(p, "\"to\":{");
        from = (long)json_num(fs, "\"seq\":");
        to = (long)json_num(ts, "\"seq\":");
        const char *close = strchr(ts + 6, '}');
        const char *next = strstr(close, "{\"kind\":\"");
        const char *held = strstr(close, "\"held\":true");
        len += (size_t)snprintf(out + len, cap - len, "%s%.*s[%ld-%ld]%s", len ? " " : "",
                                (int)(q - k), k, from, to,
                                held && (!next || held < next) ? "held" : "");
    }
}

/*
 * A launched program (`record -- CMD`) that starts up to 40 MiB, holds still, takes and gives
 * back a 30 MiB hump, leaks 20 MiB at ~20 MiB/s, pauses, gives it all back and exits: start-up,
 * the hump and the shutdown are named and not judged, the leak is the answer, and the gate
 * trips on it alone.
 */
static void test_live_launched_phases(void **state)
{
    (void)state;
    char *dir = NULL;
    char *db = tu_tmppath("launched.db", &dir);
    char script[4300], cmd[9000];
    snprintf(script, sizeof(script), "%s/script", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    const unsigned long long A = 0x500000000000ULL, B = 0x510000000000ULL, C = 0x520000000000ULL;
    for (int i = 0; i < 4; i++) /* start-up: 40 MiB in four steps */
        fprintf(f, "mapat %#llx %llu rw-\nsleep 150\n", A + (unsigned long long)i * 10 * M, 10 * M);
    fprintf(f, "sleep 1500\nmapat %#llx %llu rw-\nsleep 1000\nunmap %#llx %llu\nsleep 1500\n", B,
            30 * M, B, 30 * M);
    for (int i = 0; i < 10; i++) /* the leak: 2 MiB every 100 ms */
        fprintf(f, "mapat %#llx %llu rw-\nsleep 100\n", C + (unsigned long long)i * 2 * M, 2 * M);
    fprintf(f, "sleep 1500\nunmap %#llx %llu\nunmap %#llx %llu\nsleep 600\nexit 0\n", A, 40 * M, C,
            20 * M);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "exec %s < %s > /dev/null", VM_CHILD_BIN, script);
    struct tu_run rec;
    tu_vmsnap(&rec, "-d", db, "record", "-i", "100ms", "--", "/bin/sh", "-c", cmd, NULL);
    assert_int_equal(rec.status, 0);
    tu_run_release(&rec);
    /* The shell exec'd the child: the child's target is the newest, recorded from its exec;
     * both are noted as ended. */
    char *lives = run_ok(db, "query",
                         "SELECT group_concat(origin || ':' || (exited_at IS NOT NULL), ' ') AS o "
                         "FROM (SELECT * FROM targets ORDER BY id)",
                         NULL, NULL, NULL, NULL);
    assert_non_null(strstr(lives, "launched:1 exec:1"));
    free(lives);
    char *out = run_ok(db, "-j", "growth", NULL, NULL, NULL, NULL);
    char said[2048];
    phases_said(out, said, sizeof(said));
    print_message("launched: %s\n", said);
    if (!strstr(said, "startup[") || !strstr(said, "shutdown[") ||
        (strncmp(said, "startup", 7) != 0 && strncmp(said, "flat", 4) != 0))
        fail_msg("start-up and shutdown not named: %s", said);
    /* Two growths after start-up: the hump, given back, and the leak, held. */
    const char *hump = strstr(said, " growth[");
    assert_non_null(hump);
    assert_true(strncmp(strstr(hump, "]") + 1, "held", 4) != 0);
    const char *leak = strstr(hump + 1, " growth[");
    if (!leak || strncmp(strstr(leak, "]") + 1, "held", 4) != 0)
        fail_msg("the leak is not the held growth: %s", said);
    const char *tot = strstr(out, "\"totals\":{\"committed\":");
    double rate = json_num(tot, "\"rate\":");
    print_message("launched: held growth at %.1f MiB/s (~20 expected)\n", rate / M);
    assert_true(rate > 12.0 * M && rate < 30.0 * M);
    assert_non_null(strstr(tot, "\"growing\":false"));
    assert_true(json_num(strstr(tot, "\"peak\":"), "\"bytes\":") >= 70.0 * M);
    /* The gate judges the leak: over its rate it fails, under it passes. */
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "growth", "--fail-on-rate", "5M", NULL);
    assert_int_equal(r.status, 1);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "growth", "--fail-on-rate", "100M", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "held since"));
    tu_run_release(&r);
    /* Up to the leak's start, nothing is held: start-up and the hump never trip the gate. */
    char to[64];
    long leak_from = strtol(leak + 8, NULL, 10);
    snprintf(to, sizeof(to), "%ld", leak_from);
    char sel[256];
    snprintf(sel, sizeof(sel),
             "SELECT id FROM snapshots WHERE seq = %s AND target_id = "
             "(SELECT max(id) FROM targets)",
             to);
    char *ids = run_ok(db, "query", sel, NULL, NULL, NULL, NULL);
    char *idline = strchr(ids, '\n');
    assert_non_null(idline);
    snprintf(to, sizeof(to), "%lld", strtoll(idline + 1, NULL, 10));
    tu_vmsnap(&r, "-d", db, "growth", "--to", to, "--fail-on-rate", "1K", NULL);
    if (r.status != 0)
        fail_msg("the gate tripped before the leak (to %s): %s", to, r.out);
    assert_non_null(strstr(r.out, "nothing held"));
    tu_run_release(&r);
    free(ids);
    free(out);
    free(db);
    free(dir);
}

/* A target that holds still: no rate, no lineage, and the gate passes. */
static void test_live_steady(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    char *db = tu_tmppath("steady.db", NULL);
    struct tu_run rec;
    tu_vmsnap(&rec, "-d", db, "record", "-p", pid, "-i", "50ms", "-n", "20", NULL);
    assert_int_equal(rec.status, 0);
    tu_run_release(&rec);
    char *out = run_ok(db, "-j", "growth", NULL, NULL, NULL, NULL);
    const char *tot = strstr(out, "\"totals\":{\"committed\":");
    assert_non_null(tot);
    assert_true(json_num(tot, "\"delta\":") == 0);
    assert_true(json_num(tot, "\"rate\":") == 0);
    assert_non_null(strstr(out, "\"lineages\":[]"));
    assert_non_null(strstr(out, "\"survivors\":[]"));
    assert_non_null(strstr(out, "\"snapshots\":20"));
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "growth", "--fail-on-rate", "1", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "none grew"));
    tu_run_release(&r);
    /* Trouble: a bad range and a bad rate. */
    tu_vmsnap(&r, "-d", db, "growth", "--from", "last", "--to", "first", NULL);
    tu_assert_trouble(&r, "comes after --to");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "growth", "--fail-on-rate", "fast", NULL);
    tu_assert_trouble(&r, "invalid rate 'fast'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "growth", "--target", "9", NULL);
    tu_assert_trouble(&r, "no target with id 9");
    tu_run_release(&r);
    free(out);
    tu_child_stop(&c);
    free(db);
}

/* The n-th row of a growth JSON's "tree" (0 first), up to the next row; NULL past the last. */
static const char *tree_row(const char *json, int n, char *row, size_t cap)
{
    const char *p = strstr(json, "\"tree\":[");
    if (!p)
        fail_msg("no tree in %.200s", json);
    for (int i = 0; i <= n; i++) {
        p = strstr(p + 1, "{\"target\":{");
        if (!p)
            return NULL;
    }
    const char *end = strstr(p + 1, "{\"target\":{");
    size_t len = end ? (size_t)(end - p) : strlen(p);
    snprintf(row, cap, "%.*s", (int)(len < cap ? len : cap - 1), p);
    return row;
}

/*
 * A recorded tree of workers that differ (tests/helpers/forker.c "workers"): one leaks 24 MiB,
 * one humps 40 MiB and gives it back 1.2 s before it exits, one idles, and so does the
 * parent. growth answers for the tree: the leaker first, then the hump by its peak, and the
 * detail is the leaker's; the gate trips on the leaker's rate; --target alone is one process and
 * --tree forces the tree from it.
 */
static void test_live_tree_of_workers(void **state)
{
    (void)state;
    char *dir = NULL, *db = tu_tmppath("tree.db", &dir);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-i", "50ms", "--", FORKER_BIN, "workers", NULL);
    if (r.status != 0)
        fail_msg("record: %d %s", r.status, r.err);
    tu_run_release(&r);
    char *out = run_ok(db, "-j", "growth", NULL, NULL, NULL, NULL);
    char rows[4][4096];
    for (int i = 0; i < 4; i++)
        if (!tree_row(out, i, rows[i], sizeof(rows[i])))
            fail_msg("tree row %d missing: %.400s", i, out);
    char extra[64];
    if (tree_row(out, 4, extra, sizeof(extra)))
        fail_msg("more than 4 rows: %.400s", out);
    /* The leaker: 24 MiB held at about 20 MiB/s. */
    const char *c0 = strstr(rows[0], "\"committed\":");
    assert_true(json_num(c0, "\"delta\":") == 24.0 * M);
    assert_non_null(strstr(c0, "\"onset\":{\"snapshot\":"));
    double rate = json_num(c0, "\"rate\":");
    if (rate < 12.0 * M || rate > 30.0 * M)
        fail_msg("the leaker's rate is %.0f B/s, not about 20 MiB/s", rate);
    /* The hump: nothing held, peak 40 MiB above its start. */
    const char *c1 = strstr(rows[1], "\"committed\":");
    assert_non_null(strstr(c1, "\"onset\":null"));
    double peak = json_num(c1, "\"peak\":{\"bytes\":") - json_num(c1, "\"start\":");
    if (peak < 40.0 * M || peak > 41.0 * M)
        fail_msg("the hump's peak is %.0f bytes above its start", peak);
    for (int i = 2; i < 4; i++) {
        const char *c = strstr(rows[i], "\"committed\":");
        assert_true(json_num(c, "\"delta\":") == 0);
        assert_non_null(strstr(c, "\"onset\":null"));
        assert_non_null(strstr(rows[i], "\"alive\":false"));
    }
    /* The detail is the leaker's. */
    long leaker = (long)json_num(rows[0], "{\"target\":{\"id\":");
    char want[64];
    snprintf(want, sizeof(want), "{\"target\":{\"id\":%ld,", leaker);
    if (strncmp(out, want, strlen(want)) != 0)
        fail_msg("the detail is not target %ld's: %.100s", leaker, out);
    free(out);
    struct tu_run t;
    tu_vmsnap(&t, "-d", db, "growth", NULL);
    snprintf(want, sizeof(want), "the detail below is target %ld's", leaker);
    assert_non_null(strstr(t.out, "process tree of target "));
    if (!strstr(t.out, want))
        fail_msg("the table does not say '%s': %.600s", want, t.out);
    tu_run_release(&t);
    /* The gate judges the tree: the leaker's 20 MiB/s, not the hump. */
    tu_vmsnap(&t, "-d", db, "growth", "--fail-on-rate", "8M", NULL);
    assert_int_equal(t.status, 1);
    tu_run_release(&t);
    tu_vmsnap(&t, "-d", db, "growth", "--fail-on-rate", "100M", NULL);
    assert_int_equal(t.status, 0);
    tu_run_release(&t);
    /* --target alone: that process; with --tree, the tree from it. */
    char *root_json = run_ok(db, "-j", "growth", "--target", "1", NULL, NULL);
    assert_non_null(strstr(root_json, "\"tree\":[]"));
    assert_int_equal(strncmp(root_json, "{\"target\":{\"id\":1,", 18), 0);
    free(root_json);
    char *tree_json = run_ok(db, "-j", "growth", "--target", "1", "--tree", NULL);
    assert_non_null(tree_row(tree_json, 3, extra, sizeof(extra)));
    free(tree_json);
    /* The report is of the tree too: its rows and the leaker in detail. */
    char html[4200];
    snprintf(html, sizeof(html), "%s/r.html", dir);
    tu_vmsnap(&t, "-d", db, "report", "-o", html, NULL);
    assert_int_equal(t.status, 0);
    tu_run_release(&t);
    size_t len;
    char *page = tu_read_file(html, &len);
    snprintf(want, sizeof(want), "{\"target\":{\"id\":%ld,", leaker);
    assert_non_null(strstr(page, want));
    assert_non_null(strstr(page, "\"tree\":[{\"target\":"));
    free(page);
    free(db);
    free(dir);
}


/*
 * growth and report stream the history: on a recording of 2,000 snapshots with 200 regions
 * born and 200 freed at each (400,000 region rows; a reader that held them all peaked at 170 MB
 * RSS), both run under a 40 MB address-space cap and give the answer the rows hold.
 */
static void test_streams_under_a_memory_cap(void **state)
{
    (void)state;
#ifdef UNDER_ASAN
    skip(); /* AddressSanitizer's shadow memory cannot live under ulimit -v */
#endif
    enum { SNAPS = 2000, CHURN = 200, STILL = 100 };
    struct hist h;
    struct err e = {0};
    hist_open(&h);
    struct capture_info info = {.detail = DETAIL_MAPS, .method = "maps"};
    assert_int_equal(store_begin(h.st, &e), 0);
    for (int t = 0; t < SNAPS; t++) {
        for (uint64_t i = 0; i < STILL; i++)
            add(&h, 0x10000000 + i * 0x10000, 0x10000000 + i * 0x10000 + 4 * K, "rw-p");
        /* Each tick's short-lived regions lie apart from the last tick's: all new. */
        uint64_t bank = 0x100000000ULL + (uint64_t)(t % 2) * 0x10000000ULL;
        for (uint64_t i = 0; i < CHURN; i++)
            add(&h, bank + i * 0x10000, bank + i * 0x10000 + 8 * K, "rw-p");
        /* And one region grows by a page a tick: the leak the answer must find. */
        add(&h, 0x300000000ULL, 0x300000000ULL + (uint64_t)(t + 1) * 4 * K, "rw-p");
        info.taken_at_ms = 1800000000000LL + (int64_t)t * 1000;
        int64_t id;
        if (store_writer_write(h.w, &h.l, &info, NULL, 0, &id, &e) < 0)
            fail_msg("write: %s", e.msg);
        region_list_clear(&h.l);
    }
    assert_int_equal(store_commit(h.st, &e), 0);
    char *db = strdup(h.path);
    hist_close(&h);
    char *dir = NULL, *html = tu_tmppath("r.html", &dir);
    char script[8800];
    snprintf(script, sizeof(script),
             "ulimit -v 40000 && '%s' -d '%s' -j growth && '%s' -d '%s' report -o '%s'", VMSNAP_BIN,
             db, VMSNAP_BIN, db, html);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct tu_run r;
    tu_run(&r, argv);
    if (r.status != 0)
        fail_msg("under the cap: status %d: %s", r.status, r.err);
    /* The one region that grew, a page a second to the end. */
    const char *tot = strstr(r.out, "\"totals\":{\"committed\":");
    assert_non_null(tot);
    assert_true(json_num(tot, "\"delta\":") == (double)((SNAPS - 1) * 4 * K));
    assert_true(fabs(json_num(tot, "\"rate\":") - 4096.0) < 1);
    assert_non_null(strstr(tot, "\"growing\":true"));
    assert_non_null(strstr(r.out, "\"snapshots\":2000"));
    assert_non_null(strstr(r.out, "\"start\":\"0x300000000\""));
    tu_run_release(&r);
    unlink(html);
    char side[4200];
    for (const char *sfx = ""; sfx; sfx = !*sfx                      ? "-wal"
                                          : strcmp(sfx, "-wal") == 0 ? "-shm"
                                                                     : NULL) {
        snprintf(side, sizeof(side), "%s%s", db, sfx);
        unlink(side);
    }
    free(html);
    free(dir);
    free(db);
}

int main(int argc, char **argv)
{
    /* One test by name: test_growth NAME (a glob). */
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_and_onset),
        cmocka_unit_test(test_phases_of_a_server),
        cmocka_unit_test(test_phases_leak_then_shutdown),
        cmocka_unit_test(test_phases_noise),
        cmocka_unit_test(test_phases_startup_settles),
        cmocka_unit_test(test_phases_partly_given_back),
        cmocka_unit_test(test_phases_step_and_ramp),
        cmocka_unit_test(test_lineages_follow_either_end),
        cmocka_unit_test(test_survivors),
        cmocka_unit_test(test_reservations_rank_after_leaks),
        cmocka_unit_test(test_streams_under_a_memory_cap),
        cmocka_unit_test(test_live_leak),
        cmocka_unit_test(test_live_grow_down_and_up),
        cmocka_unit_test(test_live_threads_reserve_not_commit),
        cmocka_unit_test(test_live_steady),
        cmocka_unit_test(test_live_launched_phases),
        cmocka_unit_test(test_live_tree_of_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
