/* The diff engine on constructed region lists: every change kind at its true range. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"

#define K 1024ULL
#define M (1024ULL * 1024)

static struct region *add(struct region_list *l, uint64_t start, uint64_t end, const char *perms)
{
    struct region *r = region_list_push(l);
    r->start = start;
    r->end = end;
    memcpy(r->perms, perms, 5);
    return r;
}

static struct region *add_file(struct region_list *l, uint64_t start, uint64_t end,
                               const char *perms, const char *path, uint64_t inode, uint64_t offset)
{
    struct region *r = add(l, start, end, perms);
    r->path = region_list_intern(l, path, strlen(path));
    r->path_len = (uint32_t)strlen(path);
    r->inode = inode;
    r->offset = offset;
    r->dev_major = 0xfe;
    r->category = CAT_FILE;
    return r;
}

struct fx {
    struct region_list a, b;
    struct diff_result d;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    region_list_init(&f->a);
    region_list_init(&f->b);
    diff_result_init(&f->d);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    region_list_release(&f->a);
    region_list_release(&f->b);
    diff_result_release(&f->d);
    free(f);
    return 0;
}

/* Diffs a and b, and checks the engine's invariants on the result. */
static void run(struct fx *f)
{
    char why[256];
    diff_result_release(&f->d);
    diff_regions(&f->a, &f->b, &f->d);
    if (diff_check(&f->a, &f->b, &f->d, why, sizeof(why)) < 0)
        fail_msg("diff invariant broken: %s", why);
}

static void expect(const struct fx *f, size_t i, int kind, uint64_t start, uint64_t end)
{
    if (i >= f->d.n)
        fail_msg("expected change %zu (%s), got only %zu", i, diff_kind_name(kind), f->d.n);
    const struct diff_change *c = &f->d.v[i];
    if (c->kind != kind || c->start != start || c->end != end)
        fail_msg("change %zu: got %s %llx-%llx, expected %s %llx-%llx", i, diff_kind_name(c->kind),
                 (unsigned long long)c->start, (unsigned long long)c->end, diff_kind_name(kind),
                 (unsigned long long)start, (unsigned long long)end);
}

static void test_identical_and_empty(void **state)
{
    struct fx *f = *state;
    run(f);
    assert_int_equal(f->d.n, 0);
    add(&f->a, 0x1000, 0x3000, "r--p");
    add_file(&f->a, 0x5000, 0x6000, "r-xp", "/lib/x.so", 7, 0);
    region_list_copy(&f->b, &f->a);
    run(f);
    assert_int_equal(f->d.n, 0);
    /* Everything new, everything freed. */
    region_list_clear(&f->a);
    run(f);
    assert_int_equal(f->d.n, 2);
    expect(f, 0, DIFF_NEW, 0x1000, 0x3000);
    expect(f, 1, DIFF_NEW, 0x5000, 0x6000);
    region_list_copy(&f->a, &f->b);
    region_list_clear(&f->b);
    run(f);
    assert_int_equal(f->d.n, 2);
    expect(f, 0, DIFF_FREED, 0x1000, 0x3000);
    expect(f, 1, DIFF_FREED, 0x5000, 0x6000);
}

static void test_new_and_freed(void **state)
{
    struct fx *f = *state;
    add(&f->a, 0x10000, 0x20000, "rw-p");
    add(&f->a, 0x40000, 0x50000, "rw-p");
    add(&f->b, 0x10000, 0x20000, "rw-p");
    add(&f->b, 0x30000, 0x38000, "r--p");
    run(f);
    assert_int_equal(f->d.n, 2);
    expect(f, 0, DIFF_NEW, 0x30000, 0x38000);
    expect(f, 1, DIFF_FREED, 0x40000, 0x50000);
    assert_int_equal(diff_mapped_delta(&f->d.v[0]), 0x8000);
    assert_int_equal(diff_mapped_delta(&f->d.v[1]), -0x10000);
}

