/*
 * Writing snapshots as deltas. The writer holds the target's alive regions (the open spans) in
 * memory, merges each new capture against them by address, and writes only what opened, closed
 * or changed its memory figures. An unchanged tick writes one snapshots row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/xalloc.h"

enum {
    S_SNAPSHOT,
    S_SPAN_MOVE,
    S_SPAN_DROP,
    S_SPAN_OPEN,
    S_MEM_CLOSE,
    S_MEM_OPEN,
    S_PATH_FIND,
    S_PATH_ADD,
    S_HEAD,
    S_LABEL,
    S_CAT_CLOSE,
    S_CAT_OPEN,
    S_CAT_LOAD,
    S_MARK_TAKEN,
    S_SPAN_BATCH, /* SPAN_BATCH new regions at once */
    S_COUNT
};

/* New regions are inserted this many to a statement: a first snapshot inserts tens of
 * thousands, and one row per statement costs a step, a reset and 16 binds' bookkeeping each. */
#define SPAN_BATCH 32
/* Bound per new region: ?1 is the target and ?2 the snapshot, once per statement; row k's
 * values are its id at SPAN_PARAM(k, -1) and its region columns at SPAN_PARAM(k, RCOL_...). */
#define SPAN_VALUES        (1 + RCOL_RSS)
#define SPAN_TARGET_PARAM  1
#define SPAN_SNAP_PARAM    2
#define SPAN_PARAM(k, col) (3 + (k)*SPAN_VALUES + 1 + (col))

static const char *const writer_sql[S_COUNT] = {
    [S_SNAPSHOT] =
        "INSERT INTO snapshots (target_id, seq, taken_at, label, region_count, mapped_bytes, "
        "rss_bytes, pss_bytes, private_dirty_bytes, anon_bytes, swap_bytes, detail, method, torn, "
        "retries, duration_us, mark) VALUES (:target, :seq, :taken_at, :label, :count, :mapped, "
        ":rss, :pss, :dirty, :anon, :swap, :detail, :method, :torn, :retries, :duration, :mark)",
    /* A region ends: it moves, same id, from spans_open to spans with its last snapshot. */
    [S_SPAN_MOVE] = "INSERT INTO spans (id, target_id, first_snap, "
                    "last_snap, " STORE_REGION_COLUMNS(
                        "path_id") ") SELECT id, target_id, first_snap, "
                                   ":last, " STORE_REGION_COLUMNS("path_id") " FROM spans_open "
                                                                             "WHERE id = :id",
    [S_SPAN_DROP] = "DELETE FROM spans_open WHERE id = :id",
    /* One new region; SPAN_COLUMNS and bind_span say how it is bound. */
    [S_SPAN_OPEN] = NULL,
    [S_MEM_CLOSE] = "UPDATE span_mem SET last_snap = :last WHERE span_id = :id AND first_snap = "
                    ":first",
    [S_MEM_OPEN] = "INSERT INTO span_mem (span_id, first_snap, last_snap, " STORE_REGION_FIGURES
                   ") VALUES (:span, :first, :last, :rss, :pss, :dirty, :anon, :swap)",
    [S_PATH_FIND] = "SELECT id FROM paths WHERE path = :path",
    [S_PATH_ADD] = "INSERT INTO paths (path) VALUES (:path)",
    /* The target's newest committed snapshot, read inside the write transaction. */
    [S_HEAD] = "SELECT id, seq FROM snapshots WHERE target_id = :target ORDER BY seq DESC LIMIT 1",
    [S_LABEL] = "SELECT id FROM snapshots WHERE label = :label AND target_id = :target",
    [S_CAT_CLOSE] = "UPDATE category_spans SET last_snap = :last WHERE target_id = :target AND "
                    "category = :category AND first_snap = :first",
    [S_CAT_OPEN] = "INSERT INTO category_spans (target_id, category, first_snap, last_snap, "
                   "regions, mapped, committed, rss) VALUES (:target, :category, :first, "
                   "9223372036854775807, :regions, :mapped, :committed, :rss)",
    [S_CAT_LOAD] = "SELECT category, first_snap, regions, mapped, committed, rss FROM "
                   "category_spans WHERE target_id = :target AND last_snap = 9223372036854775807",
    [S_MARK_TAKEN] = "UPDATE recorders SET marks_done = max(marks_done, :mark) WHERE id = "
                     ":recorder",
    [S_SPAN_BATCH] = NULL,
};

