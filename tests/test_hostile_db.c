/*
 * Crafted database files against every command. A real recording is copied and changed the
 * way an attacker (or a careless hand with sqlite3) would: views that never end, triggers,
 * another schema, values out of every range, damaged pages. Each variant is run through each
 * command with a time limit. Every run must end in time, with exit 0, 1 (a diff that found
 * changes) or 2 and one line "vmsnap: ..."; no sanitizer report, no crash, no terminal escape on
 * stdout; and a refused file is left as it was.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* Under the sanitizers a normal run takes well under a second; a hang is what this catches. */
#define RUN_LIMIT_MS 30000

struct variant {
    const char *name;
    /* SQL run on a copy of the recording (PRAGMA writable_schema allowed), or NULL */
    const char *sql;
    /* or a change to the file's bytes */
    void (*damage)(const char *path);
    /* every command must refuse it (its schema or identity is not vmsnap's) */
    int refused;
};

static void truncate_half(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
}

/* Pseudo-random bytes over every page but the first: the b-trees point anywhere. */
static void scramble_pages(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    unsigned x = 12345;
    char page[4096];
    for (off_t off = 4096 * 2; off < sb.st_size; off += 4096 * 3) {
        for (size_t i = 0; i < sizeof(page); i++) {
            x = x * 1103515245 + 12345;
            page[i] = (char)(x >> 16);
        }
        assert_int_equal(pwrite(fd, page, sizeof(page), off), (ssize_t)sizeof(page));
    }
    close(fd);
}

/* Page 1 past the header: the schema table itself is garbage. */
static void damage_schema_page(const char *path)
{
    int fd = open(path, O_WRONLY);
    char junk[3000];
    memset(junk, 0xa5, sizeof(junk));
    assert_int_equal(pwrite(fd, junk, sizeof(junk), 1000), (ssize_t)sizeof(junk));
    close(fd);
}

/* A -wal beside the file that is not a WAL. */
static void junk_wal(const char *path)
{
    char wal[4200];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    char junk[8192];
    memset(junk, 0x37, sizeof(junk));
    tu_write_file(wal, junk, sizeof(junk));
    chmod(wal, 0600);
}

