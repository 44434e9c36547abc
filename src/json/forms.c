/*
 * The JSON forms of vmsnap's objects: a region, a target, a snapshot, a diff's changes and
 * summary, a growth result. The CLI prints them and the report embeds them, from this one
 * implementation, so a program reads the same fields from either.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/forms.h"
#include "util/xalloc.h"

void json_text(struct json *j, const char *key, const char *s, size_t len)
{
    json_key(j, key);
    if (!s) {
        json_null(j);
        return;
    }
    json_string_len(j, s, len);
    if (json_utf8_valid(s, len))
        return;
    /* Not UTF-8 (Linux file names are bytes): the exact bytes beside the readable form. */
    static const char hex[] = "0123456789abcdef";
    char *h = xmalloc(len * 2 + 1);
    for (size_t i = 0; i < len; i++) {
        h[2 * i] = hex[(unsigned char)s[i] >> 4];
        h[2 * i + 1] = hex[(unsigned char)s[i] & 15];
    }
    h[2 * len] = '\0';
    char name[64];
    snprintf(name, sizeof(name), "%s_hex", key);
    json_key(j, name);
    json_string(j, h);
    free(h);
}

void json_region_fields(struct json *j, const struct region *r)
{
    int mem = (r->flags & REGION_HAS_MEM) != 0, win = (r->flags & REGION_HAS_WIN) != 0;
    char dev[24];
    json_key(j, "start");
    json_hex(j, r->start);
    json_key(j, "end");
    json_hex(j, r->end);
    json_key(j, "size");
    json_uint(j, r->end - r->start);
    json_key(j, "perms");
    json_string(j, r->perms);
    json_key(j, "offset");
    json_uint(j, r->offset);
    snprintf(dev, sizeof(dev), "%02x:%02x", r->dev_major, r->dev_minor);
    json_key(j, "dev");
    json_string(j, dev);
    json_key(j, "inode");
    json_uint(j, r->inode);
    json_text(j, "path", r->path, r->path_len);
    json_key(j, "category");
    json_string(j, region_category_name(r->category));
    const char *names[] = {"rss", "pss", "private_dirty", "anonymous", "swap"};
    const uint64_t vals[] = {region_extra(r)->rss, region_extra(r)->pss,
                             region_extra(r)->private_dirty, region_extra(r)->anonymous,
                             region_extra(r)->swap};
    for (int i = 0; i < 5; i++) {
        json_key(j, names[i]);
        if (mem)
            json_uint(j, vals[i]);
        else
            json_null(j);
    }
    json_key(j, "state");
    json_string(j, win ? region_win_state_name(region_extra(r)->state) : NULL);
    json_key(j, "type");
    json_string(j, win ? region_win_type_name(region_extra(r)->type) : NULL);
    json_key(j, "protect");
    if (win)
        json_uint(j, region_extra(r)->protect);
    else
        json_null(j);
    json_key(j, "alloc_base");
    if (win)
        json_hex(j, region_extra(r)->alloc_base);
    else
        json_null(j);
    json_key(j, "alloc_protect");
    if (win)
        json_uint(j, region_extra(r)->alloc_protect);
    else
        json_null(j);
    json_key(j, "deleted");
    json_bool(j, (r->flags & REGION_DELETED) != 0);
    json_text(j, "owner", r->owner, r->owner_len);
}

void json_target(struct json *j, const struct store_target *t)
{
    json_begin_object(j);
    json_key(j, "id");
    json_int(j, t->id);
    json_key(j, "pid");
    json_int(j, t->pid);
    json_key(j, "start_time");
    json_uint(j, t->start_time);
    json_text(j, "exe", t->exe, t->exe ? strlen(t->exe) : 0);
    json_text(j, "cmdline", t->cmdline, t->cmdline ? strlen(t->cmdline) : 0);
    json_key(j, "host");
    json_string(j, t->host);
    json_key(j, "os");
    json_string(j, t->os);
    json_key(j, "first_seen");
    json_string(j, t->first_seen);
    json_key(j, "parent_target_id");
    if (t->parent_target_id)
        json_int(j, t->parent_target_id);
    else
        json_null(j);
    json_end_object(j);
}

