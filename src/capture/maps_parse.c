#include "capture/maps_parse.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define DELETED_SUFFIX     " (deleted)"
#define DELETED_SUFFIX_LEN (sizeof(DELETED_SUFFIX) - 1)

/* Parses 1..16 lower- or upper-case hex digits at *p, advancing *p. Returns 0 or -1. */
static int parse_hex(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    int n = 0;
    while (s < end) {
        unsigned c = (unsigned char)*s, d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (++n > 16)
            return -1;
        v = (v << 4) | d;
        s++;
    }
    if (n == 0)
        return -1;
    *out = v;
    *p = s;
    return 0;
}

static int parse_dec(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    int n = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        s++;
        n++;
    }
    if (n == 0)
        return -1;
    *out = v;
    *p = s;
    return 0;
}

static int expect(const char **p, const char *end, char c)
{
    if (*p >= end || **p != c)
        return -1;
    (*p)++;
    return 0;
}

void maps_set_name(struct region_list *out, struct region *r, const char *name, size_t len,
                   int unescape)
{
    char stackbuf[512];
    char *heap = len < sizeof(stackbuf) ? NULL : xmalloc(len + 1);
    char *tmp = heap ? heap : stackbuf;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (unescape && name[i] == '\\' && i + 3 < len && name[i + 1] == '0' &&
            name[i + 2] == '1' && name[i + 3] == '2') {
            tmp[n++] = '\n';
            i += 3;
            r->flags |= REGION_NAME_ESCAPED;
        } else {
            tmp[n++] = name[i];
        }
    }
    /* The kernel appends " (deleted)" to unlinked files; only paths get it. */
    if (n > DELETED_SUFFIX_LEN && tmp[0] == '/' &&
        memcmp(tmp + n - DELETED_SUFFIX_LEN, DELETED_SUFFIX, DELETED_SUFFIX_LEN) == 0) {
        n -= DELETED_SUFFIX_LEN;
        r->flags |= REGION_DELETED | REGION_NAME_SUFFIX;
    }
    r->path = region_list_intern(out, tmp, n);
    r->path_len = (uint32_t)n;
    free(heap);
}

/* Parses one maps-format header line [p, end) (no newline) into a new region of out. */
static int parse_header(const char *p, const char *end, struct region_list *out, size_t lineno,
                        struct err *e)
{
    struct region *r = region_list_push(out);
    const char *what;
    uint64_t v;

    what = "start address";
    if (parse_hex(&p, end, &r->start) < 0)
        goto bad;
    what = "'-' after the start address";
    if (expect(&p, end, '-') < 0)
        goto bad;
    what = "end address";
    if (parse_hex(&p, end, &r->end) < 0)
        goto bad;
    what = "space before perms";
    if (expect(&p, end, ' ') < 0)
        goto bad;
    what = "perms like \"rw-p\"";
    if (end - p < 5 || (p[0] != 'r' && p[0] != '-') || (p[1] != 'w' && p[1] != '-') ||
        (p[2] != 'x' && p[2] != '-') || (p[3] != 'p' && p[3] != 's') || p[4] != ' ')
        goto bad;
    memcpy(r->perms, p, 4);
    r->perms[4] = '\0';
    p += 5;
    what = "offset";
    if (parse_hex(&p, end, &r->offset) < 0 || expect(&p, end, ' ') < 0)
        goto bad;
    what = "device major:minor";
    if (parse_hex(&p, end, &v) < 0 || v > UINT32_MAX)
        goto bad;
    r->dev_major = (uint32_t)v;
    if (expect(&p, end, ':') < 0 || parse_hex(&p, end, &v) < 0 || v > UINT32_MAX)
        goto bad;
    r->dev_minor = (uint32_t)v;
    what = "inode";
    if (expect(&p, end, ' ') < 0 || parse_dec(&p, end, &r->inode) < 0)
        goto bad;
    if (p < end && *p != ' ')
        goto bad;
    while (p < end && *p == ' ')
        p++;
    if (r->end <= r->start) {
        out->n--;
        return err_set(e, ERR_PARSE, "line %zu: end address is not above the start address",
                       lineno);
    }
    if (!region_range_possible(r->start, r->end)) {
        out->n--;
        return err_set(e, ERR_PARSE,
                       "line %zu: no address space holds 0x%llx-0x%llx (larger than 2^57 "
                       "bytes, or across 2^63)",
                       lineno, (unsigned long long)r->start, (unsigned long long)r->end);
    }
    if (p < end)
        maps_set_name(out, r, p, (size_t)(end - p), 1);
    return 0;
bad:
    out->n--;
    return err_set(e, ERR_PARSE, "line %zu: malformed maps line: expected %s", lineno, what);
}

static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : end;
}

