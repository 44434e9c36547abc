/* A program with many regions that then maps and unmaps: what a traced call costs when the
 * address space is large (the unwinder knows its modules; data calls do not re-read them).
 *   trace_regions REGIONS PAIRS */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long regions = argc > 1 ? atol(argv[1]) : 60000;
    long pairs = argc > 2 ? atol(argv[2]) : 10000;
    long page = sysconf(_SC_PAGESIZE);
    /* One mapping, its pages alternately protected: one region each. */
    char *base = mmap(NULL, (size_t)(regions * page), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return 1;
    for (long i = 0; i < regions; i += 2)
        if (mprotect(base + i * page, (size_t)page, PROT_READ) != 0)
            return 2;
    for (long i = 0; i < pairs; i++) {
        void *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || munmap(p, 65536) != 0)
            return 3;
    }
    return 0;
}
