/* Call stacks in a build without elfutils' libdw: there are none, and trace_unwinder_open says
 * so. */
#include "trace/trace.h"

#define NO_LIBDW "call stacks need elfutils' libdw: this vmsnap was built without it"

int trace_unwinder_open(struct trace_unwinder **out, int64_t pid, struct err *e)
{
    (void)pid;
    *out = NULL;
    return err_set(e, ERR_UNSUPPORTED, NO_LIBDW);
}

void trace_unwinder_stale(struct trace_unwinder *u)
{
    (void)u;
}

int trace_unwinder_knows(struct trace_unwinder *u, uint64_t start, uint64_t len)
{
    (void)u, (void)start, (void)len;
    return 0;
}

int trace_unwind(struct trace_unwinder *u, int64_t tid, const void *regs,
                 struct trace_frame *frames, int max, struct err *e)
{
    (void)u, (void)tid, (void)regs, (void)frames, (void)max;
    return err_set(e, ERR_UNSUPPORTED, NO_LIBDW);
}

void trace_unwinder_close(struct trace_unwinder *u)
{
    (void)u;
}

int trace_name(const char *module, uint64_t offset, char **function, char **file, int *line,
               struct err *e)
{
    (void)module, (void)offset;
    *function = *file = NULL;
    *line = 0;
    return err_set(e, ERR_UNSUPPORTED, NO_LIBDW);
}

int trace_namer_open(struct trace_namer **out, struct err *e)
{
    *out = NULL;
    return err_set(e, ERR_UNSUPPORTED, NO_LIBDW);
}

int trace_namer_name(struct trace_namer *nm, const char *module, const char *build_id,
                     uint64_t offset, char **function, char **file, int *line, struct err *e)
{
    (void)nm, (void)module, (void)build_id, (void)offset;
    *function = *file = NULL;
    *line = 0;
    return err_set(e, ERR_UNSUPPORTED, NO_LIBDW);
}

int trace_namer_frames(struct trace_namer *nm, const char *module, const char *build_id,
                       uint64_t offset, struct trace_name *v, int max, struct err *e)
{
    (void)nm, (void)module, (void)build_id, (void)offset, (void)v, (void)max;
    return err_set(e, ERR_UNSUPPORTED, NO_LIBDW);
}

void trace_namer_close(struct trace_namer *nm)
{
    (void)nm;
}
