/*
 * Hostile or odd files and input, end to end: what is at the database path (a FIFO, a device,
 * another user's file, a file others may read, a damaged file), text that is not UTF-8 or holds
 * control bytes, SQL that tries to leave the database, and labels and targets that do not fit.
 * Each gets one clear line and a non-zero exit, and loses nothing already recorded.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json/json.h"
#include "testutil.h"

static void assert_ok(const struct tu_run *r)
{
    if (r->status != 0)
        fail_msg("expected success; got %d and '%s'", r->status, r->err);
}

struct fx {
    struct tu_child c;
    char pid[16];
    char *dir;
    char db[4096];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    tu_child_start(&f->c);
    snprintf(f->pid, sizeof(f->pid), "%d", (int)f->c.pid);
    f->dir = tu_tmpdir();
    snprintf(f->db, sizeof(f->db), "%s/v.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_child_stop(&f->c);
    free(f->dir);
    free(f);
    return 0;
}

/* The file holds exactly before (which this frees): nothing was written into it. */
static void assert_unchanged(const char *path, char *before, size_t before_len)
{
    size_t after_len;
    char *after = tu_read_file(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
}

static void snap(struct fx *f, const char *db)
{
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", f->pid, "--detail", "maps", NULL);
    assert_ok(&r);
    tu_run_release(&r);
}

/* A FIFO or a device at the database path: refused at once, never opened. */
static void test_fifo_and_device(void **state)
{
    struct fx *f = *state;
    char fifo[4200];
    snprintf(fifo, sizeof(fifo), "%s/fifo.db", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *cmds[][3] = {{"snap", "-p", f->pid}, {"list", NULL, NULL}, {"show", "last", NULL}};
    for (int i = 0; i < 3; i++) {
        struct tu_run r;
        /* alarm(): a command that opened the FIFO would block forever. */
        char *argv[] = {"/usr/bin/timeout",
                        "10",
                        (char *)VMSNAP_BIN,
                        "-d",
                        fifo,
                        (char *)cmds[i][0],
                        (char *)cmds[i][1],
                        (char *)cmds[i][2],
                        NULL};
        tu_run(&r, argv);
        tu_assert_trouble(&r, "not a regular file");
        tu_run_release(&r);
    }
    struct tu_run r;
    tu_vmsnap(&r, "-d", "/dev/null", "snap", "-p", f->pid, NULL);
    tu_assert_trouble(&r, "not a regular file");
    tu_run_release(&r);
    assert_int_equal(access("/dev/null-journal", F_OK), -1);
    assert_int_equal(access("/dev/null-wal", F_OK), -1);
}

/* A database that others may read, or that belongs to another user: never written into. */
static void test_files_others_control(void **state)
{
    struct fx *f = *state;
    snap(f, f->db);
    size_t before_len;
    char *before = tu_read_file(f->db, &before_len);

    assert_int_equal(chmod(f->db, 0644), 0);
    struct tu_run r;
    tu_vmsnap(&r, "-d", f->db, "snap", "-p", f->pid, NULL);
    tu_assert_trouble(&r, "chmod 600");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "list", NULL); /* reading is fine */
    assert_ok(&r);
    tu_run_release(&r);
    assert_int_equal(chmod(f->db, 0600), 0);

    if (geteuid() == 0) {
        /* Pre-created by another user, empty and world-readable, or a symlink to such a file. */
        char planted[4200], link[4200];
        snprintf(planted, sizeof(planted), "%s/planted.db", f->dir);
        snprintf(link, sizeof(link), "%s/link.db", f->dir);
        int fd = open(planted, O_CREAT | O_WRONLY, 0666);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(chmod(planted, 0666), 0);
        assert_int_equal(chown(planted, 65534, 65534), 0);
        assert_int_equal(symlink(planted, link), 0);
        const char *paths[] = {planted, link};
        for (int i = 0; i < 2; i++) {
            tu_vmsnap(&r, "-d", paths[i], "snap", "-p", f->pid, NULL);
            tu_assert_trouble(&r, "belongs to another user");
            tu_run_release(&r);
        }
        struct stat sb;
        assert_int_equal(stat(planted, &sb), 0);
        assert_int_equal(sb.st_size, 0);
        char wal[4300];
        snprintf(wal, sizeof(wal), "%s-wal", planted);
        assert_int_equal(access(wal, F_OK), -1);
        /* Our own file, but a -wal beside it that somebody else planted. */
        snprintf(wal, sizeof(wal), "%s-wal", f->db);
        fd = open(wal, O_CREAT | O_WRONLY, 0666);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(chown(wal, 65534, 65534), 0);
        tu_vmsnap(&r, "-d", f->db, "snap", "-p", f->pid, NULL);
        tu_assert_trouble(&r, "wal file belongs to another user");
        tu_run_release(&r);
        unlink(wal);
    }
    assert_unchanged(f->db, before, before_len);
}

/* A damaged database: a writer notices before writing anything. */
static void test_damaged_database(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 3; i++)
        snap(f, f->db);
    struct tu_run r;
    /* The root page of the label index: a snap without a label never reads it, so only the
     * check before writing can notice it is damaged. */
    tu_vmsnap(&r, "-d", f->db, "query",
              "SELECT rootpage FROM sqlite_schema WHERE name = 'snapshots_label'", NULL);
    assert_ok(&r);
    long root = strtol(strchr(r.out, '\n') + 1, NULL, 10);
    assert_true(root > 1);
    tu_run_release(&r);
    int fd = open(f->db, O_WRONLY);
    char junk[4096];
    memset(junk, 0x5a, sizeof(junk));
    assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)(root - 1) * 4096),
                     (ssize_t)sizeof(junk));
    close(fd);
    size_t before_len;
    char *before = tu_read_file(f->db, &before_len);
    tu_vmsnap(&r, "-d", f->db, "snap", "-p", f->pid, NULL);
    tu_assert_trouble(&r, "is damaged");
    assert_non_null(strstr(r.err, ".recover"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "record", "-p", f->pid, "-n", "1", NULL);
    tu_assert_trouble(&r, "is damaged");
    tu_run_release(&r);
    assert_unchanged(f->db, before, before_len);
}

