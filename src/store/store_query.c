/* query: a user's one read-only statement, with its limits (time, memory, rows). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

static int only_space_or_comments(const char *p)
{
    while (*p) {
        if (isspace((unsigned char)*p) || *p == ';') {
            p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            if (!end)
                return 1;
            p = end + 2;
        } else {
            return 0;
        }
    }
    return 1;
}

/* PRAGMAs that only report on the database and may be asked without a value. */
static const char *const read_pragmas[] = {
    "table_info",      "table_xinfo",      "table_list",     "index_list",     "index_info",
    "index_xinfo",     "foreign_key_list", "page_count",     "page_size",      "freelist_count",
    "application_id",  "user_version",     "schema_version", "journal_mode",   "encoding",
    "compile_options", "function_list",    "pragma_list",    "collation_list", "module_list",
    "integrity_check", "quick_check",      "data_version",
};

static const char *const pragmas_with_argument[] = {
    "table_info",  "table_xinfo",      "table_list",      "index_list",  "index_info",
    "index_xinfo", "foreign_key_list", "integrity_check", "quick_check",
};

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sqlite3_stricmp(name, list[i]) == 0)
            return 1;
    return 0;
}

/*
 * What a user's query may do: read this database, call functions, and ask the PRAGMAs that only
 * report. No ATTACH (another file, or a new one), no PRAGMA that changes anything
 * (writable_schema, journal_mode = ...), nothing that writes.
 */
static int query_authorizer(void *ctx, int action, const char *a, const char *b, const char *db,
                            const char *trigger)
{
    (void)ctx;
    (void)trigger;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_FUNCTION:
        /* fts3_tokenizer('x') answers with a pointer into vmsnap (an address, defeating ASLR). */
        return b && (sqlite3_stricmp(b, "fts3_tokenizer") == 0 ||
                     sqlite3_stricmp(b, "load_extension") == 0)
                   ? SQLITE_DENY
                   : SQLITE_OK;
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_READ:
        return db && strcmp(db, "main") != 0 && strcmp(db, "temp") != 0 ? SQLITE_DENY : SQLITE_OK;
    case SQLITE_PRAGMA:
        if (!a || !in_list(a, read_pragmas, sizeof(read_pragmas) / sizeof(read_pragmas[0])))
            return SQLITE_DENY;
        if (b && !in_list(a, pragmas_with_argument,
                          sizeof(pragmas_with_argument) / sizeof(pragmas_with_argument[0])))
            return SQLITE_DENY;
        return SQLITE_OK;
    default:
        return SQLITE_DENY;
    }
}

/* What to add to an error that the authorizer caused. */
static const char *auth_hint(struct store *st, int rc)
{
    if ((rc & 0xff) == SQLITE_AUTH || strcmp(sqlite3_errmsg(st->db), "not authorized") == 0)
        return " -- query runs read-only SQL on this database alone (use sqlite3 for anything "
               "else)";
    return "";
}

static int query_run(struct store *st, const char *sql, const struct store_query_cb *cb,
                     int64_t deadline, struct err *e);

/* Stops a query at its deadline (monotonic microseconds). */
static int past_deadline(void *ctx)
{
    return plat_monotonic_us() > *(const int64_t *)ctx;
}

/* What to add to an error the limits caused. */
static const char *limit_hint(struct store *st, int rc, int64_t deadline)
{
    if ((rc & 0xff) == SQLITE_INTERRUPT && deadline && plat_monotonic_us() > deadline)
        return " -- it ran longer than --timeout allows (0: no limit)";
    if ((rc & 0xff) == SQLITE_NOMEM || (rc & 0xff) == SQLITE_TOOBIG)
        return " -- it needs more memory than --max-memory allows for its temporary results";
    return auth_hint(st, rc);
}

