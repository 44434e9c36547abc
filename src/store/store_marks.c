/*
 * Marks: the recorders running on a database say so in `recorders`, and `vmsnap mark` adds a
 * row to `marks` that each of them takes as a labelled snapshot. A recorder notes the mark it
 * took in the transaction of the snapshot that took it (store_writer_write), so a mark is taken
 * once, whatever happens around it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

static void now_text(char out[32])
{
    store_format_time(plat_realtime_ms(), out);
}

int store_recorder_register(struct store *st, const struct store_proc *self, int64_t target_pid,
                            int64_t *id, struct err *e)
{
    /* Marks already there were asked of the recorders that ran then, not of this one. */
    static const char *sql =
        "INSERT INTO recorders (host, boot_id, pid, start_time, target_pid, started_at, "
        "marks_done) VALUES (:host, :boot, :pid, :start, :target_pid, :now, (SELECT "
        "coalesce(max(id), 0) FROM marks))";
    struct store_stmt q;
    char now[32];
    int rc = store_stmt_prepare(st, sql, "cannot register the recorder", &q, e);
    if (rc < 0)
        return rc;
    now_text(now);
    store_bind_static(&q, ":host", self->host, -1);
    store_bind_static(&q, ":boot", self->boot_id, -1);
    store_bind_i64(&q, ":pid", self->pid);
    store_bind_i64(&q, ":start", (int64_t)self->start_time);
    store_bind_i64(&q, ":target_pid", target_pid);
    store_bind_static(&q, ":now", now, -1);
    rc = store_stmt_run(&q, e);
    store_stmt_finalize(&q);
    if (rc < 0)
        return rc;
    *id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

void store_recorder_unregister(struct store *st, int64_t id)
{
    struct store_stmt q;
    struct err e = {0};
    if (store_stmt_prepare(st, "DELETE FROM recorders WHERE id = :id", "cannot unregister", &q,
                           &e) < 0)
        return;
    store_bind_i64(&q, ":id", id);
    store_stmt_run(&q, &e);
    store_stmt_finalize(&q);
}

int store_marks_pending(struct store *st, int64_t id, int64_t after, struct store_mark **v,
                        size_t *n, struct err *e)
{
    static const char *sql = "SELECT m.id, m.label FROM marks m, recorders r WHERE r.id = :id AND "
                             "m.id > max(r.marks_done, :after) ORDER BY m.id";
    struct store_stmt q;
    size_t cap = 0;
    *v = NULL;
    *n = 0;
    int rc = store_stmt_prepare(st, sql, "cannot read the marks", &q, e);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = q.s;
    store_bind_i64(&q, ":id", id);
    store_bind_i64(&q, ":after", after);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        *v = xgrow(*v, &cap, *n + 1, sizeof(**v));
        (*v)[*n].id = sqlite3_column_int64(s, 0);
        (*v)[*n].label = store_col_text(s, 1);
        (*n)++;
    }
    store_stmt_finalize(&q);
    if (rc < 0) {
        store_marks_free(*v, *n);
        *v = NULL;
        *n = 0;
        return rc;
    }
    return 0;
}

void store_marks_free(struct store_mark *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].label);
    free(v);
}

static void copy_col(sqlite3_stmt *s, int col, char *out, size_t n)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, n, "%s", t ? (const char *)t : "");
}

/* Reads every registered recorder, marking those on this machine as local. */
static int read_recorders(struct store *st, const struct store_proc *here,
                          struct store_recorder **v, size_t *n, struct err *e)
{
    static const char *sql =
        "SELECT id, host, boot_id, pid, start_time, target_pid FROM recorders ORDER BY id";
    sqlite3_stmt *s = NULL;
    size_t cap = 0;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        *v = xgrow(*v, &cap, *n + 1, sizeof(**v));
        struct store_recorder *r = &(*v)[(*n)++];
        r->id = sqlite3_column_int64(s, 0);
        copy_col(s, 1, r->host, sizeof(r->host));
        copy_col(s, 2, r->boot_id, sizeof(r->boot_id));
        r->pid = sqlite3_column_int64(s, 3);
        r->start_time = (uint64_t)sqlite3_column_int64(s, 4);
        r->target_pid = sqlite3_column_int64(s, 5);
        r->local = strcmp(r->host, here->host) == 0;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_err(st, rc, "cannot read the recorders", sql, e);
    return 0;
}

