/*
 * A program built with AddressSanitizer (and so LeakSanitizer, which checks for leaks at exit
 * from a task it clones untraced), for test_stacks: it leaks a block and exits 0 when no leak
 * check fails it.
 */
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(1000);
    if (!p)
        return 2;
    memset(p, 1, 1000);
    p = NULL; /* leaked */
    return 0;
}
