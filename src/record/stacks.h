/*
 * record --stacks: the launched program traced (trace.h) by a thread of its own, every call
 * that changes an address space queued with its stack for the recorder, which writes them in
 * the transaction of each round's snapshots. The tracer thread only traces and queues; the
 * recorder's thread names the stacks and writes.
 */
#ifndef VMSNAP_STACKS_H
#define VMSNAP_STACKS_H

#include <stdint.h>

#include "store/store.h"
#include "trace/trace.h"
#include "util/err.h"

struct stacks;

/*
 * Starts argv (searched in PATH) traced by a new thread, and returns once its program is held
 * where it is loaded (its libraries mapped): *pid. On failure (the program cannot run or be
 * traced, or this build has no libdw) nothing runs and e says why; *out is NULL.
 */
int stacks_launch(struct stacks **out, char **argv, int follow, int64_t *pid, struct err *e);
/* Attaches to the running processes pids[0..n) (kept by the caller until stacks_close),
 * whose every system call then stops in the tracer; stacks_close lets go of them. */
int stacks_attach(struct stacks **out, const int64_t *pids, size_t n, int follow, struct err *e);
/*
 * With follow, each process the traced ones fork, and each that execs, is held stopped before
 * it runs until the recorder has taken its first snapshot (stacks_release), and each that
 * exits, before its address space goes, for its last: a process that lives less than a tick
 * has a target for its calls, and what they made. The recorder's wait is woken (SIGCHLD) when
 * one is.
 */
struct stacks_birth {
    int64_t pid, parent; /* parent: 0 when not known */
    int kind;            /* enum trace_moment: forked, exec'd, or exiting */
};
/* The processes held since the last call (*v the caller's to free). */
size_t stacks_births(struct stacks *s, struct stacks_birth **v);
void stacks_release(struct stacks *s, int64_t pid);
/* The program may run on (its first snapshot is taken). */
void stacks_let_go(struct stacks *s);
/* Which program pid runs now, counted by its execs as the tracer saw them. */
int stacks_gen(struct stacks *s, int64_t pid);

/* Where a call of process pid's gen-th program goes: its target's id; 0 to keep it until the
 * process has a target; -1 to drop it (the process was never recorded). */
typedef int64_t (*stacks_target_fn)(void *ctx, int64_t pid, int gen);
/* Whether calls are queued (1) or not (0). */
int stacks_pending(struct stacks *s);
/*
 * Writes the calls queued whose process has a target, with their stacks, named (inside the
 * caller's transaction). stacks_written says how it ended: committed (1), or rolled back (0),
 * when the same calls are written again by the next stacks_write.
 */
int stacks_write(struct stacks *s, struct store_events *w, stacks_target_fn target_of, void *ctx,
                 struct err *e);
void stacks_written(struct stacks *s, int committed);
/* Names the stacks queued since the last time (reading the modules' files): before the
 * transaction, which then need not wait for it. */
void stacks_name(struct stacks *s);

/* Recording is over: no call is queued or stack taken from now on; the program runs on traced
 * until it exits (its memory calls must never fail for want of a tracer). */
void stacks_quiet(struct stacks *s);
/* Whether every traced process has exited. */
int stacks_done(struct stacks *s);
/* Waits until every traced process has exited, then frees s. The launched program's exit
 * status (its code, or 128 + signal); 0 for NULL. */
int stacks_close(struct stacks *s);

/* Calls and stacks written so far, and calls whose stack could not be unwound. */
void stacks_counts(const struct stacks *s, int64_t *calls, int64_t *stacks, int64_t *unwound_not);

#endif
