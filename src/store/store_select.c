/*
 * Snapshot selectors -- an id, first, last, last~N, a label, and FILE:SNAP naming another
 * database -- parsed in one place, resolved against a database, and the one rule for labels
 * that follows from the parser: a label is what no other selector reads as.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

int store_selector_parse(const char *s, struct store_selector *out, struct err *e)
{
    memset(out, 0, sizeof(*out));
    if (!s || !*s)
        return err_set(e, ERR_USAGE,
                       "empty snapshot selector: expected an id, first, last, last~N or a label");
    if (all_digits(s)) {
        errno = 0;
        long long id = strtoll(s, NULL, 10);
        out->kind = STORE_SEL_ID;
        /* An id past int64 names no snapshot: it is looked for and not found. */
        out->n = errno ? -1 : id;
        return 0;
    }
    if (strcmp(s, "first") == 0) {
        out->kind = STORE_SEL_FIRST;
        return 0;
    }
    if (strcmp(s, "last") == 0 || strncmp(s, "last~", 5) == 0) {
        out->kind = STORE_SEL_LAST;
        if (!s[4])
            return 0;
        errno = 0;
        out->n = all_digits(s + 5) ? strtoll(s + 5, NULL, 10) : -1;
        if (out->n < 0 || errno)
            return err_set(e, ERR_USAGE,
                           "malformed snapshot selector '%s': expected last~N with N a whole "
                           "number",
                           s);
        return 0;
    }
    out->kind = STORE_SEL_LABEL;
    out->label = s;
    return 0;
}

int store_label_check(const char *label, struct err *e)
{
    if (!*label)
        return err_set(e, ERR_USAGE, "empty label");
    if (strlen(label) > STORE_LABEL_MAX)
        return err_set(e, ERR_USAGE, "label is too long (at most %d bytes)", STORE_LABEL_MAX);
    struct store_selector sel;
    struct err scratch;
    /* last~x is no selector (it is refused as a malformed one), nor a label. */
    if (store_selector_parse(label, &sel, &scratch) < 0 || sel.kind != STORE_SEL_LABEL ||
        strchr(label, ':'))
        return err_set(e, ERR_USAGE,
                       "label '%s' would read as a snapshot selector (an id, first, last, "
                       "last~N or FILE:SNAP) -- choose another",
                       label);
    return 0;
}

const char *store_selector_split_file(const char *arg, char **file)
{
    const char *colon = strrchr(arg, ':');
    *file = NULL;
    if (!colon || colon == arg)
        return arg;
    char *path = xstrndup(arg, (size_t)(colon - arg));
    struct plat_file pf;
    if (plat_file_stat(path, &pf) == 0 && pf.kind == PLAT_FILE_REGULAR) {
        *file = path;
        return colon + 1;
    }
    free(path);
    return arg;
}

static int resolve_id(struct store *st, const char *text, const struct store_selector *sel,
                      int64_t target_id, int64_t *snap_id, struct err *e)
{
    int rc = sel->n < 0 ? 1
                        : store_query_i64(st,
                                          "SELECT id FROM snapshots WHERE id = ?1 AND (?2 = 0 OR "
                                          "target_id = ?2)",
                                          sel->n, target_id, snap_id, e);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return 0;
    return err_set(e, ERR_NOTFOUND, "no snapshot with id %s in '%s'%s", text, st->path,
                   target_id ? " for that target" : "");
}

int store_root_of(struct store *st, int64_t target, int64_t *root, struct err *e)
{
    int64_t targets = 0, parent;
    int rc;
    *root = target;
    if ((rc = store_query_i64(st, "SELECT count(*) FROM targets", 0, 0, &targets, e)) < 0)
        return rc;
    /* A chain no longer than the targets: a crafted cycle ends there. */
    for (int64_t hops = 0; hops < targets; hops++) {
        rc = store_query_i64(st,
                             "SELECT t.parent_target_id FROM targets t WHERE t.id = ?1 AND "
                             "EXISTS (SELECT 1 FROM snapshots s WHERE s.target_id = "
                             "t.parent_target_id)",
                             *root, 0, &parent, e);
        if (rc < 0)
            return rc;
        if (rc == 1 || parent == 0 || parent == target)
            break;
        *root = parent;
    }
    return 0;
}

/* The default target: the newest recording's root. 1 when the database has no snapshot. */
static int default_target(struct store *st, int64_t *target, struct err *e)
{
    int64_t newest;
    int rc = store_query_i64(st, "SELECT target_id FROM snapshots ORDER BY id DESC LIMIT 1", 0, 0,
                             &newest, e);
    return rc != 0 ? rc : store_root_of(st, newest, target, e);
}