static const struct variant variants[] = {
    {"recursive regions view",
     "DROP VIEW regions; CREATE VIEW regions AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
     "SELECT x + 1 FROM c) SELECT x AS snapshot_id, x AS start, x AS \"end\" FROM c",
     NULL, 1},
    {"recursive category_totals view",
     "DROP VIEW category_totals; CREATE VIEW category_totals AS WITH RECURSIVE c(x) AS (SELECT "
     "1 UNION ALL SELECT x + 1 FROM c) SELECT x AS snapshot_id, 'heap' AS category, 1 AS "
     "regions, 1 AS mapped, 1 AS committed, 1 AS rss FROM c",
     NULL, 1},
    {"trigger on snapshots",
     "CREATE TRIGGER t AFTER INSERT ON snapshots BEGIN DELETE FROM spans; END", NULL, 1},
    {"trigger on paths", "CREATE TRIGGER t BEFORE INSERT ON paths BEGIN SELECT 1; END", NULL, 1},
    {"virtual table", "CREATE VIRTUAL TABLE v USING rtree(id, a, b)", NULL, 1},
    {"a table dropped", "DROP TABLE marks", NULL, 1},
    {"a column added", "ALTER TABLE snapshots ADD COLUMN extra INTEGER", NULL, 1},
    {"a table redefined",
     "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql, 'NOT NULL', '') "
     "WHERE name = 'spans'",
     NULL, 1},
    {"newer schema", "PRAGMA user_version = 999", NULL, 1},
    {"older version number", "PRAGMA user_version = 3", NULL, 1},
    {"another program's id", "PRAGMA application_id = 305419896", NULL, 1},
    {"user's own index and view",
     "CREATE INDEX mine ON spans (start); CREATE VIEW my_view AS SELECT * FROM snapshots", NULL, 0},
    {"region_count of a billion",
     "UPDATE snapshots SET region_count = 1000000000, mapped_bytes = 9000000000000000000", NULL, 0},
    {"negative counts",
     "UPDATE snapshots SET region_count = -5, mapped_bytes = -1, rss_bytes = -9000000000000000000",
     NULL, 0},
    {"addresses out of range",
     "UPDATE spans SET start = -1, \"end\" = 0; UPDATE spans_open SET start = \"end\" + 4096 "
     "WHERE id % 2 = 0; UPDATE spans_open SET \"end\" = -4096 WHERE id % 3 = 0",
     NULL, 0},
    {"text where numbers go",
     "UPDATE spans_open SET start = 'abc', \"end\" = x'00ff', offset = 'z', inode = 1.5 WHERE id "
     "% 2 = 1",
     NULL, 0},
    {"intervals inside out",
     "UPDATE spans SET first_snap = last_snap + 5; UPDATE spans_open SET first_snap = 1000000000 "
     "WHERE id % 2 = 0",
     NULL, 0},
    {"seqs out of order",
     "UPDATE snapshots SET seq = -seq * 1000000007; UPDATE snapshots SET seq = "
     "9223372036854775807 WHERE id = (SELECT max(id) FROM snapshots)",
     NULL, 0},
    {"snapshots of no target", "UPDATE snapshots SET target_id = 999 WHERE id % 2 = 0", NULL, 0},
    {"targets out of range",
     "UPDATE targets SET pid = -1, start_time = -9223372036854775808, exe = NULL, cmdline = "
     "char(27) || '[31mred' || char(10) || 'line', host = char(27) || ']0;title' || char(7)",
     NULL, 0},
    {"labels with escapes",
     "UPDATE snapshots SET label = char(27) || '[2J' || char(10) || 'x' WHERE id % 2 = 0; "
     "UPDATE snapshots SET label = '5' WHERE id % 2 = 1",
     NULL, 0},
    {"paths with escapes and size",
     "UPDATE paths SET path = char(27) || '[31m/lib/' || char(13) || hex(randomblob(200000))", NULL,
     0},
    {"times that are not times",
     "UPDATE snapshots SET taken_at = 'not a time' WHERE id % 2 = 0; UPDATE snapshots SET "
     "taken_at = '9999-99-99T99:99:99Z' WHERE id % 2 = 1; UPDATE targets SET first_seen = ''",
     NULL, 0},
    {"unknown words",
     "UPDATE snapshots SET detail = 'bogus', method = ''; UPDATE spans SET category = 'bogus', "
     "perms = 'zzzzzzzzzz'; UPDATE spans_open SET perms = '', category = ''",
     NULL, 0},
    {"memory figures out of range",
     "UPDATE OR IGNORE span_mem SET rss = -1, pss = 9223372036854775807, swap = "
     "-9223372036854775808, "
     "first_snap = last_snap + 1",
     NULL, 0},
    {"category spans out of range",
     "UPDATE OR IGNORE category_spans SET mapped = -9223372036854775808, committed = "
     "9223372036854775807, "
     "rss = -1, first_snap = last_snap + 3",
     NULL, 0},
    {"parents in a cycle",
     "UPDATE targets SET parent_target_id = id; INSERT INTO targets (id, pid, start_time, os, "
     "boot_id, exec_key, first_seen, parent_target_id) VALUES (50, 1, 1, 'linux', 'b', 'e', "
     "'2020-01-01T00:00:00.000Z', 51), (51, 2, 2, 'linux', 'b', 'e', "
     "'2020-01-01T00:00:00.000Z', 50); UPDATE snapshots SET target_id = 50 WHERE id = (SELECT "
     "max(id) FROM snapshots)",
     NULL, 0},
    {"regions out of birth order",
     "UPDATE spans SET first_snap = (SELECT min(id) + 1 FROM snapshots) WHERE id = (SELECT "
     "max(id) FROM spans); UPDATE spans_open SET first_snap = (SELECT min(id) + 1 FROM "
     "snapshots) WHERE id = (SELECT max(id) FROM spans_open)",
     NULL, 0},
    {"span ids of another target",
     "UPDATE spans_open SET id = id + 4294967296 * 7 WHERE id % 2 = 0", NULL, 0},
    {"a huge command line", "UPDATE targets SET cmdline = hex(zeroblob(17000000)) WHERE id = 1",
     NULL, 0},
    {"a recorder that is not one",
     "INSERT INTO recorders (host, boot_id, pid, start_time, target_pid, started_at, marks_done) "
     "SELECT host, boot_id, 1, 0, 1, '2020-01-01T00:00:00.000Z', 0 FROM targets LIMIT 1; "
     "INSERT INTO marks (label, requested_at) VALUES (hex(zeroblob(100000)), 'x')",
     NULL, 0},
    {"regions whose snapshots are gone", "DELETE FROM snapshots WHERE id % 2 = 1", NULL, 0},
    {"no snapshots", "DELETE FROM snapshots", NULL, 0},
    {"half the file", NULL, truncate_half, 0},
    {"scrambled pages", NULL, scramble_pages, 0},
    {"damaged schema page", NULL, damage_schema_page, 0},
    {"a -wal that is not one", NULL, junk_wal, 0},
};

