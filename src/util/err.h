/* Error reporting for the library layers: a negative code plus a message that the CLI prints. */
#ifndef VMSNAP_ERR_H
#define VMSNAP_ERR_H

#include <stddef.h>

#include "util/compiler.h"

enum err_code {
    ERR_OK = 0,
    ERR_IO = -2,         /* a read or write failed; message says which */
    ERR_NOPROC = -3,     /* no such process */
    ERR_PERM = -4,       /* permission denied */
    ERR_ZOMBIE = -5,     /* target is a zombie */
    ERR_KTHREAD = -6,    /* target is a kernel thread */
    ERR_EXITED = -7,     /* target exited (or exec'd) during the walk */
    ERR_PARSE = -8,      /* malformed input text; message has the line number */
    ERR_DB = -9,         /* SQLite failure */
    ERR_NOTVMSNAP = -10, /* file is not a vmsnap database */
    ERR_NEWER = -11,     /* database schema is newer than this build */
    ERR_NOTFOUND = -12,  /* selector or id matched nothing */
    ERR_USAGE = -13,     /* bad argument value */
    ERR_LOCKED = -14,    /* database locked by another process */
    ERR_READONLY = -15,  /* database not writable */
    ERR_FULL = -16,      /* disk or database full */
    ERR_UNSUPPORTED = -17,
    ERR_EXECED = -18,  /* target replaced its program (exec): it is a new target now */
    ERR_CORRUPT = -20, /* the database file is damaged */
};

/* Holds the message for the most recent failure; code mirrors the return value. */
struct err {
    int code;
    char msg[1024];
};

/* Sets e (if not NULL) and returns code, so callers can write `return err_set(e, ...)`. */
int err_set(struct err *e, int code, const char *fmt, ...) VMSNAP_PRINTF(3, 4);

/* Prefixes the existing message with more context: "context: old message". Returns e->code. */
int err_wrap(struct err *e, const char *fmt, ...) VMSNAP_PRINTF(2, 3);

#endif
