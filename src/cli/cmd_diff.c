#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/forms.h"
#include "diff/diff.h"
#include "platform/platform.h"
#include "util/xalloc.h"

static const struct cli_command diff_command = {
    .name = "diff",
    .max_args = -1,
    .synopsis =
        "usage: vmsnap diff SNAP_A SNAP_B [--min-size BYTES] [--category C] [--summary]\n"
        "                   [--fail-on-growth BYTES] [--target ID] [--by path|category]\n\n"
        "Shows what changed in the address space from snapshot A to snapshot B: new, freed, "
        "grown,\n"
        "shrunk, reprotected, remapped and resident (rss) changes, each once at its true range,\n"
        "then the mapped, committed and rss deltas in total and by category.\n"
        "With --by, by backing instead of by address: per path (anonymous memory by its\n"
        "category) or per category, both sides' regions, mapped, committed and rss -- the diff\n"
        "that means something between two processes, or two runs, whose layouts differ.\n"
        "SNAP is a snapshot id, first, last, last~N, or a label.\n",
    .epilog = "Exit status, as diff(1): 0 no changes, 1 changes, 2 trouble.\n",
};

/* The changes that pass the options, counted by kind. */
struct counts {
    size_t kind[DIFF_KIND_COUNT];
    size_t total;
};

struct diff_opts {
    uint64_t min_size;
    int category;
    int summary_only;
    int fail_on_growth;
    uint64_t growth_limit;
    int64_t target;
    int by; /* enum diff_by_key */
};

static int change_category(const struct diff_change *c)
{
    return c->now ? c->now->category : c->before->category;
}

static int keep(const struct diff_opts *o, const struct diff_change *c)
{
    if (o->category >= 0 && change_category(c) != o->category &&
        !(c->before && c->before->category == o->category))
        return 0;
    return diff_change_bytes(c) >= o->min_size;
}

struct colors {
    const char *add, *del, *mod, *off;
};

/* The committed bytes a change is about: its range's, or for a region that grew or shrank (or
 * grew resident) the bytes it moved by, when the region can hold anything. */
static uint64_t change_committed(const struct diff_change *c)
{
    const struct region *r = c->now ? c->now : c->before;
    if (!r || region_committed(r) == 0)
        return 0;
    if (c->kind == DIFF_NEW || c->kind == DIFF_FREED)
        return region_committed(r);
    return diff_change_bytes(c);
}

static int cmp_group(const void *x, const void *y)
{
    const struct diff_change *const *a = x, *const *b = y;
    if ((*a)->kind != (*b)->kind)
        return (*a)->kind - (*b)->kind;
    /* Largest first by the memory they commit: a reservation that holds nothing comes after
     * every change that holds something, whatever its size. */
    uint64_t ca = change_committed(*a), cb = change_committed(*b);
    if (ca != cb)
        return ca > cb ? -1 : 1;
    uint64_t sa = diff_change_bytes(*a), sb = diff_change_bytes(*b);
    if (sa != sb)
        return sa > sb ? -1 : 1;
    return (*a)->start < (*b)->start ? -1 : (*a)->start > (*b)->start;
}

/* The two snapshots compared, as every diff table begins. */
static void print_sides(const struct diff_pair *p)
{
    cli_printf("from snapshot %lld (target %lld seq %lld, %s)\n", (long long)p->snap[0].id,
               (long long)p->snap[0].target_id, (long long)p->snap[0].seq, p->snap[0].taken_at);
    cli_printf("  to snapshot %lld (target %lld seq %lld, %s)\n", (long long)p->snap[1].id,
               (long long)p->snap[1].target_id, (long long)p->snap[1].seq, p->snap[1].taken_at);
}

/* Recorded with --stacks: "  <- the code that made it" after a new region or a grown one. */
static void print_made_by(struct sites_map *made, const struct diff_change *c)
{
    const struct site_frame *f = NULL;
    if (made && c->kind == DIFF_NEW)
        f = sites_map_made_by(made, c->start, c->end);
    if (made && c->kind == DIFF_GROWN) {
        uint64_t s0, s1;
        diff_grown_part(c, &s0, &s1);
        f = sites_map_made_by(made, s0, s1);
    }
    if (!f)
        return;
    fputs("  <- ", stdout);
    cli_print_frame(stdout, f);
}

