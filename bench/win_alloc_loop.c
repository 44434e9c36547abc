/*
 * The Windows target of bench/win_trace_cost.sh: N VirtualAlloc+VirtualFree pairs of 64 KiB,
 * committed and touched, then the time per pair on stdout ("us_per_pair X").
 *   win_alloc_loop N
 */
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    LARGE_INTEGER f, a, b;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&a);
    for (long i = 0; i < n; i++) {
        char *p = VirtualAlloc(NULL, 65536, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
        if (!p)
            return 90;
        p[0] = 1;
        if (!VirtualFree(p, 0, MEM_RELEASE))
            return 91;
    }
    QueryPerformanceCounter(&b);
    printf("us_per_pair %.1f\n", (double)(b.QuadPart - a.QuadPart) * 1e6 / (double)f.QuadPart / n);
    return 0;
}
