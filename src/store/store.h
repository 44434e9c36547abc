/*
 * The SQLite store: all SQL lives in src/store. A snapshot is written as the difference from the
 * target's previous one (regions are intervals of snapshots); readers see the regions view.
 */
#ifndef VMSNAP_STORE_H
#define VMSNAP_STORE_H

#include <stdint.h>

#include "capture/capture.h"
#include "model/region.h"
#include "util/err.h"

#define STORE_APPLICATION_ID 0x766d736e /* "vmsn" */
#define STORE_OPEN_SPAN      INT64_MAX  /* last_snap of a region that is still alive */

enum store_mode {
    STORE_READ = 0,  /* the file must exist; never created */
    STORE_WRITE = 1, /* created (mode 0600) when missing */
};

struct store;

/* Opens (and migrates) a vmsnap database. Foreign or newer files are refused untouched. */
int store_open(struct store **out, const char *path, int mode, struct err *e);
/* Like store_open, but migrates only up to version max_version (tests of migration). */
int store_open_version(struct store **out, const char *path, int mode, int max_version,
                       struct err *e);
void store_close(struct store *st);
/* Called once when migrating the file at path from schema `from` to `to` has taken after_us
 * microseconds (a long recording's indexes are being built, once): the CLI says so after a
 * second, so a user does not take the wait for a hang. NULL (the default) says nothing. */
void store_on_slow_migration(void (*notice)(const char *path, int from, int to), int64_t after_us);
int store_schema_version(void);
const char *store_path(const struct store *st);

/* Finds or adds the target row for t, first seen at seen_ms (Unix milliseconds), forked by
 * target parent_target_id (0: none known), come to as origin says (STORE_ORIGIN_..., or NULL
 * when not known). */
int store_target_ensure(struct store *st, const struct capture_target *t, int64_t seen_ms,
                        int64_t parent_target_id, const char *origin, int64_t *target_id,
                        struct err *e);
/* How a recording came to a target (targets.origin). */
#define STORE_ORIGIN_LAUNCHED "launched" /* record -- CMD */
#define STORE_ORIGIN_FORKED   "forked"   /* seen at its fork */
#define STORE_ORIGIN_FOUND    "found"    /* already running */
#define STORE_ORIGIN_EXEC     "exec"     /* a followed process's new program, from its exec */
/* The target's command line as it reads now (targets.cmdline holds the latest). */
int store_target_retitle(struct store *st, int64_t target_id, const char *cmdline, struct err *e);
/* Notes that the target was seen to exit at at_ms (Unix milliseconds). */
int store_target_exited(struct store *st, int64_t target_id, int64_t at_ms, struct err *e);

/*
 * Whether path is the database at db (1) or a file SQLite keeps beside it (2: -wal, -shm,
 * -journal), by name or as the same file under another name (a hard link); 0 otherwise.
 * Writing such a path would destroy the recording.
 */
int store_names_its_file(const char *db, const char *path);

/*
 * Whether the database is still at its name: 0, or (it was moved, or deleted) an error that says
 * where what was recorded is now. A deleted file is written again at its name when it can be.
 * A recorder asks before each write, so a recording never goes on into a file nobody can find.
 */
int store_check_place(struct store *st, struct err *e);

/*
 * One transaction around several writes (an import of many files): every snapshot written
 * meanwhile is committed by store_commit, or none is (store_rollback, or the process dying).
 * Transactions nest: one begun inside another is a savepoint of it.
 */
int store_begin(struct store *st, struct err *e);
int store_commit(struct store *st, struct err *e);
void store_rollback(struct store *st);

/*
 * Writes snapshots of one target as deltas; keeps the target's alive regions in memory. t must
 * outlive the writer. A target seen for the first time gets its row in the transaction of its
 * first snapshot, so a process that never yields a snapshot leaves nothing behind.
 */
struct store_writer;
int store_writer_open(struct store *st, const struct capture_target *t, struct store_writer **out,
                      struct err *e);
/* The target's id, or 0 before its first snapshot is written. */
int64_t store_writer_target(const struct store_writer *w);
/* The target that forked this one, recorded with its row when its first snapshot is written. */
void store_writer_set_parent(struct store_writer *w, int64_t parent_target_id);
/* How the recording came to the target (STORE_ORIGIN_...), written with its row. */
void store_writer_set_origin(struct store_writer *w, const char *origin);
/*
 * How a label that the target already uses is handled: an exact label is refused (ERR_USAGE);
 * a generated one is made unique with a "-2", "-3", ... suffix.
 */
