/* Opening, identifying and migrating a vmsnap database; targets. */
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

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The -wal and -shm files SQLite keeps beside the database must be as private as the file. */
static int check_companions(const char *path, struct err *e)
{
    const char *const *suffix = store_companion;
    for (size_t i = 0; i < STORE_COMPANIONS; i++) {
        char *name = xasprintf("%s%s", path, suffix[i]);
        struct plat_file f;
        char what[32];
        snprintf(what, sizeof(what), "%s file", suffix[i] + 1);
        int rc = plat_file_stat(name, &f);
        free(name);
        if (rc == 0 && f.kind != PLAT_FILE_MISSING &&
            (rc = store_check_companion(path, what, &f, e)) < 0)
            return rc;
    }
    return 0;
}

/* Refuses another program's application id, or a schema newer than this build's. */
static int refuse_identity(const char *path, int64_t app, int64_t version, struct err *e)
{
    if (app != 0 && app != STORE_APPLICATION_ID)
        return err_set(e, ERR_NOTVMSNAP,
                       "'%s' is not a vmsnap database (application_id 0x%08llx belongs to another "
                       "program)",
                       path, (unsigned long long)app);
    if (app == STORE_APPLICATION_ID && version > store_schema_version())
        return err_set(e, ERR_NEWER,
                       "'%s' was written by a newer vmsnap (schema %lld; this one reads up to %d) "
                       "-- upgrade vmsnap",
                       path, (long long)version, store_schema_version());
    return 0;
}

/*
 * Looks at what is at path, then at the raw file header, before SQLite touches the file, so a
 * FIFO or device is never opened and a foreign or newer file is refused without SQLite creating
 * a journal or changing anything.
 */
static int check_header(const char *path, int mode, int *exists, struct plat_file *seen,
                        struct err *e)
{
    unsigned char h[100];
    struct plat_file f;
    *exists = 0;
    int rc = plat_file_stat(path, &f);
    *seen = f;
    if (rc < 0)
        return err_set(e, rc == -EACCES ? ERR_PERM : ERR_IO, "cannot open database '%s': %s", path,
                       strerror(-rc));
    if (f.kind == PLAT_FILE_MISSING)
        return 0;
    *exists = 1;
    if (f.kind == PLAT_FILE_DIR)
        return err_set(e, ERR_NOTVMSNAP, "'%s' is a directory, not a vmsnap database", path);
    if (f.kind != PLAT_FILE_REGULAR)
        return err_set(e, ERR_NOTVMSNAP,
                       "'%s' is not a regular file (a FIFO, device or socket), not a vmsnap "
                       "database -- name a database file with -d",
                       path);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == EACCES)
            return err_set(e, ERR_READONLY, "cannot open database '%s': permission denied", path);
        return err_set(e, ERR_IO, "cannot open database '%s': %s", path, strerror(errno));
    }
    size_t n = fread(h, 1, sizeof(h), fp);
    fclose(fp);
    /* An empty file becomes a new database. */
    if (n > 0 && (n < sizeof(h) || memcmp(h, "SQLite format 3", 16) != 0))
        return err_set(e, ERR_NOTVMSNAP, "'%s' is not a vmsnap database (not an SQLite file)",
                       path);
    uint32_t app = n ? be32(h + 68) : 0, version = n ? be32(h + 60) : 0;
    if ((rc = refuse_identity(path, app, version, e)) < 0)
        return rc;
    /* No application id but tables (a table needs a page of its own): another program's file.
     * vmsnap sets its id in the transaction that creates its tables; in WAL mode (bytes 18 and
     * 19 are 2) that transaction may still be in the -wal while a checkpoint has already grown
     * the file, so such a file is left to SQLite, which reads the -wal too (check_ident). */
    uint32_t page_size = n ? ((uint32_t)h[16] << 8 | h[17]) : 0;
    if (page_size == 1)
        page_size = 65536;
    int wal = n && h[18] == 2 && h[19] == 2;
    if (n && app == 0 && !wal && page_size && f.size > (int64_t)page_size)
        return err_set(e, ERR_NOTVMSNAP,
                       "'%s' is not a vmsnap database (an SQLite file of another program)", path);
    if (mode == STORE_WRITE && ((rc = store_check_private(path, "file", &f, e)) < 0 ||
                                (rc = check_companions(path, e)) < 0))
        return rc;
    return 0;
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

