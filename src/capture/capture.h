/*
 * The backend-neutral capture interface. A capture is a handle on one target process instance;
 * each walk returns the target's regions, sorted by start and disjoint. Linux implements it in
 * linux_capture.c, Windows in windows_capture.c; CMake picks one.
 */
#ifndef VMSNAP_CAPTURE_H
#define VMSNAP_CAPTURE_H

#include <stdint.h>

#include "model/region.h"
#include "util/err.h"

enum capture_detail {
    DETAIL_MAPS = 0, /* layout only */
    DETAIL_ROLLUP,   /* layout + process totals */
    DETAIL_SMAPS,    /* layout + per-region memory figures */
};

enum capture_flags {
    CAPTURE_RETRIED = 1 << 0, /* a torn read was seen and the walk was repeated */
    CAPTURE_TORN = 1 << 1, /* every re-read stayed inconsistent: overlapping lines were dropped */
};

/* Who the target is. A reused pid or an exec is a different target. */
struct capture_target {
    int64_t pid;
    uint64_t start_time; /* Linux: clock ticks after boot (stat field 22); Windows: FILETIME */
    char *boot_id;       /* identifies the boot (Linux) or the machine's boot time (Windows) */
    char *exe;           /* may be NULL when unreadable */
    char *cmdline;       /* arguments joined by spaces; may be NULL */
    char *exec_key;      /* changes when the process execs another program */
    char *host;
    const char *os; /* "linux" or "windows" */
};

struct capture_info {
    int detail;         /* enum capture_detail actually used */
    const char *method; /* "maps", "smaps", "procmap_query", "virtualquery" */
    uint32_t flags;     /* enum capture_flags */
    unsigned retries;   /* re-reads after torn reads */
    int have_totals;    /* totals holds process figures */
    struct mem_totals totals;
    int unchanged;       /* the walk saw exactly what the previous walk saw */
    int64_t taken_at_ms; /* Unix time in milliseconds when the walk started */
};

struct capture;

/* Opens pid for walking. *out is freed by capture_close. */
int capture_open(struct capture **out, int64_t pid, struct err *e);

const struct capture_target *capture_get_target(const struct capture *c);
/* Reads the command line again, as ps shows it now (processes retitle themselves: nginx's
 * "worker process"): 1 when capture_get_target's cmdline changed, else 0. A command line that
 * cannot be read (a child whose parameters are not set up yet) keeps the last one. */
int capture_retitle(struct capture *c);
/* For the backends: takes now (owned, or NULL when unread) as t's command line when it is one
 * and differs; 1 when it did. */
int capture_target_retitle(struct capture_target *t, char *now);

/*
 * Walks the target once. *list points at memory owned by c and is lent, not given: it stays as
 * it is through the next walk too (a backend alternates two lists), so a caller may hold the
 * previous walk's list while it looks at the new one -- the store writer keeps it as its state
 * (store_snap_opts.lend) -- and it is gone at the walk after that, or at close. A backend that
 * fills a list again clears it first (region_list_clear), which changes its gen: a holder tells
 * from gen that the list it holds was refilled. (test_capture test_walk_lends_its_list...)
 * Returns 0; ERR_EXITED if the target exited (before or during the walk: a partial or empty read
 * is never returned as a snapshot); ERR_EXECED if it exec'd (reopen it as a new target);
 * ERR_PERM, ERR_ZOMBIE, ERR_KTHREAD, ERR_IO or ERR_PARSE otherwise.
 */
int capture_walk(struct capture *c, int detail, const struct region_list **list,
                 struct capture_info *info, struct err *e);

/* The caller is done with the list of the walk before the last (the store writer has written
 * the last walk's and keeps that one): its memory goes now, not at the next walk, so that a
 * followed tree holds one list a process between walks, not two. */
void capture_release_previous(struct capture *c);

/* Checks, cheaply, that the target is still the same live process: 0, ERR_EXITED or ERR_EXECED. */
int capture_check(struct capture *c, struct err *e);

void capture_close(struct capture *c);

/*
 * Watching for new processes, to follow the ones a recorded process forks. Each
 * capture_scan_new returns the processes that were not there at the previous call (all of them
 * at the first), with their parents; it reads each process's details only once, so a scan of a
 * system where nothing started costs one listing of the process table.
 */
struct capture_seen {
    int64_t pid, ppid;
    uint64_t start_time; /* as capture_target's */
};
struct capture_scan;
int capture_scan_open(struct capture_scan **out, struct err *e);
/* *v (caller frees) holds the new processes, in pid order. */
int capture_scan_new(struct capture_scan *s, struct capture_seen **v, size_t *n, struct err *e);
void capture_scan_close(struct capture_scan *s);

/* Keeps the pids seen at the last scan (capture_common.c, for the backends). */
struct capture_pidset {
    int64_t *v;
    size_t n;
};
/* Sorts cur (n pids, taken over) into the set; returns how many of them are new, moved to the
 * front of cur in pid order. */
size_t capture_pidset_update(struct capture_pidset *known, int64_t *cur, size_t n);

/* Who a process is, as capture_target says, read cheaply and without access to its memory. */
struct capture_proc {
    int64_t pid;
    uint64_t start_time;
    char boot_id[64];
    char host[256];
};
/* Fills out for pid: 0, or ERR_NOPROC when no live process has that pid (a zombie is gone). */
int capture_identify(int64_t pid, struct capture_proc *out, struct err *e);

const char *capture_detail_name(int detail);
/* Returns the detail for "maps", "rollup" or "smaps", or -1. */
int capture_detail_parse(const char *name);

#endif
