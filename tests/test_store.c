/* The store on real SQLite files: round trips, deltas, the regions view, refusals, migration. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture/maps_parse.h"
#include "diff/diff.h"
#include "store/store.h"
#include "store/migrations.h"
#include "store/schema_reference.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

static void load(const char *fixture, struct region_list *l)
{
    size_t len;
    char *text = tu_fixture(fixture, &len);
    struct err e = {0};
    region_list_init(l);
    int rc =
        strstr(fixture, "smaps") ? smaps_parse(text, len, l, &e) : maps_parse(text, len, l, &e);
    assert_int_equal(rc, 0);
    region_list_classify(l);
    free(text);
}

static struct capture_info info_for(int detail)
{
    struct capture_info i;
    memset(&i, 0, sizeof(i));
    i.detail = detail;
    i.method = detail == DETAIL_SMAPS ? "smaps" : "maps";
    i.taken_at_ms = 1763769600123LL;
    return i;
}

static struct capture_target fake_target(void)
{
    struct capture_target t = {0};
    t.pid = 4242;
    t.start_time = 777;
    t.boot_id = "boot-1";
    t.exe = "/tmp/vm_child";
    t.cmdline = "vm_child --x";
    t.exec_key = "1:2:3:4";
    t.host = "testhost";
    t.os = "linux";
    return t;
}

static int64_t count(struct store *st, const char *sql)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(st->db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void assert_same_regions(const struct region_list *a, const struct region_list *b,
                                int with_mem)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        if (!region_same_layout(&a->v[i], &b->v[i]))
            fail_msg("region %zu differs: %llx-%llx %s %s vs %llx-%llx %s %s", i,
                     (unsigned long long)a->v[i].start, (unsigned long long)a->v[i].end,
                     a->v[i].perms, a->v[i].path ? a->v[i].path : "",
                     (unsigned long long)b->v[i].start, (unsigned long long)b->v[i].end,
                     b->v[i].perms, b->v[i].path ? b->v[i].path : "");
        if (with_mem)
            assert_true(region_same_mem(&a->v[i], &b->v[i]));
        else
            assert_false(b->v[i].flags & REGION_HAS_MEM);
    }
}

struct fixture {
    char *path;
    struct store *st;
    struct store_writer *w;
};

static void open_fixture(struct fixture *f)
{
    struct err e = {0};
    f->path = tu_tmppath("t.db", NULL);
    assert_int_equal(store_open(&f->st, f->path, STORE_WRITE, &e), 0);
    static struct capture_target t;
    t = fake_target();
    assert_int_equal(store_writer_open(f->st, &t, &f->w, &e), 0);
}

static void close_fixture(struct fixture *f)
{
    store_writer_close(f->w);
    store_close(f->st);
    free(f->path);
}

static int64_t write_lent(struct fixture *f, const struct region_list *l, int detail,
                          const char *label, int lend)
{
    struct err e = {0};
    struct capture_info info = info_for(detail);
    int64_t id = 0;
    const struct store_snap_opts o = {label, STORE_LABEL_EXACT, STORE_NO_MARK, 0, 0, lend};
    if (store_writer_write(f->w, l, &info, &o, 10, &id, &e) != 0)
        fail_msg("write: %s", e.msg);
    return id;
}

static int64_t write_snap(struct fixture *f, const struct region_list *l, int detail,
                          const char *label)
{
    return write_lent(f, l, detail, label, 0);
}

static void read_snap(struct fixture *f, int64_t id, struct region_list *out)
{
    struct err e = {0};
    region_list_init(out);
    if (store_read_regions(f->st, id, out, &e) != 0)
        fail_msg("read: %s", e.msg);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list l, back;
    open_fixture(&f);
    load("edge.maps", &l);
    int64_t id = write_snap(&f, &l, DETAIL_MAPS, "one");
    read_snap(&f, id, &back);
    assert_same_regions(&l, &back, 0);
    /* [vsyscall] is above INT64_MAX and must come back unchanged, sorted last. */
    assert_true(back.v[back.n - 1].start == 0xffffffffff600000ULL);
    assert_true(back.v[back.n - 1].end == 0xffffffffff601000ULL);
    assert_int_equal(count(f.st, "SELECT size FROM regions WHERE path = '[vsyscall]'"), 4096);
    /* The snapshot row has the totals. */
    assert_int_equal(count(f.st, "SELECT region_count FROM snapshots"), (int64_t)l.n);
    assert_int_equal(count(f.st, "SELECT mapped_bytes FROM snapshots"),
                     (int64_t)region_list_mapped(&l));
    assert_int_equal(count(f.st, "SELECT count(*) FROM snapshots WHERE taken_at = "
                                 "'2025-11-22T00:00:00.123Z' AND "
                                 "datetime(taken_at) = '2025-11-22 00:00:00'"),
                     1);
    /* The database's size is its pages, the committed ones still in the WAL included: not
     * the file plus the WAL file, which keeps its size after a checkpoint. */
    int64_t pages = count(f.st, "PRAGMA page_count") * count(f.st, "PRAGMA page_size");
    assert_int_equal(store_db_bytes(f.st), pages);
    assert_true(pages > 0);
    region_list_release(&back);
    region_list_release(&l);
    close_fixture(&f);
}

static void test_unchanged_snapshot_adds_no_region_rows(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list l, back;
    open_fixture(&f);
    load("edge.smaps", &l);
    write_snap(&f, &l, DETAIL_SMAPS, NULL);
    int64_t spans =
        count(f.st, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)");
    int64_t mem = count(f.st, "SELECT count(*) FROM span_mem");
    int64_t paths = count(f.st, "SELECT count(*) FROM paths");
    assert_int_equal(spans, (int64_t)l.n);
    int64_t id2 = write_snap(&f, &l, DETAIL_SMAPS, NULL);
    int64_t id3 = write_snap(&f, &l, DETAIL_SMAPS, NULL);
    assert_int_equal(
        count(f.st, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)"),
        spans);
    assert_int_equal(count(f.st, "SELECT count(*) FROM span_mem"), mem);
    assert_int_equal(count(f.st, "SELECT count(*) FROM paths"), paths);
    assert_int_equal(count(f.st, "SELECT count(*) FROM snapshots"), 3);
    read_snap(&f, id3, &back);
    assert_same_regions(&l, &back, 1);
    region_list_release(&back);
    read_snap(&f, id2, &back);
    assert_same_regions(&l, &back, 1);
    region_list_release(&back);
    region_list_release(&l);
    close_fixture(&f);
}

