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
        "marks_done) VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT coalesce(max(id), 0) FROM marks))";
    sqlite3_stmt *s = NULL;
    char now[32];
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    now_text(now);
    sqlite3_bind_text(s, 1, self->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, self->boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, self->pid);
    sqlite3_bind_int64(s, 4, (int64_t)self->start_time);
    sqlite3_bind_int64(s, 5, target_pid);
    sqlite3_bind_text(s, 6, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_err(st, rc, "cannot register the recorder", sql, e);
    *id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

void store_recorder_unregister(struct store *st, int64_t id)
{
    sqlite3_stmt *s = NULL;
    struct err e = {0};
    if (store_prepare(st, "DELETE FROM recorders WHERE id = ?1", &s, &e) < 0)
        return;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_step(s);
    sqlite3_finalize(s);
}

int store_marks_pending(struct store *st, int64_t id, int64_t after, struct store_mark **v,
                        size_t *n, struct err *e)
{
    static const char *sql = "SELECT m.id, m.label FROM marks m, recorders r WHERE r.id = ?1 AND "
                             "m.id > max(r.marks_done, ?2) ORDER BY m.id";
    sqlite3_stmt *s = NULL;
    size_t cap = 0;
    *v = NULL;
    *n = 0;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, after);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        *v = xgrow(*v, &cap, *n + 1, sizeof(**v));
        (*v)[*n].id = sqlite3_column_int64(s, 0);
        (*v)[*n].label = store_col_text(s, 1);
        (*n)++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        store_marks_free(*v, *n);
        *v = NULL;
        *n = 0;
        return store_sql_err(st, rc, "cannot read the marks", sql, e);
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
    sqlite3_stmt *s = NULL;
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
            if ((rc = store_prepare(st, "DELETE FROM recorders WHERE id = ?1", &s, e)) < 0)
                goto rollback;
            sqlite3_bind_int64(s, 1, all[i].id);
            rc = sqlite3_step(s);
            sqlite3_finalize(s);
            s = NULL;
            if (rc != SQLITE_DONE) {
                rc = store_sql_err(st, rc, "cannot add the mark", NULL, e);
                goto rollback;
            }
            continue;
        }
        all[keep++] = all[i];
    }
    if (keep) {
        static const char *sql = "INSERT INTO marks (label, requested_at) VALUES (?1, ?2)";
        if ((rc = store_prepare(st, sql, &s, e)) < 0)
            goto rollback;
        now_text(now);
        if (label)
            sqlite3_bind_text(s, 1, label, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, now, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE) {
            rc = store_sql_err(st, rc, "cannot add the mark", sql, e);
            goto rollback;
        }
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
    static const char *sql = "SELECT marks_done >= ?2 FROM recorders WHERE id = ?1";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, mark);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = sqlite3_column_int(s, 0);
    else if (rc == SQLITE_DONE)
        rc = ERR_NOTFOUND;
    else
        rc = store_sql_err(st, rc, "cannot read the recorders", sql, e);
    sqlite3_finalize(s);
    return rc;
}

int store_mark_snapshots(struct store *st, int64_t mark,
                         int (*cb)(void *ctx, const struct store_snapshot *s), void *ctx,
                         struct err *e)
{
    static const char *sql = "SELECT id FROM snapshots WHERE mark = ?1 ORDER BY id";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, mark);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_snapshot snap;
        int r = store_snapshot_get(st, sqlite3_column_int64(s, 0), &snap, e);
        if (r < 0) {
            sqlite3_finalize(s);
            return r;
        }
        r = cb(ctx, &snap);
        store_snapshot_release(&snap);
        if (r) {
            sqlite3_finalize(s);
            return err_set(e, ERR_IO, "cannot write the output");
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_err(st, rc, "cannot read the marked snapshots", sql, e);
    return 0;
}
