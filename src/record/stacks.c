/*
 * stacks.h: the tracer's thread and the queue between it and the recorder.
 *
 * The tracer thread (run) launches the program, takes each call with its stack, and queues it:
 * a call as a small record, its stack as an index into a table of the distinct stacks seen,
 * found by a keyed hash of its raw frames. Both grow under the lock; a stack, once made, never
 * changes, so the recorder's thread reads it unlocked. The recorder's thread names new stacks
 * (outside any transaction: naming reads the modules' files) and writes calls and stacks.
 */
#define _GNU_SOURCE
#include "record/stacks.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <windows.h>

#include <ntsecapi.h>
#else
#include <sys/ipc.h>
#include <sys/random.h>
#include <sys/shm.h>
#include <sys/wait.h>
#endif

#include "platform/platform.h"
#include "trace/trace.h"
#include "util/siphash.h"
#include "util/xalloc.h"

/* A call, as queued. */
struct qev {
    int64_t pid, tid, at_ms;
    int gen, call;
    uint64_t start, end;
    int64_t prot, flags, new_size, result;
    size_t stack; /* its index in the table + 1; 0: none */
    int done;     /* written in the transaction in progress */
};

/* A distinct stack: made by the tracer thread, never changed after; names by the recorder's. */
struct stack {
    unsigned char *key; /* the raw frames: module NUL build id NUL offset (8 bytes), each */
    size_t len;
    struct siphash_tag tag;
    int n;
    struct store_frame *f; /* module, build_id, offset; function, file, line once named */
    int named;
};

/* A process as the tracer thread follows it. */
struct sproc {
    int64_t pid;
    int gen;      /* execs seen */
    uint64_t brk; /* its break, once a brk said; 0: not known */
    /* Its System V segments attached: where, and how long. */
    struct seg {
        uint64_t at, len;
    } * segs;
    size_t nsegs, segs_cap;
};

enum { LAUNCHING, HELD, FAILED, ENDED };

struct stacks {
    pthread_t thread;
    int started;
    char **argv;
    const int64_t *pids; /* attach to these (argv NULL) */
    size_t npids;
    int follow; /* the recorder follows new processes: each is held for its first snapshot */
    struct stacks_birth *births; /* under the lock: born and held, for stacks_births */
    size_t nbirths, births_cap;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Under the lock. */
    int state, let_go, done, status;
    struct err err;
    int64_t pid;
    struct qev *q;
    size_t nq, q_cap;
    struct stack **stk;
    size_t nstk, stk_cap;
    struct sproc *procs;
    size_t nprocs, procs_cap;
    int64_t calls, unwound_not;
    /* The tracer thread's. */
    struct tracer *t;
    unsigned char key[16];
    size_t *slots; /* the stack table's hash: index + 1, 0 empty */
    size_t nslots;
    unsigned char *kbuf;
    size_t kbuf_cap;
    /* The recorder thread's. */
    struct qev *work; /* taken from q: written in the transaction in progress, or kept */
    size_t nwork, work_cap;
    int64_t *db; /* the stacks' ids in the database (0: none yet) */
    size_t db_cap;
    size_t *fresh; /* stacks given an id by the transaction in progress */
    size_t nfresh, fresh_cap;
    size_t named; /* stacks named so far */
    struct trace_namer *namer;
    int namer_failed;
    int64_t stacks_written, calls_written;
    int64_t calls_now; /* written by the transaction in progress */
};

static struct sproc *sproc_find(struct stacks *s, int64_t pid)
{
    for (size_t i = 0; i < s->nprocs; i++)
        if (s->procs[i].pid == pid)
            return &s->procs[i];
    return NULL;
}

static struct sproc *sproc_add(struct stacks *s, int64_t pid)
{
    s->procs = xgrow(s->procs, &s->procs_cap, s->nprocs + 1, sizeof(*s->procs));
    struct sproc *p = &s->procs[s->nprocs++];
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    return p;
}

static void segs_add(struct sproc *p, uint64_t at, uint64_t len)
{
    p->segs = xgrow(p->segs, &p->segs_cap, p->nsegs + 1, sizeof(*p->segs));
    p->segs[p->nsegs++] = (struct seg){at, len};
}

