/*
 * Tracing the calls that change a launched program's address space (record --stacks): mmap,
 * munmap, mremap, mprotect, brk, shmat and shmdt, in every thread and every process it forks.
 * Linux: the child installs a seccomp filter that hands only those calls to the tracer
 * (SECCOMP_RET_TRACE), so its other system calls run untraced. The filter can never be removed
 * and a filtered call fails with ENOSYS once no tracer is attached, so the tracer stays until
 * the program exits, and takes it with it if it dies (PTRACE_O_EXITKILL).
 *
 * Windows: the program is launched under the debugger API, and the calls are breakpoints on
 * ntdll's NtAllocateVirtualMemory, NtFreeVirtualMemory, NtProtectVirtualMemory,
 * NtMapViewOfSection and NtUnmapViewOfSection (win_trace.c). Breakpoints can be taken away:
 * once recording stops the tracer removes them and lets the program run on untraced.
 *
 * The tracer is one thread's: every ptrace call (or debug event) is made by the thread that
 * called trace_launch, which waits for its own tracees alone (__WNOTHREAD): the process's
 * other threads must do the same, or they would take its stops.
 */
#ifndef VMSNAP_TRACE_H
#define VMSNAP_TRACE_H

#include <stdint.h>

#include "util/err.h"

/* Why a process stopped for the hooks' born. */
enum trace_moment { TRACE_FORKED, TRACE_EXECED, TRACE_EXITING };

enum trace_call {
    TRACE_MMAP,
    TRACE_MUNMAP,
    TRACE_MREMAP,
    TRACE_MPROTECT,
    TRACE_BRK,
    TRACE_SHMAT,
    TRACE_SHMDT,
    /* Windows (ntdll): args[0] the range's start, args[1] its length (as the call returned
     * them), args[2] the protection (PAGE_*), args[3] the call's type (MEM_*); result its
     * NTSTATUS, negative when it failed. */
    TRACE_NT_ALLOCATE, /* NtAllocateVirtualMemory */
    TRACE_NT_FREE,     /* NtFreeVirtualMemory */
    TRACE_NT_PROTECT,  /* NtProtectVirtualMemory */
    TRACE_NT_MAP_VIEW, /* NtMapViewOfSection */
    TRACE_NT_UNMAP_VIEW
};

/* "mmap", "munmap", ... */
const char *trace_call_name(int call);

struct trace_frame;

/* One call, seen at its return. */
struct trace_event {
    int64_t pid; /* the process (thread group) */
    int64_t tid; /* the calling thread */
    int call;    /* enum trace_call */
    uint64_t args[6];
    int64_t result; /* what the call returned: an address, 0, or -errno */
    /* The calling thread's stack, innermost first, when stacks are taken (trace_stacks): valid
     * during the event hook. nframes is 0 when it could not be unwound (stack_error says
     * why). */
    const struct trace_frame *frames;
    int nframes;
    const char *stack_error;
};

struct trace_hooks {
    void *ctx;
    /* A traced call returned. */
    void (*event)(void *ctx, const struct trace_event *ev);
    /* A process joined the trace (the launched one: parent 0) or left it (exit status). */
    void (*process)(void *ctx, int64_t pid, int64_t parent);
    void (*exited)(void *ctx, int64_t pid, int status);
    /* A traced process exec'd: it runs another program from now on. */
    void (*execed)(void *ctx, int64_t pid);
    /* When set, the launched program is held where its first program is loaded (at its entry
     * point, its libraries mapped and their constructors run) until held returns. */
    void (*held)(void *ctx, int64_t pid);
    /* A process stopped where its address space is news: new (forked; parent: its parent's
     * pid, 0 when not known), exec'd, or exiting with its address space still whole. Nonzero
     * holds it stopped until trace_release (a snapshot of that moment). */
    int (*born)(void *ctx, int64_t pid, int64_t parent, int kind);
};

struct tracer;

/* Starts argv[0] (searched in PATH) traced, held before its exec runs: 0, or an error. */
int trace_launch(struct tracer **out, char *const argv[], struct err *e);
/*
 * Attaches to the running processes pids[0..n) and every thread they have (PTRACE_SEIZE): no
 * filter can be added from outside, so every system call of theirs stops in the tracer, twice,
 * and the memory calls are reported. They run on untraced once trace_detach has been asked
 * and trace_run has returned, or if the tracer dies. 0, or an error (nothing was done).
 */
