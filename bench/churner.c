/*
 * The target whose cost of being recorded bench/target_cost.sh measures: it holds REGIONS
 * one-page mappings (one reservation split by alternating protections, like vm_child's `many`)
 * and then, for SECONDS, maps 64 KiB, write-protects half of it and unmaps it, as fast as it
 * can. It prints how many rounds it did per second: every round takes the mmap lock three
 * times, so a reader holding that lock (smaps) slows it down.
 * usage: churner REGIONS SECONDS
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: churner REGIONS SECONDS\n");
        return 2;
    }
    long regions = atol(argv[1]);
    double seconds = atof(argv[2]);
    long page = sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, (size_t)(regions * page), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return 1;
    for (long i = 1; i < regions; i += 2)
        mprotect(base + i * page, (size_t)page, PROT_READ);
    /* Ready: the caller starts observing now. */
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    unsigned long rounds = 0;
    double t0 = now(), end = t0 + seconds;
    while (now() < end) {
        for (int k = 0; k < 64; k++) {
            char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return 1;
            p[0] = 1;
            mprotect(p, 32768, PROT_READ);
            munmap(p, 65536);
        }
        rounds += 64;
    }
    printf("%.0f\n", (double)rounds / (now() - t0));
    return 0;
}
