#include "import/core_parse.h"

#include <stdlib.h>
#include <string.h>

#include "capture/maps_parse.h"
#include "util/xalloc.h"

enum {
    ET_CORE = 4,
    EM_X86_64 = 62,
    EM_AARCH64 = 183,
    PT_LOAD = 1,
    PT_NOTE = 4,
    PF_X = 1,
    PF_W = 2,
    PF_R = 4,
    NT_PRSTATUS = 1,
    NT_PRPSINFO = 3,
    NT_FILE = 0x46494c45,
    PN_XNUM = 0xffff,
};

/* More segments than any process can have (vm.max_map_count's ceiling is 2^31, but a core of
 * millions of mappings is not a memory map anyone saves): a header claiming more is damaged. */
#define MAX_SEGMENTS   (4u << 20)
#define MAX_NOTE_BYTES (64u << 20)

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
    return le16(p) | le16(p + 2) << 16;
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

struct seg {
    uint64_t start, end;
    uint32_t flags;
};

struct file_ent {
    uint64_t start, end, offset;
    char *name; /* owned */
    size_t len;
};

struct core_state {
    struct core_info *info;
    struct seg *segs;
    size_t nsegs, seg_cap;
    struct file_ent *files;
    size_t nfiles, file_cap;
};

static int cmp_seg(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_file(const void *a, const void *b)
{
    const struct file_ent *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The NT_FILE note: count, page size, count x (start, end, page offset), then count names. */
static int read_nt_file(struct core_state *s, const unsigned char *d, size_t n, struct err *e)
{
    if (n < 16)
        return err_set(e, ERR_PARSE, "its NT_FILE note is too short");
    uint64_t count = le64(d), page = le64(d + 8);
    if (count > (n - 16) / 24)
        return err_set(e, ERR_PARSE, "its NT_FILE note names more files than it holds");
    size_t at = 16 + (size_t)count * 24;
    for (uint64_t i = 0; i < count; i++) {
        const unsigned char *r = d + 16 + i * 24;
        uint64_t start = le64(r), end = le64(r + 8), pgoff = le64(r + 16);
        const unsigned char *nul = at < n ? memchr(d + at, '\0', n - at) : NULL;
        if (!nul)
            return err_set(e, ERR_PARSE, "its NT_FILE note ends inside a file name");
        size_t len = (size_t)(nul - (d + at));
        if (!region_range_possible(start, end) || (page && pgoff > UINT64_MAX / page))
            return err_set(e, ERR_PARSE, "its NT_FILE note has a bad range at entry %llu",
                           (unsigned long long)i);
        s->files = xgrow(s->files, &s->file_cap, s->nfiles + 1, sizeof(*s->files));
        s->files[s->nfiles++] =
            (struct file_ent){start, end, pgoff * page, xstrndup((const char *)d + at, len), len};
        at += len + 1;
    }
    return 0;
}

/* What the notes of one PT_NOTE segment say. */
static int read_notes(struct core_state *s, const unsigned char *p, size_t n, struct err *e)
{
    struct core_info *info = s->info;
    size_t at = 0;
    while (n - at >= 12) {
        uint64_t namesz = le32(p + at), descsz = le32(p + at + 4);
        uint32_t type = le32(p + at + 8);
        uint64_t name_at = at + 12, desc_at = name_at + ((namesz + 3) & ~(uint64_t)3);
        if (desc_at > n || descsz > n - desc_at)
            return err_set(e, ERR_PARSE, "a note runs past the end of its segment");
        const unsigned char *name = p + name_at, *d = p + desc_at;
        if (namesz == 4 && memcmp(name, "GDB", 4) == 0)
            info->by_gdb = 1;
        if (namesz == 5 && memcmp(name, "CORE", 5) == 0) {
            /* elf_prstatus: pr_pid after siginfo (12), cursig (2 + 2), sigpend, sighold. */
            if (type == NT_PRSTATUS && descsz >= 36 && !info->pid)
                info->pid = le32(d + 32);
            /* elf_prpsinfo: pr_pid at 24, pr_fname[16] at 40, pr_psargs[80] at 56. */
            if (type == NT_PRPSINFO && descsz >= 136 && !info->program) {
                const char *args = (const char *)d + 56;
                size_t len = strnlen(args, 80);
                while (len && args[len - 1] == ' ')
                    len--;
                if (len)
                    info->program = xstrndup(args, len);
                if (!info->pid)
                    info->pid = le32(d + 24);
            }
            if (type == NT_FILE) {
                int rc = read_nt_file(s, d, (size_t)descsz, e);
                if (rc < 0)
                    return rc;
            }
        }
        uint64_t next = desc_at + ((descsz + 3) & ~(uint64_t)3);
        if (next > n)
            break;
        at = (size_t)next;
    }
    return 0;
}

/* Reads the program headers: the segments to map, the notes to read. */
static int read_segments(struct core_state *s, core_read_fn read_at, void *ctx, uint64_t size,
                         const unsigned char *eh, struct err *e)
{
    uint64_t phoff = le64(eh + 32), shoff = le64(eh + 40);
    uint32_t phentsize = le16(eh + 54), phnum = le16(eh + 56), shentsize = le16(eh + 58);
    if (phentsize < 56)
        return err_set(e, ERR_PARSE, "its program headers are %u bytes, not 56", phentsize);
    if (phnum == PN_XNUM) {
        /* More than 65,534 segments: the real count is in section header 0's sh_info. */
        unsigned char sh[64];
        if (shentsize < 64 || read_at(ctx, shoff, sh, sizeof(sh)) < 0)
            return err_set(e, ERR_PARSE, "its segment count is in a section header it lacks");
        phnum = le32(sh + 44);
    }
    if (phnum == 0)
        return err_set(e, ERR_PARSE, "it has no program headers");
    if (phnum > MAX_SEGMENTS || phoff > size || (uint64_t)phnum * phentsize > size - phoff)
        return err_set(e, ERR_PARSE,
                       "its %u program headers run past the end of the file: it was cut short",
                       phnum);
    unsigned char ph[56];
    uint64_t note_bytes = 0;
    for (uint32_t i = 0; i < phnum; i++) {
        if (read_at(ctx, phoff + (uint64_t)i * phentsize, ph, sizeof(ph)) < 0)
            return err_set(e, ERR_PARSE, "program header %u cannot be read", i);
        uint32_t type = le32(ph), flags = le32(ph + 4);
        uint64_t offset = le64(ph + 8), vaddr = le64(ph + 16), filesz = le64(ph + 32),
                 memsz = le64(ph + 40);
        if (type == PT_LOAD && memsz) {
            if (memsz > UINT64_MAX - vaddr || !region_range_possible(vaddr, vaddr + memsz))
                return err_set(e, ERR_PARSE, "segment %u is not in any address space", i);
            s->segs = xgrow(s->segs, &s->seg_cap, s->nsegs + 1, sizeof(*s->segs));
            s->segs[s->nsegs++] = (struct seg){vaddr, vaddr + memsz, flags};
        } else if (type == PT_NOTE && filesz) {
            if (offset > size || filesz > size - offset || (note_bytes += filesz) > MAX_NOTE_BYTES)
                return err_set(e, ERR_PARSE, "its notes run past the end of the file");
            unsigned char *notes = xmalloc((size_t)filesz);
            int rc = read_at(ctx, offset, notes, (size_t)filesz) < 0
                         ? err_set(e, ERR_PARSE, "its notes cannot be read")
                         : read_notes(s, notes, (size_t)filesz, e);
            free(notes);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* The segments as regions, named by the files that hold them. */
static int build_regions(struct core_state *s, struct region_list *out, struct err *e)
{
    if (s->nsegs > 1)
        qsort(s->segs, s->nsegs, sizeof(*s->segs), cmp_seg);
    if (s->nfiles > 1)
        qsort(s->files, s->nfiles, sizeof(*s->files), cmp_file);
    region_list_reserve(out, out->n + s->nsegs);
    size_t f = 0;
    for (size_t i = 0; i < s->nsegs; i++) {
        const struct seg *g = &s->segs[i];
        if (i && g->start < s->segs[i - 1].end)
            return err_set(e, ERR_PARSE, "segments overlap at 0x%llx",
                           (unsigned long long)g->start);
        struct region *r = region_list_push(out);
        r->start = g->start;
        r->end = g->end;
        r->perms[0] = g->flags & PF_R ? 'r' : '-';
        r->perms[1] = g->flags & PF_W ? 'w' : '-';
        r->perms[2] = g->flags & PF_X ? 'x' : '-';
        r->perms[3] = 'p';
        r->perms[4] = '\0';
        while (f + 1 < s->nfiles && s->files[f + 1].start <= g->start)
            f++;
        const struct file_ent *fe = f < s->nfiles ? &s->files[f] : NULL;
        if (fe && fe->start <= g->start && g->end <= fe->end) {
            maps_set_name(out, r, fe->name, fe->len, 0);
            r->offset = fe->offset + (g->start - fe->start);
        }
    }
    /* Files no segment covers: gcore leaves out what it does not dump. */
    size_t k = 0;
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct file_ent *fe = &s->files[i];
        while (k < s->nsegs && s->segs[k].end <= fe->start)
            k++;
        if (k == s->nsegs || s->segs[k].start >= fe->end)
            s->info->left_out++;
    }
    return 0;
}

int core_parse(core_read_fn read_at, void *ctx, uint64_t size, struct core_info *info,
               struct region_list *out, struct err *e)
{
    unsigned char eh[64];
    memset(info, 0, sizeof(*info));
    if (size < sizeof(eh) || read_at(ctx, 0, eh, sizeof(eh)) < 0 || memcmp(eh, "\177ELF", 4))
        return err_set(e, ERR_PARSE, "too short for an ELF header");
    if (eh[4] != 2)
        return err_set(e, ERR_UNSUPPORTED, "a 32-bit ELF file: only 64-bit cores are read");
    if (eh[5] != 1)
        return err_set(e, ERR_UNSUPPORTED,
                       "a big-endian ELF file: only little-endian cores are read");
    if (le16(eh + 16) != ET_CORE)
        return err_set(e, ERR_PARSE, "an ELF file of type %u, not a core file",
                       (unsigned)le16(eh + 16));
    uint32_t machine = le16(eh + 18);
    if (machine != EM_X86_64 && machine != EM_AARCH64)
        return err_set(e, ERR_UNSUPPORTED,
                       "a core file of machine %u: only x86-64 and aarch64 cores are read",
                       (unsigned)machine);
    struct core_state s = {info, NULL, 0, 0, NULL, 0, 0};
    int rc = read_segments(&s, read_at, ctx, size, eh, e);
    if (rc == 0 && s.nsegs == 0)
        rc = err_set(e, ERR_PARSE, "it holds no memory segment");
    if (rc == 0)
        rc = build_regions(&s, out, e);
    for (size_t i = 0; i < s.nfiles; i++)
        free(s.files[i].name);
    free(s.files);
    free(s.segs);
    return rc;
}
