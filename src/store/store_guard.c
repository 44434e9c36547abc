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

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

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

#ifndef _WIN32
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
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return fd;
    struct plat_file f = {
        .kind = S_ISREG(sb.st_mode) ? PLAT_FILE_REGULAR : PLAT_FILE_OTHER,
        .owned = sb.st_uid == geteuid(),
        .shared = (sb.st_mode & (S_IRWXG | S_IRWXO)) != 0,
        .links = (uint64_t)sb.st_nlink,
    };
    struct err scratch;
    if (store_check_companion(name, "file", &f, &scratch) == 0)
        return fd;
    close(fd);
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
#endif

void store_guard_install(void)
{
#ifndef _WIN32
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
#endif
}
