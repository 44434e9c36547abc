/* The pure maps/smaps/smaps_rollup parsers on real text captured from real processes. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "capture/maps_parse.h"

static const struct region *find_path(const struct region_list *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].path && strcmp(l->v[i].path, path) == 0)
            return &l->v[i];
    return NULL;
}

static void parse_fixture(const char *name, struct region_list *l)
{
    size_t len;
    char *text = tu_fixture(name, &len);
    struct err e = {0};
    region_list_init(l);
    int rc = strstr(name, "smaps") ? smaps_parse(text, len, l, &e) : maps_parse(text, len, l, &e);
    if (rc != 0)
        fail_msg("%s: %s", name, e.msg);
    free(text);
}

static void test_edge_fixture_every_line(void **state)
{
    (void)state;
    struct region_list l;
    parse_fixture("edge.maps", &l);
    size_t len;
    char *text = tu_fixture("edge.maps", &len);
    assert_int_equal(l.n, (size_t)tu_count_lines(text));
    free(text);
    assert_int_equal(region_list_first_disorder(&l), l.n);

    /* 8-digit addresses (below 4 GiB) and a line with no name (trailing space). */
    assert_int_equal(l.v[0].start, 0x10000);
    assert_int_equal(l.v[0].end, 0x11000);
    assert_string_equal(l.v[0].perms, "r--p");
    assert_null(l.v[0].path);

    /* 16-digit [vsyscall], above INT64_MAX. */
    const struct region *vs = &l.v[l.n - 1];
    assert_string_equal(vs->path, "[vsyscall]");
    assert_true(vs->start == 0xffffffffff600000ULL);
    assert_int_equal(vs->end - vs->start, 4096);
    assert_string_equal(vs->perms, "--xp");
    region_list_release(&l);
}

static void test_edge_fixture_names(void **state)
{
    (void)state;
    struct region_list l;
    parse_fixture("edge.maps", &l);
    const struct region *r;

    /* A space inside a file name is part of the name. */
    assert_non_null(r = find_path(&l, "/tmp/fx/with space.bin"));
    assert_int_equal(r->end - r->start, 8192);
    assert_int_equal(r->flags & REGION_DELETED, 0);

    /* The kernel prints '\n' as "\012": decoded, and flagged as possibly ambiguous. */
    assert_non_null(r = find_path(&l, "/tmp/fx/new\nline.bin"));
    assert_true(r->flags & REGION_NAME_ESCAPED);
    assert_string_equal(r->perms, "rw-s");

    /* " (deleted)" becomes a flag; the text alone cannot tell a literal suffix apart. */
    assert_non_null(r = find_path(&l, "/tmp/fx/gone.bin"));
    assert_true(r->flags & REGION_DELETED);
    assert_true(r->flags & REGION_NAME_SUFFIX);
    assert_non_null(r = find_path(&l, "/tmp/fx/literal"));
    assert_true(r->flags & REGION_NAME_SUFFIX);

    /* memfd, SysV shm and hugetlb mappings are "deleted" files in the kernel's eyes. */
    assert_non_null(r = find_path(&l, "/memfd:vmsnap-test"));
    assert_true(r->flags & REGION_DELETED);
    assert_int_equal(r->dev_major, 0);
    assert_int_equal(r->dev_minor, 1);
    assert_int_equal(r->inode, 4);
    assert_non_null(r = find_path(&l, "/SYSV00000000"));
    assert_true(r->flags & REGION_DELETED);
    assert_non_null(r = find_path(&l, "/anon_hugepage"));
    assert_int_equal(r->end - r->start, 2 * 1024 * 1024);

    /* Offsets are hex; device numbers hex; inodes decimal. */
    assert_non_null(r = find_path(&l, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
    assert_int_equal(r->offset, 0);
    assert_int_equal(r->dev_major, 0xfe);
    assert_int_equal(r->inode, 332835);
    assert_int_equal(l.v[14].offset, 0x26000);
    region_list_release(&l);
}

static void test_edge_fixture_categories(void **state)
{
    (void)state;
    struct region_list l;
    parse_fixture("edge.maps", &l);
    region_list_classify(&l);
    assert_int_equal(find_path(&l, "[heap]")->category, CAT_HEAP);
    assert_int_equal(find_path(&l, "[stack]")->category, CAT_STACK);
    assert_int_equal(find_path(&l, "[vdso]")->category, CAT_KERNEL);
    assert_int_equal(find_path(&l, "[vvar]")->category, CAT_KERNEL);
    assert_int_equal(find_path(&l, "[vsyscall]")->category, CAT_KERNEL);
    assert_int_equal(find_path(&l, "/tmp/vm_child")->category, CAT_IMAGE);
    /* Every mapping of a library is image, not only the executable one. */
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].path && strcmp(l.v[i].path, "/usr/lib/x86_64-linux-gnu/libc.so.6") == 0)
            assert_int_equal(l.v[i].category, CAT_IMAGE);
    assert_int_equal(find_path(&l, "/tmp/fx/with space.bin")->category, CAT_FILE);
    assert_int_equal(find_path(&l, "/memfd:vmsnap-test")->category, CAT_SHM);
    assert_int_equal(find_path(&l, "/SYSV00000000")->category, CAT_SHM);
    assert_int_equal(find_path(&l, "/anon_hugepage")->category, CAT_ANON);
    assert_int_equal(l.v[0].category, CAT_ANON); /* nameless r--p */
    int guards = 0;
    for (size_t i = 0; i < l.n; i++)
        if (strcmp(l.v[i].perms, "---p") == 0) {
            assert_int_equal(l.v[i].category, CAT_GUARD);
            guards++;
        }
    assert_int_equal(guards, 1);
    region_list_release(&l);
}