enum store_label_mode { STORE_LABEL_EXACT = 0, STORE_LABEL_UNIQUE = 1 };

/* What a snapshot is besides its regions. */
struct store_snap_opts {
    const char *label; /* NULL for none */
    int label_mode;    /* enum store_label_mode */
    /* STORE_NO_MARK for a scheduled snapshot, 0 for a recorder's own mark (SIGUSR1), or the
     * id of the `vmsnap mark` it answers; then recorder (its id) has taken that mark. */
    int64_t mark;
    int64_t recorder;
    int last; /* no write follows through this writer: it need not keep its state */
    /* The list written stays as it is until the next write (region_list_clear marks it
     * refilled): the writer keeps it as its state instead of a copy. */
    int lend;
};
#define STORE_NO_MARK (-1)

/*
 * Writes one snapshot of list in one transaction. Its seq, and its delta, are taken from what is
 * committed when the transaction starts, so other processes may write snapshots of the same
 * target in between (a snap while a recording runs). On failure nothing of it is visible and the
 * next write starts again from what is committed; ERR_LOCKED means another process held the
 * database for too long, and the same list may be written again later.
 */
int store_writer_write(struct store_writer *w, const struct region_list *list,
                       const struct capture_info *info, const struct store_snap_opts *o,
                       int64_t duration_us, int64_t *snap_id, struct err *e);
/* A caller's transaction that held writes of w was rolled back: what w knows of the target is
 * read again from what is committed at its next write (a target created in it is gone). */
int store_writer_rolled_back(struct store_writer *w, struct err *e);
void store_writer_close(struct store_writer *w);

struct store_target {
    int64_t id, pid;
    int64_t parent_target_id; /* 0: none */
    uint64_t start_time;
    char *exe, *cmdline, *host, *os, *boot_id, *first_seen; /* owned; NULL when absent */
    char *origin, *exited_at;                               /* owned; NULL when not known */
};

struct store_snapshot {
    int64_t id, target_id, seq;
    char *taken_at, *label, *detail, *method; /* owned; label may be NULL */
    int64_t region_count;
    uint64_t mapped_bytes;
    int have_mem; /* the rss/pss/... totals below are known */
    uint64_t rss_bytes, pss_bytes, private_dirty_bytes, anon_bytes, swap_bytes;
    int torn;
    int64_t retries;
    int64_t mark; /* STORE_NO_MARK, 0 for a recorder's own mark, or the id of a `vmsnap mark` */
};

void store_target_release(struct store_target *t);
void store_snapshot_release(struct store_snapshot *s);

int store_target_get(struct store *st, int64_t id, struct store_target *out, struct err *e);
int store_snapshot_get(struct store *st, int64_t id, struct store_snapshot *out, struct err *e);

/* A snapshot selector, parsed: which kind, and its number or label. */
enum store_selector_kind { STORE_SEL_ID, STORE_SEL_FIRST, STORE_SEL_LAST, STORE_SEL_LABEL };
struct store_selector {
    int kind;          /* enum store_selector_kind */
    int64_t n;         /* ID: the id (-1: past any id); LAST: N of last~N (0 for last) */
    const char *label; /* LABEL: the text parsed (not a copy) */
};
/* Parses an id, first, last, last~N, or else a label: 0, or ERR_USAGE (empty, or last~ with
 * no whole number after it). FILE:SNAP is split off first (store_selector_split_file). */
int store_selector_parse(const char *text, struct store_selector *out, struct err *e);
/* FILE:SNAP, where FILE is an existing regular file: *file set (caller frees) and SNAP
 * returned; else *file NULL and arg itself. */
const char *store_selector_split_file(const char *arg, char **file);

/*
 * The one rule for labels, kept by every command that makes them (snap, record --label-prefix,
 * mark, import): not empty, at most STORE_LABEL_MAX bytes, and what store_selector_parse reads
 * as a label -- not an id, first, last, last~..., nor holding ':' (FILE:SNAP). 0, or ERR_USAGE
 * with the one wording all of them print.
 */
