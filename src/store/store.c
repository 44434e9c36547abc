/* Opening, identifying and migrating a vmsnap database. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "platform/platform.h"
#include "store/migrations.h"
#include "store/schema_reference.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

int store_schema_version(void)
{
    return store_migrations[store_migrations_count - 1].version;
}

const char *store_path(const struct store *st)
{
    return st->path;
}

int store_sql_err(struct store *st, int rc, const char *what, const char *sql, struct err *e)
{
    /* A companion refused for what it is failed the statement: say which. */
    int refused = store_guard_refusal(e);
    if (refused < 0)
        return refused;
    int ext = st && st->db ? sqlite3_extended_errcode(st->db) : rc;
    const char *msg = st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    const char *path = st ? st->path : "?";
    int sys = st && st->db ? sqlite3_system_errno(st->db) : 0;
    /* A file system that cannot grow the WAL or its shared-memory index is full too. */
    if ((rc & 0xff) == SQLITE_IOERR && (sys == ENOSPC || ext == SQLITE_IOERR_SHMSIZE))
        rc = SQLITE_FULL;
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return err_set(e, ERR_FULL,
                       "%s: the disk holding '%s' is full -- free some space; everything "
                       "committed before is kept",
                       what, path);
    case SQLITE_READONLY:
        return err_set(e, ERR_READONLY, "%s: database '%s' is read-only", what, path);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return err_set(e, ERR_LOCKED,
                       "%s: database '%s' is locked by another process -- try again later", what,
                       path);
    case SQLITE_NOTADB:
        return err_set(e, ERR_NOTVMSNAP, "%s: '%s' is not a vmsnap database (%s)", what, path, msg);
    case SQLITE_CORRUPT:
        return err_set(e, ERR_CORRUPT,
                       "%s: '%s' is damaged (%s) -- copy out what it holds with 'sqlite3 %s "
                       ".recover'",
                       what, path, msg, path);
    case SQLITE_IOERR:
        return err_set(e, ERR_IO, "%s: i/o error on '%s' (%s, extended code %d)", what, path, msg,
                       ext);
    default:
        if (sql)
            return err_set(e, ERR_DB, "%s: %s (sqlite code %d/%d) in: %.200s", what, msg, rc, ext,
                           sql);
        return err_set(e, ERR_DB, "%s: %s (sqlite code %d/%d)", what, msg, rc, ext);
    }
}

int store_prepare(struct store *st, const char *sql, sqlite3_stmt **stmt, struct err *e)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, stmt, NULL);
    if (rc != SQLITE_OK)
        return store_sql_err(st, rc, "cannot prepare a statement", sql, e);
    return 0;
}

int store_exec(struct store *st, const char *sql, struct err *e)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_sql_err(st, rc, "cannot run SQL", sql, e);
    return 0;
}

char *store_col_text(sqlite3_stmt *stmt, int col)
{
    const unsigned char *s = sqlite3_column_text(stmt, col);
    if (!s)
        return NULL;
    return xstrndup((const char *)s, (size_t)sqlite3_column_bytes(stmt, col));
}

struct ident {
    int64_t app, version, objects;
};

/* Reads the file's identity in one statement, so a writer creating it meanwhile is seen either
 * not at all or whole. */
static int read_ident(struct store *st, struct ident *id, struct err *e)
{
    static const char *sql = "SELECT (SELECT application_id FROM pragma_application_id), "
                             "(SELECT user_version FROM pragma_user_version), "
                             "(SELECT count(*) FROM sqlite_schema)";
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return store_sql_err(st, rc, "cannot open the database", sql, e);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        id->app = sqlite3_column_int64(stmt, 0);
        id->version = sqlite3_column_int64(stmt, 1);
        id->objects = sqlite3_column_int64(stmt, 2);
        rc = 0;
    } else {
        rc = store_sql_err(st, rc, "cannot open the database", sql, e);
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* Whether the identity is a vmsnap database this build reads, or an empty file. */
static int check_ident(struct store *st, const struct ident *id, struct err *e)
{
    if (id->app == 0 && id->version == 0 && id->objects == 0)
        return 0;
    if (id->app == 0)
        return err_set(e, ERR_NOTVMSNAP,
                       "'%s' is not a vmsnap database (an SQLite file of another program)",
                       st->path);
    return store_refuse_identity(st->path, id->app, id->version, e);
}

/* Whether a vmsnap file's schema is the one its version's migrations make. */
static int check_made(struct store *st, const struct ident *id, struct err *e)
{
    if (id->app != STORE_APPLICATION_ID || id->version <= 0)
        return 0;
    return store_check_schema(st->db, "main", st->path, (int)id->version, e);
}

static void (*slow_migration)(const char *path, int from, int to);
static int64_t slow_migration_us;

void store_on_slow_migration(void (*notice)(const char *path, int from, int to), int64_t after_us)
{
    slow_migration = notice;
    slow_migration_us = after_us;
}

/* A migration under way: when it began, and whether it has been said to be slow. */
struct migration_watch {
    const char *path;
    int from, to;
    int64_t began_us;
    int said;
};

static int watch_migration(void *arg)
{
    struct migration_watch *m = arg;
    if (!m->said && plat_monotonic_us() - m->began_us >= slow_migration_us) {
        m->said = 1;
        slow_migration(m->path, m->from, m->to);
    }
    return 0;
}

/*
 * Brings the file to max_version in one write transaction. The identity is read again inside
 * it: another process may have created or migrated the file since we first looked, and then
 * there is nothing left to do.
 */
static int migrate(struct store *st, int max_version, struct err *e)
{
    struct ident id;
    int rc = store_begin(st, e);
    if (rc < 0)
        return rc;
    if ((rc = read_ident(st, &id, e)) < 0 || (rc = check_ident(st, &id, e)) < 0 ||
        (rc = check_made(st, &id, e)) < 0)
        goto fail;
    struct migration_watch watch = {st->path, (int)id.version, max_version, plat_monotonic_us(), 0};
    if (slow_migration && id.version > 0 && id.version < max_version)
        sqlite3_progress_handler(st->db, 100000, watch_migration, &watch);
    for (int i = 0; i < store_migrations_count; i++) {
        const struct store_migration *m = &store_migrations[i];
        if (m->version <= id.version || m->version > max_version)
            continue;
        char *sql = xasprintf("%s\nPRAGMA application_id = %d;\nPRAGMA user_version = %d;", m->sql,
                              STORE_APPLICATION_ID, m->version);
        rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            char what[128];
            snprintf(what, sizeof(what), "cannot apply migration %s", m->name);
            rc = store_sql_err(st, rc, what, sql, e);
        }
        free(sql);
        if (rc < 0)
            goto fail;
    }
    sqlite3_progress_handler(st->db, 0, NULL, NULL);
    return store_commit(st, e);
fail:
    sqlite3_progress_handler(st->db, 0, NULL, NULL);
    store_rollback(st);
    return rc;
}

