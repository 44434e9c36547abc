/*
 * Events and stacks (record --stacks): the calls that changed a target's address space, each
 * with the stack of the thread that made it. A stack is a row of `stacks` keyed by its raw
 * frames, with one row of `stack_frames` per frame; the recorder writes them in the
 * transaction of the snapshots of the same round.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/xalloc.h"

struct store_events {
    struct store *st;
    struct store_stmt find, stack, frame, event;
};

int store_events_open(struct store *st, struct store_events **out, struct err *e)
{
    struct store_events *w = xcalloc(1, sizeof(*w));
    w->st = st;
    *out = NULL;
    int rc;
    if ((rc = store_stmt_prepare(st, "SELECT id FROM stacks WHERE frames = :key",
                                 "cannot write a stack", &w->find, e)) < 0 ||
        (rc = store_stmt_prepare(st, "INSERT INTO stacks (frames) VALUES (:key)",
                                 "cannot write a stack", &w->stack, e)) < 0 ||
        (rc = store_stmt_prepare(st,
                                 "INSERT INTO stack_frames (stack_id, depth, module, build_id, "
                                 "offset, function, file, line) VALUES (:stack, :depth, :module, "
                                 ":build_id, :offset, :function, :file, :line)",
                                 "cannot write a stack", &w->frame, e)) < 0 ||
        (rc = store_stmt_prepare(st,
                                 "INSERT INTO events (target_id, tid, taken_at, call, start, "
                                 "\"end\", prot, flags, new_size, result, stack_id) VALUES "
                                 "(:target, :tid, :at, :call, :start, :end, :prot, :flags, "
                                 ":new_size, :result, :stack)",
                                 "cannot write a call", &w->event, e)) < 0) {
        store_events_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

int store_stack_find(struct store_events *w, const void *key, size_t len, int64_t *id,
                     struct err *e)
{
    sqlite3_bind_blob(w->find.s, sqlite3_bind_parameter_index(w->find.s, ":key"), key, (int)len,
                      SQLITE_STATIC);
    int rc = store_stmt_step(&w->find, e);
    if (rc == 1)
        *id = sqlite3_column_int64(w->find.s, 0);
    store_stmt_reset(&w->find);
    return rc;
}

int store_stack_add(struct store_events *w, const void *key, size_t len,
                    const struct store_frame *f, int n, int64_t *id, struct err *e)
{
    int rc = store_stack_find(w, key, len, id, e);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    sqlite3_bind_blob(w->stack.s, sqlite3_bind_parameter_index(w->stack.s, ":key"), key, (int)len,
                      SQLITE_STATIC);
    if ((rc = store_stmt_run(&w->stack, e)) < 0)
        return rc;
    *id = sqlite3_last_insert_rowid(w->st->db);
    for (int i = 0; i < n; i++) {
        store_bind_i64(&w->frame, ":stack", *id);
        store_bind_i64(&w->frame, ":depth", i);
        store_bind_static(&w->frame, ":module", f[i].module, -1);
        store_bind_static(&w->frame, ":build_id", f[i].build_id, -1);
        store_bind_i64(&w->frame, ":offset", (int64_t)f[i].offset);
        store_bind_static(&w->frame, ":function", f[i].function, -1);
        store_bind_static(&w->frame, ":file", f[i].file, -1);
        if (f[i].file)
            store_bind_i64(&w->frame, ":line", f[i].line);
        else
            store_bind_null(&w->frame, ":line");
        if ((rc = store_stmt_run(&w->frame, e)) < 0)
            return rc;
    }
    return 0;
}

static void bind_or_null(struct store_stmt *q, const char *name, int64_t v)
{
    if (v < 0)
        store_bind_null(q, name);
    else
        store_bind_i64(q, name, v);
}

int store_event_add(struct store_events *w, const struct store_event *ev, struct err *e)
{
    char at[32];
    store_format_time(ev->at_ms, at);
    struct store_stmt *q = &w->event;
    store_bind_i64(q, ":target", ev->target_id);
    store_bind_i64(q, ":tid", ev->tid);
    store_bind_static(q, ":at", at, -1);
    store_bind_static(q, ":call", ev->call, -1);
    store_bind_i64(q, ":start", (int64_t)ev->start);
    store_bind_i64(q, ":end", (int64_t)ev->end);
    bind_or_null(q, ":prot", ev->prot);
    bind_or_null(q, ":flags", ev->flags);
    bind_or_null(q, ":new_size", ev->new_size);
    store_bind_i64(q, ":result", ev->result);
    if (ev->stack_id > 0)
        store_bind_i64(q, ":stack", ev->stack_id);
    else
        store_bind_null(q, ":stack");
    return store_stmt_run(q, e);
}

void store_events_close(struct store_events *w)
{
    if (!w)
        return;
    store_stmt_finalize(&w->find);
    store_stmt_finalize(&w->stack);
    store_stmt_finalize(&w->frame);
    store_stmt_finalize(&w->event);
    free(w);
}

static int64_t col_or_none(sqlite3_stmt *s, int col)
{
    return sqlite3_column_type(s, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, col);
}

int store_events_each(struct store *st, int64_t target_id, int64_t after, int64_t upto,
                      int (*cb)(void *ctx, const struct store_event *ev, int in_range), void *ctx,
                      struct err *e)
{
    static const char *sql =
        "SELECT e.tid, e.call, e.start, e.\"end\", e.prot, e.flags, e.new_size, e.result, "
        "coalesce(e.stack_id, 0), e.taken_at > coalesce((SELECT taken_at FROM snapshots WHERE id "
        "= :after), '') FROM events e WHERE e.target_id = :target AND e.taken_at <= (SELECT "
        "taken_at FROM snapshots WHERE id = :upto) ORDER BY e.id";
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot read the calls", &q, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&q, ":target", target_id);
    store_bind_i64(&q, ":after", after);
    store_bind_i64(&q, ":upto", upto);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        sqlite3_stmt *s = q.s;
        const char *call = (const char *)sqlite3_column_text(s, 1);
        const struct store_event ev = {
            .target_id = target_id,
            .tid = sqlite3_column_int64(s, 0),
            .call = call ? call : "",
            .start = (uint64_t)sqlite3_column_int64(s, 2),
            .end = (uint64_t)sqlite3_column_int64(s, 3),
            .prot = col_or_none(s, 4),
            .flags = col_or_none(s, 5),
            .new_size = col_or_none(s, 6),
            .result = sqlite3_column_int64(s, 7),
            .stack_id = sqlite3_column_int64(s, 8),
        };
        if ((rc = cb(ctx, &ev, sqlite3_column_int(s, 9))) != 0)
            break;
    }
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}

int store_events_any(struct store *st, int64_t target_id, struct err *e)
{
    int64_t one = 0;
    int rc = store_query_i64(st, "SELECT 1 FROM events WHERE target_id = ?1 LIMIT 1", target_id, 0,
                             &one, e);
    return rc < 0 ? rc : rc == 0 && one == 1;
}

int store_stack_frames(struct store *st, int64_t stack_id, struct store_frame **v, int *n,
                       struct err *e)
{
    static const char *sql = "SELECT module, build_id, offset, function, file, line FROM "
                             "stack_frames WHERE stack_id = :stack ORDER BY depth";
    *v = NULL;
    *n = 0;
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot read a stack", &q, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&q, ":stack", stack_id);
    size_t cap = 0;
    while ((rc = store_stmt_step(&q, e)) == 1 && *n < 256) {
        *v = xgrow(*v, &cap, (size_t)*n + 1, sizeof(**v));
        struct store_frame *f = &(*v)[(*n)++];
        char *module = store_col_text(q.s, 0), *id = store_col_text(q.s, 1);
        f->module = module ? module : xstrdup("");
        f->build_id = id ? id : xstrdup("");
        f->offset = (uint64_t)sqlite3_column_int64(q.s, 2);
        f->function = store_col_text(q.s, 3);
        f->file = store_col_text(q.s, 4);
        f->line = sqlite3_column_int(q.s, 5);
    }
    store_stmt_finalize(&q);
    if (rc < 0) {
        store_frames_free(*v, *n);
        *v = NULL;
        *n = 0;
        return rc;
    }
    return 0;
}

void store_frames_free(struct store_frame *v, int n)
{
    for (int i = 0; i < n; i++) {
        free((char *)v[i].module);
        free((char *)v[i].build_id);
        free((char *)v[i].function);
        free((char *)v[i].file);
    }
    free(v);
}