static void test_mprotect_middle_is_one_reprotect(void **state)
{
    struct fx *f = *state;
    uint64_t base = 0x7f0000000000ULL;
    add(&f->a, base, base + M, "rw-p");
    add(&f->b, base, base + 256 * K, "rw-p");
    add(&f->b, base + 256 * K, base + 320 * K, "r--p");
    add(&f->b, base + 320 * K, base + M, "rw-p");
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_REPROTECTED, base + 256 * K, base + 320 * K);
    assert_string_equal(f->d.v[0].before->perms, "rw-p");
    assert_string_equal(f->d.v[0].now->perms, "r--p");
    /* And merged back: the same 64 KiB, nothing else. */
    struct region_list t = f->a;
    f->a = f->b;
    f->b = t;
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_REPROTECTED, base + 256 * K, base + 320 * K);
    assert_string_equal(f->d.v[0].now->perms, "rw-p");
}

static void test_munmap_middle_is_one_freed(void **state)
{
    struct fx *f = *state;
    add(&f->a, 0x100000, 0x200000, "rw-p");
    add(&f->b, 0x100000, 0x140000, "rw-p");
    add(&f->b, 0x150000, 0x200000, "rw-p");
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_FREED, 0x140000, 0x150000);
}

static void test_grow_and_shrink_in_place(void **state)
{
    struct fx *f = *state;
    /* brk: [heap] grows at its end; mremap shrinks another region; the stack grows down. */
    struct region *h = add(&f->a, 0x555555000000ULL, 0x555555021000ULL, "rw-p");
    h->path = "[heap]";
    h->path_len = 6;
    h->category = CAT_HEAP;
    add(&f->a, 0x7f0000000000ULL, 0x7f0000100000ULL, "rw-p");
    struct region *s = add(&f->a, 0x7ffff0000000ULL, 0x7ffff0021000ULL, "rw-p");
    s->path = "[stack]";
    s->path_len = 7;
    h = add(&f->b, 0x555555000000ULL, 0x555555042000ULL, "rw-p");
    h->path = "[heap]";
    h->path_len = 6;
    h->category = CAT_HEAP;
    add(&f->b, 0x7f0000000000ULL, 0x7f0000080000ULL, "rw-p");
    s = add(&f->b, 0x7fffefff0000ULL, 0x7ffff0021000ULL, "rw-p");
    s->path = "[stack]";
    s->path_len = 7;
    run(f);
    assert_int_equal(f->d.n, 3);
    expect(f, 0, DIFF_GROWN, 0x555555000000ULL, 0x555555042000ULL);
    assert_int_equal(f->d.v[0].delta, 0x21000);
    assert_true(f->d.v[0].before->end == 0x555555021000ULL);
    expect(f, 1, DIFF_SHRUNK, 0x7f0000000000ULL, 0x7f0000080000ULL);
    assert_int_equal(f->d.v[1].delta, -0x80000);
    expect(f, 2, DIFF_GROWN, 0x7fffefff0000ULL, 0x7ffff0021000ULL);
    assert_int_equal(f->d.v[2].delta, 0x10000);
}

static void test_thread_arena_commits_more(void **state)
{
    struct fx *f = *state;
    /* A glibc arena: rw part at the bottom of a 64 MiB PROT_NONE reservation grows by mprotect. */
    uint64_t a = 0x7ff000000000ULL;
    add(&f->a, a, a + 132 * K, "rw-p");
    add(&f->a, a + 132 * K, a + 64 * M, "---p")->category = CAT_GUARD;
    add(&f->b, a, a + 264 * K, "rw-p");
    add(&f->b, a + 264 * K, a + 64 * M, "---p")->category = CAT_GUARD;
    run(f);
    assert_int_equal(f->d.n, 2);
    expect(f, 0, DIFF_GROWN, a, a + 264 * K);
    assert_int_equal(f->d.v[0].delta, 132 * K);
    expect(f, 1, DIFF_SHRUNK, a + 264 * K, a + 64 * M);
    assert_int_equal(f->d.v[1].delta, -(int64_t)(132 * K));
    /* The grown and shrunk bytes cancel: the mapped size did not change. */
    assert_int_equal(diff_mapped_delta(&f->d.v[0]) + diff_mapped_delta(&f->d.v[1]), 0);
}

/*
 * Five rw- pages of one mapping made r--/r--/rw-/r--/rw-, then mprotect(x+P, 3P, rw-): two
 * pages were re-protected r-- -> rw-, and that is all. No arena rule applies: nothing was
 * no-access.
 */
