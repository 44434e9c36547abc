/* The Linux tracer (src/trace): a launched program's memory calls, in every thread and child,
 * with their arguments and results; its other calls untouched; failures named. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trace/trace.h"

struct seen {
    struct trace_event *v;
    size_t n, cap;
    int64_t procs[8], parents[8];
    size_t nprocs;
    int64_t exited[8];
    size_t nexited;
};

static void on_event(void *ctx, const struct trace_event *ev)
{
    struct seen *s = ctx;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        assert_non_null(s->v);
    }
    s->v[s->n++] = *ev;
}

static void on_process(void *ctx, int64_t pid, int64_t parent)
{
    struct seen *s = ctx;
    if (s->nprocs < 8) {
        s->procs[s->nprocs] = pid;
        s->parents[s->nprocs++] = parent;
    }
}

static void on_exited(void *ctx, int64_t pid, int status)
{
    struct seen *s = ctx;
    (void)status;
    if (s->nexited < 8)
        s->exited[s->nexited++] = pid;
}

/* The traced call of that kind whose first argument is at, or NULL. */
static const struct trace_event *find_call(const struct seen *s, int call, uint64_t at)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].call == call && s->v[i].args[0] == at)
            return &s->v[i];
    return NULL;
}

static void test_calls_of_threads_and_children(void **state)
{
    (void)state;
    char *argv[] = {TRACE_CHILD_BIN, NULL};
    struct tracer *t = NULL;
    struct err e = {0};
    assert_int_equal(trace_launch(&t, argv, &e), 0);
    int64_t root = trace_pid(t);
    struct seen s = {0};
    const struct trace_hooks h = {
        .ctx = &s, .event = on_event, .process = on_process, .exited = on_exited};
    int status = -1;
    assert_int_equal(trace_run(t, &h, &status, &e), 0);
    trace_close(t);
    /* Every call the program made worked: none failed for want of a tracer. */
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    long page = sysconf(_SC_PAGESIZE);
    /* main thread 3 pages at 0x5a0000000, a thread 2 at 0x5b0000000, a child 4 at 0x5c0000000 */
    static const struct {
        uint64_t at;
        uint64_t pages;
    } cycles[] = {{0x5a0000000, 3}, {0x5b0000000, 2}, {0x5c0000000, 4}};
    int64_t tids[3], pids[3];
    for (int k = 0; k < 3; k++) {
        uint64_t len = cycles[k].pages * (uint64_t)page;
        const struct trace_event *m = find_call(&s, TRACE_MMAP, cycles[k].at);
        const struct trace_event *p = find_call(&s, TRACE_MPROTECT, cycles[k].at);
        const struct trace_event *u = find_call(&s, TRACE_MUNMAP, cycles[k].at);
        assert_non_null(m);
        assert_non_null(p);
        assert_non_null(u);
        assert_true(m->args[1] == len);
        assert_true(m->args[2] == (PROT_READ | PROT_WRITE));
        assert_true((uint64_t)m->result == cycles[k].at);
        assert_true(p->args[1] == len && p->args[2] == PROT_READ && p->result == 0);
        assert_true(u->args[1] == len && u->result == 0);
        assert_true(m < p && p < u); /* in the order made */
        assert_int_equal(m->tid, u->tid);
        tids[k] = m->tid;
        pids[k] = m->pid;
    }
    /* The thread is another thread of the program; the child is a process of its own. */
    assert_int_equal(pids[0], root);
    assert_int_equal(tids[0], root);
    assert_int_equal(pids[1], root);
    assert_true(tids[1] != root);
    assert_true(pids[2] != root);
    assert_int_equal(tids[2], pids[2]);
    /* The handler's cycle, in the main thread. */
    const struct trace_event *h_map = find_call(&s, TRACE_MMAP, 0x5d0000000);
    assert_non_null(h_map);
    assert_int_equal(h_map->tid, root);
    assert_true((uint64_t)h_map->result == 0x5d0000000);
    /* The processes: the program, its child, then the spawned `true`, each named with its
     * parent; all exited. `true` is traced too: its loader's calls are there. */
    assert_int_equal(s.nprocs, 3);
    assert_int_equal(s.procs[0], root);
    assert_int_equal(s.parents[0], 0);
    assert_int_equal(s.procs[1], pids[2]);
    assert_int_equal(s.parents[1], root);
    assert_int_equal(s.parents[2], root);
    assert_int_equal(s.nexited, 3);
    size_t spawned_calls = 0;
    for (size_t i = 0; i < s.n; i++)
        spawned_calls += s.v[i].pid == s.procs[2] && s.v[i].call == TRACE_MMAP;
    assert_true(spawned_calls >= 3);
    /* malloc's own 64 MiB mapping, made through glibc's internal mmap. */
    int big = 0;
    for (size_t i = 0; i < s.n; i++)
        big |= s.v[i].call == TRACE_MMAP && s.v[i].args[1] >= (64u << 20) && s.v[i].pid == root;
    assert_true(big);
    /* The loader's calls are there too, and only memory calls are. */
    assert_true(s.n > 12);
    for (size_t i = 0; i < s.n; i++)
        assert_true(s.v[i].call >= TRACE_MMAP && s.v[i].call <= TRACE_SHMDT);
    free(s.v);
}

