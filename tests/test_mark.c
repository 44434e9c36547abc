/*
 * vmsnap mark: every recorder running on a database takes a labelled snapshot now. Real
 * recorders of real children; the snapshots are checked in the database, including that the
 * marked snapshot saw a change made just before the mark.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* The first column of sql's first row; -1 when it cannot run (a database still being made),
 * unless must. */
static int64_t query_int(int must, const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *s = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
        if (must)
            fail_msg("prepare %s: %s", sql, sqlite3_errmsg(h));
    } else if (sqlite3_step(s) == SQLITE_ROW) {
        v = sqlite3_column_int64(s, 0);
    } else if (must) {
        fail_msg("step %s: %s", sql, sqlite3_errmsg(h));
    }
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}

static int64_t one_int(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t one_int(const char *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return query_int(1, db, sql);
}

/* Waits up to 10 s for sql's count to reach want. */
static void wait_count(const char *db, const char *sql, int64_t want)
{
    for (int i = 0; i < 1000; i++) {
        if (access(db, F_OK) == 0 && query_int(0, db, sql) >= want)
            return;
        usleep(10 * 1000);
    }
    fail_msg("timed out waiting for %s to reach %lld", sql, (long long)want);
}

struct rig {
    struct tu_child child[2];
    struct tu_proc rec[2];
    char pid[2][16];
    char *db;
    int n;
};

/* n children, each recorded (once an hour: only marks add snapshots) into one database. */
static void rig_start(struct rig *g, int n, const char *name)
{
    memset(g, 0, sizeof(*g));
    g->n = n;
    g->db = tu_tmppath(name, NULL);
    for (int i = 0; i < n; i++) {
        tu_child_start(&g->child[i]);
        snprintf(g->pid[i], sizeof(g->pid[i]), "%d", (int)g->child[i].pid);
        tu_spawn_vmsnap(&g->rec[i], "-d", g->db, "record", "-p", g->pid[i], "-i", "1h", NULL);
        wait_count(g->db, "SELECT count(*) FROM recorders", i + 1);
        wait_count(g->db, "SELECT count(*) FROM snapshots", i + 1);
    }
}

static void rig_stop(struct rig *g)
{
    for (int i = 0; i < g->n; i++) {
        struct tu_run r;
        kill(g->rec[i].pid, SIGTERM);
        tu_wait(&g->rec[i], &r);
        if (r.status != 0)
            fail_msg("recorder %d: exit %d: %s", i, r.status, r.err);
        tu_run_release(&r);
        tu_child_stop(&g->child[i]);
    }
    /* A recorder that stopped says so: no mark waits for it. */
    assert_int_equal(one_int(g->db, "SELECT count(*) FROM recorders"), 0);
    free(g->db);
}

static void test_mark_reaches_every_recorder(void **state)
{
    (void)state;
    struct rig g;
    rig_start(&g, 2, "two.db");
    /* A change in the first child just before the mark: its marked snapshot must show it. */
    tu_child_ok(&g.child[0], "mapat 0x340000000 65536 rw-");
    struct tu_run r;
    tu_vmsnap(&r, "-d", g.db, "mark", "--label", "leak-start", NULL);
    if (r.status != 0)
        fail_msg("mark: exit %d: %s", r.status, r.err);
    /* One snapshot id per recorder, each on its own line. */
    assert_int_equal(tu_count_lines(r.out), 2);
    long a = strtol(r.out, NULL, 10), b = strtol(strchr(r.out, '\n') + 1, NULL, 10);
    tu_run_release(&r);
    for (int i = 0; i < 2; i++) {
        long id = i ? b : a;
        assert_int_equal(one_int(g.db,
                                 "SELECT count(*) FROM snapshots WHERE id = %ld AND label = "
                                 "'leak-start' AND mark = 1",
                                 id),
                         1);
    }
    assert_int_equal(one_int(g.db,
                             "SELECT count(DISTINCT t.pid) FROM snapshots s JOIN targets t ON "
                             "t.id = s.target_id WHERE s.mark = 1 AND t.pid IN (%s, %s)",
                             g.pid[0], g.pid[1]),
                     2);
    assert_int_equal(one_int(g.db,
                             "SELECT count(*) FROM regions r JOIN snapshots s ON s.id = "
                             "r.snapshot_id JOIN targets t ON t.id = s.target_id WHERE s.mark = 1 "
                             "AND t.pid = %s AND r.start = 0x340000000 AND r.size = 65536",
                             g.pid[0]),
                     1);

    /* Without a label: mark-N, N the mark's number; a label used before gets a suffix. */
    tu_vmsnap(&r, "-d", g.db, "mark", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    assert_int_equal(one_int(g.db, "SELECT count(*) FROM snapshots WHERE label = 'mark-2' AND "
                                   "mark = 2"),
                     2);
    tu_vmsnap(&r, "-d", g.db, "-j", "mark", "--label", "leak-start", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "{\"mark\":3,\"label\":\"leak-start\",\"snapshots\":[{\"id\":"));
    assert_non_null(strstr(r.out, "\"label\":\"leak-start-2\""));
    tu_run_release(&r);
    assert_int_equal(one_int(g.db, "SELECT count(*) FROM snapshots WHERE label = 'leak-start-2'"),
                     2);
    /* A recorder's own SIGUSR1 keeps working, numbered on its own. */
    kill(g.rec[1].pid, SIGUSR1);
    wait_count(g.db, "SELECT count(*) FROM snapshots WHERE mark = 0", 1);
    rig_stop(&g);
}

/* Nobody records: one line, exit 2, and nothing is added. */
static void test_mark_without_recorder(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    char *db = tu_tmppath("none.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "mark", NULL);
    tu_assert_trouble(&r, "no database at");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "mark", "--label", "x", NULL);
    tu_assert_trouble(&r, "no recorder is running on");
    tu_run_release(&r);
    assert_int_equal(one_int(db, "SELECT count(*) FROM marks"), 0);
    assert_int_equal(one_int(db, "SELECT count(*) FROM snapshots"), 1);
    tu_child_stop(&c);
    free(db);
}

/* A recorder killed outright leaves its row: mark finds it dead, drops it, and says none runs. */
static void test_mark_after_recorder_killed(void **state)
{
    (void)state;
    struct rig g;
    rig_start(&g, 1, "killed.db");
    kill(g.rec[0].pid, SIGKILL);
    struct tu_run r;
    tu_wait(&g.rec[0], &r);
    tu_run_release(&r);
    assert_int_equal(one_int(g.db, "SELECT count(*) FROM recorders"), 1);
    tu_vmsnap(&r, "-d", g.db, "mark", NULL);
    tu_assert_trouble(&r, "no recorder is running on");
    tu_run_release(&r);
    assert_int_equal(one_int(g.db, "SELECT count(*) FROM recorders"), 0);
    assert_int_equal(one_int(g.db, "SELECT count(*) FROM marks"), 0);
    tu_child_stop(&g.child[0]);
    free(g.db);
}

/* Another process holds the write lock for 2 s: mark waits its turn and the mark is taken. */
static void test_mark_waits_out_a_lock(void **state)
{
    (void)state;
    struct rig g;
    rig_start(&g, 1, "locked.db");
    sqlite3 *hold = NULL;
    assert_int_equal(sqlite3_open(g.db, &hold), SQLITE_OK);
    assert_int_equal(sqlite3_exec(hold, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    struct tu_proc m;
    tu_spawn_vmsnap(&m, "-d", g.db, "mark", "--label", "late", NULL);
    usleep(2000 * 1000);
    assert_int_equal(one_int(g.db, "SELECT count(*) FROM snapshots WHERE label = 'late'"), 0);
    assert_int_equal(sqlite3_exec(hold, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(hold);
    struct tu_run r;
    tu_wait(&m, &r);
    if (r.status != 0)
        fail_msg("mark: exit %d: %s", r.status, r.err);
    assert_int_equal(tu_count_lines(r.out), 1);
    tu_run_release(&r);
    assert_int_equal(one_int(g.db, "SELECT count(*) FROM snapshots WHERE label = 'late'"), 1);
    rig_stop(&g);
}

static void test_mark_bad_arguments(void **state)
{
    (void)state;
    char *db = tu_tmppath("args.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "mark", "--label", "12", NULL);
    tu_assert_trouble(&r, "would read as a snapshot selector");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "mark", "--label", "", NULL);
    tu_assert_trouble(&r, "empty label");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "mark", "now", NULL);
    tu_assert_trouble(&r, "unexpected argument 'now'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "mark", "--label", NULL);
    tu_assert_trouble(&r, "needs a value");
    tu_run_release(&r);
    /* None of that created a database. */
    assert_int_equal(access(db, F_OK), -1);
    free(db);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mark_reaches_every_recorder),
        cmocka_unit_test(test_mark_without_recorder),
        cmocka_unit_test(test_mark_after_recorder_killed),
        cmocka_unit_test(test_mark_waits_out_a_lock),
        cmocka_unit_test(test_mark_bad_arguments),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