/* The length of the segment attached at at (taken off the list), or 0. */
static uint64_t segs_take(struct sproc *p, uint64_t at)
{
    for (size_t i = 0; i < p->nsegs; i++)
        if (p->segs[i].at == at) {
            uint64_t len = p->segs[i].len;
            p->segs[i] = p->segs[--p->nsegs];
            return len;
        }
    return 0;
}

static void on_process(void *ctx, int64_t pid, int64_t parent)
{
    struct stacks *s = ctx;
    pthread_mutex_lock(&s->lock);
    struct sproc *p = sproc_find(s, pid);
    if (!p)
        p = sproc_add(s, pid);
    /* A fork copies its parent's address space: its break and its segments. */
    const struct sproc *from = parent ? sproc_find(s, parent) : NULL;
    if (from) {
        p->brk = from->brk;
        for (size_t i = 0; i < from->nsegs; i++)
            segs_add(p, from->segs[i].at, from->segs[i].len);
    }
    pthread_mutex_unlock(&s->lock);
}

static void on_execed(void *ctx, int64_t pid)
{
    struct stacks *s = ctx;
    pthread_mutex_lock(&s->lock);
    struct sproc *p = sproc_find(s, pid);
    if (!p)
        p = sproc_add(s, pid);
    p->gen++;
    p->brk = 0;
    p->nsegs = 0;
    pthread_mutex_unlock(&s->lock);
}

static void on_exited(void *ctx, int64_t pid, int status)
{
    (void)status;
    struct stacks *s = ctx;
    pthread_mutex_lock(&s->lock);
    struct sproc *p = sproc_find(s, pid);
    if (p) {
        free(p->segs);
        *p = s->procs[--s->nprocs];
    }
    pthread_mutex_unlock(&s->lock);
}

/* A new process, one that exec'd, or one exiting: held until the recorder has its snapshot. */
static int on_born(void *ctx, int64_t pid, int64_t parent, int kind)
{
    struct stacks *s = ctx;
    if (!s->follow)
        return 0;
    pthread_mutex_lock(&s->lock);
    if (s->state != HELD) {
        /* Not recording yet (the launched program's exec failed, and it exits). */
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    s->births = xgrow(s->births, &s->births_cap, s->nbirths + 1, sizeof(*s->births));
    s->births[s->nbirths++] = (struct stacks_birth){pid, parent, kind};
    pthread_mutex_unlock(&s->lock);
#ifndef _WIN32
    kill(getpid(), SIGCHLD); /* wakes the recorder's wait */
#endif
    return 1;
}

static void on_held(void *ctx, int64_t pid)
{
    struct stacks *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->state = HELD;
    s->pid = pid;
    pthread_cond_broadcast(&s->cond);
    while (!s->let_go)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

static uint64_t pages(uint64_t len)
{
    return (len + 4095) & ~(uint64_t)4095;
}

/* The stack's key in s->kbuf: its length. */
static size_t make_key(struct stacks *s, const struct trace_frame *f, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        size_t m = strlen(f[i].module) + 1, b = strlen(f[i].build_id) + 1;
        s->kbuf = xgrow(s->kbuf, &s->kbuf_cap, len + m + b + 8, 1);
        memcpy(s->kbuf + len, f[i].module, m);
        memcpy(s->kbuf + len + m, f[i].build_id, b);
        memcpy(s->kbuf + len + m + b, &f[i].offset, 8);
        len += m + b + 8;
    }
    return len;
}

static void rehash(struct stacks *s)
{
    size_t n = s->nslots ? 2 * s->nslots : 1024;
    size_t *slots = xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i < s->nstk; i++) {
        size_t h = (size_t)s->stk[i]->tag.lo & (n - 1);
        while (slots[h])
            h = (h + 1) & (n - 1);
        slots[h] = i + 1;
    }
    free(s->slots);
    s->slots = slots;
    s->nslots = n;
}

