/*
 * Every writing command killed outright (SIGKILL) at moments spread over its work: nothing
 * committed is partial or lost, a command started by `record --` is never killed with it, an
 * import adds all its files or none, a report is whole or absent, a merge adds a file whole or
 * not at all, a new database never has a rollback journal for a kill to leave behind, and a mark
 * waiting on a recorder that was killed says so at once. And the
 * database moved or deleted under a recorder: it stops and says where the recording is.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* Kills p at us microseconds after it started (or lets it end before), and reaps it. */
static int kill_at_us(struct tu_proc *p, int us)
{
    struct tu_run r;
    usleep((useconds_t)us);
    kill(p->pid, SIGKILL);
    tu_wait(p, &r);
    int killed = r.status == 128 + SIGKILL;
    tu_run_release(&r);
    return killed;
}

static int kill_at(struct tu_proc *p, int ms)
{
    return kill_at_us(p, ms * 1000);
}

/* How long a whole run of vmsnap with these arguments takes, in microseconds: kills are spread
 * over that, however fast this build is (sanitizers make it several times slower). */
static int whole_run_us(const char *arg, ...)
{
    char *argv[32] = {VMSNAP_BIN};
    int n = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct tu_run r;
    tu_run(&r, argv);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (r.status != 0)
        fail_msg("%s: exit %d: %s", arg, r.status, r.err);
    tu_run_release(&r);
    return (int)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
}

static int64_t count(const char *db, const char *sql)
{
    if (access(db, F_OK) != 0)
        return 0;
    struct sqlite3 *h = tu_db_open(db);
    /* Killed before it made the tables: nothing. */
    int64_t n = tu_q64(h, "SELECT count(*) FROM sqlite_schema WHERE name = 'snapshots'") > 0
                    ? tu_q64(h, "%s", sql)
                    : 0;
    sqlite3_close(h);
    return n;
}

/*
 * `record -- PROGRAM` killed while PROGRAM loads, while it is held at its entry point for the
 * first snapshot, and after: PROGRAM always runs to its end (slowload exits 0). The test adopts
 * the orphans, so it sees how each ended.
 */
static void test_launched_program_lives(void **state)
{
    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    char *db = tu_tmppath("launched.db", NULL);
    int kills = 0, programs = 0;
    for (int i = 0; i < 14; i++) {
        struct tu_proc p;
        tu_spawn_vmsnap(&p, "-d", db, "record", "-i", "100ms", "--no-follow", "--", SLOWLOAD_BIN,
                        NULL);
        kills += kill_at(&p, 5 + i * 30); /* slowload loads for 300 ms, then runs 200 ms */
        /* Whatever vmsnap left behind (the program, the guard holding it) ends by itself. */
        for (int waited = 0; waited < 5000; waited += 5) {
            int st;
            pid_t got = waitpid(-1, &st, WNOHANG);
            if (got < 0 && errno == ECHILD)
                break;
            if (got > 0) {
                programs++;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                    fail_msg("kill %d ms in: a process vmsnap started ended with %s %d", 5 + i * 30,
                             WIFEXITED(st) ? "status" : "signal",
                             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                continue;
            }
            usleep(5000);
        }
    }
    tu_check_whole(db);
    print_message("record -- slowload: %d killed, %d programs and guards all ended well\n", kills,
                  programs);
    assert_true(kills >= 10);
    assert_true(programs >= 10);
    prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
    free(db);
}

/* `record -p PID --follow` of a forking tree, killed mid-recording: every snapshot whole. */
static void test_follow_killed(void **state)
{
    (void)state;
    char *db = tu_tmppath("follow.db", NULL);
    int kills = 0;
    for (int i = 0; i < 5; i++) {
        struct tu_proc f;
        char *forker[] = {FORKER_BIN, "tree", NULL};
        tu_spawn(&f, forker);
        char pid[16];
        snprintf(pid, sizeof(pid), "%d", (int)f.pid);
        struct tu_proc p;
        tu_spawn_vmsnap(&p, "-d", db, "record", "-p", pid, "--follow", "-i", "0", NULL);
        kills += kill_at(&p, 30 + i * 60);
        struct tu_run r;
        tu_wait(&f, &r);
        tu_run_release(&r);
    }
    int64_t n = tu_check_whole(db);
    print_message("record --follow: %d killed, %lld snapshots whole\n", kills, (long long)n);
    assert_true(kills >= 4);
    assert_true(n > 0);
    free(db);
}

/* `import A B C` killed at any moment adds the three or nothing; running it again adds them. */
static void test_import_killed(void **state)
{
    (void)state;
    char *db = tu_tmppath("import.db", NULL);
    char a[4200], b[4200], c[4200];
    snprintf(a, sizeof(a), "%s/edge.smaps", FIXTURES_DIR);
    snprintf(b, sizeof(b), "%s/edge.maps", FIXTURES_DIR);
    snprintf(c, sizeof(c), "%s/edge.pmap-xx", FIXTURES_DIR);
    /* Timed into the file as it is in the loop: made already. */
    whole_run_us("-d", db, "import", a, b, c, NULL);
    int took = whole_run_us("-d", db, "import", a, b, c, NULL);
    int again = whole_run_us("-d", db, "import", a, b, c, NULL);
    took = again < took ? again : took;
    int kills = 0, whole = 0;
    for (int i = 0; i < 40; i++) {
        int64_t before = count(db, "SELECT count(*) FROM snapshots");
        struct tu_proc p;
        tu_spawn_vmsnap(&p, "-d", db, "import", a, b, c, NULL);
        int at = (i % 20) * took / 24;
        kills += kill_at_us(&p, at);
        int64_t added = count(db, "SELECT count(*) FROM snapshots") - before;
        if (added != 0 && added != 3)
            fail_msg("import killed at %d us: %lld of 3 files kept", at, (long long)added);
        whole += added == 3;
    }
    if (whole)
        tu_check_whole(db);
    print_message("import A B C: %d killed, %d whole imports, none partial\n", kills, whole);
    assert_true(kills >= 10);
    free(db);
}

/* Records n snapshots of the child back to back into db, at detail. */
static void record_some(struct tu_child *ch, const char *db, const char *n, const char *detail)
{
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)ch->pid);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-p", pid, "-n", n, "-i", "0", "--detail", detail, NULL);
    if (r.status != 0)
        fail_msg("record into %s: %d %s", db, r.status, r.err);
    tu_run_release(&r);
}

