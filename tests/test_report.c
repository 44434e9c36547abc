/*
 * vmsnap report: the pure reductions (time buckets, the address-space strip) on known input;
 * the report of a scripted recording of a real child, whose embedded JSON must hold the growth
 * and diff JSON exactly as `growth -j` and `diff -j` print them, the series of every snapshot
 * and the marks; headless Chromium drawing it without a console error (and catching a broken
 * copy); and the failures a user can cause.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/report.h"
#include "testutil.h"

#define M (1024ULL * 1024)

static void test_buckets(void **state)
{
    (void)state;
    struct report_bucket *b = NULL;
    int64_t t[10000];
    /* Fewer snapshots than buckets: each its own. */
    for (int k = 0; k < 5; k++)
        t[k] = 1000 + k * 500;
    assert_int_equal(report_buckets(t, 5, 1000, &b), 5);
    for (size_t k = 0; k < 5; k++)
        assert_true(b[k].first == k && b[k].last == k);
    free(b);
    /* 10,000 snapshots a second apart into 1,000 buckets: ten each, in order, none lost. */
    for (int k = 0; k < 10000; k++)
        t[k] = 1800000000000LL + k * 1000LL;
    size_t n = report_buckets(t, 10000, 1000, &b);
    assert_int_equal(n, 1000);
    size_t next = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(b[i].first, next);
        assert_true(b[i].last >= b[i].first);
        next = b[i].last + 1;
    }
    assert_int_equal(next, 10000);
    assert_int_equal(b[0].last, 9);
    free(b);
    /* A clock that went back: the late snapshot starts a group of its own, nothing mixes. */
    for (int k = 0; k < 3000; k++)
        t[k] = k * 10LL;
    t[1500] = 5;
    n = report_buckets(t, 3000, 1000, &b);
    next = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(b[i].first, next);
        next = b[i].last + 1;
        if (b[i].first <= 1500 && 1500 <= b[i].last)
            assert_true(b[i].first == 1500 && b[i].last == 1500);
    }
    assert_int_equal(next, 3000);
    free(b);
}

static void push(struct region_list *l, uint64_t start, uint64_t end, int cat)
{
    struct region *r = region_list_push(l);
    r->start = start;
    r->end = end;
    memcpy(r->perms, "rw-p", 5);
    r->category = (uint8_t)cat;
}

static void test_strip(void **state)
{
    (void)state;
    struct region_list l;
    region_list_init(&l);
    /* 1 MiB of heap, a gap, 3 MiB of anon: four pixels of 1 MiB each, the gap left out. */
    push(&l, 0x100000, 0x200000, CAT_HEAP);
    push(&l, 0x7f0000000000, 0x7f0000300000, CAT_ANON);
    struct report_pixel *px = NULL;
    assert_int_equal(report_strip(&l, 4, &px), 4);
    assert_int_equal(px[0].category, CAT_HEAP);
    assert_int_equal(px[0].start, 0x100000);
    assert_int_equal(px[0].end, 0x200000);
    for (int p = 1; p < 4; p++) {
        assert_int_equal(px[p].category, CAT_ANON);
        assert_int_equal(px[p].regions, 1);
        assert_int_equal(px[p].start, 0x7f0000000000 + (uint64_t)(p - 1) * M);
        assert_int_equal(px[p].end, 0x7f0000000000 + (uint64_t)p * M);
    }
    free(px);
    /* Two pixels over the same 4 MiB: the first holds all the heap and 1 MiB of anon (heap
     * wins, 1 MiB each: the lower category), the second 2 MiB of anon. Every byte is counted
     * once. */
    assert_int_equal(report_strip(&l, 2, &px), 2);
    assert_int_equal(px[0].regions, 2);
    assert_int_equal(px[0].bytes[CAT_HEAP], M);
    assert_int_equal(px[0].bytes[CAT_ANON], M);
    assert_int_equal(px[0].end, 0x7f0000100000);
    assert_int_equal(px[1].bytes[CAT_ANON], 2 * M);
    assert_int_equal(px[1].start, 0x7f0000100000);
    free(px);
    /* Many small regions in few pixels: a pixel takes the category of most of its bytes. */
    region_list_clear(&l);
    for (uint64_t k = 0; k < 1000; k++)
        push(&l, 0x10000000 + k * 0x2000, 0x10000000 + k * 0x2000 + 0x1000,
             k % 4 == 0 ? CAT_GUARD : CAT_FILE);
    assert_int_equal(report_strip(&l, 10, &px), 10);
    uint64_t sum = 0;
    for (int p = 0; p < 10; p++) {
        assert_int_equal(px[p].category, CAT_FILE);
        for (int c = 0; c < CAT_COUNT; c++)
            sum += px[p].bytes[c];
    }
    assert_int_equal(sum, 1000 * 0x1000);
    free(px);
    region_list_clear(&l);
    assert_int_equal(report_strip(&l, 10, &px), 0);
    region_list_release(&l);
}

