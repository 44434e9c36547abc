/* The Linux capture backend on live processes whose mappings are known. */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture/capture.h"
#include "capture/linux_capture.h"

static const struct region *find(const struct region_list *l, uint64_t start)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].start == start)
            return &l->v[i];
    return NULL;
}

static void test_walk_matches_proc_maps(void **state)
{
    (void)state;
    struct tu_child c;
    char *dir = tu_tmpdir();
    tu_child_start(&c);
    /* Fixed addresses far from other mappings, so the kernel merges them with nothing. */
    uint64_t anon = tu_child_ok(&c, "mapat 0x200000000 1048576 rw-");
    /* A fence beside accessible memory, and a reservation beside nothing. */
    tu_child_ok(&c, "mapat 0x210000000 65536 r--");
    uint64_t guard = tu_child_ok(&c, "mapat 0x210010000 65536 ---");
    uint64_t reserve = tu_child_ok(&c, "mapat 0x220000000 65536 ---");
    uint64_t nl = tu_child_ok(&c, "mapfile %s/new\\nline.bin 4096 rw- s", dir);
    uint64_t lit = tu_child_ok(&c, "mapfile %s/literal\\s(deleted) 4096 r-- p", dir);
    uint64_t gone = tu_child_ok(&c, "mapfile %s/gone.bin 8192 rw- s", dir);
    tu_child_ok(&c, "unlink %s/gone.bin", dir);
    uint64_t memfd = tu_child_ok(&c, "memfd leak-hunt 65536");

    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    const struct capture_target *t = capture_get_target(cap);
    assert_int_equal(t->pid, c.pid);
    assert_non_null(strstr(t->exe, "vm_child"));
    assert_true(t->start_time > 0);
    assert_int_equal(strlen(t->boot_id), 36);
    if (capture_walk(cap, DETAIL_MAPS, &l, &info, &e) != 0)
        fail_msg("walk: %s", e.msg);

    struct tu_range *lines;
    size_t n = tu_proc_maps(c.pid, &lines);
    assert_int_equal(l->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(l->v[i].start == lines[i].start);
        assert_true(l->v[i].end == lines[i].end);
        assert_string_equal(l->v[i].perms, lines[i].perms);
    }
    tu_ranges_free(lines, n);

    const struct region *r;
    assert_non_null(r = find(l, anon));
    assert_int_equal(r->end - r->start, 1048576);
    assert_int_equal(r->category, CAT_ANON);
    assert_non_null(r = find(l, guard));
    assert_int_equal(r->category, CAT_GUARD);
    assert_non_null(r = find(l, reserve));
    assert_int_equal(r->category, CAT_RESERVE);
    char want[4200];
    /* The true name, newline and all (PROCMAP_QUERY gives it raw). */
    snprintf(want, sizeof(want), "%s/new\nline.bin", dir);
    assert_non_null(r = find(l, nl));
    assert_string_equal(r->path, want);
    assert_int_equal(r->flags & REGION_DELETED, 0);
    /* A file really named "... (deleted)" keeps its name and is not deleted. */
    snprintf(want, sizeof(want), "%s/literal (deleted)", dir);
    assert_non_null(r = find(l, lit));
    assert_string_equal(r->path, want);
    assert_int_equal(r->flags & REGION_DELETED, 0);
    /* An unlinked file is flagged, its name without the suffix. */
    snprintf(want, sizeof(want), "%s/gone.bin", dir);
    assert_non_null(r = find(l, gone));
    assert_string_equal(r->path, want);
    assert_true(r->flags & REGION_DELETED);
    assert_non_null(r = find(l, memfd));
    assert_string_equal(r->path, "/memfd:leak-hunt");
    assert_true(r->flags & REGION_DELETED);
    assert_int_equal(r->category, CAT_SHM);
    /* [vsyscall] is there, last. */
    assert_true(l->v[l->n - 1].start == 0xffffffffff600000ULL);

    /* Nothing changed: the second walk says so and returns the same regions. */
    const struct region_list *l2;
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l2, &info, &e), 0);
    assert_true(info.unchanged);
    assert_int_equal(l2->n, n);
    /* A change is seen. */
    uint64_t more = tu_child_ok(&c, "mapat 0x230000000 8192 r--");
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l2, &info, &e), 0);
    assert_false(info.unchanged);
    assert_int_equal(l2->n, n + 1);
    assert_non_null(find(l2, more));
    capture_close(cap);
    tu_child_stop(&c);
    free(dir);
}

