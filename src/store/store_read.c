/* Reading targets, snapshots and regions back, and listing them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/xalloc.h"

/*
 * Runs sql with its integer parameters bound in order and fills out with the rows (laid out as
 * store_row_to_region wants), sorted by unsigned start: SQL orders addresses as signed numbers,
 * which would put [vsyscall] first.
 */
static int read_regions(struct store *st, const char *sql, const int64_t *params, int nparams,
                        size_t hint, const char *what, struct region_list *out, struct err *e)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    for (int i = 0; i < nparams; i++)
        sqlite3_bind_int64(s, i + 1, params[i]);
    struct region_list tmp;
    region_list_init(&tmp);
    /* hint: how many rows are expected, so the array is sized once. */
    region_list_reserve(&tmp, hint);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        store_row_to_region(s, 0, &tmp, region_list_push(&tmp));
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        region_list_release(&tmp);
        return store_sql_err(st, rc, what, sql, e);
    }
    size_t *order = store_sort_order(&tmp);
    size_t i = 0;
    while (i < tmp.n && order[i] == i)
        i++;
    if (i == tmp.n) {
        /* Already in order (spans are numbered as their snapshot walked them): the list
         * itself is the answer, names and all. */
        struct region_list old = *out;
        *out = tmp;
        tmp = old;
    } else {
        region_list_clear(out);
        region_list_reserve(out, tmp.n);
        for (i = 0; i < tmp.n; i++) {
            struct region *r = region_list_push(out);
            *r = tmp.v[order[i]];
            region_rehome(out, r);
        }
    }
    free(order);
    region_list_release(&tmp);
    return 0;
}

int store_read_regions(struct store *st, int64_t snap_id, struct region_list *out, struct err *e)
{
    /* The regions view's rows for one snapshot, read straight from its two tables: the view
     * is one SELECT so that any way of naming a snapshot finds it by index, which costs a
     * whole read ~20% more than the two indexed arms with the id bound. */
#define ONE_SNAPSHOT(from, where)                                                                  \
    "SELECT " STORE_REGION_COLUMNS_P(                                                              \
        "n.path") ", " STORE_REGION_FIGURES_M " FROM snapshots s CROSS JOIN " from                 \
                  " LEFT JOIN paths n ON n.id = p.path_id "                                        \
                  "LEFT JOIN span_mem m ON s.detail = 'smaps' AND " STORE_MEM_AT(                  \
                      "s.id") "WHERE s.id = ?1 AND " where
#define OPEN_AT_S                                                                                  \
    "p.id BETWEEN s.target_id * 4294967296 AND s.target_id * 4294967296 + 4294967295 AND "         \
    "p.first_snap <= s.id "
#define ENDED_AT_S                                                                                 \
    "p.target_id = s.target_id AND p.first_snap <= s.id AND " STORE_ENDED_IN("s.id",               \
                                                                             "s.id + k.w - 1")
    static const char *sql = ONE_SNAPSHOT("spans_open p", OPEN_AT_S) "UNION ALL " ONE_SNAPSHOT(
        STORE_SPANS_BY_CLASS " p", ENDED_AT_S);
#undef OPEN_AT_S
#undef ENDED_AT_S
#undef ONE_SNAPSHOT
    int64_t count = 0;
    int rc = store_query_i64(st, "SELECT region_count FROM snapshots WHERE id = ?", snap_id, 0,
                             &count, e);
    if (rc < 0)
        return rc;
    return read_regions(st, sql, &snap_id, 1, store_size_hint(count),
                        "cannot read the snapshot's regions", out, e);
}

/*
 * The parts of a delta between snapshots a (?2) and b (?3) of target ?1, whose open spans are
 * the rowids ?4..?5. Gone: alive at a, ended before b (for each length class, those that ended
 * from a to the sooner of b - 1 and the class's reach). Came: born after a and alive at b,
 * still open or ended (one range per class). Changed: alive at both, with a span_mem interval
 * that began after a.
 */
#define WHERE_GONE                                                                                 \
    "WHERE p.target_id = ?1 AND p.first_snap <= ?2 AND " STORE_ENDED_IN(                           \
        "?2", "min(?3 - 1, ?2 + k.w - 1)")
#define WHERE_CAME_OPEN "WHERE p.id BETWEEN ?4 AND ?5 AND p.first_snap > ?2 AND p.first_snap <= ?3 "
#define WHERE_CAME_ENDED                                                                           \
    "WHERE p.target_id = ?1 AND p.first_snap > ?2 AND p.first_snap <= ?3 AND " STORE_ENDED_IN(     \
        "?3", "?3 + k.w - 1")
#define MEM_CHANGED                                                                                \
    "p.id IN (SELECT span_id FROM span_mem WHERE span_id BETWEEN ?4 AND ?5 AND first_snap > ?2 "   \
    "AND first_snap <= ?3) AND p.first_snap <= ?2 "
#define WHERE_CHANGED_OPEN "WHERE p.id BETWEEN ?4 AND ?5 AND " MEM_CHANGED
#define WHERE_CHANGED_ENDED                                                                        \
    "WHERE p.target_id = ?1 AND " STORE_ENDED_IN("?3", "?3 + k.w - 1") "AND " MEM_CHANGED

