/*
 * vmsnap merge on real recordings: databases recorded from live processes (a process tree with
 * smaps figures, a vm_child with known changes), some rewritten as if recorded on other hosts,
 * are merged into one; what the merged database holds must be what the files held, row for row,
 * however often they are merged, and whatever went on in them between merges.
 */
#include "testutil.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "store/store.h"

/* Everything a database says about its snapshots, regions and totals, by target identity and
 * seq (never by id: ids are the file's own). */
static const char *const contents[] = {
    "SELECT t.boot_id, t.pid, t.start_time, t.exe, t.cmdline, t.host, t.os, t.first_seen, "
    "t.origin, t.exited_at, "
    "(SELECT p.pid FROM targets p WHERE p.id = t.parent_target_id), s.seq, s.taken_at, s.label, "
    "s.region_count, s.mapped_bytes, s.rss_bytes, s.pss_bytes, s.private_dirty_bytes, "
    "s.anon_bytes, s.swap_bytes, s.detail, s.method, s.torn, s.retries, s.duration_us, s.mark "
    "FROM snapshots s JOIN targets t ON t.id = s.target_id",
    "SELECT t.boot_id, t.pid, t.start_time, s.seq, r.start, r.\"end\", r.perms, r.offset, r.dev, "
    "r.inode, r.path, r.category, r.rss, r.pss, r.private_dirty, r.anonymous, r.swap, r.state, "
    "r.type, r.protect, r.alloc_base, r.alloc_protect, r.deleted, r.owner "
    "FROM regions r JOIN snapshots s ON s.id = r.snapshot_id JOIN targets t ON t.id = s.target_id",
    "SELECT t.boot_id, t.pid, t.start_time, s.seq, c.category, c.regions, c.mapped, c.committed, "
    "c.rss FROM category_totals c JOIN snapshots s ON s.id = c.snapshot_id "
    "JOIN targets t ON t.id = s.target_id",
};

struct lines {
    char **v;
    size_t n, cap;
};

/* Appends each row of sql on the database at path as one line, columns "|"-separated. */
static void dump(struct lines *l, const char *path, const char *sql)
{
    sqlite3 *h = tu_db_open(path);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite3_errmsg(h), sql);
    while (sqlite3_step(s) == SQLITE_ROW) {
        size_t len = 0, cap = 256;
        char *line = malloc(cap);
        for (int c = 0; c < sqlite3_column_count(s); c++) {
            const char *v = (const char *)sqlite3_column_text(s, c);
            size_t add = strlen(v ? v : "NULL") + 2;
            if (len + add >= cap) {
                cap = 2 * (len + add);
                line = realloc(line, cap);
            }
            len += (size_t)sprintf(line + len, "%s|", v ? v : "NULL");
        }
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 1024;
            l->v = realloc(l->v, l->cap * sizeof(*l->v));
        }
        l->v[l->n++] = line;
    }
    sqlite3_finalize(s);
    sqlite3_close(h);
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Fails unless the database at merged holds exactly what the files together hold. */
static void assert_holds(const char *merged, const char *const *files, size_t nfiles)
{
    for (size_t q = 0; q < sizeof(contents) / sizeof(contents[0]); q++) {
        struct lines want = {0}, got = {0};
        for (size_t i = 0; i < nfiles; i++)
            dump(&want, files[i], contents[q]);
        dump(&got, merged, contents[q]);
        qsort(want.v, want.n, sizeof(*want.v), by_text);
        qsort(got.v, got.n, sizeof(*got.v), by_text);
        assert_true(want.n > 0);
        for (size_t i = 0; i < want.n && i < got.n; i++)
            if (strcmp(want.v[i], got.v[i]) != 0)
                fail_msg("query %zu row %zu: want %s, got %s", q, i, want.v[i], got.v[i]);
        if (want.n != got.n)
            fail_msg("query %zu: want %zu rows, got %zu", q, want.n, got.n);
        lines_free(&want);
        lines_free(&got);
    }
}

static void run_ok(struct tu_run *r, const char *db, const char *cmd, const char *a, const char *b,
                   const char *c)
{
    tu_vmsnap(r, "-d", db, cmd, a, b, c, NULL);
    if (r->status != 0)
        fail_msg("vmsnap %s %s: exit %d: %s", cmd, a ? a : "", r->status, r->err);
}

/* Takes one snapshot of pid into db. */
static void snap(const char *db, pid_t pid, const char *detail)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", (int)pid);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", p, "--detail", detail, NULL);
    if (r.status != 0)
        fail_msg("snap: %s", r.err);
    tu_run_release(&r);
}

