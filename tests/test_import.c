/*
 * vmsnap import on real saved maps: the maps and smaps text of a live vm_child, saved at the
 * moment a live snapshot of it is taken (the child holds still), must import to the same
 * regions; damaged and foreign files are refused with one line and write nothing.
 */
#define _GNU_SOURCE /* prlimit */
#include "testutil.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "import/import.h"

/* Imported targets that name vm_child as pid's program: what a pmap or a core file says. */
static int64_t imported_targets(sqlite3 *h, pid_t pid)
{
    return tu_q64(h,
                  "SELECT count(*) FROM targets WHERE pid = %d AND boot_id = 'import' AND "
                  "cmdline LIKE '%%vm_child%%'",
                  (int)pid);
}

/* Rows of snapshot a's regions that snapshot b does not have, in either direction (with the
 * memory figures when figures is set: all but pss, which moves whenever another process maps
 * the same library pages, as vmsnap itself does while it reads). */
static int64_t differing_rows(sqlite3 *h, int64_t a, int64_t b, int figures)
{
    const char *cols = figures ? "start, \"end\", perms, offset, dev, inode, path, category, "
                                 "deleted, rss, private_dirty, anonymous, swap"
                               : "start, \"end\", perms, offset, dev, inode, path, category, "
                                 "deleted";
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM (SELECT %s FROM regions WHERE snapshot_id = %lld "
             "EXCEPT SELECT %s FROM regions WHERE snapshot_id = %lld)) + (SELECT count(*) FROM "
             "(SELECT %s FROM regions WHERE snapshot_id = %lld EXCEPT SELECT %s FROM regions "
             "WHERE snapshot_id = %lld))",
             cols, (long long)a, cols, (long long)b, cols, (long long)b, cols, (long long)a);
    return tu_q64(h, "%s", sql);
}

