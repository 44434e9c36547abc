#include "model/region.h"
#include "platform/platform.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* Arena chunks start small and double up to ARENA_CHUNK: a list of a few hundred regions (each
 * process of a followed tree has one or two) holds what it uses, not 64 KiB. */
#define ARENA_FIRST 1024
#define ARENA_CHUNK (64 * 1024)

static const char *const category_names[CAT_COUNT] = {
    [CAT_ANON] = "anon",   [CAT_HEAP] = "heap",       [CAT_STACK] = "stack",
    [CAT_IMAGE] = "image", [CAT_FILE] = "file",       [CAT_SHM] = "shm",
    [CAT_GUARD] = "guard", [CAT_RESERVE] = "reserve", [CAT_KERNEL] = "kernel",
};

void region_list_init(struct region_list *l)
{
    memset(l, 0, sizeof(*l));
}

void region_list_release(struct region_list *l)
{
    for (size_t i = 0; i < l->nchunks; i++)
        free(l->chunks[i]);
    free(l->chunks);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

void region_list_clear(struct region_list *l)
{
    /* Keep the last chunk, the largest, for reuse; large fills re-grow on demand. */
    if (l->nchunks > 1) {
        for (size_t i = 0; i + 1 < l->nchunks; i++)
            free(l->chunks[i]);
        l->chunks[0] = l->chunks[l->nchunks - 1];
        l->nchunks = 1;
    }
    l->used = 0;
    l->n = 0;
    l->gen++;
}

/* Grows the array to hold n; a large one is advised to be backed by large pages. */
static void grow(struct region_list *l, size_t n)
{
    size_t cap = l->cap;
    l->v = xgrow(l->v, &l->cap, n, sizeof(*l->v));
    if (l->cap != cap)
        plat_advise_large(l->v, l->cap * sizeof(*l->v));
}

void region_list_reserve(struct region_list *l, size_t n)
{
    if (n > l->cap)
        grow(l, n);
}

struct region *region_list_push(struct region_list *l)
{
    if (l->n + 1 > l->cap)
        grow(l, l->n + 1);
    struct region *r = &l->v[l->n++];
    memset(r, 0, sizeof(*r));
    return r;
}

/* n bytes from l's arena, aligned for any field of a region_extra. */
static char *arena_alloc(struct region_list *l, size_t n)
{
    size_t at = (l->used + 7) & ~(size_t)7;
    if (l->nchunks == 0 || at + n > l->chunk_size) {
        size_t size = l->nchunks == 0 ? ARENA_FIRST : l->chunk_size * 2;
        if (size > ARENA_CHUNK)
            size = ARENA_CHUNK;
        if (size < n)
            size = n; /* an oversized piece gets a chunk of its own */
        l->chunks = xgrow(l->chunks, &l->chunk_cap, l->nchunks + 1, sizeof(*l->chunks));
        l->chunks[l->nchunks++] = xmalloc(size);
        l->chunk_size = size;
        l->used = n;
        return l->chunks[l->nchunks - 1];
    }
    l->used = at + n;
    return l->chunks[l->nchunks - 1] + at;
}

const char *region_list_intern(struct region_list *l, const char *s, size_t len)
{
    char *p = arena_alloc(l, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

const struct region_extra *region_extra(const struct region *r)
{
    static const struct region_extra none;
    return r->x ? r->x : &none;
}

struct region_extra *region_extra_set(struct region_list *l, struct region *r)
{
    if (!r->x) {
        struct region_extra *x = (struct region_extra *)arena_alloc(l, sizeof(*x));
        memset(x, 0, sizeof(*x));
        r->x = x;
    }
    /* The list owns it: writable through the list. */
    return (struct region_extra *)r->x;
}

void region_list_copy(struct region_list *dst, const struct region_list *src)
{
    region_list_clear(dst);
    dst->v = xgrow(dst->v, &dst->cap, src->n, sizeof(*dst->v));
    if (src->n)
        memcpy(dst->v, src->v, src->n * sizeof(*src->v));
    dst->n = src->n;
    for (size_t i = 0; i < dst->n; i++)
        region_rehome(dst, &dst->v[i]);
}

void region_rehome(struct region_list *l, struct region *r)
{
    if (r->path)
        r->path = region_list_intern(l, r->path, r->path_len);
    if (r->owner)
        r->owner = region_list_intern(l, r->owner, r->owner_len);
    if (r->x) {
        const struct region_extra *from = r->x;
        r->x = NULL;
        *region_extra_set(l, r) = *from;
    }
}

void *region_hold(struct region *r)
{
    size_t xn = r->x ? sizeof(*r->x) : 0, pn = r->path ? r->path_len + 1u : 0;
    size_t on = r->owner ? r->owner_len + 1u : 0;
    if (!xn && !pn && !on)
        return NULL;
    /* The extra first: the block is aligned for it. */
    char *b = xmalloc(xn + pn + on);
    if (r->x) {
        memcpy(b, r->x, xn);
        r->x = (const struct region_extra *)b;
    }
    if (r->path) {
        memcpy(b + xn, r->path, r->path_len);
        b[xn + r->path_len] = '\0';
        r->path = b + xn;
    }
    if (r->owner) {
        memcpy(b + xn + pn, r->owner, r->owner_len);
        b[xn + pn + r->owner_len] = '\0';
        r->owner = b + xn + pn;
    }
    return b;
}

void region_set_owner(struct region_list *l, struct region *r, const char *owner, size_t len)
{
    if (len > UINT16_MAX)
        len = UINT16_MAX;
    r->owner = region_list_intern(l, owner, len);
    r->owner_len = (uint16_t)len;
}

size_t region_list_first_disorder(const struct region_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].end <= l->v[i].start)
            return i;
        if (i > 0 && l->v[i].start < l->v[i - 1].end)
            return i;
    }
    return l->n;
}

