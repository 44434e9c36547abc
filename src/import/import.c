#include "import/import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "capture/maps_parse.h"
#include "import/core_parse.h"
#include "import/pmap_parse.h"
#include "platform/platform.h"
#include "util/xalloc.h"

/* Larger than any memory map text: smaps of 1,000,000 regions is ~800 MB. */
#define IMPORT_MAX_BYTES ((size_t)1 << 30)

static const char *const format_names[] = {
    [IMPORT_AUTO] = "auto", [IMPORT_MAPS] = "maps", [IMPORT_SMAPS] = "smaps",
    [IMPORT_PMAP] = "pmap", [IMPORT_CORE] = "core",
};

int import_format_parse(const char *name)
{
    for (int f = IMPORT_MAPS; f <= IMPORT_CORE; f++)
        if (strcmp(name, format_names[f]) == 0)
            return f;
    return -1;
}

const char *import_format_name(int format)
{
    return format >= IMPORT_AUTO && format <= IMPORT_CORE ? format_names[format] : "unknown";
}

/* The first line of buf, and the one after it ("" when there is none). */
static void first_lines(const char *buf, size_t len, const char **l1, size_t *n1, const char **l2,
                        size_t *n2)
{
    const char *end = buf + len, *nl = memchr(buf, '\n', len);
    *l1 = buf;
    *n1 = nl ? (size_t)(nl - buf) : len;
    *l2 = nl ? nl + 1 : end;
    const char *nl2 = nl ? memchr(*l2, '\n', (size_t)(end - *l2)) : NULL;
    *n2 = nl ? (nl2 ? (size_t)(nl2 - *l2) : (size_t)(end - *l2)) : 0;
}

/* "12345:   ./server --port 80": the first line of pmap's output. */
static int looks_like_pmap(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    return i > 0 && i < n && p[i] == ':' && (i + 1 == n || p[i + 1] == ' ' || p[i + 1] == '\t');
}

/* What buf holds, from its first bytes and lines. */
static int detect(const char *buf, size_t len)
{
    if (len >= 4 && memcmp(buf, "\177ELF", 4) == 0)
        return IMPORT_CORE;
    const char *l1, *l2;
    size_t n1, n2;
    first_lines(buf, len, &l1, &n1, &l2, &n2);
    if (looks_like_pmap(l1, n1))
        return IMPORT_PMAP;
    if (smaps_is_field(l2, l2 + n2))
        return IMPORT_SMAPS;
    return IMPORT_MAPS;
}

/* A core in memory, for import_parse. */
struct mem_file {
    const char *buf;
    size_t len;
};

static int mem_read_at(void *ctx, uint64_t off, void *dst, size_t n)
{
    const struct mem_file *m = ctx;
    if (off > m->len || n > m->len - off)
        return -1;
    memcpy(dst, m->buf + off, n);
    return 0;
}

static int file_read_at(void *ctx, uint64_t off, void *dst, size_t n)
{
    FILE *f = ctx;
    if (plat_seek(f, off) < 0)
        return -1;
    return fread(dst, 1, n, f) == n ? 0 : -1;
}

/* Reads a core through read_at into out, after the checks import_parse makes of any format. */
static int import_core(core_read_fn read_at, void *ctx, uint64_t size, struct import_map *out,
                       struct err *e)
{
    struct core_info info;
    out->format = IMPORT_CORE;
    out->detail = DETAIL_MAPS;
    int rc = core_parse(read_at, ctx, size, &info, &out->regions, e);
    out->pid = info.pid;
    out->program = info.program;
    out->left_out = info.left_out;
    out->by_gdb = info.by_gdb;
    if (rc < 0)
        return rc;
    region_list_classify(&out->regions);
    return 0;
}

int import_parse(const char *buf, size_t len, int format, struct import_map *out, struct err *e)
{
    memset(out, 0, sizeof(*out));
    region_list_init(&out->regions);
    if (len == 0)
        return err_set(e, ERR_PARSE, "the file is empty");
    int detected = detect(buf, len);
    out->format = format == IMPORT_AUTO ? detected : format;
    if (out->format == IMPORT_CORE) {
        if (detected != IMPORT_CORE)
            return err_set(e, ERR_PARSE, "not an ELF core file");
        struct mem_file m = {buf, len};
        return import_core(mem_read_at, &m, len, out, e);
    }
    if (detected == IMPORT_CORE)
        return err_set(e, ERR_PARSE, "it is an ELF file, not %s text",
                       import_format_name(out->format));
    int rc;
    out->detail = out->format == IMPORT_SMAPS ? DETAIL_SMAPS : DETAIL_MAPS;
    if (out->format == IMPORT_PMAP) {
        struct pmap_info info;
        rc = pmap_parse(buf, len, &info, &out->regions, e);
        out->pid = info.pid;
        out->program = info.program;
        if (info.have_rss)
            out->detail = DETAIL_SMAPS;
        out->no_private_dirty = info.have_rss && !info.have_private_dirty;
    } else {
        rc = out->format == IMPORT_SMAPS ? smaps_parse(buf, len, &out->regions, e)
                                         : maps_parse(buf, len, &out->regions, e);
    }
    if (rc < 0)
        return err_wrap(e, "not %s %s", import_format_name(out->format),
                        out->format == IMPORT_PMAP ? "-X output" : "text");
    struct region_list *l = &out->regions;
    if (l->n == 0)
        return err_set(e, ERR_PARSE, "it holds no region");
    size_t bad = region_list_first_disorder(l);
    if (bad < l->n)
        return err_set(e, ERR_PARSE,
                       "region %zu (0x%llx) overlaps the one before it or goes backwards: the "
                       "file was edited or read while the process changed its mappings",
                       bad + 1, (unsigned long long)l->v[bad].start);
    region_list_classify(l);
    return 0;
}

