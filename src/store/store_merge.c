/*
 * Merging another vmsnap database into this one: its targets, snapshots and regions, copied by
 * SQL from the attached file (INSERT ... SELECT streams rows; nothing is held in memory but one
 * target's identity at a time).
 *
 * A target is known by its identity (boot id, pid, start time, exec key). Its snapshots are
 * copied with new ids, in seq order, after every snapshot already here, so the ids of each
 * target's snapshots still rise with time (the regions view and the span intervals rely on it).
 * A region keeps its number within its target: span id (T << 32) + n becomes (T' << 32) + n.
 *
 * When this database already holds the target, the two histories are compared by (seq,
 * taken_at): if one is a prefix of the other, the longer wins (merging again adds nothing;
 * merging a file that went on recording adds what it recorded since); otherwise the same process
 * was recorded apart into both, and the other file's recording is kept as a target of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "util/xalloc.h"

/*
 * Runs one statement with integer parameters ?1, ?2, ...; *row gets its first column (0 when it
 * returns no row or NULL) and *changes the rows it wrote, each when not NULL.
 */
static int run(struct store *st, const char *what, const char *sql, const int64_t *p, int np,
               int64_t *row, int64_t *changes, struct err *e)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    for (int i = 0; i < np; i++)
        sqlite3_bind_int64(s, i + 1, p[i]);
    rc = sqlite3_step(s);
    if (row)
        *row = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    /* The copies map every snapshot id through merge_snap: one the other file does not hold
     * comes out NULL. */
    if (rc == SQLITE_CONSTRAINT_NOTNULL)
        return err_set(e, ERR_CORRUPT,
                       "it is damaged: its regions name snapshots it does not hold -- nothing of "
                       "it was merged");
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store_sql_err(st, rc, what, sql, e);
    if (changes)
        *changes = sqlite3_changes(st->db);
    return 0;
}

/* Runs statements that return no rows; a failure says the merge failed, not which SQL. */
/* A merged region's path: the id its text has here. */
#define MERGED_PATH "(SELECT new_id FROM temp.merge_path WHERE old_id = p.path_id)"

static int exec(struct store *st, const char *sql, struct err *e)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_sql_err(st, rc, "cannot merge", sql, e);
}

/* A target of the other file, as much of it as deciding where it goes needs. */
struct other_target {
    int64_t id, pid, start_time, nsnaps;
    char *boot_id, *exec_key, *first_taken;
};

static void other_target_release(struct other_target *t)
{
    free(t->boot_id);
    free(t->exec_key);
    free(t->first_taken);
}

/* This database's target with the identity (t, exec_key), or 0. Unqualified, the targets table
 * is this database's (main comes before attached files). */
static int find_here(struct store *st, const struct other_target *t, const char *exec_key,
                     int64_t *id, struct err *e)
{
    const struct capture_target ident = {.pid = t->pid,
                                         .start_time = (uint64_t)t->start_time,
                                         .boot_id = t->boot_id,
                                         .exec_key = (char *)exec_key};
    return store_target_find(st, &ident, id, e);
}

/*
 * How the other file's history of a target relates to the one here (id here): its first *here
 * snapshots are the same when *same is set, else the two part somewhere.
 */
static int compare_history(struct store *st, const struct other_target *t, int64_t here_id,
                           int64_t *here, int *same, struct err *e)
{
    static const char *count_sql = "SELECT count(*) FROM main.snapshots WHERE target_id = ?1";
    static const char *same_sql =
        "SELECT count(*) FROM main.snapshots d JOIN src.snapshots s "
        "ON s.target_id = ?2 AND s.seq = d.seq AND s.taken_at = d.taken_at "
        "WHERE d.target_id = ?1 AND d.seq <= ?3";
    int64_t p[3] = {here_id, t->id, 0}, n = 0, matched = 0;
    int rc = run(st, "cannot merge", count_sql, p, 1, &n, NULL, e);
    if (rc < 0)
        return rc;
    p[2] = n < t->nsnaps ? n : t->nsnaps;
    if ((rc = run(st, "cannot merge", same_sql, p, 3, &matched, NULL, e)) < 0)
        return rc;
    *here = n;
    *same = matched == p[2];
    return 0;
}

