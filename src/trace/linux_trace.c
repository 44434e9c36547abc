/*
 * The Linux tracer of trace.h: fork, PTRACE_TRACEME, a seccomp filter that returns
 * SECCOMP_RET_TRACE (its data: the call) for the memory calls, exec. Each traced call stops
 * the thread twice: at the seccomp stop (its arguments) and, resumed with PTRACE_SYSCALL, at
 * its exit (its result); then it runs on with PTRACE_CONT, so other calls never stop it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/launch.h"
#include "trace/trace.h"
#include "util/xalloc.h"

static const int call_nr[] = {
    [TRACE_MMAP] = __NR_mmap,         [TRACE_MUNMAP] = __NR_munmap, [TRACE_MREMAP] = __NR_mremap,
    [TRACE_MPROTECT] = __NR_mprotect, [TRACE_BRK] = __NR_brk,       [TRACE_SHMAT] = __NR_shmat,
    [TRACE_SHMDT] = __NR_shmdt,
};
#define NCALLS ((int)(sizeof(call_nr) / sizeof(call_nr[0])))

static const char *const call_names[] = {
    [TRACE_MMAP] = "mmap",         [TRACE_MUNMAP] = "munmap", [TRACE_MREMAP] = "mremap",
    [TRACE_MPROTECT] = "mprotect", [TRACE_BRK] = "brk",       [TRACE_SHMAT] = "shmat",
    [TRACE_SHMDT] = "shmdt",
};

/* The call of system call number nr, or -1 when it is not traced. */
static int call_of(long nr)
{
    for (int c = 0; c < NCALLS; c++)
        if (call_nr[c] == nr)
            return c;
    return -1;
}

const char *trace_call_name(int call)
{
    return call >= 0 && call < NCALLS ? call_names[call] : "?";
}

/* The steps of the launched child before its exec, as it reports a failure. */
enum { CHILD_TRACEME, CHILD_FILTER, CHILD_EXEC };

/* A traced thread. */
struct thread {
    pid_t tid, tgid;
    int started;  /* its first stop (the SIGSTOP of an attached new tracee) has been seen */
    int in_call;  /* between its seccomp stop and its exit stop */
    int detached; /* let go (trace_detach) */
    struct trace_event ev; /* the call in progress */
};

/* A traced process, with its unwinder when stacks are taken. */
struct process {
    pid_t tgid;
    struct trace_unwinder *unwinder;
};

struct tracer {
    pid_t root;
    int stacks;
    struct process *procs;
    size_t nprocs, procs_cap;
    struct trace_frame frames[TRACE_MAX_FRAMES];
    int exec_pipe; /* read end: the child's errno when its exec failed, else EOF */
    char *argv0;
    struct thread *v;
    size_t n, cap;
    /* The breakpoint at the launched program's entry point (held): its address, the word it
     * replaced; 0 when there is none. */
    uint64_t entry;
    long entry_word;
    atomic_int quiet;
    int held; /* the launched child waits, stopped before its exec, for trace_run */
    /* Attached to running processes (trace_attach): every system call stops (PTRACE_SYSCALL),
     * and the tracer lets go of them all when asked (trace_detach). */
    int attached;
    atomic_int detach;
    int detaching;
    /* Processes held stopped for the hooks' born (the tracer's), and those trace_release let go
     * (any thread's, under the lock). */
    pid_t *parked;
    size_t nparked, parked_cap;
    pid_t *roots; /* attached: the processes given */
    size_t nroots;
    pthread_mutex_t release_lock;
    pid_t *released;
    size_t nreleased, released_cap;
};

void trace_release(struct tracer *t, int64_t pid)
{
    pthread_mutex_lock(&t->release_lock);
    t->released = xgrow(t->released, &t->released_cap, t->nreleased + 1, sizeof(*t->released));
    t->released[t->nreleased++] = (pid_t)pid;
    pthread_mutex_unlock(&t->release_lock);
}

void trace_detach(struct tracer *t)
{
    atomic_store(&t->detach, 1);
}

void trace_quiet(struct tracer *t)
{
    atomic_store(&t->quiet, 1);
}

