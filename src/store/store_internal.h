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
    struct store_writer_stmts *writer_stmts; /* while a writer is open (store_writer.h) */
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
#define STORE_STMT_NAMES 24
struct store_stmt {
    struct store *st;
    sqlite3_stmt *s;
    const char *sql;
    const char *what;    /* what a failure says first: "cannot write the snapshot" */
    const char *unknown; /* the first name bound or asked for that the SQL does not have */
    /* Names looked up before, by address (they are literals): a bind in a loop costs no search. */
    const char *names[STORE_STMT_NAMES];
    int index[STORE_STMT_NAMES];
    int nnames;
};
int store_stmt_prepare(struct store *st, const char *sql, const char *what, struct store_stmt *q,
                       struct err *e);
void store_bind_i64(struct store_stmt *q, const char *name, int64_t v);
/* Text (NULL binds NULL; len -1: up to its NUL), copied; _static: v stays until the step. */
void store_bind_text(struct store_stmt *q, const char *name, const char *v, int len);
void store_bind_static(struct store_stmt *q, const char *name, const char *v, int len);
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

/*
 * Opening a file safely (store_guard.c): what is at path before SQLite touches it, the files
 * SQLite opened afterwards, and the companions a writer makes first. Each returns 0 or an error
 * with the line to print.
 */
struct plat_fds;
/* Refuses another program's application id, or a schema newer than this build's. */
int store_refuse_identity(const char *path, int64_t app, int64_t version, struct err *e);
/* What is at path, and its raw header: *exists, and what was seen (to compare with the file
 * SQLite opens). A FIFO or device is never opened; a writer's file must be private. */
int store_check_header(const char *path, int mode, int *exists, struct plat_file *seen,
                       struct err *e);
/* Nothing in the file may run code or take vmsnap's time (defensive mode and the like). */
void store_distrust(sqlite3 *db);
/* A damaged file is noticed before anything is written into it. */
int store_check_integrity(struct store *st, struct err *e);
/* The files opened since before: the database must be the file seen (want_main: it is among
 * them), and for a writer every other one private and ours. */
int store_check_opened(struct store *st, int mode, const struct plat_file *seen,
                       const struct plat_fds *before, int want_main, struct err *e);
/* A writer's -wal and -shm, made private before SQLite opens them by name; *made says which
 * were made here (bits by store_companion index). */
int store_prepare_companions(const char *path, int *made, struct err *e);
/* Removes the -wal and -shm beside path that are regular files and that drop() says go. */
void store_drop_companions(const char *path,
                           int (*drop)(void *ctx, int i, const struct plat_file *f), void *ctx);
/* Removes the companions made for a file that was then refused, while still empty. */
void store_drop_made_companions(const char *path, int made);
/* The URI to read a file without a -shm (a directory the reader may not write), or NULL. */
char *store_immutable_uri(const char *path);

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
 * A region's row, written once: the columns spans and spans_open store (before and after its
 * path), as X(ID, "column") separated by S. Every statement that reads or writes region rows
 * lists them through these, and store_row_to_region reads them by enum region_col.
 */
#define STORE_REGION_COLS_A(X, S)                                                                  \
    X(START, "start")                                                                              \
    S X(END, "\"end\"") S X(PERMS, "perms") S X(OFFSET, "offset") S X(DEV, "dev") S X(INODE,       \
                                                                                      "inode")
#define STORE_REGION_COLS_B(X, S)                                                                  \
    X(CATEGORY, "category")                                                                        \
    S X(DELETED, "deleted") S X(STATE, "state") S X(TYPE, "type") S X(PROTECT, "protect") S X(     \
        ALLOC_BASE, "alloc_base") S                                                                \
    X(ALLOC_PROTECT, "alloc_protect") S                                                            \
    X(OWNER, "owner")
#define STORE_RC_NAME(id, c) c
#define STORE_RC_P(id, c)    "p." c
#define STORE_RC_ENUM(id, c) RCOL_##id,

/* The columns of a region row, and its memory figures after them. */
enum region_col {
    STORE_REGION_COLS_A(STORE_RC_ENUM, ) RCOL_PATH,
    STORE_REGION_COLS_B(STORE_RC_ENUM, ) RCOL_RSS,
    RCOL_PSS,
    RCOL_PRIVATE_DIRTY,
    RCOL_ANONYMOUS,
    RCOL_SWAP,
    RCOL_COUNT
};

