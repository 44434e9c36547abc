/* Shared between the store's files; not part of the store's interface. */
#ifndef VMSNAP_STORE_INTERNAL_H
#define VMSNAP_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

/* How long one statement waits for another process's write transaction before it gives up. */
#define STORE_BUSY_MS 10000

struct store {
    sqlite3 *db;
    char *path;
    int writable;
    int guarded;       /* a writer: the guard holds SQLite's opens of its companions */
    int tx_depth;      /* transactions open (store_begin): the outermost, then savepoints */
    uint64_t dev, ino; /* the file opened (0, 0 where the OS does not say) */
};

/* The most bytes one value read from a database may hold (a crafted file's 1 GB path is
 * refused, not read). A command line is at most a few MiB. */
#define STORE_MAX_VALUE (32 << 20)

/*
 * A count read from the file (a snapshot's region_count) as the number of rows to make room
 * for: a crafted file's billion must not allocate a billion of anything. Lists grow past the
 * hint as rows come; a process holds at most vm.max_map_count regions (65530 by default).
 */
#define STORE_HINT_MAX (1 << 18)
static inline size_t store_size_hint(int64_t count)
{
    return count <= 0 ? 0 : count > STORE_HINT_MAX ? STORE_HINT_MAX : (size_t)count;
}

/*
 * Checks that the schema `schema_name` of db (the file at path, of schema version) is what
 * vmsnap's migrations make, give or take a user's own tables, indexes and views: 0, or
 * ERR_NOTVMSNAP with a line naming the first difference.
 */
int store_check_schema(sqlite3 *db, const char *schema_name, const char *path, int version,
                       struct err *e);

struct plat_file;

/*
 * vmsnap writes only into a regular file of the current user's that nobody else may open (an
 * address map defeats ASLR for whoever reads it, and a file somebody else controls can be swapped
 * or read under us): 0, or ERR_PERM with a line naming path and what ("file", "wal file").
 */
int store_check_private(const char *path, const char *what, const struct plat_file *f,
                        struct err *e);
/* As store_check_private, and no other file under another name: a -wal that is a hard link to
 * the database would have SQLite reset the database as a WAL. */
int store_check_companion(const char *path, const char *what, const struct plat_file *f,
                          struct err *e);

/* The files SQLite keeps beside a database: its WAL and shared-memory index (the first
 * STORE_COMPANIONS_WAL), and a rollback journal. */
#define STORE_COMPANIONS     3
#define STORE_COMPANIONS_WAL 2
extern const char *const store_companion[STORE_COMPANIONS];

/* Has SQLite's unix VFS open the companions of a database open to write only as
 * store_check_companion allows, and never give a file away (fchown). Once, before SQLite opens
 * anything. */
void store_guard_install(void);
/* The database SQLite calls name (sqlite3_db_filename) is open to write (open 1), or no longer
 * (open 0). */
void store_guard_writer(const char *name, int open);
/* When the guard refused a companion since last asked: ERR_PERM with the line that says which
 * and why; else 0. */
int store_guard_refusal(struct err *e);

/*
 * A statement, prepared once and bound by name: store_bind_* with a name its SQL does not have
 * makes the next step fail with that name and the SQL. Text is copied when bound.
 */
struct store_stmt {
    struct store *st;
    sqlite3_stmt *s;
    const char *sql;
    const char *what;    /* what a failure says first: "cannot write the snapshot" */
    const char *unknown; /* the first name bound or asked for that the SQL does not have */
};
int store_stmt_prepare(struct store *st, const char *sql, const char *what, struct store_stmt *q,
                       struct err *e);
void store_bind_i64(struct store_stmt *q, const char *name, int64_t v);
void store_bind_text(struct store_stmt *q, const char *name, const char *v, int len); /* NULL */
void store_bind_null(struct store_stmt *q, const char *name);
/* The index of the result column called name; -1 (and the next step fails) when there is none. */
int store_stmt_column(struct store_stmt *q, const char *name);
/* 1 with a row, 0 when done, or an error (the statement reset). */
int store_stmt_step(struct store_stmt *q, struct err *e);
/* Steps a statement that returns no rows, then resets it and clears its bindings: 0 or error. */
int store_stmt_run(struct store_stmt *q, struct err *e);
void store_stmt_reset(struct store_stmt *q); /* and clears the bindings */
void store_stmt_finalize(struct store_stmt *q);

/* A read transaction: everything read until store_commit is one moment of the file. */
int store_begin_read(struct store *st, struct err *e);

/* Maps a SQLite failure to an error code and a one-line message naming what failed. */
int store_sql_err(struct store *st, int rc, const char *what, const char *sql, struct err *e);

/* Prepares sql; on failure sets e. */
int store_prepare(struct store *st, const char *sql, sqlite3_stmt **stmt, struct err *e);

/* Runs statements that return no rows. */
int store_exec(struct store *st, const char *sql, struct err *e);

/* Runs sql, binding a and b to its first two parameters if it has them, and returns the first
 * column of its first row in *out: 0, 1 when there is no row (or it is NULL), or an error. */
int store_query_i64(struct store *st, const char *sql, int64_t a, int64_t b, int64_t *out,
                    struct err *e);

/* Looks up t's row: 0 with *id set (0 when there is none yet), or an error. */
int store_target_find(struct store *st, const struct capture_target *t, int64_t *id, struct err *e);

/* Returns a heap copy of a TEXT column, or NULL for NULL. */
char *store_col_text(sqlite3_stmt *stmt, int col);

/*
 * Fills r from a row laid out as: start, end, perms, offset, dev, inode, path, category, deleted,
 * state, type, protect, alloc_base, alloc_protect, owner (from col), then rss, pss,
 * private_dirty, anonymous, swap (NULL when not captured). Strings are interned in l.
 */
void store_row_to_region(sqlite3_stmt *s, int col, struct region_list *l, struct region *r);

/* The region columns as store_row_to_region wants them, from spans or spans_open as p. */
#define SPAN_COLS(table)                                                                           \
    "SELECT p.start, p.\"end\", p.perms, p.offset, p.dev, p.inode, n.path, p.category, "           \
    "p.deleted, p.state, p.type, p.protect, p.alloc_base, p.alloc_protect, p.owner, NULL, NULL, "  \
    "NULL, NULL, NULL FROM " table " p LEFT JOIN paths n ON n.id = p.path_id "

/* Returns the permutation (caller frees) that orders l by unsigned start; l is not moved. */
size_t *store_sort_order(const struct region_list *l);

#endif