/*
 * A file may have been crafted: nothing in it may run code or take vmsnap's time. Defensive mode
 * keeps SQL from corrupting the file (writable_schema and the like), an untrusted schema may
 * call only innocuous functions, the FTS3 tokenizer's pointer form and extensions stay off,
 * and no trigger fires (vmsnap creates none). One value may hold at most STORE_MAX_VALUE bytes,
 * so a 1 GB "path" is refused by SQLite rather than read.
 */
static void distrust(sqlite3 *db)
{
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, STORE_MAX_VALUE);
}

struct schema {
    size_t n;
    char **key, **sql; /* "type name" and its CREATE statement, sorted by key */
};

static void schema_release(struct schema *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->key[i]);
        free(s->sql[i]);
    }
    free(s->key);
    free(s->sql);
    memset(s, 0, sizeof(*s));
}

/* Reads db's schema into out: SQLITE_OK or SQLite's error. */
static int schema_read(sqlite3 *db, const char *schema_name, struct schema *out)
{
    sqlite3_stmt *stmt = NULL;
    char *sql = sqlite3_mprintf("SELECT type || ' ' || name, coalesce(sql, '') FROM "
                                "\"%w\".sqlite_schema ORDER BY 1",
                                schema_name);
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    sqlite3_free(sql);
    size_t cap = 0;
    memset(out, 0, sizeof(*out));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(stmt)) != SQLITE_ROW)
            break;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 32;
            out->key = xreallocarray(out->key, cap, sizeof(*out->key));
            out->sql = xreallocarray(out->sql, cap, sizeof(*out->sql));
        }
        out->key[out->n] = store_col_text(stmt, 0);
        out->sql[out->n] = store_col_text(stmt, 1);
        if (!out->key[out->n])
            out->key[out->n] = xstrdup("");
        out->n++;
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_DONE)
        return SQLITE_OK;
    schema_release(out);
    return rc;
}

/* Undoes the escapes of schema/reference.txt (backslash n, t, or itself) in the n bytes at s. */
static char *unescape(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            *o++ = s[i + 1] == 'n' ? '\n' : s[i + 1] == 't' ? '\t' : s[i + 1];
            i++;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/*
 * The schema vmsnap's own migrations make at version, from schema/reference.txt (embedded at
 * build time; test_store checks it against the migrations), read once and kept. Building it
 * from the migrations at every open cost 3-5 ms.
 */
static const struct schema *reference_schema(int version)
{
    static struct schema made[64];
    static int done[64];
    if (version <= 0 || version >= 64)
        return NULL;
    if (done[version])
        return &made[version];
    struct schema *sc = &made[version];
    size_t cap = 0;
    for (const char *p = store_schema_reference, *end = p + store_schema_reference_len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *t1 = memchr(p, '\t', (size_t)(line_end - p));
        const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(line_end - t1 - 1)) : NULL;
        if (*p != '#' && t2 && atoi(p) == version) {
            if (sc->n == cap) {
                cap = cap ? 2 * cap : 32;
                sc->key = xreallocarray(sc->key, cap, sizeof(*sc->key));
                sc->sql = xreallocarray(sc->sql, cap, sizeof(*sc->sql));
            }
            sc->key[sc->n] = xstrndup(t1 + 1, (size_t)(t2 - t1 - 1));
            sc->sql[sc->n] = unescape(t2 + 1, (size_t)(line_end - t2 - 1));
            sc->n++;
        }
        p = line_end + 1;
    }
    if (!sc->n)
        return NULL;
    done[version] = 1;
    return sc;
}

/* What a file may hold besides vmsnap's own objects: a user's table, index or view (they run
 * nothing when vmsnap reads or writes), and SQLite's statistics. Never a trigger or a virtual
 * table, whose code would run. */
static int extra_allowed(const char *key, const char *sql)
{
    if (strncmp(key, "trigger ", 8) == 0)
        return 0;
    if (sqlite3_strnicmp(sql, "CREATE VIRTUAL", 14) == 0)
        return 0;
    return strncmp(key, "table ", 6) == 0 || strncmp(key, "index ", 6) == 0 ||
           strncmp(key, "view ", 5) == 0;
}