static void test_mprotect_over_a_protection_mix(void **state)
{
    struct fx *f = *state;
    const uint64_t x = 0x7f0000000000ULL, P = 4 * K;
    add(&f->a, x, x + 2 * P, "r--p");
    add(&f->a, x + 2 * P, x + 3 * P, "rw-p");
    add(&f->a, x + 3 * P, x + 4 * P, "r--p");
    add(&f->a, x + 4 * P, x + 5 * P, "rw-p");
    add(&f->b, x, x + P, "r--p");
    add(&f->b, x + P, x + 5 * P, "rw-p");
    run(f);
    assert_int_equal(f->d.n, 2);
    expect(f, 0, DIFF_REPROTECTED, x + P, x + 2 * P);
    expect(f, 1, DIFF_REPROTECTED, x + 3 * P, x + 4 * P);
}

/* The arena rule needs both halves: a no-access reservation that shrank and an accessible
 * region that grew into exactly those bytes. */
static void test_arena_rule_needs_a_reservation(void **state)
{
    struct fx *f = *state;
    const uint64_t x = 0x7f0000000000ULL, P = 4 * K;
    /* r-- where the reservation would be: re-protection, not growth. */
    add(&f->a, x, x + 2 * P, "rw-p");
    add(&f->a, x + 2 * P, x + 8 * P, "r--p");
    add(&f->b, x, x + 4 * P, "rw-p");
    add(&f->b, x + 4 * P, x + 8 * P, "r--p");
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_REPROTECTED, x + 2 * P, x + 4 * P);
}

/*
 * A page-level model of an address space, changed by random mmap, munmap, mprotect, in-place
 * growth and arena commits, turned into region lists the way the kernel shows them (adjacent
 * pages with the same attributes merged; sometimes left split, as a list of changed intervals
 * can be). Every diff of two states must pass diff_check, and a state diffed with itself must
 * show nothing.
 */
#define NPAGES 40
#define PAGE   4096ULL
#define BASE   0x10000000ULL

struct page {
    int mapped, perm, backing; /* backing: 0 anonymous, else a file */
    uint64_t off;              /* file offset, pages */
};

static const char *const perm_names[] = {"---p", "r--p", "rw-p", "r-xp"};
static const char *const file_names[] = {NULL, "/usr/lib/one.so", "/srv/data.bin"};

static void model_to_list(const struct page *pg, struct region_list *l, int split)
{
    region_list_clear(l);
    for (int i = 0; i < NPAGES;) {
        if (!pg[i].mapped) {
            i++;
            continue;
        }
        int j = i + 1;
        while (j < NPAGES && pg[j].mapped && pg[j].perm == pg[i].perm &&
               pg[j].backing == pg[i].backing &&
               (!pg[i].backing || pg[j].off == pg[i].off + (uint64_t)(j - i)) &&
               !(split && rand() % 4 == 0))
            j++;
        struct region *r =
            add(l, BASE + (uint64_t)i * PAGE, BASE + (uint64_t)j * PAGE, perm_names[pg[i].perm]);
        if (pg[i].backing) {
            const char *name = file_names[pg[i].backing];
            r->path = region_list_intern(l, name, strlen(name));
            r->path_len = (uint32_t)strlen(name);
            r->inode = (uint64_t)pg[i].backing;
            r->dev_major = 8;
            r->offset = pg[i].off * PAGE;
        }
        i = j;
    }
}

static void model_step(struct page *pg)
{
    int a = rand() % NPAGES, len = 1 + rand() % 8;
    if (a + len > NPAGES)
        len = NPAGES - a;
    switch (rand() % 5) {
    case 0: { /* mmap (MAP_FIXED) */
        int perm = rand() % 4, backing = rand() % 3;
        uint64_t off = (uint64_t)(rand() % 16);
        for (int k = 0; k < len; k++)
            pg[a + k] = (struct page){1, perm, backing, off + (uint64_t)k};
        break;
    }
    case 1: /* munmap */
        for (int k = 0; k < len; k++)
            pg[a + k].mapped = 0;
        break;
    case 2: { /* mprotect of what is mapped */
        int perm = rand() % 4;
        for (int k = 0; k < len; k++)
            pg[a + k].perm = perm;
        break;
    }
    case 3: /* grow in place: the page after a mapped page takes its attributes */
        for (int k = a; k + 1 < NPAGES && k < a + len; k++)
            if (pg[k].mapped && !pg[k + 1].mapped)
                pg[k + 1] = (struct page){1, pg[k].perm, pg[k].backing, pg[k].off + 1};
        break;
    case 4: /* an arena commits: rw- anonymous takes pages from a ---p reservation after it */
        for (int k = a; k + 1 < NPAGES && k < a + len; k++)
            if (pg[k].mapped && pg[k].perm == 2 && !pg[k].backing && pg[k + 1].mapped &&
                pg[k + 1].perm == 0 && !pg[k + 1].backing)
                pg[k + 1].perm = 2;
        break;
    }
}

