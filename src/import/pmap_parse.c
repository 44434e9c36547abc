/*
 * `pmap -X` / `-XX` output (procps 4) read into regions: the first line is "PID:   command", the
 * second names the columns, then one line per mapping until the "====" rule and the totals.
 * Values are right-aligned under their names; the Mapping column, last, starts where its name
 * does and runs to the end of the line (names may hold spaces). -XX adds VmFlags, a list of
 * two-letter flags, just before Mapping.
 */
#include "import/pmap_parse.h"

#include <string.h>

#include "capture/maps_parse.h"
#include "util/xalloc.h"

enum col {
    COL_ADDRESS,
    COL_PERM,
    COL_OFFSET,
    COL_DEVICE,
    COL_INODE,
    COL_SIZE,
    COL_RSS,
    COL_PSS,
    COL_PRIVATE_DIRTY,
    COL_ANONYMOUS,
    COL_SWAP,
    COL_NAMED
};

static const char *const col_names[COL_NAMED] = {
    "Address", "Perm", "Offset",        "Device",    "Inode", "Size",
    "Rss",     "Pss",  "Private_Dirty", "Anonymous", "Swap",
};

#define MAX_COLS 64

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Splits [p, end) at blanks into at most max words; returns how many. */
static size_t words(const char *p, const char *end, const char **w, size_t *wl, size_t max)
{
    size_t n = 0;
    while (p < end) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            break;
        const char *s = p;
        while (p < end && !is_space(*p))
            p++;
        if (n == max)
            return max + 1;
        w[n] = s;
        wl[n++] = (size_t)(p - s);
    }
    return n;
}

static int parse_num(const char *s, size_t n, int base, uint64_t *v)
{
    uint64_t x = 0;
    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int d;
        char c = s[i];
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        if (x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -1;
        x = x * (uint64_t)base + (uint64_t)d;
    }
    *v = x;
    return 0;
}

/* kB as pmap prints them, to bytes. */
static int parse_kib(const char *s, size_t n, uint64_t *bytes)
{
    uint64_t kib;
    if (parse_num(s, n, 10, &kib) < 0 || kib > UINT64_MAX / 1024)
        return -1;
    *bytes = kib * 1024;
    return 0;
}

/* "fe:00" into r. */
static int parse_device(const char *s, size_t n, struct region *r)
{
    const char *colon = memchr(s, ':', n);
    uint64_t major, minor;
    if (!colon || parse_num(s, (size_t)(colon - s), 16, &major) < 0 ||
        parse_num(colon + 1, n - (size_t)(colon - s) - 1, 16, &minor) < 0 || major > UINT32_MAX ||
        minor > UINT32_MAX)
        return -1;
    r->dev_major = (uint32_t)major;
    r->dev_minor = (uint32_t)minor;
    return 0;
}

int pmap_parse(const char *buf, size_t len, struct pmap_info *info, struct region_list *out,
               struct err *e)
{
    const char *end = buf + len, *p = buf;
    memset(info, 0, sizeof(*info));
    /* "12345:   ./server --port 8080" */
    const char *le = memchr(p, '\n', len);
    le = le ? le : end;
    uint64_t pid = 0;
    const char *colon = memchr(p, ':', (size_t)(le - p));
    if (!colon || parse_num(p, (size_t)(colon - p), 10, &pid) < 0 || pid == 0 || pid > INT64_MAX)
        return err_set(e, ERR_PARSE, "line 1: expected 'PID:   command' as pmap prints it");
    info->pid = (int64_t)pid;
    const char *cmd = colon + 1;
    while (cmd < le && is_space(*cmd))
        cmd++;
    const char *cmd_end = le;
    while (cmd_end > cmd && is_space(cmd_end[-1]))
        cmd_end--;
    if (cmd_end > cmd)
        info->program = xstrndup(cmd, (size_t)(cmd_end - cmd));

