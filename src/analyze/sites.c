/*
 * sites.h: the calls replayed over a map of owned byte ranges (sorted, disjoint), then the
 * ranges committed at --to summed by the stack of their owner.
 */
#include "analyze/sites.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

#define NO_OWNER UINT32_MAX

/* A range of bytes and the call that owns it (its index in owners). */
struct iv {
    uint64_t start, end;
    uint32_t owner;
};

struct owner {
    int64_t stack_id; /* 0: no stack */
    int in_range;     /* made during the range */
    size_t site;      /* index + 1 of its site once it holds bytes at --to */
};

struct replay {
    struct iv *v;
    size_t n, cap;
    struct owner *owners;
    size_t nowners, owners_cap;
    struct iv *moved; /* scratch for mremap */
    size_t moved_cap;
};

/* The first range that ends after at. */
static size_t first_after(const struct replay *r, uint64_t at)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].end <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* [start, end) owned by owner (NO_OWNER: by nobody, taken off the map). */
static void put(struct replay *r, uint64_t start, uint64_t end, uint32_t owner)
{
    if (start >= end)
        return;
    size_t i = first_after(r, start), j = i;
    while (j < r->n && r->v[j].start < end)
        j++;
    struct iv pieces[3];
    int k = 0;
    if (i < j && r->v[i].start < start)
        pieces[k++] = (struct iv){r->v[i].start, start, r->v[i].owner};
    if (owner != NO_OWNER)
        pieces[k++] = (struct iv){start, end, owner};
    if (i < j && r->v[j - 1].end > end)
        pieces[k++] = (struct iv){end, r->v[j - 1].end, r->v[j - 1].owner};
    size_t gone = j - i;
    if (!k && !gone)
        return; /* nothing owned there, nothing to own */
    if ((size_t)k > gone)
        r->v = xgrow(r->v, &r->cap, r->n + (size_t)k - gone, sizeof(*r->v));
    memmove(r->v + i + k, r->v + j, (r->n - j) * sizeof(*r->v));
    memcpy(r->v + i, pieces, (size_t)k * sizeof(*pieces));
    r->n = r->n - gone + (size_t)k;
}

/* mremap: what [old, old + old_len) holds moves to at, its tail grown (or cut) to new_len,
 * the growth owned by owner. */
static void move(struct replay *r, uint64_t old, uint64_t old_len, uint64_t at, uint64_t new_len,
                 uint32_t owner)
{
    uint64_t kept = old_len < new_len ? old_len : new_len;
    size_t m = 0;
    for (size_t i = first_after(r, old); i < r->n && r->v[i].start < old + kept; i++) {
        uint64_t s = r->v[i].start > old ? r->v[i].start : old;
        uint64_t e = r->v[i].end < old + kept ? r->v[i].end : old + kept;
        r->moved = xgrow(r->moved, &r->moved_cap, m + 1, sizeof(*r->moved));
        r->moved[m++] = (struct iv){s - old + at, e - old + at, r->v[i].owner};
    }
    put(r, old, old + old_len, NO_OWNER);
    for (size_t i = 0; i < m; i++)
        put(r, r->moved[i].start, r->moved[i].end, r->moved[i].owner);
    if (new_len > old_len)
        put(r, at + old_len, at + new_len, owner);
}

/* Windows's calls (ntdll's), and the bits of their types that matter here. */
#define NT_MEM_COMMIT  0x1000
#define NT_MEM_RESERVE 0x2000

static int is_nt(const char *call)
{
    return strncmp(call, "Nt", 2) == 0;
}