/* Adds the other file's target t under exec_key, without a parent yet; *id is its id here. */
static int add_target(struct store *st, const struct other_target *t, const char *exec_key,
                      int64_t *id, struct err *e)
{
    static const char *sql =
        "INSERT INTO main.targets (pid, start_time, exe, cmdline, host, os, boot_id, exec_key, "
        "first_seen) SELECT pid, start_time, exe, cmdline, host, os, boot_id, ?2, first_seen "
        "FROM src.targets WHERE id = ?1";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, t->id);
    sqlite3_bind_text(s, 2, exec_key, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_err(st, rc, "cannot merge a target", sql, e);
    *id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

/*
 * Copies the other file's target `from` into target `to` here, which holds its first `here`
 * snapshots already: the snapshots after them, and every region and figure of the target (those
 * here are dropped first: they are the other file's, copied before, and end where it went on).
 */
static int copy_target(struct store *st, int64_t from, int64_t to, int64_t here,
                       int64_t *snaps_added, struct err *e)
{
    /* Parameters: ?1 from, ?2 to, ?3 snapshots here, ?4 from << 32, ?5 to << 32, ?6 the open
     * interval's last_snap. */
    static const char *const steps[][2] = {
        {"cannot merge snapshots",
         "INSERT INTO temp.merge_snap (old_id, new_id) SELECT s.id, d.id FROM src.snapshots s "
         "JOIN main.snapshots d ON d.target_id = ?2 AND d.seq = s.seq "
         "WHERE s.target_id = ?1 AND s.seq <= ?3"},
        {"cannot merge snapshots",
         "INSERT INTO temp.merge_snap (old_id, new_id) "
         "SELECT id, (SELECT coalesce(max(id), 0) FROM main.snapshots) + "
         "row_number() OVER (ORDER BY seq) FROM src.snapshots WHERE target_id = ?1 AND seq > ?3"},
        {"cannot merge snapshots",
         "INSERT INTO main.snapshots (id, target_id, seq, taken_at, label, region_count, "
         "mapped_bytes, rss_bytes, pss_bytes, private_dirty_bytes, anon_bytes, swap_bytes, "
         "detail, method, torn, retries, duration_us, mark) "
         "SELECT m.new_id, ?2, s.seq, s.taken_at, s.label, s.region_count, s.mapped_bytes, "
         "s.rss_bytes, s.pss_bytes, s.private_dirty_bytes, s.anon_bytes, s.swap_bytes, s.detail, "
         "s.method, s.torn, s.retries, s.duration_us, "
         /* A `vmsnap mark` is a row of the other file: here the snapshot was taken on a mark. */
         "CASE WHEN s.mark > 0 THEN 0 ELSE s.mark END "
         "FROM src.snapshots s JOIN temp.merge_snap m ON m.old_id = s.id "
         "WHERE s.target_id = ?1 AND s.seq > ?3 ORDER BY s.seq"},
        {"cannot merge regions", "DELETE FROM main.span_mem WHERE span_id BETWEEN ?5 AND ?5 + "
                                 "4294967295 AND ?3 > 0"},
        {"cannot merge regions", "DELETE FROM main.spans_open WHERE id BETWEEN ?5 AND ?5 + "
                                 "4294967295 AND ?3 > 0"},
        {"cannot merge regions", "DELETE FROM main.spans WHERE target_id = ?2 AND ?3 > 0"},
        {"cannot merge regions", "DELETE FROM main.category_spans WHERE target_id = ?2 AND ?3 > 0"},
        /* A snapshot id the other file does not have is NULL here, and refused as such. */
        {"cannot merge regions",
         "INSERT INTO main.spans_open (id, target_id, first_snap, " STORE_REGION_COLUMNS(
             "path_id") ") SELECT p.id - ?4 + ?5, ?2, (SELECT new_id FROM temp.merge_snap WHERE "
                        "old_id = p.first_snap), " STORE_REGION_COLUMNS_P(
                            MERGED_PATH) " FROM src.spans_open p WHERE p.id BETWEEN ?4 AND ?4 + "
                                         "4294967295"},
        {"cannot merge regions",
         "INSERT INTO main.spans (id, target_id, first_snap, last_snap, " STORE_REGION_COLUMNS(
             "path_id") ") SELECT p.id - ?4 + ?5, ?2, (SELECT new_id FROM temp.merge_snap WHERE "
                        "old_id = p.first_snap), (SELECT new_id FROM temp.merge_snap WHERE old_id "
                        "= p.last_snap), " STORE_REGION_COLUMNS_P(
                            MERGED_PATH) " FROM src.spans p WHERE p.target_id = ?1"},
        {"cannot merge memory figures",
         "INSERT INTO main.span_mem (span_id, first_snap, last_snap, rss, pss, private_dirty, "
         "anonymous, swap) "
         "SELECT m.span_id - ?4 + ?5, (SELECT new_id FROM temp.merge_snap WHERE old_id = "
         "m.first_snap), "
         "CASE WHEN m.last_snap = ?6 THEN ?6 ELSE "
         "(SELECT new_id FROM temp.merge_snap WHERE old_id = m.last_snap) END, "
         "m.rss, m.pss, m.private_dirty, m.anonymous, m.swap "
         "FROM src.span_mem m WHERE m.span_id BETWEEN ?4 AND ?4 + 4294967295"},
        {"cannot merge category totals",
         "INSERT INTO main.category_spans (target_id, category, first_snap, last_snap, regions, "
         "mapped, committed, rss) "
         "SELECT ?2, c.category, (SELECT new_id FROM temp.merge_snap WHERE old_id = c.first_snap), "
         "CASE WHEN c.last_snap = ?6 THEN ?6 ELSE "
         "(SELECT new_id FROM temp.merge_snap WHERE old_id = c.last_snap) END, "
         "c.regions, c.mapped, c.committed, c.rss FROM src.category_spans c "
         "WHERE c.target_id = ?1"},
        /* Renumbered, the intervals have lengths of their own here. */
        {"cannot merge category totals",
         "INSERT OR IGNORE INTO main.category_classes (target_id, n, w) SELECT DISTINCT ?2, k.n, "
         "k.w FROM main.category_spans c JOIN main.interval_classes k ON k.n = " STORE_SPAN_CLASS(
             "c") " WHERE c.target_id = ?2"},
        /* What the other file knew of the target's life: its origin, unless this one knew it,
         * and whether it exited, as the later of the two recordings saw it. */
        {"cannot merge a target",
         "UPDATE main.targets SET origin = coalesce(origin, (SELECT origin FROM src.targets WHERE "
         "id = ?1)), exited_at = coalesce((SELECT exited_at FROM src.targets WHERE id = ?1), "
         "exited_at) WHERE id = ?2"},
        /* The calls recorded with --stacks: the other file's, which went on recording. */
        {"cannot merge calls", "DELETE FROM main.events WHERE target_id = ?2 AND ?3 > 0"},
        {"cannot merge calls",
         "INSERT INTO main.events (target_id, tid, taken_at, call, start, \"end\", prot, flags, "
         "new_size, result, stack_id) SELECT ?2, e.tid, e.taken_at, e.call, e.start, e.\"end\", "
         "e.prot, e.flags, e.new_size, e.result, (SELECT new_id FROM temp.merge_stack WHERE "
         "old_id = e.stack_id) FROM src.events e WHERE e.target_id = ?1 ORDER BY e.id"},
        {"cannot merge", "DELETE FROM temp.merge_snap"},
    };
    const int64_t p[] = {from, to, here, from << 32, to << 32, STORE_OPEN_SPAN};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        int64_t n = 0;
        int rc = run(st, steps[i][0], steps[i][1], p, 6, NULL, &n, e);
        if (rc < 0)
            return rc;
        if (i == 2)
            *snaps_added = n;
    }
    return 0;
}