int trace_stacks(struct tracer *t, struct err *e)
{
    /* libdw would fetch missing debug information over the network mid-trace, with the
     * program stopped. The program's own environment was set at its launch. */
    unsetenv("DEBUGINFOD_URLS");
    struct trace_unwinder *u;
    int rc = trace_unwinder_open(&u, t->root, e);
    if (rc < 0)
        return rc;
    trace_unwinder_close(u);
    t->stacks = 1;
    return 0;
}

/* The traced process tgid, or NULL when it has taken no stack yet. */
static struct process *process_find(struct tracer *t, pid_t tgid)
{
    for (size_t i = 0; i < t->nprocs; i++)
        if (t->procs[i].tgid == tgid)
            return &t->procs[i];
    return NULL;
}

/* The traced process tgid, made when new. */
static struct process *process_of(struct tracer *t, pid_t tgid)
{
    struct process *found = process_find(t, tgid);
    if (found)
        return found;
    t->procs = xgrow(t->procs, &t->procs_cap, t->nprocs + 1, sizeof(*t->procs));
    struct process *p = &t->procs[t->nprocs++];
    p->tgid = tgid;
    p->unwinder = NULL;
    return p;
}

static void process_gone(struct tracer *t, pid_t tgid)
{
    struct process *p = process_find(t, tgid);
    if (p) {
        trace_unwinder_close(p->unwinder);
        *p = t->procs[--t->nprocs];
    }
}

/*
 * After a call returned: when code may have come or gone in its process -- an executable
 * mapping made, or a call on a range that holds a module the unwinder knows (an unmap, a move,
 * a mapping over it, its protection changed) -- the modules are read again at its next stack.
 * A call on data, the common case (malloc's), costs nothing more.
 */
static void after_call(struct tracer *t, const struct trace_event *ev)
{
    if (ev->result < 0 && ev->result > -4096)
        return; /* it failed: nothing changed */
    struct process *p = process_find(t, (pid_t)ev->pid);
    if (!p || !p->unwinder)
        return;
    int stale = 0;
    switch (ev->call) {
    case TRACE_MMAP:
        stale = (ev->args[2] & PROT_EXEC) ||
                trace_unwinder_knows(p->unwinder, (uint64_t)ev->result, ev->args[1]);
        break;
    case TRACE_MPROTECT:
        stale = (ev->args[2] & PROT_EXEC) ||
                trace_unwinder_knows(p->unwinder, ev->args[0], ev->args[1]);
        break;
    case TRACE_MUNMAP:
    case TRACE_MREMAP:
        stale = trace_unwinder_knows(p->unwinder, ev->args[0], ev->args[1]) ||
                (ev->call == TRACE_MREMAP &&
                 trace_unwinder_knows(p->unwinder, (uint64_t)ev->result, ev->args[2]));
        break;
    case TRACE_SHMAT:
    case TRACE_SHMDT:
        stale = 1; /* the segment's size is not in the call */
        break;
    default:
        break;
    }
    if (stale)
        trace_unwinder_stale(p->unwinder);
}

/* A new program in tgid: all its modules are new. */
static void code_changed(struct tracer *t, pid_t tgid)
{
    struct process *p = process_find(t, tgid);
    if (p && p->unwinder)
        trace_unwinder_stale(p->unwinder);
}

/* The stack of the event's thread, stopped at the call's exit. */
static void take_stack(struct tracer *t, struct trace_event *ev, const struct user_regs_struct *r,
                       struct err *e)
{
    struct process *p = process_of(t, (pid_t)ev->pid);
    if (!p->unwinder && trace_unwinder_open(&p->unwinder, ev->pid, e) < 0) {
        ev->stack_error = e->msg;
        return;
    }
    int n = trace_unwind(p->unwinder, ev->tid, r, t->frames, TRACE_MAX_FRAMES, e);
    if (n < 0) {
        ev->stack_error = e->msg;
        return;
    }
    ev->frames = t->frames;
    ev->nframes = n;
}

int64_t trace_pid(const struct tracer *t)
{
    return t->root;
}

static struct thread *find(struct tracer *t, pid_t tid)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].tid == tid)
            return &t->v[i];
    return NULL;
}

static struct thread *add(struct tracer *t, pid_t tid, pid_t tgid)
{
    t->v = xgrow(t->v, &t->cap, t->n + 1, sizeof(*t->v));
    struct thread *th = &t->v[t->n++];
    memset(th, 0, sizeof(*th));
    th->tid = tid;
    th->tgid = tgid;
    return th;
}

