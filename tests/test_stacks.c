/*
 * record --stacks, end to end: trace_child's calls recorded with their stacks, the bytes each
 * call site still holds (growth's sites, exact), a forked and exec'd child, stopping the
 * recording (the program runs on whole) and killing the recorder (the program goes with it).
 */
#include "testutil.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1LL << 20)

/* The database of a recording of trace_child MODE with stacks; NULL (the test skipped) in a
 * build without libdw. */
static char *record_of(const char *program, const char *mode, char **dir, struct tu_run *r)
{
    char *db = tu_tmppath("s.db", dir);
    tu_vmsnap(r, "-d", db, "record", "--stacks", "-i", "100ms", "--", program, mode, NULL);
    if (r->status == 2 && strstr(r->err, "built without it")) {
        tu_run_release(r);
        skip();
    }
    return db;
}

static char *record(const char *mode, char **dir, struct tu_run *r)
{
    return record_of(TRACE_CHILD_BIN, mode, dir, r);
}

/* A site of growth's JSON, found by the function of its shown frame and the caller after it. */
struct site {
    long long bytes, regions, calls;
};

static long long num_after(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    assert_non_null(p);
    return strtoll(p + strlen(key), NULL, 10);
}

/* The k-th frame's function in a site's text ("" when null). */
static void frame_function(const char *site, const char *end, long k, char *out, size_t n)
{
    const char *p = site;
    out[0] = '\0';
    for (long i = 0; i <= k; i++) {
        p = strstr(p, "{\"function\":");
        if (!p || p >= end)
            return;
        p += strlen("{\"function\":");
    }
    if (*p != '"')
        return;
    const char *q = strchr(p + 1, '"');
    snprintf(out, n, "%.*s", (int)(q - p - 1), p + 1);
}

/* The site shown as function and called from caller: 1 with *s filled, or 0. */
static int find_site(const char *json, const char *function, const char *caller, struct site *s)
{
    const char *p = strstr(json, "\"sites\":[");
    assert_non_null(p);
    const char *stop = strstr(p, "]}],\"tree\"");
    if (!stop)
        stop = p + strlen(p);
    for (p = strstr(p, "{\"bytes\":"); p && p < stop;) {
        const char *next = strstr(p + 1, "{\"bytes\":");
        const char *end = next && next < stop ? next : stop;
        long shown = (long)num_after(p, "\"shown\":");
        char fn[128], up[128];
        frame_function(p, end, shown, fn, sizeof(fn));
        frame_function(p, end, shown + 1, up, sizeof(up));
        if (strcmp(fn, function) == 0 && strcmp(up, caller) == 0) {
            s->bytes = num_after(p, "{\"bytes\":");
            s->regions = num_after(p, "\"regions\":");
            s->calls = num_after(p, "\"calls\":");
            return 1;
        }
        p = next;
    }
    return 0;
}

static void assert_site(const char *json, const char *function, const char *caller, long long bytes,
                        long long regions, long long calls)
{
    struct site s;
    if (!find_site(json, function, caller, &s))
        fail_msg("no site %s <- %s in: %s", function, caller, json);
    assert_int_equal(s.bytes, bytes);
    assert_int_equal(s.regions, regions);
    assert_int_equal(s.calls, calls);
}