/* The directory holds only what it held and what a whole report is: no temporary file. */
static void assert_only(const char *dir, const char *keep1, const char *keep2)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strncmp(de->d_name, keep1, strlen(keep1)) == 0 ||
            strcmp(de->d_name, keep2) == 0)
            continue;
        fail_msg("'%s' left in %s", de->d_name, dir);
    }
    closedir(d);
}

/* `report` killed at any moment: the report that was there, or the new one whole; and what a
 * kill leaves is gone after the next report. */
static void test_report_killed(void **state)
{
    (void)state;
    char *dir = NULL;
    char *db = tu_tmppath("rec.db", &dir);
    struct tu_child ch;
    tu_child_start(&ch);
    record_some(&ch, db, "30", "smaps");
    tu_child_stop(&ch);
    char out[4300];
    snprintf(out, sizeof(out), "%s/report.html", dir);
    /* Timed as in the loop (a report already there), the faster of two. */
    whole_run_us("-d", db, "report", "-o", out, NULL);
    int took = whole_run_us("-d", db, "report", "-o", out, NULL);
    int again = whole_run_us("-d", db, "report", "-o", out, NULL);
    took = again < took ? again : took;
    int kills = 0;
    for (int i = 0; i < 30; i++) {
        struct tu_proc p;
        tu_spawn_vmsnap(&p, "-d", db, "report", "-o", out, NULL);
        int at = i * took / 36;
        kills += kill_at_us(&p, at);
        if (access(out, F_OK) == 0) {
            size_t len;
            char *html = tu_read_file(out, &len);
            if (len < 8 || !strstr(html + len - 8, "</html>"))
                fail_msg("report.html is not whole after a kill at %d us", at);
            free(html);
        }
    }
    /* Killed between naming the file and moving it over the old one (two system calls), a
     * report leaves its temporary name; the next report removes it. */
    struct tu_run r2;
    tu_vmsnap(&r2, "-d", db, "report", "-o", out, NULL);
    assert_int_equal(r2.status, 0);
    tu_run_release(&r2);
    assert_only(dir, "rec.db", "report.html");
    print_message("report: %d killed, never a partial report, no temporary file after the next\n",
                  kills);
    assert_true(kills >= 5);
    free(db);
    free(dir);
}