int maps_parse(const char *buf, size_t len, struct region_list *out, struct err *e)
{
    const char *p = buf, *end = buf + len;
    size_t lineno = 0, lines = 0;
    /* One region a line: room for all of them at once, rather than growing 17 times at 60k. */
    for (const char *q = buf; q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
        lines++;
    region_list_reserve(out, out->n + lines + 1);
    while (p < end) {
        const char *le = line_end(p, end);
        lineno++;
        int rc = parse_header(p, le, out, lineno, e);
        if (rc < 0)
            return rc;
        p = le < end ? le + 1 : end;
    }
    return 0;
}

/* Parses "Key:   123 kB" at [p, le); returns 0 and the value in bytes, -1 if malformed. */
static int parse_kb(const char *p, const char *le, uint64_t *bytes)
{
    while (p < le && *p == ' ')
        p++;
    uint64_t kb;
    if (parse_dec(&p, le, &kb) < 0)
        return -1;
    if (le - p != 3 || memcmp(p, " kB", 3) != 0 || kb > UINT64_MAX / 1024)
        return -1;
    *bytes = kb * 1024;
    return 0;
}

struct mem_key {
    const char *name;
    size_t len;
    size_t field; /* offsetof in struct mem_totals */
};

#define KEY(s, f)                                                                                  \
    {                                                                                              \
        s ":", sizeof(s ":") - 1, offsetof(struct mem_totals, f)                                   \
    }
static const struct mem_key mem_keys[] = {
    KEY("Rss", rss),
    KEY("Pss", pss),
    KEY("Private_Dirty", private_dirty),
    KEY("Anonymous", anonymous),
    KEY("Swap", swap),
};

/* Applies a "Key: value" line to t when Key is one we keep. Returns 0, or -1 if its value is bad.
 */
static int apply_mem_line(const char *p, const char *le, struct mem_totals *t)
{
    for (size_t k = 0; k < sizeof(mem_keys) / sizeof(mem_keys[0]); k++) {
        const struct mem_key *mk = &mem_keys[k];
        if ((size_t)(le - p) > mk->len && memcmp(p, mk->name, mk->len) == 0) {
            uint64_t bytes;
            if (parse_kb(p + mk->len, le, &bytes) < 0)
                return -1;
            *(uint64_t *)((char *)t + mk->field) = bytes;
            return 0;
        }
    }
    return 0;
}

/* A smaps field line is "Name:" then a value; a header starts with a hex digit. */
static int is_header(const char *p, const char *le)
{
    return p < le && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
}

/* A field line is "Name:" with Name starting upper-case: "Rss:", "VmFlags:", "THPeligible:". */
int smaps_is_field(const char *p, const char *le)
{
    if (p >= le || !(*p >= 'A' && *p <= 'Z'))
        return 0;
    for (p++; p < le; p++) {
        char c = *p;
        if (c == ':')
            return 1;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 0;
}

void smaps_parser_init(struct smaps_parser *sp, struct region_list *out)
{
    memset(sp, 0, sizeof(*sp));
    sp->out = out;
}

int smaps_parse_lines(struct smaps_parser *sp, const char *buf, size_t len, int final, size_t *used,
                      struct err *e)
{
    const char *p = buf, *end = buf + len;
    struct region_list *out = sp->out;
    while (p < end) {
        const char *le = memchr(p, '\n', (size_t)(end - p));
        if (!le && !final)
            break; /* the rest of this line comes with the next piece */
        if (!le)
            le = end;
        sp->lineno++;
        if (is_header(p, le)) {
            int rc = parse_header(p, le, out, sp->lineno, e);
            if (rc < 0)
                return rc;
            out->v[out->n - 1].flags |= REGION_HAS_MEM;
            memset(&sp->t, 0, sizeof(sp->t));
            sp->in_region = 1;
        } else if (smaps_is_field(p, le)) {
            if (!sp->in_region)
                return err_set(e, ERR_PARSE, "line %zu: smaps field before any region header",
                               sp->lineno);
            if (apply_mem_line(p, le, &sp->t) < 0)
                return err_set(e, ERR_PARSE, "line %zu: malformed smaps value", sp->lineno);
            struct region_extra *x = region_extra_set(out, &out->v[out->n - 1]);
            x->rss = sp->t.rss;
            x->pss = sp->t.pss;
            x->private_dirty = sp->t.private_dirty;
            x->anonymous = sp->t.anonymous;
            x->swap = sp->t.swap;
        } else {
            return err_set(e, ERR_PARSE, "line %zu: malformed smaps line", sp->lineno);
        }
        p = le < end ? le + 1 : end;
    }
    *used = (size_t)(p - buf);
    return 0;
}

int smaps_parse(const char *buf, size_t len, struct region_list *out, struct err *e)
{
    struct smaps_parser sp;
    size_t used;
    smaps_parser_init(&sp, out);
    return smaps_parse_lines(&sp, buf, len, 1, &used, e);
}

int rollup_parse(const char *buf, size_t len, struct mem_totals *t, struct err *e)
{
    const char *p = buf, *end = buf + len;
    size_t lineno = 0;
    int seen_header = 0;
    memset(t, 0, sizeof(*t));
    while (p < end) {
        const char *le = line_end(p, end);
        lineno++;
        if (!seen_header) {
            /* "00400000-ffffffffff601000 ---p 00000000 00:00 0   [rollup]" */
            if (!is_header(p, le))
                return err_set(e, ERR_PARSE, "line %zu: smaps_rollup does not start with a range",
                               lineno);
            seen_header = 1;
        } else if (smaps_is_field(p, le)) {
            if (apply_mem_line(p, le, t) < 0)
                return err_set(e, ERR_PARSE, "line %zu: malformed smaps_rollup value", lineno);
        } else {
            return err_set(e, ERR_PARSE, "line %zu: malformed smaps_rollup line", lineno);
        }
        p = le < end ? le + 1 : end;
    }
    if (!seen_header)
        return err_set(e, ERR_PARSE, "smaps_rollup is empty");
    return 0;
}