static void test_sites_hold_exact_bytes(void **state)
{
    (void)state;
    struct tu_run r;
    char *dir;
    char *db = record("hold", &dir, &r);
    assert_int_equal(r.status, 0); /* every call of the program worked */
    assert_non_null(strstr(r.err, " calls with "));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "growth", "-j", NULL);
    assert_int_equal(r.status, 0);
    /* Three neighbouring mappings the kernel merged into one region keep each call's site. */
    assert_site(r.out, "leak_site", "hold", 2 * MIB, 1, 2);
    assert_site(r.out, "leak_site", "leak_thread", MIB, 1, 1);
    /* mremap: the bytes it kept are the first mmap's, the ones it grew its own. */
    assert_site(r.out, "remap_site_a", "hold", MIB, 1, 1);
    assert_site(r.out, "remap_site_b", "hold", 2 * MIB, 1, 1);
    /* The committed part of a reservation is the mprotect's; the reservation holds nothing. */
    assert_site(r.out, "commit_site", "hold", MIB, 1, 1);
    assert_site(r.out, "heap_site", "hold", 256 << 10, 1, 1);
    assert_site(r.out, "grow_base", "hold", MIB, 1, 1);
    assert_site(r.out, "grow_site", "hold", MIB, 1, 1);
    /* An inlined function is a frame of its own, called from its caller's line. */
    assert_site(r.out, "inlined_site", "outer_site", MIB, 1, 1);
    struct site s;
    assert_false(find_site(r.out, "reserve_site", "hold", &s));
    assert_false(find_site(r.out, "hump_site", "hold", &s));
    tu_run_release(&r);

    /* The table names each site by its first frame outside the C library, with its line. */
    tu_vmsnap(&r, "-d", db, "growth", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "call sites holding memory"));
    assert_non_null(strstr(r.out, "remap_site_b (trace_child.c:"));
    assert_non_null(strstr(r.out, "leak_site (trace_child.c:"));
    tu_run_release(&r);

    /* show names the code that made each region: the most of its bytes. */
    tu_vmsnap(&r, "-d", db, "show", "last", "-j", NULL);
    assert_int_equal(r.status, 0);
    const char *leak = strstr(r.out, "\"start\":\"0x5e0000000\"");
    assert_non_null(leak);
    assert_non_null(strstr(leak, "\"created_by\":{\"function\":\"leak_site\""));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "show", "last", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "<- leak_site (trace_child.c:"));
    tu_run_release(&r);
    /* diff names who made a new region, and who grew one. */
    sqlite3 *h0 = tu_db_open(db);
    int64_t second = tu_q64(h0, "SELECT id FROM snapshots WHERE seq = 2");
    sqlite3_close(h0);
    char from[32];
    snprintf(from, sizeof(from), "%lld", (long long)second);
    tu_vmsnap(&r, "-d", db, "diff", from, "last", "-j", NULL);
    assert_int_equal(r.status, 1);
    const char *grown = strstr(r.out, "{\"change\":\"grown\",\"start\":\"0x5f0000000\"");
    assert_non_null(grown);
    assert_non_null(strstr(grown, "\"grown_by\":{\"function\":\"grow_site\""));
    const char *made = strstr(r.out, "{\"change\":\"new\",\"start\":\"0x5e0000000\"");
    assert_non_null(made);
    assert_non_null(strstr(made, "\"created_by\":{\"function\":\"leak_site\""));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "diff", from, "last", NULL);
    assert_non_null(strstr(r.out, "<- grow_site (trace_child.c:"));
    tu_run_release(&r);

    /* The report has the sites table; Chromium draws it (when installed: scripts/test.sh). */
    char *html = tu_tmppath("r.html", NULL);
    tu_vmsnap(&r, "-d", db, "report", "-o", html, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    char *page = tu_read_file(html, NULL);
    assert_non_null(strstr(page, "\"sites_recorded\":true"));
    free(page);
    FILE *which = popen("command -v chromium", "r");
    char browser[256] = "";
    if (which && fgets(browser, sizeof(browser), which))
        browser[strcspn(browser, "\n")] = '\0';
    if (which)
        pclose(which);
    if (browser[0]) {
        char url[600];
        snprintf(url, sizeof(url), "file://%s", html);
        char *argv[] = {browser,
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--dump-dom",
                        "--window-size=1280,2000",
                        url,
                        NULL};
        tu_run(&r, argv);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "data-rendered=\"1\""));
        const char *table = strstr(r.out, "id=\"growth-sites\"");
        assert_non_null(table);
        assert_non_null(strstr(table, "remap_site_b (trace_child.c:"));
        tu_run_release(&r);
    } else {
        print_message("chromium is not installed (scripts/test.sh installs it): the report's "
                      "sites table is not drawn\n");
    }
    free(html);

    /* SQL: the calls, their threads and their stacks, named. */
    sqlite3 *h = tu_db_open(db);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id "
                               "= e.stack_id WHERE e.call = 'munmap' AND f.function = 'hump_site'"),
                     1);
    assert_int_equal(tu_q64(h,
                            "SELECT count(*) FROM events e JOIN targets t ON t.id = "
                            "e.target_id JOIN stack_frames f ON f.stack_id = e.stack_id WHERE "
                            "e.call = 'mmap' AND e.start = %lld AND f.function = 'leak_thread' "
                            "AND e.tid <> t.pid",
                            0x5e0000000LL + 2 * MIB),
                     1);
    assert_int_equal(tu_q64(h,
                            "SELECT count(*) FROM events WHERE call = 'mremap' AND new_size "
                            "= %lld AND \"end\" - start = %lld",
                            3 * MIB, MIB),
                     1);
    /* The frames' names come with the recording: the innermost, the C library's call. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM stack_frames WHERE depth = 0 AND function "
                               "IS NULL AND module LIKE '%%libc.so%%'"),
                     0);
    sqlite3_close(h);
    free(db);
    free(dir);
}

static void test_sites_of_a_forked_child(void **state)
{
    (void)state;
    struct tu_run r;
    char *dir;
    char *db = record("hold-tree", &dir, &r);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    /* The child (fork, then exec of `trace_child hold`) is a target of its own, with its
     * calls; its parent holds none of them. */
    sqlite3 *h = tu_db_open(db);
    int64_t child = tu_q64(h, "SELECT id FROM targets WHERE cmdline LIKE '%% hold'");
    int64_t parent = tu_q64(h, "SELECT id FROM targets WHERE cmdline LIKE '%% hold-tree'");
    assert_true(child > 0 && parent > 0);
    assert_int_equal(
        tu_q64(h, "SELECT parent_target_id FROM targets WHERE id = %lld", (long long)child),
        parent);
    assert_int_equal(tu_q64(h,
                            "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id "
                            "= e.stack_id WHERE f.function = 'leak_site' AND e.target_id = "
                            "%lld",
                            (long long)parent),
                     0);
    sqlite3_close(h);
    char target[32];
    snprintf(target, sizeof(target), "%lld", (long long)child);
    tu_vmsnap(&r, "-d", db, "growth", "--target", target, "-j", NULL);
    assert_int_equal(r.status, 0);
    assert_site(r.out, "leak_site", "hold", 2 * MIB, 1, 2);
    assert_site(r.out, "remap_site_b", "hold", 2 * MIB, 1, 1);
    tu_run_release(&r);

    /* Merged into another file, the calls and their stacks come along, once. */
    char *merged = tu_tmppath("m.db", NULL);
    for (int i = 0; i < 2; i++) {
        tu_vmsnap(&r, "-d", merged, "merge", db, NULL);
        assert_int_equal(r.status, 0);
        tu_run_release(&r);
    }
    h = tu_db_open(db);
    int64_t calls = tu_q64(h, "SELECT count(*) FROM events");
    int64_t stacks = tu_q64(h, "SELECT count(*) FROM stacks");
    sqlite3_close(h);
    h = tu_db_open(merged);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM events"), calls);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM stacks"), stacks);
    int64_t child_here = tu_q64(h, "SELECT id FROM targets WHERE cmdline LIKE '%% hold'");
    sqlite3_close(h);
    snprintf(target, sizeof(target), "%lld", (long long)child_here);
    tu_vmsnap(&r, "-d", merged, "growth", "--target", target, "-j", NULL);
    assert_int_equal(r.status, 0);
    assert_site(r.out, "leak_site", "hold", 2 * MIB, 1, 2);
    tu_run_release(&r);
    free(merged);
    free(db);
    free(dir);
}

