/*
 * Reads one snapshot's rows through the regions view and the same rows from a plain table
 * (made from the view, indexed by snapshot_id), alternating, and prints the median of each.
 * usage: view_read DB SNAPSHOT_ID [ROUNDS]
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double read_all(sqlite3 *db, const char *sql, long long snap, long long *rows)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
        exit(2);
    }
    sqlite3_bind_int64(s, 1, snap);
    double t0 = now();
    long long n = 0, sum = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        int cols = sqlite3_column_count(s);
        for (int i = 0; i < cols; i++)
            sum += sqlite3_column_type(s, i) == SQLITE_TEXT ? sqlite3_column_bytes(s, i)
                                                            : sqlite3_column_int64(s, i);
        n++;
    }
    double t = now() - t0;
    sqlite3_finalize(s);
    *rows = n + (sum & 0);
    return t;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: view_read DB SNAPSHOT_ID [ROUNDS]\n");
        return 2;
    }
    long long snap = atoll(argv[2]);
    int rounds = argc > 3 ? atoi(argv[3]) : 21;
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK)
        return 2;
    char sql[512];
    sqlite3_exec(db, "DROP TABLE IF EXISTS bench_plain", NULL, NULL, NULL);
    snprintf(sql, sizeof(sql),
             "CREATE TABLE bench_plain AS SELECT * FROM regions WHERE snapshot_id = %lld; "
             "CREATE INDEX bench_plain_snap ON bench_plain (snapshot_id);",
             snap);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s\n", sqlite3_errmsg(db));
        return 2;
    }
    double *tv = malloc(rounds * sizeof(double)), *tp = malloc(rounds * sizeof(double));
    long long nv = 0, np = 0;
    for (int i = 0; i < rounds; i++) {
        tv[i] = read_all(db, "SELECT * FROM regions WHERE snapshot_id = ?", snap, &nv);
        tp[i] = read_all(db, "SELECT * FROM bench_plain WHERE snapshot_id = ?", snap, &np);
    }
    qsort(tv, rounds, sizeof(double), cmp);
    qsort(tp, rounds, sizeof(double), cmp);
    sqlite3_exec(db, "DROP TABLE bench_plain", NULL, NULL, NULL);
    sqlite3_close(db);
    printf("view_rows=%lld plain_rows=%lld view_ms=%.2f plain_ms=%.2f ratio=%.2f\n", nv, np,
           tv[rounds / 2] * 1e3, tp[rounds / 2] * 1e3, tv[rounds / 2] / tp[rounds / 2]);
    return nv == np ? 0 : 1;
}