static void test_saved_text_imports_to_the_live_regions(void **state)
{
    (void)state;
    char *dir = NULL, *db = tu_tmppath("i.db", &dir);
    struct tu_child c;
    tu_child_start(&c);
    /* Anonymous, guard, a file with a space and a newline in its name, an unlinked file,
     * touched pages (figures). */
    uint64_t anon = tu_child_ok(&c, "mapat 0x240000000 1048576 rw-");
    tu_child_ok(&c, "touch 0x%llx 20480", (unsigned long long)anon);
    tu_child_ok(&c, "mapat 0x250000000 65536 ---");
    tu_child_ok(&c, "mapfile %s/a\\sb\\nc.bin 8192 r-- p", dir);
    tu_child_ok(&c, "mapfile %s/gone.bin 4096 rw- s", dir);
    tu_child_ok(&c, "unlink %s/gone.bin", dir);
    char pid[16], proc[64], maps[4200], smaps[4200], px[4200], pxx[4200];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    snprintf(maps, sizeof(maps), "%s/saved.maps", dir);
    snprintf(smaps, sizeof(smaps), "%s/saved.smaps", dir);
    snprintf(proc, sizeof(proc), "/proc/%d/maps", (int)c.pid);
    tu_copy_file(proc, maps);
    snprintf(proc, sizeof(proc), "/proc/%d/smaps", (int)c.pid);
    tu_copy_file(proc, smaps);
    /* pmap -X and -XX, with -p for whole paths, as procps 4 writes them. */
    snprintf(px, sizeof(px), "%s/saved.pmap-x", dir);
    snprintf(pxx, sizeof(pxx), "%s/saved.pmap-xx", dir);
    const char *pmap = access("/usr/bin/pmap", X_OK) == 0 ? "/usr/bin/pmap" : "/bin/pmap";
    char *pmap_x[] = {(char *)pmap, "-X", "-p", pid, NULL};
    char *pmap_xx[] = {(char *)pmap, "-XX", "-p", pid, NULL};
    struct tu_run pr;
    tu_run(&pr, pmap_x);
    assert_int_equal(pr.status, 0);
    tu_write_file(px, pr.out, strlen(pr.out));
    tu_run_release(&pr);
    tu_run(&pr, pmap_xx);
    assert_int_equal(pr.status, 0);
    tu_write_file(pxx, pr.out, strlen(pr.out));
    tu_run_release(&pr);

    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "1\n");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "import", maps, smaps, "--target-name", "vm_child", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "2\n3\n");
    assert_string_equal(r.err, "");
    tu_run_release(&r);

    sqlite3 *h = tu_db_open(db);
    assert_int_equal(differing_rows(h, 1, 2, 0), 0);
    assert_int_equal(differing_rows(h, 1, 3, 1), 0);
    sqlite3_close(h);
    /* pmap output names the process: its target is the pid and command line pmap printed. */
    tu_vmsnap(&r, "-d", db, "import", px, pxx, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "4\n5\n");
    /* -X's missing column is said, once: -XX has it. */
    const char *note = strstr(r.err, "no Private_Dirty column: snapshot 4 has 0");
    assert_non_null(note);
    assert_null(strstr(note + 1, "no Private_Dirty"));
    tu_run_release(&r);
    h = tu_db_open(db);
    assert_int_equal(differing_rows(h, 1, 5, 1), 0); /* -XX: everything */
    assert_int_equal(differing_rows(h, 1, 4, 0), 0); /* -X: the layout; no Private_Dirty */
    assert_int_equal(imported_targets(h, c.pid), 1);
    assert_int_equal(
        tu_q64(h, "SELECT count(DISTINCT target_id) FROM snapshots WHERE id IN (4, 5)"), 1);
    assert_true(tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id = 2") > 10);
    /* The unlinked file: deleted, named without the suffix. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id = 3 AND deleted = 1 "
                               "AND path LIKE '%%/gone.bin'"),
                     1);
    /* Both files went to one target, in the order given; its snapshots have the file's time. */
    assert_int_equal(
        tu_q64(h, "SELECT count(DISTINCT target_id) FROM snapshots WHERE id IN (2, 3)"), 1);
    assert_int_equal(tu_q64(h, "SELECT seq FROM snapshots WHERE id = 3"), 2);
    assert_int_equal(tu_q64(h, "SELECT rss_bytes IS NULL FROM snapshots WHERE id = 2"), 1);
    assert_int_equal(tu_q64(h, "SELECT rss_bytes = (SELECT sum(rss) FROM regions WHERE snapshot_id "
                               "= 3) FROM snapshots WHERE id = 3"),
                     1);
    sqlite3_close(h);

    /* A diff of the live snapshot and the imported one: nothing changed (exit 0). */
    tu_vmsnap(&r, "-d", db, "diff", "1", "3", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    /* After a change in the child, the imported map diffs against a new live snapshot. */
    tu_child_ok(&c, "mapat 0x260000000 8192 rw-");
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "6\n");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "-j", "diff", "3", "6", "--summary", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "\"changes\":1"));
    tu_run_release(&r);

    /* --taken-at sets the time; a second import under another name is another target. */
    tu_vmsnap(&r, "-d", db, "-j", "import", maps, "--taken-at", "2026-01-02T03:04:05.678+01:00",
              "--label", "from-ticket", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"format\":\"maps\""));
    tu_run_release(&r);
    h = tu_db_open(db);
    assert_int_equal(tu_q64(h, "SELECT taken_at = '2026-01-02T02:04:05.678Z' FROM snapshots WHERE "
                               "label = 'from-ticket'"),
                     1);
    /* The live process, vm_child (maps, smaps), pmap's pid and command, saved.maps. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets"), 4);
    sqlite3_close(h);
    tu_child_stop(&c);
    free(db);
    free(dir);
}

static void test_bad_files_write_nothing(void **state)
{
    (void)state;
    char *dir = NULL, *db = tu_tmppath("bad.db", &dir);
    char good[4200], path[4200];
    snprintf(good, sizeof(good), "%s/good.maps", dir);
    const char *ok = "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n"
                     "7ffce86c7000-7ffce86e8000 rw-p 00000000 00:00 0 [stack]\n";
    tu_write_file(good, ok, strlen(ok));
    static const struct {
        const char *name, *text;
        size_t len;
        const char *want;
    } cases[] = {
        {"empty", "", 0, "is empty"},
        {"garbage", "hello world\n", 12, "line 1"},
        {"short elf", "\177ELF\2\1\1\0\0\0\0\0\0\0\0\0", 16, "too short for an ELF header"},
        {"plain pmap", "1234:   ./server\n         Address Perm\n", 38, "no Offset column"},
        {"cut pmap",
         "1234:   ./server\n         Address Perm   Offset Device  Inode Size Mapping\n"
         "    560cbeecd000 r--p 00000000  fe:00 248056    8 server\n",
         127, "cut short"},
        {"overlap",
         "00400000-00452000 r-xp 00000000 08:02 1 /a\n00401000-00460000 r--p 00000000 08:02 1 /a\n",
         86, "overlaps"},
        {"truncated smaps", "00400000-00452000 r-xp 00000000 08:02 1 /a\nRss:  x kB\n", 54,
         "line 2"},
        {"missing", NULL, 0, "cannot open"},
        /* Ranges no address space holds: all of it, and one across 2^63. */
        {"whole space", "0-ffffffffffffffff rw-p 00000000 00:00 0\n", 41, "no address space"},
        {"across 2^63", "7ffffffffffff000-8000000000001000 rw-p 00000000 00:00 0\n", 56,
         "no address space"},
        {"huge pmap",
         "1234:   ./server\n         Address Perm   Offset Device  Inode             Size "
         "Mapping\n    560cbeecd000 r--p 00000000  fe:00 248056 9999999999999999 server\n",
         0, "bad size"},
        {"a device", NULL, 1, "a device or socket"},
        {"a directory", NULL, 2, "a directory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, cases[i].name);
        if (cases[i].text)
            tu_write_file(path, cases[i].text, cases[i].len ? cases[i].len : strlen(cases[i].text));
        else if (cases[i].len)
            snprintf(path, sizeof(path), "%s", cases[i].len == 1 ? "/dev/zero" : dir);
        struct tu_run r;
        /* A good file beside a bad one: the bad one is refused and neither is written. */
        tu_vmsnap(&r, "-d", db, "import", good, path, NULL);
        tu_assert_trouble(&r, cases[i].want);
        tu_run_release(&r);
        /* Read before the database is opened: not even the file was made. */
        assert_int_equal(access(db, F_OK), -1);
    }
    /* A FIFO no program writes reads as empty, at once. */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "import", good, path, NULL);
    tu_assert_trouble(&r, "is empty");
    tu_run_release(&r);
    assert_int_equal(access(db, F_OK), -1);
    tu_vmsnap(&r, "-d", db, "import", good, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "1\n");
    tu_run_release(&r);
    /* Usage mistakes. */
    tu_vmsnap(&r, "-d", db, "import", NULL);
    tu_assert_trouble(&r, "which file");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "import", good, "--taken-at", "yesterday", NULL);
    tu_assert_trouble(&r, "invalid time");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "import", good, good, "--taken-at", "2026-01-01T00:00:00Z", NULL);
    tu_assert_trouble(&r, "one FILE");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "import", good, "--format", "elf", NULL);
    tu_assert_trouble(&r, "invalid format");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "import", good, "--format", "core", NULL);
    tu_assert_trouble(&r, "not an ELF core file");
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(db);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM snapshots"), 1);
    sqlite3_close(h);
    free(db);
    free(dir);
}