static int identify(struct store *st, int mode, int max_version, struct err *e)
{
    struct ident id;
    int rc;
    if ((rc = read_ident(st, &id, e)) < 0 || (rc = check_ident(st, &id, e)) < 0 ||
        (rc = check_made(st, &id, e)) < 0)
        return rc;
    /* Only a writer turns an empty file into a vmsnap database. */
    if (id.app == 0 && (mode == STORE_READ || !st->writable))
        return err_set(e, ERR_NOTVMSNAP, "'%s' is an empty database, not a vmsnap recording",
                       st->path);
    if (st->writable) {
        sqlite3_stmt *stmt = NULL;
        /* A new file holds nothing to lose: turning it into WAL needs neither the disk (five
         * syncs, ~5 ms) nor a rollback journal, which a process killed there would leave hot
         * beside the file (a read-only reader then cannot open it). */
        if (id.app == 0 &&
            (rc = store_exec(st, "PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY", e)) < 0)
            return rc;
        /* WAL lets sqlite3 and other readers work while a recording goes on. */
        if ((rc = store_prepare(st, "PRAGMA journal_mode = WAL", &stmt, e)) < 0)
            return rc;
        rc = sqlite3_step(stmt);
        int wal = rc == SQLITE_ROW &&
                  sqlite3_stricmp((const char *)sqlite3_column_text(stmt, 0), "wal") == 0;
        sqlite3_finalize(stmt);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return store_sql_err(st, rc, "cannot open the database", "PRAGMA journal_mode = WAL",
                                 e);
        if (!wal)
            return err_set(e, ERR_IO,
                           "cannot open database '%s': SQLite cannot keep its write-ahead log "
                           "there (a file system without shared memory?) -- use a local disk",
                           st->path);
        /* Small caches: a first snapshot of a large process (megabytes in one transaction,
         * pages written once in rowid order) spills to the WAL as it goes at no measurable
         * cost, and the whole-recording reads of growth, report and diff read each page once.
         * A 64 MiB cache only held what would not be read again: peak RSS 3 MiB (snap) to
         * 45 MiB (report) higher, and the page faults made them slower.
         * A writer checkpoints every 10,000 pages of WAL (~40 MiB), not 1,000: a recorded
         * tree's tick rewrites the same pages (a leaf of each process's snapshots), and a page
         * written to the WAL many times reaches the database once a checkpoint. Following 200
         * processes wrote 6.2x what the database grew to disk, not 10x (BENCHMARKS.md). */
        const char *tune = mode == STORE_WRITE ? "PRAGMA synchronous = NORMAL; "
                                                 "PRAGMA cache_size = -1024; "
                                                 "PRAGMA wal_autocheckpoint = 10000"
                                               : "PRAGMA synchronous = NORMAL; "
                                                 "PRAGMA cache_size = -2048";
        if ((rc = store_exec(st, tune, e)) < 0)
            return rc;
    }
    if (id.version >= max_version)
        return 0;
    if (!st->writable)
        return err_set(e, ERR_READONLY,
                       "database '%s' needs migrating to schema %d but is read-only", st->path,
                       max_version);
    return migrate(st, max_version, e);
}

/* Each writer's transaction is short; opening waits this long for the others before it fails. */
#define STORE_OPEN_WAIT_MS 30000