static void print_table(const struct diff_pair *p, const struct diff_opts *o,
                        const struct counts *s, struct sites_map *made)
{
    int tty = plat_isatty(stdout) && !getenv("NO_COLOR");
    struct colors col = tty ? (struct colors){"\033[32m", "\033[31m", "\033[33m", "\033[0m"}
                            : (struct colors){"", "", "", ""};
    char h1[24], h2[24];
    print_sides(p);
    if (!o->summary_only && s->total) {
        const struct diff_change **v = xmalloc(p->d.n * sizeof(*v));
        size_t n = 0;
        for (size_t i = 0; i < p->d.n; i++)
            if (keep(o, &p->d.v[i]))
                v[n++] = &p->d.v[i];
        if (n > 1)
            qsort(v, n, sizeof(*v), cmp_group);
        int kind = -1;
        for (size_t i = 0; i < n; i++) {
            const struct diff_change *c = v[i];
            const struct region *r = c->now ? c->now : c->before;
            const char *color = c->kind == DIFF_NEW || c->kind == DIFF_GROWN      ? col.add
                                : c->kind == DIFF_FREED || c->kind == DIFF_SHRUNK ? col.del
                                                                                  : col.mod;
            if (c->kind != kind) {
                kind = c->kind;
                cli_printf("\n%s%s%s (%zu)\n", color, diff_kind_name(kind), col.off, s->kind[kind]);
            }
            cli_printf("  %s%016" PRIx64 "-%016" PRIx64 "%s %8s  ", color, c->start, c->end,
                       col.off, cli_human(c->end - c->start, h1));
            switch (c->kind) {
            case DIFF_GROWN:
            case DIFF_SHRUNK:
                cli_printf("%-4s  %-6s %s from %s", r->perms, region_category_name(r->category),
                           cli_human_signed(c->delta, h2),
                           cli_human(c->before->end - c->before->start, h1));
                break;
            case DIFF_REPROTECTED:
                cli_printf("%s -> %s  %-6s", c->before->perms, r->perms,
                           region_category_name(r->category));
                break;
            case DIFF_RESIDENT:
                cli_printf("%-4s  %-6s rss %s", r->perms, region_category_name(r->category),
                           cli_human_signed(c->delta, h2));
                break;
            case DIFF_COMMITTED:
            case DIFF_DECOMMITTED:
                cli_printf("%-4s  %-6s %s -> %s", r->perms, region_category_name(r->category),
                           region_win_state_name(region_extra(c->before)->state),
                           region_win_state_name(region_extra(r)->state));
                break;
            default:
                cli_printf("%-4s  %-6s", r->perms, region_category_name(r->category));
            }
            if (r->path) {
                fputc(' ', stdout);
                cli_print_escaped(stdout, r->path, r->path_len);
                if (r->flags & REGION_DELETED)
                    fputs(" (deleted)", stdout);
            }
            if (c->kind == DIFF_REMAPPED) {
                fputs("  was ", stdout);
                if (c->before->path)
                    cli_print_escaped(stdout, c->before->path, c->before->path_len);
                else
                    fputs("anonymous", stdout);
            }
            print_made_by(made, c);
            fputc('\n', stdout);
        }
        free(v);
    }
    cli_printf("\nsummary: %zu change%s", s->total, s->total == 1 ? "" : "s");
    for (int k = 0; k < DIFF_KIND_COUNT; k++)
        if (s->kind[k])
            cli_printf(", %zu %s", s->kind[k], diff_kind_name(k));
    char h3[24];
    cli_printf("\n  %-7s mapped %s  committed %s",
               o->category >= 0 ? region_category_name(o->category) : "total",
               cli_human_signed(p->sum.total.mapped, h1),
               cli_human_signed(p->sum.total.committed, h3));
    if (p->have_rss)
        cli_printf("  rss %s", cli_human_signed(p->rss_delta, h2));
    fputc('\n', stdout);
    for (int c = 0; c < CAT_COUNT && o->category < 0; c++) {
        const struct diff_delta *cd = &p->sum.cat[c];
        if (!cd->touched ||
            (cd->mapped == 0 && cd->committed == 0 && (!p->have_cat_rss || !cd->rss)))
            continue;
        cli_printf("  %-7s mapped %s  committed %s", region_category_name(c),
                   cli_human_signed(cd->mapped, h1), cli_human_signed(cd->committed, h3));
        if (p->have_cat_rss)
            cli_printf("  rss %s", cli_human_signed(cd->rss, h2));
        fputc('\n', stdout);
    }
}