/* Text that is not UTF-8, and control bytes: JSON stays valid UTF-8 and names round-trip
 * through "path_hex"; tables escape what a terminal would act on. */
static void test_text_that_is_not_utf8(void **state)
{
    struct fx *f = *state;
    /* A file name with a stray byte (0xff), an overlong form and a newline in it. */
    char name[4200];
    snprintf(name, sizeof(name), "%s/bad\xff\xe0\x80\x80name", f->dir);
    tu_child_ok(&f->c, "mapfile %s 8192 r-- p", name);
    snap(f, f->db);
    struct tu_run r;
    tu_vmsnap(&r, "-d", f->db, "-j", "show", "last", NULL);
    assert_ok(&r);
    assert_true(json_utf8_valid(r.out, strlen(r.out)));
    char hex[8500] = "\"path_hex\":\"";
    size_t k = strlen(hex);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        k += (size_t)sprintf(hex + k, "%02x", *p);
    if (!strstr(r.out, hex))
        fail_msg("no exact path_hex for the file name in: %.400s", r.out);
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", f->db, "-j", "query",
              "SELECT cast(x'e08080' AS text) AS overlong, cast(x'eda080' AS text) AS surrogate, "
              "cast(x'f4908080' AS text) AS too_big, cast(x'ff0a1b' AS text) AS ctl",
              NULL);
    assert_ok(&r);
    assert_true(json_utf8_valid(r.out, strlen(r.out)));
    assert_non_null(strstr(r.out, "\\ufffd"));
    assert_non_null(strstr(r.out, "\\n\\u001b"));
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", f->db, "query", "SELECT cast(x'41011b5b326a0a42ff' AS text) AS t", NULL);
    assert_ok(&r);
    assert_null(strchr(r.out, '\x1b'));
    assert_null(strchr(r.out, '\x01'));
    assert_non_null(strstr(r.out, "A\\x01\\x1b[2j\\nB\\xff"));
    assert_true(json_utf8_valid(r.out, strlen(r.out)));
    tu_run_release(&r);
}

/* query reads this database and nothing else. */
static void test_query_stays_inside(void **state)
{
    struct fx *f = *state;
    snap(f, f->db);
    char other[4200];
    snprintf(other, sizeof(other), "ATTACH '%s/other.db' AS o", f->dir);
    const char *denied[] = {other,
                            "PRAGMA writable_schema = 1",
                            "PRAGMA journal_mode = DELETE",
                            "PRAGMA user_version = 99",
                            "VACUUM INTO '/tmp/vmsnap-copy.db'",
                            "DELETE FROM snapshots",
                            "SELECT * FROM pragma_writable_schema"};
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        struct tu_run r;
        tu_vmsnap(&r, "-d", f->db, "query", denied[i], NULL);
        if (r.status != 2 || !strstr(r.err, "read-only"))
            fail_msg("'%s' was not refused: %d %s", denied[i], r.status, r.err);
        tu_run_release(&r);
    }
    snprintf(other, sizeof(other), "%s/other.db", f->dir);
    assert_int_equal(access(other, F_OK), -1);
    assert_int_equal(access("/tmp/vmsnap-copy.db", F_OK), -1);
    struct tu_run r;
    tu_vmsnap(&r, "-d", f->db, "query", "PRAGMA table_info(regions)", NULL);
    assert_ok(&r);
    assert_non_null(strstr(r.out, "snapshot_id"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "query", "SELECT count(*) AS n FROM snapshots", NULL);
    assert_ok(&r);
    assert_non_null(strstr(r.out, "1"));
    tu_run_release(&r);
}