static void test_change_closes_and_opens_exactly(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list a, b, back;
    open_fixture(&f);
    load("edge.maps", &a);
    int64_t s1 = write_snap(&f, &a, DETAIL_MAPS, NULL);
    /* b: region 7 freed, region 9 re-protected, a new region at 0x20000. */
    region_list_init(&b);
    for (size_t i = 0; i < a.n; i++) {
        if (i == 7)
            continue;
        struct region *r = region_list_push(&b);
        *r = a.v[i];
        if (i == 9)
            memcpy(r->perms, "r--p", 5);
        if (i == 0) {
            struct region *n = region_list_push(&b);
            memset(n, 0, sizeof(*n));
            n->start = 0x20000;
            n->end = 0x30000;
            memcpy(n->perms, "rw-p", 5);
        }
    }
    int64_t s2 = write_snap(&f, &b, DETAIL_MAPS, NULL);
    /* Closed exactly at s1: the freed region and the old version of the re-protected one. */
    assert_int_equal(count(f.st, "SELECT count(*) FROM spans"), 2);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM spans WHERE last_snap = %lld", (long long)s1);
    assert_int_equal(count(f.st, sql), 2);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM spans_open WHERE first_snap = %lld",
             (long long)s2);
    assert_int_equal(count(f.st, sql), 2);
    assert_int_equal(
        count(f.st, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)"),
        (int64_t)a.n + 2);
    /* Each snapshot still reads back exactly as captured. */
    read_snap(&f, s1, &back);
    assert_same_regions(&a, &back, 0);
    region_list_release(&back);
    read_snap(&f, s2, &back);
    assert_same_regions(&b, &back, 0);
    region_list_release(&back);
    region_list_release(&a);
    region_list_release(&b);
    close_fixture(&f);
}

static void test_memory_figures_are_intervals(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list a, b, back;
    open_fixture(&f);
    load("edge.smaps", &a);
    int64_t s1 = write_snap(&f, &a, DETAIL_SMAPS, NULL);
    int64_t mem1 = count(f.st, "SELECT count(*) FROM span_mem");
    /* Layout only: no figures shown for it, none written. */
    struct region_list maps;
    load("edge.maps", &maps);
    int64_t s2 = write_snap(&f, &maps, DETAIL_MAPS, NULL);
    assert_int_equal(count(f.st, "SELECT count(*) FROM span_mem"), mem1);
    /* One region's rss changes: exactly one new figures row. */
    region_list_init(&b);
    region_list_copy(&b, &a);
    region_extra_set(&b, &b.v[6])->rss += 8192;
    int64_t s3 = write_snap(&f, &b, DETAIL_SMAPS, NULL);
    assert_int_equal(count(f.st, "SELECT count(*) FROM span_mem"), mem1 + 1);
    assert_int_equal(
        count(f.st, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)"),
        (int64_t)a.n);
    read_snap(&f, s1, &back);
    assert_same_regions(&a, &back, 1);
    region_list_release(&back);
    read_snap(&f, s2, &back);
    assert_same_regions(&maps, &back, 0);
    region_list_release(&back);
    read_snap(&f, s3, &back);
    assert_same_regions(&b, &back, 1);
    region_list_release(&back);
    region_list_release(&a);
    region_list_release(&b);
    region_list_release(&maps);
    close_fixture(&f);
}

static void test_new_writer_continues_from_database(void **state)
{
    (void)state;
    /* Each `vmsnap snap` is a new process: its writer must start from what is stored. */
    struct fixture f;
    struct region_list l;
    struct err e = {0};
    open_fixture(&f);
    load("edge.smaps", &l);
    write_snap(&f, &l, DETAIL_SMAPS, NULL);
    int64_t spans =
        count(f.st, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)");
    int64_t mem = count(f.st, "SELECT count(*) FROM span_mem");
    store_writer_close(f.w);
    static struct capture_target t;
    t = fake_target();
    assert_int_equal(store_writer_open(f.st, &t, &f.w, &e), 0);
    int64_t s2 = write_snap(&f, &l, DETAIL_SMAPS, NULL);
    assert_int_equal(
        count(f.st, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)"),
        spans);
    assert_int_equal(count(f.st, "SELECT count(*) FROM span_mem"), mem);
    assert_int_equal(count(f.st, "SELECT max(seq) FROM snapshots"), 2);
    struct region_list back;
    read_snap(&f, s2, &back);
    assert_same_regions(&l, &back, 1);
    region_list_release(&back);
    region_list_release(&l);
    close_fixture(&f);
}

/* 5000 file mappings: more than fits in the pages a new database has. */
static void big_list(struct region_list *big)
{
    region_list_init(big);
    for (int i = 0; i < 5000; i++) {
        struct region *r = region_list_push(big);
        r->start = 0x100000000ULL + (uint64_t)i * 0x2000;
        r->end = r->start + 0x1000;
        memcpy(r->perms, "rw-p", 5);
        char name[64];
        snprintf(name, sizeof(name), "/tmp/file-%d", i);
        r->path = region_list_intern(big, name, strlen(name));
        r->path_len = (uint32_t)strlen(name);
        r->category = CAT_FILE;
    }
}

/* A full disk, simulated: with full set, the database may not grow by another page. */
static void disk_full(struct fixture *f, int full)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
             full ? (long long)count(f->st, "PRAGMA page_count") : 1000000LL);
    assert_int_equal(sqlite3_exec(f->st->db, sql, NULL, NULL, NULL), SQLITE_OK);
}

/* Writes l expecting a full disk; returns the error. */
static void write_full(struct fixture *f, const struct region_list *l, struct err *e)
{
    struct capture_info info = info_for(DETAIL_MAPS);
    int64_t id;
    assert_int_equal(store_writer_write(f->w, l, &info, NULL, 0, &id, e), ERR_FULL);
    assert_non_null(strstr(e->msg, "full"));
}

static void test_failed_write_leaves_nothing(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list a, big;
    struct err e = {0};
    open_fixture(&f);
    load("edge.maps", &a);
    int64_t s1 = write_snap(&f, &a, DETAIL_MAPS, NULL);
    disk_full(&f, 1);
    big_list(&big);
    write_full(&f, &big, &e);
    assert_int_equal(count(f.st, "SELECT count(*) FROM snapshots"), 1);
    assert_int_equal(
        count(f.st, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)"),
        (int64_t)a.n);
    struct region_list back;
    read_snap(&f, s1, &back);
    assert_same_regions(&a, &back, 0);
    region_list_release(&back);
    /* Once there is room again, the next write is a correct delta from the last commit. */
    disk_full(&f, 0);
    int64_t s2 = write_snap(&f, &big, DETAIL_MAPS, NULL);
    read_snap(&f, s2, &back);
    assert_same_regions(&big, &back, 0);
    region_list_release(&back);
    read_snap(&f, s1, &back);
    assert_same_regions(&a, &back, 0);
    region_list_release(&back);
    region_list_release(&a);
    region_list_release(&big);
    close_fixture(&f);
}

static void test_failed_first_write_leaves_no_target(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list a;
    struct err e = {0};
    open_fixture(&f);
    big_list(&a);
    disk_full(&f, 1);
    write_full(&f, &a, &e);
    assert_int_equal(count(f.st, "SELECT count(*) FROM targets"), 0);
    assert_int_equal(store_writer_target(f.w), 0);
    disk_full(&f, 0);
    write_snap(&f, &a, DETAIL_MAPS, NULL);
    assert_int_equal(count(f.st, "SELECT count(*) FROM targets"), 1);
    assert_int_equal(store_writer_target(f.w), 1);
    region_list_release(&a);
    close_fixture(&f);
}