static int parse_opts(struct cli *cli, struct diff_opts *o, int argc, char **argv,
                      struct cli_args *args)
{
    const struct cli_opt opts[] = {
        {CLI_OPTION('m', "min-size", CLI_OPT_SIZE, &o->min_size, "BYTES",
                    "hide changes smaller than this (units K, M, G)"),
         .what = "size"},
        CLI_OPT_CATEGORY_ROW(&o->category, "only changes, deltas and growth of this category"),
        {CLI_OPTION('s', "summary", CLI_OPT_FLAG, &o->summary_only, NULL, "only the summary")},
        {CLI_OPTION('f', "fail-on-growth", CLI_OPT_SIZE, &o->growth_limit, "BYTES",
                    "exit 1 when committed bytes (mapped less no-access and\n"
                    "reserved ranges) or rss grew by more than BYTES, else 0"),
         .what = "size", .given = &o->fail_on_growth},
        CLI_OPT_TARGET_ROW(&o->target, "first/last/last~N count within this target"),
        {CLI_OPTION('b', "by", CLI_OPT_CHOICE, &o->by, "KEY",
                    "compare by path or by category instead of by address"),
         .what = "--by", .expected = "path or category", .choose = diff_by_parse},
        CLI_OPT_TABLE_END,
    };
    int rc = cli_parse_options(cli, &diff_command, opts, argc, argv, args);
    if (rc)
        return rc;
    if (args->n != 2)
        return cli_fail("diff: give two snapshots, e.g. 'vmsnap diff first last'");
    return 0;
}

/* Whether a row passes --min-size: it changed by at least that much mapped or committed. */
static int keep_row(const struct diff_opts *o, const struct diff_by_row *r)
{
    int64_t m = diff_by_delta(r, mapped), c = diff_by_delta(r, committed);
    uint64_t am = m < 0 ? -(uint64_t)m : (uint64_t)m, ac = c < 0 ? -(uint64_t)c : (uint64_t)c;
    return (am > ac ? am : ac) >= o->min_size &&
           (m || c || diff_by_delta(r, rss) || diff_by_delta(r, regions));
}

static void print_by(const struct diff_pair *p, const struct diff_opts *o,
                     const struct diff_by_result *by, size_t shown)
{
    print_sides(p);
    cli_printf("by %s: %zu of %zu differ%s\n", o->by == DIFF_BY_PATH ? "path" : "category", shown,
               by->n, p->have_cat_rss ? "" : " (rss needs --detail smaps on both sides)");
    if (!shown)
        return;
    cli_printf("  %6s %6s %8s %8s %9s %9s %9s %9s", "REGS_A", "REGS_B", "MAPPED_A", "MAPPED_B",
               "DELTA", "COMMIT_A", "COMMIT_B", "DELTA");
    if (p->have_cat_rss)
        cli_printf(" %8s %8s %9s", "RSS_A", "RSS_B", "DELTA");
    cli_printf("  %s\n", o->by == DIFF_BY_PATH ? "PATH" : "CATEGORY");
    for (size_t i = 0; i < by->n; i++) {
        const struct diff_by_row *r = &by->v[i];
        if (!keep_row(o, r))
            continue;
        char a[16], b[16], d[24], e[16], f[16], g[24];
        cli_printf("  %6lld %6lld %8s %8s %9s %9s %9s %9s", (long long)r->side[0].regions,
                   (long long)r->side[1].regions, cli_human(r->side[0].mapped, a),
                   cli_human(r->side[1].mapped, b), cli_human_signed(diff_by_delta(r, mapped), d),
                   cli_human(r->side[0].committed, e), cli_human(r->side[1].committed, f),
                   cli_human_signed(diff_by_delta(r, committed), g));
        if (p->have_cat_rss)
            cli_printf(" %8s %8s %9s", cli_human(r->side[0].rss, a), cli_human(r->side[1].rss, b),
                       cli_human_signed(diff_by_delta(r, rss), d));
        cli_printf("  ");
        if (r->like.path)
            cli_print_escaped(stdout, r->like.path, r->like.path_len);
        else
            cli_printf("[%s]", region_category_name(r->like.category));
        fputc('\n', stdout);
    }
}