static int replay_event(void *ctx, const struct store_event *ev, int in_range)
{
    struct replay *r = ctx;
    if (ev->result < 0 && (ev->result > -4096 || is_nt(ev->call)))
        return 0; /* it failed (an errno, or an NTSTATUS error): nothing changed */
    if (r->nowners >= NO_OWNER)
        return 0;
    r->owners = xgrow(r->owners, &r->owners_cap, r->nowners + 1, sizeof(*r->owners));
    uint32_t me = (uint32_t)r->nowners;
    r->owners[r->nowners++] = (struct owner){ev->stack_id, in_range, 0};
    const char *c = ev->call;
    if (strcmp(c, "mmap") == 0 || strcmp(c, "shmat") == 0) {
        put(r, ev->start, ev->end, me);
    } else if (strcmp(c, "munmap") == 0 || strcmp(c, "shmdt") == 0) {
        put(r, ev->start, ev->end, NO_OWNER);
    } else if (strcmp(c, "mprotect") == 0) {
        if (ev->prot > 0) /* made accessible: committed by this call */
            put(r, ev->start, ev->end, me);
    } else if (strcmp(c, "brk") == 0) {
        /* The break moved from the lower to the higher end (it grew) or back (it shrank). */
        if ((uint64_t)ev->result == ev->end)
            put(r, ev->start, ev->end, me);
        else
            put(r, ev->start, ev->end, NO_OWNER);
    } else if (strcmp(c, "mremap") == 0 && ev->new_size >= 0) {
        move(r, ev->start, ev->end - ev->start, (uint64_t)ev->result, (uint64_t)ev->new_size, me);
    } else if (strcmp(c, "NtAllocateVirtualMemory") == 0) {
        /* Reserved, or committed (what a reservation's later commit claims). MEM_RESET and
         * the like change no ownership. */
        if (ev->flags >= 0 && (ev->flags & (NT_MEM_COMMIT | NT_MEM_RESERVE)))
            put(r, ev->start, ev->end, me);
    } else if (strcmp(c, "NtMapViewOfSection") == 0) {
        put(r, ev->start, ev->end, me);
    } else if (strcmp(c, "NtFreeVirtualMemory") == 0 || strcmp(c, "NtUnmapViewOfSection") == 0) {
        /* Released or decommitted: no longer this call's (a protection change on Windows
         * commits nothing, so NtProtectVirtualMemory owns nothing either). */
        put(r, ev->start, ev->end, NO_OWNER);
    }
    return 0;
}

/* The C library's functions that a static program holds in its own file: its allocator and
 * the calls it wraps (names with "__" are the implementation's anyway). */
static const char *const libc_functions[] = {
    "malloc",       "calloc",        "realloc",     "free",           "sysmalloc",
    "mmap",         "mmap64",        "munmap",      "mremap",         "mprotect",
    "brk",          "sbrk",          "tcache_init", "pthread_create", "posix_memalign",
    "memalign",     "aligned_alloc", "valloc",      "pvalloc",        "_int_malloc",
    "_int_realloc", "_int_memalign", "new_heap",    "alloc_new_heap", "grow_heap",
};

int sites_frame_is_libc(const struct site_frame *f)
{
    if (sites_is_libc(f->module))
        return 1;
    if (!f->function)
        return 0;
    if (strncmp(f->function, "__", 2) == 0)
        return 1;
    size_t n = strcspn(f->function, ".@"); /* sysmalloc_mmap.constprop.0, pthread_create@GLIBC */
    for (size_t i = 0; i < sizeof(libc_functions) / sizeof(libc_functions[0]); i++)
        if (strlen(libc_functions[i]) == n && strncmp(f->function, libc_functions[i], n) == 0)
            return 1;
    return 0;
}

/* Windows's C library, heap and loader, and the system DLLs that wrap ntdll's calls. */
static const char *const windows_libc[] = {
    "ntdll.dll",    "kernelbase.dll", "kernel32.dll", "msvcrt.dll",
    "ucrtbase.dll", "ucrtbased.dll",  "msvcr120.dll", "vcruntime140.dll",
};

int sites_is_libc(const char *module)
{
    const char *base = module;
    for (const char *p = module; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    for (size_t i = 0; i < sizeof(windows_libc) / sizeof(windows_libc[0]); i++)
        if (strcasecmp(base, windows_libc[i]) == 0)
            return 1;
    return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0 ||
           strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "ld-", 3) == 0 ||
           strncmp(base, "libpthread", 10) == 0;
}

static int by_bytes(const void *a, const void *b)
{
    const struct growth_site *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->stack_id < y->stack_id ? -1 : x->stack_id > y->stack_id;
}

/* Loads a stack's frames into site (frames, nframes, shown): 0 or an error. */
static int load_frames(struct store *st, struct growth_site *site, struct err *e)
{
    struct store_frame *f;
    int nf;
    int rc = store_stack_frames(st, site->stack_id, &f, &nf, e);
    if (rc < 0)
        return rc;
    site->frames = xcalloc(nf ? (size_t)nf : 1, sizeof(*site->frames));
    site->nframes = nf;
    for (int k = 0; k < nf; k++) {
        struct site_frame *sf = &site->frames[k];
        sf->function = (char *)f[k].function;
        sf->file = (char *)f[k].file;
        sf->line = f[k].line;
        sf->module = (char *)f[k].module;
        sf->offset = f[k].offset;
        free((char *)f[k].build_id);
    }
    free(f);
    site->shown = 0;
    while (site->shown < nf && sites_frame_is_libc(&site->frames[site->shown]))
        site->shown++;
    if (site->shown == nf)
        site->shown = 0;
    return 0;
}

