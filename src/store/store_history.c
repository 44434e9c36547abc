/*
 * Reading a recording's history for analysis, in snapshot order: the snapshots of a range, the
 * regions alive at its first snapshot, then step by step the regions that ended and began.
 * Regions are stored as intervals and a target's region ids grow with their births, so births
 * come from two rowid scans (ended and open regions) that advance together, and each region's
 * end is known when it is read: a heap on it yields the ends. Only the regions alive at the
 * current step are held: memory follows the address space, not the recording's length, and the
 * cost grows with the changes read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/xalloc.h"

/* The region columns as store_row_to_region wants them, then the span's first and last
 * snapshots. */
#define WALK_COLS(table, last)                                                                     \
    "SELECT " STORE_REGION_COLUMNS_P("n.path") ", " STORE_REGION_NO_FIGURES                        \
                                               ", p.first_snap, " last " FROM " table              \
                                               " p LEFT JOIN paths n ON n.id = p.path_id "
#define COL_FIRST RCOL_COUNT
#define COL_LAST  (RCOL_COUNT + 1)

struct slot {
    struct region r;
    void *hold;    /* what r points to (region_hold) */
    uint32_t last; /* the index of the last snapshot it is alive at */
};

/* Regions born after the range's first snapshot, from one table, in id order. */
struct births {
    struct store_stmt q;
    int row;    /* q is on a row not consumed yet, born at snapshot index k */
    uint32_t k; /* and no row of it is born before k */
};

struct by_start;

struct store_walk {
    struct store *st;
    struct store_hsnap *snaps;
    size_t nsnaps;
    struct slot *slot;
    size_t nslots, slot_cap;
    uint32_t *spare; /* slots free for reuse */
    size_t nspare, spare_cap;
    uint32_t *heap; /* the slots that end before the range does, soonest end on top */
    size_t nheap, heap_cap;
    uint32_t *ended, *began;
    size_t nended, ended_cap, nbegan, began_cap;
    struct by_start *keys; /* for sorting a step's slots */
    size_t keys_cap;
    struct region_list scratch; /* rows as read, before each is held alone */
    struct births births[2];    /* ended regions, open regions */
    int started, reading;
};

static int read_snaps(struct store_walk *w, int64_t target, int64_t from, int64_t to, struct err *e)
{
    static const char *sql =
        "SELECT id, seq, taken_at, CAST(round((julianday(taken_at) - 2440587.5) * 86400000) AS "
        "INTEGER), label, rss_bytes, detail, mark, pss_bytes FROM snapshots WHERE target_id = "
        ":target "
        "AND id "
        "BETWEEN :from AND :to ORDER BY id";
    struct store_stmt q;
    size_t cap = 0;
    int rc = store_stmt_prepare(w->st, sql, "cannot read the recording", &q, e);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = q.s;
    store_bind_i64(&q, ":target", target);
    store_bind_i64(&q, ":from", from);
    store_bind_i64(&q, ":to", to);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        w->snaps = xgrow(w->snaps, &cap, w->nsnaps + 1, sizeof(*w->snaps));
        struct store_hsnap *x = &w->snaps[w->nsnaps++];
        memset(x, 0, sizeof(*x));
        x->id = sqlite3_column_int64(s, 0);
        x->seq = sqlite3_column_int64(s, 1);
        const unsigned char *at = sqlite3_column_text(s, 2);
        snprintf(x->taken_at, sizeof(x->taken_at), "%s", at ? (const char *)at : "");
        x->taken_ms = sqlite3_column_int64(s, 3);
        x->label = store_col_text(s, 4);
        x->have_rss = sqlite3_column_type(s, 5) != SQLITE_NULL;
        x->rss_bytes = (uint64_t)sqlite3_column_int64(s, 5);
        x->pss_bytes = (uint64_t)sqlite3_column_int64(s, 8);
        const unsigned char *detail = sqlite3_column_text(s, 6);
        x->smaps = detail && strcmp((const char *)detail, "smaps") == 0;
        x->mark =
            sqlite3_column_type(s, 7) == SQLITE_NULL ? STORE_NO_MARK : sqlite3_column_int64(s, 7);
    }
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}