    /* The column names. */
    if (le == end)
        return err_set(e, ERR_PARSE, "line 2: no column names: expected pmap -X or -XX output");
    const char *hp = le + 1, *he = memchr(hp, '\n', (size_t)(end - hp));
    he = he ? he : end;
    const char *w[MAX_COLS + 1];
    size_t wl[MAX_COLS + 1];
    size_t ncols = words(hp, he, w, wl, MAX_COLS);
    int at[COL_NAMED];
    for (int c = 0; c < COL_NAMED; c++)
        at[c] = -1;
    size_t flags_col = ncols, map_col = ncols;
    for (size_t i = 0; i < ncols && ncols <= MAX_COLS; i++) {
        for (int c = 0; c < COL_NAMED; c++)
            if (wl[i] == strlen(col_names[c]) && memcmp(w[i], col_names[c], wl[i]) == 0)
                at[c] = (int)i;
        if (wl[i] == 7 && memcmp(w[i], "VmFlags", 7) == 0)
            flags_col = i;
        if (wl[i] == 7 && memcmp(w[i], "Mapping", 7) == 0)
            map_col = i;
    }
    for (int c = COL_ADDRESS; c <= COL_SIZE; c++)
        if (at[c] < 0 || (size_t)at[c] >= flags_col || (size_t)at[c] >= map_col)
            return err_set(e, ERR_PARSE,
                           "line 2: no %s column: expected the output of pmap -X or -XX "
                           "(plain pmap and pmap -x leave out what a snapshot needs)",
                           col_names[c]);
    if (map_col != ncols - 1)
        return err_set(e, ERR_PARSE, "line 2: Mapping is not the last column");
    size_t fixed = flags_col < map_col ? flags_col : map_col; /* words before VmFlags/Mapping */
    size_t map_at = (size_t)(w[map_col] - hp);
    for (int c = COL_RSS; c < COL_NAMED; c++)
        if (at[c] >= 0 && (size_t)at[c] >= fixed)
            at[c] = -1; /* after VmFlags, whose width varies: not a column we can find */
    info->have_rss =
        at[COL_RSS] >= 0 && at[COL_PSS] >= 0 && at[COL_ANONYMOUS] >= 0 && at[COL_SWAP] >= 0;
    info->have_private_dirty = at[COL_PRIVATE_DIRTY] >= 0;

    size_t lineno = 2;
    for (const char *line = he < end ? he + 1 : end; line < end;) {
        le = memchr(line, '\n', (size_t)(end - line));
        le = le ? le : end;
        lineno++;
        const char *next = le < end ? le + 1 : end, *q = line;
        while (q < le && is_space(*q))
            q++;
        if (q == le) {
            line = next;
            continue;
        }
        if (*q == '=')
            return 0; /* the rule above the totals: the mappings are all read */
        /* The name starts where the header's Mapping does. */
        const char *name = (size_t)(le - line) > map_at ? line + map_at : le;
        if (name < le && !is_space(name[-1]))
            return err_set(e, ERR_PARSE, "line %zu: the columns do not line up with the header",
                           lineno);
        size_t nw = words(line, name, w, wl, MAX_COLS);
        if (nw < fixed || nw > MAX_COLS || (flags_col == map_col && nw != fixed))
            return err_set(e, ERR_PARSE, "line %zu: %zu values where the header has %zu", lineno,
                           nw, fixed);
        struct region *r = region_list_push(out);
        uint64_t size, inode, v;
        const int a = at[COL_ADDRESS];
        if (parse_num(w[a], wl[a], 16, &r->start) < 0)
            return err_set(e, ERR_PARSE, "line %zu: bad address", lineno);
        if (parse_kib(w[at[COL_SIZE]], wl[at[COL_SIZE]], &size) < 0 || size == 0 ||
            size > UINT64_MAX - r->start || !region_range_possible(r->start, r->start + size))
            return err_set(e, ERR_PARSE, "line %zu: bad size", lineno);
        r->end = r->start + size;
        const int pm = at[COL_PERM];
        if (wl[pm] != 4)
            return err_set(e, ERR_PARSE, "line %zu: perms like \"rw-p\" expected", lineno);
        memcpy(r->perms, w[pm], 4);
        r->perms[4] = '\0';
        if (parse_num(w[at[COL_OFFSET]], wl[at[COL_OFFSET]], 16, &r->offset) < 0)
            return err_set(e, ERR_PARSE, "line %zu: bad offset", lineno);
        if (parse_device(w[at[COL_DEVICE]], wl[at[COL_DEVICE]], r) < 0)
            return err_set(e, ERR_PARSE, "line %zu: bad device", lineno);
        if (parse_num(w[at[COL_INODE]], wl[at[COL_INODE]], 10, &inode) < 0)
            return err_set(e, ERR_PARSE, "line %zu: bad inode", lineno);
        r->inode = inode;
        if (info->have_rss) {
            struct region_extra *x = region_extra_set(out, r);
            const int cols[] = {COL_RSS, COL_PSS, COL_ANONYMOUS, COL_SWAP, COL_PRIVATE_DIRTY};
            uint64_t *dst[] = {&x->rss, &x->pss, &x->anonymous, &x->swap, &x->private_dirty};
            for (int k = 0; k < 5; k++) {
                if (at[cols[k]] < 0)
                    continue; /* Private_Dirty: -XX only */
                if (parse_kib(w[at[cols[k]]], wl[at[cols[k]]], &v) < 0)
                    return err_set(e, ERR_PARSE, "line %zu: bad %s", lineno, col_names[cols[k]]);
                *dst[k] = v;
            }
            r->flags |= REGION_HAS_MEM;
        }
        const char *ne = le;
        while (ne > name && ne[-1] == '\r')
            ne--;
        if (ne > name)
            maps_set_name(out, r, name, (size_t)(ne - name), 1);
        line = next;
    }
    return err_set(e, ERR_PARSE, "line %zu: the file ends before pmap's totals: it was cut short",
                   lineno);
}