/* INSERT INTO spans_open for rows new regions, numbered as SPAN_VALUES says. */
static char *span_insert_sql(int rows)
{
    static const char head[] = "INSERT INTO spans_open (id, " STORE_REGION_COLUMNS(
        "path_id") ", target_id, first_snap) VALUES ";
    size_t cap = sizeof(head) + (size_t)rows * SPAN_VALUES * 8 + (size_t)rows * 16;
    char *sql = xmalloc(cap), *p = sql;
    p += snprintf(p, cap, "%s", head);
    for (int k = 0; k < rows; k++) {
        *p++ = k ? ',' : ' ';
        *p++ = '(';
        for (int c = -1; c < RCOL_RSS; c++) /* the id, then the region columns */
            p += snprintf(p, cap - (size_t)(p - sql), "?%d,", SPAN_PARAM(k, c));
        p += snprintf(p, cap - (size_t)(p - sql), "?%d,?%d)", SPAN_TARGET_PARAM, SPAN_SNAP_PARAM);
    }
    return sql;
}

/* A category's totals, as in its open category_spans row. */
struct cat_totals {
    int64_t first; /* first_snap of the open row; 0 when there is none */
    int64_t regions;
    uint64_t mapped, committed, rss; /* bytes */
    int has_rss;
};

/* An open-addressing map from path text to its paths.id, so known names cost no SQL. */
struct path_map {
    struct path_slot {
        char *path; /* owned */
        uint32_t len;
        int64_t id;
    } * slots;
    size_t cap, n; /* cap is a power of two */
};

struct store_writer {
    struct store *st;
    struct store_stmt stmt[S_COUNT];
    char *span_sql[2]; /* the SQL of S_SPAN_OPEN and S_SPAN_BATCH */
    const struct capture_target *target;
    int64_t target_id; /* 0 until the target's row exists */
    int64_t parent_target_id;
    int64_t last_snap; /* id of the target's newest snapshot, 0 if none */
    int64_t last_seq;
    int stale;       /* the state below must be loaded again from what is committed */
    int64_t next_id; /* id for the next new region: (target_id << 32) + n */
    /* The alive regions as of last_snap, sorted by start, with their span ids: own (loaded or
     * copied) or a list lent by the caller (store_snap_opts.lend), unchanged since its write
     * while its generation is alive_gen. */
    const struct region_list *alive;
    uint64_t alive_gen;
    struct region_list own;
    int64_t *span_id;
    int64_t *mem_first; /* first_snap of the open span_mem row, 0 when none */
    size_t id_cap;
    /* Scratch for the next state, swapped in on commit. */
    struct region_list next;
    int64_t *next_span_id, *next_mem_first; /* filled only when keep */
    int keep; /* a write builds on this one: keep its state (a snap's last write does not) */
    size_t next_cap;
    struct path_map paths;
    struct cat_totals cats[CAT_COUNT]; /* as of last_snap */
    /* New regions waiting to be inserted, SPAN_BATCH at a time. */
    struct queued_span {
        const struct region *r;
        int64_t id, path;
        char dev[24]; /* the bound device text lives here until the statement runs */
    } queue[SPAN_BATCH];
    int queued;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static struct path_slot *path_map_find(struct path_map *m, const char *s, size_t len)
{
    if (!m->cap)
        return NULL;
    for (size_t i = hash_bytes(s, len) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct path_slot *slot = &m->slots[i];
        if (!slot->path)
            return slot;
        if (slot->len == len && memcmp(slot->path, s, len) == 0)
            return slot;
    }
}

static void path_map_put(struct path_map *m, const char *s, size_t len, int64_t id)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct path_map bigger = {xcalloc(m->cap ? m->cap * 2 : 256, sizeof(struct path_slot)),
                                  m->cap ? m->cap * 2 : 256, 0};
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].path)
                continue;
            struct path_slot *slot = path_map_find(&bigger, m->slots[i].path, m->slots[i].len);
            *slot = m->slots[i];
            bigger.n++;
        }
        free(m->slots);
        *m = bigger;
    }
    struct path_slot *slot = path_map_find(m, s, len);
    slot->path = xstrndup(s, len);
    slot->len = (uint32_t)len;
    slot->id = id;
    m->n++;
}

static void path_map_release(struct path_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].path);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static int step_done(struct store_writer *w, int k, struct err *e)
{
    return store_stmt_run(&w->stmt[k], e);
}

/* Finds or adds the path's row. New rows roll back with the snapshot, so they enter the map only
 * on commit: until then a failed write could leave the map naming ids that do not exist. */
static int path_id(struct store_writer *w, const struct region *r, int64_t *id, struct err *e)
{
    struct path_slot *slot = path_map_find(&w->paths, r->path, r->path_len);
    if (slot && slot->path) {
        *id = slot->id;
        return 0;
    }
    struct store_stmt *q = &w->stmt[S_PATH_FIND];
    store_bind_static(q, ":path", r->path, (int)r->path_len);
    int rc = store_stmt_step(q, e);
    if (rc == 1) {
        *id = sqlite3_column_int64(q->s, 0);
        store_stmt_reset(q);
        path_map_put(&w->paths, r->path, r->path_len, *id);
        return 0;
    }
    store_stmt_reset(q);
    if (rc < 0)
        return rc;
    store_bind_static(&w->stmt[S_PATH_ADD], ":path", r->path, (int)r->path_len);
    if ((rc = step_done(w, S_PATH_ADD, e)) < 0)
        return rc;
    *id = sqlite3_last_insert_rowid(w->st->db);
    return 0;
}

