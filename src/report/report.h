/*
 * The self-contained HTML report: the template (src/report/report.html, embedded at build
 * time) with what it draws embedded as JSON in <script type="application/json"
 * id="vmsnap-data">: the growth JSON (as `vmsnap growth -j` prints it) plus the series, the
 * labels and marks, the diff between --from and --to, and the address-space strip; for a
 * recorded tree, its rows and each other process's own smaller set of the same. Whatever
 * the recording's size, the data stays small: series are downsampled to a screen's width
 * keeping each bucket's min and max, the strip has one entry per pixel, and the diff lists the
 * largest changes. Writes only to the FILE it is given.
 */
#ifndef VMSNAP_REPORT_H
#define VMSNAP_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/region.h"
#include "store/store.h"
#include "util/err.h"

/* Timeline buckets and strip pixels: about the width a report is read at. */
#define REPORT_WIDTH 1000
/* At most this many changes of the diff go into the report, the largest. */
#define REPORT_MAX_CHANGES 2000
/* At most this many labelled snapshots and marks are drawn. */
#define REPORT_MAX_LABELS 500
/* A tree's other processes: at most this many (the top ones), each with this many buckets and
 * pixels, changes, and lineages, released and survivor groups. */
#define REPORT_MAX_PROCESSES   100
#define REPORT_PROCESS_WIDTH   120
#define REPORT_PROCESS_CHANGES 20
#define REPORT_PROCESS_TOP     3

struct report_opts {
    int64_t target;        /* 0: the target of the newest snapshot (or of --from/--to) */
    const char *from, *to; /* snapshot selectors; NULL: the target's first and last */
};

/* What a report holds, for the caller to say. */
struct report_info {
    int64_t target, from, to; /* ids */
    size_t snapshots;
    size_t changes, changes_shown;
};

/* Writes the report of o's range to out. On failure, what was written to out is not a report. */
int report_write(struct store *st, const struct report_opts *o, FILE *out, struct report_info *info,
                 struct err *e);

/* report_data.c: the recording reduced to what a screen shows. Pure: no I/O. */

/* A run of consecutive snapshots in one time bucket (indexes, inclusive). */
struct report_bucket {
    size_t first, last;
};
/*
 * Groups n snapshots taken at t_ms (Unix milliseconds, in seq order) by time into at most
 * width buckets over the range; with n <= width every snapshot is its own. Returns the number
 * of groups in *out (caller frees): consecutive snapshots of one bucket, so a clock that went
 * back starts a new group rather than mixing them.
 */
size_t report_buckets(const int64_t *t_ms, size_t n, size_t width, struct report_bucket **out);

/* One pixel of the address-space strip. */
struct report_pixel {
    uint8_t category;          /* the category holding most of the pixel's bytes */
    uint32_t regions;          /* regions with bytes in the pixel */
    uint64_t start;            /* address of the pixel's first byte */
    uint64_t end;              /* address after its last byte */
    uint64_t bytes[CAT_COUNT]; /* bytes by category */
};
/*
 * Lays l's mapped bytes end to end, in address order and without the gaps, over width pixels.
 * Returns the number of pixels in *out (caller frees): width, or 0 when nothing is mapped.
 */
size_t report_strip(const struct region_list *l, size_t width, struct report_pixel **out);

#endif