#define STORE_LABEL_MAX 200
int store_label_check(const char *label, struct err *e);

/*
 * Resolves a snapshot selector: an id, "first", "last", "last~N", or a label. first/last are of
 * target_id when it is not 0, else of the default target: the newest recording's root (the
 * target of the newest snapshot, climbed through the processes that forked it). A label only
 * another target has is named with that target; one that several targets have, asked without
 * target_id, is refused (ERR_USAGE) with them named.
 */
int store_resolve(struct store *st, const char *selector, int64_t target_id, int64_t *snap_id,
                  struct err *e);

/* The root of target's recorded tree: the target, climbed through the recorded processes that
 * forked it. */
int store_root_of(struct store *st, int64_t target, int64_t *root, struct err *e);
/* The targets of root's tree with snapshots (root and every process it forked, as recorded), by
 * id; *ids is the caller's to free. */
int store_tree(struct store *st, int64_t root, int64_t **ids, size_t *n, struct err *e);
/* The first and last snapshots of target taken within the times of snapshots from and to
 * (ids): 0, or 1 when it has none then. */
int store_window(struct store *st, int64_t target, int64_t from, int64_t to, int64_t *first,
                 int64_t *last, struct err *e);

/*
 * Resolves two selectors that must name snapshots of one process or be compared as such (diff
 * A B): with target_id, both within it; else a selector that counts within a target (first,
 * last, last~N) counts within the target the other one names, or, when both count, within the
 * default target (the newest recording's root).
 */
int store_resolve_pair(struct store *st, int64_t target_id, const char *sel_a, const char *sel_b,
                       int64_t *a, int64_t *b, struct err *e);

/*
 * Resolves a range of one target's snapshots (--target, --from, --to; NULL selectors mean first
 * and last), as store_resolve_pair does. ERR_USAGE when from comes after to, or when the two
 * are of different targets.
 */
int store_resolve_range(struct store *st, int64_t target_id, const char *from_sel,
                        const char *to_sel, int64_t *target, int64_t *from, int64_t *to,
                        struct err *e);

/*
 * Call stacks (record --stacks): the calls that changed a target's address space, and the
 * stacks that made them. A stack is stored once, with its raw frames and the names they had
 * when it was recorded.
 */
struct store_frame {
    const char *module;   /* the module's file; "" when unknown */
    const char *build_id; /* hex; "" when none */
    uint64_t offset;      /* in the module's ELF file */
    const char *function; /* NULL: not known */
    const char *file;
    int line;
};
struct store_events;
int store_events_open(struct store *st, struct store_events **out, struct err *e);
/* The stack whose raw frames are key (len bytes, as the recorder compares stacks): its id in
 * *id, added with its n frames when the database has no such stack. */
int store_stack_add(struct store_events *w, const void *key, size_t len,
                    const struct store_frame *f, int n, int64_t *id, struct err *e);
/* The id of the stack whose raw frames are key: 1 with *id, 0 when there is none, or an error. */
int store_stack_find(struct store_events *w, const void *key, size_t len, int64_t *id,
                     struct err *e);
/* One call, as events holds it: -1 in prot, flags or new_size is NULL; stack_id 0 is none. */
struct store_event {
    int64_t target_id, tid;
    int64_t at_ms; /* Unix milliseconds */
    const char *call;
    uint64_t start, end;
    int64_t prot, flags, new_size;
    int64_t result;
    int64_t stack_id;
};
int store_event_add(struct store_events *w, const struct store_event *ev, struct err *e);
void store_events_close(struct store_events *w);

/* Calls cb with each event of target returned at or before snapshot upto's time, in the order
 * they were made; in_range says whether it came after snapshot after's time (0: none). */
int store_events_each(struct store *st, int64_t target_id, int64_t after, int64_t upto,
                      int (*cb)(void *ctx, const struct store_event *ev, int in_range), void *ctx,
                      struct err *e);
/* Whether target has any events recorded: 1, 0, or an error. */
int store_events_any(struct store *st, int64_t target_id, struct err *e);
/* A stack's frames, innermost first (*v and its strings the caller's: store_frames_free). */
int store_stack_frames(struct store *st, int64_t stack_id, struct store_frame **v, int *n,
                       struct err *e);
void store_frames_free(struct store_frame *v, int n);