/* Formats the device as maps does ("fe:00") without printf: this runs once per new region. */
static int dev_text(const struct region *r, char buf[24])
{
    static const char hex[] = "0123456789abcdef";
    uint32_t parts[2] = {r->dev_major, r->dev_minor};
    int n = 0;
    for (int p = 0; p < 2; p++) {
        char tmp[8];
        int digits = 0;
        uint32_t v = parts[p];
        do {
            tmp[digits++] = hex[v & 0xf];
            v >>= 4;
        } while (v);
        if (digits < 2)
            tmp[digits++] = '0';
        while (digits)
            buf[n++] = tmp[--digits];
        if (p == 0)
            buf[n++] = ':';
    }
    buf[n] = '\0';
    return n;
}

static void bind_opt_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Binds new region r (row k of a statement, as SPAN_PARAM says); dev holds its device text. */
static void bind_span(sqlite3_stmt *s, int k, const struct region *r, int64_t id, int64_t path,
                      char dev[24])
{
#define AT(col) SPAN_PARAM(k, RCOL_##col)
    sqlite3_bind_int64(s, SPAN_PARAM(k, -1), id);
    sqlite3_bind_int64(s, AT(START), (int64_t)r->start);
    sqlite3_bind_int64(s, AT(END), (int64_t)r->end);
    sqlite3_bind_text(s, AT(PERMS), r->perms, 4, SQLITE_STATIC);
    sqlite3_bind_int64(s, AT(OFFSET), (int64_t)r->offset);
    sqlite3_bind_text(s, AT(DEV), dev, dev_text(r, dev), SQLITE_STATIC);
    sqlite3_bind_int64(s, AT(INODE), (int64_t)r->inode);
    if (r->path)
        sqlite3_bind_int64(s, AT(PATH), path);
    else
        sqlite3_bind_null(s, AT(PATH));
    sqlite3_bind_text(s, AT(CATEGORY), region_category_name(r->category), -1, SQLITE_STATIC);
    sqlite3_bind_int(s, AT(DELETED), (r->flags & REGION_DELETED) ? 1 : 0);
    if (r->flags & REGION_HAS_WIN) {
        const struct region_extra *x = region_extra(r);
        bind_opt_text(s, AT(STATE), region_win_state_name(x->state));
        bind_opt_text(s, AT(TYPE), region_win_type_name(x->type));
        sqlite3_bind_int64(s, AT(PROTECT), x->protect);
        sqlite3_bind_int64(s, AT(ALLOC_BASE), (int64_t)x->alloc_base);
        sqlite3_bind_int64(s, AT(ALLOC_PROTECT), x->alloc_protect);
    } else {
        for (int c = RCOL_STATE; c <= RCOL_ALLOC_PROTECT; c++)
            sqlite3_bind_null(s, SPAN_PARAM(k, c));
    }
    if (r->owner)
        sqlite3_bind_text(s, AT(OWNER), r->owner, (int)r->owner_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, AT(OWNER));
#undef AT
}

/* Inserts the queued new regions: a full batch in one statement, a shorter one row by row. */
static int flush_spans(struct store_writer *w, struct err *e)
{
    int full = w->queued == SPAN_BATCH;
    struct store_stmt *ins = &w->stmt[full ? S_SPAN_BATCH : S_SPAN_OPEN];
    sqlite3_stmt *s = ins->s;
    for (int k = 0; k < w->queued; k++) {
        struct queued_span *q = &w->queue[k];
        bind_span(s, full ? k : 0, q->r, q->id, q->path, q->dev);
        if (full && k + 1 < w->queued)
            continue;
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) {
            w->queued = 0;
            return store_sql_err(w->st, rc, ins->what, ins->sql, e);
        }
    }
    w->queued = 0;
    return 0;
}

/*
 * A region born at the snapshot being written: it gets the next id and joins the queue of rows
 * to insert (r must stay where it is until the queue is flushed). ?1 and ?2 (target, snapshot)
 * are bound once per snapshot by write_delta.
 */
static int open_span(struct store_writer *w, const struct region *r, int64_t *id, struct err *e)
{
    int64_t path = 0;
    int rc;
    if (r->path && (rc = path_id(w, r, &path, e)) < 0)
        return rc;
    *id = w->next_id++;
    w->queue[w->queued++] = (struct queued_span){r, *id, path, {0}};
    return w->queued == SPAN_BATCH ? flush_spans(w, e) : 0;
}

/* Ends a region at the previous snapshot. */
static int close_span(struct store_writer *w, int64_t id, struct err *e)
{
    store_bind_i64(&w->stmt[S_SPAN_MOVE], ":last", w->last_snap);
    store_bind_i64(&w->stmt[S_SPAN_MOVE], ":id", id);
    int rc = step_done(w, S_SPAN_MOVE, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&w->stmt[S_SPAN_DROP], ":id", id);
    return step_done(w, S_SPAN_DROP, e);
}