static void test_smaps_figures(void **state)
{
    (void)state;
    struct region_list maps, smaps;
    parse_fixture("edge.maps", &maps);
    parse_fixture("edge.smaps", &smaps);
    /* smaps describes the same regions as maps, plus figures. */
    assert_int_equal(smaps.n, maps.n);
    for (size_t i = 0; i < maps.n; i++) {
        assert_true(smaps.v[i].start == maps.v[i].start);
        assert_true(smaps.v[i].end == maps.v[i].end);
        assert_true(smaps.v[i].flags & REGION_HAS_MEM);
    }
    /* The second region: Rss 4 kB, Pss 4 kB, Private_Dirty 4 kB, Anonymous 0 kB. */
    assert_int_equal(region_extra(&smaps.v[1])->rss, 4096);
    assert_int_equal(region_extra(&smaps.v[1])->pss, 4096);
    assert_int_equal(region_extra(&smaps.v[1])->private_dirty, 4096);
    assert_int_equal(region_extra(&smaps.v[1])->anonymous, 0);
    /* Pss_Dirty must not be taken for Pss. */
    struct mem_totals t;
    region_list_mem_totals(&smaps, &t);
    assert_true(t.rss > 0);
    region_list_release(&maps);
    region_list_release(&smaps);
}

static void test_rollup(void **state)
{
    (void)state;
    size_t len;
    char *text = tu_fixture("edge.smaps_rollup", &len);
    struct mem_totals t;
    struct err e = {0};
    assert_int_equal(rollup_parse(text, len, &t, &e), 0);
    assert_int_equal(t.rss, 1584 * 1024);
    assert_int_equal(t.pss, 449 * 1024);
    assert_int_equal(t.private_dirty, 124 * 1024);
    assert_int_equal(t.anonymous, 112 * 1024);
    assert_int_equal(t.swap, 0);
    assert_int_equal(rollup_parse("", 0, &t, &e), ERR_PARSE);
    free(text);
}

