/* A multi-threaded program that allocates as servers do: T threads, each N rounds of work on
 * blocks of many sizes (small ones from malloc's arenas, large ones mapped), some kept a while.
 *   trace_threads THREADS ROUNDS */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static long rounds;

static void *work(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 2654435761u + 1;
    void *kept[64] = {0};
    uint64_t sum = 0;
    for (long i = 0; i < rounds; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* Mostly small blocks, one in 16 above malloc's mmap threshold (128 KiB). */
        size_t size = (x & 15) == 0 ? (size_t)(160 << 10) + (x >> 40) % (512 << 10)
                                    : 16 + (size_t)(x >> 32) % 4096;
        char *p = malloc(size);
        if (!p)
            return (void *)1;
        memset(p, (int)i, size < 4096 ? size : 4096);
        for (size_t k = 0; k < 256; k++) /* some work between allocations */
            sum += (uint64_t)p[k % size] * k;
        size_t slot = (size_t)(x >> 20) % 64;
        free(kept[slot]);
        kept[slot] = p;
    }
    for (int k = 0; k < 64; k++)
        free(kept[k]);
    return (void *)(uintptr_t)(sum == 42);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    rounds = argc > 2 ? atol(argv[2]) : 100000;
    pthread_t th[64];
    if (threads < 1 || threads > 64)
        return 2;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, work, (void *)(uintptr_t)(i + 1)) != 0)
            return 3;
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    return 0;
}
