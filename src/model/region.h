/*
 * The region model shared by capture, store, diff and the printers: one row per contiguous range
 * of a target's address space with the same attributes, as the OS reports it.
 */
#ifndef VMSNAP_REGION_H
#define VMSNAP_REGION_H

#include <stddef.h>
#include <stdint.h>

enum region_category {
    CAT_ANON = 0,
    CAT_HEAP,
    CAT_STACK,
    CAT_IMAGE,
    CAT_FILE,
    CAT_SHM,
    CAT_GUARD,   /* a small no-access fence beside accessible memory (a stack's guard page) */
    CAT_RESERVE, /* other no-access memory: address space set aside, never committed */
    CAT_KERNEL,
    CAT_COUNT
};

enum region_flags {
    REGION_DELETED =
        1 << 0, /* backing file was unlinked; path holds the name without " (deleted)" */
    REGION_HAS_MEM = 1 << 1,      /* rss, pss, private_dirty, anonymous, swap were captured */
    REGION_HAS_WIN = 1 << 2,      /* the Windows fields were captured */
    REGION_NAME_ESCAPED = 1 << 3, /* text name held "\012", decoded to '\n'; may be ambiguous */
    REGION_NAME_SUFFIX = 1 << 4,  /* text name ended in " (deleted)": deleted, or a literal name */
};

/* Flags that are part of a region's identity (compared and stored); the rest are parse hints. */
#define REGION_IDENTITY_FLAGS (REGION_DELETED)

enum region_win_state { WIN_STATE_NONE = 0, WIN_STATE_COMMIT, WIN_STATE_RESERVE };
enum region_win_type { WIN_TYPE_NONE = 0, WIN_TYPE_IMAGE, WIN_TYPE_MAPPED, WIN_TYPE_PRIVATE };

/*
 * What only some captures give, kept beside the region (most regions carry neither): the memory
 * figures of a smaps walk (REGION_HAS_MEM) and the Windows fields (REGION_HAS_WIN).
 */
struct region_extra {
    uint64_t rss, pss, private_dirty, anonymous, swap; /* bytes; with REGION_HAS_MEM */
    uint64_t alloc_base;                               /* with REGION_HAS_WIN, as below */
    uint32_t protect, alloc_protect;                   /* raw PAGE_* values */
    uint8_t state;                                     /* enum region_win_state */
    uint8_t type;                                      /* enum region_win_type */
};

/* Laid out widest field first and kept narrow (80 bytes): a list holds tens of thousands. */
struct region {
    uint64_t start;  /* address, inclusive */
    uint64_t end;    /* address, exclusive */
    uint64_t offset; /* bytes into the backing file */
    uint64_t inode;
    const char *path; /* true name, or NULL; owned by the list holding the region */
    /* Who the region belongs to, when known: "thread TID (NAME)" for a thread's stack, "malloc
     * arena", a PR_SET_VMA_ANON_NAME name, "heap N" on Windows; NULL otherwise. Owned by the
     * list, like path. */
    const char *owner;
    /* Memory figures and Windows fields, or NULL when the region has neither; owned by the
     * list. Read them with region_extra(), set them with region_extra_set(). */
    const struct region_extra *x;
    uint32_t dev_major, dev_minor;
    uint32_t path_len;  /* bytes, without the NUL */
    uint16_t owner_len; /* bytes, without the NUL */
    uint16_t flags;     /* enum region_flags */
    char perms[5];      /* "rwxp" / "rwxs" style, NUL-terminated */
    uint8_t category;   /* enum region_category */
};

/*
 * Whether [start, end) can be a mapping at all: not empty, at most 2^57 bytes (the largest
 * address space, 5-level paging), and on one side of 2^63 (user space below, the kernel's
 * [vsyscall] above). A saved file that says otherwise is damaged or crafted; every size and sum
 * vmsnap computes from possible ranges fits its signed 64-bit figures.
 */
#define REGION_MAX_SIZE (1ull << 57)
static inline int region_range_possible(uint64_t start, uint64_t end)
{
    return end > start && end - start <= REGION_MAX_SIZE && ((start ^ (end - 1)) >> 63) == 0;
}

/* r's memory figures and Windows fields: zeros for what it does not have. */
const struct region_extra *region_extra(const struct region *r);