/* The text of the embedded data: between the data script's tag and its end. Caller frees. */
static char *embedded_data(const char *html)
{
    const char *open = "<script type=\"application/json\" id=\"vmsnap-data\">";
    const char *a = strstr(html, open);
    assert_non_null(a);
    a += strlen(open);
    const char *b = strstr(a, "</script>");
    assert_non_null(b);
    return strndup(a, (size_t)(b - a));
}

/* s without its outer braces and trailing newline (an object's members). */
static char *members(const char *json)
{
    size_t n = strlen(json);
    while (n && json[n - 1] == '\n')
        n--;
    assert_true(n >= 2 && json[0] == '{' && json[n - 1] == '}');
    return strndup(json + 1, n - 2);
}

/* The integers of the array that follows key in s. */
static size_t int_array(const char *s, const char *key, long long *out, size_t max)
{
    const char *p = strstr(s, key);
    if (!p)
        fail_msg("no %s in the data", key);
    p += strlen(key);
    size_t n = 0;
    while (*p != ']' && n < max) {
        char *end;
        out[n++] = strtoll(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

struct scripted {
    struct tu_child c;
    char pid[16];
    char *db, *dir;
};

/*
 * A recording whose every change is known: a recorder with per-region figures (once an hour:
 * only marks add snapshots) takes snapshot 1; then 1 MiB is mapped at 0x350000000 and mark "a"
 * taken, 2 MiB at 0x360000000 (half of it touched) and mark "b", the first unmapped and mark
 * "c": four snapshots.
 */
static void scripted_start(struct scripted *s)
{
    memset(s, 0, sizeof(*s));
    tu_child_start(&s->c);
    snprintf(s->pid, sizeof(s->pid), "%d", (int)s->c.pid);
    s->db = tu_tmppath("report.db", &s->dir);
    struct tu_proc rec;
    tu_spawn_vmsnap(&rec, "-d", s->db, "record", "-p", s->pid, "-i", "1h", "--detail", "smaps",
                    NULL);
    struct tu_run r;
    /* The recorder has registered once its first snapshot is there. */
    for (int i = 0; i < 500; i++) {
        tu_vmsnap(&r, "-d", s->db, "query", "SELECT count(*) FROM recorders", NULL);
        int ready = r.status == 0 && strstr(r.out, "1\n") != NULL;
        tu_run_release(&r);
        if (ready)
            break;
        usleep(20 * 1000);
    }
    const char *steps[][2] = {
        {"mapat 0x350000000 1048576 rw-", "a"},
        {"mapat 0x360000000 2097152 rw-", "b"},
        {"unmap 0x350000000 1048576", "c"},
    };
    for (int k = 0; k < 3; k++) {
        tu_child_ok(&s->c, "%s", steps[k][0]);
        if (k == 1)
            tu_child_ok(&s->c, "touch 0x360000000 1048576");
        tu_vmsnap(&r, "-d", s->db, "mark", "--label", steps[k][1], NULL);
        if (r.status != 0)
            fail_msg("mark %s: exit %d: %s", steps[k][1], r.status, r.err);
        tu_run_release(&r);
    }
    kill(rec.pid, SIGTERM);
    tu_wait(&rec, &r);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
}

static void scripted_stop(struct scripted *s)
{
    tu_child_stop(&s->c);
    free(s->db);
    free(s->dir);
}

static char *report_of(const char *db, const char *out, const char *extra)
{
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "report", "-o", out, extra, NULL);
    if (r.status != 0)
        fail_msg("report: exit %d: %s", r.status, r.err);
    assert_non_null(strstr(r.err, "written to"));
    tu_run_release(&r);
    return tu_read_file(out, NULL);
}

static void test_report_embeds_the_recording(void **state)
{
    (void)state;
    struct scripted s;
    scripted_start(&s);
    char *path = NULL;
    if (asprintf(&path, "%s/r.html", s.dir) < 0)
        fail();
    char *html = report_of(s.db, path, NULL);
    /* Private, like the database: it holds an address map. */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Self-contained: nothing it could fetch. */
    assert_null(strstr(html, "http"));
    assert_null(strstr(html, " src="));
    assert_null(strstr(html, " href="));
    char *data = embedded_data(html);
    assert_true(strncmp(data, "{\"vmsnap_report\":1,", 19) == 0);

    /* The growth members, byte for byte as growth -j prints them. */
    struct tu_run r;
    tu_vmsnap(&r, "-d", s.db, "-j", "growth", NULL);
    assert_int_equal(r.status, 0);
    char *g = members(r.out);
    tu_run_release(&r);
    assert_true(strncmp(data + 19, g, strlen(g)) == 0);
    assert_non_null(strstr(g, "\"snapshots\":4"));
    free(g);

    /* The diff of first and last, as diff -j prints it, every change of it. */
    tu_vmsnap(&r, "-d", s.db, "-j", "diff", "first", "last", NULL);
    assert_int_equal(r.status, 1);
    char *d = members(r.out);
    tu_run_release(&r);
    char *want = NULL;
    if (asprintf(&want, "\"diff\":{%s,\"changes_shown\":", d) < 0)
        fail();
    assert_non_null(strstr(data, want));
    assert_non_null(strstr(d,
                           "{\"change\":\"new\",\"start\":\"0x360000000\",\"end\":\"0x360200000\","
                           "\"size\":2097152"));
    assert_null(strstr(d, "0x350000000")); /* mapped and unmapped within the range */
    free(want);
    free(d);

    /* The series: four snapshots, four buckets, each committed total exactly the snapshot's
     * (mapped less no-access), as category_totals has it; anon grows by 1 MiB, 2 MiB, -1 MiB. */
    long long first[8], cmin[8], cmax[8], anon[8];
    assert_int_equal(int_array(data, "\"series\":{\"buckets\":4,\"first\":[", first, 8), 4);
    assert_int_equal(int_array(data, "\"committed\":{\"total\":{\"min\":[", cmin, 8), 4);
    assert_int_equal(int_array(data, "\"committed\":{\"total\":{\"min\":[", cmin, 8), 4);
    const char *maxkey = strstr(strstr(data, "\"committed\":{\"total\":{\"min\":["), "\"max\":[");
    assert_int_equal(int_array(maxkey, "\"max\":[", cmax, 8), 4);
    const char *anonkey = strstr(strstr(data, "\"series\":"), "\"anon\":{\"min\":[");
    assert_int_equal(int_array(anonkey, "\"anon\":{\"min\":[", anon, 8), 4);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(cmin[k], cmax[k]);
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT sum(committed) FROM category_totals WHERE snapshot_id = %lld", first[k]);
        tu_vmsnap(&r, "-d", s.db, "query", sql, NULL);
        assert_int_equal(r.status, 0);
        assert_int_equal(strtoll(strchr(r.out, '\n') + 1, NULL, 10), cmin[k]);
        tu_run_release(&r);
    }
    assert_int_equal(anon[1] - anon[0], (long long)M);
    assert_int_equal(anon[2] - anon[1], 2 * (long long)M);
    assert_int_equal(anon[3] - anon[2], -(long long)M);

    /* The marks, with their labels and numbers. */
    const char *labels = strstr(data, "\"labels\":[");
    assert_non_null(labels);
    const char *want_marks[] = {"\"label\":\"a\",", "\"mark\":1}",      "\"label\":\"b\",",
                                "\"mark\":2}",      "\"label\":\"c\",", "\"mark\":3}"};
    for (int k = 0; k < 6; k += 2) {
        const char *at = strstr(labels, want_marks[k]);
        assert_non_null(at);
        const char *mark = strstr(at, want_marks[k + 1]);
        assert_non_null(mark);
        assert_true(mark < strchr(at, '}'));
    }
    assert_non_null(strstr(data, "\"labels_omitted\":0"));

    /* The strip: 1,000 pixels of the last snapshot, the 2 MiB region among them. */
    long long cats[1001];
    const char *strip = strstr(data, "\"strip\":{");
    assert_non_null(strip);
    assert_int_equal(int_array(strip, "\"category\":[", cats, 1001), REPORT_WIDTH);
    tu_vmsnap(&r, "-d", s.db, "query",
              "SELECT printf('\"mapped\":%d,', mapped_bytes) FROM "
              "snapshots WHERE id = (SELECT max(id) FROM snapshots)",
              NULL);
    assert_int_equal(r.status, 0);
    char mapped[64];
    snprintf(mapped, sizeof(mapped), "%s", strchr(r.out, '\n') + 1);
    mapped[strcspn(mapped, " \n")] = '\0';
    assert_non_null(strstr(strip, mapped));
    tu_run_release(&r);
    free(data);
    free(html);
    free(path);
    scripted_stop(&s);
}

/* Chromium's path (scripts/test.sh installs Debian's chromium), or NULL. */
static const char *chromium_path(void)
{
    static char path[4096];
    FILE *p = popen("command -v chromium", "r");
    if (!p)
        return NULL;
    int ok = fgets(path, sizeof(path), p) != NULL;
    pclose(p);
    path[strcspn(path, "\n")] = '\0';
    return ok && path[0] == '/' ? path : NULL;
}

/* Runs headless Chromium on file; returns its --dump-dom output and the console lines. */
static void chromium(const char *file, const char *shot, struct tu_run *r)
{
    char *url = NULL, *shot_arg = NULL;
    if (asprintf(&url, "file://%s", file) < 0 || asprintf(&shot_arg, "--screenshot=%s", shot) < 0)
        fail();
    char *argv[] = {(char *)chromium_path(),
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--enable-logging=stderr",
                    "--v=0",
                    shot ? shot_arg : "--dump-dom",
                    "--window-size=1280,2000",
                    url,
                    NULL};
    tu_run(r, argv);
    free(url);
    free(shot_arg);
}

/* Whether the page drew in full with no error: data-rendered, no data-errors, no console. */
static int drew_cleanly(const struct tu_run *r)
{
    return r->status == 0 && strstr(r->out, "data-rendered=\"1\"") &&
           !strstr(r->out, "data-errors=\"") && !strstr(r->err, ":CONSOLE");
}

static void test_report_renders_in_chromium(void **state)
{
    (void)state;
    if (!chromium_path()) {
        print_message("chromium is not installed (scripts/test.sh installs it): skipped\n");
        skip();
    }
    struct scripted s;
    scripted_start(&s);
    /* A file whose path would end the data's <script> element if it were not escaped: a
     * directory "x<" holding "script><b>bold.bin". */
    char *evil = NULL, *evil_dir = NULL, *path = NULL, *broken = NULL, *shot = NULL;
    if (asprintf(&evil_dir, "%s/x<", s.dir) < 0 ||
        asprintf(&evil, "%s/script><b>bold.bin", evil_dir) < 0 ||
        asprintf(&path, "%s/r.html", s.dir) < 0 || asprintf(&broken, "%s/b.html", s.dir) < 0 ||
        asprintf(&shot, "%s/r.png", s.dir) < 0)
        fail();
    assert_int_equal(mkdir(evil_dir, 0700), 0);
    tu_child_ok(&s.c, "mapfile %s 65536 r-- p", evil);
    struct tu_run r;
    tu_vmsnap(&r, "-d", s.db, "snap", "-p", s.pid, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    char *html = report_of(s.db, path, NULL);
    char *data = embedded_data(html);
    assert_non_null(strstr(data, "x\\u003c/script\\u003e\\u003cb\\u003ebold.bin"));
    free(data);

    chromium(path, NULL, &r);
    if (!drew_cleanly(&r)) {
        const char *console = strstr(r.err, ":CONSOLE");
        fail_msg("the report did not draw cleanly (exit %d, rendered %d, errors %d): %.300s",
                 r.status, strstr(r.out, "data-rendered=\"1\"") != NULL,
                 strstr(r.out, "data-errors=\"") != NULL, console ? console : "");
    }
    /* The headline says what growth's plain line says: its first word and its first seq. */
    struct tu_run g;
    tu_vmsnap(&g, "-d", s.db, "growth", NULL);
    assert_int_equal(g.status, 0);
    const char *line = strstr(g.out, "\n  committed     ");
    assert_non_null(line);
    line += strlen("\n  committed     ");
    char word[32] = "", seq[32] = "";
    sscanf(line, "%31s", word);
    const char *sq = strstr(line, "seq ");
    if (sq && sq < strchr(line, '\n'))
        snprintf(seq, sizeof(seq), "seq %ld", strtol(sq + 4, NULL, 10));
    const char *card = strstr(r.out, "class=\"big");
    if (!card || !strstr(card, word) || (seq[0] && !strstr(card, seq)))
        fail_msg("the headline does not say '%s ... %s': %.200s", word, seq, card ? card : "");
    print_message("report: the headline says '%s ... %s' as growth does\n", word, seq);
    /* A series that moved has its phases drawn behind the timeline. */
    if (strcmp(word, "nothing") != 0)
        assert_non_null(strstr(r.out, "class=\"phase\""));
    tu_run_release(&g);
    /* The changes are titled as the CLI names their snapshots: id, seq and time. */
    tu_vmsnap(&g, "-d", s.db, "diff", "first", "last", NULL);
    char from[96] = "";
    const char *fa = strstr(g.out, "from snapshot ");
    assert_non_null(fa);
    long fid = strtol(fa + strlen("from snapshot "), NULL, 10);
    const char *fs = strstr(fa, " seq "), *ft = strstr(fa, ", ");
    assert_true(fs && ft);
    snprintf(from, sizeof(from), "Changes from snapshot %ld (seq %ld, %.24s)", fid,
             strtol(fs + 5, NULL, 10), ft + 2);
    if (!strstr(r.out, from))
        fail_msg("the changes are not titled '%s'", from);
    tu_run_release(&g);
    /* The hostile name is shown as text, in the diff table. */
    assert_non_null(strstr(r.out, "x&lt;/script&gt;&lt;b&gt;bold.bin"));
    assert_null(strstr(r.out, "<b>"));
    tu_run_release(&r);
    chromium(path, shot, &r);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    struct stat sb;
    assert_int_equal(stat(shot, &sb), 0);
    assert_true(sb.st_size > 20000);

    /* The check itself: a copy whose script breaks halfway is caught. */
    char *bad = strdup(html);
    char *at = strstr(bad, "  drawDiff();\n\n");
    assert_non_null(at);
    memcpy(at, "  drawDif();", 12);
    FILE *f = fopen(broken, "w");
    fputs(bad, f);
    fclose(f);
    chromium(broken, NULL, &r);
    assert_false(drew_cleanly(&r));
    assert_non_null(strstr(r.out, "data-errors=\"1\""));
    tu_run_release(&r);
    free(bad);
    free(html);
    free(evil);
    free(evil_dir);
    free(path);
    free(broken);
    free(shot);
    scripted_stop(&s);
}

static void test_report_failures(void **state)
{
    (void)state;
    struct scripted s;
    scripted_start(&s);
    char *path = NULL;
    if (asprintf(&path, "%s/kept.html", s.dir) < 0)
        fail();
    char *before = report_of(s.db, path, NULL);
    struct tu_run r;
    /* A failed report leaves the one that was there. */
    tu_vmsnap(&r, "-d", s.db, "report", "-o", path, "--from", "last", "--to", "first", NULL);
    tu_assert_trouble(&r, "comes after --to");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", s.db, "report", "-o", path, "--from", "no-such-label", NULL);
    assert_int_equal(r.status, 2);
    tu_run_release(&r);
    char *after = tu_read_file(path, NULL);
    assert_string_equal(before, after);
    free(after);
    free(before);
    /* Never over the database, nor into a directory. */
    tu_vmsnap(&r, "-d", s.db, "report", "-o", s.db, NULL);
    tu_assert_trouble(&r, "is the database");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", s.db, "query", "SELECT count(*) FROM snapshots", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", s.db, "report", "-o", s.dir, NULL);
    tu_assert_trouble(&r, "is a directory");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", s.db, "report", "-o", "/nonexistent-dir/r.html", NULL);
    tu_assert_trouble(&r, "cannot write '/nonexistent-dir/r.html'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", s.db, "report", "stray", NULL);
    tu_assert_trouble(&r, "unexpected argument 'stray'");
    tu_run_release(&r);
    /* No database: nothing is created. */
    char *none = NULL;
    if (asprintf(&none, "%s/none.db", s.dir) < 0)
        fail();
    tu_vmsnap(&r, "-d", none, "report", "-o", path, NULL);
    tu_assert_trouble(&r, "no database at");
    tu_run_release(&r);
    assert_int_equal(access(none, F_OK), -1);
    /* To stdout. */
    tu_vmsnap(&r, "-d", s.db, "report", "-o", "-", NULL);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "<!DOCTYPE html>", 15) == 0);
    tu_run_release(&r);
    free(none);
    free(path);
    scripted_stop(&s);
}

