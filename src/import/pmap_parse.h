/* `pmap -X` and `pmap -XX` output (procps 4, as Debian ships it) read into regions: pure. */
#ifndef VMSNAP_PMAP_PARSE_H
#define VMSNAP_PMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "model/region.h"
#include "util/err.h"

struct pmap_info {
    int64_t pid;
    char *program;          /* the command line pmap printed, or NULL (owned) */
    int have_rss;           /* Rss, Pss, Anonymous and Swap columns: regions carry figures */
    int have_private_dirty; /* -XX: Private_Dirty too (with -X it reads 0) */
};

/*
 * Appends the mappings of buf[0..len) to out. Names are decoded as in maps text ("\012", a
 * trailing " (deleted)"). Returns 0, or ERR_PARSE with "line N: ..." in e; info->program is set
 * (and owned by the caller) even then.
 */
int pmap_parse(const char *buf, size_t len, struct pmap_info *info, struct region_list *out,
               struct err *e);

#endif