/* Process-wide memory totals in bytes (smaps_rollup or the sum of smaps). */
struct mem_totals {
    uint64_t rss, pss, private_dirty, anonymous, swap;
};

/* A growable array of regions plus an arena that owns their path strings. */
struct region_list {
    struct region *v;
    size_t n, cap;
    char **chunks; /* arena chunks; path pointers stay valid until clear/release */
    size_t nchunks, chunk_cap;
    size_t used;       /* bytes used in the last chunk */
    size_t chunk_size; /* the last chunk's bytes */
    uint64_t gen;      /* counts clears: a holder of the list can tell it was refilled */
};

void region_list_init(struct region_list *l);
void region_list_release(struct region_list *l);
/* Empties the list but keeps its memory for the next fill. */
void region_list_clear(struct region_list *l);
/* Makes room for n regions in all, so that pushes up to there do not move the array. */
void region_list_reserve(struct region_list *l, size_t n);
/* Appends a zeroed region and returns it; the pointer is valid until the next push. */
struct region *region_list_push(struct region_list *l);
/* Copies len bytes of s into the list's arena and returns the NUL-terminated copy. */
const char *region_list_intern(struct region_list *l, const char *s, size_t len);
/* Deep-copies src into dst (dst is cleared first). */
void region_list_copy(struct region_list *dst, const struct region_list *src);
/* Copies what r points to (path, owner, extra; another list's) into l's arena. */
void region_rehome(struct region_list *l, struct region *r);
/* Copies what r points to into one block of its own and returns it (NULL when r points to
 * nothing): r stays valid until the block is freed. For a region kept alone, whose list goes. */
void *region_hold(struct region *r);

/*
 * Returns the index of the first region that overlaps its predecessor, goes backwards or is
 * empty, or l->n when the list is sorted and disjoint.
 */
size_t region_list_first_disorder(const struct region_list *l);
/* Sorts by start and drops regions that overlap an earlier one; returns how many were dropped. */
size_t region_list_sanitize(struct region_list *l);

/*
 * Derives every region's category (needs the whole list: image detection looks at siblings),
 * and the owners that the list itself shows: a glibc malloc arena (a 64 MiB-aligned anonymous
 * rw-p region, alone 64 MiB long or followed by the ---p rest of its 64 MiB) is "malloc arena",
 * its rw part heap and its no-access tail heap reserve (heap, never committed); a region the
 * kernel names "[anon:NAME]" is owned by NAME.
 */
void region_list_classify(struct region_list *l);
/* Sets r's owner (a copy in l's arena; at most 65,535 bytes are kept). */
void region_set_owner(struct region_list *l, struct region *r, const char *owner, size_t len);
/* r's figures and Windows fields to fill in (zeros at first, in l's arena). The caller sets
 * REGION_HAS_MEM or REGION_HAS_WIN for what it fills. */
struct region_extra *region_extra_set(struct region_list *l, struct region *r);

/* Sum of sizes in bytes. */
uint64_t region_list_mapped(const struct region_list *l);
/*
 * Committed bytes: the region's size, or 0 for memory that cannot hold data yet: no access at
 * all (guard pages, reservations such as a malloc arena's PROT_NONE tail) or, on Windows,
 * reserved but not committed. Growth is judged on this, not on mapped size.
 */
uint64_t region_committed(const struct region *r);
/* Sum of per-region memory figures (only regions with REGION_HAS_MEM). */
void region_list_mem_totals(const struct region_list *l, struct mem_totals *t);

/* Two regions describe the same mapping with the same attributes (memory figures excluded). */
int region_same_layout(const struct region *a, const struct region *b);
/* Backed by a file: it has an inode, or (read from a core file, which gives none) a path. */
int region_is_file(const struct region *r);
/* The same device and inode; or, where one side does not know them (an imported core names
 * files but gives no inode), both are files. Names are compared by the caller. */
int region_same_file_id(const struct region *a, const struct region *b);
/* Memory figures equal (both absent counts as equal). */
int region_same_mem(const struct region *a, const struct region *b);

const char *region_category_name(int category);
/* Returns the category for a name ("heap", ...), or -1. */
int region_category_parse(const char *name);
const char *region_win_state_name(int state);
const char *region_win_type_name(int type);

#endif