/* A recorded tree (forker's workers): the report shows its processes, ranked, the leaker first
 * and marked as the one the report is of, drawn by Chromium without an error. */
static void test_report_of_a_tree(void **state)
{
    (void)state;
    if (!chromium_path()) {
        print_message("chromium is not installed (scripts/test.sh installs it): skipped\n");
        skip();
    }
    char *dir = NULL, *db = tu_tmppath("tree.db", &dir);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-i", "50ms", "--", FORKER_BIN, "workers", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    char path[4200];
    snprintf(path, sizeof(path), "%s/t.html", dir);
    tu_vmsnap(&r, "-d", db, "report", "-o", path, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    chromium(path, NULL, &r);
    if (!drew_cleanly(&r))
        fail_msg("the tree report did not draw cleanly: %.300s", r.err);
    const char *table = strstr(r.out, "id=\"tree-table\"");
    assert_non_null(table);
    /* Four rows after the header; the first is the one the report is of, and it leaked. */
    const char *row = strstr(table, "<tr>");
    int rows = 0;
    for (const char *p = row; p && (p = strstr(p + 1, "<tr")) && p < strstr(table, "</table>");)
        rows++;
    assert_int_equal(rows, 4);
    const char *first = strstr(row + 1, "<tr");
    assert_non_null(first);
    assert_non_null(strstr(first, "\u25c0"));
    assert_true(strstr(first, "\u25c0") < strstr(first + 1, "<tr"));
    assert_non_null(strstr(first, "+24.0 MiB"));
    assert_null(strstr(r.out, "id=\"tree-section\" style=\"display: none\""));
    assert_non_null(strstr(r.out, "<tr class=\"pick\""));
    /* The timeline of the processes: a line for each of the four. */
    const char *chart = strstr(r.out, "id=\"svg-tree\"");
    assert_non_null(chart);
    int lines = 0;
    for (const char *p = chart; (p = strstr(p + 1, "<path")) && p < strstr(chart, "</svg>");)
        lines++;
    assert_int_equal(lines, 4);
    tu_run_release(&r);
    /* Every other process's page is in the file too: #target=N shows it, the tree kept. */
    size_t len;
    char *html = tu_read_file(path, &len);
    const char *other = strstr(html, "\"processes\":[{\"target\":{\"id\":");
    assert_non_null(other);
    long id = strtol(other + strlen("\"processes\":[{\"target\":{\"id\":"), NULL, 10);
    const char *pp = strstr(other, "\"pid\":");
    assert_non_null(pp);
    long pid = strtol(pp + 6, NULL, 10);
    free(html);
    char frag[4300], want[96];
    snprintf(frag, sizeof(frag), "%s#target=%ld", path, id);
    chromium(frag, NULL, &r);
    if (!drew_cleanly(&r))
        fail_msg("target %ld's page did not draw cleanly: %.300s", id, r.err);
    snprintf(want, sizeof(want), "<h1 id=\"title\">vmsnap report: forker (pid %ld)</h1>", pid);
    if (!strstr(r.out, want))
        fail_msg("#target=%ld does not show pid %ld", id, pid);
    assert_non_null(strstr(r.out, "id=\"tree-table\""));
    tu_run_release(&r);
    free(db);
    free(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_strip),
        cmocka_unit_test(test_report_embeds_the_recording),
        cmocka_unit_test(test_report_renders_in_chromium),
        cmocka_unit_test(test_report_of_a_tree),
        cmocka_unit_test(test_report_failures),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