static void drop(struct tracer *t, struct thread *th)
{
    *th = t->v[--t->n];
}

/* A number from /proc/PID/status ("Tgid:", "PPid:"), or otherwise when it cannot be read. */
static pid_t status_field(pid_t pid, const char *field, pid_t otherwise)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return otherwise;
    size_t len = strlen(field);
    pid_t v = otherwise;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, len) == 0) {
            v = (pid_t)strtol(line + len, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* The thread group of tid (a new tracee's may not be known from its event). */
static pid_t tgid_of(pid_t tid)
{
    return status_field(tid, "Tgid:", tid);
}

/* In the child, before exec: the filter. Every memory call of the program and of everything it
 * starts stops in the tracer; the others never do. Another architecture's calls (a 32-bit
 * program) run untraced. */
static int install_filter(void)
{
    struct sock_filter f[4 + 2 * NCALLS];
    int k = 0;
    f[k++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[k++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int c = 0; c < NCALLS; c++) {
        f[k++] =
            (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)call_nr[c], 0, 1);
        f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | (unsigned)c);
    }
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_filter *all = xmalloc(((size_t)k + 1) * sizeof(*all));
    memcpy(all, f, (size_t)k * sizeof(*all));
    all[k++] = allow;
    struct sock_fprog prog = {(unsigned short)k, all};
    /* Without CAP_SYS_ADMIN a filter needs no_new_privs: a set-user-ID program then runs
     * without its privileges. */
    if (geteuid() != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* What the launched child said before its exec, if it failed: the error, or 0 (its exec
 * worked, or it said nothing). */
static int child_failed(struct tracer *t, struct err *e)
{
    int err[2] = {0, 0};
    if (t->exec_pipe < 0)
        return 0;
    ssize_t n = read(t->exec_pipe, err, sizeof(err));
    close(t->exec_pipe);
    t->exec_pipe = -1;
    if (n != (ssize_t)sizeof(err))
        return 0;
    if (err[0] == CHILD_TRACEME && err[1] == EPERM)
        return err_set(e, ERR_PERM,
                       "cannot trace '%s': it is traced already (is vmsnap itself running "
                       "under strace -f or a debugger?)",
                       t->argv0);
    if (err[0] == CHILD_TRACEME)
        return err_set(e, ERR_PERM, "cannot trace '%s': %s", t->argv0, strerror(err[1]));
    if (err[0] == CHILD_FILTER)
        return err_set(e, ERR_UNSUPPORTED,
                       "cannot trace '%s': this kernel refused its seccomp filter: %s", t->argv0,
                       strerror(err[1]));
    return err_set(e, ERR_NOPROC, "cannot run '%s': %s", t->argv0, strerror(err[1]));
}

extern char **environ;

/*
 * The program's environment: ours, with LeakSanitizer's check at exit turned off. It cannot run
 * under a tracer (as under strace or gdb): it stops the world from a task cloned untraced,
 * which inherits the filter with no tracer, so its memory calls fail (ENOSYS) and the program
 * hangs at exit. A flag given later in ASAN_OPTIONS or LSAN_OPTIONS wins over one before it.
 */
static char **program_env(void)
{
    static const char *const vars[] = {"ASAN_OPTIONS", "LSAN_OPTIONS"};
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = xcalloc(n + 3, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int ours = 0;
        for (size_t v = 0; v < 2; v++) {
            size_t len = strlen(vars[v]);
            if (strncmp(environ[i], vars[v], len) == 0 && environ[i][len] == '=')
                ours = 1;
        }
        if (!ours)
            env[k++] = xstrdup(environ[i]);
    }
    for (size_t v = 0; v < 2; v++) {
        const char *was = getenv(vars[v]);
        env[k++] = was && *was ? xasprintf("%s=%s:detect_leaks=0", vars[v], was)
                               : xasprintf("%s=detect_leaks=0", vars[v]);
    }
    env[k] = NULL;
    return env;
}

static void env_free(char **env)
{
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}

int trace_launch(struct tracer **out, char *const argv[], struct err *e)
{
    *out = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return err_set(e, ERR_IO, "cannot start '%s': %s", argv[0], strerror(errno));
    char **env = program_env();
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        env_free(env);
        return err_set(e, ERR_IO, "cannot start '%s': %s", argv[0], strerror(saved));
    }
    if (pid == 0) {
        close(fds[0]);
        /* The program starts as a shell would start it: no signal blocked (the tracer's
         * thread blocks them all). */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* The filter comes after the tracer is attached: a filtered call with no tracer fails
         * with ENOSYS. */
        int err[2] = {CHILD_TRACEME, 0}; /* the step that failed, and its errno */
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0) {
            err[1] = errno;
        } else if (err[0] = CHILD_FILTER, raise(SIGSTOP) != 0 || install_filter() < 0) {
            err[1] = errno;
        } else {
            err[0] = CHILD_EXEC;
            execvpe(argv[0], argv, env);
            err[1] = errno;
        }
        ssize_t w = write(fds[1], err, sizeof(err));
        (void)w;
        _exit(127);
    }
    close(fds[1]);
    env_free(env);
    struct tracer *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->release_lock, NULL);
    t->root = pid;
    t->exec_pipe = fds[0];
    t->argv0 = xstrdup(argv[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    long opts = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE |
                PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL |
                PTRACE_O_TRACEEXIT;
    if (!WIFSTOPPED(st)) {
        /* It could not become our tracee (it is traced already) and said why. */
        int rc = child_failed(t, e);
        trace_close(t);
        return rc < 0 ? rc : err_set(e, ERR_PERM, "cannot trace '%s'", argv[0]);
    }
    if (ptrace(PTRACE_SETOPTIONS, pid, 0, (void *)opts) < 0) {
        int saved = errno;
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        trace_close(t);
        return err_set(e, ERR_PERM, "cannot trace '%s': %s", argv[0], strerror(saved));
    }
    struct thread *th = add(t, pid, pid);
    th->started = 1;
    t->held = 1;
    *out = t;
    return 0;
}

/* Seizes every thread of pid, listing its tasks again until no new one appears (a thread
 * started meanwhile by one not yet seized). 0, or -errno. */
static int seize_all(struct tracer *t, pid_t pid)
{
    const long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
                      PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    for (int more = 1, round = 0; more && round < 100; round++) {
        more = 0;
        DIR *d = opendir(path);
        if (!d)
            return round ? 0 : -ESRCH;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            pid_t tid = (pid_t)strtol(de->d_name, NULL, 10);
            if (tid <= 0 || find(t, tid))
                continue;
            if (ptrace(PTRACE_SEIZE, tid, 0, (void *)opts) < 0) {
                int err = errno;
                if (err == ESRCH)
                    continue; /* it ended meanwhile */
                closedir(d);
                return -err;
            }
            add(t, tid, pid);
            more = 1;
        }
        closedir(d);
    }
    return 0;
}

int trace_attach(struct tracer **out, const int64_t *pids, size_t n, struct err *e)
{
    *out = NULL;
    struct tracer *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->release_lock, NULL);
    t->attached = 1;
    t->exec_pipe = -1;
    t->root = n ? (pid_t)pids[0] : 0;
    t->argv0 = xasprintf("pid %lld", (long long)t->root);
    t->roots = xcalloc(n ? n : 1, sizeof(*t->roots));
    for (size_t i = 0; i < n; i++)
        t->roots[t->nroots++] = (pid_t)pids[i];
    for (size_t i = 0; i < n; i++) {
        int rc = seize_all(t, (pid_t)pids[i]);
        if (rc == 0)
            continue;
        /* Nothing was done to them: let go of the threads seized so far. */
        for (size_t k = 0; k < t->n; k++)
            (void)ptrace(PTRACE_DETACH, t->v[k].tid, 0, 0);
        trace_close(t);
        if (rc == -ESRCH)
            return err_set(e, ERR_NOPROC, "no process %lld", (long long)pids[i]);
        if (rc == -EPERM)
            return err_set(e, ERR_PERM,
                           "cannot trace pid %lld: it is another user's, traced already (by a "
                           "debugger or strace), or Yama forbids it "
                           "(/proc/sys/kernel/yama/ptrace_scope)",
                           (long long)pids[i]);
        return err_set(e, ERR_PERM, "cannot trace pid %lld: %s", (long long)pids[i], strerror(-rc));
    }
    *out = t;
    return 0;
}

/* At the launched program's exec: a breakpoint at its entry point, where the dynamic loader
 * has mapped its libraries and run their constructors. Without one it is not held. */
static int break_at_entry(struct tracer *t)
{
#if defined(__x86_64__)
    uint64_t entry = launch_entry_of(t->root);
    errno = 0;
    long word = entry ? ptrace(PTRACE_PEEKTEXT, t->root, (void *)entry, NULL) : 0;
    if (!entry || errno ||
        ptrace(PTRACE_POKETEXT, t->root, (void *)entry, (void *)((word & ~0xffL) | 0xcc)) < 0)
        return -1;
    t->entry = entry;
    t->entry_word = word;
    return 0;
#else
    return -1; /* the breakpoint is x86-64's */
#endif
}

/* The launched program stopped by a SIGTRAP: 1 when it is our breakpoint, which is then taken
 * away and the program set to run its first instruction; 0 for a SIGTRAP of its own. */
static int at_entry(struct tracer *t)
{
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, t->root, NULL, &regs) < 0 || regs.rip != t->entry + 1)
        return 0;
    regs.rip = t->entry;
    (void)ptrace(PTRACE_SETREGS, t->root, NULL, &regs);
    (void)ptrace(PTRACE_POKETEXT, t->root, (void *)t->entry, (void *)t->entry_word);
    t->entry = 0;
    return 1;
}