/* query's limits: a statement that never ends, one that needs ever more temporary space, a
 * table without end, and the function that answers with an address. */
static void test_query_limits(void **state)
{
    struct fx *f = *state;
    snap(f, f->db);
    static const char endless[] =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) ";
    char sql[512];
    struct tu_run r;
    snprintf(sql, sizeof(sql), "%sSELECT max(x) FROM c", endless);
    tu_vmsnap(&r, "-d", f->db, "query", "--timeout", "1s", sql, NULL);
    tu_assert_trouble(&r, "--timeout");
    tu_run_release(&r);
    /* 300 MB of distinct rows: in memory under the limit, never in a temporary file. */
    snprintf(sql, sizeof(sql),
             "%sSELECT count(*) FROM (SELECT DISTINCT randomblob(100) FROM c LIMIT 3000000)",
             endless);
    tu_vmsnap(&r, "-d", f->db, "query", "--max-memory", "32M", sql, NULL);
    tu_assert_trouble(&r, "--max-memory");
    tu_run_release(&r);
    snprintf(sql, sizeof(sql), "%sSELECT x FROM c", endless);
    tu_vmsnap(&r, "-d", f->db, "query", "--max-rows", "5", sql, NULL);
    tu_assert_trouble(&r, "--max-rows");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "-j", "query", "--timeout", "2s", sql, NULL);
    tu_assert_trouble(&r, "--timeout"); /* streamed as JSON until the limit */
    assert_true(strlen(r.out) > 1000);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "query", "SELECT fts3_tokenizer('simple')", NULL);
    tu_assert_trouble(&r, "not authorized");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "query", "--timeout", "x", "SELECT 1", NULL);
    tu_assert_trouble(&r, "invalid timeout");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "query", "--timeout", "0", "--max-memory", "0", "--max-rows", "0",
              "SELECT count(*) FROM regions", NULL);
    assert_ok(&r);
    tu_run_release(&r);
}

/* A recording in a directory its reader may not write (no -shm can be made there): read as it
 * is. Root is the one user a directory cannot refuse, so the reader is nobody. */
static void test_read_only_directory(void **state)
{
    struct fx *f = *state;
    if (geteuid() != 0)
        skip();
    snap(f, f->db);
    snap(f, f->db);
    char ro[4200], db[4300];
    snprintf(ro, sizeof(ro), "%s/ro", f->dir);
    snprintf(db, sizeof(db), "%s/v.db", ro);
    assert_int_equal(mkdir(ro, 0755), 0);
    tu_copy_file(f->db, db);
    assert_int_equal(chown(db, 65534, 65534), 0);
    assert_int_equal(chmod(db, 0600), 0);
    assert_int_equal(chown(ro, 65534, 65534), 0);
    assert_int_equal(chmod(ro, 0555), 0);
    assert_int_equal(chmod(f->dir, 0755), 0);
    const char *cmds[][4] = {{"list"},
                             {"show", "last"},
                             {"diff", "first", "last"},
                             {"query", "SELECT count(*) FROM regions"}};
    for (int i = 0; i < 4; i++) {
        char *argv[12] = {"/usr/bin/setpriv",
                          "--reuid=65534",
                          "--regid=65534",
                          "--clear-groups",
                          (char *)VMSNAP_BIN,
                          "-d",
                          db};
        int n = 7;
        for (int k = 0; k < 4 && cmds[i][k]; k++)
            argv[n++] = (char *)cmds[i][k];
        argv[n] = NULL;
        struct tu_run r;
        tu_run(&r, argv);
        if (r.status != 0)
            fail_msg("%s in a read-only directory: %d %s", cmds[i][0], r.status, r.err);
        tu_run_release(&r);
    }
    chmod(ro, 0755);
}

/*
 * A recording whose newest page 1 is still in its -wal, the file itself not yet saying vmsnap (a
 * checkpoint grows the file before it writes page 1): a reader at that moment reads it, through
 * the -wal, instead of calling it another program's file.
 */
