/* Reading targets, snapshots and regions back; selectors; the read-only query runner. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

static void col_name_text(sqlite3_stmt *s, int col, struct region_list *l, const char **out,
                          uint32_t *len)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    if (!t) {
        *out = NULL;
        *len = 0;
        return;
    }
    *len = (uint32_t)sqlite3_column_bytes(s, col);
    *out = region_list_intern(l, (const char *)t, *len);
}

static int parse_win_state(const unsigned char *s)
{
    if (!s)
        return WIN_STATE_NONE;
    if (strcmp((const char *)s, "commit") == 0)
        return WIN_STATE_COMMIT;
    if (strcmp((const char *)s, "reserve") == 0)
        return WIN_STATE_RESERVE;
    return WIN_STATE_NONE;
}

static int parse_win_type(const unsigned char *s)
{
    if (!s)
        return WIN_TYPE_NONE;
    if (strcmp((const char *)s, "image") == 0)
        return WIN_TYPE_IMAGE;
    if (strcmp((const char *)s, "mapped") == 0)
        return WIN_TYPE_MAPPED;
    if (strcmp((const char *)s, "private") == 0)
        return WIN_TYPE_PRIVATE;
    return WIN_TYPE_NONE;
}

static int hex_digit(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* "fe:01" as maps prints a device (hex major:minor); anything else leaves 0:0. Runs once per
 * region read, where sscanf showed in profiles. */
static void parse_dev(const unsigned char *dev, struct region *r)
{
    uint32_t part[2] = {0, 0};
    int k = 0, digits = 0;
    for (const unsigned char *p = dev; p && *p; p++) {
        int d = hex_digit(*p);
        if (*p == ':' && k == 0 && digits) {
            k = 1;
            digits = 0;
        } else if (d >= 0 && digits < 8) {
            part[k] = part[k] << 4 | (uint32_t)d;
            digits++;
        } else {
            return;
        }
    }
    if (k == 1 && digits) {
        r->dev_major = part[0];
        r->dev_minor = part[1];
    }
}

void store_row_to_region(sqlite3_stmt *s, int col, struct region_list *l, struct region *r)
{
    r->start = (uint64_t)sqlite3_column_int64(s, col + RCOL_START);
    r->end = (uint64_t)sqlite3_column_int64(s, col + RCOL_END);
    const unsigned char *perms = sqlite3_column_text(s, col + RCOL_PERMS);
    size_t np = perms ? strnlen((const char *)perms, sizeof(r->perms) - 1) : 0;
    memcpy(r->perms, perms ? (const char *)perms : "----", perms ? np : 4);
    r->perms[perms ? np : 4] = '\0';
    r->offset = (uint64_t)sqlite3_column_int64(s, col + RCOL_OFFSET);
    parse_dev(sqlite3_column_text(s, col + RCOL_DEV), r);
    r->inode = (uint64_t)sqlite3_column_int64(s, col + RCOL_INODE);
    col_name_text(s, col + RCOL_PATH, l, &r->path, &r->path_len);
    const unsigned char *owner = sqlite3_column_text(s, col + RCOL_OWNER);
    if (owner)
        region_set_owner(l, r, (const char *)owner,
                         (size_t)sqlite3_column_bytes(s, col + RCOL_OWNER));
    const unsigned char *cat = sqlite3_column_text(s, col + RCOL_CATEGORY);
    int c = cat ? region_category_parse((const char *)cat) : -1;
    r->category = (uint8_t)(c < 0 ? CAT_ANON : c);
    if (sqlite3_column_int(s, col + RCOL_DELETED))
        r->flags |= REGION_DELETED;
    if (sqlite3_column_type(s, col + RCOL_STATE) != SQLITE_NULL ||
        sqlite3_column_type(s, col + RCOL_TYPE) != SQLITE_NULL) {
        struct region_extra *x = region_extra_set(l, r);
        r->flags |= REGION_HAS_WIN;
        x->state = (uint8_t)parse_win_state(sqlite3_column_text(s, col + RCOL_STATE));
        x->type = (uint8_t)parse_win_type(sqlite3_column_text(s, col + RCOL_TYPE));
        x->protect = (uint32_t)sqlite3_column_int64(s, col + RCOL_PROTECT);
        x->alloc_base = (uint64_t)sqlite3_column_int64(s, col + RCOL_ALLOC_BASE);
        x->alloc_protect = (uint32_t)sqlite3_column_int64(s, col + RCOL_ALLOC_PROTECT);
    }
    if (sqlite3_column_type(s, col + RCOL_RSS) != SQLITE_NULL) {
        struct region_extra *x = region_extra_set(l, r);
        r->flags |= REGION_HAS_MEM;
        x->rss = (uint64_t)sqlite3_column_int64(s, col + RCOL_RSS);
        x->pss = (uint64_t)sqlite3_column_int64(s, col + RCOL_PSS);
        x->private_dirty = (uint64_t)sqlite3_column_int64(s, col + RCOL_PRIVATE_DIRTY);
        x->anonymous = (uint64_t)sqlite3_column_int64(s, col + RCOL_ANONYMOUS);
        x->swap = (uint64_t)sqlite3_column_int64(s, col + RCOL_SWAP);
    }
}