/* Resumes tid, delivering sig; a tracee that died meanwhile is reported by waitpid. */
static void resume(int req, pid_t tid, int sig)
{
    (void)ptrace(req, tid, 0, (void *)(long)sig);
}

/* Resumes tid to its next stop: the next traced call (the filter's), or when attached the next
 * system call. While letting go, it is detached instead. */
static void go(struct tracer *t, struct thread *th, int sig)
{
    if (t->detaching) {
        (void)ptrace(PTRACE_DETACH, th->tid, 0, (void *)(long)sig);
        th->detached = 1;
        return;
    }
    resume(t->attached ? PTRACE_SYSCALL : PTRACE_CONT, th->tid, sig);
}

/* A process stopped at its fork, its exec or its exit: held when the hooks ask (born), else
 * resumed. */
static void born(struct tracer *t, const struct trace_hooks *h, struct thread *th, int kind)
{
    if (h->born && !atomic_load(&t->quiet) && !t->detaching &&
        h->born(h->ctx, th->tgid, kind == TRACE_FORKED ? status_field(th->tid, "PPid:", 0) : 0,
                kind)) {
        t->parked = xgrow(t->parked, &t->parked_cap, t->nparked + 1, sizeof(*t->parked));
        t->parked[t->nparked++] = th->tid;
        return;
    }
    go(t, th, 0);
}

