/* Two snapshots of a store and their diff: the regions to compare, the changes, the summary. */
#include <string.h>

#include "diff/diff.h"
#include "store/store.h"

static int load_side(struct diff_pair *p, int k, struct store *st, int64_t id, struct err *e)
{
    int rc = store_snapshot_get(st, id, &p->snap[k], e);
    return rc < 0 ? rc : store_target_get(st, p->snap[k].target_id, &p->target[k], e);
}

/* What a snapshot's source could not say about its regions. */
enum unknown {
    UNKNOWN_OWNERS = 1 << 0, /* any import: whose stack or arena a region is */
    UNKNOWN_DIRS = 1 << 1,   /* pmap without -p: a file's name without its directory */
    UNKNOWN_PSEUDO = 1 << 2, /* a core: [heap], [stack], [vdso] unnamed; sharing read as p */
};

static int unknown_of(const struct store_snapshot *s)
{
    if (!s->method || strncmp(s->method, "import-", 7) != 0)
        return 0;
    int u = UNKNOWN_OWNERS;
    if (strcmp(s->method, "import-pmap") == 0)
        u |= UNKNOWN_DIRS;
    if (strstr(s->method, "core"))
        u |= UNKNOWN_PSEUDO;
    return u;
}

/* dst (of a source that could not know what) takes from src, the same range in the other
 * snapshot, what only src could know; the strings stay src's list's. */
static void learn(struct region *dst, const struct region *src, int unknown)
{
    int learnt = 0;
    if ((unknown & UNKNOWN_DIRS) && dst->path && src->path &&
        !memchr(dst->path, '/', dst->path_len) && dst->path[0] != '[' && dst->inode &&
        region_same_file_id(dst, src)) {
        const char *slash = strrchr(src->path, '/'), *base = slash ? slash + 1 : src->path;
        if (strcmp(base, dst->path) == 0) {
            dst->path = src->path; /* the same file (device and inode): its whole name */
            dst->path_len = src->path_len;
            learnt = 1;
        }
    }
    if ((unknown & UNKNOWN_PSEUDO) && !dst->path && src->path && src->path[0] == '[' &&
        !dst->inode && memcmp(dst->perms, src->perms, 3) == 0) {
        dst->path = src->path; /* [heap], [stack], [vdso]: a core names none */
        dst->path_len = src->path_len;
        learnt = 1;
    }
    if ((unknown & UNKNOWN_PSEUDO) && memcmp(dst->perms, src->perms, 3) == 0 &&
        dst->perms[3] != src->perms[3] && region_same_file_id(dst, src))
        dst->perms[3] = src->perms[3]; /* a core reads shared mappings as private */
    if ((unknown & UNKNOWN_OWNERS) && !dst->owner && src->owner &&
        (dst->path == NULL) == (src->path == NULL) &&
        (!dst->path ||
         (dst->path_len == src->path_len && memcmp(dst->path, src->path, src->path_len) == 0))) {
        dst->owner = src->owner; /* a thread's stack, a malloc arena */
        dst->owner_len = src->owner_len;
        learnt = 1;
    }
    if (learnt)
        dst->category = src->category;
}

/*
 * Two snapshots of sources that know different things (a live recording and an imported pmap,
 * smaps or core of the same moment): each imported region takes from the same range on the
 * other side what its source could not know, so that what only one side could know is no
 * change.
 */
static void reconcile(struct region_list *a, struct region_list *b, int ua, int ub)
{
    if (!ua && !ub)
        return;
    size_t i = 0, j = 0;
    while (i < a->n && j < b->n) {
        struct region *x = &a->v[i], *y = &b->v[j];
        if (x->start < y->start || (x->start == y->start && x->end < y->end)) {
            i++;
            continue;
        }
        if (y->start < x->start || y->end < x->end) {
            j++;
            continue;
        }
        if (ua)
            learn(x, y, ua);
        if (ub)
            learn(y, x, ub);
        i++;
        j++;
    }
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
    reconcile(&p->regions[0], &p->regions[1], unknown_of(x), unknown_of(y));
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
