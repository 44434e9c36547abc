/*
 * The few things vmsnap needs from the operating system outside capture: clocks, private files,
 * terminals, and the recorder's events (stop, mark, child exit). posix_platform.c and
 * win_platform.c implement it; CMake picks one, so shared code has no #ifdef.
 */
#ifndef VMSNAP_PLATFORM_H
#define VMSNAP_PLATFORM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Unix time in milliseconds. */
int64_t plat_realtime_ms(void);
/* A monotonic clock in microseconds. */
int64_t plat_monotonic_us(void);
void plat_sleep_ms(long ms);
/* UTC broken-down time of a Unix time in seconds. */
void plat_gmtime(int64_t unix_s, struct tm *out);

/* Creates path for its owner only (0600). 0 created, 1 already there, or -errno. */
int plat_create_private(const char *path);
/* The directory that holds path ("." for a bare name), as a new string the caller frees. */
char *plat_dirname(const char *path);
/* The last part of path (not a copy): after its last directory separator ('/', and '\\' on
 * Windows), or path itself when that leaves nothing. */
const char *plat_basename(const char *path);
/* Moves f to byte off from its start: 0, or -1. */
int plat_seek(FILE *f, uint64_t off);

/*
 * Whether users other than the directory's owner may rename or remove others' files in the
 * directory that holds path: it is writable by its group or others and not sticky. *dir gets
 * the directory's name (caller frees).
 */
int plat_dir_shared(const char *path, char **dir);
/* Whether the current user may write path. */
int plat_writable(const char *path);

enum plat_file_kind { PLAT_FILE_MISSING = 0, PLAT_FILE_REGULAR, PLAT_FILE_DIR, PLAT_FILE_OTHER };
/* What is at a path (symlinks followed), without opening it: a FIFO must never be opened. */
struct plat_file {
    int kind;     /* enum plat_file_kind */
    int owned;    /* the file belongs to the current (effective) user */
    int shared;   /* its group or other users have some access to it */
    int64_t size; /* bytes */
    /* Which file it is (0 where the OS does not say) and how many names it has. */
    uint64_t dev, ino;
    uint64_t links;
};
/* Fills out; 0, or -errno when path cannot be examined (ENOENT is not an error: MISSING). */
int plat_file_stat(const char *path, struct plat_file *out);
/* What the open descriptor fd is (as plat_file_stat says of a name): 0, or -errno. */
int plat_fd_file(int fd, struct plat_file *out);
void plat_close_fd(int fd);
/*
 * The descriptors this process has open, to learn which files a library (SQLite) opened by name
 * meanwhile: those are the files it reads and writes, whatever the names point to by then.
 * plat_fds_now may return NULL (the OS cannot tell): plat_fds_opened then finds nothing.
 */
struct plat_fds;
struct plat_fds *plat_fds_now(void);
/* The regular files opened since before, each examined through its descriptor, into out (caller
 * frees); returns how many. */
size_t plat_fds_opened(const struct plat_fds *before, struct plat_file **out);
void plat_fds_free(struct plat_fds *fds);
/* Where the file this process has open as (dev, ino) is now: 1 with its path in *path (caller
 * frees), 0 when it has no name any more (deleted) or cannot be found. */
int plat_open_file_path(uint64_t dev, uint64_t ino, char **path);
int plat_isatty(FILE *f);
/*
 * Opens path to read a saved file from: a regular file, or a pipe (`<(cat maps)`); a FIFO that
 * no program writes reads as empty rather than waiting forever. 0 with *out set, -ENODEV for a
 * device or socket (/dev/zero would never end), -EISDIR, or another -errno.
 */
int plat_open_input(const char *path, FILE **out);
/* Whether a and b name one existing file (else whether the names are equal). */
int plat_same_file(const char *a, const char *b);
/* Renames from to to, replacing what to named. 0, or -errno. */
int plat_replace(const char *from, const char *to);

/*
 * A file written whole or not at all (the HTML report): plat_output_open creates a private (0600)
 * file beside path that nobody else can swap (written through the descriptor it was created
 * with; on Linux it has no name at all until plat_output_commit), plat_output_commit puts it at
 * path, replacing what was there, and plat_output_discard drops it. A process killed meanwhile
 * leaves path as it was and, on Linux, nothing behind.
 */
struct plat_output;
int plat_output_open(const char *path, struct plat_output **out, FILE **f);
/* Closes f (errors in writing it are reported here) and puts the file at path. 0, or -errno. */
int plat_output_commit(struct plat_output *o, FILE *f);
void plat_output_discard(struct plat_output *o, FILE *f);
/* The machine's name, into out. */
void plat_hostname(char *out, size_t n);
/*
 * Says that the n bytes at p will be used whole, soon: the OS may back them with large pages
 * (Linux: transparent huge pages), so that touching megabytes of a fresh array costs a few page
 * faults rather than thousands. Does nothing elsewhere, or for small n.
 */