/* Resumes the held processes let go (all of them once quiet or letting go): how many are still
 * held. */
static size_t serve_parked(struct tracer *t)
{
    int all = atomic_load(&t->quiet) || t->detaching;
    pthread_mutex_lock(&t->release_lock);
    for (size_t i = 0; i < t->nparked;) {
        int go_on = all;
        for (size_t k = 0; k < t->nreleased && !go_on; k++)
            go_on = t->released[k] == t->parked[i];
        struct thread *th = go_on ? find(t, t->parked[i]) : NULL;
        if (go_on) {
            if (th)
                go(t, th, 0);
            t->parked[i] = t->parked[--t->nparked];
        } else {
            i++;
        }
    }
    t->nreleased = 0;
    pthread_mutex_unlock(&t->release_lock);
    return t->nparked;
}

/* Whether tid is a thread of the processes attached to at the start (not one born since). */
static int is_attached_pid(const struct tracer *t, pid_t tid)
{
    for (size_t i = 0; i < t->nroots; i++)
        if (t->roots[i] == tid)
            return 1;
    return 0;
}

/* Asked to let go: each thread is detached at its next stop, and interrupted to make one. */
static void start_detach(struct tracer *t)
{
    t->detaching = 1;
    serve_parked(t); /* the held ones are detached now */
    for (size_t i = 0; i < t->n; i++)
        (void)ptrace(PTRACE_INTERRUPT, t->v[i].tid, 0, 0);
}

static int all_detached(const struct tracer *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (!t->v[i].detached)
            return 0;
    return 1;
}

