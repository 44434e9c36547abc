/* A region row read back: the columns of enum region_col into a struct region, and the order
 * that sorts a list of them by address. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/xalloc.h"

static void col_name_text(sqlite3_stmt *s, int col, struct region_list *l, const char **out,
                          uint32_t *len)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    if (!t) {
        *out = NULL;
        *len = 0;
        return;
    }
    *len = (uint32_t)sqlite3_column_bytes(s, col);
    *out = region_list_intern(l, (const char *)t, *len);
}

static int parse_win_state(const unsigned char *s)
{
    if (!s)
        return WIN_STATE_NONE;
    if (strcmp((const char *)s, "commit") == 0)
        return WIN_STATE_COMMIT;
    if (strcmp((const char *)s, "reserve") == 0)
        return WIN_STATE_RESERVE;
    return WIN_STATE_NONE;
}

static int parse_win_type(const unsigned char *s)
{
    if (!s)
        return WIN_TYPE_NONE;
    if (strcmp((const char *)s, "image") == 0)
        return WIN_TYPE_IMAGE;
    if (strcmp((const char *)s, "mapped") == 0)
        return WIN_TYPE_MAPPED;
    if (strcmp((const char *)s, "private") == 0)
        return WIN_TYPE_PRIVATE;
    return WIN_TYPE_NONE;
}

static int hex_digit(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* "fe:01" as maps prints a device (hex major:minor); anything else leaves 0:0. Runs once per
 * region read, where sscanf showed in profiles. */
static void parse_dev(const unsigned char *dev, struct region *r)
{
    uint32_t part[2] = {0, 0};
    int k = 0, digits = 0;
    for (const unsigned char *p = dev; p && *p; p++) {
        int d = hex_digit(*p);
        if (*p == ':' && k == 0 && digits) {
            k = 1;
            digits = 0;
        } else if (d >= 0 && digits < 8) {
            part[k] = part[k] << 4 | (uint32_t)d;
            digits++;
        } else {
            return;
        }
    }
    if (k == 1 && digits) {
        r->dev_major = part[0];
        r->dev_minor = part[1];
    }
}

void store_row_to_region(sqlite3_stmt *s, int col, struct region_list *l, struct region *r)
{
    r->start = (uint64_t)sqlite3_column_int64(s, col + RCOL_START);
    r->end = (uint64_t)sqlite3_column_int64(s, col + RCOL_END);
    const unsigned char *perms = sqlite3_column_text(s, col + RCOL_PERMS);
    size_t np = perms ? strnlen((const char *)perms, sizeof(r->perms) - 1) : 0;
    memcpy(r->perms, perms ? (const char *)perms : "----", perms ? np : 4);
    r->perms[perms ? np : 4] = '\0';
    r->offset = (uint64_t)sqlite3_column_int64(s, col + RCOL_OFFSET);
    parse_dev(sqlite3_column_text(s, col + RCOL_DEV), r);
    r->inode = (uint64_t)sqlite3_column_int64(s, col + RCOL_INODE);
    col_name_text(s, col + RCOL_PATH, l, &r->path, &r->path_len);
    const unsigned char *owner = sqlite3_column_text(s, col + RCOL_OWNER);
    if (owner)
        region_set_owner(l, r, (const char *)owner,
                         (size_t)sqlite3_column_bytes(s, col + RCOL_OWNER));
    const unsigned char *cat = sqlite3_column_text(s, col + RCOL_CATEGORY);
    int c = cat ? region_category_parse((const char *)cat) : -1;
    r->category = (uint8_t)(c < 0 ? CAT_ANON : c);
    if (sqlite3_column_int(s, col + RCOL_DELETED))
        r->flags |= REGION_DELETED;
    if (sqlite3_column_type(s, col + RCOL_STATE) != SQLITE_NULL ||
        sqlite3_column_type(s, col + RCOL_TYPE) != SQLITE_NULL) {
        struct region_extra *x = region_extra_set(l, r);
        r->flags |= REGION_HAS_WIN;
        x->state = (uint8_t)parse_win_state(sqlite3_column_text(s, col + RCOL_STATE));
        x->type = (uint8_t)parse_win_type(sqlite3_column_text(s, col + RCOL_TYPE));
        x->protect = (uint32_t)sqlite3_column_int64(s, col + RCOL_PROTECT);
        x->alloc_base = (uint64_t)sqlite3_column_int64(s, col + RCOL_ALLOC_BASE);
        x->alloc_protect = (uint32_t)sqlite3_column_int64(s, col + RCOL_ALLOC_PROTECT);
    }
    if (sqlite3_column_type(s, col + RCOL_RSS) != SQLITE_NULL) {
        struct region_extra *x = region_extra_set(l, r);
        r->flags |= REGION_HAS_MEM;
        x->rss = (uint64_t)sqlite3_column_int64(s, col + RCOL_RSS);
        x->pss = (uint64_t)sqlite3_column_int64(s, col + RCOL_PSS);
        x->private_dirty = (uint64_t)sqlite3_column_int64(s, col + RCOL_PRIVATE_DIRTY);
        x->anonymous = (uint64_t)sqlite3_column_int64(s, col + RCOL_ANONYMOUS);
        x->swap = (uint64_t)sqlite3_column_int64(s, col + RCOL_SWAP);
    }
}

struct order_key {
    uint64_t start;
    size_t index;
};

static int cmp_order(const void *a, const void *b)
{
    const struct order_key *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

size_t *store_sort_order(const struct region_list *l)
{
    size_t *order = xmalloc((l->n ? l->n : 1) * sizeof(*order));
    size_t sorted = 1;
    while (sorted < l->n && l->v[sorted - 1].start <= l->v[sorted].start)
        sorted++;
    if (sorted >= l->n) {
        /* The usual case (spans are numbered as snapshots walk them): no sort at all. */
        for (size_t i = 0; i < l->n; i++)
            order[i] = i;
        return order;
    }
    struct order_key *keys = xmalloc(l->n * sizeof(*keys));
    for (size_t i = 0; i < l->n; i++)
        keys[i] = (struct order_key){l->v[i].start, i};
    if (l->n > 1)
        qsort(keys, l->n, sizeof(*keys), cmp_order);
    for (size_t i = 0; i < l->n; i++)
        order[i] = keys[i].index;
    free(keys);
    return order;
}