/* Whether s ends with suffix. */
static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The function that frame f of ev is in, named from its module's file (the caller frees). */
static char *function_of(const struct trace_frame *f, char **file, int *line)
{
    char *fn = NULL;
    struct err e = {0};
    assert_int_equal(trace_name(f->module, f->offset, &fn, file, line, &e), 0);
    return fn;
}

struct stacks_seen {
    int events, unwound;
    /* For each of the four cycles' mmaps: the functions of its first frames in trace_child. */
    char *caller[4], *outer[4], *file[4];
    int line[4];
    char build_id[41];
};

static void on_stack_event(void *ctx, const struct trace_event *ev)
{
    struct stacks_seen *s = ctx;
    static const uint64_t at[4] = {0x5a0000000, 0x5b0000000, 0x5c0000000, 0x5d0000000};
    s->events++;
    s->unwound += ev->nframes > 0;
    for (int k = 0; k < 4; k++) {
        if (ev->call != TRACE_MMAP || ev->args[0] != at[k])
            continue;
        /* Innermost first: the C library's mmap, then the program's frames. */
        for (int i = 0; i < ev->nframes; i++) {
            const struct trace_frame *f = &ev->frames[i];
            if (!ends_with(f->module, "/trace_child"))
                continue;
            char *file = NULL;
            int line = 0;
            char *fn = function_of(f, &file, &line);
            if (!s->caller[k]) {
                s->caller[k] = fn;
                s->file[k] = file;
                s->line[k] = line;
                snprintf(s->build_id, sizeof(s->build_id), "%s", f->build_id);
            } else {
                s->outer[k] = fn;
                free(file);
                break;
            }
        }
    }
}

static void test_stacks_name_the_call_sites(void **state)
{
    (void)state;
    char *argv[] = {TRACE_CHILD_BIN, NULL};
    struct tracer *t = NULL;
    struct err e = {0};
    assert_int_equal(trace_launch(&t, argv, &e), 0);
    int rc = trace_stacks(t, &e);
    if (rc == ERR_UNSUPPORTED) {
        /* A build without libdw: it says so, and the program runs on untraced by stacks. */
        assert_non_null(strstr(e.msg, "built without it"));
        int status;
        assert_int_equal(trace_run(t, &(struct trace_hooks){0}, &status, &e), 0);
        trace_close(t);
        skip();
    }
    assert_int_equal(rc, 0);
    struct stacks_seen s = {0};
    const struct trace_hooks h = {.ctx = &s, .event = on_stack_event};
    int status = -1;
    assert_int_equal(trace_run(t, &h, &status, &e), 0);
    trace_close(t);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Every call's stack was taken, the loader's first ones too. */
    assert_true(s.events > 12);
    assert_int_equal(s.unwound, s.events);
    /* Each cycle's mmap: made in cycle(), at the same line of trace_child.c, called by main,
     * by the thread's function, by main in the forked child, and by the signal handler. */
    static const char *const outer[4] = {"main", "thread_main", "main", "on_signal"};
    for (int k = 0; k < 4; k++) {
        assert_non_null(s.caller[k]);
        assert_string_equal(s.caller[k], "cycle");
        assert_non_null(s.file[k]);
        assert_true(ends_with(s.file[k], "helpers/trace_child.c"));
        assert_true(s.line[k] > 0);
        assert_int_equal(s.line[k], s.line[0]);
        assert_non_null(s.outer[k]);
        assert_string_equal(s.outer[k], outer[k]);
        free(s.caller[k]);
        free(s.outer[k]);
        free(s.file[k]);
    }
    /* The module's GNU build id, 20 bytes in hex. */
    assert_int_equal(strlen(s.build_id), 40);
}

struct big_seen {
    int64_t len;
    int nframes;
    int in_python; /* a frame of its stack is in python3's own code */
};

static void on_big(void *ctx, const struct trace_event *ev)
{
    struct big_seen *s = ctx;
    if (ev->call != TRACE_MMAP || ev->args[1] < (64u << 20) || s->len)
        return;
    s->len = (int64_t)ev->args[1];
    s->nframes = ev->nframes;
    for (int i = 0; i < ev->nframes; i++)
        s->in_python |= strstr(ev->frames[i].module, "python3") != NULL;
}

