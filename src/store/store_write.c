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
 * values are ?(3 + k * SPAN_VALUES) onwards, in this order. */
#define SPAN_VALUES 16

static const char *const writer_sql[S_COUNT] = {
    [S_SNAPSHOT] =
        "INSERT INTO snapshots (target_id, seq, taken_at, label, region_count, mapped_bytes, "
        "rss_bytes, pss_bytes, private_dirty_bytes, anon_bytes, swap_bytes, detail, method, torn, "
        "retries, duration_us, mark) VALUES (:target, :seq, :taken_at, :label, :count, :mapped, "
        ":rss, :pss, :dirty, :anon, :swap, :detail, :method, :torn, :retries, :duration, :mark)",
    /* A region ends: it moves, same id, from spans_open to spans with its last snapshot. */
    [S_SPAN_MOVE] =
        "INSERT INTO spans (id, target_id, first_snap, last_snap, start, \"end\", perms, "
        "offset, dev, inode, path_id, category, deleted, state, type, protect, "
        "alloc_base, alloc_protect, owner) SELECT id, target_id, first_snap, ?1, start, "
        "\"end\", perms, offset, dev, inode, path_id, category, deleted, state, type, "
        "protect, alloc_base, alloc_protect, owner FROM spans_open WHERE id = ?2",
    [S_SPAN_DROP] = "DELETE FROM spans_open WHERE id = ?1",
    /* One new region; SPAN_COLUMNS and bind_span say how it is bound. */
    [S_SPAN_OPEN] = NULL,
    [S_MEM_CLOSE] = "UPDATE span_mem SET last_snap = :last WHERE span_id = :id AND first_snap = "
                    ":first",
    [S_MEM_OPEN] = "INSERT INTO span_mem (span_id, first_snap, last_snap, rss, pss, "
                   "private_dirty, anonymous, swap) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_PATH_FIND] = "SELECT id FROM paths WHERE path = :path",
    [S_PATH_ADD] = "INSERT INTO paths (path) VALUES (:path)",
    /* The target's newest committed snapshot, read inside the write transaction. */
    [S_HEAD] = "SELECT id, seq FROM snapshots WHERE target_id = ?1 ORDER BY seq DESC LIMIT 1",
    [S_LABEL] = "SELECT id FROM snapshots WHERE label = ?1 AND target_id = ?2",
    [S_CAT_CLOSE] = "UPDATE category_spans SET last_snap = ?1 WHERE target_id = ?2 AND category = "
                    "?3 AND first_snap = ?4",
    [S_CAT_OPEN] = "INSERT INTO category_spans (target_id, category, first_snap, last_snap, "
                   "regions, mapped, committed, rss) VALUES (?1, ?2, ?3, 9223372036854775807, ?4, "
                   "?5, ?6, ?7)",
    [S_CAT_LOAD] = "SELECT category, first_snap, regions, mapped, committed, rss FROM "
                   "category_spans WHERE target_id = ?1 AND last_snap = 9223372036854775807",
    [S_MARK_TAKEN] = "UPDATE recorders SET marks_done = max(marks_done, ?1) WHERE id = ?2",
    [S_SPAN_BATCH] = NULL,
};

