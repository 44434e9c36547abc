/*
 * Growth over a recording: what keeps growing, how fast, since when. Walks a target's history
 * in the store in snapshot order (the regions alive at the first snapshot, then the changes
 * after it), holding only what is alive at each step and per-snapshot totals, and returns
 * totals and per-category series with their least-squares rates and onsets, the regions followed
 * across snapshots (lineages) that grew most, and the regions born during the range and never
 * freed (survivors). Never prints. Its cost grows with the changes in the recording, not with
 * snapshots x regions, and its memory with the address space and the snapshot count, not
 * with the changes.
 */
#ifndef VMSNAP_GROWTH_H
#define VMSNAP_GROWTH_H

#include <stddef.h>
#include <stdint.h>

#include "analyze/phases.h"
#include "analyze/sites.h"
#include "store/store.h"

/* A value over the range's snapshots, and its phases (analyze/phases.h). */
struct growth_stat {
    int64_t start, end, delta; /* bytes */
    /* The last held growth (not start-up): its own least-squares rate (bytes per second) and
     * fit, from its onset to where it stopped; 0 and onset GROWTH_NONE when nothing is held. */
    double rate, r2;
    size_t onset;   /* snapshot index where it began */
    size_t stopped; /* snapshot index where it stopped */
    int growing;    /* it goes on to the end of the range */
    size_t peak;    /* snapshot index of the highest value */
    int64_t peak_bytes;
    double slope; /* the least-squares slope over every snapshot (bytes per second) */
    int64_t band; /* the noise band the phases were cut with (bytes) */
    struct phase *phases;
    size_t nphases;
};

#define GROWTH_NONE SIZE_MAX

struct growth_category {
    int present; /* the category has regions at some snapshot of the range */
    struct growth_stat committed, rss;
};

/* A region followed from snapshot to snapshot. */
struct growth_lineage {
    struct region now;              /* the region at the last snapshot (names in the result) */
    size_t first;                   /* snapshot index where the lineage begins */
    uint64_t size_first, size_last; /* bytes */
    int64_t delta;                  /* bytes */
    double rate;                    /* bytes per second */
    double grew_share;              /* share of its steps in which it grew */
};

/* A region followed across snapshots that gave memory back: freed, or shrunk from its peak. */
struct growth_release {
    struct region now;           /* the region when last seen (names in the result) */
    size_t first, peak_at, last; /* snapshot indexes: where it began, peaked, was last seen */
    uint64_t size_first, peak;   /* bytes */
    uint64_t size_last;          /* bytes at the end; 0 when freed */
    int freed;                   /* it ended before the range did */
};

/* Regions born during the range and alive at its end, grouped by what they look like. */
struct growth_survivor {
    struct region like; /* one of them: category, perms, path and size (names in the result) */
    int64_t count;
    uint64_t bytes, committed;    /* mapped and committed (no-access holds nothing) */
    size_t first_born, last_born; /* snapshot indexes */
};

struct growth_opts {
    int category;              /* lineages, survivors and categories of this one only; -1: all */
    size_t top;                /* at most this many lineages and survivor groups */
    struct series_context ctx; /* how the range was recorded: start-up and shutdown */
};

/* A snapshot of the range, as the printers name it. */
struct growth_snap {
    int64_t id, seq;
    int64_t taken_ms; /* Unix milliseconds */
    char taken_at[32];
    const char *label; /* NULL when none; held in the result's names */
    int64_t mark;      /* as store_snapshot's */
};

