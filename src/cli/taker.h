/* Takes snapshots of one process into the store: capture, then write the delta. Never prints. */
#ifndef VMSNAP_TAKER_H
#define VMSNAP_TAKER_H

#include "capture/capture.h"
#include "store/store.h"

struct taker {
    struct store *st;
    struct capture *cap;
    struct store_writer *w;
    const char *proc_root;
    int64_t pid;
    int64_t target_id;
    int detail;
    int execs; /* times the process exec'd while we watched it */
};

/*
 * Opens pid for snapshots into st; cap is a capture of pid already open (t takes it over, even
 * on failure), or NULL. On failure nothing is written.
 */
int taker_open(struct taker *t, struct store *st, struct capture *cap, int64_t pid, int detail,
               struct err *e);

/*
 * Walks the process and writes one snapshot. An exec makes a new target and is retried; the
 * result's list and info describe what was written. ERR_EXITED when the process is gone.
 */
int taker_take(struct taker *t, const char *label, int64_t *snap_id,
               const struct region_list **list, struct capture_info *info, struct err *e);

/* 0 while the process lives; ERR_EXITED once it is gone (an exec is not an exit). */
int taker_check(struct taker *t);

void taker_close(struct taker *t);

/* Whether label would be read as a selector (an id, first, last, last~N). */
int taker_label_is_selector(const char *label);

#endif
