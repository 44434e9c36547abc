/*
 * How posix_platform.c starts a command, where the kernel can do more than POSIX: adopt the
 * orphans of a followed process, and hold the command's program at its entry point, once the
 * dynamic loader has mapped its libraries, until the first snapshot is taken. linux_launch.c
 * implements it on Linux, posix_launch.c (holding nothing) elsewhere.
 *
 * The order of calls: launch_prepare before fork; launch_child in the child before exec;
 * launch_hold in the parent; launch_let_go once the program may run on.
 */
#ifndef VMSNAP_LAUNCH_H
#define VMSNAP_LAUNCH_H

#include <stdint.h>
#include <sys/types.h>

/* The entry point of the program pid runs (AT_ENTRY of its auxiliary vector), or 0. */
uint64_t launch_entry_of(pid_t pid);

/* Makes this process the reaper of its descendants' orphans: 0, or -errno. */
int launch_adopt_orphans(void);

struct launch;
/* Before fork: what holding a command needs, or NULL when it cannot be held here. */
struct launch *launch_prepare(void);
/* In the child, before exec: waits until it is traced (1) or will not be (0). */
int launch_child(struct launch *l);
/* In the parent, after fork: returns once the child's program is held at its entry point (0),
 * or runs on, not held (-1). */
int launch_hold(struct launch *l, pid_t child);
/* The guard process holding the program (a child of this one, not of the program), or 0. */
pid_t launch_guard(const struct launch *l);
/* Lets a held program run on, untraced, and frees l (NULL: nothing). */
void launch_let_go(struct launch *l);

#endif