struct fx {
    struct tu_child c;
    char pid[16];
    char *dir;
    char base[4200]; /* the real recording every variant starts from */
    char good[4200]; /* a good database, for merging the variants into */
};

static void run_ok(char **argv)
{
    struct tu_run r;
    tu_run(&r, argv);
    if (r.status != 0)
        fail_msg("%s %s: %d %s", argv[3], argv[4] ? argv[4] : "", r.status, r.err);
    tu_run_release(&r);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    tu_child_start(&f->c);
    snprintf(f->pid, sizeof(f->pid), "%d", (int)f->c.pid);
    f->dir = tu_tmpdir();
    snprintf(f->base, sizeof(f->base), "%s/base.db", f->dir);
    snprintf(f->good, sizeof(f->good), "%s/good.db", f->dir);
    /* A recording with every kind of row: per-region figures, a region born, grown, re-protected
     * and freed, a label, a mark's recorder rows, and a child target. */
    char *snap_smaps[] = {VMSNAP_BIN, "-d", f->base, "snap", "-p", f->pid, "-l", "start", NULL};
    run_ok(snap_smaps);
    uint64_t a = tu_child_ok(&f->c, "map 1048576 rw-");
    tu_child_ok(&f->c, "touch %llu 65536", (unsigned long long)a);
    char *snap_maps[] = {VMSNAP_BIN, "-d", f->base, "snap", "-p", f->pid, "--detail", "maps", NULL};
    run_ok(snap_maps);
    tu_child_ok(&f->c, "protect %llu 65536 r--", (unsigned long long)a);
    tu_child_ok(&f->c, "map 65536 ---");
    char *record[] = {VMSNAP_BIN, "-d", f->base, "record",   "-p",    f->pid, "-n",
                      "3",        "-i", "10ms",  "--detail", "smaps", NULL};
    run_ok(record);
    tu_child_ok(&f->c, "unmap %llu 1048576", (unsigned long long)a);
    char *forker[] = {VMSNAP_BIN, "-d", f->base, "record", "-i", "50ms", "--", FORKER_BIN, NULL};
    struct tu_run r;
    tu_run(&r, forker);
    tu_run_release(&r);
    snap_smaps[7] = "end";
    run_ok(snap_smaps);
    char *good[] = {VMSNAP_BIN, "-d", f->good, "snap", "-p", f->pid, NULL};
    run_ok(good);
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

/* Makes path a copy of the recording, changed as v says. */
static void make_variant(const struct fx *f, const struct variant *v, const char *path)
{
    char side[4400];
    for (const char *sfx = ""; sfx; sfx = *sfx ? NULL : "-wal") {
        snprintf(side, sizeof(side), "%s%s", path, sfx);
        unlink(side);
    }
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    tu_copy_file(f->base, path);
    chmod(path, 0600);
    if (v->sql) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        char *msg = NULL;
        if (sqlite3_exec(db, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF", NULL, NULL,
                         &msg) != SQLITE_OK ||
            sqlite3_exec(db, v->sql, NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("variant '%s': %s", v->name, msg);
        sqlite3_close(db);
    }
    if (v->damage)
        v->damage(path);
}

/* A terminal acts on ESC and on the C1 controls; nothing printed may hold them raw. */
static const char *escape_in(const char *s)
{
    for (; *s; s++)
        if (*s == 0x1b || *s == '\r' || *s == 0x07)
            return s;
    return NULL;
}

/* Failures are counted and each printed, so one run shows every one. */
static int failures;
#define bad(...) (print_error(__VA_ARGS__), print_error("\n"), failures++)

/* What every run must show: it ended, with a status vmsnap gives, and nothing leaked out. */
static void check_run(const struct variant *v, const char *cmd, int killed, const struct tu_run *r)
{
    if (killed)
        return (void)bad("'%s' x %s: still running after %d ms", v->name, cmd, RUN_LIMIT_MS);
    if (strstr(r->err, "Sanitizer") || strstr(r->err, "runtime error"))
        bad("'%s' x %s: %s", v->name, cmd, r->err);
    if (r->status != 0 && r->status != 1 && r->status != 2)
        bad("'%s' x %s: status %d, %s", v->name, cmd, r->status, r->err);
    if (r->status == 2 && (tu_count_lines(r->err) != 1 || strncmp(r->err, "vmsnap: ", 8) != 0))
        bad("'%s' x %s: trouble, but not one line: '%s'", v->name, cmd, r->err);
    if (escape_in(r->out) || escape_in(r->err))
        bad("'%s' x %s: a raw terminal control in the output", v->name, cmd);
    if (v->refused && r->status != 2)
        bad("'%s' x %s: accepted (status %d)", v->name, cmd, r->status);
}

static void test_every_command_on_every_variant(void **state)
{
    struct fx *f = *state;
    char db[4300], report[4300], fixture[4300], good[4300];
    snprintf(db, sizeof(db), "%s/v.db", f->dir);
    snprintf(report, sizeof(report), "%s/r.html", f->dir);
    snprintf(fixture, sizeof(fixture), "%s/edge.maps", FIXTURES_DIR);
    snprintf(good, sizeof(good), "%s/good-copy.db", f->dir);
    const char *commands[][12] = {
        {"list"},
        {"-j", "list"},
        {"show", "last"},
        {"-j", "show", "first"},
        {"show", "1", "--category", "heap"},
        {"diff", "first", "last"},
        {"-j", "diff", "first", "last", "--summary"},
        {"diff", "1", "3", "--fail-on-growth", "1"},
        {"growth"},
        {"-j", "growth", "--top", "3"},
        {"report", "-o", report},
        {"query", "SELECT count(*), sum(size) FROM regions"},
        {"query", "SELECT * FROM category_totals"},
        {"snap", "-p", f->pid, "--detail", "maps"},
        {"record", "-p", f->pid, "-n", "2", "-i", "10ms"},
        {"mark"},
        {"import", fixture},
        {"merge", good},
    };
    size_t ncmd = sizeof(commands) / sizeof(commands[0]);
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        const struct variant *v = &variants[i];
        for (size_t c = 0; c <= ncmd; c++) {
            make_variant(f, v, db);
            tu_copy_file(f->good, good);
            chmod(good, 0600);
            size_t before_len = 0;
            char *before = v->refused ? tu_read_file(db, &before_len) : NULL;
            char *argv[16] = {VMSNAP_BIN, "-d", db};
            int n = 3;
            char cmd[200] = "";
            if (c < ncmd) {
                for (int k = 0; k < 12 && commands[c][k]; k++)
                    argv[n++] = (char *)commands[c][k];
            } else {
                /* The variant merged into a good database. */
                argv[2] = good;
                argv[n++] = "merge";
                argv[n++] = db;
            }
            argv[n] = NULL;
            for (int k = 3; k < n && k < 6; k++)
                snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), "%s ", argv[k]);
            struct tu_proc p;
            struct tu_run r;
            tu_spawn(&p, argv);
            int killed = tu_wait_limited(&p, &r, RUN_LIMIT_MS);
            check_run(v, cmd, killed, &r);
            if (v->refused && c < ncmd) {
                /* Refused: the file holds what it held. */
                size_t after_len;
                char *after = tu_read_file(db, &after_len);
                if (after_len != before_len || memcmp(before, after, before_len) != 0)
                    bad("'%s' x %s: refused, yet the file changed", v->name, cmd);
                free(after);
            }
            free(before);
            tu_run_release(&r);
        }
        /* The target vm_child is still alive: no recorder row made vmsnap signal it. */
        assert_int_equal(kill(f->c.pid, 0), 0);
    }
    assert_int_equal(failures, 0);
}

