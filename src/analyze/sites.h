/*
 * Call sites (a recording made with --stacks): which code holds the memory a range grew by.
 * The target's calls are replayed in order, byte range by byte range: each byte is owned by
 * the call that last created, grew or committed it (mmap, brk, mremap, shmat, an mprotect to
 * an accessible protection) and freed by munmap, mremap, shmdt or a brk that shrinks. A site
 * is a stack; it holds the bytes, committed at --to, whose owner made them during the range.
 * For memory an allocator maps for itself (brk, arena growth) the stack is the allocation that
 * triggered the growth, not necessarily the code that keeps the memory.
 */
#ifndef VMSNAP_SITES_H
#define VMSNAP_SITES_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct site_frame {
    char *function; /* NULL: not known */
    char *file;     /* NULL: not known */
    int line;
    char *module; /* "" when unknown */
    uint64_t offset;
};

struct growth_site {
    int64_t stack_id;
    uint64_t bytes; /* committed at --to, made during the range */
    int64_t regions, calls;
    struct site_frame *frames; /* innermost first */
    int nframes;
    int shown; /* the first frame outside the C library and the dynamic loader (0 if none) */
};

/*
 * The sites of target's growth from snapshot from to snapshot to, ranked by bytes (at most top):
 * 0, or an error. *recorded: whether the target has calls recorded at all (no --stacks: none,
 * and *n is 0). *out is freed by sites_free.
 */
int sites_compute(struct store *st, int64_t target, int64_t from, int64_t to, size_t top,
                  struct growth_site **out, size_t *n, int *recorded, struct err *e);
void sites_free(struct growth_site *v, size_t n);

/*
 * Who made each byte of a target's address space at one of its snapshots: its calls replayed
 * up to that snapshot. NULL (and 0) when the target has no calls recorded.
 */
struct sites_map;
int sites_map_open(struct store *st, int64_t target, int64_t upto, struct sites_map **out,
                   struct err *e);
/* The call site that made most of [start, end) (created, grew or committed it): its frame
 * shown (the first outside the C library and the loader), or NULL when no recorded call did.
 * Valid until sites_map_close. */
const struct site_frame *sites_map_made_by(struct sites_map *m, uint64_t start, uint64_t end);
void sites_map_close(struct sites_map *m);

/* Whether module is the C library or the dynamic loader (by its file's name). */
int sites_is_libc(const char *module);
/* Whether a frame is the C library's: in its module or the loader, or (a static program) one of
 * its functions by name. */
int sites_frame_is_libc(const struct site_frame *f);

#endif