/* What growth found: self-contained (it needs nothing of the history it was computed from). */
struct growth_result {
    size_t nsnaps;
    struct growth_snap *snaps; /* the range's snapshots; onsets and births index them */
    double duration_s;
    struct growth_stat committed, rss, pss; /* the whole process */
    int have_rss;                           /* every snapshot has the process's rss (and pss) */
    struct growth_category cat[CAT_COUNT];
    int have_cat_rss; /* every snapshot has per-region rss */
    /* Series, one value per snapshot, in bytes: committed and rss of the process, committed by
     * category (cat_committed[k * CAT_COUNT + c]), and rss by category when have_cat_rss
     * (cat_rss, laid out alike; NULL otherwise). */
    int64_t *committed_series, *rss_series, *pss_series, *cat_committed, *cat_rss;
    struct growth_lineage *lineages;
    size_t nlineages;
    struct growth_release *released; /* largest given back first */
    size_t nreleased;
    struct growth_survivor *survivors;
    size_t nsurvivors;
    /* Recorded with --stacks (have_sites): the call sites that hold what the range made. */
    struct growth_site *sites;
    size_t nsites;
    int have_sites;
    struct region_list names; /* owns the lineages' and survivors' paths, owners and figures */
};

/* How many lineages and survivor groups growth and report show unless told. */
#define GROWTH_TOP_DEFAULT 10

/* Computes growth over the target's snapshots from..to (ids): 0, or an error (ERR_NOTFOUND when
 * the range has no snapshot). out is released by growth_result_release either way. */
int growth_compute(struct store *st, int64_t target_id, int64_t from, int64_t to,
                   const struct growth_opts *o, struct growth_result *out, struct err *e);
void growth_result_release(struct growth_result *r);

/* A series of one process of a tree, as its row says it. */
struct growth_brief {
    int64_t start, end, delta, peak_bytes;
    double rate;                    /* of its last held growth; 0 when nothing is held */
    int held;                       /* something is held: onset is set */
    int growing;                    /* that growth goes on to the end */
    struct growth_snap peak, onset; /* label NULL */
};

/* One process of a recorded tree, over its snapshots in the window asked for. */
struct growth_proc {
    struct store_target t;
    int64_t from, to; /* its first and last snapshot in the window */
    int alive;        /* not known to have exited */
    size_t nsnaps;
    int have_rss;
    struct growth_brief committed, rss, pss;
};

/*
 * Growth of each of the n targets (a tree: store_tree), over their snapshots taken within the
 * times of snapshots win_from..win_to, or over each one's whole recording when win_from is 0.
 * A target with no snapshot in the window is left out. *out (ranked: held growth of committed
 * first, fastest first; then by peak above start) is freed by growth_tree_release.
 */
int growth_tree(struct store *st, const int64_t *ids, size_t n, int64_t win_from, int64_t win_to,
                struct growth_proc **out, size_t *nout, struct err *e);
void growth_tree_release(struct growth_proc *v, size_t n);

/* Whether growth and report answer for the process tree (DESIGN "The tree is the unit"). */
enum growth_tree_mode {
    GROWTH_TREE_AUTO, /* no --target: the tree of the range's process, when it has one */
    GROWTH_TREE_OFF,  /* --target alone: that process only */
    GROWTH_TREE_ON,   /* --tree: the tree from --target (or from the range's root) */
};

/* One range's growth as growth and report load it: the target, what was found, and the tree. */
struct growth_load {
    int64_t target, from, to; /* the range resolved: its target and first and last snapshots */
    struct store_target t;
    struct growth_result g;
    /* The processes of the tree, ranked (ntree 0 when not a tree), and its root. */
    struct growth_proc *tree;
    size_t ntree;
    int64_t root;
    int chosen; /* target is the tree's top row, chosen for it (no range was asked for) */
};
/* Resolves the range (store_resolve_range: target_id 0 and NULL selectors for the defaults),
 * the tree as mode says, and computes growth over the range -- the tree's top process's whole
 * recording when no range was asked for: 0, or an error. out is released by
 * growth_load_release either way. */
int growth_load(struct store *st, int64_t target_id, const char *from, const char *to,
                const struct growth_opts *o, int mode, struct growth_load *out, struct err *e);
void growth_load_release(struct growth_load *l);

#endif