static int write_mem(struct store_writer *w, int64_t span, int64_t old_first,
                     const struct region *r, int64_t snap, struct err *e)
{
    int rc;
    if (old_first) {
        struct store_stmt *q = &w->stmt[S_MEM_CLOSE];
        store_bind_i64(q, ":last", w->last_snap);
        store_bind_i64(q, ":id", span);
        store_bind_i64(q, ":first", old_first);
        if ((rc = step_done(w, S_MEM_CLOSE, e)) < 0)
            return rc;
    }
    struct store_stmt *q = &w->stmt[S_MEM_OPEN];
    store_bind_i64(q, ":span", span);
    store_bind_i64(q, ":first", snap);
    store_bind_i64(q, ":last", STORE_OPEN_SPAN);
    const struct region_extra *x = region_extra(r);
    store_bind_i64(q, ":rss", (int64_t)x->rss);
    store_bind_i64(q, ":pss", (int64_t)x->pss);
    store_bind_i64(q, ":dirty", (int64_t)x->private_dirty);
    store_bind_i64(q, ":anon", (int64_t)x->anonymous);
    store_bind_i64(q, ":swap", (int64_t)x->swap);
    return step_done(w, S_MEM_OPEN, e);
}

static int load_alive(struct store_writer *w, int64_t head_id, int64_t head_seq, struct err *e);

/*
 * Makes the writer's state that of the target's newest committed snapshot. Another process may
 * have written snapshots of this target since our last one (a snap during a recording, two
 * recorders): then the regions it left open are what this snapshot is compared with.
 */
static int sync_head(struct store_writer *w, struct err *e)
{
    struct store_stmt *q = &w->stmt[S_HEAD];
    int64_t id = 0, seq = 0;
    store_bind_i64(q, ":target", w->target_id);
    int rc = store_stmt_step(q, e);
    if (rc == 1) {
        id = sqlite3_column_int64(q->s, 0);
        seq = sqlite3_column_int64(q->s, 1);
    }
    store_stmt_reset(q);
    if (rc < 0)
        return rc;
    if (seq < 0 || seq >= INT64_MAX / 2)
        return err_set(e, ERR_CORRUPT,
                       "cannot write the snapshot: target %lld's last seq in '%s' is %lld, which "
                       "vmsnap never writes -- a crafted or damaged file",
                       (long long)w->target_id, store_path(w->st), (long long)seq);
    /* A lent list that was refilled since it was written no longer says what is stored. */
    if (w->alive != &w->own && w->alive->gen != w->alive_gen)
        w->stale = 1;
    if (!w->stale && id == w->last_snap && seq == w->last_seq)
        return 0;
    if ((rc = load_alive(w, id, seq, e)) < 0)
        return rc;
    w->stale = 0;
    return 0;
}

/* Whether the target already has a snapshot labelled label: 1 yes, 0 no, or an error. */
static int label_taken(struct store_writer *w, const char *label, struct err *e)
{
    struct store_stmt *q = &w->stmt[S_LABEL];
    store_bind_static(q, ":label", label, -1);
    store_bind_i64(q, ":target", w->target_id);
    int rc = store_stmt_step(q, e);
    store_stmt_reset(q);
    return rc;
}

/*
 * A label names one snapshot of a target. An exact label that is taken is refused; a generated
 * one gets the first free "-N" suffix. *out is label itself or buf.
 */
static int pick_label(struct store_writer *w, const char *label, int mode, char *buf, size_t n,
                      const char **out, struct err *e)
{
    *out = label;
    if (!label)
        return 0;
    int rc = label_taken(w, label, e);
    if (rc <= 0)
        return rc;
    if (mode == STORE_LABEL_EXACT)
        return err_set(e, ERR_USAGE,
                       "label '%s' is already used by another snapshot of this target -- choose "
                       "another",
                       label);
    for (int k = 2;; k++) {
        if ((size_t)snprintf(buf, n, "%s-%d", label, k) >= n)
            return err_set(e, ERR_USAGE, "label '%.40s...' is too long to be made unique", label);
        if ((rc = label_taken(w, buf, e)) <= 0) {
            *out = buf;
            return rc;
        }
    }
}