struct order_key {
    uint64_t start;
    size_t index;
};

static int cmp_order(const void *a, const void *b)
{
    const struct order_key *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

size_t *store_sort_order(const struct region_list *l)
{
    size_t *order = xmalloc((l->n ? l->n : 1) * sizeof(*order));
    size_t sorted = 1;
    while (sorted < l->n && l->v[sorted - 1].start <= l->v[sorted].start)
        sorted++;
    if (sorted >= l->n) {
        /* The usual case (spans are numbered as snapshots walk them): no sort at all. */
        for (size_t i = 0; i < l->n; i++)
            order[i] = i;
        return order;
    }
    struct order_key *keys = xmalloc(l->n * sizeof(*keys));
    for (size_t i = 0; i < l->n; i++)
        keys[i] = (struct order_key){l->v[i].start, i};
    if (l->n > 1)
        qsort(keys, l->n, sizeof(*keys), cmp_order);
    for (size_t i = 0; i < l->n; i++)
        order[i] = keys[i].index;
    free(keys);
    return order;
}

/*
 * Runs sql with its integer parameters bound in order and fills out with the rows (laid out as
 * store_row_to_region wants), sorted by unsigned start: SQL orders addresses as signed numbers,
 * which would put [vsyscall] first.
 */
static int read_regions(struct store *st, const char *sql, const int64_t *params, int nparams,
                        size_t hint, const char *what, struct region_list *out, struct err *e)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    for (int i = 0; i < nparams; i++)
        sqlite3_bind_int64(s, i + 1, params[i]);
    struct region_list tmp;
    region_list_init(&tmp);
    /* hint: how many rows are expected, so the array is sized once. */
    region_list_reserve(&tmp, hint);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        store_row_to_region(s, 0, &tmp, region_list_push(&tmp));
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        region_list_release(&tmp);
        return store_sql_err(st, rc, what, sql, e);
    }
    size_t *order = store_sort_order(&tmp);
    size_t i = 0;
    while (i < tmp.n && order[i] == i)
        i++;
    if (i == tmp.n) {
        /* Already in order (spans are numbered as their snapshot walked them): the list
         * itself is the answer, names and all. */
        struct region_list old = *out;
        *out = tmp;
        tmp = old;
    } else {
        region_list_clear(out);
        region_list_reserve(out, tmp.n);
        for (i = 0; i < tmp.n; i++) {
            struct region *r = region_list_push(out);
            *r = tmp.v[order[i]];
            region_rehome(out, r);
        }
    }
    free(order);
    region_list_release(&tmp);
    return 0;
}

