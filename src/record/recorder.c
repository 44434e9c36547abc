/*
 * The recorder. Each tick walks every followed process and writes each walk as a snapshot of
 * its target; a walk that another process's lock keeps from the database is kept and written
 * first, before anything is walked again. Marks (SIGUSR1, `vmsnap mark`) are ticks of their
 * own, taken of every followed process. When following, each tick first looks for processes
 * the followed ones forked since the last.
 */
#include "record/recorder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "record/stacks.h"
#include "record/taker.h"
#include "util/xalloc.h"

struct proc {
    struct recorder_proc pub;
    struct taker taker;
    struct proc *parent; /* the followed process that forked it; NULL for one given */
    int open;            /* taker is open */
    /* A walk not written yet, because another process held the database. */
    int pending;
    char label[512]; /* its label; empty for none */
    int64_t mark;    /* the mark it answers, or STORE_NO_MARK */
    int carries;     /* its write notes the mark as taken by this recorder */
    int64_t seen_ms; /* when it was last looked at (a walk or a check), mono_ms */
    /* The last snapshot written. */
    const struct region_list *list;
    struct capture_info info;
    /* With stacks: which of the tracer's programs of pid its target records (gen, from the
     * walk that began it; gen_execs: the taker's execs then), and the one before. */
    int gen_known, gen, prev_gen;
    int gen_execs;
    int64_t prev_target;
};

struct recorder {
    struct store *st;
    struct recorder_opts o;
    struct recorder_hooks h;
    struct plat_recorder *events;
    struct capture_scan *scan;
    struct proc **procs;
    size_t nprocs, cap;
    int child;         /* a command was started */
    int64_t self;      /* vmsnap's pid: adopted orphans have it as parent */
    int64_t rounds;    /* ticks and marks taken, for --count */
    int64_t taken;     /* snapshots written */
    int64_t own_marks; /* SIGUSR1 marks, numbering mark-N */
    int64_t first, last;
    int64_t pending_since_ms;
    int lock_reported;
    int fd_limit_said; /* REC_EV_UNFOLLOWED was said */
    /* Marks asked for and not taken yet, oldest first: id 0 for SIGUSR1, else the id of a
     * `vmsnap mark`. */
    struct store_mark *queue;
    size_t nqueue;
    int64_t recorder_id; /* this recorder's row, which lets `vmsnap mark` find it; 0: none */
    int64_t marks_after; /* the newest `vmsnap mark` queued */
    int stop_requested;
    struct stacks *stacks; /* record --stacks: the command's tracer, or the pids' */
    int64_t *attached;     /* the pids it attached to (record --stacks -p) */
    struct store_events *calls;
    int over; /* recording has ended: calls with no target now never get one */
};

static int64_t mono_ms(void)
{
    return plat_monotonic_us() / 1000;
}

static void say(struct recorder *r, int ev, const struct proc *p, int64_t snap, int64_t waited,
                const char *why)
{
    if (r->h.event)
        r->h.event(r->h.ctx, ev, p ? &p->pub : NULL, snap, waited, why);
}

/* Starts following pid (with cap already open, or NULL); forked by parent, or given; come to as
 * origin says (STORE_ORIGIN_...). */
static int follow(struct recorder *r, int64_t pid, struct capture *cap, struct proc *parent,
                  const char *origin, struct err *e)
{
    struct proc *p = xcalloc(1, sizeof(*p));
    p->pub.pid = pid;
    p->parent = parent;
    int rc = taker_open(&p->taker, r->st, cap, pid, r->o.detail, origin, e);
    if (rc < 0) {
        free(p);
        return rc;
    }
    p->open = 1;
    r->procs = xgrow(r->procs, &r->cap, r->nprocs + 1, sizeof(*r->procs));
    r->procs[r->nprocs++] = p;
    return 0;
}

/* The newest followed process with pid, or NULL. */
static struct proc *proc_of(struct recorder *r, int64_t pid)
{
    for (size_t i = r->nprocs; i-- > 0;)
        if (!r->procs[i]->pub.gone && r->procs[i]->pub.pid == pid)
            return r->procs[i];
    return NULL;
}