/* The exec key under which a recording of the same process made apart from this one is kept. */
static char *apart_key(const struct other_target *t)
{
    return xasprintf("%s@%s", t->exec_key, t->first_taken ? t->first_taken : "");
}

/* Merges one target of the other file; counts what it did in r. */
static int merge_target(struct store *st, const struct other_target *t,
                        struct store_merge_result *r, struct err *e)
{
    int64_t here_id = 0, here = 0, added = 0;
    int same = 1, rc;
    char *key = xstrdup(t->exec_key);
    if ((rc = find_here(st, t, key, &here_id, e)) < 0)
        goto out;
    if (here_id && (rc = compare_history(st, t, here_id, &here, &same, e)) < 0)
        goto out;
    if (!same) {
        /* Recorded apart into both files: the other one's is a target of its own. */
        free(key);
        key = apart_key(t);
        here = 0;
        same = 1;
        if ((rc = find_here(st, t, key, &here_id, e)) < 0)
            goto out;
        if (here_id && (rc = compare_history(st, t, here_id, &here, &same, e)) < 0)
            goto out;
        if (!same) {
            rc = err_set(e, ERR_USAGE,
                         "cannot merge: pid %lld is recorded in three ways (here, apart, and in "
                         "the other file) -- merge it into a new database",
                         (long long)t->pid);
            goto out;
        }
        if (!here_id)
            r->targets_apart++;
    }
    if (!here_id) {
        if ((rc = add_target(st, t, key, &here_id, e)) < 0)
            goto out;
        if (strcmp(key, t->exec_key) == 0)
            r->targets_added++;
    } else if (here >= t->nsnaps) {
        r->targets_present++;
    } else {
        r->targets_extended++;
    }
    if (here < t->nsnaps) {
        if ((rc = copy_target(st, t->id, here_id, here, &added, e)) < 0)
            goto out;
        r->snapshots_added += added;
    }
    const int64_t map[] = {t->id, here_id};
    rc = run(st, "cannot merge", "INSERT INTO temp.merge_target (old_id, new_id) VALUES (?1, ?2)",
             map, 2, NULL, NULL, e);
out:
    free(key);
    return rc;
}

