/*
 * The diff engine: two sorted, disjoint region lists in (a snapshot and a later one, or just
 * the regions that differ between them), classified changes out. It sweeps both lists by
 * address, so a region split by mprotect, merged back, or extended in place is understood as
 * what happened, and each change is reported once, at its true range.
 */
#ifndef VMSNAP_DIFF_H
#define VMSNAP_DIFF_H

#include <stddef.h>
#include <stdint.h>

#include "model/region.h"
#include "store/store.h"
#include "util/err.h"

enum diff_kind {
    DIFF_NEW = 0,     /* mapped in B, not in A */
    DIFF_FREED,       /* mapped in A, not in B */
    DIFF_GROWN,       /* a region extended in place (same start or same end, same backing) */
    DIFF_SHRUNK,      /* a region cut back in place */
    DIFF_REPROTECTED, /* same backing, other protection: exactly the sub-range that changed */
    DIFF_REMAPPED,    /* same range, other backing file or offset */
    DIFF_RESIDENT,    /* same region, other rss (both snapshots with per-region figures) */
    DIFF_COMMITTED,   /* Windows: reserve -> commit */
    DIFF_DECOMMITTED, /* Windows: commit -> reserve */
    DIFF_KIND_COUNT
};

struct diff_change {
    int kind;                    /* enum diff_kind */
    uint64_t start;              /* the changed range; for grown/shrunk the region's extent in B */
    uint64_t end;                /* exclusive */
    const struct region *now;    /* the region in B at that range (NULL for freed) */
    const struct region *before; /* the region in A (NULL for new) */
    int64_t delta; /* bytes: size change (grown, shrunk), rss change (resident), else 0 */
};

struct diff_result {
    struct diff_change *v;
    size_t n, cap;
};

/*
 * Compares a (before) with b (after); both sorted by start and disjoint. The changes point
 * into a and b, which must outlive out. Changes come in address order.
 */
void diff_regions(const struct region_list *a, const struct region_list *b,
                  struct diff_result *out);
/* What a grown change added: the larger of the parts of its region in B beyond the one in A. */
void diff_grown_part(const struct diff_change *c, uint64_t *start, uint64_t *end);
void diff_result_init(struct diff_result *r);
void diff_result_release(struct diff_result *r);

/*
 * Checks d = diff_regions(a, b) against the engine's invariants: changes in address order,
 * none overlapping; a with every change applied is exactly b (each changed byte accounted for
 * once, with b's attributes); the mapped deltas add up to b's mapped bytes less a's. 0, or -1
 * with what broke in why.
 */
int diff_check(const struct region_list *a, const struct region_list *b,
               const struct diff_result *d, char *why, size_t n);

/* What changed in one category, or in all: bytes, B less A. */
struct diff_delta {
    int64_t mapped, committed, rss;
    int touched; /* the category has regions on either side */
};

struct diff_summary {
    struct diff_delta total;          /* every category, or only the one asked for */
    struct diff_delta cat[CAT_COUNT]; /* by category */
    int have_rss;                     /* per-region rss on both sides: rss deltas are known */
};

/*
 * Sums a and b by category; regions present in both cancel out, so a and b may be two whole
 * snapshots or only the regions that differ between them (store_read_delta). With category
 * >= 0, total is that category's. Committed bytes are region_committed's.
 */
void diff_summarize(const struct region_list *a, const struct region_list *b, int category,
                    struct diff_summary *out);

/*
 * Two snapshots of a store and their diff, as `vmsnap diff` and the report show it
 * (diff_pair.c). Snapshots of one target compare only the regions that opened or closed
 * between them, unless both have per-region figures, which change without either.
 */
struct store;
struct diff_pair {
    struct store_snapshot snap[2]; /* from, to */
    struct store_target target[2];
    struct region_list regions[2]; /* what was compared */
    struct diff_result d;
    struct diff_summary sum; /* of category, when given */
    int64_t rss_delta;       /* bytes: of the process (snapshot totals), or of category */
    int have_rss;            /* rss_delta is known */
    int have_cat_rss;        /* per-category rss deltas are known */
};
/* Loads snapshots a and b (ids) and diffs them; sum and rss_delta are of category when >= 0.
 * Release p even on failure. */
int diff_pair_load(struct diff_pair *p, struct store *st, int64_t a, int64_t b, int category,
                   struct err *e);
void diff_pair_release(struct diff_pair *p);

const char *diff_kind_name(int kind);
/* How many bytes a change is about: the size change of grown and shrunk, the rss change of
 * resident, else the changed range's size. */
uint64_t diff_change_bytes(const struct diff_change *c);
/* Whether a change adds mapped bytes (positive), removes them (negative), or neither (0). */
int64_t diff_mapped_delta(const struct diff_change *c);

/* diff --by: two snapshots compared by backing (diff_by.c). */
enum diff_by_key { DIFF_BY_NONE, DIFF_BY_PATH, DIFF_BY_CATEGORY };
struct diff_by_side {
    int64_t regions;
    uint64_t mapped, committed, rss; /* bytes; rss from per-region figures */
};
struct diff_by_row {
    struct region like; /* its key: path, or category (path NULL); pointing into the lists */
    struct diff_by_side side[2];
};
#define diff_by_delta(row, field) ((int64_t)((row)->side[1].field - (row)->side[0].field))
struct diff_by_result {
    struct diff_by_row *v; /* largest committed change first */
    size_t n;
};
/* Groups a's and b's regions (of category, when >= 0) by path or category; the rows point into
 * a and b, which must outlive them. */
void diff_by(const struct region_list *a, const struct region_list *b, int by, int category,
             struct diff_by_result *out);
void diff_by_release(struct diff_by_result *r);
/* "path" or "category": its DIFF_BY_ value, else -1. */
int diff_by_parse(const char *s);
/* Loads snapshots a and b (ids) and every region of each, for diff_by; no diff is made.
 * Release p even on failure. */
int diff_pair_load_whole(struct diff_pair *p, struct store *st, int64_t a, int64_t b,
                         struct err *e);

#endif