static void test_torn_fixture_detected(void **state)
{
    (void)state;
    /* A real read of a target splitting and merging VMAs: line 37 starts inside line 36. */
    struct region_list l;
    parse_fixture("torn.maps", &l);
    size_t bad = region_list_first_disorder(&l);
    assert_int_equal(bad, 36);
    assert_true(l.v[36].start < l.v[35].end);
    size_t n = l.n;
    size_t dropped = region_list_sanitize(&l);
    assert_int_equal(dropped, 1);
    assert_int_equal(l.n, n - 1);
    assert_int_equal(region_list_first_disorder(&l), l.n);
    region_list_release(&l);
}

/* Takes a real line and breaks it in one way; the error names line 2. */
static void expect_error(const char *second_line, const char *what)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "563119bae000-563119baf000 r--p 00000000 fe:00 10952899    /tmp/vm_child\n%s\n",
             second_line);
    struct region_list l;
    struct err e = {0};
    region_list_init(&l);
    int rc = maps_parse(text, strlen(text), &l, &e);
    if (rc != ERR_PARSE)
        fail_msg("accepted malformed line '%s'", second_line);
    if (!strstr(e.msg, "line 2:"))
        fail_msg("error does not name line 2: %s", e.msg);
    if (what && !strstr(e.msg, what))
        fail_msg("error '%s' does not mention '%s'", e.msg, what);
    assert_int_equal(l.n, 1); /* nothing half-parsed is left behind */
    region_list_release(&l);
}

static void test_malformed_lines(void **state)
{
    (void)state;
    expect_error("563119baf000 r-xp 00001000 fe:00 10952899", "'-'");
    expect_error("zz3119baf000-563119bb0000 r-xp 00001000 fe:00 10952899", "start address");
    expect_error("563119baf000-563119bb0000 rxxp 00001000 fe:00 10952899", "perms");
    expect_error("563119baf000-563119bb0000 r-xq 00001000 fe:00 10952899", "perms");
    expect_error("563119baf000-563119bb0000 r-xp 0000g000 fe:00 10952899", "offset");
    expect_error("563119baf000-563119bb0000 r-xp 00001000 fe00 10952899", "device");
    expect_error("563119baf000-563119bb0000 r-xp 00001000 fe:00 x10952899", "inode");
    expect_error("563119baf000-563119baf000 r-xp 00001000 fe:00 10952899", "end address");
    expect_error("563119baf000-11563119bb00000000 r-xp 00001000 fe:00 0", "end address");
    expect_error("563119baf000-563119bb0000 r-xp 00001000 fe:00", "inode");
    expect_error("", NULL);
}

static void test_smaps_malformed(void **state)
{
    (void)state;
    const char *text = "00010000-00011000 r--p 00000000 00:00 0 \n"
                       "Size:                  4 kB\n"
                       "Rss:                   x kB\n";
    struct region_list l;
    struct err e = {0};
    region_list_init(&l);
    assert_int_equal(smaps_parse(text, strlen(text), &l, &e), ERR_PARSE);
    assert_non_null(strstr(e.msg, "line 3"));
    region_list_clear(&l);
    const char *orphan = "Rss:                   4 kB\n";
    assert_int_equal(smaps_parse(orphan, strlen(orphan), &l, &e), ERR_PARSE);
    assert_non_null(strstr(e.msg, "line 1"));
    /* kB that would not fit in 64 bits as bytes: an error, not a wrapped figure. */
    region_list_clear(&l);
    const char *huge = "00010000-00011000 r--p 00000000 00:00 0 \n"
                       "Rss:    18014398509481984 kB\n";
    assert_int_equal(smaps_parse(huge, strlen(huge), &l, &e), ERR_PARSE);
    assert_non_null(strstr(e.msg, "line 2"));
    region_list_clear(&l);
    const char *largest = "00010000-00011000 r--p 00000000 00:00 0 \n"
                          "Rss:    18014398509481983 kB\n";
    assert_int_equal(smaps_parse(largest, strlen(largest), &l, &e), 0);
    assert_true(region_extra(&l.v[0])->rss == 18014398509481983ULL * 1024);
    region_list_release(&l);
}