/* Every target of the other file, in id order (parents before the processes they forked). */
static int merge_targets(struct store *st, struct store_merge_result *r, struct err *e)
{
    static const char *sql =
        "SELECT t.id, t.pid, t.start_time, t.boot_id, t.exec_key, "
        "(SELECT count(*) FROM src.snapshots s WHERE s.target_id = t.id), "
        "(SELECT taken_at FROM src.snapshots s WHERE s.target_id = t.id AND s.seq = 1) "
        "FROM src.targets t ORDER BY t.id";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct other_target t = {
            .id = sqlite3_column_int64(s, 0),
            .pid = sqlite3_column_int64(s, 1),
            .start_time = sqlite3_column_int64(s, 2),
            .boot_id = store_col_text(s, 3),
            .exec_key = store_col_text(s, 4),
            .nsnaps = sqlite3_column_int64(s, 5),
            .first_taken = store_col_text(s, 6),
        };
        /* A target row without a snapshot is never written; one that is holds nothing. */
        rc = t.nsnaps > 0 && t.boot_id && t.exec_key ? merge_target(st, &t, r, e) : 0;
        other_target_release(&t);
        if (rc < 0)
            break;
    }
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc > 0)
        rc = store_sql_err(st, rc, "cannot merge targets", sql, e);
    sqlite3_finalize(s);
    return rc;
}

/*
 * store_merge opened the file on its own first (refusing a foreign or newer one, migrating an
 * older one): what is attached must still be that, or it was replaced in between.
 */
static int check_other(struct store *st, struct err *e)
{
    int64_t app = 0, version = 0;
    int rc = run(st, "cannot merge", "PRAGMA src.application_id", NULL, 0, &app, NULL, e);
    if (rc == 0)
        rc = run(st, "cannot merge", "PRAGMA src.user_version", NULL, 0, &version, NULL, e);
    if (rc == 0 && (app != STORE_APPLICATION_ID || version != store_schema_version()))
        rc = err_set(e, ERR_NOTVMSNAP,
                     "it was replaced while being opened (application id 0x%08llx, schema %lld) "
                     "-- nothing of it was merged",
                     (unsigned long long)app, (long long)version);
    /* Checked again as attached: the file opened on its own may not be the one attached. */
    if (rc == 0)
        rc = store_check_schema(st->db, "src", "the file to merge", (int)version, e);
    return rc;
}

