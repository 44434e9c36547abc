/*
 * The rows a snapshot's write adds or ends: spans of regions (new ones inserted in batches), the
 * memory figures they had, the totals of each category, and the paths they name. The writer
 * (store_write.c) runs them inside its transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_writer.h"
#include "util/xalloc.h"

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

void store_path_map_release(struct path_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].path);
    free(m->slots);
    memset(m, 0, sizeof(*m));
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
    if ((rc = store_writer_run(w, S_PATH_ADD, e)) < 0)
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
    int rc = store_writer_run(w, S_SPAN_MOVE, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&w->stmt[S_SPAN_DROP], ":id", id);
    return store_writer_run(w, S_SPAN_DROP, e);
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
        if ((rc = store_writer_run(w, S_MEM_CLOSE, e)) < 0)
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
    return store_writer_run(w, S_MEM_OPEN, e);
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
int store_writer_delta(struct store_writer *w, const struct region_list *l, int64_t snap,
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

/* Notes the class of a category interval just opened or closed (every time: a mask of the
 * classes noted would outlive a rolled-back transaction; the row costs one seek when known). */
static int note_category_class(struct store_writer *w, int n, struct err *e)
{
    struct store_stmt *q = &w->stmt[S_CAT_CLASS];
    store_bind_i64(q, ":target", w->target_id);
    store_bind_i64(q, ":class", n);
    return store_writer_run(w, S_CAT_CLASS, e);
}

/*
 * The category totals of l, written where they changed since the last snapshot: the open row
 * ends at the last snapshot and a new one opens at snap. Per-region rss is summed only when the
 * capture read it; otherwise the last known sums stand. next gets the new state.
 */
int store_writer_categories(struct store_writer *w, const struct region_list *l,
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
            if ((rc = store_writer_run(w, S_CAT_CLOSE, e)) < 0 ||
                (rc = note_category_class(w, store_span_class(w->last_snap - old->first), e)) < 0)
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
        if ((rc = store_writer_run(w, S_CAT_OPEN, e)) < 0 ||
            (rc = note_category_class(w, store_span_class(STORE_OPEN_SPAN - snap), e)) < 0)
            return rc;
        t->first = snap;
    }
    return 0;
}
