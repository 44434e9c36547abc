/*
 * A process tree whose every step is known, for the tests of following:
 *   forker tree    forks two children: the first maps 8 MiB in 2 MiB steps every 100 ms
 *                  from 200 ms and exits at 1,000 ms; the second maps 16 MiB in 4 MiB steps
 *                  every 150 ms from 200 ms and exits at 1,500 ms. The parent waits for both
 *                  and exits 3.
 *   forker daemon  a double fork: the child forks a grandchild and exits at once, and so does
 *                  the parent (status 0) once the child is gone. The grandchild maps 8 MiB at
 *                  300 ms and exits at 1,200 ms.
 *   forker later   at 600 ms forks a child that maps 4 MiB and exits at 800 ms after its birth;
 *                  the parent waits, then exits 0 300 ms later.
 *   forker workers three workers that differ, each exiting at 2,400 ms: the first leaks 2 MiB
 *                  every 100 ms from 800 to 1,900 ms (24 MiB, held); the second maps 40 MiB
 *                  at 800 ms and unmaps it at 1,200 ms (a hump given back); the third idles.
 *                  The parent waits for them and exits 0.
 * Every mapping is anonymous, read-write and touched, so it is committed and resident.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024UL * 1024)

static struct timespec t0;

/* Sleeps until ms after the process (tree) began. */
static void until_ms(long ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long elapsed = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
    if (ms > elapsed)
        usleep((useconds_t)(ms - elapsed) * 1000);
}

static void leak(size_t bytes)
{
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(90);
    for (size_t i = 0; i < bytes; i += 4096)
        p[i] = 1;
}

/* A child that leaks steps of step bytes every every_ms from 200 ms, then exits at end_ms. */
static void child(size_t step, int steps, long every_ms, long end_ms)
{
    for (int k = 0; k < steps; k++) {
        until_ms(200 + k * every_ms);
        leak(step);
    }
    until_ms(end_ms);
    _exit(0);
}

int main(int argc, char **argv)
{
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "tree") == 0) {
        if (fork() == 0)
            child(2 * MiB, 4, 100, 1000);
        if (fork() == 0)
            child(4 * MiB, 4, 150, 1500);
        while (wait(NULL) > 0)
            ;
        return 3;
    }
    if (strcmp(mode, "daemon") == 0) {
        pid_t c = fork();
        if (c == 0) {
            setsid();
            if (fork() == 0) {
                until_ms(300);
                leak(8 * MiB);
                until_ms(1200);
                _exit(0);
            }
            _exit(0);
        }
        waitpid(c, NULL, 0);
        return 0;
    }
    if (strcmp(mode, "later") == 0) {
        until_ms(600);
        if (fork() == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t0);
            leak(4 * MiB);
            until_ms(800);
            _exit(0);
        }
        while (wait(NULL) > 0)
            ;
        until_ms(1700);
        return 0;
    }
    if (strcmp(mode, "workers") == 0) {
        if (fork() == 0) {
            for (int k = 0; k < 12; k++) {
                until_ms(800 + k * 100);
                leak(2 * MiB);
            }
            until_ms(2400);
            _exit(0);
        }
        if (fork() == 0) {
            until_ms(800);
            char *p =
                mmap(NULL, 40 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                _exit(90);
            for (size_t i = 0; i < 40 * MiB; i += 4096)
                p[i] = 1;
            until_ms(1200);
            munmap(p, 40 * MiB);
            until_ms(2400);
            _exit(0);
        }
        if (fork() == 0) {
            until_ms(2400);
            _exit(0);
        }
        while (wait(NULL) > 0)
            ;
        return 0;
    }
    fprintf(stderr, "usage: forker tree|daemon|later|workers\n");
    return 2;
}