/* The stack's index in the table + 1, made when new. In the tracer thread. */
static size_t stack_of(struct stacks *s, const struct trace_frame *f, int n)
{
    size_t len = make_key(s, f, n);
    struct siphash_tag tag = siphash128(s->key, s->kbuf, len);
    if (2 * (s->nstk + 1) > s->nslots)
        rehash(s);
    size_t h = (size_t)tag.lo & (s->nslots - 1);
    for (; s->slots[h]; h = (h + 1) & (s->nslots - 1)) {
        const struct stack *k = s->stk[s->slots[h] - 1];
        if (k->tag.lo == tag.lo && k->tag.hi == tag.hi && k->len == len &&
            memcmp(k->key, s->kbuf, len) == 0)
            return s->slots[h];
    }
    struct stack *k = xcalloc(1, sizeof(*k));
    k->key = xmalloc(len);
    memcpy(k->key, s->kbuf, len);
    k->len = len;
    k->tag = tag;
    k->n = n;
    k->f = xcalloc((size_t)n, sizeof(*k->f));
    for (int i = 0; i < n; i++) {
        k->f[i].module = xstrdup(f[i].module);
        k->f[i].build_id = xstrdup(f[i].build_id);
        k->f[i].offset = f[i].offset;
    }
    pthread_mutex_lock(&s->lock);
    s->stk = xgrow(s->stk, &s->stk_cap, s->nstk + 1, sizeof(*s->stk));
    s->stk[s->nstk++] = k;
    size_t idx = s->nstk;
    pthread_mutex_unlock(&s->lock);
    s->slots[h] = idx;
    return idx;
}

/* A call returned: it is queued as the range it acted on. In the tracer thread. */
static void on_event(void *ctx, const struct trace_event *ev)
{
    struct stacks *s = ctx;
    int failed = ev->result < 0 && ev->result > -4096;
    struct qev q = {.pid = ev->pid,
                    .tid = ev->tid,
                    .at_ms = plat_realtime_ms(),
                    .call = ev->call,
                    .prot = -1,
                    .flags = -1,
                    .new_size = -1,
                    .result = ev->result};
    const uint64_t *a = ev->args;
    pthread_mutex_lock(&s->lock);
    struct sproc *p = sproc_find(s, ev->pid);
    if (!p)
        p = sproc_add(s, ev->pid);
    q.gen = p->gen;
    switch (ev->call) {
    case TRACE_MMAP:
        q.start = failed ? a[0] : (uint64_t)ev->result;
        q.end = q.start + pages(a[1]);
        q.prot = (int64_t)(a[2] & 0xffffffff);
        q.flags = (int64_t)(a[3] & 0xffffffff);
        break;
    case TRACE_MUNMAP:
        q.start = a[0];
        q.end = a[0] + pages(a[1]);
        break;
    case TRACE_MREMAP:
        q.start = a[0];
        q.end = a[0] + pages(a[1]);
        q.new_size = (int64_t)pages(a[2]);
        q.flags = (int64_t)(a[3] & 0xffffffff);
        break;
    case TRACE_MPROTECT:
        q.start = a[0];
        q.end = a[0] + pages(a[1]);
        q.prot = (int64_t)(a[2] & 0xffffffff);
        break;
    case TRACE_BRK: {
        /* The break moved from where the last brk left it: the range between, lower first. */
        uint64_t now = (uint64_t)ev->result, was = p->brk ? p->brk : now;
        q.start = was < now ? was : now;
        q.end = was < now ? now : was;
        if (!failed && ev->result > 0)
            p->brk = now;
        break;
    }
    case TRACE_SHMAT: {
        q.start = failed ? a[1] : (uint64_t)ev->result;
        q.flags = (int64_t)(a[2] & 0xffffffff);
        uint64_t len = 0;
#ifndef _WIN32
        struct shmid_ds ds;
        if (!failed && shmctl((int)a[0], IPC_STAT, &ds) == 0)
            len = pages(ds.shm_segsz);
#endif
        q.end = q.start + len;
        if (!failed && len)
            segs_add(p, q.start, len);
        break;
    }
    case TRACE_SHMDT:
        q.start = a[0];
        q.end = a[0] + (failed ? 0 : segs_take(p, a[0]));
        break;
    case TRACE_NT_ALLOCATE:
    case TRACE_NT_FREE:
    case TRACE_NT_PROTECT:
    case TRACE_NT_MAP_VIEW:
    case TRACE_NT_UNMAP_VIEW:
        /* Windows: the range as the call returned it, rounded to pages by the system. */
        q.start = a[0];
        q.end = a[0] + a[1];
        if (ev->call != TRACE_NT_FREE && ev->call != TRACE_NT_UNMAP_VIEW)
            q.prot = (int64_t)a[2];
        if (ev->call != TRACE_NT_PROTECT && ev->call != TRACE_NT_UNMAP_VIEW)
            q.flags = (int64_t)a[3];
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&s->lock);
    if (ev->nframes > 0)
        q.stack = stack_of(s, ev->frames, ev->nframes);
    pthread_mutex_lock(&s->lock);
    s->q = xgrow(s->q, &s->q_cap, s->nq + 1, sizeof(*s->q));
    s->q[s->nq++] = q;
    s->calls++;
    s->unwound_not += ev->nframes <= 0;
    pthread_mutex_unlock(&s->lock);
}

