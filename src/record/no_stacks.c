/* stacks.h where there is no tracer (neither Linux nor Windows): record --stacks says so. */
#include "record/stacks.h"

int stacks_launch(struct stacks **out, char **argv, int follow, int64_t *pid, struct err *e)
{
    (void)argv, (void)follow;
    *out = NULL;
    *pid = 0;
    return err_set(e, ERR_UNSUPPORTED, "--stacks: call stacks are recorded on Linux and Windows only");
}

int stacks_attach(struct stacks **out, const int64_t *pids, size_t n, int follow, struct err *e)
{
    (void)pids, (void)n, (void)follow;
    *out = NULL;
    return err_set(e, ERR_UNSUPPORTED, "--stacks: call stacks are recorded on Linux and Windows only");
}

void stacks_let_go(struct stacks *s)
{
    (void)s;
}

int stacks_gen(struct stacks *s, int64_t pid)
{
    (void)s, (void)pid;
    return -1;
}

int stacks_pending(struct stacks *s)
{
    (void)s;
    return 0;
}

int stacks_write(struct stacks *s, struct store_events *w, stacks_target_fn target_of, void *ctx,
                 struct err *e)
{
    (void)s, (void)w, (void)target_of, (void)ctx, (void)e;
    return 0;
}

void stacks_written(struct stacks *s, int committed)
{
    (void)s, (void)committed;
}

void stacks_name(struct stacks *s)
{
    (void)s;
}

void stacks_quiet(struct stacks *s)
{
    (void)s;
}

int stacks_done(struct stacks *s)
{
    (void)s;
    return 1;
}

int stacks_close(struct stacks *s)
{
    (void)s;
    return 0;
}

void stacks_counts(const struct stacks *s, int64_t *calls, int64_t *stacks, int64_t *unwound_not)
{
    (void)s;
    *calls = *stacks = *unwound_not = 0;
}

size_t stacks_births(struct stacks *s, struct stacks_birth **v)
{
    (void)s;
    *v = NULL;
    return 0;
}

void stacks_release(struct stacks *s, int64_t pid)
{
    (void)s, (void)pid;
}