/* Files kept free for the database and the processes already followed, and the files a
 * followed process holds open (its maps). */
#define FILES_KEPT        24
#define FILES_PER_PROCESS 1

/* Follows the processes that followed ones forked since the last look (and orphans of theirs
 * that were handed to vmsnap). */
static void find_children(struct recorder *r)
{
    struct capture_seen *v = NULL;
    size_t n = 0;
    struct err e = {0};
    if (!r->scan || capture_scan_new(r->scan, &v, &n, &e) < 0)
        return;
    /* New processes come in pid order, but a grandchild may have a lower pid than its
     * parent (pids wrap): go over them until none more is followed. */
    int64_t left = -2; /* files this process may still open; -2: not counted yet */
    for (int more = 1; more;) {
        more = 0;
        for (size_t k = 0; k < n; k++) {
            if (!v[k].pid || proc_of(r, v[k].pid))
                continue;
            struct proc *parent = proc_of(r, v[k].ppid);
            if (!parent &&
                (!(r->child && v[k].ppid == r->self) || plat_recorder_own(r->events, v[k].pid)))
                continue;
            if (!parent) {
                /* An orphan handed to vmsnap: its parent is the first process, as near as
                 * we know. */
                parent = r->procs[0];
            }
            /* A followed process holds files open; the last few are kept for the database
             * and the processes followed already, which must go on being recorded. Counted
             * once per look (it reads /proc/self/fd), then as each one is followed. */
            if (left == -2)
                left = plat_open_files_left();
            if (left >= 0 && left < FILES_KEPT) {
                if (!r->fd_limit_said) {
                    char why[200];
                    snprintf(why, sizeof(why),
                             "pid %lld and what else forks now are not followed: this process "
                             "may open no more files (ulimit -n) -- raise the limit to follow "
                             "them",
                             (long long)v[k].pid);
                    say(r, REC_EV_UNFOLLOWED, NULL, 0, 0, why);
                }
                r->fd_limit_said = 1;
            } else if (follow(r, v[k].pid, NULL, parent,
                              /* The first look at a process given finds what it had forked
                               * before; a launched command's children are all seen new. */
                              r->rounds == 0 && !r->child ? STORE_ORIGIN_FOUND
                                                          : STORE_ORIGIN_FORKED,
                              &e) == 0) {
                more = 1;
                if (left > 0)
                    left -= FILES_PER_PROCESS;
            }
            v[k].pid = 0; /* looked at */
        }
    }
    free(v);
}

/* The label and mark of the next walk: the oldest mark queued, or a scheduled snapshot. */
static void next_label(struct recorder *r, struct proc *p, const struct store_mark *m, int64_t own)
{
    p->label[0] = '\0';
    p->mark = STORE_NO_MARK;
    const char *prefix = r->o.prefix;
    if (m) {
        p->mark = m->id;
        if (m->label)
            snprintf(p->label, sizeof(p->label), "%s", m->label);
        else
            snprintf(p->label, sizeof(p->label), "%s%smark-%lld", prefix ? prefix : "",
                     prefix ? "-" : "", (long long)(m->id ? m->id : own));
    } else if (prefix) {
        snprintf(p->label, sizeof(p->label), "%s-%lld", prefix, (long long)(p->pub.taken + 1));
    }
}

/* Where a call of pid's gen-th program goes (stacks_target_fn). Inside the round's transaction,
 * a target made in it is the taker's. */
static int64_t target_of(void *ctx, int64_t pid, int gen)
{
    struct recorder *r = ctx;
    struct proc *p = NULL;
    for (size_t i = r->nprocs; i-- > 0 && !p;)
        if (r->procs[i]->pub.pid == pid)
            p = r->procs[i];
    if (!p) {
        /* Not followed yet: it may be next round, unless it is gone or never will be. */
        return !r->o.follow || r->over || stacks_gen(r->stacks, pid) < 0 ? -1 : 0;
    }
    int ended = p->pub.gone || r->over;
    if (!p->gen_known)
        return ended ? -1 : 0;
    if (gen == p->gen) {
        int64_t t = p->taker.target_id;
        return t ? t : ended ? -1 : 0;
    }
    if (gen < p->gen)
        return gen == p->prev_gen && p->prev_target ? p->prev_target : -1;
    return ended ? -1 : 0;
}

