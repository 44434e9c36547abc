/*
 * Reading a recording's history for analysis: the snapshots of a range, and every region alive
 * at some snapshot of it with the snapshots it was alive at. Regions are stored as intervals, so
 * this reads the regions alive at the first snapshot plus one row per change after it: the cost
 * grows with the changes, not with snapshots x regions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/xalloc.h"

/* The region columns as store_row_to_region wants them, then the span's id and interval. */
#define HISTORY_COLS(table, last)                                                                  \
    "SELECT " STORE_REGION_COLUMNS_P("n.path") ", " STORE_REGION_NO_FIGURES                        \
                                               ", p.id, p.first_snap, " last " FROM " table        \
                                               " p LEFT JOIN paths n ON n.id = p.path_id "

static int read_snaps(struct store *st, int64_t target, int64_t from, int64_t to,
                      struct store_history *h, struct err *e)
{
    static const char *sql =
        "SELECT id, seq, taken_at, CAST(round((julianday(taken_at) - 2440587.5) * 86400000) AS "
        "INTEGER), label, rss_bytes, detail, mark FROM snapshots WHERE target_id = :target AND id "
        "BETWEEN :from AND :to ORDER BY id";
    struct store_stmt q;
    size_t cap = 0;
    int rc = store_stmt_prepare(st, sql, "cannot read the recording", &q, e);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = q.s;
    store_bind_i64(&q, ":target", target);
    store_bind_i64(&q, ":from", from);
    store_bind_i64(&q, ":to", to);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        h->snaps = xgrow(h->snaps, &cap, h->nsnaps + 1, sizeof(*h->snaps));
        struct store_hsnap *x = &h->snaps[h->nsnaps++];
        memset(x, 0, sizeof(*x));
        x->id = sqlite3_column_int64(s, 0);
        x->seq = sqlite3_column_int64(s, 1);
        const unsigned char *at = sqlite3_column_text(s, 2);
        snprintf(x->taken_at, sizeof(x->taken_at), "%s", at ? (const char *)at : "");
        x->taken_ms = sqlite3_column_int64(s, 3);
        x->label = store_col_text(s, 4);
        x->have_rss = sqlite3_column_type(s, 5) != SQLITE_NULL;
        x->rss_bytes = (uint64_t)sqlite3_column_int64(s, 5);
        const unsigned char *detail = sqlite3_column_text(s, 6);
        x->smaps = detail && strcmp((const char *)detail, "smaps") == 0;
        x->mark =
            sqlite3_column_type(s, 7) == SQLITE_NULL ? STORE_NO_MARK : sqlite3_column_int64(s, 7);
    }
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}

