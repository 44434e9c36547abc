/*
 * launch.h on Linux. The command's program is held where it has been loaded: a breakpoint goes
 * at its entry point (AT_ENTRY in /proc/PID/auxv), and when it stops there the dynamic loader
 * has mapped every library the program needs and run their constructors. The original
 * instruction is put back, and the program is held there until launch_let_go, which lets it run
 * on untraced: from then on it runs as if started normally, and a debugger may attach to it.
 *
 * The tracer is not the recorder but a guard: a process of its own, forked from the recorder,
 * that ignores the terminal's signals. A breakpoint must never outlive its tracer -- the program
 * would die of SIGTRAP at its entry point -- and the recorder may be killed at any moment
 * (SIGKILL while a slow program loads killed it 20 times of 20). The guard outlives the recorder:
 * it runs the program to its entry point, puts the instruction back, and lets it go when the
 * recorder says so or is gone (its pipe closes).
 */
#define _GNU_SOURCE
#include "platform/launch.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/xalloc.h"

int launch_adopt_orphans(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

/* Pipes between the recorder (R), the command (C) and the guard (G). */
struct launch {
    int go[2];     /* R -> C: the guard's pid, or 0 when there is none */
    int ready[2];  /* C -> G: C allows G to trace it (Yama's PR_SET_PTRACER) */
    int seized[2]; /* G -> C: 1 when C is traced and may exec */
    int held[2];   /* G -> R: 1 when C is held at its entry point */
    int letgo[2];  /* R -> G: C may run on (a byte, or R is gone) */
    pid_t guard;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void close_all(struct launch *l)
{
    int *fds[] = {&l->go[0],     &l->go[1],   &l->ready[0], &l->ready[1], &l->seized[0],
                  &l->seized[1], &l->held[0], &l->held[1],  &l->letgo[0], &l->letgo[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        close_fd(fds[i]);
}

/* Writes n bytes; -1 when the other end is gone, which must not end this process (SIGPIPE). */
static int put(int fd, const void *p, size_t n)
{
    sigset_t pipe_sig, old;
    sigemptyset(&pipe_sig);
    sigaddset(&pipe_sig, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe_sig, &old);
    ssize_t w;
    while ((w = write(fd, p, n)) < 0 && errno == EINTR)
        ;
    if (w < 0 && errno == EPIPE && !sigismember(&old, SIGPIPE)) {
        struct timespec none = {0, 0};
        sigtimedwait(&pipe_sig, NULL, &none);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return w == (ssize_t)n ? 0 : -1;
}

/* Reads n bytes; -1 at EOF or on error (the other end is gone). */
static int get(int fd, void *p, size_t n)
{
    ssize_t r;
    while ((r = read(fd, p, n)) < 0 && errno == EINTR)
        ;
    return r == (ssize_t)n ? 0 : -1;
}

struct launch *launch_prepare(void)
{
#if defined(__x86_64__)
    struct launch *l = xcalloc(1, sizeof(*l));
    int *pairs[] = {l->go, l->ready, l->seized, l->held, l->letgo};
    for (size_t i = 0; i < 5; i++)
        pairs[i][0] = pairs[i][1] = -1;
    for (size_t i = 0; i < 5; i++) {
        if (pipe2(pairs[i], O_CLOEXEC) < 0) {
            close_all(l);
            free(l);
            return NULL;
        }
    }
    return l;
#else
    return NULL; /* the breakpoint below is x86-64's */
#endif
}

int launch_child(struct launch *l)
{
    int guard = 0;
    char b = 0;
    close_fd(&l->go[1]);
    close_fd(&l->ready[0]);
    close_fd(&l->seized[1]);
    close_fd(&l->held[0]);
    close_fd(&l->held[1]);
    close_fd(&l->letgo[0]);
    close_fd(&l->letgo[1]);
    if (get(l->go[0], &guard, sizeof(guard)) == 0 && guard > 0) {
        /* Where Yama allows only ancestors to trace, the guard (a sibling) needs leave. */
        prctl(PR_SET_PTRACER, (unsigned long)guard, 0, 0, 0);
        if (put(l->ready[1], "r", 1) < 0 || get(l->seized[0], &b, 1) < 0)
            b = 0;
    }
    close_all(l);
    return b == 1;
}

uint64_t launch_entry_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    uint64_t pair[2], entry = 0;
    while (read(fd, pair, sizeof(pair)) == (ssize_t)sizeof(pair) && pair[0] != AT_NULL)
        if (pair[0] == AT_ENTRY)
            entry = pair[1];
    close(fd);
    return entry;
}

/* Continues a stop that is not ours as it would have gone untraced. -1 when pid is gone. */
static int pass_on(pid_t pid, int st)
{
    int event = st >> 16, sig = WSTOPSIG(st);
    /* A group stop (PTRACE_EVENT_STOP) is let through; a signal is delivered. */
    void *data = event ? NULL : (void *)(intptr_t)sig;
    return ptrace(PTRACE_CONT, pid, NULL, data) == 0 ? 0 : -1;
}

#if defined(__x86_64__)
/* In the guard: runs the seized, exec'ing child to its entry point. 0 when it is held there. */
static int run_to_entry(pid_t pid)
{
    int st;
    /* Up to its exec: signals that come first are its own. */
    for (;;) {
        if (waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st))
            return -1; /* it died, or exec failed and it exited */
        if (st >> 8 == (SIGTRAP | (PTRACE_EVENT_EXEC << 8)))
            break;
        if (pass_on(pid, st) < 0)
            return -1;
    }
    uint64_t entry = launch_entry_of(pid);
    errno = 0;
    long orig = entry ? ptrace(PTRACE_PEEKTEXT, pid, (void *)entry, NULL) : 0;
    if (!entry || errno ||
        ptrace(PTRACE_POKETEXT, pid, (void *)entry, (void *)((orig & ~0xffL) | 0xcc)) < 0)
        goto detach;
    for (int sig = 0;;) {
        if (ptrace(PTRACE_CONT, pid, NULL, (void *)(intptr_t)sig) < 0)
            return -1;
        if (waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st))
            return -1; /* it died before its entry point */
        sig = 0;
        if (st >> 16 || WSTOPSIG(st) != SIGTRAP) {
            /* Its own signal, or a group stop: as it would have gone. */
            sig = st >> 16 ? 0 : WSTOPSIG(st);
            continue;
        }
        struct user_regs_struct regs;
        if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) < 0)
            goto detach;
        if (regs.rip != entry + 1) {
            sig = SIGTRAP; /* a SIGTRAP of its own */
            continue;
        }
        regs.rip = entry;
        if (ptrace(PTRACE_SETREGS, pid, NULL, &regs) == 0 &&
            ptrace(PTRACE_POKETEXT, pid, (void *)entry, (void *)orig) == 0)
            return 0; /* held there until let go */
        break;
    }
detach:
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    return -1;
}
#endif