/* The region columns as stored, with path the expression for the path column ("path_id",
 * "path" in the regions view). */
#define STORE_REGION_COLUMNS(path)                                                                 \
    STORE_REGION_COLS_A(STORE_RC_NAME, ", ")                                                       \
    ", " path ", " STORE_REGION_COLS_B(STORE_RC_NAME, ","                                          \
                                                      " ")
/* The same of a table aliased p. */
#define STORE_REGION_COLUMNS_P(path)                                                               \
    STORE_REGION_COLS_A(STORE_RC_P, ", ") ", " path ", " STORE_REGION_COLS_B(STORE_RC_P, ", ")
#define STORE_REGION_FIGURES    "rss, pss, private_dirty, anonymous, swap"
#define STORE_REGION_FIGURES_M  "m.rss, m.pss, m.private_dirty, m.anonymous, m.swap"
#define STORE_REGION_NO_FIGURES "NULL, NULL, NULL, NULL, NULL"

/* Fills r from a row of the region columns and figures (from col, in enum region_col order;
 * figures NULL when not captured). Strings are interned in l. */
void store_row_to_region(sqlite3_stmt *s, int col, struct region_list *l, struct region *r);

/*
 * Intervals of snapshots by length class (schema/007): the class of p's [first_snap,
 * last_snap], written as spans_by_length and category_spans_by_length index it.
 */
#define STORE_SPAN_CLASS(p)                                                                        \
    "2 * length(printf('%x', " p ".last_snap - " p ".first_snap)) - (substr(printf('%x', " p       \
    ".last_snap - " p ".first_snap), 1, 1) < '4') - (" p ".last_snap = " p ".first_snap)"
/* The same class in C, of an interval of d = last_snap - first_snap >= 0 snapshots: 0 for
 * d = 0, n for 4^(n-1) <= d < 4^n, which is half its bit length rounded up (32 when open). */
static inline int store_span_class(int64_t d)
{
    int bits = 0;
    for (uint64_t v = (uint64_t)d; v; v >>= 1)
        bits++;
    return (bits + 1) / 2;
}
/* Notes that the target's category_spans hold an interval of class n (schema/008): the
 * category_totals view visits only the classes noted. */
#define STORE_CATEGORY_CLASS_ADD                                                                   \
    "INSERT OR IGNORE INTO category_classes (target_id, n, w) SELECT :target, n, w FROM "          \
    "interval_classes WHERE n = :class"
/* FROM: the length classes k, then the ended spans as p, one short range of spans_by_length
 * per class; STORE_ENDED_IN in the WHERE says which. */
#define STORE_SPANS_BY_CLASS "interval_classes k CROSS JOIN spans"
/* WHERE: p is of class k and ended in [lo, hi]; hi may use k.w, the class's width (an interval
 * of it that holds snapshot S ended by S + k.w - 1). Classes longer than the recording are
 * skipped. */
#define STORE_ENDED_IN(lo, hi)                                                                     \
    "k.n >= 0 AND k.w / 4 <= (SELECT max(id) FROM snapshots) AND " STORE_SPAN_CLASS(               \
        "p") " = +k.n AND p.last_snap BETWEEN " lo " AND " hi " "
/* ON: m is the span_mem row of span p at snapshot `at`: the newest that began by then (one
 * seek, whatever the span's history). */
#define STORE_MEM_AT(at)                                                                           \
    "m.span_id = p.id AND m.first_snap = (SELECT x.first_snap FROM span_mem x WHERE x.span_id = "  \
    "p.id AND x.first_snap <= " at " ORDER BY x.first_snap DESC LIMIT 1) AND m.last_snap >= " at   \
    " "

/* The region columns as store_row_to_region wants them, from spans or spans_open as p. */
#define SPAN_COLS(table)                                                                           \
    "SELECT " STORE_REGION_COLUMNS_P("n.path") ", " STORE_REGION_NO_FIGURES " FROM " table         \
                                               " p LEFT JOIN paths n ON n.id = p.path_id "

/* Returns the permutation (caller frees) that orders l by unsigned start; l is not moved. */
size_t *store_sort_order(const struct region_list *l);

#endif