static void test_random_layouts_keep_the_invariants(void **state)
{
    struct fx *f = *state;
    struct page before[NPAGES], after[NPAGES];
    char why[256];
    srand(20261123);
    memset(before, 0, sizeof(before));
    size_t changes = 0;
    for (int iter = 0; iter < 20000; iter++) {
        if (iter % 50 == 0)
            memset(before, 0, sizeof(before));
        for (int k = rand() % 4; k >= 0; k--)
            model_step(before);
        memcpy(after, before, sizeof(after));
        for (int k = rand() % 4; k >= 0; k--)
            model_step(after);
        model_to_list(before, &f->a, iter % 5 == 0);
        model_to_list(after, &f->b, iter % 7 == 0);
        run(f);
        changes += f->d.n;
        diff_result_release(&f->d);
        diff_regions(&f->a, &f->a, &f->d);
        if (f->d.n)
            fail_msg("iteration %d: a layout diffed with itself shows %zu changes", iter, f->d.n);
        if (diff_check(&f->a, &f->a, &f->d, why, sizeof(why)) < 0)
            fail_msg("iteration %d: %s", iter, why);
        memcpy(before, after, sizeof(before));
    }
    assert_true(changes > 20000);
}

static void test_split_into_three_is_not_growth(void **state)
{
    struct fx *f = *state;
    /* Splitting keeps starts and ends shared with the old region: no grown or shrunk. */
    add(&f->a, 0x10000000, 0x10300000, "rw-p");
    add(&f->b, 0x10000000, 0x10100000, "rw-p");
    add(&f->b, 0x10100000, 0x10200000, "---p");
    add(&f->b, 0x10200000, 0x10300000, "rw-p");
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_REPROTECTED, 0x10100000, 0x10200000);
}

static void test_two_adjacent_changes(void **state)
{
    struct fx *f = *state;
    add(&f->a, 0x10000000, 0x10400000, "rw-p");
    add(&f->b, 0x10000000, 0x10100000, "rw-p");
    add(&f->b, 0x10100000, 0x10200000, "r--p");
    add(&f->b, 0x10200000, 0x10300000, "---p");
    add(&f->b, 0x10300000, 0x10400000, "rw-p");
    run(f);
    assert_int_equal(f->d.n, 2);
    expect(f, 0, DIFF_REPROTECTED, 0x10100000, 0x10200000);
    expect(f, 1, DIFF_REPROTECTED, 0x10200000, 0x10300000);
    assert_string_equal(f->d.v[1].now->perms, "---p");
}

static void test_remapped(void **state)
{
    struct fx *f = *state;
    add_file(&f->a, 0x20000000, 0x20004000, "r--p", "/data/a.bin", 11, 0);
    add_file(&f->a, 0x20004000, 0x20008000, "r--p", "/data/c.bin", 12, 0);
    add_file(&f->b, 0x20000000, 0x20004000, "r--p", "/data/b.bin", 21, 0);
    /* Same file, other offset: also remapped. */
    add_file(&f->b, 0x20004000, 0x20008000, "r--p", "/data/c.bin", 12, 0x4000);
    run(f);
    assert_int_equal(f->d.n, 2);
    expect(f, 0, DIFF_REMAPPED, 0x20000000, 0x20004000);
    assert_string_equal(f->d.v[0].before->path, "/data/a.bin");
    assert_string_equal(f->d.v[0].now->path, "/data/b.bin");
    expect(f, 1, DIFF_REMAPPED, 0x20004000, 0x20008000);
}

