/*
 * Root against an unprivileged user (`nobody`) who races root's file names: vmsnap run as root
 * must never write into a file that user controls, nor destroy its own recording. The races are
 * real: a nobody process renames, links and plants files in a loop while root runs vmsnap again
 * and again. Needs root (to become nobody and to be the victim); skipped otherwise.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NOBODY 65534
/* How long each race runs: the previous vmsnap lost the rarest one (the database swapped in a
 * 0777 directory) about once in 1,600 runs, ~2 s; the others within a few hundred ms. */
#define RACE_MS       2500
#define SHORT_RACE_MS 1000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

/* Runs attack(dir) as nobody until killed; returns its pid. */
static pid_t as_nobody(void (*attack)(const char *dir), const char *dir)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(3);
        attack(dir);
        _exit(0);
    }
    return pid;
}

static void stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Renames a fresh file of nobody's over victim.db, keeping a second name for it to look at later.
 */
static void swap_database(const char *dir)
{
    char tmp[4200], keep[4200], victim[4200];
    snprintf(victim, sizeof(victim), "%s/victim.db", dir);
    /* The moment root creates or opens victim.db (its checks read the file before SQLite opens
     * it by name), a fresh file of nobody's takes the name. */
    int in = inotify_init();
    inotify_add_watch(in, dir, IN_CREATE | IN_OPEN);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (unsigned k = 0;; k++) {
        snprintf(tmp, sizeof(tmp), "%s/n-%u", dir, k % 4096);
        snprintf(keep, sizeof(keep), "%s/keep-%u", dir, k % 4096);
        unlink(tmp);
        int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY, 0600);
        if (fd < 0)
            continue;
        close(fd);
        if (k < 4096)
            link(tmp, keep);
        for (int hit = 0; !hit;) {
            ssize_t n = read(in, buf, sizeof(buf));
            for (char *p = buf; n > 0 && p < buf + n;) {
                struct inotify_event *ev = (struct inotify_event *)p;
                hit |= ev->len && strcmp(ev->name, "victim.db") == 0;
                p += sizeof(*ev) + ev->len;
            }
        }
        rename(tmp, victim);
    }
}

/* Every file nobody owns in dir is still empty: root wrote into none of them. */
static int nobody_files_written(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int written = 0;
    while ((de = readdir(d)) != NULL) {
        char path[4400];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        /* Written, or taken over (SQLite gives a root database's -shm to root). */
        if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
            ((sb.st_uid == NOBODY && sb.st_size) ||
             (strncmp(de->d_name, "keep-", 5) == 0 && sb.st_uid != NOBODY))) {
            print_message("written: %s (%lld bytes, uid %d)\n", de->d_name, (long long)sb.st_size,
                          (int)sb.st_uid);
            written++;
        }
    }
    closedir(d);
    return written;
}

static int skip_unless_root(void)
{
    if (geteuid() == 0)
        return 0;
    print_message("skipped: needs root to race against another user\n");
    return 1;
}

/* Root snaps into dir/victim.db for RACE_MS while nobody swaps it; returns the runs. */
static int race_snaps(const char *dir, int *refused_dir, int *written_ok)
{
    char victim[4200], pid[16];
    snprintf(victim, sizeof(victim), "%s/victim.db", dir);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    pid_t attacker = as_nobody(swap_database, dir);
    int runs = 0;
    *refused_dir = *written_ok = 0;
    for (double t0 = now_ms(); now_ms() - t0 < RACE_MS; runs++) {
        unlink(victim); /* root's turn to create it */
        struct tu_run r;
        tu_vmsnap(&r, "-d", victim, "snap", "-p", pid, "--detail", "maps", NULL);
        if (r.status == 0)
            ++*written_ok;
        else if (r.status != 2 || tu_count_lines(r.err) != 1)
            fail_msg("run %d: status %d: %s", runs, r.status, r.err);
        *refused_dir += strstr(r.err, "other users may rename files in its directory") != NULL;
        tu_run_release(&r);
    }
    stop(attacker);
    return runs;
}

