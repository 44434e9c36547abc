#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *tu_fixture(const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, name);
    return tu_read_file(path, len);
}

char *tu_tmpdir(void)
{
    char *t = strdup("/tmp/vmsnap-test-XXXXXX");
    if (!mkdtemp(t))
        fail_msg("mkdtemp: %s", strerror(errno));
    return t;
}

char *tu_tmppath(const char *name, char **dir)
{
    char *d = tu_tmpdir();
    char *p = malloc(strlen(d) + strlen(name) + 2);
    sprintf(p, "%s/%s", d, name);
    if (dir)
        *dir = d;
    else
        free(d);
    return p;
}

void tu_ranges_push(struct tu_range **v, size_t *n, size_t *cap, uint64_t start, uint64_t end,
                    const char *perms, const char *path)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *v = realloc(*v, *cap * sizeof(**v));
    }
    struct tu_range *r = &(*v)[(*n)++];
    r->start = start;
    r->end = end;
    snprintf(r->perms, sizeof(r->perms), "%s", perms);
    r->path = path ? strdup(path) : NULL;
}

size_t tu_proc_maps(pid_t pid, struct tu_range **out)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    char *text = tu_read_file(path, NULL);
    struct tu_range *v = NULL;
    size_t n = 0, cap = 0;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        unsigned long long s, e;
        char perms[5];
        assert_int_equal(sscanf(p, "%llx-%llx %4s", &s, &e, perms), 3);
        tu_ranges_push(&v, &n, &cap, s, e, perms, NULL);
        if (!nl)
            break;
        p = nl + 1;
    }
    free(text);
    *out = v;
    return n;
}

void tu_ranges_free(struct tu_range *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].path);
    free(v);
}

void tu_child_start(struct tu_child *c)
{
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl(VM_CHILD_BIN, "vm_child", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->pid = pid;
    c->in = in[1];
    c->out = out[0];
    /* Wait until the program runs (exec done): before that the pid is a copy of the test. */
    assert_int_equal(tu_child_ok(c, "pid"), (uint64_t)pid);
}

__attribute__((format(printf, 2, 0))) static const char *vcmd(struct tu_child *c, const char *fmt,
                                                              va_list ap)
{
    static char reply[4096];
    char line[8192];
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    line[n++] = '\n';
    assert_int_equal(write(c->in, line, (size_t)n), n);
    size_t got = 0;
    for (;;) {
        struct pollfd p = {c->out, POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0)
            fail_msg("vm_child did not answer '%.*s'", n - 1, line);
        ssize_t r = read(c->out, reply + got, 1);
        if (r <= 0)
            fail_msg("vm_child closed its output after '%.*s'", n - 1, line);
        if (reply[got] == '\n')
            break;
        if (++got >= sizeof(reply) - 1)
            break;
    }
    reply[got] = '\0';
    return reply;
}

const char *tu_child_cmd(struct tu_child *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *r = vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

uint64_t tu_child_ok(struct tu_child *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *r = vcmd(c, fmt, ap);
    va_end(ap);
    if (strncmp(r, "ok", 2) != 0)
        fail_msg("vm_child: %s", r);
    return r[2] ? strtoull(r + 3, NULL, 0) : 0;
}

void tu_child_stop(struct tu_child *c)
{
    if (c->pid <= 0)
        return;
    close(c->in);
    close(c->out);
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}

/* Drains fd into a heap string. */
static char *drain(int fd)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = '\0';
    return buf;
}

void tu_spawn(struct tu_proc *p, char *const argv[])
{
    char outp[] = "/tmp/vmsnap-out-XXXXXX", errp[] = "/tmp/vmsnap-err-XXXXXX";
    p->out_fd = mkstemp(outp);
    p->err_fd = mkstemp(errp);
    assert_true(p->out_fd >= 0 && p->err_fd >= 0);
    unlink(outp);
    unlink(errp);
    /* posix_spawn, not fork: a test process under AddressSanitizer maps gigabytes, and copying
     * its page tables for every run cost more than the run. */
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "VMSNAP_DB=", 10) != 0)
            env[k++] = environ[i];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p->out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, p->err_fd, 2);
    int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (rc != 0)
        fail_msg("cannot run %s: %s", argv[0], strerror(rc));
}