/* Parses text through smaps_parse_lines in pieces of at most piece bytes, keeping each call's
 * unused rest for the next, as the capture reads a large smaps. */
static int parse_in_pieces(const char *text, size_t len, size_t piece, struct region_list *l,
                           struct err *e)
{
    struct smaps_parser sp;
    char *buf = malloc(len + 1);
    size_t have = 0, fed = 0, used = 0;
    int rc = 0;
    smaps_parser_init(&sp, l);
    for (;;) {
        size_t n = len - fed < piece ? len - fed : piece;
        memcpy(buf + have, text + fed, n);
        have += n;
        fed += n;
        if ((rc = smaps_parse_lines(&sp, buf, have, n == 0, &used, e)) < 0 || n == 0)
            break;
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    free(buf);
    return rc;
}

static void test_smaps_in_pieces(void **state)
{
    (void)state;
    /* Every piece size, from one byte (every line split) up, gives what one whole parse gives,
     * errors with the same line number included. */
    size_t len;
    char *text = tu_fixture("edge.smaps", &len);
    struct region_list whole, part;
    struct err e = {0};
    parse_fixture("edge.smaps", &whole);
    for (size_t piece = 1; piece <= 300; piece += piece < 40 ? 1 : 37) {
        region_list_init(&part);
        if (parse_in_pieces(text, len, piece, &part, &e) != 0)
            fail_msg("pieces of %zu: %s", piece, e.msg);
        assert_int_equal(part.n, whole.n);
        for (size_t i = 0; i < whole.n; i++) {
            const struct region *a = &whole.v[i], *b = &part.v[i];
            if (a->start != b->start || a->end != b->end ||
                region_extra(a)->rss != region_extra(b)->rss ||
                region_extra(a)->pss != region_extra(b)->pss ||
                region_extra(a)->swap != region_extra(b)->swap ||
                region_extra(a)->anonymous != region_extra(b)->anonymous ||
                region_extra(a)->private_dirty != region_extra(b)->private_dirty ||
                a->flags != b->flags || (a->path == NULL) != (b->path == NULL) ||
                (a->path && strcmp(a->path, b->path) != 0))
                fail_msg("pieces of %zu: region %zu differs", piece, i);
        }
        region_list_release(&part);
    }
    const char *bad = "00010000-00011000 r--p 00000000 00:00 0 \n"
                      "Size:                  4 kB\n"
                      "Rss:                   x kB\n";
    for (size_t piece = 1; piece < 20; piece++) {
        region_list_init(&part);
        assert_int_equal(parse_in_pieces(bad, strlen(bad), piece, &part, &e), ERR_PARSE);
        assert_non_null(strstr(e.msg, "line 3"));
        region_list_release(&part);
    }
    region_list_release(&whole);
    free(text);
}

static void test_no_trailing_newline(void **state)
{
    (void)state;
    const char *text = "7ffce86c7000-7ffce86e8000 rw-p 00000000 00:00 0      [stack]";
    struct region_list l;
    struct err e = {0};
    region_list_init(&l);
    assert_int_equal(maps_parse(text, strlen(text), &l, &e), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].path, "[stack]");
    region_list_release(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_fixture_every_line),
        cmocka_unit_test(test_edge_fixture_names),
        cmocka_unit_test(test_edge_fixture_categories),
        cmocka_unit_test(test_smaps_figures),
        cmocka_unit_test(test_rollup),
        cmocka_unit_test(test_torn_fixture_detected),
        cmocka_unit_test(test_malformed_lines),
        cmocka_unit_test(test_smaps_malformed),
        cmocka_unit_test(test_smaps_in_pieces),
        cmocka_unit_test(test_no_trailing_newline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