static void test_header_behind_its_wal(void **state)
{
    struct fx *f = *state;
    snap(f, f->db);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "PRAGMA wal_autocheckpoint = 0; BEGIN; UPDATE snapshots SET "
                                  "label = 'x' WHERE id = 1; PRAGMA application_id = 1986884462; "
                                  "COMMIT",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    /* The file's own header: no application id yet. */
    int fd = open(f->db, O_WRONLY);
    assert_true(fd >= 0);
    const unsigned char zero[4] = {0};
    assert_int_equal(pwrite(fd, zero, 4, 68), 4);
    close(fd);
    struct tu_run r;
    tu_vmsnap(&r, "-d", f->db, "list", NULL);
    assert_ok(&r);
    assert_non_null(strstr(r.out, " x "));
    tu_run_release(&r);
    sqlite3_close(h);
}

/* A label names one snapshot of a target; an unknown target is named as such. */
static void test_labels_and_targets(void **state)
{
    struct fx *f = *state;
    struct tu_run r;
    tu_vmsnap(&r, "-d", f->db, "snap", "-p", f->pid, "--label", "deploy", NULL);
    assert_ok(&r);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "snap", "-p", f->pid, "--label", "deploy", NULL);
    tu_assert_trouble(&r, "label 'deploy' is already used");
    tu_run_release(&r);
    /* Generated labels never collide: a second recording with the same prefix. */
    for (int i = 0; i < 2; i++) {
        tu_vmsnap(&r, "-d", f->db, "record", "-p", f->pid, "-n", "2", "-i", "0", "--label-prefix",
                  "run", NULL);
        assert_ok(&r);
        tu_run_release(&r);
    }
    tu_vmsnap(&r, "-d", f->db, "query",
              "SELECT group_concat(label, ',') FROM (SELECT label FROM snapshots ORDER BY seq)",
              NULL);
    assert_ok(&r);
    assert_non_null(strstr(r.out, "deploy,run-1,run-2,run-1-2,run-2-2"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "show", "last", "--target", "99", NULL);
    tu_assert_trouble(&r, "no target with id 99");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "list", "--target", "99", NULL);
    tu_assert_trouble(&r, "no target with id 99");
    tu_run_release(&r);
}

/*
 * One label rule for the four commands that make labels: what a selector could read as (an id,
 * first, last, last~N, FILE:SNAP) is refused by snap, mark, import and record --label-prefix
 * alike, in the same words, and nothing is written. A label of another target is named as such.
 */
static void test_one_label_rule(void **state)
{
    struct fx *f = *state;
    char maps[4200];
    snprintf(maps, sizeof(maps), "%s/edge.maps", FIXTURES_DIR);
    static const char *const bad[] = {"5", "first", "last", "last~2", "last~x", "a.db:last"};
    static const char want[] = "would read as a snapshot selector (an id, first, last, last~N or "
                               "FILE:SNAP) -- choose another";
    struct tu_run r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tu_vmsnap(&r, "-d", f->db, "snap", "-p", f->pid, "--label", bad[i], NULL);
        tu_assert_trouble(&r, want);
        tu_run_release(&r);
        tu_vmsnap(&r, "-d", f->db, "import", maps, "--label", bad[i], NULL);
        tu_assert_trouble(&r, want);
        tu_run_release(&r);
        tu_vmsnap(&r, "-d", f->db, "mark", "--label", bad[i], NULL);
        tu_assert_trouble(&r, want);
        tu_run_release(&r);
    }
    for (size_t i = 0; i < 2; i++) {
        const char *prefix = i ? "last~" : "run:";
        tu_vmsnap(&r, "-d", f->db, "record", "-p", f->pid, "-n", "1", "--label-prefix", prefix,
                  NULL);
        tu_assert_trouble(&r, want);
        tu_run_release(&r);
    }
    assert_int_equal(access(f->db, F_OK), -1);
    /* A label that only another target has. */
    char me[16];
    snprintf(me, sizeof(me), "%d", (int)getpid());
    tu_vmsnap(&r, "-d", f->db, "snap", "-p", f->pid, "--label", "mine", NULL);
    assert_ok(&r);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "snap", "-p", me, NULL);
    assert_ok(&r);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", f->db, "growth", "--target", "2", "--from", "mine", NULL);
    tu_assert_trouble(&r, "no snapshot labelled 'mine' in target 2: target 1 has one");
    tu_run_release(&r);
}

/* record -n with a command: when recording stops first, it says it waits for the command. */
static void test_record_says_it_waits(void **state)
{
    struct fx *f = *state;
    struct tu_run r;
    tu_vmsnap(&r, "-d", f->db, "record", "-n", "1", "--", "/bin/sh", "-c", "sleep 1; exit 3", NULL);
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.err, "waiting for '/bin/sh'"));
    tu_run_release(&r);
}

int main(int argc, char **argv)
{
    /* One test by name: test_x NAME (a glob). */
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifo_and_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_others_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_that_is_not_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_stays_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_behind_its_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels_and_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_label_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_says_it_waits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