/* Out of memory (a 16 MB maps text under `ulimit -v 40000`): one line and exit 2, not abort(). */

static void test_out_of_memory(void **state)
{
    (void)state;
#ifdef UNDER_ASAN
    skip(); /* AddressSanitizer's shadow memory cannot live under ulimit -v */
#endif
    char *dir = NULL, *db = tu_tmppath("oom.db", &dir);
    char big[4200], script[8600];
    snprintf(big, sizeof(big), "%s/big.maps", dir);
    FILE *f = fopen(big, "w");
    assert_non_null(f);
    for (unsigned long i = 0; i < 400000; i++)
        fprintf(f, "%lx-%lx rw-p 00000000 00:00 0\n", 0x10000000ul + i * 0x2000,
                0x10001000ul + i * 0x2000);
    fclose(f);
    snprintf(script, sizeof(script), "ulimit -v 40000 && exec %s -d %s import %s", VMSNAP_BIN, db,
             big);
    char *argv[] = {"/bin/bash", "-c", script, NULL};
    struct tu_run r;
    tu_run(&r, argv);
    tu_assert_trouble(&r, "out of memory");
    tu_run_release(&r);
    unlink(big);
    free(db);
    free(dir);
}

static void parse_fixture(const char *name, struct import_map *m)
{
    size_t len;
    char *text = tu_fixture(name, &len);
    struct err e = {0};
    if (import_parse(text, len, IMPORT_AUTO, m, &e) != 0)
        fail_msg("%s: %s", name, e.msg);
    free(text);
}