int import_read(const char *path, int format, struct import_map *out, struct err *e)
{
    memset(out, 0, sizeof(*out));
    region_list_init(&out->regions);
    FILE *f = NULL;
    int orc = plat_open_input(path, &f);
    if (orc == -ENODEV || orc == -EISDIR)
        return err_set(e, ERR_USAGE,
                       "cannot import '%s': it is %s, not a saved maps, smaps, pmap or core file",
                       path, orc == -EISDIR ? "a directory" : "a device or socket");
    if (orc < 0)
        return err_set(e, orc == -ENOENT ? ERR_NOTFOUND : ERR_IO, "cannot open '%s': %s", path,
                       strerror(-orc));
    struct stat st;
    int have_stat = fstat(fileno(f), &st) == 0;
    int64_t mtime_ms = have_stat ? (int64_t)st.st_mtime * 1000 : 0;
    unsigned char magic[4];
    size_t got = format == IMPORT_AUTO || format == IMPORT_CORE ? fread(magic, 1, 4, f) : 0;
    if (got == 4 && memcmp(magic, "\177ELF", 4) == 0) {
        /* A core holds the process's memory too: only its headers and notes are read, where
         * they are, so it must be a file and not a pipe. */
        int rc = have_stat && (st.st_mode & S_IFMT) == S_IFREG
                     ? import_core(file_read_at, f, (uint64_t)st.st_size, out, e)
                     : err_set(e, ERR_USAGE,
                               "a core file is read where its notes are: give the "
                               "file itself, not a pipe");
        fclose(f);
        out->taken_at_ms = mtime_ms;
        return rc < 0 ? err_wrap(e, "cannot import '%s'", path) : 0;
    }
    /* The bytes looked at are the text's first: a pipe cannot be read again. */
    char *buf = NULL;
    size_t len = got, cap = 0;
    buf = xgrow(buf, &cap, 1024 * 1024, 1);
    memcpy(buf, magic, got);
    int rc = 0;
    for (;;) {
        if (cap - len < 65536)
            buf = xgrow(buf, &cap, len + 1024 * 1024, 1);
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len > IMPORT_MAX_BYTES) {
            rc = err_set(e, ERR_PARSE, "cannot import '%s': larger than 1 GiB, not a memory map",
                         path);
            break;
        }
        if (n == 0) {
            if (ferror(f))
                rc = err_set(e, ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (rc == 0) {
        buf[len] = '\0';
        rc = import_parse(buf, len, format, out, e);
        if (rc < 0)
            err_wrap(e, "cannot import '%s'", path);
    }
    free(buf);
    out->taken_at_ms = mtime_ms;
    return rc;
}

void import_map_release(struct import_map *m)
{
    region_list_release(&m->regions);
    free(m->program);
    memset(m, 0, sizeof(*m));
}

void import_target(const struct import_map *m, const char *name, const char *fallback,
                   struct capture_target *t)
{
    const char *who = name ? name : m->program ? m->program : fallback;
    memset(t, 0, sizeof(*t));
    t->pid = m->pid;
    t->start_time = 0;
    /* Not a boot of this machine: imported targets never meet recorded ones by identity. */
    t->boot_id = xstrdup("import");
    t->exe = xstrdup(who);
    t->cmdline = m->program ? xstrdup(m->program) : NULL;
    t->exec_key = xasprintf("import:%s", who);
    t->host = NULL;
    t->os = "linux";
}

void import_target_release(struct capture_target *t)
{
    free(t->boot_id);
    free(t->exe);
    free(t->cmdline);
    free(t->exec_key);
    memset(t, 0, sizeof(*t));
}

/* Reads exactly n digits at *p into *v; advances *p. */
static int digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        *v = *v * 10 + (**p - '0');
    }
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int import_parse_time(const char *s, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        digits(&p, 2, &d) < 0)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && (y % 4 != 0 || (y % 100 == 0 && y % 400 != 0))))
        return -1;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0)
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec) < 0)
                return -1;
            if (*p == '.' || *p == ',') {
                p++;
                int scale = 100, any = 0;
                for (; *p >= '0' && *p <= '9'; p++, any = 1) {
                    frac += (*p - '0') * scale;
                    scale /= 10;
                }
                if (!any)
                    return -1;
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
    }
    int64_t offset_min = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) < 0)
            return -1;
        if (*p == ':')
            p++;
        if (digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    }
    if (*p != '\0')
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    *ms = secs * 1000 + frac;
    return 0;
}
