/* `vmsnap diff` end to end: a live program makes known changes between two snapshots. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct change {
    char kind[16];
    uint64_t start, end;
    int64_t delta;
    char path[512];
};

/* Reads the "changes" of vmsnap's compact JSON (keys come in a fixed order). */
static size_t parse_changes(const char *json, struct change *out, size_t max)
{
    size_t n = 0;
    for (const char *p = strstr(json, "{\"change\":\""); p && n < max;
         p = strstr(p + 1, "{\"change\":\"")) {
        struct change *c = &out[n];
        memset(c, 0, sizeof(*c));
        unsigned long long s, e;
        if (sscanf(p, "{\"change\":\"%15[a-z]\",\"start\":\"0x%llx\",\"end\":\"0x%llx\"", c->kind,
                   &s, &e) != 3)
            fail_msg("unparsable change: %.80s", p);
        c->start = s;
        c->end = e;
        const char *next = strstr(p + 1, "{\"change\":\"");
        const char *d = strstr(p, "\"delta\":");
        if (d && (!next || d < next))
            c->delta = strtoll(d + 8, NULL, 10);
        const char *path = strstr(p, "\"path\":\"");
        if (path && (!next || path < next)) {
            path += 8;
            size_t k = 0;
            while (*path && *path != '"' && k < sizeof(c->path) - 1) {
                if (path[0] == '\\' && path[1] == 'n') {
                    c->path[k++] = '\n';
                    path += 2;
                } else {
                    c->path[k++] = *path++;
                }
            }
        }
        n++;
    }
    return n;
}

static const struct change *find(const struct change *v, size_t n, const char *kind, uint64_t start,
                                 uint64_t end)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].kind, kind) == 0 && v[i].start == start && v[i].end == end)
            return &v[i];
    return NULL;
}

static void snap(const char *db, pid_t pid, const char *label, const char *detail)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", (int)pid);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", p, "--label", label, "--detail", detail, NULL);
    if (r.status != 0)
        fail_msg("snap: %s", r.err);
    tu_run_release(&r);
}

#define K 1024ULL