void json_snapshot_fields(struct json *j, const struct store_snapshot *s)
{
    json_key(j, "id");
    json_int(j, s->id);
    json_key(j, "seq");
    json_int(j, s->seq);
    json_key(j, "taken_at");
    json_string(j, s->taken_at);
    json_key(j, "label");
    json_string(j, s->label);
    json_key(j, "region_count");
    json_int(j, s->region_count);
    json_key(j, "mapped_bytes");
    json_uint(j, s->mapped_bytes);
    json_key(j, "rss_bytes");
    if (s->have_mem)
        json_uint(j, s->rss_bytes);
    else
        json_null(j);
    json_key(j, "detail");
    json_string(j, s->detail);
    json_key(j, "torn");
    json_bool(j, s->torn);
}

static void json_path(struct json *j, const struct region *r)
{
    json_text(j, "path", r->path, r->path_len);
}

void json_diff_side(struct json *j, const struct store_snapshot *snap, const struct store_target *t)
{
    json_begin_object(j);
    json_key(j, "snapshot");
    json_int(j, snap->id);
    json_key(j, "seq");
    json_int(j, snap->seq);
    json_key(j, "taken_at");
    json_string(j, snap->taken_at);
    json_key(j, "label");
    json_string(j, snap->label);
    json_key(j, "detail");
    json_string(j, snap->detail);
    json_key(j, "mapped_bytes");
    json_uint(j, snap->mapped_bytes);
    json_key(j, "rss_bytes");
    if (snap->have_mem)
        json_uint(j, snap->rss_bytes);
    else
        json_null(j);
    json_key(j, "target");
    json_target(j, t);
    json_end_object(j);
}

void json_change(struct json *j, const struct diff_change *c, struct sites_map *made)
{
    const struct region *r = c->now ? c->now : c->before;
    json_begin_object(j);
    json_key(j, "change");
    json_string(j, diff_kind_name(c->kind));
    json_key(j, "start");
    json_hex(j, c->start);
    json_key(j, "end");
    json_hex(j, c->end);
    json_key(j, "size");
    json_uint(j, c->end - c->start);
    json_key(j, "perms");
    json_string(j, r->perms);
    json_path(j, r);
    json_key(j, "category");
    json_string(j, region_category_name(r->category));
    json_text(j, "owner", r->owner, r->owner_len);
    json_key(j, "deleted");
    json_bool(j, (r->flags & REGION_DELETED) != 0);
    if (c->now && (c->now->flags & REGION_HAS_MEM)) {
        json_key(j, "rss");
        json_uint(j, region_extra(c->now)->rss);
    }
    switch (c->kind) {
    case DIFF_GROWN:
    case DIFF_SHRUNK:
        json_key(j, "before");
        json_begin_object(j);
        json_key(j, "start");
        json_hex(j, c->before->start);
        json_key(j, "end");
        json_hex(j, c->before->end);
        json_key(j, "size");
        json_uint(j, c->before->end - c->before->start);
        json_end_object(j);
        json_key(j, "delta");
        json_int(j, c->delta);
        break;
    case DIFF_REPROTECTED:
        json_key(j, "before");
        json_begin_object(j);
        json_key(j, "perms");
        json_string(j, c->before->perms);
        if (c->before->flags & REGION_HAS_WIN) {
            json_key(j, "protect");
            json_uint(j, region_extra(c->before)->protect);
        }
        json_end_object(j);
        break;
    case DIFF_REMAPPED:
        json_key(j, "offset");
        json_uint(j, c->now->offset + (c->start - c->now->start));
        json_key(j, "before");
        json_begin_object(j);
        json_path(j, c->before);
        json_key(j, "offset");
        json_uint(j, c->before->offset + (c->start - c->before->start));
        json_key(j, "perms");
        json_string(j, c->before->perms);
        json_end_object(j);
        break;
    case DIFF_RESIDENT:
        json_key(j, "before");
        json_begin_object(j);
        json_key(j, "rss");
        json_uint(j, region_extra(c->before)->rss);
        json_end_object(j);
        json_key(j, "delta");
        json_int(j, c->delta);
        break;
    case DIFF_COMMITTED:
    case DIFF_DECOMMITTED:
        json_key(j, "state");
        json_string(j, region_win_state_name(region_extra(c->now)->state));
        json_key(j, "before");
        json_begin_object(j);
        json_key(j, "state");
        json_string(j, region_win_state_name(region_extra(c->before)->state));
        json_end_object(j);
        break;
    default:
        break;
    }
    /* Recorded with --stacks: the code behind a new region, or behind what a region grew. */
    if (made && c->kind == DIFF_NEW)
        json_made_by(j, "created_by", sites_map_made_by(made, c->start, c->end));
    if (made && c->kind == DIFF_GROWN) {
        uint64_t s0, s1;
        diff_grown_part(c, &s0, &s1);
        json_made_by(j, "grown_by", sites_map_made_by(made, s0, s1));
    }
    json_end_object(j);
}