static void json_by(struct json *j, const struct diff_pair *p, const struct diff_opts *o,
                    const struct diff_by_result *by)
{
    json_begin_object(j);
    json_key(j, "from");
    json_diff_side(j, &p->snap[0], &p->target[0]);
    json_key(j, "to");
    json_diff_side(j, &p->snap[1], &p->target[1]);
    json_key(j, "by");
    json_string(j, o->by == DIFF_BY_PATH ? "path" : "category");
    json_key(j, "rows");
    json_begin_array(j);
    for (size_t i = 0; i < by->n; i++) {
        const struct diff_by_row *r = &by->v[i];
        if (!keep_row(o, r))
            continue;
        json_begin_object(j);
        if (o->by == DIFF_BY_PATH)
            json_text(j, "path", r->like.path, r->like.path_len);
        json_key(j, "category");
        json_string(j, region_category_name(r->like.category));
        const char *sides[] = {"a", "b"};
        for (int k = 0; k < 2; k++) {
            json_key(j, sides[k]);
            json_begin_object(j);
            json_key(j, "regions");
            json_int(j, r->side[k].regions);
            json_key(j, "mapped");
            json_uint(j, r->side[k].mapped);
            json_key(j, "committed");
            json_uint(j, r->side[k].committed);
            json_key(j, "rss");
            if (p->have_cat_rss)
                json_uint(j, r->side[k].rss);
            else
                json_null(j);
            json_end_object(j);
        }
        json_key(j, "delta");
        json_begin_object(j);
        json_key(j, "mapped");
        json_int(j, diff_by_delta(r, mapped));
        json_key(j, "committed");
        json_int(j, diff_by_delta(r, committed));
        json_key(j, "rss");
        if (p->have_cat_rss)
            json_int(j, diff_by_delta(r, rss));
        else
            json_null(j);
        json_end_object(j);
        json_end_object(j);
    }
    json_end_array(j);
    json_end_object(j);
    json_finish(j);
}

/* diff --by: 0 when no row differs, 1 when one does; with --fail-on-growth, whether committed
 * (or rss) in all grew by more than the limit. */