int store_read_regions(struct store *st, int64_t snap_id, struct region_list *out, struct err *e)
{
    static const char *sql =
        "SELECT " STORE_REGION_COLUMNS("path") ", " STORE_REGION_FIGURES
                                               " FROM regions WHERE snapshot_id = ?";
    int64_t count = 0;
    int rc = store_query_i64(st, "SELECT region_count FROM snapshots WHERE id = ?", snap_id, 0,
                             &count, e);
    if (rc < 0)
        return rc;
    return read_regions(st, sql, &snap_id, 1, store_size_hint(count),
                        "cannot read the snapshot's regions", out, e);
}

int store_read_delta(struct store *st, int64_t target_id, int64_t a, int64_t b,
                     struct region_list *gone, struct region_list *came, struct err *e)
{
    /* Alive at a, ended before b: one range of the spans_alive index. */
    static const char *gone_sql = SPAN_COLS("spans") "WHERE p.target_id = ?1 AND p.last_snap >= ?2 "
                                                     "AND p.last_snap < ?3 AND p.first_snap <= ?2";
    /* Born after a, alive at b: still open (the target's rowid range of spans_open), or ended
     * after b (a range of the index). */
    static const char *came_sql =
        SPAN_COLS("spans_open") "WHERE p.id BETWEEN ?4 AND ?5 AND p.first_snap > ?2 AND "
                                "p.first_snap <= ?3 UNION ALL " SPAN_COLS(
                                    "spans") "WHERE p.target_id = ?1 AND p.last_snap >= ?3 AND "
                                             "p.first_snap > ?2 AND "
                                             "p.first_snap <= ?3";
    const int64_t params[] = {target_id, a, b, target_id << 32, (target_id << 32) + 0xffffffffLL};
    const char *what = "cannot read the snapshots' differences";
    int rc = read_regions(st, gone_sql, params, 3, 0, what, gone, e);
    if (rc < 0)
        return rc;
    return read_regions(st, came_sql, params, 5, 0, what, came, e);
}

/* The region columns with the memory figures the span had at snapshot `at` (an SQL
 * parameter), from spans or spans_open as p. */
#define SPAN_MEM_COLS(table, at)                                                                   \
    "SELECT " STORE_REGION_COLUMNS_P(                                                              \
        "n.path") ", " STORE_REGION_FIGURES_M " FROM " table                                       \
                  " p LEFT JOIN paths n ON n.id = p.path_id LEFT JOIN span_mem m ON m.span_id = "  \
                  "p.id AND m.first_snap <= " at " AND m.last_snap >= " at " "

/* The target's spans whose figures changed after ?2 up to ?3: a new span_mem interval began. */
#define MEM_CHANGED                                                                                \
    "p.id IN (SELECT span_id FROM span_mem WHERE span_id BETWEEN ?4 AND ?5 AND first_snap > ?2 "   \
    "AND first_snap <= ?3) AND p.first_snap <= ?2 "

int store_read_delta_mem(struct store *st, int64_t target_id, int64_t a, int64_t b,
                         struct region_list *ra, struct region_list *rb, struct err *e)
{
    /* At a: the regions gone by b, and those alive at both whose figures changed. */
    static const char *a_sql = SPAN_MEM_COLS(
        "spans", "?2") "WHERE p.target_id = ?1 AND p.last_snap >= ?2 AND "
                       "p.last_snap < ?3 AND p.first_snap <= ?2 "
                       "UNION ALL " SPAN_MEM_COLS(
                           "spans_open", "?2") "WHERE p.id BETWEEN ?4 AND ?5 AND " MEM_CHANGED
                                               "UNION ALL " SPAN_MEM_COLS(
                                                   "spans",
                                                   "?2") "WHERE p.target_id = ?1 AND "
                                                         "p.last_snap >= ?3 AND " MEM_CHANGED;
    /* At b: the regions born after a, and the same changed ones. */
    static const char *b_sql = SPAN_MEM_COLS(
        "spans_open",
        "?3") "WHERE p.id BETWEEN ?4 AND ?5 AND p.first_snap > ?2 AND "
              "p.first_snap <= ?3 "
              "UNION ALL " SPAN_MEM_COLS(
                  "spans", "?3") "WHERE p.target_id = ?1 AND p.last_snap >= ?3 "
                                 "AND p.first_snap > ?2 AND p.first_snap <= ?3 "
                                 "UNION ALL " SPAN_MEM_COLS(
                                     "spans_open",
                                     "?3") "WHERE p.id BETWEEN ?4 AND ?5 AND " MEM_CHANGED
                                           "UNION ALL " SPAN_MEM_COLS(
                                               "spans", "?3") "WHERE p.target_id = ?1 AND "
                                                              "p.last_snap >= ?3 AND " MEM_CHANGED;
    const int64_t params[] = {target_id, a, b, target_id << 32, (target_id << 32) + 0xffffffffLL};
    const char *what = "cannot read the snapshots' differences";
    int rc = read_regions(st, a_sql, params, 5, 0, what, ra, e);
    if (rc < 0)
        return rc;
    return read_regions(st, b_sql, params, 5, 0, what, rb, e);
}