static void test_calls_of_brief_children(void **state)
{
    (void)state;
    struct tu_run r;
    char *dir;
    /* Each child forks, execs and exits within a millisecond or two, between ticks of 1 s:
     * each is held at its fork and its exec for its first snapshot, and keeps its calls. */
    char *db = tu_tmppath("s.db", &dir);
    tu_vmsnap(&r, "-d", db, "record", "--stacks", "--", TRACE_CHILD_BIN, "brief-tree", NULL);
    if (r.status == 2 && strstr(r.err, "built without it")) {
        tu_run_release(&r);
        skip();
    }
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(db);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets WHERE cmdline LIKE '%% brief'"), 3);
    /* Every one has its two calls, each on the target of the program that made it. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM events e JOIN targets t ON t.id = "
                               "e.target_id JOIN stack_frames f ON f.stack_id = e.stack_id "
                               "WHERE t.cmdline LIKE '%% brief' AND e.call = 'mmap' AND "
                               "f.function = 'leak_site'"),
                     6);
    assert_int_equal(tu_q64(h, "SELECT count(DISTINCT e.target_id) FROM events e JOIN "
                               "stack_frames f ON f.stack_id = e.stack_id WHERE f.function = "
                               "'leak_site'"),
                     3);
    /* Each exec'd program names the forked copy it replaced as its parent's child. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets WHERE cmdline LIKE '%% brief' AND "
                               "parent_target_id IS NULL"),
                     0);
    /* And each has a last snapshot, taken as it exits, that holds what its calls made. */
    int64_t brief = tu_q64(h, "SELECT max(id) FROM targets WHERE cmdline LIKE '%% brief'");
    assert_int_equal(
        tu_q64(h, "SELECT count(*) FROM snapshots WHERE target_id = %lld", (long long)brief), 2);
    sqlite3_close(h);
    char target[32];
    snprintf(target, sizeof(target), "%lld", (long long)brief);
    tu_vmsnap(&r, "-d", db, "growth", "--target", target, "-j", NULL);
    assert_int_equal(r.status, 0);
    assert_site(r.out, "leak_site", "main", 2 * MIB, 1, 2);
    tu_run_release(&r);
    free(db);
    free(dir);
}