/*
 * The database path swapped between root's checks and SQLite's open. A directory others may
 * write is refused outright; in a directory that belongs to nobody (so nobody may rename in it)
 * the file SQLite opened is checked through its descriptor.
 */
static void test_database_swapped(void **state)
{
    (void)state;
    if (skip_unless_root())
        skip();
    char *dir = tu_tmpdir();
    assert_int_equal(chmod(dir, 0777), 0);
    int refused, ok;
    int runs = race_snaps(dir, &refused, &ok);
    int written = nobody_files_written(dir);
    print_message("database swapped in a 0777 directory: %d runs as root, %d refused for the "
                  "directory, %d written, %d of nobody's files written\n",
                  runs, refused, ok, written);
    assert_int_equal(written, 0);
    assert_int_equal(ok, 0);

    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(chown(dir, NOBODY, NOBODY), 0);
    runs = race_snaps(dir, &refused, &ok);
    written = nobody_files_written(dir);
    print_message("database swapped in nobody's directory: %d runs as root, %d written, %d of "
                  "nobody's files written\n",
                  runs, ok, written);
    assert_int_equal(written, 0);
    free(dir);
}

/*
 * In a sticky directory (like /tmp) nobody may create names but not replace root's. The moment
 * root opens victim.db (inotify says so), nobody plants the -wal, -shm and -journal SQLite is
 * about to open by name; root must refuse them, and never write into them.
 */
static const char *const planted[] = {"-wal", "-shm", "-journal"};
#define PLANTED (sizeof(planted) / sizeof(planted[0]))

static void plant_companions(const char *dir)
{
    unsigned k = 0;
    int in = inotify_init();
    inotify_add_watch(in, dir, IN_OPEN);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        for (char *p = buf; n > 0 && p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && strcmp(ev->name, "victim.db") == 0) {
                /* Each planted file keeps a name of nobody's, to be looked at afterwards. */
                for (size_t i = 0; i < PLANTED; i++) {
                    char keep[4300], side[4300];
                    snprintf(keep, sizeof(keep), "%s/keep-%u", dir, k++);
                    snprintf(side, sizeof(side), "%s/victim.db%s", dir, planted[i]);
                    int fd = open(keep, O_CREAT | O_EXCL | O_WRONLY, 0600);
                    if (fd < 0)
                        continue;
                    close(fd);
                    if (link(keep, side) != 0)
                        unlink(keep);
                }
            }
            p += sizeof(*ev) + ev->len;
        }
    }
}

static void test_companions_planted(void **state)
{
    (void)state;
    if (skip_unless_root())
        skip();
    char *dir = tu_tmpdir();
    assert_int_equal(chmod(dir, 01777), 0);
    char victim[4200], side[4300], pid[16];
    snprintf(victim, sizeof(victim), "%s/victim.db", dir);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    pid_t attacker = as_nobody(plant_companions, dir);
    int runs = 0, written_ok = 0;
    for (double t0 = now_ms(); now_ms() - t0 < SHORT_RACE_MS; runs++) {
        /* Every other run makes a new database: SQLite's first write to a new file is the one
         * that may use a rollback journal. */
        if (runs % 2)
            unlink(victim);
        struct tu_run r;
        tu_vmsnap(&r, "-d", victim, "snap", "-p", pid, "--detail", "maps", NULL);
        if (r.status == 0)
            written_ok++;
        else if (r.status != 2 || tu_count_lines(r.err) != 1)
            fail_msg("run %d: status %d: %s", runs, r.status, r.err);
        tu_run_release(&r);
        /* Root removes what nobody planted (root may, in a sticky directory). */
        for (size_t i = 0; i < PLANTED; i++) {
            struct stat sb;
            snprintf(side, sizeof(side), "%s%s", victim, planted[i]);
            if (lstat(side, &sb) == 0 && sb.st_uid == NOBODY) {
                if (sb.st_size)
                    fail_msg("run %d: root wrote into nobody's %s", runs, side);
                unlink(side);
            }
        }
    }
    stop(attacker);
    int written = nobody_files_written(dir);
    print_message("companions planted: %d runs as root, %d snapshots written, %d of nobody's "
                  "files written\n",
                  runs, written_ok, written);
    assert_int_equal(written, 0);
    free(dir);
}