int store_check_schema(sqlite3 *db, const char *schema_name, const char *path, int version,
                       struct err *e)
{
    const struct schema *ref = reference_schema(version);
    struct schema got;
    if (!ref)
        return err_set(e, ERR_DB, "cannot check '%s': vmsnap's own schema %d does not build", path,
                       version);
    int rc = schema_read(db, schema_name, &got);
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
            return err_set(e, ERR_LOCKED,
                           "cannot open the database: database '%s' is locked by another "
                           "process -- try again later",
                           path);
        return err_set(e, ERR_CORRUPT,
                       "'%s' is damaged (%s) -- copy out what it holds with 'sqlite3 %s "
                       ".recover'",
                       path, sqlite3_errmsg(db), path);
    }
    /* Both lists are sorted by key: walk them side by side to the first difference. */
    const char *what = NULL, *before = NULL, *after = NULL;
    size_t i = 0, j = 0;
    while (!what && (i < ref->n || j < got.n)) {
        int c = i == ref->n ? 1 : j == got.n ? -1 : strcmp(ref->key[i], got.key[j]);
        if (c < 0) {
            what = ref->key[i], before = "it lacks vmsnap's ", after = "";
        } else if (c > 0) {
            if (!extra_allowed(got.key[j], got.sql[j]))
                what = got.key[j], before = "it holds a ", after = ", which vmsnap never makes";
            j++;
        } else {
            if (strcmp(ref->sql[i], got.sql[j]) != 0)
                what = ref->key[i], before = "its ", after = " is not the one vmsnap makes";
            i++, j++;
        }
    }
    rc = 0;
    if (what) {
        const char *name = strchr(what, ' ');
        rc = err_set(e, ERR_NOTVMSNAP,
                     "refusing '%s': %s%.*s '%s'%s -- a crafted or hand-edited file; copy what "
                     "you need out of it with sqlite3",
                     path, before, (int)strcspn(what, " "), what, name ? name + 1 : "", after);
    }
    schema_release(&got);
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
    return refuse_identity(st->path, id->app, id->version, e);
}

/* Whether a vmsnap file's schema is the one its version's migrations make. */
static int check_made(struct store *st, const struct ident *id, struct err *e)
{
    if (id->app != STORE_APPLICATION_ID || id->version <= 0)
        return 0;
    return store_check_schema(st->db, "main", st->path, (int)id->version, e);
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
    return store_commit(st, e);
fail:
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
         * 45 MiB (report) higher, and the page faults made them slower. */
        const char *tune = mode == STORE_WRITE
                               ? "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -1024"
                               : "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -2048";
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

/*
 * A damaged file is noticed before anything is written into it: SQLite only sees damage in the
 * pages a statement reads, and a snapshot reads few. Costs about 7 ms per MiB of database.
 */
static int check_integrity(struct store *st, struct err *e)
{
    static const char *sql = "PRAGMA quick_check(1)";
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return store_sql_err(st, rc, "cannot check the database", sql, e);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const char *res = (const char *)sqlite3_column_text(stmt, 0);
        /* The first finding, on one line: "*** in database main ***\nPage 2: ...". */
        if (res && strncmp(res, "***", 3) == 0 && strchr(res, '\n'))
            res = strchr(res, '\n') + 1;
        if (res && strcmp(res, "ok") != 0)
            rc = err_set(e, ERR_CORRUPT,
                         "database '%s' is damaged (%.*s) -- nothing was written; copy out what "
                         "it holds with 'sqlite3 %s .recover'",
                         st->path, (int)strcspn(res, "\n"), res, st->path);
        else
            rc = 0;
    } else {
        rc = store_sql_err(st, rc, "cannot check the database", sql, e);
    }
    sqlite3_finalize(stmt);
    return rc;
}

/*
 * The files SQLite opened are the ones that were checked. The path was examined before SQLite
 * opened it by name: somebody who may write its directory could have put another file there in
 * between (6 of 13 tries as root against `nobody`), or planted a -wal beside it. The database
 * must be the file checked, and for a writer every file SQLite opened must be private and ours.
 */
static int check_opened(struct store *st, int mode, const struct plat_file *seen,
                        const struct plat_fds *before, int want_main, struct err *e)
{
    struct plat_file *v = NULL;
    size_t n = plat_fds_opened(before, &v), main = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (v[i].dev == seen->dev && v[i].ino == seen->ino) {
            if (++main > (size_t)want_main)
                rc = err_set(e, ERR_PERM,
                             "refusing '%s': a file beside it (-wal or -shm) is the database "
                             "under another name -- remove it",
                             st->path);
            /* The same inode number, and yet another file: the one checked was replaced and
             * its number given to somebody else's new file. */
            else if (mode == STORE_WRITE)
                rc = store_check_private(st->path, "file", &v[i], e);
            continue;
        }
        if (mode == STORE_WRITE)
            rc = store_check_companion(st->path, "wal or shm file", &v[i], e);
    }
    if (rc == 0 && want_main && n && !main)
        rc = err_set(e, ERR_PERM,
                     "refusing '%s': it was replaced while it was being opened -- nothing was "
                     "%s; check who else may write its directory",
                     st->path, mode == STORE_WRITE ? "written" : "read");
    free(v);
    return rc;
}