/* The walk of a new capture of the same process: what the long-lived one must agree with. */
static void assert_walk_fresh(const struct region_list *l, int64_t pid)
{
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *f;
    struct capture_info info;
    assert_int_equal(capture_open(&cap, pid, &e), 0);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &f, &info, &e), 0);
    assert_int_equal(l->n, f->n);
    for (size_t i = 0; i < f->n; i++)
        if (!region_same_layout(&l->v[i], &f->v[i]))
            fail_msg("region %zu differs from a fresh walk's", i);
    capture_close(cap);
}

static void test_siphash_reference_vectors(void **state)
{
    (void)state;
    /* The reference's 128-bit tags (key 00..0f, message 00..len-1): empty, a tail alone, one
     * block, a block and a 7-byte tail, eight blocks less one byte. */
    static const struct {
        size_t len;
        const char *tag; /* its 16 bytes in hex, as the reference prints them */
    } want[] = {
        {0, "a3817f04ba25a8e66df67214c7550293"},  {1, "da87c1d86b99af44347659119b22fc45"},
        {8, "3b62a9ba6258f5610f83e264f31497b4"},  {15, "5493e99933b0a8117e08ec0f97cfc3d9"},
        {63, "5150d1772f50834a503e069a973fbd7c"},
    };
    unsigned char key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        struct siphash_tag t = siphash128(key, msg, want[k].len);
        char got[33];
        for (int b = 0; b < 16; b++)
            snprintf(got + 2 * b, 3, "%02x",
                     (unsigned)((b < 8 ? t.lo : t.hi) >> (8 * (b % 8))) & 0xff);
        if (strcmp(got, want[k].tag) != 0)
            fail_msg("the tag of %zu bytes is not the reference's", want[k].len);
    }
}

static void test_long_text_compared_by_hash(void **state)
{
    (void)state;
    /* A steady tick knows the new maps text for the last one by its length and keyed hash:
     * changes deep in a long text (20,000 regions, ~1.4 MB), one that keeps its length, ones
     * that shorten it, and going back to an earlier layout must all be seen, and an unchanged
     * text must be known as unchanged. */
    struct tu_child c;
    tu_child_start(&c);
    uint64_t base = tu_child_ok(&c, "many 20000");
    long page = sysconf(_SC_PAGESIZE);
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    size_t n = l->n;
    assert_true(n > 20000);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_true(info.unchanged);
    assert_int_equal(l->n, n);

    /* Page 15000 (read-write between two read-only ones... and the reverse): three regions
     * become one, deep in the text. */
    unsigned long long at = base + 15000ULL * (unsigned long long)page;
    tu_child_ok(&c, "protect 0x%llx %ld rw-", at, page);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_false(info.unchanged);
    assert_int_equal(l->n, n - 2);
    assert_walk_fresh(l, c.pid);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_true(info.unchanged);
    /* Back to the first layout: a text the capture read two walks ago. */
    tu_child_ok(&c, "protect 0x%llx %ld r--", at, page);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_false(info.unchanged);
    assert_int_equal(l->n, n);
    assert_walk_fresh(l, c.pid);
    /* Same length, other bytes: page 10000 goes from r-- to ---. */
    at = base + 10000ULL * (unsigned long long)page;
    tu_child_ok(&c, "protect 0x%llx %ld ---", at, page);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_false(info.unchanged);
    assert_int_equal(l->n, n);
    assert_walk_fresh(l, c.pid);
    /* The text gets shorter: the last 1,000 pages of the block go (its last page may have
     * merged with a neighbour, which then stays). */
    tu_child_ok(&c, "unmap 0x%llx %ld", base + 19000ULL * (unsigned long long)page, 1000 * page);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_false(info.unchanged);
    assert_true(l->n <= n - 999);
    assert_walk_fresh(l, c.pid);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_true(info.unchanged);
    capture_close(cap);
    tu_child_stop(&c);
}

