/* N getppid calls (a system call the filter lets through), timing itself after a 300 ms pause:
 * what a launched program's untraced calls cost under record --stacks. With --allow-all it
 * first installs a seccomp filter that allows everything (the peer: what any filter costs).
 *   trace_getppid [--allow-all] N */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int allow_all = argc > 1 && strcmp(argv[1], "--allow-all") == 0;
    long n = argc > 1 + allow_all ? atol(argv[1 + allow_all]) : 1000000;
    if (allow_all) {
        struct sock_filter f[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
        struct sock_fprog prog = {1, f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            return 1;
    }
    usleep(300 * 1000);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f\n",
           ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n);
    return 0;
}