/*
 * Before SQLite opens the -wal and -shm files by name, a writer makes sure they are its own: in
 * a directory where others may rename files (not sticky) nothing can be trusted, and elsewhere a
 * file that is ours cannot be swapped, so the missing ones are created here, private, rather
 * than left for somebody else to plant first (in /tmp, say).
 */
static int prepare_companions(const char *path, int *made, struct err *e)
{
    char *dir = NULL;
    if (plat_dir_shared(path, &dir)) {
        int rc = err_set(e, ERR_PERM,
                         "refusing to write to '%s': other users may rename files in its "
                         "directory '%s' -- use a directory of your own (or a sticky one such "
                         "as /tmp) with -d",
                         path, dir);
        free(dir);
        return rc;
    }
    free(dir);
    *made = 0;
    for (size_t i = 0; i < STORE_COMPANIONS_WAL; i++) {
        char *name = xasprintf("%s%s", path, store_companion[i]);
        if (plat_create_private(name) == 0)
            *made |= 1 << i;
        free(name);
    }
    return check_companions(path, e);
}

/*
 * Removes the -wal and -shm beside path that are regular files and that drop(ctx, i, f) says go
 * (i: which companion; f: what is there).
 */
static void drop_companions(const char *path,
                            int (*drop)(void *ctx, int i, const struct plat_file *f), void *ctx)
{
    for (size_t i = 0; i < STORE_COMPANIONS_WAL; i++) {
        char *name = xasprintf("%s%s", path, store_companion[i]);
        struct plat_file f;
        if (plat_file_stat(name, &f) == 0 && f.kind == PLAT_FILE_REGULAR && drop(ctx, (int)i, &f))
            remove(name);
        free(name);
    }
}

/* A file refused for what it is keeps nothing of ours beside it: the -wal and -shm made for it
 * go, when they are still empty. */
static int still_made_empty(void *made, int i, const struct plat_file *f)
{
    return (*(int *)made & (1 << i)) && f->owned && f->size == 0;
}

static void drop_made_companions(const char *path, int made)
{
    drop_companions(path, still_made_empty, &made);
}

/*
 * A reader of a file in a directory it may not write (someone else's recording, a read-only
 * mount) cannot make the -shm that WAL mode reads through. When no -wal is there either, the
 * file was closed cleanly and no writer works on it (a writer needs that directory too): it is
 * read as immutable, without the -shm. Returns the URI to open (caller frees), or NULL to open
 * the path as usual.
 */