static int cmp_start(const void *a, const void *b)
{
    const struct region *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return 0;
}

size_t region_list_sanitize(struct region_list *l)
{
    /* A stable order for equal starts is not needed: the later duplicate is dropped either way. */
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), cmp_start);
    size_t out = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].end <= l->v[i].start)
            continue;
        if (out > 0 && l->v[i].start < l->v[out - 1].end)
            continue;
        l->v[out++] = l->v[i];
    }
    size_t dropped = l->n - out;
    l->n = out;
    return dropped;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

struct file_key {
    uint32_t major, minor;
    uint64_t inode;
};

static int cmp_file_key(const void *a, const void *b)
{
    const struct file_key *x = a, *y = b;
    if (x->major != y->major)
        return x->major < y->major ? -1 : 1;
    if (x->minor != y->minor)
        return x->minor < y->minor ? -1 : 1;
    if (x->inode != y->inode)
        return x->inode < y->inode ? -1 : 1;
    return 0;
}

/* Shared-memory objects show up as paths that are not ordinary files. */
static int is_shm_object(const char *path)
{
    return starts_with(path, "/SYSV") || starts_with(path, "/dev/shm/") ||
           starts_with(path, "/memfd:") || starts_with(path, "[anon_shmem");
}

static int no_access(const struct region *r)
{
    return r->perms[0] == '-' && r->perms[1] == '-' && r->perms[2] == '-';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Files with an executable mapping, by device and inode, or by name where the inode is not
 * known (a core file's regions). */
struct exec_set {
    struct file_key *keys;
    size_t nkeys;
    const char **names;
    size_t nnames;
};

static int is_exec_file(const struct region *r, const struct exec_set *x)
{
    if (r->inode != 0) {
        struct file_key k = {r->dev_major, r->dev_minor, r->inode};
        return x->nkeys && bsearch(&k, x->keys, x->nkeys, sizeof(k), cmp_file_key);
    }
    return x->nnames && bsearch(&r->path, x->names, x->nnames, sizeof(*x->names), cmp_str);
}

static int classify_one(const struct region *r, const struct exec_set *exec)
{
    const char *p = r->path;
    int shared = r->perms[3] == 's';
    if (p && (strcmp(p, "[vdso]") == 0 || strcmp(p, "[vvar]") == 0 ||
              strcmp(p, "[vsyscall]") == 0 || strcmp(p, "[vvar_vclock]") == 0))
        return CAT_KERNEL;
    if (no_access(r))
        return CAT_GUARD;
    if (!p)
        return shared ? CAT_SHM : CAT_ANON;
    if (strcmp(p, "[heap]") == 0)
        return CAT_HEAP;
    if (starts_with(p, "[stack"))
        return CAT_STACK;
    if (is_shm_object(p))
        return CAT_SHM;
    /* A name that is not a path is anonymous memory ("anon_inode:...", "[...]"), unless it
     * is a file's name alone, as `pmap -X` without -p prints it: it has an inode. */
    if (starts_with(p, "/dev/zero") || starts_with(p, "/anon_hugepage") ||
        (p[0] != '/' && (r->inode == 0 || p[0] == '[' || starts_with(p, "anon_inode:"))))
        return shared ? CAT_SHM : CAT_ANON;
    return is_exec_file(r, exec) ? CAT_IMAGE : CAT_FILE;
}

/* glibc's non-main arenas are heaps of HEAP_MAX_SIZE (64 MiB on 64-bit), aligned to it: the
 * part in use is rw-p, the rest ---p, both anonymous and private. */
#define ARENA_SIZE (64ULL << 20)

static void find_owners(struct region_list *l)
{
    static const char arena[] = "malloc arena";
    for (size_t i = 0; i < l->n; i++) {
        struct region *r = &l->v[i];
        if (r->flags & REGION_HAS_WIN)
            continue;
        if (r->path && r->path_len > 7 && strncmp(r->path, "[anon:", 6) == 0 &&
            r->path[r->path_len - 1] == ']') {
            region_set_owner(l, r, r->path + 6, r->path_len - 7);
            continue;
        }
        if (r->path || r->start % ARENA_SIZE != 0 || strcmp(r->perms, "rw-p") != 0)
            continue;
        struct region *tail = i + 1 < l->n ? &l->v[i + 1] : NULL;
        int whole = r->end - r->start == ARENA_SIZE;
        int split = !whole && tail && !tail->path && tail->start == r->end &&
                    strcmp(tail->perms, "---p") == 0 && tail->end == r->start + ARENA_SIZE;
        if (!whole && !split)
            continue;
        r->category = CAT_HEAP;
        region_set_owner(l, r, arena, sizeof(arena) - 1);
        if (split) {
            tail->category = CAT_RESERVE; /* the arena's reserve: never committed */
            region_set_owner(l, tail, arena, sizeof(arena) - 1);
            i++;
        }
    }
}

/* The largest no-access range that is a fence rather than a reservation. */
#define FENCE_MAX (1ULL << 20)

/*
 * No-access memory is a guard when it is a small fence directly beside accessible memory (a
 * thread stack's guard page, a fence between allocations), and a reservation otherwise:
 * address space set aside and not yet usable (a JVM's heap and class space, Go's and V8's
 * arenas). l is in address order.
 */
static void fence_or_reserve(struct region_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct region *r = &l->v[i];
        if (r->category != CAT_GUARD || (r->flags & REGION_HAS_WIN))
            continue;
        const struct region *prev = i > 0 ? &l->v[i - 1] : NULL;
        const struct region *next = i + 1 < l->n ? &l->v[i + 1] : NULL;
        int beside = (prev && prev->end == r->start && !no_access(prev)) ||
                     (next && next->start == r->end && !no_access(next));
        if (r->end - r->start > FENCE_MAX || !beside)
            r->category = CAT_RESERVE;
    }
}

void region_list_classify(struct region_list *l)
{
    /* A file with any executable mapping is an executable or library: all its mappings are image.
     */
    struct exec_set x = {NULL, 0, NULL, 0};
    size_t kcap = 0, ncap = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct region *r = &l->v[i];
        if (r->perms[2] != 'x' || !r->path || !region_is_file(r) ||
            starts_with(r->path, "anon_inode:"))
            continue;
        if (r->inode != 0) {
            x.keys = xgrow(x.keys, &kcap, x.nkeys + 1, sizeof(*x.keys));
            x.keys[x.nkeys++] = (struct file_key){r->dev_major, r->dev_minor, r->inode};
        } else {
            x.names = xgrow(x.names, &ncap, x.nnames + 1, sizeof(*x.names));
            x.names[x.nnames++] = r->path;
        }
    }
    if (x.nkeys)
        qsort(x.keys, x.nkeys, sizeof(*x.keys), cmp_file_key);
    if (x.nnames)
        qsort(x.names, x.nnames, sizeof(*x.names), cmp_str);
    for (size_t i = 0; i < l->n; i++)
        if (!(l->v[i].flags & REGION_HAS_WIN)) /* the Windows backend classifies its own */
            l->v[i].category = (uint8_t)classify_one(&l->v[i], &x);
    free(x.keys);
    free(x.names);
    fence_or_reserve(l);
    find_owners(l);
}