/* The guard's life: trace the child, hold it at its entry point, let it go. Never returns. */
static void guard(struct launch *l, pid_t child)
{
    /* The terminal's signals reach the recorder's whole group: the guard finishes its work
     * whatever they say (the program gets them as it would untraced). */
    static const int ignored[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGPIPE,
                                  SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        signal(ignored[i], SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close_fd(&l->go[0]);
    close_fd(&l->go[1]);
    close_fd(&l->ready[1]);
    close_fd(&l->seized[0]);
    close_fd(&l->held[0]);
    close_fd(&l->letgo[1]);
    char b = 0;
    int held = -1;
    if (get(l->ready[0], &b, 1) == 0 &&
        ptrace(PTRACE_SEIZE, child, NULL, (void *)(intptr_t)PTRACE_O_TRACEEXEC) == 0) {
        b = 1;
        if (put(l->seized[1], &b, 1) == 0) {
#if defined(__x86_64__)
            held = run_to_entry(child);
#endif
        } else {
            ptrace(PTRACE_DETACH, child, NULL, NULL);
        }
    } else {
        b = 0;
        put(l->seized[1], &b, 1);
    }
    close_fd(&l->seized[1]);
    b = held == 0;
    put(l->held[1], &b, 1);
    close_fd(&l->held[1]);
    if (held == 0) {
        /* Until the recorder has taken its first snapshot, or is gone. */
        get(l->letgo[0], &b, 1);
        ptrace(PTRACE_DETACH, child, NULL, NULL);
    }
    _exit(0);
}

int launch_hold(struct launch *l, pid_t child)
{
    /* The command's ends, then (once the guard has its own) the guard's. */
    close_fd(&l->go[0]);
    close_fd(&l->ready[1]);
    close_fd(&l->seized[0]);
    l->guard = fork();
    if (l->guard == 0)
        guard(l, child);
    close_fd(&l->ready[0]);
    close_fd(&l->seized[1]);
    close_fd(&l->held[1]);
    close_fd(&l->letgo[0]);
    int pid = l->guard > 0 ? (int)l->guard : 0;
    put(l->go[1], &pid, sizeof(pid));
    close_fd(&l->go[1]);
    char b = 0;
    if (pid == 0 || get(l->held[0], &b, 1) < 0)
        b = 0;
    close_fd(&l->held[0]);
    return b == 1 ? 0 : -1;
}

pid_t launch_guard(const struct launch *l)
{
    return l && l->guard > 0 ? l->guard : 0;
}

void launch_let_go(struct launch *l)
{
    if (!l)
        return;
    put(l->letgo[1], "g", 1);
    close_all(l);
    if (l->guard > 0) {
        /* It detaches and exits at once; it may have been reaped with the other children. */
        while (waitpid(l->guard, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    free(l);
}