/* Runs SQL that changes the database at path (as another host's file would differ). */
static void rewrite(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite3_errmsg(h), sql);
    sqlite3_close(h);
}

static char *in_dir(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Three hosts: a process tree recorded with smaps figures (a.db), a vm_child that maps,
 * re-protects and unmaps (b.db, rewritten as host b), and a.db again as host c (the same pids
 * and start times on another boot: other processes). */
static void test_hosts_merge_whole(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *a = in_dir(dir, "a.db"), *b = in_dir(dir, "b.db"), *c = in_dir(dir, "c.db");
    char *fleet = in_dir(dir, "fleet.db");
    struct tu_run r;
    tu_vmsnap(&r, "-d", a, "record", "-i", "50ms", "--detail", "smaps", "--", FORKER_BIN, "tree",
              NULL);
    assert_int_equal(r.status, 3);
    tu_run_release(&r);

    struct tu_child child;
    tu_child_start(&child);
    snap(b, child.pid, "maps");
    uint64_t at = tu_child_ok(&child, "map 1048576 rw-");
    tu_child_ok(&child, "touch 0x%llx 65536", (unsigned long long)at);
    snap(b, child.pid, "smaps");
    tu_child_ok(&child, "protect 0x%llx 65536 r--", (unsigned long long)at);
    snap(b, child.pid, "rollup");
    tu_child_ok(&child, "unmap 0x%llx 1048576", (unsigned long long)at);
    snap(b, child.pid, "smaps");
    tu_child_stop(&child);
    rewrite(b, "UPDATE targets SET host = 'host-b', boot_id = 'boot-of-host-b'");
    tu_copy_file(a, c);
    rewrite(c, "UPDATE targets SET host = 'host-c', boot_id = 'boot-of-host-c'");

    run_ok(&r, fleet, "merge", a, b, c);
    assert_int_equal(tu_count_lines(r.out), 3);
    assert_non_null(strstr(r.out, "; 3 new targets, 0 extended, 0 already here\n"));
    assert_non_null(strstr(r.out, "merged '"));
    assert_string_equal(r.err, "");
    tu_run_release(&r);
    const char *const all[] = {a, b, c};
    assert_holds(fleet, all, 3);

    sqlite3 *h = tu_db_open(fleet);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets"), 7);
    /* Each tree's children name their own host's parent. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets k JOIN targets p ON p.id = "
                               "k.parent_target_id AND p.boot_id = k.boot_id"),
                     4);
    int64_t b_last = tu_q64(h, "SELECT max(s.id) FROM snapshots s JOIN targets t ON t.id = "
                               "s.target_id WHERE t.host = 'host-b'");
    int64_t b_first = tu_q64(h, "SELECT min(s.id) FROM snapshots s JOIN targets t ON t.id = "
                                "s.target_id WHERE t.host = 'host-b'");
    /* The tree's parent, on host a and on host c: the same recording, so no difference. */
    int64_t a_tree = tu_q64(h, "SELECT max(s.id) FROM snapshots s JOIN targets t ON t.id = "
                               "s.target_id WHERE t.host <> 'host-b' AND t.host <> 'host-c' AND "
                               "t.parent_target_id IS NULL");
    int64_t c_tree = tu_q64(h, "SELECT max(s.id) FROM snapshots s JOIN targets t ON t.id = "
                               "s.target_id WHERE t.host = 'host-c' AND "
                               "t.parent_target_id IS NULL");
    sqlite3_close(h);
    char sa[24], sb[24], sc[24];
    snprintf(sa, sizeof(sa), "%lld", (long long)a_tree);
    snprintf(sb, sizeof(sb), "%lld", (long long)b_last);
    snprintf(sc, sizeof(sc), "%lld", (long long)c_tree);
    tu_vmsnap(&r, "-d", fleet, "diff", sa, sc, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", fleet, "diff", sa, sb, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "new ("));
    tu_run_release(&r);
    /* Within host b's target: the megabyte came and went, as recorded. */
    snprintf(sa, sizeof(sa), "%lld", (long long)b_first);
    snprintf(sc, sizeof(sc), "%lld", (long long)(b_first + 1));
    tu_vmsnap(&r, "-d", fleet, "diff", sa, sc, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "1.0M"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", fleet, "diff", sa, sb, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    run_ok(&r, fleet, "list", NULL, NULL, NULL);
    assert_non_null(strstr(r.out, "host-b"));
    assert_non_null(strstr(r.out, "host-c"));
    tu_run_release(&r);

    /* Again, in another order, and with the merged database named among them: nothing. */
    tu_vmsnap(&r, "-d", fleet, "-j", "merge", c, b, a, fleet, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "is the database merged into"));
    assert_null(strstr(r.out, "\"snapshots_added\":1"));
    assert_null(strstr(r.out, "\"targets_added\":1"));
    assert_non_null(strstr(r.out, "\"targets_present\":3"));
    tu_run_release(&r);
    assert_holds(fleet, all, 3);
    free(a);
    free(b);
    free(c);
    free(fleet);
    free(dir);
}

/* A file that goes on recording adds what it recorded since; one whose history parts from the
 * merged one's is the same process recorded apart, kept as a target of its own. */
static void test_extends_and_keeps_apart(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *a = in_dir(dir, "a.db"), *fleet = in_dir(dir, "fleet.db");
    struct tu_child child;
    tu_child_start(&child);
    snap(a, child.pid, "maps");
    snap(a, child.pid, "maps");
    struct tu_run r;
    run_ok(&r, fleet, "merge", a, NULL, NULL);
    assert_non_null(strstr(r.out, ": 2 snapshots added; 1 new target,"));
    tu_run_release(&r);

    uint64_t at = tu_child_ok(&child, "map 2097152 rw-");
    snap(a, child.pid, "smaps");
    run_ok(&r, fleet, "merge", a, NULL, NULL);
    assert_non_null(strstr(r.out, ": 1 snapshot added; 0 new targets, 1 extended, 0 already "
                                  "here\n"));
    tu_run_release(&r);
    const char *const one[] = {a};
    assert_holds(fleet, one, 1);

    /* The merged file is recorded into on this machine too: it carries on from the merge. */
    tu_child_ok(&child, "unmap 0x%llx 2097152", (unsigned long long)at);
    snap(fleet, child.pid, "maps");
    tu_vmsnap(&r, "-d", fleet, "diff", "last~1", "last", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "freed (1)"));
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(fleet);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM snapshots"), 4);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets"), 1);
    sqlite3_close(h);
    /* a.db is a prefix of that: nothing to add. */
    run_ok(&r, fleet, "merge", a, NULL, NULL);
    assert_non_null(strstr(r.out, ": 0 snapshots added; 0 new targets, 0 extended, 1 already"));
    tu_run_release(&r);

    /* a.db takes its own fourth snapshot: the two recordings part there. */
    snap(a, child.pid, "rollup");
    tu_child_stop(&child);
    run_ok(&r, fleet, "merge", a, NULL, NULL);
    assert_non_null(strstr(r.out, ": 4 snapshots added; 0 new targets, 0 extended, 0 already "
                                  "here, 1 recorded apart"));
    tu_run_release(&r);
    h = tu_db_open(fleet);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets"), 2);
    assert_int_equal(tu_q64(h, "SELECT count(DISTINCT pid) FROM targets"), 1);
    sqlite3_close(h);
    run_ok(&r, fleet, "merge", a, NULL, NULL);
    assert_non_null(
        strstr(r.out, ": 0 snapshots added; 0 new targets, 0 extended, 1 already here\n"));
    tu_run_release(&r);
    free(a);
    free(fleet);
    free(dir);
}

