/*
 * Tracing the calls that change a launched program's address space (record --stacks): mmap,
 * munmap, mremap, mprotect, brk, shmat and shmdt, in every thread and every process it forks.
 * Linux: the child installs a seccomp filter that hands only those calls to the tracer
 * (SECCOMP_RET_TRACE), so its other system calls run untraced. The filter can never be removed
 * and a filtered call fails with ENOSYS once no tracer is attached, so the tracer stays until
 * the program exits, and takes it with it if it dies (PTRACE_O_EXITKILL).
 *
 * The tracer is one thread's: every ptrace call is made by the thread that called trace_launch.
 */
#ifndef VMSNAP_TRACE_H
#define VMSNAP_TRACE_H

#include <stdint.h>

#include "util/err.h"

enum trace_call {
    TRACE_MMAP,
    TRACE_MUNMAP,
    TRACE_MREMAP,
    TRACE_MPROTECT,
    TRACE_BRK,
    TRACE_SHMAT,
    TRACE_SHMDT
};

/* "mmap", "munmap", ... */
const char *trace_call_name(int call);

/* One call, seen at its return. */
struct trace_event {
    int64_t pid; /* the process (thread group) */
    int64_t tid; /* the calling thread */
    int call;    /* enum trace_call */
    uint64_t args[6];
    int64_t result; /* what the call returned: an address, 0, or -errno */
};

struct trace_hooks {
    void *ctx;
    /* A traced call returned. */
    void (*event)(void *ctx, const struct trace_event *ev);
    /* A process joined the trace (the launched one: parent 0) or left it (exit status). */
    void (*process)(void *ctx, int64_t pid, int64_t parent);
    void (*exited)(void *ctx, int64_t pid, int status);
};

struct tracer;

/* Starts argv[0] (searched in PATH) traced, held before its exec runs: 0, or an error. */
int trace_launch(struct tracer **out, char *const argv[], struct err *e);
/* The launched process. */
int64_t trace_pid(const struct tracer *t);
/* Runs the program, calling the hooks, until every traced process has exited: 0, or an error
 * (the program is then killed: it cannot run on without its tracer). *status: the launched
 * process's wait status. */
int trace_run(struct tracer *t, const struct trace_hooks *h, int *status, struct err *e);
void trace_close(struct tracer *t);

#endif
