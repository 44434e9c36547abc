#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/growth.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "json/forms.h"

static const struct cli_command growth_command = {
    .name = "growth",
    .synopsis =
        "usage: vmsnap growth [--target ID] [--tree] [--from SNAP] [--to SNAP] [--category C]\n"
        "                     [--top N] [--fail-on-rate BYTES_PER_S]\n\n"
        "What keeps growing over a recording, how fast, and since when: committed and rss bytes "
        "of\n"
        "the process and of each category cut into phases (growth, flat, release; start-up and\n"
        "shutdown), each said in one plain line: the last growth still held, with its own rate\n"
        "and onset, or the peak and where it was given back. Then the regions that grew most,\n"
        "followed across snapshots (lineages), those that gave memory back (released), and those\n"
        "born during the range and never freed (survivors). A recorded process tree is answered\n"
        "for as one: a row per process, ranked by held growth, then the detail of the top one.\n",
    .epilog =
        "Committed bytes are mapped bytes less no-access ranges (guard pages, reservations such "
        "as\n"
        "a malloc arena's PROT_NONE tail) and Windows reserve. A growth is held while more than\n"
        "half of what it gained stays; RATE and ONSET are the last held growth's (PEAK is\n"
        "the highest value less the first). Moves within the noise band (1% of the largest value,\n"
        "at least 1M) are not phases.\n"
        "Exit status: 0, or 2 for trouble; with --fail-on-rate, 1 when the held growth's rate\n"
        "exceeds RATE (start-up, shutdown and growth that was given back never do); over a\n"
        "tree, when any process's does (with --category, the detailed process's category).\n",
};

struct growth_args {
    int64_t target;
    int tree;
    const char *from, *to;
    int category;
    int64_t top;
    int fail_on_rate;
    uint64_t rate_limit; /* bytes per second */
};

/* "+3.1 MiB/s": a rate in binary units. */
static const char *human_rate(double bps, char out[32])
{
    static const char *const units[] = {"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"};
    double v = fabs(bps);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    const char *sign = bps > 0 && v >= 0.05 ? "+" : bps < 0 && v >= 0.05 ? "-" : "";
    if (u == 0 || v >= 10)
        snprintf(out, 32, "%s%.0f %s", sign, v, units[u]);
    else
        snprintf(out, 32, "%s%.1f %s", sign, v, units[u]);
    return out;
}

/* "64K", "1M/s": bytes per second. */
static int parse_rate(const char *arg, void *rate)
{
    char buf[64];
    size_t len = strlen(arg);
    snprintf(buf, sizeof(buf), "%s", arg);
    if (len > 2 && len < sizeof(buf) && strcmp(buf + len - 2, "/s") == 0)
        buf[len - 2] = '\0';
    return cli_parse_size(buf, rate);
}