/* Bad files are refused with one line, and the merged database keeps what it held. */
static void test_refuses_and_keeps(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *a = in_dir(dir, "a.db"), *fleet = in_dir(dir, "fleet.db");
    struct tu_child child;
    tu_child_start(&child);
    snap(a, child.pid, "maps");
    tu_child_ok(&child, "map 65536 rw-");
    snap(a, child.pid, "smaps");
    tu_child_stop(&child);
    struct tu_run r;
    run_ok(&r, fleet, "merge", a, NULL, NULL);
    tu_run_release(&r);
    const char *const one[] = {a};

    char *newer = in_dir(dir, "newer.db"), *text = in_dir(dir, "text.db");
    char *empty = in_dir(dir, "empty.db"), *other = in_dir(dir, "other.db");
    char *broken = in_dir(dir, "broken.db"), *b = in_dir(dir, "b.db");
    tu_copy_file(a, newer);
    rewrite(newer, "UPDATE targets SET boot_id = 'x'; PRAGMA user_version = 99");
    const char *line = "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n";
    tu_write_file(text, line, strlen(line));
    tu_write_file(empty, "", 0);
    rewrite(other, "CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    tu_copy_file(a, broken);
    rewrite(broken, "UPDATE targets SET boot_id = 'y'; UPDATE spans_open SET first_snap = 999 "
                    "WHERE rowid = (SELECT max(rowid) FROM spans_open)");
    tu_copy_file(a, b);
    rewrite(b, "UPDATE targets SET boot_id = 'z'");
    static const struct {
        const char *name, *want;
    } cases[] = {
        {"newer.db", "newer vmsnap (schema 99"},
        {"text.db", "not a vmsnap database"},
        {"empty.db", "empty database"},
        {"other.db", "another program"},
        {"missing.db", "no database at"},
        {"broken.db", "damaged: its regions name snapshots it does not hold"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = in_dir(dir, cases[i].name);
        /* A good file that would add a target, before the bad one: neither is merged. */
        tu_vmsnap(&r, "-d", fleet, "merge", b, path, NULL);
        if (strcmp(cases[i].name, "broken.db") == 0) {
            /* Only found in the copy: the file before it is merged, and it is not. */
            assert_int_equal(r.status, 2);
            assert_non_null(strstr(r.err, cases[i].want));
            assert_non_null(strstr(r.err, "the files before it are merged"));
        } else {
            tu_assert_trouble(&r, cases[i].want);
        }
        tu_run_release(&r);
        if (strcmp(cases[i].name, "broken.db") != 0)
            assert_holds(fleet, one, 1);
        free(path);
    }
    const char *const two[] = {a, b};
    assert_holds(fleet, two, 2);
    tu_vmsnap(&r, "-d", fleet, "merge", NULL);
    tu_assert_trouble(&r, "which databases");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", fleet, "merge", "--bogus", a, NULL);
    tu_assert_trouble(&r, "unknown option");
    tu_run_release(&r);
    free(newer);
    free(text);
    free(empty);
    free(other);
    free(broken);
    free(b);
    free(a);
    free(fleet);
    free(dir);
}

/* A file of the first schema is brought to this one, then merged. */
static void test_older_schema_is_migrated(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *old = in_dir(dir, "old.db"), *fleet = in_dir(dir, "fleet.db");
    struct store *st = NULL;
    struct err e = {0};
    assert_int_equal(store_open_version(&st, old, STORE_WRITE, 1, &e), 0);
    store_close(st);
    rewrite(old, tu_schema1_rows);
    struct tu_run r;
    run_ok(&r, fleet, "merge", old, NULL, NULL);
    assert_non_null(strstr(r.out, ": 3 snapshots added; 1 new target,"));
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(old);
    assert_int_equal(tu_q64(h, "PRAGMA user_version"), store_schema_version());
    sqlite3_close(h);
    const char *const one[] = {old};
    assert_holds(fleet, one, 1);
    h = tu_db_open(fleet);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM regions r JOIN snapshots s ON s.id = "
                               "r.snapshot_id WHERE s.seq = 2"),
                     2);
    sqlite3_close(h);
    free(old);
    free(fleet);
    free(dir);
}