static void test_stopping_leaves_the_program_whole(void **state)
{
    (void)state;
    struct tu_run r;
    char *dir;
    /* Recording stops at 200 ms; the program's calls come after 300 ms and must all work. */
    char *db = tu_tmppath("s.db", &dir);
    tu_vmsnap(&r, "-d", db, "record", "--stacks", "-t", "200ms", "--", TRACE_CHILD_BIN, "hold",
              NULL);
    assert_int_equal(r.status, 0); /* trace_child's: no call failed for want of a tracer */
    assert_non_null(strstr(r.err, "duration reached"));
    assert_non_null(strstr(r.err, "waiting for"));
    tu_run_release(&r);
    /* Nothing after the stop is recorded. */
    sqlite3 *h = tu_db_open(db);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id "
                               "= e.stack_id WHERE f.function = 'leak_site'"),
                     0);
    assert_true(tu_q64(h, "SELECT count(*) FROM events") > 0); /* the loader's, at least */
    sqlite3_close(h);
    free(db);
    free(dir);
}

/* Whether pid is gone (or a zombie nobody reaped yet). */
static int gone(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static void test_a_killed_recorder_takes_the_program(void **state)
{
    (void)state;
    char *dir;
    char *db = tu_tmppath("s.db", &dir);
    struct tu_proc p;
    tu_spawn_vmsnap(&p, "-d", db, "record", "--stacks", "-i", "100ms", "--", TRACE_CHILD_BIN,
                    "hold-long", NULL);
    /* Its program is recorded once it holds its calls' memory. */
    int64_t pid = 0;
    for (int i = 0; i < 100 && !pid; i++) {
        usleep(50 * 1000);
        if (access(db, F_OK) != 0)
            continue;
        sqlite3 *h = tu_db_open(db);
        if (tu_q64(h, "SELECT count(*) FROM sqlite_master WHERE name = 'events'") &&
            tu_q64(h, "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id = "
                      "e.stack_id WHERE f.function = 'hump_site'"))
            pid = tu_q64(h, "SELECT coalesce((SELECT pid FROM targets ORDER BY id LIMIT 1), 0)");
        sqlite3_close(h);
    }
    if (!pid) {
        struct tu_run r;
        tu_wait(&p, &r);
        if (r.status == 2 && strstr(r.err, "built without it")) {
            tu_run_release(&r);
            skip();
        }
        fail_msg("the recording never showed the program's calls: %s", r.err);
    }
    kill(p.pid, SIGKILL);
    struct tu_run r;
    tu_wait(&p, &r);
    assert_int_equal(r.status, 128 + SIGKILL);
    tu_run_release(&r);
    /* PTRACE_O_EXITKILL: the program ends with its tracer (it sleeps 20 s otherwise). */
    int ended = 0;
    for (int i = 0; i < 100 && !ended; i++) {
        ended = gone((pid_t)pid);
        if (!ended)
            usleep(20 * 1000);
    }
    assert_true(ended);
    /* What was committed is kept. */
    sqlite3 *h = tu_db_open(db);
    assert_true(tu_q64(h, "SELECT count(*) FROM events") > 0);
    sqlite3_close(h);
    free(db);
    free(dir);
}

static void test_a_sanitized_program_exits(void **state)
{
    (void)state;
    if (!ASAN_CHILD_BIN[0]) {
        print_message("this compiler builds nothing with AddressSanitizer: skipped\n");
        skip();
    }
    char *dir;
    char *db = tu_tmppath("s.db", &dir);
    struct tu_proc p;
    tu_spawn_vmsnap(&p, "-d", db, "record", "--stacks", "--", ASAN_CHILD_BIN, NULL);
    struct tu_run r;
    /* LeakSanitizer's check at exit would hang it (its untraced task's calls would fail): it is
     * turned off for the traced program. */
    assert_false(tu_wait_limited(&p, &r, 30000));
    if (r.status == 2 && strstr(r.err, "built without it")) {
        tu_run_release(&r);
        skip();
    }
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.err, "error code: 38"));
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(db);
    assert_true(tu_q64(h, "SELECT count(*) FROM events") > 0);
    sqlite3_close(h);
    free(db);
    free(dir);
}