static void test_pmap_fixtures_read_as_the_maps(void **state)
{
    (void)state;
    /* pmap -XX -p, pmap -X -p and /proc/PID/maps of one vm_child at one moment: a file name
     * with a space, one with a newline (pmap prints "\012"), an unlinked one, touched pages. */
    struct import_map maps, xx, x;
    parse_fixture("edge-pmap.maps", &maps);
    parse_fixture("edge.pmap-xx", &xx);
    parse_fixture("edge.pmap-x", &x);
    assert_int_equal(maps.format, IMPORT_MAPS);
    assert_int_equal(xx.format, IMPORT_PMAP);
    assert_int_equal(x.format, IMPORT_PMAP);
    assert_int_equal(xx.detail, DETAIL_SMAPS);
    assert_int_equal(xx.pid, 1297);
    assert_string_equal(xx.program, "/work/main/build/tests/vm_child");
    assert_int_equal(maps.regions.n, xx.regions.n);
    assert_int_equal(maps.regions.n, x.regions.n);
    int found = 0;
    for (size_t i = 0; i < maps.regions.n; i++) {
        const struct region *a = &maps.regions.v[i], *b = &xx.regions.v[i], *c = &x.regions.v[i];
        if (!region_same_layout(a, b) || !region_same_layout(a, c))
            fail_msg("region %zu (0x%llx) differs from the maps text's", i,
                     (unsigned long long)a->start);
        assert_true(region_extra(b)->rss == region_extra(c)->rss);
        assert_true(region_extra(c)->private_dirty == 0); /* not in -X */
        if (a->start == 0x240000000ULL) {
            assert_int_equal(region_extra(b)->rss, 20480);
            assert_int_equal(region_extra(b)->private_dirty, 20480);
            found++;
        }
        if (a->path && strcmp(a->path, "/tmp/fx/a b.bin") == 0)
            found++;
        if (a->path && strcmp(a->path, "/tmp/fx/new\nline.bin") == 0)
            found++;
        if (a->path && strcmp(a->path, "/tmp/fx/gone.bin") == 0 && (b->flags & REGION_DELETED))
            found++;
    }
    assert_int_equal(found, 4);
    /* Cut short (no totals), a line out of step with the header: refused with its line. */
    size_t len;
    char *text = tu_fixture("edge.pmap-xx", &len);
    struct import_map bad;
    struct err e = {0};
    char *rule = strstr(text, "  ====");
    assert_non_null(rule);
    assert_int_equal(import_parse(text, (size_t)(rule - text), IMPORT_AUTO, &bad, &e), ERR_PARSE);
    assert_non_null(strstr(e.msg, "cut short"));
    import_map_release(&bad);
    char *third = strchr(strchr(strchr(text, '\n') + 1, '\n') + 1, '\n') + 1;
    memmove(third + 1, third + 3, strlen(third + 3) + 1); /* two columns move left */
    assert_int_equal(import_parse(text, strlen(text), IMPORT_AUTO, &bad, &e), ERR_PARSE);
    assert_non_null(strstr(e.msg, "line 4"));
    import_map_release(&bad);
    free(text);
    import_map_release(&maps);
    import_map_release(&xx);
    import_map_release(&x);
}