/* After a walk: a target that begins (the first walk, or one that found an exec) records the
 * program the tracer knows pid to run now. */
static void note_program(struct recorder *r, struct proc *p)
{
    if (!r->stacks || (p->gen_known && p->taker.execs == p->gen_execs))
        return;
    if (p->gen_known) {
        p->prev_gen = p->gen;
        p->prev_target = p->pub.target_id;
    }
    p->gen = stacks_gen(r->stacks, p->pub.pid);
    p->gen_execs = p->taker.execs;
    p->gen_known = 1;
}

/* What a round wrote of one process, once it is committed. */
static void written(struct recorder *r, struct proc *p, int64_t snap)
{
    p->pending = 0;
    taker_committed(&p->taker);
    p->pub.taken++;
    p->pub.target_id = p->taker.target_id;
    p->list = p->taker.list;
    p->info = p->taker.info;
    /* What the progress line sums over a tree. */
    uint64_t committed = 0;
    for (size_t k = 0; p->list && k < p->list->n; k++)
        committed += region_committed(&p->list->v[k]);
    p->pub.committed = committed;
    if (p->pub.taken == 1)
        p->pub.committed_first = committed;
    p->pub.have_mem = p->info.have_totals;
    p->pub.rss = p->info.totals.rss;
    p->pub.pss = p->info.totals.pss;
    if (!r->first)
        r->first = snap;
    r->last = snap;
    r->taken++;
    if (r->lock_reported) {
        say(r, REC_EV_UNLOCKED, p, snap, mono_ms() - r->pending_since_ms, NULL);
        r->lock_reported = 0;
    }
    if (p->parent && p->pub.taken == 1)
        say(r, REC_EV_FOLLOWED, p, snap, 0, NULL);
    if (p->info.flags & CAPTURE_TORN)
        say(r, REC_EV_TORN, p, snap, 0, NULL);
    say(r, REC_EV_SNAPSHOT, p, snap, 0, NULL);
}

static void report_locked(struct recorder *r, const struct proc *p)
{
    if (!r->lock_reported)
        say(r, REC_EV_LOCKED, p, 0, 0, NULL);
    r->lock_reported = 1;
}

/*
 * Writes the round's pending walks. A tree's round is one transaction (one commit, not one per
 * process): all of it is written, or none of it and every walk is kept for the next attempt.
 * ERR_LOCKED keeps them too, and returns 0.
 */