int trace_attach(struct tracer **out, const int64_t *pids, size_t n, struct err *e);
/* From any thread: an attached tracer lets go of every thread (trace_run then returns). Wake
 * the tracer's thread with a signal (its waitpid returns EINTR) until it has. */
void trace_detach(struct tracer *t);
/* Takes the calling thread's stack at each call: 0, or ERR_UNSUPPORTED in a build without
 * libdw. */
int trace_stacks(struct tracer *t, struct err *e);
/* The launched process. */
int64_t trace_pid(const struct tracer *t);
/* Runs the program, calling the hooks, until every traced process has exited: 0, or an error
 * (the program is then killed: it cannot run on without its tracer). *status: the launched
 * process's wait status. */
int trace_run(struct tracer *t, const struct trace_hooks *h, int *status, struct err *e);
/* From any thread: no more calls are reported, nor stacks taken. The program runs on traced,
 * at the cost of its stops alone, until it exits: its memory calls never fail for want of a
 * tracer. */
void trace_quiet(struct tracer *t);
/* From any thread: a process held for born runs on. */
void trace_release(struct tracer *t, int64_t pid);
void trace_close(struct tracer *t);

/*
 * Call stacks (elfutils' libdw): the stack of a thread stopped in the tracer, as recorded: raw
 * frames, named when read (trace_name). A build without libdw has none: trace_unwinder_open says
 * so (ERR_UNSUPPORTED).
 */
#define TRACE_MAX_FRAMES 64

struct trace_frame {
    /* The module's file (as the process maps it) and its GNU build id in hex ("" when it has
     * none): valid until the unwinder's next unwind or close. */
    const char *module;
    const char *build_id;
    /* Where in the module, as an address of its ELF file: the pc of the innermost frame, and
     * the call's last byte (return address - 1) of each caller, so it names the call's line. */
    uint64_t offset;
    uint64_t pc; /* the address in the process */
};

struct trace_unwinder;
/* An unwinder for process pid, whose threads the calling thread traces. */
int trace_unwinder_open(struct trace_unwinder **out, int64_t pid, struct err *e);
/* Code may have been mapped or unmapped (an executable mapping came or went, an exec): the
 * next unwind reads the process's modules again. */
void trace_unwinder_stale(struct trace_unwinder *u);
/* Whether [start, start + len) holds any of the modules the unwinder knows. */
int trace_unwinder_knows(struct trace_unwinder *u, uint64_t start, uint64_t len);
/* The stack of thread tid (stopped by the tracer), innermost first: how many frames (at most
 * max), or an error. regs: its registers as the tracer read them at this stop (x86-64's
 * struct user_regs_struct), or NULL to read them. */
int trace_unwind(struct trace_unwinder *u, int64_t tid, const void *regs,
                 struct trace_frame *frames, int max, struct err *e);
void trace_unwinder_close(struct trace_unwinder *u);

/* Names offset in module: its function (NULL when unknown), source file and line (NULL, 0);
 * the strings are the caller's to free. 0, or an error when the module cannot be read.
 * Linux's (and trace_namer_name): Windows names by trace_namer_frames alone. */
int trace_name(const char *module, uint64_t offset, char **function, char **file, int *line,
               struct err *e);

/* Names frames when a recording is read, each module's file read once. */
struct trace_namer;
int trace_namer_open(struct trace_namer **out, struct err *e);
/* As trace_name, for a module recorded with build_id ("" or NULL: not checked): ERR_NOTFOUND
 * when the file at its path is no longer the one that ran (another build id). */
int trace_namer_name(struct trace_namer *nm, const char *module, const char *build_id,
                     uint64_t offset, char **function, char **file, int *line, struct err *e);
/* A frame's names, one per function it is in: the function that holds the address and each
 * one inlined into it, innermost first (the strings are the caller's to free). */
struct trace_name {
    char *function; /* NULL: not known */
    char *file;     /* NULL: not known */
    int line;
};
/* The names of offset in module: how many (1 at least, at most max: an optimized build's
 * inlined functions are frames of their own), or an error as trace_namer_name's. */
int trace_namer_frames(struct trace_namer *nm, const char *module, const char *build_id,
                       uint64_t offset, struct trace_name *v, int max, struct err *e);
void trace_namer_close(struct trace_namer *nm);

#endif