uint64_t region_committed(const struct region *r)
{
    if (no_access(r))
        return 0;
    if ((r->flags & REGION_HAS_WIN) && region_extra(r)->state == WIN_STATE_RESERVE)
        return 0;
    return r->end - r->start;
}

uint64_t region_list_mapped(const struct region_list *l)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < l->n; i++)
        sum += l->v[i].end - l->v[i].start;
    return sum;
}

void region_list_mem_totals(const struct region_list *l, struct mem_totals *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < l->n; i++) {
        const struct region *r = &l->v[i];
        if (!(r->flags & REGION_HAS_MEM))
            continue;
        const struct region_extra *x = region_extra(r);
        t->rss += x->rss;
        t->pss += x->pss;
        t->private_dirty += x->private_dirty;
        t->anonymous += x->anonymous;
        t->swap += x->swap;
    }
}

int region_same_layout(const struct region *a, const struct region *b)
{
    if (a->start != b->start || a->end != b->end || a->offset != b->offset ||
        a->inode != b->inode || a->dev_major != b->dev_major || a->dev_minor != b->dev_minor ||
        a->category != b->category || memcmp(a->perms, b->perms, 4) != 0 ||
        (a->flags & REGION_IDENTITY_FLAGS) != (b->flags & REGION_IDENTITY_FLAGS))
        return 0;
    if ((a->path == NULL) != (b->path == NULL))
        return 0;
    if (a->path && (a->path_len != b->path_len || memcmp(a->path, b->path, a->path_len) != 0))
        return 0;
    if ((a->owner == NULL) != (b->owner == NULL))
        return 0;
    if (a->owner && (a->owner_len != b->owner_len || memcmp(a->owner, b->owner, a->owner_len) != 0))
        return 0;
    if ((a->flags & REGION_HAS_WIN) != (b->flags & REGION_HAS_WIN))
        return 0;
    if (a->flags & REGION_HAS_WIN) {
        const struct region_extra *x = region_extra(a), *y = region_extra(b);
        return x->state == y->state && x->type == y->type && x->protect == y->protect &&
               x->alloc_protect == y->alloc_protect && x->alloc_base == y->alloc_base;
    }
    return 1;
}