/* The moment root creates a file beside report.html (inotify says so), nobody puts a link to
 * root's secret in its place. */
static void hijack_report(const char *dir)
{
    char secret[4300], mine[4300];
    snprintf(secret, sizeof(secret), "%s/../secret", dir);
    snprintf(mine, sizeof(mine), "%s/mine", dir);
    int in = inotify_init();
    inotify_add_watch(in, dir, IN_CREATE);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        for (char *p = buf; n > 0 && p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && strstr(ev->name, ".tmp-")) {
                char path[4600];
                snprintf(path, sizeof(path), "%s/%s", dir, ev->name);
                unlink(mine);
                if (symlink(secret, mine) == 0)
                    rename(mine, path);
            }
            p += sizeof(*ev) + ev->len;
        }
    }
}

/* report -o into a directory nobody may write: root never writes through nobody's names. */
static void test_report_hijacked(void **state)
{
    (void)state;
    if (skip_unless_root())
        skip();
    char *top = tu_tmpdir();
    char dir[4200], secret[4300], db[4300], out[4300], pid[16];
    snprintf(dir, sizeof(dir), "%s/out", top);
    snprintf(secret, sizeof(secret), "%s/secret", top);
    snprintf(db, sizeof(db), "%s/rec.db", top);
    snprintf(out, sizeof(out), "%s/report.html", dir);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(chmod(top, 0755), 0);
    tu_write_file(secret, "SECRET\n", 7);
    assert_int_equal(chmod(secret, 0600), 0);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    pid_t attacker = as_nobody(hijack_report, dir);
    int runs = 0;
    for (double t0 = now_ms(); now_ms() - t0 < SHORT_RACE_MS; runs++) {
        tu_vmsnap(&r, "-d", db, "report", "-o", out, NULL);
        if (r.status != 0 && (r.status != 2 || tu_count_lines(r.err) != 1))
            fail_msg("run %d: status %d: %s", runs, r.status, r.err);
        tu_run_release(&r);
    }
    stop(attacker);
    size_t len;
    char *s = tu_read_file(secret, &len);
    print_message("report hijacked: %d reports as root, the secret holds %zu bytes\n", runs, len);
    assert_int_equal(len, 7);
    assert_memory_equal(s, "SECRET\n", 7);
    free(s);
    free(top);
}

/* The database's own files as -o, under their names or another (a hard link): refused. */
static void test_report_over_the_database(void **state)
{
    (void)state;
    char *dir = NULL;
    char *db = tu_tmppath("own.db", &dir);
    char pid[16], wal[4300], link_name[4300];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(wal, sizeof(wal), "%s-wal", db);
    snprintf(link_name, sizeof(link_name), "%s/also.html", dir);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    assert_int_equal(link(db, link_name), 0);
    const char *outs[] = {db, wal, link_name};
    for (int i = 0; i < 3; i++) {
        tu_vmsnap(&r, "-d", db, "report", "-o", outs[i], NULL);
        tu_assert_trouble(&r, "name another file with -o");
        tu_run_release(&r);
    }
    unlink(link_name);
    /* A -wal that is the database under another name: refused before SQLite takes it as a WAL. */
    assert_int_equal(link(db, wal), 0);
    size_t before_len;
    char *before = tu_read_file(db, &before_len);
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    tu_assert_trouble(&r, "hard link");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "list", NULL);
    tu_assert_trouble(&r, "the database under another name");
    tu_run_release(&r);
    size_t after_len;
    char *after = tu_read_file(db, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
    unlink(wal);
    tu_vmsnap(&r, "-d", db, "list", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    free(db);
    free(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_database_swapped),
        cmocka_unit_test(test_companions_planted),
        cmocka_unit_test(test_report_hijacked),
        cmocka_unit_test(test_report_over_the_database),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
