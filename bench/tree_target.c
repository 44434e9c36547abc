/*
 * The target of bench/tree_cost.sh: a parent and CHILDREN children, each holding about REGIONS
 * regions and changing slowly, for SECONDS.
 *   tree_target CHILDREN REGIONS SECONDS
 * Each child maps its regions one page each, alternating read-write and read-only so that none
 * merge, touches the writable ones, then every 10 s (child k starting k * 97 ms in, so the
 * changes spread over the ticks) maps one more page and unmaps the oldest such page: one region
 * born and one ended every 10 s per child. The parent prints "ready" once every child has
 * mapped its regions, and exits when they have.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static char *page(int prot)
{
    char *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(90);
    return p;
}

static void child(int k, int regions, long end_ms, int ready_fd)
{
    /* A process of this program starts with ~25 regions of its own. The kernel places new
     * pages next to each other; alternating protections keep neighbours from merging. */
    for (int i = 25; i < regions; i++) {
        char *p = page(i % 2 ? PROT_READ : PROT_READ | PROT_WRITE);
        if (!(i % 2))
            p[0] = 1;
    }
    if (write(ready_fd, "r", 1) != 1)
        _exit(91);
    close(ready_fd);
    char *last = NULL;
    for (long next = now_ms() + k * 97 % 10000; next < end_ms; next += 10000) {
        long wait = next - now_ms();
        if (wait > 0)
            usleep((useconds_t)wait * 1000);
        char *p = page(PROT_READ | PROT_WRITE | PROT_EXEC);
        p[0] = 1;
        if (last)
            munmap(last, 4096);
        last = p;
    }
    long wait = end_ms - now_ms();
    if (wait > 0)
        usleep((useconds_t)wait * 1000);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tree_target CHILDREN REGIONS SECONDS\n");
        return 2;
    }
    int n = atoi(argv[1]), regions = atoi(argv[2]);
    long end_ms = now_ms() + atol(argv[3]) * 1000;
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    for (int k = 0; k < n; k++) {
        pid_t c = fork();
        if (c < 0)
            return 1;
        if (c == 0) {
            close(ready[0]);
            child(k, regions, end_ms, ready[1]);
        }
    }
    close(ready[1]);
    char b;
    int got = 0;
    while (got < n && read(ready[0], &b, 1) == 1)
        got++;
    printf("ready %d\n", got);
    fflush(stdout);
    while (wait(NULL) > 0)
        ;
    return 0;
}