/* Reads one snapshot's regions, sorted by (unsigned) start, through the regions view. */
int store_read_regions(struct store *st, int64_t snap_id, struct region_list *out, struct err *e);

/*
 * For snapshots a < b of one target: the regions alive at a but not at b (gone) and alive at b
 * but not at a (came), each sorted by start. Everything else is the same in both, so a diff of
 * these two lists is the diff of the two snapshots' layouts. Memory figures are not read.
 */
int store_read_delta(struct store *st, int64_t target_id, int64_t a, int64_t b,
                     struct region_list *gone, struct region_list *came, struct err *e);

/*
 * Like store_read_delta, for two snapshots that both have per-region figures: the regions alive
 * at a but not at b, or at both with other figures at b, as they were at a (ra); and those
 * alive at b but not at a, or at both with other figures, as they are at b (rb). Each sorted by
 * start, with the figures of its snapshot. A diff of ra and rb is the diff of the two snapshots,
 * resident changes included.
 */
int store_read_delta_mem(struct store *st, int64_t target_id, int64_t a, int64_t b,
                         struct region_list *ra, struct region_list *rb, struct err *e);

/* One snapshot of a history. */
struct store_hsnap {
    int64_t id, seq;
    int64_t taken_ms; /* Unix milliseconds */
    char taken_at[32];
    char *label;  /* owned; NULL when none */
    int64_t mark; /* as store_snapshot's */
    int have_rss;
    uint64_t rss_bytes; /* the process's, from smaps_rollup or smaps */
    uint64_t pss_bytes; /* likewise, with have_rss */
    int smaps;          /* per-region figures were read */
};

/*
 * A target's recording from snapshot from to snapshot to (ids of its snapshots), read in
 * snapshot order in one read transaction: its snapshots, then one step per snapshot at which
 * regions end or begin. It holds only the regions alive at the current step, each in a slot.
 */
struct store_walk;

struct store_step {
    uint32_t k; /* the snapshot index (0: the regions alive at the first snapshot began) */
    const uint32_t *ended; /* slots of the regions alive at k - 1 and not at k, by start */
    size_t nended;
    const uint32_t *began; /* slots of the regions alive at k and not at k - 1, by start */
    size_t nbegan;
};

/* Opens the walk: 0, or an error (ERR_NOTFOUND when the range has no snapshot). *out is
 * closed by store_walk_close either way. */
int store_walk_open(struct store *st, int64_t target_id, int64_t from, int64_t to,
                    struct store_walk **out, struct err *e);
/* The range's snapshots in seq order, held by the walk. */
const struct store_hsnap *store_walk_snaps(const struct store_walk *w, size_t *n);
/* The next step: 1, 0 after the last, or an error. Step 0 comes first, whatever it holds. */
int store_walk_next(struct store_walk *w, struct store_step *step, struct err *e);
/* The region in a slot: valid from the step that began it to the step after the one that
 * ended it; a slot is reused after that. */
const struct region *store_walk_region(const struct store_walk *w, uint32_t slot);
/* Every slot number so far is below this. */
uint32_t store_walk_slots(const struct store_walk *w);
/* rss by category at every snapshot of the range (out: nsnaps * CAT_COUNT, category fastest),
 * from the category totals: 0, or an error. */
int store_walk_category_rss(struct store_walk *w, int64_t target_id, int64_t *out, struct err *e);
void store_walk_close(struct store_walk *w);

/* Calls target_cb for each target (all, or only target_id) and snap_cb for each of its snapshots.
 */
struct store_list_cb {
    int (*target)(void *ctx, const struct store_target *t);
    int (*snapshot)(void *ctx, const struct store_snapshot *s);
    int (*target_end)(void *ctx, const struct store_target *t);
    void *ctx;
};
int store_list(struct store *st, int64_t target_id, const struct store_list_cb *cb, struct err *e);

/* Runs one read-only SQL statement, handing each row to row_cb. */
enum store_value_type { STORE_NULL, STORE_INT, STORE_REAL, STORE_TEXT, STORE_BLOB };
struct store_value {
    int type;
    int64_t i;
    double r;
    const char *s; /* TEXT or BLOB bytes, valid during the callback */
    int len;
};
/*
 * Before any database is opened: have SQLite count the memory it uses, which store_query's
 * max_memory needs (SQLite enforces a heap limit only then; the count costs a little on every
 * allocation, so only `query` asks for it).
 */
