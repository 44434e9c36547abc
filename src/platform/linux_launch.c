/*
 * launch.h on Linux. The command's program is started under ptrace: it stops when exec
 * completes, a breakpoint goes at its entry point (AT_ENTRY in /proc/PID/auxv), and when it
 * stops there the dynamic loader has mapped every library the program needs. The original
 * instruction is put back, and the program is held there until launch_let_go, which lets it
 * run untraced: from then on it runs as if started normally, and a debugger may attach to it.
 */
#define _GNU_SOURCE
#include "platform/launch.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

int launch_adopt_orphans(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

int launch_trace_me(void)
{
#if defined(__x86_64__)
    return ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0;
#else
    return 0; /* the breakpoint below is x86-64's */
#endif
}

/* The program's entry point, from the auxiliary vector, or 0. */
static uint64_t entry_of(pid_t pid)
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

void launch_let_go(pid_t pid)
{
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
}

int launch_run_to_entry(pid_t pid)
{
#if defined(__x86_64__)
    int st, rc = -1;
    /* The stop at exec. */
    if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
        return -1;
    uint64_t entry = entry_of(pid);
    errno = 0;
    long orig = entry ? ptrace(PTRACE_PEEKTEXT, pid, (void *)entry, NULL) : 0;
    if (!entry || errno ||
        ptrace(PTRACE_POKETEXT, pid, (void *)entry, (void *)((orig & ~0xffL) | 0xcc)) < 0)
        goto detach;
    int sig = 0;
    for (;;) {
        if (ptrace(PTRACE_CONT, pid, NULL, (void *)(intptr_t)sig) < 0)
            return -1;
        if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
            return -1; /* it died before its entry point */
        sig = WSTOPSIG(st);
        if (sig != SIGTRAP)
            continue; /* its own signal: delivered as it would have been */
        struct user_regs_struct regs;
        if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) < 0)
            goto detach;
        if (regs.rip != entry + 1)
            continue; /* a SIGTRAP of its own */
        regs.rip = entry;
        if (ptrace(PTRACE_SETREGS, pid, NULL, &regs) == 0 &&
            ptrace(PTRACE_POKETEXT, pid, (void *)entry, (void *)orig) == 0)
            return 0; /* held there until launch_let_go */
        break;
    }
detach:
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    return rc;
#else
    (void)pid;
    return -1;
#endif
}