static int merge_attached(struct store *st, struct store_merge_result *r, struct err *e)
{
    static const char *setup =
        "CREATE TEMP TABLE IF NOT EXISTS merge_snap (old_id INTEGER PRIMARY KEY, new_id INTEGER);"
        "CREATE TEMP TABLE IF NOT EXISTS merge_path (old_id INTEGER PRIMARY KEY, new_id INTEGER);"
        "CREATE TEMP TABLE IF NOT EXISTS merge_target (old_id INTEGER PRIMARY KEY, new_id INTEGER);"
        "DELETE FROM temp.merge_snap; DELETE FROM temp.merge_path; DELETE FROM temp.merge_target;"
        /* Paths by their text: ids differ from file to file. */
        "INSERT OR IGNORE INTO main.paths (path) SELECT path FROM src.paths;"
        "INSERT INTO temp.merge_path (old_id, new_id) SELECT s.id, m.id FROM src.paths s "
        "JOIN main.paths m ON m.path = s.path;"
        /* Stacks by their raw frames, with the names they had. */
        "CREATE TEMP TABLE IF NOT EXISTS merge_stack (old_id INTEGER PRIMARY KEY, new_id INTEGER);"
        "DELETE FROM temp.merge_stack;"
        "INSERT OR IGNORE INTO main.stacks (frames) SELECT frames FROM src.stacks ORDER BY id;"
        "INSERT INTO temp.merge_stack (old_id, new_id) SELECT s.id, m.id FROM src.stacks s "
        "JOIN main.stacks m ON m.frames = s.frames;"
        "INSERT OR IGNORE INTO main.stack_frames (stack_id, depth, module, build_id, offset, "
        "function, file, line) SELECT k.new_id, f.depth, f.module, f.build_id, f.offset, "
        "f.function, f.file, f.line FROM src.stack_frames f JOIN temp.merge_stack k ON k.old_id = "
        "f.stack_id;";
    /* A target forked by another names it here as in the other file, unless it had none. */
    static const char *parents =
        "UPDATE main.targets SET parent_target_id = (SELECT pm.new_id FROM temp.merge_target mt "
        "JOIN src.targets s ON s.id = mt.old_id JOIN temp.merge_target pm ON pm.old_id = "
        "s.parent_target_id WHERE mt.new_id = main.targets.id) "
        "WHERE parent_target_id IS NULL AND id IN (SELECT new_id FROM temp.merge_target)";
    int rc;
    if ((rc = check_other(st, e)) < 0 || (rc = exec(st, setup, e)) < 0 ||
        (rc = merge_targets(st, r, e)) < 0)
        return rc;
    return exec(st, parents, e);
}

int store_merge(struct store *st, const char *path, struct store_merge_result *r, struct err *e)
{
    memset(r, 0, sizeof(*r));
    /* Opened on its own first, as every command opens a database: a file that is not one, or is
     * newer, is refused untouched; an older one is brought to this schema. */
    struct store *other = NULL;
    int rc = store_open(&other, path, STORE_READ, e);
    store_close(other);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = NULL;
    if ((rc = store_prepare(st, "ATTACH ?1 AS src", &s, e)) < 0)
        return rc;
    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_sql_err(st, rc, "cannot open the database to merge", "ATTACH ?1 AS src", e);
    /* The other file is read in the same transaction that writes here: what a recorder adds
     * to it meanwhile is left for the next merge, whole. */
    if ((rc = store_begin(st, e)) == 0) {
        rc = merge_attached(st, r, e);
        if (rc == 0)
            rc = store_commit(st, e);
        else
            store_rollback(st);
        if (rc < 0)
            memset(r, 0, sizeof(*r));
    }
    sqlite3_exec(st->db, "DETACH src", NULL, NULL, NULL);
    return rc;
}