static void test_known_changes_are_reported_exactly(void **state)
{
    (void)state;
    char *dir;
    char *db = tu_tmppath("d.db", &dir);
    struct tu_child c;
    tu_child_start(&c);
    const uint64_t A = 0x500000000ULL, B = 0x510000000ULL, G = 0x520000000ULL, S = 0x530000000ULL,
                   R = 0x540000000ULL, N = 0x550000000ULL;
    tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)A, 1024 * K);
    tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)B, 1024 * K);
    tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)G, 256 * K);
    tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)S, 1024 * K);
    tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)R, 132 * K);
    tu_child_ok(&c, "mapat 0x%llx %llu ---", (unsigned long long)(R + 132 * K), 64 * 1024 * K);
    tu_child_ok(&c, "brk 4096"); /* make sure a heap exists before the first snapshot */
    snap(db, c.pid, "before", "maps");

    tu_child_ok(&c, "protect 0x%llx %llu r--", (unsigned long long)(A + 256 * K), 64 * K);
    tu_child_ok(&c, "unmap 0x%llx %llu", (unsigned long long)B, 1024 * K);
    tu_child_ok(&c, "mremap 0x%llx %llu %llu", (unsigned long long)G, 256 * K, 768 * K);
    tu_child_ok(&c, "mremap 0x%llx %llu %llu", (unsigned long long)S, 1024 * K, 512 * K);
    tu_child_ok(&c, "protect 0x%llx %llu rw-", (unsigned long long)(R + 132 * K), 132 * K);
    tu_child_ok(&c, "mapat 0x%llx %llu r--", (unsigned long long)N, 64 * K);
    uint64_t old_brk = tu_child_ok(&c, "brk 65536");
    uint64_t file = tu_child_ok(&c, "mapfile %s/a\\sb\\nc.bin 8192 r-- p", dir);
    snap(db, c.pid, "after", "maps");

    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "-j", "diff", "before", "after", NULL);
    assert_int_equal(r.status, 1);
    struct change v[64];
    size_t n = parse_changes(r.out, v, 64);
    const struct change *ch;
    assert_non_null(find(v, n, "reprotected", A + 256 * K, A + 320 * K));
    assert_non_null(find(v, n, "freed", B, B + 1024 * K));
    assert_non_null(ch = find(v, n, "grown", G, G + 768 * K));
    assert_int_equal(ch->delta, 512 * K);
    assert_non_null(ch = find(v, n, "shrunk", S, S + 512 * K));
    assert_int_equal(ch->delta, -(int64_t)(512 * K));
    assert_non_null(ch = find(v, n, "grown", R, R + 264 * K));
    assert_int_equal(ch->delta, 132 * K);
    assert_non_null(ch = find(v, n, "shrunk", R + 264 * K, R + 132 * K + 64 * 1024 * K));
    assert_int_equal(ch->delta, -(int64_t)(132 * K));
    assert_non_null(find(v, n, "new", N, N + 64 * K));
    assert_non_null(ch = find(v, n, "new", file, file + 8192));
    char want[4200];
    snprintf(want, sizeof(want), "%s/a b\nc.bin", dir);
    assert_string_equal(ch->path, want);
    /* brk growth of [heap]: grown, ending exactly at the new break. */
    int heap = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].kind, "grown") == 0 && v[i].end == old_brk + 65536) {
            assert_int_equal(v[i].delta, 65536);
            heap = 1;
        }
    assert_true(heap);
    /* Nothing else touches the ranges the program changed. */
    const uint64_t mine[][2] = {{A, A + 1024 * K},
                                {B, B + 1024 * K},
                                {G, G + 768 * K},
                                {S, S + 1024 * K},
                                {R, R + 132 * K + 64 * 1024 * K},
                                {N, N + 64 * K}};
    size_t expected_here = 7; /* the file and the heap lie elsewhere */
    size_t here = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < sizeof(mine) / sizeof(mine[0]); m++)
            if (v[i].start < mine[m][1] && v[i].end > mine[m][0]) {
                here++;
                break;
            }
    assert_int_equal(here, expected_here);
    assert_non_null(strstr(r.out, "\"summary\":{\"mapped_delta\":"));
    tu_run_release(&r);

    /* The other way round reads as the opposite changes. */
    tu_vmsnap(&r, "-d", db, "-j", "diff", "after", "before", NULL);
    assert_int_equal(r.status, 1);
    n = parse_changes(r.out, v, 64);
    assert_non_null(find(v, n, "new", B, B + 1024 * K));
    assert_non_null(find(v, n, "shrunk", G, G + 256 * K));
    assert_non_null(find(v, n, "grown", S, S + 1024 * K));
    assert_non_null(find(v, n, "freed", N, N + 64 * K));
    assert_non_null(find(v, n, "reprotected", A + 256 * K, A + 320 * K));
    tu_run_release(&r);

    /* The same snapshot: no changes, exit 0. */
    tu_vmsnap(&r, "-d", db, "diff", "after", "after", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "summary: 0 changes"));
    tu_run_release(&r);
    tu_child_stop(&c);
    free(db);
    free(dir);
}

static void test_resident_changes_with_smaps(void **state)
{
    (void)state;
    char *dir;
    char *db = tu_tmppath("d.db", &dir);
    struct tu_child c;
    tu_child_start(&c);
    const uint64_t T = 0x560000000ULL;
    tu_child_ok(&c, "mapat 0x%llx %llu rw-", (unsigned long long)T, 256 * K);
    tu_child_ok(&c, "touch 0x%llx %llu", (unsigned long long)T, 16 * K);
    snap(db, c.pid, "one", "smaps");
    tu_child_ok(&c, "touch 0x%llx %llu", (unsigned long long)T, 80 * K);
    snap(db, c.pid, "two", "smaps");
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "-j", "diff", "one", "two", NULL);
    assert_int_equal(r.status, 1);
    struct change v[64];
    size_t n = parse_changes(r.out, v, 64);
    const struct change *ch = find(v, n, "resident", T, T + 256 * K);
    assert_non_null(ch);
    assert_int_equal(ch->delta, 64 * K);
    assert_non_null(strstr(r.out, "\"before\":{\"rss\":16384}"));
    assert_non_null(strstr(r.out, "\"anon\":{\"mapped_delta\":"));
    tu_run_release(&r);

    /* Growth gate for CI: 1 when rss or mapped grew by more than the limit. */
    tu_vmsnap(&r, "-d", db, "diff", "one", "two", "--fail-on-growth", "1K", NULL);
    assert_int_equal(r.status, 1);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "diff", "one", "two", "--fail-on-growth", "1G", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    /* Filters: a category with no change, and a size above every change. */
    tu_vmsnap(&r, "-d", db, "-j", "diff", "one", "two", "--category", "shm", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"changes\":[]"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "diff", "one", "two", "--min-size", "1G", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "-j", "diff", "one", "two", "--summary", NULL);
    assert_int_equal(r.status, 1);
    assert_null(strstr(r.out, "\"changes\":["));
    assert_non_null(strstr(r.out, "\"resident\":1"));
    tu_run_release(&r);
    tu_child_stop(&c);
    free(db);
    free(dir);
}