static void test_smaps_counts_touched_pages(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    uint64_t a = tu_child_ok(&c, "mapat 0x220000000 65536 rw-");
    tu_child_ok(&c, "touch 0x%llx 20480", (unsigned long long)a);
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    assert_int_equal(capture_walk(cap, DETAIL_SMAPS, &l, &info, &e), 0);
    assert_string_equal(info.method, "smaps");
    const struct region *r = find(l, a);
    assert_non_null(r);
    assert_true(r->flags & REGION_HAS_MEM);
    assert_int_equal(region_extra(r)->rss, 20480);
    assert_int_equal(region_extra(r)->anonymous, 20480);
    assert_int_equal(region_extra(r)->private_dirty, 20480);
    assert_true(info.have_totals);
    assert_true(info.totals.rss >= 20480);

    assert_int_equal(capture_walk(cap, DETAIL_ROLLUP, &l, &info, &e), 0);
    assert_true(info.have_totals);
    assert_true(info.totals.rss >= 20480);
    assert_false(l->v[0].flags & REGION_HAS_MEM);
    capture_close(cap);
    tu_child_stop(&c);
}

static void test_dead_targets(void **state)
{
    (void)state;
    struct tu_child c;
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    tu_child_start(&c);
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    /* Exits but is not reaped: a zombie, whose maps read as empty. Never an empty snapshot. */
    ssize_t w = write(c.in, "exit 3\n", 7);
    assert_int_equal(w, 7);
    for (int i = 0; i < 200; i++) {
        char path[64], buf[512] = "";
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)c.pid);
        int fd = open(path, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
        if (fd >= 0)
            close(fd);
        if (n > 0 && strstr(buf, ") Z "))
            break;
        usleep(10000);
    }
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), ERR_EXITED);
    assert_non_null(strstr(e.msg, "exited"));
    struct capture *z = NULL;
    assert_int_equal(capture_open(&z, c.pid, &e), ERR_ZOMBIE);
    assert_non_null(strstr(e.msg, "zombie"));
    assert_null(z);
    int status;
    waitpid(c.pid, &status, 0);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), ERR_EXITED);
    capture_close(cap);
    close(c.in);
    close(c.out);

    assert_int_equal(capture_open(&z, 0x7ffffff0, &e), ERR_NOPROC);
    assert_non_null(strstr(e.msg, "no such process"));
    assert_int_equal(capture_open(&z, 2, &e), ERR_KTHREAD); /* kthreadd */
    assert_non_null(strstr(e.msg, "kernel thread"));
}

static void test_exec_is_a_new_target(void **state)
{
    (void)state;
    struct tu_child c;
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    tu_child_start(&c);
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_int_equal(write(c.in, "exec\n", 5), 5);
    tu_child_ok(&c, "pid"); /* the new program answers */
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), ERR_EXECED);
    capture_close(cap);
    /* Reopened, it is the same pid with a different identity. */
    struct capture *again = NULL;
    assert_int_equal(capture_open(&again, c.pid, &e), 0);
    assert_int_equal(capture_walk(again, DETAIL_MAPS, &l, &info, &e), 0);
    capture_close(again);
    tu_child_stop(&c);
}

static void test_churning_target_gives_consistent_walks(void **state)
{
    (void)state;
    struct tu_child c;
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    tu_child_start(&c);
    tu_child_ok(&c, "many 20000");
    tu_child_ok(&c, "churn on");
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    unsigned retried = 0;
    for (int i = 0; i < 30; i++) {
        if (capture_walk(cap, DETAIL_MAPS, &l, &info, &e) != 0)
            fail_msg("walk %d: %s", i, e.msg);
        /* Whatever the kernel printed, what we return is sorted and disjoint. */
        assert_int_equal(region_list_first_disorder(l), l->n);
        assert_true(l->n > 20000);
        retried += (info.flags & CAPTURE_RETRIED) != 0;
    }
    print_message("torn reads seen and re-read in %u of 30 walks\n", retried);
    tu_child_ok(&c, "churn off");
    capture_close(cap);
    tu_child_stop(&c);
}

/* A fake /proc whose stat is a FIFO: each open of it is served the next text in turn, so a
 * test decides what the target looks like before, during and after a walk. */
struct fake_proc {
    char *root;
    char stat_path[4200];
    const char *stats[8];
    int nstats;
    pthread_t thread;
};