static int commit(struct recorder *r, struct err *e)
{
    /* Moved or deleted since the last round: the recording stops rather than go on where
     * nobody will look. */
    int moved = store_check_place(r->st, e);
    if (moved < 0)
        return err_wrap(e, "record");
    size_t npending = 0;
    for (size_t i = 0; i < r->nprocs; i++)
        npending += r->procs[i]->pending != 0;
    if (!npending)
        return 0;
    /* The calls go in the round's transaction; their stacks are named before it. */
    int whole = npending > 1 || r->stacks, rc = 0;
    if (r->stacks)
        stacks_name(r->stacks);
    if (whole && (rc = store_begin(r->st, e)) < 0) {
        if (rc != ERR_LOCKED)
            return rc;
        report_locked(r, NULL);
        return 0;
    }
    struct proc **done = xmalloc(npending * sizeof(*done));
    int64_t *snaps = xmalloc(npending * sizeof(*snaps));
    size_t nd = 0;
    for (size_t i = 0; i < r->nprocs && rc == 0; i++) {
        struct proc *p = r->procs[i];
        if (!p->pending)
            continue;
        /* The nearest ancestor that was recorded: a parent that exited before its first
         * snapshot has no target to name (one recorded in this round names it already). */
        for (const struct proc *a = p->parent; a && !p->taker.parent_target_id; a = a->parent)
            p->taker.parent_target_id = a->taker.target_id;
        const struct store_snap_opts so = {p->label[0] ? p->label : NULL,
                                           STORE_LABEL_UNIQUE,
                                           p->mark,
                                           p->carries ? r->recorder_id : 0,
                                           0,
                                           1};
        rc = taker_commit(&p->taker, &so, &snaps[nd], e);
        if (rc == 0)
            done[nd++] = p;
        else if (rc == ERR_LOCKED)
            report_locked(r, p);
    }
    if (r->stacks && rc == 0)
        rc = stacks_write(r->stacks, r->calls, target_of, r, e);
    if (whole && rc == 0)
        rc = store_commit(r->st, e); /* rolls back when it fails */
    else if (whole)
        store_rollback(r->st);
    if (whole && rc < 0) {
        /* Nothing of the round is written: each walk is kept, built again on what is. */
        for (size_t i = 0; i < nd; i++) {
            struct err ignored = {0};
            (void)taker_rolled_back(&done[i]->taker, &ignored);
        }
        /* A parent's target made in the round is gone too: the children look again. */
        for (size_t i = 0; i < r->nprocs; i++)
            if (r->procs[i]->pending && r->procs[i]->parent && !r->procs[i]->pub.target_id)
                r->procs[i]->taker.parent_target_id = 0;
        nd = 0;
    }
    if (r->stacks)
        stacks_written(r->stacks, nd > 0);
    for (size_t i = 0; i < nd; i++)
        written(r, done[i], snaps[i]);
    free(done);
    free(snaps);
    return rc == ERR_LOCKED ? 0 : rc;
}

static int any_pending(const struct recorder *r)
{
    for (size_t i = 0; i < r->nprocs; i++)
        if (r->procs[i]->pending)
            return 1;
    return 0;
}

static int alive_count(const struct recorder *r)
{
    int n = 0;
    for (size_t i = 0; i < r->nprocs; i++)
        n += !r->procs[i]->pub.gone;
    return n;
}

static void gone(struct recorder *r, struct proc *p)
{
    if (p->pub.gone)
        return;
    p->pub.gone = 1;
    p->pending = 0;
    /* Its end is noted if it can be: growth calls its last release shutdown. Failing here
     * loses nothing recorded, and the next write says what is wrong with the database. */
    if (p->pub.target_id) {
        struct err ignored = {0};
        (void)store_target_exited(r->st, p->pub.target_id, plat_realtime_ms(), &ignored);
    }
    p->list = NULL;
    if (p->open)
        taker_close(&p->taker);
    p->open = 0;
    say(r, REC_EV_EXITED, p, 0, 0, NULL);
}

/* Walks p for its next snapshot (for mark m, or NULL): 1 when the walk is pending to be written,
 * 0 when p is gone, or an error. */
static int walk_one(struct recorder *r, struct proc *p, const struct store_mark *m, struct err *e)
{
    next_label(r, p, m, r->own_marks);
    p->carries = 0;
    int rc = taker_walk(&p->taker, e);
    p->seen_ms = mono_ms();
    if (rc == ERR_EXITED || rc == ERR_ZOMBIE || rc == ERR_NOPROC) {
        gone(r, p);
        return 0;
    }
    if (rc < 0)
        return rc;
    note_program(r, p);
    p->pending = 1;
    return 1;
}

/*
 * One round: a snapshot of every followed process (for the oldest mark queued, if any), or,
 * while walks are pending, another attempt to write them. Returns 0, 1 when no followed
 * process is left, or an error.
 */