static void test_resident(void **state)
{
    struct fx *f = *state;
    struct region *r = add(&f->a, 0x30000000, 0x30100000, "rw-p");
    r->flags |= REGION_HAS_MEM;
    region_extra_set(&f->a, r)->rss = 8 * K;
    r = add(&f->b, 0x30000000, 0x30100000, "rw-p");
    r->flags |= REGION_HAS_MEM;
    region_extra_set(&f->b, r)->rss = 72 * K;
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_RESIDENT, 0x30000000, 0x30100000);
    assert_int_equal(f->d.v[0].delta, 64 * K);
    /* Without figures on one side, nothing can be said about residency. */
    f->a.v[0].flags &= ~(uint32_t)REGION_HAS_MEM;
    run(f);
    assert_int_equal(f->d.n, 0);
}

static void test_above_2_63(void **state)
{
    struct fx *f = *state;
    struct region *v = add(&f->a, 0xffffffffff600000ULL, 0xffffffffff601000ULL, "--xp");
    v->path = "[vsyscall]";
    v->path_len = 10;
    region_list_copy(&f->b, &f->a);
    run(f);
    assert_int_equal(f->d.n, 0);
    /* A change up there is found at its exact range, and sorts after everything below. */
    region_list_clear(&f->b);
    add(&f->b, 0x1000, 0x2000, "r--p");
    v = add(&f->b, 0xffffffffff600000ULL, 0xffffffffff601000ULL, "r-xp");
    v->path = "[vsyscall]";
    v->path_len = 10;
    run(f);
    assert_int_equal(f->d.n, 2);
    expect(f, 0, DIFF_NEW, 0x1000, 0x2000);
    expect(f, 1, DIFF_REPROTECTED, 0xffffffffff600000ULL, 0xffffffffff601000ULL);
}

static struct region *win(struct region_list *l, uint64_t start, uint64_t end, const char *perms,
                          int state, uint64_t alloc_base)
{
    struct region *r = add(l, start, end, perms);
    r->flags |= REGION_HAS_WIN;
    struct region_extra *x = region_extra_set(l, r);
    x->state = (uint8_t)state;
    x->type = WIN_TYPE_PRIVATE;
    x->alloc_base = alloc_base;
    return r;
}

static void test_windows_state_changes(void **state)
{
    struct fx *f = *state;
    win(&f->a, 0x10000, 0x50000, "---p", WIN_STATE_RESERVE, 0x10000);
    win(&f->b, 0x10000, 0x20000, "rw-p", WIN_STATE_COMMIT, 0x10000);
    win(&f->b, 0x20000, 0x50000, "---p", WIN_STATE_RESERVE, 0x10000);
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_COMMITTED, 0x10000, 0x20000);
    struct region_list t = f->a;
    f->a = f->b;
    f->b = t;
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_DECOMMITTED, 0x10000, 0x20000);
}

static void test_windows_commit_next_to_commit(void **state)
{
    struct fx *f = *state;
    /* Committing the pages after a committed block: the block's region grows and the
     * reservation's shrinks, but on Windows that is one `committed` change of those pages. */
    win(&f->a, 0x100000, 0x110000, "rw-p", WIN_STATE_COMMIT, 0x100000);
    win(&f->a, 0x110000, 0x200000, "---p", WIN_STATE_RESERVE, 0x100000);
    win(&f->b, 0x100000, 0x130000, "rw-p", WIN_STATE_COMMIT, 0x100000);
    win(&f->b, 0x130000, 0x200000, "---p", WIN_STATE_RESERVE, 0x100000);
    run(f);
    assert_int_equal(f->d.n, 1);
    expect(f, 0, DIFF_COMMITTED, 0x110000, 0x130000);
}

int main(int argc, char **argv)
{
    /* One test by name: test_x NAME (a glob). */
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identical_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_and_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mprotect_middle_is_one_reprotect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_munmap_middle_is_one_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grow_and_shrink_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_arena_commits_more, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_into_three_is_not_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_adjacent_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resident, setup, teardown),
        cmocka_unit_test_setup_teardown(test_above_2_63, setup, teardown),
        cmocka_unit_test_setup_teardown(test_windows_state_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_windows_commit_next_to_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mprotect_over_a_protection_mix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_rule_needs_a_reservation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_layouts_keep_the_invariants, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