static void test_gcore_core_imports_what_it_holds(void **state)
{
    (void)state;
    /* A core file of a live vm_child written by gdb's gcore, a live snapshot taken just before:
     * every segment the core holds is a region of the snapshot at the same range, with the same
     * first three perms and, for files, the same name and offset; the core names the process. */
    const char *gcore = access("/usr/bin/gcore", X_OK) == 0 ? "/usr/bin/gcore" : NULL;
    if (!gcore)
        skip(); /* scripts/test.sh installs gdb */
    char *dir = NULL, *db = tu_tmppath("c.db", &dir);
    struct tu_child c;
    tu_child_start(&c);
    uint64_t file = tu_child_ok(&c, "mapfile %s/a\\sb.bin 8192 rw- p", dir);
    tu_child_ok(&c, "touch 0x%llx 8192", (unsigned long long)file); /* written: gcore dumps it */
    uint64_t anon = tu_child_ok(&c, "mapat 0x240000000 65536 rw-");
    tu_child_ok(&c, "touch 0x%llx 4096", (unsigned long long)anon);
    char pid[16], prefix[4200], core[4300];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    snprintf(prefix, sizeof(prefix), "%s/core", dir);
    snprintf(core, sizeof(core), "%s.%d", prefix, (int)c.pid);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    char *argv[] = {(char *)gcore, "-o", prefix, pid, NULL};
    tu_run(&r, argv);
    if (r.status != 0)
        fail_msg("gcore: %s", r.err);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "import", core, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "2\n");
    assert_non_null(strstr(r.err, "gcore")); /* what it left out is said */
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(db);
    assert_true(tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id = 2") >= 5);
    assert_int_equal(
        /* Not [vsyscall] (stored negative): gcore writes it as r-x where maps says --x. */
        tu_q64(h, "SELECT count(*) FROM regions c WHERE c.snapshot_id = 2 AND c.start > 0 AND NOT "
                  "EXISTS (SELECT 1 "
                  "FROM regions l WHERE l.snapshot_id = 1 AND l.start = c.start AND l.\"end\" = "
                  "c.\"end\" AND substr(l.perms, 1, 3) = substr(c.perms, 1, 3) AND (c.path IS NULL "
                  "OR (c.path = l.path AND c.offset = l.offset)))"),
        0);
    /* The mapped file (written, so dumped) came through with its name. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id = 2 AND path LIKE "
                               "'%%/a b.bin'"),
                     1);
    assert_int_equal(imported_targets(h, c.pid), 1);
    assert_int_equal(tu_q64(h, "SELECT method = 'import-gcore' FROM snapshots WHERE id = 2"), 1);
    sqlite3_close(h);
    tu_vmsnap(&r, "-d", db, "show", "2", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "from a core file"));
    tu_run_release(&r);
    /* A core cut short loses its notes: refused, nothing written. */
    size_t len;
    char *bytes = tu_read_file(core, &len);
    char cut[4400];
    snprintf(cut, sizeof(cut), "%s.cut", core);
    tu_write_file(cut, bytes, 200);
    free(bytes);
    tu_vmsnap(&r, "-d", db, "import", cut, NULL);
    tu_assert_trouble(&r, "cut short");
    tu_run_release(&r);
    tu_child_stop(&c);
    free(db);
    free(dir);
}

/* Parses a copy of tiny.core changed by put (offset, bytes); returns the status and the line. */
static int parse_changed(const char *core, size_t len, size_t at, const void *bytes, size_t n,
                         size_t keep, struct err *e)
{
    char *copy = malloc(len);
    memcpy(copy, core, len);
    if (n)
        memcpy(copy + at, bytes, n);
    struct import_map m;
    int rc = import_parse(copy, keep ? keep : len, IMPORT_AUTO, &m, e);
    import_map_release(&m);
    free(copy);
    return rc;
}

