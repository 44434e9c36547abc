/* A program that mixes memory calls with other system calls, timing itself: it waits 500 ms
 * (to be attached to), then runs N rounds of one mmap+munmap pair and 10 getppid calls, and
 * prints how long the rounds took, in microseconds.
 *   trace_mixed N */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000;
    usleep(500 * 1000);
    long long t0 = now_us();
    for (long i = 0; i < n; i++) {
        void *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || munmap(p, 65536) != 0)
            return 1;
        for (int k = 0; k < 10; k++)
            syscall(SYS_getppid);
    }
    printf("%lld\n", now_us() - t0);
    return 0;
}