static char *file_bytes(const char *path, size_t *len)
{
    return tu_read_file(path, len);
}

static void expect_refused(const char *path, int code)
{
    size_t before_len, after_len;
    /* Private, so what is refused is the content, not who may read the file. */
    assert_int_equal(chmod(path, 0600), 0);
    char *before = file_bytes(path, &before_len);
    struct store *st = NULL;
    struct err e = {0};
    assert_int_equal(store_open(&st, path, STORE_WRITE, &e), code);
    assert_null(st);
    assert_non_null(strstr(e.msg, path));
    char *after = file_bytes(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    char wal[4096];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    assert_int_equal(access(wal, F_OK), -1);
    free(before);
    free(after);
}

static void test_refuses_foreign_files(void **state)
{
    (void)state;
    char *text = tu_tmppath("notes.txt", NULL);
    FILE *f = fopen(text, "w");
    fputs("just some text, not a database at all, long enough to fill a header........"
          "..............................................\n",
          f);
    fclose(f);
    expect_refused(text, ERR_NOTVMSNAP);

    char *other = tu_tmppath("other.db", NULL);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    expect_refused(other, ERR_NOTVMSNAP);

    char *app = tu_tmppath("app.db", NULL);
    assert_int_equal(sqlite3_open(app, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "PRAGMA application_id = 1234; CREATE TABLE t(x);", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    expect_refused(app, ERR_NOTVMSNAP);
    free(text);
    free(other);
    free(app);
}

static void test_refuses_newer_schema(void **state)
{
    (void)state;
    char *path = tu_tmppath("new.db", NULL);
    struct store *st = NULL;
    struct err e = {0};
    assert_int_equal(store_open(&st, path, STORE_WRITE, &e), 0);
    store_close(st);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = DELETE; PRAGMA user_version = 99",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    expect_refused(path, ERR_NEWER);
    assert_int_equal(store_open(&st, path, STORE_READ, &e), ERR_NEWER);
    assert_non_null(strstr(e.msg, "newer vmsnap"));
    free(path);
}

static void test_new_file_is_private(void **state)
{
    (void)state;
    char *path = tu_tmppath("private.db", NULL);
    struct store *st = NULL;
    struct err e = {0};
    mode_t old = umask(0);
    assert_int_equal(store_open(&st, path, STORE_WRITE, &e), 0);
    umask(old);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(count(st, "PRAGMA application_id"), STORE_APPLICATION_ID);
    assert_int_equal(count(st, "PRAGMA user_version"), store_schema_version());
    store_close(st);
    /* Reading an empty file does not turn it into a database. */
    char *empty = tu_tmppath("empty.db", NULL);
    fclose(fopen(empty, "w"));
    assert_int_equal(store_open(&st, empty, STORE_READ, &e), ERR_NOTVMSNAP);
    struct stat eb;
    assert_int_equal(stat(empty, &eb), 0);
    assert_int_equal(eb.st_size, 0);
    free(empty);
    /* Reading a missing file never creates it. */
    char *missing = tu_tmppath("missing.db", NULL);
    assert_int_equal(store_open(&st, missing, STORE_READ, &e), ERR_NOTFOUND);
    assert_int_equal(access(missing, F_OK), -1);
    free(path);
    free(missing);
}

/* category_totals agrees, for every snapshot, with summing the regions view. */
static void assert_category_totals_match(struct store *st)
{
    static const char *per =
        "SELECT snapshot_id, category, count(*), sum(size), sum(CASE WHEN substr(perms, 1, 3) = "
        "'---' OR state = 'reserve' THEN 0 ELSE size END), sum(rss) FROM regions GROUP BY 1, 2";
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (%s EXCEPT SELECT * FROM category_totals UNION ALL SELECT * "
             "FROM (SELECT * FROM category_totals EXCEPT %s))",
             per, per);
    if (count(st, sql) != 0)
        fail_msg("category_totals differs from the regions view in %lld rows",
                 (long long)count(st, sql));
    assert_true(count(st, "SELECT count(*) FROM category_totals") > 0);
}

static void test_migrates_from_version_1(void **state)
{
    (void)state;
    char *path = tu_tmppath("old.db", NULL);
    struct store *st = NULL;
    struct err e = {0};
    assert_int_equal(store_open_version(&st, path, STORE_WRITE, 1, &e), 0);
    assert_int_equal(count(st, "PRAGMA user_version"), 1);
    assert_int_equal(count(st, "SELECT count(*) FROM sqlite_schema WHERE name = 'regions'"), 0);
    /* Three snapshots written into the first schema, as an older vmsnap would have. */
    assert_int_equal(store_exec(st, tu_schema1_rows, &e), 0);
    store_close(st);

    assert_int_equal(store_open(&st, path, STORE_WRITE, &e), 0);
    assert_int_equal(count(st, "PRAGMA user_version"), store_schema_version());
    assert_int_equal(count(st, "SELECT count(*) FROM regions WHERE snapshot_id = 2"), 2);
    assert_int_equal(count(st, "SELECT size FROM regions WHERE snapshot_id = 3 AND perms = "
                               "'---p'"),
                     4096);
    /* The totals were folded into intervals: anon 1..2, anon 3.., guard 3.. */
    assert_int_equal(count(st, "SELECT count(*) FROM category_spans"), 3);
    assert_int_equal(count(st, "SELECT mapped FROM category_totals WHERE snapshot_id = 2 AND "
                               "category = 'anon'"),
                     12288);
    assert_int_equal(count(st, "SELECT committed FROM category_totals WHERE snapshot_id = 3 AND "
                               "category = 'guard'"),
                     0);
    assert_category_totals_match(st);
    /* A writer carries on from the migrated state: an unchanged snapshot adds no totals. */
    struct capture_target t = fake_target();
    struct store_writer *w;
    struct region_list l;
    region_list_init(&l);
    struct region *r = region_list_push(&l);
    *r = (struct region){.start = 4096, .end = 12288, .perms = "rw-p", .category = CAT_ANON};
    r = region_list_push(&l);
    *r = (struct region){.start = 65536, .end = 69632, .perms = "---p", .category = CAT_GUARD};
    assert_int_equal(store_writer_open(st, &t, &w, &e), 0);
    struct capture_info info = info_for(DETAIL_MAPS);
    int64_t id;
    assert_int_equal(store_writer_write(w, &l, &info, NULL, 0, &id, &e), 0);
    assert_int_equal(count(st, "SELECT count(*) FROM category_spans"), 3);
    assert_int_equal(count(st, "SELECT count(*) FROM category_totals WHERE snapshot_id = 4"), 2);
    assert_category_totals_match(st);
    store_writer_close(w);
    region_list_release(&l);
    store_close(st);
    free(path);
}

/* The slow-migration notice, in a child: where its migration is, then held there. */
static int held_fd = -1;
static void hold_migration(const char *path, int from, int to)
{
    (void)path;
    int v[2] = {from, to};
    if (write(held_fd, v, sizeof(v)) != (ssize_t)sizeof(v))
        _exit(4);
    for (;;)
        pause();
}

/*
 * A process killed while it migrates a long recording loses nothing: the file stays at its
 * schema with every row, and the next open migrates it whole. The child is killed while its
 * slow-migration notice holds it inside the migration (said at once here, after a second in
 * the CLI).
 */
static void test_migration_killed_loses_nothing(void **state)
{
    (void)state;
    char *path = tu_tmppath("killed.db", NULL);
    struct store *st = NULL;
    struct err e = {0};
    assert_int_equal(store_open_version(&st, path, STORE_WRITE, 1, &e), 0);
    assert_int_equal(store_exec(st, tu_schema1_rows, &e), 0);
    store_close(st);
    /* Schema 6, with 50,000 more intervals (of a second target) for its indexes to build. */
    assert_int_equal(store_open_version(&st, path, STORE_WRITE, 6, &e), 0);
    assert_int_equal(
        store_exec(
            st,
            "INSERT INTO targets VALUES (2, 4343, 778, '/y', 'y', 'h', 'linux', 'boot-1', "
            "'1:2:3:5', '2025-11-22T00:00:00.000Z', NULL);"
            "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 50000) "
            "INSERT INTO spans (id, target_id, first_snap, last_snap, start, \"end\", perms, "
            "offset, dev, inode, category) SELECT 8589934592 + x, 2, x, x + x % 97, x * "
            "8192, x * 8192 + 4096, 'rw-p', 0, '00:00', 0, 'anon' FROM i",
            &e),
        0);
    int64_t spans = count(st, "SELECT count(*) FROM spans");
    store_close(st);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        held_fd = fds[1];
        store_on_slow_migration(hold_migration, 0);
        _exit(store_open(&st, path, STORE_WRITE, &e) == 0 ? 3 : 5);
    }
    close(fds[1]);
    int said[2] = {0, 0};
    ssize_t got = read(fds[0], said, sizeof(said));
    close(fds[0]);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (got != (ssize_t)sizeof(said))
        fail_msg("the migrating child said nothing (exit status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    assert_int_equal(said[0], 6);
    assert_int_equal(said[1], store_schema_version());
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* As it was: schema 6, every row. */
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT (SELECT user_version FROM pragma_user_version), "
                                        "(SELECT count(*) FROM spans)",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(q, 0), 6);
    assert_int_equal(sqlite3_column_int64(q, 1), spans);
    sqlite3_finalize(q);
    sqlite3_close(h);

    /* The next open migrates it whole. */
    assert_int_equal(store_open(&st, path, STORE_WRITE, &e), 0);
    assert_int_equal(count(st, "PRAGMA user_version"), store_schema_version());
    assert_int_equal(count(st, "SELECT count(*) FROM spans"), spans);
    assert_int_equal(count(st, "SELECT count(*) FROM regions WHERE snapshot_id = 2"), 2);
    assert_category_totals_match(st);
    store_close(st);
    free(path);
}

static void test_selectors(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list l;
    struct err e = {0};
    int64_t id;
    open_fixture(&f);
    load("edge.maps", &l);
    int64_t s1 = write_snap(&f, &l, DETAIL_MAPS, "before");
    int64_t s2 = write_snap(&f, &l, DETAIL_MAPS, NULL);
    int64_t s3 = write_snap(&f, &l, DETAIL_MAPS, "after");
    assert_int_equal(store_resolve(f.st, "first", 0, &id, &e), 0);
    assert_int_equal(id, s1);
    assert_int_equal(store_resolve(f.st, "last", 0, &id, &e), 0);
    assert_int_equal(id, s3);
    assert_int_equal(store_resolve(f.st, "last~1", 0, &id, &e), 0);
    assert_int_equal(id, s2);
    assert_int_equal(store_resolve(f.st, "last~0", 0, &id, &e), 0);
    assert_int_equal(id, s3);
    assert_int_equal(store_resolve(f.st, "before", 0, &id, &e), 0);
    assert_int_equal(id, s1);
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)s2);
    assert_int_equal(store_resolve(f.st, buf, 0, &id, &e), 0);
    assert_int_equal(id, s2);
    assert_int_equal(store_resolve(f.st, "last~3", 0, &id, &e), ERR_NOTFOUND);
    assert_non_null(strstr(e.msg, "has 3 snapshots"));
    assert_int_equal(store_resolve(f.st, "last~x", 0, &id, &e), ERR_USAGE);
    assert_int_equal(store_resolve(f.st, "last~", 0, &id, &e), ERR_USAGE);
    assert_int_equal(store_resolve(f.st, "999", 0, &id, &e), ERR_NOTFOUND);
    assert_int_equal(store_resolve(f.st, "nosuchlabel", 0, &id, &e), ERR_NOTFOUND);
    assert_int_equal(store_resolve(f.st, "", 0, &id, &e), ERR_USAGE);
    assert_int_equal(store_resolve(f.st, "99999999999999999999999", 0, &id, &e), ERR_NOTFOUND);
    region_list_release(&l);
    close_fixture(&f);
}