#ifndef _WIN32
static void ignore(int sig)
{
    (void)sig;
}

/* The signal that wakes the tracer's thread from its wait (stacks_close, attached). */
#define WAKE SIGURG
#endif

static void *run(void *arg)
{
    struct stacks *s = arg;
    struct err e = {0};
#ifndef _WIN32
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, WAKE);
    pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
#endif
    int rc =
        s->argv ? trace_launch(&s->t, s->argv, &e) : trace_attach(&s->t, s->pids, s->npids, &e);
    if (rc == 0 && (rc = trace_stacks(s->t, &e)) < 0) {
        /* A launched program goes; attached ones are let go as this thread ends. */
        trace_close(s->t);
        s->t = NULL;
    }
    if (rc == 0 && !s->argv) {
        /* Attached: recording starts now, the processes known before the recorder asks. */
        for (size_t i = 0; i < s->npids; i++)
            on_process(s, s->pids[i], 0);
        pthread_mutex_lock(&s->lock);
        s->state = HELD;
        s->pid = s->pids[0];
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
    int status = 0;
    if (rc == 0) {
        const struct trace_hooks h = {.ctx = s,
                                      .event = on_event,
                                      .process = on_process,
                                      .exited = on_exited,
                                      .execed = on_execed,
                                      .held = on_held,
                                      .born = on_born};
        rc = trace_run(s->t, &h, &status, &e);
    }
    pthread_mutex_lock(&s->lock);
    if (s->state == LAUNCHING) {
        /* It never reached its entry point: it could not run, or ended first. */
        s->state = rc < 0 ? FAILED : ENDED;
        if (rc < 0)
            s->err = e;
    }
    s->done = 1;
#ifdef _WIN32
    s->status = status; /* its exit code */
#else
    s->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
#endif
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void free_stacks(struct stacks *s)
{
    trace_close(s->t);
    for (size_t i = 0; i < s->nstk; i++) {
        struct stack *k = s->stk[i];
        store_frames_free(k->f, k->n);
        free(k->key);
        free(k);
    }
    for (size_t i = 0; i < s->nprocs; i++)
        free(s->procs[i].segs);
    free(s->procs);
    free(s->births);
    free(s->stk);
    free(s->q);
    free(s->work);
    free(s->db);
    free(s->fresh);
    free(s->slots);
    free(s->kbuf);
    trace_namer_close(s->namer);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

static int start(struct stacks *s, const char *what, int64_t *pid, struct stacks **out,
                 struct err *e);

/* The hash table's key: 1, or 0 when the system has no randomness to give. */
static int random_key(unsigned char *key, size_t n)
{
#ifdef _WIN32
    return RtlGenRandom(key, (ULONG)n) != FALSE;
#else
    return getrandom(key, n, 0) == (ssize_t)n;
#endif
}

int stacks_launch(struct stacks **out, char **argv, int follow, int64_t *pid, struct err *e)
{
    *out = NULL;
    struct stacks *s = xcalloc(1, sizeof(*s));
    s->argv = argv;
    s->follow = follow;
    return start(s, argv[0], pid, out, e);
}

int stacks_attach(struct stacks **out, const int64_t *pids, size_t n, int follow, struct err *e)
{
    *out = NULL;
    struct stacks *s = xcalloc(1, sizeof(*s));
    s->follow = follow;
    s->pids = pids;
    s->npids = n;
    int64_t pid;
    char what[32];
    snprintf(what, sizeof(what), "pid %lld", n ? (long long)pids[0] : 0LL);
    return start(s, what, &pid, out, e);
}

/* Starts the tracer's thread, and waits until the program is held (launched) or attached. */
static int start(struct stacks *s, const char *what, int64_t *pid, struct stacks **out,
                 struct err *e)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (!random_key(s->key, sizeof(s->key)))
        memset(s->key, 0x5a, sizeof(s->key)); /* the table is slower to attack, not wrong */
#ifndef _WIN32
    /* The tracer's stops would each wake the recorder with a SIGCHLD: only exits do. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ignore;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    /* WAKE interrupts the tracer's wait: no SA_RESTART. */
    sa.sa_flags = 0;
    sigaction(WAKE, &sa, NULL);
    /* The tracer thread takes no signal: they are the recorder's (its loop waits for them). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, run, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
#else
    int rc = pthread_create(&s->thread, NULL, run, s);
#endif
    if (rc != 0) {
        free_stacks(s);
        return err_set(e, ERR_IO, "cannot trace %s: no thread to trace it: %s", what, strerror(rc));
    }
    s->started = 1;
    pthread_mutex_lock(&s->lock);
    while (s->state == LAUNCHING)
        pthread_cond_wait(&s->cond, &s->lock);
    int state = s->state;
    *pid = s->pid;
    pthread_mutex_unlock(&s->lock);
    if (state == HELD) {
        *out = s;
        return 0;
    }
    pthread_join(s->thread, NULL);
    if (state == FAILED)
        rc = err_set(e, s->err.code ? s->err.code : ERR_IO, "%s", s->err.msg);
    else
        rc = err_set(e, ERR_EXITED, "%s exited before it could be traced", what);
    free_stacks(s);
    return rc;
}

void stacks_let_go(struct stacks *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->let_go = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int stacks_gen(struct stacks *s, int64_t pid)
{
    pthread_mutex_lock(&s->lock);
    const struct sproc *p = sproc_find(s, pid);
    int gen = p ? p->gen : -1;
    pthread_mutex_unlock(&s->lock);
    return gen;
}

int stacks_pending(struct stacks *s)
{
    pthread_mutex_lock(&s->lock);
    int any = s->nq > 0;
    pthread_mutex_unlock(&s->lock);
    return any || s->nwork > 0;
}

/* Names the frames of the stacks made since the last time, reading each module once. In the
 * recorder's thread, outside any transaction. */
void stacks_name(struct stacks *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->nstk;
    pthread_mutex_unlock(&s->lock);
    if (s->named >= n)
        return;
    struct err e = {0};
    if (!s->namer && !s->namer_failed && trace_namer_open(&s->namer, &e) < 0)
        s->namer_failed = 1;
    for (; s->named < n; s->named++) {
        pthread_mutex_lock(&s->lock);
        struct stack *k = s->stk[s->named];
        pthread_mutex_unlock(&s->lock);
        if (!s->namer)
            continue;
        /* Each frame named, and an optimized build's inlined functions made frames of their
         * own: the stack as stored (its key stays the raw frames). */
        struct store_frame *v = NULL;
        size_t nv = 0, cap = 0;
        for (int i = 0; i < k->n; i++) {
            struct trace_name names[16];
            int got = trace_namer_frames(s->namer, k->f[i].module, k->f[i].build_id, k->f[i].offset,
                                         names, 16, &e);
            if (got < 1) {
                got = 1;
                memset(names, 0, sizeof(names[0]));
            }
            v = xgrow(v, &cap, nv + (size_t)got, sizeof(*v));
            for (int j = 0; j < got; j++) {
                struct store_frame *f = &v[nv++];
                f->module = xstrdup(k->f[i].module);
                f->build_id = xstrdup(k->f[i].build_id);
                f->offset = k->f[i].offset;
                f->function = names[j].function;
                f->file = names[j].file;
                f->line = names[j].line;
            }
        }
        store_frames_free(k->f, k->n);
        k->f = v;
        k->n = (int)nv;
        k->named = 1;
    }
}

int stacks_write(struct stacks *s, struct store_events *w, stacks_target_fn target_of, void *ctx,
                 struct err *e)
{
    /* What came since the last write joins what was kept. */
    pthread_mutex_lock(&s->lock);
    if (s->nq) {
        s->work = xgrow(s->work, &s->work_cap, s->nwork + s->nq, sizeof(*s->work));
        memcpy(s->work + s->nwork, s->q, s->nq * sizeof(*s->q));
        s->nwork += s->nq;
        s->nq = 0;
    }
    size_t nstk = s->nstk;
    pthread_mutex_unlock(&s->lock);
    stacks_name(s);
    if (nstk > s->db_cap) {
        size_t was = s->db_cap;
        s->db = xgrow(s->db, &s->db_cap, nstk, sizeof(*s->db));
        memset(s->db + was, 0, (s->db_cap - was) * sizeof(*s->db));
    }
    s->nfresh = 0;
    s->calls_now = 0;
    for (size_t i = 0; i < s->nwork; i++) {
        struct qev *q = &s->work[i];
        q->done = 0;
        int64_t target = target_of(ctx, q->pid, q->gen);
        if (target == 0)
            continue; /* kept until its process has a target */
        q->done = 1;
        if (target < 0)
            continue; /* dropped */
        int64_t stack_id = 0;
        if (q->stack) {
            size_t k = q->stack - 1;
            if (k >= s->db_cap || k >= nstk)
                continue; /* cannot be: made before it was queued */
            if (!s->db[k]) {
                pthread_mutex_lock(&s->lock);
                struct stack *st = s->stk[k];
                pthread_mutex_unlock(&s->lock);
                int rc = store_stack_add(w, st->key, st->len, st->f, st->n, &s->db[k], e);
                if (rc < 0)
                    return rc;
                s->fresh = xgrow(s->fresh, &s->fresh_cap, s->nfresh + 1, sizeof(*s->fresh));
                s->fresh[s->nfresh++] = k;
            }
            stack_id = s->db[k];
        }
        const struct store_event ev = {.target_id = target,
                                       .tid = q->tid,
                                       .at_ms = q->at_ms,
                                       .call = trace_call_name(q->call),
                                       .start = q->start,
                                       .end = q->end,
                                       .prot = q->prot,
                                       .flags = q->flags,
                                       .new_size = q->new_size,
                                       .result = q->result,
                                       .stack_id = stack_id};
        int rc = store_event_add(w, &ev, e);
        if (rc < 0)
            return rc;
        s->calls_now++;
    }
    return 0;
}

void stacks_written(struct stacks *s, int committed)
{
    if (!committed) {
        /* Nothing of it is in the database: the stacks it added are not either. */
        for (size_t i = 0; i < s->nfresh; i++)
            s->db[s->fresh[i]] = 0;
        s->nfresh = 0;
        return;
    }
    s->stacks_written += (int64_t)s->nfresh;
    s->calls_written += s->calls_now;
    s->calls_now = 0;
    s->nfresh = 0;
    size_t kept = 0;
    for (size_t i = 0; i < s->nwork; i++)
        if (!s->work[i].done)
            s->work[kept++] = s->work[i];
    s->nwork = kept;
}

void stacks_quiet(struct stacks *s)
{
    if (s && s->t)
        trace_quiet(s->t); /* and every process held runs on */
}

size_t stacks_births(struct stacks *s, struct stacks_birth **v)
{
    pthread_mutex_lock(&s->lock);
    *v = s->births;
    size_t n = s->nbirths;
    s->births = NULL;
    s->nbirths = s->births_cap = 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void stacks_release(struct stacks *s, int64_t pid)
{
    if (s->t)
        trace_release(s->t, pid);
}

int stacks_done(struct stacks *s)
{
    pthread_mutex_lock(&s->lock);
    int done = s->done;
    pthread_mutex_unlock(&s->lock);
    return done;
}

int stacks_close(struct stacks *s)
{
    if (!s)
        return 0;
    stacks_quiet(s);
    stacks_let_go(s);
    if (!s->argv && s->t) {
        /* Attached: it lets go of the processes, which run on untraced. Its wait is woken
         * until it has (a wake that comes just before it waits is not lost for good). */
        trace_detach(s->t);
#ifndef _WIN32
        while (!stacks_done(s)) {
            pthread_kill(s->thread, WAKE);
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
#endif
    }
    pthread_join(s->thread, NULL);
    int status = s->status;
    free_stacks(s);
    return status;
}

void stacks_counts(const struct stacks *s, int64_t *calls, int64_t *stacks, int64_t *unwound_not)
{
    struct stacks *m = (struct stacks *)s;
    pthread_mutex_lock(&m->lock);
    *unwound_not = m->unwound_not;
    pthread_mutex_unlock(&m->lock);
    *calls = m->calls_written;
    *stacks = m->stacks_written;
}
