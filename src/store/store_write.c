/*
 * Writing snapshots as deltas. The writer holds the target's alive regions (the open spans) in
 * memory, merges each new capture against them by address, and writes only what opened, closed
 * or changed its memory figures. An unchanged tick writes one snapshots row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_writer.h"
#include "util/xalloc.h"

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
                   "category_spans c WHERE target_id = :target AND last_snap = 9223372036854775807 "
                   "AND " STORE_SPAN_CLASS("c") " = 32",
    [S_CAT_CLASS] = STORE_CATEGORY_CLASS_ADD,
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
    int rc = store_writer_run(w, S_SNAPSHOT, e);
    if (rc < 0)
        return rc;
    *snap = sqlite3_last_insert_rowid(w->st->db);
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
                                      w->origin, &w->target_id, e)) < 0)
            goto rollback;
    }
    /* A target recorded before (or by another process meanwhile): its row says what ps says
     * now. */
    if (!w->titled && w->target->cmdline &&
        (rc = store_target_retitle(w->st, w->target_id, w->target->cmdline, e)) < 0)
        goto rollback;
    w->titled = 1;
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
        if ((rc = store_writer_run(w, S_MARK_TAKEN, e)) < 0)
            goto rollback;
    }
    if ((rc = store_writer_delta(w, l, snap, &changed, e)) < 0)
        goto rollback;
    /* Nothing opened, closed or changed its figures: the totals are what they were. */
    struct cat_totals cats[CAT_COUNT];
    if (changed && (rc = store_writer_categories(w, l, info, snap, cats, e)) < 0)
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
    store_path_map_release(&w->paths);
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

void store_writer_set_origin(struct store_writer *w, const char *origin)
{
    w->origin = origin;
}

static void writer_stmts_drop(struct store *st)
{
    struct store_writer_stmts *x = st->writer_stmts;
    if (!x || --x->refs > 0)
        return;
    for (int k = 0; k < S_COUNT; k++)
        store_stmt_finalize(&x->stmt[k]);
    free(x->span_sql[0]);
    free(x->span_sql[1]);
    free(x);
    st->writer_stmts = NULL;
}

/* The store's writer statements, prepared by the first writer: 0, or an error. */
static int writer_stmts_take(struct store *st, struct err *e)
{
    if (st->writer_stmts) {
        st->writer_stmts->refs++;
        return 0;
    }
    struct store_writer_stmts *x = xcalloc(1, sizeof(*x));
    st->writer_stmts = x;
    x->refs = 1;
    for (int k = 0; k < S_COUNT; k++) {
        const char *sql = writer_sql[k];
        if (!sql) {
            char **own = &x->span_sql[k == S_SPAN_BATCH];
            sql = *own = span_insert_sql(k == S_SPAN_BATCH ? SPAN_BATCH : 1);
        }
        int rc = store_stmt_prepare(st, sql, "cannot write the snapshot", &x->stmt[k], e);
        if (rc < 0) {
            writer_stmts_drop(st);
            return rc;
        }
    }
    return 0;
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
    if ((rc = writer_stmts_take(st, e)) < 0) {
        free(w);
        return rc;
    }
    w->stmt = st->writer_stmts->stmt;
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

int store_writer_rolled_back(struct store_writer *w, struct err *e)
{
    w->stale = 1;
    w->titled = 0;
    if (!w->target_id)
        return 0;
    int64_t id = 0;
    int rc = store_query_i64(w->st, "SELECT id FROM targets WHERE id = ?", w->target_id, 0, &id, e);
    if (rc == 1)
        w->target_id = 0; /* created in the transaction rolled back */
    return rc < 0 ? rc : 0;
}

void store_writer_close(struct store_writer *w)
{
    if (!w)
        return;
    writer_stmts_drop(w->st);
    region_list_release(&w->own);
    region_list_release(&w->next);
    free(w->span_id);
    free(w->mem_first);
    free(w->next_span_id);
    free(w->next_mem_first);
    store_path_map_release(&w->paths);
    free(w);
}