/* A traced call returned (th->ev holds it): its stack, its hook. r: the registers at its exit
 * when read already. */
static void returned(struct tracer *t, const struct trace_hooks *h, struct thread *th,
                     const struct user_regs_struct *r)
{
    struct err se = {0};
    int quiet = atomic_load(&t->quiet);
    if (t->stacks && !quiet)
        take_stack(t, &th->ev, r, &se);
    if (h->event && !quiet)
        h->event(h->ctx, &th->ev);
    if (t->stacks)
        after_call(t, &th->ev);
    th->in_call = 0;
}

int trace_run(struct tracer *t, const struct trace_hooks *h, int *status, struct err *e)
{
    *status = 0;
    t->held = 0;
    if (t->attached) {
        /* Every thread attached is interrupted: its first stop starts its tracing. */
        for (size_t i = 0; i < t->n; i++) {
            if (t->v[i].tid == t->v[i].tgid && h->process)
                h->process(h->ctx, t->v[i].tgid, 0);
            (void)ptrace(PTRACE_INTERRUPT, t->v[i].tid, 0, 0);
        }
    } else {
        if (h->process)
            h->process(h->ctx, t->root, 0);
        resume(PTRACE_CONT, t->root, 0);
    }
    for (;;) {
        if (t->attached && !t->detaching && atomic_load(&t->detach))
            start_detach(t);
        if (t->detaching && all_detached(t))
            break;
        int st;
        /* While processes are held, their release is looked for between stops. */
        int polling = t->nparked && serve_parked(t);
        pid_t tid = waitpid(-1, &st, __WALL | __WNOTHREAD | (polling ? WNOHANG : 0));
        if (tid == 0) {
            struct timespec nap = {0, 100 * 1000};
            nanosleep(&nap, NULL);
            continue;
        }
        if (tid < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECHILD)
                break;
            return err_set(e, ERR_IO, "tracing '%s': %s", t->argv0, strerror(errno));
        }
        struct thread *th = find(t, tid);
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            if (tid == t->root) {
                *status = st;
                int rc = child_failed(t, e);
                if (rc < 0)
                    return rc;
            }
            if (th && th->tid == th->tgid) {
                process_gone(t, th->tgid);
                if (h->exited)
                    h->exited(h->ctx, th->tgid, st);
            }
            for (size_t i = 0; i < t->nparked; i++)
                if (t->parked[i] == tid)
                    t->parked[i--] = t->parked[--t->nparked];
            if (th)
                drop(t, th);
            continue;
        }
        if (!WIFSTOPPED(st))
            continue;
        if (!th) {
            /* A new tracee whose first stop came before its parent's event. */
            th = add(t, tid, tgid_of(tid));
        }
        int sig = WSTOPSIG(st), event = st >> 16;
        if (event == PTRACE_EVENT_SECCOMP) {
            /* The call, by its number (the filter's data says the same: one ptrace less). */
            struct user_regs_struct r;
            int call = -1;
            if (ptrace(PTRACE_GETREGS, tid, 0, &r) == 0)
                call = call_of((long)r.orig_rax);
            if (call < 0) {
                go(t, th, 0);
                continue;
            }
            th->in_call = 1;
            th->ev = (struct trace_event){.pid = th->tgid,
                                          .tid = tid,
                                          .call = call,
                                          .args = {r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9}};
            resume(PTRACE_SYSCALL, tid, 0);
        } else if (sig == (SIGTRAP | 0x80) && t->attached) {
            /* Attached: every system call's entry and exit stops; the kernel says which. */
            struct __ptrace_syscall_info si;
            memset(&si, 0, sizeof(si));
            long got = ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof(si), &si);
            if (got > 0 && si.op == PTRACE_SYSCALL_INFO_ENTRY) {
                int call = call_of((long)si.entry.nr);
                th->in_call = call >= 0;
                if (call >= 0) {
                    th->ev = (struct trace_event){.pid = th->tgid, .tid = tid, .call = call};
                    for (int k = 0; k < 6; k++)
                        th->ev.args[k] = si.entry.args[k];
                }
            } else if (got > 0 && si.op == PTRACE_SYSCALL_INFO_EXIT && th->in_call) {
                th->ev.result = si.exit.rval;
                returned(t, h, th, NULL);
            }
            go(t, th, 0);
        } else if (sig == (SIGTRAP | 0x80)) {
            struct user_regs_struct r;
            if (th->in_call && ptrace(PTRACE_GETREGS, tid, 0, &r) == 0) {
                th->ev.result = (int64_t)r.rax;
                returned(t, h, th, &r);
            }
            th->in_call = 0;
            go(t, th, 0);
        } else if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK ||
                   event == PTRACE_EVENT_CLONE) {
            unsigned long child = 0;
            if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &child) == 0 && child) {
                struct thread *c = find(t, (pid_t)child);
                pid_t tgid = event == PTRACE_EVENT_CLONE ? tgid_of((pid_t)child) : (pid_t)child;
                if (!c)
                    c = add(t, (pid_t)child, tgid);
                else
                    c->tgid = tgid;
                th = find(t, tid); /* add may have moved it */
                if (tgid == (pid_t)child && h->process)
                    h->process(h->ctx, tgid, th->tgid);
            }
            go(t, th, 0);
        } else if (event == PTRACE_EVENT_EXEC) {
            /* A thread other than the leader exec'd: it has the leader's tid now, and its own
             * is gone. */
            unsigned long former = 0;
            if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &former) == 0 && (pid_t)former != tid) {
                struct thread *old = find(t, (pid_t)former);
                if (old) {
                    drop(t, old);
                    th = find(t, tid); /* drop may have moved it */
                }
            }
            code_changed(t, th->tgid); /* a new program: all its modules are new */
            if (tid == t->root && t->exec_pipe >= 0) {
                close(t->exec_pipe); /* the exec worked */
                t->exec_pipe = -1;
                /* Held where its program is loaded; else (no breakpoint) here, at its exec. */
                if (h->held && break_at_entry(t) < 0)
                    h->held(h->ctx, tid);
            }
            if (h->execed)
                h->execed(h->ctx, th->tgid);
            if (tid == t->root && t->entry)
                go(t, th, 0); /* the launched program: held at its entry point instead */
            else
                born(t, h, th, TRACE_EXECED);
        } else if (event == PTRACE_EVENT_STOP) {
            /* Attached: a thread's first stop (interrupted, or new), or a group-stop, which a
             * traced program does not keep. A new process is born. */
            int first = !th->started && th->tid == th->tgid && !is_attached_pid(t, tid);
            th->started = 1;
            if (first)
                born(t, h, th, TRACE_FORKED);
            else
                go(t, th, 0);
        } else if (event == PTRACE_EVENT_EXIT && th->tid == th->tgid) {
            born(t, h, th, TRACE_EXITING); /* its last snapshot: the address space whole */
        } else if (event) {
            go(t, th, 0);
        } else if (sig == SIGTRAP && tid == t->root && t->entry && at_entry(t)) {
            h->held(h->ctx, tid); /* its first snapshot: the program loaded */
            go(t, th, 0);
        } else if (sig == SIGSTOP && !th->started) {
            th->started = 1; /* the stop a new tracee starts with */
            if (th->tid == th->tgid)
                born(t, h, th, TRACE_FORKED);
            else
                go(t, th, 0);
        } else {
            /* A signal for the program: it gets it. A group-stop (no siginfo) is resumed at
             * once: job control of a traced program does not stop it. */
            siginfo_t si;
            int deliver = ptrace(PTRACE_GETSIGINFO, tid, 0, &si) == 0 ? sig : 0;
            th->started = 1;
            go(t, th, deliver);
        }
    }
    return t->attached ? 0 : child_failed(t, e);
}

void trace_close(struct tracer *t)
{
    if (!t)
        return;
    if (t->held) {
        /* Launched, never run: it is held before its exec, and goes. */
        int st;
        kill(t->root, SIGKILL);
        while (waitpid(t->root, &st, __WALL) < 0 && errno == EINTR)
            ;
    }
    if (t->exec_pipe >= 0)
        close(t->exec_pipe);
    free(t->argv0);
    free(t->v);
    free(t->parked);
    free(t->roots);
    free(t->released);
    pthread_mutex_destroy(&t->release_lock);
    for (size_t i = 0; i < t->nprocs; i++)
        trace_unwinder_close(t->procs[i].unwinder);
    free(t->procs);
    free(t);
}
