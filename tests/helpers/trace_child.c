/*
 * A program whose memory calls are known, for test_trace: in its main thread, a thread, a
 * forked child and a signal handler, each maps, protects and unmaps pages at its own fixed
 * address; then it posix_spawns `true` and exits 0.
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

int main(int argc, char **argv)
{
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
