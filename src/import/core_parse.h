/*
 * ELF core files (64-bit little-endian: x86-64 and aarch64) read into regions: one per PT_LOAD
 * segment, with its permissions from the segment's flags, named (with their offsets) by the
 * NT_FILE note, and the pid and program from NT_PRSTATUS / NT_PRPSINFO. Only the headers and
 * the notes are read, through read_at, so a core of gigabytes costs what its headers cost.
 */
#ifndef VMSNAP_CORE_PARSE_H
#define VMSNAP_CORE_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "model/region.h"
#include "util/err.h"

/* Reads n bytes at offset off into dst; returns 0, or -1 when the file is shorter. */
typedef int (*core_read_fn)(void *ctx, uint64_t off, void *dst, size_t n);

struct core_info {
    int64_t pid;     /* 0 when no NT_PRSTATUS/NT_PRPSINFO says */
    char *program;   /* the command line NT_PRPSINFO holds, or NULL (owned) */
    int by_gdb;      /* gdb's gcore wrote it (a "GDB" note): not every mapping is dumped */
    size_t left_out; /* file mappings NT_FILE names that no segment covers (gcore) */
};

/*
 * Appends the core's mappings to out, sorted. A core does not say whether a mapping was shared,
 * so the fourth perms character is 'p'; [heap], [stack] and [vdso] are not named in it.
 * Returns 0, or ERR_PARSE / ERR_UNSUPPORTED with one line in e. info->program is set (and owned
 * by the caller) even on failure.
 */
int core_parse(core_read_fn read_at, void *ctx, uint64_t size, struct core_info *info,
               struct region_list *out, struct err *e);

#endif