/* The index of the first snapshot whose id is >= id (nsnaps when none). */
static uint32_t snap_index(const struct store_history *h, int64_t id)
{
    size_t lo = 0, hi = h->nsnaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->snaps[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

static int read_spans(struct store *st, int64_t target, int64_t from, int64_t to,
                      struct store_history *h, int64_t **span_ids, struct err *e)
{
    /* Ended regions alive at some snapshot of the range (an index range), then the open
     * ones born by its end (the target's rowid range). */
#define ENDED_IN_RANGE                                                                             \
    "WHERE p.target_id = :target AND p.first_snap <= :to AND " STORE_ENDED_IN(":from",             \
                                                                              ":to + k.w - 1")
#define OPEN_IN_RANGE "WHERE p.id BETWEEN :lo AND :hi AND p.first_snap <= :to"
    static const char *sql = HISTORY_COLS(STORE_SPANS_BY_CLASS, "p.last_snap") ENDED_IN_RANGE
        "UNION ALL " HISTORY_COLS("spans_open", "9223372036854775807") OPEN_IN_RANGE;
#undef ENDED_IN_RANGE
#undef OPEN_IN_RANGE
    struct store_stmt q;
    size_t cap = 0, idcap = 0;
    int rc = store_stmt_prepare(st, sql, "cannot read the recording", &q, e);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = q.s;
    store_bind_i64(&q, ":target", target);
    store_bind_i64(&q, ":from", from);
    store_bind_i64(&q, ":to", to);
    store_bind_i64(&q, ":lo", target << 32);
    store_bind_i64(&q, ":hi", (target << 32) + 0xffffffffLL);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        size_t i = h->regions.n;
        store_row_to_region(s, 0, &h->regions, region_list_push(&h->regions));
        h->alive = xgrow(h->alive, &cap, i + 1, sizeof(*h->alive));
        *span_ids = xgrow(*span_ids, &idcap, i + 1, sizeof(**span_ids));
        (*span_ids)[i] = sqlite3_column_int64(s, RCOL_COUNT);
        int64_t first = sqlite3_column_int64(s, RCOL_COUNT + 1);
        int64_t last = sqlite3_column_int64(s, RCOL_COUNT + 2);
        uint32_t lo = snap_index(h, first), hi = snap_index(h, last < to ? last + 1 : to + 1);
        if (lo >= hi) {
            /* Alive at none of the range's snapshots: only a crafted file says so. */
            h->regions.n--;
            continue;
        }
        h->alive[i].first = lo;
        h->alive[i].last = hi - 1;
    }
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}

struct id_index {
    int64_t span;
    uint32_t region;
};

static int cmp_id(const void *a, const void *b)
{
    const struct id_index *x = a, *y = b;
    return x->span < y->span ? -1 : x->span > y->span;
}

/* Per-region rss, as intervals of snapshots (written when it changes). */
static int read_mem(struct store *st, int64_t target, int64_t from, int64_t to,
                    struct store_history *h, const int64_t *span_ids, struct err *e)
{
    static const char *sql = "SELECT span_id, first_snap, last_snap, rss FROM span_mem WHERE "
                             "span_id BETWEEN :lo AND :hi AND first_snap <= :to AND last_snap >= "
                             ":from";
    size_t n = h->regions.n, cap = 0;
    struct id_index *idx = xmalloc((n ? n : 1) * sizeof(*idx));
    for (size_t i = 0; i < n; i++)
        idx[i] = (struct id_index){span_ids[i], (uint32_t)i};
    if (n > 1)
        qsort(idx, n, sizeof(*idx), cmp_id);
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot read the recording", &q, e);
    if (rc < 0) {
        free(idx);
        return rc;
    }
    sqlite3_stmt *s = q.s;
    store_bind_i64(&q, ":lo", target << 32);
    store_bind_i64(&q, ":hi", (target << 32) + 0xffffffffLL);
    store_bind_i64(&q, ":from", from);
    store_bind_i64(&q, ":to", to);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        struct id_index key = {sqlite3_column_int64(s, 0), 0};
        const struct id_index *hit = n ? bsearch(&key, idx, n, sizeof(*idx), cmp_id) : NULL;
        if (!hit)
            continue;
        int64_t first = sqlite3_column_int64(s, 1), last = sqlite3_column_int64(s, 2);
        uint32_t lo = snap_index(h, first), hi = snap_index(h, last < to ? last + 1 : to + 1);
        if (lo >= hi)
            continue; /* as above */
        h->mem = xgrow(h->mem, &cap, h->nmem + 1, sizeof(*h->mem));
        struct store_hmem *m = &h->mem[h->nmem++];
        m->region = hit->region;
        m->first = lo;
        m->last = hi - 1;
        m->rss = (uint64_t)sqlite3_column_int64(s, 3);
    }
    store_stmt_finalize(&q);
    free(idx);
    return rc < 0 ? rc : 0;
}

int store_read_history(struct store *st, int64_t target, int64_t from, int64_t to,
                       struct store_history *h, struct err *e)
{
    int64_t *span_ids = NULL;
    memset(h, 0, sizeof(*h));
    h->target_id = target;
    region_list_init(&h->regions);
    /* One read transaction: a recording that goes on meanwhile is seen as it was. */
    int rc = store_begin_read(st, e);
    if (rc < 0)
        return rc;
    if ((rc = read_snaps(st, target, from, to, h, e)) < 0 ||
        (rc = read_spans(st, target, from, to, h, &span_ids, e)) < 0 ||
        (rc = read_mem(st, target, from, to, h, span_ids, e)) < 0) {
        store_history_release(h);
        h->target_id = target;
    }
    store_rollback(st); /* nothing was written: it only ends the read */
    free(span_ids);
    return rc;
}

void store_history_release(struct store_history *h)
{
    for (size_t i = 0; i < h->nsnaps; i++)
        free(h->snaps[i].label);
    free(h->snaps);
    free(h->alive);
    free(h->mem);
    region_list_release(&h->regions);
    memset(h, 0, sizeof(*h));
}