static void *serve_stats(void *arg)
{
    struct fake_proc *f = arg;
    for (int i = 0; i < f->nstats; i++) {
        int fd = open(f->stat_path, O_WRONLY);
        if (fd < 0)
            return NULL;
        ssize_t w = write(fd, f->stats[i], strlen(f->stats[i]));
        (void)w;
        close(fd);
        /* Let this reader finish before the next open, or two texts would share one read. */
        usleep(30000);
    }
    return NULL;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void fake_proc_start(struct fake_proc *f, const char *maps)
{
    char path[4200];
    f->root = tu_tmpdir();
    snprintf(path, sizeof(path), "%s/4242", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/4242/maps", f->root);
    write_text(path, maps);
    snprintf(path, sizeof(path), "%s/4242/cmdline", f->root);
    write_text(path, "fake");
    snprintf(f->stat_path, sizeof(f->stat_path), "%s/4242/stat", f->root);
    assert_int_equal(mkfifo(f->stat_path, 0600), 0);
    pthread_create(&f->thread, NULL, serve_stats, f);
}

static void fake_proc_stop(struct fake_proc *f)
{
    pthread_join(f->thread, NULL);
    free(f->root);
}

static const char alive[] = "4242 (fake (target)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 1 0 0 20 "
                            "0 1 0 5555 1000000 100 18446744073709551615 1 2 3 0 0 0 0 0 0 0 0 0 "
                            "17 1 0 0 0 0 0 4 5 6 7 8 9 10 0\n";
static const char zombie[] = "4242 (fake (target)) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 1 0 0 "
                             "20 0 1 0 5555 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 "
                             "0 0 0 0 0 0 0 0 0 0 0 0 0\n";

static void test_exit_mid_walk_is_not_a_snapshot(void **state)
{
    (void)state;
    /* maps read back cut short, and the target was a zombie right after: not a snapshot. stat
     * is read at open, then once a walk, after its reads. */
    struct fake_proc f = {.stats = {alive, zombie}, .nstats = 2};
    fake_proc_start(&f, "00400000-00401000 r--p 00000000 fe:00 12 /bin/fake\n");
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    assert_int_equal(capture_open_at(&cap, f.root, 4242, &e), 0);
    assert_int_equal(capture_get_target(cap)->start_time, 5555);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), ERR_EXITED);
    if (!strstr(e.msg, "exited during the walk"))
        fail_msg("%s", e.msg);
    capture_close(cap);
    fake_proc_stop(&f);
}

static void test_empty_read_is_not_a_snapshot(void **state)
{
    (void)state;
    /* A dead target's maps can read as empty while stat still looks alive: never a snapshot,
     * even when earlier walks left regions behind in the capture's buffers. */
    struct fake_proc f = {.stats = {alive, alive, alive, alive}, .nstats = 4};
    fake_proc_start(&f, "00400000-00401000 r--p 00000000 fe:00 12 /bin/fake\n");
    char maps[4300];
    snprintf(maps, sizeof(maps), "%s/4242/maps", f.root);
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    assert_int_equal(capture_open_at(&cap, f.root, 4242, &e), 0);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_int_equal(l->n, 1);
    write_text(maps, "00400000-00402000 r--p 00000000 fe:00 12 /bin/fake\n");
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), 0);
    assert_int_equal(l->v[0].end, 0x402000);
    write_text(maps, "");
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), ERR_EXITED);
    capture_close(cap);
    fake_proc_stop(&f);
}

static void test_reused_pid_is_not_the_target(void **state)
{
    (void)state;
    char reused[sizeof(alive)];
    memcpy(reused, alive, sizeof(alive));
    memcpy(strstr(reused, " 5555 ") + 1, "6666", 4); /* a later start time */
    struct fake_proc f = {.stats = {alive, reused}, .nstats = 2};
    fake_proc_start(&f, "00400000-00401000 r--p 00000000 fe:00 12 /bin/fake\n");
    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    assert_int_equal(capture_open_at(&cap, f.root, 4242, &e), 0);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l, &info, &e), ERR_EXITED);
    assert_non_null(strstr(e.msg, "reused"));
    capture_close(cap);
    fake_proc_stop(&f);
}

/* The owner of the region starting at start, or NULL. */
static const char *owner_at(const struct region_list *l, uint64_t start, char *buf, size_t n)
{
    const struct region *r = find(l, start);
    if (!r || !r->owner)
        return NULL;
    snprintf(buf, n, "%.*s", (int)r->owner_len, r->owner);
    return buf;
}