static int insert_snapshot(struct store_writer *w, const struct region_list *l,
                           const struct capture_info *info, const char *label, int64_t mark,
                           int64_t duration_us, int64_t *snap, struct err *e)
{
    struct store_stmt *s = &w->stmt[S_SNAPSHOT];
    char taken[32];
    store_format_time(info->taken_at_ms, taken);
    store_bind_i64(s, ":target", w->target_id);
    store_bind_i64(s, ":seq", w->last_seq + 1);
    store_bind_text(s, ":taken_at", taken, -1);
    store_bind_text(s, ":label", label, -1);
    store_bind_i64(s, ":count", (int64_t)l->n);
    store_bind_i64(s, ":mapped", (int64_t)region_list_mapped(l));
    if (info->have_totals) {
        store_bind_i64(s, ":rss", (int64_t)info->totals.rss);
        store_bind_i64(s, ":pss", (int64_t)info->totals.pss);
        store_bind_i64(s, ":dirty", (int64_t)info->totals.private_dirty);
        store_bind_i64(s, ":anon", (int64_t)info->totals.anonymous);
        store_bind_i64(s, ":swap", (int64_t)info->totals.swap);
    }
    store_bind_text(s, ":detail", capture_detail_name(info->detail), -1);
    store_bind_text(s, ":method", info->method, -1);
    store_bind_i64(s, ":torn", (info->flags & CAPTURE_TORN) ? 1 : 0);
    store_bind_i64(s, ":retries", info->retries);
    store_bind_i64(s, ":duration", duration_us);
    if (mark != STORE_NO_MARK)
        store_bind_i64(s, ":mark", mark);
    int rc = step_done(w, S_SNAPSHOT, e);
    if (rc < 0)
        return rc;
    *snap = sqlite3_last_insert_rowid(w->st->db);
    return 0;
}

/* Notes the span id and open span_mem row of the new capture's region j, for the next write. */
static void keep_next(struct store_writer *w, size_t j, int64_t span, int64_t mem_first)
{
    if (!w->keep)
        return;
    w->next_span_id[j] = span;
    w->next_mem_first[j] = mem_first;
}

/* Merges the alive spans with the new capture by address and writes the difference. */
static int write_delta(struct store_writer *w, const struct region_list *l, int64_t snap,
                       int *changed, struct err *e)
{
    const struct region_list *a = w->alive;
    size_t i = 0, j = 0;
    int rc;
    *changed = 0;
    if (a == l)
        return 0; /* the lent list again, unchanged (sync_head checked): a steady tick */
    if (w->keep) {
        w->next_span_id = xgrow(w->next_span_id, &w->next_cap, l->n + 1, sizeof(int64_t));
        w->next_mem_first = xreallocarray(w->next_mem_first, w->next_cap, sizeof(int64_t));
    }
    w->queued = 0;
    for (int k = S_SPAN_OPEN; k <= S_SPAN_BATCH; k += S_SPAN_BATCH - S_SPAN_OPEN) {
        sqlite3_bind_int64(w->stmt[k].s, SPAN_TARGET_PARAM, w->target_id);
        sqlite3_bind_int64(w->stmt[k].s, SPAN_SNAP_PARAM, snap);
    }
    while (i < a->n || j < l->n) {
        const struct region *old = i < a->n ? &a->v[i] : NULL;
        const struct region *cur = j < l->n ? &l->v[j] : NULL;
        if (old && (!cur || old->start < cur->start)) {
            if ((rc = close_span(w, w->span_id[i], e)) < 0)
                return rc;
            *changed = 1;
            i++;
            continue;
        }
        if (old && old->start == cur->start && region_same_layout(old, cur)) {
            int64_t mem_first = w->mem_first[i];
            if ((cur->flags & REGION_HAS_MEM) && (!mem_first || !region_same_mem(old, cur))) {
                if ((rc = write_mem(w, w->span_id[i], mem_first, cur, snap, e)) < 0)
                    return rc;
                mem_first = snap;
                *changed = 1;
            }
            keep_next(w, j, w->span_id[i], mem_first);
            i++;
            j++;
            continue;
        }
        if (old && old->start == cur->start) {
            /* Same start, different attributes: the old region ends, a new one begins. */
            if ((rc = close_span(w, w->span_id[i], e)) < 0)
                return rc;
            i++;
        }
        int64_t id = 0;
        if ((rc = open_span(w, cur, &id, e)) < 0)
            return rc;
        if (cur->flags & REGION_HAS_MEM && (rc = write_mem(w, id, 0, cur, snap, e)) < 0)
            return rc;
        keep_next(w, j, id, cur->flags & REGION_HAS_MEM ? snap : 0);
        *changed = 1;
        j++;
    }
    return flush_spans(w, e);
}

/*
 * The category totals of l, written where they changed since the last snapshot: the open row
 * ends at the last snapshot and a new one opens at snap. Per-region rss is summed only when the
 * capture read it; otherwise the last known sums stand. next gets the new state.
 */
