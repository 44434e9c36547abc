/* Takes snapshots of one process into the store: capture, then write the delta. Never prints. */
#ifndef VMSNAP_TAKER_H
#define VMSNAP_TAKER_H

#include "capture/capture.h"
#include "store/store.h"

struct taker {
    struct store *st;
    struct capture *cap;
    struct store_writer *w;
    int64_t pid;
    int64_t target_id;
    int64_t parent_target_id; /* the target that forked this process (0: none) */
    const char *origin;       /* how the recording came to it (STORE_ORIGIN_...) */
    int detail;
    int execs;    /* times the process exec'd while we watched it */
    int retitled; /* its command line changed and the target's row does not say so yet */
    /* Snapshots, and the time, since its command line was last read. */
    int64_t title_age;
    int64_t title_read_us;
    /* The last walk, until the next one: what taker_commit writes. */
    const struct region_list *list;
    struct capture_info info;
    int64_t walk_us; /* how long the walk took, microseconds */
};

/*
 * Opens pid for snapshots into st; cap is a capture of pid already open (t takes it over, even
 * on failure), or NULL. On failure nothing is written.
 */
int taker_open(struct taker *t, struct store *st, struct capture *cap, int64_t pid, int detail,
               const char *origin, struct err *e);

/*
 * Walks the process: t->list and t->info hold what it saw until the next walk. An exec makes a
 * new target and is retried. ERR_EXITED when the process is gone.
 */
int taker_walk(struct taker *t, struct err *e);

/*
 * Writes the last walk as a snapshot (o: its label and mark; NULL for none). ERR_LOCKED when
 * another process held the database too long: the walk is kept and may be written again.
 */
int taker_commit(struct taker *t, const struct store_snap_opts *o, int64_t *snap_id, struct err *e);

/* The caller's transaction that held t's last commit was rolled back: the walk is written again
 * by the next taker_commit, built on what is committed. */
int taker_rolled_back(struct taker *t, struct err *e);

/* The last commit is committed for good (the caller's transaction too): the walk before it is
 * not needed again. */
void taker_committed(struct taker *t);

/* Walks, then writes: one snapshot now. */
int taker_take(struct taker *t, const struct store_snap_opts *o, int64_t *snap_id, struct err *e);

/* 0 while the process lives; ERR_EXITED once it is gone (an exec is not an exit). */
int taker_check(struct taker *t);

void taker_close(struct taker *t);

#endif
