/*
 * How posix_platform.c starts a command, where the kernel can do more than POSIX: adopt the
 * orphans of a followed process, and start the command's program traced so that it can be let
 * go at its entry point, once the dynamic loader has mapped its libraries. linux_launch.c
 * implements it on Linux, posix_launch.c (doing nothing) elsewhere.
 */
#ifndef VMSNAP_LAUNCH_H
#define VMSNAP_LAUNCH_H

#include <sys/types.h>

/* Makes this process the reaper of its descendants' orphans: 0, or -errno. */
int launch_adopt_orphans(void);
/* In the child, before exec: asks to be traced by its parent. 1 when it will be. */
int launch_trace_me(void);
/* In the parent, once the traced child has exec'd: runs it to its program's entry point and
 * holds it there. Returns 0 when it is held, -1 when it could not be (it runs on, untraced). */
int launch_run_to_entry(pid_t pid);
/* Lets a held child run on, untraced. */
void launch_let_go(pid_t pid);

#endif