static int parse_args(struct cli *cli, int argc, char **argv, struct growth_args *a)
{
    const struct cli_opt opts[] = {
        CLI_OPT_TARGET_ROW(&a->target, "that process alone (default: the newest recording's "
                                       "tree,\nin detail its top grower)"),
        {CLI_OPTION(0, "tree", CLI_OPT_FLAG, &a->tree, NULL,
                    "the tree from --target: a row per process, then the\ntop one in detail")},
        {CLI_OPTION('F', "from", CLI_OPT_STRING, &a->from, "SNAP",
                    "first snapshot of the range (default: the target's first)")},
        {CLI_OPTION('t', "to", CLI_OPT_STRING, &a->to, "SNAP",
                    "last snapshot of the range (default: the target's last)")},
        CLI_OPT_CATEGORY_ROW(&a->category, "categories, lineages and survivors of this category "
                                           "only;\n--fail-on-rate then judges its committed rate"),
        {CLI_OPTION('n', "top", CLI_OPT_COUNT, &a->top, "N",
                    "at most N lineages and survivor groups (default 10)"),
         .min = 1},
        {CLI_OPTION('f', "fail-on-rate", CLI_OPT_CALL, &a->rate_limit, "RATE",
                    "exit 1 when the held growth of committed bytes grows\n"
                    "faster than RATE bytes per second (units K, M, G; '/s' may\n"
                    "follow), else 0"),
         .what = "rate",
         .expected = "bytes per second with an optional unit K, M or G, e.g. 64K or 1M/s",
         .call = parse_rate, .given = &a->fail_on_rate},
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    return cli_parse_options(cli, &growth_command, opts, argc, argv, &args);
}

/* The plain line of one series: what a person would repeat of its phases. 0 when it says
 * nothing grew beyond the noise band. */
static int say(const struct growth_stat *s, const struct growth_result *g, char *out, size_t cap)
{
    char d[24], r[32];
    if (s->onset != GROWTH_NONE) {
        const struct growth_snap *on = &g->snaps[s->onset], *to = &g->snaps[s->stopped];
        if (s->growing)
            snprintf(out, cap, "growing since seq %lld (%s) at %s", (long long)on->seq,
                     on->taken_at, human_rate(s->rate, r));
        else {
            int64_t grew = 0;
            for (size_t i = 0; i < s->nphases; i++)
                if (s->phases[i].kind == PHASE_GROWTH && s->phases[i].from == s->onset)
                    grew = s->phases[i].delta;
            snprintf(out, cap, "grew %s from seq %lld to seq %lld at %s, held since",
                     cli_human_signed(grew, d), (long long)on->seq, (long long)to->seq,
                     human_rate(s->rate, r));
        }
        return 1;
    }
    /* Given back: by the end of the first release after the peak that brings the value below
     * half of its rise. */
    const struct phase *startup = NULL, *back = NULL;
    int64_t rise = s->peak_bytes - s->start, value = s->start;
    for (size_t i = 0; i < s->nphases; i++) {
        const struct phase *p = &s->phases[i];
        value += p->delta;
        if (p->kind == PHASE_STARTUP)
            startup = p;
        if (!back && p->from >= s->peak &&
            (p->kind == PHASE_RELEASE || p->kind == PHASE_SHUTDOWN) && value - s->start <= rise / 2)
            back = p;
    }
    if (back && rise > s->band) {
        snprintf(out, cap, "nothing held; peak %s at seq %lld, given back by seq %lld",
                 cli_human_signed(rise, d), (long long)g->snaps[s->peak].seq,
                 (long long)g->snaps[back->to].seq);
        return 1;
    }
    if (startup) {
        snprintf(out, cap, "nothing held after start-up (%s by seq %lld)",
                 cli_human_signed(startup->delta, d), (long long)g->snaps[startup->to].seq);
        return 1;
    }
    snprintf(out, cap, "nothing grew (changes within %s)", cli_human((uint64_t)s->band, d));
    return 0;
}

static void print_stat_row(const char *name, const struct growth_stat *s,
                           const struct growth_result *g)
{
    char a[16], b[16], d[24], p[24], r[32], on[64];
    if (s->onset == GROWTH_NONE)
        snprintf(on, sizeof(on), "-");
    else
        snprintf(on, sizeof(on), "seq %lld (%s)", (long long)g->snaps[s->onset].seq,
                 g->snaps[s->onset].taken_at);
    cli_printf("  %-9s %8s %8s %9s %9s %13s  %4.2f  %s\n", name,
               cli_human(s->start < 0 ? 0 : (uint64_t)s->start, a),
               cli_human(s->end < 0 ? 0 : (uint64_t)s->end, b), cli_human_signed(s->delta, d),
               cli_human_signed(s->peak_bytes - s->start, p), human_rate(s->rate, r), s->r2, on);
}

/* Recorded with --stacks: the code that holds what the range made. */
static void print_sites(const struct growth_result *g)
{
    if (!g->have_sites)
        return;
    cli_printf("\ncall sites holding memory (made in the range, committed at its end; for brk and "
               "arena growth\nthe stack is the allocation that made the allocator grow, not "
               "necessarily the code that keeps it):\n");
    if (!g->nsites) {
        cli_printf("  none: what the range's calls made is gone or not committed at its end\n");
        return;
    }
    cli_printf("  %9s %7s %6s  %s\n", "BYTES", "REGIONS", "CALLS",
               "SITE (the first frame outside "
               "the C library) <- its callers");
    for (size_t i = 0; i < g->nsites; i++) {
        const struct growth_site *s = &g->sites[i];
        char b[16];
        cli_printf("  %9s %7lld %6lld  ", cli_human(s->bytes, b), (long long)s->regions,
                   (long long)s->calls);
        if (!s->nframes)
            fputs("?", stdout);
        for (int k = s->shown; k < s->nframes && k < s->shown + 3; k++) {
            if (k > s->shown)
                fputs(" <- ", stdout);
            cli_print_frame(stdout, &s->frames[k]);
        }
        fputc('\n', stdout);
    }
}

/* One series' plain line, when it says more than "nothing grew" (or always, when asked). */
static void print_said(const char *name, const struct growth_stat *s, const struct growth_result *g,
                       int always)
{
    char line[256];
    if (say(s, g, line, sizeof(line)) || always)
        cli_printf("  %-13s %s\n", name, line);
}

static void print_table(const struct store_target *t, const struct growth_result *g)
{
    const struct growth_snap *first = &g->snaps[0], *last = &g->snaps[g->nsnaps - 1];
    cli_printf("target %lld  pid %lld  ", (long long)t->id, (long long)t->pid);
    const char *cmd = t->cmdline && *t->cmdline ? t->cmdline : t->exe ? t->exe : "?";
    cli_print_escaped(stdout, cmd, strlen(cmd));
    cli_printf("\nfrom snapshot %lld (seq %lld, %s) to snapshot %lld (seq %lld, %s): %.1f s, %zu "
               "snapshot%s\n\n",
               (long long)first->id, (long long)first->seq, first->taken_at, (long long)last->id,
               (long long)last->seq, last->taken_at, g->duration_s, g->nsnaps,
               g->nsnaps == 1 ? "" : "s");
    print_said("committed", &g->committed, g, 1);
    if (g->have_rss)
        print_said("rss", &g->rss, g, 1);
    for (int c = 0; c < CAT_COUNT; c++)
        if (g->cat[c].present) {
            char name[32];
            snprintf(name, sizeof(name), "%s", region_category_name(c));
            print_said(name, &g->cat[c].committed, g, 0);
        }
    cli_printf("\n  %-9s %8s %8s %9s %9s %13s  %4s  %s\n", "", "START", "END", "DELTA", "PEAK",
               "RATE", "R2", "ONSET");
    print_stat_row("committed", &g->committed, g);
    if (g->have_rss)
        print_stat_row("rss", &g->rss, g);
    cli_printf("\ncommitted by category:\n");
    for (int c = 0; c < CAT_COUNT; c++)
        if (g->cat[c].present)
            print_stat_row(region_category_name(c), &g->cat[c].committed, g);
    if (g->have_cat_rss) {
        cli_printf("\nrss by category:\n");
        for (int c = 0; c < CAT_COUNT; c++)
            if (g->cat[c].present)
                print_stat_row(region_category_name(c), &g->cat[c].rss, g);
    }
    cli_printf("\nregions that grew most (followed across snapshots):\n");
    if (!g->nlineages)
        cli_printf("  none grew\n");
    else
        cli_printf("  %-33s %-6s %-4s %7s %8s %8s %9s %13s %5s  %s\n", "RANGE (last snapshot)",
                   "CAT", "PERM", "SINCE", "FIRST", "LAST", "DELTA", "RATE", "GREW", "PATH");
    for (size_t i = 0; i < g->nlineages; i++) {
        const struct growth_lineage *l = &g->lineages[i];
        char a[16], b[16], d[24], r[32];
        cli_printf("  %016llx-%016llx %-6s %-4s %7lld %8s %8s %9s %13s %4.0f%%  ",
                   (unsigned long long)l->now.start, (unsigned long long)l->now.end,
                   region_category_name(l->now.category), l->now.perms,
                   (long long)g->snaps[l->first].seq, cli_human(l->size_first, a),
                   cli_human(l->size_last, b), cli_human_signed(l->delta, d),
                   human_rate(l->rate, r), l->grew_share * 100);
        if (l->now.path)
            cli_print_escaped(stdout, l->now.path, l->now.path_len);
        fputc('\n', stdout);
    }
    cli_printf("\nregions that gave back most (freed, or shrunk from their peak):\n");
    if (!g->nreleased)
        cli_printf("  none gave back\n");
    else
        cli_printf("  %-33s %-6s %-4s %7s %8s %8s %9s %8s  %s\n", "RANGE (last seen)", "CAT",
                   "PERM", "SINCE", "PEAK", "AT", "GAVE", "BY", "PATH");
    for (size_t i = 0; i < g->nreleased; i++) {
        const struct growth_release *l = &g->released[i];
        char a[16], d[24];
        cli_printf("  %016llx-%016llx %-6s %-4s %7lld %8s %8lld %9s %8lld  ",
                   (unsigned long long)l->now.start, (unsigned long long)l->now.end,
                   region_category_name(l->now.category), l->now.perms,
                   (long long)g->snaps[l->first].seq, cli_human(l->peak, a),
                   (long long)g->snaps[l->peak_at].seq,
                   cli_human_signed(-(int64_t)(l->peak - l->size_last), d),
                   (long long)g
                       ->snaps[l->freed ? (l->last + 1 < g->nsnaps ? l->last + 1 : l->last)
                                        : g->nsnaps - 1]
                       .seq);
        if (l->now.path)
            cli_print_escaped(stdout, l->now.path, l->now.path_len);
        fputc('\n', stdout);
    }
    cli_printf("\nsurvivors (born in the range, alive at its end):\n");
    if (!g->nsurvivors)
        cli_printf("  none\n");
    else
        cli_printf("  %6s %8s %9s %8s %-6s %-4s %10s %10s  %s\n", "COUNT", "BYTES", "COMMITTED",
                   "SIZE", "CAT", "PERM", "FIRST_BORN", "LAST_BORN", "PATH");
    for (size_t i = 0; i < g->nsurvivors; i++) {
        const struct growth_survivor *s = &g->survivors[i];
        char a[16], b[16], c[16];
        cli_printf("  %6lld %8s %9s %8s %-6s %-4s %10lld %10lld  ", (long long)s->count,
                   cli_human(s->bytes, a), cli_human(s->committed, c),
                   cli_human(s->like.end - s->like.start, b),
                   region_category_name(s->like.category), s->like.perms,
                   (long long)g->snaps[s->first_born].seq, (long long)g->snaps[s->last_born].seq);
        if (s->like.path)
            cli_print_escaped(stdout, s->like.path, s->like.path_len);
        fputc('\n', stdout);
    }
    print_sites(g);
}

/* The tree's rows, and which process the detail below is of. */
static void print_tree(const struct growth_load *l)
{
    const struct growth_proc *root = NULL;
    for (size_t i = 0; i < l->ntree; i++)
        if (l->tree[i].t.id == l->root)
            root = &l->tree[i];
    cli_printf("process tree of target %lld", (long long)l->root);
    if (root)
        cli_printf(" (pid %lld)", (long long)root->t.pid);
    cli_printf(": %zu processes, ranked by held growth of committed, then by peak\n", l->ntree);
    cli_printf("  %6s %7s %-5s %8s %8s %9s %9s %13s %-8s  %s\n", "TARGET", "PID", "ALIVE", "START",
               "END", "DELTA", "PEAK", "HELD RATE", "SINCE", "COMMAND");
    for (size_t i = 0; i < l->ntree; i++) {
        const struct growth_proc *p = &l->tree[i];
        const struct growth_brief *b = &p->committed;
        char a[16], c[16], d[24], k[24], r[32], since[24];
        if (b->held)
            snprintf(since, sizeof(since), "seq %lld", (long long)b->onset.seq);
        else
            snprintf(since, sizeof(since), "-");
        cli_printf("  %6lld %7lld %-5s %8s %8s %9s %9s %13s %-8s  ", (long long)p->t.id,
                   (long long)p->t.pid, p->alive ? "yes" : "no",
                   cli_human(b->start < 0 ? 0 : (uint64_t)b->start, a),
                   cli_human(b->end < 0 ? 0 : (uint64_t)b->end, c), cli_human_signed(b->delta, d),
                   cli_human_signed(b->peak_bytes - b->start, k),
                   b->held ? human_rate(b->rate, r) : "-", since);
        const char *cmd = p->t.cmdline && *p->t.cmdline ? p->t.cmdline : p->t.exe ? p->t.exe : "?";
        cli_print_escaped(stdout, cmd, strlen(cmd));
        fputc('\n', stdout);
    }
    if (l->chosen)
        cli_printf("the detail below is target %lld's (pid %lld), the first row -- another with "
                   "--target ID\n\n",
                   (long long)l->t.id, (long long)l->t.pid);
    else
        cli_printf("the detail below is target %lld's (pid %lld), the range asked for -- another "
                   "with --target ID\n\n",
                   (long long)l->t.id, (long long)l->t.pid);
}

int cmd_growth(struct cli *cli, int argc, char **argv)
{
    struct growth_args a = {0, 0, NULL, NULL, -1, GROWTH_TOP_DEFAULT, 0, 0};
    int rc = parse_args(cli, argc, argv, &a);
    if (rc)
        return cli_options_exit(rc);
    struct store *st = NULL;
    if (cli_open_store(cli, STORE_READ, &st))
        return EXIT_TROUBLE;
    struct err e = {0};
    struct growth_load l;
    int status = EXIT_TROUBLE;
    const struct growth_opts o = {.category = a.category, .top = (size_t)a.top};
    int mode = a.tree ? GROWTH_TREE_ON : a.target ? GROWTH_TREE_OFF : GROWTH_TREE_AUTO;
    if (growth_load(st, a.target, a.from, a.to, &o, mode, &l, &e) < 0) {
        if (e.code == ERR_USAGE)
            err_wrap(&e, "growth");
        cli_fail_err(&e);
        goto out;
    }
    const struct growth_result *g = &l.g;
    if (cli->json) {
        struct json j;
        json_init(&j, stdout);
        json_begin_object(&j);
        json_growth_fields(&j, &l.t, g);
        json_growth_tree(&j, &l);
        json_end_object(&j);
        json_finish(&j);
    } else {
        if (l.ntree)
            print_tree(&l);
        print_table(&l.t, g);
    }
    if (fflush(stdout) != 0) {
        cli_fail("growth: cannot write the output");
        goto out;
    }
    status = EXIT_OK;
    if (a.fail_on_rate) {
        double rate = a.category >= 0 ? g->cat[a.category].committed.rate : g->committed.rate;
        if (a.category >= 0 && !g->cat[a.category].present)
            rate = 0;
        /* Over a tree, a leak in any process trips it. */
        for (size_t i = 0; a.category < 0 && i < l.ntree; i++)
            if (l.tree[i].committed.rate > rate)
                rate = l.tree[i].committed.rate;
        status = rate > (double)a.rate_limit ? 1 : 0;
    }
out:
    growth_load_release(&l);
    store_close(st);
    return status;
}
