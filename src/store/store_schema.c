/*
 * The schema a vmsnap database must have: what vmsnap's migrations make for its version (the
 * reference embedded at build time), give or take a user's own tables, indexes and views.
 */
#include <stdlib.h>
#include <string.h>

#include "store/migrations.h"
#include "store/schema_reference.h"
#include "store/store_internal.h"
#include "util/xalloc.h"

struct schema {
    size_t n;
    char **key, **sql; /* "type name" and its CREATE statement, sorted by key */
};

static void schema_release(struct schema *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->key[i]);
        free(s->sql[i]);
    }
    free(s->key);
    free(s->sql);
    memset(s, 0, sizeof(*s));
}

/* Reads db's schema into out: SQLITE_OK or SQLite's error. */
static int schema_read(sqlite3 *db, const char *schema_name, struct schema *out)
{
    sqlite3_stmt *stmt = NULL;
    char *sql = sqlite3_mprintf("SELECT type || ' ' || name, coalesce(sql, '') FROM "
                                "\"%w\".sqlite_schema ORDER BY 1",
                                schema_name);
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    sqlite3_free(sql);
    size_t cap = 0;
    memset(out, 0, sizeof(*out));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(stmt)) != SQLITE_ROW)
            break;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 32;
            out->key = xreallocarray(out->key, cap, sizeof(*out->key));
            out->sql = xreallocarray(out->sql, cap, sizeof(*out->sql));
        }
        out->key[out->n] = store_col_text(stmt, 0);
        out->sql[out->n] = store_col_text(stmt, 1);
        if (!out->key[out->n])
            out->key[out->n] = xstrdup("");
        out->n++;
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_DONE)
        return SQLITE_OK;
    schema_release(out);
    return rc;
}

/* Undoes the escapes of schema/reference.txt (backslash n, t, or itself) in the n bytes at s. */
static char *unescape(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            *o++ = s[i + 1] == 'n' ? '\n' : s[i + 1] == 't' ? '\t' : s[i + 1];
            i++;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/*
 * The schema vmsnap's own migrations make at version, from schema/reference.txt (embedded at
 * build time; test_store checks it against the migrations), read once and kept. Building it
 * from the migrations at every open cost 3-5 ms.
 */
static const struct schema *reference_schema(int version)
{
    static struct schema made[64];
    static int done[64];
    if (version <= 0 || version >= 64)
        return NULL;
    if (done[version])
        return &made[version];
    struct schema *sc = &made[version];
    size_t cap = 0;
    for (const char *p = store_schema_reference, *end = p + store_schema_reference_len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *t1 = memchr(p, '\t', (size_t)(line_end - p));
        const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(line_end - t1 - 1)) : NULL;
        if (*p != '#' && t2 && atoi(p) == version) {
            if (sc->n == cap) {
                cap = cap ? 2 * cap : 32;
                sc->key = xreallocarray(sc->key, cap, sizeof(*sc->key));
                sc->sql = xreallocarray(sc->sql, cap, sizeof(*sc->sql));
            }
            sc->key[sc->n] = xstrndup(t1 + 1, (size_t)(t2 - t1 - 1));
            sc->sql[sc->n] = unescape(t2 + 1, (size_t)(line_end - t2 - 1));
            sc->n++;
        }
        p = line_end + 1;
    }
    if (!sc->n)
        return NULL;
    done[version] = 1;
    return sc;
}

/* What a file may hold besides vmsnap's own objects: a user's table, index or view (they run
 * nothing when vmsnap reads or writes), and SQLite's statistics. Never a trigger or a virtual
 * table, whose code would run. */
static int extra_allowed(const char *key, const char *sql)
{
    if (strncmp(key, "trigger ", 8) == 0)
        return 0;
    if (sqlite3_strnicmp(sql, "CREATE VIRTUAL", 14) == 0)
        return 0;
    return strncmp(key, "table ", 6) == 0 || strncmp(key, "index ", 6) == 0 ||
           strncmp(key, "view ", 5) == 0;
}

int store_check_schema(sqlite3 *db, const char *schema_name, const char *path, int version,
                       struct err *e)
{
    const struct schema *ref = reference_schema(version);
    struct schema got;
    if (!ref)
        return err_set(e, ERR_DB, "cannot check '%s': vmsnap's own schema %d does not build", path,
                       version);
    int rc = schema_read(db, schema_name, &got);
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
            return err_set(e, ERR_LOCKED,
                           "cannot open the database: database '%s' is locked by another "
                           "process -- try again later",
                           path);
        return err_set(e, ERR_CORRUPT,
                       "'%s' is damaged (%s) -- copy out what it holds with 'sqlite3 %s "
                       ".recover'",
                       path, sqlite3_errmsg(db), path);
    }
    /* Both lists are sorted by key: walk them side by side to the first difference. */
    const char *what = NULL, *before = NULL, *after = NULL;
    size_t i = 0, j = 0;
    while (!what && (i < ref->n || j < got.n)) {
        int c = i == ref->n ? 1 : j == got.n ? -1 : strcmp(ref->key[i], got.key[j]);
        if (c < 0) {
            what = ref->key[i], before = "it lacks vmsnap's ", after = "";
        } else if (c > 0) {
            if (!extra_allowed(got.key[j], got.sql[j]))
                what = got.key[j], before = "it holds a ", after = ", which vmsnap never makes";
            j++;
        } else {
            if (strcmp(ref->sql[i], got.sql[j]) != 0)
                what = ref->key[i], before = "its ", after = " is not the one vmsnap makes";
            i++, j++;
        }
    }
    rc = 0;
    if (what) {
        const char *name = strchr(what, ' ');
        rc = err_set(e, ERR_NOTVMSNAP,
                     "refusing '%s': %s%.*s '%s'%s -- a crafted or hand-edited file; copy what "
                     "you need out of it with sqlite3",
                     path, before, (int)strcspn(what, " "), what, name ? name + 1 : "", after);
    }
    schema_release(&got);
    return rc;
}