/* vmsnap's path, then the arguments up to the NULL that ends ap, into argv[64]. */
static void vmsnap_argv(char **argv, const char *arg, va_list ap)
{
    int n = 0;
    argv[n++] = (char *)VMSNAP_BIN;
    for (const char *a = arg; a && n < 63; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    argv[n] = NULL;
}

void tu_spawn_vmsnap(struct tu_proc *p, const char *arg, ...)
{
    char *argv[64];
    va_list ap;
    va_start(ap, arg);
    vmsnap_argv(argv, arg, ap);
    va_end(ap);
    tu_spawn(p, argv);
}

/* The status and output of p, which has ended with status. */
static void collect(struct tu_proc *p, int status, struct tu_run *r)
{
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    lseek(p->out_fd, 0, SEEK_SET);
    lseek(p->err_fd, 0, SEEK_SET);
    r->out = drain(p->out_fd);
    r->err = drain(p->err_fd);
    close(p->out_fd);
    close(p->err_fd);
}

void tu_wait(struct tu_proc *p, struct tu_run *r)
{
    int status;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
        ;
    collect(p, status, r);
}

int tu_wait_limited(struct tu_proc *p, struct tu_run *r, int ms)
{
    int status, killed = 0;
    /* Short naps first: most runs end within milliseconds. */
    for (int waited = 0, nap = 1;; waited += nap, nap = waited < 100 ? 1 : 10) {
        pid_t got = waitpid(p->pid, &status, WNOHANG);
        if (got == p->pid)
            break;
        if (got < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        if (waited >= ms && !killed) {
            kill(p->pid, SIGKILL);
            killed = 1;
        }
        usleep((useconds_t)nap * 1000);
    }
    collect(p, status, r);
    return killed;
}

void tu_run(struct tu_run *r, char *const argv[])
{
    struct tu_proc p;
    tu_spawn(&p, argv);
    tu_wait(&p, r);
}

void tu_vmsnap(struct tu_run *r, const char *arg, ...)
{
    char *argv[64];
    va_list ap;
    va_start(ap, arg);
    vmsnap_argv(argv, arg, ap);
    va_end(ap);
    tu_run(r, argv);
}

void tu_assert_trouble(const struct tu_run *r, const char *want)
{
    if (r->status != 2 || tu_count_lines(r->err) != 1 || strncmp(r->err, "vmsnap: ", 8) != 0 ||
        !strstr(r->err, want))
        fail_msg("expected exit 2 and one line with '%s'; got %d and '%s'", want, r->status,
                 r->err);
}

void tu_run_release(struct tu_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int tu_count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

sqlite3 *tu_db_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

int64_t tu_q64(sqlite3 *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

void tu_write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot write %s", path);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

void tu_copy_file(const char *from, const char *to)
{
    size_t len;
    char *text = tu_read_file(from, &len);
    tu_write_file(to, text, len);
    free(text);
}

const char tu_schema1_rows[] =
    "INSERT INTO targets VALUES (1, 4242, 777, '/x', 'x', 'h', 'linux', 'boot-1', '1:2:3:4', "
    "'2025-11-22T00:00:00.000Z');"
    "INSERT INTO snapshots (id, target_id, seq, taken_at, region_count, mapped_bytes, detail, "
    "method) VALUES "
    "(1, 1, 1, '2025-11-22T00:00:01.000Z', 2, 12288, 'maps', 'maps'),"
    "(2, 1, 2, '2025-11-22T00:00:02.000Z', 2, 12288, 'maps', 'maps'),"
    "(3, 1, 3, '2025-11-22T00:00:03.000Z', 2, 12288, 'maps', 'maps');"
    "INSERT INTO spans_open (id, target_id, first_snap, start, \"end\", perms, offset, dev, inode, "
    "category) VALUES "
    "(4294967296, 1, 1, 4096, 12288, 'rw-p', 0, '00:00', 0, 'anon'),"
    "(4294967298, 1, 3, 65536, 69632, '---p', 0, '00:00', 0, 'guard');"
    "INSERT INTO spans (id, target_id, first_snap, last_snap, start, \"end\", perms, offset, dev, "
    "inode, category) VALUES "
    "(4294967297, 1, 1, 2, 20480, 24576, 'r--p', 0, '00:00', 0, 'anon');";

char *tu_small_fs(const char *size)
{
    if (geteuid() != 0)
        return NULL;
    char *dir = tu_tmpdir(), opts[64];
    snprintf(opts, sizeof(opts), "size=%s", size);
    if (mount("vmsnap-full", dir, "tmpfs", 0, opts) < 0) {
        print_message("cannot mount a tmpfs (%s): skipped\n", strerror(errno));
        free(dir);
        return NULL;
    }
    return dir;
}

void tu_fill_fs(const char *dir, long leave)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static char block[4096];
    while (write(fd, block, sizeof(block)) == (ssize_t)sizeof(block))
        ;
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    close(fd);
    assert_int_equal(truncate(path, sb.st_size > leave ? sb.st_size - leave : 0), 0);
}

static int64_t one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(s) != SQLITE_ROW)
        fail_msg("step %s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/*
 * The database is intact and every snapshot whole: SQLite's integrity check passes, each
 * target's seqs are 1..n with no gap or repeat, and each snapshot's regions (read back through
 * the regions view) are as many, cover as many bytes, and never overlap, as when it was written.
 * Returns the number of snapshots.
 */
int64_t tu_check_whole(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    if (strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0)
        fail_msg("%s: integrity_check: %s", path, sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    int64_t bad_seq = one_int(db, "SELECT count(*) FROM (SELECT target_id, count(*) AS n, "
                                  "min(seq) AS lo, max(seq) AS hi, count(DISTINCT seq) AS d "
                                  "FROM snapshots GROUP BY target_id) WHERE lo != 1 OR hi != n "
                                  "OR d != n");
    if (bad_seq)
        fail_msg("%s: %lld targets whose seqs are not 1..n", path, (long long)bad_seq);
    int64_t broken =
        one_int(db, "SELECT count(*) FROM snapshots s LEFT JOIN (SELECT snapshot_id, count(*) "
                    "AS c, sum(size) AS m FROM regions GROUP BY snapshot_id) r ON "
                    "r.snapshot_id = s.id WHERE coalesce(r.c, 0) != s.region_count OR "
                    "coalesce(r.m, 0) != s.mapped_bytes");
    if (broken)
        fail_msg("%s: %lld snapshots are not whole", path, (long long)broken);
    int64_t overlaps = one_int(db, "SELECT count(*) FROM (SELECT start, lag(\"end\") OVER "
                                   "(PARTITION BY snapshot_id ORDER BY start) AS prev_end "
                                   "FROM regions) WHERE prev_end > start");
    if (overlaps)
        fail_msg("%s: %lld regions overlap another of their snapshot", path, (long long)overlaps);
    /* Ids grow with seq within a target: the regions view and diffs rely on it. */
    int64_t disorder = one_int(db, "SELECT count(*) FROM snapshots a JOIN snapshots b ON "
                                   "a.target_id = b.target_id AND a.seq < b.seq AND a.id > b.id");
    assert_int_equal(disorder, 0);
    int64_t n = one_int(db, "SELECT count(*) FROM snapshots");
    sqlite3_close(db);
    return n;
}