int store_query(struct store *st, const char *sql, const struct store_query_cb *cb, struct err *e)
{
    int64_t deadline = cb->timeout_ms > 0 ? plat_monotonic_us() + cb->timeout_ms * 1000 : 0;
    int64_t heap_before = sqlite3_hard_heap_limit64(-1);
    /* query_only makes the connection refuse writes, whatever the statement claims. */
    int rc = store_exec(st, "PRAGMA query_only = 1", e);
    if (rc < 0)
        return rc;
    /* Temporary results (a sort, DISTINCT, a materialised view) go to memory under the limit,
     * not to files that could fill a disk (1.6 GB in 8 s). */
    if (cb->max_memory > 0) {
        if ((rc = store_exec(st, "PRAGMA temp_store = MEMORY", e)) < 0)
            return rc;
        sqlite3_hard_heap_limit64(cb->max_memory);
    }
    if (deadline)
        sqlite3_progress_handler(st->db, 1000, past_deadline, &deadline);
    rc = query_run(st, sql, cb, deadline, e);
    sqlite3_progress_handler(st->db, 0, NULL, NULL);
    if (cb->max_memory > 0)
        sqlite3_hard_heap_limit64(heap_before);
    return rc;
}

static int query_run(struct store *st, const char *sql, const struct store_query_cb *cb,
                     int64_t deadline, struct err *e)
{
    sqlite3_stmt *s = NULL;
    const char *tail = NULL;
    int rc;
    sqlite3_set_authorizer(st->db, query_authorizer, NULL);
    rc = sqlite3_prepare_v2(st->db, sql, -1, &s, &tail);
    /* Checked when statements are prepared (and re-prepared): ours need no such checks. */
    sqlite3_set_authorizer(st->db, NULL, NULL);
    if (rc != SQLITE_OK)
        return err_set(e, ERR_USAGE, "query failed: %s%s", sqlite3_errmsg(st->db),
                       limit_hint(st, rc, deadline));
    if (!s)
        return err_set(e, ERR_USAGE, "query failed: no SQL statement given");
    if (tail && !only_space_or_comments(tail)) {
        sqlite3_finalize(s);
        return err_set(e, ERR_USAGE, "query failed: give one SQL statement at a time");
    }
    if (!sqlite3_stmt_readonly(s)) {
        sqlite3_finalize(s);
        return err_set(e, ERR_USAGE,
                       "query failed: only read-only SQL is allowed (use sqlite3 to change the "
                       "database)");
    }
    int n = sqlite3_column_count(s);
    const char **names = xcalloc((size_t)n + 1, sizeof(*names));
    struct store_value *vals = xcalloc((size_t)n + 1, sizeof(*vals));
    for (int i = 0; i < n; i++)
        names[i] = sqlite3_column_name(s, i);
    if (cb->columns && cb->columns(cb->ctx, n, names) != 0) {
        rc = err_set(e, ERR_IO, "cannot write the query result");
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            struct store_value *v = &vals[i];
            memset(v, 0, sizeof(*v));
            switch (sqlite3_column_type(s, i)) {
            case SQLITE_INTEGER:
                v->type = STORE_INT;
                v->i = sqlite3_column_int64(s, i);
                break;
            case SQLITE_FLOAT:
                v->type = STORE_REAL;
                v->r = sqlite3_column_double(s, i);
                break;
            case SQLITE_TEXT:
                v->type = STORE_TEXT;
                v->s = (const char *)sqlite3_column_text(s, i);
                v->len = sqlite3_column_bytes(s, i);
                break;
            case SQLITE_BLOB:
                v->type = STORE_BLOB;
                v->s = sqlite3_column_blob(s, i);
                v->len = sqlite3_column_bytes(s, i);
                break;
            default:
                v->type = STORE_NULL;
            }
        }
        if (cb->row && cb->row(cb->ctx, n, vals) != 0) {
            rc = err_set(e, ERR_IO, "cannot write the query result");
            goto out;
        }
    }
    if (rc != SQLITE_DONE)
        rc = err_set(e, ERR_USAGE, "query failed: %s%s", sqlite3_errmsg(st->db),
                     limit_hint(st, rc, deadline));
    else
        rc = 0;
out:
    free(names);
    free(vals);
    sqlite3_finalize(s);
    return rc;
}
