/*
 * The JSON forms of vmsnap's objects, shared by the CLI's printers and the report: the same
 * objects have the same fields wherever they are printed.
 */
#ifndef VMSNAP_JSON_FORMS_H
#define VMSNAP_JSON_FORMS_H

#include "analyze/growth.h"
#include "model/region.h"
#include "diff/diff.h"
#include "json/json.h"
#include "store/store.h"

/* Writes "key": s (null when s is NULL). Text that is not UTF-8 is written with U+FFFD for each
 * stray byte, and its exact bytes follow as "key_hex": lower-case hex, so nothing is lost. */
void json_text(struct json *j, const char *key, const char *s, size_t len);
/* The members of a region (as show and the regions view name them), into an open object. */
void json_region_fields(struct json *j, const struct region *r);
/* A target as an object. */
void json_target(struct json *j, const struct store_target *t);
/* The members of a snapshot row, into an open object. */
void json_snapshot_fields(struct json *j, const struct store_snapshot *s);

/* One side of a diff ("from" or "to") as an object. */
void json_diff_side(struct json *j, const struct store_snapshot *snap,
                    const struct store_target *t);
/* One change as an object. */
/* A change; with made (a recording with --stacks), who made a new region (created_by) or what
 * a region grew by (grown_by). */
struct sites_map;
void json_change(struct json *j, const struct diff_change *c, struct sites_map *made);
/* A diff's summary as an object: its deltas (of category only, when >= 0) and the changes
 * counted by kind. */
void json_diff_summary(struct json *j, const struct diff_pair *p, int category,
                       const size_t counts[DIFF_KIND_COUNT], size_t total);

/* The members naming one snapshot of a growth range: snapshot (id), seq, taken_at, label. */
void json_growth_snap_fields(struct json *j, const struct growth_snap *s);
/* The members of `vmsnap growth -j`, into an open object. */
/* "tree": the rows of a tree's processes, ranked ([] when the answer is one process's). */
void json_growth_tree(struct json *j, const struct growth_load *l);
/* A call stack's frame: {"function", "file", "line", "module", "offset"} (unknown: null). */
struct site_frame;
void json_frame(struct json *j, const struct site_frame *f);
/* "key": {"function", "file", "line", "module", "offset"}, or null without a frame. */
void json_made_by(struct json *j, const char *key, const struct site_frame *f);
void json_growth_fields(struct json *j, const struct store_target *t,
                        const struct growth_result *g);

#endif