static int tick(struct recorder *r, struct err *e)
{
    if (any_pending(r))
        return commit(r, e);
    if (r->o.follow)
        find_children(r);
    struct store_mark m = {STORE_NO_MARK, NULL};
    int marked = r->nqueue > 0;
    if (marked) {
        m = r->queue[0];
        memmove(r->queue, r->queue + 1, --r->nqueue * sizeof(*r->queue));
        if (!m.id)
            r->own_marks++;
    }
    struct proc *carrier = NULL;
    for (size_t i = 0; i < r->nprocs; i++) {
        struct proc *p = r->procs[i];
        if (p->pub.gone)
            continue;
        int rc = walk_one(r, p, marked ? &m : NULL, e);
        if (rc < 0) {
            free(m.label);
            return rc;
        }
        if (rc == 1)
            carrier = p;
    }
    free(m.label);
    /* The last write of the round says that the mark is taken: `vmsnap mark` then finds all. */
    if (carrier && marked && m.id > 0)
        carrier->carries = 1;
    r->rounds++;
    r->pending_since_ms = mono_ms();
    if (!alive_count(r))
        return 1;
    return commit(r, e);
}

/*
 * With stacks: the processes born since (forked, or exec'd), each held by the tracer before it
 * runs, get their first snapshot now, and those exiting their last, written before they are
 * let go; a process that lives less than a tick so has a target for its calls, and a last
 * snapshot that holds what they made.
 */
static int take_births(struct recorder *r, struct err *e)
{
    struct stacks_birth *v = NULL;
    size_t n = r->stacks ? stacks_births(r->stacks, &v) : 0;
    if (!n)
        return 0;
    int rc = 0, any = 0;
    for (size_t i = 0; i < n; i++) {
        struct proc *p = proc_of(r, v[i].pid);
        if (!p && v[i].kind == TRACE_FORKED) {
            struct proc *parent = v[i].parent ? proc_of(r, v[i].parent) : NULL;
            struct err ignored = {0};
            if (follow(r, v[i].pid, NULL, parent ? parent : r->procs[0], STORE_ORIGIN_FORKED,
                       &ignored) == 0)
                p = r->procs[r->nprocs - 1];
        }
        if (!p || p->pending)
            continue;
        if ((rc = walk_one(r, p, NULL, e)) < 0)
            break;
        any |= rc;
        rc = 0;
    }
    if (rc == 0 && any)
        rc = commit(r, e);
    for (size_t i = 0; i < n; i++)
        stacks_release(r->stacks, v[i].pid);
    free(v);
    return rc;
}

/* A mark came: queues the marks `vmsnap mark` added for us or, with none, one of our own. */
static void queue_marks(struct recorder *r)
{
    struct store_mark *v = NULL;
    size_t n = 0;
    struct err e = {0};
    if (r->recorder_id &&
        store_marks_pending(r->st, r->recorder_id, r->marks_after, &v, &n, &e) < 0)
        say(r, REC_EV_UNMARKABLE, NULL, 0, 0, e.msg);
    if (!n) {
        v = xcalloc(1, sizeof(*v));
        n = 1;
    }
    r->queue = xreallocarray(r->queue, r->nqueue + n, sizeof(*r->queue));
    memcpy(r->queue + r->nqueue, v, n * sizeof(*v));
    r->nqueue += n;
    if (v[n - 1].id)
        r->marks_after = v[n - 1].id;
    free(v);
}

/* Says that we record, so `vmsnap mark` can find us; a recording goes on without it. */
static void register_recorder(struct recorder *r)
{
    struct capture_proc self;
    struct err e = {0};
    int rc = capture_identify(plat_getpid(), &self, &e);
    if (rc == 0) {
        const struct store_proc sp = {self.pid, self.start_time, self.host, self.boot_id};
        rc = store_recorder_register(r->st, &sp, r->procs[0]->pub.pid, &r->recorder_id, &e);
    }
    if (rc < 0)
        say(r, REC_EV_UNMARKABLE, NULL, 0, 0, e.msg);
}