void store_target_release(struct store_target *t)
{
    free(t->exe);
    free(t->cmdline);
    free(t->host);
    free(t->os);
    free(t->boot_id);
    free(t->first_seen);
    memset(t, 0, sizeof(*t));
}

void store_snapshot_release(struct store_snapshot *s)
{
    free(s->taken_at);
    free(s->label);
    free(s->detail);
    free(s->method);
    memset(s, 0, sizeof(*s));
}

#define TARGET_COLS                                                                                \
    "id, pid, start_time, exe, cmdline, host, os, boot_id, first_seen, parent_target_id"
#define SNAPSHOT_COLS                                                                              \
    "id, target_id, seq, taken_at, label, region_count, mapped_bytes, rss_bytes, pss_bytes, "      \
    "private_dirty_bytes, anon_bytes, swap_bytes, detail, method, torn, retries, mark"

static void row_to_target(sqlite3_stmt *s, struct store_target *t)
{
    memset(t, 0, sizeof(*t));
    t->id = sqlite3_column_int64(s, 0);
    t->pid = sqlite3_column_int64(s, 1);
    t->start_time = (uint64_t)sqlite3_column_int64(s, 2);
    t->exe = store_col_text(s, 3);
    t->cmdline = store_col_text(s, 4);
    t->host = store_col_text(s, 5);
    t->os = store_col_text(s, 6);
    t->boot_id = store_col_text(s, 7);
    t->first_seen = store_col_text(s, 8);
    t->parent_target_id = sqlite3_column_int64(s, 9);
}

static void row_to_snapshot(sqlite3_stmt *s, struct store_snapshot *o)
{
    memset(o, 0, sizeof(*o));
    o->id = sqlite3_column_int64(s, 0);
    o->target_id = sqlite3_column_int64(s, 1);
    o->seq = sqlite3_column_int64(s, 2);
    o->taken_at = store_col_text(s, 3);
    o->label = store_col_text(s, 4);
    o->region_count = sqlite3_column_int64(s, 5);
    o->mapped_bytes = (uint64_t)sqlite3_column_int64(s, 6);
    o->have_mem = sqlite3_column_type(s, 7) != SQLITE_NULL;
    o->rss_bytes = (uint64_t)sqlite3_column_int64(s, 7);
    o->pss_bytes = (uint64_t)sqlite3_column_int64(s, 8);
    o->private_dirty_bytes = (uint64_t)sqlite3_column_int64(s, 9);
    o->anon_bytes = (uint64_t)sqlite3_column_int64(s, 10);
    o->swap_bytes = (uint64_t)sqlite3_column_int64(s, 11);
    o->detail = store_col_text(s, 12);
    o->method = store_col_text(s, 13);
    o->torn = sqlite3_column_int(s, 14);
    o->retries = sqlite3_column_int64(s, 15);
    o->mark =
        sqlite3_column_type(s, 16) == SQLITE_NULL ? STORE_NO_MARK : sqlite3_column_int64(s, 16);
}