/* `merge A B` killed at any moment: each file merged whole or not at all; again, all of it. */
static void test_merge_killed(void **state)
{
    (void)state;
    char *dir = NULL;
    char *a = tu_tmppath("a.db", &dir);
    char b[4300], dst[4300];
    snprintf(b, sizeof(b), "%s/b.db", dir);
    snprintf(dst, sizeof(dst), "%s/fleet.db", dir);
    struct tu_child ch;
    tu_child_start(&ch);
    record_some(&ch, a, "40", "smaps");
    tu_child_ok(&ch, "many 300");
    record_some(&ch, b, "40", "rollup");
    tu_child_stop(&ch);
    struct tu_run r;
    int took = whole_run_us("-d", dst, "merge", a, b, NULL);
    int kills = 0;
    for (int i = 0; i < 24; i++) {
        unlink(dst);
        struct tu_proc p;
        tu_spawn_vmsnap(&p, "-d", dst, "merge", a, b, NULL);
        int at = i * took / 20;
        kills += kill_at_us(&p, at);
        int64_t n = count(dst, "SELECT count(*) FROM snapshots");
        if (n != 0 && n != 40 && n != 80)
            fail_msg("merge killed at %d us: %lld snapshots (a file is 40)", at, (long long)n);
        if (n)
            tu_check_whole(dst);
        tu_vmsnap(&r, "-d", dst, "merge", a, b, NULL);
        assert_int_equal(r.status, 0);
        tu_run_release(&r);
        assert_int_equal(count(dst, "SELECT count(*) FROM snapshots"), 80);
    }
    print_message("merge: %d killed, each file whole or absent, completed by merging again\n",
                  kills);
    assert_true(kills >= 5);
    free(a);
    free(dir);
}

/*
 * The moment a new database turns into WAL is the one a rollback journal would be used for: a
 * process killed there would leave it hot beside the file, and a read-only reader (sqlite3
 * -readonly, another user) could not open the file. No command that makes a database creates
 * one (inotify sees every name made in the directory).
 */
static void test_new_database_no_journal(void **state)
{
    (void)state;
    char *dir = NULL;
    char *db = tu_tmppath("new.db", &dir);
    char pid[16], maps[4300], from_import[4300], merged[4300];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(maps, sizeof(maps), "%s/saved.maps", dir);
    snprintf(from_import, sizeof(from_import), "%s/imported.db", dir);
    snprintf(merged, sizeof(merged), "%s/merged.db", dir);
    size_t len;
    char *text = tu_read_file("/proc/self/maps", &len);
    tu_write_file(maps, text, len);
    free(text);
    int in = inotify_init1(IN_NONBLOCK);
    assert_true(in >= 0);
    assert_true(inotify_add_watch(in, dir, IN_CREATE) >= 0);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", from_import, "import", maps, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", merged, "merge", db, from_import, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int made = 0;
    for (ssize_t n; (n = read(in, buf, sizeof(buf))) > 0;)
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && strstr(ev->name, "-journal"))
                fail_msg("a new database had a rollback journal: %s", ev->name);
            made += ev->len > 0;
            p += sizeof(*ev) + ev->len;
        }
    close(in);
    assert_true(made >= 9); /* three databases, each with its -wal and -shm */
    free(db);
    free(dir);
}

/* Starts vm_child and `record -p` of it into db at an interval of an hour, and returns once the
 * recorder has said (in the recorders table) that it runs, so a mark reaches it. */
static void start_recorder(struct tu_child *ch, struct tu_proc *rec, const char *db)
{
    tu_child_start(ch);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)ch->pid);
    tu_spawn_vmsnap(rec, "-d", db, "record", "-p", pid, "-i", "1h", "--detail", "smaps", NULL);
    for (int i = 0; i < 500 && count(db, "SELECT count(*) FROM recorders") < 1; i++)
        usleep(10000);
    assert_int_equal(count(db, "SELECT count(*) FROM recorders"), 1);
}

/* `mark` killed at any moment while a recorder runs: the recorder records on, every snapshot
 * whole, and it ends well when asked to stop. */
static void test_mark_killed(void **state)
{
    (void)state;
    char *db = tu_tmppath("marked.db", NULL);
    struct tu_child ch;
    struct tu_proc rec;
    start_recorder(&ch, &rec, db);
    int took = whole_run_us("-d", db, "mark", NULL);
    int kills = 0;
    for (int i = 0; i < 20; i++) {
        tu_child_ok(&ch, "map 65536 rw-");
        struct tu_proc m;
        tu_spawn_vmsnap(&m, "-d", db, "mark", "--label", i % 2 ? "odd" : "even", NULL);
        kills += kill_at_us(&m, i * took / 16);
        tu_check_whole(db);
    }
    assert_int_equal(kill(rec.pid, 0), 0); /* still recording */
    kill(rec.pid, SIGTERM);
    struct tu_run r;
    tu_wait(&rec, &r);
    if (r.status != 0)
        fail_msg("the recorder, after 20 marks killed: %d %s", r.status, r.err);
    tu_run_release(&r);
    int64_t n = tu_check_whole(db);
    print_message("mark: %d killed, the recorder took %lld snapshots, all whole\n", kills,
                  (long long)n);
    assert_true(kills >= 5);
    tu_child_stop(&ch);
    free(db);
}