int region_is_file(const struct region *r)
{
    return r->inode != 0 || (r->path && r->path[0] == '/');
}

int region_same_file_id(const struct region *a, const struct region *b)
{
    if (a->inode == b->inode && a->dev_major == b->dev_major && a->dev_minor == b->dev_minor)
        return 1;
    int a_unknown = a->inode == 0 && a->dev_major == 0 && a->dev_minor == 0;
    int b_unknown = b->inode == 0 && b->dev_major == 0 && b->dev_minor == 0;
    return (a_unknown || b_unknown) && region_is_file(a) && region_is_file(b);
}

int region_same_mem(const struct region *a, const struct region *b)
{
    if ((a->flags & REGION_HAS_MEM) != (b->flags & REGION_HAS_MEM))
        return 0;
    if (!(a->flags & REGION_HAS_MEM))
        return 1;
    const struct region_extra *x = region_extra(a), *y = region_extra(b);
    return x->rss == y->rss && x->pss == y->pss && x->private_dirty == y->private_dirty &&
           x->anonymous == y->anonymous && x->swap == y->swap;
}

const char *region_category_name(int category)
{
    if (category < 0 || category >= CAT_COUNT)
        return "anon";
    return category_names[category];
}

int region_category_parse(const char *name)
{
    for (int i = 0; i < CAT_COUNT; i++)
        if (strcmp(name, category_names[i]) == 0)
            return i;
    return -1;
}

const char *region_win_state_name(int state)
{
    switch (state) {
    case WIN_STATE_COMMIT:
        return "commit";
    case WIN_STATE_RESERVE:
        return "reserve";
    default:
        return NULL;
    }
}

const char *region_win_type_name(int type)
{
    switch (type) {
    case WIN_TYPE_IMAGE:
        return "image";
    case WIN_TYPE_MAPPED:
        return "mapped";
    case WIN_TYPE_PRIVATE:
        return "private";
    default:
        return NULL;
    }
}

/* A list of 60,000 regions is 4.8 MB at this size; keep it from creeping back. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct region) == 80,
               "struct region grew: keep rare fields in struct region_extra");
