/*
 * A program whose memory calls are known, for test_trace: in its main thread, a thread, a
 * forked child and a signal handler, each maps, protects and unmaps pages at its own fixed
 * address; then it posix_spawns `true` and exits 0.
 * `trace_child hold`: calls whose held bytes are known, each from a function of its own (see
 * hold()), then it sleeps 600 ms, holding them, and exits 0.
 * Each step that fails exits non-zero, so a traced run that broke a call (ENOSYS) shows.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int cycle(uintptr_t at, size_t pages)
{
    size_t len = pages * (size_t)sysconf(_SC_PAGESIZE);
    void *p = mmap((void *)at, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != (void *)at)
        return 1;
    if (mprotect(p, len, PROT_READ) != 0)
        return 2;
    if (munmap(p, len) != 0)
        return 3;
    return 0;
}

static volatile int in_handler_rc = -1;

static void on_signal(int sig)
{
    (void)sig;
    in_handler_rc = cycle(0x5d0000000, 1);
}

static void *thread_main(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)cycle(0x5b0000000, 2);
}

/* A thread, not the main one, replaces the program: `trace_child thread-exec`. */
static void *exec_main(void *arg)
{
    (void)arg;
    char *argv[] = {"true", NULL};
    execvp("true", argv);
    _exit(20);
}

#define MIB (1UL << 20)

/* Each makes memory that stays: its call site holds it. */
static int leak_site(uintptr_t at)
{
    return mmap((void *)at, MIB, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == (void *)at
               ? 0
               : 1;
}

static void *remap_site_a(void)
{
    void *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void *remap_site_b(void *p)
{
    void *q = mremap(p, MIB, 3 * MIB, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : q;
}

static void *reserve_site(void)
{
    void *p = mmap(NULL, 4 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static int commit_site(void *p)
{
    return mprotect(p, MIB, PROT_READ | PROT_WRITE);
}

static int heap_site(void)
{
    return sbrk(256 << 10) == (void *)-1 ? 1 : 0;
}

/* A function inlined into its caller, as an optimized build does: still a frame of its own. */
static inline __attribute__((always_inline)) int inlined_site(void)
{
    void *at = (void *)0x5f8000000;
    return mmap(at, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                -1, 0) == at
               ? 0
               : 1;
}

static __attribute__((noinline)) int outer_site(void)
{
    return inlined_site();
}

/* A region made early, grown later in place. */
static void *grow_base(void)
{
    void *at = (void *)0x5f0000000;
    return mmap(at, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                -1, 0) == at
               ? at
               : NULL;
}

static int grow_site(void *p)
{
    return mremap(p, MIB, 2 * MIB, 0) == p ? 0 : 1;
}

/* Made and given back: no site holds it. */
static int hump_site(void)
{
    void *p = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED || munmap(p, 8 * MIB) != 0;
}

static int drip_site(uintptr_t at)
{
    return leak_site(at);
}

static void *leak_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)leak_site(0x5e0000000 + 2 * MIB);
}

/*
 * What the sites hold once it sleeps: leak_site 2 MiB in 2 calls from hold and 1 MiB from
 * leak_thread (one region: the kernel merges the three), remap_site_a 1 MiB and remap_site_b 2 MiB
 * (one region), commit_site 1 MiB, heap_site 256 KiB of the heap, grow_base 1 MiB and
 * grow_site the 1 MiB it grew that region by (made at once, grown after 300 ms), inlined_site
 * (inlined into outer_site) 1 MiB; reserve_site and hump_site nothing.
 */
static int hold(void)
{
    void *g = grow_base();
    if (!g)
        return 36;
    usleep(300 * 1000); /* after the first snapshots */
    for (int i = 0; i < 2; i++)
        if (leak_site(0x5e0000000 + (uintptr_t)i * MIB))
            return 30;
    pthread_t th;
    void *rc;
    if (pthread_create(&th, NULL, leak_thread, NULL) != 0 || pthread_join(th, &rc) != 0 || rc)
        return 35;
    void *a = remap_site_a();
    if (!a || !remap_site_b(a))
        return 31;
    void *r = reserve_site();
    if (!r || commit_site(r))
        return 32;
    if (heap_site())
        return 33;
    if (hump_site())
        return 34;
    if (grow_site(g))
        return 37;
    if (outer_site())
        return 38;
    usleep(600 * 1000);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "hold") == 0)
        return hold();
    if (argc > 1 && strcmp(argv[1], "brief") == 0) {
        /* Two calls and gone, in far less than a recorder's tick. */
        for (int i = 0; i < 2; i++)
            if (leak_site(0x5e0000000 + (uintptr_t)i * MIB))
                return 60;
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "brief-tree") == 0) {
        /* Three children that each run `trace_child brief` (fork, then exec), one at a time. */
        for (int k = 0; k < 3; k++) {
            pid_t pid = fork();
            if (pid == 0) {
                char *args[] = {argv[0], "brief", NULL};
                execv("/proc/self/exe", args);
                _exit(61);
            }
            int st;
            if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
                return 62;
        }
        usleep(300 * 1000);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "hold-tree") == 0) {
        /* A child that runs `trace_child hold` (fork, then exec), and its status. */
        pid_t pid = fork();
        if (pid == 0) {
            char *args[] = {argv[0], "hold", NULL};
            execv("/proc/self/exe", args);
            _exit(40);
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
            return 41;
        return WEXITSTATUS(st);
    }
    if (argc > 1 && strcmp(argv[1], "drip") == 0) {
        /* For a recorder that attaches: 1 MiB every 50 ms for 3 s, then exit 0 (every call
         * worked, while traced and after). */
        for (int i = 0; i < 60; i++) {
            if (drip_site(0x600000000 + (uintptr_t)i * MIB))
                return 50;
            usleep(50 * 1000);
        }
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "hold-long") == 0) {
        /* Holds for 20 s, unless killed: for a recorder killed outright. */
        if (hold())
            return 42;
        sleep(20);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "thread-exec") == 0) {
        pthread_t th;
        if (pthread_create(&th, NULL, exec_main, NULL) != 0)
            return 21;
        pause();
    }
    if (cycle(0x5a0000000, 3))
        return 10;
    pthread_t th;
    void *rc;
    if (pthread_create(&th, NULL, thread_main, NULL) != 0 || pthread_join(th, &rc) != 0 || rc)
        return 11;
    pid_t pid = fork();
    if (pid < 0)
        return 12;
    if (pid == 0)
        _exit(cycle(0x5c0000000, 4));
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 13;
    /* In a signal handler. */
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
    if (in_handler_rc != 0)
        return 15;
    /* posix_spawn: glibc's clone(CLONE_VM | CLONE_VFORK), then another program. */
    char *spawn_argv[] = {"true", NULL};
    pid_t spawned;
    if (posix_spawnp(&spawned, "true", NULL, NULL, spawn_argv, environ) != 0 ||
        waitpid(spawned, &st, 0) != spawned || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 16;
    /* Memory from malloc's own calls, which no LD_PRELOAD shim sees. */
    void *big = malloc(64 << 20);
    if (!big)
        return 14;
    free(big);
    return 0;
}
