/* Helpers shared by the tests: fixtures, temporary files, live child processes, running vmsnap. */
#ifndef VMSNAP_TESTUTIL_H
#define VMSNAP_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <cmocka.h>

/* Reads a whole file; aborts the test if it cannot. Caller frees. */
char *tu_read_file(const char *path, size_t *len);
/* Reads tests/fixtures/NAME. */
char *tu_fixture(const char *name, size_t *len);
/* Writes len bytes of text to path; copies the file from to to. Fail the test when they cannot. */
void tu_write_file(const char *path, const char *text, size_t len);
void tu_copy_file(const char *from, const char *to);
/*
 * Rows for a database of the first schema (store_open_version(..., 1)), as an older vmsnap wrote
 * them: target 1 (pid 4242), three snapshots, a region alive throughout, one that ended at
 * snapshot 2, one born at 3.
 */
extern const char tu_schema1_rows[];
/*
 * A file system of `size` bytes (a tmpfs, e.g. "2m") mounted on a fresh directory, returned (the
 * caller unmounts and frees it); NULL when it cannot be mounted (not root): the test skips.
 */
char *tu_small_fs(const char *size);
/* Fills the file system that holds dir with a file dir/filler, leaving about `leave` bytes. */
void tu_fill_fs(const char *dir, long leave);
/* A fresh directory under /tmp; caller frees the string (the directory is left for inspection). */
char *tu_tmpdir(void);

/* A vm_child process driven over pipes. */
struct tu_child {
    pid_t pid;
    int in, out; /* its stdin (we write), its stdout (we read) */
};
void tu_child_start(struct tu_child *c);
/* Sends a command line and returns the reply line ("ok ..." / "err ..."), static storage. */
const char *tu_child_cmd(struct tu_child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Like tu_child_cmd, but fails the test unless the reply is "ok"; returns the value after it. */
uint64_t tu_child_ok(struct tu_child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Ends the child (closing its stdin) and reaps it. */
void tu_child_stop(struct tu_child *c);

/* Result of running a program to completion. */
struct tu_run {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
};
/* Runs argv (NULL-terminated) with VMSNAP_DB unset; captures stdout and stderr. */
void tu_run(struct tu_run *r, char *const argv[]);
/* Runs vmsnap with the given arguments (NULL-terminated list). */
void tu_vmsnap(struct tu_run *r, const char *arg, ...);
void tu_run_release(struct tu_run *r);
/* Fails the test unless r exited 2 with one line "vmsnap: ..." that contains want. */
void tu_assert_trouble(const struct tu_run *r, const char *want);

/* A program started and not yet waited for; its output goes to unlinked temporary files. */
struct tu_proc {
    pid_t pid;
    int out_fd, err_fd;
};
void tu_spawn(struct tu_proc *p, char *const argv[]);
/* Starts vmsnap with the given arguments (NULL-terminated list). */
void tu_spawn_vmsnap(struct tu_proc *p, const char *arg, ...);
/* Waits for p and collects its status and output. */
void tu_wait(struct tu_proc *p, struct tu_run *r);
/* Like tu_wait, but kills p (SIGKILL) once it has run ms milliseconds: 1 when it had to. */
int tu_wait_limited(struct tu_proc *p, struct tu_run *r, int ms);

/* A path NAME in a fresh directory under /tmp; the directory goes to *dir when dir is not
 * NULL. Caller frees both. */
char *tu_tmppath(const char *name, char **dir);

/* One mapping: range, perms, and (when read from a database) its path. */
struct tu_range {
    uint64_t start, end;
    char perms[5];
    char *path;
};
/* /proc/PID/maps read independently of the parser under test (sscanf): ranges and perms. */
size_t tu_proc_maps(pid_t pid, struct tu_range **out);
/* Appends a range (path copied) to a growable array. */
void tu_ranges_push(struct tu_range **v, size_t *n, size_t *cap, uint64_t start, uint64_t end,
                    const char *perms, const char *path);
void tu_ranges_free(struct tu_range *v, size_t n);

/* A vmsnap database opened read-only (waiting up to 5 s for a writer), for checks in SQL. */
struct sqlite3;
struct sqlite3 *tu_db_open(const char *path);
/* The first column of the first row of the SQL (printf-formatted), or -1 when there is none;
 * fails the test when the SQL is wrong. */
int64_t tu_q64(struct sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The database is intact and every snapshot whole: SQLite's integrity check passes, each
 * target's seqs are 1..n with no gap or repeat, and each snapshot's regions (read back through
 * the regions view) are as many, cover as many bytes, and never overlap, as when it was written.
 * Returns the number of snapshots.
 */
int64_t tu_check_whole(const char *path);

/* Counts the lines of s. */
int tu_count_lines(const char *s);

/* UNDER_ASAN: built with AddressSanitizer, whose shadow memory cannot live under ulimit -v. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#endif

#endif
