/*
 * The peer of `vmsnap growth` in bench/stream.sh: SQLite alone reading the rows growth reads
 * for one target's whole recording, in the order it reads them -- its snapshots, the regions
 * alive at the first (by length class), the regions born after it (two rowid scans), and the
 * category totals -- touching every column of every row and keeping nothing.
 * usage: rows_read DB TARGET_ID
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLS                                                                                       \
    "p.start, p.\"end\", p.perms, p.offset, p.dev, p.inode, n.path, p.category, p.deleted, "       \
    "p.state, p.type, p.protect, p.alloc_base, p.alloc_protect, p.owner"
#define CLASS                                                                                      \
    "2 * length(printf('%x', p.last_snap - p.first_snap)) - (substr(printf('%x', p.last_snap - "   \
    "p.first_snap), 1, 1) < '4') - (p.last_snap = p.first_snap)"

static sqlite3 *db;
static long long rows, bytes;

static void read_all(const char *sql, long long a, long long b)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "rows_read: %s: %s\n", sql, sqlite3_errmsg(db));
        exit(2);
    }
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_int64(s, 2, b);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        rows++;
        for (int i = 0, n = sqlite3_column_count(s); i < n; i++) {
            if (sqlite3_column_type(s, i) == SQLITE_TEXT)
                bytes += sqlite3_column_bytes(s, i);
            else
                bytes += sqlite3_column_int64(s, i) & 1;
        }
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "rows_read: %s\n", sqlite3_errmsg(db));
        exit(2);
    }
    sqlite3_finalize(s);
}

static long long one(const char *sql, long long a)
{
    sqlite3_stmt *s;
    long long v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        exit(2);
    sqlite3_bind_int64(s, 1, a);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: rows_read DB TARGET_ID\n");
        return 2;
    }
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return 2;
    long long t = atoll(argv[2]), lo = t << 32, hi = lo + 0xffffffffLL;
    long long from = one("SELECT min(id) FROM snapshots WHERE target_id = ?1", t);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    read_all("SELECT id, seq, taken_at, label, rss_bytes, detail, mark FROM snapshots WHERE "
             "target_id = ?1 ORDER BY id",
             t, 0);
    read_all("SELECT " COLS ", p.first_snap, p.last_snap FROM interval_classes k CROSS JOIN spans p "
             "LEFT JOIN paths n ON n.id = p.path_id WHERE p.target_id = ?1 AND p.first_snap <= ?2 "
             "AND k.n >= 0 AND " CLASS " = +k.n AND p.last_snap BETWEEN ?2 AND ?2 + k.w - 1",
             t, from);
    read_all("SELECT " COLS ", p.first_snap FROM spans_open p LEFT JOIN paths n ON n.id = "
             "p.path_id WHERE p.id BETWEEN ?1 AND ?2 ORDER BY p.id",
             lo, hi);
    read_all("SELECT " COLS ", p.first_snap, p.last_snap FROM spans p LEFT JOIN paths n ON n.id = "
             "p.path_id WHERE p.id BETWEEN ?1 AND ?2 ORDER BY p.id",
             lo, hi);
    read_all("SELECT category, first_snap, last_snap, rss FROM category_spans WHERE target_id = ?1",
             t, 0);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    printf("%lld rows (%lld)\n", rows, bytes);
    sqlite3_close(db);
    return 0;
}