static void test_a_static_program(void **state)
{
    (void)state;
    if (!TRACE_STATIC_BIN[0]) {
        print_message("no static C library to link with: skipped\n");
        skip();
    }
    struct tu_run r;
    char *dir;
    char *db = record_of(TRACE_STATIC_BIN, "hold", &dir, &r);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    /* Its C library is in its own file: its functions are still not the site shown. */
    tu_vmsnap(&r, "-d", db, "growth", "-j", NULL);
    assert_int_equal(r.status, 0);
    assert_site(r.out, "leak_site", "hold", 2 * MIB, 1, 2);
    assert_site(r.out, "remap_site_b", "hold", 2 * MIB, 1, 1);
    assert_site(r.out, "heap_site", "hold", 256 << 10, 1, 1);
    tu_run_release(&r);
    free(db);
    free(dir);
}

static void test_a_program_without_symbols(void **state)
{
    (void)state;
    char *dir;
    char *stripped = tu_tmppath("trace_child_stripped", &dir);
    char *argv[] = {"/usr/bin/strip", "-o", stripped, TRACE_CHILD_BIN, NULL};
    struct tu_run r;
    if (access(argv[0], X_OK) != 0) {
        print_message("no strip (binutils): skipped\n");
        skip();
    }
    tu_run(&r, argv);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    char *db_dir;
    char *db = record_of(stripped, "hold", &db_dir, &r);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    /* Its frames are where they are in its file: module+offset, no function, no line. */
    tu_vmsnap(&r, "-d", db, "growth", "-j", NULL);
    assert_int_equal(r.status, 0);
    const char *site = strstr(r.out, "{\"bytes\":2097152,\"regions\":1,\"calls\":2,");
    assert_non_null(site);
    assert_non_null(strstr(site, "{\"function\":null,\"file\":null,\"line\":null,\"module\":\""));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "growth", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "trace_child_stripped+0x"));
    tu_run_release(&r);
    free(db);
    free(db_dir);
    free(stripped);
    free(dir);
}

/* The TracerPid of pid's status: 0 when nothing traces it, -1 when it is gone. */
static long tracer_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long tracer = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "TracerPid:", 10) == 0)
            tracer = strtol(line + 10, NULL, 10);
    fclose(f);
    return tracer;
}

