/*
 * Phases of a series: a value over a recording's snapshots (committed or rss bytes of a process
 * or of a category) cut into growth, flat and release by a piecewise-linear segmentation that
 * noise does not fragment, and the answer a leak hunter wants from it: the last growth that is
 * still held, its own onset and rate, and the peak. Never prints; knows nothing of the store.
 */
#ifndef VMSNAP_PHASES_H
#define VMSNAP_PHASES_H

#include <stddef.h>
#include <stdint.h>

enum phase_kind {
    PHASE_FLAT,
    PHASE_GROWTH,
    PHASE_RELEASE,
    PHASE_STARTUP,  /* the first growth of a target recorded from its start, when more follows */
    PHASE_SHUTDOWN, /* a release that ends at the last snapshot of a target that exited */
};

const char *phase_kind_name(int kind);

struct phase {
    int kind;
    size_t from, to; /* snapshot indexes, inclusive; one phase's `to` is the next one's `from` */
    int64_t delta;   /* value at `to` less value at `from` */
    double rate, r2; /* least-squares over [from, to], bytes per second */
    int held;        /* growth: what it gained is still there at the end (before shutdown) */
};

/* What the series says: its phases, the last held growth, the peak and the overall slope. */
struct series_phases {
    struct phase *v;
    size_t n;
    size_t held;  /* index into v of the last held growth that is not startup; n when none */
    size_t peak;  /* snapshot index of the highest value (the first, when it repeats) */
    int64_t band; /* the noise band: moves within it are not phases */
    double slope; /* least-squares over every snapshot, bytes per second */
};

/* The series' context: how it was recorded. */
struct series_context {
    int from_start; /* the range begins where the target's recording began, at its start */
    int exited;     /* the range ends at the last snapshot of a target that exited */
};

/*
 * Finds the phases of v[0], v[stride], ... (n values, n >= 1) taken at t[0..n) seconds.
 * out is released with series_phases_release.
 */
void series_phases_find(const int64_t *v, size_t stride, size_t n, const double *t,
                        const struct series_context *c, struct series_phases *out);
void series_phases_release(struct series_phases *p);

#endif
