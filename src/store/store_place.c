/*
 * Where the database is: a recorder checks its file is still at its name before each write, and
 * says where a moved one went; and which files are the database's own (a report must not
 * overwrite one).
 */
#include <stdio.h>
#include <stdlib.h>

#include "platform/platform.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

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
    store_drop_companions(st->path, open_here, NULL);
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