int store_tree(struct store *st, int64_t root, int64_t **ids, size_t *n, struct err *e)
{
    /* UNION, not UNION ALL: a crafted cycle is visited once. */
    static const char *sql =
        "WITH RECURSIVE tree(id) AS (SELECT :root UNION SELECT t.id FROM targets t JOIN tree ON "
        "t.parent_target_id = tree.id) SELECT id FROM tree WHERE EXISTS (SELECT 1 FROM "
        "snapshots s WHERE s.target_id = tree.id) ORDER BY id";
    struct store_stmt q;
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    int rc = store_stmt_prepare(st, sql, "cannot read the process tree", &q, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&q, ":root", root);
    while ((rc = store_stmt_step(&q, e)) == 1) {
        *ids = xgrow(*ids, &cap, *n + 1, sizeof(**ids));
        (*ids)[(*n)++] = sqlite3_column_int64(q.s, 0);
    }
    store_stmt_finalize(&q);
    return rc < 0 ? rc : 0;
}

int store_window(struct store *st, int64_t target, int64_t from, int64_t to, int64_t *first,
                 int64_t *last, struct err *e)
{
    static const char *sql =
        "SELECT min(s.id), max(s.id) FROM snapshots s WHERE s.target_id = :target AND s.taken_at "
        ">= (SELECT taken_at FROM snapshots WHERE id = :from) AND s.taken_at <= (SELECT taken_at "
        "FROM snapshots WHERE id = :to)";
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot read the recording", &q, e);
    if (rc < 0)
        return rc;
    store_bind_i64(&q, ":target", target);
    store_bind_i64(&q, ":from", from);
    store_bind_i64(&q, ":to", to);
    rc = store_stmt_step(&q, e);
    int none = rc == 1 && sqlite3_column_type(q.s, 0) == SQLITE_NULL;
    if (rc == 1 && !none) {
        *first = sqlite3_column_int64(q.s, 0);
        *last = sqlite3_column_int64(q.s, 1);
    }
    store_stmt_finalize(&q);
    return rc < 0 ? rc : rc == 1 && !none ? 0 : 1;
}

/* first, last and last~N: of target_id, or of the default target. */
static int resolve_end(struct store *st, const char *text, const struct store_selector *sel,
                       int64_t target_id, int64_t *snap_id, struct err *e)
{
    int64_t target = target_id;
    int rc;
    if (!target) {
        rc = default_target(st, &target, e);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return err_set(e, ERR_NOTFOUND, "database '%s' has no snapshots yet", st->path);
    }
    if (sel->kind == STORE_SEL_FIRST)
        rc = store_query_i64(st, "SELECT min(id) FROM snapshots WHERE target_id = ?", target, 0,
                             snap_id, e);
    else
        rc = store_query_i64(st,
                             "SELECT id FROM snapshots WHERE target_id = ?1 AND seq = "
                             "(SELECT max(seq) FROM snapshots WHERE target_id = ?1) - ?2",
                             target, sel->n, snap_id, e);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return 0;
    int64_t count = 0;
    store_query_i64(st, "SELECT count(*) FROM snapshots WHERE target_id = ?", target, 0, &count,
                    NULL);
    return err_set(e, ERR_NOTFOUND, "no snapshot '%s': target %lld has %lld snapshot%s", text,
                   (long long)target, (long long)count, count == 1 ? "" : "s");
}

/* A label that names snapshots of more than one target, asked without one: refused, with the
 * targets named (a mark labels every process a recording follows). 0 when it is not so. */
static int refuse_ambiguous(struct store *st, const char *label, struct err *e)
{
    static const char *sql =
        "SELECT t.id, t.pid, count(*) OVER () FROM (SELECT DISTINCT target_id FROM snapshots "
        "WHERE label = :label) s JOIN targets t ON t.id = s.target_id ORDER BY t.id";
    struct store_stmt q;
    int rc = store_stmt_prepare(st, sql, "cannot resolve the snapshot", &q, e);
    if (rc < 0)
        return rc;
    store_bind_static(&q, ":label", label, -1);
    char list[400] = "";
    size_t len = 0;
    int64_t n = 0, first = 0;
    for (int i = 0; (rc = store_stmt_step(&q, e)) == 1; i++) {
        n = sqlite3_column_int64(q.s, 2);
        if (i == 0)
            first = sqlite3_column_int64(q.s, 0);
        if (i < 6 && len < sizeof(list))
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%lld (pid %lld)",
                                    i ? ", " : "", (long long)sqlite3_column_int64(q.s, 0),
                                    (long long)sqlite3_column_int64(q.s, 1));
        else if (i == 6 && len < sizeof(list))
            len += (size_t)snprintf(list + len, sizeof(list) - len, ", ...");
    }
    store_stmt_finalize(&q);
    if (rc < 0)
        return rc;
    if (n < 2)
        return 0;
    return err_set(e, ERR_USAGE,
                   "label '%s' names snapshots of %lld processes: targets %s -- pick one with "
                   "--target ID (e.g. --target %lld)",
                   label, (long long)n, list, (long long)first);
}

/* The newest snapshot labelled so (of target_id when not 0); a label of another target's says
 * whose. */
