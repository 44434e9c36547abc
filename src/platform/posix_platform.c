/* POSIX implementation of platform.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/launch.h"
#include "platform/platform.h"
#include "util/xalloc.h"

int64_t plat_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t plat_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void plat_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void plat_gmtime(int64_t unix_s, struct tm *out)
{
    time_t t = (time_t)unix_s;
    gmtime_r(&t, out);
}

int plat_create_private(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? 1 : -errno;
    close(fd);
    return 0;
}

int plat_writable(const char *path)
{
    return access(path, W_OK) == 0;
}

int plat_file_stat(const char *path, struct plat_file *out)
{
    struct stat sb;
    memset(out, 0, sizeof(*out));
    if (stat(path, &sb) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    out->kind = S_ISREG(sb.st_mode)   ? PLAT_FILE_REGULAR
                : S_ISDIR(sb.st_mode) ? PLAT_FILE_DIR
                                      : PLAT_FILE_OTHER;
    out->owned = sb.st_uid == geteuid();
    out->shared = (sb.st_mode & (S_IRWXG | S_IRWXO)) != 0;
    out->size = (int64_t)sb.st_size;
    return 0;
}

int plat_isatty(FILE *f)
{
    return isatty(fileno(f));
}

void plat_hostname(char *out, size_t n)
{
    struct utsname u;
    snprintf(out, n, "%s", uname(&u) == 0 ? u.nodename : "unknown");
}

struct plat_recorder {
    sigset_t set, orig;
    pid_t child;
    int held; /* the child is held at its entry point */
    int child_done, child_status;
    int last_stop; /* signal number of the last stop request */
    int forward;   /* it came from kill(), not the terminal */
};

int plat_recorder_init(struct plat_recorder **out)
{
    struct plat_recorder *r = xcalloc(1, sizeof(*r));
    sigemptyset(&r->set);
    sigaddset(&r->set, SIGINT);
    sigaddset(&r->set, SIGTERM);
    sigaddset(&r->set, SIGHUP);
    sigaddset(&r->set, SIGUSR1);
    sigaddset(&r->set, SIGCHLD);
    /* Signals wait in a queue until the loop asks for them, so a snapshot in progress is
     * always finished and committed before the recorder stops. */
    sigprocmask(SIG_BLOCK, &r->set, &r->orig);
    *out = r;
    return 0;
}

int64_t plat_recorder_spawn(struct plat_recorder *r, char **argv, int flags, char *err, size_t n)
{
    if (flags & PLAT_SPAWN_ADOPT)
        launch_adopt_orphans(); /* without it, a daemon's grandchildren may go unseen */
    /* A CLOEXEC pipe carries back whether the child is traced (-1: it is not) and exec's
     * errno, and closes silently when exec succeeds. */
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, n, "%s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, n, "%s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &r->orig, NULL);
        close(pfd[0]);
        int msg = -1;
        if (!(flags & PLAT_SPAWN_LOADED) || !launch_trace_me()) {
            ssize_t w = write(pfd[1], &msg, sizeof(msg));
            (void)w;
        }
        execvp(argv[0], argv);
        msg = errno;
        ssize_t w = write(pfd[1], &msg, sizeof(msg));
        (void)w;
        _exit(127);
    }
    close(pfd[1]);
    int msg = 0, traced = 1, e = 0;
    ssize_t got;
    for (;;) {
        while ((got = read(pfd[0], &msg, sizeof(msg))) < 0 && errno == EINTR)
            ;
        if (got <= 0)
            break;
        if (msg == -1)
            traced = 0;
        else
            e = msg;
    }
    close(pfd[0]);
    if (e) {
        waitpid(pid, NULL, 0);
        snprintf(err, n, "%s", strerror(e));
        return -1;
    }
    r->held = traced && launch_run_to_entry(pid) == 0;
    r->child = pid;
    return pid;
}

int plat_recorder_wait(struct plat_recorder *r, int64_t until_us)
{
    int64_t left = until_us - plat_monotonic_us();
    if (left < 0)
        left = 0;
    struct timespec ts = {left / 1000000, (left % 1000000) * 1000L};
    siginfo_t si;
    int sig = sigtimedwait(&r->set, &si, &ts);
    switch (sig) {
    case SIGINT:
    case SIGTERM:
    case SIGHUP:
        r->last_stop = sig;
        /* The terminal's Ctrl+C reaches the whole group; a kill() reaches vmsnap alone. */
        r->forward = si.si_code == SI_USER && si.si_pid != r->child;
        return PLAT_EV_STOP;
    case SIGUSR1:
        return PLAT_EV_MARK;
    case SIGCHLD:
        return PLAT_EV_CHILD;
    default:
        return PLAT_EV_TIMEOUT;
    }
}

void plat_recorder_let_go(struct plat_recorder *r)
{
    if (r->held)
        launch_let_go(r->child);
    r->held = 0;
}

const char *plat_recorder_stop_reason(const struct plat_recorder *r)
{
    return r->last_stop == SIGINT ? "interrupted" : "terminated";
}

void plat_recorder_forward_stop(struct plat_recorder *r)
{
    if (r->child && !r->child_done && r->forward && r->last_stop)
        kill(r->child, r->last_stop);
}

int plat_recorder_child_exited(struct plat_recorder *r, int block, int *status)
{
    if (!r->child)
        return 0;
    int st;
    pid_t p;
    /* The command, and any orphan of a followed process that was handed to us: every exited
     * child is reaped, so none lingers as a zombie. */
    while (!block && (p = waitpid(-1, &st, WNOHANG)) != 0) {
        if (p < 0 && errno == EINTR)
            continue;
        if (p < 0)
            break;
        if (p == r->child && !r->child_done) {
            r->child_done = 1;
            r->child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
    }
    if (block && !r->child_done) {
        while ((p = waitpid(r->child, &st, 0)) < 0 && errno == EINTR)
            ;
        if (p == r->child) {
            r->child_done = 1;
            r->child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
    }
    if (r->child_done && status)
        *status = r->child_status;
    return r->child_done;
}

void plat_recorder_unblock(struct plat_recorder *r)
{
    /* A mark that comes now, too late to be taken, must not kill us (SIGUSR1's default). */
    signal(SIGUSR1, SIG_IGN);
    sigprocmask(SIG_SETMASK, &r->orig, NULL);
}

void plat_recorder_release(struct plat_recorder *r)
{
    plat_recorder_let_go(r);
    /* The mask stays: a signal still queued must not kill us before we return the status. */
    free(r);
}

int64_t plat_getpid(void)
{
    return (int64_t)getpid();
}

int plat_wake_recorder(int64_t pid)
{
    if (pid <= 0 || pid > INT32_MAX)
        return -ESRCH;
    return kill((pid_t)pid, SIGUSR1) == 0 ? 0 : -errno;
}

int plat_same_file(const char *a, const char *b)
{
    struct stat x, y;
    if (stat(a, &x) != 0 || stat(b, &y) != 0)
        return strcmp(a, b) == 0;
    return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int plat_replace(const char *from, const char *to)
{
    return rename(from, to) == 0 ? 0 : -errno;
}

void plat_advise_large(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    /* Only whole 2 MiB pages inside the block can be huge. */
    const uintptr_t huge = 2u << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + n) & ~(huge - 1);
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}