static int write_categories(struct store_writer *w, const struct region_list *l,
                            const struct capture_info *info, int64_t snap, struct cat_totals *next,
                            struct err *e)
{
    int mem_all[CAT_COUNT];
    memset(next, 0, sizeof(*next) * CAT_COUNT);
    for (int c = 0; c < CAT_COUNT; c++)
        mem_all[c] = 1;
    for (size_t i = 0; i < l->n; i++) {
        const struct region *r = &l->v[i];
        struct cat_totals *t = &next[r->category < CAT_COUNT ? r->category : CAT_ANON];
        t->regions++;
        t->mapped += r->end - r->start;
        t->committed += region_committed(r);
        t->rss += region_extra(r)->rss;
        mem_all[r->category < CAT_COUNT ? r->category : CAT_ANON] &=
            (r->flags & REGION_HAS_MEM) != 0;
    }
    for (int c = 0; c < CAT_COUNT; c++) {
        struct cat_totals *t = &next[c], *old = &w->cats[c];
        if (info->detail == DETAIL_SMAPS) {
            t->has_rss = mem_all[c];
        } else {
            t->has_rss = old->has_rss;
            t->rss = old->rss;
        }
        if (!t->has_rss)
            t->rss = 0;
        int same = old->first && t->regions && old->regions == t->regions &&
                   old->mapped == t->mapped && old->committed == t->committed &&
                   old->has_rss == t->has_rss && old->rss == t->rss;
        if (same) {
            t->first = old->first;
            continue;
        }
        const char *name = region_category_name(c);
        int rc;
        if (old->first) {
            struct store_stmt *q = &w->stmt[S_CAT_CLOSE];
            store_bind_i64(q, ":last", w->last_snap);
            store_bind_i64(q, ":target", w->target_id);
            store_bind_static(q, ":category", name, -1);
            store_bind_i64(q, ":first", old->first);
            if ((rc = step_done(w, S_CAT_CLOSE, e)) < 0)
                return rc;
        }
        if (!t->regions)
            continue;
        struct store_stmt *q = &w->stmt[S_CAT_OPEN];
        store_bind_i64(q, ":target", w->target_id);
        store_bind_static(q, ":category", name, -1);
        store_bind_i64(q, ":first", snap);
        store_bind_i64(q, ":regions", t->regions);
        store_bind_i64(q, ":mapped", (int64_t)t->mapped);
        store_bind_i64(q, ":committed", (int64_t)t->committed);
        if (t->has_rss)
            store_bind_i64(q, ":rss", (int64_t)t->rss);
        else
            store_bind_null(q, ":rss");
        if ((rc = step_done(w, S_CAT_OPEN, e)) < 0)
            return rc;
        t->first = snap;
    }
    return 0;
}

/* Loads the target's open category rows. */
static int load_categories(struct store_writer *w, struct err *e)
{
    struct store_stmt *cq = &w->stmt[S_CAT_LOAD];
    sqlite3_stmt *q = cq->s;
    int rc;
    memset(w->cats, 0, sizeof(w->cats));
    store_bind_i64(cq, ":target", w->target_id);
    while ((rc = store_stmt_step(cq, e)) == 1) {
        const unsigned char *name = sqlite3_column_text(q, 0);
        int c = name ? region_category_parse((const char *)name) : -1;
        if (c < 0)
            continue;
        struct cat_totals *t = &w->cats[c];
        t->first = sqlite3_column_int64(q, 1);
        t->regions = sqlite3_column_int64(q, 2);
        t->mapped = (uint64_t)sqlite3_column_int64(q, 3);
        t->committed = (uint64_t)sqlite3_column_int64(q, 4);
        t->has_rss = sqlite3_column_type(q, 5) != SQLITE_NULL;
        t->rss = (uint64_t)sqlite3_column_int64(q, 5);
    }
    store_stmt_reset(cq);
    return rc;
}

/* The span ids (and open span_mem rows) noted for the capture just written become the state;
 * so do its category totals, when given. */
static void take_next_ids(struct store_writer *w, const struct cat_totals *cats)
{
    if (cats)
        memcpy(w->cats, cats, sizeof(w->cats));
    int64_t *t1 = w->span_id, *t2 = w->mem_first;
    size_t cap = w->id_cap;
    w->span_id = w->next_span_id;
    w->mem_first = w->next_mem_first;
    w->id_cap = w->next_cap;
    w->next_span_id = t1;
    w->next_mem_first = t2;
    w->next_cap = cap;
}

/* Keeps the remembered memory figures in step with what was stored: a capture without
 * per-region detail leaves the stored figures (and so the remembered ones) as they were. */
static void carry_mem(struct store_writer *w, struct region_list *l)
{
    size_t i = 0;
    for (size_t j = 0; j < l->n; j++) {
        struct region *r = &l->v[j];
        if (r->flags & REGION_HAS_MEM || !w->next_mem_first[j])
            continue;
        while (i < w->alive->n && w->alive->v[i].start < r->start)
            i++;
        if (i < w->alive->n && w->span_id[i] == w->next_span_id[j]) {
            const struct region_extra *o = region_extra(&w->alive->v[i]);
            struct region_extra *x = region_extra_set(l, r);
            x->rss = o->rss;
            x->pss = o->pss;
            x->private_dirty = o->private_dirty;
            x->anonymous = o->anonymous;
            x->swap = o->swap;
            r->flags |= REGION_HAS_MEM;
        }
    }
}