/* The index of the first snapshot whose id is >= id (nsnaps when none). */
static uint32_t snap_index(const struct store_walk *w, int64_t id)
{
    size_t lo = 0, hi = w->nsnaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->snaps[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

/* The snapshot index of the last snapshot a region that ended at snapshot id last is alive at,
 * plus one. */
static uint32_t end_index(const struct store_walk *w, int64_t last)
{
    return last >= w->snaps[w->nsnaps - 1].id ? (uint32_t)w->nsnaps : snap_index(w, last + 1);
}

static int heap_before(const struct store_walk *w, uint32_t a, uint32_t b)
{
    return w->slot[a].last < w->slot[b].last;
}

static void heap_push(struct store_walk *w, uint32_t s)
{
    w->heap = xgrow(w->heap, &w->heap_cap, w->nheap + 1, sizeof(*w->heap));
    size_t i = w->nheap++;
    while (i > 0 && heap_before(w, s, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = s;
}

static uint32_t heap_pop(struct store_walk *w)
{
    uint32_t top = w->heap[0], s = w->heap[--w->nheap];
    size_t i = 0, n = w->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_before(w, w->heap[c + 1], w->heap[c]))
            c++;
        if (!heap_before(w, w->heap[c], s))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = s;
    return top;
}

/* Takes the region of the row q is on, alive from snapshot index k: held in a slot of its own,
 * listed in began and, when it ends before the range does, in the heap. */
static void take_row(struct store_walk *w, sqlite3_stmt *q, uint32_t k)
{
    uint32_t end = end_index(w, sqlite3_column_int64(q, COL_LAST));
    if (end <= k)
        return; /* alive at none of the range's snapshots: only a crafted file says so */
    uint32_t s;
    if (w->nspare) {
        s = w->spare[--w->nspare];
    } else {
        w->slot = xgrow(w->slot, &w->slot_cap, w->nslots + 1, sizeof(*w->slot));
        s = (uint32_t)w->nslots++;
    }
    struct slot *x = &w->slot[s];
    region_list_clear(&w->scratch);
    struct region *r = region_list_push(&w->scratch);
    store_row_to_region(q, 0, &w->scratch, r);
    x->r = *r;
    x->hold = region_hold(&x->r);
    x->last = end - 1;
    w->began = xgrow(w->began, &w->began_cap, w->nbegan + 1, sizeof(*w->began));
    w->began[w->nbegan++] = s;
    if (end < w->nsnaps)
        heap_push(w, s);
}

/* The regions alive at the first snapshot: ended ones by their length classes, open ones by
 * the target's rowid range. */
static int read_first(struct store_walk *w, int64_t target, struct err *e)
{
#define ENDED_AT_FROM                                                                              \
    "WHERE p.target_id = :target AND p.first_snap <= :from AND " STORE_ENDED_IN(":from",           \
                                                                                ":from + k.w - 1")
#define OPEN_AT_FROM "WHERE p.id BETWEEN :lo AND :hi AND p.first_snap <= :from"
    static const char *sql = WALK_COLS(STORE_SPANS_BY_CLASS, "p.last_snap") ENDED_AT_FROM
        "UNION ALL " WALK_COLS("spans_open", "9223372036854775807") OPEN_AT_FROM;
#undef ENDED_AT_FROM
#undef OPEN_AT_FROM
    struct store_stmt q;
    int rc = store_stmt_prepare(w->st, sql, "cannot read the recording", &q, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&q, ":target", target);
    store_bind_i64(&q, ":from", w->snaps[0].id);
    store_bind_i64(&q, ":lo", target << 32);
    store_bind_i64(&q, ":hi", (target << 32) + 0xffffffffLL);
    while ((rc = store_stmt_step(&q, e)) == 1)
        take_row(w, q.s, 0);
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}

/* The first id of the table's rows of the target born after snapshot from, found by seeks:
 * the target's ids grow with their births. */
static int first_born_after(struct store_walk *w, const char *table, int64_t target, int64_t from,
                            int64_t *out, struct err *e)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT id, first_snap FROM %s WHERE id BETWEEN :at AND :hi ORDER BY id LIMIT 1",
             table);
    struct store_stmt q;
    int rc = store_stmt_prepare(w->st, sql, "cannot read the recording", &q, e);
    if (rc < 0)
        return rc;
    int64_t a = target << 32, b = (target << 32) + 0xffffffffLL + 1;
    store_bind_i64(&q, ":hi", b - 1);
    while (a < b) {
        int64_t mid = a + (b - a) / 2;
        store_bind_i64(&q, ":at", mid);
        if ((rc = store_stmt_step(&q, e)) < 0)
            break;
        if (rc == 0 || sqlite3_column_int64(q.s, 1) > from) {
            b = mid; /* the first born after from is below the first row at or after mid */
        } else {
            a = sqlite3_column_int64(q.s, 0) + 1;
        }
        store_stmt_reset(&q);
        store_bind_i64(&q, ":hi", (target << 32) + 0xffffffffLL);
        rc = 0;
    }
    store_stmt_finalize(&q);
    *out = a;
    return rc;
}

/* Moves the births of table t to their next row: its snapshot index, or none past the range. */
static int births_advance(struct store_walk *w, struct births *b, struct err *e)
{
    int rc = store_stmt_step(&b->q, e);
    if (rc <= 0) {
        b->row = 0;
        return rc;
    }
    uint32_t k = snap_index(w, sqlite3_column_int64(b->q.s, COL_FIRST));
    if (k < b->k)
        return err_set(e, ERR_CORRUPT,
                       "the recording's regions are not stored in the order they were born: "
                       "the file was not written by vmsnap, or was damaged");
    b->k = k;
    b->row = k < w->nsnaps;
    return 0;
}

static int births_open(struct store_walk *w, struct births *b, const char *table, int64_t target,
                       struct err *e)
{
    static const char *ended = WALK_COLS("spans", "p.last_snap") "WHERE p.id BETWEEN :at AND :hi "
                                                                 "AND p.first_snap > :from "
                                                                 "ORDER BY p.id";
    static const char *open =
        WALK_COLS("spans_open", "9223372036854775807") "WHERE p.id BETWEEN :at AND :hi AND "
                                                       "p.first_snap > :from ORDER BY p.id";
    int64_t at;
    int rc = first_born_after(w, table, target, w->snaps[0].id, &at, e);
    if (rc < 0 || (rc = store_stmt_prepare(w->st, strcmp(table, "spans") ? open : ended,
                                           "cannot read the recording", &b->q, e)) < 0)
        return rc;
    store_bind_i64(&b->q, ":at", at);
    store_bind_i64(&b->q, ":hi", (target << 32) + 0xffffffffLL);
    store_bind_i64(&b->q, ":from", w->snaps[0].id);
    b->k = 1;
    return births_advance(w, b, e);
}

struct by_start {
    uint64_t start;
    uint32_t slot;
};

static int cmp_start(const void *x, const void *y)
{
    const struct by_start *a = x, *b = y;
    return a->start < b->start ? -1 : a->start > b->start;
}

/* Sorts slots by their regions' starts (keys beside them: qsort takes no context). */
static void sort_by_start(struct store_walk *w, uint32_t *v, size_t n)
{
    if (n < 2)
        return;
    w->keys = xgrow(w->keys, &w->keys_cap, n, sizeof(*w->keys));
    for (size_t i = 0; i < n; i++)
        w->keys[i] = (struct by_start){w->slot[v[i]].r.start, v[i]};
    qsort(w->keys, n, sizeof(*w->keys), cmp_start);
    for (size_t i = 0; i < n; i++)
        v[i] = w->keys[i].slot;
}

int store_walk_open(struct store *st, int64_t target, int64_t from, int64_t to,
                    struct store_walk **out, struct err *e)
{
    struct store_walk *w = xcalloc(1, sizeof(*w));
    w->st = st;
    region_list_init(&w->scratch);
    *out = w;
    /* One read transaction: a recording that goes on meanwhile is seen as it was. */
    int rc = store_begin_read(st, e);
    if (rc < 0)
        return rc;
    w->reading = 1;
    if ((rc = read_snaps(w, target, from, to, e)) < 0)
        return rc;
    if (w->nsnaps == 0)
        return err_set(e, ERR_NOTFOUND, "no snapshots in the range");
    if ((rc = read_first(w, target, e)) < 0 ||
        (rc = births_open(w, &w->births[0], "spans", target, e)) < 0 ||
        (rc = births_open(w, &w->births[1], "spans_open", target, e)) < 0)
        return rc;
    return 0;
}

const struct store_hsnap *store_walk_snaps(const struct store_walk *w, size_t *n)
{
    *n = w->nsnaps;
    return w->snaps;
}

const struct region *store_walk_region(const struct store_walk *w, uint32_t slot)
{
    return &w->slot[slot].r;
}

uint32_t store_walk_slots(const struct store_walk *w)
{
    return (uint32_t)w->nslots;
}

int store_walk_next(struct store_walk *w, struct store_step *step, struct err *e)
{
    /* The regions the last step ended are gone now. */
    for (size_t i = 0; i < w->nended; i++) {
        struct slot *x = &w->slot[w->ended[i]];
        free(x->hold);
        memset(x, 0, sizeof(*x));
        w->spare = xgrow(w->spare, &w->spare_cap, w->nspare + 1, sizeof(*w->spare));
        w->spare[w->nspare++] = w->ended[i];
    }
    w->nended = 0;
    memset(step, 0, sizeof(*step));
    if (!w->started) {
        /* Step 0: every region alive at the first snapshot began there. */
        w->started = 1;
        sort_by_start(w, w->began, w->nbegan);
        step->k = 0;
        step->began = w->began;
        step->nbegan = w->nbegan;
        return 1;
    }
    w->nbegan = 0;
    uint32_t k = (uint32_t)w->nsnaps;
    if (w->nheap && w->slot[w->heap[0]].last + 1 < k)
        k = w->slot[w->heap[0]].last + 1;
    for (int t = 0; t < 2; t++)
        if (w->births[t].row && w->births[t].k < k)
            k = w->births[t].k;
    if (k >= w->nsnaps)
        return 0;
    while (w->nheap && w->slot[w->heap[0]].last + 1 == k) {
        w->ended = xgrow(w->ended, &w->ended_cap, w->nended + 1, sizeof(*w->ended));
        w->ended[w->nended++] = heap_pop(w);
    }
    for (int t = 0; t < 2; t++) {
        struct births *b = &w->births[t];
        int rc;
        while (b->row && b->k == k) {
            take_row(w, b->q.s, k);
            if ((rc = births_advance(w, b, e)) < 0)
                return rc;
        }
    }
    sort_by_start(w, w->ended, w->nended);
    sort_by_start(w, w->began, w->nbegan);
    step->k = k;
    step->ended = w->ended;
    step->nended = w->nended;
    step->began = w->began;
    step->nbegan = w->nbegan;
    return 1;
}

int store_walk_category_rss(struct store_walk *w, int64_t target, int64_t *out, struct err *e)
{
    static const char *sql = "SELECT category, first_snap, last_snap, rss FROM category_spans "
                             "WHERE target_id = :target AND first_snap <= :to AND last_snap >= "
                             ":from AND rss IS NOT NULL";
    size_t n = w->nsnaps;
    int64_t *d = xcalloc((n + 1) * CAT_COUNT, sizeof(*d));
    struct store_stmt q;
    int rc = store_stmt_prepare(w->st, sql, "cannot read the recording", &q, e);
    if (rc < 0) {
        free(d);
        return rc;
    }
    store_bind_i64(&q, ":target", target);
    store_bind_i64(&q, ":from", w->snaps[0].id);
    store_bind_i64(&q, ":to", w->snaps[n - 1].id);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        const unsigned char *name = sqlite3_column_text(q.s, 0);
        int c = name ? region_category_parse((const char *)name) : -1;
        uint32_t lo = snap_index(w, sqlite3_column_int64(q.s, 1));
        uint32_t hi = end_index(w, sqlite3_column_int64(q.s, 2));
        if (lo >= hi)
            continue;
        int64_t rss = sqlite3_column_int64(q.s, 3);
        c = c < 0 ? CAT_ANON : c;
        d[(size_t)lo * CAT_COUNT + (size_t)c] += rss;
        d[(size_t)hi * CAT_COUNT + (size_t)c] -= rss;
    }
    store_stmt_finalize(&q);
    int64_t run[CAT_COUNT] = {0};
    for (size_t k = 0; k < n; k++)
        for (size_t c = 0; c < CAT_COUNT; c++) {
            run[c] += d[k * CAT_COUNT + c];
            out[k * CAT_COUNT + c] = run[c];
        }
    free(d);
    return rc < 0 ? rc : 0;
}

void store_walk_close(struct store_walk *w)
{
    if (!w)
        return;
    for (int t = 0; t < 2; t++)
        if (w->births[t].q.s)
            store_stmt_finalize(&w->births[t].q);
    if (w->reading)
        store_rollback(w->st); /* nothing was written: it only ends the read */
    for (size_t i = 0; i < w->nsnaps; i++)
        free(w->snaps[i].label);
    for (size_t i = 0; i < w->nslots; i++)
        free(w->slot[i].hold);
    free(w->snaps);
    free(w->slot);
    free(w->spare);
    free(w->heap);
    free(w->ended);
    free(w->began);
    free(w->keys);
    region_list_release(&w->scratch);
    free(w);
}