static void test_core_segments_named_by_its_notes(void **state)
{
    (void)state;
    /* tiny.core (tests/helpers/make_tiny_core.py): a file's r-x text and r-- data, anonymous
     * rw-, an unlinked library; NT_FILE names them, NT_PRPSINFO the command. */
    struct import_map m;
    parse_fixture("tiny.core", &m);
    assert_int_equal(m.format, IMPORT_CORE);
    assert_int_equal(m.pid, 4242);
    assert_string_equal(m.program, "/srv/bin/server --port 8");
    assert_int_equal(m.by_gdb, 0);
    assert_int_equal(m.left_out, 0);
    assert_int_equal(m.regions.n, 4);
    const struct region *v = m.regions.v;
    assert_string_equal(v[0].perms, "r-xp");
    assert_string_equal(v[0].path, "/srv/bin/server");
    assert_int_equal(v[0].category, CAT_IMAGE);
    assert_string_equal(v[1].perms, "r--p");
    assert_int_equal(v[1].offset, 2 * 4096);
    assert_int_equal(v[1].category, CAT_IMAGE); /* the same file as the text, by name */
    assert_null(v[2].path);
    assert_string_equal(v[2].perms, "rw-p");
    assert_string_equal(v[3].path, "/srv/lib/gone.so");
    assert_true(v[3].flags & REGION_DELETED);
    assert_int_equal(v[3].offset, 5 * 4096);
    import_map_release(&m);

    /* Damaged and foreign cores: one line each, never a crash. */
    size_t len;
    char *core = tu_fixture("tiny.core", &len);
    struct err e = {0};
    const uint8_t class32 = 1, big = 2, ff[2] = {0xfe, 0xff}, exec_type[2] = {2, 0},
                  arm[2] = {40, 0}, huge32[4] = {0xff, 0xff, 0xff, 0x7f};
    const uint8_t huge64[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f};
    const uint64_t overlap = 0x401000;
    struct {
        size_t at;
        const void *bytes;
        size_t n, keep;
        int code;
        const char *want;
    } cases[] = {
        {4, &class32, 1, 0, ERR_UNSUPPORTED, "32-bit"},
        {5, &big, 1, 0, ERR_UNSUPPORTED, "big-endian"},
        {16, exec_type, 2, 0, ERR_PARSE, "not a core file"},
        {18, arm, 2, 0, ERR_UNSUPPORTED, "only x86-64 and aarch64"},
        {56, ff, 2, 0, ERR_PARSE, "cut short"},                   /* 65,534 program headers */
        {64 + 32, huge64, 8, 0, ERR_PARSE, "notes run past"},     /* the notes' size */
        {64 + 56 * 5 + 4, huge32, 4, 0, ERR_PARSE, "runs past"},  /* a note's desc size */
        {64 + 56 * 2 + 16, &overlap, 8, 0, ERR_PARSE, "overlap"}, /* segment 2 inside 1 */
        {0, NULL, 0, 300, ERR_PARSE, "cut short"},                /* the file cut short */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc =
            parse_changed(core, len, cases[i].at, cases[i].bytes, cases[i].n, cases[i].keep, &e);
        if (rc != cases[i].code || !strstr(e.msg, cases[i].want))
            fail_msg("case %zu: %d '%s', expected '%s'", i, rc, e.msg, cases[i].want);
    }
    free(core);
}