int store_writer_write(struct store_writer *w, const struct region_list *l,
                       const struct capture_info *info, const struct store_snap_opts *o,
                       int64_t duration_us, int64_t *snap_id, struct err *e)
{
    const char *label = o ? o->label : NULL;
    int64_t snap = 0;
    int changed = 0;
    char unique[600];
    /* The write lock is taken now, so what is read below is what we build on. Inside a
     * caller's transaction (an import of several files) the snapshot is a savepoint of it. */
    int rc = store_begin(w->st, e);
    if (rc < 0)
        return rc;
    int new_target = w->target_id == 0;
    w->keep = !(o && o->last);
    if (new_target) {
        /* Found, when another process created the target meanwhile: sync_head loads it. */
        if ((rc = store_target_ensure(w->st, w->target, info->taken_at_ms, w->parent_target_id,
                                      &w->target_id, e)) < 0)
            goto rollback;
    }
    if ((rc = sync_head(w, e)) < 0)
        goto rollback;
    if ((rc = pick_label(w, label, o ? o->label_mode : STORE_LABEL_EXACT, unique, sizeof(unique),
                         &label, e)) < 0)
        goto rollback;
    int64_t mark = o ? o->mark : STORE_NO_MARK;
    if ((rc = insert_snapshot(w, l, info, label, mark, duration_us, &snap, e)) < 0)
        goto rollback;
    if (mark > 0 && o->recorder) {
        /* The mark is taken exactly when its snapshot is: in the same transaction. */
        store_bind_i64(&w->stmt[S_MARK_TAKEN], ":mark", mark);
        store_bind_i64(&w->stmt[S_MARK_TAKEN], ":recorder", o->recorder);
        if ((rc = step_done(w, S_MARK_TAKEN, e)) < 0)
            goto rollback;
    }
    if ((rc = write_delta(w, l, snap, &changed, e)) < 0)
        goto rollback;
    /* Nothing opened, closed or changed its figures: the totals are what they were. */
    struct cat_totals cats[CAT_COUNT];
    if (changed && (rc = write_categories(w, l, info, snap, cats, e)) < 0)
        goto rollback;
    if ((rc = store_commit(w->st, e)) < 0)
        goto rolled_back;
    w->last_snap = snap;
    w->last_seq++;
    if (changed && !w->keep) {
        /* No write follows: the state it would build on need not be kept (a first snapshot
         * of 60k regions would copy them all). Should one come, it loads what is committed. */
        w->stale = 1;
    } else if (o && o->lend) {
        /* The caller keeps l as it is until the next write: it is the state, no copy. Its
         * regions carry no figures where the capture read none; the next capture has the same
         * detail, so there is nothing to compare them with. */
        if (changed)
            take_next_ids(w, cats);
        w->alive = l;
        w->alive_gen = l->gen;
        /* What was loaded or copied is not needed again (8 MiB at 60,000 regions). */
        region_list_release(&w->own);
        region_list_release(&w->next);
    } else if (changed || w->alive != &w->own) {
        if (changed)
            memcpy(w->cats, cats, sizeof(cats));
        region_list_copy(&w->next, l);
        if (changed)
            carry_mem(w, &w->next);
        struct region_list tmp = w->own;
        w->own = w->next;
        w->next = tmp;
        w->alive = &w->own;
        if (changed)
            take_next_ids(w, NULL);
    }
    *snap_id = snap;
    return 0;
rollback:
    store_rollback(w->st);
rolled_back:
    /* What was learnt inside the transaction (a target row, span ids, path ids) may have been
     * rolled back with it: the next write starts again from what is committed. */
    w->stale = 1;
    if (new_target)
        w->target_id = 0;
    path_map_release(&w->paths);
    return rc;
}

