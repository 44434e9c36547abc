/* The region list: ordering checks, sanitizing torn reads, copying, comparing. */
#include "testutil.h"

#include <string.h>

#include "capture/maps_parse.h"
#include "model/region.h"

static void add(struct region_list *l, uint64_t start, uint64_t end, const char *perms,
                const char *path)
{
    struct region *r = region_list_push(l);
    r->start = start;
    r->end = end;
    memcpy(r->perms, perms, 5);
    if (path) {
        r->path = region_list_intern(l, path, strlen(path));
        r->path_len = (uint32_t)strlen(path);
    }
}

static void test_disorder(void **state)
{
    (void)state;
    struct region_list l;
    region_list_init(&l);
    add(&l, 0x1000, 0x2000, "r--p", NULL);
    add(&l, 0x2000, 0x3000, "rw-p", NULL);
    assert_int_equal(region_list_first_disorder(&l), 2);
    add(&l, 0x1800, 0x4000, "rw-p", NULL); /* goes backwards */
    assert_int_equal(region_list_first_disorder(&l), 2);
    region_list_clear(&l);
    add(&l, 0x1000, 0x1000, "rw-p", NULL); /* empty */
    assert_int_equal(region_list_first_disorder(&l), 0);
    region_list_release(&l);
}

static void test_sanitize_keeps_disjoint_sorted(void **state)
{
    (void)state;
    struct region_list l;
    region_list_init(&l);
    add(&l, 0x5000, 0x6000, "r--p", NULL);
    add(&l, 0x1000, 0x2000, "r--p", NULL);
    add(&l, 0x1800, 0x2800, "rw-p", NULL);
    add(&l, 0xffffffffff600000ULL, 0xffffffffff601000ULL, "--xp", "[vsyscall]");
    assert_int_equal(region_list_sanitize(&l), 1);
    assert_int_equal(l.n, 3);
    assert_true(l.v[0].start == 0x1000 && l.v[1].start == 0x5000);
    assert_true(l.v[2].start == 0xffffffffff600000ULL); /* unsigned order: last */
    region_list_release(&l);
}

static void test_copy_is_deep(void **state)
{
    (void)state;
    struct region_list a, b;
    region_list_init(&a);
    region_list_init(&b);
    add(&a, 0x1000, 0x2000, "r--p", "/lib/x.so");
    region_list_copy(&b, &a);
    assert_ptr_not_equal(a.v[0].path, b.v[0].path);
    region_list_release(&a);
    assert_string_equal(b.v[0].path, "/lib/x.so");
    assert_int_equal(b.v[0].path_len, 9);
    region_list_release(&b);
}

static void test_same_layout(void **state)
{
    (void)state;
    struct region_list l;
    region_list_init(&l);
    add(&l, 0x1000, 0x2000, "r--p", "/a");
    add(&l, 0x1000, 0x2000, "r--p", "/a");
    assert_true(region_same_layout(&l.v[0], &l.v[1]));
    region_extra_set(&l, &l.v[1])->rss = 4096;
    l.v[1].flags |= REGION_HAS_MEM;
    assert_true(region_same_layout(&l.v[0], &l.v[1])); /* figures are not layout */
    assert_false(region_same_mem(&l.v[0], &l.v[1]));
    l.v[1].perms[1] = 'w';
    assert_false(region_same_layout(&l.v[0], &l.v[1]));
    l.v[1].perms[1] = '-';
    l.v[1].flags |= REGION_DELETED;
    assert_false(region_same_layout(&l.v[0], &l.v[1]));
    l.v[1].flags &= ~(uint32_t)REGION_DELETED;
    l.v[1].path = region_list_intern(&l, "/b", 2);
    assert_false(region_same_layout(&l.v[0], &l.v[1]));
    region_list_release(&l);
}

static void test_arena_survives_many_names(void **state)
{
    (void)state;
    struct region_list l;
    char name[64];
    region_list_init(&l);
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof(name), "/usr/lib/lib%05d.so", i);
        add(&l, (uint64_t)(i + 1) * 0x1000, (uint64_t)(i + 2) * 0x1000, "r--p", name);
    }
    for (int i = 0; i < 20000; i += 997) {
        snprintf(name, sizeof(name), "/usr/lib/lib%05d.so", i);
        assert_string_equal(l.v[i].path, name);
    }
    /* A name longer than an arena chunk gets a chunk of its own. */
    static char big[100000];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    add(&l, 0x100000000ULL, 0x100001000ULL, "r--p", big);
    assert_int_equal(strlen(l.v[l.n - 1].path), sizeof(big) - 1);
    region_list_release(&l);
}

static void assert_owner(const struct region *r, const char *owner, int category)
{
    if (owner) {
        assert_non_null(r->owner);
        assert_int_equal(r->owner_len, strlen(owner));
        assert_memory_equal(r->owner, owner, strlen(owner));
    } else {
        assert_null(r->owner);
    }
    assert_int_equal(r->category, category);
}

/* No-access memory is a guard when it is a fence of at most 1 MiB directly beside accessible
 * memory, and a reservation otherwise (a JVM's heap reserve, a stack guard's far side). */