/* Reads the row with this id; noun names it in errors ("target", "snapshot"). */
static int get_by_id(struct store *st, const char *sql, int64_t id, const char *noun,
                     void (*fill)(sqlite3_stmt *s, void *out), void *out, struct err *e)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        fill(s, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(e, ERR_NOTFOUND, "no %s with id %lld in '%s'", noun, (long long)id, st->path);
    } else {
        rc = store_sql_err(st, rc, "cannot read the database", sql, e);
    }
    sqlite3_finalize(s);
    return rc;
}

static void fill_target(sqlite3_stmt *s, void *out)
{
    row_to_target(s, out);
}

static void fill_snapshot(sqlite3_stmt *s, void *out)
{
    row_to_snapshot(s, out);
}

int store_target_get(struct store *st, int64_t id, struct store_target *out, struct err *e)
{
    return get_by_id(st, "SELECT " TARGET_COLS " FROM targets WHERE id = ?", id, "target",
                     fill_target, out, e);
}

int store_snapshot_get(struct store *st, int64_t id, struct store_snapshot *out, struct err *e)
{
    return get_by_id(st, "SELECT " SNAPSHOT_COLS " FROM snapshots WHERE id = ?", id, "snapshot",
                     fill_snapshot, out, e);
}

/* Runs sql (one int64 parameter per non-zero bind, in order) and returns the first column of
 * its first row in *out; 1 when there is no row. */
int store_query_i64(struct store *st, const char *sql, int64_t a, int64_t b, int64_t *out,
                    struct err *e)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, sql, &s, e);
    if (rc < 0)
        return rc;
    if (sqlite3_bind_parameter_count(s) >= 1)
        sqlite3_bind_int64(s, 1, a);
    if (sqlite3_bind_parameter_count(s) >= 2)
        sqlite3_bind_int64(s, 2, b);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *out = sqlite3_column_int64(s, 0);
        rc = 0;
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        rc = 1;
    } else {
        rc = store_sql_err(st, rc, "cannot resolve the snapshot", sql, e);
    }
    sqlite3_finalize(s);
    return rc;
}

int store_list(struct store *st, int64_t target_id, const struct store_list_cb *cb, struct err *e)
{
    static const char *tsql =
        "SELECT " TARGET_COLS " FROM targets WHERE ?1 = 0 OR id = ?1 ORDER BY id";
    static const char *ssql =
        "SELECT " SNAPSHOT_COLS " FROM snapshots WHERE target_id = ? ORDER BY seq";
    sqlite3_stmt *ts = NULL, *ss = NULL;
    int rc = store_prepare(st, tsql, &ts, e), found = 0;
    if (rc < 0)
        return rc;
    if ((rc = store_prepare(st, ssql, &ss, e)) < 0)
        goto out;
    sqlite3_bind_int64(ts, 1, target_id);
    while ((rc = sqlite3_step(ts)) == SQLITE_ROW) {
        struct store_target t;
        row_to_target(ts, &t);
        found = 1;
        int cbrc = cb->target ? cb->target(cb->ctx, &t) : 0;
        sqlite3_bind_int64(ss, 1, t.id);
        while (cbrc == 0 && (rc = sqlite3_step(ss)) == SQLITE_ROW) {
            struct store_snapshot snap;
            row_to_snapshot(ss, &snap);
            cbrc = cb->snapshot ? cb->snapshot(cb->ctx, &snap) : 0;
            store_snapshot_release(&snap);
        }
        sqlite3_reset(ss);
        if (cbrc == 0 && cb->target_end)
            cbrc = cb->target_end(cb->ctx, &t);
        store_target_release(&t);
        if (cbrc != 0) {
            rc = err_set(e, ERR_IO, "cannot write the listing");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        rc = store_sql_err(st, rc, "cannot list the database", tsql, e);
        goto out;
    }
    rc = 0;
    if (target_id && !found)
        rc = err_set(e, ERR_NOTFOUND, "no target with id %lld in '%s'", (long long)target_id,
                     st->path);
out:
    sqlite3_finalize(ts);
    sqlite3_finalize(ss);
    return rc;
}

static int only_space_or_comments(const char *p)
{
    while (*p) {
        if (isspace((unsigned char)*p) || *p == ';') {
            p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            if (!end)
                return 1;
            p = end + 2;
        } else {
            return 0;
        }
    }
    return 1;
}

/* PRAGMAs that only report on the database and may be asked without a value. */
static const char *const read_pragmas[] = {
    "table_info",      "table_xinfo",      "table_list",     "index_list",     "index_info",
    "index_xinfo",     "foreign_key_list", "page_count",     "page_size",      "freelist_count",
    "application_id",  "user_version",     "schema_version", "journal_mode",   "encoding",
    "compile_options", "function_list",    "pragma_list",    "collation_list", "module_list",
    "integrity_check", "quick_check",      "data_version",
};
static const char *const pragmas_with_argument[] = {
    "table_info",  "table_xinfo",      "table_list",      "index_list",  "index_info",
    "index_xinfo", "foreign_key_list", "integrity_check", "quick_check",
};

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sqlite3_stricmp(name, list[i]) == 0)
            return 1;
    return 0;
}

