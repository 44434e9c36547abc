/*
 * The PROCMAP_QUERY ioctl on /proc/PID/maps (Linux 6.11+). The installed headers may predate it,
 * so the ABI is declared here. It returns raw names (no "\012" escaping) and, walked from address
 * 0 with COVERING_OR_NEXT, a list that is sorted and disjoint by construction.
 */
#ifndef VMSNAP_LINUX_PROCMAP_H
#define VMSNAP_LINUX_PROCMAP_H

#include <stdint.h>

#include "model/region.h"
#include "util/err.h"

/* Returns 1 when the ioctl works on maps_fd, 0 when the kernel lacks it (ENOTTY and friends). */
int procmap_probe(int maps_fd);

/*
 * Fills r (and its name, interned in out) with the VMA covering addr, or the next one when
 * next is set. Returns 0, 1 when there is no such VMA, or a negative error.
 */
int procmap_query_one(int maps_fd, uint64_t addr, int next, struct region_list *out,
                      struct region *r, struct err *e);

/* Appends every VMA of the target to out, in address order. */
int procmap_walk(int maps_fd, struct region_list *out, struct err *e);

#endif
