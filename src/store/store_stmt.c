/*
 * The store's statements and transactions. A statement is prepared once and bound by name; a
 * name its SQL does not have is vmsnap's own mistake, and the step after it fails saying so,
 * with the SQL (fossil's db.c does the same). Every failure carries what failed, SQLite's codes
 * and message, and the SQL (store_sql_err).
 */
#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"

int store_stmt_prepare(struct store *st, const char *sql, const char *what, struct store_stmt *q,
                       struct err *e)
{
    memset(q, 0, sizeof(*q));
    q->st = st;
    q->sql = sql;
    q->what = what;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &q->s, NULL);
    if (rc != SQLITE_OK)
        return store_sql_err(st, rc, what, sql, e);
    return 0;
}

/* The index of name in q's SQL; 0 (and the name kept for the step to report) when it has none. */
static int index_of(struct store_stmt *q, const char *name)
{
    for (int k = 0; k < q->nnames; k++)
        if (q->names[k] == name)
            return q->index[k];
    int i = sqlite3_bind_parameter_index(q->s, name);
    if (i == 0 && !q->unknown)
        q->unknown = name;
    if (i && q->nnames < STORE_STMT_NAMES) {
        q->names[q->nnames] = name;
        q->index[q->nnames++] = i;
    }
    return i;
}

void store_bind_i64(struct store_stmt *q, const char *name, int64_t v)
{
    int i = index_of(q, name);
    if (i)
        sqlite3_bind_int64(q->s, i, v);
}

void store_bind_text(struct store_stmt *q, const char *name, const char *v, int len)
{
    int i = index_of(q, name);
    if (i && v)
        sqlite3_bind_text(q->s, i, v, len, SQLITE_TRANSIENT);
    else if (i)
        sqlite3_bind_null(q->s, i);
}

void store_bind_static(struct store_stmt *q, const char *name, const char *v, int len)
{
    int i = index_of(q, name);
    if (i && v)
        sqlite3_bind_text(q->s, i, v, len, SQLITE_STATIC);
    else if (i)
        sqlite3_bind_null(q->s, i);
}

void store_bind_null(struct store_stmt *q, const char *name)
{
    int i = index_of(q, name);
    if (i)
        sqlite3_bind_null(q->s, i);
}

int store_stmt_column(struct store_stmt *q, const char *name)
{
    int n = sqlite3_column_count(q->s);
    for (int i = 0; i < n; i++)
        if (strcmp(sqlite3_column_name(q->s, i), name) == 0)
            return i;
    if (!q->unknown)
        q->unknown = name;
    return -1;
}

int store_stmt_step(struct store_stmt *q, struct err *e)
{
    if (q->unknown) {
        int rc =
            err_set(e, ERR_DB, "%s: vmsnap names '%s', which its SQL does not have, in: %.200s",
                    q->what, q->unknown, q->sql);
        sqlite3_reset(q->s);
        return rc;
    }
    int rc = sqlite3_step(q->s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    rc = store_sql_err(q->st, rc, q->what, q->sql, e);
    sqlite3_reset(q->s);
    return rc;
}

int store_stmt_run(struct store_stmt *q, struct err *e)
{
    int rc = store_stmt_step(q, e);
    store_stmt_reset(q);
    return rc < 0 ? rc : 0;
}

void store_stmt_reset(struct store_stmt *q)
{
    sqlite3_reset(q->s);
    sqlite3_clear_bindings(q->s);
}

void store_stmt_finalize(struct store_stmt *q)
{
    sqlite3_finalize(q->s);
    q->s = NULL;
}

/*
 * Transactions nest: the outermost is BEGIN IMMEDIATE (the write lock taken at once, so what is
 * read inside is what is built on) or a plain BEGIN for reading; one inside it is a savepoint,
 * which commits into it or rolls back alone.
 */
static int begin(struct store *st, const char *how, struct err *e)
{
    char sql[32];
    if (st->tx_depth)
        snprintf(sql, sizeof(sql), "SAVEPOINT s%d", st->tx_depth);
    else
        snprintf(sql, sizeof(sql), "%s", how);
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_sql_err(st, rc, "cannot start a transaction", sql, e);
    st->tx_depth++;
    return 0;
}

int store_begin(struct store *st, struct err *e)
{
    return begin(st, "BEGIN IMMEDIATE", e);
}

int store_begin_read(struct store *st, struct err *e)
{
    return begin(st, "BEGIN", e);
}

int store_commit(struct store *st, struct err *e)
{
    char sql[32];
    if (st->tx_depth > 1)
        snprintf(sql, sizeof(sql), "RELEASE s%d", st->tx_depth - 1);
    else
        snprintf(sql, sizeof(sql), "COMMIT");
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        st->tx_depth--;
        return 0;
    }
    rc = store_sql_err(st, rc, "cannot commit", sql, e);
    store_rollback(st);
    return rc;
}

void store_rollback(struct store *st)
{
    if (st->tx_depth == 0)
        return;
    char sql[64];
    st->tx_depth--;
    if (st->tx_depth)
        snprintf(sql, sizeof(sql), "ROLLBACK TO s%d; RELEASE s%d", st->tx_depth, st->tx_depth);
    else
        snprintf(sql, sizeof(sql), "ROLLBACK");
    if (st->tx_depth || !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, sql, NULL, NULL, NULL);
}