/* Runs diff one two with extra arguments; returns its status, output in *out (caller frees). */
static int diff_status(const char *db, char **out, const char *a1, const char *a2, const char *a3,
                       const char *a4)
{
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "-j", "diff", "one", "two", a1, a2, a3, a4, NULL);
    int status = r.status;
    if (out)
        *out = strdup(r.out);
    tu_run_release(&r);
    return status;
}

/*
 * The growth gate judges committed bytes: a 64 MiB PROT_NONE reservation (a malloc arena's
 * tail) holds nothing yet; 1 MiB of rw- anonymous memory does. --category filters the deltas
 * and the gate, not only the list.
 */
static void test_growth_gate_judges_committed(void **state)
{
    (void)state;
    char *dir;
    char *db = tu_tmppath("g.db", &dir);
    struct tu_child c;
    tu_child_start(&c);
    snap(db, c.pid, "one", "maps");
    tu_child_ok(&c, "map %llu ---", 64 * K * K);
    tu_child_ok(&c, "map %llu rw-", K * K);
    snap(db, c.pid, "two", "maps");
    assert_int_equal(diff_status(db, NULL, "--fail-on-growth", "2M", NULL, NULL), 0);
    assert_int_equal(diff_status(db, NULL, "--fail-on-growth", "512K", NULL, NULL), 1);
    assert_int_equal(diff_status(db, NULL, "--fail-on-growth", "1K", "--category", "reserve"), 0);
    assert_int_equal(diff_status(db, NULL, "--fail-on-growth", "512K", "--category", "anon"), 1);
    assert_int_equal(diff_status(db, NULL, "--fail-on-growth", "1", "--category", "heap"), 0);
    char *out = NULL;
    assert_int_equal(diff_status(db, &out, "--category", "anon", "--summary", NULL), 1);
    if (!strstr(out, "\"summary\":{\"mapped_delta\":1048576,\"committed_delta\":1048576,"))
        fail_msg("anon summary: %s", out);
    assert_null(strstr(out, "\"reserve\":"));
    free(out);
    assert_int_equal(diff_status(db, &out, "--summary", NULL, NULL, NULL), 1);
    if (!strstr(out, "\"summary\":{\"mapped_delta\":68157440,\"committed_delta\":1048576,"))
        fail_msg("summary: %s", out);
    assert_non_null(strstr(out, "\"reserve\":{\"mapped_delta\":67108864,\"committed_delta\":0,"));
    free(out);
    tu_child_stop(&c);
    free(db);
    free(dir);
}