int store_read_delta(struct store *st, int64_t target_id, int64_t a, int64_t b,
                     struct region_list *gone, struct region_list *came, struct err *e)
{
    static const char *gone_sql = SPAN_COLS(STORE_SPANS_BY_CLASS) WHERE_GONE;
    static const char *came_sql = SPAN_COLS("spans_open") WHERE_CAME_OPEN
        "UNION ALL " SPAN_COLS(STORE_SPANS_BY_CLASS) WHERE_CAME_ENDED;
    const int64_t params[] = {target_id, a, b, target_id << 32, (target_id << 32) + 0xffffffffLL};
    const char *what = "cannot read the snapshots' differences";
    int rc = read_regions(st, gone_sql, params, 3, 0, what, gone, e);
    if (rc < 0)
        return rc;
    return read_regions(st, came_sql, params, 5, 0, what, came, e);
}

/* The region columns with the memory figures the span had at snapshot `at` (an SQL
 * parameter), from spans or spans_open as p. */
#define SPAN_MEM_COLS(table, at)                                                                   \
    "SELECT " STORE_REGION_COLUMNS_P("n.path") ", " STORE_REGION_FIGURES_M " FROM " table          \
                                               " p LEFT JOIN paths n ON n.id = p.path_id LEFT "    \
                                               "JOIN span_mem m ON " STORE_MEM_AT(at)

int store_read_delta_mem(struct store *st, int64_t target_id, int64_t a, int64_t b,
                         struct region_list *ra, struct region_list *rb, struct err *e)
{
    /* At a: the regions gone by b, and those alive at both whose figures changed. */
    static const char *a_sql = SPAN_MEM_COLS(STORE_SPANS_BY_CLASS, "?2") WHERE_GONE
        "UNION ALL " SPAN_MEM_COLS("spans_open", "?2") WHERE_CHANGED_OPEN
        "UNION ALL " SPAN_MEM_COLS(STORE_SPANS_BY_CLASS, "?2") WHERE_CHANGED_ENDED;
    /* At b: the regions born after a, and the same changed ones. */
    static const char *b_sql = SPAN_MEM_COLS("spans_open", "?3") WHERE_CAME_OPEN
        "UNION ALL " SPAN_MEM_COLS(STORE_SPANS_BY_CLASS, "?3") WHERE_CAME_ENDED
        "UNION ALL " SPAN_MEM_COLS("spans_open", "?3") WHERE_CHANGED_OPEN
        "UNION ALL " SPAN_MEM_COLS(STORE_SPANS_BY_CLASS, "?3") WHERE_CHANGED_ENDED;
    const int64_t params[] = {target_id, a, b, target_id << 32, (target_id << 32) + 0xffffffffLL};
    const char *what = "cannot read the snapshots' differences";
    int rc = read_regions(st, a_sql, params, 5, 0, what, ra, e);
    if (rc < 0)
        return rc;
    return read_regions(st, b_sql, params, 5, 0, what, rb, e);
}

void store_target_release(struct store_target *t)
{
    free(t->exe);
    free(t->cmdline);
    free(t->host);
    free(t->os);
    free(t->boot_id);
    free(t->first_seen);
    free(t->origin);
    free(t->exited_at);
    memset(t, 0, sizeof(*t));
}

void store_snapshot_release(struct store_snapshot *s)
{
    free(s->taken_at);
    free(s->label);
    free(s->detail);
    free(s->method);
    memset(s, 0, sizeof(*s));
}

#define TARGET_COLS                                                                                \
    "id, pid, start_time, exe, cmdline, host, os, boot_id, first_seen, parent_target_id, origin, " \
    "exited_at"
#define SNAPSHOT_COLS                                                                              \
    "id, target_id, seq, taken_at, label, region_count, mapped_bytes, rss_bytes, pss_bytes, "      \
    "private_dirty_bytes, anon_bytes, swap_bytes, detail, method, torn, retries, mark"

static void row_to_target(sqlite3_stmt *s, struct store_target *t)
{
    memset(t, 0, sizeof(*t));
    t->id = sqlite3_column_int64(s, 0);
    t->pid = sqlite3_column_int64(s, 1);
    t->start_time = (uint64_t)sqlite3_column_int64(s, 2);
    t->exe = store_col_text(s, 3);
    t->cmdline = store_col_text(s, 4);
    t->host = store_col_text(s, 5);
    t->os = store_col_text(s, 6);
    t->boot_id = store_col_text(s, 7);
    t->first_seen = store_col_text(s, 8);
    t->parent_target_id = sqlite3_column_int64(s, 9);
    t->origin = store_col_text(s, 10);
    t->exited_at = store_col_text(s, 11);
}

