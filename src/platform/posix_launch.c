/* launch.h where only POSIX is known: no orphans adopted, no run to the entry point. */
#include "platform/launch.h"

#include <errno.h>

int launch_adopt_orphans(void)
{
    return -ENOSYS;
}

int launch_trace_me(void)
{
    return 0;
}

int launch_run_to_entry(pid_t pid)
{
    (void)pid;
    return -1;
}

void launch_let_go(pid_t pid)
{
    (void)pid;
}