/* Writes text to a /proc/sys file; 0 or -1. */
static int write_sys(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int rc = fputs(text, f) >= 0 ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* A diff's text says no change at all: nothing changed, and no category's bytes moved. */
static void assert_no_change(const char *out)
{
    const char *sum = strstr(out, "summary: 0 changes\n");
    if (!sum)
        fail_msg("changes: %s", out);
    const char *line = strchr(sum, '\n') + 1; /* the total's */
    line = strchr(line, '\n');
    if (line && line[1])
        fail_msg("a category's bytes moved: %s", line + 1);
}

static void test_kernel_core_is_exact(void **state)
{
    (void)state;
    /* The kernel's own core dump has one PT_LOAD per mapping with its exact flags, and NT_FILE
     * names every file mapping: imported, it is the live snapshot taken just before the crash,
     * but for sharing ('p') and the names of [heap], [stack] and the like. Needs root, to point
     * core_pattern at a directory for a moment. */
    if (geteuid() != 0)
        skip();
    char *dir = NULL, *db = tu_tmppath("k.db", &dir);
    size_t len;
    char *old = tu_read_file("/proc/sys/kernel/core_pattern", &len);
    char pattern[4200], core[4300];
    snprintf(pattern, sizeof(pattern), "%s/core.%%p", dir);
    struct tu_child c;
    tu_child_start(&c);
    tu_child_ok(&c, "mapfile %s/a\\sb.bin 8192 rw- s", dir);
    tu_child_ok(&c, "mapat 0x240000000 65536 ---");
    tu_child_ok(&c, "many 200");
    tu_child_ok(&c, "threads 2"); /* stacks whose owners only the live snapshot knows */
    /* Names that the kernel writes otherwise in smaps than in a core's notes: a newline
     * (\012 in smaps), an unlinked file (" (deleted)"). */
    tu_child_ok(&c, "mapfile %s/new\\nline.bin 4096 r-- p", dir);
    tu_child_ok(&c, "mapfile %s/gone.bin 4096 rw- s", dir);
    tu_child_ok(&c, "unlink %s/gone.bin", dir);
    char pid[16], proc[64], smaps[4200];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    snprintf(smaps, sizeof(smaps), "%s/before.smaps", dir);
    snprintf(proc, sizeof(proc), "/proc/%d/smaps", (int)c.pid);
    tu_copy_file(proc, smaps); /* saved just before the crash */
    const struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
    assert_int_equal(prlimit(c.pid, RLIMIT_CORE, &unlimited, NULL), 0);
    assert_int_equal(write_sys("/proc/sys/kernel/core_pattern", pattern), 0);
    kill(c.pid, SIGSEGV);
    int status = 0;
    waitpid(c.pid, &status, 0);
    snprintf(core, sizeof(core), "%s/core.%d", dir, (int)c.pid);
    c.pid = 0;
    close(c.in);
    close(c.out);
    write_sys("/proc/sys/kernel/core_pattern", old); /* back before anything can fail */
    free(old);
    assert_true(WIFSIGNALED(status) && WCOREDUMP(status));
    tu_vmsnap(&r, "-d", db, "import", core, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "2\n");
    assert_string_equal(r.err, ""); /* nothing left out */
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(db);
    int64_t live = tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id = 1");
    assert_true(live > 200);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id = 2"), live);
    /* Every live region, at the same range with the same rwx, and a file by its name. */
    assert_int_equal(
        tu_q64(h, "SELECT count(*) FROM regions l WHERE l.snapshot_id = 1 AND NOT EXISTS (SELECT 1 "
                  "FROM regions c WHERE c.snapshot_id = 2 AND c.start = l.start AND c.\"end\" = "
                  "l.\"end\" AND substr(c.perms, 1, 3) = substr(l.perms, 1, 3) AND (l.inode = 0 OR "
                  "(c.path = l.path AND c.offset = l.offset)))"),
        0);
    sqlite3_close(h);
    /* Against the live snapshot, what a core cannot know ([heap] and the like unnamed, the
     * shared file mapping read as private, whose stacks the threads' are) is no change. */
    for (int k = 0; k < 2; k++) {
        tu_vmsnap(&r, "-d", db, "diff", k ? "2" : "1", k ? "1" : "2", "--summary", NULL);
        assert_int_equal(r.status, 0);
        assert_no_change(r.out);
        tu_run_release(&r);
    }
    /* And against the smaps saved just before the crash. */
    tu_vmsnap(&r, "-d", db, "import", smaps, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "3\n");
    tu_run_release(&r);
    for (int k = 0; k < 2; k++) {
        tu_vmsnap(&r, "-d", db, "diff", k ? "2" : "3", k ? "3" : "2", NULL);
        if (r.status != 0)
            fail_msg("diff of the core and the smaps: %s", r.out);
        assert_no_change(r.out);
        tu_run_release(&r);
    }
    free(db);
    free(dir);
}

/*
 * What people save at a recorded moment, imported and diffed against the recording: smaps, and
 * pmap -XX with and without -p (bare file names), of a process with threads (stacks whose
 * owners only the recording knows) and a shared file mapping. Each is no change.
 */
static void test_imports_of_a_recorded_moment_diff_to_nothing(void **state)
{
    (void)state;
    char *dir = NULL, *db = tu_tmppath("same.db", &dir);
    struct tu_child c;
    tu_child_start(&c);
    tu_child_ok(&c, "threads 3");
    tu_child_ok(&c, "mapfile %s/shared.bin 8192 rw- s", dir);
    uint64_t anon = tu_child_ok(&c, "mapat 0x240000000 1048576 rw-");
    tu_child_ok(&c, "touch 0x%llx 20480", (unsigned long long)anon);
    char pid[16], proc[64], smaps[4200], bare[4200], whole[4200];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, "--detail", "smaps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    snprintf(smaps, sizeof(smaps), "%s/saved.smaps", dir);
    snprintf(proc, sizeof(proc), "/proc/%d/smaps", (int)c.pid);
    tu_copy_file(proc, smaps);
    const char *pmap = access("/usr/bin/pmap", X_OK) == 0 ? "/usr/bin/pmap" : "/bin/pmap";
    snprintf(bare, sizeof(bare), "%s/saved.pmap", dir);
    snprintf(whole, sizeof(whole), "%s/saved-p.pmap", dir);
    char *pmap_xx[] = {(char *)pmap, "-XX", pid, NULL};
    char *pmap_xxp[] = {(char *)pmap, "-XX", "-p", pid, NULL};
    struct tu_run pr;
    tu_run(&pr, pmap_xx);
    assert_int_equal(pr.status, 0);
    assert_null(strstr(pr.out, "/libc.so")); /* its names are bare */
    tu_write_file(bare, pr.out, strlen(pr.out));
    tu_run_release(&pr);
    tu_run(&pr, pmap_xxp);
    assert_int_equal(pr.status, 0);
    tu_write_file(whole, pr.out, strlen(pr.out));
    tu_run_release(&pr);
    tu_vmsnap(&r, "-d", db, "import", smaps, bare, whole, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "2\n3\n4\n");
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(db);
    /* The recording knew the threads' stacks; the files could not. */
    assert_true(tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id = 1 AND owner LIKE "
                          "'thread %%'") >= 3);
    assert_int_equal(
        tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id > 1 AND owner LIKE 'thread %%'"),
        0);
    sqlite3_close(h);
    const char *imported[] = {"2", "3", "4"};
    for (int k = 0; k < 3; k++) {
        tu_vmsnap(&r, "-d", db, "diff", "1", imported[k], NULL);
        if (r.status != 0 || strstr(r.out, "summary: 0 changes") == NULL)
            fail_msg("diff 1 %s: %s", imported[k], r.out);
        assert_no_change(r.out);
        tu_run_release(&r);
        tu_vmsnap(&r, "-d", db, "diff", imported[k], "1", NULL);
        assert_int_equal(r.status, 0);
        assert_no_change(r.out);
        tu_run_release(&r);
    }
    /* Two imports that know the same: as before, no learning between them is needed. */
    tu_vmsnap(&r, "-d", db, "diff", "3", "4", NULL);
    assert_int_equal(r.status, 0);
    assert_no_change(r.out);
    tu_run_release(&r);
    tu_child_stop(&c);
    free(db);
    free(dir);
}