int recorder_open(struct recorder **out, struct store *st, const struct recorder_opts *o,
                  const struct recorder_hooks *h, char **argv, struct capture **caps, size_t n,
                  struct err *e)
{
    struct recorder *r = xcalloc(1, sizeof(*r));
    int rc = 0;
    r->st = st;
    r->o = *o;
    if (h)
        r->h = *h;
    r->self = plat_getpid();
    /* A file per followed process: a 300-process tree needs more than a 256 soft limit. */
    plat_raise_open_files();
    plat_recorder_init(&r->events);
    *out = r;
    /* The first tick's scan sees every process: the descendants the given ones have already
     * are followed from the start. */
    if (o->follow && capture_scan_open(&r->scan, e) < 0)
        r->scan = NULL;
    if (argv && o->stacks) {
        int64_t pid = 0;
        int flags = o->follow ? PLAT_SPAWN_ADOPT : 0;
        if ((rc = stacks_launch(&r->stacks, argv, o->follow, &pid, e)) < 0) {
            if (rc == ERR_EXITED)
                return 0; /* it ran and ended before it was loaded: nothing to record */
            return err_wrap(e, "record");
        }
        plat_recorder_adopt(r->events, pid, flags);
        r->child = 1;
        if ((rc = store_events_open(st, &r->calls, e)) < 0)
            return rc;
        if ((rc = follow(r, pid, NULL, NULL, STORE_ORIGIN_LAUNCHED, e)) < 0) {
            if (stacks_done(r->stacks) || rc == ERR_EXITED || rc == ERR_ZOMBIE || rc == ERR_NOPROC)
                return 0;
            return rc;
        }
    } else if (argv) {
        char why[256];
        int flags = PLAT_SPAWN_LOADED | (o->follow ? PLAT_SPAWN_ADOPT : 0);
        int64_t pid = plat_recorder_spawn(r->events, argv, flags, why, sizeof(why));
        if (pid < 0)
            return err_set(e, ERR_USAGE, "record: cannot run '%s': %s", argv[0], why);
        r->child = 1;
        if ((rc = follow(r, pid, NULL, NULL, STORE_ORIGIN_LAUNCHED, e)) < 0) {
            if (plat_recorder_child_exited(r->events, 0, NULL) || rc == ERR_EXITED ||
                rc == ERR_ZOMBIE || rc == ERR_NOPROC) {
                /* It ran and ended before it could be looked at: nothing to record. */
                return 0;
            }
            return rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct capture *cap = caps[i];
        caps[i] = NULL;
        if ((rc = follow(r, capture_get_target(cap)->pid, cap, NULL, STORE_ORIGIN_FOUND, e)) < 0) {
            for (size_t k = i + 1; k < n; k++) {
                capture_close(caps[k]);
                caps[k] = NULL;
            }
            return rc;
        }
    }
    if (n && o->stacks) {
        /* Attached to the processes given: every system call of theirs stops in the tracer
         * until it lets go of them. */
        r->attached = xcalloc(n, sizeof(*r->attached));
        for (size_t i = 0; i < r->nprocs; i++)
            r->attached[i] = r->procs[i]->pub.pid;
        if ((rc = stacks_attach(&r->stacks, r->attached, r->nprocs, o->follow, e)) < 0)
            return err_wrap(e, "record");
        if ((rc = store_events_open(st, &r->calls, e)) < 0)
            return rc;
    }
    if (r->nprocs)
        register_recorder(r);
    return 0;
}

/* How long a followed process may go unlooked at between ticks. */
#define SEEN_MAX_AGE_MS 1000

/* Waits for the next tick (or the deadline), taking marks as they come. Returns 0 to tick, 1 to
 * stop (with *why), or an error. */
static int wait_next(struct recorder *r, int64_t next, int64_t deadline, const char **why,
                     struct err *e)
{
    for (;;) {
        int64_t until = deadline >= 0 && deadline < next ? deadline : next;
        /* Wake at least twice a second to notice a target that exited meanwhile. */
        if (until - mono_ms() > 500)
            until = mono_ms() + 500;
        switch (plat_recorder_wait(r->events, until * 1000)) {
        case PLAT_EV_STOP:
            *why = plat_recorder_stop_reason(r->events);
            r->stop_requested = 1;
            /* A stop sent to vmsnap alone is passed on to the command, which then exits and
             * gives its status. */
            plat_recorder_forward_stop(r->events);
            return 1;
        case PLAT_EV_MARK:
            queue_marks(r);
            /* Each mark is a round of its own, now; a locked database keeps them waiting. */
            do {
                int rc = tick(r, e);
                if (rc) {
                    if (rc == 1)
                        *why = "target exited";
                    return rc;
                }
                if (r->o.count && r->rounds >= r->o.count) {
                    *why = "count reached";
                    return 1;
                }
            } while (r->nqueue && !any_pending(r));
            continue;
        case PLAT_EV_CHILD:
            /* Reaps the command and adopted orphans; the walks notice who is gone. Processes
             * born under the tracer wait for their first snapshot. */
            plat_recorder_child_exited(r->events, 0, NULL);
            int rc = take_births(r, e);
            if (rc < 0)
                return rc;
            break;
        default:
            break;
        }
        /* A process that exits between ticks is noticed within a second: one not looked at
         * for that long is checked, unless the tick that looks at it is due. */
        int64_t now = mono_ms();
        for (size_t i = 0; i < r->nprocs && now < next; i++) {
            struct proc *p = r->procs[i];
            if (p->pub.gone || now - p->seen_ms < SEEN_MAX_AGE_MS)
                continue;
            p->seen_ms = now;
            if (taker_check(&p->taker) < 0)
                gone(r, p);
        }
        /* The last followed process is gone: one more look for what it left behind (a
         * daemon's grandchild, handed to vmsnap). */
        if (!alive_count(r) && r->o.follow)
            find_children(r);
        if (!alive_count(r) && !any_pending(r)) {
            *why = "target exited";
            return 1;
        }
        now = mono_ms();
        if (deadline >= 0 && now >= deadline) {
            *why = "duration reached";
            return 1;
        }
        if (now >= next)
            return 0;
    }
}

/*
 * Recording is over but walks are still pending: keep trying to write them until they are
 * written or a stop request comes (or came: it ended the recording), then try once more.
 */
static int flush_pending(struct recorder *r, struct err *e)
{
    int stop = r->stop_requested;
    while (any_pending(r)) {
        int rc = commit(r, e);
        if (rc < 0)
            return rc;
        if (!any_pending(r))
            break;
        if (stop)
            return err_set(e, ERR_LOCKED,
                           "record: database '%s' stayed locked by another process: the "
                           "snapshot in progress was not written (the %lld written before it "
                           "are kept)",
                           store_path(r->st), (long long)r->taken);
        int64_t interval = r->o.interval_ms > 100 ? r->o.interval_ms : 100;
        int64_t until = mono_ms() + interval;
        while (!stop && mono_ms() < until)
            stop = plat_recorder_wait(r->events, until * 1000) == PLAT_EV_STOP;
    }
    return 0;
}

/*
 * Recording is over: the tracer records no more calls, and the calls it queued since the last
 * round are written, but for processes never recorded.
 */
static int flush_calls(struct recorder *r, struct err *e)
{
    if (!r->stacks)
        return 0;
    stacks_quiet(r->stacks);
    r->over = 1;
    if (!stacks_pending(r->stacks))
        return 0;
    int rc = store_begin(r->st, e);
    if (rc == 0) {
        if ((rc = stacks_write(r->stacks, r->calls, target_of, r, e)) == 0)
            rc = store_commit(r->st, e); /* rolls back when it fails */
        else
            store_rollback(r->st);
        stacks_written(r->stacks, rc == 0);
    }
    if (rc == ERR_LOCKED)
        return err_set(e, ERR_LOCKED,
                       "record: database '%s' stayed locked by another process: the calls "
                       "made since the last snapshot were not written (the snapshots are kept)",
                       store_path(r->st));
    return rc;
}

int recorder_run(struct recorder *r, const char **why, struct err *e)
{
    *why = "target exited";
    if (!r->nprocs)
        return 0;
    int64_t start = mono_ms(), next = start;
    int rc;
    for (;;) {
        rc = tick(r, e);
        /* The command was held where its program is loaded for its first snapshot. */
        plat_recorder_let_go(r->events);
        stacks_let_go(r->stacks);
        if (rc < 0)
            goto out;
        if (rc == 1) {
            *why = "target exited";
            break;
        }
        if (r->o.count && r->rounds >= r->o.count) {
            *why = "count reached";
            break;
        }
        next += r->o.interval_ms;
        int64_t now = mono_ms();
        if (next < now)
            next = now; /* a slow walk delays the schedule rather than bunching snapshots */
        int64_t deadline = r->o.duration_ms ? start + r->o.duration_ms : -1;
        if (deadline >= 0 && now >= deadline) {
            *why = "duration reached";
            break;
        }
        if ((rc = wait_next(r, next, deadline, why, e)) < 0)
            goto out;
        if (rc == 1)
            break;
    }
    rc = flush_pending(r, e);
    if (rc == 0)
        rc = flush_calls(r, e);
out:
    if (r->recorder_id)
        store_recorder_unregister(r->st, r->recorder_id);
    r->recorder_id = 0;
    return rc < 0 ? rc : 0;
}

size_t recorder_nprocs(const struct recorder *r)
{
    return r->nprocs;
}

const struct recorder_proc *recorder_proc(const struct recorder *r, size_t i)
{
    return &r->procs[i]->pub;
}

void recorder_calls(const struct recorder *r, int64_t *calls, int64_t *stacks)
{
    int64_t unwound_not;
    *calls = *stacks = 0;
    if (r->stacks)
        stacks_counts(r->stacks, calls, stacks, &unwound_not);
}

void recorder_counts(const struct recorder *r, int64_t *taken, int64_t *first, int64_t *last)
{
    *taken = r->taken;
    *first = r->first;
    *last = r->last;
}

const struct region_list *recorder_last(const struct recorder *r, const struct capture_info **info)
{
    if (!r->nprocs || !r->procs[0]->list) {
        *info = NULL;
        return NULL;
    }
    *info = &r->procs[0]->info;
    return r->procs[0]->list;
}

int recorder_close(struct recorder *r, void (*waiting)(void *ctx, int64_t pid), void *ctx)
{
    if (!r)
        return 0;
    int status = 0;
    for (size_t i = 0; i < r->nprocs; i++) {
        if (r->procs[i]->open)
            taker_close(&r->procs[i]->taker);
    }
    if (r->recorder_id)
        store_recorder_unregister(r->st, r->recorder_id);
    plat_recorder_let_go(r->events);
    store_events_close(r->calls);
    if (r->stacks && r->attached) {
        status = 0;
        stacks_close(r->stacks); /* it lets go of the processes: they run on untraced */
    } else if (r->stacks) {
        /* The tracer serves the program's calls, recording none, until it exits: a program
         * that keeps its filter without a tracer would fail every memory call. */
        stacks_quiet(r->stacks);
        stacks_let_go(r->stacks);
        plat_recorder_unblock(r->events);
        if (!stacks_done(r->stacks) && waiting)
            waiting(ctx, r->nprocs ? r->procs[0]->pub.pid : 0);
        status = stacks_close(r->stacks);
        plat_recorder_child_exited(r->events, 0, NULL); /* the orphans handed to us */
    } else if (r->child) {
        /* Recording is over; the command runs on until it exits, and its status is ours.
         * Everything is committed, so signals may act as usual again while we wait. */
        plat_recorder_unblock(r->events);
        if (!plat_recorder_child_exited(r->events, 0, &status) && waiting)
            waiting(ctx, r->nprocs ? r->procs[0]->pub.pid : 0);
        plat_recorder_child_exited(r->events, 1, &status);
    }
    for (size_t i = 0; i < r->nprocs; i++)
        free(r->procs[i]);
    free(r->procs);
    store_marks_free(r->queue, r->nqueue);
    free(r->attached);
    capture_scan_close(r->scan);
    plat_recorder_release(r->events);
    free(r);
    return status;
}