static void sites_free_one(struct growth_site *s);

/* Calls fn with each range an owner made in the range and holds inside a region committed at
 * --to: the region's index and the bytes. */
static void each_held(struct replay *r, const struct region_list *at,
                      void (*fn)(void *ctx, size_t region, struct owner *o, uint64_t bytes),
                      void *ctx)
{
    size_t i = 0;
    for (size_t k = 0; k < at->n; k++) {
        const struct region *g = &at->v[k];
        if (!region_committed(g))
            continue;
        while (i < r->n && r->v[i].end <= g->start)
            i++;
        for (size_t j = i; j < r->n && r->v[j].start < g->end; j++) {
            struct owner *o = &r->owners[r->v[j].owner];
            if (!o->in_range || !o->stack_id)
                continue;
            uint64_t s = r->v[j].start > g->start ? r->v[j].start : g->start;
            uint64_t t = r->v[j].end < g->end ? r->v[j].end : g->end;
            fn(ctx, k, o, t - s);
        }
    }
}

/* The sites as they are summed: per stack, then per group of stacks. */
struct tally {
    struct growth_site **v;
    size_t *n, *cap;
    size_t *group; /* a stack's site: the one its group is kept as */
    size_t *last;  /* a site's last region counted, + 1 */
};

static void add_bytes(void *ctx, size_t region, struct owner *o, uint64_t bytes)
{
    (void)region;
    struct tally *t = ctx;
    struct growth_site *v = *t->v;
    size_t site = o->site;
    for (size_t x = 0; x < *t->n && !site; x++)
        if (v[x].stack_id == o->stack_id)
            site = x + 1;
    if (!site) {
        v = *t->v = xgrow(*t->v, t->cap, *t->n + 1, sizeof(*v));
        memset(&v[*t->n], 0, sizeof(*v));
        v[*t->n].stack_id = o->stack_id;
        site = ++*t->n;
    }
    v[site - 1].bytes += bytes;
    if (!o->site) {
        o->site = site;
        v[site - 1].calls++;
    }
}

static void add_region(void *ctx, size_t region, struct owner *o, uint64_t bytes)
{
    (void)bytes;
    struct tally *t = ctx;
    size_t x = t->group[o->site - 1];
    if (t->last[x] != region + 1) {
        t->last[x] = region + 1;
        (*t->v)[x].regions++;
    }
}

static int same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether two stacks are the same call site: the same frames from their first outside the C
 * library outward. */
static int same_site(const struct growth_site *a, const struct growth_site *b)
{
    if (a->nframes - a->shown != b->nframes - b->shown)
        return 0;
    for (int k = 0; k < a->nframes - a->shown; k++) {
        const struct site_frame *x = &a->frames[a->shown + k], *y = &b->frames[b->shown + k];
        if (x->offset != y->offset || !same_text(x->module, y->module) ||
            !same_text(x->function, y->function) || x->line != y->line)
            return 0;
    }
    return 1;
}