static void test_python_allocating(void **state)
{
    (void)state;
    /* An interpreter: a 64 MiB bytearray is one mmap by malloc, its stack deep in python3. */
    char *argv[] = {"python3", "-c", "b = bytearray(64 << 20)", NULL};
    struct tracer *t = NULL;
    struct err e = {0};
    assert_int_equal(trace_launch(&t, argv, &e), 0);
    if (trace_stacks(t, &e) == ERR_UNSUPPORTED) {
        int status;
        assert_int_equal(trace_run(t, &(struct trace_hooks){0}, &status, &e), 0);
        trace_close(t);
        skip();
    }
    struct big_seen s = {0};
    int status = -1;
    assert_int_equal(trace_run(t, &(struct trace_hooks){.ctx = &s, .event = on_big}, &status, &e),
                     0);
    trace_close(t);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(s.len >= (64 << 20));
    assert_true(s.nframes >= 4);
    assert_true(s.in_python);
}

static void test_a_thread_that_execs(void **state)
{
    (void)state;
    /* A thread other than the main one execs `true`: it takes the program's pid, the other
     * threads go, and the new program's calls are the same process's. */
    char *argv[] = {TRACE_CHILD_BIN, "thread-exec", NULL};
    struct tracer *t = NULL;
    struct err e = {0};
    assert_int_equal(trace_launch(&t, argv, &e), 0);
    int64_t root = trace_pid(t);
    assert_int_equal(trace_stacks(t, &e) == 0 || e.code == ERR_UNSUPPORTED, 1);
    struct seen s = {0};
    int status = -1;
    const struct trace_hooks h = {
        .ctx = &s, .event = on_event, .process = on_process, .exited = on_exited};
    assert_int_equal(trace_run(t, &h, &status, &e), 0);
    trace_close(t);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* true's, not trace_child's */
    assert_int_equal(s.nprocs, 1);
    assert_int_equal(s.nexited, 1);
    assert_int_equal(s.exited[0], root);
    /* The thread's stack mmap, then, after the exec, `true`'s loader mapping it: all root's. */
    assert_true(s.n > 10);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.v[i].pid, root);
    assert_int_equal(s.v[s.n - 1].tid, root);
    free(s.v);
}

static void test_a_missing_program_is_named(void **state)
{
    (void)state;
    char *argv[] = {"/nonexistent/vmsnap-no-such-program", NULL};
    struct tracer *t = NULL;
    struct err e = {0};
    assert_int_equal(trace_launch(&t, argv, &e), 0);
    struct seen s = {0};
    const struct trace_hooks h = {
        .ctx = &s, .event = on_event, .process = on_process, .exited = on_exited};
    int status;
    assert_int_equal(trace_run(t, &h, &status, &e), ERR_NOPROC);
    assert_non_null(strstr(e.msg, "cannot run '/nonexistent/vmsnap-no-such-program'"));
    assert_non_null(strstr(e.msg, "No such file"));
    trace_close(t);
    free(s.v);
}

/* test_trace --nested FILE: what a tracer says when its program cannot be traced, because this
 * process is traced itself (by the test): its message into FILE, exit 3 when it is ERR_PERM. */
static int nested(const char *file)
{
    char *argv[] = {"true", NULL};
    struct tracer *t = NULL;
    struct err e = {0};
    int rc = trace_launch(&t, argv, &e);
    FILE *f = fopen(file, "w");
    if (f) {
        fputs(e.msg, f);
        fclose(f);
    }
    trace_close(t);
    return rc == ERR_PERM ? 3 : 4;
}

static void test_an_already_traced_program_is_named(void **state)
{
    (void)state;
    char self[4096], file[] = "/tmp/vmsnap-nested-XXXXXX";
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    close(fd);
    char *argv[] = {self, "--nested", file, NULL};
    /* Under AddressSanitizer the nested run's leak check at exit would stop its threads from a
     * CLONE_UNTRACED task, which inherits the filter with no tracer: its memory calls fail. */
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    struct tracer *t = NULL;
    struct err e = {0};
    assert_int_equal(trace_launch(&t, argv, &e), 0);
    int status = -1;
    assert_int_equal(trace_run(t, &(struct trace_hooks){0}, &status, &e), 0);
    trace_close(t);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    char msg[512] = "";
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    assert_non_null(fgets(msg, sizeof(msg), f));
    fclose(f);
    unlink(file);
    assert_string_equal(msg, "cannot trace 'true': it is traced already (is vmsnap itself "
                             "running under strace -f or a debugger?)");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--nested") == 0)
        return nested(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_of_threads_and_children),
        cmocka_unit_test(test_stacks_name_the_call_sites),
        cmocka_unit_test(test_python_allocating),
        cmocka_unit_test(test_a_thread_that_execs),
        cmocka_unit_test(test_a_missing_program_is_named),
        cmocka_unit_test(test_an_already_traced_program_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