static void test_query_is_read_only(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list l;
    struct err e = {0};
    open_fixture(&f);
    load("edge.maps", &l);
    write_snap(&f, &l, DETAIL_MAPS, NULL);
    struct store_query_cb cb = {0};
    assert_int_equal(store_query(f.st, "DELETE FROM snapshots", &cb, &e), ERR_USAGE);
    assert_int_equal(store_query(f.st, "SELECT 1; DROP TABLE spans", &cb, &e), ERR_USAGE);
    assert_int_equal(store_query(f.st, "SELEC 1", &cb, &e), ERR_USAGE);
    assert_non_null(strstr(e.msg, "syntax error"));
    assert_int_equal(store_query(f.st, "SELECT count(*) FROM regions; -- fine", &cb, &e), 0);
    assert_int_equal(count(f.st, "SELECT count(*) FROM snapshots"), 1);
    region_list_release(&l);
    close_fixture(&f);
}

/* A small deterministic generator, so a failure can be replayed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(uint64_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % n;
}

/* One step of a random but plausible history: free, map, re-protect, grow or shrink. */
static void mutate(struct region_list *l)
{
    static const char *perms[] = {"rw-p", "r--p", "---p", "r-xp"};
    size_t i = l->n ? rnd(l->n) : 0;
    switch (rnd(5)) {
    case 0: /* free one */
        if (l->n > 1) {
            memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
            l->n--;
        }
        break;
    case 1: /* change the protection of one, as mprotect of the whole region */
        memcpy(l->v[i].perms, perms[rnd(4)], 5);
        break;
    case 2: /* grow into the gap after it */
        if (i + 1 < l->n && l->v[i + 1].start > l->v[i].end)
            l->v[i].end += 0x1000 * (1 + rnd((l->v[i + 1].start - l->v[i].end) / 0x1000));
        break;
    case 3: /* shrink from the end */
        if (l->v[i].end - l->v[i].start > 0x1000)
            l->v[i].end -= 0x1000;
        break;
    default: { /* map something new in a gap */
        uint64_t start = 0x100000000ULL + rnd(4096) * 0x10000;
        struct region r = {0};
        r.start = start;
        r.end = start + 0x1000 * (1 + rnd(8));
        memcpy(r.perms, perms[rnd(4)], 5);
        size_t at = 0;
        while (at < l->n && l->v[at].end <= r.start)
            at++;
        if (at < l->n && l->v[at].start < r.end)
            break; /* overlaps: skip */
        region_list_push(l);
        memmove(&l->v[at + 1], &l->v[at], (l->n - 1 - at) * sizeof(l->v[0]));
        l->v[at] = r;
    }
    }
}

