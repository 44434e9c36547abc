/* Runs a program under vmsnap's tracer (src/trace), with or without stacks, counting the calls
 * it saw and the frames of their stacks: the tracer alone, without the recorder around it.
 *   trace_drive [--stacks] PROGRAM [ARG...] */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "trace/trace.h"

struct counts {
    long calls, frames, unwound;
};

static void on_event(void *ctx, const struct trace_event *ev)
{
    struct counts *c = ctx;
    c->calls++;
    c->frames += ev->nframes;
    c->unwound += ev->nframes > 0;
}

int main(int argc, char **argv)
{
    int stacks = argc > 1 && strcmp(argv[1], "--stacks") == 0;
    char **cmd = argv + 1 + stacks;
    if (!cmd[0]) {
        fprintf(stderr, "usage: trace_drive [--stacks] PROGRAM [ARG...]\n");
        return 2;
    }
    struct tracer *t;
    struct err e = {0};
    struct counts c = {0};
    int status = 0;
    if (trace_launch(&t, cmd, &e) < 0 || (stacks && trace_stacks(t, &e) < 0) ||
        trace_run(t, &(struct trace_hooks){.ctx = &c, .event = on_event}, &status, &e) < 0) {
        fprintf(stderr, "trace_drive: %s\n", e.msg);
        return 1;
    }
    trace_close(t);
    fprintf(stderr, "%ld calls, %ld unwound, %.1f frames each\n", c.calls, c.unwound,
            c.unwound ? (double)c.frames / (double)c.unwound : 0.0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