/*
 * Owners on a live process: three named threads, each stack named after its thread's id and
 * name (read independently from /proc/PID/task), the main thread's [stack], each thread's malloc
 * arena as heap (its reserve not committed), and memory named with PR_SET_VMA_ANON_NAME.
 */
static void test_owners(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    tu_child_ok(&c, "threads 3");
    uint64_t named = tu_child_ok(&c, "mapat 0x220000000 65536 rw-");
    int have_names =
        strncmp(tu_child_cmd(&c, "anonname 0x220000000 65536 leak-pool"), "ok", 2) == 0;

    struct capture *cap = NULL;
    struct err e = {0};
    const struct region_list *l;
    struct capture_info info;
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    if (capture_walk(cap, DETAIL_MAPS, &l, &info, &e) != 0)
        fail_msg("walk: %s", e.msg);

    /* Each thread, from /proc/PID/task: its stack carries "thread TID (NAME)". */
    char path[128], want[128], buf[256];
    int threads = 0;
    for (pid_t tid = c.pid + 1; tid < c.pid + 64 && threads < 3; tid++) {
        snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)c.pid, (int)tid);
        size_t len;
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        fclose(f);
        char *comm = tu_read_file(path, &len);
        comm[strcspn(comm, "\n")] = '\0';
        assert_true(strncmp(comm, "worker-", 7) == 0);
        snprintf(want, sizeof(want), "thread %d (%s)", (int)tid, comm);
        free(comm);
        int found = 0;
        for (size_t i = 0; i < l->n; i++) {
            const struct region *r = &l->v[i];
            if (r->owner && strlen(want) == r->owner_len &&
                memcmp(r->owner, want, r->owner_len) == 0) {
                found++;
                assert_int_equal(r->category, CAT_STACK);
                assert_int_equal(r->end - r->start, 256 * 1024);
                assert_string_equal(r->perms, "rw-p");
            }
        }
        if (found != 1)
            fail_msg("%d stacks owned by '%s'", found, want);
        threads++;
    }
    assert_int_equal(threads, 3);
    snprintf(want, sizeof(want), "thread %d (vm_child)", (int)c.pid);
    int main_stack = 0, arenas = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct region *r = &l->v[i];
        if (r->path && strcmp(r->path, "[stack]") == 0) {
            assert_non_null(r->owner);
            assert_memory_equal(r->owner, want, strlen(want));
            main_stack = 1;
        }
        if (r->owner && strncmp(r->owner, "malloc arena", r->owner_len) == 0) {
            /* The arena's no-access tail is its reserve. */
            assert_int_equal(r->category, r->perms[0] == '-' ? CAT_RESERVE : CAT_HEAP);
            if (r->perms[0] == '-')
                assert_int_equal(region_committed(r), 0);
            else
                arenas++;
        }
    }
    assert_true(main_stack);
    assert_int_equal(arenas, 3);
    if (have_names)
        assert_string_equal(owner_at(l, named, buf, sizeof(buf)), "leak-pool");
    else
        print_message("PR_SET_VMA_ANON_NAME is not available on this kernel: not checked\n");
    capture_close(cap);
    tu_child_stop(&c);
}

static void test_permission_denied(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip();
    }
    /* An unprivileged process may not read another user's (here: init's) address space. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        struct capture *cap = NULL;
        struct err e = {0};
        int rc = capture_open(&cap, 1, &e);
        if (rc != ERR_PERM)
            _exit(11);
        if (!strstr(e.msg, "CAP_SYS_PTRACE") || !strstr(e.msg, "permission denied"))
            _exit(12);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Whether a and b hold the same regions, names and figures. */
static int same_regions(const struct region_list *a, const struct region_list *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct region *x = &a->v[i], *y = &b->v[i];
        if (x->start != y->start || x->end != y->end || strcmp(x->perms, y->perms) != 0 ||
            x->offset != y->offset || x->inode != y->inode || x->category != y->category ||
            x->flags != y->flags || (!x->path != !y->path) ||
            (x->path && strcmp(x->path, y->path) != 0))
            return 0;
        if ((x->flags & REGION_HAS_MEM) && region_extra(x)->rss != region_extra(y)->rss)
            return 0;
    }
    return 1;
}