static void test_fences_and_reservations(void **state)
{
    (void)state;
    struct region_list l;
    region_list_init(&l);
    add(&l, 0x10000000, 0x10001000, "---p", NULL); /* 0: a stack guard, below its stack */
    add(&l, 0x10001000, 0x10081000, "rw-p", NULL);
    add(&l, 0x10081000, 0x10181000, "---p", NULL); /* 2: 1 MiB above it: still a fence */
    add(&l, 0x30000000, 0x30001000, "rw-p", NULL);
    add(&l, 0x30001000, 0x30201000, "---p", NULL); /* 4: 2 MiB beside: a reservation */
    add(&l, 0x40000000, 0x40001000, "---p", NULL); /* 5: one page beside nothing */
    add(&l, 0x40002000, 0x40003000, "r--p", NULL);
    add(&l, 0x50000000, 0x50001000, "---p", NULL); /* 7: beside no-access only */
    add(&l, 0x50001000, 0x50002000, "---p", NULL);
    add(&l, 0x60000000, 0x60001000, "rw-p", NULL);
    add(&l, 0x60001000, 0x60002000, "---p", NULL); /* 10: above accessible memory */
    region_list_classify(&l);
    static const int want[] = {CAT_GUARD,   CAT_ANON,    CAT_GUARD, CAT_ANON,
                               CAT_RESERVE, CAT_RESERVE, CAT_ANON,  CAT_RESERVE,
                               CAT_RESERVE, CAT_ANON,    CAT_GUARD};
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].category != want[i])
            fail_msg("region %zu: %s, not %s", i, region_category_name(l.v[i].category),
                     region_category_name(want[i]));
    region_list_release(&l);
}

/* Owners the list itself shows: glibc arenas (split or whole), named anonymous memory. */
static void test_owners_from_the_list(void **state)
{
    (void)state;
    const uint64_t M64 = 64ULL << 20;
    struct region_list l;
    region_list_init(&l);
    add(&l, 0x7f0000000000, 0x7f0000021000, "rw-p", NULL);       /* arena in use */
    add(&l, 0x7f0000021000, 0x7f0000000000 + M64, "---p", NULL); /* its reserve */
    add(&l, 0x7f0010000000, 0x7f0010000000 + M64, "rw-p", NULL); /* a whole arena */
    add(&l, 0x7f0020000000, 0x7f0020021000, "rw-p", NULL);       /* aligned, no tail */
    add(&l, 0x7f0030001000, 0x7f0030022000, "rw-p", NULL);       /* not aligned */
    add(&l, 0x7f0030022000, 0x7f0030001000 + M64, "---p", NULL);
    add(&l, 0x7f0040000000, 0x7f0040021000, "rw-p", NULL); /* tail too short */
    add(&l, 0x7f0040021000, 0x7f0040000000 + M64 - 4096, "---p", NULL);
    add(&l, 0x7f0050000000, 0x7f0050010000, "rw-p", "[anon:jit cache]");
    add(&l, 0x7f0060000000, 0x7f0060010000, "rw-p", "[anon:]");
    region_list_classify(&l);
    assert_owner(&l.v[0], "malloc arena", CAT_HEAP);
    assert_owner(&l.v[1], "malloc arena", CAT_RESERVE);
    assert_int_equal(region_committed(&l.v[1]), 0); /* the arena's reserve: never committed */
    assert_owner(&l.v[2], "malloc arena", CAT_HEAP);
    assert_owner(&l.v[3], NULL, CAT_ANON);
    assert_owner(&l.v[4], NULL, CAT_ANON);
    assert_owner(&l.v[5], NULL, CAT_RESERVE); /* no-access beyond a fence's size */
    assert_owner(&l.v[6], NULL, CAT_ANON);
    assert_owner(&l.v[7], NULL, CAT_RESERVE);
    assert_owner(&l.v[8], "jit cache", CAT_ANON);
    assert_owner(&l.v[9], NULL, CAT_ANON);
    /* The owner is part of what a region is; a copy keeps it. */
    struct region_list c;
    region_list_init(&c);
    region_list_copy(&c, &l);
    assert_owner(&c.v[8], "jit cache", CAT_ANON);
    assert_true(region_same_layout(&c.v[8], &l.v[8]));
    region_set_owner(&c, &c.v[8], "other", 5);
    assert_false(region_same_layout(&c.v[8], &l.v[8]));
    region_list_release(&c);
    region_list_release(&l);
}

static void test_category_names_round_trip(void **state)
{
    (void)state;
    for (int c = 0; c < CAT_COUNT; c++)
        assert_int_equal(region_category_parse(region_category_name(c)), c);
    assert_int_equal(region_category_parse("heapz"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disorder),
        cmocka_unit_test(test_sanitize_keeps_disjoint_sorted),
        cmocka_unit_test(test_copy_is_deep),
        cmocka_unit_test(test_same_layout),
        cmocka_unit_test(test_arena_survives_many_names),
        cmocka_unit_test(test_category_names_round_trip),
        cmocka_unit_test(test_owners_from_the_list),
        cmocka_unit_test(test_fences_and_reservations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