/* INSERT INTO spans_open for rows new regions, numbered as SPAN_VALUES says. */
static char *span_insert_sql(int rows)
{
    static const char head[] =
        "INSERT INTO spans_open (id, start, \"end\", perms, offset, dev, inode, path_id, "
        "category, deleted, state, type, protect, alloc_base, alloc_protect, owner, target_id, "
        "first_snap) VALUES ";
    size_t cap = sizeof(head) + (size_t)rows * SPAN_VALUES * 8 + (size_t)rows * 16;
    char *sql = xmalloc(cap), *p = sql;
    p += snprintf(p, cap, "%s", head);
    for (int k = 0; k < rows; k++) {
        *p++ = k ? ',' : ' ';
        *p++ = '(';
        for (int c = 0; c < SPAN_VALUES; c++)
            p += snprintf(p, cap - (size_t)(p - sql), "?%d,", 3 + k * SPAN_VALUES + c);
        p += snprintf(p, cap - (size_t)(p - sql), "?1,?2)");
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
    sqlite3_stmt *stmt[S_COUNT];
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
    sqlite3_stmt *s = w->stmt[k];
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return store_sql_err(w->st, rc, "cannot write the snapshot", writer_sql[k], e);
    return 0;
}

static void bind_i64(sqlite3_stmt *s, const char *name, int64_t v)
{
    sqlite3_bind_int64(s, sqlite3_bind_parameter_index(s, name), v);
}

static void bind_text(sqlite3_stmt *s, const char *name, const char *v, int len)
{
    int i = sqlite3_bind_parameter_index(s, name);
    if (v)
        sqlite3_bind_text(s, i, v, len, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
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
    sqlite3_stmt *s = w->stmt[S_PATH_FIND];
    bind_text(s, ":path", r->path, (int)r->path_len);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        path_map_put(&w->paths, r->path, r->path_len, *id);
        return 0;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_err(w->st, rc, "cannot write the snapshot", writer_sql[S_PATH_FIND], e);
    bind_text(w->stmt[S_PATH_ADD], ":path", r->path, (int)r->path_len);
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

/* Binds new region r (row k of a statement, as SPAN_VALUES says); dev holds its device text. */
static void bind_span(sqlite3_stmt *s, int k, const struct region *r, int64_t id, int64_t path,
                      char dev[24])
{
    int i = 3 + k * SPAN_VALUES;
    sqlite3_bind_int64(s, i, id);
    sqlite3_bind_int64(s, i + 1, (int64_t)r->start);
    sqlite3_bind_int64(s, i + 2, (int64_t)r->end);
    sqlite3_bind_text(s, i + 3, r->perms, 4, SQLITE_STATIC);
    sqlite3_bind_int64(s, i + 4, (int64_t)r->offset);
    sqlite3_bind_text(s, i + 5, dev, dev_text(r, dev), SQLITE_STATIC);
    sqlite3_bind_int64(s, i + 6, (int64_t)r->inode);
    if (r->path)
        sqlite3_bind_int64(s, i + 7, path);
    else
        sqlite3_bind_null(s, i + 7);
    sqlite3_bind_text(s, i + 8, region_category_name(r->category), -1, SQLITE_STATIC);
    sqlite3_bind_int(s, i + 9, (r->flags & REGION_DELETED) ? 1 : 0);
    if (r->flags & REGION_HAS_WIN) {
        const struct region_extra *x = region_extra(r);
        bind_opt_text(s, i + 10, region_win_state_name(x->state));
        bind_opt_text(s, i + 11, region_win_type_name(x->type));
        sqlite3_bind_int64(s, i + 12, x->protect);
        sqlite3_bind_int64(s, i + 13, (int64_t)x->alloc_base);
        sqlite3_bind_int64(s, i + 14, x->alloc_protect);
    } else {
        for (int c = 10; c <= 14; c++)
            sqlite3_bind_null(s, i + c);
    }
    if (r->owner)
        sqlite3_bind_text(s, i + 15, r->owner, (int)r->owner_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i + 15);
}

/* Inserts the queued new regions: a full batch in one statement, a shorter one row by row. */
static int flush_spans(struct store_writer *w, struct err *e)
{
    int full = w->queued == SPAN_BATCH;
    sqlite3_stmt *s = w->stmt[full ? S_SPAN_BATCH : S_SPAN_OPEN];
    for (int k = 0; k < w->queued; k++) {
        struct queued_span *q = &w->queue[k];
        bind_span(s, full ? k : 0, q->r, q->id, q->path, q->dev);
        if (full && k + 1 < w->queued)
            continue;
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) {
            w->queued = 0;
            return store_sql_err(w->st, rc, "cannot write the snapshot",
                                 "INSERT INTO spans_open ...", e);
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
    sqlite3_bind_int64(w->stmt[S_SPAN_MOVE], 1, w->last_snap);
    sqlite3_bind_int64(w->stmt[S_SPAN_MOVE], 2, id);
    int rc = step_done(w, S_SPAN_MOVE, e);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(w->stmt[S_SPAN_DROP], 1, id);
    return step_done(w, S_SPAN_DROP, e);
}

static int write_mem(struct store_writer *w, int64_t span, int64_t old_first,
                     const struct region *r, int64_t snap, struct err *e)
{
    int rc;
    if (old_first) {
        sqlite3_stmt *s = w->stmt[S_MEM_CLOSE];
        bind_i64(s, ":last", w->last_snap);
        bind_i64(s, ":id", span);
        bind_i64(s, ":first", old_first);
        if ((rc = step_done(w, S_MEM_CLOSE, e)) < 0)
            return rc;
    }
    sqlite3_stmt *s = w->stmt[S_MEM_OPEN];
    sqlite3_bind_int64(s, 1, span);
    sqlite3_bind_int64(s, 2, snap);
    sqlite3_bind_int64(s, 3, STORE_OPEN_SPAN);
    const struct region_extra *x = region_extra(r);
    sqlite3_bind_int64(s, 4, (int64_t)x->rss);
    sqlite3_bind_int64(s, 5, (int64_t)x->pss);
    sqlite3_bind_int64(s, 6, (int64_t)x->private_dirty);
    sqlite3_bind_int64(s, 7, (int64_t)x->anonymous);
    sqlite3_bind_int64(s, 8, (int64_t)x->swap);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_sql_err(w->st, rc, "cannot write the snapshot", writer_sql[S_MEM_OPEN], e);
    return 0;
}

static int load_alive(struct store_writer *w, int64_t head_id, int64_t head_seq, struct err *e);

/*
 * Makes the writer's state that of the target's newest committed snapshot. Another process may
 * have written snapshots of this target since our last one (a snap during a recording, two
 * recorders): then the regions it left open are what this snapshot is compared with.
 */
static int sync_head(struct store_writer *w, struct err *e)
{
    sqlite3_stmt *s = w->stmt[S_HEAD];
    int64_t id = 0, seq = 0;
    sqlite3_bind_int64(s, 1, w->target_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        id = sqlite3_column_int64(s, 0);
        seq = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_sql_err(w->st, rc, "cannot write the snapshot", writer_sql[S_HEAD], e);
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
    sqlite3_stmt *s = w->stmt[S_LABEL];
    sqlite3_bind_text(s, 1, label, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, w->target_id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc != SQLITE_DONE)
        return store_sql_err(w->st, rc, "cannot write the snapshot", writer_sql[S_LABEL], e);
    return 0;
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
    sqlite3_stmt *s = w->stmt[S_SNAPSHOT];
    char taken[32];
    store_format_time(info->taken_at_ms, taken);
    bind_i64(s, ":target", w->target_id);
    bind_i64(s, ":seq", w->last_seq + 1);
    bind_text(s, ":taken_at", taken, -1);
    bind_text(s, ":label", label, -1);
    bind_i64(s, ":count", (int64_t)l->n);
    bind_i64(s, ":mapped", (int64_t)region_list_mapped(l));
    if (info->have_totals) {
        bind_i64(s, ":rss", (int64_t)info->totals.rss);
        bind_i64(s, ":pss", (int64_t)info->totals.pss);
        bind_i64(s, ":dirty", (int64_t)info->totals.private_dirty);
        bind_i64(s, ":anon", (int64_t)info->totals.anonymous);
        bind_i64(s, ":swap", (int64_t)info->totals.swap);
    }
    bind_text(s, ":detail", capture_detail_name(info->detail), -1);
    bind_text(s, ":method", info->method, -1);
    bind_i64(s, ":torn", (info->flags & CAPTURE_TORN) ? 1 : 0);
    bind_i64(s, ":retries", info->retries);
    bind_i64(s, ":duration", duration_us);
    if (mark != STORE_NO_MARK)
        bind_i64(s, ":mark", mark);
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
    sqlite3_bind_int64(w->stmt[S_SPAN_OPEN], 1, w->target_id);
    sqlite3_bind_int64(w->stmt[S_SPAN_OPEN], 2, snap);
    sqlite3_bind_int64(w->stmt[S_SPAN_BATCH], 1, w->target_id);
    sqlite3_bind_int64(w->stmt[S_SPAN_BATCH], 2, snap);
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
            sqlite3_stmt *q = w->stmt[S_CAT_CLOSE];
            sqlite3_bind_int64(q, 1, w->last_snap);
            sqlite3_bind_int64(q, 2, w->target_id);
            sqlite3_bind_text(q, 3, name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 4, old->first);
            if ((rc = step_done(w, S_CAT_CLOSE, e)) < 0)
                return rc;
        }
        if (!t->regions)
            continue;
        sqlite3_stmt *q = w->stmt[S_CAT_OPEN];
        sqlite3_bind_int64(q, 1, w->target_id);
        sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, snap);
        sqlite3_bind_int64(q, 4, t->regions);
        sqlite3_bind_int64(q, 5, (int64_t)t->mapped);
        sqlite3_bind_int64(q, 6, (int64_t)t->committed);
        if (t->has_rss)
            sqlite3_bind_int64(q, 7, (int64_t)t->rss);
        else
            sqlite3_bind_null(q, 7);
        if ((rc = step_done(w, S_CAT_OPEN, e)) < 0)
            return rc;
        t->first = snap;
    }
    return 0;
}

/* Loads the target's open category rows. */
static int load_categories(struct store_writer *w, struct err *e)
{
    sqlite3_stmt *q = w->stmt[S_CAT_LOAD];
    int rc;
    memset(w->cats, 0, sizeof(w->cats));
    sqlite3_bind_int64(q, 1, w->target_id);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
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
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return store_sql_err(w->st, rc, "cannot load the previous snapshot", writer_sql[S_CAT_LOAD],
                             e);
    return 0;
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
        sqlite3_bind_int64(w->stmt[S_MARK_TAKEN], 1, mark);
        sqlite3_bind_int64(w->stmt[S_MARK_TAKEN], 2, o->recorder);
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
    static const char *sql =
        "SELECT p.id, p.start, p.\"end\", p.perms, p.offset, p.dev, p.inode, n.path, p.category, "
        "p.deleted, p.state, p.type, p.protect, p.alloc_base, p.alloc_protect, p.owner, "
        "m.rss, m.pss, m.private_dirty, m.anonymous, m.swap, m.first_snap "
        "FROM spans_open p LEFT JOIN paths n ON n.id = p.path_id "
        "LEFT JOIN span_mem m ON m.span_id = p.id AND m.last_snap = :open "
        "WHERE p.id BETWEEN :lo AND :hi";
    static const char *id_sql =
        "SELECT max(coalesce((SELECT max(id) FROM spans_open WHERE id BETWEEN ?1 AND ?2), 0), "
        "coalesce((SELECT max(id) FROM spans WHERE id BETWEEN ?1 AND ?2), 0))";
    int64_t lo = w->target_id << 32, hi = lo + 0xffffffffLL;
    sqlite3_stmt *s = NULL;
    region_list_clear(&w->own);
    w->alive = &w->own;
    w->last_snap = head_id;
    w->last_seq = head_seq;
    int rc = store_prepare(w->st, id_sql, &s, e);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, lo);
    sqlite3_bind_int64(s, 2, hi);
    w->next_id = lo;
    if ((rc = sqlite3_step(s)) == SQLITE_ROW && sqlite3_column_int64(s, 0) >= lo)
        w->next_id = sqlite3_column_int64(s, 0) + 1;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW)
        return store_sql_err(w->st, rc, "cannot load the previous snapshot", id_sql, e);

    if ((rc = store_prepare(w->st, sql, &s, e)) < 0)
        return rc;
    bind_i64(s, ":open", STORE_OPEN_SPAN);
    bind_i64(s, ":lo", lo);
    bind_i64(s, ":hi", hi);
    struct region_list *l = &w->own;
    /* As many regions as the head snapshot has: the array is sized once. */
    sqlite3_stmt *c = NULL;
    if (store_prepare(w->st, "SELECT region_count FROM snapshots WHERE id = ?1", &c, NULL) == 0) {
        sqlite3_bind_int64(c, 1, head_id);
        if (sqlite3_step(c) == SQLITE_ROW && sqlite3_column_int64(c, 0) > 0)
            region_list_reserve(l, store_size_hint(sqlite3_column_int64(c, 0)));
        sqlite3_finalize(c);
    }
    /* Rows come in rowid order; the ids are sorted along with the regions below. */
    struct pair {
        int64_t span, mem_first;
    } *ids = NULL;
    size_t nids = 0, cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct region *r = region_list_push(l);
        store_row_to_region(s, 1, l, r);
        ids = xgrow(ids, &cap, nids + 1, sizeof(*ids));
        ids[nids].span = sqlite3_column_int64(s, 0);
        ids[nids].mem_first = sqlite3_column_int64(s, 21);
        nids++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        free(ids);
        return store_sql_err(w->st, rc, "cannot load the previous snapshot", sql, e);
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
        char *sql = writer_sql[k] ? NULL : span_insert_sql(k == S_SPAN_BATCH ? SPAN_BATCH : 1);
        rc = store_prepare(st, sql ? sql : writer_sql[k], &w->stmt[k], e);
        free(sql);
        if (rc < 0)
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
        sqlite3_finalize(w->stmt[k]);
    region_list_release(&w->own);
    region_list_release(&w->next);
    free(w->span_id);
    free(w->mem_first);
    free(w->next_span_id);
    free(w->next_mem_first);
    path_map_release(&w->paths);
    free(w);
}