static void same_changes(const struct diff_result *x, const struct diff_result *y, int i, int j)
{
    if (x->n != y->n)
        fail_msg("snapshots %d..%d: %zu changes from full lists, %zu from intervals", i, j, x->n,
                 y->n);
    for (size_t k = 0; k < x->n; k++)
        if (x->v[k].kind != y->v[k].kind || x->v[k].start != y->v[k].start ||
            x->v[k].end != y->v[k].end || x->v[k].delta != y->v[k].delta)
            fail_msg("snapshots %d..%d: change %zu differs", i, j, k);
}

static void test_interval_diff_equals_full_diff(void **state)
{
    (void)state;
    /* The regions that opened or closed between A and B are all a diff needs: check it
     * against diffing the two whole snapshots, for every pair of a random history. */
    enum { STEPS = 14 };
    struct fixture f;
    struct region_list cur, hist[STEPS];
    int64_t ids[STEPS];
    open_fixture(&f);
    region_list_init(&cur);
    for (int k = 0; k < 40; k++)
        mutate(&cur);
    for (int s = 0; s < STEPS; s++) {
        for (int k = 0; k < 3; k++)
            mutate(&cur);
        region_list_init(&hist[s]);
        region_list_copy(&hist[s], &cur);
        ids[s] = write_snap(&f, &cur, s % 3 == 2 ? DETAIL_SMAPS : DETAIL_MAPS, NULL);
    }
    assert_category_totals_match(f.st);
    struct err e = {0};
    for (int i = 0; i < STEPS; i++)
        for (int j = i + 1; j < STEPS; j++) {
            struct region_list fa, fb, ga, gb;
            struct diff_result full, delta;
            read_snap(&f, ids[i], &fa);
            read_snap(&f, ids[j], &fb);
            assert_same_regions(&hist[i], &fa, 0);
            region_list_init(&ga);
            region_list_init(&gb);
            assert_int_equal(
                store_read_delta(f.st, store_writer_target(f.w), ids[i], ids[j], &ga, &gb, &e), 0);
            diff_result_init(&full);
            diff_result_init(&delta);
            diff_regions(&fa, &fb, &full);
            diff_regions(&ga, &gb, &delta);
            same_changes(&full, &delta, i, j);
            diff_result_release(&full);
            diff_result_release(&delta);
            region_list_release(&fa);
            region_list_release(&fb);
            region_list_release(&ga);
            region_list_release(&gb);
        }
    for (int s = 0; s < STEPS; s++)
        region_list_release(&hist[s]);
    region_list_release(&cur);
    close_fixture(&f);
}

/* Gives every region figures, and changes the rss of about one in five. */
static void touch_mem(struct region_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct region *r = &l->v[i];
        if (!(r->flags & REGION_HAS_MEM) || rnd(5) == 0) {
            r->flags |= REGION_HAS_MEM;
            struct region_extra *x = region_extra_set(l, r);
            x->rss = 0x1000 * rnd(1 + (r->end - r->start) / 0x1000);
            x->pss = x->rss;
        }
    }
}

static void test_lent_lists_are_written_like_copies(void **state)
{
    (void)state;
    /* A recorder lends the writer its capture's lists (two, filled in turn) instead of letting
     * it copy each one. The same random history, written lent and copied, must store the same
     * snapshots: also when a lent list is written again unchanged, and when the list the
     * writer holds is refilled behind its back (it must notice and load what is stored). */
    enum { STEPS = 30 };
    struct fixture lent, copied;
    struct region_list cur, buf[2];
    open_fixture(&lent);
    open_fixture(&copied);
    region_list_init(&cur);
    region_list_init(&buf[0]);
    region_list_init(&buf[1]);
    for (int k = 0; k < 40; k++)
        mutate(&cur);
    int slot = 0;
    for (int s = 0; s < STEPS; s++) {
        int detail = s % 4 == 3 ? DETAIL_SMAPS : DETAIL_MAPS;
        if (s % 5 != 4) {
            for (int k = 0; k < 3; k++)
                mutate(&cur);
            if (detail == DETAIL_SMAPS)
                touch_mem(&cur);
            /* Every seventh step refills the list the writer holds instead of the other. */
            if (s % 7 != 6)
                slot = 1 - slot;
            region_list_copy(&buf[slot], &cur);
        }
        int64_t a = write_lent(&lent, &buf[slot], detail, NULL, 1);
        int64_t b = write_snap(&copied, &buf[slot], detail, NULL);
        struct region_list ra, rb;
        read_snap(&lent, a, &ra);
        read_snap(&copied, b, &rb);
        assert_same_regions(&cur, &ra, detail == DETAIL_SMAPS);
        assert_same_regions(&rb, &ra, 1);
        region_list_release(&ra);
        region_list_release(&rb);
    }
    assert_int_equal(count(lent.st, "SELECT count(*) FROM spans") +
                         count(lent.st, "SELECT count(*) FROM spans_open"),
                     count(copied.st, "SELECT count(*) FROM spans") +
                         count(copied.st, "SELECT count(*) FROM spans_open"));
    assert_category_totals_match(lent.st);
    region_list_release(&cur);
    region_list_release(&buf[0]);
    region_list_release(&buf[1]);
    close_fixture(&lent);
    close_fixture(&copied);
}