int sites_compute(struct store *st, int64_t target, int64_t from, int64_t to, size_t top,
                  struct growth_site **out, size_t *n, int *recorded, struct err *e)
{
    *out = NULL;
    *n = 0;
    int rc = store_events_any(st, target, e);
    if (rc < 0)
        return rc;
    *recorded = rc;
    if (!rc)
        return 0;
    struct replay r = {0};
    struct region_list at;
    region_list_init(&at);
    struct growth_site *v = NULL;
    size_t nv = 0, cap = 0;
    if ((rc = store_events_each(st, target, from, to, replay_event, &r, e)) < 0 ||
        (rc = store_read_regions(st, to, &at, e)) < 0)
        goto out;
    /* The committed bytes at --to, by the site of the call that made them in the range. */
    struct tally t = {&v, &nv, &cap, NULL, NULL};
    each_held(&r, &at, add_bytes, &t);
    /* A call site is the code outside the C library: stacks that differ only within it (its
     * allocator's paths to mmap or to brk) are one site. Each stack's frames, then each stack
     * joined to the first one like it. */
    size_t *group = xcalloc(nv ? nv : 1, sizeof(*group)); /* a site's group: the site kept */
    for (size_t x = 0; x < nv; x++) {
        if ((rc = load_frames(st, &v[x], e)) < 0) {
            free(group);
            goto out;
        }
        group[x] = x;
        for (size_t y = 0; y < x; y++)
            if (group[y] == y && same_site(&v[x], &v[y])) {
                group[x] = y;
                v[y].bytes += v[x].bytes;
                v[y].calls += v[x].calls;
                break;
            }
    }
    /* Regions per site: each region that holds some of its bytes, once. */
    size_t *last = xcalloc(nv ? nv : 1, sizeof(*last)); /* the last region counted, + 1 */
    t.group = group;
    t.last = last;
    each_held(&r, &at, add_region, &t);
    free(last);
    /* The sites kept, largest first. */
    size_t kept = 0;
    for (size_t x = 0; x < nv; x++) {
        if (group[x] != x) {
            sites_free_one(&v[x]);
            continue;
        }
        v[kept++] = v[x];
    }
    free(group);
    nv = kept;
    qsort(v, nv, sizeof(*v), by_bytes);
    for (size_t x = top; top && x < nv; x++)
        sites_free_one(&v[x]);
    if (top && nv > top)
        nv = top;
out:
    free(r.v);
    free(r.owners);
    free(r.moved);
    region_list_release(&at);
    if (rc < 0) {
        sites_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

static void sites_free_one(struct growth_site *s)
{
    for (int k = 0; k < s->nframes; k++) {
        free(s->frames[k].function);
        free(s->frames[k].file);
        free(s->frames[k].module);
    }
    free(s->frames);
}

void sites_free(struct growth_site *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        sites_free_one(&v[i]);
    free(v);
}

/* A stack's frames as loaded for sites_map_made_by. */
struct loaded {
    int64_t stack_id;
    struct growth_site site; /* frames and shown */
};

struct sites_map {
    struct store *st;
    struct replay r;
    struct loaded *v;
    size_t n, cap;
};

int sites_map_open(struct store *st, int64_t target, int64_t upto, struct sites_map **out,
                   struct err *e)
{
    *out = NULL;
    int rc = store_events_any(st, target, e);
    if (rc <= 0)
        return rc;
    struct sites_map *m = xcalloc(1, sizeof(*m));
    m->st = st;
    if ((rc = store_events_each(st, target, 0, upto, replay_event, &m->r, e)) < 0) {
        sites_map_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

const struct site_frame *sites_map_made_by(struct sites_map *m, uint64_t start, uint64_t end)
{
    if (!m)
        return NULL;
    /* The owner with most bytes of the range (the first of equals). */
    int64_t best = 0;
    uint64_t best_bytes = 0;
    const struct replay *r = &m->r;
    for (size_t j = first_after(r, start); j < r->n && r->v[j].start < end; j++) {
        int64_t id = r->owners[r->v[j].owner].stack_id;
        if (!id)
            continue;
        uint64_t bytes = 0;
        for (size_t k = first_after(r, start); k < r->n && r->v[k].start < end; k++) {
            if (r->owners[r->v[k].owner].stack_id != id)
                continue;
            uint64_t s = r->v[k].start > start ? r->v[k].start : start;
            uint64_t t = r->v[k].end < end ? r->v[k].end : end;
            bytes += t - s;
        }
        if (bytes > best_bytes) {
            best = id;
            best_bytes = bytes;
        }
    }
    if (!best)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].stack_id == best)
            return m->v[i].site.nframes ? &m->v[i].site.frames[m->v[i].site.shown] : NULL;
    m->v = xgrow(m->v, &m->cap, m->n + 1, sizeof(*m->v));
    struct loaded *l = &m->v[m->n++];
    memset(l, 0, sizeof(*l));
    l->stack_id = best;
    l->site.stack_id = best;
    struct err e = {0};
    if (load_frames(m->st, &l->site, &e) < 0 || !l->site.nframes)
        return NULL;
    return &l->site.frames[l->site.shown];
}

void sites_map_close(struct sites_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        sites_free_one(&m->v[i].site);
    free(m->v);
    free(m->r.v);
    free(m->r.owners);
    free(m->r.moved);
    free(m);
}