static void row_to_snapshot(sqlite3_stmt *s, struct store_snapshot *o)
{
    memset(o, 0, sizeof(*o));
    o->id = sqlite3_column_int64(s, 0);
    o->target_id = sqlite3_column_int64(s, 1);
    o->seq = sqlite3_column_int64(s, 2);
    o->taken_at = store_col_text(s, 3);
    o->label = store_col_text(s, 4);
    o->region_count = sqlite3_column_int64(s, 5);
    o->mapped_bytes = (uint64_t)sqlite3_column_int64(s, 6);
    o->have_mem = sqlite3_column_type(s, 7) != SQLITE_NULL;
    o->rss_bytes = (uint64_t)sqlite3_column_int64(s, 7);
    o->pss_bytes = (uint64_t)sqlite3_column_int64(s, 8);
    o->private_dirty_bytes = (uint64_t)sqlite3_column_int64(s, 9);
    o->anon_bytes = (uint64_t)sqlite3_column_int64(s, 10);
    o->swap_bytes = (uint64_t)sqlite3_column_int64(s, 11);
    o->detail = store_col_text(s, 12);
    o->method = store_col_text(s, 13);
    o->torn = sqlite3_column_int(s, 14);
    o->retries = sqlite3_column_int64(s, 15);
    o->mark =
        sqlite3_column_type(s, 16) == SQLITE_NULL ? STORE_NO_MARK : sqlite3_column_int64(s, 16);
}

/* Reads the row with this id; noun names it in errors ("target", "snapshot"). */
static int get_by_id(struct store *st, const char *sql, int64_t id, const char *noun,
                     void (*fill)(sqlite3_stmt *s, void *out), void *out, struct err *e)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        fill(s, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(e, ERR_NOTFOUND, "no %s with id %lld in '%s'", noun, (long long)id, st->path);
    } else {
        rc = store_sql_err(st, rc, "cannot read the database", sql, e);
    }
    sqlite3_finalize(s);
    return rc;
}

static void fill_target(sqlite3_stmt *s, void *out)
{
    row_to_target(s, out);
}

static void fill_snapshot(sqlite3_stmt *s, void *out)
{
    row_to_snapshot(s, out);
}

int store_target_get(struct store *st, int64_t id, struct store_target *out, struct err *e)
{
    return get_by_id(st, "SELECT " TARGET_COLS " FROM targets WHERE id = ?", id, "target",
                     fill_target, out, e);
}

int store_snapshot_get(struct store *st, int64_t id, struct store_snapshot *out, struct err *e)
{
    return get_by_id(st, "SELECT " SNAPSHOT_COLS " FROM snapshots WHERE id = ?", id, "snapshot",
                     fill_snapshot, out, e);
}

/* Runs sql (one int64 parameter per non-zero bind, in order) and returns the first column of
 * its first row in *out; 1 when there is no row. */
int store_query_i64(struct store *st, const char *sql, int64_t a, int64_t b, int64_t *out,
                    struct err *e)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_parameter_count(s) >= 1)
        sqlite3_bind_int64(s, 1, a);
    if (sqlite3_bind_parameter_count(s) >= 2)
        sqlite3_bind_int64(s, 2, b);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *out = sqlite3_column_int64(s, 0);
        rc = 0;
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        rc = 1;
    } else {
        rc = store_sql_err(st, rc, "cannot resolve the snapshot", sql, e);
    }
    sqlite3_finalize(s);
    return rc;
}

int store_list(struct store *st, int64_t target_id, const struct store_list_cb *cb, struct err *e)
{
    static const char *tsql =
        "SELECT " TARGET_COLS " FROM targets WHERE ?1 = 0 OR id = ?1 ORDER BY id";
    static const char *ssql =
        "SELECT " SNAPSHOT_COLS " FROM snapshots WHERE target_id = ? ORDER BY seq";
    sqlite3_stmt *ts = NULL, *ss = NULL;
    int rc = store_prepare(st, tsql, &ts, e), found = 0;
    if (rc < 0)
        return rc;
    if ((rc = store_prepare(st, ssql, &ss, e)) < 0)
        goto out;
    sqlite3_bind_int64(ts, 1, target_id);
    while ((rc = sqlite3_step(ts)) == SQLITE_ROW) {
        struct store_target t;
        row_to_target(ts, &t);
        found = 1;
        int cbrc = cb->target ? cb->target(cb->ctx, &t) : 0;
        sqlite3_bind_int64(ss, 1, t.id);
        while (cbrc == 0 && (rc = sqlite3_step(ss)) == SQLITE_ROW) {
            struct store_snapshot snap;
            row_to_snapshot(ss, &snap);
            cbrc = cb->snapshot ? cb->snapshot(cb->ctx, &snap) : 0;
            store_snapshot_release(&snap);
        }
        sqlite3_reset(ss);
        if (cbrc == 0 && cb->target_end)
            cbrc = cb->target_end(cb->ctx, &t);
        store_target_release(&t);
        if (cbrc != 0) {
            rc = err_set(e, ERR_IO, "cannot write the listing");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        rc = store_sql_err(st, rc, "cannot list the database", tsql, e);
        goto out;
    }
    rc = 0;
    if (target_id && !found)
        rc = err_set(e, ERR_NOTFOUND, "no target with id %lld in '%s'", (long long)target_id,
                     st->path);
out:
    sqlite3_finalize(ts);
    sqlite3_finalize(ss);
    return rc;
}