static char *immutable_uri(const char *path)
{
    char *dir = plat_dirname(path);
    char *wal = xasprintf("%s-wal", path), *shm = xasprintf("%s-shm", path);
    struct plat_file w, m;
    int cannot = !plat_writable(dir) && plat_file_stat(wal, &w) == 0 &&
                 w.kind == PLAT_FILE_MISSING && plat_file_stat(shm, &m) == 0 &&
                 m.kind == PLAT_FILE_MISSING;
    free(dir);
    free(wal);
    free(shm);
    if (!cannot)
        return NULL;
    /* "file:" and the path, its '%', '?', '#' and '\' escaped as URI filenames want. */
    char *uri = xmalloc(strlen(path) * 3 + 32), *o = uri;
    o += sprintf(o, "file:");
    for (const char *p = path; *p; p++) {
        if (*p == '%' || *p == '?' || *p == '#' || *p == '\\')
            o += sprintf(o, "%%%02X", (unsigned char)*p);
        else
            *o++ = *p;
    }
    sprintf(o, "?immutable=1");
    return uri;
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
    rc = check_header(path, mode, &exists, &seen, e);
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
        if ((rc = check_header(path, mode, &exists, &seen, e)) < 0)
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
    char *uri = mode == STORE_READ ? immutable_uri(path) : NULL;
    if (uri)
        st->writable = 0;
    int flags = (st->writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
                SQLITE_OPEN_NOMUTEX | (uri ? SQLITE_OPEN_URI : 0);
    if (mode == STORE_WRITE && (rc = prepare_companions(path, &made, e)) < 0)
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
    if ((rc = check_opened(st, mode, &seen, fds, 1, e)) < 0)
        goto fail;
    plat_fds_free(fds);
    fds = plat_fds_now();
    distrust(st->db);
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
    if ((rc = check_opened(st, mode, &seen, fds, 0, e)) < 0)
        goto fail;
    if (mode == STORE_WRITE && exists && (rc = check_integrity(st, e)) < 0)
        goto fail;
    plat_fds_free(fds);
    *out = st;
    return 0;
fail:
    plat_fds_free(fds);
    store_close(st);
    if (rc == ERR_NOTVMSNAP || rc == ERR_NEWER)
        drop_made_companions(path, made);
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
                        int64_t parent_target_id, int64_t *target_id, struct err *e)
{
    static const char *sql =
        "INSERT INTO targets (pid, start_time, exe, cmdline, host, os, boot_id, exec_key, "
        "first_seen, parent_target_id) VALUES (:pid, :start, :exe, :cmdline, :host, :os, :boot, "
        ":exec, :seen, :parent)";
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
    rc = store_stmt_run(&q, e);
    store_stmt_finalize(&q);
    if (rc < 0)
        return rc;
    *target_id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

/* Whether this process has f open (then it is this connection's -wal or -shm). */
static int open_here(void *ctx, int i, const struct plat_file *f)
{
    (void)ctx;
    (void)i;
    char *open_as = NULL;
    int yes = plat_open_file_path(f->dev, f->ino, &open_as);
    free(open_as);
    return yes;
}

/* Removes the -wal and -shm at the database's name when they are the ones this connection has
 * open (a file moved or deleted left them behind): a new database made at that name must never
 * take them for its own. */
static void drop_own_companions(struct store *st)
{
    drop_companions(st->path, open_here, NULL);
}

/* Writes everything the connection reads into a new private file at path. */
static int copy_whole(struct store *st, const char *path)
{
    if (plat_create_private(path) != 0)
        return -1;
    sqlite3_stmt *s = NULL;
    int ok = sqlite3_prepare_v2(st->db, "VACUUM INTO ?1", -1, &s, NULL) == SQLITE_OK &&
             sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_step(s) == SQLITE_DONE;
    sqlite3_finalize(s);
    if (!ok)
        remove(path);
    return ok ? 0 : -1;
}

int store_check_place(struct store *st, struct err *e)
{
    struct plat_file f;
    if (!st->dev && !st->ino)
        return 0; /* the OS does not say which file it is */
    if (plat_file_stat(st->path, &f) == 0 && f.kind == PLAT_FILE_REGULAR && f.dev == st->dev &&
        f.ino == st->ino)
        return 0;
    /* What was committed may still be in the -wal at the old name, which SQLite no longer
     * checkpoints into a moved file: the connection reads it all, and it is written whole. */
    char *now = NULL;
    int rc;
    if (plat_open_file_path(st->dev, st->ino, &now)) {
        char *tmp = xasprintf("%s.whole-%lld", now, (long long)plat_getpid());
        int ok = copy_whole(st, tmp) == 0 && plat_replace(tmp, now) == 0;
        if (!ok)
            remove(tmp);
        free(tmp);
        if (ok)
            drop_own_companions(st);
        rc = ok ? err_set(e, ERR_IO,
                          "'%s' was moved to '%s' while recording: what was recorded is there, "
                          "whole -- stopping; record on with -d '%s'",
                          st->path, now, now)
                : err_set(e, ERR_IO,
                          "'%s' was moved to '%s' while recording -- stopping; what was "
                          "recorded is in '%s' and '%s-wal' (open it with sqlite3 there)",
                          st->path, now, now, st->path);
    } else {
        /* Deleted: what it holds is still readable through the open file. Written again at its
         * name, privately, when its directory is still there. */
        drop_own_companions(st);
        rc = copy_whole(st, st->path) == 0
                 ? err_set(e, ERR_IO,
                           "'%s' was deleted while recording: what was recorded is written "
                           "again at that name -- stopping",
                           st->path)
                 : err_set(e, ERR_IO,
                           "'%s' was deleted while recording (its directory too): what was "
                           "recorded is lost -- stopping",
                           st->path);
    }
    free(now);
    return rc;
}

int store_names_its_file(const char *db, const char *path)
{
    if (plat_same_file(path, db))
        return 1;
    for (size_t i = 0; i < STORE_COMPANIONS; i++) {
        char *side = xasprintf("%s%s", db, store_companion[i]);
        int same = plat_same_file(path, side);
        free(side);
        if (same)
            return 2;
    }
    return 0;
}