/* Loads the target's open spans: what its newest snapshot (head_id, head_seq) saw. */
static int load_alive(struct store_writer *w, int64_t head_id, int64_t head_seq, struct err *e)
{
    static const char *sql = "SELECT p.id, " STORE_REGION_COLUMNS_P(
        "n.path") ", " STORE_REGION_FIGURES_M
                  ", m.first_snap FROM spans_open p LEFT JOIN paths n ON n.id = p.path_id "
                  "LEFT JOIN span_mem m ON m.span_id = p.id AND m.last_snap = :open "
                  "WHERE p.id BETWEEN :lo AND :hi";
    static const char *id_sql =
        "SELECT max(coalesce((SELECT max(id) FROM spans_open WHERE id BETWEEN :lo AND :hi), 0), "
        "coalesce((SELECT max(id) FROM spans WHERE id BETWEEN :lo AND :hi), 0))";
    static const char *what = "cannot load the previous snapshot";
    int64_t lo = w->target_id << 32, hi = lo + 0xffffffffLL;
    struct store_stmt q;
    region_list_clear(&w->own);
    w->alive = &w->own;
    w->last_snap = head_id;
    w->last_seq = head_seq;
    int rc = store_stmt_prepare(w->st, id_sql, what, &q, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&q, ":lo", lo);
    store_bind_i64(&q, ":hi", hi);
    w->next_id = lo;
    if ((rc = store_stmt_step(&q, e)) == 1 && sqlite3_column_int64(q.s, 0) >= lo)
        w->next_id = sqlite3_column_int64(q.s, 0) + 1;
    store_stmt_finalize(&q);
    if (rc < 0)
        return rc;

    if ((rc = store_stmt_prepare(w->st, sql, what, &q, e)) < 0)
        return rc;
    sqlite3_stmt *s = q.s;
    store_bind_i64(&q, ":open", STORE_OPEN_SPAN);
    store_bind_i64(&q, ":lo", lo);
    store_bind_i64(&q, ":hi", hi);
    struct region_list *l = &w->own;
    /* As many regions as the head snapshot has: the array is sized once. */
    int64_t count = 0;
    if (store_query_i64(w->st, "SELECT region_count FROM snapshots WHERE id = ?1", head_id, 0,
                        &count, NULL) == 0 &&
        count > 0)
        region_list_reserve(l, store_size_hint(count));
    /* Rows come in rowid order; the ids are sorted along with the regions below. */
    struct pair {
        int64_t span, mem_first;
    } *ids = NULL;
    size_t nids = 0, cap = 0;
    while ((rc = store_stmt_step(&q, e)) == 1) {
        struct region *r = region_list_push(l);
        store_row_to_region(s, 1, l, r);
        ids = xgrow(ids, &cap, nids + 1, sizeof(*ids));
        ids[nids].span = sqlite3_column_int64(s, 0);
        ids[nids].mem_first = sqlite3_column_int64(s, 1 + RCOL_COUNT);
        nids++;
    }
    store_stmt_finalize(&q);
    if (rc < 0) {
        free(ids);
        return rc;
    }
    size_t *order = store_sort_order(l);
    w->span_id = xgrow(w->span_id, &w->id_cap, nids + 1, sizeof(int64_t));
    w->mem_first = xreallocarray(w->mem_first, w->id_cap, sizeof(int64_t));
    for (size_t k = 0; k < nids; k++) {
        w->span_id[k] = ids[order[k]].span;
        w->mem_first[k] = ids[order[k]].mem_first;
    }
    /* The regions are put in address order where they are, one cycle of the permutation at a
     * time (a sorted copy would be 4.8 MB more at 60,000 regions). A first snapshot's spans
     * come in order already: then nothing moves. */
    for (size_t i = 0; i < nids; i++) {
        if (order[i] == i)
            continue;
        struct region held = l->v[i];
        size_t j = i;
        for (;;) {
            size_t from = order[j];
            order[j] = j;
            if (from == i) {
                l->v[j] = held;
                break;
            }
            l->v[j] = l->v[from];
            j = from;
        }
    }
    free(order);
    free(ids);
    return load_categories(w, e);
}

int64_t store_writer_target(const struct store_writer *w)
{
    return w->target_id;
}

void store_writer_set_parent(struct store_writer *w, int64_t parent_target_id)
{
    w->parent_target_id = parent_target_id;
}

int store_writer_open(struct store *st, const struct capture_target *t, struct store_writer **out,
                      struct err *e)
{
    struct store_writer *w = xcalloc(1, sizeof(*w));
    int rc;
    w->st = st;
    w->target = t;
    region_list_init(&w->own);
    region_list_init(&w->next);
    w->alive = &w->own;
    *out = NULL;
    for (int k = 0; k < S_COUNT; k++) {
        const char *sql = writer_sql[k];
        if (!sql) {
            char **own = &w->span_sql[k == S_SPAN_BATCH];
            sql = *own = span_insert_sql(k == S_SPAN_BATCH ? SPAN_BATCH : 1);
        }
        if ((rc = store_stmt_prepare(st, sql, "cannot write the snapshot", &w->stmt[k], e)) < 0)
            goto fail;
    }
    if ((rc = store_target_find(st, t, &w->target_id, e)) < 0)
        goto fail;
    /* The alive regions are loaded by the first write, inside its transaction. */
    w->stale = 1;
    *out = w;
    return 0;
fail:
    store_writer_close(w);
    return rc;
}

void store_writer_close(struct store_writer *w)
{
    if (!w)
        return;
    for (int k = 0; k < S_COUNT; k++)
        store_stmt_finalize(&w->stmt[k]);
    free(w->span_sql[0]);
    free(w->span_sql[1]);
    region_list_release(&w->own);
    region_list_release(&w->next);
    free(w->span_id);
    free(w->mem_first);
    free(w->next_span_id);
    free(w->next_mem_first);
    path_map_release(&w->paths);
    free(w);
}