void store_count_memory(void);
struct store_query_cb {
    int (*columns)(void *ctx, int n, const char *const *names);
    int (*row)(void *ctx, int n, const struct store_value *values);
    void *ctx;
    /* Limits: the statement is stopped after timeout_ms (0: never); SQLite may use max_memory
     * bytes, temporary results included, which are kept in memory and never spill to a
     * temporary file (0: no limit, and temporary files as usual). */
    int64_t timeout_ms, max_memory;
};
int store_query(struct store *st, const char *sql, const struct store_query_cb *cb, struct err *e);

/* The database's size in bytes: its pages, committed ones still in the WAL included (what the
 * file holds once checkpointed), or -1 when it cannot be read. */
int64_t store_db_bytes(struct store *st);

/* Formats Unix milliseconds as the stored UTC timestamp "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void store_format_time(int64_t unix_ms, char out[32]);

/* What merging another database did (store_merge.c). */
struct store_merge_result {
    int64_t targets_added;    /* new here */
    int64_t targets_extended; /* held here with fewer snapshots: the rest were added */
    int64_t targets_present;  /* held here whole already */
    int64_t targets_apart;    /* the same process recorded apart into both: kept as another */
    int64_t snapshots_added;
};

/*
 * Copies the targets and snapshots of the vmsnap database at path into st, in one transaction,
 * keeping their identities (boot id, pid, start time); merging the same file again adds nothing,
 * and a file that went on recording adds what it recorded since. A file of an older schema is
 * brought to this one first, as opening it would; a newer one is refused. Memory stays bounded
 * whatever the file's size: rows stream from one file to the other.
 */
int store_merge(struct store *st, const char *path, struct store_merge_result *r, struct err *e);

/*
 * Marks (store_marks.c). A recorder says it runs on the database from start to end, so that
 * `vmsnap mark` can find it; a mark asks every recorder that runs to take a snapshot now.
 */
struct store_proc {
    int64_t pid;
    uint64_t start_time; /* as capture_target's */
    const char *host, *boot_id;
};

/* Says that recorder self runs, recording target_pid; *id names it until unregistered. Marks
 * asked for before now are not its to take. */
int store_recorder_register(struct store *st, const struct store_proc *self, int64_t target_pid,
                            int64_t *id, struct err *e);
/* Best effort: a recorder that cannot say it stopped is found dead by the next mark. */
void store_recorder_unregister(struct store *st, int64_t id);

/* A mark a recorder has still to take. */
struct store_mark {
    int64_t id;
    char *label; /* owned; NULL: mark-ID */
};
/* The marks after `after` (a marks.id) that recorder id has still to take, oldest first;
 * *v is freed with store_marks_free. */
int store_marks_pending(struct store *st, int64_t id, int64_t after, struct store_mark **v,
                        size_t *n, struct err *e);
void store_marks_free(struct store_mark *v, size_t n);

/* A registered recorder, as store_mark_add sees it. */
struct store_recorder {
    int64_t id, pid, target_pid;
    uint64_t start_time;
    char host[256], boot_id[64];
    int local; /* on this machine: it can be woken */
};
/*
 * Adds a mark (label may be NULL) for every recorder that runs, in one transaction: alive(ctx,
 * r) is asked about each recorder on this machine and boot (1: it runs; 0: its row is left over
 * from a recorder that died, and is dropped, like those of an earlier boot). Returns the recorders
 * that run in *v (freed by the caller); when none does, no mark is added and *mark_id is 0.
 */
int store_mark_add(struct store *st, const char *label, const struct store_proc *here,
                   int (*alive)(void *ctx, const struct store_recorder *r), void *ctx,
                   int64_t *mark_id, struct store_recorder **v, size_t *n, struct err *e);
/* Whether recorder id has taken mark (1), has not yet (0), or has stopped without it
 * (ERR_NOTFOUND). */
int store_mark_taken(struct store *st, int64_t id, int64_t mark, struct err *e);
/* The snapshots taken on mark, in id order, by cb. */
int store_mark_snapshots(struct store *st, int64_t mark,
                         int (*cb)(void *ctx, const struct store_snapshot *s), void *ctx,
                         struct err *e);

#endif
