/*
 * libFuzzer target for the diff engine. The input is two region lists, either as two maps texts
 * separated by a line "====" (seeded from tests/fixtures), or as 8-byte records that lay out
 * regions of random sizes, protections, backings and memory figures, anywhere in the 64-bit
 * address space. Every diff must keep the engine's invariants (diff_check): changes in order and
 * never overlapping, each changed byte accounted for once, A with the changes applied is B, the
 * mapped deltas add up; and a list diffed with itself shows nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/maps_parse.h"
#include "diff/diff.h"

static const char *const perms[] = {"---p", "r--p", "rw-p", "r-xp", "rw-s", "r--s", "rwxp", "-w-p"};
static const char *const files[] = {"/usr/lib/libc.so.6", "/srv/data", "/tmp/a\nb"};

/* One record: gap (pages, 16 bits), length (pages, 8 bits), attributes, list membership. */
static void from_records(const uint8_t *p, size_t n, struct region_list *a, struct region_list *b)
{
    uint64_t page = 4096, pos[2] = {0, 0};
    if (n && p[0] & 1) /* high addresses: the [vsyscall] end of the space */
        pos[0] = pos[1] = 0xffffffff00000000ULL;
    for (size_t i = 1; i + 8 <= n; i += 8) {
        const uint8_t *r = p + i;
        int which = r[0] & 3; /* 0: a, 1: b, 2 and 3: both */
        uint64_t gap = ((uint64_t)r[1] | (uint64_t)r[2] << 8) % 64, len = 1 + r[3] % 32;
        for (int side = 0; side < 2; side++) {
            if (which < 2 && which != side)
                continue;
            struct region_list *l = side ? b : a;
            uint64_t start = pos[side] + gap * page, end = start + len * page;
            if (end <= start || start < pos[side])
                continue; /* the top of the address space */
            struct region *x = region_list_push(l);
            x->start = start;
            x->end = end;
            int pi = (r[4] ^ (side && which == 3 ? r[7] : 0)) & 7;
            memcpy(x->perms, perms[pi], 5);
            int f = r[5] & 3;
            if (f) {
                const char *name = files[f - 1];
                x->path = region_list_intern(l, name, strlen(name));
                x->path_len = (uint32_t)strlen(name);
                x->inode = (uint64_t)f;
                x->dev_major = 8;
                x->offset = (uint64_t)(r[6] % 16) * page;
            }
            if (r[7] & 0x80) {
                x->flags |= REGION_HAS_MEM;
                /* up to and past 2^63 */
                region_extra_set(l, x)->rss = (uint64_t)r[7] << 56 | (uint64_t)r[6] << 12;
            }
            pos[side] = end;
        }
    }
}

static int from_text(const uint8_t *p, size_t n, struct region_list *a, struct region_list *b)
{
    const char *s = (const char *)p, *sep = NULL;
    for (size_t i = 0; i + 5 <= n; i++)
        if (memcmp(s + i, "====\n", 5) == 0 && (i == 0 || s[i - 1] == '\n')) {
            sep = s + i;
            break;
        }
    if (!sep)
        return -1;
    struct err e = {0};
    if (maps_parse(s, (size_t)(sep - s), a, &e) < 0 ||
        maps_parse(sep + 5, n - (size_t)(sep + 5 - s), b, &e) < 0)
        return -1;
    region_list_sanitize(a);
    region_list_sanitize(b);
    return 0;
}

static void check(const struct region_list *a, const struct region_list *b, const char *what)
{
    struct diff_result d;
    char why[256];
    diff_result_init(&d);
    diff_regions(a, b, &d);
    if (diff_check(a, b, &d, why, sizeof(why)) < 0) {
        fprintf(stderr, "%s: %s\n", what, why);
        abort();
    }
    if (a == b && d.n) {
        fprintf(stderr, "%s: a list diffed with itself shows %zu changes\n", what, d.n);
        abort();
    }
    diff_result_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct region_list a, b;
    region_list_init(&a);
    region_list_init(&b);
    if (size && data[0] == 'T') {
        if (from_text(data + 1, size - 1, &a, &b) < 0)
            goto out;
    } else {
        from_records(data, size, &a, &b);
    }
    check(&a, &b, "a -> b");
    check(&b, &a, "b -> a");
    check(&a, &a, "a -> a");
out:
    region_list_release(&a);
    region_list_release(&b);
    return 0;
}