void json_diff_summary(struct json *j, const struct diff_pair *p, int category,
                       const size_t counts[DIFF_KIND_COUNT], size_t total)
{
    json_begin_object(j);
    json_key(j, "mapped_delta");
    json_int(j, p->sum.total.mapped);
    json_key(j, "committed_delta");
    json_int(j, p->sum.total.committed);
    json_key(j, "rss_delta");
    if (p->have_rss)
        json_int(j, p->rss_delta);
    else
        json_null(j);
    json_key(j, "by_category");
    json_begin_object(j);
    for (int c = 0; c < CAT_COUNT; c++) {
        if (!p->sum.cat[c].touched || (category >= 0 && c != category))
            continue;
        json_key(j, region_category_name(c));
        json_begin_object(j);
        json_key(j, "mapped_delta");
        json_int(j, p->sum.cat[c].mapped);
        json_key(j, "committed_delta");
        json_int(j, p->sum.cat[c].committed);
        json_key(j, "rss_delta");
        if (p->have_cat_rss)
            json_int(j, p->sum.cat[c].rss);
        else
            json_null(j);
        json_end_object(j);
    }
    json_end_object(j);
    json_key(j, "counts");
    json_begin_object(j);
    for (int k = 0; k < DIFF_KIND_COUNT; k++) {
        json_key(j, diff_kind_name(k));
        json_uint(j, counts[k]);
    }
    json_end_object(j);
    json_key(j, "changes");
    json_uint(j, total);
    json_end_object(j);
}

/* {"snapshot", "seq", "taken_at"}: the members naming one snapshot. */
static void when_fields(struct json *j, int64_t id, int64_t seq, const char *taken_at)
{
    json_key(j, "snapshot");
    json_int(j, id);
    json_key(j, "seq");
    json_int(j, seq);
    json_key(j, "taken_at");
    json_string(j, taken_at);
}

/* The same and its label, as a history and a growth result hold a snapshot. */
static void snap_fields(struct json *j, int64_t id, int64_t seq, const char *taken_at,
                        const char *label)
{
    when_fields(j, id, seq, taken_at);
    json_key(j, "label");
    json_string(j, label);
}

/* Snapshot index k of a growth result, as a point in a series. */
static void json_point(struct json *j, const struct growth_result *g, size_t k)
{
    json_begin_object(j);
    when_fields(j, g->snaps[k].id, g->snaps[k].seq, g->snaps[k].taken_at);
    json_end_object(j);
}

/* {"bytes", "snapshot", "seq", "taken_at"}: a peak of bytes at snapshot index k. */
static void json_peak(struct json *j, const struct growth_result *g, int64_t bytes, size_t k)
{
    json_begin_object(j);
    json_key(j, "bytes");
    json_int(j, bytes);
    when_fields(j, g->snaps[k].id, g->snaps[k].seq, g->snaps[k].taken_at);
    json_end_object(j);
}

static void json_stat(struct json *j, const struct growth_stat *s, const struct growth_result *g)
{
    json_begin_object(j);
    json_key(j, "start");
    json_int(j, s->start);
    json_key(j, "end");
    json_int(j, s->end);
    json_key(j, "delta");
    json_int(j, s->delta);
    json_key(j, "rate");
    json_double(j, s->rate);
    json_key(j, "r2");
    json_double(j, s->r2);
    json_key(j, "onset");
    if (s->onset == GROWTH_NONE)
        json_null(j);
    else
        json_point(j, g, s->onset);
    json_key(j, "growing");
    json_bool(j, s->growing);
    json_key(j, "peak");
    json_peak(j, g, s->peak_bytes, s->peak);
    json_key(j, "slope");
    json_double(j, s->slope);
    json_key(j, "band");
    json_int(j, s->band);
    json_key(j, "phases");
    json_begin_array(j);
    for (size_t i = 0; i < s->nphases; i++) {
        const struct phase *p = &s->phases[i];
        json_begin_object(j);
        json_key(j, "kind");
        json_string(j, phase_kind_name(p->kind));
        json_key(j, "from");
        json_point(j, g, p->from);
        json_key(j, "to");
        json_point(j, g, p->to);
        json_key(j, "delta");
        json_int(j, p->delta);
        json_key(j, "rate");
        json_double(j, p->rate);
        if (p->kind == PHASE_GROWTH || p->kind == PHASE_STARTUP) {
            json_key(j, "held");
            json_bool(j, p->held);
        }
        json_end_object(j);
    }
    json_end_array(j);
    json_end_object(j);
}

