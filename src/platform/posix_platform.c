/* POSIX implementation of platform.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
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

char *plat_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
}

static void file_of(const struct stat *sb, struct plat_file *out);

const char *plat_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

int plat_seek(FILE *f, uint64_t off)
{
    return off > (uint64_t)INT64_MAX || fseeko(f, (off_t)off, SEEK_SET) != 0 ? -1 : 0;
}

int plat_fd_file(int fd, struct plat_file *out)
{
    struct stat sb;
    memset(out, 0, sizeof(*out));
    if (fstat(fd, &sb) < 0)
        return -errno;
    file_of(&sb, out);
    return 0;
}

void plat_close_fd(int fd)
{
    close(fd);
}

int plat_dir_shared(const char *path, char **dir)
{
    *dir = plat_dirname(path);
    struct stat sb;
    if (stat(*dir, &sb) != 0)
        return 0; /* opening the file will say what is wrong */
    if (sb.st_mode & S_ISVTX)
        return 0; /* only a file's owner (and the directory's) may rename it */
    return (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

int plat_writable(const char *path)
{
    return access(path, W_OK) == 0;
}

static void file_of(const struct stat *sb, struct plat_file *out)
{
    out->kind = S_ISREG(sb->st_mode)   ? PLAT_FILE_REGULAR
                : S_ISDIR(sb->st_mode) ? PLAT_FILE_DIR
                                       : PLAT_FILE_OTHER;
    out->owned = sb->st_uid == geteuid();
    out->shared = (sb->st_mode & (S_IRWXG | S_IRWXO)) != 0;
    out->size = (int64_t)sb->st_size;
    out->dev = (uint64_t)sb->st_dev;
    out->ino = (uint64_t)sb->st_ino;
    out->links = (uint64_t)sb->st_nlink;
}

int plat_file_stat(const char *path, struct plat_file *out)
{
    struct stat sb;
    memset(out, 0, sizeof(*out));
    if (stat(path, &sb) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    file_of(&sb, out);
    return 0;
}

struct plat_fds {
    size_t n;
    int *fd; /* sorted */
};

struct plat_fds *plat_fds_now(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return NULL;
    struct plat_fds *f = xcalloc(1, sizeof(*f));
    size_t cap = 0;
    int self = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (*end || end == de->d_name || v == self || v < 0 || v > INT32_MAX)
            continue;
        f->fd = xgrow(f->fd, &cap, f->n + 1, sizeof(*f->fd));
        f->fd[f->n++] = (int)v;
    }
    closedir(d);
    return f;
}

static int had(const struct plat_fds *f, int fd)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->fd[i] == fd)
            return 1;
    return 0;
}