static void test_figures_delta_diff_equals_full_diff(void **state)
{
    (void)state;
    /* With per-region figures on both snapshots, the regions that opened, closed or changed
     * their figures in between are all a diff needs, resident changes and rss deltas
     * included: check it against the two whole snapshots, for every pair of snapshots with
     * figures in a random history (every third without, so intervals of figures span them). */
    enum { STEPS = 15 };
    struct fixture f;
    struct region_list cur;
    int64_t ids[STEPS];
    int smaps[STEPS];
    open_fixture(&f);
    region_list_init(&cur);
    for (int k = 0; k < 60; k++) {
        struct region *r = region_list_push(&cur);
        r->start = 0x200000000ULL + (uint64_t)k * 0x100000;
        r->end = r->start + 0x4000;
        memcpy(r->perms, k % 3 ? "rw-p" : "r--p", 5);
    }
    for (int s = 0; s < STEPS; s++) {
        for (int k = 0; k < 2; k++)
            mutate(&cur);
        smaps[s] = s % 3 != 1;
        for (size_t i = 0; i < cur.n; i++)
            if (!smaps[s])
                cur.v[i].flags &= ~(uint32_t)REGION_HAS_MEM;
        if (smaps[s])
            touch_mem(&cur);
        ids[s] = write_snap(&f, &cur, smaps[s] ? DETAIL_SMAPS : DETAIL_MAPS, NULL);
    }
    struct err e = {0};
    int pairs = 0;
    for (int i = 0; i < STEPS; i++)
        for (int j = i + 1; j < STEPS; j++) {
            if (!smaps[i] || !smaps[j])
                continue;
            struct region_list fa, fb, ga, gb;
            struct diff_result full, delta;
            struct diff_summary sf, sd;
            read_snap(&f, ids[i], &fa);
            read_snap(&f, ids[j], &fb);
            region_list_init(&ga);
            region_list_init(&gb);
            assert_int_equal(
                store_read_delta_mem(f.st, store_writer_target(f.w), ids[i], ids[j], &ga, &gb, &e),
                0);
            /* Between neighbours, few regions change: it read less than the two snapshots. */
            if (j == i + 1 && !(ga.n + gb.n < (fa.n + fb.n) / 2))
                fail_msg(
                    "snapshots %d..%d: read %zu + %zu regions, the whole snapshots hold %zu + %zu",
                    i, j, ga.n, gb.n, fa.n, fb.n);
            diff_result_init(&full);
            diff_result_init(&delta);
            diff_regions(&fa, &fb, &full);
            diff_regions(&ga, &gb, &delta);
            same_changes(&full, &delta, i, j);
            diff_summarize(&fa, &fb, -1, &sf);
            diff_summarize(&ga, &gb, -1, &sd);
            assert_int_equal(sf.total.mapped, sd.total.mapped);
            assert_int_equal(sf.total.committed, sd.total.committed);
            assert_int_equal(sf.total.rss, sd.total.rss);
            assert_int_equal(sf.have_rss, sd.have_rss);
            for (int c = 0; c < CAT_COUNT; c++)
                assert_int_equal(sf.cat[c].rss, sd.cat[c].rss);
            diff_result_release(&full);
            diff_result_release(&delta);
            region_list_release(&fa);
            region_list_release(&fb);
            region_list_release(&ga);
            region_list_release(&gb);
            pairs++;
        }
    assert_true(pairs >= 40);
    region_list_release(&cur);
    close_fixture(&f);
}

/* Appends s to the text, escaped as schema/reference.txt writes it. */
static void put_escaped(char **text, size_t *len, size_t *cap, const char *s)
{
    for (; *s; s++) {
        char esc[3] = {*s, 0, 0};
        if (*s == '\n' || *s == '\t' || *s == '\\') {
            esc[0] = '\\';
            esc[1] = *s == '\n' ? 'n' : *s == '\t' ? 't' : '\\';
        }
        size_t n = strlen(esc);
        *text = xgrow(*text, cap, *len + n + 1, 1);
        memcpy(*text + *len, esc, n + 1);
        *len += n;
    }
}

/*
 * schema/reference.txt says what the migrations make, version by version: every file vmsnap
 * opens is checked against it. Built here from the migrations themselves; when they differ the
 * test fails and writes the text it expects to schema-reference.txt, to be copied over.
 */
static void test_reference_schema(void **state)
{
    (void)state;
    static const char head[] =
        "# What vmsnap's migrations make, version by version: VERSION, TAB, \"type name\", TAB, "
        "its SQL\n# (newlines, tabs and backslashes escaped). Generated by tests/test_store "
        "(test_reference_schema); do not edit.\n";
    size_t len = strlen(head), cap = len + 1;
    char *text = xstrdup(head);
    for (int v = 1; v <= store_schema_version(); v++) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
        for (int i = 0; i < store_migrations_count; i++)
            if (store_migrations[i].version <= v)
                assert_int_equal(sqlite3_exec(db, store_migrations[i].sql, NULL, NULL, NULL),
                                 SQLITE_OK);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT type || ' ' || name, coalesce(sql, '') FROM "
                                            "sqlite_schema ORDER BY 1",
                                            -1, &st, NULL),
                         SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            char num[16];
            int n = snprintf(num, sizeof(num), "%d\t", v);
            text = xgrow(text, &cap, len + (size_t)n + 1, 1);
            memcpy(text + len, num, (size_t)n + 1);
            len += (size_t)n;
            put_escaped(&text, &len, &cap, (const char *)sqlite3_column_text(st, 0));
            text = xgrow(text, &cap, len + 2, 1);
            text[len++] = '\t';
            put_escaped(&text, &len, &cap, (const char *)sqlite3_column_text(st, 1));
            text = xgrow(text, &cap, len + 2, 1);
            text[len++] = '\n';
            text[len] = '\0';
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    if (len != store_schema_reference_len || memcmp(text, store_schema_reference, len) != 0) {
        tu_write_file("schema-reference.txt", text, len);
        fail_msg("schema/reference.txt is not what the migrations make: copy the expected text "
                 "from schema-reference.txt (in the current directory) over it");
    }
    free(text);
}

/* The plan of sql, one line per step ("SEARCH s USING ..."), joined by '|' (caller frees). */
static char *query_plan(sqlite3 *db, const char *sql)
{
    char *q = xasprintf("EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, q, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", q, sqlite3_errmsg(db));
    size_t cap = 4096, len = 0;
    char *plan = xmalloc(cap);
    plan[0] = '\0';
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *step = (const char *)sqlite3_column_text(s, 3);
        size_t n = strlen(step);
        if (len + n + 2 > cap)
            plan = xreallocarray(plan, cap = 2 * (len + n + 2), 1);
        len += (size_t)sprintf(plan + len, "|%s", step);
    }
    sqlite3_finalize(s);
    free(q);
    return plan;
}

/*
 * One snapshot's rows, however the snapshot is named (an id, a scalar subquery, a join with
 * snapshots by label or seq, IN), are reached through the snapshot's rowid: a view whose plan
 * scans the snapshots, or the spans, for them would take minutes on an hour's recording
 * (SQLite 3.40 does not push a subquery into the arms of a UNION ALL view).
 */
