/* N mmap+munmap pairs of 64 KiB, and nothing else: what a traced memory call costs.
 *   trace_target N */
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000;
    for (long i = 0; i < n; i++) {
        void *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || munmap(p, 65536) != 0)
            return 1;
    }
    return 0;
}