static int resolve_label(struct store *st, const char *label, int64_t target_id, int64_t *snap_id,
                         struct err *e)
{
    static const char *sql = "SELECT id FROM snapshots WHERE label = :label AND (:target = 0 OR "
                             "target_id = :target) ORDER BY id DESC LIMIT 1";
    static const char *other_sql =
        "SELECT target_id FROM snapshots WHERE label = :label ORDER BY id DESC LIMIT 1";
    struct store_stmt q;
    int rc = target_id ? 0 : refuse_ambiguous(st, label, e);
    if (rc < 0)
        return rc;
    rc = store_stmt_prepare(st, sql, "cannot resolve the snapshot", &q, e);
    if (rc < 0)
        return rc;
    store_bind_static(&q, ":label", label, -1);
    store_bind_i64(&q, ":target", target_id);
    rc = store_stmt_step(&q, e);
    if (rc == 1)
        *snap_id = sqlite3_column_int64(q.s, 0);
    store_stmt_finalize(&q);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    int64_t other = 0;
    if (target_id &&
        store_stmt_prepare(st, other_sql, "cannot resolve the snapshot", &q, NULL) == 0) {
        store_bind_static(&q, ":label", label, -1);
        if (store_stmt_step(&q, NULL) == 1)
            other = sqlite3_column_int64(q.s, 0);
        store_stmt_finalize(&q);
    }
    if (other)
        return err_set(e, ERR_NOTFOUND,
                       "no snapshot labelled '%s' in target %lld: target %lld has one -- pick it "
                       "with --target %lld",
                       label, (long long)target_id, (long long)other, (long long)other);
    return err_set(e, ERR_NOTFOUND,
                   "no snapshot matches '%s' (expected an id, first, last, last~N or a label)",
                   label);
}

int store_resolve(struct store *st, const char *text, int64_t target_id, int64_t *snap_id,
                  struct err *e)
{
    struct store_selector sel;
    int rc = store_selector_parse(text, &sel, e);
    if (rc < 0)
        return rc;
    if (target_id) {
        int64_t found = 0;
        rc = store_query_i64(st, "SELECT id FROM targets WHERE id = ?", target_id, 0, &found, e);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return err_set(e, ERR_NOTFOUND, "no target with id %lld in '%s' -- see 'vmsnap list'",
                           (long long)target_id, st->path);
    }
    switch (sel.kind) {
    case STORE_SEL_ID:
        return resolve_id(st, text, &sel, target_id, snap_id, e);
    case STORE_SEL_FIRST:
    case STORE_SEL_LAST:
        return resolve_end(st, text, &sel, target_id, snap_id, e);
    default:
        return resolve_label(st, sel.label, target_id, snap_id, e);
    }
}

/* Whether a selector counts within a target (first, last, last~N) rather than naming one. */
static int relative(const char *text)
{
    struct store_selector sel;
    struct err scratch;
    return store_selector_parse(text, &sel, &scratch) == 0 &&
           (sel.kind == STORE_SEL_FIRST || sel.kind == STORE_SEL_LAST);
}

int store_resolve_pair(struct store *st, int64_t target_id, const char *sel_a, const char *sel_b,
                       int64_t *a, int64_t *b, struct err *e)
{
    int rc;
    if (target_id || (relative(sel_a) && relative(sel_b)))
        return (rc = store_resolve(st, sel_a, target_id, a, e)) < 0
                   ? rc
                   : store_resolve(st, sel_b, target_id, b, e);
    /* One names a snapshot: the other, if it counts within a target, counts within its target. */
    int a_first = !relative(sel_a);
    const char *anchor = a_first ? sel_a : sel_b, *other = a_first ? sel_b : sel_a;
    int64_t *at = a_first ? a : b, *ot = a_first ? b : a;
    struct store_snapshot s;
    if ((rc = store_resolve(st, anchor, 0, at, e)) < 0)
        return rc;
    if (!relative(other))
        return store_resolve(st, other, 0, ot, e);
    if ((rc = store_snapshot_get(st, *at, &s, e)) < 0)
        return rc;
    int64_t t = s.target_id;
    store_snapshot_release(&s);
    return store_resolve(st, other, t, ot, e);
}

int store_resolve_range(struct store *st, int64_t target_id, const char *from_sel,
                        const char *to_sel, int64_t *target, int64_t *from, int64_t *to,
                        struct err *e)
{
    int rc;
    struct store_snapshot s;
    if ((rc = store_resolve_pair(st, target_id, from_sel ? from_sel : "first",
                                 to_sel ? to_sel : "last", from, to, e)) < 0)
        return rc;
    int64_t tf, tt;
    if ((rc = store_snapshot_get(st, *from, &s, e)) < 0)
        return rc;
    tf = s.target_id;
    store_snapshot_release(&s);
    if ((rc = store_snapshot_get(st, *to, &s, e)) < 0)
        return rc;
    tt = s.target_id;
    store_snapshot_release(&s);
    if (tf != tt)
        return err_set(e, ERR_USAGE,
                       "--from (snapshot %lld) and --to (snapshot %lld) are of two processes "
                       "(targets %lld and %lld): a range is one process's -- pick it with "
                       "--target ID",
                       (long long)*from, (long long)*to, (long long)tf, (long long)tt);
    *target = tt;
    if (*from > *to)
        return err_set(e, ERR_USAGE, "--from (snapshot %lld) comes after --to (snapshot %lld)",
                       (long long)*from, (long long)*to);
    return 0;
}