void plat_advise_large(void *p, size_t n);
/*
 * Lets this process open as many files as its hard limit allows (the soft limit is often 1024
 * or less): a recorder keeps a file open per followed process. 0, or -errno.
 */
int plat_raise_open_files(void);
/* How many more files this process may open before its limit, or -1 when it cannot tell. */
int64_t plat_open_files_left(void);
/* This process's pid. */
int64_t plat_getpid(void);
/*
 * Asks the recorder running as pid to take a mark now (SIGUSR1; on Windows the event
 * Local\vmsnap-mark-PID). 0, or -errno: ESRCH when it is gone, EPERM when it is another
 * user's.
 */
int plat_wake_recorder(int64_t pid);
/*
 * Whether pid runs vmsnap: the same program file as this process, or a process named vmsnap
 * (one started from a vmsnap that has since been upgraded). A crafted database may name any
 * process as its recorder; only a vmsnap may be woken.
 */
int plat_runs_vmsnap(int64_t pid);

/* What wakes a recorder between snapshots. */
enum plat_event {
    PLAT_EV_TIMEOUT = 0, /* the deadline passed */
    PLAT_EV_STOP,        /* SIGINT, SIGTERM, SIGHUP, Ctrl+C: finish and stop */
    PLAT_EV_MARK,        /* SIGUSR1: take one extra snapshot now */
    PLAT_EV_CHILD,       /* the started command may have exited */
};

struct plat_recorder;

/*
 * Starts catching the recorder's events. From now on a stop request never interrupts work in
 * progress: it waits until plat_recorder_wait asks for it. *out is freed by
 * plat_recorder_release.
 */
int plat_recorder_init(struct plat_recorder **out);
enum plat_spawn_flags {
    /* Return once the program is loaded (its libraries mapped), where the OS allows, and hold
     * it there until plat_recorder_let_go. */
    PLAT_SPAWN_LOADED = 1 << 0,
    /* Adopt the orphans of the command's descendants (Linux), so none goes unseen. */
    PLAT_SPAWN_ADOPT = 1 << 1,
};
/*
 * Starts argv[0] (searched in PATH) with argv, the events back to normal for it. Returns its
 * pid, or fills err with why it could not run and returns -1.
 */
int64_t plat_recorder_spawn(struct plat_recorder *r, char **argv, int flags, char *err, size_t n);
/*
 * The command was started by another thread of this process (record --stacks: its tracer),
 * which reaps it: the recorder adopts its orphans (PLAT_SPAWN_ADOPT in flags) and passes stop
 * requests on to it as to one it started. plat_recorder_child_exited then never reports it.
 */
void plat_recorder_adopt(struct plat_recorder *r, int64_t pid, int flags);
#ifdef _WIN32
/* Starts argv[0] with argv (each argument quoted the way the C runtime splits it back), under
 * the calling thread's debugger when debugged (DEBUG_ONLY_THIS_PROCESS): its pid, and *process
 * its handle (a HANDLE, the caller's to close); or -1 with why it could not run in err. */
int64_t plat_win_start(char *const argv[], int debugged, void **process, char *err, size_t n);
/* wlen wide characters (-1: up to the NUL) as UTF-8 (the caller frees it). */
char *plat_utf8_of_wide(const wchar_t *w, int wlen);
#endif
/* Whether pid is a process of the recorder's own (the one that holds the command where it is
 * loaded), not one the command forked. */
int plat_recorder_own(const struct plat_recorder *r, int64_t pid);
/* Lets the command, held where its program is loaded, run on (nothing when it is not held). */
void plat_recorder_let_go(struct plat_recorder *r);
/* Waits until the monotonic time until_us or an event; returns the event. */
int plat_recorder_wait(struct plat_recorder *r, int64_t until_us);
/* Name of the last stop request: "interrupted" or "terminated". */
const char *plat_recorder_stop_reason(const struct plat_recorder *r);
/* Passes a stop request that was sent to vmsnap alone (not to its whole group) to the child. */
void plat_recorder_forward_stop(struct plat_recorder *r);
/* Whether the child has exited (waiting for it when block is set); its status in *status
 * (exit code, or 128 + signal). Other exited children (adopted orphans) are reaped too. */
int plat_recorder_child_exited(struct plat_recorder *r, int block, int *status);
/* Lets events act as usual again (while waiting for a child after recording). */
void plat_recorder_unblock(struct plat_recorder *r);
void plat_recorder_release(struct plat_recorder *r);

#endif
