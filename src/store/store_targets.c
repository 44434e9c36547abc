/* The targets table: a process instance found by who it is, or recorded. */
#include "store/store_internal.h"

int store_target_find(struct store *st, const struct capture_target *t, int64_t *id, struct err *e)
{
    static const char *sql = "SELECT id FROM targets WHERE boot_id = :boot AND pid = :pid AND "
                             "start_time = :start AND exec_key = :exec";
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot look up the target", &q, e);
    if (rc < 0)
        return rc;
    store_bind_static(&q, ":boot", t->boot_id, -1);
    store_bind_i64(&q, ":pid", t->pid);
    store_bind_i64(&q, ":start", (int64_t)t->start_time);
    store_bind_static(&q, ":exec", t->exec_key, -1);
    rc = store_stmt_step(&q, e);
    *id = rc == 1 ? sqlite3_column_int64(q.s, 0) : 0;
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}

int store_target_ensure(struct store *st, const struct capture_target *t, int64_t seen_ms,
                        int64_t parent_target_id, const char *origin, int64_t *target_id,
                        struct err *e)
{
    static const char *sql =
        "INSERT INTO targets (pid, start_time, exe, cmdline, host, os, boot_id, exec_key, "
        "first_seen, parent_target_id, origin) VALUES (:pid, :start, :exe, :cmdline, :host, :os, "
        ":boot, :exec, :seen, :parent, :origin)";
    int rc = store_target_find(st, t, target_id, e);
    if (rc < 0 || *target_id)
        return rc;
    char seen[32];
    store_format_time(seen_ms, seen);
    struct store_stmt q;
    if ((rc = store_stmt_prepare(st, sql, "cannot record the target", &q, e)) < 0)
        return rc;
    store_bind_i64(&q, ":pid", t->pid);
    store_bind_i64(&q, ":start", (int64_t)t->start_time);
    store_bind_static(&q, ":exe", t->exe, -1);
    store_bind_static(&q, ":cmdline", t->cmdline, -1);
    store_bind_static(&q, ":host", t->host, -1);
    store_bind_static(&q, ":os", t->os, -1);
    store_bind_static(&q, ":boot", t->boot_id, -1);
    store_bind_static(&q, ":exec", t->exec_key, -1);
    store_bind_static(&q, ":seen", seen, -1);
    if (parent_target_id)
        store_bind_i64(&q, ":parent", parent_target_id);
    else
        store_bind_null(&q, ":parent");
    if (origin)
        store_bind_static(&q, ":origin", origin, -1);
    else
        store_bind_null(&q, ":origin");
    rc = store_stmt_run(&q, e);
    store_stmt_finalize(&q);
    if (rc < 0)
        return rc;
    *target_id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

int store_target_exited(struct store *st, int64_t target_id, int64_t at_ms, struct err *e)
{
    static const char *sql = "UPDATE targets SET exited_at = :at WHERE id = :id";
    char at[32];
    store_format_time(at_ms, at);
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot note that the target exited", &q, e);
    if (rc < 0)
        return rc;
    store_bind_static(&q, ":at", at, -1);
    store_bind_i64(&q, ":id", target_id);
    rc = store_stmt_run(&q, e);
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}

int store_target_retitle(struct store *st, int64_t target_id, const char *cmdline, struct err *e)
{
    static const char *sql =
        "UPDATE targets SET cmdline = :cmdline WHERE id = :id AND cmdline IS NOT :cmdline";
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot record the target's command line", &q, e);
    if (rc < 0)
        return rc;
    store_bind_static(&q, ":cmdline", cmdline, -1);
    store_bind_i64(&q, ":id", target_id);
    rc = store_stmt_run(&q, e);
    store_stmt_finalize(&q);
    return rc;
}
