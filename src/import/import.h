/*
 * Saved memory maps read into region lists, as if captured: /proc/PID/maps and smaps text kept
 * from a live process (a bug report's attachment, a ticket), `pmap -X`/`-XX` output, and ELF
 * core files (src/import/core_parse.h). One file is one snapshot. The
 * format is detected from the content; a file that is not one of them, or is damaged, is
 * refused with one line. import_parse is pure (bytes in, regions out) for tests and fuzzers.
 */
#ifndef VMSNAP_IMPORT_H
#define VMSNAP_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "capture/capture.h"
#include "model/region.h"
#include "util/err.h"

enum import_format { IMPORT_AUTO = 0, IMPORT_MAPS, IMPORT_SMAPS, IMPORT_PMAP, IMPORT_CORE };

/* A saved map, read. */
struct import_map {
    int format;                 /* what the file was read as */
    int detail;                 /* DETAIL_SMAPS when the regions carry figures, else DETAIL_MAPS */
    struct region_list regions; /* sorted and disjoint, categories derived */
    int64_t pid;                /* 0 when the file does not say */
    char *program;              /* what ran, when the file says; NULL otherwise (owned) */
    int64_t taken_at_ms;        /* Unix ms: the file's modification time (import_read) */
    /* A core: gdb's gcore wrote it, and how many file mappings its notes name that it did not
     * dump (left out of regions: their permissions are not in the file). */
    int by_gdb;
    size_t left_out;
    int no_private_dirty; /* pmap -X: figures without Private_Dirty (stored as 0) */
};

/* "maps", "smaps", "pmap", "core" -> the format; -1 for anything else. */
int import_format_parse(const char *name);
const char *import_format_name(int format);

/*
 * Reads buf[0..len) as format (IMPORT_AUTO: detect it) into out (initialised here; release
 * it with import_map_release even on failure). Returns 0, or ERR_PARSE / ERR_UNSUPPORTED with
 * one line in e naming what is wrong and where.
 */
int import_parse(const char *buf, size_t len, int format, struct import_map *out, struct err *e);
/* import_parse of the file at path; taken_at_ms is its modification time. */
int import_read(const char *path, int format, struct import_map *out, struct err *e);
void import_map_release(struct import_map *m);

/*
 * The target an imported map is stored under: named name (--target-name) when given, else
 * after what the file says ran, else after fallback (the file's name). Imports under one name
 * (and pid) are one target, their snapshots in the order imported. Release with
 * import_target_release.
 */
void import_target(const struct import_map *m, const char *name, const char *fallback,
                   struct capture_target *t);
void import_target_release(struct capture_target *t);

/*
 * ISO 8601 UTC time, "2026-11-23T07:00:00Z", with optional seconds, ".mmm", a space for the
 * "T", and a zone ("Z", "+02:00", "-0500"); without a zone it is UTC. Returns 0 and Unix ms,
 * or -1.
 */
int import_parse_time(const char *s, int64_t *ms);

#endif