void json_growth_snap_fields(struct json *j, const struct growth_snap *s)
{
    snap_fields(j, s->id, s->seq, s->taken_at, s->label);
}

static void json_snap_ref(struct json *j, const struct growth_snap *s)
{
    json_begin_object(j);
    snap_fields(j, s->id, s->seq, s->taken_at, s->label);
    json_end_object(j);
}

/* The members naming a region that growth followed: its range, category, perms and path. */
static void json_followed_region(struct json *j, const struct region *r)
{
    json_key(j, "start");
    json_hex(j, r->start);
    json_key(j, "end");
    json_hex(j, r->end);
    json_key(j, "category");
    json_string(j, region_category_name(r->category));
    json_key(j, "perms");
    json_string(j, r->perms);
    json_text(j, "path", r->path, r->path_len);
}

void json_growth_fields(struct json *j, const struct store_target *t, const struct growth_result *g)
{
    json_key(j, "target");
    json_target(j, t);
    json_key(j, "from");
    json_snap_ref(j, &g->snaps[0]);
    json_key(j, "to");
    json_snap_ref(j, &g->snaps[g->nsnaps - 1]);
    json_key(j, "duration_s");
    json_double(j, g->duration_s);
    json_key(j, "snapshots");
    json_uint(j, g->nsnaps);
    json_key(j, "totals");
    json_begin_object(j);
    json_key(j, "committed");
    json_stat(j, &g->committed, g);
    json_key(j, "rss");
    if (g->have_rss)
        json_stat(j, &g->rss, g);
    else
        json_null(j);
    json_end_object(j);
    json_key(j, "categories");
    json_begin_array(j);
    for (int c = 0; c < CAT_COUNT; c++) {
        if (!g->cat[c].present)
            continue;
        json_begin_object(j);
        json_key(j, "category");
        json_string(j, region_category_name(c));
        json_key(j, "committed");
        json_stat(j, &g->cat[c].committed, g);
        json_key(j, "rss");
        if (g->have_cat_rss)
            json_stat(j, &g->cat[c].rss, g);
        else
            json_null(j);
        json_end_object(j);
    }
    json_end_array(j);
    json_key(j, "lineages");
    json_begin_array(j);
    for (size_t i = 0; i < g->nlineages; i++) {
        const struct growth_lineage *l = &g->lineages[i];
        json_begin_object(j);
        json_followed_region(j, &l->now);
        json_key(j, "first_snapshot");
        json_int(j, g->snaps[l->first].id);
        json_key(j, "size_first");
        json_uint(j, l->size_first);
        json_key(j, "size_last");
        json_uint(j, l->size_last);
        json_key(j, "delta");
        json_int(j, l->delta);
        json_key(j, "rate");
        json_double(j, l->rate);
        json_key(j, "grew_share");
        json_double(j, l->grew_share);
        json_key(j, "first");
        json_point(j, g, l->first);
        json_end_object(j);
    }
    json_end_array(j);
    json_key(j, "released");
    json_begin_array(j);
    for (size_t i = 0; i < g->nreleased; i++) {
        const struct growth_release *l = &g->released[i];
        json_begin_object(j);
        json_followed_region(j, &l->now);
        json_key(j, "first");
        json_point(j, g, l->first);
        json_key(j, "size_first");
        json_uint(j, l->size_first);
        json_key(j, "peak");
        json_peak(j, g, (int64_t)l->peak, l->peak_at);
        json_key(j, "size_last");
        json_uint(j, l->size_last);
        json_key(j, "gave_back");
        json_uint(j, l->peak - l->size_last);
        json_key(j, "freed");
        json_bool(j, l->freed);
        json_key(j, "last_seen");
        json_point(j, g, l->last);
        json_end_object(j);
    }
    json_end_array(j);
    json_key(j, "survivors");
    json_begin_array(j);
    for (size_t i = 0; i < g->nsurvivors; i++) {
        const struct growth_survivor *s = &g->survivors[i];
        json_begin_object(j);
        json_key(j, "category");
        json_string(j, region_category_name(s->like.category));
        json_key(j, "perms");
        json_string(j, s->like.perms);
        json_text(j, "path", s->like.path, s->like.path_len);
        json_key(j, "size");
        json_uint(j, s->like.end - s->like.start);
        json_key(j, "count");
        json_int(j, s->count);
        json_key(j, "bytes");
        json_uint(j, s->bytes);
        json_key(j, "committed");
        json_uint(j, s->committed);
        const size_t born[2] = {s->first_born, s->last_born};
        const char *names[2] = {"first_born", "last_born"};
        for (int k = 0; k < 2; k++) {
            json_key(j, names[k]);
            json_point(j, g, born[k]);
        }
        json_end_object(j);
    }
    json_end_array(j);
    json_key(j, "sites_recorded");
    json_bool(j, g->have_sites);
    json_key(j, "sites");
    json_begin_array(j);
    for (size_t i = 0; i < g->nsites; i++) {
        const struct growth_site *s = &g->sites[i];
        json_begin_object(j);
        json_key(j, "bytes");
        json_uint(j, s->bytes);
        json_key(j, "regions");
        json_int(j, s->regions);
        json_key(j, "calls");
        json_int(j, s->calls);
        json_key(j, "shown");
        json_int(j, s->shown);
        json_key(j, "frames");
        json_begin_array(j);
        for (int k = 0; k < s->nframes; k++)
            json_frame(j, &s->frames[k]);
        json_end_array(j);
        json_end_object(j);
    }
    json_end_array(j);
}

