/*
 * The recorder: capture -> delta -> store, at an interval, for a process and (when following)
 * every process it forks. It owns the ticks, the processes followed, the marks and the
 * database's lock waits; it never prints: what a user should hear comes out through hooks.
 */
#ifndef VMSNAP_RECORDER_H
#define VMSNAP_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#include "capture/capture.h"
#include "store/store.h"
#include "util/err.h"

struct recorder_opts {
    int64_t interval_ms; /* between ticks; 0: back to back */
    int64_t duration_ms; /* 0: no limit */
    int64_t count;       /* ticks and marks to take; 0: no limit */
    int detail;          /* enum capture_detail */
    const char *prefix;  /* labels P-SEQ and P-mark-N; NULL: none */
    int follow;          /* follow every process the recorded ones fork */
    int stacks;          /* with a command: trace it, recording each call that changes an
                          * address space with its stack (record --stacks) */
};

/* One process the recorder follows (or followed). */
struct recorder_proc {
    int64_t pid;
    int64_t target_id;        /* 0 until its first snapshot is written */
    int64_t parent_target_id; /* the target that forked it; 0 for a process given */
    int64_t taken;            /* snapshots written */
    int gone;                 /* it exited (or could not be opened) */
    /* Its last snapshot's committed bytes and its first's; rss and pss when read. */
    uint64_t committed, committed_first;
    int have_mem;
    uint64_t rss, pss;
};

/* What the recorder says while it runs; every hook may be NULL. */
enum recorder_event {
    REC_EV_SNAPSHOT,   /* a snapshot was written (of proc) */
    REC_EV_TORN,       /* that snapshot is torn */
    REC_EV_LOCKED,     /* another process holds the database: the walk is kept */
    REC_EV_UNLOCKED,   /* ... and was written after waited_ms */
    REC_EV_FOLLOWED,   /* a process forked by a followed one has its first snapshot */
    REC_EV_EXITED,     /* a followed process exited */
    REC_EV_UNMARKABLE, /* `vmsnap mark` cannot reach this recording (message in why) */
    REC_EV_UNFOLLOWED, /* a forked process is not followed (why says why; said once) */
};
struct recorder_hooks {
    void (*event)(void *ctx, int ev, const struct recorder_proc *p, int64_t snap_id,
                  int64_t waited_ms, const char *why);
    void *ctx;
};

struct recorder;

/*
 * Starts a recording into st. With argv, starts that command (searched in PATH) and records it
 * from when its program is loaded; else records the n processes open in caps (taken over, even
 * on failure). On failure nothing is written; *out is set either way, for recorder_close.
 */
int recorder_open(struct recorder **out, struct store *st, const struct recorder_opts *o,
                  const struct recorder_hooks *h, char **argv, struct capture **caps, size_t n,
                  struct err *e);

/*
 * Records until count, duration, a stop request, or no followed process is left. *why says
 * which ("count reached", "duration reached", "target exited", "interrupted", "terminated").
 * Returns 0, or an error (everything written before it stays).
 */
int recorder_run(struct recorder *r, const char **why, struct err *e);

/* The processes followed so far, in the order they were found. */
size_t recorder_nprocs(const struct recorder *r);
const struct recorder_proc *recorder_proc(const struct recorder *r, size_t i);
/* Snapshots written, and the first and last of them (ids; 0 when none). */
void recorder_counts(const struct recorder *r, int64_t *taken, int64_t *first, int64_t *last);
/* With stacks: the calls recorded, and the stacks they hold (0, 0 without). */
void recorder_calls(const struct recorder *r, int64_t *calls, int64_t *stacks);
/* The last snapshot written of the first process: its regions and capture (for progress). */
const struct region_list *recorder_last(const struct recorder *r, const struct capture_info **info);

/*
 * Ends the recording. With a command started, waits for it to exit unless it has (announcing
 * the wait through *waiting first when it must), and returns its exit status (or 128 +
 * signal); else 0.
 */
int recorder_close(struct recorder *r, void (*waiting)(void *ctx, int64_t pid), void *ctx);

#endif