static void test_diff_trouble(void **state)
{
    (void)state;
    char *dir;
    char *db = tu_tmppath("d.db", &dir);
    char self[16];
    snprintf(self, sizeof(self), "%d", (int)getpid());
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", self, "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    char other[4200], sel[4300];
    snprintf(other, sizeof(other), "%s/other.db", dir);
    tu_vmsnap(&r, "-d", other, "snap", "-p", self, "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);

    /* Two different processes: no shared history, both snapshots are read whole. */
    char parent[16];
    snprintf(parent, sizeof(parent), "%d", (int)getppid());
    tu_vmsnap(&r, "-d", db, "snap", "-p", parent, "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "-j", "diff", "1", "2", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "\"change\":\"new\""));
    assert_non_null(strstr(r.out, "\"change\":\"freed\""));
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", db, "diff", "first", "last~4", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "no snapshot 'last~4'"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "diff", "first", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "two snapshots"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "diff", "1", "1", "--min-size", "lots", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "invalid size 'lots'"));
    tu_run_release(&r);
    snprintf(sel, sizeof(sel), "%s:1", other);
    tu_vmsnap(&r, "-d", db, "diff", "1", sel, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "different databases"));
    /* It says what to do instead, and that works. */
    char hint[9000];
    snprintf(hint, sizeof(hint), "vmsnap -d '%s' merge '%s'", db, other);
    assert_non_null(strstr(r.err, hint));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "merge", other, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    /* FILE:SEL on both sides of one file works. */
    char sel2[4300];
    snprintf(sel2, sizeof(sel2), "%s:last", other);
    tu_vmsnap(&r, "diff", sel, sel2, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", "/nonexistent/x.db", "diff", "1", "2", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "no database at"));
    tu_run_release(&r);
    free(db);
    free(dir);
}

/* The value after key in s (a number), failing when it is not there. */
static long long num_after(const char *s, const char *key)
{
    const char *p = s ? strstr(s, key) : NULL;
    if (!p)
        fail_msg("no %s in %.300s", key, s ? s : "(nothing)");
    return strtoll(p + strlen(key), NULL, 10);
}

/*
 * Two processes of one program, laid out apart (ASLR): by address nearly everything is new and
 * freed; --by path compares like with like -- the program's libraries are the same on both
 * sides, and the 4 MiB one of them mapped and touched shows as anonymous memory that grew.
 */
static void test_by_path_across_processes(void **state)
{
    (void)state;
    struct tu_child a, b;
    tu_child_start(&a);
    tu_child_start(&b);
    uint64_t m = tu_child_ok(&b, "map %llu rw-", 4096 * K);
    tu_child_ok(&b, "touch %llu %llu", (unsigned long long)m, 4096 * K);
    char *db = tu_tmppath("by.db", NULL);
    snap(db, a.pid, "a", "smaps");
    snap(db, b.pid, "b", "smaps");
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "-j", "diff", "a", "b", "--summary", NULL);
    assert_int_equal(r.status, 1);
    long long changes = num_after(r.out, "\"changes\":");
    if (changes < 10)
        fail_msg("by address, only %lld changes between two processes", changes);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "-j", "diff", "a", "b", "--by", "path", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "\"by\":\"path\""));
    /* The anonymous row: 4 MiB more mapped, committed and resident. */
    const char *anon = strstr(r.out, "\"path\":null,\"category\":\"anon\"");
    assert_non_null(anon);
    const char *d = strstr(anon, "\"delta\":");
    assert_true(num_after(d, "\"mapped\":") >= (long long)(4096 * K));
    assert_true(num_after(d, "\"committed\":") >= (long long)(4096 * K));
    assert_true(num_after(d, "\"rss\":") >= (long long)(4000 * K));
    /* The program itself: the same mapping on both sides (listed only if its rss moved). */
    const char *prog = strstr(r.out, "vm_child\",\"category\":\"image\"");
    if (prog) {
        const char *pd = strstr(prog, "\"delta\":");
        assert_true(num_after(pd, "\"mapped\":") == 0);
        assert_true(num_after(pd, "\"committed\":") == 0);
    }
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "diff", "a", "b", "--by", "category", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "by category: "));
    assert_non_null(strstr(r.out, "[anon]"));
    tu_run_release(&r);
    /* A snapshot against itself differs nowhere. */
    tu_vmsnap(&r, "-d", db, "diff", "a", "a", "--by", "path", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "diff", "a", "b", "--by", "inode", NULL);
    tu_assert_trouble(&r, "invalid --by 'inode': expected path or category");
    tu_run_release(&r);
    tu_child_stop(&a);
    tu_child_stop(&b);
    free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_changes_are_reported_exactly),
        cmocka_unit_test(test_resident_changes_with_smaps),
        cmocka_unit_test(test_growth_gate_judges_committed),
        cmocka_unit_test(test_diff_trouble),
        cmocka_unit_test(test_by_path_across_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