static void test_views_reach_one_snapshot_by_index(void **state)
{
    (void)state;
    struct fixture f;
    struct region_list l;
    open_fixture(&f);
    load("edge.maps", &l);
    write_snap(&f, &l, DETAIL_MAPS, "a");
    write_snap(&f, &l, DETAIL_SMAPS, NULL);
    static const char *const named[] = {
        "WHERE snapshot_id = 2",
        "WHERE snapshot_id = (SELECT max(id) FROM snapshots)",
        "WHERE snapshot_id = (SELECT min(id) FROM snapshots WHERE target_id = 1)",
        "WHERE snapshot_id IN (SELECT max(id) FROM snapshots)",
        "JOIN snapshots x ON x.id = snapshot_id WHERE x.label = 'a'",
        "JOIN snapshots x ON x.id = snapshot_id WHERE x.target_id = 1 AND x.seq = 2",
    };
    static const char *const views[] = {"regions", "category_totals"};
    for (size_t v = 0; v < 2; v++)
        for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
            char *sql = xasprintf("SELECT count(*) FROM %s %s", views[v], named[i]);
            char *plan = query_plan(f.st->db, sql);
            int by_rowid = strstr(plan, "|SEARCH s USING INTEGER PRIMARY KEY (rowid=?)") != NULL;
            /* The snapshot, then each length class's short range of the intervals (the class
             * and the end both bound); nothing scanned but the few classes, and for the
             * totals only the classes the target has. */
            int by_class =
                strstr(plan, v == 0 ? "INDEX spans_by_length (target_id=? AND "
                                      "<expr>=? AND last_snap>? AND last_snap<?)"
                                    : "INDEX category_spans_by_length (target_id=? "
                                      "AND <expr>=? AND last_snap>? AND last_snap<?)") != NULL;
            int scans = strstr(plan, "|SCAN s") || strstr(plan, "|SCAN o") ||
                        strstr(plan, "|SCAN c") || strstr(plan, "|SCAN n") ||
                        strstr(plan, "|SCAN m") || strstr(plan, "|SCAN spans") ||
                        strstr(plan, "|SCAN category_spans") ||
                        (v == 1 && !strstr(plan, "|SEARCH k USING PRIMARY KEY (target_id=?)"));
            if (!by_rowid || !by_class || scans)
                fail_msg("%s scans instead of looking the snapshot up: %s", sql, plan);
            free(plan);
            free(sql);
        }
    region_list_release(&l);
    close_fixture(&f);
}

/* Tick t of a recording, in address order: 16 regions alive throughout (the first's rss changes
 * every tick), and two short-lived ones, born at t - 1 and t, each alive for two ticks. */
static void churn_tick(int t, struct region_list *l)
{
    size_t cap = 64 * 1024, len = 0;
    char *text = xmalloc(cap);
    for (int i = 0; i < 18; i++) {
        uint64_t start = i < 16 ? 0x10000000ull + (uint64_t)i * 0x10000
                                : 0x40000000ull + (uint64_t)(t - 17 + i) * 0x10000;
        if (i >= 16 && t - 17 + i < 1)
            continue;
        unsigned rss = i == 0 ? 4u * (1 + (unsigned)(t % 2)) : 4u;
        len += (size_t)snprintf(text + len, cap - len,
                                "%llx-%llx rw-p 00000000 00:00 0 \nSize: 8 kB\nRss: %u kB\n"
                                "Pss: %u kB\nPrivate_Dirty: %u kB\nAnonymous: %u kB\n"
                                "Swap: 0 kB\n",
                                (unsigned long long)start, (unsigned long long)(start + 0x2000),
                                rss, rss, rss, rss);
    }
    struct err e = {0};
    region_list_init(l);
    if (smaps_parse(text, len, l, &e) != 0)
        fail_msg("churn text: %s", e.msg);
    region_list_classify(l);
    free(text);
}

/* The SQLite VM steps one run of sql takes, and the integer in its first column. */
static long long steps_of(sqlite3 *db, const char *sql, long long *value)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    *value = sqlite3_column_int64(s, 0);
    while (sqlite3_step(s) == SQLITE_ROW)
        ;
    long long steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
    sqlite3_finalize(s);
    return steps;
}

/*
 * The work of reading one snapshot does not grow with the recording: the first snapshot of a
 * recording four times as long costs what it did (an index by the end of an interval alone
 * finds it among every interval that ended after it), and so does the newest snapshot's figures
 * of a region whose figures changed at every tick (its span_mem rows). Counted in SQLite's VM
 * steps, which do not depend on how busy the machine is.
 */
