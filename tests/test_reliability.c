/*
 * Reliability under the conditions users meet: many vmsnap processes writing one file at once,
 * a recorder killed at random moments, another process holding the write lock, a full disk.
 * After each, the database must be intact and every committed snapshot whole.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static void expect_ok(struct tu_run *r, const char *what)
{
    if (r->status != 0)
        fail_msg("%s: exit %d: %s", what, r->status, r->err);
}

/* Several processes create one new database at once: each commits, none sees a half-made file. */
static void test_creators_race(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    for (int round = 0; round < 8; round++) {
        char *db = tu_tmppath("new.db", NULL);
        struct tu_proc p[8];
        for (int k = 0; k < 8; k++)
            tu_spawn_vmsnap(&p[k], "-d", db, "snap", "-p", pid, "--detail", "maps", NULL);
        for (int k = 0; k < 8; k++) {
            struct tu_run r;
            tu_wait(&p[k], &r);
            expect_ok(&r, "snap into a database being created");
            tu_run_release(&r);
        }
        assert_int_equal(tu_check_whole(db), 8);
        free(db);
    }
    tu_child_stop(&c);
}

/*
 * Recorders, snaps, marks and readers of two targets at once on one file, while one target
 * churns its mappings: every command succeeds and every snapshot is whole.
 */
static void test_writers_meet(void **state)
{
    (void)state;
    struct tu_child a, b;
    tu_child_start(&a);
    tu_child_start(&b);
    tu_child_ok(&a, "many 300");
    tu_child_ok(&a, "churn on");
    tu_child_ok(&b, "many 100");
    tu_child_ok(&b, "flip 10 5");
    char pa[16], pb[16];
    snprintf(pa, sizeof(pa), "%d", (int)a.pid);
    snprintf(pb, sizeof(pb), "%d", (int)b.pid);
    char *db = tu_tmppath("meet.db", NULL);
    struct tu_run first;
    tu_vmsnap(&first, "-d", db, "snap", "-p", pb, NULL); /* so that readers find a database */
    expect_ok(&first, "first snap");
    tu_run_release(&first);

    struct tu_proc rec[3];
    tu_spawn_vmsnap(&rec[0], "-d", db, "record", "-p", pa, "-i", "0", "-t", "4s", "--detail",
                    "maps", NULL);
    tu_spawn_vmsnap(&rec[1], "-d", db, "record", "-p", pa, "-i", "20ms", "-t", "4s", NULL);
    tu_spawn_vmsnap(&rec[2], "-d", db, "record", "-p", pb, "-i", "0", "-t", "4s", "--detail",
                    "smaps", "--label-prefix", "b", NULL);
    usleep(300 * 1000); /* marks (SIGUSR1) once the recorders are listening for them */
    int snaps = 0, reads = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0;; round++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= 3)
            break;
        struct tu_proc p[5];
        char label[32];
        snprintf(label, sizeof(label), "deploy-%d", round);
        tu_spawn_vmsnap(&p[0], "-d", db, "snap", "-p", pa, "--label", label, NULL);
        tu_spawn_vmsnap(&p[1], "-d", db, "snap", "-p", round % 2 ? pa : pb, "--detail", "maps",
                        NULL);
        tu_spawn_vmsnap(&p[2], "-d", db, "list", NULL);
        tu_spawn_vmsnap(&p[3], "-d", db, "query",
                        "SELECT snapshot_id, count(*) FROM regions GROUP BY 1", NULL);
        tu_spawn_vmsnap(&p[4], "-d", db, "diff", "first", "last", "--summary", NULL);
        kill(rec[round % 3].pid, SIGUSR1);
        for (int k = 0; k < 5; k++) {
            struct tu_run r;
            tu_wait(&p[k], &r);
            if (k == 4) {
                /* diff: 0 or 1 (changes), or 2 before the first snapshot exists. */
                if (r.status == 2 && !strstr(r.err, "no snapshots yet"))
                    fail_msg("diff during writes: %s", r.err);
            } else {
                expect_ok(&r, k < 2 ? "snap during a recording" : "reading during writes");
            }
            snaps += k < 2;
            reads += k >= 2;
            tu_run_release(&r);
        }
    }
    for (int k = 0; k < 3; k++) {
        struct tu_run r;
        tu_wait(&rec[k], &r);
        expect_ok(&r, "a recorder that met other writers");
        tu_run_release(&r);
    }
    int64_t n = tu_check_whole(db);
    print_message("writers meet: %d snaps, %d reads, %lld snapshots in all\n", snaps, reads,
                  (long long)n);
    assert_true(n > snaps);
    tu_child_stop(&a);
    tu_child_stop(&b);
    free(db);
}

/* Another process holds the write lock longer than a statement waits: the recorder keeps its
 * snapshot, says so, and goes on when the lock is released. */