size_t plat_fds_opened(const struct plat_fds *before, struct plat_file **out)
{
    *out = NULL;
    if (!before)
        return 0;
    struct plat_fds *now = plat_fds_now();
    size_t n = 0, cap = 0;
    for (size_t i = 0; now && i < now->n; i++) {
        struct stat sb;
        if (had(before, now->fd[i]) || fstat(now->fd[i], &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        *out = xgrow(*out, &cap, n + 1, sizeof(**out));
        memset(&(*out)[n], 0, sizeof(**out));
        file_of(&sb, &(*out)[n++]);
    }
    plat_fds_free(now);
    return n;
}

int plat_open_file_path(uint64_t dev, uint64_t ino, char **path)
{
    *path = NULL;
    struct plat_fds *now = plat_fds_now();
    int found = 0;
    for (size_t i = 0; now && i < now->n && !found; i++) {
        struct stat sb;
        if (fstat(now->fd[i], &sb) != 0 || (uint64_t)sb.st_dev != dev || (uint64_t)sb.st_ino != ino)
            continue;
        char link[64], buf[4096];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", now->fd[i]);
        ssize_t n = readlink(link, buf, sizeof(buf) - 1);
        if (n <= 0 || sb.st_nlink == 0)
            break;
        buf[n] = '\0';
        *path = xstrdup(buf);
        found = 1;
    }
    plat_fds_free(now);
    return found;
}

void plat_fds_free(struct plat_fds *fds)
{
    if (fds)
        free(fds->fd);
    free(fds);
}

int plat_open_input(const char *path, FILE **out)
{
    struct stat sb;
    *out = NULL;
    /* Non-blocking, so that opening a FIFO without a writer returns at once. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    int rc = fstat(fd, &sb) < 0                            ? -errno
             : S_ISDIR(sb.st_mode)                         ? -EISDIR
             : S_ISREG(sb.st_mode) || S_ISFIFO(sb.st_mode) ? 0
                                                           : -ENODEV;
    /* Reading a pipe blocks while a writer has it open, and ends when none has. */
    if (rc == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        rc = -errno;
    if (rc == 0 && !(*out = fdopen(fd, "rb")))
        rc = -errno;
    if (rc < 0)
        close(fd);
    return rc;
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
    struct launch *launch; /* the child is held at its entry point while set */
    pid_t guard;           /* the process that holds it (launch.h), or 0 */
    int child_done, child_status;
    int elsewhere; /* the child is another thread's to reap (plat_recorder_adopt) */
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
    struct launch *l = (flags & PLAT_SPAWN_LOADED) ? launch_prepare() : NULL;
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, n, "%s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        launch_let_go(l);
        return -1;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &r->orig, NULL);
        close(pfd[0]);
        int msg = -1;
        if (!l || !launch_child(l)) {
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
    /* Returns once the program is held where it is loaded, or runs on. */
    int held = l && launch_hold(l, pid) == 0;
    int msg = 0, e = 0;
    ssize_t got;
    for (;;) {
        while ((got = read(pfd[0], &msg, sizeof(msg))) < 0 && errno == EINTR)
            ;
        if (got <= 0)
            break;
        if (msg != -1)
            e = msg;
    }
    close(pfd[0]);
    if (e) {
        launch_let_go(l);
        waitpid(pid, NULL, 0);
        snprintf(err, n, "%s", strerror(e));
        return -1;
    }
    if (!held) {
        launch_let_go(l);
        l = NULL;
    }
    r->launch = l;
    r->guard = launch_guard(l);
    r->child = pid;
    return pid;
}

void plat_recorder_adopt(struct plat_recorder *r, int64_t pid, int flags)
{
    if (flags & PLAT_SPAWN_ADOPT)
        launch_adopt_orphans();
    r->child = (pid_t)pid;
    r->elsewhere = 1;
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

int plat_recorder_own(const struct plat_recorder *r, int64_t pid)
{
    return r->guard && pid == r->guard;
}

void plat_recorder_let_go(struct plat_recorder *r)
{
    launch_let_go(r->launch);
    r->launch = NULL;
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
    /* This thread's children only: another thread's tracees are its to wait for. */
#ifdef __WNOTHREAD
    const int own = __WNOTHREAD;
#else
    const int own = 0;
#endif
    while (!block && (p = waitpid(-1, &st, WNOHANG | own)) != 0) {
        if (p < 0 && errno == EINTR)
            continue;
        if (p < 0)
            break;
        if (p == r->child && !r->child_done && !r->elsewhere) {
            r->child_done = 1;
            r->child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
    }
    if (r->elsewhere)
        return 0;
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

int plat_raise_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (rl.rlim_cur >= rl.rlim_max)
        return 0;
    rl.rlim_cur = rl.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0 ? 0 : -errno;
}

int64_t plat_open_files_left(void)
{
    struct rlimit rl;
    struct plat_fds *now = plat_fds_now();
    int64_t left = -1;
    if (now && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        left = (int64_t)rl.rlim_cur - (int64_t)now->n;
    plat_fds_free(now);
    return left;
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

int plat_runs_vmsnap(int64_t pid)
{
    char path[64], comm[32] = "";
    struct stat self, other;
    if (pid <= 0 || pid > INT32_MAX)
        return 0;
    if (stat("/proc/self/exe", &self) != 0)
        return 1; /* no /proc: nothing to check with */
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    if (stat(path, &other) == 0 && other.st_dev == self.st_dev && other.st_ino == self.st_ino)
        return 1;
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(comm, sizeof(comm), f))
        comm[0] = 0;
    fclose(f);
    return strcmp(comm, "vmsnap\n") == 0;
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

struct plat_output {
    char *path, *dir, *tmp; /* tmp: the file's name while it is written, or NULL (O_TMPFILE) */
    int fd;
};

/*
 * Removes what an earlier vmsnap killed between naming its file and moving it into place left
 * beside path: "NAME.tmp-PID-N" (or "NAME.tmp-PID"), a regular file of ours whose PID is gone.
 */
static void drop_stale_temps(const char *dir, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp-", 5) != 0)
            continue;
        char *end;
        long pid = strtol(n + blen + 5, &end, 10);
        if (end == n + blen + 5 || (*end && *end != '-') || pid <= 0 ||
            (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
            sb.st_uid == geteuid())
            unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

int plat_output_open(const char *path, struct plat_output **out, FILE **f)
{
    struct plat_output *o = xcalloc(1, sizeof(*o));
    o->path = xstrdup(path);
    o->dir = plat_dirname(path);
    o->fd = -1;
    drop_stale_temps(o->dir, path);
#ifdef O_TMPFILE
    o->fd = open(o->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
#endif
    if (o->fd < 0) {
        /* No O_TMPFILE here: a new name of our own, created exclusively, never reopened. */
        for (int i = 0; i < 100 && o->fd < 0; i++) {
            free(o->tmp);
            o->tmp = xasprintf("%s.tmp-%lld-%d", path, (long long)getpid(), i);
            o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (o->fd < 0 && errno != EEXIST)
                break;
        }
    }
    int rc = o->fd < 0 ? -errno : 0;
    if (rc == 0 && !(*f = fdopen(o->fd, "wb")))
        rc = -errno;
    if (rc < 0) {
        plat_output_discard(o, NULL);
        return rc;
    }
    *out = o;
    return 0;
}

int plat_output_commit(struct plat_output *o, FILE *f)
{
    int rc = 0;
    if (fflush(f) != 0 || ferror(f))
        rc = -(errno ? errno : EIO);
    if (rc == 0 && fsync(o->fd) != 0 && errno != EINVAL)
        rc = -errno;
    if (rc < 0) {
        plat_output_discard(o, f);
        return rc;
    }
    if (!o->tmp) {
        /* Given a name only now, whole: path itself when there is none there (nothing can be
         * left behind), else a fresh one beside path, then moved over path. */
        char fdpath[64];
        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", o->fd);
        if (linkat(AT_FDCWD, fdpath, AT_FDCWD, o->path, AT_SYMLINK_FOLLOW) == 0) {
            rc = fclose(f) == 0 ? 0 : -errno;
            o->fd = -1;
            plat_output_discard(o, NULL);
            return rc;
        }
        for (int i = 0; i < 100 && !o->tmp; i++) {
            o->tmp = xasprintf("%s.tmp-%lld-%d", o->path, (long long)getpid(), i);
            if (linkat(AT_FDCWD, fdpath, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) == 0)
                break;
            rc = -errno;
            free(o->tmp);
            o->tmp = NULL;
            if (rc != -EEXIST)
                break;
        }
        if (!o->tmp) {
            plat_output_discard(o, f);
            return rc ? rc : -EEXIST;
        }
    }
    rc = rename(o->tmp, o->path) == 0 ? 0 : -errno;
    if (rc == 0) {
        free(o->tmp);
        o->tmp = NULL;
    }
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    o->fd = -1;
    plat_output_discard(o, NULL);
    return rc;
}

void plat_output_discard(struct plat_output *o, FILE *f)
{
    if (!o)
        return;
    if (f)
        fclose(f);
    else if (o->fd >= 0)
        close(o->fd);
    if (o->tmp)
        unlink(o->tmp);
    free(o->tmp);
    free(o->dir);
    free(o->path);
    free(o);
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