/* A full disk mid-merge: one line, exit 2, what was merged before intact; with space again the
 * same merge completes. Needs root to mount a small tmpfs. */
static void test_disk_full(void **state)
{
    char *fs = tu_small_fs("2m");
    if (!fs)
        skip();
    *state = fs; /* unmounted by umount_fs, whatever happens */
    char *dir = tu_tmpdir();
    char *a = in_dir(dir, "a.db"), *b = in_dir(dir, "b.db"), *fleet = in_dir(fs, "fleet.db");
    struct tu_child child;
    tu_child_start(&child);
    snap(a, child.pid, "maps");
    tu_child_ok(&child, "many 3000");
    snap(b, child.pid, "smaps");
    tu_child_stop(&child);
    rewrite(b, "UPDATE targets SET boot_id = 'boot-of-host-b'");
    struct tu_run r;
    run_ok(&r, fleet, "merge", a, NULL, NULL);
    tu_run_release(&r);
    tu_fill_fs(fs, 16 * 4096);
    tu_vmsnap(&r, "-d", fleet, "merge", b, NULL);
    tu_assert_trouble(&r, "full");
    tu_run_release(&r);
    const char *const one[] = {a}, *const two[] = {a, b};
    assert_holds(fleet, one, 1);
    char *filler = in_dir(fs, "filler");
    assert_int_equal(unlink(filler), 0);
    run_ok(&r, fleet, "merge", a, b, NULL);
    assert_non_null(strstr(r.out, "1 already here\n"));
    assert_non_null(strstr(r.out, ": 1 snapshot added; 1 new target,"));
    tu_run_release(&r);
    assert_holds(fleet, two, 2);
    free(filler);
    free(a);
    free(b);
    free(fleet);
    free(dir);
}

static int umount_fs(void **state)
{
    if (*state) {
        umount2(*state, MNT_DETACH);
        free(*state);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hosts_merge_whole),
        cmocka_unit_test(test_extends_and_keeps_apart),
        cmocka_unit_test(test_refuses_and_keeps),
        cmocka_unit_test(test_older_schema_is_migrated),
        cmocka_unit_test_teardown(test_disk_full, umount_fs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
