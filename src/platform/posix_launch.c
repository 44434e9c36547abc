/* launch.h where only POSIX is known: no orphans adopted, no program held at its entry point. */
#include "platform/launch.h"

#include <errno.h>

int launch_adopt_orphans(void)
{
    return -ENOSYS;
}

struct launch *launch_prepare(void)
{
    return NULL;
}

int launch_child(struct launch *l)
{
    (void)l;
    return 0;
}

int launch_hold(struct launch *l, pid_t child)
{
    (void)l;
    (void)child;
    return -1;
}

pid_t launch_guard(const struct launch *l)
{
    (void)l;
    return 0;
}

void launch_let_go(struct launch *l)
{
    (void)l;
}
