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

/* first, last and last~N: of target_id, or of the target of the newest snapshot. */
static int resolve_end(struct store *st, const char *text, const struct store_selector *sel,
                       int64_t target_id, int64_t *snap_id, struct err *e)
{
    int64_t target = target_id;
    int rc;
    if (!target) {
        rc = store_query_i64(st, "SELECT target_id FROM snapshots ORDER BY id DESC LIMIT 1", 0, 0,
                             &target, e);
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
    int rc = store_stmt_prepare(st, sql, "cannot resolve the snapshot", &q, e);
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

int store_resolve_range(struct store *st, int64_t target_id, const char *from_sel,
                        const char *to_sel, int64_t *target, int64_t *from, int64_t *to,
                        struct err *e)
{
    int rc;
    *target = target_id;
    if (!*target && (from_sel || to_sel)) {
        int64_t id;
        struct store_snapshot s;
        if ((rc = store_resolve(st, from_sel ? from_sel : to_sel, 0, &id, e)) < 0 ||
            (rc = store_snapshot_get(st, id, &s, e)) < 0)
            return rc;
        *target = s.target_id;
        store_snapshot_release(&s);
    }
    if ((rc = store_resolve(st, from_sel ? from_sel : "first", *target, from, e)) < 0 ||
        (rc = store_resolve(st, to_sel ? to_sel : "last", *target, to, e)) < 0)
        return rc;
    if (!*target) {
        struct store_snapshot s;
        if ((rc = store_snapshot_get(st, *to, &s, e)) < 0)
            return rc;
        *target = s.target_id;
        store_snapshot_release(&s);
    }
    if (*from > *to)
        return err_set(e, ERR_USAGE, "--from (snapshot %lld) comes after --to (snapshot %lld)",
                       (long long)*from, (long long)*to);
    return 0;
}