/*
 * What a user's query may do: read this database, call functions, and ask the PRAGMAs that only
 * report. No ATTACH (another file, or a new one), no PRAGMA that changes anything
 * (writable_schema, journal_mode = ...), nothing that writes.
 */
static int query_authorizer(void *ctx, int action, const char *a, const char *b, const char *db,
                            const char *trigger)
{
    (void)ctx;
    (void)trigger;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_FUNCTION:
        /* fts3_tokenizer('x') answers with a pointer into vmsnap (an address, defeating ASLR). */
        return b && (sqlite3_stricmp(b, "fts3_tokenizer") == 0 ||
                     sqlite3_stricmp(b, "load_extension") == 0)
                   ? SQLITE_DENY
                   : SQLITE_OK;
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_READ:
        return db && strcmp(db, "main") != 0 && strcmp(db, "temp") != 0 ? SQLITE_DENY : SQLITE_OK;
    case SQLITE_PRAGMA:
        if (!a || !in_list(a, read_pragmas, sizeof(read_pragmas) / sizeof(read_pragmas[0])))
            return SQLITE_DENY;
        if (b && !in_list(a, pragmas_with_argument,
                          sizeof(pragmas_with_argument) / sizeof(pragmas_with_argument[0])))
            return SQLITE_DENY;
        return SQLITE_OK;
    default:
        return SQLITE_DENY;
    }
}

/* What to add to an error that the authorizer caused. */
static const char *auth_hint(struct store *st, int rc)
{
    if ((rc & 0xff) == SQLITE_AUTH || strcmp(sqlite3_errmsg(st->db), "not authorized") == 0)
        return " -- query runs read-only SQL on this database alone (use sqlite3 for anything "
               "else)";
    return "";
}

static int query_run(struct store *st, const char *sql, const struct store_query_cb *cb,
                     int64_t deadline, struct err *e);

/* Stops a query at its deadline (monotonic microseconds). */
static int past_deadline(void *ctx)
{
    return plat_monotonic_us() > *(const int64_t *)ctx;
}

/* What to add to an error the limits caused. */
static const char *limit_hint(struct store *st, int rc, int64_t deadline)
{
    if ((rc & 0xff) == SQLITE_INTERRUPT && deadline && plat_monotonic_us() > deadline)
        return " -- it ran longer than --timeout allows (0: no limit)";
    if ((rc & 0xff) == SQLITE_NOMEM || (rc & 0xff) == SQLITE_TOOBIG)
        return " -- it needs more memory than --max-memory allows for its temporary results";
    return auth_hint(st, rc);
}