static void test_recorder_outlasts_a_held_lock(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    char *db = tu_tmppath("held.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    expect_ok(&r, "first snap");
    tu_run_release(&r);

    struct tu_proc rec;
    tu_spawn_vmsnap(&rec, "-d", db, "record", "-p", pid, "-i", "200ms", "-t", "16s", "--detail",
                    "maps", NULL);
    usleep(1000 * 1000);
    sqlite3 *hold = NULL;
    assert_int_equal(sqlite3_open(db, &hold), SQLITE_OK);
    /* The recorder may be writing at this moment: wait for its short transaction. */
    sqlite3_busy_timeout(hold, 5000);
    assert_int_equal(sqlite3_exec(hold, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    int64_t held_at = tu_q64(hold, "SELECT count(*) FROM snapshots");
    tu_child_ok(&c, "map 65536 rw-"); /* a change that the kept snapshot carries */
    usleep(12500 * 1000);             /* longer than one statement waits */
    assert_int_equal(sqlite3_exec(hold, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(hold);
    tu_wait(&rec, &r);
    expect_ok(&r, "a recorder whose database was locked for 12 s");
    assert_non_null(strstr(r.err, "is locked by another process"));
    assert_non_null(strstr(r.err, "database unlocked"));
    tu_run_release(&r);
    int64_t n = tu_check_whole(db);
    print_message("held lock: %lld snapshots before it, %lld in all\n", (long long)held_at,
                  (long long)n);
    assert_true(n > held_at + 5);
    tu_child_stop(&c);
    free(db);
}

/*
 * A stop request while the database stays locked: the recorder makes one last attempt, then
 * says in one line that the snapshot in progress was not written. Nothing committed is lost
 * and nothing half-written is visible.
 */
static void test_stop_while_locked(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    char *db = tu_tmppath("stopped.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    expect_ok(&r, "first snap");
    tu_run_release(&r);
    sqlite3 *hold = NULL;
    assert_int_equal(sqlite3_open(db, &hold), SQLITE_OK);
    assert_int_equal(sqlite3_exec(hold, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    struct tu_proc rec;
    tu_spawn_vmsnap(&rec, "-d", db, "record", "-p", pid, "-i", "100ms", "--detail", "maps", NULL);
    usleep(1000 * 1000);
    kill(rec.pid, SIGTERM);
    /* One last attempt waits as long as a statement does (10 s): 40 s means it did not stop. */
    int stopped = 0;
    for (int i = 0; i < 400 && !stopped; i++) {
        siginfo_t si = {0};
        stopped = waitid(P_PID, (id_t)rec.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                  si.si_pid == rec.pid;
        if (!stopped)
            usleep(100 * 1000);
    }
    if (!stopped)
        kill(rec.pid, SIGKILL);
    tu_wait(&rec, &r);
    if (!stopped)
        fail_msg("a recorder asked to stop while its database stayed locked did not stop");
    assert_int_equal(r.status, 2);
    const char *last = strstr(r.err, "vmsnap: record: database");
    if (!last || !strstr(last, "stayed locked") || strchr(last, '\n') != last + strlen(last) - 1)
        fail_msg("expected a last line saying the database stayed locked: %s", r.err);
    tu_run_release(&r);
    assert_int_equal(sqlite3_exec(hold, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(hold);
    assert_int_equal(tu_check_whole(db), 1);
    tu_child_stop(&c);
    free(db);
}

/* SIGKILL a recorder at random moments against a churning target; then resume it. */
static void test_recorder_killed_at_random(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    tu_child_ok(&c, "many 2000");
    tu_child_ok(&c, "flip 50 1");
    tu_child_ok(&c, "churn on");
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    char *db = tu_tmppath("killed.db", NULL);
    srand(1234);
    int kills = 0;
    for (int i = 0; i < 60; i++) {
        struct tu_proc p;
        tu_spawn_vmsnap(&p, "-d", db, "record", "-p", pid, "-i", "0", "--detail",
                        i % 3 == 0 ? "smaps" : "maps", NULL);
        usleep((useconds_t)(20000 + rand() % 200000)); /* mid-walk or mid-commit */
        kill(p.pid, SIGKILL);
        struct tu_run r;
        tu_wait(&p, &r);
        kills += r.status == 128 + SIGKILL;
        tu_run_release(&r);
        if (i == 29)
            tu_check_whole(db); /* once midway: each look reads every snapshot's regions */
    }
    int64_t before = tu_check_whole(db);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-p", pid, "-n", "5", "-i", "0", NULL);
    expect_ok(&r, "resuming after 60 kills");
    tu_run_release(&r);
    int64_t after = tu_check_whole(db);
    print_message("killed at random: %d SIGKILLs mid-recording, %lld snapshots kept, resumed "
                  "with %lld more\n",
                  kills, (long long)before, (long long)(after - before));
    assert_true(kills >= 50);
    assert_int_equal(after, before + 5);
    tu_child_stop(&c);
    free(db);
}

/* A full disk mid-snapshot: one clear line, exit 2, every earlier snapshot intact. Needs root
 * to mount a small tmpfs. */
static void test_disk_full(void **state)
{
    char *dir = tu_small_fs("2m");
    if (!dir)
        skip();
    *state = dir; /* unmounted by umount_full, whatever happens */
    struct tu_child c;
    tu_child_start(&c);
    char pid[16], db[4096], filler[4200];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    snprintf(db, sizeof(db), "%s/v.db", dir);
    snprintf(filler, sizeof(filler), "%s/filler", dir);
    struct tu_run r;
    for (int i = 0; i < 3; i++) {
        tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
        expect_ok(&r, "snap before the disk fills");
        tu_run_release(&r);
        tu_child_ok(&c, "map 65536 rw-");
    }
    /* Fill the file system, leaving 64 KiB: enough to open the database, far less than the
     * next snapshot needs. */
    tu_fill_fs(dir, 16 * 4096);
    tu_child_ok(&c, "many 3000");
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 2);
    assert_int_equal(tu_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "full"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "record", "-p", pid, "-i", "0", "-n", "3", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "full"));
    tu_run_release(&r);
    assert_int_equal(tu_check_whole(db), 3);
    /* A report onto the full disk: one line that says so, and no report or temporary file. */
    char html[4200];
    snprintf(html, sizeof(html), "%s/r.html", dir);
    tu_fill_fs(dir, 0);
    tu_vmsnap(&r, "-d", db, "report", "-o", html, NULL);
    tu_assert_trouble(&r, "No space left on device");
    tu_run_release(&r);
    assert_int_equal(access(html, F_OK), -1);
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        if (strstr(de->d_name, ".tmp-"))
            fail_msg("'%s' left on the full disk", de->d_name);
    if (d)
        closedir(d);
    /* Space again: recording goes on where it left off. */
    unlink(filler);
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    expect_ok(&r, "snap once there is space again");
    tu_run_release(&r);
    assert_int_equal(tu_check_whole(db), 4);
    tu_child_stop(&c);
}

/*
 * A tree's round is one transaction: when the disk fills halfway through it (the first
 * process's snapshot fits, the second's 3,000 regions do not), none of the round is written;
 * with space again, recording goes on from what was committed, each process's seqs unbroken.
 */
static void test_tree_round_is_whole(void **state)
{
    char *dir = tu_small_fs("2m");
    if (!dir)
        skip();
    *state = dir;
    struct tu_child a, b;
    tu_child_start(&a);
    tu_child_start(&b);
    char both[40], db[4096], filler[4200];
    snprintf(both, sizeof(both), "%d,%d", (int)a.pid, (int)b.pid);
    snprintf(db, sizeof(db), "%s/v.db", dir);
    snprintf(filler, sizeof(filler), "%s/filler", dir);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-p", both, "-n", "2", "-i", "0", NULL);
    expect_ok(&r, "a round of two before the disk fills");
    tu_run_release(&r);
    assert_int_equal(tu_check_whole(db), 4);
    tu_fill_fs(dir, 16 * 4096);
    tu_child_ok(&a, "map 65536 rw-");
    tu_child_ok(&b, "many 3000");
    tu_vmsnap(&r, "-d", db, "record", "-p", both, "-n", "1", "-i", "0", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "full"));
    tu_run_release(&r);
    assert_int_equal(tu_check_whole(db), 4); /* not the first process's either */
    unlink(filler);
    tu_vmsnap(&r, "-d", db, "record", "-p", both, "-n", "1", "-i", "0", NULL);
    expect_ok(&r, "a round once there is space again");
    tu_run_release(&r);
    assert_int_equal(tu_check_whole(db), 6);
    sqlite3 *h = tu_db_open(db);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM (SELECT target_id FROM snapshots GROUP BY "
                               "target_id HAVING max(seq) = 3 AND count(*) = 3)"),
                     2);
    sqlite3_close(h);
    tu_child_stop(&a);
    tu_child_stop(&b);
}

static int umount_full(void **state)
{
    if (*state) {
        umount2(*state, MNT_DETACH);
        free(*state);
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* One test by name: test_x NAME (a glob). */
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_creators_race),
        cmocka_unit_test(test_writers_meet),
        cmocka_unit_test(test_recorder_outlasts_a_held_lock),
        cmocka_unit_test(test_stop_while_locked),
        cmocka_unit_test(test_recorder_killed_at_random),
        cmocka_unit_test_teardown(test_disk_full, umount_full),
        cmocka_unit_test_teardown(test_tree_round_is_whole, umount_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