int store_mark_add(struct store *st, const char *label, const struct store_proc *here,
                   int (*alive)(void *ctx, const struct store_recorder *r), void *ctx,
                   int64_t *mark_id, struct store_recorder **v, size_t *n, struct err *e)
{
    struct store_recorder *all = NULL;
    size_t nall = 0;
    char now[32];
    *mark_id = 0;
    *v = NULL;
    *n = 0;
    /* One write transaction: a recorder that registers after it does not take this mark, and
     * every one registered before it is among those woken. */
    int rc = store_begin(st, e);
    if (rc < 0)
        return rc;
    if ((rc = read_recorders(st, here, &all, &nall, e)) < 0)
        goto rollback;
    size_t keep = 0;
    for (size_t i = 0; i < nall; i++) {
        if (all[i].local && (strcmp(all[i].boot_id, here->boot_id) != 0 || !alive(ctx, &all[i]))) {
            /* Left by a recorder that was killed (or ran before a reboot): it will never
             * take a mark. */
            struct store_stmt q;
            if ((rc = store_stmt_prepare(st, "DELETE FROM recorders WHERE id = :id",
                                         "cannot add the mark", &q, e)) < 0)
                goto rollback;
            store_bind_i64(&q, ":id", all[i].id);
            rc = store_stmt_run(&q, e);
            store_stmt_finalize(&q);
            if (rc < 0)
                goto rollback;
            continue;
        }
        all[keep++] = all[i];
    }
    if (keep) {
        static const char *sql = "INSERT INTO marks (label, requested_at) VALUES (:label, :now)";
        struct store_stmt q;
        if ((rc = store_stmt_prepare(st, sql, "cannot add the mark", &q, e)) < 0)
            goto rollback;
        now_text(now);
        store_bind_static(&q, ":label", label, -1);
        store_bind_static(&q, ":now", now, -1);
        rc = store_stmt_run(&q, e);
        store_stmt_finalize(&q);
        if (rc < 0)
            goto rollback;
        *mark_id = sqlite3_last_insert_rowid(st->db);
    }
    if ((rc = store_commit(st, e)) < 0)
        goto out;
    *v = all;
    *n = keep;
    return 0;
rollback:
    store_rollback(st);
out:
    free(all);
    *mark_id = 0;
    return rc;
}

int store_mark_taken(struct store *st, int64_t id, int64_t mark, struct err *e)
{
    static const char *sql = "SELECT marks_done >= :mark FROM recorders WHERE id = :id";
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot read the recorders", &q, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&q, ":id", id);
    store_bind_i64(&q, ":mark", mark);
    rc = store_stmt_step(&q, e);
    if (rc == 1)
        rc = sqlite3_column_int(q.s, 0);
    else if (rc == 0)
        rc = ERR_NOTFOUND;
    store_stmt_finalize(&q);
    return rc;
}

int store_mark_snapshots(struct store *st, int64_t mark,
                         int (*cb)(void *ctx, const struct store_snapshot *s), void *ctx,
                         struct err *e)
{
    static const char *sql = "SELECT id FROM snapshots WHERE mark = :mark ORDER BY id";
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot read the marked snapshots", &q, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&q, ":mark", mark);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        struct store_snapshot snap;
        if ((rc = store_snapshot_get(st, sqlite3_column_int64(q.s, 0), &snap, e)) < 0)
            break;
        int r = cb(ctx, &snap);
        store_snapshot_release(&snap);
        if (r) {
            rc = err_set(e, ERR_IO, "cannot write the output");
            break;
        }
    }
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}
