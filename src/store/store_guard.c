/*
 * What vmsnap will write into: the rules a database and the files SQLite keeps beside it must
 * meet, and the guard that holds SQLite's own opens to them while a writer works.
 *
 * SQLite opens the -wal, -shm and -journal by name, whenever it needs them (a rollback journal
 * only for the moment of a transaction, gone before vmsnap could look at it). Somebody who may
 * create a name beside the database (in /tmp, or in a directory of theirs) could plant one of
 * their files there and have root write into it. The unix VFS lets its system calls be
 * replaced: its open(2) is wrapped here, and a companion of a database open to write must be a
 * private regular file of ours with no other name, or the open fails (and the statement with
 * it) before anything is read or written. (The files of a database only read -- one merged
 * from -- are left to SQLite.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

int store_check_private(const char *path, const char *what, const struct plat_file *f,
                        struct err *e)
{
    if (f->kind != PLAT_FILE_REGULAR)
        return err_set(e, ERR_PERM,
                       "refusing to write to '%s': its %s is not a regular file -- remove it or "
                       "use another database with -d",
                       path, what);
    if (!f->owned)
        return err_set(e, ERR_PERM,
                       "refusing to write to '%s': its %s belongs to another user -- an address "
                       "map must stay private; use a database of your own with -d",
                       path, what);
    if (f->shared)
        return err_set(e, ERR_PERM,
                       "refusing to write to '%s': other users may open its %s (an address map "
                       "defeats ASLR) -- run 'chmod 600' on it, or use another database with -d",
                       path, what);
    return 0;
}

int store_check_companion(const char *path, const char *what, const struct plat_file *f,
                          struct err *e)
{
    int rc = store_check_private(path, what, f, e);
    if (rc == 0 && f->links > 1)
        rc = err_set(e, ERR_PERM,
                     "refusing to write to '%s': its %s has other names (a hard link) -- remove "
                     "it; SQLite makes a new one",
                     path, what);
    return rc;
}

const char *const store_companion[STORE_COMPANIONS] = {"-wal", "-shm", "-journal"};

/* The databases open to write, as SQLite names them (their companions are these names and a
 * suffix). */
static char **writers;
static size_t n_writers, cap_writers;
/* The companion last refused, and what was wrong with it (NULL when none was). */
static char *refused;
static struct plat_file refused_file;

void store_guard_writer(const char *name, int open)
{
    if (!name || !*name)
        return;
    if (open) {
        /* A refusal nobody asked about belongs to an open long over: it must not name this
         * writer's failures. */
        free(refused);
        refused = NULL;
        writers = xgrow(writers, &cap_writers, n_writers + 1, sizeof(*writers));
        writers[n_writers++] = xstrdup(name);
        return;
    }
    for (size_t w = 0; w < n_writers; w++)
        if (strcmp(writers[w], name) == 0) {
            free(writers[w]);
            writers[w] = writers[--n_writers];
            return;
        }
}

int store_guard_refusal(struct err *e)
{
    if (!refused)
        return 0;
    /* refused is a writer's name and a suffix. */
    char *suffix = strrchr(refused, '-');
    char what[32];
    snprintf(what, sizeof(what), "%s file", suffix + 1);
    *suffix = '\0';
    int rc = store_check_companion(refused, what, &refused_file, e);
    free(refused);
    refused = NULL;
    return rc;
}

/* Which companion of a writer's name is (an index into store_companion), or -1. */
static int companion_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t w = 0; w < n_writers; w++) {
        size_t k = strlen(writers[w]);
        if (n <= k || strncmp(name, writers[w], k) != 0)
            continue;
        for (int i = 0; i < STORE_COMPANIONS; i++)
            if (strcmp(name + k, store_companion[i]) == 0)
                return i;
    }
    return -1;
}

static int (*real_open)(const char *, int, int);

static int guarded_open(const char *name, int flags, int mode)
{
    int fd = real_open(name, flags, mode);
    if (fd < 0 || companion_of(name) < 0)
        return fd;
    struct plat_file f;
    struct err scratch;
    if (plat_fd_file(fd, &f) != 0 || store_check_companion(name, "file", &f, &scratch) == 0)
        return fd;
    plat_close_fd(fd);
    free(refused);
    refused = xstrdup(name);
    refused_file = f;
    errno = EACCES;
    return -1;
}

/* In place of fchown(2): the owner stays (the types are uid_t and gid_t, unsigned int where
 * that VFS exists). */
static int keep_owner(int fd, unsigned uid, unsigned gid)
{
    (void)fd;
    (void)uid;
    (void)gid;
    return 0;
}

/* Only the unix VFS lets its system calls be replaced; elsewhere (Windows) there is none. */
void store_guard_install(void)
{
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
    if (!unix_vfs || unix_vfs->iVersion < 3 || !unix_vfs->xSetSystemCall)
        return;
    /* Run as root, SQLite gives a -wal it opens to whoever owns the file at the database's
     * name at that moment -- somebody who swapped that name would own root's recording. vmsnap
     * writes only files of its own user: nothing is ever given away. */
    unix_vfs->xSetSystemCall(unix_vfs, "fchown", (sqlite3_syscall_ptr)keep_owner);
    real_open = (int (*)(const char *, int, int))unix_vfs->xGetSystemCall(unix_vfs, "open");
    if (real_open)
        unix_vfs->xSetSystemCall(unix_vfs, "open", (sqlite3_syscall_ptr)guarded_open);
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
int store_refuse_identity(const char *path, int64_t app, int64_t version, struct err *e)
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
int store_check_header(const char *path, int mode, int *exists, struct plat_file *seen,
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
    if ((rc = store_refuse_identity(path, app, version, e)) < 0)
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

/*
 * A file may have been crafted: nothing in it may run code or take vmsnap's time. Defensive mode
 * keeps SQL from corrupting the file (writable_schema and the like), an untrusted schema may
 * call only innocuous functions, the FTS3 tokenizer's pointer form and extensions stay off,
 * and no trigger fires (vmsnap creates none). One value may hold at most STORE_MAX_VALUE bytes,
 * so a 1 GB "path" is refused by SQLite rather than read.
 */
void store_distrust(sqlite3 *db)
{
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, STORE_MAX_VALUE);
}

/*
 * A damaged file is noticed before anything is written into it: SQLite only sees damage in the
 * pages a statement reads, and a snapshot reads few. Costs about 7 ms per MiB of database.
 */
int store_check_integrity(struct store *st, struct err *e)
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
int store_check_opened(struct store *st, int mode, const struct plat_file *seen,
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
int store_prepare_companions(const char *path, int *made, struct err *e)
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
void store_drop_companions(const char *path,
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

void store_drop_made_companions(const char *path, int made)
{
    store_drop_companions(path, still_made_empty, &made);
}

/*
 * A reader of a file in a directory it may not write (someone else's recording, a read-only
 * mount) cannot make the -shm that WAL mode reads through. When no -wal is there either, the
 * file was closed cleanly and no writer works on it (a writer needs that directory too): it is
 * read as immutable, without the -shm. Returns the URI to open (caller frees), or NULL to open
 * the path as usual.
 */
char *store_immutable_uri(const char *path)
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