static void test_attached_to_a_running_program(void **state)
{
    (void)state;
    struct tu_proc prog;
    char *argv[] = {TRACE_CHILD_BIN, "drip", NULL};
    tu_spawn(&prog, argv);
    usleep(200 * 1000);
    char *dir;
    char *db = tu_tmppath("s.db", &dir);
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)prog.pid);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "--stacks", "-p", pid, "-i", "100ms", "-t", "1s", NULL);
    if (r.status == 2 && (strstr(r.err, "built without it") || strstr(r.err, "Yama"))) {
        print_message("%s", r.err);
        tu_run_release(&r);
        struct tu_run pr;
        tu_wait(&prog, &pr);
        tu_run_release(&pr);
        skip();
    }
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "duration reached"));
    tu_run_release(&r);
    /* Let go: it runs on untraced, and every one of its calls works. */
    assert_int_equal(tracer_of(prog.pid), 0);
    struct tu_run pr;
    tu_wait(&prog, &pr);
    assert_int_equal(pr.status, 0);
    tu_run_release(&pr);
    /* What it made while traced is its site's: one region, a MiB a call. */
    sqlite3 *h = tu_db_open(db);
    int64_t calls = tu_q64(h, "SELECT count(*) FROM events e JOIN stack_frames f ON f.stack_id "
                              "= e.stack_id WHERE e.call = 'mmap' AND f.function = 'drip_site'");
    sqlite3_close(h);
    assert_true(calls >= 5);
    tu_vmsnap(&r, "-d", db, "growth", "-j", NULL);
    assert_int_equal(r.status, 0);
    struct site s;
    assert_true(find_site(r.out, "leak_site", "drip_site", &s));
    /* The first call may have come before the range's first snapshot, and the last ones after
     * its last (the calls recorded until the recording stopped). */
    assert_true(s.calls <= calls && s.calls >= calls - 4);
    assert_int_equal(s.bytes, s.calls * MIB);
    assert_int_equal(s.regions, 1);
    tu_run_release(&r);
    free(db);
    free(dir);
}

static void test_stacks_failures(void **state)
{
    (void)state;
    struct tu_run r;
    char *dir;
    char *db = tu_tmppath("s.db", &dir);
    /* A pid that is no process: said, and no database made. */
    tu_vmsnap(&r, "-d", db, "record", "--stacks", "-p", "4000000", NULL);
    if (strstr(r.err, "built without it")) {
        tu_run_release(&r);
        free(db);
        free(dir);
        skip();
    }
    tu_assert_trouble(&r, "no such process '4000000'");
    tu_run_release(&r);
    assert_int_not_equal(access(db, F_OK), 0);
    tu_vmsnap(&r, "-d", db, "record", "--stacks", "--", "/nonexistent/program", NULL);
    if (strstr(r.err, "built without it")) {
        tu_run_release(&r);
        free(db);
        free(dir);
        skip();
    }
    tu_assert_trouble(&r, "cannot run '/nonexistent/program': No such file or directory");
    tu_run_release(&r);
    /* A process traced already (here by another recording with stacks) cannot be attached. */
    char *other = tu_tmppath("o.db", NULL);
    struct tu_proc rec;
    tu_spawn_vmsnap(&rec, "-d", other, "record", "--stacks", "-i", "100ms", "--", TRACE_CHILD_BIN,
                    "drip", NULL);
    int64_t pid = 0;
    for (int i = 0; i < 100 && !pid; i++) {
        usleep(50 * 1000);
        if (access(other, F_OK) != 0)
            continue;
        sqlite3 *h = tu_db_open(other);
        if (tu_q64(h, "SELECT count(*) FROM sqlite_master WHERE name = 'snapshots'"))
            pid = tu_q64(h, "SELECT coalesce((SELECT pid FROM targets ORDER BY id LIMIT 1), 0)");
        sqlite3_close(h);
    }
    if (!pid) {
        struct tu_run rr;
        tu_wait(&rec, &rr);
        fail_msg("the other recording did not start: %d %s", rr.status, rr.err);
    }
    char p[32];
    snprintf(p, sizeof(p), "%lld", (long long)pid);
    tu_vmsnap(&r, "-d", db, "record", "--stacks", "-p", p, NULL);
    tu_assert_trouble(&r, "traced already");
    tu_run_release(&r);
    struct tu_run rr;
    tu_wait(&rec, &rr);
    assert_int_equal(rr.status, 0); /* the other recording's program was not disturbed */
    tu_run_release(&rr);
    free(other);
    free(db);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sites_hold_exact_bytes),
        cmocka_unit_test(test_sites_of_a_forked_child),
        cmocka_unit_test(test_calls_of_brief_children),
        cmocka_unit_test(test_stopping_leaves_the_program_whole),
        cmocka_unit_test(test_a_killed_recorder_takes_the_program),
        cmocka_unit_test(test_attached_to_a_running_program),
        cmocka_unit_test(test_a_sanitized_program_exits),
        cmocka_unit_test(test_a_static_program),
        cmocka_unit_test(test_a_program_without_symbols),
        cmocka_unit_test(test_stacks_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
