/* The snapshot writer's state, shared by store_write.c and store_write_rows.c; not part of the
 * store's interface. */
#ifndef VMSNAP_STORE_WRITER_H
#define VMSNAP_STORE_WRITER_H

#include "store/store_internal.h"

enum {
    S_SNAPSHOT,
    S_SPAN_MOVE,
    S_SPAN_DROP,
    S_SPAN_OPEN,
    S_MEM_CLOSE,
    S_MEM_OPEN,
    S_PATH_FIND,
    S_PATH_ADD,
    S_HEAD,
    S_LABEL,
    S_CAT_CLOSE,
    S_CAT_OPEN,
    S_CAT_LOAD,
    S_CAT_CLASS,
    S_MARK_TAKEN,
    S_SPAN_BATCH, /* SPAN_BATCH new regions at once */
    S_COUNT
};

/* New regions are inserted this many to a statement: a first snapshot inserts tens of
 * thousands, and one row per statement costs a step, a reset and 16 binds' bookkeeping each. */
#define SPAN_BATCH 32

/* Bound per new region: ?1 is the target and ?2 the snapshot, once per statement; row k's
 * values are its id at SPAN_PARAM(k, -1) and its region columns at SPAN_PARAM(k, RCOL_...). */
#define SPAN_VALUES (1 + RCOL_RSS)

#define SPAN_TARGET_PARAM 1

#define SPAN_SNAP_PARAM 2

#define SPAN_PARAM(k, col) (3 + (k)*SPAN_VALUES + 1 + (col))

/* A category's totals, as in its open category_spans row. */
struct cat_totals {
    int64_t first; /* first_snap of the open row; 0 when there is none */
    int64_t regions;
    uint64_t mapped, committed, rss; /* bytes */
    int has_rss;
};

/* An open-addressing map from path text to its paths.id, so known names cost no SQL. */
struct path_map {
    struct path_slot {
        char *path; /* owned */
        uint32_t len;
        int64_t id;
    } * slots;
    size_t cap, n; /* cap is a power of two */
};

/* The writers' statements, prepared once per open store and shared by every writer on it
 * (a recording of a tree has one writer per process): each use binds all it needs and resets. */
struct store_writer_stmts {
    int refs; /* writers open */
    struct store_stmt stmt[S_COUNT];
    char *span_sql[2]; /* the SQL of S_SPAN_OPEN and S_SPAN_BATCH */
};

struct store_writer {
    struct store *st;
    struct store_stmt *stmt; /* st's shared writer statements, S_COUNT of them */
    const struct capture_target *target;
    int64_t target_id; /* 0 until the target's row exists */
    int64_t parent_target_id;
    const char *origin; /* STORE_ORIGIN_..., static; NULL when not known */
    int64_t last_snap;  /* id of the target's newest snapshot, 0 if none */
    int64_t last_seq;
    int stale;       /* the state below must be loaded again from what is committed */
    int64_t next_id; /* id for the next new region: (target_id << 32) + n */
    int titled;      /* the target's command line is written as this writer saw it */
    /* The alive regions as of last_snap, sorted by start, with their span ids: own (loaded or
     * copied) or a list lent by the caller (store_snap_opts.lend), unchanged since its write
     * while its generation is alive_gen. */
    const struct region_list *alive;
    uint64_t alive_gen;
    struct region_list own;
    int64_t *span_id;
    int64_t *mem_first; /* first_snap of the open span_mem row, 0 when none */
    size_t id_cap;
    /* Scratch for the next state, swapped in on commit. */
    struct region_list next;
    int64_t *next_span_id, *next_mem_first; /* filled only when keep */
    int keep; /* a write builds on this one: keep its state (a snap's last write does not) */
    size_t next_cap;
    struct path_map paths;
    struct cat_totals cats[CAT_COUNT]; /* as of last_snap */
    /* New regions waiting to be inserted, SPAN_BATCH at a time. */
    struct queued_span {
        const struct region *r;
        int64_t id, path;
        char dev[24]; /* the bound device text lives here until the statement runs */
    } queue[SPAN_BATCH];
    int queued;
};

static inline int store_writer_run(struct store_writer *w, int k, struct err *e)
{
    return store_stmt_run(&w->stmt[k], e);
}

void store_path_map_release(struct path_map *m);
/* Merges the alive spans with the new capture l by address and writes the difference of
 * snapshot snap; *changed says whether anything opened, closed or changed its figures. */
int store_writer_delta(struct store_writer *w, const struct region_list *l, int64_t snap,
                       int *changed, struct err *e);
/* Writes the category totals of l that changed since last_snap into next (CAT_COUNT). */
int store_writer_categories(struct store_writer *w, const struct region_list *l,
                            const struct capture_info *info, int64_t snap, struct cat_totals *next,
                            struct err *e);

#endif