static void test_times(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(import_parse_time("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(import_parse_time("2026-11-23T07:00:00Z", &ms), 0);
    assert_int_equal(ms, 1795417200000LL);
    assert_int_equal(import_parse_time("2026-11-23 07:00", &ms), 0);
    assert_int_equal(ms, 1795417200000LL);
    assert_int_equal(import_parse_time("2026-11-23T08:30:00.25+01:30", &ms), 0);
    assert_int_equal(ms, 1795417200250LL);
    assert_int_equal(import_parse_time("2024-02-29", &ms), 0);
    assert_int_equal(import_parse_time("2026-02-29", &ms), -1);
    assert_int_equal(import_parse_time("2026-13-01", &ms), -1);
    assert_int_equal(import_parse_time("2026-11-23T25:00", &ms), -1);
    assert_int_equal(import_parse_time("2026-11-23T07:00:00Zjunk", &ms), -1);
    assert_int_equal(import_parse_time("", &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saved_text_imports_to_the_live_regions),
        cmocka_unit_test(test_bad_files_write_nothing),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_pmap_fixtures_read_as_the_maps),
        cmocka_unit_test(test_core_segments_named_by_its_notes),
        cmocka_unit_test(test_gcore_core_imports_what_it_holds),
        cmocka_unit_test(test_kernel_core_is_exact),
        cmocka_unit_test(test_imports_of_a_recorded_moment_diff_to_nothing),
        cmocka_unit_test(test_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
