/* Two snapshots of a store and their diff: the regions to compare, the changes, the summary. */
#include <string.h>

#include "diff/diff.h"
#include "store/store.h"

static int load_side(struct diff_pair *p, int k, struct store *st, int64_t id, struct err *e)
{
    int rc = store_snapshot_get(st, id, &p->snap[k], e);
    return rc < 0 ? rc : store_target_get(st, p->snap[k].target_id, &p->target[k], e);
}

int diff_pair_load(struct diff_pair *p, struct store *st, int64_t a, int64_t b, int category,
                   struct err *e)
{
    memset(p, 0, sizeof(*p));
    region_list_init(&p->regions[0]);
    region_list_init(&p->regions[1]);
    diff_result_init(&p->d);
    int rc;
    if ((rc = load_side(p, 0, st, a, e)) < 0 || (rc = load_side(p, 1, st, b, e)) < 0)
        return rc;
    const struct store_snapshot *x = &p->snap[0], *y = &p->snap[1];
    int both_smaps = strcmp(x->detail, "smaps") == 0 && strcmp(y->detail, "smaps") == 0;
    if (x->target_id == y->target_id) {
        /* Only what opened or closed between the two snapshots needs reading, and, with
         * per-region figures on both, what changed its figures. */
        int lo = x->id <= y->id ? 0 : 1;
        int64_t lo_id = p->snap[lo].id, hi_id = p->snap[1 - lo].id;
        if (both_smaps)
            rc = store_read_delta_mem(st, x->target_id, lo_id, hi_id, &p->regions[lo],
                                      &p->regions[1 - lo], e);
        else
            rc = store_read_delta(st, x->target_id, lo_id, hi_id, &p->regions[lo],
                                  &p->regions[1 - lo], e);
    } else {
        rc = store_read_regions(st, x->id, &p->regions[0], e);
        if (rc == 0)
            rc = store_read_regions(st, y->id, &p->regions[1], e);
    }
    if (rc < 0)
        return rc;
    diff_regions(&p->regions[0], &p->regions[1], &p->d);
    diff_summarize(&p->regions[0], &p->regions[1], category, &p->sum);
    p->have_cat_rss = p->sum.have_rss && both_smaps;
    if (category >= 0) {
        /* One category's resident bytes need per-region figures on both sides. */
        p->have_rss = p->have_cat_rss;
        p->rss_delta = p->sum.total.rss;
    } else {
        p->have_rss = x->have_mem && y->have_mem;
        p->rss_delta = (int64_t)(y->rss_bytes - x->rss_bytes);
    }
    return 0;
}

int diff_pair_load_whole(struct diff_pair *p, struct store *st, int64_t a, int64_t b, struct err *e)
{
    memset(p, 0, sizeof(*p));
    region_list_init(&p->regions[0]);
    region_list_init(&p->regions[1]);
    diff_result_init(&p->d);
    int rc;
    if ((rc = load_side(p, 0, st, a, e)) < 0 || (rc = load_side(p, 1, st, b, e)) < 0 ||
        (rc = store_read_regions(st, a, &p->regions[0], e)) < 0 ||
        (rc = store_read_regions(st, b, &p->regions[1], e)) < 0)
        return rc;
    p->have_cat_rss =
        strcmp(p->snap[0].detail, "smaps") == 0 && strcmp(p->snap[1].detail, "smaps") == 0;
    p->have_rss = p->snap[0].have_mem && p->snap[1].have_mem;
    p->rss_delta = (int64_t)(p->snap[1].rss_bytes - p->snap[0].rss_bytes);
    return 0;
}

void diff_pair_release(struct diff_pair *p)
{
    diff_result_release(&p->d);
    for (int k = 0; k < 2; k++) {
        region_list_release(&p->regions[k]);
        store_snapshot_release(&p->snap[k]);
        store_target_release(&p->target[k]);
    }
}
