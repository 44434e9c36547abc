/*
 * Pure parsers for Linux /proc/PID/maps, smaps and smaps_rollup text: bytes in, regions out,
 * no I/O, so fixtures and fuzzers can drive them. A malformed line is an error naming its line
 * number; nothing is skipped silently.
 */
#ifndef VMSNAP_MAPS_PARSE_H
#define VMSNAP_MAPS_PARSE_H

#include <stddef.h>

#include "model/region.h"
#include "util/err.h"

/*
 * Appends one region per maps line of buf[0..len) to out. Names are decoded ("\012" -> '\n',
 * flagged REGION_NAME_ESCAPED) and a trailing " (deleted)" is stripped and flagged
 * REGION_DELETED | REGION_NAME_SUFFIX. Categories are not derived here.
 * Returns 0, or ERR_PARSE with "line N: ..." in e.
 */
int maps_parse(const char *buf, size_t len, struct region_list *out, struct err *e);

/* Like maps_parse for smaps text; also fills the per-region memory figures (REGION_HAS_MEM). */
int smaps_parse(const char *buf, size_t len, struct region_list *out, struct err *e);

/*
 * smaps text a piece at a time, so a large process's smaps (tens of MiB) need not be held
 * whole: each call parses the complete lines of buf[0..len) (all of it when final) and says in
 * *used how many bytes it took; the caller keeps the rest for the next call.
 */
struct smaps_parser {
    struct region_list *out;
    size_t lineno;
    struct mem_totals t; /* the current region's figures so far */
    int in_region;
};
void smaps_parser_init(struct smaps_parser *sp, struct region_list *out);
int smaps_parse_lines(struct smaps_parser *sp, const char *buf, size_t len, int final, size_t *used,
                      struct err *e);

/* Whether [p, le) is an smaps field line ("Rss:   4 kB": a capitalised name, then ':'). */
int smaps_is_field(const char *p, const char *le);

/* Parses smaps_rollup text into process totals. */
int rollup_parse(const char *buf, size_t len, struct mem_totals *t, struct err *e);

/*
 * Turns a name as the kernel printed it into the stored form on r: decodes "\012" when
 * unescape is set, strips " (deleted)" (setting the flags), and interns it in out.
 */
void maps_set_name(struct region_list *out, struct region *r, const char *name, size_t len,
                   int unescape);

#endif