int store_query(struct store *st, const char *sql, const struct store_query_cb *cb, struct err *e)
{
    int64_t deadline = cb->timeout_ms > 0 ? plat_monotonic_us() + cb->timeout_ms * 1000 : 0;
    int64_t heap_before = sqlite3_hard_heap_limit64(-1);
    /* query_only makes the connection refuse writes, whatever the statement claims. */
    int rc = store_exec(st, "PRAGMA query_only = 1", e);
    if (rc < 0)
        return rc;
    /* Temporary results (a sort, DISTINCT, a materialised view) go to memory under the limit,
     * not to files that could fill a disk (1.6 GB in 8 s). */
    if (cb->max_memory > 0) {
        if ((rc = store_exec(st, "PRAGMA temp_store = MEMORY", e)) < 0)
            return rc;
        sqlite3_hard_heap_limit64(cb->max_memory);
    }
    if (deadline)
        sqlite3_progress_handler(st->db, 1000, past_deadline, &deadline);
    rc = query_run(st, sql, cb, deadline, e);
    sqlite3_progress_handler(st->db, 0, NULL, NULL);
    if (cb->max_memory > 0)
        sqlite3_hard_heap_limit64(heap_before);
    return rc;
}

static int query_run(struct store *st, const char *sql, const struct store_query_cb *cb,
                     int64_t deadline, struct err *e)
{
    sqlite3_stmt *s = NULL;
    const char *tail = NULL;
    int rc;
    sqlite3_set_authorizer(st->db, query_authorizer, NULL);
    rc = sqlite3_prepare_v2(st->db, sql, -1, &s, &tail);
    /* Checked when statements are prepared (and re-prepared): ours need no such checks. */
    sqlite3_set_authorizer(st->db, NULL, NULL);
    if (rc != SQLITE_OK)
        return err_set(e, ERR_USAGE, "query failed: %s%s", sqlite3_errmsg(st->db),
                       limit_hint(st, rc, deadline));
    if (!s)
        return err_set(e, ERR_USAGE, "query failed: no SQL statement given");
    if (tail && !only_space_or_comments(tail)) {
        sqlite3_finalize(s);
        return err_set(e, ERR_USAGE, "query failed: give one SQL statement at a time");
    }
    if (!sqlite3_stmt_readonly(s)) {
        sqlite3_finalize(s);
        return err_set(e, ERR_USAGE,
                       "query failed: only read-only SQL is allowed (use sqlite3 to change the "
                       "database)");
    }
    int n = sqlite3_column_count(s);
    const char **names = xcalloc((size_t)n + 1, sizeof(*names));
    struct store_value *vals = xcalloc((size_t)n + 1, sizeof(*vals));
    for (int i = 0; i < n; i++)
        names[i] = sqlite3_column_name(s, i);
    if (cb->columns && cb->columns(cb->ctx, n, names) != 0) {
        rc = err_set(e, ERR_IO, "cannot write the query result");
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            struct store_value *v = &vals[i];
            memset(v, 0, sizeof(*v));
            switch (sqlite3_column_type(s, i)) {
            case SQLITE_INTEGER:
                v->type = STORE_INT;
                v->i = sqlite3_column_int64(s, i);
                break;
            case SQLITE_FLOAT:
                v->type = STORE_REAL;
                v->r = sqlite3_column_double(s, i);
                break;
            case SQLITE_TEXT:
                v->type = STORE_TEXT;
                v->s = (const char *)sqlite3_column_text(s, i);
                v->len = sqlite3_column_bytes(s, i);
                break;
            case SQLITE_BLOB:
                v->type = STORE_BLOB;
                v->s = sqlite3_column_blob(s, i);
                v->len = sqlite3_column_bytes(s, i);
                break;
            default:
                v->type = STORE_NULL;
            }
        }
        if (cb->row && cb->row(cb->ctx, n, vals) != 0) {
            rc = err_set(e, ERR_IO, "cannot write the query result");
            goto out;
        }
    }
    if (rc != SQLITE_DONE)
        rc = err_set(e, ERR_USAGE, "query failed: %s%s", sqlite3_errmsg(st->db),
                     limit_hint(st, rc, deadline));
    else
        rc = 0;
out:
    free(names);
    free(vals);
    sqlite3_finalize(s);
    return rc;
}
