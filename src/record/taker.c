#include "record/taker.h"

#include <ctype.h>
#include <string.h>

#include "platform/platform.h"

static int attach(struct taker *t, struct err *e)
{
    int rc = t->cap ? 0 : capture_open(&t->cap, t->pid, e);
    if (rc < 0)
        return rc;
    rc = store_writer_open(t->st, capture_get_target(t->cap), &t->w, e);
    if (rc == 0) {
        store_writer_set_parent(t->w, t->parent_target_id);
        store_writer_set_origin(t->w, t->origin);
    }
    return rc;
}

static void detach(struct taker *t)
{
    store_writer_close(t->w);
    capture_close(t->cap);
    t->w = NULL;
    t->cap = NULL;
}

int taker_open(struct taker *t, struct store *st, struct capture *cap, int64_t pid, int detail,
               const char *origin, struct err *e)
{
    memset(t, 0, sizeof(*t));
    t->origin = origin;
    t->cap = cap;
    t->st = st;
    t->pid = pid;
    t->detail = detail;
    int rc = attach(t, e);
    if (rc < 0)
        detach(t);
    return rc;
}

int taker_walk(struct taker *t, struct err *e)
{
    for (int attempt = 0;; attempt++) {
        if (!t->cap) {
            int rc = attach(t, e);
            if (rc < 0) {
                detach(t);
                return rc == ERR_NOPROC
                           ? err_set(e, ERR_EXITED, "process %lld exited", (long long)t->pid)
                           : rc;
            }
        }
        int64_t t0 = plat_monotonic_us();
        t->list = NULL;
        int rc = capture_walk(t->cap, t->detail, &t->list, &t->info, e);
        if (rc == ERR_EXECED && attempt < 3) {
            /* The same pid now runs another program: that is a new target, recorded from its
             * start, and the old program's has ended (noted if it can be: its snapshots are
             * what matter, and the next write says what is wrong with the database). */
            t->execs++;
            if (t->target_id) {
                struct err ignored = {0};
                (void)store_target_exited(t->st, t->target_id, plat_realtime_ms(), &ignored);
            }
            t->target_id = 0;
            t->origin = STORE_ORIGIN_EXEC;
            detach(t);
            continue;
        }
        if (rc < 0) {
            t->list = NULL;
            return rc;
        }
        t->walk_us = plat_monotonic_us() - t0;
        return 0;
    }
}

#define TITLE_EVERY      8
#define TITLE_MAX_AGE_US (5 * 1000 * 1000)

int taker_commit(struct taker *t, const struct store_snap_opts *o, int64_t *snap_id, struct err *e)
{
    store_writer_set_parent(t->w, t->parent_target_id);
    /* A process retitles itself (nginx's workers, postgres's backends): the target's row says
     * what ps says now. A new target's row is written with it. Reading the command line costs
     * a twentieth of a small process's maps, so it is read every 8th snapshot, and at least
     * every 5 s. */
    int64_t now = plat_monotonic_us();
    if (++t->title_age >= TITLE_EVERY || now - t->title_read_us >= TITLE_MAX_AGE_US) {
        t->retitled |= capture_retitle(t->cap);
        t->title_age = 0;
        t->title_read_us = now;
    }
    if (t->retitled && t->target_id) {
        int rc = store_target_retitle(t->st, t->target_id, capture_get_target(t->cap)->cmdline, e);
        if (rc < 0)
            return rc; /* kept for the next commit: a locked database loses no title */
    }
    t->retitled = 0;
    int rc = store_writer_write(t->w, t->list, &t->info, o, t->walk_us, snap_id, e);
    t->target_id = store_writer_target(t->w);
    return rc;
}

int taker_rolled_back(struct taker *t, struct err *e)
{
    int rc = store_writer_rolled_back(t->w, e);
    t->target_id = store_writer_target(t->w);
    t->retitled = 1;
    return rc;
}

void taker_committed(struct taker *t)
{
    if (t->cap)
        capture_release_previous(t->cap);
}

int taker_take(struct taker *t, const struct store_snap_opts *o, int64_t *snap_id, struct err *e)
{
    int rc = taker_walk(t, e);
    return rc < 0 ? rc : taker_commit(t, o, snap_id, e);
}

int taker_check(struct taker *t)
{
    if (!t->cap)
        return 0;
    int rc = capture_check(t->cap, NULL);
    return rc == ERR_EXECED ? 0 : rc;
}

void taker_close(struct taker *t)
{
    detach(t);
}