/* A recorder killed while mark waits for it: mark says so at once, not after 30 s. */
static void test_mark_outlives_its_recorder(void **state)
{
    (void)state;
    char *db = tu_tmppath("mark.db", NULL);
    struct tu_child ch;
    struct tu_proc rec;
    /* Stopped (SIGSTOP) once it runs, so it can never take the mark; then killed. */
    start_recorder(&ch, &rec, db);
    kill(rec.pid, SIGSTOP);
    struct tu_proc m;
    tu_spawn_vmsnap(&m, "-d", db, "mark", NULL);
    /* Killed once the mark is asked for (not after a fixed time: a loaded machine starts mark
     * late, and it would then find no recorder at all). */
    for (int i = 0; i < 300 && count(db, "SELECT count(*) FROM marks") < 1; i++)
        usleep(10000);
    usleep(100000);
    kill(rec.pid, SIGKILL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct tu_run r;
    tu_wait(&m, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "ended before it took the mark"));
    assert_null(strstr(r.err, "locked"));
    tu_run_release(&r);
    assert_true(s < 5.0);
    tu_wait(&rec, &r);
    tu_run_release(&r);
    tu_child_stop(&ch);
    free(db);
}

/* Starts `record -p CHILD` into db and waits until it has committed a few snapshots. */
static void record_a_while(struct tu_proc *rec, const char *db, const char *pid)
{
    tu_spawn_vmsnap(rec, "-d", db, "record", "-p", pid, "-i", "50ms", NULL);
    for (int i = 0; i < 500 && count(db, "SELECT count(*) FROM snapshots") < 4; i++)
        usleep(10000);
    usleep(200000);
}

/*
 * The database moved, deleted, or deleted with its directory while recording: the recorder
 * stops with one line and exit 2, and what it recorded is whole where the line says (moved, or
 * written again at its name) -- or the line says it is lost.
 */
static void test_database_moved_while_recording(void **state)
{
    (void)state;
    char *dir = NULL;
    char *db = tu_tmppath("moving.db", &dir);
    char moved[4300], side[4400], pid[16];
    snprintf(moved, sizeof(moved), "%s/moved.db", dir);
    struct tu_child ch;
    tu_child_start(&ch);
    snprintf(pid, sizeof(pid), "%d", (int)ch.pid);
    struct tu_proc rec;
    struct tu_run r;

    record_a_while(&rec, db, pid);
    assert_int_equal(rename(db, moved), 0);
    tu_wait(&rec, &r);
    tu_assert_trouble(&r, "was moved to");
    assert_non_null(strstr(r.err, moved));
    tu_run_release(&r);
    assert_true(tu_check_whole(moved) >= 4);
    snprintf(side, sizeof(side), "%s-wal", db);
    assert_int_equal(access(side, F_OK), -1); /* nothing left at the old name */

    record_a_while(&rec, db, pid);
    int64_t before = count(db, "SELECT count(*) FROM snapshots");
    assert_int_equal(unlink(db), 0);
    tu_wait(&rec, &r);
    tu_assert_trouble(&r, "written again at that name");
    tu_run_release(&r);
    assert_true(tu_check_whole(db) >= before);

    char sub[4300], subdb[4400];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    snprintf(subdb, sizeof(subdb), "%s/gone.db", sub);
    assert_int_equal(mkdir(sub, 0700), 0);
    record_a_while(&rec, subdb, pid);
    char rm[4400];
    snprintf(rm, sizeof(rm), "rm -rf '%s'", sub);
    assert_int_equal(system(rm), 0);
    tu_wait(&rec, &r);
    tu_assert_trouble(&r, "is lost");
    tu_run_release(&r);
    tu_child_stop(&ch);
    free(db);
    free(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_launched_program_lives),
        cmocka_unit_test(test_follow_killed),
        cmocka_unit_test(test_import_killed),
        cmocka_unit_test(test_report_killed),
        cmocka_unit_test(test_merge_killed),
        cmocka_unit_test(test_new_database_no_journal),
        cmocka_unit_test(test_mark_killed),
        cmocka_unit_test(test_mark_outlives_its_recorder),
        cmocka_unit_test(test_database_moved_while_recording),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