void json_frame(struct json *j, const struct site_frame *f)
{
    json_begin_object(j);
    json_key(j, "function");
    if (f->function)
        json_string(j, f->function);
    else
        json_null(j);
    json_key(j, "file");
    if (f->file)
        json_string(j, f->file);
    else
        json_null(j);
    json_key(j, "line");
    if (f->file)
        json_int(j, f->line);
    else
        json_null(j);
    json_key(j, "module");
    json_string(j, f->module);
    json_key(j, "offset");
    json_uint(j, f->offset);
    json_end_object(j);
}

void json_made_by(struct json *j, const char *key, const struct site_frame *f)
{
    json_key(j, key);
    if (f)
        json_frame(j, f);
    else
        json_null(j);
}

/* One process's series in a tree row: {start, end, delta, peak, onset, rate, growing}. */
static void json_brief(struct json *j, const struct growth_brief *b)
{
    json_begin_object(j);
    json_key(j, "start");
    json_int(j, b->start);
    json_key(j, "end");
    json_int(j, b->end);
    json_key(j, "delta");
    json_int(j, b->delta);
    json_key(j, "peak");
    json_begin_object(j);
    json_key(j, "bytes");
    json_int(j, b->peak_bytes);
    when_fields(j, b->peak.id, b->peak.seq, b->peak.taken_at);
    json_end_object(j);
    json_key(j, "onset");
    if (b->held) {
        json_begin_object(j);
        when_fields(j, b->onset.id, b->onset.seq, b->onset.taken_at);
        json_end_object(j);
    } else {
        json_null(j);
    }
    json_key(j, "rate");
    json_double(j, b->rate);
    json_key(j, "growing");
    json_bool(j, b->growing);
    json_end_object(j);
}

void json_growth_tree(struct json *j, const struct growth_load *l)
{
    json_key(j, "tree");
    json_begin_array(j);
    for (size_t i = 0; i < l->ntree; i++) {
        const struct growth_proc *p = &l->tree[i];
        json_begin_object(j);
        json_key(j, "target");
        json_target(j, &p->t);
        json_key(j, "alive");
        json_bool(j, p->alive);
        json_key(j, "snapshots");
        json_uint(j, p->nsnaps);
        json_key(j, "committed");
        json_brief(j, &p->committed);
        json_key(j, "rss");
        if (p->have_rss)
            json_brief(j, &p->rss);
        else
            json_null(j);
        json_key(j, "pss");
        if (p->have_rss)
            json_brief(j, &p->pss);
        else
            json_null(j);
        json_end_object(j);
    }
    json_end_array(j);
}