static int diff_by_command(struct store *st, const struct diff_opts *o, int json, int64_t a,
                           int64_t b)
{
    struct diff_pair p;
    struct diff_by_result by;
    struct err e = {0};
    memset(&by, 0, sizeof(by));
    int status = EXIT_TROUBLE;
    if (diff_pair_load_whole(&p, st, a, b, &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }
    diff_by(&p.regions[0], &p.regions[1], o->by, o->category, &by);
    size_t shown = 0;
    int64_t committed = 0, rss = 0;
    for (size_t i = 0; i < by.n; i++) {
        shown += keep_row(o, &by.v[i]);
        committed += diff_by_delta(&by.v[i], committed);
        rss += diff_by_delta(&by.v[i], rss);
    }
    if (json) {
        struct json j;
        json_init(&j, stdout);
        json_by(&j, &p, o, &by);
    } else {
        print_by(&p, o, &by, shown);
    }
    if (fflush(stdout) != 0) {
        cli_fail("diff: cannot write the output");
        goto out;
    }
    if (o->fail_on_growth) {
        int64_t r = o->category >= 0 ? rss : p.rss_delta;
        int have = o->category >= 0 ? p.have_cat_rss : p.have_rss;
        status = committed > (int64_t)o->growth_limit || (have && r > (int64_t)o->growth_limit);
    } else {
        status = shown ? 1 : 0;
    }
out:
    diff_by_release(&by);
    diff_pair_release(&p);
    return status;
}

int cmd_diff(struct cli *cli, int argc, char **argv)
{
    struct diff_opts o = {.category = -1};
    struct cli_args args;
    int rc = parse_opts(cli, &o, argc, argv, &args);
    if (rc)
        return cli_options_exit(rc);
    char *db_a = NULL, *db_b = NULL;
    const char *sel_a = store_selector_split_file(args.v[0], &db_a);
    const char *sel_b = store_selector_split_file(args.v[1], &db_b);
    const char *db = db_a ? db_a : db_b ? db_b : cli->db_path;
    if ((db_a || db_b) && !plat_same_file(db_a ? db_a : cli->db_path, db_b ? db_b : cli->db_path)) {
        /* The answer is one database: say how to make it. */
        const char *a = db_a ? db_a : cli->db_path, *b = db_b ? db_b : cli->db_path;
        rc = cli_fail("diff: cannot diff snapshots from different databases ('%s' and '%s'): "
                      "merge one into the other first (vmsnap -d '%s' merge '%s'), then diff "
                      "in it (vmsnap -d '%s' list shows the merged snapshots)",
                      a, b, a, b, a);
        free(db_a);
        free(db_b);
        return rc;
    }
    struct cli local = *cli;
    local.db_path = db;
    struct store *st = NULL;
    struct diff_pair p;
    struct counts n;
    struct err e = {0};
    int status = EXIT_TROUBLE;
    int64_t a = 0, b = 0;
    struct sites_map *made = NULL;
    memset(&p, 0, sizeof(p));
    memset(&n, 0, sizeof(n));
    if (cli_open_store(&local, STORE_READ, &st))
        goto out;
    if (store_resolve_pair(st, o.target, sel_a, sel_b, &a, &b, &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }
    if (o.by) {
        status = diff_by_command(st, &o, cli->json, a, b);
        goto out;
    }
    if (diff_pair_load(&p, st, a, b, o.category, &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }
    for (size_t i = 0; i < p.d.n; i++)
        if (keep(&o, &p.d.v[i])) {
            n.kind[p.d.v[i].kind]++;
            n.total++;
        }
    /* Recorded with --stacks: who made what B has new. */
    if (!o.summary_only && sites_map_open(st, p.snap[1].target_id, b, &made, &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }

    if (cli->json) {
        struct json j;
        json_init(&j, stdout);
        json_begin_object(&j);
        json_key(&j, "from");
        json_diff_side(&j, &p.snap[0], &p.target[0]);
        json_key(&j, "to");
        json_diff_side(&j, &p.snap[1], &p.target[1]);
        if (!o.summary_only) {
            json_key(&j, "changes");
            json_begin_array(&j);
            for (size_t i = 0; i < p.d.n; i++)
                if (keep(&o, &p.d.v[i]))
                    json_change(&j, &p.d.v[i], made);
            json_end_array(&j);
        }
        json_key(&j, "summary");
        json_diff_summary(&j, &p, o.category, n.kind, n.total);
        json_end_object(&j);
        json_finish(&j);
    } else {
        print_table(&p, &o, &n, made);
    }
    if (fflush(stdout) != 0) {
        cli_fail("diff: cannot write the output");
        goto out;
    }
    /* Growth is judged on committed bytes: reservations (an arena's PROT_NONE tail, Windows
     * reserve) hold no memory yet. */
    if (o.fail_on_growth)
        status = p.sum.total.committed > (int64_t)o.growth_limit ||
                         (p.have_rss && p.rss_delta > (int64_t)o.growth_limit)
                     ? 1
                     : 0;
    else
        status = n.total ? 1 : 0;
out:
    sites_map_close(made);
    diff_pair_release(&p);
    store_close(st);
    free(db_a);
    free(db_b);
    return status;
}