/*
 * vmsnap uses SQLite from one thread: no mutexes, and no memory statistics (they take a mutex
 * around every allocation). Must run before SQLite initialises; if something else used it
 * first, this changes nothing and costs nothing.
 */
static int count_memory;

void store_count_memory(void)
{
    count_memory = 1;
}

static void configure_sqlite(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, count_memory);
    store_guard_install();
}

int store_open_version(struct store **out, const char *path, int mode, int max_version,
                       struct err *e)
{
    int exists = 0, rc;
    struct store *st = NULL;
    struct plat_fds *fds = NULL;
    int made = 0;
    *out = NULL;
    struct plat_file seen;
    rc = store_check_header(path, mode, &exists, &seen, e);
    if (rc < 0)
        return rc;
    if (!exists && mode == STORE_READ)
        return err_set(e, ERR_NOTFOUND,
                       "no database at '%s' -- record one with 'vmsnap snap -p PID', or name one "
                       "with -d",
                       path);
    if (!exists) {
        /* An address map defeats ASLR for whoever reads it: only the owner may. Several
         * processes may race to create the file: one does, the others open what it made. */
        rc = plat_create_private(path);
        if (rc < 0)
            return err_set(e, rc == -EACCES || rc == -EROFS ? ERR_READONLY : ERR_IO,
                           "cannot create database '%s': %s", path, strerror(-rc));
        if ((rc = store_check_header(path, mode, &exists, &seen, e)) < 0)
            return rc;
    }
    configure_sqlite();
    st = xcalloc(1, sizeof(*st));
    st->path = xstrdup(path);
    st->writable = plat_writable(path);
    st->dev = seen.dev;
    st->ino = seen.ino;
    if (mode == STORE_WRITE && !st->writable) {
        rc = err_set(e, ERR_READONLY, "cannot write to database '%s': permission denied", path);
        goto fail;
    }
    char *uri = mode == STORE_READ ? store_immutable_uri(path) : NULL;
    if (uri)
        st->writable = 0;
    int flags = (st->writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
                SQLITE_OPEN_NOMUTEX | (uri ? SQLITE_OPEN_URI : 0);
    if (mode == STORE_WRITE && (rc = store_prepare_companions(path, &made, e)) < 0)
        goto fail;
    fds = plat_fds_now();
    rc = sqlite3_open_v2(uri ? uri : path, &st->db, flags, NULL);
    free(uri);
    if (rc != SQLITE_OK) {
        rc = store_sql_err(st, rc, "cannot open database", NULL, e);
        goto fail;
    }
    /* From the first statement on, the companions SQLite opens are held to a writer's rules. */
    if (mode == STORE_WRITE) {
        st->guarded = 1;
        store_guard_writer(sqlite3_db_filename(st->db, "main"), 1);
    }
    /* Before any statement reads or writes it: the file opened is the file checked. */
    if ((rc = store_check_opened(st, mode, &seen, fds, 1, e)) < 0)
        goto fail;
    plat_fds_free(fds);
    fds = plat_fds_now();
    store_distrust(st->db);
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STORE_BUSY_MS);
    /* Some lock conflicts (a file turning into WAL, a WAL being recovered) are reported at
     * once rather than waited out by the busy handler: wait them out here. */
    int64_t deadline = plat_monotonic_us() / 1000 + STORE_OPEN_WAIT_MS;
    while ((rc = identify(st, mode, max_version, e)) == ERR_LOCKED &&
           plat_monotonic_us() / 1000 < deadline)
        plat_sleep_ms(20);
    if (rc < 0)
        goto fail;
    /* The -wal and -shm files the first read opened. */
    if ((rc = store_check_opened(st, mode, &seen, fds, 0, e)) < 0)
        goto fail;
    if (mode == STORE_WRITE && exists && (rc = store_check_integrity(st, e)) < 0)
        goto fail;
    plat_fds_free(fds);
    *out = st;
    return 0;
fail:
    plat_fds_free(fds);
    store_close(st);
    if (rc == ERR_NOTVMSNAP || rc == ERR_NEWER)
        store_drop_made_companions(path, made);
    return rc;
}

int store_open(struct store **out, const char *path, int mode, struct err *e)
{
    return store_open_version(out, path, mode, store_schema_version(), e);
}

void store_close(struct store *st)
{
    if (!st)
        return;
    /* Closing may still open a companion (to checkpoint): unguarded only after. */
    char *guarded = st->guarded ? xstrdup(sqlite3_db_filename(st->db, "main")) : NULL;
    if (st->db)
        sqlite3_close_v2(st->db);
    store_guard_writer(guarded, 0);
    free(guarded);
    free(st->path);
    free(st);
}

void store_format_time(int64_t unix_ms, char out[32])
{
    struct tm tm;
    plat_gmtime(unix_ms / 1000, &tm);
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(unix_ms % 1000));
}

int64_t store_db_bytes(struct store *st)
{
    static const char *sql = "SELECT (SELECT page_count FROM pragma_page_count) * "
                             "(SELECT page_size FROM pragma_page_size)";
    sqlite3_stmt *stmt = NULL;
    int64_t bytes = -1;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        bytes = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return bytes;
}