/* A recorder row that names a live process which is not a recorder (here the test's target):
 * mark must not signal it (SIGUSR1 would end it). */
static void test_mark_signals_only_recorders(void **state)
{
    struct fx *f = *state;
    char db[4300];
    snprintf(db, sizeof(db), "%s/m.db", f->dir);
    tu_copy_file(f->base, db);
    chmod(db, 0600);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    char sql[512];
    /* Its real start time, so only the check of what it is can tell. */
    char stat_path[64];
    snprintf(stat_path, sizeof(stat_path), "/proc/%d/stat", (int)f->c.pid);
    size_t len;
    char *st = tu_read_file(stat_path, &len);
    char *p = strrchr(st, ')') + 2;
    unsigned long long start = 0;
    for (int field = 3; field < 22; field++)
        p = strchr(p, ' ') + 1;
    start = strtoull(p, NULL, 10);
    free(st);
    snprintf(sql, sizeof(sql),
             "INSERT INTO recorders (host, boot_id, pid, start_time, target_pid, started_at, "
             "marks_done) SELECT host, boot_id, %d, %llu, 1, '2020-01-01T00:00:00.000Z', 0 FROM "
             "targets WHERE id = 1",
             (int)f->c.pid, start);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "mark", NULL);
    tu_assert_trouble(&r, "no recorder");
    tu_run_release(&r);
    usleep(100000);
    assert_int_equal(kill(f->c.pid, 0), 0);
    assert_int_equal(strncmp(tu_child_cmd(&f->c, "pid"), "ok ", 3), 0); /* still answering */
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command_on_every_variant),
        cmocka_unit_test(test_mark_signals_only_recorders),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