static void test_one_snapshot_costs_the_same_however_long_the_recording(void **state)
{
    (void)state;
    struct fixture f;
    open_fixture(&f);
    static const char *const sql[] = {
        "SELECT count(*) FROM regions WHERE snapshot_id = (SELECT min(id) FROM snapshots)",
        "SELECT sum(rss) FROM regions WHERE snapshot_id = (SELECT max(id) FROM snapshots)",
        "SELECT sum(mapped) FROM category_totals WHERE snapshot_id = (SELECT min(id) FROM "
        "snapshots)",
        "SELECT sum(mapped) FROM category_totals WHERE snapshot_id = (SELECT max(id) FROM "
        "snapshots)",
    };
    /* What each query answers: 17 regions at first, the newest region's rss (tick 800 even:
     * 4 kB), 17 and 18 regions of 8 kB. */
    static const long long want[] = {17, (4 + 17 * 4) * 1024LL, 17 * 8192LL, 18 * 8192LL};
    long long short_steps[4], value;
    int t = 1;
    for (int len = 200; len <= 800; len *= 4) {
        for (; t <= len; t++) {
            struct region_list l;
            churn_tick(t, &l);
            write_snap(&f, &l, DETAIL_SMAPS, NULL);
            region_list_release(&l);
        }
        for (int q = 0; q < 4; q++) {
            long long steps = steps_of(f.st->db, sql[q], &value);
            if (len == 200) {
                short_steps[q] = steps;
                continue;
            }
            assert_int_equal(value, want[q]);
            /* A little more: one more length class to look in. */
            if (steps > short_steps[q] + short_steps[q] / 4 + 100)
                fail_msg("%s: %lld VM steps at 800 snapshots, %lld at 200", sql[q], steps,
                         short_steps[q]);
        }
    }
    /* The walk over snapshots 300 to 600 (ids as seqs here) begins the 16 regions alive
     * throughout and each short-lived one alive at one of them (born at 299 to 600, each alive
     * for two ticks) once, and ends those last seen at 300 to 599 once; it holds little more
     * than the 18 alive at a time. */
    struct store_walk *w;
    struct store_step step;
    struct err e = {0};
    if (store_walk_open(f.st, store_writer_target(f.w), 300, 600, &w, &e) != 0)
        fail_msg("walk: %s", e.msg);
    size_t nsnaps, began = 0, ended = 0, steps = 0;
    store_walk_snaps(w, &nsnaps);
    assert_int_equal(nsnaps, 301);
    int rc;
    while ((rc = store_walk_next(w, &step, &e)) == 1) {
        assert_true(step.k >= steps);
        steps = step.k + 1;
        began += step.nbegan;
        ended += step.nended;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(began, 16 + 302);
    assert_int_equal(ended, 300);
    assert_true(store_walk_slots(w) <= 19);
    store_walk_close(w);
    close_fixture(&f);
}

/* Statements bound by name, and transactions that nest. */
static void test_statements_and_transactions(void **state)
{
    (void)state;
    struct fixture f;
    struct err e = {0};
    open_fixture(&f);
    struct store_stmt q;
    static const char *ins = "INSERT INTO paths (path) VALUES (:path)";
    assert_int_equal(store_stmt_prepare(f.st, ins, "cannot add", &q, &e), 0);
    store_bind_text(&q, ":path", "/one", -1);
    assert_int_equal(store_stmt_run(&q, &e), 0);
    /* A name the SQL does not have: the step fails, naming it and the SQL, and writes nothing. */
    store_bind_text(&q, ":paht", "/two", -1);
    assert_true(store_stmt_run(&q, &e) < 0);
    assert_non_null(strstr(e.msg, "':paht'"));
    assert_non_null(strstr(e.msg, ins));
    store_stmt_finalize(&q);
    static const char *count = "SELECT count(*) AS n FROM paths WHERE path LIKE :like";
    assert_int_equal(store_stmt_prepare(f.st, count, "cannot count", &q, &e), 0);
    int n = store_stmt_column(&q, "n");
    assert_int_equal(n, 0);
    store_bind_text(&q, ":like", "/%", -1);
    assert_int_equal(store_stmt_step(&q, &e), 1);
    assert_int_equal(sqlite3_column_int64(q.s, n), 1);
    store_stmt_reset(&q);
    assert_int_equal(store_stmt_column(&q, "m"), -1);
    assert_true(store_stmt_step(&q, &e) < 0);
    assert_non_null(strstr(e.msg, "'m'"));
    store_stmt_finalize(&q);
    /* A transaction inside another is a savepoint: it rolls back alone, or commits into it. */
    assert_int_equal(store_begin(f.st, &e), 0);
    assert_int_equal(store_exec(f.st, "INSERT INTO paths (path) VALUES ('/outer')", &e), 0);
    assert_int_equal(store_begin(f.st, &e), 0);
    assert_int_equal(store_exec(f.st, "INSERT INTO paths (path) VALUES ('/inner')", &e), 0);
    store_rollback(f.st);
    assert_int_equal(store_begin(f.st, &e), 0);
    assert_int_equal(store_exec(f.st, "INSERT INTO paths (path) VALUES ('/kept')", &e), 0);
    assert_int_equal(store_commit(f.st, &e), 0);
    assert_false(sqlite3_get_autocommit(f.st->db));
    assert_int_equal(store_commit(f.st, &e), 0);
    assert_true(sqlite3_get_autocommit(f.st->db));
    int64_t v = 0;
    sqlite3_stmt *s;
    assert_int_equal(
        sqlite3_prepare_v2(f.st->db, "SELECT group_concat(path, ' ') FROM paths", -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "/one /outer /kept");
    sqlite3_finalize(s);
    /* The outermost rolled back: none of it. */
    assert_int_equal(store_begin(f.st, &e), 0);
    assert_int_equal(store_exec(f.st, "INSERT INTO paths (path) VALUES ('/gone')", &e), 0);
    store_rollback(f.st);
    assert_int_equal(
        store_query_i64(f.st, "SELECT count(*) FROM paths WHERE path = '/gone'", 0, 0, &v, &e), 0);
    assert_int_equal(v, 0);
    close_fixture(&f);
}

/* The selector parser, and the label rule that follows from it: every text is either a label
 * (store_label_check takes it) or reads as another selector (and is refused as a label). */
static void test_selector_parse_and_the_label_rule(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc, kind;
        int64_t n;
    } cases[] = {
        {"7", 0, STORE_SEL_ID, 7},
        {"007", 0, STORE_SEL_ID, 7},
        {"99999999999999999999", 0, STORE_SEL_ID, -1},
        {"first", 0, STORE_SEL_FIRST, 0},
        {"last", 0, STORE_SEL_LAST, 0},
        {"last~0", 0, STORE_SEL_LAST, 0},
        {"last~12", 0, STORE_SEL_LAST, 12},
        {"last~", ERR_USAGE, 0, 0},
        {"last~x", ERR_USAGE, 0, 0},
        {"last~-1", ERR_USAGE, 0, 0},
        {"last~99999999999999999999", ERR_USAGE, 0, 0},
        {"", ERR_USAGE, 0, 0},
        {"lastly", 0, STORE_SEL_LABEL, 0},
        {"first-run", 0, STORE_SEL_LABEL, 0},
        {"7a", 0, STORE_SEL_LABEL, 0},
        {"-1", 0, STORE_SEL_LABEL, 0},
        {"run:3", 0, STORE_SEL_LABEL, 0}, /* FILE:SNAP is split before parsing */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct store_selector sel;
        struct err e = {0};
        int rc = store_selector_parse(cases[i].text, &sel, &e);
        if (rc != cases[i].rc)
            fail_msg("'%s': %d (%s)", cases[i].text, rc, e.msg);
        if (rc == 0 && (sel.kind != cases[i].kind || sel.n != cases[i].n))
            fail_msg("'%s': kind %d n %lld", cases[i].text, sel.kind, (long long)sel.n);
        /* A label is exactly what parses as one and names no other file. */
        int label_ok = store_label_check(cases[i].text, &e) == 0;
        int is_label = rc == 0 && sel.kind == STORE_SEL_LABEL && !strchr(cases[i].text, ':');
        if (label_ok != is_label)
            fail_msg("'%s': label rule %d, parser %d", cases[i].text, label_ok, is_label);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_schema),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_unchanged_snapshot_adds_no_region_rows),
        cmocka_unit_test(test_change_closes_and_opens_exactly),
        cmocka_unit_test(test_memory_figures_are_intervals),
        cmocka_unit_test(test_new_writer_continues_from_database),
        cmocka_unit_test(test_failed_write_leaves_nothing),
        cmocka_unit_test(test_failed_first_write_leaves_no_target),
        cmocka_unit_test(test_refuses_foreign_files),
        cmocka_unit_test(test_refuses_newer_schema),
        cmocka_unit_test(test_new_file_is_private),
        cmocka_unit_test(test_migrates_from_version_1),
        cmocka_unit_test(test_migration_killed_loses_nothing),
        cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_statements_and_transactions),
        cmocka_unit_test(test_views_reach_one_snapshot_by_index),
        cmocka_unit_test(test_one_snapshot_costs_the_same_however_long_the_recording),
        cmocka_unit_test(test_selector_parse_and_the_label_rule),
        cmocka_unit_test(test_query_is_read_only),
        cmocka_unit_test(test_interval_diff_equals_full_diff),
        cmocka_unit_test(test_figures_delta_diff_equals_full_diff),
        cmocka_unit_test(test_lent_lists_are_written_like_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