/*
 * The lending contract (capture.h): the list a walk returns stays as it was through the next
 * walk, so the store writer can hold it as its state and compare it with the next one; a list a
 * backend fills again has a new generation. A backend that refilled the list it returned last
 * would break the writer silently: this fails instead.
 */
static void test_walk_lends_its_list_until_the_walk_after(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    struct capture *cap = NULL;
    struct err e = {0};
    struct capture_info info;
    const struct region_list *l1, *l2, *l3;
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    assert_int_equal(capture_walk(cap, DETAIL_SMAPS, &l1, &info, &e), 0);
    struct region_list kept;
    region_list_init(&kept);
    region_list_copy(&kept, l1);
    uint64_t gen1 = l1->gen;
    for (int round = 0; round < 3; round++) {
        /* The target changes: the next walk is a new list, and l1 is still what it was. */
        tu_child_ok(&c, "mapat 0x%llx 65536 rw-",
                    0x300000000ULL + (unsigned long long)round * 0x10000000ULL);
        assert_int_equal(capture_walk(cap, DETAIL_SMAPS, &l2, &info, &e), 0);
        assert_true(l2 != l1);
        assert_int_equal(l1->gen, gen1);
        assert_true(same_regions(l1, &kept));
        assert_int_equal(l2->n, kept.n + 1);
        /* And again, unchanged: whichever list it returns, one it refilled has a new
         * generation, and one it did not is as it was. */
        assert_int_equal(capture_walk(cap, DETAIL_SMAPS, &l3, &info, &e), 0);
        if (l3 == l1)
            assert_true(l1->gen != gen1);
        region_list_copy(&kept, l3);
        l1 = l3;
        gen1 = l3->gen;
    }
    region_list_release(&kept);
    capture_close(cap);
    tu_child_stop(&c);
}

static void test_release_previous_keeps_the_last(void **state)
{
    (void)state;
    /* Once the walk before the last is released, the last walk's list is as it was, an
     * unchanged target is still known as unchanged, and a change is still seen. */
    struct tu_child c;
    tu_child_start(&c);
    struct capture *cap = NULL;
    struct err e = {0};
    struct capture_info info;
    const struct region_list *l1, *l2;
    assert_int_equal(capture_open(&cap, c.pid, &e), 0);
    capture_release_previous(cap); /* before any walk: nothing to release */
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l1, &info, &e), 0);
    uint64_t a = tu_child_ok(&c, "mapat 0x340000000 65536 rw-");
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l2, &info, &e), 0);
    assert_true(l2 != l1);
    struct region_list kept;
    region_list_init(&kept);
    region_list_copy(&kept, l2);
    uint64_t gen2 = l2->gen, gen1 = l1->gen;
    capture_release_previous(cap);
    assert_int_equal(l1->n, 0);
    assert_true(l1->gen != gen1);
    assert_int_equal(l2->gen, gen2);
    assert_true(same_regions(l2, &kept));
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l1, &info, &e), 0);
    assert_true(info.unchanged);
    assert_true(same_regions(l1, &kept));
    capture_release_previous(cap);
    tu_child_ok(&c, "unmap 0x%llx 65536", (unsigned long long)a);
    assert_int_equal(capture_walk(cap, DETAIL_MAPS, &l1, &info, &e), 0);
    assert_false(info.unchanged);
    assert_int_equal(l1->n, kept.n - 1);
    assert_null(find(l1, a));
    region_list_release(&kept);
    capture_close(cap);
    tu_child_stop(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_matches_proc_maps),
        cmocka_unit_test(test_siphash_reference_vectors),
        cmocka_unit_test(test_long_text_compared_by_hash),
        cmocka_unit_test(test_smaps_counts_touched_pages),
        cmocka_unit_test(test_dead_targets),
        cmocka_unit_test(test_exec_is_a_new_target),
        cmocka_unit_test(test_churning_target_gives_consistent_walks),
        cmocka_unit_test(test_exit_mid_walk_is_not_a_snapshot),
        cmocka_unit_test(test_empty_read_is_not_a_snapshot),
        cmocka_unit_test(test_reused_pid_is_not_the_target),
        cmocka_unit_test(test_permission_denied),
        cmocka_unit_test(test_owners),
        cmocka_unit_test(test_walk_lends_its_list_until_the_walk_after),
        cmocka_unit_test(test_release_previous_keeps_the_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
